//! clerk-gateway: a reverse-proxy auth gateway for Clerk.
//!
//! Every request is stripped of client-sent identity headers, routed by `gateway.toml`,
//! checked against the Clerk instance's session tokens, and forwarded with `X-User-Id` and
//! friends to the route's upstream.
//!
//! # Layout
//! Roughly top to bottom; the exact map, one layer a line, is the README's, which
//! `tests/it/layers.rs` checks against the code:
//! - `cli`, `demo`: the commands behind the binary; this file: `run`; `reload`: hot reload.
//! - `handler`: the proxy pipeline; `auth_endpoints`: `/auth/*`; `session`: a request's
//!   session decision; `admin`: health, readiness, metrics.
//! - `state`: everything a request needs, built once; `error` (start-up failures, exit
//!   codes) and `reject` (every answer the gateway gives itself).
//! - `webhook` (Svix, events, the endpoint), `sweep` (the full user sweep), `browser`
//!   (Clerk's cookie rules, the handshake), `users` (the user directory).
//! - `auth` (tokens, keys, claims, policy), `proxy` (header surgery, upstream client),
//!   `mirror` (SQLite), `clerk_api` (Backend API client, Clerk's objects), `router`, `tls`,
//!   `access` (the access log), `cors` (preflights and `Access-Control-*` headers).
//! - `config`, `identity`, `server`, and the leaves: `path`, `body`, `metrics`, `cache`,
//!   `clock`, `ascii`, `clerk_keys`, `signal`, `process`, `token_type`.

pub mod access;
pub mod admin;
pub mod ascii;
pub mod assertion;
pub mod auth;
pub mod auth_endpoints;
pub mod authorize;
pub mod body;
pub mod browser;
pub mod cache;
pub mod clerk_api;
pub mod clerk_keys;
pub mod cli;
pub mod clock;
pub mod config;
pub mod cors;
pub mod demo;
pub mod error;
pub mod forward_auth;
pub mod handler;
pub mod identity;
pub mod log_line;
pub mod memory;
pub mod metrics;
pub mod mirror;
pub mod path;
pub mod process;
pub mod proxy;
pub mod reject;
pub mod reload;
pub mod router;
pub mod server;
pub mod session;
pub mod signal;
pub mod state;
pub mod sweep;
pub mod tls;
pub mod token_type;
pub mod users;
pub mod webhook;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;

pub use clock::Clock;
pub use config::Config;
pub use error::Error;
use reload::{ConfigFile, Reloader};
use server::{ConnectionLimits, ServeOptions};
use state::{AppState, Current};

/// The two bound listeners a gateway serves.
pub struct Listeners {
    /// The proxy listener.
    pub proxy: TcpListener,
    /// The admin listener.
    pub admin: TcpListener,
}

impl Listeners {
    /// Binds the addresses in `config`.
    ///
    /// # Errors
    /// `Error::Bind` naming the address.
    pub async fn bind(config: &Config) -> Result<Listeners, Error> {
        let bind = |addr| async move { TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, source }) };
        Ok(Listeners { proxy: bind(config.server.listen).await?, admin: bind(config.admin.listen).await? })
    }
}

