//! Login through a directory (LDAP): the password of a user unknown here, or of a user whose
//! identity provider is `ldap`, is verified by the directory. The first successful login creates
//! the user (identity provider `ldap`, no password stored here); every login re-syncs its roles
//! from the directory: roles whose `ldapGroupDn` is one of the user's groups (group mode), and
//! roles named in the user's roles attribute (attribute mode).
//!
//! The directory protocol lives outside the core (crate `gatehouse`, over ldap3); the core only
//! sees [`Directory`].

use std::collections::HashSet;

use async_trait::async_trait;
use uuid::Uuid;

use crate::auth::BAD_CREDENTIALS;
use crate::error::{AuthFailure, CoreError, CoreResult};
use crate::model::{IdentityProvider, Profile, Tenancy, User, UserCredentials};
use crate::names::Username;
use crate::password::PlainPassword;
use crate::Gatehouse;

/// A directory account whose password was verified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryAccount {
    /// The account's distinguished name.
    pub dn: String,
    /// The login name as the directory spells it (directories usually match names without
    /// case): the user is created and found under this name, so that `ALICE` cannot become a
    /// second user beside `alice`. `None`: the name as typed.
    pub username: Option<String>,
    /// DNs of the groups the account is a member of (group mode).
    pub group_dns: Vec<String>,
    /// Role names listed in the account's roles attribute (attribute mode).
    pub role_names: Vec<String>,
}

/// A directory that verifies passwords.
#[async_trait]
pub trait Directory: Send + Sync {
    /// Verifies `password` for `username`: the account when it is right, `None` when the
    /// account is unknown or the password wrong, `CoreError::Unavailable` when the directory
    /// cannot be asked.
    async fn authenticate(
        &self,
        username: &Username,
        password: &PlainPassword,
    ) -> CoreResult<Option<DirectoryAccount>>;
}

/// A DN in a comparable form: lower case, without blanks around separators.
pub fn normalize_dn(dn: &str) -> String {
    dn.split(',')
        .map(|part| part.split('=').map(str::trim).collect::<Vec<_>>().join("="))
        .collect::<Vec<_>>()
        .join(",")
        .to_lowercase()
}

impl Gatehouse {
    /// Verifies passwords of unknown and `ldap` users with `directory`.
    pub fn with_directory(mut self, directory: std::sync::Arc<dyn Directory>) -> Self {
        self.directory = Some(directory);
        self
    }

    /// Whether the password of this login is the directory's to verify: a directory is
    /// configured and the user is unknown here or comes from it.
    pub(crate) fn is_directory_login(&self, credentials: Option<&UserCredentials>) -> bool {
        self.directory.is_some()
            && credentials
                .is_none_or(|found| found.user.identity_provider == IdentityProvider::Ldap)
    }

    /// A password login through the directory: verifies the password there, creates the user
    /// at its first login, and re-syncs its roles. Unknown accounts and wrong passwords get the
    /// same answer as locally; a directory that cannot be asked is 503.
    pub(crate) async fn directory_login(
        &self,
        login: &str,
        password: &PlainPassword,
        existing: Option<UserCredentials>,
    ) -> CoreResult<User> {
        let Some(directory) = &self.directory else {
            return Err(BAD_CREDENTIALS);
        };
        // Usernames allow no LDAP filter or DN syntax (`*`, `(`, `)`, `\`, `,`, `=`).
        let Ok(username) = Username::parse(login) else {
            self.hasher.verify(password, None).await?;
            return Err(BAD_CREDENTIALS);
        };
        if let Some(found) = &existing {
            if !found.user.credentials_enabled {
                return Err(CoreError::unauthenticated(AuthFailure::NotActive));
            }
        }
        let Some(account) = directory.authenticate(&username, password).await? else {
            return Err(BAD_CREDENTIALS);
        };
        let (username, existing) = match account.username.as_deref() {
            Some(spelled) if spelled != username.as_str() => {
                let canonical = Username::parse(spelled).map_err(|_| BAD_CREDENTIALS)?;
                let found = self
                    .store
                    .credentials_by_username(canonical.as_str())
                    .await?;
                if let Some(found) = &found {
                    // The name belongs to a local user: not the directory's to log in.
                    if found.user.identity_provider != IdentityProvider::Ldap {
                        return Err(BAD_CREDENTIALS);
                    }
                    if !found.user.credentials_enabled {
                        return Err(CoreError::unauthenticated(AuthFailure::NotActive));
                    }
                }
                (canonical, found)
            }
            _ => (username, existing),
        };
        let role_ids = self.directory_roles(&account).await?;
        let user = match existing {
            Some(found) => found.user,
            None => {
                // A parallel first login may have created it: its roles are synced below.
                self.create_federated_user(
                    username.as_str(),
                    IdentityProvider::Ldap,
                    Profile::default(),
                    Tenancy::default(),
                    role_ids.clone(),
                    true,
                )
                .await
                .map_err(|error| match error {
                    CoreError::Unauthenticated(AuthFailure::Federation { .. }) => BAD_CREDENTIALS,
                    other => other,
                })?
            }
        };
        self.sync_external_roles(&user, role_ids).await?;
        Ok(user)
    }

    /// The roles a directory account maps to: roles whose `ldapGroupDn` names one of its groups,
    /// and roles named in its roles attribute. Users' own roles never match.
    async fn directory_roles(&self, account: &DirectoryAccount) -> CoreResult<Vec<Uuid>> {
        let groups: HashSet<String> = account
            .group_dns
            .iter()
            .map(|dn| normalize_dn(dn))
            .collect();
        let names: HashSet<&str> = account.role_names.iter().map(String::as_str).collect();
        self.shared_role_ids(|role| {
            role.ldap_group_dn
                .as_deref()
                .is_some_and(|dn| groups.contains(&normalize_dn(dn)))
                || names.contains(role.name.as_str())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_compare_without_case_and_blanks() {
        assert_eq!(
            normalize_dn("CN=Plant-Admins, OU=groups ,dc=example,dc = org"),
            "cn=plant-admins,ou=groups,dc=example,dc=org"
        );
    }
}
