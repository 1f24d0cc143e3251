//! `coffer broker`, `coffer manifest submit`, `coffer key grant`, `coffer audit`: everything
//! that talks to a key broker. Every call but `broker attest` first checks the broker against
//! the pin `broker attest` saved in the home.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use coffer_client::broker::{
    AttestOptions, AuditHead, BrokerClientError, BrokerPin, BrokerSession, load_pin, save_pin,
};
use coffer_client::{AtomicFile, Home, Identity, Keyring};
use coffer_crypto::{KeyId, KeySource};
use coffer_manifest::{Manifest, SignatureFile};
use coffer_net::Endpoint;
use coffer_net::audit::{AuditError, LogHead, SignedEntry, verify_extends, verify_log};
use ed25519_dalek::VerifyingKey;

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

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
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

/// A refusal with its message (exit 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Maps a broker-client error to the CLI's exit codes: refusals 1, the rest 2.
fn client_error(e: BrokerClientError) -> anyhow::Error {
    if e.is_refusal() {
        anyhow::Error::new(Refused(e.to_string()))
    } else {
        anyhow::Error::new(Usage(e.to_string()))
    }
}

fn attest(home: &Home, args: &AttestArgs) -> anyhow::Result<()> {
    let endpoint = Endpoint::parse(&args.broker).map_err(|e| Usage(e.to_string()))?;
    let policy = args
        .policy
        .as_deref()
        .map(super::attest::load_policy)
        .transpose()?;
    let sim_root = super::attest::sim_root(home, args.sim_root.as_deref())?;
    let options = AttestOptions {
        policy,
        allow_simulation: args.allow_simulation,
        sim_root,
        verifier: None,
    };
    let (_session, mut pin) = runtime()?
        .block_on(BrokerSession::attest(&endpoint.url(), &options))
        .map_err(client_error)?;
    // A re-attested broker keeps the audit head already seen from it.
    if let Some(old) = load_pin(home, &endpoint)?
        && old.audit_key == pin.audit_key
    {
        pin.audit_head = old.audit_head;
    }
    save_pin(home, &endpoint, &pin)?;
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
        coffer_client::broker::pin_path(home, &endpoint).display()
    );
    Ok(())
}

