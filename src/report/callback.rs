//! The callback a sender asks for: `POST callback_url` with
//! `{"state":"success"|"failure"|"error","description":...,"context":"dockhand","target_url":...}`
//! once every deployment of the event has ended.
//!
//! Best effort: a failed callback is logged and retried with backoff, and never changes a
//! deployment's outcome. The URL itself is never logged in full, since Docker Hub's carries
//! a token in its path.

use crate::store::{DeployState, Deployment, Store};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Sends callbacks.
pub struct Reporter {
    store: Store,
    client: reqwest::Client,
    /// `server.public_url`, for `target_url` links.
    public_url: Option<String>,
    /// Attempts per callback.
    attempts: u32,
    /// Wait before the first retry; doubles after each.
    backoff: Duration,
}

/// The body Docker Hub (and the seed recipes' callers) expect.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct CallbackBody {
    /// `success`, `failure` or `error`.
    pub state: &'static str,
    /// What happened, at most 255 characters.
    pub description: String,
    /// Always `dockhand`.
    pub context: &'static str,
    /// A link to the deployment, when `server.public_url` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
}

impl Reporter {
    /// A reporter writing through `store`.
    pub fn new(store: Store, public_url: Option<String>) -> Reporter {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("dockhand/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Reporter {
            store,
            client,
            public_url,
            attempts: 5,
            backoff: Duration::from_secs(1),
        }
    }

    /// Called when a deployment ends (or is superseded). Sends its event's callback once
    /// all of the event's deployments have ended.
    pub async fn deployment_ended(self: &Arc<Self>, deployment_id: i64) {
        let (event, deployments) = match self.store.event_of(deployment_id).await {
            Ok(Some(found)) => found,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("cannot look up the event of deployment {deployment_id}: {e}");
                return;
            }
        };
        let Some(url) = event.callback_url.clone() else {
            return;
        };
        if deployments.iter().any(|d| !d.state.is_terminal()) {
            return;
        }
        match self.store.claim_callback(event.id).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!("cannot claim the callback of event {}: {e}", event.id);
                return;
            }
        }
        let body = summarise(&deployments, self.public_url.as_deref());
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let outcome = if me.send(&url, &body).await {
                "sent"
            } else {
                "failed"
            };
            if let Err(e) = me.store.callback_done(event.id, outcome).await {
                tracing::warn!("cannot record the callback of event {}: {e}", event.id);
            }
        });
    }

    async fn send(&self, url: &str, body: &CallbackBody) -> bool {
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        let mut wait = self.backoff;
        for attempt in 1..=self.attempts {
            match self.client.post(url).json(body).send().await {
                Ok(r) if r.status().is_success() => {
                    tracing::info!(%host, state = body.state, "callback delivered");
                    return true;
                }
                Ok(r) => tracing::warn!(%host, attempt, status = %r.status(), "callback refused"),
                Err(e) => {
                    let error = error_chain(&e.without_url());
                    tracing::warn!(%host, attempt, %error, "callback failed")
                }
            }
            if attempt < self.attempts {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        tracing::warn!(%host, "callback given up after {} attempts", self.attempts);
        false
    }
}

/// An error with its causes, for a log line ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// The callback body for an event whose deployments have all ended.
pub fn summarise(deployments: &[Deployment], public_url: Option<&str>) -> CallbackBody {
    let state = if deployments.iter().all(|d| {
        matches!(
            d.state,
            DeployState::Succeeded
                | DeployState::Skipped
                | DeployState::Superseded
                | DeployState::DryRun
        )
    }) {
        "success"
    } else if deployments
        .iter()
        .any(|d| d.state == DeployState::Interrupted)
    {
        "error"
    } else {
        "failure"
    };
    let mut description = deployments
        .iter()
        .map(|d| format!("{}: {} {}:{}", d.target, d.state.as_str(), d.image, d.tag))
        .collect::<Vec<_>>()
        .join("; ");
    if description.chars().count() > 255 {
        description = description.chars().take(254).collect::<String>() + "…";
    }
    CallbackBody {
        state,
        description,
        context: "dockhand",
        target_url: public_url.and_then(|base| {
            deployments
                .first()
                .map(|d| format!("{base}/api/deployments/{}", d.id))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(id: i64, target: &str, state: DeployState) -> Deployment {
        Deployment {
            id,
            event_id: 1,
            target: target.into(),
            image: "docker.io/svendowideit/testhook".into(),
            tag: "latest".into(),
            digest: None,
            state,
            message: None,
            created_at: String::new(),
            started_at: None,
            ended_at: None,
        }
    }

    #[test]
    fn states_map_to_docker_hub_states() {
        let ok = summarise(
            &[
                dep(1, "a", DeployState::Succeeded),
                dep(2, "b", DeployState::Skipped),
            ],
            Some("https://deploy.example.com"),
        );
        assert_eq!(ok.state, "success");
        assert_eq!(
            ok.target_url.as_deref(),
            Some("https://deploy.example.com/api/deployments/1")
        );
        assert!(ok
            .description
            .starts_with("a: succeeded docker.io/svendowideit/testhook:latest"));
        let bad = summarise(
            &[
                dep(1, "a", DeployState::Succeeded),
                dep(2, "b", DeployState::RolledBack),
            ],
            None,
        );
        assert_eq!(bad.state, "failure");
        assert_eq!(bad.target_url, None);
        // A dry run did what was asked (it says so in the description): not a failure.
        let dry = summarise(&[dep(1, "a", DeployState::DryRun)], None);
        assert_eq!(dry.state, "success");
        assert!(dry.description.starts_with("a: dry_run "), "{dry:?}");
        let err = summarise(&[dep(1, "a", DeployState::Interrupted)], None);

        assert_eq!(err.state, "error");
        let long: Vec<_> = (0..20)
            .map(|i| dep(i, "a-rather-long-target-name", DeployState::Failed))
            .collect();
        assert!(summarise(&long, None).description.chars().count() <= 255);
        let json =
            serde_json::to_value(summarise(&[dep(1, "a", DeployState::Succeeded)], None)).unwrap();
        assert_eq!(json["context"], "dockhand");
        assert!(json.get("target_url").is_none());
    }
}
