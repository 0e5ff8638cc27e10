//! Training augmentations of the recipe (after faimed3d's `aug_transforms3d`): an in-plane
//! perspective warp combined with rotation and zoom, left–right mirroring, brightness and
//! contrast, and Gaussian noise. Images are sampled bilinearly, masks by nearest neighbour, so
//! a mask stays 0/1 and follows its image exactly.
//!
//! Volumes are flat in this crate's layout on the stage grid `dims = [width, height, depth]`
//! (`i` fastest), the row-major order of one `[depth, height, width]` network channel. The warp
//! is the same for every slice: CT slices are thick and the lesions' appearance along the
//! body axis should not be distorted.

use anyhow::bail;
use serde::{Deserialize, Serialize};

use crate::train::rng::SplitMix64;

/// Probabilities and magnitudes of the augmentations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentConfig {
    /// Apply augmentations at all.
    pub enabled: bool,
    /// Probability of the geometric warp (fastai's `p_affine`: 0.75).
    pub p_warp: f64,
    /// Largest in-plane rotation, degrees.
    pub max_rotation_deg: f64,
    /// Zoom range `[low, high]` (1: none).
    pub zoom: [f64; 2],
    /// Largest perspective coefficient (the projective row `[g, h]` of the warp, in units of
    /// the half-extent); 0 disables the perspective part.
    pub perspective: f64,
    /// Probability of mirroring left–right.
    pub p_flip: f64,
    /// Probability of the brightness/contrast change (fastai's `p_lighting`: 0.75).
    pub p_lighting: f64,
    /// Largest brightness shift, in windowed units (the window maps to 0…1).
    pub brightness: f64,
    /// Largest relative contrast change (0.2: factors 1/1.2 … 1.2).
    pub contrast: f64,
    /// Probability of adding Gaussian noise.
    pub p_noise: f64,
    /// Largest noise standard deviation, windowed units.
    pub noise_sd: f64,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            p_warp: 0.75,
            max_rotation_deg: 10.0,
            zoom: [0.9, 1.1],
            perspective: 0.1,
            p_flip: 0.5,
            p_lighting: 0.75,
            brightness: 0.05,
            contrast: 0.2,
            p_noise: 0.25,
            noise_sd: 0.02,
        }
    }
}

impl AugmentConfig {
    /// No augmentation.
    #[cfg(test)]
    pub fn none() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// Checks that probabilities are probabilities and ranges are ranges.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, p) in [
            ("p_warp", self.p_warp),
            ("p_flip", self.p_flip),
            ("p_lighting", self.p_lighting),
            ("p_noise", self.p_noise),
        ] {
            if !(0.0..=1.0).contains(&p) {
                bail!("augmentation probability {name} = {p} is not in [0, 1]");
            }
        }
        let [low, high] = self.zoom;
        if !(low > 0.0 && low <= high && high.is_finite()) {
            bail!(
                "augmentation zoom {:?} must satisfy 0 < low ≤ high",
                self.zoom
            );
        }
        for (name, v) in [
            ("max_rotation_deg", self.max_rotation_deg),
            ("perspective", self.perspective),
            ("brightness", self.brightness),
            ("contrast", self.contrast),
            ("noise_sd", self.noise_sd),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                bail!("augmentation {name} = {v} must be a finite number ≥ 0");
            }
        }
        if self.perspective >= 0.5 {
            bail!(
                "augmentation perspective {} folds the image: keep it below 0.5",
                self.perspective
            );
        }
        Ok(())
    }
}

/// The in-plane map from output to source coordinates, both normalised to `[-1, 1]` at the
/// outer voxel edges: `src = (A·dst) / (p·dst + 1)` with `A` 2×2 and `p` the projective row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Warp {
    /// Linear part, row-major: `[[a, b], [c, d]]`.
    pub linear: [[f64; 2]; 2],
    /// Projective row `[g, h]`.
    pub projective: [f64; 2],
}

impl Warp {
    /// The identity.
    pub const IDENTITY: Warp = Warp {
        linear: [[1.0, 0.0], [0.0, 1.0]],
        projective: [0.0, 0.0],
    };

    /// Source position of normalised output position `(u, v)`.
    fn apply(&self, u: f64, v: f64) -> (f64, f64) {
        let [[a, b], [c, d]] = self.linear;
        let w = self.projective[0] * u + self.projective[1] * v + 1.0;
        ((a * u + b * v) / w, (c * u + d * v) / w)
    }
}

