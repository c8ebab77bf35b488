//! The platform's MFA settings in ThingsBoard's `PlatformTwoFaSettings` shape. They are stored in
//! the database (every replica applies the same; a system administrator changes them through
//! `POST /api/2fa/settings`); until one does, they derive from the configuration's `[mfa]`
//! section, so that Connectware's MFA works with zero configuration.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{CoreError, CoreResult};
use crate::model::{Authority, User};
use crate::service::Gatehouse;

use super::MfaProvider;

/// Setting key of the stored platform settings (JSON).
const PLATFORM_SETTINGS_KEY: &str = "mfa.platform_settings";

/// The `[mfa]` section of the configuration: the defaults of the platform settings, and what
/// only the operator decides (the ban after too many wrong codes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MfaSettings {
    /// Issuer shown by authenticator apps (the otpauth URI's `issuer`).
    pub issuer: String,
    /// Backup codes generated at a time.
    pub backup_codes: u32,
    /// Wrong second-factor codes allowed before the user is banned (0: no limit).
    pub max_failures: u32,
    /// Minutes a user is banned after too many wrong codes; 0 disables the account instead,
    /// until an administrator enables it (ThingsBoard's behaviour).
    pub ban_minutes: u32,
    /// Seconds a login may take between the password and the second factor.
    pub verification_seconds: u32,
}

impl Default for MfaSettings {
    fn default() -> Self {
        Self {
            issuer: "Gatehouse".to_owned(),
            backup_codes: 10,
            max_failures: 10,
            ban_minutes: 15,
            verification_seconds: 600,
        }
    }
}

/// Settings of one provider, tagged by `providerType`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "providerType", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProviderConfig {
    /// Authenticator apps.
    Totp {
        /// The otpauth URI's issuer.
        #[serde(rename = "issuerName")]
        issuer_name: String,
    },
    /// Codes by SMS.
    Sms {
        /// Code lifetime, seconds.
        #[serde(rename = "verificationCodeLifetime")]
        verification_code_lifetime: u32,
        /// The message; `${code}` is replaced by the code.
        #[serde(rename = "smsVerificationMessageTemplate")]
        sms_verification_message_template: String,
    },
    /// Codes by mail.
    Email {
        /// Code lifetime, seconds.
        #[serde(rename = "verificationCodeLifetime")]
        verification_code_lifetime: u32,
    },
    /// Backup codes.
    BackupCode {
        /// Codes generated at a time.
        #[serde(rename = "codesQuantity")]
        codes_quantity: u32,
    },
}

impl ProviderConfig {
    /// The provider configured.
    pub fn provider(&self) -> MfaProvider {
        match self {
            ProviderConfig::Totp { .. } => MfaProvider::Totp,
            ProviderConfig::Sms { .. } => MfaProvider::Sms,
            ProviderConfig::Email { .. } => MfaProvider::Email,
            ProviderConfig::BackupCode { .. } => MfaProvider::BackupCode,
        }
    }
}

/// Which users must use 2FA when it is enforced (ThingsBoard's `SystemLevelUsersFilter`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UsersFilter {
    /// Everyone.
    AllUsers,
    /// System administrators.
    SystemAdministrators,
    /// Tenant administrators, of the listed tenants only when a list is given.
    TenantAdministrators {
        /// Only these tenants.
        #[serde(rename = "tenantsIds", default)]
        tenants_ids: Option<Vec<Uuid>>,
        /// Accepted for compatibility; Gatehouse has no tenant profiles.
        #[serde(rename = "tenantProfilesIds", default)]
        tenant_profiles_ids: Option<Vec<Uuid>>,
    },
    /// The listed users.
    UserList {
        /// The users.
        #[serde(rename = "usersIds")]
        users_ids: Vec<Uuid>,
    },
}

impl UsersFilter {
    /// Whether `user` is among the users this filter names.
    pub fn matches(&self, user: &User) -> bool {
        match self {
            UsersFilter::AllUsers => true,
            UsersFilter::SystemAdministrators => user.tenancy.authority == Authority::SysAdmin,
            UsersFilter::TenantAdministrators { tenants_ids, .. } => {
                user.tenancy.authority == Authority::TenantAdmin
                    && tenants_ids
                        .as_ref()
                        .is_none_or(|ids| ids.contains(&user.tenancy.tenant_id))
            }
            UsersFilter::UserList { users_ids } => users_ids.contains(&user.id),
        }
    }
}

/// The platform settings in ThingsBoard's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformMfaSettings {
    /// The providers users may enrol; empty turns MFA off for new enrolments.
    pub providers: Vec<ProviderConfig>,
    /// Seconds between two codes sent to one user (rate limit of `verification/send`), ≥ 5.
    pub min_verification_code_send_period: u32,
    /// `N:S`: at most N code checks per S seconds per user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_code_check_rate_limit: Option<String>,
    /// Wrong codes allowed before the user is banned (0 or absent: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_verification_failures_before_user_lockout: Option<u32>,
    /// Seconds a login may take between the password and the second factor, ≥ 60.
    pub total_allowed_time_for_verification: u32,
    /// Whether the users of `enforcedUsersFilter` must enrol.
    #[serde(default)]
    pub enforce_two_fa: bool,
    /// Who must enrol when `enforceTwoFa` is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforced_users_filter: Option<UsersFilter>,
}

