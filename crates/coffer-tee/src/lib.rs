//! Evidence *generation* for Coffer's in-TEE services (worker, broker). Each backend turns 64
//! bytes of report data into [`Evidence`] that `coffer-attest` verifies.
//!
//! | backend | source | tested |
//! |---|---|---|
//! | [`sim`] | a simulated platform key on disk; measurement = SHA-384 of the executable | here; **proves nothing** |
//! | `gramine` | Gramine's `/dev/attestation` pseudo-files (SGX DCAP quote) | against a directory imitating them; **never on SGX hardware** |
//! | `tsm` | Linux configfs-tsm reports (TDX quote, SEV-SNP report) | against a directory imitating configfs; **never on TDX/SNP hardware** |
//! | `nitro` | the Nitro Secure Module via `aws-nitro-enclaves-nsm-api` | compiled only; **never in a Nitro enclave** |
#![forbid(unsafe_code)]

pub mod gramine;
pub mod nitro;
pub mod sim;
pub mod tsm;

use std::fmt::Debug;
use std::path::PathBuf;

pub use coffer_attest::{Evidence, TeeKind};

/// Why evidence could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file of the backend's interface could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The TEE interface answered, but not as its documentation says it must.
    #[error("{backend}: {reason}")]
    Device {
        backend: &'static str,
        reason: String,
    },
    /// The backend is not available on this machine or build.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Encoding or signing evidence failed.
    #[error(transparent)]
    Attest(#[from] coffer_attest::Error),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// A source of evidence: the TEE the current process runs in.
pub trait EvidenceSource: Debug + Send + Sync {
    /// The kind of evidence this source produces.
    fn tee(&self) -> TeeKind;

    /// Evidence whose report data is `report_data` (for Nitro: the document's `user_data`).
    fn evidence(&self, report_data: &[u8; 64]) -> Result<Evidence, Error>;
}
