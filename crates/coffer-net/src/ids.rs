//! Hex ids as types, so that one id has one spelling: parsing accepts exactly the lowercase
//! hex digits of the right length, and printing gives them back. A manifest's hash is
//! [`ManifestHash`] (`sha256:<64 hex>`); a job's id is [`JobId`] (64 hex); the nonce a party
//! puts in a job is [`JobNonce`] (32 hex).

use std::fmt;
use std::str::FromStr;

pub use coffer_manifest::ManifestHash;
use serde::{Deserialize, Serialize};

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $len:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = String;

            /// Exactly the lowercase hex digits of the right length; the error never quotes
            /// the text.
            fn from_str(text: &str) -> Result<Self, String> {
                coffer_manifest::parse_lower_hex(text)
                    .map(Self)
                    .map_err(|reason| format!("{}: {reason}", $what))
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(text: String) -> Result<Self, String> {
                text.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.to_string()
            }
        }
    };
}

hex_id!(
    /// A job's id: SHA-256 of its spec's canonical JSON, 64 lowercase hex digits.
    JobId,
    32,
    "job id"
);

hex_id!(
    /// The nonce a party puts in a job it signs: 16 bytes, 32 lowercase hex digits.
    JobNonce,
    16,
    "job nonce"
);

impl JobNonce {
    /// A fresh random nonce.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn one_id_one_spelling() {
        let id: JobId = "ab".repeat(32).parse().unwrap();
        assert_eq!(id.to_string(), "ab".repeat(32));
        for bad in [
            "AB".repeat(32),
            "ab".repeat(31),
            "ab".repeat(33),
            format!("{}g", "a".repeat(63)),
            format!(" {}", "ab".repeat(32)),
            String::new(),
        ] {
            let err = bad.parse::<JobId>().unwrap_err();
            assert!(err.starts_with("job id: "), "{err}");
            assert!(bad.is_empty() || !err.contains(&bad), "{err}");
        }
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", "ab".repeat(32)));
        assert_eq!(serde_json::from_str::<JobId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<JobId>(&format!("\"{}\"", "AB".repeat(32))).is_err());
        assert!("00".repeat(16).parse::<JobNonce>().is_ok());
        assert!("00".repeat(32).parse::<JobNonce>().is_err());
        assert_ne!(JobNonce::random().unwrap(), JobNonce::random().unwrap());
    }
}
