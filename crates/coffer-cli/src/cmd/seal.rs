//! `coffer seal` and `coffer unseal`: sealed files under keyring keys, and age delivery.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use coffer_client::Home;
use coffer_client::blobs::{self, SealTo};
use coffer_crypto::KeyId;

#[derive(Debug, Args)]
pub struct SealArgs {
    /// The file to seal
    input: PathBuf,
    /// Where to write the sealed file
    #[arg(short, long)]
    output: PathBuf,
    /// Seal under this keyring key (Coffer's seekable sealed format)
    #[arg(long, conflicts_with = "to", required_unless_present = "to")]
    key: Option<KeyId>,
    /// Encrypt to this age recipient (`age1…`) instead; repeat for several
    #[arg(long, value_name = "RECIPIENT")]
    to: Vec<String>,
    /// The logical name bound into the file [default: the output's file name]
    #[arg(long, conflicts_with = "to")]
    name: Option<String>,
}

#[derive(Debug, Args)]
pub struct UnsealArgs {
    /// A sealed file, or an age file addressed to this party
    input: PathBuf,
    /// Where to write the plaintext
    #[arg(short, long)]
    output: PathBuf,
    /// The logical name the file was sealed under [default: the input's file name]
    #[arg(long)]
    name: Option<String>,
}

pub fn seal(home: &Home, args: &SealArgs) -> anyhow::Result<()> {
    let to = match &args.key {
        Some(key) => SealTo::Key {
            key: key.clone(),
            name: args.name.clone(),
        },
        None => SealTo::Recipients(args.to.clone()),
    };
    blobs::seal(home, &args.input, &args.output, &to)
        .with_context(|| format!("sealing {}", args.input.display()))
}

pub fn unseal(home: &Home, args: &UnsealArgs) -> anyhow::Result<()> {
    blobs::unseal(home, &args.input, &args.output, args.name.as_deref())
        .with_context(|| format!("opening {}", args.input.display()))
}
