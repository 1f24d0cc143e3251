//! The crate's one error type.

/// Everything that can go wrong in `coffer-crypto`.
///
/// Variants separate *who* failed: the input (tampered, truncated, malformed), the caller (a
/// missing key, a bad argument), or this library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key id was asked for that the key source does not hold.
    #[error("key not found: {id}")]
    KeyNotFound { id: String },
    /// Key material of the wrong length or form.
    #[error("invalid key: {reason}")]
    InvalidKey { reason: String },
    /// A key id that is empty, too long or contains characters outside `[A-Za-z0-9._:@-]`.
    #[error("invalid key id {id:?}: {reason}")]
    InvalidKeyId { id: String, reason: &'static str },
    /// Input that does not parse: names the structure and what was wrong with it.
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    /// An authentication tag did not verify: the data was modified, truncated, reordered, bound
    /// to another name, or encrypted under another key.
    #[error("authentication failed: {what}")]
    AuthenticationFailed { what: String },
    /// The caller used the API in a way it does not allow.
    #[error("API misuse: {0}")]
    ApiMisuse(String),
    /// Reading or writing a stream failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A failure inside the cryptographic library that no input should cause.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The failed check's stable name.
    pub fn check(&self) -> &'static str {
        match self {
            Self::KeyNotFound { .. } => "key_not_found",
            Self::InvalidKey { .. } => "invalid_key",
            Self::InvalidKeyId { .. } => "key_id",
            Self::Malformed { .. } => "malformed",
            Self::AuthenticationFailed { .. } => "authentication",
            Self::ApiMisuse(_) => "api_misuse",
            Self::Io(_) => "io",
            Self::Internal(_) => "internal",
        }
    }
}
