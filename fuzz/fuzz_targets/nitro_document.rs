//! Arbitrary bytes as a Nitro attestation document: parsing and verification never panic and
//! never return `Internal`, and whatever verifies also parses to the same claims. Seed the
//! corpus with the decoded testdata/nitro/evervault documents so mutations reach the chain and
//! COSE signature checks.
#![no_main]

use coffer_attest::Error;
use coffer_attest::nitro::{parse_nitro_document, verify_nitro};
use libfuzzer_sys::fuzz_target;

/// 2023-09-18T15:16:05Z, inside the Evervault GA document's window.
const NOW: i64 = 1_695_050_165;

fuzz_target!(|data: &[u8]| {
    let parsed = parse_nitro_document(data);
    let verified = verify_nitro(data, NOW);
    assert!(!matches!(parsed, Err(Error::Internal(_))));
    assert!(!matches!(verified, Err(Error::Internal(_))));
    match (parsed, verified) {
        (Ok(p), Ok(v)) => assert_eq!(p, v.claims),
        (Err(_), Ok(_)) => panic!("verified a document that does not parse"),
        _ => {}
    }
});
