//! One conformance suite, run against every verifier through the common [`Verifier`] and
//! [`Policy`]: the same attacks and the same policy checks for SGX, TDX, SEV-SNP, Nitro and sim.
//! The per-TEE suites (dcap.rs, snp.rs, nitro.rs) hold what is specific to one vendor.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use base64::Engine;
use coffer_attest::dcap::Collateral;
use coffer_attest::sim::sign_sim_evidence;
use coffer_attest::{
    Age, Error, Evidence, FailedCheck, HexBytes, MeasurementRule, Policy, TcbStatus, TeeKind,
    Verifier,
};
use ed25519_dalek::SigningKey;

const JULY_2025: i64 = 1_751_328_000;
const AFTER_JULY_2025: i64 = 1_752_969_600;
const SNP_NOW: i64 = 1_748_736_000;
/// 2030-01-25: after the trustee VCEK's notAfter.
const SNP_AFTER: i64 = 1_895_529_600;
const NITRO_NOW: i64 = 1_695_050_165;
const NITRO_AFTER: i64 = 1_695_058_633;

fn read(rel: &str) -> Vec<u8> {
    let path = format!("{}/../../testdata/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn collateral(rel: &str) -> Collateral {
    Collateral::from_dcap_qvl_json(&String::from_utf8(read(rel)).unwrap()).unwrap()
}

fn sim_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

/// One verifier's recorded (or, for sim, generated) evidence and what the suite needs to
/// attack it.
struct Fixture {
    tee: TeeKind,
    evidence: Evidence,
    verifier: Verifier,
    now: i64,
    /// A time after the evidence's validity; `None` where nothing expires (sim).
    after: Option<i64>,
    /// Offsets into the vendor bytes: one inside the signature, one inside the signed body.
    signature_at: usize,
    body_at: usize,
    /// A policy that accepts the evidence.
    policy: Policy,
    /// The measurement rule the policy pins.
    rule: String,
}

impl Fixture {
    fn with_data(&self, data: Vec<u8>) -> Evidence {
        let certs = match &self.evidence {
            Evidence::Snp { certs, .. } => certs.clone(),
            _ => Vec::new(),
        };
        Evidence::from_parts(self.tee, data, certs).unwrap()
    }
}

fn policy(tee: TeeKind, rule: &str) -> Policy {
    Policy {
        tee: vec![tee],
        measurements: vec![rule.parse().unwrap()],
        ..Policy::default()
    }
}

fn fixtures() -> Vec<Fixture> {
    let sgx_rule = "sgx:mrenclave=33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb";
    let tdx_rule = "tdx:mrtd=91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7";
    let nitro_rule = "nitro:pcr0=000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";

    let mut sgx_policy = policy(TeeKind::Sgx, sgx_rule);
    sgx_policy.accepted_tcb = vec![TcbStatus::ConfigurationAndSWHardeningNeeded];
    sgx_policy.accepted_advisories = vec!["INTEL-SA-00289".into(), "INTEL-SA-00615".into()];

    let snp_report = read("sev_snp/trustee/test-report.bin");
    let snp_measurement = coffer_attest::parse_snp_report(&snp_report)
        .unwrap()
        .measurement;
    let snp_rule = format!("snp:measurement={}", hex::encode(snp_measurement));

    let mut nitro_policy = policy(TeeKind::Nitro, nitro_rule);
    nitro_policy.allow_debug = true; // Evervault's recorded enclave ran in debug mode

    let measurement = [0x5a; 48];
    let sim_rule = format!("sim:measurement={}", hex::encode(measurement));
    let sim_ev = sign_sim_evidence(&sim_key(), &measurement, &[7; 64], false).unwrap();
    let mut sim_policy = policy(TeeKind::Sim, &sim_rule);
    sim_policy.allow_simulation = true;
    let sim_body = sim_ev.windows(4).position(|w| w == [0x5a; 4]).unwrap();

    let nitro_doc = base64::engine::general_purpose::STANDARD
        .decode(
            String::from_utf8(read(
                "nitro/evervault/test-data/valid-attestation-doc-base64",
            ))
            .unwrap()
            .trim(),
        )
        .unwrap();
    let nitro_body = nitro_doc.windows(8).position(|w| w == b"i-0918f6").unwrap() + 3;

    vec![
        Fixture {
            tee: TeeKind::Sgx,
            evidence: Evidence::Sgx(read("sgx_dcap/dcap-qvl/sgx_quote")),
            verifier: Verifier::new()
                .with_collateral(collateral("sgx_dcap/dcap-qvl/sgx_quote_collateral.json")),
            now: JULY_2025,
            after: Some(AFTER_JULY_2025),
            // v3: 48-byte header, 384-byte report, 4-byte length, then the signature.
            signature_at: 48 + 384 + 4 + 10,
            body_at: 48 + 64,
            policy: sgx_policy,
            rule: sgx_rule.into(),
        },
        Fixture {
            tee: TeeKind::Tdx,
            evidence: Evidence::Tdx(read("tdx/dcap-qvl/tdx_quote")),
            verifier: Verifier::new()
                .with_collateral(collateral("tdx/dcap-qvl/tdx_quote_collateral.json")),
            now: JULY_2025,
            after: Some(AFTER_JULY_2025),
            // v4: 48-byte header, 584-byte TD report, 4-byte length, then the signature.
            signature_at: 48 + 584 + 4 + 10,
            body_at: 48 + 136,
            policy: policy(TeeKind::Tdx, tdx_rule),
            rule: tdx_rule.into(),
        },
        Fixture {
            tee: TeeKind::Snp,
            evidence: Evidence::Snp {
                report: snp_report,
                certs: vec![read("sev_snp/trustee/test-vcek.der")],
            },
            verifier: Verifier::new(),
            now: SNP_NOW,
            after: Some(SNP_AFTER),
            signature_at: 0x2a0 + 10,
            body_at: 0x90,
            policy: policy(TeeKind::Snp, &snp_rule),
            rule: snp_rule,
        },
        Fixture {
            tee: TeeKind::Nitro,
            evidence: Evidence::Nitro(nitro_doc.clone()),
            verifier: Verifier::new(),
            now: NITRO_NOW,
            after: Some(NITRO_AFTER),
            signature_at: nitro_doc.len() - 1,
            body_at: nitro_body,
            policy: nitro_policy,
            rule: nitro_rule.into(),
        },
        Fixture {
            tee: TeeKind::Sim,
            signature_at: sim_ev.len() - 1,
            evidence: Evidence::Sim(sim_ev),
            verifier: Verifier::new().with_sim_root(sim_key().verifying_key().to_bytes()),
            now: JULY_2025,
            after: None,
            body_at: sim_body,
            policy: sim_policy,
            rule: sim_rule,
        },
    ]
}

fn checks(p: &Policy, f: &Fixture) -> Vec<&'static str> {
    let v = f.verifier.verify(&f.evidence, f.now).unwrap();
    p.appraise(&v, f.now)
        .failed_checks
        .iter()
        .map(FailedCheck::check)
        .collect()
}

