//! Writing a CT image (int16 Hounsfield units) as a `.nii.gz` on the grid of a source scan, for
//! images made from that scan (synthetic infiltrates inserted into it, for example).

use flate2::Compression;

use super::error::NiftiError;
use super::header::Header;
use super::write::{check_voxel_count, geometry_header, gzip, Stored};

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
    check_voxel_count(hu.len(), source)?;

    // `as` saturates at the int16 range and maps NaN to 0, which is the documented clamping.
    let values: Vec<i16> = hu.iter().map(|&v| v.round() as i16).collect();
    let (min, max) = values
        .iter()
        .fold((i16::MAX, i16::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();

    let stored = Stored {
        datatype: DT_INT16,
        bitpix: 16,
        intent: 0,
        description: b"Pulmoseg CT image (HU)",
    };
    let header = geometry_header(source, &stored, |put| {
        // glmax / glmin: unused by modern readers, informative for old ones. cal_min and
        // cal_max stay 0: no display window is implied.
        put(140, &i32::from(max).to_le_bytes());
        put(144, &i32::from(min).to_le_bytes());
    });
    // The fastest level: images are large, and level 6 took about 15 s per full-size case.
    gzip(&header, &bytes, Compression::fast())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nifti::header::MIN_VOX_OFFSET;
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
