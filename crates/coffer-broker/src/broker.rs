//! The broker's operations and its release decision.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};

use tokio::sync::oneshot;

use coffer_attest::{FailedCheck, UnixTime, Verified};
use coffer_crypto::SecretKey;
use coffer_manifest::{Manifest, ManifestHash, Predecessor, SignatureFile, Status, status};
use coffer_net::JobId;
use coffer_net::broker::ReleaseRequest;
use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::error::{BrokerError, StoreError};
use crate::sealing::SealingKey;
use crate::store::{Store, StoredManifest};
use coffer_net::audit::{AuditEvent, AuditLog, SignedEntry};

/// How many predecessors the broker follows when judging an update.
const MAX_CHAIN: usize = 64;

/// Why the broker refused to release keys. A refusal releases nothing and is audited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// No manifest with this hash.
    #[error("manifest is not known to this broker")]
    UnknownManifest,
    /// The manifest is not active (a signature is missing, or its predecessor is not active).
    #[error("manifest is not active")]
    ManifestNotActive,
    /// The manifest names no such computation.
    #[error("the manifest names no such computation")]
    UnknownComputation,
    /// An owner of an input did not sign the manifest.
    #[error("owner {party:?} of an input did not sign the manifest")]
    OwnerNotSigned {
        /// The owner.
        party: String,
    },
    /// A job input's digest is not the pinned one, or an input is missing or unexpected.
    #[error("input {dataset:?} does not match the manifest's pinned digest")]
    DigestMismatch {
        /// The dataset.
        dataset: String,
    },
    /// No key was uploaded for an input.
    #[error("no key held for input {dataset:?}")]
    KeyMissing {
        /// The dataset.
        dataset: String,
    },
    /// The worker's evidence does not meet the manifest's policy.
    #[error("worker appraisal failed: {}", join(.0))]
    Appraisal(Vec<FailedCheck>),
    /// A request nonce was already seen within the window.
    #[error("request nonce was already used")]
    ReplayedNonce,
    /// A request's time is outside the accepted window around now.
    #[error("request time {time} is outside {window_secs} s of now ({now})")]
    StaleRequest {
        /// The request's time.
        time: UnixTime,
        /// The broker's time.
        now: UnixTime,
        /// The window.
        window_secs: i64,
    },
    /// The release names no job, or a job for another manifest or computation.
    #[error("the release names a job for another manifest or computation")]
    JobMismatch,
    /// The job's signer is not a party of the manifest.
    #[error("the job's signer {party:?} is not a party of the manifest")]
    UnknownParty {
        /// The claimed signer.
        party: String,
    },
    /// The job's signature does not verify under the party's key in the manifest.
    #[error("the job's signature does not verify for party {party:?}")]
    JobSignature {
        /// The claimed signer.
        party: String,
    },
    /// An update of the manifest is active: it releases no key any more.
    #[error("the manifest was superseded by {by}")]
    ManifestSuperseded {
        /// The update's hash.
        by: String,
    },
    /// A party retired the manifest.
    #[error("the manifest was retired by {party:?}")]
    ManifestRetired {
        /// The party.
        party: String,
    },
    /// The owner revoked an input's key grant.
    #[error("the owner revoked the key of input {dataset:?}")]
    KeyRevoked {
        /// The dataset.
        dataset: String,
    },
    /// A receipt for a job whose keys this broker did not release (under that manifest).
    #[error("no key release is on record for the receipt's job")]
    UnknownJob,
    /// The receipt is not from the worker the job's keys went to.
    #[error("the receipt is not from the worker the job's keys were released to")]
    ReceiptSigner,
    /// The job's receipt is on record already.
    #[error("the job's receipt is on record already")]
    ReceiptExists,
    /// The broker could not decide (store or unsealing failure); nothing is released.
    #[error("broker error: {0}")]
    Internal(String),
}

