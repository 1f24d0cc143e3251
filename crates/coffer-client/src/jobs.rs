//! Jobs, as a party runs them: sign and submit, follow, and collect verified results.
//!
//! Nothing here trusts the orchestrator or the storage. A job is signed by the party before it
//! leaves; a result is used only after the worker's receipt, its evidence and the manifest's
//! enclave policy check out and every stored output matches the receipt's digest. A failed
//! job's detail is read only from storage, encrypted to the party that signed the job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use coffer_attest::{TeeKind, UnixTime, Verifier};
use coffer_manifest::{Manifest, SignatureFile};
use coffer_net::job::{
    ChainLink, FailureDetail, JobRequest, JobSpec, OutputFormat, Receipt, SignedReceipt,
};
use coffer_net::orchestrator::{JobState, JobStatus};
use coffer_net::storage::{Storage, digest};
use coffer_net::{ApiError, Connection, Endpoint, JobId, JobNonce};
use zeroize::Zeroizing;

use crate::{AtomicFile, Error, Home, Identity};

/// How far in the future a receipt's time may be (clock skew between worker and party).
pub const RECEIPT_CLOCK_SKEW_SECS: i64 = 300;

/// The current Unix time in seconds.
pub fn unix_now() -> UnixTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn refused(check: &str, message: impl Into<String>) -> Error {
    Error::Refused {
        check: check.to_owned(),
        message: message.into(),
    }
}

/// A manifest as read from its file, with its signature file.
#[derive(Debug, Clone)]
pub struct ManifestFiles {
    /// The YAML, exactly as signed.
    pub yaml: String,
    pub manifest: Manifest,
    pub signatures: SignatureFile,
}

/// `FILE.sigs` beside a manifest, unless `sigs` names another file.
pub fn sigs_path(manifest: &Path, sigs: Option<&Path>) -> PathBuf {
    sigs.map_or_else(
        || {
            let mut p = manifest.to_path_buf().into_os_string();
            p.push(".sigs");
            PathBuf::from(p)
        },
        Path::to_path_buf,
    )
}

fn read_text(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(Error::io(path))
}

impl ManifestFiles {
    /// Reads and parses `manifest` and its signature file (`sigs`, else `MANIFEST.sigs`,
    /// which must exist).
    pub fn load(manifest: &Path, sigs: Option<&Path>) -> Result<Self, Error> {
        let (yaml, parsed) = crate::manifests::load(manifest)?;
        let sigs_file = sigs_path(manifest, sigs);
        let text = read_text(&sigs_file)?;
        let signatures = SignatureFile::from_json(&text).map_err(|source| Error::Manifest {
            path: sigs_file.clone(),
            source,
        })?;
        Ok(Self {
            yaml,
            manifest: parsed,
            signatures,
        })
    }

    /// The manifest as a predecessor link of a job's chain.
    pub fn link(&self) -> Result<ChainLink, Error> {
        Ok(ChainLink {
            manifest: self.yaml.clone(),
            signatures: signatures_json(&self.signatures)?,
        })
    }
}

fn signatures_json(sigs: &SignatureFile) -> Result<serde_json::Value, Error> {
    let text = sigs
        .to_json()
        .map_err(|e| Error::InvalidArgument(format!("signatures: {e}")))?;
    serde_json::from_str(&text).map_err(|e| Error::InvalidArgument(format!("signatures: {e}")))
}

/// What a party asks of a manifest's computation.
#[derive(Debug, Clone, Default)]
pub struct JobOptions {
    /// Template parameters, by name.
    pub params: BTreeMap<String, serde_json::Value>,
    /// How tabular outputs are written.
    pub format: OutputFormat,
    /// When the manifest is an update: its predecessors, nearest first, so the worker can
    /// judge it under the governance it changes.
    pub predecessors: Vec<ChainLink>,
}

