//! The identity core as MQTT brokers need it: who may connect, and what a connected client may
//! publish, subscribe to and receive. Every broker hook (VerneMQ, EMQX, mosquitto-go-auth,
//! amqtt, RabbitMQ) calls these operations, so they are the product's hottest path:
//!
//! - a user's MQTT permissions are compiled once into an [`MqttPrincipal`] and cached in memory
//!   by username; the cache drops an entry when identity data changed, in this process or in
//!   another one on the same database (see [`crate::changes`]), and not otherwise: a
//!   reconnect storm is served from memory;
//! - a verified username/password pair is remembered under a keyed hash (HMAC-SHA-256 with a
//!   per-process random key; never the password) for `broker.credential_cache_secs`, so that a
//!   reconnect storm does not re-run argon2 for every device; any identity change forgets them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use crate::error::{AuthFailure, CoreError, CoreResult};
use crate::model::Role;
use crate::names::Username;
use crate::password::PlainPassword;
use crate::permission::{Context, Operation};
use crate::service::Gatehouse;
use crate::topic::{TopicFilter, TopicName};
use crate::topic_tree::TopicTree;

/// Entries kept at most in each cache; beyond it the cache is emptied (bounds memory under a
/// flood of random usernames).
const MAX_CACHE_ENTRIES: usize = 100_000;

/// Settings of the broker hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerSettings {
    /// Seconds between two readings of the database's change counters (bounds how long a
    /// change made by another process, such as another replica, takes to reach this one's
    /// caches), and the `max-age` VerneMQ may cache allowed checks for.
    pub cache_ttl_secs: u64,
    /// Seconds a verified username/password pair is remembered (0 turns the cache off).
    pub credential_cache_secs: u64,
}

impl BrokerSettings {
    /// Whether the hot-path caches are used at all (`cache_ttl_secs = 0` reads the database
    /// for every check).
    pub fn caching(&self) -> bool {
        self.cache_ttl_secs > 0
    }
}

impl Default for BrokerSettings {
    fn default() -> Self {
        Self {
            cache_ttl_secs: 5,
            credential_cache_secs: 300,
        }
    }
}

/// What a client wants to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttAccess {
    /// Publish to a topic (needs `write`; the publish prefix applies).
    Publish,
    /// Subscribe to a filter (needs `read`; the filter must be covered by a permission).
    Subscribe,
    /// Receive a message on a topic (needs `read`).
    Receive,
}

/// The answer to an authorization question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttDecision {
    /// Whether it is allowed.
    pub allowed: bool,
    /// The topic the broker must use: for a publish, the topic with the user's publish prefix;
    /// otherwise the topic as asked.
    pub topic: String,
}

impl MqttDecision {
    /// Whether the broker must publish on another topic than the one it asked about (the
    /// user's publish prefix).
    pub fn rewrites(&self, asked: &str) -> bool {
        self.topic != asked
    }

    /// The decision for a broker that can only allow or deny, never rewrite (go-auth, amqtt,
    /// EMQX, RabbitMQ): a publish that needs the prefix is refused, since allowing it would
    /// put the message on the unprefixed topic, which the user's permissions do not cover.
    pub fn allows_as_asked(&self, asked: &str) -> bool {
        self.allowed && !self.rewrites(asked)
    }
}

/// A user compiled for broker checks.
#[derive(Debug)]
pub struct MqttPrincipal {
    /// The user's id.
    pub user_id: Uuid,
    /// The login name.
    pub username: String,
    /// Whether the user may authenticate (false when locked or disabled, or while a signed-up
    /// account has not accepted the privacy policy).
    pub enabled: bool,
    /// Holders of the built-in administrator role: brokers may skip checks for them.
    pub superuser: bool,
    /// How the user may authenticate (see [`crate::model::grants_satisfied`]).
    pub grant_types: Vec<crate::model::GrantType>,
    publish_prefix: Option<String>,
    rights: TopicTree,
}

impl MqttPrincipal {
    /// Whether proving the password and/or a certificate satisfies the user's grant types.
    pub fn grants_satisfied(&self, password: bool, certificate: bool) -> bool {
        crate::model::grants_satisfied(&self.grant_types, password, certificate)
    }

