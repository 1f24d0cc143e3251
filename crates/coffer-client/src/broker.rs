//! Talking to a key broker: attest it once and pin what was seen, then check the pin on every
//! later connection before sending anything.
//!
//! Pins live in `HOME/brokers/<host>_<port>.json`: the TEE kind, whether it is simulated, the
//! measurements, the hash of the broker's TLS key, its audit-log key, the sim platform key
//! (sim only), the policy used (if any), and the last audit-log head seen.

use std::collections::BTreeMap;
use std::path::PathBuf;

use coffer_attest::ratls::RaTlsCert;
use coffer_attest::{FailedCheck, Policy, TeeKind, UnixTime, Verified, Verifier};
use coffer_broker_api::{Info, KeyStored, ManifestStatus, SubmitManifest, UploadKey};
use coffer_manifest::{ManifestHash, SignatureFile};
use coffer_net::{ApiError, Connection, Endpoint};
use http::Method;
use serde::{Deserialize, Serialize};

use crate::{AtomicFile, Error, Home, Identity};

use coffer_net::broker as coffer_broker_api;

/// What a party pinned about a broker when it attested it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerPin {
    pub url: String,
    pub tee: String,
    pub simulated: bool,
    /// The evidence's measurements (name → hex), as verified.
    pub measurements: BTreeMap<String, String>,
    /// Hex SHA-256 of the broker's TLS SubjectPublicKeyInfo.
    pub tls_spki_sha256: String,
    /// The broker's audit-log key, `ed25519:<hex>`.
    pub audit_key: String,
    /// The simulated platform key trusted for this broker (sim only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim_root: Option<String>,
    /// The policy the broker was appraised with, if one was given; applied again on every
    /// connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    pub pinned_at: UnixTime,
    /// The longest audit log seen from this broker: a later, shorter or different log is a
    /// truncation or a fork.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_head: Option<AuditHead>,
}

/// An audit-log head as pinned (mirrors the broker's `LogHead`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    pub len: u64,
    pub last_hash: String,
}

fn now() -> UnixTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Where the pin for `endpoint` lives.
pub fn pin_path(home: &Home, endpoint: &Endpoint) -> PathBuf {
    let name: String = endpoint
        .authority()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    home.root().join("brokers").join(format!("{name}.json"))
}

/// Reads the pin for `endpoint`, if any.
pub fn load_pin(home: &Home, endpoint: &Endpoint) -> Result<Option<BrokerPin>, Error> {
    let path = pin_path(home, endpoint);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            Error::InvalidArgument(format!("{}: not a broker pin: {e}", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io { path, source: e }),
    }
}

/// Writes the pin atomically.
pub fn save_pin(home: &Home, endpoint: &Endpoint, pin: &BrokerPin) -> Result<(), Error> {
    let path = pin_path(home, endpoint);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let text = serde_json::to_string_pretty(pin)
        .map_err(|e| Error::InvalidArgument(format!("encoding the pin: {e}")))?;
    let mut out = AtomicFile::create(&path)?;
    std::io::Write::write_all(out.file(), text.as_bytes()).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    out.commit()
}

/// How a party first appraises a broker.
#[derive(Debug, Clone, Default)]
pub struct AttestOptions {
    /// Appraise with this policy; without one, any measurement is accepted and pinned
    /// (trust on first use), but debug evidence is still refused.
    pub policy: Option<Policy>,
    /// Accept simulated evidence (it proves nothing).
    pub allow_simulation: bool,
    /// The sim platform key to trust; without it, a simulated broker's own platform key is
    /// pinned on first use (simulation proves nothing either way).
    pub sim_root: Option<[u8; 32]>,
    /// Trusted collateral for SGX/TDX evidence.
    pub verifier: Option<Verifier>,
}

fn hex_measurements(v: &Verified) -> BTreeMap<String, String> {
    v.claims
        .measurements()
        .into_iter()
        .map(|(k, m)| (k, hex::encode(m)))
        .collect()
}

