//! Verification latency for every TEE kind, collateral already in memory, measured side by
//! side in one run over the recorded vectors in testdata/, through the same path a broker
//! uses: `Verifier::verify` then `Policy::appraise`. Also the RA-TLS appraisal of a sim
//! certificate, and a baseline: one bare ECDSA P-384 signature check (the `p384` crate), so the
//! figures can be read as ratios on a noisy machine.
//!
//!     cargo run --release -p coffer-attest --example attest_latency [ITERATIONS]
//!
//! Prints mean, p50 and p99 per kind. Target (issue 3): DCAP at most 2 ms.
// Timing arithmetic on trusted loop counters; no attacker bytes are parsed by this code.
#![allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

use std::time::Instant;

use base64::Engine;
use coffer_attest::dcap::Collateral;
use coffer_attest::ratls::{KeyAlg, RaTlsIdentity, RaTlsVerifier};
use coffer_attest::sim::sign_sim_evidence;
use coffer_attest::{Evidence, Policy, TeeKind, Verifier};
use ed25519_dalek::SigningKey;
use p384::ecdsa::signature::{Signer, Verifier as _};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/");
const DCAP_NOW: i64 = 1_751_328_000;
const SNP_NOW: i64 = 1_748_736_000;
const NITRO_NOW: i64 = 1_695_050_165;

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(format!("{TESTDATA}{rel}")).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Per-call latencies in microseconds, sorted.
fn sample(iterations: usize, mut f: impl FnMut() -> bool) -> Vec<f64> {
    for _ in 0..10 {
        assert!(f(), "verification failed");
    }
    let mut t: Vec<f64> = (0..iterations)
        .map(|_| {
            let start = Instant::now();
            assert!(f(), "verification failed");
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1000)
        .max(1);
    let collateral =
        |rel: &str| Collateral::from_dcap_qvl_json(&String::from_utf8_lossy(&read(rel)));
    let sgx =
        Verifier::new().with_collateral(collateral("sgx_dcap/dcap-qvl/sgx_quote_collateral.json")?);
    let tdx =
        Verifier::new().with_collateral(collateral("tdx/dcap-qvl/tdx_quote_collateral.json")?);
    let platform = SigningKey::from_bytes(&[1; 32]);
    let sim = Verifier::new().with_sim_root(platform.verifying_key().to_bytes());
    let nitro_doc = base64::engine::general_purpose::STANDARD.decode(
        String::from_utf8(read(
            "nitro/evervault/test-data/valid-attestation-doc-base64",
        ))?
        .trim(),
    )?;

    let cases: Vec<(&str, Verifier, Evidence, i64)> = vec![
        (
            "sgx (DCAP v3)",
            sgx,
            Evidence::Sgx(read("sgx_dcap/dcap-qvl/sgx_quote")),
            DCAP_NOW,
        ),
        (
            "tdx (DCAP v4)",
            tdx,
            Evidence::Tdx(read("tdx/dcap-qvl/tdx_quote")),
            DCAP_NOW,
        ),
        (
            "snp (VCEK, Milan)",
            Verifier::new(),
            Evidence::Snp {
                report: read("sev_snp/trustee/test-report.bin"),
                certs: vec![read("sev_snp/trustee/test-vcek.der")],
            },
            SNP_NOW,
        ),
        (
            "nitro (ES384)",
            Verifier::new(),
            Evidence::Nitro(nitro_doc),
            NITRO_NOW,
        ),
        (
            "sim (Ed25519)",
            sim.clone(),
            Evidence::Sim(sign_sim_evidence(&platform, &[2; 48], &[3; 64], false)?),
            0,
        ),
    ];

    // Baseline: one ECDSA P-384 verification, what Nitro's leaf signature costs on its own.
    let key = p384::ecdsa::SigningKey::from_bytes(&[7u8; 48].into())?;
    let sig: p384::ecdsa::Signature = key.sign(b"baseline");
    let vk = *key.verifying_key();
    let baseline = sample(iterations, || vk.verify(b"baseline", &sig).is_ok());
    let base_p50 = baseline[baseline.len() / 2];

    println!("iterations: {iterations}; verify + appraise (deny-all policy), collateral in memory");
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>12}",
        "kind", "mean µs", "p50 µs", "p99 µs", "p50/baseline"
    );
    let row = |name: &str, t: &[f64]| {
        let mean = t.iter().sum::<f64>() / t.len() as f64;
        let p50 = t[t.len() / 2];
        let p99 = t[(t.len() * 99 / 100).min(t.len() - 1)];
        println!(
            "{name:<28} {mean:>10.1} {p50:>10.1} {p99:>10.1} {:>12.1}",
            p50 / base_p50
        );
    };
    row("baseline: ECDSA P-384", &baseline);
    let policy = Policy::default();
    for (name, verifier, evidence, now) in &cases {
        let t = sample(iterations, || {
            verifier
                .verify(evidence, *now)
                .map(|v| policy.appraise(&v, *now))
                .is_ok()
        });
        row(name, &t);
    }

    let id = RaTlsIdentity::issue(KeyAlg::P256, None, 0, 3600, |rd| {
        sign_sim_evidence(&platform, &[2; 48], rd, false).map(Evidence::Sim)
    })?;
    let accept_sim = Policy {
        tee: vec![TeeKind::Sim],
        allow_simulation: true,
        measurements: vec![format!("sim:measurement={}", hex::encode([2; 48])).parse()?],
        ..Policy::default()
    };
    let ratls = RaTlsVerifier::new(sim, accept_sim);
    let verdict = ratls.appraise_cert(id.cert_der(), 0);
    assert!(verdict.accepted, "{:?}", verdict.failed_checks);
    let t = sample(iterations, || {
        ratls.appraise_cert(id.cert_der(), 0).accepted
    });
    row("ra-tls cert (sim)", &t);
    Ok(())
}
