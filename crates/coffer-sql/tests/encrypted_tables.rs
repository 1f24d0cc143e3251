//! SQL over files that `coffer-parquet` encrypted, through DataFusion.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::sync::Arc;

use coffer_crypto::{KeyId, KeySource, MemoryKeys, SecretKey};
use coffer_parquet::EncryptOptions;
use datafusion::arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;

fn write_table(dir: &std::path::Path, keys: &dyn KeySource, opts: &EncryptOptions) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("diagnosis", DataType::Utf8, true),
        Field::new("cost", DataType::Float64, true),
    ]));
    let n = 1000i64;
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..n)),
            Arc::new(StringArray::from_iter((0..n).map(diagnosis))),
            Arc::new(Float64Array::from_iter(
                (0..n).map(|i| Some(i as f64 * 0.5)),
            )),
        ],
    )
    .unwrap();
    let file = std::fs::File::create(dir.join("patients.parquet")).unwrap();
    coffer_parquet::encrypt_batches(schema, [Ok(batch)], file, keys, opts).unwrap();
}

fn diagnosis(i: i64) -> Option<&'static str> {
    (i % 7 != 0).then(|| ["flu", "grippe", "ß-thal"][(i % 3) as usize])
}

/// Rows of (diagnosis, n, c).
async fn query(ctx: &SessionContext, sql: &str) -> Vec<(Option<String>, i64, f64)> {
    let mut rows = Vec::new();
    for b in ctx.sql(sql).await.unwrap().collect().await.unwrap() {
        // DataFusion reads strings as Utf8View; compare as plain Utf8.
        let d = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8).unwrap();
        let d = d.as_any().downcast_ref::<StringArray>().unwrap();
        let n = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        let c = b.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
        for r in 0..b.num_rows() {
            rows.push((
                d.is_valid(r).then(|| d.value(r).to_owned()),
                n.value(r),
                c.value(r),
            ));
        }
    }
    rows
}

#[tokio::test]
async fn sql_reads_encrypted_parquet_with_per_column_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (footer, pii) = (KeyId::new("footer").unwrap(), KeyId::new("pii").unwrap());
    let keys = MemoryKeys::new()
        .with(footer.clone(), SecretKey::generate(256).unwrap())
        .with(pii.clone(), SecretKey::generate(128).unwrap());
    let opts = EncryptOptions {
        column_keys: vec![(pii, vec!["diagnosis".into()])],
        ..EncryptOptions::new(footer)
    };
    write_table(dir.path(), &keys, &opts);
    let ctx = SessionContext::new();
    let path = dir.path().join("patients.parquet");
    coffer_sql::register_encrypted_parquet(
        &ctx,
        "patients",
        path.to_str().unwrap(),
        Arc::new(keys),
    )
    .await
    .unwrap();
    let sql = "SELECT diagnosis, count(*) AS n, sum(cost) AS c FROM patients \
               GROUP BY diagnosis ORDER BY diagnosis NULLS FIRST";
    let got = query(&ctx, sql).await;
    // The same aggregate computed without the engine.
    let mut expect = std::collections::BTreeMap::<Option<&str>, (i64, f64)>::new();
    for i in 0..1000i64 {
        let e = expect.entry(diagnosis(i)).or_default();
        e.0 += 1;
        e.1 += i as f64 * 0.5;
    }
    let want: Vec<(Option<String>, i64, f64)> = expect
        .into_iter()
        .map(|(d, (n, c))| (d.map(str::to_owned), n, c))
        .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn a_missing_key_fails_the_query_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let footer = KeyId::new("footer-key-17").unwrap();
    let keys = MemoryKeys::new().with(footer.clone(), SecretKey::generate(256).unwrap());
    write_table(dir.path(), &keys, &EncryptOptions::new(footer));
    let ctx = SessionContext::new();
    let path = dir.path().join("patients.parquet");
    let empty: Arc<dyn KeySource> = Arc::new(MemoryKeys::new());
    let registered =
        coffer_sql::register_encrypted_parquet(&ctx, "patients", path.to_str().unwrap(), empty)
            .await;
    let err = match registered {
        Err(e) => e.to_string(),
        Ok(()) => match ctx.sql("SELECT count(*) FROM patients").await {
            Err(e) => e.to_string(),
            Ok(df) => df.collect().await.unwrap_err().to_string(),
        },
    };
    assert!(err.contains("footer-key-17"), "{err}");
}
