//! Sources: one file per registry or trigger. Each turns an authenticated HTTP request into
//! [`ImagePushed`] events, or a clear [`Rejection`].
//!
//! Adding a source means adding one file with a type that implements [`Source`], one
//! variant in [`crate::config::SourceKind`] and one line in [`for_kind`]; nothing else
//! changes. The HTTP layer ([`crate::http`]) calls the methods in this order:
//! [`Source::authenticate`] (headers and query only, before the body is read),
//! [`Source::content_types`], [`Source::verify_body`] (for senders that sign the body),
//! then [`Source::parse`].

mod distribution;
mod dockerhub;
mod generic;

use crate::config::SourceKind;
use crate::event::ImagePushed;
use crate::secret::Secret;
use axum::http::{header, HeaderMap};

/// What a source sees of a request.
pub struct HookRequest<'a> {
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The `token` query parameter, if any (for senders that cannot set headers).
    pub query_token: Option<&'a str>,
}

/// What [`Source::authenticate`] could tell from the headers alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// The request is genuine.
    Verified,
    /// A signature over the body is present; [`Source::verify_body`] checks it.
    NeedsBody,
}

/// One item of a parsed payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A new image: goes on to policy.
    Push(ImagePushed),
    /// Genuine, but not a push that can deploy (a blob, a pull, a delete, no tag...).
    Ignored(String),
}

/// Why a request is refused before it reaches policy. Each maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// 401: no secret, or the wrong one. The message never contains what was offered.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 415: the source defines a content type and the request has another.
    #[error("content type '{got}' is not accepted by this hook; send {expected}")]
    UnsupportedContentType {
        /// What came (truncated).
        got: String,
        /// What the source accepts.
        expected: String,
    },
    /// 400: the body is not what the source sends.
    #[error("malformed body: {0}")]
    Malformed(String),
}

/// A payload format and how its sender authenticates.
pub trait Source: Send + Sync {
    /// The config name of this source.
    fn kind(&self) -> SourceKind;

    /// The content types the sender uses (parameters such as `charset` are ignored), or
    /// `None` when the sender does not define one.
    fn content_types(&self) -> Option<&'static [&'static str]>;

    /// Checks what can be checked before the body is read. The default takes
    /// `Authorization: Bearer TOKEN` or `?token=TOKEN`.
    fn authenticate(&self, request: &HookRequest<'_>, secret: &Secret) -> Result<Auth, Rejection> {
        bearer_or_query_token(request, secret).map(|()| Auth::Verified)
    }

    /// Checks a signature over the raw body, when [`Source::authenticate`] said
    /// [`Auth::NeedsBody`].
    fn verify_body(
        &self,
        _request: &HookRequest<'_>,
        _body: &[u8],
        _secret: &Secret,
    ) -> Result<(), Rejection> {
        Ok(())
    }

    /// Parses the body into events. Headers may carry part of the event (a delivery id,
    /// an event type).
    fn parse(&self, request: &HookRequest<'_>, body: &[u8]) -> Result<Vec<Parsed>, Rejection>;

    /// Whether a push whose tag a target refuses is still answered 2xx. Registries that
    /// retry a 4xx forever, blocking every later notification behind it, need this.
    fn acknowledges_refusals(&self) -> bool {
        false
    }
}

/// The source for a config `source = "..."` value.
pub fn for_kind(kind: SourceKind) -> &'static dyn Source {
    match kind {
        SourceKind::Distribution => &distribution::Distribution,
        SourceKind::Dockerhub => &dockerhub::DockerHub,
        SourceKind::Generic => &generic::Generic,
    }
}

/// Checks the content type against what a source accepts.
pub fn check_content_type(source: &dyn Source, headers: &HeaderMap) -> Result<(), Rejection> {
    let Some(accepted) = source.content_types() else {
        return Ok(());
    };
    let got = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = got.split(';').next().unwrap_or("").trim();
    if accepted.iter().any(|a| a.eq_ignore_ascii_case(essence)) {
        Ok(())
    } else {
        Err(Rejection::UnsupportedContentType {
            got: if got.is_empty() {
                "(none)".to_string()
            } else {
                got.chars().take(100).collect()
            },
            expected: accepted.join(" or "),
        })
    }
}

