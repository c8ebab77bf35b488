//! ThingsBoard's JSON shapes and their translation to and from core types.

use gatehouse_core::model::{ApiKey, User};
use gatehouse_core::pairs::{PairLogin, TokenPair};
use gatehouse_core::password::PasswordPolicy;
use gatehouse_core::security::SecuritySettings;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::error::{TbError, TbResult};

/// An entity reference `{"entityType": "USER", "id": "…"}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = EntityId, example = json!({"entityType": "USER", "id": "784f394c-42b6-435a-983c-b7beff2784f9"}))]
pub struct EntityId {
    /// The kind of entity (`USER`, `TENANT`, `CUSTOMER`, `API_KEY`).
    #[serde(rename = "entityType", default)]
    pub entity_type: String,
    /// The id.
    pub id: Uuid,
}

impl EntityId {
    /// A reference of the given kind.
    pub fn new(entity_type: &str, id: Uuid) -> Self {
        Self {
            entity_type: entity_type.to_owned(),
            id,
        }
    }
}

/// A token pair `{"token": …, "refreshToken": …}`, or after a password alone an MFA token
/// `{"token": …, "scope": "PRE_VERIFICATION_TOKEN" | "MFA_CONFIGURATION_TOKEN"}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = JwtPair)]
pub struct JwtPairOut {
    /// The access token (or MFA token), for `X-Authorization: Bearer`.
    token: String,
    /// The refresh token, for `POST /api/auth/token`; absent for MFA tokens.
    #[serde(rename = "refreshToken", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    refresh_token: Option<String>,
    /// Only for MFA tokens: what the token may be used for.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false, example = "PRE_VERIFICATION_TOKEN")]
    scope: Option<&'static str>,
}

impl From<TokenPair> for JwtPairOut {
    fn from(pair: TokenPair) -> Self {
        Self {
            token: pair.token,
            refresh_token: Some(pair.refresh_token),
            scope: None,
        }
    }
}

impl From<PairLogin> for JwtPairOut {
    fn from(login: PairLogin) -> Self {
        match login {
            PairLogin::Pair(pair) => pair.into(),
            PairLogin::Mfa(challenge) => Self {
                token: challenge.token,
                refresh_token: None,
                scope: Some(challenge.scope.as_str()),
            },
        }
    }
}

/// A user as ThingsBoard shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ThingsboardUser)]
pub struct UserOut {
    /// `{"entityType": "USER", "id": …}`.
    id: EntityId,
    /// Creation time, Unix ms.
    #[serde(rename = "createdTime")]
    created_time: i64,
    /// The tenant (NULL_UUID for system administrators).
    #[serde(rename = "tenantId")]
    tenant_id: EntityId,
    /// The customer (NULL_UUID unless a customer user).
    #[serde(rename = "customerId")]
    customer_id: EntityId,
    /// The email (the login name for users without one).
    email: String,
    /// `SYS_ADMIN`, `TENANT_ADMIN` or `CUSTOMER_USER`.
    authority: String,
    /// First name.
    #[serde(rename = "firstName")]
    first_name: Option<String>,
    /// Last name.
    #[serde(rename = "lastName")]
    last_name: Option<String>,
    /// Phone number.
    phone: Option<String>,
    /// The email again (read-only).
    name: String,
    /// Free-form object, with `userCredentialsEnabled` added.
    #[serde(rename = "additionalInfo")]
    #[schema(value_type = Object)]
    additional_info: Value,
}

impl From<&User> for UserOut {
    fn from(user: &User) -> Self {
        let mut info = user
            .profile
            .additional_info
            .as_deref()
            .and_then(|text| serde_json::from_str::<Map<String, Value>>(text).ok())
            .unwrap_or_default();
        info.insert(
            "userCredentialsEnabled".to_owned(),
            Value::Bool(user.credentials_enabled),
        );
        let email = user.email_or_username().to_owned();
        Self {
            id: EntityId::new("USER", user.id),
            created_time: user.created_at,
            tenant_id: EntityId::new("TENANT", user.tenancy.tenant_id),
            customer_id: EntityId::new("CUSTOMER", user.tenancy.customer_id),
            email: email.clone(),
            authority: user.tenancy.authority.as_str().to_owned(),
            first_name: user.profile.first_name.clone(),
            last_name: user.profile.last_name.clone(),
            phone: user.profile.phone.clone(),
            name: email,
            additional_info: Value::Object(info),
        }
    }
}

