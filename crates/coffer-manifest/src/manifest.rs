//! [`Manifest`]: a validated manifest with its hash, and the evaluation API a key broker uses.

use std::collections::HashSet;

use ed25519_dalek::VerifyingKey;
use serde::Deserialize;

use crate::Error;
use crate::error::ItemKind;
use crate::hash::{ManifestHash, manifest_hash, parse_lower_hex32, parse_sha256};
use crate::model::{Computation, ComputationKind, Dataset, ManifestDoc, PartyDoc, UpdateRule};

const SIGNING_KEY_PREFIX: &str = "ed25519:";
const MAX_NAME_LEN: usize = 64;

/// A party of a validated manifest, with its parsed signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    /// The party as written.
    pub doc: PartyDoc,
    /// Its Ed25519 verifying key.
    pub key: VerifyingKey,
}

impl Party {
    /// The party's name.
    pub fn name(&self) -> &str {
        &self.doc.name
    }
}

/// A manifest that parsed and validated, with its canonical hash. The only way to get one is
/// [`Manifest::from_yaml`] or [`Manifest::from_doc`], so holding one means it is valid.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    doc: ManifestDoc,
    parties: Vec<Party>,
    predecessor: Option<ManifestHash>,
    hash: ManifestHash,
}

/// Just the version, read before the full schema so that a newer manifest is refused as a
/// version, not as unknown fields.
#[derive(Deserialize)]
struct VersionOnly {
    version: Option<serde_norway::Value>,
}

impl Manifest {
    /// Parses and validates a manifest from YAML (JSON is YAML too).
    pub fn from_yaml(text: &str) -> Result<Self, Error> {
        let syntax = |e: serde_norway::Error| Error::Syntax {
            reason: e.to_string(),
        };
        let version: VersionOnly = serde_norway::from_str(text).map_err(syntax)?;
        match version.version {
            Some(serde_norway::Value::Number(n)) if n.as_u64() == Some(1) => {}
            Some(other) => {
                let found = serde_norway::to_string(&other)
                    .map(|s| s.trim().to_owned())
                    .unwrap_or_else(|_| "?".into());
                return Err(Error::UnsupportedVersion { found });
            }
            None => {
                return Err(Error::Syntax {
                    reason: "missing field `version`".into(),
                });
            }
        }
        Self::from_doc(serde_norway::from_str(text).map_err(syntax)?)
    }

    /// Validates a document. Every check names the offending item; the first failure is
    /// returned.
    pub fn from_doc(doc: ManifestDoc) -> Result<Self, Error> {
        if doc.version != 1 {
            return Err(Error::UnsupportedVersion {
                found: doc.version.to_string(),
            });
        }
        if doc.id.trim().is_empty() {
            return Err(Error::EmptyId);
        }
        let predecessor = doc
            .predecessor
            .as_deref()
            .map(|p| parse_sha256(p).map(ManifestHash))
            .transpose()
            .map_err(|reason| Error::BadPredecessor { reason })?;
        let parties = validate_parties(&doc.parties)?;
        validate_datasets(&doc)?;
        validate_computations(&doc)?;
        if let UpdateRule::Threshold(threshold) = doc.governance.update {
            let enough = usize::try_from(threshold).is_ok_and(|t| t <= parties.len());
            if threshold == 0 || !enough {
                return Err(Error::BadThreshold {
                    threshold,
                    parties: parties.len(),
                });
            }
        }
        let hash = manifest_hash(&doc)?;
        Ok(Self {
            doc,
            parties,
            predecessor,
            hash,
        })
    }

    /// The document as written.
    pub fn doc(&self) -> &ManifestDoc {
        &self.doc
    }

    /// The manifest's id.
    pub fn id(&self) -> &str {
        &self.doc.id
    }

    /// The canonical hash, `sha256:<hex>` when displayed.
    pub fn hash(&self) -> ManifestHash {
        self.hash
    }

    /// The hash of the manifest this one replaces.
    pub fn predecessor(&self) -> Option<ManifestHash> {
        self.predecessor
    }

