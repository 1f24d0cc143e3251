//! The appraisal policy file: parsing, precise errors, and the rule language.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use coffer_attest::{
    Age, Claims, MeasurementRule, Policy, SgxClaims, TcbStatus, TeeKind, Verified, parse_sgx_quote,
};

const MRENCLAVE: &str = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb";
const MRSIGNER: &str = "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6";

fn sgx_claims() -> SgxClaims {
    parse_sgx_quote(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/sgx_dcap/dcap-qvl/sgx_quote"
        ))
        .unwrap(),
    )
    .unwrap()
}

fn verified(claims: SgxClaims) -> Verified {
    Verified {
        claims: Claims::Sgx(claims),
        tcb_status: Some(TcbStatus::UpToDate),
        advisories: vec![],
        collateral_window: Some((0, i64::MAX)),
    }
}

#[test]
fn manifest_enclave_section_parses() {
    // The `enclave:` section of ARCHITECTURE.md §4's manifest, with real values.
    let p = Policy::from_yaml(&format!(
        "tee: [sgx, tdx, snp, nitro, sim]
measurements:
  - \"sim:measurement={sim}\"
  - \"sgx:mrenclave={MRENCLAVE}\"
  - \"sgx:mrsigner={MRSIGNER},isvprodid=0,isvsvn>=0\"
  - \"tdx:mrtd={h48},rtmr0={h48}\"
  - \"snp:measurement={h48}\"
  - \"nitro:pcr0={h48},pcr1={h48},pcr2={h48}\"
allow_debug: false
allow_simulation: true
accepted_tcb: [UpToDate, SWHardeningNeeded]
accepted_advisories: [INTEL-SA-00615]
max_collateral_age: 30d
report_data: \"0x00ff\"
",
        sim = "ab".repeat(48),
        h48 = "cd".repeat(48),
    ))
    .unwrap();
    assert_eq!(p.tee.len(), 5);
    assert_eq!(p.measurements.len(), 6);
    assert!(p.allow_simulation && !p.allow_debug);
    assert_eq!(
        p.accepted_tcb,
        [TcbStatus::UpToDate, TcbStatus::SWHardeningNeeded]
    );
    assert_eq!(p.max_collateral_age, Some(Age(30 * 86_400)));
    assert_eq!(p.report_data.as_ref().unwrap().0, [0x00, 0xff]);

    // Serialising and reading back gives the same policy; JSON is accepted too.
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(Policy::from_yaml(&json).unwrap(), p);
}

#[test]
fn defaults_deny() {
    let p = Policy::from_yaml("{}").unwrap();
    assert_eq!(p, Policy::default());
    assert!(p.tee.is_empty() && p.measurements.is_empty());
    assert_eq!(p.accepted_tcb, [TcbStatus::UpToDate]);
    assert!(!p.allow_debug && !p.allow_simulation);
    assert!(!p.appraise(&verified(sgx_claims()), 0).accepted);
}

#[test]
fn errors_are_precise() {
    let cases = [
        ("tee: [sgx]\nallow_simulations: true", "allow_simulations"),
        ("tee: [tpm]", "tpm"),
        ("measurements: [\"sgx:mrenclave=abcd\"]", "32 bytes"),
        ("measurements: [\"sgx:mrenclave=zz\"]", "not hex"),
        (
            "measurements: [\"sgx:mrsigner=815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6\"]",
            "mrsigner with isvprodid and isvsvn",
        ),
        ("measurements: [\"tdx:rtmr0=00\"]", "48 bytes"),
        ("measurements: [\"snp:mrtd=00\"]", "snp has no claim"),
        ("measurements: [\"nitro:pcr32=00\"]", "pcr32"),
        ("measurements: [\"sim:measurement\"]", "not name=value"),
        ("measurements: [\"mrenclave=00\"]", "<tee>:<name>=<hex>"),
        (
            "measurements: [\"sgx:isvsvn>=x,mrenclave=00\"]",
            "not a number",
        ),
        ("max_collateral_age: 3 fortnights", "unknown unit"),
        ("accepted_tcb: [Fine]", "Fine"),
        ("report_data: xyz", "not hex"),
    ];
    for (yaml, expected) in cases {
        let err = Policy::from_yaml(yaml).unwrap_err().to_string();
        assert!(
            err.contains(expected),
            "{yaml:?}: {err:?} lacks {expected:?}"
        );
    }
}

#[test]
fn rule_text_round_trips() {
    for text in [
        format!("sgx:mrenclave={MRENCLAVE}"),
        format!("sgx:mrsigner={MRSIGNER},isvprodid=1,isvsvn>=3"),
        format!("nitro:pcr0={},pcr8={}", "00".repeat(48), "11".repeat(48)),
    ] {
        let rule: MeasurementRule = text.parse().unwrap();
        assert_eq!(rule.to_string(), text);
    }
    // Upper-case hex and 0x are accepted and normalised.
    let rule: MeasurementRule = format!("sgx:mrenclave=0x{}", MRENCLAVE.to_uppercase())
        .parse()
        .unwrap();
    assert_eq!(rule.to_string(), format!("sgx:mrenclave={MRENCLAVE}"));
}

#[test]
fn mrsigner_rules_bound_product_and_svn() {
    let claims = Claims::Sgx(sgx_claims()); // ISVPRODID 0, ISVSVN 0
    let rule =
        |s: &str| -> MeasurementRule { format!("sgx:mrsigner={MRSIGNER},{s}").parse().unwrap() };
    assert!(rule("isvprodid=0,isvsvn>=0").matches(&claims));
    assert!(!rule("isvprodid=0,isvsvn>=1").matches(&claims));
    assert!(!rule("isvprodid=1,isvsvn>=0").matches(&claims));
    let mut other = sgx_claims();
    other.isv_svn = 7;
    assert!(rule("isvprodid=0,isvsvn>=5").matches(&Claims::Sgx(other)));
    // A rule for another TEE never matches.
    let sim: MeasurementRule = format!("sim:measurement={}", "00".repeat(48))
        .parse()
        .unwrap();
    assert!(!sim.matches(&claims));
}

#[test]
fn every_failed_check_is_listed() {
    let mut claims = sgx_claims();
    claims.attributes[0] |= 0x02; // debug
    let mut v = verified(claims);
    v.tcb_status = Some(TcbStatus::OutOfDate);
    v.advisories = vec!["INTEL-SA-00001".into()];
    v.collateral_window = Some((0, i64::MAX));
    let p = Policy {
        tee: vec![TeeKind::Tdx],
        measurements: vec![
            format!("sgx:mrenclave={}", "00".repeat(32))
                .parse()
                .unwrap(),
        ],
        max_collateral_age: Some(Age(10)),
        report_data: Some(coffer_attest::HexBytes(vec![1])),
        ..Policy::default()
    };
    let verdict = p.appraise(&v, 100);
    let names: Vec<&str> = verdict.failed_checks.iter().map(|c| c.check()).collect();
    assert_eq!(
        names,
        [
            "tee",
            "debug",
            "measurement",
            "tcb_status",
            "advisory",
            "collateral_age",
            "report_data"
        ]
    );
    let json = serde_json::to_value(&verdict).unwrap();
    assert_eq!(json["accepted"], false);
    assert_eq!(json["failed_checks"][0]["check"], "tee");
    assert!(
        json["failed_checks"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("debug")
    );
}
