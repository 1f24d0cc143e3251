//! Sealed files: blobs encrypted at rest under a named 256-bit key and bound to a name.
//!
//! A sealed file is a short Coffer header followed by a stream in Tink's AES-GCM-HKDF
//! streaming AEAD format ([`tink`]), so it can be written and read in one pass with bounded
//! memory, or read at random offsets.
//!
//! # Format, byte by byte
//!
//! `n` is the key id length and `S` the ciphertext segment size.
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 6 | magic `CFSEAL` |
//! | 6 | 1 | version, `0x01` |
//! | 7 | 1 | `n`, 1 to 128 |
//! | 8 | `n` | key id, ASCII `[A-Za-z0-9._:@-]` (see [`KeyId`]) |
//! | 8+n | 4 | `S`, u32 big-endian, 4 KiB to 16 MiB (default 256 KiB) |
//! | 12+n | 1 | stream header length, `0x28` (40) |
//! | 13+n | 32 | salt, random per file |
//! | 45+n | 7 | nonce prefix, random per file |
//! | 52+n | … | segments |
//!
//! Bytes `[0, 12+n)` are the Coffer header ([`Header`]); the stream starts at `12+n`. Segment 0
//! holds `S - 40` ciphertext bytes (`S - 56` plaintext and a 16-byte tag), so that the stream
//! header and segment 0 fill `S` bytes; later segments hold `S` bytes (`S - 16` plaintext); the
//! last segment holds 16 to `S` bytes. An empty plaintext is one segment of just a tag.
//!
//! The limits on `S` are [`MIN_SEGMENT_SIZE`], [`MAX_SEGMENT_SIZE`] and
//! [`DEFAULT_SEGMENT_SIZE`]. Keys and nonces, with `key` the 256-bit key named in the header and
//! `name` the caller's logical name for the file (the CLI uses the file name; it is not stored,
//! so the reader must know it):
//!
//! - `aad = "coffer/sealed-file/v1\0" ‖ u32-BE(12+n) ‖ header[0, 12+n) ‖ u64-BE(len name) ‖ name`
//! - `file_key = HKDF-SHA256(ikm = key, salt, info = aad)`, 32 bytes
//! - segment `i` = AES-256-GCM(`file_key`, nonce = `prefix ‖ u32-BE(i) ‖ last`, no AAD), with
//!   `last` = 1 for the final segment, else 0.
//!
//! This is exactly Tink's `AesGcmHkdfStreaming` (HKDF-SHA256, 32-byte derived keys, segment
//! size `S`, ciphertext offset 0) with `aad` as Tink's associated data: a Tink implementation
//! given `aad` can read the stream that follows the Coffer header.
//!
//! # Security argument
//!
//! - **Confidentiality and segment integrity** come from AES-256-GCM under a key used for one
//!   file only: each file draws a fresh 256-bit salt, so two files share a key only if their
//!   salts collide. Within a file, nonces differ by segment number and last flag, and there
//!   are at most 2^32 segments.
//! - **The header and the name are authenticated without a MAC of their own:** they are in the
//!   HKDF info, so an edited header (key id, segment size, version), another name, or another
//!   key gives an unrelated file key, and segment 0 fails to authenticate. Segments cannot be
//!   moved between files, since every file has its own key.
//! - **Order and length:** the segment number in the nonce catches reordered, repeated or
//!   dropped segments; the last flag catches a file cut at a segment boundary or with segments
//!   appended; a tail shorter than a tag, or bytes after the last segment, make a segment fail.
//! - **Parsing** never panics (lint-enforced) and bounds what a header can make a reader
//!   allocate: one segment buffer of at most 16 MiB.
//!
//! Known limits: a file can be replaced by an older file sealed under the same key and name
//! (no rollback protection); AES-GCM is not key-committing, so someone who holds two keys
//! could craft one file that opens under both; file length is not hidden.
//!
//! # Entry points
//!
//! - [`seal`] / [`unseal`]: whole files over [`std::io::Read`] and [`std::io::Write`].
//!   [`unseal`] writes each segment once it verifies, so on error the output holds a verified
//!   prefix: write to a temporary file and rename it only on success.
//! - [`SealedReader`]: `Read + Seek` over the plaintext, decrypting only what is touched.
//! - [`seal_in_place`] / [`unseal_in_place`]: a whole file in one `Vec`, converted in place.
//! - [`seal_in_place_separate_tags`] / [`unseal_in_place_separate_tags`]: the fastest, with no
//!   copy: segments are encrypted where they lie and the header and tags are kept apart
//!   ([`SeparateTags::write_to`] writes the file).
//! - [`Sealer`] / [`Unsealer`]: one segment at a time in caller buffers, for other layouts.
//!
//! Throughput against raw AES-256-GCM in place, 1 GiB in memory, default segments
//! (`cargo bench -p coffer-crypto --bench sealed_throughput`, on a shared 2-core AVX-512/VAES
//! EPYC where raw AES-256-GCM runs at about 13 GiB/s): the separate-tags pair at about 1.0x;
//! [`seal_in_place`] / [`unseal_in_place`] at 0.75–0.8x and up, paying for the in-cache shift
//! of each segment; [`seal`] / [`unseal`] at 0.4–0.55x, paying for the copies that `Read` and
//! `Write` make through main memory, which with VAES cost as much as the encryption.
//!
//! ```
//! use coffer_crypto::{sealed, Error, KeyId, MemoryKeys, SecretKey};
//!
//! let (id, key) = (KeyId::new("alpha.k1")?, SecretKey::generate(256)?);
//! let keys = MemoryKeys::new().with(id.clone(), key.clone());
//! let mut file = Vec::new();
//! sealed::seal(&id, &key, "report.csv", &b"a,b\n1,2\n"[..], &mut file)?;
//!
//! let mut plaintext = Vec::new();
//! sealed::unseal(&keys, "report.csv", &file[..], &mut plaintext)?;
//! assert_eq!(plaintext, b"a,b\n1,2\n");
//! assert!(sealed::unseal(&keys, "other.csv", &file[..], &mut Vec::new()).is_err());
//! # Ok::<(), Error>(())
//! ```
//!
//! [`KeyId`]: crate::KeyId

mod file;
mod header;
mod memory;
mod reader;
pub mod tink;

pub use file::{SealOptions, Sealer, Unsealer, seal, seal_with_options, unseal};
pub use header::{
    DEFAULT_SEGMENT_SIZE, Header, MAGIC, MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE, VERSION, read_header,
};
pub use memory::{
    SeparateTags, seal_in_place, seal_in_place_separate_tags, unseal_in_place,
    unseal_in_place_separate_tags,
};
pub use reader::SealedReader;
