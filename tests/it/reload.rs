//! Hot reload through the real binary: `SIGHUP` and file changes (a plain rewrite, a
//! ConfigMap's symlink swap) swap the whole config at once; an invalid one is refused with
//! a line naming the key while the old one serves; restart-only keys are named; requests
//! under load, an in-flight request and an open WebSocket all survive; a rotated TLS
//! certificate is what the next TLS client sees; CORS origins change with the file.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

fn pem() -> String {
    format!("{}/tests/fixtures/rsa_a.pub.pem", env!("CARGO_MANIFEST_DIR"))
}

/// A config on `upstream` whose `/` route has `auth`.
fn config(upstream: SocketAddr, auth: &str) -> TestConfig {
    TestConfig::new().clerk("jwt_key_file", pem()).route(TestRoute::new("/", &format!("http://{upstream}")).auth(auth))
}

/// Writes `config` over the running one, its mirror where the running one has it.
fn rewrite(running: &Running, config: &TestConfig) {
    let mirror = running._dir.path().join("m.db").display().to_string();
    write_atomically(&running.config, &config.clone().mirror("path", mirror).to_toml());
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn metric(running: &Running, series: &str) -> f64 {
    let text = String::from_utf8_lossy(&send(running.admin, get_request("/metrics", &[])).await.body).into_owned();
    Scrape(text).value(series)
}

async fn stop(running: Running) {
    assert_eq!(running.stop().await, Some(0));
}

/// A key file outside the watched directory changes: only `SIGHUP` reloads it.
#[tokio::test]
async fn sighup_reloads_a_rotated_key_file() {
    let upstream = spawn_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let key_file = dir.path().join("keys").join("jwt.pem");
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    std::fs::copy(fixtures.join("rsa_a.pub.pem"), &key_file).unwrap();
    let config = config(upstream, "required")
        .clerk("jwt_key_file", key_file.display().to_string())
        .mirror("path", dir.path().join("m.db").display().to_string());
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config.to_toml()).unwrap();
    let running = start_binary(path, dir, &[]).await;
    let (token_a, token_b) = (key_a().token(&claims_now()), key_b().token(&claims_now()));
    let status = async |token: &str| {
        send(running.proxy, get_request("/a", &[("authorization", &format!("Bearer {token}"))])).await.status
    };
    assert_eq!((status(&token_a).await, status(&token_b).await), (200, 401));

    std::fs::copy(fixtures.join("rsa_b.pub.pem"), &key_file).unwrap();
    running.signal("HUP");
    let line = running.wait_for_log("configuration reloaded");
    assert!(line.contains("SIGHUP"), "{line}");
    assert_eq!((status(&token_a).await, status(&token_b).await), (401, 200), "the rotated key verifies");
    assert_eq!(metric(&running, "clerk_gateway_config_reloads_total{result=\"applied\"}").await, 1.0);
    stop(running).await;
}

#[tokio::test]
async fn an_invalid_config_is_refused_naming_the_key_while_the_old_one_serves() {
    let upstream = spawn_upstream().await;
    let running = run_binary(&config(upstream, "public"), &[]).await;
    let hash =
        |text: &str| format!("clerk_gateway_config_info{{hash=\"{}\"}}", clerk_gateway::reload::config_hash(text));
    let started = std::fs::read_to_string(&running.config).unwrap();
    assert_eq!(metric(&running, &hash(&started)).await, 1.0);

    rewrite(&running, &config(upstream, "required").server("workers", 3));
    running.wait_for_log("configuration reloaded");
    let line = running.wait_for_log("need a restart");
    assert!(line.contains("server.workers"), "the restart-only key is named: {line}");
    assert_eq!(send(running.proxy, get_request("/a", &[])).await.status, 401, "the new policy serves");
    let applied = std::fs::read_to_string(&running.config).unwrap();
    assert_eq!(metric(&running, &hash(&applied)).await, 1.0);

    rewrite(&running, &config(upstream, "public").route(TestRoute::new("/b/", "127.0.0.1:1")));
    let line = running.wait_for_log("configuration reload refused");
    assert!(line.contains("route[1].upstream: relative URL"), "one line naming the key: {line}");
    assert_eq!(send(running.proxy, get_request("/a", &[])).await.status, 401, "the old config still serves");
    assert_eq!(metric(&running, "clerk_gateway_config_reloads_total{result=\"applied\"}").await, 1.0);
    assert_eq!(metric(&running, "clerk_gateway_config_reloads_total{result=\"refused\"}").await, 1.0);
    assert_eq!(metric(&running, &hash(&applied)).await, 1.0, "the hash is still the serving config's");

    let commented = format!("# only a comment changed\n{applied}");
    write_atomically(&running.config, &commented);
    running.wait_for_log("configuration unchanged");
    assert_eq!(
        metric(&running, "clerk_gateway_config_reloads_total{result=\"applied\"}").await,
        1.0,
        "nothing to apply"
    );
    assert_eq!(metric(&running, &hash(&commented)).await, 1.0, "the label is the file's hash");
    stop(running).await;
}

