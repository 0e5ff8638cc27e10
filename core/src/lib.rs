//! Pulmoseg's core: chest CT volumes read from NIfTI bytes, the preprocessing of Bressem et
//! al. 2021, an HU-only lung mask, and Dice / normalized surface Dice exactly as the COVID-19
//! benchmark of Ma et al. computes them.
//!
//! Nothing here touches files on disk or the DOM: every reader takes bytes and every writer
//! returns bytes, so the same code runs natively and in the page (`wasm32-unknown-unknown`).
//!
//! Voxel layout, everywhere in this crate: a volume of `dims = [ni, nj, nk]` is a flat slice
//! with index `i + ni * (j + nj * k)`, the order in which NIfTI stores voxels on disk.

pub mod affine;
pub mod dice;
pub mod distance_transform;
pub mod error;
pub mod inference;
#[cfg(feature = "model")]
pub mod kinetics;
pub mod lung_mask;
pub mod nifti;
pub mod orientation;
pub mod resample;
#[cfg(feature = "model")]
pub mod segment;
pub mod slice_scores;
pub mod summary;
pub mod surface_areas;
pub mod surface_dice;
pub mod synthesis;
#[cfg(feature = "model")]
pub mod unet;
pub mod volume;
#[cfg(feature = "model")]
pub mod weights;
pub mod window;

pub use affine::Affine;
pub use error::Error;
pub use volume::Volume;
