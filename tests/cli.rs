//! The `dockhand` binary as a user runs it: `check` against the real engine, and `serve`
//! starting (and deploying with a clear failure) while the engine is unreachable.

mod common;

use common::*;
use dockhand::store::{DeployState, Store};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_dockhand");

fn write_config(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("dockhand.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn check_reports_each_target_and_exits_by_what_it_found() {
    require_lab();
    let mut cleanup = Cleanup::default();
    let name = unique("chk");
    cleanup.container(&name);
    docker(&["run", "-d", "--name", &name, &format!("{APP}:v1")]);
    let missing = unique("nosvc");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(
        dir.path(),
        &format!(
            r#"
[[hooks]]
name = "registry"
source = "distribution"
token = "x"

[[targets]]
name = "web"
kind = "container"
container = "{name}"
image = "{APP}"

[[targets]]
name = "api"
kind = "service"
service = "{missing}"
image = "127.0.0.1:5000/api"
"#
        ),
    );
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("valid (1 hooks, 2 targets"), "{stdout}");
    assert!(
        stdout.contains(&format!("container {name} runs {APP}:v1 (running)")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("service {missing} does not exist yet")),
        "{stdout}"
    );

    // DOCKHAND_CONFIG works as --config does; with every target present, exit 0.
    let path = write_config(
        dir.path(),
        &format!("[[targets]]\nname = \"web\"\nkind = \"container\"\ncontainer = \"{name}\"\nimage = \"{APP}\"\n"),
    );
    let out = Command::new(BIN)
        .arg("check")
        .env("DOCKHAND_CONFIG", &path)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn check_points_at_the_bad_key_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(
        dir.path(),
        "[[targets]]\nname = \"web\"\nkind = \"service\"\nservice = \"web\"\nimage = \"127.0.0.1:5000/app:v2\"\n",
    );
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("targets.web.image") && stderr.contains("tags"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_without_an_engine_and_fails_deploys_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let state = dir.path().join("state.db");
    let path = write_config(
        dir.path(),
        &format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
state = "{}"
retry_attempts = 2

[[hooks]]
name = "ci"
source = "generic"
token = "{TOKEN}"

[[targets]]
name = "web"
kind = "container"
container = "web"
image = "127.0.0.1:5000/app"
"#,
            state.display()
        ),
    );
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .env(
            "DOCKER_HOST",
            format!("unix://{}/no-docker.sock", dir.path().display()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dockhand");
    let base = format!("http://127.0.0.1:{port}");

    // It listens, and /healthz says what is wrong.
    let health = wait_for("dockhand to listen", Duration::from_secs(20), || async {
        reqwest::get(format!("{base}/healthz")).await.ok()
    })
    .await;
    assert_eq!(health.status().as_u16(), 503);
    let body: serde_json::Value = health.json().await.expect("json");
    assert_eq!(body["state_file"], "ok");
    assert!(
        body["engine"]
            .as_str()
            .unwrap_or("")
            .contains("cannot reach the Docker Engine"),
        "{body}"
    );

    let r = reqwest::Client::new()
        .post(format!("{base}/hooks/ci"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"image": "127.0.0.1:5000/app", "tag": "v2"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 202);
    let answer: serde_json::Value = r.json().await.expect("json");
    let id = answer["queued"][0]["id"].as_i64().expect("id");

    // The state file is shared (WAL): read the outcome as the daemon recorded it.
    let store = Store::open(&state).expect("open state");
    let d = wait_for("the deploy to fail", Duration::from_secs(30), || {
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
    assert_eq!(d.state, DeployState::Failed);
    assert!(
        d.message
            .as_deref()
            .unwrap_or("")
            .contains("cannot reach the Docker Engine"),
        "{d:?}"
    );

    // SIGTERM (to the pid we started) stops it cleanly.
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr"), &mut stderr)
        .expect("read");
    assert!(
        stderr.contains("deploys will fail until it is up"),
        "{stderr}"
    );
    assert!(!stderr.contains(TOKEN), "the secret leaked into the log");
}