#[tokio::test]
async fn a_rewritten_file_is_picked_up_without_a_signal() {
    let upstream = spawn_upstream().await;
    let running = run_binary(&config(upstream, "public"), &[]).await;
    rewrite(&running, &config(upstream, "required"));
    let line = running.wait_for_log("configuration reloaded");
    assert!(line.contains("file change"), "{line}");
    assert_eq!(send(running.proxy, get_request("/a", &[])).await.status, 401);
    stop(running).await;
}

#[tokio::test]
async fn cors_origins_follow_a_reload() {
    let upstream = spawn_upstream().await;
    let with_origin = |origin: &str| config(upstream, "required").section("cors", "allow_origins", strings(&[origin]));
    let running = run_binary(&with_origin("https://old.example.com"), &[]).await;
    let allowed = async |origin: &str| {
        let reply = send(running.proxy, get_request("/a", &[("origin", origin)])).await;
        assert_eq!(reply.status, 401);
        reply.header("access-control-allow-origin").map(str::to_owned)
    };
    assert_eq!(allowed("https://old.example.com").await.as_deref(), Some("https://old.example.com"));
    rewrite(&running, &with_origin("https://new.example.com"));
    running.wait_for_log("configuration reloaded");
    assert_eq!(allowed("https://old.example.com").await, None);
    assert_eq!(allowed("https://new.example.com").await.as_deref(), Some("https://new.example.com"));
    stop(running).await;
}

/// The layout the kubelet keeps for a ConfigMap volume: `gateway.toml -> ..data/gateway.toml`,
/// `..data -> ..<timestamp>`; an update writes a new timestamped directory and renames a new
/// `..data` link over the old one.
#[tokio::test]
async fn a_configmap_symlink_swap_is_picked_up() {
    use std::os::unix::fs::symlink;
    let upstream = spawn_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mirror = dir.path().join("m.db").display().to_string();
    let volume = dir.path().join("config");
    let version = |name: &str, config: &TestConfig| {
        std::fs::create_dir_all(volume.join(name)).unwrap();
        std::fs::write(volume.join(name).join("gateway.toml"), config.clone().mirror("path", &*mirror).to_toml())
            .unwrap();
    };
    version("..2026_12_01_a", &config(upstream, "public"));
    symlink("..2026_12_01_a", volume.join("..data")).unwrap();
    symlink("..data/gateway.toml", volume.join("gateway.toml")).unwrap();
    let running = start_binary(volume.join("gateway.toml"), dir, &[]).await;
    assert_eq!(send(running.proxy, get_request("/a", &[])).await.status, 200);

    version("..2026_12_01_b", &config(upstream, "required"));
    symlink("..2026_12_01_b", volume.join("..data_tmp")).unwrap();
    std::fs::rename(volume.join("..data_tmp"), volume.join("..data")).unwrap();
    std::fs::remove_dir_all(volume.join("..2026_12_01_a")).unwrap();
    running.wait_for_log("configuration reloaded");
    assert_eq!(send(running.proxy, get_request("/a", &[])).await.status, 401, "the swapped-in config serves");
    stop(running).await;
}

