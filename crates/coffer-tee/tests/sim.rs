//! The sim backend: its platform key on disk, and evidence that coffer-attest verifies.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use coffer_attest::sim::measure_file;
use coffer_attest::{Evidence, Verifier};
use coffer_tee::EvidenceSource;
use coffer_tee::sim::{PLATFORM_KEY_FILE, PLATFORM_PUB_FILE, SimPlatform, SimSource};

#[test]
fn platform_key_is_created_once_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let first = SimPlatform::load_or_create(dir.path()).unwrap();
    let again = SimPlatform::load_or_create(dir.path()).unwrap();
    assert_eq!(first.public_key(), again.public_key());
    let published = std::fs::read_to_string(dir.path().join(PLATFORM_PUB_FILE)).unwrap();
    assert_eq!(published.trim(), hex::encode(first.public_key()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(PLATFORM_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Two homes, two platforms.
    let other = tempfile::tempdir().unwrap();
    assert_ne!(
        SimPlatform::load_or_create(other.path())
            .unwrap()
            .public_key(),
        first.public_key()
    );
}

#[test]
fn corrupt_platform_key_is_an_error_not_a_new_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(PLATFORM_KEY_FILE), "not hex\n").unwrap();
    assert!(SimPlatform::load_or_create(dir.path()).is_err());
    std::fs::write(dir.path().join(PLATFORM_KEY_FILE), "abcd\n").unwrap();
    assert!(SimPlatform::load_or_create(dir.path()).is_err());
    assert!(!dir.path().join(PLATFORM_PUB_FILE).exists());
}

#[test]
fn evidence_measures_the_running_executable_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let platform = SimPlatform::load_or_create(dir.path()).unwrap();
    let root = platform.public_key();
    let source = SimSource::for_current_exe(platform).unwrap();
    let exe = std::env::current_exe().unwrap();
    assert_eq!(source.measurement(), measure_file(&exe).unwrap());

    let ev = source.evidence(&[0xab; 64]).unwrap();
    assert!(matches!(ev, Evidence::Sim(_)));
    let v = Verifier::new().with_sim_root(root).verify(&ev, 0).unwrap();
    assert_eq!(v.claims.report_data(), [0xab; 64]);
    assert!(!v.claims.debug());
    assert_eq!(
        v.claims.measurements()["measurement"],
        source.measurement().to_vec()
    );
    let debug = source.debug(true).evidence(&[0; 64]).unwrap();
    let v = Verifier::new()
        .with_sim_root(root)
        .verify(&debug, 0)
        .unwrap();
    assert!(v.claims.debug());
}
