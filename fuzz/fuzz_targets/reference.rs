//! Image-reference normalisation and tag/digest validation.
//!
//! The whole input (when it is UTF-8) and each of its `\n`-separated lines go through
//! `ImageName::parse`, `parse_full`, `validate_tag` and `validate_digest`; the first two
//! lines are also a host and a path for `ImageName::from_host_and_path`. Checked:
//! - `ImageName::parse` is idempotent: `parse(parse(s).to_string()) == parse(s)`, and
//!   agrees with `parse_full`;
//! - every name either constructor returns is in normal form and rebuilds from its parts;
//! - a tag or digest that validates is accepted by the reference grammar, as the deployer
//!   pins it (`name:tag@digest`), and comes back unchanged;
//! - `parse_full` agrees with `oci-spec`'s regex parser (the one dockhand used before),
//!   except where `dockhand_fuzz::refused_on_purpose` names a deliberate difference; every
//!   line is also tried with a valid tag and digest appended and under a registry host.
#![no_main]

use dockhand::reference::{parse_full, validate_digest, validate_tag, ImageName};
use dockhand_fuzz::{check_against_oci_spec, check_name, reads_as_host};
use libfuzzer_sys::fuzz_target;

/// A valid sha256 digest's hex part.
const HEX64: &str = "4696728ffacd8025c9479fe48c47dd9d55604ed0f0f7d5062cf5aed9fc89c814";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    one(text);
    let lines: Vec<&str> = text.split('\n').collect();
    if lines.len() > 1 {
        for line in lines.iter().take(8) {
            one(line);
        }
    }
    if let [host, path, ..] = lines.as_slice() {
        host_and_path(host, path);
    }
});

fn one(s: &str) {
    check_against_oci_spec(s);
    check_against_oci_spec(&format!("{s}:v1"));
    check_against_oci_spec(&format!("{s}@sha256:{HEX64}"));
    check_against_oci_spec(&format!("127.0.0.1:5000/{s}"));

    if let Ok(name) = ImageName::parse(s) {
        check_name("ImageName::parse", &name);
        let again = ImageName::parse(&name.to_string());
        assert_eq!(
            again.as_ref(),
            Ok(&name),
            "ImageName::parse is not idempotent on {s:?}"
        );
        // parse_full reads a bare repository as `:latest`, as Docker does.
        let full = parse_full(s);
        assert!(
            matches!(&full, Ok((n, t, None)) if *n == name
                && matches!(t.as_deref(), None | Some("latest"))),
            "ImageName::parse and parse_full disagree on {s:?}: {name:?} vs {full:?}"
        );
        assert_eq!(
            ImageName::from_host_and_path(name.registry(), name.repository()).as_ref(),
            Ok(&name),
            "{s:?}: a parsed name does not rebuild from its registry and repository"
        );
        assert!(
            reads_as_host(name.registry()),
            "{s:?}: parsed to {name}, whose registry reads as a Docker Hub namespace"
        );
    }

    if let Ok((name, tag, digest)) = parse_full(s) {
        check_name("parse_full", &name);
        assert_eq!(
            ImageName::parse(&name.to_string()).as_ref(),
            Ok(&name),
            "{s:?}: the name parse_full returns is not in normal form"
        );
        // The grammar's tag is validate_tag's (ASCII), so every tag parse_full returns
        // passes it. (oci-spec's `\w` was Unicode: it let `v\u{e9}` through.)
        if let Some(t) = tag.as_deref() {
            assert!(
                validate_tag(t).is_ok(),
                "{s:?}: parse_full returned the tag {t:?}, which validate_tag refuses"
            );
        }

        // What the deployer pins from a validated tag and digest names the same image.
        let t = tag.as_deref().filter(|t| validate_tag(t).is_ok());
        let d = digest.as_deref().filter(|d| validate_digest(d).is_ok());
        if let Some(t) = t {
            let pinned = name.pinned(t, d);
            assert_eq!(
                parse_full(&pinned),
                Ok((name.clone(), Some(t.to_string()), d.map(str::to_string))),
                "{s:?}: the pinned form {pinned:?} does not parse back"
            );
        }
    }

    if validate_tag(s).is_ok() {
        assert!(
            !s.is_empty() && s.len() <= 128 && !s.contains(['/', ':', '@', ' ', '\n']),
            "validate_tag accepted {s:?}"
        );
        let probe = format!("registry.invalid/app:{s}");
        assert_eq!(
            parse_full(&probe),
            Ok((
                ImageName::parse("registry.invalid/app").unwrap(),
                Some(s.to_string()),
                None
            )),
            "a tag that validates is refused or changed by the reference grammar: {s:?}"
        );
    }

    if validate_digest(s).is_ok() {
        let probe = format!("registry.invalid/app:v1@{s}");
        assert_eq!(
            parse_full(&probe),
            Ok((
                ImageName::parse("registry.invalid/app").unwrap(),
                Some("v1".to_string()),
                Some(s.to_string())
            )),
            "a digest that validates is refused or changed by the reference grammar: {s:?}"
        );
    }
}

fn host_and_path(host: &str, path: &str) {
    let Ok(name) = ImageName::from_host_and_path(host, path) else {
        return;
    };
    check_name("ImageName::from_host_and_path", &name);
    let folded = match host.trim().to_ascii_lowercase().as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        h => h.to_string(),
    };
    assert_eq!(
        name.registry(),
        folded,
        "host {host:?} was not kept as the registry"
    );
    // The path must be one the grammar accepts under any host.
    assert!(
        ImageName::parse(&format!("registry.invalid/{}", name.repository())).is_ok(),
        "from_host_and_path({host:?}, {path:?}) made the repository {:?}, which the \
         grammar refuses",
        name.repository()
    );
    // A host that reads as one must give a name that is in normal form, so that the
    // deployer's `name:tag` is the image policy approved.
    if reads_as_host(name.registry()) {
        assert_eq!(
            ImageName::parse(&name.to_string()).as_ref(),
            Ok(&name),
            "from_host_and_path({host:?}, {path:?}) = {name}, which does not parse back \
             to itself"
        );
    }
}
