//! Types shared by every verifier.

use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch. Verifiers take the time as a parameter and never read the
/// clock.
pub type UnixTime = i64;

/// The kinds of trusted execution environment Coffer verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TeeKind {
    /// Intel SGX (DCAP quote v3).
    Sgx,
    /// Intel TDX (quote v4/v5).
    Tdx,
    /// AMD SEV-SNP (attestation report v2/v3).
    Snp,
    /// AWS Nitro Enclaves (COSE_Sign1 attestation document).
    Nitro,
    /// Coffer's simulation: proves nothing; refused unless a policy allows it.
    Sim,
}

/// A platform's TCB status, as Intel's collateral names it. Other vendors map onto it:
/// a verified SNP report whose TCB matches its VCEK is `UpToDate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TcbStatus {
    UpToDate,
    SWHardeningNeeded,
    ConfigurationNeeded,
    ConfigurationAndSWHardeningNeeded,
    OutOfDate,
    OutOfDateConfigurationNeeded,
    Revoked,
}
