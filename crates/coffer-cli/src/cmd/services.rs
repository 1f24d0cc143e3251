//! Services that `coffer demo` and `coffer bench tpch` start as child processes: `coffer
//! broker serve`, `coffer worker serve` (which exec the slim in-TEE binaries beside `coffer`)
//! and `coffer orchestrator serve`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::Context;

use crate::exit::{Refused, Usage};

/// Child services; killed when dropped.
#[derive(Debug, Default)]
pub struct Services(Vec<Child>);

impl Drop for Services {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `coffer --home HOME ARGS` as a service, its stderr to `log`, and waits for its
/// `listening on https://ADDR` line; returns the URL.
pub fn start(
    services: &mut Services,
    home: &Path,
    log: &Path,
    args: &[&str],
) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("finding the coffer executable")?;
    let stderr =
        std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut child = Command::new(exe)
        .arg("--home")
        .arg(home)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .context("starting a service")?;
    let stdout = child.stdout.take();
    services.0.push(child);
    let mut lines = BufReader::new(stdout.ok_or_else(|| Usage("no stdout".into()))?).lines();
    while let Some(line) = lines.next().transpose()? {
        if let Some(addr) = line.strip_prefix("listening on ") {
            // Keep draining stdout so the service never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return Ok(addr.trim().to_owned());
        }
    }
    Err(Refused(format!(
        "`coffer {}` exited before listening; see {}",
        args.join(" "),
        log.display()
    ))
    .into())
}

/// `p` as UTF-8, for a child's arguments.
pub fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str()
        .ok_or_else(|| Usage(format!("{}: not UTF-8", p.display())).into())
}
