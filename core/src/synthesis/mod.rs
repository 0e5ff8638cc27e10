//! Label-free training data: realistic synthetic COVID-19 infiltrates inserted into real chest
//! CTs without pneumonia, together with their exact masks.
//!
//! This follows the idea of Yao et al. ("Label-free segmentation of COVID-19 lesions in lung
//! CT", IEEE TMI 40, 2021): lesions are drawn where COVID-19 puts them and with the densities
//! it gives them, so a network trained on them learns the infiltrates without a single
//! hand-drawn voxel.
//!
//! What a case holds, everything inside the lung mask of the source scan:
//!
//! - 1 to 8 lesions (by default) with a total of about 1 to 150 mL, log-uniformly, so small
//!   early findings are as common as extensive ones; bilateral in most cases;
//! - ground glass (target about −700 … −450 HU), consolidation (about −60 … +30 HU), or a mix
//!   (ground glass with consolidated cores, and both kinds side by side);
//! - placed with a subpleural and basal preference (see the `placement` module) and shaped as
//!   irregular lobulated patches, flattened against the pleura (see the `lesion` module);
//! - blended rather than pasted (see the `texture` module): vessels denser than the lesion stay
//!   visible through ground glass, and the edge is soft over a few mm.
//!
//! **The mask** of a case is the set of lung voxels where the lesion's blending weight α is at
//! least 0.5: α is 1 deep inside a lesion, falls to 0.5 at its surface and to 0 at half the
//! soft-margin width outside it. Outside the mask's dilation by half the widest margin
//! ([`SynthesisOptions::ggo_margin_mm`]), and outside the lungs, the image is bit-for-bit the
//! source.
//!
//! All sizes are in mm, using the voxel spacing, so a 5 mm-slice scan and a 0.7 mm scan get
//! physically the same lesions. The same seed on the same scan gives the same case, on every
//! platform (ChaCha8 random numbers; the noise fields are hashes of positions).

mod lesion;
mod noise;
mod placement;
mod texture;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::lung_mask::{LungMask, LEFT_LUNG, RIGHT_LUNG};
use crate::volume::Volume;
use lesion::{rasterise, LesionShape};
use noise::Draws;
use placement::LungMap;
use texture::{blend, parenchyma_stats, Texture};

/// Settings of the synthesis. The defaults give a spread of cases like a COVID-19 cohort.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthesisOptions {
    /// Share (0 … 1) of cases with no lesion at all: the image is the source, the mask empty.
    pub lesion_free_share: f64,
    /// Fewest lesions in a case with lesions (at least 1).
    pub min_lesions: u32,
    /// Most lesions in a case with lesions.
    pub max_lesions: u32,
    /// Smallest drawn total lesion volume of a case, mL. The drawn volume is log-uniform
    /// between this and [`Self::max_total_ml`]; lesions cut by the pleura end up smaller.
    pub min_total_ml: f64,
    /// Largest drawn total lesion volume of a case, mL. COVID-19 cohorts span from a few mL to
    /// a large share of both lungs (Ma et al.'s infection ratios reach tens of percent). With
    /// 1 … 150 and 1 … 400 mL the shipped recipe's network (32 × 80 × 80 input, where the
    /// lesions were about 0.1 % of the voxels) collapsed to predicting no infiltrate at all.
    pub max_total_ml: f64,
    /// Share (0 … 1) of cases with lesions in both lungs (the others have them in one).
    pub bilateral_share: f64,
    /// Share (0 … 1) of cases whose lesions are all consolidation.
    pub consolidation_share: f64,
    /// Share (0 … 1) of cases with mixed lesions (ground glass, ground glass with a
    /// consolidated core, consolidation); the remaining cases are ground glass only.
    pub mixed_share: f64,
    /// Range of the target density of ground glass, HU `[low, high]`.
    pub ggo_hu: [f64; 2],
    /// Range of the target density of consolidation, HU `[low, high]`.
    pub consolidation_hu: [f64; 2],
    /// Range of the soft-margin width of ground glass, mm `[low, high]`: α falls from 1 to 0
    /// over this width, centred on the lesion's surface.
    pub ggo_margin_mm: [f64; 2],
    /// Range of the soft-margin width of consolidation, mm `[low, high]`.
    pub consolidation_margin_mm: [f64; 2],
    /// Share (0 … 1) of ground-glass lesions with a reticular "crazy paving" pattern.
    pub septa_share: f64,
    /// e-folding distance (mm) from the pleura of the subpleural placement preference.
    pub peripheral_scale_mm: f64,
    /// Placement density deep in the lung relative to the excess at the pleura: the density
    /// is `central_density + e^(−d / peripheral_scale_mm)` at a distance d from the pleura.
    pub central_density: f64,
    /// Subpleural placement density at the mediastinal and hilar pleura relative to that at
    /// the costal pleura (0 … 1).
    pub mediastinal_density: f64,
    /// Placement density at the lung base relative to the apex (along world z, ≥ 1 prefers
    /// the base; geometric in between).
    pub basal_ratio: f64,
}

