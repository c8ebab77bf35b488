//! Role and permission operations, the permission usage reports, and the built-in roles.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::error::{CoreError, CoreResult};
use crate::model::{PermissionUsage, Role};
use crate::names::RoleName;
use crate::permission::{Context, Grant, Operation, Permission, Resource};
use crate::service::{Gatehouse, Page, PageRequest};
use crate::store::RoleQuery;
use crate::users::{reject_duplicate_grants, with_ids};

/// Name of the built-in administrator role: read and write on everything, HTTP and MQTT.
pub const ADMIN_ROLE: &str = "connectware-admin";
/// Name of the built-in role every user may be given to use the API at all: read its own
/// session and change its own password.
pub const MINIMUM_ACCESS_ROLE: &str = "minimum-access";

/// A role to create, already parsed by a dialect.
#[derive(Debug, Clone)]
pub struct RoleDraft {
    /// Unique name.
    pub name: RoleName,
    /// Shared between users.
    pub is_shared: bool,
    /// Created by the system.
    pub auto_generated: bool,
    /// Initial permissions.
    pub permissions: Vec<Grant>,
    /// LDAP group mapped to this role.
    pub ldap_group_dn: Option<String>,
    /// Comma-separated Entra ID group ids mapped to this role.
    pub ms_entra_id_group_ids: Option<String>,
}

/// Changes to a role; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct RolePatch {
    /// New name.
    pub name: Option<RoleName>,
    /// New shared flag.
    pub is_shared: Option<bool>,
    /// Replacement permissions.
    pub permissions: Option<Vec<Grant>>,
    /// New LDAP group; `Some(None)` clears it.
    pub ldap_group_dn: Option<Option<String>>,
    /// New Entra ID groups; `Some(None)` clears them.
    pub ms_entra_id_group_ids: Option<Option<String>>,
}

/// Permissions aggregated by resource and context with everyone who holds them.
#[derive(Debug, Clone)]
pub struct PermissionGroup {
    /// The resource filter.
    pub resource: String,
    /// The context.
    pub context: Context,
    /// Each role (and owning user) declaring the resource, with its operation.
    pub usages: Vec<PermissionUsage>,
}

/// Permission ids aggregated by resource, operation and context.
#[derive(Debug, Clone)]
pub struct PermissionIds {
    /// The resource filter.
    pub resource: String,
    /// The operation.
    pub operation: Operation,
    /// The context.
    pub context: Context,
    /// Ids of every permission with these three values.
    pub ids: Vec<Uuid>,
}

fn everything(context: Context) -> Grant {
    Grant {
        resource: Resource::parse("#", context)
            .unwrap_or_else(|_| unreachable!("'#' is a valid filter")),
        operation: Operation::ReadWrite,
        context,
    }
}

fn http_path(path: &str, operation: Operation) -> Grant {
    Grant {
        // Only called with the constant paths below, which are valid filters.
        resource: Resource::parse(path, Context::Http)
            .unwrap_or_else(|_| unreachable!("constant path")),
        operation,
        context: Context::Http,
    }
}

/// The built-in roles created at first start.
pub fn builtin_roles() -> Vec<Role> {
    let role = |name: &str, grants: Vec<Grant>| Role {
        id: Uuid::new_v4(),
        name: name.to_owned(),
        is_shared: true,
        auto_generated: false,
        ldap_group_dn: None,
        ms_entra_id_group_ids: None,
        owner_user_id: None,
        builtin: true,
        permissions: with_ids(grants),
    };
    vec![
        role(
            ADMIN_ROLE,
            vec![everything(Context::Http), everything(Context::Mqtt)],
        ),
        role(
            MINIMUM_ACCESS_ROLE,
            vec![
                http_path("/api/session", Operation::Read),
                http_path("/api/users/change-password", Operation::Write),
            ],
        ),
    ]
}

