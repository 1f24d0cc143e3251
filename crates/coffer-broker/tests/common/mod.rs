//! A real `coffer-broker` process on loopback, parties that sign requests, and sim workers
//! that present RA-TLS client certificates.
#![allow(dead_code)] // each test binary uses part of this module

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coffer_attest::ratls::{KeyAlg, RaTlsCert, RaTlsIdentity};
use coffer_broker::SignedEntry;
use coffer_manifest::{Manifest, SignatureFile, sign};
use coffer_net::{Connection, Endpoint, Response};
use coffer_tee::EvidenceSource;
use coffer_tee::sim::{SimPlatform, SimSource};
use ed25519_dalek::SigningKey;
use http::Method;

pub const MEASUREMENT: [u8; 48] = [0x4f; 48];
pub const PARTIES: [&str; 3] = ["alpha", "beta", "carol"];

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn party_key(name: &str) -> SigningKey {
    let seed = match name {
        "alpha" => 1,
        "beta" => 2,
        "carol" => 3,
        _ => 4,
    };
    SigningKey::from_bytes(&[seed; 32])
}

pub fn digest(name: &str) -> String {
    use sha2::Digest;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(name.as_bytes()))
    )
}

/// The study manifest: alpha owns a_data, beta owns b_data, carol receives; `extra`
/// datasets `x0..` owned by alpha (for upload streams).
pub fn yaml(id: &str, allow_simulation: bool, extra: usize) -> String {
    let mut parties = String::new();
    for name in PARTIES {
        let recipient = age::x25519::Identity::generate().to_public();
        parties.push_str(&format!(
            "  - name: {name}\n    signing_key: ed25519:{}\n    recipient: {recipient}\n",
            hex::encode(party_key(name).verifying_key().as_bytes())
        ));
    }
    let mut datasets = format!(
        "  - {{name: a_data, owner: alpha, uri: \"file://a\", digest: \"{}\"}}\n  \
         - {{name: b_data, owner: beta, uri: \"file://b\", digest: \"{}\"}}\n",
        digest("a"),
        digest("b")
    );
    for i in 0..extra {
        datasets.push_str(&format!(
            "  - {{name: x{i}, owner: alpha, uri: \"file://x{i}\", digest: \"{}\"}}\n",
            digest(&format!("x{i}"))
        ));
    }
    format!(
        "version: 1\nid: {id}\nparties:\n{parties}\
         enclave:\n  tee: [sim]\n  measurements: [\"sim:measurement={}\"]\n  \
         allow_simulation: {allow_simulation}\n\
         datasets:\n{datasets}\
         computations:\n  - name: joined\n    kind: sql\n    \
         query: SELECT count(*) AS n FROM a_data JOIN b_data USING (id)\n    \
         inputs: [a_data, b_data]\n    recipients: [carol]\n\
         governance: {{update: all}}\n",
        hex::encode(MEASUREMENT),
    )
}

pub fn sigs(manifest: &Manifest, signers: &[&str]) -> SignatureFile {
    let mut file = SignatureFile::new(manifest.hash());
    for name in signers {
        file.add(
            manifest.hash(),
            sign(manifest, None, name, &party_key(name)).unwrap(),
        )
        .unwrap();
    }
    file
}

pub fn good_inputs() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("a_data".to_owned(), digest("a")),
        ("b_data".to_owned(), digest("b")),
    ])
}

/// A broker process.
pub struct BrokerProc {
    pub child: Child,
    pub url: String,
    pub data: PathBuf,
    pub platform: PathBuf,
}

impl BrokerProc {
    /// Starts `coffer-broker serve` on a free loopback port and waits until it listens.
    pub fn start(data: &Path, platform: &Path) -> Self {
        Self::try_start(data, platform)
            .unwrap_or_else(|(code, err)| panic!("broker did not start (exit {code:?}): {err}"))
    }

