//! Parquet Modular Encryption (AES_GCM_V1) with the key-management-tools metadata that PyArrow's
//! and Spark's `CryptoFactory` write, so encrypted tables move both ways between Coffer and them.
//!
//! # What is in a file
//!
//! Every column chunk (or only the listed ones) is encrypted with AES-GCM under a **data key**
//! (DEK); the footer is encrypted, or left plaintext and signed, under the footer's DEK. Each
//! DEK is fresh per file and per column. The file stores, as the footer's and each column's
//! *key metadata*, how to recover the DEK ([`key_material`]):
//!
//! - **`PKMT1` key material** (what this crate writes): JSON holding the DEK wrapped under a
//!   **master key** from the writer's keyring, directly (single wrapping) or through a per-file
//!   key-encryption key (double wrapping, the default). Wrapping is [`kms`]: AES-GCM, AAD = the
//!   master key id, `base64(nonce ‖ ciphertext ‖ tag)`, as parquet-mr's `InMemoryKMS`.
//! - **A plain key id** (`kf`, `kc1`: parquet-testing's files, arrow-rs' examples): the id
//!   names the DEK itself in the reader's key source.
//!
//! Keys come from a [`coffer_crypto::KeySource`]: master keys by master key id, or DEKs by
//! plain id. A missing key is reported by its id ([`Error::KeyNotFound`]).
//!
//! # Main entry points
//!
//! - [`encrypt_batches`] with [`EncryptOptions`]; inputs from [`read_csv`] (schema inferred, or
//!   from a [schema file](#schema-files)) or [`read_parquet`].
//! - [`decrypt`] to CSV or plaintext Parquet; [`DecryptedReader`] for typed-error batches;
//!   [`open_reader`] / [`decryption_properties`] / [`KeyResolver`] to plug the same key
//!   resolution into other `parquet` readers (DataFusion).
//! - [`inspect`]: format, algorithm, key ids, wrapping, schema and rows, with or without keys.
//! - [`bench_read`]: encrypted versus plaintext read time.
//!
//! ```
//! # use std::sync::Arc;
//! # use arrow::array::{Int64Array, RecordBatch};
//! # use arrow::datatypes::{DataType, Field, Schema};
//! # use coffer_crypto::{KeyId, KeySource, SecretKey};
//! # #[derive(Debug)] struct Ring(KeyId, SecretKey);
//! # impl KeySource for Ring {
//! #     fn key(&self, id: &KeyId) -> Result<SecretKey, coffer_crypto::Error> {
//! #         if *id == self.0 { Ok(self.1.clone()) }
//! #         else { Err(coffer_crypto::Error::KeyNotFound { id: id.to_string() }) }
//! #     }
//! # }
//! use coffer_parquet::{DecryptOptions, EncryptOptions, OutputFormat};
//!
//! let master = KeyId::new("alpha.patients")?;
//! let keys: Arc<dyn KeySource> = Arc::new(Ring(master.clone(), SecretKey::generate(256)?));
//! let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
//! let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))])?;
//!
//! let mut file = Vec::new();
//! let opts = EncryptOptions::new(master); // uniform, double wrapping, encrypted footer
//! coffer_parquet::encrypt_batches(schema, [Ok(batch)], &mut file, keys.as_ref(), &opts)?;
//!
//! let mut csv = Vec::new();
//! let file = bytes::Bytes::from(file);
//! coffer_parquet::decrypt(file, &mut csv, OutputFormat::Csv, keys, &DecryptOptions::default())?;
//! assert_eq!(String::from_utf8(csv)?, "id\n1\n2\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Interoperability
//!
//! Tested against PyArrow (`tests/interop_pyarrow.rs`) in both directions, with single and
//! double wrapping, encrypted and plaintext footers, uniform and per-column keys; and against
//! parquet-testing's encrypted files (`tests/parquet_testing.rs`). PyArrow or Spark need a
//! `KmsClient` whose `wrap_key`/`unwrap_key` do the [`kms`] wrapping with the same master keys
//! (`tests/py/pme_peer.py` is one, in 20 lines).
//!
//! PyArrow's `CryptoFactory` ignores `plaintext_footer` under uniform encryption (its files then
//! have encrypted footers); Coffer honours it, and PyArrow reads such files.
//!
//! Not supported, each with a clear error:
//! - `AES_GCM_CTR_V1` files ([`Error::UnsupportedAlgorithm`]): arrow-rs cannot decrypt them.
//! - 192-bit data keys ([`Error::Unsupported`]): arrow-rs takes 128- and 256-bit keys only.
//!   (192-bit *master* keys are fine.)
//! - External key material (`internalStorage: false`, a `_KEY_MATERIAL_FOR_*.json` file).
//! - KMS clients other than local wrapping, e.g. Vault's transit engine: the master key must be
//!   in the reader's key source.
//!
//! # Security notes
//!
//! - The footer key protects the schema, row counts and statistics; with `plaintext_footer`
//!   those are readable by anyone and only signed. Column keys protect column data and its
//!   statistics. Columns not listed under a column key are plaintext and, as everywhere in
//!   Parquet Modular Encryption, *not authenticated*: their pages can be changed undetected.
//!   Encrypt every column (uniform encryption is the default) when integrity matters.
//! - The 4-byte length prefix of an encrypted page is not authenticated (pages are sized by
//!   their authenticated headers), so changing it alters nothing that is read.
//! - Double wrapping reduces master-key use to one wrap per file and master key.
//! - `parquet` takes DEKs as plain `Vec<u8>`, so they are not zeroized once handed over.
//! - parquet 59 has arithmetic on untrusted lengths, and decoders that panic on corrupt
//!   plaintext pages; the footer is checked before `parquet` sees it, and every call into
//!   `parquet` made here is contained (`catch_unwind`) and reported as [`Error::Corrupt`].
//!
//! # Fuzzing
//!
//! `fuzz/fuzz_targets/parquet_key_material.rs` feeds arbitrary bytes to
//! [`key_material::KeyMetadata::parse`]: no panics, only typed errors, and key material that
//! parses re-serialises to JSON that parses back equal.
//!
//! # Schema files
//!
//! `read_csv` takes an optional schema; [`load_schema_file`] reads one from JSON:
//!
//! ```json
//! {"fields": [
//!   {"name": "id",   "type": "int64", "nullable": false},
//!   {"name": "name", "type": "utf8"},
//!   {"name": "at",   "type": "timestamp_us", "timezone": "UTC"}
//! ]}
//! ```
//!
//! Types: `int32`, `int64`, `float32`, `float64`, `utf8` (`string`), `bool` (`boolean`),
//! `date32`, `timestamp_ms`, `timestamp_us`; timestamps may name a `timezone`. `nullable`
//! defaults to `true`. Unknown keys and types are errors.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::arithmetic_side_effects))]

