//! RA-TLS: TEE evidence inside a self-signed X.509 certificate, binding the certificate's
//! public key, so that a TLS handshake proves which code holds the key.
//!
//! **Certificates Coffer issues** carry the TCG DICE tagged-evidence extension
//! ([`TAGGED_EVIDENCE_OID`], 2.23.133.5.4.9, non-critical). Its value is CBOR:
//!
//! ```text
//! 60000([ evidence: bstr,   ; Coffer evidence, [tee, data, certs] (see Evidence::to_cbor)
//!         claims:   bstr ]) ; CBOR map { "pubkey-hash": [hash-alg, bstr], ? "nonce": bstr }
//! ```
//!
//! `pubkey-hash` is the hash of the certificate's SubjectPublicKeyInfo (DER), with the algorithm
//! numbered as in the IANA Named Information Hash Algorithm registry (1 = SHA-256, 7 = SHA-384,
//! 8 = SHA-512). The evidence's report data (Nitro: `user_data`) is SHA-512 of the claims
//! bytes, so the evidence binds the key and, for a challenge, the verifier's nonce:
//! report data = SHA-512(claims(nonce, H(SPKI))).
//!
//! **On input** Gramine's legacy extension ([`GRAMINE_LEGACY_OID`], 1.2.840.113741.1337.6) is
//! accepted too: a raw SGX quote whose report data starts with SHA-256(SPKI) followed by 32 zero
//! bytes. It has no nonce.
//!
//! [`RaTlsVerifier`] appraises a certificate against a [`Policy`]; [`RaTlsServerVerifier`] and
//! [`RaTlsClientVerifier`] plug it into rustls so that a refused handshake carries the
//! [`Refused`] checks.

use std::fmt;
use std::sync::Arc;

use coset::CborSerializable;
use coset::cbor::Value;
use der::{Decode, Encode};
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_cert::Certificate;
use x509_cert::der::asn1::ObjectIdentifier;
use zeroize::Zeroizing;

use crate::evidence::{Evidence, Verified, Verifier};
use crate::policy::{FailedCheck, Policy, Verdict};
use crate::{Error, TeeKind, UnixTime};

/// TCG DICE tagged evidence, the extension Coffer writes.
pub const TAGGED_EVIDENCE_OID: &str = "2.23.133.5.4.9";
/// Gramine's legacy RA-TLS extension: a raw SGX quote. Read, never written.
pub const GRAMINE_LEGACY_OID: &str = "1.2.840.113741.1337.6";
/// The CBOR tag over `[evidence, claims]`.
pub const CBOR_TAG: u64 = 60000;

const TAGGED_ARCS: &[u64] = &[2, 23, 133, 5, 4, 9];
const OID_TAGGED: ObjectIdentifier = ObjectIdentifier::new_unwrap(TAGGED_EVIDENCE_OID);
const OID_GRAMINE: ObjectIdentifier = ObjectIdentifier::new_unwrap(GRAMINE_LEGACY_OID);

/// Largest nonce a claims map may carry.
pub const MAX_NONCE_LEN: usize = 64;
/// Largest certificate accepted.
const MAX_CERT_LEN: usize = 128 * 1024;

fn malformed(reason: impl Into<String>) -> Error {
    Error::Malformed {
        what: "RA-TLS certificate",
        reason: reason.into(),
    }
}

/// The hash algorithms a `pubkey-hash` may use (IANA Named Information ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    fn id(self) -> i64 {
        match self {
            Self::Sha256 => 1,
            Self::Sha384 => 7,
            Self::Sha512 => 8,
        }
    }

    fn from_id(id: i128) -> Option<Self> {
        match id {
            1 => Some(Self::Sha256),
            7 => Some(Self::Sha384),
            8 => Some(Self::Sha512),
            _ => None,
        }
    }

    fn digest(self, bytes: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(bytes).to_vec(),
            Self::Sha384 => Sha384::digest(bytes).to_vec(),
            Self::Sha512 => Sha512::digest(bytes).to_vec(),
        }
    }
}

/// What the certificate's issuer binds into its evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingClaims {
    pub pubkey_hash_alg: HashAlg,
    pub pubkey_hash: Vec<u8>,
    pub nonce: Option<Vec<u8>>,
}

