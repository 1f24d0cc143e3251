//! What a Parquet file is and which keys it needs, read with whatever keys are at hand.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use coffer_crypto::KeySource;
use parquet::arrow::parquet_to_arrow_schema;
use parquet::file::column_crypto_metadata::ColumnCryptoMetaData;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::reader::ChunkReader;
use serde::Serialize;

use crate::decrypt::leaf_names;
use crate::error::{contain_panics, from_parquet};
use crate::footer::{Tail, read_tail};
use crate::key_material::KeyMetadata;
use crate::retriever::{DecryptOptions, KeyResolver};
use crate::thrift::FooterCrypto;
use crate::{Error, Result};

/// The kind of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// Unencrypted Parquet.
    Plain,
    /// Parquet Modular Encryption with an encrypted footer (magic `PARE`).
    EncryptedFooter,
    /// Parquet Modular Encryption with a signed plaintext footer (magic `PAR1`).
    PlaintextFooter,
    /// Not Parquet.
    NotParquet,
}

/// A key as named by key metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KeyRef {
    /// Plain key id: names the data key itself.
    KeyId { id: String },
    /// `PKMT1` key material: a data key wrapped under a master key.
    MasterKey {
        master_key_id: String,
        double_wrapping: bool,
    },
    /// Key metadata this crate cannot parse.
    Unrecognised { reason: String },
}

/// How one leaf column is protected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ColumnProtection {
    Plaintext,
    FooterKey,
    ColumnKey { key: KeyRef },
}

/// One leaf column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnInfo {
    /// Leaf path, `a` or `s.x`.
    pub path: String,
    /// Protection in the first row group (`null` for a file without row groups).
    pub protection: Option<ColumnProtection>,
}

/// One top-level field of the Arrow schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldInfo {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
}

/// What [`inspect`] found. Fields that need a key the caller lacks are `None`, with a note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inspection {
    pub format: FileFormat,
    /// `AES_GCM_V1` or `AES_GCM_CTR_V1`.
    pub algorithm: Option<String>,
    /// Whether the file stores its AAD prefix, needs one supplied, or has none.
    pub aad_prefix: Option<&'static str>,
    /// The footer key (encrypts or signs the footer).
    pub footer_key: Option<KeyRef>,
    /// Every key name the file refers to: master key ids and plain key ids, sorted.
    pub key_ids: Vec<String>,
    /// True if any key is double-wrapped; `None` when no key metadata is key material.
    pub double_wrapping: Option<bool>,
    pub schema: Option<Vec<FieldInfo>>,
    pub columns: Vec<ColumnInfo>,
    pub num_rows: Option<i64>,
    pub num_row_groups: Option<usize>,
    /// What could not be read, and why.
    pub notes: Vec<String>,
}

fn key_ref(md: Option<&[u8]>) -> KeyRef {
    match md.map(KeyMetadata::parse) {
        None => KeyRef::Unrecognised {
            reason: "no key metadata".into(),
        },
        Some(Ok(KeyMetadata::KeyId(id))) => KeyRef::KeyId { id: id.to_string() },
        Some(Ok(KeyMetadata::Material(m))) => KeyRef::MasterKey {
            master_key_id: m.master_key_id,
            double_wrapping: m.double_wrapping.is_some(),
        },
        Some(Err(e)) => KeyRef::Unrecognised {
            reason: e.to_string(),
        },
    }
}

impl Inspection {
    fn empty(format: FileFormat) -> Self {
        Self {
            format,
            algorithm: None,
            aad_prefix: None,
            footer_key: None,
            key_ids: Vec::new(),
            double_wrapping: None,
            schema: None,
            columns: Vec::new(),
            num_rows: None,
            num_row_groups: None,
            notes: Vec::new(),
        }
    }

    fn set_crypto(&mut self, fc: &FooterCrypto) {
        self.algorithm = Some(fc.algorithm.name.to_owned());
        self.aad_prefix = Some(
            match (&fc.algorithm.aad_prefix, fc.algorithm.supply_aad_prefix) {
                (Some(_), _) => "stored",
                (None, true) => "must be supplied",
                (None, false) => "none",
            },
        );
        self.footer_key = Some(key_ref(fc.key_metadata.as_deref()));
    }

