//! Secret keys and their names.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::Error;

/// The name of a key: 1 to 128 characters from `[A-Za-z0-9._:@-]`.
///
/// Key ids appear in file headers and Parquet key metadata, so they are public; the restricted
/// alphabet keeps them safe to print and to use as file names.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// The longest key id accepted.
    pub const MAX_LEN: usize = 128;

    /// Validates `id` as a key id.
    pub fn new(id: impl Into<String>) -> Result<Self, Error> {
        let id = id.into();
        let reason = if id.is_empty() {
            Some("empty")
        } else if id.len() > Self::MAX_LEN {
            Some("longer than 128 bytes")
        } else if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:@-".contains(&b))
        {
            Some("only A-Z a-z 0-9 . _ : @ - are allowed")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(Error::InvalidKeyId { id, reason }),
            None => Ok(Self(id)),
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({:?})", self.0)
    }
}

impl std::str::FromStr for KeyId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::new(s)
    }
}

/// Symmetric key material: 16, 24 or 32 bytes.
///
/// Zeroized on drop, never printed (`Debug` shows only the size), compared in constant time.
/// Getting at the bytes takes an explicit [`SecretKey::expose_secret`].
#[derive(Clone)]
pub struct SecretKey(Zeroizing<Vec<u8>>);

impl SecretKey {
    /// Wraps existing key bytes; they must be 16, 24 or 32 bytes long (AES-128/192/256).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        match bytes.len() {
            16 | 24 | 32 => Ok(Self(Zeroizing::new(bytes.to_vec()))),
            n => Err(Error::InvalidKey {
                reason: format!("{n} bytes; expected 16, 24 or 32"),
            }),
        }
    }

    /// Parses a key from hex (as `coffer key import --hex` takes it).
    pub fn from_hex(text: &str) -> Result<Self, Error> {
        let bytes = Zeroizing::new(hex::decode(text.trim()).map_err(|e| Error::InvalidKey {
            reason: format!("not hex: {e}"),
        })?);
        Self::from_bytes(&bytes)
    }

    /// Draws a fresh key of `bits` (128, 192 or 256) from the system's CSPRNG.
    pub fn generate(bits: usize) -> Result<Self, Error> {
        let len = match bits {
            128 => 16,
            192 => 24,
            256 => 32,
            _ => {
                return Err(Error::ApiMisuse(format!(
                    "{bits}-bit keys; use 128, 192 or 256"
                )));
            }
        };
        let mut bytes = Zeroizing::new(vec![0u8; len]);
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| Error::Internal("CSPRNG failed".into()))?;
        Ok(Self(bytes))
    }

    /// The key length in bits.
    pub fn bits(&self) -> usize {
        self.0.len().saturating_mul(8)
    }

    /// The raw key bytes. Every call site is a place where the secret leaves this type.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// The key as lowercase hex, zeroized on drop.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(&*self.0))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(<redacted {} bits>)", self.bits())
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && bool::from(self.0.ct_eq(&other.0))
    }
}

impl Eq for SecretKey {}

/// Where readers and writers get keys by id.
///
/// A party's keyring is one; the broker's per-job key release is another. Implementations must
/// return [`Error::KeyNotFound`] naming the id when they do not hold a key, so that a user learns
/// which key is missing.
pub trait KeySource: Send + Sync + fmt::Debug {
    /// The key named `id`.
    fn key(&self, id: &KeyId) -> Result<SecretKey, Error>;
}

/// Keys held in memory: for one job's released keys, benchmarks and tests.
#[derive(Debug, Default, Clone)]
pub struct MemoryKeys(std::collections::BTreeMap<KeyId, SecretKey>);

impl MemoryKeys {
    /// An empty key set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the key named `id`; returns `self` for chaining.
    pub fn with(mut self, id: KeyId, key: SecretKey) -> Self {
        self.0.insert(id, key);
        self
    }

    /// Adds or replaces the key named `id`.
    pub fn insert(&mut self, id: KeyId, key: SecretKey) {
        self.0.insert(id, key);
    }

    /// The keys, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&KeyId, &SecretKey)> {
        self.0.iter()
    }

    /// Removes the key named `id`, returning it if it was there.
    pub fn remove(&mut self, id: &KeyId) -> Option<SecretKey> {
        self.0.remove(id)
    }
}

impl KeySource for MemoryKeys {
    fn key(&self, id: &KeyId) -> Result<SecretKey, Error> {
        self.0
            .get(id)
            .cloned()
            .ok_or_else(|| Error::KeyNotFound { id: id.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_are_validated() {
        assert!(KeyId::new("kf").is_ok());
        assert!(KeyId::new("alpha.patients:v1@2026").is_ok());
        assert!(KeyId::new("").is_err());
        assert!(KeyId::new("a/b").is_err());
        assert!(KeyId::new("x".repeat(129)).is_err());
    }

    #[test]
    fn debug_never_prints_key_bytes() {
        let key = SecretKey::from_hex("00112233445566778899aabbccddeeff").unwrap();
        let shown = format!("{key:?}");
        assert_eq!(shown, "SecretKey(<redacted 128 bits>)");
        assert!(!shown.contains("0011"));
    }

    #[test]
    fn memory_keys_name_missing_ids() {
        let id = KeyId::new("a").unwrap();
        let keys = MemoryKeys::new().with(id.clone(), SecretKey::generate(128).unwrap());
        assert_eq!(keys.key(&id).unwrap().bits(), 128);
        let err = keys.key(&KeyId::new("b").unwrap()).unwrap_err();
        assert_eq!(err.to_string(), "key not found: b");
    }

    #[test]
    fn keys_have_aes_lengths() {
        assert!(SecretKey::from_bytes(&[0; 15]).is_err());
        assert_eq!(SecretKey::generate(256).unwrap().bits(), 256);
        assert!(SecretKey::generate(100).is_err());
        assert_ne!(
            SecretKey::generate(128).unwrap(),
            SecretKey::generate(128).unwrap()
        );
    }
}
