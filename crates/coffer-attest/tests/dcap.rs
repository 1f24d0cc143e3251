//! SGX DCAP and TDX verification against recorded third-party quotes and collateral
//! (testdata/sgx_dcap, testdata/tdx; see their PROVENANCE.md).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::path::PathBuf;

use coffer_attest::dcap::{
    Collateral, DcapVerifier, INTEL_SGX_ROOT_CA_DER, PcsFiles, parse_sgx_quote, parse_tdx_quote,
    verify_sgx, verify_tdx,
};
use coffer_attest::{Error, TcbStatus, TeeKind};

/// 2025-07-01T00:00:00Z: inside both dcap-qvl sample collateral windows.
const JULY_2025: i64 = 1_751_328_000;
/// 2025-07-20T00:00:00Z: after both windows (they end 2025-07-19T10:01Z and 10:00Z).
const AFTER_JULY_2025: i64 = 1_752_969_600;
/// 2026-03-01T00:00:00Z: inside the tdx_quote_outdated collateral window.
const MARCH_2026: i64 = 1_772_323_200;
/// 2023-07-12T20:48:25Z: MobileCoin's test time for hw_quote.dat.
const MOBILECOIN_TIME: i64 = 1_689_194_905;

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(rel)
}
fn read(rel: &str) -> Vec<u8> {
    std::fs::read(data(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}
fn collateral(rel: &str) -> Collateral {
    Collateral::from_dcap_qvl_json(&String::from_utf8(read(rel)).unwrap()).unwrap()
}
fn sgx_sample() -> (Vec<u8>, Collateral) {
    (
        read("sgx_dcap/dcap-qvl/sgx_quote"),
        collateral("sgx_dcap/dcap-qvl/sgx_quote_collateral.json"),
    )
}
fn tdx_sample() -> (Vec<u8>, Collateral) {
    (
        read("tdx/dcap-qvl/tdx_quote"),
        collateral("tdx/dcap-qvl/tdx_quote_collateral.json"),
    )
}
fn mobilecoin(tcb_file: &str) -> Collateral {
    Collateral::from_pcs_files(&PcsFiles::in_dir(&data("sgx_dcap/mobilecoin"), tcb_file)).unwrap()
}
fn h(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

#[test]
fn pinned_root_is_intel_sgx_root_ca() {
    // The testdata copy is pinned by testdata/sgx_dcap/SHA256SUMS to MANIFEST.md's SHA-256.
    assert_eq!(
        INTEL_SGX_ROOT_CA_DER,
        read("sgx_dcap/Intel_SGX_RootCA.der").as_slice()
    );
}

#[test]
fn sgx_sample_verifies_inside_window() {
    let (quote, coll) = sgx_sample();
    let v = verify_sgx(&quote, &coll, JULY_2025).unwrap();
    assert_eq!(v.tcb_status, TcbStatus::ConfigurationAndSWHardeningNeeded);
    assert_eq!(v.advisories, ["INTEL-SA-00289", "INTEL-SA-00615"]);
    assert_eq!(
        h(&v.claims.mrenclave),
        "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
    );
    assert_eq!(
        h(&v.claims.mrsigner),
        "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
    );
    assert_eq!(h(&v.claims.fmspc), "00a067110000");
    assert_eq!((v.claims.isv_prod_id, v.claims.isv_svn), (0, 0));
    assert!(v.claims.report_data.starts_with(b"Hello, world!\0"));
    assert!(!v.claims.is_debug());
    // dcap-qvl's documented validity: until nextUpdate of the QE identity.
    assert!(v.collateral_window.0 <= JULY_2025 && JULY_2025 <= v.collateral_window.1);
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["claims"]["fmspc"], "00a067110000");
    assert_eq!(json["tcb_status"], "ConfigurationAndSWHardeningNeeded");
}

#[test]
fn sgx_sample_refused_after_window() {
    let (quote, coll) = sgx_sample();
    let err = verify_sgx(&quote, &coll, AFTER_JULY_2025).unwrap_err();
    assert!(
        matches!(
            err,
            Error::CollateralExpired {
                at: AFTER_JULY_2025,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn sgx_sample_refused_before_issue() {
    let (quote, coll) = sgx_sample();
    let june_1 = 1_748_736_000; // 2025-06-01T00:00:00Z, before the TCB info's issueDate
    let err = verify_sgx(&quote, &coll, june_1).unwrap_err();
    assert!(
        matches!(
            err,
            Error::CollateralExpired {
                at: 1_748_736_000,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn tdx_sample_verifies_inside_window() {
    let (quote, coll) = tdx_sample();
    let v = verify_tdx(&quote, &coll, JULY_2025).unwrap();
    assert_eq!(v.tcb_status, TcbStatus::UpToDate);
    assert!(v.advisories.is_empty(), "{:?}", v.advisories);
    assert_eq!(
        h(&v.claims.mrtd),
        "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
    );
    assert_eq!(v.claims.rtmr[3], [0; 48]);
    assert!(h(&v.claims.rtmr[0]).starts_with("44c0197b"));
    assert_eq!(h(&v.claims.fmspc), "b0c06f000000");
    assert_eq!(v.claims.quote_version, 4);
    assert!(!v.claims.is_debug());
}

#[test]
fn tdx_sample_refused_after_window() {
    let (quote, coll) = tdx_sample();
    let err = verify_tdx(&quote, &coll, AFTER_JULY_2025).unwrap_err();
    assert!(matches!(err, Error::CollateralExpired { .. }), "{err:?}");
}

#[test]
fn tdx_v5_outdated_has_no_matching_tcb_level() {
    let quote = read("tdx/dcap-qvl/tdx_quote_outdated");
    let coll = collateral("tdx/dcap-qvl/tdx_quote_outdated_collateral.json");
    let err = verify_tdx(&quote, &coll, MARCH_2026).unwrap_err();
    match err {
        Error::TcbMismatch { reason } => {
            assert!(reason.contains("no matching TCB level"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrong_tee_is_a_typed_error() {
    let (sgx, sgx_coll) = sgx_sample();
    let (tdx, tdx_coll) = tdx_sample();
    let err = verify_sgx(&tdx, &tdx_coll, JULY_2025).unwrap_err();
    assert!(
        matches!(
            err,
            Error::WrongTee {
                expected: TeeKind::Sgx,
                ..
            }
        ),
        "{err:?}"
    );
    let err = verify_tdx(&sgx, &sgx_coll, JULY_2025).unwrap_err();
    assert!(
        matches!(
            err,
            Error::WrongTee {
                expected: TeeKind::Tdx,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(matches!(parse_sgx_quote(&tdx), Err(Error::WrongTee { .. })));
    assert!(matches!(parse_tdx_quote(&sgx), Err(Error::WrongTee { .. })));
}

#[test]
fn sgx_collateral_for_tdx_quote_is_refused() {
    let (tdx, _) = tdx_sample();
    let (_, sgx_coll) = sgx_sample();
    let err = verify_tdx(&tdx, &sgx_coll, JULY_2025).unwrap_err();
    assert!(
        matches!(
            err,
            Error::WrongTee {
                expected: TeeKind::Tdx,
                ..
            }
        ),
        "{err:?}"
    );
}

/// MobileCoin's hw_quote with Intel PCS collateral at MobileCoin's test time. MobileCoin
/// asserts SWHardeningNeeded, but it replaces chain and CRL checks with a test double. A strict
/// verifier must refuse: processor_crl.der's nextUpdate (2023-05-21) is before the test time.
#[test]
fn mobilecoin_pcs_collateral_strictly_refused_for_stale_pck_crl() {
    let quote = read("sgx_dcap/mobilecoin/hw_quote.dat");
    let coll = mobilecoin("fmspc_00906ED50000_2023_07_12.json");
    let err = verify_sgx(&quote, &coll, MOBILECOIN_TIME).unwrap_err();
    match err {
        Error::CollateralExpired {
            what,
            at,
            not_after,
            ..
        } => {
            assert!(what.contains("CRL"), "{what}");
            assert_eq!(at, MOBILECOIN_TIME);
            // processor_crl.der's nextUpdate, 2023-05-21T22:00:36Z. Only the PCK CA's CRL is
            // consulted in the PCK chain check (step 3), so reaching it also shows that the
            // converted TCB info and QE identity signatures (steps 1-2) verified.
            assert_eq!(not_after, 1_684_706_436);
        }
        other => panic!("{other:?}"),
    }
}

/// The converted TCB info is the exact signed text, and its signature is really checked: one
/// flipped signature nibble turns the stale-CRL refusal above into a bad-signature refusal.
#[test]
fn mobilecoin_pcs_tcb_info_signature_is_checked() {
    let quote = read("sgx_dcap/mobilecoin/hw_quote.dat");
    let good = mobilecoin("fmspc_00906ED50000_2023_07_12.json");
    let dq = good.as_dcap_qvl();
    assert!(dq.tcb_info.starts_with("{\"id\":\"SGX\"") && dq.tcb_info.ends_with('}'));
    assert_eq!(dq.tcb_info_signature.len(), 64);
    let mut json = serde_json::to_value(dq).unwrap();
    let sig = json["tcb_info_signature"].as_str().unwrap().to_owned();
    let flipped = format!(
        "{}{}",
        if sig.starts_with('0') { "1" } else { "0" },
        &sig[1..]
    );
    json["tcb_info_signature"] = flipped.into();
    let bad = Collateral::from_dcap_qvl_json(&json.to_string()).unwrap();
    let err = verify_sgx(&quote, &bad, MOBILECOIN_TIME).unwrap_err();
    assert!(matches!(err, Error::SignatureInvalid { .. }), "{err:?}");
}

/// MobileCoin asserts FmspcMismatch for Intel's documentation-example TCB info, but its
/// verifier compares FMSPCs without checking the example's signature. dcap-qvl checks the
/// signature first, and the example is not signed by Intel's TCB signing key.
#[test]
fn mobilecoin_example_tcb_is_refused_at_its_signature() {
    let quote = read("sgx_dcap/mobilecoin/hw_quote.dat");
    let coll = mobilecoin("example_tcb.json");
    let example_time = 1_650_000_000; // 2022-04-15: inside the example's issueDate..nextUpdate
    let err = verify_sgx(&quote, &coll, example_time).unwrap_err();
    match err {
        Error::SignatureInvalid { what } => assert!(what.contains("tcb_info"), "{what}"),
        other => panic!("{other:?}"),
    }
}

/// The FMSPC check itself, with genuine Intel-signed collateral for another platform: the
/// dcap-qvl sample's TCB info (FMSPC 00a067110000) against hw_quote (FMSPC 00906ed50000).
#[test]
fn tcb_info_for_another_fmspc_is_fmspc_mismatch() {
    let quote = read("sgx_dcap/mobilecoin/hw_quote.dat");
    let (_, coll) = sgx_sample();
    let err = verify_sgx(&quote, &coll, JULY_2025).unwrap_err();
    match err {
        Error::TcbMismatch { reason } => assert!(reason.contains("FMSPC mismatch"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn mobilecoin_claims_parse() {
    let c = parse_sgx_quote(&read("sgx_dcap/mobilecoin/hw_quote.dat")).unwrap();
    assert_eq!(
        h(&c.mrenclave),
        "840d61b0585dc8b4dc90f53af293c760fda06bee75978a6a86263ffb296423f4"
    );
    assert_eq!(
        h(&c.mrsigner),
        "9f06df5ca79a23ffdfb6ca0ec85514e21dd1cbd1ed11abc45dbe8dc894efdddf"
    );
    assert_eq!(h(&c.fmspc), "00906ed50000");
    assert_eq!(c.report_data, [0; 64]);
}

#[test]
fn occlum_quote_parses_as_debug() {
    let c = parse_sgx_quote(&read("sgx_dcap/trustee/occlum_quote.dat")).unwrap();
    assert_eq!(
        h(&c.mrenclave),
        "8f173e4613ff05c52aaf04162d234edae8c9977eae47eb2299ae16a553011c68"
    );
    assert_eq!(c.attributes[0], 0x07);
    assert!(c.is_debug());
    assert!(c.report_data.starts_with(b"test\0"));
    assert_eq!(h(&c.fmspc), "00606a000000");
}

#[test]
fn cosmian_quote_parses() {
    let c = parse_sgx_quote(&read("sgx_dcap/cosmian/quote.dat")).unwrap();
    assert_eq!(
        h(&c.mrenclave),
        "e413a4ed616c7a79634d5ca05a2fda746a1f0c71349a80b25a02828846fab90e"
    );
    assert_eq!(
        h(&c.mrsigner),
        "ac2c9fa87e4c91768b1d0c47169466c50d5a98c790639fbaefe7352a59919980"
    );
    assert_eq!((c.isv_prod_id, c.isv_svn), (1, 10));
    assert_eq!(h(&c.fmspc), "30606a000000");
    assert!(!c.is_debug());
}

#[test]
fn trustee_tdx_v4_is_debug_td() {
    let c = parse_tdx_quote(&read("tdx/trustee/tdx_quote_4.dat")).unwrap();
    assert_eq!(c.quote_version, 4);
    assert_eq!(h(&c.td_attributes), "0100001000000000");
    assert!(c.is_debug());
    assert!(h(&c.mrtd).starts_with("705ee938") && h(&c.mrtd).ends_with("f031"));
    assert_eq!(h(&c.fmspc), "50806f000000");
}

#[test]
fn trustee_tdx_v5_parses() {
    let c = parse_tdx_quote(&read("tdx/trustee/tdx_quote_5.dat")).unwrap();
    assert_eq!(c.quote_version, 5);
    assert!(h(&c.mrtd).starts_with("dfba221b") && h(&c.mrtd).ends_with("400a"));
    assert!(!c.is_debug());
    assert_eq!(h(&c.fmspc), "90c06f000000");
}

#[test]
fn flipped_signature_and_body_bytes_are_refused() {
    let (sgx, sgx_coll) = sgx_sample();
    let (tdx, tdx_coll) = tdx_sample();
    let sgx_at = |at: usize| {
        let mut q = sgx.clone();
        q[at] ^= 0x01;
        verify_sgx(&q, &sgx_coll, JULY_2025).map(drop)
    };
    let tdx_at = |at: usize| {
        let mut q = tdx.clone();
        q[at] ^= 0x01;
        verify_tdx(&q, &tdx_coll, JULY_2025).map(drop)
    };
    let cases = [
        // v3: header 48 + report 384, then the 4-byte auth data length and the 64-byte signature.
        ("SGX signature", sgx_at(48 + 384 + 4 + 10)),
        // MRENCLAVE is at offset 64 of the report, which starts after the 48-byte header.
        ("SGX MRENCLAVE", sgx_at(48 + 64)),
        // TD report 1.0: MRTD at offset 136, after the 48-byte header.
        ("TDX MRTD", tdx_at(48 + 136)),
    ];
    for (what, result) in cases {
        let err = result.unwrap_err();
        assert!(
            matches!(err, Error::SignatureInvalid { .. }),
            "{what}: {err:?}"
        );
    }
}

#[test]
fn truncated_quotes_are_refused_without_panic() {
    let (quote, coll) = sgx_sample();
    for len in [
        0,
        1,
        47,
        48,
        431,
        432,
        500,
        quote.len() / 2,
        quote.len() - 1,
    ] {
        let short = &quote[..len];
        assert!(parse_sgx_quote(short).is_err(), "len {len}");
        let err = verify_sgx(short, &coll, JULY_2025).unwrap_err();
        assert!(!matches!(err, Error::Internal(_)), "len {len}: {err:?}");
    }
}

#[test]
fn wrong_root_is_refused() {
    // Any self-consistent certificate that is not Intel's root: the PCK leaf from the Cosmian
    // set stands in for an attacker's root.
    let pem = String::from_utf8(read("sgx_dcap/cosmian/pck_cert.pem")).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).unwrap();
    let (quote, coll) = sgx_sample();
    let err = DcapVerifier::with_root_ca(der)
        .verify_sgx(&quote, &coll, JULY_2025)
        .unwrap_err();
    // The first thing signed by the root is the root CA CRL, so that is where it fails.
    match err {
        Error::SignatureInvalid { what } => assert!(what.contains("CRL"), "{what}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_collateral_json_is_typed() {
    assert!(matches!(
        Collateral::from_dcap_qvl_json("{"),
        Err(Error::Malformed { .. })
    ));
    let err =
        Collateral::from_pcs_files(&PcsFiles::in_dir(&data("nowhere"), "x.json")).unwrap_err();
    assert!(matches!(err, Error::Missing(_)), "{err:?}");
}
