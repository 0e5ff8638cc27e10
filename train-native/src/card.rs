//! `pulmoseg card --model IN --set KEY=FILE.json… --output OUT`: adds measurements to a
//! weights file's model card (e.g. the P001 slice scores that `pulmoseg slices --json`
//! prints), keeping the network and every other field as they are.

use std::path::PathBuf;

use anyhow::{bail, Context};
use burn::tensor::Device;
use clap::Args;
use pulmoseg_core::weights::{self, Storage};

use crate::train::checkpoint::write_atomic;

#[derive(Debug, Args)]
pub struct CardArgs {
    /// Weights file to read.
    #[arg(long)]
    model: PathBuf,
    /// `KEY=FILE.json`: the JSON in FILE becomes the model card's field KEY (repeatable).
    #[arg(long = "set", value_name = "KEY=FILE")]
    set: Vec<String>,
    /// Weights file to write (may be --model itself).
    #[arg(long)]
    output: PathBuf,
    /// Store the tensors as half floats (half the size; about 3 significant digits).
    #[arg(long)]
    f16: bool,
}

pub fn run(args: &CardArgs) -> anyhow::Result<()> {
    let bytes = crate::input::read_input(&args.model)?;
    let (model, mut metadata) = weights::load(&bytes, &Device::flex())
        .with_context(|| format!("loading weights {}", args.model.display()))?;
    if !metadata.model_card.is_object() {
        metadata.model_card = serde_json::json!({ "previous": metadata.model_card });
    }
    for entry in &args.set {
        let Some((key, file)) = entry.split_once('=') else {
            bail!("--set {entry:?} must be KEY=FILE.json");
        };
        if key.is_empty() {
            bail!("--set {entry:?} names no key");
        }
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{file} is not JSON"))?;
        metadata.model_card[key] = value;
    }
    let storage = if args.f16 { Storage::F16 } else { Storage::F32 };
    let out = weights::save(&model, &metadata, storage)?;
    write_atomic(&args.output, &out)?;
    eprintln!("wrote {} ({} bytes)", args.output.display(), out.len());
    Ok(())
}
