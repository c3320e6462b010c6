//! The `dockhand` command line. All logic lives in the library; this only parses arguments.

use clap::{Parser, Subcommand};
use dockhand::config::{Config, DEFAULT_CONFIG_PATH};
use dockhand::engine::Engine;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Push-to-deploy for Docker: registry webhooks in, safe rollouts out.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How the client commands reach a running daemon.
#[derive(clap::Args)]
struct Remote {
    /// The daemon's URL
    #[arg(long, env = "DOCKHAND_URL", default_value = "http://127.0.0.1:8787")]
    url: String,
    /// The API token (server.admin_token)
    #[arg(long, env = "DOCKHAND_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print JSON instead of tables
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: receive hooks and deploy.
    Serve {
        /// The config file [default: ./dockhand.toml if it exists, else the embedded default]
        #[arg(long, short, env = "DOCKHAND_CONFIG")]
        config: Option<PathBuf>,
        /// Deploy nothing: every target is a dry run (as with `dry_run = true`). Hooks,
        /// policy, the queue and the state file work as usual; each deployment's log says
        /// what would be done, it ends `dry_run`, and the engine is never called
        #[arg(long)]
        dry_run: bool,
    },
    /// Validate the config and show what the engine knows of each target.
    ///
    /// Exit status: 0 all good; 1 the config is invalid; 2 the config is valid but the
    /// engine is unreachable or a target does not exist.
    Check {
        /// The config file [default: ./dockhand.toml]
        #[arg(long, short, env = "DOCKHAND_CONFIG")]
        config: Option<PathBuf>,
    },
    /// What each target runs now, and its last deploy (from a running daemon).
    Status {
        #[command(flatten)]
        remote: Remote,
    },
    /// Past deployments, newest first.
    History {
        /// Only this target
        target: Option<String>,
        /// Only this state (queued, running, succeeded, failed, rolled_back, ...)
        #[arg(long)]
        state: Option<String>,
        /// At most this many
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        remote: Remote,
    },
    /// A deployment's log.
    Logs {
        /// Deployment id
        id: i64,
        /// Follow it live until the deployment ends (exit 1 if it did not succeed)
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Deploy a tag (or digest) to a target, through the daemon's queue.
    Deploy {
        /// Target name
        target: String,
        /// Tag to deploy
        tag: Option<String>,
        /// Pin this digest (sha256:...)
        #[arg(long)]
        digest: Option<String>,
        /// Follow the deploy to its end (exit 1 if it did not succeed)
        #[arg(long, short)]
        wait: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// TLS helpers.
    Tls {
        #[command(subcommand)]
        command: TlsCommand,
    },
    /// Deploy the target's previous successful image again.
    Rollback {
        /// Target name
        target: String,
        /// Follow the deploy to its end (exit 1 if it did not succeed)
        #[arg(long, short)]
        wait: bool,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Subcommand)]
enum TlsCommand {
    /// Write a private key and a self-signed certificate for HOST names or addresses.
    SelfSigned {
        /// A DNS name or IP address the certificate is for (repeat for more)
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        /// Where to write the certificate
        #[arg(long, default_value = "dockhand.crt")]
        cert: PathBuf,
        /// Where to write the key (mode 0600)
        #[arg(long, default_value = "dockhand.key")]
        key: PathBuf,
    },
}

/// Runs a client command and turns its result into an exit status.
async fn remote_command<F, Fut>(remote: Remote, f: F) -> ExitCode
where
    F: FnOnce(dockhand::client::Client, dockhand::cli::Output) -> Fut,
    Fut: std::future::Future<Output = Result<u8, dockhand::client::ClientError>>,
{
    let client = dockhand::client::Client::new(&remote.url, remote.token);
    match f(client, dockhand::cli::Output { json: remote.json }).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("dockhand: {e}");
            ExitCode::from(dockhand::cli::EXIT_API_ERROR)
        }
    }
}

fn load(path: Option<PathBuf>) -> Result<(Config, String), String> {
    match path {
        Some(p) => Config::load(&p)
            .map(|c| (c, p.display().to_string()))
            .map_err(|e| e.to_string()),
        None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
            Config::load(Path::new(DEFAULT_CONFIG_PATH))
                .map(|c| (c, DEFAULT_CONFIG_PATH.to_string()))
                .map_err(|e| e.to_string())
        }
        None => Ok((Config::embedded_default(), "<embedded default>".to_string())),
    }
}

