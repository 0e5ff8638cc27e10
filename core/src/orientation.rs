//! Lossless reorientation between a file's own voxel grid and the canonical grid closest to
//! RAS+ (nibabel's `as_closest_canonical`): the network always sees the patient the same
//! way up, and its output goes back onto the file's grid for export.
//!
//! Only axis permutations and flips are applied, never interpolation, so the round trip is
//! exact. An oblique scan stays oblique: its canonical affine keeps the small rotation.

use serde::{Deserialize, Serialize};

use crate::affine::Affine;
use crate::volume::Volume;

/// The orientation a network's input is brought to. Only one exists; naming it in a weights
/// file keeps a model from being fed a grid it was not trained on, should another be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CanonicalOrientation {
    /// Closest to RAS+: `i` towards the patient's Right, `j` Anterior, `k` Superior.
    #[serde(rename = "RAS")]
    Ras,
}

/// How a grid of `source_dims` maps onto its canonical (closest to RAS+) grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reorientation {
    /// Grid of the file, `[ni, nj, nk]`.
    pub source_dims: [usize; 3],
    /// For each source voxel axis: the canonical axis it becomes and whether it keeps (+1)
    /// or reverses (−1) its direction.
    pub directions: [(usize, i8); 3],
}

impl Reorientation {
    /// The reorientation of a grid with this affine to its closest canonical orientation.
    pub fn to_canonical(affine: &Affine, source_dims: [usize; 3]) -> Self {
        Reorientation {
            source_dims,
            directions: affine.axis_directions(),
        }
    }

    /// True when the grid is already canonical.
    pub fn is_identity(&self) -> bool {
        self.directions == [(0, 1), (1, 1), (2, 1)]
    }

    /// Grid of the canonical volume.
    pub fn canonical_dims(&self) -> [usize; 3] {
        let mut dims = [0; 3];
        for (source_axis, &(canonical_axis, _)) in self.directions.iter().enumerate() {
            dims[canonical_axis] = self.source_dims[source_axis];
        }
        dims
    }

    /// Voxel-to-world affine of the canonical grid: the source affine composed with the
    /// permutation and flips that take canonical indices to source indices.
    pub fn canonical_affine(&self, source: &Affine) -> Affine {
        let mut to_source = [[0.0; 4]; 4];
        for (source_axis, &(canonical_axis, sign)) in self.directions.iter().enumerate() {
            to_source[source_axis][canonical_axis] = f64::from(sign);
            if sign < 0 {
                to_source[source_axis][3] = (self.source_dims[source_axis] - 1) as f64;
            }
        }
        to_source[3][3] = 1.0;
        source.compose(&Affine(to_source))
    }

    /// For each canonical flat index, the source flat index holding the same voxel.
    fn source_indices(&self) -> impl Iterator<Item = usize> + '_ {
        let canonical = self.canonical_dims();
        let src = self.source_dims;
        // Offset and stride in the source buffer of one step along each canonical axis.
        let source_stride = [1, src[0], src[0] * src[1]];
        let mut step = [0isize; 3];
        let mut start = 0isize;
        for (source_axis, &(canonical_axis, sign)) in self.directions.iter().enumerate() {
            let stride = source_stride[source_axis] as isize;
            if sign < 0 {
                step[canonical_axis] = -stride;
                start += (src[source_axis] as isize - 1) * stride;
            } else {
                step[canonical_axis] = stride;
            }
        }
        (0..canonical[2]).flat_map(move |c2| {
            (0..canonical[1]).flat_map(move |c1| {
                let row = start + c2 as isize * step[2] + c1 as isize * step[1];
                (0..canonical[0]).map(move |c0| (row + c0 as isize * step[0]) as usize)
            })
        })
    }

    /// Voxels of the source grid rearranged onto the canonical grid.
    ///
    /// `data` must hold `source_dims` voxels; the caller owns that invariant (it comes from
    /// the same volume), so a mismatch is a programming error.
    pub fn to_canonical_data<T: Copy>(&self, data: &[T]) -> Vec<T> {
        assert_eq!(data.len(), self.source_dims.iter().product::<usize>());
        self.source_indices().map(|s| data[s]).collect()
    }

    /// Voxels of the canonical grid put back onto the source grid.
    pub fn to_source_data<T: Copy + Default>(&self, canonical: &[T]) -> Vec<T> {
        assert_eq!(canonical.len(), self.source_dims.iter().product::<usize>());
        let mut out = vec![T::default(); canonical.len()];
        for (value, s) in canonical.iter().zip(self.source_indices()) {
            out[s] = *value;
        }
        out
    }
}

impl Volume {
    /// This volume on its closest-to-RAS+ grid, and the mapping back.
    pub fn to_canonical(&self) -> (Volume, Reorientation) {
        let reorientation = Reorientation::to_canonical(&self.affine, self.dims);
        let dims = reorientation.canonical_dims();
        let mut spacing_mm = [0.0; 3];
        for (source_axis, &(canonical_axis, _)) in reorientation.directions.iter().enumerate() {
            spacing_mm[canonical_axis] = self.spacing_mm[source_axis];
        }
        let volume = Volume {
            dims,
            spacing_mm,
            affine: reorientation.canonical_affine(&self.affine),
            hu: reorientation.to_canonical_data(&self.hu),
        };
        (volume, reorientation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lps_volume() -> Volume {
        let dims = [3, 4, 2];
        let affine = Affine([
            [-2.0, 0.0, 0.0, 10.0],
            [0.0, -3.0, 0.0, 20.0],
            [0.0, 0.0, 5.0, -30.0],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        let hu = (0..24).map(|v| v as f32).collect();
        Volume {
            dims,
            spacing_mm: [2.0, 3.0, 5.0],
            affine,
            hu,
        }
    }

    #[test]
    fn lps_becomes_ras_with_the_same_world_positions() {
        let source = lps_volume();
        let (canonical, reorientation) = source.to_canonical();
        assert_eq!(canonical.orientation_code(), "RAS");
        assert_eq!(canonical.dims, [3, 4, 2]);

        // Every voxel keeps its value and its world position.
        for k in 0..2 {
            for j in 0..4 {
                for i in 0..3 {
                    let (ci, cj) = (2 - i, 3 - j);
                    let value = canonical.hu[canonical.index(ci, cj, k)];
                    assert_eq!(value, source.hu[source.index(i, j, k)]);
                    let a = source.affine.apply([i as f64, j as f64, k as f64]);
                    let b = canonical.affine.apply([ci as f64, cj as f64, k as f64]);
                    assert_eq!(a, b);
                }
            }
        }
        assert_eq!(reorientation.to_source_data(&canonical.hu), source.hu);
    }

    #[test]
    fn permuted_grid_round_trips() {
        // i along z, j along x reversed, k along y.
        let affine = Affine([
            [0.0, -1.0, 0.0, 0.0],
            [0.0, 0.0, 2.0, 0.0],
            [3.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        let volume = Volume {
            dims: [2, 3, 4],
            spacing_mm: [3.0, 1.0, 2.0],
            affine,
            hu: (0..24).map(|v| v as f32).collect(),
        };
        let (canonical, reorientation) = volume.to_canonical();
        assert_eq!(volume.orientation_code(), "SLA");
        assert_eq!(canonical.orientation_code(), "RAS");
        assert_eq!(canonical.dims, [3, 4, 2]);
        assert_eq!(canonical.spacing_mm, [1.0, 2.0, 3.0]);
        assert_eq!(reorientation.to_source_data(&canonical.hu), volume.hu);
    }
}
