//! Nitro Enclaves evidence: an attestation document from the Nitro Secure Module (`/dev/nsm`),
//! requested through the `driver` module of AWS's `aws-nitro-enclaves-nsm-api` crate, with the
//! 64 bytes of report data as the document's `user_data`.
//!
//! **Implemented against the crate's documented API only; it has never run inside a Nitro
//! enclave.** The only test here checks that [`NitroSource::open`] reports
//! [`Error::Unsupported`] on a machine without `/dev/nsm`.
//!
//! The device is opened here (so that a missing device is told apart from other failures) and
//! its descriptor is closed when the [`NitroSource`] is dropped; the crate's ioctl wrapper is
//! handed the raw descriptor only for the duration of a request. The kernel driver serialises
//! concurrent requests on one descriptor.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use aws_nitro_enclaves_nsm_api::api::{Request, Response};
use aws_nitro_enclaves_nsm_api::driver::nsm_process_request;

use crate::{Error, Evidence, EvidenceSource, TeeKind};

/// The Nitro Secure Module's device file inside an enclave.
pub const NSM_DEVICE: &str = "/dev/nsm";

const BACKEND: &str = "nitro";

/// Attestation documents from the Nitro Secure Module.
#[derive(Debug)]
pub struct NitroSource {
    /// `/dev/nsm`, open for reading and writing; closed on drop.
    device: File,
}

impl NitroSource {
    /// Opens [`NSM_DEVICE`]. Outside a Nitro enclave (no such file) this is
    /// [`Error::Unsupported`]; any other failure to open it is [`Error::Io`].
    pub fn open() -> Result<Self, Error> {
        let path = Path::new(NSM_DEVICE);
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        {
            Ok(device) => Ok(Self { device }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Unsupported(
                "no Nitro Secure Module (/dev/nsm): not inside a Nitro enclave".into(),
            )),
            Err(e) => Err(Error::io(path, e)),
        }
    }
}

impl EvidenceSource for NitroSource {
    fn tee(&self) -> TeeKind {
        TeeKind::Nitro
    }

    fn evidence(&self, report_data: &[u8; 64]) -> Result<Evidence, Error> {
        let request = Request::Attestation {
            user_data: Some(report_data.to_vec().into()),
            nonce: None,
            public_key: None,
        };
        match nsm_process_request(self.device.as_raw_fd(), request) {
            Response::Attestation { document } => Ok(Evidence::Nitro(document)),
            Response::Error(code) => Err(Error::Device {
                backend: BACKEND,
                reason: format!("attestation request refused: {code:?}"),
            }),
            other => Err(Error::Device {
                backend: BACKEND,
                reason: format!("unexpected answer to an attestation request: {other:?}"),
            }),
        }
    }
}
