//! The broker as an HTTPS service over RA-TLS: `coffer-broker serve` and `coffer broker serve`.
//!
//! - The server certificate is an RA-TLS certificate over a TLS key kept sealed in the data
//!   directory (`tls-key.sealed`), so that parties can pin the key across restarts; the
//!   evidence in it is fresh at every start.
//! - Parties sign their requests ([`coffer_net::signed`]); the broker checks the signature
//!   with the party's key from the manifest concerned, refuses a time outside its window and
//!   a nonce it has seen (nonces are stored, so a restart does not reopen the window).
//! - Workers present an RA-TLS client certificate; the broker verifies its evidence and key
//!   binding, then appraises the claims against the policy of the manifest the release names.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use bytes::Bytes;
use coffer_attest::ratls::{DeferredClientVerifier, KeyAlg, RaTlsCert, RaTlsIdentity};
use coffer_attest::{FailedCheck, UnixTime, Verified, Verifier};
use coffer_crypto::SecretKey;
use coffer_manifest::{Manifest, ManifestHash, SignatureFile};
use coffer_net::broker::{
    Info, KeyStored, ManifestStatus, ReleaseRequest, Released, SubmitManifest, UploadKey,
};
use coffer_net::{ApiError, PeerCertificate, SignedHeaders};
use coffer_tee::Backend;
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use crate::broker::{Broker, Refusal};
use crate::error::{BrokerError, StoreError};
use crate::sealing::SealingKey;

/// The OpenAPI 3.1 description served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Largest request body accepted.
const MAX_BODY: usize = 4 << 20;
/// How long a verified worker certificate is remembered.
const WORKER_CACHE_TTL: Duration = Duration::from_secs(60);
const WORKER_CACHE_MAX: usize = 4096;
/// Lifetime of each RA-TLS certificate: a leaked key and certificate work for a day at most.
const CERT_LIFETIME_SECS: i64 = 24 * 3600;
/// How often the certificate is renewed (same key, fresh evidence): well before it expires.
const CERT_RENEW_SECS: u64 = 6 * 3600;
const TLS_KEY_FILE: &str = "tls-key.sealed";
const TLS_KEY_AAD: &[u8] = b"coffer-broker-tls-key-v1";

/// How to run a broker.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// State: `broker.sqlite`, sealing and signing keys, the sealed TLS key.
    pub data: PathBuf,
    pub backend: Backend,
    /// Where the simulated platform key lives (`--tee sim`).
    pub sim_platform: PathBuf,
    /// Sim platform keys whose worker evidence is verified (still refused unless a manifest
    /// allows simulation). The broker's own platform is always one.
    pub sim_roots: Vec<[u8; 32]>,
    /// How far a signed request's time may be from the broker's clock.
    pub request_window_secs: i64,
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("evidence for the broker's own certificate: {0}")]
    Evidence(String),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
}

/// A worker certificate's verified claims, or why its evidence did not verify.
type WorkerVerdict = Result<Verified, Vec<FailedCheck>>;

struct AppState {
    broker: Arc<Broker>,
    info: Info,
    verifier: Verifier,
    window: i64,
    workers: Mutex<HashMap<[u8; 32], (Instant, WorkerVerdict)>>,
    /// Recent manifest submissions per signing key (Unix times), for the hourly cap.
    submissions: Mutex<HashMap<[u8; 32], std::collections::VecDeque<i64>>>,
    /// The evidence source, for challenges.
    renewal: Arc<Renewal>,
    /// The TLS key's SubjectPublicKeyInfo (DER): what a challenge's evidence binds.
    spki_der: Vec<u8>,
    /// Nonces issued to workers (hex → the worker's TLS key hash, issue time), single use.
    worker_nonces: Mutex<HashMap<String, ([u8; 32], i64)>>,
    /// Evidence being made for `POST /v1/attest` callers ([`MAX_CONCURRENT_ATTESTS`]).
    attesting: Arc<tokio::sync::Semaphore>,
}

