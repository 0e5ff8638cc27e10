//! The whole U-Net against its PyTorch reference (`tools/fixtures/unet_reference.py`).
//!
//! The fixture is a width-4 network with seeded random weights (f16 in the file, and the
//! reference computed on the same f16-rounded values) and a random input of 9 × 30 × 35
//! voxels, odd enough that up1, up2 and up3 must resize their transposed-convolution output.

#![cfg(feature = "model")]

mod common;

use burn::tensor::{Device, Tensor, TensorData};
use common::fixture;
use pulmoseg_core::unet::{UNetConfig, UNetError};
use pulmoseg_core::weights;

fn read_f32(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn logits_match_pytorch() {
    let device = Device::default();
    let bytes = std::fs::read(fixture("r3d18_unet_w4.pulmoseg")).expect("fixture");
    let (model, metadata) = weights::load(&bytes, &device).expect("weights load");
    assert_eq!(metadata.network.width, 4);

    let x = Tensor::from_floats(
        TensorData::new(read_f32("r3d18_unet_w4_input.f32"), [1, 1, 9, 30, 35]),
        &device,
    );
    let logits = model.forward(x).expect("forward");
    assert_eq!(logits.dims(), [1, 2, 9, 30, 35]);

    let got: Vec<f32> = logits.into_data().try_into_vec_as().expect("f32");
    let expected = read_f32("r3d18_unet_w4_logits.f32");
    let diff = got
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let spread = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    println!("max |Δ| logits = {diff:e} (max |logit| {spread})");
    assert!(spread > 0.1, "reference logits are degenerate");
    assert!(diff < 1e-4, "logits differ by {diff}");
}

#[test]
fn parameter_counts_match_pytorch() {
    // sum(p.numel() for p in UNet(w).parameters()) of tools/fixtures/unet_reference.py.
    let device = Device::default();
    for (width, expected) in [(4, 219_166), (16, 3_489_778), (64, 55_769_026)] {
        let model = UNetConfig::new()
            .with_width(width)
            .init(&device)
            .expect("valid config");
        assert_eq!(model.num_trainable_params(), expected, "width {width}");
    }
}

#[test]
fn output_has_the_input_size_for_odd_and_minimal_inputs() {
    let device = Device::default();
    let model = UNetConfig::new()
        .with_width(2)
        .init(&device)
        .expect("valid config");
    for dims in [[5, 9, 9], [7, 13, 22], [6, 16, 17]] {
        let [d, h, w] = dims;
        let x = Tensor::<5>::zeros([2, 1, d, h, w], &device);
        let logits = model.forward(x).expect("forward");
        assert_eq!(logits.dims(), [2, 2, d, h, w], "input {dims:?}");
    }
    let err = model
        .forward(Tensor::<5>::zeros([1, 1, 4, 16, 16], &device))
        .expect_err("too small");
    assert_eq!(
        err,
        UNetError::InputTooSmall {
            got: [4, 16, 16],
            minimum: [5, 9, 9]
        }
    );
}
