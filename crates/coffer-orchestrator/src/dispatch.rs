//! The dispatcher: takes queued jobs and relays them to workers, a few at a time.

use std::sync::Arc;
use std::time::Duration;

use coffer_net::job::JobDone;
use coffer_net::{ApiError, Connection, Endpoint, NetError};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use crate::store::{self, Claim, Outcome, Store};
use crate::unix_now;

/// Dispatches in flight at once.
pub const MAX_DISPATCHES: usize = 4;
/// How often the queue is looked at without a wake-up.
const POLL: Duration = Duration::from_millis(500);
/// How long to wait before looking again after the store failed.
const STORE_BACKOFF: Duration = Duration::from_secs(1);

/// The dispatcher's state.
pub(crate) struct Dispatcher {
    pub store: Arc<Store>,
    pub wake: Arc<Notify>,
    pub tls: Arc<rustls::ClientConfig>,
    pub max_attempts: u32,
    pub timeout: Duration,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("max_attempts", &self.max_attempts)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// Runs until dropped (aborted): dropping it abandons the dispatches in flight, whose jobs
    /// stay `running` in the store until the next start puts them back in the queue.
    pub async fn run(self) {
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(MAX_DISPATCHES));
        let mut inflight = JoinSet::new();
        let mut next = 0usize;
        loop {
            // Reap finished dispatches so the set does not grow.
            while inflight.try_join_next().is_some() {}
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let claimed = store::blocking(&this.store, move |s| s.claim(next, unix_now())).await;
            match claimed {
                Ok(Some((claim, after))) => {
                    next = after;
                    let this = Arc::clone(&this);
                    inflight.spawn(async move {
                        let _slot = slot;
                        this.dispatch(claim).await;
                    });
                }
                Ok(None) => {
                    drop(slot);
                    tokio::select! {
                        () = this.wake.notified() => {}
                        () = tokio::time::sleep(POLL) => {}
                    }
                }
                Err(e) => {
                    drop(slot);
                    eprintln!("coffer-orchestrator: taking a job from the queue: {e}");
                    tokio::time::sleep(STORE_BACKOFF).await;
                }
            }
        }
    }

    /// One attempt: relays the request and records the outcome.
    async fn dispatch(&self, claim: Claim) {
        let outcome = match tokio::time::timeout(self.timeout, self.send(&claim)).await {
            Err(_) => Outcome::Unreachable {
                reason: format!("no answer within {} s", self.timeout.as_secs_f64()),
            },
            Ok(Err(e)) => Outcome::Unreachable {
                reason: e.to_string(),
            },
            Ok(Ok(resp)) => judge(&resp),
        };
        if let Outcome::Unreachable { reason } = &outcome {
            eprintln!(
                "coffer-orchestrator: job {} attempt {}: worker {} unreachable: {reason}",
                claim.id, claim.attempts, claim.worker
            );
        }
        let (max, claim2, outcome2) = (self.max_attempts, claim.clone(), outcome.clone());
        match store::blocking(&self.store, move |s| {
            s.finish(&claim2, &outcome2, max, unix_now())
        })
        .await
        {
            Ok(state) => {
                eprintln!(
                    "coffer-orchestrator: job {} attempt {} on {}: {}",
                    claim.id,
                    claim.attempts,
                    claim.worker,
                    state.name()
                );
                // A requeued job (or a freed slot) may be taken at once.
                self.wake.notify_one();
            }
            Err(e) => eprintln!(
                "coffer-orchestrator: recording job {}: {e} (it goes back to the queue at the next start)",
                claim.id
            ),
        }
    }

    async fn send(&self, claim: &Claim) -> Result<coffer_net::Response, NetError> {
        let endpoint = Endpoint::parse(&claim.worker)?;
        let mut conn = Connection::connect(&endpoint, Arc::clone(&self.tls)).await?;
        conn.send(
            http::Method::POST,
            coffer_net::job::JOBS,
            &[],
            claim.request.clone().into_bytes(),
        )
        .await
    }
}

/// What a worker's HTTP answer means for the job.
fn judge(resp: &coffer_net::Response) -> Outcome {
    if resp.status.is_success() {
        return match serde_json::from_slice::<JobDone>(&resp.body) {
            Ok(done) => match serde_json::to_string(&done.receipt) {
                Ok(receipt) => Outcome::Done { receipt },
                Err(e) => Outcome::Failed {
                    check: "bad_worker_response".into(),
                    reason: format!("storing the receipt: {e}"),
                },
            },
            Err(e) => Outcome::Failed {
                check: "bad_worker_response".into(),
                reason: format!("the worker answered {} without a receipt: {e}", resp.status),
            },
        };
    }
    match serde_json::from_slice::<ApiError>(&resp.body) {
        // A busy worker ran nothing: the job goes back to the queue like an unreachable one.
        Ok(err) if resp.status == http::StatusCode::SERVICE_UNAVAILABLE => Outcome::Unreachable {
            reason: err.to_string(),
        },
        Ok(err) => Outcome::Failed {
            check: err.check.clone(),
            reason: err.to_string(),
        },
        Err(_) => Outcome::Failed {
            check: "worker_error".into(),
            reason: format!(
                "the worker answered {}: {}",
                resp.status,
                snippet(&resp.body)
            ),
        },
    }
}

/// The start of a body, as text, for a reason.
fn snippet(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(MAX).collect();
    if text.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn resp(status: u16, body: &str) -> coffer_net::Response {
        coffer_net::Response {
            status: http::StatusCode::from_u16(status).unwrap(),
            body: bytes::Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn answers_are_judged() {
        let refused =
            serde_json::to_string(&ApiError::new("refused", "measurement", "no")).unwrap();
        match judge(&resp(403, &refused)) {
            Outcome::Failed { check, .. } => assert_eq!(check, "measurement"),
            other => panic!("{other:?}"),
        }
        match judge(&resp(502, "<html>bad gateway</html>")) {
            Outcome::Failed { check, reason } => {
                assert_eq!(check, "worker_error");
                assert!(reason.contains("bad gateway"));
            }
            other => panic!("{other:?}"),
        }
        match judge(&resp(200, "{}")) {
            Outcome::Failed { check, .. } => assert_eq!(check, "bad_worker_response"),
            other => panic!("{other:?}"),
        }
        assert_eq!(snippet("é".repeat(300).as_bytes()).chars().count(), 201);
    }
}
