//! `pulmoseg train`: the training recipe of Bressem et al. 2021 on (image, mask) pairs.
//!
//! The pipeline follows the recipe's stages: [`dataset`] reads and splits the pairs and
//! prepares them for each stage of progressive resizing (RAS+, HU window, whole-volume
//! resize, cached in memory for the stage); [`augment`] perturbs each training sample and,
//! when the stage asks for patches, [`patch`] cuts a foreground-weighted crop of it;
//! [`loss`], [`optimizer`] and [`schedule`] are the soft-Dice + cross-entropy loss, fastai's
//! Adam and its one-cycle policy; after every epoch the tuning cases are scored, the best
//! weights of the stage are kept, and [`checkpoint`] and [`log`] write a resumable state, the
//! CSV log and the loss/Dice chart. At the end the best weights of the last stage are scored
//! on the tuning cases' own grids and written as a Pulmoseg weights file with its model card.

pub mod augment;
pub mod backend;
pub mod checkpoint;
pub mod config;
pub mod dataset;
pub mod log;
pub mod loss;
pub mod optimizer;
pub mod patch;
pub mod plot;
pub mod rng;
pub mod schedule;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::optim::{GradientsParams, ModuleOptimizer, MultiGradientsParams};
use burn::tensor::activation::softmax;
use burn::tensor::{Bytes, Device, Tensor, TensorData};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use pulmoseg_core::dice::dice;
use pulmoseg_core::inference::{InferenceMode, Preprocessing};
use pulmoseg_core::orientation::CanonicalOrientation;
use pulmoseg_core::resample::ResizeConvention;
use pulmoseg_core::summary::summarize;
use pulmoseg_core::surface_dice::surface_dice;
use pulmoseg_core::unet::{UNet, UNetConfig};
use pulmoseg_core::weights::{self, Storage, WeightsMetadata};
use pulmoseg_core::window::HuWindow;
use serde::{Deserialize, Serialize};

use crate::evaluate::{inference_preprocessing, score_pairs, scores_csv, summary_table};
use crate::train::backend::BackendKind;
use crate::train::checkpoint::{write_atomic, Best, RunState};
use crate::train::config::{parse_dims, Recipe};
use crate::train::dataset::{read_case, read_data_set, split, to_stage, Pair, StageCase};
use crate::train::log::EpochRow;
use crate::train::loss::dice_ce_loss;
use crate::train::optimizer::{Beta1, ScheduledAdam};
use crate::train::rng::SplitMix64;
use crate::train::schedule::OneCycle;

/// The weights file a finished run writes into its output folder.
pub const MODEL_FILE: &str = "model.pulmoseg";
/// What the run was started with, so that `--resume` needs nothing else.
pub const RUN_FILE: &str = "run.json";

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training data: a CSV manifest with image,mask columns, or a folder (manifest.csv, or
    /// images/ + masks/ with matching file names).
    #[arg(long, required_unless_present_any = ["resume", "print_recipe", "bench"])]
    data: Option<PathBuf>,
    /// Output folder: checkpoints, log.csv, curves.png, and at the end model.pulmoseg.
    #[arg(long, required_unless_present_any = ["resume", "print_recipe", "bench"])]
    output: Option<PathBuf>,
    /// Recipe file (TOML, or JSON by extension); missing fields take the paper's values.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Continue the run in this output folder from its last completed epoch (its recipe and
    /// data are read from the folder; of the other flags only the hardware ones, --backend and
    /// --devices, are allowed).
    #[arg(long, conflicts_with_all = [
        "data", "output", "config", "width", "kinetics", "seed", "label", "stage1_dims",
        "stage1_batch", "stage2_dims", "stage2_batch", "frozen_epochs", "stage1_epochs",
        "stage2_epochs", "max_steps_per_epoch", "no_augment",
    ])]
    resume: Option<PathBuf>,
    /// Print the recipe (the paper's, or the one the flags and --config make) as TOML and exit.
    #[arg(long)]
    print_recipe: bool,
    /// Backend to train on.
    #[arg(long, value_enum, default_value = "flex")]
    backend: BackendKind,
    /// Data-parallel training over this many devices of the backend (CUDA GPUs 0…N−1): each
    /// step's batch is split into one shard per device and burn's `step_multi` sums their
    /// gradients. With flex every device is the one CPU, which checks the path but is no faster.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    devices: u16,
    /// Network base width (64: R3D-18; 16: the small variant).
    #[arg(long)]
    width: Option<usize>,
    /// torchvision R3D-18 Kinetics-400 weights (`r3d_18-b3b3357e.pth`) for the encoder.
    #[arg(long)]
    kinetics: Option<PathBuf>,
    /// Seed of initialisation, split, shuffles and augmentations.
    #[arg(long)]
    seed: Option<u64>,
    /// Mask value that is infiltrate (default: every value > 0).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    label: Option<u32>,
    /// Stage 1 input, DEPTHxHEIGHTxWIDTH (paper: 18x112x112).
    #[arg(long, value_parser = parse_dims)]
    stage1_dims: Option<[usize; 3]>,
    /// Stage 1 batch size (paper: 6).
    #[arg(long)]
    stage1_batch: Option<usize>,
    /// Stage 2 input (paper: 20x256x256).
    #[arg(long, value_parser = parse_dims)]
    stage2_dims: Option<[usize; 3]>,
    /// Stage 2 batch size (paper: 1).
    #[arg(long)]
    stage2_batch: Option<usize>,
    /// Epochs of stage 1 with the encoder frozen (paper: 10).
    #[arg(long)]
    frozen_epochs: Option<usize>,
    /// Epochs of stage 1 after unfreezing (paper: 200).
    #[arg(long)]
    stage1_epochs: Option<usize>,
    /// Epochs of stage 2 (paper: 200; 0 skips the stage).
    #[arg(long)]
    stage2_epochs: Option<usize>,
    /// At most this many optimiser steps per epoch.
    #[arg(long)]
    max_steps_per_epoch: Option<usize>,
    /// Train without augmentation.
    #[arg(long)]
    no_augment: bool,
    /// Benchmark instead of training: time this many training steps (after one warm-up step)
    /// on a synthetic batch of stage 1's size and batch, and print seconds per step as JSON
    /// (`tools/peers/train_step_peer.py` runs the same step in PyTorch).
    #[arg(long, conflicts_with = "resume")]
    bench: Option<usize>,
}

