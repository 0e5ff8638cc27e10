//! `pulmoseg predict` end to end on a real scan: the written mask must sit on the input's own
//! grid, stay inside the lungs, and agree with the quantities JSON written beside it.
//!
//! The network is a freshly initialised width-2 U-Net: this checks the pipeline around the
//! network, not what a trained network finds (the shipped model's measurements do that).

use std::path::PathBuf;
use std::process::{Command, Output};

use burn::tensor::Device;
use pulmoseg_core::inference::{InferenceMode, Preprocessing};
use pulmoseg_core::lung_mask::{lung_mask, LungMaskOptions};
use pulmoseg_core::nifti::{read_nifti, write_labels_nii_gz, ReadOptions};
use pulmoseg_core::orientation::CanonicalOrientation;
use pulmoseg_core::resample::ResizeConvention;
use pulmoseg_core::unet::UNetConfig;
use pulmoseg_core::weights::{self, Storage, WeightsMetadata};
use pulmoseg_core::window::HuWindow;
use serde_json::Value;

fn shared_data(relative: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(relative);
    assert!(path.exists(), "real test data missing: {}", path.display());
    path
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pulmoseg-predict-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn pulmoseg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pulmoseg"))
        .args(args)
        .output()
        .unwrap()
}

/// A width-2 network in the paper's whole-volume mode at a small input size.
fn tiny_weights(dir: &std::path::Path) -> PathBuf {
    tiny_weights_with(dir, "tiny.pulmoseg", HuWindow::default())
}

fn tiny_weights_with(dir: &std::path::Path, name: &str, window: HuWindow) -> PathBuf {
    let device = Device::flex();
    device.seed(11);
    let config = UNetConfig::new().with_width(2);
    let model = config.init(&device).unwrap();
    let mut metadata = WeightsMetadata::new(&config);
    metadata.version = "test".into();
    metadata.preprocessing = Some(Preprocessing {
        window,
        mode: InferenceMode::WholeVolume {
            input_dims: [48, 48, 16],
        },
        resize: ResizeConvention::HalfPixel,
        orientation: CanonicalOrientation::Ras,
    });
    let path = dir.join(name);
    std::fs::write(
        &path,
        weights::save(&model, &metadata, Storage::F32).unwrap(),
    )
    .unwrap();
    path
}

