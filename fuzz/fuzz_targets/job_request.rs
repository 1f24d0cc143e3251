//! Arbitrary bytes as a job request body, as a worker receives it from the untrusted
//! orchestrator: decoding, the id and signature checks, and the manifest inside never panic.
#![no_main]

use coffer_net::job::JobRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = serde_json::from_slice::<JobRequest>(data) else {
        return;
    };
    let _ = req.id();
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    let _ = req.verify(&key);
    if let Ok(manifest) = coffer_manifest::Manifest::from_yaml(&req.manifest) {
        let _ = manifest.party(&req.spec.party);
        let _ = manifest.computation(&req.spec.computation);
    }
    let _ = coffer_manifest::SignatureFile::from_json(&req.signatures.to_string());
});
