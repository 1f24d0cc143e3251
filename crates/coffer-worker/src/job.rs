//! One job, from the signed request to the signed receipt.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use coffer_attest::ratls::RaTlsCert;
use coffer_crypto::{KeyId, KeySource, MemoryKeys, SecretKey};
use coffer_manifest::{Computation, ComputationKind, Manifest, SignatureFile};
use coffer_net::broker::{ReleaseRequest, Released};
use coffer_net::job::SignedJob;
use coffer_net::job::{JobDone, JobRequest, OutputFormat, OutputRef, Receipt, SignedReceipt};
use coffer_net::storage::{StorageError, digest};
use coffer_net::{ApiError, Connection};
use coffer_sql::{OutputConstraints, SqlError};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::prelude::SessionContext;
use object_store::ObjectStoreExt;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use zeroize::{Zeroize, Zeroizing};

use crate::service::{Worker, unix_now};

/// Where a job's inputs live inside the worker's DataFusion session (memory only).
const INPUT_URL: &str = "coffer-job://inputs/";

pub(crate) fn refused(check: &str, message: impl Into<String>) -> ApiError {
    ApiError::new("refused", check, message)
}

fn bad_request(check: &str, message: impl Into<String>) -> ApiError {
    ApiError::new("bad_request", check, message)
}

pub(crate) fn internal(message: impl Into<String>) -> ApiError {
    ApiError::new("internal", "internal", message)
}

fn storage_error(e: StorageError) -> ApiError {
    match e {
        StorageError::NotFound { .. } => refused(e.check(), e.to_string()),
        StorageError::BadName { .. } | StorageError::TooLarge { .. } => {
            refused(e.check(), e.to_string())
        }
        _ => internal(e.to_string()),
    }
}

fn sql_error(e: SqlError) -> ApiError {
    match e.check() {
        Some(check) => refused(check, e.to_string()),
        None => refused("query", e.to_string()),
    }
}

/// Runs `req` to its receipt, or names why not. A failure's detail, which may quote data, is
/// encrypted to the job's verified signer; the error returned carries only the failed check
/// and its fixed message (see [`crate::refusal`]).
pub(crate) async fn run(w: &Worker, req: JobRequest) -> Result<JobDone, ApiError> {
    let id = req.id().ok();
    let mut signer = None;
    match run_checked(w, req, &mut signer).await {
        Ok(done) => Ok(done),
        Err(e) => {
            if let (Some(id), Some(recipient)) = (id, signer) {
                crate::refusal::store_detail(w, &id, &recipient, &e).await;
            }
            Err(crate::refusal::redact(&e))
        }
    }
}

/// Manifest validation failures, with the constraint checks named as the worker reports them.
fn manifest_error(e: coffer_manifest::Error) -> ApiError {
    match e {
        coffer_manifest::Error::UnknownConstraint { .. } => {
            refused("unknown_constraint", format!("manifest: {e}"))
        }
        coffer_manifest::Error::UnsupportedConstraint { .. } => {
            refused("unsupported_constraint", format!("manifest: {e}"))
        }
        _ => bad_request("manifest", format!("manifest: {e}")),
    }
}

