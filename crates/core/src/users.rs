//! User operations: create, read, list, update, delete; roles, certificates and tokens of a user.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use crate::error::{CoreError, CoreResult};
use crate::model::{
    BoundCertificate, GrantMethod, GrantType, IdentityProvider, Profile, Role, Session, Tenancy,
    User,
};
use crate::names::Username;
use crate::password::PlainPassword;
use crate::permission::{Grant, Permission};
use crate::service::{Gatehouse, Page, PageRequest};
use crate::store::{NewUser, UserQuery, UserUpdate};
use crate::topic::TopicName;

/// A user to create, already parsed by a dialect.
#[derive(Debug, Clone)]
pub struct UserDraft {
    /// Login name.
    pub username: Username,
    /// Initial password; required when the password grant is allowed.
    pub password: Option<PlainPassword>,
    /// Where the identity comes from.
    pub identity_provider: IdentityProvider,
    /// Allowed methods; `None` means password only.
    pub grant_types: Option<Vec<GrantType>>,
    /// Created by the system.
    pub auto_generated: bool,
    /// MQTT publish prefix.
    pub mqtt_publish_prefix: Option<TopicName>,
    /// Certificates to bind.
    pub certificates: Vec<BoundCertificate>,
    /// Direct permissions, stored in the user's own role.
    pub initial_permissions: Vec<Grant>,
    /// Roles to give.
    pub role_ids: Vec<Uuid>,
    /// Whether the user must enrol MFA.
    pub enforce_mfa_enrollment: bool,
}

/// Changes to a user; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    /// New login name.
    pub username: Option<Username>,
    /// New password (an administrator's reset; the policy applies).
    pub password: Option<PlainPassword>,
    /// New prefix; `Some(None)` removes it.
    pub mqtt_publish_prefix: Option<Option<TopicName>>,
    /// New identity provider.
    pub identity_provider: Option<IdentityProvider>,
    /// New grant types.
    pub grant_types: Option<Vec<GrantType>>,
    /// Replacement for the roles held (the own role is kept).
    pub role_ids: Option<Vec<Uuid>>,
    /// Replacement for the direct permissions.
    pub permissions: Option<Vec<Grant>>,
    /// Clear the user's MFA enrolment.
    pub disable_mfa: bool,
    /// New enforcement flag.
    pub enforce_mfa_enrollment: Option<bool>,
}

/// A user with everything a dialect shows about it.
#[derive(Debug, Clone)]
pub struct UserView {
    /// The user.
    pub user: User,
    /// Roles held, own role included, with permissions.
    pub roles: Vec<Role>,
    /// Bound certificates.
    pub certificates: Vec<BoundCertificate>,
    /// Live sessions (tokens).
    pub sessions: Vec<Session>,
}

/// The fingerprint Gatehouse binds certificates by: lower-case hex SHA-256 of the DER encoding,
/// in the form [`parse_fingerprint`] stores.
pub fn certificate_fingerprint(der: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(der))
}

/// Normalises a certificate fingerprint: hex SHA-1 (40) or SHA-256 (64 digits), `:` separators
/// allowed, stored in lower case without separators.
pub fn parse_fingerprint(text: &str) -> CoreResult<String> {
    let hex: String = text
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if !(hex.len() == 40 || hex.len() == 64) || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(CoreError::invalid(
            "fingerprint",
            "must be a hex SHA-256 (64 digits) or SHA-1 (40 digits) fingerprint",
        ));
    }
    Ok(hex)
}

/// A grant as comparable text.
fn grant_key(grant: &Grant) -> String {
    format!(
        "{}\u{0}{}\u{0}{}",
        grant.context,
        grant.operation,
        grant.resource.as_str()
    )
}

/// Rejects two grants for the same resource and context in one list (a role declares each once).
pub(crate) fn reject_duplicate_grants(grants: &[Grant], field: &'static str) -> CoreResult<()> {
    let mut seen = HashSet::new();
    for grant in grants {
        if !seen.insert((grant.resource.as_str(), grant.context)) {
            return Err(CoreError::invalid(
                field,
                format!(
                    "declares resource '{}' in context {} twice",
                    grant.resource.as_str(),
                    grant.context
                ),
            ));
        }
    }
    Ok(())
}

