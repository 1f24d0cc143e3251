//! Read cost of encryption: the same table read plain and encrypted, side by side.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::TimestampMicrosecondArray;
use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use coffer_crypto::{KeyId, KeySource, MemoryKeys, SecretKey};
use parquet::arrow::ArrowWriter;
use serde::Serialize;

use crate::decrypt::DecryptedReader;
use crate::encrypt::{EncryptOptions, encrypt_batches, write_error, writer_properties};
use crate::retriever::DecryptOptions;
use crate::{Error, Result};

/// Median read times of one table, plain and encrypted.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub rows: usize,
    /// Timed reads of each file (after one warm-up read each).
    pub runs: usize,
    pub plain_bytes: usize,
    pub encrypted_bytes: usize,
    /// Median time to read every row of the plaintext file.
    pub plain: Duration,
    /// Median time to read every row of the encrypted file, key unwrapping included.
    pub encrypted: Duration,
}

impl BenchResult {
    /// `encrypted / plain`.
    pub fn ratio(&self) -> f64 {
        self.encrypted.as_secs_f64() / self.plain.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

const BATCH: usize = 65_536;
const RUNS: usize = 7;

/// A table of `rows` rows: int64 id, float64, short strings, bool and a UTC timestamp, with
/// values from a fixed pseudo-random sequence so every run measures the same bytes.
fn table(rows: usize) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("value", DataType::Float64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]));
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 11
    };
    let mut batches = Vec::new();
    let mut start = 0usize;
    while start < rows {
        let n = BATCH.min(rows.saturating_sub(start));
        let ids: Vec<i64> = (start..start.saturating_add(n)).map(|i| i as i64).collect();
        let r: Vec<u64> = (0..n).map(|_| next()).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(Float64Array::from_iter(
                r.iter().map(|x| (x % 7 != 0).then_some(*x as f64 / 3.0)),
            )),
            Arc::new(StringArray::from_iter(
                r.iter().map(|x| Some(format!("name-{}", x % 10_000))),
            )),
            Arc::new(BooleanArray::from_iter(r.iter().map(|x| Some(x % 2 == 0)))),
            Arc::new(
                TimestampMicrosecondArray::from_iter(r.iter().map(|x| {
                    Some(1_700_000_000_000_000_i64.wrapping_add((x % 1_000_000_000_000) as i64))
                }))
                .with_timezone("UTC"),
            ),
        ];
        batches.push(
            RecordBatch::try_new(schema.clone(), columns)
                .map_err(|e| Error::Internal(e.to_string()))?,
        );
        start = start.saturating_add(n);
    }
    Ok((schema, batches))
}

fn read_all(file: &Bytes, keys: &Arc<dyn KeySource>) -> Result<(usize, Duration)> {
    let start = Instant::now();
    let reader = DecryptedReader::open(file.clone(), keys.clone(), &DecryptOptions::default())?;
    let mut rows = 0usize;
    for batch in reader {
        rows = rows.saturating_add(batch?.num_rows());
    }
    Ok((rows, start.elapsed()))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Writes a `rows`-row table plain and encrypted (uniform AES_GCM_V1, double-wrapped 128-bit
/// data key, encrypted footer, Snappy) in memory, then times full reads of each, alternating.
/// Build in release mode for meaningful numbers; `coffer bench crypto` calls this.
pub fn bench_read(rows: usize) -> Result<BenchResult> {
    let (schema, batches) = table(rows)?;
    let mut plain = Vec::new();
    let mut w = ArrowWriter::try_new(&mut plain, schema.clone(), Some(writer_properties(None)))
        .map_err(write_error)?;
    for b in &batches {
        w.write(b).map_err(write_error)?;
    }
    w.close().map_err(write_error)?;

    let id = KeyId::new("bench-master")?;
    let keys: Arc<dyn KeySource> =
        Arc::new(MemoryKeys::new().with(id.clone(), SecretKey::generate(256)?));
    let mut encrypted = Vec::new();
    let opts = EncryptOptions::new(id);
    encrypt_batches(
        schema,
        batches.into_iter().map(Ok),
        &mut encrypted,
        keys.as_ref(),
        &opts,
    )?;

    let (plain, encrypted) = (Bytes::from(plain), Bytes::from(encrypted));
    let (mut tp, mut te) = (Vec::new(), Vec::new());
    for run in 0..=RUNS {
        let (rp, dp) = read_all(&plain, &keys)?;
        let (re, de) = read_all(&encrypted, &keys)?;
        if rp != rows || re != rows {
            return Err(Error::Internal(format!(
                "read {rp} and {re} rows of {rows}"
            )));
        }
        if run > 0 {
            tp.push(dp);
            te.push(de);
        }
    }
    Ok(BenchResult {
        rows,
        runs: RUNS,
        plain_bytes: plain.len(),
        encrypted_bytes: encrypted.len(),
        plain: median(tp),
        encrypted: median(te),
    })
}
