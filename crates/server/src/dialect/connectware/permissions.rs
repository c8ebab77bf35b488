//! Permission reports (C27, C28): usage by roles and users, and ids by value.

use axum::extract::State;
use axum::Json;
use gatehouse_core::error::CoreError;
use gatehouse_core::permission::{Context, Operation};
use gatehouse_core::service::PageRequest;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::caller::Caller;
use super::error::ApiError;
use super::extract::Query;
use super::wire::{split_list, PaginationOut};
use crate::AppState;

/// Query of C27.
#[derive(Debug, Deserialize)]
pub struct PermissionsPageQuery {
    #[serde(default)]
    ids: Vec<String>,
    #[serde(rename = "rowsPerPage", default)]
    rows_per_page: Option<u64>,
    #[serde(rename = "pageNumber", default)]
    page_number: Option<u64>,
}

/// One use of a permission in C27. `isRoleShared` is a string, as in the seed; `username` and
/// `userId` are set when the declaring role is a user's own role.
#[derive(Debug, Serialize)]
pub struct UsageOut {
    #[serde(rename = "roleName")]
    role_name: String,
    #[serde(rename = "roleId")]
    role_id: String,
    #[serde(rename = "isRoleShared")]
    is_role_shared: String,
    username: Option<String>,
    #[serde(rename = "userId")]
    user_id: Option<String>,
    operation: Operation,
    /// The id of this permission (not in the seed; lets clients act on it).
    #[serde(rename = "permissionId")]
    permission_id: String,
}

/// A resource in C27.
#[derive(Debug, Serialize)]
pub struct PermissionGroupOut {
    resource: String,
    context: Context,
    usage: Vec<UsageOut>,
}

/// Answer of C27.
#[derive(Debug, Serialize)]
pub struct PermissionsPageOut {
    permissions: Vec<PermissionGroupOut>,
    pagination: PaginationOut,
}

/// C27 `GET /api/permissions/page`.
pub async fn page(
    State(state): State<AppState>,
    _caller: Caller,
    Query(query): Query<PermissionsPageQuery>,
) -> Result<Json<PermissionsPageOut>, ApiError> {
    let request = PageRequest::new(query.page_number, query.rows_per_page)?;
    let ids = split_list(query.ids)
        .map(|ids| {
            ids.iter()
                .map(|id| {
                    Uuid::parse_str(id).map_err(|_| {
                        CoreError::invalid("ids", format!("'{id}' is not a permission id (a UUID)"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let result = state.core.permissions_page(ids, request).await?;
    let permissions = result
        .items
        .iter()
        .map(|group| PermissionGroupOut {
            resource: group.resource.clone(),
            context: group.context,
            usage: group
                .usages
                .iter()
                .map(|usage| UsageOut {
                    role_name: usage.role_name.clone(),
                    role_id: usage.role_id.to_string(),
                    is_role_shared: usage.role_is_shared.to_string(),
                    username: usage.owner.as_ref().map(|(_, name)| name.clone()),
                    user_id: usage.owner.as_ref().map(|(id, _)| id.to_string()),
                    operation: usage.permission.grant.operation,
                    permission_id: usage.permission.id.to_string(),
                })
                .collect(),
        })
        .collect();
    Ok(Json(PermissionsPageOut {
        permissions,
        pagination: PaginationOut::from(&result),
    }))
}

/// An entry of C28.
#[derive(Debug, Serialize)]
pub struct PermissionIdsOut {
    resource: String,
    operation: Operation,
    context: Context,
    ids: Vec<String>,
}

/// C28 `GET /api/permissions/ids`.
pub async fn ids(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Vec<PermissionIdsOut>>, ApiError> {
    let groups = state.core.permission_ids().await?;
    Ok(Json(
        groups
            .into_iter()
            .map(|group| PermissionIdsOut {
                resource: group.resource,
                operation: group.operation,
                context: group.context,
                ids: group.ids.iter().map(Uuid::to_string).collect(),
            })
            .collect(),
    ))
}
