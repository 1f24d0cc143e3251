#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::collections::BTreeMap;

use coffer_attest::{Evidence, FailedCheck, Verified, Verifier, sim::sign_sim_evidence};
use coffer_broker::{
    AuditError, AuditEvent, Broker, BrokerError, Refusal, SignedEntry, StoreError, verify_extends,
    verify_log,
};
use coffer_crypto::SecretKey;
use coffer_manifest::{Manifest, SignatureFile, sign};
use coffer_net::broker::ReleaseRequest;
use coffer_net::job::{JobSpec, OutputFormat};
use ed25519_dalek::SigningKey;

const NOW: i64 = 1_800_000_000;
const WINDOW: i64 = 300;
const MEASUREMENT: [u8; 48] = [0x4f; 48];
const PARTIES: [&str; 3] = ["alpha", "beta", "carol"];

fn party_key(name: &str) -> SigningKey {
    let seed = match name {
        "alpha" => 1,
        "beta" => 2,
        _ => 3,
    };
    SigningKey::from_bytes(&[seed; 32])
}

/// A release of `computation` for a fresh job that alpha signed at NOW.
fn ask(
    hash: &coffer_manifest::ManifestHash,
    computation: &str,
    inputs: &BTreeMap<String, String>,
) -> ReleaseRequest {
    signed_ask(hash, computation, inputs, "alpha", &party_key("alpha"), NOW)
}

fn signed_ask(
    hash: &coffer_manifest::ManifestHash,
    computation: &str,
    inputs: &BTreeMap<String, String>,
    party: &str,
    key: &SigningKey,
    time: i64,
) -> ReleaseRequest {
    let job = JobSpec {
        manifest: *hash,
        computation: computation.to_owned(),
        params: BTreeMap::new(),
        format: OutputFormat::Csv,
        party: party.to_owned(),
        time,
        nonce: coffer_net::JobNonce::random().unwrap(),
    }
    .sign(key, String::new(), serde_json::Value::Null)
    .unwrap()
    .signed_job();
    ReleaseRequest {
        manifest: *hash,
        computation: computation.to_owned(),
        inputs: inputs.clone(),
        job,
        // The core does not see it: the service checks fresh evidence before the decision.
        fresh: coffer_net::broker::FreshEvidence {
            nonce: String::new(),
            evidence: String::new(),
        },
    }
}

fn platform() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

fn digest(name: &str) -> String {
    use sha2::Digest;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(name.as_bytes()))
    )
}

fn yaml(allow_simulation: bool) -> String {
    let mut parties = String::new();
    for name in PARTIES {
        let recipient = age::x25519::Identity::generate().to_public();
        parties.push_str(&format!(
            "  - name: {name}\n    signing_key: ed25519:{}\n    recipient: {recipient}\n",
            hex::encode(party_key(name).verifying_key().as_bytes())
        ));
    }
    format!(
        "version: 1\nid: study\nparties:\n{parties}\
         enclave:\n  tee: [sim]\n  measurements: [\"sim:measurement={}\"]\n  \
         allow_simulation: {allow_simulation}\n\
         datasets:\n  - {{name: a_data, owner: alpha, uri: \"file://a\", digest: \"{}\"}}\n  \
         - {{name: b_data, owner: beta, uri: \"file://b\", digest: \"{}\"}}\n\
         computations:\n  - name: joined\n    kind: sql\n    \
         query: SELECT count(*) AS n FROM a_data JOIN b_data USING (id)\n    \
         inputs: [a_data, b_data]\n    recipients: [carol]\n\
         governance: {{update: all}}\n",
        hex::encode(MEASUREMENT),
        digest("a"),
        digest("b"),
    )
}

fn sigs(manifest: &Manifest, signers: &[&str]) -> SignatureFile {
    let mut file = SignatureFile::new(manifest.hash());
    for name in signers {
        file.add(
            manifest.hash(),
            sign(manifest, None, name, &party_key(name)).unwrap(),
        )
        .unwrap();
    }
    file
}

fn worker(measurement: [u8; 48], debug: bool) -> Verified {
    let evidence = sign_sim_evidence(&platform(), &measurement, &[0; 64], debug).unwrap();
    Verifier::new()
        .with_sim_root(platform().verifying_key().to_bytes())
        .verify(&Evidence::Sim(evidence), NOW)
        .unwrap()
}

