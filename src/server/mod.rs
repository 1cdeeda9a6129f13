//! Accepting connections: the accept loop with at most `max_connections` open, worker
//! threads for the proxy listener (each a single-threaded runtime, so a request and its
//! upstream connection stay on one core), graceful shutdown, and freed memory given back
//! after waves of closes. A connection itself is served in `connection.rs`. Knows nothing
//! about auth, routes or headers.

mod connection;
mod guard;
mod options;
mod rewind;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;

use crate::metrics::ConnectionCounters;
pub use connection::{ConnectionHold, Handler, Remote};
use connection::{Connections, Slot, Ticket};
pub use options::{ConnectionLimits, ServeOptions};
pub use rewind::{ClientIo, ClientUpgrade};

/// How long an accepted connection over `max_connections` waits for a slot before it is
/// closed.
const OVER_LIMIT_WAIT: Duration = Duration::from_millis(100);
/// Connections over the limit allowed to wait at once; past this they are closed at once.
const MAX_WAITING: usize = 64;

/// How often `release_memory_after_waves` reads the connection counters.
const TRIM_CHECK: Duration = Duration::from_secs(2);
/// Connections closed or parked since the last release that make another worth its cost.
const TRIM_WAVE: u64 = 1000;

/// Returns freed heap to the system (`memory::release_free_heap`, on a blocking thread) each
/// time another `TRIM_WAVE` connections have closed or parked, so the memory a burst of
/// connections took goes back once they are gone or idle. Runs until dropped.
pub async fn release_memory_after_waves(counters: Arc<ConnectionCounters>) {
    let mut released_at = 0u64;
    loop {
        tokio::time::sleep(TRIM_CHECK).await;
        let open = u64::try_from(counters.open.load(Relaxed)).unwrap_or(0);
        let closed = counters.accepted.load(Relaxed).saturating_sub(open);
        let gone = closed + counters.parks.load(Relaxed);
        if gone >= released_at + TRIM_WAVE {
            released_at = gone;
            let _ = tokio::task::spawn_blocking(crate::memory::release_free_heap).await;
        }
    }
}

/// Serves `listener` on the calling runtime until `stop` completes, then stops accepting
/// and gives open connections `grace_timeout` to finish.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    options: ServeOptions,
    handler: H,
    stop: impl Future<Output = ()>,
) {
    let connections = Connections::new(&options);
    let shutdown = Shutdown::new();
    accept_until(&listener, &options, stop, |stream, peer, slot| {
        let ticket = shutdown.ticket(slot);
        tokio::spawn(connections.serve(stream, peer, handler.clone(), ticket));
    })
    .await;
    drop(listener);
    shutdown.finish(&options).await;
}

/// Like `serve`, but connections are handed round-robin to `workers` threads, each with its
/// own single-threaded runtime and its own handler, `make_handler(worker_index)`, so that
/// per-worker resources such as an upstream pool are only ever used from that thread.
pub async fn serve_on_workers<H, F>(
    listener: TcpListener,
    options: ServeOptions,
    workers: usize,
    make_handler: F,
    stop: impl Future<Output = ()>,
) where
    H: Handler,
    F: Fn(usize) -> H + Send + Sync + 'static,
{
    let make_handler = Arc::new(make_handler);
    let pool: Vec<Worker> = (0..workers.max(1)).map(|i| Worker::start(i, &options, make_handler.clone())).collect();
    let shutdown = Shutdown::new();
    let mut next = 0usize;
    accept_until(&listener, &options, stop, |stream, peer, slot| {
        let Ok(stream) = stream.into_std() else { return };
        let worker = &pool[next % pool.len()];
        next = next.wrapping_add(1);
        let _ = worker.connections.send(Accepted { stream, peer, ticket: shutdown.ticket(slot) });
    })
    .await;
    drop(listener);
    let (mut aborts, mut threads) = (Vec::new(), Vec::new());
    for worker in pool {
        drop(worker.connections);
        aborts.push(worker.abort);
        threads.push(worker.thread);
    }
    shutdown.finish(&options).await;
    for abort in aborts {
        let _ = abort.send(());
    }
    let _ = tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| drop(t.join()))).await;
}

