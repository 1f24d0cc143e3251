//! Typed claims read from SGX and TDX quote bodies. Serialised as lowercase hex.

use dcap_qvl::quote::{EnclaveReport, TDReport10};
use serde::Serialize;

use crate::claims::as_hex;

/// Claims from an SGX enclave report (quote v3) plus the FMSPC of the quote's PCK certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SgxClaims {
    #[serde(serialize_with = "as_hex")]
    pub mrenclave: [u8; 32],
    #[serde(serialize_with = "as_hex")]
    pub mrsigner: [u8; 32],
    pub isv_prod_id: u16,
    pub isv_svn: u16,
    #[serde(serialize_with = "as_hex")]
    pub attributes: [u8; 16],
    #[serde(serialize_with = "as_hex")]
    pub report_data: [u8; 64],
    #[serde(serialize_with = "as_hex")]
    pub fmspc: [u8; 6],
}

impl SgxClaims {
    pub(crate) fn from_report(report: &EnclaveReport, fmspc: [u8; 6]) -> Self {
        Self {
            mrenclave: report.mr_enclave,
            mrsigner: report.mr_signer,
            isv_prod_id: report.isv_prod_id,
            isv_svn: report.isv_svn,
            attributes: report.attributes,
            report_data: report.report_data,
            fmspc,
        }
    }

    /// ATTRIBUTES.DEBUG (bit 1 of the first byte): the enclave's memory is readable by the
    /// host, so it proves nothing about confidentiality.
    pub fn is_debug(&self) -> bool {
        self.attributes.first().is_some_and(|b| b & 0x02 != 0)
    }
}

/// Claims from a TDX TD report (quote v4 body, or v5 body type 2/3/4: the TD 1.0 fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TdxClaims {
    /// The quote version: 4 or 5.
    pub quote_version: u16,
    #[serde(serialize_with = "as_hex")]
    pub mrtd: [u8; 48],
    #[serde(serialize_with = "rtmrs_hex")]
    pub rtmr: [[u8; 48]; 4],
    #[serde(serialize_with = "as_hex")]
    pub mrconfigid: [u8; 48],
    #[serde(serialize_with = "as_hex")]
    pub mrowner: [u8; 48],
    #[serde(serialize_with = "as_hex")]
    pub mrownerconfig: [u8; 48],
    #[serde(serialize_with = "as_hex")]
    pub mrseam: [u8; 48],
    #[serde(serialize_with = "as_hex")]
    pub td_attributes: [u8; 8],
    #[serde(serialize_with = "as_hex")]
    pub xfam: [u8; 8],
    #[serde(serialize_with = "as_hex")]
    pub tee_tcb_svn: [u8; 16],
    #[serde(serialize_with = "as_hex")]
    pub report_data: [u8; 64],
    #[serde(serialize_with = "as_hex")]
    pub fmspc: [u8; 6],
}

fn rtmrs_hex<S: serde::Serializer>(rtmr: &[[u8; 48]; 4], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(rtmr.iter().map(hex::encode))
}

impl TdxClaims {
    pub(crate) fn from_report(version: u16, report: &TDReport10, fmspc: [u8; 6]) -> Self {
        Self {
            quote_version: version,
            mrtd: report.mr_td,
            rtmr: [report.rt_mr0, report.rt_mr1, report.rt_mr2, report.rt_mr3],
            mrconfigid: report.mr_config_id,
            mrowner: report.mr_owner,
            mrownerconfig: report.mr_owner_config,
            mrseam: report.mr_seam,
            td_attributes: report.td_attributes,
            xfam: report.xfam,
            tee_tcb_svn: report.tee_tcb_svn,
            report_data: report.report_data,
            fmspc,
        }
    }

    /// TD_ATTRIBUTES.DEBUG (bit 0): the host can read and change the TD's state.
    pub fn is_debug(&self) -> bool {
        self.td_attributes.first().is_some_and(|b| b & 0x01 != 0)
    }
}
