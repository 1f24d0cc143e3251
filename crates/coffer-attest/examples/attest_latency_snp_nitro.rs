//! Mean verification latency of one SEV-SNP report and one Nitro document, measured side by
//! side in one run over the recorded vectors in testdata/.
//!
//!     cargo run --release -p coffer-attest --example attest_latency_snp_nitro [ITERATIONS]
// Timing arithmetic on trusted loop counters; no attacker bytes are parsed by this code.
#![allow(clippy::arithmetic_side_effects)]

use std::time::Instant;

use base64::Engine;
use coffer_attest::nitro::verify_nitro;
use coffer_attest::snp::verify_snp;

const SNP_REPORT: &[u8] = include_bytes!("../../../testdata/sev_snp/trustee/test-report.bin");
const SNP_VCEK: &[u8] = include_bytes!("../../../testdata/sev_snp/trustee/test-vcek.der");
const SNP_NOW: i64 = 1_748_736_000;
const NITRO_B64: &str =
    include_str!("../../../testdata/nitro/evervault/test-data/valid-attestation-doc-base64");
const NITRO_NOW: i64 = 1_695_050_165;

fn mean_micros(iterations: u32, mut f: impl FnMut() -> bool) -> Result<f64, String> {
    let start = Instant::now();
    for _ in 0..iterations {
        if !f() {
            return Err("verification failed".into());
        }
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / f64::from(iterations))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations: u32 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1000);
    let nitro = base64::engine::general_purpose::STANDARD.decode(NITRO_B64.trim())?;
    // Warm up (builds the pinned root sets once).
    verify_snp(SNP_REPORT, SNP_VCEK, &[], SNP_NOW)?;
    verify_nitro(&nitro, NITRO_NOW)?;
    let snp = mean_micros(iterations, || {
        verify_snp(SNP_REPORT, SNP_VCEK, &[], SNP_NOW).is_ok()
    })?;
    let nit = mean_micros(iterations, || verify_nitro(&nitro, NITRO_NOW).is_ok())?;
    println!("iterations: {iterations}");
    println!("sev-snp (VCEK, built-in Milan chain): mean {snp:.1} us");
    println!("nitro (COSE ES384, 4-link chain):     mean {nit:.1} us");
    println!("ratio snp/nitro: {:.2}", snp / nit);
    Ok(())
}
