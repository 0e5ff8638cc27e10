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
}
