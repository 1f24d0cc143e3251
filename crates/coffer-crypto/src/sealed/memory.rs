//! Sealing and unsealing data already in memory, in place: every byte crosses memory once each
//! way, as with raw AES-GCM in place.

use std::io::Write;

use super::file::{SealOptions, Sealer, Unsealer};
use super::tink::{StreamParams, TAG_LEN};
use crate::{Error, KeyId, KeySource, SecretKey};

/// Encrypts `buf` in place as the segments of a sealed file and returns what goes around them:
/// the fastest way to seal, with no copy at all (the sealed-file analogue of AES-GCM's
/// `seal_in_place_separate_tag`).
///
/// The sealed file is `header ‖ segment 0 ‖ tag 0 ‖ segment 1 ‖ tag 1 ‖ …`, where the segments
/// are consecutive pieces of `buf` ([`SeparateTags::write_to`] writes it, without copying).
pub fn seal_in_place_separate_tags(
    key_id: &KeyId,
    key: &SecretKey,
    name: &str,
    options: SealOptions,
    buf: &mut [u8],
) -> Result<SeparateTags, Error> {
    let mut sealer = Sealer::new(key_id, key, name, options)?;
    let params = *sealer.params();
    let mut tags = Vec::with_capacity(segment_count(&params, buf.len())?);
    let mut rest = buf;
    loop {
        let (segment, tail) = rest.split_at_mut(sealer.next_segment_len().min(rest.len()));
        let last = tail.is_empty();
        tags.push(sealer.seal_segment_in_place(segment, last)?);
        if last {
            return Ok(SeparateTags {
                header: sealer.header().to_vec(),
                tags,
                params,
            });
        }
        rest = tail;
    }
}

/// Decrypts, in place, a buffer sealed by [`seal_in_place_separate_tags`], given the header and
/// tags it returned; returns the plaintext length.
///
/// Checks the same things as [`unseal`](super::unseal), except that the segment count comes
/// from `tags`. On error, `buf` holds unspecified bytes from the failing segment on.
pub fn unseal_in_place_separate_tags(
    keys: &dyn KeySource,
    name: &str,
    header: &[u8],
    tags: &[[u8; TAG_LEN]],
    buf: &mut [u8],
) -> Result<u64, Error> {
    let mut input = header;
    let unsealer = Unsealer::new(keys, name, &mut input)?;
    if !input.is_empty() {
        return Err(Error::Malformed {
            what: "sealed header",
            reason: format!("{} bytes after the stream header", input.len()),
        });
    }
    let params = *unsealer.params();
    let expected = segment_count(&params, buf.len())?;
    if tags.len() != expected {
        return Err(Error::AuthenticationFailed {
            what: format!(
                "segment count: {} tags for {expected} segments (truncated or extended?)",
                tags.len()
            ),
        });
    }
    let total = buf.len() as u64;
    let mut rest = buf;
    for (index, tag) in (0u64..).zip(tags) {
        let (segment, tail) =
            rest.split_at_mut(params.plaintext_segment_len(index).min(rest.len()));
        unsealer.segments().open_segment_in_place_separate_tag(
            index,
            tail.is_empty(),
            segment,
            tag,
        )?;
        rest = tail;
    }
    Ok(total)
}

/// The header and tags of a sealed file whose segments stayed in the caller's buffer.
#[derive(Clone, Debug)]
pub struct SeparateTags {
    header: Vec<u8>,
    tags: Vec<[u8; TAG_LEN]>,
    params: StreamParams,
}

impl SeparateTags {
    /// The bytes before segment 0: the Coffer header and the stream header.
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// One tag per segment, in order.
    pub fn tags(&self) -> &[[u8; TAG_LEN]] {
        &self.tags
    }

    /// Writes the sealed file: the header, then each segment of `ciphertext` (the buffer that
    /// was sealed) followed by its tag; returns the bytes written.
    pub fn write_to<W: Write>(&self, ciphertext: &[u8], mut out: W) -> Result<u64, Error> {
        if segment_count(&self.params, ciphertext.len())? != self.tags.len() {
            return Err(Error::ApiMisuse(
                "ciphertext is not the buffer these tags were made for".into(),
            ));
        }
        out.write_all(&self.header)?;
        let mut rest = ciphertext;
        for (index, tag) in (0u64..).zip(&self.tags) {
            let (segment, tail) =
                rest.split_at(self.params.plaintext_segment_len(index).min(rest.len()));
            out.write_all(segment)?;
            out.write_all(tag)?;
            rest = tail;
        }
        out.flush()?;
        let tags = self.tags.len().saturating_mul(TAG_LEN);
        Ok((self.header.len().saturating_add(tags) as u64).saturating_add(ciphertext.len() as u64))
    }
}

