//! AWS Nitro Enclaves attestation documents: COSE_Sign1, ES384, signed by a leaf certificate
//! that chains through the document's `cabundle` to AWS Nitro Enclaves Root-G1.
//!
//! [`verify_nitro`] checks, in order: the COSE structure and its `alg` (ES384); the payload's
//! fields and types (AWS "Nitro Enclaves attestation process", section 3.2); the path leaf →
//! cabundle → the root pinned by SHA-256, every certificate valid at `now`; and the COSE
//! signature with the leaf's key. Debug mode (PCR0, 1 and 2 all zero) is reported, not
//! refused: appraisal policy decides. The document's own timestamp is reported, not compared
//! with `now`: freshness is the nonce's job.

mod chain;

use std::collections::BTreeMap;

use coset::cbor::Value;
use coset::{CborSerializable, CoseSign1, TaggedCborSerializable, iana};

pub use chain::{AWS_NITRO_ROOT_G1_SHA256, aws_nitro_root_der};

use crate::{Error, UnixTime};

/// Limits from the AWS document specification.
const MAX_USER_DATA: usize = 1024;
const MAX_NONCE: usize = 1024;
const MAX_PUBLIC_KEY: usize = 1024;
const MAX_PCRS: usize = 32;

/// What a Nitro attestation document says about the enclave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NitroClaims {
    /// The enclave's id, `i-…-enc…`.
    pub module_id: String,
    /// Milliseconds since the Unix epoch, when the NSM made the document.
    pub timestamp_ms: u64,
    /// Always `SHA384` in practice.
    pub digest: String,
    /// PCR index → value (48 bytes for SHA384).
    pub pcrs: BTreeMap<u8, Vec<u8>>,
    pub user_data: Option<Vec<u8>>,
    pub nonce: Option<Vec<u8>>,
    pub public_key: Option<Vec<u8>>,
    /// PCR0, PCR1 and PCR2 are all zero: the enclave runs in debug mode and its memory is
    /// readable by the parent instance.
    pub debug: bool,
}

/// A document whose signature and certificate path verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NitroVerified {
    pub claims: NitroClaims,
    /// The earliest notAfter on the certificate path: the document proves nothing after it.
    pub valid_until: UnixTime,
}

fn malformed(reason: impl Into<String>) -> Error {
    Error::Malformed {
        what: "Nitro attestation document",
        reason: reason.into(),
    }
}

/// The decoded payload: claims plus the certificates that vouch for them.
#[derive(Debug)]
struct Payload {
    claims: NitroClaims,
    certificate: Vec<u8>,
    cabundle: Vec<Vec<u8>>,
}

/// A decoded document, before any check.
#[derive(Debug)]
struct Document {
    sign1: CoseSign1,
    payload: Payload,
}

fn decode_cose(doc: &[u8]) -> Result<CoseSign1, Error> {
    let attempt = |b: &[u8]| {
        CoseSign1::from_slice(b)
            .or_else(|_| CoseSign1::from_tagged_slice(b))
            .ok()
    };
    // The NSM returns bare COSE; some transports add a 4-byte prefix. The prefix is not
    // signed and is ignored.
    attempt(doc)
        .or_else(|| doc.get(4..).and_then(attempt))
        .ok_or_else(|| malformed("not a COSE_Sign1 structure"))
}

fn bytes_field(v: &Value, field: &str, max: usize) -> Result<Vec<u8>, Error> {
    match v {
        Value::Bytes(b) if b.len() <= max => Ok(b.clone()),
        Value::Bytes(b) => Err(malformed(format!(
            "{field}: {} bytes (at most {max})",
            b.len()
        ))),
        _ => Err(malformed(format!("{field}: not a byte string"))),
    }
}

fn optional_bytes(v: Option<&Value>, field: &str, max: usize) -> Result<Option<Vec<u8>>, Error> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => bytes_field(v, field, max).map(Some),
    }
}

fn parse_pcrs(v: &Value) -> Result<BTreeMap<u8, Vec<u8>>, Error> {
    let Value::Map(entries) = v else {
        return Err(malformed("pcrs: not a map"));
    };
    if entries.is_empty() || entries.len() > MAX_PCRS {
        return Err(malformed(format!("pcrs: {} entries", entries.len())));
    }
    let mut pcrs = BTreeMap::new();
    for (k, v) in entries {
        let index = k
            .as_integer()
            .and_then(|i| u8::try_from(i).ok())
            .filter(|&i| usize::from(i) < MAX_PCRS)
            .ok_or_else(|| malformed("pcrs: index not in 0..32"))?;
        let value = bytes_field(v, "pcr", 64)?;
        if ![32, 48, 64].contains(&value.len()) {
            return Err(malformed(format!("pcr{index}: {} bytes", value.len())));
        }
        if pcrs.insert(index, value).is_some() {
            return Err(malformed(format!("pcr{index} repeated")));
        }
    }
    Ok(pcrs)
}

