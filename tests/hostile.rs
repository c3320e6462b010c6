//! A hostile-request corpus for the front door, `POST /hooks/{name}`: close to two thousand
//! malformed, forged, oversized, mis-typed and injection-laden requests against one
//! in-process dockhand with one hook per source, each answered with an exact status (and,
//! for dockhand's own answers, a reason).
//!
//! Every target's image is one a valid fixture names, but its container does not exist and
//! its `tags` glob (`never-*`) refuses every tag the corpus sends, so no case can queue a
//! deploy. The only requests that carry a `never-*` tag are the replays: their original
//! delivery is recorded in the state file first (as the hook records an accepted one, here
//! without deployments), so only recognising the resend as a replay keeps it from queuing a
//! deploy. (A refused delivery is never recorded, so its resend is refused again, not taken
//! for a replay.) At the end no case has reached the Engine API (the `/healthz` liveness
//! probes' own version requests are counted apart), no deployment exists, and no answer has
//! carried a configured secret. Needs no Docker: nothing here reaches the engine.
//!
//! Requests are written on raw TCP, so that framing, paths and header bytes are exactly what
//! the case says (no client normalises them).
//!
//! Cases named `BUG#n` are regressions: this corpus found them (a broken body answered
//! 413 instead of 400; a non-UTF-8 hook name answered in plain text instead of a JSON
//! 404), and they were fixed in src/http/hooks.rs. A failing one is listed apart.

mod common;

use common::*;
use dockhand::event::ImagePushed;
use dockhand::reference::ImageName;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `server.body_limit`.
const LIMIT: usize = 65536;
/// Check that the server still answers after this many cases.
const ALIVE_EVERY: usize = 25;

/// One hook per source, named after it, each with its own secret.
const HOOKS: &[(&str, &str)] = &[
    ("distribution", "dh-dist-9f2c7e1a5b3d-secret"),
    ("dockerhub", "dh-hub-4b8e2d6f0a1c-secret"),
    ("generic", "dh-ci-7a3f9c5e1d2b-secret"),
    ("github", "dh-gh-2e6a0c4f8b1d-secret"),
    ("gitea", "dh-gt-5c9e3a7f1b4d-secret"),
    ("harbor", "dh-hb-8d2f6b0e4a7c-secret"),
    ("quay", "dh-qy-1f5b9d3e7c0a-secret"),
    ("acr", "dh-az-6e0c4a8f2d5b-secret"),
    ("gar", "dh-gc-3a7e1c5f9b2d-secret"),
];
/// A generic hook limited to 10.0.0.0/8 (the test calls from 127.0.0.1).
const FENCED: (&str, &str) = ("fenced", "dh-fenced-0b4f8d2a6e9c-secret");

/// The image of each source's target: the one its valid fixture names.
const IMAGES: &[(&str, &str)] = &[
    ("distribution", "127.0.0.1:5000/app"),
    ("dockerhub", "docker.io/svendowideit/testhook"),
    ("generic", "registry.example.com/team/app"),
    ("github", "ghcr.io/utaitebox/utaitebox-server"),
    ("gitea", "localhost:3000/user1/giteacontainer"),
    ("harbor", "localhost/harbor/alpine"),
    ("quay", "quay.io/dgangaia/test"),
    ("acr", "myregistry.azurecr.io/hello-world"),
    (
        "gar",
        "us-west1-docker.pkg.dev/my-project/my-repo/hello-world",
    ),
];

const EVENTS_V1: &str = "application/vnd.docker.distribution.events.v1+json";
const EVENTS_V2: &str = "application/vnd.docker.distribution.events.v2+json";
const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";
/// GAR's tag field is a full reference: this, `:`, the tag.
const GAR_REF: &str = "us-west1-docker.pkg.dev/my-project/my-repo/hello-world";
/// The key NOTES.md signed the fixtures with (not any hook's secret).
const NOTES_KEY: &str = "It's a Secret to Everybody";

fn secret(hook: &str) -> &'static str {
    HOOKS
        .iter()
        .find(|(h, _)| *h == hook)
        .map(|(_, s)| *s)
        .expect("hook")
}

fn config(missing: &str) -> String {
    let mut c = String::new();
    for (name, token) in HOOKS {
        c += &format!("[[hooks]]\nname = \"{name}\"\nsource = \"{name}\"\ntoken = \"{token}\"\n\n");
    }
    c += &format!(
        "[[hooks]]\nname = \"{}\"\nsource = \"generic\"\ntoken = \"{}\"\nallow_ips = [\"10.0.0.0/8\"]\n\n",
        FENCED.0, FENCED.1
    );
    for (hook, image) in IMAGES {
        c += &format!(
            "[[targets]]\nname = \"t-{hook}\"\nkind = \"container\"\ncontainer = \"{missing}-{hook}\"\n\
             image = \"{image}\"\ntags = \"never-*\"\nhooks = [\"{hook}\"]\n\n"
        );
    }
    c
}

fn fixture(name: &str) -> Vec<u8> {
    let beside = format!("{}/../shared/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&beside)
        .or_else(|_| std::fs::read(format!("/work/shared/fixtures/{name}")))
        .unwrap_or_else(|e| panic!("{beside}: {e}"))
}

/// The captured v2.8 delivery of the manifest push of `127.0.0.1:5000/app:v2`, byte for byte.
fn captured_push() -> Vec<u8> {
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
        .find(|b| b.contains("\"tag\": \"v2\""))
        .expect("the v2 manifest push")
        .into_bytes()
}

fn hmac_hex(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn form(json: &[u8]) -> Vec<u8> {
    let mut s = String::from("payload=");
    s.extend(form_urlencoded::byte_serialize(json));
    s.into_bytes()
}

fn b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn pct(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

fn hex64() -> String {
    "ab".repeat(32)
}

fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn nested_objects(depth: usize) -> String {
    format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
}

/// Replaces the one occurrence of `from` in `body`.
fn replace_once(body: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let hits: Vec<usize> = body
        .windows(from.len())
        .enumerate()
        .filter(|(_, w)| *w == from)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "{} occurs {} times",
        String::from_utf8_lossy(from),
        hits.len()
    );
    let i = hits[0];
    [&body[..i], to, &body[i + from.len()..]].concat()
}

/// Sets `ptr` (a JSON pointer whose parent exists) to `v`.
fn set_ptr(doc: &mut Value, ptr: &str, v: Value) {
    let (parent, key) = ptr.rsplit_once('/').expect("pointer");
    let p = if parent.is_empty() {
        &mut *doc
    } else {
        doc.pointer_mut(parent)
            .unwrap_or_else(|| panic!("no {parent}"))
    };
    match p {
        Value::Object(m) => {
            m.insert(key.to_string(), v);
        }
        Value::Array(a) => {
            let i: usize = key.parse().expect("index");
            a[i] = v;
        }
        other => panic!("{parent} is {other}"),
    }
}

fn remove_ptr(doc: &mut Value, ptr: &str) {
    let (parent, key) = ptr.rsplit_once('/').expect("pointer");
    let p = if parent.is_empty() {
        &mut *doc
    } else {
        doc.pointer_mut(parent).expect("parent")
    };
    p.as_object_mut().expect("object").remove(key);
}

// ---- requests and answers ------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// `Content-Length` of the body.
    Length,
    /// `Transfer-Encoding: chunked`, 4 KiB chunks, terminated.
    Chunked,
    /// `Content-Length: n` whatever the body is (a lie, or a body still to come).
    Declared(u64),
    /// One chunk, and the rest never comes.
    ChunkedUnfinished,
    /// Neither header (no body).
    None,
    /// `Content-Length: n`, the body (shorter), then the client closes its side.
    Truncated(u64),
    /// The request is `raw` exactly.
    Raw,
}

#[derive(Clone, Debug)]
struct Req {
    method: String,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    framing: Framing,
    raw: Vec<u8>,
}

impl Req {
    fn new(method: &str, target: &str) -> Req {
        Req {
            method: method.to_string(),
            target: target.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            framing: Framing::Length,
            raw: Vec::new(),
        }
    }
    fn raw(bytes: impl Into<Vec<u8>>) -> Req {
        let mut r = Req::new("RAW", "");
        r.framing = Framing::Raw;
        r.raw = bytes.into();
        r
    }
    fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Req {
        self.headers
            .push((name.to_string(), value.as_ref().to_vec()));
        self
    }
    fn without(mut self, name: &str) -> Req {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }
    fn replace(self, name: &str, value: impl AsRef<[u8]>) -> Req {
        self.without(name).header(name, value)
    }
    fn body(mut self, body: impl Into<Vec<u8>>) -> Req {
        self.body = body.into();
        self
    }
    fn framing(mut self, f: Framing) -> Req {
        self.framing = f;
        self
    }
    fn method(mut self, m: &str) -> Req {
        self.method = m.to_string();
        self
    }
    fn target(mut self, t: impl Into<String>) -> Req {
        self.target = t.into();
        self
    }
    fn query(mut self, q: &str) -> Req {
        self.target
            .push(if self.target.contains('?') { '&' } else { '?' });
        self.target.push_str(q);
        self
    }
    fn no_query(mut self) -> Req {
        if let Some(i) = self.target.find('?') {
            self.target.truncate(i);
        }
        self
    }
    fn bytes(&self) -> Vec<u8> {
        if self.framing == Framing::Raw {
            return self.raw.clone();
        }
        let mut out = format!(
            "{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n",
            self.method, self.target
        )
        .into_bytes();
        for (n, v) in &self.headers {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        match self.framing {
            Framing::Length => {
                out.extend(format!("Content-Length: {}\r\n\r\n", self.body.len()).bytes());
                out.extend_from_slice(&self.body);
            }
            Framing::Declared(n) | Framing::Truncated(n) => {
                out.extend(format!("Content-Length: {n}\r\n\r\n").bytes());
                out.extend_from_slice(&self.body);
            }
            Framing::Chunked | Framing::ChunkedUnfinished => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                for c in self.body.chunks(4096) {
                    out.extend(format!("{:x}\r\n", c.len()).bytes());
                    out.extend_from_slice(c);
                    out.extend_from_slice(b"\r\n");
                    if self.framing == Framing::ChunkedUnfinished {
                        return out;
                    }
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
            Framing::None => out.extend_from_slice(b"\r\n"),
            Framing::Raw => unreachable!(),
        }
        out
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Parses a complete answer from `buf` (skipping 1xx), or `None` while it is incomplete.
fn parse_answer(mut buf: &[u8], head_only: bool, eof: bool) -> Option<Answer> {
    loop {
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let rest = &buf[end + 4..];
        let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
        if (100..200).contains(&status) {
            buf = rest;
            continue;
        }
        let lower = head.to_ascii_lowercase();
        let header = |name: &str| {
            lower.lines().find_map(|l| {
                l.strip_prefix(&format!("{name}:"))
                    .map(|v| v.trim().to_string())
            })
        };
        if head_only || status == 204 || status == 304 {
            return Some(Answer {
                status,
                head,
                body: Vec::new(),
            });
        }
        if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
            if rest.len() < len {
                return None;
            }
            return Some(Answer {
                status,
                head,
                body: rest[..len].to_vec(),
            });
        }
        if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            let mut body = Vec::new();
            let mut r = rest;
            loop {
                let nl = r.windows(2).position(|w| w == b"\r\n")?;
                let size =
                    usize::from_str_radix(std::str::from_utf8(&r[..nl]).ok()?.trim(), 16).ok()?;
                r = &r[nl + 2..];
                if size == 0 {
                    return Some(Answer { status, head, body });
                }
                if r.len() < size + 2 {
                    return None;
                }
                body.extend_from_slice(&r[..size]);
                r = &r[size + 2..];
            }
        }
        return eof.then(|| Answer {
            status,
            head,
            body: rest.to_vec(),
        });
    }
}

/// Sends `req` on a new connection and reads the answer; `Err` when the connection ended
/// without one. The request is written while the answer is read, so an early answer (413
/// before the body is read) is not lost.
async fn exchange(addr: SocketAddr, req: &Req) -> Result<Answer, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut rd, mut wr) = stream.into_split();
    let bytes = req.bytes();
    let eof = matches!(req.framing, Framing::Truncated(_));
    // The write half is handed back, not dropped, so that an unfinished body stays unfinished.
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&bytes).await;
        let _ = wr.flush().await;
        if eof {
            let _ = wr.shutdown().await;
        }
        wr
    });
    let head_only = req.method == "HEAD";
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16384];
    let read = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if let Some(a) = parse_answer(&buf, head_only, false) {
                return Ok(a);
            }
            match rd.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => {
                    if buf.is_empty() {
                        return Err(format!("closed: {e}"));
                    }
                    break;
                }
            }
        }
        parse_answer(&buf, head_only, true).ok_or_else(|| {
            format!(
                "closed without a complete answer ({} bytes: {:?})",
                buf.len(),
                String::from_utf8_lossy(&buf[..buf.len().min(200)])
            )
        })
    })
    .await
    .unwrap_or_else(|_| Err("no answer within 15 s".to_string()));
    drop(writer);
    read
}

// ---- cases ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Expect {
    /// This status, a JSON object whose `error` (or, for 200, `ignored`) contains the text.
    Json(u16, Option<String>),
    /// This status, whatever the body (HEAD, or hyper answering before dockhand).
    Bare(u16),
    /// The connection closed without an answer, or this status.
    ClosedOr(u16),
}

fn j(status: u16, text: &str) -> Expect {
    Expect::Json(status, (!text.is_empty()).then(|| text.to_string()))
}

struct Case {
    group: &'static str,
    name: String,
    req: Req,
    expect: Expect,
    /// A bug in src/: the expectation is the correct behaviour, not what dockhand does.
    bug: bool,
}

fn case(group: &'static str, name: impl Into<String>, req: Req, expect: Expect) -> Case {
    Case {
        group,
        name: name.into(),
        req,
        expect,
        bug: false,
    }
}