fn assert_refused(f: &Fixture, result: Result<coffer_attest::Verified, Error>, what: &str) {
    match result {
        Ok(_) => panic!("{:?}: {what} was accepted", f.tee),
        Err(Error::Internal(e)) => panic!("{:?}: {what}: internal error {e}", f.tee),
        Err(_) => {}
    }
}

#[test]
fn genuine_evidence_verifies_and_is_accepted() {
    for f in fixtures() {
        let v = f.verifier.verify(&f.evidence, f.now).unwrap();
        assert_eq!(v.claims.tee(), f.tee);
        let verdict = f.policy.appraise(&v, f.now);
        assert!(verdict.accepted, "{:?}: {:?}", f.tee, verdict.failed_checks);
        assert!(
            f.rule
                .parse::<MeasurementRule>()
                .unwrap()
                .matches(&v.claims)
        );
    }
}

#[test]
fn evidence_is_refused_after_its_window() {
    for f in fixtures() {
        if let Some(after) = f.after {
            let err = f.verifier.verify(&f.evidence, after).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::CollateralExpired { .. } | Error::CertificateChain { .. }
                ),
                "{:?}: {err:?}",
                f.tee
            );
        }
    }
}

#[test]
fn flipped_signature_byte_is_refused() {
    for f in fixtures() {
        let mut data = f.evidence.data().to_vec();
        data[f.signature_at] ^= 0x01;
        assert_refused(
            &f,
            f.verifier.verify(&f.with_data(data), f.now),
            "signature flip",
        );
    }
}

