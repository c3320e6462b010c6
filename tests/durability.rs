//! Nothing lost, nothing doubled: replays, bursts, `kill -9` mid-deploy and SIGTERM, with
//! the real `dockhand` binary, the real engine and a real registry.

mod common;

use common::*;
use dockhand::store::{DeployState, Deployment};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::time::Duration;

const EVENTS_V2: &str = "application/vnd.docker.distribution.events.v2+json";

fn distribution_push(id: &str, repo: &str, tag: &str) -> String {
    format!(
        r#"{{"events":[{{"id":"{id}","action":"push","target":{{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","repository":"{repo}","tag":"{tag}"}},"request":{{"host":"127.0.0.1:5000"}}}}]}}"#
    )
}

async fn post_distribution(url: &str, body: String) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{url}/hooks/registry"))
        .bearer_auth(TOKEN)
        .header("content-type", EVENTS_V2)
        .body(body)
        .send()
        .await
        .expect("post");
    (r.status().as_u16(), r.json().await.expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_delivery_twice_makes_one_deploy() {
    let (listener, url) = Dockhand::bind();
    let config = format!(
        "[[hooks]]\nname = \"registry\"\nsource = \"distribution\"\ntoken = \"{TOKEN}\"\n[[hooks]]\nname = \"ci\"\nsource = \"generic\"\ntoken = \"{TOKEN}\"\n[[targets]]\nname = \"app\"\nkind = \"container\"\ncontainer = \"{}\"\nimage = \"127.0.0.1:5000/app\"\nretry_attempts = 1\n",
        unique("absent")
    )
    .replace("retry_attempts = 1\n", "");
    let dockhand = Dockhand::start(listener, &config).await;

    let body = distribution_push("delivery-1", "app", "v2");
    let (s, first) = post_distribution(&url, body.clone()).await;
    assert_eq!(s, 202, "{first}");
    let id = first["queued"][0]["id"].as_i64().expect("id");
    // The registry retries (say its first answer was lost): acknowledged, nothing new.
    let (s, again) = post_distribution(&url, body).await;
    assert_eq!(s, 200, "{again}");
    assert!(
        again["ignored"].as_str().unwrap_or("").contains("replay"),
        "{again}"
    );
    assert_eq!(again["duplicate_of"][0]["id"].as_i64(), Some(id));

    // Without a delivery id (generic), the same content twice within the window is one.
    let (s, _) = post_generic(&url, "ci", "127.0.0.1:5000/app", "v3").await;
    assert_eq!(s, 202);
    let (s, again) = post_generic(&url, "ci", "127.0.0.1:5000/app", "v3").await;
    assert_eq!(s, 200, "{again}");
    assert!(again["duplicate_of"].is_array(), "{again}");

    let all = dockhand.deployments().await;
    let tags: Vec<&str> = all.iter().map(|d| d.tag.as_str()).collect();
    assert_eq!(tags, ["v2", "v3"]);
    assert_eq!(dockhand.app().store.event_count().await.expect("count"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_ends_every_target_on_its_newest_tag_with_at_most_two_deploys() {
    require_lab();
    const TARGETS: usize = 4;
    const PER_TARGET: usize = 75;
    let mut cleanup = Cleanup::default();
    let registry = Registry::start_silent().await;
    let mut config =
        format!("[[hooks]]\nname = \"registry\"\nsource = \"distribution\"\ntoken = \"{TOKEN}\"\n");
    let mut targets = Vec::new();
    for i in 0..TARGETS {
        let repo = unique("burst");
        let v1 = registry.push_versions(&repo, &["v1", "v2", "v3"]);
        let name = unique("burst");
        cleanup.container(&name);
        docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--health-cmd",
            "sleep 2; wget -qO- http://127.0.0.1:8080/",
            "--health-interval",
            "1s",
            "--health-timeout",
            "5s",
            &v1,
        ]);
        config.push_str(&format!(
            "[[targets]]\nname = \"t{i}\"\nkind = \"container\"\ncontainer = \"{name}\"\nimage = \"{}\"\nhealthy_for = \"1s\"\n",
            registry.image(&repo)
        ));
        targets.push((repo, name));
    }
    let (listener, url) = Dockhand::bind();
    let dockhand = Dockhand::start(listener, &config).await;

    // Hundreds of distinct events (distinct delivery ids) for a handful of targets at
    // once: the whole burst must arrive while the first deploys still run, which the
    // containers' slow health check (a probe takes 2 s) guarantees even on a busy machine.

    // All at once (32 in flight), interleaved across targets, tags alternating.
    let started = std::time::Instant::now();
    let client = reqwest::Client::new();
    let requests = (0..PER_TARGET).flat_map(|n| {
        targets.iter().enumerate().map(move |(i, (repo, _))| {
            let tag = if n % 2 == 0 { "v3" } else { "v2" };
            (format!("burst-{i}-{n}"), repo.clone(), tag)
        })
    });
    let port = registry.port;
    futures_util::stream::iter(requests)
        .map(|(id, repo, tag)| {
            let client = client.clone();
            let url = url.clone();
            async move {
                let body = distribution_push(&id, &repo, tag)
                    .replace("127.0.0.1:5000", &format!("127.0.0.1:{port}"));
                let r = client
                    .post(format!("{url}/hooks/registry"))
                    .bearer_auth(TOKEN)
                    .header("content-type", EVENTS_V2)
                    .body(body)
                    .send()
                    .await
                    .expect("post");
                assert_eq!(r.status().as_u16(), 202);
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    let sent_in = started.elapsed();

    let total = TARGETS * PER_TARGET;
    let all = dockhand
        .wait_all_ended(total, Duration::from_secs(120))
        .await;
    assert_eq!(all.len(), total, "every event has its deployment on record");
    assert_eq!(
        dockhand.app().store.event_count().await.expect("count") as usize,
        total
    );
    let mut by_target: HashMap<&str, Vec<&Deployment>> = HashMap::new();
    for d in &all {
        by_target.entry(d.target.as_str()).or_default().push(d);
    }
    for (i, (_, name)) in targets.iter().enumerate() {
        let ds = &by_target[format!("t{i}").as_str()];
        let ran: Vec<_> = ds
            .iter()
            .filter(|d| d.state != DeployState::Superseded)
            .collect();
        assert!(ran.len() <= 2, "t{i} deployed {} times: {ran:?}", ran.len());
        assert!(
            ran.iter()
                .all(|d| matches!(d.state, DeployState::Succeeded | DeployState::Skipped)),
            "{ran:?}"
        );
        // The newest recorded event's tag ran (or was found already deployed: skipped).
        let newest = ds.iter().max_by_key(|d| d.id).expect("newest");
        assert!(
            matches!(newest.state, DeployState::Succeeded | DeployState::Skipped),
            "{newest:?}"
        );

        assert!(inspect(name, "{{.Config.Image}}").ends_with(&format!(":{}", newest.tag)));
    }
    eprintln!("burst: {total} events for {TARGETS} targets sent in {sent_in:?}");
}

/// The log lines a container deploy passes, in order: a kill after each is a different
/// moment of the swap.
const CONTAINER_MOMENTS: &[&str] = &[
    "pulling",
    "renamed the old container",
    "created container",
    "stopping the old container",
    "started the new container",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_container_deploy_loses_nothing() {
    require_lab();
    let mut cleanup = Cleanup::default();
    let name = unique("k9");
    cleanup.container(&name);
    let registry = Registry::start_silent().await;
    let repo = unique("app");
    let v1 = registry.push_versions(&repo, &["v1", "v2", "v3"]);
    let port = free_port();
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-p",
        &format!("127.0.0.1:{port}:8080"),
        "-v",
        "/data",
        &v1,
    ]);
    docker(&["exec", &name, "sh", "-c", "echo survives > /data/f"]);
    let served = format!("http://127.0.0.1:{port}/");
    let image = registry.image(&repo);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "[[hooks]]\nname = \"ci\"\nsource = \"generic\"\ntoken = \"{TOKEN}\"\n[[targets]]\nname = \"web\"\nkind = \"container\"\ncontainer = \"{name}\"\nimage = \"{image}\"\ntimeout = \"60s\"\n"
    );
    // Rounds alternate v2 and v3: a resend of the same tag is a new push here.
    let mut daemon = Daemon::start(dir.path(), "dedupe_window = \"0s\"", &config).await;
    let store = daemon.store();

    let mut current = "v1";

    for (round, moment) in CONTAINER_MOMENTS.iter().enumerate() {
        // Deploy the tag not running now, then queue the other one behind it.
        let (next, after) = if current == "v2" {
            ("v3", "v2")
        } else {
            ("v2", "v3")
        };

        // A deploy is under way, and a newer push waits behind it; kill -9, restart.
        let (d1, d2) = kill9_round(&mut daemon, &store, &image, next, after, moment).await;
        // Finished, undone, or (when nothing of it had happened) superseded by the
        // newer push once queued again.
        assert!(
            matches!(
                d1.state,
                DeployState::Succeeded | DeployState::RolledBack | DeployState::Superseded
            ),
            "round {round} (kill after '{moment}'): {d1:?}\n{}",
            daemon.log()
        );
        // The newer push always lands (skipped when the container already ran it because
        // the first deploy was undone and superseded).
        assert!(
            matches!(d2.state, DeployState::Succeeded | DeployState::Skipped),
            "round {round} (kill after '{moment}'): {d2:?}"
        );

        wait_for(
            "the newest tag to serve",
            Duration::from_secs(20),
            || async { get_text(&served).await.filter(|v| v == after) },
        )
        .await;
        assert_eq!(
            docker(&["exec", &name, "cat", "/data/f"]),
            "survives",
            "round {round}"
        );
        let leftovers = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("name=^/{name}-dockhand-old-"),
        ]);
        assert!(
            leftovers.is_empty(),
            "round {round}: a parked container was left"
        );
        current = after;
    }
    assert!(store.running().await.expect("running").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_swarm_deploy_is_finished_after_restart() {
    require_lab();
    let mut cleanup = Cleanup::default();
    let (service, network) = (unique("k9svc"), unique("k9net"));
    cleanup.service(&service);
    cleanup.network(&network);
    let registry = Registry::start_silent().await;
    let repo = unique("app");
    let v1 = registry.push_versions(&repo, &["v1", "v2", "v3"]);
    docker(&[
        "network",
        "create",
        "-d",
        "bridge",
        "--scope",
        "swarm",
        "--attachable",
        &network,
    ]);
    docker(&[
        "service",
        "create",
        "-d",
        "--quiet",
        "--name",
        &service,
        "--network",
        &network,
        "--update-order",
        "start-first",
        "--update-monitor",
        "2s",
        &v1,
    ]);
    let image = registry.image(&repo);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "[[hooks]]\nname = \"ci\"\nsource = \"generic\"\ntoken = \"{TOKEN}\"\n[[targets]]\nname = \"svc\"\nkind = \"service\"\nservice = \"{service}\"\nimage = \"{image}\"\ntimeout = \"120s\"\n"
    );
    let mut daemon = Daemon::start(dir.path(), "", &config).await;
    let store = daemon.store();

    // Killed while the engine rolls out (followed after restart), and before the update
    // was sent (run again after restart).
    for (tag, moment) in [("v2", "updating service"), ("v3", "service ")] {
        let (s, a) = post_generic(&daemon.url, "ci", &image, tag).await;
        assert_eq!(s, 202, "{a}");
        let id = a["queued"][0]["id"].as_i64().expect("id");
        wait_for_line(&store, id, moment).await;
        daemon.kill9();
        daemon.restart().await;
        let d = wait_ended(&store, id).await;
        assert_eq!(
            d.state,
            DeployState::Succeeded,
            "kill after '{moment}': {d:?}\n{}",
            daemon.log()
        );
        let spec = inspect(&service, "{{.Spec.TaskTemplate.ContainerSpec.Image}}");
        assert!(
            spec.starts_with(&format!("{image}:{tag}@sha256:")),
            "{spec}"
        );
        assert_eq!(inspect(&service, "{{.UpdateStatus.State}}"), "completed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_running_deploy_finish_and_keeps_the_queue() {
    require_lab();
    let mut cleanup = Cleanup::default();
    let (a, b) = (unique("term"), unique("term"));
    cleanup.container(&a);
    cleanup.container(&b);
    let registry = Registry::start_silent().await;
    let repo = unique("app");
    let v1 = registry.push_versions(&repo, &["v1", "v2"]);
    docker(&["run", "-d", "--name", &a, &v1]);
    docker(&["run", "-d", "--name", &b, &v1]);
    let image = registry.image(&repo);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "[[hooks]]\nname = \"ci\"\nsource = \"generic\"\ntoken = \"{TOKEN}\"\n[[targets]]\nname = \"a\"\nkind = \"container\"\ncontainer = \"{a}\"\nimage = \"{image}\"\n"
    );
    let mut daemon = Daemon::start(dir.path(), "shutdown_grace = \"60s\"", &config).await;
    let store = daemon.store();
    let (s, r) = post_generic(&daemon.url, "ci", &image, "v2").await;
    assert_eq!(s, 202, "{r}");
    let id = r["queued"][0]["id"].as_i64().expect("id");
    wait_for_line(&store, id, "started the new container").await;

    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log());
    let d = store.deployment(id).await.expect("store").expect("row");
    assert_eq!(d.state, DeployState::Succeeded, "{d:?}");
    assert!(inspect(&a, "{{.Config.Image}}").ends_with(":v2"));
    assert!(daemon.log().contains("letting running deploys finish"));
}
