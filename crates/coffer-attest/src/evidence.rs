//! Evidence from any TEE, the claims it carries once verified, and one verifier that
//! dispatches on the kind.

use std::collections::BTreeMap;

use coset::CborSerializable;
use coset::cbor::Value;
use serde::Serialize;

use crate::dcap::{Collateral, DcapVerifier, SgxClaims, TdxClaims};
use crate::nitro::NitroClaims;
use crate::sim::SimClaims;
use crate::snp::SnpClaims;
use crate::{Error, TcbStatus, TeeKind, UnixTime};

/// Upper bound on encoded evidence (a TDX quote with its PCK chain is about 5 KiB, an SNP
/// report with VCEK, ASK and ARK about 6 KiB).
pub const MAX_EVIDENCE_LEN: usize = 64 * 1024;

/// Evidence as a TEE produces it, tagged with its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// A DCAP quote v3 (with its PCK chain inside, certification data type 5).
    Sgx(Vec<u8>),
    /// A DCAP quote v4 or v5.
    Tdx(Vec<u8>),
    /// An attestation report and the certificates to check it: the VCEK or VLEK (DER), and
    /// optionally ASK/ASVK/ARK (DER or PEM).
    Snp {
        report: Vec<u8>,
        certs: Vec<Vec<u8>>,
    },
    /// A COSE_Sign1 attestation document.
    Nitro(Vec<u8>),
    /// Coffer's simulated evidence: proves nothing.
    Sim(Vec<u8>),
}

fn malformed(reason: impl Into<String>) -> Error {
    Error::Malformed {
        what: "evidence encoding",
        reason: reason.into(),
    }
}

impl Evidence {
    pub fn tee(&self) -> TeeKind {
        match self {
            Self::Sgx(_) => TeeKind::Sgx,
            Self::Tdx(_) => TeeKind::Tdx,
            Self::Snp { .. } => TeeKind::Snp,
            Self::Nitro(_) => TeeKind::Nitro,
            Self::Sim(_) => TeeKind::Sim,
        }
    }

    /// Evidence of `tee` from its vendor bytes; for SNP, `certs` as in [`Evidence::Snp`].
    pub fn from_parts(tee: TeeKind, data: Vec<u8>, certs: Vec<Vec<u8>>) -> Result<Self, Error> {
        if !certs.is_empty() && tee != TeeKind::Snp {
            return Err(malformed(format!(
                "certificates are carried only with SNP evidence, not {tee}"
            )));
        }
        Ok(match tee {
            TeeKind::Sgx => Self::Sgx(data),
            TeeKind::Tdx => Self::Tdx(data),
            TeeKind::Snp => Self::Snp {
                report: data,
                certs,
            },
            TeeKind::Nitro => Self::Nitro(data),
            TeeKind::Sim => Self::Sim(data),
        })
    }

    /// The vendor bytes: quote, report, document.
    pub fn data(&self) -> &[u8] {
        match self {
            Self::Sgx(d) | Self::Tdx(d) | Self::Nitro(d) | Self::Sim(d) => d,
            Self::Snp { report, .. } => report,
        }
    }

    /// Coffer's wire form (in RA-TLS certificates and over the API): the CBOR array
    /// `[tee: tstr, data: bstr, certs: [* bstr]]`.
    pub fn to_cbor(&self) -> Result<Vec<u8>, Error> {
        let certs = match self {
            Self::Snp { certs, .. } => certs.iter().cloned().map(Value::Bytes).collect(),
            _ => Vec::new(),
        };
        Value::Array(vec![
            Value::Text(self.tee().to_string()),
            Value::Bytes(self.data().to_vec()),
            Value::Array(certs),
        ])
        .to_vec()
        .map_err(|e| Error::Internal(format!("encoding evidence: {e}")))
    }

