//! TPC-H over encrypted Parquet against the same data in plaintext Parquet (feature `tpch`).
//!
//! [`run_tpch`] generates the eight TPC-H tables at a scale factor with `tpchgen`, writes each
//! twice with the same writer settings (Snappy, one file per table): plaintext, and encrypted
//! with Parquet Modular Encryption through `coffer-parquet` (encrypted footer; a per-table key
//! for a few sensitive columns, such as `c_name`, `c_address` and `l_extendedprice`, another
//! key for the table's other columns; uniform encryption under the footer key for tables
//! without sensitive columns). It then runs the 22 TPC-H queries (`tpch/qNN.sql`, the
//! specification's default substitution parameters) in two sessions with identical settings,
//! one per file set, the encrypted one reading its keys from a [`MemoryKeys`] through
//! [`crate::register_encrypted_parquet`].
//!
//! One untimed round first checks that both sessions return the same rows for every query
//! (as sorted, formatted rows: ties under `ORDER BY … LIMIT` may order differently). Then each
//! of `runs` rounds times every query both ways, alternating which goes first. Times include
//! planning; each query's time is the median over the rounds.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer_crypto::{KeyId, KeySource, MemoryKeys, SecretKey};
use coffer_parquet::EncryptOptions;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::ListingOptions;
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow,
    SupplierArrow,
};

/// The 22 TPC-H queries, in order.
pub const QUERIES: [&str; 22] = [
    include_str!("../tpch/q01.sql"),
    include_str!("../tpch/q02.sql"),
    include_str!("../tpch/q03.sql"),
    include_str!("../tpch/q04.sql"),
    include_str!("../tpch/q05.sql"),
    include_str!("../tpch/q06.sql"),
    include_str!("../tpch/q07.sql"),
    include_str!("../tpch/q08.sql"),
    include_str!("../tpch/q09.sql"),
    include_str!("../tpch/q10.sql"),
    include_str!("../tpch/q11.sql"),
    include_str!("../tpch/q12.sql"),
    include_str!("../tpch/q13.sql"),
    include_str!("../tpch/q14.sql"),
    include_str!("../tpch/q15.sql"),
    include_str!("../tpch/q16.sql"),
    include_str!("../tpch/q17.sql"),
    include_str!("../tpch/q18.sql"),
    include_str!("../tpch/q19.sql"),
    include_str!("../tpch/q20.sql"),
    include_str!("../tpch/q21.sql"),
    include_str!("../tpch/q22.sql"),
];

/// Each table and its sensitive columns, which get a key of their own.
pub const TABLES: [(&str, &[&str]); 8] = [
    ("region", &[]),
    ("nation", &[]),
    ("supplier", &["s_name", "s_address", "s_phone"]),
    ("customer", &["c_name", "c_address", "c_phone"]),
    ("part", &[]),
    ("partsupp", &[]),
    ("orders", &["o_totalprice"]),
    ("lineitem", &["l_extendedprice"]),
];

