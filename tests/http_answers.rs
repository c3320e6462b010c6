//! Every answer of `POST /hooks/{name}`, with real payloads, and proof that nothing refused
//! or ignored reaches the engine.

mod common;

use common::*;
use dockhand::store::DeployState;
use reqwest::{Client, Method};
use serde_json::Value;
use std::time::Duration;

const LIMIT: usize = 4096;

fn config(missing_container: &str) -> String {
    format!(
        r#"
[[hooks]]
name = "ci"
source = "generic"
token = "{TOKEN}"

[[hooks]]
name = "registry"
source = "distribution"
token = "{TOKEN}"

[[hooks]]
name = "hub"
source = "dockerhub"
token = "{TOKEN}"

[[targets]]
name = "app"
kind = "container"
container = "{missing_container}"
image = "127.0.0.1:5000/app"
tags = "v*"
"#
    )
}

struct Call<'a> {
    method: Method,
    path: &'a str,
    auth: Option<&'a str>,
    content_type: Option<&'a str>,
    body: Vec<u8>,
}

impl<'a> Call<'a> {
    fn post(path: &'a str, body: impl Into<Vec<u8>>) -> Self {
        Call {
            method: Method::POST,
            path,
            auth: Some(TOKEN),
            content_type: Some("application/json"),
            body: body.into(),
        }
    }
    fn content_type(mut self, ct: Option<&'a str>) -> Self {
        self.content_type = ct;
        self
    }
    fn auth(mut self, token: Option<&'a str>) -> Self {
        self.auth = token;
        self
    }
    async fn send(self, base: &str) -> (u16, Value) {
        let mut req = Client::new().request(self.method, format!("{base}{}", self.path));
        if let Some(t) = self.auth {
            req = req.bearer_auth(t);
        }
        if let Some(ct) = self.content_type {
            req = req.header("content-type", ct);
        }
        let r = req.body(self.body).send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, json)
    }
}

const EVENTS_V1: &str = "application/vnd.docker.distribution.events.v1+json";
const EVENTS_V2: &str = "application/vnd.docker.distribution.events.v2+json";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../shared/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

/// The bodies of the captured v2.8 deliveries that are not a tagged manifest push.
fn captured_non_pushes() -> Vec<String> {
    String::from_utf8(fixture("distribution-v2.8-push-capture.jsonl"))
        .expect("utf8")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("json")["body"]
                .as_str()
                .expect("body")
                .to_string()
        })
        .filter(|b| !(b.contains("\"action\": \"push\"") && b.contains("\"tag\"")))
        .collect()
}

