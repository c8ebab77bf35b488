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
use crate::model::{
    GrantMethod, GrantType, IdentityProvider, Profile, Tenancy, User, UserCredentials,
};
use crate::names::Username;
use crate::password::PlainPassword;
use crate::store::{NewUser, RoleQuery, UserUpdate};
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
            None => match self
                .create_directory_user(&username, role_ids.clone())
                .await
            {
                Ok(user) => return Ok(user),
                // A parallel first login created it: sync its roles below.
                Err(CoreError::Conflict { .. }) => {
                    self.store
                        .credentials_by_username(username.as_str())
                        .await?
                        .filter(|found| found.user.identity_provider == IdentityProvider::Ldap)
                        .ok_or(BAD_CREDENTIALS)?
                        .user
                }
                Err(other) => return Err(other),
            },
        };
        // Written only when they changed: every write of identity data empties the broker
        // caches.
        let mut held: Vec<Uuid> = self
            .store
            .roles_of_users(&[user.id])
            .await?
            .into_iter()
            .flat_map(|(_, roles)| roles)
            .filter(|role| role.owner_user_id.is_none())
            .map(|role| role.id)
            .collect();
        held.sort();
        if held != role_ids {
            self.store
                .update_user(
                    user.id,
                    UserUpdate {
                        role_ids: Some(role_ids),
                        ..UserUpdate::default()
                    },
                )
                .await?;
        }
        Ok(user)
    }

    async fn create_directory_user(
        &self,
        username: &Username,
        role_ids: Vec<Uuid>,
    ) -> CoreResult<User> {
        let mut user = User::local(
            username.as_str().to_owned(),
            self.clock.now_millis(),
            Profile::default(),
            Tenancy::default(),
            true,
        );
        user.auto_generated = true;
        user.identity_provider = IdentityProvider::Ldap;
        user.grant_types = vec![GrantType {
            method: GrantMethod::Password,
            is_required: false,
        }];
        self.store
            .insert_users(vec![NewUser {
                user: user.clone(),
                password_hash: None,
                own_role: None,
                role_ids,
                certificates: Vec::new(),
            }])
            .await?;
        tracing::info!(user_id = %user.id, username = %user.username, "user created from LDAP");
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
        let (roles, _) = self
            .store
            .roles(&RoleQuery {
                limit: u64::MAX,
                ..RoleQuery::default()
            })
            .await?;
        let mut ids: Vec<Uuid> = roles
            .iter()
            .filter(|role| role.owner_user_id.is_none())
            .filter(|role| {
                role.ldap_group_dn
                    .as_deref()
                    .is_some_and(|dn| groups.contains(&normalize_dn(dn)))
                    || names.contains(role.name.as_str())
            })
            .map(|role| role.id)
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
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
