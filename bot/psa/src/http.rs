//! The HTTPS client every provider shares: rustls (ring) with the machine's trusted roots, one
//! time limit for a whole exchange, and transport failures as [`PsaError::Unavailable`] in words
//! that carry neither a credential nor a query string.

use crate::{PsaError, name};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use rf_core::psa::Provider;
use serde::de::DeserializeOwned;
use std::time::Duration;
use url::Url;

/// The most a PSA answer may weigh; a member list of a few thousand people is well under this.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// An HTTP(S) client for PSA APIs. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct HttpClient {
    client: rf_net::HyperClient,
    timeout: Duration,
    user_agent: HeaderValue,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Builds the client the providers use: the shared [`rf_net::https_client`] (HTTPS through rustls
/// with the ring provider and the machine's trusted root certificates; plain HTTP is allowed too,
/// for local test servers), a time limit for each whole exchange and the user agent
/// `ResolutionFlow/<version>`.
///
/// This is a hyper client rather than a `reqwest::Client`: reqwest 0.13 offers rustls only with
/// aws-lc (which needs cmake) or as `rustls-no-provider`, and that feature makes every *other*
/// `reqwest::Client::new()` in the workspace panic unless a process-wide crypto provider was
/// installed first.
pub fn http_client(timeout: Duration) -> Result<HttpClient, PsaError> {
    let client =
        rf_net::https_client(timeout).map_err(|e| PsaError::Misconfigured(e.to_string()))?;
    Ok(HttpClient {
        client,
        timeout,
        user_agent: rf_net::user_agent(),
    })
}

/// A request body.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    Empty,
    Json(serde_json::Value),
    /// Already `application/x-www-form-urlencoded`.
    Form(String),
}

/// What a PSA answered: any status, the body read in full.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) provider: Provider,
    pub(crate) status: StatusCode,
    /// `Retry-After` in seconds, when given.
    pub(crate) retry_after: Option<Duration>,
    pub(crate) body: Bytes,
}

impl Answer {
    pub(crate) fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The body as `T`; an answer we cannot read is an outage-like failure (a proxy's error
    /// page, a maintenance notice), not a validation error.
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, PsaError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            PsaError::Unavailable(format!(
                "unexpected answer from {} (HTTP {}): {e}",
                name(self.provider),
                self.status.as_u16()
            ))
        })
    }

    /// The body as text for an error message: short, and nothing when it is an HTML page.
    pub(crate) fn text(&self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        if text.is_empty() || text.starts_with('<') {
            None
        } else {
            Some(crate::trim_text(text, 300))
        }
    }
}

impl HttpClient {
    /// The time limit of one exchange.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends one request and reads the whole answer within the time limit. Only transport
    /// failures are errors here; the caller judges the status.
    pub(crate) async fn send(
        &self,
        provider: Provider,
        method: Method,
        url: &Url,
        mut headers: HeaderMap,
        body: Body,
    ) -> Result<Answer, PsaError> {
        let bytes = match body {
            Body::Empty => Bytes::new(),
            Body::Json(value) => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Bytes::from(serde_json::to_vec(&value).map_err(|e| {
                    PsaError::Rejected(format!("could not encode the request: {e}"))
                })?)
            }
            Body::Form(form) => {
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                );
                Bytes::from(form)
            }
        };
        headers.insert(USER_AGENT, self.user_agent.clone());
        let mut request = Request::builder()
            .method(method.clone())
            .uri(url.as_str())
            .body(Full::new(bytes))
            .map_err(|e| {
                PsaError::Misconfigured(format!(
                    "cannot address {} at {}: {e}",
                    name(provider),
                    host(url)
                ))
            })?;
        *request.headers_mut() = headers;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                let what = if e.is_connect() {
                    "could not connect to"
                } else {
                    "lost the connection to"
                };
                PsaError::Unavailable(format!(
                    "{what} {} at {}: {}",
                    name(provider),
                    host(url),
                    root_cause(&e)
                ))
            })?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    PsaError::Unavailable(format!(
                        "could not read the answer of {}: {}",
                        name(provider),
                        root_cause(e.as_ref())
                    ))
                })?
                .to_bytes();
            Ok::<_, PsaError>(Answer {
                provider,
                status: parts.status,
                retry_after: parts
                    .headers
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(crate::parse_retry_after),
                body,
            })
        };
        let answer = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(PsaError::Unavailable(format!(
                "{} did not answer within {}",
                name(provider),
                seconds(self.timeout)
            ))),
        };
        match &answer {
            Ok(answer) => tracing::debug!(
                psa = provider.as_str(),
                %method,
                path = url.path(),
                status = answer.status.as_u16(),
                "PSA call"
            ),
            Err(error) => tracing::debug!(
                psa = provider.as_str(),
                %method,
                path = url.path(),
                %error,
                "PSA call failed"
            ),
        }
        answer
    }
}

/// The host (and port) of a URL, for messages.
pub(crate) fn host(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        _ => url.scheme().to_owned(),
    }
}

fn seconds(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs.fract() == 0.0 {
        format!("{secs:.0} s")
    } else {
        format!("{secs:.1} s")
    }
}

/// The innermost cause of an error: "Connection refused (os error 111)", "invalid peer
/// certificate: UnknownIssuer"…
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    crate::trim_text(&rf_net::root_cause(error), 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real TLS with the machine's roots (needs the network): `cargo test -p rf-psa -- --ignored`.
    #[tokio::test]
    #[ignore = "needs the network"]
    async fn https_works_with_the_machines_roots() {
        let client = http_client(Duration::from_secs(20)).unwrap();
        let url = Url::parse("https://index.crates.io/config.json").unwrap();
        let answer = client
            .send(
                Provider::Autotask,
                Method::GET,
                &url,
                HeaderMap::new(),
                Body::Empty,
            )
            .await
            .expect("a TLS exchange");
        assert!(answer.is_success(), "{answer:?}");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let client = http_client(Duration::from_secs(2)).unwrap();
        let url = Url::parse(&format!("http://{address}/x?secret=hunter2")).unwrap();
        let error = client
            .send(
                Provider::Halo,
                Method::GET,
                &url,
                HeaderMap::new(),
                Body::Empty,
            )
            .await
            .unwrap_err();
        let PsaError::Unavailable(message) = error else {
            panic!("{error:?}")
        };
        assert!(
            message.starts_with("could not connect to HaloPSA at 127.0.0.1:"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");
    }
}
