//! Federated login (OpenID Connect and OAuth2): Microsoft Entra ID for the Connectware dialect
//! and the ThingsBoard dialect's OAuth2 clients share one relying party.
//!
//! A login has two halves:
//! - **start**: a random `state`, `nonce` and binding value are made. The binding value goes to
//!   the browser as a cookie and is also the PKCE verifier; the database keeps only the digests
//!   of `state` and of the binding, the nonce and the redirect URI (a [`FederationLogin`], for
//!   [`LOGIN_LIFETIME_MILLIS`]). The browser is sent to the provider.
//! - **callback**: the login is taken (deleted) by its `state` — used once, whatever the
//!   outcome — and must carry the same browser's cookie. The code is exchanged with the PKCE
//!   verifier; the ID token is validated against the provider's keys (signature, issuer,
//!   audience, expiry, nonce) by the protocol implementation outside the core
//!   ([`RelyingParty`], crate `gatehouse` over `openidconnect`); userinfo fills in the claims.
//!   The claims then become a user here.
//!
//! Stored logins work across replicas and restarts; nothing of the flow lives in memory.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::error::{AuthFailure, CoreError, CoreResult};
use crate::model::{GrantMethod, GrantType, IdentityProvider, Profile, Role, Tenancy, User};
use crate::names::Username;
use crate::oauth2::ClientAuthentication;
use crate::store::{NewUser, RoleQuery, UserUpdate};
use crate::tokens::{digest_hex, random_token};
use crate::Gatehouse;

/// How long a started login may take to come back, ms (ThingsBoard keeps its authorization
/// request cookie for 180 s).
pub const LOGIN_LIFETIME_MILLIS: i64 = 180_000;

/// At most this many logins may be under way at once; more are refused (503) so that a flood
/// of starts cannot fill the database.
pub const MAX_PENDING_LOGINS: u64 = 10_000;

/// The provider key of Microsoft Entra ID logins.
pub const ENTRA_PROVIDER: &str = "entra";

/// A login under way, between the redirect to the provider and its callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederationLogin {
    /// SHA-256 (hex) of the `state` sent to the provider.
    pub state_digest: String,
    /// `entra` or `oauth2:<client id>`.
    pub provider: String,
    /// SHA-256 (hex) of the browser's binding cookie (which is also the PKCE verifier).
    pub binding_digest: String,
    /// The nonce sent to the provider (not secret: it comes back in the ID token).
    pub nonce: String,
    /// The redirect URI sent to the provider (the token request repeats it).
    pub redirect_uri: String,
    /// Where the browser goes after the login, if the start named a place.
    pub return_to: Option<String>,
    /// When it started, Unix ms.
    pub created_at: i64,
    /// When it expires, Unix ms.
    pub expires_at: i64,
}

/// Where a provider lives and how Gatehouse is registered there.
#[derive(Debug, Clone)]
pub struct ProviderEndpoints {
    /// The issuer the ID token must name; `None` (ThingsBoard's clients, which configure no
    /// issuer) skips that one check.
    pub issuer: Option<String>,
    /// The authorization endpoint.
    pub authorization_uri: String,
    /// The token endpoint.
    pub token_uri: String,
    /// The userinfo endpoint, if any.
    pub userinfo_uri: Option<String>,
    /// The provider's signing keys. With `openid` among the scopes and no keys, an ID token is
    /// not trusted and the claims come from userinfo alone.
    pub jwks_uri: Option<String>,
    /// Gatehouse's client id there.
    pub client_id: String,
    /// Gatehouse's client secret there; `None` for public clients (no client authentication),
    /// which the relying party then sends none for.
    pub client_secret: Option<SecretString>,
    /// How the client authenticates at the token endpoint.
    pub authentication: ClientAuthentication,
    /// Scopes asked for.
    pub scopes: Vec<String>,
}

impl ProviderEndpoints {
    /// Whether this is an OpenID Connect login (an ID token comes back).
    pub fn is_openid(&self) -> bool {
        self.scopes.iter().any(|scope| scope == "openid")
    }
}

