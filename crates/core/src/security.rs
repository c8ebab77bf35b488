//! Security settings: the password policy, the lockout threshold and the lifetimes of mailed
//! links. Stored in the database (so that every replica applies the same, and administrators
//! change them through the API); until an administrator saves them, they derive from the
//! configuration file.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, CoreResult};
use crate::password::PasswordPolicy;
use crate::service::Gatehouse;

/// Setting key of the stored security settings (JSON).
const SECURITY_SETTINGS_KEY: &str = "security.settings";

/// The security settings in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    /// The password policy of every dialect.
    pub password_policy: PasswordPolicy,
    /// Consecutive wrong passwords allowed before the account locks; `None` or 0: no lockout.
    pub max_failed_login_attempts: Option<u32>,
    /// Who is told by mail when an account locks.
    pub user_lockout_notification_email: Option<String>,
    /// Length of mobile application secrets (kept for ThingsBoard clients; unused here).
    pub mobile_secret_key_length: Option<u32>,
    /// Lifetime of activation links, hours (1–24).
    pub user_activation_token_ttl_hours: u32,
    /// Lifetime of password-reset links, hours (1–24).
    pub password_reset_token_ttl_hours: u32,
}

impl SecuritySettings {
    /// The settings before any are saved: the configured password policy, no lockout,
    /// 24-hour links.
    pub fn defaults(password_policy: PasswordPolicy) -> Self {
        Self {
            password_policy,
            max_failed_login_attempts: None,
            user_lockout_notification_email: None,
            mobile_secret_key_length: Some(64),
            user_activation_token_ttl_hours: 24,
            password_reset_token_ttl_hours: 24,
        }
    }

    /// The lockout threshold, if lockout is on.
    pub fn lockout_limit(&self) -> Option<u32> {
        self.max_failed_login_attempts.filter(|limit| *limit > 0)
    }

    /// Checks ranges and the notification address.
    pub fn validate(&self) -> CoreResult<()> {
        for (field, hours) in [
            (
                "userActivationTokenTtl",
                self.user_activation_token_ttl_hours,
            ),
            ("passwordResetTokenTtl", self.password_reset_token_ttl_hours),
        ] {
            if !(1..=24).contains(&hours) {
                return Err(CoreError::invalid(field, "must be between 1 and 24 hours"));
            }
        }
        if let Some(email) = &self.user_lockout_notification_email {
            crate::names::Email::parse(email, "userLockoutNotificationEmail")?;
        }
        let policy = &self.password_policy;
        if policy.min > 1024 || policy.max > 1024 {
            return Err(CoreError::invalid(
                "passwordPolicy",
                "lengths must be at most 1024",
            ));
        }
        if policy.expiration_days > 36_500 || policy.reuse_days > 36_500 {
            return Err(CoreError::invalid(
                "passwordPolicy",
                "periods must be at most 36500 days",
            ));
        }
        Ok(())
    }
}

impl Gatehouse {
    /// The security settings in force.
    pub async fn security_settings(&self) -> CoreResult<SecuritySettings> {
        match self.store.setting(SECURITY_SETTINGS_KEY).await? {
            Some(stored) => serde_json::from_str(&stored).map_err(CoreError::internal),
            None => Ok(SecuritySettings::defaults(self.settings.password_policy)),
        }
    }

    /// The password policy in force.
    pub async fn password_policy(&self) -> CoreResult<PasswordPolicy> {
        Ok(self.security_settings().await?.password_policy)
    }

    /// Validates and stores new security settings; they apply to the next request on every
    /// replica.
    pub async fn save_security_settings(
        &self,
        settings: SecuritySettings,
    ) -> CoreResult<SecuritySettings> {
        settings.validate()?;
        let text = serde_json::to_string(&settings).map_err(CoreError::internal)?;
        self.store.put_setting(SECURITY_SETTINGS_KEY, &text).await?;
        tracing::info!("security settings saved");
        Ok(settings)
    }
}
