//! The training recipe: every number of the paper's training, readable from a TOML (or JSON)
//! file and overridable by flags. [`Recipe::default`] is the paper's recipe.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::train::augment::AugmentConfig;
use crate::train::schedule::OneCycleShape;

/// Everything that decides what a training run computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Recipe {
    /// Base width `w` of the network (64: R3D-18; 16: the small variant).
    pub width: usize,
    /// Seed of the weight initialisation, the split, the shuffles and the augmentations.
    pub seed: u64,
    /// A torchvision R3D-18 Kinetics-400 state dict (`.pth`) to start the encoder from.
    pub kinetics: Option<PathBuf>,
    /// Which mask value is infiltrate; by default every value > 0.
    pub label: Option<u32>,
    /// HU window `[low, high]`, scaled to 0…1 (the paper: −2000 … 500).
    pub hu_window: [f32; 2],
    /// Share of the cases held out for tuning when `tune_cases` is empty (the paper: 17/117).
    pub tune_fraction: f64,
    /// Image file names (or paths as the manifest gives them) to tune on instead of a random
    /// split.
    pub tune_cases: Vec<String>,
    /// Decoupled weight decay (the paper: 1e-5).
    pub weight_decay: f64,
    /// Adam's ε (fastai: 1e-5).
    pub adam_epsilon: f64,
    /// Adam's β2 (fastai's `sqr_mom`: 0.99).
    pub adam_beta2: f64,
    /// The one-cycle schedule's shape (fastai's defaults).
    pub one_cycle: OneCycleShape,
    /// Tolerance of the tuning NSD, mm (the benchmark: 3).
    pub tolerance_mm: f64,
    /// At most this many optimiser steps per epoch (for quick runs); `None`: every batch.
    pub max_steps_per_epoch: Option<usize>,
    /// Augmentations applied to each training sample.
    pub augment: AugmentConfig,
    /// The stages of progressive resizing, in order.
    pub stages: Vec<Stage>,
}

/// One resolution of progressive resizing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// Network input `[depth, height, width]`; every volume is resized to it.
    pub input_dims: [usize; 3],
    /// Volumes per optimiser step.
    pub batch_size: usize,
    /// Train on crops of this size (`[depth, height, width]`, each ≤ `input_dims`) of the
    /// resized volume instead of the whole of it; the network stays fully convolutional, so
    /// inference still sees the whole volume at `input_dims`. `None` (the paper): whole volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_dims: Option<[usize; 3]>,
    /// With `patch_dims`: the share of crops centred on a random infiltrate voxel of the case
    /// (the others lie anywhere), as nnU-Net oversamples the foreground (its value: 1/3).
    #[serde(default)]
    pub foreground_share: f64,
    /// Samples drawn from each training case per epoch (1: each case once).
    #[serde(default = "one")]
    pub samples_per_case: usize,
    /// Phases, each with its own one-cycle schedule.
    pub phases: Vec<Phase>,
}

fn one() -> usize {
    1
}

/// A run of epochs under one one-cycle schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    /// Number of epochs.
    pub epochs: usize,
    /// Peak learning rate of the cycle.
    pub base_lr: f64,
    /// Keep the encoder's convolution weights fixed (its BatchNorm still trains).
    #[serde(default)]
    pub freeze_encoder: bool,
}

impl Default for Recipe {
    /// Bressem et al. 2021: 10 frozen epochs at 1e-2 and 200 at 1e-3 on 18 × 112 × 112
    /// (batch 6), then 200 at 1e-4 on 20 × 256 × 256 (batch 1).
    fn default() -> Self {
        Self {
            width: 64,
            seed: 0,
            kinetics: None,
            label: None,
            hu_window: [-2000.0, 500.0],
            tune_fraction: 0.15,
            tune_cases: Vec::new(),
            weight_decay: 1e-5,
            adam_epsilon: 1e-5,
            adam_beta2: 0.99,
            one_cycle: OneCycleShape::default(),
            tolerance_mm: 3.0,
            max_steps_per_epoch: None,
            augment: AugmentConfig::default(),
            stages: vec![
                Stage {
                    input_dims: [18, 112, 112],
                    batch_size: 6,
                    patch_dims: None,
                    foreground_share: 0.0,
                    samples_per_case: 1,
                    phases: vec![
                        Phase {
                            epochs: 10,
                            base_lr: 1e-2,
                            freeze_encoder: true,
                        },
                        Phase {
                            epochs: 200,
                            base_lr: 1e-3,
                            freeze_encoder: false,
                        },
                    ],
                },
                Stage {
                    input_dims: [20, 256, 256],
                    batch_size: 1,
                    patch_dims: None,
                    foreground_share: 0.0,
                    samples_per_case: 1,
                    phases: vec![Phase {
                        epochs: 200,
                        base_lr: 1e-4,
                        freeze_encoder: false,
                    }],
                },
            ],
        }
    }
}

