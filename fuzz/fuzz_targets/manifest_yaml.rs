//! Arbitrary text as a manifest: parsing and validation never panic, and a manifest that
//! validates has one hash, the same after a round trip through its canonical JSON.
#![no_main]

use coffer_manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(manifest) = Manifest::from_yaml(text) {
        let json = serde_json::to_string(manifest.doc()).expect("a valid manifest serialises");
        let again = Manifest::from_yaml(&json).expect("its JSON validates");
        assert_eq!(again.hash(), manifest.hash());
    }
});
