//! `coffer attest` and `coffer measure`: produce and verify TEE evidence and RA-TLS
//! certificates.
//!
//! Verification never reads anything but its inputs and the time given (`--at`, else the system
//! clock). Its outcome is one JSON object on stdout; the exit code is 0 only when the evidence
//! verified (and the policy, if any, accepted it). Evidence that does not verify — malformed,
//! forged, stale — is a refusal (exit 1) with the failed check named; unreadable input files and
//! unparsable policies or collateral are usage/I-O errors (exit 2).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use coffer_attest::ratls::{IssueError, KeyAlg, RaTlsIdentity};
use coffer_attest::{TeeKind, UnixTime};
use coffer_client::attest::{
    Appraisal, Appraiser, MAX_INPUT_LEN, TrustFiles, read_bounded, read_certs,
};
use coffer_client::{AtomicFile, Home};
use coffer_tee::EvidenceSource;

use super::print_json;
use crate::exit::Usage;

/// Printed to stderr whenever simulated evidence is produced or verified.
const SIM_WARNING: &str = "WARNING: simulated evidence proves nothing: whoever holds the sim \
                           platform key can sign any measurement. Development and tests only.";

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

/// Prints the appraisal; an error (exit 1) unless everything passed.
fn finish(report: &Appraisal) -> anyhow::Result<()> {
    if report.simulated {
        eprintln!("{SIM_WARNING}");
    }
    print_json(report)?;
    match report.refusal() {
        None => Ok(()),
        Some(e) => Err(e.into()),
    }
}

fn appraiser(home: &Home, args: &TrustArgs) -> anyhow::Result<Appraiser> {
    let files = TrustFiles {
        policy: args.policy.clone(),
        at: args.at,
        collateral: args.collateral.clone(),
        sim_root: args.sim_root.clone(),
    };
    Ok(Appraiser::load(home, &files)?)
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
    finish(&appraiser(home, &args.trust)?.evidence(args.tee, &raw, certs))
}

fn verify_cert(home: &Home, args: &VerifyCertArgs) -> anyhow::Result<()> {
    let bytes = read_bounded(&args.cert, MAX_INPUT_LEN)?;
    let nonce = args.nonce.as_ref().map(|n| n.0.as_slice());
    finish(&appraiser(home, &args.trust)?.certificate(&bytes, nonce))
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

/// The service backend for a CLI backend name.
pub fn tee_backend(backend: Backend) -> coffer_tee::Backend {
    match backend {
        Backend::Sim => coffer_tee::Backend::Sim,
        Backend::Gramine => coffer_tee::Backend::Gramine,
        Backend::Tsm => coffer_tee::Backend::Tsm,
        Backend::Nitro => coffer_tee::Backend::Nitro,
    }
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
