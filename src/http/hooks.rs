//! `POST /hooks/{name}`: authenticate, parse, decide, record, answer. Never waits for a
//! deploy.
//!
//! Checks run cheapest and least revealing first: unknown hook 404, wrong method 405,
//! secret 401 (headers only, before the body is read), content type 415, body size 413,
//! payload 400. Then policy: 202 with the queued deployments, 200 `{"ignored": reason}`
//! when nothing matches, 422 when a target names the image but refuses the tag.

use super::{error, AppState, Loudness};
use crate::config::HookConfig;
use crate::policy::{self, Decision};
use crate::source::{self, Auth, HookRequest, Parsed, Rejection};

use super::client_ip::client_ip;
use crate::store::{Queued, Recorded};
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, RawQuery, State};

use std::net::{IpAddr, SocketAddr};

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::sync::Arc;
use tracing::Instrument;

#[derive(Serialize)]
struct Accepted {
    queued: Vec<Queued>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ignored: Vec<String>,
}

pub(super) async fn hook(
    State(app): State<Arc<AppState>>,
    name: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // A name that is not even UTF-8 is no hook either.
    let Some(hook) = name.ok().and_then(|Path(n)| app.config.hook(&n)) else {
        return error(StatusCode::NOT_FOUND, "no such hook");
    };
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let client = client_ip(peer.ip(), &forwarded, &app.config.server.trusted_proxies);
    let span =
        tracing::info_span!("hook", hook = %hook.name, source = hook.source.as_str(), %client);
    handle(&app, hook, client, query, method, headers, body)
        .instrument(span)
        .await
}

async fn handle(
    app: &AppState,
    hook: &HookConfig,
    client: IpAddr,
    query: Option<String>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(allowed) = &hook.allow_ips {
        if !allowed.iter().any(|net| net.contains(&client)) {
            tracing::warn!("refused: address not in allow_ips");
            return error(StatusCode::FORBIDDEN, "this address may not call this hook");
        }
    }
    if let Some(wait) = app.failures.blocked(client) {
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed attempts from this address; try again later",
        );
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    if method != Method::POST {
        let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "hooks take POST");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let src = source::for_kind(hook.source);
    let query_token = query.as_deref().and_then(token_param);
    let request = HookRequest {
        headers: &headers,
        query_token: query_token.as_deref(),
    };
    let auth = match src.authenticate(&request, &hook.token) {
        Ok(a) => a,
        Err(e) => return refused_auth(app, client, e),
    };
    if let Err(e) = source::check_content_type(src, &headers) {
        return rejection(e);
    }
    let limit = app.config.server.body_limit;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(limit);
    }
    let bytes = match tokio::time::timeout(
        app.config.server.body_timeout,
        axum::body::to_bytes(body, limit),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(e)) if is_over_limit(&e) => return too_large(limit),
        Ok(Err(e)) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body could not be read: {}", source_of(&e)),
            )
        }
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {:?} (server.body_timeout)",
                    app.config.server.body_timeout
                ),
            )
        }
    };
    if auth == Auth::NeedsBody {
        if let Err(e) = src.verify_body(&request, &bytes, &hook.token) {
            return refused_auth(app, client, e);
        }
    }
    let parsed = match src.parse(&request, &bytes) {
        Ok(p) => p,
        Err(e) => {
            tracing::info!("refused: {e}");
            return rejection(e);
        }
    };
    decide_and_record(app, &hook.name, src, parsed).await
}

/// A failed authentication: counted against the address (see [`AuthFailures`]), logged
/// at `warn` only as often as the count says, answered.
///
/// [`AuthFailures`]: super::AuthFailures
fn refused_auth(app: &AppState, client: IpAddr, e: Rejection) -> Response {
    match app.failures.failed(client) {
        Loudness::Warn { count: 1 } => tracing::warn!("refused: {e}"),
        Loudness::Warn { count } => tracing::warn!(
            "refused: {e} ({count} failures from this address this minute; \
             the others are logged at debug)"
        ),
        Loudness::Blocked { limit } => tracing::warn!(
            "refused: {e}; {limit} failures from this address this minute \
             (server.auth_failures): it gets 429 until the minute is over"
        ),
        Loudness::Quiet => tracing::debug!("refused: {e}"),
    }
    rejection(e)
}

async fn decide_and_record(
    app: &AppState,
    hook: &str,
    src: &dyn source::Source,
    parsed: Vec<Parsed>,
) -> Response {
    let mut queued = Vec::new();
    let mut ignored = Vec::new();
    let mut refused = Vec::new();
    let mut replays = Vec::new();
    for item in parsed {
        let event = match item {
            Parsed::Push(e) => e,
            Parsed::Ignored(reason) => {
                ignored.push(reason);
                continue;
            }
        };
        match policy::decide(&app.config, hook, &event) {
            Decision::Deploy(targets) => {
                let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
                match app
                    .store
                    .record_event(
                        hook,
                        src.kind().as_str(),
                        &event,
                        names,
                        app.config.server.dedupe_window,
                    )
                    .await
                {
                    Ok(Recorded::Queued(q)) => queued.extend(q),
                    Ok(Recorded::Duplicate {
                        event_id,
                        deployments,
                    }) => {
                        ignored.push(format!(
                            "a replay of event {event_id} (deployments {}); nothing new queued",
                            deployments
                                .iter()
                                .map(|d| d.id.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                        replays.extend(deployments);
                    }
                    Err(e) => {
                        tracing::error!("cannot record an event: {e}");
                        return error(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "could not record the event; try again",
                        );
                    }
                }
            }
            Decision::Refused(reason) => refused.push(reason),
            Decision::Ignored(reason) => ignored.push(reason),
        }
    }
    for q in &queued {
        tracing::info!(deployment = q.id, target = %q.target, "queued {}:{}", q.image, q.tag);
        app.queue.wake(&q.target);
    }
    if !queued.is_empty() {
        ignored.extend(refused);
        return (StatusCode::ACCEPTED, Json(Accepted { queued, ignored })).into_response();
    }
    if !refused.is_empty() && !src.acknowledges_refusals() {
        return error(StatusCode::UNPROCESSABLE_ENTITY, refused.join("; "));
    }
    ignored.extend(refused);
    let reason = if ignored.is_empty() {
        "the payload holds no event".to_string()
    } else {
        ignored.join("; ")
    };
    tracing::info!("ignored: {reason}");
    let mut body = serde_json::json!({ "ignored": reason });
    if !replays.is_empty() {
        body["duplicate_of"] = serde_json::json!(replays);
    }
    (StatusCode::OK, Json(body)).into_response()
}

fn token_param(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

/// Whether reading the body failed because it exceeded the limit (not because the client
/// sent a broken chunk or closed early).
fn is_over_limit(e: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The innermost cause of a body error, for a short reason.
fn source_of(e: &axum::Error) -> String {
    let mut cause: &(dyn std::error::Error + 'static) = e;
    while let Some(c) = cause.source() {
        cause = c;
    }
    cause.to_string()
}

fn too_large(limit: usize) -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("body over the limit of {limit} bytes (server.body_limit)"),
    )
}

fn rejection(e: Rejection) -> Response {
    let status = match e {
        Rejection::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Rejection::UnsupportedContentType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Rejection::Malformed(_) => StatusCode::BAD_REQUEST,
    };
    error(status, e.to_string())
}
