//! Two-factor authentication (T27–T39): the platform settings, the account configuration, and
//! the second step of a login. The factors are the core's, shared with Connectware's MFA, so a
//! TOTP enrolled here is asked for by a Connectware login and the other way round.

use axum::extract::State;
use axum::Json;
use gatehouse_core::mfa::flows::{AccountConfig, AccountMfa, LoginProvider};
use gatehouse_core::mfa::{MfaProvider, PlatformMfaSettings};
use gatehouse_core::model::Authority;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use utoipa::{IntoParams, ToSchema};

use super::error::{ErrorBody, TbResult};
use super::extract::{
    json_object, Configuration, PreVerification, TbBody, TbCaller, TbQuery, TwoFaAccount,
};
use super::wire::JwtPairOut;
use super::TAG;
use crate::AppState;

/// `?providerType=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProviderQuery {
    /// `TOTP`, `SMS`, `EMAIL` or `BACKUP_CODE`.
    #[serde(rename = "providerType")]
    provider_type: String,
}

impl ProviderQuery {
    fn provider(&self) -> TbResult<MfaProvider> {
        Ok(MfaProvider::parse_field(
            &self.provider_type,
            "providerType",
        )?)
    }
}

/// Query of T31.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SaveQuery {
    /// The code that proves the configuration (not needed for `BACKUP_CODE`).
    #[serde(rename = "verificationCode", default)]
    verification_code: Option<String>,
}

/// Query of T38.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CheckQuery {
    /// `TOTP`, `SMS`, `EMAIL` or `BACKUP_CODE`.
    #[serde(rename = "providerType")]
    provider_type: String,
    /// The code (6 digits; a backup code for `BACKUP_CODE`).
    #[serde(rename = "verificationCode")]
    verification_code: String,
}

/// Body of T32.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = TwoFaAccountConfigUpdateRequest)]
pub struct UpdateIn {
    /// Whether a login asks for this provider first.
    #[serde(rename = "useByDefault")]
    use_by_default: bool,
}

/// A provider type.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = TwoFaProviderType)]
#[allow(dead_code)] // Described, never built: the core's type is what travels.
pub enum ProviderTypeSchema {
    /// Authenticator apps (RFC 6238).
    Totp,
    /// Codes by SMS.
    Sms,
    /// Codes by mail.
    Email,
    /// Single-use backup codes.
    BackupCode,
}

/// One provider's platform settings (ThingsBoard's `TwoFaProviderConfig`, tagged by
/// `providerType`).
#[derive(Serialize, ToSchema)]
#[serde(tag = "providerType", rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = TwoFaProviderConfig)]
#[allow(dead_code)] // Described, never built: the core's type is what travels.
pub enum ProviderConfigSchema {
    /// Authenticator apps.
    Totp {
        /// The issuer shown by authenticator apps (1–100 characters, no `:`).
        #[serde(rename = "issuerName")]
        issuer_name: String,
    },
    /// Codes by SMS.
    Sms {
        /// Code lifetime in seconds (1–86400).
        #[serde(rename = "verificationCodeLifetime")]
        #[schema(minimum = 1, maximum = 86400)]
        verification_code_lifetime: u32,
        /// The text; must contain `${code}`.
        #[serde(rename = "smsVerificationMessageTemplate")]
        sms_verification_message_template: String,
    },
    /// Codes by mail.
    Email {
        /// Code lifetime in seconds (1–86400).
        #[serde(rename = "verificationCodeLifetime")]
        #[schema(minimum = 1, maximum = 86400)]
        verification_code_lifetime: u32,
    },
    /// Backup codes.
    BackupCode {
        /// Codes generated at a time (1–100).
        #[serde(rename = "codesQuantity")]
        #[schema(minimum = 1, maximum = 100)]
        codes_quantity: u32,
    },
}

