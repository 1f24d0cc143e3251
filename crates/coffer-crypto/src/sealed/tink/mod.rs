//! Tink's AES-GCM-HKDF streaming AEAD, byte-compatible with Tink's `AesGcmHkdfStreaming`.
//!
//! A stream is `header ‖ segment_0 ‖ … ‖ segment_n-1`:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | header length `H = 1 + K + 7` |
//! | `K` | salt, fresh and random per stream (`K` = derived key length, 16 or 32) |
//! | 7 | nonce prefix, fresh and random per stream |
//! | … | segments: AES-GCM ciphertext ‖ 16-byte tag |
//!
//! The segment key is `HKDF(hash, ikm, salt, info = associated data)` of `K` bytes, so the
//! associated data is authenticated by every segment without being stored. Segment `i` is
//! sealed under nonce `prefix ‖ u32-BE(i) ‖ last`, where `last` is 1 for the final segment and 0
//! otherwise: segments cannot be reordered, dropped from the end or appended to without a tag
//! failing. Every segment holds `S` ciphertext bytes (`S` = ciphertext segment size, plaintext
//! `S - 16`) except the last, which holds 16 to `S` bytes; segment 0 is shorter by `H`, so that
//! the header and segment 0 together fill `S` bytes. Segment boundaries are therefore a function
//! of the stream length alone, which gives random access.
//!
//! [`SegmentEncrypter`] and [`SegmentDecrypter`] work one segment at a time, in place;
//! [`encrypt`] and [`decrypt`] run whole streams over [`std::io::Read`] and
//! [`std::io::Write`].

mod segment;
mod stream;

pub use segment::{SegmentDecrypter, SegmentEncrypter};
pub(crate) use stream::read_full;
pub use stream::{decrypt, encrypt, encrypt_with, read_stream_header};

use aws_lc_rs::hkdf;

use crate::Error;

/// Length of each segment's AES-GCM tag.
pub const TAG_LEN: usize = 16;
/// Length of the random nonce prefix in the stream header.
pub const NONCE_PREFIX_LEN: usize = 7;
/// The largest number of segments a stream can have: segment numbers are 32-bit.
pub const MAX_SEGMENTS: u64 = 1 << 32;

/// The hash used by HKDF to derive each stream's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HkdfHash {
    /// HKDF-SHA1: only for reading Tink streams that were made with it.
    Sha1,
    /// HKDF-SHA256.
    Sha256,
    /// HKDF-SHA512.
    Sha512,
}

impl HkdfHash {
    pub(crate) fn algorithm(self) -> hkdf::Algorithm {
        match self {
            Self::Sha1 => hkdf::HKDF_SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => hkdf::HKDF_SHA256,
            Self::Sha512 => hkdf::HKDF_SHA512,
        }
    }
}

/// The parameters of a Tink AES-GCM-HKDF stream (Tink's key parameters minus the key itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamParams {
    hkdf_hash: HkdfHash,
    derived_key_len: usize,
    ciphertext_segment_size: usize,
    header_len: usize,
    plaintext_segment_size: usize,
    first_plaintext_segment_size: usize,
}

impl StreamParams {
    /// Checks the parameters as Tink does: a derived key of 16 or 32 bytes, and segments large
    /// enough that segment 0 holds at least one plaintext byte after the header and tag.
    pub fn new(
        hkdf_hash: HkdfHash,
        derived_key_len: usize,
        ciphertext_segment_size: u32,
    ) -> Result<Self, Error> {
        let header_len = match derived_key_len {
            16 => 24,
            32 => 40,
            n => {
                return Err(Error::ApiMisuse(format!(
                    "derived key length {n}; Tink allows 16 or 32"
                )));
            }
        };
        let ciphertext_segment_size = usize::try_from(ciphertext_segment_size)
            .map_err(|_| Error::ApiMisuse("segment size does not fit in memory".into()))?;
        let plaintext_segment_size = ciphertext_segment_size.checked_sub(TAG_LEN);
        let first = plaintext_segment_size.and_then(|p| p.checked_sub(header_len));
        match (plaintext_segment_size, first) {
            (Some(plaintext_segment_size), Some(first)) if first > 0 => Ok(Self {
                hkdf_hash,
                derived_key_len,
                ciphertext_segment_size,
                header_len,
                plaintext_segment_size,
                first_plaintext_segment_size: first,
            }),
            _ => Err(Error::ApiMisuse(format!(
                "ciphertext segment size {ciphertext_segment_size} must exceed header \
                 ({header_len}) plus tag ({TAG_LEN})"
            ))),
        }
    }

