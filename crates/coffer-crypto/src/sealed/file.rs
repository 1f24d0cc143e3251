//! Sealing and unsealing whole files: the Coffer header, then a Tink stream.

use std::io::{Read, Write};

use super::header::{DEFAULT_SEGMENT_SIZE, Header, check_segment_size, read_header};
use super::tink::{self, SegmentDecrypter, SegmentEncrypter, StreamParams, TAG_LEN};
use crate::{Error, KeyId, KeySource, SecretKey};

/// Choices a writer makes; readers take them from the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealOptions {
    segment_size: u32,
}

impl Default for SealOptions {
    fn default() -> Self {
        Self {
            segment_size: DEFAULT_SEGMENT_SIZE,
        }
    }
}

impl SealOptions {
    /// Sets the ciphertext segment size, which must lie between
    /// [`MIN_SEGMENT_SIZE`](super::MIN_SEGMENT_SIZE) and
    /// [`MAX_SEGMENT_SIZE`](super::MAX_SEGMENT_SIZE) inclusive.
    pub fn with_segment_size(self, segment_size: u32) -> Result<Self, Error> {
        check_segment_size(segment_size).map_err(Error::ApiMisuse)?;
        Ok(Self { segment_size })
    }

    /// The ciphertext segment size.
    pub fn segment_size(&self) -> u32 {
        self.segment_size
    }
}

/// Seals one file segment by segment into caller-owned buffers: the fastest way to seal, with
/// no copy beyond what the caller does.
///
/// Write [`Sealer::header`] first, then for each segment fill a buffer with exactly
/// [`Sealer::next_segment_len`] plaintext bytes (the last segment: at most that many), call
/// [`Sealer::seal_segment_in_place`] and write the ciphertext followed by the returned tag.
#[derive(Debug)]
pub struct Sealer {
    prefix: Vec<u8>,
    segments: SegmentEncrypter,
}

impl Sealer {
    /// Starts a sealed file under the 32-byte `key` named `key_id`, bound to `name`.
    pub fn new(
        key_id: &KeyId,
        key: &SecretKey,
        name: &str,
        options: SealOptions,
    ) -> Result<Self, Error> {
        check_key(key)?;
        let header = Header::new(key_id.clone(), options.segment_size)?;
        let segments =
            SegmentEncrypter::new(header.stream_params()?, key, &header.associated_data(name))?;
        let mut prefix = header.encode();
        prefix.extend_from_slice(segments.header());
        Ok(Self { prefix, segments })
    }

    /// The bytes before segment 0: the Coffer header and the stream header.
    pub fn header(&self) -> &[u8] {
        &self.prefix
    }

    /// Plaintext bytes the next segment holds (at most, if it is the last).
    pub fn next_segment_len(&self) -> usize {
        self.segments.next_segment_len()
    }

    /// Encrypts the next segment in place and returns the tag to write after it.
    ///
    /// Errors if the length is wrong for the segment or the last segment was already sealed.
    pub fn seal_segment_in_place(
        &mut self,
        segment: &mut [u8],
        last: bool,
    ) -> Result<[u8; TAG_LEN], Error> {
        self.segments.seal_segment_in_place(segment, last)
    }

    /// Whether the last segment has been sealed.
    pub fn is_finished(&self) -> bool {
        self.segments.is_finished()
    }

    /// The stream parameters (segment sizes and offsets).
    pub fn params(&self) -> &StreamParams {
        self.segments.params()
    }

    /// Seals segment `index` out of order; see [`SegmentEncrypter::seal_at`] for the rule that
    /// keeps nonces unique.
    pub(super) fn seal_at(
        &self,
        index: u64,
        last: bool,
        segment: &mut [u8],
    ) -> Result<[u8; TAG_LEN], Error> {
        self.segments.seal_at(index, last, segment)
    }

    /// Length of a sealed file holding `plaintext_len` bytes, header included.
    pub fn sealed_len(&self, plaintext_len: u64) -> Option<u64> {
        let prefix = u64::try_from(self.prefix.len())
            .ok()?
            .checked_sub(u64::try_from(self.segments.header().len()).ok()?)?;
        self.segments
            .params()
            .ciphertext_len(plaintext_len)?
            .checked_add(prefix)
    }

