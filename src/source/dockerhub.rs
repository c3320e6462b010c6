//! Docker Hub repository webhooks.
//!
//! Docker Hub sends `repository.repo_name` and `push_data.tag`, no digest, and cannot set
//! headers, so its secret comes as `?token=`. It asks for the outcome at `callback_url`.

use super::{callback_url, json, HookRequest, Parsed, Rejection, Source};
use crate::config::SourceKind;
use crate::event::ImagePushed;
use crate::reference::{validate_tag, ImageName};
use serde::Deserialize;

/// The Docker Hub source.
pub struct DockerHub;

#[derive(Deserialize)]
struct Payload {
    callback_url: Option<String>,
    push_data: PushData,
    repository: Repository,
}

#[derive(Deserialize)]
struct PushData {
    tag: String,
}

#[derive(Deserialize)]
struct Repository {
    repo_name: String,
}

impl Source for DockerHub {
    fn kind(&self) -> SourceKind {
        SourceKind::Dockerhub
    }

    /// Docker Hub documents no content type (it sends `application/json`).
    fn content_types(&self) -> Option<&'static [&'static str]> {
        None
    }

    fn parse(&self, _request: &HookRequest<'_>, body: &[u8]) -> Result<Vec<Parsed>, Rejection> {
        let p: Payload = json(body)?;
        let callback_url = callback_url(p.callback_url, "callback_url")?;
        let image = ImageName::from_host_and_path("docker.io", &p.repository.repo_name)
            .map_err(|e| Rejection::Malformed(format!("repository.repo_name: {e}")))?;
        if p.push_data.tag.is_empty() {
            return Ok(vec![Parsed::Ignored("push_data.tag is empty".into())]);
        }
        validate_tag(&p.push_data.tag)
            .map_err(|e| Rejection::Malformed(format!("push_data.tag: {e}")))?;
        Ok(vec![Parsed::Push(ImagePushed {
            image,
            tag: p.push_data.tag,
            digest: None,
            delivery: None,
            callback_url,
        })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/../shared/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn both_documented_payloads() {
        for f in ["docker-hub-1.json", "docker-hub-2.json"] {
            let parsed = super::super::parse_without_headers(&DockerHub, &fixture(f)).unwrap();
            let [Parsed::Push(p)] = &parsed[..] else {
                panic!("{f}: {parsed:?}")
            };
            assert_eq!(p.image.to_string(), "docker.io/svendowideit/testhook");
            assert_eq!(p.tag, "latest");
            assert_eq!(p.digest, None);
            assert_eq!(
                p.callback_url.as_deref(),
                Some("https://registry.hub.docker.com/u/svendowideit/testhook/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/")
            );
        }
    }

    #[test]
    fn missing_or_bad_fields_are_400_with_the_field() {
        let e = super::super::parse_without_headers(
            &DockerHub,
            br#"{"repository":{"repo_name":"a/b"}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("push_data"), "{e}");
        let e = super::super::parse_without_headers(
            &DockerHub,
            br#"{"push_data":{"tag":"v/../1"},"repository":{"repo_name":"a/b"}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("push_data.tag"), "{e}");
        let e = super::super::parse_without_headers(&DockerHub, br#"{"push_data":{"tag":"v1"},"repository":{"repo_name":"a/b"},"callback_url":"file:///etc/passwd"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("callback_url"), "{e}");
    }
}
