//! The audit log: append-only entries, each naming the SHA-256 of the previous entry's
//! canonical bytes and signed with the broker's Ed25519 key.

use std::collections::BTreeMap;
use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{JobId, ManifestHash};

/// Domain separation for audit-entry signatures.
pub const AUDIT_DOMAIN: &[u8] = b"coffer-broker-audit-entry-v1\0";
/// Domain separation for the signature over a redacted entry: its seq, previous hash and hash.
pub const REDACTED_DOMAIN: &[u8] = b"coffer-broker-audit-redacted-v1\0";

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuditEvent {
    /// A manifest (or new signatures for it) was submitted.
    ManifestSubmitted {
        /// `sha256:<hex>` of the manifest.
        hash: ManifestHash,
    },
    /// A manifest became active.
    ManifestActivated {
        /// `sha256:<hex>` of the manifest.
        hash: ManifestHash,
    },
    /// A data owner uploaded a dataset's key.
    KeyUploaded {
        /// The manifest hash.
        manifest: ManifestHash,
        /// The dataset.
        dataset: String,
        /// The uploading party.
        party: String,
    },
    /// Keys were released to a worker.
    KeyReleased {
        /// The manifest hash.
        manifest: ManifestHash,
        /// The computation.
        computation: String,
        /// The datasets whose keys were released.
        datasets: Vec<String>,
        /// The worker's TEE kind: `sim` marks a release that rests on simulated evidence,
        /// which proves nothing.
        worker_tee: String,
        /// The worker's measurements, `name → hex`.
        worker_measurements: BTreeMap<String, String>,
        /// The party-signed job the keys were released for; its receipt, when the worker
        /// hands it in, is a `job_receipt` entry naming the same job.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        job: Option<JobId>,
    },
    /// A release was refused.
    KeyRefused {
        /// The manifest hash as requested.
        manifest: ManifestHash,
        /// The computation as requested.
        computation: String,
        /// Why.
        reasons: Vec<String>,
    },
    /// An update became active under its predecessor's governance: the predecessor releases
    /// no key from now on.
    ManifestSuperseded {
        /// The superseded manifest.
        hash: ManifestHash,
        /// The update that superseded it.
        by: ManifestHash,
    },
    /// A party of the manifest retired it: it releases no key from now on.
    ManifestRetired {
        /// The retired manifest.
        hash: ManifestHash,
        /// The party that retired it.
        party: String,
    },
    /// A dataset's owner revoked its key grant under a manifest; the sealed key is deleted.
    KeyRevoked {
        /// The manifest hash.
        manifest: ManifestHash,
        /// The dataset.
        dataset: String,
        /// The owner.
        party: String,
    },
    /// A worker's job receipt, kept as it came.
    JobReceipt {
        /// The receipt.
        receipt: serde_json::Value,
    },
    /// Never stored: an entry about a collaboration the reader is not a party of, as the
    /// broker exports it to that reader. It keeps the entry's place in the chain (its hash)
    /// and nothing of its content; its time is zero. The broker signs (seq, prev_hash, hash).
    Redacted {
        /// Hex SHA-256 of the hidden entry's canonical bytes.
        hash: String,
    },
}

impl AuditEvent {
    /// The manifest an event is about (`sha256:<hex>`), if it names one.
    pub fn manifest(&self) -> Option<ManifestHash> {
        match self {
            Self::ManifestSubmitted { hash }
            | Self::ManifestActivated { hash }
            | Self::ManifestSuperseded { hash, .. }
            | Self::ManifestRetired { hash, .. } => Some(*hash),
            Self::KeyUploaded { manifest, .. }
            | Self::KeyReleased { manifest, .. }
            | Self::KeyRefused { manifest, .. }
            | Self::KeyRevoked { manifest, .. } => Some(*manifest),
            Self::JobReceipt { receipt } => receipt
                .get("receipt")
                .and_then(|r| r.get("manifest"))
                .and_then(|m| m.as_str())
                .and_then(|m| m.parse().ok()),
            Self::Redacted { .. } => None,
        }
    }
}

/// One audit entry. Its canonical bytes are its JSON in this field order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// Position in the log, from 1.
    pub seq: u64,
    /// Hex SHA-256 of the previous entry's canonical bytes; 64 zeros for the first.
    pub prev_hash: String,
    /// Unix time of the event.
    pub time: i64,
    /// What happened.
    pub event: AuditEvent,
}

