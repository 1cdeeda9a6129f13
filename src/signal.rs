//! Process signals: the future that resolves when the process is asked to stop (SIGTERM or
//! Ctrl-C), after which a second signal exits at once; and `SIGHUP`s, caught instead of
//! ending the process, for the reloader. Shared by `run` and `demo`.

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

/// `SIGHUP`s, from the moment this is built: its default action (ending the process) is
/// replaced for the life of the process, and each one is handed to whoever calls `recv`.
pub struct Hangups {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangups {
    /// Starts catching `SIGHUP`; call on the runtime before serving. Where it cannot be
    /// caught, says so: one would end the process.
    pub fn catch() -> Hangups {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signal = signal(SignalKind::hangup())
                .inspect_err(|error| tracing::warn!(%error, "cannot handle SIGHUP; one would end the process"))
                .ok();
            Hangups { signal }
        }
        #[cfg(not(unix))]
        {
            Hangups {}
        }
    }

    /// The next `SIGHUP`; never, where none can be caught.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = &mut self.signal {
            if signal.recv().await.is_some() {
                return;
            }
            self.signal = None;
        }
        std::future::pending::<()>().await;
    }
}
