//! Where infiltrates go: a coarse map of the lungs with each lung voxel's distance to the lung
//! border and its height between the lung base and apex, from which lesion centres are drawn
//! with a subpleural and basal preference.
//!
//! COVID-19 pneumonia is typically peripheral (subpleural) and basal (lower lobes), bilateral
//! and multifocal (Bressem et al. 2021, introduction; Yao et al., IEEE TMI 2021, who place
//! synthetic lesions the same way). The map is on a grid of about 4 mm so that the distance
//! transform of a full 512 × 512 × 150 scan costs milliseconds; the lesion shapes themselves
//! are drawn on the full grid.

use crate::distance_transform::squared_distance_transform;
use crate::lung_mask::{LungMask, LEFT_LUNG, RIGHT_LUNG};
use crate::volume::Volume;

use super::noise::Draws;
use super::{Side, SynthesisError, SynthesisOptions};

/// Edge length (mm) the coarse map's voxels aim for.
const COARSE_MM: f64 = 4.0;

/// The lungs of one scan on a coarse grid, computed once per scan and shared by its cases.
#[derive(Debug, Clone)]
pub(crate) struct LungMap {
    /// Fine voxels per coarse voxel along each axis.
    factor: [usize; 3],
    /// `[ci, cj, ck]`.
    coarse_dims: [usize; 3],
    /// Coarse voxel size in mm along each axis.
    coarse_spacing_mm: [f64; 3],
    /// Distance (mm) of each coarse voxel to the nearest coarse voxel outside the lungs.
    border_mm: Vec<f32>,
    /// Coarse lung voxels of each side: `(flat coarse index, height, medial)`, with the height
    /// 0 at the lowest lung voxel (along world z) and 1 at the highest, and `medial` the
    /// component (−1 … 1) of the inward pleural normal that points away from the midline:
    /// about 1 at the mediastinal and hilar pleura, −1 at the lateral costal pleura.
    voxels: [Vec<(usize, f32, f32)>; 2],
}

impl LungMap {
    /// The map of `lung` on the grid of `volume` (dims already checked to agree).
    pub fn new(volume: &Volume, lung: &LungMask) -> Result<Self, SynthesisError> {
        let dims = volume.dims;
        let factor =
            [0, 1, 2].map(|a| ((COARSE_MM / volume.spacing_mm[a]).floor() as usize).max(1));
        let coarse_dims = [0, 1, 2].map(|a| dims[a].div_ceil(factor[a]));
        let coarse_spacing_mm = [0, 1, 2].map(|a| volume.spacing_mm[a] * factor[a] as f64);
        let [ci, cj, ck] = coarse_dims;

        let mut labels = vec![0u8; ci * cj * ck];
        for k in 0..ck {
            for j in 0..cj {
                for i in 0..ci {
                    let fine = Self::centre_of(factor, dims, [i, j, k]);
                    labels[i + ci * (j + cj * k)] =
                        lung.labels[volume.index(fine[0], fine[1], fine[2])];
                }
            }
        }

        let outside: Vec<bool> = labels.iter().map(|&l| l == 0).collect();
        let squared = squared_distance_transform(&outside, coarse_dims, coarse_spacing_mm)
            .map_err(|err| SynthesisError::Geometry {
                message: err.to_string(),
            })?;
        let border_mm: Vec<f32> = squared.iter().map(|d| d.sqrt() as f32).collect();

        let z_of = |c: [usize; 3]| {
            let fine = Self::centre_of(factor, dims, c);
            volume.affine.apply(fine.map(|v| v as f64))[2]
        };
        let mut z_range = (f64::INFINITY, f64::NEG_INFINITY);
        let mut lung_voxels: Vec<(usize, u8, f64)> = Vec::new();
        for k in 0..ck {
            for j in 0..cj {
                for i in 0..ci {
                    let index = i + ci * (j + cj * k);
                    let label = labels[index];
                    if label == RIGHT_LUNG || label == LEFT_LUNG {
                        let z = z_of([i, j, k]);
                        z_range = (z_range.0.min(z), z_range.1.max(z));
                        lung_voxels.push((index, label, z));
                    }
                }
            }
        }
        if lung_voxels.is_empty() {
            return Err(SynthesisError::NoLung);
        }

        // World direction of one mm along each grid axis: the affine's columns over the spacing.
        let m = &volume.affine.0;
        let world_x = [0, 1, 2].map(|a| m[0][a] / volume.spacing_mm[a]);

        let mut map = LungMap {
            factor,
            coarse_dims,
            coarse_spacing_mm,
            border_mm,
            voxels: [Vec::new(), Vec::new()],
        };
        let height_mm = (z_range.1 - z_range.0).max(1e-6);
        let [ci, cj, _] = coarse_dims;
        for (index, label, z) in lung_voxels {
            // The right lung lies at +x: away from the midline is +x there, −x on the left.
            let (side, away) = if label == RIGHT_LUNG {
                (0, 1.0)
            } else {
                (1, -1.0)
            };
            let normal = map.inward_normal([index % ci, (index / ci) % cj, index / (ci * cj)]);
            let medial =
                away * (normal[0] * world_x[0] + normal[1] * world_x[1] + normal[2] * world_x[2]);
            map.voxels[side].push((index, ((z - z_range.0) / height_mm) as f32, medial as f32));
        }
        Ok(map)
    }

