//! Image names, normalised so that every way of writing one image compares equal.
//!
//! `nginx`, `library/nginx`, `docker.io/library/nginx` and `index.docker.io/library/nginx`
//! are one image. Parsing follows Docker's reference grammar (distribution's
//! `reference/regexp.go`), written out by hand over ASCII bytes:
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [ domain "/" ] path-component [ "/" path-component ]*
//! domain           := domain-component [ "." domain-component ]* [ ":" port-number ]
//! domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//! port-number      := [0-9]+
//! path-component   := [a-z0-9]+ ( ( [._] | "__" | [-]+ ) [a-z0-9]+ )*
//! tag              := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! digest           := algorithm ":" [0-9a-fA-F]{32,}    (sha256, sha384 or sha512,
//!                     with 64, 96 or 128 hex digits)
//! ```
//!
//! It used to go through `oci-spec`'s parser, whose Unicode regex cost ~7 MB of heap for
//! the life of the process (and ~20 MB while it compiled). That parser stays as the
//! oracle of a differential test (below) and of the `reference` fuzz target; the two
//! differ only where dockhand means to (see [`parse_full`]). On top of the grammar this
//! module adds what dockhand needs: a repository *without* a tag, Docker Hub's host
//! aliases, lower-case registry hosts, and tag/digest validation for webhook strings.

use std::fmt;

/// Docker Hub's canonical registry name and the aliases registries and payloads use for it.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_ALIASES: &[&str] = &[
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

/// Why a string is not a usable image name, tag or digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    /// The string does not follow Docker's reference grammar.
    #[error("'{input}' is not a valid image name ({reason})")]
    InvalidName {
        /// What was given (truncated).
        input: String,
        /// The parser's reason.
        reason: String,
    },
    /// An image name was expected, but a tag or digest came with it.
    #[error("'{0}' names a tag or digest; give the repository only (tags are matched separately)")]
    HasTag(String),
    /// The tag does not follow `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    #[error("'{0}' is not a valid tag")]
    InvalidTag(String),
    /// The digest is not `algorithm:hex` of the right length.
    #[error("'{0}' is not a valid digest (expected sha256:<64 hex digits>)")]
    InvalidDigest(String),
}

/// A normalised image repository: registry host plus path, with no tag or digest.
///
/// Displays as `registry/path`, e.g. `docker.io/library/nginx` or `127.0.0.1:5000/team/app`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageName {
    /// Registry host (with port), lower-case, Docker Hub aliases folded to `docker.io`.
    registry: String,
    /// Repository path within the registry (`library/nginx`, `team/sub/app`).
    repository: String,
}

impl ImageName {
    /// Parses a repository as a user writes it (`nginx`, `ghcr.io/o/app`,
    /// `127.0.0.1:5000/app`). A tag or digest is refused: see [`ReferenceError::HasTag`].
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let last = input.rsplit('/').next().unwrap_or(input);
        if last.contains(':') || input.contains('@') {
            return Err(ReferenceError::HasTag(truncate(input)));
        }
        let (name, _, _) = parse_full(input)?;
        Ok(name)
    }

    /// Builds a name from a registry host and a repository path, as webhook payloads carry
    /// them separately (`request.host` + `target.repository`). The host is taken as a host
    /// even when it has no dot or port (`registry/app` would otherwise mean Docker Hub).
    pub fn from_host_and_path(host: &str, path: &str) -> Result<Self, ReferenceError> {
        let host = host.trim().to_ascii_lowercase();
        check_host(&host)?;
        // Validate the path with the real grammar under a placeholder host.
        let probe = format!("registry.invalid/{path}");
        let probe_name = Self::parse(&probe)?;
        Ok(ImageName::normalised(&host, probe_name.repository))
    }

    /// The one place names are normalised: Docker Hub's aliases fold to `docker.io`, and
    /// a Docker Hub repository without a namespace is in `library/`.
    fn normalised(registry: &str, repository: String) -> ImageName {
        let registry = fold_hub(registry);
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        ImageName {
            registry,
            repository,
        }
    }

    /// The registry host (`docker.io`, `127.0.0.1:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path (`library/nginx`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// `name:tag`, the form the Engine API pulls.
    pub fn with_tag(&self, tag: &str) -> String {
        format!("{self}:{tag}")
    }

    /// `name:tag@digest` (or `name:tag` without a digest): what a Swarm service is pinned to.
    pub fn pinned(&self, tag: &str, digest: Option<&str>) -> String {
        match digest {
            Some(d) => format!("{self}:{tag}@{d}"),
            None => self.with_tag(tag),
        }
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)
    }
}