impl Recipe {
    /// Reads a recipe from a `.toml` or `.json` file; missing fields take the paper's values.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let recipe = if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        } else {
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        };
        Ok(recipe)
    }

    /// The recipe as TOML.
    pub fn to_toml(&self) -> anyhow::Result<String> {
        toml::to_string_pretty(self).context("writing the recipe as TOML")
    }

    /// Total number of epochs over all stages and phases.
    pub fn total_epochs(&self) -> usize {
        self.stages
            .iter()
            .flat_map(|s| &s.phases)
            .map(|p| p.epochs)
            .sum()
    }

    /// Refuses recipes that cannot run, naming the offending value.
    pub fn validate(&self) -> anyhow::Result<()> {
        pulmoseg_core::unet::UNetConfig::new()
            .with_width(self.width)
            .validate()?;
        if self.kinetics.is_some() && self.width != 64 {
            bail!(
                "Kinetics-400 weights need width 64, the recipe has width {}",
                self.width
            );
        }
        pulmoseg_core::window::HuWindow::new(self.hu_window[0], self.hu_window[1])?;
        if !(0.0..1.0).contains(&self.tune_fraction) {
            bail!("tune_fraction {} must be in [0, 1)", self.tune_fraction);
        }
        if !(self.tolerance_mm.is_finite() && self.tolerance_mm >= 0.0) {
            bail!(
                "tolerance_mm {} must be a finite number ≥ 0",
                self.tolerance_mm
            );
        }
        let shape = self.one_cycle;
        if !(shape.pct_start > 0.0
            && shape.pct_start < 1.0
            && shape.div > 0.0
            && shape.div_final > 0.0)
        {
            bail!("one-cycle shape {shape:?}: pct_start must be in (0, 1), div and div_final > 0");
        }
        if self.max_steps_per_epoch == Some(0) {
            bail!("max_steps_per_epoch 0 would train nothing");
        }
        if self.stages.is_empty() || self.total_epochs() == 0 {
            bail!("the recipe has no epochs to train");
        }
        let minimum = pulmoseg_core::unet::UNetConfig::MIN_INPUT_DIMS;
        for (i, stage) in self.stages.iter().enumerate() {
            let n = i + 1;
            if stage.input_dims.iter().zip(&minimum).any(|(d, m)| d < m) {
                bail!(
                    "stage {n} input {:?} is below the network's minimum {minimum:?} \
                     (depth, height, width)",
                    stage.input_dims
                );
            }
            if stage.batch_size == 0 {
                bail!("stage {n} has batch size 0");
            }
            // The tuning cases run through the network whole, at input_dims, and every step
            // sees batch × (patch or input) voxels.
            let voxels = |dims: [usize; 3], times: usize| {
                dims.iter()
                    .try_fold(times, |n, &d| n.checked_mul(d))
                    .unwrap_or(usize::MAX)
            };
            let step_dims = stage.patch_dims.unwrap_or(stage.input_dims);
            for (what, count) in [
                (
                    format!("input {:?}", stage.input_dims),
                    voxels(stage.input_dims, 1),
                ),
                (
                    format!("{step_dims:?} × batch {}", stage.batch_size),
                    voxels(step_dims, stage.batch_size),
                ),
            ] {
                if count > MAX_STEP_VOXELS {
                    bail!(
                        "stage {n} {what} is {count} voxels, over the limit of \
                         {MAX_STEP_VOXELS} (the paper's largest step is 20 × 256 × 256 = \
                         1310720): lower input_dims, patch_dims or batch_size"
                    );
                }
            }
            if stage.samples_per_case == 0 {
                bail!("stage {n} has samples_per_case 0: it would train nothing");
            }
            if !(0.0..=1.0).contains(&stage.foreground_share) {
                bail!(
                    "stage {n} foreground_share {} must be in [0, 1]",
                    stage.foreground_share
                );
            }
            if let Some(patch) = stage.patch_dims {
                let fits = patch.iter().zip(&stage.input_dims).all(|(p, d)| p <= d);
                if !fits || patch.iter().zip(&minimum).any(|(p, m)| p < m) {
                    bail!(
                        "stage {n} patch {patch:?} must lie between the network's minimum \
                         {minimum:?} and the stage input {:?}",
                        stage.input_dims
                    );
                }
            }
            for phase in &stage.phases {
                if !(phase.base_lr.is_finite() && phase.base_lr > 0.0) {
                    bail!(
                        "stage {n} has learning rate {}: it must be > 0",
                        phase.base_lr
                    );
                }
            }
        }
        self.augment.validate()
    }
}

