//! The ThingsBoard dialect's OAuth2 login (`/oauth2/authorization/{clientId}` and the callback
//! at the login-processing URL): one of the configured [`OAuth2Client`]s is the provider, its
//! mapper turns the provider's attributes into a ThingsBoard user, and the login ends with a
//! token pair. As in ThingsBoard there is no second factor on these logins.
//!
//! Mapping (ThingsBoard's `AbstractOAuth2ClientMapper`): the user is the one this client's
//! subject was linked to at an earlier login, else the user with the mapped email; an unknown
//! email creates a user when the client allows it, as a tenant administrator of the tenant the
//! name strategy names, or a customer user when a customer name pattern is set. Tenants and
//! customers have no table here: their ids are derived from their names (UUID v5), so the
//! same name always finds the same tenant.

use secrecy::SecretString;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{AuthFailure, CoreError, CoreResult};
use crate::federation::{
    claim_text, email_unverified, federation_failure, JsonRequest, LoginStart, ProviderEndpoints,
};
use crate::model::{Authority, IdentityProvider, Profile, Tenancy, User, NULL_UUID};
use crate::names::Email;
use crate::oauth2::{
    BasicMapperConfig, ClientAuthentication, MapperType, OAuth2Client, TenantNameStrategy,
};
use crate::pairs::TokenPair;
use crate::Gatehouse;

/// The prefix of the provider key of an OAuth2 client's logins (`oauth2:<client id>`).
const PROVIDER_PREFIX: &str = "oauth2:";

/// The namespace of the UUID v5 ids of tenants and customers named by OAuth2 mappers.
const TENANCY_NAMESPACE: Uuid = Uuid::from_u128(0x6a0e_1f4c_3b2d_4e5f_8a9b_0c1d_2e3f_4a5b);

/// A ThingsBoard user as a mapper describes it (ThingsBoard's `OAuth2User`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappedUser {
    /// The email: the login name.
    pub email: String,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// The tenant's name.
    pub tenant_name: Option<String>,
    /// The customer's name; with one the user is a customer user.
    pub customer_name: Option<String>,
    /// The default dashboard's name (kept in `additionalInfo`).
    pub default_dashboard_name: Option<String>,
    /// Kept in `additionalInfo`.
    pub always_full_screen: bool,
}

/// A finished OAuth2 login.
#[derive(Debug)]
pub struct OAuth2Login {
    /// The user's tokens.
    pub pair: TokenPair,
    /// The `prevUri` the login started with, if any.
    pub return_to: Option<String>,
}

/// The tenant id of a tenant name.
pub fn tenant_id_of(name: &str) -> Uuid {
    Uuid::new_v5(&TENANCY_NAMESPACE, format!("tenant:{name}").as_bytes())
}

/// The customer id of a customer name in a tenant.
pub fn customer_id_of(tenant_id: Uuid, name: &str) -> Uuid {
    Uuid::new_v5(&tenant_id, format!("customer:{name}").as_bytes())
}

