//! `coffer attest` and `coffer measure`: produce and verify TEE evidence and RA-TLS
//! certificates.
//!
//! Verification never reads anything but its inputs and the time given (`--at`, else the system
//! clock). Its outcome is one JSON object on stdout; the exit code is 0 only when the evidence
//! verified (and the policy, if any, accepted it). Evidence that does not verify — malformed,
//! forged, stale — is a refusal (exit 1) with the failed check named; unreadable input files and
//! unparsable policies or collateral are usage/I-O errors (exit 2).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use clap::{Args, Subcommand, ValueEnum};
use coffer_attest::dcap::{Collateral, PcsFiles};
use coffer_attest::ratls::{IssueError, KeyAlg, RaTlsCert, RaTlsIdentity};
use coffer_attest::{
    Evidence, FailedCheck, MAX_EVIDENCE_LEN, Policy, TcbStatus, TeeKind, UnixTime, Verified,
    Verifier,
};
use coffer_client::{AtomicFile, Home};
use coffer_tee::EvidenceSource;
use coffer_tee::sim::PLATFORM_PUB_FILE;
use serde::Serialize;

use super::print_json;
use crate::exit::Usage;

/// Printed to stderr whenever simulated evidence is produced or verified.
const SIM_WARNING: &str = "WARNING: simulated evidence proves nothing: whoever holds the sim \
                           platform key can sign any measurement. Development and tests only.";

/// Upper bound on an input file read whole (evidence in hex is twice the evidence's size).
const MAX_INPUT_LEN: u64 = 4 * MAX_EVIDENCE_LEN as u64;

/// Upper bound on a policy or collateral file.
const MAX_TEXT_LEN: u64 = 4 << 20;

#[derive(Debug, Subcommand)]
pub enum AttestCommand {
    /// Verify TEE evidence (SGX, TDX, SEV-SNP, Nitro or sim) and print its claims as JSON
    ///
    /// Exit 0 when the evidence verifies (and the policy, if given, accepts it); 1 when it does
    /// not, with the failed checks in the JSON; 2 for unreadable files or a bad policy or
    /// collateral file.
    Verify(VerifyArgs),
    /// Produce evidence from the TEE this command runs in, over the given report data
    Evidence(EvidenceArgs),
    /// Issue an RA-TLS certificate (and its private key) carrying evidence that binds its key
    Cert(CertArgs),
    /// Verify an RA-TLS certificate: its evidence, its key binding, and optionally a policy
    VerifyCert(VerifyCertArgs),
}

/// What every verifying command takes.
#[derive(Debug, Args)]
pub struct TrustArgs {
    /// An appraisal policy (YAML or JSON); without one, only verification is reported
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Verify at this time (RFC 3339, e.g. 2025-07-01T00:00:00Z) [default: the system clock]
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    at: Option<UnixTime>,
    /// DCAP collateral for SGX/TDX: a dcap-qvl collateral JSON file, or a directory (or its
    /// TCB info file) of Intel PCS files
    #[arg(long, value_name = "PATH")]
    collateral: Option<PathBuf>,
    /// The sim platform public key to trust (64 hex digits, or 32 raw bytes)
    /// [default: the home's sim-platform.pub, if any]
    #[arg(long, value_name = "FILE")]
    sim_root: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The kind of evidence: sgx, tdx, snp, nitro or sim
    #[arg(long, value_name = "TEE")]
    tee: TeeKind,
    /// The evidence: raw bytes, hex text or base64 text
    #[arg(long, value_name = "FILE")]
    evidence: PathBuf,
    /// SEV-SNP only: the VCEK/VLEK and optionally ASK/ARK certificates (PEM or DER), as a file
    /// or a directory whose regular files are all read
    #[arg(long, value_name = "PATH")]
    certs: Option<PathBuf>,
    #[command(flatten)]
    trust: TrustArgs,
}

/// Where evidence comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// Coffer's simulation: a platform key in the home directory. Proves nothing
    Sim,
    /// SGX through Gramine's /dev/attestation
    Gramine,
    /// TDX or SEV-SNP through Linux configfs-tsm (the kind is told by /dev/tdx_guest or
    /// /dev/sev-guest)
    Tsm,
    /// AWS Nitro Enclaves through /dev/nsm
    Nitro,
}