/// Checks one answer against its case.
fn verdict(case: &Case, got: &Result<Answer, String>) -> Result<(), String> {
    if let Ok(a) = got {
        let whole = [a.head.as_bytes(), &a.body].concat();
        let text = String::from_utf8_lossy(&whole);
        for (hook, s) in HOOKS.iter().chain(std::iter::once(&FENCED)) {
            if text.contains(s) {
                return Err(format!("the answer carries hook '{hook}''s secret: {text}"));
            }
        }
        if a.status == 202 {
            return Err(format!("queued a deploy: {text}"));
        }
        if a.status == 405 && !a.head.to_ascii_lowercase().contains("\r\nallow: post") {
            return Err(format!("405 without `Allow: POST`: {}", a.head));
        }
    }
    match (&case.expect, got) {
        (Expect::ClosedOr(_), Err(_)) => Ok(()),
        (Expect::ClosedOr(s) | Expect::Bare(s), Ok(a)) if a.status == *s => Ok(()),
        (Expect::Json(s, text), Ok(a)) if a.status == *s => {
            let v: Value = serde_json::from_slice(&a.body)
                .map_err(|_| format!("{s}, but not JSON: {}", String::from_utf8_lossy(&a.body)))?;
            let field = if *s == 200 { "ignored" } else { "error" };
            let reason = v[field]
                .as_str()
                .ok_or_else(|| format!("{s}, but no \"{field}\" string: {v}"))?;
            match text {
                Some(t) if !reason.contains(t.as_str()) => {
                    Err(format!("{s}, but \"{field}\" lacks '{t}': {v}"))
                }
                _ => Ok(()),
            }
        }
        (want, Ok(a)) => Err(format!(
            "expected {want:?}, got {} {}",
            a.status,
            String::from_utf8_lossy(&a.body[..a.body.len().min(300)])
        )),
        (want, Err(e)) => Err(format!("expected {want:?}, got no answer: {e}")),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// `?token=<secret>` (senders that cannot set headers).
    Query,
    /// GitHub: `X-Hub-Signature-256: sha256=<hex>` over the raw body.
    Hub,
    /// Gitea: `X-Gitea-Signature: <hex>` over the raw body.
    Gitea,
}

/// A source's hook, its valid base payload, and how its sender talks.
struct Src {
    name: &'static str,
    secret: &'static str,
    ct: Option<&'static str>,
    requires_ct: bool,
    style: Style,
    /// Takes `Authorization: <secret>` verbatim too (Harbor, ACR).
    verbatim: bool,
    /// Answers a refused tag 200 instead of 422 (Distribution, GAR).
    acks: bool,
    /// A valid payload, byte for byte a fixture (the generic source has none: the README's
    /// example shape).
    base: Vec<u8>,
    /// What `base` is answered.
    base_expect: (u16, &'static str),
    /// The pointer of the tag in `base`.
    tag_ptr: &'static str,
    /// The pointer of the repository (or image name) in `base`.
    repo_ptr: &'static str,
    /// Source-specific headers a real delivery carries.
    extra: Vec<(&'static str, &'static str)>,
}

impl Src {
    fn path(&self) -> String {
        format!("/hooks/{}", self.name)
    }

    /// A delivery without any secret.
    fn bare(&self, body: impl Into<Vec<u8>>) -> Req {
        let mut r = Req::new("POST", &self.path()).body(body);
        if let Some(ct) = self.ct {
            r = r.header("Content-Type", ct);
        }
        for (n, v) in &self.extra {
            r = r.header(n, v);
        }
        match self.style {
            Style::Hub => r.header("X-GitHub-Delivery", uuid::Uuid::new_v4().to_string()),
            Style::Gitea => r.header("X-Gitea-Delivery", uuid::Uuid::new_v4().to_string()),
            _ => r,
        }
    }

    /// A genuine delivery of `body`.
    fn post(&self, body: impl Into<Vec<u8>>) -> Req {
        let body = body.into();
        let sig = hmac_hex(self.secret, &body);
        let r = self.bare(body);
        match self.style {
            Style::Bearer => r.header("Authorization", format!("Bearer {}", self.secret)),
            Style::Query => r.query(&format!("token={}", self.secret)),
            Style::Hub => r.header("X-Hub-Signature-256", format!("sha256={sig}")),
            Style::Gitea => r.header("X-Gitea-Signature", sig),
        }
    }

    fn ok(&self) -> Expect {
        j(self.base_expect.0, self.base_expect.1)
    }

    fn refused(&self) -> Expect {
        j(if self.acks { 200 } else { 422 }, "is refused")
    }

    fn doc(&self) -> Value {
        serde_json::from_slice(&self.base).expect("base is JSON")
    }

    fn mutate(&self, f: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut v = self.doc();
        f(&mut v);
        serde_json::to_vec(&v).expect("json")
    }

    fn set(&self, ptr: &str, v: Value) -> Vec<u8> {
        self.mutate(|d| set_ptr(d, ptr, v))
    }

    /// `base` with its tag set to `tag` (GAR: the reference's tag; Quay: the only tag).
    fn tagged(&self, tag: &str) -> Vec<u8> {
        match self.name {
            "gar" => self.set("/tag", json!(format!("{GAR_REF}:{tag}"))),
            "quay" => self.set("/updated_tags", json!([tag])),
            _ => self.set(self.tag_ptr, json!(tag)),
        }
    }

    /// The answer to a tag Docker would refuse.
    fn bad_tag(&self) -> Expect {
        match self.name {
            "distribution" | "harbor" | "quay" => j(200, "not a valid tag"),
            "gar" => j(400, "tag:"),
            _ => j(400, "not a valid tag"),
        }
    }

    /// The answer to a repository that is not a valid image name.
    fn bad_repo(&self) -> Expect {
        match self.name {
            "distribution" => j(200, ""),
            _ => j(400, ""),
        }
    }

    /// `base` padded with trailing spaces (still valid JSON) to `len` bytes.
    fn pad_to(&self, len: usize) -> Vec<u8> {
        let mut b = self.base.clone();
        assert!(b.len() <= len);
        b.resize(len, b' ');
        b
    }
}

fn sources() -> Vec<Src> {
    let s = |name: &'static str| secret(name);
    let generic_base = format!(
        r#"{{"image":"registry.example.com/team/app","tag":"v2","digest":"sha256:{}"}}"#,
        hex64()
    );
    vec![
        Src {
            name: "distribution",
            secret: s("distribution"),
            ct: Some(EVENTS_V1),
            requires_ct: true,
            style: Style::Bearer,
            verbatim: false,
            acks: true,
            base: captured_push(),
            base_expect: (200, "is refused"),
            tag_ptr: "/events/0/target/tag",
            repo_ptr: "/events/0/target/repository",
            extra: vec![],
        },
        Src {
            name: "dockerhub",
            secret: s("dockerhub"),
            ct: Some(JSON),
            requires_ct: false,
            style: Style::Query,
            verbatim: false,
            acks: false,
            base: fixture("docker-hub-1.json"),
            base_expect: (422, "is refused"),
            tag_ptr: "/push_data/tag",
            repo_ptr: "/repository/repo_name",
            extra: vec![],
        },
        Src {
            name: "generic",
            secret: s("generic"),
            ct: Some(JSON),
            requires_ct: true,
            style: Style::Bearer,
            verbatim: false,
            acks: false,
            base: generic_base.into_bytes(),
            base_expect: (422, "is refused"),
            tag_ptr: "/tag",
            repo_ptr: "/image",
            extra: vec![],
        },
        Src {
            name: "github",
            secret: s("github"),
            ct: Some(JSON),
            requires_ct: true,
            style: Style::Hub,
            verbatim: false,
            acks: false,
            base: fixture("github-4.json"),
            base_expect: (422, "is refused"),
            tag_ptr: "/package/package_version/container_metadata/tag/name",
            repo_ptr: "/package/name",
            extra: vec![("X-GitHub-Event", "package")],
        },
        Src {
            name: "gitea",
            secret: s("gitea"),
            ct: Some(JSON),
            requires_ct: true,
            style: Style::Gitea,
            verbatim: false,
            acks: false,
            base: fixture("gitea-1.json"),
            base_expect: (422, "is refused"),
            tag_ptr: "/package/version",
            repo_ptr: "/package/name",
            extra: vec![("X-Gitea-Event", "package")],
        },
        Src {
            name: "harbor",
            secret: s("harbor"),
            ct: Some(JSON),
            requires_ct: true,
            style: Style::Bearer,
            verbatim: true,
            acks: false,
            base: fixture("harbor-1.json"),
            base_expect: (200, "pushed by digest"),
            tag_ptr: "/event_data/resources/0/tag",
            repo_ptr: "/event_data/repository/repo_full_name",
            extra: vec![],
        },
        Src {
            name: "quay",
            secret: s("quay"),
            ct: Some(JSON),
            requires_ct: true,
            style: Style::Query,
            verbatim: false,
            acks: false,
            base: fixture("quay-1.json"),
            base_expect: (422, "is refused"),
            tag_ptr: "/updated_tags/0",
            repo_ptr: "/repository",
            extra: vec![],
        },
        Src {
            name: "acr",
            secret: s("acr"),
            ct: Some(JSON),
            requires_ct: true,
            style: Style::Bearer,
            verbatim: true,
            acks: false,
            base: fixture("azure-1.json"),
            base_expect: (422, "is refused"),
            tag_ptr: "/target/tag",
            repo_ptr: "/target/repository",
            extra: vec![],
        },
        Src {
            name: "gar",
            secret: s("gar"),
            ct: Some(JSON),
            requires_ct: false,
            style: Style::Query,
            verbatim: false,
            acks: true,
            base: fixture("gcp-1.json"),
            base_expect: (200, "is refused"),
            tag_ptr: "/tag",
            repo_ptr: "/tag",
            extra: vec![],
        },
    ]
}

/// The name a source's cases are counted under.
fn group(src: &Src) -> &'static str {
    src.name
}

// ---- the corpus, by category ---------------------------------------------------------

fn valid_fixtures(src: &Src, out: &mut Vec<Case>) {
    let g = group(src);
    out.push(case(
        g,
        "the valid fixture, byte for byte",
        src.post(src.base.clone()),
        src.ok(),
    ));
    out.push(case(
        g,
        "a valid tag the target refuses",
        src.post(src.tagged("v9.9.9")),
        src.refused(),
    ));
    // A delivery sent twice that was refused is not recorded, so the resend is refused
    // again rather than taken for a replay.
    for i in 1..=2 {
        let mut r = src.post(src.tagged("resent"));
        if src.name == "distribution" {
            r = src.post(src.mutate(|d| {
                set_ptr(d, src.tag_ptr, json!("resent"));
                set_ptr(d, "/events/0/id", json!("resent-delivery"));
            }));
        }
        if src.name == "github" {
            r = r.replace("X-GitHub-Delivery", "resent-delivery");
        }
        if src.name == "gitea" {
            r = r.replace("X-Gitea-Delivery", "resent-delivery");
        }
        out.push(case(
            g,
            format!("a refused delivery resent, #{i}"),
            r,
            src.refused(),
        ));
    }
}

/// `base` with `raw` written inside the tag string, as bytes (no escaping).
fn tag_bytes(src: &Src, raw: &[u8]) -> Vec<u8> {
    replace_once(&src.tagged(MARK), MARK.as_bytes(), raw)
}

/// `base` with the whole tag value replaced by the raw JSON `raw`.
fn tag_value(src: &Src, raw: &[u8]) -> Vec<u8> {
    let quoted = if src.name == "gar" {
        format!("\"{GAR_REF}:{MARK}\"")
    } else {
        format!("\"{MARK}\"")
    };
    replace_once(&src.tagged(MARK), quoted.as_bytes(), raw)
}

/// `base` with a first member `"key": raw` (raw JSON, as bytes).
fn with_raw_field(base: &[u8], key: &str, raw: &[u8]) -> Vec<u8> {
    let open = base.iter().position(|b| *b == b'{').expect("an object");
    [
        &base[..=open],
        format!("\"{key}\":").as_bytes(),
        raw,
        b",",
        &base[open + 1..],
    ]
    .concat()
}

const MARK: &str = "TAGMARK";

fn bad_json(src: &Src, out: &mut Vec<Case>) {
    let g = group(src);
    let base = &src.base;
    let empty_obj = match src.name {
        "distribution" => "events",
        "dockerhub" => "missing field",
        "generic" => "image",
        "github" => "missing package",
        "gitea" => "missing action",
        "harbor" => "missing type",
        "quay" => "missing repository",
        "acr" => "missing id",
        "gar" => "missing action",
        _ => unreachable!(),
    };
    // Ignored members are skipped without being decoded, except where the source keeps
    // the whole document (GAR) as a JSON value.
    let junk_expect = if src.name == "gar" {
        j(400, "")
    } else {
        src.ok()
    };
    // Distribution skips a malformed event (and says so) rather than refusing the envelope.
    let typed_tag = match src.name {
        "distribution" => j(200, "event 0 is malformed: invalid type"),
        _ => j(400, "invalid type"),
    };
    let bodies: Vec<(&str, Vec<u8>, Expect)> = vec![
        (
            "truncated in half",
            base[..base.len() / 2].to_vec(),
            j(400, "EOF"),
        ),
        (
            "truncated by one byte",
            base[..base.trim_ascii_end().len() - 1].to_vec(),
            j(400, "EOF"),
        ),
        (
            "trailing garbage",
            [base.as_slice(), b"}garbage"].concat(),
            j(400, "trailing"),
        ),
        (
            "two documents",
            [base.as_slice(), base.as_slice()].concat(),
            j(400, "trailing"),
        ),
        ("[]", b"[]".to_vec(), j(400, "JSON object")),
        ("null", b"null".to_vec(), j(400, "JSON object")),
        ("a number", b"42".to_vec(), j(400, "JSON object")),
        (
            "a negative float",
            b"-1.5e308".to_vec(),
            j(400, "JSON object"),
        ),
        ("a string", b"\"{}\"".to_vec(), j(400, "JSON object")),
        ("true", b"true".to_vec(), j(400, "JSON object")),
        ("an empty body", Vec::new(), j(400, "EOF")),
        ("whitespace only", b" \r\n\t ".to_vec(), j(400, "EOF")),
        ("{}", b"{}".to_vec(), j(400, empty_obj)),
        (
            "a UTF-8 BOM first",
            [b"\xEF\xBB\xBF".as_slice(), base].concat(),
            j(400, "JSON object"),
        ),
        ("NaN", b"{\"x\":NaN}".to_vec(), j(400, "")),
        ("a comment", b"{/* c */}".to_vec(), j(400, "")),
        ("single quotes", b"{'events':[]}".to_vec(), j(400, "")),
        (
            "an unterminated string",
            b"{\"x\":\"abc".to_vec(),
            j(400, "EOF"),
        ),
        ("a bare key", b"{x:1}".to_vec(), j(400, "")),
        (
            "a raw NUL byte in the tag",
            tag_bytes(src, b"v\x001"),
            j(400, "control character"),
        ),
        (
            "a raw newline in the tag",
            tag_bytes(src, b"v\n1"),
            j(400, "control character"),
        ),
        (
            "a raw CR LF in the tag",
            tag_bytes(src, b"v\r\nX-A: 1"),
            j(400, "control character"),
        ),
        (
            "invalid UTF-8 in the tag",
            tag_bytes(src, b"v\xff\xfe1"),
            j(400, ""),
        ),
        (
            "an overlong UTF-8 '/' in the tag",
            tag_bytes(src, b"v\xc0\xaf1"),
            j(400, ""),
        ),
        (
            "a UTF-16 surrogate encoded in UTF-8",
            tag_bytes(src, b"v\xed\xa0\x80"),
            j(400, ""),
        ),
        (
            "a lone surrogate escape in the tag",
            tag_bytes(src, b"v\\ud800"),
            j(400, ""),
        ),
        (
            "a bad escape in the tag",
            tag_bytes(src, b"v\\x41"),
            j(400, "escape"),
        ),
        (
            "a Latin-1 byte in the tag",
            tag_bytes(src, b"v\xe91"),
            j(400, ""),
        ),
        ("the tag a number", tag_value(src, b"1"), typed_tag.clone()),
        ("the tag an object", tag_value(src, b"{}"), typed_tag),
        (
            "invalid UTF-8 in an unknown member",
            with_raw_field(base, "junk", b"\"\xff\xfe\""),
            junk_expect.clone(),
        ),
        (
            "a raw NUL in an unknown member",
            with_raw_field(base, "junk", b"\"\x00\""),
            j(400, "control character"),
        ),
    ];
    for (name, body, expect) in bodies {
        out.push(case(g, format!("bad JSON: {name}"), src.post(body), expect));
    }
}

fn deep_nesting(src: &Src, out: &mut Vec<Case>) {
    let g = group(src);
    let base = &src.base;
    // Unknown members are skipped iteratively (no depth limit, no recursion); a document
    // kept as a JSON value (GAR's, Distribution's events) stops at serde_json's depth limit.
    let skipped = |depth_ok: Expect| {
        if src.name == "gar" {
            j(400, "recursion limit")
        } else {
            depth_ok
        }
    };
    let as_tag = match src.name {
        "distribution" | "gar" => j(400, "recursion limit"),
        _ => j(400, "invalid type"),
    };
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        (
            "10 000 nested arrays at the top",
            nested_arrays(10_000).into_bytes(),
            j(400, "JSON object"),
        ),
        (
            "10 000 nested arrays in an unknown member",
            with_raw_field(base, "deep", nested_arrays(10_000).as_bytes()),
            skipped(src.ok()),
        ),
        (
            "30 000 nested arrays (60 KB) in an unknown member",
            with_raw_field(base, "deep", nested_arrays(30_000).as_bytes()),
            skipped(src.ok()),
        ),
        (
            "10 000 nested objects in an unknown member",
            with_raw_field(base, "deep", nested_objects(10_000).as_bytes()),
            skipped(src.ok()),
        ),
        (
            "10 000 unclosed arrays",
            format!("{{\"deep\":{}", "[".repeat(10_000)).into_bytes(),
            skipped(j(400, "EOF")),
        ),
        (
            "10 000 nested arrays as the tag",
            tag_value(src, nested_arrays(10_000).as_bytes()),
            as_tag.clone(),
        ),
        (
            "10 000 nested objects as the tag",
            tag_value(src, nested_objects(10_000).as_bytes()),
            as_tag,
        ),
        (
            "10 000 nested objects as the whole body",
            nested_objects(10_000).into_bytes(),
            skipped(j(400, "")),
        ),
    ];
    for (name, body, expect) in cases {
        assert!(body.len() <= LIMIT, "{name}: {}", body.len());
        out.push(case(
            g,
            format!("deep nesting: {name}"),
            src.post(body),
            expect,
        ));
    }
}

