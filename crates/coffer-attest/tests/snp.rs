//! SEV-SNP verifier against recorded reports from trustee and virtee/sev (see
//! testdata/sev_snp/PROVENANCE.md).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use coffer_attest::Error;
use coffer_attest::snp::{
    SnpGeneration, SnpSigner, parse_snp_report, parse_vek_extensions, pinned_ark_fingerprint,
    sev_builtin_ark_der, verify_snp,
};
use sha2::{Digest, Sha256};

/// 2025-06-01T00:00:00Z: inside every VEK window here, including the VLEK's.
const NOW: i64 = 1_748_736_000;
/// 2025-12-11T00:00:00Z: after the VLEK certificate's notAfter (2025-12-10T22:14:21Z).
const AFTER_VLEK: i64 = 1_765_411_200;
/// 2020-01-01T00:00:00Z: before any VCEK here was issued.
const BEFORE_VCEKS: i64 = 1_577_836_800;

fn data(rel: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../testdata/sev_snp/{rel}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn virtee_report() -> Vec<u8> {
    hex::decode(
        String::from_utf8(data("virtee-sev/report_milan.hex"))
            .unwrap()
            .trim(),
    )
    .unwrap()
}

fn milan_chain() -> Vec<Vec<u8>> {
    vec![data("amd_ca/milan_ask_ark_asvk.pem")]
}

#[test]
fn trustee_vcek_report_verifies_with_builtin_roots() {
    let v = verify_snp(
        &data("trustee/test-report.bin"),
        &data("trustee/test-vcek.der"),
        &[],
        NOW,
    )
    .unwrap();
    assert_eq!(v.generation, SnpGeneration::Milan);
    let c = &v.claims;
    assert_eq!(c.version, 2);
    assert_eq!(c.policy, 0x3001f);
    assert!(!c.debug());
    assert_eq!(c.vmpl, 0);
    assert_eq!(c.signer, SnpSigner::Vcek);
    assert_eq!(
        hex::encode(c.measurement),
        "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c\
         23500644e0e692e6be917f9050d3d38c"
    );
    let t = c.reported_tcb;
    assert_eq!(
        (t.bootloader, t.tee, t.snp, t.microcode, t.fmc),
        (3, 0, 8, 115, None)
    );
    assert_eq!(hex::encode(&c.chip_id[..8]), "c38427a30d4c7af9");
    assert_eq!(hex::encode(&c.report_data[..8]), "ec6c52d7533cc2c4");
    assert_eq!(c.host_data, [0u8; 32]);
}

#[test]
fn trustee_vcek_report_verifies_with_supplied_chain() {
    let v = verify_snp(
        &data("trustee/test-report.bin"),
        &data("trustee/test-vcek.der"),
        &milan_chain(),
        NOW,
    )
    .unwrap();
    assert_eq!(v.generation, SnpGeneration::Milan);
}

#[test]
fn trustee_byte_42_flipped_fails_signature() {
    let mut report = data("trustee/test-report.bin");
    report[42] ^= 0x01;
    let err = verify_snp(&report, &data("trustee/test-vcek.der"), &[], NOW).unwrap_err();
    assert!(matches!(err, Error::SignatureInvalid { .. }), "{err:?}");
}

#[test]
fn trustee_byte_384_flipped_fails_tcb_check() {
    let mut report = data("trustee/test-report.bin");
    report[384] ^= 0x01;
    let err = verify_snp(&report, &data("trustee/test-vcek.der"), &[], NOW).unwrap_err();
    assert!(matches!(err, Error::TcbMismatch { ref reason } if reason.contains("bootloader")));
}

#[test]
fn vlek_report_verifies_inside_certificate_window() {
    let v = verify_snp(
        &data("trustee/test-vlek-report.bin"),
        &data("trustee/test-vlek.der"),
        &[],
        NOW,
    )
    .unwrap();
    let c = &v.claims;
    assert_eq!(v.generation, SnpGeneration::Milan);
    assert_eq!(c.signer, SnpSigner::Vlek);
    assert_eq!((c.version, c.vmpl, c.policy), (3, 1, 0x30000));
    assert_eq!(c.chip_id, [0u8; 64]);
    assert_eq!(c.cpuid_generation, Some(SnpGeneration::Milan));
    let t = c.reported_tcb;
    assert_eq!((t.bootloader, t.tee, t.snp, t.microcode), (4, 0, 24, 217));
    assert!(hex::encode(c.measurement).starts_with("8922ebbd"));
    assert!(hex::encode(c.measurement).ends_with("7bf0"));
    // Also with an explicitly supplied ASVK/ARK.
    verify_snp(
        &data("trustee/test-vlek-report.bin"),
        &data("trustee/test-vlek.der"),
        &milan_chain(),
        NOW,
    )
    .unwrap();
}

#[test]
fn vlek_report_refused_after_certificate_expiry() {
    let err = verify_snp(
        &data("trustee/test-vlek-report.bin"),
        &data("trustee/test-vlek.der"),
        &[],
        AFTER_VLEK,
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::CertificateChain { ref reason } if reason.contains("SEV-VLEK not valid")),
        "{err:?}"
    );
}

