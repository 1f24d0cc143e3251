//! The party's keyring: data and master keys by id, in one private file.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use coffer_crypto::{KeyId, KeySource, SecretKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::fsutil::{create_private_dir, write_file};
use crate::{Error, Home};

/// A party's keys by id. Master keys for Parquet files live here too: the keyring is the
/// party's local-wrap KMS (see `coffer-parquet`'s `kms`).
///
/// Stored as `keyring.json`, mode 0600. Changes are written atomically.
pub struct Keyring {
    path: PathBuf,
    keys: BTreeMap<KeyId, SecretKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("path", &self.path)
            .field("ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What `coffer key list` shows: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// The key id.
    pub id: String,
    /// The key size.
    pub bits: usize,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringFile {
    version: u32,
    keys: Vec<StoredKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredKey {
    id: String,
    hex: Zeroizing<String>,
}

impl Keyring {
    /// Opens the keyring in `home`; a home with no keyring yet has an empty one.
    pub fn open(home: &Home) -> Result<Self, Error> {
        let path = home.keyring_path();
        if !path.exists() {
            return Ok(Self {
                path,
                keys: BTreeMap::new(),
            });
        }
        let text = Zeroizing::new(fs::read_to_string(&path).map_err(Error::io(&path))?);
        let malformed = |reason: String| Error::Malformed {
            path: path.clone(),
            reason,
        };
        let file: KeyringFile =
            serde_json::from_str(&text).map_err(|e| malformed(e.to_string()))?;
        if file.version != 1 {
            return Err(malformed(format!(
                "keyring version {} is not supported",
                file.version
            )));
        }
        let mut keys = BTreeMap::new();
        for stored in file.keys {
            let id = KeyId::new(stored.id).map_err(|e| malformed(e.to_string()))?;
            let key =
                SecretKey::from_hex(&stored.hex).map_err(|e| malformed(format!("{id}: {e}")))?;
            if keys.insert(id.clone(), key).is_some() {
                return Err(malformed(format!("key {id} appears twice")));
            }
        }
        Ok(Self { path, keys })
    }

    /// Adds a key, refusing to replace one with the same id, and saves the keyring.
    pub fn insert(&mut self, id: KeyId, key: SecretKey) -> Result<(), Error> {
        if self.keys.contains_key(&id) {
            return Err(Error::KeyExists { id: id.to_string() });
        }
        self.keys.insert(id.clone(), key);
        if let Err(e) = self.save() {
            self.keys.remove(&id);
            return Err(e);
        }
        Ok(())
    }

    /// The ids and sizes of every key, in id order.
    pub fn list(&self) -> Vec<KeyInfo> {
        self.keys
            .iter()
            .map(|(id, k)| KeyInfo {
                id: id.to_string(),
                bits: k.bits(),
            })
            .collect()
    }

    fn save(&self) -> Result<(), Error> {
        if let Some(dir) = self.path.parent() {
            create_private_dir(dir)?;
        }
        let file = KeyringFile {
            version: 1,
            keys: self
                .keys
                .iter()
                .map(|(id, key)| StoredKey {
                    id: id.to_string(),
                    hex: key.to_hex(),
                })
                .collect(),
        };
        let text = Zeroizing::new(
            serde_json::to_string_pretty(&file)
                .map_err(|e| Error::InvalidArgument(e.to_string()))?,
        );
        write_file(&self.path, text.as_bytes(), 0o600, false)
    }
}

impl KeySource for Keyring {
    fn key(&self, id: &KeyId) -> Result<SecretKey, coffer_crypto::Error> {
        self.keys
            .get(id)
            .cloned()
            .ok_or_else(|| coffer_crypto::Error::KeyNotFound { id: id.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_persist_and_are_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let mut ring = Keyring::open(&home).unwrap();
        let key = SecretKey::generate(256).unwrap();
        let id = KeyId::new("k1").unwrap();
        ring.insert(id.clone(), key.clone()).unwrap();
        assert!(matches!(
            ring.insert(id.clone(), SecretKey::generate(128).unwrap()),
            Err(Error::KeyExists { .. })
        ));
        let reopened = Keyring::open(&home).unwrap();
        assert_eq!(reopened.key(&id).unwrap(), key);
        assert_eq!(
            reopened.list(),
            vec![KeyInfo {
                id: "k1".into(),
                bits: 256
            }]
        );
        let missing = reopened.key(&KeyId::new("nope").unwrap()).unwrap_err();
        assert!(missing.to_string().contains("nope"));
        assert!(!format!("{reopened:?}").contains(&*key.to_hex()));
    }

    #[test]
    fn corrupt_keyrings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        fs::write(
            home.keyring_path(),
            r#"{"version":1,"keys":[{"id":"a","hex":"zz"}]}"#,
        )
        .unwrap();
        assert!(matches!(Keyring::open(&home), Err(Error::Malformed { .. })));
    }
}