    /// Starts it, or returns its exit code and stderr if it stops before listening.
    pub fn try_start(data: &Path, platform: &Path) -> Result<Self, (Option<i32>, String)> {
        // Set for the tests; the `release_core` example shares this module and never starts one.
        let Some(exe) = option_env!("CARGO_BIN_EXE_coffer-broker") else {
            return Err((None, "no coffer-broker binary in this build".into()));
        };
        let mut child = Command::new(exe)
            .args(["serve", "--listen", "127.0.0.1:0", "--tee", "sim", "--data"])
            .arg(data)
            .arg("--sim-platform")
            .arg(platform)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        match line.trim().strip_prefix("listening on ") {
            Some(url) => Ok(Self {
                url: url.to_owned(),
                child,
                data: data.to_path_buf(),
                platform: platform.to_path_buf(),
            }),
            None => {
                let out = child.wait_with_output().unwrap();
                Err((
                    out.status.code(),
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                ))
            }
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    pub fn endpoint(&self) -> Endpoint {
        Endpoint::parse(&self.url).unwrap()
    }
}

impl Drop for BrokerProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A connection as a party (no client certificate); `audience` is the broker's TLS key hash.
pub struct PartyConn {
    pub conn: Connection,
    pub audience: String,
}

impl PartyConn {
    pub async fn open(endpoint: &Endpoint) -> Self {
        let conn = Connection::connect(endpoint, coffer_net::client_config(None).unwrap())
            .await
            .unwrap();
        let cert = RaTlsCert::from_der(conn.peer_certificate()).unwrap();
        Self {
            audience: hex::encode(cert.spki_sha256()),
            conn,
        }
    }

    /// The headers of a signed request of `party` at `time`.
    pub fn sign(
        &self,
        party: &str,
        key: &SigningKey,
        method: &Method,
        path: &str,
        body: &[u8],
        time: i64,
    ) -> Vec<(&'static str, String)> {
        coffer_net::sign_request(
            key,
            party,
            method.as_str(),
            path,
            &self.audience,
            body,
            time,
            &coffer_net::signed::fresh_nonce().unwrap(),
        )
    }

    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Response {
        self.conn.send(method, path, headers, body).await.unwrap()
    }

    /// A request signed now by `party` with its own key.
    pub async fn signed(
        &mut self,
        party: &str,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Response {
        let headers = self.sign(party, &party_key(party), &method, path, &body, now());
        self.send(method, path, &headers, body).await
    }

    pub async fn submit(&mut self, party: &str, yaml: &str, sigs: &SignatureFile) -> Response {
        let body = serde_json::to_vec(&serde_json::json!({
            "manifest": yaml,
            "signatures": serde_json::from_str::<serde_json::Value>(&sigs.to_json().unwrap()).unwrap(),
        }))
        .unwrap();
        self.signed(party, Method::POST, "/v1/manifests", body)
            .await
    }

    pub fn upload_body(manifest: &Manifest, dataset: &str, key: &[u8]) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "manifest": manifest.hash().to_string(),
            "dataset": dataset,
            "key": hex::encode(key),
        }))
        .unwrap()
    }

    pub async fn upload(
        &mut self,
        party: &str,
        manifest: &Manifest,
        dataset: &str,
        key: &[u8],
    ) -> Response {
        let body = Self::upload_body(manifest, dataset, key);
        self.signed(party, Method::POST, "/v1/keys", body).await
    }

    /// The audit log, fetched as `party`.
    pub async fn audit(&mut self, party: &str) -> Vec<SignedEntry> {
        let r = self
            .signed(party, Method::GET, "/v1/audit", Vec::new())
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        std::str::from_utf8(&r.body)
            .unwrap()
            .lines()
            .map(|l| SignedEntry::from_json_line(l).unwrap())
            .collect()
    }
}

/// A sim worker: its RA-TLS identity and the evidence source that answers challenges.
pub struct SimWorker {
    pub identity: RaTlsIdentity,
    pub source: SimSource,
}

impl std::ops::Deref for SimWorker {
    type Target = RaTlsIdentity;
    fn deref(&self) -> &RaTlsIdentity {
        &self.identity
    }
}

