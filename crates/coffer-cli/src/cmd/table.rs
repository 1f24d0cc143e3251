//! `coffer encrypt`, `coffer decrypt`, `coffer inspect`: Parquet Modular Encryption.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use coffer_client::{AtomicFile, Home, Keyring};
use coffer_crypto::{KeyId, KeySource};
use coffer_parquet::{DecryptOptions, EncryptOptions, OutputFormat};

use crate::exit::Usage;

#[derive(Debug, Args)]
pub struct EncryptArgs {
    /// A CSV file with a header row, or a plaintext Parquet file
    input: PathBuf,
    /// Where to write the encrypted Parquet file
    #[arg(short, long)]
    output: PathBuf,
    /// Master key (keyring id) for the footer, and for every column if no --column-keys
    #[arg(long, value_name = "ID")]
    footer_key: KeyId,
    /// Master key for some columns: `ID:col1,col2`; repeat for more keys. Unlisted columns stay
    /// plaintext
    #[arg(long, value_name = "ID:COLUMNS", value_parser = parse_column_keys)]
    column_keys: Vec<(KeyId, Vec<String>)>,
    /// Wrap data keys with a per-file key-encryption key (PyArrow's default)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "true|false")]
    double_wrapping: bool,
    /// Leave the footer readable and signed instead of encrypted (schema and statistics leak)
    #[arg(long)]
    plaintext_footer: bool,
    /// A JSON schema for CSV input: {"fields":[{"name":"id","type":"int64"}, …]}
    #[arg(long, value_name = "FILE")]
    schema: Option<PathBuf>,
    /// Print a JSON summary
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// An encrypted Parquet file
    input: PathBuf,
    /// Where to write the plaintext: `.csv` or `.parquet`
    #[arg(short, long)]
    output: PathBuf,
    /// The AAD prefix, for files written with one they do not store
    #[arg(long)]
    aad_prefix: Option<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Any file
    file: PathBuf,
    /// The AAD prefix, for files written with one they do not store
    #[arg(long)]
    aad_prefix: Option<String>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

pub fn encrypt(home: &Home, args: &EncryptArgs) -> anyhow::Result<()> {
    if args.schema.is_some() && is_parquet(&args.input)? {
        return Err(Usage(
            "--schema applies to CSV input; Parquet input carries its schema".into(),
        )
        .into());
    }
    let keyring = Keyring::open(home)?;
    let opts = EncryptOptions {
        column_keys: args.column_keys.clone(),
        double_wrapping: args.double_wrapping,
        plaintext_footer: args.plaintext_footer,
        ..EncryptOptions::new(args.footer_key.clone())
    };
    let mut out = AtomicFile::create(&args.output)?;
    let summary = if is_parquet(&args.input)? {
        let (schema, batches) = coffer_parquet::read_parquet(open(&args.input)?)?;
        coffer_parquet::encrypt_batches(schema, batches, &mut out, &keyring, &opts)?
    } else {
        let schema = args
            .schema
            .as_deref()
            .map(coffer_parquet::load_schema_file)
            .transpose()?;
        let (schema, batches) = coffer_parquet::read_csv(&args.input, schema)?;
        coffer_parquet::encrypt_batches(schema, batches, &mut out, &keyring, &opts)?
    };
    out.commit()?;
    if args.json {
        return super::print_json(&summary);
    }
    println!("Wrote {} rows to {}", summary.rows, args.output.display());
    Ok(())
}

pub fn decrypt(home: &Home, args: &DecryptArgs) -> anyhow::Result<()> {
    let format = match args.output.extension().and_then(|e| e.to_str()) {
        Some("csv") => OutputFormat::Csv,
        Some("parquet") => OutputFormat::Parquet,
        _ => return Err(Usage("the output must end in .csv or .parquet".into()).into()),
    };
    let keys: Arc<dyn KeySource> = Arc::new(Keyring::open(home)?);
    let opts = DecryptOptions {
        aad_prefix: args.aad_prefix.clone().map(String::into_bytes),
    };
    let mut out = AtomicFile::create(&args.output)?;
    let summary = coffer_parquet::decrypt(open(&args.input)?, &mut out, format, keys, &opts)
        .with_context(|| format!("decrypting {}", args.input.display()))?;
    out.commit()?;
    eprintln!("Wrote {} rows to {}", summary.rows, args.output.display());
    Ok(())
}

pub fn inspect(home: &Home, args: &InspectArgs) -> anyhow::Result<()> {
    let keys: Arc<dyn KeySource> = Arc::new(Keyring::open(home)?);
    let opts = DecryptOptions {
        aad_prefix: args.aad_prefix.clone().map(String::into_bytes),
    };
    let inspection = coffer_parquet::inspect(&open(&args.file)?, Some(keys), &opts)?;
    if args.json {
        return super::print_json(&inspection);
    }
    print!("{inspection}");
    Ok(())
}

fn open(path: &Path) -> anyhow::Result<File> {
    File::open(path).with_context(|| format!("opening {}", path.display()))
}

fn is_parquet(path: &Path) -> anyhow::Result<bool> {
    let mut magic = [0u8; 4];
    let n = open(path)?.read(&mut magic)?;
    Ok(n == 4 && (&magic == b"PAR1" || &magic == b"PARE"))
}

fn parse_column_keys(text: &str) -> Result<(KeyId, Vec<String>), String> {
    let (id, columns) = text.split_once(':').ok_or("expected ID:col1,col2")?;
    let id = KeyId::new(id).map_err(|e| e.to_string())?;
    let columns: Vec<String> = columns
        .split(',')
        .map(str::trim)
        .map(str::to_owned)
        .collect();
    if columns.iter().any(String::is_empty) {
        return Err("empty column name".into());
    }
    Ok((id, columns))
}