/// What went wrong in [`run_tpch`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TpchError {
    /// Making keys.
    #[error("keys: {0}")]
    Keys(#[from] coffer_crypto::Error),
    /// Writing an encrypted table.
    #[error("encrypting a table: {0}")]
    Encrypt(#[from] coffer_parquet::Error),
    /// Writing a plaintext table.
    #[error("writing a table: {0}")]
    Write(#[from] parquet::errors::ParquetError),
    /// Generating a table.
    #[error("generating a table: {0}")]
    Generate(#[from] ArrowError),
    /// Files and directories.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Registering tables or running a query.
    #[error("query {query}: {source}")]
    Query {
        /// 1 to 22, or 0 while registering tables.
        query: usize,
        /// DataFusion's error.
        source: DataFusionError,
    },
    /// A path that is not UTF-8, or a task that did not finish.
    #[error("{0}")]
    Other(String),
}

/// One query's result.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryTiming {
    /// 1 to 22.
    pub query: usize,
    /// Rows the query returned.
    pub rows: usize,
    /// Median time over plaintext files.
    pub plain: Duration,
    /// Median time over encrypted files.
    pub encrypted: Duration,
    /// Whether both ways returned the same rows.
    pub identical: bool,
}

impl QueryTiming {
    /// `encrypted / plain`.
    pub fn ratio(&self) -> f64 {
        self.encrypted.as_secs_f64() / self.plain.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// What [`run_tpch`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct TpchReport {
    /// The scale factor.
    pub sf: f64,
    /// Timed rounds per query and way.
    pub runs: usize,
    /// Bytes of the plaintext tables.
    pub plain_bytes: u64,
    /// Bytes of the encrypted tables.
    pub encrypted_bytes: u64,
    /// Time to generate and write both file sets.
    pub generate: Duration,
    /// The 22 queries, in order.
    pub queries: Vec<QueryTiming>,
}

impl TpchReport {
    /// The geometric mean of the per-query ratios.
    pub fn geomean_ratio(&self) -> f64 {
        let logs: Vec<f64> = self.queries.iter().map(|q| q.ratio().ln()).collect();
        (logs.iter().sum::<f64>() / logs.len().max(1) as f64).exp()
    }

    /// Whether every query returned the same rows both ways.
    pub fn all_identical(&self) -> bool {
        self.queries.iter().all(|q| q.identical)
    }
}

/// Generates TPC-H at scale factor `sf` under `dir` (`plain/` and `encrypted/`, replacing
/// earlier files), then times the 22 queries `runs` times both ways (see the module docs).
pub async fn run_tpch(sf: f64, dir: &Path, runs: usize) -> Result<TpchReport, TpchError> {
    let keys = Arc::new(TpchKeys::new()?);
    let started = Instant::now();
    let (plain_bytes, encrypted_bytes) = {
        let (dir, keys) = (dir.to_owned(), keys.clone());
        tokio::task::spawn_blocking(move || write_tables(sf, &dir, &keys))
            .await
            .map_err(|e| TpchError::Other(format!("generating tables: {e}")))??
    };
    let generate = started.elapsed();
    let plain = plain_session(&dir.join("plain")).await?;
    let source: Arc<dyn KeySource> = Arc::new(keys.keys.clone());
    let encrypted = encrypted_session(&dir.join("encrypted"), source).await?;

    let mut queries = Vec::with_capacity(QUERIES.len());
    for (i, sql) in QUERIES.iter().enumerate() {
        let query = i.saturating_add(1);
        let (plain_rows, _) = run_query(&plain, query, sql).await?;
        let (encrypted_rows, _) = run_query(&encrypted, query, sql).await?;
        let mut samples = (Vec::with_capacity(runs), Vec::with_capacity(runs));
        for round in 0..runs {
            let ways = [(&plain, &mut samples.0), (&encrypted, &mut samples.1)];
            let ways = if round % 2 == 0 {
                ways
            } else {
                let [a, b] = ways;
                [b, a]
            };
            for (ctx, times) in ways {
                times.push(run_query(ctx, query, sql).await?.1);
            }
        }
        queries.push(QueryTiming {
            query,
            rows: plain_rows.len(),
            plain: median(samples.0),
            encrypted: median(samples.1),
            identical: plain_rows == encrypted_rows,
        });
    }
    Ok(TpchReport {
        sf,
        runs,
        plain_bytes,
        encrypted_bytes,
        generate,
        queries,
    })
}

/// The tables `sql` reads, in [`TABLES`] order (by whole-word match).
pub fn tables_of(sql: &str) -> Vec<&'static str> {
    let words: std::collections::BTreeSet<&str> = sql
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .collect();
    TABLES
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| words.contains(t))
        .collect()
}

/// Writes every table in plaintext Parquet under `dir` (Snappy, one file per table, as
/// [`run_tpch`] does); returns the total size.
pub fn write_plain(sf: f64, dir: &Path) -> Result<u64, TpchError> {
    std::fs::create_dir_all(dir)?;
    let mut total = 0u64;
    for (table, _) in TABLES {
        let file = dir.join(format!("{table}.parquet"));
        let (schema, batches) = generate(table, sf)?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let mut writer = ArrowWriter::try_new(std::fs::File::create(&file)?, schema, Some(props))?;
        for batch in batches {
            writer.write(&batch?)?;
        }
        writer.close()?;
        total = total.saturating_add(std::fs::metadata(&file)?.len());
    }
    Ok(total)
}

/// Writes every table encrypted under `dir`, each under its own master key
/// (`key_of(table)`, found in `keys`): encrypted footer, a fresh data key per column.
/// Returns the total size.
pub fn write_encrypted_per_table(
    sf: f64,
    dir: &Path,
    keys: &dyn KeySource,
    key_of: impl Fn(&str) -> Result<KeyId, coffer_crypto::Error>,
) -> Result<u64, TpchError> {
    std::fs::create_dir_all(dir)?;
    let mut total = 0u64;
    for (table, _) in TABLES {
        let (schema, batches) = generate(table, sf)?;
        let opts = EncryptOptions::new(key_of(table)?);
        let out = std::fs::File::create(dir.join(format!("{table}.parquet")))?;
        let summary = coffer_parquet::encrypt_batches(schema, batches, out, keys, &opts)?;
        total = total.saturating_add(summary.bytes);
    }
    Ok(total)
}

/// The median of `samples` (zero if none).
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples
        .get(samples.len() / 2)
        .copied()
        .unwrap_or(Duration::ZERO)
}

