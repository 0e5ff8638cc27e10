//! The 3-D U-Net of Bressem et al. 2021: an R3D-18 encoder (Tran et al. 2018, the network
//! torchvision publishes with Kinetics-400 weights), a two-convolution bridge, four up blocks
//! that concatenate instance-normalised skips, and a residual head giving two-class logits.
//!
//! The paper (sections 4.3–4.4, Fig. 2) describes the bridge and decoder in words; the layer
//! docs of each file fix them exactly. One file per layer: [`config`] (the network's
//! hyper-parameters and size rules), [`basic_block`], [`encoder`],
//! [`bridge`], [`up_block`], [`head`], and [`resize`] (the nearest-neighbour 3-D resize the
//! decoder needs where a transposed convolution overshoots an odd skip size).
//!
//! Tensors are `[batch, channels, depth, height, width]`. A [`crate::Volume`] of
//! `dims = [ni, nj, nk]` maps to `depth = nk`, `height = nj`, `width = ni`, so its flat voxel
//! order (`i` fastest) is exactly the row-major order of one `[depth, height, width]` channel.

pub mod basic_block;
pub mod bridge;
pub mod config;
pub mod encoder;
pub mod head;
pub mod resize;
pub mod up_block;

pub use config::UNetConfig;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};

use crate::unet::bridge::Bridge;
use crate::unet::encoder::Encoder;
use crate::unet::head::Head;
use crate::unet::up_block::UpBlock;

/// Why a network could not be built or run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UNetError {
    /// The base width must be even (up4 has `width / 2` channels), at least 2 and at most
    /// [`MAX_WIDTH`](config::MAX_WIDTH).
    #[error("U-Net width {0} is invalid: it must be even, at least 2 and at most 256")]
    InvalidWidth(usize),
    /// Input channels and classes must be at least 1 and at most [`MAX_COUNT`](config::MAX_COUNT).
    #[error("U-Net {what} is {value}: it must be at least 1 and at most 64")]
    ZeroCount {
        /// Which count (`in_channels` or `classes`).
        what: &'static str,
        /// The value given.
        value: usize,
    },
    /// The input tensor has the wrong number of channels.
    #[error("U-Net input has {got} channels, the network expects {expected}")]
    InputChannels {
        /// Channels of the network's first convolution.
        expected: usize,
        /// Channels of the tensor given.
        got: usize,
    },
    /// The input is smaller than the smallest size the network handles.
    #[error(
        "U-Net input of depth × height × width {got:?} is too small: the minimum is {minimum:?} \
         (the deepest skip, layer3, needs at least 2 voxels on every axis)"
    )]
    InputTooSmall {
        /// `[depth, height, width]` of the input.
        got: [usize; 3],
        /// [`UNetConfig::MIN_INPUT_DIMS`].
        minimum: [usize; 3],
    },
    /// The batch is empty.
    #[error("U-Net input batch is empty")]
    EmptyBatch,
}

/// The segmentation network. Build it with [`UNetConfig::init`].
///
/// Parameter counts (PyTorch's `sum(p.numel())` of the same network, BatchNorm running
/// statistics excluded): 55 769 026 at width 64, 3 489 778 at width 16.
#[derive(Module, Debug)]
pub struct UNet {
    /// R3D-18: stem and layer1–layer4.
    pub encoder: Encoder,
    /// Two 3×3×3 convolutions on layer4's output, `8w → 8w`.
    pub bridge: Bridge,
    /// `8w → 4w`, skip layer3.
    pub up1: UpBlock,
    /// `4w → 2w`, skip layer2.
    pub up2: UpBlock,
    /// `2w → w`, skip layer1.
    pub up3: UpBlock,
    /// `w → w/2`, in-plane only, skip the network's input.
    pub up4: UpBlock,
    /// Residual block and 1×1×1 classifier, `w/2 → classes`.
    pub head: Head,
    /// Channels of the input.
    pub in_channels: usize,
}

