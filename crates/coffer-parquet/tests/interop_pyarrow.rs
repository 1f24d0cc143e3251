//! Interop with the real peer: PyArrow's `CryptoFactory` with a local-wrap `KmsClient`
//! (`tests/py/pme_peer.py`), in both directions, over random data and random keys.
//!
//! Needs `COFFER_PYTHON`: a Python with `pyarrow` and `cryptography` (`./.ci/run` sets it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
#[path = "py/peer.rs"]
mod py_peer;

use std::fs::File;

use std::path::Path;

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use coffer_crypto::KeyId;
use coffer_parquet::{
    ColumnProtection, DecryptOptions, DecryptedReader, EncryptOptions, Error, FileFormat, inspect,
};
use common::{MemKeys, Rng};
use py_peer::peer;
use serde_json::{Value, json};

/// Random rows; floats compare by bit pattern (see [`Data::diff`]).
#[derive(Debug)]
struct Data {
    i64: Vec<Option<i64>>,
    i32: Vec<Option<i32>>,
    f64: Vec<Option<f64>>,
    f32: Vec<Option<f32>>,
    s: Vec<Option<String>>,
    b: Vec<Option<bool>>,
    ts: Vec<Option<i64>>,
}

impl Data {
    /// The first difference, if any: column, row, and both values.
    fn diff(&self, o: &Self) -> Option<String> {
        fn first<T: std::fmt::Debug>(
            name: &str,
            a: &[T],
            b: &[T],
            eq: impl Fn(&T, &T) -> bool,
        ) -> Option<String> {
            if a.len() != b.len() {
                return Some(format!("{name}: {} rows vs {}", a.len(), b.len()));
            }
            let i = (0..a.len()).find(|&i| !eq(&a[i], &b[i]))?;
            Some(format!("{name}[{i}]: {:?} vs {:?}", a[i], b[i]))
        }
        let f64_eq = |a: &Option<f64>, b: &Option<f64>| a.map(f64::to_bits) == b.map(f64::to_bits);
        let f32_eq = |a: &Option<f32>, b: &Option<f32>| a.map(f32::to_bits) == b.map(f32::to_bits);
        first("i64", &self.i64, &o.i64, PartialEq::eq)
            .or_else(|| first("i32", &self.i32, &o.i32, PartialEq::eq))
            .or_else(|| first("f64", &self.f64, &o.f64, f64_eq))
            .or_else(|| first("f32", &self.f32, &o.f32, f32_eq))
            .or_else(|| first("s", &self.s, &o.s, PartialEq::eq))
            .or_else(|| first("b", &self.b, &o.b, PartialEq::eq))
            .or_else(|| first("ts", &self.ts, &o.ts, PartialEq::eq))
    }
}

const PIECES: &[&str] = &[
    "a", "Z", "0", " ", ",", "\"", "\n", "é", "ß", "ü", "Ω", "中文", "日本", "😀", "🔐",
    "\u{200b}", "ñ",
];

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("i64", DataType::Int64, true),
        Field::new("i32", DataType::Int32, true),
        Field::new("f64", DataType::Float64, true),
        Field::new("f32", DataType::Float32, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("b", DataType::Boolean, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]))
}

impl Data {
    fn random(rng: &mut Rng) -> Self {
        let rows = 1 + rng.below(700) as usize;
        let mut d = Data {
            i64: vec![],
            i32: vec![],
            f64: vec![],
            f32: vec![],
            s: vec![],
            b: vec![],
            ts: vec![],
        };
        for _ in 0..rows {
            let null = |rng: &mut Rng| rng.chance(6);
            let v = rng.next_u64();
            d.i64.push((!null(rng)).then_some(v as i64));
            d.i32.push((!null(rng)).then_some(rng.next_u64() as i32));
            let f = f64::from_bits(rng.next_u64());
            d.f64.push((!null(rng) && f.is_finite()).then_some(f));
            let f = f32::from_bits(rng.next_u64() as u32);
            d.f32.push((!null(rng) && f.is_finite()).then_some(f));
            let s: String = (0..rng.below(12))
                .map(|_| PIECES[rng.below(PIECES.len() as u64) as usize])
                .collect();
            d.s.push((!null(rng)).then_some(s));
            d.b.push((!null(rng)).then_some(rng.chance(2)));
            let ts = rng.below(8_000_000_000_000_000) as i64 - 2_000_000_000_000_000;
            d.ts.push((!null(rng)).then_some(ts));
        }
        d
    }

    fn json(&self) -> Value {
        let f64_bits: Vec<_> = self.f64.iter().map(|x| x.map(f64::to_bits)).collect();
        let f32_bits: Vec<_> = self.f32.iter().map(|x| x.map(f32::to_bits)).collect();
        json!({"i64": self.i64, "i32": self.i32, "f64": f64_bits, "f32": f32_bits,
               "s": self.s, "b": self.b, "ts": self.ts})
    }

