//! What the fuzz targets share: feeding a source, splitting an input into headers and a
//! body, and the invariants every outcome must satisfy.
//!
//! The invariants are security properties, not style: a `Push` is what policy and then the
//! deployer act on, so everything in it must already be validated. A violated invariant
//! panics, which libFuzzer reports as a crash and saves under `fuzz/artifacts/<target>/`.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use dockhand::config::SourceKind;
use dockhand::reference::{parse_full, validate_digest, validate_tag, ImageName};

use dockhand::secret::Secret;
use dockhand::source::{check_content_type, for_kind, Auth, HookRequest, Parsed, Rejection};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The hook secret of the HMAC targets (GitHub's published test key, which the fixture
/// notes also use).
pub const SECRET: &str = "It's a Secret to Everybody";

/// Longest message a rejection or an ignored item may carry. Messages built from untrusted
/// input are truncated by the sources; a payload must never be echoed back whole.
const MAX_MESSAGE: usize = 1024;

/// Parses `body` with no headers and no query token, as the plain parser targets do, and
/// checks the outcome.
pub fn parse_without_headers(kind: SourceKind, body: &[u8]) {
    let headers = HeaderMap::new();
    let request = HookRequest {
        headers: &headers,
        query_token: None,
    };
    let outcome = for_kind(kind).parse(&request, body);
    check_outcome(kind, &outcome);
}

/// Whether a (lower-case) registry host is one that Docker's reference grammar reads as a
/// host when it is the first path component: it has a dot or a port, or is `localhost`.
/// Any other first component means a Docker Hub namespace. A bracketed IPv6 address
/// (`[::1]:5000`, which `from_host_and_path` takes from a payload) is no host to the
/// grammar either: it has none (nor had oci-spec's), so such a name never parses and can
/// never equal a configured target.
pub fn reads_as_host(registry: &str) -> bool {
    !registry.starts_with('[') && (registry.contains(['.', ':']) || registry == "localhost")
}

/// Checks everything a parser returned.
pub fn check_outcome(kind: SourceKind, outcome: &Result<Vec<Parsed>, Rejection>) {
    match outcome {
        Ok(items) => {
            for item in items {
                match item {
                    Parsed::Push(event) => check_push(kind, event),
                    Parsed::Ignored(why) => check_message(kind, why),
                }
            }
        }
        Err(rejection) => check_message(kind, &rejection.to_string()),
    }
}

fn check_message(kind: SourceKind, message: &str) {
    assert!(
        message.chars().count() <= MAX_MESSAGE,
        "{}: a message of {} chars echoes untrusted input: {:?}",
        kind.as_str(),
        message.chars().count(),
        message.chars().take(300).collect::<String>()
    );
}

/// The invariants of a push event: nothing unvalidated may reach policy or the deployer.
pub fn check_push(kind: SourceKind, event: &dockhand::event::ImagePushed) {
    let src = kind.as_str();
    let tag = event.tag.as_str();
    let digest = event.digest.as_deref();

    // The tag and digest are what the deployer pins: both must pass validation.
    assert!(
        validate_tag(tag).is_ok(),
        "{src}: push with an invalid tag {tag:?} ({event:?})"
    );
    if let Some(d) = digest {
        assert!(
            validate_digest(d).is_ok(),
            "{src}: push with an invalid digest {d:?} ({event:?})"
        );
    }

    // The image is normalised: registry lower-case and not a Docker Hub alias, a non-empty
    // repository, and it can be rebuilt from its two parts.
    check_name(src, &event.image);
    assert_eq!(
        ImageName::from_host_and_path(event.image.registry(), event.image.repository()).as_ref(),
        Ok(&event.image),
        "{src}: push image is not rebuilt from its own registry and repository"
    );

    // What the deployer hands the engine, `name:tag@digest`, must parse back to exactly
    // what policy approved. (A registry that does not read as a host, e.g. a bare
    // `registry` from a payload's request.host, is a known ambiguity of the display form:
    // such an image can never equal a configured target, which are all parsed.)
    if reads_as_host(event.image.registry()) {
        let pinned = event.image.pinned(tag, digest);
        assert_eq!(
            parse_full(&pinned),
            Ok((
                event.image.clone(),
                Some(tag.to_string()),
                digest.map(str::to_string)
            )),
            "{src}: the pinned reference {pinned:?} does not parse back to the event"
        );
        assert_eq!(
            ImageName::parse(&event.image.to_string()).as_ref(),
            Ok(&event.image),
            "{src}: push image is not in normal form"
        );
    }

    // A callback is only ever an absolute http(s) URL with a host.
    if let Some(cb) = event.callback_url.as_deref() {
        let parsed = url::Url::parse(cb);
        assert!(
            matches!(&parsed, Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host()),
            "{src}: callback_url {cb:?} is not an absolute http(s) URL"
        );
    }
}

/// What holds for every [`ImageName`], however it was made.
pub fn check_name(src: &str, name: &ImageName) {
    let registry = name.registry();
    let repository = name.repository();
    assert!(!registry.is_empty(), "{src}: empty registry in {name:?}");
    assert_eq!(
        registry,
        registry.to_ascii_lowercase(),
        "{src}: registry not lower-case in {name:?}"
    );
    assert!(
        ![
            "index.docker.io",
            "registry-1.docker.io",
            "registry.hub.docker.com"
        ]
        .contains(&registry),
        "{src}: Docker Hub alias not folded in {name:?}"
    );
    assert!(
        !repository.is_empty(),
        "{src}: empty repository in {name:?}"
    );
    assert!(
        !repository.starts_with('/') && !repository.ends_with('/') && !repository.contains("//"),
        "{src}: empty path component in {name:?}"
    );
    assert!(
        repository
            .split('/')
            .all(|c| c != "." && c != ".." && !c.is_empty()),
        "{src}: relative path component in {name:?}"
    );
    assert!(
        !repository.contains([':', '@']) && !repository.chars().any(|c| c.is_ascii_uppercase()),
        "{src}: tag, digest or upper case in the repository of {name:?}"
    );
    if registry == "docker.io" {
        assert!(
            repository.contains('/'),
            "{src}: Docker Hub image without a namespace: {name:?}"
        );
    }
}

/// A fuzz input split into what a request carries.
pub struct Request<'a> {
    /// Option bits (the input's first byte).
    pub flags: u8,
    /// Headers from `name: value` lines.
    pub headers: HeaderMap,
    /// A `?token=` line's value.
    pub query_token: Option<String>,
    /// Everything after the first blank line.
    pub body: &'a [u8],
}

