//! Random access to a sealed file's plaintext.

use std::io::{self, Read, Seek, SeekFrom};

use super::file::Unsealer;
use super::header::Header;
use super::tink::{self, Layout};
use crate::{Error, KeySource};

/// `Read + Seek` over the plaintext of a sealed file, decrypting only the segments it touches
/// (one segment is cached).
///
/// Opening authenticates the last segment, so [`SealedReader::plaintext_len`] is authenticated
/// and a file cut short or extended fails to open rather than reading short. Every segment is
/// verified before any of its bytes are returned.
///
/// `Read` and `Seek` return [`io::Error`]s; failures of this crate's checks come as
/// [`io::ErrorKind::InvalidData`] wrapping the [`Error`], which
/// `err.get_ref().and_then(|e| e.downcast_ref::<coffer_crypto::Error>())` recovers.
#[derive(Debug)]
pub struct SealedReader<R> {
    inner: R,
    unsealer: Unsealer,
    /// Where segment 0 starts in `inner`, minus the stream header: segment offsets are relative
    /// to the stream header.
    stream_start: u64,
    layout: Layout,
    pos: u64,
    buf: Vec<u8>,
    /// The segment whose plaintext is at the front of `buf`, and its length.
    cached: Option<(u64, usize)>,
}

impl<R: Read + Seek> SealedReader<R> {
    /// Opens the sealed file that starts at `inner`'s current position and runs to its end.
    ///
    /// Fails like [`unseal`](super::unseal) on a bad header, a missing key, a wrong key or name,
    /// and on a file whose length does not match its last segment.
    pub fn open(keys: &dyn KeySource, name: &str, mut inner: R) -> Result<Self, Error> {
        let base = inner.stream_position()?;
        let unsealer = Unsealer::new(keys, name, &mut inner)?;
        let end = inner.seek(SeekFrom::End(0))?;
        let header_len = u64::try_from(unsealer.header().encoded_len()).unwrap_or(u64::MAX);
        let stream_start = base.saturating_add(header_len);
        let stream_len = end
            .checked_sub(stream_start)
            .ok_or_else(|| Error::Malformed {
                what: "sealed file",
                reason: "shorter than its header".into(),
            })?;
        let layout = unsealer.params().layout(stream_len)?;
        let buf = vec![0u8; unsealer.params().ciphertext_segment_size()];
        let mut reader = Self {
            inner,
            unsealer,
            stream_start,
            layout,
            pos: 0,
            buf,
            cached: None,
        };
        reader.load(layout.segments.saturating_sub(1))?;
        Ok(reader)
    }

    /// The plaintext length (authenticated when the reader was opened).
    pub fn plaintext_len(&self) -> u64 {
        self.layout.plaintext_len
    }

    /// The file's Coffer header.
    pub fn header(&self) -> &Header {
        self.unsealer.header()
    }

    /// Gives back the underlying reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Decrypts segment `index` into the cache unless it is there already.
    fn load(&mut self, index: u64) -> Result<usize, Error> {
        if let Some((cached, len)) = self.cached
            && cached == index
        {
            return Ok(len);
        }
        self.cached = None;
        let params = self.unsealer.params();
        let last = index.saturating_add(1) == self.layout.segments;
        let len = if last {
            self.layout.last_ciphertext_len
        } else {
            params.ciphertext_segment_len(index)
        };
        let offset = params
            .segment_offset(index)
            .and_then(|o| o.checked_add(self.stream_start))
            .ok_or_else(|| Error::Internal(format!("segment {index} offset overflows")))?;
        self.inner.seek(SeekFrom::Start(offset))?;
        let segment = self
            .buf
            .get_mut(..len)
            .ok_or_else(|| Error::Internal("segment longer than the buffer".into()))?;
        let got = tink::read_full(&mut self.inner, segment)?;
        if got < len {
            return Err(Error::AuthenticationFailed {
                what: format!(
                    "segment {index}: file truncated while reading ({got} of {len} bytes)"
                ),
            });
        }
        let plaintext = self
            .unsealer
            .segments()
            .open_segment_in_place(index, last, segment)?
            .len();
        self.cached = Some((index, plaintext));
        Ok(plaintext)
    }
}

impl<R: Read + Seek> Read for SealedReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() || self.pos >= self.layout.plaintext_len {
            return Ok(0);
        }
        let (index, within) = self
            .unsealer
            .params()
            .locate(self.pos)
            .ok_or_else(|| to_io(Error::Internal("position overflows".into())))?;
        let len = self.load(index).map_err(to_io)?;
        let available = self.buf.get(within..len).unwrap_or_default();
        let n = available.len().min(out.len());
        if n == 0 {
            return Err(to_io(Error::Internal(format!(
                "segment {index} is shorter than the layout says"
            ))));
        }
        out.get_mut(..n)
            .unwrap_or_default()
            .copy_from_slice(available.get(..n).unwrap_or_default());
        self.pos = self.pos.saturating_add(n as u64);
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for SealedReader<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.layout.plaintext_len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match target {
            Some(pos) => {
                self.pos = pos;
                Ok(pos)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start or past u64::MAX",
            )),
        }
    }
}

fn to_io(e: Error) -> io::Error {
    match e {
        Error::Io(e) => e,
        e => io::Error::new(io::ErrorKind::InvalidData, e),
    }
}
