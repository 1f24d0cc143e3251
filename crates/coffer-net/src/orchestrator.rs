//! The orchestrator's REST/JSON API. The orchestrator is untrusted: it relays signed job
//! requests to workers and keeps their status; everything a party acts on (the receipt, the
//! outputs) is checked end to end, not taken from it.

use serde::{Deserialize, Serialize};

use crate::ids::{JobId, ManifestHash};
use crate::job::SignedReceipt;

/// `POST` [`crate::job::JobRequest`] → [`JobStatus`]; `GET /v1/jobs/{id}` → [`JobStatus`].
pub use crate::job::JOBS;
/// `POST` [`RegisterWorker`]; `GET` → a list of [`WorkerEntry`].
pub const WORKERS: &str = "/v1/workers";

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
}

impl JobState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "queued" => Some(Self::Queued),
            "running" => Some(Self::Running),
            "done" => Some(Self::Done),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }

    /// Whether the job will not change state again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed)
    }
}

/// What the orchestrator says of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    pub id: JobId,
    pub state: JobState,
    pub manifest: ManifestHash,
    pub computation: String,
    pub party: String,
    /// Dispatch attempts so far.
    pub attempts: u32,
    /// The worker running or that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// For `failed`: the failed check, as the worker or orchestrator named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// For `failed`: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `done`: the worker's signed receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<SignedReceipt>,
    /// Unix seconds.
    pub created: i64,
    pub updated: i64,
}

/// `POST /v1/workers`: a worker to dispatch to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterWorker {
    /// `https://host:port`.
    pub url: String,
}

/// A registered worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerEntry {
    pub url: String,
    /// Consecutive dispatch failures (connection refused, dropped).
    pub failures: u32,
}
