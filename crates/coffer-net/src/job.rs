//! Jobs: what a party asks an enclave worker to run, and the receipt the worker signs for it.
//!
//! A party signs a [`JobSpec`] (manifest hash, computation, parameters, output format, its
//! name, time, nonce) with its Ed25519 key over `coffer-job-v1\0` ‖ the RFC 8785 canonical
//! JSON of the spec. The job's id is the hex SHA-256 of that canonical JSON, so the
//! orchestrator, the worker and the broker all name a job the same way and none of them can
//! choose the id. The [`JobRequest`] carries the manifest (YAML) and its signature file
//! alongside, so that the worker judges the manifest itself; the orchestrator relays it and
//! can change nothing without breaking the party's signature or the manifest hash.
//!
//! The worker answers with a [`SignedReceipt`]: the [`Receipt`] (job id, manifest hash, input
//! and output digests) signed by the key of its RA-TLS certificate, and the certificate, which
//! carries the evidence. A recipient checks the signature, the evidence and the manifest's
//! policy before trusting an output.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use coffer_attest::ratls::{RaTlsCert, RaTlsIdentity};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{JobId, JobNonce, ManifestHash};

/// `POST`: submit a job (worker and orchestrator); `GET /v1/jobs/{id}` on the orchestrator.
pub const JOBS: &str = "/v1/jobs";
/// `GET`: what a worker says of itself.
pub const WORKER_INFO: &str = "/v1/info";
/// Where a worker stores the detail of a failed job, age-encrypted to the party that signed
/// it: the untrusted side sees only the failed check's name and a fixed message.
pub fn error_detail_path(job: &JobId) -> String {
    format!("errors/{job}.age")
}

/// What a worker stores at [`error_detail_path`], age-encrypted to the job's signer: the
/// failure in full, which may quote the collaboration's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureDetail {
    /// The job's id.
    pub job: JobId,
    /// The error kind (`refused`, `bad_request`, `internal`).
    pub error: String,
    /// The failed check.
    pub check: String,
    /// The full message.
    pub message: String,
    /// Every failed check of an appraisal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// Domain separation for job signatures.
pub const JOB_DOMAIN: &[u8] = b"coffer-job-v1\0";
/// Domain separation for receipt signatures.
pub const RECEIPT_DOMAIN: &[u8] = b"coffer-receipt-v1\0";

/// Why a job request or receipt was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("job signature does not verify for party {0:?}")]
    Signature(String),
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("receipt signature does not verify: {0}")]
    ReceiptSignature(String),
}

impl JobError {
    /// The stable name of the failed check.
    pub fn check(&self) -> &'static str {
        match self {
            Self::Signature(_) => "job_signature",
            Self::Malformed { .. } => "malformed",
            Self::ReceiptSignature(_) => "receipt_signature",
        }
    }
}

/// How a job's output is written before it is encrypted to its recipients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    #[default]
    Csv,
    Parquet,
    /// A model (XGBoost JSON), from a training computation.
    Json,
}

impl OutputFormat {
    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Parquet => "parquet",
            Self::Json => "json",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "csv" => Some(Self::Csv),
            "parquet" => Some(Self::Parquet),
            _ => None,
        }
    }
}

/// What a party signs: one run of one computation of one manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The manifest's hash, `sha256:<hex>`.
    pub manifest: ManifestHash,
    /// The computation's name in the manifest.
    pub computation: String,
    /// Values for a SQL template's declared parameters.
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub format: OutputFormat,
    /// The signing party's name in the manifest.
    pub party: String,
    /// Unix seconds when it was signed.
    pub time: i64,
    /// 32 hex digits, fresh per job.
    pub nonce: JobNonce,
}

impl JobSpec {
    /// The RFC 8785 canonical JSON of the spec: what is signed and hashed.
    pub fn canonical(&self) -> Result<Vec<u8>, JobError> {
        serde_json_canonicalizer::to_vec(self).map_err(|e| JobError::Malformed {
            what: "job",
            reason: e.to_string(),
        })
    }

    /// The job's id: SHA-256 of the canonical JSON.
    pub fn id(&self) -> Result<JobId, JobError> {
        Ok(JobId(Sha256::digest(self.canonical()?).into()))
    }

    fn message(&self) -> Result<Vec<u8>, JobError> {
        let mut m = JOB_DOMAIN.to_vec();
        m.extend_from_slice(&self.canonical()?);
        Ok(m)
    }

