//! Dry runs: a real hook goes through the real front door, policy, queue and state file;
//! each deployment's log says what would be done, it ends `dry_run`, and the engine is
//! never called: not by the deploy, not at start-up recovery, not by `/healthz`.

mod common;

use common::*;
use dockhand::app::App;
use dockhand::config::Config;
use dockhand::event::ImagePushed;
use dockhand::reference::ImageName;
use dockhand::store::{DeployState, Recorded, Store};
use std::path::Path;
use std::time::Duration;

/// The captured Distribution v2.8 delivery of `docker push 127.0.0.1:5000/app:v2`
/// (shared/fixtures), byte for byte, with its content type.
fn captured_push_v2() -> (String, Vec<u8>) {
    let path = format!(
        "{}/../shared/fixtures/distribution-v2.8-push-capture.jsonl",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path)
        .or_else(|_| {
            std::fs::read_to_string("/work/shared/fixtures/distribution-v2.8-push-capture.jsonl")
        })
        .expect("fixture");
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        let body = v["body"].as_str().expect("body");
        if body.contains("\"action\": \"push\"") && body.contains("\"tag\": \"v2\"") {
            let ct = v["headers"]["Content-Type"].as_str().expect("content type");
            return (ct.to_string(), body.as_bytes().to_vec());
        }
    }
    panic!("no push of v2 in the capture");
}

