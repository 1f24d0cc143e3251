#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
//! `TsmSource` against a directory imitating configfs-tsm.
//!
//! The imitation ("fake kernel") is deterministic: a test prepares an entry directory with the
//! attributes the kernel would provide, but makes `outblob` a FIFO. The backend writes `inblob`
//! and then opens `outblob` for reading, which blocks until the fake kernel opens the FIFO for
//! writing; only then does the fake kernel look at `inblob`, update `generation` and write the
//! report, as the real kernel does when `outblob` is read. No sleeps, no polling.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use coffer_tee::tsm::{CertKind, TsmSource, parse_snp_cert_table};
use coffer_tee::{Error, Evidence, EvidenceSource, TeeKind};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata");

fn testdata(path: &str) -> Vec<u8> {
    std::fs::read(Path::new(TESTDATA).join(path)).unwrap()
}

fn tdx_quote() -> (Vec<u8>, [u8; 64]) {
    let quote = testdata("tdx/dcap-qvl/tdx_quote");
    let report_data = coffer_attest::parse_tdx_quote(&quote).unwrap().report_data;
    (quote, report_data)
}

fn snp_report() -> (Vec<u8>, [u8; 64]) {
    let report = testdata("sev_snp/trustee/test-report.bin");
    let report_data = coffer_attest::parse_snp_report(&report)
        .unwrap()
        .report_data;
    (report, report_data)
}

/// An SEV certificate table as a host writes it: entries, the all-zero terminator, then the
/// certificates.
fn write_snp_cert_table(entries: &[([u8; 16], &[u8])]) -> Vec<u8> {
    let header = (entries.len() + 1) * 24;
    let mut table = Vec::new();
    let mut body = Vec::new();
    for (guid, der) in entries {
        table.extend_from_slice(guid);
        table.extend_from_slice(&u32::try_from(header + body.len()).unwrap().to_le_bytes());
        table.extend_from_slice(&u32::try_from(der.len()).unwrap().to_le_bytes());
        body.extend_from_slice(der);
    }
    table.extend_from_slice(&[0; 24]);
    table.extend_from_slice(&body);
    table
}

/// A GUID no certificate kind uses.
const OTHER_GUID: [u8; 16] = [0x11; 16];

/// Prepares `dir` as a configfs-tsm entry of `provider` at generation `generation`, with
/// `outblob` a FIFO.
fn prepare_entry(dir: &Path, provider: &str, generation: u64, auxblob: Option<&[u8]>) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("provider"), format!("{provider}\n")).unwrap();
    std::fs::write(dir.join("generation"), format!("{generation}\n")).unwrap();
    std::fs::write(dir.join("inblob"), b"").unwrap();
    if let Some(aux) = auxblob {
        std::fs::write(dir.join("auxblob"), aux).unwrap();
    }
    let status = std::process::Command::new("mkfifo")
        .arg(dir.join("outblob"))
        .status()
        .unwrap();
    assert!(status.success());
}

/// The kernel's side of one request: once the backend opens `outblob`, reads `inblob`, adds
/// `bump` to `generation` and writes `out`. Returns what `inblob` held.
fn serve(dir: &Path, bump: u64, out: Vec<u8>) -> JoinHandle<Vec<u8>> {
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        // Blocks until the backend opens the FIFO for reading, which it does after writing
        // (and closing) inblob.
        let mut outblob = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("outblob"))
            .unwrap();
        let inblob = std::fs::read(dir.join("inblob")).unwrap();
        let generation: u64 = std::fs::read_to_string(dir.join("generation"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::fs::write(dir.join("generation"), format!("{}\n", generation + bump)).unwrap();
        outblob.write_all(&out).unwrap();
        inblob
    })
}

fn entry_dir() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let entry = root.path().join("launcher-made");
    (root, entry)
}

fn device_reason(err: Error) -> String {
    match err {
        Error::Device { backend, reason } => {
            assert_eq!(backend, "tsm");
            reason
        }
        other => panic!("expected a device error, got {other:?}"),
    }
}