fn good_digests() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("a_data".to_owned(), digest("a")),
        ("b_data".to_owned(), digest("b")),
    ])
}

fn key_a() -> SecretKey {
    SecretKey::from_bytes(&[0xa1; 32]).unwrap()
}

fn key_b() -> SecretKey {
    SecretKey::from_bytes(&[0xb2; 16]).unwrap()
}

struct Fixture {
    dir: tempfile::TempDir,
    broker: Broker,
    manifest: Manifest,
}

/// A broker holding the manifest signed by `signers`, with both data keys uploaded.
fn fixture(allow_simulation: bool, signers: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    let text = yaml(allow_simulation);
    let manifest = Manifest::from_yaml(&text).unwrap();
    let status = broker
        .submit_manifest(&text, &sigs(&manifest, signers), NOW)
        .unwrap();
    assert_eq!(status.active, signers.len() == PARTIES.len());
    let hash = manifest.hash();
    broker
        .upload_key(&hash, "a_data", "alpha", &key_a(), NOW)
        .unwrap();
    broker
        .upload_key(&hash, "b_data", "beta", &key_b(), NOW)
        .unwrap();
    Fixture {
        dir,
        broker,
        manifest,
    }
}

fn last_event(broker: &Broker) -> AuditEvent {
    broker
        .audit_entries()
        .unwrap()
        .last()
        .unwrap()
        .entry
        .event
        .clone()
}

/// Asserts that `refusal` was returned, nothing released, and the refusal audited.
fn assert_refused(f: &Fixture, result: Result<BTreeMap<String, SecretKey>, Refusal>) -> Refusal {
    let refusal = result.expect_err("keys must not be released");
    match last_event(&f.broker) {
        AuditEvent::KeyRefused { reasons, .. } => assert_eq!(reasons, refusal.reasons()),
        other => panic!("expected KeyRefused, got {other:?}"),
    }
    assert!(
        !f.broker
            .audit_entries()
            .unwrap()
            .iter()
            .any(|e| matches!(e.entry.event, AuditEvent::KeyReleased { .. }))
    );
    verify_log(&f.broker.audit_entries().unwrap(), &f.broker.public_key()).unwrap();
    refusal
}

fn release(f: &Fixture, worker: &Verified) -> Result<BTreeMap<String, SecretKey>, Refusal> {
    f.broker.release(
        &f.manifest.hash(),
        &ask(&f.manifest.hash(), "joined", &good_digests()),
        worker,
        WINDOW,
        NOW,
    )
}

#[test]
fn happy_path_releases_the_inputs_keys() {
    let f = fixture(true, &PARTIES);
    let keys = release(&f, &worker(MEASUREMENT, false)).unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys["a_data"], key_a());
    assert_eq!(keys["b_data"], key_b());
    match last_event(&f.broker) {
        AuditEvent::KeyReleased {
            datasets,
            worker_measurements,
            computation,
            worker_tee,
            ..
        } => {
            assert_eq!(datasets, ["a_data", "b_data"]);
            assert_eq!(worker_tee, "sim");
            assert_eq!(computation, "joined");
            assert_eq!(worker_measurements["measurement"], hex::encode(MEASUREMENT));
        }
        other => panic!("expected KeyReleased, got {other:?}"),
    }
    let entries = f.broker.audit_entries().unwrap();
    verify_log(&entries, &f.broker.public_key()).unwrap();
    // submitted, activated, two uploads, one release
    assert_eq!(entries.len(), 5);
}

#[test]
fn refuses_unsigned_manifest() {
    let f = fixture(true, &[]);
    let refusal = assert_refused(&f, release(&f, &worker(MEASUREMENT, false)));
    assert_eq!(
        refusal,
        Refusal::OwnerNotSigned {
            party: "alpha".into()
        }
    );
}

#[test]
fn refuses_when_one_owner_did_not_sign() {
    let f = fixture(true, &["alpha", "carol"]);
    let refusal = assert_refused(&f, release(&f, &worker(MEASUREMENT, false)));
    assert_eq!(
        refusal,
        Refusal::OwnerNotSigned {
            party: "beta".into()
        }
    );
}

