//! Signatures over a manifest hash, and the `FILE.sigs` file that collects them.
//!
//! A signature is Ed25519 over `b"coffer-manifest-signature-v1\0" || hash` (the 32 raw bytes),
//! so a manifest signature can never be replayed as any other Coffer signature.
//!
//! ```json
//! {"manifest": "sha256:<hex>",
//!  "signatures": [{"party": "alpha", "signing_key": "ed25519:<hex>", "signature": "<base64>"}]}
//! ```

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::hash::ManifestHash;
use crate::manifest::{Manifest, Party, parse_signing_key};

/// The domain separator every manifest signature starts with.
pub const SIGNATURE_DOMAIN: &[u8] = b"coffer-manifest-signature-v1\0";

/// The bytes a party signs to approve the manifest with hash `hash`.
pub fn signing_message(hash: &ManifestHash) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNATURE_DOMAIN.len().saturating_add(32));
    message.extend_from_slice(SIGNATURE_DOMAIN);
    message.extend_from_slice(hash.as_bytes());
    message
}

/// One party's signature, as stored in a signatures file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureEntry {
    /// The signing party's name.
    pub party: String,
    /// The key it signed with, `ed25519:<hex>`.
    pub signing_key: String,
    /// The 64-byte Ed25519 signature, standard base64.
    pub signature: String,
}

/// A signatures file: the signatures collected for one manifest hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    /// The hash every signature in the file is meant to be over.
    pub manifest: ManifestHash,
    /// The signatures, one per party.
    #[serde(default)]
    pub signatures: Vec<SignatureEntry>,
}

impl SignatureFile {
    /// An empty file for `manifest`.
    pub fn new(manifest: ManifestHash) -> Self {
        Self {
            manifest,
            signatures: Vec::new(),
        }
    }

    /// Parses a signatures file.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        serde_json::from_str(text).map_err(|e| Error::MalformedSignatures {
            reason: e.to_string(),
        })
    }

    /// The file as pretty JSON, newline-terminated.
    pub fn to_json(&self) -> Result<String, Error> {
        let mut text = serde_json::to_string_pretty(self).map_err(|e| Error::Canonical {
            reason: e.to_string(),
        })?;
        text.push('\n');
        Ok(text)
    }

    /// Adds `entry`, replacing any earlier signature by the same party. Refuses an entry for
    /// another manifest: signatures over two hashes are never mixed in one file.
    pub fn add(&mut self, manifest: ManifestHash, entry: SignatureEntry) -> Result<(), Error> {
        if manifest != self.manifest {
            return Err(Error::SignaturesForOtherManifest {
                expected: manifest,
                found: self.manifest,
            });
        }
        self.signatures.retain(|e| e.party != entry.party);
        self.signatures.push(entry);
        Ok(())
    }
}

/// Signs `manifest` as `party` with `key`.
///
/// The signer must be a party of `manifest` with exactly this key, or, for an update, a party
/// of its `predecessor` (a party an update removes still approves it under the old rules).
pub fn sign(
    manifest: &Manifest,
    predecessor: Option<&Manifest>,
    party: &str,
    key: &SigningKey,
) -> Result<SignatureEntry, Error> {
    let verifying = key.verifying_key();
    let candidates: Vec<&Party> = manifest
        .parties()
        .iter()
        .chain(predecessor.map(Manifest::parties).unwrap_or_default())
        .filter(|p| p.name() == party)
        .collect();
    if candidates.is_empty() {
        return Err(Error::NotAParty {
            party: party.to_owned(),
            manifest: manifest.hash(),
        });
    }
    let signer = candidates
        .into_iter()
        .find(|p| p.key == verifying)
        .ok_or_else(|| Error::KeyMismatch {
            party: party.to_owned(),
        })?;
    let signature = key.sign(&signing_message(&manifest.hash()));
    Ok(SignatureEntry {
        party: signer.name().to_owned(),
        signing_key: signer.doc.signing_key.clone(),
        signature: STANDARD.encode(signature.to_bytes()),
    })
}

/// Why a signature was not counted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureProblem {
    /// The file holding it is for another manifest hash.
    OtherManifest(ManifestHash),
    /// The signer is not a party (of the manifest, or of its predecessor for an update).
    NotAParty,
    /// The signer is a party, but the key given is not the party's.
    KeyMismatch,
    /// The key or signature is not well formed.
    Malformed(String),
    /// The signature does not verify for this manifest's hash: forged, or over another hash.
    BadSignature,
}

impl fmt::Display for SignatureProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OtherManifest(h) => write!(f, "signatures file is for manifest {h}"),
            Self::NotAParty => f.write_str("signer is not a party"),
            Self::KeyMismatch => f.write_str("signing key is not the party's key"),
            Self::Malformed(reason) => write!(f, "malformed: {reason}"),
            Self::BadSignature => f.write_str("signature does not verify for this manifest"),
        }
    }
}

impl Serialize for SignatureProblem {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Checks one entry against `hash`: the signer must be one of `signers` (matched by name and
/// key) and the signature must verify. Returns the matching party.
pub fn verify_entry<'a>(
    hash: &ManifestHash,
    signers: &[&'a Party],
    entry: &SignatureEntry,
) -> Result<&'a Party, SignatureProblem> {
    let named: Vec<&&Party> = signers.iter().filter(|p| p.name() == entry.party).collect();
    if named.is_empty() {
        return Err(SignatureProblem::NotAParty);
    }
    let key = parse_signing_key(&entry.signing_key).map_err(SignatureProblem::Malformed)?;
    let party = named
        .into_iter()
        .find(|p| p.key == key)
        .ok_or(SignatureProblem::KeyMismatch)?;
    let bytes = STANDARD
        .decode(&entry.signature)
        .map_err(|e| SignatureProblem::Malformed(format!("signature: {e}")))?;
    let signature = Signature::from_slice(&bytes)
        .map_err(|_| SignatureProblem::Malformed("signature: not 64 bytes".into()))?;
    key.verify_strict(&signing_message(hash), &signature)
        .map_err(|_| SignatureProblem::BadSignature)?;
    Ok(party)
}
