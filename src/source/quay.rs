//! Quay (quay.io, Red Hat Quay) "Repository Push" notifications.
//!
//! Quay sends no secret of its own (it can present a TLS client certificate, which is the
//! TLS terminator's business), so the hook's token comes as `?token=` in the notification
//! URL, or as `Authorization: Bearer` from a proxy.
//!
//! The repository is `repository` (`namespace/name`), the registry host the part of
//! `docker_url` before the first `/` (Quay's SERVER_HOSTNAME), and each of `updated_tags`
//! is one push. Quay gives no digest and no delivery id; a tag Docker would refuse is
//! ignored, the other tags of the same notification still deploy.

use super::{json, required, HookRequest, Parsed, Rejection, Source};
use crate::config::SourceKind;
use crate::event::ImagePushed;
use crate::reference::{validate_tag, ImageName};
use serde::Deserialize;

/// The Quay source.
pub struct Quay;

#[derive(Deserialize)]
struct Payload {
    repository: Option<String>,
    docker_url: Option<String>,
    updated_tags: Option<Vec<String>>,
}

impl Source for Quay {
    fn kind(&self) -> SourceKind {
        SourceKind::Quay
    }

    fn content_types(&self) -> Option<&'static [&'static str]> {
        Some(&["application/json"])
    }

    fn parse(&self, _request: &HookRequest<'_>, body: &[u8]) -> Result<Vec<Parsed>, Rejection> {
        let p: Payload = json(body)?;
        let repository = required(p.repository, "repository")?;
        let docker_url = required(p.docker_url, "docker_url")?;
        let tags = required(p.updated_tags, "updated_tags")?;
        let Some((host, _)) = docker_url.split_once('/') else {
            return Err(Rejection::Malformed(
                "docker_url has no '/' after the registry host".into(),
            ));
        };
        let image = ImageName::from_host_and_path(host, &repository)
            .map_err(|e| Rejection::Malformed(format!("docker_url / repository: {e}")))?;
        if tags.is_empty() {
            return Ok(vec![Parsed::Ignored(format!(
                "{image}: updated_tags is empty"
            ))]);
        }
        Ok(tags
            .into_iter()
            .enumerate()
            .map(|(i, tag)| match validate_tag(&tag) {
                Ok(()) => Parsed::Push(ImagePushed {
                    image: image.clone(),
                    tag,
                    digest: None,
                    delivery: None,
                    callback_url: None,
                }),
                Err(e) => Parsed::Ignored(format!("updated_tags[{i}]: {e}")),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{fixture, parse_without_headers};

    #[test]
    fn the_documented_push() {
        let parsed = parse_without_headers(&Quay, &fixture("quay-1.json")).unwrap();
        let [Parsed::Push(p)] = &parsed[..] else {
            panic!("{parsed:?}")
        };
        assert_eq!(p.image.to_string(), "quay.io/dgangaia/test");
        assert_eq!(p.tag, "latest");
        assert_eq!(p.digest, None);
        assert_eq!(p.delivery, None);
    }

    #[test]
    fn one_push_per_tag_and_bad_tags_are_ignored() {
        // The shape of Quay's "Test notification".
        let body = br#"{"repository":"team/app","namespace":"team","name":"app","docker_url":"registry.example.com:8443/team/app","updated_tags":["latest","../../x","foo","a b"],"pruned_image_count":3}"#;
        let parsed = parse_without_headers(&Quay, body).unwrap();
        assert_eq!(parsed.len(), 4);
        let tags: Vec<_> = parsed
            .iter()
            .filter_map(|p| match p {
                Parsed::Push(e) => Some(e.tag.as_str()),
                Parsed::Ignored(_) => None,
            })
            .collect();
        assert_eq!(tags, ["latest", "foo"]);
        assert!(matches!(&parsed[1], Parsed::Ignored(r) if r.contains("updated_tags[1]")));
        let parsed = parse_without_headers(
            &Quay,
            br#"{"repository":"a/b","docker_url":"quay.io/a/b","updated_tags":[]}"#,
        )
        .unwrap();
        assert!(matches!(&parsed[..], [Parsed::Ignored(r)] if r.contains("empty")));
    }

    #[test]
    fn hostile_or_foreign_bodies_never_push() {
        for (b, want) in [
            (
                r#"{"repository":"A/B","docker_url":"quay.io/A/B","updated_tags":["v1"]}"#,
                "repository",
            ),
            (
                r#"{"repository":"a/my app","docker_url":"quay.io/a/b","updated_tags":["v1"]}"#,
                "repository",
            ),
            (
                r#"{"repository":"../etc","docker_url":"quay.io/a/b","updated_tags":["v1"]}"#,
                "repository",
            ),
            (
                r#"{"repository":"a/b:v2","docker_url":"quay.io/a/b","updated_tags":["v1"]}"#,
                "repository",
            ),
            (
                r#"{"repository":"a/b","docker_url":"evil host/a/b","updated_tags":["v1"]}"#,
                "docker_url",
            ),
            (
                r#"{"repository":"a/b","docker_url":"quay.io","updated_tags":["v1"]}"#,
                "docker_url",
            ),
            (
                r#"{"docker_url":"quay.io/a/b","updated_tags":["v1"]}"#,
                "missing repository",
            ),
            (
                r#"{"repository":"a/b","updated_tags":["v1"]}"#,
                "missing docker_url",
            ),
            (
                r#"{"repository":"a/b","docker_url":"quay.io/a/b"}"#,
                "missing updated_tags",
            ),
            (
                r#"{"repository":"a/b","docker_url":"quay.io/a/b","updated_tags":"v1"}"#,
                "invalid type",
            ),
            (
                r#"{"repository":"a/b","docker_url":"quay.io/a/b","updated_tags":[1]}"#,
                "invalid type",
            ),
            ("[]", "JSON object"),
            ("{", "malformed"),
        ] {
            let e = parse_without_headers(&Quay, b.as_bytes()).unwrap_err();
            assert!(matches!(e, Rejection::Malformed(_)), "{b}: {e}");
            assert!(e.to_string().contains(want), "{want}: {e}");
        }
    }
}