impl Default for SynthesisOptions {
    fn default() -> Self {
        SynthesisOptions {
            lesion_free_share: 0.15,
            min_lesions: 1,
            max_lesions: 8,
            min_total_ml: 10.0,
            max_total_ml: 1000.0,
            bilateral_share: 0.7,
            consolidation_share: 0.05,
            mixed_share: 0.4,
            ggo_hu: [-700.0, -450.0],
            consolidation_hu: [-60.0, 30.0],
            ggo_margin_mm: [4.0, 9.0],
            consolidation_margin_mm: [2.0, 4.0],
            septa_share: 0.3,
            peripheral_scale_mm: 10.0,
            central_density: 0.08,
            mediastinal_density: 0.15,
            basal_ratio: 4.0,
        }
    }
}

impl SynthesisOptions {
    /// Checks every field against its range.
    pub fn validate(&self) -> Result<(), SynthesisError> {
        let unit = |v: f64| (0.0..=1.0).contains(&v);
        let positive = |v: f64| v > 0.0;
        let checks: [(&'static str, f64, bool); 13] = [
            (
                "lesion_free_share",
                self.lesion_free_share,
                unit(self.lesion_free_share),
            ),
            (
                "min_lesions",
                f64::from(self.min_lesions),
                self.min_lesions >= 1,
            ),
            (
                "max_lesions",
                f64::from(self.max_lesions),
                (self.min_lesions..=64).contains(&self.max_lesions),
            ),
            (
                "min_total_ml",
                self.min_total_ml,
                positive(self.min_total_ml),
            ),
            (
                "max_total_ml",
                self.max_total_ml,
                self.max_total_ml >= self.min_total_ml && self.max_total_ml <= 2000.0,
            ),
            (
                "bilateral_share",
                self.bilateral_share,
                unit(self.bilateral_share),
            ),
            (
                "consolidation_share",
                self.consolidation_share,
                unit(self.consolidation_share),
            ),
            (
                "mixed_share",
                self.mixed_share,
                unit(self.mixed_share) && unit(self.mixed_share + self.consolidation_share),
            ),
            ("septa_share", self.septa_share, unit(self.septa_share)),
            (
                "peripheral_scale_mm",
                self.peripheral_scale_mm,
                positive(self.peripheral_scale_mm),
            ),
            (
                "central_density",
                self.central_density,
                self.central_density >= 0.0,
            ),
            ("basal_ratio", self.basal_ratio, positive(self.basal_ratio)),
            (
                "mediastinal_density",
                self.mediastinal_density,
                unit(self.mediastinal_density),
            ),
        ];
        for (name, value, in_range) in checks {
            if !value.is_finite() || !in_range {
                return Err(SynthesisError::InvalidOption { name, value });
            }
        }
        let ranges: [(&'static str, [f64; 2], f64, f64); 4] = [
            ("ggo_hu", self.ggo_hu, -1000.0, 500.0),
            ("consolidation_hu", self.consolidation_hu, -1000.0, 500.0),
            ("ggo_margin_mm", self.ggo_margin_mm, 0.0, 50.0),
            (
                "consolidation_margin_mm",
                self.consolidation_margin_mm,
                0.0,
                50.0,
            ),
        ];
        for (name, [lo, hi], min, max) in ranges {
            for value in [lo, hi] {
                if !value.is_finite() || value < min || value > max || lo > hi {
                    return Err(SynthesisError::InvalidOption { name, value });
                }
            }
        }
        if self.ggo_margin_mm[0] <= 0.0 || self.consolidation_margin_mm[0] <= 0.0 {
            let value = self.ggo_margin_mm[0].min(self.consolidation_margin_mm[0]);
            return Err(SynthesisError::InvalidOption {
                name: "margin_mm",
                value,
            });
        }
        Ok(())
    }

    /// The widest soft-margin width (mm): outside the mask dilated by half of it the image is
    /// unchanged.
    pub fn max_margin_mm(&self) -> f64 {
        self.ggo_margin_mm[1].max(self.consolidation_margin_mm[1])
    }
}

/// Why no case could be synthesised.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SynthesisError {
    /// An option outside its range.
    #[error("synthesis option {name} = {value} is out of range")]
    InvalidOption { name: &'static str, value: f64 },
    /// The lung mask was computed on another grid.
    #[error("lung mask dims {mask:?} differ from the volume's {volume:?}")]
    GridMismatch {
        volume: [usize; 3],
        mask: [usize; 3],
    },
    /// `hu` or the labels do not hold one value per voxel.
    #[error("volume dims {dims:?} need {expected} values but the {what} holds {len}")]
    LengthMismatch {
        what: &'static str,
        dims: [usize; 3],
        expected: usize,
        len: usize,
    },
    /// A voxel size that is zero, negative or not finite.
    #[error("voxel spacing {spacing_mm:?} mm is not positive and finite")]
    InvalidSpacing { spacing_mm: [f64; 3] },
    /// The lung mask is empty: there is nowhere to put an infiltrate.
    #[error("the lung mask is empty: no lung to insert infiltrates into")]
    NoLung,
    /// The coarse lung map could not be built.
    #[error("lung map: {message}")]
    Geometry { message: String },
}

/// The appearance of one lesion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LesionKind {
    /// Ground-glass opacity: hazy, vessels visible through it.
    GroundGlass,
    /// Consolidation: dense, vessels hidden.
    Consolidation,
    /// Ground glass with a consolidated core.
    Mixed,
}

impl LesionKind {
    /// The name used in files: `ground_glass`, `consolidation`, `mixed`.
    pub fn name(self) -> &'static str {
        match self {
            LesionKind::GroundGlass => "ground_glass",
            LesionKind::Consolidation => "consolidation",
            LesionKind::Mixed => "mixed",
        }
    }
}

