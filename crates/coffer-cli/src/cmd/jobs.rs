//! `coffer worker serve`, `coffer orchestrator serve`, `coffer upload|download`,
//! `coffer job submit|status|wait` and `coffer result get`: running computations.
//!
//! Nothing here trusts the orchestrator or the storage: a job is signed by the party before it
//! leaves, and a result is used only after the worker's receipt, its evidence and the
//! manifest's enclave policy check out and the stored output matches the receipt's digest.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use coffer_client::jobs::{self, JobOptions, ManifestFiles, Orchestrator};
use coffer_client::{Home, Identity};
use coffer_manifest::Manifest;
use coffer_net::JobId;
use coffer_net::job::OutputFormat;
use coffer_net::orchestrator::{JobState, JobStatus};
use coffer_net::storage::Storage;

use crate::exit::Usage;

#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// Run an enclave worker (development; in a TEE run the slim `coffer-worker serve`, whose
    /// measurement is what a manifest pins)
    Serve(WorkerServeArgs),
}

#[derive(Debug, Args)]
pub struct WorkerServeArgs {
    /// Address to listen on (port 0 picks one; printed as `listening on https://ADDR`)
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// Evidence backend
    #[arg(long, value_enum)]
    tee: super::attest::Backend,
    /// The key broker, https://HOST:PORT
    #[arg(long, value_name = "URL")]
    broker: String,
    /// Storage: file:///DIR or a directory
    #[arg(long, value_name = "URL")]
    storage: String,
    /// Directory of the simulated platform key (--tee sim) [default: the home]
    #[arg(long, value_name = "DIR")]
    sim_platform: Option<PathBuf>,
    /// Another sim platform key (hex) whose broker evidence to verify
    #[arg(long, value_name = "HEX")]
    sim_root: Vec<String>,
    /// Seconds a job's signing time may differ from the worker's clock
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    request_window: i64,
    /// Largest input object a job may read (refused as input_too_large while streaming)
    #[arg(long, default_value_t = 8 << 30, value_name = "BYTES")]
    max_input_bytes: u64,
    /// Wall-clock limit of one job (refused as job_timeout)
    #[arg(long, default_value_t = 3600, value_name = "SECS")]
    job_timeout: u64,
    /// Jobs run at once; more are refused as worker_busy and requeued by the orchestrator
    #[arg(long, default_value_t = 2, value_name = "N")]
    max_concurrent_jobs: usize,
    /// Verified input ciphertext kept in memory between jobs (0: none)
    #[arg(long, default_value_t = 2 << 30, value_name = "BYTES")]
    input_cache_bytes: usize,
    /// Time allowed to read a job request's body (refused as body_timeout)
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    body_timeout: u64,
    /// The policy the key broker's evidence must meet (YAML, as a manifest's `enclave:`).
    /// A manifest's policy appraises workers only; without this the worker trusts no broker
    #[arg(long, value_name = "FILE")]
    broker_policy: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum OrchestratorCommand {
    /// Run the (untrusted) orchestrator: job queue and dispatch to workers
    Serve(OrchestratorServeArgs),
}

#[derive(Debug, Args)]
pub struct OrchestratorServeArgs {
    /// Address to listen on (port 0 picks one; printed as `listening on https://ADDR`)
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// Storage: file:///DIR or a directory (where workers read inputs and write outputs)
    #[arg(long, value_name = "URL")]
    storage: String,
    /// The job queue (SQLite)
    #[arg(long, value_name = "FILE")]
    db: PathBuf,
    /// A worker to dispatch to, https://HOST:PORT (repeatable; more can register later)
    #[arg(long, value_name = "URL")]
    worker: Vec<String>,
    /// Dispatch attempts before a job fails (only transport failures are retried)
    #[arg(long, default_value_t = 3)]
    max_attempts: u32,
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The file (ciphertext: encrypted Parquet, sealed or age files)
    file: PathBuf,
    /// Storage: file:///DIR or a directory
    #[arg(long, value_name = "URL")]
    storage: String,
    /// The object's name in storage, e.g. alpha/patients.parquet
    #[arg(long = "as", value_name = "NAME")]
    name: String,
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// The object's name in storage
    name: String,
    /// Storage: file:///DIR or a directory
    #[arg(long, value_name = "URL")]
    storage: String,
    /// Where to write it
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Sign a job for a computation of a manifest and submit it; prints the job id
    Submit(SubmitArgs),
    /// Print a job's state
    Status(StatusArgs),
    /// Wait for a job to finish, showing its progress
    ///
    /// Exit 0 done, 1 failed (the failed check is printed), 2 usage, I/O or timeout.
    Wait(WaitArgs),
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The orchestrator, https://HOST:PORT
    #[arg(long, value_name = "URL")]
    orchestrator: String,
    /// The manifest (YAML); its signatures are read from FILE.sigs
    #[arg(long, value_name = "FILE")]
    manifest: PathBuf,
    /// The signatures file [default: FILE.sigs]
    #[arg(long, value_name = "FILE.sigs")]
    sigs: Option<PathBuf>,
    /// The computation's name in the manifest
    #[arg(long)]
    computation: String,
    /// A template parameter, NAME=VALUE (VALUE as JSON, else a string); repeatable
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Output format
    #[arg(long, default_value = "csv", value_parser = ["csv", "parquet"])]
    format: String,
    /// When the manifest is an update: its predecessor (signatures in FILE.sigs); repeat for
    /// the predecessor's own, nearest first. The worker judges the update by this chain
    #[arg(long = "predecessor", value_name = "FILE")]
    predecessors: Vec<PathBuf>,
    /// Print the job as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The job id (64 lowercase hex digits)
    id: JobId,
    /// The orchestrator, https://HOST:PORT
    #[arg(long, value_name = "URL")]
    orchestrator: String,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// The job id (64 lowercase hex digits)
    id: JobId,
    /// The orchestrator, https://HOST:PORT
    #[arg(long, value_name = "URL")]
    orchestrator: String,
    /// Give up after this many seconds (exit 2)
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    timeout: u64,
    /// Storage (file:///DIR or a directory): if the job fails, read the worker's detail of the
    /// failure there, encrypted to this party if it signed the job
    #[arg(long, value_name = "URL")]
    storage: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ResultCommand {
    /// Download a job's outputs, verify the receipt and the worker's evidence against the
    /// manifest's policy, then decrypt them into DIR
    ///
    /// Exit 0 verified and decrypted, 1 refused (named check), 2 usage or I/O.
    Get(GetArgs),
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// The job id (64 lowercase hex digits)
    id: JobId,
    /// The orchestrator, https://HOST:PORT
    #[arg(long, value_name = "URL")]
    orchestrator: String,
    /// The manifest the job ran under (the one this party signed)
    #[arg(long, value_name = "FILE")]
    manifest: PathBuf,
    /// Storage: file:///DIR or a directory
    #[arg(long, value_name = "URL")]
    storage: String,
    /// Where to write the decrypted outputs
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
    /// A sim platform public key (file: 64 hex digits) to trust for simulated workers
    /// [default: the sim roots of the brokers pinned in this home]
    #[arg(long, value_name = "FILE")]
    sim_root: Option<PathBuf>,
    /// Print the verified receipt as JSON
    #[arg(long)]
    json: bool,
}

/// Runs the slim `coffer-worker` beside `coffer` with these arguments (the sim platform
/// defaults to the home).
pub fn worker(home: &Home, command: WorkerCommand) -> anyhow::Result<()> {
    let WorkerCommand::Serve(args) = command;
    let mut argv: Vec<std::ffi::OsString> = vec![
        "serve".into(),
        "--listen".into(),
        args.listen.to_string().into(),
        "--tee".into(),
        super::attest::tee_backend(args.tee).name().into(),
        "--broker".into(),
        args.broker.into(),
        "--storage".into(),
        args.storage.into(),
        "--sim-platform".into(),
        args.sim_platform
            .unwrap_or_else(|| home.root().to_path_buf())
            .into(),
        "--request-window".into(),
        args.request_window.to_string().into(),
        "--max-input-bytes".into(),
        args.max_input_bytes.to_string().into(),
        "--job-timeout".into(),
        args.job_timeout.to_string().into(),
        "--max-concurrent-jobs".into(),
        args.max_concurrent_jobs.to_string().into(),
        "--input-cache-bytes".into(),
        args.input_cache_bytes.to_string().into(),
        "--body-timeout".into(),
        args.body_timeout.to_string().into(),
    ];
    for r in args.sim_root {
        argv.extend(["--sim-root".into(), r.into()]);
    }
    if let Some(p) = args.broker_policy {
        argv.extend(["--broker-policy".into(), p.into()]);
    }
    super::exec_service("coffer-worker", argv)
}

pub fn orchestrator(command: OrchestratorCommand) -> anyhow::Result<()> {
    let OrchestratorCommand::Serve(args) = command;
    // Fail early on a storage URL workers could not use either.
    Storage::open(&args.storage).map_err(|e| Usage(e.to_string()))?;
    let mut config = coffer_orchestrator::Config::new(args.listen, args.db, args.storage);
    config.workers = args.worker;
    config.max_attempts = args.max_attempts;
    coffer_orchestrator::run(config).map_err(|e| anyhow::Error::new(Usage(e.to_string())))
}

pub fn upload(args: &UploadArgs) -> anyhow::Result<()> {
    let storage = jobs::storage(&args.storage)?;
    let d = super::block_on(jobs::upload(&storage, &args.file, &args.name))?;
    println!("uploaded {} as {} ({d})", args.file.display(), args.name);
    Ok(())
}

pub fn download(args: &DownloadArgs) -> anyhow::Result<()> {
    let storage = jobs::storage(&args.storage)?;
    let d = super::block_on(jobs::download(&storage, &args.name, &args.output))?;
    println!(
        "downloaded {} to {} ({d})",
        args.name,
        args.output.display()
    );
    Ok(())
}

fn parse_param(text: &str) -> anyhow::Result<(String, serde_json::Value)> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| Usage(format!("--param {text:?}: expected NAME=VALUE")))?;
    let value =
        serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
    Ok((name.to_owned(), value))
}