fn join(checks: &[FailedCheck]) -> String {
    checks
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Refusal {
    /// The reasons as audited.
    pub fn reasons(&self) -> Vec<String> {
        match self {
            Self::Appraisal(checks) => checks.iter().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        }
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}

/// A manifest as the broker judges it, parsed and with its status, cached until any manifest
/// changes (an update can change what its successors need).
#[derive(Debug)]
struct Judged {
    manifest: Arc<Manifest>,
    status: Result<Status, String>,
    active: bool,
}

struct Inner {
    store: Store,
    audit: AuditLog,
    sealing: SealingKey,
    judged: HashMap<ManifestHash, Arc<Judged>>,
    party_keys: Option<HashMap<String, Vec<VerifyingKey>>>,
    parsed: Arc<ParsedManifests>,
}

/// Manifests the writer has parsed, by hash, for checks made before a request reaches the
/// writer. A hash names one manifest's content for ever, so an entry never goes stale: only
/// what the writer decides (status, marks, keys) can change, and that stays on the writer.
#[derive(Debug, Default)]
struct ParsedManifests(Mutex<HashMap<ManifestHash, Arc<Manifest>>>);

/// The most manifests [`ParsedManifests`] holds before it starts over.
const MAX_PARSED: usize = 4096;

impl ParsedManifests {
    fn get(&self, hash: &ManifestHash) -> Option<Arc<Manifest>> {
        self.0.lock().ok()?.get(hash).cloned()
    }

    fn put(&self, hash: ManifestHash, manifest: &Arc<Manifest>) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= MAX_PARSED {
                map.clear();
            }
            map.insert(hash, Arc::clone(manifest));
        }
    }
}

impl Inner {
    fn forget_cache(&mut self) {
        self.judged.clear();
        self.party_keys = None;
    }

    fn judged(&mut self, hash: &ManifestHash) -> Result<Option<Arc<Judged>>, BrokerError> {
        if let Some(j) = self.judged.get(hash) {
            return Ok(Some(Arc::clone(j)));
        }
        let Some(stored) = self.store.manifest(hash)? else {
            return Ok(None);
        };
        let manifest = Manifest::from_yaml(&stored.yaml)?;
        if manifest.hash() != *hash {
            return Err(StoreError::Malformed(format!(
                "stored manifest {hash} does not match its hash"
            ))
            .into());
        }
        let sigs = SignatureFile::from_json(&stored.signatures)?;
        let status = status_in(&self.store, &manifest, &sigs, 0).map_err(|e| e.to_string());
        let manifest = Arc::new(manifest);
        self.parsed.put(*hash, &manifest);
        let judged = Arc::new(Judged {
            manifest,
            status,
            active: stored.active,
        });
        self.judged.insert(*hash, Arc::clone(&judged));
        Ok(Some(judged))
    }
}

/// Work for the writer thread: runs against the state inside the open batch and returns what
/// to do once the batch is committed (or failed to commit).
type Job = Box<dyn FnOnce(&mut Inner) -> Done + Send>;
type Done = Box<dyn FnOnce(Result<(), String>) + Send>;

/// The most operations one batch commits together.
const MAX_BATCH: usize = 512;

/// The key broker. One writer thread owns the store and runs every operation; operations that
/// arrive together are committed together (group commit: one WAL sync per batch), and no
/// caller hears of its operation (no key leaves, no upload is acknowledged) before the batch
/// holding it, and its audit entry, is durable.
#[derive(Debug)]
pub struct Broker {
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
    public_key: VerifyingKey,
    parsed: Arc<ParsedManifests>,
}

