//! Synthetic infiltrates on a real chest CT without pneumonia (COVID-CT-MD normal001,
//! resampled to 3 × 3 × 4 mm).

mod common;

use std::sync::OnceLock;

use pulmoseg_core::distance_transform::distance_transform;
use pulmoseg_core::lung_mask::{lung_mask, LungMask, LungMaskOptions};
use pulmoseg_core::nifti::{read_nifti, ReadOptions};
use pulmoseg_core::synthesis::{
    synthesize, LesionKind, SynthesisError, SynthesisOptions, Synthesizer, SyntheticCase,
};
use pulmoseg_core::Volume;

struct Scan {
    volume: Volume,
    lung: LungMask,
}

fn normal001() -> &'static Scan {
    static SCAN: OnceLock<Scan> = OnceLock::new();
    SCAN.get_or_init(|| {
        let path = common::shared_data("small/covidctmd_normal001_3mm.nii.gz");
        let image = read_nifti(&std::fs::read(path).unwrap(), &ReadOptions::default()).unwrap();
        let lung = lung_mask(&image.volume, &LungMaskOptions::default()).unwrap();
        Scan {
            volume: image.volume,
            lung,
        }
    })
}

fn cases(options: &SynthesisOptions, seeds: std::ops::Range<u64>) -> Vec<SyntheticCase> {
    let scan = normal001();
    let synthesizer = Synthesizer::new(&scan.volume, &scan.lung).unwrap();
    seeds
        .map(|seed| synthesizer.case(options, seed).unwrap())
        .collect()
}

fn with_lesions() -> SynthesisOptions {
    SynthesisOptions {
        lesion_free_share: 0.0,
        ..Default::default()
    }
}

/// World z (mm) of every voxel's centre, from the affine.
fn world_z(volume: &Volume) -> Vec<f64> {
    let [ni, nj, nk] = volume.dims;
    let mut z = Vec::with_capacity(volume.len());
    for k in 0..nk {
        for j in 0..nj {
            for i in 0..ni {
                z.push(volume.affine.apply([i as f64, j as f64, k as f64])[2]);
            }
        }
    }
    z
}

#[test]
#[allow(clippy::needless_range_loop)] // four arrays are read at the same voxel index
fn the_mask_lies_in_the_lungs_and_the_image_is_untouched_beyond_its_soft_edge() {
    let scan = normal001();
    let options = with_lesions();
    // Alpha reaches 0 at half the soft-margin width from the mask; one voxel diagonal of
    // slack (√(3² + 3² + 4²) ≈ 5.8 mm) covers the voxel-centre sampling of that distance.
    let limit_mm = options.max_margin_mm() / 2.0 + 5.9;
    for case in cases(&options, 0..6) {
        assert!(
            case.mask.contains(&1),
            "a case without lesions: {:?}",
            case.lesions
        );
        let features: Vec<bool> = case.mask.iter().map(|&m| m == 1).collect();
        let distance =
            distance_transform(&features, scan.volume.dims, scan.volume.spacing_mm).unwrap();

        let mut changed_near = 0;
        for index in 0..case.hu.len() {
            if case.mask[index] == 1 {
                assert!(
                    scan.lung.contains(index),
                    "mask voxel {index} outside the lung mask"
                );
            }
            let same = case.hu[index].to_bits() == scan.volume.hu[index].to_bits();
            if !scan.lung.contains(index) || distance[index] > limit_mm {
                assert!(
                    same,
                    "voxel {index} at {} mm from the mask changed",
                    distance[index]
                );
            } else if !same {
                changed_near += 1;
            }
        }
        // The lesions did change the image (so the test above could have failed).
        assert!(changed_near >= features.iter().filter(|&&f| f).count() / 2);
    }
}

#[test]
fn ground_glass_raises_aerated_lung_into_the_ground_glass_range() {
    // Ground glass is hazy increased attenuation with preserved vessel margins (Fleischner
    // Society glossary, Hansell et al., Radiology 2008), about −750 … −300 HU; aerated lung is
    // below −750 HU before the lesion is inserted.
    let scan = normal001();
    let options = SynthesisOptions {
        consolidation_share: 0.0,
        mixed_share: 0.0,
        ..with_lesions()
    };
    for case in cases(&options, 10..16) {
        assert!(case
            .lesions
            .iter()
            .all(|l| l.kind == LesionKind::GroundGlass));
        let (mut before, mut after, mut n) = (0.0f64, 0.0f64, 0usize);
        for index in 0..case.hu.len() {
            if case.mask[index] == 1 && scan.volume.hu[index] < -700.0 {
                before += f64::from(scan.volume.hu[index]);
                after += f64::from(case.hu[index]);
                n += 1;
            }
        }
        assert!(n > 0);
        let (before, after) = (before / n as f64, after / n as f64);
        eprintln!("ground glass: {before:.0} -> {after:.0} HU over {n} voxels");
        assert!(before < -750.0, "source mean {before}");
        assert!(
            (-750.0..=-300.0).contains(&after),
            "ground-glass mean {after} HU over {n} voxels"
        );
    }
}

