//! ThingsBoard's JSON shapes of OAuth2 clients, registration templates and domains, and their
//! translation to and from core types. Each shape serves both directions (ThingsBoard's API
//! document has one schema for both): read-only fields (`id` on create, `createdTime`,
//! `tenantId`, `name`) are parsed but not used.

use gatehouse_core::oauth2::{
    BasicMapperConfig, CustomMapperConfig, Domain, DomainInfo, MapperConfig, MapperType,
    OAuth2Client, OAuth2ClientInfo, OAuth2LoginButton, OAuth2Template, TenantNameStrategy,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::error::{TbError, TbResult};
use super::wire::EntityId;

/// Entity type of client ids.
pub const CLIENT_ENTITY: &str = "OAUTH2_CLIENT";
/// Entity type of template ids.
pub const TEMPLATE_ENTITY: &str = "OAUTH2_CLIENT_REGISTRATION_TEMPLATE";
/// Entity type of domain ids.
pub const DOMAIN_ENTITY: &str = "DOMAIN";

/// An optional nested object: `null`/absent, or a JSON object (serde would also take a
/// struct from an array of its fields, which the document does not allow).
fn object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::de::Error as _;
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(value @ Value::Object(_)) => serde_json::from_value(value)
            .map(Some)
            .map_err(D::Error::custom),
        Some(_) => Err(D::Error::custom("expected a JSON object")),
    }
}

/// `mapperConfig.type`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = OAuth2MapperType)]
pub enum MapperTypeWire {
    /// Attributes named by `basic`.
    Basic,
    /// An external service maps (`custom`).
    Custom,
    /// GitHub (`basic` without `emailAttributeKey`).
    Github,
    /// Sign in with Apple (`basic`).
    Apple,
}

impl From<MapperTypeWire> for MapperType {
    fn from(kind: MapperTypeWire) -> Self {
        match kind {
            MapperTypeWire::Basic => MapperType::Basic,
            MapperTypeWire::Custom => MapperType::Custom,
            MapperTypeWire::Github => MapperType::Github,
            MapperTypeWire::Apple => MapperType::Apple,
        }
    }
}

impl From<MapperType> for MapperTypeWire {
    fn from(kind: MapperType) -> Self {
        match kind {
            MapperType::Basic => MapperTypeWire::Basic,
            MapperType::Custom => MapperTypeWire::Custom,
            MapperType::Github => MapperTypeWire::Github,
            MapperType::Apple => MapperTypeWire::Apple,
        }
    }
}

/// `basic.tenantNameStrategy`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = OAuth2TenantNameStrategy)]
pub enum TenantNameStrategyWire {
    /// The domain of the email.
    Domain,
    /// The email.
    Email,
    /// `tenantNamePattern`.
    Custom,
}

impl From<TenantNameStrategyWire> for TenantNameStrategy {
    fn from(strategy: TenantNameStrategyWire) -> Self {
        match strategy {
            TenantNameStrategyWire::Domain => TenantNameStrategy::Domain,
            TenantNameStrategyWire::Email => TenantNameStrategy::Email,
            TenantNameStrategyWire::Custom => TenantNameStrategy::Custom,
        }
    }
}

impl From<TenantNameStrategy> for TenantNameStrategyWire {
    fn from(strategy: TenantNameStrategy) -> Self {
        match strategy {
            TenantNameStrategy::Domain => TenantNameStrategyWire::Domain,
            TenantNameStrategy::Email => TenantNameStrategyWire::Email,
            TenantNameStrategy::Custom => TenantNameStrategyWire::Custom,
        }
    }
}

/// A platform a client may be limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = OAuth2Platform)]
pub enum PlatformWire {
    /// Browsers.
    Web,
    /// Android apps.
    Android,
    /// iOS apps.
    Ios,
}

impl PlatformWire {
    /// ThingsBoard's name.
    pub fn as_str(self) -> &'static str {
        match self {
            PlatformWire::Web => "WEB",
            PlatformWire::Android => "ANDROID",
            PlatformWire::Ios => "IOS",
        }
    }

    /// The platform of a stored name (stored names were checked on the way in).
    fn parse(text: &str) -> Option<Self> {
        [PlatformWire::Web, PlatformWire::Android, PlatformWire::Ios]
            .into_iter()
            .find(|platform| platform.as_str() == text)
    }
}

/// The stored platforms as the wire shows them.
fn platforms_out(platforms: &[String]) -> Vec<PlatformWire> {
    platforms
        .iter()
        .filter_map(|name| PlatformWire::parse(name))
        .collect()
}

