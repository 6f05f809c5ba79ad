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
mod distributed;
mod eval;
mod experiment;
mod export;
mod files;
mod learner;
mod metrics;
mod optim;
mod plots;
mod score;
mod spread;
mod train;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: burn's CPU backend allocates every activation and
/// gradient afresh each step, and glibc hands blocks over 32 MB back to the kernel on free
/// (mmap), so each step paid tens of thousands of page faults to get them again. With mimalloc,
/// and [`keep_freed_memory`], a step reuses the previous step's pages (docs/RESULTS.md, "Speed").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc 3's `mi_option_purge_delay` (its position in `mi_option_e`, mimalloc.h).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never return freed memory to the OS: every training step allocates the same buffers again,
/// so the process's footprint stays that of one step (peak memory barely changes) and the
/// page faults and zeroing of fresh pages disappear (~5-10 % of a small-CNN step).
fn keep_freed_memory() {
    // SAFETY: sets a process-wide allocator option, before any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

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
    keep_freed_memory();
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
