//! Whether a manifest is active: who signed it, who still must, and which signatures were not
//! counted.
//!
//! Required signers:
//! - every owner of a dataset of the manifest, always;
//! - for a manifest with no predecessor, every party;
//! - for an update, what the predecessor's governance says: `all`, every party of the
//!   predecessor; `threshold: N`, at least N of them. An update is active only if its
//!   predecessor is.
//!
//! A party counts under a rule only with the key that rule's manifest gives it, so a party
//! whose key an update rotates approves under the old key and owns data under the new one.

use serde::Serialize;

use crate::Error;
use crate::hash::ManifestHash;
use crate::manifest::{Manifest, Party};
use crate::model::UpdateRule;
use crate::signature::{SignatureFile, SignatureProblem, verify_entry};

/// A manifest's signature status. Serialises as
/// `{"hash", "active", "signed_by", "missing", "invalid"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The manifest's hash.
    pub hash: ManifestHash,
    /// Whether the manifest is in force: every required signature is present and valid, and
    /// for an update, the predecessor is active.
    pub active: bool,
    /// Parties with at least one valid signature, in manifest order.
    pub signed_by: Vec<String>,
    /// Parties whose signature is still needed. Under a threshold rule that is not yet met,
    /// every predecessor party that has not signed is listed: any of them may sign.
    pub missing: Vec<String>,
    /// Signatures that were not counted, and why.
    pub invalid: Vec<InvalidSignature>,
    /// For an update, whether the predecessor was active. Not serialised.
    #[serde(skip)]
    pub predecessor_active: Option<bool>,
}

/// A signature that was not counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidSignature {
    /// The party the entry claims to be from.
    pub party: String,
    /// Why it was not counted.
    pub reason: SignatureProblem,
}

/// The predecessor of an update, with its own status.
#[derive(Debug, Clone, Copy)]
pub struct Predecessor<'a> {
    /// The predecessor manifest.
    pub manifest: &'a Manifest,
    /// Its status, computed with its own signatures (and predecessor).
    pub status: &'a Status,
}

/// The status of `manifest` given the signatures in `sigs`. For an update, `predecessor` must
/// be the manifest it names, with that manifest's status.
pub fn status(
    manifest: &Manifest,
    sigs: &SignatureFile,
    predecessor: Option<Predecessor<'_>>,
) -> Result<Status, Error> {
    check_predecessor(manifest, predecessor)?;
    let old_parties: &[Party] = predecessor
        .map(|p| p.manifest.parties())
        .unwrap_or_default();
    let eligible: Vec<&Party> = manifest.parties().iter().chain(old_parties).collect();
    let hash = manifest.hash();

    let mut valid: Vec<&Party> = Vec::new();
    let mut invalid = Vec::new();
    for entry in &sigs.signatures {
        let checked = if sigs.manifest == hash {
            verify_entry(&hash, &eligible, entry)
        } else {
            Err(SignatureProblem::OtherManifest(sigs.manifest))
        };
        match checked {
            Ok(party) => valid.push(party),
            Err(reason) => invalid.push(InvalidSignature {
                party: entry.party.clone(),
                reason,
            }),
        }
    }
    let signed = |p: &Party| valid.contains(&p);

    let mut required: Vec<&Party> = manifest.dataset_owners();
    let mut threshold_met = true;
    match predecessor {
        None => required.extend(manifest.parties()),
        Some(pred) => match pred.manifest.doc().governance.update {
            UpdateRule::All => required.extend(old_parties),
            UpdateRule::Threshold(n) => {
                let count = old_parties.iter().filter(|p| signed(p)).count();
                threshold_met = usize::try_from(n).is_ok_and(|n| count >= n);
                if !threshold_met {
                    required.extend(old_parties);
                }
            }
        },
    }

    let missing = names(
        eligible
            .iter()
            .copied()
            .filter(|p| required.contains(p) && !signed(p)),
    );
    let signed_by = names(eligible.iter().copied().filter(|p| signed(p)));
    let predecessor_active = predecessor.map(|p| p.status.active);
    Ok(Status {
        hash,
        active: missing.is_empty() && threshold_met && predecessor_active.unwrap_or(true),
        signed_by,
        missing,
        invalid,
        predecessor_active,
    })
}

fn check_predecessor(
    manifest: &Manifest,
    predecessor: Option<Predecessor<'_>>,
) -> Result<(), Error> {
    match (manifest.predecessor(), predecessor) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(Error::NotAnUpdate),
        (Some(expected), None) => Err(Error::PredecessorRequired { expected }),
        (Some(expected), Some(pred)) => {
            let found = pred.manifest.hash();
            if expected != found {
                return Err(Error::PredecessorMismatch { expected, found });
            }
            if pred.status.hash != found {
                return Err(Error::ApiMisuse(format!(
                    "the predecessor's status is for {}, not {found}",
                    pred.status.hash
                )));
            }
            Ok(())
        }
    }
}

/// Names in order, each once.
fn names<'a>(parties: impl Iterator<Item = &'a Party>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in parties {
        if !out.iter().any(|n| n == p.name()) {
            out.push(p.name().to_owned());
        }
    }
    out
}

/// The longest predecessor chain [`status_with_chain`] follows.
pub const MAX_CHAIN: usize = 16;

/// The status of `manifest` judged by its predecessor chain, as a client hands it over:
/// `chain` is the predecessor first, then its predecessor, each with its signatures. Every
/// link is checked: each manifest's `predecessor` must be the next link's hash, and each
/// update must be signed under its predecessor's governance. Links past the first manifest
/// without a predecessor are ignored.
pub fn status_with_chain(
    manifest: &Manifest,
    sigs: &SignatureFile,
    chain: &[(Manifest, SignatureFile)],
) -> Result<Status, Error> {
    if chain.len() > MAX_CHAIN {
        return Err(Error::ApiMisuse(format!(
            "a predecessor chain of {} manifests is longer than {MAX_CHAIN}",
            chain.len()
        )));
    }
    match (manifest.predecessor(), chain.split_first()) {
        (Some(_), Some(((pred, pred_sigs), rest))) => {
            let pred_status = status_with_chain(pred, pred_sigs, rest)?;
            status(
                manifest,
                sigs,
                Some(Predecessor {
                    manifest: pred,
                    status: &pred_status,
                }),
            )
        }
        _ => status(manifest, sigs, None),
    }
}