fn parse_payload(payload: &[u8]) -> Result<Payload, Error> {
    let mut rest = payload;
    let value: Value = coset::cbor::de::from_reader(&mut rest)
        .map_err(|e| malformed(format!("payload CBOR: {e}")))?;
    if !rest.is_empty() {
        return Err(malformed("trailing bytes after the payload"));
    }
    let Value::Map(entries) = value else {
        return Err(malformed("payload is not a map"));
    };
    let mut fields: BTreeMap<&str, &Value> = BTreeMap::new();
    for (k, v) in &entries {
        let Value::Text(k) = k else {
            return Err(malformed("payload key is not text"));
        };
        if fields.insert(k.as_str(), v).is_some() {
            return Err(malformed(format!("{k} repeated")));
        }
    }
    let get = |k: &str| {
        fields
            .get(k)
            .copied()
            .ok_or_else(|| malformed(format!("missing {k}")))
    };
    let text = |k: &str| match get(k)? {
        Value::Text(t) if !t.is_empty() => Ok(t.clone()),
        _ => Err(malformed(format!("{k}: not a non-empty text string"))),
    };
    let timestamp_ms = get("timestamp")?
        .as_integer()
        .and_then(|i| u64::try_from(i).ok())
        .filter(|&t| t > 0)
        .ok_or_else(|| malformed("timestamp: not a positive integer"))?;
    let pcrs = parse_pcrs(get("pcrs")?)?;
    let certificate = bytes_field(get("certificate")?, "certificate", 1 << 16)?;
    let Value::Array(bundle) = get("cabundle")? else {
        return Err(malformed("cabundle: not an array"));
    };
    let cabundle = bundle
        .iter()
        .map(|c| bytes_field(c, "cabundle entry", 1 << 16))
        .collect::<Result<Vec<_>, _>>()?;
    let zero = |i: u8| pcrs.get(&i).is_some_and(|v| v.iter().all(|&b| b == 0));
    let claims = NitroClaims {
        module_id: text("module_id")?,
        digest: text("digest")?,
        timestamp_ms,
        debug: zero(0) && zero(1) && zero(2),
        pcrs,
        user_data: optional_bytes(fields.get("user_data").copied(), "user_data", MAX_USER_DATA)?,
        nonce: optional_bytes(fields.get("nonce").copied(), "nonce", MAX_NONCE)?,
        public_key: optional_bytes(
            fields.get("public_key").copied(),
            "public_key",
            MAX_PUBLIC_KEY,
        )?,
    };
    Ok(Payload {
        claims,
        certificate,
        cabundle,
    })
}

fn decode(doc: &[u8]) -> Result<Document, Error> {
    let sign1 = decode_cose(doc)?;
    let alg = sign1.protected.header.alg.as_ref();
    if alg
        != Some(&coset::RegisteredLabelWithPrivate::Assigned(
            iana::Algorithm::ES384,
        ))
    {
        return Err(Error::Unsupported(format!("Nitro COSE algorithm {alg:?}")));
    }
    let payload = sign1
        .payload
        .as_deref()
        .ok_or_else(|| malformed("detached payload"))?;
    let payload = parse_payload(payload)?;
    if payload.claims.digest != "SHA384" {
        return Err(Error::Unsupported(format!(
            "Nitro digest {}",
            payload.claims.digest
        )));
    }
    Ok(Document { sign1, payload })
}

/// Decodes a document without verifying it. Raw COSE_Sign1 (tagged or not) or COSE behind a
/// 4-byte prefix.
pub fn parse_nitro_document(doc: &[u8]) -> Result<NitroClaims, Error> {
    decode(doc).map(|d| d.payload.claims)
}

/// Verifies a document at time `now` against the pinned AWS Nitro Enclaves Root-G1.
pub fn verify_nitro(doc: &[u8], now: UnixTime) -> Result<NitroVerified, Error> {
    verify_with_root(doc, &aws_nitro_root_der()?, now)
}

fn verify_with_root(doc: &[u8], root_der: &[u8], now: UnixTime) -> Result<NitroVerified, Error> {
    let Document { sign1, payload } = decode(doc)?;
    let (leaf, valid_until) =
        chain::verify_chain(&payload.certificate, &payload.cabundle, root_der, now)?;
    let key = chain::public_key(&leaf)?;
    let bad = || Error::SignatureInvalid {
        what: "Nitro attestation document (COSE_Sign1)".into(),
    };
    sign1.verify_signature(b"", |sig, data| {
        if key.verify_fixed(data, sig) {
            Ok(())
        } else {
            Err(bad())
        }
    })?;
    Ok(NitroVerified {
        claims: payload.claims,
        valid_until,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn builtin_root_matches_pin() {
        aws_nitro_root_der().unwrap();
    }
}
