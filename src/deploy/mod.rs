//! Deployers: one file per target kind, all speaking to Docker through [`Engine`].
//!
//! - [`service`]: a Swarm service, updated in place; the engine's rolling update (with the
//!   service's own UpdateConfig) does the rollout, dockhand follows it to the end.
//! - [`container`]: a plain container, replaced by a new one made from its config; the old
//!   one is kept, renamed, until the new one is up, and restored if it is not.
//!
//! A deploy never panics and never returns early without an [`Outcome`]: whatever happens,
//! the outcome says what runs now.

mod container;
mod service;

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
}

impl Outcome {
    fn new(state: DeployState, message: impl Into<String>) -> Outcome {
        Outcome {
            state,
            message: message.into(),
            digest: None,
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

    /// Appends a line. A failure to store it is reported but never fails the deploy.
    pub async fn line(&self, line: impl Into<String>) {
        let line = line.into();
        tracing::info!("{line}");
        if let Err(e) = self.store.log(self.id, line).await {
            tracing::warn!("could not store a log line: {e}");
        }
    }
}

/// Rolls `job` out to `target`.
pub async fn run(engine: &Engine, target: &TargetConfig, job: &Job, log: &DeployLog) -> Outcome {
    match target.kind {
        TargetKind::Service => service::deploy(engine, target, job, log).await,
        TargetKind::Container => container::deploy(engine, target, job, log).await,
    }
}
