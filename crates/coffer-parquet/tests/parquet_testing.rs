//! parquet-testing's encrypted files (written by parquet-mr / parquet-cpp) against the dumps in
//! `testdata/parquet_encryption/expected/`. See that folder's PROVENANCE.md.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use std::fs::File;

use arrow::util::pretty::pretty_format_batches;
use coffer_parquet::{
    ColumnProtection, DecryptOptions, DecryptedReader, Error, FileFormat, KeyRef, inspect,
};
use common::{MemKeys, testdata};

const FOOTER_KEY: &[u8] = b"0123456789012345";
const DOUBLE_KEY: &[u8] = b"1234567890123450";
const FLOAT_KEY: &[u8] = b"1234567890123451";

const STANDARD: &[&str] = &[
    "uniform_encryption.parquet.encrypted",
    "encrypt_columns_and_footer.parquet.encrypted",
    "encrypt_columns_and_footer_aad.parquet.encrypted",
    "encrypt_columns_plaintext_footer.parquet.encrypted",
];
const DISABLE_AAD: &str = "encrypt_columns_and_footer_disable_aad_storage.parquet.encrypted";
const BLOOM: &str = "encrypt_columns_and_footer_bloom_filter.parquet.encrypted";
const CTR: &str = "encrypt_columns_and_footer_ctr.parquet.encrypted";

fn keys() -> MemKeys {
    MemKeys::default()
        .with("kf", FOOTER_KEY)
        .with("kc1", DOUBLE_KEY)
        .with("kc2", FLOAT_KEY)
}

fn aad(prefix: &str) -> DecryptOptions {
    DecryptOptions {
        aad_prefix: Some(prefix.as_bytes().to_vec()),
    }
}

/// Renders a file the way the collector's dumps do.
fn dump(name: &str, keys: &MemKeys, opts: &DecryptOptions) -> Result<String, Error> {
    let reader = DecryptedReader::open(File::open(testdata(name)).unwrap(), keys.arc(), opts)?;
    let md = reader.metadata().clone();
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    let read: usize = batches.iter().map(|b| b.num_rows()).sum();
    Ok(format!(
        "rows={} row_groups={} cols={}\nread_rows={read}\n{}",
        md.file_metadata().num_rows(),
        md.num_row_groups(),
        md.file_metadata().schema_descr().num_columns(),
        pretty_format_batches(&batches).unwrap()
    ))
}

fn expected(name: &str) -> String {
    std::fs::read_to_string(testdata(&format!("expected/{name}"))).unwrap()
}

fn assert_dump(file: &str, expected_name: &str, opts: &DecryptOptions) {
    let got = dump(file, &keys(), opts).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(got.trim_end(), expected(expected_name).trim_end(), "{file}");
}

#[test]
fn standard_files_decrypt_to_the_expected_dump() {
    for file in STANDARD {
        assert_dump(
            file,
            "standard_50row_dataset.txt",
            &DecryptOptions::default(),
        );
    }
}

#[test]
fn bloom_filter_file_decrypts_to_the_expected_dump() {
    assert_dump(
        BLOOM,
        "bloom_filter_2000row_dataset.txt",
        &DecryptOptions::default(),
    );
}

#[test]
fn unstored_aad_prefix_must_be_supplied() {
    assert_dump(DISABLE_AAD, "standard_50row_dataset.txt", &aad("tester"));
    let err = dump(DISABLE_AAD, &keys(), &DecryptOptions::default()).unwrap_err();
    assert!(matches!(err, Error::AadPrefixRequired), "{err}");
    assert!(err.to_string().contains("supply the AAD prefix"), "{err}");
    let err = dump(DISABLE_AAD, &keys(), &aad("tester2")).unwrap_err();
    assert!(matches!(err, Error::FooterDecryption { .. }), "{err}");
}

#[test]
fn a_stored_aad_prefix_is_used_and_a_wrong_supplied_one_fails() {
    let file = "encrypt_columns_and_footer_aad.parquet.encrypted";
    assert_dump(file, "standard_50row_dataset.txt", &aad("tester"));
    let err = dump(file, &keys(), &aad("nottester")).unwrap_err();
    assert!(matches!(err, Error::FooterDecryption { .. }), "{err}");
}

#[test]
fn ctr_files_are_refused_as_unsupported() {
    let err = dump(CTR, &keys(), &DecryptOptions::default()).unwrap_err();
    match &err {
        Error::UnsupportedAlgorithm { algorithm } => assert_eq!(algorithm, "AES_GCM_CTR_V1"),
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("unsupported algorithm"), "{err}");
}