    fn set_metadata(&mut self, md: &ParquetMetaData) {
        let fm = md.file_metadata();
        self.num_rows = Some(fm.num_rows());
        self.num_row_groups = Some(md.num_row_groups());
        match parquet_to_arrow_schema(fm.schema_descr(), fm.key_value_metadata()) {
            Ok(s) => {
                self.schema = Some(
                    s.fields()
                        .iter()
                        .map(|f| FieldInfo {
                            name: f.name().clone(),
                            data_type: f.data_type().to_string(),
                            nullable: f.is_nullable(),
                        })
                        .collect(),
                )
            }
            Err(e) => self.notes.push(format!("schema has no Arrow form: {e}")),
        }
        let first = md.row_groups().first();
        self.columns = leaf_names(md)
            .into_iter()
            .enumerate()
            .map(|(i, path)| {
                let protection =
                    first
                        .and_then(|rg| rg.columns().get(i))
                        .map(|c| match c.crypto_metadata() {
                            None => ColumnProtection::Plaintext,
                            Some(ColumnCryptoMetaData::ENCRYPTION_WITH_FOOTER_KEY) => {
                                ColumnProtection::FooterKey
                            }
                            Some(ColumnCryptoMetaData::ENCRYPTION_WITH_COLUMN_KEY(k)) => {
                                ColumnProtection::ColumnKey {
                                    key: key_ref(k.key_metadata.as_deref()),
                                }
                            }
                        });
                ColumnInfo { path, protection }
            })
            .collect();
    }

    fn summarise_keys(&mut self) {
        let mut refs: Vec<&KeyRef> = self.footer_key.iter().collect();
        for c in &self.columns {
            if let Some(ColumnProtection::ColumnKey { key }) = &c.protection {
                refs.push(key);
            }
        }
        let mut names = BTreeSet::new();
        let mut double = None;
        for r in refs {
            match r {
                KeyRef::KeyId { id } => {
                    names.insert(id.clone());
                }
                KeyRef::MasterKey {
                    master_key_id,
                    double_wrapping,
                } => {
                    names.insert(master_key_id.clone());
                    double = Some(double.unwrap_or(false) || *double_wrapping);
                }
                KeyRef::Unrecognised { .. } => {}
            }
        }
        self.key_ids = names.into_iter().collect();
        self.double_wrapping = double;
    }
}

fn read_metadata<R: ChunkReader>(
    input: &R,
    resolver: Option<&Arc<KeyResolver>>,
    opts: &DecryptOptions,
) -> Result<ParquetMetaData> {
    let mut reader = ParquetMetaDataReader::new();
    if let Some(r) = resolver {
        reader = reader.with_decryption_properties(Some(r.decryption_properties(opts)?));
    }
    contain_panics("reading the footer", || {
        reader.parse_and_finish(input).map_err(|e| {
            resolver
                .and_then(|r| r.take_failure())
                .unwrap_or_else(|| from_parquet(e, &[]))
        })
    })
}

