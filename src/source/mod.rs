//! Sources: one file per registry or trigger. Each turns an authenticated HTTP request into
//! [`ImagePushed`] events, or a clear [`Rejection`].
//!
//! Adding a source means adding one file with a type that implements [`Source`], one
//! variant in [`crate::config::SourceKind`] and one line in [`for_kind`]; nothing else
//! changes. The HTTP layer ([`crate::http`]) calls the methods in this order:
//! [`Source::authenticate`] (headers and query only, before the body is read),
//! [`Source::content_types`], [`Source::verify_body`] (for senders that sign the body),
//! then [`Source::parse`].

mod acr;
mod distribution;
mod dockerhub;
mod gar;
mod generic;
mod gitea;
mod github;
mod harbor;
mod quay;

use crate::config::SourceKind;
use crate::event::ImagePushed;
use crate::secret::Secret;
use axum::http::{header, HeaderMap};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::borrow::Cow;

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
        SourceKind::Github => &github::GitHub,
        SourceKind::Gitea => &gitea::Gitea,
        SourceKind::Harbor => &harbor::Harbor,
        SourceKind::Quay => &quay::Quay,
        SourceKind::Acr => &acr::Acr,
        SourceKind::Gar => &gar::Gar,
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

/// The token of an `Authorization: Bearer TOKEN` header (scheme case-insensitive), if any.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// `Authorization: Bearer TOKEN` or `?token=TOKEN`, compared in constant time.
pub fn bearer_or_query_token(request: &HookRequest<'_>, secret: &Secret) -> Result<(), Rejection> {
    let bearer = bearer_token(request.headers);
    let offered: Vec<&str> = bearer.into_iter().chain(request.query_token).collect();
    check_offered(
        &offered,
        secret,
        "missing secret: send `Authorization: Bearer <token>` or `?token=<token>`",
    )
}

/// Accepts when any offered value is the secret. Every value is checked, so the time taken
/// does not say which one was wrong; nothing offered is ever echoed.
fn check_offered(
    offered: &[&str],
    secret: &Secret,
    missing: &'static str,
) -> Result<(), Rejection> {
    if offered.is_empty() {
        return Err(Rejection::Unauthorized(missing));
    }
    let ok = offered
        .iter()
        .fold(false, |ok, t| secret.matches(t.as_bytes()) | ok);
    if ok {
        Ok(())
    } else {
        Err(Rejection::Unauthorized("wrong secret"))
    }
}

/// `Authorization: Bearer TOKEN`, `Authorization: TOKEN` or `?token=TOKEN`, compared in
/// constant time.
///
/// For senders that send a configured header value verbatim (Harbor's "Auth Header", an
/// ACR custom header): whether the user wrote `Bearer TOKEN` or just `TOKEN` there, the
/// header matches a hook whose token is `TOKEN`; a header that is the whole secret
/// verbatim (`Bearer TOKEN` as the hook's token) matches too.
pub fn authorization_or_query_token(
    request: &HookRequest<'_>,
    secret: &Secret,
) -> Result<(), Rejection> {
    let header = request
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let mut offered: Vec<&str> = Vec::with_capacity(3);
    offered.extend(header);
    offered.extend(bearer_token(request.headers));

    offered.extend(request.query_token);
    check_offered(
        &offered,
        secret,
        "missing secret: send `Authorization: Bearer <token>`, `Authorization: <token>` \
         or `?token=<token>`",
    )
}

/// Whether `hex_signature` is the HMAC-SHA256 of `signed`, keyed with the secret. The
/// comparison is constant time (`verify_slice`); a signature that is not hex, or not 32
/// bytes, is simply wrong.
fn hmac_sha256_matches(secret: &Secret, signed: &[u8], hex_signature: &str) -> bool {
    let Ok(signature) = hex::decode(hex_signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose()) else {
        return false;
    };
    mac.update(signed);
    mac.verify_slice(&signature).is_ok()
}

/// A header's value as text, trimmed, when present and not empty.
fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Whether the request's content type (without parameters) is `essence`.
fn content_type_is(headers: &HeaderMap, essence: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(essence))
}

