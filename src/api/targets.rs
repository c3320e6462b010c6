//! `/api/targets`: what each target runs now, and manual deploys and rollbacks.

use crate::check::{self, TargetStatus};
use crate::event::ImagePushed;
use crate::http::{error, AppState};
use crate::reference::{validate_digest, validate_tag};
use crate::store::{Deployment, Queued, Recorded};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One target as the API shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct TargetView {
    /// Target name.
    pub name: String,
    /// `service` or `container`.
    pub kind: String,
    /// The engine's name for it.
    pub object: String,
    /// The configured repository.
    pub image: String,
    /// The configured tag glob.
    pub tags: String,
    /// Whether deploys to it are dry runs (`dry_run = true`, or `serve --dry-run`).
    #[serde(default)]
    pub dry_run: bool,
    /// What it runs now, when the engine knows it.
    pub running: Option<Running>,
    /// Why `running` is missing, when it is.
    pub problem: Option<String>,
    /// Its newest deployment.
    pub last_deployment: Option<Deployment>,
}

/// What a target runs, as the engine reports it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Running {
    /// The image reference.
    pub image: String,
    /// Its tag, when the reference has one.
    pub tag: Option<String>,
    /// Its digest, when known.
    pub digest: Option<String>,
    /// Engine state (`running`, `last update completed`...).
    pub state: String,
}

pub(super) async fn list(State(app): State<Arc<AppState>>) -> Response {
    let reports = check::inspect_targets(&app.engine, &app.config).await;
    let mut out = Vec::new();
    for (i, t) in app.config.targets.iter().enumerate() {
        let (running, problem) = match &reports {
            Ok(r) => match r.get(i).map(|r| &r.status) {
                Some(TargetStatus::Found {
                    image,
                    digest,
                    state,
                }) => (
                    Some(Running {
                        tag: crate::reference::parse_full(image)
                            .ok()
                            .and_then(|(_, tag, _)| tag),
                        image: image.clone(),
                        digest: digest.clone(),
                        state: state.clone(),
                    }),
                    None,
                ),
                Some(TargetStatus::Missing) => (None, Some(format!("{} does not exist", t.object))),
                Some(TargetStatus::Error(e)) => (None, Some(e.clone())),
                None => (None, None),
            },
            Err(e) => (None, Some(e.to_string())),
        };
        let last = match app.store.find(Some(t.name.clone()), None, 1).await {
            Ok(mut d) => d.pop(),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
        out.push(TargetView {
            name: t.name.clone(),
            kind: match t.kind {
                crate::config::TargetKind::Service => "service".into(),
                crate::config::TargetKind::Container => "container".into(),
            },
            object: t.object.clone(),
            image: t.image.to_string(),
            tags: t.tags.as_str().to_string(),
            dry_run: t.dry_run,

            running,
            problem,
            last_deployment: last,
        });
    }
    Json(out).into_response()
}

/// Body of `POST /api/targets/{name}/deploy`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct DeployRequest {
    /// The tag to deploy.
    pub tag: Option<String>,
    /// The digest to pin (with or without a tag).
    pub digest: Option<String>,
}

pub(super) async fn deploy(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Option<Json<DeployRequest>>,
) -> Response {
    let Some(target) = app.config.target(&name) else {
        return error(StatusCode::NOT_FOUND, format!("no target '{name}'"));
    };
    let Some(Json(request)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "send JSON {\"tag\": \"v2\"} or {\"digest\": \"sha256:...\"}",
        );
    };
    if let Some(d) = &request.digest {
        if let Err(e) = validate_digest(d) {
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
    }
    let tag = match (request.tag, &request.digest) {
        (Some(t), _) => t,
        (None, Some(d)) => {
            // A digest alone: the tag it was last deployed under.
            match app.store.find(Some(name.clone()), None, 1000).await {
                Ok(all) => match all.into_iter().find(|x| x.digest.as_deref() == Some(d)) {
                    Some(x) => x.tag,
                    None => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            format!("{d} was never deployed to {name}; give its tag too"),
                        )
                    }
                },
                Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
        (None, None) => return error(StatusCode::BAD_REQUEST, "give a tag or a digest"),
    };
    if let Err(e) = validate_tag(&tag) {
        return error(StatusCode::BAD_REQUEST, e.to_string());
    }
    if !target.tags.matches(&tag) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "target '{name}' takes tags '{}', not '{tag}'",
                target.tags.as_str()
            ),
        );
    }
    queue(&app, &name, target.image.clone(), tag, request.digest).await
}

pub(super) async fn rollback(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Response {
    let Some(target) = app.config.target(&name) else {
        return error(StatusCode::NOT_FOUND, format!("no target '{name}'"));
    };
    // A dry-run target rolls back (as a dry run) to what it would run had its dry runs
    // been real; a real target only to images that were really rolled out.
    let succeeded = match app.store.deployed(&name, target.dry_run, 1000).await {
        Ok(d) => d,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let mut it = succeeded.into_iter();
    let Some(current) = it.next() else {
        return error(
            StatusCode::CONFLICT,
            format!("target '{name}' has no successful deploy yet"),
        );
    };
    let same = |d: &Deployment| d.tag == current.tag && d.digest == current.digest;
    let Some(previous) = it.find(|d| !same(d)) else {
        return error(
            StatusCode::CONFLICT,
            format!(
                "target '{name}' has no earlier successful image than {}:{} to go back to",
                current.image, current.tag
            ),
        );
    };
    queue(
        &app,
        &name,
        target.image.clone(),
        previous.tag,
        previous.digest,
    )
    .await
}

async fn queue(
    app: &AppState,
    target: &str,
    image: crate::reference::ImageName,
    tag: String,
    digest: Option<String>,
) -> Response {
    let event = ImagePushed {
        image,
        tag,
        digest,
        // Each manual request is its own event: never taken for a replay.
        delivery: Some(uuid::Uuid::new_v4().to_string()),
        callback_url: None,
    };
    match app
        .store
        .record_event(
            "api",
            "api",
            &event,
            vec![target.to_string()],
            std::time::Duration::ZERO,
        )
        .await
    {
        Ok(Recorded::Queued(queued)) => {
            app.queue.wake(target);
            (StatusCode::ACCEPTED, Json(Accepted { queued })).into_response()
        }
        Ok(Recorded::Duplicate { .. }) => {
            error(StatusCode::CONFLICT, "this request was already taken")
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// A 202 answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Accepted {
    /// The deployments queued.
    pub queued: Vec<Queued>,
}
