//! Protocol upgrades (WebSocket and friends) over HTTP/1.1: once the upstream answers 101,
//! the two upgraded connections are spliced together in a task of their own, which keeps
//! the connection's slot among `max_connections` while it runs.

use http::Response;
use hyper_util::rt::TokioIo;
use tokio_util::task::TaskTracker;

use crate::body::BoxError;
use crate::server::{ClientUpgrade, ConnectionHold};

/// Joins the client's upgraded connection to the upstream's when both are ready, in a task
/// `tunnels` tracks (so shutdown can give it the grace timeout). The tunnel keeps `hold`,
/// its connection's slot among `max_connections`, until it closes.
pub fn splice<B>(
    client: ClientUpgrade,
    upstream_response: &mut Response<B>,
    tunnels: &TaskTracker,
    hold: Option<ConnectionHold>,
) {
    let upstream = hyper::upgrade::on(upstream_response);
    tunnels.spawn(async move {
        let _hold = hold;
        match tokio::try_join!(async { client.connection().await.map_err(BoxError::from) }, async {
            upstream.await.map_err(BoxError::from)
        }) {
            Ok((mut client, upstream)) => {
                let mut upstream = TokioIo::new(upstream);
                if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                    tracing::debug!(%error, "upgraded connection closed with an error");
                }
            }
            Err(error) => tracing::debug!(%error, "upgrade did not complete"),
        }
    });
}
