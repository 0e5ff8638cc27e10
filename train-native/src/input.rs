//! Reading NIfTI files from disk for the commands, with the file named in every error.

use std::path::Path;

use anyhow::Context;
use pulmoseg_core::nifti::{read_nifti, NiftiImage, ReadOptions};

/// Reads and decodes one NIfTI file; warnings about repaired headers go to the log.
pub fn read_image(path: &Path) -> anyhow::Result<NiftiImage> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let image = read_nifti(&bytes, &ReadOptions::default())
        .with_context(|| format!("decoding {}", path.display()))?;
    Ok(image)
}
