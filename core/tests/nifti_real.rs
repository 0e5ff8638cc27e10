//! Every real scan and mask in `../shared/data` read with pulmoseg-core must give what
//! nibabel 5 gives (`tests/fixtures/nibabel_headers.json`, made by
//! `tools/fixtures/check_written_nifti.py headers`): grid, zooms, affine, orientation code,
//! on-disk dtype and the range of `get_fdata()`.

mod common;

use pulmoseg_core::nifti::{read_header, read_nifti, AffineSource, ReadOptions};
use serde_json::Value;

fn fixture() -> Value {
    let text = std::fs::read_to_string(common::fixture("nibabel_headers.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn numbers(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[test]
fn real_files_match_nibabel() {
    let fixture = fixture();
    let files = fixture["files"].as_object().unwrap();
    assert_eq!(
        files.len(),
        14,
        "fixture should list all 14 .nii.gz files of ../shared/data"
    );

    for (relative, expected) in files {
        let bytes = std::fs::read(common::shared_data(relative)).unwrap();
        let image = read_nifti(&bytes, &ReadOptions::default()).unwrap();
        let volume = &image.volume;

        let shape: Vec<usize> = numbers(&expected["shape"])
            .iter()
            .map(|&n| n as usize)
            .collect();
        assert_eq!(volume.dims.to_vec(), shape, "{relative}: dims");
        assert_eq!(
            volume.hu.len(),
            shape.iter().product::<usize>(),
            "{relative}: voxel count"
        );

        for (axis, zoom) in numbers(&expected["zooms"]).iter().enumerate() {
            assert!(
                (volume.spacing_mm[axis] - zoom).abs() < 1e-6,
                "{relative}: spacing {axis}"
            );
        }
        let affine: Vec<f64> = expected["affine"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(numbers)
            .collect();
        let ours: Vec<f64> = volume.affine.0.iter().flatten().copied().collect();
        for (n, (a, b)) in ours.iter().zip(&affine).enumerate() {
            assert!(
                (a - b).abs() < 1e-4,
                "{relative}: affine entry {n}: {a} vs nibabel {b}"
            );
        }
        assert_eq!(
            volume.orientation_code(),
            expected["axcodes"].as_str().unwrap(),
            "{relative}"
        );
        assert_eq!(
            image.header.datatype_name(),
            expected["dtype"].as_str().unwrap(),
            "{relative}"
        );
        assert_eq!(
            image.header.affine_source(),
            Some(AffineSource::Sform),
            "{relative}"
        );

        let (lo, hi) = volume.hu_range().unwrap();
        assert_eq!(
            f64::from(lo),
            expected["min"].as_f64().unwrap(),
            "{relative}: min"
        );
        assert_eq!(
            f64::from(hi),
            expected["max"].as_f64().unwrap(),
            "{relative}: max"
        );
        assert!(
            image.warnings.is_empty(),
            "{relative}: {:?}",
            image.warnings
        );
    }
}

#[test]
fn header_only_read_agrees_with_the_full_read() {
    // P001: 512 × 512 × 148 int16, per ../shared/data/README.md.
    let bytes = std::fs::read(common::shared_data("covid-ct-md/P001.nii.gz")).unwrap();
    let header = read_header(&bytes).unwrap();
    assert_eq!(header.dims3(), [512, 512, 148]);
    assert_eq!(header.datatype_name(), "int16");
    assert_eq!(header.affine().orientation_code(), "LPS");
    let image = read_nifti(&bytes, &ReadOptions::default()).unwrap();
    assert_eq!(image.header, header);
}

#[test]
fn voxel_limit_names_both_numbers() {
    // 128 × 128 × 74 = 1 212 416 voxels in the small P001 copy.
    let bytes = std::fs::read(common::shared_data("small/covidctmd_P001_3mm.nii.gz")).unwrap();
    let err = read_nifti(
        &bytes,
        &ReadOptions {
            max_voxels: 1_000_000,
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "volume of 1212416 voxels exceeds the limit of 1000000 voxels"
    );
    assert!(read_nifti(
        &bytes,
        &ReadOptions {
            max_voxels: 1_212_416
        }
    )
    .is_ok());
}
