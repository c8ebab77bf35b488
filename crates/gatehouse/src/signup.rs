//! Self-service sign-up: the `[signup]` settings and the [`RecaptchaVerifier`] that asks
//! Google's reCAPTCHA (v2, v3 or Enterprise), or any service answering the same way, whether a
//! visitor's CAPTCHA answer is genuine.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_core::error::{CoreError, CoreResult};
use gatehouse_core::ratelimit::RateLimit;
use gatehouse_core::signup::{
    CaptchaClientParams, CaptchaVerifier, MobileApp, NoCaptcha, SignupAccount, SignupSettings,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

/// Google's verification endpoint of reCAPTCHA v2 and v3.
const SITEVERIFY_URL: &str = "https://www.google.com/recaptcha/api/siteverify";
/// reCAPTCHA Enterprise's assessment endpoint; `{project}` is the project id.
const ENTERPRISE_URL: &str =
    "https://recaptchaenterprise.googleapis.com/v1/projects/{project}/assessments";

/// Largest verifier answer read, in bytes (Google's are a few hundred).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The reCAPTCHA flavours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptchaVersion {
    /// The checkbox; the answer is valid or not.
    V2,
    /// Invisible, score-based; the answer carries a score and an action.
    V3,
    /// reCAPTCHA Enterprise assessments (API key authentication).
    Enterprise,
}

impl CaptchaVersion {
    fn as_str(self) -> &'static str {
        match self {
            CaptchaVersion::V2 => "v2",
            CaptchaVersion::V3 => "v3",
            CaptchaVersion::Enterprise => "enterprise",
        }
    }
}

/// The `[signup.captcha]` section.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptchaConfig {
    /// `v2`, `v3` or `enterprise`.
    pub version: CaptchaVersion,
    /// The public site key the sign-up page embeds.
    pub site_key: String,
    /// The secret key (v2, v3) or the API key (Enterprise). A secret: never logged nor shown
    /// by `Debug`.
    pub secret_key: Option<String>,
    /// Where answers are verified; unset: Google's endpoint for the version.
    pub verify_url: Option<String>,
    /// The Google Cloud project (Enterprise only, when `verify_url` is unset).
    pub project_id: Option<String>,
    /// The action v3 and Enterprise answers must carry; unset: any action.
    pub action: Option<String>,
    /// The lowest score v3 and Enterprise answers may have (0.0–1.0).
    pub min_score: f64,
    /// Seconds before the verification request is given up.
    pub timeout_secs: u64,
}

impl Default for CaptchaConfig {
    fn default() -> Self {
        Self {
            version: CaptchaVersion::V2,
            site_key: String::new(),
            secret_key: None,
            verify_url: None,
            project_id: None,
            action: None,
            min_score: 0.5,
            timeout_secs: 10,
        }
    }
}

/// Redacts the secret key.
impl fmt::Debug for CaptchaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptchaConfig")
            .field("version", &self.version)
            .field("site_key", &self.site_key)
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "[redacted]"),
            )
            .field("verify_url", &self.verify_url)
            .field("project_id", &self.project_id)
            .field("action", &self.action)
            .field("min_score", &self.min_score)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// One `[[signup.mobile_apps]]` entry.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MobileAppConfig {
    /// The package name (`pkgName`).
    pub package: String,
    /// The secret the app sends as `appSecret`. Never logged nor shown by `Debug`.
    pub secret: String,
    /// The URL scheme of links into the app (`<scheme>://…`).
    pub callback_scheme: String,
}

/// Redacts the secret.
impl fmt::Debug for MobileAppConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MobileAppConfig")
            .field("package", &self.package)
            .field("secret", &"[redacted]")
            .field("callback_scheme", &self.callback_scheme)
            .finish()
    }
}

/// What a sign-up creates, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountKind {
    /// A tenant administrator of a new tenant.
    Tenant,
    /// A customer user of a new customer of `signup.tenant_id`.
    Customer,
}