/// `run.json`: the resolved recipe and data of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunFile {
    recipe: Recipe,
    data: PathBuf,
}

impl TrainArgs {
    /// The recipe: the paper's, or `--config`'s, with the flags applied.
    fn recipe(&self) -> anyhow::Result<Recipe> {
        let mut recipe = match &self.config {
            Some(path) => Recipe::read(path)?,
            None => Recipe::default(),
        };
        macro_rules! set {
            ($flag:expr, $field:expr) => {
                if let Some(v) = $flag.clone() {
                    $field = v;
                }
            };
        }
        set!(self.width, recipe.width);
        set!(self.seed, recipe.seed);
        if self.kinetics.is_some() {
            recipe.kinetics = self.kinetics.clone();
        }
        if self.label.is_some() {
            recipe.label = self.label;
        }
        if self.max_steps_per_epoch.is_some() {
            recipe.max_steps_per_epoch = self.max_steps_per_epoch;
        }
        if self.no_augment {
            recipe.augment.enabled = false;
        }
        let stage_flags = [
            (self.stage1_dims, self.stage1_batch),
            (self.stage2_dims, self.stage2_batch),
        ];
        for (stage, (dims, batch)) in recipe.stages.iter_mut().zip(stage_flags) {
            set!(dims, stage.input_dims);
            set!(batch, stage.batch_size);
        }
        let phase_flags = [
            (0, 0, self.frozen_epochs),
            (0, 1, self.stage1_epochs),
            (1, 0, self.stage2_epochs),
        ];
        for (s, p, epochs) in phase_flags {
            if let Some(epochs) = epochs {
                match recipe
                    .stages
                    .get_mut(s)
                    .and_then(|stage| stage.phases.get_mut(p))
                {
                    Some(phase) => phase.epochs = epochs,
                    None => bail!(
                        "the recipe has no phase {} in stage {} to set epochs for",
                        p + 1,
                        s + 1
                    ),
                }
            }
        }
        Ok(recipe)
    }
}

pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    if args.print_recipe {
        print!("{}", args.recipe()?.to_toml()?);
        return Ok(());
    }
    if let Some(steps) = args.bench {
        return bench(args, steps);
    }

    let (output, run_file) = match &args.resume {
        Some(dir) => {
            let path = dir.join(RUN_FILE);
            let text = std::fs::read(&path).with_context(|| {
                format!(
                    "reading {}: is {} the output folder of a run?",
                    path.display(),
                    dir.display()
                )
            })?;
            let run_file: RunFile = serde_json::from_slice(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            (dir.clone(), run_file)
        }
        None => {
            let (Some(output), Some(data)) = (&args.output, &args.data) else {
                bail!("--data and --output are needed to start a run");
            };
            if checkpoint::checkpoint_dir(output)
                .join(checkpoint::LATEST_FILE)
                .exists()
            {
                bail!(
                    "{} already holds a run: continue it with --resume {} or choose another \
                     --output",
                    output.display(),
                    output.display()
                );
            }
            let data = std::path::absolute(data)
                .with_context(|| format!("resolving {}", data.display()))?;
            let run_file = RunFile {
                recipe: args.recipe()?,
                data,
            };
            run_file.recipe.validate()?;
            std::fs::create_dir_all(output)
                .with_context(|| format!("creating {}", output.display()))?;
            write_atomic(
                &output.join(RUN_FILE),
                &serde_json::to_vec_pretty(&run_file)?,
            )?;
            write_atomic(
                &output.join("recipe.toml"),
                run_file.recipe.to_toml()?.as_bytes(),
            )?;
            (output.clone(), run_file)
        }
    };
    run_file.recipe.validate()?;
    let (trainer, model) = Trainer::new(output, run_file, args.backend, args.devices.into())?;
    trainer.train(model)
}

/// One epoch's place in the recipe.
#[derive(Debug, Clone, Copy)]
struct EpochPlan {
    stage: usize,
    phase: usize,
    /// Epoch index within its phase (0-based).
    in_phase: usize,
    /// The phase's number of epochs.
    phase_epochs: usize,
    /// First epoch of its stage.
    starts_stage: bool,
}

fn plan(recipe: &Recipe) -> Vec<EpochPlan> {
    let mut plans = Vec::new();
    for (stage, s) in recipe.stages.iter().enumerate() {
        let mut first = true;
        for (phase, p) in s.phases.iter().enumerate() {
            for in_phase in 0..p.epochs {
                plans.push(EpochPlan {
                    stage,
                    phase,
                    in_phase,
                    phase_epochs: p.epochs,
                    starts_stage: first,
                });
                first = false;
            }
        }
    }
    plans
}

/// Gives the network's parameters ids numbered in module order, so that a network loaded
/// from a weights file has the ids its optimiser record was saved with.
fn with_stable_ids(model: UNet) -> UNet {
    struct Numbering(u64);
    impl ModuleMapper for Numbering {
        fn map_float<const D: usize>(&mut self, mut param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            param.id = ParamId::from(self.0);
            self.0 += 1;
            param
        }
    }
    model.map(&mut Numbering(1))
}

