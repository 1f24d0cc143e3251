//! Coffer to Coffer: inputs (CSV, schema files, plaintext Parquet), options, outputs, inspection
//! and the reader API.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use std::fs::File;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, StructArray,
};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use bytes::Bytes;
use coffer_crypto::KeyId;
use coffer_parquet::key_material::KeyMetadata;
use coffer_parquet::{
    ColumnProtection, DecryptOptions, DecryptedReader, EncryptOptions, Error, FileFormat, KeyRef,
    KeyResolver, OutputFormat, decrypt, encrypt_batches, inspect, open_reader, read_csv,
    read_parquet,
};
use common::{MemKeys, Rng, encrypt, read_all};
use parquet::arrow::ProjectionMask;
use parquet::file::column_crypto_metadata::ColumnCryptoMetaData;

fn id(s: &str) -> KeyId {
    KeyId::new(s).unwrap()
}

fn keys() -> MemKeys {
    MemKeys::default()
        .with_random("mf", 256)
        .with_random("ma", 128)
        .with_random("mb", 256)
}

fn per_column(a: &[&str], b: &[&str]) -> EncryptOptions {
    let mut o = EncryptOptions::new(id("mf"));
    let cols = |c: &[&str]| c.iter().map(|s| (*s).to_owned()).collect();
    o.column_keys = vec![(id("ma"), cols(a)), (id("mb"), cols(b))];
    o
}

fn sample(rng: &mut Rng, rows: usize) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Int64, false),
        Field::new("b", DataType::Utf8, true),
        Field::new("c", DataType::Int32, true),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            (0..rows).map(|_| rng.next_u64() as i64),
        )),
        Arc::new(StringArray::from_iter(
            (0..rows).map(|i| (i % 3 != 0).then(|| format!("ü{i}"))),
        )),
        Arc::new(Int32Array::from_iter(
            (0..rows).map(|_| (!rng.chance(4)).then(|| rng.next_u64() as i32)),
        )),
    ];
    RecordBatch::try_new(schema, cols).unwrap()
}

#[test]
fn every_option_combination_round_trips() {
    let mut rng = Rng::new("every_option_combination_round_trips");
    let keys = keys();
    for n in 0..16u8 {
        let mut opts = if n & 1 == 0 {
            EncryptOptions::new(id("mf"))
        } else {
            per_column(&["a"], &["b"])
        };
        opts.double_wrapping = n & 2 != 0;
        opts.plaintext_footer = n & 4 != 0;
        opts.data_key_bits = if n & 8 != 0 { 256 } else { 128 };
        let rows = 1 + rng.below(3000) as usize;
        let batch = sample(&mut rng, rows);
        let file = encrypt(&batch, &keys, &opts);
        assert_eq!(read_all(file.clone(), &keys).unwrap(), batch, "{opts:?}");

        let i = inspect(&file, None, &DecryptOptions::default()).unwrap();
        let format = if opts.plaintext_footer {
            FileFormat::PlaintextFooter
        } else {
            FileFormat::EncryptedFooter
        };
        assert_eq!(i.format, format);
        assert_eq!(
            i.footer_key,
            Some(KeyRef::MasterKey {
                master_key_id: "mf".into(),
                double_wrapping: opts.double_wrapping
            })
        );
        assert_eq!(i.double_wrapping, Some(opts.double_wrapping));
    }
}