/// The master keys: one footer key, one for every table's ordinary columns, one per table
/// with sensitive columns.
struct TpchKeys {
    keys: MemoryKeys,
    footer: KeyId,
    data: KeyId,
}

impl TpchKeys {
    fn new() -> Result<Self, TpchError> {
        let footer = KeyId::new("tpch-footer")?;
        let data = KeyId::new("tpch-data")?;
        let mut keys = MemoryKeys::new()
            .with(footer.clone(), SecretKey::generate(256)?)
            .with(data.clone(), SecretKey::generate(256)?);
        for (table, sensitive) in TABLES {
            if !sensitive.is_empty() {
                keys = keys.with(Self::sensitive(table)?, SecretKey::generate(256)?);
            }
        }
        Ok(Self { keys, footer, data })
    }

    fn sensitive(table: &str) -> Result<KeyId, TpchError> {
        Ok(KeyId::new(format!("tpch-{table}-pii"))?)
    }

    fn options(&self, table: &str, schema: &SchemaRef) -> Result<EncryptOptions, TpchError> {
        let mut opts = EncryptOptions::new(self.footer.clone());
        let sensitive = TABLES
            .iter()
            .find(|(t, _)| *t == table)
            .map_or(&[][..], |(_, s)| *s);
        if !sensitive.is_empty() {
            let rest = schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .filter(|n| !sensitive.contains(&n.as_str()))
                .collect();
            let sensitive = sensitive.iter().map(|s| (*s).to_owned()).collect();
            opts.column_keys = vec![
                (Self::sensitive(table)?, sensitive),
                (self.data.clone(), rest),
            ];
        }
        Ok(opts)
    }
}

type Batches = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>>>;

/// A fresh generator of `table` at `sf`, with its schema.
fn generate(table: &str, sf: f64) -> Result<(SchemaRef, Batches), TpchError> {
    Ok(match table {
        "region" => (
            RegionArrow::schema_ref(),
            Box::new(RegionArrow::new(RegionGenerator::new(sf, 1, 1))),
        ),
        "nation" => (
            NationArrow::schema_ref(),
            Box::new(NationArrow::new(NationGenerator::new(sf, 1, 1))),
        ),
        "supplier" => (
            SupplierArrow::schema_ref(),
            Box::new(SupplierArrow::new(SupplierGenerator::new(sf, 1, 1))),
        ),
        "customer" => (
            CustomerArrow::schema_ref(),
            Box::new(CustomerArrow::new(CustomerGenerator::new(sf, 1, 1))),
        ),
        "part" => (
            PartArrow::schema_ref(),
            Box::new(PartArrow::new(PartGenerator::new(sf, 1, 1))),
        ),
        "partsupp" => (
            PartSuppArrow::schema_ref(),
            Box::new(PartSuppArrow::new(PartSuppGenerator::new(sf, 1, 1))),
        ),
        "orders" => (
            OrderArrow::schema_ref(),
            Box::new(OrderArrow::new(OrderGenerator::new(sf, 1, 1))),
        ),
        "lineitem" => (
            LineItemArrow::schema_ref(),
            Box::new(LineItemArrow::new(LineItemGenerator::new(sf, 1, 1))),
        ),
        other => return Err(TpchError::Other(format!("no TPC-H table {other}"))),
    })
}

