//! The real gateway, in process on 127.0.0.1:0 with a manual clock, and what a test reads
//! of it: requests, readiness, and metrics. Reading a metric the gateway does not export
//! fails the test instead of reading as zero.

use std::net::SocketAddr;
use std::time::Duration;

use clerk_gateway::webhook::Outcome;
use clerk_gateway::webhook::events::EventKind;
use clerk_gateway::{Clock, Config, Error, Listeners};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::client::{Reply, get_request, send};
use super::config::TestConfig;
use super::jwks::FakeJwks;
use super::upstream::spawn_upstream;
use super::{NOW_MS, init_logs};

pub struct TestGateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub clock: Clock,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), Error>>>,
}

impl TestGateway {
    /// Starts the gateway on `config` with a manual clock at `NOW_MS`, and waits until ready.
    pub async fn start(config: &TestConfig) -> TestGateway {
        let gw = Self::start_unready(config).await;
        gw.wait_ready().await;
        gw
    }

    /// Starts the gateway without waiting for readiness.
    pub async fn start_unready(config: &TestConfig) -> TestGateway {
        init_logs();
        let config = Config::from_toml(&config.to_toml(), &|_| None).unwrap_or_else(|e| panic!("test config: {e}"));
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (addr, admin_addr) = (proxy.local_addr().unwrap(), admin.local_addr().unwrap());
        let clock = Clock::manual(NOW_MS);
        let (stop, stopped) = oneshot::channel::<()>();
        let handle =
            tokio::spawn(clerk_gateway::run(config, None, Listeners { proxy, admin }, clock.clone(), async move {
                let _ = stopped.await;
            }));
        TestGateway { addr, admin: admin_addr, clock, stop: Some(stop), handle: Some(handle) }
    }

    pub async fn wait_ready(&self) {
        let mut last = String::new();
        for _ in 0..400 {
            let readyz = self.admin_get("/readyz").await;
            if readyz.status == 200 {
                return;
            }
            last = String::from_utf8_lossy(&readyz.body).into_owned();
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("gateway not ready after 10 s; /readyz said:\n{last}");
    }

    pub async fn admin_get(&self, path: &str) -> Reply {
        send(self.admin, get_request(path, &[])).await
    }

    pub async fn metrics(&self) -> String {
        String::from_utf8_lossy(&self.admin_get("/metrics").await.body).into_owned()
    }

    /// `/metrics`, ready to be read series by series.
    pub async fn scrape(&self) -> Scrape {
        Scrape(self.metrics().await)
    }

    /// The value of one series (its exact name with labels); see `Scrape::value`.
    pub async fn metric(&self, series: &str) -> f64 {
        self.scrape().await.value(series)
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        send(self.addr, get_request(path, headers)).await
    }

    /// GET with a Bearer token.
    pub async fn get_with_token(&self, path: &str, token: &str) -> Reply {
        self.get(path, &[("authorization", &format!("Bearer {token}"))]).await
    }

    /// Fires the shutdown future; `stopped` waits for `run` to return.
    pub fn trigger_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    pub async fn stopped(&mut self) -> Result<(), Error> {
        self.handle.take().unwrap().await.unwrap()
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(handle) = &self.handle {
            handle.abort();
        }
        if !std::thread::panicking() {
            super::logs::assert_clean();
        }
    }
}

/// Polls `check` every 25 ms until it holds; fails the test after 10 s, naming `what`.
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..400 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Fake JWKS with key A, an echo upstream and the gateway on the standard config.
pub async fn standard() -> (TestGateway, FakeJwks) {
    let jwks = FakeJwks::with_key_a().await;
    let upstream = spawn_upstream().await;
    let gw = TestGateway::start(&TestConfig::standard(&jwks, upstream)).await;
    (gw, jwks)
}

/// Families the gateway leaves out of `/metrics` while a series is zero, with their labels
/// in the order it renders them.
const SPARSE: [(&str, [&str; 2]); 2] = [
    ("clerk_gateway_requests_total", ["route", "status"]),
    ("clerk_gateway_webhook_events_total", ["type", "outcome"]),
];

/// One `/metrics` text.
pub struct Scrape(pub String);

impl Scrape {
    /// The value of `series` (`name` or `name{label="value",…}` exactly as rendered). The
    /// series must be in the text, except in the families the gateway renders sparsely,
    /// where a series whose family is there, with every label in the rendered order, each
    /// naming something the gateway counts, reads as zero. Anything else fails the test.
    pub fn value(&self, series: &str) -> f64 {
        if let Some(value) = self.0.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')) {
            return value.trim().parse().unwrap_or_else(|_| panic!("{series}: not a number: {value}"));
        }
        let (family, labels) = series.split_once('{').unwrap_or((series, ""));
        let sparse = SPARSE.iter().find(|(name, _)| *name == family);
        let Some((_, label_names)) = sparse else { panic!("no metric {series} in /metrics:\n{}", self.0) };
        assert!(self.0.contains(&format!("# TYPE {family} ")), "no metric family {family} in /metrics");
        let labels = parse_labels(labels.trim_end_matches('}'));
        let names: Vec<&str> = labels.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, label_names, "{series}: not a series of {family}");
        for (name, value) in labels {
            assert!(self.knows(family, name, value), "{series}: {name}=\"{value}\" is nothing the gateway counts");
        }
        0.0
    }

    /// Whether a label value of a sparse family is one the gateway can count.
    fn knows(&self, family: &str, name: &str, value: &str) -> bool {
        match (family, name) {
            ("clerk_gateway_webhook_events_total", "type") => EventKind::NAMES.contains(&value),
            ("clerk_gateway_webhook_events_total", "outcome") => Outcome::NAMES.contains(&value),
            ("clerk_gateway_requests_total", "route") => {
                value == "none" || self.0.contains(&format!("route=\"{value}\""))
            }
            ("clerk_gateway_requests_total", "status") => value.parse::<u16>().is_ok_and(|s| (100..600).contains(&s)),
            _ => false,
        }
    }
}

/// `a="x",b="y"` → `[("a", "x"), ("b", "y")]` (the gateway's label values have no commas).
fn parse_labels(text: &str) -> Vec<(&str, &str)> {
    text.split(',')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or_else(|| panic!("not a label: {pair}"));
            (name, value.trim_matches('"'))
        })
        .collect()
}
