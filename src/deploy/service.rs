//! Swarm service deploys: pin the service to `repo:tag@digest`, update it with its version
//! index and its own UpdateConfig (so `start-first` is honoured), then follow the engine's
//! rolling update until it says completed, paused or rolled back. Only completed is success.

use super::{DeployLog, Job, Outcome};
use crate::config::TargetConfig;
use crate::engine::{Engine, EngineError};
use crate::reference::parse_full;
use crate::store::DeployState;
use bollard::models::{ServiceUpdateStatusStateEnum as UpdateState, Task};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::{sleep, Instant};

/// How often the update is polled.
const POLL: Duration = Duration::from_millis(500);

pub(super) async fn deploy(
    engine: &Engine,
    target: &TargetConfig,
    job: &Job,
    log: &DeployLog,
) -> Outcome {
    let name = &target.object;
    let service = match engine.inspect_service(name).await {
        Ok(s) => s,
        Err(EngineError::NotFound(_)) => {
            return Outcome::failed(format!(
                "service '{name}' does not exist on this swarm: create it (docker service create --name {name} ...) or fix targets.{}.service",
                target.name
            ))
        }
        Err(e) => return Outcome::untouched(&e, format!("cannot inspect service '{name}': {e}")),
    };
    let (Some(id), Some(version), Some(mut spec)) = (
        service.id.clone(),
        service.version.as_ref().and_then(|v| v.index),
        service.spec.clone(),
    ) else {
        return Outcome::failed(format!(
            "the engine returned service '{name}' without id, version or spec"
        ));
    };
    let current = spec
        .task_template
        .as_ref()
        .and_then(|t| t.container_spec.as_ref())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    log.line(format!("service {name} runs {current}")).await;

    let digest = match &job.digest {
        Some(d) => Some(d.clone()),
        None => {
            let reference = job.image.with_tag(&job.tag);
            match engine.registry_digest(&reference).await {
                Ok(d) => {
                    log.line(format!("the registry serves {reference} as {d}"))
                        .await;
                    Some(d)
                }
                Err(e) => {
                    log.line(format!(
                        "could not resolve the digest of {reference} ({e}); deploying by tag"
                    ))
                    .await;
                    None
                }
            }
        }
    };
    let wanted = job.image.pinned(&job.tag, digest.as_deref());
    if same_image(&current, &wanted) {
        if update_in_progress(&service) {
            // An earlier try's update was applied (its answer was lost): follow it.
            log.line(format!(
                "service {name} is already updating to {wanted}; following it"
            ))
            .await;
            return follow(engine, target, &id, &current, None, log)
                .await
                .with_digest(digest);
        }
        return Outcome::new(
            DeployState::Skipped,
            format!("service {name} already runs {wanted}"),
        )
        .with_digest(digest);
    }

    let previous_update = service
        .update_status
        .as_ref()
        .and_then(|s| s.started_at.clone());
    if let Some(cs) = spec
        .task_template
        .as_mut()
        .and_then(|t| t.container_spec.as_mut())
    {
        cs.image = Some(wanted.clone());
    } else {
        return Outcome::failed(format!("service '{name}' has no container spec to update"));
    }
    let order = spec
        .update_config
        .as_ref()
        .and_then(|u| u.order.map(|o| o.to_string()))
        .unwrap_or_else(|| "stop-first".into());
    log.line(format!(
        "updating service {name} to {wanted} (update order {order})"
    ))
    .await;
    match engine.update_service(&id, spec, version).await {
        Ok(warnings) => {
            for w in warnings {
                log.line(format!("engine warning: {w}")).await;
            }
        }
        Err(e) => {
            return Outcome::failed(format!(
                "the engine refused the update of service '{name}': {e}"
            ))
            .with_digest(digest)
        }
    }

    follow(engine, target, &id, &wanted, previous_update, log)
        .await
        .with_digest(digest)
}

/// Whether the engine is rolling the service out (or back) right now.
fn update_in_progress(service: &bollard::models::Service) -> bool {
    matches!(
        service.update_status.as_ref().and_then(|s| s.state),
        Some(UpdateState::UPDATING | UpdateState::ROLLBACK_STARTED)
    )
}

/// Finishes a deploy that a previous process left running (see [`super::recover`]): when
/// the service was already updated to the job's image, the update is followed to its end;
/// otherwise the deploy runs again.
pub(super) async fn recover(
    engine: &Engine,
    target: &TargetConfig,
    job: &Job,
    log: &DeployLog,
) -> Result<super::Recovery, EngineError> {
    let name = &target.object;
    let service = match engine.inspect_service(name).await {
        Ok(s) => s,
        Err(EngineError::NotFound(_)) => {
            return Ok(super::Recovery::Requeue(format!(
                "service {name} does not exist"
            )))
        }
        Err(e) => return Err(e),
    };
    let current = service
        .spec
        .as_ref()
        .and_then(|s| s.task_template.as_ref())
        .and_then(|t| t.container_spec.as_ref())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let updated = match parse_full(&current) {
        Ok((image, tag, digest)) => {
            image == job.image
                && tag.as_deref() == Some(job.tag.as_str())
                && (job.digest.is_none() || digest == job.digest)
        }
        Err(_) => false,
    };
    let Some(id) = service.id.clone().filter(|_| updated) else {
        return Ok(super::Recovery::Requeue(format!(
            "service {name} was not updated yet"
        )));
    };
    log.line(format!(
        "service {name} was updated to {current} before the restart; following the update"
    ))
    .await;
    Ok(super::Recovery::Done(
        follow(engine, target, &id, &current, None, log).await,
    ))
}

