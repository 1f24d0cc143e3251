//! `coffer`: the command-line face of Coffer. Argument parsing and wiring only.
#![forbid(unsafe_code)]

use clap::Parser;

/// Confidential analytics across organisations that do not trust each other.
#[derive(Debug, Parser)]
#[command(name = "coffer", version)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
