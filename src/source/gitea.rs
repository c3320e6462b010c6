//! Gitea and Forgejo package webhooks: container images pushed to the forge's registry.
//!
//! The forge signs every delivery with the webhook's secret (the hook's token here):
//! `X-Gitea-Signature` and `X-Forgejo-Signature` carry the bare lowercase hex
//! HMAC-SHA256, `X-Hub-Signature-256` the same value as `sha256=<hex>`. Every one of them
//! that is present must verify, and one is required (without a secret the forge sends them
//! empty). The forge signs the JSON document itself, so with
//! `application/x-www-form-urlencoded` the signature covers the form's `payload` field,
//! not the form body (unlike GitHub).
//!
//! Only `created` versions of `container` packages deploy; `deleted` and other package
//! types are acknowledged and ignored. The image is the host of `package.html_url` (the
//! forge's ROOT_URL, where its registry also answers) + `/owner/name`, lowercased as the
//! registry serves it; the tag is `package.version`. The payload has no digest.

use super::{
    header_str, hmac_sha256_matches, json, json_or_form_payload, required, Auth, HookRequest,
    Parsed, Rejection, Source,
};
use crate::config::SourceKind;
use crate::event::ImagePushed;
use crate::reference::{validate_digest, validate_tag, ImageName};
use crate::secret::Secret;
use serde::Deserialize;

/// The Gitea / Forgejo package-webhook source.
pub struct Gitea;

/// Headers that carry the bare hex signature.
const BARE_SIGNATURES: &[&str] = &["x-gitea-signature", "x-forgejo-signature"];

/// The GitHub-style header, `sha256=<hex>`.
const HUB_SIGNATURE: &str = "x-hub-signature-256";

#[derive(Deserialize)]
struct Payload {
    action: Option<String>,
    package: Option<Package>,
}

#[derive(Deserialize)]
struct Package {
    owner: Option<Owner>,
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    version: Option<String>,
    html_url: Option<String>,
}

#[derive(Deserialize)]
struct Owner {
    login: Option<String>,
}

/// The signatures a request carries, as hex. A forge without a secret sends the headers
/// empty (or `sha256=` alone); those count as absent.
fn signatures<'a>(request: &HookRequest<'a>) -> Vec<&'a str> {
    let bare = BARE_SIGNATURES
        .iter()
        .filter_map(|name| header_str(request.headers, name));
    let hub = header_str(request.headers, HUB_SIGNATURE)
        .map(|v| {
            v.strip_prefix("sha256=")
                .unwrap_or("not a sha256 signature")
        })
        .filter(|v| !v.is_empty());
    bare.chain(hub).collect()
}

impl Source for Gitea {
    fn kind(&self) -> SourceKind {
        SourceKind::Gitea
    }

    fn content_types(&self) -> Option<&'static [&'static str]> {
        Some(&["application/json", "application/x-www-form-urlencoded"])
    }

    fn authenticate(&self, request: &HookRequest<'_>, _secret: &Secret) -> Result<Auth, Rejection> {
        if signatures(request).is_empty() {
            return Err(Rejection::Unauthorized(
                "missing signature: set the webhook's secret to this hook's token (the forge \
                 then sends X-Gitea-Signature / X-Forgejo-Signature)",
            ));
        }
        Ok(Auth::NeedsBody)
    }

    fn verify_body(
        &self,
        request: &HookRequest<'_>,
        body: &[u8],
        secret: &Secret,
    ) -> Result<(), Rejection> {
        let bad = Rejection::Unauthorized("bad signature");
        // Form deliveries are signed over their `payload` field, JSON ones as sent.
        let signed = json_or_form_payload(request.headers, body).map_err(|_| bad.clone())?;
        let sigs = signatures(request);
        // Check them all, so the time taken does not say which one was wrong.
        let all = sigs.iter().fold(!sigs.is_empty(), |ok, s| {
            hmac_sha256_matches(secret, &signed, s) & ok
        });
        if all {
            Ok(())
        } else {
            Err(bad)
        }
    }

    fn parse(&self, request: &HookRequest<'_>, body: &[u8]) -> Result<Vec<Parsed>, Rejection> {
        let event = header_str(request.headers, "x-gitea-event")
            .or_else(|| header_str(request.headers, "x-forgejo-event"));
        if let Some(event) = event.filter(|e| *e != "package") {
            return Ok(vec![Parsed::Ignored(format!(
                "a '{}' event; only package events deploy",
                super::short(event)
            ))]);
        }
        let document = json_or_form_payload(request.headers, body)?;
        let p: Payload = json(&document)?;
        let action = required(p.action, "action")?;
        let package = required(p.package, "package")?;
        if action != "created" {
            return Ok(vec![Parsed::Ignored(format!(
                "package action '{}' is not a new version",
                super::short(&action)
            ))]);
        }
        let kind = required(package.kind, "package.type")?;
        if kind != "container" {
            return Ok(vec![Parsed::Ignored(format!(
                "a '{}' package, not a container",
                super::short(&kind)
            ))]);
        }
        let owner = required(package.owner.and_then(|o| o.login), "package.owner.login")?;
        let name = required(package.name, "package.name")?;
        let version = required(package.version, "package.version")?;
        let html_url = required(package.html_url, "package.html_url")?;
        let host = url_host(&html_url).ok_or_else(|| {
            Rejection::Malformed("package.html_url is not an absolute http(s) URL".into())
        })?;
        let path = format!("{owner}/{name}").to_ascii_lowercase();
        let image = ImageName::from_host_and_path(&host, &path)
            .map_err(|e| Rejection::Malformed(format!("package.owner.login/package.name: {e}")))?;
        if version.is_empty() {
            return Ok(vec![Parsed::Ignored(format!(
                "{image}: a version with no tag"
            ))]);
        }
        if validate_digest(&version).is_ok() {
            return Ok(vec![Parsed::Ignored(format!(
                "{image}: a manifest pushed by digest, with no tag"
            ))]);
        }
        validate_tag(&version)
            .map_err(|e| Rejection::Malformed(format!("package.version: {e}")))?;
        let delivery = header_str(request.headers, "x-gitea-delivery")
            .or_else(|| header_str(request.headers, "x-forgejo-delivery"));
        Ok(vec![Parsed::Push(ImagePushed {
            image,
            tag: version,
            digest: None,
            delivery: delivery.map(str::to_string),
            callback_url: None,
        })])
    }
}