    fn from_json(v: &Value) -> Self {
        let col = |name: &str| v[name].as_array().unwrap().clone();
        let map =
            |name: &str, f: &dyn Fn(&Value) -> Value| col(name).iter().map(f).collect::<Vec<_>>();
        let id = |x: &Value| x.clone();
        Data {
            i64: serde_json::from_value(Value::Array(map("i64", &id))).unwrap(),
            i32: serde_json::from_value(Value::Array(map("i32", &id))).unwrap(),
            f64: col("f64")
                .iter()
                .map(|x| x.as_u64().map(f64::from_bits))
                .collect(),
            f32: col("f32")
                .iter()
                .map(|x| x.as_u64().map(|b| f32::from_bits(b as u32)))
                .collect(),
            s: serde_json::from_value(Value::Array(map("s", &id))).unwrap(),
            b: serde_json::from_value(Value::Array(map("b", &id))).unwrap(),
            ts: serde_json::from_value(Value::Array(map("ts", &id))).unwrap(),
        }
    }

    fn batch(&self) -> RecordBatch {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(self.i64.clone())),
            Arc::new(Int32Array::from(self.i32.clone())),
            Arc::new(Float64Array::from(self.f64.clone())),
            Arc::new(Float32Array::from(self.f32.clone())),
            Arc::new(StringArray::from(self.s.clone())),
            Arc::new(BooleanArray::from(self.b.clone())),
            Arc::new(TimestampMicrosecondArray::from(self.ts.clone()).with_timezone("UTC")),
        ];
        RecordBatch::try_new(schema(), cols).unwrap()
    }

    fn from_batch(b: &RecordBatch) -> Self {
        fn col<T: Clone + 'static>(b: &RecordBatch, name: &str) -> T {
            b.column_by_name(name)
                .unwrap()
                .as_any()
                .downcast_ref::<T>()
                .unwrap()
                .clone()
        }
        Data {
            i64: col::<Int64Array>(b, "i64").iter().collect(),
            i32: col::<Int32Array>(b, "i32").iter().collect(),
            f64: col::<Float64Array>(b, "f64").iter().collect(),
            f32: col::<Float32Array>(b, "f32").iter().collect(),
            s: col::<StringArray>(b, "s")
                .iter()
                .map(|s| s.map(str::to_owned))
                .collect(),
            b: col::<BooleanArray>(b, "b").iter().collect(),
            ts: col::<TimestampMicrosecondArray>(b, "ts").iter().collect(),
        }
    }
}

/// One configuration of the matrix.
#[derive(Debug, Clone, Copy)]
struct Case {
    double_wrapping: bool,
    plaintext_footer: bool,
    uniform: bool,
    data_key_bits: usize,
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for n in 0..8u8 {
        v.push(Case {
            double_wrapping: n & 1 != 0,
            plaintext_footer: n & 2 != 0,
            uniform: n & 4 != 0,
            data_key_bits: if n % 3 == 0 { 256 } else { 128 },
        });
    }
    v
}

const COLUMN_KEYS: &[(&str, &[&str])] =
    &[("mk-col-a", &["i64", "s"]), ("mk-col-b", &["f64", "ts"])];

fn random_keys() -> MemKeys {
    MemKeys::default()
        .with_random("mk-footer", 128)
        .with_random("mk-col-a", 256)
        .with_random("mk-col-b", 192)
}

fn key_json(keys: &MemKeys) -> Value {
    let m: serde_json::Map<String, Value> = keys
        .0
        .iter()
        .map(|(id, k)| (id.to_string(), Value::String(k.to_hex().to_string())))
        .collect();
    Value::Object(m)
}

fn pyarrow_write(path: &Path, keys: &MemKeys, data: &Data, case: Case) {
    let column_keys: serde_json::Map<String, Value> = COLUMN_KEYS
        .iter()
        .map(|(k, cols)| ((*k).to_owned(), json!(cols)))
        .collect();
    peer(&json!({
        "mode": "write", "path": path, "keys": key_json(keys), "footer_key": "mk-footer",
        "column_keys": column_keys, "uniform": case.uniform,
        "double_wrapping": case.double_wrapping, "plaintext_footer": case.plaintext_footer,
        "data_key_bits": case.data_key_bits, "columns": data.json(),
    }));
}

fn coffer_read(path: &Path, keys: &MemKeys) -> Result<(SchemaRef, Data), Error> {
    let reader = DecryptedReader::open(File::open(path).unwrap(), keys.arc(), &Default::default())?;
    let schema = reader.schema().clone();
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    let all = concat_batches(&schema, &batches).unwrap();
    Ok((schema, Data::from_batch(&all)))
}