    /// Parses [`Evidence::to_cbor`]'s form.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_EVIDENCE_LEN {
            return Err(malformed(format!(
                "{} bytes (at most {MAX_EVIDENCE_LEN})",
                bytes.len()
            )));
        }
        let value = Value::from_slice(bytes).map_err(|_| malformed("not CBOR"))?;
        Self::from_cbor_value(value)
    }

    pub(crate) fn from_cbor_value(value: Value) -> Result<Self, Error> {
        let Value::Array(items) = value else {
            return Err(malformed("not an array"));
        };
        let [Value::Text(tee), Value::Bytes(data), Value::Array(certs)] =
            <[Value; 3]>::try_from(items).map_err(|_| malformed("expected 3 elements"))?
        else {
            return Err(malformed("expected [tee, data, certs]"));
        };
        let tee: TeeKind = tee.parse().map_err(malformed)?;
        let certs = certs
            .into_iter()
            .map(|c| match c {
                Value::Bytes(b) => Ok(b),
                _ => Err(malformed("certificate is not a byte string")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_parts(tee, data, certs)
    }
}

/// What verified evidence says about the workload, per TEE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claims {
    Sgx(SgxClaims),
    Tdx(TdxClaims),
    Snp(SnpClaims),
    Nitro(NitroClaims),
    Sim(SimClaims),
}

impl Claims {
    pub fn tee(&self) -> TeeKind {
        match self {
            Self::Sgx(_) => TeeKind::Sgx,
            Self::Tdx(_) => TeeKind::Tdx,
            Self::Snp(_) => TeeKind::Snp,
            Self::Nitro(_) => TeeKind::Nitro,
            Self::Sim(_) => TeeKind::Sim,
        }
    }

    /// Whether the host can read the workload's memory.
    pub fn debug(&self) -> bool {
        match self {
            Self::Sgx(c) => c.is_debug(),
            Self::Tdx(c) => c.is_debug(),
            Self::Snp(c) => c.debug(),
            Self::Nitro(c) => c.debug,
            Self::Sim(c) => c.debug,
        }
    }

    /// The data the workload bound into the evidence: REPORTDATA (SGX, TDX, SNP, sim) or the
    /// document's `user_data` (Nitro; empty when absent).
    pub fn report_data(&self) -> &[u8] {
        match self {
            Self::Sgx(c) => &c.report_data,
            Self::Tdx(c) => &c.report_data,
            Self::Snp(c) => &c.report_data,
            Self::Nitro(c) => c.user_data.as_deref().unwrap_or_default(),
            Self::Sim(c) => &c.report_data,
        }
    }

    /// The measurement registers, by the names policies use (`mrenclave`, `rtmr0`, `pcr3`…).
    pub fn measurements(&self) -> BTreeMap<String, Vec<u8>> {
        let mut m = BTreeMap::new();
        let mut put = |name: &str, value: &[u8]| {
            m.insert(name.to_owned(), value.to_vec());
        };
        match self {
            Self::Sgx(c) => {
                put("mrenclave", &c.mrenclave);
                put("mrsigner", &c.mrsigner);
            }
            Self::Tdx(c) => {
                put("mrtd", &c.mrtd);
                for (i, r) in c.rtmr.iter().enumerate() {
                    put(&format!("rtmr{i}"), r);
                }
                put("mrconfigid", &c.mrconfigid);
                put("mrowner", &c.mrowner);
                put("mrownerconfig", &c.mrownerconfig);
            }
            Self::Snp(c) => {
                put("measurement", &c.measurement);
                put("host_data", &c.host_data);
            }
            Self::Nitro(c) => {
                for (i, v) in &c.pcrs {
                    put(&format!("pcr{i}"), v);
                }
            }
            Self::Sim(c) => put("measurement", &c.measurement),
        }
        m
    }

    /// Numeric claims policies can bound: SGX `isvprodid`, `isvsvn`; SNP `guest_svn`, `vmpl`.
    pub fn number(&self, name: &str) -> Option<u64> {
        match (self, name) {
            (Self::Sgx(c), "isvprodid") => Some(c.isv_prod_id.into()),
            (Self::Sgx(c), "isvsvn") => Some(c.isv_svn.into()),
            (Self::Snp(c), "guest_svn") => Some(c.guest_svn.into()),
            (Self::Snp(c), "vmpl") => Some(c.vmpl.into()),
            _ => None,
        }
    }
}

impl Serialize for Claims {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(4))?;
        map.serialize_entry("tee", &self.tee())?;
        map.serialize_entry("debug", &self.debug())?;
        let measurements: BTreeMap<String, String> = self
            .measurements()
            .into_iter()
            .map(|(k, v)| (k, hex::encode(v)))
            .collect();
        map.serialize_entry("measurements", &measurements)?;
        map.serialize_entry("report_data", &hex::encode(self.report_data()))?;
        map.end()
    }
}