/// The `[signup]` section: self-service sign-up, off by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignupConfig {
    /// Whether visitors may sign up. Needs `[mail]` and a CAPTCHA secret.
    pub enabled: bool,
    /// `tenant` (default) or `customer`.
    pub account: AccountKind,
    /// The tenant of `customer` sign-ups.
    pub tenant_id: Option<Uuid>,
    /// Hours an email code stays valid.
    pub email_code_ttl_hours: u32,
    /// Hours after which an account whose email was never verified is deleted.
    pub unverified_retention_hours: u32,
    /// Unverified sign-ups kept at most.
    pub max_unverified: u64,
    /// Sign-ups and resends per client address.
    pub per_address: RateLimit,
    /// Sign-up mails per email address and hour.
    pub mails_per_address_hour: u32,
    /// Whether signed-up accounts must accept the privacy policy before using the API.
    pub privacy_policy_required: bool,
    /// Seconds a login counts as recent enough to delete the account without the password.
    pub reauthentication_secs: u32,
    /// The CAPTCHA.
    pub captcha: CaptchaConfig,
    /// Mobile applications that may sign users up.
    pub mobile_apps: Vec<MobileAppConfig>,
}

impl Default for SignupConfig {
    fn default() -> Self {
        let core = SignupSettings::default();
        Self {
            enabled: core.enabled,
            account: AccountKind::Tenant,
            tenant_id: None,
            email_code_ttl_hours: core.email_code_ttl_hours,
            unverified_retention_hours: core.unverified_retention_hours,
            max_unverified: core.max_unverified,
            per_address: core.per_address,
            mails_per_address_hour: core.mails_per_address_hour,
            privacy_policy_required: core.privacy_policy_required,
            reauthentication_secs: core.reauthentication_secs,
            captcha: CaptchaConfig::default(),
            mobile_apps: Vec::new(),
        }
    }
}

impl SignupConfig {
    /// The core's settings and the CAPTCHA verifier; the message names the key at fault.
    /// `mail_configured` tells whether `[mail]` names a server (sign-up needs one).
    pub fn core(
        &self,
        mail_configured: bool,
    ) -> Result<(SignupSettings, Arc<dyn CaptchaVerifier>), String> {
        let account = match (self.account, self.tenant_id) {
            (AccountKind::Tenant, _) => SignupAccount::Tenant,
            // ThingsBoard's null tenant holds the users of no tenant: never a sign-up's tenant.
            (AccountKind::Customer, Some(tenant_id))
                if !tenant_id.is_nil() && tenant_id != gatehouse_core::model::NULL_UUID =>
            {
                SignupAccount::Customer { tenant_id }
            }
            (AccountKind::Customer, _) => {
                return Err(
                    "signup.tenant_id must name a tenant when signup.account is \"customer\""
                        .to_owned(),
                )
            }
        };
        for (key, value) in [
            ("signup.email_code_ttl_hours", self.email_code_ttl_hours),
            (
                "signup.unverified_retention_hours",
                self.unverified_retention_hours,
            ),
            ("signup.mails_per_address_hour", self.mails_per_address_hour),
            ("signup.reauthentication_secs", self.reauthentication_secs),
        ] {
            if value == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        if !(0.0..=1.0).contains(&self.captcha.min_score) {
            return Err("signup.captcha.min_score must be between 0.0 and 1.0".to_owned());
        }
        for app in &self.mobile_apps {
            let scheme_ok = app
                .callback_scheme
                .chars()
                .next()
                .is_some_and(|first| first.is_ascii_alphabetic())
                && app
                    .callback_scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
            if app.package.is_empty() || app.secret.is_empty() || !scheme_ok {
                return Err(
                    "each signup.mobile_apps entry needs a package, a secret and a \
                            callback_scheme that is a URL scheme"
                        .to_owned(),
                );
            }
        }
        let verifier: Arc<dyn CaptchaVerifier> = if self.enabled {
            if !mail_configured {
                return Err("signup.enabled needs a mail server ([mail] host)".to_owned());
            }
            Arc::new(RecaptchaVerifier::new(&self.captcha)?)
        } else {
            Arc::new(NoCaptcha)
        };
        let settings = SignupSettings {
            enabled: self.enabled,
            account,
            email_code_ttl_hours: self.email_code_ttl_hours,
            unverified_retention_hours: self.unverified_retention_hours,
            max_unverified: self.max_unverified,
            per_address: self.per_address,
            mails_per_address_hour: self.mails_per_address_hour,
            privacy_policy_required: self.privacy_policy_required,
            reauthentication_secs: self.reauthentication_secs,
            captcha: CaptchaClientParams {
                version: self.captcha.version.as_str().to_owned(),
                site_key: self.captcha.site_key.clone(),
                action: self.captcha.action.clone(),
            },
            mobile_apps: self
                .mobile_apps
                .iter()
                .map(|app| MobileApp {
                    package: app.package.clone(),
                    secret: app.secret.clone().into(),
                    callback_scheme: app.callback_scheme.clone(),
                })
                .collect(),
        };
        Ok((settings, verifier))
    }
}

/// Verifies CAPTCHA answers against reCAPTCHA's verification API (or a service that answers
/// like it). Redirects are not followed; the secret never appears in a log.
pub struct RecaptchaVerifier {
    client: reqwest::Client,
    version: CaptchaVersion,
    url: reqwest::Url,
    secret: secrecy::SecretString,
    site_key: String,
    action: Option<String>,
    min_score: f64,
}

impl RecaptchaVerifier {
    /// A verifier for `config`; the message names the key at fault.
    pub fn new(config: &CaptchaConfig) -> Result<Self, String> {
        let secret = config
            .secret_key
            .clone()
            .filter(|secret| !secret.is_empty())
            .ok_or("signup.enabled needs signup.captcha.secret_key")?;
        if config.site_key.is_empty() {
            return Err("signup.enabled needs signup.captcha.site_key".to_owned());
        }
        let url = match (&config.verify_url, config.version) {
            (Some(url), _) => url.clone(),
            (None, CaptchaVersion::Enterprise) => {
                let project = config
                    .project_id
                    .as_deref()
                    .filter(|project| !project.is_empty())
                    .ok_or("signup.captcha.version = \"enterprise\" needs signup.captcha.project_id or verify_url")?;
                ENTERPRISE_URL.replace("{project}", project)
            }
            (None, _) => SITEVERIFY_URL.to_owned(),
        };
        let url = reqwest::Url::parse(&url)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or("signup.captcha.verify_url must be an http or https URL")?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_secs.max(1)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| format!("signup.captcha: {error}"))?;
        Ok(Self {
            client,
            version: config.version,
            url,
            secret: secret.into(),
            site_key: config.site_key.clone(),
            action: config.action.clone(),
            min_score: config.min_score,
        })
    }

