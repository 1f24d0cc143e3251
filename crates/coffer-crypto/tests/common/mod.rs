//! Helpers shared by the sealed-file tests: 4 KiB segments, so boundaries are cheap to hit.
#![allow(dead_code)]

use coffer_crypto::sealed::SealOptions;
use coffer_crypto::{KeyId, SecretKey};

/// The segment size the tests seal with.
pub const SEGMENT: u32 = 4096;
/// Plaintext in segment 0 (4096 - 40 stream header - 16 tag).
pub const FIRST: usize = 4040;
/// Plaintext in every later full segment (4096 - 16 tag).
pub const NEXT: usize = 4080;

pub fn id(s: &str) -> KeyId {
    KeyId::new(s).unwrap()
}

/// A 256-bit key of `byte` repeated.
pub fn key(byte: u8) -> SecretKey {
    SecretKey::from_bytes(&[byte; 32]).unwrap()
}

pub fn options() -> SealOptions {
    SealOptions::default().with_segment_size(SEGMENT).unwrap()
}

/// Plaintext of `len` bytes that differs with `seed`.
pub fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(seed | 1).wrapping_add(seed))
        .collect()
}
