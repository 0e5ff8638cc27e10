//! Kinetics-400 weights for the encoder: torchvision's `r3d_18` state dict
//! (`r3d_18-b3b3357e.pth`) read from bytes and put into [`Encoder`].
//!
//! torchvision names the stem `stem.0` (convolution) and `stem.1` (BatchNorm), a block's
//! layers `conv1.0`/`conv1.1`/`conv2.0`/`conv2.1` and its projection `downsample.0`/`.1`;
//! BatchNorm's `weight`/`bias` are burn's `gamma`/`beta`. The classifier (`fc.*`) and
//! `num_batches_tracked` are not part of the encoder and are skipped.
//!
//! The stem's RGB kernel `[64, 3, 3, 7, 7]` is summed over its input-channel axis for a
//! one-channel network: convolving three equal channels (a CT copied into R, G and B, as the
//! paper does) with the RGB kernels equals convolving the single channel with their sum.

pub mod pth;

use std::collections::BTreeMap;

use crate::kinetics::pth::{Checkpoint, PthError};
use crate::unet::encoder::Encoder;
use crate::unet::UNet;
use crate::weights::tensors::{self, NamedTensor, TensorMismatch};

/// Base width of torchvision's R3D-18.
pub const KINETICS_WIDTH: usize = 64;

