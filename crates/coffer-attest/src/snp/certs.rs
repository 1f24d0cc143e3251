//! AMD certificates: the pinned ARKs, the chain ARK → ASK/ASVK → VEK (RSA-PSS, checked by the
//! `sev` crate), validity at `now`, and the VEK's TCB and hwID extensions.

use std::sync::OnceLock;

use der::{Decode, asn1::OctetString};
use sev::certs::snp::{Certificate as SevCert, Verifiable};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::der::asn1::ObjectIdentifier;

use super::report::{SnpGeneration, SnpSigner, SnpTcb};
use crate::x509::check_validity;
use crate::{Error, UnixTime};

/// SHA-256 of the DER of each AMD Root Key. A built-in or caller-supplied root is trusted only
/// if its fingerprint is one of these.
pub const ARK_SHA256: [(SnpGeneration, &str); 3] = [
    (
        SnpGeneration::Milan,
        "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
    ),
    (
        SnpGeneration::Genoa,
        "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
    ),
    (
        SnpGeneration::Turin,
        "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a",
    ),
];

/// AMD's ASK, ARK and ASVK for each generation, as AMD's KDS serves them.
const CA_PEMS: [(SnpGeneration, &[u8]); 3] = [
    (
        SnpGeneration::Milan,
        include_bytes!("milan_ask_ark_asvk.pem"),
    ),
    (
        SnpGeneration::Genoa,
        include_bytes!("genoa_ask_ark_asvk.pem"),
    ),
    (
        SnpGeneration::Turin,
        include_bytes!("turin_ask_ark_asvk.pem"),
    ),
];

const OID_CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const OID_BL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.1");
const OID_TEE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.2");
const OID_SNP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.3");
const OID_UCODE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.8");
const OID_FMC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.9");
const OID_HWID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.4");

/// One generation's built-in CA certificates.
#[derive(Debug)]
pub(crate) struct CaSet {
    pub generation: SnpGeneration,
    pub ark: Certificate,
    pub ask: Certificate,
    pub asvk: Certificate,
}

fn chain_err(reason: impl Into<String>) -> Error {
    Error::CertificateChain {
        reason: reason.into(),
    }
}

pub(crate) fn sha256_hex(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

fn to_der(cert: &Certificate) -> Result<Vec<u8>, Error> {
    der::Encode::to_der(cert).map_err(|e| Error::Internal(format!("re-encoding certificate: {e}")))
}

/// The generation whose pinned ARK has this DER's fingerprint.
fn pinned_generation(der: &[u8]) -> Option<SnpGeneration> {
    let fp = sha256_hex(der);
    ARK_SHA256
        .iter()
        .find(|(_, pin)| *pin == fp)
        .map(|(g, _)| *g)
}

fn load_builtin() -> Result<Vec<CaSet>, String> {
    let mut sets = Vec::new();
    for (generation, pem) in CA_PEMS {
        let certs = Certificate::load_pem_chain(pem).map_err(|e| e.to_string())?;
        let [ask, ark, asvk]: [Certificate; 3] = certs
            .try_into()
            .map_err(|_| format!("{generation:?}: expected ASK, ARK, ASVK"))?;
        let ark_der = der::Encode::to_der(&ark).map_err(|e| e.to_string())?;
        if pinned_generation(&ark_der) != Some(generation) {
            return Err(format!(
                "built-in {generation:?} ARK does not match its pin"
            ));
        }
        sets.push(CaSet {
            generation,
            ark,
            ask,
            asvk,
        });
    }
    Ok(sets)
}

/// The built-in CA sets, each ARK checked against its pin once.
pub(crate) fn builtin() -> Result<&'static [CaSet], Error> {
    static SETS: OnceLock<Result<Vec<CaSet>, String>> = OnceLock::new();
    match SETS.get_or_init(load_builtin) {
        Ok(sets) => Ok(sets),
        Err(e) => Err(Error::Internal(e.clone())),
    }
}

/// Parses a certificate given as DER, or one or more as PEM.
pub(crate) fn parse_certs(bytes: &[u8], what: &'static str) -> Result<Vec<Certificate>, Error> {
    let malformed = |e: der::Error| Error::Malformed {
        what,
        reason: e.to_string(),
    };
    if bytes.starts_with(b"-----BEGIN") {
        let certs = Certificate::load_pem_chain(bytes).map_err(malformed)?;
        if certs.is_empty() {
            return Err(Error::Malformed {
                what,
                reason: "no certificate in PEM".into(),
            });
        }
        Ok(certs)
    } else {
        Certificate::from_der(bytes)
            .map(|c| vec![c])
            .map_err(malformed)
    }
}

