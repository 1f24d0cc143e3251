//! The manifest hash: SHA-256 over the RFC 8785 (JCS) canonical JSON of the typed manifest.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::Error;
use crate::model::ManifestDoc;

const SHA256_PREFIX: &str = "sha256:";

/// A SHA-256 digest written `sha256:<64 lowercase hex>`: a manifest's hash, or a dataset's
/// pinned digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ManifestHash(pub [u8; 32]);

impl ManifestHash {
    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for ManifestHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SHA256_PREFIX}{}", hex::encode(self.0))
    }
}

impl fmt::Debug for ManifestHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for ManifestHash {
    type Err = String;

    /// Parses `sha256:<64 lowercase hex>`. Upper case is refused so that one digest has one
    /// spelling, and so one manifest hash.
    fn from_str(text: &str) -> Result<Self, String> {
        parse_sha256(text).map(Self)
    }
}

impl TryFrom<String> for ManifestHash {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<ManifestHash> for String {
    fn from(hash: ManifestHash) -> Self {
        hash.to_string()
    }
}

/// Parses `sha256:<64 lowercase hex>`; the error says what is wrong, for a typed error to carry.
pub(crate) fn parse_sha256(text: &str) -> Result<[u8; 32], String> {
    let hex_part = text
        .strip_prefix(SHA256_PREFIX)
        .ok_or_else(|| format!("{text:?}: expected sha256:<64 hex>"))?;
    parse_lower_hex32(hex_part).map_err(|reason| format!("{text:?}: {reason}"))
}

/// Exactly 64 lowercase hex digits.
pub(crate) fn parse_lower_hex32(text: &str) -> Result<[u8; 32], String> {
    parse_lower_hex(text)
}

/// Exactly `2 * N` lowercase hex digits: the one spelling of an `N`-byte id. The error says
/// what is wrong and never quotes the text.
pub fn parse_lower_hex<const N: usize>(text: &str) -> Result<[u8; N], String> {
    let digits = N.saturating_mul(2);
    if text.len() != digits {
        return Err(format!(
            "expected {digits} hex digits, found {}",
            text.len()
        ));
    }
    if !text
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err("expected lowercase hex digits".into());
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// The RFC 8785 canonical JSON of a manifest: what its hash is taken over.
///
/// The typed model is serialised to a `serde_json::Value` and then canonicalised, so map order
/// (which `serde_json`'s `preserve_order` would keep) never reaches the hash.
pub fn canonical_json(doc: &ManifestDoc) -> Result<Vec<u8>, Error> {
    let value = serde_json::to_value(doc).map_err(|e| Error::Canonical {
        reason: e.to_string(),
    })?;
    serde_json_canonicalizer::to_vec(&value).map_err(|e| Error::Canonical {
        reason: e.to_string(),
    })
}

/// SHA-256 over [`canonical_json`].
pub fn manifest_hash(doc: &ManifestDoc) -> Result<ManifestHash, Error> {
    let canonical = canonical_json(doc)?;
    Ok(ManifestHash(Sha256::digest(&canonical).into()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_and_refuse_other_spellings() {
        let text = format!("sha256:{}", "ab".repeat(32));
        let hash: ManifestHash = text.parse().unwrap();
        assert_eq!(hash.to_string(), text);
        for bad in [
            "sha256:".to_owned(),
            format!("sha256:{}", "AB".repeat(32)),
            format!("sha256:{}", "ab".repeat(31)),
            format!("sha384:{}", "ab".repeat(32)),
            format!("sha256:{}", "zz".repeat(32)),
            "ab".repeat(32),
        ] {
            assert!(bad.parse::<ManifestHash>().is_err(), "{bad}");
        }
    }

    /// RFC 8785 §3.2.2 and §3.2.3: the canonicaliser we use produces the RFC's bytes.
    #[test]
    fn canonicaliser_matches_rfc_8785_examples() {
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        let value: serde_json::Value = serde_json::from_str(input).unwrap();
        let out = serde_json_canonicalizer::to_string(&value).unwrap();
        assert_eq!(
            out,
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
        let sorting = r#"{
          "\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let value: serde_json::Value = serde_json::from_str(sorting).unwrap();
        let out = serde_json_canonicalizer::to_string(&value).unwrap();
        let values: Vec<&str> = [
            "Carriage Return",
            "One",
            "Control",
            "Latin Small Letter O With Diaeresis",
            "Euro Sign",
            "Emoji: Grinning Face",
            "Hebrew Letter Dalet With Dagesh",
        ]
        .to_vec();
        let order: Vec<usize> = values.iter().map(|v| out.find(v).unwrap()).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{out}");
    }
}