/// Which lung a lesion lies in (the patient's right or left).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The patient's right lung ([`RIGHT_LUNG`]).
    Right,
    /// The patient's left lung ([`LEFT_LUNG`]).
    Left,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Side::Right => 0,
            Side::Left => 1,
        }
    }

    fn label(self) -> u8 {
        match self {
            Side::Right => RIGHT_LUNG,
            Side::Left => LEFT_LUNG,
        }
    }

    /// The name used in files: `right`, `left`.
    pub fn name(self) -> &'static str {
        match self {
            Side::Right => "right",
            Side::Left => "left",
        }
    }
}

/// What was inserted for one lesion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LesionInfo {
    /// Its appearance.
    pub kind: LesionKind,
    /// Its lung.
    pub side: Side,
    /// Centre it was drawn around, in voxel coordinates `[i, j, k]`.
    pub centre_voxel: [f64; 3],
    /// Distance (mm) of the centre from the lung border, on the coarse placement map.
    pub border_distance_mm: f64,
    /// Volume (mL) it was drawn with.
    pub drawn_ml: f64,
    /// Volume (mL) of its own mask (inside its lung); lesions may overlap.
    pub volume_ml: f64,
    /// Target density (HU) of its ground glass, or of its consolidation when it has none.
    pub target_hu: f32,
}

/// One synthetic training case on the source's grid.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticCase {
    /// HU of the synthetic image, `[ni * nj * nk]` in the source's layout.
    pub hu: Vec<f32>,
    /// Infiltrate mask, `[ni * nj * nk]`: 1 where any lesion's α ≥ 0.5 inside its lung, else 0.
    pub mask: Vec<u8>,
    /// The lesions, in the order they were inserted (empty for a lesion-free case).
    pub lesions: Vec<LesionInfo>,
    /// Volume of the mask in mL.
    pub lesion_ml: f64,
}

/// The per-scan preparation shared by all cases of a scan: the coarse lung map and the noise
/// level of the parenchyma.
#[derive(Debug, Clone)]
pub struct Synthesizer<'a> {
    volume: &'a Volume,
    lung: &'a LungMask,
    map: LungMap,
    noise_hu: f32,
    parenchyma_hu: f32,
}

