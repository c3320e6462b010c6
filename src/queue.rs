//! The queue: one worker per target, so one deploy at a time per target while different
//! targets deploy concurrently.
//!
//! Jobs live in the state file (`deployments` rows in state `queued`), so the queue is as
//! durable as the store: a hook answered 202 has its deploy on disk. A worker claims the
//! newest queued deploy of its target; older queued ones are superseded by it, so a burst
//! of pushes rolls out only the last. Workers sleep on a [`Notify`] until the HTTP layer
//! wakes them.

use crate::config::{Config, TargetConfig};
use crate::deploy::{self, DeployLog, Job, Outcome, Recovery};
use crate::engine::Engine;
use crate::reference::ImageName;
use crate::report::Reporter;
use crate::store::{DeployState, Deployment, Store};
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
    /// Tries per deploy while the engine fails transiently (`server.retry_attempts`).
    retry_attempts: u32,
    /// The deploys a previous process left `running`, read once for every worker (with a
    /// thousand targets, a thousand identical queries held up the start).
    left_running: tokio::sync::OnceCell<Vec<(Deployment, u32)>>,
}

/// First wait before retrying a deploy the engine failed transiently; doubles each time.
const RETRY_BACKOFF: Duration = Duration::from_secs(2);
/// Longest wait between retries.
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A deploy found running at start this many times (dockhand keeps dying during it) is
/// not tried again.
const MAX_STARTS: u32 = 3;

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
            retry_attempts: config.server.retry_attempts,
            left_running: tokio::sync::OnceCell::new(),
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
    // Recovery and each deploy are boxed: their futures (a rollout's is ~14 KB) then exist
    // only while they run, and an idle worker (one per target) is ~1.6 KB instead of ~20.
    Box::pin(recover(&shared, &target, &mut shutdown)).await;
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
        if superseded.count > 0 {
            tracing::info!(target = %target.name, "{} older queued deploys superseded by deployment {}", superseded.count, deployment.id);
        }
        for id in superseded.to_report {
            shared.reporter.deployment_ended(id).await;
        }
        let span = tracing::info_span!("deploy", id = deployment.id, target = %target.name, image = %deployment.image, tag = %deployment.tag);
        Box::pin(run_one(&shared, &target, deployment, &mut shutdown).instrument(span)).await;
    }
}

/// Deploys of this target that a previous process left running: finished, undone or
/// queued again by looking at the engine; never left running.
async fn recover(shared: &Shared, target: &TargetConfig, shutdown: &mut watch::Receiver<bool>) {
    let running = match shared
        .left_running
        .get_or_try_init(|| shared.store.running())
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(target = %target.name, "cannot read deploys left running: {e}");
            return;
        }
    };
    let mine: Vec<(Deployment, u32)> = running
        .iter()
        .filter(|(d, _)| d.target == target.name)
        .cloned()
        .collect();
    for (d, starts) in mine {
        let span = tracing::info_span!("recover", id = d.id, target = %target.name);
        async {
            let log = DeployLog::new(shared.store.clone(), d.id);
            log.line(if target.dry_run {
                "dockhand restarted while this deploy was running; the target is a dry run, so the engine is not asked"
            } else {
                "dockhand restarted while this deploy was running; looking at the engine"
            })
            .await;

            let Some(job) = job_of(&d) else {
                finish(shared, d.id, &Outcome::failed("stored image name is invalid")).await;
                return;
            };
            let mut wait = RETRY_BACKOFF;
            let recovery = loop {
                match deploy::recover(&shared.engine, target, &job, &log).await {
                    Ok(r) => break Some(r),
                    Err(e) => {
                        log.line(format!("{e}; trying again in {wait:?}")).await;
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = shutdown.changed() => break None,
                        }
                        wait = (wait * 2).min(RETRY_BACKOFF_MAX);
                    }
                }
            };
            match recovery {
                None => {}
                Some(Recovery::Done(outcome)) => finish(shared, d.id, &outcome).await,
                Some(Recovery::Requeue(why)) if starts < MAX_STARTS => {
                    log.line(format!("{why}; queued again")).await;
                    if let Err(e) = shared.store.requeue(d.id).await {
                        tracing::error!("cannot queue deployment {} again: {e}", d.id);
                    }
                }
                Some(Recovery::Requeue(why)) => {
                    let outcome = Outcome {
                        state: DeployState::Interrupted,
                        message: format!("{why}; dockhand stopped during this deploy {starts} times, so it is not tried again"),
                        digest: None,
                        retry: false,
                    };
                    finish(shared, d.id, &outcome).await;
                }
            }
        }
        .instrument(span)
        .await;
    }
}

