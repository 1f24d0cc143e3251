#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
//! `NitroSource` outside a Nitro enclave.

use coffer_tee::Error;
use coffer_tee::nitro::{NSM_DEVICE, NitroSource};

#[test]
fn open_outside_an_enclave_is_unsupported() {
    if std::path::Path::new(NSM_DEVICE).exists() {
        // Inside a Nitro enclave: nothing to check here.
        return;
    }
    match NitroSource::open() {
        Err(Error::Unsupported(reason)) => {
            assert!(reason.contains("/dev/nsm"), "{reason}");
            assert!(reason.contains("not inside a Nitro enclave"), "{reason}");
        }
        other => panic!("expected unsupported, got {other:?}"),
    }
}
