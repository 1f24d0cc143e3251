//! Coffer's attestation verifiers: offline verification of TEE evidence at an explicit time,
//! returning typed claims, and refusals that name the failed check.
//!
//! Work in progress (issue 3): the per-TEE verifiers land first, then appraisal policy, RA-TLS
//! and the CLI. No SGX, TDX, SEV-SNP or Nitro hardware is available to this project: every
//! verifier here is tested against recorded evidence only.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::arithmetic_side_effects))]

pub mod claims;
pub mod dcap;
mod error;
pub mod nitro;
pub mod snp;
mod x509;

pub use claims::{TcbStatus, TeeKind, UnixTime};
pub use dcap::{
    DcapVerified, SgxClaims, TdxClaims, parse_sgx_quote, parse_tdx_quote, verify_sgx, verify_tdx,
};
pub use error::Error;
pub use nitro::{NitroClaims, NitroVerified, parse_nitro_document, verify_nitro};
pub use snp::{SnpClaims, SnpVerified, parse_snp_report, verify_snp};