pub(crate) fn with_ids(grants: Vec<Grant>) -> Vec<Permission> {
    grants
        .into_iter()
        .map(|grant| Permission {
            id: Uuid::new_v4(),
            grant,
        })
        .collect()
}

fn own_role(user: &User, grants: Vec<Grant>) -> Role {
    Role {
        id: Uuid::new_v4(),
        name: user.username.clone(),
        is_shared: false,
        auto_generated: true,
        ldap_group_dn: None,
        ms_entra_id_group_ids: None,
        owner_user_id: Some(user.id),
        builtin: false,
        permissions: with_ids(grants),
    }
}

fn check_grant_types(grant_types: &[GrantType]) -> CoreResult<()> {
    if grant_types.is_empty() {
        return Err(CoreError::invalid(
            "grantTypes",
            "must name at least one method",
        ));
    }
    let mut seen = HashSet::new();
    if !grant_types.iter().all(|grant| seen.insert(grant.method)) {
        return Err(CoreError::invalid("grantTypes", "names a method twice"));
    }
    Ok(())
}

impl Gatehouse {
    /// Creates users atomically (all or none) and returns their views.
    pub async fn create_users(&self, drafts: Vec<UserDraft>) -> CoreResult<Vec<UserView>> {
        let mut names = HashSet::new();
        let mut new_users = Vec::with_capacity(drafts.len());
        for draft in drafts {
            if !names.insert(draft.username.as_str().to_owned()) {
                return Err(CoreError::conflict(format!(
                    "username '{}' appears twice in the request",
                    draft.username
                )));
            }
            new_users.push(self.prepare_new_user(draft).await?);
        }
        let ids: Vec<Uuid> = new_users.iter().map(|new| new.user.id).collect();
        self.store.insert_users(new_users).await?;
        self.user_views(&ids).await
    }

    pub(crate) async fn prepare_new_user(&self, draft: UserDraft) -> CoreResult<NewUser> {
        let grant_types = draft.grant_types.unwrap_or_else(|| {
            vec![GrantType {
                method: GrantMethod::Password,
                is_required: false,
            }]
        });
        check_grant_types(&grant_types)?;
        reject_duplicate_grants(&draft.initial_permissions, "initialPermissions")?;
        let password_hash = match &draft.password {
            Some(password) => {
                self.password_policy().await?.check(password, "password")?;
                Some(self.hasher.hash(password).await?)
            }
            None => None,
        };
        let user = User {
            id: Uuid::new_v4(),
            username: draft.username.as_str().to_owned(),
            auto_generated: draft.auto_generated,
            mqtt_publish_prefix: draft.mqtt_publish_prefix.map(|p| p.as_str().to_owned()),
            identity_provider: draft.identity_provider,
            grant_types,
            enforce_mfa_enrollment: draft.enforce_mfa_enrollment,
            mfa_enrolled: false,
            created_at: self.clock.now_millis(),
            profile: Profile::default(),
            tenancy: Tenancy::default(),
            credentials_enabled: true,
        };
        let own = (!draft.initial_permissions.is_empty())
            .then(|| own_role(&user, draft.initial_permissions));
        let mut role_ids = draft.role_ids;
        role_ids.sort();
        role_ids.dedup();
        self.ensure_assignable(user.id, &role_ids, "roles").await?;
        Ok(NewUser {
            user,
            password_hash,
            own_role: own,
            role_ids,
            certificates: draft.certificates,
        })
    }

    /// One user's view; `NotFound` if it does not exist.
    pub async fn user_view(&self, id: Uuid) -> CoreResult<UserView> {
        self.user_views(&[id])
            .await?
            .pop()
            .ok_or(CoreError::not_found("user"))
    }

