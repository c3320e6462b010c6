//! GitHub `package` and `registry_package` webhooks: container images pushed to ghcr.io.
//!
//! GitHub signs every delivery: `X-Hub-Signature-256: sha256=<hex>` is the HMAC-SHA256 of
//! the raw body keyed with the webhook's secret (the hook's token here). The signature is
//! required, and is over the bytes as sent, so with `application/x-www-form-urlencoded`
//! it covers the form body, not the JSON in its `payload` field.
//!
//! `X-GitHub-Event` says what happened: a `ping` (sent when the webhook is created) and
//! every event other than a package one are acknowledged and ignored. The package is
//! `package` or `registry_package`; a container version's tag is
//! `package_version.container_metadata.tag.name`, which is empty for the extra deliveries
//! a multi-arch push makes (those are ignored). The image is `ghcr.io/<owner>/<name>`,
//! lowercased as ghcr.io requires; `X-GitHub-Delivery` is the delivery id.

use super::{
    header_str, hmac_sha256_matches, json, json_or_form_payload, required, Auth, HookRequest,
    Parsed, Rejection, Source,
};
use crate::config::SourceKind;
use crate::event::ImagePushed;
use crate::reference::{validate_digest, validate_tag, ImageName};
use crate::secret::Secret;
use serde::Deserialize;

/// The GitHub package-webhook source.
pub struct GitHub;

/// The registry every GitHub container package lives in.
const GHCR: &str = "ghcr.io";

/// `package_type` / `ecosystem` values of a container package (`docker` is the 2019 name).
const CONTAINER_TYPES: &[&str] = &["container", "docker"];

/// Actions on a version that make a new image: GitHub documents `published` and
/// `updated`; `create` is what keel's captured ghcr.io delivery says.
const PUSH_ACTIONS: &[&str] = &["published", "updated", "create"];

#[derive(Deserialize)]
struct Payload {
    action: Option<String>,
    package: Option<Package>,
    registry_package: Option<Package>,
}

#[derive(Deserialize)]
struct Package {
    name: Option<String>,
    /// The owner's login in current payloads; `owner/repo` in octokit's examples.
    namespace: Option<String>,
    owner: Option<Owner>,
    package_type: Option<String>,
    ecosystem: Option<String>,
    package_version: Option<Version>,
}

#[derive(Deserialize)]
struct Owner {
    login: Option<String>,
}

#[derive(Deserialize)]
struct Version {
    container_metadata: Option<ContainerMetadata>,
}

#[derive(Deserialize)]
struct ContainerMetadata {
    tag: Option<Tag>,
}

#[derive(Deserialize)]
struct Tag {
    name: Option<String>,
    digest: Option<String>,
}

impl Source for GitHub {
    fn kind(&self) -> SourceKind {
        SourceKind::Github
    }

