//! Mean latency of `verify_sgx` with collateral already in memory.
//!
//!     cargo run --release -p coffer-attest --example dcap_latency [iterations]
//!
//! A measurement, not a benchmark suite: one process, wall clock, after 10 warm-up runs.

use std::time::Instant;

use coffer_attest::dcap::{Collateral, verify_sgx};

/// 2025-07-01T00:00:00Z, inside the sample collateral's window.
const NOW: i64 = 1_751_328_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/sgx_dcap/dcap-qvl/"
    );
    let quote = std::fs::read(format!("{root}sgx_quote"))?;
    let json = std::fs::read_to_string(format!("{root}sgx_quote_collateral.json"))?;
    let collateral = Collateral::from_dcap_qvl_json(&json)?;
    let iterations: u32 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1000);
    for _ in 0..10 {
        verify_sgx(&quote, &collateral, NOW)?;
    }
    let start = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(verify_sgx(&quote, &collateral, NOW)?);
    }
    let elapsed = start.elapsed();
    let mean_us = elapsed.as_secs_f64() * 1e6 / f64::from(iterations.max(1));
    println!("verify_sgx: {iterations} runs, mean {mean_us:.1} µs");
    Ok(())
}
