//! `coffer encrypt`, `coffer decrypt`, `coffer inspect`: Parquet Modular Encryption.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use coffer_client::Home;
use coffer_client::tables::{self, Plain};
use coffer_crypto::KeyId;
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
    let opts = EncryptOptions {
        column_keys: args.column_keys.clone(),
        double_wrapping: args.double_wrapping,
        plaintext_footer: args.plaintext_footer,
        ..EncryptOptions::new(args.footer_key.clone())
    };
    let input = Plain::Path {
        path: &args.input,
        schema: args.schema.as_deref(),
    };
    let summary = tables::encrypt(home, input, &args.output, &opts)?;
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
    let summary = tables::decrypt_to(
        home,
        &args.input,
        &args.output,
        format,
        &aad(&args.aad_prefix),
    )
    .with_context(|| format!("decrypting {}", args.input.display()))?;
    eprintln!("Wrote {} rows to {}", summary.rows, args.output.display());
    Ok(())
}

pub fn inspect(home: &Home, args: &InspectArgs) -> anyhow::Result<()> {
    let inspection = tables::inspect(home, &args.file, &aad(&args.aad_prefix))?;
    if args.json {
        return super::print_json(&inspection);
    }
    print!("{inspection}");
    Ok(())
}

fn aad(prefix: &Option<String>) -> DecryptOptions {
    DecryptOptions {
        aad_prefix: prefix.clone().map(String::into_bytes),
    }
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