/// Draws one sample's augmentation and applies it to `image` and `mask` in place.
///
/// `dims = [width, height, depth]`; `image` holds windowed intensities, `mask` 0/1 values.
/// Every draw is taken from `rng` in a fixed order whatever is applied, so the sequence of
/// random numbers depends only on the number of samples.
pub fn augment(
    config: &AugmentConfig,
    rng: &mut SplitMix64,
    image: &mut Vec<f32>,
    mask: &mut Vec<f32>,
    dims: [usize; 3],
) {
    let draws: [f64; 12] = std::array::from_fn(|_| rng.unit());
    if !config.enabled {
        return;
    }
    let between = |u: f64, low: f64, high: f64| low + (high - low) * u;

    let warp_on = draws[0] < config.p_warp;
    let flip = draws[1] < config.p_flip;
    if warp_on || flip {
        let mut warp = Warp::IDENTITY;
        if warp_on {
            let angle = between(draws[2], -1.0, 1.0) * config.max_rotation_deg.to_radians();
            let zoom = between(draws[3], config.zoom[0], config.zoom[1]);
            let (sin, cos) = angle.sin_cos();
            // Zooming in by `zoom` samples a `1/zoom` smaller source region.
            let s = 1.0 / zoom;
            warp.linear = [[s * cos, -s * sin], [s * sin, s * cos]];
            warp.projective = [
                between(draws[4], -1.0, 1.0) * config.perspective,
                between(draws[5], -1.0, 1.0) * config.perspective,
            ];
        }
        if flip {
            warp.linear[0][0] = -warp.linear[0][0];
            warp.linear[1][0] = -warp.linear[1][0];
        }
        *image = warp_volume(image, dims, &warp, Sampling::Bilinear);
        *mask = warp_volume(mask, dims, &warp, Sampling::Nearest);
    }

    if draws[6] < config.p_lighting {
        let shift = between(draws[7], -1.0, 1.0) * config.brightness;
        let factor = (1.0 + config.contrast).powf(between(draws[8], -1.0, 1.0));
        let mean = image.iter().map(|&v| v as f64).sum::<f64>() / image.len().max(1) as f64;
        for v in image.iter_mut() {
            *v = ((*v as f64 - mean) * factor + mean + shift) as f32;
        }
    }

    if draws[9] < config.p_noise {
        let sd = draws[10] * config.noise_sd;
        let mut noise = SplitMix64::new(draws[11].to_bits());
        for v in image.iter_mut() {
            *v += (noise.normal() * sd) as f32;
        }
    }
}

/// How a warped volume is sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// Bilinear in-plane, 0 outside the source (the window's floor, below air).
    Bilinear,
    /// Nearest voxel, 0 outside.
    Nearest,
}

