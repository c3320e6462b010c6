//! A registry push rolls a new image out to a plain container, on the real engine, through
//! a real Distribution registry's notifications.

mod common;

use common::*;
use dockhand::store::DeployState;
use std::time::Duration;

fn config(image: &str, container: &str) -> String {
    format!(
        r#"
[[hooks]]
name = "registry"
source = "distribution"
token = "{TOKEN}"

[[targets]]
name = "web"
kind = "container"
container = "{container}"
image = "{image}"
tags = "v*"
hooks = ["registry"]
timeout = "60s"
"#
    )
}

/// Runs the v1 container the way a user would: published port, env, label, a named
/// volume with data in it, a user network with an alias, a restart policy.
fn run_v1(reference: &str, name: &str, port: u16, volume: &str, network: &str) {
    docker(&["network", "create", network]);
    docker(&[
        "run",
        "-d",
        "--name",
        name,
        "-p",
        &format!("127.0.0.1:{port}:8080"),
        "-e",
        "APP_MODE=production",
        "--label",
        "team=web",
        "-v",
        &format!("{volume}:/srv"),
        "--network",
        network,
        "--network-alias",
        "webapp",
        "--restart",
        "unless-stopped",
        reference,
    ]);
    docker(&[
        "exec",
        name,
        "sh",
        "-c",
        "echo keep-me > /srv/data.txt && echo anon > /data/anon.txt",
    ]);
}

/// A v1 container serving on a published port, with a registry notifying a dockhand
/// whose target is that container.
struct Scene {
    _cleanup: Cleanup,
    name: String,
    network: String,
    registry: Registry,
    repo: String,
    dockhand: Dockhand,
    served: String,
    old_id: String,
}

async fn serving_v1() -> Scene {
    require_lab();
    let mut cleanup = Cleanup::default();
    let (name, volume, network) = (unique("web"), unique("vol"), unique("net"));
    cleanup.container(&name);
    cleanup.volume(&volume);
    cleanup.network(&network);

    let (listener, url) = Dockhand::bind();
    let registry = Registry::start(&format!("{url}/hooks/registry")).await;
    let repo = unique("app");
    let v1 = registry.push("v1", &repo, "v1");
    let port = free_port();
    run_v1(&v1, &name, port, &volume, &network);
    let dockhand = Dockhand::start(listener, &config(&registry.image(&repo), &name)).await;
    let served = format!("http://127.0.0.1:{port}/");
    wait_serving(&served, "v1").await;
    let old_id = inspect(&name, "{{.Id}}");
    Scene {
        _cleanup: cleanup,
        name,
        network,
        registry,
        repo,
        dockhand,
        served,
        old_id,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_replaces_the_container_and_keeps_its_config_and_data() {
    let Scene {
        _cleanup,
        name,
        network,
        registry,
        repo,
        dockhand,
        served,
        old_id,
    } = serving_v1().await;

    registry.push("v2", &repo, "v2");

    let d = &dockhand.wait_tag_ended("v2", Duration::from_secs(90)).await;
    assert_state(&dockhand, d, DeployState::Succeeded).await;
    assert_eq!((d.target.as_str(), d.tag.as_str()), ("web", "v2"));
    assert!(
        d.digest
            .as_deref()
            .is_some_and(|x| x.starts_with("sha256:")),
        "{d:?}"
    );
    assert_eq!(get_text(&served).await.as_deref(), Some("v2"));

    // A new container under the same name, with everything the user gave the old one.
    assert_ne!(inspect(&name, "{{.Id}}"), old_id);
    assert_eq!(
        inspect(&name, "{{.Config.Image}}"),
        format!("{}:v2", registry.image(&repo))
    );
    let env = inspect(&name, "{{json .Config.Env}}");
    assert!(env.contains("APP_MODE=production"), "{env}");
    assert_eq!(inspect(&name, "{{index .Config.Labels \"team\"}}"), "web");
    assert_eq!(
        inspect(&name, "{{.HostConfig.RestartPolicy.Name}}"),
        "unless-stopped"
    );
    let aliases = inspect(
        &name,
        &format!("{{{{json (index .NetworkSettings.Networks \"{network}\").Aliases}}}}"),
    );
    assert!(aliases.contains("webapp"), "{aliases}");
    assert_eq!(docker(&["exec", &name, "cat", "/srv/data.txt"]), "keep-me");
    assert_eq!(
        docker(&["exec", &name, "cat", "/data/anon.txt"]),
        "anon",
        "the anonymous volume was kept"
    );
    // The old container is gone, nothing is left parked.
    assert!(docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("name=^/{name}-dockhand-old-")
    ])
    .is_empty());

    // The registry also delivered the v1 push (made before dockhand listened: it retried),
    // which was a no-op. The pushes' blob and pull events, and those of dockhand's own
    // pull, deployed nothing.
    // (Were both queued at once, v2 would supersede v1: also correct.)
    let all = dockhand.deployments().await;
    let summary: Vec<_> = all.iter().map(|d| (d.tag.as_str(), d.state)).collect();
    assert_eq!(summary.len(), 2, "{summary:?}");
    assert!(
        matches!(
            summary[0],
            ("v1", DeployState::Skipped | DeployState::Superseded)
        ),
        "{summary:?}"
    );
    assert_eq!(summary[1], ("v2", DeployState::Succeeded));
    let log = dockhand.log_of(d.id).await;
    assert!(log.contains("pulling") && log.contains("healthy"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_that_exits_at_once_leaves_the_old_container_serving() {
    let Scene {
        _cleanup,
        name,
        network: _,
        registry,
        repo,
        dockhand,
        served,
        old_id,
    } = serving_v1().await;

    registry.push("crash", &repo, "v2-broken");

    let d = &dockhand
        .wait_tag_ended("v2-broken", Duration::from_secs(90))
        .await;
    assert_state(&dockhand, d, DeployState::RolledBack).await;
    let message = d.message.clone().unwrap_or_default();
    assert!(
        message.contains("exited") && message.contains("restored"),
        "{message}"
    );

    // The very same old container is back under its name and serves v1.
    assert_eq!(inspect(&name, "{{.Id}}"), old_id);
    assert_eq!(inspect(&name, "{{.State.Running}}"), "true");
    wait_serving(&served, "v1").await;
    assert_eq!(docker(&["exec", &name, "cat", "/srv/data.txt"]), "keep-me");
    // No broken container is left behind.
    let all = docker(&[
        "ps",
        "-a",
        "--format",
        "{{.Names}}",
        "--filter",
        &format!("name={name}"),
    ]);
    assert_eq!(all, name, "only the original container remains");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_to_a_container_that_does_not_exist_fails_clearly() {
    require_lab();
    let (listener, url) = Dockhand::bind();
    let registry = Registry::start(&format!("{url}/hooks/registry")).await;
    let repo = unique("app");
    let missing = unique("missing");
    let dockhand = Dockhand::start(listener, &config(&registry.image(&repo), &missing)).await;

    registry.push("v1", &repo, "v1");

    let d = &dockhand.wait_all_ended(1, Duration::from_secs(60)).await[0];
    assert_state(&dockhand, d, DeployState::Failed).await;
    let message = d.message.clone().unwrap_or_default();
    assert!(
        message.contains(&missing) && message.contains("does not exist"),
        "{message}"
    );
}
