//! Dry runs: what a deploy would do, written to the deployment's log. Nothing is changed,
//! and the engine is never called, not even to look: a dry run works with no engine at all.
//!
//! So "what the target runs now" comes from the state file: the target's newest deployment
//! that ended `succeeded`, or `dry_run` (what it would run had the dry runs been real).
//! The digest is the event's when it names one; without it a real deploy would ask the
//! registry (Swarm service) or pull the tag (container), and the log says so.
//!
//! A dry run ends in its own state, [`DeployState::DryRun`], never `succeeded`: history,
//! `rollback` and the registry's callback must not take it for a rollout that happened.

use super::{DeployLog, Job, Outcome, Recovery};
use crate::config::{TargetConfig, TargetKind};
use crate::store::{DeployState, Deployment};

/// How a real deploy's log begins (see [`super::start_line`]); a dry run's never does.
pub(super) const REAL_START: &str = "deploying ";

/// Logs what deploying `job` to `target` would do, and ends it `dry_run`.
pub(super) async fn deploy(target: &TargetConfig, job: &Job, log: &DeployLog) -> Outcome {
    let what = describe(target);
    let to = job.image.pinned(&job.tag, job.digest.as_deref());
    let last = match log.store.deployed(&target.name, true, 1).await {
        Ok(found) => found.into_iter().next(),
        Err(e) => {
            // Only the "from" is missing; the rest of the dry run holds.
            tracing::warn!("cannot read the target's last deploy: {e}");
            None
        }
    };
    let from = last.as_ref().map(pinned);
    let runs = match (&last, &from) {
        (Some(d), Some(from)) => format!(
            "{what} runs {from} (per deployment {}, which ended {})",
            d.id,
            d.state.as_str()
        ),
        _ => format!(
            "{what} runs whatever it ran before: no deploy of it is recorded, and a dry run does not ask the engine"
        ),
    };
    let how = match (target.kind, &job.digest) {
        (TargetKind::Service, Some(d)) => format!(
            "would update the service's image to {to} (digest {d} from the event) and follow the engine's rolling update (timeout {:?})",
            target.timeout
        ),
        (TargetKind::Service, None) => format!(
            "would ask the registry for the digest of {}, pin the service's image to it and follow the engine's rolling update (timeout {:?})",
            job.image.with_tag(&job.tag),
            target.timeout
        ),
        (TargetKind::Container, Some(d)) => format!(
            "would pull {}@{d} (digest from the event), tag it {}, and replace the container with one made from its config, health-gated, keeping the old one until the new one is up",
            job.image,
            job.image.with_tag(&job.tag)
        ),
        (TargetKind::Container, None) => format!(
            "would pull {} and replace the container with one made from its config, health-gated, keeping the old one until the new one is up",
            job.image.with_tag(&job.tag)
        ),
    };
    log.line(format!("{runs}; {how}")).await;
    let message = match &from {
        Some(from) if *from == to => format!(
            "{what} already runs {to}: a real deploy would find nothing to do; nothing was changed"
        ),
        Some(from) => format!("would update {what} from {from} to {to}; nothing was changed"),
        None => format!("would update {what} to {to}; nothing was changed"),
    };
    Outcome::new(DeployState::DryRun, message).with_digest(job.digest.clone())
}

/// A deploy of a dry-run target that a previous process left `running`. A dry run changed
/// nothing, so it simply runs again, unless its log shows that a real rollout had begun
/// (the target was made a dry run since): the engine may not be asked how that one ended,
/// so it is marked interrupted, with what to look at by hand.
pub(super) async fn recover(target: &TargetConfig, log: &DeployLog) -> Recovery {
    let lines = match log.store.logs(log.id).await {
        Ok(lines) => lines,
        Err(e) => {
            tracing::warn!("cannot read the deploy's log: {e}");
            Vec::new()
        }
    };
    if !lines.iter().any(|l| l.line.starts_with(REAL_START)) {
        return Recovery::Requeue("a dry run changes nothing".into());
    }
    let check = match target.kind {
        TargetKind::Service => format!(
            "docker service ps {} (and docker service rollback if needed)",
            target.object
        ),
        TargetKind::Container => format!(
            "docker ps -a --filter name={} (a parked {}-dockhand-old-{} is the old one: rename it back and start it if the new one is not up)",
            target.object, target.object, log.id
        ),
    };
    Recovery::Done(Outcome::new(
        DeployState::Interrupted,
        format!(
            "a real deploy was running when dockhand stopped, and the target is now a dry run, so the engine was not asked how it ended; check it by hand: {check}"
        ),
    ))
}

/// "Swarm service 'web'" or "container 'web'".
fn describe(target: &TargetConfig) -> String {
    match target.kind {
        TargetKind::Service => format!("Swarm service '{}'", target.object),
        TargetKind::Container => format!("container '{}'", target.object),
    }
}

/// `image:tag@digest` of a stored deployment (without `@digest` when none is known).
fn pinned(d: &Deployment) -> String {
    match &d.digest {
        Some(digest) => format!("{}:{}@{digest}", d.image, d.tag),
        None => format!("{}:{}", d.image, d.tag),
    }
}