    /// Views of the given users, in the given order; missing ids are skipped.
    pub async fn user_views(&self, ids: &[Uuid]) -> CoreResult<Vec<UserView>> {
        let mut found: HashMap<Uuid, User> = self
            .store
            .users_by_ids(ids)
            .await?
            .into_iter()
            .map(|user| (user.id, user))
            .collect();
        let users = ids.iter().filter_map(|id| found.remove(id)).collect();
        self.decorate(users).await
    }

    async fn decorate(&self, users: Vec<User>) -> CoreResult<Vec<UserView>> {
        let ids: Vec<Uuid> = users.iter().map(|user| user.id).collect();
        let mut roles: HashMap<Uuid, Vec<Role>> =
            self.store.roles_of_users(&ids).await?.into_iter().collect();
        let mut certificates: HashMap<Uuid, Vec<BoundCertificate>> = self
            .store
            .certificates_of_users(&ids)
            .await?
            .into_iter()
            .collect();
        let mut sessions: HashMap<Uuid, Vec<Session>> = self
            .store
            .sessions_of_users(&ids, self.clock.now_millis())
            .await?
            .into_iter()
            .collect();
        Ok(users
            .into_iter()
            .map(|user| UserView {
                roles: roles.remove(&user.id).unwrap_or_default(),
                certificates: certificates.remove(&user.id).unwrap_or_default(),
                sessions: sessions.remove(&user.id).unwrap_or_default(),
                user,
            })
            .collect())
    }

    /// A page of users.
    pub async fn list_users(
        &self,
        usernames: Option<Vec<String>>,
        exclude_auto_generated: bool,
        page: PageRequest,
    ) -> CoreResult<Page<UserView>> {
        // Counting every user costs more than the page itself on a large table; the count of
        // an unfiltered listing is kept until identity data changes (lists of names are
        // cheap to count), like the other caches (`broker.cache_ttl_secs = 0` turns it off).
        let counted = usernames.is_none() && self.settings.broker.caching();
        let generation = self.identity_generation();
        let known_total = counted
            .then(|| self.user_counts.get(exclude_auto_generated, generation))
            .flatten();
        let query = UserQuery {
            usernames,
            exclude_auto_generated,
            offset: page.offset(),
            limit: page.rows_per_page,
            known_total,
        };
        let (users, total_rows) = self.store.users(&query).await?;
        if counted && known_total.is_none() {
            self.user_counts
                .put(exclude_auto_generated, generation, total_rows);
        }
        Ok(Page {
            items: self.decorate(users).await?,
            total_rows,
            request: page,
        })
    }

    /// Applies an administrator's changes to a user.
    /// `caller` is the user making the change: it may not change its own roles or direct
    /// permissions (another administrator must), so that nobody locks themselves out.
    pub async fn update_user(
        &self,
        caller: Uuid,
        id: Uuid,
        patch: UserPatch,
    ) -> CoreResult<UserView> {
        let current = self
            .store
            .user(id)
            .await?
            .ok_or(CoreError::not_found("user"))?;
        if caller == id {
            self.ensure_own_access_unchanged(id, &patch).await?;
        }
        let mut user = current.clone();
        if let Some(username) = &patch.username {
            user.username = username.as_str().to_owned();
        }
        if let Some(prefix) = patch.mqtt_publish_prefix {
            user.mqtt_publish_prefix = prefix.map(|p| p.as_str().to_owned());
        }
        if let Some(provider) = patch.identity_provider {
            user.identity_provider = provider;
        }
        if let Some(grant_types) = patch.grant_types {
            check_grant_types(&grant_types)?;
            user.grant_types = grant_types;
        }
        if patch.disable_mfa {
            user.mfa_enrolled = false;
        }
        if let Some(enforce) = patch.enforce_mfa_enrollment {
            user.enforce_mfa_enrollment = enforce;
        }
        let password_hash = match &patch.password {
            Some(password) => {
                self.password_policy().await?.check(password, "password")?;
                Some(self.hasher.hash(password).await?)
            }
            None => None,
        };
        let own_role = match patch.permissions {
            Some(grants) => {
                reject_duplicate_grants(&grants, "permissions")?;
                Some(own_role(&user, grants))
            }
            None => None,
        };
        let role_ids = patch.role_ids.map(|mut ids| {
            ids.sort();
            ids.dedup();
            ids
        });
        if let Some(ids) = &role_ids {
            self.ensure_assignable(id, ids, "roles").await?;
        }
        let password_changed_at = password_hash.as_ref().map(|_| self.clock.now_millis());
        let update = UserUpdate {
            user: (user != current).then_some(user),
            password_hash,
            password_changed_at,
            role_ids,
            own_role,
        };
        self.store.update_user(id, update).await?;
        if patch.disable_mfa {
            self.remove_mfa_factors(id).await?;
        }
        self.user_view(id).await
    }