impl<'a> Synthesizer<'a> {
    /// Prepares `volume` with its lung mask `lung` (as [`crate::lung_mask::lung_mask`] gives it).
    pub fn new(volume: &'a Volume, lung: &'a LungMask) -> Result<Self, SynthesisError> {
        let expected = volume.len();
        if lung.dims != volume.dims {
            return Err(SynthesisError::GridMismatch {
                volume: volume.dims,
                mask: lung.dims,
            });
        }
        if volume.is_empty() || volume.hu.len() != expected {
            let (what, len) = ("HU array", volume.hu.len());
            return Err(SynthesisError::LengthMismatch {
                what,
                dims: volume.dims,
                expected,
                len,
            });
        }
        if lung.labels.len() != expected {
            let (what, len) = ("lung label array", lung.labels.len());
            return Err(SynthesisError::LengthMismatch {
                what,
                dims: volume.dims,
                expected,
                len,
            });
        }
        if volume
            .spacing_mm
            .iter()
            .any(|s| !s.is_finite() || *s <= 0.0)
            || !volume.affine.is_finite()
        {
            return Err(SynthesisError::InvalidSpacing {
                spacing_mm: volume.spacing_mm,
            });
        }

        let map = LungMap::new(volume, lung)?;
        // A scan without measurable parenchyma (a lung full of disease, a tiny crop) falls back
        // to typical values of adult lung.
        let (parenchyma_hu, noise_hu) =
            parenchyma_stats(&volume.hu, |i| lung.contains(i)).unwrap_or((-850.0, 8.0));
        let noise_hu = noise_hu.clamp(4.0, 80.0);
        tracing::debug!(parenchyma_hu, noise_hu, "synthesis: parenchyma");
        Ok(Synthesizer {
            volume,
            lung,
            map,
            noise_hu,
            parenchyma_hu,
        })
    }

    /// Noise standard deviation (HU) measured in the aerated parenchyma (at least 4), the grain
    /// given to the lesions.
    pub fn parenchyma_noise_hu(&self) -> f32 {
        self.noise_hu
    }

    /// Median density (HU) of the aerated parenchyma.
    pub fn parenchyma_hu(&self) -> f32 {
        self.parenchyma_hu
    }

    /// The synthetic case of `seed`.
    pub fn case(
        &self,
        options: &SynthesisOptions,
        seed: u64,
    ) -> Result<SyntheticCase, SynthesisError> {
        options.validate()?;
        let mut draws = Draws::new(seed);
        let mut hu = self.volume.hu.clone();
        let mut mask = vec![0u8; hu.len()];
        if draws.chance(options.lesion_free_share) {
            return Ok(SyntheticCase {
                hu,
                mask,
                lesions: Vec::new(),
                lesion_ml: 0.0,
            });
        }

        let count = draws.integer(options.min_lesions, options.max_lesions) as usize;
        let total_ml = draws.log_uniform(options.min_total_ml, options.max_total_ml);
        let shares: Vec<f64> = (0..count).map(|_| -(1.0 - draws.unit()).ln()).collect();
        let share_sum: f64 = shares.iter().sum();
        let sides = self.draw_sides(count, options, &mut draws);
        let kinds = draw_kinds(count, options, &mut draws);
        let cumulative = [Side::Right, Side::Left].map(|s| self.map.cumulative_density(s, options));

        let mut lesions = Vec::with_capacity(count);
        for n in 0..count {
            let drawn_ml = total_ml * shares[n] / share_sum;
            if let Some(info) = self.insert(
                kinds[n],
                sides[n],
                drawn_ml,
                &cumulative[sides[n].index()],
                options,
                &mut draws,
                &mut hu,
                &mut mask,
            ) {
                lesions.push(info);
            }
        }

        let voxels = mask.iter().filter(|&&m| m != 0).count();
        let lesion_ml = voxels as f64 * self.volume.voxel_ml();
        Ok(SyntheticCase {
            hu,
            mask,
            lesions,
            lesion_ml,
        })
    }

