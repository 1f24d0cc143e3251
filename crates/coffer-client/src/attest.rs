//! Verifying TEE evidence and RA-TLS certificates as a party does: the inputs read from files
//! (bounded), the trust roots loaded (DCAP collateral, a sim platform key, a policy), and one
//! [`Appraisal`] saying what verified and what was refused.
//!
//! Verification reads nothing but its inputs and the time given (else the system clock).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine;
use coffer_attest::dcap::{Collateral, PcsFiles};
use coffer_attest::ratls::RaTlsCert;
use coffer_attest::{
    Evidence, FailedCheck, MAX_EVIDENCE_LEN, Policy, TcbStatus, TeeKind, UnixTime, Verified,
    Verifier,
};
use serde::Serialize;

use crate::{Error, Home};

/// The file in a home holding the simulated platform's public key (as `coffer-tee` writes it).
pub const PLATFORM_PUB_FILE: &str = "sim-platform.pub";

/// Upper bound on an evidence or certificate file read whole (hex is twice the evidence).
pub const MAX_INPUT_LEN: u64 = 4 * MAX_EVIDENCE_LEN as u64;

/// Upper bound on a policy or collateral file.
const MAX_TEXT_LEN: u64 = 4 << 20;

/// What verifying evidence or a certificate found.
#[derive(Debug, Clone, Serialize)]
pub struct Appraisal {
    pub tee: Option<TeeKind>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub simulated: bool,
    pub verified: bool,
    pub tcb_status: Option<TcbStatus>,
    pub advisories: Vec<String>,
    pub debug: Option<bool>,
    pub measurements: Option<BTreeMap<String, String>>,
    pub report_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_bound: Option<bool>,
    pub accepted: Option<bool>,
    pub failed_checks: Vec<FailedCheck>,
}

impl Appraisal {
    fn new(tee: Option<TeeKind>, verified: Result<&Verified, &coffer_attest::Error>) -> Self {
        let mut report = Self {
            tee,
            simulated: tee == Some(TeeKind::Sim),
            verified: false,
            tcb_status: None,
            advisories: Vec::new(),
            debug: None,
            measurements: None,
            report_data: None,
            key_bound: None,
            accepted: None,
            failed_checks: Vec::new(),
        };
        match verified {
            Ok(v) => {
                report.verified = true;
                report.tcb_status = v.tcb_status;
                report.advisories.clone_from(&v.advisories);
                report.debug = Some(v.claims.debug());
                report.measurements = Some(
                    v.claims
                        .measurements()
                        .into_iter()
                        .map(|(k, m)| (k, hex::encode(m)))
                        .collect(),
                );
                report.report_data = Some(hex::encode(v.claims.report_data()));
            }
            Err(e) => report.failed_checks.push(FailedCheck::Evidence {
                check: e.check(),
                reason: e.to_string(),
            }),
        }
        report
    }

    /// Whether everything passed: verified, no failed check, accepted and key-bound where
    /// asked.
    pub fn passed(&self) -> bool {
        self.verified
            && self.failed_checks.is_empty()
            && self.accepted != Some(false)
            && self.key_bound != Some(false)
    }

    /// The refusal, unless everything passed: the first failed check's name, every reason.
    pub fn refusal(&self) -> Option<Error> {
        if self.passed() {
            return None;
        }
        let reasons: Vec<String> = self.failed_checks.iter().map(ToString::to_string).collect();
        let check = self
            .failed_checks
            .first()
            .map_or_else(|| "attestation".to_owned(), |c| c.check().to_owned());
        Some(Error::Refused {
            check,
            message: if self.verified {
                format!("refused: {}", reasons.join("; "))
            } else {
                reasons.join("; ")
            },
        })
    }
}

/// Where the trust comes from; every path is optional.
#[derive(Debug, Clone, Default)]
pub struct TrustFiles {
    /// An appraisal policy (YAML or JSON, as a manifest's `enclave:`).
    pub policy: Option<PathBuf>,
    /// Verify at this time [default: the system clock].
    pub at: Option<UnixTime>,
    /// DCAP collateral: a dcap-qvl JSON file, an Intel PCS TCB info file, or a directory.
    pub collateral: Option<PathBuf>,
    /// The sim platform key to trust [default: the home's `sim-platform.pub`, if any].
    pub sim_root: Option<PathBuf>,
}

/// Policy, time and trust roots, loaded.
#[derive(Debug, Clone)]
pub struct Appraiser {
    pub verifier: Verifier,
    pub policy: Option<Policy>,
    pub now: UnixTime,
}

