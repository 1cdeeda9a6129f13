//! The mirror commands: `users list | get | count` (read-only, JSON on stdout) and `sync`
//! (a full sweep from the Backend API with progress on stderr), on the SQLite file or the
//! Postgres database `[mirror]` names. Both are safe while the gateway runs: SQLite's WAL
//! lets readers and a second writer in, and Postgres is Postgres.

use std::io::IsTerminal;
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use super::args::UsersCommand;
use crate::config::{self, Config, ConfigError};
use crate::mirror::{FileError, Mirror, MirrorError, ReadOnly, StoredUser};
use crate::state;
use crate::sweep::{self, Progress, Report};
use crate::{Clock, Error};

/// `clerk-gateway users …`.
///
/// # Errors
/// A config error, an unreadable mirror, or a user that is not there (exit 1).
pub async fn users(config_path: &Path, command: UsersCommand) -> Result<(), Error> {
    let config = Config::load(config_path, &config::process_env)?;
    if config.mirror.url.is_some() {
        let mirror = Mirror::from_config(&config.mirror, Clock::System).await?;
        let output = postgres_users(&mirror, command).await?;
        println!("{}", serde_json::to_string_pretty(&output).unwrap_or_default());
        return Ok(());
    }
    if config.mirror.path == ":memory:" {
        return Err(
            ConfigError::new("mirror.path", "\":memory:\" lives inside the gateway process; nothing to read").into()
        );
    }
    let mirror = ReadOnly::open(Path::new(&config.mirror.path))?;
    let output = match command {
        UsersCommand::List { limit, offset } => {
            serde_json::to_value(mirror.users(limit, offset)?).unwrap_or(Value::Null)
        }
        UsersCommand::Count => json!({ "count": mirror.count_users()? }),
        UsersCommand::Get { id } => match mirror.user(&id)? {
            Some(StoredUser::Live(user)) => {
                let memberships = mirror.memberships(&id)?;
                let mut value = serde_json::to_value(*user).unwrap_or(Value::Null);
                value["memberships"] = serde_json::to_value(memberships).unwrap_or(Value::Null);
                value
            }
            Some(StoredUser::Deleted) => return Err(Error::UserAbsent { id, deleted: true }),
            None => return Err(Error::UserAbsent { id, deleted: false }),
        },
    };
    println!("{}", serde_json::to_string_pretty(&output).unwrap_or_default());
    Ok(())
}

/// `users` on a Postgres mirror: the same JSON as from a SQLite file.
async fn postgres_users(mirror: &Mirror, command: UsersCommand) -> Result<Value, Error> {
    let fail = |source: MirrorError| Error::from(FileError::new(mirror.path(), source));
    Ok(match command {
        UsersCommand::List { limit, offset } => {
            serde_json::to_value(mirror.users(limit, offset).await.map_err(fail)?).unwrap_or(Value::Null)
        }
        UsersCommand::Count => json!({ "count": mirror.count_users().await.map_err(fail)? }),
        UsersCommand::Get { id } => match mirror.user(&id).await.map_err(fail)? {
            Some(StoredUser::Live(user)) => {
                let memberships = mirror.memberships(&id).await.map_err(fail)?;
                let mut value = serde_json::to_value(*user).unwrap_or(Value::Null);
                value["memberships"] = serde_json::to_value(memberships).unwrap_or(Value::Null);
                value
            }
            Some(StoredUser::Deleted) => return Err(Error::UserAbsent { id, deleted: true }),
            None => return Err(Error::UserAbsent { id, deleted: false }),
        },
    })
}

/// `clerk-gateway sync`.
///
/// # Errors
/// A config error (no secret key), an unusable mirror, or a Backend API failure.
pub async fn sync(config_path: &Path) -> Result<(), Error> {
    let config = Config::load(config_path, &config::process_env)?;
    let client = state::api_client(&config)?;
    let Some(api) = state::clerk_api(&config, client) else {
        return Err(ConfigError::new(
            "clerk.secret_key",
            "sync needs the Backend API secret key (or CLERK_SECRET_KEY)",
        )
        .into());
    };
    let clock = Clock::System;
    let mirror = Mirror::from_config(&config.mirror, clock.clone()).await?;
    let mut progress = Bar::new();
    let report = sweep::sweep(&api, &mirror, &clock, &mut progress).await;
    progress.finish();
    let report = report?;
    println!(
        "synced {} users into {}: {} new, {} updated, {} unchanged, {} deleted ({} pages)",
        report.fetched,
        mirror.path(),
        report.inserted,
        report.updated,
        report.unchanged,
        report.tombstoned,
        report.pages
    );
    Ok(())
}

/// A progress bar on a terminal, plain lines (at every tenth of the way) otherwise.
struct Bar {
    bar: Option<ProgressBar>,
    total: Option<u64>,
    next_line_at: u64,
}

impl Bar {
    fn new() -> Self {
        Bar { bar: None, total: None, next_line_at: 0 }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn start(&mut self, total: Option<u64>) {
        self.total = total;
        if std::io::stderr().is_terminal() {
            let bar = total.map_or_else(ProgressBar::new_spinner, ProgressBar::new);
            let style = ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} users ({per_sec}, eta {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            self.bar = Some(bar);
        } else {
            eprintln!(
                "sync: {} users to fetch",
                total.map_or_else(|| "an unknown number of".into(), |t| t.to_string())
            );
        }
    }

    fn page(&mut self, report: &Report) {
        if let Some(bar) = &self.bar {
            bar.set_position(report.fetched);
            return;
        }
        if report.fetched >= self.next_line_at {
            match self.total.filter(|t| *t > 0) {
                Some(total) => {
                    eprintln!("sync: {}/{total} users ({}%)", report.fetched, report.fetched * 100 / total);
                    self.next_line_at = report.fetched + total.div_ceil(10);
                }
                None => {
                    eprintln!("sync: {} users", report.fetched);
                    self.next_line_at = report.fetched + 10 * u64::from(sweep::PAGE_SIZE);
                }
            }
        }
    }
}
