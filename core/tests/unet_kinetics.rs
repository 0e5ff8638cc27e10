//! The Kinetics-400 import against torchvision's own R3D-18.
//!
//! Expected activations come from `tools/fixtures/make_r3d18_fixture.py`: torchvision
//! 0.29's `r3d_18()` with seeded random weights and randomised BatchNorm statistics, run in
//! eval mode on an input of three equal channels. The one-channel encoder, with the stem
//! kernel summed over RGB, must reproduce them to 1e-4 (activations are at most ~4).

#![cfg(feature = "model")]

mod common;

use burn::tensor::{Device, Tensor, TensorData};
use common::fixture;
use pulmoseg_core::kinetics::pth::{Checkpoint, PthError};
use pulmoseg_core::kinetics::{self, KineticsError};
use pulmoseg_core::unet::encoder::{Encoder, EncoderConfig};

const TOLERANCE: f32 = 1e-4;

fn read_f32(path: &std::path::Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn max_abs_diff(got: Tensor<5>, expected: &[f32]) -> f32 {
    let got: Vec<f32> = got.into_data().try_into_vec_as().expect("f32 tensor");
    assert_eq!(got.len(), expected.len(), "element counts differ");
    got.iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

fn input(path: &std::path::Path, device: &Device) -> Tensor<5> {
    Tensor::from_floats(TensorData::new(read_f32(path), [1, 1, 4, 16, 16]), device)
}

fn encoder(device: &Device) -> Encoder {
    EncoderConfig::new(1, 64).init(device)
}

#[test]
fn stem_and_layer1_match_torchvision() {
    let device = Device::default();
    let pth = std::fs::read(fixture("r3d18_stem_layer1.pth")).expect("fixture");
    let (encoder, loaded) = kinetics::load_encoder_partial(encoder(&device), &pth).expect("import");
    // 5 stem tensors + 2 blocks × (2 convs + 2 BatchNorms × 4) = 25.
    assert_eq!(loaded.len(), 25, "{loaded:?}");

    let x = input(&fixture("r3d18_input.f32"), &device);
    let stem = encoder.stem.forward(x);
    let layer1 = encoder
        .layer1
        .iter()
        .fold(stem.clone(), |x, block| block.forward(x));
    assert_eq!(stem.dims(), [1, 64, 4, 8, 8]);
    let stem_diff = max_abs_diff(stem, &read_f32(&fixture("r3d18_stem.f32")));
    let layer1_diff = max_abs_diff(layer1, &read_f32(&fixture("r3d18_layer1.f32")));
    println!("max |Δ| stem {stem_diff:e}, layer1 {layer1_diff:e}");
    assert!(stem_diff < TOLERANCE, "stem differs by {stem_diff}");
    assert!(layer1_diff < TOLERANCE, "layer1 differs by {layer1_diff}");
}

#[test]
fn legacy_format_stem_matches_torchvision() {
    let device = Device::default();
    let pth = std::fs::read(fixture("r3d18_stem_legacy.pth")).expect("fixture");
    let (encoder, loaded) = kinetics::load_encoder_partial(encoder(&device), &pth).expect("import");
    assert_eq!(loaded.len(), 5, "{loaded:?}");
    let stem = encoder
        .stem
        .forward(input(&fixture("r3d18_input.f32"), &device));
    let diff = max_abs_diff(stem, &read_f32(&fixture("r3d18_stem.f32")));
    assert!(diff < TOLERANCE, "stem differs by {diff}");
}

#[test]
fn strict_import_names_the_first_missing_key() {
    let device = Device::default();
    let pth = std::fs::read(fixture("r3d18_stem_layer1.pth")).expect("fixture");
    // The fixture stops after layer1; keys are checked in sorted order, and torchvision's
    // layer2.0.conv1.0.weight has shape [128, 64, 3, 3, 3].
    let err = kinetics::load_encoder(encoder(&device), &pth).expect_err("partial file");
    assert_eq!(
        err,
        KineticsError::MissingKey {
            key: "layer2.0.conv1.0.weight".into(),
            expected: vec![128, 64, 3, 3, 3]
        }
    );
}

#[test]
fn wrong_width_and_channels_are_refused() {
    let device = Device::default();
    let pth = std::fs::read(fixture("r3d18_stem_legacy.pth")).expect("fixture");
    let narrow = EncoderConfig::new(1, 16).init(&device);
    assert_eq!(
        kinetics::load_encoder(narrow, &pth).err(),
        Some(KineticsError::Width(16))
    );
    let two = EncoderConfig::new(2, 64).init(&device);
    assert_eq!(
        kinetics::load_encoder(two, &pth).err(),
        Some(KineticsError::InChannels(2))
    );
}

#[test]
fn corrupt_checkpoints_give_errors() {
    let device = Device::default();
    let pth = std::fs::read(fixture("r3d18_stem_layer1.pth")).expect("fixture");

    let err = kinetics::load_encoder(encoder(&device), b"hello").expect_err("text");
    assert!(
        matches!(err, KineticsError::Checkpoint(PthError::NotACheckpoint(_))),
        "{err}"
    );

    // Cut in the middle: the ZIP directory at the end is gone.
    let err = Checkpoint::parse(&pth[..pth.len() / 2]).expect_err("truncated");
    assert!(matches!(err, PthError::Zip(_)), "{err}");

    let legacy = std::fs::read(fixture("r3d18_stem_legacy.pth")).expect("fixture");
    let err = Checkpoint::parse(&legacy[..legacy.len() - 1000]).expect_err("truncated legacy");
    assert!(matches!(err, PthError::Storage { .. }), "{err}");
}

#[test]
fn misshaped_and_unknown_tensors_are_named() {
    let device = Device::default();
    let bad = std::fs::read(fixture("r3d18_bad_shape.pth")).expect("fixture");
    let err = kinetics::load_encoder_partial(encoder(&device), &bad).expect_err("2-D stem");
    assert_eq!(
        err,
        KineticsError::Shape {
            key: "stem.0.weight".into(),
            expected: vec![64, 3, 3, 7, 7],
            got: vec![64, 3, 7, 7]
        }
    );
    assert!(err.to_string().contains("[64, 3, 7, 7]"), "{err}");

    let unknown = std::fs::read(fixture("r3d18_unexpected_key.pth")).expect("fixture");
    let err = kinetics::load_encoder_partial(encoder(&device), &unknown).expect_err("layer5");
    assert_eq!(
        err,
        KineticsError::UnexpectedKey("layer5.0.conv1.0.weight".into())
    );
}

#[test]
fn rgb_encoder_takes_the_stem_as_is() {
    let device = Device::default();
    let pth = std::fs::read(fixture("r3d18_stem_legacy.pth")).expect("fixture");
    let rgb = EncoderConfig::new(3, 64).init(&device);
    let (rgb, _) = kinetics::load_encoder_partial(rgb, &pth).expect("RGB stem loads as is");
    // Three equal channels through the RGB stem equal the torchvision run itself.
    let one = read_f32(&fixture("r3d18_input.f32"));
    let three: Vec<f32> = one.iter().chain(&one).chain(&one).copied().collect();
    let x = Tensor::from_floats(TensorData::new(three, [1, 3, 4, 16, 16]), &device);
    let diff = max_abs_diff(rgb.stem.forward(x), &read_f32(&fixture("r3d18_stem.f32")));
    assert!(diff < TOLERANCE, "RGB stem differs by {diff}");
}

/// The whole encoder against torchvision, on a full random `r3d_18` state dict written by
/// `python3 tools/fixtures/make_r3d18_fixture.py --full DIR` (133 MB, not committed):
/// `PULMOSEG_R3D18_FULL=DIR cargo test --features model --test unet_kinetics -- --ignored`.
#[test]
#[ignore = "needs PULMOSEG_R3D18_FULL (a 133 MB checkpoint made by make_r3d18_fixture.py --full)"]
fn kinetics_full_encoder() {
    let dir = std::path::PathBuf::from(
        std::env::var("PULMOSEG_R3D18_FULL").expect("set PULMOSEG_R3D18_FULL"),
    );
    let device = Device::default();
    for file in ["r3d18_full.pth", "r3d18_full_zip.pth"] {
        let pth = std::fs::read(dir.join(file)).expect("full checkpoint");
        let encoder = kinetics::load_encoder(encoder(&device), &pth).expect("import");
        let features = encoder.forward(input(&dir.join("r3d18_full_input.f32"), &device));
        let stages = [
            ("stem", features.stem),
            ("layer1", features.layer1),
            ("layer2", features.layer2),
            ("layer3", features.layer3),
            ("layer4", features.layer4),
        ];
        for (name, tensor) in stages {
            let diff = max_abs_diff(
                tensor,
                &read_f32(&dir.join(format!("r3d18_full_{name}.f32"))),
            );
            println!("{file} {name}: max |Δ| = {diff:e}");
            assert!(diff < TOLERANCE, "{file} {name} differs by {diff}");
        }
    }
}