/// Which users must use 2FA when it is enforced (ThingsBoard's `SystemLevelUsersFilter`).
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = TwoFaUsersFilter)]
#[allow(dead_code)] // Described, never built: the core's type is what travels.
pub enum UsersFilterSchema {
    /// Everyone.
    AllUsers,
    /// System administrators.
    SystemAdministrators,
    /// Tenant administrators (of the listed tenants, when given).
    TenantAdministrators {
        /// Only these tenants.
        #[serde(rename = "tenantsIds")]
        tenants_ids: Option<Vec<uuid::Uuid>>,
        /// Accepted and ignored (Gatehouse has no tenant profiles).
        #[serde(rename = "tenantProfilesIds")]
        tenant_profiles_ids: Option<Vec<uuid::Uuid>>,
    },
    /// The listed users.
    UserList {
        /// The users.
        #[serde(rename = "usersIds")]
        users_ids: Vec<uuid::Uuid>,
    },
}

/// The platform 2FA settings (ThingsBoard's `PlatformTwoFaSettings`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PlatformTwoFaSettings)]
#[allow(dead_code)] // Described, never built: the core's type is what travels.
pub struct PlatformSettingsSchema {
    /// The providers users may enrol (each type once).
    providers: Vec<ProviderConfigSchema>,
    /// Seconds between two codes sent to one user (5–86400).
    #[schema(minimum = 5, maximum = 86400)]
    min_verification_code_send_period: u32,
    /// `N:S`: at most N code checks per S seconds per user.
    #[schema(required = false, pattern = "^[1-9][0-9]{0,8}:[1-9][0-9]{0,8}$")]
    verification_code_check_rate_limit: Option<String>,
    /// Wrong codes allowed before the user is banned (0: no limit; at most 1000000).
    #[schema(required = false, minimum = 0, maximum = 1000000)]
    max_verification_failures_before_user_lockout: Option<u32>,
    /// Seconds between the password and the second factor (the MFA token's lifetime), 60–86400.
    #[schema(minimum = 60, maximum = 86400)]
    total_allowed_time_for_verification: u32,
    /// Whether the users of `enforcedUsersFilter` must use 2FA.
    #[schema(required = false)]
    enforce_two_fa: bool,
    /// Who must use 2FA (required when `enforceTwoFa` is true).
    #[schema(required = false)]
    enforced_users_filter: Option<UsersFilterSchema>,
}

/// One 2FA configuration of an account (ThingsBoard's `TwoFaAccountConfig`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = TwoFaAccountConfig)]
#[allow(dead_code)] // Described, never built: the core's type is what travels.
pub struct AccountConfigSchema {
    /// The provider.
    provider_type: ProviderTypeSchema,
    /// Whether a login asks for this provider first.
    #[schema(required = false)]
    use_by_default: bool,
    /// TOTP: the otpauth URI (with the secret only when just generated).
    #[schema(required = false)]
    auth_url: Option<String>,
    /// EMAIL: the address codes go to.
    #[schema(required = false)]
    email: Option<String>,
    /// SMS: the phone number codes go to (E.164).
    #[schema(required = false)]
    phone_number: Option<String>,
    /// BACKUP_CODE: the codes, only when just generated.
    #[schema(required = false)]
    codes: Option<Vec<String>>,
    /// BACKUP_CODE: unused codes left (ignored in requests).
    #[schema(required = false, value_type = Option<i64>, minimum = 0)]
    codes_left: Option<u32>,
}

/// An account's 2FA settings: `{"configs": {"TOTP": {…}, "BACKUP_CODE": {…}}}`.
#[derive(Serialize, ToSchema)]
#[schema(as = AccountTwoFaSettings)]
#[allow(dead_code)] // Described, never built.
pub struct AccountSettingsSchema {
    /// The configurations by provider type.
    configs: std::collections::BTreeMap<String, AccountConfigSchema>,
}

/// The account's configurations keyed by provider, in provider order (as ThingsBoard's
/// `LinkedHashMap`).
struct Configs(Vec<AccountConfig>);

