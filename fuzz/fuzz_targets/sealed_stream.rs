//! Sealed files from arbitrary bytes: unsealing never panics, every API (streaming, in place,
//! random access) reaches the same verdict, and a sealed file with one byte flipped, cut
//! short or extended never unseals.
//!
//! Input byte 0 picks the mode: even, the rest is taken as a sealed file under a key source
//! that answers every key id with one fixed key; odd, the rest seeds a plaintext that is
//! sealed and then damaged.
#![no_main]

use std::io::{Cursor, Read};

use coffer_crypto::sealed::{self, SealOptions, SealedReader};
use coffer_crypto::{Error, KeyId, KeySource, SecretKey};
use libfuzzer_sys::fuzz_target;

const NAME: &str = "fuzz.bin";

#[derive(Debug)]
struct AnyId;

impl KeySource for AnyId {
    fn key(&self, _: &KeyId) -> Result<SecretKey, Error> {
        SecretKey::from_bytes(&[0x42; 32])
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let _ = unseal_all(rest);
    } else {
        damaged(rest);
    }
});

/// Unseals `file` every way there is; returns the plaintext if all succeed.
fn unseal_all(file: &[u8]) -> Option<Vec<u8>> {
    let mut streamed = Vec::new();
    let streamed = sealed::unseal(&AnyId, NAME, file, &mut streamed).map(|_| streamed);
    let mut in_place = file.to_vec();
    let in_place = sealed::unseal_in_place(&AnyId, NAME, &mut in_place).map(|_| in_place);
    let random = SealedReader::open(&AnyId, NAME, Cursor::new(file)).and_then(|mut r| {
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    });
    match (streamed, in_place, random) {
        (Ok(a), Ok(b), Ok(c)) => {
            assert!(a == b && b == c, "APIs disagree on the plaintext");
            Some(a)
        }
        (Err(_), Err(_), Err(_)) => None,
        (a, b, c) => panic!(
            "APIs disagree: streamed {:?}, in place {:?}, reader {:?}",
            a.err(),
            b.err(),
            c.err()
        ),
    }
}

/// Seals a plaintext from `seed`, checks it unseals, then damages it and checks it does not.
fn damaged(seed: &[u8]) {
    let (control, plaintext) = seed.split_at(seed.len().min(4));
    let [kind, hi, lo, value] = <[u8; 4]>::try_from(control).unwrap_or([0; 4]);
    let id = KeyId::new("fuzz.k1").unwrap();
    let options = SealOptions::default()
        .with_segment_size(sealed::MIN_SEGMENT_SIZE)
        .unwrap();
    let key = SecretKey::from_bytes(&[0x42; 32]).unwrap();
    let mut file = Vec::new();
    sealed::seal_with_options(&id, &key, NAME, options, plaintext, &mut file).unwrap();
    assert_eq!(
        unseal_all(&file).as_deref(),
        Some(plaintext),
        "a sealed file did not unseal"
    );

    let at = usize::from(u16::from_be_bytes([hi, lo])) % file.len();
    match kind % 3 {
        0 => file[at] ^= value.max(1),
        1 => file.truncate(at),
        _ => file.extend(std::iter::repeat_n(value, usize::from(lo) + 1)),
    }
    assert!(
        unseal_all(&file).is_none(),
        "a damaged sealed file unsealed"
    );
}
