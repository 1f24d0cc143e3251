#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
//! The orchestrator over real HTTPS on loopback, against stand-in workers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use coffer_net::job::{
    JobDone, JobRequest, JobSpec, OutputFormat, OutputRef, Receipt, SignedReceipt,
};
use coffer_net::orchestrator::{JobState, JobStatus, WorkerEntry};
use coffer_net::{ApiError, Connection, Endpoint, JobId};
use coffer_orchestrator::{Config, Service};
use tokio::sync::oneshot;

const DEADLINE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// TLS and HTTP helpers

fn self_signed_tls() -> Arc<rustls::ServerConfig> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["worker".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap(),
    )
}

async fn call(base: &str, method: http::Method, path: &str, body: Vec<u8>) -> (StatusCode, Bytes) {
    let endpoint = Endpoint::parse(base).unwrap();
    let mut conn = Connection::connect(&endpoint, coffer_net::client_config(None).unwrap())
        .await
        .unwrap();
    let resp = conn.send(method, path, &[], body).await.unwrap();
    (resp.status, resp.body)
}

/// A URL on which nothing listens: a port bound, then released.
async fn dead_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("https://127.0.0.1:{port}")
}

// ---------------------------------------------------------------------------------------
// A stand-in worker

const DONE: u8 = 0;
const REFUSE: u8 = 1;
const HANG: u8 = 2;
const GARBAGE: u8 = 3;
const PLAIN_500: u8 = 4;

#[derive(Default)]
struct WorkerState {
    mode: AtomicU8,
    calls: AtomicUsize,
    bodies: Mutex<Vec<Bytes>>,
}

struct StandIn {
    url: String,
    state: Arc<WorkerState>,
    _stop: oneshot::Sender<()>,
}

impl StandIn {
    async fn start(mode: u8) -> Self {
        let state = Arc::new(WorkerState::default());
        state.mode.store(mode, Ordering::SeqCst);
        let app = axum::Router::new()
            .route(coffer_net::job::JOBS, axum::routing::post(run_job))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(coffer_net::serve_tls(
            listener,
            self_signed_tls(),
            app,
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            url,
            state,
            _stop: stop,
        }
    }

    fn set_mode(&self, mode: u8) {
        self.state.mode.store(mode, Ordering::SeqCst);
    }

    fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }

    fn bodies(&self) -> Vec<Bytes> {
        self.state.bodies.lock().unwrap().clone()
    }
}

/// The receipt a stand-in returns: not signed (the orchestrator does not verify receipts).
fn dummy_receipt(req: &JobRequest) -> SignedReceipt {
    SignedReceipt {
        receipt: Receipt {
            job: req.id().unwrap(),
            manifest: req.spec.manifest,
            computation: req.spec.computation.clone(),
            party: req.spec.party.clone(),
            inputs: BTreeMap::from([("patients".into(), format!("sha256:{}", "11".repeat(32)))]),
            outputs: vec![OutputRef {
                path: "outputs/counts.csv.age".into(),
                digest: format!("sha256:{}", "22".repeat(32)),
                format: OutputFormat::Csv,
                recipients: vec!["alpha".into()],
                rows: 3,
            }],
            backend: "sim".into(),
            simulated: true,
            time: 1_700_000_100,
        },
        signature: "bm90IGEgc2lnbmF0dXJl".into(),
        certificate: "bm90IGEgY2VydGlmaWNhdGU=".into(),
    }
}

async fn run_job(State(s): State<Arc<WorkerState>>, body: Bytes) -> Response {
    s.calls.fetch_add(1, Ordering::SeqCst);
    s.bodies.lock().unwrap().push(body.clone());
    match s.mode.load(Ordering::SeqCst) {
        DONE => {
            let req: JobRequest = serde_json::from_slice(&body).unwrap();
            axum::Json(JobDone {
                receipt: dummy_receipt(&req),
            })
            .into_response()
        }
        REFUSE => ApiError::new("refused", "measurement", "the measurement is not allowed")
            .into_response(),
        HANG => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
        GARBAGE => (StatusCode::OK, "not a receipt").into_response(),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "<html>oops</html>").into_response(),
    }
}

// ---------------------------------------------------------------------------------------
// The orchestrator under test