/// The most voxels a stage may put through the network at once (a tuning case at its input
/// size, or batch × input or patch in a step), 2²⁵: about 25 times the paper's largest step, and already tens of GB of activations at width 64. Far larger
/// sizes (a typo, `1000x1000x1000`) would only end in the operating system killing the run.
pub const MAX_STEP_VOXELS: usize = 1 << 25;

/// Parses `DxHxW` (e.g. `18x112x112`).
pub fn parse_dims(text: &str) -> Result<[usize; 3], String> {
    let parts: Vec<&str> = text.split(['x', 'X', '×']).collect();
    let numbers: Result<Vec<usize>, _> = parts.iter().map(|p| p.trim().parse::<usize>()).collect();
    match numbers.ok().and_then(|v| <[usize; 3]>::try_from(v).ok()) {
        Some(dims) if !dims.contains(&0) => Ok(dims),
        _ => Err(format!(
            "{text:?} is not DEPTHxHEIGHTxWIDTH with three positive numbers"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_paper_and_round_trips_through_toml() {
        let recipe = Recipe::default();
        assert_eq!(recipe.total_epochs(), 410);
        assert_eq!(recipe.stages[0].input_dims, [18, 112, 112]);
        assert_eq!(recipe.stages[1].batch_size, 1);
        let text = recipe.to_toml().expect("toml");
        let back: Recipe = toml::from_str(&text).expect("parse");
        assert_eq!(back, recipe);
        recipe.validate().expect("the paper's recipe is valid");
    }

    #[test]
    fn partial_files_take_the_defaults_and_typos_are_refused() {
        let recipe: Recipe = toml::from_str("width = 16\nseed = 3\n").expect("parse");
        assert_eq!(recipe.width, 16);
        assert_eq!(recipe.weight_decay, 1e-5);
        let typo = toml::from_str::<Recipe>("widht = 16\n")
            .unwrap_err()
            .to_string();
        assert!(typo.contains("widht"), "{typo}");
    }

    #[test]
    fn an_absurd_step_size_is_refused_before_training() {
        // 1000³ voxels would need tens of GB for one case before the first step; 1024³ is 2³⁰.
        let mut recipe = Recipe::default();
        recipe.stages[0].input_dims = [1024, 1024, 1024];
        let message = recipe.validate().unwrap_err().to_string();
        assert!(message.contains("1073741824 voxels"), "{message}");
        // 64 × 256 × 256 fits whole (2²² voxels), but not 16 at a time (2²⁶).
        recipe.stages[0].input_dims = [64, 256, 256];
        recipe.stages[0].batch_size = 16;
        let message = recipe.validate().unwrap_err().to_string();
        assert!(message.contains("batch 16 is 67108864 voxels"), "{message}");
        recipe.stages[0].batch_size = 2;
        recipe.validate().expect("2 × 2²² voxels fit");
    }

    #[test]
    fn invalid_recipes_name_the_value() {
        let mut recipe = Recipe::default();
        recipe.stages[0].input_dims = [4, 112, 112];
        let message = recipe.validate().unwrap_err().to_string();
        assert!(message.contains("[4, 112, 112]"), "{message}");

        let recipe = Recipe {
            width: 16,
            kinetics: Some("r3d.pth".into()),
            ..Recipe::default()
        };
        assert!(recipe
            .validate()
            .unwrap_err()
            .to_string()
            .contains("width 16"));
    }

    #[test]
    fn dims_parse() {
        assert_eq!(parse_dims("18x112x112"), Ok([18, 112, 112]));
        assert!(parse_dims("18x112").is_err());
        assert!(parse_dims("0x4x4").is_err());
    }
}