/// Writes every table plain and encrypted; returns both total sizes.
fn write_tables(sf: f64, dir: &Path, keys: &TpchKeys) -> Result<(u64, u64), TpchError> {
    let (plain_dir, encrypted_dir) = (dir.join("plain"), dir.join("encrypted"));
    std::fs::create_dir_all(&plain_dir)?;
    std::fs::create_dir_all(&encrypted_dir)?;
    let (mut plain_bytes, mut encrypted_bytes) = (0u64, 0u64);
    for (table, _) in TABLES {
        let file = format!("{table}.parquet");
        let (schema, batches) = generate(table, sf)?;
        let out = std::fs::File::create(plain_dir.join(&file))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let mut writer = ArrowWriter::try_new(out, schema, Some(props))?;
        for batch in batches {
            writer.write(&batch?)?;
        }
        writer.close()?;
        plain_bytes = plain_bytes.saturating_add(std::fs::metadata(plain_dir.join(&file))?.len());

        let (schema, batches) = generate(table, sf)?;
        let opts = keys.options(table, &schema)?;
        let out = std::fs::File::create(encrypted_dir.join(&file))?;
        let summary = coffer_parquet::encrypt_batches(schema, batches, out, &keys.keys, &opts)?;
        encrypted_bytes = encrypted_bytes.saturating_add(summary.bytes);
    }
    Ok((plain_bytes, encrypted_bytes))
}

fn session() -> SessionContext {
    SessionContext::new_with_config(SessionConfig::new())
}

fn table_path(dir: &Path, table: &str) -> Result<String, TpchError> {
    let path: PathBuf = dir.join(format!("{table}.parquet"));
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| TpchError::Other(format!("{} is not UTF-8", path.display())))
}

fn registering(source: DataFusionError) -> TpchError {
    TpchError::Query { query: 0, source }
}

/// Plaintext tables, registered the way [`crate::register_encrypted_parquet`] registers
/// encrypted ones, less the encryption factory.
pub async fn plain_session(dir: &Path) -> Result<SessionContext, TpchError> {
    let ctx = session();
    for (table, _) in TABLES {
        let listing =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        ctx.register_listing_table(table, table_path(dir, table)?, listing, None, None)
            .await
            .map_err(registering)?;
    }
    Ok(ctx)
}

async fn encrypted_session(
    dir: &Path,
    keys: Arc<dyn KeySource>,
) -> Result<SessionContext, TpchError> {
    let ctx = session();
    for (table, _) in TABLES {
        crate::register_encrypted_parquet(&ctx, table, &table_path(dir, table)?, keys.clone())
            .await
            .map_err(registering)?;
    }
    Ok(ctx)
}

/// Runs `sql`; returns its rows (formatted, sorted) and the time it took.
pub async fn run_query(
    ctx: &SessionContext,
    query: usize,
    sql: &str,
) -> Result<(Vec<String>, Duration), TpchError> {
    let failed = |source| TpchError::Query { query, source };
    let started = Instant::now();
    let batches = ctx
        .sql(sql)
        .await
        .map_err(failed)?
        .collect()
        .await
        .map_err(failed)?;
    let took = started.elapsed();
    let rows = format_rows(&batches).map_err(|e| failed(e.into()))?;
    Ok((rows, took))
}

/// Rows as sorted `|`-separated text, for comparing results computed two ways.
pub fn format_rows(batches: &[RecordBatch]) -> Result<Vec<String>, ArrowError> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let columns = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = columns.iter().map(|c| c.value(row).to_string()).collect();
            rows.push(cells.join("|"));
        }
    }
    rows.sort();
    Ok(rows)
}
