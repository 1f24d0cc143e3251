//! The worker as an HTTPS service over RA-TLS.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use bytes::Bytes;
use coffer_attest::ratls::{KeyAlg, RaTlsCert, RaTlsIdentity};
use coffer_attest::{UnixTime, Verifier};
use coffer_net::job::{JobDone, JobRequest, WorkerInfo};
use coffer_net::storage::Storage;
use coffer_net::{ApiError, Endpoint};
use coffer_tee::Backend;
use tokio::net::TcpListener;

/// Largest job request accepted (the manifest travels inside it).
const MAX_BODY: usize = 8 << 20;
/// Lifetime of each RA-TLS certificate: a leaked key and certificate work for a day at most.
const CERT_LIFETIME_SECS: i64 = 24 * 3600;
/// How often the certificate is renewed (fresh evidence, same key): well before it expires.
const CERT_RENEW_SECS: u64 = 6 * 3600;

/// How to run a worker.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub backend: Backend,
    /// The key broker, `https://host:port`.
    pub broker: String,
    /// The storage URL (`file:///dir` or a directory).
    pub storage: String,
    /// Where the simulated platform key lives (`--tee sim`).
    pub sim_platform: PathBuf,
    /// Further sim platform keys whose broker evidence is verified (still refused unless the
    /// manifest allows simulation). A simulated worker's own platform is always one.
    pub sim_roots: Vec<[u8; 32]>,
    /// How far a job's signing time may be from the worker's clock.
    pub request_window_secs: i64,
    /// Bytes of verified input ciphertext kept in memory between jobs (0: none).
    pub input_cache_bytes: usize,
    /// Largest input object a job may name; larger ones are refused (`input_too_large`) while
    /// streaming, before they are held whole.
    pub max_input_bytes: u64,
    /// Wall-clock limit of one job, from its arrival to its receipt (`job_timeout`).
    pub job_timeout_secs: u64,
    /// Jobs run at once; a job arriving beyond that is refused (`worker_busy`, HTTP 503) and
    /// the orchestrator tries again later.
    pub max_concurrent_jobs: usize,
    /// Time allowed to read a request's body once its headers arrived (`body_timeout`).
    pub body_timeout_secs: u64,
    /// The policy the key broker's evidence must meet. A manifest's `enclave:` policy
    /// appraises workers only; the broker is the operator's choice, pinned here. `None`:
    /// every job is refused (`broker_attestation`) until one is configured.
    pub broker_policy: Option<coffer_attest::Policy>,
}

impl Config {
    /// A worker with the default window (300 s) and the sim platform in `sim_platform`.
    pub fn new(
        listen: SocketAddr,
        backend: Backend,
        broker: String,
        storage: String,
        sim_platform: PathBuf,
    ) -> Self {
        Self {
            listen,
            backend,
            broker,
            storage,
            sim_platform,
            sim_roots: Vec::new(),
            request_window_secs: 300,
            input_cache_bytes: 2 << 30,
            max_input_bytes: 8 << 30,
            job_timeout_secs: 3600,
            max_concurrent_jobs: 2,
            body_timeout_secs: 30,
            broker_policy: None,
        }
    }
}

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("evidence for the worker's certificate: {0}")]
    Evidence(String),
    #[error("broker URL: {0}")]
    Broker(String),
    #[error(transparent)]
    Storage(#[from] coffer_net::storage::StorageError),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
}

/// What every job needs: the worker's identity, the broker, storage.
pub(crate) struct Worker {
    /// The current RA-TLS identity (renewed in place: same key, fresh evidence and dates).
    identity: std::sync::RwLock<Arc<RaTlsIdentity>>,
    /// What renewal needs: the TLS key, the evidence source, the served certificate.
    renewal: Renewal,
    pub(crate) info: WorkerInfo,
    /// Verifies the broker's evidence (policy from each job's manifest).
    pub(crate) verifier: Verifier,
    pub(crate) broker: Endpoint,
    pub(crate) storage: Storage,
    pub(crate) window: i64,
    /// See [`Config::max_input_bytes`].
    pub(crate) max_input_bytes: u64,
    /// See [`Config::broker_policy`].
    pub(crate) broker_policy: Option<coffer_attest::Policy>,
    job_timeout: std::time::Duration,
    body_timeout: std::time::Duration,
    /// One permit per job that may run at once.
    slots: Arc<tokio::sync::Semaphore>,
    /// Job ids seen, with when they may be forgotten (their signing time plus the window).
    seen: Mutex<HashMap<String, i64>>,
    inputs: Mutex<InputCache>,
    /// The keep-alive connection to the broker, if one is open.
    pub(crate) broker_conn: tokio::sync::Mutex<Option<crate::job::BrokerConn>>,
}

