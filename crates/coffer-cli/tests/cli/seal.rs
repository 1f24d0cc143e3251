//! `coffer seal` / `coffer unseal`: sealed files and age delivery, as an attacker sees them.

use std::fs;
use std::process::Command;

use crate::common::{Party, only_files};

/// Segment size of sealed files written by the CLI (the format's default).
const SEGMENT: usize = 64 << 10;

fn sample(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
        .collect()
}

/// A party with key `k`, a plaintext `data.bin` and its sealed form `data.sealed`.
fn sealed_party(len: usize) -> (Party, Vec<u8>, Vec<u8>) {
    let p = Party::init("alice");
    p.ok(&["key", "new", "k"]);
    let data = sample(len);
    fs::write(p.path("data.bin"), &data).unwrap();
    p.ok(&["seal", "data.bin", "-o", "data.sealed", "--key", "k"]);
    let sealed = fs::read(p.path("data.sealed")).unwrap();
    (p, data, sealed)
}

/// Writes `bytes` as `data.sealed`, unseals it, and requires a refusal naming `needle` that
/// leaves no output behind.
fn refused(p: &Party, bytes: &[u8], needle: &str) {
    fs::write(p.path("data.sealed"), bytes).unwrap();
    let err = p.fails(1, &["unseal", "data.sealed", "-o", "out.bin"]);
    assert!(
        err.to_lowercase().contains(needle),
        "expected {needle:?} in: {err}"
    );
    only_files(p.dir.path(), &["home", "data.bin", "data.sealed"]);
}

#[test]
fn seal_round_trips_across_segments() {
    for len in [0, 1, SEGMENT - 60, SEGMENT, 3 * SEGMENT + 5] {
        let (p, data, _) = sealed_party(len);
        p.ok(&["unseal", "data.sealed", "-o", "out.bin"]);
        assert_eq!(fs::read(p.path("out.bin")).unwrap(), data, "length {len}");
    }
}

#[test]
fn tampering_is_refused_and_named() {
    let (p, _, sealed) = sealed_party(3 * SEGMENT + 100);
    let header = 12 + 1; // magic, version, id length, "k", segment size
    for at in [
        0,
        7,
        header - 1,
        header + 3,
        header + 60,
        SEGMENT + 5,
        sealed.len() - 1,
    ] {
        let mut bad = sealed.clone();
        bad[at] ^= 0x40;
        let needle = if at < header {
            ""
        } else {
            "authentication failed"
        };
        refused(&p, &bad, needle);
    }
    for cut in [0, 5, header + 10, SEGMENT, 2 * SEGMENT, sealed.len() - 1] {
        refused(&p, &sealed[..cut], "");
    }
    let mut appended = sealed.clone();
    appended.extend_from_slice(&[0u8; 17]);
    refused(&p, &appended, "authentication failed");
    // Swap segments 1 and 2 (both full segments: they start at SEGMENT and 2*SEGMENT past the
    // stream start).
    let start = header;
    let mut swapped = sealed.clone();
    let (s1, s2) = (start + SEGMENT, start + 2 * SEGMENT);
    swapped[s1..s2].copy_from_slice(&sealed[s2..s2 + SEGMENT]);
    swapped[s2..s2 + SEGMENT].copy_from_slice(&sealed[s1..s2]);
    refused(&p, &swapped, "authentication failed");
    refused(&p, b"not a sealed file at all", "malformed");
}

#[test]
fn a_renamed_file_fails_unless_its_name_is_given() {
    let (p, data, _) = sealed_party(1000);
    fs::rename(p.path("data.sealed"), p.path("other.sealed")).unwrap();
    let err = p.fails(1, &["unseal", "other.sealed", "-o", "out.bin"]);
    assert!(err.contains("authentication failed"), "{err}");
    assert!(!p.path("out.bin").exists());
    p.ok(&[
        "unseal",
        "other.sealed",
        "-o",
        "out.bin",
        "--name",
        "data.sealed",
    ]);
    assert_eq!(fs::read(p.path("out.bin")).unwrap(), data);
}

#[test]
fn the_wrong_key_is_refused_and_a_missing_key_named() {
    let (p, _, sealed) = sealed_party(1000);
    let other = Party::init("bob");
    fs::write(other.path("data.sealed"), &sealed).unwrap();
    let err = other.fails(1, &["unseal", "data.sealed", "-o", "out.bin"]);
    assert!(err.contains("key not found: k"), "{err}");
    other.ok(&["key", "new", "k"]); // same id, different key
    let err = other.fails(1, &["unseal", "data.sealed", "-o", "out.bin"]);
    assert!(err.contains("authentication failed"), "{err}");
    only_files(other.dir.path(), &["home", "data.sealed"]);
    drop(p);
}

#[test]
fn age_delivery_opens_with_coffer_and_with_the_age_command() {
    let alice = Party::init("alice");
    let bob = Party::init("bob");
    let data = sample(200_000);
    fs::write(alice.path("result.csv"), &data).unwrap();
    let to_bob = bob.show_json()["recipient"].as_str().unwrap().to_owned();
    let to_alice = alice.show_json()["recipient"].as_str().unwrap().to_owned();
    alice.ok(&[
        "seal",
        "result.csv",
        "-o",
        "result.age",
        "--to",
        &to_bob,
        "--to",
        &to_alice,
    ]);
    let age_file = fs::read(alice.path("result.age")).unwrap();
    assert!(age_file.starts_with(b"age-encryption.org/v1\n"));

    fs::write(bob.path("result.age"), &age_file).unwrap();
    bob.ok(&["unseal", "result.age", "-o", "result.csv"]);
    assert_eq!(fs::read(bob.path("result.csv")).unwrap(), data);

    // Debian's age binary with the identity file Coffer wrote.
    let identity = bob.show_json()["age_identity_file"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = Command::new("age")
        .args(["-d", "-i", &identity, "-o"])
        .arg(bob.path("by-age.csv"))
        .arg(bob.path("result.age"))
        .output()
        .expect("the `age` command (Debian package `age`) must be installed; run ./.ci/run");
    assert!(
        out.status.success(),
        "age -d failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(bob.path("by-age.csv")).unwrap(), data);
}

#[test]
fn age_files_refuse_the_wrong_recipient_and_tampering() {
    let alice = Party::init("alice");
    let bob = Party::init("bob");
    let mallory = Party::init("mallory");
    fs::write(alice.path("r.csv"), b"secret").unwrap();
    let to_bob = bob.show_json()["recipient"].as_str().unwrap().to_owned();
    alice.ok(&["seal", "r.csv", "-o", "r.age", "--to", &to_bob]);
    let age_file = fs::read(alice.path("r.age")).unwrap();

    fs::write(mallory.path("r.age"), &age_file).unwrap();
    let err = mallory.fails(1, &["unseal", "r.age", "-o", "r.csv"]);
    assert!(err.contains("wrong recipient"), "{err}");
    only_files(mallory.dir.path(), &["home", "r.age"]);

    for at in [30, age_file.len() / 2, age_file.len() - 1] {
        let mut bad = age_file.clone();
        bad[at] ^= 0x01;
        fs::write(bob.path("r.age"), &bad).unwrap();
        bob.fails(1, &["unseal", "r.age", "-o", "r.csv"]);
        only_files(bob.dir.path(), &["home", "r.age"]);
    }
    alice.fails(
        1,
        &["seal", "r.csv", "-o", "x.age", "--to", "age1notarecipient"],
    );
    alice.fails(2, &["seal", "r.csv", "-o", "x.age"]);
}
