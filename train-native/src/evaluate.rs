//! `pulmoseg evaluate --model FILE --data DIR|CSV`: runs a trained network on (image, mask)
//! pairs with the weights file's own preprocessing, scores each case on the mask's grid (Dice
//! and normalized surface Dice), and prints the summary rows of the paper's Tables 1 and 2.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use burn::tensor::Device;
use clap::Args;
use pulmoseg_core::dice::{dice, mask_from_labels};
use pulmoseg_core::inference::Preprocessing;
use pulmoseg_core::nifti::write_labels_nii_gz;
use pulmoseg_core::segment::infiltrate_probability;
use pulmoseg_core::summary::summarize;
use pulmoseg_core::surface_dice::surface_dice;
use pulmoseg_core::unet::UNet;
use pulmoseg_core::weights::{self, WeightsMetadata};
use pulmoseg_core::window::HuWindow;
use pulmoseg_core::Volume;

use crate::input::read_image;
use crate::train::backend::BackendKind;
use crate::train::checkpoint::write_atomic;
use crate::train::dataset::{check_same_grid, read_data_set, Pair};
use crate::train::plot::{render, Panel, Series};

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Trained weights file (`pulmoseg train` writes `model.pulmoseg`).
    #[arg(long)]
    model: PathBuf,
    /// A CSV manifest with image,mask columns, or a folder (manifest.csv, or images/ + masks/).
    #[arg(long)]
    data: PathBuf,
    /// Folder for per-case scores (scores.csv), their chart (scores.png) and the predicted
    /// label files.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Surface tolerance of the normalized surface Dice, mm.
    #[arg(long, default_value_t = 3.0)]
    tolerance_mm: f64,
    /// Which mask value is infiltrate; by default every value > 0.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    label: Option<u32>,
    /// Infiltrate probability above which a voxel is predicted infiltrate.
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
    /// Backend to run the network on.
    #[arg(long, value_enum, default_value = "flex")]
    backend: BackendKind,
}

/// One scored case.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseScore {
    /// The pair's name.
    pub name: String,
    /// Dice against the mask (NaN when both are empty).
    pub dice: f64,
    /// Normalized surface Dice at the tolerance.
    pub nsd: f64,
    /// Infiltrate volume of the mask, ml.
    pub truth_ml: f64,
    /// Predicted infiltrate volume, ml.
    pub predicted_ml: f64,
}

/// The preprocessing a weights file states (its own HU window, inference mode, resize
/// convention and orientation), checked.
pub fn inference_preprocessing(metadata: &WeightsMetadata) -> anyhow::Result<Preprocessing> {
    let Some(pre) = &metadata.preprocessing else {
        bail!("the weights file states no preprocessing: it was not trained on CT");
    };
    HuWindow::new(pre.window.lower_hu, pre.window.upper_hu)?;
    Ok(pre.clone())
}

/// Infiltrate probability of every voxel of `volume`, on its own grid and in its layout
/// (core's [`infiltrate_probability`], driven to completion on this thread).
///
/// `model` must be in evaluation form (a non-autodiff device, e.g. after `.valid()`), so that
/// BatchNorm uses its running statistics.
pub fn predict(
    model: &UNet,
    device: &Device,
    volume: &Volume,
    preprocessing: &Preprocessing,
) -> anyhow::Result<Vec<f32>> {
    let run = infiltrate_probability(model, device, volume, preprocessing, |_, _| ());
    Ok(futures_lite::future::block_on(run)?)
}

/// Runs `model` on every pair and scores it; writes predicted label files into `labels_dir`
/// when given.
pub fn score_pairs(
    model: &UNet,
    device: &Device,
    preprocessing: &Preprocessing,
    pairs: &[Pair],
    label: Option<u32>,
    tolerance_mm: f64,
    threshold: f32,
    labels_dir: Option<&Path>,
) -> anyhow::Result<Vec<CaseScore>> {
    let mut scores = Vec::with_capacity(pairs.len());
    for pair in pairs {
        let image = read_image(&pair.image)?;
        let mask = read_image(&pair.mask)?;
        check_same_grid(&image.volume, &pair.image, &mask.volume, &pair.mask)?;

        let start = std::time::Instant::now();
        let probability = predict(model, device, &image.volume, preprocessing)
            .with_context(|| format!("running the network on {}", pair.image.display()))?;
        let predicted: Vec<bool> = probability.iter().map(|&p| p > threshold).collect();
        let truth = mask_from_labels(&mask.volume.hu, label);
        let v = &mask.volume;
        let dice_value = dice(&truth, &predicted)?;
        let nsd = surface_dice(&truth, &predicted, v.dims, v.spacing_mm, tolerance_mm)?;
        let voxel_ml = v.voxel_ml();
        let count = |m: &[bool]| m.iter().filter(|&&x| x).count() as f64;
        tracing::info!(
            case = %pair.name,
            dice = dice_value,
            nsd,
            seconds = start.elapsed().as_secs_f64(),
            "scored"
        );

        if let Some(dir) = labels_dir {
            let labels: Vec<u8> = predicted.iter().map(|&p| p as u8).collect();
            let bytes = write_labels_nii_gz(&labels, &image.header)?;
            write_atomic(
                &dir.join(format!("{}_prediction.nii.gz", pair.name)),
                &bytes,
            )?;
        }
        scores.push(CaseScore {
            name: pair.name.clone(),
            dice: dice_value,
            nsd,
            truth_ml: count(&truth) * voxel_ml,
            predicted_ml: count(&predicted) * voxel_ml,
        });
    }
    Ok(scores)
}

