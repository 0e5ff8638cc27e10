//! The network's hyper-parameters and the input size rules.

use burn::config::Config;
use burn::tensor::Device;

use crate::unet::bridge::BridgeConfig;
use crate::unet::encoder::EncoderConfig;
use crate::unet::head::HeadConfig;
use crate::unet::up_block::UpBlockConfig;
use crate::unet::{UNet, UNetError};

/// Configuration of the [`UNet`]; build the network with [`UNetConfig::init`].
///
/// With base width `w`, the encoder stages have `w, w, 2w, 4w, 8w` channels, the bridge `8w`,
/// the up blocks `4w, 2w, w, w/2`.
#[derive(Config, Debug, PartialEq, Eq)]
pub struct UNetConfig {
    /// Base width `w` of the encoder: 64 is R3D-18 (and required for Kinetics-400 weights),
    /// 16 a small variant. Must be even.
    #[config(default = 64)]
    pub width: usize,
    /// Channels of the input volume: 1 for CT (the Kinetics stem is summed over RGB).
    #[config(default = 1)]
    pub in_channels: usize,
    /// Number of output classes: 2 (background, infiltrate).
    #[config(default = 2)]
    pub classes: usize,
}

/// Widest network accepted: four times the paper's 64 (about 900 M parameters), so a corrupt
/// weights file cannot ask for terabytes.
pub const MAX_WIDTH: usize = 256;

/// Most input channels or classes accepted, for the same reason.
pub const MAX_COUNT: usize = 64;

impl UNetConfig {
    /// The smallest `[depth, height, width]` input: the deepest skip (layer3, which has
    /// `ceil(depth / 4) × ceil(height / 8) × ceil(width / 8)` voxels) then has at least two
    /// voxels on every axis, so its instance normalisation is not forced to zero.
    pub const MIN_INPUT_DIMS: [usize; 3] = [5, 9, 9];

    /// Checks the numbers: `width` even and at least 2, `in_channels` and `classes` at least 1.
    pub fn validate(&self) -> Result<(), UNetError> {
        if self.width < 2 || self.width % 2 != 0 || self.width > MAX_WIDTH {
            return Err(UNetError::InvalidWidth(self.width));
        }
        if self.in_channels == 0 || self.in_channels > MAX_COUNT {
            return Err(UNetError::ZeroCount {
                what: "in_channels",
                value: self.in_channels,
            });
        }
        if self.classes == 0 || self.classes > MAX_COUNT {
            return Err(UNetError::ZeroCount {
                what: "classes",
                value: self.classes,
            });
        }
        Ok(())
    }

    /// Builds the network with freshly initialised weights on `device`.
    ///
    /// Encoder convolutions use torchvision's R3D-18 initialisation (Kaiming normal, fan-out,
    /// ReLU gain; BatchNorm γ = 1, β = 0); the decoder uses PyTorch's default (Kaiming uniform
    /// with bound `1/sqrt(fan_in)`).
    pub fn init(&self, device: &Device) -> Result<UNet, UNetError> {
        self.validate()?;
        let w = self.width;

        Ok(UNet {
            encoder: EncoderConfig::new(self.in_channels, w).init(device),
            bridge: BridgeConfig::new(8 * w).init(device),
            up1: UpBlockConfig::new(8 * w, 4 * w, 4 * w, [2, 2, 2]).init(device),
            up2: UpBlockConfig::new(4 * w, 2 * w, 2 * w, [2, 2, 2]).init(device),
            up3: UpBlockConfig::new(2 * w, w, w, [2, 2, 2]).init(device),
            up4: UpBlockConfig::new(w, w / 2, self.in_channels, [1, 2, 2]).init(device),
            head: HeadConfig::new(w / 2, self.classes).init(device),
            in_channels: self.in_channels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_numbers_are_refused() {
        assert_eq!(UNetConfig::new().validate(), Ok(()));
        assert_eq!(
            UNetConfig::new().with_width(15).validate(),
            Err(UNetError::InvalidWidth(15))
        );
        assert_eq!(
            UNetConfig::new().with_width(0).validate(),
            Err(UNetError::InvalidWidth(0))
        );
        assert_eq!(
            UNetConfig::new().with_classes(0).validate(),
            Err(UNetError::ZeroCount {
                what: "classes",
                value: 0
            })
        );
        assert_eq!(
            UNetConfig::new().with_in_channels(0).validate(),
            Err(UNetError::ZeroCount {
                what: "in_channels",
                value: 0
            })
        );
    }
}
