//! Start-first container deploys (`update_order = "start-first"`): the new container runs
//! beside the old one until it is up, so clients that reach the container by name on a
//! Docker network (a reverse proxy in the same network, another service) never find
//! nothing there.
//!
//! The sequence, after the pull ([`super::container`] does that part for both orders):
//!
//! 1. create the new container as `NAME-dockhand-new-ID` from the old one's config, with
//!    `NAME` added to its aliases on every user-defined network, so that `NAME` resolves to
//!    both containers while they overlap;
//! 2. start it and wait until it is up (healthy, or running for `healthy_for`); the old
//!    one keeps serving all along;
//! 3. rename the old one to `NAME-dockhand-old-ID` and the new one to `NAME` (both still
//!    run);
//! 4. stop the old one (with its `stop_timeout` grace, so it can finish what it serves)
//!    and remove it.
//!
//! Any failure before step 3 removes the new container: the old one was never stopped,
//! so a failed deploy costs clients nothing. It is refused, before anything changes, for a
//! container that two copies of could not run at once: one that publishes a fixed host
//! port, uses the host's network, or has a static IP.

use super::container::{runs, short, wait_until_up};
use super::{DeployLog, Job, Outcome, Recovery};
use crate::config::TargetConfig;
use crate::engine::{Engine, EngineError};
use crate::store::DeployState;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, NetworkConnectRequest,
};

/// The name the new container runs under until the old one is gone.
fn temporary_name(name: &str, id: i64) -> String {
    format!("{name}-dockhand-new-{id}")
}

/// Why two copies of `old` cannot run at once, if they cannot.
pub(super) fn why_not_beside(old: &ContainerInspectResponse) -> Option<String> {
    let host = old.host_config.as_ref()?;
    if host.network_mode.as_deref() == Some("host") {
        return Some("it uses the host's network (network_mode host)".into());
    }
    let mut ports: Vec<String> = host
        .port_bindings
        .iter()
        .flatten()
        .flat_map(|(_, bindings)| bindings.iter().flatten())
        .filter_map(|b| b.host_port.clone())
        .filter(|p| !p.is_empty() && p != "0")
        .collect();
    if !ports.is_empty() {
        ports.sort();
        ports.dedup();
        return Some(format!(
            "it publishes host port {}, which only one container can bind",
            ports.join(", ")
        ));
    }
    let static_ip = old
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .into_iter()
        .flatten()
        .find(|(_, e)| {
            e.ipam_config.as_ref().is_some_and(|c| {
                c.ipv4_address.as_deref().is_some_and(|a| !a.is_empty())
                    || c.ipv6_address.as_deref().is_some_and(|a| !a.is_empty())
            })
        });
    static_ip.map(|(net, _)| format!("it has a static IP on network {net}"))
}

/// Adds `name` to an endpoint's aliases on a user-defined network (the default bridge
/// has no name resolution, and refuses aliases).
fn alias(network: &str, endpoint: &mut EndpointSettings, name: &str) {
    if matches!(network, "bridge" | "host" | "none") {
        return;
    }
    let aliases = endpoint.aliases.get_or_insert_with(Vec::new);
    if !aliases.iter().any(|a| a == name) {
        aliases.push(name.to_string());
    }
}

