//! `coffer`: the command-line face of Coffer. Argument parsing and wiring only; the work is done
//! by the library crates.
#![forbid(unsafe_code)]

mod cmd;
mod exit;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Confidential analytics across organisations that do not trust each other, or the cloud.
///
/// Exit codes: 0 ok, 1 refused or verification failed, 2 usage or I/O error.
#[derive(Debug, Parser)]
#[command(name = "coffer", version, max_term_width = 100)]
struct Cli {
    /// The party's home directory [default: $COFFER_HOME, else ~/.coffer]
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create this party's identity: an Ed25519 signing key and an age identity
    Init(cmd::identity::InitArgs),
    /// Show or export this party's public identity
    #[command(subcommand)]
    Identity(cmd::identity::IdentityCommand),
    /// Manage the keyring: data keys and Parquet master keys
    #[command(subcommand)]
    Key(cmd::keys::KeyCommand),
    /// Encrypt a CSV or Parquet table with Parquet Modular Encryption
    Encrypt(cmd::table::EncryptArgs),
    /// Decrypt an encrypted Parquet file to CSV or plaintext Parquet
    Decrypt(cmd::table::DecryptArgs),
    /// Say what a file is, without needing keys it does not have
    Inspect(cmd::table::InspectArgs),
    /// Seal a file under a keyring key, or encrypt it to age recipients
    Seal(cmd::seal::SealArgs),
    /// Open a sealed file or an age file addressed to this party
    Unseal(cmd::seal::UnsealArgs),
    /// Produce and verify TEE evidence and RA-TLS certificates
    ///
    /// Exit codes: 0 verified (and accepted), 1 refused or not verified, 2 usage or I/O error.
    #[command(subcommand)]
    Attest(cmd::attest::AttestCommand),
    /// Check, hash, sign and judge collaboration manifests
    ///
    /// Exit codes: 0 ok (for status: whether or not active), 1 invalid or refused, 2 usage or
    /// I/O error.
    #[command(subcommand)]
    Manifest(cmd::manifest::ManifestCommand),
    /// Train and apply gradient-boosted trees (XGBoost JSON models) on CSV or encrypted Parquet
    #[command(subcommand)]
    Gbdt(cmd::gbdt::GbdtCommand),
    /// Run or attest a key broker
    #[command(subcommand)]
    Broker(cmd::broker::BrokerCommand),
    /// Fetch and verify a broker's audit log
    #[command(subcommand)]
    Audit(cmd::broker::AuditCommand),
    /// Run an enclave worker
    #[command(subcommand)]
    Worker(cmd::jobs::WorkerCommand),
    /// Run the untrusted orchestrator (job queue and dispatch)
    #[command(subcommand)]
    Orchestrator(cmd::jobs::OrchestratorCommand),
    /// Put a file (ciphertext) into storage
    Upload(cmd::jobs::UploadArgs),
    /// Get a file from storage
    Download(cmd::jobs::DownloadArgs),
    /// Submit signed jobs and follow them
    #[command(subcommand)]
    Job(cmd::jobs::JobCommand),
    /// Verify and decrypt a job's outputs
    #[command(subcommand)]
    Result(cmd::jobs::ResultCommand),
    /// Run the whole flow on this machine, in simulation: two hospitals, a broker, an
    /// orchestrator and a worker on loopback, a join under min_group_size, the audit log
    Demo(cmd::demo::DemoArgs),
    /// Print a file's sim measurement (SHA-384), as `sim:measurement=` policy rules name it
    Measure(cmd::attest::MeasureArgs),
    /// Measure throughput against baselines run side by side
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = coffer_client::Home::resolve(cli.home)
        .map_err(anyhow::Error::from)
        .and_then(|home| run(&home, cli.command));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("coffer: error: {}", exit::render(&err));
            ExitCode::from(exit::code(&err))
        }
    }
}

fn run(home: &coffer_client::Home, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init(args) => cmd::identity::init(home, &args),
        Command::Identity(c) => cmd::identity::run(home, c),
        Command::Key(c) => cmd::keys::run(home, c),
        Command::Encrypt(args) => cmd::table::encrypt(home, &args),
        Command::Decrypt(args) => cmd::table::decrypt(home, &args),
        Command::Inspect(args) => cmd::table::inspect(home, &args),
        Command::Seal(args) => cmd::seal::seal(home, &args),
        Command::Unseal(args) => cmd::seal::unseal(home, &args),
        Command::Attest(c) => cmd::attest::run(home, c),
        Command::Manifest(c) => cmd::manifest::run(home, c),
        Command::Gbdt(c) => cmd::gbdt::run(home, c),
        Command::Broker(c) => cmd::broker::run(home, c),
        Command::Audit(c) => cmd::broker::audit(home, c),
        Command::Worker(c) => cmd::jobs::worker(home, c),
        Command::Orchestrator(c) => cmd::jobs::orchestrator(c),
        Command::Upload(args) => cmd::jobs::upload(&args),
        Command::Download(args) => cmd::jobs::download(&args),
        Command::Job(c) => cmd::jobs::job(home, c),
        Command::Result(c) => cmd::jobs::result(home, c),
        Command::Demo(args) => cmd::demo::run(&args),
        Command::Measure(args) => cmd::attest::measure(&args),
        Command::Bench(c) => cmd::bench::run(c),
    }
}
