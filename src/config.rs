//! `dockhand.toml`: what a user writes, validated so that every error names its key.
//!
//! Parsing is two steps: serde reads the file into the raw `File*` structs (unknown keys are
//! refused, so a typo is an error rather than a silently ignored setting), then
//! [`Config::from_toml`] checks everything that serde cannot (references, globs, secrets,
//! cross references between hooks and targets) and builds the [`Config`] the daemon uses.

use crate::reference::{ImageName, ReferenceError};
use crate::secret::Secret;
use serde::Deserialize;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where `dockhand` looks for its config when neither `--config` nor `DOCKHAND_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "dockhand.toml";

/// A config problem, with the key it is about and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed or has an unknown key or a wrong type (toml says where).
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// toml's message, with line and column.
        message: String,
    },
    /// A key has a value dockhand cannot use.
    #[error("{key}: {message}")]
    Invalid {
        /// The key, e.g. `targets[0].image` or `hooks.registry.token_file`.
        key: String,
        /// What is wrong and what to do.
        message: String,
    },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[[hooks]]`, in file order.
    pub hooks: Vec<HookConfig>,
    /// `[[targets]]`, in file order.
    pub targets: Vec<TargetConfig>,
}

/// `[server]`: where to listen and where to keep state.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `listen`: address for hooks and the API (default `127.0.0.1:8787`).
    pub listen: SocketAddr,
    /// `state`: the SQLite state file (default `dockhand.db`).
    pub state: PathBuf,
    /// `body_limit`: largest hook body accepted, in bytes (default 1 MiB).
    pub body_limit: usize,
    /// `public_url`: how others reach this dockhand (for links in callbacks), if set.
    pub public_url: Option<String>,
    /// `admin_token` (or `_file`, `_env`): the bearer token of `/api`. Without it the API
    /// is off. It is never a hook's secret.
    pub admin_token: Option<Secret>,
    /// `dedupe_window`: how long an event without a delivery id is remembered, so that
    /// a resent one (same source, image, tag, digest) makes no second deploy (default 60s).
    pub dedupe_window: Duration,
    /// `shutdown_grace`: how long running deploys may take to finish on SIGTERM (default 60s).
    pub shutdown_grace: Duration,
    /// `retry_attempts`: how often a deploy is tried when the engine is unreachable or
    /// fails with a 5xx before anything changed (default 5; backoff 2s doubling, max 60s).
    pub retry_attempts: u32,
    /// `tls_cert` and `tls_key`: serve HTTPS with this PEM pair (reloaded when it changes).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `max_connections`: connections served at once (default 256).
    pub max_connections: usize,
    /// `header_timeout`: time a client has for the TLS handshake and each request's
    /// headers (default 10s).
    pub header_timeout: Duration,
    /// `body_timeout`: time a client has to send a request body (default 30s).
    pub body_timeout: Duration,
    /// `max_header_bytes`: largest request head (default 16 KiB; at least 8 KiB).
    pub max_header_bytes: usize,
    /// `auth_failures`: failed authentications per minute per client address before it is
    /// answered 429 (default 20; 0 turns the limit off).
    pub auth_failures: u32,
    /// `trusted_proxies`: CIDRs whose `X-Forwarded-For` is believed (default none).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// Which payload format a hook speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// CNCF Distribution (registry v2) notifications.
    Distribution,
    /// Docker Hub repository webhooks.
    Dockerhub,
    /// `{"image","tag","digest"}` from a CI job.
    Generic,
    /// GitHub `package` / `registry_package` webhooks (ghcr.io), HMAC-signed.
    Github,
    /// Gitea and Forgejo package webhooks, HMAC-signed.
    Gitea,
    /// Harbor webhooks, Default or CloudEvents format.
    Harbor,
    /// Quay "Repository Push" notifications.
    Quay,
    /// Azure Container Registry webhooks.
    Acr,
    /// Google Artifact Registry notifications through a Pub/Sub push subscription.
    Gar,
}

