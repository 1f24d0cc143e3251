//! What a computation kind gets to run one job: the job's identity, its manifest and
//! computation, the signed spec, its decrypted-in-place inputs, and where outputs go.

use bytes::Bytes;
use coffer_crypto::SecretKey;
use coffer_manifest::{Computation, Manifest};
use coffer_net::job::{JobSpec, OutputFormat, OutputRef};
use coffer_net::storage::{Storage, digest};
use zeroize::Zeroizing;

use crate::refusal::{Check, Refusal};

/// One input of a job: its dataset name, its ciphertext (whose SHA-256 matched the manifest's
/// pin) and the key the broker released for it.
pub(crate) struct Input {
    pub(crate) dataset: String,
    pub(crate) ciphertext: Bytes,
    pub(crate) key: SecretKey,
}

/// One job as a kind sees it, after it was judged and its keys were released.
pub(crate) struct JobContext<'a> {
    pub(crate) id: &'a coffer_net::JobId,
    pub(crate) manifest: &'a Manifest,
    pub(crate) comp: &'a Computation,
    pub(crate) spec: &'a JobSpec,
    pub(crate) storage: &'a Storage,
}

impl JobContext<'_> {
    /// Encrypts an output to the computation's recipients (age) and stores it as
    /// `results/<job>/<computation>.<suffix>.age`. The plaintext is zeroized once encrypted.
    pub(crate) async fn deliver(
        &self,
        suffix: &str,
        format: OutputFormat,
        plain: Vec<u8>,
        rows: u64,
    ) -> Result<OutputRef, Refusal> {
        let mut recipients = Vec::new();
        for r in &self.comp.recipients {
            let party = self
                .manifest
                .party(r)
                .ok_or_else(|| Check::Internal.because(format!("recipient {r} is not a party")))?;
            recipients.push(
                coffer_crypto::delivery::parse_recipient(&party.doc.recipient)
                    .map_err(|e| Check::Internal.because(format!("recipient {r}: {e}")))?,
            );
        }
        let plain = Zeroizing::new(plain);
        let sealed = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, Refusal> {
            let mut out = Vec::new();
            coffer_crypto::delivery::encrypt_to(&recipients, plain.as_slice(), &mut out)
                .map_err(|e| Check::Internal.because(format!("age: {e}")))?;
            Ok(out)
        })
        .await??;
        let path = format!("results/{}/{}.{suffix}.age", self.id, self.comp.name);
        let stored_digest = digest(&sealed);
        self.storage.put(&path, Bytes::from(sealed)).await?;
        Ok(OutputRef {
            path,
            digest: stored_digest,
            format,
            recipients: self.comp.recipients.clone(),
            rows,
        })
    }
}
