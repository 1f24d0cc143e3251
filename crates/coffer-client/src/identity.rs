//! Party identities: an Ed25519 signing key and an X25519 age identity.

use std::fs;
use std::path::Path;

use age::secrecy::ExposeSecret;
use age::x25519;
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::fsutil::{create_private_dir, write_file};
use crate::{Error, Home};

const SIGNING_KEY_PREFIX: &str = "ed25519:";
const SIGNING_KEY_HEADER: &str = "# Coffer Ed25519 signing key (secret). Keep this file private.";

/// The public half of a party's identity: what parties exchange.
///
/// ```json
/// {"name": "alpha", "signing_key": "ed25519:<64 hex>", "recipient": "age1…"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicIdentity {
    /// The party's name, as collaboration manifests use it.
    pub name: String,
    /// `ed25519:` followed by the 32-byte verifying key in hex.
    pub signing_key: String,
    /// The party's age recipient, `age1…`.
    pub recipient: String,
}

impl PublicIdentity {
    /// Parses an exchanged public identity and checks that its keys are well formed.
    pub fn from_json(path: &Path, text: &str) -> Result<Self, Error> {
        let malformed = |reason: String| Error::Malformed {
            path: path.to_path_buf(),
            reason,
        };
        let id: Self = serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
        validate_name(&id.name)?;
        id.verifying_key().map_err(|e| malformed(e.to_string()))?;
        coffer_crypto::delivery::parse_recipient(&id.recipient)
            .map_err(|e| malformed(e.to_string()))?;
        Ok(id)
    }

    /// The Ed25519 verifying key.
    pub fn verifying_key(&self) -> Result<VerifyingKey, Error> {
        let bad = |reason: &str| Error::InvalidArgument(format!("signing key: {reason}"));
        let hex_key = self
            .signing_key
            .strip_prefix(SIGNING_KEY_PREFIX)
            .ok_or(bad("no ed25519: prefix"))?;
        let bytes: [u8; 32] = hex::decode(hex_key)
            .map_err(|_| bad("not hex"))?
            .try_into()
            .map_err(|_| bad("not 32 bytes"))?;
        VerifyingKey::from_bytes(&bytes).map_err(|_| bad("not a valid Ed25519 point"))
    }
}

/// A party's full identity, secrets included.
pub struct Identity {
    name: String,
    signing: SigningKey,
    age: x25519::Identity,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Generates a fresh identity named `name`.
    pub fn generate(name: &str) -> Result<Self, Error> {
        validate_name(name)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(seed.as_mut_slice())
            .map_err(|_| Error::Crypto(coffer_crypto::Error::Internal("CSPRNG failed".into())))?;
        Ok(Self {
            name: name.to_owned(),
            signing: SigningKey::from_bytes(&seed),
            age: x25519::Identity::generate(),
        })
    }

    /// Writes a new identity into `home`, refusing to overwrite any part of an existing one.
    pub fn init(home: &Home, name: &str) -> Result<Self, Error> {
        for path in [
            home.public_identity_path(),
            home.signing_key_path(),
            home.age_identity_path(),
        ] {
            if path.exists() {
                return Err(Error::IdentityExists { path });
            }
        }
        create_private_dir(home.root())?;
        let identity = Self::generate(name)?;
        let signing = Zeroizing::new(format!(
            "{SIGNING_KEY_HEADER}\n{}\n",
            hex::encode(identity.signing.to_bytes())
        ));
        write_file(&home.signing_key_path(), signing.as_bytes(), 0o600, true)?;
        let age_file = Zeroizing::new(format!(
            "# Coffer party {:?}\n# public key: {}\n{}\n",
            identity.name,
            identity.age.to_public(),
            identity.age.to_string().expose_secret()
        ));
        write_file(&home.age_identity_path(), age_file.as_bytes(), 0o600, true)?;
        let public = serde_json::to_string_pretty(&identity.public())
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        write_file(
            &home.public_identity_path(),
            format!("{public}\n").as_bytes(),
            0o644,
            true,
        )?;
        Ok(identity)
    }