#[test]
fn consolidation_reaches_soft_tissue_density() {
    // Consolidation replaces the air of the alveoli: about −100 … +50 HU. Measured on the
    // mask's interior (voxels whose six neighbours are all in the mask), away from the soft
    // edge, where the source was aerated lung.
    let scan = normal001();
    let [ni, nj, nk] = scan.volume.dims;
    let options = SynthesisOptions {
        consolidation_share: 1.0,
        mixed_share: 0.0,
        ..with_lesions()
    };
    let mut measured = 0;
    for case in cases(&options, 20..26) {
        assert!(case
            .lesions
            .iter()
            .all(|l| l.kind == LesionKind::Consolidation));
        let (mut sum, mut n) = (0.0f64, 0usize);
        for k in 1..nk - 1 {
            for j in 1..nj - 1 {
                for i in 1..ni - 1 {
                    let index = i + ni * (j + nj * k);
                    let neighbours = [
                        index - 1,
                        index + 1,
                        index - ni,
                        index + ni,
                        index - ni * nj,
                        index + ni * nj,
                    ];
                    if case.mask[index] == 1
                        && neighbours.iter().all(|&m| case.mask[m] == 1)
                        && scan.volume.hu[index] < -700.0
                    {
                        sum += f64::from(case.hu[index]);
                        n += 1;
                    }
                }
            }
        }
        if n >= 10 {
            let mean = sum / n as f64;
            eprintln!("consolidation interior: {mean:.0} HU over {n} voxels");
            assert!(
                (-100.0..=50.0).contains(&mean),
                "consolidation interior mean {mean} HU ({n} voxels)"
            );
            measured += 1;
        }
    }
    assert!(
        measured >= 3,
        "only {measured} cases had an interior of 10 voxels"
    );
}

#[test]
fn a_seed_gives_the_same_case_and_another_seed_another_one() {
    let options = with_lesions();
    let a = cases(&options, 5..6).remove(0);
    let b = cases(&options, 5..6).remove(0);
    let c = cases(&options, 6..7).remove(0);
    let bits = |case: &SyntheticCase| case.hu.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(a.mask, b.mask);
    assert_eq!(a.lesions, b.lesions);
    assert_ne!(a.mask, c.mask);
    // The one-call API is the same as the prepared one.
    let scan = normal001();
    assert_eq!(
        synthesize(&scan.volume, &scan.lung, &options, 5)
            .unwrap()
            .mask,
        a.mask
    );
}

