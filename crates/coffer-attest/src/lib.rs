//! Coffer's attestation verifiers: offline verification of TEE evidence at an explicit time,
//! returning typed claims, and refusals that name the failed check.
//!
//! - [`Verifier`] checks signatures, certificate chains and collateral of [`Evidence`] from SGX,
//!   TDX, SEV-SNP, Nitro or Coffer's simulation, and returns [`Verified`] claims.
//! - [`Policy`] judges them and returns a [`Verdict`] listing every [`FailedCheck`].
//! - [`ratls`] carries evidence in X.509 certificates and plugs appraisal into rustls.
//!
//! No SGX, TDX, SEV-SNP or Nitro hardware is available to this project: every hardware verifier
//! here is tested against recorded evidence only. Sim evidence proves nothing and is refused
//! unless a policy says `allow_simulation: true`.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::arithmetic_side_effects))]

pub mod claims;
pub mod dcap;
mod ecdsa;
mod error;
mod evidence;
pub mod nitro;
mod policy;
pub mod ratls;
pub mod sim;
pub mod snp;
mod x509;

pub use claims::{TcbStatus, TeeKind, UnixTime};
pub use dcap::{
    DcapVerified, SgxClaims, TdxClaims, parse_sgx_quote, parse_tdx_quote, verify_sgx, verify_tdx,
};
pub use error::Error;
pub use evidence::{Claims, Evidence, MAX_EVIDENCE_LEN, Verified, Verifier};
pub use nitro::{NitroClaims, NitroVerified, parse_nitro_document, verify_nitro};
pub use policy::{Age, FailedCheck, HexBytes, MeasurementRule, Policy, Term, Verdict};
pub use sim::SimClaims;
pub use snp::{SnpClaims, SnpVerified, parse_snp_report, verify_snp, verify_snp_with_certs};
