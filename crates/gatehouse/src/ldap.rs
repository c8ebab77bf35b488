//! The LDAP directory (`[ldap]`), over ldap3 with rustls: finds the user (as a service account,
//! or by a DN template for a direct bind), verifies the password by binding as the user, and
//! reads its groups (group mode) and its roles attribute (attribute mode).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_core::directory::{Directory, DirectoryAccount};
use gatehouse_core::error::{CoreError, CoreResult};
use gatehouse_core::names::Username;
use gatehouse_core::password::PlainPassword;
use ldap3::{dn_escape, ldap_escape, Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use serde::{Deserialize, Serialize};

/// LDAP's result code for a wrong password (or an unknown DN on a direct bind).
const INVALID_CREDENTIALS: u32 = 49;
/// LDAP's result code for a DN that does not exist.
const NO_SUCH_OBJECT: u32 = 32;

/// The `[ldap]` section. LDAP login is off unless `url` is set.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LdapConfig {
    /// `ldap://host:port` or `ldaps://host:port`; unset: no LDAP login.
    pub url: Option<String>,
    /// Upgrade an `ldap://` connection with StartTLS.
    pub starttls: bool,
    /// The service account that searches users; unset: direct bind with `user_dn_template`.
    pub bind_dn: Option<String>,
    /// The service account's password. A secret: taken verbatim, never logged nor shown.
    pub bind_password: Option<String>,
    /// For a direct bind: the user's DN, with `{username}` in it (DN-escaped).
    pub user_dn_template: Option<String>,
    /// Where users are searched (subtree).
    pub search_base: String,
    /// The attribute holding the login name.
    pub user_attribute: String,
    /// A filter ANDed to the user search, e.g. `(objectClass=inetOrgPerson)`.
    pub search_filter: Option<String>,
    /// Attribute mode: an attribute of the user listing role names.
    pub roles_attribute: Option<String>,
    /// Group mode: where `groupOfNames` groups with the user as `member` are searched; a
    /// role whose `ldapGroupDn` is one of them is given.
    pub group_search_base: Option<String>,
    /// Longest time one login may spend with the directory, seconds.
    pub timeout_secs: u64,
}

impl Default for LdapConfig {
    fn default() -> Self {
        Self {
            url: None,
            starttls: false,
            bind_dn: None,
            bind_password: None,
            user_dn_template: None,
            search_base: String::new(),
            user_attribute: "uid".to_owned(),
            search_filter: None,
            roles_attribute: None,
            group_search_base: None,
            timeout_secs: 5,
        }
    }
}

/// Redacts the bind password.
impl fmt::Debug for LdapConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapConfig")
            .field("url", &self.url)
            .field("starttls", &self.starttls)
            .field("bind_dn", &self.bind_dn)
            .field(
                "bind_password",
                &self.bind_password.as_ref().map(|_| "[redacted]"),
            )
            .field("user_dn_template", &self.user_dn_template)
            .field("search_base", &self.search_base)
            .field("user_attribute", &self.user_attribute)
            .field("search_filter", &self.search_filter)
            .field("roles_attribute", &self.roles_attribute)
            .field("group_search_base", &self.group_search_base)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// The directory built from `[ldap]`, or `None` when LDAP login is off.
pub fn directory(config: &LdapConfig) -> Result<Option<Arc<dyn Directory>>, String> {
    let Some(url) = &config.url else {
        return Ok(None);
    };
    if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
        return Err(format!(
            "ldap.url must start with ldap:// or ldaps://, not {url:?}"
        ));
    }
    match (&config.bind_dn, &config.user_dn_template) {
        (Some(_), _) if config.search_base.is_empty() => {
            return Err("ldap.search_base is needed with ldap.bind_dn".to_owned())
        }
        (Some(_), _) if config.bind_password.is_none() => {
            return Err("ldap.bind_password is needed with ldap.bind_dn".to_owned())
        }
        (None, None) => {
            return Err("set ldap.bind_dn (a service account) or ldap.user_dn_template".to_owned())
        }
        (None, Some(template)) if !template.contains("{username}") => {
            return Err("ldap.user_dn_template must contain {username}".to_owned())
        }
        _ => {}
    }
    if config.user_attribute.is_empty() {
        return Err("ldap.user_attribute must not be empty".to_owned());
    }
    Ok(Some(Arc::new(LdapDirectory {
        config: config.clone(),
    })))
}

struct LdapDirectory {
    config: LdapConfig,
}

fn unavailable(error: impl fmt::Display) -> CoreError {
    tracing::warn!(%error, "LDAP directory unavailable");
    CoreError::Unavailable {
        reason: "the LDAP directory cannot be reached".to_owned(),
    }
}

impl LdapDirectory {
    async fn connect(&self, url: &str) -> CoreResult<Ldap> {
        let settings = LdapConnSettings::new()
            .set_conn_timeout(Duration::from_secs(self.config.timeout_secs.max(1)))
            .set_starttls(self.config.starttls);
        let (connection, ldap) = LdapConnAsync::with_settings(settings, url)
            .await
            .map_err(unavailable)?;
        ldap3::drive!(connection);
        Ok(ldap)
    }

