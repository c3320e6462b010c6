//! The SQLite state file: received events, deployments and their logs.
//!
//! One connection behind a mutex, used from blocking threads, in WAL mode with
//! `synchronous = FULL`: a hook is answered only after its rows are committed, and a
//! commit survives a process kill and (with FULL) a power loss on storage that honours
//! fsync. The queue ([`crate::queue`]) is a view over the `deployments` table, so a
//! deploy that is queued is also durable.
//!
//! One kind of write skips its own fsync: a deploy's log lines ([`Store::log`]). They are
//! committed with `synchronous = NORMAL`, so they reach the disk with the next commit that
//! has an fsync (WAL frames are synced in order: the next state change, event or the
//! deploy's end) or the next checkpoint. A power loss can lose the last lines of a deploy
//! that was running, never an event or a state change; a process kill loses nothing. A
//! deploy writes a dozen lines or more, so this keeps a dozen fsyncs per deploy off the
//! disk that hooks wait on.

use crate::event::ImagePushed;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("state file error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The state file could not be opened.
    #[error("cannot open state file {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// Why.
        source: rusqlite::Error,
    },
    /// The blocking task running the query died.
    #[error("state file task failed: {0}")]
    Task(String),
}

/// A deployment's state. Terminal states never change again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployState {
    /// Waiting for its target's worker.
    Queued,
    /// Being rolled out.
    Running,
    /// The new image runs and is healthy.
    Succeeded,
    /// The new image could not be rolled out; see the message for what runs now.
    Failed,
    /// The new image failed and the old one was put back.
    RolledBack,
    /// A newer push for the same target arrived before this one started.
    Superseded,
    /// Nothing to do: the target already runs this image.
    Skipped,
    /// dockhand stopped while this deploy was running.
    Interrupted,
    /// A dry run: the target is `dry_run` (or dockhand runs with `serve --dry-run`), so the
    /// log says what the deploy would have done and nothing was changed. Its own state,
    /// not `succeeded`, so that history, rollback and callbacks never take it for a
    /// rollout that happened.
    DryRun,
}

impl DeployState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeployState::Queued => "queued",
            DeployState::Running => "running",
            DeployState::Succeeded => "succeeded",
            DeployState::Failed => "failed",
            DeployState::RolledBack => "rolled_back",
            DeployState::Superseded => "superseded",
            DeployState::Skipped => "skipped",
            DeployState::Interrupted => "interrupted",
            DeployState::DryRun => "dry_run",
        }
    }

    /// Parses a stored or user-given state name.
    pub fn from_name(s: &str) -> Option<DeployState> {
        Some(match s {
            "queued" => DeployState::Queued,
            "running" => DeployState::Running,
            "succeeded" => DeployState::Succeeded,
            "failed" => DeployState::Failed,
            "rolled_back" => DeployState::RolledBack,
            "superseded" => DeployState::Superseded,
            "skipped" => DeployState::Skipped,
            "interrupted" => DeployState::Interrupted,
            "dry_run" => DeployState::DryRun,
            _ => return None,
        })
    }

    fn parse(s: &str) -> DeployState {
        Self::from_name(s).unwrap_or(DeployState::Interrupted)
    }

    /// Whether the deployment has ended.
    pub fn is_terminal(self) -> bool {
        !matches!(self, DeployState::Queued | DeployState::Running)
    }
}

/// A deployment as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deployment {
    /// Id, unique for the life of the state file.
    pub id: i64,
    /// The event that asked for it.
    pub event_id: i64,
    /// Target name.
    pub target: String,
    /// Normalised image name.
    pub image: String,
    /// Tag.
    pub tag: String,
    /// Digest, from the event or resolved during the deploy.
    pub digest: Option<String>,
    /// State.
    pub state: DeployState,
    /// The outcome in one line.
    pub message: Option<String>,
    /// When it was queued (RFC 3339).
    pub created_at: String,
    /// When its rollout started.
    pub started_at: Option<String>,
    /// When it ended.
    pub ended_at: Option<String>,
}

/// One line of a deployment's log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogLine {
    /// When (RFC 3339).
    pub ts: String,
    /// What happened.
    pub line: String,
}

/// An event as stored, with what the report step needs.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Id.
    pub id: i64,
    /// Where the sender wants the outcome, if anywhere.
    pub callback_url: Option<String>,
}

