//! DCAP collateral: Intel's signed TCB info, QE identity, CRLs and issuer chains, in the shape
//! dcap-qvl verifies. Two loaders: dcap-qvl's own JSON, and the files Intel's PCS serves.

use std::path::{Path, PathBuf};

use dcap_qvl::QuoteCollateralV3;

use crate::Error;

/// Collateral for one DCAP quote. Nothing in it is trusted: dcap-qvl checks every signature,
/// chain and validity window against the pinned Intel root at verification time.
#[derive(Debug, Clone)]
pub struct Collateral {
    pub(crate) inner: QuoteCollateralV3,
}

/// Paths of the files Intel's PCS serves for one platform (the layout MobileCoin records).
#[derive(Debug, Clone)]
pub struct PcsFiles {
    /// `GET /tcb?fmspc=`: `{"tcbInfo": {...}, "signature": "hex"}`.
    pub tcb_info_json: PathBuf,
    /// `GET /qe/identity`: `{"enclaveIdentity": {...}, "signature": "hex"}`.
    pub qe_identity_json: PathBuf,
    /// The TCB signing certificate (PEM); it signs both JSON documents.
    pub tcb_signing_cert_pem: PathBuf,
    /// The PCK CA (Processor or Platform) that issued the quote's PCK certificate (PEM).
    pub pck_ca_pem: PathBuf,
    /// Intel SGX Root CA (PEM), appended to both issuer chains.
    pub root_ca_pem: PathBuf,
    /// `GET /pckcrl`: the PCK CA's CRL (DER).
    pub pck_crl_der: PathBuf,
    /// The Intel SGX Root CA's CRL (DER).
    pub root_crl_der: PathBuf,
}

impl PcsFiles {
    /// MobileCoin's file names inside `dir`, with the TCB info file given by name because it
    /// is named after its FMSPC.
    pub fn in_dir(dir: &Path, tcb_info_file: &str) -> Self {
        Self {
            tcb_info_json: dir.join(tcb_info_file),
            qe_identity_json: dir.join("qe_identity.json"),
            tcb_signing_cert_pem: dir.join("tcb_signer.pem"),
            pck_ca_pem: dir.join("processor_ca.pem"),
            root_ca_pem: dir.join("root_ca.pem"),
            pck_crl_der: dir.join("processor_crl.der"),
            root_crl_der: dir.join("root_crl.der"),
        }
    }
}

impl Collateral {
    /// Parses dcap-qvl's `QuoteCollateralV3` JSON (PEM chains, raw JSON strings, hex bytes).
    pub fn from_dcap_qvl_json(json: &str) -> Result<Self, Error> {
        let inner = serde_json::from_str(json).map_err(|e| Error::Malformed {
            what: "dcap-qvl collateral JSON",
            reason: e.to_string(),
        })?;
        Ok(Self { inner })
    }

    /// Builds collateral from Intel PCS documents already in memory.
    pub fn from_pcs(
        tcb_info_json: &str,
        qe_identity_json: &str,
        tcb_signing_cert_pem: &str,
        pck_ca_pem: &str,
        root_ca_pem: &str,
        pck_crl_der: Vec<u8>,
        root_crl_der: Vec<u8>,
    ) -> Result<Self, Error> {
        let (tcb_info, tcb_info_signature) = split_envelope(tcb_info_json, "tcbInfo")?;
        let (qe_identity, qe_identity_signature) =
            split_envelope(qe_identity_json, "enclaveIdentity")?;
        let tcb_chain = join_pem(tcb_signing_cert_pem, root_ca_pem);
        Ok(Self {
            inner: QuoteCollateralV3 {
                pck_crl_issuer_chain: join_pem(pck_ca_pem, root_ca_pem),
                root_ca_crl: root_crl_der,
                pck_crl: pck_crl_der,
                tcb_info_issuer_chain: tcb_chain.clone(),
                tcb_info,
                tcb_info_signature,
                qe_identity_issuer_chain: tcb_chain,
                qe_identity,
                qe_identity_signature,
                pck_certificate_chain: None,
            },
        })
    }

    /// Reads and converts the PCS files named in `files`.
    pub fn from_pcs_files(files: &PcsFiles) -> Result<Self, Error> {
        Self::from_pcs(
            &read_text(&files.tcb_info_json)?,
            &read_text(&files.qe_identity_json)?,
            &read_text(&files.tcb_signing_cert_pem)?,
            &read_text(&files.pck_ca_pem)?,
            &read_text(&files.root_ca_pem)?,
            read_bytes(&files.pck_crl_der)?,
            read_bytes(&files.root_crl_der)?,
        )
    }

    /// The dcap-qvl form, for callers that need it (e.g. to re-serialise).
    pub fn as_dcap_qvl(&self) -> &QuoteCollateralV3 {
        &self.inner
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::Missing(format!("{}: {e}", path.display())))
}

fn read_text(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| Error::Missing(format!("{}: {e}", path.display())))
}

fn join_pem(first: &str, second: &str) -> String {
    let mut chain = first.trim_end().to_owned();
    chain.push('\n');
    chain.push_str(second.trim_end());
    chain.push('\n');
    chain
}

/// Splits a PCS envelope `{"<key>": {...}, "signature": "hex"}` into the exact bytes of the
/// signed body (the signature covers them verbatim, so re-serialising would break it) and the
/// raw signature.
fn split_envelope(json: &str, key: &'static str) -> Result<(String, Vec<u8>), Error> {
    let malformed = |reason: String| Error::Malformed {
        what: "Intel PCS collateral JSON",
        reason,
    };
    let parsed: serde_json::Value =
        serde_json::from_str(json).map_err(|e| malformed(e.to_string()))?;
    let expected_body = parsed
        .get(key)
        .ok_or_else(|| malformed(format!("no \"{key}\"")))?;
    let signature_hex = parsed
        .get("signature")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| malformed("no \"signature\" string".into()))?;
    let signature = hex::decode(signature_hex).map_err(|e| malformed(e.to_string()))?;

    let body =
        raw_member(json, key).ok_or_else(|| malformed(format!("cannot locate \"{key}\"")))?;
    // The located text must be the member the JSON parser saw, not a look-alike elsewhere.
    let reparsed: serde_json::Value =
        serde_json::from_str(body).map_err(|e| malformed(e.to_string()))?;
    if &reparsed != expected_body {
        return Err(malformed(format!("\"{key}\" located at the wrong place")));
    }
    Ok((body.to_owned(), signature))
}

/// The raw text of the value of the first `"key":` member in `json`.
fn raw_member<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let quoted = format!("\"{key}\"");
    let after_key = json.get(json.find(&quoted)?.checked_add(quoted.len())?..)?;
    let after_colon = after_key.trim_start().strip_prefix(':')?.trim_start();
    let mut values =
        serde_json::Deserializer::from_str(after_colon).into_iter::<serde::de::IgnoredAny>();
    values.next()?.ok()?;
    after_colon.get(..values.byte_offset())
}
