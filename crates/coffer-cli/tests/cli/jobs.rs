//! The whole flow through the real binaries: `coffer demo` (broker, worker and orchestrator as
//! processes on loopback), its result recomputed independently from the plaintext inputs, the
//! storage searched for plaintext; then, on the demo's leftovers, every end-to-end refusal:
//! each is reported to the client with its check, and no output reaches storage.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use coffer_client::{Home, Identity};
use coffer_net::job::{JobRequest, JobSpec, OutputFormat};
use coffer_net::{Connection, Endpoint};

use crate::common::{start, start_slim};

/// (diagnosis, treatment) → (patients, mean age, mean cost).
type Groups = BTreeMap<(String, String), (usize, f64, f64)>;

fn coffer(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_coffer"))
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .unwrap()
}

/// The demo's query, recomputed from the CSV inputs: join on patient_id, group by
/// (diagnosis, treatment), groups under k dropped.
fn expected(dir: &Path, k: usize) -> Groups {
    let alpha = std::fs::read_to_string(dir.join("alpha/input.csv")).unwrap();
    let beta = std::fs::read_to_string(dir.join("beta/input.csv")).unwrap();
    let mut patients = BTreeMap::new();
    for line in alpha.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let id: u64 = f[0].parse().unwrap();
        let age: f64 = f[1].parse().unwrap();
        patients.insert(id, (age, f[4].to_owned()));
    }
    let mut groups: BTreeMap<(String, String), (usize, f64, f64)> = BTreeMap::new();
    for line in beta.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let id: u64 = f[0].parse().unwrap();
        let cost: f64 = f[2].parse().unwrap();
        if let Some((age, diagnosis)) = patients.get(&id) {
            let g = groups
                .entry((diagnosis.clone(), f[1].to_owned()))
                .or_default();
            g.0 += 1;
            g.1 += age;
            g.2 += cost;
        }
    }
    groups
        .into_iter()
        .filter(|(_, g)| g.0 >= k)
        .map(|(key, (n, age, cost))| (key, (n, age / n as f64, cost / n as f64)))
        .collect()
}

fn parse_result(text: &str) -> Groups {
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "diagnosis,treatment,patients,mean_age,mean_cost_eur"
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                (f[0].to_owned(), f[1].to_owned()),
                (
                    f[2].parse().unwrap(),
                    f[3].parse().unwrap(),
                    f[4].parse().unwrap(),
                ),
            )
        })
        .collect()
}

/// The demo's query run by DuckDB over the plaintext inputs, if `$COFFER_PYTHON` has duckdb.
fn duckdb_result(dir: &Path) -> Option<Groups> {
    let python = std::env::var("COFFER_PYTHON").ok()?;
    let script = r#"
import sys, duckdb
d = sys.argv[1]
rows = duckdb.sql(f"""
  SELECT a.diagnosis, b.treatment, count(*) AS n, avg(a.age), avg(b.cost_eur)
  FROM read_csv_auto('{d}/alpha/input.csv') a JOIN read_csv_auto('{d}/beta/input.csv') b
  ON a.patient_id = b.patient_id GROUP BY ALL HAVING count(*) >= 10""").fetchall()
for r in rows: print("|".join(str(x) for x in r))
"#;
    let out = Command::new(python)
        .args(["-c", script])
        .arg(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "DuckDB check skipped: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('|').collect();
                (
                    (f[0].to_owned(), f[1].to_owned()),
                    (
                        f[2].parse().unwrap(),
                        f[3].parse().unwrap(),
                        f[4].parse().unwrap(),
                    ),
                )
            })
            .collect(),
    )
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn as_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A job signed by the party at `home`, for `computation` of the manifest at `manifest`.
fn signed_job(home: &Path, manifest: &Path, computation: &str) -> JobRequest {
    let yaml = std::fs::read_to_string(manifest).unwrap();
    let m = coffer_manifest::Manifest::from_yaml(&yaml).unwrap();
    let mut sigs_path = manifest.as_os_str().to_owned();
    sigs_path.push(".sigs");
    let sigs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(PathBuf::from(sigs_path)).unwrap()).unwrap();
    let id = Identity::load(&Home::new(home)).unwrap();
    JobSpec {
        manifest: m.hash(),
        computation: computation.to_owned(),
        params: BTreeMap::new(),
        format: OutputFormat::Csv,
        party: id.name().to_owned(),
        time: now(),
        nonce: coffer_net::JobNonce::random().unwrap(),
    }
    .sign(id.signing_key(), yaml, sigs)
    .unwrap()
}

