//! The crate's error type: one variant per stage, each wrapping that stage's own error.

use thiserror::Error;

/// Anything that can go wrong in `pulmoseg-core`.
#[derive(Debug, Error)]
pub enum Error {
    /// Reading or writing a NIfTI file failed.
    #[error(transparent)]
    Nifti(#[from] crate::nifti::NiftiError),
    /// Two grids, shapes or parameters of a computation do not fit together.
    #[error(transparent)]
    Metrics(#[from] crate::dice::MetricsError),
    /// A resize request is invalid.
    #[error(transparent)]
    Resample(#[from] crate::resample::ResampleError),
    /// An intensity window is invalid.
    #[error(transparent)]
    Window(#[from] crate::window::WindowError),
    /// The lung mask cannot be computed for this volume.
    #[error(transparent)]
    LungMask(#[from] crate::lung_mask::LungMaskError),
    /// Synthetic lesions cannot be made for this volume or with these options.
    #[error(transparent)]
    Synthesis(#[from] crate::synthesis::SynthesisError),
    /// Slice-level scores cannot be computed for these masks and labels.
    #[error(transparent)]
    SliceScores(#[from] crate::slice_scores::SliceScoreError),
    /// Whole-scan inference was driven wrongly or with unusable settings.
    #[error(transparent)]
    Inference(#[from] crate::inference::InferenceError),
    /// The network configuration or its input is invalid.
    #[cfg(feature = "model")]
    #[error(transparent)]
    Network(#[from] crate::unet::UNetError),
    /// A weights file cannot be read or written.
    #[cfg(feature = "model")]
    #[error(transparent)]
    Weights(#[from] crate::weights::WeightsError),
    /// The compute backend failed while running the network (a GPU error, a lost device).
    #[cfg(feature = "model")]
    #[error("the compute backend failed: {0}")]
    Backend(String),
    /// A Kinetics-400 checkpoint cannot be imported.
    #[cfg(feature = "model")]
    #[error(transparent)]
    Kinetics(#[from] crate::kinetics::KineticsError),
}
