//! Arbitrary bytes as an RA-TLS certificate and as the tagged-evidence extension value:
//! parsing never panics, and appraisal of a certificate that parses never accepts evidence
//! that does not verify.
#![no_main]

use coffer_attest::ratls::{BindingClaims, RaTlsCert, RaTlsVerifier, decode_tagged_evidence};
use coffer_attest::{Error, Evidence, Policy, Verifier};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(Error::Internal(e)) = RaTlsCert::from_der(data) {
        panic!("internal error: {e}");
    }
    if let Err(Error::Internal(e)) = decode_tagged_evidence(data) {
        panic!("internal error: {e}");
    }
    if let Err(Error::Internal(e)) = BindingClaims::from_cbor(data) {
        panic!("internal error: {e}");
    }
    if let Err(Error::Internal(e)) = Evidence::from_cbor(data) {
        panic!("internal error: {e}");
    }
    // The default policy accepts nothing, whatever the certificate says.
    let verdict = RaTlsVerifier::new(Verifier::new(), Policy::default()).appraise_cert(data, 0);
    assert!(!verdict.accepted);
});