/// Opens an attested session to the pinned broker at `url`.
async fn session(home: &Home, url: &str) -> anyhow::Result<(BrokerSession, BrokerPin, Endpoint)> {
    let endpoint = Endpoint::parse(url).map_err(|e| Usage(e.to_string()))?;
    let pin = load_pin(home, &endpoint)?.ok_or_else(|| {
        client_error(BrokerClientError::NotAttested {
            url: endpoint.url(),
        })
    })?;
    let session = BrokerSession::open(&pin, None)
        .await
        .map_err(client_error)?;
    Ok((session, pin, endpoint))
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

pub fn submit(home: &Home, args: &SubmitArgs) -> anyhow::Result<()> {
    let yaml = read_text(&args.file)?;
    let manifest = Manifest::from_yaml(&yaml).with_context(|| args.file.display().to_string())?;
    let sigs_path = args.sigs.clone().unwrap_or_else(|| {
        let mut p = args.file.clone().into_os_string();
        p.push(".sigs");
        PathBuf::from(p)
    });
    let sigs = if sigs_path.exists() {
        SignatureFile::from_json(&read_text(&sigs_path)?)
            .with_context(|| sigs_path.display().to_string())?
    } else {
        SignatureFile::new(manifest.hash())
    };
    let identity = Identity::load(home)?;
    let status = runtime()?.block_on(async {
        let (mut s, _, _) = session(home, &args.broker).await?;
        s.submit_manifest(&identity, &yaml, &sigs)
            .await
            .map_err(client_error)
    })?;
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
    let manifest = Manifest::from_yaml(&read_text(&args.manifest)?)
        .with_context(|| args.manifest.display().to_string())?;
    let key = Keyring::open(home)?.key(&args.key)?;
    let identity = Identity::load(home)?;
    let mut grants = coffer_client::grants::Grants::load(home)?;
    let hash = manifest.hash().to_string();
    let conflicts = grants.conflicts(args.key.as_str(), &hash, manifest.policy());
    if !conflicts.is_empty() && !args.reuse_across_manifests {
        use coffer_client::grants::Weaker;
        let lines: Vec<String> = conflicts
            .iter()
            .map(|c| {
                let why = match c.weaker {
                    Weaker::Earlier => "its enclave policy admits workers this manifest's does not",
                    Weaker::New => "this manifest's enclave policy admits workers its does not",
                    Weaker::Both => "each enclave policy admits workers the other does not",
                };
                format!("  {}: {why}", c.manifest)
            })
            .collect();
        return Err(Refused(format!(
            "[key_reuse] key {} was granted to another manifest with a different enclave policy:\n{}\n\
             A worker that passes the weaker policy receives the key and can open every file \
             encrypted under it, the stronger manifest's too. Use a new key (coffer key new, then \
             encrypt again), or pass --reuse-across-manifests to accept that.",
            args.key,
            lines.join("\n")
        ))
        .into());
    }
    let stored = runtime()?.block_on(async {
        let (mut s, _, _) = session(home, &args.broker).await?;
        s.grant_key(&identity, &manifest.hash(), &args.dataset, &key)
            .await
            .map_err(client_error)
    })?;
    grants.record(coffer_client::grants::Grant {
        key: args.key.as_str().to_owned(),
        manifest: hash,
        policy: manifest.policy().clone(),
    })?;
    println!(
        "granted: key {} for dataset {} under {}",
        args.key, stored.dataset, stored.manifest
    );
    Ok(())
}

pub fn revoke(home: &Home, args: &RevokeArgs) -> anyhow::Result<()> {
    let manifest = Manifest::from_yaml(&read_text(&args.manifest)?)
        .with_context(|| args.manifest.display().to_string())?;
    let identity = Identity::load(home)?;
    runtime()?.block_on(async {
        let (mut s, _, _) = session(home, &args.broker).await?;
        s.revoke_key(&identity, &manifest.hash(), &args.dataset)
            .await
            .map_err(client_error)
    })?;
    println!(
        "revoked: the key of {} under {}; the broker releases it no more",
        args.dataset,
        manifest.hash()
    );
    Ok(())
}

pub fn retire(home: &Home, args: &RetireArgs) -> anyhow::Result<()> {
    let manifest = Manifest::from_yaml(&read_text(&args.file)?)
        .with_context(|| args.file.display().to_string())?;
    let identity = Identity::load(home)?;
    runtime()?.block_on(async {
        let (mut s, _, _) = session(home, &args.broker).await?;
        s.retire_manifest(&identity, &manifest.hash())
            .await
            .map_err(client_error)
    })?;
    println!(
        "retired: manifest {}; the broker releases no key for it",
        manifest.hash()
    );
    Ok(())
}

pub fn audit(home: &Home, command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Fetch { broker, output } => fetch(home, &broker, &output),
        AuditCommand::Verify {
            file,
            broker,
            key,
            json,
        } => verify(home, &file, broker.as_deref(), key.as_deref(), json),
    }
}

fn parse_log(text: &str) -> Result<Vec<SignedEntry>, AuditError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(SignedEntry::from_json_line)
        .collect()
}

fn audit_key(text: &str) -> anyhow::Result<VerifyingKey> {
    let hex_part = text
        .strip_prefix("ed25519:")
        .ok_or_else(|| Usage(format!("audit key {text:?}: expected ed25519:<hex>")))?;
    let bytes: [u8; 32] = hex::decode(hex_part)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Usage(format!("audit key {text:?}: expected 64 hex digits")))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| Usage(format!("audit key: {e}")).into())
}

/// Verifies `entries` against the pin: its key, and its head if one was seen.
fn check_against_pin(entries: &[SignedEntry], pin: &BrokerPin) -> anyhow::Result<LogHead> {
    let key = audit_key(&pin.audit_key)?;
    let head = match &pin.audit_head {
        Some(h) => verify_extends(
            entries,
            &key,
            &LogHead {
                len: h.len,
                last_hash: h.last_hash.clone(),
            },
        ),
        None => verify_log(entries, &key),
    };
    head.map_err(|e| anyhow::Error::new(Refused(format!("audit log refused: {e}"))))
}