fn ensure_permissions_editable(role: &Role) -> CoreResult<()> {
    if role.permissions_locked() {
        return Err(CoreError::conflict(format!(
            "the permissions of the built-in role '{}' cannot be changed",
            role.name
        )));
    }
    Ok(())
}

impl Gatehouse {
    /// Creates a role.
    pub async fn create_role(&self, draft: RoleDraft) -> CoreResult<Role> {
        reject_duplicate_grants(&draft.permissions, "permissions")?;
        let role = Role {
            id: Uuid::new_v4(),
            name: draft.name.as_str().to_owned(),
            is_shared: draft.is_shared,
            auto_generated: draft.auto_generated,
            ldap_group_dn: draft.ldap_group_dn,
            ms_entra_id_group_ids: draft.ms_entra_id_group_ids,
            owner_user_id: None,
            builtin: false,
            permissions: with_ids(draft.permissions),
        };
        self.store.insert_role(role.clone()).await?;
        Ok(role)
    }

    /// One role.
    pub async fn role(&self, id: Uuid) -> CoreResult<Role> {
        self.store
            .role(id)
            .await?
            .ok_or(CoreError::not_found("role"))
    }

    /// Every role, or those with exactly the given name.
    pub async fn roles(&self, name: Option<String>) -> CoreResult<Vec<Role>> {
        let query = RoleQuery {
            names: name.map(|name| vec![name]),
            limit: u64::MAX,
            ..RoleQuery::default()
        };
        Ok(self.store.roles(&query).await?.0)
    }

    /// A page of roles with their members.
    pub async fn roles_page(
        &self,
        names: Option<Vec<String>>,
        auto_generated: Option<bool>,
        is_shared: Option<bool>,
        page: PageRequest,
    ) -> CoreResult<Page<(Role, Vec<(Uuid, String)>)>> {
        let query = RoleQuery {
            names,
            auto_generated,
            is_shared,
            offset: page.offset(),
            limit: page.rows_per_page,
        };
        let (roles, total_rows) = self.store.roles(&query).await?;
        let ids: Vec<Uuid> = roles.iter().map(|role| role.id).collect();
        let mut members: BTreeMap<Uuid, Vec<(Uuid, String)>> = self
            .store
            .members_of_roles(&ids)
            .await?
            .into_iter()
            .collect();
        let items = roles
            .into_iter()
            .map(|role| {
                let users = members.remove(&role.id).unwrap_or_default();
                (role, users)
            })
            .collect();
        Ok(Page {
            items,
            total_rows,
            request: page,
        })
    }

    /// Changes a role. Built-in roles cannot be renamed.
    pub async fn update_role(&self, id: Uuid, patch: RolePatch) -> CoreResult<Role> {
        let mut role = self.role(id).await?;
        if role.owner_user_id.is_some() {
            return Err(CoreError::conflict(
                "this role holds a user's direct permissions; change the user instead",
            ));
        }
        if patch.permissions.is_some() {
            ensure_permissions_editable(&role)?;
        }
        if let Some(name) = patch.name {
            if role.builtin && name.as_str() != role.name {
                return Err(CoreError::conflict(format!(
                    "the built-in role '{}' cannot be renamed",
                    role.name
                )));
            }
            role.name = name.as_str().to_owned();
        }
        if let Some(is_shared) = patch.is_shared {
            role.is_shared = is_shared;
        }
        if let Some(dn) = patch.ldap_group_dn {
            role.ldap_group_dn = dn;
        }
        if let Some(groups) = patch.ms_entra_id_group_ids {
            role.ms_entra_id_group_ids = groups;
        }
        let replace = patch.permissions.is_some();
        if let Some(grants) = patch.permissions {
            reject_duplicate_grants(&grants, "permissions")?;
            role.permissions = with_ids(grants);
        }
        self.store.update_role(role, replace).await?;
        self.role(id).await
    }

