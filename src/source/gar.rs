//! Google Artifact Registry (and Container Registry) notifications, delivered by a Pub/Sub
//! push subscription on the `gcr` topic.
//!
//! The body is Pub/Sub's envelope, `{"message":{"data":<base64>,"messageId":...},
//! "subscription":...}`, whose `data` is the registry's JSON; with payload unwrapping on,
//! the body is that JSON itself and the message id comes in `x-goog-pubsub-message-id`.
//! The message id is the delivery id (Pub/Sub redelivers until it gets a 2xx).
//!
//! The registry's JSON has `action` (`INSERT` deploys, `DELETE` is ignored), `tag`, the
//! full reference `HOST/PROJECT/REPO/IMAGE:TAG`, and `digest`,
//! `HOST/PROJECT/REPO/IMAGE@sha256:...`. A push sends a digest-only `INSERT` as well as
//! the tagged one; the digest-only one is ignored.
//!
//! Authentication: the hook's token as `?token=` in the push endpoint URL (or
//! `Authorization: Bearer`). Pub/Sub's own push authentication sends a Google-signed OIDC
//! JWT as the bearer; checking it needs Google's signing keys, fetched from Google at run
//! time, which dockhand does not do (it must work offline), so the JWT is not verified and
//! does not count as the secret: keep `?token=` in the endpoint when push authentication is
//! on (the JWT's `Authorization` header and the token are then both offered, and the token
//! matches).

use super::{header_str, json, required, HookRequest, Parsed, Rejection, Source};
use crate::config::SourceKind;
use crate::event::ImagePushed;
use crate::reference::{parse_full, validate_digest, validate_tag, ImageName};
use base64::Engine;
use serde::Deserialize;

/// The Google Artifact Registry source.
pub struct Gar;

/// Pub/Sub's push envelope.
#[derive(Deserialize)]
struct Envelope {
    message: Option<Message>,
}

#[derive(Deserialize)]
struct Message {
    data: Option<String>,
    #[serde(rename = "messageId")]
    message_id_camel: Option<String>,
    message_id: Option<String>,
}

/// What the registry publishes.
#[derive(Deserialize)]
struct Notification {
    action: Option<String>,
    digest: Option<String>,
    tag: Option<String>,
}

impl Source for Gar {
    fn kind(&self) -> SourceKind {
        SourceKind::Gar
    }

    /// Pub/Sub's wrapped pushes are `application/json`; it documents no content type for
    /// unwrapped ones, so none is required.
    fn content_types(&self) -> Option<&'static [&'static str]> {
        None
    }

    fn parse(&self, request: &HookRequest<'_>, body: &[u8]) -> Result<Vec<Parsed>, Rejection> {
        let value: serde_json::Value = json(body)?;
        let malformed = |e: serde_json::Error| Rejection::Malformed(super::short(&e.to_string()));
        if value.get("message").is_none() {
            let n: Notification = serde_json::from_value(value).map_err(malformed)?;
            let delivery = header_str(request.headers, "x-goog-pubsub-message-id");
            return notification(n, delivery.map(str::to_string)).map(|p| vec![p]);
        }
        let envelope: Envelope = serde_json::from_value(value).map_err(malformed)?;
        let message = required(envelope.message, "message")?;
        let data = required(message.data, "message.data")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|_| Rejection::Malformed("message.data is not base64".into()))?;
        let in_data = |e: Rejection| match e {
            Rejection::Malformed(m) => Rejection::Malformed(format!("in message.data: {m}")),
            other => other,
        };
        let n: Notification = json(&decoded).map_err(in_data)?;
        let delivery = message.message_id_camel.or(message.message_id);
        notification(n, delivery).map_err(in_data).map(|p| vec![p])
    }

    /// Pub/Sub redelivers a message answered 4xx until it expires (seven days by default),
    /// so a tag a target refuses is acknowledged.
    fn acknowledges_refusals(&self) -> bool {
        true
    }
}