#[test]
fn tdx_quote_through_an_existing_entry() {
    let (quote, report_data) = tdx_quote();
    let (_root, entry) = entry_dir();
    prepare_entry(&entry, "tdx_guest", 7, None);
    let source = TsmSource::with_entry_dir(TeeKind::Tdx, &entry).unwrap();
    assert_eq!(source.tee(), TeeKind::Tdx);

    let kernel = serve(&entry, 1, quote.clone());
    let evidence = source.evidence(&report_data).unwrap();
    assert_eq!(kernel.join().unwrap(), report_data);
    assert_eq!(evidence, Evidence::Tdx(quote.clone()));
    // An existing entry is left in place, and can serve the next request.
    assert!(entry.is_dir());
    std::fs::remove_file(entry.join("outblob")).unwrap();
    prepare_entry(&entry, "tdx_guest", 8, None);
    let kernel = serve(&entry, 1, quote.clone());
    assert_eq!(source.evidence(&report_data).unwrap(), Evidence::Tdx(quote));
    kernel.join().unwrap();
}

#[test]
fn snp_report_with_its_vcek_from_auxblob() {
    let (report, report_data) = snp_report();
    let vcek = testdata("sev_snp/trustee/test-vcek.der");
    // An unknown entry first: skipped; the VCEK still comes out first.
    let aux = write_snp_cert_table(&[
        (OTHER_GUID, b"not a certificate"),
        (CertKind::Vcek.guid_bytes(), &vcek),
    ]);
    let (_root, entry) = entry_dir();
    prepare_entry(&entry, "sev_guest", 0, Some(&aux));
    let source = TsmSource::with_entry_dir(TeeKind::Snp, &entry).unwrap();
    assert_eq!(source.tee(), TeeKind::Snp);

    let kernel = serve(&entry, 1, report.clone());
    let evidence = source.evidence(&report_data).unwrap();
    assert_eq!(kernel.join().unwrap(), report_data);
    let Evidence::Snp { report: got, certs } = evidence else {
        panic!("expected SNP evidence, got {evidence:?}");
    };
    assert_eq!(got, report);
    assert_eq!(certs, vec![vcek]);
    coffer_attest::verify_snp_with_certs(&got, &certs, 1_748_736_000).unwrap();
}

#[test]
fn snp_report_without_auxblob_has_no_certificates() {
    let (report, report_data) = snp_report();
    let (_root, entry) = entry_dir();
    prepare_entry(&entry, "sev_guest", 0, None);
    let source = TsmSource::with_entry_dir(TeeKind::Snp, &entry).unwrap();
    let kernel = serve(&entry, 1, report.clone());
    let evidence = source.evidence(&report_data).unwrap();
    kernel.join().unwrap();
    assert_eq!(
        evidence,
        Evidence::Snp {
            report,
            certs: Vec::new()
        }
    );
}

#[test]
fn output_for_other_report_data_is_refused() {
    let (quote, mut report_data) = tdx_quote();
    report_data[63] ^= 0x80;
    let (_root, entry) = entry_dir();
    prepare_entry(&entry, "tdx_guest", 0, None);
    let source = TsmSource::with_entry_dir(TeeKind::Tdx, &entry).unwrap();
    let kernel = serve(&entry, 1, quote);
    let result = source.evidence(&report_data);
    let reason = device_reason(result.unwrap_err());
    assert!(reason.contains("report data"), "{reason}");
    assert_eq!(kernel.join().unwrap(), report_data);
}

#[test]
fn generation_must_advance_by_exactly_one() {
    let (quote, report_data) = tdx_quote();
    for bump in [0, 2] {
        let (_root, entry) = entry_dir();
        prepare_entry(&entry, "tdx_guest", 41, None);
        let source = TsmSource::with_entry_dir(TeeKind::Tdx, &entry).unwrap();
        let kernel = serve(&entry, bump, quote.clone());
        let result = source.evidence(&report_data);
        let reason = device_reason(result.unwrap_err());
        assert!(reason.contains("another writer raced"), "{reason}");
        kernel.join().unwrap();
    }
}

#[test]
fn generation_at_its_maximum_is_an_error_not_an_overflow() {
    let (quote, report_data) = tdx_quote();
    let (_root, entry) = entry_dir();
    prepare_entry(&entry, "tdx_guest", u64::MAX, None);
    let source = TsmSource::with_entry_dir(TeeKind::Tdx, &entry).unwrap();
    let kernel = serve(&entry, 0, quote);
    let result = source.evidence(&report_data);
    let reason = device_reason(result.unwrap_err());
    assert!(reason.contains("generation"), "{reason}");
    kernel.join().unwrap();
}

#[test]
fn garbage_generation_is_an_error() {
    let (_root, entry) = entry_dir();
    prepare_entry(&entry, "tdx_guest", 0, None);
    std::fs::write(entry.join("generation"), "seven\n").unwrap();
    let source = TsmSource::with_entry_dir(TeeKind::Tdx, &entry).unwrap();
    // Refused before inblob is written: no kernel needed.
    let reason = device_reason(source.evidence(&[0; 64]).unwrap_err());
    assert!(reason.contains("generation"), "{reason}");
}