    fn content_types(&self) -> Option<&'static [&'static str]> {
        Some(&["application/json", "application/x-www-form-urlencoded"])
    }

    fn authenticate(&self, request: &HookRequest<'_>, _secret: &Secret) -> Result<Auth, Rejection> {
        match header_str(request.headers, "x-hub-signature-256") {
            Some(_) => Ok(Auth::NeedsBody),
            None => Err(Rejection::Unauthorized(
                "missing signature: set the GitHub webhook's secret to this hook's token \
                 (GitHub then sends X-Hub-Signature-256)",
            )),
        }
    }

    fn verify_body(
        &self,
        request: &HookRequest<'_>,
        body: &[u8],
        secret: &Secret,
    ) -> Result<(), Rejection> {
        let ok = header_str(request.headers, "x-hub-signature-256")
            .and_then(|v| v.strip_prefix("sha256="))
            .is_some_and(|hex| hmac_sha256_matches(secret, body, hex));
        if ok {
            Ok(())
        } else {
            Err(Rejection::Unauthorized("bad signature"))
        }
    }

    fn parse(&self, request: &HookRequest<'_>, body: &[u8]) -> Result<Vec<Parsed>, Rejection> {
        let event = header_str(request.headers, "x-github-event");
        match event {
            Some("ping") => return Ok(vec![Parsed::Ignored("ping".into())]),
            Some("package" | "registry_package") | None => {}
            Some(other) => {
                return Ok(vec![Parsed::Ignored(format!(
                    "a '{}' event; only package and registry_package events deploy",
                    super::short(other)
                ))])
            }
        }
        let document = json_or_form_payload(request.headers, body)?;
        let p: Payload = json(&document)?;
        let (key, package) = match (event, p.package, p.registry_package) {
            (Some("registry_package"), _, rp) => ("registry_package", rp),
            (Some(_), pk, _) => ("package", pk),
            (None, None, Some(rp)) => ("registry_package", Some(rp)),
            (None, pk, _) => ("package", pk),
        };
        let package = required(package, key)?;
        let action = required(p.action, "action")?;
        if !PUSH_ACTIONS.contains(&action.as_str()) {
            return Ok(vec![Parsed::Ignored(format!(
                "action '{}' is not a published version",
                super::short(&action)
            ))]);
        }
        if let Some(kind) = not_a_container(&package, key)? {
            return Ok(vec![Parsed::Ignored(format!(
                "a '{}' package, not a container",
                super::short(&kind)
            ))]);
        }
        let name = required(package.name, &format!("{key}.name"))?;
        let owner = match package.owner.and_then(|o| o.login) {
            Some(login) => login,
            None => required(package.namespace, &format!("{key}.owner.login"))?,
        };
        let version_path = format!("{key}.package_version");
        let version = required(package.package_version, &version_path)?;
        let metadata_path = format!("{version_path}.container_metadata");
        let metadata = required(version.container_metadata, &metadata_path)?;
        let tag = required(metadata.tag, &format!("{metadata_path}.tag"))?;
        let tag_path = format!("{metadata_path}.tag.name");
        let tag_name = required(tag.name, &tag_path)?;
        let path = format!("{}/{}", owner, name).to_ascii_lowercase();
        let image = ImageName::from_host_and_path(GHCR, &path)
            .map_err(|e| Rejection::Malformed(format!("{key}.owner.login/{key}.name: {e}")))?;
        if tag_name.is_empty() {
            return Ok(vec![Parsed::Ignored(format!(
                "{image}: a version with an empty tag (one of a multi-arch push's manifests)"
            ))]);
        }
        validate_tag(&tag_name).map_err(|e| Rejection::Malformed(format!("{tag_path}: {e}")))?;
        Ok(vec![Parsed::Push(ImagePushed {
            image,
            tag: tag_name,
            // Octokit's examples carry a 40-digit "sha256:" here; such a digest is dropped.
            digest: tag.digest.filter(|d| validate_digest(d).is_ok()),
            delivery: header_str(request.headers, "x-github-delivery").map(str::to_string),
            callback_url: None,
        })])
    }
}

