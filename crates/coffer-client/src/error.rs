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
    /// A manifest or signatures file (at `path`) that does not parse, validate or verify.
    #[error("{}: {source}", path.display())]
    Manifest {
        path: PathBuf,
        source: coffer_manifest::Error,
    },
    /// A check refused: the receipt, the worker's evidence, an output's digest, a request.
    #[error("[{check}] {message}")]
    Refused { check: String, message: String },
    /// A service (orchestrator, broker) answered with a typed error or refusal.
    #[error("{url}: {error}")]
    Service {
        url: String,
        error: coffer_net::ApiError,
    },
    /// A service or the storage could not be reached or read.
    #[error("{url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The job failed: the check the worker (or orchestrator) named, its fixed message, and
    /// the worker's detail when it was encrypted to this party.
    #[error("job {job} failed: [{check}] {message}{}", render_detail(.detail.as_deref()))]
    JobFailed {
        job: coffer_net::JobId,
        check: String,
        message: String,
        detail: Option<Box<coffer_net::job::FailureDetail>>,
    },
    /// No pin for this broker in this home yet.
    #[error(
        "broker {url} has not been attested from this home: run `coffer broker attest --broker {url}` first"
    )]
    NotAttested { url: String },
    /// A broker's evidence or certificate did not pass appraisal (first contact or against
    /// the pin). Each entry is `[check] message`.
    #[error("broker {url} refused by attestation: {}", .checks.join("; "))]
    Attestation { url: String, checks: Vec<String> },
    /// Reading, writing or decrypting a table.
    #[error(transparent)]
    Parquet(#[from] coffer_parquet::Error),
    /// A connection failed before any answer.
    #[error(transparent)]
    Net(#[from] coffer_net::NetError),
    /// The job was not final within the time allowed.
    #[error("job {job} still {state} after {secs}s")]
    Timeout {
        job: coffer_net::JobId,
        state: String,
        secs: u64,
    },
}

fn render_detail(detail: Option<&coffer_net::job::FailureDetail>) -> String {
    let Some(d) = detail else {
        return String::new();
    };
    let mut text = format!(
        "\nworker's detail (encrypted to you):\n  [{}] {}",
        d.check, d.message
    );
    for r in &d.reasons {
        text.push_str("\n    - ");
        text.push_str(r);
    }
    text
}

impl Error {
    /// The failed check's stable name: the refusing check for refusals, else what kind of
    /// failure it is (`io`, `no_identity`, `unreachable`, …).
    pub fn check(&self) -> &str {
        match self {
            Self::Refused { check, .. } | Self::JobFailed { check, .. } => check,
            Self::Service { error, .. } => &error.check,
            Self::Io { .. } => "io",
            Self::IdentityExists { .. } => "identity_exists",
            Self::NoIdentity { .. } => "no_identity",
            Self::KeyExists { .. } => "key_exists",
            Self::Malformed { .. } => "malformed",
            Self::InvalidArgument(_) => "invalid_argument",
            Self::Crypto(c) => c.check(),
            Self::Manifest { source, .. } => source.check(),
            Self::Unreachable { .. } => "unreachable",
            Self::Timeout { .. } => "timeout",
            Self::NotAttested { .. } => "not_attested",
            Self::Attestation { checks, .. } => checks
                .first()
                .and_then(|c| c.strip_prefix('['))
                .and_then(|c| c.split_once(']'))
                .map_or("attestation", |(name, _)| name),
            Self::Net(_) => "unreachable",
            Self::Parquet(p) => p.check(),
        }
    }

    /// Whether this is a refusal (exit 1) rather than a usage, I/O or network failure (2).
    pub fn is_refusal(&self) -> bool {
        match self {
            Self::Io { .. }
            | Self::InvalidArgument(_)
            | Self::NoIdentity { .. }
            | Self::Unreachable { .. }
            | Self::Timeout { .. }
            | Self::NotAttested { .. }
            | Self::Net(_) => false,
            Self::Service { error, .. } => error.is_refusal(),
            Self::Parquet(p) => p.is_refusal(),
            Self::Manifest { source, .. } => !matches!(
                source,
                coffer_manifest::Error::PredecessorRequired { .. }
                    | coffer_manifest::Error::NotAnUpdate
                    | coffer_manifest::Error::ApiMisuse(_)
            ),
            Self::Crypto(c) => !matches!(
                c,
                coffer_crypto::Error::Io(_)
                    | coffer_crypto::Error::ApiMisuse(_)
                    | coffer_crypto::Error::InvalidKeyId { .. }
            ),
            _ => true,
        }
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