    /// Signs the spec and wraps it with the manifest and its signature file.
    pub fn sign(
        self,
        key: &SigningKey,
        manifest_yaml: String,
        signatures: serde_json::Value,
    ) -> Result<JobRequest, JobError> {
        let signature = STANDARD.encode(key.sign(&self.message()?).to_bytes());
        Ok(JobRequest {
            spec: self,
            signature,
            manifest: manifest_yaml,
            signatures,
            predecessors: Vec::new(),
        })
    }
}

/// A signed job, as submitted to the orchestrator and handed to a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    pub spec: JobSpec,
    /// Base64 Ed25519 signature over `coffer-job-v1\0` ‖ canonical JSON of `spec`.
    pub signature: String,
    /// The manifest, YAML; its hash must be `spec.manifest`.
    pub manifest: String,
    /// The manifest's signature file (JSON).
    pub signatures: serde_json::Value,
    /// When the manifest is an update: its predecessor, then that one's predecessor, …, each
    /// with its signatures, so the worker can judge the update under the governance it
    /// changes. Not signed by the party: each link is checked by hash and signatures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub predecessors: Vec<ChainLink>,
}

/// One predecessor of a manifest, as a job carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainLink {
    /// The manifest, YAML.
    pub manifest: String,
    /// Its signature file (JSON).
    pub signatures: serde_json::Value,
}

impl JobRequest {
    /// The same request carrying `chain` (nearest predecessor first).
    pub fn with_predecessors(mut self, chain: Vec<ChainLink>) -> Self {
        self.predecessors = chain;
        self
    }

    pub fn id(&self) -> Result<JobId, JobError> {
        self.spec.id()
    }

    /// Checks the party's signature with `key` (the key the manifest gives the party).
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), JobError> {
        verify_spec(&self.spec, &self.signature, key).map(|_| ())
    }

    /// The signed spec alone, as a worker shows it to the broker.
    pub fn signed_job(&self) -> SignedJob {
        SignedJob {
            spec: self.spec.clone(),
            signature: self.signature.clone(),
        }
    }
}

/// A party's signed job spec without the manifest: what a worker shows the broker, which
/// releases keys only for a job a party of the manifest signed, once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedJob {
    pub spec: JobSpec,
    /// Base64 Ed25519 signature over `coffer-job-v1\0` ‖ canonical JSON of `spec`.
    pub signature: String,
}

impl SignedJob {
    pub fn id(&self) -> Result<JobId, JobError> {
        self.spec.id()
    }

    /// Checks the party's signature with `key` (the key the manifest gives the party).
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), JobError> {
        verify_spec(&self.spec, &self.signature, key).map(|_| ())
    }

    /// As [`verify`](Self::verify), returning the job's id: the spec is canonicalised once
    /// for both.
    pub fn verified_id(&self, key: &VerifyingKey) -> Result<JobId, JobError> {
        verify_spec(&self.spec, &self.signature, key)
    }
}

/// Checks `signature` over the spec with `key`; returns the job's id.
fn verify_spec(spec: &JobSpec, signature: &str, key: &VerifyingKey) -> Result<JobId, JobError> {
    let bad = || JobError::Signature(spec.party.clone());
    let bytes = STANDARD.decode(signature).map_err(|_| bad())?;
    let sig = Signature::from_slice(&bytes).map_err(|_| bad())?;
    let canonical = spec.canonical()?;
    let mut message = Vec::with_capacity(JOB_DOMAIN.len().saturating_add(canonical.len()));
    message.extend_from_slice(JOB_DOMAIN);
    message.extend_from_slice(&canonical);
    key.verify_strict(&message, &sig).map_err(|_| bad())?;
    Ok(JobId(Sha256::digest(&canonical).into()))
}

/// One output of a job, as stored: encrypted (age) to its recipients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputRef {
    /// The object's path in storage.
    pub path: String,
    /// `sha256:<hex>` of the stored (encrypted) object.
    pub digest: String,
    pub format: OutputFormat,
    /// The parties it is encrypted to.
    pub recipients: Vec<String>,
    /// Rows in the output.
    pub rows: u64,
}

/// What a worker vouches for after a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// The job's id.
    pub job: JobId,
    /// The manifest's hash.
    pub manifest: ManifestHash,
    pub computation: String,
    /// The party that signed the job.
    pub party: String,
    /// Each input dataset's digest, as read from storage and checked against the manifest.
    pub inputs: BTreeMap<String, String>,
    pub outputs: Vec<OutputRef>,
    /// The evidence backend (`sim`, `gramine`, `tsm`, `nitro`).
    pub backend: String,
    /// True when the worker ran in simulation: the output is then not protected.
    pub simulated: bool,
    /// Unix seconds when the job finished.
    pub time: i64,
}

