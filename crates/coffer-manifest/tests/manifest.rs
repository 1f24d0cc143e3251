//! The manifest crate's behaviour: validation, canonical hash, signatures and status.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use coffer_manifest::{
    ComputationKind, Error, ItemKind, Manifest, ManifestDoc, Predecessor, SignatureEntry,
    SignatureFile, SignatureProblem, Status, UpdateRule, sign, status, verify_entry,
};
use common::{TestParty, example, example_yaml, parties, signed_by, signed_update};

// ---------------------------------------------------------------------------------------------
// Validation

fn doc() -> (ManifestDoc, [TestParty; 3]) {
    let p = parties();
    (example(&p).doc().clone(), p)
}

/// Applies `change` to the example and expects validation to fail with an error that matches
/// `expected` and whose message names `named`.
fn refused(change: impl FnOnce(&mut ManifestDoc), named: &str) -> Error {
    let (mut d, _) = doc();
    change(&mut d);
    let err = Manifest::from_doc(d).expect_err("should be refused");
    assert!(
        err.to_string().contains(named),
        "{err} should name {named:?}"
    );
    err
}

#[test]
fn example_manifest_is_valid_and_evaluates() {
    let p = parties();
    let m = example(&p);
    assert_eq!(m.id(), "hospital-study-2027");
    assert_eq!(m.parties().len(), 3);
    assert!(m.predecessor().is_none());
    assert!(m.policy().allow_simulation);
    let c = m.computation("diagnosis_counts").unwrap();
    assert_eq!(c.kind, ComputationKind::Sql);
    assert_eq!(c.constraints.min_group_size, Some(10));
    let inputs: Vec<&str> = m
        .input_datasets(c)
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(inputs, ["alpha_patients", "beta_patients"]);
    let owners: Vec<&str> = m.owners_of(c).iter().map(|p| p.name()).collect();
    assert_eq!(owners, ["alpha", "beta"]);
    assert!(m.computation("nope").is_none());
    assert_eq!(m.party("carol").unwrap().doc.recipient, p[2].recipient);
    assert_eq!(m.doc().governance.update, UpdateRule::All);
}

#[test]
fn validation_refuses_version_and_syntax() {
    let p = parties();
    let yaml = example_yaml(&p, "null", "{ update: all }");
    let v2 = yaml.replace("version: 1", "version: 2\nnew_field: x");
    assert_eq!(
        Manifest::from_yaml(&v2),
        Err(Error::UnsupportedVersion { found: "2".into() })
    );
    let unknown = yaml.replace("id: hospital", "colour: blue\nid: hospital");
    assert!(
        matches!(Manifest::from_yaml(&unknown), Err(Error::Syntax { reason }) if reason.contains("colour"))
    );
    // Issue 12: an unknown constraint is refused by name, never ignored.
    let constraint = yaml.replace("min_group_size: 10", "min_group_size: 10, max_rows: 5");
    assert_eq!(
        Manifest::from_yaml(&constraint),
        Err(Error::UnknownConstraint {
            computation: "diagnosis_counts".into(),
            constraint: "max_rows".into(),
        })
    );
    let kind = yaml.replace("kind: sql", "kind: shell");
    assert!(matches!(
        Manifest::from_yaml(&kind),
        Err(Error::Syntax { .. })
    ));
    assert!(matches!(
        Manifest::from_yaml("id: x"),
        Err(Error::Syntax { .. })
    ));
    assert!(matches!(
        Manifest::from_yaml("{{{"),
        Err(Error::Syntax { .. })
    ));
    assert!(matches!(Manifest::from_yaml(""), Err(Error::Syntax { .. })));
}