impl PlatformMfaSettings {
    /// The settings before any are saved: TOTP and backup codes, from `[mfa]`.
    pub fn defaults(config: &MfaSettings) -> Self {
        Self {
            providers: vec![
                ProviderConfig::Totp {
                    issuer_name: config.issuer.clone(),
                },
                ProviderConfig::BackupCode {
                    codes_quantity: config.backup_codes,
                },
            ],
            min_verification_code_send_period: 30,
            verification_code_check_rate_limit: None,
            max_verification_failures_before_user_lockout: Some(config.max_failures),
            total_allowed_time_for_verification: config.verification_seconds.max(60),
            enforce_two_fa: false,
            enforced_users_filter: None,
        }
    }

    /// The configuration of `provider`, if it is enabled.
    pub fn provider(&self, provider: MfaProvider) -> Option<&ProviderConfig> {
        self.providers
            .iter()
            .find(|config| config.provider() == provider)
    }

    /// The enabled providers, in enum order.
    pub fn enabled_providers(&self) -> Vec<MfaProvider> {
        let mut providers: Vec<MfaProvider> = self
            .providers
            .iter()
            .map(ProviderConfig::provider)
            .collect();
        providers.sort();
        providers.dedup();
        providers
    }

    /// The failure limit, if there is one.
    pub fn failure_limit(&self) -> Option<u32> {
        self.max_verification_failures_before_user_lockout
            .filter(|limit| *limit > 0)
    }

    /// The check rate limit as a budget, if one is set.
    pub fn check_rate_limit(&self) -> Option<(u32, u32)> {
        self.verification_code_check_rate_limit
            .as_deref()
            .and_then(parse_rate_limit)
    }

    /// Whether `user` must enrol a factor before it may log in.
    pub fn enforced_for(&self, user: &User) -> bool {
        self.enforce_two_fa
            && self
                .enforced_users_filter
                .as_ref()
                .is_some_and(|filter| filter.matches(user))
    }

    /// Checks ranges and rules (ThingsBoard's validation).
    pub fn validate(&self, mail_configured: bool, sms_configured: bool) -> CoreResult<()> {
        in_range(
            "minVerificationCodeSendPeriod",
            self.min_verification_code_send_period,
            5,
            MAX_SECONDS,
        )?;
        in_range(
            "totalAllowedTimeForVerification",
            self.total_allowed_time_for_verification,
            60,
            MAX_SECONDS,
        )?;
        if let Some(limit) = self.max_verification_failures_before_user_lockout {
            in_range(
                "maxVerificationFailuresBeforeUserLockout",
                limit,
                0,
                MAX_FAILURE_LIMIT,
            )?;
        }
        if let Some(limit) = &self.verification_code_check_rate_limit {
            if parse_rate_limit(limit).is_none() {
                return Err(CoreError::invalid(
                    "verificationCodeCheckRateLimit",
                    "must match [1-9]\\d*:[1-9]\\d*",
                ));
            }
        }
        let mut seen = Vec::new();
        for config in &self.providers {
            let provider = config.provider();
            if seen.contains(&provider) {
                return Err(CoreError::invalid(
                    "providers",
                    format!("{} is listed twice", provider.as_str()),
                ));
            }
            seen.push(provider);
            validate_provider(config, mail_configured, sms_configured)?;
        }
        if self.enforce_two_fa {
            if self.providers.is_empty() {
                return Err(CoreError::invalid(
                    "providers",
                    "at least one 2FA provider is required when 2FA is enforced",
                ));
            }
            if self.enforced_users_filter.is_none() {
                return Err(CoreError::invalid(
                    "enforcedUsersFilter",
                    "is required when 2FA is enforced",
                ));
            }
        }
        Ok(())
    }
}

/// The longest period or lifetime the platform settings take, seconds (a day).
pub const MAX_SECONDS: u32 = 86_400;

/// The largest failure limit the platform settings take.
pub const MAX_FAILURE_LIMIT: u32 = 1_000_000;

/// Checks `min <= value <= max`, in ThingsBoard's validation wording.
fn in_range(field: &str, value: u32, min: u32, max: u32) -> CoreResult<()> {
    if value < min {
        return Err(CoreError::invalid(
            field,
            format!("must be greater than or equal to {min}"),
        ));
    }
    if value > max {
        return Err(CoreError::invalid(
            field,
            format!("must be less than or equal to {max}"),
        ));
    }
    Ok(())
}

