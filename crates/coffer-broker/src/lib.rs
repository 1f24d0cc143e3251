//! Coffer's key broker core (in-TEE), without HTTP: it keeps collaboration manifests and their
//! signatures, the parties' data keys sealed under the broker's sealing key, and a signed,
//! hash-chained audit log, and decides whether a worker gets a job's input keys.
//!
//! - [`Store`]: SQLite (WAL, `synchronous=FULL`), checked with `PRAGMA integrity_check` on
//!   open; a corrupted file is [`StoreError::Corrupt`], never served.
//! - [`SealingKey`]: AES-256-GCM over small secrets, with associated data binding each sealed
//!   key to its manifest and dataset, so a swapped row fails to open.
//! - [`AuditLog`], [`AuditEvent`], [`SignedEntry`], [`verify_log`]: append-only entries, each
//!   naming the hash of the one before and signed with the broker's Ed25519 key.
//! - [`Broker`]: `submit_manifest`, `upload_key`, `release` (with a typed [`Refusal`]) and
//!   `check_request_nonce` for replay protection.
//!
//! The broker releases a job's input keys only if (ARCHITECTURE §2.5) the computation is in an
//! active manifest, every owner of every input signed it, the worker's evidence meets the
//! manifest's policy at the given time, and the job's inputs match the pinned digests.
//!
//! Security notes: authenticating *who* calls (the attested channel, signed requests) is the
//! service layer's job; this crate takes party names as already authenticated. In simulation
//! the sealing and signing keys are plain files in the broker directory (mode 0600): that
//! protects nothing against the host, and is labelled as such.
#![forbid(unsafe_code)]

mod broker;
mod error;
mod keyfile;
mod sealing;
pub mod service;
mod store;

pub use broker::{Broker, Refusal};
pub use coffer_net::audit::{
    AuditEntry, AuditError, AuditEvent, AuditLog, LogHead, SignedEntry, verify_extends, verify_log,
};
pub use error::{BrokerError, StoreError};
pub use sealing::SealingKey;
pub use store::{SCHEMA_VERSION, Store, StoredManifest};
