//! The client registry (device self-registration, Connectware's `/api/client-registry`): an
//! administrator opens the registry for a short window, devices ask for an account with a
//! password or a certificate signing request, and the administrator grants each request,
//! which creates the user (and signs its certificate).
//!
//! Everything is stored: the window (so it holds across restarts and replicas), the requests
//! with their password hash or CSR, and the signed certificate of a granted request, which the
//! device collects by sending its request again.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{CoreError, CoreResult};
use crate::model::{BoundCertificate, GrantMethod, GrantType, IdentityProvider};
use crate::names::Username;
use crate::password::PlainPassword;
use crate::permission::Grant;
use crate::pki::{CertificateAuthority, DeviceCsr, IssuanceProfile};
use crate::ratelimit::RateLimit;
use crate::topic::TopicName;
use crate::users::{UserDraft, UserView};
use crate::Gatehouse;

/// Setting key of the end of the registration window, Unix ms.
const OPEN_UNTIL_SETTING: &str = "registry.open_until";
/// The window when `open` names no duration (Connectware's default), ms.
pub const DEFAULT_OPEN_MILLIS: u64 = 30_000;
/// The longest window one call may open: a day, ms.
pub const MAX_OPEN_MILLIS: u64 = 86_400_000;
/// Longest free-text context of a request.
const MAX_CONTEXT_CHARS: usize = 1024;
/// Most requested roles (names) per request.
const MAX_REQUESTED_ROLES: usize = 100;

/// Limits of the client registry, from the `[registry]` configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySettings {
    /// Registration requests per client address (every attempt counts, polls included).
    pub per_address: RateLimit,
    /// Most requests waiting for a grant; further new requests get 423 until some are granted.
    pub max_pending: u32,
}

impl Default for RegistrySettings {
    /// 20 at once then 20 a minute per address; 1000 pending requests.
    fn default() -> Self {
        Self {
            per_address: RateLimit {
                burst: 20,
                per_minute: 20,
            },
            max_pending: 1000,
        }
    }
}

/// How a request wants to authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialType {
    /// With the password it registered.
    Password,
    /// With the certificate signed from its CSR.
    Certificate,
}

impl CredentialType {
    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialType::Password => "password",
            CredentialType::Certificate => "certificate",
        }
    }

    /// Parses the storage name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "password" => Some(CredentialType::Password),
            "certificate" => Some(CredentialType::Certificate),
            _ => None,
        }
    }
}

/// Where a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationOrigin {
    /// `POST /api/client-registry/register` (the explicit flow).
    Rest,
    /// An MQTT CONNECT with an unknown username while the registry was open (the implicit flow).
    Mqtt,
}

impl RegistrationOrigin {
    /// The storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationOrigin::Rest => "rest",
            RegistrationOrigin::Mqtt => "mqtt",
        }
    }

    /// Parses the storage name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "rest" => Some(RegistrationOrigin::Rest),
            "mqtt" => Some(RegistrationOrigin::Mqtt),
            _ => None,
        }
    }
}

/// A stored registration request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The username asked for (unique among requests).
    pub username: String,
    /// How the device will authenticate.
    pub credential_type: CredentialType,
    /// Argon2id PHC string of the password, if one was sent.
    pub password_hash: Option<String>,
    /// The certificate signing request (PEM), if one was sent.
    pub csr: Option<String>,
    /// Role names the device asks for (shown to the administrator; not applied).
    pub requested_roles: Vec<String>,
    /// Permissions the device asks for (shown to the administrator; not applied).
    pub requested_permissions: Vec<Grant>,
    /// Free text about the device.
    pub context: Option<String>,
    /// Which flow recorded it.
    pub origin: RegistrationOrigin,
    /// When it was recorded, Unix ms.
    pub created_at: i64,
    /// Whether an administrator granted it.
    pub granted: bool,
    /// The signed certificate (PEM), once granted with a CSR.
    pub certificate: Option<String>,
    /// The user created by the grant.
    pub user_id: Option<Uuid>,
}