/// Ids of the encoder's convolution weights: what freezing the encoder fixes (its BatchNorm
/// parameters and statistics keep training, as in faimed3d).
fn encoder_conv_ids(model: &UNet) -> Vec<ParamId> {
    struct Collector {
        path: Vec<String>,
        ids: Vec<ParamId>,
    }
    impl ModuleVisitor for Collector {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let n = self.path.len();
            let is_conv_weight =
                n >= 2 && self.path[n - 1] == "weight" && self.path[n - 2].starts_with("conv");
            if is_conv_weight {
                self.ids.push(param.id);
            }
        }
    }
    let mut collector = Collector {
        path: Vec::new(),
        ids: Vec::new(),
    };
    model.encoder.visit(&mut collector);
    collector.ids
}

/// The weights file's metadata for a network trained at `input_dims` (`[d, h, w]`):
/// whole-volume inference at that size, the run's HU window, half-pixel resizes, RAS+.
fn metadata(config: &UNetConfig, window: HuWindow, input_dims: [usize; 3]) -> WeightsMetadata {
    let [d, h, w] = input_dims;
    let mut metadata = WeightsMetadata::new(config);
    metadata.version = "trained".into();
    metadata.preprocessing = Some(Preprocessing {
        window,
        mode: InferenceMode::WholeVolume {
            input_dims: [w, h, d],
        },
        resize: ResizeConvention::HalfPixel,
        orientation: CanonicalOrientation::Ras,
    });
    metadata
}

fn scalar(tensor: Tensor<1>) -> anyhow::Result<f64> {
    let values: Vec<f32> = tensor
        .into_data()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("reading a scalar: {e:?}"))?;
    values
        .first()
        .map(|&v| v as f64)
        .context("an empty scalar tensor")
}

/// The stage's cases on its grid.
struct StageData {
    stage: usize,
    train: Vec<StageCase>,
    tune: Vec<StageCase>,
}

struct Trainer {
    output: PathBuf,
    recipe: Recipe,
    data: PathBuf,
    description: String,
    backend: BackendKind,
    /// The device without autodiff (evaluation).
    device: Device,
    /// The training device.
    ad_device: Device,
    /// Every training device, `ad_device` first: one shard of each batch each.
    shard_devices: Vec<Device>,
    train_pairs: Vec<Pair>,
    tune_pairs: Vec<Pair>,
    optimizer: ModuleOptimizer,
    beta1: Beta1,
    state: RunState,
    stage_data: Option<StageData>,
    window: HuWindow,
}

