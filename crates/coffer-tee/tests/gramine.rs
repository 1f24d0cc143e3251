#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
//! `GramineSource` against a directory imitating Gramine's `/dev/attestation`.

use std::path::Path;

use coffer_tee::gramine::GramineSource;
use coffer_tee::{Error, Evidence, EvidenceSource, TeeKind};

const SGX_QUOTE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/sgx_dcap/dcap-qvl/sgx_quote"
);

fn recorded_quote() -> (Vec<u8>, [u8; 64]) {
    let quote = std::fs::read(SGX_QUOTE).unwrap();
    let report_data = coffer_attest::parse_sgx_quote(&quote).unwrap().report_data;
    (quote, report_data)
}

/// A directory laid out as Gramine's `/dev/attestation`, serving `quote`.
fn imitation(attestation_type: &str, quote: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "attestation_type", attestation_type.as_bytes());
    write(dir.path(), "user_report_data", b"");
    write(dir.path(), "quote", quote);
    dir
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[test]
fn dcap_quote_carrying_the_report_data() {
    let (quote, report_data) = recorded_quote();
    let dir = imitation("dcap\n", &quote);
    let source = GramineSource::with_root(dir.path());
    assert_eq!(source.tee(), TeeKind::Sgx);
    assert_eq!(source.attestation_type().unwrap(), "dcap");

    let evidence = source.evidence(&report_data).unwrap();
    assert_eq!(evidence, Evidence::Sgx(quote));
    assert_eq!(
        std::fs::read(dir.path().join("user_report_data")).unwrap(),
        report_data
    );
}

#[test]
fn default_root_is_dev_attestation() {
    assert_eq!(GramineSource::new().root(), Path::new("/dev/attestation"));
}

#[test]
fn quote_for_other_report_data_is_refused() {
    let (quote, mut report_data) = recorded_quote();
    report_data[0] ^= 1;
    let dir = imitation("dcap", &quote);
    let err = GramineSource::with_root(dir.path())
        .evidence(&report_data)
        .unwrap_err();
    match err {
        Error::Device { backend, reason } => {
            assert_eq!(backend, "gramine");
            assert!(reason.contains("user_report_data"), "{reason}");
        }
        other => panic!("expected a device error, got {other:?}"),
    }
    // The request was still made with our report data.
    assert_eq!(
        std::fs::read(dir.path().join("user_report_data")).unwrap(),
        report_data
    );
}

#[test]
fn attestation_types_other_than_dcap_are_unsupported() {
    let (quote, report_data) = recorded_quote();
    for kind in ["none", "epid\n", ""] {
        let dir = imitation(kind, &quote);
        let err = GramineSource::with_root(dir.path())
            .evidence(&report_data)
            .unwrap_err();
        match err {
            Error::Unsupported(reason) => {
                assert!(reason.contains(&format!("{:?}", kind.trim())), "{reason}")
            }
            other => panic!("expected unsupported for {kind:?}, got {other:?}"),
        }
        // Nothing was requested.
        assert!(
            std::fs::read(dir.path().join("user_report_data"))
                .unwrap()
                .is_empty()
        );
    }
}

#[test]
fn missing_directory_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("attestation");
    let err = GramineSource::with_root(&root)
        .evidence(&[0; 64])
        .unwrap_err();
    match err {
        Error::Io { path, source } => {
            assert_eq!(path, root.join("attestation_type"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn missing_user_report_data_is_not_created() {
    let (quote, report_data) = recorded_quote();
    let dir = imitation("dcap", &quote);
    std::fs::remove_file(dir.path().join("user_report_data")).unwrap();
    let err = GramineSource::with_root(dir.path())
        .evidence(&report_data)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Io { path, .. } if path.ends_with("user_report_data")),
        "{err:?}"
    );
    assert!(!dir.path().join("user_report_data").exists());
}

#[test]
fn truncated_or_garbage_quotes_are_errors() {
    let (quote, report_data) = recorded_quote();
    let mut candidates: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"garbage".to_vec(),
        vec![0xff; 4096],
        quote[..48].to_vec(),
        quote[..quote.len() / 2].to_vec(),
        quote[..quote.len() - 1].to_vec(),
    ];
    // A TDX quote where an SGX one is expected.
    candidates.push(
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/tdx/dcap-qvl/tdx_quote"
        ))
        .unwrap(),
    );
    for bytes in candidates {
        let dir = imitation("dcap", &bytes);
        let err = GramineSource::with_root(dir.path())
            .evidence(&report_data)
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Attest(
                    coffer_attest::Error::Malformed { .. } | coffer_attest::Error::WrongTee { .. }
                ) | Error::Device { .. }
            ),
            "{} bytes: {err:?}",
            bytes.len()
        );
    }
}

#[test]
fn oversized_quote_is_refused_without_reading_it_all() {
    let (_, report_data) = recorded_quote();
    let dir = imitation("dcap", &vec![0u8; 64 * 1024 + 1]);
    let err = GramineSource::with_root(dir.path())
        .evidence(&report_data)
        .unwrap_err();
    match err {
        Error::Device { reason, .. } => assert!(reason.contains("longer than"), "{reason}"),
        other => panic!("expected a device error, got {other:?}"),
    }
}