/// The per-case CSV.
pub fn scores_csv(scores: &[CaseScore]) -> String {
    let mut out = String::from("case,dice,nsd,truth_ml,predicted_ml\n");
    for s in scores {
        out.push_str(&format!(
            "{},{:.6},{:.6},{:.3},{:.3}\n",
            s.name, s.dice, s.nsd, s.truth_ml, s.predicted_ml
        ));
    }
    out
}

/// The summary rows in the layout of the paper's Tables 1 and 2.
pub fn summary_table(label: &str, scores: &[CaseScore], tolerance_mm: f64) -> String {
    let dice_values: Vec<f64> = scores.iter().map(|s| s.dice).collect();
    let nsd_values: Vec<f64> = scores.iter().map(|s| s.nsd).collect();
    let (d, n) = (summarize(&dice_values), summarize(&nsd_values));
    let cell = |s: &pulmoseg_core::summary::Summary| {
        format!("{:.3} ± {:.3} ({:.3}, {:.3})", s.mean, s.sd, s.min, s.max)
    };
    let mut out = format!(
        "| dataset | n | Dice mean ± sd (min, max) | NSD {tolerance_mm} mm mean ± sd (min, max) |\n\
         | --- | --- | --- | --- |\n| {label} | {} | {} | {} |\n",
        d.n,
        cell(&d),
        cell(&n)
    );
    if d.skipped_nan > 0 {
        out.push_str(&format!(
            "({} case(s) with empty mask and empty prediction have no Dice and are left out)\n",
            d.skipped_nan
        ));
    }
    out
}

/// Per-case Dice and NSD as a chart.
pub fn scores_plot(scores: &[CaseScore]) -> anyhow::Result<Vec<u8>> {
    let series = |label: &str, color: [u8; 3], f: fn(&CaseScore) -> f64| Series {
        label: label.into(),
        color,
        points: scores
            .iter()
            .enumerate()
            .map(|(i, s)| ((i + 1) as f64, f(s)))
            .collect(),
        markers: true,
    };
    let panel = Panel {
        title: "per-case scores".into(),
        x_label: "case".into(),
        series: vec![
            series("dice", [30, 90, 200], |s| s.dice),
            series("nsd", [20, 150, 60], |s| s.nsd),
        ],
        y_range: Some((0.0, 1.0)),
    };
    render(&[panel], 720, 400)
}

pub fn run(args: &EvaluateArgs) -> anyhow::Result<()> {
    if !(args.threshold > 0.0 && args.threshold < 1.0) {
        bail!(
            "--threshold {} must lie strictly between 0 and 1",
            args.threshold
        );
    }
    if !(args.tolerance_mm.is_finite() && args.tolerance_mm >= 0.0) {
        bail!(
            "--tolerance-mm {} must be a finite number ≥ 0",
            args.tolerance_mm
        );
    }
    let bytes = crate::input::read_input(&args.model)?;
    let device = args.backend.device(0)?;
    let (model, metadata) = weights::load(&bytes, &device)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let preprocessing = inference_preprocessing(&metadata)
        .with_context(|| format!("reading the preprocessing of {}", args.model.display()))?;
    let data = read_data_set(&args.data)?;

    if let Some(dir) = &args.output {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let scores = score_pairs(
        &model,
        &device,
        &preprocessing,
        &data.pairs,
        args.label,
        args.tolerance_mm,
        args.threshold,
        args.output.as_deref(),
    )?;

    println!("{:<24} {:>8} {:>8}", "case", "Dice", "NSD");
    for s in &scores {
        println!("{:<24} {:>8.4} {:>8.4}", s.name, s.dice, s.nsd);
    }
    let label = args
        .data
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    println!();
    print!("{}", summary_table(&label, &scores, args.tolerance_mm));

    if let Some(dir) = &args.output {
        write_atomic(&dir.join("scores.csv"), scores_csv(&scores).as_bytes())?;
        write_atomic(&dir.join("scores.png"), &scores_plot(&scores)?)?;
        println!("\nper-case scores: {}", dir.join("scores.csv").display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_rows_follow_the_paper_layout() {
        let scores: Vec<CaseScore> = [(0.5, 0.6), (0.7, 0.8), (f64::NAN, f64::NAN)]
            .iter()
            .enumerate()
            .map(|(i, &(dice, nsd))| CaseScore {
                name: format!("c{i}"),
                dice,
                nsd,
                truth_ml: 1.0,
                predicted_ml: 1.0,
            })
            .collect();
        let table = summary_table("tuning", &scores, 3.0);
        // mean 0.6, sample sd sqrt(((0.1)² + (0.1)²) / 1) = 0.1414.
        assert!(
            table.contains(
                "| tuning | 2 | 0.600 ± 0.141 (0.500, 0.700) | 0.700 ± 0.141 (0.600, 0.800) |"
            ),
            "{table}"
        );
        assert!(table.contains("1 case(s)"), "{table}");
        assert!(scores_csv(&scores)
            .starts_with("case,dice,nsd,truth_ml,predicted_ml\nc0,0.500000,0.600000,"));
    }
}
