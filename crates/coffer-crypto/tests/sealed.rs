//! Sealed files: round trips through every API, the byte format, and every check that must fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::io::{Cursor, Read, Seek, SeekFrom};

use coffer_crypto::sealed::tink::{self, HkdfHash, StreamParams};
use coffer_crypto::sealed::{self, Header, SealOptions, SealedReader, Sealer};
use coffer_crypto::{Error, MemoryKeys, SecretKey};

mod common;
use common::{FIRST, NEXT, SEGMENT, id, key, options};

fn keys() -> MemoryKeys {
    MemoryKeys::new()
        .with(id("alpha.k1"), key(1))
        .with(id("alpha.k2"), key(1))
        .with(id("beta.k1"), key(2))
}

fn plaintext(len: usize) -> Vec<u8> {
    common::data(len, 31)
}

fn seal(name: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let n = sealed::seal_with_options(&id("alpha.k1"), &key(1), name, options(), data, &mut out)
        .unwrap();
    assert_eq!(n, data.len() as u64);
    out
}

fn unseal(name: &str, file: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    sealed::unseal(&keys(), name, file, &mut out).map(|_| out)
}

fn auth_failure(err: Error) -> String {
    match err {
        Error::AuthenticationFailed { what } => what,
        other => panic!("expected an authentication failure, got {other:?}"),
    }
}

/// The coffer header of the files these tests make: 8 + len("alpha.k1") + 4.
const COFFER_HEADER: usize = 20;

/// Where segment `i` starts in a file sealed by `seal`.
fn segment_start(i: usize) -> usize {
    COFFER_HEADER + if i == 0 { 40 } else { i * SEGMENT as usize }
}

#[test]
fn every_api_round_trips_sizes_around_segment_boundaries() {
    let sizes = [
        0,
        1,
        FIRST - 1,
        FIRST,
        FIRST + 1,
        FIRST + NEXT - 1,
        FIRST + NEXT,
        FIRST + NEXT + 1,
        FIRST + 3 * NEXT + 77,
    ];
    for len in sizes {
        let data = plaintext(len);
        let file = seal("data.bin", &data);
        let sealer = Sealer::new(&id("alpha.k1"), &key(1), "data.bin", options()).unwrap();
        assert_eq!(
            sealer.sealed_len(len as u64),
            Some(file.len() as u64),
            "len {len}"
        );

        let mut segments = data.clone();
        let parts = sealed::seal_in_place_separate_tags(
            &id("alpha.k1"),
            &key(1),
            "data.bin",
            options(),
            &mut segments,
        )
        .unwrap();
        let mut sliced = Vec::new();
        let written = parts.write_to(&segments, &mut sliced).unwrap();
        assert_eq!(written, sliced.len() as u64);
        sealed::unseal_in_place_separate_tags(
            &keys(),
            "data.bin",
            parts.header(),
            parts.tags(),
            &mut segments,
        )
        .unwrap();
        assert_eq!(segments, data);
        let mut in_place = data.clone();
        sealed::seal_in_place(
            &id("alpha.k1"),
            &key(1),
            "data.bin",
            options(),
            &mut in_place,
        )
        .unwrap();
        assert_eq!(sliced.len(), file.len());
        assert_eq!(in_place.len(), file.len());

        for f in [&file, &sliced, &in_place] {
            assert_eq!(unseal("data.bin", f).unwrap(), data, "len {len}");
            let mut buf = f.clone();
            sealed::unseal_in_place(&keys(), "data.bin", &mut buf).unwrap();
            assert_eq!(buf, data);
            let mut reader = SealedReader::open(&keys(), "data.bin", Cursor::new(f)).unwrap();
            assert_eq!(reader.plaintext_len(), len as u64);
            let mut out = Vec::new();
            reader.read_to_end(&mut out).unwrap();
            assert_eq!(out, data);
        }
    }
}

