//! Appraisal policy: which verified evidence Coffer accepts. Deny by default: an empty policy
//! accepts nothing.
//!
//! The same type is a manifest's `enclave:` section and a stand-alone `--policy` file (YAML or
//! JSON):
//!
//! ```yaml
//! tee: [sgx, sim]
//! measurements:
//!   - "sgx:mrenclave=<64 hex>"
//!   - "sgx:mrsigner=<64 hex>,isvprodid=1,isvsvn>=3"
//!   - "sim:measurement=<96 hex>"
//! allow_debug: false
//! allow_simulation: true
//! accepted_tcb: [UpToDate, SWHardeningNeeded]
//! accepted_advisories: [INTEL-SA-00615]
//! max_collateral_age: 30d
//! report_data: "<hex>"
//! ```
//!
//! A measurement rule is `<tee>:<term>[,<term>]…`; all its terms must hold, and evidence must
//! satisfy at least one rule of its kind. A term is `name=hex` for a register, or `name=N` /
//! `name>=N` for a number:
//!
//! | tee | registers | numbers | a rule must name |
//! |---|---|---|---|
//! | sgx | `mrenclave`, `mrsigner` | `isvprodid`, `isvsvn` | `mrenclave`, or `mrsigner` with `isvprodid` and `isvsvn` |
//! | tdx | `mrtd`, `rtmr0`–`rtmr3`, `mrconfigid`, `mrowner`, `mrownerconfig` | | `mrtd` |
//! | snp | `measurement`, `host_data` | `guest_svn`, `vmpl` | `measurement` |
//! | nitro | `pcr0`–`pcr31` | | a PCR |
//! | sim | `measurement` | | `measurement` |

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::evidence::{Claims, Verified};
use crate::{Error, TcbStatus, TeeKind, UnixTime};

/// An appraisal policy. See the module documentation for the file format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// TEE kinds accepted. Empty: none.
    #[serde(default)]
    pub tee: Vec<TeeKind>,
    /// Measurement rules; evidence must match one rule of its kind.
    #[serde(default)]
    pub measurements: Vec<MeasurementRule>,
    #[serde(default)]
    pub allow_debug: bool,
    /// Accept sim evidence, which proves nothing. Development only.
    #[serde(default)]
    pub allow_simulation: bool,
    /// TCB statuses accepted where the TEE reports one (SGX, TDX, SNP).
    #[serde(default = "default_tcb")]
    pub accepted_tcb: Vec<TcbStatus>,
    /// Advisory ids accepted: any other advisory on the platform's TCB level is refused.
    #[serde(default)]
    pub accepted_advisories: Vec<String>,
    /// The oldest collateral accepted, counted from its latest issue date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_collateral_age: Option<Age>,
    /// Expected report data (SGX/TDX/SNP/sim REPORTDATA, Nitro `user_data`), zero-padded to the
    /// field's length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_data: Option<HexBytes>,
}

fn default_tcb() -> Vec<TcbStatus> {
    vec![TcbStatus::UpToDate]
}

impl Default for Policy {
    /// Accepts nothing.
    fn default() -> Self {
        Self {
            tee: Vec::new(),
            measurements: Vec::new(),
            allow_debug: false,
            allow_simulation: false,
            accepted_tcb: default_tcb(),
            accepted_advisories: Vec::new(),
            max_collateral_age: None,
            report_data: None,
        }
    }
}

fn policy_error(reason: impl Into<String>) -> Error {
    Error::Malformed {
        what: "appraisal policy",
        reason: reason.into(),
    }
}

