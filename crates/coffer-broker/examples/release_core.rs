//! The broker core alone: `Broker::release` from many threads (the decision, the job's
//! signature and freshness, sealed-key opening, the signed audit entry, group commit with
//! `synchronous=FULL`), no network. `coffer bench broker` measures the same releases over
//! RA-TLS against the slim binary; this is the ceiling those numbers are read against.
//!
//! ```text
//! cargo run --release -p coffer-broker --example release_core -- [CLIENTS] [SECONDS]
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer_broker::Broker;
use coffer_manifest::Manifest;

fn main() {
    let mut args = std::env::args().skip(1);
    let clients: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(32)
        .max(1);
    let seconds: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5.0);
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(Broker::open(&dir.path().join("data")).unwrap());
    let yaml = common::yaml("core", true, 0);
    let manifest = Manifest::from_yaml(&yaml).unwrap();
    let now = common::now();
    let status = broker
        .submit_manifest(&yaml, &common::sigs(&manifest, &common::PARTIES), now)
        .unwrap();
    assert!(status.active, "{status:?}");
    let key = coffer_crypto::SecretKey::generate(256).unwrap();
    for (ds, owner) in [("a_data", "alpha"), ("b_data", "beta")] {
        broker
            .upload_key(&manifest.hash(), ds, owner, &key, now)
            .unwrap();
    }
    let worker = common::worker_identity(&dir.path().join("platform"), common::MEASUREMENT, false);
    let platform = coffer_tee::sim::SimPlatform::load_or_create(&dir.path().join("platform"))
        .unwrap()
        .public_key();
    let verified = coffer_attest::ratls::RaTlsCert::from_der(worker.cert_der())
        .unwrap()
        .verify_bound(
            &coffer_attest::Verifier::new().with_sim_root(platform),
            None,
            now,
        )
        .unwrap();

    let span = Duration::from_secs_f64(seconds.max(0.5));
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (broker, verified, manifest) =
                (Arc::clone(&broker), verified.clone(), manifest.clone());
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                while start.elapsed() < span {
                    let ask: coffer_net::broker::ReleaseRequest = serde_json::from_slice(
                        &common::release_body(&manifest, "joined", &common::good_inputs()),
                    )
                    .unwrap();
                    let t = Instant::now();
                    broker
                        .release(&manifest.hash(), &ask, &verified, 300, common::now())
                        .unwrap();
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let elapsed = start.elapsed();
    lat.sort_unstable();
    let pick = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e3;
    println!(
        "core releases: {clients} threads, {} in {:.1} s: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
        lat.len(),
        elapsed.as_secs_f64(),
        lat.len() as f64 / elapsed.as_secs_f64(),
        pick(0.5),
        pick(0.99)
    );
}
