//! X.509 checks shared by the verifiers that walk certificate chains themselves (SEV-SNP, Nitro).

use x509_cert::Certificate;

use crate::{Error, UnixTime};

/// Refuses `cert` (called `label` in messages) outside its validity window at `now`; returns its
/// notAfter.
pub(crate) fn check_validity(
    cert: &Certificate,
    label: &str,
    now: UnixTime,
) -> Result<UnixTime, Error> {
    let chain_err = |reason: String| Error::CertificateChain { reason };
    let v = &cert.tbs_certificate.validity;
    let secs = |t: x509_cert::time::Time| i64::try_from(t.to_unix_duration().as_secs());
    let (Ok(nb), Ok(na)) = (secs(v.not_before), secs(v.not_after)) else {
        return Err(chain_err(format!("{label}: validity out of range")));
    };
    if now < nb || now > na {
        return Err(chain_err(format!(
            "{label} not valid at {now} (valid {nb} to {na})"
        )));
    }
    Ok(na)
}
