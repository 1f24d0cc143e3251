//! Whole streams over `Read` and `Write`, one reused segment buffer each way.

use std::io::{self, Read, Write};

use super::{SegmentDecrypter, SegmentEncrypter, StreamParams, TAG_LEN};
use crate::{Error, SecretKey};

/// Encrypts all of `input` into `output` as one Tink stream under a fresh salt and nonce
/// prefix; returns the number of plaintext bytes.
pub fn encrypt<R: Read, W: Write>(
    params: StreamParams,
    ikm: &SecretKey,
    aad: &[u8],
    input: R,
    output: W,
) -> Result<u64, Error> {
    encrypt_with(SegmentEncrypter::new(params, ikm, aad)?, input, output)
}

/// Like [`encrypt`], with a stream already started (for example with a known salt and prefix).
///
/// Writes the stream header, then one `write_all` per segment, then flushes `output`.
pub fn encrypt_with<R: Read, W: Write>(
    mut enc: SegmentEncrypter,
    mut input: R,
    mut output: W,
) -> Result<u64, Error> {
    if enc.next_segment_index() != 0 {
        return Err(Error::ApiMisuse(
            "encrypt_with needs a stream with no segment sealed yet".into(),
        ));
    }
    output.write_all(enc.header())?;
    // One byte of look-ahead tells a full segment from the last one; it fits in the tag space.
    let mut buf = vec![0u8; buffer_len(enc.params().plaintext_segment_size(), TAG_LEN)?];
    let mut filled = 0;
    let mut total = 0u64;
    loop {
        let want = enc.next_segment_len();
        let got = fill(&mut input, &mut buf, filled, want)?;
        let last = got <= want;
        let len = got.min(want);
        let carry = buf.get(want).copied().unwrap_or(0);
        let (segment, rest) = split(&mut buf, len)?;
        let tag = enc.seal_segment_in_place(segment, last)?;
        rest.get_mut(..TAG_LEN)
            .ok_or_else(|| Error::Internal("segment buffer too small for the tag".into()))?
            .copy_from_slice(&tag);
        output.write_all(prefix(&buf, len.saturating_add(TAG_LEN))?)?;
        total = total.saturating_add(len as u64);
        if last {
            output.flush()?;
            return Ok(total);
        }
        filled = restore_carry(&mut buf, carry)?;
    }
}

/// Reads the stream header: exactly [`StreamParams::header_len`] bytes.
pub fn read_stream_header<R: Read>(params: &StreamParams, mut input: R) -> Result<Vec<u8>, Error> {
    let mut header = vec![0u8; params.header_len()];
    let got = read_full(&mut input, &mut header)?;
    if got < header.len() {
        return Err(Error::Malformed {
            what: "stream header",
            reason: format!("truncated: {got} of {} bytes", header.len()),
        });
    }
    Ok(header)
}

/// Decrypts a Tink stream from `input` into `output`; returns the number of plaintext bytes.
///
/// Segments are written to `output` as soon as they verify, so when a later segment fails,
/// `output` has already received a verified prefix of the plaintext. Callers that must not
/// expose partial output write to a temporary place and keep it only on `Ok`.
pub fn decrypt<R: Read, W: Write>(
    params: StreamParams,
    ikm: &SecretKey,
    aad: &[u8],
    mut input: R,
    mut output: W,
) -> Result<u64, Error> {
    let header = read_stream_header(&params, &mut input)?;
    let dec = SegmentDecrypter::new(params, ikm, aad, &header)?;
    let mut buf = vec![0u8; buffer_len(params.ciphertext_segment_size(), 1)?];
    let mut filled = 0;
    let mut total = 0u64;
    let mut index = 0u64;
    loop {
        let want = params.ciphertext_segment_len(index);
        let got = fill(&mut input, &mut buf, filled, want)?;
        let last = got <= want;
        let carry = buf.get(want).copied().unwrap_or(0);
        let (segment, _) = split(&mut buf, got.min(want))?;
        let plaintext = dec.open_segment_in_place(index, last, segment)?;
        output.write_all(plaintext)?;
        total = total.saturating_add(plaintext.len() as u64);
        if last {
            output.flush()?;
            return Ok(total);
        }
        filled = restore_carry(&mut buf, carry)?;
        index = index.saturating_add(1);
    }
}

/// Reads until `buf` is full or `input` ends; returns the bytes read.
pub(crate) fn read_full<R: Read>(input: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while let Some(rest) = buf.get_mut(done..) {
        if rest.is_empty() {
            break;
        }
        match input.read(rest) {
            Ok(0) => break,
            Ok(n) => done = done.saturating_add(n).min(buf.len()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

fn buffer_len(a: usize, b: usize) -> Result<usize, Error> {
    a.checked_add(b)
        .ok_or_else(|| Error::ApiMisuse("segment size too large".into()))
}

/// Fills `buf[filled..=want]` (one byte past the segment, to see whether more follows) and
/// returns how many of those `want + 1` bytes there are.
fn fill<R: Read>(
    input: &mut R,
    buf: &mut [u8],
    filled: usize,
    want: usize,
) -> Result<usize, Error> {
    let window = want
        .checked_add(1)
        .and_then(|end| buf.get_mut(filled..end))
        .ok_or_else(|| Error::Internal("segment buffer too small".into()))?;
    Ok(filled.saturating_add(read_full(input, window)?))
}

fn split(buf: &mut [u8], at: usize) -> Result<(&mut [u8], &mut [u8]), Error> {
    buf.split_at_mut_checked(at)
        .ok_or_else(|| Error::Internal("segment buffer too small".into()))
}

fn prefix(buf: &[u8], len: usize) -> Result<&[u8], Error> {
    buf.get(..len)
        .ok_or_else(|| Error::Internal("segment buffer too small".into()))
}

/// Moves the look-ahead byte to the front of the buffer for the next segment.
fn restore_carry(buf: &mut [u8], carry: u8) -> Result<usize, Error> {
    let first = buf
        .first_mut()
        .ok_or_else(|| Error::Internal("empty segment buffer".into()))?;
    *first = carry;
    Ok(1)
}