/// ThingsBoard's `OAuth2BasicMapperConfig`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = OAuth2BasicMapperConfig)]
pub struct BasicMapperWire {
    /// The attribute holding the email: required for BASIC and APPLE, refused for GITHUB.
    #[serde(default)]
    email_attribute_key: Option<String>,
    /// The attribute holding the first name.
    #[serde(default)]
    first_name_attribute_key: Option<String>,
    /// The attribute holding the last name.
    #[serde(default)]
    last_name_attribute_key: Option<String>,
    /// How a new user's tenant is named.
    #[serde(default)]
    #[schema(required = true)]
    tenant_name_strategy: Option<TenantNameStrategyWire>,
    /// With `CUSTOM`: the name, with `%{attribute}` placeholders.
    #[serde(default)]
    tenant_name_pattern: Option<String>,
    /// New users become customer users of the customer so named.
    #[serde(default)]
    customer_name_pattern: Option<String>,
    /// Kept for ThingsBoard clients.
    #[serde(default)]
    default_dashboard_name: Option<String>,
    /// Kept for ThingsBoard clients.
    #[serde(default)]
    always_full_screen: Option<bool>,
}

/// ThingsBoard's `OAuth2CustomMapperConfig`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = OAuth2CustomMapperConfig)]
pub struct CustomMapperWire {
    /// Where the provider's attributes are posted (http or https).
    #[serde(default)]
    url: Option<String>,
    /// Basic-auth user for `url`.
    #[serde(default)]
    username: Option<String>,
    /// Basic-auth password for `url`: `********` when read back; sent back unchanged it
    /// keeps the stored one.
    #[serde(default)]
    password: Option<String>,
    /// Whether the provider's access token is sent along.
    #[serde(default)]
    send_token: Option<bool>,
}

/// ThingsBoard's `OAuth2MapperConfig`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = OAuth2MapperConfig)]
pub struct MapperConfigWire {
    /// Whether an unknown user is created at its first login (default false).
    #[serde(default)]
    allow_user_creation: Option<bool>,
    /// Whether a created user is activated at once (default false).
    #[serde(default)]
    activate_user: Option<bool>,
    /// The mapper.
    #[serde(rename = "type", default)]
    #[schema(required = true)]
    kind: Option<MapperTypeWire>,
    /// BASIC, GITHUB and APPLE settings.
    #[serde(default, deserialize_with = "object")]
    basic: Option<BasicMapperWire>,
    /// CUSTOM settings.
    #[serde(default, deserialize_with = "object")]
    custom: Option<CustomMapperWire>,
}

impl MapperConfigWire {
    /// The core mapper; a missing type or tenant strategy is ThingsBoard's 400.
    fn to_core(&self) -> TbResult<MapperConfig> {
        let kind = self
            .kind
            .ok_or_else(|| TbError::bad_request("Mapper config type should be specified!"))?;
        let basic = match &self.basic {
            None => None,
            Some(basic) => Some(BasicMapperConfig {
                email_attribute_key: basic.email_attribute_key.clone(),
                first_name_attribute_key: basic.first_name_attribute_key.clone(),
                last_name_attribute_key: basic.last_name_attribute_key.clone(),
                tenant_name_strategy: basic
                    .tenant_name_strategy
                    .ok_or_else(|| {
                        TbError::bad_request("Tenant name strategy should be specified!")
                    })?
                    .into(),
                tenant_name_pattern: basic.tenant_name_pattern.clone(),
                customer_name_pattern: basic.customer_name_pattern.clone(),
                default_dashboard_name: basic.default_dashboard_name.clone(),
                always_full_screen: basic.always_full_screen.unwrap_or(false),
            }),
        };
        let custom = self.custom.as_ref().map(|custom| CustomMapperConfig {
            url: custom.url.clone().unwrap_or_default(),
            username: custom.username.clone(),
            password: custom.password.clone().map(SecretString::from),
            send_token: custom.send_token.unwrap_or(false),
        });
        Ok(MapperConfig {
            allow_user_creation: self.allow_user_creation.unwrap_or(false),
            activate_user: self.activate_user.unwrap_or(false),
            kind: kind.into(),
            basic,
            custom,
        })
    }

