//! The ThingsBoard dialect's OAuth2 configuration: clients (one per provider registration),
//! registration templates and domains (which clients a login page on a host offers). The login
//! itself (redirect, callback, mapping of the provider's attributes to a user) is in
//! [`crate::federation`].
//!
//! Client secrets (and the CUSTOM mapper's password) are sealed with the installation's key;
//! they are opened only to talk to the provider ([`Gatehouse::oauth2_client_for_login`]) and
//! never returned in full: administrators read [`SECRET_MASK`] instead, and saving a client
//! whose secret is the mask (an edited copy of what was read) keeps the stored secret.
//!
//! Who may do what is the dialect's business (ThingsBoard's authorities per endpoint); here a
//! system administrator administers every client and a tenant administrator its tenant's
//! ([`client_scope`]).

use std::collections::HashSet;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{CoreError, CoreResult};
use crate::model::{Authority, User};
use crate::service::{Gatehouse, PageRequest};

/// What administrators read in place of a stored client secret or mapper password; saved
/// back unchanged it keeps the stored value.
pub const SECRET_MASK: &str = "********";

/// Where providers send the browser back (ThingsBoard's `security.oauth2.loginProcessingUrl`).
pub const LOGIN_PROCESSING_URL: &str = "/login/oauth2/code/";

/// ThingsBoard's message for a domain name that is taken.
pub const DOMAIN_NAME_TAKEN: &str = "Domain with such name and scheme already exists!";

/// ThingsBoard's message for a template provider id that is taken.
pub const TEMPLATE_PROVIDER_TAKEN: &str =
    "Client registration template with such providerId already exists!";

/// The platforms a client may be limited to.
pub const PLATFORMS: [&str; 3] = ["WEB", "ANDROID", "IOS"];

/// Setting that records that the bundled templates were stored once (so that a deleted one
/// stays deleted).
const TEMPLATES_SEEDED: &str = "oauth2.templates_seeded";

/// Longest title, in characters (ThingsBoard's `@Length(max = 100)`).
const MAX_TITLE: usize = 100;
/// Longest short text (labels, attribute names, patterns, provider ids), in characters.
const MAX_TEXT: usize = 255;
/// Longest client id or comment, in characters.
const MAX_LONG_TEXT: usize = 1024;
/// Longest URL, in characters.
const MAX_URL: usize = 2048;
/// Longest secret, in characters (Apple's client secrets are JWTs).
const MAX_SECRET: usize = 4096;
/// Most scopes of one client.
const MAX_SCOPES: usize = 50;
/// Largest `additionalInfo`, serialized, in bytes.
const MAX_ADDITIONAL_INFO: usize = 16 * 1024;
/// Most clients one domain may offer, and ids one request may name.
pub const MAX_CLIENT_IDS: usize = 1000;

/// How the client authenticates at the provider's token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthentication {
    /// `client_secret_basic` (ThingsBoard's `BASIC`).
    Basic,
    /// `client_secret_post` (ThingsBoard's `POST`).
    Post,
    /// No client authentication (any other ThingsBoard value): a public client, PKCE only.
    None,
}

impl ClientAuthentication {
    /// The method of a ThingsBoard `clientAuthenticationMethod` value.
    pub fn of_method(method: &str) -> Self {
        match method {
            "BASIC" => ClientAuthentication::Basic,
            "POST" => ClientAuthentication::Post,
            _ => ClientAuthentication::None,
        }
    }

    /// Whether the client proves itself with a secret (and so must have one).
    pub fn needs_secret(self) -> bool {
        self != ClientAuthentication::None
    }
}

/// How a provider's attributes become a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MapperType {
    /// Attributes named by [`BasicMapperConfig`].
    Basic,
    /// The attributes are posted to an external service that answers the user.
    Custom,
    /// GitHub: the email comes from GitHub's `/user/emails`.
    Github,
    /// Sign in with Apple: the names come with the first callback only.
    Apple,
}

impl MapperType {
    /// ThingsBoard's name.
    pub fn as_str(self) -> &'static str {
        match self {
            MapperType::Basic => "BASIC",
            MapperType::Custom => "CUSTOM",
            MapperType::Github => "GITHUB",
            MapperType::Apple => "APPLE",
        }
    }
}

/// How the tenant of a new user is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TenantNameStrategy {
    /// The domain of the email.
    Domain,
    /// The email.
    Email,
    /// [`BasicMapperConfig::tenant_name_pattern`] with `%{attribute}` placeholders.
    Custom,
}

impl TenantNameStrategy {
    /// ThingsBoard's name.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantNameStrategy::Domain => "DOMAIN",
            TenantNameStrategy::Email => "EMAIL",
            TenantNameStrategy::Custom => "CUSTOM",
        }
    }
}

/// The BASIC (and GITHUB, APPLE) mapper's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BasicMapperConfig {
    /// The attribute holding the email (absent for GITHUB).
    pub email_attribute_key: Option<String>,
    /// The attribute holding the first name.
    pub first_name_attribute_key: Option<String>,
    /// The attribute holding the last name.
    pub last_name_attribute_key: Option<String>,
    /// How the tenant of a new user is named.
    pub tenant_name_strategy: TenantNameStrategy,
    /// The pattern of [`TenantNameStrategy::Custom`].
    pub tenant_name_pattern: Option<String>,
    /// With a value, new users are customer users of the customer so named (`%{attribute}`
    /// placeholders); without, tenant administrators.
    pub customer_name_pattern: Option<String>,
    /// Kept for ThingsBoard clients (`additionalInfo.defaultDashboardId` is not resolved here).
    pub default_dashboard_name: Option<String>,
    /// Kept for ThingsBoard clients.
    pub always_full_screen: bool,
}

/// The CUSTOM mapper's settings. The serde form (the stored one) leaves out the password,
/// which is sealed apart.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomMapperConfig {
    /// Where the provider's attributes are posted.
    pub url: String,
    /// Basic-auth user for `url`.
    pub username: Option<String>,
    /// Basic-auth password for `url` (sealed at rest).
    #[serde(skip)]
    pub password: Option<SecretString>,
    /// Whether the provider's access token is sent along (`provider-access-token`).
    pub send_token: bool,
}

/// How a client's logins become users.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MapperConfig {
    /// Whether an unknown user is created at its first login.
    pub allow_user_creation: bool,
    /// Whether a created user is activated at once.
    pub activate_user: bool,
    /// The mapper.
    #[serde(rename = "type")]
    pub kind: MapperType,
    /// BASIC, GITHUB and APPLE settings.
    pub basic: Option<BasicMapperConfig>,
    /// CUSTOM settings.
    pub custom: Option<CustomMapperConfig>,
}