impl Trainer {
    /// Sets up a run, fresh or from its last checkpoint; returns the network to train next.
    fn new(
        output: PathBuf,
        run_file: RunFile,
        backend: BackendKind,
        devices: usize,
    ) -> anyhow::Result<(Self, UNet)> {
        let RunFile { recipe, data } = run_file;
        let device = backend.device(0)?;
        let ad_device = device.clone().autodiff();
        let shard_devices = (0..devices)
            .map(|i| backend.device(i).map(Device::autodiff))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if let Some(stage) = recipe.stages.iter().find(|s| s.batch_size < devices) {
            bail!(
                "batch size {} cannot be split over {devices} devices: every device needs at \
                 least one volume a step",
                stage.batch_size
            );
        }
        let window = HuWindow::new(recipe.hu_window[0], recipe.hu_window[1])?;

        let data_set = read_data_set(&data)?;
        let (train_pairs, tune_pairs) = split(
            &data_set.pairs,
            &recipe.tune_cases,
            recipe.tune_fraction,
            recipe.seed,
        )?;
        let tune_names: Vec<String> = tune_pairs.iter().map(|p| p.name.clone()).collect();
        tracing::info!(
            train = train_pairs.len(),
            tune = tune_pairs.len(),
            "data split"
        );

        let beta1 = Beta1::new(recipe.one_cycle.moms[0]);
        let config = UNetConfig::new().with_width(recipe.width);
        let (model, optimizer, state) = match checkpoint::load_latest(&output)? {
            Some(saved) => {
                if saved.state.tune_cases != tune_names {
                    bail!(
                        "the data now splits into tuning cases {tune_names:?}, the checkpoint was \
                         made with {:?}: the data set changed",
                        saved.state.tune_cases
                    );
                }
                let model_path = saved.folder.join(checkpoint::MODEL_FILE);
                let bytes = std::fs::read(&model_path)
                    .with_context(|| format!("reading {}", model_path.display()))?;
                let (model, _) = weights::load(&bytes, &ad_device)
                    .with_context(|| format!("loading {}", model_path.display()))?;
                let optimizer_path = saved.folder.join(checkpoint::OPTIMIZER_FILE);
                let optimizer_bytes = std::fs::read(&optimizer_path)
                    .with_context(|| format!("reading {}", optimizer_path.display()))?;
                let optimizer = new_optimizer(&recipe, &beta1)
                    .from_bytes(Bytes::from_bytes_vec(optimizer_bytes))
                    .map_err(|e| anyhow::anyhow!("loading {}: {e:?}", optimizer_path.display()))?;
                tracing::info!(epoch = saved.state.epochs_done, "resuming after epoch");
                eprintln!(
                    "resuming {} after epoch {}",
                    output.display(),
                    saved.state.epochs_done
                );
                (with_stable_ids(model), optimizer, saved.state)
            }
            None => {
                ad_device.seed(recipe.seed);
                let mut model = config.init(&ad_device)?;
                if let Some(path) = &recipe.kinetics {
                    let pth = std::fs::read(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    model = pulmoseg_core::kinetics::load_unet_encoder(model, &pth).with_context(
                        || format!("loading the Kinetics-400 encoder {}", path.display()),
                    )?;
                }
                let state = RunState {
                    epochs_done: 0,
                    steps_done: 0,
                    rng: SplitMix64::new(recipe.seed),
                    best: vec![None; recipe.stages.len()],
                    log: Vec::new(),
                    train_seconds: 0.0,
                    tune_cases: tune_names,
                };
                (
                    with_stable_ids(model),
                    new_optimizer(&recipe, &beta1),
                    state,
                )
            }
        };

        let trainer = Self {
            output,
            recipe,
            data,
            description: data_set.description,
            backend,
            device,
            ad_device,
            shard_devices,
            train_pairs,
            tune_pairs,
            optimizer,
            beta1,
            state,
            stage_data: None,
            window,
        };
        Ok((trainer, model))
    }

    fn train(mut self, mut model: UNet) -> anyhow::Result<()> {
        let plans = plan(&self.recipe);
        let conv_ids = encoder_conv_ids(&model);
        for epoch in self.state.epochs_done..plans.len() {
            let plan = plans[epoch];
            if plan.starts_stage && plan.stage > 0 {
                model = self.start_stage(plan.stage)?;
            }
            self.prepare_stage(plan.stage)?;
            let freeze = self.recipe.stages[plan.stage].phases[plan.phase].freeze_encoder;
            model = model.set_require_grad_group(ParamGroup::from_ids(conv_ids.clone()), !freeze);
            model = self.epoch(model, epoch + 1, plan)?;
        }
        self.finish()
    }

    /// Starts stage `stage` (> 0) from the previous stage's best weights with a fresh optimiser.
    fn start_stage(&mut self, stage: usize) -> anyhow::Result<UNet> {
        let Some(best) = self.state.best[stage - 1].clone() else {
            bail!(
                "stage {stage} has no best weights to start stage {} from",
                stage + 1
            );
        };
        let path = checkpoint::checkpoint_dir(&self.output).join(&best.file);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let (model, _) = weights::load(&bytes, &self.ad_device)
            .with_context(|| format!("loading {}", path.display()))?;
        self.optimizer = new_optimizer(&self.recipe, &self.beta1);
        eprintln!(
            "stage {} starts from stage {stage}'s best epoch {} (tuning Dice {:.4})",
            stage + 1,
            best.epoch,
            best.dice
        );
        Ok(with_stable_ids(model))
    }

    /// Reads and resizes the cases for `stage` unless they are cached.
    fn prepare_stage(&mut self, stage: usize) -> anyhow::Result<()> {
        if self.stage_data.as_ref().is_some_and(|d| d.stage == stage) {
            return Ok(());
        }
        self.stage_data = None;
        let start = Instant::now();
        let dims = self.recipe.stages[stage].input_dims;
        let prepare = |pairs: &[Pair]| -> anyhow::Result<Vec<StageCase>> {
            pairs
                .iter()
                .map(|pair| {
                    let case = read_case(pair, self.recipe.label)?;
                    to_stage(&pair.name, &case, self.window, dims)
                })
                .collect()
        };
        let train = prepare(&self.train_pairs)?;
        let tune = prepare(&self.tune_pairs)?;
        tracing::info!(
            stage = stage + 1,
            dims = ?dims,
            cases = train.len() + tune.len(),
            seconds = start.elapsed().as_secs_f64(),
            "stage data prepared"
        );
        self.stage_data = Some(StageData { stage, train, tune });
        Ok(())
    }

    /// Trains one epoch, scores the tuning cases and writes the checkpoint and the log.
    fn epoch(&mut self, mut model: UNet, epoch: usize, plan: EpochPlan) -> anyhow::Result<UNet> {
        let start = Instant::now();
        let stage_recipe = &self.recipe.stages[plan.stage];
        let phase = &stage_recipe.phases[plan.phase];
        let [d, h, w] = stage_recipe.input_dims;
        let [pd, ph, pw] = stage_recipe.patch_dims.unwrap_or(stage_recipe.input_dims);
        let patch = [pw, ph, pd];
        let batch_size = stage_recipe.batch_size;
        let data = self
            .stage_data
            .as_ref()
            .context("stage data is prepared before an epoch")?;
        let n = data.train.len() * stage_recipe.samples_per_case;
        let full_steps = if n >= batch_size { n / batch_size } else { 1 };
        let steps = self
            .recipe
            .max_steps_per_epoch
            .map_or(full_steps, |m| m.min(full_steps));
        let cycle = OneCycle {
            base_lr: phase.base_lr,
            total_steps: steps * plan.phase_epochs,
            shape: self.recipe.one_cycle,
        };

        let bar = ProgressBar::new(steps as u64);
        if let Ok(style) =
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(format!(
            "epoch {epoch}/{} stage {}",
            self.recipe.total_epochs(),
            plan.stage + 1
        ));

        let mut order: Vec<usize> = (0..n).collect();
        self.state.rng.shuffle(&mut order);
        let mut loss_sum = 0.0;
        let mut lr = cycle.lr(0);
        for b in 0..steps {
            let members = &order[b * batch_size..((b + 1) * batch_size).min(n)];
            let mut images = Vec::with_capacity(members.len() * d * h * w);
            let mut masks = Vec::with_capacity(images.capacity());
            for &i in members {
                let case = &data.train[i % data.train.len()];
                let (mut image, mut mask) = (case.image.clone(), case.mask.clone());
                augment::augment(
                    &self.recipe.augment,
                    &mut self.state.rng,
                    &mut image,
                    &mut mask,
                    case.dims,
                );
                if patch != case.dims {
                    let origin = patch::crop_origin(
                        &mask,
                        case.dims,
                        patch,
                        stage_recipe.foreground_share,
                        &mut self.state.rng,
                    );
                    image = patch::crop(&image, case.dims, origin, patch);
                    mask = patch::crop(&mask, case.dims, origin, patch);
                }
                images.extend_from_slice(&image);
                masks.extend_from_slice(&mask);
            }
            let batch = members.len();
            let input = Tensor::<5>::from_floats(
                TensorData::new(images, [batch, 1, pd, ph, pw]),
                &self.ad_device,
            );
            let target = Tensor::<4>::from_floats(
                TensorData::new(masks, [batch, pd, ph, pw]),
                &self.ad_device,
            );

            let step = plan.in_phase * steps + b;
            lr = cycle.lr(step);
            self.beta1.set(cycle.beta1(step));
            let (stepped, loss_value) = train_step(
                model,
                &mut self.optimizer,
                &self.shard_devices,
                input,
                target,
                lr,
            )?;
            model = stepped;
            if !loss_value.is_finite() {
                bail!("the training loss became {loss_value} at epoch {epoch}, step {}: lower the learning rate", b + 1);
            }
            loss_sum += loss_value;
            self.state.steps_done += 1;
            bar.set_message(format!("loss {loss_value:.4} lr {lr:.2e}"));
            bar.inc(1);
        }
        let train_loss = loss_sum / steps as f64;

        let (tune_dice, tune_nsd) = self.tune_scores(&model)?;
        bar.finish_and_clear();
        let seconds = start.elapsed().as_secs_f64();
        self.state.train_seconds += seconds;
        let row = EpochRow {
            epoch,
            stage: plan.stage + 1,
            phase: plan.phase + 1,
            lr,
            train_loss,
            tune_dice,
            tune_nsd,
            seconds,
        };
        tracing::info!(
            epoch,
            stage = row.stage,
            phase = row.phase,
            lr,
            train_loss,
            tune_dice,
            tune_nsd,
            seconds,
            "epoch"
        );
        eprintln!(
            "epoch {epoch:>4} stage {} phase {}: loss {train_loss:.4}, tuning Dice {tune_dice:.4}, NSD {tune_nsd:.4} ({seconds:.1} s)",
            row.stage, row.phase
        );
        self.state.log.push(row);
        self.state.epochs_done = epoch;

        let meta = metadata(&model.config(), self.window, [d, h, w]);
        let model_bytes = weights::save(&model, &meta, Storage::F32)?;
        let score = if tune_dice.is_nan() { -1.0 } else { tune_dice };
        // A tie keeps the later epoch: early in a run every epoch can score Dice 0 (nothing
        // predicted yet), and the weights trained longer are then the better guess.
        let improves = match &self.state.best[plan.stage] {
            None => true,
            Some(best) => score >= best.dice || self.tune_pairs.is_empty(),
        };
        let checkpoints = checkpoint::checkpoint_dir(&self.output);
        std::fs::create_dir_all(&checkpoints)
            .with_context(|| format!("creating {}", checkpoints.display()))?;
        if improves {
            let file = format!("best-stage{}-epoch{epoch:04}.pulmoseg", plan.stage + 1);
            write_atomic(&checkpoints.join(&file), &model_bytes)?;
            self.state.best[plan.stage] = Some(Best {
                dice: score,
                nsd: tune_nsd,
                epoch,
                file,
            });
        }
        let optimizer_bytes = self
            .optimizer
            .into_bytes()
            .map_err(|e| anyhow::anyhow!("serialising the optimiser state: {e:?}"))?;
        checkpoint::save(&self.output, &self.state, &model_bytes, &optimizer_bytes)?;
        log::write(&self.output, &self.state.log)?;
        Ok(model)
    }

    /// Mean Dice and NSD of the tuning cases on the stage grid (NaN without tuning cases).
    fn tune_scores(&self, model: &UNet) -> anyhow::Result<(f64, f64)> {
        let data = self
            .stage_data
            .as_ref()
            .context("stage data is prepared before tuning")?;
        if data.tune.is_empty() {
            return Ok((f64::NAN, f64::NAN));
        }
        let model = model.valid();
        let mut dices = Vec::new();
        let mut nsds = Vec::new();
        for case in &data.tune {
            let [w, h, d] = case.dims;
            let input = Tensor::<5>::from_floats(
                TensorData::new(case.image.clone(), [1, 1, d, h, w]),
                &self.device,
            );
            let probability = softmax(model.forward(input)?, 1).narrow(1, 1, 1);
            let values: Vec<f32> = probability
                .into_data()
                .try_into_vec::<f32>()
                .map_err(|e| anyhow::anyhow!("reading the network output: {e:?}"))?;
            let predicted: Vec<bool> = values.iter().map(|&p| p > 0.5).collect();
            let truth: Vec<bool> = case.mask.iter().map(|&m| m > 0.5).collect();
            dices.push(dice(&truth, &predicted)?);
            nsds.push(surface_dice(
                &truth,
                &predicted,
                case.dims,
                case.spacing_mm,
                self.recipe.tolerance_mm,
            )?);
        }
        Ok((summarize(&dices).mean, summarize(&nsds).mean))
    }

    /// Restores the best weights of the last stage, scores them on the tuning cases' own
    /// grids, and writes `model.pulmoseg` with its model card.
    fn finish(self) -> anyhow::Result<()> {
        let last = self
            .recipe
            .stages
            .iter()
            .rposition(|s| s.phases.iter().any(|p| p.epochs > 0))
            .context("the recipe trains no stage")?;
        let best = self.state.best[last]
            .clone()
            .context("the last stage has no best epoch")?;
        let path = checkpoint::checkpoint_dir(&self.output).join(&best.file);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let (model, _) = weights::load(&bytes, &self.device)
            .with_context(|| format!("loading {}", path.display()))?;

        let input_dims = self.recipe.stages[last].input_dims;
        let config = model.config();
        let mut meta = metadata(&config, self.window, input_dims);
        let preprocessing = inference_preprocessing(&meta)?;
        let start = Instant::now();
        let scores = score_pairs(
            &model,
            &self.device,
            &preprocessing,
            &self.tune_pairs,
            self.recipe.label,
            self.recipe.tolerance_mm,
            0.5,
            None,
        )?;
        tracing::info!(
            cases = scores.len(),
            seconds = start.elapsed().as_secs_f64(),
            "tuning cases scored on their own grids"
        );
        let dice_summary = summarize(&scores.iter().map(|s| s.dice).collect::<Vec<_>>());
        let nsd_summary = summarize(&scores.iter().map(|s| s.nsd).collect::<Vec<_>>());
        let summary_json = |s: &pulmoseg_core::summary::Summary| serde_json::json!({ "n": s.n, "mean": finite(s.mean), "sd": finite(s.sd), "min": finite(s.min), "max": finite(s.max) });

        let seconds = self.state.train_seconds;
        meta.model_card = serde_json::json!({
            "model": format!("Pulmoseg 3-D U-Net with R3D-18 encoder, width {}", config.width),
            "training_data": self.description,
            "data": self.data,
            "training_cases": self.train_pairs.len(),
            "tuning_cases": self.state.tune_cases,
            "recipe": self.recipe,
            "encoder_init": if self.recipe.kinetics.is_some() { "Kinetics-400 (torchvision r3d_18)" } else { "random (torchvision R3D-18 initialisation)" },
            "backend": self.backend.name(),
            "devices": self.shard_devices.len(),
            "hardware": self.backend.hardware(),
            "train_seconds": seconds,
            "wall_time": format!("{} h {} min", (seconds / 3600.0).floor(), ((seconds % 3600.0) / 60.0).round()),
            "best_epoch": best.epoch,
            "tuning": {
                "grid": "each case's own grid (prediction resized back), threshold 0.5",
                "tolerance_mm": self.recipe.tolerance_mm,
                "dice": summary_json(&dice_summary),
                "nsd": summary_json(&nsd_summary),
            },
            "pulmoseg_version": env!("CARGO_PKG_VERSION"),
        });
        let out_bytes = weights::save(&model, &meta, Storage::F32)?;
        let model_path = self.output.join(MODEL_FILE);
        write_atomic(&model_path, &out_bytes)?;
        write_atomic(
            &self.output.join("tuning_scores.csv"),
            scores_csv(&scores).as_bytes(),
        )?;

        eprintln!(
            "trained {} epochs in {:.1} s; best epoch {} of stage {}; model: {}",
            self.state.epochs_done,
            seconds,
            best.epoch,
            last + 1,
            model_path.display()
        );
        if !scores.is_empty() {
            print!(
                "{}",
                summary_table("tuning", &scores, self.recipe.tolerance_mm)
            );
        }
        Ok(())
    }
}

/// One optimiser step: forward, loss, backward, update. Returns the updated network and the
/// loss before the update.
///
/// With more than one device the batch is split into one shard per device (sizes differ by at
/// most one), each shard runs forward and backward on its own copy of the network in its own
/// thread, and burn's `ModuleOptimizer::step_multi` sums the shards' gradients (each shard's
/// loss weighted by its share of the batch, so identical shards give the one-device
/// gradient) and updates the network on the first device. The soft Dice is then taken per
/// shard, and BatchNorm sees each shard's statistics, as PyTorch's `DataParallel` without
/// SyncBN.
fn train_step(
    model: UNet,
    optimizer: &mut ModuleOptimizer,
    devices: &[Device],
    input: Tensor<5>,
    target: Tensor<4>,
    lr: f64,
) -> anyhow::Result<(UNet, f64)> {
    if devices.len() > 1 {
        return train_step_multi(model, optimizer, devices, input, target, lr);
    }
    let logits = model.forward(input)?;
    let loss = dice_ce_loss(logits, target);
    let grads = GradientsParams::from_grads(loss.total.backward(), &model);
    let model = optimizer.step(lr, model, grads);
    tracing::debug!(
        cross_entropy = scalar(loss.cross_entropy)?,
        soft_dice = scalar(loss.soft_dice)?,
        "loss parts"
    );
    Ok((model, scalar(loss.total)?))
}

fn train_step_multi(
    model: UNet,
    optimizer: &mut ModuleOptimizer,
    devices: &[Device],
    input: Tensor<5>,
    target: Tensor<4>,
    lr: f64,
) -> anyhow::Result<(UNet, f64)> {
    let batch = input.dims()[0];
    let n = devices.len();
    if batch < n {
        bail!("a batch of {batch} cannot be split over {n} devices");
    }
    let main = input.device();
    let results: Vec<anyhow::Result<(GradientsParams, Device, f64)>> = std::thread::scope(|s| {
        let handles: Vec<_> = devices
            .iter()
            .enumerate()
            .map(|(i, device)| {
                let start = i * batch / n;
                let size = (i + 1) * batch / n - start;
                // A shard on the network's own device (every flex "device") uses a clone: its
                // backward gives its own gradients. Another device needs its own copy there.
                let shard_model = if *device == main {
                    model.clone()
                } else {
                    model.clone().fork(device)
                };
                let shard_input = input.clone().narrow(0, start, size).to_device(device);
                let shard_target = target.clone().narrow(0, start, size).to_device(device);
                let weight = size as f64 / batch as f64;
                s.spawn(move || -> anyhow::Result<(GradientsParams, Device, f64)> {
                    let logits = shard_model.forward(shard_input)?;
                    let loss = dice_ce_loss(logits, shard_target).total.mul_scalar(weight);
                    let value = scalar(loss.clone())?;
                    let grads = GradientsParams::from_grads(loss.backward(), &shard_model);
                    Ok((grads, device.clone(), value))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a training device's thread panicked")))
            })
            .collect()
    });
    let mut grads = Vec::with_capacity(n);
    let mut loss = 0.0;
    for result in results {
        let (g, device, value) = result?;
        grads.push((g, device));
        loss += value;
    }
    let model = optimizer.step_multi(lr, model, MultiGradientsParams { grads });
    Ok((model, loss))
}

/// `--bench`: seconds per training step on a synthetic batch (the same pattern as
/// `tools/peers/train_step_peer.py`: a smooth intensity pattern and a centred ellipsoid).
fn bench(args: &TrainArgs, steps: usize) -> anyhow::Result<()> {
    if steps == 0 {
        bail!("--bench needs at least one step to time");
    }
    let recipe = args.recipe()?;
    recipe.validate()?;
    let stage = &recipe.stages[0];
    let [d, h, w] = stage.input_dims;
    let batch = stage.batch_size;
    let device = args.backend.device(0)?.autodiff();
    device.seed(recipe.seed);
    let mut model = with_stable_ids(UNetConfig::new().with_width(recipe.width).init(&device)?);
    let mut optimizer = new_optimizer(&recipe, &Beta1::new(0.95));

    let axis = |n: usize, i: usize| {
        if n > 1 {
            -1.0 + 2.0 * i as f32 / (n - 1) as f32
        } else {
            0.0
        }
    };
    let mut image = Vec::with_capacity(d * h * w);
    let mut mask = Vec::with_capacity(d * h * w);
    for k in 0..d {
        for j in 0..h {
            for i in 0..w {
                let (x, y, z) = (axis(w, i), axis(h, j), axis(d, k));
                image.push(0.5 + 0.25 * (3.0 * x).sin() * (2.0 * y).cos() + 0.1 * z);
                let r = (x / 0.4).powi(2) + (y / 0.3).powi(2) + (z / 0.6).powi(2);
                mask.push(if r < 1.0 { 1.0f32 } else { 0.0 });
            }
        }
    }
    let images: Vec<f32> = (0..batch).flat_map(|_| image.iter().copied()).collect();
    let masks: Vec<f32> = (0..batch).flat_map(|_| mask.iter().copied()).collect();

    let mut times = Vec::new();
    let mut loss = f64::NAN;
    for _ in 0..steps + 1 {
        let start = Instant::now();
        let input = Tensor::<5>::from_floats(
            TensorData::new(images.clone(), [batch, 1, d, h, w]),
            &device,
        );
        let target =
            Tensor::<4>::from_floats(TensorData::new(masks.clone(), [batch, d, h, w]), &device);
        let (stepped, value) = train_step(
            model,
            &mut optimizer,
            &[device.clone()],
            input,
            target,
            1e-3,
        )?;
        model = stepped;
        device
            .sync()
            .map_err(|e| anyhow::anyhow!("synchronising the device: {e:?}"))?;
        loss = value;
        times.push(start.elapsed().as_secs_f64());
    }
    let per_step = times[1..].iter().sum::<f64>() / steps.max(1) as f64;
    let report = serde_json::json!({
        "backend": args.backend.name(),
        "width": recipe.width,
        "dims": [d, h, w],
        "batch": batch,
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "seconds_per_step": per_step,
        "first_step_seconds": times[0],
        "loss": loss,
    });
    println!("{report}");
    Ok(())
}

fn finite(v: f64) -> serde_json::Value {
    if v.is_finite() {
        serde_json::json!(v)
    } else {
        serde_json::Value::Null
    }
}

fn new_optimizer(recipe: &Recipe, beta1: &Beta1) -> ModuleOptimizer {
    ScheduledAdam {
        beta1: beta1.clone(),
        beta2: recipe.adam_beta2,
        epsilon: recipe.adam_epsilon,
        weight_decay: recipe.weight_decay,
    }
    .into_module_optimizer()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn the_paper_recipe_plans_410_epochs_in_three_phases() {
        let plans = plan(&Recipe::default());
        assert_eq!(plans.len(), 410);
        assert!(plans[0].starts_stage && plans[0].stage == 0 && plans[0].phase == 0);
        assert_eq!(
            (plans[10].stage, plans[10].phase, plans[10].in_phase),
            (0, 1, 0)
        );
        assert!(!plans[10].starts_stage);
        assert!(plans[210].starts_stage && plans[210].stage == 1);
        assert_eq!(plans[409].phase_epochs, 200);
    }

    #[test]
    fn two_devices_with_identical_shards_take_the_one_device_step() {
        // With plain SGD (w ← w − lr·g, so a wrongly scaled gradient shows, which Adam's
        // normalised step would hide): one device on one sample, and two devices (two handles
        // of flex, the one device here) on a batch of that sample twice, one shard each. Each
        // shard's loss weighs 1/2 and step_multi sums the shards, so both update by the same g.
        let device = Device::flex().autodiff();
        let [d, h, w] = [5, 9, 9];
        let image: Vec<f32> = (0..d * h * w).map(|i| (i % 7) as f32 / 7.0).collect();
        let mask: Vec<f32> = (0..d * h * w).map(|i| (i % 3 == 0) as u8 as f32).collect();
        // One network, cloned for each run: seeding the device and drawing the weights in
        // each run would race with the other tests drawing from the same global generator.
        device.seed(5);
        let initial = with_stable_ids(UNetConfig::new().with_width(4).init(&device).expect("net"));
        let fresh = || initial.clone();
        let batch = |n: usize| {
            let input = Tensor::<5>::from_floats(
                TensorData::new(image.repeat(n), [n, 1, d, h, w]),
                &device,
            );
            let target =
                Tensor::<4>::from_floats(TensorData::new(mask.repeat(n), [n, d, h, w]), &device);
            (input, target)
        };
        let head = |model: &UNet| -> Vec<f32> {
            model
                .head
                .out
                .weight
                .val()
                .into_data()
                .try_into_vec::<f32>()
                .expect("f32")
        };
        let before = encoder_tensors(&fresh());

        let (input, target) = batch(1);
        let mut sgd = burn::optim::SgdConfig::new().init();
        let (one, loss_one) =
            train_step(fresh(), &mut sgd, &[device.clone()], input, target, 0.1).expect("step");
        let (input, target) = batch(2);
        let mut sgd = burn::optim::SgdConfig::new().init();
        let devices = [device.clone(), Device::flex().autodiff()];
        let (two, loss_two) =
            train_step(fresh(), &mut sgd, &devices, input, target, 0.1).expect("step");

        assert!(
            (loss_one - loss_two).abs() < 1e-5,
            "{loss_one} vs {loss_two}"
        );
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        let (conv_one, gamma_one) = encoder_tensors(&one);
        let (conv_two, gamma_two) = encoder_tensors(&two);
        assert_ne!(before.0, conv_one, "the step changed nothing");
        assert!(close(&conv_one, &conv_two), "stem convolution differs");
        assert!(close(&gamma_one, &gamma_two), "stem BatchNorm differs");
        assert!(close(&head(&one), &head(&two)), "head differs");

        // A batch smaller than the device count is refused, not silently run on fewer.
        let (input, target) = batch(1);
        let err = train_step(fresh(), &mut sgd, &devices, input, target, 0.1)
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.contains("batch of 1 cannot be split over 2 devices"),
            "{err}"
        );
    }

    fn encoder_tensors(model: &UNet) -> (Vec<f32>, Vec<f32>) {
        let conv: Vec<f32> = model
            .encoder
            .stem
            .conv
            .weight
            .val()
            .into_data()
            .try_into_vec::<f32>()
            .expect("f32");
        let gamma: Vec<f32> = model
            .encoder
            .stem
            .bn
            .gamma
            .val()
            .into_data()
            .try_into_vec::<f32>()
            .expect("f32");
        (conv, gamma)
    }

    #[test]
    fn a_frozen_encoder_keeps_its_convolutions_but_trains_its_batch_norm() {
        let device = Device::flex().autodiff();
        device.seed(1);
        let model = with_stable_ids(UNetConfig::new().with_width(4).init(&device).expect("net"));
        let ids = encoder_conv_ids(&model);
        // stem + 4 stages × 2 blocks × 2 convs + 3 downsamples = 1 + 16 + 3 = 20.
        assert_eq!(ids.len(), 20);
        let (conv_before, gamma_before) = encoder_tensors(&model);
        let head_before: Vec<f32> = model
            .head
            .out
            .weight
            .val()
            .into_data()
            .try_into_vec::<f32>()
            .expect("f32");

        let model = model.set_require_grad_group(ParamGroup::from_ids(ids.clone()), false);
        let mut optimizer = new_optimizer(&Recipe::default(), &Beta1::new(0.9));
        let [d, h, w] = [5, 9, 9];
        let image: Vec<f32> = (0..d * h * w).map(|i| (i % 7) as f32 / 7.0).collect();
        let mask: Vec<f32> = (0..d * h * w).map(|i| (i % 3 == 0) as u8 as f32).collect();
        let input = Tensor::<5>::from_floats(TensorData::new(image, [1, 1, d, h, w]), &device);
        let target = Tensor::<4>::from_floats(TensorData::new(mask, [1, d, h, w]), &device);
        let (model, loss) = train_step(
            model,
            &mut optimizer,
            &[device.clone()],
            input,
            target,
            1e-2,
        )
        .expect("step");
        assert!(loss.is_finite());

        let (conv_after, gamma_after) = encoder_tensors(&model);
        let head_after: Vec<f32> = model
            .head
            .out
            .weight
            .val()
            .into_data()
            .try_into_vec::<f32>()
            .expect("f32");
        assert_eq!(
            conv_before, conv_after,
            "frozen encoder convolution changed"
        );
        assert_ne!(gamma_before, gamma_after, "encoder BatchNorm did not train");
        assert_ne!(head_before, head_after, "decoder did not train");

        // Unfrozen, the convolutions train too.
        let model = model.set_require_grad_group(ParamGroup::from_ids(ids), true);
        let input = Tensor::<5>::from_floats(
            TensorData::new(vec![0.5; d * h * w], [1, 1, d, h, w]),
            &device,
        );
        let target =
            Tensor::<4>::from_floats(TensorData::new(vec![1.0; d * h * w], [1, d, h, w]), &device);
        let (model, _) = train_step(
            model,
            &mut optimizer,
            &[device.clone()],
            input,
            target,
            1e-2,
        )
        .expect("step");
        assert_ne!(
            encoder_tensors(&model).0,
            conv_after,
            "unfrozen encoder convolution did not train"
        );
    }

    #[test]
    fn stable_ids_survive_a_weights_file_round_trip() {
        let device = Device::flex().autodiff();
        let model = with_stable_ids(UNetConfig::new().with_width(2).init(&device).expect("net"));
        let config = model.config();
        let bytes =
            weights::save(&model, &WeightsMetadata::new(&config), Storage::F32).expect("save");
        let (loaded, _) = weights::load(&bytes, &device).expect("load");
        let loaded = with_stable_ids(loaded);
        assert_eq!(encoder_conv_ids(&model), encoder_conv_ids(&loaded));
        assert_eq!(model.head.out.weight.id, loaded.head.out.weight.id);
    }
}