/// Why Kinetics-400 weights could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KineticsError {
    /// The file is not a readable checkpoint.
    #[error(transparent)]
    Checkpoint(#[from] PthError),
    /// The encoder is not R3D-18's width.
    #[error("Kinetics-400 weights need encoder width {KINETICS_WIDTH}, the network has {0}")]
    Width(usize),
    /// The encoder's input channels are neither 1 (summed stem) nor 3 (RGB stem).
    #[error("Kinetics-400 weights fit 1 or 3 input channels, the network has {0}")]
    InChannels(usize),
    /// A key the encoder needs is absent.
    #[error("checkpoint lacks {key} (expected shape {expected:?})")]
    MissingKey {
        /// torchvision's key.
        key: String,
        /// The shape it must have in the checkpoint.
        expected: Vec<usize>,
    },
    /// A key has the wrong shape.
    #[error("checkpoint tensor {key} has shape {got:?}, R3D-18 has {expected:?}")]
    Shape {
        /// torchvision's key.
        key: String,
        /// R3D-18's shape.
        expected: Vec<usize>,
        /// The checkpoint's shape.
        got: Vec<usize>,
    },
    /// A key that R3D-18 does not have.
    #[error("checkpoint has {0}, which is not part of R3D-18")]
    UnexpectedKey(String),
    /// Internal: the converted tensors did not fit (a naming bug, not a file problem).
    #[error("converted Kinetics tensors do not fit the encoder: {0}")]
    Apply(#[from] TensorMismatch),
}

/// torchvision's key of one encoder tensor (`layer1.0.bn1.gamma` → `layer1.0.conv1.1.weight`).
pub fn torchvision_key(encoder_name: &str) -> String {
    let parts: Vec<&str> = encoder_name.split('.').collect();
    fn leaf(name: &str) -> &str {
        match name {
            "gamma" => "weight",
            "beta" => "bias",
            other => other,
        }
    }
    let module = match parts.as_slice() {
        ["stem", "conv", ..] => "stem.0".to_string(),
        ["stem", "bn", ..] => "stem.1".to_string(),
        [layer, block, "conv1", ..] => format!("{layer}.{block}.conv1.0"),
        [layer, block, "bn1", ..] => format!("{layer}.{block}.conv1.1"),
        [layer, block, "conv2", ..] => format!("{layer}.{block}.conv2.0"),
        [layer, block, "bn2", ..] => format!("{layer}.{block}.conv2.1"),
        [layer, block, "downsample", "conv", ..] => format!("{layer}.{block}.downsample.0"),
        [layer, block, "downsample", "bn", ..] => format!("{layer}.{block}.downsample.1"),
        _ => return encoder_name.to_string(),
    };
    format!(
        "{module}.{}",
        leaf(parts.last().copied().unwrap_or_default())
    )
}

/// Loads every encoder tensor from a torchvision `r3d_18` checkpoint.
///
/// The encoder must have width 64 and 1 or 3 input channels; every key of R3D-18 must be
/// present with its shape (`stem.0.weight` `[64, 3, 3, 7, 7]`, summed to `[64, 1, 3, 7, 7]`
/// for one channel).
pub fn load_encoder(encoder: Encoder, pth: &[u8]) -> Result<Encoder, KineticsError> {
    load(encoder, pth, true).map(|(encoder, _)| encoder)
}

/// Like [`load_encoder`], but keys absent from the checkpoint leave the encoder's tensors as
/// they are; returns the encoder names of the tensors loaded.
pub fn load_encoder_partial(
    encoder: Encoder,
    pth: &[u8],
) -> Result<(Encoder, Vec<String>), KineticsError> {
    load(encoder, pth, false)
}

/// [`load_encoder`] on a U-Net's encoder.
pub fn load_unet_encoder(mut unet: UNet, pth: &[u8]) -> Result<UNet, KineticsError> {
    unet.encoder = load_encoder(unet.encoder, pth)?;
    Ok(unet)
}

fn load(
    encoder: Encoder,
    pth: &[u8],
    require_all: bool,
) -> Result<(Encoder, Vec<String>), KineticsError> {
    let [width, in_channels, ..] = encoder.stem.conv.weight.dims();
    if width != KINETICS_WIDTH {
        return Err(KineticsError::Width(width));
    }
    if in_channels != 1 && in_channels != 3 {
        return Err(KineticsError::InChannels(in_channels));
    }

    let checkpoint = Checkpoint::parse(pth)?;
    let expected = tensors::shapes(&encoder);
    let by_key: BTreeMap<String, &String> = expected
        .keys()
        .map(|name| (torchvision_key(name), name))
        .collect();
    if let Some(key) = checkpoint.tensors.keys().find(|key| {
        !by_key.contains_key(*key)
            && !key.starts_with("fc.")
            && !key.ends_with("num_batches_tracked")
    }) {
        return Err(KineticsError::UnexpectedKey(key.clone()));
    }

    let mut source = BTreeMap::new();
    for (key, name) in &by_key {
        let shape = &expected[*name];
        let is_stem = key == "stem.0.weight";
        // The checkpoint's stem is always RGB.
        let file_shape: Vec<usize> = match is_stem {
            true => [shape[0], 3, shape[2], shape[3], shape[4]].to_vec(),
            false => shape.clone(),
        };
        let Some(tensor) = checkpoint.tensors.get(key) else {
            if require_all {
                return Err(KineticsError::MissingKey {
                    key: key.clone(),
                    expected: file_shape,
                });
            }
            continue;
        };
        if tensor.shape != file_shape {
            return Err(KineticsError::Shape {
                key: key.clone(),
                expected: file_shape,
                got: tensor.shape.clone(),
            });
        }
        let mut values = checkpoint.read_f32(key, tensor)?;
        if is_stem && in_channels == 1 {
            values = sum_input_channels(&values, &file_shape);
        }
        source.insert(
            (*name).clone(),
            NamedTensor {
                shape: shape.clone(),
                values,
            },
        );
    }

    let loaded = source.keys().cloned().collect();
    let encoder = tensors::apply(encoder, &source, require_all)?;
    Ok((encoder, loaded))
}

/// `[out, in, k0, k1, k2]` → `[out, 1, k0, k1, k2]` by summing over `in`.
fn sum_input_channels(values: &[f32], shape: &[usize]) -> Vec<f32> {
    let (out, cin) = (shape[0], shape[1]);
    let kernel: usize = shape[2..].iter().product();
    let mut summed = vec![0.0f32; out * kernel];
    for o in 0..out {
        for c in 0..cin {
            let src = &values[(o * cin + c) * kernel..(o * cin + c + 1) * kernel];
            for (dst, v) in summed[o * kernel..(o + 1) * kernel].iter_mut().zip(src) {
                *dst += v;
            }
        }
    }
    summed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_torchvision() {
        // Keys as printed by torchvision.models.video.r3d_18().state_dict().keys().
        assert_eq!(torchvision_key("stem.conv.weight"), "stem.0.weight");
        assert_eq!(torchvision_key("stem.bn.gamma"), "stem.1.weight");
        assert_eq!(torchvision_key("stem.bn.running_var"), "stem.1.running_var");
        assert_eq!(
            torchvision_key("layer1.0.conv1.weight"),
            "layer1.0.conv1.0.weight"
        );
        assert_eq!(
            torchvision_key("layer3.1.bn2.beta"),
            "layer3.1.conv2.1.bias"
        );
        assert_eq!(
            torchvision_key("layer2.0.downsample.conv.weight"),
            "layer2.0.downsample.0.weight"
        );
        assert_eq!(
            torchvision_key("layer4.0.downsample.bn.running_mean"),
            "layer4.0.downsample.1.running_mean"
        );
    }

    #[test]
    fn stem_sum_adds_the_rgb_kernels() {
        // Two output channels, three input channels, 1×1×2 kernels: values 0..12.
        let values: Vec<f32> = (0..12).map(|v| v as f32).collect();
        // o = 0: [0,1] + [2,3] + [4,5] = [6, 9]; o = 1: [6,7] + [8,9] + [10,11] = [24, 27].
        assert_eq!(
            sum_input_channels(&values, &[2, 3, 1, 1, 2]),
            vec![6.0, 9.0, 24.0, 27.0]
        );
    }
}
