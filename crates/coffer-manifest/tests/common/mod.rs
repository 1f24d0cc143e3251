//! A realistic three-party example, built in code: alpha, beta and carol; two datasets; one
//! SQL computation; a sim enclave policy.

use coffer_manifest::{Manifest, SignatureFile, sign};
use ed25519_dalek::SigningKey;

/// A test party: a fixed signing key and a fresh age recipient.
pub struct TestParty {
    pub name: &'static str,
    pub key: SigningKey,
    pub recipient: String,
}

impl TestParty {
    pub fn new(name: &'static str, seed: u8) -> Self {
        Self {
            name,
            key: SigningKey::from_bytes(&[seed; 32]),
            recipient: age::x25519::Identity::generate().to_public().to_string(),
        }
    }

    pub fn signing_key(&self) -> String {
        format!(
            "ed25519:{}",
            hex::encode(self.key.verifying_key().as_bytes())
        )
    }

    pub fn yaml(&self) -> String {
        format!(
            "  - name: {}\n    signing_key: \"{}\"\n    recipient: {}\n",
            self.name,
            self.signing_key(),
            self.recipient
        )
    }
}

pub fn parties() -> [TestParty; 3] {
    [
        TestParty::new("alpha", 1),
        TestParty::new("beta", 2),
        TestParty::new("carol", 3),
    ]
}

pub const SIM_MEASUREMENT: &str = "4f2a4f2a4f2a4f2a4f2a4f2a4f2a4f2a4f2a4f2a4f2a4f2a4f2a4f2a4f2a4f2a4f2a4f2a4f2a4f2a4f2a4f2a4f2a4f2a";

/// The example manifest's YAML for `parties`, with `predecessor` and `governance` as given.
pub fn example_yaml(parties: &[TestParty], predecessor: &str, governance: &str) -> String {
    let party_lines: String = parties.iter().map(TestParty::yaml).collect();
    format!(
        r#"# A three-party study: alpha and beta pool patients, carol receives statistics.
version: 1
id: hospital-study-2027
predecessor: {predecessor}
parties:
{party_lines}enclave:
  tee: [sim]
  measurements: ["sim:measurement={SIM_MEASUREMENT}"]
  allow_debug: false
  allow_simulation: true
  accepted_tcb: [UpToDate]
datasets:
  - name: alpha_patients
    owner: alpha
    uri: file://storage/alpha/patients.parquet
    digest: sha256:{d1}
  - name: beta_patients
    owner: beta
    uri: file://storage/beta/patients.parquet
    digest: sha256:{d2}
computations:
  - name: diagnosis_counts
    kind: sql
    query: SELECT diagnosis, count(*) AS n FROM alpha_patients JOIN beta_patients USING (patient_id) GROUP BY diagnosis
    inputs: [alpha_patients, beta_patients]
    recipients: [alpha, beta, carol]
    constraints: {{ min_group_size: 10 }}
governance: {governance}
"#,
        d1 = "11".repeat(32),
        d2 = "22".repeat(32),
    )
}

pub fn example(parties: &[TestParty]) -> Manifest {
    Manifest::from_yaml(&example_yaml(parties, "null", "{ update: all }")).unwrap()
}

/// Signatures by `signers` over `manifest` (no predecessor).
pub fn signed_by(manifest: &Manifest, signers: &[&TestParty]) -> SignatureFile {
    signed_update(manifest, None, signers)
}

/// Signatures by `signers` over an update of `predecessor`.
pub fn signed_update(
    manifest: &Manifest,
    predecessor: Option<&Manifest>,
    signers: &[&TestParty],
) -> SignatureFile {
    let mut sigs = SignatureFile::new(manifest.hash());
    for p in signers {
        let entry = sign(manifest, predecessor, p.name, &p.key).unwrap();
        sigs.add(manifest.hash(), entry).unwrap();
    }
    sigs
}
