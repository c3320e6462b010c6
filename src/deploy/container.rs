//! Container deploys: replace a plain container with a new one made from its config.
//!
//! The sequence keeps the old container until the new one has proved itself:
//!
//! 1. pull the new image (the old container keeps serving);
//! 2. rename the old container to `NAME-dockhand-old-ID` and create the new one as `NAME`
//!    from the old one's config (env, mounts and anonymous volumes, networks and aliases,
//!    labels, restart policy, port bindings, healthcheck, command, user);
//! 3. stop the old one (its ports are needed), start the new one, and wait until it is
//!    healthy (when it has a HEALTHCHECK) or has kept running for `healthy_for`;
//! 4. on success remove the old one; on any failure remove the new one, give the old one
//!    its name back and start it again.
//!
//! Settings the user gave the old container are kept; settings it only inherited from its
//! old image (command, env defaults, healthcheck, labels...) come from the new image.
//!
//! That is the default, stop-first order. With `update_order = "start-first"`, steps 2-4
//! are [`super::start_first`]'s instead: the new container starts beside the old one.

use super::{DeployLog, Job, Outcome};
use crate::config::{TargetConfig, UpdateOrder};
use crate::engine::{Engine, EngineError};
use crate::store::DeployState;
use bollard::models::{
    ContainerConfig, ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum,
    EndpointSettings, HealthStatusEnum, ImageConfig, Mount, MountType, NetworkConnectRequest,
    NetworkingConfig,
};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::{sleep, Instant};

/// How often the new container is polled while it starts.
const POLL: Duration = Duration::from_millis(250);