impl UNet {
    /// Class logits for a batch of volumes.
    ///
    /// # Shapes
    ///
    /// - `input`: `[batch, in_channels, depth, height, width]`, every axis at least
    ///   [`UNetConfig::MIN_INPUT_DIMS`]; any size above it works (odd sizes included).
    /// - output: `[batch, classes, depth, height, width]`, the input's spatial size.
    ///
    /// In training (an autodiff device) BatchNorm uses batch statistics and updates its
    /// running statistics; otherwise it uses the running statistics.
    pub fn forward(&self, input: Tensor<5>) -> Result<Tensor<5>, UNetError> {
        let [batch, channels, depth, height, width] = input.dims();
        check_input(self.in_channels, [batch, channels, depth, height, width])?;

        let features = self.encoder.forward(input.clone());
        let x = self.bridge.forward(features.layer4);
        let x = self.up1.forward(x, features.layer3);
        let x = self.up2.forward(x, features.layer2);
        let x = self.up3.forward(x, features.layer1);
        let x = self.up4.forward(x, input);
        Ok(self.head.forward(x))
    }

    /// Number of trainable parameters (BatchNorm running statistics are buffers, not
    /// parameters, and are not counted — the convention of PyTorch's `parameters()`).
    pub fn num_trainable_params(&self) -> usize {
        count_trainable(self)
    }

    /// The configuration this network was built from, read off its tensor shapes.
    pub fn config(&self) -> UNetConfig {
        let [width, ..] = self.encoder.stem.conv.weight.dims();
        let [classes, ..] = self.head.out.weight.dims();
        UNetConfig::new()
            .with_width(width)
            .with_in_channels(self.in_channels)
            .with_classes(classes)
    }

    /// The device the parameters live on.
    pub fn device(&self) -> Option<Device> {
        self.devices().into_iter().next()
    }
}

/// Validates a `[batch, channels, depth, height, width]` input shape against the network.
fn check_input(in_channels: usize, dims: [usize; 5]) -> Result<(), UNetError> {
    let [batch, channels, depth, height, width] = dims;
    if batch == 0 {
        return Err(UNetError::EmptyBatch);
    }
    if channels != in_channels {
        return Err(UNetError::InputChannels {
            expected: in_channels,
            got: channels,
        });
    }
    let got = [depth, height, width];
    let minimum = UNetConfig::MIN_INPUT_DIMS;
    if got.iter().zip(minimum.iter()).any(|(g, m)| g < m) {
        return Err(UNetError::InputTooSmall { got, minimum });
    }
    Ok(())
}

/// Counts float parameters of a module, skipping tensors named `running_mean` / `running_var`
/// (burn's BatchNorm buffers, which its visitor reports like parameters).
pub(crate) fn count_trainable<M: Module>(module: &M) -> usize {
    struct Counter {
        path: Vec<String>,
        total: usize,
    }
    impl ModuleVisitor for Counter {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let is_buffer = matches!(
                self.path.last().map(String::as_str),
                Some("running_mean" | "running_var")
            );
            if !is_buffer {
                self.total += param.lazy_shape().num_elements();
            }
        }
    }
    let mut counter = Counter {
        path: Vec::new(),
        total: 0,
    };
    module.visit(&mut counter);
    counter.total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_checks_name_the_numbers() {
        assert_eq!(check_input(1, [1, 1, 20, 256, 256]), Ok(()));
        assert_eq!(check_input(1, [2, 1, 5, 9, 9]), Ok(()));
        assert_eq!(
            check_input(1, [1, 1, 4, 9, 9]),
            Err(UNetError::InputTooSmall {
                got: [4, 9, 9],
                minimum: [5, 9, 9]
            })
        );
        assert_eq!(
            check_input(1, [1, 1, 5, 9, 8]),
            Err(UNetError::InputTooSmall {
                got: [5, 9, 8],
                minimum: [5, 9, 9]
            })
        );
        assert_eq!(
            check_input(1, [1, 3, 8, 32, 32]),
            Err(UNetError::InputChannels {
                expected: 1,
                got: 3
            })
        );
        assert_eq!(
            check_input(1, [0, 1, 8, 32, 32]),
            Err(UNetError::EmptyBatch)
        );
        let message = UNetError::InputTooSmall {
            got: [4, 9, 9],
            minimum: [5, 9, 9],
        }
        .to_string();
        assert!(
            message.contains("[4, 9, 9]") && message.contains("[5, 9, 9]"),
            "{message}"
        );
    }
}
