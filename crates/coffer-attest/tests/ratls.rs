//! RA-TLS: certificates with evidence, appraisal of their binding, and rustls handshakes that
//! fail with the typed reason.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::io::{Read, Write};

use der::Decode;
use std::sync::Arc;

use coffer_attest::dcap::Collateral;
use coffer_attest::ratls::{
    CertEvidence, GRAMINE_LEGACY_OID, KeyAlg, RaTlsCert, RaTlsClientVerifier, RaTlsIdentity,
    RaTlsServerVerifier, RaTlsVerifier, Refused, TAGGED_EVIDENCE_OID, challenge_report_data,
    client_config_without_cert, decode_tagged_evidence, report_data_for,
};
use coffer_attest::sim::sign_sim_evidence;
use coffer_attest::{Error, Evidence, FailedCheck, Policy, TeeKind, Verifier};
use ed25519_dalek::SigningKey;

const NOW: i64 = 1_751_328_000; // 2025-07-01, inside the SGX sample's collateral window
const MEASUREMENT: [u8; 48] = [0x33; 48];

fn platform() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

fn sim_evidence(report_data: &[u8; 64]) -> Result<Evidence, Error> {
    sign_sim_evidence(&platform(), &MEASUREMENT, report_data, false).map(Evidence::Sim)
}

fn issue(nonce: Option<&[u8]>) -> RaTlsIdentity {
    RaTlsIdentity::issue(KeyAlg::P256, nonce, NOW, 86_400, sim_evidence).unwrap()
}

/// A certificate valid now (for handshakes, which rustls runs at the real time).
fn issue_now() -> RaTlsIdentity {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    RaTlsIdentity::issue(KeyAlg::P256, None, now, 86_400, sim_evidence).unwrap()
}

/// Issue 12: a certificate outside its validity is refused, whatever its evidence says.
#[test]
fn certificates_outside_their_validity_are_refused() {
    let id = issue(None);
    assert!(ratls(policy()).appraise_cert(id.cert_der(), NOW).accepted);
    // Issued at NOW for a day: valid from an hour before (clock skew) to a day after.
    for at in [NOW - 3_601, NOW + 86_401, 0, i64::MAX] {
        let verdict = ratls(policy()).appraise_cert(id.cert_der(), at);
        assert_eq!(checks(&verdict), ["certificate_expired"], "at {at}");
        assert!(!verdict.accepted);
    }
    for at in [NOW - 3_600, NOW + 86_400] {
        assert!(
            ratls(policy()).appraise_cert(id.cert_der(), at).accepted,
            "at {at}"
        );
    }
    let cert = coffer_attest::ratls::RaTlsCert::from_der(id.cert_der()).unwrap();
    let err = cert
        .verify_bound(&verifier(), None, NOW + 86_401)
        .unwrap_err();
    assert_eq!(err[0].check(), "certificate_expired");
    // In a handshake (at the real time), a certificate issued in 2025 is expired.
    let client = client_config_without_cert(RaTlsServerVerifier::new(ratls(policy()))).unwrap();
    let err = handshake(client, id.server_config(None).unwrap()).unwrap_err();
    let refused = Refused::from_rustls(&err).unwrap_or_else(|| panic!("{err:?}"));
    assert_eq!(refused.failed_checks[0].check(), "certificate_expired");
}

fn policy() -> Policy {
    Policy::from_yaml(&format!(
        "tee: [sim]\nallow_simulation: true\nmeasurements: [\"sim:measurement={}\"]\n",
        hex::encode(MEASUREMENT)
    ))
    .unwrap()
}

fn verifier() -> Verifier {
    Verifier::new().with_sim_root(platform().verifying_key().to_bytes())
}

fn ratls(policy: Policy) -> RaTlsVerifier {
    RaTlsVerifier::new(verifier(), policy)
}

fn checks(v: &coffer_attest::Verdict) -> Vec<&'static str> {
    v.failed_checks.iter().map(FailedCheck::check).collect()
}

#[test]
fn issued_certificate_carries_tagged_evidence_binding_its_key() {
    for alg in [KeyAlg::P256, KeyAlg::P384] {
        let id = RaTlsIdentity::issue(alg, None, NOW, 3600, sim_evidence).unwrap();
        assert_eq!(id.tee(), TeeKind::Sim);
        let cert = RaTlsCert::from_pem(id.cert_pem().as_bytes()).unwrap();
        let CertEvidence::Tagged {
            evidence,
            claims_cbor,
            claims,
        } = &cert.evidence
        else {
            panic!("not tagged evidence");
        };
        assert_eq!(claims.nonce, None);
        let sim = coffer_attest::sim::parse_sim_evidence(evidence.data()).unwrap();
        assert_eq!(sim.report_data, report_data_for(claims_cbor));
        let verdict = ratls(policy()).appraise_cert(id.cert_der(), NOW);
        assert!(verdict.accepted, "{:?}", verdict.failed_checks);
    }
}