#[test]
fn unknown_provider_is_unsupported() {
    let (_root, entry) = entry_dir();
    prepare_entry(&entry, "arm_cca_guest", 0, None);
    let source = TsmSource::with_entry_dir(TeeKind::Tdx, &entry).unwrap();
    match source.evidence(&[0; 64]).unwrap_err() {
        Error::Unsupported(reason) => assert!(reason.contains("arm_cca_guest"), "{reason}"),
        other => panic!("expected unsupported, got {other:?}"),
    }
    // Nothing was requested.
    assert!(std::fs::read(entry.join("inblob")).unwrap().is_empty());
}

#[test]
fn provider_of_another_kind_is_unsupported() {
    let (_root, entry) = entry_dir();
    prepare_entry(&entry, "sev_guest", 0, None);
    let source = TsmSource::with_entry_dir(TeeKind::Tdx, &entry).unwrap();
    match source.evidence(&[0; 64]).unwrap_err() {
        Error::Unsupported(reason) => assert!(reason.contains("sev_guest"), "{reason}"),
        other => panic!("expected unsupported, got {other:?}"),
    }
    assert!(std::fs::read(entry.join("inblob")).unwrap().is_empty());
}

#[test]
fn only_tdx_and_snp_sources_exist() {
    for tee in [TeeKind::Sgx, TeeKind::Nitro, TeeKind::Sim] {
        assert!(matches!(
            TsmSource::with_root(tee, "/nonexistent"),
            Err(Error::Unsupported(_))
        ));
        assert!(matches!(
            TsmSource::with_entry_dir(tee, "/nonexistent"),
            Err(Error::Unsupported(_))
        ));
    }
    assert!(TsmSource::new(TeeKind::Snp).is_ok());
}

#[test]
fn garbage_outblob_is_an_error() {
    let (quote, report_data) = tdx_quote();
    for out in [Vec::new(), b"garbage".to_vec(), quote[..100].to_vec()] {
        let (_root, entry) = entry_dir();
        prepare_entry(&entry, "tdx_guest", 0, None);
        let source = TsmSource::with_entry_dir(TeeKind::Tdx, &entry).unwrap();
        let kernel = serve(&entry, 1, out);
        let result = source.evidence(&report_data);
        assert!(
            matches!(
                result,
                Err(Error::Attest(coffer_attest::Error::Malformed { .. }))
            ),
            "{result:?}"
        );
        kernel.join().unwrap();
    }
}

#[test]
fn malformed_auxblob_through_the_backend_is_an_error() {
    let (report, report_data) = snp_report();
    let mut aux = write_snp_cert_table(&[(CertKind::Vcek.guid_bytes(), b"certificate")]);
    // Point the VCEK past the end.
    aux[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    let (_root, entry) = entry_dir();
    prepare_entry(&entry, "sev_guest", 0, Some(&aux));
    let source = TsmSource::with_entry_dir(TeeKind::Snp, &entry).unwrap();
    let kernel = serve(&entry, 1, report);
    let result = source.evidence(&report_data);
    let reason = device_reason(result.unwrap_err());
    assert!(reason.contains("outside"), "{reason}");
    kernel.join().unwrap();
}

/// The path through `mkdir`: a plain directory gets none of configfs's attributes, so the
/// request fails at the first read — and the entry the backend made is gone afterwards.
#[test]
fn created_entry_is_removed_after_a_failed_request() {
    let root = tempfile::tempdir().unwrap();
    let source = TsmSource::with_root(TeeKind::Tdx, root.path()).unwrap();
    for _ in 0..2 {
        let err = source.evidence(&[0; 64]).unwrap_err();
        let Error::Io { path, source: e } = err else {
            panic!("expected an I/O error, got {err:?}");
        };
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(path.file_name().unwrap(), "provider");
        let entry = path.parent().unwrap();
        assert_eq!(entry.parent().unwrap(), root.path());
        let name = entry.file_name().unwrap().to_str().unwrap();
        let parts: Vec<&str> = name.split('-').collect();
        assert_eq!(parts.len(), 4, "{name}");
        assert_eq!(parts[0], "coffer");
        assert_eq!(parts[1], std::process::id().to_string());
        assert!(parts[2].parse::<u64>().is_ok(), "{name}");
        assert_eq!(parts[3].len(), 16, "{name}");
        assert!(!entry.exists());
    }
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
}

#[test]
fn missing_root_is_an_io_error() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("tsm/report");
    let source = TsmSource::with_root(TeeKind::Snp, &missing).unwrap();
    let err = source.evidence(&[0; 64]).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path, .. } if path.starts_with(&missing)),
        "{err:?}"
    );
}

