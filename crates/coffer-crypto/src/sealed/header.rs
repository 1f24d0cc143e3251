//! The Coffer header in front of the Tink stream, and the associated data it feeds.

use std::io::Read;

use super::tink::{self, HkdfHash, StreamParams};
use crate::{Error, KeyId};

/// The first bytes of every sealed file.
pub const MAGIC: [u8; 6] = *b"CFSEAL";
/// The only format version: AES-256-GCM segments, keys derived with HKDF-SHA256.
pub const VERSION: u8 = 1;
/// The smallest ciphertext segment size accepted, in bytes.
pub const MIN_SEGMENT_SIZE: u32 = 4 << 10;
/// The largest ciphertext segment size accepted: bounds the buffer a reader allocates.
pub const MAX_SEGMENT_SIZE: u32 = 16 << 20;
/// The ciphertext segment size new files get: 256 KiB keeps a segment in L2 cache between its
/// encryption and the copy or shift that follows, and makes per-segment costs negligible;
/// measured faster than 64 and 128 KiB (`benches/sealed_throughput.rs`).
pub const DEFAULT_SEGMENT_SIZE: u32 = 256 << 10;

/// Separates sealed-file keys from any other use of the same key material.
const DOMAIN: &[u8] = b"coffer/sealed-file/v1\0";
/// magic, version, key id length.
const FIXED_LEN: usize = MAGIC.len() + 2;
const DERIVED_KEY_LEN: usize = 32;
const WHAT: &str = "sealed header";

/// The Coffer header of a sealed file: which key, and how the stream is cut into segments.
///
/// Public: anyone can read it. It is authenticated indirectly, as part of the associated data
/// from which every segment key is derived.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    key_id: KeyId,
    segment_size: u32,
}

impl Header {
    /// A version-1 header; `segment_size` must lie in
    /// [`MIN_SEGMENT_SIZE`]`..=`[`MAX_SEGMENT_SIZE`].
    pub fn new(key_id: KeyId, segment_size: u32) -> Result<Self, Error> {
        check_segment_size(segment_size).map_err(Error::ApiMisuse)?;
        Ok(Self {
            key_id,
            segment_size,
        })
    }

    /// Parses a header from the start of `bytes`; returns it and the number of bytes it took.
    ///
    /// Bytes after the header are ignored. Exactly one byte string encodes each header, so
    /// `header.encode() == bytes[..consumed]`.
    pub fn parse(bytes: &[u8]) -> Result<(Self, usize), Error> {
        let total = fixed_part(bytes)?;
        let Some(rest) = bytes.get(FIXED_LEN..total) else {
            return Err(truncated(bytes.len(), total));
        };
        let id_len = rest.len().saturating_sub(4);
        let (id, size) = rest
            .split_at_checked(id_len)
            .ok_or_else(|| truncated(bytes.len(), total))?;
        let id = std::str::from_utf8(id)
            .map_err(|_| malformed("key id is not UTF-8".into()))
            .and_then(|id| KeyId::new(id).map_err(|e| malformed(format!("key id: {e}"))))?;
        let size: [u8; 4] = size.try_into().map_err(|_| truncated(bytes.len(), total))?;
        let segment_size = u32::from_be_bytes(size);
        check_segment_size(segment_size).map_err(malformed)?;
        Ok((
            Self {
                key_id: id,
                segment_size,
            },
            total,
        ))
    }

    /// The header's bytes, as written in front of the stream.
    pub fn encode(&self) -> Vec<u8> {
        let id = self.key_id.as_str().as_bytes();
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        // KeyId::new caps ids at 128 bytes, so the length fits a byte.
        out.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(id);
        out.extend_from_slice(&self.segment_size.to_be_bytes());
        out
    }

