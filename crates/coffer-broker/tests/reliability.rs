//! The broker under crashes, corruption and load: a real `coffer-broker` process killed with
//! SIGKILL at random points of a stream of uploads and releases (fixed seed), restarted, and
//! audited for every acknowledged write; corrupted state files; 1,000 concurrent clients.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use coffer_manifest::Manifest;
use common::*;
use http::Method;
use tokio::sync::Mutex;

/// xorshift64*: a fixed, dependency-free pseudo-random sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const EXTRA_DATASETS: usize = 3000;
const CYCLES: usize = 24;
const CLIENTS: usize = 6;

#[derive(Default)]
struct Acked {
    uploads: BTreeSet<String>,
    releases: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let (data, platform) = (dir.path().join("data"), dir.path().join("platform"));
    let yaml = yaml("crash-study", true, EXTRA_DATASETS);
    let manifest = Manifest::from_yaml(&yaml).unwrap();
    let mut broker = BrokerProc::start(&data, &platform);
    {
        let mut p = PartyConn::open(&broker.endpoint()).await;
        let r = p.submit("alpha", &yaml, &sigs(&manifest, &PARTIES)).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            p.upload("alpha", &manifest, "a_data", &[1; 32])
                .await
                .status,
            201
        );
        assert_eq!(
            p.upload("beta", &manifest, "b_data", &[2; 32]).await.status,
            201
        );
    }
    let worker = Arc::new(worker_identity(&platform, MEASUREMENT, false));
    let acked = Arc::new(Mutex::new(Acked::default()));
    let next_dataset = Arc::new(AtomicUsize::new(0));
    let mut rng = Rng(0x5eed_c0ff_ee00_0001);
    for cycle in 0..CYCLES {
        let endpoint = broker.endpoint();
        let mut tasks = Vec::new();
        for client in 0..CLIENTS {
            let (endpoint, acked, next, worker, manifest) = (
                endpoint.clone(),
                Arc::clone(&acked),
                Arc::clone(&next_dataset),
                Arc::clone(&worker),
                manifest.clone(),
            );
            tasks.push(tokio::spawn(async move {
                // Half the clients upload, half release; each stops at its first error
                // (the broker was killed).
                if client % 2 == 0 {
                    let Ok(conn) = coffer_net::Connection::connect(
                        &endpoint,
                        coffer_net::client_config(None).unwrap(),
                    )
                    .await
                    else {
                        return;
                    };
                    let audience = hex::encode(
                        coffer_attest::ratls::RaTlsCert::from_der(conn.peer_certificate())
                            .unwrap()
                            .spki_sha256(),
                    );
                    let mut p = PartyConn { conn, audience };
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= EXTRA_DATASETS {
                            return;
                        }
                        let ds = format!("x{i}");
                        let body = PartyConn::upload_body(&manifest, &ds, &[(i % 251) as u8; 32]);
                        let headers = p.sign(
                            "alpha",
                            &party_key("alpha"),
                            &Method::POST,
                            "/v1/keys",
                            &body,
                            now(),
                        );
                        match p.conn.send(Method::POST, "/v1/keys", &headers, body).await {
                            Ok(r) if r.status == 201 => {
                                acked.lock().await.uploads.insert(ds);
                            }
                            Ok(r) => panic!(
                                "upload {ds}: {} {}",
                                r.status,
                                String::from_utf8_lossy(&r.body)
                            ),
                            Err(_) => return,
                        }
                    }
                } else {
                    let Ok(mut w) = coffer_net::Connection::connect(
                        &endpoint,
                        coffer_net::client_config(Some(&worker)).unwrap(),
                    )
                    .await
                    else {
                        return;
                    };
                    loop {
                        match try_release(&mut w, &worker, &manifest, "joined", &good_inputs())
                            .await
                        {
                            Ok(r) if r.status == 200 => acked.lock().await.releases += 1,
                            Ok(r) => {
                                panic!("release: {} {}", r.status, String::from_utf8_lossy(&r.body))
                            }
                            Err(_) => return,
                        }
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(40 + rng.below(360))).await;
        broker.kill9();
        for t in tasks {
            t.await.unwrap();
        }
        // The broker restarts clean on what the crash left, and holds every acknowledged write.
        broker = BrokerProc::try_start(&data, &platform)
            .unwrap_or_else(|e| panic!("cycle {cycle}: broker did not restart: {e:?}"));
        let mut p = PartyConn::open(&broker.endpoint()).await;
        let log = p.audit("carol").await;
        let key = {
            let r = p.send(Method::GET, "/v1/info", &[], Vec::new()).await;
            let info: coffer_net::broker::Info = serde_json::from_slice(&r.body).unwrap();
            let b: [u8; 32] = hex::decode(&info.audit_key[8..])
                .unwrap()
                .try_into()
                .unwrap();
            ed25519_dalek::VerifyingKey::from_bytes(&b).unwrap()
        };
        coffer_broker::verify_log(&log, &key).unwrap();
        let uploaded: BTreeSet<String> = log
            .iter()
            .filter_map(|e| match &e.entry.event {
                coffer_broker::AuditEvent::KeyUploaded { dataset, .. } => Some(dataset.clone()),
                _ => None,
            })
            .collect();
        let released = event_kinds(&log)
            .iter()
            .filter(|k| *k == "key_released")
            .count();
        let a = acked.lock().await;
        let lost: Vec<&String> = a.uploads.difference(&uploaded).collect();
        assert!(
            lost.is_empty(),
            "cycle {cycle}: acknowledged uploads lost: {lost:?}"
        );
        assert!(
            released >= a.releases,
            "cycle {cycle}: {} releases acknowledged, {released} on record",
            a.releases
        );
        // Every acknowledged upload's key is really held: re-uploading it conflicts.
        if let Some(ds) = a.uploads.iter().next_back() {
            let r = p.upload("alpha", &manifest, ds, &[9; 32]).await;
            assert_eq!(check_of(&r), "key_exists", "cycle {cycle}: {ds}");
        }
    }
    let a = acked.lock().await;
    assert!(
        a.uploads.len() > 50 && a.releases > 50,
        "the load was real: {} uploads, {} releases",
        a.uploads.len(),
        a.releases
    );
    eprintln!(
        "{CYCLES} kill -9 cycles: {} uploads and {} releases acknowledged, none lost",
        a.uploads.len(),
        a.releases
    );
}

#[test]
fn corrupted_state_stops_the_broker_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (data, platform) = (dir.path().join("data"), dir.path().join("platform"));
    drop(BrokerProc::start(&data, &platform));
    let db = data.join("broker.sqlite");
    // Let SQLite fold the WAL back in, so the main file has pages to corrupt.
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    }
    let clean = std::fs::read(&db).unwrap();
    assert!(clean.len() >= 2 * 4096);

    // A page of garbage in the store.
    let mut bad = clean.clone();
    for b in &mut bad[4096..8192] {
        *b = 0xa5;
    }
    std::fs::write(&db, &bad).unwrap();
    let (code, err) = BrokerProc::try_start(&data, &platform)
        .err()
        .expect("must not start");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("corrupt"), "{err}");

    // Not a database at all.
    std::fs::write(
        &db,
        b"this is not a database, it is a text file of some length......",
    )
    .unwrap();
    let (code, err) = BrokerProc::try_start(&data, &platform)
        .err()
        .expect("must not start");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("corrupt") || err.contains("not a database"),
        "{err}"
    );

    // A sealing key of the wrong size, and a tampered sealed TLS key.
    std::fs::write(&db, &clean).unwrap();
    let sealing = std::fs::read(data.join("sealing.key")).unwrap();
    std::fs::write(data.join("sealing.key"), &sealing[..31]).unwrap();
    let (code, err) = BrokerProc::try_start(&data, &platform)
        .err()
        .expect("must not start");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("sealing.key"), "{err}");
    std::fs::write(data.join("sealing.key"), &sealing).unwrap();
    let mut tls = std::fs::read(data.join("tls-key.sealed")).unwrap();
    let last = tls.len() - 1;
    tls[last] ^= 1;
    std::fs::write(data.join("tls-key.sealed"), &tls).unwrap();
    let (code, err) = BrokerProc::try_start(&data, &platform)
        .err()
        .expect("must not start");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("seal"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_clients_cause_no_errors() {
    const N: usize = 1000;
    let s_dir = tempfile::tempdir().unwrap();
    let broker = BrokerProc::start(&s_dir.path().join("data"), &s_dir.path().join("platform"));
    let yaml = yaml("busy-study", true, 0);
    let manifest = Manifest::from_yaml(&yaml).unwrap();
    {
        let mut p = PartyConn::open(&broker.endpoint()).await;
        assert_eq!(
            p.submit("alpha", &yaml, &sigs(&manifest, &PARTIES))
                .await
                .status,
            200
        );
        assert_eq!(
            p.upload("alpha", &manifest, "a_data", &[1; 32])
                .await
                .status,
            201
        );
        assert_eq!(
            p.upload("beta", &manifest, "b_data", &[2; 32]).await.status,
            201
        );
    }
    let worker = Arc::new(worker_identity(&broker.platform, MEASUREMENT, false));
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let mut tasks = Vec::new();
    for i in 0..N {
        let (endpoint, barrier, worker, manifest) = (
            broker.endpoint(),
            Arc::clone(&barrier),
            Arc::clone(&worker),
            manifest.clone(),
        );
        tasks.push(tokio::spawn(async move {
            // Every fourth client is a worker asking for keys; the others are parties.
            let config = if i % 4 == 0 {
                coffer_net::client_config(Some(&worker)).unwrap()
            } else {
                coffer_net::client_config(None).unwrap()
            };
            let mut conn = coffer_net::Connection::connect(&endpoint, config)
                .await
                .unwrap();
            // All connected at once, then all ask at once.
            barrier.wait().await;
            let info = conn
                .send(Method::GET, "/v1/info", &[], Vec::new())
                .await
                .unwrap();
            assert_eq!(info.status, 200);
            if i % 4 == 0 {
                let r = release(&mut conn, &worker, &manifest, "joined", &good_inputs()).await;
                assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            } else {
                let audience = hex::encode(
                    coffer_attest::ratls::RaTlsCert::from_der(conn.peer_certificate())
                        .unwrap()
                        .spki_sha256(),
                );
                let mut p = PartyConn { conn, audience };
                // A key already held: a signed, authenticated request answered `key_exists`.
                let r = p.upload("alpha", &manifest, "a_data", &[1; 32]).await;
                assert_eq!(check_of(&r), "key_exists");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut p = PartyConn::open(&broker.endpoint()).await;
    let released = event_kinds(&p.audit("carol").await)
        .iter()
        .filter(|k| *k == "key_released")
        .count();
    assert_eq!(released, N / 4);
}