    /// One lesion drawn, rasterised and blended into `hu` / `mask`; `None` when its shape
    /// missed its lung (a centre at the very edge of a thin lung part).
    #[allow(clippy::too_many_arguments)]
    fn insert(
        &self,
        kind: LesionKind,
        side: Side,
        drawn_ml: f64,
        cumulative: &[f64],
        options: &SynthesisOptions,
        draws: &mut Draws,
        hu: &mut [f32],
        mask: &mut [u8],
    ) -> Option<LesionInfo> {
        let spacing = self.volume.spacing_mm;
        let dims = self.volume.dims;
        let (centre, normal, border_mm) = self.map.draw_centre(side, cumulative, draws)?;
        let centre_mm = [0, 1, 2].map(|a| centre[a] * spacing[a]);
        let shape = LesionShape::draw(centre_mm, normal, border_mm, drawn_ml, draws);
        let texture = Texture::draw(kind, options, self.noise_hu, draws);
        let margin_mm = draws.in_range(match kind {
            LesionKind::Consolidation => options.consolidation_margin_mm,
            _ => options.ggo_margin_mm,
        });

        let label = side.label();
        let labels = &self.lung.labels;
        let raster = rasterise(&shape, dims, spacing, margin_mm, |i| labels[i] == label)?;

        let [bi, bj, bk] = raster.dims;
        let mut voxels = 0usize;
        for k in 0..bk {
            for j in 0..bj {
                for i in 0..bi {
                    let b = i + bi * (j + bj * k);
                    let alpha = raster.alpha[b];
                    if alpha <= 0.0 {
                        continue;
                    }
                    let g = [raster.lo[0] + i, raster.lo[1] + j, raster.lo[2] + k];
                    let index = g[0] + dims[0] * (g[1] + dims[1] * g[2]);
                    let p = [0, 1, 2].map(|a| g[a] as f64 * spacing[a]);
                    let old = hu[index];
                    let target =
                        texture.target(p, raster.depth_mm[b], index, old, self.parenchyma_hu);
                    hu[index] = blend(hu[index], target, alpha);
                    if raster.mask[b] {
                        mask[index] = 1;
                        voxels += 1;
                    }
                }
            }
        }

        Some(LesionInfo {
            kind,
            side,
            centre_voxel: centre,
            border_distance_mm: border_mm,
            drawn_ml,
            volume_ml: voxels as f64 * self.volume.voxel_ml(),
            target_hu: texture.base_hu,
        })
    }

    /// The lung of each lesion: bilateral cases have both sides (each lesion's side drawn in
    /// proportion to the lung volumes, the first two forced apart), unilateral ones one side.
    fn draw_sides(&self, count: usize, options: &SynthesisOptions, draws: &mut Draws) -> Vec<Side> {
        let present = self.map.sides_present();
        let right_share = if present.len() == 2 {
            self.lung.right_ml / self.lung.total_ml().max(1e-9)
        } else if present.first() == Some(&Side::Right) {
            1.0
        } else {
            0.0
        };
        let pick = |draws: &mut Draws| {
            if draws.chance(right_share) {
                Side::Right
            } else {
                Side::Left
            }
        };

        let bilateral = present.len() == 2 && count >= 2 && draws.chance(options.bilateral_share);
        if bilateral {
            let first = pick(draws);
            let second = if first == Side::Right {
                Side::Left
            } else {
                Side::Right
            };
            let mut sides = vec![first, second];
            sides.extend((2..count).map(|_| pick(draws)));
            sides
        } else {
            let side = pick(draws);
            vec![side; count]
        }
    }
}

/// The kind of each lesion of a case: all consolidation, mixed, or all ground glass, in the
/// shares of the options.
fn draw_kinds(count: usize, options: &SynthesisOptions, draws: &mut Draws) -> Vec<LesionKind> {
    let u = draws.unit();
    if u < options.consolidation_share {
        return vec![LesionKind::Consolidation; count];
    }
    if u >= options.consolidation_share + options.mixed_share {
        return vec![LesionKind::GroundGlass; count];
    }
    (0..count)
        .map(|_| {
            let v = draws.unit();
            if v < 0.45 {
                LesionKind::GroundGlass
            } else if v < 0.9 {
                LesionKind::Mixed
            } else {
                LesionKind::Consolidation
            }
        })
        .collect()
}

/// One synthetic case of `volume` with its lung mask `lung`: [`Synthesizer::new`] then
/// [`Synthesizer::case`]. For several cases of one scan, keep the [`Synthesizer`].
pub fn synthesize(
    volume: &Volume,
    lung: &LungMask,
    options: &SynthesisOptions,
    seed: u64,
) -> Result<SyntheticCase, SynthesisError> {
    Synthesizer::new(volume, lung)?.case(options, seed)
}

/// The seed of case `case` of scan `scan` in a batch seeded with `seed`: distinct, well mixed
/// seeds for every (scan, case) pair, so adding cases to a batch leaves earlier ones alone.
pub fn case_seed(seed: u64, scan: u64, case: u64) -> u64 {
    let mix = |mut x: u64| {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    };
    mix(mix(mix(seed) ^ scan) ^ case.wrapping_mul(0xd6e8_feb8_6659_fd93))
}
