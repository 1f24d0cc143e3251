//! Maps dcap-qvl's untyped (anyhow) failures onto [`Error`] variants that name the failed
//! check. dcap-qvl reports failures as messages only, so this is by message, best effort; the
//! full message is always kept. An unrecognised message becomes `Malformed`, never success.

use dcap_qvl::TcbStatus as QvlStatus;

use super::Collateral;
use crate::{Error, TcbStatus, TeeKind, UnixTime};

pub(super) fn tcb_status(status: QvlStatus) -> TcbStatus {
    match status {
        QvlStatus::UpToDate => TcbStatus::UpToDate,
        QvlStatus::SWHardeningNeeded => TcbStatus::SWHardeningNeeded,
        QvlStatus::ConfigurationNeeded => TcbStatus::ConfigurationNeeded,
        QvlStatus::ConfigurationAndSWHardeningNeeded => {
            TcbStatus::ConfigurationAndSWHardeningNeeded
        }
        QvlStatus::OutOfDate | QvlStatus::TDRelaunchAdvised => TcbStatus::OutOfDate,
        QvlStatus::OutOfDateConfigurationNeeded
        | QvlStatus::TDRelaunchAdvisedConfigurationNeeded => {
            TcbStatus::OutOfDateConfigurationNeeded
        }
        QvlStatus::Revoked => TcbStatus::Revoked,
    }
}

pub(super) fn map(
    error: &impl std::fmt::Display,
    collateral: &Collateral,
    now: UnixTime,
    expected: TeeKind,
) -> Error {
    let msg = format!("{error:#}");
    let has = |needle: &str| msg.contains(needle);
    if has("Unsupported QE Identity id/version")
        || has("non-TDX TCB info")
        || has("non-SGX TCB info")
    {
        return Error::WrongTee {
            expected,
            found: format!("collateral for another TEE: {msg}"),
        };
    }
    if has("TCBInfo expired") || has("TCBInfo issue date is in the future") {
        let (nb, na) = json_window(&collateral.inner.tcb_info);
        return expired("TCB info", now, nb, na, &msg);
    }
    if has("QE Identity expired") || has("QE Identity issue date is in the future") {
        let (nb, na) = json_window(&collateral.inner.qe_identity);
        return expired("QE identity", now, nb, na, &msg);
    }
    if has("CrlExpired") {
        let next_update = numbers(&msg).get(1).copied().unwrap_or(0);
        return expired("CRL (PCK CA or root CA)", now, 0, next_update, &msg);
    }
    if has("CertExpired") || has("CertNotValidYet") {
        return Error::CertificateChain { reason: msg };
    }
    if has("CertRevoked") {
        return Error::Revoked { what: msg };
    }
    if has("TCB status is invalid: Revoked") {
        return Error::TcbOutOfDate {
            status: TcbStatus::Revoked,
            advisories: Vec::new(),
        };
    }
    if has("Fmspc mismatch") {
        return Error::TcbMismatch {
            reason: format!("FMSPC mismatch: {msg}"),
        };
    }
    if has("No matching TCB level") || has("TCB level check") || has("TDX module identity") {
        return Error::TcbMismatch {
            reason: format!("no matching TCB level: {msg}"),
        };
    }
    if has("Debug mode is enabled") || has("TD profiling is enabled") {
        return Error::DebugRefused(msg);
    }
    if has("Signature is invalid")
        || has("signature is invalid")
        || has("QE report hash mismatch")
        || has("InvalidSignatureForPublicKey")
        || has("InvalidCrlSignatureForPublicKey")
    {
        return Error::SignatureInvalid { what: msg };
    }
    if has("UnknownIssuer") || has("root ca") || has("chain is too short") {
        return Error::CertificateChain { reason: msg };
    }
    Error::Malformed {
        what: "DCAP quote or collateral",
        reason: msg,
    }
}

fn expired(what: &str, at: UnixTime, not_before: i64, not_after: i64, msg: &str) -> Error {
    Error::CollateralExpired {
        what: format!("{what} ({msg})"),
        at,
        not_before,
        not_after,
    }
}

/// All decimal numbers in `text`, in order: webpki's messages carry its times this way.
fn numbers(text: &str) -> Vec<i64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// `issueDate`/`nextUpdate` of a TCB info or QE identity body, as Unix seconds (0 if absent).
fn json_window(body: &str) -> (i64, i64) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else {
        return (0, 0);
    };
    let date = |key: &str| {
        value
            .get(key)
            .and_then(serde_json::Value::as_str)
            .and_then(parse_rfc3339)
            .unwrap_or(0)
    };
    (date("issueDate"), date("nextUpdate"))
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ` (the only form Intel's collateral uses).
pub(super) fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let separators = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'Z'),
    ];
    if b.len() != 20 || separators.iter().any(|&(i, c)| b.get(i) != Some(&c)) {
        return None;
    }
    let num = |range: std::ops::Range<usize>| {
        let digits = text.get(range)?;
        digits
            .bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| digits.parse::<i64>().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Howard Hinnant's days_from_civil; all values are small, so checked math never fails.
    let y = if m <= 2 { y.checked_sub(1)? } else { y };
    let era = y.div_euclid(400);
    let yoe = y.checked_sub(era.checked_mul(400)?)?;
    let mp = if m > 2 {
        m.checked_sub(3)?
    } else {
        m.checked_add(9)?
    };
    let doy = mp
        .checked_mul(153)?
        .checked_add(2)?
        .checked_div(5)?
        .checked_add(d)?
        .checked_sub(1)?;
    let doe = yoe
        .checked_mul(365)?
        .checked_add(yoe / 4)?
        .checked_sub(yoe / 100)?
        .checked_add(doy)?;
    let days = era
        .checked_mul(146_097)?
        .checked_add(doe)?
        .checked_sub(719_468)?;
    days.checked_mul(86_400)?
        .checked_add(hh.checked_mul(3600)?)?
        .checked_add(mm.checked_mul(60)?)?
        .checked_add(ss)
}

#[cfg(test)]
mod tests {
    use super::parse_rfc3339;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2023-07-12T20:48:25Z"), Some(1_689_194_905));
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        assert_eq!(parse_rfc3339("2025-07-19T10:01:18Z"), Some(1_752_919_278));
        for bad in [
            "",
            "2023-07-12T20:48:25",
            "2023-13-01T00:00:00Z",
            "2023-07-12 20:48:25Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