    /// The enclave appraisal policy.
    pub fn policy(&self) -> &coffer_attest::Policy {
        &self.doc.enclave
    }

    /// The parties, in manifest order.
    pub fn parties(&self) -> &[Party] {
        &self.parties
    }

    /// The party named `name`.
    pub fn party(&self, name: &str) -> Option<&Party> {
        self.parties.iter().find(|p| p.name() == name)
    }

    /// The dataset named `name`.
    pub fn dataset(&self, name: &str) -> Option<&Dataset> {
        self.doc.datasets.iter().find(|d| d.name == name)
    }

    /// The computation named `name`: a job may run only a computation its manifest names.
    pub fn computation(&self, name: &str) -> Option<&Computation> {
        self.doc.computations.iter().find(|c| c.name == name)
    }

    /// The datasets `computation` reads, in its `inputs` order. Validation guarantees that
    /// every input of a computation of this manifest is declared.
    pub fn input_datasets(&self, computation: &Computation) -> Vec<&Dataset> {
        computation
            .inputs
            .iter()
            .filter_map(|name| self.dataset(name))
            .collect()
    }

    /// The owners of `computation`'s inputs, each once, in manifest party order: the parties
    /// whose signatures a key broker requires before releasing the inputs' keys.
    pub fn owners_of(&self, computation: &Computation) -> Vec<&Party> {
        let inputs = self.input_datasets(computation);
        self.parties
            .iter()
            .filter(|p| inputs.iter().any(|d| d.owner == p.name()))
            .collect()
    }

    /// Every party that owns a dataset, in manifest party order.
    pub fn dataset_owners(&self) -> Vec<&Party> {
        self.parties
            .iter()
            .filter(|p| self.doc.datasets.iter().any(|d| d.owner == p.name()))
            .collect()
    }
}

/// The naming rule for parties, datasets and computations: 1 to 64 characters from
/// `A-Z a-z 0-9 . _ -`. Party identities (`coffer init --name`) follow it too.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn validate_name(kind: ItemKind, name: &str) -> Result<(), Error> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(Error::InvalidName {
            kind,
            name: name.to_owned(),
        })
    }
}

fn unique_names<'a>(kind: ItemKind, names: impl Iterator<Item = &'a str>) -> Result<(), Error> {
    let mut seen = HashSet::new();
    for name in names {
        validate_name(kind, name)?;
        if !seen.insert(name) {
            return Err(Error::DuplicateName {
                kind,
                name: name.to_owned(),
            });
        }
    }
    Ok(())
}

/// Parses `ed25519:<64 lowercase hex>` into a verifying key.
pub(crate) fn parse_signing_key(text: &str) -> Result<VerifyingKey, String> {
    let hex_part = text
        .strip_prefix(SIGNING_KEY_PREFIX)
        .ok_or_else(|| format!("{text:?}: expected ed25519:<64 hex>"))?;
    let bytes = parse_lower_hex32(hex_part).map_err(|reason| format!("{text:?}: {reason}"))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| format!("{text:?}: not a valid Ed25519 public key"))
}

fn validate_parties(docs: &[PartyDoc]) -> Result<Vec<Party>, Error> {
    if docs.is_empty() {
        return Err(Error::NoParties);
    }
    unique_names(ItemKind::Party, docs.iter().map(|p| p.name.as_str()))?;
    let mut parties: Vec<Party> = Vec::with_capacity(docs.len());
    for doc in docs {
        let key = parse_signing_key(&doc.signing_key).map_err(|reason| Error::BadSigningKey {
            party: doc.name.clone(),
            reason,
        })?;
        if doc.recipient.trim() != doc.recipient || !doc.recipient.starts_with("age1") {
            return Err(Error::BadRecipient {
                party: doc.name.clone(),
                reason: format!("{:?}: expected age1…", doc.recipient),
            });
        }
        coffer_crypto::delivery::parse_recipient(&doc.recipient).map_err(|e| {
            Error::BadRecipient {
                party: doc.name.clone(),
                reason: e.to_string(),
            }
        })?;
        if let Some(first) = parties.iter().find(|p| p.key == key) {
            return Err(Error::DuplicateSigningKey {
                first: first.name().to_owned(),
                second: doc.name.clone(),
            });
        }
        parties.push(Party {
            doc: doc.clone(),
            key,
        });
    }
    Ok(parties)
}