/// [`run`] without the redaction; sets `signer` to the signer's age recipient once the job's
/// signature verified.
async fn run_checked(
    w: &Worker,
    req: JobRequest,
    signer: &mut Option<String>,
) -> Result<JobDone, ApiError> {
    let now = unix_now();
    let id = req.id().map_err(|e| bad_request("body", e.to_string()))?;
    let spec = &req.spec;

    // 1. The request itself.
    let fresh = now
        .checked_sub(spec.time)
        .and_then(i64::checked_abs)
        .is_some_and(|d| d <= w.window);
    if !fresh {
        return Err(refused(
            "stale_request",
            format!(
                "the job was signed at {}, {}s from now; the window is {}s",
                spec.time,
                now.saturating_sub(spec.time),
                w.window
            ),
        ));
    }
    let manifest = Manifest::from_yaml(&req.manifest).map_err(manifest_error)?;
    if manifest.hash().to_string() != spec.manifest {
        return Err(refused(
            "manifest_hash",
            format!(
                "the job names manifest {}, the manifest sent hashes to {}",
                spec.manifest,
                manifest.hash()
            ),
        ));
    }
    let party = manifest.party(&spec.party).ok_or_else(|| {
        refused(
            "unknown_party",
            format!("{:?} is not a party of the manifest", spec.party),
        )
    })?;
    req.verify(&party.key)
        .map_err(|e| refused(e.check(), e.to_string()))?;
    *signer = Some(party.doc.recipient.clone());
    let comp = manifest.computation(&spec.computation).ok_or_else(|| {
        refused(
            "unknown_computation",
            format!(
                "computation {:?} is not in manifest {}",
                spec.computation,
                manifest.hash()
            ),
        )
    })?;
    if !matches!(
        comp.kind,
        ComputationKind::Sql | ComputationKind::GbdtTrain | ComputationKind::GbdtPredict
    ) {
        return Err(refused(
            "unsupported_computation",
            format!(
                "computation kind {:?} does not run on this worker yet",
                comp.kind
            ),
        ));
    }
    let sigs = SignatureFile::from_json(&req.signatures.to_string())
        .map_err(|e| bad_request("signatures", format!("signature file: {e}")))?;
    let chain = req
        .predecessors
        .iter()
        .map(|link| {
            let m = Manifest::from_yaml(&link.manifest).map_err(manifest_error)?;
            let s = SignatureFile::from_json(&link.signatures.to_string())
                .map_err(|e| bad_request("signatures", format!("predecessor signatures: {e}")))?;
            Ok((m, s))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let status = coffer_manifest::status_with_chain(&manifest, &sigs, &chain)
        .map_err(|e| refused("manifest_not_active", e.to_string()))?;
    for owner in manifest.owners_of(comp) {
        if !status.signed_by.iter().any(|s| s == owner.name()) {
            return Err(refused(
                "owner_not_signed",
                format!(
                    "{} owns an input of {:?} and has not signed the manifest",
                    owner.name(),
                    comp.name
                ),
            ));
        }
    }
    if !status.active {
        return Err(refused(
            "manifest_not_active",
            format!(
                "the manifest still needs signatures from {:?}",
                status.missing
            ),
        ));
    }
    if !w.spend(&id, spec.time.saturating_add(w.window), now) {
        return Err(refused(
            "replayed_request",
            format!("job {id} was already submitted to this worker"),
        ));
    }

    // 2. The inputs, checked against their pins before any key is asked for.
    let mut inputs: Vec<(String, Bytes)> = Vec::new();
    let mut digests = BTreeMap::new();
    for ds in manifest.input_datasets(comp) {
        let name = w.storage.resolve(&ds.uri).map_err(storage_error)?;
        let bytes = match w.cached_input(&name, &ds.digest) {
            Some(bytes) => bytes,
            None => {
                let (bytes, got) = w
                    .storage
                    .get_hashed(&name, w.max_input_bytes)
                    .await
                    .map_err(storage_error)?;
                if got != ds.digest {
                    return Err(refused(
                        "digest_mismatch",
                        format!(
                            "input {}: storage holds {got}, the manifest pins {}",
                            ds.name, ds.digest
                        ),
                    ));
                }
                w.remember_input(&name, &ds.digest, bytes.clone());
                bytes
            }
        };
        digests.insert(ds.name.clone(), ds.digest.clone());
        inputs.push((ds.name.clone(), bytes));
    }

    // 3. The keys.
    let keys = release(w, &manifest, comp, &digests, &req.signed_job()).await?;

    // 4. The computation, then 5. its outputs.
    let outputs = match comp.kind {
        ComputationKind::GbdtPredict => {
            crate::gbdt::predict(w, &manifest, comp, &id, inputs, keys).await?
        }
        ComputationKind::GbdtTrain => {
            let ctx = session(inputs.clone(), keys).await?;
            let names: Vec<String> = inputs.into_iter().map(|(n, _)| n).collect();
            crate::gbdt::train(w, &manifest, comp, &id, &ctx, &names).await?
        }
        _ => {
            if spec.format == OutputFormat::Json {
                return Err(bad_request("format", "SQL outputs are CSV or Parquet"));
            }
            let sql = comp
                .query
                .as_deref()
                .ok_or_else(|| refused("bad_template", "the computation has no query"))?;
            let bound =
                coffer_sql::bind_template(sql, &comp.params, &spec.params).map_err(sql_error)?;
            let ctx = session(inputs, keys).await?;
            let (schema, batches) = query(&ctx, &manifest, comp, &bound).await?;
            let rows = count_rows(&batches)?;
            let format = spec.format;
            let plain = tokio::task::spawn_blocking(move || encode(format, &schema, &batches))
                .await
                .map_err(|e| internal(e.to_string()))??;
            let name = format!("{}.{}", comp.name, format.extension());
            vec![deliver(w, &manifest, comp, &id, &name, format, plain, rows).await?]
        }
    };

    let receipt = Receipt {
        job: id,
        manifest: manifest.hash().to_string(),
        computation: comp.name.clone(),
        party: spec.party.clone(),
        inputs: digests,
        outputs,
        backend: w.info.backend.clone(),
        simulated: w.info.simulated,
        time: unix_now(),
    }
    .sign(w.identity()?.as_ref())
    .map_err(|e| internal(e.to_string()))?;
    hand_in_receipt(w, &receipt).await;
    Ok(JobDone { receipt })
}

/// A connection to the broker and what its RA-TLS evidence proved.
pub(crate) struct BrokerConn {
    conn: Connection,
    verdict: Result<coffer_attest::Verified, Vec<coffer_attest::FailedCheck>>,
}

impl std::fmt::Debug for BrokerConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConn").finish_non_exhaustive()
    }
}

