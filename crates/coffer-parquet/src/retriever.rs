//! The `KeyRetriever` that `parquet` calls with each footer's and column's key metadata.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use coffer_crypto::{KeySource, SecretKey};
use parquet::encryption::decrypt::{FileDecryptionProperties, KeyRetriever};
use parquet::errors::ParquetError;

use crate::key_material::KeyMetadata;
use crate::{Error, Result};

/// Options for reading encrypted files.
#[derive(Debug, Clone, Default)]
pub struct DecryptOptions {
    /// The AAD prefix, for files written with one they do not store. Supplying a prefix for a
    /// file that stores one overrides the stored prefix (and so must match it).
    pub aad_prefix: Option<Vec<u8>>,
}

/// Resolves key metadata (a plain key id, or `PKMT1` key material) to data keys through a
/// [`KeySource`]; plug it into any `parquet` reader with [`KeyResolver::decryption_properties`].
///
/// Data keys are cached per key-metadata string for the resolver's lifetime, so a column read
/// across many row groups unwraps its key once. `parquet` reduces retriever errors to strings;
/// the resolver keeps the first typed error so callers can report *which* key was missing.
pub struct KeyResolver {
    keys: Arc<dyn KeySource>,
    cache: Mutex<HashMap<Vec<u8>, SecretKey>>,
    first_failure: Mutex<Option<Error>>,
}

impl fmt::Debug for KeyResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyResolver")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl KeyResolver {
    /// A resolver over `keys`.
    pub fn new(keys: Arc<dyn KeySource>) -> Arc<Self> {
        Arc::new(Self {
            keys,
            cache: Mutex::new(HashMap::new()),
            first_failure: Mutex::new(None),
        })
    }

    /// The data key that `key_metadata` names.
    pub fn resolve(&self, key_metadata: &[u8]) -> Result<SecretKey> {
        if let Some(k) = lock(&self.cache).get(key_metadata) {
            return Ok(k.clone());
        }
        let key = KeyMetadata::parse(key_metadata)?.data_key(self.keys.as_ref())?;
        match key.bits() {
            128 | 256 => {}
            bits => {
                return Err(Error::Unsupported(format!(
                    "a {bits}-bit data key; arrow-rs decrypts only 128- and 256-bit keys"
                )));
            }
        }
        lock(&self.cache).insert(key_metadata.to_vec(), key.clone());
        Ok(key)
    }

    /// Takes the first error a `parquet` callback produced, if any.
    pub fn take_failure(&self) -> Option<Error> {
        lock(&self.first_failure).take()
    }

    /// Decryption properties that resolve keys through this resolver.
    pub fn decryption_properties(
        self: &Arc<Self>,
        opts: &DecryptOptions,
    ) -> Result<Arc<FileDecryptionProperties>> {
        let retriever: Arc<dyn KeyRetriever> = self.clone();
        let mut builder = FileDecryptionProperties::with_key_retriever(retriever);
        if let Some(prefix) = &opts.aad_prefix {
            builder = builder.with_aad_prefix(prefix.clone());
        }
        builder.build().map_err(|e| Error::Internal(e.to_string()))
    }
}

impl KeyRetriever for KeyResolver {
    fn retrieve_key(&self, key_metadata: &[u8]) -> parquet::errors::Result<Vec<u8>> {
        match self.resolve(key_metadata) {
            // parquet takes the key as a Vec; from here on it is in parquet's hands.
            Ok(key) => Ok(key.expose_secret().to_vec()),
            Err(e) => {
                let message = e.to_string();
                lock(&self.first_failure).get_or_insert(e);
                Err(ParquetError::General(message))
            }
        }
    }
}

/// Decryption properties resolving keys through `keys`, for readers built elsewhere (for
/// example a DataFusion `ParquetFormat`). Errors reach such readers as strings naming the key.
pub fn decryption_properties(
    keys: Arc<dyn KeySource>,
    opts: &DecryptOptions,
) -> Result<Arc<FileDecryptionProperties>> {
    KeyResolver::new(keys).decryption_properties(opts)
}
