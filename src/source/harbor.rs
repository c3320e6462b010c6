//! Harbor webhooks, in the Default format (`application/json`) and the CloudEvents one
//! (`application/cloudevents+json`, structured mode).
//!
//! Harbor has no signature: it sends the policy's "Auth Header" verbatim as
//! `Authorization`, so both `Bearer TOKEN` and a bare `TOKEN` are taken, as is `?token=`.
//!
//! A push is `type` `PUSH_ARTIFACT` (Harbor 1.x: `pushImage`) in the Default format, or
//! `harbor.artifact.pushed` in CloudEvents, where `data` replaces `event_data` and `id` is
//! the delivery id. Each of `event_data.resources[]` is one push: its `tag` and `digest`,
//! the repository `event_data.repository.repo_full_name`, and the registry host, the part
//! of the resource's `resource_url` before the first `/`. An artifact pushed by digest
//! has its digest as its tag: that resource is ignored, as is any tag Docker would refuse.
//! When one CloudEvent carries several resources, each push's delivery id is `id#index`,
//! since the store takes one delivery id as one event (and would drop the rest as replays).

use super::{
    authorization_or_query_token, content_type_is, json, required, Auth, HookRequest, Parsed,
    Rejection, Source,
};
use crate::config::SourceKind;
use crate::event::ImagePushed;
use crate::reference::{validate_digest, validate_tag, ImageName};
use crate::secret::Secret;
use serde::Deserialize;

/// The Harbor source.
pub struct Harbor;

/// Event types of a push: Default (Harbor 2), Default (Harbor 1.x), CloudEvents.
const PUSH_TYPES: &[&str] = &["PUSH_ARTIFACT", "pushImage", "harbor.artifact.pushed"];

#[derive(Deserialize)]
struct Payload {
    /// Present only in CloudEvents.
    specversion: Option<String>,
    /// CloudEvents' event id.
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Default format.
    event_data: Option<EventData>,
    /// CloudEvents.
    data: Option<EventData>,
}

#[derive(Deserialize)]
struct EventData {
    resources: Option<Vec<Resource>>,
    repository: Option<Repository>,
}

#[derive(Deserialize)]
struct Resource {
    digest: Option<String>,
    tag: Option<String>,
    resource_url: Option<String>,
}

#[derive(Deserialize)]
struct Repository {
    repo_full_name: Option<String>,
}

impl Source for Harbor {
    fn kind(&self) -> SourceKind {
        SourceKind::Harbor
    }

    fn content_types(&self) -> Option<&'static [&'static str]> {
        Some(&["application/json", "application/cloudevents+json"])
    }

    fn authenticate(&self, request: &HookRequest<'_>, secret: &Secret) -> Result<Auth, Rejection> {
        authorization_or_query_token(request, secret).map(|()| Auth::Verified)
    }

    fn parse(&self, request: &HookRequest<'_>, body: &[u8]) -> Result<Vec<Parsed>, Rejection> {
        let p: Payload = json(body)?;
        let cloudevents = p.specversion.is_some()
            || content_type_is(request.headers, "application/cloudevents+json");
        let kind = required(p.kind, "type")?;
        if !PUSH_TYPES.contains(&kind.as_str()) {
            return Ok(vec![Parsed::Ignored(format!(
                "a '{}' event, not a push",
                super::short(&kind)
            ))]);
        }
        let (key, data, id) = if cloudevents {
            ("data", p.data, Some(required(p.id, "id")?))
        } else {
            ("event_data", p.event_data, None)
        };
        let data = required(data, key)?;
        let repository = required(
            data.repository.and_then(|r| r.repo_full_name),
            &format!("{key}.repository.repo_full_name"),
        )?;
        let resources = required(data.resources, &format!("{key}.resources"))?;
        if resources.is_empty() {
            return Ok(vec![Parsed::Ignored(format!("{key}.resources is empty"))]);
        }
        // The store takes a delivery id as one event: give each resource its own.
        let several = resources.len() > 1;
        resources
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let path = format!("{key}.resources[{i}]");
                let delivery = id.as_ref().map(|id| match several {
                    true => format!("{id}#{i}"),
                    false => id.clone(),
                });
                resource(r, &path, &repository, delivery)
            })
            .collect()
    }
}

