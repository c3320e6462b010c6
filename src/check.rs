//! `dockhand check`: the config is valid (or it would not have loaded), and this is what the
//! engine knows of each target: whether it exists and which image it runs now.

use crate::config::{Config, TargetKind};
use crate::engine::{Engine, EngineError};
use std::fmt::Write;

/// What the engine says about one target.
#[derive(Debug, Clone)]
pub struct TargetReport {
    /// Target name.
    pub name: String,
    /// `service` or `container`.
    pub kind: &'static str,
    /// The engine's name for it.
    pub object: String,
    /// What was found.
    pub status: TargetStatus,
}

/// Whether the engine knows a target.
#[derive(Debug, Clone)]
pub enum TargetStatus {
    /// It exists and runs this image.
    Found {
        /// The image reference the engine reports.
        image: String,
        /// The digest it runs, when the engine knows it.
        digest: Option<String>,
        /// Extra state (`running`, `exited`, replicas...).
        state: String,
    },
    /// The engine has no such object.
    Missing,
    /// The engine answered with an error.
    Error(String),
}

impl TargetReport {
    /// Whether the target exists.
    pub fn found(&self) -> bool {
        matches!(self.status, TargetStatus::Found { .. })
    }

    /// One line for people.
    pub fn status_line(&self) -> String {
        match &self.status {
            TargetStatus::Found { image, state, .. } => {
                format!("{} {} runs {image} ({state})", self.kind, self.object)
            }
            TargetStatus::Missing => format!(
                "{} {} does not exist yet; deploys to it will fail until it does",
                self.kind, self.object
            ),
            TargetStatus::Error(e) => format!("{} {}: {e}", self.kind, self.object),
        }
    }
}

/// Asks the engine about every target. Fails only when the engine cannot be reached.
pub async fn inspect_targets(
    engine: &Engine,
    config: &Config,
) -> Result<Vec<TargetReport>, EngineError> {
    engine.version().await?;
    let mut reports = Vec::new();
    for t in &config.targets {
        let (kind, status) = match t.kind {
            TargetKind::Service => ("service", service_status(engine, &t.object).await),
            TargetKind::Container => ("container", container_status(engine, &t.object).await),
        };
        reports.push(TargetReport {
            name: t.name.clone(),
            kind,
            object: t.object.clone(),
            status,
        });
    }
    Ok(reports)
}

async fn service_status(engine: &Engine, name: &str) -> TargetStatus {
    match engine.inspect_service(name).await {
        Ok(s) => {
            let spec = s.spec.unwrap_or_default();
            let image = spec
                .task_template
                .and_then(|t| t.container_spec)
                .and_then(|c| c.image)
                .unwrap_or_default();
            let update = s
                .update_status
                .and_then(|u| u.state)
                .map(|st| format!("last update {st}"))
                .unwrap_or_else(|| "no update yet".into());
            let digest = crate::reference::parse_full(&image)
                .ok()
                .and_then(|(_, _, d)| d);
            TargetStatus::Found {
                image,
                digest,
                state: update,
            }
        }
        Err(EngineError::NotFound(_)) => TargetStatus::Missing,
        Err(e) => TargetStatus::Error(e.to_string()),
    }
}

async fn container_status(engine: &Engine, name: &str) -> TargetStatus {
    match engine.inspect_container(name).await {
        Ok(c) => {
            let image = c.config.and_then(|c| c.image).unwrap_or_default();
            // The digest of the image the container was created from, for its repository.
            let digest = match (&c.image, crate::reference::parse_full(&image)) {
                (Some(id), Ok((name, _, _))) => engine
                    .inspect_image(id)
                    .await
                    .ok()
                    .and_then(|i| i.repo_digests)
                    .and_then(|rds| crate::reference::digest_for(&rds, &name)),

                _ => None,
            };
            TargetStatus::Found {
                image,
                digest,
                state: c
                    .state
                    .and_then(|s| s.status)
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
            }
        }
        Err(EngineError::NotFound(_)) => TargetStatus::Missing,
        Err(e) => TargetStatus::Error(e.to_string()),
    }
}

/// The `check` report as a table.
pub fn render(
    config: &Config,
    origin: &str,
    reports: &Result<Vec<TargetReport>, EngineError>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{origin}: valid ({} hooks, {} targets; listens on {}, state in {})",
        config.hooks.len(),
        config.targets.len(),
        config.server.listen,
        config.server.state.display()
    );
    for h in &config.hooks {
        let _ = writeln!(
            out,
            "  hook   {:<16} POST /hooks/{} ({})",
            h.name,
            h.name,
            h.source.as_str()
        );
    }
    match reports {
        Ok(reports) => {
            for r in reports {
                let mark = if r.found() { "ok " } else { "!! " };
                let dry = if config.target(&r.name).is_some_and(|t| t.dry_run) {
                    " [dry run: deploys are only logged]"
                } else {
                    ""
                };
                let _ = writeln!(out, "{mark}target {:<16} {}{dry}", r.name, r.status_line());
            }
        }
        Err(e) => {
            let _ = writeln!(out, "!! engine: {e}");
        }
    }
    out
}