#[test]
fn vcek_refused_before_its_window() {
    let err = verify_snp(
        &data("trustee/test-report.bin"),
        &data("trustee/test-vcek.der"),
        &[],
        BEFORE_VCEKS,
    )
    .unwrap_err();
    assert!(matches!(err, Error::CertificateChain { ref reason } if reason.contains("not valid")));
}

#[test]
fn vlek_certificate_cannot_sign_a_vcek_report() {
    let err = verify_snp(
        &data("trustee/test-report.bin"),
        &data("trustee/test-vlek.der"),
        &[],
        NOW,
    )
    .unwrap_err();
    assert!(matches!(err, Error::CertificateChain { .. }), "{err:?}");
}

#[test]
fn virtee_milan_report_verifies() {
    let chain = vec![data("virtee-sev/cert_chain_milan")];
    let v = verify_snp(
        &virtee_report(),
        &data("virtee-sev/vcek_milan.der"),
        &chain,
        NOW,
    )
    .unwrap();
    assert_eq!(
        hex::encode(v.claims.measurement),
        "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d\
         3e1a0dc39b2c60bd95b9c480cd81841f"
    );
    assert!(hex::encode(v.claims.report_data).starts_with("d447b55d"));
    assert_eq!(v.claims.policy, 0x30000);
}

#[test]
fn virtee_byte_21_flipped_fails() {
    let mut report = virtee_report();
    report[21] ^= 0x80;
    let err = verify_snp(&report, &data("virtee-sev/vcek_milan.der"), &[], NOW).unwrap_err();
    assert!(matches!(err, Error::SignatureInvalid { .. }), "{err:?}");
}

#[test]
fn virtee_vcek_byte_40_flipped_fails_chain() {
    let mut vcek = data("virtee-sev/vcek_milan.der");
    vcek[40] ^= 0xff;
    let err = verify_snp(&virtee_report(), &vcek, &[], NOW).unwrap_err();
    assert!(
        matches!(err, Error::CertificateChain { ref reason } if reason.contains("does not chain")),
        "{err:?}"
    );
}

#[test]
fn chip_id_must_match_vcek_hwid() {
    // Same TCB (3/0/8/115), different chip: the trustee VCEK does not vouch for virtee's chip.
    let err = verify_snp(&virtee_report(), &data("trustee/test-vcek.der"), &[], NOW).unwrap_err();
    assert!(
        matches!(err, Error::TcbMismatch { ref reason } if reason.contains("hwID")),
        "{err:?}"
    );
}

#[test]
fn synthetic_vceks_parse_but_do_not_chain() {
    for name in [
        "trustee/test-vcek-invalid-legacy.der",
        "trustee/test-vcek-invalid-new.der",
    ] {
        let der = data(name);
        let ext = parse_vek_extensions(&der).unwrap();
        let hw_id = ext.hw_id.expect("hwID present");
        assert_eq!(hw_id.len(), 64, "{name}");
        assert_eq!(&hw_id[..4], &[0, 1, 2, 3], "{name}");
        let err = verify_snp(&data("trustee/test-report.bin"), &der, &[], NOW).unwrap_err();
        assert!(
            matches!(err, Error::CertificateChain { .. }),
            "{name}: {err:?}"
        );
    }
}

