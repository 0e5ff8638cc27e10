//! Normalized surface Dice (NSD) of two masks, exactly as the COVID-19 benchmark of Ma et al.
//! computes it with DeepMind's `surface-distance` (Nikolov et al. 2018).
//!
//! Surfaces live on voxel corners. Both masks are cropped to the bounding box of G ∨ P and
//! padded with one false layer on the high side of every axis; every corner of that crop
//! gets the 8-bit code of the 2 × 2 × 2 voxels around it ([`crate::surface_areas`]); a corner
//! whose code is neither 0 nor 255 is a border corner, carrying the marching-cubes surface
//! area of its code. Each border corner of one mask is then paired with its exact Euclidean
//! distance (in mm) to the nearest border corner of the other, and
//!
//! `NSD(τ) = (Σ area_G[d_G→P ≤ τ] + Σ area_P[d_P→G ≤ τ]) / (Σ area_G + Σ area_P)`.
//!
//! Axis order: our voxel axes `(i, j, k)`, flat index `i + ni·(j + nj·k)`, play the role of
//! the benchmark's array axes `(0, 1, 2)`, as they do for a NIfTI volume loaded with nibabel
//! (whose arrays are indexed `[i, j, k]` with spacing `pixdim[1..=3]`). A C-order NumPy array
//! of shape `(n0, n1, n2)` is therefore a grid of `dims = [n0, n1, n2]` whose voxel
//! `(a0, a1, a2)` sits at our flat index `a0 + n0·(a1 + n1·a2)`, with spacing in the same
//! order. Reading that array's C-order memory directly instead (`dims = [n2, n1, n0]`, spacing
//! reversed) gives the same values, because the marching-cubes table treats the three axes
//! alike; the metrics tests check both.

use crate::dice::{check_dims, check_spacing, MetricsError};
use crate::distance_transform::squared_distance_transform_into;
use crate::surface_areas::surface_areas;

/// Border corners of both masks with their surface areas and distances to the other surface.
///
/// The vectors of one mask are parallel (entry `n` of the distances belongs to entry `n` of
/// the areas) and list its border corners in flat corner order, unsorted; sums over them are
/// what [`SurfaceDistances::surface_dice_at`] uses.
#[derive(Debug, Clone, PartialEq)]
pub struct SurfaceDistances {
    /// Distance in mm from each border corner of the truth to the nearest border corner of
    /// the prediction; +∞ when the prediction is empty.
    pub distances_truth_to_prediction: Vec<f64>,
    /// Distance in mm from each border corner of the prediction to the nearest border corner
    /// of the truth; +∞ when the truth is empty.
    pub distances_prediction_to_truth: Vec<f64>,
    /// Surface area in mm² of each border corner of the truth.
    pub surfel_areas_truth: Vec<f64>,
    /// Surface area in mm² of each border corner of the prediction.
    pub surfel_areas_prediction: Vec<f64>,
}

impl SurfaceDistances {
    /// Total surface area of the truth in mm².
    pub fn surface_area_truth_mm2(&self) -> f64 {
        self.surfel_areas_truth.iter().sum()
    }

    /// Total surface area of the prediction in mm².
    pub fn surface_area_prediction_mm2(&self) -> f64 {
        self.surfel_areas_prediction.iter().sum()
    }

    /// Normalized surface Dice at `tolerance_mm` (inclusive: a distance equal to the
    /// tolerance counts as overlapping). NaN when both masks are empty, 0 when exactly one is.
    pub fn surface_dice_at(&self, tolerance_mm: f64) -> Result<f64, MetricsError> {
        check_tolerance(tolerance_mm)?;
        // A fold from +0 rather than `sum()`, whose empty sum is −0: "NSD -0.0000" for a
        // prediction with no surface within reach.
        let within = |distances: &[f64], areas: &[f64]| -> f64 {
            distances
                .iter()
                .zip(areas)
                .filter(|(d, _)| **d <= tolerance_mm)
                .fold(0.0, |sum, (_, a)| sum + a)
        };
        let overlap = within(
            &self.distances_truth_to_prediction,
            &self.surfel_areas_truth,
        ) + within(
            &self.distances_prediction_to_truth,
            &self.surfel_areas_prediction,
        );
        let total = self.surface_area_truth_mm2() + self.surface_area_prediction_mm2();
        Ok(overlap / total)
    }
}

