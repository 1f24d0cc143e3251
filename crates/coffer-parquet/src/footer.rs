//! The tail of a Parquet file, read without `parquet` and without keys.
//!
//! `PAR1 … footer len(4) PAR1` is a plaintext footer (unencrypted, or PME with a signed
//! plaintext footer); `PARE … crypto-metadata+encrypted-footer len(4) PARE` is PME with an
//! encrypted footer.

use parquet::file::reader::ChunkReader;

use crate::thrift::{self, FooterCrypto};
use crate::{Error, Result};

const MAGIC_PLAIN: &[u8; 4] = b"PAR1";
const MAGIC_ENCRYPTED: &[u8; 4] = b"PARE";
/// Nonce and tag that follow a signed plaintext footer.
const SIGNATURE_LEN: usize = 12 + 16;
/// Length prefix, nonce and tag around an encrypted footer.
const ENCRYPTED_OVERHEAD: usize = 4 + 12 + 16;

/// What the tail says the file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tail {
    /// A plaintext footer without encryption.
    Plain,
    /// A plaintext footer with the crypto fields set.
    PlaintextFooter(FooterCrypto),
    /// An encrypted footer and the `FileCryptoMetaData` before it.
    EncryptedFooter(FooterCrypto),
}

/// Reads and classifies the tail. [`Error::NotParquet`] when the magic is missing, and
/// [`Error::Corrupt`] when the footer length or crypto metadata is inconsistent.
pub(crate) fn read_tail<R: ChunkReader>(input: &R) -> Result<Tail> {
    let len = input.len();
    if len < 12 {
        return Err(Error::NotParquet {
            reason: format!("{len} bytes"),
        });
    }
    let head = get(input, 0, 4)?;
    let tail = get(input, len.saturating_sub(8), 8)?;
    let (len_bytes, magic) = tail.split_at(4);
    let encrypted = match (head.as_ref(), magic) {
        (h, m) if h == MAGIC_PLAIN && m == MAGIC_PLAIN => false,
        (h, m) if h == MAGIC_ENCRYPTED && m == MAGIC_ENCRYPTED => true,
        _ => {
            return Err(Error::NotParquet {
                reason: "no PAR1 or PARE magic at both ends".into(),
            });
        }
    };
    let footer_len = u32::from_le_bytes(
        len_bytes
            .try_into()
            .map_err(|_| Error::Internal("tail split".into()))?,
    );
    let footer_len = usize::try_from(footer_len).map_err(|_| Error::Internal("usize".into()))?;
    let available = len.saturating_sub(12);
    if u64::try_from(footer_len).map_or(true, |f| f > available) {
        return Err(Error::Corrupt(format!(
            "footer length {footer_len} does not fit in a {len}-byte file (truncated?)"
        )));
    }
    let start = len.saturating_sub(8).saturating_sub(footer_len as u64);
    let footer = get(input, start, footer_len)?;
    if encrypted {
        let (fc, used) = thrift::file_crypto_metadata(&footer)?;
        if footer_len.saturating_sub(used) < ENCRYPTED_OVERHEAD {
            return Err(Error::Corrupt(
                "encrypted footer shorter than its nonce and tag".into(),
            ));
        }
        Ok(Tail::EncryptedFooter(fc))
    } else {
        match thrift::plaintext_footer_crypto(&footer)? {
            None => Ok(Tail::Plain),
            Some(_) if footer_len < SIGNATURE_LEN => Err(Error::Corrupt(
                "signed footer shorter than its signature".into(),
            )),
            Some(fc) => Ok(Tail::PlaintextFooter(fc)),
        }
    }
}

fn get<R: ChunkReader>(input: &R, start: u64, len: usize) -> Result<bytes::Bytes> {
    input.get_bytes(start, len).map_err(|e| match e {
        parquet::errors::ParquetError::External(inner) => {
            match inner.downcast::<std::io::Error>() {
                Ok(io) => Error::Io(*io),
                Err(other) => Error::Corrupt(other.to_string()),
            }
        }
        other => Error::Corrupt(other.to_string()),
    })
}

/// Checks what a reader can know before `parquet` sees the file: not Parquet, an algorithm we
/// lack, an AAD prefix that must be supplied, or a footer too short to hold its nonce and tag
/// (which parquet 59 would panic on).
pub(crate) fn preflight<R: ChunkReader>(input: &R, aad_prefix_given: bool) -> Result<Tail> {
    let tail = read_tail(input)?;
    if let Tail::EncryptedFooter(fc) | Tail::PlaintextFooter(fc) = &tail {
        if fc.algorithm.name != "AES_GCM_V1" {
            return Err(Error::UnsupportedAlgorithm {
                algorithm: fc.algorithm.name.into(),
            });
        }
        if fc.algorithm.supply_aad_prefix && !aad_prefix_given {
            return Err(Error::AadPrefixRequired);
        }
    }
    Ok(tail)
}