impl BindingClaims {
    /// Claims binding `spki_der` (and a verifier's nonce, for a challenge).
    pub fn new(spki_der: &[u8], nonce: Option<&[u8]>) -> Result<Self, Error> {
        if nonce.is_some_and(|n| n.len() > MAX_NONCE_LEN) {
            return Err(Error::Unsupported(format!(
                "nonce longer than {MAX_NONCE_LEN} bytes"
            )));
        }
        Ok(Self {
            pubkey_hash_alg: HashAlg::Sha256,
            pubkey_hash: HashAlg::Sha256.digest(spki_der),
            nonce: nonce.map(<[u8]>::to_vec),
        })
    }

    /// The claims' CBOR encoding, which the evidence's report data hashes.
    pub fn to_cbor(&self) -> Result<Vec<u8>, Error> {
        let mut entries = vec![(
            Value::Text("pubkey-hash".into()),
            Value::Array(vec![
                Value::Integer(self.pubkey_hash_alg.id().into()),
                Value::Bytes(self.pubkey_hash.clone()),
            ]),
        )];
        if let Some(n) = &self.nonce {
            entries.push((Value::Text("nonce".into()), Value::Bytes(n.clone())));
        }
        Value::Map(entries)
            .to_vec()
            .map_err(|e| Error::Internal(format!("encoding RA-TLS claims: {e}")))
    }

    /// Parses claims, rejecting unknown or repeated keys.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, Error> {
        let Value::Map(entries) =
            Value::from_slice(bytes).map_err(|_| malformed("claims are not CBOR"))?
        else {
            return Err(malformed("claims are not a map"));
        };
        let mut hash: Option<(HashAlg, Vec<u8>)> = None;
        let mut nonce: Option<Vec<u8>> = None;
        for (k, v) in entries {
            match (k.as_text(), v) {
                (Some("pubkey-hash"), Value::Array(pair)) if hash.is_none() => {
                    let [Value::Integer(alg), Value::Bytes(h)] = <[Value; 2]>::try_from(pair)
                        .map_err(|_| malformed("pubkey-hash is not [alg, hash]"))?
                    else {
                        return Err(malformed("pubkey-hash is not [alg, hash]"));
                    };
                    let alg = HashAlg::from_id(alg.into())
                        .ok_or_else(|| malformed("pubkey-hash: unknown hash algorithm"))?;
                    hash = Some((alg, h));
                }
                (Some("nonce"), Value::Bytes(n)) if nonce.is_none() => {
                    if n.len() > MAX_NONCE_LEN {
                        return Err(malformed("nonce too long"));
                    }
                    nonce = Some(n);
                }
                (Some(name), _) => {
                    return Err(malformed(format!(
                        "claims: unexpected or repeated {name:?}"
                    )));
                }
                (None, _) => return Err(malformed("claims: non-text key")),
            }
        }
        let (pubkey_hash_alg, pubkey_hash) =
            hash.ok_or_else(|| malformed("claims: no pubkey-hash"))?;
        Ok(Self {
            pubkey_hash_alg,
            pubkey_hash,
            nonce,
        })
    }
}

/// The report data that binds claims: SHA-512 of their encoding.
pub fn report_data_for(claims_cbor: &[u8]) -> [u8; 64] {
    Sha512::digest(claims_cbor).into()
}

/// The report data a prover answers a nonce challenge with, for the key `spki_der`:
/// `SHA-512(claims(nonce, SHA-256(SPKI)))`.
pub fn challenge_report_data(spki_der: &[u8], nonce: &[u8]) -> Result<[u8; 64], Error> {
    Ok(report_data_for(
        &BindingClaims::new(spki_der, Some(nonce))?.to_cbor()?,
    ))
}

/// Encodes the tagged-evidence extension value.
pub fn encode_tagged_evidence(evidence: &Evidence, claims_cbor: &[u8]) -> Result<Vec<u8>, Error> {
    Value::Tag(
        CBOR_TAG,
        Box::new(Value::Array(vec![
            Value::Bytes(evidence.to_cbor()?),
            Value::Bytes(claims_cbor.to_vec()),
        ])),
    )
    .to_vec()
    .map_err(|e| Error::Internal(format!("encoding tagged evidence: {e}")))
}