/// Challenges the broker on `conn` with a fresh nonce: its answer must be evidence made for
/// that nonce that verifies and binds the connection's TLS key (`spki_der`). Returns the
/// fresh evidence's claims, which the caller appraises.
async fn challenge(
    conn: &mut Connection,
    url: &str,
    spki_der: &[u8],
    verifier: &Verifier,
    now: i64,
) -> Result<coffer_attest::Verified, Error> {
    let refused = |checks: Vec<String>| Error::Attestation {
        url: url.to_owned(),
        checks,
    };
    let nonce_hex = coffer_net::signed::fresh_nonce()
        .map_err(|e| Error::InvalidArgument(format!("random nonce: {e}")))?;
    let nonce = hex::decode(&nonce_hex)
        .map_err(|e| Error::InvalidArgument(format!("random nonce: {e}")))?;
    let body = serde_json::to_vec(&coffer_net::broker::Challenge { nonce: nonce_hex })
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    // A broker making evidence for many challengers at once answers 503: wait and ask again.
    let mut resp = conn
        .send(Method::POST, coffer_net::broker::ATTEST, &[], body.clone())
        .await?;
    for backoff_ms in [20, 50, 100, 200, 400] {
        if resp.status != http::StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(backoff_ms)).await;
        resp = conn
            .send(Method::POST, coffer_net::broker::ATTEST, &[], body.clone())
            .await?;
    }
    if !resp.status.is_success() {
        return Err(refused(vec![format!(
            "[nonce] the broker did not answer the challenge ({})",
            resp.status
        )]));
    }
    let answer: coffer_net::broker::ChallengeAnswer =
        serde_json::from_slice(&resp.body).map_err(|e| protocol(url, e))?;
    let evidence = hex::decode(&answer.evidence)
        .map_err(|e| protocol(url, format!("challenge answer: {e}")))?;
    coffer_attest::ratls::verify_challenge(&evidence, spki_der, &nonce, verifier, now)
        .map_err(|c| refused(check_strings(&c)))
}

fn check_strings(checks: &[FailedCheck]) -> Vec<String> {
    checks
        .iter()
        .map(|c| format!("[{}] {c}", c.check()))
        .collect()
}

/// A connection to a broker whose certificate passed appraisal.
#[derive(Debug)]
pub struct BrokerSession {
    conn: Connection,
    url: String,
    audience: String,
}