/// ThingsBoard's `UserPasswordPolicy`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = UserPasswordPolicy)]
pub struct PasswordPolicyWire {
    /// Minimum length.
    #[serde(default)]
    minimum_length: Option<i64>,
    /// Maximum length (applies only above the minimum; 0: none).
    #[serde(default)]
    maximum_length: Option<i64>,
    /// Minimum upper-case letters.
    #[serde(default)]
    minimum_uppercase_letters: Option<i64>,
    /// Minimum lower-case letters.
    #[serde(default)]
    minimum_lowercase_letters: Option<i64>,
    /// Minimum digits.
    #[serde(default)]
    minimum_digits: Option<i64>,
    /// Minimum special characters.
    #[serde(default)]
    minimum_special_characters: Option<i64>,
    /// Whether whitespace is allowed (default true).
    #[serde(default)]
    allow_whitespaces: Option<bool>,
    /// Refuse a correct password that breaks the policy at login, asking for a reset.
    #[serde(default)]
    force_user_to_reset_password_if_not_valid: Option<bool>,
    /// Days after which passwords expire (0: never).
    #[serde(default)]
    password_expiration_period_days: Option<i64>,
    /// Days during which a former password may not be reused (0: no rule).
    #[serde(default)]
    password_reuse_frequency_days: Option<i64>,
}

/// A count of the wire (absent or null: 0), as the core's `u32`.
fn count(value: Option<i64>, field: &str) -> TbResult<u32> {
    u32::try_from(value.unwrap_or(0))
        .map_err(|_| TbError::bad_request(format!("{field} must be between 0 and 4294967295")))
}

impl PasswordPolicyWire {
    /// The core policy this describes.
    pub fn to_core(&self) -> TbResult<PasswordPolicy> {
        Ok(PasswordPolicy {
            min: count(self.minimum_length, "minimumLength")?,
            max: count(self.maximum_length, "maximumLength")?,
            upper: count(self.minimum_uppercase_letters, "minimumUppercaseLetters")?,
            lower: count(self.minimum_lowercase_letters, "minimumLowercaseLetters")?,
            numeric: count(self.minimum_digits, "minimumDigits")?,
            symbol: count(self.minimum_special_characters, "minimumSpecialCharacters")?,
            allow_whitespace: self.allow_whitespaces.unwrap_or(true),
            force_reset_if_invalid: self
                .force_user_to_reset_password_if_not_valid
                .unwrap_or(false),
            expiration_days: count(
                self.password_expiration_period_days,
                "passwordExpirationPeriodDays",
            )?,
            reuse_days: count(
                self.password_reuse_frequency_days,
                "passwordReuseFrequencyDays",
            )?,
        })
    }
}

impl From<&PasswordPolicy> for PasswordPolicyWire {
    fn from(policy: &PasswordPolicy) -> Self {
        Self {
            minimum_length: Some(i64::from(policy.min)),
            maximum_length: Some(i64::from(policy.max)),
            minimum_uppercase_letters: Some(i64::from(policy.upper)),
            minimum_lowercase_letters: Some(i64::from(policy.lower)),
            minimum_digits: Some(i64::from(policy.numeric)),
            minimum_special_characters: Some(i64::from(policy.symbol)),
            allow_whitespaces: Some(policy.allow_whitespace),
            force_user_to_reset_password_if_not_valid: Some(policy.force_reset_if_invalid),
            password_expiration_period_days: Some(i64::from(policy.expiration_days)),
            password_reuse_frequency_days: Some(i64::from(policy.reuse_days)),
        }
    }
}

/// ThingsBoard's `SecuritySettings`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SecuritySettings)]
pub struct SecuritySettingsWire {
    /// The password policy.
    password_policy: PasswordPolicyWire,
    /// Consecutive wrong passwords before the account locks (null or 0: never).
    #[serde(default)]
    max_failed_login_attempts: Option<i64>,
    /// Who is told by mail when an account locks.
    #[serde(default)]
    user_lockout_notification_email: Option<String>,
    /// Kept for ThingsBoard clients.
    #[serde(default)]
    mobile_secret_key_length: Option<i64>,
    /// Lifetime of activation links, hours (1–24; default 24).
    #[serde(default)]
    user_activation_token_ttl: Option<i64>,
    /// Lifetime of password-reset links, hours (1–24; default 24).
    #[serde(default)]
    password_reset_token_ttl: Option<i64>,
}

