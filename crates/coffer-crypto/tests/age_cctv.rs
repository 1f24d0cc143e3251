//! C2SP CCTV age vectors (testdata/aead_streaming/age_cctv) through the `age` crate.
//!
//! Every vector is decrypted the way a Coffer recipient would (`age::Decryptor`, with
//! `age::armor::ArmoredReader` for armored files) and the outcome is checked against `expect`.
//! The crate's errors are coarser than the vectors' classes; the mapping is in [`Class::admits`]
//! and says where it aliases classes. Vectors for recipient types the crate does not implement
//! (ML-KEM hybrid, `AGE-SECRET-KEY-PQ-1…`) must fail to decrypt and are counted apart.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::SecretString;
use age::{DecryptError, Identity};
use aws_lc_rs::digest::{SHA256, digest};

fn vector_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/aead_streaming/age_cctv/testdata")
}

/// The `expect:` classes of the CCTV README.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Success,
    NoMatch,
    HmacFailure,
    HeaderFailure,
    PayloadFailure,
    ArmorFailure,
}

impl Class {
    fn parse(s: &str) -> Self {
        match s {
            "success" => Self::Success,
            "no match" => Self::NoMatch,
            "HMAC failure" => Self::HmacFailure,
            "header failure" => Self::HeaderFailure,
            "payload failure" => Self::PayloadFailure,
            "armor failure" => Self::ArmorFailure,
            other => panic!("unknown expect class {other:?}"),
        }
    }
}

struct Vector {
    name: String,
    expect: Class,
    payload: Option<String>,
    identities: Vec<String>,
    passphrases: Vec<String>,
    armored: bool,
    body: Vec<u8>,
}

fn load(path: &Path) -> Vector {
    let raw = std::fs::read(path).unwrap();
    let split = raw
        .windows(2)
        .position(|w| w == b"\n\n")
        .expect("blank line");
    let header = std::str::from_utf8(&raw[..split]).unwrap();
    let mut body = raw[split + 2..].to_vec();
    let mut fields: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for line in header.lines() {
        let (k, v) = line.split_once(": ").expect("key: value");
        fields.entry(k).or_default().push(v);
    }
    let one = |k: &str| fields.get(k).map(|v| v[0].to_string());
    match one("compressed").as_deref() {
        None => {}
        Some("zlib") => {
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(&body[..])
                .read_to_end(&mut out)
                .unwrap();
            body = out;
        }
        Some(other) => panic!("unknown compression {other}"),
    }
    Vector {
        name: path.file_name().unwrap().to_string_lossy().into_owned(),
        expect: Class::parse(&one("expect").unwrap()),
        payload: one("payload"),
        identities: fields
            .get("identity")
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|s| s.to_string())
            .collect(),
        passphrases: fields
            .get("passphrase")
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|s| s.to_string())
            .collect(),
        armored: one("armored").as_deref() == Some("yes"),
        body,
    }
}

/// What the `age` crate did with a vector.
#[derive(Debug)]
enum Outcome {
    /// Decryption ran to the end and released this plaintext.
    Decrypted(Vec<u8>),
    /// The header or the recipient stanzas were refused.
    Refused(DecryptError),
    /// The payload failed after releasing this plaintext.
    PayloadError(Vec<u8>, io::Error),
}

fn run(v: &Vector, identities: &[Box<dyn Identity>]) -> Outcome {
    let input: Box<dyn Read> = if v.armored {
        Box::new(age::armor::ArmoredReader::new(&v.body[..]))
    } else {
        Box::new(&v.body[..])
    };
    let decryptor = match age::Decryptor::new(input) {
        Ok(d) => d,
        Err(e) => return Outcome::Refused(e),
    };
    let mut reader = match decryptor.decrypt(identities.iter().map(|i| i.as_ref())) {
        Ok(r) => r,
        Err(e) => return Outcome::Refused(e),
    };
    let mut out = Vec::new();
    match reader.read_to_end(&mut out) {
        Ok(_) => Outcome::Decrypted(out),
        Err(e) => Outcome::PayloadError(out, e),
    }
}

/// An identity string from a vector, if the crate implements its type.
fn identity(s: &str) -> Option<Box<dyn Identity>> {
    if s.starts_with("AGE-SECRET-KEY-PQ-1") {
        return None;
    }
    Some(Box::new(
        age::x25519::Identity::from_str(s).expect("x25519 identity parses"),
    ))
}

fn passphrase(s: &str) -> Box<dyn Identity> {
    let mut id = age::scrypt::Identity::new(SecretString::from(s.to_owned()));
    // Go's age refuses work factors above 22 and the vectors follow it; the crate's default
    // limit depends on this machine's speed.
    id.set_max_work_factor(22);
    Box::new(id)
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest(&SHA256, data))
}

