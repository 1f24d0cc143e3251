//! `gbdt_train` jobs: train a gradient-boosted tree model on one or more parties' tables,
//! stacked row-wise, with the label column and the training parameters the manifest fixes.
//!
//! The computation's `params` hold `label` (the label column), optionally `features` (the
//! feature columns, in order; default: every other column, which must all be numeric), and
//! XGBoost's training parameters (`objective`, `eta`, `max_depth`, `num_boost_round`, …).
//! Two outputs go to the computation's recipients only, not to every party: the model
//! (XGBoost JSON) and the per-round training metrics (CSV).

use coffer_gbdt::{Params, RoundLog, Table};
use coffer_manifest::{Computation, Manifest};
use coffer_net::ApiError;
use coffer_net::job::{OutputFormat, OutputRef};
use datafusion::prelude::SessionContext;

use crate::job::{deliver, internal, refused};
use crate::service::Worker;

fn bad_params(message: impl Into<String>) -> ApiError {
    refused("bad_params", message)
}

/// Trains on the inputs `names` (registered in `ctx`) and delivers the model and metrics.
pub(crate) async fn train(
    w: &Worker,
    manifest: &Manifest,
    comp: &Computation,
    job: &str,
    ctx: &SessionContext,
    names: &[String],
) -> Result<Vec<OutputRef>, ApiError> {
    let mut params = comp.params.clone();
    let label = match params.remove("label") {
        Some(serde_json::Value::String(l)) => l,
        _ => {
            return Err(bad_params(
                "gbdt_train needs params.label, the label column",
            ));
        }
    };
    let features: Option<Vec<String>> = match params.remove("features") {
        None => None,
        Some(v) => Some(
            serde_json::from_value(v)
                .map_err(|_| bad_params("params.features must be a list of column names"))?,
        ),
    };
    let map: serde_json::Map<String, serde_json::Value> = params.into_iter().collect();
    let train_params = Params::from_map(&map).map_err(|e| bad_params(e.to_string()))?;

    // The inputs, decrypted in this session, stacked in the manifest's order.
    // Only the columns the model uses are read, so text columns may sit beside them.
    let columns = match &features {
        Some(f) => f
            .iter()
            .chain(std::iter::once(&label))
            .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(", "),
        None => "*".to_owned(),
    };
    let mut table = Table::default();
    for name in names {
        let batches = ctx
            .sql(&format!("SELECT {columns} FROM \"{name}\""))
            .await
            .map_err(|e| bad_params(format!("reading {name}: {e}")))?
            .collect()
            .await
            .map_err(|e| refused("input_format", format!("reading {name}: {e}")))?;
        let part = Table::from_batches(&batches)
            .map_err(|e| refused("input_format", format!("input {name}: {e}")))?;
        table
            .stack(part)
            .map_err(|e| refused("schema_mismatch", e.to_string()))?;
    }
    let rows = u64::try_from(table.n_rows()).map_err(|_| internal("row count"))?;

    let (model, metrics) = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
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
        .map_err(|e| bad_params(format!("training: {e}")))?;
        let model = booster
            .to_json()
            .map_err(|e| internal(format!("model: {e}")))?;
        Ok((model.into_bytes(), metrics_csv(&history)))
    })
    .await
    .map_err(|e| internal(e.to_string()))??;
    let rounds = u64::try_from(
        metrics
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            .saturating_sub(1),
    )
    .unwrap_or(0);
    Ok(vec![
        deliver(
            w,
            manifest,
            comp,
            job,
            &format!("{}.model.json", comp.name),
            OutputFormat::Json,
            model,
            rows,
        )
        .await?,
        deliver(
            w,
            manifest,
            comp,
            job,
            &format!("{}.metrics.csv", comp.name),
            OutputFormat::Csv,
            metrics,
            rounds,
        )
        .await?,
    ])
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