pub(super) async fn deploy(
    engine: &Engine,
    target: &TargetConfig,
    job: &Job,
    log: &DeployLog,
) -> Outcome {
    let name = target.object.as_str();
    let old = match engine.inspect_container(name).await {
        Ok(c) => c,
        Err(EngineError::NotFound(_)) => {
            return Outcome::failed(format!(
                "container '{name}' does not exist: start it once by hand (docker run --name {name} ...) or fix targets.{}.container",
                target.name
            ))
        }
        Err(e) => return Outcome::untouched(&e, format!("cannot inspect container '{name}': {e}")),
    };
    let Some(old_id) = old.id.clone() else {
        return Outcome::failed(format!(
            "the engine returned container '{name}' without an id"
        ));
    };
    let reference = job.image.with_tag(&job.tag);

    // Pull exactly what was pushed when the event names its digest (the tag may have
    // moved since), and point the tag at it; else pull the tag.
    let pull_ref = match &job.digest {
        Some(d) => format!("{}@{d}", job.image),
        None => reference.clone(),
    };
    log.line(format!("pulling {pull_ref}")).await;
    let mut progress = Vec::new();
    if let Err(e) = engine.pull(&pull_ref, |line| progress.push(line)).await {
        for line in progress {
            log.line(line).await;
        }
        return Outcome::untouched(
            &e,
            format!("pull of {pull_ref} failed: {e}; container {name} was not touched"),
        );
    }
    for line in progress {
        log.line(line).await;
    }
    if pull_ref != reference {
        if let Err(e) = engine
            .tag_image(&pull_ref, &job.image.to_string(), &job.tag)
            .await
        {
            return Outcome::untouched(&e, format!("cannot tag {pull_ref} as {reference}: {e}"));
        }
    }
    let new_image = match engine.inspect_image(&reference).await {
        Ok(i) => i,
        Err(e) => {
            return Outcome::untouched(
                &e,
                format!("cannot inspect the pulled image {reference}: {e}"),
            )
        }
    };
    let digest = pulled_digest(&new_image.repo_digests, job);

    if new_image.id.is_some() && new_image.id == old.image {
        return Outcome::new(
            DeployState::Skipped,
            format!("container {name} already runs {reference}"),
        )
        .with_digest(digest);
    }

    // The old image's config tells which settings the user gave and which were inherited.
    let old_image_config = match old.image.as_deref() {
        Some(id) => engine.inspect_image(id).await.ok().and_then(|i| i.config),
        None => None,
    };
    let (body, extra_networks) = new_container_body(&old, old_image_config.as_ref(), &reference);
    if target.update_order == UpdateOrder::StartFirst {
        return super::start_first::deploy(engine, target, job, log, &old, body, extra_networks)
            .await
            .with_digest(digest);
    }
    let was_running = old.state.as_ref().and_then(|s| s.running).unwrap_or(false);

    let parked = parked_name(name, job.id);
    if let Err(e) = engine.rename_container(&old_id, &parked).await {
        return Outcome::untouched(
            &e,
            format!("cannot rename container {name} aside: {e}; nothing was changed"),
        );
    }
    log.line(format!("renamed the old container to {parked}"))
        .await;
    let mut swap = Swap {
        engine,
        log,
        name,
        old_id: &old_id,
        parked: &parked,
        was_running,
        new_id: None,
        stop_timeout: target.stop_timeout,
    };

    let new_id = match engine.create_container(name, body).await {
        Ok(id) => id,
        Err(e) => {
            return swap
                .restore(format!("cannot create the new container: {e}"))
                .await
        }
    };
    swap.new_id = Some(new_id.clone());
    log.line(format!(
        "created container {} from {reference}",
        short(&new_id)
    ))
    .await;
    for (network, endpoint) in extra_networks {
        let request = NetworkConnectRequest {
            container: new_id.clone(),
            endpoint_config: Some(endpoint),
        };
        if let Err(e) = engine.connect_network(&network, request).await {
            return swap
                .restore(format!(
                    "cannot connect the new container to network {network}: {e}"
                ))
                .await;
        }
    }

    if was_running {
        log.line(format!(
            "stopping the old container (grace {:?})",
            target.stop_timeout
        ))
        .await;
        if let Err(e) = engine.stop_container(&old_id, target.stop_timeout).await {
            return swap
                .restore(format!("cannot stop the old container: {e}"))
                .await;
        }
    }
    if let Err(e) = engine.start_container(&new_id).await {
        return swap
            .restore(format!("the new container did not start: {e}"))
            .await;
    }
    log.line("started the new container; waiting for it to be up")
        .await;
    if let Err(reason) = wait_until_up(engine, &new_id, target, log).await {
        return swap.restore(reason).await;
    }

    succeeded_without_old(engine, log, &old_id, &parked, name, &reference)
        .await
        .with_digest(digest)
}

/// The end of a swap that worked, for either order: the old container (stopped, parked as
/// `parked`) is removed, and the deploy succeeded even if that fails (the log says so).
pub(super) async fn succeeded_without_old(
    engine: &Engine,
    log: &DeployLog,
    old_id: &str,
    parked: &str,
    name: &str,
    reference: &str,
) -> Outcome {
    match engine.remove_container(old_id).await {
        Ok(()) | Err(EngineError::NotFound(_)) => {
            log.line(format!("removed the old container {parked}"))
                .await
        }
        Err(e) => {
            log.line(format!(
                "could not remove the old container {parked}: {e}; remove it by hand"
            ))
            .await
        }
    }
    Outcome::new(
        DeployState::Succeeded,
        format!("container {name} runs {reference}"),
    )
}

/// The name the old container is parked under during deploy `id`.
pub(super) fn parked_name(name: &str, id: i64) -> String {
    format!("{name}-dockhand-old-{id}")
}