impl SourceKind {
    /// The name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Distribution => "distribution",
            SourceKind::Dockerhub => "dockerhub",
            SourceKind::Generic => "generic",
            SourceKind::Github => "github",
            SourceKind::Gitea => "gitea",
            SourceKind::Harbor => "harbor",
            SourceKind::Quay => "quay",
            SourceKind::Acr => "acr",
            SourceKind::Gar => "gar",
        }
    }
}

/// One `[[hooks]]` entry: an URL (`POST /hooks/{name}`), a payload format and a secret.
#[derive(Debug, Clone)]
pub struct HookConfig {
    /// `name`: the last URL segment.
    pub name: String,
    /// `source`: the payload format.
    pub source: SourceKind,
    /// The secret from `token`, `token_file` or `token_env`.
    pub token: Secret,
    /// `allow_ips`: when set, only these addresses (CIDRs) may call the hook; others get 403.
    pub allow_ips: Option<Vec<ipnet::IpNet>>,
}

/// What kind of thing a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// A Swarm service, updated in place by the engine's rolling update.
    Service,
    /// A plain container, replaced by a new one made from its config.
    Container,
}

/// One `[[targets]]` entry: something that runs an image and should follow its pushes.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// `name`: how dockhand and its users refer to the target.
    pub name: String,
    /// `kind`.
    pub kind: TargetKind,
    /// `service` or `container`: the engine's name for the thing to update.
    pub object: String,
    /// `image`: the repository whose pushes deploy here.
    pub image: ImageName,
    /// `tags`: glob over pushed tags (default `*`).
    pub tags: glob::Pattern,
    /// `hooks`: which hooks may deploy this target (`None` = every hook).
    pub hooks: Option<Vec<String>>,
    /// `timeout`: how long a rollout may take before it is called failed (default 5m).
    pub timeout: Duration,
    /// `healthy_for`: for a container without a HEALTHCHECK, how long the new one must keep
    /// running before it counts as up (default 3s).
    pub healthy_for: Duration,
    /// `stop_timeout`: grace given to the old container on stop (default 10s).
    pub stop_timeout: Duration,
    /// `dry_run`: deploys to this target are only written to their log (what would be
    /// updated, from which image to which) and end `dry_run`; the engine is never called
    /// for it (default false; `dockhand serve --dry-run` sets it on every target).
    pub dry_run: bool,
    /// `update_order` (containers only): whether the old container stops before the new
    /// one starts (default) or only once the new one is up.
    pub update_order: UpdateOrder,
}

/// How a container target's old container makes way for the new one. The words are the
/// ones of `docker service update --update-order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    /// Stop the old container, then start the new one: the only way when it publishes a
    /// host port (two containers cannot bind one port), with a gap in between.
    #[default]
    StopFirst,
    /// Start the new container beside the old one, wait until it is up, then stop the
    /// old one: no gap for clients that reach it by name on a Docker network (a reverse
    /// proxy in the same network). Refused at deploy time for a container that publishes
    /// host ports or uses the host's network.
    StartFirst,
}

