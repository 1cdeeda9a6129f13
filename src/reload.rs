//! Hot reload: on `SIGHUP`, or when the config file's directory (or the TLS files') changes,
//! reads gateway.toml again, builds a whole new `AppState` and swaps it in at once. A config
//! that fails validation is refused with one log line naming the key, and the old one keeps
//! serving; settings only a restart applies are named, not silently ignored.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use reqwest::Url;
use tokio::sync::mpsc;

use crate::auth::jwks::KeyStore;
use crate::config::{self, Config, ConfigErrors, KeySource};
use crate::error::Error;
use crate::signal::Hangups;
use crate::state::{AppState, Current};
use crate::tls::Certificate;

/// How long a burst of file events (a ConfigMap's symlink swap, an editor's save) is let
/// settle before the file is read.
const SETTLE: Duration = Duration::from_millis(200);

/// The config file a gateway was started from, and its text then.
pub struct ConfigFile {
    /// Where it is.
    pub path: PathBuf,
    /// What it held when the running config was read.
    pub text: String,
}

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file cannot be read or is invalid (every problem, on one line).
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// A part of the new config cannot be built (TLS files, a key, the webhook secret).
    #[error(transparent)]
    Build(#[from] Error),
    /// The new JWKS source gave no key set.
    #[error("clerk.jwks_url: no key set could be loaded from {url}")]
    KeysNotLoaded {
        /// The JWKS URL.
        url: Url,
    },
}

/// What one reload did.
enum Reloaded {
    /// The new config serves; these keys changed but keep their running values.
    Applied {
        /// Keys that need a restart.
        needs_restart: Vec<&'static str>,
    },
    /// Neither the config nor the certificate changed.
    Unchanged,
    /// The old config keeps serving.
    Refused(ReloadError),
}

/// Reloads one gateway's config from its file.
pub struct Reloader {
    path: PathBuf,
    current: Current,
    certificate: Option<Arc<Certificate>>,
    /// What the listeners, workers and mirror were built from.
    started: Config,
    /// The config serving now.
    serving: Config,
}

impl Reloader {
    /// A reloader for the gateway serving `current`, started from `config` (read from
    /// `path`), terminating TLS with `certificate`.
    pub fn new(path: PathBuf, config: &Config, current: Current, certificate: Option<Arc<Certificate>>) -> Self {
        Reloader { path, current, certificate, started: config.clone(), serving: config.clone() }
    }

    /// Reads the file again and swaps in what it says, or refuses it; logs and counts the
    /// outcome.
    pub async fn reload(&mut self, trigger: &str) {
        let outcome = match self.try_reload().await {
            Ok(outcome) => outcome,
            Err(error) => Reloaded::Refused(error),
        };
        let metrics = self.current.load().metrics.clone();
        match &outcome {
            Reloaded::Applied { needs_restart } => {
                metrics.config_reload(true);
                tracing::info!(trigger, routes = self.serving.routes.len(), "configuration reloaded");
                if !needs_restart.is_empty() {
                    tracing::warn!(
                        keys = %needs_restart.join(", "),
                        "these settings changed but need a restart to take effect; they keep their running values"
                    );
                }
            }
            Reloaded::Unchanged => tracing::debug!(trigger, "configuration unchanged; nothing reloaded"),
            Reloaded::Refused(error) => {
                metrics.config_reload(false);
                tracing::error!(trigger, %error, "configuration reload refused; still serving the previous one");
            }
        }
    }

    /// Everything is built before anything is swapped, so a refusal changes nothing.
    async fn try_reload(&mut self) -> Result<Reloaded, ReloadError> {
        let text = config::read_file(&self.path).map_err(ConfigErrors::from)?;
        let next = Config::from_file_text(&self.path, &text, &config::process_env)?;
        let certificate = match (&self.certificate, &next.server.tls) {
            (Some(certificate), Some(files)) => certificate.prepare(files).map_err(Error::from)?,
            _ => None,
        };
        let current = self.current.load_full();
        if next == self.serving && certificate.is_none() {
            // The same settings (a comment changed, say): the file's hash is still the label.
            current.metrics.config_loaded(config_hash(&text));
            return Ok(Reloaded::Unchanged);
        }
        let keys = self.key_store(&current, &next.clerk.keys).await?;
        let state = current.reconfigured(&next, keys)?;
        self.current.store(Arc::new(state));
        if let (Some(served), Some(next)) = (&self.certificate, certificate) {
            served.serve(next);
        }
        current.metrics.config_loaded(config_hash(&text));
        let needs_restart = self.started.needs_restart(&next);
        self.serving = next;
        Ok(Reloaded::Applied { needs_restart })
    }

