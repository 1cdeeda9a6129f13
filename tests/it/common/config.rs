//! Test configurations, built as TOML tables rather than edited as text: `TestConfig`
//! sets and removes keys section by section (removing a key that is not there fails the
//! test, and a misspelt key fails the gateway's own validation), `TestRoute` builds one
//! `[[route]]`. `standard` is the configuration most tests start from.

use std::net::SocketAddr;

use toml::{Table, Value};

use super::clerk::{FAKE_SECRET, FakeBapi};
use super::jwks::FakeJwks;
use super::webhooks::WEBHOOK_SECRET;
use super::{APP, ISSUER, PUBLISHABLE_KEY};

/// A `gateway.toml` under construction.
#[derive(Clone, Debug)]
pub struct TestConfig {
    doc: Table,
}

impl Default for TestConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl TestConfig {
    /// Loopback listeners on port 0, no drain delay, an in-memory mirror; no keys, no routes.
    pub fn new() -> Self {
        TestConfig { doc: Table::new() }
            .server("listen", "127.0.0.1:0")
            .server("drain_delay", "0s")
            .admin("listen", "127.0.0.1:0")
            .mirror("path", ":memory:")
    }

    /// The standard test config: the fake JWKS, issuer and azp checks, a sign-in URL, and
    /// routes for every auth mode and rule, all to `upstream`.
    pub fn standard(jwks: &FakeJwks, upstream: SocketAddr) -> Self {
        let up = format!("http://{upstream}");
        Self::new()
            .server("grace_timeout", "5s")
            .clerk("jwks_url", jwks.url())
            .clerk("publishable_key", PUBLISHABLE_KEY)
            .clerk("issuer", ISSUER)
            .clerk("authorized_parties", strings(&[APP]))
            .clerk("sign_in_url", "https://accounts.example.com/sign-in")
            .route(TestRoute::new("/api/", &up))
            .route(TestRoute::new("/admin/", &up).require("org_role", strings(&["org:admin", "org:owner"])))
            .route(TestRoute::new("/billing/", &up).require("permission", strings(&["org:billing:manage"])))
            .route(TestRoute::new("/optional/", &up).auth("optional"))
            .route(TestRoute::new("/public/", &up).auth("public"))
            .route(TestRoute::new("/slow/", &up).auth("public").set("timeout", "300ms"))
            .route(TestRoute::new("/upload/", &up).auth("public").set("max_body", 1024))
            .route(TestRoute::new("/stripped/", &format!("{up}/base")).auth("public").set("strip_prefix", true))
            .route(TestRoute::new("/posts/", &up).set("methods", strings(&["POST"])).auth("public"))
    }

    /// The webhook endpoint on, with the test signing secret, and the mirror at `path`.
    pub fn webhook(self, mirror_path: &str) -> Self {
        self.section("webhook", "signing_secret", WEBHOOK_SECRET).mirror("path", mirror_path)
    }

    /// Keys and users from the fake Backend API instead of the fake JWKS.
    pub fn backend_api(self, bapi: &FakeBapi) -> Self {
        self.without("clerk", "jwks_url").clerk("secret_key", FAKE_SECRET).clerk("api_url", bapi.url())
    }

    /// Sets `[server] key`.
    pub fn server(self, key: &str, value: impl Into<Value>) -> Self {
        self.section("server", key, value)
    }

    /// Sets `[admin] key`.
    pub fn admin(self, key: &str, value: impl Into<Value>) -> Self {
        self.section("admin", key, value)
    }

    /// Sets `[clerk] key`.
    pub fn clerk(self, key: &str, value: impl Into<Value>) -> Self {
        self.section("clerk", key, value)
    }

    /// Sets `[mirror] key`.
    pub fn mirror(self, key: &str, value: impl Into<Value>) -> Self {
        self.section("mirror", key, value)
    }

    /// Sets `[headers] key`.
    pub fn headers(self, key: &str, value: impl Into<Value>) -> Self {
        self.section("headers", key, value)
    }

    /// Sets `[auth_endpoints] key`.
    pub fn auth_endpoints(self, key: &str, value: impl Into<Value>) -> Self {
        self.section("auth_endpoints", key, value)
    }

    /// Sets `key` in the table `section`, creating the table.
    pub fn section(mut self, section: &str, key: &str, value: impl Into<Value>) -> Self {
        let table = self.doc.entry(section).or_insert_with(|| Value::Table(Table::new()));
        let Value::Table(table) = table else { panic!("[{section}] is not a table") };
        table.insert(key.to_owned(), value.into());
        self
    }

    /// Removes `key` from `section`; fails the test when it is not there.
    pub fn without(mut self, section: &str, key: &str) -> Self {
        let removed = self.doc.get_mut(section).and_then(Value::as_table_mut).and_then(|t| t.remove(key));
        assert!(removed.is_some(), "[{section}] {key} is not in the config to remove");
        self
    }

    /// Adds a `[[route]]` after the others.
    pub fn route(mut self, route: TestRoute) -> Self {
        let routes = self.doc.entry("route").or_insert_with(|| Value::Array(Vec::new()));
        let Value::Array(routes) = routes else { panic!("route is not an array") };
        routes.push(Value::Table(route.0));
        self
    }

    /// The TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string(&self.doc).expect("a test config renders")
    }
}

/// One `[[route]]`.
#[derive(Clone, Debug)]
pub struct TestRoute(Table);

impl TestRoute {
    /// `path` to `upstream` (a URL), `auth` left at its default (`required`).
    pub fn new(path: &str, upstream: &str) -> Self {
        TestRoute(Table::new()).set("path", path).set("upstream", upstream)
    }

    /// Sets `auth`.
    pub fn auth(self, mode: &str) -> Self {
        self.set("auth", mode)
    }

    /// Adds a `require` rule.
    pub fn require(mut self, rule: &str, value: impl Into<Value>) -> Self {
        let require = self.0.entry("require").or_insert_with(|| Value::Table(Table::new()));
        let Value::Table(require) = require else { panic!("require is not a table") };
        require.insert(rule.to_owned(), value.into());
        self
    }

    /// Sets any other key.
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.insert(key.to_owned(), value.into());
        self
    }
}

/// A TOML array of strings.
pub fn strings(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|s| Value::from(*s)).collect())
}
