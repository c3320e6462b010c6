//! The `dockhand` command line. All logic lives in the library; this only parses arguments.

use clap::{Parser, Subcommand};
use dockhand::config::{Config, DEFAULT_CONFIG_PATH};
use dockhand::engine::Engine;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Push-to-deploy for Docker: registry webhooks in, safe rollouts out.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: receive hooks and deploy.
    Serve {
        /// The config file [default: ./dockhand.toml if it exists, else the embedded default]
        #[arg(long, short, env = "DOCKHAND_CONFIG")]
        config: Option<PathBuf>,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
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
            Command::Serve { config } => {
                let (config, origin) = match load(config) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("dockhand: {e}");
                        return ExitCode::from(1);
                    }
                };
                tracing::info!("config: {origin}");
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
        }
    })
}
