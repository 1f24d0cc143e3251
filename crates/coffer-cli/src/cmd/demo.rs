//! `coffer demo`: the whole flow on one machine, in simulation, driven through the same
//! `coffer` commands a party would type.
//!
//! Two hospitals each create an identity and a key, encrypt a table of patients on their own
//! machine (a directory each) and upload the ciphertext. A key broker, an orchestrator and an
//! enclave worker run as separate processes on loopback, speaking HTTPS (RA-TLS for the
//! broker and the worker). Both hospitals sign a manifest allowing one join-and-aggregate
//! query under `min_group_size`, grant their keys, and one of them submits the job. Each then
//! verifies the worker's receipt and evidence, decrypts the result, and checks the broker's
//! audit log.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use clap::Args;

use super::services::{Services, path_str, start};
use crate::exit::{Refused, Usage};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to leave everything [default: a new temporary directory, named at the end]
    #[arg(long, value_name = "DIR")]
    workdir: Option<PathBuf>,
    /// Patients per hospital
    #[arg(long, default_value_t = 4000)]
    rows: u32,
    /// The manifest's min_group_size: smaller groups are suppressed
    #[arg(long, default_value_t = 10)]
    min_group_size: u64,
}

const PARTIES: [&str; 2] = ["alpha", "beta"];
const COMPUTATION: &str = "outcomes_by_diagnosis";
const QUERY: &str = "SELECT a.diagnosis, b.treatment, count(*) AS patients, \
round(avg(a.age), 1) AS mean_age, round(avg(b.cost_eur), 0) AS mean_cost_eur \
FROM alpha_patients a JOIN beta_treatments b ON a.patient_id = b.patient_id \
GROUP BY a.diagnosis, b.treatment ORDER BY a.diagnosis, b.treatment";

/// A small deterministic generator (xorshift64*), so every demo has the same tables.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in 0..n (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next().checked_rem(n).unwrap_or(0)
    }

    /// Picks from `(weight, item)` pairs.
    fn pick<'a>(&mut self, items: &[(u64, &'a str)]) -> &'a str {
        let total: u64 = items.iter().map(|(w, _)| w).sum();
        let mut x = self.below(total.max(1));
        for (w, item) in items {
            if x < *w {
                return item;
            }
            x = x.saturating_sub(*w);
        }
        items.last().map_or("", |(_, i)| i)
    }
}

/// Alpha's patients: ids 1..=rows. Beta's treatments: ids from rows/2, so half overlap.
fn tables(rows: u32) -> (String, String) {
    let mut rng = Rng(0x00C0_FFEE_2026_1122);
    let diagnoses = [
        (30, "hypertension"),
        (22, "type 2 diabetes"),
        (18, "asthma"),
        (14, "copd"),
        (12, "migraine"),
        (1, "lyme disease"),
    ];
    let regions = [(5, "north"), (4, "south"), (3, "east"), (3, "west")];
    let treatments = [
        (40, "standard care"),
        (25, "drug a"),
        (20, "drug b"),
        (12, "physiotherapy"),
        (1, "trial x"),
    ];
    let mut alpha = String::from("patient_id,age,sex,region,diagnosis\n");
    for id in 1..=rows {
        let age = 18u64.saturating_add(rng.below(72));
        let sex = if rng.below(2) == 0 { "f" } else { "m" };
        let _ = writeln!(
            alpha,
            "{id},{age},{sex},{},{}",
            rng.pick(&regions),
            rng.pick(&diagnoses)
        );
    }
    let mut beta = String::from("patient_id,treatment,cost_eur,readmitted\n");
    let first = rows.saturating_div(2).saturating_add(1);
    for id in first..first.saturating_add(rows) {
        let cost = 200u64.saturating_add(rng.below(9800));
        let readmitted = rng.below(5) == 0;
        let _ = writeln!(beta, "{id},{},{cost},{readmitted}", rng.pick(&treatments));
    }
    (alpha, beta)
}

