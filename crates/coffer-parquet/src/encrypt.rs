//! Writing encrypted Parquet the way PyArrow's `CryptoFactory` does.

use std::collections::BTreeMap;
use std::io::Write;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use coffer_crypto::{KeyId, KeySource, SecretKey};
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::basic::Compression;
use parquet::encryption::encrypt::FileEncryptionProperties;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use serde::Serialize;

use crate::key_material::KeyWrapper;
use crate::{Error, Result};

/// How to encrypt a file. [`EncryptOptions::new`] gives PyArrow's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptOptions {
    /// Master key for the footer (and, with no column keys, for every column).
    pub footer_key: KeyId,
    /// Master key per set of columns. A name is a top-level field (all its leaves) or a leaf
    /// path such as `s.x`. Columns not listed stay plaintext. Empty: uniform encryption.
    pub column_keys: Vec<(KeyId, Vec<String>)>,
    /// Wrap data keys with a per-file key-encryption key, itself wrapped by the master key
    /// (PyArrow's default, `true`), instead of wrapping them by the master key directly.
    pub double_wrapping: bool,
    /// Leave the footer readable (schema, row counts, statistics of plaintext columns) and
    /// sign it with the footer key instead of encrypting it. Default `false`.
    pub plaintext_footer: bool,
    /// Data key length: 128 (default, as PyArrow's `data_key_length_bits`) or 256. arrow-rs
    /// cannot use 192-bit data keys.
    pub data_key_bits: usize,
}

impl EncryptOptions {
    /// Uniform encryption under `footer_key`, double wrapping, encrypted footer, 128-bit DEKs.
    pub fn new(footer_key: KeyId) -> Self {
        Self {
            footer_key,
            column_keys: Vec::new(),
            double_wrapping: true,
            plaintext_footer: false,
            data_key_bits: 128,
        }
    }
}

/// What [`encrypt_batches`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Rows written.
    pub rows: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Master key of the footer.
    pub footer_key: String,
    /// Leaf column path → master key; empty for uniform encryption.
    pub column_keys: BTreeMap<String, String>,
    /// Leaf columns left in plaintext (only with column keys).
    pub plaintext_columns: Vec<String>,
    pub double_wrapping: bool,
    pub plaintext_footer: bool,
}

pub(crate) fn writer_properties(
    encryption: Option<std::sync::Arc<FileEncryptionProperties>>,
) -> WriterProperties {
    let b = WriterProperties::builder().set_compression(Compression::SNAPPY);
    match encryption {
        Some(e) => b.with_file_encryption_properties(e).build(),
        None => b.build(),
    }
}

pub(crate) fn write_error(e: ParquetError) -> Error {
    match e {
        ParquetError::External(inner) => match inner.downcast::<std::io::Error>() {
            Ok(io) => Error::Io(*io),
            Err(other) => Error::InvalidInput(other.to_string()),
        },
        ParquetError::ArrowError(m) => Error::InvalidInput(m),
        other => Error::InvalidInput(format!("writing Parquet: {other}")),
    }
}

/// Maps requested column names to leaf paths and master keys; errors name unknown columns and
/// columns listed twice.
fn plan_columns(
    leaves: &[String],
    column_keys: &[(KeyId, Vec<String>)],
) -> Result<BTreeMap<String, KeyId>> {
    let mut plan = BTreeMap::new();
    for (key, names) in column_keys {
        for name in names {
            let prefix = format!("{name}.");
            let matched: Vec<&String> = leaves
                .iter()
                .filter(|leaf| *leaf == name || leaf.starts_with(&prefix))
                .collect();
            if matched.is_empty() {
                return Err(Error::UnknownColumn {
                    column: name.clone(),
                });
            }
            for leaf in matched {
                if plan.insert(leaf.clone(), key.clone()).is_some() {
                    return Err(Error::ApiMisuse(format!(
                        "column {leaf} is listed under more than one column key"
                    )));
                }
            }
        }
    }
    Ok(plan)
}

