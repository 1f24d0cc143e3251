//! Every way a job can fail at the worker, and what each failure tells whom.
//!
//! [`Check`] is the typed list of the worker's refusals: a variant's [`Check::name`] is the
//! `check` string a client sees, and [`Check::message`] its fixed message. A [`Refusal`] is a
//! failed check with its detail.
//!
//! An engine's error may quote the data it failed on (DataFusion's cast errors quote the
//! value, the trainer names the label it refused). The orchestrator and storage are outside
//! the TEE, so the worker answers a failed job with [`Refusal::public`]: the check's name and
//! its fixed message, nothing else. The detail ([`Refusal::full`]) is encrypted with age to
//! the party that signed the job and stored at [`coffer_net::job::error_detail_path`]
//! (`crate::job` does that); `coffer job wait` and `coffer result get` decrypt it for that
//! party. A request whose signature did not verify has no signer, and its detail is dropped.
//!
//! The key broker names its own refusals (`measurement`, `key_revoked`, …): a [`Refusal`] from
//! the broker carries the broker's check name as it was given.

use coffer_net::ApiError;
use coffer_net::storage::StorageError;
use coffer_sql::SqlError;

macro_rules! checks {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, $kind:literal, $msg:literal; )*) => {
        /// A worker refusal. Its [`name`](Check::name) is the `check` string of the answer.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Check {
            $( $(#[$doc])* $variant, )*
        }

        impl Check {
            /// Every check, in the order a job meets them.
            pub const ALL: &'static [Check] = &[$(Check::$variant),*];

            /// The `check` string clients see.
            pub fn name(self) -> &'static str {
                match self { $(Check::$variant => $name,)* }
            }

            /// The fixed message for this check: it never depends on the job's data.
            pub fn message(self) -> &'static str {
                match self { $(Check::$variant => $msg,)* }
            }

            /// The error kind of the answer (`refused`, `bad_request`, `unavailable`,
            /// `internal`), which sets its HTTP status and whether the orchestrator retries.
            pub fn kind(self) -> &'static str {
                match self { $(Check::$variant => $kind,)* }
            }

            /// The check named `name`, if it is one of the worker's.
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($name => Some(Check::$variant),)* _ => None }
            }
        }
    };
}

