//! The party's home directory and the files in it.

use std::path::{Path, PathBuf};

use crate::Error;

/// A party's home directory.
///
/// ```text
/// identity.json      public identity (name, Ed25519 key, age recipient)   0644
/// signing.key        Ed25519 signing key                                   0600
/// age-identity.txt   X25519 identity, in the age-keygen format            0600
/// keyring.json       data and master keys by id                            0600
/// ```
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// A home at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The home named by `--home`, else `$COFFER_HOME`, else `~/.coffer`.
    pub fn resolve(explicit: Option<PathBuf>) -> Result<Self, Error> {
        if let Some(root) = explicit {
            return Ok(Self::new(root));
        }
        if let Some(root) = std::env::var_os("COFFER_HOME").filter(|v| !v.is_empty()) {
            return Ok(Self::new(root));
        }
        match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => Ok(Self::new(PathBuf::from(home).join(".coffer"))),
            None => Err(Error::InvalidArgument(
                "no home directory: pass --home DIR or set COFFER_HOME".into(),
            )),
        }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The public identity file.
    pub fn public_identity_path(&self) -> PathBuf {
        self.root.join("identity.json")
    }

    /// The Ed25519 signing key.
    pub fn signing_key_path(&self) -> PathBuf {
        self.root.join("signing.key")
    }

    /// The age identity file; `age -d -i` takes it as is.
    pub fn age_identity_path(&self) -> PathBuf {
        self.root.join("age-identity.txt")
    }

    /// The keyring.
    pub fn keyring_path(&self) -> PathBuf {
        self.root.join("keyring.json")
    }
}
