//! Writing a uint8 label volume as a `.nii.gz` on the grid of the scan it was computed from.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::error::NiftiError;
use super::header::{Header, HEADER_BYTES, MIN_VOX_OFFSET};

/// NIfTI-1 `intent_code` of a volume of label indices.
const INTENT_LABEL: i16 = 1002;

/// A gzip'd single-file NIfTI-1 (little-endian, uint8, `vox_offset` 352, slope 1, intercept 0,
/// `dim[0]` = 3) of `labels` on the grid of `source`.
///
/// `labels` is `[ni * nj * nk]` in disk order (i fastest) for `source.dims3() = [ni, nj, nk]`.
/// dims, pixdim, qform (code, quaternion, offsets), sform (code, rows) and `xyzt_units` are
/// copied bit-for-bit, so any reader derives the same affine as from the source.
pub fn write_labels_nii_gz(labels: &[u8], source: &Header) -> Result<Vec<u8>, NiftiError> {
    let dims = source.dims3();
    let voxels = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if voxels != Some(labels.len()) {
        return Err(NiftiError::LabelCountMismatch {
            labels: labels.len(),
            dims,
            voxels: voxels.unwrap_or(usize::MAX),
        });
    }

    let header = label_header(labels, source);
    let mut encoder = GzEncoder::new(Vec::with_capacity(labels.len() / 8), Compression::new(6));
    let written = encoder
        .write_all(&header)
        .and_then(|()| encoder.write_all(labels));
    let compress_error = |err: std::io::Error| NiftiError::Compress {
        message: err.to_string(),
    };
    written.map_err(compress_error)?;
    encoder.finish().map_err(compress_error)
}

/// The 352 bytes (header and an empty extension flag) of the written file.
fn label_header(labels: &[u8], source: &Header) -> [u8; MIN_VOX_OFFSET] {
    let mut h = [0u8; MIN_VOX_OFFSET];
    let mut put =
        |offset: usize, bytes: &[u8]| h[offset..offset + bytes.len()].copy_from_slice(bytes);

    put(0, &(HEADER_BYTES as i32).to_le_bytes());
    put(38, b"r");
    let mut dim = [1i16; 8];
    dim[0] = 3;
    dim[1..4].copy_from_slice(&source.dim[1..4]);
    for (n, d) in dim.iter().enumerate() {
        put(40 + 2 * n, &d.to_le_bytes());
    }
    put(68, &INTENT_LABEL.to_le_bytes());
    put(70, &2i16.to_le_bytes());
    put(72, &8i16.to_le_bytes());
    for (n, p) in source.pixdim.iter().enumerate() {
        put(76 + 4 * n, &p.to_le_bytes());
    }
    put(108, &(MIN_VOX_OFFSET as f32).to_le_bytes());
    put(112, &1f32.to_le_bytes());
    put(116, &0f32.to_le_bytes());
    put(123, &[source.xyzt_units]);
    let max_label = labels.iter().copied().max().unwrap_or(0);
    put(124, &f32::from(max_label).to_le_bytes());
    put(128, &0f32.to_le_bytes());
    put(148, b"Pulmoseg label volume");
    put(252, &source.qform_code.to_le_bytes());
    put(254, &source.sform_code.to_le_bytes());
    let quaternion = [
        source.quatern_b,
        source.quatern_c,
        source.quatern_d,
        source.qoffset_x,
        source.qoffset_y,
        source.qoffset_z,
    ];
    for (n, v) in quaternion.iter().enumerate() {
        put(256 + 4 * n, &v.to_le_bytes());
    }
    for (r, row) in [source.srow_x, source.srow_y, source.srow_z]
        .iter()
        .enumerate()
    {
        for (c, v) in row.iter().enumerate() {
            put(280 + 16 * r + 4 * c, &v.to_le_bytes());
        }
    }
    put(344, b"n+1\0");
    h
}