/// The digest the captured push of v2 names.
const V2_DIGEST: &str = "sha256:f33c41704ad9da6ea2d6d8f4ad317a8e611f9d0f3dc7076758e19d4f7ca4a7c7";
const ADMIN: &str = "dry-run-admin";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_push_is_dry_run_logged_and_never_reaches_the_engine() {
    require_lab();
    let mut cleanup = Cleanup::default();
    // A real container that a real deploy would replace: it must stay as it is.
    let boxed = unique("dry");
    cleanup.container(&boxed);
    docker(&["run", "-d", "--name", &boxed, &format!("{APP}:v1")]);
    let before = inspect(&boxed, "{{.Id}} {{.Config.Image}} {{.State.StartedAt}}");
    let service = unique("nosvc"); // does not exist: a real deploy would fail

    let (listener, url) = Dockhand::bind();
    let dockhand = Dockhand::start_with_server(
        listener,
        &format!("admin_token = \"{ADMIN}\""),
        &format!(
            r#"
[[hooks]]
name = "registry"
source = "distribution"
token = "{TOKEN}"

[[hooks]]
name = "ci"
source = "generic"
token = "{TOKEN}"

[[targets]]
name = "web"
kind = "service"
service = "{service}"
image = "127.0.0.1:5000/app"
dry_run = true

[[targets]]
name = "box"
kind = "container"
container = "{boxed}"
image = "127.0.0.1:5000/app"
tags = "v*"
dry_run = true
"#
        ),
    )
    .await;
    let engine = dockhand.app().engine.clone();
    assert_eq!(engine.calls(), 0, "start-up called the engine");

    // 1. The registry's own delivery of a push of v2 (with its digest).
    let (content_type, body) = captured_push_v2();
    let r = reqwest::Client::new()
        .post(format!("{url}/hooks/registry"))
        .bearer_auth(TOKEN)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 202);
    let answer: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        answer["queued"].as_array().map(Vec::len),
        Some(2),
        "{answer}"
    );

    let ended = dockhand.wait_all_ended(2, Duration::from_secs(20)).await;
    let v2 = format!("127.0.0.1:5000/app:v2@{V2_DIGEST}");
    for d in &ended {
        assert_state(&dockhand, d, DeployState::DryRun).await;
        assert_eq!(d.digest.as_deref(), Some(V2_DIGEST), "the pinned digest");
        let message = d.message.clone().unwrap_or_default();
        assert!(
            message.contains(&format!(" to {v2}; nothing was changed")),
            "{message}"
        );
        let log = dockhand.log_of(d.id).await;
        assert!(
            log.starts_with(&format!(
                "dry run of 127.0.0.1:5000/app:v2 on {}: nothing is changed",
                d.target
            )),
            "{log}"
        );
        assert!(log.contains("no deploy of it is recorded"), "{log}");
        assert!(log.ends_with(&format!("dry_run: {message}")), "{log}");
    }
    let (web, boxd) = (&ended[0], &ended[1]);
    assert_eq!((web.target.as_str(), boxd.target.as_str()), ("web", "box"));
    let log = dockhand.log_of(web.id).await;
    assert!(
        log.contains(&format!("Swarm service '{service}' runs whatever"))
            && log.contains(&format!("would update the service's image to {v2}")),
        "{log}"
    );
    let log = dockhand.log_of(boxd.id).await;
    assert!(
        log.contains(&format!("container '{boxed}' runs whatever"))
            && log.contains(&format!("would pull 127.0.0.1:5000/app@{V2_DIGEST}")),
        "{log}"
    );

    // 2. A CI push of v3 (no digest): from the last dry run's image to the new one.
    let (status, _) = post_generic(&url, "ci", "127.0.0.1:5000/app", "v3").await;
    assert_eq!(status, 202);
    let ended = dockhand.wait_all_ended(4, Duration::from_secs(20)).await;
    let v3 = ended
        .iter()
        .find(|d| d.target == "web" && d.tag == "v3")
        .expect("v3 on web");
    assert_state(&dockhand, v3, DeployState::DryRun).await;
    let message = v3.message.clone().unwrap_or_default();
    assert_eq!(
        message,
        format!("would update Swarm service '{service}' from {v2} to 127.0.0.1:5000/app:v3; nothing was changed")
    );
    let log = dockhand.log_of(v3.id).await;
    assert!(
        log.contains(&format!("(per deployment {}, which ended dry_run)", web.id))
            && log.contains("would ask the registry for the digest of 127.0.0.1:5000/app:v3"),
        "{log}"
    );

    // 3. A rollback of a dry-run target is a dry run back to the previous image.
    let api = reqwest::Client::new();
    let r = api
        .post(format!("{url}/api/targets/web/rollback"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("rollback");
    assert_eq!(r.status().as_u16(), 202);
    let back = dockhand.wait_all_ended(5, Duration::from_secs(20)).await;
    let back = back.last().expect("the rollback");
    assert_state(&dockhand, back, DeployState::DryRun).await;
    assert_eq!(
        (back.tag.as_str(), back.digest.as_deref()),
        ("v2", Some(V2_DIGEST))
    );
    assert!(
        back.message
            .as_deref()
            .is_some_and(|m| m.contains(&format!("from 127.0.0.1:5000/app:v3 to {v2}"))),
        "{back:?}"
    );

    // 4. History shows them as dry runs, the health check does not ask the engine.
    let listed: serde_json::Value = api
        .get(format!("{url}/api/deployments?state=dry_run"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("history")
        .json()
        .await
        .expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(5), "{listed}");
    let health: serde_json::Value = api
        .get(format!("{url}/healthz"))
        .send()
        .await
        .expect("healthz")
        .json()
        .await
        .expect("json");
    assert_eq!(health["engine"], "not used: every target is a dry run");

    assert_eq!(engine.calls(), 0, "a dry run called the Engine API");
    assert_eq!(
        inspect(&boxed, "{{.Id}} {{.Config.Image}} {{.State.StartedAt}}"),
        before,
        "the container was touched"
    );
}

fn event(tag: &str) -> ImagePushed {
    ImagePushed {
        image: ImageName::parse("127.0.0.1:5000/app").expect("image"),
        tag: tag.into(),
        digest: None,
        delivery: Some(format!("left-running-{tag}")),
        callback_url: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_left_running_on_dry_run_targets_are_recovered_without_the_engine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.db");
    // A previous process died during two deploys: a dry run (which changed nothing) and a
    // real rollout that had begun before its target was made a dry run.
    let (dry_id, real_id) = {
        let store = Store::open(&state).expect("store");
        let mut ids = Vec::new();
        for (tag, target) in [("v2", "dry"), ("v3", "was-real")] {
            let Recorded::Queued(q) = store
                .record_event(
                    "h",
                    "generic",
                    &event(tag),
                    vec![target.into()],
                    Duration::ZERO,
                )
                .await
                .expect("record")
            else {
                panic!("taken for a replay");
            };
            let (claimed, _) = store
                .claim_next(target)
                .await
                .expect("claim")
                .expect("queued");
            assert_eq!(claimed.id, q[0].id);
            ids.push(claimed.id);
        }
        store
            .log(ids[0], "dry run of 127.0.0.1:5000/app:v2 on dry: nothing is changed and the engine is not called".into())
            .await
            .expect("log");
        store
            .log(ids[1], "deploying 127.0.0.1:5000/app:v3 to was-real".into())
            .await
            .expect("log");
        (ids[0], ids[1])
    };
    let config = Config::from_toml(
        &format!(
            r#"
[server]
state = "{}"

[[targets]]
name = "dry"
kind = "service"
service = "{}"
image = "127.0.0.1:5000/app"
dry_run = true

[[targets]]
name = "was-real"
kind = "container"
container = "web-1"
image = "127.0.0.1:5000/app"
dry_run = true
"#,
            state.display(),
            unique("nosvc")
        ),
        "test",
        Path::new("."),
    )
    .expect("config");
    let (listener, _) = Dockhand::bind();
    let app = App::start(config, Some(listener)).await.expect("start");
    let store = app.store.clone();
    let ended = wait_for("both deploys to end", Duration::from_secs(20), || {
        let store = store.clone();
        async move {
            let a = store.deployment(dry_id).await.ok().flatten()?;
            let b = store.deployment(real_id).await.ok().flatten()?;
            (a.state.is_terminal() && b.state.is_terminal()).then_some((a, b))
        }
    })
    .await;
    let (dry, real) = ended;
    assert_eq!(dry.state, DeployState::DryRun, "{dry:?}");
    assert_eq!(real.state, DeployState::Interrupted, "{real:?}");
    let message = real.message.unwrap_or_default();
    assert!(
        message.contains("the engine was not asked how it ended")
            && message.contains("docker ps -a --filter name=web-1")
            && message.contains(&format!("web-1-dockhand-old-{real_id}")),
        "{message}"
    );
    let lines: Vec<String> = store
        .logs(dry_id)
        .await
        .expect("logs")
        .into_iter()
        .map(|l| l.line)
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("the target is a dry run, so the engine is not asked"))
            && lines
                .iter()
                .any(|l| l == "a dry run changes nothing; queued again"),
        "{lines:#?}"
    );
    assert_eq!(app.engine.calls(), 0, "recovery called the Engine API");
    app.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_dry_run_needs_no_engine_at_all() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A config written for real deploys; --dry-run alone makes them dry runs, and an engine
    // that cannot be reached does not matter.
    let daemon = Daemon::start_with(
        dir.path(),
        "",
        &format!(
            r#"
[[hooks]]
name = "ci"
source = "generic"
token = "{TOKEN}"

[[targets]]
name = "web"
kind = "container"
container = "{}"
image = "127.0.0.1:5000/app"
"#,
            unique("absent")
        ),
        &[("DOCKER_HOST", "unix:///nonexistent/dockhand-dry-run.sock")],
        &["--dry-run"],
    )
    .await;
    let health = reqwest::get(format!("{}/healthz", daemon.url))
        .await
        .expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
    let (status, answer) = post_generic(&daemon.url, "ci", "127.0.0.1:5000/app", "v2").await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["queued"][0]["id"].as_i64().expect("id");
    let store = daemon.store();
    let d = wait_for("the dry run to end", Duration::from_secs(20), || {
        let store = store.clone();
        async move {
            store
                .deployment(id)
                .await
                .ok()
                .flatten()
                .filter(|d| d.state.is_terminal())
        }
    })
    .await;
    assert_eq!(d.state, DeployState::DryRun, "{d:?}\n{}", daemon.log());
    let log = daemon.log();
    assert!(
        log.contains("--dry-run: every target is a dry run")
            && log.contains("1 of 1 targets are dry runs")
            && !log.contains("cannot reach the Docker Engine"),
        "{log}"
    );
}
