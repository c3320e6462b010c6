//! The HTTP front door.
//!
//! - `POST /hooks/{name}`: a registry's webhook (`hooks`).
//! - `GET /healthz`: up, and able to reach the state file and the engine (`health`).
//! - `/api/...`: the REST API ([`crate::api`]).
//!
//! Around them: [`serve`](mod@serve) (the connection loop and its limits), [`tls`] (certificates,
//! reloaded on change), `client_ip` (who is asking, behind trusted proxies) and
//! [`AuthFailures`] (429 for an address that keeps failing to authenticate).
//!

//! Every refusal is a JSON `{"error": "<short reason>"}` with the status that says what
//! is wrong, and nothing that is refused reaches the engine.

mod client_ip;
mod health;
mod hooks;
mod limit;
pub mod serve;
pub mod tls;

pub use limit::{AuthFailures, Loudness};

use crate::config::Config;
use crate::engine::Engine;
use crate::queue::Queue;
use crate::store::Store;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use std::sync::Arc;

/// What the handlers share.
pub struct AppState {
    /// The configuration.
    pub config: Arc<Config>,
    /// The state file.
    pub store: Store,
    /// The engine (for `/healthz`).
    pub engine: Arc<Engine>,
    /// Where queued deploys are announced.
    pub queue: Queue,
    /// Failed authentications per client address.
    pub failures: AuthFailures,
}

/// The router with every route.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/hooks/{name}", any(hooks::hook))
        .route("/healthz", get(health::healthz))
        .merge(crate::api::router(state.clone()))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such route; hooks are at POST /hooks/<name>",
            )
        })
        .with_state(state)
}

/// A JSON error answer.
pub fn error(status: StatusCode, reason: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": reason.into() }))).into_response()
}
