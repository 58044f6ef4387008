//! The outbound HTTP(S) client every integration shares (PSA APIs, model providers): hyper over
//! rustls with the ring crypto provider and the machine's trusted root certificates.
//!
//! This is a hyper client rather than a `reqwest::Client`: reqwest 0.13 offers rustls only with
//! aws-lc (which needs cmake to build) or as `rustls-no-provider`, and that feature makes every
//! *other* `reqwest::Client::new()` in the workspace panic unless a process-wide crypto provider was
//! installed first. Building the connector here, with the provider passed explicitly, avoids both.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::HeaderValue;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::Arc;
use std::time::Duration;

/// The shared client type: HTTPS (or plain HTTP, for local servers) with a request body read in
/// one piece. Cheap to clone; clones share the connection pool.
pub type HyperClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// The client could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    /// The TLS configuration was refused (no usable protocol version with the crypto provider).
    Tls(String),
}

impl std::fmt::Display for NetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tls(message) => write!(f, "TLS setup failed: {message}"),
        }
    }
}

impl std::error::Error for NetError {}

/// Builds a client: HTTPS through rustls with the ring provider and the machine's trusted root
/// certificates (plain HTTP is allowed too, for local test servers and on-premises model servers),
/// HTTP/1.1, `connect_timeout` for establishing a connection, and idle connections kept for 60 s.
///
/// The client has no overall time limit: callers bound each whole exchange themselves.
pub fn https_client(connect_timeout: Duration) -> Result<HyperClient, NetError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!(%error, "could not load a trusted root certificate");
    }
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        tracing::warn!("no trusted root certificates found: outbound HTTPS connections will fail");
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| NetError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE)
        .build(https))
}

/// The user agent every outbound call sends: `ResolutionFlow/<version>`.
pub fn user_agent() -> HeaderValue {
    HeaderValue::from_static(concat!("ResolutionFlow/", env!("CARGO_PKG_VERSION")))
}

/// The innermost cause of an error, for messages: "Connection refused (os error 111)", "invalid
/// peer certificate: UnknownIssuer"…
pub fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_agent_names_the_product_and_version() {
        let agent = user_agent();
        let agent = agent.to_str().unwrap_or_default();
        assert!(agent.starts_with("ResolutionFlow/"), "{agent}");
        assert!(agent.len() > "ResolutionFlow/".len(), "{agent}");
    }

    #[test]
    fn the_root_cause_is_the_innermost_error() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("outer")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let error = Outer(std::io::Error::other("inner"));
        assert_eq!(root_cause(&error), "inner");
    }

    #[tokio::test]
    async fn a_client_builds_and_speaks_plain_http() {
        use http_body_util::BodyExt;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buffer = [0u8; 1024];
            let _ = socket.read(&mut buffer).await.unwrap();
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await
                .unwrap();
        });
        let client = https_client(Duration::from_secs(2)).unwrap();
        let request = hyper::Request::get(format!("http://{address}/"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
    }
}