#[derive(Debug, Args)]
pub struct EvidenceArgs {
    /// The evidence source
    #[arg(long, value_name = "BACKEND")]
    tee: Backend,
    /// Report data to bind, in hex: at most 64 bytes, zero-padded to 64
    #[arg(long, value_name = "HEX", value_parser = parse_report_data)]
    report_data: [u8; 64],
    /// Where to write the evidence (the vendor's raw bytes: quote, report, document)
    #[arg(short, long)]
    output: PathBuf,
    /// Sim only: claim a debug workload (for testing debug refusal)
    #[arg(long)]
    debug: bool,
}

/// The key type of an RA-TLS certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyAlgArg {
    /// ECDSA P-256 with SHA-256
    P256,
    /// ECDSA P-384 with SHA-384
    P384,
}

#[derive(Debug, Args)]
pub struct CertArgs {
    /// The evidence source
    #[arg(long, value_name = "BACKEND")]
    tee: Backend,
    /// Where to write the certificate (PEM)
    #[arg(short, long)]
    output: PathBuf,
    /// Where to write the private key (PKCS#8 PEM, mode 0600)
    #[arg(long, value_name = "FILE")]
    key_out: PathBuf,
    /// A verifier's challenge to bind into the evidence, in hex (at most 64 bytes)
    #[arg(long, value_name = "HEX", value_parser = parse_nonce)]
    nonce: Option<Nonce>,
    /// Days the certificate is valid for
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=3650))]
    days: u32,
    /// The certificate's key type
    #[arg(long, value_enum, default_value_t = KeyAlgArg::P256)]
    key_alg: KeyAlgArg,
}

#[derive(Debug, Args)]
pub struct VerifyCertArgs {
    /// The certificate (PEM or DER)
    cert: PathBuf,
    /// Require the evidence to bind this nonce (hex)
    #[arg(long, value_name = "HEX", value_parser = parse_nonce)]
    nonce: Option<Nonce>,
    #[command(flatten)]
    trust: TrustArgs,
}

#[derive(Debug, Args)]
pub struct MeasureArgs {
    /// The file to measure (the executable a sim workload runs)
    file: PathBuf,
    /// Print JSON: file, measurement, and the policy rule that accepts it
    #[arg(long)]
    json: bool,
}

pub fn run(home: &Home, command: AttestCommand) -> anyhow::Result<()> {
    match command {
        AttestCommand::Verify(args) => verify(home, &args),
        AttestCommand::Evidence(args) => evidence(home, &args),
        AttestCommand::Cert(args) => cert(home, &args),
        AttestCommand::VerifyCert(args) => verify_cert(home, &args),
    }
}

/// `coffer measure`.
pub fn measure(args: &MeasureArgs) -> anyhow::Result<()> {
    let m = coffer_attest::sim::measure_file(&args.file)
        .with_context(|| format!("measuring {}", args.file.display()))?;
    let m = hex::encode(m);
    if args.json {
        print_json(&serde_json::json!({
            "file": args.file.display().to_string(),
            "rule": format!("sim:measurement={m}"),
            "measurement": m,
        }))
    } else {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{m}")?;
        out.flush()?;
        Ok(())
    }
}

/// What `attest verify` and `attest verify-cert` print.
#[derive(Debug, Serialize)]
struct Report {
    tee: Option<TeeKind>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    simulated: bool,
    verified: bool,
    tcb_status: Option<TcbStatus>,
    advisories: Vec<String>,
    debug: Option<bool>,
    measurements: Option<BTreeMap<String, String>>,
    report_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_bound: Option<bool>,
    accepted: Option<bool>,
    failed_checks: Vec<FailedCheck>,
}

impl Report {
    fn new(tee: Option<TeeKind>, verified: Result<&Verified, &coffer_attest::Error>) -> Self {
        let mut report = Self {
            tee,
            simulated: tee == Some(TeeKind::Sim),
            verified: false,
            tcb_status: None,
            advisories: Vec::new(),
            debug: None,
            measurements: None,
            report_data: None,
            key_bound: None,
            accepted: None,
            failed_checks: Vec::new(),
        };
        match verified {
            Ok(v) => {
                report.verified = true;
                report.tcb_status = v.tcb_status;
                report.advisories.clone_from(&v.advisories);
                report.debug = Some(v.claims.debug());
                report.measurements = Some(
                    v.claims
                        .measurements()
                        .into_iter()
                        .map(|(k, m)| (k, hex::encode(m)))
                        .collect(),
                );
                report.report_data = Some(hex::encode(v.claims.report_data()));
            }
            Err(e) => report.failed_checks.push(FailedCheck::Evidence {
                check: e.check(),
                reason: e.to_string(),
            }),
        }
        report
    }

