//! SGX evidence through [Gramine]'s `/dev/attestation` pseudo-files: a DCAP quote whose report
//! data is the 64 bytes we ask for.
//!
//! **Implemented against Gramine's documented interface only; it has never run on SGX
//! hardware or inside Gramine.** It is tested against a plain directory imitating the
//! pseudo-files (see `tests/gramine.rs`), which cannot show that real Gramine behaves as its
//! documentation says.
//!
//! The procedure, per Gramine's "Attestation and Secret Provisioning" documentation:
//!
//! 1. read `attestation_type` (`none`, `epid` or `dcap`); only `dcap` is supported;
//! 2. write the 64 bytes of report data to `user_report_data` (the pseudo-file always exists;
//!    it is never created here);
//! 3. read `quote`.
//!
//! The quote is then parsed (not verified: verifiers do that) and must carry exactly the report
//! data written, so that a concurrent writer of `user_report_data` — in another process of the
//! same enclave — yields an error rather than evidence for someone else's report data. Within
//! this process, requests are serialised by a lock.
//!
//! [Gramine]: https://gramine.readthedocs.io/en/stable/attestation.html

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use coffer_attest::parse_sgx_quote;

use crate::tsm::read_bounded;
use crate::{Error, Evidence, EvidenceSource, TeeKind};

/// Where Gramine mounts its attestation pseudo-files inside the enclave.
pub const DEFAULT_ROOT: &str = "/dev/attestation";

/// Upper bound on the `attestation_type` pseudo-file.
const MAX_TYPE_LEN: u64 = 64;

/// Serialises the write-`user_report_data`-then-read-`quote` sequence within this process:
/// Gramine keeps one `user_report_data` per enclave.
static EXCHANGE: Mutex<()> = Mutex::new(());

/// SGX DCAP quotes from Gramine's `/dev/attestation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GramineSource {
    root: PathBuf,
}

impl Default for GramineSource {
    fn default() -> Self {
        Self::new()
    }
}

impl GramineSource {
    /// The source inside a Gramine enclave: [`DEFAULT_ROOT`].
    pub fn new() -> Self {
        Self::with_root(DEFAULT_ROOT)
    }

    /// A source reading the pseudo-files from `root` instead (tests, unusual mounts).
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory holding the pseudo-files.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The enclave's attestation type as Gramine reports it (`none`, `epid`, `dcap`), trimmed.
    pub fn attestation_type(&self) -> Result<String, Error> {
        let path = self.root.join("attestation_type");
        let bytes = read_bounded(&path, MAX_TYPE_LEN, "gramine")?;
        let text = String::from_utf8(bytes).map_err(|_| Error::Device {
            backend: "gramine",
            reason: format!("{}: not UTF-8 text", path.display()),
        })?;
        Ok(text.trim().to_owned())
    }
}

impl EvidenceSource for GramineSource {
    fn tee(&self) -> TeeKind {
        TeeKind::Sgx
    }

    fn evidence(&self, report_data: &[u8; 64]) -> Result<Evidence, Error> {
        let kind = self.attestation_type()?;
        if kind != "dcap" {
            return Err(Error::Unsupported(format!(
                "Gramine attestation type {kind:?}: only \"dcap\" is supported"
            )));
        }

        let quote = {
            let _guard = EXCHANGE.lock().unwrap_or_else(PoisonError::into_inner);
            let urd = self.root.join("user_report_data");
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .open(&urd)
                .map_err(|e| Error::io(&urd, e))?;
            file.write_all(report_data)
                .and_then(|()| file.flush())
                .map_err(|e| Error::io(&urd, e))?;
            drop(file);
            read_bounded(
                &self.root.join("quote"),
                crate::tsm::MAX_BLOB_LEN,
                "gramine",
            )?
        };

        let claims = parse_sgx_quote(&quote)?;
        if claims.report_data != *report_data {
            return Err(Error::Device {
                backend: "gramine",
                reason: "quote does not carry the report data written to user_report_data \
                         (another writer in this enclave?)"
                    .into(),
            });
        }
        Ok(Evidence::Sgx(quote))
    }
}