/// Follows the update until the engine reports an end state or the target's timeout passes.
async fn follow(
    engine: &Engine,
    target: &TargetConfig,
    id: &str,
    wanted: &str,
    previous_update: Option<bollard::models::BollardDate>,
    log: &DeployLog,
) -> Outcome {
    let name = &target.object;
    let deadline = Instant::now() + target.timeout;
    let mut last_state = None;
    let mut task_states: HashMap<String, String> = HashMap::new();
    loop {
        let service = match engine.inspect_service(id).await {
            Ok(s) => s,
            Err(e) if e.is_transient() && Instant::now() < deadline => {
                log.line(format!(
                    "lost the engine while following the update ({e}); retrying"
                ))
                .await;
                sleep(POLL * 4).await;
                continue;
            }
            Err(e) => return Outcome::failed(format!("lost track of service '{name}': {e}")),
        };
        if let Ok(tasks) = engine.service_tasks(id).await {
            log_task_changes(&tasks, wanted, &mut task_states, log).await;
        }
        let status = service.update_status.as_ref();
        let fresh =
            status.is_some_and(|s| s.started_at != previous_update || previous_update.is_none());
        let state = status.filter(|_| fresh).and_then(|s| s.state);
        let message = status.and_then(|s| s.message.clone()).unwrap_or_default();
        if state != last_state {
            if let Some(s) = state {
                log.line(format!(
                    "update {s}{}",
                    if message.is_empty() {
                        String::new()
                    } else {
                        format!(": {message}")
                    }
                ))
                .await;
            }
            last_state = state;
        }
        match state {
            Some(UpdateState::COMPLETED) => {
                return Outcome::new(
                    DeployState::Succeeded,
                    format!("service {name} runs {wanted}"),
                );
            }
            Some(UpdateState::PAUSED) => {
                return Outcome::failed(format!(
                    "the engine paused the update of service {name}: {message}; the service is left as the engine paused it (see `docker service ps {name}`)"
                ));
            }
            Some(UpdateState::ROLLBACK_COMPLETED) => {
                return Outcome::new(
                    DeployState::RolledBack,
                    format!(
                        "the engine rolled service {name} back to its previous image: {message}"
                    ),
                );
            }
            Some(UpdateState::ROLLBACK_PAUSED) => {
                return Outcome::failed(format!(
                    "the engine's rollback of service {name} paused: {message}"
                ));
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            return Outcome::failed(format!(
                "service {name} did not converge within {:?} (engine state: {}); the engine goes on with the update",
                target.timeout,
                state.map_or("not started".to_string(), |s| s.to_string())
            ));
        }
        sleep(POLL).await;
    }
}

/// Logs each task of the new image when its state changes, with the engine's reason.
async fn log_task_changes(
    tasks: &[Task],
    wanted: &str,
    seen: &mut HashMap<String, String>,
    log: &DeployLog,
) {
    for task in tasks {
        let image = task
            .spec
            .as_ref()
            .and_then(|s| s.container_spec.as_ref())
            .and_then(|c| c.image.as_deref());
        if image != Some(wanted) {
            continue;
        }
        let (Some(id), Some(status)) = (task.id.as_deref(), task.status.as_ref()) else {
            continue;
        };
        let state = status.state.map(|s| s.to_string()).unwrap_or_default();
        if seen.get(id) == Some(&state) {
            continue;
        }
        seen.insert(id.to_string(), state.clone());
        let detail = status
            .err
            .clone()
            .or_else(|| status.message.clone())
            .unwrap_or_default();
        let short_id: String = id.chars().take(12).collect();
        log.line(format!("task {short_id}: {state} ({detail})"))
            .await;
    }
}

/// Whether two references name the same image (normalising `nginx` vs `docker.io/...`).
fn same_image(a: &str, b: &str) -> bool {
    match (parse_full(a), parse_full(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::same_image;

    #[test]
    fn same_image_normalises() {
        let d = format!("sha256:{}", "e".repeat(64));
        assert!(same_image(
            &format!("nginx:1@{d}"),
            &format!("docker.io/library/nginx:1@{d}")
        ));
        assert!(!same_image(&format!("nginx:1@{d}"), "nginx:1"));
        assert!(!same_image(
            "127.0.0.1:5000/app:v1",
            "127.0.0.1:5000/app:v2"
        ));
    }
}
