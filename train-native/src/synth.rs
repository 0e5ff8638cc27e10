//! `pulmoseg synth`: label-free training data. Synthetic COVID-19 infiltrates are inserted
//! into chest CTs without pneumonia, each case written as an image and its exact mask.
//!
//! Layout of the output folder:
//!
//! - `images/<name>_synNNN.nii.gz`: int16 HU on the source's grid and geometry;
//! - `masks/<name>_synNNN.nii.gz`: uint8 infiltrate mask (0/1), same grid;
//! - `manifest.csv`: a `#` line describing the data (the model card's `training_data`), then
//!   `image,mask` paths relative to the folder, one case per line;
//! - `synth.json`: the settings, the seed, and per case its lesions (count, volume, kinds,
//!   sides).
//!
//! The same inputs and seed give byte-identical files.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use pulmoseg_core::lung_mask::{lung_mask, LungMaskOptions};
use pulmoseg_core::nifti::{write_hu_nii_gz, write_labels_nii_gz};
use pulmoseg_core::synthesis::{case_seed, LesionInfo, SynthesisOptions, Synthesizer};
use serde::Serialize;

use crate::input::read_image;

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Chest CTs without pneumonia (NIfTI-1, `.nii` or `.nii.gz`), one or more.
    #[arg(long, required = true, num_args = 1..)]
    input: Vec<PathBuf>,
    /// Folder to write `images/`, `masks/`, `manifest.csv` and `synth.json` into.
    #[arg(long)]
    output: PathBuf,
    /// Synthetic cases made from each input scan (1 … 10 000).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    cases_per_scan: u32,
    /// Seed of the whole batch: the same seed gives the same files.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Share (0 … 1) of cases left without any lesion (the image unchanged, the mask empty).
    #[arg(long, default_value_t = 0.15)]
    lesion_free_share: f64,
    /// Write into an output folder that is not empty (its `images/` and `masks/` are
    /// replaced).
    #[arg(long)]
    force: bool,
}

/// What `synth.json` records.
#[derive(Debug, Serialize)]
struct Record {
    seed: u64,
    cases_per_scan: u32,
    mask_definition: &'static str,
    options: SynthesisOptions,
    inputs: Vec<InputRecord>,
    cases: Vec<CaseRecord>,
}

#[derive(Debug, Serialize)]
struct InputRecord {
    name: String,
    dims: [usize; 3],
    spacing_mm: [f64; 3],
    lung_ml: f64,
    parenchyma_hu: f32,
    parenchyma_noise_hu: f32,
}

#[derive(Debug, Serialize)]
struct CaseRecord {
    image: String,
    mask: String,
    source: String,
    seed: u64,
    lesion_count: usize,
    volume_ml: f64,
    kinds: Vec<&'static str>,
    sides: Vec<&'static str>,
    lesions: Vec<LesionInfo>,
}

/// The file name without `.nii.gz` / `.nii`.
fn scan_name(path: &Path) -> anyhow::Result<String> {
    let file = path
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("input {} has no usable file name", path.display()))?;
    let name = file
        .strip_suffix(".nii.gz")
        .or_else(|| file.strip_suffix(".nii"))
        .unwrap_or(file);
    Ok(name.to_string())
}

/// Refuses a non-empty output folder without `force`; with it, clears the subfolders this
/// command writes.
fn prepare_output(dir: &Path, force: bool) -> anyhow::Result<()> {
    if dir.exists() {
        let mut entries =
            std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        if entries.next().is_some() {
            if !force {
                bail!(
                    "output folder {} is not empty; pass --force to write into it",
                    dir.display()
                );
            }
            for sub in ["images", "masks"] {
                let path = dir.join(sub);
                if path.exists() {
                    std::fs::remove_dir_all(&path)
                        .with_context(|| format!("clearing {}", path.display()))?;
                }
            }
        }
    }
    for sub in ["images", "masks"] {
        let path = dir.join(sub);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
    }
    Ok(())
}

fn unique<T: Ord + Clone>(items: &[T]) -> Vec<T> {
    let mut seen: Vec<T> = Vec::new();
    for item in items {
        if !seen.contains(item) {
            seen.push(item.clone());
        }
    }
    seen.sort();
    seen
}

