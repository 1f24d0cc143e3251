//! `gbdt_predict`: one input is a model (a sealed file, `coffer seal --name <dataset>`), the
//! other a table; the predictions go to the table's owner only, so the manifest must name
//! exactly that party as the computation's recipient.

use coffer_net::job::OutputFormat;

use super::session::quote;
use super::{Kind, Run, session};
use crate::context::{Input, JobContext};
use crate::refusal::{Check, Refusal};

pub(crate) struct GbdtPredict;

impl Kind for GbdtPredict {
    fn run<'a>(&'a self, job: &'a JobContext<'a>, inputs: Vec<Input>) -> Run<'a> {
        Box::pin(async move {
            let (mut models, mut tables): (Vec<_>, Vec<_>) = inputs
                .into_iter()
                .partition(|i| i.ciphertext.starts_with(&coffer_crypto::sealed::MAGIC));
            let (Some(model), Some(table), true) = (
                models.pop(),
                tables.pop(),
                models.is_empty() && tables.is_empty(),
            ) else {
                return Err(Check::InputFormat.because(
                    "gbdt_predict needs two inputs: one sealed model and one encrypted table",
                ));
            };
            let table_name = table.dataset.clone();
            let owner = job
                .manifest
                .dataset(&table_name)
                .map(|d| d.owner.clone())
                .unwrap_or_default();
            if job.comp.recipients != [owner.clone()] {
                return Err(Check::PredictRecipients.because(format!(
                    "predictions on {table_name} go to its owner {owner} only; the manifest names {:?}",
                    job.comp.recipients
                )));
            }
            // The model: unsealed with its dataset's key, bound to its dataset name.
            let booster =
                tokio::task::spawn_blocking(move || -> Result<coffer_gbdt::Booster, Refusal> {
                    let name = &model.dataset;
                    let bad = |e: String| Check::InputFormat.because(format!("model {name}: {e}"));
                    let header = coffer_crypto::sealed::read_header(model.ciphertext.as_ref())
                        .map_err(|e| bad(e.to_string()))?;
                    let ring = coffer_crypto::MemoryKeys::new()
                        .with(header.key_id().clone(), model.key.clone());
                    let mut plain = zeroize::Zeroizing::new(Vec::new());
                    coffer_crypto::sealed::unseal(
                        &ring,
                        name,
                        model.ciphertext.as_ref(),
                        &mut *plain,
                    )
                    .map_err(|e| bad(e.to_string()))?;
                    let text = std::str::from_utf8(&plain).map_err(|_| bad("not UTF-8".into()))?;
                    coffer_gbdt::Booster::from_json(text).map_err(|e| bad(e.to_string()))
                })
                .await??;

            let ctx = session(vec![table]).await?;
            let features = booster.feature_names().to_vec();
            if features.is_empty() {
                return Err(Check::InputFormat
                    .because("the model names no features; train it with named columns"));
            }
            let columns = features
                .iter()
                .map(|c| quote(c))
                .collect::<Vec<_>>()
                .join(", ");
            let reading = |e: datafusion::error::DataFusionError| {
                Check::InputFormat.because(format!("reading {table_name}: {e}"))
            };
            let batches = ctx
                .sql(&format!("SELECT {columns} FROM {}", quote(&table_name)))
                .await
                .map_err(reading)?
                .collect()
                .await
                .map_err(reading)?;
            let (csv, rows) =
                tokio::task::spawn_blocking(move || -> Result<(Vec<u8>, u64), Refusal> {
                    let bad = |e: String| Check::InputFormat.because(e);
                    let table = coffer_gbdt::Table::from_batches(&batches)
                        .map_err(|e| bad(e.to_string()))?;
                    let data = table
                        .matrix(None, Some(&features))
                        .map_err(|e| bad(e.to_string()))?;
                    let preds = booster.predict(&data).map_err(|e| bad(e.to_string()))?;
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
                .await??;
            Ok(vec![
                job.deliver("predictions.csv", OutputFormat::Csv, csv, rows)
                    .await?,
            ])
        })
    }
}
