//! Shared helpers of the integration tests: the Python peer, raw f32 files, synthetic data.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use coffer_gbdt::DMatrix;

/// The Python interpreter with xgboost: `$COFFER_PYTHON`, else the CI venv. Missing both is a
/// failure, not a skip: interop is the point of these tests.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("COFFER_PYTHON") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").expect("HOME is not set");
    let venv = Path::new(&home).join(".cache/coffer-venv/bin/python");
    assert!(
        venv.exists(),
        "no Python with xgboost: set COFFER_PYTHON or create {} (see .ci/run)",
        venv.display()
    );
    venv
}

/// Runs the xgboost peer on a job; panics with its stderr if it fails.
pub fn peer(dir: &Path, job: &serde_json::Value) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/xgb_peer.py");
    let job_path = dir.join(format!(
        "job-{}.json",
        job["cmd"].as_str().expect("job has a cmd")
    ));
    std::fs::write(&job_path, job.to_string()).unwrap();
    let interpreter = python();
    let out = Command::new(&interpreter)
        .arg(&script)
        .arg(&job_path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start the xgboost peer with {} (set COFFER_PYTHON to a Python with xgboost): {e}",
                interpreter.display()
            )
        });
    assert!(
        out.status.success(),
        "xgboost peer failed on {job}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn write_f32(path: &Path, v: &[f32]) {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

pub fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

pub fn path_str(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// A deterministic generator for test data.
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Self(
            seed.wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407),
        )
    }
    pub fn next_f32(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32) / (1u64 << 24) as f32
    }
    pub fn normal(&mut self) -> f32 {
        let (u, v) = (self.next_f32().max(1e-7), self.next_f32());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f32::consts::PI * v).cos()
    }
}

/// Synthetic rows (row-major) with ~10% NaN in features 1 and 3, and labels for `objective`.
pub fn synthetic(n: usize, nf: usize, objective: &str, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = Lcg::new(seed);
    let mut x = Vec::with_capacity(n * nf);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let row: Vec<f32> = (0..nf).map(|_| rng.normal()).collect();
        let signal =
            row[0] * 1.5 - row[2] + (row[1] * row[3]).clamp(-2.0, 2.0) + 0.5 * rng.normal();
        let label = match objective {
            "reg:squarederror" => signal * 3.0 + 1.0,
            "binary:logistic" => f32::from(signal > 0.3),
            _ => {
                if signal < -0.7 {
                    0.0
                } else if signal < 0.7 {
                    1.0
                } else {
                    2.0
                }
            }
        };
        for (j, v) in row.iter().enumerate() {
            let missing = (j == 1 || j == 3) && rng.next_f32() < 0.1;
            x.push(if missing { f32::NAN } else { *v });
        }
        y.push(label);
    }
    (x, y)
}

/// A matrix with labels from row-major values.
pub fn matrix(x: Vec<f32>, y: Vec<f32>, nf: usize) -> DMatrix {
    let n = y.len();
    DMatrix::from_row_major(x, n, nf)
        .unwrap()
        .with_labels(y)
        .unwrap()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "prediction lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
