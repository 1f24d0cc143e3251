//! AMD SEV-SNP attestation reports (v2 to v5), signed by a VCEK or VLEK.
//!
//! [`verify_snp`] checks, in order:
//! 1. the report parses (exact length, known version, ECDSA P-384, a VCEK or VLEK signer);
//! 2. the VEK certificate chains VEK ← ASK (VCEK) or ASVK (VLEK) ← an ARK pinned by SHA-256,
//!    and every certificate on the path is valid at `now`;
//! 3. the report's `REPORTED_TCB` equals the VEK's TCB extensions (with FMC on Turin), and for a
//!    VCEK the chip id equals the certificate's hwID;
//! 4. the VEK's ECDSA P-384 signature over the raw report bytes `[0, 0x2A0)`.
//!
//! The signature is checked over the bytes as given, never over a re-encoding, so reserved
//! bytes are covered too. Debug policy (bit 19) is reported in the claims, not refused here:
//! appraisal policy decides.

mod certs;
mod report;

pub use certs::{
    ARK_SHA256, VekExtensions, parse_vek_extensions, pinned_ark_fingerprint, sev_builtin_ark_der,
};
pub use report::{
    POLICY_DEBUG_BIT, REPORT_LEN, SnpClaims, SnpGeneration, SnpSigner, SnpTcb, parse_snp_report,
};

use crate::ecdsa::P384Key;
use crate::{Error, TcbStatus, UnixTime};

/// A report whose signature, chain and TCB binding all verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpVerified {
    pub claims: SnpClaims,
    /// The generation whose pinned ARK the chain ends in.
    pub generation: SnpGeneration,
    /// `UpToDate` means only that the reported TCB is the one the VEK was issued for; AMD
    /// publishes no TCB-level collateral comparable to Intel's.
    pub tcb_status: TcbStatus,
}

/// Verifies an SNP report at time `now`.
///
/// - `report`: the 1184-byte report as the firmware returned it.
/// - `vek_der`: the VCEK or VLEK certificate (DER), as the report's signer field says.
/// - `chain`: ASK/ASVK and ARK certificates (DER or PEM) from the host or AMD KDS. A supplied
///   ARK must match a pinned fingerprint; if `chain` is empty, the built-in AMD certificates for
///   Milan, Genoa and Turin are used.
pub fn verify_snp(
    report: &[u8],
    vek_der: &[u8],
    chain: &[Vec<u8>],
    now: UnixTime,
) -> Result<SnpVerified, Error> {
    let raw = report::parse_raw(report)?;
    let vek = certs::parse_vek(vek_der)?;
    let generation = certs::verify_chain(&vek, raw.claims.signer, chain, now)?;
    if let Some(claimed) = raw.claims.cpuid_generation
        && claimed != generation
    {
        return Err(Error::CertificateChain {
            reason: format!("report CPUID says {claimed:?} but the VEK chains to {generation:?}"),
        });
    }
    let mut claims = raw.claims.clone();
    claims.reported_tcb = raw.tcb_for(generation);

    let ext = certs::vek_extensions(&vek)?;
    certs::check_tcb(&claims.reported_tcb, &ext)?;
    if claims.signer == SnpSigner::Vcek {
        match ext.hw_id {
            Some(hw_id) if certs::chip_id_matches(&claims.chip_id, &hw_id) => {}
            Some(_) => {
                return Err(Error::TcbMismatch {
                    reason: "chip id differs from the VCEK's hwID".into(),
                });
            }
            None => {
                return Err(Error::Malformed {
                    what: "VCEK certificate",
                    reason: "missing hwID extension".into(),
                });
            }
        }
    }
    verify_signature(&raw, &vek)?;
    Ok(SnpVerified {
        claims,
        generation,
        tcb_status: TcbStatus::UpToDate,
    })
}

/// Verifies an SNP report with its certificates as a host hands them over: `certs` holds the
/// VCEK or VLEK (found by its common name, `SEV-VCEK` or `SEV-VLEK`) and any ASK/ASVK/ARK, each
/// entry DER or a PEM bundle.
pub fn verify_snp_with_certs(
    report: &[u8],
    certs: &[Vec<u8>],
    now: UnixTime,
) -> Result<SnpVerified, Error> {
    let mut vek: Option<Vec<u8>> = None;
    let mut chain = Vec::new();
    for bytes in certs {
        for cert in certs::parse_certs(bytes, "SEV-SNP certificate")? {
            let der = der::Encode::to_der(&cert)
                .map_err(|e| Error::Internal(format!("re-encoding certificate: {e}")))?;
            match certs::common_name(&cert).as_deref() {
                Some("SEV-VCEK" | "SEV-VLEK") if vek.is_some() => {
                    return Err(Error::CertificateChain {
                        reason: "more than one VCEK/VLEK certificate supplied".into(),
                    });
                }
                Some("SEV-VCEK" | "SEV-VLEK") => vek = Some(der),
                _ => chain.push(der),
            }
        }
    }
    let vek = vek.ok_or_else(|| {
        Error::Missing("VCEK or VLEK certificate (common name SEV-VCEK or SEV-VLEK)".into())
    })?;
    verify_snp(report, &vek, &chain, now)
}

/// Converts a 72-byte little-endian field to a 48-byte big-endian scalar; the top 24 bytes
/// must be zero.
fn le72_to_be48(le: &[u8; 72]) -> Option<[u8; 48]> {
    let (low, high) = le.split_at(48);
    if high.iter().any(|&b| b != 0) {
        return None;
    }
    let mut be: [u8; 48] = low.try_into().ok()?;
    be.reverse();
    Some(be)
}

fn verify_signature(
    raw: &report::RawReport<'_>,
    vek: &x509_cert::Certificate,
) -> Result<(), Error> {
    let bad = |why: &str| Error::SignatureInvalid {
        what: format!("SEV-SNP report: {why}"),
    };
    let spki = vek
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    let key = P384Key::from_sec1(spki).ok_or_else(|| Error::Malformed {
        what: "VEK certificate",
        reason: "public key is not P-384".into(),
    })?;
    let (Some(r), Some(s)) = (le72_to_be48(&raw.sig_r_le), le72_to_be48(&raw.sig_s_le)) else {
        return Err(bad("signature component out of range"));
    };
    let mut sig = [0u8; 96];
    let (sig_r, sig_s) = sig.split_at_mut(48);
    sig_r.copy_from_slice(&r);
    sig_s.copy_from_slice(&s);
    if key.verify_fixed(raw.signed, &sig) {
        Ok(())
    } else {
        Err(bad("does not verify with the VEK"))
    }
}
