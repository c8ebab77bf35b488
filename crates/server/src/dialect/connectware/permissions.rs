//! Permission reports (C27, C28): usage by roles and users, and ids by value.

use axum::extract::State;
use axum::Json;
use gatehouse_core::error::CoreError;
use gatehouse_core::permission::{Context, Operation};
use gatehouse_core::service::PageRequest;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::caller::Caller;
use super::error::ApiError;
use super::extract::Query;
use super::schema::{
    BadRequest, ContextSchema, Forbidden, InternalError, OperationSchema, ServiceUnavailable,
    Unauthorized,
};
use super::wire::{query_number, split_list, PaginationOut};
use crate::AppState;

/// Query of C27.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PermissionsPageQuery {
    /// Permission ids to keep; repeated and/or comma-separated; empty means no filter.
    #[serde(default)]
    #[param(value_type = Vec<Uuid>)]
    ids: Vec<String>,
    /// Rows per page, 1–1000 (default 10).
    #[serde(rename = "rowsPerPage", default, deserialize_with = "query_number")]
    #[param(minimum = 1, maximum = 1000)]
    rows_per_page: Option<u64>,
    /// Page number, from 1 (default 1); at most `i64::MAX / 1000`.
    #[serde(rename = "pageNumber", default, deserialize_with = "query_number")]
    #[param(minimum = 1, maximum = 9_223_372_036_854_775_u64)]
    page_number: Option<u64>,
}

/// One use of a permission in C27. `isRoleShared` is a string, as in the seed; `username` and
/// `userId` are set when the declaring role is a user's own role.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PermissionUsage)]
pub struct UsageOut {
    /// The declaring role's name.
    #[serde(rename = "roleName")]
    role_name: String,
    /// The declaring role's id.
    #[serde(rename = "roleId")]
    #[schema(format = Uuid)]
    role_id: String,
    /// `"true"` or `"false"` (a string, as in the seed).
    #[serde(rename = "isRoleShared")]
    #[schema(pattern = "^(true|false)$")]
    is_role_shared: String,
    /// The owning user's name, when the role is a user's own role.
    #[schema(required = true)]
    username: Option<String>,
    /// The owning user's id, when the role is a user's own role.
    #[serde(rename = "userId")]
    #[schema(required = true, format = Uuid)]
    user_id: Option<String>,
    /// The operation this role grants.
    #[schema(value_type = OperationSchema)]
    operation: Operation,
    /// The id of this permission (not in the seed; lets clients act on it).
    #[serde(rename = "permissionId")]
    #[schema(format = Uuid)]
    permission_id: String,
}

/// A resource in C27.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PermissionGroup)]
pub struct PermissionGroupOut {
    /// Topic or path filter.
    resource: String,
    /// Context.
    #[schema(value_type = ContextSchema)]
    context: Context,
    /// Each role declaring the resource.
    usage: Vec<UsageOut>,
}

/// Answer of C27.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PermissionsPage)]
pub struct PermissionsPageOut {
    /// This page's permission groups, ordered by resource then context.
    permissions: Vec<PermissionGroupOut>,
    /// Where this page lies (counting groups).
    pagination: PaginationOut,
}

/// C27 `GET /api/permissions/page`.
#[utoipa::path(
    get,
    path = "/api/permissions/page",
    operation_id = "listPermissionsPage",
    tag = "connectware",
    summary = "Permission usage by roles and users, paged (C27)",
    params(PermissionsPageQuery),
    security(("bearer" = []), ("apiToken" = [])),
    responses(
        (status = 200, description = "A page of permission groups", body = PermissionsPageOut),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn page(
    State(state): State<AppState>,
    _caller: Caller,
    Query(query): Query<PermissionsPageQuery>,
) -> Result<Json<PermissionsPageOut>, ApiError> {
    let request = PageRequest::new(query.page_number, query.rows_per_page)?;
    let ids = split_list("ids", query.ids)?
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
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PermissionIds)]
pub struct PermissionIdsOut {
    /// Topic or path filter.
    resource: String,
    /// Operation.
    #[schema(value_type = OperationSchema)]
    operation: Operation,
    /// Context.
    #[schema(value_type = ContextSchema)]
    context: Context,
    /// Ids of every permission with these values.
    #[schema(value_type = Vec<Uuid>)]
    ids: Vec<String>,
}

/// C28 `GET /api/permissions/ids`.
#[utoipa::path(
    get,
    path = "/api/permissions/ids",
    operation_id = "listPermissionIds",
    tag = "connectware",
    summary = "Permission ids grouped by value (C28)",
    security(("bearer" = []), ("apiToken" = [])),
    responses(
        (status = 200, description = "One entry per distinct (resource, operation, context)", body = Vec<PermissionIdsOut>),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
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