#[test]
fn flipped_body_byte_is_refused() {
    for f in fixtures() {
        let mut data = f.evidence.data().to_vec();
        data[f.body_at] ^= 0x01;
        let err = f
            .verifier
            .verify(&f.with_data(data), f.now)
            .expect_err("body flip accepted");
        assert!(
            matches!(
                err,
                Error::SignatureInvalid { .. } | Error::TcbMismatch { .. }
            ),
            "{:?}: {err:?}",
            f.tee
        );
    }
}

#[test]
fn truncated_evidence_is_refused_without_panic() {
    for f in fixtures() {
        let data = f.evidence.data();
        // Some producers pad quotes with zeros (the TDX sample has 70 bytes): cut real bytes.
        let end = data.iter().rposition(|&b| b != 0).unwrap() + 1;
        for len in [0, 1, 4, 16, data.len() / 4, data.len() / 2, end - 1] {
            let short = f.with_data(data[..len].to_vec());
            assert_refused(
                &f,
                f.verifier.verify(&short, f.now),
                &format!("length {len}"),
            );
        }
    }
}

#[test]
fn wrong_measurement_is_refused() {
    for f in fixtures() {
        // Change the last hex digit of the pinned value.
        let mut rule = f.rule.clone();
        let last = rule.pop().unwrap();
        rule.push(if last == '0' { '1' } else { '0' });
        let mut p = f.policy.clone();
        p.measurements = vec![rule.parse().unwrap()];
        assert_eq!(checks(&p, &f), ["measurement"], "{:?}", f.tee);
    }
}

#[test]
fn a_policy_without_a_rule_for_the_tee_refuses() {
    for f in fixtures() {
        let mut p = f.policy.clone();
        p.measurements.clear();
        assert_eq!(checks(&p, &f), ["measurement"], "{:?}", f.tee);
    }
}

#[test]
fn wrong_report_data_is_refused_and_right_report_data_accepted() {
    for f in fixtures() {
        let v = f.verifier.verify(&f.evidence, f.now).unwrap();
        let mut p = f.policy.clone();
        p.report_data = Some(HexBytes(v.claims.report_data().to_vec()));
        assert!(p.appraise(&v, f.now).accepted, "{:?}", f.tee);
        p.report_data = Some(HexBytes(b"another nonce".to_vec()));
        assert_eq!(checks(&p, &f), ["report_data"], "{:?}", f.tee);
    }
}

#[test]
fn tee_kind_not_listed_is_refused() {
    for f in fixtures() {
        let mut p = f.policy.clone();
        p.tee = TeeKind::ALL.into_iter().filter(|t| *t != f.tee).collect();
        assert_eq!(checks(&p, &f), ["tee"], "{:?}", f.tee);
    }
}

#[test]
fn debug_is_refused_unless_allowed() {
    for f in fixtures() {
        let v = f.verifier.verify(&f.evidence, f.now).unwrap();
        let mut p = f.policy.clone();
        p.allow_debug = false;
        let expected: &[&str] = if v.claims.debug() { &["debug"] } else { &[] };
        assert_eq!(checks(&p, &f), expected, "{:?}", f.tee);
    }
    // Sim can claim debug, so every path of the check runs here too.
    let measurement = [0x5a; 48];
    let ev = sign_sim_evidence(&sim_key(), &measurement, &[0; 64], true).unwrap();
    let v = Verifier::new()
        .with_sim_root(sim_key().verifying_key().to_bytes())
        .verify(&Evidence::Sim(ev), 0)
        .unwrap();
    let mut p = policy(
        TeeKind::Sim,
        &format!("sim:measurement={}", hex::encode(measurement)),
    );
    p.allow_simulation = true;
    let verdict = p.appraise(&v, 0);
    assert_eq!(verdict.failed_checks, [FailedCheck::DebugNotAllowed]);
    p.allow_debug = true;
    assert!(p.appraise(&v, 0).accepted);
}