async fn connect_broker(w: &Worker) -> Result<BrokerConn, ApiError> {
    let config = coffer_net::client_config(Some(w.identity()?.as_ref()))
        .map_err(|e| internal(e.to_string()))?;
    let conn = Connection::connect(&w.broker, config).await.map_err(|e| {
        ApiError::new(
            "internal",
            "broker_unavailable",
            format!("key broker {}: {e}", w.broker.url()),
        )
    })?;
    let verdict = RaTlsCert::from_der(conn.peer_certificate())
        .map_err(|e| vec![coffer_attest::FailedCheck::from_error(&e)])
        .and_then(|cert| cert.verify_bound(&w.verifier, None, unix_now()));
    Ok(BrokerConn { conn, verdict })
}

/// The broker's evidence must meet the worker's own broker policy (the manifest's policy is
/// for workers: the broker is not a worker, and must not pass as one).
fn appraise_broker(
    w: &Worker,
    verdict: &Result<coffer_attest::Verified, Vec<coffer_attest::FailedCheck>>,
) -> Result<(), ApiError> {
    let Some(policy) = &w.broker_policy else {
        return Err(refused(
            "broker_attestation",
            "this worker has no broker policy (--broker-policy FILE), so it trusts no broker",
        ));
    };
    let failed = match verdict {
        Ok(verified) => policy.check(verified, unix_now()),
        Err(failed) => failed.clone(),
    };
    if failed.is_empty() {
        return Ok(());
    }
    Err(refused(
        "broker_attestation",
        format!(
            "the key broker at {} does not meet this worker's broker policy",
            w.broker.url()
        ),
    )
    .with_reasons(
        failed
            .iter()
            .map(|c| format!("[{}] {c}", c.check()))
            .collect(),
    ))
}

/// Attests the broker, then asks it for the job's keys over RA-TLS (the broker appraises this
/// worker's certificate against the manifest's policy).
async fn release(
    w: &Worker,
    manifest: &Manifest,
    comp: &Computation,
    digests: &BTreeMap<String, String>,
    signed_job: &SignedJob,
) -> Result<BTreeMap<String, SecretKey>, ApiError> {
    // The broker judges the release on evidence made for a nonce it issued just now.
    let challenge = send_to_broker(w, coffer_net::broker::CHALLENGE, Vec::new()).await?;
    if !challenge.status.is_success() {
        return Err(
            serde_json::from_slice::<ApiError>(&challenge.body).unwrap_or_else(|_| {
                internal(format!(
                    "key broker answered {} to a challenge",
                    challenge.status
                ))
            }),
        );
    }
    let nonce: coffer_net::broker::Challenge = serde_json::from_slice(&challenge.body)
        .map_err(|e| internal(format!("key broker's challenge: {e}")))?;
    let nonce_bytes =
        hex::decode(&nonce.nonce).map_err(|e| internal(format!("key broker's nonce: {e}")))?;
    let evidence = w.fresh_evidence(&nonce_bytes)?;
    let body = serde_json::to_vec(&ReleaseRequest {
        manifest: manifest.hash().to_string(),
        computation: comp.name.clone(),
        inputs: digests.clone(),
        job: signed_job.clone(),
        fresh: coffer_net::broker::FreshEvidence {
            nonce: nonce.nonce,
            evidence: hex::encode(evidence),
        },
    })
    .map_err(|e| internal(e.to_string()))?;
    let resp = send_to_broker(w, coffer_net::broker::RELEASE, body).await?;
    if !resp.status.is_success() {
        // The broker's refusal, as it named it (measurement, replayed_request, …).
        return Err(
            serde_json::from_slice::<ApiError>(&resp.body).unwrap_or_else(|_| {
                internal(format!(
                    "key broker answered {} without an error body",
                    resp.status
                ))
            }),
        );
    }
    let body = resp.body;
    let released: Result<Released, _> = serde_json::from_slice(&body);
    if let Ok(mut m) = body.try_into_mut() {
        m.as_mut().zeroize();
    }
    let released = released.map_err(|e| internal(format!("key broker's answer: {e}")))?;
    let mut keys = BTreeMap::new();
    for (dataset, hex) in released.keys {
        let hex = Zeroizing::new(hex);
        let key = SecretKey::from_hex(&hex).map_err(|e| internal(format!("released key: {e}")))?;
        keys.insert(dataset, key);
    }
    Ok(keys)
}

