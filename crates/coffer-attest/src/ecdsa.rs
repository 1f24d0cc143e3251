//! ECDSA P-384 with SHA-384 verification through aws-lc-rs, for the verifiers that check
//! signatures themselves (SEV-SNP reports, Nitro documents and their certificate chains).
//! aws-lc-rs does this about ten times faster than a portable implementation.

use aws_lc_rs::signature::{ECDSA_P384_SHA384_ASN1, ECDSA_P384_SHA384_FIXED, UnparsedPublicKey};

/// An uncompressed SEC1 P-384 point (`04 ‖ X ‖ Y`). The point itself is validated by
/// aws-lc-rs at verification time: an invalid point verifies nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct P384Key(Vec<u8>);

impl P384Key {
    /// `None` unless `sec1` has the shape of an uncompressed P-384 point.
    pub(crate) fn from_sec1(sec1: &[u8]) -> Option<Self> {
        (sec1.len() == 97 && sec1.first() == Some(&0x04)).then(|| Self(sec1.to_vec()))
    }

    /// Verifies a DER (X.509) signature over `message`.
    pub(crate) fn verify_der(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, &self.0)
            .verify(message, signature)
            .is_ok()
    }

    /// Verifies a fixed-width `r ‖ s` (48 + 48 bytes, big-endian) signature over `message`.
    pub(crate) fn verify_fixed(&self, message: &[u8], signature: &[u8]) -> bool {
        signature.len() == 96
            && UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, &self.0)
                .verify(message, signature)
                .is_ok()
    }
}