fn push_event(repo: &str, tag: &str) -> String {
    format!(
        r#"{{"events":[{{"id":"e-{tag}","action":"push","target":{{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:{}","repository":"{repo}","tag":"{tag}"}},"request":{{"host":"127.0.0.1:5000"}}}}]}}"#,
        "ab".repeat(32)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_its_status_and_reason_and_never_reaches_the_engine() {
    let (listener, url) = Dockhand::bind();
    let missing = unique("missing");
    let dockhand = Dockhand::start_with_server(
        listener,
        &format!("body_limit = {LIMIT}"),
        &config(&missing),
    )
    .await;
    let ok_body = r#"{"image":"127.0.0.1:5000/app","tag":"v2"}"#;

    // 404 unknown hook, and unknown routes.
    let (s, b) = Call::post("/hooks/nope", ok_body).send(&url).await;
    assert_eq!((s, b["error"].as_str()), (404, Some("no such hook")));
    let (s, _) = Call::post("/elsewhere", ok_body).send(&url).await;
    assert_eq!(s, 404);

    // 405 wrong method, with Allow.
    let r = Client::new()
        .get(format!("{url}/hooks/ci"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(r.headers()["allow"], "POST");

    // 401: no secret, wrong secret (bearer and query); the answer never echoes it.
    let (s, b) = Call::post("/hooks/ci", ok_body).auth(None).send(&url).await;
    assert_eq!(s, 401);
    assert!(
        b["error"].as_str().unwrap_or("").contains("missing secret"),
        "{b}"
    );
    let (s, b) = Call::post("/hooks/ci", ok_body)
        .auth(Some("guess-me"))
        .send(&url)
        .await;
    assert_eq!((s, b["error"].as_str()), (401, Some("wrong secret")));
    let (s, b) = Call::post("/hooks/ci?token=guess-me", ok_body)
        .auth(None)
        .send(&url)
        .await;
    assert_eq!(s, 401);
    assert!(!b.to_string().contains("guess-me"));
    // The secret of one hook does not open another.
    // 415: the generic source takes JSON; Distribution its events media types.
    let (s, b) = Call::post("/hooks/ci", ok_body)
        .content_type(Some("text/plain"))
        .send(&url)
        .await;
    assert_eq!(s, 415, "{b}");
    let (s, b) = Call::post("/hooks/registry", push_event("app", "v2"))
        .send(&url)
        .await;
    assert_eq!(s, 415, "{b}");
    assert!(
        b["error"].as_str().unwrap_or("").contains("events.v1+json"),
        "{b}"
    );

    // 413: over the limit, whether declared or streamed without a length.
    let big = format!(
        r#"{{"image":"127.0.0.1:5000/app","tag":"v2","pad":"{}"}}"#,
        "x".repeat(LIMIT)
    );
    let (s, b) = Call::post("/hooks/ci", big.clone()).send(&url).await;
    assert_eq!(s, 413, "{b}");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .into_bytes()
        .chunks(512)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let r = Client::new()
        .post(format!("{url}/hooks/ci"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("streamed post");
    assert_eq!(r.status().as_u16(), 413);

    // 400: malformed bodies, with the reason.
    for (body, reason) in [
        ("{", "EOF"),
        ("[]", "JSON object"),
        (r#"{"tag":"v2"}"#, "image"),
        (
            r#"{"image":"127.0.0.1:5000/app","tag":"../../etc/passwd"}"#,
            "tag",
        ),
        (
            r#"{"image":"127.0.0.1:5000/app","tag":"v2","digest":"sha256:nope"}"#,
            "digest",
        ),
    ] {
        let (s, b) = Call::post("/hooks/ci", body).send(&url).await;
        assert_eq!(s, 400, "{body}: {b}");
        assert!(
            b["error"].as_str().unwrap_or("").contains(reason),
            "{body}: {b}"
        );
    }
    let (s, _) = Call::post("/hooks/registry", "{\"events\":5}")
        .content_type(Some(EVENTS_V1))
        .send(&url)
        .await;
    assert_eq!(s, 400);

    // 422: the image is a target's, the tag is not.
    let (s, b) = Call::post(
        "/hooks/ci",
        r#"{"image":"127.0.0.1:5000/app","tag":"latest"}"#,
    )
    .send(&url)
    .await;
    assert_eq!(s, 422, "{b}");
    assert!(b["error"].as_str().unwrap_or("").contains("v*"), "{b}");

    // 200 ignored: an image nobody runs; every blob and pull event of a real push; a
    // Docker Hub push for an image nobody runs.
    let (s, b) = Call::post(
        "/hooks/ci",
        r#"{"image":"127.0.0.1:5000/other","tag":"v2"}"#,
    )
    .send(&url)
    .await;
    assert_eq!(s, 200, "{b}");
    assert!(
        b["ignored"].as_str().unwrap_or("").contains("no target"),
        "{b}"
    );
    let non_pushes = captured_non_pushes();
    assert_eq!(non_pushes.len(), 22);
    for body in non_pushes {
        let (s, b) = Call::post("/hooks/registry", body)
            .content_type(Some(EVENTS_V1))
            .send(&url)
            .await;
        assert_eq!(s, 200, "{b}");
        assert!(b["ignored"].is_string(), "{b}");
    }
    for f in [
        "distribution-1.json",
        "distribution-2.json",
        "distribution-3.json",
    ] {
        let (s, b) = Call::post("/hooks/registry", fixture(f))
            .content_type(Some(EVENTS_V2))
            .send(&url)
            .await;
        assert_eq!(s, 200, "{f}: {b}");
    }
    let (s, b) = Call::post(
        "/hooks/hub?token=test-s3cret-token",
        fixture("docker-hub-1.json"),
    )
    .auth(None)
    .send(&url)
    .await;
    assert_eq!(s, 200, "{b}");
    // A registry is answered 200 for a refused tag: it would retry a 4xx forever and
    // hold back every later notification.
    let (s, b) = Call::post("/hooks/registry", push_event("app", "latest"))
        .content_type(Some(EVENTS_V2))
        .send(&url)
        .await;
    assert_eq!(s, 200, "{b}");
    assert!(
        b["ignored"].as_str().unwrap_or("").contains("refused"),
        "{b}"
    );

    assert_eq!(
        dockhand.app().engine.calls(),
        0,
        "a refused or ignored request reached the engine"
    );
    assert!(dockhand.deployments().await.is_empty());

    // 202: queued, listed, and the answer does not wait for the deploy.
    let (s, b) = Call::post("/hooks/registry", push_event("app", "v7"))
        .content_type(Some(EVENTS_V2))
        .send(&url)
        .await;
    assert_eq!(s, 202, "{b}");
    let q = &b["queued"][0];
    assert_eq!(
        (q["target"].as_str(), q["image"].as_str(), q["tag"].as_str()),
        (Some("app"), Some("127.0.0.1:5000/app"), Some("v7"))
    );
    let id = q["id"].as_i64().expect("id");
    // The target's container does not exist: the deploy fails with a clear message.
    require_lab();
    let d = dockhand.wait_ended(id, Duration::from_secs(30)).await;
    assert_eq!(d.state, DeployState::Failed);
    assert!(
        d.message.as_deref().unwrap_or("").contains(&missing),
        "{d:?}"
    );
}