/// Accepts until `stop`, handing each connection that gets one of the `max_connections`
/// slots to `dispatch`. One that finds none free waits (off the accept loop, at most
/// `MAX_WAITING` at once) up to `OVER_LIMIT_WAIT` for one, and is closed if none frees up.
async fn accept_until(
    listener: &TcpListener,
    options: &ServeOptions,
    stop: impl Future<Output = ()>,
    mut dispatch: impl FnMut(TcpStream, SocketAddr, Slot),
) {
    let slots = Arc::new(Semaphore::new(options.limits.max_connections));
    let waiting = Arc::new(Semaphore::new(MAX_WAITING));
    let (waited, mut seated) = mpsc::channel::<(TcpStream, SocketAddr, Slot)>(MAX_WAITING);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            Some((stream, peer, slot)) = seated.recv() => dispatch(stream, peer, slot),
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    match Slot::try_take(&slots, &options.counters) {
                        Some(slot) => dispatch(stream, peer, slot),
                        None => wait_for_slot(stream, peer, &slots, &waiting, &waited, &options.counters),
                    }
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// Lets a connection over the limit wait for a slot in a task of its own, handing it back
/// to the accept loop through `seat` if one frees up in time; closes it (counted as refused)
/// otherwise, or at once when too many are waiting already.
fn wait_for_slot(
    stream: TcpStream,
    peer: SocketAddr,
    slots: &Arc<Semaphore>,
    waiting: &Arc<Semaphore>,
    seat: &mpsc::Sender<(TcpStream, SocketAddr, Slot)>,
    counters: &Arc<ConnectionCounters>,
) {
    let Ok(turn) = waiting.clone().try_acquire_owned() else {
        counters.refused.fetch_add(1, Relaxed);
        return;
    };
    let (slots, seat, counters) = (slots.clone(), seat.clone(), counters.clone());
    tokio::spawn(async move {
        let permit = tokio::time::timeout(OVER_LIMIT_WAIT, slots.acquire_owned()).await.ok().and_then(Result::ok);
        drop(turn);
        match permit {
            Some(permit) => drop(seat.send((stream, peer, Slot::new(permit, &counters))).await),
            None => drop(counters.refused.fetch_add(1, Relaxed)),
        }
    });
}

/// Graceful shutdown of a listener's connections: each holds a ticket, and `finish` asks
/// them all to close and waits for them (and for detached tasks) within the grace timeout.
struct Shutdown {
    stop: watch::Sender<bool>,
    open: TaskTracker,
}

impl Shutdown {
    fn new() -> Self {
        Shutdown { stop: watch::channel(false).0, open: TaskTracker::new() }
    }

    fn ticket(&self, slot: Slot) -> Ticket {
        Ticket { stop: self.stop.subscribe(), _tracked: self.open.token(), slot: Arc::new(slot) }
    }

    async fn finish(self, options: &ServeOptions) {
        let open = self.open.len();
        self.stop.send_replace(true);
        self.open.close();
        let detached = &options.detached;
        let everything = async {
            self.open.wait().await;
            detached.close();
            detached.wait().await;
        };
        if tokio::time::timeout(options.grace_timeout, everything).await.is_err() {
            let tunnels = detached.len();
            tracing::warn!(open, tunnels, "grace timeout passed with requests still in flight; closing them");
        }
    }
}

/// A connection accepted on the listener's runtime, on its way to a worker.
struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
}

struct Worker {
    connections: mpsc::UnboundedSender<Accepted>,
    abort: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Worker {
    fn start<H, F>(index: usize, options: &ServeOptions, make_handler: Arc<F>) -> Worker
    where
        H: Handler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        let (connections, incoming) = mpsc::unbounded_channel();
        let (abort, aborted) = oneshot::channel();
        let options = options.clone();
        let thread = std::thread::Builder::new()
            .name(format!("gateway-worker-{index}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(error) => return tracing::error!(%error, "cannot start a worker runtime"),
                };
                runtime.block_on(Self::run(incoming, aborted, Connections::new(&options), make_handler(index)));
            })
            .unwrap_or_else(|e| panic!("cannot spawn a worker thread: {e}"));
        Worker { connections, abort, thread }
    }

    /// Serves what arrives until the acceptor is gone, then keeps running until shutdown
    /// is over.
    async fn run<H: Handler>(
        mut incoming: mpsc::UnboundedReceiver<Accepted>,
        aborted: oneshot::Receiver<()>,
        connections: Connections,
        handler: H,
    ) {
        let mut tasks = JoinSet::new();
        loop {
            tokio::select! {
                accepted = incoming.recv() => match accepted {
                    Some(Accepted { stream, peer, ticket }) => match TcpStream::from_std(stream) {
                        Ok(stream) => {
                            tasks.spawn(connections.serve(stream, peer, handler.clone(), ticket));
                        }
                        Err(error) => tracing::warn!(%error, "cannot adopt a connection"),
                    },
                    None => break,
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        // The acceptor is gone, but connections and upgraded tunnels still run on this
        // runtime: keep it until the acceptor says shutdown is over (everything finished or
        // the grace timeout passed), then drop whatever is left.
        let _ = aborted.await;
        tasks.abort_all();
    }
}