#[test]
fn the_default_options_round_trip() {
    let data = plaintext(3 * sealed::DEFAULT_SEGMENT_SIZE as usize + 5);
    let mut file = Vec::new();
    sealed::seal(&id("alpha.k1"), &key(1), "big", &data[..], &mut file).unwrap();
    let (header, _) = Header::parse(&file).unwrap();
    assert_eq!(header.segment_size(), sealed::DEFAULT_SEGMENT_SIZE);
    assert_eq!(unseal("big", &file).unwrap(), data);
}

#[test]
fn the_format_is_a_coffer_header_then_a_tink_stream() {
    let data = plaintext(10_000);
    let file = seal("report.csv", &data);
    assert_eq!(&file[..6], b"CFSEAL");
    assert_eq!(file[6], 1);
    assert_eq!(file[7], 8);
    assert_eq!(&file[8..16], b"alpha.k1");
    assert_eq!(&file[16..20], &SEGMENT.to_be_bytes());
    assert_eq!(file[20], 40, "Tink header length byte");

    let (header, consumed) = Header::parse(&file).unwrap();
    assert_eq!(consumed, COFFER_HEADER);
    assert_eq!(header.key_id().as_str(), "alpha.k1");
    assert_eq!(header.version(), 1);
    assert_eq!(header.segment_size(), SEGMENT);
    assert_eq!(header.encode(), file[..consumed]);
    assert_eq!(sealed::read_header(&file[..]).unwrap(), header);

    // A plain Tink AES-GCM-HKDF-SHA256 reader, given the associated data, reads the stream.
    let params = StreamParams::new(HkdfHash::Sha256, 32, SEGMENT).unwrap();
    let aad = header.associated_data("report.csv");
    let mut out = Vec::new();
    tink::decrypt(params, &key(1), &aad, &file[consumed..], &mut out).unwrap();
    assert_eq!(out, data);
}

#[test]
fn two_seals_of_the_same_data_differ() {
    let data = plaintext(100);
    assert_ne!(seal("x", &data), seal("x", &data));
}

#[test]
fn a_wrong_key_or_name_fails_on_segment_zero() {
    let file = seal("a.csv", &plaintext(9000));
    let what = auth_failure(unseal("b.csv", &file).unwrap_err());
    assert!(what.starts_with("segment 0"), "{what}");

    let other = MemoryKeys::new().with(id("alpha.k1"), key(9));
    let what = auth_failure(sealed::unseal(&other, "a.csv", &file[..], Vec::new()).unwrap_err());
    assert!(what.starts_with("segment 0"), "{what}");
}

#[test]
fn a_missing_key_is_named() {
    let file = seal("a.csv", b"x");
    let none = MemoryKeys::new().with(id("beta.k1"), key(1));
    match sealed::unseal(&none, "a.csv", &file[..], Vec::new()).unwrap_err() {
        Error::KeyNotFound { id } => assert_eq!(id, "alpha.k1"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        SealedReader::open(&none, "a.csv", Cursor::new(&file)).unwrap_err(),
        Error::KeyNotFound { .. }
    ));
}

#[test]
fn only_256_bit_keys_seal_or_unseal() {
    let short = SecretKey::from_bytes(&[1; 16]).unwrap();
    let err = sealed::seal(&id("alpha.k1"), &short, "a", &b"x"[..], Vec::new()).unwrap_err();
    assert!(matches!(err, Error::InvalidKey { .. }), "{err:?}");

    let file = seal("a", b"x");
    let wrong = MemoryKeys::new().with(id("alpha.k1"), short);
    let err = sealed::unseal(&wrong, "a", &file[..], Vec::new()).unwrap_err();
    assert!(matches!(err, Error::InvalidKey { .. }), "{err:?}");
}

