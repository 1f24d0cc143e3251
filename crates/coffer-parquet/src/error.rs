//! The crate's one error type, and the one place that turns `parquet`'s string errors into it.

#[cfg(feature = "tables")]
use parquet::errors::ParquetError;

/// Everything that can go wrong in `coffer-parquet`.
///
/// Variants say *who* failed:
/// - the file or its key metadata (attacker or peer): [`Error::FooterDecryption`],
///   [`Error::ColumnDecryption`], [`Error::KeyUnwrap`], [`Error::WrappedKey`],
///   [`Error::KeyMaterial`], [`Error::Corrupt`], [`Error::NotParquet`];
/// - features we do not implement: [`Error::UnsupportedAlgorithm`], [`Error::Unsupported`];
/// - the caller: [`Error::KeyNotFound`], [`Error::AadPrefixRequired`], [`Error::UnknownColumn`],
///   [`Error::InvalidInput`], [`Error::SchemaFile`], [`Error::ApiMisuse`];
/// - the platform or us: [`Error::Io`], [`Error::Internal`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key source does not hold a key the file needs (a master key, or a plain key id).
    #[error("key not found: {id}")]
    KeyNotFound { id: String },
    /// A wrapped key did not authenticate under the named master key (or key-encryption key):
    /// the key is not the one the file was written with, or the key material was modified.
    #[error(
        "failed to unwrap a key with {master_key_id}: authentication failed \
         (wrong key or tampered key material)"
    )]
    KeyUnwrap { master_key_id: String },
    /// A wrapped key that is not base64 or too short to hold a nonce and a tag.
    #[error("malformed wrapped key: {reason}")]
    WrappedKey { reason: String },
    /// Key metadata that is neither a plain key id nor well-formed `PKMT1` key material.
    #[error("malformed key material: {reason}")]
    KeyMaterial { reason: String },
    /// The footer did not decrypt, or a plaintext footer's signature did not verify: wrong
    /// footer key, wrong AAD prefix, or a modified footer.
    #[error("the footer failed to decrypt: {reason}")]
    FooterDecryption { reason: String },
    /// A column's metadata or pages did not decrypt: wrong column key or modified data.
    #[error("column {column} failed to decrypt (wrong column key or tampered data)")]
    ColumnDecryption { column: String },
    /// The file was written with an AAD prefix it does not store; the reader must supply it.
    #[error(
        "the file was encrypted with an AAD prefix that is not stored in it; \
         supply the AAD prefix to read it"
    )]
    AadPrefixRequired,
    /// An encryption algorithm this implementation cannot decrypt (arrow-rs has no
    /// `AES_GCM_CTR_V1`).
    #[error("unsupported algorithm: {algorithm}")]
    UnsupportedAlgorithm { algorithm: String },
    /// A valid feature of the format that is not implemented, such as external key material
    /// or 192-bit data keys.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The input is not a Parquet file at all.
    #[error("not a Parquet file: {reason}")]
    NotParquet { reason: String },
    /// A Parquet file that is malformed, truncated or modified in a way no decryption check
    /// names more precisely.
    #[error("corrupt or tampered Parquet file: {0}")]
    Corrupt(String),
    /// A column named in encryption options that the schema does not have.
    #[error("no column named {column:?} in the schema")]
    UnknownColumn { column: String },
    /// The caller's input data (CSV, plaintext Parquet, record batches) could not be read.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A `--schema` file that does not parse; see [`crate::parse_schema_file`].
    #[error("invalid schema file: {0}")]
    SchemaFile(String),
    /// Options that contradict each other or the format.
    #[error("API misuse: {0}")]
    ApiMisuse(String),
    /// Reading or writing a stream failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A failure that no input should cause.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The failed check's stable name (as the CLI and the Python package report it).
    pub fn check(&self) -> &'static str {
        match self {
            Self::KeyNotFound { .. } => "key_not_found",
            Self::KeyUnwrap { .. } => "key_unwrap",
            Self::WrappedKey { .. } => "wrapped_key",
            Self::KeyMaterial { .. } => "key_material",
            Self::FooterDecryption { .. } => "footer_decryption",
            Self::ColumnDecryption { .. } => "column_decryption",
            Self::AadPrefixRequired => "aad_prefix_required",
            Self::UnsupportedAlgorithm { .. } => "unsupported_algorithm",
            Self::Unsupported(_) => "unsupported",
            Self::NotParquet { .. } => "not_parquet",
            Self::Corrupt(_) => "corrupt",
            Self::UnknownColumn { .. } => "unknown_column",
            Self::InvalidInput(_) => "invalid_input",
            Self::SchemaFile(_) => "schema_file",
            Self::ApiMisuse(_) => "api_misuse",
            Self::Io(_) => "io",
            Self::Internal(_) => "internal",
        }
    }

    /// Whether the input was refused (a file or key that does not check out), rather than
    /// the caller's arguments or I/O failing.
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self,
            Self::Io(_)
                | Self::InvalidInput(_)
                | Self::SchemaFile(_)
                | Self::UnknownColumn { .. }
                | Self::ApiMisuse(_)
        )
    }
}

