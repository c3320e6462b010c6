//! The differential test: [`parse_full`](super::parse_full) against `oci-spec`'s
//! `Reference::try_from` (the regex parser dockhand used before, now a dev-dependency
//! only), over a generated corpus of tricky names and every string in the webhook
//! fixtures. The two must agree on every input, except where a named rule says dockhand
//! differs on purpose; the `reference` fuzz target checks the same with libFuzzer's inputs.

use super::{check_host, parse_full, ImageName, ReferenceError};
use oci_spec::distribution::Reference;

/// What `parse_full` returns.
type Full = Result<(ImageName, Option<String>, Option<String>), ReferenceError>;

/// The old `parse_full`, verbatim: oci-spec's grammar, then dockhand's own checks on top
/// (lower-case registry that must be a host, lower-case repository).
fn oracle(input: &str) -> Full {
    let reference = Reference::try_from(input).map_err(|e| ReferenceError::InvalidName {
        input: super::truncate(input),
        reason: e.to_string(),
    })?;
    let registry = reference.registry().to_ascii_lowercase();
    check_host(&registry)?;
    let repository = reference.repository();
    if repository.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(ReferenceError::InvalidName {
            input: super::truncate(input),
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

/// The deliberate differences: given what the oracle accepted, the rule by which
/// dockhand now refuses it, if any.
fn refused_on_purpose(
    accepted: &(ImageName, Option<String>, Option<String>),
) -> Option<&'static str> {
    let (name, tag, _) = accepted;
    if tag.as_deref().is_some_and(|t| !t.is_ascii()) {
        return Some("ascii-tag: a tag is [A-Za-z0-9_][A-Za-z0-9_.-]{0,127} (Go's \\w is ASCII; oci-spec's is Unicode)");
    }
    if name.repository().len() > 255 {
        return Some("normalised-length: the 255 limit holds for the repository after Docker Hub's aliases are folded (else the name would not parse again)");
    }
    None
}

/// How the two parsers compare on one input.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Both accept it, with the same result.
    BothAccept,
    /// Both refuse it.
    BothRefuse,
    /// oci-spec accepts it, dockhand refuses it by the named rule.
    OnPurpose(&'static str),
    /// Anything else: a bug in one of them.
    Disagree(String),
}

/// Compares the two on `input`.
fn compare(input: &str) -> Verdict {
    let new = parse_full(input);
    let old = oracle(input);
    match (&old, &new) {
        (Ok(o), Ok(n)) if o == n => Verdict::BothAccept,
        (Err(_), Err(_)) => Verdict::BothRefuse,
        (Ok(o), Err(_)) => match refused_on_purpose(o) {
            Some(rule) => Verdict::OnPurpose(rule),
            None => Verdict::Disagree(format!("{input:?}: oci-spec {old:?}, dockhand {new:?}")),
        },
        _ => Verdict::Disagree(format!("{input:?}: oci-spec {old:?}, dockhand {new:?}")),
    }
}

/// Compares every input; panics with the disagreements, else returns how many were
/// accepted by both and how many hit each deliberate difference.
fn compare_all(corpus: &[String]) -> (usize, std::collections::BTreeMap<&'static str, usize>) {
    let mut accepted = 0;
    let mut rules = std::collections::BTreeMap::new();
    let mut wrong = Vec::new();
    for s in corpus {
        match compare(s) {
            Verdict::BothAccept => accepted += 1,
            Verdict::BothRefuse => {}
            Verdict::OnPurpose(rule) => *rules.entry(rule).or_insert(0) += 1,
            Verdict::Disagree(d) => wrong.push(d),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} inputs disagree, e.g.:\n{}",
        wrong.len(),
        corpus.len(),
        wrong[..wrong.len().min(20)].join("\n")
    );
    (accepted, rules)
}

/// A small deterministic generator (xorshift64*), so that a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

const HEX64: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Registry hosts: real ones, Docker Hub's aliases in several cases, and near misses.
const HOSTS: &[&str] = &[
    "",
    "localhost",
    "LocalHost",
    "localhost:5000",
    "a",
    "A",
    "a.b",
    "A.B",
    "a-b.c",
    "-a.b",
    "a-.b",
    "a..b",
    ".a",
    "a.",
    "a.b:5000",
    "a.b:",
    "a:1",
    "a:123456",
    "a:1:2",
    "a.b:x",
    "127.0.0.1:5000",
    "[::1]:5000",
    "[::1]",
    "docker.io",
    "DOCKER.IO",
    "Docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
    "w_g.d",
    "xn--n3h.com",
    "b.gcr.io",
    "us-west1-docker.pkg.dev",
    "r\u{e9}g.io",
    "a b.c",
];

/// Repository paths: valid separators, their near misses, case, and non-ASCII.
const PATHS: &[&str] = &[
    "app",
    "a",
    "0",
    "library/nginx",
    "team/sub/app",
    "a/b/c/d",
    "a_b",
    "a__b",
    "a___b",
    "a.b",
    "a..b",
    "a-b",
    "a--b",
    "a-.b",
    "a._b",
    "_a",
    "a_",
    ".a",
    "a.",
    "-a",
    "a-",
    "A",
    "aB",
    "A/b",
    "a/B",
    "",
    "a/",
    "/a",
    "a//b",
    "app\u{e9}",
    "\u{e9}",
    "foo_bar.com",
    "test.com",
    "a:b",
    "a b",
];

/// `:tag` suffixes.
const TAGS: &[&str] = &[
    "",
    ":v1",
    ":latest",
    ":",
    ":-x",
    ":.x",
    ":_x",
    ":X",
    ":1.25.3-alpine",
    ":v\u{e9}",
    ":\u{e9}",
    ":a:b",
    ":a/b",
    ":a b",
    ":5000",
];

fn digests() -> Vec<String> {
    let mut d = vec![
        String::new(),
        format!("@sha256:{HEX64}"),
        format!("@sha256:{}", HEX64.to_uppercase()),
        format!("@sha256:{}", &HEX64[..63]),
        format!("@sha256:{HEX64}0"),
        format!("@sha384:{HEX64}{}", &HEX64[..32]),
        format!("@sha512:{HEX64}{HEX64}"),
        format!("@sha512:{HEX64}"),
        format!("@md5:{}", &HEX64[..32]),
        format!("@SHA256:{HEX64}"),
        format!("@sha256+b64:{HEX64}"),
        format!("@sha256:{}g", &HEX64[..63]),
        format!("@sha256:{HEX64}@x"),
        format!("@:{HEX64}"),
        "@".to_string(),
        "@sha256".to_string(),
    ];
    d.sort();
    d.dedup();
    d
}

/// Every host and path, with every tag, every digest and a few tag+digest pairs.
fn combinations() -> Vec<String> {
    let digests = digests();
    let mut suffixes: Vec<String> = TAGS.iter().map(|t| t.to_string()).collect();
    suffixes.extend(digests.iter().cloned());
    for tag in [":v1", ":", ":v\u{e9}", ":a:b"] {
        for digest in digests.iter().skip(1).take(6) {
            suffixes.push(format!("{tag}{digest}"));
        }
    }
    let mut out = Vec::new();
    for host in HOSTS {
        for path in PATHS {
            let name = if host.is_empty() {
                path.to_string()
            } else {
                format!("{host}/{path}")
            };
            for suffix in &suffixes {
                out.push(format!("{name}{suffix}"));
            }
        }
    }
    out
}

/// Lengths around the 255 and 128 limits.
fn long_names() -> Vec<String> {
    let mut out = Vec::new();
    for n in [246, 247, 248, 249, 250, 254, 255, 256] {
        let x = "x".repeat(n);
        for host in [
            "",
            "docker.io/",
            "index.docker.io/",
            "registry-1.docker.io/",
            "DOCKER.IO/",
            "a.b/",
            "library/",
        ] {
            out.push(format!("{host}{x}"));
            out.push(format!("{host}a/{x}"));
        }
    }
    for n in [127, 128, 129] {
        out.push(format!("app:{}", "t".repeat(n)));
        out.push(format!("app:_{}", "\u{e9}".repeat(n)));
    }
    out
}

/// Random strings over the grammar's alphabet (and a few bytes outside it).
fn random(rng: &mut Rng, count: usize) -> Vec<String> {
    const ALPHABET: &[&str] = &[
        "a",
        "b",
        "z",
        "0",
        "9",
        "A",
        "Z",
        ".",
        "_",
        "-",
        "/",
        ":",
        "@",
        "sha256:",
        HEX64,
        "localhost",
        "docker.io/",
        "\u{e9}",
        " ",
        "+",
    ];
    (0..count)
        .map(|_| {
            let len = rng.below(12);
            (0..len).map(|_| rng.pick(ALPHABET)).collect()
        })
        .collect()
}

/// One-character edits (replace, insert, delete) of valid references.
fn mutations(rng: &mut Rng, count: usize) -> Vec<String> {
    let seeds = [
        "nginx".to_string(),
        "127.0.0.1:5000/team/sub/app:v2".to_string(),
        format!("ghcr.io/o/app:v2@sha256:{HEX64}"),
        "localhost:5000/a__b/c--d/e.f:1.0-rc_1".to_string(),
        "registry-1.docker.io/nginx".to_string(),
        format!("a.b/c@sha256:{HEX64}"),
    ];
    const CHARS: &[&str] = &["a", "A", "0", ".", "_", "-", "/", ":", "@", "\u{e9}", ""];
    (0..count)
        .map(|_| {
            let seed = &seeds[rng.below(seeds.len())];
            let chars: Vec<char> = seed.chars().collect();
            let at = rng.below(chars.len() + 1);
            let with = rng.pick(CHARS);
            let mut s: String = chars[..at].iter().collect();
            s.push_str(with);
            let skip = if rng.below(2) == 0 {
                at
            } else {
                (at + 1).min(chars.len())
            };
            s.extend(&chars[skip..]);
            s
        })
        .collect()
}

/// Every string in the webhook fixtures (JSON inside JSON strings included), as it is
/// and under a registry host.
fn fixture_strings() -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => {
                if let Ok(inner) = serde_json::from_str::<serde_json::Value>(s) {
                    if inner.is_object() || inner.is_array() {
                        walk(&inner, out);
                    }
                }
                out.push(s.clone());
                out.push(format!("127.0.0.1:5000/{s}"));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            serde_json::Value::Object(o) => o.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for name in [
        "azure-1.json",
        "distribution-1.json",
        "distribution-2.json",
        "distribution-3.json",
        "distribution-4.json",
        "distribution-v2.8-push-capture.jsonl",
        "docker-hub-1.json",
        "docker-hub-2.json",
        "docker-hub-callback-1.json",
        "gcp-1.json",
        "gcp-2.json",
        "gcp-3.json",
        "gitea-1.json",
        "github-1.json",
        "github-2.json",
        "github-4.json",
        "harbor-1.json",
        "harbor-2.json",
        "quay-1.json",
    ] {
        let text = String::from_utf8(crate::source::fixture(name)).unwrap();
        for doc in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(doc) {
                walk(&v, &mut out);
            }
        }
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            walk(&v, &mut out);
        }
    }
    out
}

