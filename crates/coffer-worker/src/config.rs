//! How to run a worker, and why it could not start.

use std::net::SocketAddr;
use std::path::PathBuf;

use coffer_tee::Backend;

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
