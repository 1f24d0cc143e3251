//! Just enough of the Thrift compact protocol to read what `parquet` keeps private:
//! `FileCryptoMetaData` (the plaintext prefix of an encrypted footer) and fields 8 and 9 of a
//! plaintext `FileMetaData` (`encryption_algorithm`, `footer_signing_key_metadata`).
//!
//! Inspection needs these to name a file's algorithm and footer key without holding any key.
//! The reader is bounds-checked throughout and nests at most [`MAX_DEPTH`] levels.

use crate::{Error, Result};

/// Deepest struct/list nesting accepted (Parquet's own metadata nests far less).
pub(crate) const MAX_DEPTH: usize = 32;

/// `EncryptionAlgorithm` as stored in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Algorithm {
    /// `AES_GCM_V1` or `AES_GCM_CTR_V1`.
    pub name: &'static str,
    /// The AAD prefix, when the writer stored it.
    pub aad_prefix: Option<Vec<u8>>,
    /// True when readers must supply an AAD prefix the file does not store.
    pub supply_aad_prefix: bool,
}

/// The crypto fields of a footer: algorithm and footer key metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FooterCrypto {
    pub algorithm: Algorithm,
    pub key_metadata: Option<Vec<u8>>,
}

const T_STOP: u8 = 0;
const T_TRUE: u8 = 1;
const T_FALSE: u8 = 2;
const T_BYTE: u8 = 3;
const T_I16: u8 = 4;
const T_I32: u8 = 5;
const T_I64: u8 = 6;
const T_DOUBLE: u8 = 7;
const T_BINARY: u8 = 8;
const T_LIST: u8 = 9;
const T_SET: u8 = 10;
const T_MAP: u8 = 11;
const T_STRUCT: u8 = 12;
const T_UUID: u8 = 13;

fn malformed(reason: impl Into<String>) -> Error {
    Error::Corrupt(format!("malformed footer metadata: {}", reason.into()))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| malformed("length overflow"))?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| malformed("truncated"))?;
        self.pos = end;
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8> {
        self.take(1)?
            .first()
            .copied()
            .ok_or_else(|| malformed("truncated"))
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(malformed("varint longer than 10 bytes"))
    }

    fn zigzag(&mut self) -> Result<i64> {
        let v = self.varint()?;
        // (v >> 1) ^ -(v & 1), written without arithmetic that could overflow.
        let half = i64::try_from(v >> 1).map_err(|_| malformed("varint"))?;
        Ok(if v & 1 == 0 { half } else { !half })
    }

    fn len(&mut self) -> Result<usize> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| malformed("length"))?;
        if n > self.buf.len() {
            return Err(malformed(format!("length {n} beyond the footer")));
        }
        Ok(n)
    }

    fn binary(&mut self) -> Result<&'a [u8]> {
        let n = self.len()?;
        self.take(n)
    }

    /// Reads a struct, handing each field to `f`; `f` returns false to have it skipped.
    fn fields(
        &mut self,
        depth: usize,
        mut f: impl FnMut(&mut Self, i16, u8) -> Result<bool>,
    ) -> Result<()> {
        let depth = depth.checked_add(1).filter(|d| *d <= MAX_DEPTH);
        let depth = depth.ok_or_else(|| malformed("nested too deeply"))?;
        let mut last: i16 = 0;
        loop {
            let header = self.byte()?;
            let ty = header & 0x0f;
            if ty == T_STOP {
                return Ok(());
            }
            let delta = header >> 4;
            let id = if delta == 0 {
                i16::try_from(self.zigzag()?).map_err(|_| malformed("field id"))?
            } else {
                last.checked_add(i16::from(delta))
                    .ok_or_else(|| malformed("field id"))?
            };
            last = id;
            if !f(self, id, ty)? {
                self.skip(ty, depth)?;
            }
        }
    }

    fn skip(&mut self, ty: u8, depth: usize) -> Result<()> {
        match ty {
            T_TRUE | T_FALSE => Ok(()),
            T_BYTE => self.take(1).map(drop),
            T_I16 | T_I32 | T_I64 => self.varint().map(drop),
            T_DOUBLE => self.take(8).map(drop),
            T_BINARY => self.binary().map(drop),
            T_UUID => self.take(16).map(drop),
            T_STRUCT => self.fields(depth, |_, _, _| Ok(false)),
            T_LIST | T_SET => {
                let header = self.byte()?;
                let elem = header & 0x0f;
                let n = match header >> 4 {
                    15 => self.len()?,
                    n => usize::from(n),
                };
                self.skip_n(n, &[elem], depth)
            }
            T_MAP => {
                let n = self.len()?;
                if n == 0 {
                    return Ok(());
                }
                let kv = self.byte()?;
                self.skip_n(n, &[kv >> 4, kv & 0x0f], depth)
            }
            other => Err(malformed(format!("unknown Thrift type {other}"))),
        }
    }

    fn skip_n(&mut self, n: usize, types: &[u8], depth: usize) -> Result<()> {
        let depth = depth.checked_add(1).filter(|d| *d <= MAX_DEPTH);
        let depth = depth.ok_or_else(|| malformed("nested too deeply"))?;
        for _ in 0..n {
            for &t in types {
                // Booleans inside containers take a byte each.
                if t == T_TRUE || t == T_FALSE {
                    self.take(1)?;
                } else {
                    self.skip(t, depth)?;
                }
            }
        }
        Ok(())
    }

    fn bool_field(ty: u8) -> Result<bool> {
        match ty {
            T_TRUE => Ok(true),
            T_FALSE => Ok(false),
            _ => Err(malformed("expected a bool")),
        }
    }

    fn algorithm(&mut self, depth: usize) -> Result<Algorithm> {
        let mut found = None;
        self.fields(depth, |r, id, ty| {
            let name = match (id, ty) {
                (1, T_STRUCT) => "AES_GCM_V1",
                (2, T_STRUCT) => "AES_GCM_CTR_V1",
                _ => return Ok(false),
            };
            let mut alg = Algorithm {
                name,
                aad_prefix: None,
                supply_aad_prefix: false,
            };
            r.fields(depth.saturating_add(1), |r, id, ty| match (id, ty) {
                (1, T_BINARY) => {
                    alg.aad_prefix = Some(r.binary()?.to_vec());
                    Ok(true)
                }
                (3, T_TRUE | T_FALSE) => {
                    alg.supply_aad_prefix = Self::bool_field(ty)?;
                    Ok(true)
                }
                _ => Ok(false),
            })?;
            found = Some(alg);
            Ok(true)
        })?;
        found.ok_or_else(|| malformed("an encryption algorithm this reader does not know"))
    }
}