impl BrokerSession {
    /// First contact: appraises the broker's RA-TLS certificate with `options`, checks that
    /// its `/v1/info` names the key it attested, and returns the pin to save.
    pub async fn attest(url: &str, options: &AttestOptions) -> Result<(Self, BrokerPin), Error> {
        let endpoint = Endpoint::parse(url)?;
        let url = endpoint.url();
        let conn =
            Connection::connect(&endpoint, coffer_net::client_config(None).map_err(tls)?).await?;
        let refused = |checks: Vec<String>| Error::Attestation {
            url: url.clone(),
            checks,
        };
        let cert = RaTlsCert::from_der(conn.peer_certificate())
            .map_err(|e| refused(check_strings(&[FailedCheck::from_error(&e)])))?;
        let evidence = cert.evidence();
        let simulated = evidence.tee() == TeeKind::Sim;
        let mut sim_root = None;
        let mut verifier = options.verifier.clone().unwrap_or_default();
        if simulated {
            if !(options.allow_simulation
                || options.policy.as_ref().is_some_and(|p| p.allow_simulation))
            {
                return Err(refused(check_strings(&[FailedCheck::SimulationNotAllowed])));
            }
            // Simulated evidence is only as good as the platform key that signs it; the key
            // named in the evidence is the broker's own word, so it never counts as a root.
            let root = options.sim_root.ok_or_else(|| {
                refused(vec![
                    "[sim_root] simulated evidence is trusted only from a sim platform key this \
                     party holds or names (--sim-root FILE), never from the evidence itself"
                        .into(),
                ])
            })?;
            verifier = verifier.with_sim_root(root);
            sim_root = Some(hex::encode(root));
        }
        let t = now();
        cert.verify_bound(&verifier, None, t)
            .map_err(|c| refused(check_strings(&c)))?;
        // The evidence judged is the one made for this session's nonce.
        let mut conn = conn;
        let verified = challenge(&mut conn, &url, &cert.spki_der, &verifier, t).await?;
        let mut failed = match &options.policy {
            Some(p) => p.check(&verified, t),
            None => Vec::new(),
        };
        if options.policy.is_none() && verified.claims.debug() {
            failed.push(FailedCheck::DebugNotAllowed);
        }
        if !failed.is_empty() {
            return Err(refused(check_strings(&failed)));
        }
        let spki = hex::encode(cert.spki_sha256());
        let mut session = Self {
            conn,
            url: url.clone(),
            audience: spki.clone(),
        };
        let info: Info = session.get_json(coffer_net::broker::INFO).await?;
        if info.tls_spki_sha256 != spki {
            return Err(refused(vec![format!(
                "[key_binding] /v1/info names TLS key {} but the attested key is {spki}",
                info.tls_spki_sha256
            )]));
        }
        let pin = BrokerPin {
            url,
            tee: verified.claims.tee().to_string(),
            simulated,
            measurements: hex_measurements(&verified),
            tls_spki_sha256: spki,
            audit_key: info.audit_key,
            sim_root,
            policy: options.policy.clone(),
            pinned_at: t,
            audit_head: None,
        };
        Ok((session, pin))
    }

