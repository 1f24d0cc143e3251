use std::path::PathBuf;

use coffer_manifest::ManifestHash;

/// Errors of the broker's store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database file failed its integrity check or is not a database: it is not served.
    #[error("broker database {path} is corrupted: {detail}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What SQLite reported.
        detail: String,
    },
    /// The database was written by a newer or unknown schema.
    #[error("broker database schema version {found} is not supported (expected {expected})")]
    UnsupportedSchema {
        /// The version found.
        found: i64,
        /// The version this build writes.
        expected: i64,
    },
    /// A file-system error.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A key file has the wrong size or content.
    #[error("key file {path} is malformed: {reason}")]
    BadKeyFile {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An SQLite error.
    #[error("broker database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored row does not decode.
    #[error("broker database row is malformed: {0}")]
    Malformed(String),
    /// Sealing or opening a secret failed (a wrong key, or a swapped or edited row).
    #[error("sealed secret: {0}")]
    Seal(String),
}

/// Errors of broker operations other than a key-release refusal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The manifest or its signatures do not parse or validate.
    #[error("manifest: {0}")]
    Manifest(#[from] coffer_manifest::Error),
    /// An update names a predecessor the broker does not hold.
    #[error("predecessor {0} is not known to this broker")]
    UnknownPredecessor(ManifestHash),
    /// The predecessor chain is longer than the broker follows.
    #[error("predecessor chain is longer than {0} manifests")]
    ChainTooLong(usize),
    /// No manifest with this hash.
    #[error("manifest {0} is not known to this broker")]
    UnknownManifest(ManifestHash),
    /// The manifest declares no such dataset.
    #[error("manifest declares no dataset {0:?}")]
    UnknownDataset(String),
    /// Only a dataset's owner may upload its key.
    #[error("party {party:?} does not own dataset {dataset:?}")]
    NotOwner {
        /// The uploader.
        party: String,
        /// The dataset.
        dataset: String,
    },
    /// A key for this dataset under this manifest is already held.
    #[error("a key for dataset {dataset:?} is already held under manifest {manifest}")]
    KeyExists {
        /// The manifest.
        manifest: ManifestHash,
        /// The dataset.
        dataset: String,
    },
    /// The party is not a party of the manifest.
    #[error("{0:?} is not a party of the manifest")]
    NotAParty(String),
    /// The revocation or retirement was done already.
    #[error("{0}")]
    AlreadyDone(String),
    /// The broker's writer thread is gone; nothing more can be done.
    #[error("broker stopped: {0}")]
    Stopped(String),
    /// The batch holding the operation could not be committed; nothing of it was kept.
    #[error("commit failed: {0}")]
    Commit(String),
}