/// Decodes the tagged-evidence extension value into evidence and the claims bytes.
pub fn decode_tagged_evidence(value: &[u8]) -> Result<(Evidence, Vec<u8>), Error> {
    let Value::Tag(tag, inner) =
        Value::from_slice(value).map_err(|_| malformed("tagged evidence is not CBOR"))?
    else {
        return Err(malformed("tagged evidence is not a CBOR tag"));
    };
    if tag != CBOR_TAG {
        return Err(malformed(format!("CBOR tag {tag}, expected {CBOR_TAG}")));
    }
    let Value::Array(items) = *inner else {
        return Err(malformed("tagged evidence is not an array"));
    };
    let [Value::Bytes(evidence), Value::Bytes(claims)] = <[Value; 2]>::try_from(items)
        .map_err(|_| malformed("tagged evidence is not [evidence, claims]"))?
    else {
        return Err(malformed("tagged evidence is not [bstr, bstr]"));
    };
    Ok((Evidence::from_cbor(&evidence)?, claims))
}

/// The evidence an RA-TLS certificate carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertEvidence {
    /// Coffer's (and the interoperable) form: evidence plus the claims its report data hashes.
    Tagged {
        evidence: Evidence,
        claims_cbor: Vec<u8>,
        claims: BindingClaims,
    },
    /// Gramine's legacy form: an SGX quote with report data SHA-256(SPKI) ‖ zeros.
    GramineLegacy { quote: Vec<u8> },
}

/// Evidence made for one session: it binds `spki_der` (the TLS key the peer sees on the
/// connection) and the verifier's `nonce`, in the tagged-evidence format of the RA-TLS
/// extension. A service answers a challenge with it, so a verifier sees evidence made after
/// it asked, not the evidence its certificate was issued with.
pub fn answer_challenge(
    spki_der: &[u8],
    nonce: &[u8],
    evidence_for: impl FnOnce(&[u8; 64]) -> Result<Evidence, String>,
) -> Result<Vec<u8>, String> {
    let claims = BindingClaims::new(spki_der, Some(nonce)).map_err(|e| e.to_string())?;
    let cbor = claims.to_cbor().map_err(|e| e.to_string())?;
    let evidence = evidence_for(&report_data_for(&cbor))?;
    encode_tagged_evidence(&evidence, &cbor).map_err(|e| e.to_string())
}

/// Verifies an answer to a challenge ([`answer_challenge`]): the evidence verifies at `now`,
/// binds `spki_der` (the connection's TLS key) and carries `nonce`.
pub fn verify_challenge(
    answer: &[u8],
    spki_der: &[u8],
    nonce: &[u8],
    verifier: &Verifier,
    now: UnixTime,
) -> Result<Verified, Vec<FailedCheck>> {
    let one = |e: Error| vec![FailedCheck::from_error(&e)];
    let (evidence, claims_cbor) = decode_tagged_evidence(answer).map_err(one)?;
    let claims = BindingClaims::from_cbor(&claims_cbor).map_err(one)?;
    let verified = verifier.verify(&evidence, now).map_err(one)?;
    let mut failed = Vec::new();
    if claims.pubkey_hash_alg.digest(spki_der) != claims.pubkey_hash
        || verified.claims.report_data() != report_data_for(&claims_cbor)
    {
        failed.push(FailedCheck::KeyNotBound);
    }
    if claims.nonce.as_deref() != Some(nonce) {
        failed.push(FailedCheck::NonceMismatch);
    }
    if failed.is_empty() {
        Ok(verified)
    } else {
        Err(failed)
    }
}

/// A parsed RA-TLS certificate; nothing verified yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaTlsCert {
    /// The SubjectPublicKeyInfo (DER) the evidence must bind.
    pub spki_der: Vec<u8>,
    pub evidence: CertEvidence,
    /// `notBefore`, Unix seconds.
    pub not_before: UnixTime,
    /// `notAfter`, Unix seconds.
    pub not_after: UnixTime,
}

