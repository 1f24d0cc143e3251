//! Talking to the services: a pinned broker, the orchestrator, the storage. Every call runs
//! on one shared Tokio runtime with the GIL released, and stops on Ctrl-C (the pending
//! `KeyboardInterrupt` is raised).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use coffer_client::broker::{AttestOptions, Broker};
use coffer_client::jobs::{self, JobOptions, ManifestFiles, Orchestrator};
use coffer_client::{Home, Identity};
use coffer_net::JobId;
use coffer_net::job::OutputFormat;
use coffer_net::orchestrator::JobState;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::fail::{Fail, Result};

fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Fail::usage("runtime", format!("starting the async runtime: {e}")))
}

/// Runs `future` with the GIL released; a signal (Ctrl-C) raised meanwhile cancels it.
pub(crate) fn run<T: Send>(
    py: Python<'_>,
    future: impl std::future::Future<Output = Result<T>> + Send,
) -> PyResult<T> {
    let rt = runtime()?;
    py.detach(|| {
        rt.block_on(async {
            let signals = async {
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if let Err(e) = Python::attach(|py| py.check_signals()) {
                        return e;
                    }
                }
            };
            tokio::select! {
                out = future => out.map_err(PyErr::from),
                e = signals => Err(e),
            }
        })
    })
}

fn json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Fail::usage("internal", e.to_string()))
}

fn job_id(id: &str) -> Result<JobId> {
    id.parse()
        .map_err(|_| Fail::usage("job_id", format!("{id:?} is not a job id (64 hex digits)")))
}

/// A broker as this party uses it: attested once and pinned, checked against the pin on
/// every call. Use `coffer.Broker` (from `party.broker(url)`) rather than this class.
#[pyclass(module = "coffer._coffer", name = "NativeBroker", frozen)]
#[derive(Debug)]
pub(crate) struct NativeBroker {
    home: Home,
    broker: Broker,
}

#[pymethods]
impl NativeBroker {
    #[new]
    fn new(home: PathBuf, url: &str) -> PyResult<Self> {
        let home = Home::new(home);
        let broker = Broker::new(&home, url).map_err(Fail::from)?;
        Ok(Self { home, broker })
    }

    /// The broker's URL.
    #[getter]
    fn url(&self) -> String {
        self.broker.url()
    }

    /// The pin as JSON, if this home attested the broker.
    fn pin_json(&self) -> PyResult<Option<String>> {
        let pin = self.broker.pin().map_err(Fail::from)?;
        Ok(pin.map(|p| json(&p)).transpose()?)
    }

    /// Appraises the broker (with `policy`, a YAML file; simulated evidence only if
    /// `allow_simulation`, from the sim platform key in `sim_root`, default the home's) and
    /// pins it. Returns the pin as JSON.
    #[pyo3(signature = (policy=None, allow_simulation=false, sim_root=None))]
    fn attest(
        &self,
        py: Python<'_>,
        policy: Option<PathBuf>,
        allow_simulation: bool,
        sim_root: Option<PathBuf>,
    ) -> PyResult<String> {
        let options = AttestOptions {
            policy: policy
                .as_deref()
                .map(coffer_client::attest::load_policy)
                .transpose()
                .map_err(Fail::from)?,
            allow_simulation,
            sim_root: coffer_client::attest::sim_root(&self.home, sim_root.as_deref())
                .map_err(Fail::from)?,
            verifier: None,
        };
        let broker = &self.broker;
        let pin = run(py, async { Ok(broker.attest(&options).await?) })?;
        Ok(json(&pin)?)
    }

    /// Submits the manifest at `manifest` with its signatures (`sigs`, default `FILE.sigs`);
    /// returns the broker's judgement as JSON.
    #[pyo3(signature = (manifest, sigs=None))]
    fn submit(&self, py: Python<'_>, manifest: PathBuf, sigs: Option<PathBuf>) -> PyResult<String> {
        let identity = Identity::load(&self.home).map_err(Fail::from)?;
        let broker = &self.broker;
        let status = run(py, async {
            Ok(broker.submit(&identity, &manifest, sigs.as_deref()).await?)
        })?;
        Ok(json(&status)?)
    }

    /// Grants keyring key `key` as `dataset`'s key under the manifest at `manifest`.
    #[pyo3(signature = (manifest, dataset, key, reuse_across_manifests=false))]
    fn grant(
        &self,
        py: Python<'_>,
        manifest: PathBuf,
        dataset: String,
        key: String,
        reuse_across_manifests: bool,
    ) -> PyResult<String> {
        let identity = Identity::load(&self.home).map_err(Fail::from)?;
        let (_, manifest) = coffer_client::manifests::load(&manifest).map_err(Fail::from)?;
        let key = crate::key_id(&key)?;
        let broker = &self.broker;
        let stored = run(py, async {
            Ok(broker
                .grant(&identity, &manifest, &dataset, &key, reuse_across_manifests)
                .await?)
        })?;
        Ok(json(&stored)?)
    }

