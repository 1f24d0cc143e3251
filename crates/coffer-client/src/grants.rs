//! The key grants this home made: which key went to which manifest, under which enclave
//! policy (`HOME/grants.json`).
//!
//! A key granted to two manifests is only as safe as the weaker of their policies: a worker
//! that passes either one receives the key and can open every file encrypted under it.
//! [`Grants::conflicts`] names the earlier grants of a key whose policy is not equivalent to a
//! new manifest's, so a client can refuse the reuse unless its user insists.

use std::io::Write;
use std::path::PathBuf;

use coffer_attest::Policy;
use serde::{Deserialize, Serialize};

use crate::{AtomicFile, Error, Home};

/// One grant: the keyring id, the manifest hash and the manifest's enclave policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub key: String,
    pub manifest: String,
    pub policy: Policy,
}

/// How an earlier grant's policy compares with a new one's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weaker {
    /// The earlier manifest admits workers the new one does not.
    Earlier,
    /// The new manifest admits workers the earlier one does not.
    New,
    /// Each admits workers the other does not.
    Both,
}

/// An earlier grant of the same key under a policy that is not equivalent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manifest: String,
    pub weaker: Weaker,
}

/// The grants recorded in a home.
#[derive(Debug, Default)]
pub struct Grants {
    path: PathBuf,
    grants: Vec<Grant>,
}

impl Grants {
    /// The grants in `home` (none if the file does not exist yet).
    pub fn load(home: &Home) -> Result<Self, Error> {
        let path = home.root().join("grants.json");
        let grants = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| Error::Malformed {
                path: path.clone(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(&path)(e)),
        };
        Ok(Self { path, grants })
    }

    /// Earlier grants of `key` to other manifests whose policy is not equivalent to `policy`.
    pub fn conflicts(&self, key: &str, manifest: &str, policy: &Policy) -> Vec<Conflict> {
        self.grants
            .iter()
            .filter(|g| g.key == key && g.manifest != manifest)
            .filter_map(|g| {
                let weaker = match (
                    policy.at_least_as_strict_as(&g.policy),
                    g.policy.at_least_as_strict_as(policy),
                ) {
                    (true, true) => return None,
                    (true, false) => Weaker::Earlier,
                    (false, true) => Weaker::New,
                    (false, false) => Weaker::Both,
                };
                Some(Conflict {
                    manifest: g.manifest.clone(),
                    weaker,
                })
            })
            .collect()
    }

    /// Records a grant (once per key and manifest), written atomically.
    pub fn record(&mut self, grant: Grant) -> Result<(), Error> {
        if self
            .grants
            .iter()
            .any(|g| g.key == grant.key && g.manifest == grant.manifest)
        {
            return Ok(());
        }
        self.grants.push(grant);
        let text = serde_json::to_vec_pretty(&self.grants).map_err(|e| Error::Malformed {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let mut out = AtomicFile::create(&self.path)?;
        out.file()
            .write_all(&text)
            .map_err(Error::io(self.path.clone()))?;
        out.commit()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn policy(measurements: &[&str], simulation: bool) -> Policy {
        let list: Vec<String> = measurements
            .iter()
            .map(|m| format!("\"sim:measurement={}\"", m.repeat(48)))
            .collect();
        Policy::from_yaml(&format!(
            "tee: [sim]\nallow_simulation: {simulation}\nmeasurements: [{}]\n",
            list.join(", ")
        ))
        .unwrap()
    }

    #[test]
    fn conflicts_name_the_weaker_side_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let mut g = Grants::load(&home).unwrap();
        let strict = policy(&["aa"], true);
        let loose = policy(&["aa", "bb"], true);
        g.record(Grant {
            key: "k".into(),
            manifest: "m1".into(),
            policy: loose.clone(),
        })
        .unwrap();
        let g = Grants::load(&home).unwrap();
        assert_eq!(
            g.conflicts("k", "m2", &strict),
            [Conflict {
                manifest: "m1".into(),
                weaker: Weaker::Earlier
            }]
        );
        assert_eq!(g.conflicts("k", "m2", &loose), []);
        assert_eq!(g.conflicts("other", "m2", &strict), []);
        assert_eq!(
            g.conflicts("k", "m1", &strict),
            [],
            "the same manifest again"
        );
        let other = policy(&["cc"], true);
        assert_eq!(g.conflicts("k", "m2", &other)[0].weaker, Weaker::Both);
        let mut g = g;
        g.record(Grant {
            key: "k2".into(),
            manifest: "m1".into(),
            policy: strict.clone(),
        })
        .unwrap();
        assert_eq!(g.conflicts("k2", "m3", &loose)[0].weaker, Weaker::New);
        // Refusing simulation is stricter: the earlier grant, which allowed it, is weaker.
        assert_eq!(
            g.conflicts("k2", "m3", &policy(&["aa"], false))[0].weaker,
            Weaker::Earlier
        );
    }
}
