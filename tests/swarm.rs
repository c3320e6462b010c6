//! A registry push rolls a new image out to a Swarm service on the real engine, and a
//! broken release is reported as the engine left it.

mod common;

use common::*;
use dockhand::store::DeployState;
use std::time::Duration;

fn config(image: &str, service: &str) -> String {
    format!(
        r#"
[[hooks]]
name = "registry"
source = "distribution"
token = "{TOKEN}"

[[targets]]
name = "web"
kind = "service"
service = "{service}"
image = "{image}"
tags = "v*"
timeout = "120s"
"#
    )
}

/// The IPs of the service's running tasks on `network` (reachable from the host, since it
/// is a swarm-scoped bridge network: the routing mesh does not work on this kernel).
fn task_ips(service: &str, network: &str) -> Vec<String> {
    let ids = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.swarm.service.name={service}"),
    ]);
    ids.split_whitespace()
        .filter_map(|id| {
            let ip = docker(&[
                "inspect",
                "-f",
                &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
                id,
            ]);
            (!ip.is_empty()).then_some(ip)
        })
        .collect()
}

/// Asks every running task what it serves.
async fn versions_served(service: &str, network: &str) -> Vec<String> {
    let mut out = Vec::new();
    for ip in task_ips(service, network) {
        if let Some(v) = get_text(&format!("http://{ip}:8080/")).await {
            out.push(v);
        }
    }
    out
}

fn create_service(name: &str, network: &str, image: &str, extra: &[&str]) {
    docker(&[
        "network",
        "create",
        "-d",
        "bridge",
        "--scope",
        "swarm",
        "--attachable",
        network,
    ]);
    let mut args = vec![
        "service",
        "create",
        "-d",
        "--quiet",
        "--name",
        name,
        "--network",
        network,
        "--replicas",
        "2",
        "--update-order",
        "start-first",
        "--update-parallelism",
        "1",
        "--update-monitor",
        "3s",
    ];
    args.extend_from_slice(extra);
    args.push(image);
    docker(&args);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_rolls_the_service_out_and_every_task_serves_it() {
    require_lab();
    let mut cleanup = Cleanup::default();
    let (service, network) = (unique("svc"), unique("snet"));
    cleanup.service(&service);
    cleanup.network(&network);

    let (listener, url) = Dockhand::bind();
    let registry = Registry::start(&format!("{url}/hooks/registry")).await;
    let repo = unique("app");
    let v1 = registry.push("v1", &repo, "v1");
    create_service(&service, &network, &v1, &[]);
    let dockhand = Dockhand::start(listener, &config(&registry.image(&repo), &service)).await;
    wait_for(
        "both v1 tasks to serve",
        Duration::from_secs(60),
        || async {
            let v = versions_served(&service, &network).await;
            (v == ["v1", "v1"]).then_some(())
        },
    )
    .await;

    registry.push("v2", &repo, "v2");

    let d = dockhand
        .wait_tag_ended("v2", Duration::from_secs(150))
        .await;
    assert_state(&dockhand, &d, DeployState::Succeeded).await;
    let digest = d
        .digest
        .clone()
        .expect("the digest from the registry's event");
    // The service is pinned to exactly what was pushed, and kept its UpdateConfig.
    assert_eq!(
        inspect(&service, "{{.Spec.TaskTemplate.ContainerSpec.Image}}"),
        format!("{}:v2@{digest}", registry.image(&repo))
    );
    assert_eq!(
        inspect(&service, "{{.Spec.UpdateConfig.Order}}"),
        "start-first"
    );
    assert_eq!(inspect(&service, "{{.UpdateStatus.State}}"), "completed");
    // Every running task answers v2.
    wait_for(
        "both tasks to serve v2",
        Duration::from_secs(30),
        || async {
            let v = versions_served(&service, &network).await;
            (v == ["v2", "v2"]).then_some(())
        },
    )
    .await;
    let log = dockhand.log_of(d.id).await;
    assert!(
        log.contains("start-first") && log.contains("update completed"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_release_is_reported_as_the_engine_left_it() {
    require_lab();
    let mut cleanup = Cleanup::default();
    let (paused, rolled, network) = (unique("svc"), unique("svc"), unique("snet"));
    cleanup.service(&paused);
    cleanup.service(&rolled);
    cleanup.network(&network);

    let (listener, url) = Dockhand::bind();
    let registry = Registry::start(&format!("{url}/hooks/registry")).await;
    let repo = unique("app");
    let v1 = registry.push("v1", &repo, "v1");
    // One service with the engine's default failure action (pause), one that rolls back.
    create_service(&paused, &network, &v1, &["--replicas", "1"]);
    docker(&[
        "service",
        "create",
        "-d",
        "--quiet",
        "--name",
        &rolled,
        "--network",
        &network,
        "--update-order",
        "start-first",
        "--update-monitor",
        "3s",
        "--update-failure-action",
        "rollback",
        &v1,
    ]);
    let config = format!(
        "{}\n[[targets]]\nname = \"web2\"\nkind = \"service\"\nservice = \"{rolled}\"\nimage = \"{}\"\ntags = \"v*\"\ntimeout = \"120s\"\n",
        config(&registry.image(&repo), &paused),
        registry.image(&repo)
    );
    let dockhand = Dockhand::start(listener, &config).await;
    for s in [&paused, &rolled] {
        wait_for("v1 to serve", Duration::from_secs(60), || async {
            (versions_served(s, &network).await == ["v1"]).then_some(())
        })
        .await;
    }

    registry.push("crash", &repo, "v2-broken");

    let store = dockhand.app().store.clone();
    let ended = wait_for(
        "both deploys of v2-broken to end",
        Duration::from_secs(150),
        || {
            let store = store.clone();
            async move {
                let d: Vec<_> = store
                    .deployments(None, 100)
                    .await
                    .ok()?
                    .into_iter()
                    .filter(|d| d.tag == "v2-broken")
                    .collect();
                (d.len() == 2 && d.iter().all(|d| d.state.is_terminal())).then_some(d)
            }
        },
    )
    .await;
    let by_target = |t: &str| {
        ended
            .iter()
            .find(|d| d.target == t)
            .cloned()
            .expect("deployment")
    };

    let p = by_target("web");
    assert_state(&dockhand, &p, DeployState::Failed).await;
    assert!(
        p.message.as_deref().unwrap_or("").contains("paused"),
        "{p:?}"
    );
    assert_eq!(inspect(&paused, "{{.UpdateStatus.State}}"), "paused");

    let r = by_target("web2");
    assert_state(&dockhand, &r, DeployState::RolledBack).await;
    assert!(
        r.message.as_deref().unwrap_or("").contains("rolled"),
        "{r:?}"
    );
    // Rolled back: the engine's spec is v1 again and the task serves v1.
    assert_eq!(
        inspect(&rolled, "{{.Spec.TaskTemplate.ContainerSpec.Image}}")
            .split('@')
            .next(),
        Some(v1.as_str())
    );
    wait_for(
        "the rolled-back service to serve v1",
        Duration::from_secs(60),
        || async { (versions_served(&rolled, &network).await == ["v1"]).then_some(()) },
    )
    .await;
    // The log says why: the broken task's state and the engine's reason.
    let log = dockhand.log_of(p.id).await;
    assert!(
        log.lines()
            .any(|l| l.starts_with("task ") && (l.contains("failed") || l.contains("rejected"))),
        "{log}"
    );
}
