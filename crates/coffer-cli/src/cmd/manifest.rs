//! `coffer manifest`: check, hash, sign and judge collaboration manifests.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use coffer_client::{Home, Identity, manifests};
use coffer_manifest::Manifest;

#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Validate a manifest; print `ok: <id> <hash>`
    Check {
        /// The manifest (YAML)
        file: PathBuf,
    },
    /// Print a manifest's canonical hash, `sha256:<hex>`
    Hash {
        /// The manifest (YAML)
        file: PathBuf,
    },
    /// Sign a manifest as this party, adding the signature to FILE.sigs
    Sign(SignArgs),
    /// Say whether a manifest is active: who signed, who is missing
    ///
    /// Exit 0 whether or not the manifest is active; 1 if it is invalid.
    Status(StatusArgs),
    /// Submit a manifest and its signatures to a pinned broker; print its judgement
    Submit(super::broker::SubmitArgs),
    /// Retire a manifest at a pinned broker (any party of it): signed, audited, and no key is
    /// released for it afterwards
    Retire(super::broker::RetireArgs),
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The manifest (YAML)
    file: PathBuf,
    /// For an update: the predecessor manifest, so that a party it removes can still approve
    #[arg(long, value_name = "OLD.yaml")]
    predecessor: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The manifest (YAML)
    file: PathBuf,
    /// The signatures file [default: FILE.sigs; none yet means no signatures]
    #[arg(long, value_name = "FILE.sigs")]
    sigs: Option<PathBuf>,
    /// For an update: the predecessor manifest (its signatures are read from OLD.yaml.sigs).
    /// Repeat, newest first, when the predecessor is itself an update.
    #[arg(long, value_name = "OLD.yaml")]
    predecessor: Vec<PathBuf>,
    /// Print JSON: hash, active, signed_by, missing, invalid
    #[arg(long)]
    json: bool,
}

pub fn run(home: &Home, command: ManifestCommand) -> anyhow::Result<()> {
    match command {
        ManifestCommand::Check { file } => {
            let manifest = load(&file)?;
            print_line(&format!("ok: {} {}", manifest.id(), manifest.hash()))
        }
        ManifestCommand::Hash { file } => print_line(&load(&file)?.hash().to_string()),
        ManifestCommand::Sign(args) => sign(home, &args),
        ManifestCommand::Status(args) => status(&args),
        ManifestCommand::Submit(args) => super::broker::submit(home, &args),
        ManifestCommand::Retire(args) => super::broker::retire(home, &args),
    }
}

fn load(path: &Path) -> anyhow::Result<Manifest> {
    Ok(manifests::load(path)?.1)
}

fn sign(home: &Home, args: &SignArgs) -> anyhow::Result<()> {
    let identity = Identity::load(home)?;
    let sigs = manifests::sign(&identity, &args.file, args.predecessor.as_deref())?;
    print_line(&format!(
        "signed {} as {}: {}",
        load(&args.file)?.hash(),
        identity.name(),
        sigs.display()
    ))
}

fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let manifest = load(&args.file)?;
    let status = manifests::status(&args.file, args.sigs.as_deref(), &args.predecessor)?;
    if args.json {
        return super::print_json(&status);
    }
    let list = |names: &[String]| {
        if names.is_empty() {
            "-".to_owned()
        } else {
            names.join(", ")
        }
    };
    let mut text = format!(
        "manifest:  {} {}\nactive:    {}\nsigned by: {}\nmissing:   {}\n",
        manifest.id(),
        status.hash,
        if status.active { "yes" } else { "no" },
        list(&status.signed_by),
        list(&status.missing),
    );
    if status.predecessor_active == Some(false) {
        text.push_str("predecessor: not active\n");
    }
    for bad in &status.invalid {
        text.push_str(&format!("invalid:   {} ({})\n", bad.party, bad.reason));
    }
    print_line(text.trim_end())
}

/// Prints one line; a closed stdout is an I/O error, not a panic.
fn print_line(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}