/// Builds encryption properties with fresh data keys wrapped as key material.
fn encryption_properties(
    leaves: &[String],
    keys: &dyn KeySource,
    opts: &EncryptOptions,
) -> Result<(
    std::sync::Arc<FileEncryptionProperties>,
    BTreeMap<String, KeyId>,
)> {
    if !matches!(opts.data_key_bits, 128 | 256) {
        return Err(Error::Unsupported(format!(
            "{}-bit data keys; arrow-rs encrypts with 128- or 256-bit keys",
            opts.data_key_bits
        )));
    }
    let plan = plan_columns(leaves, &opts.column_keys)?;
    let mut wrapper = KeyWrapper::new(keys, opts.double_wrapping);
    let footer_dek = SecretKey::generate(opts.data_key_bits)?;
    let footer_md = wrapper.key_metadata(&footer_dek, &opts.footer_key, true)?;
    let mut builder = FileEncryptionProperties::builder(footer_dek.expose_secret().to_vec())
        .with_footer_key_metadata(footer_md)
        .with_plaintext_footer(opts.plaintext_footer);
    for (leaf, master) in &plan {
        // A fresh data key per column, as CryptoFactory does.
        let dek = SecretKey::generate(opts.data_key_bits)?;
        let md = wrapper.key_metadata(&dek, master, false)?;
        builder = builder.with_column_key_and_metadata(leaf, dek.expose_secret().to_vec(), md);
    }
    let props = builder
        .build()
        .map_err(|e| Error::Internal(e.to_string()))?;
    Ok((props, plan))
}

/// Encrypts `batches` (all of `schema`) into a Parquet file written to `writer`.
///
/// Data keys are fresh per file and per column; master keys come from `keys`. The result reads
/// with PyArrow's and Spark's `CryptoFactory` given a KMS client doing the same local wrapping
/// (see the crate docs), and with [`crate::decrypt`].
pub fn encrypt_batches<W, I>(
    schema: SchemaRef,
    batches: I,
    writer: W,
    keys: &dyn KeySource,
    opts: &EncryptOptions,
) -> Result<Summary>
where
    W: Write + Send,
    I: IntoIterator<Item = std::result::Result<RecordBatch, ArrowError>>,
{
    let parquet_schema = ArrowSchemaConverter::new()
        .convert(&schema)
        .map_err(|e| Error::InvalidInput(format!("schema has no Parquet form: {e}")))?;
    let leaves: Vec<String> = parquet_schema
        .columns()
        .iter()
        .map(|c| c.path().string())
        .collect();
    let (props, plan) = encryption_properties(&leaves, keys, opts)?;
    let mut w = ArrowWriter::try_new(writer, schema, Some(writer_properties(Some(props))))
        .map_err(write_error)?;
    let mut rows: u64 = 0;
    for batch in batches {
        let batch = batch.map_err(|e| Error::InvalidInput(e.to_string()))?;
        rows = rows.saturating_add(batch.num_rows() as u64);
        w.write(&batch).map_err(write_error)?;
    }
    // `finish` writes the footer; `close` would call it again.
    w.finish().map_err(write_error)?;
    let bytes = w.bytes_written() as u64;
    let plaintext_columns = if plan.is_empty() {
        Vec::new()
    } else {
        leaves
            .iter()
            .filter(|l| !plan.contains_key(*l))
            .cloned()
            .collect()
    };
    Ok(Summary {
        rows,
        bytes,
        footer_key: opts.footer_key.to_string(),
        column_keys: plan.into_iter().map(|(c, k)| (c, k.to_string())).collect(),
        plaintext_columns,
        double_wrapping: opts.double_wrapping,
        plaintext_footer: opts.plaintext_footer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> KeyId {
        KeyId::new(s).unwrap()
    }

    #[test]
    fn columns_resolve_to_leaves() {
        let leaves: Vec<String> = ["a", "s.x", "s.y", "sx"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let plan = plan_columns(
            &leaves,
            &[(id("k1"), vec!["s".into()]), (id("k2"), vec!["a".into()])],
        )
        .unwrap();
        assert_eq!(plan.keys().collect::<Vec<_>>(), ["a", "s.x", "s.y"]);
        match plan_columns(&leaves, &[(id("k"), vec!["nope".into()])]) {
            Err(Error::UnknownColumn { column }) => assert_eq!(column, "nope"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            plan_columns(
                &leaves,
                &[(id("k1"), vec!["s".into()]), (id("k2"), vec!["s.x".into()])]
            ),
            Err(Error::ApiMisuse(_))
        ));
    }
}
