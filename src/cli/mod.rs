//! The command line: clap definitions, dispatch, and `run`. `check` is in `check.rs`, the
//! mirror commands (`users`, `sync`) in `mirror.rs`, `demo` in `crate::demo`. Each command
//! ends in an exit code: 0 ok, 1 bad config or input, 2 runtime failure.

mod check;
mod mirror;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{self, Config};
use crate::signal;
use crate::{Clock, Error, Listeners};

/// clerk-gateway: verified Clerk sessions in front of any HTTP backend.
#[derive(Debug, Parser)]
#[command(name = "clerk-gateway", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "GATEWAY_LOG_FORMAT")]
    pub log_format: LogFormat,
}

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve: proxy listener plus admin listener.
    Run {
        /// Config file [default: $GATEWAY_CONFIG, else ./gateway.toml]
        #[arg(short, long, env = "GATEWAY_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Validate the config and print the resolved routes.
    Check {
        /// Config file [default: $GATEWAY_CONFIG, else ./gateway.toml]
        #[arg(short, long, env = "GATEWAY_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run the real gateway on embedded defaults: local signing key, echo upstream, no network.
    Demo {
        /// Proxy listener (falls back to a free port if this one is taken).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Read the local user mirror (JSON on stdout); safe while the gateway runs.
    Users {
        /// What to read.
        #[command(subcommand)]
        command: UsersCommand,
        /// Config file [default: $GATEWAY_CONFIG, else ./gateway.toml]
        #[arg(short, long, env = "GATEWAY_CONFIG", global = true)]
        config: Option<PathBuf>,
    },
    /// Backfill the mirror with every user from Clerk's Backend API; safe while the gateway runs.
    Sync {
        /// Config file [default: $GATEWAY_CONFIG, else ./gateway.toml]
        #[arg(short, long, env = "GATEWAY_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// `clerk-gateway users …`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Live users, by id.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Skip this many first.
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// One user (with memberships); exits 1 when the mirror does not have it.
    Get {
        /// `user_…`.
        id: String,
    },
    /// Number of live users.
    Count,
}

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
        Command::Demo { listen } => runtime.block_on(crate::demo::run(listen)),
        Command::Users { command, config } => mirror::users(&config_path(config), command),
        Command::Sync { config } => runtime.block_on(mirror::sync(&config_path(config))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(error: &Error) -> ExitCode {
    eprintln!("clerk-gateway: {error}");
    ExitCode::from(error.exit_code())
}

fn config_path(flag: Option<PathBuf>) -> PathBuf {
    flag.unwrap_or_else(|| PathBuf::from("gateway.toml"))
}

async fn run(path: &Path) -> Result<(), Error> {
    let config = Config::load(path, &config::process_env)?;
    let listeners = Listeners::bind(&config).await?;
    crate::run(config, listeners, Clock::System, signal::shutdown_signal()).await
}