#[test]
fn the_empty_policy_accepts_nothing() {
    for f in fixtures() {
        let c = checks(&Policy::default(), &f);
        assert!(
            c.contains(&"tee") && c.contains(&"measurement"),
            "{:?}: {c:?}",
            f.tee
        );
    }
}

#[test]
fn stale_collateral_is_refused_by_max_age() {
    for f in fixtures() {
        let v = f.verifier.verify(&f.evidence, f.now).unwrap();
        let mut p = f.policy.clone();
        p.max_collateral_age = Some(Age(1));
        let expected: &[&str] = if v.collateral_window.is_some() {
            &["collateral_age"]
        } else {
            &[]
        };
        assert_eq!(checks(&p, &f), expected, "{:?}", f.tee);
        p.max_collateral_age = Some(Age(365 * 86_400));
        assert!(p.appraise(&v, f.now).accepted, "{:?}", f.tee);
    }
}

#[test]
fn tcb_status_must_be_listed() {
    for f in fixtures() {
        let v = f.verifier.verify(&f.evidence, f.now).unwrap();
        let mut p = f.policy.clone();
        p.accepted_tcb = vec![TcbStatus::OutOfDate];
        let c = checks(&p, &f);
        match v.tcb_status {
            Some(_) => assert!(c.contains(&"tcb_status"), "{:?}: {c:?}", f.tee),
            None => assert!(c.is_empty(), "{:?}: {c:?}", f.tee),
        }
    }
}

#[test]
fn simulation_needs_allow_simulation() {
    for f in fixtures() {
        let mut p = f.policy.clone();
        p.allow_simulation = false;
        let expected: &[&str] = if f.tee == TeeKind::Sim {
            &["simulation"]
        } else {
            &[]
        };
        assert_eq!(checks(&p, &f), expected, "{:?}", f.tee);
    }
}

#[test]
fn bytes_appended_to_evidence_are_refused() {
    for f in fixtures() {
        let mut data = f.evidence.data().to_vec();
        data.push(0x01);
        assert_refused(
            &f,
            f.verifier.verify(&f.with_data(data), f.now),
            "appended byte",
        );
    }
}

#[test]
fn evidence_wire_form_round_trips() {
    for f in fixtures() {
        let bytes = f.evidence.to_cbor().unwrap();
        assert_eq!(Evidence::from_cbor(&bytes).unwrap(), f.evidence);
        for len in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(Evidence::from_cbor(&bytes[..len]).is_err());
        }
    }
}

#[test]
fn wrong_root_is_refused() {
    // The hardware roots are pinned in the binary; DCAP's and SNP's per-TEE suites swap them
    // (dcap.rs `wrong_root_is_refused`, snp.rs `unpinned_root_is_refused`). Here: an SNP
    // report with the wrong generation's CA chain, and sim evidence under another sim root.
    let snp = fixtures()
        .into_iter()
        .find(|f| f.tee == TeeKind::Snp)
        .unwrap();
    let Evidence::Snp { report, certs } = &snp.evidence else {
        unreachable!()
    };
    let mut with_genoa = certs.clone();
    with_genoa.push(read("sev_snp/amd_ca/genoa_ask_ark_asvk.pem"));
    let ev = Evidence::Snp {
        report: report.clone(),
        certs: with_genoa,
    };
    assert!(matches!(
        Verifier::new().verify(&ev, SNP_NOW),
        Err(Error::CertificateChain { .. })
    ));

    let sim = fixtures()
        .into_iter()
        .find(|f| f.tee == TeeKind::Sim)
        .unwrap();
    let other = SigningKey::from_bytes(&[43; 32]).verifying_key().to_bytes();
    assert!(matches!(
        Verifier::new()
            .with_sim_root(other)
            .verify(&sim.evidence, 0),
        Err(Error::CertificateChain { .. })
    ));
    assert!(matches!(
        Verifier::new().verify(&sim.evidence, 0),
        Err(Error::Missing(_))
    ));
}