impl Class {
    /// Whether `outcome` is what this class expects from the `age` crate, for a vector that
    /// unwraps with a passphrase if `scrypt`.
    ///
    /// The crate reports coarser errors than the vectors distinguish, so some classes alias:
    /// - header failure: the crate parses a malformed v1 header as an unknown format
    ///   (`UnknownFormat`), reports a header or nonce cut short as an I/O `UnexpectedEof`, and a
    ///   scrypt work factor above the limit as `ExcessiveWork`;
    /// - no match: its scrypt identity reports a wrong passphrase as `DecryptionFailed`;
    /// - armor failure: armor errors are I/O `InvalidData` errors, from the header parser or
    ///   while reading the payload; input whose first line is not the armor's begin line is
    ///   read as a binary age file and fails as `InvalidHeader`.
    ///
    /// HMAC failure and payload failure map one to one.
    fn admits(self, outcome: &Outcome, scrypt: bool) -> bool {
        use DecryptError as E;
        use io::ErrorKind::{InvalidData, UnexpectedEof};
        match (self, outcome) {
            (Self::Success, Outcome::Decrypted(_)) => true,
            (Self::NoMatch, Outcome::Refused(E::NoMatchingKeys)) => true,
            (Self::NoMatch, Outcome::Refused(E::DecryptionFailed)) => scrypt,
            (Self::HmacFailure, Outcome::Refused(E::InvalidMac)) => true,
            (
                Self::HeaderFailure,
                Outcome::Refused(E::InvalidHeader | E::UnknownFormat | E::ExcessiveWork { .. }),
            ) => true,
            (Self::HeaderFailure, Outcome::Refused(E::Io(e))) => e.kind() == UnexpectedEof,
            (Self::PayloadFailure, Outcome::PayloadError(_, e)) => {
                matches!(e.kind(), InvalidData | UnexpectedEof)
            }
            (Self::ArmorFailure, Outcome::Refused(E::Io(e)) | Outcome::PayloadError(_, e)) => {
                e.kind() == InvalidData
            }
            (Self::ArmorFailure, Outcome::Refused(E::InvalidHeader)) => true,
            _ => false,
        }
    }
}

/// Where age 0.12 departs from the reference implementation, pinned so that a fixed crate
/// shows up as a test failure: (vector, what the crate does, why).
const KNOWN_DIVERGENCES: &[(&str, &str, &str)] = &[
    (
        "armor_whitespace_outside",
        "Refused(InvalidHeader)",
        "the crate does not skip whitespace before the armor's begin line",
    ),
    (
        "stanza_missing_body",
        "Decrypted",
        "the crate accepts a stanza with no body line (the header MAC still verifies)",
    ),
    (
        "stanza_missing_final_line",
        "Decrypted",
        "the crate accepts a stanza whose body does not end with a short line (the header MAC \
         still verifies)",
    ),
];

fn summary(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Decrypted(_) => "Decrypted".into(),
        Outcome::Refused(e) => format!("Refused({e:?})"),
        Outcome::PayloadError(_, e) => format!("PayloadError({:?})", e.kind()),
    }
}

fn released(outcome: &Outcome) -> Option<&[u8]> {
    match outcome {
        Outcome::Decrypted(p) | Outcome::PayloadError(p, _) => Some(p),
        Outcome::Refused(_) => None,
    }
}

#[test]
fn every_cctv_vector_behaves_as_expected() {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(vector_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    assert_eq!(paths.len(), 143, "the CCTV set has 143 vectors");

    let mut checked: BTreeMap<Class, usize> = BTreeMap::new();
    let mut unsupported: BTreeMap<Class, usize> = BTreeMap::new();
    let mut divergent: BTreeMap<Class, usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    for path in &paths {
        let v = load(path);
        let parsed: Vec<Option<Box<dyn Identity>>> =
            v.identities.iter().map(|s| identity(s)).collect();
        let has_unsupported = parsed.iter().any(Option::is_none);
        let mut identities: Vec<Box<dyn Identity>> = parsed.into_iter().flatten().collect();
        identities.extend(v.passphrases.iter().map(|p| passphrase(p)));
        let outcome = run(&v, &identities);

        if has_unsupported {
            // The file key is only reachable through a recipient type the crate lacks, so
            // whatever the vector expects, decryption must not succeed.
            *unsupported.entry(v.expect).or_default() += 1;
            if matches!(outcome, Outcome::Decrypted(_)) {
                wrong.push(format!(
                    "{}: decrypted without a supported identity",
                    v.name
                ));
            }
            continue;
        }
        if let Some((_, does, why)) = KNOWN_DIVERGENCES.iter().find(|(n, ..)| *n == v.name) {
            *divergent.entry(v.expect).or_default() += 1;
            if summary(&outcome) != *does {
                wrong.push(format!(
                    "{}: known divergence ({why}) changed: now {}",
                    v.name,
                    summary(&outcome)
                ));
            }
            continue;
        }
        *checked.entry(v.expect).or_default() += 1;
        if !v.expect.admits(&outcome, !v.passphrases.is_empty()) {
            wrong.push(format!(
                "{}: expected {:?}, got {outcome:?}",
                v.name, v.expect
            ));
            continue;
        }
        // Whatever was released, even before a payload failure, must hash to `payload`.
        if let (Some(plaintext), Some(want)) = (released(&outcome), &v.payload) {
            let got = sha256_hex(plaintext);
            if &got != want {
                wrong.push(format!(
                    "{}: released {} bytes hashing to {got}, expected {want}",
                    v.name,
                    plaintext.len()
                ));
            }
        } else if v.expect == Class::Success {
            wrong.push(format!("{}: success vector without a payload hash", v.name));
        }
    }

    let total_checked: usize = checked.values().sum();
    let total_unsupported: usize = unsupported.values().sum();
    let total_divergent: usize = divergent.values().sum();
    println!("age CCTV: {total_checked} vectors behave as expected: {checked:?}");
    println!(
        "age CCTV: {total_unsupported} vectors need ML-KEM hybrid identities, which age 0.12 \
         lacks; all refused as required: {unsupported:?}"
    );
    println!("age CCTV: {total_divergent} known divergences of age 0.12, pinned: {divergent:?}");
    assert!(
        wrong.is_empty(),
        "{} vectors misbehaved:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(
        total_checked + total_unsupported + total_divergent,
        paths.len()
    );
    // Guard against a silent change in which vectors count as unsupported or divergent.
    assert_eq!(
        total_unsupported, 19,
        "hybrid vectors, armor_hybrid included"
    );
    assert_eq!(total_divergent, KNOWN_DIVERGENCES.len());
}
