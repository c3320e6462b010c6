//! `update_order = "start-first"` for container targets, on the real engine: the new
//! container runs beside the old one, which is stopped only once the new one is healthy;
//! a failed release never stops the old one; a container on a host port is refused.

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
update_order = "start-first"
stop_timeout = "5s"
timeout = "60s"
"#
    )
}

/// A v1 container reached by name on a user network (no host port), a registry notifying
/// a dockhand that deploys it start-first.
struct Scene {
    _cleanup: Cleanup,
    name: String,
    network: String,
    registry: Registry,
    repo: String,
    dockhand: Dockhand,
    old_id: String,
    /// When the test began, for `docker events --since`.
    since: String,
}

async fn on_a_network(publish: Option<u16>) -> Scene {
    require_lab();
    let since = docker(&["system", "info", "--format", "{{.SystemTime}}"]);
    let mut cleanup = Cleanup::default();
    let (name, volume, network) = (unique("web"), unique("vol"), unique("net"));
    cleanup.container(&name);
    cleanup.volume(&volume);
    cleanup.network(&network);
    let (listener, url) = Dockhand::bind();
    let registry = Registry::start(&format!("{url}/hooks/registry")).await;
    let repo = unique("app");
    let v1 = registry.push("v1", &repo, "v1");
    docker(&["network", "create", &network]);
    let port = publish.map(|p| format!("127.0.0.1:{p}:8080"));
    let volume_arg = format!("{volume}:/srv");
    let mut args = vec!["run", "-d", "--name", &name, "--network", &network];
    args.extend(["--network-alias", "webapp", "-v", &volume_arg]);
    if let Some(p) = &port {
        args.extend(["-p", p]);
    }
    args.push(&v1);
    docker(&args);
    docker(&["exec", &name, "sh", "-c", "echo keep-me > /srv/data.txt"]);
    let dockhand = Dockhand::start(listener, &config(&registry.image(&repo), &name)).await;
    wait_for("v1 to be healthy", Duration::from_secs(30), || async {
        (inspect(&name, "{{.State.Health.Status}}") == "healthy").then_some(())
    })
    .await;
    let old_id = inspect(&name, "{{.Id}}");
    Scene {
        _cleanup: cleanup,
        name,
        network,
        registry,
        repo,
        dockhand,
        old_id,
        since,
    }
}

/// What the container at `name` serves, asked over its address on `network` (as a
/// reverse proxy in that network would).
async fn served_on(network: &str, name: &str) -> Option<String> {
    let ip = inspect(
        name,
        &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
    );
    get_text(&format!("http://{ip}:8080/")).await
}

/// `(time in ns, action)` of the engine's events for one container since `since`.
fn events(container_id: &str, since: &str) -> Vec<(u128, String)> {
    let until = docker(&["system", "info", "--format", "{{.SystemTime}}"]);
    docker(&[
        "events",
        "--since",
        since,
        "--until",
        &until,
        "--filter",
        &format!("container={container_id}"),
        "--format",
        "{{.TimeNano}} {{.Action}}",
    ])
    .lines()
    .filter_map(|l| {
        let (t, a) = l.split_once(' ')?;
        Some((t.parse().ok()?, a.to_string()))
    })
    .collect()
}

