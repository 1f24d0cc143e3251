//! Coffer's enclave worker: the service that sees plaintext, inside a TEE only.
//!
//! `coffer-worker serve` (the slim in-TEE binary) and `coffer worker serve` run
//! [`service::run`]. A job arrives as a party's signed [`coffer_net::job::JobRequest`],
//! usually relayed by the untrusted orchestrator. The worker, for each job:
//!
//! 1. checks the request: its time is within the window, the manifest it carries hashes to the
//!    signed hash, the signer is a party of it, the signature verifies, the computation is in
//!    the manifest, every owner of its inputs signed the manifest and the manifest is active;
//! 2. refuses a job id it has already seen (in memory; the broker keeps spent job ids on disk,
//!    so a replay after a worker restart gets no keys either);
//! 3. reads each input's ciphertext from storage and compares its SHA-256 with the manifest's
//!    pin, before asking for any key;
//! 4. connects to the broker over RA-TLS with its own RA-TLS client certificate, appraises the
//!    broker's evidence against the manifest's enclave policy, and asks for the job's keys
//!    (the broker appraises the worker against the same policy);
//! 5. runs the manifest's SQL (or template, with typed parameters) in DataFusion over the
//!    encrypted Parquet, held in memory, with the output constraints applied to the plan;
//! 6. writes the output as CSV or Parquet, encrypts it in the age format to the computation's
//!    recipients, and stores it;
//! 7. signs a [`coffer_net::job::Receipt`] (job id, manifest hash, input and output digests)
//!    with the key of its RA-TLS certificate, which carries its evidence;
//! 8. drops the keys (zeroized) and the plaintext.
//!
//! Queries run on a runtime of their own, so a long query never delays the TLS front end;
//! encoding and encryption run on blocking threads.
//!
//! The worker keeps nothing at rest: its TLS key is fresh at every start.
#![forbid(unsafe_code)]

mod broker;
mod config;
mod context;
mod job;
mod kinds;
mod refusal;
pub mod service;
mod worker;

pub use config::{Config, StartError};
pub use refusal::Check;
pub use service::{Renewer, Service, run};