/// The subject's common name, if it is a string.
pub(crate) fn common_name(cert: &Certificate) -> Option<String> {
    cert.tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == OID_CN)
        .and_then(|atv| {
            std::str::from_utf8(atv.value.value())
                .ok()
                .map(str::to_owned)
        })
}

fn label(cert: &Certificate) -> String {
    common_name(cert).unwrap_or_else(|| "certificate without CN".into())
}

/// RSA-PSS SHA-384 signature of `issuer` over `subject`, checked by the `sev` crate.
fn signs(issuer: &Certificate, subject: &Certificate) -> bool {
    let issuer = SevCert::from(issuer.clone());
    let subject = SevCert::from(subject.clone());
    (&issuer, &subject).verify().is_ok()
}

/// Finds a path VEK ← intermediate ← pinned ARK, using the caller's certificates if given and
/// the built-in ones otherwise, and checks each certificate's validity at `now`.
pub(crate) fn verify_chain(
    vek: &Certificate,
    signer: SnpSigner,
    supplied: &[Vec<u8>],
    now: UnixTime,
) -> Result<SnpGeneration, Error> {
    let (vek_cn, int_prefix) = match signer {
        SnpSigner::Vcek => ("SEV-VCEK", "SEV-"),
        SnpSigner::Vlek => ("SEV-VLEK", "SEV-VLEK-"),
    };
    if common_name(vek).as_deref() != Some(vek_cn) {
        return Err(chain_err(format!(
            "report names {vek_cn} but certificate is {}",
            label(vek)
        )));
    }
    let builtin = builtin()?;
    let mut roots: Vec<SnpGeneration> = Vec::new();
    let mut intermediates: Vec<Certificate> = Vec::new();
    for bytes in supplied {
        for cert in parse_certs(bytes, "AMD CA certificate")? {
            match pinned_generation(&to_der(&cert)?) {
                Some(g) => roots.push(g),
                None if cert.tbs_certificate.issuer == cert.tbs_certificate.subject => {
                    return Err(chain_err(format!(
                        "root {} is not a pinned AMD ARK",
                        label(&cert)
                    )));
                }
                None => intermediates.push(cert),
            }
        }
    }
    for set in builtin
        .iter()
        .filter(|s| roots.is_empty() || roots.contains(&s.generation))
    {
        let own = [match signer {
            SnpSigner::Vcek => set.ask.clone(),
            SnpSigner::Vlek => set.asvk.clone(),
        }];
        let candidates: &[Certificate] = if intermediates.is_empty() {
            &own
        } else {
            &intermediates
        };
        for int in candidates {
            // The intermediate's name is trustworthy once the ARK's signature is checked: an ASK
            // must not certify a VLEK, nor an ASVK a VCEK.
            let role_ok = match signer {
                SnpSigner::Vcek => common_name(int)
                    .is_some_and(|cn| cn.starts_with(int_prefix) && !cn.starts_with("SEV-VLEK-")),
                SnpSigner::Vlek => common_name(int).is_some_and(|cn| cn.starts_with(int_prefix)),
            };
            if signs(&set.ark, &set.ark) && signs(&set.ark, int) && role_ok && signs(int, vek) {
                for cert in [&set.ark, int, vek] {
                    check_validity(cert, &label(cert), now)?;
                }
                return Ok(set.generation);
            }
        }
    }
    Err(chain_err(format!(
        "{vek_cn} does not chain to a pinned AMD ARK"
    )))
}

/// What an AMD VEK certificate says about the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VekExtensions {
    pub bootloader: u8,
    pub tee: u8,
    pub snp: u8,
    pub microcode: u8,
    /// Turin and later.
    pub fmc: Option<u8>,
    /// The chip's hardware id (VCEK only): 64 bytes, or 8 bytes on Turin, where the report's
    /// chip id is those 8 bytes followed by zeros.
    pub hw_id: Option<Vec<u8>>,
}

fn is_hw_id_len(len: usize) -> bool {
    len == 64 || len == 8
}

/// Whether the report's chip id is the certificate's hwID (Turin: 8 bytes, then zeros).
pub(crate) fn chip_id_matches(chip_id: &[u8; 64], hw_id: &[u8]) -> bool {
    match chip_id.split_at_checked(hw_id.len()) {
        Some((head, tail)) => head == hw_id && tail.iter().all(|&b| b == 0),
        None => false,
    }
}

