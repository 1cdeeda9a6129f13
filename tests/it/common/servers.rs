//! Serving a test handler on 127.0.0.1:0 with the gateway's own server, and a port that
//! refuses connections.

use std::net::SocketAddr;
use std::time::Duration;

use clerk_gateway::server::{self, Handler, ServeOptions};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

fn quick_options() -> ServeOptions {
    ServeOptions { max_header_bytes: 256 * 1024, tls_handshake_timeout: Duration::from_secs(5), ..Default::default() }
}

/// Serves `handler` on 127.0.0.1:0 until the returned sender is dropped or fired.
pub async fn spawn_server<H: Handler>(handler: H) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server::serve(listener, quick_options(), handler, async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// Serves `handler` on `listener` (bound before the handler could be made) for the rest of
/// the test.
pub fn serve_forever_on<H: Handler>(listener: TcpListener, handler: H) -> SocketAddr {
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server::serve(listener, quick_options(), handler, std::future::pending::<()>()));
    addr
}

/// Serves `handler` for the rest of the test.
pub async fn spawn_forever<H: Handler>(handler: H) -> SocketAddr {
    let (addr, stop) = spawn_server(handler).await;
    std::mem::forget(stop);
    addr
}

/// A port that refuses connections.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}