/// `Authorization: Bearer TOKEN` or `?token=TOKEN`, compared in constant time.
pub fn bearer_or_query_token(request: &HookRequest<'_>, secret: &Secret) -> Result<(), Rejection> {
    let bearer = request
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then_some(token.trim())
        });
    let offered: Vec<&str> = bearer.into_iter().chain(request.query_token).collect();
    if offered.is_empty() {
        return Err(Rejection::Unauthorized(
            "missing secret: send `Authorization: Bearer <token>` or `?token=<token>`",
        ));
    }
    // Check every offered value so that the time taken does not say which one was wrong.
    let ok = offered
        .iter()
        .fold(false, |ok, t| secret.matches(t.as_bytes()) | ok);
    if ok {
        Ok(())
    } else {
        Err(Rejection::Unauthorized("wrong secret"))
    }
}

/// Parses JSON, turning serde's error into a short 400 reason.
fn json<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, Rejection> {
    // serde would take `[...]` for a struct and say "invalid length"; say what is meant.
    if let Some(first) = body.iter().find(|b| !b.is_ascii_whitespace()) {
        if *first != b'{' {
            return Err(Rejection::Malformed(
                "expected a JSON object ({...})".to_string(),
            ));
        }
    }
    serde_json::from_slice(body).map_err(|e| Rejection::Malformed(short(&e.to_string())))
}

/// Checks a callback URL from a payload: absolute http(s), or the payload is refused.
fn callback_url(url: Option<String>, key: &str) -> Result<Option<String>, Rejection> {
    let Some(url) = url.filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    match reqwest::Url::parse(&url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(Some(url)),
        _ => Err(Rejection::Malformed(format!(
            "{key} is not an absolute http(s) URL"
        ))),
    }
}

/// Truncates a message built from untrusted input.
fn short(s: &str) -> String {
    const MAX: usize = 200;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(MAX).collect::<String>())
    }
}

/// Parses a body as if it came with no headers (for the sources' unit tests).
#[cfg(test)]
pub(crate) fn parse_without_headers(
    src: &dyn Source,
    body: &[u8],
) -> Result<Vec<Parsed>, Rejection> {
    let headers = HeaderMap::new();
    src.parse(
        &HookRequest {
            headers: &headers,
            query_token: None,
        },
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn req<'a>(headers: &'a HeaderMap, q: Option<&'a str>) -> HookRequest<'a> {
        HookRequest {
            headers,
            query_token: q,
        }
    }

    #[test]
    fn bearer_and_query_tokens() {
        let secret = Secret::new("s3cret");
        let mut h = HeaderMap::new();
        assert_eq!(
            bearer_or_query_token(&req(&h, None), &secret),
            Err(Rejection::Unauthorized(
                "missing secret: send `Authorization: Bearer <token>` or `?token=<token>`"
            ))
        );
        assert!(bearer_or_query_token(&req(&h, Some("s3cret")), &secret).is_ok());
        assert!(bearer_or_query_token(&req(&h, Some("nope")), &secret).is_err());
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert!(bearer_or_query_token(&req(&h, None), &secret).is_ok());
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  s3cret "),
        );
        assert!(bearer_or_query_token(&req(&h, None), &secret).is_ok());
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic s3cret"),
        );
        assert!(bearer_or_query_token(&req(&h, None), &secret).is_err());
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret2"),
        );
        assert_eq!(
            bearer_or_query_token(&req(&h, None), &secret),
            Err(Rejection::Unauthorized("wrong secret"))
        );
    }

    #[test]
    fn content_types() {
        let src = for_kind(SourceKind::Distribution);
        let mut h = HeaderMap::new();
        assert!(check_content_type(src, &h).is_err());
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(
                "application/vnd.docker.distribution.events.v2+json; charset=utf-8",
            ),
        );
        assert!(check_content_type(src, &h).is_ok());
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let e = check_content_type(src, &h).unwrap_err().to_string();
        assert!(
            e.contains("text/plain") && e.contains("events.v1+json"),
            "{e}"
        );
        assert!(check_content_type(for_kind(SourceKind::Dockerhub), &h).is_ok());
    }
}