/// Parses a full reference (`repo[:tag][@digest]`) as the engine reports it, e.g. a
/// service's `127.0.0.1:5000/app:v2@sha256:…` or a container's `nginx:latest`.
/// Returns the normalised name, the tag (`latest` when neither a tag nor a digest is
/// given, as Docker reads it) and the digest.
///
/// Accepts what `oci-spec`'s `Reference::try_from` accepted, minus what dockhand refused
/// on top of it (an upper-case repository, a registry host that is no host), with two
/// deliberate differences, both stricter:
/// - a tag is ASCII (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`, Docker's Go `\w`), where
///   oci-spec's `\w` is Unicode and let `v\u{e9}` through;
/// - the 255-character limit applies to the *normalised* repository, so that every name
///   this returns parses again (oci-spec measured it before Docker Hub's aliases were
///   folded, so `registry-1.docker.io/` + 250 letters passed, but its normal form did not).
pub fn parse_full(
    input: &str,
) -> Result<(ImageName, Option<String>, Option<String>), ReferenceError> {
    let invalid = |reason: &str| ReferenceError::InvalidName {
        input: truncate(input),
        reason: reason.into(),
    };
    let parts = split_reference(input).map_err(invalid)?;
    let (registry, repository) = split_domain(parts.name);
    let registry = registry.to_ascii_lowercase();
    let name = ImageName::normalised(&registry, repository.to_string());
    if name.repository.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(invalid(
            "repository name must not be more than 255 characters",
        ));
    }
    if let Some(digest) = parts.digest {
        check_digest_algorithm(digest).map_err(invalid)?;
    }
    check_host(&registry)?;
    if repository.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(invalid("repository names must be lower case"));
    }

    let tag = match (parts.tag, parts.digest) {
        (None, None) => Some(DEFAULT_TAG.to_string()),
        (tag, _) => tag.map(str::to_string),
    };
    Ok((name, tag, parts.digest.map(str::to_string)))
}

/// Longest repository path Docker accepts.
const NAME_TOTAL_LENGTH_MAX: usize = 255;
/// The tag Docker reads when a reference has neither a tag nor a digest.
const DEFAULT_TAG: &str = "latest";

/// A reference split by the grammar, before any normalisation.
#[derive(Debug, PartialEq, Eq)]
struct Parts<'a> {
    /// `[domain/]path`, as written.
    name: &'a str,
    /// After the name's `:`.
    tag: Option<&'a str>,
    /// After the `@`.
    digest: Option<&'a str>,
}

/// Splits `input` into name, tag and digest and checks each against the grammar (see the
/// module doc). The split is unambiguous: `@` occurs in no part, and a `:` after the last
/// `/` can only start the tag (a path component has no `:`, and a port is followed by `/`).
fn split_reference(input: &str) -> Result<Parts<'_>, &'static str> {
    const INVALID: &str = "invalid reference format";
    if input.is_empty() {
        return Err("repository name must have at least one component");
    }
    let (rest, digest) = match input.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (input, None),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].find(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    let name_ok = match name.split_once('/') {
        None => is_path_component(name),
        Some((first, path)) => {
            (is_path_component(first) || is_domain(first)) && path.split('/').all(is_path_component)
        }
    };
    let tag_ok = tag.is_none_or(is_tag);
    let digest_ok = digest.is_none_or(is_digest);
    if name_ok && tag_ok && digest_ok {
        Ok(Parts { name, tag, digest })
    } else {
        Err(INVALID)
    }
}