impl Policy {
    /// Whether every piece of evidence this policy accepts, `other` accepts too, judged rule by
    /// rule (conservatively: a rule written differently counts as different). A key granted
    /// under both policies is only as safe as the weaker one.
    pub fn at_least_as_strict_as(&self, other: &Policy) -> bool {
        fn subset<T: PartialEq>(a: &[T], b: &[T]) -> bool {
            a.iter().all(|x| b.contains(x))
        }
        let age_ok = match (&self.max_collateral_age, &other.max_collateral_age) {
            (_, None) => true,
            (Some(mine), Some(theirs)) => mine.0 <= theirs.0,
            (None, Some(_)) => false,
        };
        let report_data_ok = other.report_data.is_none() || self.report_data == other.report_data;
        self.tee.iter().all(|t| other.tee.contains(t))
            && subset(&self.measurements, &other.measurements)
            && (!self.allow_debug || other.allow_debug)
            && (!self.allow_simulation || other.allow_simulation)
            && subset(&self.accepted_tcb, &other.accepted_tcb)
            && subset(&self.accepted_advisories, &other.accepted_advisories)
            && age_ok
            && report_data_ok
    }

    /// Parses a policy from YAML (JSON is YAML too).
    pub fn from_yaml(text: &str) -> Result<Self, Error> {
        serde_norway::from_str(text).map_err(|e| policy_error(e.to_string()))
    }

    /// Judges verified evidence at `now`. Every failed check is listed, not just the first.
    pub fn appraise(&self, verified: &Verified, now: UnixTime) -> Verdict {
        let failed_checks = self.check(verified, now);
        Verdict {
            accepted: failed_checks.is_empty(),
            claims: Some(verified.clone()),
            failed_checks,
        }
    }

    /// The checks [`Policy::appraise`] runs, for callers that add their own (RA-TLS binding).
    pub fn check(&self, verified: &Verified, now: UnixTime) -> Vec<FailedCheck> {
        let claims = &verified.claims;
        let tee = claims.tee();
        let mut failed = Vec::new();
        if !self.tee.contains(&tee) {
            failed.push(FailedCheck::TeeNotAllowed(tee));
        }
        if tee == TeeKind::Sim && !self.allow_simulation {
            failed.push(FailedCheck::SimulationNotAllowed);
        }
        if claims.debug() && !self.allow_debug {
            failed.push(FailedCheck::DebugNotAllowed);
        }
        let rules: Vec<&MeasurementRule> =
            self.measurements.iter().filter(|r| r.tee == tee).collect();
        if rules.is_empty() {
            failed.push(FailedCheck::NoMeasurementRule(tee));
        } else if !rules.iter().any(|r| r.matches(claims)) {
            failed.push(FailedCheck::MeasurementNotAllowed {
                tee,
                found: claims
                    .measurements()
                    .into_iter()
                    .map(|(k, v)| (k, hex::encode(v)))
                    .collect(),
            });
        }
        if let Some(status) = verified.tcb_status
            && !self.accepted_tcb.contains(&status)
        {
            failed.push(FailedCheck::TcbStatusNotAccepted(status));
        }
        for id in &verified.advisories {
            if !self.accepted_advisories.contains(id) {
                failed.push(FailedCheck::AdvisoryNotAccepted(id.clone()));
            }
        }
        if let (Some(max), Some((issued, _))) =
            (self.max_collateral_age, verified.collateral_window)
        {
            let age = now.saturating_sub(issued);
            if age > max.0 {
                failed.push(FailedCheck::CollateralTooOld {
                    age_secs: age,
                    max_secs: max.0,
                });
            }
        }
        if let Some(expected) = &self.report_data
            && !report_data_matches(&expected.0, claims.report_data())
        {
            failed.push(FailedCheck::ReportDataMismatch {
                expected: hex::encode(&expected.0),
                found: hex::encode(claims.report_data()),
            });
        }
        failed
    }
}

/// `expected` equals `found` once zero-padded to its length.
fn report_data_matches(expected: &[u8], found: &[u8]) -> bool {
    expected.len() <= found.len()
        && found
            .iter()
            .enumerate()
            .all(|(i, b)| *b == expected.get(i).copied().unwrap_or(0))
}

/// The outcome of appraisal: accepted only if nothing failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub accepted: bool,
    /// The verified claims; `None` when the evidence did not verify.
    pub claims: Option<Verified>,
    pub failed_checks: Vec<FailedCheck>,
}

impl Verdict {
    /// The verdict for evidence that did not verify.
    pub fn not_verified(error: &Error) -> Self {
        Self {
            accepted: false,
            claims: None,
            failed_checks: vec![FailedCheck::from_error(error)],
        }
    }
}