fn huge_strings(src: &Src, out: &mut Vec<Case>) {
    let g = group(src);
    let big = "a".repeat(60_000);
    out.push(case(
        g,
        "a 60 KB tag",
        src.post(src.tagged(&big)),
        src.bad_tag(),
    ));
    let repo_expect = match src.name {
        "github" => j(400, "package.owner.login/package.name"),
        "gitea" => j(400, "package.owner.login/package.name"),
        "gar" => j(400, "tag:"),
        _ => src.bad_repo(),
    };
    let body = if src.name == "gar" {
        src.set("/tag", json!(format!("us-west1-docker.pkg.dev/{big}:v1")))
    } else {
        src.set(src.repo_ptr, json!(big))
    };
    out.push(case(g, "a 60 KB repository", src.post(body), repo_expect));
    out.push(case(
        g,
        "a 60 KB unknown field",
        src.post(src.mutate(|d| set_ptr(d, "/padding", json!("x".repeat(60_000))))),
        src.ok(),
    ));
    out.push(case(
        g,
        "5000 unknown members",
        src.post(src.mutate(|d| {
            for i in 0..5000 {
                set_ptr(d, &format!("/k{i}"), json!(1));
            }
        })),
        src.ok(),
    ));
}

fn sizes(src: &Src, out: &mut Vec<Case>) {
    let g = group(src);
    out.push(case(
        g,
        "size: exactly body_limit",
        src.post(src.pad_to(LIMIT)),
        src.ok(),
    ));
    out.push(case(
        g,
        "size: exactly body_limit, chunked",
        src.post(src.pad_to(LIMIT)).framing(Framing::Chunked),
        src.ok(),
    ));
    out.push(case(
        g,
        "size: body_limit + 1 with Content-Length",
        src.post(src.pad_to(LIMIT + 1)),
        j(413, "body_limit"),
    ));
    out.push(case(
        g,
        "size: body_limit + 1, chunked",
        src.post(src.pad_to(LIMIT + 1)).framing(Framing::Chunked),
        j(413, "body_limit"),
    ));
    out.push(case(
        g,
        "size: 200 KB chunked",
        src.post(src.pad_to(200_000)).framing(Framing::Chunked),
        j(413, "body_limit"),
    ));
    out.push(case(
        g,
        "size: declares 1 TB, sends the fixture",
        src.post(src.base.clone())
            .framing(Framing::Declared(1 << 40)),
        j(413, "body_limit"),
    ));
    out.push(case(
        g,
        "size: declares body_limit + 1, sends nothing",
        src.post(Vec::new())
            .framing(Framing::Declared(LIMIT as u64 + 1)),
        j(413, "body_limit"),
    ));
}

fn methods(src: &Src, out: &mut Vec<Case>) {
    let g = group(src);
    for m in [
        "GET", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND",
    ] {
        out.push(case(
            g,
            format!("method {m}, otherwise genuine"),
            src.post(src.base.clone()).method(m),
            j(405, "hooks take POST"),
        ));
    }
    out.push(case(
        g,
        "method HEAD",
        src.post(Vec::new()).method("HEAD"),
        Expect::Bare(405),
    ));
    out.push(case(
        g,
        "method GET without a secret or body",
        Req::new("GET", &src.path()).framing(Framing::None),
        j(405, "hooks take POST"),
    ));
    out.push(case(
        g,
        "method post (lower case is another method)",
        src.post(src.base.clone()).method("post"),
        j(405, "hooks take POST"),
    ));
}

fn content_types(src: &Src, out: &mut Vec<Case>) {
    let g = group(src);
    let genuine = || src.post(src.base.clone());
    if !src.requires_ct {
        for (name, ct) in [
            ("none", None),
            ("text/plain", Some("text/plain")),
            (
                "multipart/form-data",
                Some("multipart/form-data; boundary=x"),
            ),
            ("x/y", Some("x/y")),
        ] {
            let mut r = genuine().without("Content-Type");
            if let Some(ct) = ct {
                r = r.header("Content-Type", ct);
            }
            out.push(case(
                g,
                format!("content type {name}: not checked"),
                r,
                src.ok(),
            ));
        }
        return;
    }
    let real = src.ct.expect("ct");
    let wrong: Vec<(&str, Vec<u8>)> = vec![
        ("text/plain", b"text/plain".to_vec()),
        ("application/xml", b"application/xml".to_vec()),
        (
            "multipart/form-data",
            b"multipart/form-data; boundary=x".to_vec(),
        ),
        ("a list", format!("{real}, text/plain").into_bytes()),
        ("a longer type", format!("{real}x").into_bytes()),
        ("a suffix", format!("{real}+evil").into_bytes()),
        ("*/*", b"*/*".to_vec()),
        ("the type without a subtype", b"application".to_vec()),
        ("obs-text bytes", b"application/\xffjson".to_vec()),
        (
            "5000 characters",
            format!("application/{}", "x".repeat(5000)).into_bytes(),
        ),
    ];
    for (name, ct) in wrong {
        out.push(case(
            g,
            format!("content type {name}"),
            genuine().replace("Content-Type", ct),
            j(415, "is not accepted by this hook"),
        ));
    }
    out.push(case(
        g,
        "content type missing",
        genuine().without("Content-Type"),
        j(415, "(none)"),
    ));
    out.push(case(
        g,
        "content type twice, the first wrong",
        genuine()
            .without("Content-Type")
            .header("Content-Type", "text/plain")
            .header("Content-Type", real),
        j(415, "text/plain"),
    ));
    let other = if src.name == "distribution" {
        JSON
    } else {
        EVENTS_V2
    };
    out.push(case(
        g,
        format!("content type {other}"),
        genuine().replace("Content-Type", other),
        j(415, ""),
    ));
    out.push(case(
        g,
        "content type upper case",
        genuine().replace("Content-Type", real.to_ascii_uppercase()),
        src.ok(),
    ));
    out.push(case(
        g,
        "content type with a charset",
        genuine().replace("Content-Type", format!("{real}; charset=utf-8")),
        src.ok(),
    ));
    out.push(case(
        g,
        "content type wrong and the secret wrong: 401 first",
        src.bare(src.base.clone())
            .replace("Content-Type", "text/plain")
            .header("Authorization", "Bearer nope")
            .header("X-Hub-Signature-256", format!("sha256={}", "0".repeat(64)))
            .header("X-Gitea-Signature", "0".repeat(64))
            .no_query()
            .query("token=nope"),
        match src.style {
            Style::Hub | Style::Gitea => j(415, ""),
            _ => j(401, "wrong secret"),
        },
    ));
    out.push(case(
        g,
        "content type wrong and the body too large: 415 first",
        src.post(src.pad_to(LIMIT + 100))
            .replace("Content-Type", "text/plain"),
        j(415, ""),
    ));
}

fn tokens(src: &Src, out: &mut Vec<Case>) {
    let g = group(src);
    let s = src.secret;
    let other = secret(if src.name == "generic" {
        "acr"
    } else {
        "generic"
    });
    let unauth = || src.bare(src.base.clone());
    let missing = j(401, "missing secret");
    let wrong = j(401, "wrong secret");
    // Without a scheme, Harbor and ACR take the header verbatim; the others see no bearer.
    let schemeless_wrong = if src.verbatim {
        wrong.clone()
    } else {
        missing.clone()
    };
    let mut add =
        |name: &str, r: Req, e: Expect| out.push(case(g, format!("secret: {name}"), r, e));
    add("none", unauth(), missing.clone());
    add(
        "Bearer, wrong",
        unauth().header("Authorization", "Bearer nope"),
        wrong.clone(),
    );
    add(
        "Bearer, another hook's secret",
        unauth().header("Authorization", format!("Bearer {other}")),
        wrong.clone(),
    );
    add(
        "Bearer, the fenced hook's secret",
        unauth().header("Authorization", format!("Bearer {}", FENCED.1)),
        wrong.clone(),
    );
    add(
        "?token=, wrong",
        unauth().query("token=nope"),
        wrong.clone(),
    );
    add("?token= empty", unauth().query("token="), wrong.clone());
    add(
        "?token=, another hook's secret",
        unauth().query(&format!("token={other}")),
        wrong.clone(),
    );
    add(
        "Authorization: <secret> without a scheme",
        unauth().header("Authorization", s),
        if src.verbatim {
            src.ok()
        } else {
            missing.clone()
        },
    );
    add(
        "Authorization: <wrong> without a scheme",
        unauth().header("Authorization", "nope"),
        schemeless_wrong.clone(),
    );
    add(
        "Basic with the secret as password",
        unauth().header(
            "Authorization",
            format!("Basic {}", b64(format!("x:{s}").as_bytes())),
        ),
        schemeless_wrong.clone(),
    );
    add(
        "Basic with the secret bare",
        unauth().header("Authorization", format!("Basic {s}")),
        schemeless_wrong.clone(),
    );
    add(
        "scheme Token",
        unauth().header("Authorization", format!("Token {s}")),
        schemeless_wrong.clone(),
    );
    add(
        "scheme Bearer: (with a colon)",
        unauth().header("Authorization", format!("Bearer: {s}")),
        schemeless_wrong.clone(),
    );
    add(
        "Bearer alone",
        unauth().header("Authorization", "Bearer"),
        schemeless_wrong.clone(),
    );
    add(
        "Bearer, tab-separated",
        unauth().header("Authorization", format!("Bearer\t{s}")),
        schemeless_wrong.clone(),
    );
    add(
        "Bearer, one extra character",
        unauth().header("Authorization", format!("Bearer {s}x")),
        wrong.clone(),
    );
    add(
        "Bearer, one character short",
        unauth().header("Authorization", format!("Bearer {}", &s[..s.len() - 1])),
        wrong.clone(),
    );
    add(
        "Bearer, upper case secret",
        unauth().header("Authorization", format!("Bearer {}", s.to_uppercase())),
        wrong.clone(),
    );
    add(
        "Bearer, secret twice",
        unauth().header("Authorization", format!("Bearer {s}{s}")),
        wrong.clone(),
    );
    add(
        "Bearer, secret and more words",
        unauth().header("Authorization", format!("Bearer {s} {s}")),
        wrong.clone(),
    );
    add(
        "bearer in lower case",
        unauth().header("Authorization", format!("bearer {s}")),
        src.ok(),
    );
    add(
        "BEARER with padding",
        unauth().header("Authorization", format!("BEARER   {s}  ")),
        src.ok(),
    );
    add(
        "?TOKEN= (another key)",
        unauth().query(&format!("TOKEN={s}")),
        missing.clone(),
    );
    add(
        "?access_token=",
        unauth().query(&format!("access_token={s}")),
        missing.clone(),
    );
    add(
        "?token[]=",
        unauth().query(&format!("token[]={s}")),
        missing.clone(),
    );
    add(
        "?token= percent-encoded",
        unauth().query(&format!("token={}", pct(s))),
        src.ok(),
    );
    add(
        "?token= with a trailing %00",
        unauth().query(&format!("token={s}%00")),
        wrong.clone(),
    );
    add(
        "?token= with a trailing +",
        unauth().query(&format!("token={s}+")),
        wrong.clone(),
    );
    add(
        "?token= invalid UTF-8",
        unauth().query("token=%ff%fe"),
        wrong.clone(),
    );
    add(
        "?token= wrong first, right second",
        unauth().query(&format!("token=nope&token={s}")),
        wrong.clone(),
    );
    add(
        "?token= right first, wrong second",
        unauth().query(&format!("token={s}&token=nope")),
        src.ok(),
    );
    add(
        "Bearer wrong, ?token= right",
        unauth()
            .header("Authorization", "Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig")
            .query(&format!("token={s}")),
        src.ok(),
    );
    add(
        "two Authorization headers, the first wrong",
        unauth()
            .header("Authorization", "Bearer nope")
            .header("Authorization", format!("Bearer {s}")),
        wrong.clone(),
    );
    add(
        "Authorization with obs-text bytes",
        unauth().header(
            "Authorization",
            [b"Bearer \xff".as_slice(), s.as_bytes()].concat(),
        ),
        missing.clone(),
    );
    add(
        "the secret in X-Auth-Token",
        unauth().header("X-Auth-Token", s),
        missing.clone(),
    );
    add(
        "the secret in a cookie",
        unauth().header("Cookie", format!("token={s}")),
        missing.clone(),
    );
    add(
        "the secret in the path",
        unauth().target(format!("{}/{s}", src.path())),
        j(404, "no such route"),
    );
    add(
        "the secret in the body",
        src.bare(src.mutate(|d| set_ptr(d, "/token", json!(s)))),
        missing.clone(),
    );
    add(
        "Expect: 100-continue, wrong secret",
        unauth()
            .header("Authorization", "Bearer nope")
            .header("Expect", "100-continue"),
        wrong.clone(),
    );
    add(
        "Expect: 100-continue, genuine",
        src.post(src.base.clone()).header("Expect", "100-continue"),
        src.ok(),
    );
    add(
        "X-Forwarded-For does not change anything",
        src.post(src.base.clone())
            .header("X-Forwarded-For", "10.0.0.1"),
        src.ok(),
    );
}

