//! Helpers for driving the `coffer` binary in tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// A scratch directory with a party home in it.
pub struct Party {
    pub dir: tempfile::TempDir,
}

impl Party {
    /// A fresh party, initialised with `coffer init --name NAME`.
    pub fn init(name: &str) -> Self {
        let party = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        party.ok(&["init", "--name", name]);
        party
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `coffer --home HOME ARGS…`.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_coffer"))
            .arg("--home")
            .arg(self.home())
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    /// Runs and requires exit 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "coffer {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and requires exit `code`; returns stderr.
    pub fn fails(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "coffer {args:?}: stderr:\n{stderr}"
        );
        assert!(
            !stderr.contains("panicked"),
            "coffer {args:?} panicked:\n{stderr}"
        );
        stderr
    }

    pub fn show_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["identity", "show", "--json"])).unwrap()
    }
}

/// No file in `dir` except those named: a refused command left no partial output.
pub fn only_files(dir: &Path, expected: &[&str]) {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    found.sort();
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(found, expected, "unexpected files in {}", dir.display());
}

/// A command line split on whitespace, for arguments without spaces:
/// `p.ok(&args("attest verify --tee sim --evidence ev.bin"))`.
pub fn args(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// A service process (`broker serve`, `worker serve`, `orchestrator serve`), killed on drop.
pub struct Service {
    pub child: Child,
    pub url: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `EXE --home HOME ARGS` and waits for its `listening on URL` line.
pub fn start(exe: &Path, home: &Path, args: &[&str]) -> Service {
    let mut cmd = Command::new(exe);
    cmd.arg("--home").arg(home);
    spawn(cmd, args)
}

/// Starts a slim service binary (`coffer-worker serve …`), which takes no `--home`.
pub fn start_slim(exe: &Path, args: &[&str]) -> Service {
    spawn(Command::new(exe), args)
}

fn spawn(mut cmd: Command, args: &[&str]) -> Service {
    let mut child = cmd
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{args:?} did not start: {line:?}"))
        .to_owned();
    Service { child, url }
}
