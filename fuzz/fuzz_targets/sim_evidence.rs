//! Arbitrary bytes as Coffer sim evidence: parsing and verification never panic and never
//! return `Internal`; whatever verifies also parses to the same claims. Seed with the output
//! of `coffer attest evidence --tee sim`.
#![no_main]

use coffer_attest::Error;
use coffer_attest::sim::{parse_sim_evidence, verify_sim};
use libfuzzer_sys::fuzz_target;

/// Roots: an arbitrary key, and the all-zero point (never a valid signer).
const ROOTS: [[u8; 32]; 2] = [[7; 32], [0; 32]];

fuzz_target!(|data: &[u8]| {
    let parsed = parse_sim_evidence(data);
    assert!(!matches!(parsed, Err(Error::Internal(_))));
    // The kid is attacker-chosen: trust it, so the signature check itself is reached.
    let kid = parsed.as_ref().map(|c| c.platform_key).unwrap_or([7; 32]);
    for roots in [&ROOTS[..], &[kid][..]] {
        let verified = verify_sim(data, roots, 0);
        assert!(!matches!(verified, Err(Error::Internal(_))));
        if let Ok(v) = verified {
            assert_eq!(Some(&v), parsed.as_ref().ok());
        }
    }
});