impl TargetConfig {
    /// Whether `hook` may deploy this target.
    pub fn accepts_hook(&self, hook: &str) -> bool {
        self.hooks
            .as_ref()
            .is_none_or(|hooks| hooks.iter().any(|h| h == hook))
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: FileServer,
    #[serde(default)]
    hooks: Vec<FileHook>,
    #[serde(default)]
    targets: Vec<FileTarget>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileServer {
    listen: Option<String>,
    state: Option<PathBuf>,
    body_limit: Option<usize>,
    public_url: Option<String>,
    admin_token: Option<String>,
    admin_token_file: Option<PathBuf>,
    admin_token_env: Option<String>,
    #[serde(default, with = "humantime_serde")]
    dedupe_window: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    shutdown_grace: Option<Duration>,
    retry_attempts: Option<u32>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    max_connections: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    header_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    body_timeout: Option<Duration>,
    max_header_bytes: Option<usize>,
    auth_failures: Option<u32>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHook {
    name: String,
    source: SourceKind,
    token: Option<String>,
    token_file: Option<PathBuf>,
    token_env: Option<String>,
    allow_ips: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTarget {
    name: String,
    kind: TargetKind,
    service: Option<String>,
    container: Option<String>,
    image: String,
    tags: Option<String>,
    hooks: Option<Vec<String>>,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    healthy_for: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    stop_timeout: Option<Duration>,
    #[serde(default)]
    dry_run: bool,
    update_order: Option<UpdateOrder>,
}

impl Config {
    /// Reads and validates a config file. Relative `token_file` paths are relative to it.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml(&text, &path.display().to_string(), base)
    }

    /// The embedded default: listen on 127.0.0.1:8787, state in `dockhand.db`, no hooks
    /// and no targets. `dockhand serve` uses it when no config file exists.
    pub fn embedded_default() -> Config {
        Self::from_toml("", "<embedded default>", Path::new("."))
            .unwrap_or_else(|e| unreachable!("the empty config is valid: {e}"))
    }

    /// Validates config text. `origin` names it in errors; `base` resolves relative paths.
    pub fn from_toml(text: &str, origin: &str, base: &Path) -> Result<Config, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| syntax_error(origin, text, &e))?;

        let server = validate_server(file.server, base)?;
        let mut hooks = Vec::new();
        let mut hook_names = HashSet::new();
        for (i, h) in file.hooks.into_iter().enumerate() {
            let key = format!("hooks[{i}]");
            let hook = validate_hook(h, &key, base)?;
            if !hook_names.insert(hook.name.clone()) {
                return Err(invalid(
                    format!("{key}.name"),
                    format!(
                        "hook '{}' is defined twice; hook names must be unique",
                        hook.name
                    ),
                ));
            }
            hooks.push(hook);
        }
        if let Some(admin) = &server.admin_token {
            if let Some(h) = hooks.iter().find(|h| h.token.matches(admin.expose())) {
                return Err(invalid(
                    "server.admin_token",
                    format!("is the same as hook '{}''s secret; the API token must be its own (a hook secret travels in registry configs and URLs)", h.name),
                ));
            }
        }
        let mut targets = Vec::new();
        let mut target_names = HashSet::new();
        for (i, t) in file.targets.into_iter().enumerate() {
            let key = format!("targets[{i}]");
            let target = validate_target(t, &key, &hook_names)?;
            if !target_names.insert(target.name.clone()) {
                return Err(invalid(
                    format!("{key}.name"),
                    format!(
                        "target '{}' is defined twice; target names must be unique",
                        target.name
                    ),
                ));
            }
            targets.push(target);
        }
        Ok(Config {
            server,
            hooks,
            targets,
        })
    }

    /// The hook called `name`.
    pub fn hook(&self, name: &str) -> Option<&HookConfig> {
        self.hooks.iter().find(|h| h.name == name)
    }

    /// The target called `name`.
    pub fn target(&self, name: &str) -> Option<&TargetConfig> {
        self.targets.iter().find(|t| t.name == name)
    }

    /// Makes every target a dry run (`dockhand serve --dry-run`): hooks, policy, the queue
    /// and the state file work as usual, and no deploy calls the engine.
    pub fn dry_run_all(&mut self) {
        for t in &mut self.targets {
            t.dry_run = true;
        }
    }

    /// Whether there are targets and every one of them is a dry run: then nothing in
    /// dockhand needs the engine (start-up does not inspect it, `/healthz` does not ask it).
    pub fn all_dry_run(&self) -> bool {
        !self.targets.is_empty() && self.targets.iter().all(|t| t.dry_run)
    }
}

/// toml's own `Display` quotes the offending line, which may hold a secret; this keeps the
/// position and the message only.
fn syntax_error(origin: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    let position = e.span().map(|span| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        format!("line {line}, column {column}: ")
    });
    ConfigError::Syntax {
        path: origin.to_string(),
        message: format!("{}{}", position.unwrap_or_default(), e.message().trim_end()),
    }
}

/// Parses CIDRs (`10.0.0.0/8`) or single addresses (`127.0.0.1`).
fn parse_nets(key: &str, values: &[String]) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    values
        .iter()
        .map(|v| {
            v.parse::<ipnet::IpNet>()
                .or_else(|_| v.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    invalid(
                        key,
                        format!("'{v}' is not an address or CIDR range (e.g. \"10.0.0.0/8\")"),
                    )
                })
        })
        .collect()
}