fn validate_datasets(doc: &ManifestDoc) -> Result<(), Error> {
    unique_names(
        ItemKind::Dataset,
        doc.datasets.iter().map(|d| d.name.as_str()),
    )?;
    for dataset in &doc.datasets {
        if dataset.owner.is_empty() {
            return Err(Error::MissingOwner {
                dataset: dataset.name.clone(),
            });
        }
        if !doc.parties.iter().any(|p| p.name == dataset.owner) {
            return Err(Error::UnknownOwner {
                dataset: dataset.name.clone(),
                owner: dataset.owner.clone(),
            });
        }
        if dataset.uri.trim().is_empty() {
            return Err(Error::EmptyUri {
                dataset: dataset.name.clone(),
            });
        }
        parse_sha256(&dataset.digest).map_err(|reason| Error::BadDigest {
            dataset: dataset.name.clone(),
            reason,
        })?;
        if let Some(unit) = &dataset.privacy_unit {
            let plain = !unit.trim().is_empty()
                && unit.len() <= MAX_NAME_LEN
                && !unit.chars().any(char::is_control);
            if !plain {
                return Err(Error::BadPrivacyUnit {
                    dataset: dataset.name.clone(),
                    reason: format!("must be a column name of 1 to {MAX_NAME_LEN} characters"),
                });
            }
        }
    }
    Ok(())
}

/// Every constraint must be known, and enforced by the computation's kind.
fn validate_constraints(c: &Computation) -> Result<(), Error> {
    if let Some(name) = c.constraints.unknown.keys().next() {
        return Err(Error::UnknownConstraint {
            computation: c.name.clone(),
            constraint: name.clone(),
        });
    }
    let supported = c.kind.supported_constraints();
    if let Some(name) = c
        .constraints
        .names()
        .into_iter()
        .find(|n| !supported.contains(n))
    {
        return Err(Error::UnsupportedConstraint {
            computation: c.name.clone(),
            kind: c.kind.as_str(),
            constraint: name.to_owned(),
            supported: if supported.is_empty() {
                "none".into()
            } else {
                supported.join(", ")
            },
        });
    }
    Ok(())
}

fn validate_computations(doc: &ManifestDoc) -> Result<(), Error> {
    unique_names(
        ItemKind::Computation,
        doc.computations.iter().map(|c| c.name.as_str()),
    )?;
    for c in &doc.computations {
        let computation = || c.name.clone();
        match (c.kind, &c.query) {
            (ComputationKind::Sql, None) => {
                return Err(Error::MissingQuery {
                    computation: computation(),
                });
            }
            (ComputationKind::Sql, Some(q)) if q.trim().is_empty() => {
                return Err(Error::MissingQuery {
                    computation: computation(),
                });
            }
            (ComputationKind::Sql, Some(_)) | (_, None) => {}
            (_, Some(_)) => {
                return Err(Error::UnexpectedQuery {
                    computation: computation(),
                });
            }
        }
        if c.inputs.is_empty() {
            return Err(Error::NoInputs {
                computation: computation(),
            });
        }
        if let Some(dataset) = c
            .inputs
            .iter()
            .find(|i| !doc.datasets.iter().any(|d| &&d.name == i))
        {
            return Err(Error::UnknownInput {
                computation: computation(),
                dataset: dataset.clone(),
            });
        }
        validate_constraints(c)?;
        if c.recipients.is_empty() {
            return Err(Error::NoRecipients {
                computation: computation(),
            });
        }
        if let Some(recipient) = c
            .recipients
            .iter()
            .find(|r| !doc.parties.iter().any(|p| &&p.name == r))
        {
            return Err(Error::UnknownRecipient {
                computation: computation(),
                recipient: recipient.clone(),
            });
        }
    }
    Ok(())
}