pub fn job(home: &Home, command: JobCommand) -> anyhow::Result<()> {
    match command {
        JobCommand::Submit(args) => submit(home, &args),
        JobCommand::Status(args) => {
            let orchestrator = Orchestrator::new(&args.orchestrator)?;
            let status = super::runtime()?.block_on(orchestrator.status(&args.id))?;
            if args.json {
                return super::print_json(&status);
            }
            print_status(&status);
            Ok(())
        }
        JobCommand::Wait(args) => wait(home, &args),
    }
}

fn submit(home: &Home, args: &SubmitArgs) -> anyhow::Result<()> {
    let files = ManifestFiles::load(&args.manifest, args.sigs.as_deref())?;
    let identity = Identity::load(home)?;
    let params = args
        .params
        .iter()
        .map(|p| parse_param(p))
        .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
    let predecessors = args
        .predecessors
        .iter()
        .map(|f| ManifestFiles::load(f, None).and_then(|m| m.link()))
        .collect::<Result<Vec<_>, _>>()?;
    let options = JobOptions {
        params,
        format: OutputFormat::parse(&args.format).unwrap_or_default(),
        predecessors,
    };
    let request = jobs::sign_job(&identity, &files, &args.computation, options)?;
    let orchestrator = Orchestrator::new(&args.orchestrator)?;
    let status = super::runtime()?.block_on(orchestrator.submit(&request))?;
    if args.json {
        return super::print_json(&status);
    }
    println!("{}", status.id);
    Ok(())
}

