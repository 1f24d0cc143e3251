//! A party's own tables: encrypted with Parquet Modular Encryption under its keyring keys,
//! decrypted and inspected with them. Outputs appear whole or not at all.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use coffer_crypto::KeySource;
use coffer_parquet::{
    DecryptOptions, DecryptSummary, EncryptOptions, Inspection, OutputFormat, Summary,
};

use crate::{AtomicFile, Error, Home, Keyring};

/// A plaintext table to encrypt.
#[derive(Debug, Clone, Copy)]
pub enum Plain<'a> {
    /// A `.csv` file with a header row (typed by the JSON `schema` file, if given) or a
    /// plaintext Parquet file.
    Path {
        path: &'a Path,
        schema: Option<&'a Path>,
    },
    /// Plaintext Parquet bytes (what the Python SDK passes for a DataFrame or a Table).
    Parquet(&'a [u8]),
}

/// Whether the file at `path` starts as Parquet does (`PAR1`, or `PARE` when encrypted).
pub fn is_parquet(path: &Path) -> Result<bool, Error> {
    let mut magic = [0u8; 4];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut magic))
        .map_err(Error::io(path))?;
    Ok(n == 4 && (&magic == b"PAR1" || &magic == b"PARE"))
}

fn open(path: &Path) -> Result<File, Error> {
    File::open(path).map_err(Error::io(path))
}

fn keys(home: &Home) -> Result<Arc<dyn KeySource>, Error> {
    Ok(Arc::new(Keyring::open(home)?))
}

/// Encrypts `input` to `output` with this home's keys.
pub fn encrypt(
    home: &Home,
    input: Plain<'_>,
    output: &Path,
    opts: &EncryptOptions,
) -> Result<Summary, Error> {
    let keyring = Keyring::open(home)?;
    let mut out = AtomicFile::create(output)?;
    let summary = match input {
        Plain::Path { path, schema } if is_parquet(path)? => {
            if schema.is_some() {
                return Err(Error::InvalidArgument(
                    "--schema applies to CSV input; Parquet input carries its schema".into(),
                ));
            }
            let (schema, batches) = coffer_parquet::read_parquet(open(path)?)?;
            coffer_parquet::encrypt_batches(schema, batches, &mut out, &keyring, opts)?
        }
        Plain::Path { path, schema } => {
            let schema = schema.map(coffer_parquet::load_schema_file).transpose()?;
            let (schema, batches) = coffer_parquet::read_csv(path, schema)?;
            coffer_parquet::encrypt_batches(schema, batches, &mut out, &keyring, opts)?
        }
        Plain::Parquet(bytes) => {
            let (schema, batches) =
                coffer_parquet::read_parquet(bytes::Bytes::copy_from_slice(bytes))?;
            coffer_parquet::encrypt_batches(schema, batches, &mut out, &keyring, opts)?
        }
    };
    out.commit()?;
    Ok(summary)
}

/// Decrypts the encrypted Parquet file at `input` into `output` (CSV or plaintext Parquet).
pub fn decrypt(
    home: &Home,
    input: &Path,
    output: impl std::io::Write + Send,
    format: OutputFormat,
    opts: &DecryptOptions,
) -> Result<DecryptSummary, Error> {
    Ok(coffer_parquet::decrypt(
        open(input)?,
        output,
        format,
        keys(home)?,
        opts,
    )?)
}

/// [`decrypt`] into the file `output`, whole or not at all.
pub fn decrypt_to(
    home: &Home,
    input: &Path,
    output: &Path,
    format: OutputFormat,
    opts: &DecryptOptions,
) -> Result<DecryptSummary, Error> {
    let mut out = AtomicFile::create(output)?;
    let summary = decrypt(home, input, &mut out, format, opts)?;
    out.commit()?;
    Ok(summary)
}

/// What the file at `path` is and how it is protected, with this home's keys.
pub fn inspect(home: &Home, path: &Path, opts: &DecryptOptions) -> Result<Inspection, Error> {
    Ok(coffer_parquet::inspect(
        &open(path)?,
        Some(keys(home)?),
        opts,
    )?)
}