impl Serialize for Configs {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for config in &self.0 {
            map.serialize_entry(config.provider_type.as_str(), config)?;
        }
        map.end()
    }
}

/// An account's settings on the wire.
#[derive(Serialize)]
pub struct AccountSettingsOut {
    configs: Configs,
}

/// `null` when nothing is configured (as ThingsBoard), else the settings.
fn settings_out(account: AccountMfa) -> Json<Option<AccountSettingsOut>> {
    Json((!account.configs.is_empty()).then_some(AccountSettingsOut {
        configs: Configs(account.configs),
    }))
}

/// ThingsBoard's `TwoFaProviderInfo`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TwoFaProviderInfo)]
pub struct ProviderInfoOut {
    /// The provider.
    #[serde(rename = "type")]
    provider_type: &'static str,
    /// Whether it is the user's default.
    default: bool,
    /// Where codes go, masked (EMAIL, SMS); null otherwise.
    #[schema(value_type = Option<String>)]
    contact: Option<String>,
    /// Seconds between two code sends.
    #[serde(rename = "minVerificationCodeSendPeriod")]
    min_verification_code_send_period: u32,
}

/// ThingsBoard's `StringUtils.obfuscate`: keeps `margin` characters at both ends of
/// `text[start..end]` and stars the rest (all of it when it is that short).
fn obfuscate(text: &str, margin: usize, start: usize, end: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    let end = end.min(chars.len());
    let start = start.min(end);
    let part = &chars[start..end];
    let masked: String = if part.len() <= margin * 2 {
        "*".repeat(part.len())
    } else {
        part[..margin]
            .iter()
            .chain(std::iter::repeat_n(&'*', part.len() - margin * 2))
            .chain(&part[part.len() - margin..])
            .collect()
    };
    chars[..start]
        .iter()
        .chain(masked.chars().collect::<Vec<_>>().iter())
        .chain(&chars[end..])
        .collect()
}

/// The masked contact of a login provider: the local part of an address, the digits of a
/// phone number after the `+`.
fn masked_contact(provider: &LoginProvider) -> Option<String> {
    let contact = provider.contact.as_deref()?;
    let chars = contact.chars().count();
    Some(match provider.provider {
        MfaProvider::Email => {
            let at = contact.chars().position(|c| c == '@').unwrap_or(chars);
            obfuscate(contact, 2, 0, at)
        }
        MfaProvider::Sms => {
            let plus = contact.chars().position(|c| c == '+').map_or(0, |i| i + 1);
            obfuscate(contact, 2, plus, chars)
        }
        _ => return None,
    })
}

/// T27: the platform 2FA settings in force (system administrators).
#[utoipa::path(
    get, path = "/api/2fa/settings", tag = TAG, operation_id = "getPlatformTwoFaSettings",
    security(("xAuthorization" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The settings in force (the configuration's defaults until saved)", body = PlatformSettingsSchema),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not a system administrator (20)", body = ErrorBody),
    )
)]
pub async fn platform_settings(
    State(state): State<AppState>,
    caller: TbCaller,
) -> TbResult<Json<PlatformMfaSettings>> {
    caller.require(&[Authority::SysAdmin])?;
    Ok(Json(state.core.platform_mfa_settings().await?))
}

/// T28: save the platform 2FA settings (system administrators).
#[utoipa::path(
    post, path = "/api/2fa/settings", tag = TAG, operation_id = "savePlatformTwoFaSettings",
    security(("xAuthorization" = []), ("bearer" = [])),
    request_body = PlatformSettingsSchema,
    responses(
        (status = 200, description = "The saved settings", body = PlatformSettingsSchema),
        (status = 400, description = "Invalid settings, or EMAIL/SMS without a mail server/SMS gateway (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not a system administrator (20)", body = ErrorBody),
    )
)]
pub async fn save_platform_settings(
    State(state): State<AppState>,
    caller: TbCaller,
    TbBody(body): TbBody,
) -> TbResult<Json<PlatformMfaSettings>> {
    caller.require(&[Authority::SysAdmin])?;
    let settings: PlatformMfaSettings = json_object(&body)?;
    Ok(Json(state.core.save_platform_mfa_settings(settings).await?))
}