/// `Some(type)` when the package is not a container. Octokit's examples say
/// `"package_type": "npm"` next to `"ecosystem": "docker"` for a container, so either
/// field naming a container is enough.
fn not_a_container(package: &Package, key: &str) -> Result<Option<String>, Rejection> {
    let types: Vec<&str> = [&package.package_type, &package.ecosystem]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    if types.is_empty() {
        return Err(Rejection::Malformed(format!("missing {key}.package_type")));
    }
    let container = types
        .iter()
        .any(|t| CONTAINER_TYPES.iter().any(|c| c.eq_ignore_ascii_case(t)));
    Ok((!container).then(|| types[0].to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{fixture, headers, sign};

    const KEY: &str = "It's a Secret to Everybody";

    /// The signatures NOTES.md gives for the fixtures (computed with Python's `hmac`).
    const SIGNED: &[(&str, &str)] = &[
        (
            "github-1.json",
            "sha256=12fc6fac09793072f0c5cc2f52ddaec6f5d517d7cd5ae56c865da208b65cdc9b",
        ),
        (
            "github-2.json",
            "sha256=bf1c37c56dba9d0ee68a0406a2348b37b7906cf062dd6c5d2d5cef533b7b381f",
        ),
        (
            "github-4.json",
            "sha256=27ac85c4bd6c96b485f7bba8d5e4f864701e49324b0a2630bb5ba6ffce4b107e",
        ),
    ];

    fn req<'a>(h: &'a axum::http::HeaderMap) -> HookRequest<'a> {
        HookRequest {
            headers: h,
            query_token: None,
        }
    }

    fn parse(pairs: &[(&str, &str)], body: &[u8]) -> Result<Vec<Parsed>, Rejection> {
        let h = headers(pairs);
        GitHub.parse(&req(&h), body)
    }

    #[test]
    fn the_computed_signatures_verify_and_nothing_else_does() {
        let secret = Secret::new(KEY);
        for (file, signature) in SIGNED {
            let body = fixture(file);
            let h = headers(&[("x-hub-signature-256", signature)]);
            assert_eq!(GitHub.authenticate(&req(&h), &secret), Ok(Auth::NeedsBody));
            assert_eq!(
                GitHub.verify_body(&req(&h), &body, &secret),
                Ok(()),
                "{file}"
            );
            let wrong = Secret::new("It's a Secret to Everybody!");
            assert_eq!(
                GitHub.verify_body(&req(&h), &body, &wrong),
                Err(Rejection::Unauthorized("bad signature"))
            );
            let mut altered = body.clone();
            altered.push(b'\n');
            assert!(GitHub.verify_body(&req(&h), &altered, &secret).is_err());
        }
        // Without the prefix, truncated, not hex, or labelled sha1: all wrong.
        let body = fixture("github-4.json");
        let bare = SIGNED[2].1.trim_start_matches("sha256=");
        for bad in [
            bare.to_string(),
            format!("sha256={}", &bare[..62]),
            "sha256=zz".to_string(),
            format!("sha1={bare}"),
        ] {
            let h = headers(&[("x-hub-signature-256", &bad)]);
            assert!(
                GitHub.verify_body(&req(&h), &body, &secret).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn an_unsigned_delivery_is_refused_without_echoing_anything() {
        let secret = Secret::new(KEY);
        let h = headers(&[("authorization", &format!("Bearer {KEY}"))]);
        let e = GitHub.authenticate(&req(&h), &secret).unwrap_err();
        assert!(matches!(e, Rejection::Unauthorized(m) if m.starts_with("missing signature")));
        let h = headers(&[("x-hub-signature-256", "sha256=0123")]);
        let e = GitHub.verify_body(&req(&h), b"{}", &secret).unwrap_err();
        assert!(!e.to_string().contains("0123"));
    }

    #[test]
    fn githubs_published_test_vector() {
        let h = headers(&[(
            "x-hub-signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )]);
        let secret = Secret::new(KEY);
        assert!(GitHub
            .verify_body(&req(&h), b"Hello, World!", &secret)
            .is_ok());
    }

    #[test]
    fn octokit_examples_have_an_empty_tag_and_are_ignored() {
        for (file, event) in [
            ("github-1.json", "package"),
            ("github-2.json", "registry_package"),
        ] {
            let body = fixture(file);
            for pairs in [&[("x-github-event", event)][..], &[]] {
                let parsed = parse(pairs, &body).unwrap();
                assert!(
                    matches!(&parsed[..], [Parsed::Ignored(r)] if r.contains("empty tag")),
                    "{file}: {parsed:?}"
                );
            }
        }
    }

    #[test]
    fn keels_ghcr_delivery_is_a_push_with_its_digest() {
        let parsed = parse(
            &[
                ("x-github-event", "package"),
                ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ],
            &fixture("github-4.json"),
        )
        .unwrap();
        let [Parsed::Push(p)] = &parsed[..] else {
            panic!("{parsed:?}")
        };
        assert_eq!(p.image.to_string(), "ghcr.io/utaitebox/utaitebox-server");
        assert_eq!(p.tag, "3.2.1");
        assert_eq!(
            p.digest.as_deref(),
            Some("sha256:7d3848ba2f2e7f69bebb4b576e5fad0379b64a0b1512aee6ad0ec9e7c6319fed")
        );
        assert_eq!(
            p.delivery.as_deref(),
            Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
        );
    }

    #[test]
    fn a_form_body_carries_the_json_in_payload_and_is_signed_as_sent() {
        let json = fixture("github-4.json");
        let form: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", std::str::from_utf8(&json).unwrap())
            .finish();
        let signature = format!("sha256={}", sign(KEY, form.as_bytes()));
        let pairs = [
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-hub-signature-256", signature.as_str()),
            ("x-github-event", "package"),
        ];
        let h = headers(&pairs);
        let secret = Secret::new(KEY);
        assert!(GitHub
            .verify_body(&req(&h), form.as_bytes(), &secret)
            .is_ok());
        // The signature of the JSON alone does not cover a form body.
        let h2 = headers(&[(
            "x-hub-signature-256",
            format!("sha256={}", sign(KEY, &json)).as_str(),
        )]);
        assert!(GitHub
            .verify_body(&req(&h2), form.as_bytes(), &secret)
            .is_err());
        let parsed = parse(&pairs, form.as_bytes()).unwrap();
        assert!(matches!(&parsed[..], [Parsed::Push(p)] if p.tag == "3.2.1"));
        let e = parse(&pairs, b"other=1").unwrap_err();
        assert!(e.to_string().contains("payload"), "{e}");
    }

    #[test]
    fn ping_and_other_events_are_acknowledged() {
        let ping = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
        assert_eq!(
            parse(&[("x-github-event", "ping")], ping).unwrap(),
            [Parsed::Ignored("ping".into())]
        );
        let parsed = parse(&[("x-github-event", "push")], b"{}").unwrap();
        assert!(matches!(&parsed[..], [Parsed::Ignored(r)] if r.contains("'push'")));
    }

    fn body(package_type: &str, owner: &str, name: &str, tag: &str) -> String {
        format!(
            r#"{{"action":"published","package":{{"name":"{name}","package_type":"{package_type}","owner":{{"login":"{owner}"}},"package_version":{{"container_metadata":{{"tag":{{"name":"{tag}","digest":"sha256:{}"}}}}}}}}}}"#,
            "ab".repeat(32)
        )
    }

    #[test]
    fn owner_and_name_are_lowercased_but_still_checked() {
        let parsed = parse(&[], body("CONTAINER", "Octo-Org", "App", "v1").as_bytes()).unwrap();
        assert!(
            matches!(&parsed[..], [Parsed::Push(p)] if p.image.to_string() == "ghcr.io/octo-org/app")
        );
        for (owner, name) in [
            ("octo", "my app"),
            ("..", "x"),
            ("octo", "app:v2"),
            ("a/../b", "c"),
        ] {
            let e = parse(&[], body("container", owner, name, "v1").as_bytes()).unwrap_err();
            assert!(
                e.to_string().contains("package.name"),
                "{owner} {name}: {e}"
            );
        }
    }

    #[test]
    fn hostile_or_foreign_bodies_never_push() {
        let e = parse(&[], body("container", "o", "app", "../../x").as_bytes()).unwrap_err();
        assert!(e.to_string().contains("container_metadata.tag.name"), "{e}");
        let parsed = parse(&[], body("npm", "o", "app", "v1").as_bytes()).unwrap();
        assert!(matches!(&parsed[..], [Parsed::Ignored(r)] if r.contains("npm")));
        for (b, want) in [
            (&b"{"[..], "malformed"),
            (b"[1]", "JSON object"),
            (br#"{"action":"published"}"#, "missing package"),
            (
                br#"{"action":"published","package":{"name":"a","ecosystem":"CONTAINER"}}"#,
                "missing package.owner.login",
            ),
            (
                br#"{"action":"published","package":{"name":"a","namespace":"o","ecosystem":"CONTAINER"}}"#,
                "missing package.package_version",
            ),
            (
                br#"{"action":"published","package":{"name":"a","namespace":"o","ecosystem":"CONTAINER","package_version":{}}}"#,
                "missing package.package_version.container_metadata",
            ),
            (
                br#"{"action":"published","package":{"name":7,"namespace":"o","ecosystem":"CONTAINER"}}"#,
                "invalid type",
            ),
            (
                br#"{"package":{"name":"a","namespace":"o","ecosystem":"CONTAINER"}}"#,
                "missing action",
            ),
        ] {
            let e = parse(&[("x-github-event", "package")], b).unwrap_err();
            assert!(matches!(e, Rejection::Malformed(_)), "{e}");
            assert!(e.to_string().contains(want), "{want}: {e}");
        }
        // The event header decides which key is read.
        let e = parse(
            &[("x-github-event", "registry_package")],
            body("container", "o", "a", "v1").as_bytes(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("missing registry_package"), "{e}");
    }
}