impl AuditEntry {
    /// The bytes that are hashed and signed.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, AuditError> {
        serde_json::to_vec(self).map_err(|e| AuditError::Encoding(e.to_string()))
    }

    /// Hex SHA-256 of the canonical bytes: what the next entry names as `prev_hash`.
    pub fn hash_hex(&self) -> Result<String, AuditError> {
        Ok(hex::encode(Sha256::digest(self.canonical_bytes()?)))
    }
}

/// An entry with the broker's signature (hex) over `AUDIT_DOMAIN || canonical bytes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedEntry {
    /// The entry.
    pub entry: AuditEntry,
    /// Hex Ed25519 signature.
    pub signature: String,
}

impl SignedEntry {
    /// One JSON line (without the newline).
    pub fn to_json_line(&self) -> Result<String, AuditError> {
        serde_json::to_string(self).map_err(|e| AuditError::Encoding(e.to_string()))
    }

    /// Parses one JSON line.
    pub fn from_json_line(line: &str) -> Result<Self, AuditError> {
        serde_json::from_str(line).map_err(|e| AuditError::Encoding(e.to_string()))
    }
}

/// Why an audit log does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// An entry is not where its sequence number says: one was removed or reordered.
    #[error("entry at position {position} has seq {found}: an entry was removed or reordered")]
    Sequence {
        /// The expected seq.
        position: u64,
        /// The seq found.
        found: u64,
    },
    /// An entry's `prev_hash` does not match the entry before it.
    #[error("entry {seq} does not chain to the entry before it")]
    Chain {
        /// The entry's seq.
        seq: u64,
    },
    /// An entry's signature does not verify: it was edited or not signed by this broker.
    #[error("entry {seq} has a bad signature: edited, or not from this broker")]
    Signature {
        /// The entry's seq.
        seq: u64,
    },
    /// An entry does not encode or decode.
    #[error("audit entry encoding: {0}")]
    Encoding(String),
    /// The log is shorter than a head seen before: entries were cut off the end.
    #[error("log has {found} entries but {known} were seen before: entries were removed")]
    Truncated {
        /// The length of the head seen before.
        known: u64,
        /// The length of this log.
        found: u64,
    },
    /// The log does not contain the head seen before: history was rewritten.
    #[error("entry {seq} differs from the one seen before: the log was rewritten")]
    Forked {
        /// The seq of the head seen before.
        seq: u64,
    },
}

/// Where a verified log ends: its length and the hash of its last entry. A client keeps the
/// head of the last log it verified; a later log must extend it ([`verify_extends`]), which
/// detects entries cut off the end, the one change the chain alone cannot show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHead {
    /// Number of entries.
    pub len: u64,
    /// Hex SHA-256 of the last entry's canonical bytes (the genesis hash when empty).
    pub last_hash: String,
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The zero hash the first entry chains to.
pub(crate) fn genesis_hash() -> String {
    "0".repeat(64)
}

/// The broker's audit signer.
pub struct AuditLog {
    key: SigningKey,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field(
                "public_key",
                &hex::encode(self.key.verifying_key().as_bytes()),
            )
            .finish()
    }
}

impl AuditLog {
    /// An audit signer with the broker's signing key.
    pub fn new(key: SigningKey) -> Self {
        Self { key }
    }

    /// The public key that verifies the log.
    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Makes and signs the entry that follows `prev` (or the first entry).
    pub fn next(
        &self,
        prev: Option<&AuditEntry>,
        time: i64,
        event: AuditEvent,
    ) -> Result<SignedEntry, AuditError> {
        let (seq, prev_hash) = match prev {
            None => (1, genesis_hash()),
            Some(p) => (
                p.seq
                    .checked_add(1)
                    .ok_or_else(|| AuditError::Encoding("seq overflow".into()))?,
                p.hash_hex()?,
            ),
        };
        let entry = AuditEntry {
            seq,
            prev_hash,
            time,
            event,
        };
        let signature = self.sign(&entry)?;
        Ok(SignedEntry { entry, signature })
    }

    fn sign(&self, entry: &AuditEntry) -> Result<String, AuditError> {
        let mut msg = AUDIT_DOMAIN.to_vec();
        msg.extend_from_slice(&entry.canonical_bytes()?);
        Ok(hex::encode(self.key.sign(&msg).to_bytes()))
    }