#[test]
fn refuses_inactive_manifest_when_a_non_owner_did_not_sign() {
    let f = fixture(true, &["alpha", "beta"]);
    let refusal = assert_refused(&f, release(&f, &worker(MEASUREMENT, false)));
    assert_eq!(refusal, Refusal::ManifestNotActive);
}

#[test]
fn refuses_wrong_measurement() {
    let f = fixture(true, &PARTIES);
    let refusal = assert_refused(&f, release(&f, &worker([0x11; 48], false)));
    let Refusal::Appraisal(checks) = refusal else {
        panic!("expected appraisal refusal, got {refusal:?}")
    };
    assert!(
        checks
            .iter()
            .any(|c| matches!(c, FailedCheck::MeasurementNotAllowed { .. }))
    );
}

#[test]
fn refuses_debug_evidence() {
    let f = fixture(true, &PARTIES);
    let refusal = assert_refused(&f, release(&f, &worker(MEASUREMENT, true)));
    assert!(matches!(&refusal, Refusal::Appraisal(c) if c.contains(&FailedCheck::DebugNotAllowed)));
}

#[test]
fn refuses_sim_evidence_when_policy_disallows_simulation() {
    let f = fixture(false, &PARTIES);
    let refusal = assert_refused(&f, release(&f, &worker(MEASUREMENT, false)));
    assert!(
        matches!(&refusal, Refusal::Appraisal(c) if c.contains(&FailedCheck::SimulationNotAllowed))
    );
}

#[test]
fn refuses_digest_mismatch_missing_and_extra_inputs() {
    let f = fixture(true, &PARTIES);
    let w = worker(MEASUREMENT, false);
    let hash = f.manifest.hash();

    let mut wrong = good_digests();
    wrong.insert("b_data".into(), digest("tampered"));
    let r = assert_refused(
        &f,
        f.broker
            .release(&hash, &ask(&hash, "joined", &wrong), &w, WINDOW, NOW),
    );
    assert_eq!(
        r,
        Refusal::DigestMismatch {
            dataset: "b_data".into()
        }
    );

    let mut missing = good_digests();
    missing.remove("a_data");
    let r = assert_refused(
        &f,
        f.broker
            .release(&hash, &ask(&hash, "joined", &missing), &w, WINDOW, NOW),
    );
    assert_eq!(
        r,
        Refusal::DigestMismatch {
            dataset: "a_data".into()
        }
    );

    let mut extra = good_digests();
    extra.insert("c_data".into(), digest("c"));
    let r = assert_refused(
        &f,
        f.broker
            .release(&hash, &ask(&hash, "joined", &extra), &w, WINDOW, NOW),
    );
    assert_eq!(
        r,
        Refusal::DigestMismatch {
            dataset: "c_data".into()
        }
    );
}

#[test]
fn refuses_unknown_manifest_computation_and_missing_key() {
    let f = fixture(true, &PARTIES);
    let w = worker(MEASUREMENT, false);
    let other = coffer_manifest::ManifestHash([7; 32]);
    let r = assert_refused(
        &f,
        f.broker.release(
            &other,
            &ask(&other, "joined", &good_digests()),
            &w,
            WINDOW,
            NOW,
        ),
    );
    assert_eq!(r, Refusal::UnknownManifest);
    let r = assert_refused(
        &f,
        f.broker.release(
            &f.manifest.hash(),
            &ask(&f.manifest.hash(), "nope", &good_digests()),
            &w,
            WINDOW,
            NOW,
        ),
    );
    assert_eq!(r, Refusal::UnknownComputation);

    // A fresh broker with the manifest but only alpha's key.
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    let text = yaml(true);
    let manifest = Manifest::from_yaml(&text).unwrap();
    broker
        .submit_manifest(&text, &sigs(&manifest, &PARTIES), NOW)
        .unwrap();
    broker
        .upload_key(&manifest.hash(), "a_data", "alpha", &key_a(), NOW)
        .unwrap();
    let r = broker
        .release(
            &manifest.hash(),
            &ask(&manifest.hash(), "joined", &good_digests()),
            &w,
            WINDOW,
            NOW,
        )
        .unwrap_err();
    assert_eq!(
        r,
        Refusal::KeyMissing {
            dataset: "b_data".into()
        }
    );
    assert!(matches!(last_event(&broker), AuditEvent::KeyRefused { .. }));
}

