//! `coffer-broker`: the slim key-broker binary meant to run inside a TEE. Its measurement
//! (`coffer measure coffer-broker`, for sim) is what parties pin. It carries no client,
//! benchmark or demo code.
//!
//! ```text
//! coffer-broker serve --listen ADDR --data DIR --tee sim|gramine|tsm|nitro
//!                     [--sim-platform DIR] [--sim-root HEX]... [--request-window SECS]
//! ```
//!
//! Exit codes: 0 stopped by a signal, 1 refused to start (corrupted state, bad key files),
//! 2 usage or I/O error.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use coffer_broker::service::{Config, StartError, run};

const USAGE: &str = "usage: coffer-broker serve --listen ADDR --data DIR --tee sim|gramine|tsm|nitro \
[--sim-platform DIR] [--sim-root HEX]... [--request-window SECS]";

fn parse(mut args: impl Iterator<Item = String>) -> Result<Config, String> {
    match args.next().as_deref() {
        Some("serve") => {}
        Some("--help" | "-h") | None => return Err(USAGE.into()),
        Some(other) => return Err(format!("unknown command {other:?}\n{USAGE}")),
    }
    let (mut listen, mut data, mut tee, mut sim_platform) = (None, None, None, None);
    let mut sim_roots = Vec::new();
    let mut window = 300i64;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => {
                let v = value()?;
                listen = Some(v.parse().map_err(|e| format!("--listen {v:?}: {e}"))?);
            }
            "--data" => data = Some(PathBuf::from(value()?)),
            "--tee" => {
                let v = value()?;
                tee =
                    Some(coffer_tee::Backend::parse(&v).ok_or_else(|| {
                        format!("--tee {v:?}: expected sim, gramine, tsm or nitro")
                    })?);
            }
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
            other => return Err(format!("unknown option {other:?}\n{USAGE}")),
        }
    }
    let data: PathBuf = data.ok_or_else(|| format!("--data is required\n{USAGE}"))?;
    Ok(Config {
        listen: listen.ok_or_else(|| format!("--listen is required\n{USAGE}"))?,
        sim_platform: sim_platform.unwrap_or_else(|| data.clone()),
        data,
        backend: tee.ok_or_else(|| format!("--tee is required\n{USAGE}"))?,
        sim_roots,
        request_window_secs: window,
    })
}

fn main() -> ExitCode {
    let config = match parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("coffer-broker: {msg}");
            return ExitCode::from(2);
        }
    };
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coffer-broker: error: {e}");
            ExitCode::from(match e {
                StartError::Bind { .. } => 2,
                _ => 1,
            })
        }
    }
}