impl Appraiser {
    /// Loads `files` (relative to nothing; the home only for its sim root).
    pub fn load(home: &Home, files: &TrustFiles) -> Result<Self, Error> {
        let policy = files.policy.as_deref().map(load_policy).transpose()?;
        let mut verifier = Verifier::new();
        if let Some(path) = &files.collateral {
            verifier = verifier.with_collateral(load_collateral(path)?);
        }
        if let Some(root) = sim_root(home, files.sim_root.as_deref())? {
            verifier = verifier.with_sim_root(root);
        }
        Ok(Self {
            verifier,
            policy,
            now: files.at.unwrap_or_else(crate::jobs::unix_now),
        })
    }

    /// Verifies `tee` evidence (raw, hex or base64 bytes) with SEV-SNP `certs`, then the
    /// policy.
    pub fn evidence(&self, tee: TeeKind, raw: &[u8], certs: Vec<Vec<u8>>) -> Appraisal {
        let result = Evidence::from_parts(tee, decode_evidence(raw), certs)
            .and_then(|ev| self.verifier.verify(&ev, self.now));
        let mut report = Appraisal::new(Some(tee), result.as_ref());
        if let Some(policy) = &self.policy {
            match &result {
                Ok(v) => {
                    report.failed_checks.extend(policy.check(v, self.now));
                    report.accepted = Some(report.failed_checks.is_empty());
                }
                Err(_) => report.accepted = Some(false),
            }
        }
        report
    }

    /// Verifies an RA-TLS certificate (PEM or DER): its evidence, that the evidence binds the
    /// certificate's key (and `nonce`, if given), then the policy.
    pub fn certificate(&self, bytes: &[u8], nonce: Option<&[u8]>) -> Appraisal {
        let cert = match RaTlsCert::from_pem(bytes) {
            Ok(c) => c,
            Err(e) => {
                let mut report = Appraisal::new(None, Err(&e));
                report.key_bound = Some(false);
                if self.policy.is_some() {
                    report.accepted = Some(false);
                }
                return report;
            }
        };
        let evidence = cert.evidence();
        let result = self.verifier.verify(&evidence, self.now);
        let mut report = Appraisal::new(Some(evidence.tee()), result.as_ref());
        match &result {
            Ok(v) => {
                let binding = cert.binding_checks(v.claims.report_data(), nonce);
                report.key_bound = Some(!binding.contains(&FailedCheck::KeyNotBound));
                report.failed_checks.extend(binding);
            }
            Err(_) => report.key_bound = Some(false),
        }
        if let Some(policy) = &self.policy {
            if let Ok(v) = &result {
                report.failed_checks.extend(policy.check(v, self.now));
            }
            report.accepted = Some(report.verified && report.failed_checks.is_empty());
        }
        report
    }
}

/// Evidence bytes from a file's contents: hex text (optional `0x`), else base64 text, else the
/// bytes themselves. Whitespace around and inside the text is ignored.
pub fn decode_evidence(raw: &[u8]) -> Vec<u8> {
    let text: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if text.is_empty() {
        return raw.to_vec();
    }
    let hex_text = text.strip_prefix(b"0x").unwrap_or(&text);
    if !hex_text.is_empty()
        && hex_text.len().is_multiple_of(2)
        && hex_text.iter().all(u8::is_ascii_hexdigit)
        && let Ok(bytes) = hex::decode(hex_text)
    {
        return bytes;
    }
    let base64 = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    if let Ok(bytes) = base64.decode(&text) {
        return bytes;
    }
    raw.to_vec()
}

/// Reads at most `limit` bytes of `path`; a longer file is refused as a usage error.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, Error> {
    let file = std::fs::File::open(path).map_err(Error::io(path))?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(Error::io(path))?;
    if u64::try_from(bytes.len()).map_or(true, |n| n > limit) {
        return Err(Error::InvalidArgument(format!(
            "{}: larger than {limit} bytes",
            path.display()
        )));
    }
    Ok(bytes)
}

fn read_text(path: &Path) -> Result<String, Error> {
    String::from_utf8(read_bounded(path, MAX_TEXT_LEN)?)
        .map_err(|_| Error::InvalidArgument(format!("{}: not UTF-8 text", path.display())))
}

/// The certificates in `path`: the file, or every regular file in the directory, by name.
pub fn read_certs(path: &Path) -> Result<Vec<Vec<u8>>, Error> {
    let meta = std::fs::metadata(path).map_err(Error::io(path))?;
    if !meta.is_dir() {
        return Ok(vec![read_bounded(path, MAX_INPUT_LEN)?]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(Error::io(path))? {
        let p = entry.map_err(Error::io(path))?.path();
        if std::fs::metadata(&p).is_ok_and(|m| m.is_file()) {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{}: no certificate files",
            path.display()
        )));
    }
    files
        .iter()
        .map(|p| read_bounded(p, MAX_INPUT_LEN))
        .collect()
}