/// Finishes or undoes a swap that a previous process left half done (see [`super::recover`]).
pub(super) async fn recover(
    engine: &Engine,
    target: &TargetConfig,
    job: &Job,
    log: &DeployLog,
) -> Result<super::Recovery, EngineError> {
    use super::Recovery;
    if let Some(recovery) = super::start_first::recover(engine, target, job, log).await? {
        return Ok(recovery);
    }
    let name = target.object.as_str();
    let parked = parked_name(name, job.id);
    let reference = job.image.with_tag(&job.tag);
    let old = match engine.inspect_container(&parked).await {
        Ok(old) => old,
        Err(EngineError::NotFound(_)) => {
            // No parked container: the swap had not begun, or it had ended.
            return Ok(match engine.inspect_container(name).await {
                Ok(c) if runs(&c, &reference) => Recovery::Done(Outcome::new(
                    DeployState::Succeeded,
                    format!("container {name} runs {reference} (found so after a restart)"),
                )),
                Ok(_) | Err(EngineError::NotFound(_)) => {
                    Recovery::Requeue(format!("container {name} was not changed yet"))
                }
                Err(e) => return Err(e),
            });
        }
        Err(e) => return Err(e),
    };
    let old_id = old.id.clone().unwrap_or_else(|| parked.clone());
    log.line(format!("found the old container parked as {parked}"))
        .await;
    let new = match engine.inspect_container(name).await {
        Ok(c) if c.id != old.id => Some(c),
        Ok(_) | Err(EngineError::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    let swap = Swap {
        engine,
        log,
        name,
        old_id: &old_id,
        parked: &parked,
        was_running: true,
        new_id: new.as_ref().and_then(|c| c.id.clone()),
        stop_timeout: target.stop_timeout,
    };
    match new {
        Some(c) if runs(&c, &reference) => {
            let new_id = c.id.clone().unwrap_or_default();
            log.line("the new container runs; checking that it is up")
                .await;
            match wait_until_up(engine, &new_id, target, log).await {
                Ok(()) => {
                    engine.remove_container(&old_id).await?;
                    log.line(format!("removed the old container {parked}"))
                        .await;
                    Ok(Recovery::Done(Outcome::new(
                        DeployState::Succeeded,
                        format!("container {name} runs {reference} (finished after a restart)"),
                    )))
                }
                Err(reason) => Ok(Recovery::Done(swap.restore(reason).await)),
            }
        }
        _ => {
            // The new container never started: put the old one back and run it all again.
            let outcome = swap
                .restore("dockhand stopped before the new container started".into())
                .await;
            Ok(match outcome.state {
                DeployState::RolledBack => Recovery::Requeue(outcome.message),
                _ => Recovery::Done(outcome),
            })
        }
    }
}

/// Whether a container runs `reference` now.
pub(super) fn runs(c: &ContainerInspectResponse, reference: &str) -> bool {
    c.config.as_ref().and_then(|c| c.image.as_deref()) == Some(reference)
        && c.state.as_ref().and_then(|s| s.running) == Some(true)
}

/// The state of a swap in progress, so a failure at any step can put the old container back.
struct Swap<'a> {
    engine: &'a Engine,
    log: &'a DeployLog,
    name: &'a str,
    old_id: &'a str,
    parked: &'a str,
    was_running: bool,
    new_id: Option<String>,
    stop_timeout: Duration,
}

impl Swap<'_> {
    /// Removes the new container, gives the old one its name back and starts it again.
    async fn restore(self, reason: String) -> Outcome {
        self.log
            .line(format!("failed: {reason}; restoring the old container"))
            .await;
        let mut problems = Vec::new();
        if let Some(id) = &self.new_id {
            let _ = self.engine.stop_container(id, self.stop_timeout).await;
            if let Err(e) = self.engine.remove_container(id).await {
                problems.push(format!("removing the new container: {e}"));
            }
        }
        if problems.is_empty() {
            if let Err(e) = self.engine.rename_container(self.old_id, self.name).await {
                problems.push(format!("renaming {} back: {e}", self.parked));
            }
        }
        if self.was_running {
            if let Err(e) = self.engine.start_container(self.old_id).await {
                problems.push(format!("starting the old container: {e}"));
            }
        }
        if problems.is_empty() {
            self.log
                .line(format!("the old container serves again as {}", self.name))
                .await;
            Outcome::new(
                DeployState::RolledBack,
                format!("{reason}; the old container was restored and serves again"),
            )
        } else {
            Outcome::failed(format!(
                "{reason}; restoring the old container also failed ({}); it is kept as {}",
                problems.join("; "),
                self.parked
            ))
        }
    }
}

