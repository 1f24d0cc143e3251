//! TPC-H on encrypted against plaintext Parquet: one line per query, then the geometric mean.
//!
//! ```sh
//! cargo run --release -p coffer-sql --features tpch --example tpch -- --sf 0.1 --runs 3
//! ```
//!
//! Options: `--sf N` (default 0.1), `--runs N` (default 3), `--dir PATH` (default: a temporary
//! directory, removed afterwards). Exits 1 if any query's results differ between the two ways.
use std::path::PathBuf;
use std::process::ExitCode;

use coffer_sql::tpch::run_tpch;

struct Args {
    sf: f64,
    runs: usize,
    dir: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        sf: 0.1,
        runs: 3,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--sf" => args.sf = value.parse().map_err(|e| format!("--sf: {e}"))?,
            "--runs" => args.runs = value.parse().map_err(|e| format!("--runs: {e}"))?,
            "--dir" => args.dir = Some(PathBuf::from(value)),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if !args.sf.is_finite() || args.sf <= 0.0 || args.runs == 0 {
        return Err("--sf and --runs must be positive".into());
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let temp = match &args.dir {
        Some(_) => None,
        None => match tempfile::tempdir() {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("temporary directory: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let dir = match (&args.dir, &temp) {
        (Some(d), _) => d.clone(),
        (None, Some(t)) => t.path().to_owned(),
        (None, None) => return ExitCode::FAILURE,
    };
    let report = match run_tpch(args.sf, &dir, args.runs).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tpch: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "sf={} runs={} generate_s={:.1} plain_bytes={} encrypted_bytes={}",
        report.sf,
        report.runs,
        report.generate.as_secs_f64(),
        report.plain_bytes,
        report.encrypted_bytes
    );
    for q in &report.queries {
        println!(
            "q{:02} rows={} plain_ms={:.1} encrypted_ms={:.1} ratio={:.3} identical={}",
            q.query,
            q.rows,
            q.plain.as_secs_f64() * 1e3,
            q.encrypted.as_secs_f64() * 1e3,
            q.ratio(),
            q.identical
        );
    }
    println!("geomean_ratio={:.3}", report.geomean_ratio());
    if report.all_identical() {
        ExitCode::SUCCESS
    } else {
        eprintln!("results differ between plaintext and encrypted files");
        ExitCode::FAILURE
    }
}
