//! Modified, truncated and wrongly-keyed files: every change is detected (or touches bytes no
//! reader uses), with a typed error and without a panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
use coffer_crypto::KeyId;
use coffer_parquet::{EncryptOptions, Error};
use common::{MemKeys, Rng};

fn keys() -> MemKeys {
    MemKeys::default()
        .with_random("mf", 256)
        .with_random("ma", 128)
        .with_random("mb", 192)
}

fn batch(rng: &mut Rng, rows: usize) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("x", DataType::Float64, true),
        Field::new("name", DataType::Utf8, true),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            (0..rows).map(|_| rng.next_u64() as i64),
        )),
        Arc::new(Float64Array::from_iter(
            (0..rows).map(|_| (!rng.chance(5)).then(|| rng.next_u64() as f64 / 7.0)),
        )),
        Arc::new(StringArray::from_iter((0..rows).map(|_| {
            (!rng.chance(5)).then(|| format!("näme-{}", rng.below(1000)))
        }))),
    ];
    RecordBatch::try_new(schema, cols).unwrap()
}

fn options(per_column: bool, plaintext_footer: bool) -> EncryptOptions {
    let mut o = EncryptOptions::new(KeyId::new("mf").unwrap());
    o.plaintext_footer = plaintext_footer;
    if per_column {
        o.column_keys = vec![
            (KeyId::new("ma").unwrap(), vec!["id".into()]),
            (KeyId::new("mb").unwrap(), vec!["x".into()]),
        ];
    }
    o
}

fn encrypt(batch: &RecordBatch, keys: &MemKeys, opts: &EncryptOptions) -> Vec<u8> {
    common::encrypt(batch, keys, opts).to_vec()
}

fn read(file: Vec<u8>, keys: &MemKeys) -> Result<RecordBatch, Error> {
    common::read_all(Bytes::from(file), keys)
}

fn kind(e: &Error) -> &'static str {
    match e {
        Error::FooterDecryption { .. } => "footer",
        Error::ColumnDecryption { .. } => "column",
        Error::KeyUnwrap { .. } => "unwrap",
        Error::WrappedKey { .. } => "wrapped key",
        Error::KeyMaterial { .. } => "key material",
        Error::KeyNotFound { .. } => "key not found",
        Error::NotParquet { .. } => "not parquet",
        Error::UnsupportedAlgorithm { .. } => "algorithm",
        Error::Unsupported(_) => "unsupported",
        Error::Corrupt(m) if m.contains("rejected malformed input") => "contained panic",
        Error::Corrupt(_) => "corrupt",
        _ => "other",
    }
}

/// Flips one bit in every byte of files of each layout. Each read must fail with a typed
/// error, or return exactly the original values of every encrypted column. (Columns left in
/// plaintext are not authenticated by Parquet Modular Encryption, so their values may change.)
#[test]
fn every_flipped_byte_is_detected_or_harmless() {
    let mut rng = Rng::new("every_flipped_byte_is_detected_or_harmless");
    let keys = keys();
    let original = batch(&mut rng, 40);
    for (per_column, plaintext_footer) in [(false, false), (true, false), (true, true)] {
        let file = encrypt(&original, &keys, &options(per_column, plaintext_footer));
        let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
        for i in 0..file.len() {
            let mut t = file.clone();
            t[i] ^= 1 << rng.below(8);
            match read(t, &keys) {
                Ok(rows) => {
                    let encrypted: &[usize] = if per_column { &[0, 1] } else { &[0, 1, 2] };
                    for &c in encrypted {
                        assert_eq!(rows.column(c), original.column(c), "byte {i}, column {c}");
                    }
                    *tally.entry("unchanged").or_default() += 1;
                }
                Err(e) => {
                    let k = kind(&e);
                    assert_ne!(k, "other", "byte {i}: {e}");
                    *tally.entry(k).or_default() += 1;
                }
            }
        }
        eprintln!("per_column={per_column} plaintext_footer={plaintext_footer}: {tally:?}");
        // Fully encrypted files authenticate every byte a decoder parses; only plaintext
        // column pages can reach parquet's decoders corrupted (and there make them panic).
        if !per_column {
            assert!(!tally.contains_key("contained panic"), "{tally:?}");
        }
        // Unchanged reads come from bytes a full read never consults: the page indexes, and
        // the length prefixes of page modules (pages are sized by their authenticated headers).
        let unchanged = tally.get("unchanged").copied().unwrap_or(0);
        assert!(
            unchanged * 4 < file.len(),
            "{unchanged} of {} bytes unchecked",
            file.len()
        );
    }
}

#[test]
fn every_truncation_is_detected() {
    let mut rng = Rng::new("every_truncation_is_detected");
    let keys = keys();
    let file = encrypt(&batch(&mut rng, 40), &keys, &options(true, false));
    for n in 0..file.len() {
        let err = read(file[..n].to_vec(), &keys).unwrap_err();
        assert!(
            matches!(err, Error::NotParquet { .. } | Error::Corrupt(_)),
            "{n}: {err}"
        );
    }
}

#[test]
fn a_flipped_footer_byte_fails_the_footer() {
    let mut rng = Rng::new("a_flipped_footer_byte_fails_the_footer");
    let keys = keys();
    for plaintext_footer in [false, true] {
        let mut file = encrypt(
            &batch(&mut rng, 40),
            &keys,
            &options(true, plaintext_footer),
        );
        // 8 bytes of length and magic end the file; the footer's tag and nonce precede them.
        let at = file.len() - 8 - 20;
        file[at] ^= 0x10;
        let err = read(file, &keys).unwrap_err();
        assert!(
            matches!(err, Error::FooterDecryption { .. }),
            "{plaintext_footer}: {err}"
        );
        assert!(
            err.to_string().contains("footer failed to decrypt"),
            "{err}"
        );
    }
}

#[test]
fn a_flipped_page_byte_fails_its_column() {
    let mut rng = Rng::new("a_flipped_page_byte_fails_its_column");
    let keys = keys();
    let original = batch(&mut rng, 2000);
    let file = encrypt(&original, &keys, &options(true, false));
    // The first column chunk starts after the 4-byte magic: its page header then its page.
    // Each encrypted module is length(4) ‖ nonce ‖ ciphertext ‖ tag; parquet sizes pages from
    // the (authenticated) header, so a page's own length prefix is not consulted.
    let mut column_errors = 0;
    for at in 4..200 {
        let mut t = file.clone();
        t[at] ^= 0x04;
        match read(t, &keys) {
            Err(Error::ColumnDecryption { column }) => {
                assert_eq!(column, "id", "byte {at}");
                column_errors += 1;
            }
            Err(Error::Corrupt(m)) => assert!(!m.contains("rejected malformed"), "{at}: {m}"),
            Ok(rows) => assert_eq!(rows, original, "byte {at} changed the rows"),
            Err(other) => panic!("byte {at}: {other}"),
        }
    }
    assert!(column_errors > 180, "{column_errors}");
}

#[test]
fn wrong_master_keys_are_named() {
    let mut rng = Rng::new("wrong_master_keys_are_named");
    let keys = keys();
    for double_wrapping in [false, true] {
        let mut opts = options(true, false);
        opts.double_wrapping = double_wrapping;
        let file = encrypt(&batch(&mut rng, 10), &keys, &opts);
        for id in ["mf", "mb"] {
            let err = read(file.clone(), &keys.clone().with_random(id, 256)).unwrap_err();
            match &err {
                Error::KeyUnwrap { master_key_id } => assert_eq!(master_key_id, id),
                other => panic!("{other}"),
            }
            assert!(err.to_string().contains(id), "{err}");
        }
    }
}
