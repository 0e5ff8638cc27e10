//! The JSON metadata of a weights file: what the network is, how its input was prepared,
//! and where its weights came from.

use serde::{Deserialize, Serialize};

pub use crate::inference::{InferenceMode, Preprocessing};
use crate::unet::UNetConfig;

/// Everything a weights file says besides the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightsMetadata {
    /// Name of the model, shown with every result it makes (`"pulmoseg-r3d18-unet-w16"`).
    #[serde(default)]
    pub name: String,
    /// Version of the model, e.g. the date it was trained and its recipe's revision.
    #[serde(default)]
    pub version: String,
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
            name: format!("pulmoseg-r3d18-unet-w{}", config.width),
            version: "untrained".into(),
            network: config.into(),
            class_names: vec!["background".into(), "infiltrate".into()],
            preprocessing: None,
            model_card: serde_json::Value::Null,
        }
    }
}
