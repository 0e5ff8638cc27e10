//! The shape of one synthetic lesion: a union of a few deformed ellipsoids whose surface is
//! displaced by smooth 3-D noise, drawn in millimetres and rasterised into a hard mask and a
//! soft blending weight (alpha) on the scan's own grid.
//!
//! Real COVID-19 infiltrates are irregular, often lobulated patches, flattened against the
//! pleura where they are subpleural; a single ellipsoid looks like a tumour. The union of
//! blobs gives the lobulation, the noise the irregular outline, and orienting the short axis
//! along the pleural normal the flattened subpleural shape.

use crate::distance_transform::squared_distance_transform;

use super::noise::{Draws, GradientNoise};

/// One deformed ellipsoid of a lesion, in the grid's mm axes.
#[derive(Debug, Clone)]
struct Blob {
    /// Centre in mm (voxel index times spacing).
    centre_mm: [f64; 3],
    /// Orthonormal principal axes, one per row.
    axes: [[f64; 3]; 3],
    /// 1 / semi-axis length (1/mm) along each principal axis.
    inverse_radii: [f64; 3],
}

impl Blob {
    /// Ellipsoidal radius of `p` (mm): 1 on the surface, 0 at the centre.
    #[inline]
    fn radius(&self, p: [f64; 3]) -> f64 {
        let d = [
            p[0] - self.centre_mm[0],
            p[1] - self.centre_mm[1],
            p[2] - self.centre_mm[2],
        ];
        let mut sum = 0.0;
        for (axis, inverse) in self.axes.iter().zip(self.inverse_radii) {
            let t = (axis[0] * d[0] + axis[1] * d[1] + axis[2] * d[2]) * inverse;
            sum += t * t;
        }
        sum.sqrt()
    }
}

/// The solid shape of a lesion: inside where [`LesionShape::field`] ≤ 1.
#[derive(Debug, Clone)]
pub(crate) struct LesionShape {
    blobs: Vec<Blob>,
    /// Noise that displaces the surface.
    warp: GradientNoise,
    /// Largest displacement, in units of the ellipsoidal radius.
    warp_amplitude: f64,
    /// Feature size of the displacement noise (mm).
    warp_scale_mm: f64,
    /// Centre of the first blob (mm) and the distance from it beyond which the field is
    /// above 1 everywhere.
    centre_mm: [f64; 3],
    reach_mm: f64,
}