    /// Prints the report; an error (exit 1) unless everything passed.
    fn finish(self) -> anyhow::Result<()> {
        if self.simulated {
            eprintln!("{SIM_WARNING}");
        }
        print_json(&self)?;
        let ok = self.verified
            && self.failed_checks.is_empty()
            && self.accepted != Some(false)
            && self.key_bound != Some(false);
        if ok {
            return Ok(());
        }
        let reasons: Vec<String> = self.failed_checks.iter().map(ToString::to_string).collect();
        if self.verified {
            Err(anyhow::anyhow!("refused: {}", reasons.join("; ")))
        } else {
            Err(anyhow::anyhow!("{}", reasons.join("; ")))
        }
    }
}

/// Policy, time and trust roots, loaded.
struct Trust {
    verifier: Verifier,
    policy: Option<Policy>,
    now: UnixTime,
}

impl Trust {
    fn load(home: &Home, args: &TrustArgs) -> anyhow::Result<Self> {
        let policy = args.policy.as_deref().map(load_policy).transpose()?;
        let mut verifier = Verifier::new();
        if let Some(path) = &args.collateral {
            verifier = verifier.with_collateral(load_collateral(path)?);
        }
        if let Some(root) = sim_root(home, args.sim_root.as_deref())? {
            verifier = verifier.with_sim_root(root);
        }
        let now = match args.at {
            Some(t) => t,
            None => system_now()?,
        };
        Ok(Self {
            verifier,
            policy,
            now,
        })
    }

    /// The policy's failed checks into `report`, and whether it accepted.
    fn appraise(&self, verified: Option<&Verified>, report: &mut Report) {
        let Some(policy) = &self.policy else { return };
        match verified {
            Some(v) => {
                let failed = policy.check(v, self.now);
                report.failed_checks.extend(failed);
                report.accepted = Some(report.failed_checks.is_empty());
            }
            None => report.accepted = Some(false),
        }
    }
}

fn verify(home: &Home, args: &VerifyArgs) -> anyhow::Result<()> {
    if args.certs.is_some() && args.tee != TeeKind::Snp {
        return Err(Usage(format!(
            "--certs applies to SEV-SNP evidence only, not {}",
            args.tee
        ))
        .into());
    }
    let raw = read_bounded(&args.evidence, MAX_INPUT_LEN)?;
    let certs = match &args.certs {
        Some(path) => read_certs(path)?,
        None => Vec::new(),
    };
    let trust = Trust::load(home, &args.trust)?;
    let result = Evidence::from_parts(args.tee, decode_evidence(&raw), certs)
        .and_then(|ev| trust.verifier.verify(&ev, trust.now));
    let mut report = Report::new(Some(args.tee), result.as_ref());
    trust.appraise(result.as_ref().ok(), &mut report);
    report.finish()
}

fn verify_cert(home: &Home, args: &VerifyCertArgs) -> anyhow::Result<()> {
    let bytes = read_bounded(&args.cert, MAX_INPUT_LEN)?;
    let trust = Trust::load(home, &args.trust)?;
    let cert = match RaTlsCert::from_pem(&bytes) {
        Ok(c) => c,
        Err(e) => {
            let mut report = Report::new(None, Err(&e));
            report.key_bound = Some(false);
            trust.appraise(None, &mut report);
            return report.finish();
        }
    };
    let evidence = cert.evidence();
    let result = trust.verifier.verify(&evidence, trust.now);
    let mut report = Report::new(Some(evidence.tee()), result.as_ref());
    match &result {
        Ok(v) => {
            let binding = cert.binding_checks(
                v.claims.report_data(),
                args.nonce.as_ref().map(|n| n.0.as_slice()),
            );
            report.key_bound = Some(!binding.contains(&FailedCheck::KeyNotBound));
            report.failed_checks.extend(binding);
        }
        Err(_) => report.key_bound = Some(false),
    }
    if let Some(policy) = &trust.policy {
        if let Ok(v) = &result {
            report.failed_checks.extend(policy.check(v, trust.now));
        }
        report.accepted = Some(report.verified && report.failed_checks.is_empty());
    }
    report.finish()
}