impl RaTlsCert {
    /// Parses a DER certificate and its evidence extension (tagged evidence preferred when
    /// both are present).
    pub fn from_der(cert_der: &[u8]) -> Result<Self, Error> {
        if cert_der.len() > MAX_CERT_LEN {
            return Err(malformed(format!("{} bytes", cert_der.len())));
        }
        let cert = Certificate::from_der(cert_der).map_err(|e| malformed(e.to_string()))?;
        let tbs = &cert.tbs_certificate;
        let spki_der = tbs
            .subject_public_key_info
            .to_der()
            .map_err(|e| Error::Internal(format!("re-encoding SPKI: {e}")))?;
        let seconds = |t: x509_cert::time::Time| {
            i64::try_from(t.to_unix_duration().as_secs())
                .map_err(|_| malformed("validity time out of range".to_owned()))
        };
        let not_before = seconds(tbs.validity.not_before)?;
        let not_after = seconds(tbs.validity.not_after)?;
        let exts = tbs.extensions.as_deref().unwrap_or_default();
        let find = |oid| {
            let mut found = exts.iter().filter(|e| e.extn_id == oid);
            match (found.next(), found.next()) {
                (Some(_), Some(_)) => Err(malformed(format!("extension {oid} appears twice"))),
                (first, _) => Ok(first.map(|e| e.extn_value.as_bytes().to_vec())),
            }
        };
        let evidence = if let Some(value) = find(OID_TAGGED)? {
            let (evidence, claims_cbor) = decode_tagged_evidence(&value)?;
            let claims = BindingClaims::from_cbor(&claims_cbor)?;
            CertEvidence::Tagged {
                evidence,
                claims_cbor,
                claims,
            }
        } else if let Some(quote) = find(OID_GRAMINE)? {
            CertEvidence::GramineLegacy { quote }
        } else {
            return Err(Error::Missing(format!(
                "RA-TLS evidence extension ({TAGGED_EVIDENCE_OID} or {GRAMINE_LEGACY_OID})"
            )));
        };
        Ok(Self {
            spki_der,
            evidence,
            not_before,
            not_after,
        })
    }

    /// The certificate's validity at `now`: `None` inside `notBefore..=notAfter`.
    pub fn validity_check(&self, now: UnixTime) -> Option<FailedCheck> {
        if (self.not_before..=self.not_after).contains(&now) {
            None
        } else {
            Some(FailedCheck::CertificateExpired {
                not_before: self.not_before,
                not_after: self.not_after,
                now,
            })
        }
    }

    /// Parses the first certificate of a PEM file.
    pub fn from_pem(pem: &[u8]) -> Result<Self, Error> {
        Self::from_der(&pem_to_der(pem)?)
    }

    pub fn evidence(&self) -> Evidence {
        match &self.evidence {
            CertEvidence::Tagged { evidence, .. } => evidence.clone(),
            CertEvidence::GramineLegacy { quote } => Evidence::Sgx(quote.clone()),
        }
    }

