//! One job, on one straight path: judge the job, fetch and pin the inputs, release the keys,
//! run the kind (which applies the constraints), deliver, sign the receipt.

use std::collections::BTreeMap;

use bytes::Bytes;
use coffer_manifest::{Computation, Manifest, SignatureFile};
use coffer_net::job::{JobDone, JobRequest, Receipt};
use coffer_net::storage::StorageError;
use coffer_net::{ApiError, JobId};

use crate::broker::ReleaseFor;
use crate::context::{Input, JobContext};
use crate::kinds::Kind;
use crate::refusal::{Check, Refusal};
use crate::worker::{Worker, unix_now};

/// Runs `req` to its receipt, or names why not. A failure's detail, which may quote data, is
/// encrypted to the job's verified signer; the error returned carries only the failed check
/// and its fixed message (see [`crate::refusal`]).
pub(crate) async fn run(w: &Worker, req: JobRequest) -> Result<JobDone, ApiError> {
    let id = req.id().ok();
    let mut signer = None;
    match run_checked(w, &req, &mut signer).await {
        Ok(done) => Ok(done),
        Err(e) => {
            if let (Some(id), Some(recipient)) = (id, signer) {
                store_detail(w, &id, &recipient, &e).await;
            }
            Err(e.public())
        }
    }
}

/// A job that passed every check of the request itself.
struct Judged {
    id: JobId,
    manifest: Manifest,
    computation: String,
    kind: &'static dyn Kind,
}

impl Judged {
    fn comp(&self) -> Result<&Computation, Refusal> {
        self.manifest
            .computation(&self.computation)
            .ok_or_else(|| Check::Internal.because("the judged computation vanished"))
    }
}

/// [`run`] without the redaction; sets `signer` to the signer's age recipient once the job's
/// signature verified.
async fn run_checked(
    w: &Worker,
    req: &JobRequest,
    signer: &mut Option<String>,
) -> Result<JobDone, Refusal> {
    let job = judge(w, req, signer)?;
    let comp = job.comp()?;
    let (pinned, digests) = fetch_inputs(w, &job.manifest, comp).await?;
    let me = w.identity()?;
    let mut keys = w
        .broker
        .release(
            &me,
            |nonce| w.fresh_evidence(nonce),
            ReleaseFor {
                manifest: &req.spec.manifest,
                computation: &comp.name,
                inputs: &digests,
                job: req.signed_job(),
            },
        )
        .await?;
    let inputs = pinned
        .into_iter()
        .map(|(dataset, ciphertext)| {
            let key = keys.remove(&dataset).ok_or_else(|| {
                Check::Internal.because(format!("the broker released no key for {dataset}"))
            })?;
            Ok(Input {
                dataset,
                ciphertext,
                key,
            })
        })
        .collect::<Result<Vec<_>, Refusal>>()?;
    drop(keys);
    let ctx = JobContext {
        id: &job.id,
        manifest: &job.manifest,
        comp,
        spec: &req.spec,
        storage: &w.storage,
    };
    let outputs = job.kind.run(&ctx, inputs).await?;
    let receipt = Receipt {
        job: job.id,
        manifest: job.manifest.hash(),
        computation: comp.name.clone(),
        party: req.spec.party.clone(),
        inputs: digests,
        outputs,
        backend: w.info.backend.clone(),
        simulated: w.info.simulated,
        time: unix_now(),
    }
    .sign(me.as_ref())
    .map_err(|e| Check::Internal.because(e.to_string()))?;
    w.broker.hand_in_receipt(&me, &receipt).await;
    Ok(JobDone { receipt })
}