fn print_status(s: &JobStatus) {
    println!(
        "job:         {}\nstate:       {}\ncomputation: {}\nmanifest:    {}\nsubmitted by: {}\nattempts:    {}",
        s.id,
        s.state.name(),
        s.computation,
        s.manifest,
        s.party,
        s.attempts
    );
    if let Some(w) = &s.worker {
        println!("worker:      {w}");
    }
    if let (Some(c), Some(r)) = (&s.check, &s.reason) {
        println!("failed:      [{c}] {r}");
    }
    if let Some(r) = &s.receipt {
        for o in &r.receipt.outputs {
            println!("output:      {} ({} rows, {})", o.path, o.rows, o.digest);
        }
        if r.receipt.simulated {
            println!("WARNING:     the worker ran in SIMULATION mode; nothing was protected");
        }
    }
}

fn open_storage(url: &str) -> anyhow::Result<Storage> {
    Ok(jobs::storage(url)?)
}

fn wait(home: &Home, args: &WaitArgs) -> anyhow::Result<()> {
    let orchestrator = Orchestrator::new(&args.orchestrator)?;
    let storage = args.storage.as_deref().map(open_storage).transpose()?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    let rt = super::runtime()?;
    let waited = rt.block_on(orchestrator.wait(
        &args.id,
        Duration::from_secs(args.timeout),
        |status, elapsed| {
            bar.set_message(format!(
                "job {}…: {} (attempt {}{}) {elapsed:.0?}",
                args.id.to_string().get(..12).unwrap_or_default(),
                status.state.name(),
                status.attempts,
                status
                    .worker
                    .as_deref()
                    .map(|w| format!(", worker {w}"))
                    .unwrap_or_default(),
            ));
        },
    ));
    bar.finish_and_clear();
    let status = waited?;
    if status.state == JobState::Done {
        println!("job {} done in {:.1?}", status.id, bar.elapsed());
        return Ok(());
    }
    let identity = Identity::load(home)?;
    Err(rt
        .block_on(jobs::failure(&identity, storage.as_ref(), &status))
        .into())
}

pub fn result(home: &Home, command: ResultCommand) -> anyhow::Result<()> {
    let ResultCommand::Get(args) = command;
    get(home, &args)
}

fn get(home: &Home, args: &GetArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.manifest)
        .with_context(|| format!("reading {}", args.manifest.display()))?;
    let manifest =
        Manifest::from_yaml(&text).with_context(|| args.manifest.display().to_string())?;
    let identity = Identity::load(home)?;
    let storage = open_storage(&args.storage)?;
    let orchestrator = Orchestrator::new(&args.orchestrator)?;
    let results = super::block_on(jobs::collect(
        home,
        &identity,
        &orchestrator,
        &storage,
        &manifest,
        &args.id,
        args.sim_root.as_deref(),
    ))?;
    let written = results.write_to(&args.output)?;
    let receipt = &results.receipt;
    if args.json {
        return super::print_json(receipt);
    }
    for (dest, out) in written.iter().zip(&results.outputs) {
        println!(
            "verified and decrypted: {} ({} rows)",
            dest.display(),
            out.rows
        );
    }
    println!(
        "receipt: job {} under manifest {}, worker {}{}",
        receipt.job,
        receipt.manifest,
        receipt.backend,
        if receipt.simulated {
            " (SIMULATION: the data was not protected)"
        } else {
            ""
        }
    );
    Ok(())
}