#[test]
fn policy_failures_are_typed() {
    let id = issue(None);
    let mut p = policy();
    p.allow_simulation = false;
    assert_eq!(
        checks(&ratls(p).appraise_cert(id.cert_der(), NOW)),
        ["simulation"]
    );
    let mut p = policy();
    p.measurements = vec![
        format!("sim:measurement={}", "44".repeat(48))
            .parse()
            .unwrap(),
    ];
    assert_eq!(
        checks(&ratls(p).appraise_cert(id.cert_der(), NOW)),
        ["measurement"]
    );
    // Unknown sim root: the evidence itself does not verify.
    let v = RaTlsVerifier::new(Verifier::new(), policy()).appraise_cert(id.cert_der(), NOW);
    assert!(!v.accepted && v.claims.is_none());
    assert_eq!(checks(&v), ["missing"]);
}

#[test]
fn evidence_for_another_key_is_not_bound() {
    // A prover that replays evidence made for a different key.
    let first = issue(None);
    let stolen = RaTlsCert::from_der(first.cert_der()).unwrap().evidence();
    let replay = RaTlsIdentity::issue(KeyAlg::P256, None, NOW, 3600, |_| {
        Ok::<_, Error>(stolen.clone())
    })
    .unwrap();
    let v = ratls(policy()).appraise_cert(replay.cert_der(), NOW);
    assert_eq!(checks(&v), ["key_binding"]);
}

#[test]
fn nonce_challenge() {
    let nonce = b"fresh verifier nonce";
    let id = issue(Some(nonce));
    let cert = RaTlsCert::from_der(id.cert_der()).unwrap();
    let sim = coffer_attest::sim::parse_sim_evidence(cert.evidence().data()).unwrap();
    assert_eq!(
        sim.report_data,
        challenge_report_data(&cert.spki_der, nonce).unwrap()
    );
    let fresh = ratls(policy()).with_nonce(nonce.to_vec());
    assert!(fresh.appraise_cert(id.cert_der(), NOW).accepted);
    let other = ratls(policy()).with_nonce(b"another nonce".to_vec());
    assert_eq!(checks(&other.appraise_cert(id.cert_der(), NOW)), ["nonce"]);
    // A certificate made without a nonce does not answer a challenge.
    assert_eq!(
        checks(&fresh.appraise_cert(issue(None).cert_der(), NOW)),
        ["nonce"]
    );
}

#[test]
fn flipped_bytes_anywhere_never_pass_and_never_panic() {
    let id = issue(None);
    let der = id.cert_der().to_vec();
    let v = ratls(policy());
    // RA-TLS trusts the key because the evidence binds it, not because of the certificate's
    // serial, names, dates or self-signature (the TLS handshake proves possession of the key).
    // So every flip in the public key or in the evidence extension must be refused.
    let cert = RaTlsCert::from_der(&der).unwrap();
    let spki = find(&der, &cert.spki_der);
    let ext = find(&der, &extension_value(&der));
    let mut refused = 0;
    for i in 0..der.len() {
        let mut bad = der.clone();
        bad[i] ^= 0x01;
        let verdict = v.appraise_cert(&bad, NOW);
        if spki.contains(&i) || ext.contains(&i) {
            assert!(!verdict.accepted, "flip at {i} of {} accepted", der.len());
            refused += 1;
        }
    }
    assert!(refused > 300, "{refused}");
    for len in [0, 1, 10, der.len() / 2, der.len() - 1] {
        assert!(!v.appraise_cert(&der[..len], NOW).accepted);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> std::ops::Range<usize> {
    let at = haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    at..at + needle.len()
}

fn extension_value(cert_der: &[u8]) -> Vec<u8> {
    x509_cert::Certificate::from_der(cert_der)
        .unwrap()
        .tbs_certificate
        .extensions
        .unwrap()
        .into_iter()
        .find(|e| e.extn_id.to_string() == TAGGED_EVIDENCE_OID)
        .unwrap()
        .extn_value
        .as_bytes()
        .to_vec()
}

#[test]
fn gramine_legacy_extension_is_read() {
    // A certificate in Gramine's legacy form carrying the dcap-qvl SGX sample quote: it parses
    // and verifies, but the quote's report data ("Hello, world!") does not bind this key.
    let quote = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/sgx_dcap/dcap-qvl/sgx_quote"
    ))
    .unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .custom_extensions
        .push(rcgen::CustomExtension::from_oid_content(
            &[1, 2, 840, 113741, 1337, 6],
            quote.clone(),
        ));
    let der = params.self_signed(&key).unwrap().der().to_vec();
    let cert = RaTlsCert::from_der(&der).unwrap();
    assert_eq!(cert.evidence, CertEvidence::GramineLegacy { quote });
    let mut p = Policy::from_yaml(
        "tee: [sgx]\naccepted_tcb: [ConfigurationAndSWHardeningNeeded]\n\
         accepted_advisories: [INTEL-SA-00289, INTEL-SA-00615]\n\
         measurements: [\"sgx:mrenclave=33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb\"]\n",
    )
    .unwrap();
    let v = RaTlsVerifier::new(v_verifier(), p.clone());
    let verdict = v.appraise_cert(&der, NOW);
    assert!(verdict.claims.is_some(), "{:?}", verdict.failed_checks);
    assert_eq!(checks(&verdict), ["key_binding"]);
    p.tee.clear();
    let v = RaTlsVerifier::new(v_verifier(), p);
    assert_eq!(checks(&v.appraise_cert(&der, NOW)), ["key_binding", "tee"]);
    assert_eq!(GRAMINE_LEGACY_OID, "1.2.840.113741.1337.6");
}

