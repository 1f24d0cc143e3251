//! The crate's one error type. Each variant names the offending item, so a party reading the
//! message knows which line of the manifest to fix.

use crate::hash::ManifestHash;

/// What kind of named item an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// An entry of `parties`.
    Party,
    /// An entry of `datasets`.
    Dataset,
    /// An entry of `computations`.
    Computation,
}

impl std::fmt::Display for ItemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Party => "party",
            Self::Dataset => "dataset",
            Self::Computation => "computation",
        })
    }
}

/// Why a manifest, a signatures file or a request about them was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The YAML (or JSON) text does not parse into the manifest schema.
    #[error("manifest does not parse: {reason}")]
    Syntax {
        /// The parser's message, with its line and column.
        reason: String,
    },
    /// `version` is not one this build understands.
    #[error("manifest version {found}: only version 1 is supported")]
    UnsupportedVersion {
        /// The version found, as written.
        found: String,
    },
    /// `id` is empty.
    #[error("manifest id is empty")]
    EmptyId,
    /// `parties` is empty.
    #[error("manifest names no parties")]
    NoParties,
    /// A name that is not 1 to 64 characters from `A-Z a-z 0-9 . _ -`.
    #[error("{kind} name {name:?}: use 1 to 64 characters from A-Z a-z 0-9 . _ -")]
    InvalidName {
        /// Which list the name is in.
        kind: ItemKind,
        /// The name.
        name: String,
    },
    /// Two items of one list share a name.
    #[error("duplicate {kind} name {name:?}")]
    DuplicateName {
        /// Which list.
        kind: ItemKind,
        /// The repeated name.
        name: String,
    },
    /// Two parties share a signing key.
    #[error("parties {first:?} and {second:?} have the same signing key")]
    DuplicateSigningKey {
        /// The first party with the key.
        first: String,
        /// The second.
        second: String,
    },
    /// A party's `signing_key` is not `ed25519:<64 lowercase hex>` naming a valid key.
    #[error("party {party:?}: signing_key {reason}")]
    BadSigningKey {
        /// The party.
        party: String,
        /// What is wrong.
        reason: String,
    },
    /// A party's `recipient` is not an age X25519 recipient.
    #[error("party {party:?}: recipient is not an age recipient (age1…): {reason}")]
    BadRecipient {
        /// The party.
        party: String,
        /// What is wrong.
        reason: String,
    },
    /// A dataset's `digest` is not `sha256:<64 lowercase hex>`.
    #[error("dataset {dataset:?}: digest {reason}")]
    BadDigest {
        /// The dataset.
        dataset: String,
        /// What is wrong.
        reason: String,
    },
    /// `predecessor` is neither null nor `sha256:<64 lowercase hex>`.
    #[error("predecessor {reason}")]
    BadPredecessor {
        /// What is wrong.
        reason: String,
    },
    /// A dataset's `uri` is empty.
    #[error("dataset {dataset:?}: uri is empty")]
    EmptyUri {
        /// The dataset.
        dataset: String,
    },
    /// A dataset's `owner` is empty.
    #[error("dataset {dataset:?} has no owner")]
    MissingOwner {
        /// The dataset.
        dataset: String,
    },
    /// A dataset's `owner` is not a party.
    #[error("dataset {dataset:?}: owner {owner:?} is not a party")]
    UnknownOwner {
        /// The dataset.
        dataset: String,
        /// The owner named.
        owner: String,
    },
    /// A computation reads a dataset the manifest does not declare.
    #[error("computation {computation:?}: input {dataset:?} is not a declared dataset")]
    UnknownInput {
        /// The computation.
        computation: String,
        /// The undeclared dataset.
        dataset: String,
    },
    /// A computation delivers to a recipient that is not a party.
    #[error("computation {computation:?}: recipient {recipient:?} is not a party")]
    UnknownRecipient {
        /// The computation.
        computation: String,
        /// The recipient named.
        recipient: String,
    },
    /// A computation names no inputs.
    #[error("computation {computation:?} reads no inputs")]
    NoInputs {
        /// The computation.
        computation: String,
    },
    /// A computation names no recipients.
    #[error("computation {computation:?} has no recipients")]
    NoRecipients {
        /// The computation.
        computation: String,
    },
    /// A `sql` computation without a `query`.
    #[error("computation {computation:?}: kind sql needs a query")]
    MissingQuery {
        /// The computation.
        computation: String,
    },
    /// A `query` on a computation whose kind is not `sql`.
    #[error("computation {computation:?}: only kind sql takes a query")]
    UnexpectedQuery {
        /// The computation.
        computation: String,
    },
    /// A constraint this build does not know. Refused rather than ignored, so an older worker
    /// never drops a newer rule.
    #[error("computation {computation:?}: unknown constraint {constraint:?}")]
    UnknownConstraint {
        /// The computation.
        computation: String,
        /// The constraint's name.
        constraint: String,
    },
    /// A known constraint on a computation whose kind does not enforce it.
    #[error(
        "computation {computation:?}: kind {kind} does not enforce constraint {constraint:?} \
         (it enforces: {supported})"
    )]
    UnsupportedConstraint {
        /// The computation.
        computation: String,
        /// The computation's kind.
        kind: &'static str,
        /// The constraint's name.
        constraint: String,
        /// What the kind does enforce, comma-separated, or `none`.
        supported: String,
    },
    /// A dataset's `privacy_unit` is empty or not a plain column name.
    #[error("dataset {dataset:?}: privacy_unit {reason}")]
    BadPrivacyUnit {
        /// The dataset.
        dataset: String,
        /// What is wrong.
        reason: String,
    },
    /// `governance.update.threshold` is 0 or more than the number of parties.
    #[error(
        "governance threshold {threshold}: must be between 1 and the number of parties ({parties})"
    )]
    BadThreshold {
        /// The threshold.
        threshold: u32,
        /// The number of parties.
        parties: usize,
    },
    /// The typed manifest could not be put in canonical JSON form.
    #[error("canonical JSON: {reason}")]
    Canonical {
        /// The serialiser's message.
        reason: String,
    },
    /// A signatures file does not parse.
    #[error("signatures file does not parse: {reason}")]
    MalformedSignatures {
        /// The parser's message.
        reason: String,
    },
    /// A signatures file is for another manifest; signatures for two hashes are never mixed.
    #[error("signatures file is for manifest {found}, not {expected}")]
    SignaturesForOtherManifest {
        /// This manifest's hash.
        expected: ManifestHash,
        /// The hash the file names.
        found: ManifestHash,
    },
    /// The would-be signer is not a party of the manifest (or of its predecessor).
    #[error("{party:?} is not a party of manifest {manifest}")]
    NotAParty {
        /// The signer's name.
        party: String,
        /// The manifest.
        manifest: ManifestHash,
    },
    /// The would-be signer is a party, but under another signing key.
    #[error("party {party:?} is in the manifest under another signing key")]
    KeyMismatch {
        /// The party.
        party: String,
    },
    /// The predecessor given is not the one the manifest names.
    #[error("manifest names predecessor {expected}, but the predecessor given is {found}")]
    PredecessorMismatch {
        /// The manifest's `predecessor`.
        expected: ManifestHash,
        /// The hash of the manifest given as predecessor.
        found: ManifestHash,
    },
    /// The manifest is an update, and its predecessor was not given.
    #[error("manifest updates {expected}: its predecessor is needed to judge it")]
    PredecessorRequired {
        /// The manifest's `predecessor`.
        expected: ManifestHash,
    },
    /// A predecessor was given for a manifest with `predecessor: null`.
    #[error("manifest has no predecessor, but one was given")]
    NotAnUpdate,
    /// The caller passed inconsistent arguments.
    #[error("API misuse: {0}")]
    ApiMisuse(String),
}

