//! Image names, normalised so that every way of writing one image compares equal.
//!
//! `nginx`, `library/nginx`, `docker.io/library/nginx` and `index.docker.io/library/nginx`
//! are one image. Parsing follows Docker's own grammar through `oci-spec`'s reference
//! parser; this module only adds what dockhand needs on top: a repository *without* a tag,
//! Docker Hub's host aliases, and tag/digest validation for strings that arrive in webhooks.

use oci_spec::distribution::Reference;
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
/// Returns the normalised name, the tag and the digest.
pub fn parse_full(
    input: &str,
) -> Result<(ImageName, Option<String>, Option<String>), ReferenceError> {
    let reference = Reference::try_from(input).map_err(|e| ReferenceError::InvalidName {
        input: truncate(input),
        reason: e.to_string(),
    })?;
    let registry = reference.registry().to_ascii_lowercase();
    check_host(&registry)?;
    let repository = reference.repository();
    if repository.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(ReferenceError::InvalidName {
            input: truncate(input),
            reason: "repository names must be lower case".into(),
        });
    }
    let name = ImageName::normalised(&registry, repository.to_string());
    Ok((
        name,
        reference.tag().map(str::to_string),
        reference.digest().map(str::to_string),
    ))
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
        // bracketed IPv6 host: oci-spec's grammar predates them.)
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