    /// `signed` as a reader outside its collaboration sees it: its seq and place in the
    /// chain, signed, and nothing else.
    pub fn redact(&self, signed: &SignedEntry) -> Result<SignedEntry, AuditError> {
        let hash = signed.entry.hash_hex()?;
        let msg = redacted_message(signed.entry.seq, &signed.entry.prev_hash, &hash);
        Ok(SignedEntry {
            entry: AuditEntry {
                seq: signed.entry.seq,
                prev_hash: signed.entry.prev_hash.clone(),
                time: 0,
                event: AuditEvent::Redacted { hash },
            },
            signature: hex::encode(self.key.sign(&msg).to_bytes()),
        })
    }
}

fn redacted_message(seq: u64, prev_hash: &str, hash: &str) -> Vec<u8> {
    let mut msg = REDACTED_DOMAIN.to_vec();
    msg.extend_from_slice(&seq.to_be_bytes());
    msg.extend_from_slice(prev_hash.as_bytes());
    msg.push(0);
    msg.extend_from_slice(hash.as_bytes());
    msg
}

/// Verifies a whole log from its first entry: sequence, hash chain and every signature.
///
/// Detects edited, removed and reordered entries. A log cut at its end verifies: compare its
/// length and last hash with a head you trust to detect that.
pub fn verify_log(
    entries: &[SignedEntry],
    broker_key: &VerifyingKey,
) -> Result<LogHead, AuditError> {
    Ok(verify_chain(entries, broker_key)?
        .pop()
        .unwrap_or_else(|| LogHead {
            len: 0,
            last_hash: genesis_hash(),
        }))
}

/// Verifies `entries` as [`verify_log`] does, and that they extend `known`, a head verified
/// earlier: nothing was cut off the end and nothing before it was rewritten.
pub fn verify_extends(
    entries: &[SignedEntry],
    broker_key: &VerifyingKey,
    known: &LogHead,
) -> Result<LogHead, AuditError> {
    let heads = verify_chain(entries, broker_key)?;
    let found = u64::try_from(heads.len()).unwrap_or(u64::MAX);
    if found < known.len {
        return Err(AuditError::Truncated {
            known: known.len,
            found,
        });
    }
    let at_known = match usize::try_from(known.len)
        .ok()
        .and_then(|n| n.checked_sub(1))
    {
        None => genesis_hash(),
        Some(i) => heads
            .get(i)
            .map(|h| h.last_hash.clone())
            .unwrap_or_default(),
    };
    if at_known != known.last_hash {
        return Err(AuditError::Forked { seq: known.len });
    }
    Ok(heads.last().cloned().unwrap_or(LogHead {
        len: 0,
        last_hash: genesis_hash(),
    }))
}

/// Checks every entry; returns the head after each one.
fn verify_chain(
    entries: &[SignedEntry],
    broker_key: &VerifyingKey,
) -> Result<Vec<LogHead>, AuditError> {
    let mut heads = Vec::with_capacity(entries.len());
    let mut prev_hash = genesis_hash();
    let mut position: u64 = 0;
    for signed in entries {
        position = position
            .checked_add(1)
            .ok_or_else(|| AuditError::Encoding("seq overflow".into()))?;
        let entry = &signed.entry;
        // A redacted entry stands for the hidden one: its hash, signed with its place.
        let (msg, hash) = match &entry.event {
            AuditEvent::Redacted { hash } if entry.time == 0 && is_hex64(hash) => (
                redacted_message(entry.seq, &entry.prev_hash, hash),
                hash.clone(),
            ),
            AuditEvent::Redacted { .. } => return Err(AuditError::Signature { seq: entry.seq }),
            _ => {
                let bytes = entry.canonical_bytes()?;
                let mut msg = AUDIT_DOMAIN.to_vec();
                msg.extend_from_slice(&bytes);
                (msg, hex::encode(Sha256::digest(&bytes)))
            }
        };
        let sig_ok = hex::decode(&signed.signature)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .is_some_and(|sig| broker_key.verify(&msg, &sig).is_ok());
        if !sig_ok {
            return Err(AuditError::Signature { seq: entry.seq });
        }
        if entry.seq != position {
            return Err(AuditError::Sequence {
                position,
                found: entry.seq,
            });
        }
        if entry.prev_hash != prev_hash {
            return Err(AuditError::Chain { seq: entry.seq });
        }
        prev_hash = hash;
        heads.push(LogHead {
            len: position,
            last_hash: prev_hash.clone(),
        });
    }
    Ok(heads)
}