#[test]
fn csv_with_an_inferred_schema_round_trips_to_the_same_csv() {
    let dir = tempfile::tempdir().unwrap();
    let csv =
        "id,name,score,ok\n1,Zoë,1.5,true\n2,\"a, \"\"quoted\"\" 中文\",-0.25,false\n3,,2.0,\n";
    let path = dir.path().join("in.csv");
    std::fs::write(&path, csv).unwrap();
    let (schema, reader) = read_csv(&path, None).unwrap();
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);
    assert_eq!(schema.field(2).data_type(), &DataType::Float64);
    let keys = keys();
    let mut out = Vec::new();
    let summary = encrypt_batches(
        schema,
        reader,
        &mut out,
        &keys,
        &per_column(&["name"], &["score"]),
    )
    .unwrap();
    assert_eq!(summary.rows, 3);
    assert_eq!(summary.plaintext_columns, ["id", "ok"]);
    assert_eq!(summary.bytes as usize, out.len());

    let mut back = Vec::new();
    let s = decrypt(
        Bytes::from(out),
        &mut back,
        OutputFormat::Csv,
        keys.arc(),
        &Default::default(),
    )
    .unwrap();
    assert_eq!((s.rows, s.columns), (3, 4));
    assert_eq!(String::from_utf8(back).unwrap(), csv);
}

#[test]
fn a_schema_file_types_the_csv() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("in.csv");
    std::fs::write(&csv, "id,at\n7,2024-05-01T10:00:00Z\n8,\n").unwrap();
    let schema_path = dir.path().join("schema.json");
    std::fs::write(
        &schema_path,
        r#"{"fields":[{"name":"id","type":"int32","nullable":false},
                      {"name":"at","type":"timestamp_ms","timezone":"UTC"}]}"#,
    )
    .unwrap();
    let schema = coffer_parquet::load_schema_file(&schema_path).unwrap();
    let (schema, reader) = read_csv(&csv, Some(schema)).unwrap();
    let keys = keys();
    let mut out = Vec::new();
    encrypt_batches(
        schema,
        reader,
        &mut out,
        &keys,
        &EncryptOptions::new(id("mf")),
    )
    .unwrap();
    let batch = read_all(Bytes::from(out), &keys).unwrap();
    assert_eq!(batch.schema().field(0).data_type(), &DataType::Int32);
    assert_eq!(
        batch.schema().field(1).data_type(),
        &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
    );
    assert_eq!(batch.column(1).null_count(), 1);

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"fields":[{"name":"id","type":"int128"}]}"#).unwrap();
    let err = coffer_parquet::load_schema_file(&bad).unwrap_err();
    assert!(
        matches!(err, Error::SchemaFile(ref m) if m.contains("bad.json") && m.contains("int128")),
        "{err}"
    );
}

#[test]
fn plaintext_parquet_in_and_out() {
    let mut rng = Rng::new("plaintext_parquet_in_and_out");
    let batch = sample(&mut rng, 500);
    let mut plain = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut plain, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();

    let (schema, reader) = read_parquet(Bytes::from(plain.clone())).unwrap();
    let keys = keys();
    let mut enc = Vec::new();
    encrypt_batches(
        schema,
        reader,
        &mut enc,
        &keys,
        &EncryptOptions::new(id("mf")),
    )
    .unwrap();
    let mut out = Vec::new();
    decrypt(
        Bytes::from(enc),
        &mut out,
        OutputFormat::Parquet,
        keys.arc(),
        &Default::default(),
    )
    .unwrap();

    // The output is plain Parquet again: readable with no keys at all.
    let i = inspect(&Bytes::from(out.clone()), None, &Default::default()).unwrap();
    assert_eq!(i.format, FileFormat::Plain);
    assert_eq!(i.num_rows, Some(500));
    assert_eq!(
        read_all(Bytes::from(out), &MemKeys::default()).unwrap(),
        batch
    );
    assert!(matches!(
        read_parquet(Bytes::from_static(b"PAR1 nope")),
        Err(Error::InvalidInput(_))
    ));
}