    /// The wire form of a core mapper (its password as the core left it: masked).
    fn of(mapper: &MapperConfig) -> Self {
        Self {
            allow_user_creation: Some(mapper.allow_user_creation),
            activate_user: Some(mapper.activate_user),
            kind: Some(mapper.kind.into()),
            basic: mapper.basic.as_ref().map(|basic| BasicMapperWire {
                email_attribute_key: basic.email_attribute_key.clone(),
                first_name_attribute_key: basic.first_name_attribute_key.clone(),
                last_name_attribute_key: basic.last_name_attribute_key.clone(),
                tenant_name_strategy: Some(basic.tenant_name_strategy.into()),
                tenant_name_pattern: basic.tenant_name_pattern.clone(),
                customer_name_pattern: basic.customer_name_pattern.clone(),
                default_dashboard_name: basic.default_dashboard_name.clone(),
                always_full_screen: Some(basic.always_full_screen),
            }),
            custom: mapper.custom.as_ref().map(|custom| CustomMapperWire {
                url: Some(custom.url.clone()),
                username: custom.username.clone(),
                password: custom
                    .password
                    .as_ref()
                    .map(|password| password.expose_secret().to_owned()),
                send_token: Some(custom.send_token),
            }),
        }
    }
}

/// The mapper of a request: ThingsBoard's 400 when it is missing.
fn mapper_of(mapper: &Option<MapperConfigWire>) -> TbResult<MapperConfig> {
    mapper
        .as_ref()
        .ok_or_else(|| TbError::bad_request("Mapper config should be specified!"))?
        .to_core()
}

/// ThingsBoard's `OAuth2Client`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = OAuth2Client, example = json!({
    "title": "Google", "clientId": "cid", "clientSecret": "s",
    "authorizationUri": "https://accounts.google.com/o/oauth2/v2/auth",
    "accessTokenUri": "https://oauth2.googleapis.com/token",
    "scope": ["email", "openid", "profile"], "userNameAttributeName": "email",
    "clientAuthenticationMethod": "BASIC", "loginButtonLabel": "Google",
    "additionalInfo": {"providerName": "Google"},
    "mapperConfig": {"type": "BASIC", "allowUserCreation": true, "activateUser": false,
        "basic": {"emailAttributeKey": "email", "tenantNameStrategy": "DOMAIN"}}}))]
pub struct ClientWire {
    /// `{"entityType": "OAUTH2_CLIENT", "id": …}`; present to update that client.
    #[serde(default, deserialize_with = "object")]
    id: Option<EntityId>,
    /// Creation time, Unix ms (read-only).
    #[serde(default)]
    created_time: Option<i64>,
    /// A JSON object, e.g. `{"providerName": "Google"}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    additional_info: Option<Value>,
    /// The owner's tenant (read-only: the caller's).
    #[serde(default, deserialize_with = "object")]
    tenant_id: Option<EntityId>,
    /// Title, at most 100 characters.
    #[serde(default)]
    #[schema(required = true)]
    title: Option<String>,
    /// How logins become users.
    #[serde(default, deserialize_with = "object")]
    #[schema(required = true)]
    mapper_config: Option<MapperConfigWire>,
    /// The client id at the provider.
    #[serde(default)]
    #[schema(required = true)]
    client_id: Option<String>,
    /// The client secret: `********` when read back; sent back unchanged it keeps the stored
    /// one. Required for `BASIC` and `POST`; may be empty for other methods (public client).
    #[serde(default)]
    client_secret: Option<String>,
    /// The provider's authorization endpoint (http or https).
    #[serde(default)]
    #[schema(required = true)]
    authorization_uri: Option<String>,
    /// The provider's token endpoint (http or https).
    #[serde(default)]
    #[schema(required = true)]
    access_token_uri: Option<String>,
    /// Scopes to ask for.
    #[serde(default)]
    #[schema(required = true)]
    scope: Option<Vec<String>>,
    /// The provider's userinfo endpoint.
    #[serde(default)]
    user_info_uri: Option<String>,
    /// The attribute naming the user.
    #[serde(default)]
    #[schema(required = true)]
    user_name_attribute_name: Option<String>,
    /// The provider's JWKS.
    #[serde(default)]
    jwk_set_uri: Option<String>,
    /// `BASIC` (client_secret_basic), `POST` (client_secret_post) or anything else (none:
    /// a public client with PKCE).
    #[serde(default)]
    #[schema(required = true)]
    client_authentication_method: Option<String>,
    /// Label of the login button.
    #[serde(default)]
    #[schema(required = true)]
    login_button_label: Option<String>,
    /// Icon of the login button.
    #[serde(default)]
    login_button_icon: Option<String>,
    /// Platforms the client serves (empty for all).
    #[serde(default)]
    platforms: Option<Vec<PlatformWire>>,
    /// The title again (read-only).
    #[serde(default)]
    name: Option<String>,
}

