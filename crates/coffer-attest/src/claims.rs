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

impl TeeKind {
    pub const ALL: [TeeKind; 5] = [Self::Sgx, Self::Tdx, Self::Snp, Self::Nitro, Self::Sim];

    /// The lowercase name used in policies, manifests and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sgx => "sgx",
            Self::Tdx => "tdx",
            Self::Snp => "snp",
            Self::Nitro => "nitro",
            Self::Sim => "sim",
        }
    }
}

impl std::fmt::Display for TeeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TeeKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown TEE kind {s:?} (expected sgx, tdx, snp, nitro or sim)"))
    }
}

/// Serialises bytes as lowercase hex.
pub(crate) fn as_hex<S: serde::Serializer, T: AsRef<[u8]>>(
    bytes: &T,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}
