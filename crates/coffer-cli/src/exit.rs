//! Errors to exit codes: 1 when input was refused (tampered, wrong key, malformed, missing key),
//! 2 for usage and I/O errors.

/// Exit code for "refused or verification failed".
pub const REFUSED: u8 = 1;
/// Exit code for usage and I/O errors.
pub const USAGE_OR_IO: u8 = 2;

/// A usage error raised after argument parsing (a combination clap cannot express).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// A refusal raised by the CLI itself, with its message (exit 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The exit code for `err`: the first typed error in its chain decides.
pub fn code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<Usage>() || cause.is::<std::io::Error>() {
            return USAGE_OR_IO;
        }
        if cause.is::<Refused>() {
            return REFUSED;
        }
        if let Some(e) = cause.downcast_ref::<coffer_client::Error>() {
            return client_code(e);
        }
        if let Some(e) = cause.downcast_ref::<coffer_crypto::Error>() {
            return crypto_code(e);
        }
        if let Some(e) = cause.downcast_ref::<coffer_parquet::Error>() {
            return parquet_code(e);
        }
        if let Some(e) = cause.downcast_ref::<coffer_tee::Error>() {
            return tee_code(e);
        }
        if let Some(e) = cause.downcast_ref::<coffer_attest::Error>() {
            return attest_code(e);
        }
        if let Some(e) = cause.downcast_ref::<coffer_manifest::Error>() {
            return manifest_code(e);
        }
    }
    REFUSED
}

fn client_code(e: &coffer_client::Error) -> u8 {
    if e.is_refusal() { REFUSED } else { USAGE_OR_IO }
}

fn crypto_code(e: &coffer_crypto::Error) -> u8 {
    use coffer_crypto::Error as E;
    match e {
        E::Io(_) | E::ApiMisuse(_) | E::InvalidKeyId { .. } => USAGE_OR_IO,
        _ => REFUSED,
    }
}

fn parquet_code(e: &coffer_parquet::Error) -> u8 {
    if e.is_refusal() { REFUSED } else { USAGE_OR_IO }
}

/// Producing evidence: the TEE interface is missing, unreadable or misbehaving.
fn tee_code(e: &coffer_tee::Error) -> u8 {
    use coffer_tee::Error as E;
    match e {
        E::Attest(a) => attest_code(a),
        _ => USAGE_OR_IO,
    }
}

/// Attestation errors that escape as errors (not as a verification verdict) are the caller's:
/// bad arguments, missing inputs, unsupported features.
fn attest_code(e: &coffer_attest::Error) -> u8 {
    use coffer_attest::Error as E;
    match e {
        E::Malformed { .. } | E::Missing(_) | E::Unsupported(_) | E::Internal(_) => USAGE_OR_IO,
        _ => REFUSED,
    }
}

/// Manifest errors: an invalid manifest or signatures file, or a signer that is not a party, is
/// refused; a missing predecessor or inconsistent arguments are the caller's.
fn manifest_code(e: &coffer_manifest::Error) -> u8 {
    use coffer_manifest::Error as E;
    match e {
        E::PredecessorRequired { .. } | E::NotAnUpdate | E::ApiMisuse(_) => USAGE_OR_IO,
        _ => REFUSED,
    }
}

/// `err` with its causes, one line.
pub fn render(err: &anyhow::Error) -> String {
    format!("{err:#}")
}