#[test]
fn predicted_mask_sits_on_the_input_grid_inside_the_lungs_and_matches_its_quantities() {
    let dir = scratch("p001");
    let model = tiny_weights(&dir);
    let scan = shared_data("small/covidctmd_P001_3mm.nii.gz");
    let out_dir = dir.join("out");
    let out = pulmoseg(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        scan.to_str().unwrap(),
        "--output",
        out_dir.to_str().unwrap(),
        "--threshold",
        "0.3",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let source = read_nifti(&std::fs::read(&scan).unwrap(), &ReadOptions::default()).unwrap();
    let mask_bytes = std::fs::read(out_dir.join("covidctmd_P001_3mm_infiltrate.nii.gz")).unwrap();
    let mask = read_nifti(&mask_bytes, &ReadOptions::default()).unwrap();
    assert_eq!(mask.volume.dims, source.volume.dims);
    assert_eq!(mask.volume.affine, source.volume.affine);
    assert_eq!(mask.header.datatype_name(), "uint8");

    let lung = lung_mask(&source.volume, &LungMaskOptions::default()).unwrap();
    let marked: Vec<usize> = (0..mask.volume.len())
        .filter(|&v| mask.volume.hu[v] != 0.0)
        .collect();
    assert!(
        marked.iter().all(|&v| lung.labels[v] != 0),
        "infiltrate outside the lung mask"
    );
    assert!(mask.volume.hu.iter().all(|&v| v == 0.0 || v == 1.0));

    let json = std::fs::read(out_dir.join("covidctmd_P001_3mm_quantities.json")).unwrap();
    let q: Value = serde_json::from_slice(&json).unwrap();
    let voxel_ml = 3.0 * 3.0 * 4.0 / 1000.0;
    let total = &q["total"];
    let infiltrate_ml = total["infiltrate_ml"].as_f64().unwrap();
    let lung_ml = total["lung_ml"].as_f64().unwrap();
    assert!((infiltrate_ml - marked.len() as f64 * voxel_ml).abs() < 1e-6);
    assert!((lung_ml - lung.total_ml()).abs() < 1e-6);
    let percent = total["affected_percent"].as_f64().unwrap();
    assert!((percent - 100.0 * infiltrate_ml / lung_ml).abs() < 1e-9);
    let sides = q["left"]["lung_ml"].as_f64().unwrap() + q["right"]["lung_ml"].as_f64().unwrap();
    assert!((sides - lung_ml).abs() < 1e-6);
    assert_eq!(q["model_name"], "pulmoseg-r3d18-unet-w2");
    assert_eq!(q["model_version"], "test");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn unusable_models_and_settings_are_named() {
    let dir = scratch("bad");
    let scan = shared_data("small/covidctmd_P001_3mm.nii.gz");
    let not_weights = dir.join("notes.pulmoseg");
    std::fs::write(&not_weights, b"not a model at all").unwrap();
    let out_dir = dir.join("out");
    let run = |model: &str, threshold: &str| {
        let out = pulmoseg(&[
            "predict",
            "--model",
            model,
            scan.to_str().unwrap(),
            "--output",
            out_dir.to_str().unwrap(),
            "--threshold",
            threshold,
        ]);
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    let stderr = run(not_weights.to_str().unwrap(), "0.5");
    assert!(
        stderr.contains("notes.pulmoseg") && stderr.contains("not a Pulmoseg weights file"),
        "{stderr}"
    );
    let missing = dir.join("missing.pulmoseg");
    let stderr = run(missing.to_str().unwrap(), "0.5");
    assert!(stderr.contains("missing.pulmoseg"), "{stderr}");
    let stderr = run(not_weights.to_str().unwrap(), "1.5");
    assert!(stderr.contains("--threshold 1.5"), "{stderr}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_weights_file_with_a_reversed_window_or_clashing_inputs_is_refused() {
    let dir = scratch("refuse");
    // Built field by field: HuWindow::new itself would refuse these bounds.
    let reversed = tiny_weights_with(
        &dir,
        "reversed.pulmoseg",
        HuWindow {
            lower_hu: 500.0,
            upper_hu: -2000.0,
        },
    );
    let scan = shared_data("small/covidctmd_P001_3mm.nii.gz");
    let out_dir = dir.join("out");
    let out = pulmoseg(&[
        "predict",
        "--model",
        reversed.to_str().unwrap(),
        scan.to_str().unwrap(),
        "--output",
        out_dir.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("HU window 500") && !stderr.contains("panicked"),
        "{stderr}"
    );

    let model = tiny_weights(&dir);
    let out = pulmoseg(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        scan.to_str().unwrap(),
        scan.to_str().unwrap(),
        "--output",
        out_dir.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("two inputs are named \"covidctmd_P001_3mm\""),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn slice_scores_of_a_mask_made_from_the_labels_themselves_are_perfect() {
    // A mask covering exactly the labelled slices of P001 (every voxel of slice k where
    // slice_infected[k] = 1) must score sensitivity 1, specificity 1, and put all of its
    // volume on labelled slices; an empty mask scores sensitivity 0, specificity 1. Both
    // follow from the definitions, whatever slices the lung mask selects.
    let dir = scratch("slices");
    let image_path = shared_data("covid-ct-md/P001.nii.gz");
    let labels_path = shared_data("covid-ct-md/P001.labels.json");
    let image = read_nifti(
        &std::fs::read(&image_path).unwrap(),
        &ReadOptions::default(),
    )
    .unwrap();
    let labels: Value =
        serde_json::from_str(&std::fs::read_to_string(&labels_path).unwrap()).unwrap();
    let infected: Vec<bool> = labels["slice_infected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v == 1)
        .collect();
    let [ni, nj, nk] = image.volume.dims;
    assert_eq!(infected.len(), nk);
    let perfect: Vec<u8> = (0..ni * nj * nk)
        .map(|v| u8::from(infected[v / (ni * nj)]))
        .collect();
    let empty = vec![0u8; ni * nj * nk];

    let score = |name: &str, labels: &[u8]| -> Value {
        let path = dir.join(name);
        std::fs::write(&path, write_labels_nii_gz(labels, &image.header).unwrap()).unwrap();
        let out = pulmoseg(&[
            "slices",
            "--image",
            image_path.to_str().unwrap(),
            "--mask",
            path.to_str().unwrap(),
            "--labels",
            labels_path.to_str().unwrap(),
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let perfect = score("perfect.nii.gz", &perfect);
    assert_eq!(perfect["sensitivity"], 1.0);
    assert_eq!(perfect["specificity"], 1.0);
    assert_eq!(perfect["volume_in_labelled_slices"], 1.0);
    assert_eq!(perfect["false_positive"], 0);
    // Most of P001's 148 slices show lung; all 80 labelled slices lie within the lungs.
    let scored = perfect["scored_slices"].as_u64().unwrap();
    assert!((100..=148).contains(&scored), "{scored} slices with lung");
    assert_eq!(perfect["true_positive"], 80);

    let empty = score("empty.nii.gz", &empty);
    assert_eq!(empty["sensitivity"], 0.0);
    assert_eq!(empty["specificity"], 1.0);
    assert_eq!(empty["predicted_voxels"], 0);
    assert!(empty["volume_in_labelled_slices"].is_null());

    // The 3 mm copy has 74 slices: the 148 labels do not fit it.
    let small = shared_data("small/covidctmd_P001_3mm.nii.gz");
    let out = pulmoseg(&[
        "slices",
        "--image",
        small.to_str().unwrap(),
        "--mask",
        small.to_str().unwrap(),
        "--labels",
        labels_path.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("the labels give 148 slices, the scan has 74"),
        "{stderr}"
    );
}

#[test]
fn card_adds_a_measurement_and_keeps_the_network() {
    let dir = scratch("card");
    let model = tiny_weights(&dir);
    let measured = dir.join("p001.json");
    std::fs::write(&measured, r#"{"sensitivity": 0.5, "summary": "half"}"#).unwrap();
    let out_path = dir.join("with-card.pulmoseg");
    let out = pulmoseg(&[
        "card",
        "--model",
        model.to_str().unwrap(),
        "--set",
        &format!("p001={}", measured.display()),
        "--output",
        out_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = std::fs::read(&model).unwrap();
    let after = std::fs::read(&out_path).unwrap();
    let metadata = weights::read_metadata(&after).unwrap();
    assert_eq!(metadata.model_card["p001"]["summary"], "half");
    assert_eq!(
        metadata.network,
        weights::read_metadata(&before).unwrap().network
    );
    // Same tensors: the two files load to networks with identical parameters.
    let device = Device::flex();
    let (a, _) = weights::load(&before, &device).unwrap();
    let (b, _) = weights::load(&after, &device).unwrap();
    let (a, b) = (
        weights::save(&a, &metadata, Storage::F32).unwrap(),
        weights::save(&b, &metadata, Storage::F32).unwrap(),
    );
    assert_eq!(a, b);

    let out = pulmoseg(&[
        "card",
        "--model",
        model.to_str().unwrap(),
        "--set",
        "p001",
        "--output",
        out_path.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be KEY=FILE.json"));
}