impl Drop for Broker {
    /// Waits for the writer to finish what it has and close the store, so that a broker
    /// reopened on the same directory finds everything.
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl Broker {
    /// Opens the broker in `dir`: `broker.sqlite`, `sealing.key` and `broker-signing.key`,
    /// created if absent.
    pub fn open(dir: &Path) -> Result<Self, BrokerError> {
        let store = Store::open(dir)?;
        let sealing = SealingKey::load_or_create(&dir.join("sealing.key"))?;
        let signing = crate::keyfile::load_or_create(&dir.join("broker-signing.key"))?;
        let audit = AuditLog::new(SigningKey::from_bytes(&signing));
        let public_key = audit.public_key();
        let parsed = Arc::new(ParsedManifests::default());
        let inner = Inner {
            store,
            audit,
            sealing,
            judged: HashMap::new(),
            party_keys: None,
            parsed: Arc::clone(&parsed),
        };
        let (jobs, rx) = mpsc::channel::<Job>();
        let writer = std::thread::Builder::new()
            .name("coffer-broker-writer".into())
            .spawn(move || writer(inner, &rx))
            .map_err(|e| BrokerError::Stopped(format!("starting the writer thread: {e}")))?;
        Ok(Self {
            jobs: Some(jobs),
            writer: Some(writer),
            public_key,
            parsed,
        })
    }

    /// The job's id if its party signature already checks out against the party's key in
    /// the manifest `hash` (when the writer has parsed it): checked here, on the caller's
    /// thread, so the writer only decides and records. `None` leaves the whole check to the
    /// writer, which then refuses a bad signature as before.
    fn prejudge(&self, hash: &ManifestHash, ask: &ReleaseRequest) -> Option<JobId> {
        let spec = &ask.job.spec;
        if spec.manifest != *hash {
            return None;
        }
        let manifest = self.parsed.get(hash)?;
        let party = manifest.party(&spec.party)?;
        ask.job.verified_id(&party.key).ok()
    }

    /// The broker's audit-log public key.
    pub fn public_key(&self) -> VerifyingKey {
        self.public_key
    }

    /// Queues `f` for the writer thread; the receiver yields its result once committed.
    fn enqueue<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Inner) -> R + Send + 'static,
    ) -> Result<oneshot::Receiver<Result<R, String>>, BrokerError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |inner| {
            let r = f(inner);
            Box::new(move |committed| {
                let _ = tx.send(committed.map(|()| r));
            })
        });
        self.jobs
            .as_ref()
            .ok_or_else(|| BrokerError::Stopped("the broker is closing".into()))?
            .send(job)
            .map_err(|_| BrokerError::Stopped("the writer thread has stopped".into()))?;
        Ok(rx)
    }

    /// Runs `f` on the writer thread and waits for its batch to commit.
    fn exec<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Inner) -> R + Send + 'static,
    ) -> Result<R, BrokerError> {
        self.enqueue(f)?
            .blocking_recv()
            .map_err(|_| BrokerError::Stopped("the writer thread has stopped".into()))?
            .map_err(BrokerError::Commit)
    }

    /// As [`exec`](Self::exec), awaiting instead of blocking.
    async fn exec_async<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Inner) -> R + Send + 'static,
    ) -> Result<R, BrokerError> {
        self.enqueue(f)?
            .await
            .map_err(|_| BrokerError::Stopped("the writer thread has stopped".into()))?
            .map_err(BrokerError::Commit)
    }

    /// Every audit entry, in order.
    pub fn audit_entries(&self) -> Result<Vec<SignedEntry>, BrokerError> {
        self.exec(|inner| inner.store.audit_entries())?
            .map_err(Into::into)
    }

    /// The audit log as JSON lines, one entry per line.
    pub fn export_audit(&self) -> Result<String, BrokerError> {
        let mut out = String::new();
        for entry in self.audit_entries()? {
            out.push_str(
                &entry
                    .to_json_line()
                    .map_err(|e| StoreError::Malformed(e.to_string()))?,
            );
            out.push('\n');
        }
        Ok(out)
    }

    /// The log as a reader sees it who may read the entries about the manifests in
    /// `visible`: every other entry is redacted ([`AuditLog::redact`]), so the whole chain
    /// still verifies and nothing of another collaboration's content is shown.
    pub fn export_audit_for(
        &self,
        visible: &std::collections::HashSet<ManifestHash>,
    ) -> Result<String, BrokerError> {
        let entries = self.audit_entries()?;
        let visible = visible.clone();
        let lines = self.exec(move |inner| -> Result<String, BrokerError> {
            let mut out = String::new();
            for entry in entries {
                let shown = entry
                    .entry
                    .event
                    .manifest()
                    .is_some_and(|m| visible.contains(&m));
                let line = if shown {
                    entry
                } else {
                    inner
                        .audit
                        .redact(&entry)
                        .map_err(|e| StoreError::Malformed(e.to_string()))?
                };
                out.push_str(
                    &line
                        .to_json_line()
                        .map_err(|e| StoreError::Malformed(e.to_string()))?,
                );
                out.push('\n');
            }
            Ok(out)
        })??;
        Ok(lines)
    }

    /// The manifests held in which `party` appears with signing key `key`.
    pub fn manifests_of(
        &self,
        party: &str,
        key: &VerifyingKey,
    ) -> Result<std::collections::HashSet<ManifestHash>, BrokerError> {
        let (party, key) = (party.to_owned(), *key);
        self.exec(move |inner| -> Result<_, BrokerError> {
            let mut out = std::collections::HashSet::new();
            for yaml in inner.store.manifest_yamls()? {
                let m = Manifest::from_yaml(&yaml)?;
                if m.party(&party).is_some_and(|p| p.key == key) {
                    out.insert(m.hash());
                }
            }
            Ok(out)
        })?
    }

    /// Appends a worker's job receipt to the audit log as it came.
    pub fn record_receipt(
        &self,
        job: &JobId,
        manifest: &ManifestHash,
        worker: &str,
        receipt: serde_json::Value,
        now: UnixTime,
    ) -> Result<SignedEntry, Refusal> {
        let (job, manifest, worker) = (*job, manifest.to_string(), worker.to_owned());
        self.exec(move |inner| -> Result<SignedEntry, Refusal> {
            match inner.store.release_of(&job)? {
                None => return Err(Refusal::UnknownJob),
                Some((m, _, _)) if m != manifest => return Err(Refusal::UnknownJob),
                Some((_, w, _)) if w != worker => return Err(Refusal::ReceiptSigner),
                Some((_, _, true)) => return Err(Refusal::ReceiptExists),
                Some((_, _, false)) => {}
            }
            let Inner { store, audit, .. } = inner;
            let entry = store.append_audit(audit, now, AuditEvent::JobReceipt { receipt })?;
            store.record_receipt_seq(&job, entry.entry.seq)?;
            Ok(entry)
        })
        .map_err(|e| Refusal::Internal(e.to_string()))?
    }

    /// The signing keys `party` has in any manifest this broker holds (to check its signed
    /// requests).
    pub fn party_keys(&self, party: &str) -> Result<Vec<VerifyingKey>, BrokerError> {
        let party = party.to_owned();
        self.exec(move |inner| -> Result<Vec<VerifyingKey>, BrokerError> {
            if inner.party_keys.is_none() {
                let mut map: HashMap<String, Vec<VerifyingKey>> = HashMap::new();
                for yaml in inner.store.manifest_yamls()? {
                    let m = Manifest::from_yaml(&yaml)?;
                    for p in m.parties() {
                        let keys = map.entry(p.name().to_owned()).or_default();
                        if !keys.contains(&p.key) {
                            keys.push(p.key);
                        }
                    }
                }
                inner.party_keys = Some(map);
            }
            Ok(inner
                .party_keys
                .as_ref()
                .and_then(|m| m.get(&party))
                .cloned()
                .unwrap_or_default())
        })?
    }

    /// The manifest with this hash, if held, and whether it is active.
    pub fn manifest(&self, hash: &ManifestHash) -> Result<Option<(Manifest, bool)>, BrokerError> {
        let hash = *hash;
        self.exec(move |inner| {
            Ok(inner
                .judged(&hash)?
                .map(|j| (Manifest::clone(&j.manifest), j.active)))
        })?
    }

    /// Parses and validates a manifest, checks `sigs` (merged with any already held), stores
    /// both, and marks the manifest active if its status says so. An update's predecessor must
    /// already be held.
    pub fn submit_manifest(
        &self,
        yaml: &str,
        sigs: &SignatureFile,
        now: UnixTime,
    ) -> Result<Status, BrokerError> {
        let yaml = yaml.to_owned();
        let sigs = sigs.clone();
        self.exec(move |inner| {
            let r = submit_manifest_in(inner, &yaml, &sigs, now);
            inner.forget_cache();
            r
        })?
    }

    /// Revokes the owner's key grant for `dataset` under the manifest: the sealed key is
    /// deleted, the revocation audited, and later releases are refused (`key_revoked`).
    /// `party` must already be authenticated by the caller.
    pub fn revoke_key(
        &self,
        manifest_hash: &ManifestHash,
        dataset: &str,
        party: &str,
        now: UnixTime,
    ) -> Result<(), BrokerError> {
        let (hash, dataset, party) = (*manifest_hash, dataset.to_owned(), party.to_owned());
        self.exec(move |inner| revoke_key_in(inner, &hash, &dataset, &party, now))?
    }

    /// Retires the manifest on behalf of `party` (any party of it, already authenticated):
    /// audited, and later releases are refused (`manifest_retired`).
    pub fn retire_manifest(
        &self,
        manifest_hash: &ManifestHash,
        party: &str,
        now: UnixTime,
    ) -> Result<(), BrokerError> {
        let (hash, party) = (*manifest_hash, party.to_owned());
        self.exec(move |inner| {
            let r = retire_manifest_in(inner, &hash, &party, now);
            inner.forget_cache();
            r
        })?
    }

    /// Stores `key` for `dataset` of the manifest, sealed; only the dataset's owner may.
    /// `uploader` must already be authenticated by the caller (attested channel, signed
    /// request).
    pub fn upload_key(
        &self,
        manifest_hash: &ManifestHash,
        dataset: &str,
        uploader: &str,
        key: &SecretKey,
        now: UnixTime,
    ) -> Result<(), BrokerError> {
        let (hash, dataset, uploader, key) = (
            *manifest_hash,
            dataset.to_owned(),
            uploader.to_owned(),
            key.clone(),
        );
        self.exec(move |inner| upload_key_in(inner, &hash, &dataset, &uploader, &key, now))?
    }

    /// Releases the input keys of `computation` to `worker`, or refuses. Every outcome is
    /// audited; a refusal releases nothing.
    ///
    /// Checks, in order: the manifest is known; it names the computation; every owner of
    /// every input signed; it is active; `input_digests` names exactly the inputs, each with
    /// its pinned digest; the worker's claims meet the policy at `now`; every key is held.
    pub fn release(
        &self,
        manifest_hash: &ManifestHash,
        ask: &ReleaseRequest,
        worker: &Verified,
        window_secs: i64,
        now: UnixTime,
    ) -> Result<BTreeMap<String, SecretKey>, Refusal> {
        let job = release_job(
            manifest_hash,
            (ask.clone(), self.prejudge(manifest_hash, ask)),
            (worker.clone(), String::new()),
            window_secs,
            now,
        );
        self.exec(job)
            .map_err(|e| Refusal::Internal(e.to_string()))?
    }

    /// As [`release`](Self::release), for async callers.
    /// `worker_key` is the hex SHA-256 of the worker's TLS key (its certificate's SPKI): the
    /// job's receipt must later be signed by that key.
    pub async fn release_async(
        &self,
        manifest_hash: &ManifestHash,
        ask: ReleaseRequest,
        worker: Result<Verified, Vec<FailedCheck>>,
        worker_key: String,
        window_secs: i64,
        now: UnixTime,
    ) -> Result<BTreeMap<String, SecretKey>, Refusal> {
        let hash = *manifest_hash;
        let computation = ask.computation.clone();
        let job: Box<dyn FnOnce(&mut Inner) -> _ + Send> = match worker {
            Ok(v) => {
                let pre = self.prejudge(&hash, &ask);
                Box::new(release_job(
                    &hash,
                    (ask, pre),
                    (v, worker_key),
                    window_secs,
                    now,
                ))
            }
            // Evidence that did not verify: refused, and on the record like any refusal.
            Err(failed) => Box::new(move |inner: &mut Inner| {
                let refusal = Refusal::Appraisal(failed);
                let Inner { store, audit, .. } = inner;
                store.append_audit(
                    audit,
                    now,
                    AuditEvent::KeyRefused {
                        manifest: hash,
                        computation,
                        reasons: refusal.reasons(),
                    },
                )?;
                Err(refusal)
            }),
        };
        self.exec_async(job)
            .await
            .map_err(|e| Refusal::Internal(e.to_string()))?
    }

    /// Replay protection for signed requests: refuses a request time more than `window_secs`
    /// from `now`, and a nonce `party` already used within the window; records the nonce.
    pub fn check_request_nonce(
        &self,
        party: &str,
        nonce: &str,
        time: UnixTime,
        now: UnixTime,
        window_secs: i64,
    ) -> Result<(), Refusal> {
        let stale = Refusal::StaleRequest {
            time,
            now,
            window_secs,
        };
        let fresh = window_secs >= 0
            && now
                .checked_sub(time)
                .is_some_and(|d| d.checked_abs().is_some_and(|d| d <= window_secs));
        if !fresh {
            return Err(stale);
        }
        let expires_at = time.checked_add(window_secs).ok_or(stale)?;
        let (party, nonce) = (party.to_owned(), nonce.to_owned());
        let recorded = self
            .exec(move |inner| inner.store.record_nonce(&party, &nonce, expires_at, now))
            .map_err(|e| Refusal::Internal(e.to_string()))??;
        if recorded {
            Ok(())
        } else {
            Err(Refusal::ReplayedNonce)
        }
    }
}