fn v_verifier() -> Verifier {
    let collateral = Collateral::from_dcap_qvl_json(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/sgx_dcap/dcap-qvl/sgx_quote_collateral.json"
        ))
        .unwrap(),
    )
    .unwrap();
    Verifier::new().with_collateral(collateral)
}

#[test]
fn certificate_without_evidence_is_refused() {
    let key = rcgen::KeyPair::generate().unwrap();
    let der = rcgen::CertificateParams::new(vec!["x".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap()
        .der()
        .to_vec();
    assert!(matches!(RaTlsCert::from_der(&der), Err(Error::Missing(_))));
    assert_eq!(
        checks(&ratls(policy()).appraise_cert(&der, NOW)),
        ["missing"]
    );
}

#[test]
fn tagged_evidence_decoder_rejects_wrong_shapes() {
    let id = issue(None);
    let cert = x509_cert::Certificate::from_der(id.cert_der()).unwrap();
    let ext = cert
        .tbs_certificate
        .extensions
        .unwrap()
        .into_iter()
        .find(|e| e.extn_id.to_string() == TAGGED_EVIDENCE_OID)
        .unwrap();
    assert!(!ext.critical);
    let value = &extension_value(id.cert_der())[..];
    decode_tagged_evidence(value).unwrap();
    for len in 0..value.len() {
        assert!(decode_tagged_evidence(&value[..len]).is_err());
    }
    let mut wrong_tag = value.to_vec();
    // 0xd9 0xea 0x60 is tag 60000; make it 60001.
    assert_eq!(&wrong_tag[..3], [0xd9, 0xea, 0x60]);
    wrong_tag[2] = 0x61;
    assert!(decode_tagged_evidence(&wrong_tag).is_err());
}

/// Runs a TLS handshake between a client and a server in memory; returns the client's and the
/// server's errors, if any, and on success exchanges one message.
fn handshake(
    client: rustls::ClientConfig,
    server: rustls::ServerConfig,
) -> Result<(), rustls::Error> {
    let mut c = rustls::ClientConnection::new(
        Arc::new(client),
        rustls::pki_types::ServerName::try_from("worker.coffer").unwrap(),
    )
    .unwrap();
    let mut s = rustls::ServerConnection::new(Arc::new(server)).unwrap();
    let mut buf = Vec::new();
    for _ in 0..10 {
        buf.clear();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
            s.process_new_packets()?;
        }
        buf.clear();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
            c.process_new_packets()?;
        }
        if !c.is_handshaking() && !s.is_handshaking() {
            c.writer().write_all(b"keys please").unwrap();
            buf.clear();
            while c.wants_write() {
                c.write_tls(&mut buf).unwrap();
            }
            let mut rd = &buf[..];
            s.read_tls(&mut rd).unwrap();
            s.process_new_packets()?;
            let mut got = [0u8; 11];
            s.reader().read_exact(&mut got).unwrap();
            assert_eq!(&got, b"keys please");
            return Ok(());
        }
    }
    panic!("handshake did not finish");
}

