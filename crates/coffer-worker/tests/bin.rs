//! The slim `coffer-worker` binary: usage errors exit 2, a good start prints where it listens
//! and answers `/v1/info` over RA-TLS with evidence that verifies and binds its key.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use coffer_attest::Verifier;
use coffer_attest::ratls::RaTlsCert;
use coffer_net::{Connection, Endpoint};

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec![],
        vec!["serve"],
        vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tee",
            "sim",
            "--broker",
            "https://127.0.0.1:1",
        ],
        vec!["serve", "--listen", "nowhere", "--tee", "sim"],
        vec!["serve", "--tee", "sgx"],
        vec!["launch"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_coffer-worker"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("coffer-worker: "), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn serves_ra_tls_with_its_own_measurement() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    let mut child = Command::new(env!("CARGO_BIN_EXE_coffer-worker"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tee",
            "sim",
            "--broker",
        ])
        .arg("https://127.0.0.1:9")
        .arg("--storage")
        .arg(&storage)
        .arg("--sim-platform")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    let platform = coffer_tee::sim::SimPlatform::load_or_create(dir.path()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (cert, info) = rt.block_on(async {
        let mut conn = Connection::connect(
            &Endpoint::parse(&url).unwrap(),
            coffer_net::client_config(None).unwrap(),
        )
        .await
        .unwrap();
        let cert = conn.peer_certificate().to_vec();
        let resp = conn
            .send(http::Method::GET, "/v1/info", &[], Vec::new())
            .await
            .unwrap();
        (cert, resp)
    });
    let _ = child.kill();
    let _ = child.wait();
    let cert = RaTlsCert::from_der(&cert).unwrap();
    let verifier = Verifier::new().with_sim_root(platform.public_key());
    let verified = cert.verify_bound(&verifier, None, now()).unwrap();
    let claims = coffer_attest::sim::parse_sim_evidence(cert.evidence().data()).unwrap();
    let exe =
        coffer_attest::sim::measure_file(std::path::Path::new(env!("CARGO_BIN_EXE_coffer-worker")))
            .unwrap();
    assert_eq!(
        claims.measurement, exe,
        "the measurement is the slim binary's"
    );
    assert_eq!(verified.claims.tee(), coffer_attest::TeeKind::Sim);
    let info: coffer_net::job::WorkerInfo = serde_json::from_slice(&info.body).unwrap();
    assert!(info.simulated);
    assert_eq!(info.tls_spki_sha256, hex::encode(cert.spki_sha256()));
    assert!(storage.is_dir(), "storage directory created");
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