/// A device's registration request, as parsed by a dialect (names and password unchecked yet,
/// so that their policy failures get the registry's own status).
#[derive(Debug, Clone)]
pub struct RegistrationRequest {
    /// The username asked for.
    pub username: String,
    /// The password, if any.
    pub password: Option<String>,
    /// The CSR as PEM text, if any.
    pub csr_pem: Option<String>,
    /// Requested role names.
    pub roles: Vec<String>,
    /// Requested permissions.
    pub permissions: Vec<Grant>,
    /// Free text about the device.
    pub context: Option<String>,
    /// The caller's address, for the per-address limit.
    pub client: Option<std::net::IpAddr>,
}

/// The answer to a registration request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationAnswer {
    /// Recorded (now or earlier) and waiting for a grant: send the same request again later.
    Pending,
    /// Granted: the user exists; with the signed certificate when a CSR was sent.
    Granted {
        /// The certificate, PEM.
        certificate: Option<String>,
    },
}

/// An administrator's grant of a pending request.
#[derive(Debug, Clone)]
pub struct Confirmation {
    /// The username of the pending request.
    pub username: String,
    /// The new user's MQTT publish prefix.
    pub mqtt_publish_prefix: Option<TopicName>,
    /// The new user's grant types; by default the request's credential types.
    pub grant_types: Option<Vec<GrantType>>,
    /// The new user's direct permissions.
    pub initial_permissions: Vec<Grant>,
    /// Ids of the roles the new user gets.
    pub role_ids: Vec<Uuid>,
}

/// The CA and what it issues, when the server has one.
pub struct Pki {
    /// The built-in (or configured) certificate authority.
    pub authority: CertificateAuthority,
    /// What device certificates carry.
    pub profile: IssuanceProfile,
}

impl Gatehouse {
    /// Signs device certificates with `authority` as `profile` says, and lists the CA among the
    /// trusted certificates.
    pub fn with_pki(mut self, authority: CertificateAuthority, profile: IssuanceProfile) -> Self {
        self.pki = Some(Arc::new(Pki { authority, profile }));
        self
    }

    /// The CA, if the server has one.
    pub fn pki(&self) -> Option<&Pki> {
        self.pki.as_deref()
    }

    fn authority(&self) -> CoreResult<&Pki> {
        self.pki().ok_or_else(|| CoreError::Unavailable {
            reason: "no certificate authority is configured".to_owned(),
        })
    }

    /// Opens the registry for `millis` from now (0 closes it), across every replica.
    pub async fn open_registry(&self, millis: u64) -> CoreResult<()> {
        if millis > MAX_OPEN_MILLIS {
            return Err(CoreError::invalid(
                "duration",
                format!("must be between 0 and {MAX_OPEN_MILLIS} milliseconds"),
            ));
        }
        let now = self.clock.now_millis();
        // `millis` is at most a day, so the sum cannot overflow.
        let until = now.saturating_add(millis as i64);
        self.store
            .put_setting(OPEN_UNTIL_SETTING, &until.to_string())
            .await?;
        tracing::info!(open_for_ms = millis, "client registry opened");
        Ok(())
    }

    /// The end of the open window, Unix ms, when the registry is open now.
    pub async fn registry_open_until(&self) -> CoreResult<Option<i64>> {
        let until = self
            .store
            .setting(OPEN_UNTIL_SETTING)
            .await?
            .and_then(|text| text.parse::<i64>().ok());
        Ok(until.filter(|until| *until > self.clock.now_millis()))
    }

    /// Every registration request, oldest first.
    pub async fn registrations(&self) -> CoreResult<Vec<Registration>> {
        self.store.registrations().await
    }