fn first(events: &[(u128, String)], action: &str) -> Option<u128> {
    events
        .iter()
        .find(|(_, a)| a.starts_with(action))
        .map(|(t, _)| *t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_container_stops_only_once_the_new_one_is_healthy() {
    let s = on_a_network(None).await;

    s.registry.push("v2", &s.repo, "v2");
    let d = &s
        .dockhand
        .wait_tag_ended("v2", Duration::from_secs(90))
        .await;
    assert_state(&s.dockhand, d, DeployState::Succeeded).await;

    // The new container has the name, the old one's alias, volume and data, and serves v2.
    let new_id = inspect(&s.name, "{{.Id}}");
    assert_ne!(new_id, s.old_id);
    assert_eq!(served_on(&s.network, &s.name).await.as_deref(), Some("v2"));
    let aliases = inspect(
        &s.name,
        &format!(
            "{{{{json (index .NetworkSettings.Networks \"{}\").Aliases}}}}",
            s.network
        ),
    );
    assert!(aliases.contains("webapp"), "{aliases}");
    assert_eq!(
        docker(&["exec", &s.name, "cat", "/srv/data.txt"]),
        "keep-me"
    );
    let leftovers = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("name=^/{}-dockhand-", s.name),
    ]);
    assert!(leftovers.is_empty(), "nothing left beside it: {leftovers}");

    // The order, from the engine's own event log: the new container was healthy before
    // the old one was sent its stop signal.
    let new_events = events(&new_id, &s.since);
    let old_events = events(&s.old_id, &s.since);
    let healthy = first(&new_events, "health_status: healthy")
        .unwrap_or_else(|| panic!("no healthy event for the new container: {new_events:?}"));
    let killed = first(&old_events, "kill")
        .unwrap_or_else(|| panic!("no kill event for the old container: {old_events:?}"));
    assert!(
        healthy < killed,
        "the old container was stopped {} ms before the new one was healthy",
        (healthy - killed) / 1_000_000
    );
    let log = s.dockhand.log_of(d.id).await;
    assert!(log.contains("beside the old one"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_that_exits_at_once_never_stops_the_old_container() {
    let s = on_a_network(None).await;
    let started = inspect(&s.name, "{{.State.StartedAt}}");

    s.registry.push("crash", &s.repo, "v2-broken");
    let d = &s
        .dockhand
        .wait_tag_ended("v2-broken", Duration::from_secs(90))
        .await;
    assert_state(&s.dockhand, d, DeployState::RolledBack).await;
    let message = d.message.clone().unwrap_or_default();
    assert!(message.contains("kept serving"), "{message}");

    // The very same container, never stopped or restarted, still serving v1.
    assert_eq!(inspect(&s.name, "{{.Id}}"), s.old_id);
    assert_eq!(inspect(&s.name, "{{.State.StartedAt}}"), started);
    assert_eq!(served_on(&s.network, &s.name).await.as_deref(), Some("v1"));
    let old_events = events(&s.old_id, &s.since);
    assert!(
        first(&old_events, "kill").is_none() && first(&old_events, "stop").is_none(),
        "the old container was never signalled: {old_events:?}"
    );
    let leftovers = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("name=^/{}-dockhand-", s.name),
    ]);
    assert!(
        leftovers.is_empty(),
        "the broken container was removed: {leftovers}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_on_a_host_port_is_refused_and_left_alone() {
    let s = on_a_network(Some(free_port())).await;

    s.registry.push("v2", &s.repo, "v2");
    let d = &s
        .dockhand
        .wait_tag_ended("v2", Duration::from_secs(90))
        .await;
    assert_state(&s.dockhand, d, DeployState::Failed).await;
    let message = d.message.clone().unwrap_or_default();
    assert!(
        message.contains("host port") && message.contains("stop-first"),
        "{message}"
    );
    assert_eq!(inspect(&s.name, "{{.Id}}"), s.old_id);
    assert_eq!(inspect(&s.name, "{{.State.Running}}"), "true");
}

/// Log lines of a start-first deploy after which dockhand is killed, one round each.
const MOMENTS: &[&str] = &[
    "beside the old one",
    "keeps serving until it is up",
    "stopping the old container",
    "removed the old container",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_each_step_of_a_start_first_deploy_loses_nothing() {
    require_lab();
    let mut cleanup = Cleanup::default();
    let (name, network) = (unique("k9sf"), unique("net"));
    cleanup.container(&name);
    cleanup.network(&network);
    let registry = Registry::start_silent().await;
    let repo = unique("app");
    let v1 = registry.push_versions(&repo, &["v1", "v2", "v3"]);
    docker(&["network", "create", &network]);
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        &network,
        "-v",
        "/data",
        &v1,
    ]);
    docker(&["exec", &name, "sh", "-c", "echo survives > /data/f"]);
    let image = registry.image(&repo);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "[[hooks]]\nname = \"ci\"\nsource = \"generic\"\ntoken = \"{TOKEN}\"\n[[targets]]\nname = \"web\"\nkind = \"container\"\ncontainer = \"{name}\"\nimage = \"{image}\"\ntimeout = \"60s\"\nstop_timeout = \"5s\"\nupdate_order = \"start-first\"\n"
    );
    let mut daemon = Daemon::start(dir.path(), "dedupe_window = \"0s\"", &config).await;
    let store = daemon.store();
    let mut current = "v1";
    for (round, moment) in MOMENTS.iter().enumerate() {
        let (next, after) = if current == "v2" {
            ("v3", "v2")
        } else {
            ("v2", "v3")
        };
        let (d1, d2) = kill9_round(&mut daemon, &store, &image, next, after, moment).await;
        for (d, newest) in [(d1, false), (d2, true)] {
            let fine = if newest {
                matches!(d.state, DeployState::Succeeded | DeployState::Skipped)
            } else {
                matches!(
                    d.state,
                    DeployState::Succeeded | DeployState::RolledBack | DeployState::Superseded
                )
            };
            assert!(
                fine,
                "round {round} (kill after '{moment}'): {d:?}\n{}",
                daemon.log()
            );
        }
        wait_for(
            "the newest tag to serve",
            Duration::from_secs(20),
            || async { served_on(&network, &name).await.filter(|v| v == after) },
        )
        .await;
        assert_eq!(
            docker(&["exec", &name, "cat", "/data/f"]),
            "survives",
            "round {round}"
        );
        let leftovers = docker(&["ps", "-aq", "--filter", &format!("name=^/{name}-dockhand-")]);
        assert!(leftovers.is_empty(), "round {round}: {leftovers}");
        current = after;
    }
    assert!(store.running().await.expect("running").is_empty());
}
