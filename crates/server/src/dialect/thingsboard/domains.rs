//! Domains (T49–T53): the hosts whose login page offers OAuth2 clients. System
//! administrators only.

use axum::extract::State;
use axum::Json;
use gatehouse_core::model::Authority;
use gatehouse_core::oauth2::{DomainQuery, DomainSort};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::error::{ErrorBody, TbError, TbResult};
use super::extract::{json_object, TbBody, TbCaller, TbPath, TbQuery};
use super::oauth2::uuid_list;
use super::oauth2_wire::{DomainInfoPageWire, DomainInfoWire, DomainWire};
use super::paging;
use super::TAG;
use crate::AppState;

/// Entity name in not-found messages.
const DOMAIN: &str = "Domain";

/// Path of a domain.
#[derive(Debug, Deserialize, IntoParams)]
pub struct DomainPath {
    /// The domain's id.
    id: Uuid,
}

/// Query of T49.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct SaveQuery {
    /// Clients the domain offers (repeated or comma-separated ids); when given and not
    /// empty they replace the domain's clients, else the clients stay as they are.
    #[serde(default)]
    #[param(value_type = Option<Vec<String>>)]
    oauth2_client_ids: Vec<String>,
}

/// Query of T51.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct InfosQuery {
    /// Entries per page (1–1000).
    page_size: u64,
    /// Page number, from 0.
    page: u64,
    /// Only domains whose name contains this text (ignoring case).
    #[serde(default)]
    text_search: Option<String>,
    /// `createdTime` (default) or `name`.
    #[serde(default)]
    sort_property: Option<String>,
    /// `ASC` (default) or `DESC`.
    #[serde(default)]
    sort_order: Option<String>,
}

/// T49: create a domain (no `id`) or update one, optionally replacing its clients.
#[utoipa::path(
    post, path = "/api/domain", tag = TAG, operation_id = "saveDomain",
    security(("xAuthorization" = []), ("bearer" = [])),
    params(SaveQuery),
    request_body = DomainWire,
    responses(
        (status = 200, description = "The domain", body = DomainWire),
        (status = 400, description = "Invalid or taken name (`Domain with such name and scheme already exists!`), unknown client ids (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not a system administrator (20)", body = ErrorBody),
        (status = 404, description = "No such domain to update (32)", body = ErrorBody),
    )
)]
pub async fn save(
    State(state): State<AppState>,
    caller: TbCaller,
    TbQuery(query): TbQuery<SaveQuery>,
    TbBody(body): TbBody,
) -> TbResult<Json<DomainWire>> {
    caller.require(&[Authority::SysAdmin])?;
    let client_ids = uuid_list(&query.oauth2_client_ids, "oauth2ClientIds")?;
    let request: DomainWire = json_object(&body)?;
    let id = request.id();
    let saved = state
        .core
        .save_domain(&caller.0.user, id, request.to_core(), &client_ids)
        .await
        .map_err(|error| TbError::from(error).naming(DOMAIN, id.unwrap_or_default()))?;
    Ok(Json(DomainWire::of(&saved)))
}