/// The writer thread: takes jobs as they come, runs every job already waiting in the same
/// batch, commits once, then answers them all.
fn writer(mut inner: Inner, rx: &mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let began = inner.store.begin();
        let mut done = Vec::with_capacity(16);
        if let Err(e) = began {
            // Nothing can be written: answer this job with the failure, keep serving.
            let d = first(&mut inner);
            inner.store.rollback();
            inner.forget_cache();
            d(Err(e.to_string()));
            continue;
        }
        done.push(first(&mut inner));
        while done.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => done.push(job(&mut inner)),
                Err(_) => break,
            }
        }
        let committed = inner.store.commit().map_err(|e| e.to_string());
        if committed.is_err() {
            inner.store.rollback();
            inner.forget_cache();
        }
        for d in done {
            d(committed.clone());
        }
    }
}

fn submit_manifest_in(
    inner: &mut Inner,
    yaml: &str,
    sigs: &SignatureFile,
    now: UnixTime,
) -> Result<Status, BrokerError> {
    let manifest = Manifest::from_yaml(yaml)?;
    let hash = manifest.hash();
    let Inner { store, audit, .. } = inner;
    let existing = store.manifest(&hash)?;
    let mut merged = match &existing {
        Some(stored) => SignatureFile::from_json(&stored.signatures)?,
        None => SignatureFile::new(hash),
    };
    // Only signatures over this manifest are kept; others are reported by `status`.
    if sigs.manifest == hash {
        for entry in &sigs.signatures {
            if !merged.signatures.contains(entry) {
                merged.signatures.push(entry.clone());
            }
        }
    }
    let st = status_in(store, &manifest, &merged, 0)?;
    let reported = if sigs.manifest == hash {
        st.clone()
    } else {
        status_in(store, &manifest, sigs, 0)?
    };
    let was_active = existing.as_ref().is_some_and(|s| s.active);
    let active = st.active || was_active;
    let mut events = vec![AuditEvent::ManifestSubmitted { hash }];
    let mut supersedes = None;
    if active && !was_active {
        events.push(AuditEvent::ManifestActivated { hash });
        // An update active under its predecessor's governance retires the predecessor.
        if let Some(pred) = manifest.predecessor() {
            events.push(AuditEvent::ManifestSuperseded {
                hash: pred,
                by: hash,
            });
            supersedes = Some(pred);
        }
    }
    let record = StoredManifest {
        hash,
        yaml: existing
            .as_ref()
            .map_or_else(|| yaml.to_owned(), |s| s.yaml.clone()),
        signatures: merged.to_json()?,
        active,
        submitted_at: existing.as_ref().map_or(now, |s| s.submitted_at),
    };
    store.put_manifest(audit, now, &record, events)?;
    if let Some(pred) = supersedes {
        store.mark(&pred.to_string(), SUPERSEDED, &hash.to_string())?;
    }
    Ok(reported)
}

