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

/// The evidence backends a service can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Coffer's simulation: a platform key on disk. Proves nothing.
    Sim,
    /// SGX through Gramine's `/dev/attestation`.
    Gramine,
    /// TDX or SEV-SNP through Linux configfs-tsm (the kind is told by `/dev/tdx_guest` or
    /// `/dev/sev-guest`).
    Tsm,
    /// AWS Nitro Enclaves through `/dev/nsm`.
    Nitro,
}

impl Backend {
    /// The backend named `sim`, `gramine`, `tsm` or `nitro`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "sim" => Some(Self::Sim),
            "gramine" => Some(Self::Gramine),
            "tsm" => Some(Self::Tsm),
            "nitro" => Some(Self::Nitro),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sim => "sim",
            Self::Gramine => "gramine",
            Self::Tsm => "tsm",
            Self::Nitro => "nitro",
        }
    }

    /// The verifier a service on this backend uses for its peers' evidence: the sim platform
    /// keys `sim_roots`, plus, for a simulated service only, its own platform's key (created
    /// if absent). Simulated evidence still needs a policy that allows it.
    pub fn peer_verifier(
        self,
        sim_platform_dir: &std::path::Path,
        sim_roots: &[[u8; 32]],
    ) -> coffer_attest::Verifier {
        let mut roots = sim_roots.to_vec();
        if self == Self::Sim
            && let Ok(p) = sim::SimPlatform::load_or_create(sim_platform_dir)
        {
            roots.push(p.public_key());
        }
        roots
            .into_iter()
            .fold(coffer_attest::Verifier::new(), |v, r| v.with_sim_root(r))
    }

    /// Opens this backend's evidence source. `sim_platform_dir` holds the simulated platform
    /// key (created if absent); the sim measurement is the running executable's.
    pub fn open(
        self,
        sim_platform_dir: &std::path::Path,
        debug: bool,
    ) -> Result<Box<dyn EvidenceSource>, Error> {
        if debug && self != Self::Sim {
            return Err(Error::Unsupported(
                "debug evidence can only be simulated".into(),
            ));
        }
        Ok(match self {
            Self::Sim => {
                let platform = sim::SimPlatform::load_or_create(sim_platform_dir)?;
                Box::new(sim::SimSource::for_current_exe(platform)?.debug(debug))
            }
            Self::Gramine => Box::new(gramine::GramineSource::new()),
            Self::Tsm => {
                let tee = if std::path::Path::new("/dev/tdx_guest").exists() {
                    TeeKind::Tdx
                } else if std::path::Path::new("/dev/sev-guest").exists() {
                    TeeKind::Snp
                } else {
                    return Err(Error::Unsupported(
                        "configfs-tsm: neither /dev/tdx_guest nor /dev/sev-guest: not in a TDX \
                         or SEV-SNP guest"
                            .into(),
                    ));
                };
                Box::new(tsm::TsmSource::new(tee)?)
            }
            Self::Nitro => Box::new(nitro::NitroSource::open()?),
        })
    }
}
