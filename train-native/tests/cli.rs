//! The `pulmoseg` binary on real scans, run as a user runs it.

use std::path::PathBuf;
use std::process::{Command, Output};

use pulmoseg_core::nifti::{read_nifti, write_labels_nii_gz, ReadOptions};
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
    let dir = std::env::temp_dir().join(format!("pulmoseg-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn info_reports_the_covid_scan_as_its_publisher_describes_it() {
    // Expected values from ../shared/data/README.md: 512 × 512 × 148, 0.748 × 0.748 × 2.0 mm,
    // int16, HU −1024 … 1563, LPS+ voxel order.
    let path = shared_data("covid-ct-md/P001.nii.gz");
    let out = pulmoseg(&["info", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);

    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("dims:        512 × 512 × 148"), "{stdout}");
    assert!(
        stdout.contains("spacing:     0.7480 × 0.7480 × 2.0000 mm"),
        "{stdout}"
    );
    assert!(stdout.contains("orientation: LPS"), "{stdout}");
    assert!(stdout.contains("data type:   int16"), "{stdout}");
    assert!(stdout.contains("HU range:    -1024 … 1563"), "{stdout}");
}

#[test]
fn metrics_of_a_shifted_tumour_mask_match_surface_distance() {
    // lung1's tumour mask against itself moved by 2 voxels along i; the reference values
    // were computed with DeepMind's surface-distance package by
    // tools/fixtures/make_metrics_fixtures.py (core/tests/fixtures/metrics_real_masks.json).
    let truth_path = shared_data("pyradiomics/lung1_label.nii.gz");
    let truth = read_nifti(
        &std::fs::read(&truth_path).unwrap(),
        &ReadOptions::default(),
    )
    .unwrap();
    let [ni, nj, nk] = truth.volume.dims;
    let mut shifted = vec![0u8; truth.volume.len()];
    for k in 0..nk {
        for j in 0..nj {
            for i in 2..ni {
                let from = (i - 2) + ni * (j + nj * k);
                shifted[i + ni * (j + nj * k)] = u8::from(truth.volume.hu[from] > 0.0);
            }
        }
    }
    let dir = scratch_dir("metrics");
    let prediction_path = dir.join("shifted.nii.gz");
    std::fs::write(
        &prediction_path,
        write_labels_nii_gz(&shifted, &truth.header).unwrap(),
    )
    .unwrap();

    let out = pulmoseg(&[
        "metrics",
        prediction_path.to_str().unwrap(),
        truth_path.to_str().unwrap(),
        "--tolerance-mm",
        "1",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();

    assert!(
        (report["dice"].as_f64().unwrap() - 0.8554360812425329).abs() < 1e-6,
        "{report}"
    );
    assert!(
        (report["surface_dice"].as_f64().unwrap() - 0.9184192780737881).abs() < 1e-6,
        "{report}"
    );
    assert_eq!(report["truth_voxels"], 837);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn metrics_on_different_grids_is_a_clear_error() {
    let a = shared_data("pyradiomics/lung1_label.nii.gz");
    let b = shared_data("pyradiomics/lung2_label.nii.gz");
    let out = pulmoseg(&["metrics", a.to_str().unwrap(), b.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);

    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("[512, 512, 48]") && stderr.contains("[512, 512, 61]"),
        "{stderr}"
    );
}

#[test]
fn a_file_that_is_not_nifti_names_the_file_and_the_problem() {
    let dir = scratch_dir("bad");
    let path = dir.join("notes.nii");
    std::fs::write(&path, b"this is a text file, not a scan").unwrap();
    let out = pulmoseg(&["info", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);

    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("notes.nii"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn metrics_on_the_same_grid_size_but_another_position_is_a_clear_error() {
    // The same tumour mask written with its sform moved 100 mm to the side: the sizes agree,
    // but the voxels cover other places, so scoring them against each other means nothing.
    let truth_path = shared_data("pyradiomics/lung1_label.nii.gz");
    let truth = read_nifti(
        &std::fs::read(&truth_path).unwrap(),
        &ReadOptions::default(),
    )
    .unwrap();
    let labels: Vec<u8> = truth.volume.hu.iter().map(|&v| u8::from(v > 0.0)).collect();
    let mut moved = truth.header.clone();
    moved.srow_x[3] += 100.0;
    moved.qoffset_x += 100.0;
    let dir = scratch_dir("moved");
    let moved_path = dir.join("moved.nii.gz");
    std::fs::write(&moved_path, write_labels_nii_gz(&labels, &moved).unwrap()).unwrap();

    let out = pulmoseg(&[
        "metrics",
        moved_path.to_str().unwrap(),
        truth_path.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("different voxel-to-world affines"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn label_zero_is_refused_because_it_would_score_the_background() {
    let a = shared_data("pyradiomics/lung1_label.nii.gz");
    let out = pulmoseg(&[
        "metrics",
        a.to_str().unwrap(),
        a.to_str().unwrap(),
        "--label",
        "0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--label") && stderr.contains('0'),
        "{stderr}"
    );
}

#[test]
fn a_device_or_a_folder_is_refused_rather_than_read_without_end() {
    // /dev/zero never ends: reading it whole would fill the memory; a pipe without a writer
    // would block the open. They and a folder are refused by name before anything is read.
    let folder = scratch_dir("not-a-file");
    let fifo = folder.join("scan.nii");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    for path in [
        "/dev/zero",
        folder.to_str().unwrap(),
        fifo.to_str().unwrap(),
    ] {
        let out = pulmoseg(&["info", path]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains(path), "{stderr}");
        assert!(stderr.contains("not a regular file"), "{stderr}");
    }
    std::fs::remove_dir_all(&folder).ok();
}