#[test]
fn header_edits_fail() {
    let file = seal("a.csv", &plaintext(5000));
    // Another key id holding the same key material: only the header binding catches this.
    let mut other_id = file.clone();
    other_id[8..16].copy_from_slice(b"alpha.k2");
    let what = auth_failure(unseal("a.csv", &other_id).unwrap_err());
    assert!(what.starts_with("segment 0"), "{what}");

    // Another segment size: the layout and the key both change.
    let mut other_size = file.clone();
    other_size[16..20].copy_from_slice(&8192u32.to_be_bytes());
    assert!(unseal("a.csv", &other_size).is_err());

    let mut version = file.clone();
    version[6] = 2;
    let err = unseal("a.csv", &version).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Malformed {
                what: "sealed header",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("version 2"), "{err}");

    let mut magic = file.clone();
    magic[0] = b'X';
    assert!(
        unseal("a.csv", &magic)
            .unwrap_err()
            .to_string()
            .contains("magic")
    );

    let mut size = file.clone();
    size[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
    let err = unseal("a.csv", &size).unwrap_err();
    assert!(err.to_string().contains("segment size"), "{err}");

    let mut stream_header = file.clone();
    stream_header[COFFER_HEADER] = 24;
    let err = unseal("a.csv", &stream_header).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Malformed {
                what: "stream header",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn swapped_files_fail() {
    let a = seal("a.csv", &plaintext(6000));
    let b = seal("b.csv", &plaintext(6000));
    assert!(unseal("a.csv", &b).is_err());
    assert!(unseal("b.csv", &a).is_err());
    // Segments cannot be spliced between files either: each file has its own key.
    let mut spliced = a.clone();
    spliced[segment_start(1)..].copy_from_slice(&b[segment_start(1)..]);
    let what = auth_failure(unseal("a.csv", &spliced).unwrap_err());
    assert!(what.starts_with("segment 1"), "{what}");
}

#[test]
fn tampering_names_the_segment_and_releases_only_verified_data() {
    let data = plaintext(FIRST + 3 * NEXT + 10);
    let file = seal("a", &data);
    for segment in 0..5 {
        let mut bad = file.clone();
        bad[segment_start(segment) + 3] ^= 1;
        let mut out = Vec::new();
        let err = sealed::unseal(&keys(), "a", &bad[..], &mut out).unwrap_err();
        let what = auth_failure(err);
        assert!(what.starts_with(&format!("segment {segment}")), "{what}");
        let verified = if segment == 0 {
            0
        } else {
            FIRST + (segment - 1) * NEXT
        };
        assert_eq!(
            out,
            data[..verified],
            "streaming output for segment {segment}"
        );
        let mut buf = bad.clone();
        assert!(sealed::unseal_in_place(&keys(), "a", &mut buf).is_err());
        assert_eq!(
            buf,
            data[..verified],
            "in-place output for segment {segment}"
        );
    }
}

#[test]
fn truncation_extension_and_reordering_fail() {
    let data = plaintext(FIRST + 3 * NEXT + 10);
    let file = seal("a", &data);
    // Cut at every segment boundary: the last remaining segment was not sealed as last.
    for segment in 1..5 {
        let cut = &file[..segment_start(segment)];
        let what = auth_failure(unseal("a", cut).unwrap_err());
        assert!(what.contains(&format!("segment {}", segment - 1)), "{what}");
        assert!(SealedReader::open(&keys(), "a", Cursor::new(cut)).is_err());
    }
    // Cut inside the tag of the last segment, or anywhere else.
    for cut in [file.len() - 1, file.len() - 16, segment_start(2) + 5, 30, 0] {
        assert!(unseal("a", &file[..cut]).is_err(), "cut at {cut}");
    }
    for extra in [&b"\0"[..], &[0; 16], &[0; 4096]] {
        let mut longer = file.clone();
        longer.extend_from_slice(extra);
        assert!(
            unseal("a", &longer).is_err(),
            "{} bytes appended",
            extra.len()
        );
        assert!(SealedReader::open(&keys(), "a", Cursor::new(&longer)).is_err());
    }
    let mut swapped = file.clone();
    let (one, two) = (segment_start(1), segment_start(2));
    swapped[one..two].copy_from_slice(&file[two..two + NEXT + 16]);
    swapped[two..two + NEXT + 16].copy_from_slice(&file[one..two]);
    let what = auth_failure(unseal("a", &swapped).unwrap_err());
    assert!(what.starts_with("segment 1"), "{what}");
    // A duplicated segment in place of another.
    let mut repeated = file.clone();
    repeated[two..two + NEXT + 16].copy_from_slice(&file[one..two]);
    assert!(unseal("a", &repeated).is_err());
}

#[test]
fn sealed_reader_reads_any_range() {
    let data = plaintext(FIRST + 4 * NEXT + 123);
    let file = seal("r", &data);
    let mut reader = SealedReader::open(&keys(), "r", Cursor::new(file)).unwrap();
    assert_eq!(reader.header().key_id().as_str(), "alpha.k1");
    for (start, len) in [
        (0, 10),
        (FIRST - 3, 10),
        (FIRST + NEXT - 1, 2 * NEXT + 2),
        (data.len() - 5, 5),
        (7, data.len() - 7),
    ] {
        reader.seek(SeekFrom::Start(start as u64)).unwrap();
        let mut buf = vec![0; len];
        reader.read_exact(&mut buf).unwrap();
        assert_eq!(buf, data[start..start + len], "range {start}+{len}");
    }
    assert_eq!(
        reader.seek(SeekFrom::End(-4)).unwrap(),
        data.len() as u64 - 4
    );
    let mut tail = Vec::new();
    reader.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, data[data.len() - 4..]);
    // Past the end reads nothing; before the start is an error.
    assert_eq!(
        reader.seek(SeekFrom::Current(10)).unwrap(),
        data.len() as u64 + 10
    );
    assert_eq!(reader.read(&mut [0; 8]).unwrap(), 0);
    assert!(
        reader
            .seek(SeekFrom::Current(-(data.len() as i64) - 11))
            .is_err()
    );
    assert_eq!(
        reader
            .seek(SeekFrom::Current(-(data.len() as i64) - 10))
            .unwrap(),
        0
    );
}

#[test]
fn sealed_reader_fails_on_a_tampered_segment_it_touches() {
    let data = plaintext(FIRST + 3 * NEXT);
    let mut file = seal("r", &data);
    file[segment_start(2) + 100] ^= 0x40;
    let mut reader = SealedReader::open(&keys(), "r", Cursor::new(file)).unwrap();
    let mut head = vec![0; FIRST + NEXT];
    reader.read_exact(&mut head).unwrap();
    assert_eq!(head, data[..FIRST + NEXT]);
    let err = reader.read(&mut [0; 16]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    let inner = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<Error>())
        .unwrap();
    assert!(inner.to_string().contains("segment 2"), "{inner}");
    // Later segments still read.
    reader
        .seek(SeekFrom::Start((FIRST + 2 * NEXT) as u64))
        .unwrap();
    let mut last = Vec::new();
    reader.read_to_end(&mut last).unwrap();
    assert_eq!(last, data[FIRST + 2 * NEXT..]);
}

#[test]
fn sealed_reader_starts_at_the_current_position() {
    let data = plaintext(5000);
    let mut container = b"some prefix".to_vec();
    container.extend_from_slice(&seal("r", &data));
    let mut cursor = Cursor::new(container);
    cursor.seek(SeekFrom::Start(11)).unwrap();
    let mut reader = SealedReader::open(&keys(), "r", cursor).unwrap();
    let mut out = Vec::new();
    reader.read_to_end(&mut out).unwrap();
    assert_eq!(out, data);
}

#[test]
fn the_low_level_sealer_refuses_misuse() {
    let mut sealer = Sealer::new(&id("alpha.k1"), &key(1), "n", options()).unwrap();
    assert_eq!(sealer.next_segment_len(), FIRST);
    let mut short = vec![0; FIRST - 1];
    assert!(matches!(
        sealer.seal_segment_in_place(&mut short, false),
        Err(Error::ApiMisuse(_))
    ));
    let mut full = vec![0; FIRST];
    sealer.seal_segment_in_place(&mut full, false).unwrap();
    assert_eq!(sealer.next_segment_len(), NEXT);
    let mut rest = vec![0; 10];
    sealer.seal_segment_in_place(&mut rest, true).unwrap();
    assert!(sealer.is_finished());
    assert!(matches!(
        sealer.seal_segment_in_place(&mut rest, true),
        Err(Error::ApiMisuse(_))
    ));
}

#[test]
fn the_low_level_sealer_writes_a_file_unseal_reads() {
    let data = plaintext(FIRST + NEXT + 9);
    let mut sealer = Sealer::new(&id("alpha.k1"), &key(1), "n", options()).unwrap();
    let mut file = sealer.header().to_vec();
    let mut buf = data.clone();
    let mut rest = &mut buf[..];
    loop {
        let n = sealer.next_segment_len().min(rest.len());
        let (segment, tail) = rest.split_at_mut(n);
        let tag = sealer
            .seal_segment_in_place(segment, tail.is_empty())
            .unwrap();
        file.extend_from_slice(segment);
        file.extend_from_slice(&tag);
        if tail.is_empty() {
            break;
        }
        rest = tail;
    }
    assert_eq!(unseal("n", &file).unwrap(), data);
}

#[test]
fn segment_sizes_are_bounded() {
    assert!(SealOptions::default().with_segment_size(4095).is_err());
    assert!(
        SealOptions::default()
            .with_segment_size((16 << 20) + 1)
            .is_err()
    );
    assert!(SealOptions::default().with_segment_size(16 << 20).is_ok());
}

#[test]
fn non_sealed_input_is_malformed_not_a_panic() {
    for input in [
        &b""[..],
        b"CFSE",
        b"CFSEAL",
        b"CFSEAL\x01",
        b"CFSEAL\x01\x00\x00\x00\x10\x00",
    ] {
        let err = unseal("x", input).unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{input:?}: {err:?}");
    }
    let header_only = Header::new(id("alpha.k1"), SEGMENT).unwrap().encode();
    assert!(matches!(
        unseal("x", &header_only).unwrap_err(),
        Error::Malformed {
            what: "stream header",
            ..
        }
    ));
}

#[test]
fn separate_tags_detect_tampering_reordering_and_a_wrong_count() {
    let data = plaintext(FIRST + 2 * NEXT + 1);
    let mut buf = data.clone();
    let parts =
        sealed::seal_in_place_separate_tags(&id("alpha.k1"), &key(1), "n", options(), &mut buf)
            .unwrap();
    assert_eq!(parts.tags().len(), 4);
    let sealed_buf = buf.clone();
    let open = |name: &str, header: &[u8], tags: &[[u8; 16]], buf: &mut Vec<u8>| {
        sealed::unseal_in_place_separate_tags(&keys(), name, header, tags, buf)
    };

    let what = auth_failure(open("m", parts.header(), parts.tags(), &mut buf.clone()).unwrap_err());
    assert!(what.starts_with("segment 0"), "{what}");

    let mut bad = sealed_buf.clone();
    bad[FIRST + 5] ^= 1;
    let what = auth_failure(open("n", parts.header(), parts.tags(), &mut bad).unwrap_err());
    assert!(what.starts_with("segment 1"), "{what}");

    let mut tags = parts.tags().to_vec();
    tags.swap(1, 2);
    assert!(open("n", parts.header(), &tags, &mut sealed_buf.clone()).is_err());
    let what =
        auth_failure(open("n", parts.header(), &parts.tags()[..3], &mut buf.clone()).unwrap_err());
    assert!(what.starts_with("segment count"), "{what}");
    assert!(
        open(
            "n",
            parts.header(),
            parts.tags(),
            &mut sealed_buf[..FIRST].to_vec()
        )
        .is_err()
    );

    let mut header = parts.header().to_vec();
    header.push(0);
    assert!(open("n", &header, parts.tags(), &mut sealed_buf.clone()).is_err());
    assert!(matches!(
        parts.write_to(&sealed_buf[1..], Vec::new()),
        Err(Error::ApiMisuse(_))
    ));

    let mut ok = sealed_buf.clone();
    assert_eq!(
        open("n", parts.header(), parts.tags(), &mut ok).unwrap(),
        data.len() as u64
    );
    assert_eq!(ok, data);
}