    /// Deletes a user. A caller cannot delete itself, so an administrator cannot lock itself out
    /// by accident.
    pub async fn delete_user(&self, caller: Uuid, id: Uuid) -> CoreResult<()> {
        if caller == id {
            return Err(CoreError::invalid("id", "a user cannot delete itself"));
        }
        if self.store.delete_user(id).await? {
            Ok(())
        } else {
            Err(CoreError::not_found("user"))
        }
    }

    /// Refuses a self-update that would change the caller's roles or direct permissions.
    /// Sending them unchanged (as a UI that sends the whole user does) is fine.
    async fn ensure_own_access_unchanged(&self, id: Uuid, patch: &UserPatch) -> CoreResult<()> {
        if patch.role_ids.is_none() && patch.permissions.is_none() {
            return Ok(());
        }
        let roles = self
            .store
            .roles_of_users(&[id])
            .await?
            .pop()
            .map(|(_, roles)| roles)
            .unwrap_or_default();
        let mut shared_now: Vec<Uuid> = roles
            .iter()
            .filter(|role| role.owner_user_id != Some(id))
            .map(|role| role.id)
            .collect();
        shared_now.sort();
        let mut own_now: Vec<String> = roles
            .iter()
            .filter(|role| role.owner_user_id == Some(id))
            .flat_map(|role| role.permissions.iter().map(|p| grant_key(&p.grant)))
            .collect();
        own_now.sort();
        if let Some(requested) = &patch.role_ids {
            let mut requested = requested.clone();
            requested.sort();
            requested.dedup();
            if requested != shared_now {
                return Err(CoreError::invalid(
                    "roles",
                    "a user cannot change its own roles; another administrator must",
                ));
            }
        }
        if let Some(requested) = &patch.permissions {
            let mut requested: Vec<String> = requested.iter().map(grant_key).collect();
            requested.sort();
            if requested != own_now {
                return Err(CoreError::invalid(
                    "permissions",
                    "a user cannot change its own permissions; another administrator must",
                ));
            }
        }
        Ok(())
    }

    /// Gives a role to a user.
    pub async fn add_user_role(&self, user_id: Uuid, role_id: Uuid) -> CoreResult<()> {
        self.store
            .user(user_id)
            .await?
            .ok_or(CoreError::not_found("user"))?;
        self.ensure_assignable(user_id, &[role_id], "roleId")
            .await?;
        self.store.add_user_role(user_id, role_id).await
    }