fn evidence(home: &Home, args: &EvidenceArgs) -> anyhow::Result<()> {
    let source = open_source(home, args.tee, args.debug)?;
    let evidence = source
        .evidence(&args.report_data)
        .context("producing evidence")?;
    let mut out = AtomicFile::create(&args.output)?;
    out.write_all(evidence.data())
        .with_context(|| format!("writing {}", args.output.display()))?;
    set_mode(out.file(), 0o644).with_context(|| format!("writing {}", args.output.display()))?;
    out.commit()?;
    Ok(())
}

fn cert(home: &Home, args: &CertArgs) -> anyhow::Result<()> {
    if args.output == args.key_out {
        return Err(Usage("--output and --key-out must be different files".into()).into());
    }
    let source = open_source(home, args.tee, false)?;
    let alg = match args.key_alg {
        KeyAlgArg::P256 => KeyAlg::P256,
        KeyAlgArg::P384 => KeyAlg::P384,
    };
    let lifetime = i64::from(args.days).saturating_mul(86_400);
    let identity = RaTlsIdentity::issue(
        alg,
        args.nonce.as_ref().map(|n| n.0.as_slice()),
        system_now()?,
        lifetime,
        |rd| source.evidence(rd),
    )
    .map_err(|e| match e {
        IssueError::Evidence(e) => anyhow::Error::from(e).context("producing evidence"),
        IssueError::Attest(e) => anyhow::Error::from(e).context("issuing the certificate"),
        IssueError::Certificate(reason) => {
            anyhow::anyhow!("issuing the certificate: {reason}")
        }
    })?;

    let mut key = AtomicFile::create(&args.key_out)?;
    set_mode(key.file(), 0o600).with_context(|| format!("writing {}", args.key_out.display()))?;
    key.write_all(identity.key_pem().as_bytes())
        .with_context(|| format!("writing {}", args.key_out.display()))?;
    let mut cert = AtomicFile::create(&args.output)?;
    set_mode(cert.file(), 0o644).with_context(|| format!("writing {}", args.output.display()))?;
    cert.write_all(identity.cert_pem().as_bytes())
        .with_context(|| format!("writing {}", args.output.display()))?;
    key.commit()?;
    cert.commit()?;
    Ok(())
}

/// The evidence source `backend` names.
fn open_source(
    home: &Home,
    backend: Backend,
    debug: bool,
) -> anyhow::Result<Box<dyn EvidenceSource>> {
    if debug && backend != Backend::Sim {
        return Err(Usage("--debug applies to --tee sim only".into()).into());
    }
    if backend == Backend::Sim {
        eprintln!("{SIM_WARNING}");
    }
    Ok(tee_backend(backend).open(home.root(), debug)?)
}

/// Evidence bytes from a file's contents: hex text (optional `0x`), else base64 text, else the
/// bytes themselves. Whitespace around and inside the text is ignored.
pub fn decode_evidence(raw: &[u8]) -> Vec<u8> {
    let text: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if text.is_empty() {
        return raw.to_vec();
    }
    let hex_text = text.strip_prefix(b"0x").unwrap_or(&text);
    if !hex_text.is_empty()
        && hex_text.len().is_multiple_of(2)
        && hex_text.iter().all(u8::is_ascii_hexdigit)
        && let Ok(bytes) = hex::decode(hex_text)
    {
        return bytes;
    }
    let base64 = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    if let Ok(bytes) = base64.decode(&text) {
        return bytes;
    }
    raw.to_vec()
}

/// The certificates in `path`: the file, or every regular file in the directory, by name.
fn read_certs(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if !meta.is_dir() {
        return Ok(vec![read_bounded(path, MAX_INPUT_LEN)?]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))? {
        let entry = entry.with_context(|| format!("reading {}", path.display()))?;
        let p = entry.path();
        if std::fs::metadata(&p).is_ok_and(|m| m.is_file()) {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Usage(format!("{}: no certificate files", path.display())).into());
    }
    files
        .iter()
        .map(|p| read_bounded(p, MAX_INPUT_LEN))
        .collect()
}