/// Warps every slice of `data` (`dims = [width, height, depth]`) with `warp`.
pub fn warp_volume(data: &[f32], dims: [usize; 3], warp: &Warp, sampling: Sampling) -> Vec<f32> {
    let [ni, nj, nk] = dims;
    let mut out = vec![0.0f32; data.len()];
    for j in 0..nj {
        let v = (j as f64 + 0.5) / nj as f64 * 2.0 - 1.0;
        for i in 0..ni {
            let u = (i as f64 + 0.5) / ni as f64 * 2.0 - 1.0;
            let (su, sv) = warp.apply(u, v);
            // Back to voxel coordinates whose integers are voxel centres.
            let x = (su + 1.0) / 2.0 * ni as f64 - 0.5;
            let y = (sv + 1.0) / 2.0 * nj as f64 - 0.5;
            match sampling {
                Sampling::Nearest => {
                    let (xi, yi) = (x.round(), y.round());
                    if xi < 0.0 || yi < 0.0 || xi >= ni as f64 || yi >= nj as f64 {
                        continue;
                    }
                    let src = xi as usize + ni * yi as usize;
                    for k in 0..nk {
                        out[i + ni * (j + nj * k)] = data[src + ni * nj * k];
                    }
                }
                Sampling::Bilinear => {
                    let (x0, y0) = (x.floor(), y.floor());
                    let (fx, fy) = ((x - x0) as f32, (y - y0) as f32);
                    let taps = [
                        (x0, y0, (1.0 - fx) * (1.0 - fy)),
                        (x0 + 1.0, y0, fx * (1.0 - fy)),
                        (x0, y0 + 1.0, (1.0 - fx) * fy),
                        (x0 + 1.0, y0 + 1.0, fx * fy),
                    ];
                    for (tx, ty, weight) in taps {
                        if weight == 0.0
                            || tx < 0.0
                            || ty < 0.0
                            || tx >= ni as f64
                            || ty >= nj as f64
                        {
                            continue;
                        }
                        let src = tx as usize + ni * ty as usize;
                        for k in 0..nk {
                            out[i + ni * (j + nj * k)] += weight * data[src + ni * nj * k];
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(dims: [usize; 3]) -> Vec<f32> {
        (0..dims.iter().product::<usize>())
            .map(|v| v as f32)
            .collect()
    }

    #[test]
    fn identity_warp_keeps_the_volume() {
        let dims = [5, 4, 3];
        let data = ramp(dims);
        assert_eq!(
            warp_volume(&data, dims, &Warp::IDENTITY, Sampling::Bilinear),
            data
        );
        assert_eq!(
            warp_volume(&data, dims, &Warp::IDENTITY, Sampling::Nearest),
            data
        );
    }

    #[test]
    fn mirror_reverses_each_row() {
        let dims = [4, 2, 2];
        let data = ramp(dims);
        let mirror = Warp {
            linear: [[-1.0, 0.0], [0.0, 1.0]],
            projective: [0.0, 0.0],
        };
        let got = warp_volume(&data, dims, &mirror, Sampling::Nearest);
        // Row 0 of slice 0 is 0 1 2 3; mirrored 3 2 1 0. Slice 1, row 1 is 12…15.
        assert_eq!(&got[0..4], &[3.0, 2.0, 1.0, 0.0]);
        assert_eq!(&got[12..16], &[15.0, 14.0, 13.0, 12.0]);
    }

    #[test]
    fn quarter_turn_moves_voxels_where_a_hand_rotation_does() {
        // src = R·dst with R = [[0, -1], [1, 0]]: output (u, v) reads source (−v, u). On a
        // 3 × 3 slice output voxel (i=0, j=0) at (−2/3, −2/3) reads (2/3, −2/3): voxel (2, 0).
        let dims = [3, 3, 1];
        let data = ramp(dims);
        let turn = Warp {
            linear: [[0.0, -1.0], [1.0, 0.0]],
            projective: [0.0, 0.0],
        };
        let got = warp_volume(&data, dims, &turn, Sampling::Bilinear);
        assert!((got[0] - 2.0).abs() < 1e-5, "{got:?}");
        // Output (i=2, j=0) at (2/3, −2/3) reads (2/3, 2/3): voxel (2, 2) = 8.
        assert!((got[2] - 8.0).abs() < 1e-5, "{got:?}");
        // The centre stays.
        assert!((got[4] - 4.0).abs() < 1e-5);
    }

    #[test]
    fn masks_stay_binary_and_follow_the_image() {
        let dims = [16, 16, 2];
        let mut image: Vec<f32> = vec![0.0; 16 * 16 * 2];
        let mut mask = image.clone();
        for k in 0..2 {
            for j in 4..9 {
                for i in 3..10 {
                    image[i + 16 * (j + 16 * k)] = 1.0;
                    mask[i + 16 * (j + 16 * k)] = 1.0;
                }
            }
        }
        let config = AugmentConfig {
            p_warp: 1.0,
            p_lighting: 0.0,
            p_noise: 0.0,
            ..Default::default()
        };
        let mut rng = SplitMix64::new(11);
        augment(&config, &mut rng, &mut image, &mut mask, dims);
        assert!(mask.iter().all(|&m| m == 0.0 || m == 1.0));
        // Wherever the warped mask is 1, the bilinear image is mostly inside the square.
        let inside: Vec<f32> = mask
            .iter()
            .zip(&image)
            .filter(|(m, _)| **m == 1.0)
            .map(|(_, v)| *v)
            .collect();
        assert!(inside.len() > 20, "{}", inside.len());
        let mean = inside.iter().sum::<f32>() / inside.len() as f32;
        assert!(mean > 0.7, "mean image value under the mask {mean}");
    }

    #[test]
    fn the_same_seed_gives_the_same_augmentation_and_disabled_draws_too() {
        let dims = [8, 8, 2];
        let config = AugmentConfig {
            p_noise: 1.0,
            ..Default::default()
        };
        let run = |seed: u64, config: &AugmentConfig| {
            let mut rng = SplitMix64::new(seed);
            let mut image = ramp(dims);
            let mut mask = vec![0.0; image.len()];
            augment(config, &mut rng, &mut image, &mut mask, dims);
            (image, rng.state)
        };
        assert_eq!(run(5, &config), run(5, &config));
        assert_ne!(run(5, &config).0, run(6, &config).0);
        // Disabled augmentation still consumes the same draws.
        assert_eq!(run(5, &config).1, run(5, &AugmentConfig::none()).1);
    }
}