#[test]
fn nested_columns_encrypt_by_top_level_name() {
    let fields = Fields::from(vec![
        Field::new("x", DataType::Int64, true),
        Field::new("y", DataType::Utf8, true),
    ]);
    let s = StructArray::new(
        fields.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec!["p", "q"])),
        ],
        None,
    );
    let schema = Arc::new(Schema::new(vec![
        Field::new("s", DataType::Struct(fields), true),
        Field::new("t", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(s), Arc::new(Int64Array::from(vec![3, 4]))],
    )
    .unwrap();
    let keys = keys();
    let file = encrypt(&batch, &keys, &per_column(&["s"], &["t"]));
    assert_eq!(read_all(file.clone(), &keys).unwrap(), batch);
    let i = inspect(&file, Some(keys.arc()), &Default::default()).unwrap();
    let paths: Vec<_> = i.columns.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["s.x", "s.y", "t"]);
    let leaf = &i.columns[1];
    assert_eq!(
        leaf.protection,
        Some(ColumnProtection::ColumnKey {
            key: KeyRef::MasterKey {
                master_key_id: "ma".into(),
                double_wrapping: true
            }
        })
    );
}

#[test]
fn caller_mistakes_are_named() {
    let mut rng = Rng::new("caller_mistakes_are_named");
    let batch = sample(&mut rng, 3);
    let keys = keys();
    let run = |opts: &EncryptOptions, keys: &MemKeys| {
        encrypt_batches(batch.schema(), [Ok(batch.clone())], Vec::new(), keys, opts).unwrap_err()
    };
    match run(&per_column(&["a", "nope"], &[]), &keys) {
        Error::UnknownColumn { column } => assert_eq!(column, "nope"),
        e => panic!("{e}"),
    }
    match run(&EncryptOptions::new(id("absent")), &keys) {
        Error::KeyNotFound { id } => assert_eq!(id, "absent"),
        e => panic!("{e}"),
    }
    match run(&per_column(&["a"], &["b"]), &keys.clone().without("mb")) {
        Error::KeyNotFound { id } => assert_eq!(id, "mb"),
        e => panic!("{e}"),
    }
    let mut o = EncryptOptions::new(id("mf"));
    o.data_key_bits = 192;
    assert!(matches!(run(&o, &keys), Error::Unsupported(ref m) if m.contains("192")));
    assert!(matches!(
        run(&per_column(&["a"], &["a"]), &keys),
        Error::ApiMisuse(_)
    ));
}

