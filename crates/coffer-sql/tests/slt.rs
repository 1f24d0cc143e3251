//! Runs `tests/slt/*.slt` through [`coffer_sql::run_constrained`] with the `sqllogictest` crate.
//!
//! Every file gets a fresh session holding these tables:
//!
//! - `alpha_patients (patient_id BIGINT, diagnosis VARCHAR, age BIGINT, region VARCHAR)`:
//!   encrypted Parquet written by `coffer-parquet` (footer key `alpha-footer`, `diagnosis`
//!   under `alpha-pii`), read through `register_encrypted_parquet`;
//! - `beta_visits (patient_id BIGINT, cost DOUBLE, visit_date DATE)`: encrypted Parquet under
//!   another party's key (`beta-footer`, uniform encryption);
//! - `beta_treatments (patient_id BIGINT, treatment VARCHAR, dose BIGINT)`: encrypted Parquet
//!   under beta's key, holding honest rows and the rows of a malicious beta that probes one of
//!   alpha's patients (see `attacks.slt`);
//! - `regions (region VARCHAR, country VARCHAR)`: in memory.
//!
//! Each statement's text may begin with directive comments, which the adapter reads (and
//! DataFusion ignores as comments):
//!
//! ```text
//! -- coffer: min_group_size 3          the computation's constraints
//! -- coffer: declare min_age int64     a declared parameter (type name, or a JSON declaration)
//! -- coffer: give min_age 50           a job's value for it (JSON)
//! -- coffer: privacy_unit T COLUMN     table T's contributors are its distinct COLUMN values
//! ```
//!
//! With `declare` or `give` present, the values go through `bind_template` first.
//! Run: `cargo test -p coffer-sql --test slt`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use coffer_crypto::{KeyId, KeySource, MemoryKeys, SecretKey};
use coffer_parquet::EncryptOptions;
use coffer_sql::{OutputConstraints, SqlError, bind_template, run_constrained};
use datafusion::arrow::array::{Date32Array, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

/// (patient_id, diagnosis, age, region)
const PATIENTS: [(i64, Option<&str>, i64, &str); 12] = [
    (1, Some("flu"), 34, "north"),
    (2, Some("flu"), 45, "north"),
    (3, Some("flu"), 52, "south"),
    (4, Some("flu"), 61, "south"),
    (5, Some("flu"), 29, "north"),
    (6, Some("asthma"), 40, "north"),
    (7, Some("asthma"), 66, "south"),
    (8, Some("asthma"), 71, "south"),
    (9, Some("gout"), 58, "north"),
    (10, Some("gout"), 63, "south"),
    (11, Some("rare"), 47, "north"),
    (12, None, 38, "south"),
];

/// (patient_id, cost, visit_date as days since 1970-01-01)
const VISITS: [(i64, f64, i32); 11] = [
    (1, 100.0, 19727),  // 2024-01-05
    (1, 50.0, 19763),   // 2024-02-10
    (2, 80.0, 19742),   // 2024-01-20
    (3, 120.0, 19783),  // 2024-03-01
    (4, 60.0, 19797),   // 2024-03-15
    (6, 200.0, 19729),  // 2024-01-07
    (7, 30.0, 19755),   // 2024-02-02
    (9, 75.0, 19773),   // 2024-02-20
    (11, 500.0, 19814), // 2024-04-01
    (12, 10.0, 19815),  // 2024-04-02
    (13, 999.0, 19816), // 2024-04-03
];

/// (patient_id, treatment, dose): honest rows, then beta's probe of patient 11 (alpha's only
/// `rare` patient): three rows that make a group of three joined rows on their own.
const TREATMENTS: [(i64, &str, i64); 12] = [
    (1, "rest", 1),
    (2, "rest", 1),
    (3, "rest", 2),
    (4, "tamiflu", 1),
    (4, "tamiflu", 2),
    (5, "tamiflu", 1),
    (5, "tamiflu", 2),
    (6, "inhaler", 1),
    (7, "inhaler", 1),
    (11, "probe_11", 1),
    (11, "probe_11", 2),
    (11, "probe_11", 3),
];

struct CofferDb {
    ctx: SessionContext,
    _dir: tempfile::TempDir,
}

fn key(name: &str) -> KeyId {
    KeyId::new(name).unwrap()
}

fn write_encrypted(path: &Path, batch: RecordBatch, keys: &dyn KeySource, opts: &EncryptOptions) {
    let file = std::fs::File::create(path).unwrap();
    coffer_parquet::encrypt_batches(batch.schema(), [Ok(batch)], file, keys, opts).unwrap();
}

fn patients() -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("patient_id", DataType::Int64, false),
        Field::new("diagnosis", DataType::Utf8, true),
        Field::new("age", DataType::Int64, false),
        Field::new("region", DataType::Utf8, false),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from_iter_values(PATIENTS.iter().map(|p| p.0))),
            Arc::new(StringArray::from_iter(PATIENTS.iter().map(|p| p.1))),
            Arc::new(Int64Array::from_iter_values(PATIENTS.iter().map(|p| p.2))),
            Arc::new(StringArray::from_iter_values(PATIENTS.iter().map(|p| p.3))),
        ],
    )
    .unwrap()
}

fn visits() -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("patient_id", DataType::Int64, false),
        Field::new("cost", DataType::Float64, false),
        Field::new("visit_date", DataType::Date32, false),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from_iter_values(VISITS.iter().map(|v| v.0))),
            Arc::new(Float64Array::from_iter_values(VISITS.iter().map(|v| v.1))),
            Arc::new(Date32Array::from_iter_values(VISITS.iter().map(|v| v.2))),
        ],
    )
    .unwrap()
}