#[test]
fn validation_refuses_bad_parties() {
    assert_eq!(refused(|d| d.id = " ".into(), "id"), Error::EmptyId);
    assert_eq!(
        refused(|d| d.parties.clear(), "no parties"),
        Error::NoParties
    );
    assert!(matches!(
        refused(|d| d.parties[1].name = "be ta".into(), "be ta"),
        Error::InvalidName {
            kind: ItemKind::Party,
            ..
        }
    ));
    assert!(matches!(
        refused(|d| d.parties[2].name = "alpha".into(), "alpha"),
        Error::DuplicateName {
            kind: ItemKind::Party,
            ..
        }
    ));
    let err = refused(
        |d| d.parties[2].signing_key = d.parties[0].signing_key.clone(),
        "carol",
    );
    assert_eq!(
        err,
        Error::DuplicateSigningKey {
            first: "alpha".into(),
            second: "carol".into()
        }
    );
    for bad in [
        "ed25519:zz".to_owned(),
        "rsa:00".to_owned(),
        format!("ed25519:{}", "AB".repeat(32)),
        format!("ed25519:{}", "ab".repeat(31)),
    ] {
        let err = refused(|d| d.parties[1].signing_key = bad, "beta");
        assert!(
            matches!(err, Error::BadSigningKey { ref party, .. } if party == "beta"),
            "{err}"
        );
    }
    for bad in ["age1notarecipient", "npub1abc", "", " age1x"] {
        let err = refused(|d| d.parties[2].recipient = bad.into(), "carol");
        assert!(
            matches!(err, Error::BadRecipient { ref party, .. } if party == "carol"),
            "{err}"
        );
    }
    let padded = refused(
        |d| d.parties[2].recipient = format!("{} ", d.parties[2].recipient),
        "carol",
    );
    assert!(matches!(padded, Error::BadRecipient { .. }));
}

#[test]
fn validation_refuses_bad_datasets() {
    assert!(matches!(
        refused(
            |d| d.datasets[1].name = "alpha_patients".into(),
            "alpha_patients"
        ),
        Error::DuplicateName {
            kind: ItemKind::Dataset,
            ..
        }
    ));
    assert!(matches!(
        refused(|d| d.datasets[0].name = "a/b".into(), "a/b"),
        Error::InvalidName {
            kind: ItemKind::Dataset,
            ..
        }
    ));
    assert_eq!(
        refused(|d| d.datasets[0].owner = String::new(), "alpha_patients"),
        Error::MissingOwner {
            dataset: "alpha_patients".into()
        }
    );
    assert_eq!(
        refused(|d| d.datasets[1].owner = "dave".into(), "dave"),
        Error::UnknownOwner {
            dataset: "beta_patients".into(),
            owner: "dave".into()
        }
    );
    for bad in ["sha256:abc", "md5:00", "sha256:", "11"] {
        let err = refused(|d| d.datasets[1].digest = bad.into(), "beta_patients");
        assert!(matches!(err, Error::BadDigest { ref dataset, .. } if dataset == "beta_patients"));
    }
    assert_eq!(
        refused(|d| d.datasets[0].uri = String::new(), "alpha_patients"),
        Error::EmptyUri {
            dataset: "alpha_patients".into()
        }
    );
    assert!(matches!(
        refused(|d| d.predecessor = Some("sha256:12".into()), "predecessor"),
        Error::BadPredecessor { .. }
    ));
    // A dataset with no owner line at all.
    let p = parties();
    let yaml = example_yaml(&p, "null", "{ update: all }").replace("    owner: beta\n", "");
    assert_eq!(
        Manifest::from_yaml(&yaml),
        Err(Error::MissingOwner {
            dataset: "beta_patients".into()
        })
    );
}

/// Issue 12: a constraint a kind does not enforce is refused, naming both.
#[test]
fn constraints_must_be_enforced_by_the_kind() {
    for kind in [
        ComputationKind::GbdtPredict,
        ComputationKind::Inference,
        ComputationKind::Federated,
    ] {
        let err = refused(
            |d| {
                d.computations[0].kind = kind;
                d.computations[0].query = None;
            },
            "min_group_size",
        );
        assert_eq!(
            err,
            Error::UnsupportedConstraint {
                computation: "diagnosis_counts".into(),
                kind: kind.as_str(),
                constraint: "min_group_size".into(),
                supported: "none".into(),
            }
        );
        assert!(err.to_string().contains(kind.as_str()), "{err}");
    }
    // gbdt_train enforces it (a row floor per leaf).
    let (mut d, _) = doc();
    d.computations[0].kind = ComputationKind::GbdtTrain;
    d.computations[0].query = None;
    Manifest::from_doc(d).unwrap();
    // A privacy unit must be a column name; an absent one hashes as before.
    let err = refused(
        |d| d.datasets[0].privacy_unit = Some(" ".into()),
        "privacy_unit",
    );
    assert!(matches!(err, Error::BadPrivacyUnit { .. }), "{err}");
    let (plain, _) = doc();
    let mut with_unit = plain.clone();
    with_unit.datasets[0].privacy_unit = Some("patient_id".into());
    assert_ne!(
        Manifest::from_doc(plain).unwrap().hash(),
        Manifest::from_doc(with_unit).unwrap().hash()
    );
}

