//! The final block: one residual block and a 1×1×1 convolution to class logits.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::unet::bridge::conv3_bias;

/// Configuration of the [`Head`].
#[derive(Config, Debug)]
pub struct HeadConfig {
    /// Channels of the input (`w / 2`).
    pub channels: usize,
    /// Number of classes.
    pub classes: usize,
}

/// `out(relu(conv2(relu(conv1(x))) + x))`: a residual block without dilation (3×3×3,
/// padding 1, bias) and a 1×1×1 convolution "for pooling of the feature maps".
#[derive(Module, Debug)]
pub struct Head {
    /// Weight `[c, c, 3, 3, 3]`.
    pub conv1: Conv3d,
    /// Weight `[c, c, 3, 3, 3]`.
    pub conv2: Conv3d,
    /// Weight `[classes, c, 1, 1, 1]`, bias `[classes]`.
    pub out: Conv3d,
}

impl HeadConfig {
    /// Builds the head.
    pub fn init(&self, device: &Device) -> Head {
        let c = self.channels;
        Head {
            conv1: conv3_bias(c, c, device),
            conv2: conv3_bias(c, c, device),
            out: Conv3dConfig::new([c, self.classes], [1, 1, 1]).init(device),
        }
    }
}

impl Head {
    /// `[batch, c, d, h, w]` → logits `[batch, classes, d, h, w]`.
    pub fn forward(&self, input: Tensor<5>) -> Tensor<5> {
        let x = self.conv2.forward(relu(self.conv1.forward(input.clone())));
        self.out.forward(relu(x + input))
    }
}