/// An orthonormal frame whose first axis is `first` (a unit vector).
fn frame_from(first: [f64; 3]) -> [[f64; 3]; 3] {
    let helper = if first[0].abs() < 0.9 {
        [1.0, 0.0, 0.0]
    } else {
        [0.0, 1.0, 0.0]
    };
    let second = normalise(cross(first, helper));
    let third = cross(first, second);
    [first, second, third]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn normalise(v: [f64; 3]) -> [f64; 3] {
    let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    if n > 0.0 {
        v.map(|c| c / n)
    } else {
        [1.0, 0.0, 0.0]
    }
}

impl LesionShape {
    /// A lesion of about `volume_ml` around `centre_mm`. `normal` is the unit vector from the
    /// nearest pleura into the lung (zero when unknown) and `border_mm` the distance to it:
    /// lesions within one radius of the pleura are flattened along the normal and spread
    /// along the pleura.
    pub fn draw(
        centre_mm: [f64; 3],
        normal: [f64; 3],
        border_mm: f64,
        volume_ml: f64,
        draws: &mut Draws,
    ) -> Self {
        let mut radius_mm = (3.0 * volume_ml * 1000.0 / (4.0 * std::f64::consts::PI)).cbrt();
        let subpleural = normal != [0.0; 3] && border_mm < 1.2 * radius_mm;
        if subpleural {
            // About a third of a subpleural lesion's drawn shape lies beyond the pleura and is
            // cut off; a larger shape keeps the in-lung volume near the drawn one.
            radius_mm *= 1.15;
        }
        let count = 1 + draws.integer(1, 4) as usize;

        let mut blobs = Vec::with_capacity(count);
        let mut reach_mm: f64 = 0.0;
        for n in 0..count {
            // The first blob is the lesion's body; the others are lobules around it.
            let (offset_mm, blob_radius) = if n == 0 {
                (0.0, radius_mm * draws.uniform(0.65, 0.85))
            } else {
                (
                    radius_mm * draws.uniform(0.35, 0.8),
                    radius_mm * draws.uniform(0.35, 0.65),
                )
            };
            let mut direction = draws.direction();
            if subpleural {
                // Keep lobules along the pleura rather than towards the hilum.
                let along =
                    direction[0] * normal[0] + direction[1] * normal[1] + direction[2] * normal[2];
                direction = normalise([0, 1, 2].map(|a| direction[a] - 0.8 * along * normal[a]));
            }
            let blob_centre = [0, 1, 2].map(|a| centre_mm[a] + offset_mm * direction[a]);

            let (axes, stretch) = if subpleural {
                let flat = draws.uniform(0.45, 0.75);
                let spread = (1.0 / flat).sqrt();
                let twist = draws.uniform(0.8, 1.25);
                (frame_from(normal), [flat, spread * twist, spread / twist])
            } else {
                let a = draws.uniform(0.7, 1.4);
                let b = draws.uniform(0.7, 1.4);
                (frame_from(draws.direction()), [a, b, 1.0 / (a * b)])
            };
            let radii = stretch.map(|s| blob_radius * s);
            reach_mm = reach_mm.max(offset_mm + radii.iter().cloned().fold(0.0, f64::max));
            blobs.push(Blob {
                centre_mm: blob_centre,
                axes,
                inverse_radii: radii.map(|r| 1.0 / r.max(0.5)),
            });
        }

        let warp_amplitude = draws.uniform(0.25, 0.45);
        let warp_scale_mm = (radius_mm * draws.uniform(0.35, 0.6)).max(3.0);
        LesionShape {
            blobs,
            warp: GradientNoise::new(draws.seed()),
            warp_amplitude,
            warp_scale_mm,
            centre_mm,
            // The displacement is clamped to ±amplitude, so the displaced surface lies within
            // (1 + amplitude) times each blob's extent.
            reach_mm: reach_mm * (1.0 + warp_amplitude),
        }
    }

    /// Below 1 inside the lesion: the smallest ellipsoidal radius over the blobs, displaced by
    /// the noise. `p` in mm.
    #[inline]
    pub fn field(&self, p: [f64; 3]) -> f64 {
        let radius = self
            .blobs
            .iter()
            .map(|b| b.radius(p))
            .fold(f64::INFINITY, f64::min);
        if radius > 1.0 + self.warp_amplitude {
            return radius;
        }
        let q = p.map(|c| (c / self.warp_scale_mm) as f32);
        // The fractal noise has a standard deviation of about 0.25: doubled and clamped, it
        // displaces the surface by up to ±amplitude, often reaching the limit.
        let displacement = (2.0 * f64::from(self.warp.fractal(q, 3))).clamp(-1.0, 1.0);
        radius - self.warp_amplitude * displacement
    }

    /// The box of voxels (inclusive lower corner, exclusive upper corner) that holds the
    /// lesion and `margin_mm` around it, clipped to `dims`; `None` when it misses the grid.
    pub fn bounding_box(
        &self,
        dims: [usize; 3],
        spacing_mm: [f64; 3],
        margin_mm: f64,
    ) -> Option<([usize; 3], [usize; 3])> {
        let mut lo = [0usize; 3];
        let mut hi = [0usize; 3];
        for a in 0..3 {
            let reach = self.reach_mm + margin_mm + spacing_mm[a];
            let from = ((self.centre_mm[a] - reach) / spacing_mm[a]).floor();
            let to = ((self.centre_mm[a] + reach) / spacing_mm[a]).ceil() + 1.0;
            if to <= 0.0 || from >= dims[a] as f64 {
                return None;
            }
            lo[a] = from.max(0.0) as usize;
            hi[a] = (to as usize).min(dims[a]);
        }
        Some((lo, hi))
    }
}

/// A lesion rasterised on a box of the scan's grid.
#[derive(Debug, Clone)]
pub(crate) struct Raster {
    /// Lower corner of the box (voxel indices).
    pub lo: [usize; 3],
    /// Size of the box `[bi, bj, bk]`; the vectors below are `[bi * bj * bk]`, i fastest.
    pub dims: [usize; 3],
    /// Blending weight in `[0, 1]`: ≥ 0.5 exactly on the mask, 0 outside the lesion's lung and
    /// beyond `margin / 2` from the mask.
    pub alpha: Vec<f32>,
    /// The lesion's mask: inside the shape and inside its lung.
    pub mask: Vec<bool>,
    /// Depth (mm) of each mask voxel below the lesion's surface (0 elsewhere).
    pub depth_mm: Vec<f32>,
}

/// `smoothstep` on `[0, 1]`: 0 below, 1 above, `3x² − 2x³` between.
#[inline]
fn smooth(x: f64) -> f64 {
    let x = x.clamp(0.0, 1.0);
    x * x * (3.0 - 2.0 * x)
}

/// Rasterises `shape` on the grid `dims` / `spacing_mm`, restricted to the voxels for which
/// `in_lung(flat index)` holds. `margin_mm` is the width of the soft edge: alpha rises from 0
/// at `margin / 2` outside the mask to 0.5 at its surface and 1 at `margin / 2` inside.
///
/// Returns `None` when the shape has no voxel in the lung.
pub(crate) fn rasterise(
    shape: &LesionShape,
    dims: [usize; 3],
    spacing_mm: [f64; 3],
    margin_mm: f64,
    in_lung: impl Fn(usize) -> bool,
) -> Option<Raster> {
    let (lo, hi) = shape.bounding_box(dims, spacing_mm, margin_mm)?;
    let bdims = [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]];
    let [bi, bj, bk] = bdims;
    let len = bi * bj * bk;

    let mut inside = vec![false; len];
    let mut lung = vec![false; len];
    let mut mask = vec![false; len];
    for k in 0..bk {
        for j in 0..bj {
            for i in 0..bi {
                let b = i + bi * (j + bj * k);
                let (gi, gj, gk) = (lo[0] + i, lo[1] + j, lo[2] + k);
                let p = [
                    gi as f64 * spacing_mm[0],
                    gj as f64 * spacing_mm[1],
                    gk as f64 * spacing_mm[2],
                ];
                inside[b] = shape.field(p) <= 1.0;
                lung[b] = in_lung(gi + dims[0] * (gj + dims[1] * gk));
                mask[b] = inside[b] && lung[b];
            }
        }
    }
    if !mask.iter().any(|&m| m) {
        return None;
    }

    // Depth is measured to the shape's own surface, not to the lung border, so a subpleural
    // lesion stays dense right up to the pleura (as real ones do).
    let outside: Vec<bool> = inside.iter().map(|&v| !v).collect();
    let depth_sq = squared_distance_transform(&outside, bdims, spacing_mm).ok()?;
    let gap_sq = squared_distance_transform(&mask, bdims, spacing_mm).ok()?;

    let half = 0.5 * margin_mm;
    let half_voxel = 0.5 * spacing_mm.iter().cloned().fold(f64::INFINITY, f64::min);
    let mut alpha = vec![0f32; len];
    let mut depth_mm = vec![0f32; len];
    for b in 0..len {
        if mask[b] {
            let depth = (depth_sq[b].sqrt() - half_voxel).max(0.0);
            depth_mm[b] = depth as f32;
            alpha[b] = (0.5 + 0.5 * smooth(depth / half)) as f32;
        } else if lung[b] && !inside[b] {
            let gap = gap_sq[b].sqrt();
            // Strictly below 0.5 off the mask: the first voxel outside is a whole voxel away.
            alpha[b] = (0.5 * (1.0 - smooth(gap / half))) as f32;
        }
    }
    Some(Raster {
        lo,
        dims: bdims,
        alpha,
        mask,
        depth_mm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lesion_away_from_the_pleura_has_about_the_drawn_volume() {
        // 20 mL is a sphere of radius 16.8 mm; the union of lobules and the noise make the
        // shape irregular, but its volume stays within a factor of about two of the target.
        let mut draws = Draws::new(3);
        let mut volumes = Vec::new();
        for _ in 0..8 {
            let shape = LesionShape::draw([100.0; 3], [0.0; 3], 100.0, 20.0, &mut draws);
            let raster = rasterise(&shape, [200; 3], [1.0; 3], 4.0, |_| true).unwrap();
            volumes.push(raster.mask.iter().filter(|&&m| m).count() as f64 / 1000.0);
        }
        let mean = volumes.iter().sum::<f64>() / volumes.len() as f64;
        assert!((10.0..40.0).contains(&mean), "volumes {volumes:?}");
    }

    #[test]
    fn alpha_is_at_least_half_exactly_on_the_mask_and_zero_beyond_half_the_margin() {
        let mut draws = Draws::new(11);
        let shape = LesionShape::draw([60.0; 3], [0.0; 3], 100.0, 5.0, &mut draws);
        let spacing = [0.8, 0.8, 2.0];
        let raster = rasterise(&shape, [150, 150, 60], spacing, 6.0, |_| true).unwrap();
        let [bi, bj, _] = raster.dims;
        let mask_points: Vec<[f64; 3]> = (0..raster.mask.len())
            .filter(|&b| raster.mask[b])
            .map(|b| {
                [
                    (b % bi) as f64,
                    ((b / bi) % bj) as f64,
                    (b / (bi * bj)) as f64,
                ]
            })
            .collect();
        for (b, &a) in raster.alpha.iter().enumerate() {
            assert_eq!(a >= 0.5, raster.mask[b], "voxel {b}: alpha {a}");
            if a > 0.0 && !raster.mask[b] {
                // Brute-force distance to the mask; alpha > 0 only within margin / 2 = 3 mm.
                let p = [
                    (b % bi) as f64,
                    ((b / bi) % bj) as f64,
                    (b / (bi * bj)) as f64,
                ];
                let nearest = mask_points
                    .iter()
                    .map(|q| {
                        (0..3)
                            .map(|ax| ((p[ax] - q[ax]) * spacing[ax]).powi(2))
                            .sum::<f64>()
                    })
                    .fold(f64::INFINITY, f64::min)
                    .sqrt();
                assert!(nearest < 3.0, "alpha {a} at {nearest} mm from the mask");
            }
        }
    }
}