#[tokio::test]
async fn reloads_under_load_fail_no_request_and_keep_tunnels_and_in_flight_requests() {
    let upstream = spawn_upstream().await;
    let (held, held_upstream) = Held::start().await;
    let base = config(upstream, "required");
    let with_slow = |timeout: &str| {
        let slow = TestRoute::new("/slow/", &format!("http://{held_upstream}")).auth("public");
        base.clone().route(slow.set("timeout", timeout))
    };
    let running = run_binary(&with_slow("30s"), &[]).await;
    let token = key_a().token(&claims_now());
    let bearer = format!("Bearer {token}");

    let proxy = running.proxy;
    let slow = tokio::spawn(async move { send(proxy, get_request("/slow/1", &[])).await });
    held.arrived().await;
    let mut tunnel = open_tunnel(proxy, &token).await;

    let stop_load = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop_load, sent, failed, bearer) = (stop_load.clone(), sent.clone(), failed.clone(), bearer.clone());
            tokio::spawn(async move {
                while !stop_load.load(Ordering::Relaxed) {
                    let reply = send(proxy, get_request("/load", &[("authorization", &bearer)])).await;
                    sent.fetch_add(1, Ordering::Relaxed);
                    if reply.status != 200 || reply.seen("x-user-id").as_deref() != Some("user_alice") {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for round in 0..5 {
        let target = sent.load(Ordering::Relaxed) + 300;
        eventually("load between reloads", async || sent.load(Ordering::Relaxed) >= target).await;
        rewrite(&running, &with_slow(&format!("{}s", 31 + round)));
        running.signal("HUP");
        eventually("the reload to count", async || {
            metric(&running, "clerk_gateway_config_reloads_total{result=\"applied\"}").await >= f64::from(round + 1)
        })
        .await;
    }
    let target = sent.load(Ordering::Relaxed) + 300;
    eventually("load after the last reload", async || sent.load(Ordering::Relaxed) >= target).await;
    stop_load.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("{sent} requests across 5 reloads, {failed} failed");
    assert!(sent >= 1800, "a few thousand requests across the reloads: {sent}");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed across 5 reloads");

    tunnel.write_all(b"still open").await.unwrap();
    assert_eq!(read_some(&mut tunnel).await, "still open", "the WebSocket outlives the reloads");
    held.release();
    assert_eq!(slow.await.unwrap().status, 200, "the request in flight during the reloads completes");
    drop(tunnel);
    stop(running).await;
}

/// An upgraded connection through the gateway, past the upstream's greeting.
async fn open_tunnel(proxy: SocketAddr, token: &str) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let upgrade = format!(
        "GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(upgrade.as_bytes()).await.unwrap();
    let mut got = String::new();
    while !got.contains("hello user_alice\n") {
        got.push_str(&read_some(&mut stream).await);
    }
    stream
}

async fn read_some(stream: &mut tokio::net::TcpStream) -> String {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.unwrap().unwrap();
    assert!(n > 0, "the connection closed");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn a_rotated_certificate_is_what_the_next_tls_client_sees() {
    let upstream = spawn_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::copy(fixtures.join("tls.crt"), &cert).unwrap();
    std::fs::copy(fixtures.join("tls.key"), &key).unwrap();
    let config = config(upstream, "public")
        .server("tls_cert", cert.display().to_string())
        .server("tls_key", key.display().to_string())
        .mirror("path", dir.path().join("m.db").display().to_string());
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config.to_toml()).unwrap();
    let running = start_binary(path, dir, &[]).await;
    let (first, mut open) = tls::connect(running.proxy).await;
    assert_eq!(first, tls::der(&fixtures.join("tls.crt")));

    write_atomically(&key, &std::fs::read_to_string(fixtures.join("tls_next.key")).unwrap());
    write_atomically(&cert, &std::fs::read_to_string(fixtures.join("tls_next.crt")).unwrap());
    running.wait_for_log("configuration reloaded");
    let (next, mut fresh) = tls::connect(running.proxy).await;
    assert_eq!(next, tls::der(&fixtures.join("tls_next.crt")), "a new client gets the rotated certificate");
    assert_eq!(tls::get(&mut fresh).await, 200);
    assert_eq!(tls::get(&mut open).await, 200, "a connection from before the rotation keeps working");
    stop(running).await;
}

/// A TLS client that accepts any certificate and reports which one it was shown.
mod tls {
    use std::net::SocketAddr;
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    use rustls::DigitallySignedStruct;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio_rustls::client::TlsStream;

    #[derive(Debug, Default)]
    struct Seen(Mutex<Vec<u8>>);

    impl ServerCertVerifier for Seen {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            *self.0.lock().unwrap() = end_entity.to_vec();
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }

        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms.supported_schemes()
        }
    }

    /// Connects over TLS (HTTP/1.1 by ALPN); the end-entity certificate shown, and the stream.
    pub async fn connect(addr: SocketAddr) -> (Vec<u8>, TlsStream<TcpStream>) {
        let seen = Arc::new(Seen::default());
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(seen.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap();
        let der = seen.0.lock().unwrap().clone();
        (der, stream)
    }

    /// One keep-alive GET on `stream`; its status.
    pub async fn get(stream: &mut TlsStream<TcpStream>) -> u16 {
        stream.write_all(b"GET /tls HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
        let mut buf = vec![0u8; 8192];
        let n = stream.read(&mut buf).await.unwrap();
        super::raw_status(&String::from_utf8_lossy(&buf[..n]))
    }

    pub fn der(path: &Path) -> Vec<u8> {
        CertificateDer::from_pem_file(path).unwrap().to_vec()
    }
}