/// `pattern` with every `%{attribute}` replaced by that attribute's text (empty when absent).
pub fn expand_pattern(pattern: &str, claims: &Map<String, Value>) -> String {
    let mut expanded = String::new();
    let mut rest = pattern;
    while let Some(start) = rest.find("%{") {
        expanded.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                expanded.push_str(&claim_text(claims, &after[..end]).unwrap_or_default());
                rest = &after[end + 1..];
            }
            None => {
                expanded.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    expanded.push_str(rest);
    expanded
}

/// The endpoints of a client, for the relying party.
fn endpoints_of(client: &OAuth2Client) -> ProviderEndpoints {
    let authentication = client.authentication();
    ProviderEndpoints {
        issuer: None,
        authorization_uri: client.authorization_uri.clone(),
        token_uri: client.access_token_uri.clone(),
        userinfo_uri: client.user_info_uri.clone(),
        jwks_uri: client.jwk_set_uri.clone(),
        client_id: client.client_id.clone(),
        client_secret: (authentication != ClientAuthentication::None)
            .then(|| client.client_secret.clone()),
        authentication,
        scopes: client.scope.clone(),
    }
}

/// The BASIC mapper (also the names and tenancy of GITHUB and APPLE): the attributes its
/// settings name. `email` is given for GITHUB (from GitHub's emails).
fn map_basic(
    basic: &BasicMapperConfig,
    claims: &Map<String, Value>,
    email: Option<String>,
) -> CoreResult<MappedUser> {
    let email = match email {
        Some(email) => email,
        None => {
            let key = basic.email_attribute_key.as_deref().unwrap_or("email");
            claim_text(claims, key).ok_or_else(|| {
                federation_failure(format!("the identity provider sent no {key} attribute"))
            })?
        }
    };
    let attribute = |key: &Option<String>| key.as_deref().and_then(|key| claim_text(claims, key));
    let tenant_name = match basic.tenant_name_strategy {
        TenantNameStrategy::Domain => email.split_once('@').map(|(_, domain)| domain.to_owned()),
        TenantNameStrategy::Email => Some(email.clone()),
        TenantNameStrategy::Custom => basic
            .tenant_name_pattern
            .as_deref()
            .map(|pattern| expand_pattern(pattern, claims)),
    };
    let customer_name = basic
        .customer_name_pattern
        .as_deref()
        .map(|pattern| expand_pattern(pattern, claims))
        .filter(|name| !name.is_empty());
    Ok(MappedUser {
        email,
        first_name: attribute(&basic.first_name_attribute_key),
        last_name: attribute(&basic.last_name_attribute_key),
        tenant_name: tenant_name.filter(|name| !name.is_empty()),
        customer_name,
        default_dashboard_name: basic.default_dashboard_name.clone(),
        always_full_screen: basic.always_full_screen,
    })
}

/// The answer of a CUSTOM mapper's service (ThingsBoard's `OAuth2User` JSON).
fn map_custom_answer(answer: &Value) -> CoreResult<MappedUser> {
    let text = |name: &str| {
        answer
            .get(name)
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
            .map(str::to_owned)
    };
    Ok(MappedUser {
        email: text("email")
            .ok_or_else(|| federation_failure("the custom mapper answered no email"))?,
        first_name: text("firstName"),
        last_name: text("lastName"),
        tenant_name: text("tenantName"),
        customer_name: text("customerName"),
        default_dashboard_name: text("defaultDashboardName"),
        always_full_screen: answer
            .get("alwaysFullScreen")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// The tenant a client belongs to; `None` for system administrators' clients.
fn client_tenant(client: &OAuth2Client) -> Option<Uuid> {
    (client.tenant_id != NULL_UUID).then_some(client.tenant_id)
}

/// Whether `client` may log `user` in: only users whose identity lives here or came from an
/// OAuth2 login (never LDAP or Entra ID users), and, for a tenant's client, only users of that
/// tenant — a tenant administrator's client (whose mapper it controls) can never reach
/// another tenant's users or system administrators.
pub fn client_may_log_in(client: &OAuth2Client, user: &User) -> bool {
    matches!(
        user.identity_provider,
        IdentityProvider::Local | IdentityProvider::OAuth2
    ) && client_tenant(client).is_none_or(|tenant| {
        user.tenancy.tenant_id == tenant && user.tenancy.authority != Authority::SysAdmin
    })
}

/// [`client_may_log_in`] as the login's answer.
fn ensure_client_may_log_in(client: &OAuth2Client, user: &User) -> CoreResult<()> {
    if client_may_log_in(client, user) {
        Ok(())
    } else {
        Err(federation_failure(
            "this OAuth2 client may not log in this user",
        ))
    }
}

impl Gatehouse {
    /// `GET /oauth2/authorization/{clientId}`: starts a login at the client's provider;
    /// `redirect_uri` is the callback at the login-processing URL, `prev_uri` where to go after.
    pub async fn oauth2_login_start(
        &self,
        client_id: Uuid,
        redirect_uri: String,
        prev_uri: Option<String>,
    ) -> CoreResult<LoginStart> {
        let client = self.oauth2_client_for_login(client_id).await?;
        self.start_federated_login(
            format!("{PROVIDER_PREFIX}{}", client.id),
            &endpoints_of(&client),
            redirect_uri,
            prev_uri,
        )
        .await
    }

    /// The callback at the login-processing URL: completes the login, maps the user and opens
    /// a token pair.
    pub async fn oauth2_login_finish(
        &self,
        state: &str,
        code: &str,
        binding: Option<&str>,
    ) -> CoreResult<OAuth2Login> {
        let login = self.take_federated_login(state, binding).await?;
        let client_id = login
            .provider
            .strip_prefix(PROVIDER_PREFIX)
            .and_then(|id| id.parse::<Uuid>().ok())
            .ok_or_else(|| federation_failure("the login was not started here"))?;
        let client =
            self.oauth2_client_for_login(client_id)
                .await
                .map_err(|error| match error {
                    CoreError::NotFound { .. } => {
                        federation_failure("the OAuth2 client was deleted during the login")
                    }
                    other => other,
                })?;
        let completed = self
            .complete_federated_login(
                &endpoints_of(&client),
                login,
                code,
                binding.unwrap_or_default(),
            )
            .await?;
        let claims = &completed.answer.claims;
        if email_unverified(claims) {
            return Err(federation_failure(
                "the identity provider has not verified the email",
            ));
        }
        let provider = format!("{PROVIDER_PREFIX}{}", client.id);
        let subject = claim_text(claims, &client.user_name_attribute_name)
            .or_else(|| claim_text(claims, "sub"));
        let linked = match &subject {
            Some(subject) => self.linked_user(&provider, subject).await?,
            None => None,
        };
        let user = match linked {
            Some(user) => user,
            None => {
                let mapped = self
                    .map_oauth2_user(&client, claims, &completed.answer.access_token)
                    .await?;
                let user = self.oauth2_user(&client, mapped).await?;
                // Checked before the link, so a refused user is never linked.
                ensure_client_may_log_in(&client, &user)?;
                if let Some(subject) = &subject {
                    self.link_identity(&provider, subject, &user).await?;
                }
                user
            }
        };
        // A linked user may have moved to another tenant since.
        ensure_client_may_log_in(&client, &user)?;
        if !user.credentials_enabled {
            return Err(CoreError::Unauthenticated(AuthFailure::NotActive));
        }
        let pair = self.open_pair_session(&user).await?;
        tracing::info!(user_id = %user.id, client_id = %client.id, "OAuth2 login succeeded");
        Ok(OAuth2Login {
            pair,
            return_to: completed.login.return_to,
        })
    }

    /// The client's mapper applied to the provider's claims.
    async fn map_oauth2_user(
        &self,
        client: &OAuth2Client,
        claims: &Map<String, Value>,
        access_token: &SecretString,
    ) -> CoreResult<MappedUser> {
        let mapper = &client.mapper;
        let basic = || {
            mapper
                .basic
                .as_ref()
                .ok_or_else(|| federation_failure("the OAuth2 client's mapper is incomplete"))
        };
        let relying_party = self.relying_party()?;
        match mapper.kind {
            MapperType::Basic | MapperType::Apple => map_basic(basic()?, claims, None),
            MapperType::Github => {
                // GitHub's emails live beside its user endpoint (`/user` → `/user/emails`).
                let base = client
                    .user_info_uri
                    .as_deref()
                    .ok_or_else(|| federation_failure("the GitHub client has no user info URI"))?;
                let emails = relying_party
                    .fetch_json(JsonRequest {
                        url: format!("{}/emails", base.trim_end_matches('/')),
                        body: None,
                        bearer: Some(access_token.clone()),
                        basic: None,
                        headers: Vec::new(),
                    })
                    .await?;
                let email = emails
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|entry| {
                        entry.get("primary").and_then(Value::as_bool) == Some(true)
                            && entry.get("verified").and_then(Value::as_bool) == Some(true)
                    })
                    .and_then(|entry| entry.get("email").and_then(Value::as_str))
                    .ok_or_else(|| federation_failure("GitHub named no verified primary email"))?;
                map_basic(basic()?, claims, Some(email.to_owned()))
            }
            MapperType::Custom => {
                let custom = mapper.custom.as_ref().ok_or_else(|| {
                    federation_failure("the OAuth2 client's mapper is incomplete")
                })?;
                let mut headers = Vec::new();
                if custom.send_token {
                    use secrecy::ExposeSecret;
                    headers.push((
                        "provider-access-token".to_owned(),
                        access_token.expose_secret().to_owned(),
                    ));
                }
                let basic_auth = match (&custom.username, &custom.password) {
                    (Some(user), Some(password)) if !user.is_empty() => {
                        Some((user.clone(), password.clone()))
                    }
                    _ => None,
                };
                let answer = relying_party
                    .fetch_json(JsonRequest {
                        url: custom.url.clone(),
                        body: Some(Value::Object(claims.clone())),
                        bearer: None,
                        basic: basic_auth,
                        headers,
                    })
                    .await?;
                map_custom_answer(&answer)
            }
        }
    }

    /// The user of a mapped login: found by email, else created when the client allows it.
    async fn oauth2_user(&self, client: &OAuth2Client, mapped: MappedUser) -> CoreResult<User> {
        let email = Email::parse(&mapped.email, "email").map_err(|_| {
            federation_failure(format!(
                "the identity provider's email is not usable: {}",
                mapped.email
            ))
        })?;
        // Found by the email of its profile only: a user named like the email but without it
        // (a Connectware user) is never taken over; creating one of that name then conflicts.
        if let Some(found) = self.store.credentials_by_email(email.as_str()).await? {
            return Ok(found.user);
        }
        let username = email.to_username();
        if !client.mapper.allow_user_creation {
            return Err(federation_failure(format!(
                "User not found: {}",
                email.as_str()
            )));
        }
        let tenant_name = mapped
            .tenant_name
            .clone()
            .ok_or_else(|| federation_failure("the mapper named no tenant"))?;
        // A tenant's client places its users in that tenant, whatever the mapper says.
        let tenant_id = match client_tenant(client) {
            Some(tenant) => tenant,
            None => tenant_id_of(&tenant_name),
        };
        let tenancy = match &mapped.customer_name {
            Some(customer) => Tenancy {
                authority: Authority::CustomerUser,
                tenant_id,
                customer_id: customer_id_of(tenant_id, customer),
            },
            None => Tenancy {
                authority: Authority::TenantAdmin,
                tenant_id,
                customer_id: NULL_UUID,
            },
        };
        let provider_name = client
            .additional_info
            .get("providerName")
            .and_then(Value::as_str)
            .unwrap_or(&client.title);
        let mut additional_info = serde_json::json!({
            "authProviderName": provider_name,
            "tenantName": tenant_name,
        });
        if let Some(customer) = &mapped.customer_name {
            additional_info["customerName"] = Value::String(customer.clone());
        }
        if let Some(dashboard) = &mapped.default_dashboard_name {
            additional_info["defaultDashboardName"] = Value::String(dashboard.clone());
            additional_info["defaultDashboardFullscreen"] = Value::Bool(mapped.always_full_screen);
        }
        let profile = Profile {
            email: Some(email.as_str().to_owned()),
            first_name: mapped.first_name.clone(),
            last_name: mapped.last_name.clone(),
            additional_info: Some(additional_info.to_string()),
            ..Profile::default()
        };
        // Without activateUser the user is created disabled: an administrator enables it first.
        self.create_federated_user(
            username.as_str(),
            IdentityProvider::OAuth2,
            profile,
            tenancy,
            Vec::new(),
            client.mapper.activate_user,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn patterns_take_attributes() {
        let attributes = claims(json!({"email": "a@b.org", "org": "Acme", "id": 7}));
        assert_eq!(expand_pattern("%{org} tenant", &attributes), "Acme tenant");
        assert_eq!(expand_pattern("%{id}-%{missing}-x", &attributes), "7--x");
        assert_eq!(expand_pattern("open %{org", &attributes), "open %{org");
        assert_eq!(expand_pattern("plain", &attributes), "plain");
    }

    #[test]
    fn the_basic_mapper_names_tenants_by_strategy() {
        let attributes =
            claims(json!({"mail": "ann@plant.example", "given": "Ann", "org": "Acme"}));
        let mut basic = BasicMapperConfig {
            email_attribute_key: Some("mail".to_owned()),
            first_name_attribute_key: Some("given".to_owned()),
            last_name_attribute_key: None,
            tenant_name_strategy: TenantNameStrategy::Domain,
            tenant_name_pattern: None,
            customer_name_pattern: None,
            default_dashboard_name: None,
            always_full_screen: false,
        };
        let mapped = map_basic(&basic, &attributes, None).unwrap_or_default();
        assert_eq!(mapped.email, "ann@plant.example");
        assert_eq!(mapped.first_name.as_deref(), Some("Ann"));
        assert_eq!(mapped.tenant_name.as_deref(), Some("plant.example"));
        basic.tenant_name_strategy = TenantNameStrategy::Email;
        let mapped = map_basic(&basic, &attributes, None).unwrap_or_default();
        assert_eq!(mapped.tenant_name.as_deref(), Some("ann@plant.example"));
        basic.tenant_name_strategy = TenantNameStrategy::Custom;
        basic.tenant_name_pattern = Some("%{org}".to_owned());
        basic.customer_name_pattern = Some("%{org} customers".to_owned());
        let mapped = map_basic(&basic, &attributes, None).unwrap_or_default();
        assert_eq!(mapped.tenant_name.as_deref(), Some("Acme"));
        assert_eq!(mapped.customer_name.as_deref(), Some("Acme customers"));
        assert!(map_basic(&basic, &claims(json!({})), None).is_err());
    }

    #[test]
    fn tenant_clients_reach_only_their_tenants_local_users() {
        use crate::model::Profile;
        let tenant = tenant_id_of("Acme");
        let user_of = |authority, tenant_id, provider| {
            let mut user = User::local(
                "u@acme.example".to_owned(),
                0,
                Profile::default(),
                Tenancy {
                    authority,
                    tenant_id,
                    customer_id: NULL_UUID,
                },
                true,
            );
            user.identity_provider = provider;
            user
        };
        let sample = crate::oauth2::tests::client();
        let mut system = sample.clone();
        system.tenant_id = NULL_UUID;
        let mut owned = sample;
        owned.tenant_id = tenant;
        let admin = user_of(Authority::TenantAdmin, tenant, IdentityProvider::Local);
        let other = user_of(
            Authority::TenantAdmin,
            tenant_id_of("Other"),
            IdentityProvider::Local,
        );
        let sys = user_of(Authority::SysAdmin, NULL_UUID, IdentityProvider::Local);
        let ldap = user_of(Authority::TenantAdmin, tenant, IdentityProvider::Ldap);
        let created = user_of(Authority::CustomerUser, tenant, IdentityProvider::OAuth2);
        assert!(client_may_log_in(&owned, &admin) && client_may_log_in(&owned, &created));
        assert!(!client_may_log_in(&owned, &other) && !client_may_log_in(&owned, &sys));
        assert!(!client_may_log_in(&owned, &ldap) && !client_may_log_in(&system, &ldap));
        assert!(client_may_log_in(&system, &other) && client_may_log_in(&system, &sys));
    }

    #[test]
    fn tenant_ids_follow_names() {
        assert_eq!(tenant_id_of("Acme"), tenant_id_of("Acme"));
        assert_ne!(tenant_id_of("Acme"), tenant_id_of("acme"));
        let tenant = tenant_id_of("Acme");
        assert_ne!(
            customer_id_of(tenant, "A"),
            customer_id_of(tenant_id_of("B"), "A")
        );
    }
}