/// Flag: the harness adds the correct signature header, so parsing after a successful
/// `verify_body` is reached too.
pub const SIGN: u8 = 1;
/// Flag: the harness offers the secret itself as `?token=`, which must not stand in for a
/// signature.
pub const OFFER_TOKEN_AS_QUERY: u8 = 2;

/// Splits `data` as `FLAGS` + `name: value\n`... + `\n` + body. Lines that make no valid
/// header are skipped; a line `?token=VALUE` is the query token. Without a blank line the
/// whole rest is the body and there are no headers.
pub fn split_request(data: &[u8]) -> Option<Request<'_>> {
    let (&flags, rest) = data.split_first()?;
    let (head, body) = match find(rest, b"\n\n") {
        Some(i) => (&rest[..i], &rest[i + 2..]),
        None => (&rest[..0], rest),
    };
    let mut headers = HeaderMap::new();
    let mut query_token = None;
    for line in head.split(|&b| b == b'\n') {
        if let Some(token) = line.strip_prefix(b"?token=") {
            query_token = Some(String::from_utf8_lossy(token).into_owned());
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = trim(&line[..colon]);
        let value = line[colon + 1..]
            .strip_prefix(b" ")
            .unwrap_or(&line[colon + 1..]);
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }
    if flags & OFFER_TOKEN_AS_QUERY != 0 {
        query_token = Some(SECRET.to_string());
    }
    Some(Request {
        flags,
        headers,
        query_token,
        body,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

/// The lower-case hex HMAC-SHA256 of `data` under [`SECRET`].
pub fn sign(data: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

/// A header's value as text, trimmed, when present and not empty (as the sources read it).
fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The first `payload` field of a form body, if the body is a form with one.
fn form_payload(body: &[u8]) -> Option<Vec<u8>> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned().into_bytes())
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The signature headers an HMAC source reads, and how to set them correctly.
fn add_signature(kind: SourceKind, headers: &mut HeaderMap, body: &[u8]) {
    match kind {
        // GitHub signs the raw body, form or not.
        SourceKind::Github => {
            let v = format!("sha256={}", sign(body));
            headers.insert("x-hub-signature-256", HeaderValue::from_str(&v).unwrap());
        }
        // Gitea signs the JSON document: a form's `payload` field, else the body.
        SourceKind::Gitea => {
            let signed = if is_form(headers) {
                form_payload(body).unwrap_or_default()
            } else {
                body.to_vec()
            };
            let v = sign(&signed);
            headers.insert("x-gitea-signature", HeaderValue::from_str(&v).unwrap());
        }
        _ => unreachable!("not an HMAC source"),
    }
}

/// The signatures present on a request (hex), as the source must find them.
fn offered_signatures(kind: SourceKind, headers: &HeaderMap) -> Vec<String> {
    let hub = header_str(headers, "x-hub-signature-256").map(|v| {
        v.strip_prefix("sha256=")
            .unwrap_or("not a sha256 signature")
            .to_string()
    });
    match kind {
        SourceKind::Github => hub.into_iter().collect(),
        SourceKind::Gitea => ["x-gitea-signature", "x-forgejo-signature"]
            .iter()
            .filter_map(|n| header_str(headers, n).map(str::to_string))
            .chain(hub.filter(|v| !v.is_empty()))
            .collect(),
        _ => unreachable!("not an HMAC source"),
    }
}

/// The HMAC targets: authenticate, verify_body and parse on a request made from the input,
/// with a fixed secret. Checks that a body is only ever accepted with a signature made
/// with the secret, that authenticate alone never accepts, and the parse invariants.
pub fn hmac_request(kind: SourceKind, data: &[u8]) {
    let Some(mut req) = split_request(data) else {
        return;
    };
    if req.flags & SIGN != 0 {
        add_signature(kind, &mut req.headers, req.body);
    }
    let secret = Secret::new(SECRET);
    let source = for_kind(kind);
    let request = HookRequest {
        headers: &req.headers,
        query_token: req.query_token.as_deref(),
    };

    let _ = check_content_type(source, &req.headers);

    let auth = source.authenticate(&request, &secret);
    assert_ne!(
        auth,
        Ok(Auth::Verified),
        "{}: authenticate accepted without checking the body's signature",
        kind.as_str()
    );
    let verified = source.verify_body(&request, req.body, &secret);
    if verified.is_ok() {
        // Every signature offered must be the HMAC of what the sender signs: the body,
        // or (Gitea) the form's payload field.
        let mut genuine = vec![sign(req.body)];
        if kind == SourceKind::Gitea {
            genuine.extend(form_payload(req.body).map(|p| sign(&p)));
        }
        let offered = offered_signatures(kind, &req.headers);
        assert!(
            !offered.is_empty(),
            "{}: verify_body accepted a request with no signature",
            kind.as_str()
        );
        for sig in &offered {
            let sig = sig.trim().to_ascii_lowercase();
            assert!(
                genuine.contains(&sig),
                "{}: verify_body accepted the signature {sig:?}, which is not the HMAC of \
                 the body or its payload",
                kind.as_str()
            );
        }
        // The HTTP layer needs both steps to pass before it parses.
        assert!(
            auth.is_ok(),
            "{}: verify_body accepted what authenticate refused",
            kind.as_str()
        );
    }
    if let Err(rejection) = &verified {
        assert!(
            matches!(rejection, Rejection::Unauthorized(_)),
            "{}: verify_body failed with something other than 401: {rejection:?}",
            kind.as_str()
        );
    }

    // Parse whatever the outcome: the parser is pure and must hold up on its own.
    let outcome = source.parse(&request, req.body);
    check_outcome(kind, &outcome);
}

/// A parsed reference as plain strings: registry, repository, tag, digest.
pub type Parts = (String, String, Option<String>, Option<String>);

/// `parse_full`'s answer as [`Parts`] (errors as their message).
pub fn parse_full_parts(input: &str) -> Result<Parts, String> {
    parse_full(input)
        .map(|(n, t, d)| (n.registry().to_string(), n.repository().to_string(), t, d))
        .map_err(|e| e.to_string())
}

/// The `parse_full` dockhand had before its hand-written parser, independent of it:
/// `oci-spec`'s regex grammar, then dockhand's own checks on top (a lower-cased registry
/// that is a host; a lower-case repository), then its normalisation (Docker Hub's
/// aliases fold to `docker.io`, a Hub repository without a namespace goes in `library/`).
/// The oracle of the `reference` target; the same as `src/reference/differential.rs`'s.
pub fn oci_spec_parse_full(input: &str) -> Result<Parts, String> {
    let reference =
        oci_spec::distribution::Reference::try_from(input).map_err(|e| e.to_string())?;
    let registry = reference.registry().to_ascii_lowercase();
    if !old_check_host(&registry) {
        return Err("bad registry host".into());
    }
    let repository = reference.repository();
    if repository.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("repository names must be lower case".into());
    }
    let registry = match registry.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        _ => registry,
    };
    let repository = if registry == "docker.io" && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository.to_string()
    };
    Ok((
        registry,
        repository,
        reference.tag().map(str::to_string),
        reference.digest().map(str::to_string),
    ))
}