/// Posts a job to an orchestrator; returns its id.
fn post(orchestrator: &str, job: &JobRequest) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut conn = Connection::connect(
            &Endpoint::parse(orchestrator).unwrap(),
            coffer_net::client_config(None).unwrap(),
        )
        .await
        .unwrap();
        let resp = conn
            .send(
                http::Method::POST,
                "/v1/jobs",
                &[],
                serde_json::to_vec(job).unwrap(),
            )
            .await
            .unwrap();
        assert!(resp.status.is_success(), "{:?}", resp.body);
    });
    job.id().unwrap().to_string()
}

/// `coffer job wait` must fail with exit 1 naming `check`; nothing stored for the job.
fn refused(home: &Path, orchestrator: &str, id: &str, check: &str, storage: &Path) {
    let out = coffer(home, &["job", "wait", id, "--orchestrator", orchestrator]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "job {id}: {stderr}");
    assert!(
        stderr.contains(&format!("[{check}]")),
        "expected [{check}], got: {stderr}"
    );
    assert!(
        !storage.join("results").join(id).exists(),
        "a refused job stored output"
    );
}

#[test]
fn demo_then_every_refusal_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let w = tmp.path().join("w");
    let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["demo", "--rows", "1500", "--workdir"])
        .arg(&w)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("SIMULATION MODE"));
    assert!(stdout.contains("receipt verified"));
    // Issue 12: the manifest pins the slim coffer-worker, as `coffer measure` prints it, and
    // never the `coffer` binary (which can mint RA-TLS credentials).
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_coffer"));
    let measured = Command::new(&exe)
        .arg("measure")
        .arg(exe.with_file_name("coffer-worker"))
        .output()
        .unwrap();
    let measured = String::from_utf8_lossy(&measured.stdout).into_owned();
    let worker_m = measured
        .split_whitespace()
        .find(|t| t.len() == 96)
        .unwrap_or_default();
    let pinned = std::fs::read_to_string(w.join("manifest.yaml")).unwrap();
    assert!(
        worker_m.len() == 96 && pinned.contains(&format!("sim:measurement={worker_m}")),
        "the manifest pins coffer-worker ({measured})"
    );
    let coffer_m = hex::encode(coffer_attest::sim::measure_file(&exe).unwrap());
    assert!(
        !pinned.contains(&coffer_m),
        "the manifest admits the coffer binary"
    );
    // Roles apart: the manifest admits workers only; the broker is in the workers' own policy.
    let broker_m = hex::encode(
        coffer_attest::sim::measure_file(&exe.with_file_name("coffer-broker")).unwrap(),
    );
    assert!(
        !pinned.contains(&broker_m),
        "the manifest admits the broker binary"
    );
    let broker_policy = std::fs::read_to_string(w.join("broker-policy.yaml")).unwrap();
    assert!(broker_policy.contains(&broker_m), "{broker_policy}");
    // Issue 12: the demo's key release and its job's receipt are paired in the audit log.
    assert!(stdout.contains(": receipt #"), "{stdout}");
    assert!(!stdout.contains("NO RECEIPT"), "{stdout}");

    // The result, recomputed from the inputs, for both recipients.
    let want = expected(&w, 10);
    assert!(want.len() >= 10, "too few groups to be a test: {want:?}");
    for party in ["alpha", "beta"] {
        let got = parse_result(&std::fs::read_to_string(w.join(party).join("result.csv")).unwrap());
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{party}: groups (suppression at 10)"
        );
        for (k, (n, age, cost)) in &want {
            let (gn, gage, gcost) = got[k];
            assert_eq!(gn, *n, "{k:?}");
            assert!((gage - age).abs() <= 0.051, "{k:?}: age {gage} vs {age}");
            assert!(
                (gcost - cost).abs() <= 0.51,
                "{k:?}: cost {gcost} vs {cost}"
            );
        }
    }
    // And by DuckDB, when the venv has it (CI's does).
    if let Some(rows) = duckdb_result(&w) {
        let got = parse_result(&std::fs::read_to_string(w.join("alpha/result.csv")).unwrap());
        assert_eq!(
            rows.len(),
            got.len(),
            "DuckDB and the worker disagree on groups"
        );
        for (k, (n, age, cost)) in &rows {
            let (gn, gage, gcost) = got[k];
            assert_eq!(gn, *n, "{k:?}");
            assert!(
                (gage - age).abs() <= 0.051 && (gcost - cost).abs() <= 0.51,
                "{k:?}"
            );
        }
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs DuckDB for the independent check; COFFER_PYTHON has none"
        );
    }
    // Some group was suppressed: the rare diagnosis never shows.
    let all = expected(&w, 1);
    assert!(all.len() > want.len(), "nothing was suppressed");

    // No plaintext in storage: no diagnosis, treatment or input line appears in any object.
    let storage = w.join("storage");
    let alpha_csv = std::fs::read_to_string(w.join("alpha/input.csv")).unwrap();
    let needles: Vec<String> = ["hypertension", "diabetes", "standard care", "physiotherapy"]
        .iter()
        .map(|s| s.to_string())
        .chain(alpha_csv.lines().skip(1).take(50).map(str::to_owned))
        .collect();
    for f in files_under(&storage) {
        let bytes = std::fs::read(&f).unwrap();
        for n in &needles {
            assert!(
                !bytes.windows(n.len()).any(|win| win == n.as_bytes()),
                "{} contains {n:?}",
                f.display()
            );
        }
    }

    // The refusals, on the demo's leftovers: a fresh broker on the demo's state, workers and
    // orchestrators started here.
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_coffer"));
    let alpha = w.join("alpha/home");
    let svc = w.join("services");
    let platform = w.join("sim-platform");
    let (storage_s, platform_s) = (
        storage.to_str().unwrap().to_owned(),
        platform.to_str().unwrap().to_owned(),
    );
    let broker = start(
        &exe,
        &svc,
        &[
            "broker",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tee",
            "sim",
            "--sim-platform",
            &platform_s,
            "--data",
            w.join("broker").to_str().unwrap(),
        ],
    );
    // Workers appraise the broker by the demo's broker policy, not by the manifest.
    let broker_policy = w.join("broker-policy.yaml").to_str().unwrap().to_owned();
    let worker_args = |b: &str| {
        vec![
            "worker".to_owned(),
            "serve".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--tee".into(),
            "sim".into(),
            "--broker".into(),
            b.to_owned(),
            "--storage".into(),
            storage_s.clone(),
            "--broker-policy".into(),
            broker_policy.clone(),
            "--sim-platform".into(),
        ]
    };
    let with = |mut v: Vec<String>, p: &str| {
        v.push(p.to_owned());
        v
    };
    let worker = start(
        &exe,
        &svc,
        &as_refs(&with(worker_args(&broker.url), &platform_s)),
    );
    let orch = |worker: &str, db: &str| {
        start(
            &exe,
            &svc,
            &[
                "orchestrator",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--storage",
                &storage_s,
                "--db",
                svc.join(db).to_str().unwrap(),
                "--worker",
                worker,
            ],
        )
    };
    let o1 = orch(&worker.url, "o1.sqlite");
    let manifest = w.join("manifest.yaml");
    let sim_pub = platform
        .join("sim-platform.pub")
        .to_str()
        .unwrap()
        .to_owned();

    // A job that works, to replay later.
    let good = signed_job(&alpha, &manifest, "outcomes_by_diagnosis");
    let good_id = post(&o1.url, &good);
    let out = coffer(
        &alpha,
        &["job", "wait", &good_id, "--orchestrator", &o1.url],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A model trained in the enclave reaches its recipient (beta) only.
    let beta = w.join("beta/home");
    let id = post(&o1.url, &signed_job(&alpha, &manifest, "readmission_model"));
    let out = coffer(&alpha, &["job", "wait", &id, "--orchestrator", &o1.url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let get = |home: &Path, dir: &Path| {
        coffer(
            home,
            &[
                "result",
                "get",
                &id,
                "--orchestrator",
                &o1.url,
                "--manifest",
                manifest.to_str().unwrap(),
                "--storage",
                &storage_s,
                "-o",
                dir.to_str().unwrap(),
            ],
        )
    };
    let model_dir = w.join("beta/model");
    let out = get(&beta, &model_dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let model: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(model_dir.join("readmission_model.model.json")).unwrap(),
    )
    .unwrap();
    assert!(
        model["learner"]["gradient_booster"].is_object(),
        "an XGBoost JSON model"
    );
    let metrics = std::fs::read_to_string(model_dir.join("readmission_model.metrics.csv")).unwrap();
    assert!(metrics.starts_with("round,train-logloss\n"), "{metrics}");
    assert_eq!(metrics.lines().count(), 21, "one line per round");
    let out = get(&alpha, &w.join("alpha/model"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[not_a_recipient]"));
    assert!(!w.join("alpha/model/readmission_model.model.json").exists());

    // The model, sealed by beta as a dataset of a second manifest, predicts in the enclave
    // on beta's table; the predictions go to beta, the table's owner, only.
    let ok = |home: &Path, args: &[&str]| {
        let out = coffer(home, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let sealed_model = w.join("beta/model.sealed");
    ok(&beta, &["key", "new", "beta.model"]);
    ok(
        &beta,
        &[
            "seal",
            model_dir
                .join("readmission_model.model.json")
                .to_str()
                .unwrap(),
            "-o",
            sealed_model.to_str().unwrap(),
            "--key",
            "beta.model",
            "--name",
            "beta_model",
        ],
    );
    ok(
        &beta,
        &[
            "upload",
            sealed_model.to_str().unwrap(),
            "--storage",
            &storage_s,
            "--as",
            "beta/model.sealed",
        ],
    );
    let model_digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            std::fs::read(&sealed_model).unwrap()
        ))
    );
    let demo_yaml = std::fs::read_to_string(&manifest).unwrap();
    let predict_yaml = |recipients: &str| {
        demo_yaml
            .replace("id: coffer-demo-hospitals", "id: readmission-scores")
            .replace(
                "computations:\n",
                &format!(
                    "  - name: beta_model\n    owner: beta\n    uri: \"beta/model.sealed\"\n    \
                     digest: \"{model_digest}\"\ncomputations:\n  - name: readmission_scores\n    \
                     kind: gbdt_predict\n    inputs: [beta_model, beta_treatments]\n    \
                     recipients: [{recipients}]\n"
                ),
            )
    };
    for (file, recipients) in [
        ("predict.yaml", "beta"),
        ("predict-both.yaml", "alpha, beta"),
    ] {
        let path = w.join(file);
        std::fs::write(&path, predict_yaml(recipients)).unwrap();
        for home in [&alpha, &beta] {
            ok(home, &["manifest", "sign", path.to_str().unwrap()]);
            ok(
                home,
                &[
                    "broker",
                    "attest",
                    "--broker",
                    &broker.url,
                    "--allow-simulation",
                    "--sim-root",
                    &sim_pub,
                ],
            );
        }
        ok(
            &beta,
            &[
                "manifest",
                "submit",
                path.to_str().unwrap(),
                "--broker",
                &broker.url,
            ],
        );
        for (dataset, key) in [
            ("beta_model", "beta.model"),
            ("beta_treatments", "beta.treatments"),
        ] {
            ok(
                &beta,
                &[
                    "key",
                    "grant",
                    "--dataset",
                    dataset,
                    "--key",
                    key,
                    "--manifest",
                    path.to_str().unwrap(),
                    "--broker",
                    &broker.url,
                ],
            );
        }
    }
    let id = post(
        &o1.url,
        &signed_job(&beta, &w.join("predict.yaml"), "readmission_scores"),
    );
    let out = coffer(&beta, &["job", "wait", &id, "--orchestrator", &o1.url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scores = w.join("beta/scores");
    ok(
        &beta,
        &[
            "result",
            "get",
            &id,
            "--orchestrator",
            &o1.url,
            "--manifest",
            w.join("predict.yaml").to_str().unwrap(),
            "--storage",
            &storage_s,
            "-o",
            scores.to_str().unwrap(),
        ],
    );
    let preds = std::fs::read_to_string(scores.join("readmission_scores.predictions.csv")).unwrap();
    assert!(preds.starts_with("prediction\n"));
    assert_eq!(
        preds.lines().count(),
        1501,
        "one prediction per row of beta's table"
    );
    assert!(preds.lines().skip(1).all(|l| {
        let p: f32 = l.parse().unwrap();
        (0.0..=1.0).contains(&p)
    }));
    let id = post(
        &o1.url,
        &signed_job(&beta, &w.join("predict-both.yaml"), "readmission_scores"),
    );
    refused(&beta, &o1.url, &id, "predict_recipients", &storage);

    // Issue 12: errors that would quote data reach the orchestrator as a check and a fixed
    // message only; the detail is encrypted to the signer, who reads it with --storage.
    let leaky = w.join("leaky.yaml");
    std::fs::write(
        &leaky,
        demo_yaml
            .replace("id: coffer-demo-hospitals", "id: leaky-errors")
            .split("computations:\n")
            .next()
            .unwrap()
            .to_owned()
            + "computations:\n  - name: cast_diagnosis\n    kind: sql\n    query: SELECT CAST(diagnosis \
               AS INT) AS d, count(*) AS n FROM alpha_patients GROUP BY 1\n    inputs: \
               [alpha_patients]\n    recipients: [alpha]\n  - name: age_as_label\n    kind: \
               gbdt_train\n    inputs: [alpha_patients]\n    params: {label: age, features: \
               [patient_id], objective: \"binary:logistic\", num_boost_round: 2}\n    \
               recipients: [alpha]\ngovernance: {update: all}\n",
    )
    .unwrap();
    for home in [&alpha, &beta] {
        ok(home, &["manifest", "sign", leaky.to_str().unwrap()]);
    }
    ok(
        &alpha,
        &[
            "broker",
            "attest",
            "--broker",
            &broker.url,
            "--allow-simulation",
            "--sim-root",
            &sim_pub,
        ],
    );
    ok(
        &alpha,
        &[
            "manifest",
            "submit",
            leaky.to_str().unwrap(),
            "--broker",
            &broker.url,
        ],
    );
    ok(
        &alpha,
        &[
            "key",
            "grant",
            "--dataset",
            "alpha_patients",
            "--key",
            "alpha.patients",
            "--manifest",
            leaky.to_str().unwrap(),
            "--broker",
            &broker.url,
        ],
    );
    for (computation, check, quoted) in [
        ("cast_diagnosis", "query", "Cannot cast"),
        ("age_as_label", "bad_params", "out of range"),
    ] {
        let id = post(&o1.url, &signed_job(&alpha, &leaky, computation));
        refused(&alpha, &o1.url, &id, check, &storage);
        // The orchestrator's view names the check, never the engine's words.
        let status = coffer(
            &alpha,
            &["job", "status", &id, "--orchestrator", &o1.url, "--json"],
        );
        let status = String::from_utf8_lossy(&status.stdout).into_owned();
        assert!(status.contains(check), "{status}");
        assert!(
            !status.contains(quoted),
            "the orchestrator sees {quoted:?}: {status}"
        );
        // The signer reads the detail; the other party cannot decrypt it.
        let wait = |home: &Path| {
            let out = coffer(
                home,
                &[
                    "job",
                    "wait",
                    &id,
                    "--orchestrator",
                    &o1.url,
                    "--storage",
                    &storage_s,
                ],
            );
            assert_eq!(out.status.code(), Some(1));
            String::from_utf8_lossy(&out.stderr).into_owned()
        };
        let mine = wait(&alpha);
        assert!(mine.contains(quoted), "{computation}: {mine}");
        assert!(!wait(&beta).contains(quoted), "beta read alpha's detail");
        assert!(
            storage
                .join(coffer_net::job::error_detail_path(&id.parse().unwrap()))
                .exists()
        );
    }
    // Neither the quoted words, nor any diagnosis the cast error quoted, nor the label the
    // trainer named, is readable anywhere the orchestrator or storage keeps bytes.
    let quoted_words = [
        "Cannot cast",
        "out of range",
        "hypertension",
        "diabetes",
        "migraine",
    ];
    for f in files_under(&storage).into_iter().chain(files_under(&svc)) {
        let bytes = std::fs::read(&f).unwrap();
        for n in quoted_words {
            assert!(
                !bytes.windows(n.len()).any(|win| win == n.as_bytes()),
                "{} contains {n:?}",
                f.display()
            );
        }
    }

    // 1. A query that is not in the manifest.
    let id = post(&o1.url, &signed_job(&alpha, &manifest, "select_everything"));
    refused(&alpha, &o1.url, &id, "unknown_computation", &storage);
    // The CLI refuses it before anything is sent.
    let out = coffer(
        &alpha,
        &[
            "job",
            "submit",
            "--orchestrator",
            &o1.url,
            "--manifest",
            manifest.to_str().unwrap(),
            "--computation",
            "select_everything",
        ],
    );
    assert_eq!(out.status.code(), Some(1));

    // 2. A manifest that one owner (beta) has not signed.
    let yaml = std::fs::read_to_string(&manifest).unwrap();
    let unsigned = w.join("manifest-alpha-only.yaml");
    std::fs::write(
        &unsigned,
        yaml.replace("id: coffer-demo-hospitals", "id: alpha-only"),
    )
    .unwrap();
    let out = coffer(&alpha, &["manifest", "sign", unsigned.to_str().unwrap()]);
    assert!(out.status.success());
    let id = post(
        &o1.url,
        &signed_job(&alpha, &unsigned, "outcomes_by_diagnosis"),
    );
    refused(&alpha, &o1.url, &id, "owner_not_signed", &storage);

    // 3. A worker with a different measurement: the same program with one byte appended.
    let other_exe = w.join("coffer-worker-rebuilt");
    let mut bytes = std::fs::read(exe.with_file_name("coffer-worker")).unwrap();
    bytes.push(0);
    std::fs::write(&other_exe, bytes).unwrap();
    std::fs::set_permissions(
        &other_exe,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    // The slim binary takes the same arguments without `worker`.
    let other = start_slim(
        &other_exe,
        &as_refs(&with(worker_args(&broker.url), &platform_s))[1..],
    );
    let o2 = orch(&other.url, "o2.sqlite");
    let id = post(
        &o2.url,
        &signed_job(&alpha, &manifest, "outcomes_by_diagnosis"),
    );
    refused(&alpha, &o2.url, &id, "measurement", &storage);

    // 4. An orchestrator that hands the job to an unattested worker: its evidence comes from
    // a platform key nobody trusts.
    let rogue_platform = w.join("rogue-platform");
    // It trusts the real platform, so it does ask the broker, which refuses it.
    let pin_dir = alpha.join("brokers");
    let pin: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::fs::read_dir(&pin_dir)
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path(),
        )
        .unwrap(),
    )
    .unwrap();
    let real_root = pin["sim_root"].as_str().unwrap().to_owned();
    let mut rogue_args = with(worker_args(&broker.url), rogue_platform.to_str().unwrap());
    rogue_args.extend(["--sim-root".to_owned(), real_root]);
    let rogue = start(&exe, &svc, &as_refs(&rogue_args));
    let o3 = orch(&rogue.url, "o3.sqlite");
    let id = post(
        &o3.url,
        &signed_job(&alpha, &manifest, "outcomes_by_diagnosis"),
    );
    refused(&alpha, &o3.url, &id, "certificate_chain", &storage);
    // Without that root, the rogue worker cannot verify the broker either.
    let lost = start(
        &exe,
        &svc,
        &as_refs(&with(
            worker_args(&broker.url),
            rogue_platform.to_str().unwrap(),
        )),
    );
    let o7 = orch(&lost.url, "o7.sqlite");
    let id = post(
        &o7.url,
        &signed_job(&alpha, &manifest, "outcomes_by_diagnosis"),
    );
    refused(&alpha, &o7.url, &id, "broker_attestation", &storage);

    // 5. A replayed job request: to the same worker through another orchestrator, and to a
    // fresh worker (whose memory is empty: the broker remembers).
    let o4 = orch(&worker.url, "o4.sqlite");
    post(&o4.url, &good);
    let good_output = storage
        .join("results")
        .join(&good_id)
        .join("outcomes_by_diagnosis.csv.age");
    let before = std::fs::read(&good_output).unwrap();
    refused(
        &alpha,
        &o4.url,
        &good_id,
        "replayed_request",
        &storage.join("no-such-dir"),
    );
    assert_eq!(
        std::fs::read(&good_output).unwrap(),
        before,
        "a replay rewrote the output"
    );
    let fresh = start(
        &exe,
        &svc,
        &as_refs(&with(worker_args(&broker.url), &platform_s)),
    );
    let o5 = orch(&fresh.url, "o5.sqlite");
    post(&o5.url, &good);
    let out = coffer(
        &alpha,
        &["job", "wait", &good_id, "--orchestrator", &o5.url],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("[replayed_request]"), "{stderr}");

    // 6. A tampered input file in storage, read by a worker that has not seen the input
    // (workers keep inputs that matched their pin in memory, by digest).
    let input = storage.join("alpha/alpha_patients.parquet");
    let original = std::fs::read(&input).unwrap();
    let mut tampered = original.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 1;
    std::fs::write(&input, &tampered).unwrap();
    let new_worker = start(
        &exe,
        &svc,
        &as_refs(&with(worker_args(&broker.url), &platform_s)),
    );
    let o6 = orch(&new_worker.url, "o6.sqlite");
    let id = post(
        &o6.url,
        &signed_job(&alpha, &manifest, "outcomes_by_diagnosis"),
    );
    refused(&alpha, &o6.url, &id, "digest_mismatch", &storage);
    // A worker that verified the input before computes on what matched the pin.
    let id = post(
        &o1.url,
        &signed_job(&alpha, &manifest, "outcomes_by_diagnosis"),
    );
    let out = coffer(&alpha, &["job", "wait", &id, "--orchestrator", &o1.url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&input, &original).unwrap();

    // A tampered output is refused by the recipient before decryption.
    let out_dir = w.join("again");
    let result = storage
        .join("results")
        .join(&good_id)
        .join("outcomes_by_diagnosis.csv.age");
    let sealed = std::fs::read(&result).unwrap();
    let mut flipped = sealed.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    std::fs::write(&result, &flipped).unwrap();
    let get_good = || {
        coffer(
            &alpha,
            &[
                "result",
                "get",
                &good_id,
                "--orchestrator",
                &o1.url,
                "--manifest",
                manifest.to_str().unwrap(),
                "--storage",
                &storage_s,
                "-o",
                out_dir.to_str().unwrap(),
            ],
        )
    };
    let out = get_good();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("[output_digest]"), "{stderr}");
    assert!(!out_dir.join("outcomes_by_diagnosis.csv").exists());
    std::fs::write(&result, &sealed).unwrap();
    let out = get_good();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("outcomes_by_diagnosis.csv")).unwrap(),
        std::fs::read_to_string(w.join("alpha/result.csv")).unwrap()
    );

    // 7. Issue 12, the lifecycle: M2 updates the demo's manifest M1, signed by both under
    // M1's governance. Once M2 is active, M1 gets no keys while M2 runs (the worker judges M2
    // by the chain the job carries); then alpha revokes its grant and M2 stops.
    let m1_hash = coffer_manifest::Manifest::from_yaml(&demo_yaml)
        .unwrap()
        .hash()
        .to_string();
    let m2 = w.join("update.yaml");
    std::fs::write(
        &m2,
        demo_yaml.replace("predecessor: null", &format!("predecessor: \"{m1_hash}\"")),
    )
    .unwrap();
    let (m1_s, m2_s) = (manifest.to_str().unwrap(), m2.to_str().unwrap());
    for home in [&alpha, &beta] {
        ok(home, &["manifest", "sign", m2_s, "--predecessor", m1_s]);
    }
    ok(
        &alpha,
        &["manifest", "submit", m2_s, "--broker", &broker.url],
    );
    for (home, dataset, key) in [
        (&alpha, "alpha_patients", "alpha.patients"),
        (&beta, "beta_treatments", "beta.treatments"),
    ] {
        ok(
            home,
            &[
                "key",
                "grant",
                "--dataset",
                dataset,
                "--key",
                key,
                "--manifest",
                m2_s,
                "--broker",
                &broker.url,
            ],
        );
    }
    let id = post(
        &o1.url,
        &signed_job(&alpha, &manifest, "outcomes_by_diagnosis"),
    );
    refused(&alpha, &o1.url, &id, "manifest_superseded", &storage);
    let submit_m2 = |chain: bool| {
        let mut a = vec![
            "job",
            "submit",
            "--orchestrator",
            &o1.url,
            "--manifest",
            m2_s,
            "--computation",
            "outcomes_by_diagnosis",
        ];
        if chain {
            a.extend(["--predecessor", m1_s]);
        }
        ok(&alpha, &a).trim().to_owned()
    };
    // Without its chain the worker cannot judge the update.
    let id = submit_m2(false);
    refused(&alpha, &o1.url, &id, "manifest_not_active", &storage);
    let id = submit_m2(true);
    let out = coffer(&alpha, &["job", "wait", &id, "--orchestrator", &o1.url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(
        &alpha,
        &[
            "key",
            "revoke",
            "--dataset",
            "alpha_patients",
            "--manifest",
            m2_s,
            "--broker",
            &broker.url,
        ],
    );
    let id = submit_m2(true);
    refused(&alpha, &o1.url, &id, "key_revoked", &storage);
    // Every step is on the record.
    let log = w.join("lifecycle.jsonl");
    ok(
        &alpha,
        &[
            "audit",
            "fetch",
            "--broker",
            &broker.url,
            "-o",
            log.to_str().unwrap(),
        ],
    );
    let text = std::fs::read_to_string(&log).unwrap();
    for kind in ["manifest_superseded", "key_revoked", "job_receipt"] {
        assert!(
            text.contains(&format!("\"type\":\"{kind}\"")),
            "{kind} not audited"
        );
    }
}
