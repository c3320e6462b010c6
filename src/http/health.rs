//! `GET /healthz`: 200 when the state file and the engine answer, 503 saying which does not.
//! When every target is a dry run nothing needs the engine, so it is not asked.

use super::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use std::sync::Arc;

pub(super) async fn healthz(
    State(app): State<Arc<AppState>>,
) -> (StatusCode, Json<serde_json::Value>) {
    let store = app.store.ping().await;
    let engine = if app.config.all_dry_run() {
        Ok("not used: every target is a dry run".to_string())
    } else {
        app.engine.version().await
    };

    let body = serde_json::json!({
        "state_file": match &store { Ok(()) => "ok".to_string(), Err(e) => e.to_string() },
        "engine": match &engine { Ok(v) => v.clone(), Err(e) => e.to_string() },
    });
    let status = if store.is_ok() && engine.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
