//! Reading encrypted (and plain) Parquet: the reader the rest of Coffer uses, and `decrypt`.

use std::fmt;
use std::io::Write;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use coffer_crypto::KeySource;
use parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::file::column_crypto_metadata::ColumnCryptoMetaData;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::{ChunkReader, Length};
use serde::Serialize;

use crate::error::{contain_panics, from_message, from_parquet};
use crate::footer::preflight;
use crate::retriever::{DecryptOptions, KeyResolver};
use crate::{Error, Result};

/// Opens `input` (a `File` or `Bytes`) for reading record batches, decrypting with keys from
/// `keys` as the file's key metadata names them. Plain Parquet files open too.
///
/// This is the hook for readers built on `parquet`'s builder (projection, row filters,
/// DataFusion). Errors while *opening* are typed; errors while reading batches reach the
/// builder's reader as `ArrowError` text naming the key or column. [`DecryptedReader`] keeps
/// them typed, and also contains panics of `parquet`'s decoders on corrupt plaintext pages,
/// which a reader built from this builder does not.
pub fn open_reader<R: ChunkReader + 'static>(
    input: R,
    keys: Arc<dyn KeySource>,
    opts: &DecryptOptions,
) -> Result<ParquetRecordBatchReaderBuilder<R>> {
    open_builder(input, &KeyResolver::new(keys), opts)
}

fn open_builder<R: ChunkReader + 'static>(
    input: R,
    resolver: &Arc<KeyResolver>,
    opts: &DecryptOptions,
) -> Result<ParquetRecordBatchReaderBuilder<R>> {
    preflight(&input, opts.aad_prefix.is_some())?;
    let props = resolver.decryption_properties(opts)?;
    let options = ArrowReaderOptions::new().with_file_decryption_properties(props);
    contain_panics("reading the footer", || {
        ParquetRecordBatchReaderBuilder::try_new_with_options(input, options).map_err(|e| {
            resolver
                .take_failure()
                .unwrap_or_else(|| from_parquet(e, &[]))
        })
    })
}

/// Leaf column paths (`a`, `s.x`, `l.list.element`) in schema order.
pub(crate) fn leaf_names(metadata: &ParquetMetaData) -> Vec<String> {
    let schema = metadata.file_metadata().schema_descr();
    schema.columns().iter().map(|c| c.path().string()).collect()
}

/// A `ChunkReader` shared between the main reader and error diagnosis.
struct Shared<R>(Arc<R>);

impl<R> Clone for Shared<R> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<R: ChunkReader> Length for Shared<R> {
    fn len(&self) -> u64 {
        self.0.len()
    }
}

impl<R: ChunkReader> ChunkReader for Shared<R> {
    type T = R::T;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        self.0.get_read(start)
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        self.0.get_bytes(start, length)
    }
}

/// Finds the leaf column whose pages fail to decrypt, by reading each leaf on its own.
type Locate = Box<dyn Fn() -> Option<String> + Send>;

fn locator<R: ChunkReader + 'static>(
    input: Shared<R>,
    resolver: Arc<KeyResolver>,
    opts: DecryptOptions,
    names: Vec<String>,
) -> Locate {
    Box::new(move || {
        names.iter().enumerate().find_map(|(i, name)| {
            let failed = contain_panics("locating a failure", || {
                let builder = open_builder(input.clone(), &resolver, &opts)?;
                let mask = ProjectionMask::leaves(builder.parquet_schema(), [i]);
                let reader = builder
                    .with_projection(mask)
                    .build()
                    .map_err(|e| from_parquet(e, &[]))?;
                Ok(reader.into_iter().any(|b| b.is_err()))
            });
            matches!(failed, Ok(true) | Err(_)).then(|| name.clone())
        })
    })
}

/// Record batches from an encrypted file, with errors kept typed.
pub struct DecryptedReader {
    schema: SchemaRef,
    metadata: Arc<ParquetMetaData>,
    batches: ParquetRecordBatchReader,
    resolver: Arc<KeyResolver>,
    leaf_names: Vec<String>,
    locate: Locate,
    done: bool,
}

