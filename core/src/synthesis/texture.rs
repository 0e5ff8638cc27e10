//! The density of a synthetic lesion and how it is blended into the scan.
//!
//! Ground glass is a hazy rise of the lung's density through which vessels and bronchial walls
//! stay visible; consolidation is dense enough to hide them. Both follow from one rule,
//! `new = (1 − α)·old + α·max(old, target)`: where the old voxel is already denser than the
//! lesion's target (a vessel inside ground glass) it is kept, where it is aerated lung it is
//! raised to the target. The target carries smooth texture (patchy density) and fine grain
//! at the scan's own noise level, so the lesion is not a flat plateau.

use super::noise::{white_noise, Draws, GradientNoise};
use super::{LesionKind, SynthesisOptions};

/// The density field of one lesion.
#[derive(Debug, Clone)]
pub(crate) struct Texture {
    kind: LesionKind,
    /// Target HU of the lesion's ground glass (or of its consolidation when it has no ground
    /// glass).
    pub base_hu: f32,
    /// For a mixed lesion: the depth (mm) below its surface where the consolidated core
    /// begins and the core's target HU.
    core: Option<(f32, f32)>,
    /// Peak-to-peak scale (HU) of the smooth patchy variation.
    patch_hu: f32,
    /// Feature size (mm) of the patchy variation.
    patch_scale_mm: f32,
    patch: GradientNoise,
    /// HU added along a reticular network ("crazy paving": thickened interlobular septa
    /// seen through ground glass), 0 for none.
    septa_hu: f32,
    /// Size (mm) of the network's cells, about a secondary pulmonary lobule.
    septa_scale_mm: f32,
    septa: GradientNoise,
    /// Standard deviation (HU) of the per-voxel grain.
    grain_hu: f32,
    grain_seed: u64,
}

impl Texture {
    /// The texture of a lesion of `kind` in a scan whose parenchyma has noise `noise_hu`.
    pub fn draw(
        kind: LesionKind,
        options: &SynthesisOptions,
        noise_hu: f32,
        draws: &mut Draws,
    ) -> Self {
        let ggo_hu = draws.in_range(options.ggo_hu) as f32;
        let consolidation_hu = draws.in_range(options.consolidation_hu) as f32;
        let (base_hu, core, patch_hu) = match kind {
            LesionKind::GroundGlass => (ggo_hu, None, draws.uniform(180.0, 320.0) as f32),
            LesionKind::Consolidation => (consolidation_hu, None, draws.uniform(40.0, 90.0) as f32),
            LesionKind::Mixed => {
                let core_depth = draws.uniform(2.0, 6.0) as f32;
                (
                    ggo_hu,
                    Some((core_depth, consolidation_hu)),
                    draws.uniform(150.0, 280.0) as f32,
                )
            }
        };
        let septa_hu = if kind != LesionKind::Consolidation && draws.chance(options.septa_share) {
            draws.uniform(120.0, 220.0) as f32
        } else {
            0.0
        };
        Texture {
            kind,
            base_hu,
            core,
            patch_hu,
            patch_scale_mm: draws.uniform(5.0, 10.0) as f32,
            patch: GradientNoise::new(draws.seed()),
            septa_hu,
            septa_scale_mm: draws.uniform(8.0, 14.0) as f32,
            septa: GradientNoise::new(draws.seed()),
            grain_hu: noise_hu,
            grain_seed: draws.seed(),
        }
    }

    /// Target HU at `p_mm` (grid mm axes), `depth_mm` below the lesion's surface, for the
    /// voxel with flat index `index` (which seeds its grain) whose HU is now `old`;
    /// `parenchyma_hu` is the scan's typical aerated-lung density.
    ///
    /// Ground glass follows half of the voxel's own deviation from the parenchyma, so small
    /// vessels and interstitium stay faintly visible through it (the larger ones are kept
    /// whole by [`blend`]); consolidation follows a fifth of it and keeps the air of bronchi
    /// (air bronchograms: lumen below −930 HU stays dark).
    #[inline]
    pub fn target(
        &self,
        p_mm: [f64; 3],
        depth_mm: f32,
        index: usize,
        old: f32,
        parenchyma_hu: f32,
    ) -> f32 {
        let mut hu = self.base_hu;
        let mut consolidated = if self.kind == LesionKind::Consolidation {
            1.0
        } else {
            0.0
        };
        if let Some((core_depth, core_hu)) = self.core {
            // The core's own edge is soft over 3 mm and follows the patchy noise, so it is
            // irregular rather than a concentric shell.
            let wobble = 3.0 * self.patch.at(p_mm.map(|c| (c / 9.0) as f32 + 31.7));
            let t = ((depth_mm - core_depth + wobble) / 3.0).clamp(0.0, 1.0);
            consolidated = t * t * (3.0 - 2.0 * t);
            hu += (core_hu - self.base_hu) * consolidated;
        }

        let scale = self.patch_scale_mm;
        let patchy = self.patch.fractal(p_mm.map(|c| c as f32 / scale), 3);
        hu += self.patch_hu * patchy;

        if self.septa_hu > 0.0 {
            // Thin ridges along the zero set of a smooth field form a closed polygonal network.
            let n = self.septa.at(p_mm.map(|c| c as f32 / self.septa_scale_mm));
            let ridge = (1.0 - n.abs() / 0.06).max(0.0);
            hu += self.septa_hu * ridge * (1.0 - consolidated);
        }

        let follow = 0.5 - 0.3 * consolidated;
        hu += follow * (old - parenchyma_hu) + self.grain_hu * white_noise(self.grain_seed, index);

        let air = ((-930.0 - old) / 40.0).clamp(0.0, 1.0) * consolidated;
        hu + air * (old + 80.0 - hu)
    }
}