    /// Binds as the service account; false when there is none (direct bind).
    async fn bind_service_account(&self, ldap: &mut Ldap) -> CoreResult<bool> {
        let Some(bind_dn) = &self.config.bind_dn else {
            return Ok(false);
        };
        let password = self.config.bind_password.as_deref().unwrap_or_default();
        ldap.simple_bind(bind_dn, password)
            .await
            .map_err(unavailable)?
            .success()
            .map_err(unavailable)?;
        Ok(true)
    }

    /// The DN of `username`: searched by the service account, or from the template.
    async fn user_dn(&self, ldap: &mut Ldap, username: &Username) -> CoreResult<Option<String>> {
        if !self.bind_service_account(ldap).await? {
            let template = self.config.user_dn_template.as_deref().unwrap_or_default();
            return Ok(Some(
                template.replace("{username}", &dn_escape(username.as_str())),
            ));
        }
        let filter = format!(
            "(&({}={}){})",
            self.config.user_attribute,
            ldap_escape(username.as_str()),
            self.config.search_filter.as_deref().unwrap_or_default()
        );
        let (entries, _) = ldap
            .search(
                &self.config.search_base,
                Scope::Subtree,
                &filter,
                vec!["1.1"],
            )
            .await
            .map_err(unavailable)?
            .success()
            .map_err(unavailable)?;
        // Exactly one account may carry the name; several are ambiguous and refused.
        Ok(match entries.as_slice() {
            [entry] => Some(SearchEntry::construct(entry.clone()).dn),
            _ => None,
        })
    }

    /// Verifies the password and reads the account's roles attribute and groups.
    async fn check(
        &self,
        ldap: &mut Ldap,
        username: &Username,
        password: &PlainPassword,
    ) -> CoreResult<Option<DirectoryAccount>> {
        let Some(dn) = self.user_dn(ldap, username).await? else {
            return Ok(None);
        };
        let bound = ldap
            .simple_bind(&dn, password.expose())
            .await
            .map_err(unavailable)?;
        match bound.rc {
            0 => {}
            INVALID_CREDENTIALS | NO_SUCH_OBJECT => return Ok(None),
            _ => return Err(unavailable(bound)),
        }
        // With a service account, roles and groups are read as it, not as the user.
        self.bind_service_account(ldap).await?;
        let mut account = DirectoryAccount {
            dn: dn.clone(),
            ..DirectoryAccount::default()
        };
        // The entry's own spelling of the name, and its roles attribute.
        let mut wanted = vec![self.config.user_attribute.as_str()];
        if let Some(attribute) = &self.config.roles_attribute {
            wanted.push(attribute.as_str());
        }
        let (entries, _) = ldap
            .search(&dn, Scope::Base, "(objectClass=*)", wanted)
            .await
            .map_err(unavailable)?
            .success()
            .map_err(unavailable)?;
        if let Some(entry) = entries.into_iter().next() {
            let attributes = SearchEntry::construct(entry).attrs;
            let values = |wanted: &str| -> Vec<String> {
                attributes
                    .iter()
                    .filter(|(name, _)| name.eq_ignore_ascii_case(wanted))
                    .flat_map(|(_, values)| values.iter().cloned())
                    .collect()
            };
            // Of several values, the one that matches the typed name without case.
            account.username = values(&self.config.user_attribute)
                .into_iter()
                .find(|value| value.eq_ignore_ascii_case(username.as_str()));
            if let Some(attribute) = &self.config.roles_attribute {
                account.role_names = values(attribute);
            }
        }
        if let Some(base) = &self.config.group_search_base {
            let filter = format!("(&(objectClass=groupOfNames)(member={}))", ldap_escape(&dn));
            let (entries, _) = ldap
                .search(base, Scope::Subtree, &filter, vec!["1.1"])
                .await
                .map_err(unavailable)?
                .success()
                .map_err(unavailable)?;
            account.group_dns = entries
                .into_iter()
                .map(|entry| SearchEntry::construct(entry).dn)
                .collect();
        }
        Ok(Some(account))
    }
}

#[async_trait]
impl Directory for LdapDirectory {
    async fn authenticate(
        &self,
        username: &Username,
        password: &PlainPassword,
    ) -> CoreResult<Option<DirectoryAccount>> {
        // An empty password would be an unauthenticated bind, which LDAP servers accept.
        if password.expose().is_empty() {
            return Ok(None);
        }
        let url = self.config.url.as_deref().unwrap_or_default();
        let timeout = Duration::from_secs(self.config.timeout_secs.max(1));
        let attempt = async {
            let mut ldap = self.connect(url).await?;
            let outcome = self.check(&mut ldap, username, password).await;
            // Best effort: the connection closes with the task either way.
            let _ = ldap.unbind().await;
            outcome
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .map_err(|_| unavailable("timed out"))?
    }
}