/// T29: the provider types enabled platform-wide.
#[utoipa::path(
    get, path = "/api/2fa/providers", tag = TAG, operation_id = "getAvailableTwoFaProviderTypes",
    security(("xAuthorization" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "e.g. `[\"TOTP\", \"BACKUP_CODE\"]`", body = Vec<String>),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "A pre-verification token (20)", body = ErrorBody),
    )
)]
pub async fn available_providers(
    State(state): State<AppState>,
    _account: TwoFaAccount,
) -> TbResult<Json<Vec<&'static str>>> {
    let settings = state.core.platform_mfa_settings().await?;
    Ok(Json(
        settings
            .enabled_providers()
            .into_iter()
            .map(MfaProvider::as_str)
            .collect(),
    ))
}

/// T30: the caller's 2FA configurations (`null` when there are none).
#[utoipa::path(
    get, path = "/api/2fa/account/settings", tag = TAG, operation_id = "getAccountTwoFaSettings",
    security(("xAuthorization" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The configurations, or null", body = Option<AccountSettingsSchema>),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "A pre-verification token (20)", body = ErrorBody),
    )
)]
pub async fn account_settings(
    State(state): State<AppState>,
    TwoFaAccount(user): TwoFaAccount,
) -> TbResult<Json<Option<AccountSettingsOut>>> {
    Ok(settings_out(state.core.account_mfa(&user).await?))
}

/// T34: a new configuration of a provider for the caller to confirm (a TOTP secret, backup
/// codes — shown only here —, the caller's email).
#[utoipa::path(
    post, path = "/api/2fa/account/config/generate", tag = TAG, operation_id = "generateTwoFaAccountConfig",
    security(("xAuthorization" = []), ("bearer" = [])),
    params(ProviderQuery),
    responses(
        (status = 200, description = "The new configuration", body = AccountConfigSchema),
        (status = 400, description = "Unknown or disabled provider (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "A pre-verification token (20)", body = ErrorBody),
    )
)]
pub async fn generate_config(
    State(state): State<AppState>,
    TwoFaAccount(user): TwoFaAccount,
    TbQuery(query): TbQuery<ProviderQuery>,
) -> TbResult<Json<AccountConfig>> {
    let provider = query.provider()?;
    Ok(Json(
        state.core.generate_account_config(&user, provider).await?,
    ))
}

/// T35: sends a code to the contact of an EMAIL or SMS configuration (nothing for TOTP and
/// backup codes).
#[utoipa::path(
    post, path = "/api/2fa/account/config/submit", tag = TAG, operation_id = "submitTwoFaAccountConfig",
    security(("xAuthorization" = []), ("bearer" = [])),
    request_body = AccountConfigSchema,
    responses(
        (status = 200, description = "Sent (empty body)"),
        (status = 400, description = "Invalid configuration or disabled provider (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "A pre-verification token (20)", body = ErrorBody),
        (status = 429, description = "Too many codes sent (33)", body = ErrorBody),
        (status = 503, description = "The mail server or SMS gateway failed", body = ErrorBody),
    )
)]
pub async fn submit_config(
    State(state): State<AppState>,
    TwoFaAccount(user): TwoFaAccount,
    TbBody(body): TbBody,
) -> TbResult<()> {
    let config: AccountConfig = json_object(&body)?;
    state.core.submit_account_config(&user, &config).await?;
    Ok(())
}

