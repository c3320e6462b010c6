//! dockhand: push-to-deploy for Docker.
//!
//! A registry says "a new image was pushed"; dockhand checks that the message is genuine and
//! allowed, and rolls the new image out to the Swarm services and containers that run it,
//! one deploy at a time per target, keeping the old version serving if anything fails.
//!
//! # Layout
//!
//! Data flows one way, and each step is a module:
//!
//! ```text
//!   http ──> source/ ──> event ──> policy ──> queue ──> deploy/ ──> report/
//!              │                               │          │
//!              └──────────── store (SQLite) ───┴──────────┘   engine (bollard)
//! ```
//!
//! - [`config`]: `dockhand.toml`: hooks, targets, server settings; every error names its key.
//! - [`secret`]: hook secrets: loading from value/file/env, redaction, constant-time checks.
//! - [`http`]: the HTTP front door: `POST /hooks/{name}` and `/healthz`; status codes, limits,
//!   TLS, client addresses and the failed-auth limit.
//! - [`source`]: one file per registry or trigger: a request in, [`event::ImagePushed`]s out.
//! - [`reference`](mod@reference): image-name normalisation (`nginx` = `docker.io/library/nginx`).
//! - [`event`]: the normalised "image pushed" event every source produces.
//! - [`policy`]: which targets an event may deploy, and why not.
//! - [`queue`]: durable per-target jobs: one deploy at a time per target, newest wins.
//! - [`deploy`]: one file per target kind (Swarm service, container), the dry run (what a
//!   deploy would do, no engine call), and the shared rollout log.

//! - [`engine`]: the one narrow seam to the Docker Engine API; every deployer goes through it.
//! - [`report`]: telling people how it went: the registry's callback.
//! - [`store`]: the SQLite state file: events (group-committed), deployments, their logs.

//! - [`api`]: the REST API under `/api` (admin token): targets, history, logs, deploy, rollback.
//! - [`client`]: the API client behind the CLI's `status`, `history`, `logs`, `deploy`, `rollback`.
//! - [`cli`]: those commands' output (tables, `--json`) and exit statuses.
//! - [`app`]: wires the pipeline together for `dockhand serve`.
//! - [`check`]: `dockhand check`: the config validated against the live engine.

pub mod api;
pub mod app;
pub mod check;
pub mod cli;
pub mod client;
pub mod config;
pub mod deploy;
pub mod engine;
pub mod event;
pub mod http;
pub mod policy;
pub mod queue;
pub mod reference;
pub mod report;
pub mod secret;
pub mod source;
pub mod store;

/// The current time as an RFC 3339 string in UTC, as stored and reported everywhere.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00Z"))
}