#[test]
fn refuses_replayed_nonce() {
    let f = fixture(true, &PARTIES);
    f.broker
        .check_request_nonce("alpha", "n-1", NOW - 10, NOW, 300)
        .unwrap();
    assert_eq!(
        f.broker
            .check_request_nonce("alpha", "n-1", NOW - 10, NOW + 5, 300),
        Err(Refusal::ReplayedNonce)
    );
    // Another party may use the same nonce string; the same party another nonce.
    f.broker
        .check_request_nonce("beta", "n-1", NOW, NOW, 300)
        .unwrap();
    f.broker
        .check_request_nonce("alpha", "n-2", NOW, NOW, 300)
        .unwrap();
    // Survives a reopen.
    drop(f.broker);
    let broker = Broker::open(f.dir.path()).unwrap();
    assert_eq!(
        broker.check_request_nonce("alpha", "n-1", NOW, NOW + 10, 300),
        Err(Refusal::ReplayedNonce)
    );
}

#[test]
fn refuses_stale_request_time() {
    let f = fixture(true, &PARTIES);
    for time in [NOW - 301, NOW + 301, i64::MIN, i64::MAX] {
        assert!(matches!(
            f.broker.check_request_nonce("alpha", "n", time, NOW, 300),
            Err(Refusal::StaleRequest { .. })
        ));
    }
    // A stale request's nonce was not recorded.
    f.broker
        .check_request_nonce("alpha", "n", NOW, NOW, 300)
        .unwrap();
}

#[test]
fn refuses_key_upload_by_non_owner() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    let text = yaml(true);
    let manifest = Manifest::from_yaml(&text).unwrap();
    let hash = manifest.hash();
    broker
        .submit_manifest(&text, &sigs(&manifest, &PARTIES), NOW)
        .unwrap();
    let before = broker.audit_entries().unwrap().len();
    for uploader in ["beta", "carol", "mallory"] {
        let err = broker
            .upload_key(&hash, "a_data", uploader, &key_b(), NOW)
            .unwrap_err();
        assert!(
            matches!(&err, BrokerError::NotOwner { party, dataset } if party == uploader && dataset == "a_data"),
            "{err:?}"
        );
    }
    assert!(matches!(
        broker.upload_key(&hash, "z_data", "alpha", &key_a(), NOW),
        Err(BrokerError::UnknownDataset(_))
    ));
    assert!(matches!(
        broker.upload_key(
            &coffer_manifest::ManifestHash([1; 32]),
            "a_data",
            "alpha",
            &key_a(),
            NOW
        ),
        Err(BrokerError::UnknownManifest(_))
    ));
    assert_eq!(broker.audit_entries().unwrap().len(), before);
    // Nothing was stored: the release finds no key for a_data.
    broker
        .upload_key(&hash, "b_data", "beta", &key_b(), NOW)
        .unwrap();
    let r = broker
        .release(
            &hash,
            &ask(&hash, "joined", &good_digests()),
            &worker(MEASUREMENT, false),
            WINDOW,
            NOW,
        )
        .unwrap_err();
    assert_eq!(
        r,
        Refusal::KeyMissing {
            dataset: "a_data".into()
        }
    );
    // The owner cannot silently replace a held key either.
    assert!(matches!(
        broker.upload_key(&hash, "b_data", "beta", &key_a(), NOW),
        Err(BrokerError::KeyExists { .. })
    ));
}

#[test]
fn signatures_accumulate_across_submissions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    let text = yaml(true);
    let manifest = Manifest::from_yaml(&text).unwrap();
    let first = broker
        .submit_manifest(&text, &sigs(&manifest, &["alpha"]), NOW)
        .unwrap();
    assert!(!first.active);
    let second = broker
        .submit_manifest(&text, &sigs(&manifest, &["beta", "carol"]), NOW)
        .unwrap();
    assert!(second.active);
    assert!(matches!(
        last_event(&broker),
        AuditEvent::ManifestActivated { .. }
    ));
    // Submitting no signatures later does not deactivate it.
    broker
        .submit_manifest(&text, &sigs(&manifest, &[]), NOW)
        .unwrap();
    for (name, key) in [("a_data", "alpha"), ("b_data", "beta")] {
        broker
            .upload_key(&manifest.hash(), name, key, &key_a(), NOW)
            .unwrap();
    }
    broker
        .release(
            &manifest.hash(),
            &ask(&manifest.hash(), "joined", &good_digests()),
            &worker(MEASUREMENT, false),
            WINDOW,
            NOW,
        )
        .unwrap();
}

