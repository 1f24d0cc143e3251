//! Nitro verifier against Evervault's recorded attestation documents (see
//! testdata/nitro/PROVENANCE.md).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use base64::Engine;
use coffer_attest::Error;
use coffer_attest::nitro::{parse_nitro_document, verify_nitro};
use coset::cbor::Value;
use coset::{CborSerializable, CoseSign1};
use der::{Decode, Encode};

/// The GA document's leaf window is [2023-09-18T14:37:09Z, 17:37:12Z]; Evervault's CI fakes
/// 15:16:05 and 17:18:00.
const GA_INSIDE: [i64; 2] = [1_695_050_165, 1_695_057_480];
const GA_AFTER: i64 = 1_695_058_633;
const GA_BEFORE: i64 = 1_695_047_828;
/// 2023-01-18T15:15:14Z, inside both certificate-embedded beta documents' windows.
const BETA_CERT_NOW: i64 = 1_674_054_914;

fn path(rel: &str) -> String {
    format!(
        "{}/../../testdata/nitro/evervault/{rel}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn data(rel: &str) -> Vec<u8> {
    std::fs::read(path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn ga_doc() -> Vec<u8> {
    let b64 = String::from_utf8(data("test-data/valid-attestation-doc-base64")).unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap()
}

fn pcr_hex(claims: &coffer_attest::nitro::NitroClaims, i: u8) -> String {
    hex::encode(&claims.pcrs[&i])
}

#[test]
fn ga_document_verifies_inside_its_window() {
    let doc = ga_doc();
    for now in GA_INSIDE {
        let v = verify_nitro(&doc, now).unwrap();
        let c = &v.claims;
        assert_eq!(c.module_id, "i-0918f6c55e3b61d89-enc018aa8b8e2285d13");
        assert_eq!(c.timestamp_ms, 1_695_049_410_860);
        assert_eq!(c.digest, "SHA384");
        assert!(c.debug);
        assert_eq!(c.pcrs.len(), 16);
        assert_eq!(pcr_hex(c, 0), "00".repeat(48));
        assert_eq!(pcr_hex(c, 8), "00".repeat(48));
        assert!(pcr_hex(c, 3).starts_with("4a9329d69c836267"));
        assert!(hex::encode(c.nonce.as_ref().unwrap()).starts_with("bba6bfd51866d2e4"));
        assert_eq!(v.valid_until, 1_695_058_632);
    }
}

#[test]
fn ga_user_data_is_the_tls_certificate_key() {
    let claims = parse_nitro_document(&ga_doc()).unwrap();
    let cert = x509_cert::Certificate::from_der(&data("test-data/valid-certificate.der")).unwrap();
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .unwrap();
    assert_eq!(claims.user_data.as_deref(), Some(spki.as_slice()));
}

#[test]
fn ga_document_refused_outside_its_window() {
    for now in [GA_AFTER, GA_BEFORE] {
        let err = verify_nitro(&ga_doc(), now).unwrap_err();
        assert!(
            matches!(err, Error::CertificateChain { ref reason } if reason.contains("not valid at")),
            "{now}: {err:?}"
        );
    }
}

#[test]
fn flipped_signature_byte_is_refused() {
    let mut doc = ga_doc();
    let last = doc.len() - 1; // the signature is the last field of the COSE array
    doc[last] ^= 0x01;
    let err = verify_nitro(&doc, GA_INSIDE[0]).unwrap_err();
    assert!(matches!(err, Error::SignatureInvalid { .. }), "{err:?}");
}

#[test]
fn flipped_payload_byte_is_refused() {
    let doc = ga_doc();
    let at = doc.windows(8).position(|w| w == b"i-0918f6").unwrap();
    for offset in [at + 3, at + 30] {
        let mut doc = doc.clone();
        doc[offset] ^= 0x01;
        // Still parses: the change is inside a text string.
        parse_nitro_document(&doc).unwrap();
        let err = verify_nitro(&doc, GA_INSIDE[0]).unwrap_err();
        assert!(matches!(err, Error::SignatureInvalid { .. }), "{err:?}");
    }
}

#[test]
fn four_byte_prefix_is_accepted() {
    let mut doc = (ga_doc().len() as u32).to_be_bytes().to_vec();
    doc.extend(ga_doc());
    let v = verify_nitro(&doc, GA_INSIDE[0]).unwrap();
    assert_eq!(v.claims.timestamp_ms, 1_695_049_410_860);
}

#[test]
fn tagged_cose_is_accepted_and_trailing_bytes_are_not() {
    let mut tagged = vec![0xd2]; // CBOR tag 18, COSE_Sign1
    tagged.extend(ga_doc());
    verify_nitro(&tagged, GA_INSIDE[0]).unwrap();
    let mut trailing = ga_doc();
    trailing.push(0);
    let err = verify_nitro(&trailing, GA_INSIDE[0]).unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
}

#[test]
fn truncated_documents_are_typed_errors() {
    let doc = ga_doc();
    for len in [0, 1, 4, 100, doc.len() / 2, doc.len() - 1] {
        let err = verify_nitro(&doc[..len], GA_INSIDE[0]).unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "len {len}: {err:?}");
    }
}

/// Re-encodes the GA document with `cabundle[0]` replaced by `root`.
fn with_cabundle_root(root: Vec<u8>) -> Vec<u8> {
    let mut sign1 = CoseSign1::from_slice(&ga_doc()).unwrap();
    let payload: Value = coset::cbor::de::from_reader(sign1.payload.as_deref().unwrap()).unwrap();
    let Value::Map(mut entries) = payload else {
        panic!("payload not a map")
    };
    for (k, v) in &mut entries {
        if k.as_text() == Some("cabundle") {
            let Value::Array(bundle) = v else {
                panic!("cabundle not an array")
            };
            bundle[0] = Value::Bytes(root.clone());
        }
    }
    let mut out = Vec::new();
    coset::cbor::ser::into_writer(&Value::Map(entries), &mut out).unwrap();
    sign1.payload = Some(out);
    sign1.to_vec().unwrap()
}

#[test]
fn document_chained_to_a_different_root_is_refused() {
    // An AMD root in AWS's place: structurally fine, but not the pinned root.
    let pem = std::fs::read(format!(
        "{}/../../testdata/sev_snp/amd_ca/virtee_milan_ark.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let other = x509_cert::Certificate::load_pem_chain(&pem).unwrap()[0]
        .to_der()
        .unwrap();
    let err = verify_nitro(&with_cabundle_root(other), GA_INSIDE[0]).unwrap_err();
    assert!(
        matches!(err, Error::CertificateChain { ref reason } if reason.contains("pinned")),
        "{err:?}"
    );
    // Control: the same re-encoding with the real root still verifies, so the refusal above
    // is the root's doing, not the re-encoding's.
    let real = coffer_attest::nitro::aws_nitro_root_der().unwrap();
    verify_nitro(&with_cabundle_root(real), GA_INSIDE[0]).unwrap();
}

/// The attestation document Evervault hides in the leftmost label of the longest SAN dNSName.
fn doc_from_cert(rel: &str) -> Vec<u8> {
    let raw = data(rel);
    let der = if raw.starts_with(b"-----BEGIN") {
        x509_cert::Certificate::load_pem_chain(&raw).unwrap()[0]
            .to_der()
            .unwrap()
    } else {
        raw
    };
    let cert = x509_cert::Certificate::from_der(&der).unwrap();
    let san = cert
        .tbs_certificate
        .extensions
        .unwrap()
        .into_iter()
        .find(|e| e.extn_id == const_oid_san())
        .unwrap();
    let names = x509_cert::ext::pkix::SubjectAltName::from_der(san.extn_value.as_bytes()).unwrap();
    let longest = names
        .0
        .iter()
        .filter_map(|n| match n {
            x509_cert::ext::pkix::name::GeneralName::DnsName(d) => Some(d.to_string()),
            _ => None,
        })
        .max_by_key(String::len)
        .unwrap();
    hex::decode(longest.split('.').next().unwrap()).unwrap()
}

fn const_oid_san() -> der::asn1::ObjectIdentifier {
    der::asn1::ObjectIdentifier::new_unwrap("2.5.29.17")
}

#[test]
fn beta_certificate_embedded_documents_match_their_test_specs() {
    let specs = std::fs::read_dir(path("test-specs/beta")).unwrap();
    let mut checked = 0;
    for spec in specs {
        let spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(spec.unwrap().path()).unwrap()).unwrap();
        let doc = doc_from_cert(spec["file"].as_str().unwrap());
        let v = verify_nitro(&doc, BETA_CERT_NOW);
        assert_eq!(
            v.is_ok(),
            spec["isAttestationDocValid"].as_bool().unwrap(),
            "{spec}"
        );
        let claims = v.unwrap().claims;
        let all_match = spec["pcrs"]
            .as_object()
            .unwrap()
            .iter()
            .all(|(name, want)| {
                let i: u8 = name.trim_start_matches("pcr").parse().unwrap();
                pcr_hex(&claims, i) == want.as_str().unwrap()
            });
        assert_eq!(
            all_match,
            spec["shouldPcrsMatch"].as_bool().unwrap(),
            "{spec}"
        );
        checked += 1;
    }
    assert_eq!(checked, 5);
}

#[test]
fn beta_debug_and_non_debug_documents() {
    let non_debug = verify_nitro(
        &doc_from_cert("test-data/beta/non-debug-cert-containing-attestation-document-18-1-23.pem"),
        BETA_CERT_NOW,
    )
    .unwrap();
    assert!(!non_debug.claims.debug);
    assert!(pcr_hex(&non_debug.claims, 0).starts_with("d265a83f"));
    let debug = verify_nitro(
        &doc_from_cert("test-data/beta/debug-mode-cert-containing-attestation-doc-18-1-23.pem"),
        BETA_CERT_NOW,
    )
    .unwrap();
    assert!(debug.claims.debug);
}

#[test]
fn beta_raw_documents_verify_in_their_windows() {
    let v = verify_nitro(
        &data("test-data/beta/valid-attestation-doc-bytes"),
        1_665_651_600,
    )
    .unwrap();
    assert_eq!(
        v.claims.module_id,
        "i-020b6af9246d90e92-enc0183d09086c24190"
    );
    assert!(pcr_hex(&v.claims, 0).starts_with("f4d48b81"));
    assert!(pcr_hex(&v.claims, 8).starts_with("8790eb3c"));
    assert!(!v.claims.debug);
    let d = verify_nitro(
        &data("test-data/beta/debug-mode-attestation-doc-bytes"),
        1_665_583_200,
    )
    .unwrap();
    assert!(d.claims.debug);
    assert_eq!(d.claims.user_data.as_deref(), Some(&b"hello, world!"[..]));
    // A day later both leaf certificates have expired.
    assert!(
        verify_nitro(
            &data("test-data/beta/valid-attestation-doc-bytes"),
            1_665_738_000
        )
        .is_err()
    );
}
