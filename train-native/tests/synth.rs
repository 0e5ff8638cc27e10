//! `pulmoseg synth` on a real 3 mm chest CT without pneumonia, run as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pulmoseg_core::nifti::{read_nifti, ReadOptions};
use serde_json::Value;

fn shared_data(relative: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(relative);
    assert!(path.exists(), "real test data missing: {}", path.display());
    path
}

fn pulmoseg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pulmoseg"))
        .args(args)
        .output()
        .unwrap()
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pulmoseg-synth-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

fn synth(input: &Path, output: &Path, seed: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "synth",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--cases-per-scan",
        "3",
        "--seed",
        seed,
    ];
    args.extend_from_slice(extra);
    pulmoseg(&args)
}

fn read(path: &Path) -> pulmoseg_core::nifti::NiftiImage {
    read_nifti(&std::fs::read(path).unwrap(), &ReadOptions::default()).unwrap()
}

#[test]
fn synth_writes_cases_on_the_source_grid_and_repeats_them_byte_for_byte() {
    let input = shared_data("small/covidctmd_normal001_3mm.nii.gz");
    let first = scratch_dir("first");
    let second = scratch_dir("second");

    let out = synth(&input, &first, "11", &["--lesion-free-share", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // One progress line per case.
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains("covidctmd_normal001_3mm_syn"))
            .count(),
        3,
        "{stderr}"
    );

    let manifest = std::fs::read_to_string(first.join("manifest.csv")).unwrap();
    let header =
        "# synthetic infiltrates (pulmoseg synth, seed 11, 3 cases per scan) inserted into \
                  CTs without pneumonia: covidctmd_normal001_3mm\nimage,mask\n";
    let expected: String = std::iter::once(header.to_string())
        .chain((0..3).map(|n| {
            format!(
                "images/covidctmd_normal001_3mm_syn{n:03}.nii.gz,masks/covidctmd_normal001_3mm_syn{n:03}.nii.gz\n"
            )
        }))
        .collect();
    assert_eq!(manifest, expected);

    let source = read(&input);
    let record: Value =
        serde_json::from_slice(&std::fs::read(first.join("synth.json")).unwrap()).unwrap();
    assert_eq!(record["seed"], 11);
    assert_eq!(record["options"]["lesion_free_share"], 0.0);
    let cases = record["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for (n, case) in cases.iter().enumerate() {
        let image = read(&first.join(case["image"].as_str().unwrap()));
        let mask = read(&first.join(case["mask"].as_str().unwrap()));
        for written in [&image, &mask] {
            assert_eq!(written.volume.dims, source.volume.dims);
            assert_eq!(written.volume.spacing_mm, source.volume.spacing_mm);
            assert_eq!(written.volume.affine, source.volume.affine);
        }
        assert_eq!(image.header.datatype_name(), "int16");
        assert_eq!(mask.header.datatype_name(), "uint8");

        // The mask holds exactly the recorded volume, and the image differs from the source
        // only where lesions were inserted (the source is int16, so unchanged voxels read
        // back identically).
        let voxels = mask.volume.hu.iter().filter(|&&m| m == 1.0).count();
        assert!(mask.volume.hu.iter().all(|&m| m == 0.0 || m == 1.0));
        let ml = voxels as f64 * source.volume.voxel_ml();
        assert!(
            (case["volume_ml"].as_f64().unwrap() - ml).abs() < 1e-6,
            "case {n}: {case}"
        );
        let lesions = case["lesions"].as_array().unwrap();
        assert_eq!(
            case["lesion_count"].as_u64().unwrap() as usize,
            lesions.len()
        );
        assert!(!lesions.is_empty());
        let changed = image
            .volume
            .hu
            .iter()
            .zip(&source.volume.hu)
            .filter(|(a, b)| a != b)
            .count();
        assert!(
            changed >= voxels / 2,
            "case {n}: {changed} changed voxels for {voxels} mask voxels"
        );
    }

    let out = synth(&input, &second, "11", &["--lesion-free-share", "0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for rel in manifest
        .lines()
        .skip(2)
        .flat_map(|l| l.split(','))
        .chain(["manifest.csv", "synth.json"])
    {
        let a = std::fs::read(first.join(rel)).unwrap();
        let b = std::fs::read(second.join(rel)).unwrap();
        assert!(a == b, "{rel} differs between two runs with the same seed");
    }

    // Another seed gives other cases.
    let out = synth(
        &input,
        &second,
        "12",
        &["--lesion-free-share", "0", "--force"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rel = "masks/covidctmd_normal001_3mm_syn000.nii.gz";
    assert_ne!(
        std::fs::read(first.join(rel)).unwrap(),
        std::fs::read(second.join(rel)).unwrap()
    );

    std::fs::remove_dir_all(first).ok();
    std::fs::remove_dir_all(second).ok();
}

#[test]
fn synth_refuses_a_non_empty_output_folder_without_force() {
    let input = shared_data("small/covidctmd_normal001_3mm.nii.gz");
    let dir = scratch_dir("occupied");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), b"keep me").unwrap();

    let out = synth(&input, &dir, "11", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("not empty") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(dir.join("notes.txt")).unwrap(), b"keep me");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn synth_names_an_unreadable_input() {
    let dir = scratch_dir("bad-input");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("not_a_scan.nii.gz");
    std::fs::write(&bad, b"plain text").unwrap();

    let out = synth(&bad, &dir.join("out"), "11", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("not_a_scan.nii.gz"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let out = synth(&dir.join("missing.nii.gz"), &dir.join("out2"), "11", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("missing.nii.gz"), "{stderr}");
    std::fs::remove_dir_all(dir).ok();
}