#[test]
fn audit_log_truncation_and_rewrite_are_detected_against_a_known_head() {
    let f = fixture(true, &PARTIES);
    let pk = f.broker.public_key();
    let before = f.broker.audit_entries().unwrap();
    let head = verify_log(&before, &pk).unwrap();
    assert_eq!(head.len as usize, before.len());

    release(&f, &worker(MEASUREMENT, false)).unwrap();
    let after = f.broker.audit_entries().unwrap();
    let new_head = verify_extends(&after, &pk, &head).unwrap();
    assert_eq!(new_head.len, head.len + 1);
    assert_eq!(new_head, verify_log(&after, &pk).unwrap());

    // Cutting the newest entries off yields a log that verifies on its own…
    let cut = &after[..after.len() - 2];
    verify_log(cut, &pk).unwrap();
    // …but not against the head a client saw before.
    assert_eq!(
        verify_extends(cut, &pk, &new_head),
        Err(AuditError::Truncated {
            known: new_head.len,
            found: new_head.len - 2
        })
    );
    // A head from another history (here: claimed hash of a different log) is a fork.
    let mut other = head.clone();
    other.last_hash = "00".repeat(32);
    assert_eq!(
        verify_extends(&after, &pk, &other),
        Err(AuditError::Forked { seq: head.len })
    );
}

#[test]
fn audit_log_detects_edit_removal_and_reorder() {
    let f = fixture(true, &PARTIES);
    release(&f, &worker(MEASUREMENT, false)).unwrap();
    let entries = f.broker.audit_entries().unwrap();
    let pk = f.broker.public_key();
    verify_log(&entries, &pk).unwrap();

    // JSON lines round trip.
    let exported = f.broker.export_audit().unwrap();
    let parsed: Vec<SignedEntry> = exported
        .lines()
        .map(|l| SignedEntry::from_json_line(l).unwrap())
        .collect();
    assert_eq!(parsed, entries);

    let mut edited = entries.clone();
    if let AuditEvent::KeyUploaded { party, .. } = &mut edited[2].entry.event {
        *party = "mallory".into();
    } else {
        panic!("entry 3 should be an upload");
    }
    assert_eq!(
        verify_log(&edited, &pk),
        Err(AuditError::Signature { seq: 3 })
    );

    let mut removed = entries.clone();
    removed.remove(1);
    assert_eq!(
        verify_log(&removed, &pk),
        Err(AuditError::Sequence {
            position: 2,
            found: 3
        })
    );

    let mut reordered = entries.clone();
    reordered.swap(2, 3);
    assert_eq!(
        verify_log(&reordered, &pk),
        Err(AuditError::Sequence {
            position: 3,
            found: 4
        })
    );

    let other = SigningKey::from_bytes(&[42; 32]).verifying_key();
    assert_eq!(
        verify_log(&entries, &other),
        Err(AuditError::Signature { seq: 1 })
    );
}