/// Reads the struct at the start of `buf`, taking the algorithm from field `alg` and the key
/// metadata from field `key`; returns them and the bytes consumed.
fn crypto_fields(buf: &[u8], alg: i16, key: i16) -> Result<(Option<FooterCrypto>, usize)> {
    let mut r = Reader { buf, pos: 0 };
    let mut algorithm = None;
    let mut key_metadata = None;
    r.fields(0, |r, id, ty| match ty {
        T_STRUCT if id == alg => {
            algorithm = Some(r.algorithm(1)?);
            Ok(true)
        }
        T_BINARY if id == key => {
            key_metadata = Some(r.binary()?.to_vec());
            Ok(true)
        }
        _ => Ok(false),
    })?;
    let found = algorithm.map(|algorithm| FooterCrypto {
        algorithm,
        key_metadata,
    });
    Ok((found, r.pos))
}

/// Parses the `FileCryptoMetaData` at the start of an encrypted footer; also returns how many
/// bytes it took (the encrypted `FileMetaData` follows).
pub(crate) fn file_crypto_metadata(buf: &[u8]) -> Result<(FooterCrypto, usize)> {
    match crypto_fields(buf, 1, 2)? {
        (Some(fc), used) => Ok((fc, used)),
        (None, _) => Err(malformed("FileCryptoMetaData without algorithm")),
    }
}

/// Reads fields 8 and 9 of a plaintext `FileMetaData`; `None` for an unencrypted file.
pub(crate) fn plaintext_footer_crypto(buf: &[u8]) -> Result<Option<FooterCrypto>> {
    crypto_fields(buf, 8, 9).map(|(fc, _)| fc)
}

#[cfg(test)]
mod tests {
    use super::*;

    // FileCryptoMetaData { 1: AES_GCM_V1 { 1: "tester", 2: 8 bytes, 3: true }, 2: "kf" }
    fn sample() -> Vec<u8> {
        let mut b = vec![0x1c, 0x1c, 0x18, 6];
        b.extend_from_slice(b"tester");
        b.extend_from_slice(&[0x18, 8]);
        b.extend_from_slice(&[9; 8]);
        b.push(0x11); // field 3, bool true
        b.extend_from_slice(&[0, 0]); // stop AesGcmV1, stop union
        b.extend_from_slice(&[0x18, 2]);
        b.extend_from_slice(b"kf");
        b.push(0);
        b
    }

    #[test]
    fn reads_file_crypto_metadata() {
        let (fc, used) = file_crypto_metadata(&sample()).unwrap();
        assert_eq!(used, sample().len());
        assert_eq!(fc.algorithm.name, "AES_GCM_V1");
        assert_eq!(fc.algorithm.aad_prefix.as_deref(), Some(&b"tester"[..]));
        assert!(fc.algorithm.supply_aad_prefix);
        assert_eq!(fc.key_metadata.as_deref(), Some(&b"kf"[..]));
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error_or_a_value() {
        let s = sample();
        for n in 0..s.len() {
            assert!(file_crypto_metadata(&s[..n]).is_err(), "prefix {n}");
        }
        for i in 0..s.len() {
            for bit in 0..8 {
                let mut t = s.clone();
                t[i] ^= 1 << bit;
                let _ = file_crypto_metadata(&t);
                let _ = plaintext_footer_crypto(&t);
            }
        }
    }

    #[test]
    fn deep_nesting_is_refused() {
        // field 1 struct, repeated: nests one level per byte.
        let b = vec![0x1c; 1000];
        assert!(plaintext_footer_crypto(&b).is_err());
        // list of 15+ lists
        let mut l = vec![0x19];
        l.extend(std::iter::repeat_n(0x19, 500));
        assert!(plaintext_footer_crypto(&l).is_err());
    }
}