checks! {
    /// The request is not a job request, or is larger than the worker reads.
    Body = "body", "bad_request", "the job request is malformed";
    /// The request's body did not arrive in time.
    BodyTimeout = "body_timeout", "bad_request", "the request body did not arrive in time";
    /// The worker already runs as many jobs as it may.
    WorkerBusy = "worker_busy", "unavailable",
        "the worker runs as many jobs as it is configured to; try again later";
    /// The job's signing time is outside the worker's window.
    StaleRequest = "stale_request", "refused",
        "the job's signing time is outside the worker's window";
    /// The manifest does not parse or validate.
    Manifest = "manifest", "bad_request", "the manifest does not validate";
    /// The manifest sent hashes to another manifest than the job names.
    ManifestHash = "manifest_hash", "refused",
        "the manifest sent does not hash to the manifest the job names";
    /// The signer is not a party of the manifest.
    UnknownParty = "unknown_party", "refused", "the job's signer is not a party of the manifest";
    /// The job's signature does not verify under the party's key.
    JobSignature = "job_signature", "refused", "the job's signature does not verify";
    /// The manifest has no computation of that name.
    UnknownComputation = "unknown_computation", "refused", "the manifest has no such computation";
    /// This worker has no adapter for the computation's kind.
    UnsupportedComputation = "unsupported_computation", "refused",
        "this worker does not run the computation's kind";
    /// The manifest sets a constraint this worker does not know.
    UnknownConstraint = "unknown_constraint", "refused",
        "the manifest sets a constraint this worker does not know";
    /// The computation's kind does not enforce a constraint the manifest sets on it.
    UnsupportedConstraint = "unsupported_constraint", "refused",
        "the computation's kind does not enforce a constraint it sets";
    /// The signatures file (or a predecessor's) is malformed.
    Signatures = "signatures", "bad_request", "the signatures file is malformed";
    /// The manifest is not active (signatures missing, or its update chain does not hold).
    ManifestNotActive = "manifest_not_active", "refused", "the manifest is not active";
    /// An owner of an input has not signed the manifest.
    OwnerNotSigned = "owner_not_signed", "refused",
        "an owner of an input has not signed the manifest";
    /// The output format does not fit the computation.
    Format = "format", "bad_request", "the output format does not fit the computation";
    /// The job id was seen already.
    ReplayedRequest = "replayed_request", "refused", "the job was already submitted";
    /// An input's storage name is not allowed.
    StorageUri = "storage_uri", "refused", "an input's storage name is not allowed";
    /// An input is missing from storage.
    InputMissing = "input_missing", "refused", "an input is missing from storage";
    /// An input is larger than the worker's cap (found while streaming its hash).
    InputTooLarge = "input_too_large", "refused",
        "an input is larger than the worker's input size limit";
    /// An input's bytes do not hash to the manifest's pin.
    DigestMismatch = "digest_mismatch", "refused",
        "an input in storage does not match its pinned digest";
    /// Storage failed.
    Storage = "storage", "internal", "storage failed";
    /// The broker could not be reached.
    BrokerUnavailable = "broker_unavailable", "internal", "the key broker could not be reached";
    /// The broker's evidence does not meet this worker's broker policy.
    BrokerAttestation = "broker_attestation", "refused",
        "the key broker does not meet this worker's broker policy";
    /// An input is not in the format its computation needs.
    InputFormat = "input_format", "refused",
        "an input is not in the format the computation needs";
    /// Two inputs name the same master key.
    KeyConflict = "key_conflict", "refused", "two inputs name the same master key";
    /// The query and its parameter declarations do not fit.
    BadTemplate = "bad_template", "refused",
        "the query template and its parameter declarations do not fit";
    /// The job gives a parameter the computation does not declare.
    UnknownParameter = "unknown_parameter", "refused",
        "the job gives a parameter the computation does not declare";
    /// The job leaves out a declared parameter.
    MissingParameter = "missing_parameter", "refused", "the job leaves out a declared parameter";
    /// A parameter's value is not of its declared type.
    BadParameterType = "bad_parameter_type", "refused",
        "a parameter's value is not of its declared type";
    /// The computation is not exactly one SELECT.
    NotAQuery = "not_a_query", "refused", "the computation is not exactly one SELECT query";
    /// `min_group_size` is set on a query whose contributors the worker cannot count.
    NotAnAggregate = "not_an_aggregate", "refused",
        "min_group_size needs an aggregate the worker can count";
    /// Fewer contributors than `min_group_size`.
    GroupTooSmall = "group_too_small", "refused", "fewer contributors than min_group_size";
    /// The query failed in the engine.
    Query = "query", "refused", "the query failed in the engine";
    /// The training parameters or data do not fit the computation.
    BadParams = "bad_params", "refused",
        "the training parameters or data do not fit the computation";
    /// The inputs' columns do not match.
    SchemaMismatch = "schema_mismatch", "refused", "the inputs' columns do not match";
    /// Predictions would go to someone other than the table's owner.
    PredictRecipients = "predict_recipients", "refused",
        "predictions may go to the table's owner only";
    /// The job ran past the worker's wall-clock limit.
    JobTimeout = "job_timeout", "refused", "the job ran longer than the worker's time limit";
    /// The worker failed.
    Internal = "internal", "internal", "the worker failed";
}

impl Check {
    /// This check failed, for the reason `detail` (which only the job's signer reads).
    pub(crate) fn because(self, detail: impl Into<String>) -> Refusal {
        Refusal {
            origin: Origin::Worker(self),
            detail: detail.into(),
            reasons: Vec::new(),
        }
    }
}

/// Who named the failed check.
#[derive(Debug, Clone)]
enum Origin {
    Worker(Check),
    /// The key broker's refusal, with its error kind and check name as it answered.
    Broker {
        error: String,
        check: String,
    },
}

/// A failed job: the check, and a detail that may quote data.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    origin: Origin,
    detail: String,
    reasons: Vec<String>,
}

/// The message for a broker refusal whose check the worker does not share.
const BROKER_REFUSED: &str = "the key broker refused to release the job's keys";