/// `RUST_LOG` as `level` or `target=level,...` lists (e.g. `dockhand=debug,hyper=warn`);
/// `info` if it is unset or unreadable. A `Targets` filter rather than an `EnvFilter`:
/// the latter's span and field matching pulls in a regex engine, ~200 KB of code that
/// stays resident in every process (see scripts/bench/notes.md, "Idle RSS").
fn log_filter() -> Targets {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| s.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colour codes only for a terminal: in a file or journald they are noise.
                .with_ansi(std::io::stderr().is_terminal())
                .with_filter(log_filter()),
        )
        .init();

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dockhand: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::Serve { config, dry_run } => {
                let (mut config, origin) = match load(config) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("dockhand: {e}");
                        return ExitCode::from(1);
                    }
                };
                tracing::info!("config: {origin}");
                if dry_run {
                    tracing::info!("--dry-run: every target is a dry run; nothing will be deployed");
                    config.dry_run_all();
                }
                match dockhand::app::serve(config).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("dockhand: {e}");
                        ExitCode::from(1)
                    }
                }
            }
            Command::Check { config } => {
                let (config, origin) = match load(config) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("dockhand: {e}");
                        return ExitCode::from(1);
                    }
                };
                let engine = Engine::from_env();
                let reports = dockhand::check::inspect_targets(&engine, &config).await;
                print!("{}", dockhand::check::render(&config, &origin, &reports));
                match reports {
                    Ok(r) if r.iter().all(|t| t.found()) => ExitCode::SUCCESS,
                    _ => ExitCode::from(2),
                }
            }
            Command::Status { remote } => {
                remote_command(
                    remote,
                    |c, o| async move { dockhand::cli::status(&c, o).await },
                )
                .await
            }
            Command::History {
                target,
                state,
                limit,
                remote,
            } => {
                remote_command(remote, |c, o| async move {
                    dockhand::cli::history(&c, target.as_deref(), state.as_deref(), limit, o).await
                })
                .await
            }
            Command::Logs { id, follow, remote } => {
                remote_command(remote, |c, o| async move {
                    dockhand::cli::logs(&c, id, follow, o).await
                })
                .await
            }
            Command::Deploy {
                target,
                tag,
                digest,
                wait,
                remote,
            } => {
                if tag.is_none() && digest.is_none() {
                    eprintln!("dockhand: give a TAG or --digest");
                    return ExitCode::from(dockhand::cli::EXIT_API_ERROR);
                }
                let request = dockhand::api::DeployRequest { tag, digest };
                remote_command(remote, |c, o| async move {
                    dockhand::cli::deploy(&c, &target, Some(request), wait, o).await
                })
                .await
            }
            Command::Tls {
                command: TlsCommand::SelfSigned { hosts, cert, key },
            } => match dockhand::http::tls::write_self_signed(&hosts, &cert, &key) {
                Ok(_) => {
                    println!(
                        "wrote {} and {} for {}\nuse them with:\n  [server]\n  tls_cert = \"{}\"\n  tls_key  = \"{}\"\nand give the registry {} to trust.",
                        cert.display(),
                        key.display(),
                        hosts.join(", "),
                        cert.display(),
                        key.display(),
                        cert.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("dockhand: {e}");
                    ExitCode::from(1)
                }
            },
            Command::Rollback {

                target,
                wait,
                remote,
            } => {
                remote_command(remote, |c, o| async move {
                    dockhand::cli::deploy(&c, &target, None, wait, o).await
                })
                .await
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_takes_dry_run() {
        let dry = |args: &[&str]| match Cli::try_parse_from(args).map(|c| c.command) {
            Ok(Command::Serve { dry_run, config }) => Some((dry_run, config)),
            _ => None,
        };
        assert_eq!(dry(&["dockhand", "serve"]), Some((false, None)));
        assert_eq!(
            dry(&["dockhand", "serve", "--dry-run", "-c", "x.toml"]),
            Some((true, Some(PathBuf::from("x.toml"))))
        );
        assert!(Cli::try_parse_from(["dockhand", "serve", "--dry-run=maybe"]).is_err());
        assert!(
            Cli::try_parse_from(["dockhand", "check", "--dry-run"]).is_err(),
            "check changes nothing anyway"
        );
    }
}