impl ClientWire {
    /// The client to update, if the request names one.
    pub fn id(&self) -> Option<Uuid> {
        self.id.as_ref().map(|id| id.id)
    }

    /// The core draft (id, tenant and creation time are the core's business).
    pub fn to_core(&self) -> TbResult<OAuth2Client> {
        let text = |value: &Option<String>| value.clone().unwrap_or_default();
        Ok(OAuth2Client {
            id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            created_at: 0,
            title: text(&self.title),
            additional_info: self.additional_info.clone().unwrap_or(Value::Null),
            mapper: mapper_of(&self.mapper_config)?,
            client_id: text(&self.client_id),
            client_secret: SecretString::from(text(&self.client_secret)),
            authorization_uri: text(&self.authorization_uri),
            access_token_uri: text(&self.access_token_uri),
            scope: self.scope.clone().unwrap_or_default(),
            user_info_uri: self.user_info_uri.clone().filter(|uri| !uri.is_empty()),
            user_name_attribute_name: text(&self.user_name_attribute_name),
            jwk_set_uri: self.jwk_set_uri.clone().filter(|uri| !uri.is_empty()),
            client_authentication_method: text(&self.client_authentication_method),
            login_button_label: text(&self.login_button_label),
            login_button_icon: self.login_button_icon.clone(),
            platforms: self
                .platforms
                .iter()
                .flatten()
                .map(|platform| platform.as_str().to_owned())
                .collect(),
        })
    }

    /// The wire form of a client as the core answers it (secrets masked).
    pub fn of(client: &OAuth2Client) -> Self {
        Self {
            id: Some(EntityId::new(CLIENT_ENTITY, client.id)),
            created_time: Some(client.created_at),
            additional_info: Some(client.additional_info.clone()),
            tenant_id: Some(EntityId::new("TENANT", client.tenant_id)),
            title: Some(client.title.clone()),
            mapper_config: Some(MapperConfigWire::of(&client.mapper)),
            client_id: Some(client.client_id.clone()),
            client_secret: Some(client.client_secret.expose_secret().to_owned()),
            authorization_uri: Some(client.authorization_uri.clone()),
            access_token_uri: Some(client.access_token_uri.clone()),
            scope: Some(client.scope.clone()),
            user_info_uri: client.user_info_uri.clone(),
            user_name_attribute_name: Some(client.user_name_attribute_name.clone()),
            jwk_set_uri: client.jwk_set_uri.clone(),
            client_authentication_method: Some(client.client_authentication_method.clone()),
            login_button_label: Some(client.login_button_label.clone()),
            login_button_icon: client.login_button_icon.clone(),
            platforms: Some(platforms_out(&client.platforms)),
            name: Some(client.title.clone()),
        }
    }
}

/// ThingsBoard's `OAuth2ClientInfo`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = OAuth2ClientInfo)]
pub struct ClientInfoWire {
    /// `{"entityType": "OAUTH2_CLIENT", "id": …}`.
    id: EntityId,
    /// Creation time, Unix ms.
    created_time: i64,
    /// Title.
    title: String,
    /// `additionalInfo.providerName`.
    provider_name: Option<String>,
    /// Platforms (empty for all).
    platforms: Vec<PlatformWire>,
    /// The title again.
    name: String,
}

impl From<&OAuth2ClientInfo> for ClientInfoWire {
    fn from(info: &OAuth2ClientInfo) -> Self {
        Self {
            id: EntityId::new(CLIENT_ENTITY, info.id),
            created_time: info.created_at,
            title: info.title.clone(),
            provider_name: info.provider_name.clone(),
            platforms: platforms_out(&info.platforms),
            name: info.title.clone(),
        }
    }
}

/// ThingsBoard's `PageData<OAuth2ClientInfo>`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PageDataOAuth2ClientInfo)]
pub struct ClientInfoPageWire {
    /// The entries of this page.
    pub data: Vec<ClientInfoWire>,
    /// Pages in all.
    pub total_pages: u64,
    /// Entries in all.
    pub total_elements: u64,
    /// Whether a later page exists.
    pub has_next: bool,
}

