//! `coffer bench tpch`: the 22 TPC-H queries two ways, alternating, in the same run:
//!
//! - (a) DataFusion over the plaintext Parquet files;
//! - (b) the worker path over the encrypted files: a party's signed job to a real worker
//!   (RA-TLS, simulated; the slim `coffer-worker` binary in its own process, as is the
//!   slim `coffer-broker`), which checks the job and the manifest, reads the
//!   inputs from storage and checks their pinned digests, attests to a real broker (RA-TLS)
//!   for the keys, runs the query in DataFusion over PME-encrypted Parquet under the
//!   manifest's constraints, encrypts the output to the recipient (age), stores it and signs a
//!   receipt. Timed from sending the job to holding the receipt.
//!
//! Both use DataFusion's default session settings. One untimed round first checks that the
//! decrypted output of every job has the rows the plaintext query returns. With DuckDB in the
//! venv (`$COFFER_PYTHON`), DuckDB's times over the plaintext files are reported too.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use coffer_client::Identity;
use coffer_client::broker::{AttestOptions, BrokerSession};
use coffer_crypto::{KeyId, MemoryKeys, SecretKey};
use coffer_manifest::{Manifest, SignatureFile};
use coffer_net::job::{JobDone, JobSpec, OutputFormat};
use coffer_net::{Connection, Endpoint};
use coffer_sql::tpch::{QUERIES, TABLES};
use http::Method;

use super::services::{Services, path_str, start};

#[derive(Debug, Args)]
pub struct TpchArgs {
    /// Scale factor (1 is about 1 GB of CSV: 6 million lineitems)
    #[arg(long, default_value_t = 1.0)]
    sf: f64,
    /// Timed rounds per query and way; the median is reported
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Keep the generated files here [default: a temporary directory, removed]
    #[arg(long, value_name = "DIR")]
    dir: Option<std::path::PathBuf>,
}