fn job_of(d: &Deployment) -> Option<Job> {
    Some(Job {
        id: d.id,
        image: ImageName::parse(&d.image).ok()?,
        tag: d.tag.clone(),
        digest: d.digest.clone(),
    })
}

/// Records the outcome and reports it.
async fn finish(shared: &Shared, id: i64, outcome: &Outcome) {
    // The last log line goes with the end, in one transaction (one fsync, not two).
    let line = format!("{}: {}", outcome.state.as_str(), outcome.message);
    tracing::info!("{line}");
    if let Err(e) = shared
        .store
        .finish_logged(
            id,
            outcome.state,
            &outcome.message,
            outcome.digest.clone(),
            Some(line),
        )
        .await
    {
        tracing::error!("cannot record the end of deployment {id}: {e}");
    }
    shared.reporter.deployment_ended(id).await;
}

/// Runs one deploy, trying again while the engine fails transiently before any change.
async fn run_one(
    shared: &Shared,
    target: &TargetConfig,
    d: Deployment,
    shutdown: &mut watch::Receiver<bool>,
) {
    let log = DeployLog::new(shared.store.clone(), d.id);
    let Some(job) = job_of(&d) else {
        finish(
            shared,
            d.id,
            &Outcome::failed("stored image name is invalid"),
        )
        .await;
        return;
    };
    log.line(deploy::start_line(target, &d.image, &d.tag)).await;

    let mut wait = RETRY_BACKOFF;
    let mut attempt = 1;
    let outcome = loop {
        let outcome = deploy::run(&shared.engine, target, &job, &log).await;
        if !outcome.retry || attempt >= shared.retry_attempts {
            break outcome;
        }
        log.line(format!(
            "{}; trying again in {wait:?} (attempt {attempt} of {})",
            outcome.message, shared.retry_attempts
        ))
        .await;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {
                // Nothing was changed: leave it queued for the next start.
                log.line("dockhand is stopping; the deploy stays queued").await;
                if let Err(e) = shared.store.requeue(d.id).await {
                    tracing::error!("cannot queue deployment {} again: {e}", d.id);
                }
                return;
            }
        }
        wait = (wait * 2).min(RETRY_BACKOFF_MAX);
        attempt += 1;
    };
    finish(shared, d.id, &outcome).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker per target waits for most of its life: what it holds then is what a
    /// thousand targets cost. Recovery and deploys are boxed so that it stays small.
    #[tokio::test]
    async fn an_idle_worker_is_small() {
        let text =
            "[[targets]]\nname = \"a\"\nkind = \"service\"\nservice = \"a\"\nimage = \"app\"\n";
        let config = Config::from_toml(text, "t", std::path::Path::new(".")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let shared = Arc::new(Shared {
            store: store.clone(),
            engine: Arc::new(Engine::from_env()),
            reporter: Arc::new(Reporter::new(store, None)),
            retry_attempts: 1,
            left_running: tokio::sync::OnceCell::new(),
        });
        let (_stop, shutdown) = watch::channel(false);
        let worker = worker(
            shared,
            config.targets[0].clone(),
            Arc::new(Notify::new()),
            shutdown,
        );
        let size = std::mem::size_of_val(&worker);
        assert!(size < 4096, "an idle worker is {size} bytes");
    }
}
