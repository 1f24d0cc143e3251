//! One segment at a time, in place: the primitives under every stream API.

use aws_lc_rs::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hkdf;
use zeroize::Zeroizing;

use super::{MAX_SEGMENTS, NONCE_PREFIX_LEN, StreamParams, TAG_LEN};
use crate::{Error, SecretKey};

/// Seals the segments of one stream, in order.
///
/// Holds the segment counter, so that no nonce is used twice: segment numbers only go up, and
/// nothing can be sealed after the last segment.
pub struct SegmentEncrypter {
    key: LessSafeKey,
    params: StreamParams,
    header: Vec<u8>,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    next: u64,
    finished: bool,
}

impl SegmentEncrypter {
    /// Starts a stream under `ikm` with a fresh random salt and nonce prefix.
    ///
    /// `aad` is authenticated by every segment (it is the HKDF info) but not stored: the reader
    /// must supply the same bytes.
    pub fn new(params: StreamParams, ikm: &SecretKey, aad: &[u8]) -> Result<Self, Error> {
        let mut salt = Zeroizing::new(vec![0u8; params.derived_key_len()]);
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| Error::Internal("CSPRNG failed".into()))?;
        aws_lc_rs::rand::fill(&mut nonce_prefix)
            .map_err(|_| Error::Internal("CSPRNG failed".into()))?;
        Self::dangerous_with_salt_and_nonce_prefix(params, ikm, aad, &salt, nonce_prefix)
    }

    /// Starts a stream with a caller-chosen salt and nonce prefix.
    ///
    /// Only for reproducing known-answer vectors: two streams with the same key, salt, prefix
    /// and associated data reuse AES-GCM nonces, which loses confidentiality and integrity.
    pub fn dangerous_with_salt_and_nonce_prefix(
        params: StreamParams,
        ikm: &SecretKey,
        aad: &[u8],
        salt: &[u8],
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
    ) -> Result<Self, Error> {
        if salt.len() != params.derived_key_len() {
            return Err(Error::ApiMisuse(format!(
                "salt of {} bytes; the stream needs {}",
                salt.len(),
                params.derived_key_len()
            )));
        }
        let key = derive_key(&params, ikm, salt, aad)?;
        let mut header = Vec::with_capacity(params.header_len());
        header.push(u8::try_from(params.header_len()).unwrap_or(u8::MAX));
        header.extend_from_slice(salt);
        header.extend_from_slice(&nonce_prefix);
        Ok(Self {
            key,
            params,
            header,
            nonce_prefix,
            next: 0,
            finished: false,
        })
    }

    /// The stream header, to be written before segment 0.
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// The stream parameters.
    pub fn params(&self) -> &StreamParams {
        &self.params
    }

    /// Number of the segment the next [`Self::seal_segment_in_place`] seals.
    pub fn next_segment_index(&self) -> u64 {
        self.next
    }

    /// Plaintext bytes the next segment must hold if it is not the last (the last holds at most
    /// this many).
    pub fn next_segment_len(&self) -> usize {
        self.params.plaintext_segment_len(self.next)
    }

    /// Whether the last segment has been sealed.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Encrypts `segment` in place as the next segment and returns its tag, which goes right
    /// after the ciphertext.
    ///
    /// A segment that is not `last` must hold exactly [`Self::next_segment_len`] bytes; the last
    /// may hold fewer (even none).
    pub fn seal_segment_in_place(
        &mut self,
        segment: &mut [u8],
        last: bool,
    ) -> Result<[u8; TAG_LEN], Error> {
        if self.finished {
            return Err(Error::ApiMisuse(
                "the last segment was already sealed".into(),
            ));
        }
        let tag = self.seal_at(self.next, last, segment)?;
        self.next = self.next.saturating_add(1);
        self.finished = last;
        Ok(tag)
    }

    /// Seals `segment` as segment `index`, leaving the counter alone, for in-crate callers that
    /// must go out of order (sealing a buffer in place from its end).
    ///
    /// Nonce uniqueness rests on the caller: each index at most once per encrypter, one of them
    /// `last`, and never together with [`Self::seal_segment_in_place`].
    pub(crate) fn seal_at(
        &self,
        index: u64,
        last: bool,
        segment: &mut [u8],
    ) -> Result<[u8; TAG_LEN], Error> {
        if index >= MAX_SEGMENTS {
            return Err(Error::ApiMisuse(format!(
                "input too long: a stream holds at most {MAX_SEGMENTS} segments"
            )));
        }
        let expected = self.params.plaintext_segment_len(index);
        if segment.len() > expected || (!last && segment.len() != expected) {
            return Err(Error::ApiMisuse(format!(
                "segment {index} holds {} bytes; expected {}{expected}",
                segment.len(),
                if last { "at most " } else { "" },
            )));
        }
        let nonce = segment_nonce(&self.nonce_prefix, index, last)?;
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::empty(), segment)
            .map_err(|_| Error::Internal("AES-GCM seal failed".into()))?;
        tag.as_ref()
            .try_into()
            .map_err(|_| Error::Internal("AES-GCM tag is not 16 bytes".into()))
    }
}

impl std::fmt::Debug for SegmentEncrypter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentEncrypter")
            .field("params", &self.params)
            .field("next", &self.next)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

/// Opens the segments of one stream, in any order.
pub struct SegmentDecrypter {
    key: LessSafeKey,
    params: StreamParams,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
}