#[test]
fn missing_keys_are_named() {
    for (missing, file) in [
        ("kf", "encrypt_columns_and_footer.parquet.encrypted"),
        ("kf", "encrypt_columns_plaintext_footer.parquet.encrypted"),
        ("kc1", "encrypt_columns_and_footer.parquet.encrypted"),
        ("kc2", "encrypt_columns_plaintext_footer.parquet.encrypted"),
    ] {
        let err = dump(file, &keys().without(missing), &DecryptOptions::default()).unwrap_err();
        match &err {
            Error::KeyNotFound { id } => assert_eq!(id, missing, "{file}"),
            other => panic!("{file} without {missing}: {other}"),
        }
    }
}

#[test]
fn wrong_keys_name_what_failed() {
    let wrong = b"9999999999999999";
    for file in [STANDARD[1], STANDARD[3]] {
        let err = dump(file, &keys().with("kf", wrong), &DecryptOptions::default()).unwrap_err();
        assert!(
            matches!(err, Error::FooterDecryption { .. }),
            "{file}: {err}"
        );
        assert!(
            err.to_string().contains("footer failed to decrypt"),
            "{err}"
        );

        let err = dump(file, &keys().with("kc2", wrong), &DecryptOptions::default()).unwrap_err();
        match &err {
            Error::ColumnDecryption { column } => assert_eq!(column, "float_field", "{file}"),
            other => panic!("{file}: {other}"),
        }
    }
}

#[test]
fn inspect_without_keys_reads_what_is_public() {
    let f = File::open(testdata(STANDARD[1])).unwrap();
    let i = inspect(&f, None, &DecryptOptions::default()).unwrap();
    assert_eq!(i.format, FileFormat::EncryptedFooter);
    assert_eq!(i.algorithm.as_deref(), Some("AES_GCM_V1"));
    assert_eq!(i.footer_key, Some(KeyRef::KeyId { id: "kf".into() }));
    assert_eq!(i.num_rows, None);
    assert!(i.notes.iter().any(|n| n.contains("footer key")), "{i}");

    let f = File::open(testdata(STANDARD[3])).unwrap();
    let i = inspect(&f, None, &DecryptOptions::default()).unwrap();
    assert_eq!(i.format, FileFormat::PlaintextFooter);
    assert_eq!(i.num_rows, Some(50));
    assert_eq!(i.key_ids, ["kc1", "kc2", "kf"]);
    let protection = |path: &str| {
        i.columns
            .iter()
            .find(|c| c.path == path)
            .unwrap()
            .protection
            .clone()
            .unwrap()
    };
    assert_eq!(
        protection("double_field"),
        ColumnProtection::ColumnKey {
            key: KeyRef::KeyId { id: "kc1".into() }
        }
    );
    assert_eq!(protection("boolean_field"), ColumnProtection::Plaintext);
    assert_eq!(i.schema.as_ref().unwrap().len(), 8);

    let f = File::open(testdata(DISABLE_AAD)).unwrap();
    let i = inspect(&f, None, &DecryptOptions::default()).unwrap();
    assert_eq!(i.aad_prefix, Some("must be supplied"));
    let f = File::open(testdata(STANDARD[2])).unwrap();
    assert_eq!(
        inspect(&f, None, &DecryptOptions::default())
            .unwrap()
            .aad_prefix,
        Some("stored")
    );

    let f = File::open(testdata(CTR)).unwrap();
    let i = inspect(&f, Some(keys().arc()), &DecryptOptions::default()).unwrap();
    assert_eq!(i.algorithm.as_deref(), Some("AES_GCM_CTR_V1"));
    assert!(
        i.notes.iter().any(|n| n.contains("unsupported algorithm")),
        "{i}"
    );
}

#[test]
fn inspect_with_keys_reads_the_encrypted_footer() {
    let f = File::open(testdata(STANDARD[0])).unwrap();
    let i = inspect(&f, Some(keys().arc()), &DecryptOptions::default()).unwrap();
    assert_eq!(i.num_rows, Some(50));
    assert_eq!(i.num_row_groups, Some(1));
    assert!(
        i.columns
            .iter()
            .all(|c| c.protection == Some(ColumnProtection::FooterKey)),
        "{i}"
    );
    assert_eq!(i.key_ids, ["kf"]);
    assert_eq!(i.double_wrapping, None);
    let shown = i.to_string();
    assert!(
        shown.contains("encrypted footer") && shown.contains("float_field: Float32"),
        "{shown}"
    );

    let i = inspect(
        &File::open(testdata(STANDARD[1])).unwrap(),
        Some(keys().without("kf").arc()),
        &DecryptOptions::default(),
    )
    .unwrap();
    assert_eq!(i.schema, None);
    assert!(
        i.notes.iter().any(|n| n.contains("key not found: kf")),
        "{i}"
    );
}
