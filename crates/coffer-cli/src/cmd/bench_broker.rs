//! `coffer bench broker`: key-release throughput and latency over RA-TLS on loopback, against
//! the slim `coffer-broker` in its own process, next to a baseline measured in the same run: a
//! trivial request (`GET /v1/info`) over the same connections (TLS and HTTP alone). Each
//! release is a challenge (the broker's nonce) and the release answering it.
//!
//! The broker core alone (no network) is `cargo run --release -p coffer-broker --example
//! release_core`: `coffer` does not link the broker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use coffer_attest::ratls::{KeyAlg, RaTlsIdentity};
use coffer_client::Identity;
use coffer_manifest::{Manifest, SignatureFile};
use coffer_net::{Connection, Endpoint};
use coffer_tee::EvidenceSource;
use http::Method;
use serde::Serialize;

use super::services::{Services, path_str, start};

#[derive(Debug, Args)]
pub struct BrokerBenchArgs {
    /// Concurrent worker connections (keep-alive, one request in flight each)
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Seconds per measured phase
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Phase {
    requests: usize,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    clients: usize,
    /// `GET /v1/info` over the same RA-TLS connections: TLS and HTTP only.
    info_over_tls: Phase,
    /// `POST /v1/release` over RA-TLS, worker evidence appraised against the manifest.
    release_over_tls: Phase,
    /// A fresh RA-TLS connection (handshake, evidence verification) per release.
    release_new_connection: Phase,
    release_vs_info: f64,
}

fn phase(mut lat: Vec<Duration>, elapsed: Duration) -> Phase {
    lat.sort_unstable();
    let pick = |q: f64| {
        let i = ((lat.len() as f64 - 1.0) * q).round() as usize;
        lat.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    Phase {
        requests: lat.len(),
        per_sec: lat.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
    }
}

const MEASUREMENT: [u8; 48] = [0x4f; 48];

fn manifest_yaml(parties: &[Identity]) -> String {
    let mut p = String::new();
    for id in parties {
        let public = id.public();
        p.push_str(&format!(
            "  - name: {}\n    signing_key: {}\n    recipient: {}\n",
            public.name, public.signing_key, public.recipient
        ));
    }
    format!(
        "version: 1\nid: bench\nparties:\n{p}\
         enclave:\n  tee: [sim]\n  measurements: [\"sim:measurement={}\"]\n  allow_simulation: true\n\
         datasets:\n  - {{name: a_data, owner: alpha, uri: \"file://a\", digest: \"sha256:{}\"}}\n  \
         - {{name: b_data, owner: beta, uri: \"file://b\", digest: \"sha256:{}\"}}\n\
         computations:\n  - name: joined\n    kind: sql\n    \
         query: SELECT count(*) AS n FROM a_data JOIN b_data USING (id)\n    \
         inputs: [a_data, b_data]\n    recipients: [alpha]\n\
         governance: {{update: all}}\n",
        hex::encode(MEASUREMENT),
        "11".repeat(32),
        "22".repeat(32)
    )
}

pub fn run(args: &BrokerBenchArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let platform = dir.path().join("sim-platform");
    // The broker runs as its own process: `coffer broker serve` execs the slim `coffer-broker`.
    let mut services = Services::default();
    let url = start(
        &mut services,
        dir.path(),
        &dir.path().join("broker.log"),
        &[
            "broker",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data",
            path_str(&data)?,
            "--tee",
            "sim",
            "--sim-platform",
            path_str(&platform)?,
        ],
    )?;
    let endpoint = Endpoint::parse(&url)?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let audience = client_rt.block_on(async {
        let mut conn = Connection::connect(&endpoint, coffer_net::client_config(None)?).await?;
        let info = conn
            .send(Method::GET, coffer_net::broker::INFO, &[], Vec::new())
            .await?;
        let info: serde_json::Value = serde_json::from_slice(&info.body)?;
        info.get("tls_spki_sha256")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .context("the broker's /v1/info names no TLS key")
    })?;

    let parties = [Identity::generate("alpha")?, Identity::generate("beta")?];
    let yaml = manifest_yaml(&parties);
    let manifest = Manifest::from_yaml(&yaml)?;
    let mut sigs = SignatureFile::new(manifest.hash());
    for p in &parties {
        sigs.add(
            manifest.hash(),
            coffer_manifest::sign(&manifest, None, p.name(), p.signing_key())?,
        )?;
    }
    let platform = coffer_tee::sim::SimPlatform::load_or_create(&platform)?;
    let source = Arc::new(coffer_tee::sim::SimSource::with_measurement(
        platform,
        MEASUREMENT,
    ));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let worker = Arc::new(RaTlsIdentity::issue(KeyAlg::P256, None, now, 3600, |rd| {
        source.evidence(rd)
    })?);
    let inputs: std::collections::BTreeMap<String, String> = [
        ("a_data".to_owned(), format!("sha256:{}", "11".repeat(32))),
        ("b_data".to_owned(), format!("sha256:{}", "22".repeat(32))),
    ]
    .into();
    // Every release is for a fresh job, signed by alpha (a job's keys are released once).
    let alpha_key = Arc::new(parties[0].signing_key().clone());
    let ask = {
        let (hash, inputs, key) = (manifest.hash(), inputs.clone(), Arc::clone(&alpha_key));
        Arc::new(
            move || -> anyhow::Result<coffer_net::broker::ReleaseRequest> {
                let job = coffer_net::job::JobSpec {
                    manifest: hash,
                    computation: "joined".into(),
                    params: Default::default(),
                    format: coffer_net::job::OutputFormat::Csv,
                    party: "alpha".into(),
                    time: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)?
                        .as_secs() as i64,
                    nonce: coffer_net::JobNonce::random()?,
                }
                .sign(&key, String::new(), serde_json::Value::Null)?
                .signed_job();
                Ok(coffer_net::broker::ReleaseRequest {
                    manifest: hash,
                    computation: "joined".into(),
                    inputs: inputs.clone(),
                    job,
                    // Over TLS each release answers a nonce the broker issues just before it.
                    fresh: coffer_net::broker::FreshEvidence {
                        nonce: String::new(),
                        evidence: String::new(),
                    },
                })
            },
        )
    };

    client_rt.block_on(async {
        let mut conn = Connection::connect(&endpoint, coffer_net::client_config(None)?).await?;
        let submit = serde_json::to_vec(&serde_json::json!({
            "manifest": yaml,
            "signatures": serde_json::from_str::<serde_json::Value>(&sigs.to_json()?)?,
        }))?;
        let signed = |id: &Identity, path: &str, body: &[u8]| {
            coffer_net::sign_request(
                id.signing_key(),
                id.name(),
                "POST",
                path,
                &audience,
                body,
                now,
                &coffer_net::signed::fresh_nonce().unwrap_or_default(),
            )
        };
        let r = conn
            .send(
                Method::POST,
                "/v1/manifests",
                &signed(&parties[0], "/v1/manifests", &submit),
                submit.clone(),
            )
            .await?;
        anyhow::ensure!(
            r.status.is_success(),
            "submit: {}",
            String::from_utf8_lossy(&r.body)
        );
        for (p, ds) in parties.iter().zip(["a_data", "b_data"]) {
            let up = serde_json::to_vec(&serde_json::json!({
                "manifest": manifest.hash().to_string(), "dataset": ds, "key": "ab".repeat(32),
            }))?;
            let r = conn
                .send(
                    Method::POST,
                    "/v1/keys",
                    &signed(p, "/v1/keys", &up),
                    up.clone(),
                )
                .await?;
            anyhow::ensure!(
                r.status.is_success(),
                "upload: {}",
                String::from_utf8_lossy(&r.body)
            );
        }
        anyhow::Ok(())
    })?;

    let span = Duration::from_secs_f64(args.seconds.max(0.5));
    let clients = args.clients.max(1);

    let over_tls = |path: &'static str, fresh: bool| -> anyhow::Result<Phase> {
        client_rt.block_on(async {
            let start = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..clients {
                let (endpoint, worker, ask, source) = (
                    endpoint.clone(),
                    Arc::clone(&worker),
                    Arc::clone(&ask),
                    Arc::clone(&source),
                );
                tasks.push(tokio::spawn(async move {
                    let config = coffer_net::client_config(Some(&worker))?;
                    let spki =
                        coffer_attest::ratls::RaTlsCert::from_der(worker.cert_der())?.spki_der;
                    let mut lat = Vec::new();
                    let mut conn = Connection::connect(&endpoint, Arc::clone(&config)).await?;
                    while start.elapsed() < span {
                        let mut request = if path == "/v1/info" {
                            None
                        } else {
                            Some(ask()?)
                        };
                        let t = Instant::now();
                        if fresh {
                            conn = Connection::connect(&endpoint, Arc::clone(&config)).await?;
                        }
                        let r = match request.as_mut() {
                            None => conn.send(Method::GET, path, &[], Vec::new()).await?,
                            Some(req) => {
                                // A release: the broker's nonce, answered with fresh evidence.
                                let ch = conn
                                    .send(
                                        Method::POST,
                                        coffer_net::broker::CHALLENGE,
                                        &[],
                                        Vec::new(),
                                    )
                                    .await?;
                                anyhow::ensure!(ch.status.is_success(), "challenge: {}", ch.status);
                                let nonce: coffer_net::broker::Challenge =
                                    serde_json::from_slice(&ch.body)?;
                                let evidence = coffer_attest::ratls::answer_challenge(
                                    &spki,
                                    &hex::decode(&nonce.nonce)?,
                                    |rd| source.evidence(rd).map_err(|e| e.to_string()),
                                )
                                .map_err(anyhow::Error::msg)?;
                                req.fresh = coffer_net::broker::FreshEvidence {
                                    nonce: nonce.nonce,
                                    evidence: hex::encode(evidence),
                                };
                                conn.send(Method::POST, path, &[], serde_json::to_vec(req)?)
                                    .await?
                            }
                        };
                        anyhow::ensure!(
                            r.status.is_success(),
                            "{path}: {}",
                            String::from_utf8_lossy(&r.body)
                        );
                        lat.push(t.elapsed());
                    }
                    anyhow::Ok(lat)
                }));
            }
            let mut lat = Vec::new();
            for t in tasks {
                lat.extend(t.await??);
            }
            Ok(phase(lat, start.elapsed()))
        })
    };
    let info_over_tls = over_tls("/v1/info", false)?;
    let release_over_tls = over_tls("/v1/release", false)?;
    let release_new_connection = over_tls("/v1/release", true)?;
    drop(services);