#[test]
fn validation_refuses_bad_computations() {
    let name = "diagnosis_counts";
    assert_eq!(
        refused(
            |d| d.computations[0].inputs.push("gamma_patients".into()),
            "gamma_patients"
        ),
        Error::UnknownInput {
            computation: name.into(),
            dataset: "gamma_patients".into()
        }
    );
    assert_eq!(
        refused(
            |d| d.computations[0].recipients.push("mallory".into()),
            "mallory"
        ),
        Error::UnknownRecipient {
            computation: name.into(),
            recipient: "mallory".into()
        }
    );
    assert_eq!(
        refused(|d| d.computations[0].query = None, name),
        Error::MissingQuery {
            computation: name.into()
        }
    );
    assert_eq!(
        refused(|d| d.computations[0].query = Some("  ".into()), name),
        Error::MissingQuery {
            computation: name.into()
        }
    );
    assert_eq!(
        refused(
            |d| d.computations[0].kind = ComputationKind::GbdtTrain,
            name
        ),
        Error::UnexpectedQuery {
            computation: name.into()
        }
    );
    assert_eq!(
        refused(|d| d.computations[0].inputs.clear(), name),
        Error::NoInputs {
            computation: name.into()
        }
    );
    assert_eq!(
        refused(|d| d.computations[0].recipients.clear(), name),
        Error::NoRecipients {
            computation: name.into()
        }
    );
    let dup = |d: &mut ManifestDoc| {
        let copy = d.computations[0].clone();
        d.computations.push(copy);
    };
    assert!(matches!(
        refused(dup, name),
        Error::DuplicateName {
            kind: ItemKind::Computation,
            ..
        }
    ));
    // Other kinds need no query.
    let (mut d, _) = doc();
    d.computations[0].kind = ComputationKind::Inference;
    d.computations[0].query = None;
    d.computations[0].constraints.min_group_size = None;
    Manifest::from_doc(d).unwrap();
}

