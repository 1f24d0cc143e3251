//! `coffer init`, `coffer identity`, `coffer key`.
use crate::common::Party;

#[test]
fn init_creates_an_identity_that_age_accepts() {
    let alice = Party::init("alice");
    let shown = alice.show_json();
    assert_eq!(shown["name"], "alice");
    assert!(
        shown["signing_key"]
            .as_str()
            .unwrap()
            .starts_with("ed25519:")
    );
    assert!(shown["recipient"].as_str().unwrap().starts_with("age1"));
    let id_file = shown["age_identity_file"].as_str().unwrap();
    // The identity file is in the standard format: age-keygen -y derives the same recipient.
    let derived = std::process::Command::new("age-keygen")
        .args(["-y", id_file])
        .output()
        .unwrap();
    assert!(
        derived.status.success(),
        "{}",
        String::from_utf8_lossy(&derived.stderr)
    );
    assert_eq!(
        String::from_utf8(derived.stdout).unwrap().trim(),
        shown["recipient"]
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["signing.key", "age-identity.txt"] {
            let mode = std::fs::metadata(alice.home().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }
}

#[test]
fn init_refuses_to_overwrite() {
    let alice = Party::init("alice");
    let before = alice.show_json();
    let err = alice.fails(1, &["init", "--name", "mallory"]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(alice.show_json(), before);
}

#[test]
fn export_writes_the_public_identity_only() {
    let alice = Party::init("alice");
    alice.ok(&["identity", "export", "-o", "alice.json"]);
    let text = std::fs::read_to_string(alice.path("alice.json")).unwrap();
    let exported: serde_json::Value = serde_json::from_str(&text).unwrap();
    let shown = alice.show_json();
    assert_eq!(exported["recipient"], shown["recipient"]);
    assert_eq!(exported["signing_key"], shown["signing_key"]);
    assert!(!text.contains("AGE-SECRET-KEY"));
}

#[test]
fn no_identity_is_a_usage_error() {
    let nobody = Party {
        dir: tempfile::tempdir().unwrap(),
    };
    let err = nobody.fails(2, &["identity", "show"]);
    assert!(err.contains("coffer init"), "{err}");
}

#[test]
fn keys_are_listed_but_never_shown() {
    let alice = Party::init("alice");
    alice.ok(&["key", "new", "k256"]);
    alice.ok(&["key", "new", "k128", "--bits", "128"]);
    let hex = "000102030405060708090a0b0c0d0e0f";
    alice.ok(&["key", "import", "imported", "--hex", hex]);
    let listed: serde_json::Value =
        serde_json::from_str(&alice.ok(&["key", "list", "--json"])).unwrap();
    let ids: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["id"].as_str().unwrap().to_owned(),
                k["bits"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        [
            ("imported".into(), 128),
            ("k128".into(), 128),
            ("k256".into(), 256)
        ]
    );
    let plain = alice.ok(&["key", "list"]);
    assert!(!plain.contains(hex));
    alice.fails(1, &["key", "new", "k256"]);
    alice.fails(2, &["key", "new", "bad", "--bits", "100"]);
    alice.fails(2, &["key", "new", "bad/id"]);
    alice.fails(1, &["key", "import", "short", "--hex", "0011"]);
}