    /// SHA-256 of the certificate's SubjectPublicKeyInfo: what a client pins, and what signed
    /// requests name as their audience.
    pub fn spki_sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.spki_der).into()
    }

    /// Checks an ECDSA signature ([`RaTlsIdentity::sign`]) over `message` by this
    /// certificate's key. Says nothing of the evidence: verify that too.
    pub fn verify_signature(&self, message: &[u8], signature: &[u8]) -> Result<(), Error> {
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1, UnparsedPublicKey,
        };
        const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
        const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
        let spki = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(&self.spki_der)
            .map_err(|e| malformed(format!("public key: {e}")))?;
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        let alg = match curve {
            Some(c) if c == P256 => &ECDSA_P256_SHA256_ASN1,
            Some(c) if c == P384 => &ECDSA_P384_SHA384_ASN1,
            _ => {
                return Err(Error::Unsupported(
                    "RA-TLS key that is not ECDSA P-256 or P-384".into(),
                ));
            }
        };
        UnparsedPublicKey::new(alg, spki.subject_public_key.raw_bytes())
            .verify(message, signature)
            .map_err(|_| Error::SignatureInvalid {
                what: "signature by the RA-TLS certificate's key".into(),
            })
    }

    /// Verifies the evidence with `verifier` and that it binds this certificate's key (and
    /// `nonce`, if given), without applying a policy: the caller appraises the claims later,
    /// against a policy it only knows then (a broker judging a worker for a named manifest).
    pub fn verify_bound(
        &self,
        verifier: &Verifier,
        nonce: Option<&[u8]>,
        now: UnixTime,
    ) -> Result<Verified, Vec<FailedCheck>> {
        if let Some(expired) = self.validity_check(now) {
            return Err(vec![expired]);
        }
        let verified = verifier
            .verify(&self.evidence(), now)
            .map_err(|e| vec![FailedCheck::from_error(&e)])?;
        let failed = self.binding_checks(verified.claims.report_data(), nonce);
        if failed.is_empty() {
            Ok(verified)
        } else {
            Err(failed)
        }
    }

    /// The binding checks that fail: `report_data` (from verified evidence) must bind this
    /// certificate's key, and carry the nonce if one is expected.
    pub fn binding_checks(&self, report_data: &[u8], nonce: Option<&[u8]>) -> Vec<FailedCheck> {
        let mut failed = Vec::new();
        match &self.evidence {
            CertEvidence::Tagged {
                claims_cbor,
                claims,
                ..
            } => {
                if claims.pubkey_hash_alg.digest(&self.spki_der) != claims.pubkey_hash
                    || report_data != report_data_for(claims_cbor)
                {
                    failed.push(FailedCheck::KeyNotBound);
                }
                if let Some(expected) = nonce
                    && claims.nonce.as_deref() != Some(expected)
                {
                    failed.push(FailedCheck::NonceMismatch);
                }
            }
            CertEvidence::GramineLegacy { .. } => {
                let mut expected = [0u8; 64];
                if let Some(head) = expected.get_mut(..32) {
                    head.copy_from_slice(&Sha256::digest(&self.spki_der));
                }
                if report_data != expected {
                    failed.push(FailedCheck::KeyNotBound);
                }
                if nonce.is_some() {
                    failed.push(FailedCheck::NonceMismatch);
                }
            }
        }
        failed
    }
}

/// The DER of the first `CERTIFICATE` block of a PEM text, or the input if it is DER already.
pub fn pem_to_der(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    if !bytes.starts_with(b"-----BEGIN") {
        return Ok(bytes.to_vec());
    }
    let (label, der) = der::pem::decode_vec(bytes).map_err(|e| malformed(format!("PEM: {e}")))?;
    if label != "CERTIFICATE" {
        return Err(malformed(format!(
            "PEM label {label}, expected CERTIFICATE"
        )));
    }
    Ok(der)
}

/// Appraises RA-TLS certificates: verify the evidence, check it binds the certificate's key
/// (and the nonce, when one was sent), then apply the policy.
#[derive(Debug, Clone)]
pub struct RaTlsVerifier {
    verifier: Verifier,
    policy: Policy,
    nonce: Option<Vec<u8>>,
}

impl RaTlsVerifier {
    pub fn new(verifier: Verifier, policy: Policy) -> Self {
        Self {
            verifier,
            policy,
            nonce: None,
        }
    }

    /// Requires evidence made for this nonce (a challenge the verifier sent).
    pub fn with_nonce(mut self, nonce: Vec<u8>) -> Self {
        self.nonce = Some(nonce);
        self
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The verdict on a DER certificate at `now`.
    pub fn appraise_cert(&self, cert_der: &[u8], now: UnixTime) -> Verdict {
        let cert = match RaTlsCert::from_der(cert_der) {
            Ok(c) => c,
            Err(e) => return Verdict::not_verified(&e),
        };
        if let Some(expired) = cert.validity_check(now) {
            return Verdict {
                accepted: false,
                claims: None,
                failed_checks: vec![expired],
            };
        }
        let verified = match self.verifier.verify(&cert.evidence(), now) {
            Ok(v) => v,
            Err(e) => return Verdict::not_verified(&e),
        };
        let mut failed = cert.binding_checks(verified.claims.report_data(), self.nonce.as_deref());
        failed.extend(self.policy.check(&verified, now));
        Verdict {
            accepted: failed.is_empty(),
            claims: Some(verified),
            failed_checks: failed,
        }
    }

    fn appraise_for_rustls(
        &self,
        end_entity: &CertificateDer<'_>,
        now: rustls::pki_types::UnixTime,
    ) -> Result<(), rustls::Error> {
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let verdict = self.appraise_cert(end_entity.as_ref(), now);
        if verdict.accepted {
            Ok(())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(Refused {
                    failed_checks: verdict.failed_checks,
                }))),
            ))
        }
    }
}