/// One reason appraisal refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailedCheck {
    /// The evidence did not verify; `check` is [`Error::check`].
    Evidence {
        check: &'static str,
        reason: String,
    },
    TeeNotAllowed(TeeKind),
    SimulationNotAllowed,
    DebugNotAllowed,
    /// The policy names no measurement for this kind of TEE.
    NoMeasurementRule(TeeKind),
    MeasurementNotAllowed {
        tee: TeeKind,
        found: BTreeMap<String, String>,
    },
    TcbStatusNotAccepted(TcbStatus),
    AdvisoryNotAccepted(String),
    CollateralTooOld {
        age_secs: i64,
        max_secs: i64,
    },
    ReportDataMismatch {
        expected: String,
        found: String,
    },
    /// RA-TLS: the evidence does not bind the certificate's public key.
    KeyNotBound,
    /// RA-TLS: the evidence was not made for the verifier's nonce.
    NonceMismatch,
    /// RA-TLS: the certificate is outside its validity period (`notBefore`..`notAfter`), so
    /// a leaked key and certificate stop working when it ends.
    CertificateExpired {
        /// `notBefore`, Unix seconds.
        not_before: i64,
        /// `notAfter`, Unix seconds.
        not_after: i64,
        /// The verifier's time.
        now: i64,
    },
}

impl FailedCheck {
    /// The failed check for evidence that did not verify.
    pub fn from_error(error: &Error) -> Self {
        Self::Evidence {
            check: error.check(),
            reason: error.to_string(),
        }
    }

    /// A stable name for the check, for JSON and for matching.
    pub fn check(&self) -> &'static str {
        match self {
            Self::Evidence { check, .. } => check,
            Self::TeeNotAllowed(_) => "tee",
            Self::SimulationNotAllowed => "simulation",
            Self::DebugNotAllowed => "debug",
            Self::NoMeasurementRule(_) | Self::MeasurementNotAllowed { .. } => "measurement",
            Self::TcbStatusNotAccepted(_) => "tcb_status",
            Self::AdvisoryNotAccepted(_) => "advisory",
            Self::CollateralTooOld { .. } => "collateral_age",
            Self::ReportDataMismatch { .. } => "report_data",
            Self::KeyNotBound => "key_binding",
            Self::NonceMismatch => "nonce",
            Self::CertificateExpired { .. } => "certificate_expired",
        }
    }
}

impl fmt::Display for FailedCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Evidence { reason, .. } => write!(f, "evidence did not verify: {reason}"),
            Self::TeeNotAllowed(t) => write!(f, "TEE {t} is not allowed by the policy"),
            Self::SimulationNotAllowed => {
                f.write_str("simulated evidence refused: the policy does not allow simulation")
            }
            Self::DebugNotAllowed => {
                f.write_str("debug workload refused: the host can read its memory")
            }
            Self::NoMeasurementRule(t) => write!(f, "the policy allows no {t} measurement"),
            Self::MeasurementNotAllowed { tee, found } => {
                write!(f, "{tee} measurements match no rule of the policy: ")?;
                let parts: Vec<String> = found.iter().map(|(k, v)| format!("{k}={v}")).collect();
                f.write_str(&parts.join(", "))
            }
            Self::TcbStatusNotAccepted(s) => write!(f, "TCB status {s:?} is not accepted"),
            Self::AdvisoryNotAccepted(id) => write!(f, "advisory {id} is not accepted"),
            Self::CollateralTooOld { age_secs, max_secs } => write!(
                f,
                "collateral issued {age_secs} s ago, older than the policy's {max_secs} s"
            ),
            Self::ReportDataMismatch { expected, found } => {
                write!(f, "report data {found} is not the expected {expected}")
            }
            Self::KeyNotBound => {
                f.write_str("the evidence does not bind the certificate's public key")
            }
            Self::NonceMismatch => f.write_str("the evidence was not made for this nonce"),
            Self::CertificateExpired {
                not_before,
                not_after,
                now,
            } => write!(
                f,
                "the RA-TLS certificate is valid from {not_before} to {not_after} (Unix time), \
                 not at {now}"
            ),
        }
    }
}