const SUPERSEDED: &str = "superseded";
const RETIRED: &str = "retired";
const REVOKED: &str = "revoked";

fn key_subject(manifest: &ManifestHash, dataset: &str) -> String {
    format!("key:{manifest}:{dataset}")
}

fn revoke_key_in(
    inner: &mut Inner,
    manifest_hash: &ManifestHash,
    dataset: &str,
    party: &str,
    now: UnixTime,
) -> Result<(), BrokerError> {
    let judged = inner
        .judged(manifest_hash)?
        .ok_or(BrokerError::UnknownManifest(*manifest_hash))?;
    let ds = judged
        .manifest
        .dataset(dataset)
        .ok_or_else(|| BrokerError::UnknownDataset(dataset.to_owned()))?;
    if ds.owner != party {
        return Err(BrokerError::NotOwner {
            party: party.to_owned(),
            dataset: dataset.to_owned(),
        });
    }
    let Inner { store, audit, .. } = inner;
    let subject = key_subject(manifest_hash, dataset);
    if store.mark_of(&subject)?.is_some() {
        return Err(BrokerError::AlreadyDone(format!(
            "the key of {dataset} under {manifest_hash} is revoked already"
        )));
    }
    store.delete_key(manifest_hash, dataset)?;
    store.mark(&subject, REVOKED, party)?;
    store.append_audit(
        audit,
        now,
        AuditEvent::KeyRevoked {
            manifest: *manifest_hash,
            dataset: dataset.to_owned(),
            party: party.to_owned(),
        },
    )?;
    Ok(())
}