/// The secrets of one authorization request, as the relying party needs them.
#[derive(Debug)]
pub struct AuthorizationRequest<'a> {
    /// The `state`.
    pub state: &'a str,
    /// The nonce.
    pub nonce: &'a str,
    /// The PKCE verifier (S256 is always used).
    pub pkce_verifier: &'a str,
    /// The redirect URI.
    pub redirect_uri: &'a str,
}

/// What the provider said about the user.
#[derive(Debug, Clone)]
pub struct ProviderAnswer {
    /// The validated ID token's claims, completed by userinfo (the ID token wins where both
    /// have a claim).
    pub claims: Map<String, Value>,
    /// The access token, for mappers that ask the provider more (GitHub's emails).
    pub access_token: SecretString,
}

/// An HTTP request a mapper makes on the user's behalf.
#[derive(Debug, Clone)]
pub struct JsonRequest {
    /// The URL.
    pub url: String,
    /// A JSON body to POST; `None` for a GET.
    pub body: Option<Value>,
    /// A bearer token.
    pub bearer: Option<SecretString>,
    /// Basic-auth credentials.
    pub basic: Option<(String, SecretString)>,
    /// More headers.
    pub headers: Vec<(String, String)>,
}

/// The protocol side of the relying party (crate `gatehouse`, over `openidconnect`).
#[async_trait]
pub trait RelyingParty: Send + Sync {
    /// The endpoints of the OpenID provider at `issuer`, from its discovery document (cached by
    /// the implementation). Client credentials and scopes are left for the caller to fill.
    async fn discover(&self, issuer: &str) -> CoreResult<ProviderEndpoints>;
    /// The URL of the provider's authorization endpoint for `request`: response type `code`,
    /// the scopes, `state`, the nonce (with `openid`), PKCE S256 and the redirect URI.
    fn authorization_url(
        &self,
        provider: &ProviderEndpoints,
        request: &AuthorizationRequest<'_>,
    ) -> CoreResult<String>;
    /// Exchanges `code` and returns the validated claims. A refusal by the provider or an
    /// invalid ID token is `AuthFailure::Federation`; an unreachable provider `Unavailable`.
    async fn complete(
        &self,
        provider: &ProviderEndpoints,
        code: &str,
        request: &AuthorizationRequest<'_>,
    ) -> CoreResult<ProviderAnswer>;
    /// Fetches a JSON document (GitHub's emails, the CUSTOM mapper's service).
    async fn fetch_json(&self, request: JsonRequest) -> CoreResult<Value>;
}

/// Microsoft Entra ID (or any OpenID provider in its place) for the Connectware dialect.
#[derive(Debug, Clone)]
pub struct EntraSettings {
    /// The issuer: `https://login.microsoftonline.com/<tenant>/v2.0` for Entra.
    pub issuer: String,
    /// The application (client) id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: SecretString,
    /// Where Entra sends the browser back: Gatehouse's `/api/msEntraId/redirect`.
    pub redirect_uri: String,
    /// Where the browser goes after the login (the admin UI); the token is added as `apiToken`.
    pub ui_url: String,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// The claim naming the user (`preferred_username`).
    pub username_claim: String,
    /// The claim listing the group object ids (`groups`).
    pub groups_claim: String,
    /// The claim identifying the account for good (`oid`; `sub` when absent).
    pub subject_claim: String,
    /// Lifetime of the session token, hours.
    pub token_hours: u64,
}

/// The federation part of the core.
#[derive(Clone)]
pub(crate) struct Federation {
    pub(crate) relying_party: Arc<dyn RelyingParty>,
    pub(crate) entra: Option<EntraSettings>,
}

/// What the start of a login gives the browser.
#[derive(Debug)]
pub struct LoginStart {
    /// The provider's authorization URL to redirect to.
    pub location: String,
    /// The binding cookie's value: set it (HttpOnly) before the redirect; the callback needs it.
    pub binding: String,
}

/// A completed login at a provider.
#[derive(Debug)]
pub struct CompletedLogin {
    /// The login as it was started.
    pub login: FederationLogin,
    /// The provider's answer.
    pub answer: ProviderAnswer,
}

/// A failure of a federated login that the user may read.
pub fn federation_failure(reason: impl Into<String>) -> CoreError {
    CoreError::Unauthenticated(AuthFailure::Federation {
        reason: reason.into(),
    })
}