#[test]
fn data_keys_are_fresh_per_file_and_column() {
    let mut rng = Rng::new("data_keys_are_fresh_per_file_and_column");
    let batch = sample(&mut rng, 10);
    let keys = keys();
    let opts = per_column(&["a", "c"], &[]);
    let deks = |file: Bytes| {
        let builder = open_reader(file, keys.arc(), &Default::default()).unwrap();
        let resolver = KeyResolver::new(keys.arc());
        builder.metadata().row_groups()[0]
            .columns()
            .iter()
            .filter_map(|c| match c.crypto_metadata() {
                Some(ColumnCryptoMetaData::ENCRYPTION_WITH_COLUMN_KEY(k)) => {
                    let md = k.key_metadata.clone().unwrap();
                    assert!(matches!(
                        KeyMetadata::parse(&md).unwrap(),
                        KeyMetadata::Material(_)
                    ));
                    Some(resolver.resolve(&md).unwrap())
                }
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let first = deks(encrypt(&batch, &keys, &opts));
    let second = deks(encrypt(&batch, &keys, &opts));
    assert_eq!(first.len(), 2);
    assert_ne!(first[0], first[1]);
    assert_ne!(first[0], second[0]);
    assert_ne!(first[1], second[1]);
}

#[test]
fn open_reader_projects_around_missing_column_keys() {
    let mut rng = Rng::new("open_reader_projects_around_missing_column_keys");
    let batch = sample(&mut rng, 100);
    let keys = keys();
    let file = encrypt(&batch, &keys, &per_column(&["a"], &["b"]));
    let partial = keys.clone().without("mb");

    // Reading everything needs mb, and says so.
    match read_all(file.clone(), &partial).unwrap_err() {
        Error::KeyNotFound { id } => assert_eq!(id, "mb"),
        e => panic!("{e}"),
    }
    // Inspection reads the footer and says which key it lacked.
    let i = inspect(&file, Some(partial.arc()), &Default::default()).unwrap();
    assert_eq!(i.num_rows, Some(100));
    assert!(
        i.notes.iter().any(|n| n.contains("key not found: mb")),
        "{i}"
    );
    // Columns a (ma) and c (plaintext) read without it.
    let builder = open_reader(file, partial.arc(), &Default::default()).unwrap();
    let mask = ProjectionMask::leaves(builder.parquet_schema(), [0, 2]);
    let got: Vec<RecordBatch> = builder
        .with_projection(mask)
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect();
    let got = concat_batches(&got[0].schema(), &got).unwrap();
    assert_eq!(got.column(0), batch.column(0));
    assert_eq!(got.column(1), batch.column(2));
}

#[test]
fn not_parquet_is_reported_as_such() {
    let junk = Bytes::from_static(b"id,name\n1,x\n2,y\n");
    let i = inspect(&junk, None, &Default::default()).unwrap();
    assert_eq!(i.format, FileFormat::NotParquet);
    assert!(i.to_string().contains("not Parquet"));
    let json = serde_json::to_value(&i).unwrap();
    assert_eq!(json["format"], "not_parquet");
    let err = read_all(junk, &keys()).unwrap_err();
    assert!(matches!(err, Error::NotParquet { .. }), "{err}");
}

#[test]
fn inspection_serialises_for_the_cli() {
    let mut rng = Rng::new("inspection_serialises_for_the_cli");
    let keys = keys();
    let mut opts = per_column(&["a"], &[]);
    opts.plaintext_footer = true;
    opts.double_wrapping = false;
    let file = encrypt(&sample(&mut rng, 5), &keys, &opts);
    let i = inspect(&file, Some(keys.arc()), &Default::default()).unwrap();
    let json = serde_json::to_value(&i).unwrap();
    assert_eq!(json["format"], "plaintext_footer");
    assert_eq!(json["algorithm"], "AES_GCM_V1");
    assert_eq!(json["key_ids"], serde_json::json!(["ma", "mf"]));
    assert_eq!(json["double_wrapping"], false);
    assert_eq!(json["num_rows"], 5);
    assert_eq!(
        json["columns"][0]["protection"]["key"]["master_key_id"],
        "ma"
    );
    assert_eq!(json["columns"][1]["protection"]["kind"], "plaintext");
    assert!(i.notes.is_empty(), "{:?}", i.notes);
    let text = i.to_string();
    assert!(
        text.contains("a: encrypted with master key ma (single wrapping)"),
        "{text}"
    );
    assert!(text.contains("b: plaintext"), "{text}");
}

#[test]
fn bench_read_measures_both_files() {
    let r = coffer_parquet::bench_read(20_000).unwrap();
    assert_eq!(r.rows, 20_000);
    assert!(r.encrypted_bytes > r.plain_bytes, "{r:?}");
    assert!(
        r.plain.as_nanos() > 0 && r.encrypted.as_nanos() > 0,
        "{r:?}"
    );
    assert!(r.ratio().is_finite());
}

#[test]
fn decrypting_from_a_file_on_disk() {
    let mut rng = Rng::new("decrypting_from_a_file_on_disk");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet.enc");
    let batch = sample(&mut rng, 50);
    let keys = keys();
    encrypt_batches(
        batch.schema(),
        [Ok(batch.clone())],
        File::create(&path).unwrap(),
        &keys,
        &EncryptOptions::new(id("mf")),
    )
    .unwrap();
    let r =
        DecryptedReader::open(File::open(&path).unwrap(), keys.arc(), &Default::default()).unwrap();
    assert_eq!(r.metadata().file_metadata().num_rows(), 50);
    let got: Vec<_> = r.collect::<Result<_, _>>().unwrap();
    assert_eq!(concat_batches(&batch.schema(), &got).unwrap(), batch);
}
