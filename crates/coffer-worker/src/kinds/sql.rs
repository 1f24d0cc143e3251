//! `sql`: the manifest's query (or template, bound to the job's typed parameters) in
//! DataFusion over the encrypted inputs, with `min_group_size` applied to the plan
//! (`coffer_sql::constraints`), written as CSV or Parquet.

use std::sync::Arc;

use coffer_manifest::Computation;
use coffer_net::job::OutputFormat;
use coffer_sql::OutputConstraints;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

use super::{Kind, Run, session};
use crate::context::{Input, JobContext};
use crate::refusal::{Check, Refusal};

pub(crate) struct Sql;

impl Kind for Sql {
    fn admit(&self, _comp: &Computation, format: OutputFormat) -> Result<(), Refusal> {
        match format {
            OutputFormat::Csv | OutputFormat::Parquet => Ok(()),
            OutputFormat::Json => Err(Check::Format.because("SQL outputs are CSV or Parquet")),
        }
    }

    fn run<'a>(&'a self, job: &'a JobContext<'a>, inputs: Vec<Input>) -> Run<'a> {
        Box::pin(async move {
            let comp = job.comp;
            let sql = comp
                .query
                .as_deref()
                .ok_or_else(|| Check::BadTemplate.because("the computation has no query"))?;
            let bound = coffer_sql::bind_template(sql, &comp.params, &job.spec.params)?;
            let mut constraints =
                OutputConstraints::none().with_min_group_size(comp.constraints.min_group_size);
            for ds in job.manifest.input_datasets(comp) {
                if let Some(unit) = &ds.privacy_unit {
                    constraints = constraints.with_privacy_unit(&ds.name, unit);
                }
            }
            let ctx = session(inputs).await?;
            let plan = coffer_sql::constraints::plan_constrained(
                &ctx,
                &bound.sql,
                &bound.params,
                &constraints,
            )
            .await?;
            let frame = ctx.execute_logical_plan(plan).await?;
            let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
            let batches = frame.collect().await?;
            let rows = count_rows(&batches)?;
            let format = job.spec.format;
            let plain =
                tokio::task::spawn_blocking(move || encode(format, &schema, &batches)).await??;
            Ok(vec![
                job.deliver(format.extension(), format, plain, rows).await?,
            ])
        })
    }
}

fn count_rows(batches: &[RecordBatch]) -> Result<u64, Refusal> {
    batches
        .iter()
        .try_fold(0u64, |n, b| {
            n.checked_add(u64::try_from(b.num_rows()).ok()?)
        })
        .ok_or_else(|| Check::Internal.because("row count overflow"))
}

/// CSV with a header, or Parquet (zstd pages).
fn encode(
    format: OutputFormat,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<Vec<u8>, Refusal> {
    let mut buf = Vec::new();
    match format {
        OutputFormat::Csv => {
            let csv = |e: arrow::error::ArrowError| Check::Internal.because(format!("CSV: {e}"));
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut buf);
            if batches.is_empty() {
                writer
                    .write(&RecordBatch::new_empty(Arc::clone(schema)))
                    .map_err(csv)?;
            }
            for b in batches {
                writer.write(b).map_err(csv)?;
            }
        }
        OutputFormat::Json => {
            return Err(Check::Format.because("SQL outputs are CSV or Parquet"));
        }
        OutputFormat::Parquet => {
            let pq =
                |e: parquet::errors::ParquetError| Check::Internal.because(format!("Parquet: {e}"));
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                .build();
            let mut writer =
                parquet::arrow::ArrowWriter::try_new(&mut buf, Arc::clone(schema), Some(props))
                    .map_err(pq)?;
            for b in batches {
                writer.write(b).map_err(pq)?;
            }
            writer.close().map_err(pq)?;
        }
    }
    Ok(buf)
}
