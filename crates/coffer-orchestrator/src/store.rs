//! The orchestrator's SQLite store: jobs and workers.
//!
//! One connection behind a `std::sync::Mutex`, locked only for the duration of one
//! synchronous call; async callers go through [`blocking`], which runs the call on tokio's
//! blocking pool so that no lock is ever held across an `.await`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use coffer_net::JobId;
use coffer_net::job::SignedReceipt;
use coffer_net::orchestrator::{JobState, JobStatus, WorkerEntry};
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};

/// The schema's version, in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE jobs (
    id          TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    request     TEXT NOT NULL,
    manifest    TEXT NOT NULL,
    computation TEXT NOT NULL,
    party       TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    worker      TEXT,
    check_name  TEXT,
    reason      TEXT,
    receipt     TEXT,
    created     INTEGER NOT NULL,
    updated     INTEGER NOT NULL
);
CREATE INDEX jobs_by_state ON jobs (state, created);
CREATE TABLE workers (
    url        TEXT PRIMARY KEY,
    failures   INTEGER NOT NULL DEFAULT 0,
    registered INTEGER NOT NULL
);
";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("job store {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("job store {path} is corrupted: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("job store {path} has schema version {found}; this orchestrator knows {expected}")]
    UnsupportedSchema {
        path: PathBuf,
        found: i64,
        expected: i64,
    },
    #[error("creating {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("job store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("job store: a row holds {0}")]
    BadRow(String),
    #[error("job store: the lock is poisoned")]
    Poisoned,
    #[error("job store task: {0}")]
    Task(String),
}

/// What [`Store::insert_job`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inserted {
    New,
    Exists,
}

/// A job taken from the queue for one dispatch attempt.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    pub id: String,
    /// The request JSON exactly as submitted.
    pub request: String,
    /// The worker's URL.
    pub worker: String,
    /// Attempts including this one.
    pub attempts: u32,
}

/// How a dispatch attempt ended, as recorded.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// The worker ran the job; its receipt (JSON).
    Done { receipt: String },
    /// A verdict: the worker answered, and not with a receipt. Never retried.
    Failed { check: String, reason: String },
    /// No HTTP answer (connect, TLS, dropped, timeout): the job may be retried.
    Unreachable { reason: String },
}

/// The check a job fails with once no attempt is left.
pub(crate) const WORKER_UNAVAILABLE: &str = "worker_unavailable";

/// The store.
#[derive(Debug)]
pub(crate) struct Store {
    conn: Mutex<Connection>,
}

fn to_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