fn signatures(src: &Src, out: &mut Vec<Case>) {
    let g = group(src);
    let hub = src.style == Style::Hub;
    let (header, prefix) = if hub {
        ("X-Hub-Signature-256", "sha256=")
    } else {
        ("X-Gitea-Signature", "")
    };
    let body = src.base.clone();
    let good = hmac_hex(src.secret, &body);
    let unsigned = || src.bare(body.clone());
    let signed = |sig: String| unsigned().header(header, format!("{prefix}{sig}"));
    let missing = j(401, "missing signature");
    let bad = j(401, "bad signature");
    let mut add =
        |name: &str, r: Req, e: Expect| out.push(case(g, format!("signature: {name}"), r, e));
    add("missing", unsigned(), missing.clone());
    add("empty", unsigned().header(header, ""), missing.clone());
    add(
        "whitespace",
        unsigned().header(header, "   "),
        missing.clone(),
    );
    add("zeros", signed("0".repeat(64)), bad.clone());
    add(
        "over a different body",
        signed(hmac_hex(src.secret, &src.tagged("v9"))),
        bad.clone(),
    );
    add(
        "over the body with a trailing newline",
        signed(hmac_hex(src.secret, &[body.as_slice(), b"\n"].concat())),
        bad.clone(),
    );
    add(
        "the body changed after signing (one space appended)",
        signed(good.clone()).body([body.as_slice(), b" "].concat()),
        bad.clone(),
    );
    add(
        "keyed with another hook's secret",
        signed(hmac_hex(secret("generic"), &body)),
        bad.clone(),
    );
    add(
        "keyed with the other signing hook's secret",
        signed(hmac_hex(
            secret(if hub { "gitea" } else { "github" }),
            &body,
        )),
        bad.clone(),
    );
    add(
        "keyed with NOTES.md's published key",
        signed(hmac_hex(NOTES_KEY, &body)),
        bad.clone(),
    );
    add(
        "keyed with the secret in upper case",
        signed(hmac_hex(&src.secret.to_uppercase(), &body)),
        bad.clone(),
    );
    add(
        "truncated to 63 hex digits",
        signed(good[..63].to_string()),
        bad.clone(),
    );
    add(
        "truncated to 62 hex digits",
        signed(good[..62].to_string()),
        bad.clone(),
    );
    add(
        "truncated to 32 hex digits",
        signed(good[..32].to_string()),
        bad.clone(),
    );
    add(
        "one byte too long",
        signed(format!("{good}00")),
        bad.clone(),
    );
    add("doubled", signed(format!("{good}{good}")), bad.clone());
    add(
        "64 non-hex characters",
        signed("zz".repeat(32)),
        bad.clone(),
    );
    add(
        "base64 instead of hex",
        signed(b64(&hex::decode(&good).expect("hex"))),
        bad.clone(),
    );
    // Hex is case-insensitive: the same 32 bytes, so the same MAC. Not a forgery.
    add(
        "upper-case hex of the right MAC",
        signed(good.to_uppercase()),
        src.ok(),
    );
    add(
        "the right MAC with whitespace around",
        unsigned().header(header, format!("  {prefix}{good}  ")),
        src.ok(),
    );
    add(
        "two signature headers, the first wrong",
        unsigned()
            .header(header, format!("{prefix}{}", "0".repeat(64)))
            .header(header, format!("{prefix}{good}")),
        bad.clone(),
    );
    add(
        "a right bearer token instead of a signature",
        unsigned().header("Authorization", format!("Bearer {}", src.secret)),
        missing.clone(),
    );
    add(
        "a right ?token= instead of a signature",
        unsigned().query(&format!("token={}", src.secret)),
        missing.clone(),
    );
    add(
        "a wrong signature and a right bearer token",
        signed("0".repeat(64)).header("Authorization", format!("Bearer {}", src.secret)),
        bad.clone(),
    );
    add(
        "the legacy sha1 header only",
        unsigned().header(
            "X-Hub-Signature",
            "sha1=6207d301e9d84701de8fcd0676589cd7b14909af",
        ),
        missing.clone(),
    );
    add(
        "a signature over a 60 KB body, sent with the fixture",
        signed(hmac_hex(src.secret, &src.pad_to(60_000))),
        bad.clone(),
    );
    add(
        "a captured signature resent with a fresh delivery id (not signed; not a replay)",
        src.post(body.clone()),
        src.ok(),
    );
    if hub {
        add(
            "sha1= with a SHA-1 value",
            unsigned().header(header, "sha1=6207d301e9d84701de8fcd0676589cd7b14909af"),
            bad.clone(),
        );
        add(
            "sha1= with the right SHA-256 value",
            unsigned().header(header, format!("sha1={good}")),
            bad.clone(),
        );
        add(
            "SHA256= in upper case",
            unsigned().header(header, format!("SHA256={good}")),
            bad.clone(),
        );
        add(
            "bare hex without sha256=",
            unsigned().header(header, good.clone()),
            bad.clone(),
        );
        add(
            "sha256= and nothing",
            unsigned().header(header, "sha256="),
            bad.clone(),
        );
        add(
            "sha256=sha256=<hex>",
            unsigned().header(header, format!("sha256=sha256={good}")),
            bad.clone(),
        );
        add(
            "in Gitea's header",
            unsigned().header("X-Gitea-Signature", good.clone()),
            missing.clone(),
        );
        let json_doc = body.clone();
        let form_body = form(&json_doc);
        add(
            "form delivery signed over the form body",
            src.bare(form_body.clone())
                .replace("Content-Type", FORM)
                .header(
                    header,
                    format!("sha256={}", hmac_hex(src.secret, &form_body)),
                ),
            src.ok(),
        );
        add(
            "form delivery signed over the JSON inside",
            src.bare(form_body.clone())
                .replace("Content-Type", FORM)
                .header(
                    header,
                    format!("sha256={}", hmac_hex(src.secret, &json_doc)),
                ),
            bad.clone(),
        );
        let no_payload = b"other=1".to_vec();
        add(
            "form delivery without a payload field",
            src.bare(no_payload.clone())
                .replace("Content-Type", FORM)
                .header(
                    header,
                    format!("sha256={}", hmac_hex(src.secret, &no_payload)),
                ),
            j(400, "payload"),
        );
    } else {
        add(
            "sha256=<hex> in the bare header",
            unsigned().header(header, format!("sha256={good}")),
            bad.clone(),
        );
        add(
            "X-Forgejo-Signature alone, right",
            unsigned().header("X-Forgejo-Signature", good.clone()),
            src.ok(),
        );
        add(
            "X-Hub-Signature-256 alone, right",
            unsigned().header("X-Hub-Signature-256", format!("sha256={good}")),
            src.ok(),
        );
        add(
            "Gitea's right, Forgejo's wrong",
            signed(good.clone()).header("X-Forgejo-Signature", "0".repeat(64)),
            bad.clone(),
        );
        add(
            "Gitea's wrong, Forgejo's right",
            signed("0".repeat(64)).header("X-Forgejo-Signature", good.clone()),
            bad.clone(),
        );
        add(
            "Gitea's right, X-Hub-Signature-256 sha1=",
            signed(good.clone()).header(
                "X-Hub-Signature-256",
                "sha1=6207d301e9d84701de8fcd0676589cd7b14909af",
            ),
            bad.clone(),
        );
        add(
            "Gitea's right, X-Hub-Signature-256 empty sha256= (a forge without a secret)",
            signed(good.clone()).header("X-Hub-Signature-256", "sha256="),
            src.ok(),
        );
        add(
            "all three empty",
            unsigned()
                .header("X-Gitea-Signature", "")
                .header("X-Forgejo-Signature", "")
                .header("X-Hub-Signature-256", "sha256="),
            missing.clone(),
        );
        let json_doc = body.clone();
        let form_body = form(&json_doc);
        add(
            "form delivery signed over the JSON inside",
            src.bare(form_body.clone())
                .replace("Content-Type", FORM)
                .header(header, hmac_hex(src.secret, &json_doc)),
            src.ok(),
        );
        add(
            "form delivery signed over the form body",
            src.bare(form_body.clone())
                .replace("Content-Type", FORM)
                .header(header, hmac_hex(src.secret, &form_body)),
            bad.clone(),
        );
        let no_payload = b"other=1".to_vec();
        add(
            "form delivery without a payload field",
            src.bare(no_payload.clone())
                .replace("Content-Type", FORM)
                .header(header, hmac_hex(src.secret, &no_payload)),
            bad.clone(),
        );
    }
}

/// Tags that try path, reference or shell injection, and whether Docker's tag grammar
/// takes them.
fn hostile_tags() -> Vec<(String, &'static str, bool)> {
    vec![
        ("../../etc/passwd".into(), "path traversal", false),
        ("..".into(), "dot dot", false),
        (
            format!("v1@sha256:{}", hex64()),
            "a digest after the tag",
            false,
        ),
        ("v1:latest".into(), "a second tag", false),
        ("v 1".into(), "a space", false),
        ("v1 ".into(), "a trailing space", false),
        ("v1\n".into(), "a newline", false),
        ("v1\r\nX-Injected: 1".into(), "CRLF and a header", false),
        ("v1\u{0}".into(), "NUL", false),
        ("v1\t".into(), "a tab", false),
        ("$(id)".into(), "$(id)", false),
        ("`id`".into(), "backticks", false),
        ("${IFS}".into(), "${IFS}", false),
        (";rm -rf /".into(), ";rm -rf /", false),
        ("v1&&id".into(), "&&", false),
        ("v1|id".into(), "a pipe", false),
        ("--help".into(), "--help", false),
        ("-v1".into(), "a leading dash", false),
        (".v1".into(), "a leading dot", false),
        ("v1/../../x".into(), "a slash", false),
        ("%2e%2e".into(), "percent-encoded dots", false),
        ("*".into(), "a glob star", false),
        ("never-*".into(), "the target's glob itself", false),
        ("v[1]".into(), "glob brackets", false),
        ("😀".into(), "an emoji", false),
        ("ｖ１".into(), "full-width letters", false),
        ("a".repeat(200), "200 characters", false),
        ("a".repeat(129), "129 characters", false),
        ("a".repeat(128), "128 characters (the maximum)", true),
        ("V1-UPPER".into(), "upper case (valid)", true),
        ("_v1".into(), "a leading underscore (valid)", true),
        ("latest".into(), "latest", true),
        ("NEVER-x".into(), "the glob's prefix in upper case", true),
        ("neverx".into(), "the glob's prefix without the dash", true),
    ]
}

fn tag_injection(src: &Src, out: &mut Vec<Case>) {
    let g = group(src);
    for (tag, what, valid) in hostile_tags() {
        let mut expect = if valid { src.refused() } else { src.bad_tag() };
        if src.name == "gar" && tag.starts_with("v1@sha256:") {
            // In a reference, `:v1@sha256:...` is a tag and a digest: the tag is v1.
            expect = src.refused();
        }
        out.push(case(
            g,
            format!("tag injection: {what}"),
            src.post(src.tagged(&tag)),
            expect,
        ));
    }
    let empty = match src.name {
        "distribution" => j(200, "with no tag"),
        "dockerhub" => j(200, "push_data.tag is empty"),
        "generic" => j(400, "not a valid tag"),
        "github" => j(200, "empty tag"),
        "gitea" => j(200, "no tag"),
        "harbor" => j(200, "with no tag"),
        "quay" => j(200, "not a valid tag"),
        "acr" => j(200, "by digest"),
        "gar" => j(400, "tag:"),
        _ => unreachable!(),
    };
    out.push(case(
        g,
        "tag injection: empty",
        src.post(src.tagged("")),
        empty,
    ));
}

