//! The worker's refusals, each through a real (in-process) worker over RA-TLS: the failed check
//! is named, the answer carries only that check's fixed message, nothing is stored under
//! `results/`, and a job whose signature verified has its detail encrypted to its signer at
//! `errors/<job>.age` (issue 12). Every case here is refused before any key is asked for; the
//! broker URL points at a closed port, so no key could be released.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::path::Path;

use coffer_client::Identity;
use coffer_manifest::{Manifest, SignatureFile};
use coffer_net::job::{JobRequest, JobSpec, OutputFormat};
use coffer_net::{ApiError, Connection, Endpoint};

const MAX_INPUT: u64 = 1_000;

fn sha(bytes: &[u8]) -> String {
    coffer_net::storage::digest(bytes)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A one-party manifest over the objects in `storage`: `small` (pinned right), `big` (over
/// the worker's input limit), `wrong_pin` (pinned to other bytes) and `missing`.
fn manifest_yaml(alpha: &Identity, constraints: &str) -> String {
    let p = alpha.public();
    format!(
        "version: 1\nid: refusals\nparties:\n  - name: alpha\n    signing_key: \"{}\"\n    \
         recipient: \"{}\"\nenclave:\n  tee: [sim]\n  measurements: [\"sim:measurement={}\"]\n  \
         allow_simulation: true\ndatasets:\n  - {{name: small, owner: alpha, uri: \
         \"alpha/small.bin\", digest: \"{}\"}}\n  - {{name: big, owner: alpha, uri: \
         \"alpha/big.bin\", digest: \"{}\"}}\n  - {{name: wrong_pin, owner: alpha, uri: \
         \"alpha/small.bin\", digest: \"{}\"}}\n  - {{name: missing, owner: alpha, uri: \
         \"alpha/none.bin\", digest: \"{}\"}}\ncomputations:\n\
         {}\ngovernance: {{update: all}}\n",
        p.signing_key,
        p.recipient,
        "ab".repeat(48),
        sha(&[1; 100]),
        sha(&[2; 2_000]),
        sha(b"other bytes"),
        sha(b"never stored"),
        ["small", "big", "wrong_pin", "missing"]
            .iter()
            .map(|d| format!(
                "  - {{name: read_{d}, kind: sql, query: \"SELECT count(*) FROM {d}\", \
                 inputs: [{d}], recipients: [alpha]{constraints}}}\n"
            ))
            .collect::<String>(),
    )
}

/// Alpha and beta, each owning one input; only alpha will sign.
fn two_party_yaml(alpha: &Identity, beta: &Identity) -> String {
    let (a, b) = (alpha.public(), beta.public());
    format!(
        "version: 1\nid: two\nparties:\n  - {{name: alpha, signing_key: \"{}\", recipient: \"{}\"}}\n  \
         - {{name: beta, signing_key: \"{}\", recipient: \"{}\"}}\nenclave:\n  tee: [sim]\n  \
         measurements: [\"sim:measurement={}\"]\n  allow_simulation: true\ndatasets:\n  \
         - {{name: mine, owner: alpha, uri: \"alpha/small.bin\", digest: \"{}\"}}\n  \
         - {{name: theirs, owner: beta, uri: \"alpha/small.bin\", digest: \"{}\"}}\n\
         computations:\n  - {{name: read_alpha, kind: sql, query: \"SELECT count(*) FROM mine\", \
         inputs: [mine], recipients: [alpha]}}\n  - {{name: read_beta, kind: sql, query: \
         \"SELECT count(*) FROM theirs\", inputs: [theirs], recipients: [alpha]}}\n\
         governance: {{update: all}}\n",
        a.signing_key,
        a.recipient,
        b.signing_key,
        b.recipient,
        "ab".repeat(48),
        sha(&[1; 100]),
        sha(&[1; 100]),
    )
}

fn signatures(m: &Manifest, signer: &Identity) -> serde_json::Value {
    let mut sigs = SignatureFile::new(m.hash());
    sigs.add(
        m.hash(),
        coffer_manifest::sign(m, None, signer.name(), signer.signing_key()).unwrap(),
    )
    .unwrap();
    serde_json::from_str(&sigs.to_json().unwrap()).unwrap()
}

struct Job {
    yaml: String,
    manifest_hash: coffer_net::ManifestHash,
    computation: String,
    party: String,
    time: i64,
    key: ed25519_dalek::SigningKey,
    sigs: serde_json::Value,
    format: OutputFormat,
    chain: Vec<coffer_net::job::ChainLink>,
}

impl Job {
    fn new(yaml: &str, alpha: &Identity, computation: &str) -> Self {
        let (manifest_hash, sigs) = match Manifest::from_yaml(yaml) {
            Ok(m) => (m.hash(), signatures(&m, alpha)),
            Err(_) => (coffer_net::ManifestHash([0; 32]), serde_json::json!({})),
        };
        Self {
            yaml: yaml.to_owned(),
            manifest_hash,
            computation: computation.to_owned(),
            party: "alpha".into(),
            time: now(),
            key: alpha.signing_key().clone(),
            sigs,
            format: OutputFormat::Csv,
            chain: Vec::new(),
        }
    }

    fn request(&self) -> JobRequest {
        JobSpec {
            manifest: self.manifest_hash,
            computation: self.computation.clone(),
            params: Default::default(),
            format: self.format,
            party: self.party.clone(),
            time: self.time,
            nonce: coffer_net::JobNonce::random().unwrap(),
        }
        .sign(&self.key, self.yaml.clone(), self.sigs.clone())
        .unwrap()
        .with_predecessors(self.chain.clone())
    }
}

async fn post(url: &str, req: &JobRequest) -> (u16, ApiError) {
    post_raw(url, serde_json::to_vec(req).unwrap()).await
}

async fn post_raw(url: &str, body: Vec<u8>) -> (u16, ApiError) {
    let mut conn = Connection::connect(
        &Endpoint::parse(url).unwrap(),
        coffer_net::client_config(None).unwrap(),
    )
    .await
    .unwrap();
    let resp = conn
        .send(http::Method::POST, coffer_net::job::JOBS, &[], body)
        .await
        .unwrap();
    let err = serde_json::from_slice(&resp.body)
        .unwrap_or_else(|_| panic!("not an error body: {:?}", resp.body));
    (resp.status.as_u16(), err)
}

fn detail(storage: &Path, id: &coffer_net::JobId, who: &Identity) -> Option<String> {
    let sealed = std::fs::read(storage.join(coffer_net::job::error_detail_path(id))).ok()?;
    let mut plain = Vec::new();
    coffer_crypto::delivery::decrypt_with(who.age_identity(), sealed.as_slice(), &mut plain)
        .ok()?;
    Some(String::from_utf8(plain).unwrap())
}

#[test]
fn every_refusal_is_named_redacted_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    std::fs::create_dir_all(storage.join("alpha")).unwrap();
    std::fs::write(storage.join("alpha/small.bin"), [1u8; 100]).unwrap();
    std::fs::write(storage.join("alpha/big.bin"), [2u8; 2_000]).unwrap();
    let alpha = Identity::generate("alpha").unwrap();
    let mallory = Identity::generate("alpha").unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut config = coffer_worker::Config::new(
        "127.0.0.1:0".parse().unwrap(),
        coffer_tee::Backend::Sim,
        "https://127.0.0.1:9".into(),
        storage.to_str().unwrap().into(),
        dir.path().join("platform"),
    );
    config.max_input_bytes = MAX_INPUT;
    let service = rt.block_on(coffer_worker::Service::bind(config)).unwrap();
    let url = format!("https://{}", service.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    rt.spawn(service.serve(async {
        let _ = stopped.await;
    }));

    let yaml = manifest_yaml(&alpha, "");
    let good = || Job::new(&yaml, &alpha, "read_small");
    // (case, job, check, whether the signer was verified and gets the detail)
    let mut cases: Vec<(&str, Job, &str, bool)> = Vec::new();
    let mut j = good();
    j.time -= 3_600;
    cases.push(("an hour old", j, "stale_request", false));
    let mut j = good();
    j.manifest_hash = coffer_net::ManifestHash([0x11; 32]);
    cases.push(("another manifest's hash", j, "manifest_hash", false));
    let mut j = good();
    j.party = "mallory".into();
    cases.push(("a stranger", j, "unknown_party", false));
    let mut j = good();
    j.key = mallory.signing_key().clone();
    cases.push(("signed by another key", j, "job_signature", false));
    cases.push((
        "unknown constraint",
        Job::new(
            &manifest_yaml(&alpha, ", constraints: {max_rows: 5}"),
            &alpha,
            "read_small",
        ),
        "unknown_constraint",
        false,
    ));
    cases.push((
        "no such computation",
        Job::new(&yaml, &alpha, "select_everything"),
        "unknown_computation",
        true,
    ));
    cases.push((
        "input pinned to other bytes",
        Job::new(&yaml, &alpha, "read_wrong_pin"),
        "digest_mismatch",
        true,
    ));
    cases.push((
        "input over the size limit",
        Job::new(&yaml, &alpha, "read_big"),
        "input_too_large",
        true,
    ));
    cases.push((
        "input not in storage",
        Job::new(&yaml, &alpha, "read_missing"),
        "input_missing",
        true,
    ));
    cases.push((
        "broker unreachable",
        Job::new(&yaml, &alpha, "read_small"),
        "broker_unavailable",
        true,
    ));

    let two = two_party_yaml(&alpha, &Identity::generate("beta").unwrap());
    cases.push((
        "an owner has not signed",
        Job::new(&two, &alpha, "read_beta"),
        "owner_not_signed",
        true,
    ));
    cases.push((
        "a party has not signed",
        Job::new(&two, &alpha, "read_alpha"),
        "manifest_not_active",
        true,
    ));
    let mut j = good();
    j.format = OutputFormat::Json;
    cases.push(("SQL as JSON", j, "format", true));
    let mut j = good();
    j.sigs = serde_json::json!({"manifest": 5});
    cases.push(("a malformed signatures file", j, "signatures", true));
    cases.push((
        "a kind this worker does not run",
        Job::new(
            &yaml.replace(
                "kind: sql, query: \"SELECT count(*) FROM small\"",
                "kind: inference",
            ),
            &alpha,
            "read_small",
        ),
        "unsupported_computation",
        true,
    ));
    cases.push((
        "a constraint the kind does not enforce",
        Job::new(
            &yaml
                .replace(
                    "kind: sql, query: \"SELECT count(*) FROM small\"",
                    "kind: gbdt_predict",
                )
                .replace(
                    "inputs: [small], recipients: [alpha]}",
                    "inputs: [small], recipients: [alpha], constraints: {min_group_size: 3}}",
                ),
            &alpha,
            "read_small",
        ),
        "unsupported_constraint",
        false,
    ));

    rt.block_on(async {
        // Not a job request at all.
        let (status, err) = post_raw(&url, b"{\"spec\": 1".to_vec()).await;
        assert_eq!((status, err.check.as_str()), (400, "body"), "{err}");
        for (case, job, check, signer_known) in &cases {
            let req = job.request();
            let id = req.id().unwrap();
            let (status, err) = post(&url, &req).await;
            assert_eq!(err.check, *check, "{case}: {err}");
            assert!(status >= 400, "{case}: {status}");
            // Only the check's fixed message: no digest, path, name or engine text.
            assert!(err.reasons.is_empty(), "{case}: {err:?}");
            for leak in [
                "sha256:",
                "alpha/",
                "read_",
                "max_rows",
                "mallory",
                "127.0.0.1",
            ] {
                assert!(!err.message.contains(leak), "{case}: {:?} in {err}", leak);
            }
            assert!(
                !storage.join("results").exists(),
                "{case}: a result was stored"
            );
            match (signer_known, detail(&storage, &id, &alpha)) {
                (true, Some(text)) => {
                    assert!(text.contains(check), "{case}: {text}");
                    assert!(detail(&storage, &id, &mallory).is_none(), "{case}");
                }
                (true, None) => panic!("{case}: no detail for the signer"),
                (false, Some(text)) => panic!("{case}: detail for an unverified signer: {text}"),
                (false, None) => {}
            }
        }
        // The detail is what the fixed message hides.
        let req = Job::new(&yaml, &alpha, "read_wrong_pin").request();
        let id = req.id().unwrap();
        let (_, err) = post(&url, &req).await;
        let text = detail(&storage, &id, &alpha).unwrap();
        assert!(text.contains(&sha(&[1; 100])), "{text}");
        assert!(!err.message.contains("sha256"), "{err}");
        // The same job again: a replay, and the first failure's detail is kept.
        let (_, again) = post(&url, &req).await;
        assert_eq!(again.check, "replayed_request");
        assert_eq!(detail(&storage, &id, &alpha).unwrap(), text);
    });
    let _ = stop.send(());
}

/// Issue 12: the worker's certificate lives a day at most and is renewed in place: after a
/// renewal the same TLS key is presented with fresh evidence and a later validity, and it
/// still verifies.
#[test]
fn certificates_live_a_day_and_are_renewed_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = coffer_worker::Config::new(
        "127.0.0.1:0".parse().unwrap(),
        coffer_tee::Backend::Sim,
        "https://127.0.0.1:9".into(),
        dir.path().join("storage").to_str().unwrap().into(),
        dir.path().join("platform"),
    );
    let service = rt.block_on(coffer_worker::Service::bind(config)).unwrap();
    let url = format!("https://{}", service.local_addr().unwrap());
    let renewer = service.renewer();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    rt.spawn(service.serve(async {
        let _ = stopped.await;
    }));
    let cert = || {
        rt.block_on(async {
            let conn = Connection::connect(
                &Endpoint::parse(&url).unwrap(),
                coffer_net::client_config(None).unwrap(),
            )
            .await
            .unwrap();
            coffer_attest::ratls::RaTlsCert::from_der(conn.peer_certificate()).unwrap()
        })
    };
    let platform =
        coffer_tee::sim::SimPlatform::load_or_create(&dir.path().join("platform")).unwrap();
    let verifier = coffer_attest::Verifier::new().with_sim_root(platform.public_key());
    let first = cert();
    assert!(first.not_after - now() <= 86_400 + 5, "lives a day at most");
    first.verify_bound(&verifier, None, now()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    rt.block_on(renewer.renew()).unwrap();
    let second = cert();
    assert_eq!(second.spki_sha256(), first.spki_sha256(), "the same key");
    assert!(second.not_after > first.not_after, "a later validity");
    assert!(second.not_before > first.not_before, "issued anew");
    second.verify_bound(&verifier, None, now()).unwrap();
    // Past its end, the first certificate is refused by name.
    let failed = first
        .verify_bound(&verifier, None, first.not_after + 1)
        .unwrap_err();
    assert_eq!(failed[0].check(), "certificate_expired");
    let _ = stop.send(());
}

/// A one-dataset manifest over `alpha/small.bin` whose enclave policy pins `measurement`,
/// optionally an update of `predecessor`.
fn release_yaml(
    alpha: &Identity,
    id: &str,
    measurement: &str,
    predecessor: Option<&str>,
) -> String {
    let p = alpha.public();
    format!(
        "version: 1\nid: {id}\n{}parties:\n  - {{name: alpha, signing_key: \"{}\", recipient: \
         \"{}\"}}\nenclave:\n  tee: [sim]\n  measurements: [\"sim:measurement={measurement}\"]\n  \
         allow_simulation: true\ndatasets:\n  - {{name: small, owner: alpha, uri: \
         \"alpha/small.bin\", digest: \"{}\"}}\ncomputations:\n  - {{name: read_small, kind: sql, \
         query: \"SELECT count(*) FROM small\", inputs: [small], recipients: [alpha]}}\n\
         governance: {{update: all}}\n",
        predecessor.map_or(String::new(), |h| format!("predecessor: \"{h}\"\n")),
        p.signing_key,
        p.recipient,
        sha(&[1; 100]),
    )
}

/// A worker on its own runtime, serving until the returned sender fires.
fn start_worker(
    rt: &tokio::runtime::Runtime,
    broker: &str,
    storage: &Path,
    platform: &Path,
    broker_policy: Option<coffer_attest::Policy>,
) -> (String, Option<String>, tokio::sync::oneshot::Sender<()>) {
    let mut config = coffer_worker::Config::new(
        "127.0.0.1:0".parse().unwrap(),
        coffer_tee::Backend::Sim,
        broker.into(),
        storage.to_str().unwrap().into(),
        platform.to_path_buf(),
    );
    config.broker_policy = broker_policy;
    let service = rt.block_on(coffer_worker::Service::bind(config)).unwrap();
    let url = format!("https://{}", service.local_addr().unwrap());
    let measurement = service.sim_measurement().map(str::to_owned);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    rt.spawn(service.serve(async {
        let _ = stopped.await;
    }));
    (url, measurement, stop)
}

/// The refusals that reach the key broker, through a real (in-process) broker: each is named
/// as the broker named it, carries only a fixed message, stores no result, and the broker's
/// audit log holds no key release for it. Covers the worker's broker appraisal
/// (`broker_attestation`), the broker's appraisal of the worker (`measurement`), a
/// superseded manifest, a revoked grant and a job replayed to a second worker.
#[test]
fn refusals_at_the_broker_release_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    std::fs::create_dir_all(storage.join("alpha")).unwrap();
    // Not Parquet: a job whose keys are released fails afterwards, at `input_format`.
    std::fs::write(storage.join("alpha/small.bin"), [1u8; 100]).unwrap();
    let platform = dir.path().join("platform");
    let alpha = Identity::generate("alpha").unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let broker = rt
        .block_on(coffer_broker::service::Service::bind(
            coffer_broker::service::Config {
                listen: "127.0.0.1:0".parse().unwrap(),
                data: dir.path().join("broker"),
                backend: coffer_tee::Backend::Sim,
                sim_platform: platform.clone(),
                sim_roots: Vec::new(),
                request_window_secs: 300,
            },
        ))
        .unwrap();
    let broker_url = format!("https://{}", broker.local_addr().unwrap());
    let broker_measurement = broker.sim_measurement().unwrap().to_owned();
    let (stop_broker, broker_stopped) = tokio::sync::oneshot::channel::<()>();
    rt.spawn(broker.serve(async {
        let _ = broker_stopped.await;
    }));
    let broker_policy = |m: &str| {
        Some(
            coffer_attest::Policy::from_yaml(&format!(
                "tee: [sim]\nallow_simulation: true\nmeasurements: [\"sim:measurement={m}\"]\n"
            ))
            .unwrap(),
        )
    };
    let (worker, measurement, stop_worker) = start_worker(
        &rt,
        &broker_url,
        &storage,
        &platform,
        broker_policy(&broker_measurement),
    );
    let measurement = measurement.unwrap();
    let (unpinned, _, stop_unpinned) = start_worker(&rt, &broker_url, &storage, &platform, None);
    let (wrong_pin, _, stop_wrong_pin) = start_worker(
        &rt,
        &broker_url,
        &storage,
        &platform,
        broker_policy(&"cd".repeat(48)),
    );
    let (second, _, stop_second) = start_worker(
        &rt,
        &broker_url,
        &storage,
        &platform,
        broker_policy(&broker_measurement),
    );

    let m1_yaml = release_yaml(&alpha, "m1", &measurement, None);
    let m1 = Manifest::from_yaml(&m1_yaml).unwrap();
    let other_yaml = release_yaml(&alpha, "other", &"ab".repeat(48), None);
    let other = Manifest::from_yaml(&other_yaml).unwrap();
    let m2_yaml = release_yaml(&alpha, "m2", &measurement, Some(&m1.hash().to_string()));
    let m2 = Manifest::from_yaml(&m2_yaml).unwrap();
    let sigs_of = |m: &Manifest| {
        let mut sigs = SignatureFile::new(m.hash());
        sigs.add(
            m.hash(),
            coffer_manifest::sign(m, None, alpha.name(), alpha.signing_key()).unwrap(),
        )
        .unwrap();
        sigs
    };
    let sim_root = coffer_tee::sim::SimPlatform::load_or_create(&platform)
        .unwrap()
        .public_key();
    let key = coffer_crypto::SecretKey::generate(256).unwrap();

    rt.block_on(async {
        let options = coffer_client::broker::AttestOptions {
            policy: None,
            allow_simulation: true,
            sim_root: Some(sim_root),
            verifier: None,
        };
        let (mut session, _) = coffer_client::broker::BrokerSession::attest(&broker_url, &options)
            .await
            .unwrap();
        for m in [&m1, &other] {
            let yaml = if m.hash() == m1.hash() {
                &m1_yaml
            } else {
                &other_yaml
            };
            assert!(
                session
                    .submit_manifest(&alpha, yaml, &sigs_of(m))
                    .await
                    .unwrap()
                    .active
            );
            session
                .grant_key(&alpha, &m.hash(), "small", &key)
                .await
                .unwrap();
        }
        let job = |yaml: &str, chain: Vec<coffer_net::job::ChainLink>| {
            let mut j = Job::new(yaml, &alpha, "read_small");
            j.chain = chain;
            j.request()
        };
        let expect = |case: &str, (status, err): (u16, ApiError), check: &str| {
            assert_eq!(err.check, check, "{case}: {err}");
            assert!(status >= 400, "{case}: {status}");
            assert!(err.reasons.is_empty(), "{case}: {err:?}");
            for leak in [
                "sha256:",
                "alpha/",
                "read_",
                "127.0.0.1",
                &measurement[..16],
            ] {
                assert!(!err.message.contains(leak), "{case}: {leak:?} in {err}");
            }
            assert!(
                !storage.join("results").exists(),
                "{case}: a result was stored"
            );
        };

        // The worker appraises the broker by its own policy, never the manifest's.
        expect(
            "a worker with no broker policy",
            post(&unpinned, &job(&m1_yaml, vec![])).await,
            "broker_attestation",
        );
        expect(
            "a worker pinning another broker",
            post(&wrong_pin, &job(&m1_yaml, vec![])).await,
            "broker_attestation",
        );
        // The broker appraises the worker by the manifest's policy.
        expect(
            "a manifest pinning another worker",
            post(&worker, &job(&other_yaml, vec![])).await,
            "measurement",
        );
        // M1's keys are released (its input is not Parquet, so the job fails after that).
        let released = job(&m1_yaml, vec![]);
        expect(
            "M1, released",
            post(&worker, &released).await,
            "input_format",
        );
        // The same job to a fresh worker: the broker spent its id at the decision.
        expect(
            "a replay to another worker",
            post(&second, &released).await,
            "replayed_request",
        );

        // M2 supersedes M1: M1 gets no keys, M2 does, until alpha revokes its grant.
        assert!(
            session
                .submit_manifest(&alpha, &m2_yaml, &sigs_of(&m2))
                .await
                .unwrap()
                .active
        );
        session
            .grant_key(&alpha, &m2.hash(), "small", &key)
            .await
            .unwrap();
        expect(
            "the superseded M1",
            post(&worker, &job(&m1_yaml, vec![])).await,
            "manifest_superseded",
        );
        let chain = vec![coffer_net::job::ChainLink {
            manifest: m1_yaml.clone(),
            signatures: serde_json::from_str(&sigs_of(&m1).to_json().unwrap()).unwrap(),
        }];
        expect(
            "M2, released",
            post(&worker, &job(&m2_yaml, chain.clone())).await,
            "input_format",
        );
        expect(
            "M2 without its chain",
            post(&worker, &job(&m2_yaml, vec![])).await,
            "manifest_not_active",
        );
        session
            .revoke_key(&alpha, &m2.hash(), "small")
            .await
            .unwrap();
        expect(
            "M2 after the revocation",
            post(&worker, &job(&m2_yaml, chain)).await,
            "key_revoked",
        );
    });
    for stop in [
        stop_worker,
        stop_unpinned,
        stop_wrong_pin,
        stop_second,
        stop_broker,
    ] {
        let _ = stop.send(());
    }
    drop(rt);

    // Exactly the two released jobs got keys.
    let broker = coffer_broker::Broker::open(&dir.path().join("broker")).unwrap();
    let released: Vec<coffer_net::ManifestHash> = broker
        .audit_entries()
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.entry.event {
            coffer_broker::AuditEvent::KeyReleased { manifest, .. } => Some(manifest),
            _ => None,
        })
        .collect();
    assert_eq!(released, [m1.hash(), m2.hash()]);
}

/// Every check the worker names is one a client can be told, with a fixed message.
#[test]
fn every_check_has_a_name_and_a_fixed_message() {
    for c in coffer_worker::Check::ALL {
        assert!(!c.message().is_empty(), "{c:?}");
        assert_eq!(coffer_worker::Check::from_name(c.name()), Some(*c));
        assert!(
            c.name()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{c:?}"
        );
    }
}
