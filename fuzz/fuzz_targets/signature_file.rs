//! Arbitrary text as a manifest's signatures file: parsing never panics, and what parses
//! serialises and parses back to itself.
#![no_main]

use coffer_manifest::SignatureFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = SignatureFile::from_json(text) {
        let json = file.to_json().expect("a parsed signatures file serialises");
        assert_eq!(SignatureFile::from_json(&json).expect("and parses"), file);
    }
});