/// T31: checks the code of a configuration and saves it; answers the account's settings.
#[utoipa::path(
    post, path = "/api/2fa/account/config", tag = TAG, operation_id = "verifyAndSaveTwoFaAccountConfig",
    security(("xAuthorization" = []), ("bearer" = [])),
    params(SaveQuery),
    request_body = AccountConfigSchema,
    responses(
        (status = 200, description = "The account's settings", body = AccountSettingsSchema),
        (status = 400, description = "Wrong code, provider configured already or disabled (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "A pre-verification token (20)", body = ErrorBody),
    )
)]
pub async fn save_config(
    State(state): State<AppState>,
    TwoFaAccount(user): TwoFaAccount,
    TbQuery(query): TbQuery<SaveQuery>,
    TbBody(body): TbBody,
) -> TbResult<Json<Option<AccountSettingsOut>>> {
    let config: AccountConfig = json_object(&body)?;
    let account = state
        .core
        .verify_and_save_account_config(&user, &config, query.verification_code.as_deref())
        .await?;
    Ok(settings_out(account))
}

/// T32: makes a configured provider the default (or not).
#[utoipa::path(
    put, path = "/api/2fa/account/config", tag = TAG, operation_id = "updateTwoFaAccountConfig",
    security(("xAuthorization" = []), ("bearer" = [])),
    params(ProviderQuery),
    request_body = UpdateIn,
    responses(
        (status = 200, description = "The account's settings", body = AccountSettingsSchema),
        (status = 400, description = "Provider not configured (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "An MFA token (20)", body = ErrorBody),
    )
)]
pub async fn update_config(
    State(state): State<AppState>,
    caller: TbCaller,
    TbQuery(query): TbQuery<ProviderQuery>,
    TbBody(body): TbBody,
) -> TbResult<Json<Option<AccountSettingsOut>>> {
    let provider = query.provider()?;
    let update: UpdateIn = json_object(&body)?;
    let account = state
        .core
        .update_account_config(&caller.0.user, provider, update.use_by_default)
        .await?;
    Ok(settings_out(account))
}

/// T33: removes a configured provider (backup codes go with the last other provider; the
/// default moves to the first provider left; users who must use 2FA keep one).
#[utoipa::path(
    delete, path = "/api/2fa/account/config", tag = TAG, operation_id = "deleteTwoFaAccountConfig",
    security(("xAuthorization" = []), ("bearer" = [])),
    params(ProviderQuery),
    responses(
        (status = 200, description = "The account's settings (null when none are left)", body = Option<AccountSettingsSchema>),
        (status = 400, description = "Provider not configured, or the last one of a user who must use 2FA (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "An MFA token (20)", body = ErrorBody),
    )
)]
pub async fn delete_config(
    State(state): State<AppState>,
    caller: TbCaller,
    TbQuery(query): TbQuery<ProviderQuery>,
) -> TbResult<Json<Option<AccountSettingsOut>>> {
    let provider = query.provider()?;
    let account = state
        .core
        .delete_account_config(&caller.0.user, provider)
        .await?;
    Ok(settings_out(account))
}

/// T36: the providers the login may continue with, contacts masked.
#[utoipa::path(
    get, path = "/api/auth/2fa/providers", tag = TAG, operation_id = "getAvailableTwoFaProviders",
    security(("xAuthorization" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The user's providers", body = Vec<ProviderInfoOut>),
        (status = 401, description = "Not authenticated, or the MFA token expired", body = ErrorBody),
        (status = 403, description = "Not a pre-verification token (20)", body = ErrorBody),
    )
)]
pub async fn login_providers(
    State(state): State<AppState>,
    PreVerification(challenge): PreVerification,
) -> TbResult<Json<Vec<ProviderInfoOut>>> {
    let providers = state.core.login_providers(&challenge.user).await?;
    Ok(Json(
        providers
            .iter()
            .map(|provider| ProviderInfoOut {
                provider_type: provider.provider.as_str(),
                default: provider.is_default,
                contact: masked_contact(provider),
                min_verification_code_send_period: provider.min_verification_code_send_period,
            })
            .collect(),
    ))
}