/// One OAuth2 client: a registration of Gatehouse at a provider.
///
/// Its serde form is the stored document: every field but the id, tenant, creation time and
/// title (stored as columns) and the secrets (sealed apart).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2Client {
    /// Stable id (the `{clientId}` of `/oauth2/authorization/{clientId}`).
    #[serde(skip)]
    pub id: Uuid,
    /// The tenant of the administrator who saved it ([`crate::model::NULL_UUID`] for system
    /// administrators).
    #[serde(skip)]
    pub tenant_id: Uuid,
    /// Creation time, Unix ms.
    #[serde(skip)]
    pub created_at: i64,
    /// Title (≤ 100 characters), also its `name`.
    #[serde(skip)]
    pub title: String,
    /// Free-form JSON object (`providerName` …).
    pub additional_info: Value,
    /// How logins become users.
    #[serde(rename = "mapperConfig")]
    pub mapper: MapperConfig,
    /// The client id at the provider.
    pub client_id: String,
    /// The client secret at the provider (sealed at rest; empty for a public client).
    #[serde(skip, default = "no_secret")]
    pub client_secret: SecretString,
    /// The provider's authorization endpoint.
    pub authorization_uri: String,
    /// The provider's token endpoint.
    pub access_token_uri: String,
    /// Scopes asked for; with `openid` the ID token is validated against `jwk_set_uri`.
    pub scope: Vec<String>,
    /// The provider's userinfo endpoint.
    pub user_info_uri: Option<String>,
    /// The attribute naming the user (ThingsBoard's `userNameAttributeName`).
    pub user_name_attribute_name: String,
    /// The provider's JWKS.
    pub jwk_set_uri: Option<String>,
    /// The wire value of the authentication method (kept as sent).
    pub client_authentication_method: String,
    /// Label of the login button.
    pub login_button_label: String,
    /// Icon of the login button.
    pub login_button_icon: Option<String>,
    /// `WEB`, `ANDROID`, `IOS`; empty for all.
    pub platforms: Vec<String>,
}

/// An empty secret (none stored, or not opened).
fn no_secret() -> SecretString {
    SecretString::from(String::new())
}

impl OAuth2Client {
    /// The authentication method at the token endpoint.
    pub fn authentication(&self) -> ClientAuthentication {
        ClientAuthentication::of_method(&self.client_authentication_method)
    }

    /// `additionalInfo.providerName`, when it is a string.
    pub fn provider_name(&self) -> Option<String> {
        self.additional_info
            .get("providerName")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// Whether the client may be used on `platform` (a client without platforms serves all).
    pub fn serves(&self, platform: &str) -> bool {
        self.platforms.is_empty() || self.platforms.iter().any(|p| p == platform)
    }

    /// The summary shown in lists.
    pub fn info(&self) -> OAuth2ClientInfo {
        OAuth2ClientInfo {
            id: self.id,
            created_at: self.created_at,
            title: self.title.clone(),
            provider_name: self.provider_name(),
            platforms: self.platforms.clone(),
        }
    }
}

/// A client as stored: its secret and mapper password sealed, and emptied in `client`.
#[derive(Debug, Clone)]
pub struct SealedOAuth2Client {
    /// The client (secrets empty).
    pub client: OAuth2Client,
    /// The sealed client secret; empty when the client has none (a public client).
    pub secret_sealed: String,
    /// The sealed CUSTOM mapper password, if any.
    pub password_sealed: Option<String>,
}

/// A client as listed (ThingsBoard's `OAuth2ClientInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2ClientInfo {
    /// The client's id.
    pub id: Uuid,
    /// Creation time, Unix ms.
    pub created_at: i64,
    /// Title.
    pub title: String,
    /// `additionalInfo.providerName`.
    pub provider_name: Option<String>,
    /// Platforms (empty for all).
    pub platforms: Vec<String>,
}

/// A login button of the public client list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2LoginButton {
    /// The client's id.
    pub client_id: Uuid,
    /// The button's label.
    pub label: String,
    /// The button's icon.
    pub icon: Option<String>,
}

/// Sort columns of client listings. Ties are broken by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuth2ClientSort {
    /// `createdTime`.
    CreatedTime,
    /// `title`, ignoring ASCII case.
    Title,
}

/// Which clients to list.
#[derive(Debug, Clone)]
pub struct OAuth2ClientQuery {
    /// Only this tenant's clients; all when `None`.
    pub tenant_id: Option<Uuid>,
    /// Only clients whose title contains this text, ignoring ASCII case.
    pub text_search: Option<String>,
    /// Sort column.
    pub sort: OAuth2ClientSort,
    /// Descending instead of ascending.
    pub descending: bool,
    /// Rows to skip.
    pub offset: u64,
    /// Rows to return at most.
    pub limit: u64,
}

/// A page of clients.
#[derive(Debug, Clone)]
pub struct OAuth2ClientPage {
    /// This page's clients.
    pub items: Vec<OAuth2ClientInfo>,
    /// Clients matching the query across all pages.
    pub total: u64,
}

/// A registration template: a provider's defaults for new clients (ThingsBoard's
/// `OAuth2ClientRegistrationTemplate`). Its serde form is the stored document (every field
/// but the id and creation time).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2Template {
    /// Stable id.
    #[serde(skip)]
    pub id: Uuid,
    /// Creation time, Unix ms.
    #[serde(skip)]
    pub created_at: i64,
    /// The provider (unique), e.g. `Google`.
    pub provider_id: String,
    /// Default mapper.
    #[serde(rename = "mapperConfig")]
    pub mapper: MapperConfig,
    /// Default authorization endpoint.
    pub authorization_uri: Option<String>,
    /// Default token endpoint.
    pub access_token_uri: Option<String>,
    /// Default scopes.
    pub scope: Vec<String>,
    /// Default userinfo endpoint.
    pub user_info_uri: Option<String>,
    /// Default user name attribute.
    pub user_name_attribute_name: Option<String>,
    /// Default JWKS.
    pub jwk_set_uri: Option<String>,
    /// Default authentication method (`BASIC`, `POST`, …).
    pub client_authentication_method: Option<String>,
    /// Comment.
    pub comment: Option<String>,
    /// Default button icon.
    pub login_button_icon: Option<String>,
    /// Default button label.
    pub login_button_label: Option<String>,
    /// Where the provider documents its registration.
    pub help_link: Option<String>,
    /// Free-form JSON object.
    pub additional_info: Value,
}

/// A domain name as ThingsBoard matches it against requests: a host (DNS name, IPv4 address
/// or bracketed IPv6 address) with an optional port, in lower case, without scheme or path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DomainName(String);

