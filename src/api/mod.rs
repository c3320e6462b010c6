//! The REST API under `/api`, for the CLI and for people: targets, deployments and their
//! logs, manual deploys and rollbacks, all through the same queue as hooks.
//!
//! Every route takes `Authorization: Bearer <server.admin_token>` (compared in constant
//! time). Without an admin token configured the API is off and answers 404 saying so; it
//! never accepts a hook's secret.

mod deployments;
mod targets;

pub use deployments::DeploymentWithLog;
pub use targets::{Accepted, DeployRequest, Running, TargetView};

use crate::http::{error, AppState};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// The `/api` routes.
pub fn router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/targets", get(targets::list))
        .route("/api/targets/{name}/deploy", post(targets::deploy))
        .route("/api/targets/{name}/rollback", post(targets::rollback))
        .route("/api/deployments", get(deployments::list))
        .route("/api/deployments/{id}", get(deployments::one))
        .route("/api/deployments/{id}/log", get(deployments::log))
        .route_layer(middleware::from_fn_with_state(state, authorize))
}

async fn authorize(State(app): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Some(admin) = &app.config.server.admin_token else {
        return error(
            StatusCode::NOT_FOUND,
            "the API is off: set server.admin_token (or admin_token_file, admin_token_env) to turn it on",
        );
    };
    let offered = crate::source::bearer_token(request.headers());
    match offered {
        None => error(
            StatusCode::UNAUTHORIZED,
            "missing token: send `Authorization: Bearer <admin token>`",
        ),
        Some(t) if !admin.matches(t.as_bytes()) => error(StatusCode::UNAUTHORIZED, "wrong token"),
        Some(_) => next.run(request).await,
    }
}
