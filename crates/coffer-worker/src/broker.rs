//! The worker's side of the key broker: one keep-alive RA-TLS connection, the broker's evidence
//! appraised against this worker's own broker policy before every request, the nonce
//! challenge, the key release and the receipt hand-in.

use std::collections::BTreeMap;

use coffer_attest::ratls::{RaTlsCert, RaTlsIdentity};
use coffer_attest::{FailedCheck, Policy, Verified, Verifier};
use coffer_crypto::SecretKey;
use coffer_net::broker::{Challenge, FreshEvidence, ReleaseRequest, Released};
use coffer_net::job::{SignedJob, SignedReceipt};
use coffer_net::{ApiError, Connection, Endpoint};
use zeroize::{Zeroize, Zeroizing};

use crate::refusal::{Check, Refusal};
use crate::worker::unix_now;

/// The broker as this worker knows it.
pub(crate) struct BrokerLink {
    endpoint: Endpoint,
    /// Verifies the broker's evidence (which roots and platforms this worker accepts).
    verifier: Verifier,
    /// The policy the broker's evidence must meet. A manifest's `enclave:` policy appraises
    /// workers only; `None`: every job is refused (`broker_attestation`).
    policy: Option<Policy>,
    conn: tokio::sync::Mutex<Option<BrokerConn>>,
}

/// A connection to the broker and what its RA-TLS evidence proved.
struct BrokerConn {
    conn: Connection,
    verdict: Result<Verified, Vec<FailedCheck>>,
}

/// What a key release is for: the job, its manifest and computation, the pinned inputs.
pub(crate) struct ReleaseFor<'a> {
    pub(crate) manifest: &'a coffer_net::ManifestHash,
    pub(crate) computation: &'a str,
    pub(crate) inputs: &'a BTreeMap<String, String>,
    pub(crate) job: SignedJob,
}

