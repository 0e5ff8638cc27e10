//! Segmentation labels computed on the canonical grid, written back as a `.nii.gz` on the
//! grid of the file the clinician opened, so that any viewer overlays them on the original.

use pulmoseg_core::nifti::{write_labels_nii_gz, Header, NiftiError};
use pulmoseg_core::orientation::Reorientation;

/// `.nii.gz` bytes of `canonical_labels` (`[ni * nj * nk]` on the canonical grid, i fastest)
/// put back onto the source grid that `reorientation` came from, with `source_header`'s
/// geometry.
pub fn labels_nii_gz(
    canonical_labels: &[u8],
    reorientation: &Reorientation,
    source_header: &Header,
) -> Result<Vec<u8>, NiftiError> {
    let dims = reorientation.source_dims;
    let voxels = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if voxels != Some(canonical_labels.len()) {
        return Err(NiftiError::LabelCountMismatch {
            labels: canonical_labels.len(),
            dims,
            voxels: voxels.unwrap_or(usize::MAX),
        });
    }
    let source_labels = reorientation.to_source_data(canonical_labels);
    write_labels_nii_gz(&source_labels, source_header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulmoseg_core::nifti::{read_nifti, ReadOptions};

    /// A 3 × 2 × 2 int16 LPS NIfTI-1 (sform code 1, affine diag(−2, −3, 5)), values 0..12.
    fn lps_nii() -> Vec<u8> {
        let mut header = vec![0u8; 352];
        header[0..4].copy_from_slice(&348i32.to_le_bytes());
        for (n, d) in [3i16, 3, 2, 2, 1, 1, 1, 1].iter().enumerate() {
            header[40 + 2 * n..42 + 2 * n].copy_from_slice(&d.to_le_bytes());
        }
        header[70..72].copy_from_slice(&4i16.to_le_bytes()); // int16
        header[72..74].copy_from_slice(&16i16.to_le_bytes());
        for (n, p) in [1.0f32, 2.0, 3.0, 5.0].iter().enumerate() {
            header[76 + 4 * n..80 + 4 * n].copy_from_slice(&p.to_le_bytes());
        }
        header[108..112].copy_from_slice(&352f32.to_le_bytes());
        header[112..116].copy_from_slice(&1f32.to_le_bytes()); // scl_slope
        header[254..256].copy_from_slice(&1i16.to_le_bytes()); // sform_code
        let rows = [
            [-2.0f32, 0.0, 0.0, 0.0],
            [0.0, -3.0, 0.0, 0.0],
            [0.0, 0.0, 5.0, 0.0],
        ];
        for (r, row) in rows.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                let at = 280 + 16 * r + 4 * c;
                header[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        header[344..348].copy_from_slice(b"n+1\0");
        for v in 0i16..12 {
            header.extend_from_slice(&v.to_le_bytes());
        }
        header
    }

    #[test]
    fn labels_of_the_canonical_grid_land_on_the_source_voxels_they_were_computed_from() {
        let image = read_nifti(&lps_nii(), &ReadOptions::default()).expect("fixture reads");
        assert_eq!(image.volume.orientation_code(), "LPS");
        let (canonical, reorientation) = image.volume.to_canonical();

        // Label every canonical voxel with its source value (0..12 fit a u8): written back,
        // the label at each source voxel must equal that voxel's own value.
        let labels: Vec<u8> = canonical.hu.iter().map(|&hu| hu as u8).collect();
        let written = labels_nii_gz(&labels, &reorientation, &image.header).expect("writes");
        let reread = read_nifti(&written, &ReadOptions::default()).expect("rereads");
        assert_eq!(reread.volume.dims, [3, 2, 2]);
        assert_eq!(reread.volume.affine, image.volume.affine);
        let expected: Vec<f32> = (0..12).map(|v| v as f32).collect();
        assert_eq!(reread.volume.hu, expected);
    }

    #[test]
    fn a_label_count_that_is_not_the_grid_is_refused() {
        let image = read_nifti(&lps_nii(), &ReadOptions::default()).expect("fixture reads");
        let (_, reorientation) = image.volume.to_canonical();
        let err = labels_nii_gz(&[0; 5], &reorientation, &image.header).unwrap_err();
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
