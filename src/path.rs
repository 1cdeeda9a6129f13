//! Request-path normalization: the one form the gateway routes on and forwards, so that a
//! path can never mean one thing to the router and another to the upstream.
//!
//! Percent-encoded unreserved characters are decoded (`%2e` becomes `.`), other escapes are
//! kept with uppercase hex, dot segments are resolved, and empty segments (`//`) are
//! collapsed. Encoded `/`, `\` and NUL, raw `\` and `;`, and malformed escapes are refused:
//! there is no normal form for them that every backend would agree on.

use std::borrow::Cow;

/// Why a path has no normal form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not an origin-form path (does not start with `/`).
    #[error("path must start with /")]
    NotAbsolute,
    /// `%` not followed by two hex digits.
    #[error("malformed percent-encoding")]
    BadEscape,
    /// `%2F`, `%5C`, `%00` or a raw backslash: ambiguous between backends.
    #[error("encoded separator or NUL in path")]
    AmbiguousByte,
    /// A `;` path parameter: Java servlet containers drop `;…` from each segment before
    /// routing, so `/public/..;/admin` would mean `/admin` to them.
    #[error("path parameters (;) are not accepted")]
    PathParameter,
}

/// Returns the normal form of `path` (the part of the request target before `?`).
///
/// # Errors
/// `PathError` when the path cannot be normalized without guessing.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if path.contains('\\') {
        return Err(PathError::AmbiguousByte);
    }
    if path.contains(';') {
        return Err(PathError::PathParameter);
    }
    if is_normal(path) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(path)?;
    Ok(Cow::Owned(resolve_segments(&decoded)))
}

/// Fast check for the common case: no escapes, no dot segments, no empty segments.
fn is_normal(path: &str) -> bool {
    !path.contains('%')
        && !path.contains("//")
        && path.split('/').skip(1).all(|segment| segment != "." && segment != "..")
}

fn decode_unreserved(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            let start = i;
            while i < bytes.len() && bytes[i] != b'%' {
                i += 1;
            }
            out.push_str(&path[start..i]);
            continue;
        }
        let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEscape)?;
        let value =
            (hex_value(hex[0]).ok_or(PathError::BadEscape)? << 4) | hex_value(hex[1]).ok_or(PathError::BadEscape)?;
        match value {
            b'/' | b'\\' | 0 => return Err(PathError::AmbiguousByte),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(char::from(value)),
            _ => {
                out.push('%');
                out.push(char::from(b"0123456789ABCDEF"[usize::from(value >> 4)]));
                out.push(char::from(b"0123456789ABCDEF"[usize::from(value & 0xF)]));
            }
        }
        i += 3;
    }
    Ok(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Resolves `.` and `..` (never above the root) and drops empty segments. A path that ended
/// in `/`, `/.` or `/..` keeps a trailing slash, as RFC 3986 §5.2.4 does.
fn resolve_segments(path: &str) -> String {
    let mut stack: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path.split('/').skip(1) {
        trailing_slash = matches!(segment, "" | "." | "..");
        match segment {
            "" | "." => {}
            ".." => {
                stack.pop();
            }
            s => stack.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &stack {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || stack.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, PathError> {
        normalize(p).map(Cow::into_owned)
    }

    #[test]
    fn normal_paths_are_borrowed() {
        for p in ["/", "/api/users", "/api/users/", "/a.b/c..d/.e", "/x-y_z~1"] {
            assert!(matches!(normalize(p), Ok(Cow::Borrowed(_))), "{p}");
        }
    }

    #[test]
    fn dot_segments_resolve() {
        assert_eq!(norm("/public/../admin").unwrap(), "/admin");
        assert_eq!(norm("/public/./admin").unwrap(), "/public/admin");
        assert_eq!(norm("/../../etc/passwd").unwrap(), "/etc/passwd");
        assert_eq!(norm("/a/b/..").unwrap(), "/a/");
        assert_eq!(norm("/a/b/.").unwrap(), "/a/b/");
        assert_eq!(norm("/..").unwrap(), "/");
    }

    #[test]
    fn encoded_dots_are_dot_segments() {
        assert_eq!(norm("/public/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(norm("/public/%2E./admin").unwrap(), "/admin");
        assert_eq!(norm("/public/.%2e/admin").unwrap(), "/admin");
        assert_eq!(norm("/%61dmin").unwrap(), "/admin");
    }

    #[test]
    fn doubled_slashes_collapse() {
        assert_eq!(norm("//admin").unwrap(), "/admin");
        assert_eq!(norm("/public//..//admin").unwrap(), "/admin");
        assert_eq!(norm("/api///users//").unwrap(), "/api/users/");
    }

    #[test]
    fn other_escapes_are_kept_uppercase() {
        assert_eq!(norm("/files/a%20b").unwrap(), "/files/a%20b");
        assert_eq!(norm("/files/%c3%a9").unwrap(), "/files/%C3%A9");
        assert_eq!(norm("/q/%3f").unwrap(), "/q/%3F");
    }

    #[test]
    fn ambiguous_input_fails_closed() {
        assert_eq!(norm("/public/..%2fadmin"), Err(PathError::AmbiguousByte));
        assert_eq!(norm("/public/..%2Fadmin"), Err(PathError::AmbiguousByte));
        assert_eq!(norm("/public/..%5cadmin"), Err(PathError::AmbiguousByte));
        assert_eq!(norm("/public\\..\\admin"), Err(PathError::AmbiguousByte));
        assert_eq!(norm("/a%00b"), Err(PathError::AmbiguousByte));
        assert_eq!(norm("/a%2"), Err(PathError::BadEscape));
        assert_eq!(norm("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(norm("admin"), Err(PathError::NotAbsolute));
        assert_eq!(norm("*"), Err(PathError::NotAbsolute));
        assert_eq!(norm("/public/..;/admin"), Err(PathError::PathParameter));
        assert_eq!(norm("/admin;jsessionid=1/users"), Err(PathError::PathParameter));
    }

    #[test]
    fn normal_form_is_a_fixed_point() {
        for p in ["/public/%2e%2e/admin", "//a/./b/../c/", "/x/%7euser/%41", "/a%20b/..", "/files/%c3%a9/./x"] {
            let once = norm(p).unwrap_or_else(|e| panic!("{p} should normalize: {e:?}"));
            assert_eq!(norm(&once), Ok(once.clone()), "{p}");
        }
        assert_eq!(norm("/%2e%2e%2f"), Err(PathError::AmbiguousByte), "refused, so it has no normal form");
    }
}
