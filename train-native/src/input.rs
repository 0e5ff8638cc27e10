//! Reading input files from disk for the commands, with the file named in every error.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context};
use pulmoseg_core::nifti::{read_nifti, NiftiImage, ReadOptions};

/// The largest input file read, 4 GiB: a scan at the reader's voxel limit (2²⁸ voxels) of
/// 8-byte voxels is 2 GiB, a weights file of the width-64 network 0.2 GB.
pub const MAX_INPUT_BYTES: u64 = 4 << 30;

/// Reads a whole regular file of at most [`MAX_INPUT_BYTES`]. A device (`/dev/zero`), a pipe or
/// a folder is refused by name rather than read without end.
pub fn read_input(path: &Path) -> anyhow::Result<Vec<u8>> {
    // stat before open: opening a pipe would wait for a writer.
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if !meta.is_file() {
        bail!(
            "reading {}: not a regular file (a folder, device or pipe)",
            path.display()
        );
    }
    if meta.len() > MAX_INPUT_BYTES {
        bail!(
            "reading {}: {} bytes, more than the {MAX_INPUT_BYTES}-byte limit of an input file",
            path.display(),
            meta.len()
        );
    }
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // A file that grows while it is read stops at the limit too.
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        bail!(
            "reading {}: it grew past the {MAX_INPUT_BYTES}-byte limit while being read",
            path.display()
        );
    }
    Ok(bytes)
}

/// Reads and decodes one NIfTI file; warnings about repaired headers go to the log.
pub fn read_image(path: &Path) -> anyhow::Result<NiftiImage> {
    let bytes = read_input(path)?;
    let image = read_nifti(&bytes, &ReadOptions::default())
        .with_context(|| format!("decoding {}", path.display()))?;
    Ok(image)
}