#[test]
fn validation_refuses_bad_thresholds() {
    for t in [0, 4] {
        assert_eq!(
            refused(
                |d| d.governance.update = UpdateRule::Threshold(t),
                "threshold"
            ),
            Error::BadThreshold {
                threshold: t,
                parties: 3
            }
        );
    }
    let p = parties();
    let m = Manifest::from_yaml(&example_yaml(&p, "null", "{ update: { threshold: 3 } }")).unwrap();
    assert_eq!(m.doc().governance.update, UpdateRule::Threshold(3));
    assert_eq!(
        Manifest::from_yaml(&example_yaml(&p, "null", "{ update: { threshold: 0 } }")),
        Err(Error::BadThreshold {
            threshold: 0,
            parties: 3
        })
    );
    for bad in [
        "{ update: any }",
        "{ update: { threshold: 2, x: 1 } }",
        "{ update: { quorum: 2 } }",
        "{ update: {} }",
        "{ update: { threshold: -1 } }",
    ] {
        let err = Manifest::from_yaml(&example_yaml(&p, "null", bad));
        assert!(matches!(err, Err(Error::Syntax { .. })), "{bad}: {err:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Canonical hash

#[test]
fn hash_ignores_formatting_comments_and_key_order() {
    let p = parties();
    let yaml = example_yaml(&p, "null", "{ update: all }");
    let a = Manifest::from_yaml(&yaml).unwrap();
    // The same manifest, rewritten: flow style, other key order, comments, quoting, defaults
    // spelled out, a null predecessor left out.
    let party = |t: &TestParty| {
        format!(
            "  - {{recipient: '{}', name: \"{}\", signing_key: {}}}  # {}\n",
            t.recipient,
            t.name,
            t.signing_key(),
            t.name
        )
    };
    let parties_text: String = p.iter().map(party).collect();
    let rewritten = format!(
        r#"
governance:
  update: all
computations:
- constraints:
    min_group_size: 10
  recipients: [alpha, beta, carol]
  inputs:
  - alpha_patients
  - beta_patients
  params: {{}}
  query: "SELECT diagnosis, count(*) AS n FROM alpha_patients JOIN beta_patients USING (patient_id) GROUP BY diagnosis"
  kind: sql
  name: diagnosis_counts
datasets:
- {{digest: "sha256:{d1}", uri: "file://storage/alpha/patients.parquet", owner: alpha, name: alpha_patients}}
- {{digest: "sha256:{d2}", uri: "file://storage/beta/patients.parquet", owner: beta, name: beta_patients}}
enclave:
  accepted_advisories: []
  allow_simulation: true
  measurements:
    - sim:measurement={m}
  tee:
    - sim
parties:
{parties_text}id: "hospital-study-2027"
version: 1
"#,
        d1 = "11".repeat(32),
        d2 = "22".repeat(32),
        m = common::SIM_MEASUREMENT,
    );
    let b = Manifest::from_yaml(&rewritten).unwrap();
    assert_eq!(a.hash(), b.hash());
    assert_eq!(
        coffer_manifest::canonical_json(a.doc()).unwrap(),
        coffer_manifest::canonical_json(b.doc()).unwrap()
    );
    // JSON input is YAML too.
    let json = serde_json::to_string(a.doc()).unwrap();
    assert_eq!(Manifest::from_yaml(&json).unwrap().hash(), a.hash());
    assert!(a.hash().to_string().starts_with("sha256:"));
    assert_eq!(a.hash().to_string().len(), 7 + 64);
}

#[test]
fn canonical_json_sorts_keys_and_is_compact() {
    let p = parties();
    let m = example(&p);
    let text = String::from_utf8(coffer_manifest::canonical_json(m.doc()).unwrap()).unwrap();
    assert!(
        text.starts_with(r#"{"computations":[{"constraints":{"min_group_size":10},"inputs":"#),
        "{text}"
    );
    assert!(!text.contains('\n'));
    let keys = [
        "\"computations\"",
        "\"datasets\"",
        "\"enclave\"",
        "\"governance\"",
        "\"id\"",
        "\"parties\"",
        "\"predecessor\"",
        "\"version\"",
    ];
    let at: Vec<usize> = keys.iter().map(|k| text.find(k).unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
}

type Change = Box<dyn Fn(&mut ManifestDoc)>;

#[test]
fn hash_changes_with_every_semantic_change() {
    let (base, _) = doc();
    let h0 = Manifest::from_doc(base.clone()).unwrap().hash();
    let changes: Vec<Change> = vec![
        Box::new(|d| d.id.push('x')),
        Box::new(|d| d.parties.swap(0, 1)),
        Box::new(|d| d.enclave.allow_debug = true),
        Box::new(|d| d.enclave.allow_simulation = false),
        Box::new(|d| d.datasets[0].digest = format!("sha256:{}", "33".repeat(32))),
        Box::new(|d| d.datasets[1].uri.push('2')),
        Box::new(|d| d.computations[0].query.as_mut().unwrap().push(' ')),
        Box::new(|d| d.computations[0].constraints.min_group_size = Some(11)),
        Box::new(|d| d.computations[0].constraints.min_group_size = None),
        Box::new(|d| d.computations[0].recipients.pop().map(drop).unwrap()),
        Box::new(|d| {
            d.computations[0]
                .params
                .insert("learning_rate".into(), serde_json::json!(0.1));
        }),
        Box::new(|d| d.governance.update = UpdateRule::Threshold(2)),
        Box::new(|d| d.predecessor = Some(format!("sha256:{}", "44".repeat(32)))),
    ];
    let mut seen = vec![h0];
    for change in changes {
        let mut d = base.clone();
        change(&mut d);
        let h = Manifest::from_doc(d).unwrap().hash();
        assert!(!seen.contains(&h), "a semantic change kept a hash");
        seen.push(h);
    }
}

// ---------------------------------------------------------------------------------------------
// Signatures

#[test]
fn sign_and_verify() {
    let p = parties();
    let m = example(&p);
    let entry = sign(&m, None, "beta", &p[1].key).unwrap();
    assert_eq!(entry.party, "beta");
    assert_eq!(entry.signing_key, p[1].signing_key());
    let signers: Vec<_> = m.parties().iter().collect();
    assert_eq!(
        verify_entry(&m.hash(), &signers, &entry).unwrap().name(),
        "beta"
    );
    // The message is domain-separated: a bare signature over the hash does not verify.
    use ed25519_dalek::Signer as _;
    let bare = p[1].key.sign(m.hash().as_bytes());
    let mut raw = entry.clone();
    raw.signature = base64_encode(&bare.to_bytes());
    assert_eq!(
        verify_entry(&m.hash(), &signers, &raw),
        Err(SignatureProblem::BadSignature)
    );
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn signing_requires_party_and_its_key() {
    let p = parties();
    let m = example(&p);
    let dave = TestParty::new("dave", 9);
    assert!(matches!(
        sign(&m, None, "dave", &dave.key),
        Err(Error::NotAParty { .. })
    ));
    assert_eq!(
        sign(&m, None, "alpha", &dave.key),
        Err(Error::KeyMismatch {
            party: "alpha".into()
        })
    );
}

#[test]
fn tampered_signature_is_reported_not_counted() {
    let p = parties();
    let m = example(&p);
    let mut sigs = signed_by(&m, &[&p[0], &p[1], &p[2]]);
    assert!(status(&m, &sigs, None).unwrap().active);
    let entry = &mut sigs.signatures[1];
    let mut bytes = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(&entry.signature)
            .unwrap()
    };
    bytes[10] ^= 1;
    entry.signature = base64_encode(&bytes);
    let s = status(&m, &sigs, None).unwrap();
    assert!(!s.active);
    assert_eq!(s.signed_by, ["alpha", "carol"]);
    assert_eq!(s.missing, ["beta"]);
    assert_eq!(s.invalid.len(), 1);
    assert_eq!(s.invalid[0].party, "beta");
    assert_eq!(s.invalid[0].reason, SignatureProblem::BadSignature);
    // Garbage is reported as malformed.
    sigs.signatures[1].signature = "not base64!".into();
    let s = status(&m, &sigs, None).unwrap();
    assert!(matches!(
        s.invalid[0].reason,
        SignatureProblem::Malformed(_)
    ));
}

#[test]
fn signature_by_key_not_in_manifest_is_reported() {
    let p = parties();
    let m = example(&p);
    let mut sigs = signed_by(&m, &[&p[0], &p[1]]);
    let mallory = TestParty::new("mallory", 8);
    // Mallory signs under her own name, then claims to be carol with her own key.
    let forged_sig = {
        use ed25519_dalek::Signer as _;
        base64_encode(
            &mallory
                .key
                .sign(&coffer_manifest::signing_message(&m.hash()))
                .to_bytes(),
        )
    };
    sigs.signatures.push(SignatureEntry {
        party: "mallory".into(),
        signing_key: mallory.signing_key(),
        signature: forged_sig.clone(),
    });
    sigs.signatures.push(SignatureEntry {
        party: "carol".into(),
        signing_key: mallory.signing_key(),
        signature: forged_sig,
    });
    let s = status(&m, &sigs, None).unwrap();
    assert!(!s.active);
    assert_eq!(s.missing, ["carol"]);
    let reasons: Vec<_> = s
        .invalid
        .iter()
        .map(|i| (i.party.as_str(), i.reason.clone()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("mallory", SignatureProblem::NotAParty),
            ("carol", SignatureProblem::KeyMismatch)
        ]
    );
}

#[test]
fn signature_over_another_hash_is_reported() {
    let p = parties();
    let m = example(&p);
    let mut changed = m.doc().clone();
    changed.computations[0].constraints.min_group_size = Some(1);
    let other = Manifest::from_doc(changed).unwrap();
    // A signature made for the other manifest, copied into this manifest's file.
    let mut sigs = signed_by(&m, &[&p[0], &p[1]]);
    sigs.signatures
        .push(sign(&other, None, "carol", &p[2].key).unwrap());
    let s = status(&m, &sigs, None).unwrap();
    assert!(!s.active);
    assert_eq!(s.invalid[0].reason, SignatureProblem::BadSignature);
    // A whole file for the other manifest: nothing counts.
    let other_sigs = signed_by(&other, &[&p[0], &p[1], &p[2]]);
    let s = status(&m, &other_sigs, None).unwrap();
    assert!(!s.active);
    assert!(s.signed_by.is_empty());
    assert_eq!(s.invalid.len(), 3);
    assert_eq!(
        s.invalid[0].reason,
        SignatureProblem::OtherManifest(other.hash())
    );
    // And a file is never mixed.
    let mut file = SignatureFile::new(m.hash());
    let entry = sign(&other, None, "alpha", &p[0].key).unwrap();
    assert!(matches!(
        file.add(other.hash(), entry),
        Err(Error::SignaturesForOtherManifest { .. })
    ));
}

#[test]
fn signatures_file_round_trips_and_replaces_a_partys_entry() {
    let p = parties();
    let m = example(&p);
    let mut sigs = signed_by(&m, &[&p[0], &p[1]]);
    sigs.add(m.hash(), sign(&m, None, "alpha", &p[0].key).unwrap())
        .unwrap();
    assert_eq!(sigs.signatures.len(), 2);
    let text = sigs.to_json().unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["manifest"], m.hash().to_string().as_str());
    assert_eq!(value["signatures"][0]["party"], "beta");
    assert_eq!(SignatureFile::from_json(&text).unwrap(), sigs);
    assert!(matches!(
        SignatureFile::from_json("{}"),
        Err(Error::MalformedSignatures { .. })
    ));
    let bad_hash = text.replace("sha256:", "sha256:0");
    assert!(matches!(
        SignatureFile::from_json(&bad_hash),
        Err(Error::MalformedSignatures { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Status and updates

#[test]
fn initial_manifest_needs_every_party() {
    let p = parties();
    let m = example(&p);
    let s = status(&m, &SignatureFile::new(m.hash()), None).unwrap();
    assert!(!s.active);
    assert_eq!(s.missing, ["alpha", "beta", "carol"]);
    let s = status(&m, &signed_by(&m, &[&p[2], &p[0]]), None).unwrap();
    assert!(!s.active);
    assert_eq!(s.signed_by, ["alpha", "carol"]);
    assert_eq!(s.missing, ["beta"]);
    let s = status(&m, &signed_by(&m, &[&p[0], &p[1], &p[2]]), None).unwrap();
    assert!(s.active);
    assert!(s.missing.is_empty() && s.invalid.is_empty());
    let json = serde_json::to_value(&s).unwrap();
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["active", "hash", "invalid", "missing", "signed_by"]);
}

/// An active initial manifest with `governance`, and an update of it that changes the
/// computation's constraints.
fn chain(governance: &str) -> ([TestParty; 3], Manifest, Status, Manifest) {
    let p = parties();
    let old = Manifest::from_yaml(&example_yaml(&p, "null", governance)).unwrap();
    let old_status = status(&old, &signed_by(&old, &[&p[0], &p[1], &p[2]]), None).unwrap();
    assert!(old_status.active);
    let new_yaml = example_yaml(&p, &format!("\"{}\"", old.hash()), governance)
        .replace("min_group_size: 10", "min_group_size: 20");
    let new = Manifest::from_yaml(&new_yaml).unwrap();
    assert_eq!(new.predecessor(), Some(old.hash()));
    (p, old, old_status, new)
}

fn judge_update(
    new: &Manifest,
    old: &Manifest,
    old_status: &Status,
    signers: &[&TestParty],
) -> Status {
    let pred = Predecessor {
        manifest: old,
        status: old_status,
    };
    status(new, &signed_update(new, Some(old), signers), Some(pred)).unwrap()
}

#[test]
fn update_under_all_needs_every_old_party() {
    let (p, old, old_status, new) = chain("{ update: all }");
    let s = judge_update(&new, &old, &old_status, &[&p[0], &p[1]]);
    assert!(!s.active);
    assert_eq!(s.missing, ["carol"]);
    let s = judge_update(&new, &old, &old_status, &[&p[0], &p[1], &p[2]]);
    assert!(s.active);
    // An update of an inactive predecessor is not active.
    let mut inactive = old_status.clone();
    inactive.active = false;
    let s = judge_update(&new, &old, &inactive, &[&p[0], &p[1], &p[2]]);
    assert!(!s.active);
    assert_eq!(s.predecessor_active, Some(false));
}

#[test]
fn update_under_threshold_needs_n_old_parties_and_the_owners() {
    let (p, old, old_status, new) = chain("{ update: { threshold: 2 } }");
    // Alpha alone: below threshold; any old party may add the second approval.
    let s = judge_update(&new, &old, &old_status, &[&p[0]]);
    assert!(!s.active);
    assert_eq!(s.missing, ["beta", "carol"]);
    // Alpha and carol reach the threshold, but beta owns an input and must sign.
    let s = judge_update(&new, &old, &old_status, &[&p[0], &p[2]]);
    assert!(!s.active);
    assert_eq!(s.missing, ["beta"]);
    // Alpha and beta: threshold met and both owners signed; carol's signature is not needed.
    let s = judge_update(&new, &old, &old_status, &[&p[0], &p[1]]);
    assert!(s.active, "{s:?}");
    assert!(s.missing.is_empty());
}

#[test]
fn update_removing_a_party_is_approved_by_the_old_party() {
    let (p, old, old_status, _) = chain("{ update: all }");
    // Carol leaves: she must still approve under `all`, signing with her old key.
    let new_yaml = example_yaml(&p[..2], &format!("\"{}\"", old.hash()), "{ update: all }")
        .replace(", carol]", "]");
    let new = Manifest::from_yaml(&new_yaml).unwrap();
    let s = judge_update(&new, &old, &old_status, &[&p[0], &p[1]]);
    assert_eq!(s.missing, ["carol"]);
    let s = judge_update(&new, &old, &old_status, &[&p[0], &p[1], &p[2]]);
    assert!(s.active);
    assert!(matches!(
        sign(&new, None, "carol", &p[2].key),
        Err(Error::NotAParty { .. })
    ));
}

#[test]
fn predecessor_must_match() {
    let (p, old, old_status, new) = chain("{ update: all }");
    let sigs = signed_update(&new, Some(&old), &[&p[0], &p[1], &p[2]]);
    // The wrong predecessor: another manifest.
    let other =
        Manifest::from_yaml(&example_yaml(&p, "null", "{ update: { threshold: 1 } }")).unwrap();
    let other_status = status(&other, &SignatureFile::new(other.hash()), None).unwrap();
    let pred = Some(Predecessor {
        manifest: &other,
        status: &other_status,
    });
    assert_eq!(
        status(&new, &sigs, pred),
        Err(Error::PredecessorMismatch {
            expected: old.hash(),
            found: other.hash()
        })
    );
    // No predecessor for an update; a predecessor for an initial manifest.
    assert_eq!(
        status(&new, &sigs, None),
        Err(Error::PredecessorRequired {
            expected: old.hash()
        })
    );
    let pred = Some(Predecessor {
        manifest: &old,
        status: &old_status,
    });
    assert_eq!(status(&old, &sigs, pred), Err(Error::NotAnUpdate));
    // A status that is not the predecessor's.
    let pred = Some(Predecessor {
        manifest: &old,
        status: &other_status,
    });
    assert!(matches!(
        status(&new, &sigs, pred),
        Err(Error::ApiMisuse(_))
    ));
}
