//! The residual block of R3D-18 (torchvision's `BasicBlock` with `Conv3DSimple`).

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig3d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

/// torchvision's initialisation of R3D-18 convolutions: Kaiming normal, fan-out, ReLU gain.
pub(crate) fn encoder_initializer() -> Initializer {
    Initializer::KaimingNormal {
        gain: core::f64::consts::SQRT_2,
        fan_out_only: true,
    }
}

/// BatchNorm of the encoder: eps 1e-5, momentum 0.1 (running = 0.9·running + 0.1·batch).
pub(crate) fn batch_norm(channels: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels)
        .with_epsilon(1e-5)
        .with_momentum(0.1)
        .init(device)
}

/// Configuration of a [`BasicBlock`].
#[derive(Config, Debug)]
pub struct BasicBlockConfig {
    /// Channels of the block's input.
    pub in_channels: usize,
    /// Channels of the block's output.
    pub out_channels: usize,
    /// Stride of the first convolution (and of the downsample), on all three axes.
    #[config(default = 1)]
    pub stride: usize,
}

/// `relu(bn2(conv2(relu(bn1(conv1(x))))) + residual(x))` with 3×3×3 convolutions (padding 1,
/// no bias); the residual is `x` itself, or a strided 1×1×1 convolution and BatchNorm
/// ([`Downsample`]) where the stride is not 1 or the channels change.
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// 3×3×3, `in → out`, stride `stride`; weight `[out, in, 3, 3, 3]`.
    pub conv1: Conv3d,
    /// BatchNorm after `conv1`.
    pub bn1: BatchNorm,
    /// 3×3×3, `out → out`, stride 1; weight `[out, out, 3, 3, 3]`.
    pub conv2: Conv3d,
    /// BatchNorm after `conv2`.
    pub bn2: BatchNorm,
    /// The projection of the residual, where shapes change.
    pub downsample: Option<Downsample>,
}

/// The residual's projection: 1×1×1 convolution with the block's stride, no bias, then
/// BatchNorm.
#[derive(Module, Debug)]
pub struct Downsample {
    /// Weight `[out, in, 1, 1, 1]`.
    pub conv: Conv3d,
    /// BatchNorm after `conv`.
    pub bn: BatchNorm,
}

impl BasicBlockConfig {
    /// Builds the block (R3D-18 initialisation).
    pub fn init(&self, device: &Device) -> BasicBlock {
        let [cin, cout, s] = [self.in_channels, self.out_channels, self.stride];
        let conv3 = |cin: usize, stride: usize| {
            Conv3dConfig::new([cin, cout], [3, 3, 3])
                .with_stride([stride; 3])
                .with_padding(PaddingConfig3d::Explicit(1, 1, 1))
                .with_bias(false)
                .with_initializer(encoder_initializer())
                .init(device)
        };
        let downsample = (s != 1 || cin != cout).then(|| Downsample {
            conv: Conv3dConfig::new([cin, cout], [1, 1, 1])
                .with_stride([s; 3])
                .with_bias(false)
                .with_initializer(encoder_initializer())
                .init(device),
            bn: batch_norm(cout, device),
        });

        BasicBlock {
            conv1: conv3(cin, s),
            bn1: batch_norm(cout, device),
            conv2: conv3(cout, 1),
            bn2: batch_norm(cout, device),
            downsample,
        }
    }
}

impl BasicBlock {
    /// # Shapes
    ///
    /// - `input`: `[batch, in, d, h, w]`
    /// - output: `[batch, out, ceil(d / s), ceil(h / s), ceil(w / s)]` for stride `s`
    pub fn forward(&self, input: Tensor<5>) -> Tensor<5> {
        let residual = match &self.downsample {
            Some(downsample) => downsample
                .bn
                .forward(downsample.conv.forward(input.clone())),
            None => input.clone(),
        };
        let x = relu(self.bn1.forward(self.conv1.forward(input)));
        let x = self.bn2.forward(self.conv2.forward(x));
        relu(x + residual)
    }
}