/// One registry notification.
fn notification(n: Notification, delivery: Option<String>) -> Result<Parsed, Rejection> {
    let action = required(n.action, "action")?;
    if action != "INSERT" {
        return Ok(Parsed::Ignored(format!(
            "'{}' is not a push",
            super::short(&action)
        )));
    }
    let Some(reference) = n.tag.filter(|t| !t.is_empty()) else {
        return Ok(Parsed::Ignored(
            "an image pushed by digest, with no tag (its tagged INSERT comes separately)".into(),
        ));
    };
    let bad = |e: &dyn std::fmt::Display| Rejection::Malformed(format!("tag: {e}"));
    if !names_a_registry(&reference) {
        return Err(bad(&format!(
            "'{}' does not start with a registry host",
            super::short(&reference)
        )));
    }
    // The parser would read a missing tag as `latest`; the registry always writes one.
    let last = reference.rsplit('/').next().unwrap_or_default();
    let has_tag = last
        .split('@')
        .next()
        .is_some_and(|name| name.contains(':'));
    let (image, tag, digest_in_tag) = parse_full(&reference).map_err(|e| bad(&e))?;
    let Some(tag) = tag.filter(|_| has_tag) else {
        return Err(bad(&format!("'{}' has no :tag", super::short(&reference))));
    };
    validate_tag(&tag).map_err(|e| bad(&e))?;
    let digest = match digest_in_tag {
        Some(d) => Some(d),
        None => digest_of(n.digest.as_deref(), &image)?,
    };
    Ok(Parsed::Push(ImagePushed {
        image,
        tag,
        digest,
        delivery,
        callback_url: None,
    }))
}

/// The digest from `HOST/.../IMAGE@sha256:...`, when it is a valid one. It must name the
/// same image as `tag`. Google's documented example truncates it (`sha256:6ec128e26cd5...`):
/// such a digest is dropped, not refused.
fn digest_of(reference: Option<&str>, image: &ImageName) -> Result<Option<String>, Rejection> {
    let Some((name, digest)) = reference.and_then(|r| r.split_once('@')) else {
        return Ok(None);
    };
    if validate_digest(digest).is_err() {
        return Ok(None);
    }
    match ImageName::parse(name) {
        Ok(n) if n == *image => Ok(Some(digest.to_string())),
        _ => Err(Rejection::Malformed(format!(
            "digest: '{}' is not an image of tag's repository",
            super::short(name)
        ))),
    }
}