impl From<coffer_crypto::Error> for Error {
    fn from(e: coffer_crypto::Error) -> Self {
        match e {
            coffer_crypto::Error::KeyNotFound { id } => Error::KeyNotFound { id },
            coffer_crypto::Error::Io(e) => Error::Io(e),
            coffer_crypto::Error::InvalidKey { reason } => Error::KeyMaterial {
                reason: format!("invalid key: {reason}"),
            },
            coffer_crypto::Error::InvalidKeyId { id, reason } => Error::KeyMaterial {
                reason: format!("invalid key id {id:?}: {reason}"),
            },
            coffer_crypto::Error::ApiMisuse(m) => Error::ApiMisuse(m),
            other => Error::Internal(other.to_string()),
        }
    }
}

#[cfg(feature = "tables")]
/// What a `parquet` error was about, so that one message can be mapped to a typed variant.
///
/// `parquet` reports everything as `ParquetError::General(String)`; these substrings are the
/// messages of parquet 59 (see `file/metadata/thrift/encryption.rs` and
/// `file/serialized_reader.rs`). Tests in `tests/parquet_testing.rs` and `tests/tamper.rs` pin
/// each mapping, so an upgrade that rewords a message fails loudly.
pub(crate) fn from_parquet(e: ParquetError, leaf_names: &[String]) -> Error {
    from_message(e.to_string(), leaf_names)
}

#[cfg(feature = "tables")]
/// [`from_parquet`] for errors that reached us as text (through `ArrowError`).
pub(crate) fn from_message(msg: String, leaf_names: &[String]) -> Error {
    if msg.contains("AAD prefix that is not stored") {
        Error::AadPrefixRequired
    } else if msg.contains("AES_GCM_CTR_V1") {
        Error::UnsupportedAlgorithm {
            algorithm: "AES_GCM_CTR_V1".into(),
        }
    } else if msg.contains("unable to decrypt parquet footer") {
        Error::FooterDecryption {
            reason: "wrong footer key, wrong AAD prefix, or a modified footer".into(),
        }
    } else if msg.contains("Footer signature verification failed") {
        Error::FooterDecryption {
            reason: "the plaintext footer's signature did not verify (wrong footer key, wrong \
                     AAD prefix, or a modified footer)"
                .into(),
        }
    } else if msg.contains("unsupported key length") {
        Error::Unsupported(format!(
            "a data key length arrow-rs cannot use (only 128 and 256 bits): {msg}"
        ))
    } else if let Some(column) = quoted_column(&msg) {
        Error::ColumnDecryption { column }
    } else if let Some(column) = page_header_column(&msg, leaf_names) {
        Error::ColumnDecryption { column }
    } else {
        Error::Corrupt(msg)
    }
}

#[cfg(feature = "tables")]
/// `Unable to decrypt column 'a.b', perhaps the column key is wrong?`
fn quoted_column(msg: &str) -> Option<String> {
    let rest = msg.split("Unable to decrypt column '").nth(1)?;
    let end = rest.find("',")?;
    rest.get(..end).map(str::to_owned)
}

#[cfg(feature = "tables")]
/// `Error decrypting page header for column 3, decryption key may be wrong`
fn page_header_column(msg: &str, leaf_names: &[String]) -> Option<String> {
    let rest = msg
        .split("Error decrypting page header for column ")
        .nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let ordinal: usize = digits.parse().ok()?;
    Some(
        leaf_names
            .get(ordinal)
            .cloned()
            .unwrap_or_else(|| format!("#{ordinal}")),
    )
}

#[cfg(feature = "tables")]
/// Runs `f`, turning a panic inside `parquet` or `arrow` into [`Error::Corrupt`].
///
/// parquet 59 still has arithmetic on untrusted lengths (for example in its GCM block decryptor
/// and in plaintext-footer signature checks) that panics on crafted input. Our own code is
/// panic-free by lint; this is the containment for theirs.
pub(crate) fn contain_panics<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let detail = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(Error::Corrupt(format!(
                "the Parquet reader rejected malformed input while {what} ({detail})"
            )))
        }
    }
}

#[cfg(all(test, feature = "tables"))]
mod tests {
    use super::*;

    #[test]
    fn parquet_messages_map_to_typed_errors() {
        let names = vec!["a".to_owned(), "b.c".to_owned()];
        let g = |m: &str| from_parquet(ParquetError::General(m.into()), &names);
        assert!(matches!(
            g("Parquet file was encrypted with an AAD prefix that is not stored in the file, x"),
            Error::AadPrefixRequired
        ));
        assert!(matches!(
            g("Provided footer key and AAD were unable to decrypt parquet footer"),
            Error::FooterDecryption { .. }
        ));
        assert!(matches!(
            g("The AES_GCM_CTR_V1 encryption algorithm is not yet supported"),
            Error::UnsupportedAlgorithm { .. }
        ));
        match g("Unable to decrypt column 'b.c', perhaps the column key is wrong?") {
            Error::ColumnDecryption { column } => assert_eq!(column, "b.c"),
            e => panic!("{e}"),
        }
        match g("Error decrypting page header for column 1, decryption key may be wrong") {
            Error::ColumnDecryption { column } => assert_eq!(column, "b.c"),
            e => panic!("{e}"),
        }
        match g("Error decrypting page header for column 9, decryption key may be wrong") {
            Error::ColumnDecryption { column } => assert_eq!(column, "#9"),
            e => panic!("{e}"),
        }
        assert!(matches!(g("EOF: out of bytes"), Error::Corrupt(_)));
    }

    #[test]
    fn panics_are_contained() {
        let r: Result<()> = contain_panics("testing", || panic!("boom"));
        match r {
            Err(Error::Corrupt(m)) => assert!(m.contains("boom") && m.contains("testing")),
            other => panic!("{other:?}"),
        }
    }
}
