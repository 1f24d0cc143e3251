//! A broker's audit log as a party checks it: every entry signed by the broker's audit key,
//! chained to the one before, and (against a pin) extending the longest log seen before; and
//! every key release paired with the receipt of the job it served.

use coffer_net::audit::{AuditEvent, LogHead, SignedEntry, verify_extends, verify_log};
use coffer_net::{JobId, ManifestHash};
use ed25519_dalek::VerifyingKey;
use serde::Serialize;

use crate::Error;
use crate::broker::BrokerPin;

/// Whose log it is.
#[derive(Debug, Clone, Copy)]
pub enum Trust<'a> {
    /// A pinned broker: its audit key, and the head seen last (if any) must be extended.
    Pin(&'a BrokerPin),
    /// An audit key given by hand, `ed25519:<hex>`.
    Key(&'a str),
}

/// A verified audit log.
#[derive(Debug, Clone)]
pub struct AuditLog {
    /// The JSON lines, as served.
    pub text: String,
    pub entries: Vec<SignedEntry>,
    /// Where it ends.
    pub head: LogHead,
}

/// A key release in the log and the entry with its job's receipt, if one arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Release {
    pub seq: u64,
    pub manifest: ManifestHash,
    pub computation: String,
    pub job: Option<JobId>,
    pub receipt_seq: Option<u64>,
}

pub(crate) fn refused(reason: String) -> Error {
    Error::Refused {
        check: "audit_log".into(),
        message: format!("audit log refused: {reason}"),
    }
}

/// Parses `ed25519:<hex>`.
pub fn audit_key(text: &str) -> Result<VerifyingKey, Error> {
    let bad = |why: &str| Error::InvalidArgument(format!("audit key {text:?}: {why}"));
    let hex_part = text
        .strip_prefix("ed25519:")
        .ok_or_else(|| bad("expected ed25519:<hex>"))?;
    let bytes: [u8; 32] = hex::decode(hex_part)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("expected 64 hex digits"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| bad(&e.to_string()))
}

impl AuditLog {
    /// Parses and verifies `text` (JSON lines) as `trust`'s log; refusals are `audit_log`.
    pub fn verify(text: String, trust: Trust<'_>) -> Result<Self, Error> {
        let entries = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(SignedEntry::from_json_line)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| refused(e.to_string()))?;
        let head = match trust {
            Trust::Key(k) => verify_log(&entries, &audit_key(k)?),
            Trust::Pin(pin) => {
                let key = audit_key(&pin.audit_key)?;
                match &pin.audit_head {
                    Some(h) => verify_extends(
                        &entries,
                        &key,
                        &LogHead {
                            len: h.len,
                            last_hash: h.last_hash.clone(),
                        },
                    ),
                    None => verify_log(&entries, &key),
                }
            }
        }
        .map_err(|e| refused(e.to_string()))?;
        Ok(Self {
            text,
            entries,
            head,
        })
    }

    /// Each `key_released` entry, paired with the `job_receipt` entry for the same job.
    pub fn releases(&self) -> Vec<Release> {
        let mut receipts: std::collections::BTreeMap<JobId, u64> = Default::default();
        for e in &self.entries {
            if let AuditEvent::JobReceipt { receipt } = &e.entry.event
                && let Some(job) = receipt
                    .get("receipt")
                    .and_then(|r| r.get("job"))
                    .and_then(|j| j.as_str())
                    .and_then(|j| j.parse().ok())
            {
                receipts.entry(job).or_insert(e.entry.seq);
            }
        }
        self.entries
            .iter()
            .filter_map(|e| match &e.entry.event {
                AuditEvent::KeyReleased {
                    manifest,
                    computation,
                    job,
                    ..
                } => Some(Release {
                    seq: e.entry.seq,
                    manifest: *manifest,
                    computation: computation.clone(),
                    job: *job,
                    receipt_seq: job.as_ref().and_then(|j| receipts.get(j).copied()),
                }),
                _ => None,
            })
            .collect()
    }

    /// The entries as JSON values (what the Python SDK returns).
    pub fn entries_json(&self) -> Vec<serde_json::Value> {
        self.entries
            .iter()
            .filter_map(|e| serde_json::to_value(e).ok())
            .collect()
    }
}
