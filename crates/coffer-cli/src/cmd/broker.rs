//! `coffer broker`, `coffer manifest submit`, `coffer key grant`, `coffer audit`: everything
//! that talks to a key broker. Every call but `broker attest` first checks the broker against
//! the pin `broker attest` saved in the home.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use coffer_client::audit::{AuditLog, Trust};
use coffer_client::broker::{AttestOptions, Broker};
use coffer_client::{AtomicFile, Home, Identity};
use coffer_crypto::KeyId;

use crate::exit::Usage;

#[derive(Debug, Subcommand)]
pub enum BrokerCommand {
    /// Run a key broker (development; in a TEE run the slim `coffer-broker serve`, whose
    /// measurement is what parties pin)
    Serve(ServeArgs),
    /// Attest a broker and pin its TEE, measurement and keys in this home
    ///
    /// Exit 0 pinned, 1 refused by appraisal, 2 usage, I/O or network error.
    Attest(AttestArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:7443 (port 0 picks one; the chosen address is
    /// printed as `listening on https://ADDR`)
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// State directory: store, sealed keys, audit log
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Evidence backend
    #[arg(long, value_enum)]
    tee: super::attest::Backend,
    /// Directory of the simulated platform key (--tee sim) [default: the home]
    #[arg(long, value_name = "DIR")]
    sim_platform: Option<PathBuf>,
    /// Another sim platform key (hex) whose worker evidence to verify
    #[arg(long, value_name = "HEX")]
    sim_root: Vec<String>,
    /// Seconds a signed request's time may differ from the broker's clock
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    request_window: i64,
}

#[derive(Debug, Args)]
pub struct AttestArgs {
    /// The broker, https://HOST:PORT
    #[arg(long, value_name = "URL")]
    broker: String,
    /// Appraise with this policy (YAML or JSON, as a manifest's `enclave:`) and pin it
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Accept simulated evidence. It proves nothing: use for development only
    #[arg(long)]
    allow_simulation: bool,
    /// The sim platform public key to trust (a file of 64 hex digits, e.g. the broker host's
    /// sim-platform.pub) [default: this home's sim-platform.pub, if any]. Simulated evidence is
    /// never trusted from the key it names itself
    #[arg(long, value_name = "FILE")]
    sim_root: Option<PathBuf>,
    /// Print the pin as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The manifest (YAML); its signatures are read from FILE.sigs
    pub file: PathBuf,
    /// The broker, https://HOST:PORT
    #[arg(long, value_name = "URL")]
    pub broker: String,
    /// The signatures file [default: FILE.sigs]
    #[arg(long, value_name = "FILE.sigs")]
    pub sigs: Option<PathBuf>,
    /// Print the broker's judgement as JSON: hash, active, signed_by, missing, invalid
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GrantArgs {
    /// The dataset, as the manifest names it (this party must own it)
    #[arg(long)]
    pub dataset: String,
    /// The keyring id of the dataset's key
    #[arg(long, value_name = "ID")]
    pub key: KeyId,
    /// The manifest the key is bound to
    #[arg(long, value_name = "FILE")]
    pub manifest: PathBuf,
    /// The broker, https://HOST:PORT
    #[arg(long, value_name = "URL")]
    pub broker: String,
    /// Grant a key this home already granted to a manifest with a different enclave policy.
    /// A worker that passes the weaker policy can then open files of the stronger one
    #[arg(long)]
    pub reuse_across_manifests: bool,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The dataset, as the manifest names it (this party must own it)
    #[arg(long)]
    pub dataset: String,
    /// The manifest the grant is under
    #[arg(long, value_name = "FILE")]
    pub manifest: PathBuf,
    /// The broker, https://HOST:PORT
    #[arg(long, value_name = "URL")]
    pub broker: String,
}

#[derive(Debug, Args)]
pub struct RetireArgs {
    /// The manifest (YAML)
    pub file: PathBuf,
    /// The broker, https://HOST:PORT
    #[arg(long, value_name = "URL")]
    pub broker: String,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Fetch the broker's audit log, verify it against the pinned key and the last head seen,
    /// and write it
    Fetch {
        /// The broker, https://HOST:PORT
        #[arg(long, value_name = "URL")]
        broker: String,
        /// Where to write the log (JSON lines)
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Verify an audit log: every signature, the sequence and the hash chain; with a pinned
    /// broker, also that it extends the last head seen
    ///
    /// Exit 0 verified, 1 a removed, reordered or edited entry (named), 2 usage or I/O.
    Verify {
        /// The log (JSON lines)
        file: PathBuf,
        /// The broker whose pinned audit key (and head) to verify with
        #[arg(long, value_name = "URL", conflicts_with = "key")]
        broker: Option<String>,
        /// The broker's audit key, `ed25519:<hex>`
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
        /// Print JSON: entries, last_hash, verified
        #[arg(long)]
        json: bool,
    },
}

pub fn run(home: &Home, command: BrokerCommand) -> anyhow::Result<()> {
    match command {
        BrokerCommand::Serve(args) => serve(home, args),
        BrokerCommand::Attest(args) => attest(home, &args),
    }
}

/// Runs the slim `coffer-broker` beside `coffer` with these arguments (the sim platform
/// defaults to the home).
fn serve(home: &Home, args: ServeArgs) -> anyhow::Result<()> {
    let mut argv: Vec<std::ffi::OsString> = vec![
        "serve".into(),
        "--listen".into(),
        args.listen.to_string().into(),
        "--data".into(),
        args.data.into(),
        "--tee".into(),
        super::attest::tee_backend(args.tee).name().into(),
        "--sim-platform".into(),
        args.sim_platform
            .unwrap_or_else(|| home.root().to_path_buf())
            .into(),
        "--request-window".into(),
        args.request_window.to_string().into(),
    ];
    for r in args.sim_root {
        argv.extend(["--sim-root".into(), r.into()]);
    }
    super::exec_service("coffer-broker", argv)
}

fn attest(home: &Home, args: &AttestArgs) -> anyhow::Result<()> {
    let broker = Broker::new(home, &args.broker)?;
    let options = AttestOptions {
        policy: args.policy.as_deref().map(load_policy).transpose()?,
        allow_simulation: args.allow_simulation,
        sim_root: coffer_client::attest::sim_root(home, args.sim_root.as_deref())?,
        verifier: None,
    };
    let pin = super::block_on(broker.attest(&options))?;
    if pin.policy.is_none() {
        eprintln!(
            "WARNING: no --policy given: pinned the TEE and measurement this broker showed on \
             first contact (trust on first use). Check them against what you expect, or attest \
             again with --policy FILE."
        );
    }
    if pin.simulated {
        eprintln!(
            "WARNING: {} runs in SIMULATION mode: its evidence proves nothing, and the host can \
             read every key it holds.",
            pin.url
        );
    }
    if args.json {
        return super::print_json(&pin);
    }
    let measurements = pin
        .measurements
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n             ");
    println!(
        "attested:    {}\ntee:         {}{}\nmeasurement: {measurements}\ntls key:     sha256:{}\naudit key:   {}\npinned in:   {}",
        pin.url,
        pin.tee,
        if pin.simulated { " (SIMULATED)" } else { "" },
        pin.tls_spki_sha256,
        pin.audit_key,
        broker.pin_path().display()
    );
    Ok(())
}

fn load_policy(path: &Path) -> anyhow::Result<coffer_attest::Policy> {
    Ok(coffer_client::attest::load_policy(path)?)
}

fn manifest_hash(path: &Path) -> anyhow::Result<coffer_manifest::ManifestHash> {
    Ok(coffer_client::manifests::load(path)?.1.hash())
}

pub fn submit(home: &Home, args: &SubmitArgs) -> anyhow::Result<()> {
    let identity = Identity::load(home)?;
    let broker = Broker::new(home, &args.broker)?;
    let status = super::block_on(broker.submit(&identity, &args.file, args.sigs.as_deref()))?;
    if args.json {
        return super::print_json(&status);
    }
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.join(", ")
        }
    };
    println!(
        "submitted: {}\nactive:    {}\nsigned by: {}\nmissing:   {}",
        status.hash,
        if status.active { "yes" } else { "no" },
        list(&status.signed_by),
        list(&status.missing)
    );
    for bad in &status.invalid {
        println!("invalid:   {bad}");
    }
    Ok(())
}

pub fn grant(home: &Home, args: &GrantArgs) -> anyhow::Result<()> {
    let (_, manifest) = coffer_client::manifests::load(&args.manifest)?;
    let identity = Identity::load(home)?;
    let broker = Broker::new(home, &args.broker)?;
    let stored = super::block_on(broker.grant(
        &identity,
        &manifest,
        &args.dataset,
        &args.key,
        args.reuse_across_manifests,
    ))?;
    println!(
        "granted: key {} for dataset {} under {}",
        args.key, stored.dataset, stored.manifest
    );
    Ok(())
}

pub fn revoke(home: &Home, args: &RevokeArgs) -> anyhow::Result<()> {
    let hash = manifest_hash(&args.manifest)?;
    let identity = Identity::load(home)?;
    let broker = Broker::new(home, &args.broker)?;
    super::block_on(broker.revoke(&identity, &hash, &args.dataset))?;
    println!(
        "revoked: the key of {} under {hash}; the broker releases it no more",
        args.dataset
    );
    Ok(())
}

pub fn retire(home: &Home, args: &RetireArgs) -> anyhow::Result<()> {
    let hash = manifest_hash(&args.file)?;
    let identity = Identity::load(home)?;
    let broker = Broker::new(home, &args.broker)?;
    super::block_on(broker.retire(&identity, &hash))?;
    println!("retired: manifest {hash}; the broker releases no key for it");
    Ok(())
}

pub fn audit(home: &Home, command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Fetch { broker, output } => {
            let identity = Identity::load(home)?;
            let log = super::block_on(Broker::new(home, &broker)?.audit(&identity))?;
            let mut out = AtomicFile::create(&output)?;
            out.file()
                .write_all(log.text.as_bytes())
                .with_context(|| format!("writing {}", output.display()))?;
            out.commit()?;
            println!(
                "fetched {} entries, verified; head {}: {}",
                log.head.len,
                log.head.last_hash,
                output.display()
            );
            Ok(())
        }
        AuditCommand::Verify {
            file,
            broker,
            key,
            json,
        } => verify(home, &file, broker.as_deref(), key.as_deref(), json),
    }
}

fn verify(
    home: &Home,
    file: &Path,
    broker: Option<&str>,
    key: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let pin;
    let trust = match (broker, key) {
        (_, Some(k)) => Trust::Key(k),
        (Some(url), None) => {
            let broker = Broker::new(home, url)?;
            pin = broker
                .pin()?
                .ok_or_else(|| coffer_client::Error::NotAttested { url: broker.url() })?;
            Trust::Pin(&pin)
        }
        (None, None) => {
            return Err(Usage(
                "say whose log it is: --broker URL (a pinned broker) or --key ed25519:<hex>".into(),
            )
            .into());
        }
    };
    let log = AuditLog::verify(text, trust).with_context(|| file.display().to_string())?;
    let releases = log.releases();
    if json {
        return super::print_json(&serde_json::json!({
            "verified": true,
            "entries": log.head.len,
            "last_hash": log.head.last_hash,
            "releases": releases,
        }));
    }
    println!(
        "verified: {} entries, head {}",
        log.head.len, log.head.last_hash
    );
    for r in &releases {
        let job = r
            .job
            .map_or_else(|| "(no job named)".to_owned(), |j| j.to_string());
        match r.receipt_seq {
            Some(seq) => println!(
                "release #{} {} job {job}: receipt #{seq}",
                r.seq, r.computation
            ),
            None => println!(
                "release #{} {} job {job}: NO RECEIPT (the worker did not report what it produced)",
                r.seq, r.computation
            ),
        }
    }
    Ok(())
}
