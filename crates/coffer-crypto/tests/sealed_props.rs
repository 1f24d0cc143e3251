//! Property tests for sealed files, with 4 KiB segments so that boundaries are cheap to hit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::io::{Cursor, Read, Seek, SeekFrom};

use coffer_crypto::MemoryKeys;
use coffer_crypto::sealed::{self, SealedReader};
use proptest::prelude::*;

mod common;
use common::{FIRST, NEXT, SEGMENT, data, options};

fn id() -> coffer_crypto::KeyId {
    common::id("prop.k1")
}

fn key() -> coffer_crypto::SecretKey {
    common::key(0x5a)
}

fn keys() -> MemoryKeys {
    MemoryKeys::new().with(id(), key())
}

fn seal(name: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    sealed::seal_with_options(&id(), &key(), name, options(), data, &mut out).unwrap();
    out
}

/// `true` if every way of unsealing refuses `file`.
fn all_refuse(name: &str, file: &[u8]) -> bool {
    let streamed = sealed::unseal(&keys(), name, file, Vec::new()).is_err();
    let in_place = sealed::unseal_in_place(&keys(), name, &mut file.to_vec()).is_err();
    let random = match SealedReader::open(&keys(), name, Cursor::new(file)) {
        Err(_) => true,
        Ok(mut r) => r.read_to_end(&mut Vec::new()).is_err(),
    };
    streamed && in_place && random
}

/// Lengths spread over four segments, and every segment boundary ± 1.
fn length() -> impl Strategy<Value = usize> {
    let boundaries: Vec<usize> = (0..4)
        .flat_map(|k| {
            let b = FIRST + k * NEXT;
            [b - 1, b, b + 1]
        })
        .chain([0, 1])
        .collect();
    prop_oneof![
        0..FIRST + 3 * NEXT + 50,
        proptest::sample::select(boundaries)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn seal_unseal_round_trips(len in length(), seed: u8, name in "\\PC{0,40}") {
        let plaintext = data(len, seed);
        let file = seal(&name, &plaintext);
        let mut out = Vec::new();
        prop_assert_eq!(sealed::unseal(&keys(), &name, &file[..], &mut out).unwrap(), len as u64);
        prop_assert_eq!(&out, &plaintext);

        let mut buf = plaintext.clone();
        sealed::seal_in_place(&id(), &key(), &name, options(), &mut buf).unwrap();
        prop_assert_eq!(buf.len(), file.len());
        sealed::unseal_in_place(&keys(), &name, &mut buf).unwrap();
        prop_assert_eq!(&buf, &plaintext);

        let mut segments = plaintext.clone();
        let parts =
            sealed::seal_in_place_separate_tags(&id(), &key(), &name, options(), &mut segments)
                .unwrap();
        let mut joined = Vec::new();
        parts.write_to(&segments, &mut joined).unwrap();
        let mut out = Vec::new();
        sealed::unseal(&keys(), &name, &joined[..], &mut out).unwrap();
        prop_assert_eq!(&out, &plaintext);
        let (header, tags) = (parts.header(), parts.tags());
        sealed::unseal_in_place_separate_tags(&keys(), &name, header, tags, &mut segments)
            .unwrap();
        prop_assert_eq!(&segments, &plaintext);
    }

    #[test]
    fn another_name_is_refused(len in length(), name in "\\PC{0,20}", other in "\\PC{0,20}") {
        prop_assume!(name != other);
        let file = seal(&name, &data(len, 1));
        prop_assert!(all_refuse(&other, &file));
    }

    #[test]
    fn any_flipped_bit_is_refused(len in length(), at: prop::sample::Index, bit in 0..8u8) {
        let mut file = seal("f", &data(len, 2));
        let i = at.index(file.len());
        file[i] ^= 1 << bit;
        prop_assert!(all_refuse("f", &file), "flip at byte {} of {}", i, file.len());
    }

    #[test]
    fn any_truncation_is_refused(len in length(), at: prop::sample::Index) {
        let file = seal("t", &data(len, 3));
        let cut = at.index(file.len());
        prop_assert!(all_refuse("t", &file[..cut]), "cut at {} of {}", cut, file.len());
    }

    #[test]
    fn truncation_at_a_segment_boundary_is_refused(
        len in FIRST + 1..FIRST + 4 * NEXT,
        at: prop::sample::Index,
    ) {
        let file = seal("t", &data(len, 3));
        let header = sealed::Header::parse(&file).unwrap().1;
        let boundaries: Vec<usize> = (1..)
            .map(|s| header + s * SEGMENT as usize)
            .take_while(|&b| b < file.len())
            .collect();
        let cut = boundaries[at.index(boundaries.len())];
        prop_assert!(all_refuse("t", &file[..cut]), "cut at {} of {}", cut, file.len());
    }

    #[test]
    fn appended_bytes_are_refused(
        len in length(),
        extra in proptest::collection::vec(any::<u8>(), 1..5000),
    ) {
        let mut file = seal("a", &data(len, 4));
        file.extend_from_slice(&extra);
        prop_assert!(all_refuse("a", &file));
    }

    #[test]
    fn swapped_segments_are_refused(
        full in 2..6usize,
        tail in 0..NEXT,
        pick: (prop::sample::Index, prop::sample::Index),
    ) {
        // Segments 1..=full hold NEXT bytes each: same length, so they can swap places.
        let file = seal("s", &data(FIRST + full * NEXT + tail, 5));
        let header = sealed::Header::parse(&file).unwrap().1;
        let start = |s: usize| header + s * SEGMENT as usize;
        let (i, j) = (1 + pick.0.index(full), 1 + pick.1.index(full));
        prop_assume!(i != j);
        let mut swapped = file.clone();
        swapped[start(i)..start(i + 1)].copy_from_slice(&file[start(j)..start(j + 1)]);
        swapped[start(j)..start(j + 1)].copy_from_slice(&file[start(i)..start(i + 1)]);
        prop_assert!(all_refuse("s", &swapped));
    }

    #[test]
    fn sealed_reader_matches_the_plaintext(
        len in length(),
        ops in proptest::collection::vec((0..3u8, any::<i64>(), 0..9000usize), 1..12),
    ) {
        let plaintext = data(len, 6);
        let file = seal("r", &plaintext);
        let mut reader = SealedReader::open(&keys(), "r", Cursor::new(file)).unwrap();
        prop_assert_eq!(reader.plaintext_len(), len as u64);
        let mut model = Cursor::new(plaintext);
        for (kind, offset, read_len) in ops {
            let span = len as i64 + 100;
            let to = match kind {
                0 => SeekFrom::Start(offset.rem_euclid(span) as u64),
                1 => SeekFrom::End(offset.rem_euclid(span) - len as i64),
                _ => SeekFrom::Current(offset % span),
            };
            let (got, want) = (reader.seek(to), model.seek(to));
            prop_assert_eq!(got.is_ok(), want.is_ok(), "seek {:?}", to);
            if got.is_err() {
                continue;
            }
            prop_assert_eq!(got.unwrap(), want.unwrap());
            let mut a = vec![0; read_len];
            let mut b = vec![0; read_len];
            let n = read_fully(&mut reader, &mut a);
            prop_assert_eq!(n, read_fully(&mut model, &mut b));
            prop_assert_eq!(&a[..n], &b[..n]);
        }
    }
}

fn read_fully(r: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]).unwrap() {
            0 => break,
            n => done += n,
        }
    }
    done
}
