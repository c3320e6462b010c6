//! Azure Container Registry webhooks.
//!
//! ACR signs nothing and adds no header of its own; the webhook's custom headers are the
//! way to send a secret (`az acr webhook create --headers "Authorization=Bearer TOKEN"`).
//! The value is taken as `Bearer TOKEN` or bare `TOKEN`, or the token comes as `?token=`.
//!
//! One delivery is one event, shaped like a Distribution event without the envelope:
//! `action` `push` deploys (`delete`, `chart_push`, quarantine actions... are ignored);
//! the image is `request.host` + `/` + `target.repository`, with `target.tag` and
//! `target.digest`; `id` is the delivery id. A push by digest has no tag and is ignored.

use super::{
    authorization_or_query_token, json, required, Auth, HookRequest, Parsed, Rejection, Source,
};
use crate::config::SourceKind;
use crate::event::ImagePushed;
use crate::reference::{validate_digest, validate_tag, ImageName};
use crate::secret::Secret;
use serde::Deserialize;

/// The Azure Container Registry source.
pub struct Acr;

#[derive(Deserialize)]
struct Payload {
    id: Option<String>,
    action: Option<String>,
    target: Option<Target>,
    request: Option<Request>,
}

#[derive(Deserialize)]
struct Target {
    repository: Option<String>,
    tag: Option<String>,
    digest: Option<String>,
}

#[derive(Deserialize)]
struct Request {
    host: Option<String>,
}

impl Source for Acr {
    fn kind(&self) -> SourceKind {
        SourceKind::Acr
    }

    /// ACR sends `application/json` unless a custom `Content-Type` header overrides it.
    fn content_types(&self) -> Option<&'static [&'static str]> {
        Some(&["application/json"])
    }

    fn authenticate(&self, request: &HookRequest<'_>, secret: &Secret) -> Result<Auth, Rejection> {
        authorization_or_query_token(request, secret).map(|()| Auth::Verified)
    }

    fn parse(&self, _request: &HookRequest<'_>, body: &[u8]) -> Result<Vec<Parsed>, Rejection> {
        let p: Payload = json(body)?;
        let id = required(p.id, "id")?;
        let action = required(p.action, "action")?;
        if action != "push" {
            return Ok(vec![Parsed::Ignored(format!(
                "{}: '{}' is not an image push",
                super::short(&id),
                super::short(&action)
            ))]);
        }
        let target = required(p.target, "target")?;
        let repository = required(target.repository, "target.repository")?;
        let host = required(p.request.and_then(|r| r.host), "request.host")?;
        let image = ImageName::from_host_and_path(&host, &repository)
            .map_err(|e| Rejection::Malformed(format!("request.host / target.repository: {e}")))?;
        let Some(tag) = target.tag.filter(|t| !t.is_empty()) else {
            return Ok(vec![Parsed::Ignored(format!(
                "{image}: a manifest pushed by digest, with no tag"
            ))]);
        };
        validate_tag(&tag).map_err(|e| Rejection::Malformed(format!("target.tag: {e}")))?;
        let digest = target.digest.filter(|d| !d.is_empty());
        if let Some(d) = &digest {
            validate_digest(d).map_err(|e| Rejection::Malformed(format!("target.digest: {e}")))?;
        }
        Ok(vec![Parsed::Push(ImagePushed {
            image,
            tag,
            digest,
            delivery: Some(id),
            callback_url: None,
        })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{fixture, headers, parse_without_headers};
    use serde_json::{json as j, Value};

    #[test]
    fn the_documented_push() {
        let parsed = parse_without_headers(&Acr, &fixture("azure-1.json")).unwrap();
        let [Parsed::Push(p)] = &parsed[..] else {
            panic!("{parsed:?}")
        };
        assert_eq!(p.image.to_string(), "myregistry.azurecr.io/hello-world");
        assert_eq!(p.tag, "v1");
        assert_eq!(
            p.digest.as_deref(),
            Some("sha256:80f0d5c8786bb9e621a45ece0db56d11cdc624ad20da9fe62e9d25490f331d7d")
        );
        assert_eq!(
            p.delivery.as_deref(),
            Some("cb8c3971-9adc-488b-bdd8-43cbb4974ff5")
        );
    }

    #[test]
    fn the_custom_header_or_the_query_token() {
        let secret = Secret::new("t0k");
        for (pairs, query, ok) in [
            (&[("authorization", "Bearer t0k")][..], None, true),
            (&[("authorization", "t0k")], None, true),
            (&[], Some("t0k"), true),
            (&[("authorization", "Bearer t0")], None, false),
            (&[("authorization", "t0k0")], Some("x"), false),
        ] {
            let h = headers(pairs);
            let got = Acr.authenticate(
                &HookRequest {
                    headers: &h,
                    query_token: query,
                },
                &secret,
            );
            assert_eq!(got.is_ok(), ok, "{pairs:?} {query:?}");
            if let Err(e) = got {
                assert!(!e.to_string().contains("t0"));
            }
        }
    }

    fn edited(f: impl Fn(&mut Value)) -> String {
        let mut v: Value = serde_json::from_slice(&fixture("azure-1.json")).unwrap();
        f(&mut v);
        v.to_string()
    }

    #[test]
    fn other_actions_and_digest_pushes_are_ignored() {
        for (b, why) in [
            (edited(|v| v["action"] = j!("delete")), "'delete'"),
            (edited(|v| v["action"] = j!("chart_push")), "'chart_push'"),
            (
                edited(|v| {
                    v["target"].as_object_mut().unwrap().remove("tag");
                }),
                "by digest",
            ),
        ] {
            let parsed = parse_without_headers(&Acr, b.as_bytes()).unwrap();
            assert!(
                matches!(&parsed[..], [Parsed::Ignored(r)] if r.contains(why)),
                "{why}: {parsed:?}"
            );
        }
    }

    #[test]
    fn hostile_or_foreign_bodies_never_push() {
        for (b, want) in [
            (edited(|v| v["target"]["tag"] = j!("../../x")), "target.tag"),
            (
                edited(|v| v["target"]["digest"] = j!("sha256:80f0")),
                "target.digest",
            ),
            (
                edited(|v| v["target"]["repository"] = j!("Hello-World")),
                "target.repository",
            ),
            (
                edited(|v| v["target"]["repository"] = j!("hello world")),
                "target.repository",
            ),
            (
                edited(|v| v["target"]["repository"] = j!("../hello")),
                "target.repository",
            ),
            (
                edited(|v| v["request"]["host"] = j!("my registry")),
                "request.host",
            ),
            (
                edited(|v| v["request"]["host"] = j!("evil.io/x")),
                "request.host",
            ),
            (
                edited(|v| {
                    v["request"].as_object_mut().unwrap().remove("host");
                }),
                "missing request.host",
            ),
            (
                edited(|v| {
                    v["target"].as_object_mut().unwrap().remove("repository");
                }),
                "missing target.repository",
            ),
            (
                edited(|v| {
                    v.as_object_mut().unwrap().remove("id");
                }),
                "missing id",
            ),
            (
                edited(|v| {
                    v.as_object_mut().unwrap().remove("action");
                }),
                "missing action",
            ),
            (edited(|v| v["target"]["tag"] = j!(1)), "invalid type"),
            ("[]".into(), "JSON object"),
            ("{".into(), "malformed"),
        ] {
            let e = parse_without_headers(&Acr, b.as_bytes()).unwrap_err();
            assert!(matches!(e, Rejection::Malformed(_)), "{b}: {e}");
            assert!(e.to_string().contains(want), "{want}: {e}");
        }
    }
}