    /// Revokes this party's grant for `dataset` under the manifest at `manifest`.
    fn revoke(&self, py: Python<'_>, manifest: PathBuf, dataset: String) -> PyResult<()> {
        let identity = Identity::load(&self.home).map_err(Fail::from)?;
        let (_, manifest) = coffer_client::manifests::load(&manifest).map_err(Fail::from)?;
        let broker = &self.broker;
        run(py, async {
            Ok(broker.revoke(&identity, &manifest.hash(), &dataset).await?)
        })
    }

    /// Retires the manifest at `manifest`.
    fn retire(&self, py: Python<'_>, manifest: PathBuf) -> PyResult<()> {
        let identity = Identity::load(&self.home).map_err(Fail::from)?;
        let (_, manifest) = coffer_client::manifests::load(&manifest).map_err(Fail::from)?;
        let broker = &self.broker;
        run(py, async {
            Ok(broker.retire(&identity, &manifest.hash()).await?)
        })
    }

    /// Fetches the audit log, verified against the pin (whose head then moves on); returns
    /// `{"entries": [...], "head": {...}, "releases": [...]}` as JSON.
    fn audit(&self, py: Python<'_>) -> PyResult<String> {
        let identity = Identity::load(&self.home).map_err(Fail::from)?;
        let broker = &self.broker;
        let log = run(py, async { Ok(broker.audit(&identity).await?) })?;
        Ok(json(&serde_json::json!({
            "entries": log.entries_json(),
            "head": log.head,
            "releases": log.releases(),
        }))?)
    }
}

/// An orchestrator as this party uses it. Use `coffer.Job` (from `party.submit`) rather than
/// this class.
#[pyclass(module = "coffer._coffer", name = "NativeOrchestrator", frozen)]
#[derive(Debug)]
pub(crate) struct NativeOrchestrator {
    home: Home,
    orchestrator: Orchestrator,
}

#[pymethods]
impl NativeOrchestrator {
    #[new]
    fn new(home: PathBuf, url: &str) -> PyResult<Self> {
        Ok(Self {
            home: Home::new(home),
            orchestrator: Orchestrator::new(url).map_err(Fail::from)?,
        })
    }

    /// Its URL.
    #[getter]
    fn url(&self) -> String {
        self.orchestrator.url().to_owned()
    }

