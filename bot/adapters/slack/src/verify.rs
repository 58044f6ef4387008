//! Slack request signing: every HTTP request Slack sends carries `X-Slack-Signature`, an HMAC-SHA256
//! of `v0:{timestamp}:{raw body}` under the app's signing secret, and `X-Slack-Request-Timestamp`.
//! The HMAC itself is slack-morphism's (constant-time compare, five-minute window); this module turns
//! its errors into the answer a route gives.

use std::fmt;

use slack_morphism::SlackSigningSecret;
use slack_morphism::signature_verifier::{
    SlackEventSignatureVerifier, SlackEventSignatureVerifierError,
};

/// The header carrying the request signature.
pub const SIGNATURE_HEADER: &str = SlackEventSignatureVerifier::SLACK_SIGNED_HASH_HEADER;
/// The header carrying the request timestamp, in Unix seconds.
pub const TIMESTAMP_HEADER: &str = SlackEventSignatureVerifier::SLACK_SIGNED_TIMESTAMP;

/// Why a request was refused. Everything but [`Rejection::Misconfigured`] is the caller's fault and
/// answers 401; a misconfigured secret is ours and answers 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// One of the two signing headers is absent or not text.
    Unsigned,
    /// The signature does not match the body under our secret.
    Forged,
    /// Correctly signed, but the timestamp is more than five minutes from now: a replay.
    Stale,
    /// No signing secret is configured.
    Misconfigured,
}

impl Rejection {
    /// Whether the request, not the configuration, is at fault.
    pub fn is_unauthorized(self) -> bool {
        !matches!(self, Rejection::Misconfigured)
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rejection::Unsigned => "missing Slack signature headers",
            Rejection::Forged => "Slack signature does not match",
            Rejection::Stale => "Slack request timestamp is outside the five-minute window",
            Rejection::Misconfigured => "no Slack signing secret is configured",
        })
    }
}

impl std::error::Error for Rejection {}

/// Checks inbound requests against one app's signing secret.
#[derive(Clone)]
pub struct RequestVerifier {
    inner: SlackEventSignatureVerifier,
}

impl fmt::Debug for RequestVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestVerifier { .. }")
    }
}

impl RequestVerifier {
    /// A verifier for `signing_secret` (the app's "Signing Secret", not a token).
    pub fn new(signing_secret: &str) -> Self {
        Self {
            inner: SlackEventSignatureVerifier::new(&SlackSigningSecret::new(
                signing_secret.to_owned(),
            )),
        }
    }

    /// Verifies a request from its two header values and its raw body, byte for byte as received.
    /// The signature is checked before the timestamp, so a forged request is always `Forged`.
    pub fn verify(
        &self,
        signature: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
    ) -> Result<(), Rejection> {
        let (Some(signature), Some(timestamp)) = (signature, timestamp) else {
            return Err(Rejection::Unsigned);
        };
        // Slack signs text bodies (JSON or form-encoded); a body that is not UTF-8 was not signed
        // by Slack.
        let body = std::str::from_utf8(body).map_err(|_| Rejection::Forged)?;
        self.inner
            .verify(signature, body, timestamp)
            .map_err(|error| match error {
                SlackEventSignatureVerifierError::CryptoInitError(_) => Rejection::Misconfigured,
                SlackEventSignatureVerifierError::AbsentSignatureError(_) => Rejection::Unsigned,
                SlackEventSignatureVerifierError::WrongSignatureError(_) => Rejection::Forged,
                SlackEventSignatureVerifierError::IncorrectOrExpiredTimestampError(_) => {
                    Rejection::Stale
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    /// Slack's documented signing example, from its guide to verifying requests.
    const VECTOR: &str = include_str!("../fixtures/signing_vector.json");

    fn vector() -> serde_json::Value {
        serde_json::from_str(VECTOR).unwrap()
    }

    fn field<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
        v[key].as_str().unwrap()
    }

    /// Signs as Slack does.
    fn sign(secret: &str, timestamp: &str, body: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("v0:{timestamp}:{body}").as_bytes());
        format!("v0={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn now() -> String {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string()
    }

    #[test]
    fn the_documented_vector_signs_as_slack_does() {
        let v = vector();
        assert_eq!(
            sign(
                field(&v, "signing_secret"),
                field(&v, "timestamp"),
                field(&v, "body")
            ),
            field(&v, "expected_signature")
        );
    }

    #[test]
    fn the_documented_vector_matches_but_is_stale_today() {
        let v = vector();
        let verifier = RequestVerifier::new(field(&v, "signing_secret"));
        let result = verifier.verify(
            Some(field(&v, "expected_signature")),
            Some(field(&v, "timestamp")),
            field(&v, "body").as_bytes(),
        );
        assert_eq!(result, Err(Rejection::Stale));
        // One changed byte of the body makes it a forgery, not merely stale.
        let tampered = field(&v, "body").replace("roadrunner", "roadrunnex");
        let result = verifier.verify(
            Some(field(&v, "expected_signature")),
            Some(field(&v, "timestamp")),
            tampered.as_bytes(),
        );
        assert_eq!(result, Err(Rejection::Forged));
    }

    #[test]
    fn a_fresh_request_signed_with_the_secret_passes() {
        let v = vector();
        let secret = field(&v, "signing_secret");
        let verifier = RequestVerifier::new(secret);
        let ts = now();
        let body = field(&v, "body");
        let signature = sign(secret, &ts, body);
        assert_eq!(
            verifier.verify(Some(&signature), Some(&ts), body.as_bytes()),
            Ok(())
        );
        let other = sign("another-apps-secret", &ts, body);
        assert_eq!(
            verifier.verify(Some(&other), Some(&ts), body.as_bytes()),
            Err(Rejection::Forged)
        );
        // Replaying the same signature with a newer timestamp is a forgery too.
        let later = (ts.parse::<i64>().unwrap() + 1).to_string();
        assert_eq!(
            verifier.verify(Some(&signature), Some(&later), body.as_bytes()),
            Err(Rejection::Forged)
        );
    }

    #[test]
    fn missing_headers_and_secrets_are_named() {
        let verifier = RequestVerifier::new("secret");
        assert_eq!(
            verifier.verify(None, Some("1"), b"{}"),
            Err(Rejection::Unsigned)
        );
        assert_eq!(
            verifier.verify(Some("v0=00"), None, b"{}"),
            Err(Rejection::Unsigned)
        );
        assert_eq!(
            verifier.verify(Some("v0=00"), Some(&now()), &[0xff, 0xfe]),
            Err(Rejection::Forged)
        );
        let unconfigured = RequestVerifier::new("");
        let refused = unconfigured.verify(Some("v0=00"), Some(&now()), b"{}");
        assert_eq!(refused, Err(Rejection::Misconfigured));
        assert!(!Rejection::Misconfigured.is_unauthorized());
        assert!(Rejection::Stale.is_unauthorized());
    }
}
