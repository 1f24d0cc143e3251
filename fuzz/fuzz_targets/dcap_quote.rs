//! Arbitrary bytes as an SGX or TDX quote: parsing and verification must return a typed
//! result, never panic. Verification runs against the recorded dcap-qvl sample collateral so
//! that inputs close to a real quote reach the signature and TCB checks.
#![no_main]

use std::sync::OnceLock;

use coffer_attest::Error;
use coffer_attest::dcap::{Collateral, parse_sgx_quote, parse_tdx_quote, verify_sgx, verify_tdx};
use libfuzzer_sys::fuzz_target;

/// 2025-07-01T00:00:00Z, inside the sample collateral's window.
const NOW: i64 = 1_751_328_000;

fn collateral() -> Option<&'static Collateral> {
    static C: OnceLock<Option<Collateral>> = OnceLock::new();
    C.get_or_init(|| {
        let json = include_str!("../../testdata/sgx_dcap/dcap-qvl/sgx_quote_collateral.json");
        Collateral::from_dcap_qvl_json(json).ok()
    })
    .as_ref()
}

fuzz_target!(|data: &[u8]| {
    let sgx = parse_sgx_quote(data);
    let tdx = parse_tdx_quote(data);
    // A quote is at most one of the two kinds.
    assert!(sgx.is_err() || tdx.is_err());
    if let Some(c) = collateral() {
        for result in [
            verify_sgx(data, c, NOW).map(|_| ()),
            verify_tdx(data, c, NOW).map(|_| ()),
        ] {
            assert!(!matches!(result, Err(Error::Internal(_))));
        }
    }
});