struct Orch {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Orch {
    async fn start(config: Config) -> Self {
        let service = Service::bind(config).await.unwrap();
        let url = format!("https://{}", service.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(service.serve(async move {
            let _ = stopped.await;
        }));
        Self {
            url,
            stop: Some(stop),
            done: Some(done),
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.done.take().unwrap().await.unwrap().unwrap();
    }

    async fn submit_raw(&self, body: Vec<u8>) -> (StatusCode, Bytes) {
        call(&self.url, http::Method::POST, "/v1/jobs", body).await
    }

    async fn submit(&self, req: &JobRequest) -> JobStatus {
        let (status, body) = self.submit_raw(serde_json::to_vec(req).unwrap()).await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).unwrap()
    }

    async fn status(&self, id: &JobId) -> JobStatus {
        let (status, body) = call(
            &self.url,
            http::Method::GET,
            &format!("/v1/jobs/{id}"),
            vec![],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    /// Polls until the job reaches a final state.
    async fn wait_final(&self, id: &JobId) -> JobStatus {
        let start = Instant::now();
        loop {
            let st = self.status(id).await;
            if st.state.is_final() {
                return st;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "job still {:?}: {st:?}",
                st.state
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_state(&self, id: &JobId, state: JobState) -> JobStatus {
        let start = Instant::now();
        loop {
            let st = self.status(id).await;
            if st.state == state {
                return st;
            }
            assert!(start.elapsed() < DEADLINE, "job never {state:?}: {st:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn register(&self, url: &str) -> (StatusCode, Bytes) {
        let body = serde_json::to_vec(&serde_json::json!({ "url": url })).unwrap();
        call(&self.url, http::Method::POST, "/v1/workers", body).await
    }

    async fn workers(&self) -> Vec<WorkerEntry> {
        let (status, body) = call(&self.url, http::Method::GET, "/v1/workers", vec![]).await;
        assert_eq!(status, StatusCode::OK);
        serde_json::from_slice(&body).unwrap()
    }
}

fn config(db: &Path, workers: Vec<String>) -> Config {
    let mut c = Config::new(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        db.to_path_buf(),
        "file:///tmp/coffer-storage".into(),
    );
    c.workers = workers;
    c
}

fn job(nonce: u8) -> JobRequest {
    JobSpec {
        manifest: format!("sha256:{}", "ab".repeat(32)).parse().unwrap(),
        computation: "counts".into(),
        params: BTreeMap::from([("min_age".into(), serde_json::json!(40))]),
        format: OutputFormat::Csv,
        party: "alpha".into(),
        time: 1_700_000_000,
        nonce: coffer_net::JobNonce([nonce; 16]),
    }
    .sign(
        &ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
        "yaml".into(),
        serde_json::json!({}),
    )
    .unwrap()
}

fn api_error(body: &[u8]) -> ApiError {
    serde_json::from_slice(body).unwrap()
}

// ---------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_queued_then_done_with_the_workers_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let worker = StandIn::start(DONE).await;
    // No worker yet: the job waits in the queue.
    let orch = Orch::start(config(&dir.path().join("orch.sqlite"), vec![])).await;
    let req = job(1);
    let id = req.id().unwrap();
    let raw = serde_json::to_vec_pretty(&req).unwrap();
    let (status, body) = orch.submit_raw(raw.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let queued: JobStatus = serde_json::from_slice(&body).unwrap();
    assert_eq!(queued.id, id);
    assert_eq!(queued.state, JobState::Queued);
    assert_eq!(queued.manifest, req.spec.manifest);
    assert_eq!(queued.computation, "counts");
    assert_eq!(queued.party, "alpha");
    assert_eq!(queued.attempts, 0);
    assert!(queued.receipt.is_none());
    assert!(queued.created > 1_700_000_000);
    assert_eq!(orch.status(&id).await.state, JobState::Queued);

    let (status, body) = orch.register(&format!("{}/", worker.url)).await;
    assert_eq!(status, StatusCode::CREATED);
    let entry: WorkerEntry = serde_json::from_slice(&body).unwrap();
    assert_eq!(entry.url, worker.url);
    assert_eq!(entry.failures, 0);

    let done = orch.wait_final(&id).await;
    assert_eq!(done.state, JobState::Done, "{done:?}");
    assert_eq!(done.attempts, 1);
    assert_eq!(done.worker.as_deref(), Some(worker.url.as_str()));
    assert!(done.check.is_none() && done.reason.is_none());
    assert!(done.updated >= done.created);
    // The receipt comes back exactly as the worker gave it.
    let expected = dummy_receipt(&req);
    assert_eq!(done.receipt.as_ref(), Some(&expected));
    assert_eq!(
        serde_json::to_vec(done.receipt.as_ref().unwrap()).unwrap(),
        serde_json::to_vec(&expected).unwrap()
    );
    // The worker got the request exactly as submitted.
    assert_eq!(worker.bodies(), vec![Bytes::from(raw)]);
    assert_eq!(worker.calls(), 1);
    orch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_submissions_and_lookups_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let orch = Orch::start(config(&dir.path().join("orch.sqlite"), vec![])).await;
    let req = job(2);
    orch.submit(&req).await;

    // The same job again: a conflict.
    let (status, body) = orch.submit_raw(serde_json::to_vec(&req).unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let e = api_error(&body);
    assert_eq!(
        (e.error.as_str(), e.check.as_str()),
        ("conflict", "job_exists")
    );

    // An unknown id.
    let (status, body) = call(
        &orch.url,
        http::Method::GET,
        &format!("/v1/jobs/{}", "00".repeat(32)),
        vec![],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let e = api_error(&body);
    assert_eq!(
        (e.error.as_str(), e.check.as_str()),
        ("not_found", "unknown_job")
    );

    // One id, one spelling: the same id in capitals, or cut short, is not an id.
    let id = req.id().unwrap().to_string();
    for other in [id.to_uppercase(), id[..62].to_owned()] {
        let (status, body) = call(
            &orch.url,
            http::Method::GET,
            &format!("/v1/jobs/{other}"),
            vec![],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let e = api_error(&body);
        assert_eq!(
            (e.error.as_str(), e.check.as_str()),
            ("bad_request", "job_id")
        );
    }

    // Malformed bodies, and hex ids spelt another way.
    let mut extra = serde_json::to_value(&req).unwrap();
    extra["spec"]["surprise"] = serde_json::json!(1);
    let mut upper_nonce = serde_json::to_value(&req).unwrap();
    upper_nonce["spec"]["nonce"] = serde_json::json!("AB".repeat(16));
    let mut upper_manifest = serde_json::to_value(&req).unwrap();
    upper_manifest["spec"]["manifest"] = serde_json::json!(format!("sha256:{}", "AB".repeat(32)));
    for body in [
        b"not json".to_vec(),
        b"{}".to_vec(),
        serde_json::to_vec(&serde_json::json!({"spec": 1})).unwrap(),
        serde_json::to_vec(&extra).unwrap(),
        serde_json::to_vec(&upper_nonce).unwrap(),
        serde_json::to_vec(&upper_manifest).unwrap(),
    ] {
        let (status, body) = orch.submit_raw(body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let e = api_error(&body);
        assert_eq!(
            (e.error.as_str(), e.check.as_str()),
            ("bad_request", "body")
        );
    }

    // Bodies over 8 MiB are not read.
    let (status, _) = orch.submit_raw(vec![b' '; (8 << 20) + 1]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    // Workers: a bad URL is refused, registering twice is idempotent.
    for bad in ["http://127.0.0.1:1", "https://127.0.0.1:1/v1", "nonsense"] {
        let (status, body) = orch.register(bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        let e = api_error(&body);
        assert_eq!(
            (e.error.as_str(), e.check.as_str()),
            ("bad_request", "worker_url")
        );
    }
    let (status, _) = call(&orch.url, http::Method::POST, "/v1/workers", b"[]".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let url = dead_url().await;
    for _ in 0..2 {
        let (status, _) = orch.register(&url).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let workers = orch.workers().await;
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].url, url);
    orch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_a_verdict_and_is_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let worker = StandIn::start(REFUSE).await;
    let orch = Orch::start(config(
        &dir.path().join("orch.sqlite"),
        vec![worker.url.clone()],
    ))
    .await;
    let id = orch.submit(&job(3)).await.id;
    let st = orch.wait_final(&id).await;
    assert_eq!(st.state, JobState::Failed);
    assert_eq!(st.check.as_deref(), Some("measurement"));
    assert!(
        st.reason
            .as_deref()
            .unwrap()
            .contains("measurement is not allowed")
    );
    assert_eq!(st.attempts, 1);
    assert!(st.receipt.is_none());
    assert_eq!(worker.calls(), 1);
    assert_eq!(orch.workers().await[0].failures, 0);
    orch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_are_not_receipts_fail_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let worker = StandIn::start(GARBAGE).await;
    let orch = Orch::start(config(
        &dir.path().join("orch.sqlite"),
        vec![worker.url.clone()],
    ))
    .await;
    let id = orch.submit(&job(4)).await.id;
    let st = orch.wait_final(&id).await;
    assert_eq!(st.state, JobState::Failed);
    assert_eq!(st.check.as_deref(), Some("bad_worker_response"));
    assert_eq!(st.attempts, 1);

    worker.set_mode(PLAIN_500);
    let id = orch.submit(&job(5)).await.id;
    let st = orch.wait_final(&id).await;
    assert_eq!(st.state, JobState::Failed);
    assert_eq!(st.check.as_deref(), Some("worker_error"));
    assert!(st.reason.as_deref().unwrap().contains("oops"));
    assert_eq!(st.attempts, 1);
    assert_eq!(worker.calls(), 2);
    orch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_worker_is_skipped_for_a_live_one() {
    let dir = tempfile::tempdir().unwrap();
    let live = StandIn::start(DONE).await;
    let dead = dead_url().await;
    let orch = Orch::start(config(
        &dir.path().join("orch.sqlite"),
        vec![dead.clone(), live.url.clone()],
    ))
    .await;
    // Enough jobs that the dead worker's turn comes in the round robin.
    let mut ids = Vec::new();
    for n in 10..14 {
        ids.push(orch.submit(&job(n)).await.id);
    }
    for id in &ids {
        let st = orch.wait_final(id).await;
        assert_eq!(st.state, JobState::Done, "{st:?}");
        assert!(st.attempts <= 2, "{st:?}");
        assert_eq!(st.worker.as_deref(), Some(live.url.as_str()));
    }
    let workers = orch.workers().await;
    let dead_entry = workers.iter().find(|w| w.url == dead).unwrap();
    assert!(dead_entry.failures >= 1, "{workers:?}");
    let live_entry = workers.iter().find(|w| w.url == live.url).unwrap();
    assert_eq!(live_entry.failures, 0);
    orch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_dead_workers_fail_the_job_after_max_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let dead = vec![dead_url().await, dead_url().await];
    let mut c = config(&dir.path().join("orch.sqlite"), dead.clone());
    c.max_attempts = 2;
    c.worker_timeout = Duration::from_secs(2);
    let orch = Orch::start(c).await;
    let id = orch.submit(&job(20)).await.id;
    let st = orch.wait_final(&id).await;
    assert_eq!(st.state, JobState::Failed);
    assert_eq!(st.check.as_deref(), Some("worker_unavailable"));
    assert_eq!(st.attempts, 2);
    let reason = st.reason.unwrap();
    let last = st.worker.unwrap();
    assert!(dead.contains(&last));
    assert!(reason.contains(&last), "{reason}");
    // Each dead worker was tried once: the retry went to the other one.
    for w in orch.workers().await {
        assert_eq!(w.failures, 1, "{w:?}");
    }
    orch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_does_not_answer_in_time_is_a_transport_failure() {
    let dir = tempfile::tempdir().unwrap();
    let worker = StandIn::start(HANG).await;
    let mut c = config(&dir.path().join("orch.sqlite"), vec![worker.url.clone()]);
    c.max_attempts = 2;
    c.worker_timeout = Duration::from_secs(1);
    let orch = Orch::start(c).await;
    let id = orch.submit(&job(30)).await.id;
    let st = orch.wait_final(&id).await;
    assert_eq!(st.state, JobState::Failed);
    assert_eq!(st.check.as_deref(), Some("worker_unavailable"));
    assert_eq!(st.attempts, 2);
    // Whether each attempt reached the worker before its time ran out is not asserted.
    assert!(worker.calls() <= 2);
    assert_eq!(orch.workers().await[0].failures, 2);
    orch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_interrupted_by_a_restart_is_dispatched_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("orch.sqlite");
    let worker = StandIn::start(HANG).await;
    let orch = Orch::start(config(&db, vec![worker.url.clone()])).await;
    let id = orch.submit(&job(40)).await.id;
    let running = orch.wait_state(&id, JobState::Running).await;
    assert_eq!(running.attempts, 1);
    // Stop while the worker holds the job: it stays `running` in the store.
    orch.stop().await;
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let state: String = conn
            .query_row(
                "SELECT state FROM jobs WHERE id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(state, "running");
    }

    worker.set_mode(DONE);
    let orch = Orch::start(config(&db, vec![])).await;
    let st = orch.wait_final(&id).await;
    assert_eq!(st.state, JobState::Done, "{st:?}");
    assert_eq!(st.attempts, 2);
    assert!(st.receipt.is_some());
    orch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_found_at_start_goes_back_to_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("orch.sqlite");
    // Create the store and a job, then mark it running as a crash would leave it.
    let orch = Orch::start(config(&db, vec![])).await;
    let id = orch.submit(&job(50)).await.id;
    orch.stop().await;
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let n = conn
            .execute(
                "UPDATE jobs SET state = 'running', attempts = 1, worker = 'https://127.0.0.1:9'
                 WHERE id = ?1",
                [id.to_string()],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
    let orch = Orch::start(config(&db, vec![])).await;
    let st = orch.status(&id).await;
    assert_eq!(st.state, JobState::Queued);
    assert_eq!(st.attempts, 1);
    let worker = StandIn::start(DONE).await;
    let (status, _) = orch.register(&worker.url).await;
    assert_eq!(status, StatusCode::CREATED);
    let st = orch.wait_final(&id).await;
    assert_eq!(st.state, JobState::Done, "{st:?}");
    assert_eq!(st.attempts, 2);
    assert_eq!(st.worker.as_deref(), Some(worker.url.as_str()));
    orch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_configured_worker_url_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let err = Service::bind(config(
        &dir.path().join("orch.sqlite"),
        vec!["http://127.0.0.1:1".into()],
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(err, coffer_orchestrator::StartError::Worker { .. }),
        "{err}"
    );
}
