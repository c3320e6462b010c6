//! The front door under attack and behind proxies: real TLS with a certificate swap,
//! allow_ips, trusted proxies, the failed-auth limit, slow and oversized requests.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

const HOOKS: &str = r#"
[[hooks]]
name = "ci"
source = "generic"
token = "test-s3cret-token"
"#;

fn ignored_body() -> serde_json::Value {
    serde_json::json!({"image": "127.0.0.1:5000/nobody-runs-this", "tag": "v1"})
}

/// A client that trusts only the certificate at `cert`.
fn client_trusting(cert: &Path, addr: SocketAddr) -> reqwest::Client {
    let pem = std::fs::read(cert).expect("cert");
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
        .resolve("localhost", addr)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

fn self_signed(cert: &Path, key: &Path) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dockhand"))
        .args(["tls", "self-signed", "--host", "localhost", "--cert"])
        .arg(cert)
        .arg("--key")
        .arg(key)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn post(client: &reqwest::Client, url: &str) -> reqwest::Result<reqwest::Response> {
    client
        .post(url)
        .bearer_auth(TOKEN)
        .json(&ignored_body())
        .send()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_generated_certificate_and_a_swap_mid_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("d.crt"), dir.path().join("d.key"));
    self_signed(&cert, &key);
    let first_cert = dir.path().join("first.crt");
    std::fs::copy(&cert, &first_cert).expect("copy");

    let (listener, _) = Dockhand::bind();
    let addr = listener.local_addr().expect("addr");
    let _dockhand = Dockhand::start_with_server(
        listener,
        &format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"",
            cert.display(),
            key.display()
        ),
        HOOKS,
    )
    .await;
    let url = format!("https://localhost:{}/hooks/ci", addr.port());

    // A client that trusts the generated certificate delivers a hook.
    let trusting_first = client_trusting(&first_cert, addr);
    let r = post(&trusting_first, &url).await.expect("TLS request");
    assert_eq!(r.status().as_u16(), 200);
    // One that trusts only the usual roots refuses the connection.
    let stranger = reqwest::Client::builder()
        .resolve("localhost", addr)
        .build()
        .expect("client");
    assert!(
        post(&stranger, &url).await.is_err(),
        "a self-signed certificate must not be trusted by default"
    );
    // Plain HTTP on the TLS port gets nowhere.
    let plain = reqwest::get(format!("http://127.0.0.1:{}/healthz", addr.port())).await;
    assert!(plain.is_err() || !plain.expect("answer").status().is_success());

    // Swap the certificate on disk: new handshakes get the new one.
    tokio::time::sleep(Duration::from_millis(1100)).await; // a distinct mtime second
    self_signed(&cert, &key);
    let trusting_second = client_trusting(&cert, addr);
    wait_for(
        "the new certificate to be served",
        Duration::from_secs(15),
        || async {
            post(&trusting_second, &url)
                .await
                .ok()
                .filter(|r| r.status().as_u16() == 200)
        },
    )
    .await;
    let fresh_first = client_trusting(&first_cert, addr);
    assert!(
        post(&fresh_first, &url).await.is_err(),
        "new handshakes must use the new certificate"
    );
    // The connection opened before the swap was not dropped: it still carries requests.
    let r = post(&trusting_first, &url)
        .await
        .expect("the old connection still works");
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_ips_and_trusted_proxies() {
    let (listener, url) = Dockhand::bind();
    let config = format!(
        "{HOOKS}allow_ips = [\"198.51.100.0/24\"]\n[[hooks]]\nname = \"local\"\nsource = \"generic\"\ntoken = \"{TOKEN}\"\nallow_ips = [\"127.0.0.1\"]\n"
    );
    let dockhand =
        Dockhand::start_with_server(listener, "trusted_proxies = [\"127.0.0.1/32\"]", &config)
            .await;
    let client = reqwest::Client::new();
    let send = |hook: &str, xff: Option<&str>| {
        let mut r = client
            .post(format!("{url}/hooks/{hook}"))
            .bearer_auth(TOKEN)
            .json(&ignored_body());
        if let Some(x) = xff {
            r = r.header("x-forwarded-for", x);
        }
        r.send()
    };
    // From loopback itself: not in the first hook's range.
    let r = send("ci", None).await.expect("post");
    assert_eq!(r.status().as_u16(), 403);
    // Through the trusted proxy (loopback) for an allowed client: in.
    let r = send("ci", Some("198.51.100.7")).await.expect("post");
    assert_eq!(r.status().as_u16(), 200);
    // A forged hop further out does not help a disallowed client.
    let r = send("ci", Some("198.51.100.7, 203.0.113.5"))
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 403);
    let r = send("local", None).await.expect("post");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(dockhand.app().engine.calls(), 0);

    // Without trusted proxies the header is ignored.
    let (listener, url) = Dockhand::bind();
    let _plain = Dockhand::start(listener, &config).await;
    let r = reqwest::Client::new()
        .post(format!("{url}/hooks/ci"))
        .bearer_auth(TOKEN)
        .header("x-forwarded-for", "198.51.100.7")
        .json(&ignored_body())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_auth_is_limited_per_address_and_genuine_senders_are_not_slowed() {
    let (listener, url) = Dockhand::bind();
    let _dockhand = Dockhand::start_with_server(
        listener,
        "trusted_proxies = [\"127.0.0.1\"]\nauth_failures = 3",
        HOOKS,
    )
    .await;
    let client = reqwest::Client::new();
    let send = |token: &'static str, from: &'static str| {
        client
            .post(format!("{url}/hooks/ci"))
            .bearer_auth(token)
            .header("x-forwarded-for", from)
            .json(&ignored_body())
            .send()
    };
    for _ in 0..3 {
        assert_eq!(
            send("guess", "203.0.113.66")
                .await
                .expect("post")
                .status()
                .as_u16(),
            401
        );
    }
    let r = send("guess", "203.0.113.66").await.expect("post");
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    // Even the right secret waits, from that address...
    assert_eq!(
        send(TOKEN, "203.0.113.66")
            .await
            .expect("post")
            .status()
            .as_u16(),
        429
    );
    // ...while the registry, elsewhere, is answered as usual.
    assert_eq!(
        send(TOKEN, "198.51.100.20")
            .await
            .expect("post")
            .status()
            .as_u16(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_oversized_requests_are_cut_off_and_others_still_served() {
    let (listener, url) = Dockhand::bind();
    let addr = listener.local_addr().expect("addr");
    let _dockhand = Dockhand::start_with_server(
        listener,
        "header_timeout = \"1s\"\nbody_timeout = \"1s\"\nmax_header_bytes = 8192",
        HOOKS,
    )
    .await;

    // Slow-loris: a head that never ends. The server closes the connection.
    let mut slow = std::net::TcpStream::connect(addr).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    slow.write_all(b"POST /hooks/ci HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .expect("write");
    // Meanwhile, a normal client is served.
    let r = reqwest::Client::new()
        .post(format!("{url}/hooks/ci"))
        .bearer_auth(TOKEN)
        .json(&ignored_body())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200);
    // The server closes it: end of stream (Ok), not our 10 s read timeout (Err).
    let mut buf = Vec::new();
    let ended = slow.read_to_end(&mut buf);
    assert!(
        ended.is_ok(),
        "the slow connection was not closed: {ended:?}"
    );
    assert!(
        buf.is_empty() || buf.starts_with(b"HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );

    // A body that stops halfway: 408.
    let mut stalled = std::net::TcpStream::connect(addr).expect("connect");
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stalled
        .write_all(format!("POST /hooks/ci HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"image\"").as_bytes())
        .expect("write");
    let mut answer = [0u8; 64];
    let n = stalled.read(&mut answer).expect("an answer");
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&answer[..n])
    );

    // A head over max_header_bytes: refused (431 or closed), and the server goes on.
    let huge = "x".repeat(64 * 1024);
    let r = reqwest::Client::new()
        .post(format!("{url}/hooks/ci"))
        .header("x-huge", huge)
        .bearer_auth(TOKEN)
        .json(&ignored_body())
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status().as_u16(), 431);
    }
    let r = reqwest::get(format!("{url}/healthz"))
        .await
        .expect("still answers");
    assert!(r.status().as_u16() == 200 || r.status().as_u16() == 503);
}