/// Judges the request: its time, the manifest it carries against the signed hash, the signer,
/// the signature, the computation and its kind, the manifest's status under its predecessor
/// chain, the owners' signatures; then spends the job id. Nothing is read or released yet.
fn judge(w: &Worker, req: &JobRequest, signer: &mut Option<String>) -> Result<Judged, Refusal> {
    let now = unix_now();
    let id = req.id().map_err(|e| Check::Body.because(e.to_string()))?;
    let spec = &req.spec;
    let fresh = now
        .checked_sub(spec.time)
        .and_then(i64::checked_abs)
        .is_some_and(|d| d <= w.window);
    if !fresh {
        return Err(Check::StaleRequest.because(format!(
            "the job was signed at {}, {}s from now; the window is {}s",
            spec.time,
            now.saturating_sub(spec.time),
            w.window
        )));
    }
    let manifest = Manifest::from_yaml(&req.manifest)?;
    if manifest.hash() != spec.manifest {
        return Err(Check::ManifestHash.because(format!(
            "the job names manifest {}, the manifest sent hashes to {}",
            spec.manifest,
            manifest.hash()
        )));
    }
    let party = manifest.party(&spec.party).ok_or_else(|| {
        Check::UnknownParty.because(format!("{:?} is not a party of the manifest", spec.party))
    })?;
    req.verify(&party.key)
        .map_err(|e| Check::JobSignature.because(e.to_string()))?;
    *signer = Some(party.doc.recipient.clone());
    let comp = manifest.computation(&spec.computation).ok_or_else(|| {
        Check::UnknownComputation.because(format!(
            "computation {:?} is not in manifest {}",
            spec.computation,
            manifest.hash()
        ))
    })?;
    let kind = crate::kinds::adapter(comp.kind).ok_or_else(|| {
        Check::UnsupportedComputation.because(format!(
            "computation kind {:?} does not run on this worker",
            comp.kind
        ))
    })?;
    kind.admit(comp, spec.format)?;
    let sigs = SignatureFile::from_json(&req.signatures.to_string())
        .map_err(|e| Check::Signatures.because(format!("signature file: {e}")))?;
    let chain = req
        .predecessors
        .iter()
        .map(|link| {
            let m = Manifest::from_yaml(&link.manifest)?;
            let s = SignatureFile::from_json(&link.signatures.to_string())
                .map_err(|e| Check::Signatures.because(format!("predecessor signatures: {e}")))?;
            Ok((m, s))
        })
        .collect::<Result<Vec<_>, Refusal>>()?;
    let status = coffer_manifest::status_with_chain(&manifest, &sigs, &chain)
        .map_err(|e| Check::ManifestNotActive.because(e.to_string()))?;
    for owner in manifest.owners_of(comp) {
        if !status.signed_by.iter().any(|s| s == owner.name()) {
            return Err(Check::OwnerNotSigned.because(format!(
                "{} owns an input of {:?} and has not signed the manifest",
                owner.name(),
                comp.name
            )));
        }
    }
    if !status.active {
        return Err(Check::ManifestNotActive.because(format!(
            "the manifest still needs signatures from {:?}",
            status.missing
        )));
    }
    if !w.spend(&id, spec.time.saturating_add(w.window), now) {
        return Err(Check::ReplayedRequest
            .because(format!("job {id} was already submitted to this worker")));
    }
    let computation = comp.name.clone();
    Ok(Judged {
        id,
        manifest,
        computation,
        kind,
    })
}

/// Each input's ciphertext, checked against its pin before any key is asked for (from the
/// cache of verified ciphertext, or streamed from storage under the size cap), in the
/// manifest's order, with the digests the receipt names.
async fn fetch_inputs(
    w: &Worker,
    manifest: &Manifest,
    comp: &Computation,
) -> Result<(Vec<(String, Bytes)>, BTreeMap<String, String>), Refusal> {
    let mut inputs = Vec::new();
    let mut digests = BTreeMap::new();
    for ds in manifest.input_datasets(comp) {
        let name = w.storage.resolve(&ds.uri)?;
        let bytes = match w.cached_input(&name, &ds.digest) {
            Some(bytes) => bytes,
            None => {
                let (bytes, got) = w.storage.get_hashed(&name, w.max_input_bytes).await?;
                if got != ds.digest {
                    return Err(Check::DigestMismatch.because(format!(
                        "input {}: storage holds {got}, the manifest pins {}",
                        ds.name, ds.digest
                    )));
                }
                w.remember_input(&name, &ds.digest, bytes.clone());
                bytes
            }
        };
        digests.insert(ds.name.clone(), ds.digest.clone());
        inputs.push((ds.name.clone(), bytes));
    }
    Ok((inputs, digests))
}

/// Encrypts the failure in full to `recipient` (an age recipient) and stores it for `job`,
/// unless a detail is stored already (a replay must not overwrite the first failure's).
async fn store_detail(w: &Worker, job: &JobId, recipient: &str, e: &Refusal) {
    let path = coffer_net::job::error_detail_path(job);
    match w.storage.get(&path).await {
        Err(StorageError::NotFound { .. }) => {}
        _ => return,
    }
    let Ok(recipient) = coffer_crypto::delivery::parse_recipient(recipient) else {
        return;
    };
    let full = e.full();
    let detail = coffer_net::job::FailureDetail {
        job: *job,
        error: full.error,
        check: full.check,
        message: full.message,
        reasons: full.reasons,
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
