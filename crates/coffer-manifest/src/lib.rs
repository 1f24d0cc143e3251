//! Coffer collaboration manifests: what parties agree to compute on their data, and under
//! which enclave policy.
//!
//! - [`Manifest`]: a parsed and validated manifest ([`Manifest::from_yaml`]) with its canonical
//!   [`ManifestHash`]: SHA-256 over the RFC 8785 canonical JSON of the typed document, so
//!   formatting, comments and key order do not change it and any semantic change does.
//! - [`sign`], [`SignatureFile`], [`verify_entry`]: Ed25519 signatures over
//!   `b"coffer-manifest-signature-v1\0" || hash`, collected in a `FILE.sigs` JSON file.
//! - [`status()`]: whether a manifest is active, who signed, who is missing, and which
//!   signatures were not counted; updates are judged by their predecessor's governance.
//! - [`Manifest::computation`], [`Manifest::input_datasets`], [`Manifest::owners_of`]: what a
//!   key broker asks before it releases a job's input keys.
//!
//! The manifest (ARCHITECTURE §4):
//!
//! ```yaml
//! version: 1
//! id: hospital-study-2027
//! predecessor: null                  # or the sha256:<hex> of the manifest this one replaces
//! parties:                           # `coffer identity export` output, pasted in
//!   - {name: alpha, signing_key: "ed25519:<64 hex>", recipient: "age1…"}
//! enclave:                           # a coffer_attest::Policy
//!   tee: [sim]
//!   measurements: ["sim:measurement=<96 hex>"]
//!   allow_simulation: true
//! datasets:
//!   - {name: alpha_patients, owner: alpha, uri: "file://…", digest: "sha256:<64 hex>"}
//! computations:
//!   - name: counts
//!     kind: sql                      # sql | gbdt_train | gbdt_predict | inference | federated
//!     query: SELECT count(*) AS n FROM alpha_patients
//!     params: {}                     # free-form, optional
//!     inputs: [alpha_patients]
//!     recipients: [alpha]
//!     constraints: {min_group_size: 10}
//! governance: {update: all}          # or {update: {threshold: 2}}
//! ```
//!
//! Example: a one-party manifest, signed and active.
//!
//! ```
//! use coffer_manifest::{Manifest, SignatureFile, sign, status};
//!
//! let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
//! let recipient = age::x25519::Identity::generate().to_public();
//! let yaml = format!(
//!     "version: 1\nid: demo\nparties:\n  - name: alpha\n    signing_key: ed25519:{}\n    \
//!      recipient: {recipient}\nenclave: {{tee: [sim], allow_simulation: true}}\n\
//!      governance: {{update: all}}\n",
//!     hex::encode(key.verifying_key().as_bytes()),
//! );
//! let manifest = Manifest::from_yaml(&yaml)?;
//! let mut sigs = SignatureFile::new(manifest.hash());
//! sigs.add(manifest.hash(), sign(&manifest, None, "alpha", &key)?)?;
//! let status = status(&manifest, &sigs, None)?;
//! assert!(status.active);
//! assert_eq!(status.signed_by, ["alpha"]);
//! # Ok::<(), coffer_manifest::Error>(())
//! ```
//!
//! Security notes: validation refuses rather than guesses (unknown fields, unknown
//! constraints, upper-case hex, a second spelling of a key); a signature by a non-party, with
//! a key that is not the party's, over another hash, or forged is reported in
//! [`Status::invalid`] and never counted.
#![forbid(unsafe_code)]

mod error;
mod hash;
mod manifest;
mod model;
mod signature;
mod status;

pub use error::{Error, ItemKind};
pub use hash::{ManifestHash, canonical_json, manifest_hash, parse_lower_hex};
pub use manifest::{Manifest, Party, is_valid_name};
pub use model::{
    Computation, ComputationKind, Constraints, Dataset, Governance, ManifestDoc, PartyDoc,
    UpdateRule,
};
pub use signature::{
    SIGNATURE_DOMAIN, SignatureEntry, SignatureFile, SignatureProblem, sign, signing_message,
    verify_entry,
};
pub use status::{InvalidSignature, MAX_CHAIN, Predecessor, Status, status, status_with_chain};
