//! Arbitrary text as an appraisal policy (YAML or JSON, as in a manifest's `enclave:`
//! section): parsing never panics, and what parses serialises and parses back to itself.
#![no_main]

use coffer_attest::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(policy) = Policy::from_yaml(text) {
        let json = serde_json::to_string(&policy).expect("a policy serialises");
        assert_eq!(Policy::from_yaml(&json).expect("its JSON parses"), policy);
    }
});