    /// The HKDF hash.
    pub fn hkdf_hash(&self) -> HkdfHash {
        self.hkdf_hash
    }

    /// Length of the derived AES key (and of the salt) in bytes.
    pub fn derived_key_len(&self) -> usize {
        self.derived_key_len
    }

    /// Ciphertext bytes in every segment but the last (segment 0 counts the header).
    pub fn ciphertext_segment_size(&self) -> usize {
        self.ciphertext_segment_size
    }

    /// Length of the stream header: `1 + derived_key_len + 7`.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// Plaintext bytes in every full segment after segment 0.
    pub fn plaintext_segment_size(&self) -> usize {
        self.plaintext_segment_size
    }

    /// Plaintext bytes in segment 0 when it is full (shorter by the header).
    pub fn first_plaintext_segment_size(&self) -> usize {
        self.first_plaintext_segment_size
    }

    /// Plaintext capacity of segment `index`.
    pub fn plaintext_segment_len(&self, index: u64) -> usize {
        if index == 0 {
            self.first_plaintext_segment_size
        } else {
            self.plaintext_segment_size
        }
    }

    /// Ciphertext length (with tag) of segment `index` when it is full.
    pub fn ciphertext_segment_len(&self, index: u64) -> usize {
        if index == 0 {
            self.ciphertext_segment_size.saturating_sub(self.header_len)
        } else {
            self.ciphertext_segment_size
        }
    }

    /// Where segment `index` starts, counted from the start of the stream header.
    pub fn segment_offset(&self, index: u64) -> Option<u64> {
        if index == 0 {
            u64::try_from(self.header_len).ok()
        } else {
            index.checked_mul(u64::try_from(self.ciphertext_segment_size).ok()?)
        }
    }

    /// Where segment `index`'s plaintext starts in the whole plaintext.
    pub fn plaintext_offset(&self, index: u64) -> Option<u64> {
        match index.checked_sub(1) {
            None => Some(0),
            Some(before) => before
                .checked_mul(u64::try_from(self.plaintext_segment_size).ok()?)?
                .checked_add(u64::try_from(self.first_plaintext_segment_size).ok()?),
        }
    }

    /// Which segment holds plaintext byte `pos`, and where in that segment it is.
    pub fn locate(&self, pos: u64) -> Option<(u64, usize)> {
        let first = u64::try_from(self.first_plaintext_segment_size).ok()?;
        let size = u64::try_from(self.plaintext_segment_size).ok()?;
        match pos.checked_sub(first) {
            None => Some((0, usize::try_from(pos).ok()?)),
            Some(rest) => {
                let index = rest.checked_div(size)?.checked_add(1)?;
                let within = usize::try_from(rest.checked_rem(size)?).ok()?;
                Some((index, within))
            }
        }
    }

    /// The stream length (header included) Tink produces for `plaintext_len` bytes, or `None`
    /// if that needs more than [`MAX_SEGMENTS`] segments.
    pub fn ciphertext_len(&self, plaintext_len: u64) -> Option<u64> {
        let last_index = match self.locate(plaintext_len)? {
            // A plaintext that exactly fills segment k ends there rather than opening an empty
            // segment k+1, as Tink's encrypter does.
            (index, 0) if index > 0 => index.checked_sub(1)?,
            (index, _) => index,
        };
        if last_index >= MAX_SEGMENTS {
            return None;
        }
        let tags = last_index.checked_add(1)?.checked_mul(TAG_LEN as u64)?;
        plaintext_len
            .checked_add(tags)?
            .checked_add(u64::try_from(self.header_len).ok()?)
    }