impl Refusal {
    /// The broker's answer to a request of this worker. A check name that is not a plain
    /// identifier is not passed on.
    pub(crate) fn from_broker(e: ApiError) -> Self {
        let plain = !e.check.is_empty()
            && e.check.len() <= 48
            && e.check.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        let detail = format!("key broker: {}", e.message);
        if !plain {
            return Check::Internal.because(detail);
        }
        Self {
            origin: Origin::Broker {
                error: e.error,
                check: e.check,
            },
            detail,
            reasons: e.reasons,
        }
    }

    pub(crate) fn with_reasons(mut self, reasons: Vec<String>) -> Self {
        self.reasons = reasons;
        self
    }

    /// The failed check's name.
    pub(crate) fn check(&self) -> &str {
        match &self.origin {
            Origin::Worker(c) => c.name(),
            Origin::Broker { check, .. } => check,
        }
    }

    fn kind(&self) -> &str {
        match &self.origin {
            Origin::Worker(c) => c.kind(),
            Origin::Broker { error, .. } => error,
        }
    }

    /// The answer the untrusted side may see: kind, check and the check's fixed message.
    pub(crate) fn public(&self) -> ApiError {
        let message = match &self.origin {
            Origin::Worker(c) => c.message(),
            Origin::Broker { check, .. } => Check::from_name(check)
                .map(Check::message)
                .unwrap_or(BROKER_REFUSED),
        };
        ApiError::new(self.kind(), self.check(), message)
    }

    /// The whole failure, detail and reasons included: for the job's signer only.
    pub(crate) fn full(&self) -> ApiError {
        ApiError::new(self.kind(), self.check(), self.detail.clone())
            .with_reasons(self.reasons.clone())
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}", self.check(), self.detail)
    }
}

impl From<StorageError> for Refusal {
    fn from(e: StorageError) -> Self {
        let check = match e {
            StorageError::NotFound { .. } => Check::InputMissing,
            StorageError::BadName { .. } | StorageError::BadUrl { .. } => Check::StorageUri,
            StorageError::TooLarge { .. } => Check::InputTooLarge,
            _ => Check::Storage,
        };
        check.because(e.to_string())
    }
}

impl From<SqlError> for Refusal {
    fn from(e: SqlError) -> Self {
        let check = e.check().and_then(Check::from_name).unwrap_or(Check::Query);
        check.because(e.to_string())
    }
}

impl From<datafusion::error::DataFusionError> for Refusal {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Self::from(SqlError::from(e))
    }
}

impl From<coffer_manifest::Error> for Refusal {
    fn from(e: coffer_manifest::Error) -> Self {
        let check = match e {
            coffer_manifest::Error::UnknownConstraint { .. } => Check::UnknownConstraint,
            coffer_manifest::Error::UnsupportedConstraint { .. } => Check::UnsupportedConstraint,
            _ => Check::Manifest,
        };
        check.because(format!("manifest: {e}"))
    }
}

impl From<tokio::task::JoinError> for Refusal {
    fn from(e: tokio::task::JoinError) -> Self {
        Check::Internal.because(format!("job task: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        let mut seen = std::collections::BTreeSet::new();
        for c in Check::ALL {
            assert!(seen.insert(c.name()), "{} twice", c.name());
            assert_eq!(Check::from_name(c.name()), Some(*c));
            assert!(!c.message().is_empty());
        }
    }

    #[test]
    fn the_public_answer_never_carries_the_detail() {
        let r = Check::Query
            .because("Cast error: Cannot cast string 'secret-value' to value of Int64 type");
        let public = r.public();
        assert_eq!(public.check, "query");
        assert!(!public.message.contains("secret-value"));
        assert!(public.reasons.is_empty());
        assert!(r.full().message.contains("secret-value"));
    }

    #[test]
    fn broker_checks_pass_through_only_when_plain() {
        let r = Refusal::from_broker(ApiError::new("refused", "key_revoked", "revoked at 12"));
        assert_eq!(r.public().check, "key_revoked");
        assert_eq!(r.public().message, BROKER_REFUSED);
        let r = Refusal::from_broker(ApiError::new("refused", "replayed_request", "x"));
        assert_eq!(r.public().message, Check::ReplayedRequest.message());
        let r = Refusal::from_broker(ApiError::new("refused", "Quote: 'x'", "y"));
        assert_eq!(r.public().check, "internal");
    }
}