/// Repository strings that try path or reference injection, per source.
fn repo_injection(src: &Src, out: &mut Vec<Case>) {
    let g = group(src);
    if src.name == "gar" {
        return gar_references(src, out);
    }
    let d = hex64();
    let repos: Vec<(String, &str)> = vec![
        ("../../etc/passwd".into(), "path traversal"),
        ("team/../../etc".into(), "dot dot inside"),
        ("team//app".into(), "an empty component"),
        (format!("app@sha256:{d}"), "a digest"),
        ("app:v1".into(), "a tag"),
        ("http://evil.example/app".into(), "a scheme"),
        ("a pp".into(), "a space"),
        ("app\n".into(), "a newline"),
        ("app\u{0}".into(), "NUL"),
        ("$(id)".into(), "$(id)"),
        (";rm -rf /".into(), ";rm -rf /"),
        ("--help".into(), "--help"),
        ("-app".into(), "a leading dash"),
        ("/app".into(), "a leading slash"),
        ("app/".into(), "a trailing slash"),
        ("".into(), "empty"),
    ];
    for (repo, what) in repos {
        let expect = match src.name {
            // `registry.example.com/app@sha256:...` is a valid image, just not the target's.
            "generic" if repo.starts_with("app@") => j(200, "no target"),
            "generic" => j(400, "image"),
            _ => src.bad_repo(),
        };
        let body = if src.name == "generic" {
            src.set("/image", json!(format!("registry.example.com/{repo}")))
        } else {
            src.set(src.repo_ptr, json!(repo))
        };
        out.push(case(
            g,
            format!("repository injection: {what}"),
            src.post(body),
            expect,
        ));
    }
    // Upper case: invalid in a repository, except where the source lowercases the name
    // (GitHub and Gitea, as their registries serve it).
    let upper_expect = match src.name {
        "github" | "gitea" => j(200, "no target"),
        "generic" => j(400, "image"),
        _ => src.bad_repo(),
    };
    let upper = if src.name == "generic" {
        src.set("/image", json!("registry.example.com/TEAM/APP"))
    } else {
        src.set(src.repo_ptr, json!("APP"))
    };
    out.push(case(
        g,
        "repository injection: upper case",
        src.post(upper),
        upper_expect,
    ));
}

/// GAR's reference (`tag`) and `digest` fields.
fn gar_references(src: &Src, out: &mut Vec<Case>) {
    let g = group(src);
    let d = hex64();
    let refs: Vec<(String, &str, Expect)> = vec![
        (
            "hello-world:1.1".into(),
            "no registry host",
            j(400, "does not start with a registry host"),
        ),
        (
            "evil host/p/r/i:v1".into(),
            "a space in the host",
            j(400, "does not start with a registry host"),
        ),
        (GAR_REF.to_string(), "no tag", j(400, "has no :tag")),
        (
            format!("{GAR_REF}@sha256:{d}"),
            "a digest only",
            j(400, "has no :tag"),
        ),
        (
            "http://us-west1-docker.pkg.dev/p/r/i:v1".into(),
            "a scheme",
            j(400, "tag:"),
        ),
        (
            "us-west1-docker.pkg.dev/my-project/../hello-world:1.1".into(),
            "dot dot",
            j(400, "tag:"),
        ),
        (
            "us-west1-docker.pkg.dev//my-repo/hello-world:1.1".into(),
            "an empty component",
            j(400, "tag:"),
        ),
        (
            "us-west1-docker.pkg.dev/my-project/my-repo/HELLO:1.1".into(),
            "upper case",
            j(400, "tag:"),
        ),
        (
            "us-west1-docker.pkg.dev/my-project/my-repo/hello world:1.1".into(),
            "a space",
            j(400, "tag:"),
        ),
        (
            "us-west1-docker.pkg.dev/$(id):1.1".into(),
            "$(id)",
            j(400, "tag:"),
        ),
        (
            "localhost/app:v1".into(),
            "another registry",
            j(200, "no target"),
        ),
        (
            "docker.io/library/nginx:1.1".into(),
            "Docker Hub",
            j(200, "no target"),
        ),
        (format!("{GAR_REF}:1.1:1.2"), "two tags", j(400, "tag:")),
    ];
    for (r, what, expect) in refs {
        out.push(case(
            g,
            format!("reference injection: {what}"),
            src.post(src.set("/tag", json!(r))),
            expect,
        ));
    }
    out.push(case(
        g,
        "digest of another image",
        src.post(src.set(
            "/digest",
            json!(format!("us-west1-docker.pkg.dev/other/repo/img@sha256:{d}")),
        )),
        j(400, "is not an image of tag's repository"),
    ));
    out.push(case(
        g,
        "digest of the same image, valid",
        src.post(src.set("/digest", json!(format!("{GAR_REF}@sha256:{d}")))),
        src.refused(),
    ));
    out.push(case(
        g,
        "digest that is a path",
        src.post(src.set("/digest", json!("../../etc/passwd@sha256:../.."))),
        src.refused(),
    ));
}

/// Registry hosts that try injection, for the sources that take the host from the payload.
fn host_injection(src: &Src, out: &mut Vec<Case>) {
    let g = group(src);
    // (host, what, is a usable host name): a usable one names an image no target runs.
    let hosts: Vec<(&str, &str, bool)> = vec![
        ("evil host", "a space", false),
        ("evil.example/x", "a slash", false),
        ("http://evil.example", "a scheme", false),
        ("user@evil.example", "userinfo", false),
        ("evil\nexample", "a newline", false),
        ("evil.example\n", "a trailing newline (trimmed)", true),
        ("$(id)", "$(id)", false),
        ("evil.example:5000", "another registry", true),
        // Found by the fuzzer: only allowed characters, but no host; refused since.
        ("..", "dot dot (not a host name)", false),
    ];
    for (host, what, usable) in hosts {
        let (body, expect) = match src.name {
            "distribution" => (
                src.set("/events/0/request/host", json!(host)),
                if usable {
                    j(200, "no target")
                } else {
                    j(200, "bad registry host")
                },
            ),
            "acr" => (
                src.set("/request/host", json!(host)),
                if usable {
                    j(200, "no target")
                } else {
                    j(400, "request.host")
                },
            ),
            // Harbor and Quay take the host as the part of a URL before its first '/', and
            // the repository from elsewhere: "http://evil.example/..." is host "http:" (no
            // host: refused), "evil.example/x/..." is host "evil.example" (no target).
            "harbor" => {
                let mut d = src.doc();
                set_ptr(&mut d, src.tag_ptr, json!("v1.2"));
                set_ptr(
                    &mut d,
                    "/event_data/resources/0/resource_url",
                    json!(format!("{host}/harbor/alpine:v1.2")),
                );
                let cut = usable || host.starts_with("evil.example/");
                (
                    serde_json::to_vec(&d).expect("json"),
                    if cut {
                        j(200, "no target")
                    } else {
                        j(400, "resource_url")
                    },
                )
            }
            "quay" => {
                let cut = usable || host.starts_with("evil.example/");
                (
                    src.set("/docker_url", json!(format!("{host}/dgangaia/test"))),
                    if cut {
                        j(200, "no target")
                    } else {
                        j(400, "docker_url")
                    },
                )
            }
            _ => return,
        };
        out.push(case(
            g,
            format!("host injection: {what}"),
            src.post(body),
            expect,
        ));
    }
    if src.name == "distribution" {
        out.push(case(
            g,
            "host: empty, taken from target.url",
            src.post(src.set("/events/0/request/host", json!(""))),
            src.refused(),
        ));
        out.push(case(
            g,
            "host: empty, target.url a hostile URL",
            src.post(src.mutate(|d| {
                set_ptr(d, "/events/0/request/host", json!(""));
                set_ptr(d, "/events/0/target/url", json!("file:///etc/passwd"));
            })),
            j(200, "no request.host"),
        ));
        out.push(case(
            g,
            "host: upper case is lowercased (LOCALHOST:5000, not a target)",
            src.post(src.set("/events/0/request/host", json!("LOCALHOST:5000"))),
            j(200, "no target"),
        ));
    }
}