/// Runs the new container beside `old`, then retires `old`. `body` and `extra_networks`
/// are the new container's config, made by the caller from the old one's.
pub(super) async fn deploy(
    engine: &Engine,
    target: &TargetConfig,
    job: &Job,
    log: &DeployLog,
    old: &ContainerInspectResponse,
    mut body: ContainerCreateBody,
    mut extra_networks: Vec<(String, EndpointSettings)>,
) -> Outcome {
    let name = target.object.as_str();
    let reference = job.image.with_tag(&job.tag);
    let Some(old_id) = old.id.as_deref() else {
        return Outcome::failed(format!(
            "the engine returned container '{name}' without an id"
        ));
    };
    if let Some(why) = why_not_beside(old) {
        return Outcome::failed(format!(
            "update_order = \"start-first\" needs the old and the new container to run at \
             once, but {why}; reach {name} through a Docker network (a reverse proxy in \
             the same network) or set update_order = \"stop-first\" in targets.{}; \
             nothing was changed",
            target.name
        ));
    }
    for (network, endpoint) in body
        .networking_config
        .iter_mut()
        .flat_map(|n| n.endpoints_config.iter_mut().flatten())
    {
        alias(network, endpoint, name);
    }
    for (network, endpoint) in &mut extra_networks {
        alias(network, endpoint, name);
    }

    let temporary = temporary_name(name, job.id);
    let new_id = match engine.create_container(&temporary, body).await {
        Ok(id) => id,
        Err(e) => {
            return Outcome::untouched(
                &e,
                format!("cannot create the new container: {e}; {name} was not touched"),
            )
        }
    };
    log.line(format!(
        "created container {temporary} ({}) from {reference} beside the old one",
        short(&new_id)
    ))
    .await;
    let give_up = |reason: String| discard(engine, log, name, new_id.clone(), reason);
    for (network, endpoint) in extra_networks {
        let request = NetworkConnectRequest {
            container: new_id.clone(),
            endpoint_config: Some(endpoint),
        };
        if let Err(e) = engine.connect_network(&network, request).await {
            return give_up(format!(
                "cannot connect the new container to network {network}: {e}"
            ))
            .await;
        }
    }
    if let Err(e) = engine.start_container(&new_id).await {
        return give_up(format!("the new container did not start: {e}")).await;
    }
    log.line("started the new container; the old one keeps serving until it is up")
        .await;
    if let Err(reason) = wait_until_up(engine, &new_id, target, log).await {
        return give_up(reason).await;
    }
    retire_old(engine, target, job, log, old_id, &new_id).await
}

/// The new container is up: hand it the name, then stop and remove the old one.
///
/// The names move first (old to `NAME-dockhand-old-ID`, new to `NAME`), while both still
/// run, so that `NAME` is the new container for the engine and its users (`docker logs
/// NAME`) from then on. Docker's DNS is another matter: it answers for the names and
/// aliases a container had when it joined the network (Engine 20.10 measured: a rename
/// does not change them) until it stops, so clients that resolve the name reach the old
/// one until it has stopped, and a client that cached its address for a while after that
/// gets a refused connection: a proxy should retry another address (nginx:
/// `proxy_next_upstream error`). The old one gets `stop_timeout` to finish what it serves.
async fn retire_old(
    engine: &Engine,
    target: &TargetConfig,
    job: &Job,
    log: &DeployLog,
    old_id: &str,
    new_id: &str,
) -> Outcome {
    let name = target.object.as_str();
    let parked = super::container::parked_name(name, job.id);
    let temporary = temporary_name(name, job.id);
    let reference = job.image.with_tag(&job.tag);
    if let Err(e) = engine.rename_container(old_id, &parked).await {
        return discard(
            engine,
            log,
            name,
            new_id.to_string(),
            format!("cannot rename the old container aside: {e}"),
        )
        .await;
    }
    if let Err(e) = engine.rename_container(new_id, name).await {
        let _ = engine.rename_container(old_id, name).await;
        return discard(
            engine,
            log,
            name,
            new_id.to_string(),
            format!("cannot give the new container the name {name}: {e}"),
        )
        .await;
    }
    log.line(format!(
        "renamed the old container to {parked} and {temporary} to {name};          stopping the old container (grace {:?})",
        target.stop_timeout
    ))
    .await;
    if let Err(e) = engine.stop_container(old_id, target.stop_timeout).await {
        log.line(format!(
            "could not stop the old container gracefully: {e}; removing it"
        ))
        .await;
    }
    super::container::succeeded_without_old(engine, log, old_id, &parked, name, &reference).await
}

/// Removes the new container after a failure; the old one never stopped.
async fn discard(
    engine: &Engine,
    log: &DeployLog,
    name: &str,
    new_id: String,
    reason: String,
) -> Outcome {
    log.line(format!("failed: {reason}; removing the new container"))
        .await;
    match engine.remove_container(&new_id).await {
        Ok(()) | Err(EngineError::NotFound(_)) => Outcome::new(
            DeployState::RolledBack,
            format!("{reason}; the old container {name} kept serving throughout"),
        ),
        Err(e) => Outcome::failed(format!(
            "{reason}; the old container {name} kept serving, but the new one ({}) could \
             not be removed: {e}; remove it by hand",
            short(&new_id)
        )),
    }
}

