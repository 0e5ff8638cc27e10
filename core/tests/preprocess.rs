//! Preprocessing against peers: PyTorch's `interpolate` for the resizes and nibabel's
//! `as_closest_canonical` for the reorientation, on real scans. References are made by
//! `tools/fixtures/make_resample_fixtures.py` (PyTorch 2, nibabel 5) and committed.

mod common;

use common::{fixture, shared_data};
use pulmoseg_core::nifti::{read_nifti, ReadOptions};
use pulmoseg_core::resample::{resize_nearest, resize_trilinear};
use pulmoseg_core::window::HuWindow;
use pulmoseg_core::Volume;
use serde_json::Value;

fn cases() -> Value {
    let text = std::fs::read_to_string(fixture("resample_fixtures.json")).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["cases"].clone()
}

fn dims(value: &Value) -> [usize; 3] {
    let v: Vec<usize> = serde_json::from_value(value.clone()).unwrap();
    [v[0], v[1], v[2]]
}

fn read_f32(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(fixture(name)).unwrap();
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn read_volume(relative: &str) -> Volume {
    let bytes = std::fs::read(shared_data(relative)).unwrap();
    read_nifti(&bytes, &ReadOptions::default()).unwrap().volume
}

fn max_abs_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn windowed_real_ct_shrinks_like_pytorch_trilinear() {
    let case = &cases()["P001_3mm_trilinear"];
    let volume = read_volume(case["source"].as_str().unwrap());
    assert_eq!(volume.dims, dims(&case["dims"]));

    let scaled = HuWindow::new(-2000.0, 500.0).unwrap().apply(&volume.hu);
    let ours = resize_trilinear(&scaled, volume.dims, dims(&case["out_dims"])).unwrap();
    let torch = read_f32(case["file"].as_str().unwrap());

    // Values are in 0…1; f32 rounding of separable against direct interpolation stays far
    // below 1e-5.
    assert!(max_abs_difference(&ours, &torch) < 1e-5);
}

#[test]
fn odd_upsampling_matches_pytorch_trilinear_and_nearest_exact() {
    let case = &cases()["random_up"];
    let input = read_f32(case["input"].as_str().unwrap());
    let (from, to) = (dims(&case["dims"]), dims(&case["out_dims"]));

    let linear = resize_trilinear(&input, from, to).unwrap();
    assert!(max_abs_difference(&linear, &read_f32(case["trilinear"].as_str().unwrap())) < 1e-5);

    let nearest = resize_nearest(&input, from, to).unwrap();
    assert_eq!(nearest, read_f32(case["nearest"].as_str().unwrap()));
}

#[test]
fn real_tumour_mask_resizes_like_pytorch_nearest_exact() {
    let case = &cases()["pyrad_lung2_label_nearest"];
    let volume = read_volume(case["source"].as_str().unwrap());
    let labels: Vec<u8> = volume.hu.iter().map(|&v| u8::from(v > 0.0)).collect();

    let ours = resize_nearest(&labels, volume.dims, dims(&case["out_dims"])).unwrap();
    let torch = std::fs::read(fixture(case["file"].as_str().unwrap())).unwrap();

    assert_eq!(
        ours.iter().map(|&v| v as u64).sum::<u64>(),
        case["foreground_voxels"].as_u64().unwrap()
    );
    assert_eq!(ours, torch);
}

#[test]
fn lps_scan_reorients_like_nibabel_and_back() {
    let case = &cases()["P001_canonical"];
    let volume = read_volume(case["source"].as_str().unwrap());
    assert_eq!(
        volume.orientation_code(),
        case["source_code"].as_str().unwrap()
    );

    let (canonical, reorientation) = volume.to_canonical();
    assert_eq!(
        canonical.orientation_code(),
        case["canonical_code"].as_str().unwrap()
    );
    assert_eq!(canonical.dims, dims(&case["canonical_dims"]));

    let expected: Vec<Vec<f64>> = serde_json::from_value(case["canonical_affine"].clone()).unwrap();
    for (row, expected_row) in canonical.affine.0.iter().zip(&expected) {
        for (a, b) in row.iter().zip(expected_row) {
            assert!(
                (a - b).abs() < 1e-4,
                "canonical affine {:?} vs nibabel {expected:?}",
                canonical.affine
            );
        }
    }
    for probe in case["canonical_probes"].as_array().unwrap() {
        let [i, j, k] = dims(&probe["ijk"]);
        assert_eq!(
            canonical.hu[canonical.index(i, j, k)] as f64,
            probe["value"].as_f64().unwrap()
        );
    }

    assert!(
        reorientation.to_source_data(&canonical.hu) == volume.hu,
        "round trip is not lossless"
    );
}