    /// A user's own role (its direct permissions) belongs to that user alone; it cannot be given
    /// to anyone else. Unknown ids pass here; the store refuses them atomically.
    async fn ensure_assignable(
        &self,
        user_id: Uuid,
        role_ids: &[Uuid],
        field: &'static str,
    ) -> CoreResult<()> {
        for role_id in role_ids {
            if let Some(role) = self.store.role(*role_id).await? {
                if role.owner_user_id.is_some_and(|owner| owner != user_id) {
                    return Err(CoreError::invalid(
                        field,
                        format!("role {role_id} holds another user's direct permissions"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Takes a role from a user (not the caller's own: another administrator must). A user's
    /// own role (its direct permissions) cannot be removed this way; change the user's
    /// permissions instead.
    pub async fn remove_user_role(
        &self,
        caller: Uuid,
        user_id: Uuid,
        role_id: Uuid,
    ) -> CoreResult<()> {
        if caller == user_id {
            return Err(CoreError::invalid(
                "roleId",
                "a user cannot remove its own roles; another administrator must",
            ));
        }
        self.store
            .user(user_id)
            .await?
            .ok_or(CoreError::not_found("user"))?;
        let role = self
            .store
            .role(role_id)
            .await?
            .ok_or(CoreError::not_found("role"))?;
        if role.owner_user_id == Some(user_id) {
            return Err(CoreError::invalid(
                "roleId",
                "this is the user's own role; change the user's permissions instead",
            ));
        }
        if self.store.remove_user_role(user_id, role_id).await? {
            Ok(())
        } else {
            Err(CoreError::not_found("role assignment"))
        }
    }

    /// Binds a certificate fingerprint to a user.
    pub async fn add_certificate(&self, user_id: Uuid, fingerprint: &str) -> CoreResult<()> {
        let fingerprint = parse_fingerprint(fingerprint)?;
        self.store
            .user(user_id)
            .await?
            .ok_or(CoreError::not_found("user"))?;
        let certificate = BoundCertificate {
            fingerprint,
            created_at: self.clock.now_millis(),
            expires_at: None,
        };
        self.store.add_certificate(user_id, certificate).await
    }

    /// Unbinds a certificate fingerprint from a user.
    pub async fn remove_certificate(&self, user_id: Uuid, fingerprint: &str) -> CoreResult<()> {
        let fingerprint = parse_fingerprint(fingerprint)?;
        self.store
            .user(user_id)
            .await?
            .ok_or(CoreError::not_found("user"))?;
        if self.store.remove_certificate(user_id, &fingerprint).await? {
            Ok(())
        } else {
            Err(CoreError::not_found("certificate"))
        }
    }

    /// The user's live tokens.
    pub async fn tokens_of_user(&self, user_id: Uuid) -> CoreResult<Vec<Session>> {
        self.store
            .user(user_id)
            .await?
            .ok_or(CoreError::not_found("user"))?;
        Ok(self
            .store
            .sessions_of_users(&[user_id], self.clock.now_millis())
            .await?
            .pop()
            .map(|(_, sessions)| sessions)
            .unwrap_or_default())
    }

    /// Revokes one of the user's tokens (by session id or fingerprint) or all of them.
    pub async fn revoke_tokens(&self, user_id: Uuid, key: Option<&str>) -> CoreResult<u64> {
        self.store
            .user(user_id)
            .await?
            .ok_or(CoreError::not_found("user"))?;
        let revoked = self.store.revoke_sessions(user_id, key).await?;
        if key.is_some() && revoked == 0 {
            return Err(CoreError::not_found("token"));
        }
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_normalised() {
        let sha256 = "AB:".repeat(31) + "AB";
        assert_eq!(parse_fingerprint(&sha256).unwrap(), "ab".repeat(32));
        assert!(parse_fingerprint("xyz").is_err());
        assert!(parse_fingerprint(&"a".repeat(63)).is_err());
        assert_eq!(parse_fingerprint(&"F".repeat(40)).unwrap(), "f".repeat(40));
    }
}

/// The counts of unfiltered user listings (all users, users not created by the system), each
/// with the generation of identity data it was counted under: `listUsers` on a million users
/// reads only its page while nothing changes.
#[derive(Default)]
pub(crate) struct UserCounts(std::sync::Mutex<[Option<(u64, u64)>; 2]>);

impl UserCounts {
    /// The count for the filter, if counted under `generation`.
    fn get(&self, exclude_auto_generated: bool, generation: u64) -> Option<u64> {
        let counts = self.0.lock().ok()?;
        counts[usize::from(exclude_auto_generated)]
            .filter(|(counted_under, _)| *counted_under == generation)
            .map(|(_, total)| total)
    }

    /// Remembers the count for the filter, counted under `generation`.
    fn put(&self, exclude_auto_generated: bool, generation: u64, total: u64) {
        if let Ok(mut counts) = self.0.lock() {
            counts[usize::from(exclude_auto_generated)] = Some((generation, total));
        }
    }
}