/// dockhand's registry-host check as it was when oci-spec parsed (a copy, so that the
/// oracle does not lean on the code under test).
fn old_check_host(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        let port = match after {
            "" => None,
            p => match p.strip_prefix(':') {
                Some(p) => Some(p),
                None => return false,
            },
        };
        (None, port)
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (Some(n), Some(p)),
            None => (Some(host), None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.chars().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    if let Some(name) = name {
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
                && !c.starts_with('-')
                && !c.ends_with('-')
        };
        if name.len() > 253 || !name.split('.').all(component_ok) {
            return false;
        }
    }
    true
}

/// Where dockhand refuses on purpose what oci-spec accepted: the rule's name, if any
/// (see `parse_full`'s doc).
pub fn refused_on_purpose(accepted: &Parts) -> Option<&'static str> {
    let (_, repository, tag, _) = accepted;
    if tag.as_deref().is_some_and(|t| !t.is_ascii()) {
        return Some("ascii-tag");
    }
    if repository.len() > 255 {
        return Some("normalised-length");
    }
    None
}

/// Compares `parse_full` with oci-spec's parser on `input`; panics if they disagree other
/// than by a named rule.
pub fn check_against_oci_spec(input: &str) {
    let new = parse_full_parts(input);
    let old = oci_spec_parse_full(input);
    match (&old, &new) {
        (Ok(o), Ok(n)) => assert_eq!(
            o, n,
            "{input:?}: oci-spec and dockhand parse it differently"
        ),
        (Err(_), Err(_)) => {}
        (Ok(o), Err(e)) => assert!(
            refused_on_purpose(o).is_some(),
            "{input:?}: oci-spec accepts it as {o:?}, dockhand refuses it: {e}"
        ),
        (Err(e), Ok(n)) => {
            panic!("{input:?}: oci-spec refuses it ({e}), dockhand accepts it as {n:?}")
        }
    }
}