    /// Seals all of `input` into `output`, header included; returns the plaintext length.
    pub fn seal_stream<R: Read, W: Write>(self, input: R, mut output: W) -> Result<u64, Error> {
        let coffer_len = self
            .prefix
            .len()
            .saturating_sub(self.segments.header().len());
        output.write_all(self.prefix.get(..coffer_len).unwrap_or_default())?;
        tink::encrypt_with(self.segments, input, output)
    }
}

/// Seals `input` into `output` under the 32-byte `key` named `key_id`, bound to `name` (a file
/// unseals only under the same name); returns the number of plaintext bytes.
///
/// Uses [`SealOptions::default`]. Reads `input` to its end; flushes `output`.
pub fn seal<R: Read, W: Write>(
    key_id: &KeyId,
    key: &SecretKey,
    name: &str,
    input: R,
    output: W,
) -> Result<u64, Error> {
    seal_with_options(key_id, key, name, SealOptions::default(), input, output)
}

/// [`seal`] with explicit [`SealOptions`].
pub fn seal_with_options<R: Read, W: Write>(
    key_id: &KeyId,
    key: &SecretKey,
    name: &str,
    options: SealOptions,
    input: R,
    output: W,
) -> Result<u64, Error> {
    Sealer::new(key_id, key, name, options)?.seal_stream(input, output)
}

/// Unseals a file sealed under `name`, fetching its key from `keys` by the id in the header;
/// returns the number of plaintext bytes.
///
/// **Streaming:** each segment is written to `output` as soon as it verifies, so when a later
/// segment fails (tampering, truncation), `output` already holds a verified prefix of the
/// plaintext. Write to a temporary file and keep it only if this returns `Ok`.
///
/// Errors: [`Error::Malformed`] for a bad header, [`Error::KeyNotFound`] (from `keys`) for a
/// key that is not held, [`Error::AuthenticationFailed`] naming the first segment that does
/// not verify (segment 0 for a wrong key, a wrong name or an edited header).
pub fn unseal<R: Read, W: Write>(
    keys: &dyn KeySource,
    name: &str,
    mut input: R,
    output: W,
) -> Result<u64, Error> {
    let (header, key) = open_header(keys, &mut input)?;
    let aad = header.associated_data(name);
    tink::decrypt(header.stream_params()?, &key, &aad, input, output)
}

/// Reads the Coffer header and fetches its key: what every reader does first.
fn open_header<R: Read>(keys: &dyn KeySource, input: R) -> Result<(Header, SecretKey), Error> {
    let header = read_header(input)?;
    let key = keys.key(header.key_id())?;
    check_key(&key)?;
    Ok((header, key))
}

/// Opens segments of a file in any order; the low-level counterpart of [`Sealer`].
#[derive(Debug)]
pub struct Unsealer {
    header: Header,
    segments: SegmentDecrypter,
}

impl Unsealer {
    /// Reads the Coffer header and the stream header from `input`, leaving it at segment 0.
    pub fn new<R: Read>(keys: &dyn KeySource, name: &str, mut input: R) -> Result<Self, Error> {
        let (header, key) = open_header(keys, &mut input)?;
        let params = header.stream_params()?;
        let stream_header = tink::read_stream_header(&params, &mut input)?;
        let segments =
            SegmentDecrypter::new(params, &key, &header.associated_data(name), &stream_header)?;
        Ok(Self { header, segments })
    }

    /// The file's Coffer header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The stream parameters (segment sizes and offsets).
    pub fn params(&self) -> &StreamParams {
        self.segments.params()
    }

    /// Where segment `index` starts, counted from the start of the file.
    pub fn segment_offset(&self, index: u64) -> Option<u64> {
        self.params()
            .segment_offset(index)?
            .checked_add(u64::try_from(self.header.encoded_len()).ok()?)
    }

    /// Opens segments: [`SegmentDecrypter::open_segment_in_place`] and
    /// [`SegmentDecrypter::open_segment_in_place_separate_tag`].
    pub fn segments(&self) -> &SegmentDecrypter {
        &self.segments
    }
}

fn check_key(key: &SecretKey) -> Result<(), Error> {
    match key.bits() {
        256 => Ok(()),
        bits => Err(Error::InvalidKey {
            reason: format!("{bits}-bit key; sealed files need a 256-bit key"),
        }),
    }
}
