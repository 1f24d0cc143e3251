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
    let mut train_params = Params::from_map(&map).map_err(|e| bad_params(e.to_string()))?;
    // min_group_size: no leaf of any tree covers fewer training rows.
    train_params.min_leaf_rows = comp.constraints.min_group_size.unwrap_or(0);

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
        .map_err(|e| match e {
            coffer_gbdt::GbdtError::GroupTooSmall { .. } => {
                refused("group_too_small", e.to_string())
            }
            _ => bad_params(format!("training: {e}")),
        })?;
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

/// `gbdt_predict`: one input is a model (a sealed file, `coffer seal --name <dataset>`), the
/// other a table; the predictions go to the table's owner only, so the manifest must name
/// exactly that party as the computation's recipient.
pub(crate) async fn predict(
    w: &Worker,
    manifest: &Manifest,
    comp: &Computation,
    job: &str,
    inputs: Vec<(String, bytes::Bytes)>,
    keys: std::collections::BTreeMap<String, coffer_crypto::SecretKey>,
) -> Result<Vec<OutputRef>, ApiError> {
    let (models, tables): (Vec<_>, Vec<_>) = inputs
        .into_iter()
        .partition(|(_, b)| b.starts_with(&coffer_crypto::sealed::MAGIC));
    let ([(model_name, sealed)], [(table_name, _)]) = (models.as_slice(), tables.as_slice()) else {
        return Err(refused(
            "input_format",
            "gbdt_predict needs two inputs: one sealed model and one encrypted table",
        ));
    };
    let owner = manifest
        .dataset(table_name)
        .map(|d| d.owner.clone())
        .unwrap_or_default();
    if comp.recipients != [owner.clone()] {
        return Err(refused(
            "predict_recipients",
            format!(
                "predictions on {table_name} go to its owner {owner} only; the manifest names {:?}",
                comp.recipients
            ),
        ));
    }
    // The model: unsealed with its dataset's key, bound to its dataset name.
    let model_key = keys
        .get(model_name)
        .cloned()
        .ok_or_else(|| internal(format!("the broker released no key for {model_name}")))?;
    let (model_name, sealed) = (model_name.clone(), sealed.clone());
    let booster = tokio::task::spawn_blocking(move || -> Result<coffer_gbdt::Booster, ApiError> {
        let header = coffer_crypto::sealed::read_header(sealed.as_ref())
            .map_err(|e| refused("input_format", format!("model {model_name}: {e}")))?;
        let ring = coffer_crypto::MemoryKeys::new().with(header.key_id().clone(), model_key);
        let mut plain = zeroize::Zeroizing::new(Vec::new());
        coffer_crypto::sealed::unseal(&ring, &model_name, sealed.as_ref(), &mut *plain)
            .map_err(|e| refused("input_format", format!("model {model_name}: {e}")))?;
        let text = std::str::from_utf8(&plain)
            .map_err(|_| refused("input_format", format!("model {model_name}: not UTF-8")))?;
        coffer_gbdt::Booster::from_json(text)
            .map_err(|e| refused("input_format", format!("model {model_name}: {e}")))
    })
    .await
    .map_err(|e| internal(e.to_string()))??;

    let table_name = table_name.clone();
    let mut table_keys = keys;
    table_keys.retain(|k, _| *k == table_name);
    let table_input: Vec<(String, bytes::Bytes)> = tables;
    let ctx = crate::job::session(table_input, table_keys).await?;
    let features = booster.feature_names().to_vec();
    if features.is_empty() {
        return Err(refused(
            "input_format",
            "the model names no features; train it with named columns",
        ));
    }
    let columns = features
        .iter()
        .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(", ");
    let batches = ctx
        .sql(&format!("SELECT {columns} FROM \"{table_name}\""))
        .await
        .map_err(|e| refused("input_format", format!("reading {table_name}: {e}")))?
        .collect()
        .await
        .map_err(|e| refused("input_format", format!("reading {table_name}: {e}")))?;
    let (csv, rows) = tokio::task::spawn_blocking(move || -> Result<(Vec<u8>, u64), ApiError> {
        let table =
            Table::from_batches(&batches).map_err(|e| refused("input_format", e.to_string()))?;
        let data = table
            .matrix(None, Some(&features))
            .map_err(|e| refused("input_format", e.to_string()))?;
        let preds = booster
            .predict(&data)
            .map_err(|e| refused("input_format", e.to_string()))?;
        let groups = booster.n_groups().max(1);
        let mut out = if groups == 1 {
            String::from("prediction\n")
        } else {
            let cols: Vec<String> = (0..groups).map(|g| format!("class_{g}")).collect();
            format!("{}\n", cols.join(","))
        };
        for row in preds.chunks(groups) {
            let cells: Vec<String> = row.iter().map(|v| v.to_string()).collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
        let rows = u64::try_from(table.n_rows()).unwrap_or(u64::MAX);
        Ok((out.into_bytes(), rows))
    })
    .await
    .map_err(|e| internal(e.to_string()))??;
    Ok(vec![
        deliver(
            w,
            manifest,
            comp,
            job,
            &format!("{}.predictions.csv", comp.name),
            OutputFormat::Csv,
            csv,
            rows,
        )
        .await?,
    ])
}
