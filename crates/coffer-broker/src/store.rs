//! The broker's SQLite store.

use std::path::{Path, PathBuf};

use coffer_manifest::ManifestHash;
use coffer_net::JobId;
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use crate::error::StoreError;
use coffer_net::audit::{AuditEntry, AuditEvent, AuditLog, SignedEntry};

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE manifests (
    hash TEXT PRIMARY KEY NOT NULL,
    yaml TEXT NOT NULL,
    signatures TEXT NOT NULL,
    active INTEGER NOT NULL,
    submitted_at INTEGER NOT NULL
);
CREATE TABLE keys (
    manifest TEXT NOT NULL REFERENCES manifests(hash),
    dataset TEXT NOT NULL,
    sealed BLOB NOT NULL,
    uploader TEXT NOT NULL,
    PRIMARY KEY (manifest, dataset)
);
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY NOT NULL,
    entry BLOB NOT NULL
);
CREATE TABLE seen_nonces (
    party TEXT NOT NULL,
    nonce TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (party, nonce)
);
";

/// A manifest as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    /// Its hash.
    pub hash: ManifestHash,
    /// The YAML as submitted.
    pub yaml: String,
    /// The signature file, as JSON.
    pub signatures: String,
    /// Whether it is active.
    pub active: bool,
    /// Unix time of first submission.
    pub submitted_at: i64,
}

/// The broker's store: `dir/broker.sqlite`.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

fn corrupt(path: &Path, e: &rusqlite::Error) -> Option<StoreError> {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => Some(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: e.to_string(),
        }),
        _ => None,
    }
}