fn wrong_types(src: &Src, out: &mut Vec<Case>) {
    let g = group(src);
    let d = hex64();
    let table: Vec<(&str, Value, Expect)> = match src.name {
        "distribution" => vec![
            ("/events", json!(5), j(400, "invalid type")),
            ("/events", json!("x"), j(400, "invalid type")),
            ("/events", json!({}), j(400, "invalid type")),
            ("/events", json!(null), j(400, "invalid type")),
            ("/events", json!([]), j(200, "holds no event")),
            ("/events/0", json!(5), j(200, "event 0 is malformed")),
            ("/events/0", json!(null), j(200, "event 0 is malformed")),
            ("/events/0", json!([]), j(200, "event 0 is malformed")),
            ("/events/0/action", json!(5), j(200, "malformed")),
            ("/events/0/action", json!(null), j(200, "malformed")),
            ("/events/0/action", json!("pull"), j(200, "is not a push")),
            ("/events/0/action", json!("PUSH"), j(200, "is not a push")),
            ("/events/0/target", json!("x"), j(200, "malformed")),
            ("/events/0/target", json!(null), j(200, "malformed")),
            ("/events/0/target/tag", json!(5), j(200, "malformed")),
            ("/events/0/target/tag", json!(["v1"]), j(200, "malformed")),
            (
                "/events/0/target/tag",
                json!(null),
                j(200, "pushed by digest"),
            ),
            (
                "/events/0/target/repository",
                json!({}),
                j(200, "malformed"),
            ),
            (
                "/events/0/target/repository",
                json!(null),
                j(200, "no target.repository"),
            ),
            ("/events/0/target/mediaType", json!(5), j(200, "malformed")),
            (
                "/events/0/target/mediaType",
                json!("application/octet-stream"),
                j(200, "blob push"),
            ),
            ("/events/0/target/digest", json!(5), j(200, "malformed")),
            (
                "/events/0/target/digest",
                json!("sha256:short"),
                j(200, "not a valid digest"),
            ),
            ("/events/0/request", json!(5), j(200, "malformed")),
            ("/events/0/request/host", json!(true), j(200, "malformed")),
            ("/events/0/request/host", json!(null), j(200, "is refused")),
            ("/events/0/id", json!(7), j(200, "malformed")),
        ],
        "dockerhub" => vec![
            ("/push_data", json!(null), j(400, "invalid type")),
            ("/push_data", json!("x"), j(400, "invalid type")),
            ("/push_data/tag", json!(5), j(400, "invalid type")),
            ("/push_data/tag", json!(null), j(400, "invalid type")),
            ("/push_data/tag", json!(["latest"]), j(400, "invalid type")),
            ("/repository", json!(5), j(400, "invalid type")),
            ("/repository/repo_name", json!(5), j(400, "invalid type")),
            ("/repository/repo_name", json!(null), j(400, "invalid type")),
            ("/callback_url", json!(5), j(400, "invalid type")),
            ("/callback_url", json!(null), j(422, "is refused")),
            ("/callback_url", json!(""), j(422, "is refused")),
            (
                "/callback_url",
                json!("file:///etc/passwd"),
                j(400, "callback_url"),
            ),
            (
                "/callback_url",
                json!("javascript:alert(1)"),
                j(400, "callback_url"),
            ),
            ("/callback_url", json!("http://"), j(400, "callback_url")),
            (
                "/callback_url",
                json!("//evil.example/x"),
                j(400, "callback_url"),
            ),
            (
                "/callback_url",
                json!("gopher://evil.example/"),
                j(400, "callback_url"),
            ),
            (
                "/callback_url",
                json!("unix:///var/run/docker.sock"),
                j(400, "callback_url"),
            ),
        ],
        "generic" => vec![
            ("/image", json!(5), j(400, "invalid type")),
            ("/image", json!(null), j(400, "invalid type")),
            (
                "/image",
                json!(["registry.example.com/team/app"]),
                j(400, "invalid type"),
            ),
            ("/image", json!({}), j(400, "invalid type")),
            ("/tag", json!(5), j(400, "invalid type")),
            ("/tag", json!(null), j(400, "missing tag")),
            ("/digest", json!(5), j(400, "invalid type")),
            ("/digest", json!("sha256:short"), j(400, "digest")),
            ("/digest", json!(format!("SHA256:{d}")), j(400, "digest")),
            (
                "/digest",
                json!(format!("sha256:{}", d.to_uppercase())),
                j(400, "digest"),
            ),
            ("/digest", json!(format!("md5:{d}")), j(400, "digest")),
            (
                "/digest",
                json!(format!("sha512:{}", "ab".repeat(64))),
                j(422, "is refused"),
            ),
            ("/digest", json!(null), j(422, "is refused")),
            ("/callback_url", json!(5), j(400, "invalid type")),
            (
                "/callback_url",
                json!("file:///etc/passwd"),
                j(400, "callback_url"),
            ),
            (
                "/callback_url",
                json!("unix:///var/run/docker.sock"),
                j(400, "callback_url"),
            ),
            (
                "/image",
                json!("registry.example.com/team/app:v2"),
                j(422, "is refused"),
            ),
            (
                "/image",
                json!("registry.example.com/team/app:v3"),
                j(400, "disagree"),
            ),
            (
                "/image",
                json!(format!("registry.example.com/team/app@sha256:{d}")),
                j(422, "is refused"),
            ),
            (
                "/image",
                json!("registry.example.com/team/app:"),
                j(400, "image"),
            ),
            (
                "/image",
                json!("registry.example.com/team/app:v2:v3"),
                j(400, "image"),
            ),
        ],
        "github" => vec![
            ("/action", json!(5), j(400, "invalid type")),
            ("/action", json!(null), j(400, "missing action")),
            (
                "/action",
                json!("deleted"),
                j(200, "not a published version"),
            ),
            ("/package", json!(5), j(400, "invalid type")),
            ("/package", json!(null), j(400, "missing package")),
            ("/package/name", json!(5), j(400, "invalid type")),
            ("/package/name", json!(null), j(400, "missing package.name")),
            ("/package/namespace", json!(5), j(400, "invalid type")),
            (
                "/package/namespace",
                json!(null),
                j(400, "missing package.owner.login"),
            ),
            ("/package/owner", json!("x"), j(400, "invalid type")),
            (
                "/package/owner",
                json!({"login": 5}),
                j(400, "invalid type"),
            ),
            ("/package/ecosystem", json!(5), j(400, "invalid type")),
            (
                "/package/ecosystem",
                json!(null),
                j(400, "missing package.package_type"),
            ),
            (
                "/package/ecosystem",
                json!("npm"),
                j(200, "not a container"),
            ),
            ("/package/package_version", json!(5), j(400, "invalid type")),
            (
                "/package/package_version",
                json!(null),
                j(400, "missing package.package_version"),
            ),
            (
                "/package/package_version/container_metadata",
                json!([]),
                j(400, "expected struct ContainerMetadata"),
            ),
            (
                "/package/package_version/container_metadata",
                json!(null),
                j(400, "missing package.package_version.container_metadata"),
            ),
            (
                "/package/package_version/container_metadata/tag",
                json!("x"),
                j(400, "invalid type"),
            ),
            (
                "/package/package_version/container_metadata/tag",
                json!(null),
                j(400, "container_metadata.tag"),
            ),
            (
                "/package/package_version/container_metadata/tag/name",
                json!(5),
                j(400, "invalid type"),
            ),
            (
                "/package/package_version/container_metadata/tag/name",
                json!(null),
                j(400, "tag.name"),
            ),
            (
                "/package/package_version/container_metadata/tag/digest",
                json!(5),
                j(400, "invalid type"),
            ),
            (
                "/package/package_version/container_metadata/tag/digest",
                json!("sha256:short"),
                j(422, "is refused"),
            ),
            (
                "/package/name",
                json!("UTAITEBOX-SERVER"),
                j(422, "is refused"),
            ),
        ],
        "gitea" => vec![
            ("/action", json!(5), j(400, "invalid type")),
            ("/action", json!(null), j(400, "missing action")),
            ("/action", json!("deleted"), j(200, "not a new version")),
            ("/package", json!(5), j(400, "invalid type")),
            ("/package", json!(null), j(400, "missing package")),
            ("/package/type", json!(5), j(400, "invalid type")),
            ("/package/type", json!(null), j(400, "missing package.type")),
            ("/package/type", json!("npm"), j(200, "not a container")),
            ("/package/owner", json!(5), j(400, "invalid type")),
            (
                "/package/owner/login",
                json!(null),
                j(400, "missing package.owner.login"),
            ),
            ("/package/owner/login", json!(5), j(400, "invalid type")),
            ("/package/name", json!([]), j(400, "invalid type")),
            ("/package/name", json!(null), j(400, "missing package.name")),
            ("/package/version", json!(5), j(400, "invalid type")),
            (
                "/package/version",
                json!(null),
                j(400, "missing package.version"),
            ),
            (
                "/package/version",
                json!(format!("sha256:{d}")),
                j(200, "by digest"),
            ),
            ("/package/html_url", json!(5), j(400, "invalid type")),
            (
                "/package/html_url",
                json!(null),
                j(400, "missing package.html_url"),
            ),
            ("/package/html_url", json!("not a url"), j(400, "html_url")),
            (
                "/package/html_url",
                json!("file:///etc/passwd"),
                j(400, "html_url"),
            ),
            (
                "/package/html_url",
                json!("javascript:alert(1)"),
                j(400, "html_url"),
            ),
            (
                "/package/html_url",
                json!("http://evil.example/x"),
                j(200, "no target"),
            ),
            (
                "/package/html_url",
                json!("http://user:pw@localhost:3000/x"),
                j(422, "is refused"),
            ),
            (
                "/package/html_url",
                json!("http://localhost:3000@evil.example/"),
                j(200, "no target"),
            ),
            (
                "/package/html_url",
                json!("http://[::1]:3000/x"),
                j(200, "no target"),
            ),
            (
                "/package/name",
                json!("GiteaContainer"),
                j(422, "is refused"),
            ),
        ],
        "harbor" => {
            let tagged = |ptr: &'static str, v: Value, e: Expect| (ptr, v, e);
            vec![
                tagged("/type", json!(5), j(400, "invalid type")),
                tagged("/type", json!(null), j(400, "missing type")),
                tagged("/type", json!("DELETE_ARTIFACT"), j(200, "not a push")),
                tagged("/type", json!("pushImage"), j(422, "is refused")),
                tagged("/event_data", json!(5), j(400, "invalid type")),
                tagged("/event_data", json!(null), j(400, "missing event_data")),
                tagged("/event_data/resources", json!(5), j(400, "invalid type")),
                tagged(
                    "/event_data/resources",
                    json!(null),
                    j(400, "missing event_data.resources"),
                ),
                tagged(
                    "/event_data/resources",
                    json!([]),
                    j(200, "resources is empty"),
                ),
                tagged("/event_data/resources/0", json!(5), j(400, "invalid type")),
                tagged(
                    "/event_data/resources/0/resource_url",
                    json!(5),
                    j(400, "invalid type"),
                ),
                tagged(
                    "/event_data/resources/0/resource_url",
                    json!(null),
                    j(400, "resource_url"),
                ),
                tagged(
                    "/event_data/resources/0/resource_url",
                    json!("noslash"),
                    j(400, "has no '/'"),
                ),
                tagged(
                    "/event_data/resources/0/tag",
                    json!(5),
                    j(400, "invalid type"),
                ),
                tagged(
                    "/event_data/resources/0/tag",
                    json!(null),
                    j(200, "with no tag"),
                ),
                tagged(
                    "/event_data/resources/0/digest",
                    json!(5),
                    j(400, "invalid type"),
                ),
                tagged("/event_data/repository", json!(5), j(400, "invalid type")),
                tagged(
                    "/event_data/repository/repo_full_name",
                    json!(null),
                    j(400, "repo_full_name"),
                ),
                tagged("/specversion", json!("1.0"), j(400, "missing id")),
            ]
        }
        "quay" => vec![
            ("/repository", json!(5), j(400, "invalid type")),
            ("/repository", json!(null), j(400, "missing repository")),
            ("/docker_url", json!(5), j(400, "invalid type")),
            ("/docker_url", json!(null), j(400, "missing docker_url")),
            ("/docker_url", json!("quay.io"), j(400, "no '/'")),
            ("/updated_tags", json!("latest"), j(400, "invalid type")),
            ("/updated_tags", json!([5]), j(400, "invalid type")),
            ("/updated_tags", json!(null), j(400, "missing updated_tags")),
            ("/updated_tags", json!([]), j(200, "updated_tags is empty")),
            (
                "/updated_tags",
                json!(["latest", "../x"]),
                j(422, "is refused"),
            ),
            (
                "/updated_tags",
                json!(["../x", "$(id)"]),
                j(200, "updated_tags[1]"),
            ),
            ("/updated_tags", json!([null]), j(400, "invalid type")),
        ],
        "acr" => vec![
            ("/id", json!(5), j(400, "invalid type")),
            ("/id", json!(null), j(400, "missing id")),
            ("/action", json!(5), j(400, "invalid type")),
            ("/action", json!(null), j(400, "missing action")),
            ("/action", json!("delete"), j(200, "is not an image push")),
            (
                "/action",
                json!("chart_push"),
                j(200, "is not an image push"),
            ),
            ("/target", json!(5), j(400, "invalid type")),
            ("/target", json!(null), j(400, "missing target")),
            ("/target/repository", json!(5), j(400, "invalid type")),
            (
                "/target/repository",
                json!(null),
                j(400, "missing target.repository"),
            ),
            ("/target/tag", json!(5), j(400, "invalid type")),
            ("/target/tag", json!(null), j(200, "by digest")),
            ("/target/digest", json!(5), j(400, "invalid type")),
            (
                "/target/digest",
                json!("sha256:short"),
                j(400, "target.digest"),
            ),
            ("/request", json!(5), j(400, "invalid type")),
            ("/request/host", json!(null), j(400, "missing request.host")),
            ("/request/host", json!(5), j(400, "invalid type")),
        ],
        "gar" => vec![
            ("/action", json!(5), j(400, "invalid type")),
            ("/action", json!(null), j(400, "missing action")),
            ("/action", json!("DELETE"), j(200, "is not a push")),
            ("/action", json!("insert"), j(200, "is not a push")),
            ("/tag", json!(5), j(400, "invalid type")),
            ("/tag", json!(null), j(200, "by digest")),
            ("/digest", json!(5), j(400, "invalid type")),
            ("/message", json!(5), j(400, "invalid type")),
            ("/message", json!(null), j(400, "missing message")),
            ("/message", json!({}), j(400, "missing message.data")),
        ],
        _ => unreachable!(),
    };
    for (ptr, v, expect) in table {
        let body = if src.name == "harbor" {
            // Harbor's fixture is a push by digest: give it a tag first.
            let mut d = src.doc();
            set_ptr(&mut d, src.tag_ptr, json!("v1.2"));
            set_ptr(&mut d, ptr, v.clone());
            serde_json::to_vec(&d).expect("json")
        } else {
            src.set(ptr, v.clone())
        };
        out.push(case(
            g,
            format!("field {ptr} = {}", short(&v.to_string())),
            src.post(body),
            expect,
        ));
    }
    let removals: Vec<(&str, Expect)> = match src.name {
        "dockerhub" => vec![
            ("/push_data", j(400, "missing field")),
            ("/repository", j(400, "missing field")),
        ],
        "generic" => vec![
            ("/image", j(400, "missing field")),
            ("/tag", j(422, "is refused")),
        ],
        "distribution" => vec![("/events/0/target/mediaType", j(200, "blob push"))],
        _ => vec![],
    };
    for (ptr, expect) in removals {
        let body = src.mutate(|d| remove_ptr(d, ptr));
        let expect = if src.name == "generic" && ptr == "/tag" {
            j(400, "missing tag")
        } else {
            expect
        };
        out.push(case(
            g,
            format!("field {ptr} removed"),
            src.post(body),
            expect,
        ));
    }
}

fn short(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}...", s.chars().take(40).collect::<String>())
    } else {
        s.to_string()
    }
}