    /// Signs a job for `computation` of the manifest at `manifest` (signatures in `sigs`,
    /// default `FILE.sigs`) with `params` (a JSON object) and submits it. Returns the job's
    /// status as JSON.
    #[pyo3(signature = (manifest, computation, params_json, format, sigs=None, predecessors=Vec::new()))]
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &self,
        py: Python<'_>,
        manifest: PathBuf,
        computation: String,
        params_json: &str,
        format: &str,
        sigs: Option<PathBuf>,
        predecessors: Vec<PathBuf>,
    ) -> PyResult<String> {
        let params: BTreeMap<String, serde_json::Value> = serde_json::from_str(params_json)
            .map_err(|e| Fail::usage("params", format!("params must be a JSON object: {e}")))?;
        let format = OutputFormat::parse(format).ok_or_else(|| {
            Fail::usage(
                "format",
                format!("format must be csv or parquet, not {format:?}"),
            )
        })?;
        let identity = Identity::load(&self.home).map_err(Fail::from)?;
        let files = ManifestFiles::load(&manifest, sigs.as_deref()).map_err(Fail::from)?;
        let predecessors = predecessors
            .iter()
            .map(|f| ManifestFiles::load(f, None).and_then(|m| m.link()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(Fail::from)?;
        let options = JobOptions {
            params,
            format,
            predecessors,
        };
        let request =
            jobs::sign_job(&identity, &files, &computation, options).map_err(Fail::from)?;
        let orchestrator = &self.orchestrator;
        let status = run(py, async { Ok(orchestrator.submit(&request).await?) })?;
        Ok(json(&status)?)
    }

    /// Job `id`'s status as JSON.
    fn status(&self, py: Python<'_>, id: &str) -> PyResult<String> {
        let id = job_id(id)?;
        let orchestrator = &self.orchestrator;
        let status = run(py, async { Ok(orchestrator.status(&id).await?) })?;
        Ok(json(&status)?)
    }

    /// Waits for job `id` to finish, calling `progress(status_json, seconds)` on every poll.
    /// Returns the final status as JSON when done; a failed job raises its refusal (with the
    /// worker's detail when `storage` holds one encrypted to this party).
    #[pyo3(signature = (id, timeout, progress=None, storage=None))]
    fn wait(
        &self,
        py: Python<'_>,
        id: &str,
        timeout: f64,
        progress: Option<Py<PyAny>>,
        storage: Option<String>,
    ) -> PyResult<String> {
        let id = job_id(id)?;
        if !(timeout.is_finite() && timeout >= 0.0) {
            return Err(Fail::usage("timeout", "timeout must be a number of seconds").into());
        }
        let storage = storage
            .as_deref()
            .map(jobs::storage)
            .transpose()
            .map_err(Fail::from)?;
        let identity = Identity::load(&self.home).map_err(Fail::from)?;
        let orchestrator = &self.orchestrator;
        // An exception in the callback (Ctrl-C while it runs, too) stops the wait and is
        // raised as it is.
        let callback_error: Mutex<Option<PyErr>> = Mutex::new(None);
        let stopped = AtomicBool::new(false);
        let outcome = run(py, async {
            let wait =
                orchestrator.wait(&id, Duration::from_secs_f64(timeout), |status, elapsed| {
                    let Some(cb) = &progress else { return };
                    let Ok(text) = serde_json::to_string(status) else {
                        return;
                    };
                    if let Err(e) =
                        Python::attach(|py| cb.call1(py, (text, elapsed.as_secs_f64())).map(drop))
                    {
                        if let Ok(mut slot) = callback_error.lock() {
                            slot.get_or_insert(e);
                        }
                        stopped.store(true, Ordering::Relaxed);
                    }
                });
            let stop = async {
                while !stopped.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            };
            let status = tokio::select! {
                status = wait => status?,
                () = stop => return Ok(None),
            };
            if status.state == JobState::Done {
                Ok(Some(status))
            } else {
                Err(jobs::failure(&identity, storage.as_ref(), &status)
                    .await
                    .into())
            }
        });
        if let Some(e) = callback_error.lock().ok().and_then(|mut s| s.take()) {
            return Err(e);
        }
        let status =
            outcome?.ok_or_else(|| Fail::usage("progress", "the progress callback failed"))?;
        Ok(json(&status)?)
    }

    /// Job `id`'s outputs for this party: the receipt and the worker's evidence verified
    /// against the manifest at `manifest`, every output's digest checked, then decrypted.
    /// Written into `dir` too (all or none) if given. Returns `(receipt_json, [(name, rows,
    /// bytes)])`.
    #[pyo3(signature = (id, manifest, storage, dir=None, sim_root=None))]
    #[allow(clippy::type_complexity)]
    fn results<'py>(
        &self,
        py: Python<'py>,
        id: &str,
        manifest: PathBuf,
        storage: &str,
        dir: Option<PathBuf>,
        sim_root: Option<PathBuf>,
    ) -> PyResult<(String, Vec<(String, u64, Bound<'py, PyBytes>)>)> {
        let id = job_id(id)?;
        let (_, manifest) = coffer_client::manifests::load(&manifest).map_err(Fail::from)?;
        let storage = jobs::storage(storage).map_err(Fail::from)?;
        let identity = Identity::load(&self.home).map_err(Fail::from)?;
        let orchestrator = &self.orchestrator;
        let home = &self.home;
        let results = run(py, async {
            let results = jobs::collect(
                home,
                &identity,
                orchestrator,
                &storage,
                &manifest,
                &id,
                sim_root.as_deref(),
            )
            .await?;
            if let Some(dir) = &dir {
                results.write_to(dir)?;
            }
            Ok(results)
        })?;
        let outputs = results
            .outputs
            .iter()
            .map(|o| (o.name.clone(), o.rows, PyBytes::new(py, &o.bytes)))
            .collect();
        Ok((json(&results.receipt)?, outputs))
    }
}

/// Puts the file at `path` into `storage` as `name`; returns its digest.
#[pyfunction]
pub(crate) fn upload(py: Python<'_>, path: PathBuf, storage: &str, name: &str) -> PyResult<String> {
    let storage = jobs::storage(storage).map_err(Fail::from)?;
    run(py, async { Ok(jobs::upload(&storage, &path, name).await?) })
}

/// Gets object `name` from `storage` into `path`; returns its digest.
#[pyfunction]
pub(crate) fn download(
    py: Python<'_>,
    name: &str,
    storage: &str,
    path: PathBuf,
) -> PyResult<String> {
    let storage = jobs::storage(storage).map_err(Fail::from)?;
    run(py, async {
        Ok(jobs::download(&storage, name, &path).await?)
    })
}
