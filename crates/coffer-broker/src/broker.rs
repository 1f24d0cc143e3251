//! The broker's operations and its release decision.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use coffer_attest::{FailedCheck, UnixTime, Verified};
use coffer_crypto::SecretKey;
use coffer_manifest::{Manifest, ManifestHash, Predecessor, SignatureFile, Status, status};
use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::audit::{AuditEvent, AuditLog, SignedEntry};
use crate::error::{BrokerError, StoreError};
use crate::sealing::SealingKey;
use crate::store::{Store, StoredManifest};

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

#[derive(Debug)]
struct Inner {
    store: Store,
    audit: AuditLog,
    sealing: SealingKey,
}

/// The key broker: thread-safe, synchronous; one SQLite connection behind a mutex.
#[derive(Debug)]
pub struct Broker {
    inner: Mutex<Inner>,
    public_key: VerifyingKey,
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
        Ok(Self {
            inner: Mutex::new(Inner {
                store,
                audit,
                sealing,
            }),
            public_key,
        })
    }

    /// The broker's audit-log public key.
    pub fn public_key(&self) -> VerifyingKey {
        self.public_key
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, BrokerError> {
        self.inner.lock().map_err(|_| BrokerError::Poisoned)
    }

    /// Every audit entry, in order.
    pub fn audit_entries(&self) -> Result<Vec<SignedEntry>, BrokerError> {
        Ok(self.lock()?.store.audit_entries()?)
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

    /// Appends a worker's job receipt to the audit log as it came.
    pub fn record_receipt(
        &self,
        receipt: serde_json::Value,
        now: UnixTime,
    ) -> Result<SignedEntry, BrokerError> {
        let mut inner = self.lock()?;
        let Inner { store, audit, .. } = &mut *inner;
        Ok(store.append_audit(audit, now, AuditEvent::JobReceipt { receipt })?)
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
        let manifest = Manifest::from_yaml(yaml)?;
        let hash = manifest.hash();
        let mut inner = self.lock()?;
        let Inner { store, audit, .. } = &mut *inner;
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
        let mut events = vec![AuditEvent::ManifestSubmitted {
            hash: hash.to_string(),
        }];
        if active && !was_active {
            events.push(AuditEvent::ManifestActivated {
                hash: hash.to_string(),
            });
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
        Ok(reported)
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
        let mut inner = self.lock()?;
        let Inner {
            store,
            audit,
            sealing,
        } = &mut *inner;
        let stored = store
            .manifest(manifest_hash)?
            .ok_or(BrokerError::UnknownManifest(*manifest_hash))?;
        let manifest = Manifest::from_yaml(&stored.yaml)?;
        let ds = manifest
            .dataset(dataset)
            .ok_or_else(|| BrokerError::UnknownDataset(dataset.to_owned()))?;
        if ds.owner != uploader {
            return Err(BrokerError::NotOwner {
                party: uploader.to_owned(),
                dataset: dataset.to_owned(),
            });
        }
        let sealed = sealing.seal(
            &SealingKey::key_aad(manifest_hash, dataset),
            key.expose_secret(),
        )?;
        let event = AuditEvent::KeyUploaded {
            manifest: manifest_hash.to_string(),
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

    /// Releases the input keys of `computation` to `worker`, or refuses. Every outcome is
    /// audited; a refusal releases nothing.
    ///
    /// Checks, in order: the manifest is known; it names the computation; every owner of
    /// every input signed; it is active; `input_digests` names exactly the inputs, each with
    /// its pinned digest; the worker's claims meet the policy at `now`; every key is held.
    pub fn release(
        &self,
        manifest_hash: &ManifestHash,
        computation: &str,
        input_digests: &BTreeMap<String, String>,
        worker: &Verified,
        now: UnixTime,
    ) -> Result<BTreeMap<String, SecretKey>, Refusal> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| Refusal::Internal("broker state lock poisoned".into()))?;
        let Inner {
            store,
            audit,
            sealing,
        } = &mut *inner;
        let outcome = decide(
            store,
            sealing,
            manifest_hash,
            computation,
            input_digests,
            worker,
            now,
        );
        let event = match &outcome {
            Ok(keys) => AuditEvent::KeyReleased {
                manifest: manifest_hash.to_string(),
                computation: computation.to_owned(),
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
                manifest: manifest_hash.to_string(),
                computation: computation.to_owned(),
                reasons: refusal.reasons(),
            },
        };
        // Keys leave only once their release is on the record.
        store.append_audit(audit, now, event)?;
        outcome
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
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| Refusal::Internal("broker state lock poisoned".into()))?;
        if inner.store.record_nonce(party, nonce, expires_at, now)? {
            Ok(())
        } else {
            Err(Refusal::ReplayedNonce)
        }
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

fn decide(
    store: &Store,
    sealing: &SealingKey,
    manifest_hash: &ManifestHash,
    computation: &str,
    input_digests: &BTreeMap<String, String>,
    worker: &Verified,
    now: UnixTime,
) -> Result<BTreeMap<String, SecretKey>, Refusal> {
    let internal = |e: BrokerError| Refusal::Internal(e.to_string());
    let stored = store
        .manifest(manifest_hash)?
        .ok_or(Refusal::UnknownManifest)?;
    let manifest = Manifest::from_yaml(&stored.yaml).map_err(|e| internal(e.into()))?;
    if manifest.hash() != *manifest_hash {
        return Err(Refusal::Internal(
            "stored manifest does not match its hash".into(),
        ));
    }
    let comp = manifest
        .computation(computation)
        .ok_or(Refusal::UnknownComputation)?;
    let sigs = SignatureFile::from_json(&stored.signatures).map_err(|e| internal(e.into()))?;
    let st = status_in(store, &manifest, &sigs, 0).map_err(internal)?;
    if let Some(owner) = manifest
        .owners_of(comp)
        .into_iter()
        .find(|p| !st.signed_by.iter().any(|s| s == p.name()))
    {
        return Err(Refusal::OwnerNotSigned {
            party: owner.name().to_owned(),
        });
    }
    if !(stored.active && st.active) {
        return Err(Refusal::ManifestNotActive);
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
            store
                .key(manifest_hash, &ds.name)?
                .ok_or_else(|| Refusal::KeyMissing {
                    dataset: ds.name.clone(),
                })?;
        let bytes = sealing.open(&SealingKey::key_aad(manifest_hash, &ds.name), &sealed)?;
        let key = SecretKey::from_bytes(&bytes).map_err(|e| Refusal::Internal(e.to_string()))?;
        keys.insert(ds.name.clone(), key);
    }
    Ok(keys)
}
