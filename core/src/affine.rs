//! The voxel-to-world affine of a volume and the orientation code derived from it.
//!
//! World coordinates are NIfTI's scanner space, RAS+: x increases towards the patient's
//! Right, y towards Anterior, z towards Superior, in millimetres.

use serde::{Deserialize, Serialize};

/// A 4 × 4 voxel-to-world matrix, row-major: `world = affine · [i, j, k, 1]ᵀ`, in mm.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Affine(pub [[f64; 4]; 4]);

impl Affine {
    /// A diagonal affine with the given voxel spacing and no offset.
    pub fn from_spacing(spacing_mm: [f64; 3]) -> Self {
        let mut m = [[0.0; 4]; 4];
        for (axis, row) in m.iter_mut().take(3).enumerate() {
            row[axis] = spacing_mm[axis];
        }
        m[3][3] = 1.0;
        Affine(m)
    }

    /// World position in mm of the voxel centre `(i, j, k)`.
    pub fn apply(&self, voxel: [f64; 3]) -> [f64; 3] {
        let m = &self.0;
        let mut world = [0.0; 3];
        for (row, out) in world.iter_mut().enumerate() {
            *out = m[row][0] * voxel[0] + m[row][1] * voxel[1] + m[row][2] * voxel[2] + m[row][3];
        }
        world
    }

    /// Matrix product `self · other`.
    pub fn compose(&self, other: &Affine) -> Affine {
        let mut m = [[0.0; 4]; 4];
        for (r, row) in m.iter_mut().enumerate() {
            for (c, cell) in row.iter_mut().enumerate() {
                *cell = (0..4).map(|k| self.0[r][k] * other.0[k][c]).sum();
            }
        }
        Affine(m)
    }

    /// Length in mm of one step along each voxel axis (the column norms).
    pub fn spacing_mm(&self) -> [f64; 3] {
        let m = &self.0;
        [0, 1, 2].map(|c| (m[0][c].powi(2) + m[1][c].powi(2) + m[2][c].powi(2)).sqrt())
    }

    /// True when every entry is finite.
    pub fn is_finite(&self) -> bool {
        self.0.iter().flatten().all(|v| v.is_finite())
    }

    /// For each voxel axis, the world axis (0 = x, 1 = y, 2 = z) it runs closest to and
    /// whether it increases along (+1) or against (−1) that world axis.
    ///
    /// Each world axis is claimed by one voxel axis only, greedily by the largest
    /// direction cosine, so an oblique scan still gets a valid permutation (as nibabel's
    /// `io_orientation` does for the usual, mildly oblique, CT).
    pub fn axis_directions(&self) -> [(usize, i8); 3] {
        let m = &self.0;
        let spacing = self.spacing_mm();
        let mut cosines = [[0.0f64; 3]; 3]; // [voxel axis][world axis]
        for (voxel_axis, row) in cosines.iter_mut().enumerate() {
            for (world_axis, cell) in row.iter_mut().enumerate() {
                let norm = if spacing[voxel_axis] > 0.0 {
                    spacing[voxel_axis]
                } else {
                    1.0
                };
                *cell = m[world_axis][voxel_axis] / norm;
            }
        }

        let mut result = [(0usize, 1i8); 3];
        let mut voxel_taken = [false; 3];
        let mut world_taken = [false; 3];
        for _ in 0..3 {
            let mut best = (0, 0, -1.0f64);
            for v in (0..3).filter(|&v| !voxel_taken[v]) {
                for w in (0..3).filter(|&w| !world_taken[w]) {
                    if cosines[v][w].abs() > best.2 {
                        best = (v, w, cosines[v][w].abs());
                    }
                }
            }
            let (v, w, _) = best;
            voxel_taken[v] = true;
            world_taken[w] = true;
            result[v] = (w, if cosines[v][w] < 0.0 { -1 } else { 1 });
        }
        result
    }

    /// nibabel's orientation code: for each voxel axis the RAS+ direction it increases
    /// towards, e.g. `"LPS"` for a volume stored in DICOM's usual order.
    pub fn orientation_code(&self) -> String {
        const POSITIVE: [char; 3] = ['R', 'A', 'S'];
        const NEGATIVE: [char; 3] = ['L', 'P', 'I'];
        self.axis_directions()
            .iter()
            .map(|&(world, sign)| {
                if sign > 0 {
                    POSITIVE[world]
                } else {
                    NEGATIVE[world]
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dicom_order_is_lps() {
        // A typical axial CT converted from DICOM: i towards patient left (−x), j towards
        // posterior (−y), k towards the head (+z).
        let affine = Affine([
            [-0.748, 0.0, 0.0, 190.0],
            [0.0, -0.748, 0.0, 170.0],
            [0.0, 0.0, 2.0, -300.0],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        assert_eq!(affine.orientation_code(), "LPS");
        assert_eq!(affine.spacing_mm(), [0.748, 0.748, 2.0]);
    }

    #[test]
    fn permuted_axes_are_found() {
        // Sagittal storage: i along y (anterior), j along z (inferior), k along x (right).
        let affine = Affine([
            [0.0, 0.0, 1.0, 0.0],
            [1.0, 0.0, 0.0, 0.0],
            [0.0, -1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        assert_eq!(affine.orientation_code(), "AIR");
    }
}