    /// Deletes a role (and takes it from every user). Built-in roles and users' own roles
    /// cannot be deleted this way.
    pub async fn delete_role(&self, id: Uuid) -> CoreResult<()> {
        let role = self.role(id).await?;
        if role.builtin {
            return Err(CoreError::conflict(format!(
                "the built-in role '{}' cannot be deleted",
                role.name
            )));
        }
        if role.owner_user_id.is_some() {
            return Err(CoreError::conflict(
                "this role holds a user's direct permissions; change the user instead",
            ));
        }
        if self.store.delete_role(id).await? {
            Ok(())
        } else {
            Err(CoreError::not_found("role"))
        }
    }

    /// Adds a permission to a role; `Conflict` if the role already declares that resource in
    /// that context.
    pub async fn add_permission(&self, role_id: Uuid, grant: Grant) -> CoreResult<Permission> {
        ensure_permissions_editable(&self.role(role_id).await?)?;
        let permission = Permission {
            id: Uuid::new_v4(),
            grant,
        };
        self.store
            .insert_permission(role_id, permission.clone())
            .await?;
        Ok(permission)
    }

    /// One permission of a role.
    pub async fn permission(&self, role_id: Uuid, permission_id: Uuid) -> CoreResult<Permission> {
        self.role(role_id)
            .await?
            .permissions
            .into_iter()
            .find(|permission| permission.id == permission_id)
            .ok_or(CoreError::not_found("permission"))
    }

    /// Changes a permission of a role.
    pub async fn update_permission(
        &self,
        role_id: Uuid,
        permission: Permission,
    ) -> CoreResult<Permission> {
        ensure_permissions_editable(&self.role(role_id).await?)?;
        if self
            .store
            .update_permission(role_id, permission.clone())
            .await?
        {
            Ok(permission)
        } else {
            Err(CoreError::not_found("permission"))
        }
    }

    /// Deletes a permission of a role.
    pub async fn delete_permission(&self, role_id: Uuid, permission_id: Uuid) -> CoreResult<()> {
        ensure_permissions_editable(&self.role(role_id).await?)?;
        if self.store.delete_permission(role_id, permission_id).await? {
            Ok(())
        } else {
            Err(CoreError::not_found("permission"))
        }
    }

    /// Permissions grouped by resource and context with their usage, ordered by resource then
    /// context; `ids` keeps only those permissions.
    pub async fn permissions_page(
        &self,
        ids: Option<Vec<Uuid>>,
        page: PageRequest,
    ) -> CoreResult<Page<PermissionGroup>> {
        let mut groups: BTreeMap<(String, &'static str), PermissionGroup> = BTreeMap::new();
        for usage in self.store.permission_usages().await? {
            if ids
                .as_ref()
                .is_some_and(|ids| !ids.contains(&usage.permission.id))
            {
                continue;
            }
            let grant = &usage.permission.grant;
            groups
                .entry((grant.resource.as_str().to_owned(), grant.context.as_str()))
                .or_insert_with(|| PermissionGroup {
                    resource: grant.resource.as_str().to_owned(),
                    context: grant.context,
                    usages: Vec::new(),
                })
                .usages
                .push(usage);
        }
        Ok(Page::from_all(groups.into_values().collect(), page))
    }

    /// Permission ids grouped by resource, operation and context.
    pub async fn permission_ids(&self) -> CoreResult<Vec<PermissionIds>> {
        let mut groups: BTreeMap<(String, &'static str, &'static str), PermissionIds> =
            BTreeMap::new();
        for usage in self.store.permission_usages().await? {
            let grant = usage.permission.grant;
            groups
                .entry((
                    grant.resource.as_str().to_owned(),
                    grant.operation.as_str(),
                    grant.context.as_str(),
                ))
                .or_insert_with(|| PermissionIds {
                    resource: grant.resource.as_str().to_owned(),
                    operation: grant.operation,
                    context: grant.context,
                    ids: Vec::new(),
                })
                .ids
                .push(usage.permission.id);
        }
        Ok(groups.into_values().collect())
    }
}
