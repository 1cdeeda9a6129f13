//! The command line: clap definitions and the `run` and `check` commands (`demo` lives in
//! `demo.rs`). Each command returns an exit code: 0 ok, 1 bad config or input, 2 runtime.

use std::fmt::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{self, Config, KeySource};
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
}

/// Runs the parsed command line.
pub fn execute(cli: Cli) -> ExitCode {
    // Accepting, admin and start-up work: one thread. Proxy traffic runs on the workers
    // `run` starts (see `server::serve_on_workers`).
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&Error::Runtime(format!("cannot start the runtime: {e}"))),
    };
    let result = match cli.command {
        Command::Run { config } => runtime.block_on(run(&config_path(config))),
        Command::Check { config } => check(&config_path(config)),
        Command::Demo { listen } => runtime.block_on(crate::demo::run(listen)),
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
    crate::run(config, listeners, Clock::System, shutdown_signal()).await
}

fn check(path: &Path) -> Result<(), Error> {
    let config = Config::load(path, &config::process_env)?;
    print!("{}", describe(path, &config));
    Ok(())
}

/// Resolves on the first SIGTERM or SIGINT; a second one exits at once.
pub async fn shutdown_signal() {
    wait_for_signal().await;
    tokio::spawn(async {
        wait_for_signal().await;
        eprintln!("clerk-gateway: second signal, exiting now");
        std::process::exit(130);
    });
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The `check` report: resolved settings, then the route table.
pub fn describe(path: &Path, config: &Config) -> String {
    let mut out = String::new();
    let clerk = &config.clerk;
    let keys = match &clerk.keys {
        KeySource::Pem(_) => "jwt_key (PEM public key, no network)".to_owned(),
        KeySource::Jwks { url, bearer: Some(_) } => format!("JWKS {url} (with the secret key)"),
        KeySource::Jwks { url, bearer: None } => format!("JWKS {url}"),
    };
    let scheme = if config.server.tls.is_some() { "https" } else { "http" };
    let _ = writeln!(out, "configuration OK: {}", path.display());
    let mut line = |k: &str, v: String| {
        let _ = writeln!(out, "  {k:<10} {v}");
    };
    line("listen", format!("{} ({scheme})", config.server.listen));
    line("admin", config.admin.listen.to_string());
    line("keys", keys);
    line("issuer", clerk.issuer.clone().unwrap_or_else(|| "(not checked)".into()));
    let parties =
        if clerk.authorized_parties.is_empty() { "(not checked)".into() } else { clerk.authorized_parties.join(", ") };
    line("azp", parties);
    line("skew", format!("{:?}", clerk.clock_skew));
    line("sign-in", clerk.sign_in_url.as_ref().map_or_else(|| "(none: browsers get 401)".into(), |u| u.to_string()));
    line("mirror", config.mirror.path.clone());
    if let Some(webhook) = &config.webhook {
        line("webhook", format!("POST {}", webhook.path));
    }
    out.push('\n');
    out.push_str(&route_table(config));
    out
}

fn route_table(config: &Config) -> String {
    let header = ["#", "HOST", "PATH", "METHODS", "AUTH", "REQUIRE", "UPSTREAM", "STRIP", "TIMEOUT"];
    let rows: Vec<[String; 9]> = config
        .routes
        .iter()
        .map(|r| {
            let mut require: Vec<String> = r.require.org_roles.iter().map(|x| format!("org_role={x}")).collect();
            require.extend(r.require.permissions.iter().map(|x| format!("permission={x}")));
            [
                r.index.to_string(),
                r.host.clone().unwrap_or_else(|| "*".into()),
                r.path.clone(),
                r.methods
                    .as_ref()
                    .map_or_else(|| "*".into(), |m| m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(",")),
                r.auth.as_str().into(),
                if require.is_empty() { "-".into() } else { require.join(" ") },
                r.upstream.to_string(),
                if r.strip_prefix { "yes".into() } else { "no".into() },
                format!("{:?}", r.timeout),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no routes: every request will get 404\n".into();
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|row| row[c].len()).chain([header[c].len()]).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    let mut emit = |cells: Vec<&str>| {
        let line: Vec<String> = cells.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    };
    emit(header.to_vec());
    for row in &rows {
        emit(row.iter().map(String::as_str).collect());
    }
    out
}