/// A new deployment row, as returned to the hook caller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Queued {
    /// Deployment id.
    pub id: i64,
    /// Target name.
    pub target: String,
    /// Image.
    pub image: String,
    /// Tag.
    pub tag: String,
}

/// The deployments a claim superseded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superseded {
    /// How many.
    pub count: usize,
    /// Those whose event asked for a callback (the reporter needs to see each).
    pub to_report: Vec<i64>,
}

/// What [`Store::record_event`] did.
#[derive(Debug, Clone)]
pub enum Recorded {
    /// A new event; these deployments were queued.
    Queued(Vec<Queued>),
    /// A replay of event `event_id`; nothing was recorded.
    Duplicate {
        /// The original event.
        event_id: i64,
        /// The deployments the original queued.
        deployments: Vec<Queued>,
    },
}

fn queued_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Queued> {
    Ok(Queued {
        id: r.get(0)?,
        target: r.get(1)?,
        image: r.get(2)?,
        tag: r.get(3)?,
    })
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0),
    )
    .unwrap_or(i64::MAX)
}

/// The state file.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    /// Where hook events go to be recorded: one writer thread commits them in groups.
    intake: std::sync::mpsc::Sender<Intake>,
    /// One query at a time leaves for a blocking thread; the others wait here, as tasks.
    /// There is one connection, so more threads would only queue on its mutex: with a
    /// worker per target, a thousand targets once meant 512 blocking threads (+20 MiB RSS)
    /// crowding out the intake writer. The semaphore is fair (FIFO).
    gate: Arc<tokio::sync::Semaphore>,
}

/// One event waiting to be recorded, and where to say how it went.
struct Intake {
    hook: String,
    source: String,
    event: ImagePushed,
    targets: Vec<String>,
    window: std::time::Duration,
    reply: tokio::sync::oneshot::Sender<Result<Recorded, StoreError>>,
}

/// Most events committed together.
const GROUP_MAX: usize = 256;

/// The writer thread: takes every event that is waiting, records each in its own
/// savepoint (one failing leaves the others), commits them with one fsync, then answers
/// each. An event is answered only after the commit that holds it, so durability is the
/// same as one transaction per event; throughput is not capped at one fsync per event.
fn group_writer(conn: Arc<Mutex<Connection>>, intake: std::sync::mpsc::Receiver<Intake>) {
    while let Ok(first) = intake.recv() {
        let mut group = vec![first];
        while group.len() < GROUP_MAX {
            match intake.try_recv() {
                Ok(more) => group.push(more),
                Err(_) => break,
            }
        }
        let Ok(mut guard) = conn.lock() else {
            for i in group {
                let _ = i
                    .reply
                    .send(Err(StoreError::Task("state file lock poisoned".into())));
            }
            continue;
        };
        let results = record_group(&mut guard, &group);
        drop(guard);
        for (i, result) in group.into_iter().zip(results) {
            let _ = i.reply.send(result);
        }
    }
}

/// Records one event in `tx` (not committed), unless it is a replay.
fn record_in(tx: &mut rusqlite::Savepoint<'_>, i: &Intake) -> rusqlite::Result<Recorded> {
    let (hook, source, event) = (&i.hook, &i.source, &i.event);
    let now = crate::now_rfc3339();
    let now_ms = now_ms();
    let image = event.image.to_string();
    let (key, since) = match &event.delivery {
        Some(d) => (format!("{source}:{hook}:delivery:{d}"), i64::MIN),
        None => (
            format!(
                "{source}:{hook}:{image}:{}:{}",
                event.tag,
                event.digest.as_deref().unwrap_or("-")
            ),
            now_ms.saturating_sub(i64::try_from(i.window.as_millis()).unwrap_or(i64::MAX)),
        ),
    };
    let original: Option<i64> = tx
        .prepare_cached(
            "SELECT id FROM events WHERE dedupe_key = ?1 AND received_ms > ?2
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![key, since], |r| r.get(0))
        .optional()?;
    if let Some(event_id) = original {
        let deployments = tx
            .prepare(
                "SELECT id, target, image, tag FROM deployments WHERE event_id = ?1 ORDER BY id",
            )?
            .query_map(params![event_id], queued_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        return Ok(Recorded::Duplicate {
            event_id,
            deployments,
        });
    }
    tx.prepare_cached(
        "INSERT INTO events (hook, source, image, tag, digest, delivery, callback_url,
                             dedupe_key, received_ms, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        hook,
        source,
        image,
        event.tag,
        event.digest,
        event.delivery,
        event.callback_url,
        key,
        now_ms,
        now
    ])?;
    let event_id = tx.last_insert_rowid();
    let mut queued = Vec::new();
    for target in &i.targets {
        tx.prepare_cached(
            "INSERT INTO deployments (event_id, target, image, tag, digest, state, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6)",
        )?
        .execute(params![
            event_id,
            target,
            image,
            event.tag,
            event.digest,
            now
        ])?;
        queued.push(Queued {
            id: tx.last_insert_rowid(),
            target: target.clone(),
            image: image.clone(),
            tag: event.tag.clone(),
        });
    }
    Ok(Recorded::Queued(queued))
}