/// Waits until the new container is healthy (with a HEALTHCHECK) or has kept running for
/// `healthy_for` without a restart (without one). Fails as soon as it exits or restarts.
pub(super) async fn wait_until_up(
    engine: &Engine,
    id: &str,
    target: &TargetConfig,
    log: &DeployLog,
) -> Result<(), String> {
    let deadline = Instant::now() + target.timeout;
    let mut running_since: Option<Instant> = None;
    let mut last_health = None;
    loop {
        let c = engine
            .inspect_container(id)
            .await
            .map_err(|e| format!("lost the new container: {e}"))?;
        let state = c.state.unwrap_or_default();
        let restarts = c.restart_count.unwrap_or(0);
        let status = state.status.unwrap_or(ContainerStateStatusEnum::EMPTY);
        if matches!(
            status,
            ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD
        ) || state.restarting == Some(true)
            || restarts > 0
        {
            return Err(format!(
                "the new container exited (code {}{}{})",
                state.exit_code.unwrap_or(-1),
                if restarts > 0 {
                    format!(", restarted {restarts} times")
                } else {
                    String::new()
                },
                state
                    .error
                    .filter(|e| !e.is_empty())
                    .map(|e| format!(", {e}"))
                    .unwrap_or_default()
            ));
        }
        let health = state.health.as_ref().and_then(|h| h.status);
        match health {
            Some(HealthStatusEnum::HEALTHY) => {
                log.line("the new container is healthy").await;
                return Ok(());
            }
            Some(HealthStatusEnum::UNHEALTHY) => {
                let output = state
                    .health
                    .and_then(|h| h.log)
                    .and_then(|l| l.last().and_then(|r| r.output.clone()))
                    .unwrap_or_default();
                return Err(format!("the new container is unhealthy: {}", output.trim()));
            }
            Some(HealthStatusEnum::STARTING) if last_health != health => {
                log.line("health check starting").await;
                last_health = health;
            }
            Some(HealthStatusEnum::STARTING) => {}
            _ if status == ContainerStateStatusEnum::RUNNING => {
                let since = *running_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= target.healthy_for {
                    log.line(format!(
                        "the new container has no health check and kept running for {:?}",
                        target.healthy_for
                    ))
                    .await;
                    return Ok(());
                }
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the new container was not up within {:?}",
                target.timeout
            ));
        }
        sleep(POLL).await;
    }
}

/// The digest the pulled image carries for the pushed repository.
fn pulled_digest(repo_digests: &Option<Vec<String>>, job: &Job) -> Option<String> {
    let digests: Vec<&str> = repo_digests
        .iter()
        .flatten()
        .filter_map(|rd| rd.split_once('@').map(|(_, d)| d))
        .collect();
    if let Some(want) = &job.digest {
        if digests.contains(&want.as_str()) {
            return Some(want.clone());
        }
    }
    crate::reference::digest_for(repo_digests.as_deref().unwrap_or_default(), &job.image)
}