/// Signs a job for `computation` of `files` as this party. Refuses a computation the manifest
/// does not name (`unknown_computation`) before anything leaves.
pub fn sign_job(
    identity: &Identity,
    files: &ManifestFiles,
    computation: &str,
    options: JobOptions,
) -> Result<JobRequest, Error> {
    if files.manifest.computation(computation).is_none() {
        return Err(refused(
            "unknown_computation",
            format!("computation {computation:?} is not in the manifest"),
        ));
    }
    let nonce = JobNonce::random().map_err(|e| Error::InvalidArgument(format!("nonce: {e}")))?;
    let spec = JobSpec {
        manifest: files.manifest.hash(),
        computation: computation.to_owned(),
        params: options.params,
        format: options.format,
        party: identity.name().to_owned(),
        time: unix_now(),
        nonce,
    };
    Ok(spec
        .sign(
            identity.signing_key(),
            files.yaml.clone(),
            signatures_json(&files.signatures)?,
        )
        .map_err(|e| refused(e.check(), e.to_string()))?
        .with_predecessors(options.predecessors))
}

/// The untrusted orchestrator: its certificate is not appraised, and nothing it says is used
/// without an end-to-end check.
#[derive(Debug, Clone)]
pub struct Orchestrator {
    url: String,
    endpoint: Endpoint,
}

