//! Signed companion links (JWT, HS256) and the session cookie they are exchanged for.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use rf_core::domain::Role;
use rf_core::ids::{AccountId, LinkId, UserId};
use rf_core::links::{LinkScope, LinkSigner, ShareLink};
use rf_core::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a token is for: a link in a chat message, or the cookie it was exchanged for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Link,
    Cookie,
}

/// The claims of a companion token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The share link this token stems from (revoking it revokes the token).
    pub jti: LinkId,
    pub sub: UserId,
    pub acc: AccountId,
    pub role: Role,
    pub scope: LinkScope,
    pub typ: TokenKind,
    /// Seconds since the epoch.
    pub iat: i64,
    pub exp: i64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Signed correctly, but past its expiry.
    Expired,
    /// Forged, tampered with, truncated, or of the wrong kind.
    Invalid,
}

/// Signs and verifies companion tokens with a key derived from the master key.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    public_url: String,
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKeys")
            .field("key", &"[REDACTED]")
            .field("public_url", &self.public_url)
            .finish()
    }
}

impl TokenKeys {
    /// `secret` must be at least 32 random bytes; `public_url` is where the companion is reached.
    pub fn new(secret: &[u8], public_url: &str) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            public_url: public_url.trim_end_matches('/').to_owned(),
        }
    }

    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// A token of `kind` for `link`, expiring at `expires_at`.
    pub fn sign(
        &self,
        link: &ShareLink,
        kind: TokenKind,
        issued_at: Timestamp,
        expires_at: Timestamp,
    ) -> String {
        let claims = Claims {
            jti: link.id,
            sub: link.user_id,
            acc: link.account_id,
            role: link.role,
            scope: link.scope,
            typ: kind,
            iat: issued_at.as_millis() / 1000,
            exp: expires_at.as_millis() / 1000,
        };
        // HS256 over our own claims cannot fail.
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).unwrap_or_default()
    }

    /// The claims of a valid, unexpired token of `kind`, checked against `now`.
    pub fn verify(
        &self,
        token: &str,
        kind: TokenKind,
        now: Timestamp,
    ) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked below against the injected clock, so tests can move time.
        validation.validate_exp = false;
        validation.required_spec_claims = ["exp".to_owned()].into_iter().collect();
        let claims = decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?
            .claims;
        if claims.typ != kind {
            return Err(TokenError::Invalid);
        }
        if claims.exp <= now.as_millis() / 1000 {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

impl LinkSigner for TokenKeys {
    fn url_for(&self, link: &ShareLink) -> String {
        let token = self.sign(link, TokenKind::Link, link.created_at, link.expires_at);
        format!("{}/auth/link?token={token}", self.public_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rf_core::ids::SessionId;

    fn link(expires_in_secs: i64) -> ShareLink {
        let now = Timestamp::from_millis(1_795_000_000_000);
        ShareLink {
            id: LinkId::new(),
            account_id: AccountId::new(),
            user_id: UserId::new(),
            role: Role::Engineer,
            scope: LinkScope::Session(SessionId::new()),
            created_at: now,
            expires_at: now.plus_millis(expires_in_secs * 1000),
            revoked_at: None,
        }
    }

    const NOW: Timestamp = Timestamp::from_millis(1_795_000_000_000);

    #[test]
    fn a_signed_link_verifies() {
        let keys = TokenKeys::new(&[7; 32], "http://127.0.0.1:8080/");
        let link = link(3600);
        let url = keys.url_for(&link);
        assert!(url.starts_with("http://127.0.0.1:8080/auth/link?token="));
        let token = url.split("token=").nth(1).unwrap();
        let claims = keys.verify(token, TokenKind::Link, NOW).unwrap();
        assert_eq!(
            (claims.jti, claims.acc, claims.scope),
            (link.id, link.account_id, link.scope)
        );
    }

    #[test]
    fn tampering_is_invalid() {
        let keys = TokenKeys::new(&[7; 32], "http://x");
        let token = keys.sign(
            &link(3600),
            TokenKind::Link,
            NOW,
            NOW.plus_millis(3_600_000),
        );
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = parts[1].chars().rev().collect();
        assert_eq!(
            keys.verify(&parts.join("."), TokenKind::Link, NOW),
            Err(TokenError::Invalid)
        );
        let other = TokenKeys::new(&[8; 32], "http://x");
        assert_eq!(
            other.verify(&token, TokenKind::Link, NOW),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            keys.verify("not-a-token", TokenKind::Link, NOW),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn expiry_is_reported_as_such() {
        let keys = TokenKeys::new(&[7; 32], "http://x");
        let token = keys.sign(&link(60), TokenKind::Link, NOW, NOW.plus_millis(60_000));
        assert!(
            keys.verify(&token, TokenKind::Link, NOW.plus_millis(59_000))
                .is_ok()
        );
        assert_eq!(
            keys.verify(&token, TokenKind::Link, NOW.plus_millis(61_000)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn a_link_is_not_a_cookie() {
        let keys = TokenKeys::new(&[7; 32], "http://x");
        let token = keys.sign(&link(60), TokenKind::Link, NOW, NOW.plus_millis(60_000));
        assert_eq!(
            keys.verify(&token, TokenKind::Cookie, NOW),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let keys = TokenKeys::new(b"super-secret-signing-key-material", "http://x");
        assert!(!format!("{keys:?}").contains("super-secret"));
    }
}