fn validate_provider(
    config: &ProviderConfig,
    mail_configured: bool,
    sms_configured: bool,
) -> CoreResult<()> {
    let lifetime_ok = |lifetime: u32| (1..=MAX_SECONDS).contains(&lifetime);
    match config {
        ProviderConfig::Totp { issuer_name } => {
            if issuer_name.trim().is_empty() || issuer_name.chars().count() > 100 {
                return Err(CoreError::invalid(
                    "issuerName",
                    "must be 1 to 100 characters",
                ));
            }
            if issuer_name.contains(':') {
                return Err(CoreError::invalid("issuerName", "must not contain ':'"));
            }
        }
        ProviderConfig::Sms {
            verification_code_lifetime,
            sms_verification_message_template,
        } => {
            if !lifetime_ok(*verification_code_lifetime) {
                return Err(CoreError::invalid(
                    "verificationCodeLifetime",
                    "must be between 1 and 86400 seconds",
                ));
            }
            if !sms_verification_message_template.contains("${code}")
                || sms_verification_message_template.chars().count() > 1000
            {
                return Err(CoreError::invalid(
                    "smsVerificationMessageTemplate",
                    "must contain ${code} and be at most 1000 characters",
                ));
            }
            if !sms_configured {
                return Err(CoreError::invalid(
                    "providers",
                    "SMS requires an SMS gateway ([mfa.sms] in the configuration)",
                ));
            }
        }
        ProviderConfig::Email {
            verification_code_lifetime,
        } => {
            if !lifetime_ok(*verification_code_lifetime) {
                return Err(CoreError::invalid(
                    "verificationCodeLifetime",
                    "must be between 1 and 86400 seconds",
                ));
            }
            if !mail_configured {
                return Err(CoreError::invalid(
                    "providers",
                    "EMAIL requires a mail server ([mail] in the configuration)",
                ));
            }
        }
        ProviderConfig::BackupCode { codes_quantity } => {
            if !(1..=100).contains(codes_quantity) {
                return Err(CoreError::invalid(
                    "codesQuantity",
                    "must be between 1 and 100",
                ));
            }
        }
    }
    Ok(())
}

/// Parses `N:S` (N attempts per S seconds, both ≥ 1).
fn parse_rate_limit(text: &str) -> Option<(u32, u32)> {
    let (count, seconds) = text.split_once(':')?;
    let valid = |part: &str| {
        !part.is_empty()
            && !part.starts_with('0')
            && part.len() <= 9
            && part.bytes().all(|b| b.is_ascii_digit())
    };
    if !valid(count) || !valid(seconds) {
        return None;
    }
    Some((count.parse().ok()?, seconds.parse().ok()?))
}

impl Gatehouse {
    /// The platform MFA settings in force.
    pub async fn platform_mfa_settings(&self) -> CoreResult<PlatformMfaSettings> {
        match self.store.setting(PLATFORM_SETTINGS_KEY).await? {
            Some(stored) => serde_json::from_str(&stored).map_err(CoreError::internal),
            None => Ok(PlatformMfaSettings::defaults(&self.settings.mfa)),
        }
    }

    /// Validates and stores new platform MFA settings.
    pub async fn save_platform_mfa_settings(
        &self,
        settings: PlatformMfaSettings,
    ) -> CoreResult<PlatformMfaSettings> {
        settings.validate(self.mailer.is_configured(), self.sms.is_configured())?;
        let text = serde_json::to_string(&settings).map_err(CoreError::internal)?;
        self.store.put_setting(PLATFORM_SETTINGS_KEY, &text).await?;
        tracing::info!("platform MFA settings saved");
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_parse_like_thingsboards_pattern() {
        assert_eq!(parse_rate_limit("3:900"), Some((3, 900)));
        for bad in [
            "0:10",
            "3:0",
            "3",
            ":",
            "a:1",
            "1:",
            "01:5",
            "1:2:3",
            "9999999999:1",
        ] {
            assert_eq!(parse_rate_limit(bad), None, "{bad}");
        }
    }

    #[test]
    fn thingsboard_shape_round_trips() {
        let json = serde_json::json!({
            "providers": [{"providerType": "TOTP", "issuerName": "TB"},
                          {"providerType": "BACKUP_CODE", "codesQuantity": 10}],
            "minVerificationCodeSendPeriod": 30,
            "totalAllowedTimeForVerification": 3600,
            "enforceTwoFa": true,
            "enforcedUsersFilter": {"type": "TENANT_ADMINISTRATORS", "tenantsIds": null}
        });
        let settings: PlatformMfaSettings = serde_json::from_value(json).unwrap();
        assert_eq!(
            settings.enabled_providers(),
            vec![MfaProvider::Totp, MfaProvider::BackupCode]
        );
        settings.validate(false, false).unwrap();
        let mut no_filter = settings.clone();
        no_filter.enforced_users_filter = None;
        assert!(no_filter.validate(false, false).is_err());
        let mut email = settings.clone();
        email.providers.push(ProviderConfig::Email {
            verification_code_lifetime: 60,
        });
        assert!(email.validate(false, false).is_err());
        email.validate(true, false).unwrap();
    }
}
