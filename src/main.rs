//! The `clerk-gateway` binary: parses the command line, sets up logging and the crypto
//! provider, and hands over to `clerk_gateway::cli`.

use std::process::ExitCode;

use clap::Parser;
use clerk_gateway::cli::{Cli, LogFormat, execute};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    // One crypto provider for rustls (server, upstream client, reqwest) and jsonwebtoken.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    execute(cli)
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
