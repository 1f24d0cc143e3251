//! Parquet key-management-tools key material (`PKMT1`), stored internally in key metadata.
//!
//! This is the JSON that parquet-mr's `FileKeyWrapper` and Arrow C++'s (so PyArrow's)
//! `CryptoFactory` put in the footer's and each column's key metadata, field for field and in
//! the same order:
//!
//! ```json
//! {"keyMaterialType":"PKMT1","internalStorage":true,"isFooterKey":true,
//!  "kmsInstanceID":"DEFAULT","kmsInstanceURL":"DEFAULT","masterKeyID":"kf",
//!  "wrappedDEK":"…","doubleWrapping":true,"keyEncryptionKeyID":"…","wrappedKEK":"…"}
//! ```
//!
//! - `kmsInstanceID` / `kmsInstanceURL` appear only in the footer key's material.
//! - Single wrapping: `wrappedDEK` is the data key wrapped by the master key ([`crate::kms`]).
//! - Double wrapping: a random 16-byte key-encryption key (KEK) with a random 16-byte id wraps
//!   the data key (AAD = the raw KEK id); the master key wraps the KEK. `keyEncryptionKeyID` is
//!   base64 of the KEK id. One KEK serves every key under the same master key in a file.
//!
//! Key metadata may instead be a **plain key id** (`kf`, `kc1`: what parquet-testing's files
//! and arrow-rs' own `KeyRetriever` example use); then the id names the data key itself.

#[cfg(feature = "tables")]
use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use coffer_crypto::{KeyId, KeySource, SecretKey};
use serde::{Deserialize, Serialize};

use crate::{Error, Result, kms};

/// The only key material type there is.
pub const KEY_MATERIAL_TYPE: &str = "PKMT1";
/// What CryptoFactory writes when no KMS instance is configured.
pub const DEFAULT_KMS_INSTANCE: &str = "DEFAULT";
/// Key metadata longer than this is refused before parsing.
pub const MAX_KEY_METADATA_LEN: usize = 64 * 1024;
// Key wrapping is only needed to write files.
#[cfg(feature = "tables")]
const KEK_LEN: usize = 16;
#[cfg(feature = "tables")]
const KEK_ID_LEN: usize = 16;

/// Where a data key comes from, as read from a footer's or column's key metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMetadata {
    /// The metadata is a key id naming the data key itself.
    KeyId(KeyId),
    /// The metadata is `PKMT1` key material holding the wrapped data key.
    Material(KeyMaterial),
}

/// Parsed `PKMT1` key material with internal storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    /// The KMS instance, present exactly for the footer key.
    pub footer: Option<KmsInstance>,
    /// The master key that wraps the data key (or, double-wrapped, the KEK).
    pub master_key_id: String,
    /// `base64(nonce ‖ ciphertext ‖ tag)` of the data key.
    pub wrapped_dek: String,
    /// Present when the data key is wrapped by a key-encryption key.
    pub double_wrapping: Option<DoubleWrapping>,
}

/// `kmsInstanceID` and `kmsInstanceURL` of a footer key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsInstance {
    pub id: String,
    pub url: String,
}

/// The key-encryption key of a double-wrapped data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoubleWrapping {
    /// `keyEncryptionKeyID`: base64 of the KEK's 16-byte id.
    pub kek_id: String,
    /// `wrappedKEK`: the KEK wrapped by the master key.
    pub wrapped_kek: String,
}

/// The JSON object exactly as written; every field optional so that validation can say which
/// one is missing, unknown fields refused.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    #[serde(rename = "keyMaterialType")]
    key_material_type: Option<String>,
    #[serde(rename = "internalStorage", skip_serializing_if = "Option::is_none")]
    internal_storage: Option<bool>,
    #[serde(rename = "keyReference", skip_serializing_if = "Option::is_none")]
    key_reference: Option<String>,
    #[serde(rename = "isFooterKey", skip_serializing_if = "Option::is_none")]
    is_footer_key: Option<bool>,
    #[serde(rename = "kmsInstanceID", skip_serializing_if = "Option::is_none")]
    kms_instance_id: Option<String>,
    #[serde(rename = "kmsInstanceURL", skip_serializing_if = "Option::is_none")]
    kms_instance_url: Option<String>,
    #[serde(rename = "masterKeyID", skip_serializing_if = "Option::is_none")]
    master_key_id: Option<String>,
    #[serde(rename = "wrappedDEK", skip_serializing_if = "Option::is_none")]
    wrapped_dek: Option<String>,
    #[serde(rename = "doubleWrapping", skip_serializing_if = "Option::is_none")]
    double_wrapping: Option<bool>,
    #[serde(rename = "keyEncryptionKeyID", skip_serializing_if = "Option::is_none")]
    kek_id: Option<String>,
    #[serde(rename = "wrappedKEK", skip_serializing_if = "Option::is_none")]
    wrapped_kek: Option<String>,
}

