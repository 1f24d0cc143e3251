//! `coffer worker serve`, `coffer orchestrator serve`, `coffer upload|download`,
//! `coffer job submit|status|wait` and `coffer result get`: running computations.
//!
//! Nothing here trusts the orchestrator or the storage: a job is signed by the party before it
//! leaves, and a result is used only after the worker's receipt, its evidence and the
//! manifest's enclave policy check out and the stored output matches the receipt's digest.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use coffer_attest::{UnixTime, Verifier};
use coffer_client::{AtomicFile, Home, Identity};
use coffer_manifest::{Manifest, SignatureFile};
use coffer_net::job::{JobRequest, JobSpec, OutputFormat, SignedReceipt};
use coffer_net::orchestrator::{JobState, JobStatus};
use coffer_net::storage::{Storage, digest};
use coffer_net::{ApiError, Connection, Endpoint, JobId};

use super::broker::Refused;
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

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn unix_now() -> UnixTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
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
    let storage = Storage::open(&args.storage).map_err(|e| Usage(e.to_string()))?;
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let d = digest(&bytes);
    runtime()?
        .block_on(storage.put(&args.name, bytes.into()))
        .map_err(|e| Usage(e.to_string()))?;
    println!("uploaded {} as {} ({d})", args.file.display(), args.name);
    Ok(())
}

pub fn download(args: &DownloadArgs) -> anyhow::Result<()> {
    let storage = Storage::open(&args.storage).map_err(|e| Usage(e.to_string()))?;
    let bytes = runtime()?
        .block_on(storage.get(&args.name))
        .map_err(|e| Usage(e.to_string()))?;
    write_atomic(&args.output, &bytes)?;
    println!(
        "downloaded {} to {} ({})",
        args.name,
        args.output.display(),
        digest(&bytes)
    );
    Ok(())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = AtomicFile::create(path)?;
    out.file()
        .write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    out.commit()?;
    Ok(())
}

/// Sends one request to the orchestrator. The orchestrator is untrusted: its certificate is
/// not appraised, and nothing it says is used without an end-to-end check.
async fn orchestrator_call(
    url: &str,
    method: http::Method,
    path: &str,
    body: Vec<u8>,
) -> anyhow::Result<coffer_net::Response> {
    let endpoint = Endpoint::parse(url).map_err(|e| Usage(e.to_string()))?;
    let config = coffer_net::client_config(None).map_err(|e| Usage(e.to_string()))?;
    let mut conn = Connection::connect(&endpoint, config)
        .await
        .map_err(|e| Usage(format!("orchestrator {url}: {e}")))?;
    conn.send(method, path, &[], body)
        .await
        .map_err(|e| Usage(format!("orchestrator {url}: {e}")).into())
}

fn api_error(resp: &coffer_net::Response) -> anyhow::Error {
    match serde_json::from_slice::<ApiError>(&resp.body) {
        Ok(e) if e.is_refusal() => anyhow::Error::new(Refused(e.to_string())),
        Ok(e) => anyhow::Error::new(Usage(e.to_string())),
        Err(_) => anyhow::Error::new(Usage(format!("HTTP {}", resp.status))),
    }
}