// Everything that touches Parquet files needs arrow and parquet (feature `tables`, on by
// default); key material and the KMS wrapping do not, so fuzzing them stays light.
#[cfg(feature = "tables")]
mod bench;
#[cfg(feature = "tables")]
mod decrypt;
#[cfg(feature = "tables")]
mod encrypt;
mod error;
#[cfg(feature = "tables")]
mod footer;
#[cfg(feature = "tables")]
mod input;
#[cfg(feature = "tables")]
mod inspect;
pub mod key_material;
pub mod kms;
#[cfg(feature = "tables")]
mod retriever;
#[cfg(feature = "tables")]
mod thrift;

#[cfg(feature = "tables")]
pub use bench::{BenchResult, bench_read};
#[cfg(feature = "tables")]
pub use decrypt::{DecryptSummary, DecryptedReader, OutputFormat, decrypt, open_reader};
#[cfg(feature = "tables")]
pub use encrypt::{EncryptOptions, Summary, encrypt_batches};
pub use error::{Error, Result};
#[cfg(feature = "tables")]
pub use input::{CsvReader, load_schema_file, parse_schema_file, read_csv, read_parquet};
#[cfg(feature = "tables")]
pub use inspect::{
    ColumnInfo, ColumnProtection, FieldInfo, FileFormat, Inspection, KeyRef, inspect,
};
#[cfg(feature = "tables")]
pub use retriever::{DecryptOptions, KeyResolver, decryption_properties};
