//! `pulmoseg slices --image CT --mask PRED --labels LABELS.json`: slice-level sensitivity and
//! specificity of a predicted infiltrate mask against per-slice labels (the COVID-CT-MD form
//! of `../shared/data/covid-ct-md/P001.labels.json`), over the slices where the product's lung
//! mask of the CT is not empty.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use pulmoseg_core::lung_mask::{lung_mask, LungMaskOptions};
use pulmoseg_core::slice_scores::slice_scores;
use serde::Deserialize;

use crate::input::read_image;
use crate::train::dataset::check_same_grid;

#[derive(Debug, Args)]
pub struct SlicesArgs {
    /// The CT the mask was predicted on (its lung mask selects the scored slices).
    #[arg(long)]
    image: PathBuf,
    /// Predicted infiltrate mask on the CT's grid (non-zero = infiltrate).
    #[arg(long)]
    mask: PathBuf,
    /// Per-slice labels: JSON with `slice_infected`, one 0/1 per slice along the file's third
    /// voxel axis.
    #[arg(long)]
    labels: PathBuf,
    /// Mask voxels a slice needs to count as predicted infected.
    #[arg(long, default_value_t = 10)]
    min_voxels: usize,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Deserialize)]
struct SliceLabels {
    slice_infected: Vec<u8>,
}

pub fn run(args: &SlicesArgs) -> anyhow::Result<()> {
    let image = read_image(&args.image)?;
    let mask = read_image(&args.mask)?;
    let (ct, predicted) = (&image.volume, &mask.volume);
    check_same_grid(ct, &args.image, predicted, &args.mask)?;
    let text = std::fs::read_to_string(&args.labels)
        .with_context(|| format!("reading {}", args.labels.display()))?;
    let labels: SliceLabels = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a slice-label JSON with slice_infected",
            args.labels.display()
        )
    })?;
    if let Some(bad) = labels.slice_infected.iter().find(|&&v| v > 1) {
        bail!(
            "{}: slice_infected holds {bad}; only 0 and 1 are labels",
            args.labels.display()
        );
    }
    let infected: Vec<bool> = labels.slice_infected.iter().map(|&v| v == 1).collect();

    let lung = lung_mask(ct, &LungMaskOptions::default())
        .with_context(|| format!("lung mask of {}", args.image.display()))?;
    let binary: Vec<u8> = predicted.hu.iter().map(|&v| u8::from(v != 0.0)).collect();
    let scores = slice_scores(&binary, &lung.labels, ct.dims, &infected, args.min_voxels)
        .with_context(|| {
            format!(
                "scoring {} against {}",
                args.mask.display(),
                args.labels.display()
            )
        })?;

    let share = if scores.predicted_voxels == 0 {
        "no infiltrate predicted".to_string()
    } else {
        format!(
            "{:.1} % of the predicted volume on labelled slices",
            100.0 * scores.volume_in_labelled_slices
        )
    };
    let summary = format!(
        "sensitivity {:.3}, specificity {:.3} over {} slices with lung (≥ {} voxels = positive); {share}",
        scores.sensitivity, scores.specificity, scores.scored_slices, scores.min_voxels
    );
    if args.json {
        let mut json = serde_json::to_value(&scores)?;
        json["summary"] = summary.into();
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!(
            "TP {} FP {} TN {} FN {}; {summary}",
            scores.true_positive,
            scores.false_positive,
            scores.true_negative,
            scores.false_negative
        );
    }
    Ok(())
}
