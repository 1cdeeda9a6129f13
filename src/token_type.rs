//! Clerk's four kinds of token (`session_token`, `api_key`, `m2m_token`, `oauth_token`, as
//! in `authenticateRequest({ acceptsToken })`) and the set of them a route accepts. Names
//! only: telling a token's kind from its shape is `auth::machine`'s business.

use std::fmt;

/// A kind of Clerk token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenType {
    /// A session JWT (Bearer header or `__session` cookie).
    SessionToken,
    /// An API key, `ak_…`.
    ApiKey,
    /// A machine-to-machine token, `mt_…` or a JWT whose `sub` is `mch_…`.
    M2mToken,
    /// An OAuth access token, `oat_…` or a JWT of `typ` `at+jwt`.
    OAuthToken,
}

impl TokenType {
    /// Every kind, in the order of `acceptsToken`'s documentation.
    pub const ALL: [TokenType; 4] =
        [TokenType::SessionToken, TokenType::ApiKey, TokenType::M2mToken, TokenType::OAuthToken];

    /// Clerk's name, as written in `accepts` and sent in `X-Auth-Token-Type`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenType::SessionToken => "session_token",
            TokenType::ApiKey => "api_key",
            TokenType::M2mToken => "m2m_token",
            TokenType::OAuthToken => "oauth_token",
        }
    }

    /// The kind Clerk calls `name`.
    pub fn from_name(name: &str) -> Option<TokenType> {
        TokenType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for TokenType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kinds of token a route accepts (`accepts`); by default only session tokens.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenTypes(u8);

impl TokenTypes {
    /// Session tokens only, Clerk's default.
    pub const SESSION: TokenTypes = TokenTypes(TokenType::SessionToken.bit());

    /// The set of `types`.
    pub fn of(types: impl IntoIterator<Item = TokenType>) -> TokenTypes {
        TokenTypes(types.into_iter().fold(0, |bits, t| bits | t.bit()))
    }

    /// Whether `kind` is accepted.
    pub fn contains(self, kind: TokenType) -> bool {
        self.0 & kind.bit() != 0
    }

    /// Whether any machine token (API key, M2M, OAuth) is accepted.
    pub fn any_machine(self) -> bool {
        self.0 & !TokenType::SessionToken.bit() != 0
    }

    /// Whether nothing is accepted.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The accepted kinds, in `TokenType::ALL` order.
    pub fn iter(self) -> impl Iterator<Item = TokenType> {
        TokenType::ALL.into_iter().filter(move |t| self.contains(*t))
    }
}

impl Default for TokenTypes {
    fn default() -> Self {
        TokenTypes::SESSION
    }
}

impl fmt::Debug for TokenTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(TokenType::as_str)).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sets_hold_what_they_were_given() {
        for kind in TokenType::ALL {
            assert_eq!(TokenType::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(TokenType::from_name("API_KEY"), None);
        let machines = TokenTypes::of([TokenType::ApiKey, TokenType::OAuthToken]);
        assert!(machines.contains(TokenType::ApiKey) && !machines.contains(TokenType::SessionToken));
        assert!(machines.any_machine() && !TokenTypes::SESSION.any_machine());
        assert_eq!(machines.iter().collect::<Vec<_>>(), [TokenType::ApiKey, TokenType::OAuthToken]);
        assert!(TokenTypes::of([]).is_empty());
        assert_eq!(format!("{machines:?}"), r#"["api_key", "oauth_token"]"#);
    }
}
