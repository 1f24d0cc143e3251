//! The Nitro certificate path: leaf → cabundle intermediates → AWS Nitro Enclaves Root-G1,
//! pinned by SHA-256. Every link is ECDSA P-384 with SHA-384.

use der::{Decode, Encode};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::der::asn1::ObjectIdentifier;

use crate::ecdsa::P384Key;
use crate::x509::check_validity;
use crate::{Error, UnixTime};

/// SHA-256 of the DER of AWS Nitro Enclaves Root-G1.
pub const AWS_NITRO_ROOT_G1_SHA256: &str =
    "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b";

/// The root, as AWS publishes it.
const AWS_NITRO_ROOT_G1_PEM: &[u8] = include_bytes!("aws_nitro_root_G1.pem");

const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");

fn chain_err(reason: impl Into<String>) -> Error {
    Error::CertificateChain {
        reason: reason.into(),
    }
}

/// The built-in root's DER, checked against the pin.
pub fn aws_nitro_root_der() -> Result<Vec<u8>, Error> {
    let certs = Certificate::load_pem_chain(AWS_NITRO_ROOT_G1_PEM)
        .map_err(|e| Error::Internal(format!("built-in Nitro root: {e}")))?;
    let der = certs
        .first()
        .ok_or_else(|| Error::Internal("built-in Nitro root: empty PEM".into()))?
        .to_der()
        .map_err(|e| Error::Internal(format!("built-in Nitro root: {e}")))?;
    if hex::encode(Sha256::digest(&der)) != AWS_NITRO_ROOT_G1_SHA256 {
        return Err(Error::Internal(
            "built-in Nitro root does not match its pin".into(),
        ));
    }
    Ok(der)
}

fn parse(der: &[u8], what: &str) -> Result<Certificate, Error> {
    Certificate::from_der(der).map_err(|e| Error::Malformed {
        what: "Nitro certificate",
        reason: format!("{what}: {e}"),
    })
}

fn name(cert: &Certificate) -> String {
    cert.tbs_certificate.subject.to_string()
}

/// ECDSA P-384/SHA-384 signature of `issuer` over `subject`, with matching names.
fn check_link(issuer: &Certificate, subject: &Certificate) -> Result<(), Error> {
    if subject.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return Err(chain_err(format!(
            "{} is not issued by {}",
            name(subject),
            name(issuer)
        )));
    }
    if subject.signature_algorithm.oid != ECDSA_WITH_SHA384 {
        return Err(chain_err(format!(
            "{}: signature algorithm is not ES384",
            name(subject)
        )));
    }
    let key = public_key(issuer)?;
    let tbs = subject
        .tbs_certificate
        .to_der()
        .map_err(|e| Error::Internal(format!("re-encoding TBS: {e}")))?;
    if key.verify_der(&tbs, subject.signature.raw_bytes()) {
        Ok(())
    } else {
        Err(chain_err(format!(
            "{}: signature by {} invalid",
            name(subject),
            name(issuer)
        )))
    }
}

/// The certificate's P-384 public key.
pub(crate) fn public_key(cert: &Certificate) -> Result<P384Key, Error> {
    let bits = cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    P384Key::from_sec1(bits)
        .ok_or_else(|| chain_err(format!("{}: public key is not P-384", name(cert))))
}

/// Verifies leaf ← cabundle[n-1] ← … ← cabundle[0] = pinned root, all valid at `now`.
/// Returns the leaf and the earliest notAfter on the path.
pub(crate) fn verify_chain(
    leaf_der: &[u8],
    cabundle: &[Vec<u8>],
    root_der: &[u8],
    now: UnixTime,
) -> Result<(Certificate, UnixTime), Error> {
    let Some((first, intermediates)) = cabundle.split_first() else {
        return Err(chain_err("empty cabundle"));
    };
    if first.as_slice() != root_der {
        return Err(chain_err(
            "cabundle[0] is not the pinned AWS Nitro Enclaves root",
        ));
    }
    let mut path = vec![parse(root_der, "root")?];
    for (i, der) in intermediates.iter().enumerate() {
        path.push(parse(der, &format!("cabundle[{}]", i.saturating_add(1)))?);
    }
    path.push(parse(leaf_der, "leaf")?);
    let mut valid_until = i64::MAX;
    if let Some(root) = path.first() {
        check_link(root, root)?;
    }
    for pair in path.windows(2) {
        if let [issuer, subject] = pair {
            check_link(issuer, subject)?;
        }
    }
    for cert in &path {
        valid_until = valid_until.min(check_validity(cert, &name(cert), now)?);
    }
    let leaf = path
        .pop()
        .ok_or_else(|| Error::Internal("empty path".into()))?;
    Ok((leaf, valid_until))
}
