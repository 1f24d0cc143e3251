//! The SEV-SNP attestation report: fixed offsets from AMD's SNP ABI specification (56860),
//! table "ATTESTATION_REPORT Structure". Parsed from the raw bytes with bounds-checked reads,
//! so the signature is later checked over exactly the bytes we were given.

use crate::Error;

/// Length of an attestation report, versions 2 to 5.
pub const REPORT_LEN: usize = 0x4A0;
/// The signature covers bytes `[0, 0x2A0)`.
pub(crate) const SIGNED_LEN: usize = 0x2A0;
const SIG_R: usize = 0x2A0;
const SIG_S: usize = 0x2E8;
/// ECDSA P-384 with SHA-384, the only algorithm the ABI defines.
const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;

/// Policy bit 19: the guest may be debugged by the host.
pub const POLICY_DEBUG_BIT: u64 = 1 << 19;

/// The processor generation, which fixes the TCB layout and the AMD root key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SnpGeneration {
    /// EPYC 7003.
    Milan,
    /// EPYC 9004 (also Bergamo and Siena).
    Genoa,
    /// EPYC 9005.
    Turin,
}

impl SnpGeneration {
    /// Turin changed the TCB_VERSION layout and added the FMC SVN.
    fn turin_tcb_layout(self) -> bool {
        matches!(self, Self::Turin)
    }
}

/// Which key signed the report (`SIGNER_INFO.SIGNING_KEY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SnpSigner {
    /// Versioned Chip Endorsement Key: per chip and TCB.
    Vcek,
    /// Versioned Loaded Endorsement Key: per cloud provider, loaded by the hypervisor.
    Vlek,
}

/// A TCB_VERSION: security version numbers of the firmware components.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SnpTcb {
    pub bootloader: u8,
    pub tee: u8,
    pub snp: u8,
    pub microcode: u8,
    /// FMC SVN, Turin and later only.
    pub fmc: Option<u8>,
}

impl SnpTcb {
    fn decode(raw: [u8; 8], turin: bool) -> Self {
        let [b0, b1, b2, b3, _, _, b6, b7] = raw;
        if turin {
            Self {
                fmc: Some(b0),
                bootloader: b1,
                tee: b2,
                snp: b3,
                microcode: b7,
            }
        } else {
            Self {
                fmc: None,
                bootloader: b0,
                tee: b1,
                snp: b6,
                microcode: b7,
            }
        }
    }
}

/// The fields of a report, parsed but not verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpClaims {
    pub version: u32,
    pub guest_svn: u32,
    /// Guest policy; see [`SnpClaims::debug`].
    pub policy: u64,
    pub family_id: [u8; 16],
    pub image_id: [u8; 16],
    pub vmpl: u32,
    /// Launch measurement of the guest.
    pub measurement: [u8; 48],
    pub host_data: [u8; 32],
    pub id_key_digest: [u8; 48],
    pub report_id: [u8; 32],
    /// The TCB the report was signed for; must equal the VEK certificate's TCB.
    pub reported_tcb: SnpTcb,
    /// All zero when the guest asked for the chip id to be masked, and always for VLEK.
    pub chip_id: [u8; 64],
    /// Guest-chosen data, typically a hash binding a key or nonce.
    pub report_data: [u8; 64],
    pub signer: SnpSigner,
    /// Generation from the report's CPUID fields (v3 and later); `None` for v2.
    pub cpuid_generation: Option<SnpGeneration>,
}

impl SnpClaims {
    /// Whether the policy lets the host debug the guest (policy bit 19).
    pub fn debug(&self) -> bool {
        self.policy & POLICY_DEBUG_BIT != 0
    }
}

/// A parsed report plus what verification needs from its raw bytes.
#[derive(Debug, Clone)]
pub(crate) struct RawReport<'a> {
    pub claims: SnpClaims,
    pub reported_tcb_raw: [u8; 8],
    pub signed: &'a [u8],
    pub sig_r_le: [u8; 72],
    pub sig_s_le: [u8; 72],
}

fn malformed(reason: impl Into<String>) -> Error {
    Error::Malformed {
        what: "SEV-SNP report",
        reason: reason.into(),
    }
}