impl DomainName {
    /// Parses and normalizes (lower case, canonical IPv6 and port) a domain name such as
    /// `iot.example.com`, `10.0.0.5:8080` or `[::1]:8443`.
    pub fn parse(text: &str) -> CoreResult<Self> {
        const FIELD: &str = "Domain name";
        if text.trim().is_empty() {
            return Err(CoreError::invalid(FIELD, "should be specified!"));
        }
        let invalid = || {
            CoreError::invalid(
                FIELD,
                "must be a host name or IP address with an optional port, such as \
                 iot.example.com or 10.0.0.5:8080 (no scheme, no path)",
            )
        };
        if text.len() > 300 || !text.is_ascii() {
            return Err(invalid());
        }
        let lower = text.to_ascii_lowercase();
        let (host, port) = if let Some(rest) = lower.strip_prefix('[') {
            let (address, after) = rest.split_once(']').ok_or_else(invalid)?;
            let address: std::net::Ipv6Addr = address.parse().map_err(|_| invalid())?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or_else(invalid)?),
            };
            (format!("[{address}]"), port)
        } else {
            let (host, port) = match lower.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (lower.as_str(), None),
            };
            if !is_dns_name(host) {
                return Err(invalid());
            }
            (host.to_owned(), port)
        };
        let name = match port {
            None => host,
            Some(port) => {
                if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid());
                }
                let number: u16 = port.parse().map_err(|_| invalid())?;
                if number == 0 {
                    return Err(invalid());
                }
                format!("{host}:{number}")
            }
        };
        Ok(Self(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DomainName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `host` is a DNS name (or IPv4 address): dot-separated labels of ASCII letters,
/// digits and inner hyphens, 1–63 characters each, 253 in all.
fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// A domain: a host whose login page offers some clients (ThingsBoard's `Domain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// Stable id.
    pub id: Uuid,
    /// The tenant of the administrator who saved it.
    pub tenant_id: Uuid,
    /// Creation time, Unix ms.
    pub created_at: i64,
    /// The name (unique).
    pub name: DomainName,
    /// Whether its login page offers its clients.
    pub oauth2_enabled: bool,
    /// Kept for ThingsBoard clients (there is no Edge here).
    pub propagate_to_edge: bool,
}

/// A domain to save.
#[derive(Debug, Clone)]
pub struct DomainDraft {
    /// The name as sent (parsed on save).
    pub name: String,
    /// Whether its login page offers its clients.
    pub oauth2_enabled: bool,
    /// Kept for ThingsBoard clients.
    pub propagate_to_edge: bool,
}

/// A domain with its clients (ThingsBoard's `DomainInfo`).
#[derive(Debug, Clone)]
pub struct DomainInfo {
    /// The domain.
    pub domain: Domain,
    /// Its clients, oldest first.
    pub clients: Vec<OAuth2ClientInfo>,
}

/// Sort columns of domain listings. Ties are broken by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainSort {
    /// `createdTime`.
    CreatedTime,
    /// `name`.
    Name,
}

/// Which domains to list.
#[derive(Debug, Clone)]
pub struct DomainQuery {
    /// Only domains whose name contains this text, ignoring ASCII case.
    pub text_search: Option<String>,
    /// Sort column.
    pub sort: DomainSort,
    /// Descending instead of ascending.
    pub descending: bool,
    /// Rows to skip.
    pub offset: u64,
    /// Rows to return at most.
    pub limit: u64,
}

/// A page of domains with their clients.
#[derive(Debug, Clone)]
pub struct DomainPage {
    /// This page's domains.
    pub items: Vec<DomainInfo>,
    /// Domains matching the query across all pages.
    pub total: u64,
}

/// The tenant whose clients `actor` administers: `None` (every tenant) for system
/// administrators, its own for tenant administrators; other users administer none.
pub fn client_scope(actor: &User) -> CoreResult<Option<Uuid>> {
    match actor.tenancy.authority {
        Authority::SysAdmin => Ok(None),
        Authority::TenantAdmin => Ok(Some(actor.tenancy.tenant_id)),
        Authority::CustomerUser => Err(CoreError::Forbidden {
            reason: "only administrators manage OAuth2 clients".to_owned(),
        }),
    }
}

// --- validation

/// `value` must not be blank (ThingsBoard's `<what> should be specified!`).
fn specified(what: &str, value: &str) -> CoreResult<()> {
    if value.trim().is_empty() {
        Err(CoreError::invalid(what, "should be specified!"))
    } else {
        Ok(())
    }
}

