//! Docker Hub payloads (the fixtures, as published) drive real deploys, and the outcome
//! reaches the callback URL.
//!
//! No image can come from Docker Hub here, so the lab configures dockerd with a registry
//! mirror for docker.io (scripts/lab.sh): the engine pulls `svendowideit/testhook:latest`
//! from it exactly as it would from Docker Hub.

mod common;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use common::*;
use dockhand::store::DeployState;
use std::time::Duration;
use tokio::sync::mpsc;

/// A local callback receiver: every JSON body POSTed to `/cb` comes out of the channel.
async fn callback_receiver() -> (String, mpsc::UnboundedReceiver<serde_json::Value>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new()
        .route(
            "/cb/{hook}/",
            post(
                |State(tx): State<mpsc::UnboundedSender<serde_json::Value>>,
                 Json(body): Json<serde_json::Value>| async move {
                    let _ = tx.send(body);
                    "ok"
                },
            ),
        )
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/cb/hook-2141b5bi5i5b02bec211i4eeih0242eg11000a/",
        listener.local_addr().expect("addr")
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

/// The fixture's bytes with only its callback URL pointed at the local receiver.
fn fixture_with_callback(name: &str, callback: &str) -> Vec<u8> {
    let path = format!("{}/../shared/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture");
    let published = "https://registry.hub.docker.com/u/svendowideit/testhook/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/";
    assert!(text.contains(published));
    text.replace(published, callback).into_bytes()
}

fn config(container: &str) -> String {
    format!(
        r#"
[[hooks]]
name = "hub"
source = "dockerhub"
token = "{TOKEN}"

[[targets]]
name = "testhook"
kind = "container"
container = "{container}"
image = "svendowideit/testhook"
timeout = "60s"
"#
    )
}

async fn post_hook(url: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{url}/hooks/hub?token={TOKEN}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("post");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json answer"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_hub_push_deploys_and_calls_back_success() {
    require_lab();
    let mut cleanup = Cleanup::default();
    let name = unique("hub");
    cleanup.container(&name);
    push_to_hub_mirror("v1", "svendowideit/testhook", "latest");
    docker(&["pull", "-q", "svendowideit/testhook:latest"]);
    let port = free_port();
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-p",
        &format!("127.0.0.1:{port}:8080"),
        "svendowideit/testhook:latest",
    ]);
    let served = format!("http://127.0.0.1:{port}/");
    wait_serving(&served, "v1").await;

    let (callback, mut calls) = callback_receiver().await;
    let (listener, url) = Dockhand::bind();
    let dockhand = Dockhand::start(listener, &config(&name)).await;
    // Docker Hub has a new `latest`.
    push_to_hub_mirror("v2", "svendowideit/testhook", "latest");

    let (status, answer) =
        post_hook(&url, fixture_with_callback("docker-hub-1.json", &callback)).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["queued"][0]["target"], "testhook");
    assert_eq!(
        answer["queued"][0]["image"],
        "docker.io/svendowideit/testhook"
    );
    assert_eq!(answer["queued"][0]["tag"], "latest");

    let body = tokio::time::timeout(Duration::from_secs(90), calls.recv())
        .await
        .expect("a callback within 90s")
        .expect("callback body");
    assert_eq!(body["state"], "success", "{body}");
    assert_eq!(body["context"], "dockhand");
    assert!(
        body["description"]
            .as_str()
            .unwrap_or("")
            .contains("testhook: succeeded"),
        "{body}"
    );
    assert_eq!(get_text(&served).await.as_deref(), Some("v2"));
    let d = &dockhand.deployments().await[0];
    assert_state(&dockhand, d, DeployState::Succeeded).await;
    // Docker Hub sends no digest: the deploy records the one it pulled.
    assert!(
        d.digest
            .as_deref()
            .is_some_and(|x| x.starts_with("sha256:")),
        "{d:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_docker_hub_deploy_calls_back_failure() {
    require_lab();
    let (callback, mut calls) = callback_receiver().await;
    let (listener, url) = Dockhand::bind();
    let missing = unique("missing");
    let dockhand = Dockhand::start(listener, &config(&missing)).await;

    // The older published form (float timestamps, legacy `images`) parses the same way.
    let (status, answer) =
        post_hook(&url, fixture_with_callback("docker-hub-2.json", &callback)).await;
    assert_eq!(status, 202, "{answer}");

    let body = tokio::time::timeout(Duration::from_secs(60), calls.recv())
        .await
        .expect("a callback within 60s")
        .expect("callback body");
    assert_eq!(body["state"], "failure", "{body}");
    let d = &dockhand.deployments().await[0];
    assert_state(&dockhand, d, DeployState::Failed).await;
    assert!(
        d.message
            .as_deref()
            .unwrap_or("")
            .contains("does not exist"),
        "{d:?}"
    );
}