/// The create body for the new container, and the networks to connect after creation
/// (the API takes one network at create time).
fn new_container_body(
    old: &ContainerInspectResponse,
    old_image: Option<&ImageConfig>,
    reference: &str,
) -> (ContainerCreateBody, Vec<(String, EndpointSettings)>) {
    let cfg = old.config.clone().unwrap_or_default();
    let img = old_image.cloned().unwrap_or_default();
    let short_id: String = old.id.as_deref().unwrap_or("").chars().take(12).collect();

    // A value the container got from its image is left for the new image to set.
    fn own<T: PartialEq>(value: Option<T>, inherited: &Option<T>) -> Option<T> {
        match (&value, inherited) {
            (Some(v), Some(i)) if v == i => None,
            _ => value,
        }
    }
    let env = cfg.env.as_ref().map(|env| {
        let inherited = img.env.clone().unwrap_or_default();
        env.iter()
            .filter(|e| !inherited.contains(e))
            .cloned()
            .collect::<Vec<_>>()
    });
    let labels = cfg.labels.as_ref().map(|labels| {
        let inherited = img.labels.clone().unwrap_or_default();
        labels
            .iter()
            .filter(|(k, v)| inherited.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<HashMap<_, _>>()
    });
    let minus = |mine: &Option<Vec<String>>, inherited: &Option<Vec<String>>| {
        mine.as_ref().map(|m| {
            let inherited = inherited.clone().unwrap_or_default();
            m.iter()
                .filter(|p| !inherited.contains(p))
                .cloned()
                .collect::<Vec<_>>()
        })
    };

    let mut host_config = old.host_config.clone().unwrap_or_default();
    keep_anonymous_volumes(old, &mut host_config);

    let ContainerConfig {
        domainname,
        tty,
        open_stdin,
        stdin_once,
        stop_timeout,
        ..
    } = cfg.clone();
    let hostname = cfg
        .hostname
        .clone()
        .filter(|h| *h != short_id && !h.is_empty());

    let network_mode = host_config.network_mode.clone().unwrap_or_default();
    let networks = old
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.clone())
        .unwrap_or_default();
    let shared_stack =
        matches!(network_mode.as_str(), "host" | "none") || network_mode.starts_with("container:");
    let primary = if network_mode == "default" || network_mode.is_empty() {
        "bridge".to_string()
    } else {
        network_mode.clone()
    };
    let mut first = None;
    let mut extra = Vec::new();
    if !shared_stack {
        for (net, endpoint) in networks {
            let endpoint = portable_endpoint(endpoint, &short_id);
            if net == primary {
                first = Some((net, endpoint));
            } else {
                extra.push((net, endpoint));
            }
        }
    }
    let networking_config = first.map(|(net, endpoint)| NetworkingConfig {
        endpoints_config: Some(HashMap::from([(net, endpoint)])),
    });

    let body = ContainerCreateBody {
        hostname,
        domainname,
        user: own(cfg.user.clone(), &img.user),
        exposed_ports: minus(&cfg.exposed_ports, &img.exposed_ports),
        tty,
        open_stdin,
        stdin_once,
        env,
        cmd: own(cfg.cmd.clone(), &img.cmd),
        healthcheck: own(cfg.healthcheck.clone(), &img.healthcheck),
        image: Some(reference.to_string()),
        volumes: minus(&cfg.volumes, &img.volumes),
        working_dir: own(cfg.working_dir.clone(), &img.working_dir),
        entrypoint: own(cfg.entrypoint.clone(), &img.entrypoint),
        labels,
        stop_signal: own(cfg.stop_signal.clone(), &img.stop_signal),
        stop_timeout,
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    };
    (body, extra)
}

/// Endpoint settings that can be given to a new container: aliases (less the old
/// container's own id), static IPs, links and driver options; not the old endpoint's ids.
fn portable_endpoint(e: EndpointSettings, old_short_id: &str) -> EndpointSettings {
    EndpointSettings {
        ipam_config: e.ipam_config,
        links: e.links,
        aliases: e
            .aliases
            .map(|a| a.into_iter().filter(|x| x != old_short_id).collect()),
        driver_opts: e.driver_opts,
        ..Default::default()
    }
}