    /// A later contact: the broker must present the pinned TLS key with evidence that still
    /// verifies, of the pinned TEE and measurements (and pinned policy, if any).
    pub async fn open(pin: &BrokerPin, verifier: Option<Verifier>) -> Result<Self, Error> {
        let endpoint = Endpoint::parse(&pin.url)?;
        let url = endpoint.url();
        let conn =
            Connection::connect(&endpoint, coffer_net::client_config(None).map_err(tls)?).await?;
        let refused = |checks: Vec<String>| Error::Attestation {
            url: url.clone(),
            checks,
        };
        let cert = RaTlsCert::from_der(conn.peer_certificate())
            .map_err(|e| refused(check_strings(&[FailedCheck::from_error(&e)])))?;
        let spki = hex::encode(cert.spki_sha256());
        if spki != pin.tls_spki_sha256 {
            return Err(refused(vec![format!(
                "[pin] the broker's TLS key {spki} is not the pinned {}",
                pin.tls_spki_sha256
            )]));
        }
        let mut verifier = verifier.unwrap_or_default();
        if let Some(root) = &pin.sim_root {
            let root: [u8; 32] = hex::decode(root)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| refused(vec!["[pin] the pinned sim root is malformed".into()]))?;
            verifier = verifier.with_sim_root(root);
        }
        let t = now();
        cert.verify_bound(&verifier, None, t)
            .map_err(|c| refused(check_strings(&c)))?;
        // Every later session sees evidence made for it, and judges that.
        let mut conn = conn;
        let verified = challenge(&mut conn, &url, &cert.spki_der, &verifier, t).await?;
        let mut problems = Vec::new();
        if verified.claims.tee().to_string() != pin.tee {
            problems.push(format!(
                "[tee] {} is not the pinned {}",
                verified.claims.tee(),
                pin.tee
            ));
        }
        if verified.claims.tee() == TeeKind::Sim && !pin.simulated {
            problems.push("[simulation] simulated evidence, but the pin is not simulated".into());
        }
        let found = hex_measurements(&verified);
        if found != pin.measurements {
            problems.push(format!(
                "[measurement] {} are not the pinned {}",
                render_map(&found),
                render_map(&pin.measurements)
            ));
        }
        if verified.claims.debug() {
            problems.push("[debug] debug evidence".into());
        }
        if let Some(policy) = &pin.policy {
            problems.extend(check_strings(&policy.check(&verified, t)));
        }
        if !problems.is_empty() {
            return Err(refused(problems));
        }
        Ok(Self {
            conn,
            url,
            audience: spki,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<bytes::Bytes, Error> {
        let resp = self.conn.send(method, path, headers, body).await?;
        if resp.status.is_success() {
            return Ok(resp.body);
        }
        let error = serde_json::from_slice::<ApiError>(&resp.body).unwrap_or_else(|_| {
            ApiError::new(
                "internal",
                "http",
                format!(
                    "HTTP {}: {}",
                    resp.status,
                    String::from_utf8_lossy(&resp.body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                ),
            )
        });
        Err(Error::Service {
            url: self.url.clone(),
            error,
        })
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, body: &[u8]) -> Result<T, Error> {
        serde_json::from_slice(body).map_err(|e| protocol(&self.url, e))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&mut self, path: &str) -> Result<T, Error> {
        let body = self.send(Method::GET, path, &[], Vec::new()).await?;
        self.parse(&body)
    }

    /// Sends a request signed by `identity`.
    pub async fn signed(
        &mut self,
        identity: &Identity,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<bytes::Bytes, Error> {
        let nonce = coffer_net::signed::fresh_nonce()
            .map_err(|e| Error::InvalidArgument(format!("randomness: {e}")))?;
        let headers = coffer_net::sign_request(
            identity.signing_key(),
            identity.name(),
            method.as_str(),
            path,
            &self.audience,
            &body,
            now(),
            &nonce,
        );
        self.send(method, path, &headers, body).await
    }

    /// Submits a manifest with its signatures; the broker's judgement of it.
    pub async fn submit_manifest(
        &mut self,
        identity: &Identity,
        yaml: &str,
        sigs: &SignatureFile,
    ) -> Result<ManifestStatus, Error> {
        let signatures: serde_json::Value = serde_json::from_str(
            &sigs
                .to_json()
                .map_err(|e| Error::InvalidArgument(format!("signature file: {e}")))?,
        )
        .map_err(|e| Error::InvalidArgument(format!("signature file: {e}")))?;
        let body = serde_json::to_vec(&SubmitManifest {
            manifest: yaml.to_owned(),
            signatures,
        })
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let resp = self
            .signed(identity, Method::POST, coffer_net::broker::MANIFESTS, body)
            .await?;
        self.parse(&resp)
    }

    /// Uploads a data key for `dataset` under `manifest`, over this attested channel.
    pub async fn grant_key(
        &mut self,
        identity: &Identity,
        manifest: &ManifestHash,
        dataset: &str,
        key: &coffer_crypto::SecretKey,
    ) -> Result<KeyStored, Error> {
        let body = zeroize::Zeroizing::new(
            serde_json::to_vec(&UploadKey {
                manifest: *manifest,
                dataset: dataset.to_owned(),
                key: hex::encode(key.expose_secret()),
            })
            .map_err(|e| Error::InvalidArgument(e.to_string()))?,
        );
        let resp = self
            .signed(
                identity,
                Method::POST,
                coffer_net::broker::KEYS,
                body.to_vec(),
            )
            .await?;
        self.parse(&resp)
    }

    /// Revokes this party's key grant for `dataset` under `manifest` (owner only): later
    /// releases are refused as `key_revoked`.
    pub async fn revoke_key(
        &mut self,
        identity: &Identity,
        manifest: &ManifestHash,
        dataset: &str,
    ) -> Result<serde_json::Value, Error> {
        let body = serde_json::to_vec(&coffer_net::broker::RevokeKey {
            manifest: *manifest,
            dataset: dataset.to_owned(),
        })
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let resp = self
            .signed(identity, Method::POST, coffer_net::broker::REVOKE, body)
            .await?;
        self.parse(&resp)
    }

    /// Retires `manifest` (any party of it): later releases are refused as
    /// `manifest_retired`.
    pub async fn retire_manifest(
        &mut self,
        identity: &Identity,
        manifest: &ManifestHash,
    ) -> Result<serde_json::Value, Error> {
        let body = serde_json::to_vec(&coffer_net::broker::RetireManifest {
            manifest: *manifest,
        })
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let resp = self
            .signed(identity, Method::POST, coffer_net::broker::RETIRE, body)
            .await?;
        self.parse(&resp)
    }

    /// The whole audit log, as the JSON lines the broker serves.
    pub async fn fetch_audit(&mut self, identity: &Identity) -> Result<bytes::Bytes, Error> {
        self.signed(identity, Method::GET, coffer_net::broker::AUDIT, Vec::new())
            .await
    }
}

fn render_map(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn tls(e: rustls::Error) -> Error {
    Error::InvalidArgument(format!("TLS configuration: {e}"))
}

/// An answer that does not parse.
fn protocol(url: &str, reason: impl std::fmt::Display) -> Error {
    Error::Service {
        url: url.to_owned(),
        error: ApiError::new(
            "internal",
            "protocol",
            format!("unexpected answer: {reason}"),
        ),
    }
}

/// A broker as one party uses it, from its home: [`Broker::attest`] pins it, and every later
/// call opens a session checked against that pin before sending anything.
#[derive(Debug, Clone)]
pub struct Broker {
    home: Home,
    endpoint: Endpoint,
}

impl Broker {
    /// The broker at `https://HOST:PORT`, as seen from `home`.
    pub fn new(home: &Home, url: &str) -> Result<Self, Error> {
        let endpoint = Endpoint::parse(url)
            .map_err(|e| Error::InvalidArgument(format!("broker {url}: {e}")))?;
        Ok(Self {
            home: home.clone(),
            endpoint,
        })
    }

    /// Its normalised URL.
    pub fn url(&self) -> String {
        self.endpoint.url()
    }

    /// Where its pin lives.
    pub fn pin_path(&self) -> PathBuf {
        pin_path(&self.home, &self.endpoint)
    }

    /// The pin, if this home attested the broker.
    pub fn pin(&self) -> Result<Option<BrokerPin>, Error> {
        load_pin(&self.home, &self.endpoint)
    }

    /// Appraises the broker with `options` and saves the pin. A broker attested again with
    /// the same audit key keeps the audit head already seen from it (so a re-attestation
    /// cannot hide a truncated log).
    pub async fn attest(&self, options: &AttestOptions) -> Result<BrokerPin, Error> {
        let (_session, mut pin) = BrokerSession::attest(&self.url(), options).await?;
        if let Some(old) = self.pin()?
            && old.audit_key == pin.audit_key
        {
            pin.audit_head = old.audit_head;
        }
        save_pin(&self.home, &self.endpoint, &pin)?;
        Ok(pin)
    }

    /// A session checked against the pin (`not_attested` without one).
    pub async fn session(&self) -> Result<(BrokerSession, BrokerPin), Error> {
        let pin = self
            .pin()?
            .ok_or_else(|| Error::NotAttested { url: self.url() })?;
        let session = BrokerSession::open(&pin, None).await?;
        Ok((session, pin))
    }

    /// Submits the manifest at `path` with the signatures in `sigs` (default `PATH.sigs`;
    /// none yet is an empty file). Returns the broker's judgement of it.
    pub async fn submit(
        &self,
        identity: &Identity,
        path: &std::path::Path,
        sigs: Option<&std::path::Path>,
    ) -> Result<ManifestStatus, Error> {
        let (yaml, manifest) = crate::manifests::load(path)?;
        let sigs =
            crate::manifests::load_signatures(&crate::jobs::sigs_path(path, sigs), &manifest)?;
        let (mut s, _) = self.session().await?;
        s.submit_manifest(identity, &yaml, &sigs).await
    }

    /// Uploads keyring key `key` as dataset `dataset`'s key under `manifest`, and records the
    /// grant. A key already granted to a manifest whose enclave policy differs is refused
    /// (`key_reuse`) unless `reuse_across_manifests`: a worker passing the weaker policy
    /// would receive it and could open every file encrypted under it.
    pub async fn grant(
        &self,
        identity: &Identity,
        manifest: &coffer_manifest::Manifest,
        dataset: &str,
        key: &coffer_crypto::KeyId,
        reuse_across_manifests: bool,
    ) -> Result<KeyStored, Error> {
        use crate::grants::{Grant, Grants, Weaker};
        use coffer_crypto::KeySource;
        let secret = crate::Keyring::open(&self.home)?.key(key)?;
        let mut grants = Grants::load(&self.home)?;
        let hash = manifest.hash().to_string();
        let conflicts = grants.conflicts(key.as_str(), &hash, manifest.policy());
        if !conflicts.is_empty() && !reuse_across_manifests {
            let lines: Vec<String> = conflicts
                .iter()
                .map(|c| {
                    let why = match c.weaker {
                        Weaker::Earlier => {
                            "its enclave policy admits workers this manifest's does not"
                        }
                        Weaker::New => "this manifest's enclave policy admits workers its does not",
                        Weaker::Both => "each enclave policy admits workers the other does not",
                    };
                    format!("  {}: {why}", c.manifest)
                })
                .collect();
            return Err(Error::Refused {
                check: "key_reuse".into(),
                message: format!(
                    "key {key} was granted to another manifest with a different enclave \
                     policy:\n{}\nA worker that passes the weaker policy receives the key and \
                     can open every file encrypted under it, the stronger manifest's too. Use a \
                     new key (coffer key new, then encrypt again), or accept that explicitly \
                     (--reuse-across-manifests; in Python reuse_across_manifests=True).",
                    lines.join("\n")
                ),
            });
        }
        let (mut s, _) = self.session().await?;
        let stored = s
            .grant_key(identity, &manifest.hash(), dataset, &secret)
            .await?;
        grants.record(Grant {
            key: key.as_str().to_owned(),
            manifest: hash,
            policy: manifest.policy().clone(),
        })?;
        Ok(stored)
    }

    /// Revokes this party's grant for `dataset` under `manifest`.
    pub async fn revoke(
        &self,
        identity: &Identity,
        manifest: &ManifestHash,
        dataset: &str,
    ) -> Result<(), Error> {
        let (mut s, _) = self.session().await?;
        s.revoke_key(identity, manifest, dataset).await.map(drop)
    }

    /// Retires `manifest`: the broker releases no key for it any more.
    pub async fn retire(&self, identity: &Identity, manifest: &ManifestHash) -> Result<(), Error> {
        let (mut s, _) = self.session().await?;
        s.retire_manifest(identity, manifest).await.map(drop)
    }

    /// Fetches the broker's audit log and verifies it against the pin: signed by the pinned
    /// audit key, chained, and extending the head seen last. The pin then holds the new head.
    pub async fn audit(&self, identity: &Identity) -> Result<crate::audit::AuditLog, Error> {
        let (mut s, pin) = self.session().await?;
        let body = s.fetch_audit(identity).await?;
        let text = String::from_utf8(body.to_vec())
            .map_err(|_| crate::audit::refused("not UTF-8".to_owned()))?;
        let log = crate::audit::AuditLog::verify(text, crate::audit::Trust::Pin(&pin))?;
        let mut pin = pin;
        pin.audit_head = Some(AuditHead {
            len: log.head.len,
            last_hash: log.head.last_hash.clone(),
        });
        save_pin(&self.home, &self.endpoint, &pin)?;
        Ok(log)
    }
}
