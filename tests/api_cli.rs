//! The REST API and the CLI that drives it, against a running `dockhand serve` and the
//! real engine: every command, its output and exit status, and the auth failures.

mod common;

use common::*;
use std::process::{Command, Output};
use std::time::Duration;

const ADMIN: &str = "adm-token-for-tests";
const BIN: &str = env!("CARGO_BIN_EXE_dockhand");

fn cli(url: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("DOCKHAND_URL", url)
        .env_remove("DOCKHAND_TOKEN");
    if let Some(t) = token {
        c.env("DOCKHAND_TOKEN", t);
    }
    c.output().expect("run dockhand")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cli_command_against_a_running_daemon() {
    require_lab();
    let mut cleanup = Cleanup::default();
    let name = unique("cli");
    cleanup.container(&name);
    let registry = Registry::start_silent().await;
    let repo = unique("app");
    let v1 = registry.push_versions(&repo, &["v1", "v2", "v3"]);
    registry.push("crash", &repo, "v9");
    let port = free_port();
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-p",
        &format!("127.0.0.1:{port}:8080"),
        &v1,
    ]);
    let served = format!("http://127.0.0.1:{port}/");

    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "[[hooks]]\nname = \"ci\"\nsource = \"generic\"\ntoken = \"{TOKEN}\"\n\n[[targets]]\nname = \"web\"\nkind = \"container\"\ncontainer = \"{name}\"\nimage = \"{}\"\ntags = \"v*\"\ntimeout = \"60s\"\n",
        registry.image(&repo)
    );
    let daemon = Daemon::start(dir.path(), &format!("admin_token = \"{ADMIN}\""), &config).await;
    let url = daemon.url.clone();

    // Auth: no token, a wrong one, and a hook's secret are all refused (exit 2).
    for token in [None, Some("wrong"), Some(TOKEN)] {
        let o = cli(&url, token, &["status"]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("refused the token"),
            "{}",
            text(&o)
        );
    }
    // Unreachable daemon: exit 2 with what to do.
    let o = cli("http://127.0.0.1:9", Some(ADMIN), &["status"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot reach dockhand"),
        "{}",
        text(&o)
    );

    // status: the target and what it runs now.
    let o = cli(&url, Some(ADMIN), &["status"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("TARGET") && out.contains("web") && out.contains(&format!("{v1} (running)")),
        "{out}"
    );

    // deploy --wait: progress, then the outcome; exit 0; the container serves v2.
    let o = cli(&url, Some(ADMIN), &["deploy", "web", "v2", "--wait"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("pulling") && out.contains(": succeeded: container"),
        "{out}"
    );
    assert_eq!(get_text(&served).await.as_deref(), Some("v2"));
    let o = cli(&url, Some(ADMIN), &["deploy", "web", "v3", "--wait"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(get_text(&served).await.as_deref(), Some("v3"));

    // A broken release waited on: exit 1, rolled back, v3 still serving.
    let o = cli(&url, Some(ADMIN), &["deploy", "web", "v9", "--wait"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("rolled_back"),
        "{}",
        text(&o)
    );
    assert_eq!(get_text(&served).await.as_deref(), Some("v3"));

    // rollback: the previous successful image (v2), not the failed one.
    let o = cli(&url, Some(ADMIN), &["rollback", "web", "--wait"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(":v2 to web"),
        "{}",
        text(&o)
    );
    assert_eq!(get_text(&served).await.as_deref(), Some("v2"));

    // history: a table, and JSON for scripts, newest first.
    let o = cli(&url, Some(ADMIN), &["history", "web"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with("ID") && out.contains("rolled_back"),
        "{out}"
    );
    let o = cli(&url, Some(ADMIN), &["history", "web", "--json"]);
    let history: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let states: Vec<&str> = history
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|d| d["state"].as_str())
        .collect();
    assert_eq!(
        states,
        ["succeeded", "rolled_back", "succeeded", "succeeded"]
    );
    let o = cli(
        &url,
        Some(ADMIN),
        &["history", "--state", "rolled_back", "--json"],
    );
    let only: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(only.as_array().map(Vec::len), Some(1));
    let o = cli(&url, Some(ADMIN), &["history", "--state", "bogus"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unknown state"),
        "{}",
        text(&o)
    );

    // logs, and logs --follow of an ended deployment (exit by its outcome).
    let first = history[3]["id"].as_i64().expect("id");
    let failed = history[1]["id"].as_i64().expect("id");
    let o = cli(&url, Some(ADMIN), &["logs", &first.to_string()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("the new container is healthy"),
        "{}",
        text(&o)
    );
    let o = cli(
        &url,
        Some(ADMIN),
        &["logs", &failed.to_string(), "--follow"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("exited"),
        "{}",
        text(&o)
    );
    let o = cli(&url, Some(ADMIN), &["logs", "999999"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no deployment 999999"),
        "{}",
        text(&o)
    );

    // Refusals: a tag outside the rule, an unknown target.
    let o = cli(&url, Some(ADMIN), &["deploy", "web", "latest"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("takes tags 'v*'"),
        "{}",
        text(&o)
    );
    let o = cli(&url, Some(ADMIN), &["deploy", "nope", "v2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no target 'nope'"),
        "{}",
        text(&o)
    );

    // A deploy by digest alone: the tag it was deployed under is found.
    let v3_digest = history[2]["digest"].as_str().expect("digest").to_string();
    let o = cli(
        &url,
        Some(ADMIN),
        &["deploy", "web", "--digest", &v3_digest, "--wait", "--json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(get_text(&served).await.as_deref(), Some("v3"));

    // The API directly: the live log as server-sent events ends with an `end` event.
    let r = reqwest::Client::new()
        .get(format!("{url}/api/deployments/{first}/log?follow=1"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("get");
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let body = tokio::time::timeout(Duration::from_secs(10), r.text())
        .await
        .expect("ends")
        .expect("body");
    assert!(
        body.contains("event: line") && body.contains("event: end"),
        "{body}"
    );
    let r = reqwest::Client::new()
        .get(format!("{url}/api/targets"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("get");
    let targets: serde_json::Value = r.json().await.expect("json");
    assert_eq!(targets[0]["running"]["tag"], "v3");
    assert!(
        targets[0]["running"]["digest"]
            .as_str()
            .is_some_and(|d| d == v3_digest),
        "{targets}"
    );
    assert!(
        !daemon.log().contains(ADMIN),
        "the admin token leaked into the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_admin_token_the_api_is_off() {
    let (listener, url) = Dockhand::bind();
    let _dockhand = Dockhand::start(
        listener,
        &format!("[[hooks]]\nname = \"ci\"\nsource = \"generic\"\ntoken = \"{TOKEN}\"\n"),
    )
    .await;
    for path in ["/api/targets", "/api/deployments", "/api/deployments/1"] {
        let r = reqwest::Client::new()
            .get(format!("{url}{path}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status().as_u16(), 404, "{path}");
        let body: serde_json::Value = r.json().await.expect("json");
        assert!(
            body["error"].as_str().unwrap_or("").contains("API is off"),
            "{body}"
        );
    }
    let r = reqwest::Client::new()
        .post(format!("{url}/api/targets/web/deploy"))
        .json(&serde_json::json!({"tag": "v2"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 404);
}
