//! R3D-18 (Tran et al. 2018) without its classifier: the U-Net's encoder.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::nn::{BatchNorm, PaddingConfig3d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::unet::basic_block::{batch_norm, encoder_initializer, BasicBlock, BasicBlockConfig};

/// Configuration of the [`Encoder`].
#[derive(Config, Debug)]
pub struct EncoderConfig {
    /// Channels of the input (1 for CT).
    pub in_channels: usize,
    /// Base width `w` (64 in R3D-18).
    pub width: usize,
}

/// The stem: a `(3, 7, 7)` convolution with stride `(1, 2, 2)` and padding `(1, 3, 3)`, no
/// bias, then BatchNorm and ReLU; no pooling.
#[derive(Module, Debug)]
pub struct Stem {
    /// Weight `[w, in_channels, 3, 7, 7]`.
    pub conv: Conv3d,
    /// BatchNorm after `conv`.
    pub bn: BatchNorm,
}

/// The stem and four stages of two [`BasicBlock`]s (`w, 2w, 4w, 8w` channels; the first
/// block of layer2–layer4 has stride 2 on all axes).
#[derive(Module, Debug)]
pub struct Encoder {
    /// Stem.
    pub stem: Stem,
    /// Two blocks, `w`, stride 1.
    pub layer1: Vec<BasicBlock>,
    /// Two blocks, `2w`, first stride 2.
    pub layer2: Vec<BasicBlock>,
    /// Two blocks, `4w`, first stride 2.
    pub layer3: Vec<BasicBlock>,
    /// Two blocks, `8w`, first stride 2.
    pub layer4: Vec<BasicBlock>,
}

/// Every stage's output, for an input of `[batch, c, d, h, w]` (with `⌈·⌉` rounding up).
#[derive(Debug, Clone)]
pub struct EncoderFeatures {
    /// `[batch, w, d, ⌈h/2⌉, ⌈w/2⌉]`.
    pub stem: Tensor<5>,
    /// `[batch, w, d, ⌈h/2⌉, ⌈w/2⌉]`.
    pub layer1: Tensor<5>,
    /// `[batch, 2w, ⌈d/2⌉, ⌈h/4⌉, ⌈w/4⌉]`.
    pub layer2: Tensor<5>,
    /// `[batch, 4w, ⌈d/4⌉, ⌈h/8⌉, ⌈w/8⌉]`.
    pub layer3: Tensor<5>,
    /// `[batch, 8w, ⌈d/8⌉, ⌈h/16⌉, ⌈w/16⌉]`.
    pub layer4: Tensor<5>,
}

impl EncoderConfig {
    /// Builds the encoder (torchvision's R3D-18 initialisation).
    pub fn init(&self, device: &Device) -> Encoder {
        let w = self.width;
        let stage = |cin: usize, cout: usize, stride: usize| {
            vec![
                BasicBlockConfig::new(cin, cout)
                    .with_stride(stride)
                    .init(device),
                BasicBlockConfig::new(cout, cout).init(device),
            ]
        };

        Encoder {
            stem: Stem {
                conv: Conv3dConfig::new([self.in_channels, w], [3, 7, 7])
                    .with_stride([1, 2, 2])
                    .with_padding(PaddingConfig3d::Explicit(1, 3, 3))
                    .with_bias(false)
                    .with_initializer(encoder_initializer())
                    .init(device),
                bn: batch_norm(w, device),
            },
            layer1: stage(w, w, 1),
            layer2: stage(w, 2 * w, 2),
            layer3: stage(2 * w, 4 * w, 2),
            layer4: stage(4 * w, 8 * w, 2),
        }
    }
}

impl Stem {
    /// `[batch, c, d, h, w]` → `[batch, w, d, ⌈h/2⌉, ⌈w/2⌉]`.
    pub fn forward(&self, input: Tensor<5>) -> Tensor<5> {
        relu(self.bn.forward(self.conv.forward(input)))
    }
}

impl Encoder {
    /// All stage outputs; see [`EncoderFeatures`] for their shapes.
    pub fn forward(&self, input: Tensor<5>) -> EncoderFeatures {
        let stem = self.stem.forward(input);
        let layer1 = run_stage(&self.layer1, stem.clone());
        let layer2 = run_stage(&self.layer2, layer1.clone());
        let layer3 = run_stage(&self.layer3, layer2.clone());
        let layer4 = run_stage(&self.layer4, layer3.clone());
        EncoderFeatures {
            stem,
            layer1,
            layer2,
            layer3,
            layer4,
        }
    }
}

fn run_stage(blocks: &[BasicBlock], input: Tensor<5>) -> Tensor<5> {
    blocks.iter().fold(input, |x, block| block.forward(x))
}
