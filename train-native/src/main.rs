//! `pulmoseg`: the native companion of the Pulmoseg page. It inspects chest CTs and scores
//! segmentations with the metrics of the COVID-19 benchmark.

mod card;
mod evaluate;
mod info;
mod input;
mod metrics;
mod predict;
mod slices;
mod synth;
mod train;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "pulmoseg",
    version,
    about = "COVID-19 infiltrate segmentation of chest CTs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the grid, spacing, orientation, data type, HU range and affine of a NIfTI file.
    Info(info::InfoArgs),
    /// Dice and normalized surface Dice of a predicted label file against a ground truth.
    Metrics(metrics::MetricsArgs),
    /// Synthetic training cases: infiltrates inserted into CTs without pneumonia, with masks.
    Synth(synth::SynthArgs),
    /// Train the segmentation network with the paper's recipe (resumable; see docs/training.md).
    Train(train::TrainArgs),
    /// Infiltrate masks and lung quantities for chest CTs with a trained weights file.
    Predict(predict::PredictArgs),
    /// Slice-level sensitivity and specificity of a predicted mask against per-slice labels.
    Slices(slices::SlicesArgs),
    /// Add measurements to a weights file's model card (or store it in half precision).
    Card(card::CardArgs),
    /// Score a trained weights file on (image, mask) pairs: per-case Dice and NSD, summary rows.
    Evaluate(evaluate::EvaluateArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PULMOSEG_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info(args) => info::run(&args),
        Command::Metrics(args) => metrics::run(&args),
        Command::Synth(args) => synth::run(&args),
        Command::Train(args) => train::run(&args),
        Command::Evaluate(args) => evaluate::run(&args),
        Command::Predict(args) => predict::run(&args),
        Command::Slices(args) => slices::run(&args),
        Command::Card(args) => card::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
