//! Wires the pipeline together: store, engine, reporter, queue workers and the HTTP server.
//!
//! [`App::start`] returns once the server listens; tests drive it in-process, and
//! `dockhand serve` ([`serve`](fn@serve)) runs it until SIGTERM or SIGINT.

use crate::check;
use crate::config::Config;
use crate::engine::Engine;
use crate::http::serve::{self, Limits};
use crate::http::tls::{Tls, TlsError};
use crate::http::{self, AppState, AuthFailures};

use crate::queue::Queue;
use crate::report::Reporter;
use crate::store::{Store, StoreError};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Why dockhand could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The state file could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The listen address is taken or not allowed.
    #[error(
        "cannot listen on {addr}: {source} (is another dockhand running? change server.listen)"
    )]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A running dockhand.
pub struct App {
    /// The address the server listens on.
    pub addr: SocketAddr,
    /// The state file.
    pub store: Store,
    /// The engine handle (shared with the deployers).
    pub engine: Arc<Engine>,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    workers: JoinSet<()>,
}

impl App {
    /// Opens the state, starts the queue workers and the server. `listener` overrides
    /// `server.listen` (tests bind port 0).
    pub async fn start(config: Config, listener: Option<TcpListener>) -> Result<App, StartError> {
        let config = Arc::new(config);
        let store = Store::open(&config.server.state)?;
        let engine = Arc::new(Engine::from_env());
        let reporter = Arc::new(Reporter::new(
            store.clone(),
            config.server.public_url.clone(),
        ));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut workers = JoinSet::new();
        let queue = Queue::start(
            &config,
            store.clone(),
            engine.clone(),
            reporter,
            shutdown_rx.clone(),
            &mut workers,
        );
        let listener = match listener {
            Some(l) => l,
            None => TcpListener::bind(config.server.listen)
                .await
                .map_err(|source| StartError::Listen {
                    addr: config.server.listen,
                    source,
                })?,
        };
        let addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: config.server.listen,
            source,
        })?;
        let tls = match &config.server.tls {
            Some((cert, key)) => {
                let tls = Tls::load(cert, key)?;
                let watcher = tokio::spawn(tls.clone().watch());
                let mut stop = shutdown_rx.clone();
                tokio::spawn(async move {
                    let _ = stop.wait_for(|s| *s).await;
                    watcher.abort();
                });
                Some(tls)
            }
            None => None,
        };
        let state = Arc::new(AppState {
            config: config.clone(),
            store: store.clone(),
            engine: engine.clone(),
            queue,
            failures: AuthFailures::new(config.server.auth_failures),
        });
        let limits = Limits {
            max_connections: config.server.max_connections,
            header_timeout: config.server.header_timeout,
            max_header_bytes: config.server.max_header_bytes,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let server = tokio::spawn(serve::run(
            listener,
            http::router(state),
            limits,
            tls,
            shutdown_rx,
            config.server.body_timeout,
        ));
        tracing::info!(%addr, %scheme, hooks = config.hooks.len(), targets = config.targets.len(), "dockhand listening");
        Ok(App {
            addr,
            store,
            engine,
            shutdown,
            server,
            workers,
        })
    }

    /// Stops accepting hooks, lets running deploys finish (up to `grace`), and returns.
    /// Queued deploys stay queued in the state file for the next start.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
        let drain = async { while self.workers.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!("deploys still running after {grace:?}; stopping them (the next start finishes or undoes them)");
            self.workers.abort_all();
        }
    }
}

/// `dockhand serve`: runs until SIGTERM or SIGINT.
pub async fn serve(config: Config) -> Result<(), StartError> {
    let mut report_config = config.clone();
    let grace = config.server.shutdown_grace;
    let app = App::start(config, None).await?;
    if report_config.hooks.is_empty() {
        tracing::warn!(
            "no hooks configured: write a dockhand.toml (see the README) and pass --config"
        );
    }
    // Dry-run targets are not inspected: a dry run never calls the engine.
    let dry: Vec<String> = report_config
        .targets
        .iter()
        .filter(|t| t.dry_run)
        .map(|t| t.name.clone())
        .collect();
    report_config.targets.retain(|t| !t.dry_run);
    if !dry.is_empty() {
        tracing::info!(
            "{} of {} targets are dry runs (deploys are only logged, the engine is not called): {}",
            dry.len(),
            dry.len() + report_config.targets.len(),
            summary(&dry)
        );
    }
    // Say what the engine knows of each other target, without holding up the start.
    if dry.is_empty() || !report_config.targets.is_empty() {
        let engine = app.engine.clone();
        tokio::spawn(async move {
            match check::inspect_targets(&engine, &report_config).await {
                Ok(reports) => {
                    for r in reports {
                        if r.found() {
                            tracing::info!(target = %r.name, "{}", r.status_line());
                        } else {
                            tracing::warn!(target = %r.name, "{}", r.status_line());
                        }
                    }
                }
                Err(e) => tracing::warn!("{e}; deploys will fail until it is up"),
            }
        });
    }
    wait_for_signal().await;
    tracing::info!("shutting down: no new hooks; letting running deploys finish");
    app.shutdown(grace).await;
    tracing::info!("stopped");
    Ok(())
}

/// The first few names, and how many more.
fn summary(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("cannot listen for SIGTERM: {e}");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
