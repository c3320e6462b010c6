//! The lab the integration tests run in: the real Docker Engine (brought up by
//! `scripts/lab.sh up`), a real CNCF Distribution registry per test whose notifications
//! point at that test's own dockhand, and helpers to wait on real state by polling.
//!
//! Every name a test creates is unique (`dh-<what>-<random>`), and a [`Cleanup`] guard
//! removes it even when the test fails. Processes are stopped by the pid this harness
//! started.

#![allow(dead_code)]

use dockhand::app::App;
use dockhand::config::Config;
use dockhand::store::{DeployState, Deployment};
use std::future::Future;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The lab's images (built by scripts/lab.sh): httpd serving its version on :8080.
pub const APP: &str = "dockhand-lab/app";
/// The Docker Hub mirror the lab configures in dockerd (see scripts/lab.sh).
pub const HUB_MIRROR: &str = "127.0.0.1:5599";
/// The token every test hook uses.
pub const TOKEN: &str = "test-s3cret-token";

/// A short random suffix for names.
pub fn unique(what: &str) -> String {
    format!(
        "dh-{what}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Runs `docker ARGS`, panicking with its output if it fails.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker: {e}; run scripts/lab.sh up"));
    assert!(
        out.status.success(),
        "docker {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs `docker ARGS`, ignoring failure (for cleanup).
pub fn docker_quiet(args: &[&str]) {
    let _ = Command::new("docker")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Fails the test early, with what to do, when the lab is not up.
pub fn require_lab() {
    let ok = Command::new("docker")
        .args([
            "image",
            "inspect",
            &format!("{APP}:v1"),
            &format!("{APP}:crash"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the Docker lab is not up (no engine or no test images): run `scripts/lab.sh up` as root"
    );
}

/// A free loopback port.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Removes what a test created, when dropped.
#[derive(Default)]
pub struct Cleanup {
    containers: Vec<String>,
    services: Vec<String>,
    networks: Vec<String>,
    volumes: Vec<String>,
}

impl Cleanup {
    pub fn container(&mut self, name: &str) {
        self.containers.push(name.to_string());
    }
    pub fn service(&mut self, name: &str) {
        self.services.push(name.to_string());
    }
    pub fn network(&mut self, name: &str) {
        self.networks.push(name.to_string());
    }
    pub fn volume(&mut self, name: &str) {
        self.volumes.push(name.to_string());
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for s in &self.services {
            docker_quiet(&["service", "rm", s]);
        }
        for c in &self.containers {
            // Also anything a failed deploy left parked under NAME-dockhand-old-ID.
            let parked = Command::new("docker")
                .args([
                    "ps",
                    "-aq",
                    "--filter",
                    &format!("name=^/{c}-dockhand-old-"),
                ])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
                .unwrap_or_default();
            for id in parked.split_whitespace() {
                docker_quiet(&["rm", "-f", id]);
            }
            docker_quiet(&["rm", "-f", c]);
        }
        if !self.services.is_empty() {
            // Service tasks let go of their network a moment after the service is removed.
            for n in &self.networks {
                let deadline = Instant::now() + Duration::from_secs(20);
                while Command::new("docker")
                    .args(["network", "rm", n])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| !s.success())
                    && Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        } else {
            for n in &self.networks {
                docker_quiet(&["network", "rm", n]);
            }
        }
        for v in &self.volumes {
            docker_quiet(&["volume", "rm", "-f", v]);
        }
    }
}

/// A real Distribution registry on its own port and storage, notifying one dockhand hook.
pub struct Registry {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts `docker-registry` with notifications to `notify_url` (Bearer [`TOKEN`]).
    pub async fn start(notify_url: &str) -> Registry {
        Self::start_with(Some(notify_url)).await
    }

    /// Starts `docker-registry` that notifies nobody.
    pub async fn start_silent() -> Registry {
        Self::start_with(None).await
    }

    async fn start_with(notify_url: Option<&str>) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let notifications = match notify_url {
            Some(notify_url) => format!(
                r#"notifications:
  endpoints:
    - name: dockhand
      url: {notify_url}
      headers:
        Authorization: [Bearer {TOKEN}]
      timeout: 2s
      threshold: 5
      backoff: 1s
"#
            ),
            None => String::new(),
        };
        let config = format!(
            r#"version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
{notifications}"#,
            root = dir.path().join("data").display()
        );
        let config_path = dir.path().join("registry.yml");
        std::fs::write(&config_path, config).expect("write registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("docker-registry (run scripts/lab.sh up)");
        let registry = Registry {
            port,
            child,
            _dir: dir,
        };
        let url = format!("http://127.0.0.1:{port}/v2/");
        wait_for("the registry to answer", Duration::from_secs(20), || {
            let url = url.clone();
            async move {
                reqwest::get(&url)
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
            }
        })
        .await;
        registry
    }

    /// `127.0.0.1:PORT/name`.
    pub fn image(&self, name: &str) -> String {
        format!("127.0.0.1:{}/{name}", self.port)
    }

    /// Pushes the lab's `v1`, `v2`... images to `repo` under the same tags; returns the
    /// reference of the first.
    pub fn push_versions(&self, repo: &str, versions: &[&str]) -> String {
        let refs: Vec<String> = versions.iter().map(|v| self.push(v, repo, v)).collect();
        refs.into_iter().next().expect("at least one version")
    }

    /// Tags a lab image (`v1`, `v2`, `crash`...) as `repo:tag` in this registry and pushes it.
    pub fn push(&self, lab_tag: &str, repo: &str, tag: &str) -> String {
        let reference = format!("{}:{tag}", self.image(repo));
        docker(&["tag", &format!("{APP}:{lab_tag}"), &reference]);
        docker(&["push", "-q", &reference]);
        reference
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pushes a lab image to the lab's Docker Hub mirror as `namespace/name:tag`, so that
/// the engine pulls it as `docker.io/namespace/name:tag`.
pub fn push_to_hub_mirror(lab_tag: &str, repo: &str, tag: &str) {
    let reference = format!("{HUB_MIRROR}/{repo}:{tag}");
    docker(&["tag", &format!("{APP}:{lab_tag}"), &reference]);
    docker(&["push", "-q", &reference]);
}

/// A dockhand running in-process, with its own state file.
pub struct Dockhand {
    pub app: Option<App>,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Dockhand {
    /// A listener bound now, so that its URL can go into a registry's config first.
    pub fn bind() -> (tokio::net::TcpListener, String) {
        let std = StdListener::bind("127.0.0.1:0").expect("bind");
        std.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", std.local_addr().expect("addr"));
        (
            tokio::net::TcpListener::from_std(std).expect("tokio listener"),
            url,
        )
    }

    /// Starts dockhand with `config` (TOML; `[server]` is filled in by the harness).
    pub async fn start(listener: tokio::net::TcpListener, config: &str) -> Dockhand {
        Self::start_with_server(listener, "", config).await
    }

    /// Like [`Dockhand::start`], with extra `[server]` lines.
    pub async fn start_with_server(
        listener: tokio::net::TcpListener,
        server: &str,
        config: &str,
    ) -> Dockhand {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state.db");
        let text = format!(
            "[server]\nstate = \"{}\"\n{server}\n\n{config}",
            state.display()
        );
        let config = Config::from_toml(&text, "test", Path::new(".")).expect("valid test config");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = App::start(config, Some(listener))
            .await
            .expect("dockhand starts");
        Dockhand {
            app: Some(app),
            url,
            _dir: dir,
        }
    }

    pub fn app(&self) -> &App {
        self.app.as_ref().expect("running")
    }

    pub fn state_dir(&self) -> PathBuf {
        self._dir.path().to_path_buf()
    }

    /// All deployments, oldest first.
    pub async fn deployments(&self) -> Vec<Deployment> {
        let mut d = self
            .app()
            .store
            .deployments(None, 1000)
            .await
            .expect("store");
        d.reverse();
        d
    }

    /// Waits until deployment `id` has ended and returns it.
    pub async fn wait_ended(&self, id: i64, within: Duration) -> Deployment {
        let store = self.app().store.clone();
        wait_for(&format!("deployment {id} to end"), within, || {
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
        .await
    }

    /// Waits until `n` deployments exist and have all ended.
    pub async fn wait_all_ended(&self, n: usize, within: Duration) -> Vec<Deployment> {
        let store = self.app().store.clone();
        wait_for(&format!("{n} deployments to end"), within, || {
            let store = store.clone();
            async move {
                let mut d = store.deployments(None, 1000).await.ok()?;
                d.reverse();
                (d.len() >= n && d.iter().all(|d| d.state.is_terminal())).then_some(d)
            }
        })
        .await
    }

    /// Waits until the deployment of `tag` exists and has ended.
    pub async fn wait_tag_ended(&self, tag: &str, within: Duration) -> Deployment {
        let store = self.app().store.clone();
        wait_for(&format!("the deployment of {tag} to end"), within, || {
            let store = store.clone();
            async move {
                store
                    .deployments(None, 1000)
                    .await
                    .ok()?
                    .into_iter()
                    .find(|d| d.tag == tag && d.state.is_terminal())
            }
        })
        .await
    }

    /// A deployment's log, one line per entry.
    pub async fn log_of(&self, id: i64) -> String {
        self.app()
            .store
            .logs(id)
            .await
            .expect("logs")
            .into_iter()
            .map(|l| l.line)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Polls `probe` every 200 ms until it returns `Some`, or panics after `within`.
pub async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// GET `url` and return the body, if it answers 200.
pub async fn get_text(url: &str) -> Option<String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    let r = client.get(url).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.text().await.ok().map(|t| t.trim().to_string())
}

/// Waits until `url` answers `version` (the lab app serves its version).
pub async fn wait_serving(url: &str, version: &str) {
    wait_for(
        &format!("{url} to serve {version}"),
        Duration::from_secs(30),
        || async { get_text(url).await.filter(|b| b == version).map(|_| ()) },
    )
    .await
}

/// Asserts that deployment `d` ended in `state`, showing its log otherwise.
pub async fn assert_state(dockhand: &Dockhand, d: &Deployment, state: DeployState) {
    if d.state != state {
        panic!(
            "deployment {} ended {:?}, expected {:?}: {}\n--- log ---\n{}",
            d.id,
            d.state,
            state,
            d.message.clone().unwrap_or_default(),
            dockhand.log_of(d.id).await
        );
    }
}

/// `docker inspect -f FORMAT NAME`.
pub fn inspect(name: &str, format: &str) -> String {
    docker(&["inspect", "-f", format, name])
}

/// The `dockhand` binary, run as a user would, on a config file and state file of its own.
/// Stopped (by the pid it was started with) when dropped.
pub struct Daemon {
    pub url: String,
    pub state: PathBuf,
    config: PathBuf,
    child: Option<Child>,
    log: PathBuf,
    env: Vec<(String, String)>,
    /// Extra `serve` arguments (e.g. `--dry-run`).
    args: Vec<String>,
}

impl Daemon {
    /// Writes `config` (hooks and targets; `[server]` lines are added) and starts serving.
    pub async fn start(dir: &Path, server_extra: &str, config: &str) -> Daemon {
        Self::start_with_env(dir, server_extra, config, &[]).await
    }

    /// Like [`Daemon::start`], with extra environment variables (e.g. `DOCKER_HOST`).
    pub async fn start_with_env(
        dir: &Path,
        server_extra: &str,
        config: &str,
        env: &[(&str, &str)],
    ) -> Daemon {
        Self::start_with(dir, server_extra, config, env, &[]).await
    }

    /// Like [`Daemon::start_with_env`], with extra `serve` arguments (e.g. `--dry-run`).
    pub async fn start_with(
        dir: &Path,
        server_extra: &str,
        config: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Daemon {
        let port = free_port();
        let state = dir.join("state.db");
        let path = dir.join("dockhand.toml");
        std::fs::write(
            &path,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\nstate = \"{}\"\n{server_extra}\n\n{config}",
                state.display()
            ),
        )
        .expect("write config");
        let mut d = Daemon {
            url: format!("http://127.0.0.1:{port}"),
            state,
            config: path,
            child: None,
            log: dir.join("dockhand.log"),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        d.restart().await;
        d
    }

    /// Starts the process again (after [`Daemon::kill9`]) and waits until it listens.
    pub async fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_dockhand"))
            .args(["serve", "--config"])
            .arg(&self.config)
            .args(&self.args)
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn dockhand");
        self.child = Some(child);
        let url = format!("{}/healthz", self.url);
        wait_for("dockhand to listen", Duration::from_secs(20), || {
            let url = url.clone();
            async move { reqwest::get(&url).await.ok() }
        })
        .await;
    }

    /// SIGKILL, to the pid this harness started; waits for it to be gone.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, to the pid this harness started; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let pid = c.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        c.wait().ok().and_then(|s| s.code())
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The state file, opened beside the daemon (SQLite WAL allows it).
    pub fn store(&self) -> dockhand::store::Store {
        dockhand::store::Store::open(&self.state).expect("open state")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// POSTs a generic hook event.
pub async fn post_generic(
    url: &str,
    hook: &str,
    image: &str,
    tag: &str,
) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{url}/hooks/{hook}"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "image": image, "tag": tag }))
        .send()
        .await
        .expect("post");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

/// Waits until deployment `id`'s log has a line containing `needle`.
pub async fn wait_for_line(store: &dockhand::store::Store, id: i64, needle: &str) {
    wait_for(
        &format!("deployment {id} to log '{needle}'"),
        Duration::from_secs(60),
        || async {
            let lines = store.logs(id).await.ok()?;
            lines.iter().any(|l| l.line.contains(needle)).then_some(())
        },
    )
    .await
}

/// Waits until deployment `id` has ended, and returns it.
pub async fn wait_ended(store: &dockhand::store::Store, id: i64) -> Deployment {
    wait_for(
        &format!("deployment {id} to end"),
        Duration::from_secs(120),
        || async {
            store
                .deployment(id)
                .await
                .ok()
                .flatten()
                .filter(|d| d.state.is_terminal())
        },
    )
    .await
}

/// One kill -9 round against a daemon with a `generic` hook named "ci": pushes `next`,
/// waits until its deploy logs `moment`, pushes `after` behind it, kills the daemon with
/// SIGKILL and starts it again, then waits until both deployments have ended and returns
/// them (the interrupted one first).
pub async fn kill9_round(
    daemon: &mut Daemon,
    store: &dockhand::store::Store,
    image: &str,
    next: &str,
    after: &str,
    moment: &str,
) -> (Deployment, Deployment) {
    let (s, a) = post_generic(&daemon.url, "ci", image, next).await;
    assert_eq!(s, 202, "{a}");
    let first = a["queued"][0]["id"].as_i64().expect("id");
    wait_for_line(store, first, moment).await;
    let (s, b) = post_generic(&daemon.url, "ci", image, after).await;
    assert_eq!(s, 202, "{b}");
    let second = b["queued"][0]["id"].as_i64().expect("id");

    daemon.kill9();
    daemon.restart().await;

    (
        wait_ended(store, first).await,
        wait_ended(store, second).await,
    )
}