fn fetch(home: &Home, broker: &str, output: &Path) -> anyhow::Result<()> {
    let identity = Identity::load(home)?;
    let (body, pin, endpoint) = runtime()?.block_on(async {
        let (mut s, pin, endpoint) = session(home, broker).await?;
        let body = s.fetch_audit(&identity).await.map_err(client_error)?;
        anyhow::Ok((body, pin, endpoint))
    })?;
    let text =
        std::str::from_utf8(&body).map_err(|_| Refused("audit log refused: not UTF-8".into()))?;
    let entries = parse_log(text).map_err(|e| Refused(format!("audit log refused: {e}")))?;
    let head = check_against_pin(&entries, &pin)?;
    let mut out = AtomicFile::create(output)?;
    out.file()
        .write_all(text.as_bytes())
        .with_context(|| format!("writing {}", output.display()))?;
    out.commit()?;
    let mut pin = pin;
    pin.audit_head = Some(AuditHead {
        len: head.len,
        last_hash: head.last_hash.clone(),
    });
    save_pin(home, &endpoint, &pin)?;
    println!(
        "fetched {} entries, verified; head {}: {}",
        head.len,
        head.last_hash,
        output.display()
    );
    Ok(())
}

fn verify(
    home: &Home,
    file: &Path,
    broker: Option<&str>,
    key: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let text = read_text(file)?;
    let entries = parse_log(&text)
        .map_err(|e| Refused(format!("{}: audit log refused: {e}", file.display())))?;
    let head = match (broker, key) {
        (_, Some(k)) => verify_log(&entries, &audit_key(k)?)
            .map_err(|e| Refused(format!("{}: audit log refused: {e}", file.display())))?,
        (Some(url), None) => {
            let endpoint = Endpoint::parse(url).map_err(|e| Usage(e.to_string()))?;
            let pin = load_pin(home, &endpoint)?.ok_or_else(|| {
                client_error(BrokerClientError::NotAttested {
                    url: endpoint.url(),
                })
            })?;
            check_against_pin(&entries, &pin).with_context(|| file.display().to_string())?
        }
        (None, None) => {
            return Err(Usage(
                "say whose log it is: --broker URL (a pinned broker) or --key ed25519:<hex>".into(),
            )
            .into());
        }
    };
    let releases = pair_receipts(&entries);
    if json {
        return super::print_json(&serde_json::json!({
            "verified": true,
            "entries": head.len,
            "last_hash": head.last_hash,
            "releases": releases,
        }));
    }
    println!("verified: {} entries, head {}", head.len, head.last_hash);
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

/// A key release in the log and the entry with its job's receipt, if one arrived.
#[derive(Debug, serde::Serialize)]
struct ReleasePairing {
    seq: u64,
    manifest: coffer_net::ManifestHash,
    computation: String,
    job: Option<coffer_net::JobId>,
    receipt_seq: Option<u64>,
}

/// Each `key_released` entry, paired with the `job_receipt` entry for the same job.
fn pair_receipts(entries: &[SignedEntry]) -> Vec<ReleasePairing> {
    use coffer_net::audit::AuditEvent;
    let mut receipts: std::collections::BTreeMap<coffer_net::JobId, u64> = Default::default();
    for e in entries {
        if let AuditEvent::JobReceipt { receipt } = &e.entry.event
            && let Some(job) = receipt
                .get("receipt")
                .and_then(|r| r.get("job"))
                .and_then(|j| j.as_str())
                .and_then(|j| j.parse().ok())
        {
            receipts.entry(job).or_insert(e.entry.seq);
        }
    }
    entries
        .iter()
        .filter_map(|e| match &e.entry.event {
            AuditEvent::KeyReleased {
                manifest,
                computation,
                job,
                ..
            } => Some(ReleasePairing {
                seq: e.entry.seq,
                manifest: *manifest,
                computation: computation.clone(),
                job: *job,
                receipt_seq: job.as_ref().and_then(|j| receipts.get(j).copied()),
            }),
            _ => None,
        })
        .collect()
}
