//! Writing a CT image (int16 Hounsfield units) as a `.nii.gz` on the grid of a source scan, for
//! images made from that scan (synthetic infiltrates inserted into it, for example).

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::error::NiftiError;
use super::header::{Header, HEADER_BYTES, MIN_VOX_OFFSET};

/// NIfTI-1 datatype code of signed 16-bit integers.
const DT_INT16: i16 = 4;

/// A gzip'd single-file NIfTI-1 (little-endian, int16, `vox_offset` 352, slope 1, intercept 0,
/// `dim[0]` = 3, `intent_code` 0) of the HU values `hu` on the grid of `source`.
///
/// `hu` is `[ni * nj * nk]` in disk order (i fastest) for `source.dims3() = [ni, nj, nk]`. Each
/// value is rounded to the nearest integer (halves away from zero) and clamped to
/// −32 768 … 32 767; NaN is written as 0. dims, pixdim, qform (code, quaternion, offsets),
/// sform (code, rows) and `xyzt_units` are copied bit-for-bit, so any reader derives the same
/// affine as from the source.
pub fn write_hu_nii_gz(hu: &[f32], source: &Header) -> Result<Vec<u8>, NiftiError> {
    let dims = source.dims3();
    let voxels = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if voxels != Some(hu.len()) {
        // The variant is named for labels but carries exactly this mismatch: the values given
        // against the voxels of the source grid.
        return Err(NiftiError::LabelCountMismatch {
            labels: hu.len(),
            dims,
            voxels: voxels.unwrap_or(usize::MAX),
        });
    }

    // `as` saturates at the int16 range and maps NaN to 0, which is the documented clamping.
    let values: Vec<i16> = hu.iter().map(|&v| v.round() as i16).collect();
    let (min, max) = values
        .iter()
        .fold((i16::MAX, i16::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let mut bytes = Vec::with_capacity(values.len() * 2);
    for v in &values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }

    let header = image_header(source, (min, max));
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 2), Compression::fast());
    let written = encoder
        .write_all(&header)
        .and_then(|()| encoder.write_all(&bytes));
    let compress_error = |err: std::io::Error| NiftiError::Compress {
        message: err.to_string(),
    };
    written.map_err(compress_error)?;
    encoder.finish().map_err(compress_error)
}

/// The 352 bytes (header and an empty extension flag) of the written file; `range` is the
/// smallest and largest written value (`cal_min`, `cal_max` stay 0: no display window implied).
fn image_header(source: &Header, range: (i16, i16)) -> [u8; MIN_VOX_OFFSET] {
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
    put(70, &DT_INT16.to_le_bytes());
    put(72, &16i16.to_le_bytes());
    for (n, p) in source.pixdim.iter().enumerate() {
        put(76 + 4 * n, &p.to_le_bytes());
    }
    put(108, &(MIN_VOX_OFFSET as f32).to_le_bytes());
    put(112, &1f32.to_le_bytes());
    put(116, &0f32.to_le_bytes());
    put(123, &[source.xyzt_units]);
    // glmax / glmin (unused by modern readers, informative for old ones).
    put(140, &i32::from(range.1).to_le_bytes());
    put(144, &i32::from(range.0).to_le_bytes());
    put(148, b"Pulmoseg CT image (HU)");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nifti::{read_header, read_nifti, ReadOptions};

    /// A 3 × 2 × 2 int16 NIfTI-1 with spacing 0.5 × 0.75 × 2 mm, LPS sform and qform.
    fn source_header() -> Header {
        let mut h = [0u8; MIN_VOX_OFFSET];
        let mut put =
            |offset: usize, bytes: &[u8]| h[offset..offset + bytes.len()].copy_from_slice(bytes);
        put(0, &348i32.to_le_bytes());
        for (n, d) in [3i16, 3, 2, 2, 1, 1, 1, 1].iter().enumerate() {
            put(40 + 2 * n, &d.to_le_bytes());
        }
        put(70, &4i16.to_le_bytes());
        put(72, &16i16.to_le_bytes());
        for (n, p) in [1.0f32, 0.5, 0.75, 2.0, 0.0, 0.0, 0.0, 0.0]
            .iter()
            .enumerate()
        {
            put(76 + 4 * n, &p.to_le_bytes());
        }
        put(108, &352f32.to_le_bytes());
        put(112, &1f32.to_le_bytes());
        put(123, &[2u8]);
        put(252, &1i16.to_le_bytes());
        put(254, &1i16.to_le_bytes());
        // Quaternion (0, 0, 1): 180° about z, i.e. voxel axes towards L and P.
        put(264, &1f32.to_le_bytes());
        for (n, v) in [10.0f32, 20.0, -30.0].iter().enumerate() {
            put(268 + 4 * n, &v.to_le_bytes());
        }
        for (r, row) in [
            [-0.5f32, 0.0, 0.0, 10.0],
            [0.0, -0.75, 0.0, 20.0],
            [0.0, 0.0, 2.0, -30.0],
        ]
        .iter()
        .enumerate()
        {
            for (c, v) in row.iter().enumerate() {
                put(280 + 16 * r + 4 * c, &v.to_le_bytes());
            }
        }
        put(344, b"n+1\0");
        read_header(&h).unwrap()
    }

    #[test]
    fn values_are_rounded_clamped_and_keep_the_source_geometry() {
        let source = source_header();
        let hu = [
            -1024.4f32,
            -0.5,
            0.5,
            40.6,
            1e6,
            -1e6,
            f32::NAN,
            2.5,
            -2.5,
            7.0,
            8.0,
            9.0,
        ];
        let bytes = write_hu_nii_gz(&hu, &source).unwrap();
        let image = read_nifti(&bytes, &ReadOptions::default()).unwrap();

        // f32::round rounds halves away from zero; 1e6 and −1e6 clamp to the int16 limits.
        let expected = [
            -1024.0f32, -1.0, 1.0, 41.0, 32767.0, -32768.0, 0.0, 3.0, -3.0, 7.0, 8.0, 9.0,
        ];
        assert_eq!(image.volume.hu, expected);
        assert_eq!(image.volume.dims, [3, 2, 2]);
        assert_eq!(image.volume.spacing_mm, [0.5, 0.75, 2.0]);
        assert_eq!(image.volume.orientation_code(), "LPS");
        assert_eq!(image.header.srow_x, source.srow_x);
        assert_eq!(image.header.srow_z, source.srow_z);
        assert_eq!(image.header.quatern_d, source.quatern_d);
        assert_eq!(image.header.intent_code, 0);
    }

    #[test]
    fn a_wrong_voxel_count_is_refused() {
        let err = write_hu_nii_gz(&[0.0; 5], &source_header()).unwrap_err();
        assert_eq!(
            err,
            NiftiError::LabelCountMismatch {
                labels: 5,
                dims: [3, 2, 2],
                voxels: 12
            }
        );
    }
}