pub fn run(args: &SynthArgs) -> anyhow::Result<()> {
    let options = SynthesisOptions {
        lesion_free_share: args.lesion_free_share,
        ..Default::default()
    };
    options.validate().context("--lesion-free-share")?;
    if args.cases_per_scan == 0 {
        bail!("--cases-per-scan must be at least 1");
    }

    let names = args
        .input
        .iter()
        .map(|p| scan_name(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for (n, name) in names.iter().enumerate() {
        if names[..n].contains(name) {
            bail!("two inputs are named {name}: their outputs would overwrite each other");
        }
    }
    for path in &args.input {
        std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    }
    prepare_output(&args.output, args.force)?;

    let digits = args
        .cases_per_scan
        .saturating_sub(1)
        .to_string()
        .len()
        .max(3);
    let total = args.input.len() * args.cases_per_scan as usize;
    let mut inputs = Vec::new();
    let mut cases = Vec::new();
    // The `#` line is the data description `pulmoseg train` puts into the model card.
    let mut manifest = format!(
        "# synthetic infiltrates (pulmoseg synth, seed {}, {} cases per scan) inserted into CTs \
         without pneumonia: {}\nimage,mask\n",
        args.seed,
        args.cases_per_scan,
        names.join(", ")
    );
    for (scan, (path, name)) in args.input.iter().zip(&names).enumerate() {
        let image = read_image(path)?;
        let lung = lung_mask(&image.volume, &LungMaskOptions::default())
            .with_context(|| format!("lung mask of {}", path.display()))?;
        for warning in &lung.warnings {
            tracing::warn!("{}: {warning}", path.display());
        }
        let synthesizer = Synthesizer::new(&image.volume, &lung)
            .with_context(|| format!("preparing {}", path.display()))?;
        inputs.push(InputRecord {
            name: name.clone(),
            dims: image.volume.dims,
            spacing_mm: image.volume.spacing_mm,
            lung_ml: lung.total_ml(),
            parenchyma_hu: synthesizer.parenchyma_hu(),
            parenchyma_noise_hu: synthesizer.parenchyma_noise_hu(),
        });

        for case in 0..args.cases_per_scan {
            let started = Instant::now();
            let seed = case_seed(args.seed, scan as u64, u64::from(case));
            let synthetic = synthesizer
                .case(&options, seed)
                .with_context(|| format!("synthesising case {case} of {}", path.display()))?;
            let synthesis_s = started.elapsed().as_secs_f64();
            let stem = format!("{name}_syn{case:0digits$}");
            let image_rel = format!("images/{stem}.nii.gz");
            let mask_rel = format!("masks/{stem}.nii.gz");
            let image_bytes = write_hu_nii_gz(&synthetic.hu, &image.header)
                .with_context(|| format!("encoding {image_rel}"))?;
            let mask_bytes = write_labels_nii_gz(&synthetic.mask, &image.header)
                .with_context(|| format!("encoding {mask_rel}"))?;
            for (rel, bytes) in [(&image_rel, image_bytes), (&mask_rel, mask_bytes)] {
                let out = args.output.join(rel);
                std::fs::write(&out, bytes)
                    .with_context(|| format!("writing {}", out.display()))?;
            }
            manifest.push_str(&format!("{image_rel},{mask_rel}\n"));

            let kinds = unique(
                &synthetic
                    .lesions
                    .iter()
                    .map(|l| l.kind.name())
                    .collect::<Vec<_>>(),
            );
            let sides = unique(
                &synthetic
                    .lesions
                    .iter()
                    .map(|l| l.side.name())
                    .collect::<Vec<_>>(),
            );
            eprintln!(
                "[{}/{total}] {stem}: {} lesions, {:.1} mL{}; synthesised in {synthesis_s:.2} s, \
                 written in {:.2} s",
                cases.len() + 1,
                synthetic.lesions.len(),
                synthetic.lesion_ml,
                if kinds.is_empty() {
                    String::new()
                } else {
                    format!(" ({}; {})", kinds.join(", "), sides.join(", "))
                },
                started.elapsed().as_secs_f64() - synthesis_s,
            );
            cases.push(CaseRecord {
                image: image_rel,
                mask: mask_rel,
                source: name.clone(),
                seed,
                lesion_count: synthetic.lesions.len(),
                volume_ml: synthetic.lesion_ml,
                kinds,
                sides,
                lesions: synthetic.lesions,
            });
        }
    }

    let record = Record {
        seed: args.seed,
        cases_per_scan: args.cases_per_scan,
        mask_definition: "lung voxels where a lesion's blending weight alpha is at least 0.5",
        options,
        inputs,
        cases,
    };
    let manifest_path = args.output.join("manifest.csv");
    std::fs::write(&manifest_path, manifest)
        .with_context(|| format!("writing {}", manifest_path.display()))?;
    let json_path = args.output.join("synth.json");
    let json = serde_json::to_string_pretty(&record).context("encoding synth.json")?;
    std::fs::write(&json_path, json + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    Ok(())
}