impl Serialize for FailedCheck {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("check", self.check())?;
        map.serialize_entry("reason", &self.to_string())?;
        map.end()
    }
}

/// One measurement rule, written `<tee>:<term>[,<term>]…`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MeasurementRule {
    pub tee: TeeKind,
    pub terms: Vec<Term>,
}

/// A condition on one claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// A register equals this value.
    Register { name: String, value: Vec<u8> },
    /// A number equals this value.
    Equals { name: String, value: u64 },
    /// A number is at least this value.
    AtLeast { name: String, value: u64 },
}

/// Registers by TEE, with their sizes; `None` for Nitro PCRs, whose size is the digest's.
fn register_len(tee: TeeKind, name: &str) -> Option<Option<usize>> {
    match (tee, name) {
        (TeeKind::Sgx, "mrenclave" | "mrsigner") => Some(Some(32)),
        (
            TeeKind::Tdx,
            "mrtd" | "rtmr0" | "rtmr1" | "rtmr2" | "rtmr3" | "mrconfigid" | "mrowner"
            | "mrownerconfig",
        ) => Some(Some(48)),
        (TeeKind::Snp, "measurement") => Some(Some(48)),
        (TeeKind::Snp, "host_data") => Some(Some(32)),
        (TeeKind::Sim, "measurement") => Some(Some(48)),
        (TeeKind::Nitro, pcr) => pcr
            .strip_prefix("pcr")
            .and_then(|n| n.parse::<u8>().ok())
            .filter(|n| *n < 32 && pcr == format!("pcr{n}"))
            .map(|_| None),
        _ => None,
    }
}

fn is_number(tee: TeeKind, name: &str) -> bool {
    matches!(
        (tee, name),
        (TeeKind::Sgx, "isvprodid" | "isvsvn") | (TeeKind::Snp, "guest_svn" | "vmpl")
    )
}

impl Term {
    fn name(&self) -> &str {
        match self {
            Self::Register { name, .. }
            | Self::Equals { name, .. }
            | Self::AtLeast { name, .. } => name,
        }
    }

    fn parse(tee: TeeKind, text: &str) -> Result<Self, String> {
        if let Some((name, value)) = text.split_once(">=") {
            let name = name.trim();
            if !is_number(tee, name) {
                return Err(format!("{tee} has no number {name:?} to bound with >="));
            }
            let value = value
                .trim()
                .parse()
                .map_err(|_| format!("{name}: {value:?} is not a number"))?;
            return Ok(Self::AtLeast {
                name: name.into(),
                value,
            });
        }
        let (name, value) = text
            .split_once('=')
            .ok_or_else(|| format!("term {text:?} is not name=value or name>=value"))?;
        let (name, value) = (name.trim(), value.trim());
        if is_number(tee, name) {
            let value = value
                .parse()
                .map_err(|_| format!("{name}: {value:?} is not a number"))?;
            return Ok(Self::Equals {
                name: name.into(),
                value,
            });
        }
        let len = register_len(tee, name).ok_or_else(|| format!("{tee} has no claim {name:?}"))?;
        let hex_text = value.strip_prefix("0x").unwrap_or(value);
        let bytes = hex::decode(hex_text).map_err(|e| format!("{name}: not hex ({e})"))?;
        match len {
            Some(n) if bytes.len() != n => Err(format!(
                "{tee}:{name} is {n} bytes ({} hex digits), got {}",
                n.saturating_mul(2),
                bytes.len()
            )),
            None if ![32, 48, 64].contains(&bytes.len()) => Err(format!(
                "{name}: {} bytes is not a SHA-256/384/512 digest",
                bytes.len()
            )),
            _ => Ok(Self::Register {
                name: name.into(),
                value: bytes,
            }),
        }
    }

    fn holds(&self, claims: &Claims, registers: &BTreeMap<String, Vec<u8>>) -> bool {
        match self {
            Self::Register { name, value } => registers.get(name) == Some(value),
            Self::Equals { name, value } => claims.number(name) == Some(*value),
            Self::AtLeast { name, value } => claims.number(name).is_some_and(|n| n >= *value),
        }
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Register { name, value } => write!(f, "{name}={}", hex::encode(value)),
            Self::Equals { name, value } => write!(f, "{name}={value}"),
            Self::AtLeast { name, value } => write!(f, "{name}>={value}"),
        }
    }
}