/// `value` must be at most `max` characters without control characters.
fn bounded(field: &str, value: &str, max: usize) -> CoreResult<()> {
    if value.chars().count() > max {
        return Err(CoreError::invalid(
            field,
            format!("length must be equal or less than {max}"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(CoreError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// An optional text, bounded when present.
fn bounded_opt(field: &str, value: Option<&str>, max: usize) -> CoreResult<()> {
    value.map_or(Ok(()), |value| bounded(field, value, max))
}

/// `value` must be an absolute `http` or `https` URL with a host.
fn http_url(field: &str, value: &str) -> CoreResult<()> {
    bounded(field, value, MAX_URL)?;
    let lower = value.to_ascii_lowercase();
    let authority = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .and_then(|rest| rest.split(['/', '?', '#']).next())
        .unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') || value.chars().any(char::is_whitespace) {
        return Err(CoreError::invalid(field, "must be an http or https URL"));
    }
    Ok(())
}

/// An optional URL, checked when present and not blank.
fn http_url_opt(field: &str, value: Option<&str>) -> CoreResult<()> {
    match value {
        Some(value) if !value.is_empty() => http_url(field, value),
        _ => Ok(()),
    }
}

/// Scopes: at most 50, each a non-blank token without whitespace.
fn check_scopes(scopes: &[String]) -> CoreResult<()> {
    if scopes.len() > MAX_SCOPES {
        return Err(CoreError::invalid("scope", "must have at most 50 entries"));
    }
    for scope in scopes {
        bounded("scope", scope, MAX_TEXT)?;
        if scope.is_empty() || scope.chars().any(char::is_whitespace) {
            return Err(CoreError::invalid(
                "scope",
                "entries must be single non-empty words",
            ));
        }
    }
    Ok(())
}

/// A JSON object (or null) of bounded size.
fn check_additional_info(info: &Value) -> CoreResult<()> {
    if !(info.is_object() || info.is_null()) {
        return Err(CoreError::invalid(
            "additionalInfo",
            "must be a JSON object",
        ));
    }
    if info.to_string().len() > MAX_ADDITIONAL_INFO {
        return Err(CoreError::invalid(
            "additionalInfo",
            "must be at most 16384 bytes as JSON",
        ));
    }
    Ok(())
}

/// ThingsBoard's mapper rules (`Oauth2ClientDataValidator`), and bounds on every text.
fn check_mapper(mapper: &MapperConfig) -> CoreResult<()> {
    match mapper.kind {
        MapperType::Basic | MapperType::Github | MapperType::Apple => {
            let basic = mapper
                .basic
                .as_ref()
                .ok_or_else(|| CoreError::invalid("Basic config", "should be specified!"))?;
            let email = basic.email_attribute_key.as_deref().unwrap_or_default();
            if mapper.kind == MapperType::Github {
                if !email.trim().is_empty() {
                    return Err(CoreError::invalid(
                        "Email attribute key",
                        "cannot be configured for GITHUB mapper type!",
                    ));
                }
            } else {
                specified("Email attribute key", email)?;
            }
            if basic.tenant_name_strategy == TenantNameStrategy::Custom {
                specified(
                    "Tenant name pattern",
                    basic.tenant_name_pattern.as_deref().unwrap_or_default(),
                )?;
            }
        }
        MapperType::Custom => {
            let custom = mapper
                .custom
                .as_ref()
                .ok_or_else(|| CoreError::invalid("Custom config", "should be specified!"))?;
            specified("Custom mapper URL", &custom.url)?;
            http_url("Custom mapper URL", &custom.url)?;
        }
    }
    if let Some(basic) = &mapper.basic {
        for (field, value) in [
            ("emailAttributeKey", &basic.email_attribute_key),
            ("firstNameAttributeKey", &basic.first_name_attribute_key),
            ("lastNameAttributeKey", &basic.last_name_attribute_key),
            ("tenantNamePattern", &basic.tenant_name_pattern),
            ("customerNamePattern", &basic.customer_name_pattern),
            ("defaultDashboardName", &basic.default_dashboard_name),
        ] {
            bounded_opt(field, value.as_deref(), MAX_TEXT)?;
        }
    }
    if let Some(custom) = &mapper.custom {
        if !custom.url.is_empty() {
            http_url("Custom mapper URL", &custom.url)?;
        }
        bounded_opt("custom.username", custom.username.as_deref(), MAX_TEXT)?;
        if let Some(password) = &custom.password {
            bounded("custom.password", password.expose_secret(), MAX_SECRET)?;
        }
    }
    Ok(())
}

/// Every rule of a client to store, in ThingsBoard's order. `has_secret`: whether the client
/// will have a (non-empty) secret, new or kept.
fn check_client(client: &OAuth2Client, has_secret: bool) -> CoreResult<()> {
    specified("title", &client.title)?;
    bounded("title", &client.title, MAX_TITLE)?;
    specified("Client ID", &client.client_id)?;
    bounded("clientId", &client.client_id, MAX_LONG_TEXT)?;
    if client.authentication().needs_secret() && !has_secret {
        return Err(CoreError::invalid("Client secret", "should be specified!"));
    }
    bounded(
        "clientSecret",
        client.client_secret.expose_secret(),
        MAX_SECRET,
    )?;
    specified("Authorization uri", &client.authorization_uri)?;
    http_url("authorizationUri", &client.authorization_uri)?;
    specified("Token uri", &client.access_token_uri)?;
    http_url("accessTokenUri", &client.access_token_uri)?;
    if client.scope.iter().all(|scope| scope.trim().is_empty()) {
        return Err(CoreError::invalid("Scope", "should be specified!"));
    }
    check_scopes(&client.scope)?;
    specified("User name attribute name", &client.user_name_attribute_name)?;
    bounded(
        "userNameAttributeName",
        &client.user_name_attribute_name,
        MAX_TEXT,
    )?;
    specified(
        "Client authentication method",
        &client.client_authentication_method,
    )?;
    bounded(
        "clientAuthenticationMethod",
        &client.client_authentication_method,
        MAX_TEXT,
    )?;
    specified("Login button label", &client.login_button_label)?;
    bounded("loginButtonLabel", &client.login_button_label, MAX_TEXT)?;
    bounded_opt(
        "loginButtonIcon",
        client.login_button_icon.as_deref(),
        MAX_TEXT,
    )?;
    http_url_opt("userInfoUri", client.user_info_uri.as_deref())?;
    http_url_opt("jwkSetUri", client.jwk_set_uri.as_deref())?;
    check_additional_info(&client.additional_info)?;
    for platform in &client.platforms {
        if !PLATFORMS.contains(&platform.as_str()) {
            return Err(CoreError::invalid(
                "platforms",
                "must hold only WEB, ANDROID and IOS",
            ));
        }
    }
    check_mapper(&client.mapper)
}

/// Every rule of a template to store.
fn check_template(template: &OAuth2Template) -> CoreResult<()> {
    specified("Provider ID", &template.provider_id)?;
    bounded("providerId", &template.provider_id, MAX_TEXT)?;
    check_mapper(&template.mapper)?;
    http_url_opt("authorizationUri", template.authorization_uri.as_deref())?;
    http_url_opt("accessTokenUri", template.access_token_uri.as_deref())?;
    http_url_opt("userInfoUri", template.user_info_uri.as_deref())?;
    http_url_opt("jwkSetUri", template.jwk_set_uri.as_deref())?;
    http_url_opt("helpLink", template.help_link.as_deref())?;
    check_scopes(&template.scope)?;
    for (field, value, max) in [
        (
            "userNameAttributeName",
            &template.user_name_attribute_name,
            MAX_TEXT,
        ),
        (
            "clientAuthenticationMethod",
            &template.client_authentication_method,
            MAX_TEXT,
        ),
        ("comment", &template.comment, MAX_LONG_TEXT),
        ("loginButtonIcon", &template.login_button_icon, MAX_TEXT),
        ("loginButtonLabel", &template.login_button_label, MAX_TEXT),
    ] {
        bounded_opt(field, value.as_deref(), max)?;
    }
    check_additional_info(&template.additional_info)
}

/// Normalizes a free-form JSON object: null becomes `{}`.
fn object_or_empty(info: Value) -> Value {
    if info.is_null() {
        Value::Object(serde_json::Map::new())
    } else {
        info
    }
}

/// Distinct ids, in their first order, at most [`MAX_CLIENT_IDS`].
fn distinct_ids(ids: &[Uuid]) -> CoreResult<Vec<Uuid>> {
    let mut seen = HashSet::new();
    let distinct: Vec<Uuid> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
    if distinct.len() > MAX_CLIENT_IDS {
        return Err(CoreError::invalid(
            "oauth2ClientIds",
            "must name at most 1000 clients",
        ));
    }
    Ok(distinct)
}

// --- bundled templates

/// A BASIC-like mapper with DOMAIN tenant naming.
fn default_mapper(
    kind: MapperType,
    email: Option<&str>,
    first: &str,
    last: Option<&str>,
) -> MapperConfig {
    MapperConfig {
        allow_user_creation: true,
        activate_user: false,
        kind,
        basic: Some(BasicMapperConfig {
            email_attribute_key: email.map(str::to_owned),
            first_name_attribute_key: Some(first.to_owned()),
            last_name_attribute_key: last.map(str::to_owned),
            tenant_name_strategy: TenantNameStrategy::Domain,
            tenant_name_pattern: None,
            customer_name_pattern: None,
            default_dashboard_name: None,
            always_full_screen: false,
        }),
        custom: None,
    }
}

/// The templates ThingsBoard ships: Google, GitHub, Facebook and Apple, with the providers'
/// public endpoints.
pub fn bundled_templates(now: i64) -> Vec<OAuth2Template> {
    let template = |provider: &str,
                    mapper: MapperConfig,
                    uris: [Option<&str>; 4],
                    scope: &[&str],
                    user_name: &str,
                    method: &str,
                    icon: &str,
                    help: &str| {
        let [authorization, token, user_info, jwks] = uris.map(|uri| uri.map(str::to_owned));
        OAuth2Template {
            id: Uuid::new_v4(),
            created_at: now,
            provider_id: provider.to_owned(),
            mapper,
            authorization_uri: authorization,
            access_token_uri: token,
            scope: scope.iter().map(|s| (*s).to_owned()).collect(),
            user_info_uri: user_info,
            user_name_attribute_name: Some(user_name.to_owned()),
            jwk_set_uri: jwks,
            client_authentication_method: Some(method.to_owned()),
            comment: None,
            login_button_icon: Some(icon.to_owned()),
            login_button_label: Some(provider.to_owned()),
            help_link: Some(help.to_owned()),
            additional_info: Value::Object(serde_json::Map::new()),
        }
    };
    vec![
        template(
            "Google",
            default_mapper(
                MapperType::Basic,
                Some("email"),
                "given_name",
                Some("family_name"),
            ),
            [
                Some("https://accounts.google.com/o/oauth2/v2/auth"),
                Some("https://oauth2.googleapis.com/token"),
                Some("https://openidconnect.googleapis.com/v1/userinfo"),
                Some("https://www.googleapis.com/oauth2/v3/certs"),
            ],
            &["email", "openid", "profile"],
            "email",
            "BASIC",
            "google-logo",
            "https://developers.google.com/identity/protocols/oauth2/openid-connect",
        ),
        template(
            "Github",
            default_mapper(MapperType::Github, None, "name", None),
            [
                Some("https://github.com/login/oauth/authorize"),
                Some("https://github.com/login/oauth/access_token"),
                Some("https://api.github.com/user"),
                None,
            ],
            &["read:user", "user:email"],
            "login",
            "BASIC",
            "github-logo",
            "https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/creating-an-oauth-app",
        ),
        template(
            "Facebook",
            default_mapper(
                MapperType::Basic,
                Some("email"),
                "first_name",
                Some("last_name"),
            ),
            [
                Some("https://www.facebook.com/v2.8/dialog/oauth"),
                Some("https://graph.facebook.com/v2.8/oauth/access_token"),
                Some("https://graph.facebook.com/me?fields=id,name,first_name,last_name,email"),
                None,
            ],
            &["email", "public_profile"],
            "email",
            "BASIC",
            "facebook-logo",
            "https://developers.facebook.com/docs/facebook-login/guides/advanced/manual-flow",
        ),
        template(
            "Apple",
            default_mapper(
                MapperType::Apple,
                Some("email"),
                "firstName",
                Some("lastName"),
            ),
            [
                Some("https://appleid.apple.com/auth/authorize?response_mode=form_post"),
                Some("https://appleid.apple.com/auth/token"),
                None,
                Some("https://appleid.apple.com/auth/keys"),
            ],
            &["email", "openid", "name"],
            "email",
            "POST",
            "apple-logo",
            "https://developer.apple.com/sign-in-with-apple/get-started/",
        ),
    ]
}

// --- operations

/// The owner (associated data) of a client's sealed secret.
fn secret_owner(id: Uuid) -> String {
    format!("oauth2_client:{id}")
}

/// The owner (associated data) of a client's sealed CUSTOM mapper password.
fn password_owner(id: Uuid) -> String {
    format!("oauth2_client:{id}:mapper_password")
}

/// What an administrator reads of a stored client: the secret as [`SECRET_MASK`] (also for a
/// public client without one: ThingsBoard's clients require a non-empty `clientSecret`, and
/// saving the mask back keeps the empty secret), the mapper password as the mask when one is
/// stored.
fn masked(sealed: SealedOAuth2Client) -> OAuth2Client {
    let mut client = sealed.client;
    client.client_secret = SecretString::from(SECRET_MASK.to_owned());
    if let Some(custom) = &mut client.mapper.custom {
        custom.password = sealed
            .password_sealed
            .as_ref()
            .map(|_| SecretString::from(SECRET_MASK.to_owned()));
    }
    client
}

/// Whether an administrator scoped to `scope` may see `client`.
fn in_scope(scope: Option<Uuid>, client: &OAuth2Client) -> bool {
    scope.is_none_or(|tenant| tenant == client.tenant_id)
}

impl Gatehouse {
    /// A stored client the actor administers (others are as missing as unknown ones).
    async fn administered_client(&self, actor: &User, id: Uuid) -> CoreResult<SealedOAuth2Client> {
        let scope = client_scope(actor)?;
        match self.store.oauth2_client(id).await? {
            Some(sealed) if in_scope(scope, &sealed.client) => Ok(sealed),
            _ => Err(CoreError::not_found("OAuth2 client")),
        }
    }

    /// Creates a client (`id` `None`; it belongs to the actor's tenant) or replaces the one
    /// with `id` (keeping its tenant and creation time). The draft's id, tenant and creation
    /// time are ignored. A secret (or CUSTOM password) equal to [`SECRET_MASK`] keeps the
    /// stored one; a new client needs a real secret unless its authentication method is
    /// neither `BASIC` nor `POST` (a public client). Answers the client as
    /// [`Gatehouse::oauth2_client`] does.
    pub async fn save_oauth2_client(
        &self,
        actor: &User,
        id: Option<Uuid>,
        mut draft: OAuth2Client,
    ) -> CoreResult<OAuth2Client> {
        client_scope(actor)?;
        let existing = match id {
            Some(id) => Some(self.administered_client(actor, id).await?),
            None => None,
        };
        draft.additional_info = object_or_empty(draft.additional_info);
        match &existing {
            Some(stored) => {
                draft.id = stored.client.id;
                draft.tenant_id = stored.client.tenant_id;
                draft.created_at = stored.client.created_at;
            }
            None => {
                draft.id = Uuid::new_v4();
                draft.tenant_id = actor.tenancy.tenant_id;
                draft.created_at = self.clock.now_millis();
            }
        }
        // The secret: kept when the mask comes back on an update, else the one sent.
        let secret = std::mem::replace(&mut draft.client_secret, no_secret());
        let kept_secret = match &existing {
            Some(stored) if secret.expose_secret() == SECRET_MASK => {
                Some(stored.secret_sealed.clone())
            }
            _ => None,
        };
        if kept_secret.is_none() && secret.expose_secret() == SECRET_MASK {
            return Err(CoreError::invalid(
                "clientSecret",
                "must be the provider's secret, not the mask of a stored one",
            ));
        }
        let has_secret = match &kept_secret {
            Some(sealed) => !sealed.is_empty(),
            None => !secret.expose_secret().is_empty(),
        };
        draft.client_secret = secret;
        check_client(&draft, has_secret)?;
        let secret = std::mem::replace(&mut draft.client_secret, no_secret());
        let secret_sealed = match kept_secret {
            Some(sealed) => sealed,
            None if secret.expose_secret().is_empty() => String::new(),
            None => self
                .sealing
                .seal(secret.expose_secret().as_bytes(), &secret_owner(draft.id))?,
        };
        // The CUSTOM mapper's password likewise (kept only while the mapper stays CUSTOM).
        let password = draft
            .mapper
            .custom
            .as_mut()
            .and_then(|custom| custom.password.take())
            .filter(|password| !password.expose_secret().is_empty());
        let password_sealed =
            match password {
                None => None,
                Some(password) if password.expose_secret() == SECRET_MASK => {
                    match existing.as_ref().and_then(|s| s.password_sealed.clone()) {
                        Some(sealed) => Some(sealed),
                        None => return Err(CoreError::invalid(
                            "custom.password",
                            "must be the mapper service's password, not the mask of a stored one",
                        )),
                    }
                }
                Some(password) => Some(self.sealing.seal(
                    password.expose_secret().as_bytes(),
                    &password_owner(draft.id),
                )?),
            };
        let sealed = SealedOAuth2Client {
            client: draft,
            secret_sealed,
            password_sealed,
        };
        if existing.is_some() {
            if !self.store.update_oauth2_client(&sealed).await? {
                return Err(CoreError::not_found("OAuth2 client"));
            }
        } else {
            self.store.insert_oauth2_client(&sealed).await?;
        }
        tracing::info!(oauth2_client_id = %sealed.client.id, created = existing.is_none(), "OAuth2 client saved");
        Ok(masked(sealed))
    }

    /// A client the actor administers, its secret and mapper password masked.
    pub async fn oauth2_client(&self, actor: &User, id: Uuid) -> CoreResult<OAuth2Client> {
        Ok(masked(self.administered_client(actor, id).await?))
    }

    /// Deletes a client the actor administers; domains stop offering it.
    pub async fn delete_oauth2_client(&self, actor: &User, id: Uuid) -> CoreResult<()> {
        self.administered_client(actor, id).await?;
        if !self.store.delete_oauth2_client(id).await? {
            return Err(CoreError::not_found("OAuth2 client"));
        }
        tracing::info!(oauth2_client_id = %id, "OAuth2 client deleted");
        Ok(())
    }

    /// A page of the clients the actor administers (the query's tenant is set from the actor).
    pub async fn oauth2_client_infos(
        &self,
        actor: &User,
        mut query: OAuth2ClientQuery,
        page: PageRequest,
    ) -> CoreResult<OAuth2ClientPage> {
        query.tenant_id = client_scope(actor)?;
        query.offset = page.offset();
        query.limit = page.rows_per_page;
        let (clients, total) = self.store.oauth2_clients(&query).await?;
        Ok(OAuth2ClientPage {
            items: clients.iter().map(|sealed| sealed.client.info()).collect(),
            total,
        })
    }

    /// The clients with these ids that the actor administers, oldest first (unknown ids are
    /// left out).
    pub async fn oauth2_client_infos_by_ids(
        &self,
        actor: &User,
        ids: &[Uuid],
    ) -> CoreResult<Vec<OAuth2ClientInfo>> {
        let scope = client_scope(actor)?;
        let ids = distinct_ids(ids)?;
        let clients = self.store.oauth2_clients_by_ids(&ids).await?;
        Ok(clients
            .iter()
            .filter(|sealed| in_scope(scope, &sealed.client))
            .map(|sealed| sealed.client.info())
            .collect())
    }

    /// A client with its secret and CUSTOM mapper password opened, for a login through it;
    /// `NotFound` if unknown. Never show what this returns.
    pub async fn oauth2_client_for_login(&self, id: Uuid) -> CoreResult<OAuth2Client> {
        let sealed = self
            .store
            .oauth2_client(id)
            .await?
            .ok_or(CoreError::not_found("OAuth2 client"))?;
        let open = |sealed: &str, owner: String| -> CoreResult<SecretString> {
            let bytes = self.sealing.open(sealed, &owner)?;
            String::from_utf8(bytes)
                .map(SecretString::from)
                .map_err(|_| CoreError::internal("a sealed OAuth2 secret is not UTF-8"))
        };
        let mut client = sealed.client;
        if !sealed.secret_sealed.is_empty() {
            client.client_secret = open(&sealed.secret_sealed, secret_owner(id))?;
        }
        if let (Some(custom), Some(password)) = (&mut client.mapper.custom, &sealed.password_sealed)
        {
            custom.password = Some(open(password, password_owner(id))?);
        }
        Ok(client)
    }

    /// The login buttons for a request to `domain` (`host[:port]` as the request names it; a
    /// name that is not a valid domain matches nothing): the clients of the OAuth2-enabled
    /// domain of that name, oldest first, limited to those serving `platform` when it is one
    /// of [`PLATFORMS`] (other values are ignored, as ThingsBoard does).
    pub async fn oauth2_login_buttons(
        &self,
        domain: &str,
        platform: Option<&str>,
    ) -> CoreResult<Vec<OAuth2LoginButton>> {
        let Ok(name) = DomainName::parse(domain) else {
            return Ok(Vec::new());
        };
        let platform = platform.filter(|platform| PLATFORMS.contains(platform));
        let clients = self.store.oauth2_clients_of_domain(&name).await?;
        Ok(clients
            .into_iter()
            .map(|sealed| sealed.client)
            .filter(|client| platform.is_none_or(|platform| client.serves(platform)))
            .map(|client| OAuth2LoginButton {
                client_id: client.id,
                label: client.login_button_label,
                icon: client.login_button_icon,
            })
            .collect())
    }

    // --- templates

    /// Every template, by provider id. The bundled ones are stored at the first call (once
    /// per database: one deleted later stays deleted).
    pub async fn oauth2_templates(&self) -> CoreResult<Vec<OAuth2Template>> {
        if self.store.setting(TEMPLATES_SEEDED).await?.is_none() {
            self.store
                .insert_missing_oauth2_templates(bundled_templates(self.clock.now_millis()))
                .await?;
            self.store.put_setting(TEMPLATES_SEEDED, "true").await?;
        }
        self.store.oauth2_templates().await
    }

    /// Creates a template (`id` `None`) or replaces the one with `id` (keeping its creation
    /// time); the draft's id and creation time are ignored. `Conflict` if its provider id is
    /// taken.
    pub async fn save_oauth2_template(
        &self,
        id: Option<Uuid>,
        mut draft: OAuth2Template,
    ) -> CoreResult<OAuth2Template> {
        draft.additional_info = object_or_empty(draft.additional_info);
        check_template(&draft)?;
        match id {
            Some(id) => {
                let stored = self
                    .store
                    .oauth2_template(id)
                    .await?
                    .ok_or(CoreError::not_found("OAuth2 template"))?;
                draft.id = id;
                draft.created_at = stored.created_at;
                if !self.store.update_oauth2_template(&draft).await? {
                    return Err(CoreError::not_found("OAuth2 template"));
                }
            }
            None => {
                draft.id = Uuid::new_v4();
                draft.created_at = self.clock.now_millis();
                self.store.insert_oauth2_template(&draft).await?;
            }
        }
        Ok(draft)
    }

    /// Deletes a template.
    pub async fn delete_oauth2_template(&self, id: Uuid) -> CoreResult<()> {
        if !self.store.delete_oauth2_template(id).await? {
            return Err(CoreError::not_found("OAuth2 template"));
        }
        Ok(())
    }

    // --- domains

    /// Checks that every id names a stored client; returns them distinct.
    async fn known_clients(&self, ids: &[Uuid]) -> CoreResult<Vec<Uuid>> {
        let ids = distinct_ids(ids)?;
        let found: HashSet<Uuid> = self
            .store
            .oauth2_clients_by_ids(&ids)
            .await?
            .iter()
            .map(|sealed| sealed.client.id)
            .collect();
        if let Some(unknown) = ids.iter().find(|id| !found.contains(id)) {
            return Err(CoreError::invalid(
                "oauth2ClientIds",
                format!("names no OAuth2 client: {unknown}"),
            ));
        }
        Ok(ids)
    }

    /// Creates a domain of the actor's tenant (`id` `None`) or replaces the one with `id`
    /// (keeping its tenant and creation time). A non-empty `client_ids` replaces the
    /// domain's clients; none or an empty list keeps them (as ThingsBoard does). `Conflict`
    /// ([`DOMAIN_NAME_TAKEN`]) if the name is taken.
    pub async fn save_domain(
        &self,
        actor: &User,
        id: Option<Uuid>,
        draft: DomainDraft,
        client_ids: &[Uuid],
    ) -> CoreResult<Domain> {
        let name = DomainName::parse(&draft.name)?;
        let client_ids = self.known_clients(client_ids).await?;
        let links = (!client_ids.is_empty()).then_some(client_ids.as_slice());
        match id {
            Some(id) => {
                let stored = self
                    .store
                    .domain(id)
                    .await?
                    .ok_or(CoreError::not_found("domain"))?;
                let domain = Domain {
                    name,
                    oauth2_enabled: draft.oauth2_enabled,
                    propagate_to_edge: draft.propagate_to_edge,
                    ..stored
                };
                if !self.store.update_domain(&domain, links).await? {
                    return Err(CoreError::not_found("domain"));
                }
                Ok(domain)
            }
            None => {
                let domain = Domain {
                    id: Uuid::new_v4(),
                    tenant_id: actor.tenancy.tenant_id,
                    created_at: self.clock.now_millis(),
                    name,
                    oauth2_enabled: draft.oauth2_enabled,
                    propagate_to_edge: draft.propagate_to_edge,
                };
                self.store
                    .insert_domain(&domain, links.unwrap_or_default())
                    .await?;
                tracing::info!(domain_id = %domain.id, domain = %domain.name, "domain created");
                Ok(domain)
            }
        }
    }

    /// Replaces a domain's clients (an empty list removes them all).
    pub async fn set_domain_oauth2_clients(&self, id: Uuid, client_ids: &[Uuid]) -> CoreResult<()> {
        let client_ids = self.known_clients(client_ids).await?;
        if !self.store.set_domain_clients(id, &client_ids).await? {
            return Err(CoreError::not_found("domain"));
        }
        Ok(())
    }

    /// Deletes a domain (its clients stay).
    pub async fn delete_domain(&self, id: Uuid) -> CoreResult<()> {
        if !self.store.delete_domain(id).await? {
            return Err(CoreError::not_found("domain"));
        }
        tracing::info!(domain_id = %id, "domain deleted");
        Ok(())
    }

    /// The domains with their clients.
    async fn with_clients(&self, domains: Vec<Domain>) -> CoreResult<Vec<DomainInfo>> {
        let ids: Vec<Uuid> = domains.iter().map(|domain| domain.id).collect();
        let mut links = self.store.domain_clients(&ids).await?.into_iter();
        Ok(domains
            .into_iter()
            .map(|domain| {
                let clients = links
                    .next()
                    .map(|(_, clients)| clients.iter().map(|s| s.client.info()).collect())
                    .unwrap_or_default();
                DomainInfo { domain, clients }
            })
            .collect())
    }

    /// One domain with its clients.
    pub async fn domain_info(&self, id: Uuid) -> CoreResult<DomainInfo> {
        let domain = self
            .store
            .domain(id)
            .await?
            .ok_or(CoreError::not_found("domain"))?;
        let mut infos = self.with_clients(vec![domain]).await?;
        infos.pop().ok_or(CoreError::not_found("domain"))
    }

    /// A page of domains with their clients.
    pub async fn domain_infos(
        &self,
        mut query: DomainQuery,
        page: PageRequest,
    ) -> CoreResult<DomainPage> {
        query.offset = page.offset();
        query.limit = page.rows_per_page;
        let (domains, total) = self.store.domains(&query).await?;
        Ok(DomainPage {
            items: self.with_clients(domains).await?,
            total,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn basic_mapper(kind: MapperType, email: Option<&str>) -> MapperConfig {
        default_mapper(kind, email, "given_name", Some("family_name"))
    }

    /// A valid BASIC client, for tests here and in the login's.
    pub(crate) fn client() -> OAuth2Client {
        OAuth2Client {
            id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            created_at: 0,
            title: "Google".to_owned(),
            additional_info: serde_json::json!({"providerName": "Google"}),
            mapper: basic_mapper(MapperType::Basic, Some("email")),
            client_id: "cid".to_owned(),
            client_secret: SecretString::from("s".to_owned()),
            authorization_uri: "https://accounts.google.com/o/oauth2/v2/auth".to_owned(),
            access_token_uri: "https://oauth2.googleapis.com/token".to_owned(),
            scope: vec!["email".to_owned(), "openid".to_owned()],
            user_info_uri: None,
            user_name_attribute_name: "email".to_owned(),
            jwk_set_uri: None,
            client_authentication_method: "BASIC".to_owned(),
            login_button_label: "Google".to_owned(),
            login_button_icon: None,
            platforms: Vec::new(),
        }
    }

    fn message(result: CoreResult<()>) -> String {
        match result {
            Err(CoreError::Invalid { field, reason }) => format!("{field} {reason}"),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_complete_client_passes() {
        check_client(&client(), true).unwrap();
    }

    #[test]
    fn required_fields_have_thingsboards_messages() {
        type Change = fn(&mut OAuth2Client);
        let cases: Vec<(Change, &str)> = vec![
            (|c| c.title = " ".into(), "title should be specified!"),
            (
                |c| c.title = "x".repeat(101),
                "title length must be equal or less than 100",
            ),
            (|c| c.client_id.clear(), "Client ID should be specified!"),
            (
                |c| c.authorization_uri.clear(),
                "Authorization uri should be specified!",
            ),
            (
                |c| c.access_token_uri.clear(),
                "Token uri should be specified!",
            ),
            (|c| c.scope.clear(), "Scope should be specified!"),
            (
                |c| c.user_name_attribute_name.clear(),
                "User name attribute name should be specified!",
            ),
            (
                |c| c.client_authentication_method.clear(),
                "Client authentication method should be specified!",
            ),
            (
                |c| c.login_button_label.clear(),
                "Login button label should be specified!",
            ),
            (
                |c| c.authorization_uri = "javascript:alert(1)".into(),
                "authorizationUri must be an http or https URL",
            ),
            (
                |c| c.access_token_uri = "https://".into(),
                "accessTokenUri must be an http or https URL",
            ),
            (
                |c| c.platforms = vec!["WINDOWS".into()],
                "platforms must hold only WEB, ANDROID and IOS",
            ),
            (
                |c| c.additional_info = serde_json::json!([1]),
                "additionalInfo must be a JSON object",
            ),
            (
                |c| c.scope = vec!["two words".into()],
                "scope entries must be single non-empty words",
            ),
        ];
        for (change, expected) in cases {
            let mut candidate = client();
            change(&mut candidate);
            assert_eq!(message(check_client(&candidate, true)), expected);
        }
    }

    #[test]
    fn confidential_clients_need_a_secret_public_ones_do_not() {
        let mut candidate = client();
        assert_eq!(
            message(check_client(&candidate, false)),
            "Client secret should be specified!"
        );
        candidate.client_authentication_method = "POST".into();
        assert!(check_client(&candidate, false).is_err());
        candidate.client_authentication_method = "NONE".into();
        check_client(&candidate, false).unwrap();
        assert_eq!(candidate.authentication(), ClientAuthentication::None);
    }

    #[test]
    fn mapper_rules() {
        let mut mapper = basic_mapper(MapperType::Basic, None);
        assert_eq!(
            message(check_mapper(&mapper)),
            "Email attribute key should be specified!"
        );
        mapper.kind = MapperType::Apple;
        assert!(check_mapper(&mapper).is_err());
        mapper.kind = MapperType::Github;
        check_mapper(&mapper).unwrap();
        let github = basic_mapper(MapperType::Github, Some("email"));
        assert_eq!(
            message(check_mapper(&github)),
            "Email attribute key cannot be configured for GITHUB mapper type!"
        );
        let mut no_basic = basic_mapper(MapperType::Basic, Some("email"));
        no_basic.basic = None;
        assert_eq!(
            message(check_mapper(&no_basic)),
            "Basic config should be specified!"
        );
        let mut custom_tenant = basic_mapper(MapperType::Basic, Some("email"));
        if let Some(basic) = &mut custom_tenant.basic {
            basic.tenant_name_strategy = TenantNameStrategy::Custom;
        }
        assert_eq!(
            message(check_mapper(&custom_tenant)),
            "Tenant name pattern should be specified!"
        );
        let mut custom = MapperConfig {
            allow_user_creation: true,
            activate_user: false,
            kind: MapperType::Custom,
            basic: None,
            custom: None,
        };
        assert_eq!(
            message(check_mapper(&custom)),
            "Custom config should be specified!"
        );
        custom.custom = Some(CustomMapperConfig {
            url: String::new(),
            username: None,
            password: None,
            send_token: false,
        });
        assert_eq!(
            message(check_mapper(&custom)),
            "Custom mapper URL should be specified!"
        );
        for url in ["file:///etc/passwd", "gopher://x", "http://", "http:// x"] {
            if let Some(c) = &mut custom.custom {
                c.url = url.to_owned();
            }
            assert_eq!(
                message(check_mapper(&custom)),
                "Custom mapper URL must be an http or https URL",
                "{url}"
            );
        }
        if let Some(c) = &mut custom.custom {
            c.url = "https://mapper.example.com/map".to_owned();
        }
        check_mapper(&custom).unwrap();
    }

    #[test]
    fn domain_names_are_parsed_and_normalized() {
        for (text, expected) in [
            ("iot.example.com", "iot.example.com"),
            ("IoT.Example.COM", "iot.example.com"),
            ("127.0.0.1:8080", "127.0.0.1:8080"),
            ("localhost", "localhost"),
            ("example.com:080", "example.com:80"),
            ("[0:0::1]:8443", "[::1]:8443"),
            ("[::1]", "[::1]"),
        ] {
            assert_eq!(DomainName::parse(text).unwrap().as_str(), expected);
        }
        for text in [
            "https://example.com",
            "example.com/login",
            "exa mple.com",
            "-bad.example.com",
            "example..com",
            "example.com:",
            "example.com:0",
            "example.com:65536",
            "example.com:+80",
            "::1",
            "[::1",
            "[::1]x",
            "under_score.com",
            "bücher.de",
            "example.com.",
            "a:b:c",
        ] {
            assert!(DomainName::parse(text).is_err(), "{text}");
        }
        assert_eq!(
            message(DomainName::parse("  ").map(|_| ())),
            "Domain name should be specified!"
        );
        assert!(DomainName::parse(&format!("{}.com", "a".repeat(64))).is_err());
    }

    #[test]
    fn bundled_templates_pass_the_template_rules() {
        let templates = bundled_templates(1);
        let providers: Vec<&str> = templates.iter().map(|t| t.provider_id.as_str()).collect();
        assert_eq!(providers, ["Google", "Github", "Facebook", "Apple"]);
        for template in &templates {
            check_template(template).unwrap();
        }
    }

    #[test]
    fn the_stored_document_has_no_secrets_nor_columns() {
        let mut candidate = client();
        candidate.client_secret = SecretString::from("very-secret".to_owned());
        candidate.mapper.custom = Some(CustomMapperConfig {
            url: "https://m.example.com".into(),
            username: Some("u".into()),
            password: Some(SecretString::from("pw-secret".to_owned())),
            send_token: true,
        });
        let document = serde_json::to_string(&candidate).unwrap();
        assert!(!document.contains("very-secret"), "{document}");
        assert!(!document.contains("pw-secret"), "{document}");
        assert!(!document.contains("\"title\""), "{document}");
        let back: OAuth2Client = serde_json::from_str(&document).unwrap();
        assert_eq!(back.client_id, "cid");
        assert_eq!(back.mapper.kind, MapperType::Basic);
        assert!(back.client_secret.expose_secret().is_empty());
        assert!(back.mapper.custom.unwrap().password.is_none());
    }
}