/// Number of segments a plaintext of `len` bytes takes (at least 1).
fn segment_count(params: &StreamParams, len: usize) -> Result<usize, Error> {
    params
        .ciphertext_len(len as u64)
        .map(|n| params.layout(n).map(|l| l.segments))
        .unwrap_or_else(|| {
            Err(Error::ApiMisuse(
                "input too long for one sealed file".into(),
            ))
        })
        .and_then(|n| usize::try_from(n).map_err(|_| overflow()))
}

/// Turns `buf` from plaintext into the sealed file, in place; returns the plaintext length.
///
/// For a sealed file in one piece: each segment is encrypted where it lies and then shifted,
/// while still in cache, to its place in the file, so every byte crosses memory once each way;
/// the shift costs about a fifth of the encryption. `buf` grows by the header and 16 bytes
/// per segment; reserve [`Sealer::sealed_len`] bytes of capacity beforehand to avoid a
/// reallocation.
pub fn seal_in_place(
    key_id: &KeyId,
    key: &SecretKey,
    name: &str,
    options: SealOptions,
    buf: &mut Vec<u8>,
) -> Result<u64, Error> {
    let sealer = Sealer::new(key_id, key, name, options)?;
    let plaintext_len = buf.len();
    let sealed_len = sealer
        .sealed_len(plaintext_len as u64)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| Error::ApiMisuse("plaintext too long for one sealed file".into()))?;
    let params = *sealer.params();
    let prefix_len = sealer.header().len();
    let segments = segment_count(&params, plaintext_len)? as u64;
    buf.resize(sealed_len, 0);
    // From the end, so that each segment moves into space already vacated.
    for index in (0..segments).rev() {
        let last = index.saturating_add(1) == segments;
        let start = to_usize(params.plaintext_offset(index))?;
        let len = if last {
            plaintext_len.saturating_sub(start)
        } else {
            params.plaintext_segment_len(index)
        };
        let end = start.checked_add(len).ok_or_else(overflow)?;
        let tag = sealer.seal_at(index, last, buf.get_mut(start..end).ok_or_else(overflow)?)?;
        let dest = tag_offset(index)
            .and_then(|tags| start.checked_add(prefix_len)?.checked_add(tags))
            .ok_or_else(overflow)?;
        buf.copy_within(start..end, dest);
        let tag_at = dest.checked_add(len).ok_or_else(overflow)?;
        buf.get_mut(tag_at..tag_at.saturating_add(TAG_LEN))
            .ok_or_else(overflow)?
            .copy_from_slice(&tag);
    }
    buf.get_mut(..prefix_len)
        .ok_or_else(overflow)?
        .copy_from_slice(sealer.header());
    Ok(plaintext_len as u64)
}

/// Turns `buf` from a sealed file into its plaintext, in place; returns the plaintext length.
///
/// The mirror of [`seal_in_place`]: each segment is decrypted where it lies, then shifted while
/// still in cache. Checks the same things as [`unseal`](super::unseal). On error, `buf` is cut
/// to the verified plaintext of the segments before the failing one.
pub fn unseal_in_place(keys: &dyn KeySource, name: &str, buf: &mut Vec<u8>) -> Result<u64, Error> {
    let unsealer = Unsealer::new(keys, name, &mut buf.as_slice())?;
    let params = *unsealer.params();
    let header_len = unsealer.header().encoded_len();
    let prefix_len = header_len
        .checked_add(params.header_len())
        .ok_or_else(overflow)?;
    let layout = params.layout(buf.len().saturating_sub(header_len) as u64)?;
    for index in 0..layout.segments {
        let last = index.saturating_add(1) == layout.segments;
        let len = if last {
            layout.last_ciphertext_len
        } else {
            params.ciphertext_segment_len(index)
        };
        let start = to_usize(unsealer.segment_offset(index))?;
        let end = start.checked_add(len).ok_or_else(overflow)?;
        let dest = to_usize(params.plaintext_offset(index))?;
        let opened = match buf.get_mut(start..end) {
            Some(segment) => unsealer
                .segments()
                .open_segment_in_place(index, last, segment),
            None => Err(overflow()),
        };
        let plaintext = match opened {
            Ok(plaintext) => plaintext.len(),
            Err(e) => {
                buf.truncate(dest);
                return Err(e);
            }
        };
        debug_assert_eq!(
            Some(start),
            tag_offset(index).and_then(|t| dest.checked_add(prefix_len)?.checked_add(t))
        );
        buf.copy_within(start..start.saturating_add(plaintext), dest);
    }
    buf.truncate(to_usize(Some(layout.plaintext_len))?);
    Ok(layout.plaintext_len)
}

/// Bytes of tags before segment `index`.
fn tag_offset(index: u64) -> Option<usize> {
    usize::try_from(index).ok()?.checked_mul(TAG_LEN)
}

fn to_usize(n: Option<u64>) -> Result<usize, Error> {
    n.and_then(|n| usize::try_from(n).ok()).ok_or_else(overflow)
}

fn overflow() -> Error {
    Error::Internal("sealed layout does not fit in memory".into())
}