/// A claim as text: strings as they are, numbers in decimal (GitHub's `id`).
pub fn claim_text(claims: &Map<String, Value>, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// A claim's values as texts: an array of strings, or one string.
pub fn claim_texts(claims: &Map<String, Value>, name: &str) -> Vec<String> {
    match claims.get(name) {
        Some(Value::Array(values)) => values
            .iter()
            .filter_map(|value| value.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(text)) => vec![text.clone()],
        _ => Vec::new(),
    }
}

/// Whether the provider said the email is *not* verified (`email_verified: false`, or the
/// string `"false"` some providers send). An absent claim is no statement.
pub fn email_unverified(claims: &Map<String, Value>) -> bool {
    match claims.get("email_verified") {
        Some(Value::Bool(verified)) => !verified,
        Some(Value::String(text)) => text.eq_ignore_ascii_case("false"),
        _ => false,
    }
}

impl Gatehouse {
    /// Enables federated logins through `relying_party`, with Entra ID when `entra` is given.
    pub fn with_federation(
        mut self,
        relying_party: Arc<dyn RelyingParty>,
        entra: Option<EntraSettings>,
    ) -> Self {
        self.federation = Some(Federation {
            relying_party,
            entra,
        });
        self
    }

    pub(crate) fn relying_party(&self) -> CoreResult<&Arc<dyn RelyingParty>> {
        self.federation
            .as_ref()
            .map(|federation| &federation.relying_party)
            .ok_or(CoreError::NotFound {
                what: "federated login",
            })
    }

    /// Starts a login at `provider` (its key `provider_key`): stores the login and answers the
    /// redirect and the binding cookie.
    pub(crate) async fn start_federated_login(
        &self,
        provider_key: String,
        provider: &ProviderEndpoints,
        redirect_uri: String,
        return_to: Option<String>,
    ) -> CoreResult<LoginStart> {
        let relying_party = self.relying_party()?;
        let now = self.clock.now_millis();
        if self.store.count_federation_logins(now).await? >= MAX_PENDING_LOGINS {
            return Err(CoreError::Unavailable {
                reason: "too many logins under way".to_owned(),
            });
        }
        let state = random_token(32);
        let nonce = random_token(32);
        // 32 random bytes in base64url: 43 characters, a valid PKCE verifier.
        let binding = random_token(32);
        let location = relying_party.authorization_url(
            provider,
            &AuthorizationRequest {
                state: &state,
                nonce: &nonce,
                pkce_verifier: &binding,
                redirect_uri: &redirect_uri,
            },
        )?;
        self.store
            .insert_federation_login(
                FederationLogin {
                    state_digest: digest_hex(&state),
                    provider: provider_key,
                    binding_digest: digest_hex(&binding),
                    nonce,
                    redirect_uri,
                    return_to,
                    created_at: now,
                    expires_at: now.saturating_add(LOGIN_LIFETIME_MILLIS),
                },
                now,
            )
            .await?;
        Ok(LoginStart { location, binding })
    }

    /// Takes the login `state` names. It must be unexpired and started by this browser
    /// (`binding`, its cookie). The login is used up whatever the outcome.
    pub(crate) async fn take_federated_login(
        &self,
        state: &str,
        binding: Option<&str>,
    ) -> CoreResult<FederationLogin> {
        let login = self
            .store
            .take_federation_login(&digest_hex(state))
            .await?
            .ok_or_else(|| federation_failure("the login is unknown or was used already"))?;
        let same_browser = binding.is_some_and(|binding| {
            bool::from(
                digest_hex(binding)
                    .as_bytes()
                    .ct_eq(login.binding_digest.as_bytes()),
            )
        });
        if !same_browser {
            return Err(federation_failure(
                "the login was started in another browser",
            ));
        }
        if self.clock.now_millis() >= login.expires_at {
            return Err(federation_failure("the login took too long; start again"));
        }
        Ok(login)
    }

    /// Exchanges the callback's `code` for the provider's claims.
    pub(crate) async fn complete_federated_login(
        &self,
        provider: &ProviderEndpoints,
        login: FederationLogin,
        code: &str,
        binding: &str,
    ) -> CoreResult<CompletedLogin> {
        let answer = self
            .relying_party()?
            .complete(
                provider,
                code,
                &AuthorizationRequest {
                    state: "",
                    nonce: &login.nonce,
                    pkce_verifier: binding,
                    redirect_uri: &login.redirect_uri,
                },
            )
            .await?;
        Ok(CompletedLogin { login, answer })
    }

    /// The user linked to `subject` at `provider`, if any.
    pub(crate) async fn linked_user(
        &self,
        provider: &str,
        subject: &str,
    ) -> CoreResult<Option<User>> {
        match self.store.federated_user(provider, subject).await? {
            Some(user_id) => self.store.user(user_id).await,
            None => Ok(None),
        }
    }

    /// Links `subject` at `provider` to `user`; a parallel first login that linked it already
    /// is fine when it linked the same user.
    pub(crate) async fn link_identity(
        &self,
        provider: &str,
        subject: &str,
        user: &User,
    ) -> CoreResult<()> {
        match self
            .store
            .link_federated_identity(provider, subject, user.id, self.clock.now_millis())
            .await
        {
            Err(CoreError::Conflict { .. })
                if self.store.federated_user(provider, subject).await? == Some(user.id) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// The ids (sorted) of the shared roles `matches` accepts: what an identity provider's
    /// groups map to. Users' own roles (their direct permissions) never match.
    pub(crate) async fn shared_role_ids(
        &self,
        matches: impl Fn(&Role) -> bool,
    ) -> CoreResult<Vec<Uuid>> {
        let (roles, _) = self
            .store
            .roles(&RoleQuery {
                limit: u64::MAX,
                ..RoleQuery::default()
            })
            .await?;
        let mut ids: Vec<Uuid> = roles
            .iter()
            .filter(|role| role.owner_user_id.is_none() && matches(role))
            .map(|role| role.id)
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Gives `user` exactly the shared roles `role_ids` (sorted), writing only when they
    /// changed: every write of identity data empties the broker caches. The user's own role
    /// (its direct permissions) is kept.
    pub(crate) async fn sync_external_roles(
        &self,
        user: &User,
        role_ids: Vec<Uuid>,
    ) -> CoreResult<()> {
        let mut held: Vec<Uuid> = self
            .store
            .roles_of_users(&[user.id])
            .await?
            .into_iter()
            .flat_map(|(_, roles)| roles)
            .filter(|role| role.owner_user_id.is_none())
            .map(|role| role.id)
            .collect();
        held.sort();
        if held != role_ids {
            self.store
                .update_user(
                    user.id,
                    UserUpdate {
                        role_ids: Some(role_ids),
                        ..UserUpdate::default()
                    },
                )
                .await?;
        }
        Ok(())
    }

    /// Whether Entra ID login is configured.
    pub fn entra_enabled(&self) -> bool {
        self.entra_settings().is_some()
    }

    fn entra_settings(&self) -> Option<&EntraSettings> {
        self.federation.as_ref()?.entra.as_ref()
    }

    async fn entra_endpoints(&self, entra: &EntraSettings) -> CoreResult<ProviderEndpoints> {
        let mut endpoints = self.relying_party()?.discover(&entra.issuer).await?;
        endpoints.client_id = entra.client_id.clone();
        endpoints.client_secret = Some(entra.client_secret.clone());
        endpoints.authentication = ClientAuthentication::Basic;
        endpoints.scopes = entra.scopes.clone();
        Ok(endpoints)
    }

    /// Connectware's `GET /api/msEntraId/login`: starts an Entra ID login. `return_to` (the
    /// `Referer`) is kept only when it is on the admin UI's origin, so the login cannot be
    /// made to send a token elsewhere. `NotFound` when Entra ID is not configured.
    pub async fn entra_login_start(&self, return_to: Option<&str>) -> CoreResult<LoginStart> {
        let entra = self.entra_settings().ok_or(CoreError::NotFound {
            what: "Entra ID login",
        })?;
        let endpoints = self.entra_endpoints(entra).await?;
        let return_to = return_to
            .filter(|place| same_origin(place, &entra.ui_url))
            .map(str::to_owned);
        self.start_federated_login(
            ENTRA_PROVIDER.to_owned(),
            &endpoints,
            entra.redirect_uri.clone(),
            return_to,
        )
        .await
    }

    /// The admin UI a finished or failed Entra ID login sends the browser to (unless the
    /// login came from another place on it); `None` when Entra ID is not configured.
    pub fn entra_ui_url(&self) -> Option<&str> {
        Some(&self.entra_settings()?.ui_url)
    }

    /// Connectware's `GET /api/msEntraId/redirect`: completes an Entra ID login, creates or
    /// updates the user and opens a session. Answers the session and where to send the
    /// browser.
    pub async fn entra_login_finish(
        &self,
        state: &str,
        code: &str,
        binding: Option<&str>,
    ) -> CoreResult<(crate::auth::LoginOutcome, Option<String>)> {
        let entra = self
            .entra_settings()
            .ok_or(CoreError::NotFound {
                what: "Entra ID login",
            })?
            .clone();
        let login = self.take_federated_login(state, binding).await?;
        if login.provider != ENTRA_PROVIDER {
            return Err(federation_failure("the login was not started here"));
        }
        let binding = binding.unwrap_or_default();
        let endpoints = self.entra_endpoints(&entra).await?;
        let completed = self
            .complete_federated_login(&endpoints, login, code, binding)
            .await?;
        let claims = &completed.answer.claims;
        let subject = claim_text(claims, &entra.subject_claim)
            .or_else(|| claim_text(claims, "sub"))
            .ok_or_else(|| federation_failure("the identity provider named no subject"))?;
        let username = claim_text(claims, &entra.username_claim)
            .or_else(|| claim_text(claims, "email"))
            .ok_or_else(|| {
                federation_failure(format!(
                    "the identity provider sent no {} claim",
                    entra.username_claim
                ))
            })?;
        let username = Username::parse(&username).map_err(|_| {
            federation_failure("the identity provider's user name is not a valid username")
        })?;
        let groups = claim_texts(claims, &entra.groups_claim);
        let user = self
            .entra_user(&subject, &username, claims, &groups)
            .await?;
        let outcome = self
            .open_token_session(
                user,
                crate::model::SessionKind::Token,
                entra.token_hours,
                Some("Entra ID".to_owned()),
            )
            .await?;
        Ok((outcome, completed.login.return_to))
    }

    /// The user of an Entra ID account: the one linked to its subject, else the `entra` user
    /// of that name (linked now), else a new one. A local or LDAP user of the same name is
    /// never taken over. Roles are re-synced from the groups on every login.
    async fn entra_user(
        &self,
        subject: &str,
        username: &Username,
        claims: &Map<String, Value>,
        groups: &[String],
    ) -> CoreResult<User> {
        let role_ids = self.entra_roles(groups).await?;
        let user = match self.linked_user(ENTRA_PROVIDER, subject).await? {
            Some(user) => user,
            None => {
                let found = self
                    .store
                    .credentials_by_username(username.as_str())
                    .await?
                    .map(|found| found.user);
                let user = match found {
                    Some(user) if user.identity_provider == IdentityProvider::Entra => user,
                    Some(_) => {
                        return Err(federation_failure(
                            "a user of this name exists and does not log in with Entra ID",
                        ))
                    }
                    None => {
                        self.create_federated_user(
                            username.as_str(),
                            IdentityProvider::Entra,
                            entra_profile(claims),
                            Tenancy::default(),
                            role_ids.clone(),
                            true,
                        )
                        .await?
                    }
                };
                self.link_identity(ENTRA_PROVIDER, subject, &user).await?;
                user
            }
        };
        if !user.credentials_enabled {
            return Err(CoreError::Unauthenticated(AuthFailure::NotActive));
        }
        self.sync_external_roles(&user, role_ids).await?;
        Ok(user)
    }

    /// Creates a user whose identity comes from `provider` (auto-generated, no password here),
    /// enabled or not.
    /// A parallel first login that created it already gets that user, if it comes from the
    /// same provider.
    pub(crate) async fn create_federated_user(
        &self,
        username: &str,
        provider: IdentityProvider,
        profile: Profile,
        tenancy: Tenancy,
        role_ids: Vec<Uuid>,
        enabled: bool,
    ) -> CoreResult<User> {
        let mut user = User::local(
            username.to_owned(),
            self.clock.now_millis(),
            profile,
            tenancy,
            enabled,
        );
        user.auto_generated = true;
        user.identity_provider = provider;
        user.grant_types = vec![GrantType {
            method: GrantMethod::Password,
            is_required: false,
        }];
        let inserted = self
            .store
            .insert_users(vec![NewUser {
                user: user.clone(),
                password_hash: None,
                own_role: None,
                role_ids,
                certificates: Vec::new(),
            }])
            .await;
        match inserted {
            Ok(()) => {
                tracing::info!(user_id = %user.id, username = %user.username,
                    provider = provider.as_str(), "user created from an identity provider");
                Ok(user)
            }
            Err(CoreError::Conflict { .. }) => self
                .store
                .credentials_by_username(username)
                .await?
                .map(|found| found.user)
                .filter(|found| found.identity_provider == provider)
                .ok_or_else(|| federation_failure("a user of this name exists")),
            Err(other) => Err(other),
        }
    }

    /// The shared roles whose `msEntraIdGroupIds` (comma-separated) name one of `groups`.
    async fn entra_roles(&self, groups: &[String]) -> CoreResult<Vec<Uuid>> {
        let groups: HashSet<String> = groups.iter().map(|id| id.trim().to_lowercase()).collect();
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        self.shared_role_ids(|role| {
            role.ms_entra_id_group_ids.as_deref().is_some_and(|ids| {
                ids.split(',')
                    .any(|id| groups.contains(&id.trim().to_lowercase()))
            })
        })
        .await
    }
}

/// The profile of an Entra ID user from its claims.
fn entra_profile(claims: &Map<String, Value>) -> Profile {
    Profile {
        email: claim_text(claims, "email"),
        first_name: claim_text(claims, "given_name"),
        last_name: claim_text(claims, "family_name"),
        ..Profile::default()
    }
}

/// Whether `place` is an absolute http(s) URL on the origin (scheme, host, port) of `base`.
pub fn same_origin(place: &str, base: &str) -> bool {
    fn origin(url: &str) -> Option<(&str, &str)> {
        let (scheme, rest) = url.split_once("://")?;
        if !matches!(scheme, "http" | "https") {
            return None;
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.is_empty() || authority.contains(['@', '\\']) {
            return None;
        }
        Some((scheme, authority))
    }
    match (origin(place), origin(base)) {
        (Some((scheme, authority)), Some((base_scheme, base_authority))) => {
            scheme == base_scheme && authority.eq_ignore_ascii_case(base_authority)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_ui_origin_is_a_return_address() {
        let ui = "https://cw.example.org/admin/";
        assert!(same_origin("https://cw.example.org/admin/users?x=1", ui));
        assert!(same_origin("https://CW.example.org", ui));
        assert!(!same_origin("http://cw.example.org/admin/", ui));
        assert!(!same_origin("https://cw.example.org:8443/admin/", ui));
        assert!(!same_origin("https://evil.example/admin/", ui));
        assert!(!same_origin("https://cw.example.org@evil.example/", ui));
        assert!(!same_origin("//evil.example/", ui));
        assert!(!same_origin("javascript://cw.example.org/%0aalert(1)", ui));
        assert!(!same_origin("/admin/", ui));
    }

    #[test]
    fn claims_read_as_texts() {
        let claims = json!({"id": 42, "login": "octo", "empty": "", "groups": ["a", 1, "b"],
            "one": "c", "email_verified": "false"})
        .as_object()
        .cloned()
        .unwrap_or_default();
        assert_eq!(claim_text(&claims, "id").as_deref(), Some("42"));
        assert_eq!(claim_text(&claims, "login").as_deref(), Some("octo"));
        assert_eq!(claim_text(&claims, "empty"), None);
        assert_eq!(claim_texts(&claims, "groups"), vec!["a", "b"]);
        assert_eq!(claim_texts(&claims, "one"), vec!["c"]);
        assert!(claim_texts(&claims, "absent").is_empty());
        assert!(email_unverified(&claims));
        assert!(!email_unverified(&Map::new()));
    }
}
