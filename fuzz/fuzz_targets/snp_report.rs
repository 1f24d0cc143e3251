//! Arbitrary bytes as an SEV-SNP report: parsing and verification never panic and never return
//! `Internal`; parsing and verification agree on what is malformed. Verification runs against
//! the recorded trustee VCEK, so inputs mutated from the recorded report (seed the corpus with
//! testdata/sev_snp/trustee/test-report.bin) reach the chain, TCB and signature checks.
#![no_main]

use coffer_attest::Error;
use coffer_attest::snp::{parse_snp_report, verify_snp};
use libfuzzer_sys::fuzz_target;

/// 2025-06-01T00:00:00Z, inside the VCEK's window.
const NOW: i64 = 1_748_736_000;
const VCEK: &[u8] = include_bytes!("../../testdata/sev_snp/trustee/test-vcek.der");

fuzz_target!(|data: &[u8]| {
    let parsed = parse_snp_report(data);
    let verified = verify_snp(data, VCEK, &[], NOW);
    assert!(!matches!(parsed, Err(Error::Internal(_))));
    assert!(!matches!(verified, Err(Error::Internal(_))));
    if let Err(Error::Malformed { .. } | Error::Unsupported(_)) = parsed {
        assert!(verified.is_err());
    }
    if let Ok(v) = verified {
        // Whatever verifies parses to the same fields, apart from the TCB layout the chain fixes.
        let p = parsed.expect("verified report parses");
        assert_eq!(
            (p.measurement, p.report_data, p.chip_id),
            (v.claims.measurement, v.claims.report_data, v.claims.chip_id)
        );
    }
    // The VCEK slot is attacker-controlled too.
    let _ = verify_snp(VCEK_REPORT, data, &[data.to_vec()], NOW);
});

const VCEK_REPORT: &[u8] = include_bytes!("../../testdata/sev_snp/trustee/test-report.bin");