/// Normalized surface Dice of `truth` and `prediction` at `tolerance_mm`.
///
/// Both masks are flat, of `dims = [ni, nj, nk]` (index `i + ni·(j + nj·k)`), with voxel size
/// `spacing_mm` along i, j, k. NaN when both masks are empty, 0 when exactly one is.
pub fn surface_dice(
    truth: &[bool],
    prediction: &[bool],
    dims: [usize; 3],
    spacing_mm: [f64; 3],
    tolerance_mm: f64,
) -> Result<f64, MetricsError> {
    check_tolerance(tolerance_mm)?;
    surface_distances(truth, prediction, dims, spacing_mm)?.surface_dice_at(tolerance_mm)
}

/// Border corners, surface areas and surface-to-surface distances of two masks.
///
/// Inputs as for [`surface_dice`]. Memory beyond the inputs: about 10 bytes per corner of the
/// bounding box of G ∨ P (two u8 code maps and one f64 distance map; the padded u8 crop is
/// freed before the distance map exists) plus 16 bytes per border corner.
pub fn surface_distances(
    truth: &[bool],
    prediction: &[bool],
    dims: [usize; 3],
    spacing_mm: [f64; 3],
) -> Result<SurfaceDistances, MetricsError> {
    if truth.len() != prediction.len() {
        return Err(MetricsError::LengthMismatch {
            truth: truth.len(),
            prediction: prediction.len(),
        });
    }
    check_dims("truth mask", dims, truth.len())?;
    check_spacing(spacing_mm)?;

    let Some(bbox) = BoundingBox::of_union(truth, prediction, dims) else {
        return Ok(SurfaceDistances {
            distances_truth_to_prediction: Vec::new(),
            distances_prediction_to_truth: Vec::new(),
            surfel_areas_truth: Vec::new(),
            surfel_areas_prediction: Vec::new(),
        });
    };
    let corners = bbox.corner_dims();
    tracing::debug!(
        ?corners,
        "surface distances on the bounding box of both masks"
    );

    let mut padded = Vec::new();
    let codes_truth = bbox.neighbour_codes(truth, dims, &mut padded);
    let codes_prediction = bbox.neighbour_codes(prediction, dims, &mut padded);
    drop(padded);

    let areas = surface_areas(spacing_mm);
    let mut distance_map = Vec::new();
    let (distances_truth_to_prediction, surfel_areas_truth) = distances_to(
        &codes_truth,
        &codes_prediction,
        corners,
        spacing_mm,
        &areas,
        &mut distance_map,
    );
    let (distances_prediction_to_truth, surfel_areas_prediction) = distances_to(
        &codes_prediction,
        &codes_truth,
        corners,
        spacing_mm,
        &areas,
        &mut distance_map,
    );

    Ok(SurfaceDistances {
        distances_truth_to_prediction,
        distances_prediction_to_truth,
        surfel_areas_truth,
        surfel_areas_prediction,
    })
}

/// A tolerance must be a finite, non-negative number of mm.
fn check_tolerance(tolerance_mm: f64) -> Result<(), MetricsError> {
    if tolerance_mm.is_finite() && tolerance_mm >= 0.0 {
        Ok(())
    } else {
        Err(MetricsError::InvalidTolerance { tolerance_mm })
    }
}

#[inline]
fn is_border(code: u8) -> bool {
    code != 0 && code != 255
}

/// For every border corner of `from` (in flat corner order): the distance to the nearest
/// border corner of `to` and the corner's surface area. `distance_map` is scratch space.
fn distances_to(
    from: &[u8],
    to: &[u8],
    corners: [usize; 3],
    spacing_mm: [f64; 3],
    areas: &[f64; 256],
    distance_map: &mut Vec<f64>,
) -> (Vec<f64>, Vec<f64>) {
    let border_count = from.iter().filter(|&&c| is_border(c)).count();
    let mut distances = Vec::with_capacity(border_count);
    let mut surfel_areas = Vec::with_capacity(border_count);

    if to.iter().any(|&c| is_border(c)) {
        squared_distance_transform_into(|v| is_border(to[v]), corners, spacing_mm, distance_map);
        for (&code, &squared) in from.iter().zip(distance_map.iter()) {
            if is_border(code) {
                distances.push(squared.sqrt());
                surfel_areas.push(areas[code as usize]);
            }
        }
    } else {
        for &code in from.iter().filter(|&&c| is_border(c)) {
            distances.push(f64::INFINITY);
            surfel_areas.push(areas[code as usize]);
        }
    }
    (distances, surfel_areas)
}