fn bad(reason: impl Into<String>) -> Error {
    Error::KeyMaterial {
        reason: reason.into(),
    }
}

fn required<T>(v: Option<T>, field: &str) -> Result<T> {
    v.ok_or_else(|| bad(format!("missing field {field}")))
}

fn forbidden<T>(v: &Option<T>, field: &str, unless: &str) -> Result<()> {
    match v {
        Some(_) => Err(bad(format!("field {field} is only allowed {unless}"))),
        None => Ok(()),
    }
}

impl KeyMetadata {
    /// Parses key metadata bytes: JSON key material if it starts with `{`, else a key id.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.is_empty() {
            return Err(bad("empty key metadata"));
        }
        if bytes.len() > MAX_KEY_METADATA_LEN {
            return Err(bad(format!("{} bytes of key metadata", bytes.len())));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| bad("key metadata is not UTF-8"))?;
        if text.trim_start().starts_with('{') {
            KeyMaterial::parse(text).map(KeyMetadata::Material)
        } else {
            KeyId::new(text).map(KeyMetadata::KeyId).map_err(|e| {
                bad(format!(
                    "key metadata is neither JSON key material nor a key id: {e}"
                ))
            })
        }
    }

    /// The key this metadata names in a key source: the plain id, or the master key id.
    pub fn key_name(&self) -> &str {
        match self {
            KeyMetadata::KeyId(id) => id.as_str(),
            KeyMetadata::Material(m) => &m.master_key_id,
        }
    }

    /// Recovers the data key, fetching the plain id or master key from `keys`.
    pub fn data_key(&self, keys: &dyn KeySource) -> Result<SecretKey> {
        match self {
            KeyMetadata::KeyId(id) => Ok(keys.key(id)?),
            KeyMetadata::Material(m) => m.unwrap_data_key(keys),
        }
    }
}

impl KeyMaterial {
    /// Parses key material JSON strictly: unknown, duplicate, missing or misplaced fields, a
    /// type other than `PKMT1` and external storage are all errors.
    pub fn parse(text: &str) -> Result<Self> {
        let w: Wire = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let kind = required(w.key_material_type, "keyMaterialType")?;
        if kind != KEY_MATERIAL_TYPE {
            return Err(Error::Unsupported(format!(
                "key material type {kind:?} (only {KEY_MATERIAL_TYPE})"
            )));
        }
        if w.internal_storage == Some(false) || w.key_reference.is_some() {
            return Err(Error::Unsupported(
                "external key material (a key-material file beside the Parquet file); \
                 write with internal key material"
                    .into(),
            ));
        }
        required(w.internal_storage, "internalStorage")?;
        let footer = if required(w.is_footer_key, "isFooterKey")? {
            Some(KmsInstance {
                id: required(w.kms_instance_id, "kmsInstanceID")?,
                url: required(w.kms_instance_url, "kmsInstanceURL")?,
            })
        } else {
            forbidden(&w.kms_instance_id, "kmsInstanceID", "for the footer key")?;
            forbidden(&w.kms_instance_url, "kmsInstanceURL", "for the footer key")?;
            None
        };
        let double_wrapping = if required(w.double_wrapping, "doubleWrapping")? {
            Some(DoubleWrapping {
                kek_id: required(w.kek_id, "keyEncryptionKeyID")?,
                wrapped_kek: required(w.wrapped_kek, "wrappedKEK")?,
            })
        } else {
            forbidden(&w.kek_id, "keyEncryptionKeyID", "with double wrapping")?;
            forbidden(&w.wrapped_kek, "wrappedKEK", "with double wrapping")?;
            None
        };
        Ok(KeyMaterial {
            footer,
            master_key_id: required(w.master_key_id, "masterKeyID")?,
            wrapped_dek: required(w.wrapped_dek, "wrappedDEK")?,
            double_wrapping,
        })
    }