impl Orchestrator {
    /// An orchestrator at `https://HOST:PORT`.
    pub fn new(url: &str) -> Result<Self, Error> {
        let endpoint = Endpoint::parse(url)
            .map_err(|e| Error::InvalidArgument(format!("orchestrator {url}: {e}")))?;
        Ok(Self {
            url: url.to_owned(),
            endpoint,
        })
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<JobStatus, Error> {
        let net = |e: &dyn std::fmt::Display| Error::Unreachable {
            url: self.url.clone(),
            reason: e.to_string(),
        };
        let config = coffer_net::client_config(None).map_err(|e| net(&e))?;
        let mut conn = Connection::connect(&self.endpoint, config)
            .await
            .map_err(|e| net(&e))?;
        let resp = conn
            .send(method, path, &[], body)
            .await
            .map_err(|e| net(&e))?;
        if !resp.status.is_success() {
            let error = serde_json::from_slice::<ApiError>(&resp.body).unwrap_or_else(|_| {
                ApiError::new("internal", "http", format!("HTTP {}", resp.status))
            });
            return Err(Error::Service {
                url: self.url.clone(),
                error,
            });
        }
        serde_json::from_slice(&resp.body).map_err(|e| Error::Service {
            url: self.url.clone(),
            error: ApiError::new("internal", "protocol", format!("unexpected answer: {e}")),
        })
    }

    /// Submits a signed job; the orchestrator queues it.
    pub async fn submit(&self, request: &JobRequest) -> Result<JobStatus, Error> {
        let body = serde_json::to_vec(request)
            .map_err(|e| Error::InvalidArgument(format!("job request: {e}")))?;
        self.call(http::Method::POST, coffer_net::job::JOBS, body)
            .await
    }

    /// Where job `id` is.
    pub async fn status(&self, id: &JobId) -> Result<JobStatus, Error> {
        self.call(
            http::Method::GET,
            &format!("{}/{id}", coffer_net::job::JOBS),
            Vec::new(),
        )
        .await
    }

    /// Polls job `id` until it is done or failed, calling `progress` with every status seen
    /// and the time waited. Returns the final status (done or failed: a failure is the
    /// caller's to report, see [`failure`]); past `timeout` it gives up (`Error::Timeout`).
    pub async fn wait(
        &self,
        id: &JobId,
        timeout: Duration,
        mut progress: impl FnMut(&JobStatus, Duration),
    ) -> Result<JobStatus, Error> {
        let started = Instant::now();
        loop {
            let status = self.status(id).await?;
            progress(&status, started.elapsed());
            if status.state.is_final() {
                return Ok(status);
            }
            if started.elapsed() > timeout {
                return Err(Error::Timeout {
                    job: *id,
                    state: status.state.name().to_owned(),
                    secs: timeout.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The worker's detail of job `id`'s failure, if `storage` holds one this party can decrypt
/// (it signed the job). It may quote the collaboration's data: show it, never store it.
pub async fn failure_detail(
    identity: &Identity,
    storage: &Storage,
    id: &JobId,
) -> Option<FailureDetail> {
    let sealed = storage
        .get(&coffer_net::job::error_detail_path(id))
        .await
        .ok()?;
    let mut plain = Zeroizing::new(Vec::new());
    coffer_crypto::delivery::decrypt_with(identity.age_identity(), sealed.as_ref(), &mut *plain)
        .ok()?;
    let detail: FailureDetail = serde_json::from_slice(&plain).ok()?;
    // A detail moved here from another job is not this job's.
    (detail.job == *id).then_some(detail)
}

/// The refusal of a failed job: its check and the orchestrator's fixed message, with the
/// worker's detail when `storage` holds one for this party.
pub async fn failure(identity: &Identity, storage: Option<&Storage>, status: &JobStatus) -> Error {
    let detail = match storage {
        Some(s) => failure_detail(identity, s, &status.id).await,
        None => None,
    };
    Error::JobFailed {
        job: status.id,
        check: status.check.clone().unwrap_or_else(|| "unknown".into()),
        message: status
            .reason
            .clone()
            .unwrap_or_else(|| "no reason given".into()),
        detail: detail.map(Box::new),
    }
}

fn checks(failed: &[coffer_attest::FailedCheck]) -> String {
    failed
        .iter()
        .map(|c| format!("[{}] {c}", c.check()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Every check a recipient makes before trusting a job's output: the receipt's signature by
/// the worker's RA-TLS key; that key's evidence, judged at the receipt's time, against the
/// manifest's enclave policy; and the receipt's job, manifest, computation, input pins and
/// simulation flag.
pub fn verify_receipt(
    receipt: &SignedReceipt,
    manifest: &Manifest,
    job: &JobId,
    verifier: &Verifier,
    now: UnixTime,
) -> Result<(), Error> {
    let cert = receipt
        .verify_signature()
        .map_err(|e| refused(e.check(), e.to_string()))?;
    // The worker's certificate and evidence are judged as of the receipt's signing time: a
    // result stays verifiable after the certificate's short life, and a receipt dated outside
    // that life is refused ([certificate_expired]).
    let at = receipt.receipt.time;
    if at > now.saturating_add(RECEIPT_CLOCK_SKEW_SECS) {
        return Err(refused(
            "receipt_time",
            format!("the receipt is dated {at}, after now ({now})"),
        ));
    }
    let verified = cert.verify_bound(verifier, None, at).map_err(|failed| {
        refused(
            "worker_attestation",
            format!("the worker's evidence does not verify: {}", checks(&failed)),
        )
    })?;
    let failed = manifest.policy().check(&verified, at);
    if !failed.is_empty() {
        return Err(refused(
            "worker_attestation",
            format!(
                "the worker does not meet the manifest's enclave policy: {}",
                checks(&failed)
            ),
        ));
    }
    let r = &receipt.receipt;
    if r.job != *job {
        return Err(refused(
            "receipt_job",
            format!("the receipt is for job {}", r.job),
        ));
    }
    if r.manifest != manifest.hash() {
        return Err(refused(
            "receipt_manifest",
            format!(
                "the receipt names manifest {}, not {}",
                r.manifest,
                manifest.hash()
            ),
        ));
    }
    let comp = manifest.computation(&r.computation).ok_or_else(|| {
        refused(
            "receipt_computation",
            format!("{:?} is not in the manifest", r.computation),
        )
    })?;
    let pinned: BTreeMap<String, String> = manifest
        .input_datasets(comp)
        .into_iter()
        .map(|d| (d.name.clone(), d.digest.clone()))
        .collect();
    if r.inputs != pinned {
        return Err(refused(
            "receipt_inputs",
            "the receipt's input digests are not the manifest's pins",
        ));
    }
    if r.simulated != (verified.claims.tee() == TeeKind::Sim) {
        return Err(refused(
            "receipt_simulated",
            "the receipt's simulation flag contradicts its evidence",
        ));
    }
    Ok(())
}

/// The simulated platform keys this home trusts for workers: `explicit` if given, else every
/// root named by this home's broker pins (a party trusts the sim platform it attested).
pub fn sim_roots(home: &Home, explicit: Option<[u8; 32]>) -> Vec<[u8; 32]> {
    if let Some(root) = explicit {
        return vec![root];
    }
    let mut roots = Vec::new();
    if let Ok(entries) = std::fs::read_dir(home.root().join("brokers")) {
        for e in entries.flatten() {
            let Ok(text) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            if let Ok(pin) = serde_json::from_str::<crate::broker::BrokerPin>(&text)
                && let Some(root) = pin.sim_root
                && let Ok(bytes) = hex::decode(root)
                && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
            {
                roots.push(key);
            }
        }
    }
    roots
}

/// Opens the storage at `url` (`file:///DIR` or a directory).
pub fn storage(url: &str) -> Result<Storage, Error> {
    Storage::open(url).map_err(|e| Error::InvalidArgument(e.to_string()))
}

fn storage_error(name: &str) -> impl FnOnce(coffer_net::storage::StorageError) -> Error + '_ {
    move |e| Error::Unreachable {
        url: name.to_owned(),
        reason: e.to_string(),
    }
}

/// Puts the file at `path` (ciphertext) into `storage` as `name`; returns its digest.
pub async fn upload(storage: &Storage, path: &Path, name: &str) -> Result<String, Error> {
    let bytes = std::fs::read(path).map_err(Error::io(path))?;
    let d = digest(&bytes);
    storage
        .put(name, bytes.into())
        .await
        .map_err(storage_error(name))?;
    Ok(d)
}

/// Gets object `name` from `storage` into `path` (whole or not at all); returns its digest.
pub async fn download(storage: &Storage, name: &str, path: &Path) -> Result<String, Error> {
    let bytes = storage.get(name).await.map_err(storage_error(name))?;
    let mut out = AtomicFile::create(path)?;
    std::io::Write::write_all(out.file(), &bytes).map_err(Error::io(path))?;
    out.commit()?;
    Ok(digest(&bytes))
}

/// One decrypted output of a job, addressed to this party.
#[derive(Debug)]
pub struct Output {
    /// Its file name: the stored name without `.age` (`COMPUTATION.csv|parquet|json|…`).
    pub name: String,
    /// Rows, as the receipt states them.
    pub rows: u64,
    /// The plaintext.
    pub bytes: Zeroizing<Vec<u8>>,
}

/// A job's verified outputs for this party, with the receipt they were checked against.
#[derive(Debug)]
pub struct Results {
    pub receipt: Receipt,
    pub outputs: Vec<Output>,
}

impl Results {
    /// Writes every output into `dir` (created if absent): all are staged first, then moved
    /// into place, so a failure leaves none of them. Returns the paths written.
    pub fn write_to(&self, dir: &Path) -> Result<Vec<PathBuf>, Error> {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        let mut staged = Vec::with_capacity(self.outputs.len());
        for out in &self.outputs {
            let dest = dir.join(&out.name);
            let mut file = AtomicFile::create(&dest)?;
            std::io::Write::write_all(file.file(), &out.bytes).map_err(Error::io(&dest))?;
            staged.push((file, dest));
        }
        let mut written = Vec::with_capacity(staged.len());
        for (file, dest) in staged {
            file.commit()?;
            written.push(dest);
        }
        Ok(written)
    }
}

/// Collects job `status`'s outputs for this party: the receipt is verified
/// ([`verify_receipt`]), then every output addressed to this party is fetched, checked
/// against the receipt's digest and decrypted, all before any is returned. A failed job is
/// its refusal ([`failure`]); one not yet final is `not_done`.
pub async fn results(
    identity: &Identity,
    storage: &Storage,
    manifest: &Manifest,
    status: &JobStatus,
    verifier: &Verifier,
    now: UnixTime,
) -> Result<Results, Error> {
    let signed = match (status.state, &status.receipt) {
        (JobState::Done, Some(r)) => r,
        (JobState::Failed, _) => return Err(failure(identity, Some(storage), status).await),
        (state, _) => {
            return Err(Error::InvalidArgument(format!(
                "job {} is {}, not done",
                status.id,
                state.name()
            )));
        }
    };
    verify_receipt(signed, manifest, &status.id, verifier, now)?;
    let mine: Vec<_> = signed
        .receipt
        .outputs
        .iter()
        .filter(|o| o.recipients.iter().any(|r| r == identity.name()))
        .collect();
    if mine.is_empty() {
        return Err(refused(
            "not_a_recipient",
            format!(
                "no output of job {} is addressed to {}",
                status.id,
                identity.name()
            ),
        ));
    }
    let mut outputs = Vec::with_capacity(mine.len());
    for out in mine {
        let name = Path::new(&out.path)
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".age"))
            .filter(|n| !n.is_empty())
            .ok_or_else(|| refused("receipt_output", format!("odd output path {:?}", out.path)))?
            .to_owned();
        let sealed = storage
            .get(&out.path)
            .await
            .map_err(|e| Error::Unreachable {
                url: out.path.clone(),
                reason: e.to_string(),
            })?;
        if digest(&sealed) != out.digest {
            return Err(refused(
                "output_digest",
                format!(
                    "{} in storage does not match the receipt ({})",
                    out.path, out.digest
                ),
            ));
        }
        let mut bytes = Zeroizing::new(Vec::new());
        coffer_crypto::delivery::decrypt_with(
            identity.age_identity(),
            sealed.as_ref(),
            &mut *bytes,
        )?;
        outputs.push(Output {
            name,
            rows: out.rows,
            bytes,
        });
    }
    Ok(Results {
        receipt: signed.receipt.clone(),
        outputs,
    })
}

/// [`results`] for job `id` as this home collects it: the status from `orchestrator`,
/// simulated workers trusted only from the sim root in `sim_root` (a file), else from the
/// brokers this home pinned ([`sim_roots`]).
pub async fn collect(
    home: &Home,
    identity: &Identity,
    orchestrator: &Orchestrator,
    storage: &Storage,
    manifest: &Manifest,
    id: &JobId,
    sim_root: Option<&Path>,
) -> Result<Results, Error> {
    let explicit = sim_root.map(crate::attest::read_sim_root).transpose()?;
    let verifier = sim_roots(home, explicit)
        .into_iter()
        .fold(Verifier::new(), Verifier::with_sim_root);
    let status = orchestrator.status(id).await?;
    results(identity, storage, manifest, &status, &verifier, unix_now()).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn results(names: &[&str]) -> Results {
        Results {
            receipt: serde_json::from_value(serde_json::json!({
                "job": "00".repeat(32),
                "manifest": format!("sha256:{}", "11".repeat(32)),
                "computation": "c",
                "party": "alpha",
                "inputs": {},
                "outputs": [],
                "backend": "sim",
                "simulated": true,
                "time": 0,
            }))
            .unwrap(),
            outputs: names
                .iter()
                .map(|n| Output {
                    name: (*n).to_owned(),
                    rows: 1,
                    bytes: Zeroizing::new(n.as_bytes().to_vec()),
                })
                .collect(),
        }
    }

    #[test]
    fn outputs_are_written_all_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let written = results(&["a.csv", "b.parquet"]).write_to(&out).unwrap();
        assert_eq!(written.len(), 2);
        assert_eq!(std::fs::read(out.join("b.parquet")).unwrap(), b"b.parquet");
        // The second cannot be staged (its directory is missing): the first is not left.
        let again = dir.path().join("again");
        let err = results(&["a.csv", "missing/b.csv"])
            .write_to(&again)
            .unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
        assert!(!again.join("a.csv").exists());
        assert_eq!(std::fs::read_dir(&again).unwrap().count(), 0);
    }

    #[test]
    fn signatures_sit_beside_the_manifest_unless_named() {
        assert_eq!(
            sigs_path(Path::new("d/m.yaml"), None),
            PathBuf::from("d/m.yaml.sigs")
        );
        assert_eq!(
            sigs_path(Path::new("d/m.yaml"), Some(Path::new("x.sigs"))),
            PathBuf::from("x.sigs")
        );
    }

    #[test]
    fn refusals_name_their_check_and_exit_as_refusals() {
        let e = refused("output_digest", "changed");
        assert_eq!(e.check(), "output_digest");
        assert!(e.is_refusal());
        assert_eq!(e.to_string(), "[output_digest] changed");
        let t = Error::Timeout {
            job: JobId([0; 32]),
            state: "queued".into(),
            secs: 1,
        };
        assert!(!t.is_refusal());
    }
}