impl SegmentDecrypter {
    /// Reads the stream `header` (exactly [`StreamParams::header_len`] bytes) and derives the
    /// stream key from `ikm` and `aad`.
    ///
    /// A wrong key or wrong `aad` is not detected here but by the first segment opened.
    pub fn new(
        params: StreamParams,
        ikm: &SecretKey,
        aad: &[u8],
        header: &[u8],
    ) -> Result<Self, Error> {
        let malformed = |reason: String| Error::Malformed {
            what: "stream header",
            reason,
        };
        let (len_byte, rest) = header
            .split_first()
            .ok_or_else(|| malformed("empty".into()))?;
        if header.len() != params.header_len() || usize::from(*len_byte) != params.header_len() {
            return Err(malformed(format!(
                "length byte {len_byte} and size {}; expected {}",
                header.len(),
                params.header_len()
            )));
        }
        let (salt, prefix) = rest
            .split_at_checked(params.derived_key_len())
            .ok_or_else(|| malformed("truncated salt".into()))?;
        let nonce_prefix: [u8; NONCE_PREFIX_LEN] = prefix
            .try_into()
            .map_err(|_| malformed("nonce prefix is not 7 bytes".into()))?;
        Ok(Self {
            key: derive_key(&params, ikm, salt, aad)?,
            params,
            nonce_prefix,
        })
    }

    /// The stream parameters.
    pub fn params(&self) -> &StreamParams {
        &self.params
    }

    /// Authenticates and decrypts segment `index` (ciphertext ‖ tag) in place, returning the
    /// plaintext, a prefix of `segment`.
    ///
    /// `last` must say whether the caller found this segment at the end of the stream: a stream
    /// cut at a segment boundary, or with bytes appended, then fails here. On failure `segment`
    /// holds unspecified bytes and must not be used.
    pub fn open_segment_in_place<'a>(
        &self,
        index: u64,
        last: bool,
        segment: &'a mut [u8],
    ) -> Result<&'a mut [u8], Error> {
        let len = segment.len();
        let Some((ciphertext, tag)) = segment.split_last_chunk_mut::<TAG_LEN>() else {
            return Err(Error::AuthenticationFailed {
                what: format!("segment {index}: {len} bytes, shorter than a tag (truncated?)"),
            });
        };
        let tag = *tag;
        self.open_segment_in_place_separate_tag(index, last, ciphertext, &tag)?;
        Ok(ciphertext)
    }

    /// Like [`Self::open_segment_in_place`], with the tag apart from the ciphertext (as
    /// [`SegmentEncrypter::seal_segment_in_place`] returns it).
    pub fn open_segment_in_place_separate_tag(
        &self,
        index: u64,
        last: bool,
        ciphertext: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), Error> {
        let full = self.params.plaintext_segment_len(index);
        if ciphertext.len() > full || (!last && ciphertext.len() != full) {
            return Err(Error::AuthenticationFailed {
                what: format!(
                    "segment {index}: {} ciphertext bytes where {}{full} were expected \
                     (truncated?)",
                    ciphertext.len(),
                    if last { "at most " } else { "" }
                ),
            });
        }
        let nonce = segment_nonce(&self.nonce_prefix, index, last)?;
        self.key
            .open_in_place_separate_tag(nonce, Aad::empty(), tag, ciphertext)
            .map(|_| ())
            .map_err(|_| Error::AuthenticationFailed {
                what: segment_failure(index, last),
            })
    }
}

impl std::fmt::Debug for SegmentDecrypter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentDecrypter")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

fn segment_failure(index: u64, last: bool) -> String {
    let hint = match (index, last) {
        (0, _) => "wrong key, wrong name or associated data, or modified header or data",
        (_, true) => "modified, truncated or extended data",
        (_, false) => "modified or reordered data",
    };
    format!(
        "segment {index}{} ({hint})",
        if last { ", last" } else { "" }
    )
}

struct KeyLen(usize);

impl hkdf::KeyType for KeyLen {
    fn len(&self) -> usize {
        self.0
    }
}

fn derive_key(
    params: &StreamParams,
    ikm: &SecretKey,
    salt: &[u8],
    aad: &[u8],
) -> Result<LessSafeKey, Error> {
    let ikm = ikm.expose_secret();
    if ikm.len() < params.derived_key_len() {
        return Err(Error::InvalidKey {
            reason: format!(
                "{}-byte key cannot derive {}-byte stream keys",
                ikm.len(),
                params.derived_key_len()
            ),
        });
    }
    let algorithm = match params.derived_key_len() {
        16 => &AES_128_GCM,
        _ => &AES_256_GCM,
    };
    let mut buf = Zeroizing::new([0u8; 32]);
    let okm = buf
        .get_mut(..params.derived_key_len())
        .ok_or_else(|| Error::Internal("derived key longer than 32 bytes".into()))?;
    hkdf::Salt::new(params.hkdf_hash().algorithm(), salt)
        .extract(ikm)
        .expand(&[aad], KeyLen(okm.len()))
        .and_then(|expanded| expanded.fill(okm))
        .map_err(|_| Error::Internal("HKDF failed".into()))?;
    let key = UnboundKey::new(algorithm, okm)
        .map_err(|_| Error::Internal("AES-GCM key setup failed".into()))?;
    Ok(LessSafeKey::new(key))
}

fn segment_nonce(prefix: &[u8; NONCE_PREFIX_LEN], index: u64, last: bool) -> Result<Nonce, Error> {
    let counter = u32::try_from(index).map_err(|_| Error::Malformed {
        what: "sealed stream",
        reason: format!("segment {index}; at most {MAX_SEGMENTS} segments allowed"),
    })?;
    let mut nonce = [0u8; 12];
    let (head, tail) = nonce.split_at_mut(NONCE_PREFIX_LEN);
    head.copy_from_slice(prefix);
    let (ctr, flag) = tail.split_at_mut(4);
    ctr.copy_from_slice(&counter.to_be_bytes());
    flag.copy_from_slice(&[u8::from(last)]);
    Ok(Nonce::assume_unique_for_key(nonce))
}
