//! The generic trigger: a CI job calls dockhand after `docker push`.
//!
//! Body: `{"image": "registry/repo", "tag": "v2", "digest": "sha256:...", "callback_url": ...}`
//! (`digest` and `callback_url` optional; the tag may instead come in `image` as
//! `registry/repo:v2`). Content type `application/json`; secret as `Authorization: Bearer`.

use super::{callback_url, json, HookRequest, Parsed, Rejection, Source};
use crate::config::SourceKind;
use crate::event::ImagePushed;
use crate::reference::{parse_full, validate_digest, validate_tag, ImageName, ReferenceError};
use serde::Deserialize;

/// The generic source.
pub struct Generic;

#[derive(Deserialize)]
struct Payload {
    image: String,
    tag: Option<String>,
    digest: Option<String>,
    callback_url: Option<String>,
}

impl Source for Generic {
    fn kind(&self) -> SourceKind {
        SourceKind::Generic
    }

    fn content_types(&self) -> Option<&'static [&'static str]> {
        Some(&["application/json"])
    }

    fn parse(&self, _request: &HookRequest<'_>, body: &[u8]) -> Result<Vec<Parsed>, Rejection> {
        let p: Payload = json(body)?;
        let bad = |key: &str, e: ReferenceError| Rejection::Malformed(format!("{key}: {e}"));
        let (image, tag_in_image, digest_in_image) = match ImageName::parse(&p.image) {
            Ok(name) => (name, None, None),
            Err(ReferenceError::HasTag(_)) => {
                let (name, tag, digest) = parse_full(&p.image).map_err(|e| bad("image", e))?;
                (name, tag, digest)
            }
            Err(e) => return Err(bad("image", e)),
        };
        let tag = match (p.tag, tag_in_image) {
            (Some(a), Some(b)) if a != b => {
                return Err(Rejection::Malformed(format!(
                    "tag '{}' and the tag in image disagree",
                    super::short(&a)
                )))
            }
            (Some(t), _) | (None, Some(t)) => t,
            (None, None) => {
                return Err(Rejection::Malformed(
                    "missing tag: give \"tag\" or write it in \"image\" as repo:tag".into(),
                ))
            }
        };
        validate_tag(&tag).map_err(|e| bad("tag", e))?;
        let digest = p.digest.or(digest_in_image);
        if let Some(d) = &digest {
            validate_digest(d).map_err(|e| bad("digest", e))?;
        }
        Ok(vec![Parsed::Push(ImagePushed {
            image,
            tag,
            digest,
            delivery: None,
            callback_url: callback_url(p.callback_url, "callback_url")?,
        })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(body: &str) -> ImagePushed {
        match &super::super::parse_without_headers(&Generic, body.as_bytes()).unwrap()[..] {
            [Parsed::Push(p)] => p.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn image_tag_digest() {
        let d = format!("sha256:{}", "c".repeat(64));
        let p = one(&format!(
            r#"{{"image":"127.0.0.1:5000/team/app","tag":"v2","digest":"{d}"}}"#
        ));
        assert_eq!(p.image.to_string(), "127.0.0.1:5000/team/app");
        assert_eq!(p.tag, "v2");
        assert_eq!(p.digest.as_deref(), Some(d.as_str()));
        let p = one(r#"{"image":"nginx:1.25"}"#);
        assert_eq!(p.image.to_string(), "docker.io/library/nginx");
        assert_eq!(p.tag, "1.25");
    }

    #[test]
    fn refusals_say_which_field() {
        for (body, field) in [
            (r#"{"tag":"v1"}"#, "image"),
            (r#"{"image":"app"}"#, "tag"),
            (r#"{"image":"app","tag":"../x"}"#, "tag"),
            (r#"{"image":"app:v1","tag":"v2"}"#, "disagree"),
            (
                r#"{"image":"app","tag":"v1","digest":"sha256:12"}"#,
                "digest",
            ),
            (r#"{"image":"a b","tag":"v1"}"#, "image"),
            (
                r#"{"image":"app","tag":"v1","callback_url":"gopher://x"}"#,
                "callback_url",
            ),
            (r#"{"image":7,"tag":"v1"}"#, "invalid type"),
        ] {
            let e = super::super::parse_without_headers(&Generic, body.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(field), "{body}: {e}");
        }
    }
}