    /// Decides `access` to `topic` (a topic name for publish and receive, a filter for
    /// subscribe). Malformed topics are refused.
    pub fn decide(&self, access: MqttAccess, topic: &str) -> MqttDecision {
        let refused = |topic: String| MqttDecision {
            allowed: false,
            topic,
        };
        if !self.enabled {
            return refused(topic.to_owned());
        }
        match access {
            MqttAccess::Publish => {
                let full = match &self.publish_prefix {
                    Some(prefix) => format!("{prefix}{topic}"),
                    None => topic.to_owned(),
                };
                let Ok(name) = TopicName::parse(&full, "topic") else {
                    return refused(full);
                };
                MqttDecision {
                    allowed: self.superuser || self.rights.allows(Operation::Write, &name),
                    topic: full,
                }
            }
            MqttAccess::Receive => {
                let Ok(name) = TopicName::parse(topic, "topic") else {
                    return refused(topic.to_owned());
                };
                MqttDecision {
                    allowed: self.superuser || self.rights.allows(Operation::Read, &name),
                    topic: topic.to_owned(),
                }
            }
            MqttAccess::Subscribe => {
                let Ok(filter) = TopicFilter::parse(topic, "topic") else {
                    return refused(topic.to_owned());
                };
                MqttDecision {
                    allowed: self.superuser || self.rights.allows_filter(Operation::Read, &filter),
                    topic: topic.to_owned(),
                }
            }
        }
    }
}

/// What a broker passes at CONNECT.
#[derive(Debug, Clone, Default)]
pub struct MqttCredentials {
    /// The username, if the client sent one.
    pub username: Option<String>,
    /// The password, if the client sent one: a password, or a Gatehouse token or API key.
    pub password: Option<String>,
    /// The client certificate, when the broker passed one from a listener configured as
    /// trusted for certificates (the broker verified its chain).
    pub certificate: Option<PresentedCertificate>,
}

/// A client certificate as a broker passes it at CONNECT, already verified by the broker.
#[derive(Debug, Clone)]
pub struct PresentedCertificate {
    /// The subject's common name: it names the user (Connectware's rule).
    pub common_name: String,
    /// SHA-256 fingerprint (hex) of the DER certificate, when the broker passed the whole
    /// certificate (VerneMQ); `None` when it passed only names (EMQX).
    pub fingerprint: Option<String>,
}

/// The MQTT 5 enhanced-authentication method whose data is a Gatehouse access token or API key
/// (`POST /api/broker/auth/enhanced`, VerneMQ `on_auth_m5`).
pub const TOKEN_AUTH_METHOD: &str = "GATEHOUSE-TOKEN";

/// How long a successful enhanced authentication waits for the broker's register check that
/// follows it (VerneMQ calls `auth_on_register_m5` right after `on_auth_m5`).
const ENHANCED_AUTH_WINDOW_MS: i64 = 30_000;

/// The outcome of one enhanced-authentication step.
#[derive(Debug)]
pub enum EnhancedAuth {
    /// Authenticated: the broker may go on with the CONNECT.
    Authenticated(MqttLogin),
    /// The method is not one Gatehouse speaks (MQTT 5 reason code 0x8C, bad authentication
    /// method).
    UnknownMethod,
}

/// A successful connect.
#[derive(Debug, Clone)]
pub struct MqttLogin {
    /// The user.
    pub principal: Arc<MqttPrincipal>,
    /// When the credential stops being valid, Unix seconds (tokens only).
    pub expire_at: Option<i64>,
}

/// A cache entry: the principal (or the knowledge that there is none) and the generation of
/// identity data it was loaded under.
struct CachedPrincipal {
    principal: Option<Arc<MqttPrincipal>>,
    generation: u64,
}