/// An RA-TLS handshake refused by appraisal: the typed reasons, reachable from the rustls
/// error through `CertificateError::Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub failed_checks: Vec<FailedCheck>,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RA-TLS appraisal refused")?;
        for (i, c) in self.failed_checks.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { "; " })?;
            write!(f, "[{}] {c}", c.check())?;
        }
        Ok(())
    }
}

impl std::error::Error for Refused {}

impl Refused {
    /// The appraisal failures behind a rustls error, if that is what it is.
    pub fn from_rustls(error: &rustls::Error) -> Option<&Self> {
        match error {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => {
                other.0.downcast_ref::<Self>()
            }
            _ => None,
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms
}

/// A rustls client-side verifier of the server's RA-TLS certificate. Intermediates are
/// ignored and the server name is not checked: the evidence, not a CA, vouches for the key.
#[derive(Debug)]
pub struct RaTlsServerVerifier {
    inner: RaTlsVerifier,
    algorithms: WebPkiSupportedAlgorithms,
}

impl RaTlsServerVerifier {
    pub fn new(inner: RaTlsVerifier) -> Arc<Self> {
        Arc::new(Self {
            inner,
            algorithms: algorithms(),
        })
    }
}

impl ServerCertVerifier for RaTlsServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.appraise_for_rustls(end_entity, now)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A rustls server-side verifier that requires and appraises a client RA-TLS certificate.
#[derive(Debug)]
pub struct RaTlsClientVerifier {
    inner: RaTlsVerifier,
    algorithms: WebPkiSupportedAlgorithms,
}

impl RaTlsClientVerifier {
    pub fn new(inner: RaTlsVerifier) -> Arc<Self> {
        Arc::new(Self {
            inner,
            algorithms: algorithms(),
        })
    }
}

impl ClientCertVerifier for RaTlsClientVerifier {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner.appraise_for_rustls(end_entity, now)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A rustls server-side verifier for services whose callers are of two kinds: parties, who
/// present no certificate (they sign their requests), and TEE workers, who present an RA-TLS
/// certificate. The handshake checks only that a presented certificate is an RA-TLS
/// certificate and that the client holds its key; the service appraises the evidence per
/// request, against the policy of the manifest the request names
/// ([`RaTlsCert::verify_bound`] and [`Policy::check`]).
#[derive(Debug)]
pub struct DeferredClientVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

impl DeferredClientVerifier {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            algorithms: algorithms(),
        })
    }
}

impl ClientCertVerifier for DeferredClientVerifier {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        RaTlsCert::from_der(end_entity.as_ref()).map_err(|e| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
                Arc::new(Refused {
                    failed_checks: vec![FailedCheck::from_error(&e)],
                }),
            )))
        })?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The key type of an RA-TLS certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyAlg {
    #[default]
    P256,
    P384,
}

/// An RA-TLS certificate and its private key, ready for rustls.
/// The certificate a renewing server presents: swapped in place by [`RenewableCert::set`],
/// read at every handshake.
#[derive(Debug)]
pub struct RenewableCert {
    current: std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>,
}

impl RenewableCert {
    /// Starts with `identity`'s certificate.
    pub fn new(identity: &RaTlsIdentity) -> Result<Arc<Self>, rustls::Error> {
        Ok(Arc::new(Self {
            current: std::sync::RwLock::new(identity.certified_key()?),
        }))
    }

    /// Presents `identity`'s certificate from the next handshake on.
    pub fn set(&self, identity: &RaTlsIdentity) -> Result<(), rustls::Error> {
        let next = identity.certified_key()?;
        let mut current = self
            .current
            .write()
            .map_err(|_| rustls::Error::General("certificate lock poisoned".into()))?;
        *current = next;
        Ok(())
    }
}