fn retire_manifest_in(
    inner: &mut Inner,
    manifest_hash: &ManifestHash,
    party: &str,
    now: UnixTime,
) -> Result<(), BrokerError> {
    let judged = inner
        .judged(manifest_hash)?
        .ok_or(BrokerError::UnknownManifest(*manifest_hash))?;
    if judged.manifest.party(party).is_none() {
        return Err(BrokerError::NotAParty(party.to_owned()));
    }
    let Inner { store, audit, .. } = inner;
    let subject = manifest_hash.to_string();
    if let Some((state, _)) = store.mark_of(&subject)? {
        return Err(BrokerError::AlreadyDone(format!(
            "manifest {manifest_hash} is {state} already"
        )));
    }
    store.mark(&subject, RETIRED, party)?;
    store.append_audit(
        audit,
        now,
        AuditEvent::ManifestRetired {
            hash: *manifest_hash,
            party: party.to_owned(),
        },
    )?;
    Ok(())
}

fn upload_key_in(
    inner: &mut Inner,
    manifest_hash: &ManifestHash,
    dataset: &str,
    uploader: &str,
    key: &SecretKey,
    now: UnixTime,
) -> Result<(), BrokerError> {
    let judged = inner
        .judged(manifest_hash)?
        .ok_or(BrokerError::UnknownManifest(*manifest_hash))?;
    let ds = judged
        .manifest
        .dataset(dataset)
        .ok_or_else(|| BrokerError::UnknownDataset(dataset.to_owned()))?;
    if ds.owner != uploader {
        return Err(BrokerError::NotOwner {
            party: uploader.to_owned(),
            dataset: dataset.to_owned(),
        });
    }
    if inner
        .store
        .mark_of(&key_subject(manifest_hash, dataset))?
        .is_some()
    {
        return Err(BrokerError::AlreadyDone(format!(
            "the key of {dataset} under {manifest_hash} was revoked; grant it under a new manifest"
        )));
    }
    let Inner {
        store,
        audit,
        sealing,
        ..
    } = inner;
    let sealed = sealing.seal(
        &SealingKey::key_aad(manifest_hash, dataset),
        key.expose_secret(),
    )?;
    let event = AuditEvent::KeyUploaded {
        manifest: *manifest_hash,
        dataset: dataset.to_owned(),
        party: uploader.to_owned(),
    };
    if store.put_key(audit, now, manifest_hash, dataset, &sealed, uploader, event)? {
        Ok(())
    } else {
        Err(BrokerError::KeyExists {
            manifest: *manifest_hash,
            dataset: dataset.to_owned(),
        })
    }
}