#[test]
fn agrees_with_oci_spec_on_a_generated_corpus() {
    let mut rng = Rng(0x00d0_c4a1_d5ee_d001);
    let mut corpus = combinations();
    corpus.extend(long_names());
    corpus.extend(random(&mut rng, 10_000));
    corpus.extend(mutations(&mut rng, 20_000));
    let (accepted, rules) = compare_all(&corpus);
    // The corpus must exercise both sides and both rules, or it proves little.
    assert!(
        accepted > corpus.len() / 20,
        "only {accepted} of {} accepted",
        corpus.len()
    );
    assert_eq!(
        rules.len(),
        2,
        "not every deliberate difference was hit: {rules:?}"
    );
}

#[test]
fn agrees_with_oci_spec_on_the_fixtures() {
    let strings = fixture_strings();
    assert!(
        strings.len() > 200,
        "only {} fixture strings",
        strings.len()
    );
    let (accepted, rules) = compare_all(&strings);
    // The fixtures' image names are among them, and parse.
    assert!(accepted > 20, "only {accepted} fixture strings parse");
    assert!(
        rules.is_empty(),
        "a fixture hit a deliberate difference: {rules:?}"
    );
}

#[test]
fn each_deliberate_difference_by_example() {
    // ascii-tag
    let s = "app:v\u{e9}";
    assert!(oracle(s).is_ok() && parse_full(s).is_err());
    assert!(refused_on_purpose(&oracle(s).unwrap())
        .unwrap()
        .starts_with("ascii-tag"));
    // normalised-length: oci-spec measured `x…` before folding the alias; its normal
    // form `docker.io/library/x…` is 258 characters and was refused when parsed again.
    let s = format!("registry-1.docker.io/{}", "x".repeat(250));
    let accepted = oracle(&s).unwrap();
    assert!(oracle(&accepted.0.to_string()).is_err());
    assert!(parse_full(&s).is_err());
    assert!(refused_on_purpose(&accepted)
        .unwrap()
        .starts_with("normalised-length"));
    // Everything else dockhand refused on top of oci-spec, it still refuses.
    for s in ["K/e:b", "w_g.d/m", "a.b:123456/app", "Upper/Case"] {
        assert!(oracle(s).is_err() && parse_full(s).is_err(), "{s}");
    }
}