/// One voxel blended towards the lesion: `old` where `alpha` is 0 (bit for bit), `max(old,
/// target)` where it is 1.
#[inline]
pub(crate) fn blend(old: f32, target: f32, alpha: f32) -> f32 {
    if alpha <= 0.0 {
        return old;
    }
    old + alpha * (old.max(target) - old)
}

/// The typical density and the noise of the aerated parenchyma of a scan, both in HU:
/// the median of the lung voxels in −1000 … −600 HU, and the noise standard deviation from the
/// differences of neighbouring lung voxels along the first axis that both lie in −950 … −700
/// HU, as 1.4826 · median |difference| / √2 (the MAD estimate, robust to vessel edges).
/// `None` when fewer than 1 000 such voxels or pairs exist.
pub(crate) fn parenchyma_stats(hu: &[f32], in_lung: impl Fn(usize) -> bool) -> Option<(f32, f32)> {
    // Histograms in 1 HU bins give both medians in one pass.
    let mut levels = [0u64; 401];
    let mut differences = [0u64; 401];
    let (mut voxels, mut pairs) = (0u64, 0u64);
    // Every 3rd voxel is plenty and keeps a full scan at a few milliseconds.
    for index in (0..hu.len().saturating_sub(1)).step_by(3) {
        if !in_lung(index) {
            continue;
        }
        let (a, b) = (hu[index], hu[index + 1]);
        if (-1000.0..=-600.0).contains(&a) {
            levels[(a + 1000.0) as usize] += 1;
            voxels += 1;
        }
        let aerated = -950.0..=-700.0;
        if aerated.contains(&a) && aerated.contains(&b) && in_lung(index + 1) {
            differences[((a - b).abs() as usize).min(400)] += 1;
            pairs += 1;
        }
    }
    if voxels < 1000 || pairs < 1000 {
        return None;
    }
    let level = median_bin(&levels, voxels) - 1000.0;
    let noise = 1.4826 * median_bin(&differences, pairs) / std::f32::consts::SQRT_2;
    Some((level, noise))
}

/// Centre of the bin holding the median of a histogram of `total` counts.
fn median_bin(histogram: &[u64], total: u64) -> f32 {
    let mut seen = 0;
    let bin = histogram
        .iter()
        .position(|&count| {
            seen += count;
            2 * seen >= total
        })
        .unwrap_or(histogram.len() - 1);
    bin as f32 + 0.5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blending_keeps_denser_voxels_and_raises_aerated_ones() {
        // A vessel at +40 HU under ground glass at −550 is kept; lung at −850 rises to
        // −850 + 0.5·(−550 + 850) = −700 at alpha 0.5 and to −550 at alpha 1.
        assert_eq!(blend(40.0, -550.0, 1.0), 40.0);
        assert_eq!(blend(-850.0, -550.0, 0.5), -700.0);
        assert_eq!(blend(-850.0, -550.0, 1.0), -550.0);
        assert_eq!(blend(-850.123, 0.0, 0.0).to_bits(), (-850.123f32).to_bits());
    }

    #[test]
    fn noise_of_pure_white_noise_parenchyma_is_recovered() {
        // Parenchyma of −850 HU plus white noise of σ = 30 HU: the MAD estimate of the
        // differences must give back about 30 (1 HU bins add < 1 HU of error).
        // The median level is −850 within the 1 HU bin.
        let hu: Vec<f32> = (0..300_000)
            .map(|i| -850.0 + 30.0 * white_noise(9, i))
            .collect();
        let (level, sigma) = parenchyma_stats(&hu, |_| true).unwrap();
        assert!((sigma - 30.0).abs() < 2.0, "sigma {sigma}");
        assert!((level + 850.0).abs() < 1.5, "level {level}");
    }
}