    /// A device's request (C29): recorded when new and the registry is open; answered from
    /// the stored request when the same request comes again (which works after the window
    /// closed, so that a device can collect its grant).
    pub async fn register_client(
        &self,
        request: RegistrationRequest,
    ) -> CoreResult<RegistrationAnswer> {
        if let Some(client) = request.client {
            self.login_limits
                .registry
                .try_acquire(&client.to_string())?;
        }
        let username = Username::parse(&request.username).map_err(as_policy_violation)?;
        let password = request
            .password
            .as_deref()
            .map(|password| PlainPassword::parse(password, "password"))
            .transpose()?;
        let csr = request
            .csr_pem
            .as_deref()
            .map(|pem| DeviceCsr::parse_pem(pem, "csr"))
            .transpose()?;
        if password.is_none() && csr.is_none() {
            return Err(CoreError::invalid(
                "password",
                "either a password or a csr is required",
            ));
        }
        if let Some(csr) = &csr {
            if csr.common_name != username.as_str() {
                return Err(CoreError::invalid(
                    "csr",
                    "the common name (CN) must equal the username",
                ));
            }
        }
        if let Some(context) = &request.context {
            if context.chars().count() > MAX_CONTEXT_CHARS {
                return Err(CoreError::invalid(
                    "context",
                    format!("must be at most {MAX_CONTEXT_CHARS} characters"),
                ));
            }
        }
        if request.roles.len() > MAX_REQUESTED_ROLES
            || request
                .roles
                .iter()
                .any(|role| role.is_empty() || role.len() > 256)
        {
            return Err(CoreError::invalid(
                "roles",
                "must be at most 100 names of 1 to 256 characters",
            ));
        }
        if let Some(existing) = self.store.registration(username.as_str()).await? {
            return self
                .answer_repeated(existing, password.as_ref(), csr.as_ref())
                .await;
        }
        // Closed first: while the registry is closed, nobody learns which usernames exist.
        self.ensure_registry_accepts().await?;
        if self
            .store
            .credentials_by_username(username.as_str())
            .await?
            .is_some()
        {
            return Err(CoreError::conflict(format!(
                "a user named '{username}' exists"
            )));
        }
        if let Some(password) = &password {
            self.password_policy().await?.check(password, "password")?;
        }
        let password_hash = match &password {
            Some(password) => Some(self.hasher.hash(password).await?),
            None => None,
        };
        let registration = Registration {
            username: username.as_str().to_owned(),
            credential_type: if csr.is_some() {
                CredentialType::Certificate
            } else {
                CredentialType::Password
            },
            password_hash,
            csr: csr.map(|csr| csr.pem),
            requested_roles: request.roles,
            requested_permissions: request.permissions,
            context: request.context,
            origin: RegistrationOrigin::Rest,
            created_at: self.clock.now_millis(),
            granted: false,
            certificate: None,
            user_id: None,
        };
        self.store.insert_registration(registration).await?;
        tracing::info!(username = %username, "registration request recorded");
        Ok(RegistrationAnswer::Pending)
    }

    /// 423 unless the window is open and there is room for one more pending request.
    async fn ensure_registry_accepts(&self) -> CoreResult<()> {
        if self.registry_open_until().await?.is_none() {
            return Err(CoreError::Locked {
                reason: "the client registry is not open".to_owned(),
            });
        }
        let pending = self.store.count_pending_registrations().await?;
        if pending >= u64::from(self.settings.registry.max_pending) {
            return Err(CoreError::Locked {
                reason: "the client registry holds too many pending requests".to_owned(),
            });
        }
        Ok(())
    }

    /// The answer to a request sent again: it must carry the same credentials (the same
    /// password, the same CSR), else it conflicts with the stored one.
    async fn answer_repeated(
        &self,
        existing: Registration,
        password: Option<&PlainPassword>,
        csr: Option<&DeviceCsr>,
    ) -> CoreResult<RegistrationAnswer> {
        let conflict = || {
            CoreError::conflict(format!(
                "a different registration for '{}' exists",
                existing.username
            ))
        };
        let same_csr = match (&existing.csr, csr) {
            (Some(stored), Some(sent)) => stored.trim() == sent.pem.trim(),
            (None, None) => true,
            _ => false,
        };
        if !same_csr {
            return Err(conflict());
        }
        match (&existing.password_hash, password) {
            (Some(hash), Some(sent)) => {
                if !self.hasher.verify(sent, Some(hash)).await? {
                    return Err(conflict());
                }
            }
            (None, None) => {}
            _ => return Err(conflict()),
        }
        Ok(if existing.granted {
            RegistrationAnswer::Granted {
                certificate: existing.certificate,
            }
        } else {
            RegistrationAnswer::Pending
        })
    }

