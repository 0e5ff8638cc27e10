//! One decoder stage: upsample, concatenate the instance-normalised skip, two convolutions.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv3d, ConvTranspose3d, ConvTranspose3dConfig};
use burn::nn::{InstanceNorm, InstanceNormConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::unet::bridge::conv3_bias;
use crate::unet::resize::resize_nearest;

/// Configuration of an [`UpBlock`].
#[derive(Config, Debug)]
pub struct UpBlockConfig {
    /// Channels of the block's input.
    pub in_channels: usize,
    /// Channels of the transposed convolution's output and of the block's output.
    pub out_channels: usize,
    /// Channels of the skip tensor.
    pub skip_channels: usize,
    /// Kernel size and stride of the transposed convolution, `[depth, height, width]`.
    pub stride: [usize; 3],
}

/// `relu(conv2(relu(conv1(cat[resize(up(x)), instance_norm(skip)]))))`.
///
/// The transposed convolution has kernel = stride (no overlap); where its output is larger
/// than the skip (an odd skip size: depth 3 → 6 against 5), it is resized to the skip's size
/// by nearest neighbour. The skip is normalised per sample and channel (eps 1e-5, no learnable
/// affine, PyTorch's `InstanceNorm3d` default) before the concatenation.
#[derive(Module, Debug)]
pub struct UpBlock {
    /// Weight `[in, out, sd, sh, sw]`, bias `[out]`.
    pub up: ConvTranspose3d,
    /// Instance normalisation of the skip, no parameters.
    pub skip_norm: InstanceNorm,
    /// 3×3×3, `out + skip → out`.
    pub conv1: Conv3d,
    /// 3×3×3, `out → out`.
    pub conv2: Conv3d,
}

impl UpBlockConfig {
    /// Builds the block (PyTorch's default initialisation).
    pub fn init(&self, device: &Device) -> UpBlock {
        let [cin, cout, cskip] = [self.in_channels, self.out_channels, self.skip_channels];
        UpBlock {
            up: ConvTranspose3dConfig::new([cin, cout], self.stride)
                .with_stride(self.stride)
                .init(device),
            skip_norm: InstanceNormConfig::new(cskip)
                .with_epsilon(1e-5)
                .with_affine(false)
                .init(device),
            conv1: conv3_bias(cout + cskip, cout, device),
            conv2: conv3_bias(cout, cout, device),
        }
    }
}

impl UpBlock {
    /// # Shapes
    ///
    /// - `input`: `[batch, in, d, h, w]`
    /// - `skip`: `[batch, skip, D, H, W]`, where `(D, H, W)` is at most `stride · (d, h, w)`
    /// - output: `[batch, out, D, H, W]`
    pub fn forward(&self, input: Tensor<5>, skip: Tensor<5>) -> Tensor<5> {
        let [_, _, d, h, w] = skip.dims();
        let x = resize_nearest(self.up.forward(input), [d, h, w]);
        let x = Tensor::cat(vec![x, self.skip_norm.forward(skip)], 1);
        relu(self.conv2.forward(relu(self.conv1.forward(x))))
    }
}
