//! Plaintext inputs to encrypt: CSV (schema inferred or from a schema file) and Parquet.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::file::reader::ChunkReader;
use serde::Deserialize;

use crate::error::contain_panics;
use crate::{Error, Result};

/// A CSV reader yielding record batches.
pub type CsvReader = arrow::csv::Reader<File>;

/// Opens a CSV file with a header row. With `schema` the columns are parsed as it says;
/// without, types are inferred from the whole file (`int64`, `float64`, `bool`, `utf8`,
/// dates and timestamps as arrow-csv recognises them).
pub fn read_csv(path: &Path, schema: Option<SchemaRef>) -> Result<(SchemaRef, CsvReader)> {
    let mut file = File::open(path)?;
    let schema = match schema {
        Some(s) => s,
        None => {
            let format = arrow::csv::reader::Format::default().with_header(true);
            let (inferred, _) = format
                .infer_schema(&mut file, None)
                .map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))?;
            file.seek(SeekFrom::Start(0))?;
            Arc::new(inferred)
        }
    };
    let reader = arrow::csv::ReaderBuilder::new(schema.clone())
        .with_header(true)
        .build(file)
        .map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))?;
    Ok((schema, reader))
}

/// Opens an unencrypted Parquet file to encrypt.
pub fn read_parquet<R: ChunkReader + 'static>(
    input: R,
) -> Result<(SchemaRef, ParquetRecordBatchReader)> {
    contain_panics("reading plaintext Parquet", || {
        let builder = ParquetRecordBatchReaderBuilder::try_new(input).map_err(|e| {
            Error::InvalidInput(format!("not a readable plaintext Parquet file: {e}"))
        })?;
        let schema = builder.schema().clone();
        let reader = builder
            .build()
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        Ok((schema, reader))
    })
}

/// A schema file (see the crate docs): `{"fields":[{"name":"id","type":"int64"}, …]}`.
///
/// `type` is one of `int32`, `int64`, `float32`, `float64`, `utf8` (or `string`), `bool` (or
/// `boolean`), `date32`, `timestamp_ms`, `timestamp_us`. Timestamps may add `"timezone":"UTC"`
/// (any IANA name or `+hh:mm` offset). `nullable` defaults to `true`. Unknown keys, unknown
/// types, duplicate or empty names are errors.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFile {
    fields: Vec<FieldSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldSpec {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
    #[serde(default = "yes")]
    nullable: bool,
    timezone: Option<String>,
}

fn yes() -> bool {
    true
}

/// Parses schema-file text (format: see the crate docs, "Schema files").
pub fn parse_schema_file(text: &str) -> Result<SchemaRef> {
    let file: SchemaFile =
        serde_json::from_str(text).map_err(|e| Error::SchemaFile(e.to_string()))?;
    if file.fields.is_empty() {
        return Err(Error::SchemaFile("no fields".into()));
    }
    let mut fields = Vec::with_capacity(file.fields.len());
    for spec in file.fields {
        if spec.name.is_empty() {
            return Err(Error::SchemaFile("a field with an empty name".into()));
        }
        if fields.iter().any(|f: &Field| f.name() == &spec.name) {
            return Err(Error::SchemaFile(format!(
                "field {:?} appears twice",
                spec.name
            )));
        }
        if let Some(tz) = &spec.timezone {
            tz.parse::<arrow::array::timezone::Tz>()
                .map_err(|e| Error::SchemaFile(format!("field {:?}: {e}", spec.name)))?;
        }
        let tz = spec.timezone.map(Arc::<str>::from);
        let data_type = match (spec.data_type.as_str(), tz) {
            ("int32", None) => DataType::Int32,
            ("int64", None) => DataType::Int64,
            ("float32", None) => DataType::Float32,
            ("float64", None) => DataType::Float64,
            ("utf8" | "string", None) => DataType::Utf8,
            ("bool" | "boolean", None) => DataType::Boolean,
            ("date32", None) => DataType::Date32,
            ("timestamp_ms", tz) => DataType::Timestamp(TimeUnit::Millisecond, tz),
            ("timestamp_us", tz) => DataType::Timestamp(TimeUnit::Microsecond, tz),
            (t, Some(_)) if KNOWN.contains(&t) => {
                return Err(Error::SchemaFile(format!(
                    "field {:?}: timezone is only for timestamp types",
                    spec.name
                )));
            }
            (t, _) => {
                return Err(Error::SchemaFile(format!(
                    "field {:?}: unknown type {t:?} (one of {})",
                    spec.name,
                    KNOWN.join(", ")
                )));
            }
        };
        fields.push(Field::new(spec.name, data_type, spec.nullable));
    }
    Ok(Arc::new(Schema::new(fields)))
}

const KNOWN: &[&str] = &[
    "int32",
    "int64",
    "float32",
    "float64",
    "utf8",
    "string",
    "bool",
    "boolean",
    "date32",
    "timestamp_ms",
    "timestamp_us",
];

/// Reads a schema file from `path` (format: see the crate docs, "Schema files").
pub fn load_schema_file(path: &Path) -> Result<SchemaRef> {
    let text = std::fs::read_to_string(path)?;
    parse_schema_file(&text).map_err(|e| match e {
        Error::SchemaFile(m) => Error::SchemaFile(format!("{}: {m}", path.display())),
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_type() {
        let s = parse_schema_file(
            r#"{"fields":[
              {"name":"a","type":"int32"},{"name":"b","type":"int64","nullable":false},
              {"name":"c","type":"float32"},{"name":"d","type":"float64"},
              {"name":"e","type":"utf8"},{"name":"f","type":"bool"},{"name":"g","type":"date32"},
              {"name":"h","type":"timestamp_ms","timezone":"+05:30"},
              {"name":"i","type":"timestamp_us","timezone":"UTC"}]}"#,
        )
        .unwrap();
        assert_eq!(s.fields().len(), 9);
        assert!(!s.field(1).is_nullable());
        assert!(s.field(0).is_nullable());
        assert_eq!(
            s.field(8).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        for (text, needle) in [
            (r#"{"fields":[]}"#, "no fields"),
            (
                r#"{"fields":[{"name":"a","type":"decimal"}]}"#,
                "unknown type",
            ),
            (
                r#"{"fields":[{"name":"a","type":"int32","timezone":"UTC"}]}"#,
                "timezone",
            ),
            (
                r#"{"fields":[{"name":"a","type":"timestamp_ms","timezone":"Mars/Base"}]}"#,
                "Invalid timezone",
            ),
            (
                r#"{"fields":[{"name":"a","type":"int32"},{"name":"a","type":"utf8"}]}"#,
                "twice",
            ),
            (
                r#"{"fields":[{"name":"a","type":"int32","x":1}]}"#,
                "unknown field",
            ),
            (r#"{"fields":[{"name":"","type":"int32"}]}"#, "empty name"),
            ("[", "EOF"),
        ] {
            let err = parse_schema_file(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