/// DCAP collateral from a dcap-qvl JSON file, an Intel PCS TCB info file, or a directory of
/// PCS files (whose TCB info file is the one `.json` with a top-level `tcbInfo`).
fn load_collateral(path: &Path) -> anyhow::Result<Collateral> {
    let bad = |e: coffer_attest::Error| Usage(format!("collateral {}: {e}", path.display()));
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.is_dir() {
        let mut found = Vec::new();
        for entry in
            std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))?
        {
            let entry = entry.with_context(|| format!("reading {}", path.display()))?;
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "json")
                && std::fs::metadata(&p).is_ok_and(|m| m.is_file())
                && is_tcb_info(&read_text(&p)?)
            {
                found.push(entry.file_name());
            }
        }
        found.sort();
        let name = match found.as_slice() {
            [one] => one.to_string_lossy().into_owned(),
            [] => {
                return Err(Usage(format!(
                    "collateral {}: no .json file with a top-level \"tcbInfo\"",
                    path.display()
                ))
                .into());
            }
            several => {
                let names: Vec<_> = several.iter().map(|n| n.to_string_lossy()).collect();
                return Err(Usage(format!(
                    "collateral {}: several TCB info files ({}); pass the one to use as \
                     --collateral",
                    path.display(),
                    names.join(", ")
                ))
                .into());
            }
        };
        return Collateral::from_pcs_files(&PcsFiles::in_dir(path, &name))
            .map_err(|e| bad(e).into());
    }
    let text = read_text(path)?;
    if is_tcb_info(&text) {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Collateral::from_pcs_files(&PcsFiles::in_dir(dir, &name))
            .map_err(|e| bad(e).into());
    }
    Collateral::from_dcap_qvl_json(&text).map_err(|e| bad(e).into())
}

/// Whether `text` is a JSON object with a top-level `tcbInfo` (an Intel PCS TCB info file).
fn is_tcb_info(text: &str) -> bool {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
        .is_ok_and(|m| m.contains_key("tcbInfo"))
}

/// An appraisal policy file (YAML or JSON, as a manifest's `enclave:` section).
pub fn load_policy(path: &Path) -> anyhow::Result<Policy> {
    let text = read_text(path)?;
    Ok(Policy::from_yaml(&text).map_err(|e| Usage(format!("policy {}: {e}", path.display())))?)
}

/// The sim platform key in `path` (64 hex digits or 32 raw bytes).
pub fn read_sim_root(path: &Path) -> anyhow::Result<[u8; 32]> {
    sim_root(&Home::new(""), Some(path))?
        .ok_or_else(|| Usage(format!("{}: no sim root", path.display())).into())
}

/// The service backend for a CLI backend name.
pub fn tee_backend(backend: Backend) -> coffer_tee::Backend {
    match backend {
        Backend::Sim => coffer_tee::Backend::Sim,
        Backend::Gramine => coffer_tee::Backend::Gramine,
        Backend::Tsm => coffer_tee::Backend::Tsm,
        Backend::Nitro => coffer_tee::Backend::Nitro,
    }
}

/// The sim root in `path` (64 hex digits or 32 raw bytes), else the home's, if any.
pub fn sim_root(home: &Home, path: Option<&Path>) -> anyhow::Result<Option<[u8; 32]>> {
    let (path, explicit) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (home.root().join(PLATFORM_PUB_FILE), false),
    };
    if !explicit && !path.exists() {
        return Ok(None);
    }
    let bytes = read_bounded(&path, 4096)?;
    let trimmed = String::from_utf8(bytes.clone())
        .ok()
        .and_then(|t| hex::decode(t.trim()).ok());
    let key = match trimmed {
        Some(k) => k,
        None => bytes,
    };
    let key: [u8; 32] = key.as_slice().try_into().map_err(|_| {
        Usage(format!(
            "sim root {}: expected 64 hex digits or 32 raw bytes",
            path.display()
        ))
    })?;
    Ok(Some(key))
}

