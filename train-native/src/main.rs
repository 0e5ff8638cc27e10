//! `pulmoseg`: the native companion of the Pulmoseg page. It inspects chest CTs and scores
//! segmentations with the metrics of the COVID-19 benchmark.

mod info;
mod input;
mod metrics;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "pulmoseg", version, about = "COVID-19 infiltrate segmentation of chest CTs")]
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
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PULMOSEG_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();

    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info(args) => info::run(&args),
        Command::Metrics(args) => metrics::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