    /// The JSON, with fields in the order Arrow C++ writes them.
    pub fn to_json(&self) -> String {
        let (kms_id, kms_url) = match &self.footer {
            Some(k) => (Some(k.id.clone()), Some(k.url.clone())),
            None => (None, None),
        };
        let (kek_id, wrapped_kek) = match &self.double_wrapping {
            Some(d) => (Some(d.kek_id.clone()), Some(d.wrapped_kek.clone())),
            None => (None, None),
        };
        let wire = Wire {
            key_material_type: Some(KEY_MATERIAL_TYPE.into()),
            internal_storage: Some(true),
            key_reference: None,
            is_footer_key: Some(self.footer.is_some()),
            kms_instance_id: kms_id,
            kms_instance_url: kms_url,
            master_key_id: Some(self.master_key_id.clone()),
            wrapped_dek: Some(self.wrapped_dek.clone()),
            double_wrapping: Some(self.double_wrapping.is_some()),
            kek_id,
            wrapped_kek,
        };
        // A struct of strings and bools always serialises; the fallback is unreachable.
        serde_json::to_string(&wire).unwrap_or_default()
    }

    fn unwrap_data_key(&self, keys: &dyn KeySource) -> Result<SecretKey> {
        let master_id = KeyId::new(self.master_key_id.as_str())?;
        let master = keys.key(&master_id)?;
        match &self.double_wrapping {
            None => kms::unwrap(&master, &self.master_key_id, &self.wrapped_dek),
            Some(d) => {
                let kek = kms::unwrap(&master, &self.master_key_id, &d.wrapped_kek)?;
                let kek_id = B64
                    .decode(d.kek_id.trim())
                    .map_err(|e| bad(format!("keyEncryptionKeyID is not base64: {e}")))?;
                let who = format!(
                    "key-encryption key {} (under master key {})",
                    d.kek_id, self.master_key_id
                );
                kms::unwrap_with_aad(&kek, &kek_id, &self.wrapped_dek, &who)
            }
        }
    }
}

#[cfg(feature = "tables")]
/// Writes key material for one file: the `FileKeyWrapper` of the key tools.
pub(crate) struct KeyWrapper<'a> {
    keys: &'a dyn KeySource,
    double_wrapping: bool,
    keks: HashMap<KeyId, Kek>,
}

#[cfg(feature = "tables")]
struct Kek {
    key: SecretKey,
    id: [u8; KEK_ID_LEN],
    wrapped: String,
}

#[cfg(feature = "tables")]
impl<'a> KeyWrapper<'a> {
    pub(crate) fn new(keys: &'a dyn KeySource, double_wrapping: bool) -> Self {
        Self {
            keys,
            double_wrapping,
            keks: HashMap::new(),
        }
    }

    /// Wraps `dek` for `master_key_id` and returns the key metadata to store.
    pub(crate) fn key_metadata(
        &mut self,
        dek: &SecretKey,
        master_key_id: &KeyId,
        is_footer_key: bool,
    ) -> Result<Vec<u8>> {
        let master = self.keys.key(master_key_id)?;
        let (wrapped_dek, double_wrapping) = if self.double_wrapping {
            let kek = match self.keks.get(master_key_id) {
                Some(k) => k,
                None => {
                    let kek = new_kek(&master, master_key_id)?;
                    self.keks.entry(master_key_id.clone()).or_insert(kek)
                }
            };
            let wrapped = kms::wrap_with_aad(&kek.key, &kek.id, dek.expose_secret())?;
            let d = DoubleWrapping {
                kek_id: B64.encode(kek.id),
                wrapped_kek: kek.wrapped.clone(),
            };
            (wrapped, Some(d))
        } else {
            (
                kms::wrap(&master, master_key_id.as_str(), dek.expose_secret())?,
                None,
            )
        };
        let footer = is_footer_key.then(|| KmsInstance {
            id: DEFAULT_KMS_INSTANCE.into(),
            url: DEFAULT_KMS_INSTANCE.into(),
        });
        let material = KeyMaterial {
            footer,
            master_key_id: master_key_id.as_str().to_owned(),
            wrapped_dek,
            double_wrapping,
        };
        Ok(material.to_json().into_bytes())
    }
}

