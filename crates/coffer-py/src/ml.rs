//! `coffer.gbdt` and `coffer.attest`: gradient-boosted trees (XGBoost JSON models) on a
//! party's own tables, and evidence verification, through `coffer-client`.

use std::path::PathBuf;
use std::sync::Arc;

use coffer_client::attest::{Appraiser, TrustFiles};
use coffer_client::gbdt::{self, TableSource};
use coffer_client::{AtomicFile, Home, Keyring};
use coffer_crypto::{KeySource, MemoryKeys};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::fail::{Fail, Result};

/// A table for the trainer: plaintext Parquet bytes, or a path (CSV, or Parquet decrypted
/// with the keyring of the party whose home is given).
#[derive(Debug, FromPyObject)]
pub(crate) enum Source {
    #[pyo3(transparent, annotation = "bytes")]
    Bytes(Vec<u8>),
    #[pyo3(transparent, annotation = "Path")]
    Path(PathBuf),
}

fn keys(home: Option<PathBuf>) -> Result<Arc<dyn KeySource>> {
    Ok(match home {
        Some(h) => Arc::new(Keyring::open(&Home::new(h))?),
        None => Arc::new(MemoryKeys::new()),
    })
}

fn read(source: &Source, keys: &Arc<dyn KeySource>) -> Result<coffer_gbdt::Table> {
    Ok(match source {
        Source::Bytes(b) => gbdt::read_table(TableSource::Parquet(b), keys)?,
        Source::Path(p) => gbdt::read_table(TableSource::Path(p), keys)?,
    })
}

/// A gradient-boosted tree model. Use `coffer.gbdt.Booster` rather than this class.
#[pyclass(module = "coffer._coffer", name = "NativeBooster", frozen)]
#[derive(Debug)]
pub(crate) struct NativeBooster {
    model: coffer_gbdt::Booster,
}

#[pymethods]
impl NativeBooster {
    /// Trains on `data` (label column `label`) with XGBoost parameters `params_json`,
    /// evaluating on `valid` every round; `progress(round, [(name, value)])` sees each round.
    #[staticmethod]
    #[pyo3(signature = (params_json, data, label, valid=None, home=None, progress=None))]
    fn train(
        py: Python<'_>,
        params_json: &str,
        data: Source,
        label: String,
        valid: Option<Source>,
        home: Option<PathBuf>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let params = gbdt::params(params_json).map_err(Fail::from)?;
        let keys = keys(home)?;
        let model = py.detach(move || -> Result<coffer_gbdt::Booster> {
            let table = read(&data, &keys)?;
            let valid = valid.as_ref().map(|v| read(v, &keys)).transpose()?;
            let mut on_round = |log: &coffer_gbdt::RoundLog| {
                if let Some(cb) = &progress {
                    let scores: Vec<(String, f64)> =
                        log.scores.iter().map(|(n, v)| (n.clone(), *v)).collect();
                    // A failing callback does not stop training; Python reports it.
                    Python::attach(|py| {
                        if let Err(e) = cb.call1(py, (log.iteration, scores)) {
                            e.write_unraisable(py, None);
                        }
                    });
                }
            };
            Ok(gbdt::train(
                &params,
                &table,
                &label,
                valid.as_ref(),
                &mut on_round,
            )?)
        })?;
        Ok(Self { model })
    }

    /// A model from XGBoost JSON text.
    #[staticmethod]
    fn from_json(text: &str) -> PyResult<Self> {
        Ok(Self {
            model: gbdt::load_model(text).map_err(Fail::from)?,
        })
    }

    /// The model as XGBoost JSON text.
    fn to_json(&self) -> PyResult<String> {
        Ok(gbdt::model_json(&self.model).map_err(Fail::from)?)
    }

    /// Writes the model (XGBoost JSON) to `path`, whole or not at all.
    fn save(&self, path: PathBuf) -> PyResult<()> {
        let text = gbdt::model_json(&self.model).map_err(Fail::from)?;
        let write = || -> std::result::Result<(), coffer_client::Error> {
            let mut out = AtomicFile::create(&path)?;
            std::io::Write::write_all(out.file(), text.as_bytes()).map_err(|source| {
                coffer_client::Error::Io {
                    path: path.clone(),
                    source,
                }
            })?;
            out.commit()
        };
        Ok(write().map_err(Fail::from)?)
    }

    /// Predictions for every row of `data`: little-endian `f32` bytes, `n_groups` per row.
    #[pyo3(signature = (data, home=None))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        data: Source,
        home: Option<PathBuf>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let keys = keys(home)?;
        let model = &self.model;
        let preds = py.detach(move || -> Result<Vec<f32>> {
            Ok(gbdt::predict(model, &read(&data, &keys)?)?)
        })?;
        let bytes: Vec<u8> = preds.iter().flat_map(|p| p.to_le_bytes()).collect();
        Ok(PyBytes::new(py, &bytes))
    }

    /// Outputs per row (classes for multi-class models, else 1).
    #[getter]
    fn n_groups(&self) -> usize {
        self.model.n_groups().max(1)
    }

    /// Boosting rounds in the model.
    #[getter]
    fn num_boosted_rounds(&self) -> usize {
        self.model.num_boosted_rounds()
    }

    /// The round early stopping kept, if it stopped early.
    #[getter]
    fn best_iteration(&self) -> Option<usize> {
        self.model.best_iteration()
    }

    /// Feature names, in column order.
    #[getter]
    fn feature_names(&self) -> Vec<String> {
        self.model.feature_names().to_vec()
    }
}

/// Verifies `tee` evidence (raw, hex or base64 bytes; SEV-SNP `certs`) and appraises it with
/// the policy file, at time `at` (Unix seconds, default now), with DCAP `collateral` and the
/// sim platform key in `sim_root` (default the home's). Returns the appraisal as JSON; it
/// raises the refusal unless everything passed.
#[pyfunction]
#[pyo3(signature = (home, tee, evidence, certs=Vec::new(), at=None, collateral=None, sim_root=None, policy=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn attest_verify(
    py: Python<'_>,
    home: Option<PathBuf>,
    tee: &str,
    evidence: Vec<u8>,
    certs: Vec<Vec<u8>>,
    at: Option<i64>,
    collateral: Option<PathBuf>,
    sim_root: Option<PathBuf>,
    policy: Option<PathBuf>,
) -> PyResult<(String, Option<(String, String)>)> {
    let tee: coffer_attest::TeeKind = tee.parse().map_err(|e: String| Fail::usage("tee", e))?;
    let home = home.map_or_else(|| Home::new(""), Home::new);
    let files = TrustFiles {
        policy,
        at,
        collateral,
        sim_root,
    };
    let appraiser = Appraiser::load(&home, &files).map_err(Fail::from)?;
    let report = py.detach(move || appraiser.evidence(tee, &evidence, certs));
    let text =
        serde_json::to_string(&report).map_err(|e| Fail::usage("internal", e.to_string()))?;
    let refusal = report
        .refusal()
        .map(|e| (e.check().to_owned(), e.to_string()));
    Ok((text, refusal))
}