fn ext_value(cert: &Certificate, oid: ObjectIdentifier) -> Option<&[u8]> {
    cert.tbs_certificate
        .extensions
        .as_deref()?
        .iter()
        .find(|e| e.extn_id == oid)
        .map(|e| e.extn_value.as_bytes())
}

fn ext_u8(cert: &Certificate, oid: ObjectIdentifier) -> Result<Option<u8>, Error> {
    ext_value(cert, oid)
        .map(|v| {
            u8::from_der(v).map_err(|e| Error::Malformed {
                what: "VEK certificate extension",
                reason: format!("{oid}: {e}"),
            })
        })
        .transpose()
}

/// Reads the TCB and hwID extensions. The hwID comes either as raw 64 bytes (older KDS
/// certificates) or wrapped in an OCTET STRING.
pub fn parse_vek_extensions(vek_der: &[u8]) -> Result<VekExtensions, Error> {
    vek_extensions(&parse_vek(vek_der)?)
}

/// A VEK certificate, DER only (as AMD KDS and the extended report serve it).
pub(crate) fn parse_vek(vek_der: &[u8]) -> Result<Certificate, Error> {
    Certificate::from_der(vek_der).map_err(|e| Error::Malformed {
        what: "VEK certificate",
        reason: e.to_string(),
    })
}

pub(crate) fn vek_extensions(cert: &Certificate) -> Result<VekExtensions, Error> {
    let required = |oid| {
        ext_u8(cert, oid)?.ok_or_else(|| Error::Malformed {
            what: "VEK certificate",
            reason: format!("missing extension {oid}"),
        })
    };
    let hw_id = match ext_value(cert, OID_HWID) {
        None => None,
        Some(raw) if is_hw_id_len(raw.len()) => Some(raw.to_vec()),
        Some(raw) => Some(
            OctetString::from_der(raw)
                .ok()
                .map(|o| o.as_bytes().to_vec())
                .filter(|v| is_hw_id_len(v.len()))
                .ok_or_else(|| Error::Malformed {
                    what: "VEK certificate",
                    reason: "hwID is neither 64 bytes nor 8 bytes (Turin)".into(),
                })?,
        ),
    };
    Ok(VekExtensions {
        bootloader: required(OID_BL)?,
        tee: required(OID_TEE)?,
        snp: required(OID_SNP)?,
        microcode: required(OID_UCODE)?,
        fmc: ext_u8(cert, OID_FMC)?,
        hw_id,
    })
}

/// The report's TCB must be the one the VEK was issued for.
pub(crate) fn check_tcb(tcb: &SnpTcb, ext: &VekExtensions) -> Result<(), Error> {
    let pairs = [
        ("bootloader", Some(tcb.bootloader), Some(ext.bootloader)),
        ("tee", Some(tcb.tee), Some(ext.tee)),
        ("snp", Some(tcb.snp), Some(ext.snp)),
        ("microcode", Some(tcb.microcode), Some(ext.microcode)),
        ("fmc", tcb.fmc, ext.fmc),
    ];
    for (name, reported, certified) in pairs {
        if reported != certified {
            return Err(Error::TcbMismatch {
                reason: format!("{name}: report {reported:?}, VEK certificate {certified:?}"),
            });
        }
    }
    Ok(())
}

/// The pinned SHA-256 fingerprint of a generation's ARK.
pub fn pinned_ark_fingerprint(generation: SnpGeneration) -> Option<&'static str> {
    ARK_SHA256
        .iter()
        .find(|(g, _)| *g == generation)
        .map(|(_, fp)| *fp)
}

/// The `sev` crate's own built-in ARK, so tests can check it against our pins.
pub fn sev_builtin_ark_der(generation: SnpGeneration) -> Result<Vec<u8>, Error> {
    use sev::certs::snp::builtin;
    let cert = match generation {
        SnpGeneration::Milan => builtin::milan::ark(),
        SnpGeneration::Genoa => builtin::genoa::ark(),
        SnpGeneration::Turin => builtin::turin::ark(),
    }
    .map_err(|e| Error::Internal(format!("sev built-in ARK: {e}")))?;
    cert.to_der()
        .map_err(|e| Error::Internal(format!("sev built-in ARK: {e}")))
}
