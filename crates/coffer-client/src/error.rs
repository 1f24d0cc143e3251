//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in `coffer-client`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `init` found an identity already in place and refuses to overwrite it.
    #[error("an identity already exists at {path}; refusing to overwrite it")]
    IdentityExists { path: PathBuf },
    /// No identity in this home: run `coffer init` first.
    #[error("no identity at {path}; run `coffer init --name NAME` first")]
    NoIdentity { path: PathBuf },
    /// A key with this id is already in the keyring.
    #[error("key {id} already exists in the keyring; refusing to replace it")]
    KeyExists { id: String },
    /// A file in the home (or an exchanged public identity) does not parse or is inconsistent.
    #[error("{path}: {reason}")]
    Malformed { path: PathBuf, reason: String },
    /// The caller passed something unusable, such as an empty name.
    #[error("{0}")]
    InvalidArgument(String),
    /// A cryptographic operation failed.
    #[error(transparent)]
    Crypto(#[from] coffer_crypto::Error),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