/// Describes `input` (a `File`, `Bytes`, …) without needing any key: with `keys`, also what
/// those keys unlock (an encrypted footer's schema and row count; verification of a plaintext
/// footer's signature). Only I/O errors are errors; everything else is reported.
pub fn inspect<R: ChunkReader>(
    input: &R,
    keys: Option<Arc<dyn KeySource>>,
    opts: &DecryptOptions,
) -> Result<Inspection> {
    let tail = match read_tail(input) {
        Ok(t) => t,
        Err(Error::Io(e)) => return Err(Error::Io(e)),
        Err(Error::NotParquet { reason }) => {
            let mut i = Inspection::empty(FileFormat::NotParquet);
            i.notes.push(reason);
            return Ok(i);
        }
        Err(e) => {
            let mut i = Inspection::empty(FileFormat::NotParquet);
            i.notes
                .push(format!("Parquet magic, but the footer is unreadable: {e}"));
            return Ok(i);
        }
    };
    let resolver = keys.map(KeyResolver::new);
    let mut out = match &tail {
        Tail::Plain => Inspection::empty(FileFormat::Plain),
        Tail::PlaintextFooter(fc) => {
            let mut i = Inspection::empty(FileFormat::PlaintextFooter);
            i.set_crypto(fc);
            i
        }
        Tail::EncryptedFooter(fc) => {
            let mut i = Inspection::empty(FileFormat::EncryptedFooter);
            i.set_crypto(fc);
            i
        }
    };
    let metadata = match (&tail, &resolver) {
        (Tail::Plain, _) => Some(read_metadata(input, None, opts)),
        (Tail::EncryptedFooter(_), None) => {
            out.notes
                .push("footer encrypted: schema and row count need the footer key".into());
            None
        }
        (_, Some(r)) => Some(read_metadata(input, Some(r), opts)),
        (Tail::PlaintextFooter(_), None) => {
            out.notes
                .push("footer signature not verified (no keys given)".into());
            Some(read_metadata(input, None, opts))
        }
    };
    match metadata {
        None => {}
        Some(Ok(md)) => {
            out.set_metadata(&md);
            // parquet skips column metadata whose key it could not get; say which key.
            if let Some(e) = resolver.as_ref().and_then(|r| r.take_failure()) {
                out.notes
                    .push(format!("some column metadata stays encrypted: {e}"));
            }
        }
        Some(Err(e)) => {
            out.notes
                .push(format!("metadata not readable with the keys given: {e}"));
            if matches!(tail, Tail::PlaintextFooter(_)) {
                // The footer itself is plaintext: report it, unverified.
                if let Ok(md) = read_metadata(input, None, opts) {
                    out.notes
                        .push("schema below is from an unverified footer".into());
                    out.set_metadata(&md);
                }
            }
        }
    }
    out.summarise_keys();
    Ok(out)
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRef::KeyId { id } => write!(f, "key {id}"),
            KeyRef::MasterKey {
                master_key_id,
                double_wrapping,
            } => write!(
                f,
                "master key {master_key_id} ({} wrapping)",
                if *double_wrapping { "double" } else { "single" }
            ),
            KeyRef::Unrecognised { reason } => write!(f, "unrecognised key metadata ({reason})"),
        }
    }
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = match self.format {
            FileFormat::Plain => "plain Parquet (not encrypted)",
            FileFormat::EncryptedFooter => "encrypted Parquet (PME, encrypted footer)",
            FileFormat::PlaintextFooter => "encrypted Parquet (PME, plaintext signed footer)",
            FileFormat::NotParquet => "not Parquet",
        };
        writeln!(f, "format:      {format}")?;
        if let Some(a) = &self.algorithm {
            writeln!(f, "algorithm:   {a}")?;
        }
        if let Some(a) = &self.aad_prefix {
            writeln!(f, "aad prefix:  {a}")?;
        }
        if let Some(k) = &self.footer_key {
            writeln!(f, "footer key:  {k}")?;
        }
        if !self.key_ids.is_empty() {
            writeln!(f, "keys:        {}", self.key_ids.join(", "))?;
        }
        if let Some(n) = self.num_rows {
            writeln!(f, "rows:        {n}")?;
        }
        if let Some(n) = self.num_row_groups {
            writeln!(f, "row groups:  {n}")?;
        }
        if let Some(schema) = &self.schema {
            writeln!(f, "schema:")?;
            for field in schema {
                let null = if field.nullable { "" } else { " not null" };
                writeln!(f, "  {}: {}{null}", field.name, field.data_type)?;
            }
        }
        if !self.columns.is_empty() {
            writeln!(f, "columns:")?;
            for c in &self.columns {
                let p = match &c.protection {
                    None => "unknown (no row groups)".to_owned(),
                    Some(ColumnProtection::Plaintext) => "plaintext".to_owned(),
                    Some(ColumnProtection::FooterKey) => "encrypted with the footer key".to_owned(),
                    Some(ColumnProtection::ColumnKey { key }) => format!("encrypted with {key}"),
                };
                writeln!(f, "  {}: {p}", c.path)?;
            }
        }
        for n in &self.notes {
            writeln!(f, "note:        {n}")?;
        }
        Ok(())
    }
}
