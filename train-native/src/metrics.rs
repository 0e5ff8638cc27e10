//! `pulmoseg metrics PRED GT`: Dice and normalized surface Dice of two label files.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use pulmoseg_core::dice::{dice, mask_from_labels};
use pulmoseg_core::surface_dice::surface_dice;

use crate::input::read_image;

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Predicted label file.
    prediction: PathBuf,
    /// Ground-truth label file on the same grid.
    truth: PathBuf,
    /// Surface tolerance of the normalized surface Dice, in mm (3 for infection, 1 for lungs).
    #[arg(long, default_value_t = 3.0)]
    tolerance_mm: f64,
    /// Score only this label value; by default every label > 0 is foreground.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    label: Option<u32>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &MetricsArgs) -> anyhow::Result<()> {
    let prediction = read_image(&args.prediction)?;
    let truth = read_image(&args.truth)?;

    let (p, t) = (&prediction.volume, &truth.volume);
    if p.dims != t.dims {
        bail!(
            "{} has grid {:?} but {} has {:?}: resample one onto the other first",
            args.prediction.display(),
            p.dims,
            args.truth.display(),
            t.dims
        );
    }
    let spacing_differs = p
        .spacing_mm
        .iter()
        .zip(&t.spacing_mm)
        .any(|(a, b)| (a - b).abs() > 1e-4);
    if spacing_differs {
        bail!(
            "{} has spacing {:?} mm but {} has {:?} mm: the masks are not on the same grid",
            args.prediction.display(),
            p.spacing_mm,
            args.truth.display(),
            t.spacing_mm
        );
    }

    let misplaced = p
        .affine
        .0
        .iter()
        .flatten()
        .zip(t.affine.0.iter().flatten())
        .any(|(a, b)| (a - b).abs() > 1e-3);
    if misplaced {
        bail!(
            "{} and {} have the same grid size but different voxel-to-world affines ({:?} vs \
             {:?}): they do not cover the same voxels; resample one onto the other first",
            args.prediction.display(),
            args.truth.display(),
            p.affine.0,
            t.affine.0
        );
    }

    let predicted = mask_from_labels(&p.hu, args.label);
    let expected = mask_from_labels(&t.hu, args.label);
    let dice_value = dice(&expected, &predicted)?;
    let nsd = surface_dice(
        &expected,
        &predicted,
        t.dims,
        t.spacing_mm,
        args.tolerance_mm,
    )?;

    if args.json {
        let report = serde_json::json!({
            "dice": dice_value,
            "surface_dice": nsd,
            "tolerance_mm": args.tolerance_mm,
            "label": args.label,
            "truth_voxels": expected.iter().filter(|&&v| v).count(),
            "prediction_voxels": predicted.iter().filter(|&&v| v).count(),
        });
        println!("{report}");
    } else {
        println!("Dice:                  {dice_value:.6}");
        println!("surface Dice @ {:.2} mm: {nsd:.6}", args.tolerance_mm);
    }
    Ok(())
}
