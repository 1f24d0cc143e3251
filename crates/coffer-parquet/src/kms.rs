//! Local key wrapping, as parquet-mr's `InMemoryKMS` and Arrow C++'s `TestOnlyInMemoryKms` do it.
//!
//! A wrapped key is `base64(nonce[12] ‖ ciphertext ‖ tag[16])`: AES-GCM under the wrapping key
//! (AES-128, -192 or -256 by the wrapping key's length), with the wrapping key's *id* as
//! additional authenticated data. Binding the id means a key wrapped for master key `a` does
//! not unwrap under a master key `b` that happens to hold the same bytes under another name.
//!
//! The same primitive wraps data keys under key-encryption keys in double wrapping
//! (`wrap_with_aad`); there the AAD is the KEK's raw 16-byte id, as in parquet-mr's
//! `FileKeyWrapper` and Arrow C++'s `file_key_wrapper.cc`.

use aws_lc_rs::aead::{
    AES_128_GCM, AES_192_GCM, AES_256_GCM, Aad, Algorithm, LessSafeKey, NONCE_LEN, Nonce,
    UnboundKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use coffer_crypto::SecretKey;
use zeroize::Zeroizing;

use crate::{Error, Result};

/// GCM tag length.
const TAG_LEN: usize = 16;

/// Wraps `key_bytes` under `master_key`, binding `master_key_id`: the KMS `wrapKey` call.
pub fn wrap(master_key: &SecretKey, master_key_id: &str, key_bytes: &[u8]) -> Result<String> {
    wrap_with_aad(master_key, master_key_id.as_bytes(), key_bytes)
}

/// Unwraps what [`wrap`] produced: the KMS `unwrapKey` call.
///
/// Errors: [`Error::WrappedKey`] for text that is not base64 or is too short, and
/// [`Error::KeyUnwrap`] naming `master_key_id` when the tag does not verify.
pub fn unwrap(master_key: &SecretKey, master_key_id: &str, wrapped: &str) -> Result<SecretKey> {
    unwrap_with_aad(master_key, master_key_id.as_bytes(), wrapped, master_key_id)
}

/// AES-GCM key wrapping with an explicit AAD (`EncryptKeyLocally` in the key tools).
pub(crate) fn wrap_with_aad(
    wrapping_key: &SecretKey,
    aad: &[u8],
    key_bytes: &[u8],
) -> Result<String> {
    let key = gcm_key(wrapping_key)?;
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| Error::Internal("CSPRNG failed".into()))?;
    let mut sealed = Zeroizing::new(Vec::with_capacity(
        NONCE_LEN
            .saturating_add(key_bytes.len())
            .saturating_add(TAG_LEN),
    ));
    sealed.extend_from_slice(&nonce);
    let mut body = Zeroizing::new(key_bytes.to_vec());
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut body,
        )
        .map_err(|_| Error::Internal("AES-GCM seal failed".into()))?;
    sealed.extend_from_slice(&body);
    sealed.extend_from_slice(tag.as_ref());
    Ok(B64.encode(&*sealed))
}

/// Inverse of [`wrap_with_aad`]; `who` names the wrapping key in errors.
pub(crate) fn unwrap_with_aad(
    wrapping_key: &SecretKey,
    aad: &[u8],
    wrapped: &str,
    who: &str,
) -> Result<SecretKey> {
    let mut raw = Zeroizing::new(B64.decode(wrapped.trim()).map_err(|e| Error::WrappedKey {
        reason: format!("not base64: {e}"),
    })?);
    let min = NONCE_LEN.saturating_add(TAG_LEN);
    if raw.len() <= min {
        return Err(Error::WrappedKey {
            reason: format!("{} bytes; a wrapped key has more than {min}", raw.len()),
        });
    }
    let (nonce, body) = raw.split_at_mut(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce)
        .map_err(|_| Error::Internal("nonce length".into()))?;
    let key = gcm_key(wrapping_key)?;
    let plain = key
        .open_in_place(nonce, Aad::from(aad), body)
        .map_err(|_| Error::KeyUnwrap {
            master_key_id: who.to_owned(),
        })?;
    SecretKey::from_bytes(plain).map_err(|e| Error::KeyMaterial {
        reason: format!("the key unwrapped with {who} is not an AES key: {e}"),
    })
}

fn gcm_key(key: &SecretKey) -> Result<LessSafeKey> {
    let bytes = key.expose_secret();
    let algorithm: &'static Algorithm = match bytes.len() {
        16 => &AES_128_GCM,
        24 => &AES_192_GCM,
        32 => &AES_256_GCM,
        n => return Err(Error::ApiMisuse(format!("a {n}-byte wrapping key"))),
    };
    let unbound = UnboundKey::new(algorithm, bytes)
        .map_err(|_| Error::Internal("AES-GCM key setup failed".into()))?;
    Ok(LessSafeKey::new(unbound))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(bits: usize) -> SecretKey {
        SecretKey::generate(bits).unwrap()
    }

    #[test]
    fn round_trips_for_every_master_key_length() {
        for bits in [128, 192, 256] {
            let mk = key(bits);
            let dek = key(128);
            let w = wrap(&mk, "mk1", dek.expose_secret()).unwrap();
            assert_eq!(B64.decode(&w).unwrap().len(), 12 + 16 + 16);
            assert_eq!(unwrap(&mk, "mk1", &w).unwrap(), dek);
        }
    }

    #[test]
    fn the_master_key_id_is_bound() {
        let mk = key(256);
        let w = wrap(&mk, "mk1", key(128).expose_secret()).unwrap();
        match unwrap(&mk, "mk2", &w) {
            Err(Error::KeyUnwrap { master_key_id }) => assert_eq!(master_key_id, "mk2"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wrong_key_and_bad_text_are_told_apart() {
        let mk = key(128);
        let w = wrap(&mk, "mk", key(128).expose_secret()).unwrap();
        let err = unwrap(&key(128), "mk", &w).unwrap_err();
        assert!(err.to_string().contains("mk"), "{err}");
        assert!(matches!(err, Error::KeyUnwrap { .. }));
        assert!(matches!(
            unwrap(&key(128), "mk", "%%%"),
            Err(Error::WrappedKey { .. })
        ));
        let short = B64.encode([0u8; 28]);
        assert!(matches!(
            unwrap(&key(128), "mk", &short),
            Err(Error::WrappedKey { .. })
        ));
        let mut raw = B64.decode(&w).unwrap();
        raw[20] ^= 1;
        assert!(matches!(
            unwrap(&mk, "mk", &B64.encode(raw)),
            Err(Error::KeyUnwrap { .. })
        ));
    }

    #[test]
    fn unwrapped_keys_must_be_aes_keys() {
        let mk = key(128);
        let w = wrap(&mk, "mk", &[7u8; 5]).unwrap();
        assert!(matches!(
            unwrap(&mk, "mk", &w),
            Err(Error::KeyMaterial { .. })
        ));
    }
}
