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
    check_voxel_count(labels.len(), source)?;

    let max_label = labels.iter().copied().max().unwrap_or(0);
    let header = geometry_header(
        source,
        &Stored {
            datatype: 2,
            bitpix: 8,
            intent: INTENT_LABEL,
            description: b"Pulmoseg label volume",
        },
        |put| put(124, &f32::from(max_label).to_le_bytes()),
    );
    gzip(&header, labels, Compression::new(6))
}

/// The datatype fields of a written file.
pub(super) struct Stored {
    /// NIfTI datatype code.
    pub datatype: i16,
    /// Bits per voxel of that datatype.
    pub bitpix: i16,
    /// NIfTI `intent_code`.
    pub intent: i16,
    /// `descrip`, at most 80 bytes.
    pub description: &'static [u8],
}

/// Refuses a voxel buffer whose length is not the source grid's voxel count.
pub(super) fn check_voxel_count(len: usize, source: &Header) -> Result<(), NiftiError> {
    let dims = source.dims3();
    let voxels = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if voxels != Some(len) {
        return Err(NiftiError::LabelCountMismatch {
            labels: len,
            dims,
            voxels: voxels.unwrap_or(usize::MAX),
        });
    }
    Ok(())
}

/// `header` then `data`, gzip'd.
pub(super) fn gzip(header: &[u8], data: &[u8], level: Compression) -> Result<Vec<u8>, NiftiError> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(data.len() / 4), level);
    let written = encoder
        .write_all(header)
        .and_then(|()| encoder.write_all(data));
    let compress_error = |err: std::io::Error| NiftiError::Compress {
        message: err.to_string(),
    };
    written.map_err(compress_error)?;
    encoder.finish().map_err(compress_error)
}

/// The 352 bytes (header and an empty extension flag) of a little-endian single-file NIfTI-1
/// with `vox_offset` 352, slope 1, intercept 0, `dim[0]` = 3 and the source's dims, pixdim,
/// qform, sform and `xyzt_units` copied bit for bit; `extra` may set further fields.
pub(super) fn geometry_header(
    source: &Header,
    stored: &Stored,
    extra: impl FnOnce(&mut dyn FnMut(usize, &[u8])),
) -> [u8; MIN_VOX_OFFSET] {
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
    put(68, &stored.intent.to_le_bytes());
    put(70, &stored.datatype.to_le_bytes());
    put(72, &stored.bitpix.to_le_bytes());
    for (n, p) in source.pixdim.iter().enumerate() {
        put(76 + 4 * n, &p.to_le_bytes());
    }
    put(108, &(MIN_VOX_OFFSET as f32).to_le_bytes());
    put(112, &1f32.to_le_bytes());
    put(116, &0f32.to_le_bytes());
    put(123, &[source.xyzt_units]);
    put(148, &stored.description[..stored.description.len().min(80)]);
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
    extra(&mut put);
    h
}