/// What `GET /api/oauth2/client/infos` answers: a page, or with `clientIds` a list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = OAuth2ClientInfos)]
pub enum ClientInfosWire {
    /// Without `clientIds`.
    Page(ClientInfoPageWire),
    /// With `clientIds`.
    List(Vec<ClientInfoWire>),
}

/// ThingsBoard's `OAuth2ClientLoginInfo`: a login button.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = OAuth2ClientLoginInfo)]
pub struct LoginInfoWire {
    /// The button's label (the client's `loginButtonLabel`).
    name: String,
    /// The button's icon (the client's `loginButtonIcon`).
    icon: Option<String>,
    /// Where the button leads: `/oauth2/authorization/<client id>`.
    url: String,
}

impl From<OAuth2LoginButton> for LoginInfoWire {
    fn from(button: OAuth2LoginButton) -> Self {
        Self {
            name: button.label,
            icon: button.icon,
            url: format!("/oauth2/authorization/{}", button.client_id),
        }
    }
}

/// ThingsBoard's `OAuth2ClientRegistrationTemplate`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = OAuth2ClientRegistrationTemplate)]
pub struct TemplateWire {
    /// `{"entityType": "OAUTH2_CLIENT_REGISTRATION_TEMPLATE", "id": …}`; present to update.
    #[serde(default, deserialize_with = "object")]
    id: Option<EntityId>,
    /// Creation time, Unix ms (read-only).
    #[serde(default)]
    created_time: Option<i64>,
    /// The provider (unique), e.g. `Google`.
    #[serde(default)]
    #[schema(required = true)]
    provider_id: Option<String>,
    /// Default mapper.
    #[serde(default, deserialize_with = "object")]
    #[schema(required = true)]
    mapper_config: Option<MapperConfigWire>,
    /// Default authorization endpoint.
    #[serde(default)]
    authorization_uri: Option<String>,
    /// Default token endpoint.
    #[serde(default)]
    access_token_uri: Option<String>,
    /// Default scopes.
    #[serde(default)]
    scope: Option<Vec<String>>,
    /// Default userinfo endpoint.
    #[serde(default)]
    user_info_uri: Option<String>,
    /// Default user name attribute.
    #[serde(default)]
    user_name_attribute_name: Option<String>,
    /// Default JWKS.
    #[serde(default)]
    jwk_set_uri: Option<String>,
    /// Default authentication method.
    #[serde(default)]
    client_authentication_method: Option<String>,
    /// Comment.
    #[serde(default)]
    comment: Option<String>,
    /// Default button icon.
    #[serde(default)]
    login_button_icon: Option<String>,
    /// Default button label.
    #[serde(default)]
    login_button_label: Option<String>,
    /// Where the provider documents its registration.
    #[serde(default)]
    help_link: Option<String>,
    /// A JSON object.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    additional_info: Option<Value>,
    /// The provider id again (read-only).
    #[serde(default)]
    name: Option<String>,
}

impl TemplateWire {
    /// The template to update, if the request names one.
    pub fn id(&self) -> Option<Uuid> {
        self.id.as_ref().map(|id| id.id)
    }

    /// The core draft.
    pub fn to_core(&self) -> TbResult<OAuth2Template> {
        let blank_is_none = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
        Ok(OAuth2Template {
            id: Uuid::nil(),
            created_at: 0,
            provider_id: self.provider_id.clone().unwrap_or_default(),
            mapper: mapper_of(&self.mapper_config)?,
            authorization_uri: blank_is_none(&self.authorization_uri),
            access_token_uri: blank_is_none(&self.access_token_uri),
            scope: self.scope.clone().unwrap_or_default(),
            user_info_uri: blank_is_none(&self.user_info_uri),
            user_name_attribute_name: self.user_name_attribute_name.clone(),
            jwk_set_uri: blank_is_none(&self.jwk_set_uri),
            client_authentication_method: self.client_authentication_method.clone(),
            comment: self.comment.clone(),
            login_button_icon: self.login_button_icon.clone(),
            login_button_label: self.login_button_label.clone(),
            help_link: blank_is_none(&self.help_link),
            additional_info: self.additional_info.clone().unwrap_or(Value::Null),
        })
    }