impl BrokerLink {
    pub(crate) fn new(endpoint: Endpoint, verifier: Verifier, policy: Option<Policy>) -> Self {
        Self {
            endpoint,
            verifier,
            policy,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// Drops the held connection (the next request connects with the current certificate).
    pub(crate) async fn disconnect(&self) {
        *self.conn.lock().await = None;
    }

    /// Asks for the job's keys: first a nonce from the broker, then the release request with
    /// evidence `evidence` made for that nonce. The broker appraises this worker against the
    /// manifest's policy on that evidence.
    pub(crate) async fn release(
        &self,
        me: &RaTlsIdentity,
        evidence: impl FnOnce(&[u8]) -> Result<Vec<u8>, Refusal>,
        what: ReleaseFor<'_>,
    ) -> Result<BTreeMap<String, SecretKey>, Refusal> {
        let challenge = self
            .post(me, coffer_net::broker::CHALLENGE, Vec::new())
            .await?;
        let challenge: Challenge = answer(challenge, "challenge")?;
        let nonce = hex::decode(&challenge.nonce)
            .map_err(|e| Check::Internal.because(format!("key broker's nonce: {e}")))?;
        let evidence = evidence(&nonce)?;
        let body = serde_json::to_vec(&ReleaseRequest {
            manifest: *what.manifest,
            computation: what.computation.to_owned(),
            inputs: what.inputs.clone(),
            job: what.job,
            fresh: FreshEvidence {
                nonce: challenge.nonce,
                evidence: hex::encode(evidence),
            },
        })
        .map_err(|e| Check::Internal.because(e.to_string()))?;
        let resp = self.post(me, coffer_net::broker::RELEASE, body).await?;
        if !resp.status.is_success() {
            return Err(refusal_of(&resp, "release"));
        }
        let body = resp.body;
        let released: Result<Released, _> = serde_json::from_slice(&body);
        if let Ok(mut m) = body.try_into_mut() {
            m.as_mut().zeroize();
        }
        let released =
            released.map_err(|e| Check::Internal.because(format!("key broker's answer: {e}")))?;
        let mut keys = BTreeMap::new();
        for (dataset, hex) in released.keys {
            let hex = Zeroizing::new(hex);
            let key = SecretKey::from_hex(&hex)
                .map_err(|e| Check::Internal.because(format!("released key: {e}")))?;
            keys.insert(dataset, key);
        }
        Ok(keys)
    }

    /// Hands the job's signed receipt to the broker, which records it next to the job's key
    /// release. Best effort: the outputs are stored either way, and a receipt that never
    /// arrived shows as such in the audit log.
    pub(crate) async fn hand_in_receipt(&self, me: &RaTlsIdentity, receipt: &SignedReceipt) {
        let Ok(body) = serde_json::to_vec(receipt) else {
            return;
        };
        let _ = self.post(me, coffer_net::broker::RECEIPTS, body).await;
    }

    /// POSTs `body` at `path` over the keep-alive connection, after appraising the broker.
    /// A reused connection the broker has closed is replaced once; a fresh one that fails is
    /// an error.
    async fn post(
        &self,
        me: &RaTlsIdentity,
        path: &str,
        body: Vec<u8>,
    ) -> Result<coffer_net::Response, Refusal> {
        let mut held = self.conn.lock().await;
        let mut reused = held.is_some();
        loop {
            if held.is_none() {
                *held = Some(self.connect(me).await?);
                reused = false;
            }
            let Some(broker) = held.as_mut() else {
                return Err(Check::Internal.because("no broker connection"));
            };
            self.appraise(&broker.verdict)?;
            match broker
                .conn
                .send(http::Method::POST, path, &[], body.clone())
                .await
            {
                Ok(resp) => return Ok(resp),
                Err(_) if reused => *held = None,
                Err(e) => {
                    *held = None;
                    return Err(Check::BrokerUnavailable.because(e.to_string()));
                }
            }
        }
    }

    async fn connect(&self, me: &RaTlsIdentity) -> Result<BrokerConn, Refusal> {
        let config = coffer_net::client_config(Some(me))
            .map_err(|e| Check::Internal.because(e.to_string()))?;
        let conn = Connection::connect(&self.endpoint, config)
            .await
            .map_err(|e| {
                Check::BrokerUnavailable.because(format!("key broker {}: {e}", self.endpoint.url()))
            })?;
        let verdict = RaTlsCert::from_der(conn.peer_certificate())
            .map_err(|e| vec![FailedCheck::from_error(&e)])
            .and_then(|cert| cert.verify_bound(&self.verifier, None, unix_now()));
        Ok(BrokerConn { conn, verdict })
    }

    /// The broker's evidence must meet this worker's own broker policy (the broker is not a
    /// worker, and must not pass as one).
    fn appraise(&self, verdict: &Result<Verified, Vec<FailedCheck>>) -> Result<(), Refusal> {
        let Some(policy) = &self.policy else {
            return Err(Check::BrokerAttestation.because(
                "this worker has no broker policy (--broker-policy FILE), so it trusts no broker",
            ));
        };
        let failed = match verdict {
            Ok(verified) => policy.check(verified, unix_now()),
            Err(failed) => failed.clone(),
        };
        if failed.is_empty() {
            return Ok(());
        }
        Err(Check::BrokerAttestation
            .because(format!(
                "the key broker at {} does not meet this worker's broker policy",
                self.endpoint.url()
            ))
            .with_reasons(
                failed
                    .iter()
                    .map(|c| format!("[{}] {c}", c.check()))
                    .collect(),
            ))
    }
}

/// The broker's refusal as it named it (measurement, replayed_request, …).
fn refusal_of(resp: &coffer_net::Response, what: &str) -> Refusal {
    match serde_json::from_slice::<ApiError>(&resp.body) {
        Ok(e) => Refusal::from_broker(e),
        Err(_) => Check::Internal.because(format!(
            "key broker answered {} to a {what} without an error body",
            resp.status
        )),
    }
}

/// A successful answer's JSON body, or the broker's refusal.
fn answer<T: serde::de::DeserializeOwned>(
    resp: coffer_net::Response,
    what: &str,
) -> Result<T, Refusal> {
    if !resp.status.is_success() {
        return Err(refusal_of(&resp, what));
    }
    serde_json::from_slice(&resp.body)
        .map_err(|e| Check::Internal.because(format!("key broker's {what}: {e}")))
}