/// The worker's TLS key and evidence source, and the certificate its TLS server presents.
struct Renewal {
    key: zeroize::Zeroizing<Vec<u8>>,
    source: Box<dyn coffer_tee::EvidenceSource>,
    tls: Arc<coffer_attest::ratls::RenewableCert>,
}

/// Input ciphertext that matched its pinned digest, by (object, digest): a later job over the
/// same pinned input skips reading and hashing it again. It holds ciphertext only, and only
/// bytes whose SHA-256 is the key's digest, so a changed object in storage cannot enter it.
#[derive(Debug, Default)]
struct InputCache {
    entries: HashMap<(String, String), Bytes>,
    order: std::collections::VecDeque<(String, String)>,
    bytes: usize,
    cap: usize,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// The current RA-TLS identity: it signs receipts and is the client certificate toward
    /// the broker.
    pub(crate) fn identity(&self) -> Result<Arc<RaTlsIdentity>, ApiError> {
        self.identity
            .read()
            .map(|i| Arc::clone(&i))
            .map_err(|_| ApiError::new("internal", "internal", "identity lock poisoned"))
    }

    /// Issues a fresh certificate (same key, fresh evidence, a new validity period) and
    /// presents it from the next handshake on; the next broker connection uses it too.
    pub(crate) async fn renew(&self) -> Result<(), StartError> {
        let fresh = issue(&self.renewal.key, self.renewal.source.as_ref())?;
        self.renewal
            .tls
            .set(&fresh)
            .map_err(|e| StartError::Tls(e.to_string()))?;
        if let Ok(mut current) = self.identity.write() {
            *current = Arc::new(fresh);
        }
        *self.broker_conn.lock().await = None;
        Ok(())
    }

    /// Evidence made now for the broker's `nonce`, binding this worker's TLS key.
    /// Evidence generation may block (a TEE's quote), so it runs with the runtime told.
    pub(crate) fn fresh_evidence(&self, nonce: &[u8]) -> Result<Vec<u8>, ApiError> {
        let identity = self.identity()?;
        let spki = RaTlsCert::from_der(identity.cert_der())
            .map_err(|e| ApiError::new("internal", "internal", e.to_string()))?
            .spki_der;
        tokio::task::block_in_place(|| {
            coffer_attest::ratls::answer_challenge(&spki, nonce, |rd| {
                self.renewal.source.evidence(rd).map_err(|e| e.to_string())
            })
        })
        .map_err(|e| ApiError::new("internal", "internal", format!("fresh evidence: {e}")))
    }

    /// Verified ciphertext of `name` with `digest`, if held.
    pub(crate) fn cached_input(&self, name: &str, digest: &str) -> Option<Bytes> {
        let cache = self.inputs.lock().ok()?;
        cache
            .entries
            .get(&(name.to_owned(), digest.to_owned()))
            .cloned()
    }

    /// Keeps `bytes`, whose SHA-256 the caller checked is `digest`; evicts the oldest first.
    pub(crate) fn remember_input(&self, name: &str, digest: &str, bytes: Bytes) {
        let Ok(mut cache) = self.inputs.lock() else {
            return;
        };
        if bytes.len() > cache.cap {
            return;
        }
        let key = (name.to_owned(), digest.to_owned());
        if cache.entries.contains_key(&key) {
            return;
        }
        while cache.bytes.saturating_add(bytes.len()) > cache.cap {
            let Some(old) = cache.order.pop_front() else {
                break;
            };
            if let Some(b) = cache.entries.remove(&old) {
                cache.bytes = cache.bytes.saturating_sub(b.len());
            }
        }
        cache.bytes = cache.bytes.saturating_add(bytes.len());
        cache.order.push_back(key.clone());
        cache.entries.insert(key, bytes);
    }

    /// Records `id`; false if it was seen and has not expired.
    pub(crate) fn spend(&self, id: &str, expires_at: i64, now: i64) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        seen.retain(|_, exp| *exp >= now);
        if seen.contains_key(id) {
            return false;
        }
        seen.insert(id.to_owned(), expires_at);
        true
    }
}

