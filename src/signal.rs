//! Process signals: the future that resolves when the process is asked to stop (SIGTERM or
//! Ctrl-C), after which a second signal exits at once; and `SIGHUP`, which is logged and
//! otherwise ignored rather than ending the process. Shared by `run` and `demo`.

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

/// Keeps `SIGHUP` from ending the process (its default action): from this call on, each
/// one is logged and otherwise ignored (there is no reload yet). Call on the runtime before
/// serving; the task it returns logs until aborted, and the default action stays replaced
/// for the life of the process.
pub fn ignore_hangups() -> Option<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hangups) => Some(tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    tracing::warn!(
                        "SIGHUP received: reloading the configuration is not supported yet; \
                         still serving with the one loaded at start"
                    );
                }
            })),
            Err(error) => {
                tracing::warn!(%error, "cannot handle SIGHUP; one would end the process");
                None
            }
        }
    }
    #[cfg(not(unix))]
    {
        None
    }
}