fn take<const N: usize>(b: &[u8], off: usize) -> Result<[u8; N], Error> {
    let end = off
        .checked_add(N)
        .ok_or_else(|| malformed("offset overflow"))?;
    b.get(off..end)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or_else(|| malformed(format!("field at {off:#x} out of bounds")))
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, Error> {
    take::<4>(b, off).map(u32::from_le_bytes)
}

fn u64_at(b: &[u8], off: usize) -> Result<u64, Error> {
    take::<8>(b, off).map(u64::from_le_bytes)
}

/// Generation from CPUID family and model (report v3+, offsets 0x188/0x189).
fn generation_from_cpuid(family: u8, model: u8) -> Option<SnpGeneration> {
    match (family, model) {
        (0x19, 0x00..=0x0F) => Some(SnpGeneration::Milan),
        (0x19, 0x10..=0x1F | 0xA0..=0xAF) => Some(SnpGeneration::Genoa),
        (0x1A, 0x00..=0x11) => Some(SnpGeneration::Turin),
        _ => None,
    }
}

pub(crate) fn parse_raw(b: &[u8]) -> Result<RawReport<'_>, Error> {
    if b.len() != REPORT_LEN {
        return Err(malformed(format!(
            "length {} (expected {REPORT_LEN})",
            b.len()
        )));
    }
    let version = u32_at(b, 0x00)?;
    if !(2..=5).contains(&version) {
        return Err(Error::Unsupported(format!(
            "SEV-SNP report version {version}"
        )));
    }
    let sig_algo = u32_at(b, 0x34)?;
    if sig_algo != SIG_ALGO_ECDSA_P384_SHA384 {
        return Err(Error::Unsupported(format!(
            "SEV-SNP signature algorithm {sig_algo}"
        )));
    }
    let signer = match (u32_at(b, 0x48)? >> 2) & 0b111 {
        0 => SnpSigner::Vcek,
        1 => SnpSigner::Vlek,
        other => return Err(Error::Unsupported(format!("SEV-SNP signing key {other}"))),
    };
    let cpuid_generation = if version >= 3 {
        let [family, model] = take::<2>(b, 0x188)?;
        generation_from_cpuid(family, model)
    } else {
        None
    };
    let chip_id = take::<64>(b, 0x1A0)?;
    let reported_tcb_raw = take::<8>(b, 0x180)?;
    let turin = match cpuid_generation {
        Some(g) => g.turin_tcb_layout(),
        // Report v2 has no CPUID fields; a Turin chip id is 8 bytes followed by zeros.
        None => chip_id.iter().any(|&x| x != 0) && chip_id.iter().skip(8).all(|&x| x == 0),
    };
    let claims = SnpClaims {
        version,
        guest_svn: u32_at(b, 0x04)?,
        policy: u64_at(b, 0x08)?,
        family_id: take(b, 0x10)?,
        image_id: take(b, 0x20)?,
        vmpl: u32_at(b, 0x30)?,
        report_data: take(b, 0x50)?,
        measurement: take(b, 0x90)?,
        host_data: take(b, 0xC0)?,
        id_key_digest: take(b, 0xE0)?,
        report_id: take(b, 0x140)?,
        reported_tcb: SnpTcb::decode(reported_tcb_raw, turin),
        chip_id,
        signer,
        cpuid_generation,
    };
    Ok(RawReport {
        claims,
        reported_tcb_raw,
        signed: b.get(..SIGNED_LEN).ok_or_else(|| malformed("short"))?,
        sig_r_le: take(b, SIG_R)?,
        sig_s_le: take(b, SIG_S)?,
    })
}

impl RawReport<'_> {
    /// Re-decodes the reported TCB for the generation the certificate chain proved.
    pub(crate) fn tcb_for(&self, generation: SnpGeneration) -> SnpTcb {
        SnpTcb::decode(self.reported_tcb_raw, generation.turin_tcb_layout())
    }
}

/// Parses a report without verifying anything. The reported TCB is decoded with the layout
/// the report itself suggests; [`crate::snp::verify_snp`] re-decodes it for the generation
/// its certificate chain proves.
pub fn parse_snp_report(report: &[u8]) -> Result<SnpClaims, Error> {
    parse_raw(report).map(|r| r.claims)
}