    /// Splits a stream of `stream_len` bytes (header included) into segments.
    ///
    /// A length that leaves a final segment shorter than a tag can only come from truncation or
    /// appended bytes, so it is an authentication failure naming that segment.
    pub fn layout(&self, stream_len: u64) -> Result<Layout, Error> {
        let header_len = u64::try_from(self.header_len).unwrap_or(u64::MAX);
        let segment = u64::try_from(self.ciphertext_segment_size).unwrap_or(u64::MAX);
        if stream_len < header_len {
            return Err(Error::Malformed {
                what: "stream header",
                reason: format!("truncated: {stream_len} of {header_len} bytes"),
            });
        }
        let full = stream_len.checked_div(segment).unwrap_or(0);
        let rem = stream_len.checked_rem(segment).unwrap_or(0);
        let (segments, last_len) = if rem == 0 {
            (full, segment)
        } else {
            (full.saturating_add(1), rem)
        };
        let last_index = segments.saturating_sub(1);
        let last_len = if last_index == 0 {
            last_len.saturating_sub(header_len)
        } else {
            last_len
        };
        if last_len < TAG_LEN as u64 {
            return Err(Error::AuthenticationFailed {
                what: format!(
                    "segment {last_index}: stream truncated or extended ({last_len} bytes, \
                     shorter than a tag)"
                ),
            });
        }
        if segments > MAX_SEGMENTS {
            return Err(Error::Malformed {
                what: "sealed stream",
                reason: format!("{segments} segments; at most {MAX_SEGMENTS} allowed"),
            });
        }
        let overhead = segments
            .saturating_mul(TAG_LEN as u64)
            .saturating_add(header_len);
        Ok(Layout {
            segments,
            plaintext_len: stream_len.saturating_sub(overhead),
            last_ciphertext_len: usize::try_from(last_len).unwrap_or(usize::MAX),
        })
    }
}

/// How a stream of a given length splits into segments (see [`StreamParams::layout`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Number of segments, at least 1.
    pub segments: u64,
    /// Total plaintext bytes.
    pub plaintext_len: u64,
    /// Ciphertext bytes (with tag) of the last segment.
    pub last_ciphertext_len: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(segment: u32) -> StreamParams {
        StreamParams::new(HkdfHash::Sha256, 32, segment).unwrap()
    }

    #[test]
    fn parameters_are_checked_like_tink() {
        assert!(StreamParams::new(HkdfHash::Sha256, 24, 4096).is_err());
        // Header 40 + tag 16: segment 0 needs room for one plaintext byte.
        assert!(StreamParams::new(HkdfHash::Sha256, 32, 56).is_err());
        assert_eq!(params(57).first_plaintext_segment_size(), 1);
    }

    #[test]
    fn layout_inverts_ciphertext_len() {
        let p = params(100); // first segment 44 plaintext bytes, then 84.
        for len in 0..1000u64 {
            let stream_len = p.ciphertext_len(len).unwrap();
            let layout = p.layout(stream_len).unwrap();
            assert_eq!(layout.plaintext_len, len, "plaintext length {len}");
            let (index, within) = p.locate(len.saturating_sub(1)).unwrap();
            assert_eq!(layout.segments, index + 1, "segments for {len}");
            if len > 0 {
                assert_eq!(layout.last_ciphertext_len, within + 1 + TAG_LEN);
            }
        }
    }

    #[test]
    fn locate_walks_segments() {
        let p = params(100);
        assert_eq!(p.locate(0), Some((0, 0)));
        assert_eq!(p.locate(43), Some((0, 43)));
        assert_eq!(p.locate(44), Some((1, 0)));
        assert_eq!(p.locate(44 + 84), Some((2, 0)));
        assert_eq!(p.segment_offset(2), Some(200));
        for index in 0..5 {
            let start = p.plaintext_offset(index).unwrap();
            assert_eq!(p.locate(start), Some((index, 0)));
        }
    }

    #[test]
    fn tail_shorter_than_a_tag_is_an_authentication_failure() {
        let p = params(100);
        assert!(matches!(p.layout(39), Err(Error::Malformed { .. })));
        assert!(matches!(
            p.layout(40 + 15),
            Err(Error::AuthenticationFailed { .. })
        ));
        assert!(matches!(
            p.layout(100 + 5),
            Err(Error::AuthenticationFailed { .. })
        ));
        assert_eq!(p.layout(100 + 16).unwrap().segments, 2);
    }
}