/// The in-memory caches of the broker hot path.
pub(crate) struct BrokerCaches {
    /// Username → compiled principal, or `None` remembered for an unknown username, with the
    /// generation and time it was loaded.
    principals: RwLock<HashMap<String, CachedPrincipal>>,
    /// Keyed hash of (username, password) → (generation, verified at).
    credentials: Mutex<HashMap<[u8; 32], (u64, i64)>>,
    /// Clients that passed enhanced authentication and whose register check is still to come:
    /// (mountpoint, client id) → (username, authenticated at).
    enhanced: Mutex<HashMap<(String, String), (String, i64)>>,
    key: [u8; 32],
}

impl BrokerCaches {
    pub(crate) fn new() -> Self {
        use rand::RngCore;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self {
            principals: RwLock::new(HashMap::new()),
            credentials: Mutex::new(HashMap::new()),
            enhanced: Mutex::new(HashMap::new()),
            key,
        }
    }

    fn credential_key(&self, username: &str, password: &str) -> [u8; 32] {
        // A key of any length is accepted by HMAC.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(username.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl Gatehouse {
    /// The compiled principal of `username`, from the cache when fresh; `None` for an unknown
    /// or malformed username.
    pub async fn mqtt_principal(&self, username: &str) -> CoreResult<Option<Arc<MqttPrincipal>>> {
        if !self.settings.broker.caching() {
            return self.load_mqtt_principal(username).await;
        }
        let generation = self.identity_generation();
        if let Ok(cache) = self.broker.principals.read() {
            if let Some(found) = cache.get(username) {
                if found.generation == generation {
                    return Ok(found.principal.clone());
                }
            }
        }
        let loaded = self.load_mqtt_principal(username).await?;
        if let Ok(mut cache) = self.broker.principals.write() {
            if cache.len() >= MAX_CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(
                username.to_owned(),
                CachedPrincipal {
                    principal: loaded.clone(),
                    generation,
                },
            );
        }
        Ok(loaded)
    }

    async fn load_mqtt_principal(&self, username: &str) -> CoreResult<Option<Arc<MqttPrincipal>>> {
        let Ok(name) = Username::parse(username) else {
            return Ok(None);
        };
        let Some(credentials) = self.store.credentials_by_username(name.as_str()).await? else {
            return Ok(None);
        };
        let user = credentials.user;
        // One query: the roles carry their permissions.
        let roles: Vec<_> = self
            .store
            .roles_of_users(&[user.id])
            .await?
            .into_iter()
            .flat_map(|(_, roles)| roles)
            .collect();
        let superuser = roles.iter().any(Role::is_builtin_admin);
        // A signed-up account that has not accepted the privacy policy connects nowhere yet.
        let enabled = user.credentials_enabled && !self.privacy_policy_pending(&user).await?;
        Ok(Some(Arc::new(MqttPrincipal {
            user_id: user.id,
            username: user.username,
            enabled,
            superuser,
            grant_types: user.grant_types,
            publish_prefix: user.mqtt_publish_prefix,
            rights: TopicTree::new(
                roles
                    .iter()
                    .flat_map(|role| &role.permissions)
                    .map(|permission| &permission.grant)
                    .filter(|grant| grant.context == Context::Mqtt)
                    .map(|grant| (grant.resource.filter(), grant.operation)),
            ),
        })))
    }

    /// Decides a publish, subscribe or receive of `username`; unknown users are refused.
    pub async fn mqtt_authorize(
        &self,
        username: &str,
        access: MqttAccess,
        topic: &str,
    ) -> CoreResult<MqttDecision> {
        Ok(match self.mqtt_principal(username).await? {
            Some(principal) => principal.decide(access, topic),
            None => MqttDecision {
                allowed: false,
                topic: topic.to_owned(),
            },
        })
    }

    /// Authenticates a client at CONNECT: a certificate bound to the user (for users with the
    /// certificate grant), a Gatehouse token or API key given as the password, or the
    /// password itself (argon2, remembered under a keyed hash for reconnects). Unknown,
    /// disabled and locked users are refused.
    pub async fn mqtt_connect(&self, credentials: MqttCredentials) -> CoreResult<MqttLogin> {
        const REFUSED: CoreError = CoreError::Unauthenticated(AuthFailure::BadCredentials);
        if let Some(certificate) = &credentials.certificate {
            return self
                .mqtt_connect_by_certificate(
                    credentials.username.as_deref(),
                    credentials.password.as_deref(),
                    certificate,
                )
                .await;
        }
        let username = credentials.username.unwrap_or_default();
        let password = credentials.password.ok_or(REFUSED)?;
        if let Some(login) = self.mqtt_connect_by_token(&username, &password).await? {
            return Ok(login);
        }
        // Devices connect with their username (never an email): an unknown name fails here,
        // after a decoy hash so that it costs what a wrong password costs.
        // While the client registry is open, the attempt is recorded as a registration
        // request instead (the implicit flow); it is refused all the same.
        let Some(principal) = self.mqtt_principal(&username).await? else {
            if let Some(login) = self.mqtt_connect_by_directory(&username, &password).await? {
                return Ok(login);
            }
            if let Ok(password) = PlainPassword::parse(&password, "password") {
                // A directory that was asked already cost what a wrong password costs.
                if !self.record_mqtt_registration(&username, &password).await
                    && self.directory.is_none()
                {
                    self.hasher.verify(&password, None).await?;
                }
            }
            return Err(REFUSED);
        };
        if !principal.enabled {
            return Err(CoreError::unauthenticated(AuthFailure::NotActive));
        }
        // A user whose certificate is required connects through a certificate listener.
        if !principal.grants_satisfied(true, false) {
            return Err(REFUSED);
        }
        let generation = self.identity_generation();
        let key = self.broker.credential_key(&username, &password);
        let now = self.clock.now_millis();
        let remember = i64::try_from(
            self.settings
                .broker
                .credential_cache_secs
                .saturating_mul(1000),
        )
        .unwrap_or(i64::MAX);
        let remembered = self
            .broker
            .credentials
            .lock()
            .ok()
            .and_then(|cache| cache.get(&key).copied())
            .is_some_and(|(at_generation, at)| at_generation == generation && now - at < remember);
        if remembered {
            return Ok(MqttLogin {
                principal,
                expire_at: None,
            });
        }
        let password = PlainPassword::parse(&password, "password").map_err(|_| REFUSED)?;
        // The same checks as every dialect's login: lockout, policy, expiry. No per-address
        // limit: every device of a broker comes from the broker's address.
        self.verify_password_login(&username, &password, None, false)
            .await?;
        let principal = self.mqtt_principal(&username).await?.ok_or(REFUSED)?;
        if remember > 0 {
            if let Ok(mut cache) = self.broker.credentials.lock() {
                if cache.len() >= MAX_CACHE_ENTRIES {
                    cache.clear();
                }
                cache.insert(key, (self.identity_generation(), now));
            }
        }
        Ok(MqttLogin {
            principal,
            expire_at: None,
        })
    }

    /// A user unknown here whom the directory knows: its first CONNECT creates it, as its
    /// first login would. `None` when no directory is configured or it refused.
    async fn mqtt_connect_by_directory(
        &self,
        username: &str,
        password: &str,
    ) -> CoreResult<Option<MqttLogin>> {
        if self.directory.is_none() {
            return Ok(None);
        }
        let Ok(password) = PlainPassword::parse(password, "password") else {
            return Ok(None);
        };
        match self
            .verify_password_login(username, &password, None, false)
            .await
        {
            Ok(_) => {}
            Err(CoreError::Unauthenticated(_)) => return Ok(None),
            Err(other) => return Err(other),
        }
        let principal = self
            .mqtt_principal(username)
            .await?
            .ok_or(CoreError::Unauthenticated(AuthFailure::BadCredentials))?;
        Ok(Some(MqttLogin {
            principal,
            expire_at: None,
        }))
    }

    /// A token or API key given as the password; `None` when the password is not one.
    async fn mqtt_connect_by_token(
        &self,
        username: &str,
        password: &str,
    ) -> CoreResult<Option<MqttLogin>> {
        let is_api_key = password.starts_with(crate::apikeys::API_KEY_PREFIX);
        let is_jwt = jsonwebtoken::decode_header(password).is_ok();
        if !is_api_key && !is_jwt {
            return Ok(None);
        }
        let principal = if is_api_key {
            self.authenticate_api_key(password).await?
        } else {
            self.authenticate(password).await?
        };
        // A token names its user; a username sent with it must be that user's.
        if !username.is_empty() && username != principal.user.username {
            return Err(CoreError::unauthenticated(AuthFailure::BadCredentials));
        }
        let expire_at = principal
            .session
            .as_ref()
            .map(|session| session.expires_at.div_euclid(1000));
        let compiled = self
            .mqtt_principal(&principal.user.username)
            .await?
            .ok_or(CoreError::unauthenticated(AuthFailure::BadCredentials))?;
        // A locked user keeps its live sessions, but it does not open new connections.
        if !compiled.enabled {
            return Err(CoreError::unauthenticated(AuthFailure::NotActive));
        }
        Ok(Some(MqttLogin {
            principal: compiled,
            expire_at,
        }))
    }

    /// A certificate the broker verified: its common name names the user (a username sent
    /// with it must be the same), and [`Gatehouse::certificate_binding_allows`] it. When the
    /// user's password is required too, the password sent with it must be right.
    async fn mqtt_connect_by_certificate(
        &self,
        username: Option<&str>,
        password: Option<&str>,
        certificate: &PresentedCertificate,
    ) -> CoreResult<MqttLogin> {
        const REFUSED: CoreError = CoreError::Unauthenticated(AuthFailure::BadCredentials);
        let name = certificate.common_name.as_str();
        if name.is_empty() || username.is_some_and(|username| username != name) {
            return Err(REFUSED);
        }
        let principal = self.mqtt_principal(name).await?.ok_or(REFUSED)?;
        if !principal.enabled {
            return Err(CoreError::unauthenticated(AuthFailure::NotActive));
        }
        if !principal.grants_satisfied(false, true) {
            let password = password.ok_or(REFUSED)?;
            let password = PlainPassword::parse(password, "password").map_err(|_| REFUSED)?;
            self.verify_password_login(name, &password, None, true)
                .await?;
        }
        let fingerprint = certificate
            .fingerprint
            .as_deref()
            .map(crate::users::parse_fingerprint)
            .transpose()
            .map_err(|_| REFUSED)?;
        if !self
            .certificate_binding_allows(principal.user_id, fingerprint.as_deref())
            .await?
        {
            return Err(REFUSED);
        }
        Ok(MqttLogin {
            principal,
            expire_at: None,
        })
    }

    /// The binding rule of certificate login: a user with certificates bound to it accepts
    /// only those (unexpired), which needs the fingerprint; a user with none accepts any
    /// certificate that names it and chains to a trusted issuer.
    pub(crate) async fn certificate_binding_allows(
        &self,
        user_id: Uuid,
        fingerprint: Option<&str>,
    ) -> CoreResult<bool> {
        let bound = self.store.certificates_of_users(&[user_id]).await?;
        let now = self.clock.now_millis();
        let mut bound = bound
            .iter()
            .flat_map(|(_, certificates)| certificates.iter())
            .peekable();
        if bound.peek().is_none() {
            return Ok(true);
        }
        let Some(fingerprint) = fingerprint else {
            return Ok(false);
        };
        Ok(bound.any(|certificate| {
            certificate.fingerprint == fingerprint
                && certificate.expires_at.is_none_or(|expiry| expiry > now)
        }))
    }

    /// One step of MQTT 5 enhanced authentication for the client `(mountpoint, client_id)`.
    /// With [`TOKEN_AUTH_METHOD`] the data is an access token or API key (a username sent with
    /// it must be its user's). On success the client is remembered for the register check that
    /// follows ([`Gatehouse::mqtt_take_enhanced`]).
    pub async fn mqtt_enhanced_auth(
        &self,
        mountpoint: &str,
        client_id: &str,
        username: Option<&str>,
        method: &str,
        data: &[u8],
    ) -> CoreResult<EnhancedAuth> {
        const REFUSED: CoreError = CoreError::Unauthenticated(AuthFailure::BadCredentials);
        if method != TOKEN_AUTH_METHOD {
            return Ok(EnhancedAuth::UnknownMethod);
        }
        let token = std::str::from_utf8(data).map_err(|_| REFUSED)?;
        let login = self
            .mqtt_connect_by_token(username.unwrap_or_default(), token)
            .await?
            .ok_or(REFUSED)?;
        if let Ok(mut pending) = self.broker.enhanced.lock() {
            let now = self.clock.now_millis();
            pending.retain(|_, (_, at)| now - *at < ENHANCED_AUTH_WINDOW_MS);
            if pending.len() >= MAX_CACHE_ENTRIES {
                pending.clear();
            }
            pending.insert(
                (mountpoint.to_owned(), client_id.to_owned()),
                (login.principal.username.clone(), now),
            );
        }
        Ok(EnhancedAuth::Authenticated(login))
    }

    /// The user of the client `(mountpoint, client_id)` if it passed enhanced authentication in
    /// the last seconds; each success is taken once.
    pub fn mqtt_take_enhanced(&self, mountpoint: &str, client_id: &str) -> Option<String> {
        let now = self.clock.now_millis();
        let mut pending = self.broker.enhanced.lock().ok()?;
        let (username, at) = pending.remove(&(mountpoint.to_owned(), client_id.to_owned()))?;
        (now - at < ENHANCED_AUTH_WINDOW_MS).then_some(username)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(prefix: Option<&str>, grants: &[(&str, Operation)]) -> MqttPrincipal {
        let filters: Vec<(TopicFilter, Operation)> = grants
            .iter()
            .map(|(resource, operation)| {
                (
                    TopicFilter::parse(resource, "resource").unwrap(),
                    *operation,
                )
            })
            .collect();
        MqttPrincipal {
            user_id: Uuid::new_v4(),
            username: "device".into(),
            enabled: true,
            superuser: false,
            grant_types: vec![crate::model::GrantType {
                method: crate::model::GrantMethod::Password,
                is_required: false,
            }],
            publish_prefix: prefix.map(str::to_owned),
            rights: TopicTree::new(
                filters
                    .iter()
                    .map(|(filter, operation)| (filter, *operation)),
            ),
        }
    }

    #[test]
    fn read_write_and_prefix() {
        let p = principal(
            Some("site1/"),
            &[
                ("site1/sensors/#", Operation::Write),
                ("cmd/+/in", Operation::Read),
            ],
        );
        let publish = p.decide(MqttAccess::Publish, "sensors/t1");
        assert!(publish.allowed);
        assert_eq!(publish.topic, "site1/sensors/t1");
        assert!(!p.decide(MqttAccess::Publish, "other/t1").allowed);
        assert!(p.decide(MqttAccess::Subscribe, "cmd/+/in").allowed);
        assert!(p.decide(MqttAccess::Subscribe, "cmd/dev1/in").allowed);
        assert!(!p.decide(MqttAccess::Subscribe, "cmd/#").allowed);
        assert!(p.decide(MqttAccess::Receive, "cmd/dev1/in").allowed);
        // Subscriptions and deliveries are not prefixed; write does not grant read.
        assert!(!p.decide(MqttAccess::Subscribe, "site1/sensors/#").allowed);
        assert!(!p.decide(MqttAccess::Publish, "cmd/dev1/in").allowed);
        // Malformed input is refused.
        assert!(!p.decide(MqttAccess::Publish, "sensors/#").allowed);
        assert!(!p.decide(MqttAccess::Subscribe, "a/#/b").allowed);
    }

    #[test]
    fn dollar_topics_need_explicit_permissions() {
        let p = principal(None, &[("#", Operation::ReadWrite)]);
        assert!(p.decide(MqttAccess::Publish, "a/b").allowed);
        assert!(!p.decide(MqttAccess::Subscribe, "$SYS/#").allowed);
        assert!(!p.decide(MqttAccess::Receive, "$SYS/broker/load").allowed);
    }

    #[test]
    fn disabled_users_get_nothing() {
        let mut p = principal(None, &[("#", Operation::ReadWrite)]);
        p.enabled = false;
        assert!(!p.decide(MqttAccess::Publish, "a").allowed);
    }
}
