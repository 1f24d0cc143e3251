//! Three parties and a real broker process, through the CLI only: attest and pin the broker,
//! sign and submit the manifest, grant keys, fetch and verify the audit log; then the
//! refusals a party can meet, each with its exit code and named check.
use std::path::Path;

use crate::common::{Party, Service, args, start};

/// `coffer broker serve` on a free loopback port, with `dir` for state and platform key.
fn start_broker(dir: &Path) -> Service {
    let data = dir.join("data");
    start(
        Path::new(env!("CARGO_BIN_EXE_coffer")),
        &dir.join("operator"),
        &[
            "broker",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tee",
            "sim",
            "--data",
            data.to_str().unwrap(),
        ],
    )
}

fn manifest_yaml(parties: &[&Party], allow_simulation: bool) -> String {
    let mut list = String::new();
    for p in parties {
        let id = p.show_json();
        list.push_str(&format!(
            "  - name: {}\n    signing_key: {}\n    recipient: {}\n",
            id["name"].as_str().unwrap(),
            id["signing_key"].as_str().unwrap(),
            id["recipient"].as_str().unwrap()
        ));
    }
    format!(
        "version: 1\nid: hospital-study\nparties:\n{list}\
         enclave:\n  tee: [sim]\n  measurements: [\"sim:measurement={}\"]\n  \
         allow_simulation: {allow_simulation}\n\
         datasets:\n  - {{name: alpha_patients, owner: alpha, uri: \"file://a.parquet\", \
         digest: \"sha256:{}\"}}\n  - {{name: beta_patients, owner: beta, \
         uri: \"file://b.parquet\", digest: \"sha256:{}\"}}\n\
         computations:\n  - name: counts\n    kind: sql\n    \
         query: SELECT count(*) AS n FROM alpha_patients JOIN beta_patients USING (id)\n    \
         inputs: [alpha_patients, beta_patients]\n    recipients: [alpha, beta, carol]\n\
         governance: {{update: all}}\n",
        "4f".repeat(48),
        "11".repeat(32),
        "22".repeat(32)
    )
}