impl Store {
    /// Opens or creates the database at `path` (WAL, `synchronous=FULL`), refusing a
    /// corrupted file or an unknown schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        Self::open_file(path).map_err(|e| match e {
            StoreError::Sqlite(source) => match source.sqlite_error_code() {
                Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt {
                    path: path.to_path_buf(),
                    detail: source.to_string(),
                },
                _ => StoreError::Open {
                    path: path.to_path_buf(),
                    source,
                },
            },
            other => other,
        })
    }

    fn open_file(path: &Path) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let problems: Vec<String> = {
            let mut stmt = conn.prepare("PRAGMA integrity_check")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect::<Result<_, _>>()?
        };
        if problems != ["ok"] {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                detail: problems.join("; "),
            });
        }
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        match version {
            0 => {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                tx.execute_batch(SCHEMA)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
                tx.commit()?;
            }
            SCHEMA_VERSION => {}
            found => {
                return Err(StoreError::UnsupportedSchema {
                    path: path.to_path_buf(),
                    found,
                    expected: SCHEMA_VERSION,
                });
            }
        }
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn with<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        f(&mut conn)
    }

    /// Puts the jobs a previous run left `running` back in the queue (the interrupted
    /// attempt counts); one whose last attempt that was fails as `worker_unavailable`.
    /// Returns how many were requeued and how many failed.
    pub fn recover(&self, max_attempts: u32, now: i64) -> Result<(usize, usize), StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let failed = tx.execute(
                "UPDATE jobs SET state = 'failed', check_name = ?1, reason = ?2, updated = ?3
                 WHERE state = 'running' AND attempts >= ?4",
                params![
                    WORKER_UNAVAILABLE,
                    "the orchestrator stopped during the job's last dispatch attempt",
                    now,
                    max_attempts
                ],
            )?;
            let requeued = tx.execute(
                "UPDATE jobs SET state = 'queued', updated = ?1 WHERE state = 'running'",
                params![now],
            )?;
            tx.commit()?;
            Ok((requeued, failed))
        })
    }

    /// Registers a worker (idempotent) and returns its entry.
    pub fn register_worker(&self, url: &str, now: i64) -> Result<WorkerEntry, StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT OR IGNORE INTO workers (url, failures, registered) VALUES (?1, 0, ?2)",
                params![url, now],
            )?;
            let failures: i64 = conn.query_row(
                "SELECT failures FROM workers WHERE url = ?1",
                params![url],
                |r| r.get(0),
            )?;
            Ok(WorkerEntry {
                url: url.to_owned(),
                failures: to_u32(failures),
            })
        })
    }

    /// Every registered worker, in registration order.
    pub fn workers(&self) -> Result<Vec<WorkerEntry>, StoreError> {
        self.with(|conn| {
            let mut stmt =
                conn.prepare("SELECT url, failures FROM workers ORDER BY registered, url")?;
            let rows = stmt.query_map([], |r| {
                Ok(WorkerEntry {
                    url: r.get(0)?,
                    failures: to_u32(r.get(1)?),
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Queues a new job; [`Inserted::Exists`] if one with this id is already known.
    pub fn insert_job(
        &self,
        id: &JobId,
        request: &str,
        spec: &coffer_net::job::JobSpec,
        now: i64,
    ) -> Result<Inserted, StoreError> {
        self.with(|conn| {
            let res = conn.execute(
                "INSERT INTO jobs (id, state, request, manifest, computation, party, attempts,
                                   created, updated)
                 VALUES (?1, 'queued', ?2, ?3, ?4, ?5, 0, ?6, ?6)",
                params![
                    id.to_string(),
                    request,
                    spec.manifest.to_string(),
                    spec.computation,
                    spec.party,
                    now
                ],
            );
            match res {
                Ok(_) => Ok(Inserted::New),
                Err(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
                    Ok(Inserted::Exists)
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    /// A job's status, if known.
    pub fn job(&self, id: &JobId) -> Result<Option<JobStatus>, StoreError> {
        self.with(|conn| {
            let row = conn
                .query_row(
                    "SELECT id, state, manifest, computation, party, attempts, worker,
                            check_name, reason, receipt, created, updated
                     FROM jobs WHERE id = ?1",
                    params![id.to_string()],
                    |r| {
                        Ok((
                            (
                                r.get::<_, String>(0)?,
                                r.get::<_, String>(1)?,
                                r.get::<_, String>(2)?,
                                r.get::<_, String>(3)?,
                                r.get::<_, String>(4)?,
                                r.get::<_, i64>(5)?,
                            ),
                            (
                                r.get::<_, Option<String>>(6)?,
                                r.get::<_, Option<String>>(7)?,
                                r.get::<_, Option<String>>(8)?,
                                r.get::<_, Option<String>>(9)?,
                                r.get::<_, i64>(10)?,
                                r.get::<_, i64>(11)?,
                            ),
                        ))
                    },
                )
                .optional()?;
            let Some((
                (id, state, manifest, computation, party, attempts),
                (worker, check, reason, receipt, created, updated),
            )) = row
            else {
                return Ok(None);
            };
            let state = JobState::parse(&state)
                .ok_or_else(|| StoreError::BadRow(format!("job state {state:?}")))?;
            let receipt = receipt
                .map(|text| serde_json::from_str::<SignedReceipt>(&text))
                .transpose()
                .map_err(|e| StoreError::BadRow(format!("an unreadable receipt: {e}")))?;
            let bad = |what: &str, e: String| StoreError::BadRow(format!("{what}: {e}"));
            Ok(Some(JobStatus {
                id: id.parse().map_err(|e| bad("job id", e))?,
                state,
                manifest: manifest.parse().map_err(|e| bad("manifest hash", e))?,
                computation,
                party,
                attempts: to_u32(attempts),
                worker,
                check,
                reason,
                receipt,
                created,
                updated,
            }))
        })
    }

    /// Takes the oldest queued job for a dispatch attempt: picks a worker round robin from
    /// `next` (skipping the worker that last failed this job when another exists), marks the
    /// job `running` there and counts the attempt. `None` when nothing is queued or no worker
    /// is registered. Returns the claim and the round-robin position to use next.
    pub fn claim(&self, next: usize, now: i64) -> Result<Option<(Claim, usize)>, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let workers: Vec<String> = {
                let mut stmt = tx.prepare("SELECT url FROM workers ORDER BY registered, url")?;
                let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
                rows.collect::<Result<_, _>>()?
            };
            if workers.is_empty() {
                return Ok(None);
            }
            let job = tx
                .query_row(
                    "SELECT id, request, worker FROM jobs WHERE state = 'queued'
                     ORDER BY created, rowid LIMIT 1",
                    [],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, Option<String>>(2)?,
                        ))
                    },
                )
                .optional()?;
            let Some((id, request, last)) = job else {
                return Ok(None);
            };
            let Some((worker, after)) = pick(&workers, next, last.as_deref()) else {
                return Ok(None);
            };
            tx.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, worker = ?1,
                                 check_name = NULL, reason = NULL, updated = ?2
                 WHERE id = ?3",
                params![worker, now, id],
            )?;
            let attempts: i64 = tx.query_row(
                "SELECT attempts FROM jobs WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )?;
            tx.commit()?;
            Ok(Some((
                Claim {
                    id,
                    request,
                    worker,
                    attempts: to_u32(attempts),
                },
                after,
            )))
        })
    }

    /// Records how a dispatch attempt ended. A worker that answered (anything) has its
    /// failure count reset; one that did not has it incremented, and the job goes back to the
    /// queue unless it used `max_attempts`. Returns the job's new state.
    pub fn finish(
        &self,
        claim: &Claim,
        outcome: &Outcome,
        max_attempts: u32,
        now: i64,
    ) -> Result<JobState, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let state = match outcome {
                Outcome::Done { receipt } => {
                    tx.execute(
                        "UPDATE workers SET failures = 0 WHERE url = ?1",
                        params![claim.worker],
                    )?;
                    tx.execute(
                        "UPDATE jobs SET state = 'done', receipt = ?1, check_name = NULL,
                                         reason = NULL, updated = ?2
                         WHERE id = ?3 AND state = 'running'",
                        params![receipt, now, claim.id],
                    )?;
                    JobState::Done
                }
                Outcome::Failed { check, reason } => {
                    tx.execute(
                        "UPDATE workers SET failures = 0 WHERE url = ?1",
                        params![claim.worker],
                    )?;
                    tx.execute(
                        "UPDATE jobs SET state = 'failed', check_name = ?1, reason = ?2,
                                         updated = ?3
                         WHERE id = ?4 AND state = 'running'",
                        params![check, reason, now, claim.id],
                    )?;
                    JobState::Failed
                }
                Outcome::Unreachable { reason } => {
                    tx.execute(
                        "UPDATE workers SET failures = MIN(failures + 1, 4294967295)
                         WHERE url = ?1",
                        params![claim.worker],
                    )?;
                    if claim.attempts < max_attempts {
                        tx.execute(
                            "UPDATE jobs SET state = 'queued', updated = ?1
                             WHERE id = ?2 AND state = 'running'",
                            params![now, claim.id],
                        )?;
                        JobState::Queued
                    } else {
                        let reason = format!(
                            "no worker could be reached in {} attempts; last: {} ({reason})",
                            claim.attempts, claim.worker
                        );
                        tx.execute(
                            "UPDATE jobs SET state = 'failed', check_name = ?1, reason = ?2,
                                             updated = ?3
                             WHERE id = ?4 AND state = 'running'",
                            params![WORKER_UNAVAILABLE, reason, now, claim.id],
                        )?;
                        JobState::Failed
                    }
                }
            };
            tx.commit()?;
            Ok(state)
        })
    }
}

/// Round robin from `next` over `workers`, skipping `last` (the worker that failed the job
/// last) when another exists. Returns the worker and the next position.
fn pick(workers: &[String], next: usize, last: Option<&str>) -> Option<(String, usize)> {
    let n = workers.len();
    let start = next.checked_rem(n)?;
    let mut i = start;
    loop {
        let url = workers.get(i)?;
        let after = i.checked_add(1)?.checked_rem(n)?;
        if n == 1 || last != Some(url.as_str()) {
            return Some((url.clone(), after));
        }
        i = after;
        if i == start {
            return None;
        }
    }
}

/// Runs `f` on the store from the blocking pool.
pub(crate) async fn blocking<R: Send + 'static>(
    store: &Arc<Store>,
    f: impl FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
) -> Result<R, StoreError> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn round_robin_skips_the_last_failed_worker() {
        let w: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
        assert_eq!(pick(&w, 0, None), Some(("a".into(), 1)));
        assert_eq!(pick(&w, 1, None), Some(("b".into(), 2)));
        assert_eq!(pick(&w, 5, None), Some(("c".into(), 0)));
        assert_eq!(pick(&w, 0, Some("a")), Some(("b".into(), 2)));
        assert_eq!(pick(&w, 2, Some("c")), Some(("a".into(), 1)));
        // The only worker is used again.
        let one: Vec<String> = vec!["a".into()];
        assert_eq!(pick(&one, 7, Some("a")), Some(("a".into(), 0)));
        assert_eq!(pick(&[], 0, None), None);
    }
}