/// Inclusive voxel bounding box `[low, high]` per axis.
#[derive(Debug, Clone, Copy, PartialEq)]
struct BoundingBox {
    low: [usize; 3],
    high: [usize; 3],
}

impl BoundingBox {
    /// Bounding box of the voxels set in `a` or `b`; `None` when both are empty.
    fn of_union(a: &[bool], b: &[bool], dims: [usize; 3]) -> Option<Self> {
        let [ni, nj, nk] = dims;
        let mut bbox: Option<BoundingBox> = None;
        for k in 0..nk {
            for j in 0..nj {
                let start = ni * (j + nj * k);
                let row_a = &a[start..start + ni];
                let row_b = &b[start..start + ni];
                let Some(first) = (0..ni).find(|&i| row_a[i] || row_b[i]) else {
                    continue;
                };
                let last = (first..ni)
                    .rev()
                    .find(|&i| row_a[i] || row_b[i])
                    .unwrap_or(first);
                bbox = Some(match bbox {
                    None => BoundingBox {
                        low: [first, j, k],
                        high: [last, j, k],
                    },
                    Some(b) => BoundingBox {
                        low: [b.low[0].min(first), b.low[1].min(j), b.low[2]],
                        high: [b.high[0].max(last), b.high[1].max(j), k],
                    },
                });
            }
        }
        bbox
    }

    /// Voxels of the crop along each axis.
    fn voxel_dims(&self) -> [usize; 3] {
        [0, 1, 2].map(|a| self.high[a] - self.low[a] + 1)
    }

    /// Corners of the crop padded on the high side: one more than the voxels per axis.
    fn corner_dims(&self) -> [usize; 3] {
        self.voxel_dims().map(|n| n + 1)
    }

