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

/// Marks requests that came over the HTTPS listener (inserted by it into the extensions).
#[derive(Debug, Clone, Copy)]
pub struct TlsConnection;

/// The origin (`scheme://host[:port]`) the caller addressed: the `Host` header, and the
/// scheme of the connection. Behind a trusted reverse proxy (`http.trust_forwarded_for`)
/// `X-Forwarded-Proto`, `X-Forwarded-Host` and `X-Forwarded-Port` name them instead. The port
/// is left out when it is the scheme's default. `None` without a usable host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestOrigin {
    /// `http` or `https`.
    pub scheme: String,
    /// The host, lower case (IPv6 in brackets).
    pub host: String,
    /// The port, when it is not the scheme's default.
    pub port: Option<u16>,
}

impl RequestOrigin {
    /// `host[:port]`: what ThingsBoard's domains are named by.
    pub fn host_and_port(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        }
    }

    /// Whether the browser reached this server over https (cookies then get `Secure`).
    pub fn is_https(&self) -> bool {
        self.scheme == "https"
    }

    /// `scheme://host[:port]`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.host_and_port())
    }

    /// The origin of a request.
    pub fn of(parts: &Parts, trust_forwarded: bool) -> Option<Self> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.split(',').next())
                .map(str::trim)
                .filter(|value| !value.is_empty())
        };
        let forwarded = |name: &str| header(name).filter(|_| trust_forwarded);
        let scheme = match forwarded("x-forwarded-proto") {
            Some(proto) if proto.eq_ignore_ascii_case("https") => "https",
            Some(proto) if proto.eq_ignore_ascii_case("http") => "http",
            Some(_) => return None,
            None if parts.extensions.get::<TlsConnection>().is_some() => "https",
            None => "http",
        };
        let authority: axum::http::uri::Authority = forwarded("x-forwarded-host")
            .or_else(|| header("host"))
            .or_else(|| parts.uri.authority().map(|authority| authority.as_str()))?
            .parse()
            .ok()?;
        if authority.as_str().contains('@') {
            return None;
        }
        let port = match forwarded("x-forwarded-port") {
            Some(port) => Some(port.parse::<u16>().ok()?),
            None => authority.port_u16(),
        };
        let default_port = if scheme == "https" { 443 } else { 80 };
        Some(Self {
            scheme: scheme.to_owned(),
            host: authority.host().to_ascii_lowercase(),
            port: port.filter(|port| *port != default_port),
        })
    }
}

impl FromRequestParts<AppState> for Option<RequestOrigin> {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(RequestOrigin::of(parts, state.trust_forwarded_for))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn origin(headers: &[(&str, &str)], trust: bool, tls: bool) -> Option<RequestOrigin> {
        let mut request = Request::builder().uri("/x");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (mut parts, ()) = request.body(()).ok()?.into_parts();
        if tls {
            parts.extensions.insert(TlsConnection);
        }
        RequestOrigin::of(&parts, trust)
    }

    #[test]
    fn the_origin_comes_from_host_and_connection() {
        let plain = origin(&[("host", "Plant.Example:8080")], false, false);
        assert_eq!(
            plain.map(|o| o.base_url()).as_deref(),
            Some("http://plant.example:8080")
        );
        let tls = origin(&[("host", "plant.example:443")], false, true);
        assert_eq!(
            tls.map(|o| o.base_url()).as_deref(),
            Some("https://plant.example")
        );
        assert_eq!(origin(&[("host", "a@b")], false, false), None);
        assert_eq!(origin(&[], false, false), None);
    }

    #[test]
    fn forwarded_headers_count_only_when_trusted() {
        let headers = [
            ("host", "10.0.0.5:8080"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "plant.example"),
            ("x-forwarded-port", "8443"),
        ];
        let trusted = origin(&headers, true, false);
        assert_eq!(
            trusted.map(|o| o.host_and_port()).as_deref(),
            Some("plant.example:8443")
        );
        let untrusted = origin(&headers, false, false);
        assert_eq!(
            untrusted.map(|o| o.base_url()).as_deref(),
            Some("http://10.0.0.5:8080")
        );
        assert_eq!(
            origin(
                &[("host", "h"), ("x-forwarded-proto", "gopher")],
                true,
                false
            ),
            None
        );
    }
}
