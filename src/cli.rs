//! The client side of the CLI: `status`, `history`, `logs`, `deploy`, `rollback`, talking
//! to a running daemon through [`crate::client`]. Tables for people, `--json` for scripts.
//!
//! Exit status: 0 success; 1 a deploy waited on (`--wait`, `logs --follow`) did not end
//! succeeded, skipped or dry_run; 2 dockhand could not be reached or refused the request.

use crate::api::DeployRequest;
use crate::client::{Client, ClientError};
use crate::store::{DeployState, Deployment, LogLine};
use std::io::Write;

/// Exit status for a deploy that ended badly.
pub const EXIT_DEPLOY_FAILED: u8 = 1;
/// Exit status for an API or connection error.
pub const EXIT_API_ERROR: u8 = 2;

/// How output is printed.
#[derive(Clone, Copy)]
pub struct Output {
    /// JSON instead of tables.
    pub json: bool,
}

fn print_json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("dockhand: cannot print JSON: {e}"),
    }
}

/// Prints rows as a table with a header, columns padded to their widest cell.
fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                if i == last {
                    c
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    println!("{}", line(header.iter().map(|h| h.to_string()).collect()));
    for row in rows {
        println!("{}", line(row));
    }
}

fn short_time(ts: &Option<String>) -> String {
    ts.as_deref()
        .map(|t| t.replace('T', " ").chars().take(19).collect())
        .unwrap_or_else(|| "-".into())
}

/// `dockhand status`.
pub async fn status(client: &Client, out: Output) -> Result<u8, ClientError> {
    let targets = client.targets().await?;
    if out.json {
        print_json(&targets);
        return Ok(0);
    }
    let rows = targets
        .into_iter()
        .map(|t| {
            let running = match (&t.running, &t.problem) {
                (Some(r), _) => format!("{} ({})", r.image, r.state),
                (None, Some(p)) => format!("? {p}"),
                (None, None) => "?".into(),
            };
            let last = t
                .last_deployment
                .map(|d| {
                    format!(
                        "#{} {}:{} {} {}",
                        d.id,
                        d.image,
                        d.tag,
                        d.state.as_str(),
                        short_time(&d.ended_at.or(d.started_at).or(Some(d.created_at)))
                    )
                })
                .unwrap_or_else(|| "-".into());
            let kind = if t.dry_run {
                format!("{} (dry run)", t.kind)
            } else {
                t.kind
            };
            vec![t.name, kind, t.object, running, last]
        })
        .collect();
    table(&["TARGET", "KIND", "NAME", "RUNS NOW", "LAST DEPLOY"], rows);
    Ok(0)
}

/// `dockhand history [TARGET]`.
pub async fn history(
    client: &Client,
    target: Option<&str>,
    state: Option<&str>,
    limit: u32,
    out: Output,
) -> Result<u8, ClientError> {
    let deployments = client.deployments(target, state, limit).await?;
    if out.json {
        print_json(&deployments);
        return Ok(0);
    }
    let rows = deployments
        .into_iter()
        .map(|d| {
            vec![
                d.id.to_string(),
                d.target,
                format!("{}:{}", d.image, d.tag),
                d.state.as_str().to_string(),
                short_time(&d.started_at.or(Some(d.created_at))),
                d.message.unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &["ID", "TARGET", "IMAGE", "STATE", "STARTED", "MESSAGE"],
        rows,
    );
    Ok(0)
}

fn print_line(l: &LogLine, out: Output) {
    if out.json {
        if let Ok(s) = serde_json::to_string(l) {
            println!("{s}");
        }
    } else {
        println!("{}  {}", short_time(&Some(l.ts.clone())), l.line);
    }
    let _ = std::io::stdout().flush();
}

fn ended_well(d: &Deployment) -> bool {
    matches!(
        d.state,
        DeployState::Succeeded | DeployState::Skipped | DeployState::DryRun
    )
}

fn print_end(d: &Deployment, out: Output) -> u8 {
    if out.json {
        print_json(d);
    } else {
        println!(
            "deployment {} of {}:{} to {}: {}{}",
            d.id,
            d.image,
            d.tag,
            d.target,
            d.state.as_str(),
            d.message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        );
    }
    if ended_well(d) {
        0
    } else {
        EXIT_DEPLOY_FAILED
    }
}

/// `dockhand logs ID [--follow]`.
pub async fn logs(client: &Client, id: i64, follow: bool, out: Output) -> Result<u8, ClientError> {
    if follow {
        let d = client.follow(id, |l| print_line(l, out)).await?;
        return Ok(print_end(&d, out));
    }
    let d = client.deployment(id).await?;
    if out.json {
        print_json(&d);
        return Ok(0);
    }
    for l in &d.log {
        print_line(l, out);
    }
    print_end(&d.deployment, out);
    Ok(0)
}

/// `dockhand deploy TARGET TAG` and `dockhand rollback TARGET`: queue, then with `wait`
/// follow the log to the end.
pub async fn deploy(
    client: &Client,
    target: &str,
    request: Option<DeployRequest>,
    wait: bool,
    out: Output,
) -> Result<u8, ClientError> {
    let accepted = match request {
        Some(r) => client.deploy(target, &r).await?,
        None => client.rollback(target).await?,
    };
    let Some(q) = accepted.queued.first() else {
        return Err(ClientError::Api("nothing was queued".into()));
    };
    if !wait {
        if out.json {
            print_json(&accepted);
        } else {
            println!(
                "queued deployment {} of {}:{} to {}",
                q.id, q.image, q.tag, q.target
            );
        }
        return Ok(0);
    }
    if !out.json {
        println!(
            "deployment {} of {}:{} to {}:",
            q.id, q.image, q.tag, q.target
        );
    }
    let d = client.follow(q.id, |l| print_line(l, out)).await?;
    Ok(print_end(&d, out))
}
