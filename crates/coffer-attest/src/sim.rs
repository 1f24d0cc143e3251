//! Coffer's simulated evidence, for development on machines without a TEE. **It proves
//! nothing**: whoever holds the simulated platform key can sign any measurement. Appraisal
//! refuses it unless the policy says `allow_simulation: true`, and every output that rests on it
//! is labelled simulated.
//!
//! Format: a COSE_Sign1 (RFC 9052), `alg` EdDSA (Ed25519), `kid` the platform's 32-byte public
//! key, both in the protected header; the external AAD is [`SIM_EXTERNAL_AAD`]; the payload is a
//! CBOR map
//!
//! ```text
//! { "measurement": bstr .size 48,   ; SHA-384 of the executable
//!   "report_data": bstr .size 64,
//!   "debug":       bool }
//! ```
//!
//! A verifier trusts a platform key only if it was given that key (`--sim-root`).

use std::io::Read;
use std::path::Path;

use coset::cbor::Value;
use coset::{CborSerializable, CoseSign1, CoseSign1Builder, HeaderBuilder, iana};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::Serialize;
use sha2::{Digest, Sha384};

use crate::{Error, UnixTime};

/// Domain separation for the signature: a COSE_Sign1 made for anything else does not verify.
pub const SIM_EXTERNAL_AAD: &[u8] = b"coffer-sim-evidence-v1";

/// Upper bound on a sim evidence document; the real ones are about 250 bytes.
const MAX_LEN: usize = 4096;

/// What simulated evidence claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimClaims {
    /// SHA-384 of the executable that produced the evidence ([`measure_file`]).
    #[serde(serialize_with = "crate::claims::as_hex")]
    pub measurement: [u8; 48],
    #[serde(serialize_with = "crate::claims::as_hex")]
    pub report_data: [u8; 64],
    /// A simulated debug enclave: lets tests exercise the debug refusal.
    pub debug: bool,
    /// The simulated platform key that signed it.
    #[serde(serialize_with = "crate::claims::as_hex")]
    pub platform_key: [u8; 32],
}

fn malformed(reason: impl Into<String>) -> Error {
    Error::Malformed {
        what: "sim evidence",
        reason: reason.into(),
    }
}

/// The sim measurement of an executable: SHA-384 of its bytes.
pub fn measure_file(path: &Path) -> std::io::Result<[u8; 48]> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha384::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        let Some(chunk) = buf.get(..n) else { break };
        if chunk.is_empty() {
            break;
        }
        hasher.update(chunk);
    }
    Ok(hasher.finalize().into())
}

/// Signs simulated evidence with a platform key. Used by the `sim` evidence backend; kept here
/// beside the verifier so that the format lives in one place.
pub fn sign_sim_evidence(
    platform: &SigningKey,
    measurement: &[u8; 48],
    report_data: &[u8; 64],
    debug: bool,
) -> Result<Vec<u8>, Error> {
    let payload = Value::Map(vec![
        (
            Value::Text("measurement".into()),
            Value::Bytes(measurement.to_vec()),
        ),
        (
            Value::Text("report_data".into()),
            Value::Bytes(report_data.to_vec()),
        ),
        (Value::Text("debug".into()), Value::Bool(debug)),
    ]);
    let payload = payload
        .to_vec()
        .map_err(|e| Error::Internal(format!("encoding sim payload: {e}")))?;
    let protected = HeaderBuilder::new()
        .algorithm(iana::Algorithm::EdDSA)
        .key_id(platform.verifying_key().to_bytes().to_vec())
        .build();
    CoseSign1Builder::new()
        .protected(protected)
        .payload(payload)
        .create_signature(SIM_EXTERNAL_AAD, |data| {
            platform.sign(data).to_bytes().to_vec()
        })
        .build()
        .to_vec()
        .map_err(|e| Error::Internal(format!("encoding sim evidence: {e}")))
}

/// Reads the claims of sim evidence **without verifying anything**.
pub fn parse_sim_evidence(evidence: &[u8]) -> Result<SimClaims, Error> {
    decode(evidence).map(|(_, claims)| claims)
}