fn validate_server(s: FileServer, base: &Path) -> Result<ServerConfig, ConfigError> {
    let listen = s.listen.as_deref().unwrap_or("127.0.0.1:8787");
    let listen = listen.parse().map_err(|_| {
        invalid(
            "server.listen",
            format!("'{listen}' is not an address; write it as IP:PORT, e.g. \"0.0.0.0:8787\""),
        )
    })?;
    let body_limit = s.body_limit.unwrap_or(1024 * 1024);
    if body_limit == 0 {
        return Err(invalid("server.body_limit", "must be at least 1 byte"));
    }
    if let Some(url) = &s.public_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                "server.public_url",
                "must start with http:// or https://",
            ));
        }
    }
    let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
    let tls = match (s.tls_cert, s.tls_key) {
        (Some(c), Some(k)) => Some((resolve(c), resolve(k))),
        (None, None) => None,
        (Some(_), None) => {
            return Err(invalid(
                "server.tls_key",
                "is missing: tls_cert needs its key (PEM)",
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                "server.tls_cert",
                "is missing: tls_key needs its certificate (PEM)",
            ))
        }
    };
    let admin_token = load_secret(
        "server",
        "admin_token",
        SecretSource {
            value: s.admin_token,
            file: s.admin_token_file,
            env: s.admin_token_env,
        },
        base,
    )?;
    Ok(ServerConfig {
        listen,
        state: s.state.unwrap_or_else(|| PathBuf::from("dockhand.db")),
        body_limit,
        public_url: s.public_url.map(|u| u.trim_end_matches('/').to_string()),
        admin_token,
        dedupe_window: s.dedupe_window.unwrap_or(Duration::from_secs(60)),
        shutdown_grace: s.shutdown_grace.unwrap_or(Duration::from_secs(60)),
        retry_attempts: s.retry_attempts.unwrap_or(5).max(1),
        tls,
        max_connections: s.max_connections.unwrap_or(256).max(1),
        header_timeout: s.header_timeout.unwrap_or(Duration::from_secs(10)),
        body_timeout: s.body_timeout.unwrap_or(Duration::from_secs(30)),
        max_header_bytes: s.max_header_bytes.unwrap_or(16 * 1024).max(8 * 1024),
        auth_failures: s.auth_failures.unwrap_or(20),
        trusted_proxies: parse_nets("server.trusted_proxies", &s.trusted_proxies)?,
    })
}

/// A name that is safe in a URL path segment and a log line.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn validate_hook(h: FileHook, key: &str, base: &Path) -> Result<HookConfig, ConfigError> {
    if !valid_name(&h.name) {
        return Err(invalid(
            format!("{key}.name"),
            format!(
                "'{}' is not a usable hook name: use 1-64 letters, digits, '-', '_' or '.'",
                h.name
            ),
        ));
    }
    let key = format!("hooks.{}", h.name);
    let token = load_secret(
        &key,
        "token",
        SecretSource {
            value: h.token,
            file: h.token_file,
            env: h.token_env,
        },
        base,
    )?
    .ok_or_else(|| {
        invalid(
            &key,
            "has no secret: set one of token, token_file or token_env (a hook without a secret would let anyone deploy)",
        )
    })?;
    let allow_ips = match &h.allow_ips {
        Some(list) => Some(parse_nets(&format!("{key}.allow_ips"), list)?),
        None => None,
    };
    Ok(HookConfig {
        name: h.name,
        source: h.source,
        token,
        allow_ips,
    })
}

/// The three ways a secret can be given: `NAME`, `NAME_file`, `NAME_env`.
struct SecretSource {
    value: Option<String>,
    file: Option<PathBuf>,
    env: Option<String>,
}