/// `[a-z0-9]+ ( ( [._] | "__" | [-]+ ) [a-z0-9]+ )*`
fn is_path_component(s: &str) -> bool {
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = s.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    // Between runs of [a-z0-9]: exactly one of ".", "_", "__", or one or more "-".
    bytes
        .split(|b| alnum(b))
        .filter(|sep| !sep.is_empty())
        .all(|sep| matches!(sep, b"." | b"_" | b"__") || sep.iter().all(|&b| b == b'-'))
}

/// `domain-component ( "." domain-component )* ( ":" [0-9]+ )?`
fn is_domain(s: &str) -> bool {
    let (host, port) = match s.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (s, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !c.starts_with('-')
            && !c.ends_with('-')
    };
    port_ok && host.split('.').all(component_ok)
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`
fn is_tag(s: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-')
}

/// `algorithm ":" [0-9a-fA-F]{32,}`, where `algorithm` is
/// `[A-Za-z][A-Za-z0-9]* ( [-_+.] [A-Za-z][A-Za-z0-9]* )*`. The algorithm and length
/// are checked afterwards by [`check_digest_algorithm`], as Docker does.
fn is_digest(s: &str) -> bool {
    let Some((algorithm, hex)) = s.split_once(':') else {
        return false;
    };
    let algorithm_ok = algorithm.split(['-', '_', '+', '.']).all(|c| {
        c.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
            && c.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    algorithm_ok && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The digest algorithms Docker knows, with the length of their hex digest.
fn check_digest_algorithm(digest: &str) -> Result<(), &'static str> {
    let (algorithm, hex) = digest
        .split_once(':')
        .ok_or("invalid checksum digest format")?;
    let len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err("unsupported digest algorithm"),
    };
    if hex.len() == len {
        Ok(())
    } else {
        Err("invalid checksum digest length")
    }
}

/// Splits a name that passed the grammar into registry and repository, as Docker's
/// `splitDomain` does: the first component is a registry only if it has a `.` or a `:`
/// or is `localhost`; otherwise the name is on Docker Hub.
fn split_domain(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first, rest),
        _ => (DOCKER_HUB, name),
    }
}

/// The digest an image's `RepoDigests` (`name@sha256:…` entries) records for `image`.
pub fn digest_for(repo_digests: &[String], image: &ImageName) -> Option<String> {
    repo_digests.iter().find_map(|rd| {
        let (name, digest) = rd.split_once('@')?;
        let (parsed, _, _) = parse_full(name).ok()?;
        (parsed == *image).then(|| digest.to_string())
    })
}

/// Checks a tag against Docker's grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<(), ReferenceError> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ReferenceError::InvalidTag(truncate(tag)))
    }
}

/// Checks a digest: `sha256:` + 64 lower-case hex digits (or sha384/sha512 lengths).
pub fn validate_digest(digest: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::InvalidDigest(truncate(digest));
    let (algo, hex) = digest.split_once(':').ok_or_else(bad)?;
    let len = match algo {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(bad()),
    };
    if hex.len() == len && hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Checks a registry host against Docker's domain grammar: dot-separated components of
/// letters, digits and inner hyphens (or a bracketed IPv6 address), then an optional port.
fn check_host(host: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::InvalidName {
        input: truncate(host),
        reason: "bad registry host".into(),
    };
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or_else(bad)?;
        v6.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad)?),
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
            return Err(bad());
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
            return Err(bad());
        }
    }
    Ok(())
}

fn fold_hub(host: &str) -> String {
    if DOCKER_HUB_ALIASES.contains(&host) {
        DOCKER_HUB.to_string()
    } else {
        host.to_string()
    }
}

/// Shortens untrusted input before it goes into an error message.
fn truncate(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod differential;

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn docker_hub_spellings_are_one_image() {
        let want = ImageName::parse("docker.io/library/nginx").unwrap();
        for s in [
            "nginx",
            "library/nginx",
            "docker.io/library/nginx",
            "index.docker.io/library/nginx",
        ] {
            assert_eq!(ImageName::parse(s).unwrap(), want, "{s}");
        }
        assert_eq!(want.to_string(), "docker.io/library/nginx");
        assert_eq!(
            ImageName::from_host_and_path("registry-1.docker.io", "nginx").unwrap(),
            want
        );
    }

    #[test]
    fn host_with_port_and_nested_paths() {
        let n = ImageName::parse("127.0.0.1:5000/team/sub/app").unwrap();
        assert_eq!(n.registry(), "127.0.0.1:5000");
        assert_eq!(n.repository(), "team/sub/app");
        assert_eq!(n.with_tag("v2"), "127.0.0.1:5000/team/sub/app:v2");
        assert_eq!(
            ImageName::from_host_and_path("127.0.0.1:5000", "team/sub/app").unwrap(),
            n
        );
    }

    #[test]
    fn a_bare_host_from_a_payload_stays_a_host() {
        let n = ImageName::from_host_and_path("registry", "app").unwrap();
        assert_eq!(n.to_string(), "registry/app");
    }

    #[test]
    fn names_with_tags_or_bad_characters_are_refused() {
        assert!(matches!(
            ImageName::parse("nginx:1.25"),
            Err(ReferenceError::HasTag(_))
        ));
        assert!(matches!(
            ImageName::parse("127.0.0.1:5000/app@sha256:abc"),
            Err(ReferenceError::HasTag(_))
        ));
        assert!(ImageName::parse("Upper/Case").is_err());
        assert!(ImageName::parse("").is_err());
        assert!(ImageName::from_host_and_path("127.0.0.1:5000", "../etc").is_err());
        assert!(ImageName::from_host_and_path("evil host", "app").is_err());
    }

    #[test]
    fn full_references_as_the_engine_reports_them() {
        let d = format!("sha256:{}", "a".repeat(64));
        let (n, t, dg) = parse_full(&format!("127.0.0.1:5000/app:v2@{d}")).unwrap();
        assert_eq!(n.to_string(), "127.0.0.1:5000/app");
        assert_eq!(t.as_deref(), Some("v2"));
        assert_eq!(dg.as_deref(), Some(d.as_str()));
    }

    #[test]
    fn what_the_fuzzer_found() {
        // Hosts that only had allowed characters, but are no hosts.
        for host in [
            ":",
            "a..b",
            "i:o",
            "10.77..b-64e6e5b912f5",
            "-a.b",
            "a.b:",
            "a.b:123456",
            "w_g.d",
        ] {
            assert!(
                ImageName::from_host_and_path(host, "app").is_err(),
                "{host}"
            );
        }
        // (A bare `registry` is a host here but a Docker Hub namespace in a string, so it
        // does not round-trip: see a_bare_host_from_a_payload_stays_a_host. Nor does a
        // bracketed IPv6 host: Docker's reference grammar has none.)

        for host in ["localhost", "127.0.0.1:5000", "my-reg.example.com"] {
            let n = ImageName::from_host_and_path(host, "app").unwrap();
            assert_eq!(
                ImageName::parse(&n.to_string()).ok(),
                Some(n.clone()),
                "{host}"
            );
        }
        // An upper-case namespace is not a Docker Hub repository.
        assert!(ImageName::parse("A/b").is_err());
        assert!(parse_full("K/e:b").is_err());
        // A host with `_` is refused by both constructors alike.
        assert!(ImageName::parse("w_g.d/m").is_err());
        // Every Docker Hub alias puts a bare name in library/.
        let want = ImageName::parse("nginx").unwrap();
        for alias in [
            "registry-1.docker.io/nginx",
            "registry.hub.docker.com/nginx",
            "index.docker.io/nginx",
            "docker.io/nginx",
        ] {
            assert_eq!(ImageName::parse(alias).unwrap(), want, "{alias}");
        }
    }

    #[test]
    fn tags_and_digests() {
        for ok in ["v2", "latest", "1.25.3-alpine", "_x", "A_b.c-d"] {
            validate_tag(ok).unwrap();
        }
        for bad in [
            "",
            "-x",
            ".x",
            "a/b",
            "a:b",
            "a b",
            &"x".repeat(129),
            "../../x",
        ] {
            assert!(validate_tag(bad).is_err(), "{bad}");
        }
        validate_digest(&format!("sha256:{}", "0f".repeat(32))).unwrap();
        for bad in [
            "sha256:0123456789abcdef0",
            "md5:00",
            "sha256",
            &"a".repeat(71),
        ] {
            assert!(validate_digest(bad).is_err(), "{bad}");
        }
    }
}
