//! The route table: picks the `[[route]]` for a request by longest path prefix (on segment
//! boundaries), then host, then method. Looks at nothing but host, method and path.
//!
//! Backends disagree about case (Express and IIS match `/Admin` to `/admin`, FastAPI does
//! not), so a path is matched both ways and, when the answers differ, the stricter route
//! wins: `/ADMIN/x` cannot slip past an `/admin/` route to a public `/` one.

use http::Method;

use crate::config::{AuthMode, Route};

/// Routes ordered for matching.
pub struct RouteTable {
    routes: Vec<Route>,
    /// Indices into `routes`, most specific first.
    order: Vec<usize>,
}

impl RouteTable {
    /// Orders `routes`: longer prefixes first; at equal length, host-specific routes, then
    /// method-specific ones.
    pub fn new(routes: Vec<Route>) -> Self {
        let mut order: Vec<usize> = (0..routes.len()).collect();
        order.sort_by_key(|&i| {
            let r = &routes[i];
            (std::cmp::Reverse(r.path.trim_end_matches('/').len()), r.host.is_none(), r.methods.is_none(), i)
        });
        RouteTable { routes, order }
    }

    /// All routes, in config order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route for a request. `host` is lowercase without a port.
    pub fn find(&self, host: Option<&str>, method: &Method, path: &str) -> Option<&Route> {
        let exact = self.find_with(host, method, path, false);
        let folded = self.find_with(host, method, path, true);
        match (exact, folded) {
            (Some(a), Some(b)) if strictness(b) > strictness(a) => Some(b),
            (None, b) => b,
            (a, _) => a,
        }
    }

    fn find_with(&self, host: Option<&str>, method: &Method, path: &str, fold_case: bool) -> Option<&Route> {
        self.order.iter().map(|&i| &self.routes[i]).find(|r| {
            prefix_matches(&r.path, path, fold_case)
                && r.host.as_deref().is_none_or(|h| Some(h) == host)
                && r.methods.as_ref().is_none_or(|m| m.contains(method))
        })
    }
}

/// How much a route demands: its auth mode, then how many rules it adds.
fn strictness(route: &Route) -> (u8, usize) {
    let mode = match route.auth {
        AuthMode::Public => 0,
        AuthMode::Optional => 1,
        AuthMode::Required => 2,
    };
    let r = &route.require;
    (mode, r.org_roles.len() + r.permissions.len() + usize::from(r.metadata.is_some()))
}

/// `/api/` matches `/api`, `/api/` and `/api/x`; `/api` matches the same; neither matches
/// `/apix`. `/` matches everything. With `fold_case`, ASCII case is ignored.
pub fn prefix_matches(prefix: &str, path: &str, fold_case: bool) -> bool {
    let prefix = prefix.trim_end_matches('/');
    let Some(head) = path.get(..prefix.len()) else { return false };
    let same = if fold_case { head.eq_ignore_ascii_case(prefix) } else { head == prefix };
    let rest = &path[prefix.len()..];
    same && (rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn table(toml: &str) -> RouteTable {
        let config = Config::from_toml(toml, &|_| None).unwrap();
        RouteTable::new(config.routes)
    }

    const ROUTES: &str = r#"
        [clerk]
        jwks_url = "http://127.0.0.1:1/jwks"
        [[route]]
        path = "/"
        upstream = "http://127.0.0.1:1"
        auth = "public"
        [[route]]
        path = "/api/"
        upstream = "http://127.0.0.1:2"
        [[route]]
        path = "/api/admin"
        upstream = "http://127.0.0.1:3"
        [[route]]
        path = "/api/"
        host = "internal.example.com"
        upstream = "http://127.0.0.1:4"
        [[route]]
        path = "/api/"
        methods = ["POST"]
        upstream = "http://127.0.0.1:5"
    "#;

    fn pick(t: &RouteTable, host: Option<&str>, method: Method, path: &str) -> Option<usize> {
        t.find(host, &method, path).map(|r| r.index)
    }

    #[test]
    fn longest_prefix_wins_on_segment_boundaries() {
        let t = table(ROUTES);
        assert_eq!(pick(&t, None, Method::GET, "/api/users"), Some(1));
        assert_eq!(pick(&t, None, Method::GET, "/api"), Some(1));
        assert_eq!(pick(&t, None, Method::GET, "/api/admin/x"), Some(2));
        assert_eq!(pick(&t, None, Method::GET, "/api/admin"), Some(2));
        assert_eq!(pick(&t, None, Method::GET, "/api/administrator"), Some(1));
        assert_eq!(pick(&t, None, Method::GET, "/apix"), Some(0));
        assert_eq!(pick(&t, None, Method::GET, "/"), Some(0));
    }

    #[test]
    fn host_and_method_refine_a_prefix() {
        let t = table(ROUTES);
        assert_eq!(pick(&t, Some("internal.example.com"), Method::GET, "/api/x"), Some(3));
        assert_eq!(pick(&t, Some("other.example.com"), Method::GET, "/api/x"), Some(1));
        assert_eq!(pick(&t, None, Method::POST, "/api/x"), Some(4));
    }

    #[test]
    fn no_route_means_none() {
        let t = table(
            r#"
            [clerk]
            jwks_url = "http://127.0.0.1:1/jwks"
            [[route]]
            path = "/api/"
            upstream = "http://127.0.0.1:2"
            methods = ["GET"]
        "#,
        );
        assert_eq!(pick(&t, None, Method::GET, "/other"), None);
        assert_eq!(pick(&t, None, Method::DELETE, "/api/x"), None);
    }

    #[test]
    fn prefixes() {
        assert!(prefix_matches("/", "/anything", false));
        assert!(prefix_matches("/a/", "/a", false));
        assert!(prefix_matches("/a", "/a/b", false));
        assert!(!prefix_matches("/a", "/ab", false));
        assert!(!prefix_matches("/a/b", "/a", false));
        assert!(!prefix_matches("/a/", "/A/b", false));
        assert!(prefix_matches("/a/", "/A/b", true));
        assert!(!prefix_matches("/é/", "/e", true));
    }

    #[test]
    fn a_case_variant_gets_the_stricter_route() {
        let t = table(
            r#"
            [clerk]
            jwks_url = "http://127.0.0.1:1/jwks"
            [[route]]
            path = "/"
            upstream = "http://127.0.0.1:1"
            auth = "public"
            [[route]]
            path = "/admin/"
            upstream = "http://127.0.0.1:2"
            [[route]]
            path = "/public/"
            upstream = "http://127.0.0.1:3"
            auth = "public"
        "#,
        );
        assert_eq!(pick(&t, None, Method::GET, "/ADMIN/users"), Some(1), "like the /admin/ route");
        assert_eq!(pick(&t, None, Method::GET, "/admin/users"), Some(1));
        assert_eq!(pick(&t, None, Method::GET, "/PUBLIC/x"), Some(0), "equally strict: the exact-case match");
    }
}
