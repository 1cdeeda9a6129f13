//! Why a request is signed out: Clerk's reason names (TokenVerificationErrorReason and
//! AuthErrorReason), plus the few this gateway adds for checks Clerk's SDKs do not make.

/// A signed-out reason. The discriminant doubles as an index into the metrics table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No Bearer header and no session cookie.
    SessionTokenMissing,
    /// Malformed token, or ambiguous credentials (two different tokens).
    TokenInvalid,
    /// `alg` not RS256/RS384/RS512 or not the key's declared algorithm.
    TokenInvalidAlgorithm,
    /// Signature does not verify.
    TokenInvalidSignature,
    /// A claim has the wrong type or a required claim is missing.
    TokenVerificationFailed,
    /// `exp` is past (beyond the clock skew).
    TokenExpired,
    /// `nbf` is in the future (beyond the clock skew).
    TokenNotActiveYet,
    /// `iat` is in the future (beyond the clock skew).
    TokenIatInTheFuture,
    /// `azp` missing or not an authorized party.
    TokenInvalidAuthorizedParties,
    /// `iss` is not this instance's issuer (a gateway check; Clerk's JS SDK skips it).
    TokenInvalidIssuer,
    /// Not a session token: machine token, OAuth access token, JWT template, no `sid`.
    TokenTypeMismatch,
    /// No key with the token's `kid`, even after a refetch.
    JwkKidMismatch,
    /// The JWKS could not be loaded and no key set is cached.
    JwkRemoteFailedToLoad,
    /// `sts` is `pending`: the session has tasks left before it is active.
    SessionPending,
    /// The session was revoked or ended (webhook-fed revocation list).
    SessionRevoked,
    /// Cookie path: neither a session cookie nor `__client_uat` (nothing to go on).
    SessionTokenAndUatMissing,
    /// Cookie path: a session cookie, but `__client_uat` is missing or `0` (signed out).
    SessionTokenWithoutClientUat,
    /// Cookie path: `__client_uat` says signed in, but there is no session cookie.
    ClientUatWithoutSessionToken,
    /// Cookie path: the session token predates the client's last change.
    SessionTokenIatBeforeClientUat,
    /// Development instance without a dev-browser token.
    DevBrowserMissing,
    /// Development instance with a dev-browser token in the URL to sync.
    DevBrowserSync,
    /// A machine token Clerk (or a webhook) says is revoked.
    TokenRevoked,
    /// No Authorization token on a route that accepts only machine tokens (cookies are
    /// never read for them).
    TokenMissing,
}

impl Reason {
    /// Every reason, in discriminant order.
    pub const ALL: [Reason; 23] = [
        Reason::SessionTokenMissing,
        Reason::TokenInvalid,
        Reason::TokenInvalidAlgorithm,
        Reason::TokenInvalidSignature,
        Reason::TokenVerificationFailed,
        Reason::TokenExpired,
        Reason::TokenNotActiveYet,
        Reason::TokenIatInTheFuture,
        Reason::TokenInvalidAuthorizedParties,
        Reason::TokenInvalidIssuer,
        Reason::TokenTypeMismatch,
        Reason::JwkKidMismatch,
        Reason::JwkRemoteFailedToLoad,
        Reason::SessionPending,
        Reason::SessionRevoked,
        Reason::SessionTokenAndUatMissing,
        Reason::SessionTokenWithoutClientUat,
        Reason::ClientUatWithoutSessionToken,
        Reason::SessionTokenIatBeforeClientUat,
        Reason::DevBrowserMissing,
        Reason::DevBrowserSync,
        Reason::TokenRevoked,
        Reason::TokenMissing,
    ];

    /// Clerk's spelling, as sent in 401 bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::SessionTokenMissing => "session-token-missing",
            Reason::TokenInvalid => "token-invalid",
            Reason::TokenInvalidAlgorithm => "token-invalid-algorithm",
            Reason::TokenInvalidSignature => "token-invalid-signature",
            Reason::TokenVerificationFailed => "token-verification-failed",
            Reason::TokenExpired => "token-expired",
            Reason::TokenNotActiveYet => "token-not-active-yet",
            Reason::TokenIatInTheFuture => "token-iat-in-the-future",
            Reason::TokenInvalidAuthorizedParties => "token-invalid-authorized-parties",
            Reason::TokenInvalidIssuer => "token-invalid-issuer",
            Reason::TokenTypeMismatch => "token-type-mismatch",
            Reason::JwkKidMismatch => "jwk-kid-mismatch",
            Reason::JwkRemoteFailedToLoad => "jwk-remote-failed-to-load",
            Reason::SessionPending => "session-pending",
            Reason::SessionRevoked => "session-revoked",
            Reason::SessionTokenAndUatMissing => "session-token-and-uat-missing",
            Reason::SessionTokenWithoutClientUat => "session-token-but-no-client-uat",
            Reason::ClientUatWithoutSessionToken => "client-uat-but-no-session-token",
            Reason::SessionTokenIatBeforeClientUat => "session-token-iat-before-client-uat",
            Reason::DevBrowserMissing => "dev-browser-missing",
            Reason::DevBrowserSync => "dev-browser-sync",
            Reason::TokenRevoked => "token-revoked",
            Reason::TokenMissing => "token-missing",
        }
    }

    /// The `__clerk_hs_reason` a handshake for this reason carries (Clerk names time
    /// failures after the session token, and the gateway does no networked refresh).
    pub fn handshake_reason(self) -> &'static str {
        match self {
            Reason::TokenExpired => "session-token-expired-refresh-non-eligible-no-refresh-cookie",
            Reason::TokenNotActiveYet => "session-token-nbf",
            Reason::TokenIatInTheFuture => "session-token-iat-in-the-future",
            other => other.as_str(),
        }
    }

    /// Position in `ALL`.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_discriminant_order_and_names_are_unique() {
        for (i, reason) in Reason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
        }
        let names: std::collections::HashSet<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), Reason::ALL.len());
    }
}
