//! What a failed job tells the untrusted side, and what only its signer may read.
//!
//! An engine's error may quote the data it failed on (DataFusion's cast errors quote the
//! value, the trainer names the label it refused). The orchestrator and storage are outside
//! the TEE, so the worker answers a failed job with the failed check's name and a fixed
//! message for that check ([`redact`]). The full message and reasons are encrypted with age to
//! the party that signed the job and stored at [`coffer_net::job::error_detail_path`]
//! ([`store_detail`]); `coffer job wait` and `coffer result get` decrypt them for that party.
//! A request whose signature did not verify has no signer, and its detail is dropped.

use bytes::Bytes;
use coffer_net::ApiError;
use coffer_net::storage::StorageError;

use crate::service::Worker;

/// The fixed message for `check`: it never depends on the job's data.
pub(crate) fn public_message(check: &str) -> &'static str {
    match check {
        "body" => "the job request is malformed",
        "manifest" => "the manifest does not validate",
        "signatures" => "the signatures file is malformed",
        "stale_request" => "the job's signing time is outside the worker's window",
        "manifest_hash" => "the manifest sent does not hash to the manifest the job names",
        "unknown_party" => "the job's signer is not a party of the manifest",
        "job_signature" => "the job's signature does not verify",
        "unknown_computation" => "the manifest has no such computation",
        "unsupported_computation" => "this worker does not run the computation's kind",
        "unknown_constraint" => "the manifest sets a constraint this worker does not know",
        "unsupported_constraint" => "the computation's kind does not enforce a constraint it sets",
        "manifest_not_active" => "the manifest is not active",
        "owner_not_signed" => "an owner of an input has not signed the manifest",
        "replayed_request" => "the job was already submitted",
        "digest_mismatch" => "an input in storage does not match its pinned digest",
        "input_missing" => "an input is missing from storage",
        "input_too_large" => "an input is larger than the worker's input size limit",
        "storage_uri" => "an input's storage name is not allowed",
        "storage" => "storage failed",
        "broker_unavailable" => "the key broker could not be reached",
        "broker_attestation" => "the key broker does not meet the manifest's enclave policy",
        "input_format" => "an input is not in the format the computation needs",
        "key_conflict" => "two inputs name the same master key",
        "query" => "the query failed in the engine",
        "not_a_query" => "the computation is not exactly one SELECT query",
        "not_an_aggregate" => "min_group_size needs an aggregate the worker can count",
        "group_too_small" => "fewer contributors than min_group_size",
        "bad_template" => "the query template and its parameter declarations do not fit",
        "unknown_parameter" => "the job gives a parameter the computation does not declare",
        "missing_parameter" => "the job leaves out a declared parameter",
        "bad_parameter_type" => "a parameter's value is not of its declared type",
        "bad_params" => "the training parameters or data do not fit the computation",
        "schema_mismatch" => "the inputs' columns do not match",
        "predict_recipients" => "predictions may go to the table's owner only",
        "format" => "the output format does not fit the computation",
        "internal" => "the worker failed",
        _ => "the job was refused at this check",
    }
}

/// The error as the untrusted side may see it: kind, check and the check's fixed message.
pub(crate) fn redact(e: &ApiError) -> ApiError {
    ApiError::new(&e.error, &e.check, public_message(&e.check))
}

/// Encrypts `e` in full to `recipient` (an age recipient) and stores it for `job`, unless a
/// detail is stored already (a replay must not overwrite the first failure's detail).
pub(crate) async fn store_detail(w: &Worker, job: &str, recipient: &str, e: &ApiError) {
    let path = coffer_net::job::error_detail_path(job);
    match w.storage.get(&path).await {
        Err(StorageError::NotFound { .. }) => {}
        _ => return,
    }
    let Ok(recipient) = coffer_crypto::delivery::parse_recipient(recipient) else {
        return;
    };
    let detail = coffer_net::job::FailureDetail {
        job: job.to_owned(),
        error: e.error.clone(),
        check: e.check.clone(),
        message: e.message.clone(),
        reasons: e.reasons.clone(),
    };
    let Ok(plain) = serde_json::to_vec_pretty(&detail) else {
        return;
    };
    let plain = zeroize::Zeroizing::new(plain);
    let mut sealed = Vec::new();
    if coffer_crypto::delivery::encrypt_to(&[recipient], plain.as_slice(), &mut sealed).is_err() {
        return;
    }
    // Best effort: the job has failed either way, and its check reaches the client.
    let _ = w.storage.put(&path, Bytes::from(sealed)).await;
}