#[test]
fn mutual_ra_tls_handshake_succeeds() {
    let server_id = issue_now();
    let client_id = issue_now();
    let server = server_id
        .server_config(Some(RaTlsClientVerifier::new(ratls(policy()))))
        .unwrap();
    let client = client_id
        .client_config(RaTlsServerVerifier::new(ratls(policy())))
        .unwrap();
    handshake(client, server).unwrap();
    // A party with no certificate attesting the server.
    let server = server_id.server_config(None).unwrap();
    let client = client_config_without_cert(RaTlsServerVerifier::new(ratls(policy()))).unwrap();
    handshake(client, server).unwrap();
}

#[test]
fn refused_server_fails_the_handshake_with_the_typed_reason() {
    let server_id = issue_now();
    let mut p = policy();
    p.allow_simulation = false;
    let client = client_config_without_cert(RaTlsServerVerifier::new(ratls(p))).unwrap();
    let err = handshake(client, server_id.server_config(None).unwrap()).unwrap_err();
    let refused = Refused::from_rustls(&err).unwrap_or_else(|| panic!("{err:?}"));
    assert_eq!(refused.failed_checks, [FailedCheck::SimulationNotAllowed]);
    assert!(refused.to_string().contains("[simulation]"), "{refused}");
}

#[test]
fn refused_client_fails_the_handshake_with_the_typed_reason() {
    let server_id = issue_now();
    let mut p = policy();
    p.measurements = vec![
        format!("sim:measurement={}", "44".repeat(48))
            .parse()
            .unwrap(),
    ];
    let server = server_id
        .server_config(Some(RaTlsClientVerifier::new(ratls(p))))
        .unwrap();
    let client = issue_now()
        .client_config(RaTlsServerVerifier::new(ratls(policy())))
        .unwrap();
    let err = handshake(client, server).unwrap_err();
    let refused = Refused::from_rustls(&err).unwrap_or_else(|| panic!("{err:?}"));
    assert_eq!(
        refused
            .failed_checks
            .iter()
            .map(FailedCheck::check)
            .collect::<Vec<_>>(),
        ["measurement"]
    );
}

#[test]
fn a_key_that_does_not_match_the_certificate_fails_the_handshake() {
    // A server presenting someone else's RA-TLS certificate with its own key cannot sign the
    // handshake: the evidence is bound to the certificate's key, and TLS proves possession.
    let genuine = issue(None);
    let thief = issue(None);
    let stolen =
        RaTlsIdentity::from_parts(genuine.cert_der().to_vec(), pem_body(&thief.key_pem())).unwrap();
    let client = client_config_without_cert(RaTlsServerVerifier::new(ratls(policy()))).unwrap();
    // rustls checks that the key matches the certificate when the config is built, or the
    // handshake signature fails; either way no connection.
    match stolen.server_config(None) {
        Err(_) => {}
        Ok(server) => assert!(handshake(client, server).is_err()),
    }
}

fn pem_body(pem: &str) -> Vec<u8> {
    der::pem::decode_vec(pem.as_bytes()).unwrap().1
}

/// Issue 12: a challenge's answer is evidence made for the verifier's nonce, binding the
/// connection's key; an old answer, another key's or garbage is refused by name.
#[test]
fn challenge_answers_bind_the_nonce_and_the_key() {
    use coffer_attest::ratls::{answer_challenge, verify_challenge};
    let id = issue(None);
    let cert = coffer_attest::ratls::RaTlsCert::from_der(id.cert_der()).unwrap();
    let nonce = [7u8; 32];
    let answer = answer_challenge(&cert.spki_der, &nonce, |rd| {
        sim_evidence(rd).map_err(|e| e.to_string())
    })
    .unwrap();
    let verified = verify_challenge(&answer, &cert.spki_der, &nonce, &verifier(), NOW).unwrap();
    assert_eq!(verified.claims.tee(), TeeKind::Sim);
    let checks = |r: Result<coffer_attest::Verified, Vec<FailedCheck>>| -> Vec<&'static str> {
        r.unwrap_err().iter().map(FailedCheck::check).collect()
    };
    assert_eq!(
        checks(verify_challenge(
            &answer,
            &cert.spki_der,
            &[8; 32],
            &verifier(),
            NOW
        )),
        ["nonce"],
        "an answer to another challenge"
    );
    let other = coffer_attest::ratls::RaTlsCert::from_der(issue(None).cert_der()).unwrap();
    assert_eq!(
        checks(verify_challenge(
            &answer,
            &other.spki_der,
            &nonce,
            &verifier(),
            NOW
        )),
        ["key_binding"],
        "an answer for another key"
    );
    let mut flipped = answer.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert!(verify_challenge(&flipped, &cert.spki_der, &nonce, &verifier(), NOW).is_err());
    assert!(verify_challenge(b"garbage", &cert.spki_der, &nonce, &verifier(), NOW).is_err());
}
