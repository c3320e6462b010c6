//! `/api/deployments`: history, one deployment with its log, and its live log.

use crate::http::{error, AppState};
use crate::store::{DeployState, Deployment, LogLine};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// Query of `GET /api/deployments`.
#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    target: Option<String>,
    state: Option<String>,
    limit: Option<u32>,
}

/// One deployment with its log.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeploymentWithLog {
    /// The deployment.
    #[serde(flatten)]
    pub deployment: Deployment,
    /// Its log, oldest first.
    pub log: Vec<LogLine>,
}

pub(super) async fn list(State(app): State<Arc<AppState>>, Query(q): Query<ListQuery>) -> Response {
    let state = match q.state.as_deref().map(|s| (s, DeployState::from_name(s))) {
        None => None,
        Some((_, Some(s))) => Some(s),
        Some((s, None)) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unknown state '{s}': use queued, running, succeeded, failed, rolled_back, superseded, skipped, interrupted or dry_run
"),
            )
        }
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    match app.store.find(q.target, state, limit).await {
        Ok(d) => Json(d).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

pub(super) async fn one(State(app): State<Arc<AppState>>, Path(id): Path<i64>) -> Response {
    match app.store.deployment(id).await {
        Ok(Some(deployment)) => match app.store.logs(id).await {
            Ok(log) => Json(DeploymentWithLog { deployment, log }).into_response(),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no deployment {id}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Query of `GET /api/deployments/{id}/log`.
#[derive(Debug, Deserialize)]
pub(super) struct LogQuery {
    follow: Option<String>,
}

/// How often a followed log looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(250);

/// The log; with `?follow=1`, server-sent events: one `line` event per log line (JSON
/// `{"ts","line"}`) as they are written, then one `end` event with the deployment
/// (JSON) once it has ended.
pub(super) async fn log(
    State(app): State<Arc<AppState>>,
    Path(id): Path<i64>,
    Query(q): Query<LogQuery>,
) -> Response {
    match app.store.deployment(id).await {
        Ok(Some(_)) => {}
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no deployment {id}")),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
    let follow = matches!(q.follow.as_deref(), Some("1" | "true" | "yes"));
    if !follow {
        return match app.store.logs(id).await {
            Ok(lines) => Json(lines).into_response(),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
    }
    let store = app.store.clone();
    // State: (cursor, finished). Each step yields the new lines, then `end` once ended.
    let stream = futures_util::stream::unfold((0i64, false), move |(cursor, done)| {
        let store = store.clone();
        async move {
            if done {
                return None;
            }
            loop {
                // Read the state first: lines written before it ended are then all seen.
                let deployment = store.deployment(id).await.ok().flatten();
                let lines = store.logs_after(id, cursor).await.unwrap_or_default();
                if let Some((last, _)) = lines.last() {
                    let next = *last;
                    let events: Vec<Result<Event, Infallible>> = lines
                        .into_iter()
                        .map(|(_, l)| {
                            Ok(Event::default()
                                .event("line")
                                .json_data(&l)
                                .unwrap_or_default())
                        })
                        .collect();
                    return Some((futures_util::stream::iter(events), (next, false)));
                }
                match deployment {
                    Some(d) if d.state.is_terminal() => {
                        let end = Event::default()
                            .event("end")
                            .json_data(&d)
                            .unwrap_or_default();
                        return Some((futures_util::stream::iter(vec![Ok(end)]), (cursor, true)));
                    }
                    None => return None,
                    Some(_) => tokio::time::sleep(FOLLOW_POLL).await,
                }
            }
        }
    });
    use futures_util::StreamExt;
    Sse::new(stream.flatten())
        .keep_alive(KeepAlive::default())
        .into_response()
}