/// Hands the job's signed receipt to the broker, which records it next to the job's key
/// release. Best effort: the outputs are stored either way, and a receipt that never arrived
/// shows as such in the audit log.
async fn hand_in_receipt(w: &Worker, receipt: &SignedReceipt) {
    let Ok(body) = serde_json::to_vec(receipt) else {
        return;
    };
    let _ = send_to_broker(w, coffer_net::broker::RECEIPTS, body).await;
}

/// POSTs `body` to the broker at `path` over the keep-alive RA-TLS connection, after
/// appraising the broker against this worker's broker policy.
async fn send_to_broker(
    w: &Worker,
    path: &str,
    body: Vec<u8>,
) -> Result<coffer_net::Response, ApiError> {
    // One keep-alive connection to the broker, its evidence verified once per connection and
    // appraised before each request. A reused connection the broker has closed is
    // replaced once; a fresh one that fails is an error.
    let mut held = w.broker_conn.lock().await;
    let mut reused = held.is_some();
    let resp = loop {
        if held.is_none() {
            *held = Some(connect_broker(w).await?);
            reused = false;
        }
        let Some(broker) = held.as_mut() else {
            return Err(internal("no broker connection"));
        };
        appraise_broker(w, &broker.verdict)?;
        match broker
            .conn
            .send(http::Method::POST, path, &[], body.clone())
            .await
        {
            Ok(resp) => break resp,
            Err(_) if reused => *held = None,
            Err(e) => {
                *held = None;
                return Err(ApiError::new(
                    "internal",
                    "broker_unavailable",
                    e.to_string(),
                ));
            }
        }
    };
    drop(held);
    Ok(resp)
}

/// A DataFusion session over the job's inputs: each input's ciphertext, in memory, as a table
/// named after its dataset, whose master key ids map to the dataset's released key.
pub(crate) async fn session(
    inputs: Vec<(String, Bytes)>,
    released: BTreeMap<String, SecretKey>,
) -> Result<SessionContext, ApiError> {
    let ctx = SessionContext::new();
    let store = Arc::new(InMemory::new());
    let base = url::Url::parse(INPUT_URL).map_err(|e| internal(e.to_string()))?;
    ctx.register_object_store(&base, store.clone());
    let mut keys = MemoryKeys::new();
    let mut owner_of: BTreeMap<String, String> = BTreeMap::new();
    for (name, bytes) in &inputs {
        let key = released
            .get(name)
            .ok_or_else(|| internal(format!("the broker released no key for {name}")))?;
        let inspection =
            coffer_parquet::inspect(bytes, None, &coffer_parquet::DecryptOptions::default())
                .map_err(|e| refused("input_format", format!("input {name}: {e}")))?;
        if inspection.key_ids.is_empty() {
            return Err(refused(
                "input_format",
                format!("input {name} is not encrypted Parquet"),
            ));
        }
        for kid in inspection.key_ids {
            if let Some(other) = owner_of.get(&kid)
                && other != name
            {
                return Err(refused(
                    "key_conflict",
                    format!("inputs {other} and {name} both name master key {kid:?}"),
                ));
            }
            let id = KeyId::new(kid.clone())
                .map_err(|e| refused("input_format", format!("input {name}: {e}")))?;
            keys.insert(id, key.clone());
            owner_of.insert(kid, name.clone());
        }
        store
            .put(
                &ObjectPath::from(format!("{name}.parquet")),
                bytes.clone().into(),
            )
            .await
            .map_err(|e| internal(e.to_string()))?;
    }
    drop(released);
    let keys: Arc<dyn KeySource> = Arc::new(keys);
    for (name, _) in &inputs {
        coffer_sql::register_encrypted_parquet(
            &ctx,
            name,
            &format!("{INPUT_URL}{name}.parquet"),
            Arc::clone(&keys),
        )
        .await
        .map_err(|e| internal(format!("registering {name}: {e}")))?;
    }
    Ok(ctx)
}

