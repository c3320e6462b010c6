//! CNCF Distribution (registry v2) notifications, as sent by `registry:2`, Harbor's core,
//! GitLab's registry and others.
//!
//! One envelope `{"events":[...]}` carries one or more events. Only a `push` of a manifest
//! with a tag is a new image; blob pushes, pulls, mounts and deletes are acknowledged and
//! ignored. The image is `request.host` + `/` + `target.repository`.

use super::{json, HookRequest, Parsed, Rejection, Source};
use crate::config::SourceKind;
use crate::event::ImagePushed;
use crate::reference::{validate_digest, validate_tag, ImageName};
use serde::Deserialize;

/// The Distribution notification source.
pub struct Distribution;

/// Manifest media types: a push of one of these (with a tag) is a new image.
const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
];

#[derive(Deserialize)]
struct Envelope {
    events: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Event {
    id: Option<String>,
    action: String,
    target: Target,
    request: Option<Request>,
}

#[derive(Deserialize)]
struct Target {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    digest: Option<String>,
    repository: Option<String>,
    tag: Option<String>,
    url: Option<String>,
}

#[derive(Deserialize)]
struct Request {
    host: Option<String>,
}

impl Source for Distribution {
    fn kind(&self) -> SourceKind {
        SourceKind::Distribution
    }

    fn content_types(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "application/vnd.docker.distribution.events.v1+json",
            "application/vnd.docker.distribution.events.v2+json",
        ])
    }

    fn parse(&self, _request: &HookRequest<'_>, body: &[u8]) -> Result<Vec<Parsed>, Rejection> {
        let envelope: Envelope = json(body)?;
        Ok(envelope
            .events
            .into_iter()
            .enumerate()
            .map(|(i, raw)| match serde_json::from_value::<Event>(raw) {
                Ok(event) => parse_event(event),
                Err(e) => Parsed::Ignored(format!(
                    "event {i} is malformed: {}",
                    super::short(&e.to_string())
                )),
            })
            .collect())
    }

    /// The registry retries a non-2xx answer until it succeeds and holds every later
    /// notification behind it, so a refused tag must not be answered 4xx.
    fn acknowledges_refusals(&self) -> bool {
        true
    }
}

fn parse_event(e: Event) -> Parsed {
    let what = e.id.as_deref().unwrap_or("event");
    if e.action != "push" {
        return Parsed::Ignored(format!(
            "{what}: '{}' is not a push",
            super::short(&e.action)
        ));
    }
    let media_type = e.target.media_type.as_deref().unwrap_or("");
    if !MANIFEST_TYPES.contains(&media_type) {
        return Parsed::Ignored(format!("{what}: a blob push, not a manifest"));
    }
    let Some(tag) = e.target.tag.filter(|t| !t.is_empty()) else {
        return Parsed::Ignored(format!("{what}: a manifest pushed by digest, with no tag"));
    };
    if let Err(err) = validate_tag(&tag) {
        return Parsed::Ignored(format!("{what}: {err}"));
    }
    let Some(repository) = e.target.repository else {
        return Parsed::Ignored(format!("{what}: no target.repository"));
    };
    let host = e
        .request
        .and_then(|r| r.host)
        .filter(|h| !h.is_empty())
        .or_else(|| e.target.url.as_deref().and_then(url_host));
    let Some(host) = host else {
        return Parsed::Ignored(format!("{what}: no request.host to say which registry"));
    };
    let image = match ImageName::from_host_and_path(&host, &repository) {
        Ok(image) => image,
        Err(err) => return Parsed::Ignored(format!("{what}: {err}")),
    };
    let digest = match e.target.digest {
        Some(d) if validate_digest(&d).is_ok() => Some(d),
        Some(d) => {
            return Parsed::Ignored(format!(
                "{what}: '{}' is not a valid digest",
                super::short(&d)
            ))
        }
        None => None,
    };
    Parsed::Push(ImagePushed {
        image,
        tag,
        digest,
        delivery: e.id,
        callback_url: None,
    })
}