impl rustls::server::ResolvesServerCert for RenewableCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.current.read().ok().map(|c| Arc::clone(&c))
    }
}

pub struct RaTlsIdentity {
    cert_der: Vec<u8>,
    key_pkcs8: Zeroizing<Vec<u8>>,
    tee: TeeKind,
}

impl fmt::Debug for RaTlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RaTlsIdentity")
            .field("tee", &self.tee)
            .field("cert_len", &self.cert_der.len())
            .finish_non_exhaustive()
    }
}

impl RaTlsIdentity {
    /// Generates a key pair, asks `evidence_for` for evidence over the report data that binds
    /// its public key (and `nonce`), and issues a self-signed certificate carrying it. The
    /// certificate is valid from `now` minus an hour (clock skew) for `lifetime_secs`.
    pub fn issue<E>(
        alg: KeyAlg,
        nonce: Option<&[u8]>,
        now: UnixTime,
        lifetime_secs: i64,
        evidence_for: impl FnOnce(&[u8; 64]) -> Result<Evidence, E>,
    ) -> Result<Self, IssueError<E>> {
        let sig_alg = match alg {
            KeyAlg::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlg::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        };
        let key = rcgen::KeyPair::generate_for(sig_alg).map_err(IssueError::certificate)?;
        Self::issue_for(key, nonce, now, lifetime_secs, evidence_for)
    }

    /// As [`issue`](Self::issue), for an existing PKCS#8 (DER) ECDSA P-256 or P-384 key: a
    /// service that keeps its TLS key across restarts (sealed at rest), so that clients can
    /// pin it, gets a fresh certificate and fresh evidence at every start.
    pub fn issue_with_key<E>(
        key_pkcs8: &[u8],
        nonce: Option<&[u8]>,
        now: UnixTime,
        lifetime_secs: i64,
        evidence_for: impl FnOnce(&[u8; 64]) -> Result<Evidence, E>,
    ) -> Result<Self, IssueError<E>> {
        let der = PrivatePkcs8KeyDer::from(key_pkcs8);
        let key = rcgen::KeyPair::try_from(&der).map_err(IssueError::certificate)?;
        Self::issue_for(key, nonce, now, lifetime_secs, evidence_for)
    }

    /// A fresh PKCS#8 (DER) private key of `alg`, for [`issue_with_key`](Self::issue_with_key).
    pub fn generate_key(alg: KeyAlg) -> Result<Zeroizing<Vec<u8>>, Error> {
        let sig_alg = match alg {
            KeyAlg::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlg::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        };
        let key = rcgen::KeyPair::generate_for(sig_alg)
            .map_err(|e| Error::Internal(format!("generating a key: {e}")))?;
        Ok(Zeroizing::new(key.serialize_der()))
    }