impl SecuritySettingsWire {
    /// The core settings this describes.
    pub fn to_core(&self) -> TbResult<SecuritySettings> {
        let optional =
            |value: Option<i64>, field: &str| value.map(|v| count(Some(v), field)).transpose();
        Ok(SecuritySettings {
            password_policy: self.password_policy.to_core()?,
            max_failed_login_attempts: optional(
                self.max_failed_login_attempts,
                "maxFailedLoginAttempts",
            )?,
            user_lockout_notification_email: self
                .user_lockout_notification_email
                .clone()
                .filter(|email| !email.trim().is_empty()),
            mobile_secret_key_length: optional(
                self.mobile_secret_key_length,
                "mobileSecretKeyLength",
            )?,
            user_activation_token_ttl_hours: count(
                self.user_activation_token_ttl.or(Some(24)),
                "userActivationTokenTtl",
            )?,
            password_reset_token_ttl_hours: count(
                self.password_reset_token_ttl.or(Some(24)),
                "passwordResetTokenTtl",
            )?,
        })
    }
}

impl From<&SecuritySettings> for SecuritySettingsWire {
    fn from(settings: &SecuritySettings) -> Self {
        Self {
            password_policy: PasswordPolicyWire::from(&settings.password_policy),
            max_failed_login_attempts: settings.max_failed_login_attempts.map(i64::from),
            user_lockout_notification_email: settings.user_lockout_notification_email.clone(),
            mobile_secret_key_length: settings.mobile_secret_key_length.map(i64::from),
            user_activation_token_ttl: Some(i64::from(settings.user_activation_token_ttl_hours)),
            password_reset_token_ttl: Some(i64::from(settings.password_reset_token_ttl_hours)),
        }
    }
}

/// ThingsBoard's `ApiKeyInfo` (and `ApiKey` when `value` is present).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ApiKey)]
pub struct ApiKeyOut {
    /// `{"entityType": "API_KEY", "id": …}`.
    id: EntityId,
    /// Creation time, Unix ms.
    #[serde(rename = "createdTime")]
    created_time: i64,
    /// The owner's tenant.
    #[serde(rename = "tenantId")]
    tenant_id: EntityId,
    /// The owner.
    #[serde(rename = "userId")]
    user_id: EntityId,
    /// Expiry, Unix ms; 0 means never.
    #[serde(rename = "expirationTime")]
    expiration_time: i64,
    /// What it is for.
    description: String,
    /// Whether it may be used.
    enabled: bool,
    /// Whether it has expired.
    expired: bool,
    /// The key (`tb_…`): only in the answer that creates it; `""` in an update's answer
    /// (the key is stored as a digest and cannot be shown again).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    value: Option<String>,
}

impl ApiKeyOut {
    /// The key as listed (no value).
    pub fn info(key: &ApiKey, tenant_id: Uuid, now_millis: i64) -> Self {
        Self {
            id: EntityId::new("API_KEY", key.id),
            created_time: key.created_at,
            tenant_id: EntityId::new("TENANT", tenant_id),
            user_id: EntityId::new("USER", key.user_id),
            expiration_time: key.expiration_time,
            description: key.description.clone(),
            enabled: key.enabled,
            expired: key.is_expired(now_millis),
            value: None,
        }
    }

    /// The key with a value (the key itself, or `""` after an update).
    pub fn with_value(mut self, value: String) -> Self {
        self.value = Some(value);
        self
    }
}

/// ThingsBoard's `PageData` of API keys.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PageDataApiKeyInfo)]
pub struct ApiKeyPageOut {
    /// The entries of this page.
    pub data: Vec<ApiKeyOut>,
    /// Pages in all.
    pub total_pages: u64,
    /// Entries in all.
    pub total_elements: u64,
    /// Whether a later page exists.
    pub has_next: bool,
}
