//! The crate's one error type.

/// Why verification failed. Variants separate the evidence's fault (forged, stale, malformed)
/// from the caller's (missing collateral, wrong arguments) and ours, so that a broker can tell
/// "TCB out of date" from "forged signature".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Evidence, a certificate or collateral that does not parse.
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    /// A signature that does not verify: names what was signed.
    #[error("signature invalid: {what}")]
    SignatureInvalid { what: String },
    /// A certificate chain that does not lead to the pinned root, or a certificate outside its
    /// validity window at the given time.
    #[error("certificate chain invalid: {reason}")]
    CertificateChain { reason: String },
    /// Collateral (TCB info, QE identity, CRLs) not valid at the given time.
    #[error("collateral not valid at {at}: {what} (valid {not_before} to {not_after})")]
    CollateralExpired {
        what: String,
        at: i64,
        not_before: i64,
        not_after: i64,
    },
    /// The platform's TCB level is not acceptable.
    #[error("TCB status {status:?}, advisories {advisories:?}")]
    TcbOutOfDate {
        status: crate::TcbStatus,
        advisories: Vec<String>,
    },
    /// The reported TCB does not match what the signing key was issued for.
    #[error("TCB mismatch: {reason}")]
    TcbMismatch { reason: String },
    /// A certificate revoked by a CRL.
    #[error("revoked: {what}")]
    Revoked { what: String },
    /// Something verification needs that the caller did not supply.
    #[error("missing {0}")]
    Missing(String),
    /// A valid feature this verifier does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A failure no input should cause.
    #[error("internal error: {0}")]
    Internal(String),
    /// Evidence from a different kind of TEE than the verifier was asked for (an SGX quote
    /// given to the TDX verifier, or the reverse).
    #[error("wrong TEE: expected {expected:?} evidence, got {found}")]
    WrongTee {
        expected: crate::TeeKind,
        found: String,
    },
    /// Evidence that verifies but reports a debug enclave or TD, refused by default.
    #[error("debug {0} refused")]
    DebugRefused(String),
}

impl Error {
    /// A stable name for the check that failed, for JSON output and for matching.
    pub fn check(&self) -> &'static str {
        match self {
            Self::Malformed { .. } => "malformed",
            Self::SignatureInvalid { .. } => "signature",
            Self::CertificateChain { .. } => "certificate_chain",
            Self::CollateralExpired { .. } => "collateral_expired",
            Self::TcbOutOfDate { .. } => "tcb_status",
            Self::TcbMismatch { .. } => "tcb_mismatch",
            Self::Revoked { .. } => "revoked",
            Self::Missing(_) => "missing",
            Self::Unsupported(_) => "unsupported",
            Self::Internal(_) => "internal",
            Self::WrongTee { .. } => "wrong_tee",
            Self::DebugRefused(_) => "debug",
        }
    }
}