/// Evidence for anonymous challengers made at once at most: on a TEE a quote costs
/// milliseconds of platform work, so strangers asking for many cannot starve releases. More
/// are refused `busy` (503) and retried by the client.
pub const MAX_CONCURRENT_ATTESTS: usize = 8;

/// How long a worker has to answer its nonce.
const WORKER_NONCE_TTL_SECS: i64 = 60;
/// Outstanding worker nonces kept at most (older ones are dropped first).
const WORKER_NONCE_MAX: usize = 65_536;

impl AppState {
    /// A fresh nonce for the worker whose TLS key hashes to `worker`.
    fn issue_worker_nonce(&self, worker: [u8; 32], now: i64) -> Result<String, ApiError> {
        let nonce = coffer_net::signed::fresh_nonce()
            .map_err(|e| internal(format!("random nonce: {e}")))?;
        let mut map = self
            .worker_nonces
            .lock()
            .map_err(|_| internal("nonce table lock"))?;
        map.retain(|_, (_, at)| now.saturating_sub(*at) <= WORKER_NONCE_TTL_SECS);
        if map.len() >= WORKER_NONCE_MAX {
            return Err(ApiError::new(
                "unavailable",
                "busy",
                "too many outstanding challenges; try again later",
            ));
        }
        map.insert(nonce.clone(), (worker, now));
        Ok(nonce)
    }

    /// Spends `nonce` if this broker issued it to `worker` within the last minute.
    fn spend_worker_nonce(&self, nonce: &str, worker: [u8; 32], now: i64) -> bool {
        let Ok(mut map) = self.worker_nonces.lock() else {
            return false;
        };
        match map.remove(nonce) {
            Some((w, at)) => w == worker && now.saturating_sub(at) <= WORKER_NONCE_TTL_SECS,
            None => false,
        }
    }
}

/// Manifest submissions one signing key may make per hour: each grows the audit log and is
/// fsynced, so a stranger must not be able to fill it. Kept in memory (a restart resets it).
pub const MAX_SUBMISSIONS_PER_HOUR: usize = 60;

impl AppState {
    /// Counts a submission by `key` at `now`; false if the key is over its hourly cap.
    fn allow_submission(&self, key: &VerifyingKey, now: i64) -> bool {
        let Ok(mut map) = self.submissions.lock() else {
            return false;
        };
        let recent = map.entry(key.to_bytes()).or_default();
        while recent
            .front()
            .is_some_and(|t| *t <= now.saturating_sub(3600))
        {
            recent.pop_front();
        }
        if recent.len() >= MAX_SUBMISSIONS_PER_HOUR {
            return false;
        }
        recent.push_back(now);
        true
    }
}

/// A bound, ready broker.
#[derive(Debug)]
pub struct Service {
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    info: Info,
    measurement: Option<String>,
    renewal: Arc<Renewal>,
}

/// Renews a running broker's RA-TLS certificate ([`Service::renewer`]).
#[derive(Debug, Clone)]
pub struct Renewer(Arc<Renewal>);

impl Renewer {
    /// Issues a fresh certificate (same key, fresh evidence, a new day of validity) and
    /// presents it from the next handshake on.
    pub fn renew(&self) -> Result<(), StartError> {
        self.0.renew()
    }
}

/// What renewing the certificate needs: the (sealed-at-rest) TLS key, the evidence source and
/// the certificate the TLS server presents. The key never changes, so parties' pins hold.
struct Renewal {
    key: zeroize::Zeroizing<Vec<u8>>,
    source: Box<dyn coffer_tee::EvidenceSource>,
    served: Arc<coffer_attest::ratls::RenewableCert>,
}

impl std::fmt::Debug for Renewal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renewal").finish_non_exhaustive()
    }
}

impl Renewal {
    fn issue(&self) -> Result<RaTlsIdentity, StartError> {
        RaTlsIdentity::issue_with_key(&self.key, None, unix_now(), CERT_LIFETIME_SECS, |rd| {
            self.source.evidence(rd)
        })
        .map_err(|e| StartError::Evidence(e.to_string()))
    }

