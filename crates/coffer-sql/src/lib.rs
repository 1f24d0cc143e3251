//! DataFusion over encrypted Parquet, with keys from a [`KeySource`].
//!
//! Coffer's engines see only decrypted Arrow data; this crate is the one place where DataFusion
//! meets Parquet Modular Encryption. [`KeySourceEncryptionFactory`] is a DataFusion
//! [`EncryptionFactory`] that resolves each file's key metadata (PyArrow/Spark `PKMT1` key
//! material, or plain key ids) through a [`KeySource`], with the same resolution as
//! `coffer-parquet`. [`register_encrypted_parquet`] registers a table over encrypted files.
//!
//! ```no_run
//! # async fn example(keys: std::sync::Arc<dyn coffer_crypto::KeySource>) -> datafusion::error::Result<()> {
//! use datafusion::prelude::SessionContext;
//!
//! let ctx = SessionContext::new();
//! coffer_sql::register_encrypted_parquet(&ctx, "patients", "data/patients.parquet", keys).await?;
//! let batches = ctx.sql("SELECT count(*) FROM patients").await?.collect().await?;
//! # Ok(()) }
//! ```
//!
//! Writing encrypted Parquet through DataFusion is refused: Coffer's outputs leave the enclave
//! in the age format, and a factory that silently wrote plaintext would be worse than none.
//!
//! [`constraints::run_constrained`] runs one `SELECT` under a manifest's output constraints
//! (`min_group_size`, enforced by rewriting the logical plan), with parameters that
//! [`template::bind_template`] checked against the computation's declared types.
//!
//! # Features
//!
//! - `tpch` (off): the `tpch` module, the TPC-H benchmark of encrypted against plaintext
//!   Parquet. It pulls in the TPC-H generator; in-TEE binaries leave it off.
#![forbid(unsafe_code)]

pub mod constraints;
mod contributors;
mod error;
pub mod template;
#[cfg(feature = "tpch")]
pub mod tpch;

pub use constraints::{OutputConstraints, run_constrained};
pub use error::SqlError;
pub use template::{BoundTemplate, bind_template};

use std::sync::Arc;

use async_trait::async_trait;
use coffer_crypto::KeySource;
use coffer_parquet::DecryptOptions;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::config::{EncryptionFactoryOptions, TableParquetOptions};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::ListingOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::parquet_encryption::EncryptionFactory;
use datafusion::prelude::SessionContext;
use object_store::path::Path;
use parquet::encryption::decrypt::FileDecryptionProperties;
use parquet::encryption::encrypt::FileEncryptionProperties;

/// The id under which [`register_encrypted_parquet`] registers its factory.
pub const FACTORY_ID: &str = "coffer";

/// A DataFusion [`EncryptionFactory`] that reads every file's keys from a [`KeySource`].
#[derive(Debug)]
pub struct KeySourceEncryptionFactory {
    keys: Arc<dyn KeySource>,
    options: DecryptOptions,
}

impl KeySourceEncryptionFactory {
    /// A factory resolving keys through `keys`, with `options` (an AAD prefix, if the files
    /// need one supplied).
    pub fn new(keys: Arc<dyn KeySource>, options: DecryptOptions) -> Self {
        Self { keys, options }
    }
}

#[async_trait]
impl EncryptionFactory for KeySourceEncryptionFactory {
    async fn get_file_encryption_properties(
        &self,
        _config: &EncryptionFactoryOptions,
        _schema: &SchemaRef,
        file_path: &Path,
    ) -> Result<Option<Arc<FileEncryptionProperties>>> {
        Err(DataFusionError::NotImplemented(format!(
            "writing encrypted Parquet ({file_path}) through DataFusion; Coffer delivers outputs \
             in the age format"
        )))
    }

    async fn get_file_decryption_properties(
        &self,
        _config: &EncryptionFactoryOptions,
        _file_path: &Path,
    ) -> Result<Option<Arc<FileDecryptionProperties>>> {
        coffer_parquet::decryption_properties(self.keys.clone(), &self.options)
            .map(Some)
            .map_err(|e| DataFusionError::External(Box::new(e)))
    }
}

/// Registers `table` over the encrypted Parquet file or directory at `path`, reading keys from
/// `keys`. Registers the factory under [`FACTORY_ID`] (replacing any earlier one).
pub async fn register_encrypted_parquet(
    ctx: &SessionContext,
    table: &str,
    path: &str,
    keys: Arc<dyn KeySource>,
) -> Result<()> {
    let factory = KeySourceEncryptionFactory::new(keys, DecryptOptions::default());
    ctx.runtime_env()
        .register_parquet_encryption_factory(FACTORY_ID, Arc::new(factory));
    let mut options = TableParquetOptions::new();
    options.crypto.factory_id = Some(FACTORY_ID.to_owned());
    let format = ParquetFormat::default().with_options(options);
    let listing = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
    ctx.register_listing_table(table, path, listing, None, None)
        .await
}
