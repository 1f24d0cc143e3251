//! The broker as a service: a real `coffer-broker` process over RA-TLS on loopback, parties
//! signing requests, sim workers presenting RA-TLS client certificates. Every refusal asserts
//! its typed reason and that nothing was released or stored.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use coffer_manifest::Manifest;
use common::*;
use http::Method;

struct Setup {
    _dir: tempfile::TempDir,
    broker: BrokerProc,
    party: PartyConn,
    manifest: Manifest,
    yaml: String,
}

/// A broker with the study manifest submitted with `signers`' signatures, and keys uploaded
/// for both inputs (when the manifest allows it).
async fn setup(allow_simulation: bool, signers: &[&str]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProc::start(&dir.path().join("data"), &dir.path().join("platform"));
    let mut party = PartyConn::open(&broker.endpoint()).await;
    let yaml = yaml("study", allow_simulation, 0);
    let manifest = Manifest::from_yaml(&yaml).unwrap();
    let r = party
        .submit("alpha", &yaml, &sigs(&manifest, signers))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    for (owner, ds, key) in [
        ("alpha", "a_data", [0xa1; 32]),
        ("beta", "b_data", [0xb2; 32]),
    ] {
        let r = party.upload(owner, &manifest, ds, &key).await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    }
    Setup {
        _dir: dir,
        broker,
        party,
        manifest,
        yaml,
    }
}

/// Asserts a refused release: the check, and that the log holds no release at all.
async fn assert_refused(s: &mut Setup, r: &coffer_net::Response, check: &str) {
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(check_of(r), check, "{}", String::from_utf8_lossy(&r.body));
    assert!(!String::from_utf8_lossy(&r.body).contains("keys"));
    let log = s.party.audit("carol").await;
    let kinds = event_kinds(&log);
    assert!(!kinds.contains(&"key_released".to_owned()), "{kinds:?}");
    assert_eq!(kinds.last().unwrap(), "key_refused", "{kinds:?}");
}

#[tokio::test]
async fn genuine_worker_gets_exactly_the_uploaded_keys() {
    let mut s = setup(true, &PARTIES).await;
    let id = worker_identity(&s.broker.platform, MEASUREMENT, false);
    let mut w = worker_conn(&s.broker.endpoint(), &id).await;
    let r = release(&mut w, &id, &s.manifest, "joined", &good_inputs()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["keys"]["a_data"], hex::encode([0xa1; 32]));
    assert_eq!(v["keys"]["b_data"], hex::encode([0xb2; 32]));
    let log = s.party.audit("beta").await;
    assert_eq!(
        event_kinds(&log),
        [
            "manifest_submitted",
            "manifest_activated",
            "key_uploaded",
            "key_uploaded",
            "key_released"
        ]
    );
    coffer_broker::verify_log(&log, &broker_key(&mut s).await).unwrap();
}