async fn job_status(url: &str, id: &JobId) -> anyhow::Result<JobStatus> {
    let resp = orchestrator_call(
        url,
        http::Method::GET,
        &format!("{}/{id}", coffer_net::job::JOBS),
        Vec::new(),
    )
    .await?;
    if !resp.status.is_success() {
        return Err(api_error(&resp));
    }
    serde_json::from_slice(&resp.body)
        .map_err(|e| Usage(format!("orchestrator's answer: {e}")).into())
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn sigs_path(manifest: &Path, sigs: Option<&Path>) -> PathBuf {
    sigs.map_or_else(
        || {
            let mut p = manifest.to_path_buf().into_os_string();
            p.push(".sigs");
            PathBuf::from(p)
        },
        Path::to_path_buf,
    )
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
            let status = runtime()?.block_on(job_status(&args.orchestrator, &args.id))?;
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
    let yaml = read_text(&args.manifest)?;
    let manifest =
        Manifest::from_yaml(&yaml).with_context(|| args.manifest.display().to_string())?;
    let sigs_file = sigs_path(&args.manifest, args.sigs.as_deref());
    let sigs = SignatureFile::from_json(&read_text(&sigs_file)?)
        .with_context(|| sigs_file.display().to_string())?;
    if manifest.computation(&args.computation).is_none() {
        return Err(Refused(format!(
            "[unknown_computation] computation {:?} is not in {}",
            args.computation,
            args.manifest.display()
        ))
        .into());
    }
    let identity = Identity::load(home)?;
    let params = args
        .params
        .iter()
        .map(|p| parse_param(p))
        .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
    let nonce = coffer_net::JobNonce::random().map_err(|e| anyhow::anyhow!("random nonce: {e}"))?;
    let spec = JobSpec {
        manifest: manifest.hash(),
        computation: args.computation.clone(),
        params,
        format: OutputFormat::parse(&args.format).unwrap_or_default(),
        party: identity.name().to_owned(),
        time: unix_now(),
        nonce,
    };
    let sigs_json: serde_json::Value = serde_json::from_str(&sigs.to_json()?)?;
    let mut chain = Vec::new();
    for file in &args.predecessors {
        let text = read_text(file)?;
        Manifest::from_yaml(&text).with_context(|| file.display().to_string())?;
        let sigs = read_text(&sigs_path(file, None))?;
        chain.push(coffer_net::job::ChainLink {
            manifest: text,
            signatures: serde_json::from_str(&sigs)
                .with_context(|| sigs_path(file, None).display().to_string())?,
        });
    }
    let request = spec
        .sign(identity.signing_key(), yaml, sigs_json)?
        .with_predecessors(chain);
    let status = post_job(&args.orchestrator, &request)?;
    if args.json {
        return super::print_json(&status);
    }
    println!("{}", status.id);
    Ok(())
}

/// Submits a signed job request to the orchestrator.
pub fn post_job(orchestrator: &str, request: &JobRequest) -> anyhow::Result<JobStatus> {
    let body = serde_json::to_vec(request)?;
    let resp = runtime()?.block_on(orchestrator_call(
        orchestrator,
        http::Method::POST,
        coffer_net::job::JOBS,
        body,
    ))?;
    if !resp.status.is_success() {
        return Err(api_error(&resp));
    }
    Ok(serde_json::from_slice(&resp.body)
        .map_err(|e| Usage(format!("orchestrator's answer: {e}")))?)
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

/// The refusal of a failed job: its check and fixed message from the orchestrator, and, when
/// `storage` holds the worker's detail encrypted to this party (it signed the job), the
/// detail. The detail may quote this collaboration's data: it is shown, never stored.
fn failed(home: &Home, storage: Option<&str>, status: &JobStatus) -> anyhow::Error {
    let mut text = format!(
        "job {} failed: [{}] {}",
        status.id,
        status.check.as_deref().unwrap_or("unknown"),
        status.reason.as_deref().unwrap_or("no reason given")
    );
    if let Some(detail) = storage.and_then(|s| failure_detail(home, s, &status.id)) {
        text.push_str("\nworker's detail (encrypted to you):\n");
        text.push_str(&detail);
    }
    Refused(text).into()
}

/// The worker's detail of job `id`'s failure, if storage holds one this party can decrypt.
fn failure_detail(home: &Home, storage: &str, id: &JobId) -> Option<String> {
    let identity = Identity::load(home).ok()?;
    let storage = Storage::open(storage).ok()?;
    let sealed = runtime()
        .ok()?
        .block_on(storage.get(&coffer_net::job::error_detail_path(id)))
        .ok()?;
    let mut plain = Vec::new();
    coffer_crypto::delivery::decrypt_with(identity.age_identity(), sealed.as_ref(), &mut plain)
        .ok()?;
    let detail: coffer_net::job::FailureDetail = serde_json::from_slice(&plain).ok()?;
    // A detail moved here from another job is not this job's.
    if detail.job != *id {
        return None;
    }
    let mut text = format!("  [{}] {}", detail.check, detail.message);
    for r in &detail.reasons {
        text.push_str(&format!("\n    - {r}"));
    }
    Some(text)
}

fn wait(home: &Home, args: &WaitArgs) -> anyhow::Result<()> {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    let started = Instant::now();
    let rt = runtime()?;
    let status = loop {
        let status = rt.block_on(job_status(&args.orchestrator, &args.id))?;
        bar.set_message(format!(
            "job {}…: {} (attempt {}{}) {:.0?}",
            args.id.to_string().get(..12).unwrap_or_default(),
            status.state.name(),
            status.attempts,
            status
                .worker
                .as_deref()
                .map(|w| format!(", worker {w}"))
                .unwrap_or_default(),
            started.elapsed()
        ));
        if status.state.is_final() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(args.timeout) {
            bar.finish_and_clear();
            return Err(Usage(format!(
                "job {} still {} after {}s",
                args.id,
                status.state.name(),
                args.timeout
            ))
            .into());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    bar.finish_and_clear();
    match status.state {
        JobState::Done => {
            println!("job {} done in {:.1?}", status.id, started.elapsed());
            Ok(())
        }
        _ => Err(failed(home, args.storage.as_deref(), &status)),
    }
}

pub fn result(home: &Home, command: ResultCommand) -> anyhow::Result<()> {
    let ResultCommand::Get(args) = command;
    get(home, &args)
}

/// How far in the future a receipt's time may be (clock skew between worker and party).
const RECEIPT_CLOCK_SKEW_SECS: i64 = 300;

/// Every check a recipient makes before trusting a job's output.
pub fn verify_receipt(
    receipt: &SignedReceipt,
    manifest: &Manifest,
    job: &JobId,
    verifier: &Verifier,
    now: UnixTime,
) -> anyhow::Result<()> {
    let refuse = |check: &str, msg: String| anyhow::Error::new(Refused(format!("[{check}] {msg}")));
    let cert = receipt
        .verify_signature()
        .map_err(|e| refuse(e.check(), e.to_string()))?;
    // The worker's certificate and evidence are judged as of the receipt's signing time: a
    // result stays verifiable after the certificate's short life, and a receipt dated outside
    // that life is refused ([certificate_expired]).
    let at = receipt.receipt.time;
    if at > now.saturating_add(RECEIPT_CLOCK_SKEW_SECS) {
        return Err(refuse(
            "receipt_time",
            format!("the receipt is dated {at}, after now ({now})"),
        ));
    }
    let verified = cert.verify_bound(verifier, None, at).map_err(|failed| {
        refuse(
            "worker_attestation",
            format!(
                "the worker's evidence does not verify: {}",
                failed
                    .iter()
                    .map(|c| format!("[{}] {c}", c.check()))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        )
    })?;
    let failed = manifest.policy().check(&verified, at);
    if !failed.is_empty() {
        return Err(refuse(
            "worker_attestation",
            format!(
                "the worker does not meet the manifest's enclave policy: {}",
                failed
                    .iter()
                    .map(|c| format!("[{}] {c}", c.check()))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ));
    }
    let r = &receipt.receipt;
    if r.job != *job {
        return Err(refuse(
            "receipt_job",
            format!("the receipt is for job {}", r.job),
        ));
    }
    if r.manifest != manifest.hash() {
        return Err(refuse(
            "receipt_manifest",
            format!(
                "the receipt names manifest {}, not {}",
                r.manifest,
                manifest.hash()
            ),
        ));
    }
    let comp = manifest.computation(&r.computation).ok_or_else(|| {
        refuse(
            "receipt_computation",
            format!("{:?} is not in the manifest", r.computation),
        )
    })?;
    let pinned: BTreeMap<String, String> = manifest
        .input_datasets(comp)
        .into_iter()
        .map(|d| (d.name.clone(), d.digest.clone()))
        .collect();
    if r.inputs != pinned {
        return Err(refuse(
            "receipt_inputs",
            "the receipt's input digests are not the manifest's pins".into(),
        ));
    }
    if r.simulated != (verified.claims.tee() == coffer_attest::TeeKind::Sim) {
        return Err(refuse(
            "receipt_simulated",
            "the receipt's simulation flag contradicts its evidence".into(),
        ));
    }
    Ok(())
}

fn sim_roots(home: &Home, explicit: Option<&Path>) -> anyhow::Result<Vec<[u8; 32]>> {
    if let Some(p) = explicit {
        return Ok(vec![super::attest::read_sim_root(p)?]);
    }
    let mut roots = Vec::new();
    let dir = home.root().join("brokers");
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let Ok(text) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            if let Ok(pin) = serde_json::from_str::<coffer_client::broker::BrokerPin>(&text)
                && let Some(root) = pin.sim_root
                && let Ok(bytes) = hex::decode(root)
                && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
            {
                roots.push(key);
            }
        }
    }
    Ok(roots)
}

fn get(home: &Home, args: &GetArgs) -> anyhow::Result<()> {
    let manifest = Manifest::from_yaml(&read_text(&args.manifest)?)
        .with_context(|| args.manifest.display().to_string())?;
    let identity = Identity::load(home)?;
    let storage = Storage::open(&args.storage).map_err(|e| Usage(e.to_string()))?;
    let rt = runtime()?;
    let status = rt.block_on(job_status(&args.orchestrator, &args.id))?;
    let receipt = match (status.state, &status.receipt) {
        (JobState::Done, Some(r)) => r.clone(),
        (JobState::Failed, _) => return Err(failed(home, Some(&args.storage), &status)),
        (state, _) => {
            return Err(Usage(format!("job {} is {}, not done", args.id, state.name())).into());
        }
    };
    let mut verifier = Verifier::new();
    for r in sim_roots(home, args.sim_root.as_deref())? {
        verifier = verifier.with_sim_root(r);
    }
    verify_receipt(&receipt, &manifest, &args.id, &verifier, unix_now())?;
    let mine: Vec<_> = receipt
        .receipt
        .outputs
        .iter()
        .filter(|o| o.recipients.iter().any(|r| r == identity.name()))
        .collect();
    if mine.is_empty() {
        return Err(Refused(format!(
            "[not_a_recipient] no output of job {} is addressed to {}",
            args.id,
            identity.name()
        ))
        .into());
    }
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let mut written = Vec::new();
    for out in mine {
        let sealed = rt
            .block_on(storage.get(&out.path))
            .map_err(|e| Usage(e.to_string()))?;
        if digest(&sealed) != out.digest {
            return Err(Refused(format!(
                "[output_digest] {} in storage does not match the receipt ({})",
                out.path, out.digest
            ))
            .into());
        }
        let mut plain = Vec::new();
        coffer_crypto::delivery::decrypt_with(
            identity.age_identity(),
            sealed.as_ref(),
            &mut plain,
        )?;
        let file_name = Path::new(&out.path)
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".age"))
            .ok_or_else(|| Refused(format!("[receipt_output] odd output path {:?}", out.path)))?;
        let dest = args.output.join(file_name);
        write_atomic(&dest, &plain)?;
        written.push((dest, out.rows));
    }
    if args.json {
        return super::print_json(&receipt.receipt);
    }
    for (dest, rows) in &written {
        println!("verified and decrypted: {} ({rows} rows)", dest.display());
    }
    println!(
        "receipt: job {} under manifest {}, worker {}{}",
        receipt.receipt.job,
        receipt.receipt.manifest,
        receipt.receipt.backend,
        if receipt.receipt.simulated {
            " (SIMULATION: the data was not protected)"
        } else {
            ""
        }
    );
    Ok(())
}