    /// The wire form of a stored template.
    pub fn of(template: &OAuth2Template) -> Self {
        Self {
            id: Some(EntityId::new(TEMPLATE_ENTITY, template.id)),
            created_time: Some(template.created_at),
            provider_id: Some(template.provider_id.clone()),
            mapper_config: Some(MapperConfigWire::of(&template.mapper)),
            authorization_uri: template.authorization_uri.clone(),
            access_token_uri: template.access_token_uri.clone(),
            scope: Some(template.scope.clone()),
            user_info_uri: template.user_info_uri.clone(),
            user_name_attribute_name: template.user_name_attribute_name.clone(),
            jwk_set_uri: template.jwk_set_uri.clone(),
            client_authentication_method: template.client_authentication_method.clone(),
            comment: template.comment.clone(),
            login_button_icon: template.login_button_icon.clone(),
            login_button_label: template.login_button_label.clone(),
            help_link: template.help_link.clone(),
            additional_info: Some(template.additional_info.clone()),
            name: Some(template.provider_id.clone()),
        }
    }
}

/// ThingsBoard's `Domain`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Domain, example = json!({"name": "iot.example.com", "oauth2Enabled": true, "propagateToEdge": false}))]
pub struct DomainWire {
    /// `{"entityType": "DOMAIN", "id": …}`; present to update that domain.
    #[serde(default, deserialize_with = "object")]
    id: Option<EntityId>,
    /// Creation time, Unix ms (read-only).
    #[serde(default)]
    created_time: Option<i64>,
    /// The owner's tenant (read-only).
    #[serde(default, deserialize_with = "object")]
    tenant_id: Option<EntityId>,
    /// `host` or `host:port` as browsers address this server (no scheme, no path; stored in
    /// lower case); unique.
    #[serde(default)]
    #[schema(required = true)]
    name: Option<String>,
    /// Whether the login page on this domain offers its clients (default false).
    #[serde(default)]
    oauth2_enabled: Option<bool>,
    /// Kept for ThingsBoard clients (default false).
    #[serde(default)]
    propagate_to_edge: Option<bool>,
}

impl DomainWire {
    /// The domain to update, if the request names one.
    pub fn id(&self) -> Option<Uuid> {
        self.id.as_ref().map(|id| id.id)
    }

    /// The core draft.
    pub fn to_core(&self) -> gatehouse_core::oauth2::DomainDraft {
        gatehouse_core::oauth2::DomainDraft {
            name: self.name.clone().unwrap_or_default(),
            oauth2_enabled: self.oauth2_enabled.unwrap_or(false),
            propagate_to_edge: self.propagate_to_edge.unwrap_or(false),
        }
    }

    /// The wire form of a stored domain.
    pub fn of(domain: &Domain) -> Self {
        Self {
            id: Some(EntityId::new(DOMAIN_ENTITY, domain.id)),
            created_time: Some(domain.created_at),
            tenant_id: Some(EntityId::new("TENANT", domain.tenant_id)),
            name: Some(domain.name.as_str().to_owned()),
            oauth2_enabled: Some(domain.oauth2_enabled),
            propagate_to_edge: Some(domain.propagate_to_edge),
        }
    }
}

/// ThingsBoard's `DomainInfo`: a domain with its clients.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DomainInfo)]
pub struct DomainInfoWire {
    /// `{"entityType": "DOMAIN", "id": …}`.
    id: EntityId,
    /// Creation time, Unix ms.
    created_time: i64,
    /// The owner's tenant.
    tenant_id: EntityId,
    /// The name.
    name: String,
    /// Whether its login page offers its clients.
    oauth2_enabled: bool,
    /// Kept for ThingsBoard clients.
    propagate_to_edge: bool,
    /// Its clients, oldest first.
    oauth2_client_infos: Vec<ClientInfoWire>,
}

impl From<&DomainInfo> for DomainInfoWire {
    fn from(info: &DomainInfo) -> Self {
        let domain = &info.domain;
        Self {
            id: EntityId::new(DOMAIN_ENTITY, domain.id),
            created_time: domain.created_at,
            tenant_id: EntityId::new("TENANT", domain.tenant_id),
            name: domain.name.as_str().to_owned(),
            oauth2_enabled: domain.oauth2_enabled,
            propagate_to_edge: domain.propagate_to_edge,
            oauth2_client_infos: info.clients.iter().map(ClientInfoWire::from).collect(),
        }
    }
}

/// ThingsBoard's `PageData<DomainInfo>`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PageDataDomainInfo)]
pub struct DomainInfoPageWire {
    /// The entries of this page.
    pub data: Vec<DomainInfoWire>,
    /// Pages in all.
    pub total_pages: u64,
    /// Entries in all.
    pub total_elements: u64,
    /// Whether a later page exists.
    pub has_next: bool,
}
