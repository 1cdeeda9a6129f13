//! The command line as clap parses it: the commands, their flags, and the log format.
//! Definitions only; `cli::execute` runs them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

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

impl Cli {
    /// The log level when `RUST_LOG` does not say: `warn` for a `demo` without `--logs`,
    /// whose report is the output, else `info`.
    pub fn default_log_level(&self) -> &'static str {
        match self.command {
            Command::Demo { logs: false, .. } => "warn",
            _ => "info",
        }
    }
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
        /// Show the gateway's log lines on stderr (off by default, so they do not interleave
        /// with the report; `RUST_LOG` also turns them on).
        #[arg(long)]
        logs: bool,
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