/// Cases only one source has.
fn specific(src: &Src, out: &mut Vec<Case>) {
    let g = group(src);
    match src.name {
        "distribution" => {
            out.push(case(
                g,
                "content type v2",
                src.post(src.base.clone())
                    .replace("Content-Type", EVENTS_V2),
                src.ok(),
            ));
            for f in [
                "distribution-1.json",
                "distribution-2.json",
                "distribution-3.json",
            ] {
                out.push(case(
                    g,
                    format!("fixture {f}: nothing to deploy"),
                    src.post(fixture(f)),
                    j(200, ""),
                ));
            }
            out.push(case(
                g,
                "fixture distribution-4.json (a fragment)",
                src.post(fixture("distribution-4.json")),
                j(400, "events"),
            ));
            out.push(case(
                g,
                "a refused push among 200 blob events",
                src.post(src.mutate(|d| {
                    let ev = d["events"][0].clone();
                    let mut blob = ev.clone();
                    blob["target"]["mediaType"] = json!("application/octet-stream");
                    let mut all = vec![ev];
                    all.extend(std::iter::repeat_n(blob, 50));
                    d["events"] = json!(all);
                })),
                src.refused(),
            ));
            out.push(case(
                g,
                "10 000 empty events",
                src.post(format!("{{\"events\":[{}{{}}]}}", "{},".repeat(9_999))),
                j(200, "event 9999 is malformed"),
            ));
        }
        "dockerhub" => {
            out.push(case(
                g,
                "fixture docker-hub-2.json",
                src.post(fixture("docker-hub-2.json")),
                src.ok(),
            ));
            out.push(case(
                g,
                "the callback fixture (not a push)",
                src.post(fixture("docker-hub-callback-1.json")),
                j(400, "missing field"),
            ));
            out.push(case(
                g,
                "repo_name without a namespace",
                src.post(src.set("/repository/repo_name", json!("testhook"))),
                j(200, "no target"),
            ));
            out.push(case(
                g,
                "repo_name of an official image",
                src.post(src.set("/repository/repo_name", json!("library/nginx"))),
                j(200, "no target"),
            ));
            out.push(case(
                g,
                "callback_url to the metadata address (taken; the tag is refused anyway)",
                src.post(src.set(
                    "/callback_url",
                    json!("http://169.254.169.254/latest/meta-data/"),
                )),
                src.refused(),
            ));
        }
        "generic" => {
            out.push(case(
                g,
                "image with a tag and no tag field",
                src.post(br#"{"image":"registry.example.com/team/app:v2"}"#.to_vec()),
                src.refused(),
            ));
            out.push(case(
                g,
                "image normalised: upper-case registry",
                src.post(br#"{"image":"REGISTRY.EXAMPLE.COM/team/app","tag":"v2"}"#.to_vec()),
                src.refused(),
            ));
            out.push(case(
                g,
                "image of Docker Hub",
                src.post(br#"{"image":"nginx","tag":"v2"}"#.to_vec()),
                j(200, "no target"),
            ));
            out.push(case(
                g,
                "duplicate key",
                src.post(
                    br#"{"image":"registry.example.com/team/app","image":"x","tag":"v2"}"#.to_vec(),
                ),
                j(400, "duplicate field"),
            ));
            out.push(case(
                g,
                "a JSON array of events",
                src.post(br#"[{"image":"registry.example.com/team/app","tag":"v2"}]"#.to_vec()),
                j(400, "JSON object"),
            ));
        }
        "github" => {
            out.push(case(
                g,
                "fixture github-1.json (empty tag)",
                src.post(fixture("github-1.json")),
                j(200, "empty tag"),
            ));
            out.push(case(
                g,
                "fixture github-2.json as registry_package (empty tag)",
                src.post(fixture("github-2.json"))
                    .replace("X-GitHub-Event", "registry_package"),
                j(200, "empty tag"),
            ));
            out.push(case(
                g,
                "fixture github-2.json announced as package",
                src.post(fixture("github-2.json")),
                j(400, "missing package"),
            ));
            out.push(case(
                g,
                "event ping",
                src.post(src.base.clone()).replace("X-GitHub-Event", "ping"),
                j(200, "ping"),
            ));
            out.push(case(
                g,
                "event push",
                src.post(src.base.clone()).replace("X-GitHub-Event", "push"),
                j(200, "only package"),
            ));
            out.push(case(
                g,
                "event header missing",
                src.post(src.base.clone()).without("X-GitHub-Event"),
                src.ok(),
            ));
            out.push(case(
                g,
                "event header obs-text",
                src.post(src.base.clone())
                    .replace("X-GitHub-Event", b"pack\xffage"),
                src.ok(),
            ));
            out.push(case(
                g,
                "event ping with a bad signature",
                src.post(src.base.clone())
                    .replace("X-GitHub-Event", "ping")
                    .replace("X-Hub-Signature-256", format!("sha256={}", "0".repeat(64))),
                j(401, "bad signature"),
            ));
            out.push(case(
                g,
                "a 60 KB event name",
                src.post(src.base.clone())
                    .replace("X-GitHub-Event", "e".repeat(10_000)),
                j(200, "only package"),
            ));
        }
        "gitea" => {
            out.push(case(
                g,
                "event push",
                src.post(src.base.clone()).replace("X-Gitea-Event", "push"),
                j(200, "only package"),
            ));
            out.push(case(
                g,
                "Forgejo's event header",
                src.post(src.base.clone())
                    .without("X-Gitea-Event")
                    .header("X-Forgejo-Event", "package"),
                src.ok(),
            ));
            out.push(case(
                g,
                "no event header",
                src.post(src.base.clone()).without("X-Gitea-Event"),
                src.ok(),
            ));
        }
        "harbor" => {
            out.push(case(
                g,
                "a tagged push (the fixture with a tag)",
                src.post(src.tagged("v1.2")),
                src.refused(),
            ));
            out.push(case(
                g,
                "fixture harbor-2.json (CloudEvents)",
                src.post(fixture("harbor-2.json"))
                    .replace("Content-Type", "application/cloudevents+json"),
                j(200, "pushed by digest"),
            ));
            let ce = serde_json::from_slice::<Value>(&fixture("harbor-2.json")).expect("json");
            let ce_tagged = |f: &dyn Fn(&mut Value)| {
                let mut d = ce.clone();
                d["data"]["resources"][0]["tag"] = json!("v1.2");
                f(&mut d);
                serde_json::to_vec(&d).expect("json")
            };
            out.push(case(
                g,
                "CloudEvents, tagged",
                src.post(ce_tagged(&|_| {}))
                    .replace("Content-Type", "application/cloudevents+json"),
                src.refused(),
            ));
            out.push(case(
                g,
                "CloudEvents without an id",
                src.post(ce_tagged(&|d| {
                    d.as_object_mut().unwrap().remove("id");
                }))
                .replace("Content-Type", "application/cloudevents+json"),
                j(400, "missing id"),
            ));
            out.push(case(
                g,
                "CloudEvents with id 5",
                src.post(ce_tagged(&|d| d["id"] = json!(5)))
                    .replace("Content-Type", "application/cloudevents+json"),
                j(400, "invalid type"),
            ));
            out.push(case(
                g,
                "CloudEvents without data",
                src.post(ce_tagged(&|d| {
                    d.as_object_mut().unwrap().remove("data");
                }))
                .replace("Content-Type", "application/cloudevents+json"),
                j(400, "missing data"),
            ));
            out.push(case(
                g,
                "the Default body sent as CloudEvents",
                src.post(src.tagged("v1.2"))
                    .replace("Content-Type", "application/cloudevents+json"),
                j(400, "missing id"),
            ));
            out.push(case(
                g,
                "a resource pushed by digest whose tag is another digest",
                src.post(src.tagged(&format!("sha256:{}", hex64()))),
                j(200, "pushed by digest"),
            ));
            out.push(case(
                g,
                "two resources, one refused, one hostile",
                src.post(src.mutate(|d| {
                    let mut r = d["event_data"]["resources"][0].clone();
                    r["tag"] = json!("v1.2");
                    let mut bad = r.clone();
                    bad["tag"] = json!("$(id)");
                    d["event_data"]["resources"] = json!([r, bad]);
                })),
                src.refused(),
            ));
        }
        "quay" => {
            out.push(case(
                g,
                "the Quay test notification's tags",
                src.post(src.set("/updated_tags", json!(["latest", "foo"]))),
                src.refused(),
            ));
            out.push(case(
                g,
                "1000 hostile tags",
                src.post(src.set("/updated_tags", json!(vec!["$(id)"; 1000]))),
                j(200, "updated_tags[999]"),
            ));
        }
        "acr" => {
            out.push(case(
                g,
                "the verbatim header Harbor-style: Bearer <secret>",
                src.bare(src.base.clone())
                    .header("Authorization", format!("Bearer {}", src.secret)),
                src.ok(),
            ));
        }
        "gar" => {
            out.push(case(
                g,
                "fixture gcp-2.json (digest only)",
                src.post(fixture("gcp-2.json")),
                j(200, "by digest"),
            ));
            out.push(case(
                g,
                "fixture gcp-3.json (Pub/Sub envelope)",
                src.post(fixture("gcp-3.json")),
                src.ok(),
            ));
            let env = |data: Value| {
                let mut d: Value = serde_json::from_slice(&fixture("gcp-3.json")).expect("json");
                d["message"]["data"] = data;
                serde_json::to_vec(&d).expect("json")
            };
            out.push(case(
                g,
                "envelope: data 5",
                src.post(env(json!(5))),
                j(400, "invalid type"),
            ));
            out.push(case(
                g,
                "envelope: data null",
                src.post(env(json!(null))),
                j(400, "missing message.data"),
            ));
            out.push(case(
                g,
                "envelope: data not base64",
                src.post(env(json!("!!!not base64!!!"))),
                j(400, "not base64"),
            ));
            out.push(case(
                g,
                "envelope: data base64url",
                src.post(env(json!("-_-_"))),
                j(400, "not base64"),
            ));
            out.push(case(
                g,
                "envelope: data []",
                src.post(env(json!(b64(b"[]")))),
                j(400, "in message.data: expected a JSON object"),
            ));
            out.push(case(
                g,
                "envelope: data empty",
                src.post(env(json!(""))),
                j(400, "in message.data"),
            ));
            out.push(case(
                g,
                "envelope: data invalid UTF-8",
                src.post(env(json!(b64(b"{\"action\":\"\xff\"}")))),
                j(400, "in message.data"),
            ));
            out.push(case(
                g,
                "envelope: data with an unknown member nested 10 000 deep (skipped)",
                src.post(env(json!(b64(format!(
                    "{{\"a\":{}}}",
                    nested_arrays(10_000)
                )
                .as_bytes())))),
                j(400, "in message.data: missing action"),
            ));
            out.push(case(
                g,
                "envelope: data with the action nested 10 000 deep",
                src.post(env(json!(b64(format!(
                    "{{\"action\":{}}}",
                    nested_arrays(10_000)
                )
                .as_bytes())))),
                j(400, "in message.data: invalid type"),
            ));
            out.push(case(
                g,
                "envelope: data with a hostile tag",
                src.post(env(json!(b64(format!(
                    "{{\"action\":\"INSERT\",\"tag\":\"{GAR_REF}:$(id)\"}}"
                )
                .as_bytes())))),
                j(400, "in message.data: tag:"),
            ));
            out.push(case(
                g,
                "envelope: messageId 5",
                src.post(
                    serde_json::to_vec(&{
                        let mut d: Value =
                            serde_json::from_slice(&fixture("gcp-3.json")).expect("json");
                        d["message"]["messageId"] = json!(5);
                        d
                    })
                    .expect("json"),
                ),
                j(400, "invalid type"),
            ));
            out.push(case(
                g,
                "a Pub/Sub OIDC token as the only credential",
                src.bare(src.base.clone()).header("Authorization", "Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.eyJpc3MiOiJhY2NvdW50cy5nb29nbGUuY29tIn0.c2ln"),
                j(401, "wrong secret"),
            ));
        }
        _ => {}
    }
}

/// Replays: the original delivery is recorded in the state file first, as the hook records
/// an accepted one (here without deployments); the resend carries a tag the target takes, so
/// only recognising it as a replay keeps it from queuing a deploy.
struct Replay {
    hook: &'static str,
    event: ImagePushed,
    req: Req,
}

fn replays(srcs: &[Src]) -> Vec<Replay> {
    const TAG: &str = "never-replayed";
    let src = |n: &str| srcs.iter().find(|s| s.name == n).expect("source");
    let image = |n: &str| {
        ImageName::parse(IMAGES.iter().find(|(h, _)| *h == n).expect("image").1).expect("image")
    };
    let event = |n: &str, digest: Option<String>, delivery: Option<&str>| ImagePushed {
        image: image(n),
        tag: TAG.to_string(),
        digest,
        delivery: delivery.map(str::to_string),
        callback_url: None,
    };
    let mut out = Vec::new();
    let s = src("distribution");
    out.push(Replay {
        hook: "distribution",
        event: event("distribution", None, Some("replayed-dist-1")),
        req: s.post(s.mutate(|d| {
            set_ptr(d, s.tag_ptr, json!(TAG));
            set_ptr(d, "/events/0/id", json!("replayed-dist-1"));
        })),
    });
    let s = src("dockerhub");
    out.push(Replay {
        hook: "dockerhub",
        event: event("dockerhub", None, None),
        req: s.post(s.tagged(TAG)),
    });
    let s = src("generic");
    out.push(Replay {
        hook: "generic",
        event: event("generic", None, None),
        req: s.post(format!(
            r#"{{"image":"registry.example.com/team/app","tag":"{TAG}"}}"#
        )),
    });
    let s = src("github");
    out.push(Replay {
        hook: "github",
        event: event("github", None, Some("replayed-gh-1")),
        req: s
            .post(s.tagged(TAG))
            .replace("X-GitHub-Delivery", "replayed-gh-1"),
    });
    let s = src("gitea");
    out.push(Replay {
        hook: "gitea",
        event: event("gitea", None, Some("replayed-gt-1")),
        req: s
            .post(s.tagged(TAG))
            .replace("X-Gitea-Delivery", "replayed-gt-1"),
    });
    let s = src("harbor");
    let harbor_digest = s.doc()["event_data"]["resources"][0]["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    out.push(Replay {
        hook: "harbor",
        event: event("harbor", Some(harbor_digest), None),
        req: s.post(s.tagged(TAG)),
    });
    let mut ce: Value = serde_json::from_slice(&fixture("harbor-2.json")).expect("json");
    ce["id"] = json!("replayed-hb-1");
    ce["data"]["resources"][0]["tag"] = json!(TAG);
    out.push(Replay {
        hook: "harbor",
        event: event("harbor", None, Some("replayed-hb-1")),
        req: s
            .post(serde_json::to_vec(&ce).expect("json"))
            .replace("Content-Type", "application/cloudevents+json"),
    });
    let s = src("quay");
    out.push(Replay {
        hook: "quay",
        event: event("quay", None, None),
        req: s.post(s.tagged(TAG)),
    });
    let s = src("acr");
    out.push(Replay {
        hook: "acr",
        event: event("acr", None, Some("replayed-acr-1")),
        req: s.post(s.mutate(|d| {
            set_ptr(d, s.tag_ptr, json!(TAG));
            set_ptr(d, "/id", json!("replayed-acr-1"));
        })),
    });
    let s = src("gar");
    out.push(Replay {
        hook: "gar",
        event: event("gar", None, Some("replayed-gar-1")),
        req: s
            .post(s.tagged(TAG))
            .header("x-goog-pubsub-message-id", "replayed-gar-1"),
    });
    let mut env: Value = serde_json::from_slice(&fixture("gcp-3.json")).expect("json");
    env["message"]["data"] = json!(b64(format!(
        r#"{{"action":"INSERT","tag":"{GAR_REF}:{TAG}"}}"#
    )
    .as_bytes()));
    env["message"]["messageId"] = json!("replayed-gar-2");
    out.push(Replay {
        hook: "gar",
        event: event("gar", None, Some("replayed-gar-2")),
        req: s.post(serde_json::to_vec(&env).expect("json")),
    });
    out
}

/// Unknown hooks, routes and path tricks: none of them is a hook.
fn unknown_hooks(out: &mut Vec<Case>) {
    let g = "front door";
    let body = br#"{"image":"registry.example.com/team/app","tag":"v2"}"#.to_vec();
    let post = |path: &str| {
        Req::new("POST", path)
            .header("Authorization", format!("Bearer {}", secret("generic")))
            .header("Content-Type", JSON)
            .body(body.clone())
    };
    let hook404 = || j(404, "no such hook");
    let route404 = || j(404, "no such route");
    let paths: Vec<(String, Expect)> = vec![
        ("/hooks/nope".into(), hook404()),
        ("/hooks/..%2F..%2Fetc".into(), hook404()),
        ("/hooks/..%2f..%2fetc%2fpasswd".into(), hook404()),
        ("/hooks/%2e%2e".into(), hook404()),
        ("/hooks/..".into(), hook404()),
        ("/hooks/.".into(), hook404()),
        ("/hooks/%2Fgeneric".into(), hook404()),
        ("/hooks/generic%2F".into(), hook404()),
        ("/hooks/generic%00".into(), hook404()),
        ("/hooks/generic%20".into(), hook404()),
        ("/hooks/%20generic".into(), hook404()),
        ("/hooks/GENERIC".into(), hook404()),
        ("/hooks/generic;x=1".into(), hook404()),
        ("/hooks/*".into(), hook404()),
        ("/hooks/%".into(), hook404()),
        (format!("/hooks/{}", "a".repeat(65)), hook404()),
        (format!("/hooks/{}", "a".repeat(5000)), hook404()),
        ("/hooks/".into(), route404()),
        ("/hooks".into(), route404()),
        ("/hooks//generic".into(), route404()),
        ("/hooks/generic/".into(), route404()),
        ("/hooks/generic/..".into(), route404()),
        ("/hooks/../hooks/generic".into(), route404()),
        ("/hooks/./generic".into(), route404()),
        ("//hooks/generic".into(), route404()),
        ("/HOOKS/generic".into(), route404()),
        ("/hooks/generic/extra".into(), route404()),
        ("/api/../hooks/generic".into(), route404()),
        ("/".into(), route404()),
        ("/healthz/../hooks/generic".into(), route404()),
    ];
    for (p, e) in paths {
        out.push(case(g, format!("path {}", short(&p)), post(&p), e));
    }
    // A hook name that is not UTF-8 names no hook: 404, in JSON like every refusal.
    let mut not_utf8 = case(
        g,
        "BUG#2: /hooks/%ff (a name that is not UTF-8) is answered a plain-text 400 (axum's Path rejection) instead of a JSON 404",
        post("/hooks/%ff"),
        hook404(),
    );
    not_utf8.bug = true;
    out.push(not_utf8);
    out.push(case(
        g,
        "GET an unknown hook: 404 before 405",
        Req::new("GET", "/hooks/nope").framing(Framing::None),
        hook404(),
    ));
    out.push(case(
        g,
        "unknown hook without a secret: 404 before 401",
        Req::new("POST", "/hooks/nope").body(body.clone()),
        hook404(),
    ));
    // The hook exists: percent-encoding in the path is decoded, as URLs mean.
    out.push(case(
        g,
        "path /hooks/%67eneric is the generic hook",
        Req::new("POST", "/hooks/%67eneric").body(body.clone()),
        j(401, "missing secret"),
    ));
    out.push(case(
        g,
        "absolute-form target names the generic hook",
        Req::new("POST", "http://evil.example/hooks/generic").body(body.clone()),
        j(401, "missing secret"),
    ));
}

/// The hook limited by `allow_ips`: 403 comes before every other check but 404.
fn fenced(out: &mut Vec<Case>) {
    let g = "front door";
    let body = br#"{"image":"registry.example.com/team/app","tag":"v2"}"#.to_vec();
    let post = || {
        Req::new("POST", "/hooks/fenced")
            .header("Authorization", format!("Bearer {}", FENCED.1))
            .header("Content-Type", JSON)
            .body(body.clone())
    };
    let e = || j(403, "may not call this hook");
    out.push(case(
        g,
        "fenced: genuine, from outside allow_ips",
        post(),
        e(),
    ));
    out.push(case(
        g,
        "fenced: X-Forwarded-For inside allow_ips (no trusted proxy)",
        post().header("X-Forwarded-For", "10.0.0.1"),
        e(),
    ));
    out.push(case(
        g,
        "fenced: X-Real-IP inside allow_ips",
        post().header("X-Real-IP", "10.0.0.1"),
        e(),
    ));
    out.push(case(
        g,
        "fenced: Forwarded: for=10.0.0.1",
        post().header("Forwarded", "for=10.0.0.1"),
        e(),
    ));
    out.push(case(
        g,
        "fenced: wrong secret: 403 before 401",
        post().replace("Authorization", "Bearer nope"),
        e(),
    ));
    out.push(case(
        g,
        "fenced: GET: 403 before 405",
        post().method("GET"),
        e(),
    ));
    out.push(case(
        g,
        "fenced: too large: 403 before 413",
        post().body(vec![b' '; LIMIT + 1]),
        e(),
    ));
}

/// Framing and protocol abuse, answered by hyper or by dockhand.
fn protocol(out: &mut Vec<Case>) {
    let g = "front door";
    let s = secret("generic");
    let body = r#"{"image":"registry.example.com/team/app","tag":"v2"}"#;
    let head = |extra: &str| {
        format!(
            "POST /hooks/generic HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {s}\r\nContent-Type: application/json\r\n{extra}"
        )
    };
    let chunked = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    out.push(case(
        g,
        "Content-Length and Transfer-Encoding: chunked wins",
        Req::raw(format!(
            "{}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}",
            head("")
        )),
        j(422, "is refused"),
    ));
    out.push(case(
        g,
        "a lying Content-Length beside chunked, 70 KB",
        Req::new("POST", "/hooks/generic")
            .header("Authorization", format!("Bearer {s}"))
            .header("Content-Type", JSON)
            .header("Content-Length", "10")
            .body(vec![b' '; 70_000])
            .framing(Framing::Chunked),
        j(413, "body_limit"),
    ));
    out.push(case(
        g,
        "two different Content-Lengths",
        Req::raw(format!(
            "{}Content-Length: {}\r\nContent-Length: 5\r\n\r\n{body}",
            head(""),
            body.len()
        )),
        Expect::Bare(400),
    ));
    out.push(case(
        g,
        "Content-Length: +52",
        Req::raw(format!(
            "{}Content-Length: +{}\r\n\r\n{body}",
            head(""),
            body.len()
        )),
        Expect::Bare(400),
    ));
    out.push(case(
        g,
        "Content-Length: -1",
        Req::raw(format!("{}Content-Length: -1\r\n\r\n{body}", head(""))),
        Expect::Bare(400),
    ));
    out.push(case(
        g,
        "Content-Length beyond u64",
        Req::raw(format!(
            "{}Content-Length: 99999999999999999999999\r\n\r\n{body}",
            head("")
        )),
        Expect::Bare(400),
    ));
    out.push(case(
        g,
        "Transfer-Encoding: gzip",
        Req::raw(format!("{}Transfer-Encoding: gzip\r\n\r\n{body}", head(""))),
        Expect::Bare(400),
    ));
    out.push(case(
        g,
        "Transfer-Encoding: chunked over HTTP/1.0",
        Req::raw(
            format!("{}Transfer-Encoding: chunked\r\n\r\n{chunked}", head(""))
                .replacen("HTTP/1.1", "HTTP/1.0", 1),
        ),
        Expect::Bare(400),
    ));
    out.push(case(
        g,
        "a header line without a colon",
        Req::raw(format!(
            "{}Bogus\r\nContent-Length: {}\r\n\r\n{body}",
            head(""),
            body.len()
        )),
        Expect::Bare(400),
    ));
    out.push(case(
        g,
        "obs-fold header continuation",
        Req::raw(format!(
            "{}X-A: 1\r\n  folded\r\nContent-Length: {}\r\n\r\n{body}",
            head(""),
            body.len()
        )),
        Expect::Bare(400),
    ));
    out.push(case(
        g,
        "a NUL in a header value",
        Req::raw(format!(
            "{}X-A: a\0b\r\nContent-Length: {}\r\n\r\n{body}",
            head(""),
            body.len()
        )),
        Expect::Bare(400),
    ));
    out.push(case(
        g,
        "a space in the request target",
        Req::raw(format!("POST /hooks/gen eric HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len())),
        Expect::Bare(400),
    ));
    out.push(case(
        g,
        "HTTP/2.0 on an HTTP/1 connection",
        Req::raw(format!("POST /hooks/generic HTTP/2.0\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len())),
        Expect::Bare(400),
    ));
    out.push(case(
        g,
        "garbage instead of a request",
        Req::raw(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n".to_vec()),
        Expect::ClosedOr(400),
    ));
    out.push(case(
        g,
        "an HTTP/2 preface",
        Req::raw(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()),
        Expect::ClosedOr(400),
    ));
    // BUG#1 (fixed): every error reading the body was answered 413 "body over the limit",
    // though only one of them is about size. A malformed or cut-short body is a malformed
    // request: 400.
    let mut bad_chunk = case(
        g,
        "BUG#1: a malformed chunk size is answered 413 (body over the limit) instead of 400",
        Req::raw(format!(
            "{}Transfer-Encoding: chunked\r\n\r\nzz\r\n{body}\r\n0\r\n\r\n",
            head("")
        )),
        j(400, ""),
    );
    bad_chunk.bug = true;
    out.push(bad_chunk);
    let mut overflow = case(
        g,
        "BUG#1: a chunk size beyond u64 is answered 413 (body over the limit) instead of 400",
        Req::raw(format!(
            "{}Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n{body}\r\n0\r\n\r\n",
            head("")
        )),
        j(400, ""),
    );
    overflow.bug = true;
    out.push(overflow);
    let mut truncated = case(
        g,
        "BUG#1: a body cut short by the client (declared 1000, sent 10, then EOF) is answered 413 (body over the limit) instead of 400",
        Req::new("POST", "/hooks/generic")
            .header("Authorization", format!("Bearer {s}"))
            .header("Content-Type", JSON)
            .body(&body.as_bytes()[..10])
            .framing(Framing::Truncated(1000)),
        j(400, ""),
    );
    truncated.bug = true;
    out.push(truncated);
    out.push(case(
        g,
        "bare LF line endings",
        Req::raw(
            format!("{}Content-Length: {}\r\n\r\n{body}", head(""), body.len())
                .replace("\r\n", "\n"),
        ),
        j(422, "is refused"),
    ));
    out.push(case(
        g,
        "Expect: 100-continue with a large declared body and no secret",
        Req::raw("POST /hooks/generic HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 60000\r\n\r\n"),
        j(401, "missing secret"),
    ));
}

/// Heads over `max_header_bytes`: hyper closes or answers 431; the server must live on.
fn big_heads(out: &mut Vec<Case>) {
    let g = "front door";
    let body = br#"{"image":"registry.example.com/team/app","tag":"v2"}"#.to_vec();
    let post = || {
        Req::new("POST", "/hooks/generic")
            .header("Authorization", format!("Bearer {}", secret("generic")))
            .header("Content-Type", JSON)
            .body(body.clone())
    };
    out.push(case(
        g,
        "a 64 KB header value",
        post().header("X-Pad", "a".repeat(65536)),
        Expect::ClosedOr(431),
    ));
    out.push(case(
        g,
        "a 64 KB Authorization",
        post().replace("Authorization", format!("Bearer {}", "a".repeat(65536))),
        Expect::ClosedOr(431),
    ));
    out.push(case(
        g,
        "a 20 KB path",
        post().target(format!("/hooks/{}", "a".repeat(20_000))),
        Expect::ClosedOr(431),
    ));
    out.push(case(
        g,
        "a 64 KB query",
        post().target(format!("/hooks/generic?token={}", "a".repeat(65536))),
        Expect::ClosedOr(431),
    ));
    let mut many = post();
    for i in 0..200 {
        many = many.header(&format!("X-H{i}"), "1");
    }
    out.push(case(g, "200 headers", many, Expect::ClosedOr(431)));
    out.push(case(
        g,
        "a 64 KB header name",
        post().header(&"X".repeat(65536), "1"),
        Expect::ClosedOr(431),
    ));
    out.push(case(
        g,
        "a 15 KB header value (under max_header_bytes)",
        post().header("X-Pad", "a".repeat(15_000)),
        j(422, "is refused"),
    ));
}

/// Bodies that never finish: 408 after `body_timeout` (run concurrently).
fn slow(srcs: &[Src]) -> Vec<Case> {
    let mut out = Vec::new();
    for src in srcs {
        let g = group(src);
        let half = src.base[..src.base.len() / 2].to_vec();
        out.push(case(
            g,
            "slow: declared length, half the body, then silence",
            src.post(src.base.clone())
                .body(half.clone())
                .framing(Framing::Declared(src.base.len() as u64)),
            j(408, "body_timeout"),
        ));
        out.push(case(
            g,
            "slow: one chunk, then silence",
            src.post(src.base.clone())
                .framing(Framing::ChunkedUnfinished),
            j(408, "body_timeout"),
        ));
    }
    out
}

fn corpus(srcs: &[Src]) -> Vec<Case> {
    let mut out = Vec::new();
    for src in srcs {
        valid_fixtures(src, &mut out);
        bad_json(src, &mut out);
        deep_nesting(src, &mut out);
        huge_strings(src, &mut out);
        sizes(src, &mut out);
        methods(src, &mut out);
        content_types(src, &mut out);
        match src.style {
            Style::Hub | Style::Gitea => signatures(src, &mut out),
            _ => tokens(src, &mut out),
        }
        tag_injection(src, &mut out);
        repo_injection(src, &mut out);
        host_injection(src, &mut out);
        wrong_types(src, &mut out);
        specific(src, &mut out);
    }
    unknown_hooks(&mut out);
    fenced(&mut out);
    protocol(&mut out);
    big_heads(&mut out);
    out
}

async fn alive(addr: SocketAddr) -> Result<u16, String> {
    let a = exchange(addr, &Req::new("GET", "/healthz").framing(Framing::None)).await?;
    match a.status {
        200 | 503 => Ok(a.status),
        s => Err(format!("/healthz answered {s}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_requests_get_exact_answers_and_never_reach_the_engine() {
    let started = Instant::now();
    let (listener, _url) = Dockhand::bind();
    let missing = unique("hostile");
    let dockhand = Dockhand::start_with_server(
        listener,
        &format!("body_limit = {LIMIT}\nauth_failures = 0\ndedupe_window = \"10m\"\nbody_timeout = \"1s\""),
        &config(&missing),
    )
    .await;
    let addr = dockhand.app().addr;
    let engine = &dockhand.app().engine;
    assert_eq!(engine.calls(), 0, "dockhand called the engine at start");

    let srcs = sources();
    let mut cases = corpus(&srcs);
    // Replays: record each original, then send the resend twice.
    for r in replays(&srcs) {
        let recorded = dockhand
            .app()
            .store
            .record_event(
                r.hook,
                r.hook,
                &r.event,
                Vec::new(),
                Duration::from_secs(600),
            )
            .await
            .expect("record the original delivery");
        assert!(
            matches!(recorded, dockhand::store::Recorded::Queued(ref q) if q.is_empty()),
            "the original of a replay was already recorded"
        );
        for i in 1..=2 {
            cases.push(case(
                r.hook,
                format!(
                    "replay #{i} of {} {}",
                    r.event.delivery.as_deref().unwrap_or("(no delivery id)"),
                    if r.req
                        .headers
                        .iter()
                        .any(|(_, v)| v == b"application/cloudevents+json")
                    {
                        "(CloudEvents)"
                    } else {
                        ""
                    }
                ),
                r.req.clone(),
                j(200, "a replay of event"),
            ));
        }
    }

    let mut failures: Vec<String> = Vec::new();
    let mut bugs: Vec<String> = Vec::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    // /healthz asks the engine for its version: those calls are the probe's, not the cases'.
    // Between two probes the count must not move; a move names the cases sent meanwhile.
    let mut probe_calls = 0u64;
    let mut calls_seen = engine.calls();
    let mut since_probe: Vec<String> = Vec::new();
    let check_calls = |failures: &mut Vec<String>, since: &mut Vec<String>, seen: u64| {
        let calls = engine.calls();
        if calls != seen {
            failures.push(format!(
                "the Engine API was called {} time(s) by one of: {}",
                calls - seen,
                since.join(" | ")
            ));
        }
        since.clear();
    };
    for (i, c) in cases.iter().enumerate() {
        *counts.entry(c.group).or_default() += 1;
        let got = exchange(addr, &c.req).await;
        if let Err(e) = verdict(c, &got) {
            let line = format!("[{}] {}: {e}", c.group, c.name);
            if c.bug {
                bugs.push(line);
            } else {
                failures.push(line);
            }
        }
        since_probe.push(format!("[{}] {}", c.group, c.name));
        let big_head = matches!(c.expect, Expect::ClosedOr(_));
        if big_head || (i + 1) % ALIVE_EVERY == 0 {
            check_calls(&mut failures, &mut since_probe, calls_seen);
            let before = engine.calls();
            let answered = alive(addr).await;
            calls_seen = engine.calls();
            // One call (its version request); anything more came from elsewhere.
            probe_calls += (calls_seen - before).min(1);
            if let Err(e) = answered {
                failures.push(format!(
                    "after [{}] {}: the server no longer answers: {e}",
                    c.group, c.name
                ));
                break;
            }
        }
    }

    // Bodies that never finish, all at once: each waits for body_timeout.
    let slow_cases = slow(&srcs);
    let answers =
        futures_util::future::join_all(slow_cases.iter().map(|c| exchange(addr, &c.req))).await;
    for (c, got) in slow_cases.iter().zip(&answers) {
        *counts.entry(c.group).or_default() += 1;
        if let Err(e) = verdict(c, got) {
            failures.push(format!("[{}] {}: {e}", c.group, c.name));
        }
        since_probe.push(format!("[{}] {}", c.group, c.name));
    }

    check_calls(&mut failures, &mut since_probe, calls_seen);
    let before = engine.calls();
    if let Err(e) = alive(addr).await {
        failures.push(format!("at the end, the server no longer answers: {e}"));
    }
    probe_calls += (engine.calls() - before).min(1);
    let by_cases = engine.calls() - probe_calls;
    if by_cases != 0 {
        failures.push(format!("the cases made {by_cases} Engine API call(s)"));
    }
    let deployments = dockhand.deployments().await;
    if !deployments.is_empty() {
        failures.push(format!("deployments were queued: {deployments:?}"));
    }

    let total: usize = counts.values().sum();
    println!(
        "hostile corpus: {total} cases in {:?}; Engine API calls by the cases: {by_cases} \
         (by the /healthz probes: {probe_calls})",
        started.elapsed()
    );
    for (group, n) in &counts {
        println!("  {group:>14}: {n}");
    }
    for b in &bugs {
        println!("REGRESSION (a fixed bug is back): {b}");
    }
    assert!(total >= 300, "only {total} cases");
    failures.extend(bugs.into_iter().map(|b| format!("BUG in src/: {b}")));
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