#[test]
fn three_parties_through_a_real_broker() {
    let ops = tempfile::tempdir().unwrap();
    let broker = start_broker(ops.path());
    let url_owned = broker.url.clone();
    let url = url_owned.as_str();
    let (alpha, beta, carol) = (
        Party::init("alpha"),
        Party::init("beta"),
        Party::init("carol"),
    );
    let all = [&alpha, &beta, &carol];

    // Attesting a simulated broker needs an explicit opt-in; nothing is pinned without it.
    let err = alpha.fails(1, &["broker", "attest", "--broker", url]);
    assert!(err.contains("[simulation]"), "{err}");
    assert!(!alpha.home().join("brokers").exists());
    // Issue 12: and a platform key the party names; the one in the evidence never counts.
    let err = alpha.fails(
        1,
        &["broker", "attest", "--broker", url, "--allow-simulation"],
    );
    assert!(err.contains("[sim_root]"), "{err}");
    assert!(!alpha.home().join("brokers").exists());
    let other_root = alpha.path("other.pub");
    std::fs::write(&other_root, "ab".repeat(32)).unwrap();
    alpha.fails(
        1,
        &[
            "broker",
            "attest",
            "--broker",
            url,
            "--allow-simulation",
            "--sim-root",
            other_root.to_str().unwrap(),
        ],
    );
    assert!(!alpha.home().join("brokers").exists());
    let sim_pub = ops.path().join("operator/sim-platform.pub");
    let sim_pub = sim_pub.to_str().unwrap();
    // Calls to a broker that was never attested are refused before connecting.
    let err = alpha.fails(
        2,
        &args(&format!("audit fetch --broker {url} -o log.jsonl")),
    );
    assert!(err.contains("broker attest"), "{err}");
    for p in all {
        let out = p.ok(&[
            "broker",
            "attest",
            "--broker",
            url,
            "--allow-simulation",
            "--sim-root",
            sim_pub,
            "--json",
        ]);
        let pin: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(pin["simulated"], true);
        assert_eq!(pin["tee"], "sim");
        assert_eq!(
            pin["measurements"]["measurement"].as_str().unwrap().len(),
            96
        );
    }

    // The manifest: everyone signs, alpha submits after each signature.
    let file = alpha.path("study.yaml");
    std::fs::write(&file, manifest_yaml(&all, true)).unwrap();
    let f = file.to_str().unwrap();
    let submit = |p: &Party| -> serde_json::Value {
        serde_json::from_str(&p.ok(&["manifest", "submit", f, "--broker", url, "--json"])).unwrap()
    };
    alpha.ok(&["manifest", "sign", f]);
    let st = submit(&alpha);
    assert_eq!(st["active"], false);
    assert_eq!(st["missing"], serde_json::json!(["beta", "carol"]));
    beta.ok(&["manifest", "sign", f]);
    carol.ok(&["manifest", "sign", f]);
    let st = submit(&carol);
    assert_eq!(st["active"], true, "{st}");
    assert_eq!(
        st["signed_by"],
        serde_json::json!(["alpha", "beta", "carol"])
    );

    // Keys: owners only, once.
    alpha.ok(&["key", "new", "alpha.k"]);
    beta.ok(&["key", "new", "beta.k"]);
    carol.ok(&["key", "new", "carol.k"]);
    let grant = |ds: &str, key: &str| {
        args(&format!(
            "key grant --dataset {ds} --key {key} --manifest {f} --broker {url}"
        ))
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>()
    };
    let run = |p: &Party, a: Vec<String>| p.run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        run(&alpha, grant("alpha_patients", "alpha.k"))
            .status
            .success()
    );
    assert!(
        run(&beta, grant("beta_patients", "beta.k"))
            .status
            .success()
    );
    let out = run(&carol, grant("beta_patients", "carol.k"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[not_owner]"));
    let out = run(&alpha, grant("alpha_patients", "alpha.k"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[key_exists]"));
    let out = run(&alpha, grant("nobody_data", "alpha.k"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[unknown_dataset]"));

    // Issue 12: the same key for a manifest whose policy admits another measurement is refused
    // before anything is sent, naming the manifest; with the flag it goes to the broker.
    let looser = alpha.path("looser.yaml");
    std::fs::write(
        &looser,
        manifest_yaml(&all, true)
            .replace("id: hospital-study", "id: hospital-study-2")
            .replace(
                "measurements: [",
                &format!("measurements: [\"sim:measurement={}\", ", "aa".repeat(48)),
            ),
    )
    .unwrap();
    let loose = looser.to_str().unwrap();
    let err = alpha.fails(
        1,
        &args(&format!(
            "key grant --dataset alpha_patients --key alpha.k --manifest {loose} --broker {url}"
        )),
    );
    assert!(err.contains("[key_reuse]"), "{err}");
    assert!(err.contains("sha256:"), "names the earlier manifest: {err}");
    let out = alpha.run(&args(&format!(
        "key grant --dataset alpha_patients --key alpha.k --manifest {loose} --broker {url} \
         --reuse-across-manifests"
    )));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("[key_reuse]"), "{stderr}");

    // The audit log: fetched and verified by a party that owns nothing.
    carol.ok(&args(&format!("audit fetch --broker {url} -o log.jsonl")));
    let log = carol.path("log.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let kinds: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["entry"]["event"]["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "manifest_submitted",
            "manifest_submitted",
            "manifest_activated",
            "key_uploaded",
            "key_uploaded"
        ]
    );
    let out = carol.ok(&[
        "audit",
        "verify",
        log.to_str().unwrap(),
        "--broker",
        url,
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["entries"], 5);

    // Edits to the fetched log: each is refused with the failed check named.
    let lines: Vec<&str> = text.lines().collect();
    let edits: Vec<(&str, String)> = vec![
        ("removed", [&lines[..2], &lines[3..]].concat().join("\n")),
        ("reordered", {
            let mut l = lines.clone();
            l.swap(3, 4);
            l.join("\n")
        }),
        ("edited", text.replacen("beta_patients", "beta_patientz", 1)),
        ("truncated", lines[..4].join("\n")),
    ];
    for (what, edited) in edits {
        let path = carol.path(&format!("{what}.jsonl"));
        std::fs::write(&path, edited).unwrap();
        let err = carol.fails(
            1,
            &["audit", "verify", path.to_str().unwrap(), "--broker", url],
        );
        assert!(err.contains("audit log refused"), "{what}: {err}");
    }
    // A log verified with another broker's key is refused too.
    let other = alpha.show_json()["signing_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let err = carol.fails(
        1,
        &["audit", "verify", log.to_str().unwrap(), "--key", &other],
    );
    assert!(err.contains("audit log refused"), "{err}");

    // Issue 12: an owner revokes its grant, once; a non-owner cannot; any party retires the
    // manifest, once. Each is audited.
    let revoke = |ds: &str| format!("key revoke --dataset {ds} --manifest {f} --broker {url}");
    let err = carol.fails(1, &args(&revoke("alpha_patients")));
    assert!(err.contains("[not_owner]"), "{err}");
    alpha.ok(&args(&revoke("alpha_patients")));
    let err = alpha.fails(1, &args(&revoke("alpha_patients")));
    assert!(err.contains("[already_done]"), "{err}");
    carol.ok(&args(&format!("manifest retire {f} --broker {url}")));
    let err = beta.fails(1, &args(&format!("manifest retire {f} --broker {url}")));
    assert!(err.contains("[already_done]"), "{err}");
    carol.ok(&args(&format!("audit fetch --broker {url} -o log2.jsonl")));
    let text2 = std::fs::read_to_string(carol.path("log2.jsonl")).unwrap();
    assert!(text2.contains("\"type\":\"key_revoked\""), "{text2}");
    assert!(text2.contains("\"type\":\"manifest_retired\""), "{text2}");

    // A pin is checked on every call: a broker with another TLS key (another data dir) on the
    // same address is refused before anything is sent.
    drop(broker);
    let ops2 = tempfile::tempdir().unwrap();
    let port = url.rsplit(':').next().unwrap();
    let data2 = ops2.path().join("data");
    let impostor = start(
        Path::new(env!("CARGO_BIN_EXE_coffer")),
        &ops2.path().join("operator"),
        &[
            "broker",
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--tee",
            "sim",
            "--data",
            data2.to_str().unwrap(),
        ],
    );
    let err = alpha.fails(1, &["manifest", "submit", f, "--broker", url]);
    assert!(err.contains("[pin]"), "{err}");
    drop(impostor);
}