fn record_group(conn: &mut Connection, group: &[Intake]) -> Vec<Result<Recorded, StoreError>> {
    let mut tx = match conn.transaction() {
        Ok(tx) => tx,
        Err(e) => {
            return group
                .iter()
                .map(|_| Err(StoreError::Task(e.to_string())))
                .collect()
        }
    };
    let mut results: Vec<Result<Recorded, StoreError>> = Vec::with_capacity(group.len());
    for i in group {
        let one = tx.savepoint().and_then(|mut sp| {
            let recorded = record_in(&mut sp, i)?;
            sp.commit()?;
            Ok(recorded)
        });
        results.push(one.map_err(StoreError::from));
    }
    match tx.commit() {
        Ok(()) => results,
        Err(e) => results
            .into_iter()
            .map(|_| Err(StoreError::Task(format!("commit failed: {e}"))))
            .collect(),
    }
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    hook         TEXT NOT NULL,
    source       TEXT NOT NULL,
    image        TEXT NOT NULL,
    tag          TEXT NOT NULL,
    digest       TEXT,
    delivery     TEXT,
    callback_url TEXT,
    callback     TEXT,            -- NULL, 'sending', 'sent' or 'failed'
    dedupe_key   TEXT NOT NULL,   -- see Store::record_event
    received_ms  INTEGER NOT NULL,
    received_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_dedupe ON events(dedupe_key, received_ms);
CREATE TABLE IF NOT EXISTS deployments (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    INTEGER NOT NULL REFERENCES events(id),
    target      TEXT NOT NULL,
    image       TEXT NOT NULL,
    tag         TEXT NOT NULL,
    digest      TEXT,
    state       TEXT NOT NULL,
    message     TEXT,
    created_at  TEXT NOT NULL,
    started_at  TEXT,
    ended_at    TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0  -- times a worker started it
);
CREATE INDEX IF NOT EXISTS deployments_target_state ON deployments(target, state);
CREATE INDEX IF NOT EXISTS deployments_event ON deployments(event_id);
CREATE TABLE IF NOT EXISTS deployment_logs (
    deployment_id INTEGER NOT NULL REFERENCES deployments(id),
    ts            TEXT NOT NULL,
    line          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deployment_logs_id ON deployment_logs(deployment_id);
"#;

const DEPLOYMENT_COLUMNS: &str =
    "id, event_id, target, image, tag, digest, state, message, created_at, started_at, ended_at";

fn deployment_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Deployment> {
    Ok(Deployment {
        id: r.get(0)?,
        event_id: r.get(1)?,
        target: r.get(2)?,
        image: r.get(3)?,
        tag: r.get(4)?,
        digest: r.get(5)?,
        state: DeployState::parse(&r.get::<_, String>(6)?),
        message: r.get(7)?,
        created_at: r.get(8)?,
        started_at: r.get(9)?,
        ended_at: r.get(10)?,
    })
}

impl Store {
    /// Opens (creating if needed) the state file at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        conn.execute_batch(SCHEMA).map_err(open_err)?;
        let conn = Arc::new(Mutex::new(conn));
        let (intake, queue) = std::sync::mpsc::channel();
        let writer_conn = conn.clone();
        std::thread::Builder::new()
            .name("dockhand-intake".into())
            .spawn(move || group_writer(writer_conn, queue))
            .map_err(|e| StoreError::Task(format!("cannot start the state writer: {e}")))?;
        Ok(Store {
            conn,
            intake,
            gate: Arc::new(tokio::sync::Semaphore::new(1)),
        })
    }

    /// Runs `f` on the connection in a blocking thread.
    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        let permit = self
            .gate
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Task("the state file gate is closed".into()))?;
        tokio::task::spawn_blocking(move || {
            // Held until the query is done, even if the caller stops waiting for it.
            let _permit = permit;
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::Task("state file lock poisoned".into()))?;
            f(&mut guard).map_err(StoreError::from)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Records one received event and queues a deployment per target, in one transaction,
    /// unless it is a replay.
    ///
    /// A replay is an event with the same delivery id from the same hook (at any time), or,
    /// when the sender gives no delivery id, the same source, hook, image, tag and digest
    /// within `window`. A replay records nothing and names the original's deployments.
    pub async fn record_event(
        &self,
        hook: &str,
        source: &str,
        event: &ImagePushed,
        targets: Vec<String>,
        window: std::time::Duration,
    ) -> Result<Recorded, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.intake
            .send(Intake {
                hook: hook.to_string(),
                source: source.to_string(),
                event: event.clone(),
                targets,
                window,
                reply,
            })
            .map_err(|_| StoreError::Task("the state writer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Task("the state writer stopped".into()))?
    }

    /// Claims the next deployment for `target`: the newest queued one becomes running, and
    /// older queued ones are superseded by it (a burst of pushes deploys only the last).
    /// Returns the claimed deployment and the ids of the superseded ones.
    pub async fn claim_next(
        &self,
        target: &str,
    ) -> Result<Option<(Deployment, Superseded)>, StoreError> {
        let target = target.to_string();
        self.with(move |c| {
            let tx = c.transaction()?;
            let newest: Option<Deployment> = tx
                .prepare_cached(&format!(
                    "SELECT {DEPLOYMENT_COLUMNS} FROM deployments
                         WHERE target = ?1 AND state = 'queued' ORDER BY id DESC LIMIT 1"
                ))?
                .query_row(params![target], deployment_row)
                .optional()?;
            let Some(mut job) = newest else {
                return Ok(None);
            };
            let now = crate::now_rfc3339();
            // Only those whose sender asked for a callback need reporting one by one.
            let to_report: Vec<i64> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT d.id FROM deployments d JOIN events e ON e.id = d.event_id
                     WHERE d.target = ?1 AND d.state = 'queued' AND d.id < ?2
                       AND e.callback_url IS NOT NULL",
                )?;
                let ids = stmt
                    .query_map(params![target, job.id], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<i64>>>()?;
                ids
            };
            // One statement for all of them: a burst can leave thousands queued.
            let count = tx
                .prepare_cached(
                    "UPDATE deployments SET state = 'superseded', message = ?3, ended_at = ?4
                 WHERE target = ?1 AND state = 'queued' AND id < ?2",
                )?
                .execute(params![
                    target,
                    job.id,
                    format!("superseded by deployment {}", job.id),
                    now
                ])?;

            tx.prepare_cached(
                "UPDATE deployments SET state = 'running', started_at = ?2, attempts = attempts + 1
                 WHERE id = ?1",
            )?
            .execute(params![job.id, now])?;
            tx.commit()?;
            job.state = DeployState::Running;
            job.started_at = Some(now);
            Ok(Some((job, Superseded { count, to_report })))
        })
        .await
    }

    /// Ends a deployment with a terminal state and a one-line message.
    pub async fn finish(
        &self,
        id: i64,
        state: DeployState,
        message: &str,
        digest: Option<String>,
    ) -> Result<(), StoreError> {
        self.finish_logged(id, state, message, digest, None).await
    }

    /// [`Store::finish`], appending `line` to the deployment's log in the same transaction:
    /// the last line and the end are never seen apart, and cost one fsync, not two.
    pub async fn finish_logged(
        &self,
        id: i64,
        state: DeployState,
        message: &str,
        digest: Option<String>,
        line: Option<String>,
    ) -> Result<(), StoreError> {
        let message = message.to_string();
        self.with(move |c| {
            let now = crate::now_rfc3339();
            let tx = c.transaction()?;
            if let Some(line) = line {
                tx.prepare_cached(
                    "INSERT INTO deployment_logs (deployment_id, ts, line) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![id, now, line])?;
            }
            tx.prepare_cached(
                "UPDATE deployments SET state = ?2, message = ?3, ended_at = ?4,
                        digest = COALESCE(?5, digest)
                 WHERE id = ?1",
            )?
            .execute(params![id, state.as_str(), message, now, digest])?;
            tx.commit()
        })
        .await
    }

    /// The deployments of `target` that ended `succeeded` (and, with `dry_runs`, those that
    /// ended `dry_run`), newest first: what the target runs, or would run had the dry runs
    /// been real.
    pub async fn deployed(
        &self,
        target: &str,
        dry_runs: bool,
        limit: u32,
    ) -> Result<Vec<Deployment>, StoreError> {
        let target = target.to_string();
        let dry_run = if dry_runs { "dry_run" } else { "succeeded" };
        self.with(move |c| {
            c.prepare(&format!(
                "SELECT {DEPLOYMENT_COLUMNS} FROM deployments
                 WHERE target = ?1 AND state IN ('succeeded', ?2)
                 ORDER BY id DESC LIMIT ?3"
            ))?
            .query_map(params![target, dry_run, limit], deployment_row)?
            .collect()
        })
        .await
    }

    /// Deployments in state `running`: at start, those a previous process left behind.
    pub async fn running(&self) -> Result<Vec<(Deployment, u32)>, StoreError> {
        self.with(|c| {
            c.prepare(&format!(
                "SELECT {DEPLOYMENT_COLUMNS}, attempts FROM deployments WHERE state = 'running' ORDER BY id"
            ))?
            .query_map([], |r| Ok((deployment_row(r)?, r.get::<_, u32>(11)?)))?
            .collect()
        })
        .await
    }

    /// Puts a running deployment back in the queue (nothing of it had happened yet).
    pub async fn requeue(&self, id: i64) -> Result<(), StoreError> {
        self.with(move |c| {
            c.execute(
                "UPDATE deployments SET state = 'queued', started_at = NULL WHERE id = ?1 AND state = 'running'",
                params![id],
            )
            .map(|_| ())
        })
        .await
    }

    /// Records the digest a running deployment resolved, so that recovery knows it.
    pub async fn set_digest(&self, id: i64, digest: String) -> Result<(), StoreError> {
        self.with(move |c| {
            c.execute(
                "UPDATE deployments SET digest = ?2 WHERE id = ?1",
                params![id, digest],
            )
            .map(|_| ())
        })
        .await
    }

    /// Appends a line to a deployment's log, without an fsync of its own (see the module
    /// doc: it is synced with the next durable commit).
    pub async fn log(&self, id: i64, line: String) -> Result<(), StoreError> {
        self.with(move |c| {
            c.pragma_update(None, "synchronous", "NORMAL")?;
            let written = c
                .prepare_cached(
                    "INSERT INTO deployment_logs (deployment_id, ts, line) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![id, crate::now_rfc3339(), line]);
            // Back to FULL before anything else uses the connection, whatever happened.
            c.pragma_update(None, "synchronous", "FULL")?;
            written.map(|_| ())
        })
        .await
    }

    /// One deployment.
    pub async fn deployment(&self, id: i64) -> Result<Option<Deployment>, StoreError> {
        self.with(move |c| {
            c.query_row(
                &format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE id = ?1"),
                params![id],
                deployment_row,
            )
            .optional()
        })
        .await
    }

    /// A deployment's log, oldest first.
    pub async fn logs(&self, id: i64) -> Result<Vec<LogLine>, StoreError> {
        self.with(move |c| {
            c.prepare(
                "SELECT ts, line FROM deployment_logs WHERE deployment_id = ?1 ORDER BY rowid",
            )?
            .query_map(params![id], |r| {
                Ok(LogLine {
                    ts: r.get(0)?,
                    line: r.get(1)?,
                })
            })?
            .collect()
        })
        .await
    }

    /// Deployments, newest first, optionally of one target.
    pub async fn deployments(
        &self,
        target: Option<String>,
        limit: u32,
    ) -> Result<Vec<Deployment>, StoreError> {
        self.find(target, None, limit).await
    }

    /// Deployments, newest first, filtered by target and state.
    pub async fn find(
        &self,
        target: Option<String>,
        state: Option<DeployState>,
        limit: u32,
    ) -> Result<Vec<Deployment>, StoreError> {
        let state = state.map(DeployState::as_str);
        self.with(move |c| {
            c.prepare(&format!(
                "SELECT {DEPLOYMENT_COLUMNS} FROM deployments
                 WHERE (?1 IS NULL OR target = ?1) AND (?2 IS NULL OR state = ?2)
                 ORDER BY id DESC LIMIT ?3"
            ))?
            .query_map(params![target, state, limit], deployment_row)?
            .collect()
        })
        .await
    }

    /// Log lines of a deployment after line `after` (a cursor from a previous call),
    /// with the new cursor.
    pub async fn logs_after(&self, id: i64, after: i64) -> Result<Vec<(i64, LogLine)>, StoreError> {
        self.with(move |c| {
            c.prepare(
                "SELECT rowid, ts, line FROM deployment_logs
                 WHERE deployment_id = ?1 AND rowid > ?2 ORDER BY rowid",
            )?
            .query_map(params![id, after], |r| {
                Ok((
                    r.get(0)?,
                    LogLine {
                        ts: r.get(1)?,
                        line: r.get(2)?,
                    },
                ))
            })?
            .collect()
        })
        .await
    }

    /// How many events were recorded (replays are not).
    pub async fn event_count(&self) -> Result<i64, StoreError> {
        self.with(|c| c.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0)))
            .await
    }

    /// The event of a deployment and all the deployments it asked for.
    pub async fn event_of(
        &self,
        deployment_id: i64,
    ) -> Result<Option<(StoredEvent, Vec<Deployment>)>, StoreError> {
        self.with(move |c| {
            let event = c
                .query_row(
                    "SELECT e.id, e.callback_url FROM events e
                     JOIN deployments d ON d.event_id = e.id WHERE d.id = ?1",
                    params![deployment_id],
                    |r| {
                        Ok(StoredEvent {
                            id: r.get(0)?,
                            callback_url: r.get(1)?,
                        })
                    },
                )
                .optional()?;
            let Some(event) = event else { return Ok(None) };
            let deployments = c
                .prepare(&format!(
                    "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE event_id = ?1 ORDER BY id"
                ))?
                .query_map(params![event.id], deployment_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some((event, deployments)))
        })
        .await
    }

    /// Claims the right to send an event's callback; true only for the first caller.
    pub async fn claim_callback(&self, event_id: i64) -> Result<bool, StoreError> {
        self.with(move |c| {
            c.execute(
                "UPDATE events SET callback = 'sending' WHERE id = ?1 AND callback IS NULL",
                params![event_id],
            )
            .map(|n| n == 1)
        })
        .await
    }

    /// Records how a callback ended: `sent` or `failed`.
    pub async fn callback_done(
        &self,
        event_id: i64,
        outcome: &'static str,
    ) -> Result<(), StoreError> {
        self.with(move |c| {
            c.execute(
                "UPDATE events SET callback = ?2 WHERE id = ?1",
                params![event_id, outcome],
            )
            .map(|_| ())
        })
        .await
    }

    /// Whether the state file answers (for `/healthz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.with(|c| c.query_row("SELECT 1", [], |_| Ok(()))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::ImageName;

    const WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

    #[tokio::test]
    async fn replays_are_recognised_by_delivery_id_or_by_content_within_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let first = store
            .record_event("h", "distribution", &push("v1"), vec!["web".into()], WINDOW)
            .await
            .unwrap();
        let Recorded::Queued(q) = first else { panic!() };
        match store
            .record_event("h", "distribution", &push("v1"), vec!["web".into()], WINDOW)
            .await
            .unwrap()
        {
            Recorded::Duplicate { deployments, .. } => assert_eq!(deployments[0].id, q[0].id),
            other => panic!("{other:?}"),
        }
        // The same delivery through another hook is another sender's.
        assert!(matches!(
            store
                .record_event(
                    "h2",
                    "distribution",
                    &push("v1"),
                    vec!["web".into()],
                    WINDOW
                )
                .await
                .unwrap(),
            Recorded::Queued(_)
        ));
        // Without a delivery id: same content within the window is a replay; after it, new.
        let mut anon = push("v2");
        anon.delivery = None;
        assert!(matches!(
            store
                .record_event("h", "generic", &anon, vec!["web".into()], WINDOW)
                .await
                .unwrap(),
            Recorded::Queued(_)
        ));
        assert!(matches!(
            store
                .record_event("h", "generic", &anon, vec!["web".into()], WINDOW)
                .await
                .unwrap(),
            Recorded::Duplicate { .. }
        ));
        assert!(matches!(
            store
                .record_event(
                    "h",
                    "generic",
                    &anon,
                    vec!["web".into()],
                    std::time::Duration::ZERO
                )
                .await
                .unwrap(),
            Recorded::Queued(_)
        ));
        assert_eq!(store.event_count().await.unwrap(), 4);
    }

    fn push(tag: &str) -> ImagePushed {
        ImagePushed {
            image: ImageName::parse("127.0.0.1:5000/app").unwrap(),
            tag: tag.into(),
            digest: None,
            delivery: Some(format!("d-{tag}")),
            callback_url: Some("http://127.0.0.1:9/cb".into()),
        }
    }

    async fn queue(store: &Store, tag: &str, targets: &[&str]) -> Vec<Queued> {
        let targets = targets.iter().map(|t| t.to_string()).collect();
        match store
            .record_event("h", "generic", &push(tag), targets, WINDOW)
            .await
            .unwrap()
        {
            Recorded::Queued(q) => q,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn newest_wins_and_older_are_superseded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let mut ids = Vec::new();
        for tag in ["v1", "v2", "v3"] {
            ids.push(queue(&store, tag, &["web", "other"]).await[0].id);
        }
        let (job, superseded) = store.claim_next("web").await.unwrap().unwrap();
        assert_eq!(job.tag, "v3");
        assert_eq!(job.state, DeployState::Running);
        assert_eq!(
            superseded,
            Superseded {
                count: 2,
                to_report: vec![ids[0], ids[1]]
            }
        );
        assert!(store.claim_next("web").await.unwrap().is_none());
        let old = store.deployment(ids[0]).await.unwrap().unwrap();
        assert_eq!(old.state, DeployState::Superseded);
        assert!(old.ended_at.is_some());

        store.log(job.id, "hello".into()).await.unwrap();
        store
            .finish(
                job.id,
                DeployState::Succeeded,
                "ok",
                Some("sha256:x".into()),
            )
            .await
            .unwrap();
        let done = store.deployment(job.id).await.unwrap().unwrap();
        assert_eq!(
            (done.state, done.digest.as_deref()),
            (DeployState::Succeeded, Some("sha256:x"))
        );
        assert_eq!(store.logs(job.id).await.unwrap()[0].line, "hello");
        let after = store.logs_after(job.id, 0).await.unwrap();
        assert_eq!(after.len(), 1);
        assert!(store
            .logs_after(job.id, after[0].0)
            .await
            .unwrap()
            .is_empty());

        let (event, deps) = store.event_of(job.id).await.unwrap().unwrap();
        assert_eq!(deps.len(), 2);
        assert_eq!(event.callback_url.as_deref(), Some("http://127.0.0.1:9/cb"));
        assert!(store.claim_callback(event.id).await.unwrap());
        assert!(!store.claim_callback(event.id).await.unwrap());

        let found = store
            .find(Some("web".into()), Some(DeployState::Superseded), 10)
            .await
            .unwrap();
        assert_eq!(found.len(), 2);
    }

    #[tokio::test]
    async fn rows_survive_reopening_and_running_ones_are_found_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let store = Store::open(&path).unwrap();
            queue(&store, "v1", &["web"]).await;
            queue(&store, "v2", &["api"]).await;
            store.claim_next("web").await.unwrap().unwrap();
        }
        let store = Store::open(&path).unwrap();
        let running = store.running().await.unwrap();
        assert_eq!(running.len(), 1);
        assert_eq!((running[0].0.tag.as_str(), running[0].1), ("v1", 1));
        store.requeue(running[0].0.id).await.unwrap();
        let (again, _) = store.claim_next("web").await.unwrap().unwrap();
        assert_eq!(again.id, running[0].0.id);
        assert_eq!(store.running().await.unwrap()[0].1, 2, "starts are counted");
        let (queued, _) = store.claim_next("api").await.unwrap().unwrap();
        assert_eq!(queued.tag, "v2");
    }

    #[tokio::test]
    async fn log_lines_skip_their_fsync_but_every_other_write_keeps_full() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let queued = queue(&store, "v1", &["web"]).await;
        store.log(queued[0].id, "pulling".into()).await.unwrap();
        // A log line for a deployment that does not exist fails (foreign key) and still
        // leaves the connection at FULL.
        assert!(store.log(i64::MAX, "nobody's".into()).await.is_err());
        let level: i64 = store
            .with(|c| c.query_row("PRAGMA synchronous", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(level, 2, "synchronous is FULL again after log lines");
        let lines = store.logs(queued[0].id).await.unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].line, "pulling");
    }
}