#[test]
fn truncated_and_extended_reports_are_malformed() {
    let report = data("trustee/test-report.bin");
    let vcek = data("trustee/test-vcek.der");
    for len in [0, 4, 0x2A0, report.len() - 1] {
        let err = verify_snp(&report[..len], &vcek, &[], NOW).unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "len {len}: {err:?}");
        assert!(matches!(
            parse_snp_report(&report[..len]),
            Err(Error::Malformed { .. })
        ));
    }
    let mut longer = report.clone();
    longer.push(0);
    assert!(matches!(
        verify_snp(&longer, &vcek, &[], NOW),
        Err(Error::Malformed { .. })
    ));
}

#[test]
fn unknown_version_and_signer_are_unsupported() {
    let mut report = data("trustee/test-report.bin");
    report[0] = 1;
    assert!(matches!(
        parse_snp_report(&report),
        Err(Error::Unsupported(_))
    ));
    let mut report = data("trustee/test-report.bin");
    report[0x48] |= 0b111 << 2;
    assert!(matches!(
        parse_snp_report(&report),
        Err(Error::Unsupported(_))
    ));
}

#[test]
fn wrong_generation_ark_is_refused() {
    let genoa = vec![data("amd_ca/genoa_ask_ark_asvk.pem")];
    let err = verify_snp(
        &data("trustee/test-report.bin"),
        &data("trustee/test-vcek.der"),
        &genoa,
        NOW,
    )
    .unwrap_err();
    assert!(matches!(err, Error::CertificateChain { .. }), "{err:?}");
}

#[test]
fn unpinned_root_is_refused() {
    let other_root = std::fs::read(format!(
        "{}/../../testdata/nitro/aws_nitro_root_G1.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let err = verify_snp(
        &data("trustee/test-report.bin"),
        &data("trustee/test-vcek.der"),
        &[other_root],
        NOW,
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::CertificateChain { ref reason } if reason.contains("not a pinned")),
        "{err:?}"
    );
}

#[test]
fn turin_vcek_chains_to_turin_ark() {
    let vcek = data("virtee-sev/vcek_turin.der");
    let ext = parse_vek_extensions(&vcek).unwrap();
    assert_eq!(
        (ext.fmc, ext.bootloader, ext.tee, ext.snp, ext.microcode),
        (Some(0), 0, 0, 0, 9)
    );
    assert_eq!(
        ext.hw_id.as_deref().map(hex::encode).as_deref(),
        Some("1e550a8ee5cf9f4d")
    );
    // No Turin report exists: offering the Milan report proves the chain passed (Turin ARK,
    // supplied chain) because the failure is the TCB comparison that follows it.
    let chain = vec![data("virtee-sev/cert_chain_turin")];
    let err = verify_snp(&virtee_report(), &vcek, &chain, NOW).unwrap_err();
    assert!(matches!(err, Error::TcbMismatch { .. }), "{err:?}");
}

#[test]
fn pinned_arks_match_sev_builtin_and_vendored_copies() {
    for (generation, name) in [
        (SnpGeneration::Milan, "milan"),
        (SnpGeneration::Genoa, "genoa"),
        (SnpGeneration::Turin, "turin"),
    ] {
        let pin = pinned_ark_fingerprint(generation).unwrap();
        let sev_der = sev_builtin_ark_der(generation).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&sev_der)),
            pin,
            "{name}: sev builtin"
        );
        let pem = data(&format!("amd_ca/virtee_{name}_ark.pem"));
        let cert = x509_cert::Certificate::load_pem_chain(&pem).unwrap();
        let der = der::Encode::to_der(&cert[0]).unwrap();
        assert_eq!(hex::encode(Sha256::digest(&der)), pin, "{name}: vendored");
    }
}

#[test]
fn parse_without_verification_matches_expected_results() {
    let c = parse_snp_report(&data("trustee/test-vlek-report.bin")).unwrap();
    assert_eq!(c.signer, SnpSigner::Vlek);
    assert_eq!(c.guest_svn, 0);
    assert!(hex::encode(c.report_data).starts_with("819770b7"));
}