/// Reads at most `limit` bytes of `path`; a longer file is a usage error.
fn read_bounded(path: &Path, limit: u64) -> anyhow::Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if u64::try_from(bytes.len()).map_or(true, |n| n > limit) {
        return Err(Usage(format!("{}: larger than {limit} bytes", path.display())).into());
    }
    Ok(bytes)
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    String::from_utf8(read_bounded(path, MAX_TEXT_LEN)?)
        .map_err(|_| Usage(format!("{}: not UTF-8 text", path.display())).into())
}

fn system_now() -> anyhow::Result<UnixTime> {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| anyhow::anyhow!("the system clock is before 1970"))?;
    Ok(UnixTime::try_from(since.as_secs()).unwrap_or(UnixTime::MAX))
}

fn parse_time(s: &str) -> Result<UnixTime, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(time::OffsetDateTime::unix_timestamp)
        .map_err(|e| format!("not an RFC 3339 time (e.g. 2025-07-01T00:00:00Z): {e}"))
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    hex::decode(s.strip_prefix("0x").unwrap_or(s)).map_err(|e| format!("not hex: {e}"))
}

fn parse_report_data(s: &str) -> Result<[u8; 64], String> {
    let bytes = parse_hex(s)?;
    let mut rd = [0u8; 64];
    rd.get_mut(..bytes.len())
        .ok_or_else(|| format!("{} bytes; report data is at most 64", bytes.len()))?
        .copy_from_slice(&bytes);
    Ok(rd)
}

/// A nonce given in hex (a newtype: clap reads `Option<Vec<_>>` as repeated values).
#[derive(Debug, Clone)]
pub struct Nonce(Vec<u8>);

fn parse_nonce(s: &str) -> Result<Nonce, String> {
    let bytes = parse_hex(s)?;
    let max = coffer_attest::ratls::MAX_NONCE_LEN;
    if bytes.is_empty() || bytes.len() > max {
        return Err(format!(
            "{} bytes; a nonce is 1 to {max} bytes",
            bytes.len()
        ));
    }
    Ok(Nonce(bytes))
}

#[cfg(unix)]
fn set_mode(file: &std::fs::File, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_file: &std::fs::File, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const BYTES: &[u8] = &[0x00, 0xff, 0x10, 0x7e, 0x80, 0x01, 0xfb, 0xef];

    #[test]
    fn hex_is_decoded_with_prefix_and_whitespace() {
        assert_eq!(decode_evidence(b"00ff107e8001fbef"), BYTES);
        assert_eq!(decode_evidence(b"  0x00FF107E8001fbef\n"), BYTES);
        assert_eq!(decode_evidence(b"00ff107e\n8001fbef\r\n"), BYTES);
    }

    #[test]
    fn base64_is_decoded_with_whitespace_and_optional_padding() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(BYTES);
        assert_eq!(decode_evidence(b64.as_bytes()), BYTES);
        let wrapped = format!("\n{}\n{}\n", &b64[..4], &b64[4..]);
        assert_eq!(decode_evidence(wrapped.as_bytes()), BYTES);
        assert_eq!(decode_evidence(b64.trim_end_matches('=').as_bytes()), BYTES);
    }

    #[test]
    fn anything_else_is_raw() {
        assert_eq!(decode_evidence(BYTES), BYTES);
        // Neither hex nor base64.
        assert_eq!(decode_evidence(b"abc!"), b"abc!");
        assert_eq!(decode_evidence(b""), b"");
        assert_eq!(decode_evidence(b" \n"), b" \n");
        // Not base64: a character outside the alphabet.
        assert_eq!(decode_evidence(b"ab-d"), b"ab-d");
    }

    #[test]
    fn report_data_is_padded_and_bounded() {
        let rd = parse_report_data("00ff").unwrap();
        assert_eq!(rd[..2], [0x00, 0xff]);
        assert!(rd[2..].iter().all(|b| *b == 0));
        assert!(parse_report_data(&"ab".repeat(64)).is_ok());
        assert!(parse_report_data(&"ab".repeat(65)).is_err());
        assert!(parse_report_data("xyz").is_err());
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(parse_time("1970-01-01T00:01:00Z").unwrap(), 60);
        assert_eq!(
            parse_time("2025-07-01T02:00:00+02:00").unwrap(),
            1_751_328_000
        );
        assert!(parse_time("2025-07-01").is_err());
    }
}