    let report = Report {
        clients,
        release_vs_info: release_over_tls.per_sec / info_over_tls.per_sec.max(f64::MIN_POSITIVE),
        info_over_tls,
        release_over_tls,
        release_new_connection,
    };
    if args.json {
        return super::print_json(&report);
    }
    println!(
        "broker bench: {clients} clients, {:.1} s per phase, loopback, sim evidence",
        span.as_secs_f64()
    );
    println!(
        "{:<34} {:>10} {:>12} {:>9} {:>9}",
        "phase", "requests", "per second", "p50 ms", "p99 ms"
    );
    for (name, p) in [
        ("GET /v1/info over RA-TLS", &report.info_over_tls),
        ("release over RA-TLS (keep-alive)", &report.release_over_tls),
        (
            "release, new RA-TLS connection",
            &report.release_new_connection,
        ),
    ] {
        println!(
            "{name:<34} {:>10} {:>12.0} {:>9.2} {:>9.2}",
            p.requests, p.per_sec, p.p50_ms, p.p99_ms
        );
    }
    println!(
        "releases_per_s={:.0} p50_ms={:.2} p99_ms={:.2} release_vs_info={:.2}",
        report.release_over_tls.per_sec,
        report.release_over_tls.p50_ms,
        report.release_over_tls.p99_ms,
        report.release_vs_info
    );
    Ok(())
}