impl Error {
    /// The failed check's stable name: the variant's, in snake case.
    pub fn check(&self) -> &'static str {
        match self {
            Self::Syntax { .. } => "syntax",
            Self::UnsupportedVersion { .. } => "unsupported_version",
            Self::EmptyId => "empty_id",
            Self::NoParties => "no_parties",
            Self::InvalidName { .. } => "invalid_name",
            Self::DuplicateName { .. } => "duplicate_name",
            Self::DuplicateSigningKey { .. } => "duplicate_signing_key",
            Self::BadSigningKey { .. } => "bad_signing_key",
            Self::BadRecipient { .. } => "bad_recipient",
            Self::BadDigest { .. } => "bad_digest",
            Self::BadPredecessor { .. } => "bad_predecessor",
            Self::EmptyUri { .. } => "empty_uri",
            Self::MissingOwner { .. } => "missing_owner",
            Self::UnknownOwner { .. } => "unknown_owner",
            Self::UnknownInput { .. } => "unknown_input",
            Self::UnknownRecipient { .. } => "unknown_recipient",
            Self::NoInputs { .. } => "no_inputs",
            Self::NoRecipients { .. } => "no_recipients",
            Self::MissingQuery { .. } => "missing_query",
            Self::UnexpectedQuery { .. } => "unexpected_query",
            Self::UnknownConstraint { .. } => "unknown_constraint",
            Self::UnsupportedConstraint { .. } => "unsupported_constraint",
            Self::BadPrivacyUnit { .. } => "bad_privacy_unit",
            Self::BadThreshold { .. } => "bad_threshold",
            Self::Canonical { .. } => "canonical",
            Self::MalformedSignatures { .. } => "malformed_signatures",
            Self::SignaturesForOtherManifest { .. } => "signatures_for_other_manifest",
            Self::NotAParty { .. } => "not_a_party",
            Self::KeyMismatch { .. } => "key_mismatch",
            Self::PredecessorMismatch { .. } => "predecessor_mismatch",
            Self::PredecessorRequired { .. } => "predecessor_required",
            Self::NotAnUpdate => "not_an_update",
            Self::ApiMisuse(_) => "api_misuse",
        }
    }
}
