//! NIfTI-1 single files (`.nii`, `.nii.gz`) read from bytes into a [`Volume`], and label
//! volumes written back on the same grid.
//!
//! Own parser rather than the `nifti` crate, which mishandles a NaN `scl_slope`, panics on
//! some quaternions and allocates before checking sizes.
//!
//! What is read: 3-D volumes (or 4-D with one volume) of uint8, int8, int16, uint16, int32,
//! uint32, float32 or float64, either byte order, gzip'd or not (told apart by the gzip magic
//! bytes). Everything else is refused with an error naming the offending field and value,
//! before any voxel buffer is allocated. Odd-but-readable headers are repaired and reported
//! in [`NiftiImage::warnings`] (and through `tracing::warn!`):
//!
//! - `scl_slope` 0 or non-finite: no scaling; a non-finite `scl_inter` with a valid slope: 0;
//! - a non-finite or singular sform: the qform; a non-finite qform: pixdim (see [`qform`]);
//! - quaternions with `b² + c² + d² > 1`: renormalised; qfac other than −1: 1;
//! - zero, negative or NaN `pixdim[1..=3]`: `|pixdim|`, or 1 mm.
//!
//! Choices: a `bitpix` that disagrees with the datatype is an error (which of the two the
//! writer meant cannot be known, and guessing wrong gives garbage voxels silently); a
//! `.nii.gz` that inflates to more than the header declares is an error (a gzip bomb is
//! recognised after inflating one byte too many, never more), whereas extra bytes after the
//! voxels of an uncompressed `.nii` cost nothing and are only a warning.
//!
//! [`Volume::spacing_mm`] is `|pixdim[1..=3]|` (the order of `dims`), not the affine's
//! column norms; the two agree for every qform and for consistent sforms.

mod datatype;
mod error;
mod gzip;
mod header;
pub mod qform;
mod read;
mod write;
mod write_image;

pub use datatype::{DataType, Scaling};
pub use error::NiftiError;
pub use header::{Endianness, Header, HEADER_BYTES, MIN_VOX_OFFSET};
pub use qform::AffineSource;
pub use read::{read_header, read_nifti, NiftiImage, ReadOptions, MAX_GZIP_VOX_OFFSET};
pub use write::write_labels_nii_gz;
pub use write_image::write_hu_nii_gz;

#[cfg(doc)]
use crate::volume::Volume;