    /// Length of [`Self::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        FIXED_LEN
            .saturating_add(self.key_id.as_str().len())
            .saturating_add(4)
    }

    /// The format version (always [`VERSION`] for a parsed header).
    pub fn version(&self) -> u8 {
        VERSION
    }

    /// The id of the key the file is sealed under.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// Ciphertext bytes per segment (the first segment includes the 40-byte stream header).
    pub fn segment_size(&self) -> u32 {
        self.segment_size
    }

    /// The parameters of the Tink stream that follows this header.
    pub fn stream_params(&self) -> Result<StreamParams, Error> {
        StreamParams::new(HkdfHash::Sha256, DERIVED_KEY_LEN, self.segment_size)
    }

    /// The Tink associated data (and so the HKDF info) for a file with this header and `name`:
    /// `DOMAIN ‖ u32-BE(header length) ‖ header ‖ u64-BE(name length) ‖ name`.
    pub fn associated_data(&self, name: &str) -> Vec<u8> {
        let header = self.encode();
        let mut aad = Vec::with_capacity(
            DOMAIN
                .len()
                .saturating_add(header.len())
                .saturating_add(name.len())
                .saturating_add(12),
        );
        aad.extend_from_slice(DOMAIN);
        aad.extend_from_slice(
            &u32::try_from(header.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        aad.extend_from_slice(&header);
        aad.extend_from_slice(&(name.len() as u64).to_be_bytes());
        aad.extend_from_slice(name.as_bytes());
        aad
    }
}

/// Reads a header from `input`, consuming exactly its bytes and no more.
///
/// The magic and version are checked before the rest is read, so a stream that is not a
/// sealed file is rejected after 8 bytes.
pub fn read_header<R: Read>(mut input: R) -> Result<Header, Error> {
    let mut bytes = vec![0u8; FIXED_LEN];
    let got = tink::read_full(&mut input, &mut bytes)?;
    bytes.truncate(got);
    let total = fixed_part(&bytes)?;
    bytes.resize(total, 0);
    let rest = bytes.get_mut(FIXED_LEN..).unwrap_or_default();
    let got = tink::read_full(&mut input, rest)?;
    bytes.truncate(FIXED_LEN.saturating_add(got));
    Header::parse(&bytes).map(|(header, _)| header)
}

/// Checks the magic and version; returns the length of the whole header.
fn fixed_part(bytes: &[u8]) -> Result<usize, Error> {
    let magic = bytes.get(..MAGIC.len()).unwrap_or(bytes);
    if !MAGIC.starts_with(magic) {
        return Err(malformed("bad magic: not a Coffer sealed file".into()));
    }
    let Some(&[.., version, id_len]) = bytes.get(..FIXED_LEN) else {
        return Err(truncated(bytes.len(), FIXED_LEN));
    };
    if version != VERSION {
        return Err(malformed(format!(
            "unsupported version {version}; this build reads version {VERSION}"
        )));
    }
    Ok(FIXED_LEN
        .saturating_add(usize::from(id_len))
        .saturating_add(4))
}

pub(super) fn check_segment_size(size: u32) -> Result<(), String> {
    if (MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&size) {
        Ok(())
    } else {
        Err(format!(
            "segment size {size} outside {MIN_SEGMENT_SIZE}..={MAX_SEGMENT_SIZE}"
        ))
    }
}

fn malformed(reason: String) -> Error {
    Error::Malformed { what: WHAT, reason }
}

fn truncated(got: usize, need: usize) -> Error {
    malformed(format!("truncated: {got} of at least {need} bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header::new(KeyId::new("alpha.k1").unwrap(), 65536).unwrap()
    }

    #[test]
    fn encoding_is_byte_exact() {
        let bytes = header().encode();
        let mut expected = b"CFSEAL\x01\x08alpha.k1".to_vec();
        expected.extend_from_slice(&[0, 1, 0, 0]);
        assert_eq!(bytes, expected);
        assert_eq!(Header::parse(&bytes).unwrap(), (header(), bytes.len()));
    }

    #[test]
    fn every_proper_prefix_is_truncated_or_not_a_sealed_file() {
        let bytes = header().encode();
        for cut in 0..bytes.len() {
            let err = Header::parse(&bytes[..cut]).unwrap_err();
            assert!(err.to_string().contains("truncated"), "{cut}: {err}");
            let err = read_header(&bytes[..cut]).unwrap_err();
            assert!(err.to_string().contains("truncated"), "{cut}: {err}");
        }
        assert!(
            Header::parse(b"PK\x03\x04")
                .unwrap_err()
                .to_string()
                .contains("magic")
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let mut bytes = header().encode();
        bytes[6] = 2;
        assert!(
            Header::parse(&bytes)
                .unwrap_err()
                .to_string()
                .contains("version 2")
        );
        let mut bytes = header().encode();
        bytes[8] = b'/';
        assert!(
            Header::parse(&bytes)
                .unwrap_err()
                .to_string()
                .contains("key id")
        );
        let mut bytes = header().encode();
        bytes[7] = 0;
        assert!(Header::parse(&bytes).is_err());
        let mut bytes = header().encode();
        let n = bytes.len();
        bytes[n - 4..].copy_from_slice(&(MAX_SEGMENT_SIZE + 1).to_be_bytes());
        assert!(
            Header::parse(&bytes)
                .unwrap_err()
                .to_string()
                .contains("segment size")
        );
    }

    #[test]
    fn read_header_stops_at_the_header() {
        let mut bytes = header().encode();
        bytes.extend_from_slice(b"stream");
        let mut input = &bytes[..];
        assert_eq!(read_header(&mut input).unwrap(), header());
        assert_eq!(input, b"stream");
    }

    #[test]
    fn associated_data_binds_header_and_name() {
        let h = header();
        let other = Header::new(KeyId::new("alpha.k2").unwrap(), 65536).unwrap();
        assert_ne!(h.associated_data("a"), h.associated_data("b"));
        assert_ne!(h.associated_data("a"), other.associated_data("a"));
        assert!(h.associated_data("a").starts_with(DOMAIN));
    }
}
