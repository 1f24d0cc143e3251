//! What every job shares: the worker's RA-TLS identity and its renewal, the broker link,
//! storage, the limits, the replay memory and the cache of verified input ciphertext.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use coffer_attest::UnixTime;
use coffer_attest::ratls::{KeyAlg, RaTlsCert, RaTlsIdentity, RenewableCert};
use coffer_net::job::WorkerInfo;
use coffer_net::storage::Storage;
use coffer_net::{Endpoint, JobId};
use coffer_tee::Backend;

use crate::broker::BrokerLink;
use crate::config::{Config, StartError};
use crate::refusal::{Check, Refusal};

/// Lifetime of each RA-TLS certificate: a leaked key and certificate work for a day at most.
const CERT_LIFETIME_SECS: i64 = 24 * 3600;

/// The worker's state, shared by every job.
pub(crate) struct Worker {
    /// The current RA-TLS identity (renewed in place: same key, fresh evidence and dates).
    identity: std::sync::RwLock<Arc<RaTlsIdentity>>,
    /// What renewal needs: the TLS key, the evidence source, the served certificate.
    renewal: Renewal,
    pub(crate) info: WorkerInfo,
    /// The key broker, its appraisal, and the keep-alive connection to it.
    pub(crate) broker: BrokerLink,
    pub(crate) storage: Storage,
    /// How far a job's signing time may be from this worker's clock.
    pub(crate) window: i64,
    /// See [`Config::max_input_bytes`].
    pub(crate) max_input_bytes: u64,
    pub(crate) job_timeout: std::time::Duration,
    pub(crate) body_timeout: std::time::Duration,
    /// One permit per job that may run at once.
    pub(crate) slots: Arc<tokio::sync::Semaphore>,
    /// Job ids seen, with when they may be forgotten (their signing time plus the window).
    seen: Mutex<HashMap<JobId, i64>>,
    inputs: Mutex<InputCache>,
}

/// The worker's TLS key and evidence source, and the certificate its TLS server presents.
struct Renewal {
    key: zeroize::Zeroizing<Vec<u8>>,
    source: Box<dyn coffer_tee::EvidenceSource>,
    tls: Arc<RenewableCert>,
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

/// A started worker's state, the certificate its TLS server presents, and its sim
/// measurement (when simulated).
pub(crate) struct Started {
    pub(crate) worker: Worker,
    pub(crate) tls: Arc<RenewableCert>,
    pub(crate) measurement: Option<String>,
}

impl Worker {
    /// Opens storage and the evidence source, and issues the first RA-TLS certificate (a
    /// fresh P-256 key, fresh evidence).
    pub(crate) fn start(config: &Config) -> Result<Started, StartError> {
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
        let tls = RenewableCert::new(&identity).map_err(|e| StartError::Tls(e.to_string()))?;
        let info = WorkerInfo {
            service: "coffer-worker".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            backend: config.backend.name().into(),
            simulated: config.backend == Backend::Sim,
            tls_spki_sha256: hex::encode(cert.spki_sha256()),
        };
        let verifier = config
            .backend
            .peer_verifier(&config.sim_platform, &config.sim_roots);
        let worker = Worker {
            identity: std::sync::RwLock::new(Arc::new(identity)),
            renewal: Renewal {
                key,
                source,
                tls: Arc::clone(&tls),
            },
            info,
            broker: BrokerLink::new(broker, verifier, config.broker_policy.clone()),
            storage,
            window: config.request_window_secs,
            max_input_bytes: config.max_input_bytes,
            job_timeout: std::time::Duration::from_secs(config.job_timeout_secs),
            body_timeout: std::time::Duration::from_secs(config.body_timeout_secs),
            slots: Arc::new(tokio::sync::Semaphore::new(
                config.max_concurrent_jobs.max(1),
            )),
            seen: Mutex::new(HashMap::new()),
            inputs: Mutex::new(InputCache {
                cap: config.input_cache_bytes,
                ..InputCache::default()
            }),
        };
        Ok(Started {
            worker,
            tls,
            measurement,
        })
    }

    /// The current RA-TLS identity: it signs receipts and is the client certificate toward
    /// the broker.
    pub(crate) fn identity(&self) -> Result<Arc<RaTlsIdentity>, Refusal> {
        self.identity
            .read()
            .map(|i| Arc::clone(&i))
            .map_err(|_| Check::Internal.because("identity lock poisoned"))
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
        self.broker.disconnect().await;
        Ok(())
    }

    /// Evidence made now for the broker's `nonce`, binding this worker's TLS key.
    /// Evidence generation may block (a TEE's quote), so it runs with the runtime told.
    pub(crate) fn fresh_evidence(&self, nonce: &[u8]) -> Result<Vec<u8>, Refusal> {
        let identity = self.identity()?;
        let spki = RaTlsCert::from_der(identity.cert_der())
            .map_err(|e| Check::Internal.because(e.to_string()))?
            .spki_der;
        tokio::task::block_in_place(|| {
            coffer_attest::ratls::answer_challenge(&spki, nonce, |rd| {
                self.renewal.source.evidence(rd).map_err(|e| e.to_string())
            })
        })
        .map_err(|e| Check::Internal.because(format!("fresh evidence: {e}")))
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
    pub(crate) fn spend(&self, id: &JobId, expires_at: i64, now: i64) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        seen.retain(|_, exp| *exp >= now);
        if seen.contains_key(id) {
            return false;
        }
        seen.insert(*id, expires_at);
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