/// Runs `coffer` with `args` as `home`'s party; returns stdout, or fails with its stderr.
fn coffer(home: Option<&Path>, args: &[&str]) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("finding the coffer executable")?;
    let mut cmd = Command::new(exe);
    if let Some(h) = home {
        cmd.arg("--home").arg(h);
    }
    let out = cmd.args(args).output().context("running coffer")?;
    if !out.status.success() {
        return Err(Refused(format!(
            "`coffer {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn step(n: u32, text: &str) {
    println!("\n[{n}] {text}");
}

pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let dir = match &args.workdir {
        Some(d) => {
            if d.exists() && std::fs::read_dir(d)?.next().is_some() {
                return Err(Usage(format!(
                    "--workdir {}: not empty; give a new or empty directory",
                    d.display()
                ))
                .into());
            }
            std::fs::create_dir_all(d)?;
            d.canonicalize()?
        }
        None => tempfile::Builder::new()
            .prefix("coffer-demo-")
            .tempdir()?
            .keep(),
    };
    println!("coffer demo in {}", dir.display());
    println!(
        "SIMULATION MODE: the broker and the worker run as ordinary processes on this machine. \
         Their evidence is signed by a key file in {}, so it proves nothing and protects \
         nothing; everything else (signatures, encryption, policy checks, audit) is real.",
        dir.join("sim-platform").display()
    );
    let storage = dir.join("storage");
    let storage_s = path_str(&storage)?.to_owned();
    let manifest_path = dir.join("manifest.yaml");
    let manifest_s = path_str(&manifest_path)?.to_owned();
    let home = |p: &str| dir.join(p).join("home");

    step(
        1,
        "Two hospitals create identities and keys, and encrypt their tables locally",
    );
    let (alpha_csv, beta_csv) = tables(args.rows);
    let datasets = [
        ("alpha", "alpha_patients", "alpha.patients", alpha_csv),
        ("beta", "beta_treatments", "beta.treatments", beta_csv),
    ];
    let mut digests = BTreeMap::new();
    for (party, dataset, key, csv) in &datasets {
        let pdir = dir.join(party);
        std::fs::create_dir_all(&pdir)?;
        let input = pdir.join("input.csv");
        std::fs::write(&input, csv)?;
        let h = home(party);
        coffer(Some(&h), &["init", "--name", party])?;
        coffer(Some(&h), &["key", "new", key])?;
        let encrypted = pdir.join(format!("{dataset}.parquet"));
        coffer(
            Some(&h),
            &[
                "encrypt",
                path_str(&input)?,
                "-o",
                path_str(&encrypted)?,
                "--footer-key",
                key,
            ],
        )?;
        let object = format!("{party}/{dataset}.parquet");
        coffer(
            None,
            &[
                "upload",
                path_str(&encrypted)?,
                "--storage",
                &storage_s,
                "--as",
                &object,
            ],
        )?;
        let bytes = std::fs::read(&encrypted)?;
        digests.insert(*dataset, (object, coffer_net::storage::digest(&bytes)));
        println!(
            "    {party}: {} rows in {party}/input.csv -> {dataset}.parquet (PME, key {key}), uploaded",
            csv.lines().count().saturating_sub(1)
        );
    }

    step(
        2,
        "A key broker, an enclave worker and an orchestrator start on loopback (sim)",
    );
    let mut services = Services::default();
    let svc_home = dir.join("services");
    std::fs::create_dir_all(&svc_home)?;
    let platform = dir.join("sim-platform");
    let platform_s = path_str(&platform)?.to_owned();
    // The parties trust simulated evidence only from this platform key, which they take
    // from the (simulated) platform, never from the evidence.
    let sim_pub = path_str(&platform.join(coffer_tee::sim::PLATFORM_PUB_FILE))?.to_owned();
    let broker = start(
        &mut services,
        &svc_home,
        &svc_home.join("broker.log"),
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
    println!("    broker:       {broker}");
    // The worker appraises the broker by the operator's own policy: the manifest's policy is
    // for workers, and a broker must not pass as one.
    let broker_policy = dir.join("broker-policy.yaml");
    std::fs::write(
        &broker_policy,
        format!(
            "tee: [sim]\nmeasurements: [\"sim:measurement={}\"]\nallow_debug: false\n\
             allow_simulation: true   # development only: sim proves nothing\n",
            super::slim_measurement("coffer-broker")?
        ),
    )?;
    let worker = start(
        &mut services,
        &svc_home,
        &svc_home.join("worker.log"),
        &[
            "worker",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tee",
            "sim",
            "--broker",
            &broker,
            "--storage",
            &storage_s,
            "--sim-platform",
            &platform_s,
            "--broker-policy",
            path_str(&broker_policy)?,
        ],
    )?;
    println!("    worker:       {worker}");
    let orchestrator = start(
        &mut services,
        &svc_home,
        &svc_home.join("orchestrator.log"),
        &[
            "orchestrator",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--storage",
            &storage_s,
            "--db",
            path_str(&svc_home.join("orchestrator.sqlite"))?,
            "--worker",
            &worker,
        ],
    )?;
    println!("    orchestrator: {orchestrator} (untrusted: sees ciphertext and signed requests)");

    step(
        3,
        "Both sign a manifest: the policy, the datasets' digests, one query, k-anonymity",
    );
    // The manifest pins the slim in-TEE binaries the services run (`coffer worker serve`
    // and `coffer broker serve` exec them), never `coffer`, which can mint RA-TLS credentials.
    let worker_measurement = super::slim_measurement("coffer-worker")?;
    let mut parties = String::new();
    for p in PARTIES {
        let public = coffer_client::Identity::load(&coffer_client::Home::new(home(p)))?.public();
        let _ = writeln!(
            parties,
            "  - name: {p}\n    signing_key: \"{}\"\n    recipient: \"{}\"",
            public.signing_key, public.recipient
        );
    }
    let mut datasets_yaml = String::new();
    for (party, dataset, _, _) in &datasets {
        let Some((object, digest)) = digests.get(dataset) else {
            continue;
        };
        let _ = writeln!(
            datasets_yaml,
            "  - name: {dataset}\n    owner: {party}\n    uri: \"{object}\"\n    digest: \"{digest}\"\n    \
             privacy_unit: patient_id"
        );
    }
    let manifest = format!(
        "version: 1\nid: coffer-demo-hospitals\npredecessor: null\nparties:\n{parties}\
         enclave:\n  tee: [sim]\n  measurements: [\"sim:measurement={worker_measurement}\"]\n  \
         allow_debug: false\n  allow_simulation: true   # development only: sim proves nothing\n\
         datasets:\n{datasets_yaml}computations:\n  - name: {COMPUTATION}\n    kind: sql\n    \
         query: |\n      {QUERY}\n    inputs: [alpha_patients, beta_treatments]\n    \
         recipients: [alpha, beta]\n    constraints: {{min_group_size: {}}}\n  \
         - name: readmission_model\n    kind: gbdt_train\n    inputs: [beta_treatments]\n    \
         params: {{label: readmitted, features: [cost_eur], objective: \"binary:logistic\", \
         num_boost_round: 20, max_depth: 3}}\n    recipients: [beta]\n\
         governance: {{update: all}}\n",
        args.min_group_size
    );
    std::fs::write(&manifest_path, &manifest)?;
    for p in PARTIES {
        coffer(Some(&home(p)), &["manifest", "sign", &manifest_s])?;
    }
    let hash = coffer(None, &["manifest", "hash", &manifest_s])?;
    println!("    manifest.yaml {} signed by alpha and beta", hash.trim());

    step(
        4,
        "Each attests the broker, the manifest goes in, each grants its key",
    );
    for p in PARTIES {
        coffer(
            Some(&home(p)),
            &[
                "broker",
                "attest",
                "--broker",
                &broker,
                "--allow-simulation",
                "--sim-root",
                &sim_pub,
            ],
        )?;
    }
    coffer(
        Some(&home("alpha")),
        &["manifest", "submit", &manifest_s, "--broker", &broker],
    )?;
    for (party, dataset, key, _) in &datasets {
        coffer(
            Some(&home(party)),
            &[
                "key",
                "grant",
                "--dataset",
                dataset,
                "--key",
                key,
                "--manifest",
                &manifest_s,
                "--broker",
                &broker,
            ],
        )?;
        println!("    {party} granted {key} for {dataset}");
    }

    step(
        5,
        "Alpha submits the job; the worker attests to the broker for the keys",
    );
    let id = coffer(
        Some(&home("alpha")),
        &[
            "job",
            "submit",
            "--orchestrator",
            &orchestrator,
            "--manifest",
            &manifest_s,
            "--computation",
            COMPUTATION,
        ],
    )?;
    let id = id.trim().to_owned();
    println!("    job {id}");
    let exe = std::env::current_exe()?;
    let status = Command::new(&exe)
        .arg("--home")
        .arg(home("alpha"))
        .args(["job", "wait", &id, "--orchestrator", &orchestrator])
        .status()?;
    if !status.success() {
        return Err(Refused(format!(
            "the job did not finish; see {}",
            svc_home.display()
        ))
        .into());
    }

    step(
        6,
        "Each hospital verifies the receipt and the worker's evidence, then decrypts",
    );
    for p in PARTIES {
        let out_dir = dir.join(p).join("result");
        coffer(
            Some(&home(p)),
            &[
                "result",
                "get",
                &id,
                "--orchestrator",
                &orchestrator,
                "--manifest",
                &manifest_s,
                "--storage",
                &storage_s,
                "-o",
                path_str(&out_dir)?,
            ],
        )?;
        let file = out_dir.join(format!("{COMPUTATION}.csv"));
        let dest = dir.join(p).join("result.csv");
        std::fs::rename(&file, &dest)
            .with_context(|| format!("moving {} to {}", file.display(), dest.display()))?;
        let _ = std::fs::remove_dir(&out_dir);
        println!("    {p}: receipt verified, {p}/result.csv decrypted");
    }
    let result = std::fs::read_to_string(dir.join("alpha").join("result.csv"))?;
    println!();
    print_table(&result);
    println!(
        "    (groups of fewer than {} patients are suppressed by the worker)",
        args.min_group_size
    );

    step(7, "Alpha fetches and verifies the broker's audit log");
    let audit = dir.join("audit.jsonl");
    let audit_s = path_str(&audit)?.to_owned();
    coffer(
        Some(&home("alpha")),
        &["audit", "fetch", "--broker", &broker, "-o", &audit_s],
    )?;
    let verified = coffer(
        Some(&home("alpha")),
        &["audit", "verify", &audit_s, "--broker", &broker],
    )?;
    println!("    audit.jsonl:");
    for line in verified.lines() {
        println!("      {line}");
    }
    drop(services);

    println!(
        "\nDone, in SIMULATION MODE (no TEE: nothing above was protected from this machine).\n\
         Left in {}:\n  alpha/input.csv, beta/input.csv     each party's plaintext\n  \
         storage/                            what the cloud saw (ciphertext only)\n  \
         manifest.yaml (+ .sigs)             the agreement\n  \
         alpha/result.csv, beta/result.csv   each party's decrypted result\n  \
         audit.jsonl                         the broker's signed audit log\n  \
         services/*.log                      service logs",
        dir.display()
    );
    Ok(())
}

/// Prints CSV as an aligned table.
fn print_table(csv: &str) {
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (i, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("    {}", line.join("  "));
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            println!("    {}", rule.join("  "));
        }
    }
}