    /// Neighbour code of every corner of the crop of `mask`, flat over [`Self::corner_dims`].
    ///
    /// `padded` is scratch space: the crop with one false layer on both sides of every axis,
    /// so that corner `p` reads padded voxels `p + 1 - a` without bounds checks.
    fn neighbour_codes(&self, mask: &[bool], dims: [usize; 3], padded: &mut Vec<u8>) -> Vec<u8> {
        let [ni, nj, _] = dims;
        let [vi, vj, vk] = self.voxel_dims();
        let [pi, pj, pk] = [vi + 2, vj + 2, vk + 2];
        padded.clear();
        padded.resize(pi * pj * pk, 0);
        for k in 0..vk {
            for j in 0..vj {
                let src = self.low[0] + ni * (self.low[1] + j + nj * (self.low[2] + k));
                let dst = 1 + pi * (j + 1 + pj * (k + 1));
                for (out, &inside) in padded[dst..dst + vi].iter_mut().zip(&mask[src..src + vi]) {
                    *out = u8::from(inside);
                }
            }
        }

        let [ci, cj, ck] = self.corner_dims();
        let mut codes = vec![0u8; ci * cj * ck];
        for k in 0..ck {
            for j in 0..cj {
                // Padded rows of the four (a_j, a_k) offsets; bit shift 2·a_j + a_k.
                let row = |a_j: usize, a_k: usize| pi * (j + 1 - a_j + pj * (k + 1 - a_k));
                let rows = [
                    (row(0, 0), 0),
                    (row(0, 1), 1),
                    (row(1, 0), 2),
                    (row(1, 1), 3),
                ];
                let out = &mut codes[ci * (j + cj * k)..ci * (j + 1 + cj * k)];
                for (i, code) in out.iter_mut().enumerate() {
                    let mut c = 0u8;
                    for &(start, shift) in &rows {
                        c |= padded[start + i + 1] << shift;
                        c |= padded[start + i] << (shift + 4);
                    }
                    *code = c;
                }
            }
        }
        codes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::surface_areas::neighbour_code;
    use crate::volume::flat_index;

    #[test]
    fn bounding_box_covers_both_masks() {
        let dims = [5, 4, 3];
        let mut a = vec![false; 60];
        let mut b = vec![false; 60];
        a[flat_index(dims, 1, 2, 1)] = true;
        b[flat_index(dims, 3, 1, 2)] = true;
        b[flat_index(dims, 2, 3, 2)] = true;
        let bbox = BoundingBox::of_union(&a, &b, dims).unwrap();
        assert_eq!(
            bbox,
            BoundingBox {
                low: [1, 1, 1],
                high: [3, 3, 2]
            }
        );
        assert_eq!(
            BoundingBox::of_union(&[false; 60], &[false; 60], dims),
            None
        );
    }

    #[test]
    fn codes_match_the_definition_at_every_corner() {
        // A pseudo-random 4 × 3 × 5 mask filling its own bounding box's corners, compared
        // with the code built voxel by voxel from the definition of the benchmark.
        let dims = [4, 3, 5];
        let mask: Vec<bool> = (0..60u64)
            .map(|v| ((v * 2654435761) >> 7) % 3 == 0)
            .collect();
        let mut all = mask.clone();
        all[0] = true;
        all[59] = true;
        let bbox = BoundingBox::of_union(&all, &all, dims).unwrap();
        assert_eq!(
            bbox,
            BoundingBox {
                low: [0, 0, 0],
                high: [3, 2, 4]
            }
        );
        let codes = bbox.neighbour_codes(&mask, dims, &mut Vec::new());
        let inside = |i: isize, j: isize, k: isize| {
            (0..4).contains(&i)
                && (0..3).contains(&j)
                && (0..5).contains(&k)
                && mask[(i + 4 * (j + 3 * k)) as usize]
        };
        for pk in 0..6isize {
            for pj in 0..4isize {
                for pi in 0..5isize {
                    let mut block = [[[false; 2]; 2]; 2];
                    for (a_i, plane) in block.iter_mut().enumerate() {
                        for (a_j, row) in plane.iter_mut().enumerate() {
                            for (a_k, v) in row.iter_mut().enumerate() {
                                *v =
                                    inside(pi - a_i as isize, pj - a_j as isize, pk - a_k as isize);
                            }
                        }
                    }
                    let flat = (pi + 5 * (pj + 4 * pk)) as usize;
                    assert_eq!(
                        codes[flat],
                        neighbour_code(block),
                        "corner ({pi}, {pj}, {pk})"
                    );
                }
            }
        }
    }

    #[test]
    fn rejects_bad_input_with_the_values() {
        let m = vec![false; 8];
        assert_eq!(
            surface_dice(&m, &m[..7], [2, 2, 2], [1.0; 3], 1.0),
            Err(MetricsError::LengthMismatch {
                truth: 8,
                prediction: 7
            })
        );
        assert!(matches!(
            surface_dice(&m, &m, [2, 2, 3], [1.0; 3], 1.0),
            Err(MetricsError::DimsMismatch {
                len: 8,
                expected: Some(12),
                ..
            })
        ));
        assert_eq!(
            surface_dice(&m, &m, [2, 2, 2], [1.0, f64::INFINITY, 1.0], 1.0),
            Err(MetricsError::InvalidSpacing {
                spacing_mm: [1.0, f64::INFINITY, 1.0]
            })
        );
        let err = surface_dice(&m, &m, [2, 2, 2], [1.0; 3], -1.0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "tolerance must be a finite number of mm ≥ 0, got -1 mm"
        );
        assert!(surface_dice(&m, &m, [2, 2, 2], [1.0; 3], f64::NAN).is_err());
    }

    #[test]
    fn an_empty_prediction_scores_plus_zero() {
        // One truth voxel and nothing predicted: no surface lies within any tolerance, so
        // the overlap is 0 of √3 mm² (hand calculation), and it must print as 0, not −0.
        let mut truth = vec![false; 27];
        truth[13] = true;
        let nsd = surface_dice(&truth, &[false; 27], [3, 3, 3], [1.0; 3], 3.0).expect("nsd");
        assert_eq!(nsd, 0.0);
        assert!(nsd.is_sign_positive(), "NSD is {nsd}");
    }

    #[test]
    fn single_voxel_surface_is_eight_corner_triangles() {
        // A lone voxel touches 8 corners, each with one voxel inside: 8 triangles of area
        // √3/8 at unit spacing, √3 mm² in total (hand calculation).
        let mut m = vec![false; 27];
        m[13] = true;
        let s = surface_distances(&m, &m, [3, 3, 3], [1.0; 3]).unwrap();
        assert_eq!(s.surfel_areas_truth.len(), 8);
        assert!((s.surface_area_truth_mm2() - 3f64.sqrt()).abs() < 1e-12);
        assert!(s.distances_truth_to_prediction.iter().all(|&d| d == 0.0));
        assert_eq!(s.surface_dice_at(0.0), Ok(1.0));
    }
}