/// A sim worker: `measurement`, `debug`, signed by the platform in `dir`.
pub fn worker_identity(platform_dir: &Path, measurement: [u8; 48], debug: bool) -> SimWorker {
    let platform = SimPlatform::load_or_create(platform_dir).unwrap();
    let source = SimSource::with_measurement(platform, measurement).debug(debug);
    let identity =
        RaTlsIdentity::issue(KeyAlg::P256, None, now(), 3600, |rd| source.evidence(rd)).unwrap();
    SimWorker { identity, source }
}

pub async fn worker_conn(endpoint: &Endpoint, id: &RaTlsIdentity) -> Connection {
    Connection::connect(endpoint, coffer_net::client_config(Some(id)).unwrap())
        .await
        .unwrap()
}

pub fn release_body(
    manifest: &Manifest,
    computation: &str,
    inputs: &BTreeMap<String, String>,
) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "manifest": manifest.hash().to_string(),
        "computation": computation,
        "inputs": inputs,
        "job": signed_job(manifest, computation, "alpha", now()),
        // No nonce was issued for this: refused as `nonce` if it gets that far.
        "fresh": {"nonce": "00".repeat(16), "evidence": ""},
    }))
    .unwrap()
}

/// A release as a worker makes it: a nonce from the broker, answered with fresh evidence.
pub async fn try_release(
    conn: &mut Connection,
    worker: &SimWorker,
    manifest: &Manifest,
    computation: &str,
    inputs: &BTreeMap<String, String>,
) -> Result<Response, coffer_net::NetError> {
    let challenge = conn
        .send(Method::POST, "/v1/challenge", &[], Vec::new())
        .await?;
    let mut body: serde_json::Value =
        serde_json::from_slice(&release_body(manifest, computation, inputs)).unwrap();
    if challenge.status == 200 {
        let nonce = serde_json::from_slice::<serde_json::Value>(&challenge.body).unwrap()["nonce"]
            .as_str()
            .unwrap()
            .to_owned();
        let spki = RaTlsCert::from_der(worker.identity.cert_der())
            .unwrap()
            .spki_der;
        let evidence =
            coffer_attest::ratls::answer_challenge(&spki, &hex::decode(&nonce).unwrap(), |rd| {
                worker.source.evidence(rd).map_err(|e| e.to_string())
            })
            .unwrap();
        body["fresh"] = serde_json::json!({"nonce": nonce, "evidence": hex::encode(evidence)});
    }
    conn.send(
        Method::POST,
        "/v1/release",
        &[],
        serde_json::to_vec(&body).unwrap(),
    )
    .await
}

/// A fresh job for `computation` of `manifest`, signed by `party` at `time`.
pub fn signed_job(
    manifest: &Manifest,
    computation: &str,
    party: &str,
    time: i64,
) -> coffer_net::job::SignedJob {
    coffer_net::job::JobSpec {
        manifest: manifest.hash(),
        computation: computation.to_owned(),
        params: BTreeMap::new(),
        format: coffer_net::job::OutputFormat::Csv,
        party: party.to_owned(),
        time,
        nonce: coffer_net::JobNonce::random().unwrap(),
    }
    .sign(&party_key(party), String::new(), serde_json::Value::Null)
    .unwrap()
    .signed_job()
}

pub async fn release(
    conn: &mut Connection,
    worker: &SimWorker,
    manifest: &Manifest,
    computation: &str,
    inputs: &BTreeMap<String, String>,
) -> Response {
    try_release(conn, worker, manifest, computation, inputs)
        .await
        .unwrap()
}

/// The error body's `check`.
pub fn check_of(r: &Response) -> String {
    let v: serde_json::Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&r.body)));
    v["check"].as_str().unwrap_or_default().to_owned()
}

pub fn event_kinds(log: &[SignedEntry]) -> Vec<String> {
    log.iter()
        .map(|e| {
            serde_json::to_value(&e.entry.event).unwrap()["type"]
                .as_str()
                .unwrap_or("?")
                .to_owned()
        })
        .collect()
}

pub fn wait_short() -> Duration {
    Duration::from_millis(50)
}