impl Receipt {
    fn message(&self) -> Result<Vec<u8>, JobError> {
        let mut m = RECEIPT_DOMAIN.to_vec();
        m.extend_from_slice(&serde_json_canonicalizer::to_vec(self).map_err(|e| {
            JobError::Malformed {
                what: "receipt",
                reason: e.to_string(),
            }
        })?);
        Ok(m)
    }

    /// Signs with the worker's RA-TLS key; the certificate goes along.
    pub fn sign(self, identity: &RaTlsIdentity) -> Result<SignedReceipt, JobError> {
        let sig = identity
            .sign(&self.message()?)
            .map_err(|e| JobError::ReceiptSignature(e.to_string()))?;
        Ok(SignedReceipt {
            receipt: self,
            signature: STANDARD.encode(sig),
            certificate: STANDARD.encode(identity.cert_der()),
        })
    }
}

/// A receipt with the worker's signature and RA-TLS certificate (base64 DER).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedReceipt {
    pub receipt: Receipt,
    pub signature: String,
    pub certificate: String,
}

impl SignedReceipt {
    /// Checks the signature with the certificate's key and returns the parsed certificate,
    /// whose evidence the caller must still verify and appraise.
    pub fn verify_signature(&self) -> Result<RaTlsCert, JobError> {
        let der = STANDARD
            .decode(&self.certificate)
            .map_err(|e| JobError::Malformed {
                what: "receipt certificate",
                reason: e.to_string(),
            })?;
        let cert = RaTlsCert::from_der(&der).map_err(|e| JobError::Malformed {
            what: "receipt certificate",
            reason: e.to_string(),
        })?;
        let sig = STANDARD
            .decode(&self.signature)
            .map_err(|e| JobError::ReceiptSignature(e.to_string()))?;
        cert.verify_signature(&self.receipt.message()?, &sig)
            .map_err(|e| JobError::ReceiptSignature(e.to_string()))?;
        Ok(cert)
    }
}

/// A worker's answer to a job it ran.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobDone {
    pub receipt: SignedReceipt,
}

/// `GET /v1/info` on a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub service: String,
    pub version: String,
    pub backend: String,
    pub simulated: bool,
    /// Hex SHA-256 of the TLS key's SubjectPublicKeyInfo.
    pub tls_spki_sha256: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn spec() -> JobSpec {
        JobSpec {
            manifest: format!("sha256:{}", "ab".repeat(32)).parse().unwrap(),
            computation: "counts".into(),
            params: BTreeMap::from([("min_age".into(), serde_json::json!(40))]),
            format: OutputFormat::Csv,
            party: "alpha".into(),
            time: 1_700_000_000,
            nonce: "00".repeat(16).parse().unwrap(),
        }
    }

    #[test]
    fn every_field_is_signed() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let req = spec()
            .sign(&key, "yaml".into(), serde_json::json!({}))
            .unwrap();
        req.verify(&key.verifying_key()).unwrap();
        assert_eq!(
            req.signed_job().verified_id(&key.verifying_key()).unwrap(),
            req.id().unwrap()
        );
        let tamper: Vec<fn(&mut JobSpec)> = vec![
            |s| s.manifest.0[0] ^= 1,
            |s| s.computation.push('x'),
            |s| {
                s.params.insert("min_age".into(), serde_json::json!(41));
            },
            |s| s.format = OutputFormat::Parquet,
            |s| s.party = "beta".into(),
            |s| s.time += 1,
            |s| s.nonce.0[0] ^= 1,
        ];
        for t in tamper {
            let mut r = req.clone();
            t(&mut r.spec);
            assert_ne!(r.id().unwrap(), req.id().unwrap());
            assert_eq!(
                r.verify(&key.verifying_key()).unwrap_err().check(),
                "job_signature"
            );
            assert!(r.signed_job().verified_id(&key.verifying_key()).is_err());
        }
        let other = SigningKey::from_bytes(&[2; 32]);
        assert!(req.verify(&other.verifying_key()).is_err());
        let mut garbage = req.clone();
        garbage.signature = "!!".into();
        assert!(garbage.verify(&key.verifying_key()).is_err());
    }

    #[test]
    fn id_ignores_formatting() {
        let a = spec();
        let json = serde_json::to_string_pretty(&a).unwrap();
        let b: JobSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(a.id().unwrap(), b.id().unwrap());
        assert_eq!(a.id().unwrap().to_string().len(), 64);
    }
}