/// `host[:port]` of an absolute http(s) URL.
fn url_host(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    let host = u.host_str()?;
    Some(match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{fixture, headers, sign};

    const KEY: &str = "It's a Secret to Everybody";
    /// NOTES.md's X-Gitea-Signature for gitea-1.json (computed with Python's `hmac`).
    const GITEA_1_SIGNATURE: &str =
        "408677416159c9067a766857bbf1fdaaf2420d812fd4917c787967e551b5365a";

    fn req<'a>(h: &'a axum::http::HeaderMap) -> HookRequest<'a> {
        HookRequest {
            headers: h,
            query_token: None,
        }
    }

    fn check(pairs: &[(&str, &str)], body: &[u8], key: &str) -> Result<(), Rejection> {
        let h = headers(pairs);
        let secret = Secret::new(key);
        match Gitea.authenticate(&req(&h), &secret)? {
            Auth::NeedsBody => Gitea.verify_body(&req(&h), body, &secret),
            Auth::Verified => Ok(()),
        }
    }

    fn parse(pairs: &[(&str, &str)], body: &[u8]) -> Result<Vec<Parsed>, Rejection> {
        let h = headers(pairs);
        Gitea.parse(&req(&h), body)
    }

    #[test]
    fn the_computed_signature_verifies_in_each_header() {
        let body = fixture("gitea-1.json");
        assert_eq!(sign(KEY, &body), GITEA_1_SIGNATURE);
        let hub = format!("sha256={GITEA_1_SIGNATURE}");
        for pairs in [
            &[("x-gitea-signature", GITEA_1_SIGNATURE)][..],
            &[("x-forgejo-signature", GITEA_1_SIGNATURE)],
            &[("x-hub-signature-256", hub.as_str())],
            // What Forgejo sends: all of them, and the sha1 one we do not read.
            &[
                ("x-forgejo-signature", GITEA_1_SIGNATURE),
                ("x-gitea-signature", GITEA_1_SIGNATURE),
                (
                    "x-hub-signature",
                    "sha1=91e700f4e234432ccfe72b34150eca60658658d3",
                ),
                ("x-hub-signature-256", hub.as_str()),
            ],
        ] {
            assert_eq!(check(pairs, &body, KEY), Ok(()), "{pairs:?}");
            assert_eq!(
                check(pairs, &body, "another key"),
                Err(Rejection::Unauthorized("bad signature"))
            );
            let mut altered = body.clone();
            altered[20] ^= 1;
            assert!(check(pairs, &altered, KEY).is_err());
        }
    }

    #[test]
    fn one_bad_signature_among_good_ones_fails() {
        let body = fixture("gitea-1.json");
        let wrong = sign("another key", &body);
        assert!(check(
            &[
                ("x-gitea-signature", GITEA_1_SIGNATURE),
                ("x-forgejo-signature", &wrong),
            ],
            &body,
            KEY
        )
        .is_err());
        // A hub header without its prefix is not a signature that verifies.
        assert!(check(
            &[
                ("x-gitea-signature", GITEA_1_SIGNATURE),
                ("x-hub-signature-256", GITEA_1_SIGNATURE),
            ],
            &body,
            KEY
        )
        .is_err());
    }

    #[test]
    fn no_secret_on_the_forge_means_401() {
        let body = fixture("gitea-1.json");
        for pairs in [
            &[][..],
            &[
                ("x-gitea-signature", ""),
                ("x-hub-signature-256", "sha256="),
            ],
            &[("authorization", KEY)],
        ] {
            let e = check(pairs, &body, KEY).unwrap_err();
            assert!(
                matches!(e, Rejection::Unauthorized(m) if m.starts_with("missing signature")),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn a_form_delivery_is_signed_over_the_json_not_the_form() {
        let json = fixture("gitea-1.json");
        let form: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", std::str::from_utf8(&json).unwrap())
            .finish();
        let ct = ("content-type", "application/x-www-form-urlencoded");
        assert!(check(
            &[ct, ("x-gitea-signature", GITEA_1_SIGNATURE)],
            form.as_bytes(),
            KEY
        )
        .is_ok());
        let over_form = sign(KEY, form.as_bytes());
        assert!(check(
            &[ct, ("x-gitea-signature", &over_form)],
            form.as_bytes(),
            KEY
        )
        .is_err());
        assert!(check(&[ct, ("x-gitea-signature", GITEA_1_SIGNATURE)], b"x=1", KEY).is_err());
        let parsed = parse(&[ct], form.as_bytes()).unwrap();
        assert!(matches!(&parsed[..], [Parsed::Push(p)] if p.tag == "latest"));
    }

    #[test]
    fn the_reconstructed_payload_is_a_push() {
        let parsed = parse(
            &[
                ("x-gitea-event", "package"),
                ("x-gitea-delivery", "7e1b0c0e-0f4b-4a55-9b1e-2f3f1b8d2c11"),
            ],
            &fixture("gitea-1.json"),
        )
        .unwrap();
        let [Parsed::Push(p)] = &parsed[..] else {
            panic!("{parsed:?}")
        };
        assert_eq!(p.image.to_string(), "localhost:3000/user1/giteacontainer");
        assert_eq!(p.tag, "latest");
        assert_eq!(p.digest, None);
        assert_eq!(
            p.delivery.as_deref(),
            Some("7e1b0c0e-0f4b-4a55-9b1e-2f3f1b8d2c11")
        );
        let parsed = parse(&[("x-forgejo-delivery", "f-1")], &fixture("gitea-1.json")).unwrap();
        assert!(matches!(&parsed[..], [Parsed::Push(p)] if p.delivery.as_deref() == Some("f-1")));
    }

    fn body(action: &str, kind: &str, owner: &str, name: &str, version: &str, url: &str) -> String {
        format!(
            r#"{{"action":"{action}","package":{{"owner":{{"login":"{owner}"}},"type":"{kind}","name":"{name}","version":"{version}","html_url":"{url}"}}}}"#
        )
    }

    const URL: &str = "https://git.example.com/o/-/packages/container/app/v1";

    #[test]
    fn deletes_other_types_other_events_and_digests_are_ignored() {
        for (pairs, b, why) in [
            (
                &[][..],
                body("deleted", "container", "o", "app", "v1", URL),
                "deleted",
            ),
            (&[], body("created", "npm", "o", "app", "v1", URL), "npm"),
            (
                &[],
                body("created", "container", "o", "app", "", URL),
                "no tag",
            ),
            (
                &[],
                body(
                    "created",
                    "container",
                    "o",
                    "app",
                    &format!("sha256:{}", "0".repeat(64)),
                    URL,
                ),
                "by digest",
            ),
            (&[("x-gitea-event", "push")], "{}".to_string(), "'push'"),
        ] {
            let parsed = parse(pairs, b.as_bytes()).unwrap();
            assert!(
                matches!(&parsed[..], [Parsed::Ignored(r)] if r.contains(why)),
                "{why}: {parsed:?}"
            );
        }
    }

    #[test]
    fn hostile_bodies_never_push() {
        for (b, want) in [
            (body("created", "container", "o", "app", "../../x", URL), "package.version"),
            (body("created", "container", "o", "my app", "v1", URL), "package.name"),
            (body("created", "container", "../o", "app", "v1", URL), "package.name"),
            (body("created", "container", "o", "app", "v1", "file:///etc"), "html_url"),
            (body("created", "container", "o", "app", "v1", "not a url"), "html_url"),
            (r#"{"action":"created"}"#.into(), "missing package"),
            (r#"{"package":{}}"#.into(), "missing action"),
            (r#"{"action":"created","package":{"type":"container"}}"#.into(), "missing package.owner.login"),
            (r#"{"action":"created","package":{"type":"container","owner":{"login":"o"},"name":"a","version":"v1"}}"#.into(), "missing package.html_url"),
            (r#"{"action":"created","package":{"type":1}}"#.into(), "invalid type"),
            ("{".into(), "malformed"),
        ] {
            let e = parse(&[], b.as_bytes()).unwrap_err();
            assert!(matches!(e, Rejection::Malformed(_)), "{b}: {e}");
            assert!(e.to_string().contains(want), "{want}: {e}");
        }
        // Upper case is folded, as the forge's registry serves names in lower case.
        let parsed = parse(
            &[],
            body("created", "container", "User1", "App", "v1", URL).as_bytes(),
        )
        .unwrap();
        assert!(
            matches!(&parsed[..], [Parsed::Push(p)] if p.image.to_string() == "git.example.com/user1/app")
        );
    }
}
