//! The bridge: "an additional 3D convolutional layer" between encoder and decoder.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::nn::PaddingConfig3d;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

/// Configuration of the [`Bridge`].
#[derive(Config, Debug)]
pub struct BridgeConfig {
    /// Channels in and out (`8w`).
    pub channels: usize,
}

/// Two 3×3×3 convolutions (padding 1, bias), each followed by ReLU; the size is unchanged.
#[derive(Module, Debug)]
pub struct Bridge {
    /// Weight `[c, c, 3, 3, 3]`, bias `[c]`.
    pub conv1: Conv3d,
    /// Weight `[c, c, 3, 3, 3]`, bias `[c]`.
    pub conv2: Conv3d,
}

/// A 3×3×3 convolution with padding 1 and bias, PyTorch's default initialisation.
pub(crate) fn conv3_bias(cin: usize, cout: usize, device: &Device) -> Conv3d {
    Conv3dConfig::new([cin, cout], [3, 3, 3])
        .with_padding(PaddingConfig3d::Explicit(1, 1, 1))
        .init(device)
}

impl BridgeConfig {
    /// Builds the bridge.
    pub fn init(&self, device: &Device) -> Bridge {
        let c = self.channels;
        Bridge {
            conv1: conv3_bias(c, c, device),
            conv2: conv3_bias(c, c, device),
        }
    }
}

impl Bridge {
    /// `[batch, c, d, h, w]` → `[batch, c, d, h, w]`.
    pub fn forward(&self, input: Tensor<5>) -> Tensor<5> {
        relu(self.conv2.forward(relu(self.conv1.forward(input))))
    }
}