type ReleaseOutcome = Result<BTreeMap<String, SecretKey>, Refusal>;

/// The writer's half of a release. `pre` is the job's id when its signature was already
/// checked against this manifest ([`Broker::prejudge`]).
fn release_job(
    manifest_hash: &ManifestHash,
    (ask, pre): (ReleaseRequest, Option<JobId>),
    (worker, worker_key): (Verified, String),
    window_secs: i64,
    now: UnixTime,
) -> impl FnOnce(&mut Inner) -> ReleaseOutcome + Send + 'static {
    let hash = *manifest_hash;
    move |inner: &mut Inner| {
        let computation = ask.computation.clone();
        let job = pre.or_else(|| ask.job.id().ok());
        let outcome = decide(inner, &hash, (&ask, pre), &worker, window_secs, now);
        let event = match &outcome {
            Ok(keys) => AuditEvent::KeyReleased {
                job,
                manifest: hash,
                computation: computation.clone(),
                datasets: keys.keys().cloned().collect(),
                worker_tee: worker.claims.tee().to_string(),
                worker_measurements: worker
                    .claims
                    .measurements()
                    .into_iter()
                    .map(|(k, v)| (k, hex::encode(v)))
                    .collect(),
            },
            Err(refusal) => AuditEvent::KeyRefused {
                manifest: hash,
                computation: computation.clone(),
                reasons: refusal.reasons(),
            },
        };
        // Keys leave only once their release is on the record: the entry is in this batch,
        // and the caller hears of the keys only after the batch commits.
        let Inner { store, audit, .. } = inner;
        let entry = store.append_audit(audit, now, event)?;
        if let (Ok(_), Some(job)) = (&outcome, &job) {
            store.record_release(job, &hash, entry.entry.seq, &worker_key)?;
        }
        outcome
    }
}

/// The status of `manifest` with `sigs`, judging an update by its stored predecessor chain.
fn status_in(
    store: &Store,
    manifest: &Manifest,
    sigs: &SignatureFile,
    depth: usize,
) -> Result<Status, BrokerError> {
    let Some(pred_hash) = manifest.predecessor() else {
        return Ok(status(manifest, sigs, None)?);
    };
    if depth >= MAX_CHAIN {
        return Err(BrokerError::ChainTooLong(MAX_CHAIN));
    }
    let stored = store
        .manifest(&pred_hash)?
        .ok_or(BrokerError::UnknownPredecessor(pred_hash))?;
    let pred = Manifest::from_yaml(&stored.yaml)?;
    let pred_sigs = SignatureFile::from_json(&stored.signatures)?;
    let pred_status = status_in(store, &pred, &pred_sigs, depth.saturating_add(1))?;
    Ok(status(
        manifest,
        sigs,
        Some(Predecessor {
            manifest: &pred,
            status: &pred_status,
        }),
    )?)
}