    fn issue_for<E>(
        key: rcgen::KeyPair,
        nonce: Option<&[u8]>,
        now: UnixTime,
        lifetime_secs: i64,
        evidence_for: impl FnOnce(&[u8; 64]) -> Result<Evidence, E>,
    ) -> Result<Self, IssueError<E>> {
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        let claims = BindingClaims::new(&spki, nonce)
            .and_then(|c| c.to_cbor())
            .map_err(IssueError::Attest)?;
        let evidence = evidence_for(&report_data_for(&claims)).map_err(IssueError::Evidence)?;
        let tee = evidence.tee();
        let ext = encode_tagged_evidence(&evidence, &claims).map_err(IssueError::Attest)?;

        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(IssueError::certificate)?;
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, format!("Coffer RA-TLS ({tee})"));
        params.distinguished_name = dn;
        let at = |t: i64| {
            time::OffsetDateTime::from_unix_timestamp(t)
                .map_err(|_| IssueError::Certificate(format!("time {t} out of range")))
        };
        // Not before 1970: X.509 parsers (x509-cert among them) refuse earlier UTCTime.
        params.not_before = at(now.saturating_sub(3600).max(0))?;
        params.not_after = at(now.saturating_add(lifetime_secs))?;
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(TAGGED_ARCS, ext));
        let cert = params.self_signed(&key).map_err(IssueError::certificate)?;
        Ok(Self {
            cert_der: cert.der().to_vec(),
            key_pkcs8: Zeroizing::new(key.serialize_der()),
            tee,
        })
    }

    /// Signs `message` with the certificate's key: ECDSA with SHA-256 (P-256) or SHA-384
    /// (P-384), ASN.1 DER signature. A service signs what it vouches for (a worker's result
    /// receipt), so that anyone holding the certificate can check it against the evidence.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair,
        };
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &self.key_pkcs8)
            .or_else(|_| EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, &self.key_pkcs8))
            .map_err(|e| Error::Internal(format!("RA-TLS key: {e}")))?;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        pair.sign(&rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|e| Error::Internal(format!("signing: {e}")))
    }

    /// From a stored certificate and PKCS#8 key (DER).
    pub fn from_parts(cert_der: Vec<u8>, key_pkcs8: Vec<u8>) -> Result<Self, Error> {
        let tee = RaTlsCert::from_der(&cert_der)?.evidence().tee();
        Ok(Self {
            cert_der,
            key_pkcs8: Zeroizing::new(key_pkcs8),
            tee,
        })
    }

    pub fn tee(&self) -> TeeKind {
        self.tee
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    pub fn cert_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.cert_der)
    }

    /// The private key as PKCS#8 PEM. Treat as a secret.
    pub fn key_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(pem_encode("PRIVATE KEY", &self.key_pkcs8))
    }

    fn rustls_parts(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (
            vec![CertificateDer::from(self.cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.to_vec())),
        )
    }

    /// The certificate and key as rustls serves them.
    pub fn certified_key(&self) -> Result<Arc<rustls::sign::CertifiedKey>, rustls::Error> {
        let (chain, key) = self.rustls_parts();
        let signer = provider().key_provider.load_private_key(key)?;
        Ok(Arc::new(rustls::sign::CertifiedKey::new(chain, signer)))
    }

    /// A TLS 1.3 server presenting whatever certificate `current` holds at each handshake, so
    /// a service renews its certificate without restarting; with `clients`, clients must
    /// present RA-TLS certificates that pass it.
    pub fn renewable_server_config(
        current: Arc<RenewableCert>,
        clients: Option<Arc<dyn ClientCertVerifier>>,
    ) -> Result<rustls::ServerConfig, rustls::Error> {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?;
        Ok(match clients {
            Some(v) => builder.with_client_cert_verifier(v),
            None => builder.with_no_client_auth(),
        }
        .with_cert_resolver(current))
    }

    /// A TLS 1.3 server presenting this certificate; with `clients`, clients must present
    /// RA-TLS certificates that pass it.
    pub fn server_config(
        &self,
        clients: Option<Arc<dyn ClientCertVerifier>>,
    ) -> Result<rustls::ServerConfig, rustls::Error> {
        let (chain, key) = self.rustls_parts();
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?;
        match clients {
            Some(v) => builder.with_client_cert_verifier(v),
            None => builder.with_no_client_auth(),
        }
        .with_single_cert(chain, key)
    }

    /// A TLS 1.3 client that appraises the server with `server`, presenting this certificate.
    pub fn client_config(
        &self,
        server: Arc<dyn ServerCertVerifier>,
    ) -> Result<rustls::ClientConfig, rustls::Error> {
        let (chain, key) = self.rustls_parts();
        rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(server)
            .with_client_auth_cert(chain, key)
    }
}

/// A TLS 1.3 client that appraises the server with `server` and presents no certificate
/// (a party attesting a broker).
pub fn client_config_without_cert(
    server: Arc<dyn ServerCertVerifier>,
) -> Result<rustls::ClientConfig, rustls::Error> {
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(server)
        .with_no_client_auth())
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap_or_default()
}

/// Why an RA-TLS certificate could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError<E> {
    /// The evidence source failed.
    #[error("evidence: {0}")]
    Evidence(E),
    #[error(transparent)]
    Attest(Error),
    #[error("certificate: {0}")]
    Certificate(String),
}

impl<E> IssueError<E> {
    fn certificate(e: rcgen::Error) -> Self {
        Self::Certificate(e.to_string())
    }
}
