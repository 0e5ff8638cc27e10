//! `pulmoseg predict`: infiltrate masks and their quantities for whole chest CTs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use pulmoseg_core::inference::{summarise, InfiltrateMask, Quantities};
use pulmoseg_core::lung_mask::{lung_mask, LungMaskOptions};
use pulmoseg_core::nifti::write_labels_nii_gz;
use pulmoseg_core::segment::wgpu_drift_reason;
use pulmoseg_core::weights;
use tracing::info;

use crate::evaluate::predict;
use crate::input::read_image;
use crate::train::backend::BackendKind;
use crate::train::checkpoint::write_atomic;

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Pulmoseg weights file (`.pulmoseg`).
    #[arg(long)]
    model: PathBuf,
    /// Chest CTs, `.nii` or `.nii.gz`.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Folder for `<name>_infiltrate.nii.gz` and `<name>_quantities.json`; created if missing.
    #[arg(long)]
    output: PathBuf,
    /// Where the network runs: flex (CPU, always available), wgpu or cuda (when built in).
    #[arg(long, value_enum, default_value_t = BackendKind::Flex)]
    backend: BackendKind,
    /// Infiltrate probability from which a voxel is marked.
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
}

pub fn run(args: &PredictArgs) -> anyhow::Result<()> {
    if !(args.threshold > 0.0 && args.threshold < 1.0) {
        bail!(
            "--threshold {} must lie strictly between 0 and 1",
            args.threshold
        );
    }
    let mut names: Vec<String> = args.inputs.iter().map(|p| scan_name(p)).collect();
    names.sort();
    if let Some(pair) = names.windows(2).find(|w| w[0] == w[1]) {
        bail!(
            "two inputs are named {:?}: their results would overwrite each other",
            pair[0]
        );
    }
    let device = args.backend.device(0)?;
    let bytes = crate::input::read_input(&args.model)?;
    let (model, metadata) = weights::load(&bytes, &device)
        .with_context(|| format!("loading weights {}", args.model.display()))?;
    let Some(preprocessing) = metadata.preprocessing.clone() else {
        bail!(
            "{} states no CT preprocessing: it is not a segmentation model",
            args.model.display()
        );
    };
    if args.backend == BackendKind::Wgpu {
        if let Some(reason) = wgpu_drift_reason(preprocessing.mode.network_dims()) {
            eprintln!("warning: {reason}: compare with --backend flex");
        }
    }
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("creating output folder {}", args.output.display()))?;

    let bar = ProgressBar::new(args.inputs.len() as u64 * STAGES.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} stages  {elapsed_precise}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    for input in &args.inputs {
        let name = scan_name(input);
        let stage = |what: &str| bar.set_message(format!("{name}: {what}"));

        stage(STAGES[0]);
        let started = Instant::now();
        let image = read_image(input)?;
        let volume = &image.volume;
        info!(
            "decoded {name}: {:?} voxels in {:.1} s",
            volume.dims,
            started.elapsed().as_secs_f64()
        );
        bar.inc(1);

        stage(STAGES[1]);
        let started = Instant::now();
        let lung = lung_mask(volume, &LungMaskOptions::default())
            .with_context(|| format!("lung mask of {}", input.display()))?;
        info!(
            "lung mask of {name}: {:.0} mL in {:.1} s",
            lung.total_ml(),
            started.elapsed().as_secs_f64()
        );
        bar.inc(1);

        stage(STAGES[2]);
        let started = Instant::now();
        let probability = predict(&model, &device, volume, &preprocessing)
            .with_context(|| format!("running the network on {}", input.display()))?;
        info!(
            "inference {name} on {}: {:.1} s",
            args.backend.name(),
            started.elapsed().as_secs_f64()
        );
        bar.inc(1);

        stage(STAGES[3]);
        let model_id = (metadata.name.as_str(), metadata.version.as_str());
        let (mask, quantities) = summarise(
            volume,
            &lung,
            &probability,
            args.threshold,
            model_id,
            &image.warnings,
        );
        write_outputs(&args.output, &name, &mask, &image.header, &quantities)?;
        bar.inc(1);
        bar.println(format!(
            "{name}: infiltrate {:.1} mL of {:.0} mL lung ({:.1} %)",
            quantities.lungs.total.infiltrate_ml,
            quantities.lungs.total.lung_ml,
            quantities.lungs.total.affected_percent
        ));
    }
    bar.finish_with_message("done");
    Ok(())
}

const STAGES: [&str; 4] = ["decode", "lung mask", "inference", "write"];

fn write_outputs(
    dir: &Path,
    name: &str,
    mask: &InfiltrateMask,
    header: &pulmoseg_core::nifti::Header,
    quantities: &Quantities,
) -> anyhow::Result<()> {
    let mask_path = dir.join(format!("{name}_infiltrate.nii.gz"));
    let nifti = write_labels_nii_gz(&mask.labels, header)?;
    write_atomic(&mask_path, &nifti)?;

    let json_path = dir.join(format!("{name}_quantities.json"));
    let json = serde_json::to_vec_pretty(quantities)?;
    write_atomic(&json_path, &json)
}

/// `P001.nii.gz` → `P001`.
fn scan_name(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    file.strip_suffix(".nii.gz")
        .or_else(|| file.strip_suffix(".nii"))
        .unwrap_or(&file)
        .to_string()
}