impl Store {
    /// Opens or creates `dir/broker.sqlite`, sets WAL, `synchronous=FULL` and foreign keys,
    /// checks integrity and the schema version, and creates the schema if new.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            what: "creating",
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("broker.sqlite");
        Self::open_file(&path).map_err(|e| match e {
            StoreError::Sqlite(inner) => {
                corrupt(&path, &inner).unwrap_or(StoreError::Sqlite(inner))
            }
            other => other,
        })
    }

    fn open_file(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.set_prepared_statement_cache_capacity(64);
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
        let mut store = Self {
            conn,
            path: path.to_path_buf(),
        };
        let version: i64 = store
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        match version {
            0 => {
                let tx = store.conn.transaction()?;
                tx.execute_batch(SCHEMA)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
                tx.commit()?;
            }
            SCHEMA_VERSION => {}
            found => {
                return Err(StoreError::UnsupportedSchema {
                    found,
                    expected: SCHEMA_VERSION,
                });
            }
        }
        // Expired nonces are swept on every signed request: keep that an index range scan.
        // Releases by job (added after schema 1; created on open, so older stores gain it):
        // which audit entry released a job's keys, and which recorded its receipt.
        store.conn.execute_batch(
            "CREATE INDEX IF NOT EXISTS seen_nonces_expiry ON seen_nonces (expires_at);
             CREATE TABLE IF NOT EXISTS lifecycle (
                 subject TEXT PRIMARY KEY NOT NULL,
                 state TEXT NOT NULL,
                 by TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS releases (
                 job TEXT PRIMARY KEY NOT NULL,
                 manifest TEXT NOT NULL,
                 released_seq INTEGER NOT NULL,
                 worker TEXT NOT NULL,
                 receipt_seq INTEGER
             );",
        )?;
        Ok(store)
    }

    /// Opens a batch: the writes of every operation until [`commit`](Self::commit) become
    /// durable together, with one sync. Each operation still runs in its own savepoint, so a
    /// failed one leaves the others in the batch intact.
    pub fn begin(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(())
    }

    /// Commits the open batch (one WAL sync under `synchronous=FULL`).
    pub fn commit(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }

    /// Abandons the open batch, if any.
    pub fn rollback(&mut self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    /// Every stored manifest's YAML.
    pub fn manifest_yamls(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT yaml FROM manifests")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The manifest with this hash, if stored.
    pub fn manifest(&self, hash: &ManifestHash) -> Result<Option<StoredManifest>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT yaml, signatures, active, submitted_at FROM manifests WHERE hash = ?1",
            )?
            .query_row(params![hash.to_string()], |r| {
                Ok(StoredManifest {
                    hash: *hash,
                    yaml: r.get(0)?,
                    signatures: r.get(1)?,
                    active: r.get(2)?,
                    submitted_at: r.get(3)?,
                })
            })
            .optional()
            .map_err(StoreError::from)
    }

    /// Inserts or updates a manifest and appends `events` to the audit log, in one transaction.
    pub fn put_manifest(
        &mut self,
        audit: &AuditLog,
        time: i64,
        manifest: &StoredManifest,
        events: Vec<AuditEvent>,
    ) -> Result<(), StoreError> {
        let tx = self.conn.savepoint()?;
        tx.prepare_cached(
            "INSERT INTO manifests (hash, yaml, signatures, active, submitted_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(hash) DO UPDATE SET signatures = excluded.signatures,
                                             active = excluded.active",
        )?
        .execute(params![
            manifest.hash.to_string(),
            manifest.yaml,
            manifest.signatures,
            manifest.active,
            manifest.submitted_at
        ])?;
        for event in events {
            append(&tx, audit, time, event)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The sealed key and its uploader for `dataset` under `manifest`.
    pub fn key(
        &self,
        manifest: &ManifestHash,
        dataset: &str,
    ) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT sealed, uploader FROM keys WHERE manifest = ?1 AND dataset = ?2",
            )?
            .query_row(params![manifest.to_string(), dataset], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(StoreError::from)
    }

    /// Stores a sealed key (refusing to replace one) and appends `event`, in one transaction.
    /// Returns `false`, writing nothing, if a key is already held.
    #[expect(
        clippy::too_many_arguments,
        reason = "one row and its audit event, written together"
    )]
    pub fn put_key(
        &mut self,
        audit: &AuditLog,
        time: i64,
        manifest: &ManifestHash,
        dataset: &str,
        sealed: &[u8],
        uploader: &str,
        event: AuditEvent,
    ) -> Result<bool, StoreError> {
        let tx = self.conn.savepoint()?;
        let inserted = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO keys (manifest, dataset, sealed, uploader)
             VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![manifest.to_string(), dataset, sealed, uploader])?;
        if inserted == 0 {
            return Ok(false);
        }
        append(&tx, audit, time, event)?;
        tx.commit()?;
        Ok(true)
    }

    /// Appends one audit entry in its own transaction.
    pub fn append_audit(
        &mut self,
        audit: &AuditLog,
        time: i64,
        event: AuditEvent,
    ) -> Result<SignedEntry, StoreError> {
        let tx = self.conn.savepoint()?;
        let entry = append(&tx, audit, time, event)?;
        tx.commit()?;
        Ok(entry)
    }

    /// Marks `subject` (a manifest hash, or `key:<manifest>:<dataset>`) as `state`
    /// (`superseded`, `retired`, `revoked`) by `by`; the first mark stays.
    pub fn mark(&mut self, subject: &str, state: &str, by: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO lifecycle (subject, state, by) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![subject, state, by])?;
        Ok(())
    }

    /// The lifecycle mark of `subject`, if any: its state and by whom.
    pub fn mark_of(&self, subject: &str) -> Result<Option<(String, String)>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT state, by FROM lifecycle WHERE subject = ?1")?
            .query_row(params![subject], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    /// Deletes the sealed key of `dataset` under `manifest`; true if one was held.
    pub fn delete_key(
        &mut self,
        manifest: &ManifestHash,
        dataset: &str,
    ) -> Result<bool, StoreError> {
        let n = self
            .conn
            .prepare_cached("DELETE FROM keys WHERE manifest = ?1 AND dataset = ?2")?
            .execute(params![manifest.to_string(), dataset])?;
        Ok(n > 0)
    }

    /// Records that the audit entry `seq` released keys for `job` under `manifest` to the
    /// worker whose TLS key hashes to `worker` (hex SHA-256 of its SPKI).
    pub fn record_release(
        &mut self,
        job: &JobId,
        manifest: &ManifestHash,
        seq: u64,
        worker: &str,
    ) -> Result<(), StoreError> {
        self.conn.prepare_cached("INSERT INTO releases (job, manifest, released_seq, worker) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![
                job.to_string(),
                manifest.to_string(),
                i64::try_from(seq).unwrap_or(i64::MAX),
                worker
            ],
        )?;
        Ok(())
    }

    /// The release of `job`: its manifest, the worker's key hash and whether a receipt was
    /// recorded.
    pub fn release_of(&self, job: &JobId) -> Result<Option<(String, String, bool)>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT manifest, worker, receipt_seq IS NOT NULL FROM releases WHERE job = ?1",
            )?
            .query_row(params![job.to_string()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?)
    }

    /// Records that the audit entry `seq` holds `job`'s receipt.
    pub fn record_receipt_seq(&mut self, job: &JobId, seq: u64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE releases SET receipt_seq = ?2 WHERE job = ?1")?
            .execute(params![
                job.to_string(),
                i64::try_from(seq).unwrap_or(i64::MAX)
            ])?;
        Ok(())
    }

    /// Every audit entry, in order.
    pub fn audit_entries(&self) -> Result<Vec<SignedEntry>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT entry FROM audit ORDER BY seq")?;
        let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(decode_entry(&row?)?);
        }
        Ok(out)
    }

    /// Records `nonce` for `party` until `expires_at`, forgetting expired nonces first.
    /// Returns `false` (writing nothing) if the nonce is already recorded and unexpired.
    pub fn record_nonce(
        &mut self,
        party: &str,
        nonce: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let tx = self.conn.savepoint()?;
        tx.prepare_cached("DELETE FROM seen_nonces WHERE expires_at < ?1")?
            .execute(params![now])?;
        let inserted = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO seen_nonces (party, nonce, expires_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![party, nonce, expires_at])?;
        if inserted == 0 {
            return Ok(false);
        }
        tx.commit()?;
        Ok(true)
    }
}

fn decode_entry(bytes: &[u8]) -> Result<SignedEntry, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Malformed(format!("audit entry: {e}")))
}

fn append(
    tx: &Connection,
    audit: &AuditLog,
    time: i64,
    event: AuditEvent,
) -> Result<SignedEntry, StoreError> {
    let last: Option<Vec<u8>> = tx
        .prepare_cached("SELECT entry FROM audit ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| r.get(0))
        .optional()?;
    let prev: Option<AuditEntry> = last.map(|b| decode_entry(&b)).transpose()?.map(|s| s.entry);
    let signed = audit
        .next(prev.as_ref(), time, event)
        .map_err(|e| StoreError::Malformed(e.to_string()))?;
    let bytes = serde_json::to_vec(&signed).map_err(|e| StoreError::Malformed(e.to_string()))?;
    let seq = i64::try_from(signed.entry.seq)
        .map_err(|_| StoreError::Malformed("audit seq overflow".into()))?;
    tx.prepare_cached("INSERT INTO audit (seq, entry) VALUES (?1, ?2)")?
        .execute(params![seq, bytes])?;
    Ok(signed)
}
