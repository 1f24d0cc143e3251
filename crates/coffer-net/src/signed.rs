//! Party requests signed with the party's Ed25519 key.
//!
//! A signed request carries four headers:
//!
//! ```text
//! coffer-party:     the party's name, as in the manifest
//! coffer-time:      Unix seconds when it was signed
//! coffer-nonce:     32 hex digits, fresh per request
//! coffer-signature: base64 Ed25519 signature over the message below
//! ```
//!
//! The message is `coffer-request-v1\0` followed by, each ended by `\0`: the method, the path
//! and query, the audience (hex SHA-256 of the SubjectPublicKeyInfo of the server's attested
//! TLS key), the party, the time, the nonce, and the hex SHA-256 of the body. The audience
//! binds the request to the one service the party attested, so that a request cannot be
//! relayed to another instance; the time and the nonce let the server refuse replays
//! (it keeps nonces for the length of its window).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use http::HeaderMap;
use sha2::{Digest, Sha256};

/// Domain separation for request signatures.
pub const REQUEST_DOMAIN: &[u8] = b"coffer-request-v1\0";
pub const PARTY_HEADER: &str = "coffer-party";
pub const TIME_HEADER: &str = "coffer-time";
pub const NONCE_HEADER: &str = "coffer-nonce";
pub const SIGNATURE_HEADER: &str = "coffer-signature";

/// Why a signed request was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("request is not signed: header {0} is missing")]
    Missing(&'static str),
    #[error("header {0} is malformed")]
    Malformed(&'static str),
    #[error("party {0:?} is not known here")]
    UnknownParty(String),
    #[error("request signature does not verify for party {0:?}")]
    BadSignature(String),
}

impl AuthError {
    /// The stable name of the failed check.
    pub fn check(&self) -> &'static str {
        match self {
            Self::Missing(_) | Self::Malformed(_) => "request_signature",
            Self::UnknownParty(_) => "unknown_party",
            Self::BadSignature(_) => "request_signature",
        }
    }
}

/// The signature headers of a request, parsed but not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub party: String,
    pub time: i64,
    pub nonce: String,
    signature: Signature,
}

/// The bytes a party signs.
pub fn request_message(
    method: &str,
    path_and_query: &str,
    audience: &str,
    party: &str,
    time: i64,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut msg = REQUEST_DOMAIN.to_vec();
    for part in [
        method,
        path_and_query,
        audience,
        party,
        &time.to_string(),
        nonce,
        &hex::encode(Sha256::digest(body)),
    ] {
        msg.extend_from_slice(part.as_bytes());
        msg.push(0);
    }
    msg
}

/// A fresh 128-bit nonce, hex.
pub fn fresh_nonce() -> Result<String, getrandom::Error> {
    let mut n = [0u8; 16];
    getrandom::fill(&mut n)?;
    Ok(hex::encode(n))
}

/// The headers that sign a request of `party` with `key` at `time`.
#[allow(clippy::too_many_arguments)]
pub fn sign_request(
    key: &SigningKey,
    party: &str,
    method: &str,
    path_and_query: &str,
    audience: &str,
    body: &[u8],
    time: i64,
    nonce: &str,
) -> Vec<(&'static str, String)> {
    let msg = request_message(method, path_and_query, audience, party, time, nonce, body);
    let sig = key.sign(&msg);
    vec![
        (PARTY_HEADER, party.to_owned()),
        (TIME_HEADER, time.to_string()),
        (NONCE_HEADER, nonce.to_owned()),
        (SIGNATURE_HEADER, STANDARD.encode(sig.to_bytes())),
    ]
}