/// One resource: a push, an ignored artifact, or a 400 for a body Harbor does not send.
fn resource(
    r: Resource,
    path: &str,
    repository: &str,
    delivery: Option<String>,
) -> Result<Parsed, Rejection> {
    let url = required(r.resource_url, &format!("{path}.resource_url"))?;
    let Some((host, _)) = url.split_once('/') else {
        return Err(Rejection::Malformed(format!(
            "{path}.resource_url has no '/' after the registry host"
        )));
    };
    let image = ImageName::from_host_and_path(host, repository).map_err(|e| {
        Rejection::Malformed(format!(
            "{path}.resource_url / repository.repo_full_name: {e}"
        ))
    })?;
    let Some(tag) = r.tag.filter(|t| !t.is_empty()) else {
        return Ok(Parsed::Ignored(format!(
            "{path}: {image} pushed with no tag"
        )));
    };
    if validate_digest(&tag).is_ok() || r.digest.as_deref() == Some(tag.as_str()) {
        return Ok(Parsed::Ignored(format!(
            "{path}: {image} pushed by digest, with no tag"
        )));
    }
    if let Err(e) = validate_tag(&tag) {
        return Ok(Parsed::Ignored(format!("{path}.tag: {e}")));
    }
    let digest = match r.digest.filter(|d| !d.is_empty()) {
        Some(d) if validate_digest(&d).is_err() => {
            return Ok(Parsed::Ignored(format!(
                "{path}.digest: '{}' is not a valid digest",
                super::short(&d)
            )))
        }
        d => d,
    };
    Ok(Parsed::Push(ImagePushed {
        image,
        tag,
        digest,
        delivery,
        callback_url: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{fixture, headers};
    use serde_json::{json as j, Value};

    const DIGEST: &str = "sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4";

    fn parse(pairs: &[(&str, &str)], body: &[u8]) -> Result<Vec<Parsed>, Rejection> {
        let h = headers(pairs);
        Harbor.parse(
            &HookRequest {
                headers: &h,
                query_token: None,
            },
            body,
        )
    }

    fn auth(pairs: &[(&str, &str)], query: Option<&str>) -> Result<Auth, Rejection> {
        let h = headers(pairs);
        Harbor.authenticate(
            &HookRequest {
                headers: &h,
                query_token: query,
            },
            &Secret::new("xyz"),
        )
    }

    #[test]
    fn the_auth_header_is_taken_verbatim_or_as_bearer() {
        for (pairs, query) in [
            (&[("authorization", "Bearer xyz")][..], None),
            (&[("authorization", "bearer  xyz")], None),
            (&[("authorization", "xyz")], None),
            (&[], Some("xyz")),
            (&[("authorization", "Bearer wrong")], Some("xyz")),
            // Surrounding white space is not part of a header value.
            (&[("authorization", "xyz ")], Some("nope")),
        ] {
            assert_eq!(
                auth(pairs, query),
                Ok(Auth::Verified),
                "{pairs:?} {query:?}"
            );
        }
        for (pairs, query) in [
            (&[("authorization", "Bearer xy")][..], None),
            (&[("authorization", "Basic xyz")], None),
            (&[("authorization", "Bearer")], None),
            (&[("authorization", "xyzxyz")], Some("xy")),
        ] {
            let e = auth(pairs, query).unwrap_err();
            assert_eq!(e, Rejection::Unauthorized("wrong secret"), "{pairs:?}");
        }
        let e = auth(&[], None).unwrap_err();
        assert!(matches!(e, Rejection::Unauthorized(m) if m.starts_with("missing secret")));
    }

    #[test]
    fn a_push_by_digest_is_ignored_in_both_formats() {
        for (file, ct) in [
            ("harbor-1.json", "application/json"),
            ("harbor-2.json", "application/cloudevents+json"),
        ] {
            let parsed = parse(&[("content-type", ct)], &fixture(file)).unwrap();
            assert!(
                matches!(&parsed[..], [Parsed::Ignored(r)] if r.contains("by digest") && r.contains("localhost/harbor/alpine")),
                "{file}: {parsed:?}"
            );
        }
    }

    fn with_tags(file: &str, tags: &[&str]) -> Value {
        let mut v: Value = serde_json::from_slice(&fixture(file)).unwrap();
        let key = if v.get("data").is_some() {
            "data"
        } else {
            "event_data"
        };
        let resources = tags
            .iter()
            .map(|t| {
                j!({"digest": DIGEST, "tag": t,
                    "resource_url": format!("harbor.example.com:8443/harbor/alpine:{t}")})
            })
            .collect();
        v[key]["resources"] = Value::Array(resources);
        v
    }

    #[test]
    fn a_tagged_cloudevent_is_a_push_with_its_id() {
        let body = with_tags("harbor-2.json", &["v1"]).to_string();
        let parsed = parse(&[], body.as_bytes()).unwrap();
        let [Parsed::Push(p)] = &parsed[..] else {
            panic!("{parsed:?}")
        };
        assert_eq!(p.image.to_string(), "harbor.example.com:8443/harbor/alpine");
        assert_eq!(p.tag, "v1");
        assert_eq!(p.digest.as_deref(), Some(DIGEST));
        assert_eq!(
            p.delivery.as_deref(),
            Some("66e18103-09c1-41f6-982f-37df223f3eeb")
        );
        let body = with_tags("harbor-1.json", &["v1"]).to_string();
        let parsed = parse(&[], body.as_bytes()).unwrap();
        assert!(matches!(&parsed[..], [Parsed::Push(p)] if p.delivery.is_none() && p.tag == "v1"));
    }

    #[test]
    fn one_push_per_resource_and_bad_tags_are_ignored() {
        let body = with_tags("harbor-2.json", &["v1", "../../x", DIGEST, "v2", ""]).to_string();
        let parsed = parse(&[], body.as_bytes()).unwrap();
        assert_eq!(parsed.len(), 5);
        let pushes: Vec<_> = parsed
            .iter()
            .filter_map(|p| match p {
                Parsed::Push(e) => Some((e.tag.as_str(), e.delivery.clone().unwrap())),
                Parsed::Ignored(_) => None,
            })
            .collect();
        let id = "66e18103-09c1-41f6-982f-37df223f3eeb";
        assert_eq!(
            pushes,
            [("v1", format!("{id}#0")), ("v2", format!("{id}#3"))]
        );
        assert!(matches!(&parsed[1], Parsed::Ignored(r) if r.contains("resources[1].tag")));
    }

    #[test]
    fn other_events_are_ignored() {
        let mut v: Value = serde_json::from_slice(&fixture("harbor-1.json")).unwrap();
        v["type"] = j!("DELETE_ARTIFACT");
        let parsed = parse(&[], v.to_string().as_bytes()).unwrap();
        assert!(matches!(&parsed[..], [Parsed::Ignored(r)] if r.contains("DELETE_ARTIFACT")));
    }

    #[test]
    fn hostile_or_foreign_bodies_never_push() {
        let tagged = with_tags("harbor-1.json", &["v1"]);
        let edit = |f: &dyn Fn(&mut Value)| {
            let mut v = tagged.clone();
            f(&mut v);
            v.to_string()
        };
        for (b, want) in [
            (
                edit(&|v| v["event_data"]["repository"]["repo_full_name"] = j!("Harbor/Alpine")),
                "repo_full_name",
            ),
            (
                edit(&|v| v["event_data"]["repository"]["repo_full_name"] = j!("harbor/my app")),
                "repo_full_name",
            ),
            (
                edit(&|v| v["event_data"]["repository"]["repo_full_name"] = j!("../../etc")),
                "repo_full_name",
            ),
            (
                edit(&|v| {
                    v["event_data"]["resources"][0]["resource_url"] =
                        j!("evil host/harbor/alpine:v1")
                }),
                "resource_url",
            ),
            (
                edit(&|v| v["event_data"]["resources"][0]["resource_url"] = j!("alpine")),
                "resource_url",
            ),
            (
                edit(&|v| {
                    v["event_data"]["resources"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("resource_url");
                }),
                "missing event_data.resources[0].resource_url",
            ),
            (
                edit(&|v| {
                    v["event_data"]["repository"]
                        .as_object_mut()
                        .unwrap()
                        .remove("repo_full_name");
                }),
                "missing event_data.repository.repo_full_name",
            ),
            (
                edit(&|v| {
                    v.as_object_mut().unwrap().remove("event_data");
                }),
                "missing event_data",
            ),
            (
                edit(&|v| {
                    v.as_object_mut().unwrap().remove("type");
                }),
                "missing type",
            ),
            (
                edit(&|v| v["event_data"]["resources"] = j!({})),
                "invalid type",
            ),
            (
                edit(&|v| v["event_data"]["resources"][0]["tag"] = j!(7)),
                "invalid type",
            ),
            ("[]".into(), "JSON object"),
            ("{".into(), "malformed"),
        ] {
            let e = parse(&[], b.as_bytes()).unwrap_err();
            assert!(matches!(e, Rejection::Malformed(_)), "{b}: {e}");
            assert!(e.to_string().contains(want), "{want}: {e}");
        }
        // CloudEvents without an id, and a bad digest.
        let mut v = with_tags("harbor-2.json", &["v1"]);
        v.as_object_mut().unwrap().remove("id");
        let e = parse(&[], v.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("missing id"), "{e}");
        let b = edit(&|v| v["event_data"]["resources"][0]["digest"] = j!("sha256:12"));
        let parsed = parse(&[], b.as_bytes()).unwrap();
        assert!(matches!(&parsed[..], [Parsed::Ignored(r)] if r.contains("digest")));
    }
}