impl MeasurementRule {
    pub fn matches(&self, claims: &Claims) -> bool {
        if claims.tee() != self.tee {
            return false;
        }
        let registers = claims.measurements();
        self.terms.iter().all(|t| t.holds(claims, &registers))
    }
}

impl std::str::FromStr for MeasurementRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (tee, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("measurement {s:?} is not <tee>:<name>=<hex>"))?;
        let tee: TeeKind = tee.trim().parse()?;
        let terms = rest
            .split(',')
            .map(|t| Term::parse(tee, t))
            .collect::<Result<Vec<_>, _>>()?;
        let has = |n: &str| terms.iter().any(|t| t.name() == n);
        let mut names: Vec<&str> = terms.iter().map(Term::name).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w.first() == w.get(1)) {
            return Err(format!("measurement {s:?} names a claim twice"));
        }
        let pins_identity = match tee {
            TeeKind::Sgx => {
                has("mrenclave") || (has("mrsigner") && has("isvprodid") && has("isvsvn"))
            }
            TeeKind::Tdx => has("mrtd"),
            TeeKind::Snp | TeeKind::Sim => has("measurement"),
            TeeKind::Nitro => terms.iter().any(|t| t.name().starts_with("pcr")),
        };
        if !pins_identity {
            return Err(format!(
                "measurement {s:?} does not pin the workload: {}",
                match tee {
                    TeeKind::Sgx =>
                        "an SGX rule needs mrenclave, or mrsigner with isvprodid and isvsvn",
                    TeeKind::Tdx => "a TDX rule needs mrtd",
                    TeeKind::Snp | TeeKind::Sim => "the rule needs measurement",
                    TeeKind::Nitro => "a Nitro rule needs a PCR",
                }
            ));
        }
        Ok(Self { tee, terms })
    }
}

impl TryFrom<String> for MeasurementRule {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for MeasurementRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.tee)?;
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

impl From<MeasurementRule> for String {
    fn from(r: MeasurementRule) -> String {
        r.to_string()
    }
}

/// A duration in seconds, written as an integer of seconds or with a unit: `90s`, `45m`, `12h`,
/// `30d`, `2w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "AgeText", into = "i64")]
pub struct Age(pub i64);

#[derive(Deserialize)]
#[serde(untagged)]
enum AgeText {
    Secs(i64),
    Text(String),
}

impl TryFrom<AgeText> for Age {
    type Error = String;

    fn try_from(t: AgeText) -> Result<Self, String> {
        let secs = match t {
            AgeText::Secs(s) => s,
            AgeText::Text(s) => {
                let s = s.trim();
                let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
                let (n, unit) = s.split_at(split);
                let n: i64 = n.parse().map_err(|_| format!("age {s:?}: no number"))?;
                let mult = match unit.trim() {
                    "" | "s" => 1,
                    "m" => 60,
                    "h" => 3600,
                    "d" => 86_400,
                    "w" => 604_800,
                    u => return Err(format!("age {s:?}: unknown unit {u:?} (s, m, h, d, w)")),
                };
                n.checked_mul(mult)
                    .ok_or_else(|| format!("age {s:?} out of range"))?
            }
        };
        if secs < 0 {
            return Err(format!("age {secs} is negative"));
        }
        Ok(Self(secs))
    }
}

impl From<Age> for i64 {
    fn from(a: Age) -> i64 {
        a.0
    }
}

/// Bytes written as hex (an optional `0x` prefix is accepted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HexBytes(pub Vec<u8>);

impl TryFrom<String> for HexBytes {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let t = s.trim();
        hex::decode(t.strip_prefix("0x").unwrap_or(t))
            .map(Self)
            .map_err(|e| format!("{s:?} is not hex: {e}"))
    }
}

impl From<HexBytes> for String {
    fn from(h: HexBytes) -> String {
        hex::encode(h.0)
    }
}