/// The party-signed job of a release: for this manifest and computation, signed by a party of
/// the manifest, fresh. Returns its id and when it may be forgotten. `pre` is the id when the
/// signature was already checked against this manifest's party key.
fn judge_job(
    manifest: &Manifest,
    (ask, pre): (&ReleaseRequest, Option<JobId>),
    window_secs: i64,
    now: UnixTime,
) -> Result<(JobId, i64), Refusal> {
    let spec = &ask.job.spec;
    if spec.manifest != manifest.hash() || spec.computation != ask.computation {
        return Err(Refusal::JobMismatch);
    }
    let party = manifest
        .party(&spec.party)
        .ok_or_else(|| Refusal::UnknownParty {
            party: spec.party.clone(),
        })?;
    let id = match pre {
        Some(id) => id,
        None => ask
            .job
            .verified_id(&party.key)
            .map_err(|_| Refusal::JobSignature {
                party: spec.party.clone(),
            })?,
    };
    let stale = Refusal::StaleRequest {
        time: spec.time,
        now,
        window_secs,
    };
    let fresh = window_secs >= 0
        && now
            .checked_sub(spec.time)
            .and_then(i64::checked_abs)
            .is_some_and(|d| d <= window_secs);
    if !fresh {
        return Err(stale);
    }
    let expires_at = spec.time.checked_add(window_secs).ok_or(stale)?;
    Ok((id, expires_at))
}

fn decide(
    inner: &mut Inner,
    manifest_hash: &ManifestHash,
    (ask, pre): (&ReleaseRequest, Option<JobId>),
    worker: &Verified,
    window_secs: i64,
    now: UnixTime,
) -> Result<BTreeMap<String, SecretKey>, Refusal> {
    let internal = |e: BrokerError| Refusal::Internal(e.to_string());
    let input_digests = &ask.inputs;
    let judged = inner
        .judged(manifest_hash)
        .map_err(internal)?
        .ok_or(Refusal::UnknownManifest)?;
    let manifest = &judged.manifest;
    let comp = manifest
        .computation(&ask.computation)
        .ok_or(Refusal::UnknownComputation)?;
    let (job_id, job_expires) = judge_job(manifest, (ask, pre), window_secs, now)?;
    let st = judged
        .status
        .as_ref()
        .map_err(|e| Refusal::Internal(e.clone()))?;
    if let Some(owner) = manifest
        .owners_of(comp)
        .into_iter()
        .find(|p| !st.signed_by.iter().any(|s| s == p.name()))
    {
        return Err(Refusal::OwnerNotSigned {
            party: owner.name().to_owned(),
        });
    }
    if !(judged.active && st.active) {
        return Err(Refusal::ManifestNotActive);
    }
    match inner.store.mark_of(&manifest_hash.to_string())? {
        Some((state, by)) if state == SUPERSEDED => {
            return Err(Refusal::ManifestSuperseded { by });
        }
        Some((_, by)) => return Err(Refusal::ManifestRetired { party: by }),
        None => {}
    }
    for ds in manifest.input_datasets(comp) {
        if inner
            .store
            .mark_of(&key_subject(manifest_hash, &ds.name))?
            .is_some()
        {
            return Err(Refusal::KeyRevoked {
                dataset: ds.name.clone(),
            });
        }
    }
    let inputs = manifest.input_datasets(comp);
    for ds in &inputs {
        if input_digests.get(&ds.name) != Some(&ds.digest) {
            return Err(Refusal::DigestMismatch {
                dataset: ds.name.clone(),
            });
        }
    }
    if let Some(extra) = input_digests
        .keys()
        .find(|name| !inputs.iter().any(|d| &d.name == *name))
    {
        return Err(Refusal::DigestMismatch {
            dataset: extra.clone(),
        });
    }
    let failed = manifest.policy().check(worker, now);
    if !failed.is_empty() {
        return Err(Refusal::Appraisal(failed));
    }
    let mut keys = BTreeMap::new();
    for ds in inputs {
        let (sealed, _uploader) =
            inner
                .store
                .key(manifest_hash, &ds.name)?
                .ok_or_else(|| Refusal::KeyMissing {
                    dataset: ds.name.clone(),
                })?;
        let bytes = inner
            .sealing
            .open(&SealingKey::key_aad(manifest_hash, &ds.name), &sealed)?;
        let key = SecretKey::from_bytes(&bytes).map_err(|e| Refusal::Internal(e.to_string()))?;
        keys.insert(ds.name.clone(), key);
    }
    // Everything passed: the job id is spent with this decision, in the same transaction as
    // its audit entry, so a job gets keys once.
    let scope = format!("job:{manifest_hash}");
    if !inner
        .store
        .record_nonce(&scope, &job_id.to_string(), job_expires, now)?
    {
        return Err(Refusal::ReplayedNonce);
    }
    Ok(keys)
}
