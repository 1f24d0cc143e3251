//! `coffer manifest`: check, hash, sign, status, with three real parties.
use std::path::{Path, PathBuf};

use crate::common::{Party, args, only_files};

/// Three parties and a scratch directory holding the manifest they share.
struct Study {
    parties: [Party; 3],
    dir: tempfile::TempDir,
}

impl Study {
    fn new() -> Self {
        Self {
            parties: [
                Party::init("alpha"),
                Party::init("beta"),
                Party::init("carol"),
            ],
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The example manifest, with the parties' `identity show --json` pasted in.
    fn yaml(&self, predecessor: &str, min_group_size: u32) -> String {
        let mut parties = String::new();
        for p in &self.parties {
            let id = p.show_json();
            parties.push_str(&format!(
                "  - name: {}\n    signing_key: {}\n    recipient: {}\n",
                id["name"].as_str().unwrap(),
                id["signing_key"].as_str().unwrap(),
                id["recipient"].as_str().unwrap()
            ));
        }
        format!(
            "version: 1\nid: hospital-study-2027\npredecessor: {predecessor}\nparties:\n{parties}\
             enclave:\n  tee: [sim]\n  measurements: [\"sim:measurement={m}\"]\n  \
             allow_simulation: true\n\
             datasets:\n  - {{name: alpha_patients, owner: alpha, uri: \"file://a.parquet\", \
             digest: \"sha256:{d1}\"}}\n  - {{name: beta_patients, owner: beta, \
             uri: \"file://b.parquet\", digest: \"sha256:{d2}\"}}\n\
             computations:\n  - name: diagnosis_counts\n    kind: sql\n    \
             query: SELECT diagnosis, count(*) AS n FROM alpha_patients JOIN beta_patients \
             USING (patient_id) GROUP BY diagnosis\n    inputs: [alpha_patients, beta_patients]\n    \
             recipients: [alpha, beta, carol]\n    constraints: {{min_group_size: {min_group_size}}}\n\
             governance: {{update: all}}\n",
            m = "4f".repeat(48),
            d1 = "11".repeat(32),
            d2 = "22".repeat(32),
        )
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn alpha(&self) -> &Party {
        &self.parties[0]
    }
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn status_json(party: &Party, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["manifest", "status", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&party.ok(&all)).unwrap()
}

#[test]
fn three_parties_sign_until_active() {
    let study = Study::new();
    let file = study.write("study.yaml", &study.yaml("null", 10));
    let alpha = study.alpha();

    let checked = alpha.ok(&["manifest", "check", s(&file)]);
    let hash = alpha.ok(&["manifest", "hash", s(&file)]).trim().to_owned();
    assert!(hash.starts_with("sha256:") && hash.len() == 71, "{hash}");
    assert_eq!(checked.trim(), format!("ok: hospital-study-2027 {hash}"));

    // Reformatted: comments, indentation and key order do not change the hash.
    let reformatted = format!("# reviewed by legal\n{}", study.yaml("null", 10))
        .replace(
            "version: 1\nid: hospital-study-2027\n",
            "id: 'hospital-study-2027'\nversion: 1\n",
        )
        .replace("    kind: sql\n", "    kind: sql   # SQL only\n");
    let other = study.write("reformatted.yaml", &reformatted);
    assert_eq!(alpha.ok(&["manifest", "hash", s(&other)]).trim(), hash);

    let st = status_json(alpha, &[s(&file)]);
    assert_eq!(st["hash"], hash.as_str());
    assert_eq!(st["active"], false);
    assert_eq!(st["missing"], serde_json::json!(["alpha", "beta", "carol"]));
    assert_eq!(st["signed_by"], serde_json::json!([]));

    for (i, party) in study.parties.iter().enumerate() {
        party.ok(&["manifest", "sign", s(&file)]);
        let st = status_json(party, &[s(&file)]);
        assert_eq!(st["signed_by"].as_array().unwrap().len(), i + 1);
    }
    // Signing again replaces, not duplicates.
    study.parties[1].ok(&["manifest", "sign", s(&file)]);
    let sigs_path = study.dir.path().join("study.yaml.sigs");
    let sigs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sigs_path).unwrap()).unwrap();
    assert_eq!(sigs["manifest"], hash.as_str());
    assert_eq!(sigs["signatures"].as_array().unwrap().len(), 3);

    let st = status_json(alpha, &[s(&file), "--sigs", s(&sigs_path)]);
    assert_eq!(st["active"], true);
    assert_eq!(
        st["signed_by"],
        serde_json::json!(["alpha", "beta", "carol"])
    );
    assert_eq!(st["missing"], serde_json::json!([]));
    let text = alpha.ok(&["manifest", "status", s(&file)]);
    assert!(text.contains("active:    yes"), "{text}");
    only_files(
        study.dir.path(),
        &args("study.yaml study.yaml.sigs reformatted.yaml"),
    );
}

#[test]
fn tampered_manifest_is_not_active() {
    let study = Study::new();
    let file = study.write("study.yaml", &study.yaml("null", 10));
    for party in &study.parties {
        party.ok(&["manifest", "sign", s(&file)]);
    }
    assert_eq!(status_json(study.alpha(), &[s(&file)])["active"], true);
    let sigs_before = std::fs::read(study.dir.path().join("study.yaml.sigs")).unwrap();

    // Someone lowers the group-size threshold after everyone signed.
    study.write("study.yaml", &study.yaml("null", 1));
    let st = status_json(study.alpha(), &[s(&file)]);
    assert_eq!(st["active"], false);
    assert_eq!(st["signed_by"], serde_json::json!([]));
    assert_eq!(st["missing"], serde_json::json!(["alpha", "beta", "carol"]));
    assert_eq!(st["invalid"].as_array().unwrap().len(), 3);
    assert!(
        st["invalid"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("for manifest sha256:")
    );

    // Signing the tampered file does not mix hashes in the old signatures file.
    let err = study.alpha().fails(1, &["manifest", "sign", s(&file)]);
    assert!(err.contains("signatures file is for manifest"), "{err}");
    assert_eq!(
        std::fs::read(study.dir.path().join("study.yaml.sigs")).unwrap(),
        sigs_before
    );
}

#[test]
fn party_not_in_manifest_cannot_sign() {
    let study = Study::new();
    let file = study.write("study.yaml", &study.yaml("null", 10));
    let dave = Party::init("dave");
    let err = dave.fails(1, &["manifest", "sign", s(&file)]);
    assert!(err.contains("\"dave\" is not a party"), "{err}");
    only_files(study.dir.path(), &["study.yaml"]);
    // A party named like one in the manifest, with another key.
    let impostor = Party::init("carol");
    let err = impostor.fails(1, &["manifest", "sign", s(&file)]);
    assert!(err.contains("another signing key"), "{err}");
    only_files(study.dir.path(), &["study.yaml"]);
}

#[test]
fn invalid_manifests_are_refused_with_the_reason() {
    let study = Study::new();
    let alpha = study.alpha();
    let bad = study.write(
        "bad.yaml",
        &study
            .yaml("null", 10)
            .replace("[alpha, beta, carol]", "[alpha, mallory]"),
    );
    for cmd in ["check", "hash", "status", "sign"] {
        let err = alpha.fails(1, &["manifest", cmd, s(&bad)]);
        assert!(
            err.contains("computation \"diagnosis_counts\": recipient \"mallory\" is not a party"),
            "{cmd}: {err}"
        );
    }
    let missing = study.dir.path().join("missing.yaml");
    alpha.fails(2, &["manifest", "check", s(&missing)]);
    let good = study.write("study.yaml", &study.yaml("null", 10));
    alpha.fails(2, &["manifest", "status", s(&good), "--sigs", s(&missing)]);
    let garbage = study.write("garbage.sigs", "{\"manifest\": 1}");
    alpha.fails(1, &["manifest", "status", s(&good), "--sigs", s(&garbage)]);
}

#[test]
fn update_is_judged_against_its_predecessor() {
    let study = Study::new();
    let old = study.write("v1.yaml", &study.yaml("null", 10));
    for party in &study.parties {
        party.ok(&["manifest", "sign", s(&old)]);
    }
    let old_hash = study
        .alpha()
        .ok(&["manifest", "hash", s(&old)])
        .trim()
        .to_owned();
    let new = study.write("v2.yaml", &study.yaml(&format!("\"{old_hash}\""), 20));
    // Without its predecessor an update cannot be judged.
    study.alpha().fails(2, &["manifest", "status", s(&new)]);
    let args = [s(&new), "--predecessor", s(&old)];
    assert_eq!(status_json(study.alpha(), &args)["active"], false);
    for party in &study.parties {
        party.ok(&["manifest", "sign", s(&new)]);
    }
    assert_eq!(status_json(study.alpha(), &args)["active"], true);
    // The wrong predecessor is refused; so is a predecessor for a manifest that has none.
    let other = study.write("other.yaml", &study.yaml("null", 5));
    let err = study.alpha().fails(
        1,
        &["manifest", "status", s(&new), "--predecessor", s(&other)],
    );
    assert!(
        err.contains(&format!("names predecessor {old_hash}")),
        "{err}"
    );
    let err = study.alpha().fails(
        2,
        &["manifest", "status", s(&old), "--predecessor", s(&other)],
    );
    assert!(err.contains("no predecessor"), "{err}");
}
