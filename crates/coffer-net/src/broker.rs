//! The key broker's REST/JSON API: paths and bodies, shared by the broker, its clients and
//! the worker. The OpenAPI document the broker serves at `/openapi.json` describes the same.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::ManifestHash;

pub const INFO: &str = "/v1/info";
pub const MANIFESTS: &str = "/v1/manifests";
pub const KEYS: &str = "/v1/keys";
pub const RELEASE: &str = "/v1/release";
pub const AUDIT: &str = "/v1/audit";
/// `POST`: a worker hands in a job's signed receipt (RA-TLS client certificate of the worker
/// that signed it); the broker records it next to the job's key release.
pub const RECEIPTS: &str = "/v1/receipts";
/// `POST`: anyone sends a fresh nonce ([`Challenge`]); the broker answers with evidence made
/// for it, binding its TLS key ([`ChallengeAnswer`]), so each session sees fresh evidence.
pub const ATTEST: &str = "/v1/attest";
/// `POST` (a worker's RA-TLS client certificate): a fresh nonce ([`Challenge`]) the worker
/// must answer in its next release ([`FreshEvidence`]); single use, valid for a minute.
pub const CHALLENGE: &str = "/v1/challenge";
/// `POST`: a dataset's owner revokes its key grant under a manifest ([`RevokeKey`]).
pub const REVOKE: &str = "/v1/keys/revoke";
/// `POST`: a party retires a manifest ([`RetireManifest`]).
pub const RETIRE: &str = "/v1/manifests/retire";
pub const OPENAPI: &str = "/openapi.json";

/// `GET /v1/info`: what the broker says of itself. Trust it only over a connection whose
/// RA-TLS certificate you appraised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    pub service: String,
    pub version: String,
    /// The evidence backend: `sim`, `gramine`, `tsm`, `nitro`.
    pub backend: String,
    /// True when the broker runs in simulation and protects nothing.
    pub simulated: bool,
    /// The Ed25519 key that signs the audit log (`ed25519:<hex>`).
    pub audit_key: String,
    /// Hex SHA-256 of the TLS key's SubjectPublicKeyInfo: the audience of signed requests.
    pub tls_spki_sha256: String,
}

/// `POST /v1/manifests` (signed by a party of the manifest).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitManifest {
    /// The manifest as YAML.
    pub manifest: String,
    /// The signature file (`FILE.sigs`), as JSON.
    pub signatures: serde_json::Value,
}

/// The answer to a manifest submission: the broker's judgement of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestStatus {
    pub hash: ManifestHash,
    pub active: bool,
    pub signed_by: Vec<String>,
    pub missing: Vec<String>,
    #[serde(default)]
    pub invalid: Vec<String>,
}

/// `POST /v1/keys` (signed by the dataset's owner): a data key, bound to a manifest. The
/// connection is the broker's attested TLS channel; the key is sealed at rest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadKey {
    pub manifest: ManifestHash,
    pub dataset: String,
    /// The key, hex.
    pub key: String,
}

/// `POST /v1/keys/revoke`, a signed request by the dataset's owner: no key for `dataset` is
/// released under `manifest` from now on, and the sealed key is deleted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeKey {
    pub manifest: ManifestHash,
    pub dataset: String,
}

/// `POST /v1/manifests/retire`, a signed request by any party of the manifest: it releases no
/// key from now on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetireManifest {
    pub manifest: ManifestHash,
}

/// `POST /v1/attest`: a fresh nonce, hex (16 to 64 bytes).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Challenge {
    pub nonce: String,
}

/// The answer: tagged evidence (hex) binding the broker's TLS key and the nonce.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChallengeAnswer {
    pub evidence: String,
}

/// The answer to a key upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyStored {
    pub manifest: ManifestHash,
    pub dataset: String,
}

/// `POST /v1/release` (a TEE worker presenting its RA-TLS client certificate).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    pub manifest: ManifestHash,
    pub computation: String,
    /// Each input dataset's digest, as the worker read it.
    pub inputs: BTreeMap<String, String>,
    /// The party-signed job the keys are for. The broker checks that a party of the
    /// manifest signed it for this manifest and computation, that it is fresh, and releases
    /// keys for its id once (the id is spent with the decision, so a replayed job gets
    /// nothing, even after a broker restart).
    pub job: crate::job::SignedJob,
    /// The worker's evidence made for a nonce this broker issued it ([`CHALLENGE`]), binding
    /// its TLS key: the release is judged on it, so it is as fresh as the request.
    pub fresh: FreshEvidence,
}

/// Evidence made for a broker-issued nonce: both hex.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreshEvidence {
    pub nonce: String,
    /// Tagged evidence ([`coffer_attest::ratls::answer_challenge`]).
    pub evidence: String,
}

/// The keys of a job's inputs, hex, by dataset.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Released {
    pub keys: BTreeMap<String, String>,
}
