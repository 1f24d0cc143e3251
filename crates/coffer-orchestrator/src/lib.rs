//! The untrusted orchestrator: Coffer's job queue and dispatcher.
//!
//! # Trust position
//!
//! The orchestrator runs outside any TEE and is **not trusted** by anyone. It sees only what
//! is safe to show the host: job requests signed by parties ([`coffer_net::job::JobRequest`]:
//! a manifest hash, a computation name, parameters, the manifest and its signatures), worker
//! addresses, and the workers' signed receipts, which name encrypted outputs. It never holds
//! plaintext, data keys or any secret key, and it depends on no crate that does (no
//! `coffer-worker`, `coffer-broker` or `coffer-crypto`).
//!
//! What it could do wrong, and why that is harmless:
//!
//! - **Change a job.** The job id is the hash of the signed spec, and the worker checks the
//!   party's signature and the manifest hash itself; the orchestrator relays the request
//!   body byte for byte. It does not verify the party signature: that is the worker's job,
//!   and its verdict would mean nothing coming from here. It only rejects bodies that are
//!   not a well-formed job request.
//! - **Send a job to a bad worker.** The orchestrator does not appraise workers (it talks to
//!   them over TLS with [`coffer_net::client_config`]`(None)`, which proves only possession of
//!   the certificate's key). The key broker refuses data keys to a worker whose attestation
//!   does not satisfy the manifest, so a bad worker learns nothing.
//! - **Forge or alter a result.** Receipts are stored and returned verbatim and **not
//!   verified here**: recipients check the worker's signature, its RA-TLS evidence and the
//!   manifest's policy before trusting an output.
//! - **Replay a job.** The worker and the broker remember job nonces and refuse a replay.
//!
//! # Retries
//!
//! Only *transport* failures are retried (connection refused, TLS failure, connection
//! dropped, no answer within the worker timeout), up to [`Config::max_attempts`] dispatches
//! in all, preferring another worker than the one that just failed. Any HTTP answer from a
//! worker is a verdict: a refusal (`ApiError`) fails the job with the worker's `check`, and is
//! never retried. A job whose worker died *after* the key broker released its keys will be
//! refused as a replay on retry and end `failed`: that is intended, since a release is
//! allowed once per job. Jobs left `running` by a crash or a shutdown go back to the queue at
//! the next start; their interrupted attempt counts (one whose interrupted attempt was its
//! last fails as `worker_unavailable`). While a job waits for a retry, its `worker` names the
//! worker that failed it, which the next attempt avoids if another is registered.
//!
//! # API
//!
//! - `POST /v1/workers` [`coffer_net::orchestrator::RegisterWorker`] → 201
//!   [`coffer_net::orchestrator::WorkerEntry`]; `GET /v1/workers` → the list.
//! - `POST /v1/jobs` [`coffer_net::job::JobRequest`] → 201
//!   [`coffer_net::orchestrator::JobStatus`] (`queued`); 409 `job_exists` if already
//!   submitted.
//! - `GET /v1/jobs/{id}` → [`coffer_net::orchestrator::JobStatus`]; 404 `unknown_job`.
#![forbid(unsafe_code)]

mod dispatch;
mod service;
mod store;

pub use dispatch::MAX_DISPATCHES;
pub use service::{
    Config, DEFAULT_MAX_ATTEMPTS, DEFAULT_WORKER_TIMEOUT, MAX_BODY, Service, StartError, run,
    shutdown_signal,
};
pub use store::StoreError;

/// Unix seconds now.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