#[test]
fn lesion_free_cases_come_at_the_configured_share_and_leave_the_scan_alone() {
    // 80 cases at a share of 0.25: the count is Binomial(80, 0.25), mean 20, sd 3.9; the
    // bounds 8 … 32 are ±3 sd (a false failure about once in 400 seeds; the seeds are fixed).
    let scan = normal001();
    let options = SynthesisOptions {
        lesion_free_share: 0.25,
        ..Default::default()
    };
    let batch = cases(&options, 100..180);
    let free: Vec<&SyntheticCase> = batch.iter().filter(|c| c.lesions.is_empty()).collect();
    assert!(
        (8..=32).contains(&free.len()),
        "{} lesion-free of 80",
        free.len()
    );
    for case in free {
        assert!(case.mask.iter().all(|&m| m == 0));
        assert_eq!(case.lesion_ml, 0.0);
        assert!(case
            .hu
            .iter()
            .zip(&scan.volume.hu)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }
    let none_free = SynthesisOptions {
        lesion_free_share: 0.0,
        ..Default::default()
    };
    assert!(cases(&none_free, 100..120)
        .iter()
        .all(|c| !c.lesions.is_empty()));
    let all_free = SynthesisOptions {
        lesion_free_share: 1.0,
        ..Default::default()
    };
    assert!(cases(&all_free, 100..110)
        .iter()
        .all(|c| c.lesions.is_empty()));
}

#[test]
fn lesions_prefer_the_lung_bases_and_the_periphery() {
    let scan = normal001();
    let z = world_z(&scan.volume);

    // The lower half of the lungs by volume: below the median world z of the lung voxels, so
    // a placement without basal preference would put half of the lesion volume there.
    let mut lung_z: Vec<f64> = (0..z.len())
        .filter(|&i| scan.lung.contains(i))
        .map(|i| z[i])
        .collect();
    lung_z.sort_by(f64::total_cmp);
    let median_z = lung_z[lung_z.len() / 2];

    // Distance to the lung border: from each lung voxel to the nearest voxel outside the lungs.
    let outside: Vec<bool> = (0..z.len()).map(|i| !scan.lung.contains(i)).collect();
    let border = distance_transform(&outside, scan.volume.dims, scan.volume.spacing_mm).unwrap();
    let lung_voxels = lung_z.len() as f64;
    let lung_near = (0..z.len())
        .filter(|&i| scan.lung.contains(i) && border[i] <= 20.0)
        .count();
    let lung_near_share = lung_near as f64 / lung_voxels;

    let (mut lower, mut near, mut total) = (0usize, 0usize, 0usize);
    for case in cases(&with_lesions(), 200..240) {
        for (index, &m) in case.mask.iter().enumerate() {
            if m == 1 {
                total += 1;
                lower += usize::from(z[index] < median_z);
                near += usize::from(border[index] <= 20.0);
            }
        }
    }
    let lower_share = lower as f64 / total as f64;
    let near_share = near as f64 / total as f64;
    eprintln!(
        "lower half {lower_share:.3}, within 20 mm {near_share:.3} (lung {lung_near_share:.3})"
    );
    assert!(
        lower_share > 0.6,
        "lesion volume in the lower half of the lungs: {lower_share}"
    );
    assert!(
        near_share > 0.75,
        "lesion volume within 20 mm of the pleura: {near_share}"
    );
    assert!(
        near_share > lung_near_share + 0.05,
        "lesions {near_share} vs lung {lung_near_share} within 20 mm of the pleura"
    );
}

#[test]
fn lesion_counts_volumes_and_kinds_span_the_configured_ranges() {
    let options = with_lesions();
    let batch = cases(&options, 300..340);
    let counts: Vec<usize> = batch.iter().map(|c| c.lesions.len()).collect();
    assert!(counts.iter().all(|&n| (1..=8).contains(&n)), "{counts:?}");
    assert!(
        counts.iter().any(|&n| n <= 2) && counts.iter().any(|&n| n >= 6),
        "{counts:?}"
    );
    let volumes: Vec<f64> = batch.iter().map(|c| c.lesion_ml).collect();
    // Drawn log-uniformly in 10 … 1000 mL (the default); lesions cut by the pleura end up smaller.
    assert!(
        volumes.iter().all(|&v| v > 0.0 && v < 1200.0),
        "{volumes:?}"
    );
    assert!(
        volumes.iter().any(|&v| v < 30.0) && volumes.iter().any(|&v| v > 200.0),
        "{volumes:?}"
    );
    let bilateral = batch
        .iter()
        .filter(|c| c.lesions.iter().any(|l| l.side != c.lesions[0].side))
        .count();
    assert!(
        bilateral > 10 && bilateral < 40,
        "{bilateral} bilateral of 40"
    );
    for kind in [
        LesionKind::GroundGlass,
        LesionKind::Consolidation,
        LesionKind::Mixed,
    ] {
        assert!(
            batch
                .iter()
                .any(|c| c.lesions.iter().any(|l| l.kind == kind)),
            "no {kind:?}"
        );
    }
    // The reported volume is the mask's.
    let case = &batch[0];
    let voxel_ml = normal001().volume.voxel_ml();
    let mask_ml = case.mask.iter().filter(|&&m| m == 1).count() as f64 * voxel_ml;
    assert!((case.lesion_ml - mask_ml).abs() < 1e-9);
}

#[test]
fn bad_inputs_are_clear_errors() {
    let scan = normal001();
    let options = SynthesisOptions {
        lesion_free_share: 1.5,
        ..Default::default()
    };
    let err = synthesize(&scan.volume, &scan.lung, &options, 0).unwrap_err();
    assert_eq!(
        err,
        SynthesisError::InvalidOption {
            name: "lesion_free_share",
            value: 1.5
        }
    );

    let mut empty = scan.lung.clone();
    empty.labels.iter_mut().for_each(|l| *l = 0);
    let err = Synthesizer::new(&scan.volume, &empty).unwrap_err();
    assert_eq!(err, SynthesisError::NoLung);

    let mut other = scan.lung.clone();
    other.dims = [1, 2, 3];
    let err = Synthesizer::new(&scan.volume, &other).unwrap_err();
    assert_eq!(
        err,
        SynthesisError::GridMismatch {
            volume: [108, 108, 77],
            mask: [1, 2, 3]
        }
    );
}
