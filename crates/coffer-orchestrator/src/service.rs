//! The orchestrator as an HTTPS service: `coffer orchestrator serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use bytes::Bytes;
use coffer_net::job::{JOBS, JobRequest};
use coffer_net::orchestrator::{JobStatus, RegisterWorker, WORKERS, WorkerEntry};
use coffer_net::{ApiError, Endpoint, JobId};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::dispatch::Dispatcher;
use crate::store::{self, Inserted, Store, StoreError};
use crate::unix_now;

/// Largest request body accepted.
pub const MAX_BODY: usize = 8 << 20;
/// Dispatch attempts before a job fails, by default.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// How long one dispatch may take, by default.
pub const DEFAULT_WORKER_TIMEOUT: Duration = Duration::from_secs(600);

/// How to run an orchestrator.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The SQLite file (created if missing; WAL).
    pub db: PathBuf,
    /// The storage URL; reported in logs only (workers read and write storage themselves).
    pub storage: String,
    /// Workers registered at start (`https://host:port`).
    pub workers: Vec<String>,
    /// Dispatch attempts before a job whose workers cannot be reached fails.
    pub max_attempts: u32,
    /// How long one dispatch (connect, run, answer) may take.
    pub worker_timeout: Duration,
}

impl Config {
    /// A configuration with no initial worker, [`DEFAULT_MAX_ATTEMPTS`] and
    /// [`DEFAULT_WORKER_TIMEOUT`].
    pub fn new(listen: SocketAddr, db: PathBuf, storage: String) -> Self {
        Self {
            listen,
            db,
            storage,
            workers: Vec::new(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            worker_timeout: DEFAULT_WORKER_TIMEOUT,
        }
    }
}

/// Why the orchestrator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("worker {url:?}: {reason}")]
    Worker { url: String, reason: String },
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("starting the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

struct AppState {
    store: Arc<Store>,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// A bound, ready orchestrator.
#[derive(Debug)]
pub struct Service {
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    dispatcher: Dispatcher,
}

impl Service {
    /// Opens the store, puts jobs an earlier run left `running` back in the queue, registers
    /// the configured workers, makes a fresh self-signed TLS certificate and binds.
    pub async fn bind(config: Config) -> Result<Self, StartError> {
        let max_attempts = config.max_attempts.max(1);
        let mut workers = Vec::with_capacity(config.workers.len());
        for url in &config.workers {
            let endpoint = Endpoint::parse(url).map_err(|e| StartError::Worker {
                url: url.clone(),
                reason: e.to_string(),
            })?;
            workers.push(endpoint.url());
        }
        let db = config.db.clone();
        let store = tokio::task::spawn_blocking(move || -> Result<Store, StoreError> {
            let store = Store::open(&db)?;
            let now = unix_now();
            let (requeued, failed) = store.recover(max_attempts, now)?;
            if requeued > 0 || failed > 0 {
                eprintln!(
                    "coffer-orchestrator: {requeued} interrupted job(s) back in the queue, \
                     {failed} failed (no attempt left)"
                );
            }
            for url in &workers {
                store.register_worker(url, now)?;
            }
            Ok(store)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))??;
        let store = Arc::new(store);
        let tls = server_tls()?;
        let client = coffer_net::client_config(None).map_err(|e| StartError::Tls(e.to_string()))?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let wake = Arc::new(Notify::new());
        let state = Arc::new(AppState {
            store: Arc::clone(&store),
            wake: Arc::clone(&wake),
        });
        Ok(Self {
            listener,
            tls: Arc::new(tls),
            app: router(state),
            dispatcher: Dispatcher {
                store,
                wake,
                tls: client,
                max_attempts,
                timeout: config.worker_timeout,
            },
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves the API and dispatches jobs until `shutdown` completes. Dispatches still in
    /// flight then are abandoned (as they are when this future is dropped): their jobs stay
    /// `running` in the store and go back to the queue at the next start.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let _dispatcher = AbortOnDrop(tokio::spawn(self.dispatcher.run()));
        coffer_net::serve_tls(self.listener, self.tls, self.app, shutdown).await
    }
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A TLS 1.3 server configuration over a fresh self-signed ECDSA P-256 certificate. The
/// orchestrator is untrusted: clients gain nothing from appraising it, the certificate only
/// keeps the traffic private on the wire.
fn server_tls() -> Result<rustls::ServerConfig, StartError> {
    let tls = |e: &dyn std::fmt::Display| StartError::Tls(e.to_string());
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| tls(&e))?;
    let mut params =
        rcgen::CertificateParams::new(vec!["coffer-orchestrator".into(), "localhost".into()])
            .map_err(|e| tls(&e))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Coffer orchestrator");
    let cert = params.self_signed(&key).map_err(|e| tls(&e))?;
    let chain = vec![cert.der().clone()];
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .map_err(|e| tls(&e))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| tls(&e))
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(WORKERS, post(register_worker).get(list_workers))
        .route(JOBS, post(submit_job))
        .route(&format!("{JOBS}/{{id}}"), get(job_status))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

fn bad_request(check: &str, message: impl Into<String>) -> ApiError {
    ApiError::new("bad_request", check, message)
}

fn internal(e: &StoreError) -> ApiError {
    eprintln!("coffer-orchestrator: {e}");
    ApiError::new("internal", "internal", e.to_string())
}

async fn register_worker(
    State(s): State<Arc<AppState>>,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<WorkerEntry>), ApiError> {
    let req: RegisterWorker = serde_json::from_slice(&body)
        .map_err(|e| bad_request("body", format!("request body: {e}")))?;
    let url = Endpoint::parse(&req.url)
        .map_err(|e| bad_request("worker_url", e.to_string()))?
        .url();
    let entry = store::blocking(&s.store, move |st| st.register_worker(&url, unix_now()))
        .await
        .map_err(|e| internal(&e))?;
    s.wake.notify_one();
    Ok((StatusCode::CREATED, axum::Json(entry)))
}

async fn list_workers(
    State(s): State<Arc<AppState>>,
) -> Result<axum::Json<Vec<WorkerEntry>>, ApiError> {
    store::blocking(&s.store, Store::workers)
        .await
        .map(axum::Json)
        .map_err(|e| internal(&e))
}

async fn submit_job(
    State(s): State<Arc<AppState>>,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<JobStatus>), ApiError> {
    let req: JobRequest = serde_json::from_slice(&body)
        .map_err(|e| bad_request("body", format!("job request: {e}")))?;
    let id = req
        .id()
        .map_err(|e| bad_request("body", format!("job request: {e}")))?;
    // Valid UTF-8: serde_json accepted it.
    let raw = String::from_utf8(body.to_vec())
        .map_err(|e| bad_request("body", format!("job request: {e}")))?;
    let job = id;
    let (inserted, status) = store::blocking(&s.store, move |st| {
        let inserted = st.insert_job(&job, &raw, &req.spec, unix_now())?;
        Ok((inserted, st.job(&job)?))
    })
    .await
    .map_err(|e| internal(&e))?;
    if inserted == Inserted::Exists {
        return Err(ApiError::new(
            "conflict",
            "job_exists",
            format!("job {id} was already submitted"),
        ));
    }
    let Some(status) = status else {
        return Err(ApiError::new(
            "internal",
            "internal",
            format!("job {id} vanished after it was stored"),
        ));
    };
    s.wake.notify_one();
    Ok((StatusCode::CREATED, axum::Json(status)))
}

async fn job_status(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<axum::Json<JobStatus>, ApiError> {
    let job: JobId = id.parse().map_err(|e: String| bad_request("job_id", e))?;
    store::blocking(&s.store, move |st| st.job(&job))
        .await
        .map_err(|e| internal(&e))?
        .map(axum::Json)
        .ok_or_else(|| ApiError::new("not_found", "unknown_job", format!("no job {id}")))
}

/// Runs an orchestrator until SIGINT or SIGTERM on its own multi-threaded runtime: binds,
/// then prints `listening on https://ADDR` on stdout (the line scripts wait for) and serves.
pub fn run(config: Config) -> Result<(), StartError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    runtime.block_on(async move {
        let summary = format!(
            "coffer-orchestrator: db {}, storage {}, {} worker(s) configured, \
             {} attempt(s) per job, worker timeout {} s",
            config.db.display(),
            config.storage,
            config.workers.len(),
            config.max_attempts.max(1),
            config.worker_timeout.as_secs_f64()
        );
        let service = Service::bind(config).await?;
        let addr = service.local_addr().map_err(|source| StartError::Bind {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })?;
        eprintln!("{summary}");
        eprintln!(
            "coffer-orchestrator: untrusted relay: jobs are signed by parties and checked by \
             workers; receipts are checked by recipients"
        );
        println!("listening on https://{addr}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        service
            .serve(shutdown_signal())
            .await
            .map_err(|source| StartError::Bind { addr, source })
    })
}

/// Completes on SIGINT or SIGTERM.
pub use coffer_net::shutdown_signal;
