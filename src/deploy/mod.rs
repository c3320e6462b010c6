//! Deployers: one file per target kind, all speaking to Docker through [`Engine`].
//!
//! - `service`: a Swarm service, updated in place; the engine's rolling update (with the
//!   service's own UpdateConfig) does the rollout, dockhand follows it to the end.
//! - `container`: a plain container, replaced by a new one made from its config; the old
//!   one is kept, renamed, until the new one is up, and restored if it is not.
//! - `dry_run`: any kind of target marked `dry_run`: the log says what would be done, and
//!   the engine is never called.
//!
//! A deploy never panics and never returns early without an [`Outcome`]: whatever happens,
//! the outcome says what runs now.

mod container;
mod dry_run;
mod service;
mod start_first;

use crate::config::{TargetConfig, TargetKind};
use crate::engine::Engine;
use crate::reference::ImageName;
use crate::store::{DeployState, Store};

/// What to deploy.
#[derive(Debug, Clone)]
pub struct Job {
    /// Deployment id.
    pub id: i64,
    /// The image.
    pub image: ImageName,
    /// Its tag.
    pub tag: String,
    /// Its digest, if the event gave one.
    pub digest: Option<String>,
}

/// How a deploy ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The terminal state.
    pub state: DeployState,
    /// One line for people: what happened and what runs now.
    pub message: String,
    /// The digest that was deployed, when known.
    pub digest: Option<String>,
    /// The engine failed in a way that may pass (unreachable, 5xx) before anything was
    /// changed: the same deploy may be tried again.
    pub retry: bool,
}

impl Outcome {
    fn new(state: DeployState, message: impl Into<String>) -> Outcome {
        Outcome {
            state,
            message: message.into(),
            digest: None,
            retry: false,
        }
    }

    /// The deploy failed before changing anything, because of `error`; when that is
    /// transient the deploy may be tried again.
    fn untouched(error: &crate::engine::EngineError, message: impl Into<String>) -> Outcome {
        Outcome {
            retry: error.is_transient(),
            ..Outcome::failed(message)
        }
    }

    /// The deploy failed; `message` says why and what runs now.
    pub fn failed(message: impl Into<String>) -> Outcome {
        Outcome::new(DeployState::Failed, message)
    }

    fn with_digest(mut self, digest: Option<String>) -> Outcome {
        self.digest = digest;
        self
    }
}

/// A deployment's log: each line goes to the state file and to `tracing` (inside the
/// deploy's span, so it carries the deployment id and target).
#[derive(Clone)]
pub struct DeployLog {
    store: Store,
    id: i64,
}

impl DeployLog {
    /// The log of deployment `id`.
    pub fn new(store: Store, id: i64) -> DeployLog {
        DeployLog { store, id }
    }

    /// Records the digest the deploy resolved, so that a restart can recognise it.
    pub async fn digest(&self, digest: &str) {
        if let Err(e) = self.store.set_digest(self.id, digest.to_string()).await {
            tracing::warn!("could not store the digest: {e}");
        }
    }

    /// Appends a line. A failure to store it is reported but never fails the deploy.
    pub async fn line(&self, line: impl Into<String>) {
        let line = line.into();
        tracing::info!("{line}");
        if let Err(e) = self.store.log(self.id, line).await {
            tracing::warn!("could not store a log line: {e}");
        }
    }
}

/// What to do with a deploy found running when dockhand starts.
#[derive(Debug)]
pub enum Recovery {
    /// It was finished (or undone) by looking at the engine.
    Done(Outcome),
    /// Nothing of it had happened (or what had was undone): run it again.
    Requeue(String),
}

/// The first line of a deployment's log: "deploying IMAGE:TAG to TARGET", or for a dry
/// run "dry run of IMAGE:TAG on TARGET: ...". Recovery tells them apart by it.
pub fn start_line(target: &TargetConfig, image: &str, tag: &str) -> String {
    if target.dry_run {
        format!(
            "dry run of {image}:{tag} on {}: nothing is changed and the engine is not called",
            target.name
        )
    } else {
        format!("{}{image}:{tag} to {}", dry_run::REAL_START, target.name)
    }
}

/// Looks at the engine to finish a deploy that a previous dockhand process left running:
/// a Swarm update is followed to its end; a container swap is completed when the new
/// container is up, undone otherwise. A dry-run target's is run again without asking the
/// engine (see `dry_run`).
pub async fn recover(
    engine: &Engine,
    target: &TargetConfig,
    job: &Job,
    log: &DeployLog,
) -> Result<Recovery, crate::engine::EngineError> {
    if target.dry_run {
        return Ok(dry_run::recover(target, log).await);
    }
    match target.kind {
        TargetKind::Service => service::recover(engine, target, job, log).await,
        TargetKind::Container => container::recover(engine, target, job, log).await,
    }
}

/// Rolls `job` out to `target` (or, for a dry-run target, logs what that would do).
pub async fn run(engine: &Engine, target: &TargetConfig, job: &Job, log: &DeployLog) -> Outcome {
    if target.dry_run {
        return dry_run::deploy(target, job, log).await;
    }
    match target.kind {
        TargetKind::Service => service::deploy(engine, target, job, log).await,
        TargetKind::Container => container::deploy(engine, target, job, log).await,
    }
}