    /// Grants a pending request (C32): creates the user — with the request's password hash,
    /// and with its CSR signed and the certificate bound — and marks the request granted, in
    /// one transaction.
    pub async fn confirm_registration(&self, confirmation: Confirmation) -> CoreResult<UserView> {
        let registration = self
            .store
            .registration(&confirmation.username)
            .await?
            .filter(|registration| !registration.granted)
            .ok_or(CoreError::not_found("registration"))?;
        let username = Username::parse(&registration.username)?;
        let now = self.clock.now_millis();
        let issued = match &registration.csr {
            Some(pem) => {
                let pki = self.authority()?;
                let csr = DeviceCsr::parse_pem(pem, "csr")?;
                Some(pki.authority.sign_device(&csr, &pki.profile, now)?)
            }
            None => None,
        };
        let grant_types = confirmation.grant_types.unwrap_or_else(|| {
            let mut grants = Vec::new();
            if registration.password_hash.is_some() {
                grants.push(GrantType {
                    method: GrantMethod::Password,
                    is_required: false,
                });
            }
            if registration.csr.is_some() {
                grants.push(GrantType {
                    method: GrantMethod::Certificate,
                    is_required: false,
                });
            }
            grants
        });
        let certificates = issued
            .iter()
            .map(|issued| BoundCertificate {
                fingerprint: issued.fingerprint.clone(),
                created_at: now,
                expires_at: Some(issued.expires_at),
            })
            .collect();
        let mut new_user = self
            .prepare_new_user(UserDraft {
                username,
                password: None,
                identity_provider: IdentityProvider::Local,
                grant_types: Some(grant_types),
                auto_generated: true,
                mqtt_publish_prefix: confirmation.mqtt_publish_prefix,
                certificates,
                initial_permissions: confirmation.initial_permissions,
                role_ids: confirmation.role_ids,
                enforce_mfa_enrollment: false,
            })
            .await?;
        new_user.password_hash = registration.password_hash.clone();
        let user_id = new_user.user.id;
        let granted = self
            .store
            .grant_registration(
                &registration.username,
                new_user,
                issued.map(|issued| issued.pem),
            )
            .await?;
        if !granted {
            return Err(CoreError::not_found("registration"));
        }
        tracing::info!(username = %registration.username, %user_id, "registration granted");
        self.user_view(user_id).await
    }

    /// The implicit (MQTT) flow: a CONNECT with an unknown username while the registry is open
    /// is recorded as a pending password request, unless one exists for the name. Names and
    /// passwords that break the rules are not recorded. Never fails the CONNECT's own answer;
    /// true when a request was recorded (its password was hashed).
    pub(crate) async fn record_mqtt_registration(
        &self,
        username: &str,
        password: &PlainPassword,
    ) -> bool {
        let outcome: CoreResult<bool> = async {
            let Ok(name) = Username::parse(username) else {
                return Ok(false);
            };
            if self.ensure_registry_accepts().await.is_err()
                || self.store.registration(name.as_str()).await?.is_some()
                || self
                    .password_policy()
                    .await?
                    .check(password, "password")
                    .is_err()
            {
                return Ok(false);
            }
            let registration = Registration {
                username: name.as_str().to_owned(),
                credential_type: CredentialType::Password,
                password_hash: Some(self.hasher.hash(password).await?),
                csr: None,
                requested_roles: Vec::new(),
                requested_permissions: Vec::new(),
                context: Some("MQTT CONNECT".to_owned()),
                origin: RegistrationOrigin::Mqtt,
                created_at: self.clock.now_millis(),
                granted: false,
                certificate: None,
                user_id: None,
            };
            self.store.insert_registration(registration).await?;
            Ok(true)
        }
        .await;
        match outcome {
            Ok(true) => {
                tracing::info!(username, "registration request recorded from MQTT");
                true
            }
            Ok(false) => false,
            Err(error) => {
                tracing::warn!(%error, "MQTT registration not recorded");
                false
            }
        }
    }
}

/// A username that breaks the naming rules is a policy violation in the registry (422), as the
/// seed documents, not a malformed request.
fn as_policy_violation(error: CoreError) -> CoreError {
    match error {
        CoreError::Invalid { field, .. } => CoreError::PolicyViolation {
            field,
            breaches: vec![crate::error::PolicyBreach::Username],
        },
        other => other,
    }
}
