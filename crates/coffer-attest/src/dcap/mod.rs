//! Intel SGX (DCAP quote v3) and TDX (quote v4/v5) verification, offline, at a given time.
//!
//! The cryptography (quote and QE report ECDSA, PCK chain to the pinned Intel SGX Root CA,
//! CRLs, TCB info and QE identity signatures, TCB level matching) is dcap-qvl's; this module
//! adds typed claims, the SGX/TDX split, Intel PCS collateral loading and a typed error that
//! names the failed check.
//!
//! ```no_run
//! # fn main() -> Result<(), coffer_attest::Error> {
//! use coffer_attest::dcap::{Collateral, verify_sgx};
//! let quote = std::fs::read("quote.dat").map_err(|e| coffer_attest::Error::Missing(e.to_string()))?;
//! let collateral = Collateral::from_dcap_qvl_json(r#"{"...": "..."}"#)?;
//! let verified = verify_sgx(&quote, &collateral, 1_751_000_000)?;
//! assert!(!verified.claims.is_debug());
//! # Ok(()) }
//! ```
//!
//! Strict by default: debug enclaves and TDs are refused unless
//! [`DcapVerifier::dangerous_allow_debug`] is used. The TCB status (other than `Revoked`, which
//! is always refused) is returned, not judged: accepting e.g. `SWHardeningNeeded` is the
//! appraisal policy's decision.

mod claims;
mod collateral;
mod errors;

use dcap_qvl::quote::{Quote, Report};
use dcap_qvl::verify::QuoteVerifier;
use serde::Serialize;

pub use claims::{SgxClaims, TdxClaims};
pub use collateral::{Collateral, PcsFiles};

use crate::{Error, TcbStatus, TeeKind, UnixTime};

/// Intel SGX Root CA (DER), SHA-256 `44a0196b…74d3`: the trust anchor for SGX and TDX.
pub const INTEL_SGX_ROOT_CA_DER: &[u8] = include_bytes!("Intel_SGX_RootCA.der");

const TEE_TYPE_SGX: u32 = 0;
const TEE_TYPE_TDX: u32 = 0x81;

/// A quote that verified: its claims, the converged platform/QE TCB status and the time window
/// in which all of its collateral is valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DcapVerified<C> {
    pub claims: C,
    pub tcb_status: TcbStatus,
    /// dcap-qvl's status name, which for TDX 1.5 may be finer than [`TcbStatus`]
    /// (`TDRelaunchAdvised` maps to `OutOfDate`).
    pub vendor_tcb_status: String,
    pub advisories: Vec<String>,
    /// (latest issue date, earliest expiry) over TCB info, QE identity, both CRLs and every
    /// certificate used: the verdict holds for a time in `[.0, .1]`.
    pub collateral_window: (UnixTime, UnixTime),
}

/// A DCAP verifier with a pinned root. [`verify_sgx`] and [`verify_tdx`] use the default one.
#[derive(Debug, Clone)]
pub struct DcapVerifier {
    root_ca_der: Vec<u8>,
    allow_debug: bool,
}

impl Default for DcapVerifier {
    fn default() -> Self {
        Self {
            root_ca_der: INTEL_SGX_ROOT_CA_DER.to_vec(),
            allow_debug: false,
        }
    }
}

impl DcapVerifier {
    /// Pins a different root certificate (DER). For tests and private PKIs only.
    pub fn with_root_ca(root_ca_der: Vec<u8>) -> Self {
        Self {
            root_ca_der,
            allow_debug: false,
        }
    }

    /// Accepts debug enclaves and TDs, whose secrets the host can read.
    pub fn dangerous_allow_debug(mut self, allow: bool) -> Self {
        self.allow_debug = allow;
        self
    }

    /// Verifies an SGX quote v3 against `collateral` at `now`.
    pub fn verify_sgx(
        &self,
        quote: &[u8],
        collateral: &Collateral,
        now: UnixTime,
    ) -> Result<DcapVerified<SgxClaims>, Error> {
        let parsed = parse(quote, TeeKind::Sgx)?;
        let verified = self.run(quote, collateral, now, TeeKind::Sgx)?;
        Ok(verified.with_claims(sgx_claims(&parsed)?))
    }

    /// Verifies a TDX quote v4 or v5 against `collateral` at `now`.
    pub fn verify_tdx(
        &self,
        quote: &[u8],
        collateral: &Collateral,
        now: UnixTime,
    ) -> Result<DcapVerified<TdxClaims>, Error> {
        let parsed = parse(quote, TeeKind::Tdx)?;
        let verified = self.run(quote, collateral, now, TeeKind::Tdx)?;
        Ok(verified.with_claims(tdx_claims(&parsed)?))
    }

    fn run(
        &self,
        quote: &[u8],
        collateral: &Collateral,
        now: UnixTime,
        kind: TeeKind,
    ) -> Result<DcapVerified<()>, Error> {
        let now_secs = u64::try_from(now)
            .map_err(|_| Error::Unsupported(format!("time before 1970: {now}")))?;
        let verifier = QuoteVerifier::new(self.root_ca_der.clone()).allow_debug(self.allow_debug);
        // Policy is ours to apply; dcap-qvl's claims-only policy just carries the time.
        let policy = dcap_qvl::QuotePolicy::claims_only(now_secs);
        let claims = verifier
            .verify_with_policy(quote, &collateral.inner, now_secs, &policy)
            .map_err(|e| errors::map(&e, collateral, now, kind))?;
        let window = (
            to_time(claims.latest_issue_date),
            to_time(claims.earliest_expiration_date),
        );
        // dcap-qvl checks each item's own window; insist on the intersection too, so that the
        // verdict never rests on an item outside its validity.
        if now < window.0 || now > window.1 {
            return Err(Error::CollateralExpired {
                what: "collateral window (latest issue to earliest expiry)".into(),
                at: now,
                not_before: window.0,
                not_after: window.1,
            });
        }
        Ok(DcapVerified {
            claims: (),
            tcb_status: errors::tcb_status(claims.tcb.status),
            vendor_tcb_status: claims.tcb.status.to_string(),
            advisories: claims.tcb.advisory_ids,
            collateral_window: window,
        })
    }
}

