//! Who may call the broker hooks: callers from an allowed network (by default loopback only),
//! or callers presenting the configured shared secret in `X-Gatehouse-Broker-Secret`. Nothing
//! else opens them: an administrator's token is not a substitute, because the hooks answer
//! questions about every user's credentials.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::Response;
use ipnet::IpNet;
use subtle::ConstantTimeEq;

use super::answer::{Answer, Mode};
use crate::client::ClientAddress;
use crate::AppState;

/// The header carrying the shared secret.
pub const SECRET_HEADER: &str = "x-gatehouse-broker-secret";

/// The networks allowed when none are configured: the loopback addresses.
pub const DEFAULT_ALLOWED_ADDRESSES: [&str; 2] = ["127.0.0.0/8", "::1"];

/// The access rule of the broker hooks: a caller is let in when its address is in one of the
/// allowed networks, or when a secret is configured and the request carries it.
#[derive(Clone)]
pub struct HookAccess {
    networks: Arc<[IpNet]>,
    secret: Option<Arc<[u8]>>,
}

impl HookAccess {
    /// The rule for `addresses` (IP addresses such as `10.1.2.3` or `::1`, or CIDR networks such
    /// as `10.0.0.0/8`) and an optional shared secret (an empty one counts as none). Fails with
    /// a message naming the first address that is neither.
    pub fn new<S: AsRef<str>>(addresses: &[S], secret: Option<&str>) -> Result<Self, String> {
        let networks = addresses
            .iter()
            .map(|address| parse_network(address.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            networks: networks.into(),
            secret: secret
                .filter(|secret| !secret.is_empty())
                .map(|secret| Arc::from(secret.as_bytes())),
        })
    }

    /// Whether a caller from `client` presenting `secret` (the header's value, if any) may call
    /// the hooks.
    pub fn permits(&self, client: Option<IpAddr>, secret: Option<&[u8]>) -> bool {
        let by_address = client.is_some_and(|address| self.allows_address(address));
        // Evaluated even when the address already decided, so that the time taken does not
        // tell which half let the caller in.
        let by_secret = match (&self.secret, secret) {
            (Some(expected), Some(presented)) => bool::from(expected.as_ref().ct_eq(presented)),
            _ => false,
        };
        by_address | by_secret
    }

    /// Whether `address` is in an allowed network; an IPv4 address seen as IPv6
    /// (`::ffff:a.b.c.d`, from a dual-stack listener) counts as the IPv4 address too.
    fn allows_address(&self, address: IpAddr) -> bool {
        let mapped = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.networks.iter().any(|network| {
            network.contains(&address) || mapped.is_some_and(|v4| network.contains(&v4))
        })
    }
}

impl Default for HookAccess {
    /// Loopback callers only, no secret.
    fn default() -> Self {
        Self::new(&DEFAULT_ALLOWED_ADDRESSES, None)
            .unwrap_or_else(|_| unreachable!("the default networks parse"))
    }
}

/// Hides the secret, so that printing the state can never leak it.
impl fmt::Debug for HookAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookAccess")
            .field("networks", &self.networks)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// `10.0.0.0/8`, `fd00::/8`, or a single address (a /32 or /128 network).
fn parse_network(text: &str) -> Result<IpNet, String> {
    let trimmed = text.trim();
    trimmed
        .parse::<IpNet>()
        .or_else(|_| trimmed.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            format!(
                "broker.hook_allowed_addresses: {text:?} is neither an IP address nor a CIDR \
                 network such as 10.0.0.0/8"
            )
        })
}

/// A caller the hook access rule let in. Refused callers get 403 `{"ok":false,"error":…}`,
/// which does not say whether the address or the secret was wrong.
pub struct HookCaller;

impl FromRequestParts<AppState> for HookCaller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Ok(ClientAddress(client)) = ClientAddress::from_request_parts(parts, state).await;
        let secret = parts
            .headers
            .get(SECRET_HEADER)
            .map(axum::http::HeaderValue::as_bytes);
        if state.broker_access.permits(client, secret) {
            return Ok(Self);
        }
        tracing::warn!(
            client = ?client,
            path = %parts.uri.path(),
            "broker hook call refused: address not allowed and no valid secret"
        );
        metrics::counter!("gatehouse_broker_hook_refused_total").increment(1);
        Err(Answer::forbidden("not allowed to call the broker hooks").render(Mode::Json))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn default_allows_loopback_only() {
        let access = HookAccess::default();
        assert!(access.permits(ip("127.0.0.1"), None));
        assert!(access.permits(ip("127.3.2.1"), None));
        assert!(access.permits(ip("::1"), None));
        assert!(access.permits(ip("::ffff:127.0.0.1"), None));
        assert!(!access.permits(ip("10.0.0.1"), None));
        assert!(!access.permits(ip("::ffff:10.0.0.1"), None));
        assert!(!access.permits(None, None));
        // Without a configured secret no header opens the hooks, not even an empty one.
        assert!(!access.permits(ip("10.0.0.1"), Some(b"")));
    }

    #[test]
    fn networks_and_single_addresses() {
        let access = HookAccess::new(&["10.0.0.0/8", "192.168.1.7", " fd00::/8 "], None).unwrap();
        assert!(access.permits(ip("10.200.0.1"), None));
        assert!(access.permits(ip("192.168.1.7"), None));
        assert!(!access.permits(ip("192.168.1.8"), None));
        assert!(access.permits(ip("fd12::1"), None));
        assert!(!access.permits(ip("127.0.0.1"), None));
    }

    #[test]
    fn secret_opens_from_anywhere() {
        let access = HookAccess::new::<&str>(&[], Some("s3cret")).unwrap();
        assert!(access.permits(ip("203.0.113.9"), Some(b"s3cret")));
        assert!(access.permits(None, Some(b"s3cret")));
        assert!(!access.permits(ip("203.0.113.9"), Some(b"s3cre")));
        assert!(!access.permits(ip("203.0.113.9"), Some(b"s3cret ")));
        assert!(!access.permits(ip("203.0.113.9"), None));
        assert!(
            !access.permits(ip("127.0.0.1"), None),
            "no networks configured"
        );
    }

    #[test]
    fn empty_secret_is_no_secret() {
        let access = HookAccess::new::<&str>(&[], Some("")).unwrap();
        assert!(!access.permits(ip("203.0.113.9"), Some(b"")));
    }

    #[test]
    fn bad_addresses_are_named() {
        let error = HookAccess::new(&["127.0.0.1", "10.0.0.0/33"], None).unwrap_err();
        assert!(error.contains("\"10.0.0.0/33\""), "{error}");
        assert!(HookAccess::new(&["localhost"], None).is_err());
        assert!(HookAccess::new(&[""], None).is_err());
    }

    #[test]
    fn debug_hides_the_secret() {
        let access = HookAccess::new(&["::1"], Some("s3cret")).unwrap();
        let shown = format!("{access:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }
}
