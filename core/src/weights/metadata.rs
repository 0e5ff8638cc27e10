//! The JSON metadata of a weights file: what the network is, how its input was prepared,
//! and where its weights came from.

use serde::{Deserialize, Serialize};

use crate::unet::UNetConfig;

/// Everything a weights file says besides the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightsMetadata {
    /// The network's hyper-parameters; the loader builds exactly this network.
    pub network: NetworkSpec,
    /// Names of the output channels, in order (`["background", "infiltrate"]`).
    pub class_names: Vec<String>,
    /// How a CT must be prepared for this network; `None` for weights not trained on CT
    /// (a Kinetics-400 encoder, a test network).
    pub preprocessing: Option<Preprocessing>,
    /// Free-form model card: training data, recipe, hardware, training time, measured
    /// metrics. Shown to the user as is.
    #[serde(default)]
    pub model_card: serde_json::Value,
}

/// The network's hyper-parameters, as [`UNetConfig`] has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// Base width `w`.
    pub width: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Output classes.
    pub classes: usize,
}

/// How a volume becomes the network's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    /// HU values are clipped to `[low, high]` (Bressem et al.: `[-2000, 500]`).
    pub hu_window: [f32; 2],
    /// Whole-volume resize or sliding window.
    pub inference: InferenceMode,
    /// Coordinate convention of resizes: `"half-pixel"` (voxel centres at `(i + 0.5)·scale`).
    pub resize: String,
    /// Orientation the volume is brought to before anything else: `"RAS"`.
    pub orientation: String,
}

/// How the network sees a volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InferenceMode {
    /// The whole volume is resized to `input_dims` (`[depth, height, width]`), the
    /// prediction resized back (the paper's approach: `[20, 256, 256]`).
    WholeVolume {
        /// `[depth, height, width]` of the network input.
        input_dims: [usize; 3],
    },
    /// The volume is resampled to `spacing_mm` and covered by overlapping patches.
    SlidingWindow {
        /// Voxel spacing in mm, `[depth, height, width]` axes.
        spacing_mm: [f64; 3],
        /// `[depth, height, width]` of one patch.
        patch_dims: [usize; 3],
        /// Fraction of a patch shared with its neighbour, in `[0, 1)`.
        overlap: f64,
    },
}

impl From<&UNetConfig> for NetworkSpec {
    fn from(config: &UNetConfig) -> Self {
        Self {
            width: config.width,
            in_channels: config.in_channels,
            classes: config.classes,
        }
    }
}

impl From<NetworkSpec> for UNetConfig {
    fn from(spec: NetworkSpec) -> Self {
        UNetConfig::new()
            .with_width(spec.width)
            .with_in_channels(spec.in_channels)
            .with_classes(spec.classes)
    }
}

impl WeightsMetadata {
    /// Metadata for `config` with the two Pulmoseg classes and nothing else filled in.
    pub fn new(config: &UNetConfig) -> Self {
        Self {
            network: config.into(),
            class_names: vec!["background".into(), "infiltrate".into()],
            preprocessing: None,
            model_card: serde_json::Value::Null,
        }
    }
}