/// Verifies sim evidence against the platform keys the caller trusts. `now` is accepted for
/// symmetry with the other verifiers: sim evidence has no validity window.
pub fn verify_sim(
    evidence: &[u8],
    trusted_platform_keys: &[[u8; 32]],
    _now: UnixTime,
) -> Result<SimClaims, Error> {
    let (sign1, claims) = decode(evidence)?;
    if trusted_platform_keys.is_empty() {
        return Err(Error::Missing(
            "sim root: the simulated platform public key to trust".into(),
        ));
    }
    if !trusted_platform_keys.contains(&claims.platform_key) {
        return Err(Error::CertificateChain {
            reason: format!(
                "sim platform key {} is not a trusted sim root",
                hex::encode(claims.platform_key)
            ),
        });
    }
    let key = VerifyingKey::from_bytes(&claims.platform_key)
        .map_err(|_| malformed("platform key is not an Ed25519 point"))?;
    let bad = || Error::SignatureInvalid {
        what: "sim evidence (COSE_Sign1, Ed25519)".into(),
    };
    sign1.verify_signature(SIM_EXTERNAL_AAD, |sig, data| {
        let sig = Signature::from_slice(sig).map_err(|_| bad())?;
        key.verify_strict(data, &sig).map_err(|_| bad())
    })?;
    Ok(claims)
}

fn decode(evidence: &[u8]) -> Result<(CoseSign1, SimClaims), Error> {
    if evidence.len() > MAX_LEN {
        return Err(malformed(format!(
            "{} bytes (at most {MAX_LEN})",
            evidence.len()
        )));
    }
    let sign1 = CoseSign1::from_slice(evidence).map_err(|_| malformed("not a COSE_Sign1"))?;
    let alg = sign1.protected.header.alg.as_ref();
    if alg != Some(&coset::Algorithm::Assigned(iana::Algorithm::EdDSA)) {
        return Err(malformed(format!("algorithm {alg:?}, expected EdDSA")));
    }
    let platform_key: [u8; 32] = sign1
        .protected
        .header
        .key_id
        .as_slice()
        .try_into()
        .map_err(|_| malformed("kid is not a 32-byte Ed25519 public key"))?;
    let payload = sign1
        .payload
        .as_deref()
        .ok_or_else(|| malformed("detached payload"))?;
    let Value::Map(entries) =
        Value::from_slice(payload).map_err(|_| malformed("payload is not CBOR"))?
    else {
        return Err(malformed("payload is not a map"));
    };
    let mut measurement = None;
    let mut report_data = None;
    let mut debug = None;
    for (k, v) in entries {
        match (k.as_text(), v) {
            (Some("measurement"), Value::Bytes(b)) => {
                set_once(
                    &mut measurement,
                    fixed::<48>(&b, "measurement")?,
                    "measurement",
                )?;
            }
            (Some("report_data"), Value::Bytes(b)) => {
                set_once(
                    &mut report_data,
                    fixed::<64>(&b, "report_data")?,
                    "report_data",
                )?;
            }
            (Some("debug"), Value::Bool(b)) => set_once(&mut debug, b, "debug")?,
            (Some(name), _) => return Err(malformed(format!("field {name}: unexpected"))),
            (None, _) => return Err(malformed("non-text key")),
        }
    }
    let claims = SimClaims {
        measurement: measurement.ok_or_else(|| malformed("missing measurement"))?,
        report_data: report_data.ok_or_else(|| malformed("missing report_data"))?,
        debug: debug.ok_or_else(|| malformed("missing debug"))?,
        platform_key,
    };
    Ok((sign1, claims))
}

fn set_once<T>(slot: &mut Option<T>, value: T, name: &str) -> Result<(), Error> {
    if slot.replace(value).is_some() {
        return Err(malformed(format!("duplicate field {name}")));
    }
    Ok(())
}

fn fixed<const N: usize>(bytes: &[u8], name: &str) -> Result<[u8; N], Error> {
    bytes
        .try_into()
        .map_err(|_| malformed(format!("{name}: {} bytes, expected {N}", bytes.len())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn round_trip_and_trust() {
        let k = key(7);
        let ev = sign_sim_evidence(&k, &[1; 48], &[2; 64], false).unwrap();
        let root = k.verifying_key().to_bytes();
        let c = verify_sim(&ev, &[root], 0).unwrap();
        assert_eq!(c.measurement, [1; 48]);
        assert_eq!(c.report_data, [2; 64]);
        assert!(!c.debug);
        assert!(matches!(
            verify_sim(&ev, &[key(8).verifying_key().to_bytes()], 0),
            Err(Error::CertificateChain { .. })
        ));
        assert!(matches!(verify_sim(&ev, &[], 0), Err(Error::Missing(_))));
    }

    #[test]
    fn aad_separates_domains() {
        let k = key(7);
        // The same payload signed without Coffer's AAD does not verify.
        let ev = sign_sim_evidence(&k, &[1; 48], &[2; 64], false).unwrap();
        let mut s = CoseSign1::from_slice(&ev).unwrap();
        let tbs = s.tbs_data(b"");
        s.signature = k.sign(&tbs).to_bytes().to_vec();
        let forged = s.to_vec().unwrap();
        assert!(matches!(
            verify_sim(&forged, &[k.verifying_key().to_bytes()], 0),
            Err(Error::SignatureInvalid { .. })
        ));
    }
}
