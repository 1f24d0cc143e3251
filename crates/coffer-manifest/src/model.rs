//! The manifest's schema, as written in YAML. [`ManifestDoc`] is the raw document; a
//! [`crate::Manifest`] is one that passed validation.

use std::collections::BTreeMap;

use coffer_attest::Policy;
use serde::{Deserialize, Serialize};

/// A collaboration manifest as written: see the crate documentation for an example.
///
/// Field order and YAML formatting do not matter: the hash is over the canonical JSON of this
/// type. Fields with a default are always serialised, so leaving one out and writing its
/// default value hash the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestDoc {
    /// The schema version; only 1.
    pub version: u32,
    /// A human-readable id, e.g. `hospital-study-2027`. Not unique across updates.
    pub id: String,
    /// The hash of the manifest this one replaces, `sha256:<hex>`, or null.
    #[serde(default)]
    pub predecessor: Option<String>,
    /// The parties, with the public identities `coffer identity export` prints.
    pub parties: Vec<PartyDoc>,
    /// The appraisal policy for every worker and broker.
    pub enclave: Policy,
    /// The datasets, each pinned by digest.
    #[serde(default)]
    pub datasets: Vec<Dataset>,
    /// The allowed computations.
    #[serde(default)]
    pub computations: Vec<Computation>,
    /// Who must sign an update of this manifest.
    pub governance: Governance,
}

/// A party: the same fields and formats as a Coffer public identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartyDoc {
    /// The party's name.
    pub name: String,
    /// `ed25519:<64 lowercase hex>`.
    pub signing_key: String,
    /// The party's age recipient, `age1…`.
    pub recipient: String,
}

/// A dataset, owned by one party and pinned by the digest of its ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    /// The dataset's name, as computations (and SQL) name it.
    pub name: String,
    /// The owning party's name; the owner must sign every manifest that uses the dataset.
    #[serde(default)]
    pub owner: String,
    /// Where the ciphertext is stored.
    pub uri: String,
    /// `sha256:<64 lowercase hex>` of the whole ciphertext.
    pub digest: String,
    /// The column that names the person (or other unit) a row is about, e.g. `patient_id`.
    /// `min_group_size` then counts this dataset's distinct values of it, so one person with
    /// many rows counts once. Absent: each distinct row counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy_unit: Option<String>,
}

/// What a computation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComputationKind {
    /// A SQL query over the inputs; needs `query`.
    Sql,
    /// Train a gradient-boosted tree model.
    GbdtTrain,
    /// Predict with a gradient-boosted tree model.
    GbdtPredict,
    /// Run a model's inference.
    Inference,
    /// Federated learning rounds.
    Federated,
}

/// An allowed computation: what runs, on which inputs, for whom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Computation {
    /// The computation's name, as jobs name it.
    pub name: String,
    /// What it does.
    pub kind: ComputationKind,
    /// The SQL text (kind `sql` only, and required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Free-form parameters (training parameters, model options). Absent and empty hash the
    /// same.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, serde_json::Value>,
    /// The datasets it reads, by name.
    pub inputs: Vec<String>,
    /// The parties its outputs are encrypted to, by name.
    pub recipients: Vec<String>,
    /// Output constraints the worker applies.
    #[serde(default)]
    pub constraints: Constraints,
}

/// Output constraints. Unknown constraints are refused rather than ignored: a constraint that
/// a party signed and no worker enforces would be worse than an error. They are kept, not
/// rejected by the parser, so that validation can name them ([`crate::Error::UnknownConstraint`])
/// and a worker can report `unknown_constraint`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Constraints {
    /// `sql`: every released group has at least this many distinct contributors from every
    /// input. `gbdt_train`: every leaf of every tree covers at least this many training rows.
    #[serde(default)]
    pub min_group_size: Option<u64>,
    /// Constraints this build does not know; a valid manifest has none.
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, serde_json::Value>,
}

impl Constraints {
    /// The names of the constraints that are set, known or not.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        if self.min_group_size.is_some() {
            names.push("min_group_size");
        }
        names.extend(self.unknown.keys().map(String::as_str));
        names
    }
}

impl ComputationKind {
    /// The name as manifests write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sql => "sql",
            Self::GbdtTrain => "gbdt_train",
            Self::GbdtPredict => "gbdt_predict",
            Self::Inference => "inference",
            Self::Federated => "federated",
        }
    }

    /// The constraints this kind enforces. A manifest that sets any other on a computation of
    /// this kind is refused.
    pub fn supported_constraints(self) -> &'static [&'static str] {
        match self {
            Self::Sql | Self::GbdtTrain => &["min_group_size"],
            Self::GbdtPredict | Self::Inference | Self::Federated => &[],
        }
    }
}

/// Who must sign an update of this manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Governance {
    /// The rule for updates.
    pub update: UpdateRule,
}

/// The rule for updates: `all`, or `{threshold: N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateRule {
    /// Every party must sign an update.
    All,
    /// At least this many parties must sign an update.
    Threshold(u32),
}

/// Reads `all` or `{threshold: N}` by hand: YAML deserialisers otherwise want `!threshold N`.
impl<'de> Deserialize<'de> for UpdateRule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UpdateRuleVisitor)
    }
}

struct UpdateRuleVisitor;

impl<'de> serde::de::Visitor<'de> for UpdateRuleVisitor {
    type Value = UpdateRule;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("`all` or `{threshold: N}`")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<UpdateRule, E> {
        if v == "all" {
            Ok(UpdateRule::All)
        } else {
            Err(E::invalid_value(serde::de::Unexpected::Str(v), &self))
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<UpdateRule, A::Error> {
        use serde::de::Error as _;
        let Some(key) = map.next_key::<String>()? else {
            return Err(A::Error::invalid_length(0, &self));
        };
        if key != "threshold" {
            return Err(A::Error::unknown_field(&key, &["threshold"]));
        }
        let threshold: u32 = map.next_value()?;
        if map.next_key::<String>()?.is_some() {
            return Err(A::Error::custom("expected only `threshold`"));
        }
        Ok(UpdateRule::Threshold(threshold))
    }
}
