//! The worker as an HTTPS service over RA-TLS: the front end that reads a job request,
//! takes a job slot, and runs the job on the compute runtime under the wall-clock limit.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use coffer_attest::ratls::RaTlsIdentity;
use coffer_net::ApiError;
use coffer_net::job::{JobDone, JobRequest, WorkerInfo};
use tokio::net::TcpListener;

pub use crate::config::{Config, StartError};
use crate::refusal::{Check, Refusal};
use crate::worker::Worker;

/// Largest job request accepted (the manifest travels inside it).
const MAX_BODY: usize = 8 << 20;
/// How often the certificate is renewed (fresh evidence, same key): well before it expires.
const CERT_RENEW_SECS: u64 = 6 * 3600;

/// The runtime queries run on, apart from the one serving TLS. Never dropped.
fn compute_runtime() -> Result<&'static tokio::runtime::Runtime, Refusal> {
    static RUNTIME: OnceLock<std::io::Result<tokio::runtime::Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .thread_name("coffer-compute")
                .enable_all()
                .build()
        })
        .as_ref()
        .map_err(|e| Check::Internal.because(format!("compute runtime: {e}")))
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
        let started = Worker::start(&config)?;
        let tls = RaTlsIdentity::renewable_server_config(started.tls, None)
            .map_err(|e| StartError::Tls(e.to_string()))?;
        let worker = Arc::new(started.worker);
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
            measurement: started.measurement,
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
    accept(w, request).await.map_err(|e| match e {
        Answer::Refused(r) => r.public(),
        Answer::Job(e) => e,
    })
}

/// A refusal before the job runs, or the job's own (already redacted) answer.
enum Answer {
    Refused(Refusal),
    Job(ApiError),
}

impl From<Refusal> for Answer {
    fn from(r: Refusal) -> Self {
        Self::Refused(r)
    }
}

async fn accept(
    w: Arc<Worker>,
    request: axum::extract::Request,
) -> Result<axum::Json<JobDone>, Answer> {
    let body = tokio::time::timeout(
        w.body_timeout,
        axum::body::to_bytes(request.into_body(), MAX_BODY),
    )
    .await
    .map_err(|_| {
        Check::BodyTimeout.because(format!(
            "the request body did not arrive within {} s",
            w.body_timeout.as_secs()
        ))
    })?
    .map_err(|_| {
        Check::Body.because(format!(
            "the request body is unreadable or larger than {MAX_BODY} bytes"
        ))
    })?;
    let req: JobRequest = serde_json::from_slice(&body)
        .map_err(|e| Check::Body.because(format!("job request: {e}")))?;
    let Ok(slot) = Arc::clone(&w.slots).try_acquire_owned() else {
        return Err(Check::WorkerBusy.because("every job slot is taken").into());
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
        Ok(joined) => Ok(axum::Json(
            joined.map_err(Refusal::from)?.map_err(Answer::Job)?,
        )),
        Err(_) => {
            abort.abort();
            Err(Check::JobTimeout
                .because(format!("the job ran longer than {} s", timeout.as_secs()))
                .into())
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
