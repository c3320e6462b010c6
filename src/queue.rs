//! The queue: one worker per target, so one deploy at a time per target while different
//! targets deploy concurrently.
//!
//! Jobs live in the state file (`deployments` rows in state `queued`), so the queue is as
//! durable as the store: a hook answered 202 has its deploy on disk. A worker claims the
//! newest queued deploy of its target; older queued ones are superseded by it, so a burst
//! of pushes rolls out only the last. Workers sleep on a [`Notify`] until the HTTP layer
//! wakes them.

use crate::config::{Config, TargetConfig};
use crate::deploy::{self, DeployLog, Job, Outcome};
use crate::engine::Engine;
use crate::reference::ImageName;
use crate::report::Reporter;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tracing::Instrument;

/// The per-target workers.
pub struct Queue {
    /// One wake-up per target, by target name.
    wakers: HashMap<String, Arc<Notify>>,
}

/// What every worker shares.
struct Shared {
    store: Store,
    engine: Arc<Engine>,
    reporter: Arc<Reporter>,
}

impl Queue {
    /// Starts a worker per target in `workers`. Each first runs what is already queued.
    /// Workers finish their current deploy and stop when `shutdown` turns true.
    pub fn start(
        config: &Config,
        store: Store,
        engine: Arc<Engine>,
        reporter: Arc<Reporter>,
        shutdown: watch::Receiver<bool>,
        workers: &mut JoinSet<()>,
    ) -> Queue {
        let shared = Arc::new(Shared {
            store,
            engine,
            reporter,
        });
        let mut wakers = HashMap::new();
        for target in &config.targets {
            let notify = Arc::new(Notify::new());
            notify.notify_one(); // look at the store once at start
            wakers.insert(target.name.clone(), notify.clone());
            workers.spawn(worker(
                shared.clone(),
                target.clone(),
                notify,
                shutdown.clone(),
            ));
        }
        Queue { wakers }
    }

    /// Tells `target`'s worker that a deploy was queued.
    pub fn wake(&self, target: &str) {
        if let Some(n) = self.wakers.get(target) {
            n.notify_one();
        }
    }
}

async fn worker(
    shared: Arc<Shared>,
    target: TargetConfig,
    notify: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let claimed = match shared.store.claim_next(&target.name).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(target = %target.name, "cannot read the queue: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = shutdown.changed() => return,
                }
            }
        };
        let Some((deployment, superseded)) = claimed else {
            tokio::select! {
                _ = notify.notified() => continue,
                _ = shutdown.changed() => continue,
            }
        };
        for id in superseded {
            tracing::info!(target = %target.name, deployment = id, "superseded by deployment {}", deployment.id);
            shared.reporter.deployment_ended(id).await;
        }
        let span = tracing::info_span!("deploy", id = deployment.id, target = %target.name, image = %deployment.image, tag = %deployment.tag);
        run_one(&shared, &target, deployment).instrument(span).await;
    }
}

async fn run_one(shared: &Shared, target: &TargetConfig, d: crate::store::Deployment) {
    let log = DeployLog::new(shared.store.clone(), d.id);
    let outcome = match ImageName::parse(&d.image) {
        Ok(image) => {
            let job = Job {
                id: d.id,
                image,
                tag: d.tag.clone(),
                digest: d.digest.clone(),
            };
            log.line(format!(
                "deploying {}:{} to {}",
                d.image, d.tag, target.name
            ))
            .await;
            deploy::run(&shared.engine, target, &job, &log).await
        }
        Err(e) => Outcome::failed(format!("stored image name is invalid: {e}")),
    };
    log.line(format!("{}: {}", outcome.state.as_str(), outcome.message))
        .await;
    if let Err(e) = shared
        .store
        .finish(
            d.id,
            outcome.state,
            &outcome.message,
            outcome.digest.clone(),
        )
        .await
    {
        tracing::error!("cannot record the end of deployment {}: {e}", d.id);
    }
    shared.reporter.deployment_ended(d.id).await;
}