/// Anonymous volumes (a `VOLUME` in the image, or `-v /path`) are not in the old container's
/// HostConfig; without this the new container would get fresh, empty ones. Each becomes an
/// explicit volume mount of the same volume at the same path.
fn keep_anonymous_volumes(
    old: &ContainerInspectResponse,
    host_config: &mut bollard::models::HostConfig,
) {
    let mut covered: Vec<String> = host_config
        .binds
        .iter()
        .flatten()
        .filter_map(|b| b.split(':').nth(1).map(str::to_string))
        .collect();
    covered.extend(
        host_config
            .mounts
            .iter()
            .flatten()
            .filter_map(|m| m.target.clone()),
    );
    for m in old.mounts.iter().flatten() {
        let (Some("volume"), Some(source), Some(dest)) =
            (m.typ.as_deref(), m.name.as_ref(), m.destination.as_ref())
        else {
            continue;
        };
        if covered.contains(dest) {
            continue;
        }
        host_config.mounts.get_or_insert_with(Vec::new).push(Mount {
            target: Some(dest.clone()),
            source: Some(source.clone()),
            typ: Some(MountType::VOLUME),
            read_only: m.rw.map(|rw| !rw),
            ..Default::default()
        });
        covered.push(dest.clone());
    }
}

/// The first 12 characters of an id, as `docker ps` shows them.
pub(super) fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{HostConfig, MountPoint};

    #[test]
    fn user_settings_are_kept_and_inherited_ones_left_to_the_new_image() {
        let image = ImageConfig {
            env: Some(vec!["PATH=/bin".into(), "VERSION=v1".into()]),
            cmd: Some(vec!["httpd".into()]),
            labels: Some(HashMap::from([("org.version".into(), "v1".into())])),
            ..Default::default()
        };
        let old = ContainerInspectResponse {
            id: Some("0123456789abcdef".into()),
            config: Some(ContainerConfig {
                hostname: Some("0123456789ab".into()),
                env: Some(vec![
                    "PATH=/bin".into(),
                    "VERSION=v1".into(),
                    "APP_MODE=prod".into(),
                ]),
                cmd: Some(vec!["httpd".into()]),
                labels: Some(HashMap::from([
                    ("org.version".into(), "v1".into()),
                    ("team".into(), "web".into()),
                ])),
                user: Some("1000".into()),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                binds: Some(vec!["data:/data".into()]),
                network_mode: Some("appnet".into()),
                ..Default::default()
            }),
            mounts: Some(vec![
                MountPoint {
                    typ: Some("volume".into()),
                    name: Some("data".into()),
                    destination: Some("/data".into()),
                    rw: Some(true),
                    ..Default::default()
                },
                MountPoint {
                    typ: Some("volume".into()),
                    name: Some("f00d".into()),
                    destination: Some("/cache".into()),
                    rw: Some(true),
                    ..Default::default()
                },
            ]),
            network_settings: Some(bollard::models::NetworkSettings {
                networks: Some(HashMap::from([
                    (
                        "appnet".into(),
                        EndpointSettings {
                            aliases: Some(vec!["web".into(), "0123456789ab".into()]),
                            ip_address: Some("10.0.0.2".into()),
                            ..Default::default()
                        },
                    ),
                    ("other".into(), EndpointSettings::default()),
                ])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (body, extra) = new_container_body(&old, Some(&image), "r/app:v2");
        assert_eq!(body.image.as_deref(), Some("r/app:v2"));
        assert_eq!(body.env, Some(vec!["APP_MODE=prod".to_string()]));
        assert_eq!(body.cmd, None);
        assert_eq!(body.hostname, None);
        assert_eq!(body.user.as_deref(), Some("1000"));
        assert_eq!(
            body.labels,
            Some(HashMap::from([("team".to_string(), "web".to_string())]))
        );
        let hc = body.host_config.unwrap();
        let mounts = hc.mounts.unwrap();
        assert_eq!(mounts.len(), 1, "only the anonymous volume is added");
        assert_eq!(mounts[0].source.as_deref(), Some("f00d"));
        assert_eq!(mounts[0].target.as_deref(), Some("/cache"));
        let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(endpoints["appnet"].aliases, Some(vec!["web".to_string()]));
        assert_eq!(endpoints["appnet"].ip_address, None);
        assert_eq!(extra.len(), 1);
        assert_eq!(extra[0].0, "other");
    }
}
