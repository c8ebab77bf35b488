//! The optional HTTPS listener (`[tls]`): the same API as the HTTP listener, over TLS that asks
//! for a client certificate. A certificate must chain to a trusted issuer — the built-in CA or a
//! certificate added through `/api/certificates` — or the handshake fails; a client may also
//! send none and authenticate with a token. The verified leaf certificate is handed to the
//! request as a [`ClientCertificate`] extension, where the Connectware dialect reads it.
//!
//! The trusted issuers are read from the database again after `tls.trust_refresh_secs`, so that
//! changes made on any replica reach every listener.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use gatehouse_core::Gatehouse;
use gatehouse_server::client::{ClientCertificate, TlsConnection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

/// Longest time a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's certificate chain and key.
pub struct ServerIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl ServerIdentity {
    /// Reads a PEM chain and a PEM private key.
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<Self, String> {
        let chain = CertificateDer::pem_slice_iter(chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| format!("the certificate chain is unreadable: {error}"))?;
        if chain.is_empty() {
            return Err("the certificate file holds no certificate".to_owned());
        }
        let key = PrivateKeyDer::from_pem_slice(key)
            .map_err(|error| format!("the private key is unreadable: {error}"))?;
        Ok(Self { chain, key })
    }
}

/// Builds TLS configurations with the current trusted issuers, and keeps the last one for
/// `refresh`.
struct Acceptors {
    core: Gatehouse,
    identity: ServerIdentity,
    refresh: Duration,
    current: Mutex<Option<(Instant, TlsAcceptor)>>,
}

impl Acceptors {
    async fn acceptor(&self) -> Result<TlsAcceptor, String> {
        if let Ok(current) = self.current.lock() {
            if let Some((built, acceptor)) = current.as_ref() {
                if built.elapsed() < self.refresh {
                    return Ok(acceptor.clone());
                }
            }
        }
        let anchors = self
            .core
            .client_trust_anchors()
            .await
            .map_err(|error| error.to_string())?;
        let acceptor = TlsAcceptor::from(Arc::new(self.config(&anchors)?));
        if let Ok(mut current) = self.current.lock() {
            *current = Some((Instant::now(), acceptor.clone()));
        }
        Ok(acceptor)
    }

    fn config(&self, anchors: &[Vec<u8>]) -> Result<ServerConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for anchor in anchors {
            // A certificate webpki cannot use as an anchor is skipped, not fatal.
            if let Err(error) = roots.add(CertificateDer::from(anchor.clone())) {
                tracing::warn!(%error, "a trusted certificate cannot anchor client certificates");
            }
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|error| format!("client certificate verifier: {error}"))?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| error.to_string())?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.identity.chain.clone(), self.identity.key.clone_key())
            .map_err(|error| format!("the server certificate and key do not match: {error}"))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// A bound HTTPS listener, ready to serve.
pub struct TlsListener {
    listener: TcpListener,
    acceptors: Arc<Acceptors>,
}

impl TlsListener {
    /// Binds `address` and checks that a configuration can be built now.
    pub async fn bind(
        address: SocketAddr,
        core: Gatehouse,
        identity: ServerIdentity,
        refresh: Duration,
    ) -> Result<Self, String> {
        let acceptors = Arc::new(Acceptors {
            core,
            identity,
            refresh,
            current: Mutex::new(None),
        });
        acceptors.acceptor().await?;
        let listener = TcpListener::bind(address)
            .await
            .map_err(|error| format!("cannot listen on {address}: {error}"))?;
        Ok(Self {
            listener,
            acceptors,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `router` until `stop` turns true; connections in flight finish on their own.
    pub async fn serve(self, router: axum::Router, mut stop: watch::Receiver<bool>) {
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = stop.wait_for(|stopped| *stopped) => return,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "HTTPS accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let acceptors = self.acceptors.clone();
            let router = router.clone();
            tokio::spawn(async move {
                let acceptor = match acceptors.acceptor().await {
                    Ok(acceptor) => acceptor,
                    Err(error) => {
                        tracing::error!(%error, "no TLS configuration");
                        return;
                    }
                };
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                let stream = match handshake.await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::debug!(%peer, %error, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let certificate = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|leaf| ClientCertificate(Arc::new(leaf.to_vec())));
                let service = hyper::service::service_fn(move |mut request| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request.extensions_mut().insert(TlsConnection);
                    if let Some(certificate) = &certificate {
                        request.extensions_mut().insert(certificate.clone());
                    }
                    router.clone().oneshot(request)
                });
                let served = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                if let Err(error) = served {
                    tracing::debug!(%peer, %error, "HTTPS connection ended with an error");
                }
            });
        }
    }
}