    /// Loads the identity in `home` and checks that the public file matches the secrets.
    pub fn load(home: &Home) -> Result<Self, Error> {
        let public_path = home.public_identity_path();
        if !public_path.exists() {
            return Err(Error::NoIdentity {
                path: home.root().to_path_buf(),
            });
        }
        let public_text = fs::read_to_string(&public_path).map_err(Error::io(&public_path))?;
        let public = PublicIdentity::from_json(&public_path, &public_text)?;
        let identity = Self {
            signing: read_signing_key(&home.signing_key_path())?,
            age: read_age_identity(&home.age_identity_path())?,
            name: public.name.clone(),
        };
        if identity.public() != public {
            return Err(Error::Malformed {
                path: public_path,
                reason: "the public identity does not match the secret keys beside it".into(),
            });
        }
        Ok(identity)
    }

    /// The party's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public identity.
    pub fn public(&self) -> PublicIdentity {
        PublicIdentity {
            name: self.name.clone(),
            signing_key: format!(
                "{SIGNING_KEY_PREFIX}{}",
                hex::encode(self.signing.verifying_key().as_bytes())
            ),
            recipient: self.age.to_public().to_string(),
        }
    }

    /// The Ed25519 signing key.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// The X25519 age identity.
    pub fn age_identity(&self) -> &x25519::Identity {
        &self.age
    }
}

/// Party names follow the manifest's naming rule, so that every identity can be named in a
/// manifest.
fn validate_name(name: &str) -> Result<(), Error> {
    if coffer_manifest::is_valid_name(name) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "party name {name:?}: use 1 to 64 characters from A-Z a-z 0-9 . _ -"
        )))
    }
}

fn secret_lines(path: &Path) -> Result<Zeroizing<String>, Error> {
    Ok(Zeroizing::new(
        fs::read_to_string(path).map_err(Error::io(path))?,
    ))
}

fn read_signing_key(path: &Path) -> Result<SigningKey, Error> {
    let text = secret_lines(path)?;
    let malformed = |reason: &str| Error::Malformed {
        path: path.to_path_buf(),
        reason: reason.into(),
    };
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or(malformed("no key line"))?;
    let mut seed = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(line, seed.as_mut_slice())
        .map_err(|_| malformed("not 32 bytes of hex"))?;
    Ok(SigningKey::from_bytes(&seed))
}

fn read_age_identity(path: &Path) -> Result<x25519::Identity, Error> {
    let text = secret_lines(path)?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .ok_or_else(|| Error::Malformed {
            path: path.to_path_buf(),
            reason: "no AGE-SECRET-KEY-1 line".into(),
        })?;
    line.parse::<x25519::Identity>()
        .map_err(|e| Error::Malformed {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_load_round_trips_and_refuses_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().join("h"));
        let made = Identity::init(&home, "alpha").unwrap();
        let loaded = Identity::load(&home).unwrap();
        assert_eq!(made.public(), loaded.public());
        assert!(matches!(
            Identity::init(&home, "alpha"),
            Err(Error::IdentityExists { .. })
        ));
        assert!(format!("{loaded:?}").contains("alpha"));
        assert!(!format!("{loaded:?}").contains("AGE-SECRET"));
    }

    #[test]
    fn swapped_secret_files_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            Home::new(dir.path().join("a")),
            Home::new(dir.path().join("b")),
        );
        Identity::init(&a, "alpha").unwrap();
        Identity::init(&b, "beta").unwrap();
        fs::copy(b.signing_key_path(), a.signing_key_path()).unwrap();
        assert!(matches!(Identity::load(&a), Err(Error::Malformed { .. })));
    }

    #[test]
    fn public_identities_are_checked() {
        let id = Identity::generate("alpha").unwrap().public();
        let text = serde_json::to_string(&id).unwrap();
        let p = Path::new("x.json");
        assert_eq!(PublicIdentity::from_json(p, &text).unwrap(), id);
        let bad = text.replace("ed25519:", "ed25519:00");
        assert!(PublicIdentity::from_json(p, &bad).is_err());
        assert!(Identity::generate("no spaces").is_err());
    }
}