pub(crate) fn unix_now() -> UnixTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A certificate for `key` with fresh evidence from `source`, valid for a day from now.
fn issue(key: &[u8], source: &dyn coffer_tee::EvidenceSource) -> Result<RaTlsIdentity, StartError> {
    RaTlsIdentity::issue_with_key(key, None, unix_now(), CERT_LIFETIME_SECS, |rd| {
        source.evidence(rd)
    })
    .map_err(|e| StartError::Evidence(e.to_string()))
}

/// The runtime queries run on, apart from the one serving TLS. Never dropped.
fn compute_runtime() -> Result<&'static tokio::runtime::Runtime, ApiError> {
    static RUNTIME: OnceLock<std::io::Result<tokio::runtime::Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .thread_name("coffer-compute")
                .enable_all()
                .build()
        })
        .as_ref()
        .map_err(|e| ApiError::new("internal", "internal", format!("compute runtime: {e}")))
}

/// Renews a running worker's RA-TLS certificate ([`Service::renewer`]).
#[derive(Debug, Clone)]
pub struct Renewer(Arc<Worker>);

impl Renewer {
    /// Issues a fresh certificate (same key, fresh evidence, a new day of validity) and
    /// presents it from the next handshake on.
    pub async fn renew(&self) -> Result<(), StartError> {
        self.0.renew().await
    }
}

/// A bound, ready worker.
#[derive(Debug)]
pub struct Service {
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    worker: Arc<Worker>,
    measurement: Option<String>,
}

impl Service {
    /// Issues the RA-TLS certificate (fresh key and evidence), opens storage and binds.
    pub async fn bind(config: Config) -> Result<Self, StartError> {
        let broker =
            Endpoint::parse(&config.broker).map_err(|e| StartError::Broker(e.to_string()))?;
        let storage = Storage::open(&config.storage)?;
        let source = config
            .backend
            .open(&config.sim_platform, false)
            .map_err(|e| StartError::Evidence(e.to_string()))?;
        let key = RaTlsIdentity::generate_key(KeyAlg::P256)
            .map_err(|e| StartError::Evidence(e.to_string()))?;
        let identity = issue(&key, source.as_ref())?;
        let cert = RaTlsCert::from_der(identity.cert_der())
            .map_err(|e| StartError::Evidence(e.to_string()))?;
        let measurement = coffer_attest::sim::parse_sim_evidence(cert.evidence().data())
            .ok()
            .map(|c| hex::encode(c.measurement));
        let served = coffer_attest::ratls::RenewableCert::new(&identity)
            .map_err(|e| StartError::Tls(e.to_string()))?;
        let tls = RaTlsIdentity::renewable_server_config(Arc::clone(&served), None)
            .map_err(|e| StartError::Tls(e.to_string()))?;
        let simulated = config.backend == Backend::Sim;
        let verifier = config
            .backend
            .peer_verifier(&config.sim_platform, &config.sim_roots);
        let info = WorkerInfo {
            service: "coffer-worker".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            backend: config.backend.name().into(),
            simulated,
            tls_spki_sha256: hex::encode(cert.spki_sha256()),
        };
        let worker = Arc::new(Worker {
            identity: std::sync::RwLock::new(Arc::new(identity)),
            renewal: Renewal {
                key,
                source,
                tls: served,
            },
            info,
            verifier,
            broker,
            storage,
            window: config.request_window_secs,
            max_input_bytes: config.max_input_bytes,
            broker_policy: config.broker_policy.clone(),
            job_timeout: std::time::Duration::from_secs(config.job_timeout_secs),
            body_timeout: std::time::Duration::from_secs(config.body_timeout_secs),
            slots: Arc::new(tokio::sync::Semaphore::new(
                config.max_concurrent_jobs.max(1),
            )),
            seen: Mutex::new(HashMap::new()),
            broker_conn: tokio::sync::Mutex::new(None),
            inputs: Mutex::new(InputCache {
                cap: config.input_cache_bytes,
                ..InputCache::default()
            }),
        });
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        Ok(Self {
            listener,
            tls: Arc::new(tls),
            app: router(Arc::clone(&worker)),
            worker,
            measurement,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn info(&self) -> &WorkerInfo {
        &self.worker.info
    }

    /// The sim measurement of this executable, when simulated (what a manifest names).
    pub fn sim_measurement(&self) -> Option<&str> {
        self.measurement.as_deref()
    }

    /// The storage URL, canonical.
    pub fn storage_url(&self) -> &str {
        self.worker.storage.url()
    }

    /// Serves until `shutdown` completes.
    /// Serves until `shutdown` completes, renewing the certificate every few hours.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let worker = Arc::clone(&self.worker);
        let renew = async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(CERT_RENEW_SECS)).await;
                if let Err(e) = worker.renew().await {
                    // The old certificate serves until it expires; try again sooner.
                    eprintln!("coffer-worker: renewing the RA-TLS certificate: {e}");
                    tokio::time::sleep(std::time::Duration::from_secs(300)).await;
                }
            }
        };
        tokio::select! {
            served = coffer_net::serve_tls(self.listener, self.tls, self.app, shutdown) => served,
            () = renew => Ok(()),
        }
    }

    /// A handle that renews the RA-TLS certificate now (what `serve` does every few hours),
    /// usable while the service runs.
    pub fn renewer(&self) -> Renewer {
        Renewer(Arc::clone(&self.worker))
    }
}