    /// The serving key store when the key source is the same; else a new one, loaded.
    async fn key_store(&self, current: &AppState, source: &KeySource) -> Result<Arc<KeyStore>, ReloadError> {
        if *source == self.serving.clerk.keys {
            return Ok(current.auth.keys().clone());
        }
        let keys = current.new_key_store(source)?;
        if !keys.load_once().await
            && let KeySource::Jwks { url, .. } = source
        {
            return Err(ReloadError::KeysNotLoaded { url: url.clone() });
        }
        Ok(keys)
    }

    /// The directories to watch, and the names in them that matter: the config file's,
    /// the TLS files', and Kubernetes' `..data` links.
    fn watched(&self) -> Vec<(PathBuf, OsString)> {
        let tls = self.started.server.tls.iter().flat_map(|files| [files.cert.clone(), files.key.clone()]);
        std::iter::once(self.path.clone())
            .chain(tls)
            .filter_map(|file| {
                let name = file.file_name()?.to_owned();
                let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
                Some((dir.to_owned(), name))
            })
            .collect()
    }
}

/// The label of the config serving now: the first 16 hex digits of its SHA-256.
pub fn config_hash(text: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts reloading on every `SIGHUP` and every settled change in the watched directories,
/// until the task is aborted; the directories are watched before this returns. Without a
/// reloader (the demo, a config not from a file), `SIGHUP` is logged and ignored.
pub fn start(reloader: Option<Reloader>, mut hangups: Hangups) -> tokio::task::JoinHandle<()> {
    let Some(mut reloader) = reloader else {
        return tokio::spawn(async move {
            loop {
                hangups.recv().await;
                tracing::warn!("SIGHUP received: there is no config file to reload; still serving");
            }
        });
    };
    let (changed, mut changes) = mpsc::channel(1);
    let watcher = watch(&reloader.watched(), changed);
    tokio::spawn(async move {
        let _watcher = watcher;
        loop {
            let trigger = tokio::select! {
                () = hangups.recv() => "SIGHUP",
                Some(()) = changes.recv() => {
                    tokio::time::sleep(SETTLE).await;
                    while changes.try_recv().is_ok() {}
                    "file change"
                }
            };
            reloader.reload(trigger).await;
        }
    })
}

/// Watches `dirs` (not recursively) and sends on `changed` when a name that matters there
/// changes. `None`, with a warning, when the platform refuses: `SIGHUP` still reloads.
fn watch(dirs: &[(PathBuf, OsString)], changed: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    let names: Vec<OsString> = dirs.iter().map(|(_, name)| name.clone()).collect();
    let handler = move |event: notify::Result<Event>| {
        if let Ok(event) = event
            && matters(&event, &names)
        {
            let _ = changed.try_send(());
        }
    };
    let mut watcher = notify::recommended_watcher(handler)
        .inspect_err(|error| tracing::warn!(%error, "cannot watch the config file; only SIGHUP reloads"))
        .ok()?;
    for (dir, _) in dirs {
        if let Err(error) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!(%error, dir = %dir.display(), "cannot watch this directory; only SIGHUP reloads it");
        }
    }
    Some(watcher)
}

/// A change (not a read) of a watched name, or of a Kubernetes `..data` link or directory.
fn matters(event: &Event, names: &[OsString]) -> bool {
    let change = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    };
    change
        && event
            .paths
            .iter()
            .filter_map(|p| p.file_name())
            .any(|name| names.iter().any(|n| n == name) || name.as_encoded_bytes().starts_with(b".."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_sixteen_hex_digits_of_sha256() {
        // SHA-256("abc") = ba7816bf8f01cfea…
        assert_eq!(config_hash("abc"), "ba7816bf8f01cfea");
    }

    #[test]
    fn reads_and_other_files_do_not_matter() {
        let names = [OsString::from("gateway.toml")];
        let event = |kind, path: &str| Event::new(kind).add_path(PathBuf::from(path));
        let modify = EventKind::Modify(notify::event::ModifyKind::Any);
        assert!(matters(&event(modify, "/etc/gw/gateway.toml"), &names));
        assert!(matters(&event(EventKind::Create(notify::event::CreateKind::Any), "/etc/gw/..data"), &names));
        assert!(!matters(&event(modify, "/etc/gw/mirror.db-wal"), &names));
        let read = EventKind::Access(AccessKind::Close(AccessMode::Read));
        assert!(!matters(&event(read, "/etc/gw/gateway.toml"), &names));
        let written = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert!(matters(&event(written, "/etc/gw/gateway.toml"), &names));
    }
}