impl DcapVerified<()> {
    fn with_claims<C>(self, claims: C) -> DcapVerified<C> {
        DcapVerified {
            claims,
            tcb_status: self.tcb_status,
            vendor_tcb_status: self.vendor_tcb_status,
            advisories: self.advisories,
            collateral_window: self.collateral_window,
        }
    }
}

fn to_time(secs: u64) -> UnixTime {
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// Verifies an SGX quote v3 with the pinned Intel root, refusing debug enclaves.
pub fn verify_sgx(
    quote: &[u8],
    collateral: &Collateral,
    now: UnixTime,
) -> Result<DcapVerified<SgxClaims>, Error> {
    DcapVerifier::default().verify_sgx(quote, collateral, now)
}

/// Verifies a TDX quote v4/v5 with the pinned Intel root, refusing debug TDs.
pub fn verify_tdx(
    quote: &[u8],
    collateral: &Collateral,
    now: UnixTime,
) -> Result<DcapVerified<TdxClaims>, Error> {
    DcapVerifier::default().verify_tdx(quote, collateral, now)
}

/// Reads the claims of an SGX quote **without verifying anything**: for display and triage.
pub fn parse_sgx_quote(quote: &[u8]) -> Result<SgxClaims, Error> {
    sgx_claims(&parse(quote, TeeKind::Sgx)?)
}

/// Reads the claims of a TDX quote **without verifying anything**: for display and triage.
pub fn parse_tdx_quote(quote: &[u8]) -> Result<TdxClaims, Error> {
    tdx_claims(&parse(quote, TeeKind::Tdx)?)
}

fn parse(quote: &[u8], expected: TeeKind) -> Result<Quote, Error> {
    let parsed = Quote::parse(quote).map_err(|e| Error::Malformed {
        what: "DCAP quote",
        reason: format!("{e:#}"),
    })?;
    let found = match (parsed.header.tee_type, parsed.header.version) {
        (TEE_TYPE_SGX, 3) => TeeKind::Sgx,
        (TEE_TYPE_TDX, 4 | 5) => TeeKind::Tdx,
        (tee, version) => {
            return Err(Error::Malformed {
                what: "DCAP quote",
                reason: format!("TEE type {tee:#x} with quote version {version}"),
            });
        }
    };
    if found != expected {
        return Err(Error::WrongTee {
            expected,
            found: format!("{found:?} quote"),
        });
    }
    check_trailing_bytes(quote, parsed.header.version)?;
    Ok(parsed)
}

/// Some quote producers hand out a fixed-size buffer: the quote followed by zero padding.
/// Padding is accepted; any other byte after the signed structure is refused, so that one
/// quote has one meaning.
fn check_trailing_bytes(quote: &[u8], version: u16) -> Result<(), Error> {
    let malformed = |reason: &str| Error::Malformed {
        what: "DCAP quote",
        reason: reason.into(),
    };
    let u32_at = |at: usize| -> Option<usize> {
        let bytes: [u8; 4] = quote.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(bytes)).ok()
    };
    const HEADER: usize = 48;
    let body_end = match version {
        3 => Some(HEADER + 384),
        4 => Some(HEADER + 584),
        // v5: a body descriptor (type u16, size u32) precedes the body.
        _ => u32_at(HEADER + 2).and_then(|size| size.checked_add(HEADER + 6)),
    };
    let end = body_end
        .and_then(|at| u32_at(at).and_then(|len| len.checked_add(at)?.checked_add(4)))
        .ok_or_else(|| malformed("truncated signature data"))?;
    match quote.get(end..) {
        Some(rest) if rest.iter().all(|&b| b == 0) => Ok(()),
        Some(_) => Err(malformed("non-zero bytes after the signed quote")),
        None => Err(malformed("truncated signature data")),
    }
}

fn fmspc(quote: &Quote) -> Result<[u8; 6], Error> {
    dcap_qvl::intel::quote_fmspc(quote).map_err(|e| Error::Malformed {
        what: "PCK certificate in quote",
        reason: format!("{e:#}"),
    })
}

fn sgx_claims(quote: &Quote) -> Result<SgxClaims, Error> {
    match &quote.report {
        Report::SgxEnclave(report) => Ok(SgxClaims::from_report(report, fmspc(quote)?)),
        _ => Err(Error::WrongTee {
            expected: TeeKind::Sgx,
            found: "TD report".into(),
        }),
    }
}

fn tdx_claims(quote: &Quote) -> Result<TdxClaims, Error> {
    let report = quote.report.as_td10().ok_or_else(|| Error::WrongTee {
        expected: TeeKind::Tdx,
        found: "SGX report".into(),
    })?;
    Ok(TdxClaims::from_report(
        quote.header.version,
        report,
        fmspc(quote)?,
    ))
}