/// T50: delete a domain (its clients stay).
#[utoipa::path(
    delete, path = "/api/domain/{id}", tag = TAG, operation_id = "deleteDomain",
    security(("xAuthorization" = []), ("bearer" = [])),
    params(DomainPath),
    responses(
        (status = 200, description = "Deleted (empty body)"),
        (status = 400, description = "Malformed id (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not a system administrator (20)", body = ErrorBody),
        (status = 404, description = "No such domain (32)", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: TbCaller,
    TbPath(path): TbPath<DomainPath>,
) -> TbResult<()> {
    caller.require(&[Authority::SysAdmin])?;
    state
        .core
        .delete_domain(path.id)
        .await
        .map_err(|error| TbError::from(error).naming(DOMAIN, path.id))
}

/// T51: a page of domains with their clients.
#[utoipa::path(
    get, path = "/api/domain/infos", tag = TAG, operation_id = "getTenantDomainInfos",
    security(("xAuthorization" = []), ("bearer" = [])),
    params(InfosQuery),
    responses(
        (status = 200, description = "A page of domain infos", body = DomainInfoPageWire),
        (status = 400, description = "Malformed parameters (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not a system administrator (20)", body = ErrorBody),
    )
)]
pub async fn infos(
    State(state): State<AppState>,
    caller: TbCaller,
    TbQuery(query): TbQuery<InfosQuery>,
) -> TbResult<Json<DomainInfoPageWire>> {
    caller.require(&[Authority::SysAdmin])?;
    let page = paging::page_request(query.page_size, query.page)?;
    let sort = match query.sort_property.as_deref() {
        None | Some("createdTime") => DomainSort::CreatedTime,
        Some("name") => DomainSort::Name,
        Some(other) => {
            return Err(TbError::bad_request(format!(
                "sortProperty must be createdTime or name, not '{}'",
                other.chars().take(64).collect::<String>()
            )))
        }
    };
    let domain_query = DomainQuery {
        text_search: paging::text_search(query.text_search)?,
        sort,
        descending: paging::descending(query.sort_order.as_deref())?,
        offset: 0,
        limit: 0,
    };
    let found = state.core.domain_infos(domain_query, page).await?;
    let (total_pages, has_next) = paging::totals(found.total, page);
    Ok(Json(DomainInfoPageWire {
        data: found.items.iter().map(DomainInfoWire::from).collect(),
        total_pages,
        total_elements: found.total,
        has_next,
    }))
}

/// T52: one domain with its clients.
#[utoipa::path(
    get, path = "/api/domain/info/{id}", tag = TAG, operation_id = "getDomainInfoById",
    security(("xAuthorization" = []), ("bearer" = [])),
    params(DomainPath),
    responses(
        (status = 200, description = "The domain with `oauth2ClientInfos`", body = DomainInfoWire),
        (status = 400, description = "Malformed id (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not a system administrator (20)", body = ErrorBody),
        (status = 404, description = "No such domain (32)", body = ErrorBody),
    )
)]
pub async fn info(
    State(state): State<AppState>,
    caller: TbCaller,
    TbPath(path): TbPath<DomainPath>,
) -> TbResult<Json<DomainInfoWire>> {
    caller.require(&[Authority::SysAdmin])?;
    let info = state
        .core
        .domain_info(path.id)
        .await
        .map_err(|error| TbError::from(error).naming(DOMAIN, path.id))?;
    Ok(Json(DomainInfoWire::from(&info)))
}

/// T53: replace a domain's clients with the listed ones (an empty list removes them all).
#[utoipa::path(
    put, path = "/api/domain/{id}/oauth2Clients", tag = TAG, operation_id = "updateOauth2Clients",
    security(("xAuthorization" = []), ("bearer" = [])),
    params(DomainPath),
    request_body(content = Vec<Uuid>, description = "The client ids"),
    responses(
        (status = 200, description = "Replaced (empty body)"),
        (status = 400, description = "Not a JSON array of UUIDs, or unknown client ids (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not a system administrator (20)", body = ErrorBody),
        (status = 404, description = "No such domain (32)", body = ErrorBody),
    )
)]
pub async fn set_clients(
    State(state): State<AppState>,
    caller: TbCaller,
    TbPath(path): TbPath<DomainPath>,
    TbBody(body): TbBody,
) -> TbResult<()> {
    caller.require(&[Authority::SysAdmin])?;
    let ids: Vec<Uuid> = serde_json::from_slice(&body).map_err(|error| {
        TbError::bad_request(format!(
            "Invalid request body: expected a JSON array of UUIDs ({error})"
        ))
    })?;
    state
        .core
        .set_domain_oauth2_clients(path.id, &ids)
        .await
        .map_err(|error| TbError::from(error).naming(DOMAIN, path.id))
}