    async fn ask(&self, response: &str, client: Option<IpAddr>) -> Result<Value, String> {
        use secrecy::ExposeSecret;
        let remote_ip = client.map(|ip| ip.to_string());
        let request = match self.version {
            CaptchaVersion::V2 | CaptchaVersion::V3 => {
                let mut form = vec![
                    ("secret", self.secret.expose_secret().to_owned()),
                    ("response", response.to_owned()),
                ];
                if let Some(ip) = remote_ip {
                    form.push(("remoteip", ip));
                }
                self.client.post(self.url.clone()).form(&form)
            }
            CaptchaVersion::Enterprise => {
                let mut url = self.url.clone();
                url.query_pairs_mut()
                    .append_pair("key", self.secret.expose_secret());
                let mut event = json!({ "token": response, "siteKey": self.site_key });
                if let Some(action) = &self.action {
                    event["expectedAction"] = json!(action);
                }
                if let Some(ip) = remote_ip {
                    event["userIpAddress"] = json!(ip);
                }
                self.client.post(url).json(&json!({ "event": event }))
            }
        };
        // reqwest's errors name the URL, which carries the Enterprise key: report the kind only.
        let answer = request.send().await.map_err(|error| describe(&error))?;
        if !answer.status().is_success() {
            return Err(format!("the verifier answered {}", answer.status()));
        }
        // The answer is a small JSON object: a larger one is not read to its end.
        let mut answer = answer;
        let mut body = Vec::new();
        while let Some(chunk) = answer.chunk().await.map_err(|error| describe(&error))? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err("the verifier's answer is too large".to_owned());
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|_| {
            "the CAPTCHA verification request answered something that is not JSON".to_owned()
        })
    }

    /// Whether a verifier's answer accepts the response.
    fn accepts(&self, answer: &Value) -> bool {
        let score_ok = |score: Option<f64>| score.is_some_and(|score| score >= self.min_score);
        let action_ok = |action: Option<&str>| {
            self.action
                .as_deref()
                .is_none_or(|expected| action == Some(expected))
        };
        match self.version {
            CaptchaVersion::V2 => answer["success"].as_bool() == Some(true),
            CaptchaVersion::V3 => {
                answer["success"].as_bool() == Some(true)
                    && score_ok(answer["score"].as_f64())
                    && action_ok(answer["action"].as_str())
            }
            CaptchaVersion::Enterprise => {
                answer["tokenProperties"]["valid"].as_bool() == Some(true)
                    && score_ok(answer["riskAnalysis"]["score"].as_f64())
                    && action_ok(answer["tokenProperties"]["action"].as_str())
            }
        }
    }
}

fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_decode() {
        "answered something that is not JSON"
    } else {
        "failed"
    };
    format!("the CAPTCHA verification request {kind}")
}

#[async_trait]
impl CaptchaVerifier for RecaptchaVerifier {
    async fn verify(&self, response: &str, client: Option<IpAddr>) -> CoreResult<bool> {
        match self.ask(response, client).await {
            Ok(answer) => Ok(self.accepts(&answer)),
            Err(reason) => {
                tracing::warn!(reason = %reason, "CAPTCHA verification unavailable");
                Err(CoreError::Unavailable { reason })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(version: CaptchaVersion, action: Option<&str>) -> RecaptchaVerifier {
        RecaptchaVerifier::new(&CaptchaConfig {
            version,
            site_key: "site".into(),
            secret_key: Some("secret".into()),
            verify_url: Some("http://127.0.0.1:9/verify".into()),
            action: action.map(str::to_owned),
            ..CaptchaConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn v2_needs_success() {
        let v = verifier(CaptchaVersion::V2, None);
        assert!(v.accepts(&json!({"success": true})));
        assert!(!v.accepts(&json!({"success": false})));
        assert!(!v.accepts(&json!({"success": "true"})));
        assert!(!v.accepts(&json!({})));
    }

    #[test]
    fn v3_needs_score_and_action() {
        let v = verifier(CaptchaVersion::V3, Some("signup"));
        assert!(v.accepts(&json!({"success": true, "score": 0.9, "action": "signup"})));
        assert!(v.accepts(&json!({"success": true, "score": 0.5, "action": "signup"})));
        assert!(!v.accepts(&json!({"success": true, "score": 0.4, "action": "signup"})));
        assert!(!v.accepts(&json!({"success": true, "score": 0.9, "action": "login"})));
        assert!(!v.accepts(&json!({"success": true, "action": "signup"})));
        assert!(!v.accepts(&json!({"success": false, "score": 0.9, "action": "signup"})));
    }

    #[test]
    fn enterprise_reads_the_assessment() {
        let v = verifier(CaptchaVersion::Enterprise, Some("signup"));
        let good = json!({"tokenProperties": {"valid": true, "action": "signup"},
                          "riskAnalysis": {"score": 0.7}});
        assert!(v.accepts(&good));
        let invalid = json!({"tokenProperties": {"valid": false, "action": "signup"},
                             "riskAnalysis": {"score": 0.9}});
        assert!(!v.accepts(&invalid));
        let low = json!({"tokenProperties": {"valid": true, "action": "signup"},
                         "riskAnalysis": {"score": 0.1}});
        assert!(!v.accepts(&low));
    }

    fn refusal(config: &SignupConfig, mail: bool) -> String {
        match config.core(mail) {
            Ok(_) => panic!("accepted: {config:?}"),
            Err(reason) => reason,
        }
    }

    #[test]
    fn configuration_is_checked() {
        let enabled = SignupConfig {
            enabled: true,
            ..SignupConfig::default()
        };
        assert!(refusal(&enabled, true).contains("secret_key"));
        let mut with_secret = enabled.clone();
        with_secret.captcha.secret_key = Some("s".into());
        with_secret.captcha.site_key = "k".into();
        assert!(refusal(&with_secret, false).contains("mail"));
        assert!(with_secret.core(true).is_ok());
        let customer = SignupConfig {
            account: AccountKind::Customer,
            ..with_secret.clone()
        };
        assert!(refusal(&customer, true).contains("tenant_id"));
        let mut app = with_secret.clone();
        app.mobile_apps.push(MobileAppConfig {
            package: "org.example".into(),
            secret: "s".into(),
            callback_scheme: "bad scheme://".into(),
        });
        assert!(refusal(&app, true).contains("callback_scheme"));
        // Disabled sign-up needs nothing.
        assert!(SignupConfig::default().core(false).is_ok());
        let shown = format!("{:?}", with_secret);
        assert!(!shown.contains("\"s\""), "{shown}");
    }
}