    fn renew(&self) -> Result<(), StartError> {
        let fresh = self.issue()?;
        self.served
            .set(&fresh)
            .map_err(|e| StartError::Tls(e.to_string()))
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> UnixTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Service {
    /// Opens the state (refusing a corrupted store), issues the RA-TLS certificate and binds
    /// the listener.
    pub async fn bind(config: Config) -> Result<Self, StartError> {
        let broker = Arc::new(Broker::open(&config.data)?);
        let sealing = SealingKey::load_or_create(&config.data.join("sealing.key"))
            .map_err(BrokerError::from)?;
        let key = tls_key(&config.data, &sealing)?;
        let source = config
            .backend
            .open(&config.sim_platform, false)
            .map_err(|e| StartError::Evidence(e.to_string()))?;
        let identity =
            RaTlsIdentity::issue_with_key(&key, None, unix_now(), CERT_LIFETIME_SECS, |rd| {
                source.evidence(rd)
            })
            .map_err(|e| StartError::Evidence(e.to_string()))?;
        let renewal = Arc::new(Renewal {
            key,
            source,
            served: coffer_attest::ratls::RenewableCert::new(&identity)
                .map_err(|e| StartError::Tls(e.to_string()))?,
        });
        let cert = RaTlsCert::from_der(identity.cert_der())
            .map_err(|e| StartError::Evidence(e.to_string()))?;
        let measurement = coffer_attest::sim::parse_sim_evidence(cert.evidence().data())
            .ok()
            .map(|c| hex::encode(c.measurement));
        let tls = RaTlsIdentity::renewable_server_config(
            Arc::clone(&renewal.served),
            Some(DeferredClientVerifier::new()),
        )
        .map_err(|e| StartError::Tls(e.to_string()))?;
        let simulated = config.backend == Backend::Sim;
        // Only a simulated broker trusts (and so creates) a sim platform key of its own.
        let verifier = config
            .backend
            .peer_verifier(&config.sim_platform, &config.sim_roots);
        let info = Info {
            service: "coffer-broker".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            backend: config.backend.name().into(),
            simulated,
            audit_key: format!("ed25519:{}", hex::encode(broker.public_key().as_bytes())),
            tls_spki_sha256: hex::encode(cert.spki_sha256()),
        };
        let state = Arc::new(AppState {
            broker,
            info: info.clone(),
            verifier,
            window: config.request_window_secs,
            workers: Mutex::new(HashMap::new()),
            submissions: Mutex::new(HashMap::new()),
            attesting: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_ATTESTS)),
            renewal: Arc::clone(&renewal),
            spki_der: cert.spki_der.clone(),
            worker_nonces: Mutex::new(HashMap::new()),
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
            app: router(state),
            info,
            measurement,
            renewal,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn info(&self) -> &Info {
        &self.info
    }

    /// The sim measurement of this executable, when simulated (what a manifest or pin names).
    pub fn sim_measurement(&self) -> Option<&str> {
        self.measurement.as_deref()
    }

    /// Serves until `shutdown` completes.
    /// Serves until `shutdown` completes, renewing the certificate every few hours.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let renewal = self.renewal;
        let renew = async move {
            loop {
                tokio::time::sleep(Duration::from_secs(CERT_RENEW_SECS)).await;
                if let Err(e) = renewal.renew() {
                    eprintln!("coffer-broker: renewing the RA-TLS certificate: {e}");
                    tokio::time::sleep(Duration::from_secs(300)).await;
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
        Renewer(Arc::clone(&self.renewal))
    }
}

/// The TLS key (PKCS#8), sealed in the data directory; created on first start.
fn tls_key(dir: &Path, sealing: &SealingKey) -> Result<zeroize::Zeroizing<Vec<u8>>, StartError> {
    let sealed = crate::keyfile::load_or_create_blob(&dir.join(TLS_KEY_FILE), || {
        let key = RaTlsIdentity::generate_key(KeyAlg::P256)
            .map_err(|e| StoreError::Seal(e.to_string()))?;
        Ok(zeroize::Zeroizing::new(sealing.seal(TLS_KEY_AAD, &key)?))
    })
    .map_err(BrokerError::from)?;
    Ok(sealing
        .open(TLS_KEY_AAD, &sealed)
        .map_err(BrokerError::from)?)
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(coffer_net::broker::OPENAPI, get(openapi))
        .route(coffer_net::broker::INFO, get(info))
        .route(coffer_net::broker::MANIFESTS, post(submit_manifest))
        .route(coffer_net::broker::KEYS, post(upload_key))
        .route(coffer_net::broker::RELEASE, post(release))
        .route(coffer_net::broker::AUDIT, get(audit))
        .route(coffer_net::broker::RECEIPTS, post(receipt))
        .route(coffer_net::broker::REVOKE, post(revoke_key))
        .route(coffer_net::broker::ATTEST, post(attest))
        .route(coffer_net::broker::CHALLENGE, post(worker_challenge))
        .route(coffer_net::broker::RETIRE, post(retire_manifest))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn info(State(s): State<Arc<AppState>>) -> axum::Json<Info> {
    axum::Json(s.info.clone())
}

fn bad_request(check: &str, message: impl Into<String>) -> ApiError {
    ApiError::new("bad_request", check, message)
}

fn internal(message: impl Into<String>) -> ApiError {
    ApiError::new("internal", "internal", message)
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad_request("body", format!("request body: {e}")))
}

/// Maps a broker error to the API's typed error.
fn broker_error(e: BrokerError) -> ApiError {
    match &e {
        BrokerError::UnknownManifest(_) => {
            ApiError::new("not_found", "unknown_manifest", e.to_string())
        }
        BrokerError::UnknownDataset(_) => {
            ApiError::new("refused", "unknown_dataset", e.to_string())
        }
        BrokerError::NotOwner { .. } => ApiError::new("refused", "not_owner", e.to_string()),
        BrokerError::KeyExists { .. } => ApiError::new("conflict", "key_exists", e.to_string()),
        BrokerError::NotAParty(_) => ApiError::new("refused", "unknown_party", e.to_string()),
        BrokerError::AlreadyDone(_) => ApiError::new("conflict", "already_done", e.to_string()),
        BrokerError::Manifest(_) => bad_request("manifest", e.to_string()),
        BrokerError::UnknownPredecessor(_) | BrokerError::ChainTooLong(_) => {
            ApiError::new("refused", "predecessor", e.to_string())
        }
        _ => internal(e.to_string()),
    }
}

/// Maps a release refusal to the API's typed error; `check` is stable.
pub fn refusal_error(r: &Refusal) -> ApiError {
    let check = match r {
        Refusal::UnknownManifest => "unknown_manifest",
        Refusal::ManifestNotActive => "manifest_not_active",
        Refusal::UnknownComputation => "unknown_computation",
        Refusal::OwnerNotSigned { .. } => "owner_not_signed",
        Refusal::DigestMismatch { .. } => "digest_mismatch",
        Refusal::KeyMissing { .. } => "key_missing",
        Refusal::Appraisal(checks) => checks.first().map_or("appraisal", FailedCheck::check),
        Refusal::ReplayedNonce => "replayed_request",
        Refusal::StaleRequest { .. } => "stale_request",
        Refusal::JobMismatch => "job_mismatch",
        Refusal::UnknownJob => "unknown_job",
        Refusal::ReceiptExists => "receipt_exists",
        Refusal::ManifestSuperseded { .. } => "manifest_superseded",
        Refusal::ManifestRetired { .. } => "manifest_retired",
        Refusal::KeyRevoked { .. } => "key_revoked",
        Refusal::ReceiptSigner => "receipt_signer",
        Refusal::UnknownParty { .. } => "unknown_party",
        Refusal::JobSignature { .. } => "job_signature",
        Refusal::Internal(_) => return internal(r.to_string()),
    };
    let reasons = match r {
        Refusal::Appraisal(checks) => checks
            .iter()
            .map(|c| format!("[{}] {c}", c.check()))
            .collect(),
        _ => Vec::new(),
    };
    ApiError::new("refused", check, r.to_string()).with_reasons(reasons)
}

/// Runs a blocking broker call off the async runtime.
async fn blocking<R: Send + 'static>(
    s: &Arc<AppState>,
    f: impl FnOnce(&Broker) -> R + Send + 'static,
) -> Result<R, ApiError> {
    let broker = Arc::clone(&s.broker);
    tokio::task::spawn_blocking(move || f(&broker))
        .await
        .map_err(|e| internal(format!("broker task: {e}")))
}

/// Authenticates a signed party request against `keys`, then spends its nonce.
async fn authenticate(
    s: &Arc<AppState>,
    signed: &SignedHeaders,
    keys: &[VerifyingKey],
    method: &Method,
    uri: &Uri,
    body: &[u8],
) -> Result<(), ApiError> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    signed
        .verify(keys, method.as_str(), path, &s.info.tls_spki_sha256, body)
        .map_err(|e| ApiError::new("refused", e.check(), e.to_string()))?;
    let (party, nonce, time, window) = (
        signed.party.clone(),
        signed.nonce.clone(),
        signed.time,
        s.window,
    );
    blocking(s, move |b| {
        b.check_request_nonce(&party, &nonce, time, unix_now(), window)
    })
    .await?
    .map_err(|r| refusal_error(&r))
}

fn signed_headers(headers: &HeaderMap) -> Result<SignedHeaders, ApiError> {
    SignedHeaders::parse(headers).map_err(|e| ApiError::new("refused", e.check(), e.to_string()))
}

async fn submit_manifest(
    State(s): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<ManifestStatus>, ApiError> {
    let signed = signed_headers(&headers)?;
    let req: SubmitManifest = parse_json(&body)?;
    let manifest = Manifest::from_yaml(&req.manifest)
        .map_err(|e| bad_request("manifest", format!("manifest: {e}")))?;
    // The submitter must be a party of the manifest it submits.
    let keys: Vec<VerifyingKey> = manifest
        .party(&signed.party)
        .map(|p| p.key)
        .into_iter()
        .collect();
    authenticate(&s, &signed, &keys, &method, &uri, &body).await?;
    if keys
        .first()
        .is_some_and(|k| !s.allow_submission(k, unix_now()))
    {
        return Err(ApiError::new(
            "rate_limited",
            "submission_rate",
            format!(
                "more than {MAX_SUBMISSIONS_PER_HOUR} manifest submissions by this key within an \
                 hour; try again later"
            ),
        ));
    }
    let sigs = SignatureFile::from_json(&req.signatures.to_string())
        .map_err(|e| bad_request("signatures", format!("signature file: {e}")))?;
    let yaml = req.manifest;
    let st = blocking(&s, move |b| b.submit_manifest(&yaml, &sigs, unix_now()))
        .await?
        .map_err(broker_error)?;
    Ok(axum::Json(ManifestStatus {
        hash: st.hash,
        active: st.active,
        signed_by: st.signed_by,
        missing: st.missing,
        invalid: st
            .invalid
            .iter()
            .map(|i| format!("{}: {}", i.party, i.reason))
            .collect(),
    }))
}

async fn upload_key(
    State(s): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(axum::http::StatusCode, axum::Json<KeyStored>), ApiError> {
    let signed = signed_headers(&headers)?;
    let req: UploadKey = parse_json(&body)?;
    let hash = req.manifest;
    let held = blocking(&s, move |b| b.manifest(&hash))
        .await?
        .map_err(broker_error)?;
    let Some((manifest, _active)) = held else {
        return Err(ApiError::new(
            "not_found",
            "unknown_manifest",
            format!("manifest {hash} is not known to this broker"),
        ));
    };
    let keys: Vec<VerifyingKey> = manifest
        .party(&signed.party)
        .map(|p| p.key)
        .into_iter()
        .collect();
    authenticate(&s, &signed, &keys, &method, &uri, &body).await?;
    let key =
        SecretKey::from_hex(&req.key).map_err(|e| bad_request("key", format!("data key: {e}")))?;
    let (dataset, party) = (req.dataset.clone(), signed.party.clone());
    blocking(&s, move |b| {
        b.upload_key(&hash, &dataset, &party, &key, unix_now())
    })
    .await?
    .map_err(broker_error)?;
    Ok((
        axum::http::StatusCode::CREATED,
        axum::Json(KeyStored {
            manifest: hash,
            dataset: req.dataset,
        }),
    ))
}

/// A nonce for the presenting worker, to answer in its next release.
async fn worker_challenge(
    State(s): State<Arc<AppState>>,
    Extension(peer): Extension<PeerCertificate>,
) -> Result<axum::Json<coffer_net::broker::Challenge>, ApiError> {
    let Some(cert) = peer.0 else {
        return Err(ApiError::new(
            "refused",
            "worker_certificate",
            "a challenge is for a worker presenting its RA-TLS client certificate",
        ));
    };
    let worker = RaTlsCert::from_der(&cert)
        .map_err(|e| ApiError::new("refused", "worker_certificate", e.to_string()))?
        .spki_sha256();
    let nonce = s.issue_worker_nonce(worker, unix_now())?;
    Ok(axum::Json(coffer_net::broker::Challenge { nonce }))
}

/// Evidence made for the caller's nonce, binding this broker's TLS key.
async fn attest(
    State(s): State<Arc<AppState>>,
    body: Bytes,
) -> Result<axum::Json<coffer_net::broker::ChallengeAnswer>, ApiError> {
    let req: coffer_net::broker::Challenge = parse_json(&body)?;
    let nonce = hex::decode(&req.nonce)
        .ok()
        .filter(|n| (16..=64).contains(&n.len()))
        .ok_or_else(|| bad_request("nonce", "the nonce must be 16 to 64 bytes, hex"))?;
    let permit = attest_permit(&s.attesting)?;
    let state = Arc::clone(&s);
    let answer = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        coffer_attest::ratls::answer_challenge(&state.spki_der, &nonce, |rd| {
            state.renewal.source.evidence(rd).map_err(|e| e.to_string())
        })
    })
    .await
    .map_err(|e| internal(format!("evidence task: {e}")))?
    .map_err(|e| internal(format!("evidence: {e}")))?;
    Ok(axum::Json(coffer_net::broker::ChallengeAnswer {
        evidence: hex::encode(answer),
    }))
}

/// A place among the [`MAX_CONCURRENT_ATTESTS`] challenges answered at once, or `busy`.
fn attest_permit(
    gate: &Arc<tokio::sync::Semaphore>,
) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    Arc::clone(gate).try_acquire_owned().map_err(|_| {
        ApiError::new(
            "unavailable",
            "busy",
            format!("{MAX_CONCURRENT_ATTESTS} attestations in progress; try again shortly"),
        )
    })
}

/// The held manifest `hash` and the signed request's party key in it, authenticated.
async fn authenticated_party(
    s: &Arc<AppState>,
    signed: &SignedHeaders,
    hash: ManifestHash,
    (method, uri, body): (&Method, &Uri, &[u8]),
) -> Result<(), ApiError> {
    let held = blocking(s, move |b| b.manifest(&hash))
        .await?
        .map_err(broker_error)?;
    let Some((manifest, _active)) = held else {
        return Err(ApiError::new(
            "not_found",
            "unknown_manifest",
            format!("manifest {hash} is not known to this broker"),
        ));
    };
    let keys: Vec<VerifyingKey> = manifest
        .party(&signed.party)
        .map(|p| p.key)
        .into_iter()
        .collect();
    authenticate(s, signed, &keys, method, uri, body).await
}

async fn revoke_key(
    State(s): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let signed = signed_headers(&headers)?;
    let req: coffer_net::broker::RevokeKey = parse_json(&body)?;
    let hash = req.manifest;
    authenticated_party(&s, &signed, hash, (&method, &uri, &body)).await?;
    let (dataset, party) = (req.dataset.clone(), signed.party.clone());
    blocking(&s, move |b| {
        b.revoke_key(&hash, &dataset, &party, unix_now())
    })
    .await?
    .map_err(broker_error)?;
    Ok(axum::Json(serde_json::json!({
        "manifest": hash.to_string(),
        "dataset": req.dataset,
        "revoked": true,
    })))
}

async fn retire_manifest(
    State(s): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let signed = signed_headers(&headers)?;
    let req: coffer_net::broker::RetireManifest = parse_json(&body)?;
    let hash = req.manifest;
    authenticated_party(&s, &signed, hash, (&method, &uri, &body)).await?;
    let party = signed.party.clone();
    blocking(&s, move |b| b.retire_manifest(&hash, &party, unix_now()))
        .await?
        .map_err(broker_error)?;
    Ok(axum::Json(serde_json::json!({
        "manifest": hash.to_string(),
        "retired": true,
    })))
}

impl AppState {
    /// The worker's verified claims (evidence checked, key bound), remembered per certificate
    /// for a minute.
    fn worker(&self, cert_der: &[u8]) -> Result<Verified, Vec<FailedCheck>> {
        let id: [u8; 32] = Sha256::digest(cert_der).into();
        if let Ok(cache) = self.workers.lock()
            && let Some((at, v)) = cache.get(&id)
            && at.elapsed() < WORKER_CACHE_TTL
        {
            return v.clone();
        }
        let verdict = RaTlsCert::from_der(cert_der)
            .map_err(|e| vec![FailedCheck::from_error(&e)])
            .and_then(|cert| cert.verify_bound(&self.verifier, None, unix_now()));
        if let Ok(mut cache) = self.workers.lock() {
            if cache.len() >= WORKER_CACHE_MAX {
                cache.clear();
            }
            cache.insert(id, (Instant::now(), verdict.clone()));
        }
        verdict
    }
}

async fn release(
    State(s): State<Arc<AppState>>,
    Extension(peer): Extension<PeerCertificate>,
    body: Bytes,
) -> Result<axum::Json<Released>, ApiError> {
    let Some(cert) = peer.0 else {
        return Err(ApiError::new(
            "refused",
            "worker_certificate",
            "a key release needs the worker's RA-TLS client certificate",
        ));
    };
    let req: ReleaseRequest = parse_json(&body)?;
    let hash = req.manifest;
    // The certificate must verify (validity, evidence, key binding), and the release is judged
    // on the evidence the worker made for the nonce this broker issued it.
    let presented = RaTlsCert::from_der(&cert).ok();
    let worker_key = presented
        .as_ref()
        .map(|c| hex::encode(c.spki_sha256()))
        .unwrap_or_default();
    let now = unix_now();
    let worker = match (s.worker(&cert), &presented) {
        (Err(failed), _) => Err(failed),
        (Ok(_), None) => Err(vec![FailedCheck::KeyNotBound]),
        (Ok(_), Some(c)) => {
            if s.spend_worker_nonce(&req.fresh.nonce, c.spki_sha256(), now) {
                match (
                    hex::decode(&req.fresh.nonce),
                    hex::decode(&req.fresh.evidence),
                ) {
                    (Ok(nonce), Ok(evidence)) => coffer_attest::ratls::verify_challenge(
                        &evidence,
                        &c.spki_der,
                        &nonce,
                        &s.verifier,
                        now,
                    ),
                    _ => Err(vec![FailedCheck::NonceMismatch]),
                }
            } else {
                Err(vec![FailedCheck::NonceMismatch])
            }
        }
    };
    let keys = s
        .broker
        .release_async(&hash, req, worker, worker_key, s.window, now)
        .await
        .map_err(|r| refusal_error(&r))?;
    Ok(axum::Json(Released {
        keys: keys
            .into_iter()
            .map(|(k, v)| (k, hex::encode(v.expose_secret())))
            .collect(),
    }))
}

/// A worker's signed receipt for a job whose keys this broker released: the receipt must be
/// signed by the key of the RA-TLS client certificate that presents it.
async fn receipt(
    State(s): State<Arc<AppState>>,
    Extension(peer): Extension<PeerCertificate>,
    body: Bytes,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let Some(cert) = peer.0 else {
        return Err(ApiError::new(
            "refused",
            "worker_certificate",
            "a receipt comes from the worker's RA-TLS client certificate",
        ));
    };
    let signed: coffer_net::job::SignedReceipt = parse_json(&body)?;
    let signer = signed
        .verify_signature()
        .map_err(|e| ApiError::new("refused", e.check(), e.to_string()))?;
    let presenter = RaTlsCert::from_der(&cert)
        .map_err(|e| ApiError::new("refused", "worker_certificate", e.to_string()))?;
    let worker = hex::encode(presenter.spki_sha256());
    if signer.spki_sha256() != presenter.spki_sha256() {
        return Err(ApiError::new(
            "refused",
            "receipt_signer",
            "the receipt is not signed by the worker that presents it",
        ));
    }
    let (job, manifest) = (signed.receipt.job, signed.receipt.manifest);
    let value = serde_json::to_value(&signed).map_err(|e| internal(e.to_string()))?;
    let entry = blocking(&s, move |b| {
        b.record_receipt(&job, &manifest, &worker, value, unix_now())
    })
    .await?
    .map_err(|r| refusal_error(&r))?;
    Ok(axum::Json(serde_json::json!({ "seq": entry.entry.seq })))
}

async fn audit(
    State(s): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let signed = signed_headers(&headers)?;
    let party = signed.party.clone();
    let keys = blocking(&s, move |b| b.party_keys(&party))
        .await?
        .map_err(broker_error)?;
    authenticate(&s, &signed, &keys, &method, &uri, b"").await?;
    // The entries of the collaborations this key is a party of; the rest redacted.
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let signer: Vec<VerifyingKey> = keys
        .into_iter()
        .filter(|k| {
            signed
                .verify(
                    std::slice::from_ref(k),
                    method.as_str(),
                    &path,
                    &s.info.tls_spki_sha256,
                    b"",
                )
                .is_ok()
        })
        .collect();
    let party = signed.party.clone();
    let log = blocking(&s, move |b| -> Result<String, BrokerError> {
        let mut visible = std::collections::HashSet::new();
        for key in &signer {
            visible.extend(b.manifests_of(&party, key)?);
        }
        b.export_audit_for(&visible)
    })
    .await?
    .map_err(broker_error)?;
    Ok(([(header::CONTENT_TYPE, "application/jsonl")], log))
}

/// Runs a broker until SIGINT or SIGTERM: binds, prints where it listens (and, in
/// simulation, a warning), then serves. The line `listening on https://ADDR` on stdout tells
/// scripts that it is ready.
pub fn run(config: Config) -> Result<(), StartError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
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
                "coffer-broker: WARNING: SIMULATION MODE. The evidence is signed by a key file \
                 on this host and protects nothing: the host can read every key this broker holds."
            );
        }
        if let Some(m) = service.sim_measurement() {
            eprintln!("coffer-broker: sim measurement {m}");
        }
        eprintln!(
            "coffer-broker: backend {}, audit key {}, TLS key sha256 {}",
            service.info().backend,
            service.info().audit_key,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn challengers_beyond_the_cap_are_told_busy_until_one_finishes() {
        let gate = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_ATTESTS));
        let mut held: Vec<_> = (0..MAX_CONCURRENT_ATTESTS)
            .map(|_| attest_permit(&gate).unwrap())
            .collect();
        let refused = attest_permit(&gate).unwrap_err();
        assert_eq!(refused.check, "busy");
        assert_eq!(refused.error, "unavailable");
        drop(held.pop());
        let _again = attest_permit(&gate).unwrap();
    }
}