#[test]
fn reopening_keeps_manifests_keys_and_log() {
    let f = fixture(true, &PARTIES);
    let pk = f.broker.public_key();
    let before = f.broker.audit_entries().unwrap();
    drop(f.broker);
    let broker = Broker::open(f.dir.path()).unwrap();
    assert_eq!(broker.public_key(), pk);
    assert_eq!(broker.audit_entries().unwrap(), before);
    let keys = broker
        .release(
            &f.manifest.hash(),
            &ask(&f.manifest.hash(), "joined", &good_digests()),
            &worker(MEASUREMENT, false),
            WINDOW,
            NOW,
        )
        .unwrap();
    assert_eq!(keys["a_data"], key_a());
    verify_log(&broker.audit_entries().unwrap(), &pk).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in ["sealing.key", "broker-signing.key"] {
            let mode = std::fs::metadata(f.dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }
}

#[test]
fn swapped_sealed_key_rows_do_not_open() {
    let f = fixture(true, &PARTIES);
    drop(f.broker);
    {
        let conn = rusqlite::Connection::open(f.dir.path().join("broker.sqlite")).unwrap();
        conn.execute_batch(
            "UPDATE keys SET sealed = (SELECT sealed FROM keys WHERE dataset = 'b_data')
             WHERE dataset = 'a_data';",
        )
        .unwrap();
    }
    let broker = Broker::open(f.dir.path()).unwrap();
    let r = broker
        .release(
            &f.manifest.hash(),
            &ask(&f.manifest.hash(), "joined", &good_digests()),
            &worker(MEASUREMENT, false),
            WINDOW,
            NOW,
        )
        .unwrap_err();
    assert!(matches!(r, Refusal::Internal(_)), "{r:?}");
}

#[test]
fn corrupted_database_is_refused_on_open() {
    let f = fixture(true, &PARTIES);
    drop(f.broker);
    let path = f.dir.path().join("broker.sqlite");
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() >= 4 * 4096, "db is {} bytes", bytes.len());
    let (start, end) = (bytes.len() / 4, bytes.len() * 3 / 4);
    for (i, b) in bytes[start..end].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(7);
    }
    std::fs::write(&path, bytes).unwrap();
    let err = Broker::open(f.dir.path()).unwrap_err();
    assert!(
        matches!(err, BrokerError::Store(StoreError::Corrupt { .. })),
        "{err:?}"
    );
}

#[test]
fn garbage_file_is_refused_on_open() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broker.sqlite"), vec![0x5a; 8192]).unwrap();
    let err = Broker::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, BrokerError::Store(StoreError::Corrupt { .. })),
        "{err:?}"
    );
}

#[test]
fn update_is_judged_by_its_stored_predecessor() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path()).unwrap();
    let v1_text = yaml(true);
    let v1 = Manifest::from_yaml(&v1_text).unwrap();
    let v2_text = v1_text.replacen(
        "id: study\n",
        &format!("id: study\npredecessor: \"{}\"\n", v1.hash()),
        1,
    );
    let v2 = Manifest::from_yaml(&v2_text).unwrap();
    let mut v2_sigs = SignatureFile::new(v2.hash());
    for name in PARTIES {
        v2_sigs
            .add(
                v2.hash(),
                sign(&v2, Some(&v1), name, &party_key(name)).unwrap(),
            )
            .unwrap();
    }
    // The predecessor must be held first.
    assert!(matches!(
        broker.submit_manifest(&v2_text, &v2_sigs, NOW),
        Err(BrokerError::UnknownPredecessor(h)) if h == v1.hash()
    ));
    // An update of an inactive predecessor is not active.
    broker
        .submit_manifest(&v1_text, &sigs(&v1, &["alpha"]), NOW)
        .unwrap();
    assert!(
        !broker
            .submit_manifest(&v2_text, &v2_sigs, NOW)
            .unwrap()
            .active
    );
    broker
        .submit_manifest(&v1_text, &sigs(&v1, &["beta", "carol"]), NOW)
        .unwrap();
    assert!(
        broker
            .submit_manifest(&v2_text, &v2_sigs, NOW)
            .unwrap()
            .active
    );
}

/// Issue 12: a receipt is recorded next to its job's key release, once, and only for a job
/// whose keys were released.
#[test]
fn job_receipts_are_logged_next_to_their_release() {
    let f = fixture(true, &PARTIES);
    let hash = f.manifest.hash();
    let job = ask(&hash, "joined", &good_digests());
    let id = job.job.id().unwrap();
    let receipt = serde_json::json!({"job": id, "output_digest": digest("out")});
    // No release yet: refused, nothing logged.
    let before = f.broker.audit_entries().unwrap().len();
    assert_eq!(
        f.broker
            .record_receipt(&id, &hash, "", receipt.clone(), NOW)
            .unwrap_err(),
        Refusal::UnknownJob
    );
    assert_eq!(f.broker.audit_entries().unwrap().len(), before);
    f.broker
        .release(&hash, &job, &worker(MEASUREMENT, false), WINDOW, NOW)
        .unwrap();
    match last_event(&f.broker) {
        AuditEvent::KeyReleased { job, .. } => assert_eq!(job, Some(id)),
        other => panic!("expected KeyReleased, got {other:?}"),
    }
    // Under another manifest it is not this job's.
    let other = coffer_manifest::ManifestHash([0x55; 32]);
    assert_eq!(
        f.broker
            .record_receipt(&id, &other, "", receipt.clone(), NOW)
            .unwrap_err(),
        Refusal::UnknownJob
    );
    f.broker
        .record_receipt(&id, &hash, "", receipt.clone(), NOW)
        .unwrap();
    assert_eq!(
        last_event(&f.broker),
        AuditEvent::JobReceipt {
            receipt: receipt.clone()
        }
    );
    // From another worker than the one the keys went to: refused.
    assert_eq!(
        f.broker
            .record_receipt(&id, &hash, "ab", receipt.clone(), NOW)
            .unwrap_err(),
        Refusal::ReceiptSigner
    );
    assert_eq!(
        f.broker
            .record_receipt(&id, &hash, "", receipt, NOW)
            .unwrap_err(),
        Refusal::ReceiptExists
    );
    verify_log(&f.broker.audit_entries().unwrap(), &f.broker.public_key()).unwrap();
}

