//! Parquet key metadata (`PKMT1` key-material JSON or a plain key id) on arbitrary bytes: never
//! panic, fail only with the key-material or unsupported-feature errors, and whatever parses as
//! key material re-serialises to JSON that parses back equal.
#![no_main]

use coffer_parquet::Error;
use coffer_parquet::key_material::{KeyMaterial, KeyMetadata};
use libfuzzer_sys::fuzz_target;

fn round_trips(m: &KeyMaterial) {
    let again = KeyMaterial::parse(&m.to_json()).expect("re-serialised key material parses");
    assert_eq!(&again, m, "re-serialised key material differs");
}

fn typed(e: &Error) {
    assert!(
        matches!(e, Error::KeyMaterial { .. } | Error::Unsupported(_)),
        "untyped failure: {e:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    match KeyMetadata::parse(data) {
        Ok(KeyMetadata::Material(m)) => round_trips(&m),
        Ok(KeyMetadata::KeyId(id)) => assert_eq!(id.as_str().as_bytes(), data),
        Err(e) => typed(&e),
    }
    if let Ok(text) = std::str::from_utf8(data) {
        match KeyMaterial::parse(text) {
            Ok(m) => round_trips(&m),
            Err(e) => typed(&e),
        }
    }
});
