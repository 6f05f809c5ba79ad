//! `amcl-train`: pretrain, evaluate, export and score AMCL models from the command line.
//!
//! The flow mirrors the data: [`data`] loads images, [`train`] runs the augment -> model ->
//! objective -> optimiser loop of `amcl-core` (with [`checkpoint`]s and [`plots`]), [`eval`]
//! measures representations, [`export`] writes the browser demo's weights, [`score`] scores a
//! pair, [`bench`] measures speed, [`experiment`] compares methods over seeds. [`device`] picks the backend; nothing else knows which it is.

mod bench;
mod checkpoint;
mod config;
mod data;
mod device;
mod eval;
mod experiment;
mod export;
mod optim;
mod plots;
mod score;
mod train;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "amcl-train",
    version,
    about = "Pretrain, evaluate, export and score AMCL models (Adaptive Multi-head Contrastive Learning)",
    long_about = "Pretrain, evaluate, export and score AMCL models (Adaptive Multi-head Contrastive \
                  Learning, ECCV 2024).\n\nWith no command, runs `pretrain` with the quick preset: \
                  a few minutes on a CPU, weights in runs/latest/model.bpk."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Pretrain a model (the default command).
    Pretrain(Box<config::PretrainArgs>),
    /// kNN and linear-probe accuracy of trained weights, for the backbone and each head.
    Eval(eval::EvalArgs),
    /// Write trained weights where the browser demo loads them.
    Export(export::ExportArgs),
    /// Score an image pair: per head cos sim, tau+, s/tau+, beta*Omega, and the AMCL score.
    Score(score::ScoreArgs),
    /// Measure training-step throughput and peak memory.
    Bench(bench::BenchArgs),
    /// Compare base methods with their AMCL versions over augmentation sets and seeds.
    Experiment(experiment::ExperimentArgs),
}

fn main() {
    let cli = Cli::parse();
    // No command: `pretrain` with its defaults.
    let command = cli.command.unwrap_or_else(|| {
        Cli::parse_from(["amcl-train", "pretrain"]).command.expect("`pretrain` parses")
    });
    let result = match command {
        Command::Pretrain(args) => train::run(&args),
        Command::Eval(args) => eval::run(&args).map(|()| 0),
        Command::Export(args) => export::run(&args).map(|()| 0),
        Command::Score(args) => score::run(&args).map(|()| 0),
        Command::Bench(args) => bench::run(&args).map(|()| 0),
        Command::Experiment(args) => experiment::run(&args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::exit(1);
        }
    }
}
