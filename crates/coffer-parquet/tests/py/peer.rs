//! Runs the PyArrow peer (`pme_peer.py`, beside this file) on one JSON job. Shared by
//! coffer-parquet's interop tests and the CLI's end-to-end tests (included by `#[path]`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// The venv's Python, from `COFFER_PYTHON`; fails the test, never skips it, when unset.
pub fn python() -> PathBuf {
    match std::env::var_os("COFFER_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!(
            "COFFER_PYTHON is not set. The PyArrow interop tests need a Python with pyarrow and \
             cryptography: run ./.ci/run, or set COFFER_PYTHON (for example to \
             ~/.cache/coffer-venv/bin/python after `pip install -r .ci/requirements.txt`)."
        ),
    }
}

/// Runs the peer with `job` on stdin; returns its JSON output.
pub fn peer(job: &Value) -> Value {
    // `file!()` is relative to the workspace root, whichever crate includes this file.
    let here = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(file!());
    let script = here.with_file_name("pme_peer.py");
    let mut child = Command::new(python())
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start COFFER_PYTHON");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(job.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "pme_peer.py {} failed:\n{}",
        job["mode"],
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