/// Finishes or undoes a start-first deploy a previous process left half done. `None`
/// when there is no temporary container of `job`: nothing of the start-first sequence
/// happened, or it ended.
pub(super) async fn recover(
    engine: &Engine,
    target: &TargetConfig,
    job: &Job,
    log: &DeployLog,
) -> Result<Option<Recovery>, EngineError> {
    let name = target.object.as_str();
    let temporary = temporary_name(name, job.id);
    let reference = job.image.with_tag(&job.tag);
    let new = match engine.inspect_container(&temporary).await {
        Ok(c) => c,
        Err(EngineError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let new_id = new.id.clone().unwrap_or_else(|| temporary.clone());
    log.line(format!(
        "found the new container {temporary} from before the restart"
    ))
    .await;
    let old = match engine.inspect_container(name).await {
        Ok(c) => c.id,
        Err(EngineError::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    let up = runs(&new, &reference) && wait_until_up(engine, &new_id, target, log).await.is_ok();
    match (old, up) {
        (Some(old_id), true) => Ok(Some(Recovery::Done(
            retire_old(engine, target, job, log, &old_id, &new_id).await,
        ))),
        (None, _) => {
            // The old one was already removed: the new one is all there is.
            engine.rename_container(&new_id, name).await?;
            log.line(format!("renamed {temporary} to {name}")).await;
            let outcome = if up {
                Outcome::new(
                    DeployState::Succeeded,
                    format!("container {name} runs {reference} (finished after a restart)"),
                )
            } else {
                Outcome::failed(format!(
                    "after a restart, {name} runs the new image but is not up; the old \
                     container was already removed"
                ))
            };
            Ok(Some(Recovery::Done(outcome)))
        }
        (Some(_), false) => {
            // Not up: the old one still serves; drop the new one and run the deploy again.
            engine.remove_container(&new_id).await?;
            Ok(Some(Recovery::Requeue(format!(
                "dockhand stopped before the new container was up; {temporary} removed, \
                 {name} kept serving"
            ))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{EndpointIpamConfig, HostConfig, NetworkSettings, PortBinding};
    use std::collections::HashMap;

    fn container(
        host: HostConfig,
        networks: HashMap<String, EndpointSettings>,
    ) -> ContainerInspectResponse {
        ContainerInspectResponse {
            host_config: Some(host),
            network_settings: Some(NetworkSettings {
                networks: Some(networks),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn two_copies_are_refused_only_where_they_would_collide() {
        let on_net = HashMap::from([("app".to_string(), EndpointSettings::default())]);
        assert_eq!(
            why_not_beside(&container(HostConfig::default(), on_net.clone())),
            None
        );

        let published = HostConfig {
            port_bindings: Some(HashMap::from([(
                "8080/tcp".to_string(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some("8080".into()),
                }]),
            )])),
            ..Default::default()
        };
        let why = why_not_beside(&container(published, on_net.clone())).unwrap();
        assert!(why.contains("host port 8080"), "{why}");

        // A random host port (`-p 8080`) is a different port for each copy.
        let random = HostConfig {
            port_bindings: Some(HashMap::from([(
                "8080/tcp".to_string(),
                Some(vec![PortBinding {
                    host_ip: None,
                    host_port: Some(String::new()),
                }]),
            )])),
            ..Default::default()
        };
        assert_eq!(why_not_beside(&container(random, on_net.clone())), None);

        let host_net = HostConfig {
            network_mode: Some("host".into()),
            ..Default::default()
        };
        assert!(why_not_beside(&container(host_net, HashMap::new())).is_some());

        let fixed_ip = HashMap::from([(
            "app".to_string(),
            EndpointSettings {
                ipam_config: Some(EndpointIpamConfig {
                    ipv4_address: Some("10.9.0.5".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )]);
        let why = why_not_beside(&container(HostConfig::default(), fixed_ip)).unwrap();
        assert!(why.contains("static IP on network app"), "{why}");
    }

    #[test]
    fn the_name_becomes_an_alias_on_user_networks_only() {
        let mut user = EndpointSettings {
            aliases: Some(vec!["web".into()]),
            ..Default::default()
        };
        alias("app", &mut user, "web");
        alias("app", &mut user, "api");
        assert_eq!(user.aliases.unwrap(), vec!["web", "api"]);
        let mut default = EndpointSettings::default();
        alias("bridge", &mut default, "web");
        assert_eq!(default.aliases, None);
    }
}