/// T37: sends a code (EMAIL, SMS); for TOTP and backup codes nothing is sent. Rate limited to
/// one per `minVerificationCodeSendPeriod`.
#[utoipa::path(
    post, path = "/api/auth/2fa/verification/send", tag = TAG, operation_id = "requestTwoFaVerificationCode",
    security(("xAuthorization" = []), ("bearer" = [])),
    params(ProviderQuery),
    responses(
        (status = 200, description = "Sent (empty body)"),
        (status = 400, description = "Unknown or unconfigured provider (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated, or the MFA token expired", body = ErrorBody),
        (status = 403, description = "Not a pre-verification token (20)", body = ErrorBody),
        (status = 429, description = "Too many requests (33)", body = ErrorBody),
        (status = 503, description = "The mail server or SMS gateway failed", body = ErrorBody),
    )
)]
pub async fn send_code(
    State(state): State<AppState>,
    PreVerification(challenge): PreVerification,
    TbQuery(query): TbQuery<ProviderQuery>,
) -> TbResult<()> {
    let provider = query.provider()?;
    state
        .core
        .request_mfa_code(&challenge.user, provider)
        .await?;
    Ok(())
}

/// T38: checks a code and completes the login with a full token pair.
#[utoipa::path(
    post, path = "/api/auth/2fa/verification/check", tag = TAG, operation_id = "checkTwoFaVerificationCode",
    security(("xAuthorization" = []), ("bearer" = [])),
    params(CheckQuery),
    responses(
        (status = 200, description = "A token pair", body = JwtPairOut),
        (status = 400, description = "Wrong or malformed code (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated, the MFA token expired, or locked after too many wrong codes (10)", body = ErrorBody),
        (status = 403, description = "Not a pre-verification token (20)", body = ErrorBody),
        (status = 429, description = "Too many checks (33)", body = ErrorBody),
    )
)]
pub async fn check_code(
    State(state): State<AppState>,
    PreVerification(challenge): PreVerification,
    TbQuery(query): TbQuery<CheckQuery>,
) -> TbResult<Json<JwtPairOut>> {
    let provider = MfaProvider::parse_field(&query.provider_type, "providerType")?;
    let user = state
        .core
        .complete_mfa_challenge(&challenge, provider, &query.verification_code)
        .await?;
    let pair = state.core.open_pair_session(&user).await?;
    Ok(Json(pair.into()))
}

/// T39: completes a login that had to configure 2FA first.
#[utoipa::path(
    post, path = "/api/auth/2fa/login", tag = TAG, operation_id = "authenticateByTwoFaConfigurationToken",
    security(("xAuthorization" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "A token pair", body = JwtPairOut),
        (status = 400, description = "2FA is not configured yet (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated, or the MFA token expired", body = ErrorBody),
        (status = 403, description = "Not an MFA configuration token (20)", body = ErrorBody),
    )
)]
pub async fn configuration_login(
    State(state): State<AppState>,
    Configuration(challenge): Configuration,
) -> TbResult<Json<JwtPairOut>> {
    let user = state.core.complete_mfa_configuration(&challenge).await?;
    let pair = state.core.open_pair_session(&user).await?;
    Ok(Json(pair.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_are_masked_like_thingsboard() {
        let contact = |provider, text: &str| LoginProvider {
            provider,
            is_default: false,
            contact: Some(text.to_owned()),
            min_verification_code_send_period: 30,
        };
        assert_eq!(
            masked_contact(&contact(MfaProvider::Email, "tenant@thingsboard.org")).unwrap(),
            "te**nt@thingsboard.org"
        );
        assert_eq!(
            masked_contact(&contact(MfaProvider::Email, "abc@x.io")).unwrap(),
            "***@x.io"
        );
        assert_eq!(
            masked_contact(&contact(MfaProvider::Sms, "+4915123456789")).unwrap(),
            "+49*********89"
        );
        assert_eq!(masked_contact(&contact(MfaProvider::Totp, "x")), None);
    }
}