/// Evidence whose signatures, certificate chains and collateral are valid at the time given.
/// Nothing here has been judged yet: that is [`crate::Policy`]'s job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    pub claims: Claims,
    /// The platform's TCB status where the vendor publishes one (SGX, TDX; SNP's means only
    /// that the reported TCB is the VEK's); `None` for Nitro and sim.
    pub tcb_status: Option<TcbStatus>,
    /// Intel security advisories that apply to the platform's TCB level.
    pub advisories: Vec<String>,
    /// When the collateral was issued (the latest issue date over all of it), and when the
    /// first piece of it expires; `None` where no collateral is used.
    pub collateral_window: Option<(UnixTime, UnixTime)>,
}

/// Verifies evidence of any kind with what the caller trusts: DCAP collateral, sim roots. The
/// hardware roots (Intel, AMD, AWS) are built in and pinned.
///
/// Debug workloads verify here (their claims say so); refusing them is the policy's job.
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    collateral: Option<Collateral>,
    sim_roots: Vec<[u8; 32]>,
}

impl Verifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Collateral for SGX and TDX quotes.
    pub fn with_collateral(mut self, collateral: Collateral) -> Self {
        self.collateral = Some(collateral);
        self
    }

    /// Trusts a simulated platform key. Sim evidence still fails appraisal unless the policy
    /// allows simulation.
    pub fn with_sim_root(mut self, platform_key: [u8; 32]) -> Self {
        self.sim_roots.push(platform_key);
        self
    }

    pub fn verify(&self, evidence: &Evidence, now: UnixTime) -> Result<Verified, Error> {
        let dcap = || -> Result<(DcapVerifier, &Collateral), Error> {
            let collateral = self.collateral.as_ref().ok_or_else(|| {
                Error::Missing("DCAP collateral (TCB info, QE identity, CRLs)".into())
            })?;
            Ok((
                DcapVerifier::default().dangerous_allow_debug(true),
                collateral,
            ))
        };
        match evidence {
            Evidence::Sgx(quote) => {
                let (v, c) = dcap()?;
                let r = v.verify_sgx(quote, c, now)?;
                Ok(Verified {
                    claims: Claims::Sgx(r.claims),
                    tcb_status: Some(r.tcb_status),
                    advisories: r.advisories,
                    collateral_window: Some(r.collateral_window),
                })
            }
            Evidence::Tdx(quote) => {
                let (v, c) = dcap()?;
                let r = v.verify_tdx(quote, c, now)?;
                Ok(Verified {
                    claims: Claims::Tdx(r.claims),
                    tcb_status: Some(r.tcb_status),
                    advisories: r.advisories,
                    collateral_window: Some(r.collateral_window),
                })
            }
            Evidence::Snp { report, certs } => {
                let r = crate::snp::verify_snp_with_certs(report, certs, now)?;
                Ok(Verified {
                    claims: Claims::Snp(r.claims),
                    tcb_status: Some(r.tcb_status),
                    advisories: Vec::new(),
                    collateral_window: None,
                })
            }
            Evidence::Nitro(doc) => {
                let r = crate::nitro::verify_nitro(doc, now)?;
                Ok(Verified {
                    claims: Claims::Nitro(r.claims),
                    tcb_status: None,
                    advisories: Vec::new(),
                    collateral_window: None,
                })
            }
            Evidence::Sim(ev) => Ok(Verified {
                claims: Claims::Sim(crate::sim::verify_sim(ev, &self.sim_roots, now)?),
                tcb_status: None,
                advisories: Vec::new(),
                collateral_window: None,
            }),
        }
    }
}