struct Row {
    query: usize,
    rows: usize,
    plain: Duration,
    worker: Duration,
    duckdb: Option<Duration>,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Each table is a dataset of the same name, so the queries run verbatim.
fn dataset(table: &str) -> String {
    table.to_owned()
}

/// The manifest: one dataset per table, one computation per query (its text verbatim).
fn manifest_yaml(party: &Identity, measurement: &str, digests: &BTreeMap<&str, String>) -> String {
    let public = party.public();
    let mut y = format!(
        "version: 1\nid: tpch-bench\nparties:\n  - name: {}\n    signing_key: \"{}\"\n    \
         recipient: \"{}\"\nenclave:\n  tee: [sim]\n  measurements: [\"sim:measurement={measurement}\"]\n  \
         allow_simulation: true\ndatasets:\n",
        public.name, public.signing_key, public.recipient
    );
    for (table, _) in TABLES {
        y.push_str(&format!(
            "  - name: {}\n    owner: {}\n    uri: \"tpch/{table}.parquet\"\n    digest: \"{}\"\n",
            dataset(table),
            public.name,
            digests.get(table).map_or("", String::as_str)
        ));
    }
    y.push_str("computations:\n");
    for (i, sql) in QUERIES.iter().enumerate() {
        let text = sql.trim_end();
        let inputs: Vec<String> = coffer_sql::tpch::tables_of(sql)
            .iter()
            .map(|t| dataset(t))
            .collect();
        y.push_str(&format!(
            "  - name: q{:02}\n    kind: sql\n    query: |\n{}\n    inputs: [{}]\n    recipients: [{}]\n",
            i.saturating_add(1),
            text.lines()
                .map(|l| format!("      {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
            inputs.join(", "),
            public.name
        ));
    }
    y.push_str("governance: {update: all}\n");
    y
}

pub fn run(args: &TpchArgs) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let runs = args.runs.max(1);
    let (plain_dir, storage_dir) = (dir.join("plain"), dir.join("storage"));

    // Keys: one master key per table (a fresh data key per column and file under it).
    let mut keys = MemoryKeys::new();
    let mut table_keys = BTreeMap::new();
    for (table, _) in TABLES {
        let key = SecretKey::generate(256)?;
        keys.insert(KeyId::new(format!("tpch.{table}"))?, key.clone());
        table_keys.insert(table, key);
    }
    eprintln!(
        "generating TPC-H at SF {} (plaintext and encrypted)…",
        args.sf
    );
    let started = Instant::now();
    let plain_bytes = coffer_sql::tpch::write_plain(args.sf, &plain_dir)?;
    let encrypted_bytes = coffer_sql::tpch::write_encrypted_per_table(
        args.sf,
        &storage_dir.join("tpch"),
        &keys,
        |t| KeyId::new(format!("tpch.{t}")),
    )?;
    eprintln!(
        "  {:.1} s: {:.0} MB plaintext, {:.0} MB encrypted",
        started.elapsed().as_secs_f64(),
        plain_bytes as f64 / 1e6,
        encrypted_bytes as f64 / 1e6
    );
    let mut digests = BTreeMap::new();
    for (table, _) in TABLES {
        let bytes = std::fs::read(storage_dir.join("tpch").join(format!("{table}.parquet")))?;
        digests.insert(table, coffer_net::storage::digest(&bytes));
    }

    // The broker and the worker, as their own processes: `coffer broker serve` and `coffer
    // worker serve` exec the slim in-TEE binaries beside `coffer`, whose measurements the
    // manifest and the worker's broker policy pin (as `coffer measure` prints them).
    let platform = dir.join("sim-platform");
    let platform_s = path_str(&platform)?.to_owned();
    let sim_pub = platform.join(coffer_tee::sim::PLATFORM_PUB_FILE);
    let storage_s = path_str(&storage_dir)?.to_owned();
    let services_home = dir.join("services");
    std::fs::create_dir_all(&services_home)?;
    let mut services = Services::default();
    let broker_url = start(
        &mut services,
        &services_home,
        &services_home.join("broker.log"),
        &[
            "broker",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data",
            path_str(&dir.join("broker"))?,
            "--tee",
            "sim",
            "--sim-platform",
            &platform_s,
        ],
    )?;
    let broker_policy = dir.join("broker-policy.yaml");
    std::fs::write(
        &broker_policy,
        format!(
            "tee: [sim]\nallow_simulation: true\nmeasurements: [\"sim:measurement={}\"]\n",
            super::slim_measurement("coffer-broker")?
        ),
    )?;
    let worker_url = start(
        &mut services,
        &services_home,
        &services_home.join("worker.log"),
        &[
            "worker",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tee",
            "sim",
            "--broker",
            &broker_url,
            "--storage",
            &storage_s,
            "--sim-platform",
            &platform_s,
            "--broker-policy",
            path_str(&broker_policy)?,
        ],
    )?;
    let measurement = super::slim_measurement("coffer-worker")?;

    // The party: attests the broker, signs and submits the manifest, grants the keys.
    let party = Identity::generate("bench")?;
    let yaml = manifest_yaml(&party, &measurement, &digests);
    let manifest = Manifest::from_yaml(&yaml).context("the benchmark's manifest")?;
    let mut sigs = SignatureFile::new(manifest.hash());
    sigs.add(
        manifest.hash(),
        coffer_manifest::sign(&manifest, None, party.name(), party.signing_key())?,
    )?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    client_rt.block_on(async {
        let options = AttestOptions {
            policy: None,
            allow_simulation: true,
            sim_root: Some(coffer_client::attest::read_sim_root(&sim_pub)?),
            verifier: None,
        };
        let (mut session, _pin) = BrokerSession::attest(&broker_url, &options).await?;
        let status = session.submit_manifest(&party, &yaml, &sigs).await?;
        anyhow::ensure!(status.active, "manifest not active: {status:?}");
        for (table, key) in &table_keys {
            session
                .grant_key(&party, &manifest.hash(), &dataset(table), key)
                .await?;
        }
        anyhow::Ok(())
    })?;
    drop(table_keys);

    let sigs_json: serde_json::Value = serde_json::from_str(&sigs.to_json()?)?;
    let plain = client_rt.block_on(coffer_sql::tpch::plain_session(&plain_dir))?;
    let duck = duckdb_times(&plain_dir, runs);

    let mut results = Vec::new();
    client_rt.block_on(async {
        let mut conn = Connection::connect(
            &Endpoint::parse(&worker_url)?,
            coffer_net::client_config(None)?,
        )
        .await?;
        let mut job = async |query: usize| -> anyhow::Result<(Duration, JobDone)> {
            let spec = JobSpec {
                manifest: manifest.hash(),
                computation: format!("q{query:02}"),
                params: BTreeMap::new(),
                format: OutputFormat::Csv,
                party: party.name().to_owned(),
                time: unix_now(),
                nonce: coffer_net::JobNonce::random()?,
            };
            let body = serde_json::to_vec(&spec.sign(
                party.signing_key(),
                yaml.clone(),
                sigs_json.clone(),
            )?)?;
            let started = Instant::now();
            let resp = conn
                .send(Method::POST, coffer_net::job::JOBS, &[], body)
                .await?;
            let took = started.elapsed();
            anyhow::ensure!(
                resp.status.is_success(),
                "q{query:02}: worker refused: {}",
                String::from_utf8_lossy(&resp.body)
            );
            Ok((took, serde_json::from_slice(&resp.body)?))
        };
        for (i, sql) in QUERIES.iter().enumerate() {
            let query = i.saturating_add(1);
            // Untimed: both ways agree on the rows.
            let (plain_rows, _) = coffer_sql::tpch::run_query(&plain, query, sql).await?;
            let (_, done) = job(query).await?;
            let out = done
                .receipt
                .receipt
                .outputs
                .first()
                .context("a job without output")?;
            let sealed = std::fs::read(storage_dir.join(&out.path))?;
            let mut csv = Vec::new();
            coffer_crypto::delivery::decrypt_with(
                party.age_identity(),
                sealed.as_slice(),
                &mut csv,
            )?;
            let lines = String::from_utf8_lossy(&csv)
                .lines()
                .count()
                .saturating_sub(1);
            anyhow::ensure!(
                lines == plain_rows.len() && out.rows as usize == plain_rows.len(),
                "q{query:02}: the worker returned {lines} rows, plaintext DataFusion {}",
                plain_rows.len()
            );
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for round in 0..runs {
                if round % 2 == 0 {
                    a.push(coffer_sql::tpch::run_query(&plain, query, sql).await?.1);
                    b.push(job(query).await?.0);
                } else {
                    b.push(job(query).await?.0);
                    a.push(coffer_sql::tpch::run_query(&plain, query, sql).await?.1);
                }
            }
            let row = Row {
                query,
                rows: plain_rows.len(),
                plain: coffer_sql::tpch::median(a),
                worker: coffer_sql::tpch::median(b),
                duckdb: duck.as_ref().and_then(|d| d.get(i).copied()),
            };
            eprintln!(
                "  q{:02}: plain {:>8.1} ms  worker {:>8.1} ms  ratio {:.3}",
                query,
                ms(row.plain),
                ms(row.worker),
                ratio(&row)
            );
            results.push(row);
        }
        anyhow::Ok(())
    })?;
    drop(services);

    println!(
        "TPC-H SF {} ({} runs each, medians; worker path in SIMULATION, key release included)",
        args.sf, runs
    );
    println!(
        "query  rows   datafusion_plain_ms  worker_encrypted_ms  ratio{}",
        if duck.is_some() {
            "  duckdb_plain_ms"
        } else {
            ""
        }
    );
    for r in &results {
        print!(
            "q{:02}  {:>6}  {:>19.1}  {:>19.1}  {:>5.3}",
            r.query,
            r.rows,
            ms(r.plain),
            ms(r.worker),
            ratio(r)
        );
        match r.duckdb {
            Some(d) => println!("  {:>15.1}", ms(d)),
            None => println!(),
        }
    }
    let geomean =
        (results.iter().map(|r| ratio(r).ln()).sum::<f64>() / results.len().max(1) as f64).exp();
    if duck.is_none() {
        println!("(DuckDB not in the venv: set COFFER_PYTHON to a Python with duckdb to compare)");
    }
    println!("geomean_ratio={geomean:.3}");
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn ratio(r: &Row) -> f64 {
    r.worker.as_secs_f64() / r.plain.as_secs_f64().max(f64::MIN_POSITIVE)
}

/// DuckDB's median time per query over the plaintext files, if `$COFFER_PYTHON` (or
/// `python3`) imports duckdb.
fn duckdb_times(plain: &Path, runs: usize) -> Option<Vec<Duration>> {
    let python = std::env::var("COFFER_PYTHON").unwrap_or_else(|_| "python3".into());
    let queries = serde_json::to_string(&QUERIES).ok()?;
    let script = r#"
import json, sys, time, statistics, duckdb
plain, runs, queries = sys.argv[1], int(sys.argv[2]), json.loads(sys.stdin.read())
con = duckdb.connect()
con.execute("SET threads TO 2")
for t in ["region","nation","supplier","customer","part","partsupp","orders","lineitem"]:
    con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{plain}/{t}.parquet')")
out = []
for q in queries:
    con.execute(q).fetchall()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter(); con.execute(q).fetchall(); times.append(time.perf_counter() - t0)
    out.append(statistics.median(times))
print(json.dumps(out))
"#;
    let mut child = Command::new(python)
        .args(["-c", script])
        .arg(plain)
        .arg(runs.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    {
        use std::io::Write;
        child.stdin.take()?.write_all(queries.as_bytes()).ok()?;
    }
    let out = child.wait_with_output().ok()?;
    if !out.status.success() {
        return None;
    }
    let secs: Vec<f64> = serde_json::from_slice(&out.stdout).ok()?;
    Some(secs.into_iter().map(Duration::from_secs_f64).collect())
}