    /// The fine voxel at the centre of coarse voxel `c`.
    fn centre_of(factor: [usize; 3], dims: [usize; 3], c: [usize; 3]) -> [usize; 3] {
        [0, 1, 2].map(|a| (c[a] * factor[a] + factor[a] / 2).min(dims[a] - 1))
    }

    /// The sides that have lung on the map.
    pub fn sides_present(&self) -> Vec<Side> {
        let mut sides = Vec::new();
        if !self.voxels[0].is_empty() {
            sides.push(Side::Right);
        }
        if !self.voxels[1].is_empty() {
            sides.push(Side::Left);
        }
        sides
    }

    /// The placement density of each coarse lung voxel of `side`, cumulated (for drawing by
    /// bisection): `(central + c · e^(−d / scale)) · ratio^(1 − h)` for border distance d (mm)
    /// and height h, so the density at the costal pleura is `(1 + central) / central` times
    /// that deep in the lung, and at the base `ratio` times that at the apex. `c` is 1 at the
    /// costal pleura and falls to `mediastinal_density` where the nearest pleura faces the
    /// mediastinum or the hilum (where COVID-19 seldom starts).
    pub fn cumulative_density(&self, side: Side, options: &SynthesisOptions) -> Vec<f64> {
        let mut total = 0.0;
        self.voxels[side.index()]
            .iter()
            .map(|&(index, height, medial)| {
                let d = f64::from(self.border_mm[index]);
                let t = ((f64::from(medial) - 0.1) / 0.6).clamp(0.0, 1.0);
                let costal = 1.0 - (1.0 - options.mediastinal_density) * t * t * (3.0 - 2.0 * t);
                let peripheral =
                    options.central_density + costal * (-d / options.peripheral_scale_mm).exp();
                let basal = options.basal_ratio.powf(1.0 - f64::from(height));
                total += peripheral * basal;
                total
            })
            .collect()
    }

    /// A lesion centre on `side`: a coarse voxel drawn by `cumulative` (from
    /// [`Self::cumulative_density`]), a uniform position inside it, in fine voxel coordinates,
    /// with the unit normal pointing away from the nearest lung border (mm axes of the grid;
    /// zero deep inside the lung) and the distance to that border in mm.
    pub fn draw_centre(
        &self,
        side: Side,
        cumulative: &[f64],
        draws: &mut Draws,
    ) -> Option<([f64; 3], [f64; 3], f64)> {
        let total = *cumulative.last()?;
        let target = draws.unit() * total;
        let slot = cumulative
            .partition_point(|&c| c <= target)
            .min(cumulative.len() - 1);
        let (index, _, _) = self.voxels[side.index()][slot];
        let [ci, cj, _] = self.coarse_dims;
        let c = [index % ci, (index / ci) % cj, index / (ci * cj)];

        let centre = [0, 1, 2].map(|a| (c[a] as f64 + draws.unit()) * self.factor[a] as f64 - 0.5);
        let normal = self.inward_normal(c);
        Some((centre, normal, f64::from(self.border_mm[index])))
    }

    /// Unit gradient (mm axes) of the border distance at coarse voxel `c`, by central
    /// differences; it points from the nearest pleura into the lung.
    fn inward_normal(&self, c: [usize; 3]) -> [f64; 3] {
        let [ci, cj, ck] = self.coarse_dims;
        let at = |i: usize, j: usize, k: usize| f64::from(self.border_mm[i + ci * (j + cj * k)]);
        let mut g = [0.0; 3];
        for (axis, value) in g.iter_mut().enumerate() {
            let mut lo = c;
            let mut hi = c;
            lo[axis] = c[axis].saturating_sub(1);
            hi[axis] = (c[axis] + 1).min([ci, cj, ck][axis] - 1);
            let steps = (hi[axis] - lo[axis]) as f64;
            if steps > 0.0 {
                *value = (at(hi[0], hi[1], hi[2]) - at(lo[0], lo[1], lo[2]))
                    / (steps * self.coarse_spacing_mm[axis]);
            }
        }
        let norm = (g[0] * g[0] + g[1] * g[1] + g[2] * g[2]).sqrt();
        if norm > 1e-6 {
            g.map(|v| v / norm)
        } else {
            [0.0; 3]
        }
    }
}