fn url_host(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    let host = u.host_str()?;
    Some(match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/../shared/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn pushes(parsed: &[Parsed]) -> Vec<&ImagePushed> {
        parsed
            .iter()
            .filter_map(|p| match p {
                Parsed::Push(e) => Some(e),
                Parsed::Ignored(_) => None,
            })
            .collect()
    }

    #[test]
    fn documented_envelopes_have_no_deployable_push() {
        // distribution-1: a pull; -2: a push envelope without a tag; -3: the dummy digest
        // and no tag.
        for f in [
            "distribution-1.json",
            "distribution-2.json",
            "distribution-3.json",
        ] {
            let parsed = super::super::parse_without_headers(&Distribution, &fixture(f)).unwrap();
            assert!(!parsed.is_empty(), "{f}");
            assert!(pushes(&parsed).is_empty(), "{f}: {parsed:?}");
        }
        let parsed =
            super::super::parse_without_headers(&Distribution, &fixture("distribution-2.json"))
                .unwrap();
        assert_eq!(parsed.len(), 3);
    }

    #[test]
    fn a_delete_fragment_wrapped_is_ignored() {
        let target = String::from_utf8(fixture("distribution-4.json")).unwrap();
        let body = format!(r#"{{"events":[{{"id":"d1","action":"delete","target":{target}}}]}}"#);
        let parsed = super::super::parse_without_headers(&Distribution, body.as_bytes()).unwrap();
        assert!(matches!(&parsed[..], [Parsed::Ignored(r)] if r.contains("not a push")));
    }

    #[test]
    fn the_captured_v2_8_stream_has_exactly_two_tagged_pushes() {
        let text = String::from_utf8(fixture("distribution-v2.8-push-capture.jsonl")).unwrap();
        let mut found = Vec::new();
        let mut envelopes = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let delivery: serde_json::Value = serde_json::from_str(line).unwrap();
            let body = delivery["body"].as_str().unwrap();
            envelopes += 1;
            for push in pushes(
                &super::super::parse_without_headers(&Distribution, body.as_bytes()).unwrap(),
            ) {
                found.push(push.clone());
            }
        }
        assert_eq!(envelopes, 24);
        let tags: Vec<_> = found.iter().map(|p| p.tag.as_str()).collect();
        assert_eq!(tags, ["v2", "v3"]);
        // The capture was made from two clients: the host, and a swarm node at 10.77.0.1.
        let images: Vec<_> = found.iter().map(|p| p.image.to_string()).collect();
        assert_eq!(images, ["127.0.0.1:5000/app", "10.77.0.1:5000/app"]);
        for p in &found {
            validate_digest(p.digest.as_deref().unwrap()).unwrap();
            assert!(p.delivery.is_some());
        }
    }

    #[test]
    fn a_tagged_manifest_push_is_an_image() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let body = format!(
            r#"{{"events":[{{"id":"e1","action":"push","target":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{digest}","repository":"team/app","tag":"v9"}},"request":{{"host":"registry.example.com:5000"}}}}]}}"#
        );
        let parsed = super::super::parse_without_headers(&Distribution, body.as_bytes()).unwrap();
        let p = pushes(&parsed);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].image.to_string(), "registry.example.com:5000/team/app");
        assert_eq!(p[0].tag, "v9");
        assert_eq!(p[0].digest.as_deref(), Some(digest.as_str()));
    }

    #[test]
    fn injection_in_tag_or_repository_is_ignored_not_deployed() {
        for (repo, tag) in [
            ("app", "../../etc"),
            ("../app", "v1"),
            ("app", "v1@sha256:x"),
            ("APP", "v1"),
        ] {
            let body = format!(
                r#"{{"events":[{{"action":"push","target":{{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","repository":"{repo}","tag":"{tag}"}},"request":{{"host":"r:5000"}}}}]}}"#
            );
            let parsed =
                super::super::parse_without_headers(&Distribution, body.as_bytes()).unwrap();
            assert!(pushes(&parsed).is_empty(), "{repo} {tag}");
        }
    }

    #[test]
    fn not_an_envelope_is_malformed() {
        for body in [&b"{"[..], b"[]", b"{\"events\":{}}", b"{}", b"\xff\xfe"] {
            assert!(matches!(
                super::super::parse_without_headers(&Distribution, body),
                Err(Rejection::Malformed(_))
            ));
        }
    }
}
