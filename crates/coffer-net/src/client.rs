//! An HTTPS client for Coffer's services: one TLS connection, HTTP/1.1 keep-alive, and the
//! server's certificate kept for the caller to appraise *before* it sends anything.
//!
//! The handshake itself only proves that the server holds the key of the certificate it
//! presents ([`DeferredServerVerifier`]); whether that key is bound to an acceptable TEE is
//! the caller's decision, made on [`Connection::peer_certificate`] (RA-TLS evidence, a pin).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The largest response body read.
pub const MAX_RESPONSE: usize = 256 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a request did not get a response.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("bad service URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS handshake with {addr}: {source}")]
    Tls {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the server presented no certificate")]
    NoCertificate,
    #[error("HTTP: {0}")]
    Http(String),
    #[error("timed out connecting to {0}")]
    Timeout(String),
}

/// A service address: `https://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Parses `https://host[:port]` (port 443 by default). Paths, queries and user info are
    /// refused: they would be ignored.
    pub fn parse(url: &str) -> Result<Self, NetError> {
        let bad = |reason: &str| NetError::BadUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("https") {
            return Err(bad("the scheme must be https"));
        }
        let auth = uri.authority().ok_or_else(|| bad("no host"))?;
        if auth.as_str().contains('@') {
            return Err(bad("user info is not allowed"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad("give the service root only, without a path"));
        }
        let host = auth.host().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Self {
            host: host.to_owned(),
            port: auth.port_u16().unwrap_or(443),
        })
    }

    /// `host:port`, as a key for pins.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.authority())
    }
}

/// A response: status and body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub body: Bytes,
}

/// One TLS connection to a service.
#[derive(Debug)]
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    peer_cert: Vec<u8>,
    endpoint: Endpoint,
}

impl Connection {
    /// Connects and completes the TLS handshake; sends nothing.
    pub async fn connect(
        endpoint: &Endpoint,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<Self, NetError> {
        let addr = endpoint.authority();
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((endpoint.host.as_str(), endpoint.port)),
        )
        .await
        .map_err(|_| NetError::Timeout(addr.clone()))?
        .map_err(|source| NetError::Connect {
            addr: addr.clone(),
            source,
        })?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(endpoint.host.clone()).map_err(|_| NetError::BadUrl {
            url: endpoint.url(),
            reason: "host is neither a DNS name nor an IP address".into(),
        })?;
        let tls = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TlsConnector::from(config).connect(name, tcp),
        )
        .await
        .map_err(|_| NetError::Timeout(addr.clone()))?
        .map_err(|source| NetError::Tls {
            addr: addr.clone(),
            source,
        })?;
        let peer_cert = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
            .ok_or(NetError::NoCertificate)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| NetError::Http(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self {
            sender,
            peer_cert,
            endpoint: endpoint.clone(),
        })
    }

    /// The server's certificate (DER), to appraise before sending anything.
    pub fn peer_certificate(&self) -> &[u8] {
        &self.peer_cert
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Sends one request and reads the whole response.
    pub async fn send(
        &mut self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Response, NetError> {
        let mut req = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(http::header::HOST, self.endpoint.authority());
        if !body.is_empty() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| NetError::Http(e.to_string()))?;
        self.sender
            .ready()
            .await
            .map_err(|e| NetError::Http(e.to_string()))?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| NetError::Http(e.to_string()))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| NetError::Http(e.to_string()))?
            .to_bytes();
        Ok(Response { status, body })
    }
}

/// A server-certificate verifier that checks only that the server holds the key of the
/// certificate it presents (the TLS 1.3 CertificateVerify signature). It accepts any
/// certificate: the caller must appraise [`Connection::peer_certificate`] before trusting the
/// connection with anything.
#[derive(Debug)]
pub struct DeferredServerVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

impl DeferredServerVerifier {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            algorithms: rustls::crypto::aws_lc_rs::default_provider()
                .signature_verification_algorithms,
        })
    }
}

impl ServerCertVerifier for DeferredServerVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A TLS 1.3 client configuration that defers appraisal of the server to the caller, and
/// presents `identity`'s RA-TLS certificate if given (a TEE worker).
pub fn client_config(
    identity: Option<&coffer_attest::ratls::RaTlsIdentity>,
) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let verifier = DeferredServerVerifier::new();
    Ok(Arc::new(match identity {
        Some(id) => id.client_config(verifier)?,
        None => coffer_attest::ratls::client_config_without_cert(verifier)?,
    }))
}