/// Whether a reference starts with a registry host, as Docker tells one: the first path
/// component has a `.` or a `:`, or is `localhost`. Without it the name would mean Docker
/// Hub, where Google's registries never publish.
fn names_a_registry(reference: &str) -> bool {
    reference
        .split_once('/')
        .is_some_and(|(host, _)| host.contains(['.', ':']) || host == "localhost")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{fixture, headers, parse_without_headers};
    use base64::engine::general_purpose::STANDARD;

    fn push(parsed: &[Parsed]) -> &ImagePushed {
        match parsed {
            [Parsed::Push(p)] => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_documented_tag_insert_unwrapped() {
        let h = headers(&[("x-goog-pubsub-message-id", "2070443601311540")]);
        let parsed = Gar
            .parse(
                &HookRequest {
                    headers: &h,
                    query_token: None,
                },
                &fixture("gcp-1.json"),
            )
            .unwrap();
        let p = push(&parsed);
        assert_eq!(
            p.image.to_string(),
            "us-west1-docker.pkg.dev/my-project/my-repo/hello-world"
        );
        assert_eq!(p.tag, "1.1");
        // The documented digest is truncated ("sha256:6ec128e26cd5..."): dropped.
        assert_eq!(p.digest, None);
        assert_eq!(p.delivery.as_deref(), Some("2070443601311540"));
        let parsed = parse_without_headers(&Gar, &fixture("gcp-1.json")).unwrap();
        assert_eq!(push(&parsed).delivery, None);
    }

    #[test]
    fn a_digest_only_insert_is_ignored() {
        let parsed = parse_without_headers(&Gar, &fixture("gcp-2.json")).unwrap();
        assert!(matches!(&parsed[..], [Parsed::Ignored(r)] if r.contains("by digest")));
    }

    #[test]
    fn the_pub_sub_envelope() {
        let parsed = parse_without_headers(&Gar, &fixture("gcp-3.json")).unwrap();
        let p = push(&parsed);
        assert_eq!(
            p.image.to_string(),
            "us-west1-docker.pkg.dev/my-project/my-repo/hello-world"
        );
        assert_eq!(p.tag, "1.1");
        assert_eq!(p.delivery.as_deref(), Some("2070443601311540"));
        // Only the snake_case id.
        let body = String::from_utf8(fixture("gcp-3.json"))
            .unwrap()
            .replace("\"messageId\"", "\"otherId\"");
        let parsed = parse_without_headers(&Gar, body.as_bytes()).unwrap();
        assert_eq!(push(&parsed).delivery.as_deref(), Some("2070443601311540"));
    }

    fn wrapped(inner: &str) -> String {
        format!(
            r#"{{"message":{{"data":"{}","messageId":"m1"}},"subscription":"projects/p/subscriptions/s"}}"#,
            STANDARD.encode(inner)
        )
    }

    #[test]
    fn a_full_digest_of_the_same_image_is_kept() {
        let d = format!("sha256:{}", "6e".repeat(32));
        let inner =
            format!(r#"{{"action":"INSERT","digest":"gcr.io/p/app@{d}","tag":"gcr.io/p/app:v2"}}"#);
        let parsed = parse_without_headers(&Gar, wrapped(&inner).as_bytes()).unwrap();
        let p = push(&parsed);
        assert_eq!(p.image.to_string(), "gcr.io/p/app");
        assert_eq!(p.digest.as_deref(), Some(d.as_str()));
        assert_eq!(p.delivery.as_deref(), Some("m1"));
        let inner = format!(
            r#"{{"action":"INSERT","digest":"gcr.io/p/other@{d}","tag":"gcr.io/p/app:v2"}}"#
        );
        let e = parse_without_headers(&Gar, wrapped(&inner).as_bytes()).unwrap_err();
        assert!(e.to_string().contains("digest"), "{e}");
    }

    #[test]
    fn deletes_are_ignored() {
        let inner = r#"{"action":"DELETE","tag":"gcr.io/p/app:v2"}"#;
        for b in [inner.to_string(), wrapped(inner)] {
            let parsed = parse_without_headers(&Gar, b.as_bytes()).unwrap();
            assert!(matches!(&parsed[..], [Parsed::Ignored(r)] if r.contains("DELETE")));
        }
    }

    #[test]
    fn hostile_or_foreign_bodies_never_push() {
        for (inner, want) in [
            (r#"{"action":"INSERT","tag":"gcr.io/p/app:../../x"}"#, "tag"),
            (r#"{"action":"INSERT","tag":"gcr.io/p/App:v1"}"#, "tag"),
            (r#"{"action":"INSERT","tag":"gcr.io/p/my app:v1"}"#, "tag"),
            (r#"{"action":"INSERT","tag":"gcr.io/p/../app:v1"}"#, "tag"),
            (r#"{"action":"INSERT","tag":"gcr.io/p/app"}"#, "no :tag"),
            (r#"{"action":"INSERT","tag":"nginx:1.25"}"#, "registry host"),
            (
                r#"{"action":"INSERT","tag":"library/nginx:1.25"}"#,
                "registry host",
            ),
            (r#"{"tag":"gcr.io/p/app:v1"}"#, "missing action"),
            (r#"{"action":"INSERT","tag":7}"#, "invalid type"),
        ] {
            for (b, prefix) in [
                (inner.to_string(), ""),
                (wrapped(inner), "in message.data: "),
            ] {
                let e = parse_without_headers(&Gar, b.as_bytes()).unwrap_err();
                assert!(matches!(e, Rejection::Malformed(_)), "{b}: {e}");
                let e = e.to_string();
                assert!(e.contains(want) && e.contains(prefix), "{want}: {e}");
            }
        }
        for (b, want) in [
            (r#"{"message":{"messageId":"1"}}"#, "missing message.data"),
            (r#"{"message":{"data":"!!!"}}"#, "not base64"),
            (
                r#"{"message":{"data":"W10="}}"#,
                "in message.data: expected a JSON object",
            ),
            (r#"{"message":null}"#, "missing message"),
            (r#"{"message":{"data":5}}"#, "invalid type"),
            ("[]", "JSON object"),
            ("{", "malformed"),
        ] {
            let e = parse_without_headers(&Gar, b.as_bytes()).unwrap_err();
            assert!(matches!(e, Rejection::Malformed(_)), "{b}: {e}");
            assert!(e.to_string().contains(want), "{want}: {e}");
        }
    }
}