/// Issue 12: keys go only to a job a party of the manifest signed, for this manifest and
/// computation, fresh, once; the job id is spent by the release decision, not before it.
#[test]
fn releases_need_a_fresh_party_signed_job_spent_once() {
    let f = fixture(true, &PARTIES);
    let hash = f.manifest.hash();
    let good = worker(MEASUREMENT, false);
    let signed = |party: &str, key: &SigningKey, time: i64| {
        signed_ask(&hash, "joined", &good_digests(), party, key, time)
    };
    let cases: Vec<(&str, ReleaseRequest, Refusal)> = vec![
        (
            "a stranger",
            signed("mallory", &party_key("mallory"), NOW),
            Refusal::UnknownParty {
                party: "mallory".into(),
            },
        ),
        (
            "alpha's name, beta's key",
            signed("alpha", &party_key("beta"), NOW),
            Refusal::JobSignature {
                party: "alpha".into(),
            },
        ),
        (
            "an hour old",
            signed("alpha", &party_key("alpha"), NOW - 3_600),
            Refusal::StaleRequest {
                time: NOW - 3_600,
                now: NOW,
                window_secs: WINDOW,
            },
        ),
        (
            "a job for another computation",
            {
                let mut a = ask(&hash, "joined", &good_digests());
                a.job.spec.computation = "other".into();
                a
            },
            Refusal::JobMismatch,
        ),
        (
            "a job for another manifest",
            {
                let mut a = ask(&hash, "joined", &good_digests());
                a.job.spec.manifest = coffer_manifest::ManifestHash([0x77; 32]);
                a
            },
            Refusal::JobMismatch,
        ),
    ];
    for (case, a, want) in cases {
        let r = assert_refused(&f, f.broker.release(&hash, &a, &good, WINDOW, NOW));
        assert_eq!(r, want, "{case}");
    }
    // A refused release does not spend the job: the same job, from a worker that passes,
    // gets its keys; the next time it is a replay.
    let job = ask(&hash, "joined", &good_digests());
    let bad = worker([0x11; 48], false);
    assert!(matches!(
        assert_refused(&f, f.broker.release(&hash, &job, &bad, WINDOW, NOW)),
        Refusal::Appraisal(_)
    ));
    assert_eq!(
        f.broker
            .release(&hash, &job, &good, WINDOW, NOW)
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        f.broker
            .release(&hash, &job, &good, WINDOW, NOW)
            .unwrap_err(),
        Refusal::ReplayedNonce
    );
    // Beta, also a party, may sign jobs too.
    let beta = signed("beta", &party_key("beta"), NOW);
    assert_eq!(
        f.broker
            .release(&hash, &beta, &good, WINDOW, NOW)
            .unwrap()
            .len(),
        2
    );
}

