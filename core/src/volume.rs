//! A chest CT as the rest of Pulmoseg sees it: f32 Hounsfield units on a voxel grid with its
//! spacing and voxel-to-world affine.

use crate::affine::Affine;

/// A scalar volume in Hounsfield units.
///
/// `hu[i + ni * (j + nj * k)]` is voxel `(i, j, k)` for `dims = [ni, nj, nk]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    /// Number of voxels along each voxel axis `[ni, nj, nk]`.
    pub dims: [usize; 3],
    /// Voxel size in mm along each voxel axis, in the same order as `dims`.
    pub spacing_mm: [f64; 3],
    /// Voxel-to-world (RAS+, mm) transform.
    pub affine: Affine,
    /// Voxel values in HU, `dims[0] * dims[1] * dims[2]` of them.
    pub hu: Vec<f32>,
}

impl Volume {
    /// Number of voxels.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// True for a volume without voxels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Flat index of voxel `(i, j, k)`.
    #[inline]
    pub fn index(&self, i: usize, j: usize, k: usize) -> usize {
        i + self.dims[0] * (j + self.dims[1] * k)
    }

    /// Volume of one voxel in millilitres, from the affine (the geometry the reader chose),
    /// so a file whose pixdim disagrees with its sform is measured as it is displayed.
    pub fn voxel_ml(&self) -> f64 {
        let m = &self.affine.0;
        let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
        det.abs() / 1000.0
    }

    /// nibabel's orientation code of the voxel axes, e.g. `"LPS"`.
    pub fn orientation_code(&self) -> String {
        self.affine.orientation_code()
    }

    /// Smallest and largest finite voxel value, or `None` when there is none.
    pub fn hu_range(&self) -> Option<(f32, f32)> {
        self.hu
            .iter()
            .filter(|v| v.is_finite())
            .fold(None, |range, &v| match range {
                None => Some((v, v)),
                Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
            })
    }
}

/// Flat index of `(i, j, k)` in a grid of `dims`, the layout every slice in this crate uses.
#[inline]
pub fn flat_index(dims: [usize; 3], i: usize, j: usize, k: usize) -> usize {
    i + dims[0] * (j + dims[1] * k)
}