#[test]
fn pyarrow_writes_coffer_reads() {
    let mut rng = Rng::new("pyarrow_writes_coffer_reads");
    let dir = tempfile::tempdir().unwrap();
    for (n, case) in cases().into_iter().enumerate() {
        let keys = random_keys();
        let data = Data::random(&mut rng);
        let path = dir.path().join(format!("py{n}.parquet"));
        pyarrow_write(&path, &keys, &data, case);

        let (schema, got) = coffer_read(&path, &keys).unwrap_or_else(|e| panic!("{case:?}: {e}"));
        let types: Vec<_> = schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let want: Vec<_> = self::schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(types, want, "{case:?}");
        assert_eq!(got.diff(&data), None, "{case:?}: rows differ");

        // What PyArrow wrote is the key material we expect, readable without keys.
        let i = inspect(
            &File::open(&path).unwrap(),
            None,
            &DecryptOptions::default(),
        )
        .unwrap();
        // CryptoFactory ignores plaintext_footer under uniform encryption (crypto_factory.cc).
        let format = if case.plaintext_footer && !case.uniform {
            FileFormat::PlaintextFooter
        } else {
            FileFormat::EncryptedFooter
        };
        assert_eq!(i.format, format, "{case:?}");
        assert_eq!(
            i.double_wrapping,
            Some(case.double_wrapping),
            "{case:?}: {i}"
        );
        if format == FileFormat::PlaintextFooter {
            let ids: &[&str] = if case.uniform {
                &["mk-footer"]
            } else {
                &["mk-col-a", "mk-col-b", "mk-footer"]
            };
            assert_eq!(i.key_ids, ids, "{case:?}");
            let i32_col = i.columns.iter().find(|c| c.path == "i32").unwrap();
            let want = if case.uniform {
                ColumnProtection::FooterKey
            } else {
                ColumnProtection::Plaintext
            };
            assert_eq!(i32_col.protection, Some(want), "{case:?}");
        }
    }
}

#[test]
fn coffer_writes_pyarrow_reads() {
    let mut rng = Rng::new("coffer_writes_pyarrow_reads");
    let dir = tempfile::tempdir().unwrap();
    for (n, case) in cases().into_iter().enumerate() {
        let keys = random_keys();
        let data = Data::random(&mut rng);
        let path = dir.path().join(format!("rs{n}.parquet"));
        let column_keys = if case.uniform {
            vec![]
        } else {
            COLUMN_KEYS
                .iter()
                .map(|(k, cols)| {
                    (
                        KeyId::new(*k).unwrap(),
                        cols.iter().map(|c| (*c).to_owned()).collect(),
                    )
                })
                .collect()
        };
        let opts = EncryptOptions {
            footer_key: KeyId::new("mk-footer").unwrap(),
            column_keys,
            double_wrapping: case.double_wrapping,
            plaintext_footer: case.plaintext_footer,
            data_key_bits: case.data_key_bits,
        };
        let out = File::create(&path).unwrap();
        let summary =
            coffer_parquet::encrypt_batches(schema(), [Ok(data.batch())], out, &keys, &opts)
                .unwrap();
        assert_eq!(summary.rows as usize, data.i64.len());

        let got = peer(&json!({"mode": "read", "path": path, "keys": key_json(&keys)}));
        assert_eq!(
            got["schema"],
            json!({"i64": "int64", "i32": "int32", "f64": "double", "f32": "float",
                   "s": "string", "b": "bool", "ts": "timestamp[us, tz=UTC]"}),
            "{case:?}"
        );
        assert_eq!(
            Data::from_json(&got["columns"]).diff(&data),
            None,
            "{case:?}: rows differ"
        );
    }
}

#[test]
fn pyarrow_192_bit_data_keys_are_refused_clearly() {
    let mut rng = Rng::new("pyarrow_192_bit_data_keys_are_refused_clearly");
    let dir = tempfile::tempdir().unwrap();
    let keys = random_keys();
    let path = dir.path().join("k192.parquet");
    let case = Case {
        double_wrapping: true,
        plaintext_footer: false,
        uniform: true,
        data_key_bits: 192,
    };
    pyarrow_write(&path, &keys, &Data::random(&mut rng), case);
    let err = coffer_read(&path, &keys).unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err}");
    assert!(err.to_string().contains("192-bit"), "{err}");
}

#[test]
fn pyarrow_files_with_the_wrong_master_key_fail_naming_it() {
    let mut rng = Rng::new("pyarrow_files_with_the_wrong_master_key_fail_naming_it");
    let dir = tempfile::tempdir().unwrap();
    let keys = random_keys();
    for double_wrapping in [false, true] {
        let path = dir.path().join(format!("wrong{double_wrapping}.parquet"));
        let case = Case {
            double_wrapping,
            plaintext_footer: false,
            uniform: false,
            data_key_bits: 128,
        };
        pyarrow_write(&path, &keys, &Data::random(&mut rng), case);
        let wrong = keys.clone().with_random("mk-col-b", 192);
        let err = coffer_read(&path, &wrong).unwrap_err();
        match &err {
            Error::KeyUnwrap { master_key_id } => assert_eq!(master_key_id, "mk-col-b"),
            other => panic!("{other}"),
        }
        let err = coffer_read(&path, &keys.clone().without("mk-footer")).unwrap_err();
        assert!(
            matches!(&err, Error::KeyNotFound { id } if id == "mk-footer"),
            "{err}"
        );
    }
}