fn treatments() -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("patient_id", DataType::Int64, false),
        Field::new("treatment", DataType::Utf8, false),
        Field::new("dose", DataType::Int64, false),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from_iter_values(TREATMENTS.iter().map(|t| t.0))),
            Arc::new(StringArray::from_iter_values(
                TREATMENTS.iter().map(|t| t.1),
            )),
            Arc::new(Int64Array::from_iter_values(TREATMENTS.iter().map(|t| t.2))),
        ],
    )
    .unwrap()
}

fn regions() -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("region", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, false),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from(vec!["north", "south"])),
            Arc::new(StringArray::from(vec!["Nordland", "Sudland"])),
        ],
    )
    .unwrap()
}

impl CofferDb {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = MemoryKeys::new()
            .with(key("alpha-footer"), SecretKey::generate(256).unwrap())
            .with(key("alpha-pii"), SecretKey::generate(128).unwrap())
            .with(key("beta-footer"), SecretKey::generate(256).unwrap());
        let alpha = dir.path().join("alpha_patients.parquet");
        let alpha_opts = EncryptOptions {
            column_keys: vec![(key("alpha-pii"), vec!["diagnosis".into()])],
            ..EncryptOptions::new(key("alpha-footer"))
        };
        write_encrypted(&alpha, patients(), &keys, &alpha_opts);
        let beta = dir.path().join("beta_visits.parquet");
        write_encrypted(
            &beta,
            visits(),
            &keys,
            &EncryptOptions::new(key("beta-footer")),
        );
        let treatments_path = dir.path().join("beta_treatments.parquet");
        write_encrypted(
            &treatments_path,
            treatments(),
            &keys,
            &EncryptOptions::new(key("beta-footer")),
        );

        let ctx = SessionContext::new();
        let keys: Arc<dyn KeySource> = Arc::new(keys);
        for (table, path) in [
            ("alpha_patients", &alpha),
            ("beta_visits", &beta),
            ("beta_treatments", &treatments_path),
        ] {
            coffer_sql::register_encrypted_parquet(
                &ctx,
                table,
                path.to_str().unwrap(),
                keys.clone(),
            )
            .await
            .unwrap();
        }
        let regions = regions();
        let memory = MemTable::try_new(regions.schema(), vec![vec![regions]]).unwrap();
        ctx.register_table("regions", Arc::new(memory)).unwrap();
        Self { ctx, _dir: dir }
    }
}

/// The directives at the head of `sql`.
#[derive(Default)]
struct Directives {
    constraints: OutputConstraints,
    declared: BTreeMap<String, serde_json::Value>,
    given: BTreeMap<String, serde_json::Value>,
}

fn directives(sql: &str) -> Directives {
    let mut d = Directives::default();
    for line in sql.lines() {
        let Some(rest) = line.trim().strip_prefix("-- coffer:") else {
            continue;
        };
        let mut words = rest.trim().splitn(3, ' ');
        let (verb, name, value) = (words.next(), words.next(), words.next());
        match (verb, name, value) {
            (Some("min_group_size"), Some(k), None) => {
                d.constraints = d.constraints.with_min_group_size(Some(k.parse().unwrap()));
            }
            (Some("privacy_unit"), Some(table), Some(column)) => {
                d.constraints = d.constraints.with_privacy_unit(table, column);
            }
            (Some("declare"), Some(name), Some(ty)) => {
                let declaration = if ty.starts_with('{') {
                    serde_json::from_str(ty).unwrap()
                } else {
                    serde_json::json!({ "type": ty })
                };
                d.declared.insert(name.into(), declaration);
            }
            (Some("give"), Some(name), Some(value)) => {
                d.given
                    .insert(name.into(), serde_json::from_str(value).unwrap());
            }
            _ => panic!("unknown directive: {line}"),
        }
    }
    d
}

fn column_type(t: &DataType) -> DefaultColumnType {
    if t.is_integer() {
        DefaultColumnType::Integer
    } else if t.is_floating() || matches!(t, DataType::Decimal128(..)) {
        DefaultColumnType::FloatingPoint
    } else {
        DefaultColumnType::Text
    }
}

fn format(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let columns: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            rows.push(columns.iter().map(|c| c.value(row).to_string()).collect());
        }
    }
    rows
}

#[async_trait]
impl AsyncDB for CofferDb {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlError> {
        let d = directives(sql);
        let params = if d.declared.is_empty() && d.given.is_empty() {
            Vec::new()
        } else {
            bind_template(sql, &d.declared, &d.given)?.params
        };
        let plan =
            coffer_sql::constraints::plan_constrained(&self.ctx, sql, &params, &d.constraints)
                .await?;
        let schema = plan.schema().as_arrow().clone();
        let batches = run_constrained(&self.ctx, sql, &params, &d.constraints).await?;
        if schema.fields().is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        Ok(DBOutput::Rows {
            types: schema
                .fields()
                .iter()
                .map(|f| column_type(f.data_type()))
                .collect(),
            rows: format(&batches),
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "coffer-sql"
    }
}

fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    files
}

#[tokio::main]
async fn main() {
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let mut failures = Vec::new();
    let files = slt_files();
    assert!(!files.is_empty(), "no .slt files");
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        let mut runner = sqllogictest::Runner::new(|| async { Ok(CofferDb::new().await) });
        runner.with_column_validator(sqllogictest::strict_column_validator);
        match runner.run_file_async(&file).await {
            Ok(()) => println!("ok   {name}"),
            Err(e) => {
                println!("FAIL {name}\n{e}");
                failures.push(name);
            }
        }
    }
    if !failures.is_empty() {
        eprintln!("failed: {failures:?}");
        std::process::exit(1);
    }
}