/// Issue 12, the manifest lifecycle: M1 releases; its update M2, signed by every party of
/// M1, becomes active and M1 releases nothing more (`manifest_superseded`) while M2 does; an
/// owner's revocation stops M2 (`key_revoked`); a party's retirement stops a manifest
/// (`manifest_retired`). Every step is audited.
#[test]
fn superseded_revoked_and_retired_manifests_release_nothing() {
    let f = fixture(true, &PARTIES);
    let m1 = f.manifest.hash();
    let w = worker(MEASUREMENT, false);
    f.broker
        .release(&m1, &ask(&m1, "joined", &good_digests()), &w, WINDOW, NOW)
        .unwrap();

    let v1_text = yaml(true);
    let v2_text = v1_text.replacen(
        "id: study\n",
        &format!("id: study\npredecessor: \"{m1}\"\n"),
        1,
    );
    // The parties' recipients are fresh per yaml() call: keep M1's parties in M2.
    let v1_doc = f.manifest.doc().clone();
    let mut v2_doc = Manifest::from_yaml(&v2_text).unwrap().doc().clone();
    v2_doc.parties = v1_doc.parties.clone();
    let v2 = Manifest::from_doc(v2_doc).unwrap();
    let v2_yaml = serde_json::to_string(v2.doc()).unwrap();
    let mut v2_sigs = SignatureFile::new(v2.hash());
    for name in PARTIES {
        v2_sigs
            .add(
                v2.hash(),
                sign(&v2, Some(&f.manifest), name, &party_key(name)).unwrap(),
            )
            .unwrap();
    }
    assert!(
        f.broker
            .submit_manifest(&v2_yaml, &v2_sigs, NOW)
            .unwrap()
            .active
    );
    match last_event(&f.broker) {
        AuditEvent::ManifestSuperseded { hash, by } => {
            assert_eq!((hash, by), (m1, v2.hash()));
        }
        other => panic!("expected ManifestSuperseded, got {other:?}"),
    }
    let m2 = v2.hash();
    for (ds, owner, key) in [("a_data", "alpha", key_a()), ("b_data", "beta", key_b())] {
        f.broker.upload_key(&m2, ds, owner, &key, NOW).unwrap();
    }
    let r = f
        .broker
        .release(&m1, &ask(&m1, "joined", &good_digests()), &w, WINDOW, NOW)
        .unwrap_err();
    assert!(matches!(
        last_event(&f.broker),
        AuditEvent::KeyRefused { .. }
    ));
    assert_eq!(r, Refusal::ManifestSuperseded { by: m2.to_string() });
    f.broker
        .release(&m2, &ask(&m2, "joined", &good_digests()), &w, WINDOW, NOW)
        .unwrap();

    // Only the owner may revoke; then M2 releases nothing.
    assert!(matches!(
        f.broker.revoke_key(&m2, "a_data", "beta", NOW),
        Err(BrokerError::NotOwner { .. })
    ));
    f.broker.revoke_key(&m2, "a_data", "alpha", NOW).unwrap();
    assert_eq!(
        last_event(&f.broker),
        AuditEvent::KeyRevoked {
            manifest: m2,
            dataset: "a_data".into(),
            party: "alpha".into(),
        }
    );
    assert!(f.broker.revoke_key(&m2, "a_data", "alpha", NOW).is_err());
    assert!(
        f.broker
            .upload_key(&m2, "a_data", "alpha", &key_a(), NOW)
            .is_err(),
        "a revoked grant is not re-granted under the same manifest"
    );
    let before = f.broker.audit_entries().unwrap().len();
    let r = f
        .broker
        .release(&m2, &ask(&m2, "joined", &good_digests()), &w, WINDOW, NOW)
        .unwrap_err();
    assert_eq!(
        r,
        Refusal::KeyRevoked {
            dataset: "a_data".into()
        }
    );
    assert_eq!(f.broker.audit_entries().unwrap().len(), before + 1);

    // Retirement, by any party; a stranger cannot.
    assert!(matches!(
        f.broker.retire_manifest(&m2, "mallory", NOW),
        Err(BrokerError::NotAParty(_))
    ));
    f.broker.retire_manifest(&m2, "carol", NOW).unwrap();
    assert!(matches!(
        last_event(&f.broker),
        AuditEvent::ManifestRetired { .. }
    ));
    let r = f
        .broker
        .release(&m2, &ask(&m2, "joined", &good_digests()), &w, WINDOW, NOW)
        .unwrap_err();
    assert_eq!(
        r,
        Refusal::ManifestRetired {
            party: "carol".into()
        }
    );
    verify_log(&f.broker.audit_entries().unwrap(), &f.broker.public_key()).unwrap();
}
