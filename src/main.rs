//! The `clerk-gateway` binary: parses the command line, sets up logging and the crypto
//! provider, and hands over to `clerk_gateway::cli`.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use clerk_gateway::cli::{Cli, LogFormat, execute};
use clerk_gateway::log_line;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Log lines are written by a background thread; the guard flushes them on exit.
    let _flush_logs = init_logging(cli.log_format, cli.default_log_level());
    // One crypto provider for rustls (server, upstream client, reqwest) and jsonwebtoken.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    execute(cli)
}

/// Logs go to stderr through a non-blocking writer, so a slow log pipe never stalls a proxy
/// worker (lines are dropped instead, and counted by tracing-appender); its thread writes
/// whatever has queued up in one go. Text is coloured only when stderr is a terminal; JSON
/// lines carry their fields at the top level. `level` applies when `RUST_LOG` is not set.
/// Access lines take the same writer, formatted by `log_line` instead of tracing.
fn init_logging(format: LogFormat, level: &str) -> tracing_appender::non_blocking::WorkerGuard {
    let stderr = std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr());
    let (writer, guard) = tracing_appender::non_blocking(stderr);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer.clone());
    let ansi = std::io::stderr().is_terminal();
    match format {
        LogFormat::Text => builder.with_ansi(ansi).init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
    }
    let line_format = match format {
        LogFormat::Text => log_line::Format::Text { ansi },
        LogFormat::Json => log_line::Format::Json,
    };
    log_line::install(line_format, writer);
    guard
}
