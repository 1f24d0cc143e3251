//! Tink AES-GCM-HKDF streaming known-answer vectors (testdata/aead_streaming/tink).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use coffer_crypto::sealed::tink::{
    self, HkdfHash, NONCE_PREFIX_LEN, SegmentDecrypter, SegmentEncrypter, StreamParams,
};
use coffer_crypto::{Error, SecretKey};
use serde_json::Value;

const VECTORS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/aead_streaming/tink/vectors.json"
));

struct Vector {
    id: u64,
    params: StreamParams,
    key: SecretKey,
    aad: Vec<u8>,
    plaintext: Vec<u8>,
    ciphertext: Vec<u8>,
}

fn bytes(v: &Value, name: &str) -> Vec<u8> {
    if let Some(text) = v[format!("{name}_utf8")].as_str() {
        return text.as_bytes().to_vec();
    }
    hex::decode(v[format!("{name}_hex")].as_str().expect(name)).unwrap()
}

fn vectors() -> Vec<Vector> {
    let doc: Value = serde_json::from_str(VECTORS).unwrap();
    doc["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let hash = match v["hkdf_hash"].as_str().unwrap() {
                "SHA1" => HkdfHash::Sha1,
                "SHA256" => HkdfHash::Sha256,
                "SHA512" => HkdfHash::Sha512,
                other => panic!("unknown hash {other}"),
            };
            let key = SecretKey::from_hex(v["key_hex"].as_str().unwrap()).unwrap();
            assert_eq!(key.bits() / 8, v["key_size"].as_u64().unwrap() as usize);
            Vector {
                id: v["id"].as_u64().unwrap(),
                params: StreamParams::new(
                    hash,
                    v["derived_key_size"].as_u64().unwrap() as usize,
                    v["ciphertext_segment_size"].as_u64().unwrap() as u32,
                )
                .unwrap(),
                key,
                aad: bytes(v, "aad"),
                plaintext: bytes(v, "plaintext"),
                ciphertext: hex::decode(v["ciphertext_hex"].as_str().unwrap()).unwrap(),
            }
        })
        .collect()
}

#[test]
fn all_vectors_decrypt_to_their_plaintext() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 8);
    for v in &vectors {
        let mut out = Vec::new();
        let n = tink::decrypt(v.params, &v.key, &v.aad, &v.ciphertext[..], &mut out)
            .unwrap_or_else(|e| panic!("vector {}: {e}", v.id));
        assert_eq!(out, v.plaintext, "vector {}", v.id);
        assert_eq!(n, v.plaintext.len() as u64);
    }
}

#[test]
fn encrypting_with_the_vector_salt_and_prefix_reproduces_the_ciphertext() {
    for v in vectors() {
        // The vectors fix the stream header randomness only through the ciphertext's header.
        let h = v.params.header_len();
        assert_eq!(usize::from(v.ciphertext[0]), h, "vector {}", v.id);
        let salt = &v.ciphertext[1..1 + v.params.derived_key_len()];
        let prefix: [u8; NONCE_PREFIX_LEN] = v.ciphertext[1 + v.params.derived_key_len()..h]
            .try_into()
            .unwrap();
        let enc = SegmentEncrypter::dangerous_with_salt_and_nonce_prefix(
            v.params, &v.key, &v.aad, salt, prefix,
        )
        .unwrap();
        let mut out = Vec::new();
        tink::encrypt_with(enc, &v.plaintext[..], &mut out).unwrap();
        assert_eq!(
            hex::encode(&out),
            hex::encode(&v.ciphertext),
            "vector {}",
            v.id
        );
    }
}

#[test]
fn lengths_and_layout_match_the_vectors() {
    for v in vectors() {
        let len = v.ciphertext.len() as u64;
        assert_eq!(v.params.ciphertext_len(v.plaintext.len() as u64), Some(len));
        let layout = v.params.layout(len).unwrap();
        assert_eq!(
            layout.plaintext_len,
            v.plaintext.len() as u64,
            "vector {}",
            v.id
        );
    }
    // Vector 0: 90 bytes over 64-byte segments with a 24-byte header is three segments.
    let v0 = &vectors()[0];
    assert_eq!(
        v0.params
            .layout(v0.ciphertext.len() as u64)
            .unwrap()
            .segments,
        3
    );
}

#[test]
fn segments_open_in_any_order() {
    let v = &vectors()[0];
    let h = v.params.header_len();
    let dec = SegmentDecrypter::new(v.params, &v.key, &v.aad, &v.ciphertext[..h]).unwrap();
    let layout = v.params.layout(v.ciphertext.len() as u64).unwrap();
    let mut plaintext = vec![Vec::new(); layout.segments as usize];
    for index in (0..layout.segments).rev() {
        let start = v.params.segment_offset(index).unwrap() as usize;
        let last = index + 1 == layout.segments;
        let end = if last {
            v.ciphertext.len()
        } else {
            v.params.segment_offset(index + 1).unwrap() as usize
        };
        let mut segment = v.ciphertext[start..end].to_vec();
        plaintext[index as usize] = dec
            .open_segment_in_place(index, last, &mut segment)
            .unwrap()
            .to_vec();
        // The same bytes under another segment number or last flag do not open.
        let mut again = v.ciphertext[start..end].to_vec();
        assert!(dec.open_segment_in_place(index, !last, &mut again).is_err());
    }
    assert_eq!(plaintext.concat(), v.plaintext);
}

#[test]
fn every_modification_of_the_vectors_fails() {
    for v in vectors() {
        let fails = |ct: &[u8], aad: &[u8]| {
            tink::decrypt(v.params, &v.key, aad, ct, &mut Vec::new()).is_err()
        };
        assert!(!fails(&v.ciphertext, &v.aad), "vector {} must open", v.id);
        for i in 0..v.ciphertext.len() {
            let mut bad = v.ciphertext.clone();
            bad[i] ^= 0x80;
            assert!(
                fails(&bad, &v.aad),
                "vector {}: flip at byte {i} accepted",
                v.id
            );
        }
        for cut in 0..v.ciphertext.len() {
            assert!(
                fails(&v.ciphertext[..cut], &v.aad),
                "vector {}: cut at {cut}",
                v.id
            );
        }
        let mut longer = v.ciphertext.clone();
        longer.push(0);
        assert!(
            fails(&longer, &v.aad),
            "vector {}: appended byte accepted",
            v.id
        );
        let mut aad = v.aad.clone();
        aad.push(b'!');
        assert!(
            fails(&v.ciphertext, &aad),
            "vector {}: other aad accepted",
            v.id
        );
    }
}

#[test]
fn a_wrong_key_fails_on_segment_zero() {
    let v = &vectors()[7];
    let other = SecretKey::from_bytes(&[7; 32]).unwrap();
    let err =
        tink::decrypt(v.params, &other, &v.aad, &v.ciphertext[..], &mut Vec::new()).unwrap_err();
    match err {
        Error::AuthenticationFailed { what } => assert!(what.starts_with("segment 0"), "{what}"),
        e => panic!("{e}"),
    }
}

#[test]
fn a_short_ikm_is_refused_like_tink() {
    let params = StreamParams::new(HkdfHash::Sha256, 32, 4096).unwrap();
    let key = SecretKey::from_bytes(&[1; 16]).unwrap();
    assert!(matches!(
        SegmentEncrypter::new(params, &key, b""),
        Err(Error::InvalidKey { .. })
    ));
}