/// The JSON document of a body that is either JSON or, for senders that offer
/// `application/x-www-form-urlencoded` (GitHub, Gitea), a form whose field `payload`
/// holds the JSON.
fn json_or_form_payload<'a>(
    headers: &HeaderMap,
    body: &'a [u8],
) -> Result<Cow<'a, [u8]>, Rejection> {
    if !content_type_is(headers, "application/x-www-form-urlencoded") {
        return Ok(Cow::Borrowed(body));
    }
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| Cow::Owned(v.into_owned().into_bytes()))
        .ok_or_else(|| Rejection::Malformed("form body without a `payload` field".into()))
}

/// A field the sender always sends, or a 400 that names its JSON path.
fn required<T>(value: Option<T>, path: &str) -> Result<T, Rejection> {
    value.ok_or_else(|| Rejection::Malformed(format!("missing {path}")))
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

/// A fixture from `shared/fixtures`, byte for byte (for the sources' unit tests). The
/// folder sits beside the checkout; a worktree elsewhere falls back to `/work/shared`.
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let beside = format!("{}/../shared/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let fallback = format!("/work/shared/fixtures/{name}");
    std::fs::read(&beside)
        .or_else(|_| std::fs::read(&fallback))
        .unwrap_or_else(|e| panic!("{beside} (or {fallback}): {e}"))
}

/// Headers from name/value pairs (for the sources' unit tests).
#[cfg(test)]
pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.append(
            header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            header::HeaderValue::from_str(value).unwrap(),
        );
    }
    h
}

/// The lowercase hex HMAC-SHA256 of `body` keyed with `key` (for the sources' unit tests).
#[cfg(test)]
pub(crate) fn sign(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
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
    fn authorization_header_verbatim_bearer_or_query() {
        let secret = Secret::new("s3cret");
        let h = HeaderMap::new();
        let missing = authorization_or_query_token(&req(&h, None), &secret).unwrap_err();
        assert!(matches!(missing, Rejection::Unauthorized(m) if m.starts_with("missing secret")));
        assert!(authorization_or_query_token(&req(&h, Some("s3cret")), &secret).is_ok());
        for (value, ok) in [
            ("Bearer s3cret", true),
            ("bearer s3cret", true),
            ("s3cret", true),
            (" s3cret ", true),
            ("Basic s3cret", false),
            ("Bearer s3cret2", false),
            ("s3cre", false),
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            let got = authorization_or_query_token(&req(&h, None), &secret);
            assert_eq!(got.is_ok(), ok, "{value}");
            if let Err(e) = got {
                assert_eq!(e, Rejection::Unauthorized("wrong secret"));
            }
        }
        // A hook whose token is the whole header value, as Harbor sends it.
        let whole = Secret::new("Bearer s3cret");
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert!(authorization_or_query_token(&req(&h, None), &whole).is_ok());
    }

    #[test]
    fn hmac_sha256_against_githubs_published_vector() {
        let secret = Secret::new("It's a Secret to Everybody");
        let good = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(hmac_sha256_matches(&secret, b"Hello, World!", good));
        assert!(!hmac_sha256_matches(&secret, b"Hello, World?", good));
        assert!(!hmac_sha256_matches(
            &Secret::new("x"),
            b"Hello, World!",
            good
        ));
        assert!(!hmac_sha256_matches(&secret, b"Hello, World!", &good[..63]));
        assert!(!hmac_sha256_matches(&secret, b"Hello, World!", &good[..62]));
        assert!(!hmac_sha256_matches(&secret, b"Hello, World!", ""));
        assert_eq!(sign("It's a Secret to Everybody", b"Hello, World!"), good);
    }

    #[test]
    fn every_kind_has_its_source() {
        for kind in [
            SourceKind::Distribution,
            SourceKind::Dockerhub,
            SourceKind::Generic,
            SourceKind::Github,
            SourceKind::Gitea,
            SourceKind::Harbor,
            SourceKind::Quay,
            SourceKind::Acr,
            SourceKind::Gar,
        ] {
            assert_eq!(for_kind(kind).kind(), kind);
            let name = serde_json::to_string(kind.as_str()).unwrap();
            assert_eq!(serde_json::from_str::<SourceKind>(&name).unwrap(), kind);
        }
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