impl SignedHeaders {
    /// Parses the signature headers; `Missing` if the request is not signed at all.
    pub fn parse(headers: &HeaderMap) -> Result<Self, AuthError> {
        let get = |name: &'static str| -> Result<&str, AuthError> {
            headers
                .get(name)
                .ok_or(AuthError::Missing(name))?
                .to_str()
                .map_err(|_| AuthError::Malformed(name))
        };
        let party = get(PARTY_HEADER)?;
        if party.is_empty() || party.len() > 128 {
            return Err(AuthError::Malformed(PARTY_HEADER));
        }
        let time = get(TIME_HEADER)?
            .parse::<i64>()
            .map_err(|_| AuthError::Malformed(TIME_HEADER))?;
        let nonce = get(NONCE_HEADER)?;
        if nonce.len() != 32 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AuthError::Malformed(NONCE_HEADER));
        }
        let sig = STANDARD
            .decode(get(SIGNATURE_HEADER)?)
            .map_err(|_| AuthError::Malformed(SIGNATURE_HEADER))?;
        let sig: [u8; 64] = sig
            .as_slice()
            .try_into()
            .map_err(|_| AuthError::Malformed(SIGNATURE_HEADER))?;
        Ok(Self {
            party: party.to_owned(),
            time,
            nonce: nonce.to_ascii_lowercase(),
            signature: Signature::from_bytes(&sig),
        })
    }

    /// Verifies the signature with any of `keys` (the keys the server knows for the party).
    pub fn verify(
        &self,
        keys: &[VerifyingKey],
        method: &str,
        path_and_query: &str,
        audience: &str,
        body: &[u8],
    ) -> Result<(), AuthError> {
        if keys.is_empty() {
            return Err(AuthError::UnknownParty(self.party.clone()));
        }
        let msg = request_message(
            method,
            path_and_query,
            audience,
            &self.party,
            self.time,
            &self.nonce,
            body,
        );
        if keys
            .iter()
            .any(|k| k.verify_strict(&msg, &self.signature).is_ok())
        {
            Ok(())
        } else {
            Err(AuthError::BadSignature(self.party.clone()))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn round_trip_and_every_field_is_bound() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let nonce = fresh_nonce().unwrap();
        let signed = sign_request(&key, "alice", "POST", "/v1/keys", "aud", b"{}", 100, &nonce);
        let parsed = SignedHeaders::parse(&headers(&signed)).unwrap();
        let keys = [key.verifying_key()];
        parsed
            .verify(&keys, "POST", "/v1/keys", "aud", b"{}")
            .unwrap();
        for (m, p, a, b) in [
            ("GET", "/v1/keys", "aud", &b"{}"[..]),
            ("POST", "/v1/key", "aud", b"{}"),
            ("POST", "/v1/keys", "other", b"{}"),
            ("POST", "/v1/keys", "aud", b"{ }"),
        ] {
            assert_eq!(
                parsed.verify(&keys, m, p, a, b),
                Err(AuthError::BadSignature("alice".into()))
            );
        }
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert!(
            parsed
                .verify(&[other], "POST", "/v1/keys", "aud", b"{}")
                .is_err()
        );
        assert!(matches!(
            parsed.verify(&[], "POST", "/v1/keys", "aud", b"{}"),
            Err(AuthError::UnknownParty(_))
        ));
        // Time and party are signed too.
        let mut moved = headers(&signed);
        moved.insert(TIME_HEADER, "101".parse().unwrap());
        let p = SignedHeaders::parse(&moved).unwrap();
        assert!(p.verify(&keys, "POST", "/v1/keys", "aud", b"{}").is_err());
    }

    #[test]
    fn malformed_headers_are_named() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let signed = sign_request(&key, "a", "GET", "/", "x", b"", 1, &"0".repeat(32));
        for (i, name) in [PARTY_HEADER, TIME_HEADER, NONCE_HEADER, SIGNATURE_HEADER]
            .iter()
            .enumerate()
        {
            let mut h = headers(&signed);
            h.remove(*name);
            assert_eq!(SignedHeaders::parse(&h), Err(AuthError::Missing(name)));
            let mut h = headers(&signed);
            h.insert(*name, "not valid!".parse().unwrap());
            if i == 0 {
                continue; // any short name parses; it fails verification instead
            }
            assert_eq!(SignedHeaders::parse(&h), Err(AuthError::Malformed(name)));
        }
    }
}