/// DCAP collateral from a dcap-qvl JSON file, an Intel PCS TCB info file, or a directory of
/// PCS files (whose TCB info file is the one `.json` with a top-level `tcbInfo`).
pub fn load_collateral(path: &Path) -> Result<Collateral, Error> {
    let bad = |e: &dyn std::fmt::Display| {
        Error::InvalidArgument(format!("collateral {}: {e}", path.display()))
    };
    let meta = std::fs::metadata(path).map_err(Error::io(path))?;
    if meta.is_dir() {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(path).map_err(Error::io(path))? {
            let entry = entry.map_err(Error::io(path))?;
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "json")
                && std::fs::metadata(&p).is_ok_and(|m| m.is_file())
                && is_tcb_info(&read_text(&p)?)
            {
                found.push(entry.file_name());
            }
        }
        found.sort();
        let name = match found.as_slice() {
            [one] => one.to_string_lossy().into_owned(),
            [] => return Err(bad(&"no .json file with a top-level \"tcbInfo\"")),
            several => {
                let names: Vec<_> = several.iter().map(|n| n.to_string_lossy()).collect();
                return Err(bad(&format!(
                    "several TCB info files ({}); pass the one to use as --collateral",
                    names.join(", ")
                )));
            }
        };
        return Collateral::from_pcs_files(&PcsFiles::in_dir(path, &name)).map_err(|e| bad(&e));
    }
    let text = read_text(path)?;
    if is_tcb_info(&text) {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Collateral::from_pcs_files(&PcsFiles::in_dir(dir, &name)).map_err(|e| bad(&e));
    }
    Collateral::from_dcap_qvl_json(&text).map_err(|e| bad(&e))
}

/// Whether `text` is a JSON object with a top-level `tcbInfo` (an Intel PCS TCB info file).
fn is_tcb_info(text: &str) -> bool {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
        .is_ok_and(|m| m.contains_key("tcbInfo"))
}

/// An appraisal policy file (YAML or JSON, as a manifest's `enclave:` section).
pub fn load_policy(path: &Path) -> Result<Policy, Error> {
    let text = read_text(path)?;
    Policy::from_yaml(&text)
        .map_err(|e| Error::InvalidArgument(format!("policy {}: {e}", path.display())))
}

/// The sim platform key in `path` (64 hex digits or 32 raw bytes).
pub fn read_sim_root(path: &Path) -> Result<[u8; 32], Error> {
    let bytes = read_bounded(path, 4096)?;
    let key = String::from_utf8(bytes.clone())
        .ok()
        .and_then(|t| hex::decode(t.trim()).ok())
        .unwrap_or(bytes);
    key.as_slice().try_into().map_err(|_| {
        Error::InvalidArgument(format!(
            "sim root {}: expected 64 hex digits or 32 raw bytes",
            path.display()
        ))
    })
}

/// The sim root in `path`, else the home's `sim-platform.pub`, if any.
pub fn sim_root(home: &Home, path: Option<&Path>) -> Result<Option<[u8; 32]>, Error> {
    match path {
        Some(p) => read_sim_root(p).map(Some),
        None => {
            let p = home.root().join(PLATFORM_PUB_FILE);
            if p.exists() {
                read_sim_root(&p).map(Some)
            } else {
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const BYTES: &[u8] = &[0x00, 0xff, 0x10, 0x7e, 0x80, 0x01, 0xfb, 0xef];

    #[test]
    fn hex_is_decoded_with_prefix_and_whitespace() {
        assert_eq!(decode_evidence(b"00ff107e8001fbef"), BYTES);
        assert_eq!(decode_evidence(b"  0x00FF107E8001fbef\n"), BYTES);
        assert_eq!(decode_evidence(b"00ff107e\n8001fbef\r\n"), BYTES);
    }

    #[test]
    fn base64_is_decoded_with_whitespace_and_optional_padding() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(BYTES);
        assert_eq!(decode_evidence(b64.as_bytes()), BYTES);
        let wrapped = format!("\n{}\n{}\n", &b64[..4], &b64[4..]);
        assert_eq!(decode_evidence(wrapped.as_bytes()), BYTES);
        assert_eq!(decode_evidence(b64.trim_end_matches('=').as_bytes()), BYTES);
    }

    #[test]
    fn anything_else_is_raw() {
        assert_eq!(decode_evidence(BYTES), BYTES);
        assert_eq!(decode_evidence(b"abc!"), b"abc!");
        assert_eq!(decode_evidence(b""), b"");
        assert_eq!(decode_evidence(b" \n"), b" \n");
        assert_eq!(decode_evidence(b"ab-d"), b"ab-d");
    }

    #[test]
    fn refusals_name_the_first_failed_check() {
        let a = Appraiser {
            verifier: Verifier::new(),
            policy: None,
            now: 0,
        };
        let report = a.evidence(TeeKind::Sim, b"not evidence", Vec::new());
        assert!(!report.passed());
        let err = report.refusal().unwrap();
        assert!(err.is_refusal());
        assert_eq!(err.check(), report.failed_checks[0].check());
    }
}