async fn broker_key(s: &mut Setup) -> ed25519_dalek::VerifyingKey {
    let r = s.party.send(Method::GET, "/v1/info", &[], Vec::new()).await;
    let info: coffer_net::broker::Info = serde_json::from_slice(&r.body).unwrap();
    let bytes: [u8; 32] = hex::decode(info.audit_key.strip_prefix("ed25519:").unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    ed25519_dalek::VerifyingKey::from_bytes(&bytes).unwrap()
}

#[tokio::test]
async fn unsigned_manifest_releases_nothing() {
    let mut s = setup(true, &[]).await;
    let id = worker_identity(&s.broker.platform, MEASUREMENT, false);
    let mut w = worker_conn(&s.broker.endpoint(), &id).await;
    let r = release(&mut w, &id, &s.manifest, "joined", &good_inputs()).await;
    assert_refused(&mut s, &r, "owner_not_signed").await;
}

#[tokio::test]
async fn one_owner_missing_releases_nothing() {
    let mut s = setup(true, &["alpha", "carol"]).await;
    let id = worker_identity(&s.broker.platform, MEASUREMENT, false);
    let mut w = worker_conn(&s.broker.endpoint(), &id).await;
    let r = release(&mut w, &id, &s.manifest, "joined", &good_inputs()).await;
    assert_refused(&mut s, &r, "owner_not_signed").await;
    assert!(String::from_utf8_lossy(&r.body).contains("beta"));
    // A recipient's missing signature leaves the manifest inactive.
    let mut s = setup(true, &["alpha", "beta"]).await;
    let id = worker_identity(&s.broker.platform, MEASUREMENT, false);
    let mut w = worker_conn(&s.broker.endpoint(), &id).await;
    let r = release(&mut w, &id, &s.manifest, "joined", &good_inputs()).await;
    assert_refused(&mut s, &r, "manifest_not_active").await;
}

#[tokio::test]
async fn wrong_measurement_releases_nothing() {
    let mut s = setup(true, &PARTIES).await;
    let id = worker_identity(&s.broker.platform, [0x50; 48], false);
    let mut w = worker_conn(&s.broker.endpoint(), &id).await;
    let r = release(&mut w, &id, &s.manifest, "joined", &good_inputs()).await;
    assert_refused(&mut s, &r, "measurement").await;
}

#[tokio::test]
async fn debug_evidence_releases_nothing() {
    let mut s = setup(true, &PARTIES).await;
    let id = worker_identity(&s.broker.platform, MEASUREMENT, true);
    let mut w = worker_conn(&s.broker.endpoint(), &id).await;
    let r = release(&mut w, &id, &s.manifest, "joined", &good_inputs()).await;
    assert_refused(&mut s, &r, "debug").await;
}

#[tokio::test]
async fn simulated_evidence_needs_the_policy_to_allow_it() {
    let mut s = setup(false, &PARTIES).await;
    let id = worker_identity(&s.broker.platform, MEASUREMENT, false);
    let mut w = worker_conn(&s.broker.endpoint(), &id).await;
    let r = release(&mut w, &id, &s.manifest, "joined", &good_inputs()).await;
    assert_refused(&mut s, &r, "simulation").await;
}

#[tokio::test]
async fn evidence_from_an_untrusted_platform_releases_nothing() {
    let mut s = setup(true, &PARTIES).await;
    let other = tempfile::tempdir().unwrap();
    let id = worker_identity(other.path(), MEASUREMENT, false);
    let mut w = worker_conn(&s.broker.endpoint(), &id).await;
    let r = release(&mut w, &id, &s.manifest, "joined", &good_inputs()).await;
    assert_refused(&mut s, &r, "certificate_chain").await;
}

#[tokio::test]
async fn digest_mismatch_releases_nothing() {
    let mut s = setup(true, &PARTIES).await;
    let id = worker_identity(&s.broker.platform, MEASUREMENT, false);
    let mut w = worker_conn(&s.broker.endpoint(), &id).await;
    let mut inputs = good_inputs();
    inputs.insert("b_data".into(), digest("tampered"));
    let r = release(&mut w, &id, &s.manifest, "joined", &inputs).await;
    assert_refused(&mut s, &r, "digest_mismatch").await;
    assert!(String::from_utf8_lossy(&r.body).contains("b_data"));
}

#[tokio::test]
async fn a_party_without_a_worker_certificate_gets_no_keys() {
    let mut s = setup(true, &PARTIES).await;
    let body = release_body(&s.manifest, "joined", &good_inputs());
    let r = s
        .party
        .signed("alpha", Method::POST, "/v1/release", body)
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(check_of(&r), "worker_certificate");
    let kinds = event_kinds(&s.party.audit("carol").await);
    assert!(!kinds.contains(&"key_released".to_owned()));
}

#[tokio::test]
async fn replayed_request_is_refused_even_after_a_restart() {
    let mut s = setup(true, &["alpha"]).await;
    let method = Method::POST;
    let body = serde_json::to_vec(&serde_json::json!({
        "manifest": s.yaml,
        "signatures": serde_json::from_str::<serde_json::Value>(
            &sigs(&s.manifest, &["beta"]).to_json().unwrap()).unwrap(),
    }))
    .unwrap();
    let headers = s.party.sign(
        "beta",
        &party_key("beta"),
        &method,
        "/v1/manifests",
        &body,
        now(),
    );
    let first = s
        .party
        .send(method.clone(), "/v1/manifests", &headers, body.clone())
        .await;
    assert_eq!(first.status, 200);
    let before = s.party.audit("carol").await.len();
    let again = s
        .party
        .send(method.clone(), "/v1/manifests", &headers, body.clone())
        .await;
    assert_eq!(
        again.status,
        403,
        "{}",
        String::from_utf8_lossy(&again.body)
    );
    assert_eq!(check_of(&again), "replayed_request");
    assert_eq!(
        s.party.audit("carol").await.len(),
        before,
        "the replay wrote nothing"
    );
    // The nonce survives a crash of the broker.
    s.broker.kill9();
    let broker = BrokerProc::start(&s.broker.data, &s.broker.platform);
    let mut party = PartyConn::open(&broker.endpoint()).await;
    assert_eq!(
        party.audience, s.party.audience,
        "the TLS key is kept across restarts"
    );
    let replay = party.send(method, "/v1/manifests", &headers, body).await;
    assert_eq!(check_of(&replay), "replayed_request");
    assert_eq!(party.audit("carol").await.len(), before);
}

#[tokio::test]
async fn stale_signature_stores_nothing() {
    let mut s = setup(true, &PARTIES).await;
    let yaml2 = yaml("study-2", true, 0);
    let m2 = Manifest::from_yaml(&yaml2).unwrap();
    let r = s.party.submit("alpha", &yaml2, &sigs(&m2, &PARTIES)).await;
    assert_eq!(r.status, 200);
    let body = PartyConn::upload_body(&m2, "a_data", &[7; 32]);
    for skew in [-3600, 3600] {
        let headers = s.party.sign(
            "alpha",
            &party_key("alpha"),
            &Method::POST,
            "/v1/keys",
            &body,
            now() + skew,
        );
        let r = s
            .party
            .send(Method::POST, "/v1/keys", &headers, body.clone())
            .await;
        assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(check_of(&r), "stale_request");
    }
    // Nothing was stored: the owner's fresh upload is the first.
    let r = s.party.upload("alpha", &m2, "a_data", &[7; 32]).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

#[tokio::test]
async fn key_upload_by_a_non_owner_stores_nothing() {
    let mut s = setup(true, &PARTIES).await;
    let yaml2 = yaml("study-3", true, 0);
    let m2 = Manifest::from_yaml(&yaml2).unwrap();
    s.party.submit("alpha", &yaml2, &sigs(&m2, &PARTIES)).await;
    let before = s.party.audit("carol").await.len();
    for intruder in ["beta", "carol"] {
        let r = s.party.upload(intruder, &m2, "a_data", &[6; 32]).await;
        assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(check_of(&r), "not_owner");
    }
    assert_eq!(s.party.audit("carol").await.len(), before);
    let r = s.party.upload("alpha", &m2, "a_data", &[5; 32]).await;
    assert_eq!(r.status, 201);
    // And the key that was stored is the owner's.
    let id = worker_identity(&s.broker.platform, MEASUREMENT, false);
    let mut w = worker_conn(&s.broker.endpoint(), &id).await;
    s.party.upload("beta", &m2, "b_data", &[4; 32]).await;
    let r = release(&mut w, &id, &m2, "joined", &good_inputs()).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["keys"]["a_data"], hex::encode([5; 32]));
}

#[tokio::test]
async fn forged_and_unknown_signers_are_refused() {
    let mut s = setup(true, &PARTIES).await;
    let body = PartyConn::upload_body(&s.manifest, "a_data", &[1; 32]);
    // alpha's name, another key.
    let headers = s.party.sign(
        "alpha",
        &party_key("mallory"),
        &Method::POST,
        "/v1/keys",
        &body,
        now(),
    );
    let r = s
        .party
        .send(Method::POST, "/v1/keys", &headers, body.clone())
        .await;
    assert_eq!(
        (r.status.as_u16(), check_of(&r).as_str()),
        (401, "request_signature")
    );
    let headers = s.party.sign(
        "mallory",
        &party_key("mallory"),
        &Method::POST,
        "/v1/keys",
        &body,
        now(),
    );
    let r = s
        .party
        .send(Method::POST, "/v1/keys", &headers, body.clone())
        .await;
    assert_eq!(
        (r.status.as_u16(), check_of(&r).as_str()),
        (401, "unknown_party")
    );
    // A signature for another broker (audience) does not verify here.
    let mut other = s.party.sign(
        "alpha",
        &party_key("alpha"),
        &Method::POST,
        "/v1/keys",
        &body,
        now(),
    );
    other.retain(|(k, _)| *k != "coffer-signature");
    let msg = coffer_net::signed::request_message(
        "POST",
        "/v1/keys",
        &"00".repeat(32),
        "alpha",
        other
            .iter()
            .find(|(k, _)| *k == "coffer-time")
            .unwrap()
            .1
            .parse()
            .unwrap(),
        &other.iter().find(|(k, _)| *k == "coffer-nonce").unwrap().1,
        &body,
    );
    use base64::Engine;
    use ed25519_dalek::Signer;
    other.push((
        "coffer-signature",
        base64::engine::general_purpose::STANDARD.encode(party_key("alpha").sign(&msg).to_bytes()),
    ));
    let r = s.party.send(Method::POST, "/v1/keys", &other, body).await;
    assert_eq!(check_of(&r), "request_signature");
    // Unsigned.
    let r = s
        .party
        .send(Method::GET, "/v1/audit", &[], Vec::new())
        .await;
    assert_eq!(
        (r.status.as_u16(), check_of(&r).as_str()),
        (401, "request_signature")
    );
}

#[tokio::test]
async fn a_plain_tls_client_certificate_is_refused_at_the_handshake() {
    let s = setup(true, &PARTIES).await;
    // A self-signed certificate without evidence: not a worker, refused before any request.
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["worker".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(coffer_net::client::DeferredServerVerifier::new())
    .with_client_auth_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    let outcome =
        match coffer_net::Connection::connect(&s.broker.endpoint(), std::sync::Arc::new(config))
            .await
        {
            // TLS 1.3: the server's verdict on the client certificate arrives after the client
            // finished; the first request fails.
            Ok(mut c) => c
                .send(
                    Method::POST,
                    "/v1/release",
                    &[],
                    release_body(&s.manifest, "joined", &good_inputs()),
                )
                .await
                .map(|r| r.status),
            Err(e) => Err(e),
        };
    assert!(outcome.is_err(), "{outcome:?}");
}

#[tokio::test]
async fn openapi_and_malformed_bodies() {
    let mut s = setup(true, &PARTIES).await;
    let r = s
        .party
        .send(Method::GET, "/openapi.json", &[], Vec::new())
        .await;
    let doc: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/v1/manifests",
        "/v1/keys",
        "/v1/release",
        "/v1/audit",
        "/v1/info",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    let id = worker_identity(&s.broker.platform, MEASUREMENT, false);
    let mut w = worker_conn(&s.broker.endpoint(), &id).await;
    for body in [
        &b"not json"[..],
        b"{}",
        b"{\"manifest\":\"sha256:zz\",\"computation\":\"j\",\"inputs\":{}}",
    ] {
        let r = w
            .send(Method::POST, "/v1/release", &[], body.to_vec())
            .await
            .unwrap();
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    }
    let r = s
        .party
        .signed(
            "alpha",
            Method::POST,
            "/v1/keys",
            b"{\"manifest\":1}".to_vec(),
        )
        .await;
    assert_eq!(r.status, 400);
}

/// Issue 12: an outsider who makes its own one-party manifest reads the audit entries of its
/// own collaboration only; every other entry comes redacted (its place in the chain, signed,
/// nothing else), so the whole log still verifies. A party of the study sees the study.
#[tokio::test]
async fn an_outsider_reads_only_its_own_collaboration_in_the_audit_log() {
    let mut s = setup(true, &PARTIES).await;
    let key = party_key("mallory");
    let recipient = age::x25519::Identity::generate().to_public();
    let own = format!(
        "version: 1\nid: mallory-only\nparties:\n  - name: mallory\n    signing_key: ed25519:{}\n    \
         recipient: {recipient}\nenclave:\n  tee: [sim]\n  measurements: [\"sim:measurement={}\"]\n  \
         allow_simulation: true\ngovernance: {{update: all}}\n",
        hex::encode(key.verifying_key().as_bytes()),
        hex::encode(MEASUREMENT)
    );
    let own_manifest = Manifest::from_yaml(&own).unwrap();
    let mut own_sigs = coffer_manifest::SignatureFile::new(own_manifest.hash());
    own_sigs
        .add(
            own_manifest.hash(),
            coffer_manifest::sign(&own_manifest, None, "mallory", &key).unwrap(),
        )
        .unwrap();
    let r = s.party.submit("mallory", &own, &own_sigs).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    let seen = s.party.audit("mallory").await;
    let full = s.party.audit("carol").await;
    assert_eq!(seen.len(), full.len(), "every entry keeps its place");
    let broker_key = {
        let info = s.party.send(Method::GET, "/v1/info", &[], Vec::new()).await;
        let v: serde_json::Value = serde_json::from_slice(&info.body).unwrap();
        let hex_key = v["audit_key"]
            .as_str()
            .unwrap()
            .strip_prefix("ed25519:")
            .unwrap();
        let bytes: [u8; 32] = hex::decode(hex_key).unwrap().try_into().unwrap();
        ed25519_dalek::VerifyingKey::from_bytes(&bytes).unwrap()
    };
    let head_seen = coffer_broker::verify_log(&seen, &broker_key).unwrap();
    let head_full = coffer_broker::verify_log(&full, &broker_key).unwrap();
    assert_eq!(head_seen, head_full, "the redacted log has the same head");
    let study = s.manifest.hash().to_string();
    let text = seen
        .iter()
        .map(|e| e.to_json_line().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    for hidden in [study.as_str(), "a_data", "b_data", "alpha", "joined"] {
        assert!(!text.contains(hidden), "the outsider sees {hidden:?}");
    }
    let own_hash = own_manifest.hash().to_string();
    assert!(
        seen.iter()
            .any(|e| e.entry.event.manifest() == Some(own_manifest.hash())),
        "its own submission is shown"
    );
    // The study's parties see its entries and not mallory's.
    let carol_text = full
        .iter()
        .map(|e| e.to_json_line().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(carol_text.contains(&study));
    assert!(!carol_text.contains(&own_hash));
    // A redacted entry cannot be passed off with another hash, or with its time back.
    let mut forged = seen.clone();
    let i = forged
        .iter()
        .position(|e| matches!(e.entry.event, coffer_broker::AuditEvent::Redacted { .. }))
        .unwrap();
    forged[i].entry.time = 1;
    assert!(coffer_broker::verify_log(&forged, &broker_key).is_err());
}

/// Issue 12: one signing key cannot grow the log without bound: past the hourly cap its
/// submissions are refused (429, `submission_rate`) and nothing is logged.
#[tokio::test]
async fn manifest_submissions_are_capped_per_key() {
    let mut s = setup(true, &PARTIES).await;
    let sigs = sigs(&s.manifest, &["alpha"]);
    let cap = coffer_broker::service::MAX_SUBMISSIONS_PER_HOUR;
    // setup() submitted once as alpha.
    for _ in 1..cap {
        let r = s.party.submit("alpha", &s.yaml, &sigs).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let before = s.party.audit("carol").await.len();
    let r = s.party.submit("alpha", &s.yaml, &sigs).await;
    assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(check_of(&r), "submission_rate");
    assert_eq!(s.party.audit("carol").await.len(), before);
    // Another key is not affected.
    let r = s.party.submit("beta", &s.yaml, &sigs).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

/// Issue 12: the broker's RA-TLS certificate lives a day at most (it is renewed in place,
/// with the same sealed key, while the broker runs).
#[tokio::test]
async fn the_broker_certificate_lives_a_day_at_most() {
    let s = setup(true, &PARTIES).await;
    let conn = coffer_net::Connection::connect(
        &s.broker.endpoint(),
        coffer_net::client_config(None).unwrap(),
    )
    .await
    .unwrap();
    let cert = coffer_attest::ratls::RaTlsCert::from_der(conn.peer_certificate()).unwrap();
    assert!(
        cert.not_after - now() <= 86_400 + 5,
        "{}",
        cert.not_after - now()
    );
    assert!(cert.validity_check(now()).is_none());
}

/// Issue 12: a running broker renews its certificate in place, with the same key, so the
/// parties' pins still hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_renews_its_certificate_with_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let service = coffer_broker::service::Service::bind(coffer_broker::service::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data: dir.path().join("data"),
        backend: coffer_tee::Backend::Sim,
        sim_platform: dir.path().join("platform"),
        sim_roots: Vec::new(),
        request_window_secs: 300,
    })
    .await
    .unwrap();
    let endpoint =
        coffer_net::Endpoint::parse(&format!("https://{}", service.local_addr().unwrap())).unwrap();
    let renewer = service.renewer();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(service.serve(async {
        let _ = stopped.await;
    }));
    let cert = || async {
        let conn =
            coffer_net::Connection::connect(&endpoint, coffer_net::client_config(None).unwrap())
                .await
                .unwrap();
        coffer_attest::ratls::RaTlsCert::from_der(conn.peer_certificate()).unwrap()
    };
    let first = cert().await;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    renewer.renew().unwrap();
    let second = cert().await;
    assert_eq!(second.spki_sha256(), first.spki_sha256());
    assert!(second.not_before > first.not_before);
    let _ = stop.send(());
    let _ = server.await;
}

/// Issue 12: a release is judged on evidence made for a nonce the broker issued to that very
/// worker just before; no nonce, a spent one or another worker's gets nothing (`nonce`).
#[tokio::test]
async fn releases_need_evidence_for_a_fresh_broker_nonce() {
    let mut s = setup(true, &PARTIES).await;
    let id = worker_identity(&s.broker.platform, MEASUREMENT, false);
    let other = worker_identity(&s.broker.platform, MEASUREMENT, false);
    let mut w = worker_conn(&s.broker.endpoint(), &id).await;
    let mut o = worker_conn(&s.broker.endpoint(), &other).await;
    // No nonce answered.
    let r = w
        .send(
            Method::POST,
            "/v1/release",
            &[],
            release_body(&s.manifest, "joined", &good_inputs()),
        )
        .await
        .unwrap();
    assert_refused(&mut s, &r, "nonce").await;
    // A nonce issued to the other worker, answered by this one.
    let ch = o
        .send(Method::POST, "/v1/challenge", &[], Vec::new())
        .await
        .unwrap();
    let nonce = serde_json::from_slice::<serde_json::Value>(&ch.body).unwrap()["nonce"]
        .as_str()
        .unwrap()
        .to_owned();
    let spki = coffer_attest::ratls::RaTlsCert::from_der(id.identity.cert_der())
        .unwrap()
        .spki_der;
    let answer =
        coffer_attest::ratls::answer_challenge(&spki, &hex::decode(&nonce).unwrap(), |rd| {
            coffer_tee::EvidenceSource::evidence(&id.source, rd).map_err(|e| e.to_string())
        })
        .unwrap();
    let mut body: serde_json::Value =
        serde_json::from_slice(&release_body(&s.manifest, "joined", &good_inputs())).unwrap();
    body["fresh"] = serde_json::json!({"nonce": nonce, "evidence": hex::encode(&answer)});
    let r = w
        .send(
            Method::POST,
            "/v1/release",
            &[],
            serde_json::to_vec(&body).unwrap(),
        )
        .await
        .unwrap();
    assert_refused(&mut s, &r, "nonce").await;
    // A good release, then its nonce again with a new job: spent.
    let r = release(&mut w, &id, &s.manifest, "joined", &good_inputs()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let ch = w
        .send(Method::POST, "/v1/challenge", &[], Vec::new())
        .await
        .unwrap();
    let nonce = serde_json::from_slice::<serde_json::Value>(&ch.body).unwrap()["nonce"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer =
        coffer_attest::ratls::answer_challenge(&spki, &hex::decode(&nonce).unwrap(), |rd| {
            coffer_tee::EvidenceSource::evidence(&id.source, rd).map_err(|e| e.to_string())
        })
        .unwrap();
    for expect in [200, 403] {
        let mut body: serde_json::Value =
            serde_json::from_slice(&release_body(&s.manifest, "joined", &good_inputs())).unwrap();
        body["fresh"] = serde_json::json!({"nonce": nonce, "evidence": hex::encode(&answer)});
        let r = w
            .send(
                Method::POST,
                "/v1/release",
                &[],
                serde_json::to_vec(&body).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status, expect, "{}", String::from_utf8_lossy(&r.body));
        if expect == 403 {
            assert_eq!(check_of(&r), "nonce");
        }
    }
}