/// Plans and runs the computation's query under its constraints.
async fn query(
    ctx: &SessionContext,
    manifest: &Manifest,
    comp: &Computation,
    bound: &coffer_sql::BoundTemplate,
) -> Result<(SchemaRef, Vec<RecordBatch>), ApiError> {
    let mut constraints =
        OutputConstraints::none().with_min_group_size(comp.constraints.min_group_size);
    for ds in manifest.input_datasets(comp) {
        if let Some(unit) = &ds.privacy_unit {
            constraints = constraints.with_privacy_unit(&ds.name, unit);
        }
    }
    let plan =
        coffer_sql::constraints::plan_constrained(ctx, &bound.sql, &bound.params, &constraints)
            .await
            .map_err(sql_error)?;
    let frame = ctx
        .execute_logical_plan(plan)
        .await
        .map_err(|e| sql_error(e.into()))?;
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await.map_err(|e| sql_error(e.into()))?;
    Ok((schema, batches))
}

pub(crate) fn count_rows(batches: &[RecordBatch]) -> Result<u64, ApiError> {
    batches
        .iter()
        .try_fold(0u64, |n, b| {
            n.checked_add(u64::try_from(b.num_rows()).ok()?)
        })
        .ok_or_else(|| internal("row count overflow"))
}

/// Encrypts an output to the computation's recipients (age) and stores it as
/// `results/<job>/<name>.age`. The plaintext is zeroized once encrypted.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn deliver(
    w: &Worker,
    manifest: &Manifest,
    comp: &Computation,
    job: &str,
    name: &str,
    format: OutputFormat,
    plain: Vec<u8>,
    rows: u64,
) -> Result<OutputRef, ApiError> {
    let mut recipients = Vec::new();
    for r in &comp.recipients {
        let party = manifest
            .party(r)
            .ok_or_else(|| internal(format!("recipient {r} is not a party")))?;
        recipients.push(
            coffer_crypto::delivery::parse_recipient(&party.doc.recipient)
                .map_err(|e| internal(format!("recipient {r}: {e}")))?,
        );
    }
    let plain = Zeroizing::new(plain);
    let sealed = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ApiError> {
        let mut out = Vec::new();
        coffer_crypto::delivery::encrypt_to(&recipients, plain.as_slice(), &mut out)
            .map_err(|e| internal(format!("age: {e}")))?;
        Ok(out)
    })
    .await
    .map_err(|e| internal(e.to_string()))??;
    let path = format!("results/{job}/{name}.age");
    let stored_digest = digest(&sealed);
    w.storage
        .put(&path, Bytes::from(sealed))
        .await
        .map_err(storage_error)?;
    Ok(OutputRef {
        path,
        digest: stored_digest,
        format,
        recipients: comp.recipients.clone(),
        rows,
    })
}

/// CSV with a header, or Parquet (uncompressed metadata aside, zstd pages).
fn encode(
    format: OutputFormat,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<Vec<u8>, ApiError> {
    let mut buf = Vec::new();
    match format {
        OutputFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut buf);
            if batches.is_empty() {
                writer
                    .write(&RecordBatch::new_empty(Arc::clone(schema)))
                    .map_err(|e| internal(format!("CSV: {e}")))?;
            }
            for b in batches {
                writer.write(b).map_err(|e| internal(format!("CSV: {e}")))?;
            }
        }
        OutputFormat::Json => {
            return Err(bad_request("format", "SQL outputs are CSV or Parquet"));
        }
        OutputFormat::Parquet => {
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                .build();
            let mut writer =
                parquet::arrow::ArrowWriter::try_new(&mut buf, Arc::clone(schema), Some(props))
                    .map_err(|e| internal(format!("Parquet: {e}")))?;
            for b in batches {
                writer
                    .write(b)
                    .map_err(|e| internal(format!("Parquet: {e}")))?;
            }
            writer
                .close()
                .map_err(|e| internal(format!("Parquet: {e}")))?;
        }
    }
    Ok(buf)
}