/// Runs the gateway until `shutdown` completes, then drains: readiness turns 503 at once,
/// the proxy listener keeps accepting for `drain_delay`, then in-flight requests get
/// `grace_timeout` to finish. With the `file` `config` was read from, `SIGHUP` and changes
/// of the file reload it (see `reload`).
///
/// # Errors
/// `Error` when the state cannot be built (mirror, TLS files, clients).
pub async fn run(
    config: Config,
    file: Option<ConfigFile>,
    listeners: Listeners,
    clock: Clock,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let hangups = signal::Hangups::catch();
    let certificate = config.server.tls.as_ref().map(tls::Certificate::load).transpose()?;
    let tls = certificate.as_ref().map(tls::Certificate::acceptor);
    let state = AppState::build(&config, clock).await?;
    let keys = tokio::spawn(state.auth.keys().clone().load_until_ready());
    let reconcile = config.mirror.reconcile_every.map(|every| tokio::spawn(reconcile(state.clone(), every)));
    let current: Current = Arc::new(ArcSwap::new(state.clone()));
    if let Some(file) = &file {
        state.metrics.config_loaded(reload::config_hash(&file.text));
    }
    let reloader = file.map(|file| Reloader::new(file.path, &config, current.clone(), certificate));
    let reloads = reload::start(reloader, hangups);
    log_start(&config, &listeners);

    let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin = tokio::spawn(server::serve(
        listeners.admin,
        admin_options(&config),
        admin::AdminHandler::new(current.clone()),
        async move {
            let _ = admin_stopped.await;
        },
    ));

    let proxy_options = ServeOptions {
        tls,
        grace_timeout: config.server.grace_timeout,
        detached: state.tunnels.clone(),
        counters: state.metrics.connections().clone(),
        ..admin_options(&config)
    };
    let trimmer = tokio::spawn(server::release_memory_after_waves(state.metrics.connections().clone()));
    let stop = drain_after(shutdown, state.clone(), config.server.drain_delay);
    let workers = config.server.workers;
    let clients = (0..workers).map(|_| state.upstream_client()).collect::<Result<Vec<_>, _>>()?;
    let make_handler = move |i: usize| handler::ProxyHandler::new(current.clone(), clients[i].clone());
    server::serve_on_workers(listeners.proxy, proxy_options, workers, make_handler, stop).await;

    let _ = admin_stop.send(());
    let _ = admin.await;
    keys.abort();
    reloads.abort();
    trimmer.abort();
    if let Some(task) = reconcile {
        task.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

/// The admin listener's settings, and the base of the proxy listener's: the request-head and
/// connection limits from `[server]`, a short grace timeout, no TLS.
fn admin_options(config: &Config) -> ServeOptions {
    let server = &config.server;
    ServeOptions {
        header_read_timeout: server.header_read_timeout,
        max_header_bytes: server.max_header_bytes,
        tls_handshake_timeout: server.tls_handshake_timeout,
        grace_timeout: Duration::from_secs(1),
        limits: ConnectionLimits {
            max_connections: server.max_connections,
            first_byte_timeout: server.first_byte_timeout,
            idle_timeout: server.idle_timeout,
            http2_keepalive_interval: server.http2_keepalive_interval,
            http2_keepalive_timeout: server.http2_keepalive_timeout,
        },
        ..ServeOptions::default()
    }
}

/// Sweeps every user from the Backend API now and every `every` after, so a replica that
/// missed webhooks converges.
async fn reconcile(state: Arc<AppState>, every: Duration) {
    let Some(api) = state.users.api().cloned() else { return };
    loop {
        if let Err(error) = sweep::sweep(&api, state.users.as_ref(), &state.clock, &mut sweep::Quiet).await {
            tracing::warn!(%error, "reconcile sweep failed; the next one will retry");
        }
        tokio::time::sleep(every).await;
    }
}

async fn drain_after(shutdown: impl Future<Output = ()>, state: Arc<AppState>, delay: Duration) {
    shutdown.await;
    state.begin_drain();
    tracing::info!(drain_delay = ?delay, "shutting down: readiness is now 503, still accepting during the drain delay");
    tokio::time::sleep(delay).await;
    tracing::info!("no longer accepting; finishing in-flight requests");
}

fn log_start(config: &Config, listeners: &Listeners) {
    if config.webhook.is_some() && config.mirror.path == ":memory:" {
        tracing::warn!(
            "mirror.path is \":memory:\": webhook deliveries are acknowledged, but a restart forgets them; \
             give the mirror a file for production"
        );
    }
    let addr = |l: &TcpListener| l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let keys = match &config.clerk.keys {
        config::KeySource::Pem(_) => "jwt_key (PEM, no network)".to_owned(),
        config::KeySource::Jwks { url, .. } => format!("JWKS {url}"),
    };
    tracing::info!(
        proxy = %addr(&listeners.proxy),
        admin = %addr(&listeners.admin),
        routes = config.routes.len(),
        workers = config.server.workers,
        keys = %keys,
        "clerk-gateway listening"
    );
}
