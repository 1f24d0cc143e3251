//! `gbdt_train`: trains a gradient-boosted tree model on one or more parties' tables, stacked
//! row-wise in the manifest's order, with the label column and training parameters the
//! manifest fixes.
//!
//! The computation's `params` hold `label` (the label column), optionally `features` (the
//! feature columns, in order; default: every other column, which must all be numeric), and
//! XGBoost's training parameters (`objective`, `eta`, `max_depth`, `num_boost_round`, …).
//! `min_group_size: k` is a row floor: no leaf of any tree covers fewer than `k` training
//! rows, and a training set smaller than `k` is refused (`group_too_small`).
//! Two outputs go to the computation's recipients: the model (XGBoost JSON) and the
//! per-round training metrics (CSV).

use coffer_gbdt::{Params, RoundLog, Table};
use coffer_net::job::OutputFormat;

use super::session::quote;
use super::{Kind, Run, session};
use crate::context::{Input, JobContext};
use crate::refusal::{Check, Refusal};

pub(crate) struct GbdtTrain;

fn bad_params(detail: impl Into<String>) -> Refusal {
    Check::BadParams.because(detail)
}

impl Kind for GbdtTrain {
    fn run<'a>(&'a self, job: &'a JobContext<'a>, inputs: Vec<Input>) -> Run<'a> {
        Box::pin(async move {
            let comp = job.comp;
            let mut params = comp.params.clone();
            let label = match params.remove("label") {
                Some(serde_json::Value::String(l)) => l,
                _ => {
                    return Err(bad_params(
                        "gbdt_train needs params.label, the label column",
                    ));
                }
            };
            let features: Option<Vec<String>> =
                match params.remove("features") {
                    None => None,
                    Some(v) => Some(serde_json::from_value(v).map_err(|_| {
                        bad_params("params.features must be a list of column names")
                    })?),
                };
            let map: serde_json::Map<String, serde_json::Value> = params.into_iter().collect();
            let mut train_params = Params::from_map(&map).map_err(|e| bad_params(e.to_string()))?;
            train_params.min_leaf_rows = comp.constraints.min_group_size.unwrap_or(0);

            // Only the columns the model uses are read, so text columns may sit beside them.
            let columns = match &features {
                Some(f) => f
                    .iter()
                    .chain(std::iter::once(&label))
                    .map(|c| quote(c))
                    .collect::<Vec<_>>()
                    .join(", "),
                None => "*".to_owned(),
            };
            let names: Vec<String> = inputs.iter().map(|i| i.dataset.clone()).collect();
            let ctx = session(inputs).await?;
            let mut table = Table::default();
            for name in &names {
                let batches = ctx
                    .sql(&format!("SELECT {columns} FROM {}", quote(name)))
                    .await
                    .map_err(|e| bad_params(format!("reading {name}: {e}")))?
                    .collect()
                    .await
                    .map_err(|e| Check::InputFormat.because(format!("reading {name}: {e}")))?;
                let part = Table::from_batches(&batches)
                    .map_err(|e| Check::InputFormat.because(format!("input {name}: {e}")))?;
                table
                    .stack(part)
                    .map_err(|e| Check::SchemaMismatch.because(e.to_string()))?;
            }
            let rows =
                u64::try_from(table.n_rows()).map_err(|_| Check::Internal.because("row count"))?;

            let (model, metrics) = tokio::task::spawn_blocking(move || -> Result<_, Refusal> {
                let data = table
                    .matrix(Some(&label), features.as_deref())
                    .map_err(|e| bad_params(e.to_string()))?;
                drop(table);
                let mut history: Vec<RoundLog> = Vec::new();
                let booster = coffer_gbdt::train_with_callback(
                    &train_params,
                    &data,
                    &[("train", &data)],
                    &mut |log| history.push(log.clone()),
                )
                .map_err(|e| match e {
                    coffer_gbdt::GbdtError::GroupTooSmall { .. } => {
                        Check::GroupTooSmall.because(e.to_string())
                    }
                    _ => bad_params(format!("training: {e}")),
                })?;
                let model = booster
                    .to_json()
                    .map_err(|e| Check::Internal.because(format!("model: {e}")))?;
                Ok((model.into_bytes(), metrics_csv(&history)))
            })
            .await??;
            let rounds = u64::try_from(
                metrics
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count()
                    .saturating_sub(1),
            )
            .unwrap_or(0);
            Ok(vec![
                job.deliver("model.json", OutputFormat::Json, model, rows)
                    .await?,
                job.deliver("metrics.csv", OutputFormat::Csv, metrics, rounds)
                    .await?,
            ])
        })
    }
}

/// `round,<set-metric>,…` with one line per round.
fn metrics_csv(history: &[RoundLog]) -> Vec<u8> {
    let mut out = String::from("round");
    if let Some(first) = history.first() {
        for (name, _) in &first.scores {
            out.push(',');
            out.push_str(name);
        }
    }
    out.push('\n');
    for log in history {
        out.push_str(&log.iteration.to_string());
        for (_, v) in &log.scores {
            out.push(',');
            out.push_str(&format!("{v}"));
        }
        out.push('\n');
    }
    out.into_bytes()
}
