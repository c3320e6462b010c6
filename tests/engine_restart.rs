//! dockerd stops in the middle of a deploy and comes back: the deploy is retried and ends
//! correctly, and the old version keeps serving meanwhile.
//!
//! This needs an engine the test may stop, so it starts its own dockerd (own data root,
//! exec root, socket and bridge; no iptables; `--live-restore`, so its containers keep
//! running while it is down) and stops only that one, by the pid file it wrote.
//!
//! (Not `--bridge none`: a dockerd with the bridge disabled deletes the host's `docker0`,
//! which belongs to the lab's main engine.)

mod common;

use common::*;
use dockhand::store::DeployState;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A dockerd of the test's own.
struct Engine {
    dir: tempfile::TempDir,
    exec_root: PathBuf,
    /// Its own Linux bridge, made by the test.
    bridge: String,
    /// The running dockerd, reaped on stop.
    child: std::cell::RefCell<Option<std::process::Child>>,
}

impl Engine {
    fn socket(&self) -> String {
        format!("unix://{}/docker.sock", self.dir.path().display())
    }

    fn docker(&self, args: &[&str]) -> String {
        let socket = self.socket();
        let mut all = vec!["-H", socket.as_str()];
        all.extend_from_slice(args);
        docker(&all)
    }

    fn answers(&self) -> bool {
        Command::new("docker")
            .args(["-H", &self.socket(), "info"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn start() -> Engine {
        let dir = tempfile::tempdir().expect("tempdir");
        // /run, not /var/run: /proc/mounts names the real path, and cleanup matches on it.
        let exec_root = PathBuf::from(format!("/run/{}", unique("engine")));
        let bridge = format!("dhbr{}", &unique("x")[5..]);
        let octet = 1 + u8::from_str_radix(&bridge[4..6], 16).unwrap_or(0) % 250;
        for args in [
            vec!["link", "add", &bridge, "type", "bridge"],
            vec![
                "addr",
                "add",
                &format!("10.213.{octet}.1/24"),
                "dev",
                &bridge,
            ],
            vec!["link", "set", &bridge, "up"],
        ] {
            let ok = Command::new("ip")
                .args(&args)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "ip {}", args.join(" "));
        }
        let e = Engine {
            dir,
            exec_root,
            bridge,
            child: std::cell::RefCell::new(None),
        };
        e.run();
        e
    }

    fn run(&self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("dockerd.log"))
            .expect("log");
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(self.dir.path().join("root"))
            .arg("--exec-root")
            .arg(&self.exec_root)
            .arg("--pidfile")
            .arg(self.dir.path().join("docker.pid"))
            .args([
                "-H",
                &self.socket(),
                "--bridge",
                &self.bridge,
                "--iptables=false",
                "--ip6tables=false",
                "--live-restore",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dockerd");
        *self.child.borrow_mut() = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !self.answers() {
            assert!(
                std::time::Instant::now() < deadline,
                "the test's dockerd did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM to the test's dockerd (containers stay up: live-restore); waits for it.
    fn stop(&self) {
        if let Some(mut child) = self.child.borrow_mut().take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Its containers outlive it (live-restore): remove them through it first.
        if !self.answers() {
            self.run();
        }
        let ids = Command::new("docker")
            .args(["-H", &self.socket(), "ps", "-aq"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        for id in ids.split_whitespace() {
            docker_quiet(&["-H", &self.socket(), "rm", "-f", id]);
        }
        self.stop();
        // dockerd leaves its own mounts (netns, overlay root) behind; release them.
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let roots = [self.exec_root.clone(), self.dir.path().to_path_buf()];
        let mut ours: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| roots.iter().any(|r| m.starts_with(&*r.to_string_lossy())))
            .collect();
        ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in ours {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
        let _ = std::fs::remove_dir_all(&self.exec_root);
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerd_down_mid_deploy_is_retried_and_the_old_version_serves_meanwhile() {
    require_lab();
    let engine = Engine::start();
    let registry = Registry::start_silent().await;
    let repo = unique("app");
    let v1 = registry.push_versions(&repo, &["v1", "v2"]);
    let port = free_port().to_string();
    engine.docker(&["pull", "-q", &v1]);
    let name = unique("eng");
    engine.docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "host",
        "--health-cmd",
        &format!("wget -qO- http://127.0.0.1:{port}/"),
        "--health-interval",
        "1s",
        &v1,
        "sh",
        "-c",
        &format!("trap 'exit 0' TERM; httpd -f -p {port} -h /www & wait"),
    ]);
    let served = format!("http://127.0.0.1:{port}/");
    wait_serving(&served, "v1").await;

    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "[[hooks]]\nname = \"ci\"\nsource = \"generic\"\ntoken = \"{TOKEN}\"\n[[targets]]\nname = \"web\"\nkind = \"container\"\ncontainer = \"{name}\"\nimage = \"{}\"\ntimeout = \"60s\"\n",
        registry.image(&repo)
    );
    let socket = engine.socket();
    let daemon = Daemon::start_with_env(
        dir.path(),
        "retry_attempts = 8",
        &config,
        &[("DOCKER_HOST", &socket)],
    )
    .await;
    let store = daemon.store();

    engine.stop();
    let (s, r) = post_generic(&daemon.url, "ci", &registry.image(&repo), "v2").await;
    assert_eq!(s, 202, "{r}");
    let id = r["queued"][0]["id"].as_i64().expect("id");
    wait_for("the deploy to retry", Duration::from_secs(30), || async {
        let lines = store.logs(id).await.ok()?;
        lines
            .iter()
            .any(|l| l.line.contains("trying again"))
            .then_some(())
    })
    .await;
    assert_eq!(
        get_text(&served).await.as_deref(),
        Some("v1"),
        "the old version serves while the engine is down"
    );

    let restarted = std::time::Instant::now();
    engine.run();
    eprintln!("engine back after {:?}", restarted.elapsed());
    let d = wait_for("the deploy to end", Duration::from_secs(90), || async {
        store
            .deployment(id)
            .await
            .ok()
            .flatten()
            .filter(|d| d.state.is_terminal())
    })
    .await;
    assert_eq!(d.state, DeployState::Succeeded, "{d:?}\n{}", daemon.log());
    assert_eq!(get_text(&served).await.as_deref(), Some("v2"));
    eprintln!(
        "deploy ended {:?} after the engine was started again",
        restarted.elapsed()
    );
}
