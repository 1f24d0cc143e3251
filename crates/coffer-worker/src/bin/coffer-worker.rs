//! `coffer-worker`: the slim enclave-worker binary meant to run inside a TEE. Its measurement
//! (`coffer measure coffer-worker`, for sim) is what a manifest's enclave policy pins. It
//! carries no client, benchmark or demo code.
//!
//! ```text
//! coffer-worker serve --listen ADDR --tee sim|gramine|tsm|nitro --broker URL --storage URL
//!                     [--sim-platform DIR] [--sim-root HEX]... [--request-window SECS]
//!                     [--max-input-bytes N] [--job-timeout SECS] [--max-concurrent-jobs N]
//!                     [--input-cache-bytes N] [--body-timeout SECS] [--broker-policy FILE]
//! ```
//!
//! Exit codes: 0 stopped by a signal, 1 refused to start, 2 usage or I/O error.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use coffer_worker::{Config, StartError, run};

const USAGE: &str = "usage: coffer-worker serve --listen ADDR --tee sim|gramine|tsm|nitro \
--broker URL --storage URL [--sim-platform DIR] [--sim-root HEX]... [--request-window SECS] \
[--max-input-bytes N] [--job-timeout SECS] [--max-concurrent-jobs N] [--input-cache-bytes N] \
[--body-timeout SECS] [--broker-policy FILE]";

/// Parses a flag's numeric value, naming the flag on failure.
fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    v.parse().map_err(|e| format!("{flag} {v:?}: {e}"))
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Config, String> {
    match args.next().as_deref() {
        Some("serve") => {}
        Some("--help" | "-h") | None => return Err(USAGE.into()),
        Some(other) => return Err(format!("unknown command {other:?}\n{USAGE}")),
    }
    let (mut listen, mut tee, mut broker, mut storage, mut sim_platform) =
        (None, None, None, None, None);
    let mut sim_roots = Vec::new();
    let mut window = 300i64;
    let mut limits: Vec<(String, String)> = Vec::new();
    let mut broker_policy = None;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => {
                let v = value()?;
                listen = Some(v.parse().map_err(|e| format!("--listen {v:?}: {e}"))?);
            }
            "--tee" => {
                let v = value()?;
                tee =
                    Some(coffer_tee::Backend::parse(&v).ok_or_else(|| {
                        format!("--tee {v:?}: expected sim, gramine, tsm or nitro")
                    })?);
            }
            "--broker" => broker = Some(value()?),
            "--storage" => storage = Some(value()?),
            "--sim-platform" => sim_platform = Some(PathBuf::from(value()?)),
            "--sim-root" => {
                let v = value()?;
                let bytes = hex::decode(v.trim()).map_err(|e| format!("--sim-root: {e}"))?;
                sim_roots.push(
                    <[u8; 32]>::try_from(bytes.as_slice())
                        .map_err(|_| "--sim-root: expected 64 hex digits".to_owned())?,
                );
            }
            "--request-window" => {
                let v = value()?;
                window = v
                    .parse()
                    .map_err(|e| format!("--request-window {v:?}: {e}"))?;
            }
            "--broker-policy" => {
                let path = value()?;
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("--broker-policy {path}: {e}"))?;
                broker_policy = Some(
                    coffer_attest::Policy::from_yaml(&text)
                        .map_err(|e| format!("--broker-policy {path}: {e}"))?,
                );
            }
            "--max-input-bytes"
            | "--job-timeout"
            | "--max-concurrent-jobs"
            | "--input-cache-bytes"
            | "--body-timeout" => {
                let v = value()?;
                limits.push((flag.clone(), v));
            }
            other => return Err(format!("unknown option {other:?}\n{USAGE}")),
        }
    }
    let required =
        |v: Option<String>, flag: &str| v.ok_or_else(|| format!("{flag} is required\n{USAGE}"));
    let mut config = Config::new(
        listen.ok_or_else(|| format!("--listen is required\n{USAGE}"))?,
        tee.ok_or_else(|| format!("--tee is required\n{USAGE}"))?,
        required(broker, "--broker")?,
        required(storage, "--storage")?,
        sim_platform.unwrap_or_else(|| PathBuf::from(".")),
    );
    config.sim_roots = sim_roots;
    config.request_window_secs = window;
    config.broker_policy = broker_policy;
    for (flag, v) in limits {
        match flag.as_str() {
            "--max-input-bytes" => config.max_input_bytes = number(&flag, &v)?,
            "--job-timeout" => config.job_timeout_secs = number(&flag, &v)?,
            "--max-concurrent-jobs" => config.max_concurrent_jobs = number(&flag, &v)?,
            "--input-cache-bytes" => config.input_cache_bytes = number(&flag, &v)?,
            _ => config.body_timeout_secs = number(&flag, &v)?,
        }
    }
    Ok(config)
}

fn main() -> ExitCode {
    let config = match parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("coffer-worker: {msg}");
            return ExitCode::from(2);
        }
    };
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ StartError::Bind { .. }) => {
            eprintln!("coffer-worker: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("coffer-worker: {e}");
            ExitCode::from(1)
        }
    }
}
