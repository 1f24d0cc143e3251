//! The broker's sealing key: AES-256-GCM over small secrets (data keys) at rest.

use std::fmt;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::error::StoreError;

/// Format byte of a sealed secret: `0x01 || nonce (12) || ciphertext || tag (16)`.
const VERSION: u8 = 1;
/// Domain separation for the associated data.
const AAD_DOMAIN: &[u8] = b"coffer-broker-sealed-key-v1\0";

/// The broker's 32-byte sealing key. Zeroized on drop, never printed.
///
/// In a real TEE it would be derived from the platform's sealing identity; in simulation it
/// lives in `broker-dir/sealing.key`.
pub struct SealingKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

impl SealingKey {
    /// Wraps existing key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Reads the key in `path`, or creates it (mode 0600, via a temporary file) if absent.
    pub fn load_or_create(path: &Path) -> Result<Self, StoreError> {
        crate::keyfile::load_or_create(path).map(Self)
    }

    /// The associated data binding a sealed data key to its manifest and dataset.
    pub fn key_aad(manifest: &coffer_manifest::ManifestHash, dataset: &str) -> Vec<u8> {
        let mut aad = AAD_DOMAIN.to_vec();
        aad.extend_from_slice(manifest.as_bytes());
        aad.extend_from_slice(dataset.as_bytes());
        aad
    }

    fn aead(&self) -> Result<LessSafeKey, StoreError> {
        UnboundKey::new(&AES_256_GCM, self.0.as_slice())
            .map(LessSafeKey::new)
            .map_err(|_| StoreError::Seal("bad sealing key".into()))
    }

    /// Seals `secret` with a fresh random nonce, binding `aad`.
    pub fn seal(&self, aad: &[u8], secret: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| StoreError::Seal("CSPRNG failed".into()))?;
        let mut buf = Zeroizing::new(secret.to_vec());
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut *buf,
            )
            .map_err(|_| StoreError::Seal("sealing failed".into()))?;
        let mut out = Vec::with_capacity(buf.len().saturating_add(1 + NONCE_LEN));
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Opens what [`SealingKey::seal`] produced with the same `aad`; fails on any change.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let (version, rest) = sealed
            .split_first()
            .ok_or_else(|| StoreError::Seal("empty sealed secret".into()))?;
        if *version != VERSION {
            return Err(StoreError::Seal(format!(
                "unknown sealed secret version {version}"
            )));
        }
        let (nonce, ciphertext) = rest
            .split_at_checked(NONCE_LEN)
            .ok_or_else(|| StoreError::Seal("sealed secret too short".into()))?;
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| StoreError::Seal("bad nonce".into()))?;
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        let len = self
            .aead()?
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| {
                StoreError::Seal("sealed secret does not open: wrong key, row or binding".into())
            })?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}