#[test]
fn cert_table_parses_known_entries_in_table_order() {
    let table = write_snp_cert_table(&[
        (CertKind::Ark.guid_bytes(), b"ark"),
        (OTHER_GUID, b"other"),
        (CertKind::Ask.guid_bytes(), b"ask"),
        (CertKind::Vlek.guid_bytes(), b"vlek"),
    ]);
    assert_eq!(
        parse_snp_cert_table(&table).unwrap(),
        vec![
            (CertKind::Ark, b"ark".to_vec()),
            (CertKind::Ask, b"ask".to_vec()),
            (CertKind::Vlek, b"vlek".to_vec()),
        ]
    );
    assert!(parse_snp_cert_table(&[]).unwrap().is_empty());
    assert!(parse_snp_cert_table(&[0; 24]).unwrap().is_empty());
}

#[test]
fn cert_table_guids_are_the_ghcb_ones() {
    // RFC 4122 byte order of 63da758d-e664-4564-adc5-f4b93be8accd.
    assert_eq!(
        CertKind::Vcek.guid_bytes(),
        [
            0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64, 0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8,
            0xac, 0xcd
        ]
    );
    // The mixed-endian (EFI) layout of the same GUID is recognised too.
    let mixed = [
        0x8d, 0x75, 0xda, 0x63, 0x64, 0xe6, 0x64, 0x45, 0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac,
        0xcd,
    ];
    assert_eq!(CertKind::from_guid_bytes(&mixed), Some(CertKind::Vcek));
    for kind in CertKind::ALL {
        assert_eq!(CertKind::from_guid_bytes(&kind.guid_bytes()), Some(kind));
    }
    assert_eq!(CertKind::from_guid_bytes(&OTHER_GUID), None);
}

#[test]
fn malformed_cert_tables_are_errors() {
    let vcek = CertKind::Vcek.guid_bytes();
    let good = write_snp_cert_table(&[(vcek, b"certificate")]);

    let mut out_of_range = good.clone();
    out_of_range[16..20].copy_from_slice(&1000u32.to_le_bytes());
    let mut overflowing = good.clone();
    overflowing[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    overflowing[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut too_long = good.clone();
    too_long[20..24].copy_from_slice(&12u32.to_le_bytes());
    let mut empty_cert = good.clone();
    empty_cert[20..24].copy_from_slice(&0u32.to_le_bytes());
    let mut bad_terminator = good.clone();
    bad_terminator[24 + 16] = 1;
    let duplicate = write_snp_cert_table(&[(vcek, b"one"), (vcek, b"two")]);

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("offset out of range", out_of_range),
        ("offset + length overflows", overflowing),
        ("length past the end", too_long),
        ("empty certificate", empty_cert),
        ("zero GUID with an offset", bad_terminator),
        ("duplicate VCEK", duplicate),
        ("no terminator", good[..24].to_vec()),
        ("truncated entry", good[..30].to_vec()),
        ("truncated first entry", good[..10].to_vec()),
    ];
    for (what, table) in cases {
        let err = parse_snp_cert_table(&table).unwrap_err();
        assert!(
            matches!(err, Error::Device { backend: "tsm", .. }),
            "{what}: {err:?}"
        );
    }
}

#[test]
fn cert_table_parser_does_not_panic_on_arbitrary_bytes() {
    let vcek = testdata("sev_snp/trustee/test-vcek.der");
    let good = write_snp_cert_table(&[
        (CertKind::Vcek.guid_bytes(), &vcek),
        (CertKind::Ask.guid_bytes(), b"ask"),
    ]);
    // Every truncation.
    for len in 0..good.len() {
        let _ = parse_snp_cert_table(&good[..len]);
    }
    // Every single-byte corruption of the entries, with a few values.
    for i in 0..72 {
        for value in [0x00, 0x01, 0x7f, 0x80, 0xff] {
            let mut table = good.clone();
            table[i] = value;
            let _ = parse_snp_cert_table(&table);
        }
    }
    // Pseudo-random tables (xorshift, fixed seed).
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..2000 {
        let mut table = Vec::new();
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = (state % 200) as usize;
        for _ in 0..len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            table.push((state >> 56) as u8);
        }
        let _ = parse_snp_cert_table(&table);
    }
}
