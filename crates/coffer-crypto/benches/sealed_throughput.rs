//! Sealed-file throughput against raw AES-256-GCM, measured side by side in one run.
//!
//! `cargo bench -p coffer-crypto --bench sealed_throughput`
//!
//! Environment: `COFFER_BENCH_MIB` (default 1024) sets the plaintext size, `COFFER_BENCH_ROUNDS`
//! (default 3) the rounds (each method's best round is reported), and
//! `COFFER_BENCH_SEGMENT_KIB` the segment size (default: the format's default).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::time::{Duration, Instant};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use coffer_crypto::sealed::{self, SealOptions};
use coffer_crypto::{KeyId, MemoryKeys, SecretKey};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Method<'a> {
    name: String,
    best: Duration,
    run: Box<dyn FnMut() + 'a>,
}

fn main() {
    // `cargo bench` passes `--bench`; any other filter argument is ignored.
    let mib = env("COFFER_BENCH_MIB", 1024);
    let rounds = env("COFFER_BENCH_ROUNDS", 3).max(1);
    let len = mib << 20;
    let plaintext: Vec<u8> = (0..len)
        .map(|i| (i as u64).wrapping_mul(0x9e37_79b9) as u8)
        .collect();

    let segment_kib = env(
        "COFFER_BENCH_SEGMENT_KIB",
        (sealed::DEFAULT_SEGMENT_SIZE >> 10) as usize,
    );
    let options = SealOptions::default()
        .with_segment_size(u32::try_from(segment_kib << 10).unwrap())
        .unwrap();
    let key = SecretKey::generate(256).unwrap();
    let id = KeyId::new("bench.k1").unwrap();
    let keys = MemoryKeys::new().with(id.clone(), key.clone());
    let name = "bench.bin";
    let raw_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key.expose_secret()).unwrap());

    let mut sealed_file = Vec::new();
    sealed::seal_with_options(&id, &key, name, options, &plaintext[..], &mut sealed_file).unwrap();

    // Every output buffer is allocated and touched once up front, as the raw buffer is, so no
    // method pays for page faults.
    let mut raw_buf = plaintext.clone();
    let mut raw_chunks = plaintext.clone();
    let mut out = vec![0u8; sealed_file.len() + (1 << 20)];
    let mut back = out.clone();
    // Each seal_* method is followed by its unseal_*, which restores the plaintext.
    let detached = std::cell::RefCell::new(plaintext.clone());
    let parts = std::cell::RefCell::new(None);
    let in_place = std::cell::RefCell::new({
        let mut v = Vec::with_capacity(out.len());
        v.extend_from_slice(&plaintext);
        v
    });

    let mut methods: Vec<Method> = vec![
        Method {
            name: "raw AES-256-GCM, one seal_in_place_separate_tag".into(),
            best: Duration::MAX,
            run: Box::new(|| {
                let nonce = Nonce::assume_unique_for_key([1; 12]);
                let _tag = raw_key
                    .seal_in_place_separate_tag(nonce, Aad::empty(), &mut raw_buf)
                    .unwrap();
            }),
        },
        Method {
            name: "raw AES-256-GCM, in place per 64 KiB".into(),
            best: Duration::MAX,
            run: Box::new(|| {
                for (i, chunk) in raw_chunks.chunks_mut(64 << 10).enumerate() {
                    let mut n = [0u8; 12];
                    n[..8].copy_from_slice(&(i as u64).to_be_bytes());
                    let nonce = Nonce::assume_unique_for_key(n);
                    let _tag = std::hint::black_box(
                        raw_key
                            .seal_in_place_separate_tag(nonce, Aad::empty(), chunk)
                            .unwrap(),
                    );
                }
            }),
        },
        Method {
            name: "sealed::seal (Read -> Write)".into(),
            best: Duration::MAX,
            run: Box::new(|| {
                out.clear();
                sealed::seal_with_options(&id, &key, name, options, &plaintext[..], &mut out)
                    .unwrap();
            }),
        },
        Method {
            name: "sealed::unseal (Read -> Write)".into(),
            best: Duration::MAX,
            run: Box::new(|| {
                back.clear();
                sealed::unseal(&keys, name, &sealed_file[..], &mut back).unwrap();
            }),
        },
        Method {
            name: "sealed::seal_in_place_separate_tags".into(),
            best: Duration::MAX,
            run: Box::new(|| {
                let mut buf = detached.borrow_mut();
                *parts.borrow_mut() = Some(
                    sealed::seal_in_place_separate_tags(&id, &key, name, options, &mut buf)
                        .unwrap(),
                );
            }),
        },
        Method {
            name: "sealed::unseal_in_place_separate_tags".into(),
            best: Duration::MAX,
            run: Box::new(|| {
                let parts = parts.borrow();
                let parts = parts.as_ref().unwrap();
                let mut buf = detached.borrow_mut();
                sealed::unseal_in_place_separate_tags(
                    &keys,
                    name,
                    parts.header(),
                    parts.tags(),
                    &mut buf,
                )
                .unwrap();
            }),
        },
        Method {
            name: "sealed::seal_in_place".into(),
            best: Duration::MAX,
            run: Box::new(|| {
                in_place.borrow_mut().truncate(len);
                let mut buf = in_place.borrow_mut();
                sealed::seal_in_place(&id, &key, name, options, &mut buf).unwrap();
            }),
        },
        Method {
            name: "sealed::unseal_in_place".into(),
            best: Duration::MAX,
            run: Box::new(|| {
                let mut buf = in_place.borrow_mut();
                sealed::unseal_in_place(&keys, name, &mut buf).unwrap();
            }),
        },
    ];
    for _ in 0..rounds {
        for m in &mut methods {
            let start = Instant::now();
            (m.run)();
            m.best = m.best.min(start.elapsed());
        }
    }
    let report: Vec<(String, Duration)> = methods.into_iter().map(|m| (m.name, m.best)).collect();

    // The timings only mean something if what was timed is right.
    let mut check = Vec::new();
    sealed::unseal(&keys, name, &out[..], &mut check).unwrap();
    assert!(
        check == plaintext,
        "seal output does not unseal to the plaintext"
    );
    assert!(back == plaintext, "unseal output differs");
    assert!(
        *in_place.borrow() == plaintext,
        "in-place round trip differs"
    );
    assert!(
        *detached.borrow() == plaintext,
        "separate-tags round trip differs"
    );

    let gib = len as f64 / (1u64 << 30) as f64;
    let baseline = report[0].1.as_secs_f64();
    println!("plaintext {mib} MiB, best of {rounds} rounds, segments of {segment_kib} KiB");
    for (name, best) in &report {
        let secs = best.as_secs_f64();
        println!(
            "{name:<52} {secs:>8.3} s {:>7.2} GiB/s  {:.3}x raw",
            gib / secs,
            baseline / secs
        );
    }
}
