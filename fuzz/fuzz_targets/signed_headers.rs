//! Arbitrary signature headers on a party request (split from the input at NUL bytes): parsing
//! never panics, and nothing verifies against a key whose signature it does not carry.
#![no_main]

use coffer_net::SignedHeaders;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|b| *b == 0);
    let mut headers = http::HeaderMap::new();
    for name in [
        "coffer-party",
        "coffer-time",
        "coffer-nonce",
        "coffer-signature",
    ] {
        if let Some(v) = parts.next()
            && let Ok(v) = http::HeaderValue::from_bytes(v)
        {
            headers.insert(name, v);
        }
    }
    let body = parts.next().unwrap_or_default();
    if let Ok(signed) = SignedHeaders::parse(&headers) {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        assert!(
            signed
                .verify(&[key], "POST", "/v1/keys", "audience", body)
                .is_err()
        );
    }
});