impl fmt::Debug for DecryptedReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptedReader")
            .field("schema", &self.schema)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl DecryptedReader {
    /// Opens `input` and checks up front that `keys` yields every key the file uses, so a
    /// missing or wrong key is reported before any row is produced.
    pub fn open<R: ChunkReader + 'static>(
        input: R,
        keys: Arc<dyn KeySource>,
        opts: &DecryptOptions,
    ) -> Result<Self> {
        let input = Shared(Arc::new(input));
        let resolver = KeyResolver::new(keys);
        let builder = open_builder(input.clone(), &resolver, opts)?;
        let metadata = builder.metadata().clone();
        let leaf_names = leaf_names(&metadata);
        check_column_keys(&metadata, &resolver, &leaf_names)?;
        let schema = builder.schema().clone();
        let batches = contain_panics("preparing to read", || {
            builder.build().map_err(|e| from_parquet(e, &leaf_names))
        })?;
        let locate = locator(input, resolver.clone(), opts.clone(), leaf_names.clone());
        Ok(Self {
            schema,
            metadata,
            batches,
            resolver,
            leaf_names,
            locate,
            done: false,
        })
    }

    /// The Arrow schema of the batches.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The file's (decrypted) metadata.
    pub fn metadata(&self) -> &Arc<ParquetMetaData> {
        &self.metadata
    }

    fn classify(&self, e: &ArrowError) -> Error {
        if let Some(typed) = self.resolver.take_failure() {
            return typed;
        }
        let message = e.to_string();
        // A page body that fails GCM reaches us as ring's unit error, with no column named.
        if message.contains("ring::error::Unspecified")
            && let Some(column) = (self.locate)()
        {
            return Error::ColumnDecryption { column };
        }
        from_message(message, &self.leaf_names)
    }
}

impl Iterator for DecryptedReader {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let batches = &mut self.batches;
        let step = contain_panics("reading pages", || Ok(batches.next()));
        let item = match step {
            Ok(None) => None,
            Ok(Some(Ok(batch))) => Some(Ok(batch)),
            Ok(Some(Err(e))) => Some(Err(self.classify(&e))),
            Err(e) => Some(Err(e)),
        };
        if matches!(item, None | Some(Err(_))) {
            self.done = true;
        }
        item
    }
}

/// Resolves the key of every encrypted column chunk, naming the column when one fails.
fn check_column_keys(
    metadata: &ParquetMetaData,
    resolver: &KeyResolver,
    names: &[String],
) -> Result<()> {
    for rg in metadata.row_groups() {
        for (i, col) in rg.columns().iter().enumerate() {
            let Some(ColumnCryptoMetaData::ENCRYPTION_WITH_COLUMN_KEY(k)) = col.crypto_metadata()
            else {
                continue;
            };
            let column = names.get(i).cloned().unwrap_or_else(|| format!("#{i}"));
            let Some(md) = k.key_metadata.as_deref() else {
                return Err(Error::KeyMaterial {
                    reason: format!("column {column} is encrypted but has no key metadata"),
                });
            };
            match resolver.resolve(md) {
                Ok(_) => {}
                Err(Error::KeyMaterial { reason }) => {
                    return Err(Error::KeyMaterial {
                        reason: format!("column {column}: {reason}"),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// What to write decrypted rows as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// CSV with a header row (flat schemas only).
    Csv,
    /// Unencrypted Parquet (Snappy).
    Parquet,
}

/// What [`decrypt`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecryptSummary {
    /// Rows written.
    pub rows: u64,
    /// Top-level columns written.
    pub columns: usize,
}

/// Decrypts `input` (a `File` or `Bytes`) to `output` as CSV or plaintext Parquet.
pub fn decrypt<R: ChunkReader + 'static, W: Write + Send>(
    input: R,
    output: W,
    format: OutputFormat,
    keys: Arc<dyn KeySource>,
    opts: &DecryptOptions,
) -> Result<DecryptSummary> {
    let reader = DecryptedReader::open(input, keys, opts)?;
    let schema = reader.schema().clone();
    let mut rows: u64 = 0;
    let mut count = |b: &RecordBatch| {
        rows = rows.saturating_add(b.num_rows() as u64);
    };
    match format {
        OutputFormat::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(output);
            for batch in reader {
                let batch = batch?;
                w.write(&batch).map_err(|e| {
                    Error::Unsupported(format!(
                        "writing this schema as CSV ({e}); use Parquet output"
                    ))
                })?;
                count(&batch);
            }
            w.into_inner().flush()?;
        }
        OutputFormat::Parquet => {
            let props = crate::encrypt::writer_properties(None);
            let mut w = ArrowWriter::try_new(output, schema.clone(), Some(props))
                .map_err(crate::encrypt::write_error)?;
            for batch in reader {
                let batch = batch?;
                w.write(&batch).map_err(crate::encrypt::write_error)?;
                count(&batch);
            }
            w.close().map_err(crate::encrypt::write_error)?;
        }
    }
    Ok(DecryptSummary {
        rows,
        columns: schema.fields().len(),
    })
}