/// Loads the secret `NAME` of the table at `key` from whichever of `NAME`, `NAME_file` and
/// `NAME_env` is set (at most one may be). `None` when none is.
fn load_secret(
    key: &str,
    name: &str,
    source: SecretSource,
    base: &Path,
) -> Result<Option<Secret>, ConfigError> {
    let secret = match (source.value, source.file, source.env) {
        (None, None, None) => return Ok(None),
        (Some(t), None, None) => Secret::new(t),
        (None, Some(file), None) => {
            let path = if file.is_absolute() {
                file
            } else {
                base.join(file)
            };
            let text = std::fs::read_to_string(&path).map_err(|e| {
                invalid(
                    format!("{key}.{name}_file"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            Secret::new(text.trim_end_matches(['\r', '\n']))
        }
        (None, None, Some(var)) => Secret::new(std::env::var(&var).map_err(|_| {
            invalid(
                format!("{key}.{name}_env"),
                format!("environment variable {var} is not set (or not UTF-8); export it before starting dockhand"),
            )
        })?),
        _ => {
            return Err(invalid(
                key,
                format!("sets more than one of {name}, {name}_file and {name}_env; keep exactly one"),
            ))
        }
    };
    if secret.is_empty() {
        return Err(invalid(
            format!("{key}.{name}"),
            "the secret is empty; give it a value (e.g. `openssl rand -hex 32`)",
        ));
    }
    Ok(Some(secret))
}

fn validate_target(
    t: FileTarget,
    key: &str,
    hook_names: &HashSet<String>,
) -> Result<TargetConfig, ConfigError> {
    if !valid_name(&t.name) {
        return Err(invalid(
            format!("{key}.name"),
            format!(
                "'{}' is not a usable target name: use 1-64 letters, digits, '-', '_' or '.'",
                t.name
            ),
        ));
    }
    let key = format!("targets.{}", t.name);
    let object = match (t.kind, t.service, t.container) {
        (TargetKind::Service, Some(s), None) => s,
        (TargetKind::Container, None, Some(c)) => c,
        (TargetKind::Service, _, Some(_)) => {
            return Err(invalid(
                format!("{key}.container"),
                "kind = \"service\" takes `service = \"NAME\"`, not `container`",
            ))
        }
        (TargetKind::Container, Some(_), _) => {
            return Err(invalid(
                format!("{key}.service"),
                "kind = \"container\" takes `container = \"NAME\"`, not `service`",
            ))
        }
        (TargetKind::Service, None, None) => {
            return Err(invalid(
                format!("{key}.service"),
                "is missing: name the Swarm service to update, e.g. service = \"web\"",
            ))
        }
        (TargetKind::Container, None, None) => {
            return Err(invalid(
                format!("{key}.container"),
                "is missing: name the container to replace, e.g. container = \"web\"",
            ))
        }
    };
    if object.is_empty() || object.len() > 255 || object.contains('/') {
        return Err(invalid(
            format!("{key}.{}", kind_key(t.kind)),
            format!("'{object}' is not a valid name"),
        ));
    }
    let image = ImageName::parse(&t.image).map_err(|e| {
        let hint = match e {
            ReferenceError::HasTag(_) => " (put the tag rule in `tags`, e.g. tags = \"v*\")",
            _ => "",
        };
        invalid(format!("{key}.image"), format!("{e}{hint}"))
    })?;
    let tags_src = t.tags.unwrap_or_else(|| "*".to_string());
    let tags = glob::Pattern::new(&tags_src).map_err(|e| {
        invalid(
            format!("{key}.tags"),
            format!("'{tags_src}' is not a valid glob: {e}"),
        )
    })?;
    if t.update_order.is_some() && t.kind == TargetKind::Service {
        return Err(invalid(
            format!("{key}.update_order"),
            "is for container targets; a Swarm service updates in its own order \
             (docker service update --update-order start-first SERVICE)",
        ));
    }
    if let Some(hooks) = &t.hooks {
        for h in hooks {
            if !hook_names.contains(h) {
                return Err(invalid(
                    format!("{key}.hooks"),
                    format!("names hook '{h}', which is not defined in [[hooks]]"),
                ));
            }
        }
    }
    Ok(TargetConfig {
        name: t.name,
        kind: t.kind,
        object,
        image,
        tags,
        hooks: t.hooks,
        timeout: t.timeout.unwrap_or(Duration::from_secs(300)),
        healthy_for: t.healthy_for.unwrap_or(Duration::from_secs(3)),
        stop_timeout: t.stop_timeout.unwrap_or(Duration::from_secs(10)),
        dry_run: t.dry_run,
        update_order: t.update_order.unwrap_or_default(),
    })
}

fn kind_key(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::Service => "service",
        TargetKind::Container => "container",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[server]
listen = "127.0.0.1:8787"   # default
state  = "dockhand.db"      # SQLite file; default

[[hooks]]
name   = "registry"          # URL: POST /hooks/registry
source = "distribution"      # or "dockerhub", "generic"
token  = "s3cret"            # or token_file = "...", or token_env = "..."

[[targets]]
name    = "web"
kind    = "service"          # a Swarm service; "container" for a plain container
service = "web"              # the service's name (kind = "container": container = "NAME")
image   = "127.0.0.1:5000/app"
tags    = "v*"               # glob over tags; default "*"
hooks   = ["registry"]       # default: every hook
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, "test.toml", Path::new("."))
    }

    #[test]
    fn the_documented_example_parses() {
        let c = parse(EXAMPLE).unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8787");
        assert_eq!(c.server.body_limit, 1024 * 1024);
        let t = c.target("web").unwrap();
        assert_eq!(t.kind, TargetKind::Service);
        assert_eq!(t.object, "web");
        assert_eq!(t.image.to_string(), "127.0.0.1:5000/app");
        assert!(t.tags.matches("v2") && !t.tags.matches("latest"));
        assert!(t.accepts_hook("registry") && !t.accepts_hook("other"));
        assert!(c.hook("registry").unwrap().token.matches(b"s3cret"));
        assert_eq!(t.update_order, UpdateOrder::StopFirst);
        let c = parse("[[targets]]\nname = \"web\"\nkind = \"container\"\ncontainer = \"web\"\nimage = \"nginx\"\nupdate_order = \"start-first\"\n").unwrap();
        assert_eq!(
            c.target("web").unwrap().update_order,
            UpdateOrder::StartFirst
        );
    }

    #[test]
    fn the_embedded_default_is_empty_and_local() {
        let c = Config::embedded_default();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8787");
        assert_eq!(c.server.state, PathBuf::from("dockhand.db"));
        assert!(c.hooks.is_empty() && c.targets.is_empty());
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_key_and_say_what_to_do() {
        let e = err("[[hooks]]\nname = \"h\"\nsource = \"distribution\"\n");
        assert!(e.starts_with("hooks.h:") && e.contains("token"), "{e}");

        let e = err("[[targets]]\nname = \"web\"\nkind = \"service\"\nimage = \"app\"\n");
        assert!(e.starts_with("targets.web.service:"), "{e}");

        let e = err("[[targets]]\nname = \"web\"\nkind = \"container\"\ncontainer = \"web\"\nimage = \"nginx:1.25\"\n");
        assert!(
            e.starts_with("targets.web.image:") && e.contains("tags"),
            "{e}"
        );

        let e = err("[[targets]]\nname = \"web\"\nkind = \"container\"\ncontainer = \"web\"\nimage = \"nginx\"\nhooks = [\"nope\"]\n");
        assert!(
            e.starts_with("targets.web.hooks:") && e.contains("nope"),
            "{e}"
        );

        let e = err("[[targets]]\nname = \"web\"\nkind = \"container\"\ncontainer = \"web\"\nimage = \"nginx\"\ntags = \"[\"\n");
        assert!(e.starts_with("targets.web.tags:"), "{e}");

        let e = err("[server]\nlisten = \"8787\"\n");
        assert!(e.starts_with("server.listen:"), "{e}");

        let e = err("[[targets]]\nname = \"web\"\nkind = \"service\"\nservice = \"web\"\nimage = \"nginx\"\nupdate_order = \"start-first\"\n");
        assert!(
            e.starts_with("targets.web.update_order:") && e.contains("--update-order"),
            "{e}"
        );
        let e = err("[[targets]]\nname = \"web\"\nkind = \"container\"\ncontainer = \"web\"\nimage = \"nginx\"\nupdate_order = \"sideways\"\n");
        assert!(e.contains("start-first"), "{e}");

        let e = err("[[hooks]]\nname = \"h\"\nsource = \"distribution\"\ntoken_env = \"DOCKHAND_TEST_SURELY_UNSET\"\n");
        assert!(e.contains("DOCKHAND_TEST_SURELY_UNSET"), "{e}");
    }

    #[test]
    fn typos_and_unknown_sources_are_errors_with_a_position() {
        let e = err("[server]\nlisten = \"127.0.0.1:1\"\nstat = \"x.db\"\n");
        assert!(e.contains("stat") && e.contains("line 3"), "{e}");
        let e = err("[[hooks]]\nname = \"h\"\nsource = \"gitlab\"\ntoken = \"x\"\n");
        assert!(e.contains("gitlab") && e.contains("distribution"), "{e}");
    }

    #[test]
    fn secrets_never_appear_in_errors() {
        let e = err("[[hooks]]\nname = \"h\"\nsource = \"distribution\"\ntoken = \"topsecret\"\ntoken_env = \"X\"\n");
        assert!(!e.contains("topsecret"), "{e}");
        let e = err("[[hooks]]\nname = \"h\"\nsource = \"distribution\"\ntoken = \"topsecret\"\n[[hooks]]\nname = \"h\"\nsource = \"generic\"\ntoken = \"topsecret\"\n");
        assert!(e.contains("twice") && !e.contains("topsecret"), "{e}");
    }

    #[test]
    fn syntax_errors_do_not_quote_the_line() {
        let e = err("[[hooks]]\nname = \"h\"\nsource = \"generic\"\ntoken = \"topsecret\" oops\n");
        assert!(e.contains("line 4") && !e.contains("topsecret"), "{e}");
    }

    #[test]
    fn admin_token_is_optional_and_never_a_hook_secret() {
        assert!(Config::embedded_default().server.admin_token.is_none());
        let c = parse("[server]\nadmin_token = \"adm\"\n[[hooks]]\nname = \"h\"\nsource = \"generic\"\ntoken = \"x\"\n").unwrap();
        assert!(c.server.admin_token.unwrap().matches(b"adm"));
        let e = err("[server]\nadmin_token = \"same\"\n[[hooks]]\nname = \"h\"\nsource = \"generic\"\ntoken = \"same\"\n");
        assert!(
            e.starts_with("server.admin_token:") && !e.contains("\"same\""),
            "{e}"
        );
    }

    #[test]
    fn dry_run_is_per_target_and_serve_dry_run_sets_it_on_all() {
        let two = "[[targets]]\nname = \"a\"\nkind = \"service\"\nservice = \"a\"\nimage = \"app\"\ndry_run = true\n\
                   [[targets]]\nname = \"b\"\nkind = \"container\"\ncontainer = \"b\"\nimage = \"app\"\n";
        let mut c = parse(two).unwrap();
        assert!(c.target("a").unwrap().dry_run);
        assert!(!c.target("b").unwrap().dry_run, "default is a real deploy");
        assert!(!c.all_dry_run());
        c.dry_run_all();
        assert!(c.targets.iter().all(|t| t.dry_run) && c.all_dry_run());
        // No targets: nothing is a dry run, so /healthz still asks the engine.
        let mut empty = Config::embedded_default();
        empty.dry_run_all();
        assert!(!empty.all_dry_run());

        let e = err("[[targets]]\nname = \"a\"\nkind = \"service\"\nservice = \"a\"\nimage = \"app\"\ndry_run = \"yes\"\n");
        assert!(e.contains("line 6") && e.contains("bool"), "{e}");
        let e = err("[[targets]]\nname = \"a\"\nkind = \"service\"\nservice = \"a\"\nimage = \"app\"\ndryrun = true\n");
        assert!(e.contains("dryrun") && e.contains("dry_run"), "{e}");
    }

    #[test]
    fn token_file_is_read_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hook.token"), "from-file\n").unwrap();
        let c = Config::from_toml(
            "[[hooks]]\nname = \"h\"\nsource = \"generic\"\ntoken_file = \"hook.token\"\n",
            "t",
            dir.path(),
        )
        .unwrap();
        assert!(c.hook("h").unwrap().token.matches(b"from-file"));
    }
}