#[cfg(feature = "tables")]
fn new_kek(master: &SecretKey, master_key_id: &KeyId) -> Result<Kek> {
    let key = SecretKey::generate(KEK_LEN.saturating_mul(8))?;
    let mut id = [0u8; KEK_ID_LEN];
    aws_lc_rs::rand::fill(&mut id).map_err(|_| Error::Internal("CSPRNG failed".into()))?;
    let wrapped = kms::wrap(master, master_key_id.as_str(), key.expose_secret())?;
    Ok(Kek { key, id, wrapped })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Keys(Vec<(KeyId, SecretKey)>);
    impl KeySource for Keys {
        fn key(&self, id: &KeyId) -> Result<SecretKey, coffer_crypto::Error> {
            self.0
                .iter()
                .find(|(i, _)| i == id)
                .map(|(_, k)| k.clone())
                .ok_or_else(|| coffer_crypto::Error::KeyNotFound { id: id.to_string() })
        }
    }

    fn keys() -> Keys {
        Keys(vec![
            (KeyId::new("mf").unwrap(), SecretKey::generate(256).unwrap()),
            (KeyId::new("mc").unwrap(), SecretKey::generate(128).unwrap()),
        ])
    }

    #[test]
    fn wraps_and_unwraps_both_ways() {
        let keys = keys();
        for double in [false, true] {
            let mut w = KeyWrapper::new(&keys, double);
            let dek = SecretKey::generate(128).unwrap();
            let md = w
                .key_metadata(&dek, &KeyId::new("mf").unwrap(), true)
                .unwrap();
            let parsed = KeyMetadata::parse(&md).unwrap();
            assert_eq!(parsed.key_name(), "mf");
            let KeyMetadata::Material(m) = &parsed else {
                panic!("not material")
            };
            assert_eq!(m.double_wrapping.is_some(), double);
            assert!(m.footer.is_some());
            assert_eq!(parsed.data_key(&keys).unwrap(), dek);
            assert_eq!(KeyMaterial::parse(&m.to_json()).unwrap(), *m);
        }
    }

    #[test]
    fn one_kek_per_master_key_per_file() {
        let keys = keys();
        let mut w = KeyWrapper::new(&keys, true);
        let mk = KeyId::new("mc").unwrap();
        let a = KeyMetadata::parse(
            &w.key_metadata(&SecretKey::generate(128).unwrap(), &mk, false)
                .unwrap(),
        )
        .unwrap();
        let b = KeyMetadata::parse(
            &w.key_metadata(&SecretKey::generate(128).unwrap(), &mk, false)
                .unwrap(),
        )
        .unwrap();
        let (KeyMetadata::Material(a), KeyMetadata::Material(b)) = (a, b) else {
            panic!()
        };
        assert_eq!(a.double_wrapping, b.double_wrapping);
        assert_ne!(a.wrapped_dek, b.wrapped_dek);
        assert_eq!(
            B64.decode(&a.double_wrapping.unwrap().kek_id)
                .unwrap()
                .len(),
            16
        );
    }

    #[test]
    fn field_order_matches_arrow_cpp() {
        let m = KeyMaterial {
            footer: Some(KmsInstance {
                id: "DEFAULT".into(),
                url: "DEFAULT".into(),
            }),
            master_key_id: "kf".into(),
            wrapped_dek: "d".into(),
            double_wrapping: Some(DoubleWrapping {
                kek_id: "i".into(),
                wrapped_kek: "k".into(),
            }),
        };
        assert_eq!(
            m.to_json(),
            concat!(
                r#"{"keyMaterialType":"PKMT1","internalStorage":true,"isFooterKey":true,"#,
                r#""kmsInstanceID":"DEFAULT","kmsInstanceURL":"DEFAULT","masterKeyID":"kf","#,
                r#""wrappedDEK":"d","doubleWrapping":true,"keyEncryptionKeyID":"i","#,
                r#""wrappedKEK":"k"}"#
            )
        );
    }

    #[test]
    fn strict_parsing() {
        let ok = concat!(
            r#"{"keyMaterialType":"PKMT1","internalStorage":true,"isFooterKey":false,"#,
            r#""masterKeyID":"m","wrappedDEK":"d","doubleWrapping":false}"#
        );
        assert!(KeyMaterial::parse(ok).is_ok());
        let cases = [
            (ok.replace("PKMT1", "PKMT2"), "PKMT2"),
            (
                ok.replace(
                    r#""doubleWrapping":false"#,
                    r#""doubleWrapping":false,"x":1"#,
                ),
                "unknown field",
            ),
            (ok.replace(r#","masterKeyID":"m""#, ""), "masterKeyID"),
            (
                ok.replace(r#""doubleWrapping":false"#, r#""doubleWrapping":true"#),
                "keyEncryptionKeyID",
            ),
            (
                ok.replace(r#""isFooterKey":false"#, r#""isFooterKey":true"#),
                "kmsInstanceID",
            ),
            (
                ok.replace(
                    r#""isFooterKey":false"#,
                    r#""isFooterKey":false,"kmsInstanceID":"x""#,
                ),
                "only allowed",
            ),
            (
                ok.replace(
                    r#""masterKeyID":"m""#,
                    r#""masterKeyID":"m","masterKeyID":"n""#,
                ),
                "duplicate",
            ),
            (ok.replace("true", "\"yes\""), "invalid type"),
            (
                ok.replace(r#""internalStorage":true"#, r#""internalStorage":false"#),
                "external",
            ),
            (
                r#"{"keyMaterialType":"PKMT1","internalStorage":false,"keyReference":"footerKey"}"#
                    .to_owned(),
                "external",
            ),
            (ok[..ok.len() - 1].to_owned(), "EOF"),
        ];
        for (text, needle) in cases {
            let err = KeyMaterial::parse(&text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn plain_ids_and_garbage() {
        assert_eq!(
            KeyMetadata::parse(b"kc1").unwrap(),
            KeyMetadata::KeyId(KeyId::new("kc1").unwrap())
        );
        for bad in [&b""[..], b"\xff\xfe", b"a b", b"[1]"] {
            assert!(
                matches!(KeyMetadata::parse(bad), Err(Error::KeyMaterial { .. })),
                "{bad:?}"
            );
        }
        assert!(KeyMetadata::parse(&vec![b'a'; MAX_KEY_METADATA_LEN + 1]).is_err());
    }

    #[test]
    fn missing_master_key_is_named() {
        let keys = keys();
        let mut w = KeyWrapper::new(&keys, false);
        let err = w
            .key_metadata(
                &SecretKey::generate(128).unwrap(),
                &KeyId::new("nope").unwrap(),
                true,
            )
            .unwrap_err();
        assert!(
            matches!(&err, Error::KeyNotFound { id } if id == "nope"),
            "{err}"
        );
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        fn material() -> impl Strategy<Value = KeyMaterial> {
            let text = ".{0,24}";
            (
                proptest::option::of((text, text)),
                text,
                text,
                proptest::option::of((text, text)),
            )
                .prop_map(|(footer, master_key_id, wrapped_dek, double)| KeyMaterial {
                    footer: footer.map(|(id, url)| KmsInstance { id, url }),
                    master_key_id,
                    wrapped_dek,
                    double_wrapping: double.map(|(kek_id, wrapped_kek)| DoubleWrapping {
                        kek_id,
                        wrapped_kek,
                    }),
                })
        }

        proptest! {
            #[test]
            fn serialised_material_parses_back_equal(m in material()) {
                prop_assert_eq!(KeyMaterial::parse(&m.to_json()).unwrap(), m);
            }

            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300))
            {
                let _ = KeyMetadata::parse(&bytes);
            }

            #[test]
            fn mutated_material_is_an_error_or_round_trips(
                m in material(),
                edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..4),
            ) {
                let mut bytes = m.to_json().into_bytes();
                for (at, b, op) in edits {
                    let at = at % (bytes.len() + 1);
                    match op {
                        0 => bytes.insert(at, b),
                        1 if at < bytes.len() => { bytes.remove(at); }
                        _ if at < bytes.len() => bytes[at] = b,
                        _ => {}
                    }
                }
                if let Ok(KeyMetadata::Material(parsed)) = KeyMetadata::parse(&bytes) {
                    prop_assert_eq!(KeyMaterial::parse(&parsed.to_json()).unwrap(), parsed);
                }
            }
        }
    }
}
