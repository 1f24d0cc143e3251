//! `coffer manifest`: check, hash, sign and judge collaboration manifests.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use coffer_client::{AtomicFile, Home, Identity};
use coffer_manifest::{Manifest, Predecessor, SignatureFile, Status};

use crate::exit::Usage;

/// Manifests and signatures files are small; anything larger is a mistake.
const MAX_FILE_LEN: u64 = 4 << 20;

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

fn sign(home: &Home, args: &SignArgs) -> anyhow::Result<()> {
    let manifest = load(&args.file)?;
    let predecessor = args.predecessor.as_deref().map(load).transpose()?;
    let identity = Identity::load(home)?;
    let entry = coffer_manifest::sign(
        &manifest,
        predecessor.as_ref(),
        identity.name(),
        identity.signing_key(),
    )?;
    let sigs_path = sigs_path(&args.file);
    let mut sigs = if sigs_path.exists() {
        load_sigs(&sigs_path)?
    } else {
        SignatureFile::new(manifest.hash())
    };
    sigs.add(manifest.hash(), entry)
        .with_context(|| sigs_path.display().to_string())?;
    let mut out = AtomicFile::create(&sigs_path)?;
    out.file().write_all(sigs.to_json()?.as_bytes())?;
    out.commit()?;
    print_line(&format!(
        "signed {} as {}: {}",
        manifest.hash(),
        identity.name(),
        sigs_path.display()
    ))
}

fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let manifest = load(&args.file)?;
    let sigs = match &args.sigs {
        Some(path) => load_sigs(path)?,
        None => load_sigs_or_empty(&args.file, &manifest)?,
    };
    // Judge the chain oldest first: each update's predecessor status feeds the next.
    let mut previous: Option<(Manifest, Status)> = None;
    for path in args.predecessor.iter().rev() {
        let old = load(path)?;
        let old_sigs = load_sigs_or_empty(path, &old)?;
        let old_status = judge(&old, &old_sigs, previous.as_ref())
            .with_context(|| format!("predecessor {}", path.display()))?;
        previous = Some((old, old_status));
    }
    let status = judge(&manifest, &sigs, previous.as_ref())?;
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

fn judge(
    manifest: &Manifest,
    sigs: &SignatureFile,
    previous: Option<&(Manifest, Status)>,
) -> anyhow::Result<Status> {
    let predecessor = previous.map(|(m, s)| Predecessor {
        manifest: m,
        status: s,
    });
    Ok(coffer_manifest::status(manifest, sigs, predecessor)?)
}

fn load(path: &Path) -> anyhow::Result<Manifest> {
    let text = read_text(path)?;
    Manifest::from_yaml(&text).with_context(|| path.display().to_string())
}

fn load_sigs(path: &Path) -> anyhow::Result<SignatureFile> {
    let text = read_text(path)?;
    SignatureFile::from_json(&text).with_context(|| path.display().to_string())
}

/// `FILE.sigs` if it exists; else an empty file for `manifest`.
fn load_sigs_or_empty(file: &Path, manifest: &Manifest) -> anyhow::Result<SignatureFile> {
    let path = sigs_path(file);
    if path.exists() {
        load_sigs(&path)
    } else {
        Ok(SignatureFile::new(manifest.hash()))
    }
}

fn sigs_path(file: &Path) -> PathBuf {
    let mut name = OsString::from(file.as_os_str());
    name.push(".sigs");
    PathBuf::from(name)
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    let what = || format!("reading {}", path.display());
    let len = std::fs::metadata(path).with_context(what)?.len();
    if len > MAX_FILE_LEN {
        return Err(Usage(format!(
            "{}: larger than {MAX_FILE_LEN} bytes",
            path.display()
        ))
        .into());
    }
    let bytes = std::fs::read(path).with_context(what)?;
    String::from_utf8(bytes)
        .map_err(|_| Usage(format!("{}: not UTF-8 text", path.display())).into())
}

/// Prints one line; a closed stdout is an I/O error, not a panic.
fn print_line(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}
