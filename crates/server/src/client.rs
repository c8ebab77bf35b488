//! The caller's network address, for per-address rate limits. By default it is the TCP peer.
//! Behind a reverse proxy set `http.trust_forwarded_for`: the address is then the right-most
//! entry of `X-Forwarded-For` (the one the proxy added; entries further left are whatever the
//! client sent and cannot be trusted).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use crate::AppState;

/// The caller's address, when known.
pub struct ClientAddress(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if state.trust_forwarded_for {
            let forwarded = parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
                .next_back();
            if forwarded.is_some() {
                return Ok(Self(forwarded));
            }
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip());
        Ok(Self(peer))
    }
}

/// The client certificate (DER, leaf first) that the HTTPS listener verified against the
/// trusted issuers on this request's connection. The listener inserts it into the request's
/// extensions; plain HTTP requests never carry one.
#[derive(Debug, Clone)]
pub struct ClientCertificate(pub std::sync::Arc<Vec<u8>>);

impl ClientCertificate {
    /// The certificate of the request's connection, if any.
    pub fn of(parts: &Parts) -> Option<Self> {
        parts.extensions.get::<ClientCertificate>().cloned()
    }
}

/// Extracts the request's [`ClientCertificate`], if any.
pub struct PeerCertificate(pub Option<ClientCertificate>);

impl<S: Send + Sync> FromRequestParts<S> for PeerCertificate {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(ClientCertificate::of(parts)))
    }
}
