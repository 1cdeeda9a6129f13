//! The command line: dispatch and `run`. The clap definitions are in `args.rs`, `check`
//! in `check.rs`, the mirror commands (`users`, `sync`) in `mirror.rs`, `demo` in
//! `crate::demo`. Each command ends in an exit code: 0 ok, 1 bad config or input, 2 runtime
//! failure.

mod args;
mod check;
mod mirror;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub use args::{Cli, Command, LogFormat, UsersCommand};

use crate::config::{self, Config};
use crate::reload::ConfigFile;
use crate::signal;
use crate::{Clock, Error, Listeners};

/// Runs the parsed command line.
pub fn execute(cli: Cli) -> ExitCode {
    // Accepting, admin and start-up work: one thread. Proxy traffic runs on the workers
    // `run` starts (see `server::serve_on_workers`).
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&Error::io("cannot start the runtime")(e)),
    };
    let result = match cli.command {
        Command::Run { config } => runtime.block_on(run(&config_path(config))),
        Command::Check { config } => check::run(&config_path(config)),
        Command::Demo { listen, .. } => runtime.block_on(crate::demo::run(listen)),
        Command::Users { command, config } => runtime.block_on(mirror::users(&config_path(config), command)),
        Command::Sync { config } => runtime.block_on(mirror::sync(&config_path(config))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(error: &Error) -> ExitCode {
    for line in error.lines() {
        eprintln!("clerk-gateway: {line}");
    }
    ExitCode::from(error.exit_code())
}

fn config_path(flag: Option<PathBuf>) -> PathBuf {
    flag.unwrap_or_else(|| PathBuf::from("gateway.toml"))
}

async fn run(path: &Path) -> Result<(), Error> {
    let text = config::read_file(path)?;
    let config = Config::from_file_text(path, &text, &config::process_env)?;
    let listeners = Listeners::bind(&config).await?;
    let file = ConfigFile { path: path.to_owned(), text };
    crate::run(config, Some(file), listeners, Clock::System, signal::shutdown_signal()).await
}
