//! A client of the `/api` of a running dockhand, for the CLI.

use crate::api::{Accepted, DeployRequest, DeploymentWithLog, TargetView};
use crate::store::{Deployment, LogLine};
use futures_util::StreamExt;
use std::time::Duration;

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer.
    #[error("cannot reach dockhand at {url}: {message} (is `dockhand serve` running? set --url or DOCKHAND_URL)")]
    Connect {
        /// Where.
        url: String,
        /// Why.
        message: String,
    },
    /// 401.
    #[error(
        "dockhand refused the token: {0} (set --token or DOCKHAND_TOKEN to server.admin_token)"
    )]
    Unauthorized(String),
    /// Any other non-2xx answer, with dockhand's reason.
    #[error("{0}")]
    Api(String),
}

/// An API client.
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// A client of the dockhand at `base` (e.g. `http://127.0.0.1:8787`).
    pub fn new(base: &str, token: Option<String>) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_else(|_| reqwest::Client::new()),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let response = r.send().await.map_err(|e| ClientError::Connect {
            url: self.base.clone(),
            message: e.without_url().to_string(),
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let reason = response
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| status.to_string());
        Err(if status == reqwest::StatusCode::UNAUTHORIZED {
            ClientError::Unauthorized(reason)
        } else {
            ClientError::Api(reason)
        })
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        r: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        self.send(r)
            .await?
            .json()
            .await
            .map_err(|e| ClientError::Api(format!("unexpected answer: {e}")))
    }

    /// `GET /api/targets`.
    pub async fn targets(&self) -> Result<Vec<TargetView>, ClientError> {
        self.json(self.request(reqwest::Method::GET, "/api/targets"))
            .await
    }

    /// `GET /api/deployments`.
    pub async fn deployments(
        &self,
        target: Option<&str>,
        state: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Deployment>, ClientError> {
        let mut query: Vec<(&str, String)> = vec![("limit", limit.to_string())];
        if let Some(t) = target {
            query.push(("target", t.to_string()));
        }
        if let Some(s) = state {
            query.push(("state", s.to_string()));
        }
        self.json(
            self.request(reqwest::Method::GET, "/api/deployments")
                .query(&query),
        )
        .await
    }

    /// `GET /api/deployments/{id}`.
    pub async fn deployment(&self, id: i64) -> Result<DeploymentWithLog, ClientError> {
        self.json(self.request(reqwest::Method::GET, &format!("/api/deployments/{id}")))
            .await
    }

    /// `POST /api/targets/{name}/deploy`.
    pub async fn deploy(
        &self,
        target: &str,
        request: &DeployRequest,
    ) -> Result<Accepted, ClientError> {
        self.json(
            self.request(
                reqwest::Method::POST,
                &format!("/api/targets/{target}/deploy"),
            )
            .json(request),
        )
        .await
    }

    /// `POST /api/targets/{name}/rollback`.
    pub async fn rollback(&self, target: &str) -> Result<Accepted, ClientError> {
        self.json(self.request(
            reqwest::Method::POST,
            &format!("/api/targets/{target}/rollback"),
        ))
        .await
    }

    /// Follows a deployment's log (`?follow=1`), calling `on_line` per line, until it ends;
    /// returns the ended deployment.
    pub async fn follow(
        &self,
        id: i64,
        mut on_line: impl FnMut(&LogLine),
    ) -> Result<Deployment, ClientError> {
        let response = self
            .send(self.request(
                reqwest::Method::GET,
                &format!("/api/deployments/{id}/log?follow=1"),
            ))
            .await?;
        let mut stream = response.bytes_stream();
        let mut buffer = String::new();
        let mut event = String::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ClientError::Connect {
                url: self.base.clone(),
                message: e.without_url().to_string(),
            })?;
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(newline) = buffer.find('\n') {
                let line: String = buffer.drain(..=newline).collect();
                let line = line.trim_end_matches(['\r', '\n']);
                if let Some(name) = line.strip_prefix("event:") {
                    event = name.trim().to_string();
                } else if let Some(data) = line.strip_prefix("data:") {
                    let data = data.trim();
                    match event.as_str() {
                        "line" => {
                            if let Ok(l) = serde_json::from_str::<LogLine>(data) {
                                on_line(&l);
                            }
                        }
                        "end" => {
                            return serde_json::from_str(data).map_err(|e| {
                                ClientError::Api(format!("unexpected end event: {e}"))
                            });
                        }
                        _ => {}
                    }
                }
            }
        }
        // The stream closed early: ask for the state.
        Ok(self.deployment(id).await?.deployment)
    }
}