fn router(worker: Arc<Worker>) -> Router {
    Router::new()
        .route(coffer_net::job::WORKER_INFO, get(info))
        .route(coffer_net::job::JOBS, post(submit))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(worker)
}

async fn info(State(w): State<Arc<Worker>>) -> axum::Json<WorkerInfo> {
    axum::Json(w.info.clone())
}

async fn submit(
    State(w): State<Arc<Worker>>,
    request: axum::extract::Request,
) -> Result<axum::Json<JobDone>, ApiError> {
    let body = tokio::time::timeout(
        w.body_timeout,
        axum::body::to_bytes(request.into_body(), MAX_BODY),
    )
    .await
    .map_err(|_| {
        ApiError::new(
            "bad_request",
            "body_timeout",
            format!(
                "the request body did not arrive within {} s",
                w.body_timeout.as_secs()
            ),
        )
    })?
    .map_err(|_| {
        ApiError::new(
            "bad_request",
            "body",
            format!("the request body is unreadable or larger than {MAX_BODY} bytes"),
        )
    })?;
    let req: JobRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new("bad_request", "body", format!("job request: {e}")))?;
    let Ok(slot) = Arc::clone(&w.slots).try_acquire_owned() else {
        return Err(ApiError::new(
            "unavailable",
            "worker_busy",
            "the worker runs as many jobs as it is configured to; try again later",
        ));
    };
    let runtime = compute_runtime()?;
    let timeout = w.job_timeout;
    // The job runs on the compute runtime; at the timeout its task is aborted (dropped at its
    // next await), and the keys it held are zeroized as they drop.
    let task = runtime.spawn(async move {
        let _slot = slot;
        crate::job::run(&w, req).await
    });
    let abort = task.abort_handle();
    match tokio::time::timeout(timeout, task).await {
        Ok(joined) => {
            let done = joined
                .map_err(|e| ApiError::new("internal", "internal", format!("job task: {e}")))??;
            Ok(axum::Json(done))
        }
        Err(_) => {
            abort.abort();
            Err(ApiError::new(
                "refused",
                "job_timeout",
                format!("the job ran longer than {} s", timeout.as_secs()),
            ))
        }
    }
}

/// Runs a worker until SIGINT or SIGTERM. Prints `listening on https://ADDR` on stdout when
/// ready, and in simulation a warning and the sim measurement on stderr.
pub fn run(config: Config) -> Result<(), StartError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| StartError::Tls(format!("starting the runtime: {e}")))?;
    runtime.block_on(async move {
        let service = Service::bind(config).await?;
        let addr = service.local_addr().map_err(|source| StartError::Bind {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })?;
        if service.info().simulated {
            eprintln!(
                "coffer-worker: WARNING: SIMULATION MODE. The evidence is signed by a key file \
                 on this host and protects nothing: the host can read every key and every row \
                 this worker handles."
            );
        }
        if let Some(m) = service.sim_measurement() {
            eprintln!("coffer-worker: sim measurement {m}");
        }
        eprintln!(
            "coffer-worker: backend {}, storage {}, TLS key sha256 {}",
            service.info().backend,
            service.storage_url(),
            service.info().tls_spki_sha256
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
