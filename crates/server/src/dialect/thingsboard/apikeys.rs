//! API keys (T22–T26).

use axum::extract::State;
use axum::Json;
use gatehouse_core::apikeys::{ApiKeyChange, ApiKeyDraft, OwnedApiKey};
use gatehouse_core::store::{ApiKeyQuery, ApiKeySort};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::error::{ErrorBody, TbError, TbResult};
use super::extract::{json_object, TbBody, TbCaller, TbPath, TbQuery};
use super::paging;
use super::wire::{ApiKeyOut, ApiKeyPageOut, EntityId};
use super::TAG;
use crate::AppState;

/// Entity name in not-found messages.
const ENTITY: &str = "Api key";

/// Body of T22 (`ApiKeyInfo`); read-only fields (`createdTime`, `tenantId`, `expired`) are
/// ignored.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ApiKeyInfo, example = json!({"userId": {"entityType": "USER", "id": "784f394c-42b6-435a-983c-b7beff2784f9"}, "description": "ci", "enabled": true, "expirationTime": 0}))]
pub struct ApiKeyIn {
    /// Present to update that key.
    #[serde(default)]
    id: Option<EntityId>,
    /// The owner (required on create; cannot change).
    #[serde(default)]
    user_id: Option<EntityId>,
    /// What it is for (not blank).
    #[serde(default)]
    description: Option<String>,
    /// Whether it may be used (default true).
    #[serde(default)]
    enabled: Option<bool>,
    /// Expiry, Unix ms; 0 or absent means never (cannot change).
    #[serde(default)]
    expiration_time: Option<i64>,
}

/// Path of a key.
#[derive(Debug, Deserialize, IntoParams)]
pub struct KeyPath {
    /// The key's id.
    id: Uuid,
}

/// Path of T24.
#[derive(Debug, Deserialize, IntoParams)]
pub struct EnabledPath {
    /// The key's id.
    id: Uuid,
    /// `true` or `false` (also `True`/`False`, `yes`/`no`, `on`/`off`, `1`/`0`).
    #[serde(rename = "enabledValue")]
    enabled_value: String,
}

/// Path of T26.
#[derive(Debug, Deserialize, IntoParams)]
pub struct OwnerPath {
    /// The owner's id.
    #[serde(rename = "userId")]
    user_id: Uuid,
}

/// Query of T26.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    /// Entries per page (1–1000).
    page_size: u64,
    /// Page number, from 0.
    page: u64,
    /// Only keys whose description contains this text (ignoring case).
    #[serde(default)]
    text_search: Option<String>,
    /// `createdTime` (default), `expirationTime`, `description` or `enabled`.
    #[serde(default)]
    sort_property: Option<String>,
    /// `ASC` (default) or `DESC`.
    #[serde(default)]
    sort_order: Option<String>,
}

/// A key as answered, with its owner's tenant.
fn info(state: &AppState, owned: &OwnedApiKey) -> ApiKeyOut {
    ApiKeyOut::info(
        &owned.key,
        owned.owner.tenancy.tenant_id,
        state.core.now_millis(),
    )
}

/// Spring's reading of a boolean path variable.
fn parse_flag(text: &str) -> TbResult<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" => Ok(false),
        _ => Err(TbError::bad_request(format!(
            "enabledValue must be true or false, not '{text}'"
        ))),
    }
}

/// T22: create a key (its value is answered once) or, with `id`, update description and
/// enabled flag.
#[utoipa::path(
    post, path = "/api/apiKey", tag = TAG, operation_id = "saveApiKey",
    security(("xAuthorization" = []), ("bearer" = [])),
    request_body = ApiKeyIn,
    responses(
        (status = 200, description = "The key; `value` holds the key only when it was created", body = ApiKeyOut),
        (status = 400, description = "Blank description, past expiry, or a changed owner or expiry (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The owner is outside the caller's tenancy (20)", body = ErrorBody),
        (status = 404, description = "No such key to update (32)", body = ErrorBody),
    )
)]
pub async fn save(
    State(state): State<AppState>,
    caller: TbCaller,
    TbBody(body): TbBody,
) -> TbResult<Json<ApiKeyOut>> {
    let request: ApiKeyIn = json_object(&body)?;
    let actor = &caller.0.user;
    if let Some(id) = &request.id {
        let id = id.id;
        let change = ApiKeyChange {
            description: request.description,
            enabled: request.enabled,
            user_id: request.user_id.map(|owner| owner.id),
            expiration_time: request.expiration_time,
        };
        let owned = state
            .core
            .update_api_key(actor, id, change)
            .await
            .map_err(|error| TbError::from(error).naming(ENTITY, id))?;
        return Ok(Json(info(&state, &owned).with_value(String::new())));
    }
    let owner = request
        .user_id
        .ok_or_else(|| TbError::bad_request("userId must be given"))?;
    let draft = ApiKeyDraft {
        user_id: owner.id,
        description: request.description.unwrap_or_default(),
        enabled: request.enabled.unwrap_or(true),
        expiration_time: request.expiration_time.unwrap_or(0),
    };
    let (owned, value) = state
        .core
        .create_api_key(actor, draft)
        .await
        .map_err(|error| TbError::from(error).naming("User", owner.id))?;
    Ok(Json(info(&state, &owned).with_value(value)))
}

/// T23: delete a key.
#[utoipa::path(
    delete, path = "/api/apiKey/{id}", tag = TAG, operation_id = "deleteApiKey",
    security(("xAuthorization" = []), ("bearer" = [])),
    params(KeyPath),
    responses(
        (status = 200, description = "Deleted (empty body)"),
        (status = 400, description = "Malformed id (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such key (32)", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: TbCaller,
    TbPath(path): TbPath<KeyPath>,
) -> TbResult<()> {
    state
        .core
        .delete_api_key(&caller.0.user, path.id)
        .await
        .map_err(|error| TbError::from(error).naming(ENTITY, path.id))
}

/// T24: enable or disable a key.
#[utoipa::path(
    put, path = "/api/apiKey/{id}/enabled/{enabledValue}", tag = TAG, operation_id = "enableApiKey",
    security(("xAuthorization" = []), ("bearer" = [])),
    params(EnabledPath),
    responses(
        (status = 200, description = "The key", body = ApiKeyOut),
        (status = 400, description = "Malformed id or flag (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such key (32)", body = ErrorBody),
    )
)]
pub async fn enable(
    State(state): State<AppState>,
    caller: TbCaller,
    TbPath(path): TbPath<EnabledPath>,
) -> TbResult<Json<ApiKeyOut>> {
    let enabled = parse_flag(&path.enabled_value)?;
    let key = state
        .core
        .update_api_key(
            &caller.0.user,
            path.id,
            ApiKeyChange {
                enabled: Some(enabled),
                ..ApiKeyChange::default()
            },
        )
        .await
        .map_err(|error| TbError::from(error).naming(ENTITY, path.id))?;
    Ok(Json(info(&state, &key)))
}

/// The description in a T25 body: the raw text, or the string a JSON string literal holds
/// (what `tb-ce-client` sends), so that neither client stores quotes.
fn description_of(body: &[u8]) -> TbResult<String> {
    let text = std::str::from_utf8(body)
        .map_err(|_| TbError::bad_request("description must be UTF-8 text"))?;
    let trimmed = text.trim();
    if trimmed.starts_with('"') {
        if let Ok(unquoted) = serde_json::from_str::<String>(trimmed) {
            return Ok(unquoted);
        }
    }
    Ok(text.to_owned())
}

/// T25: change a key's description. The body is the description as raw text (a JSON string
/// literal is unquoted).
#[utoipa::path(
    put, path = "/api/apiKey/{id}/description", tag = TAG, operation_id = "updateApiKeyDescription",
    security(("xAuthorization" = []), ("bearer" = [])),
    params(KeyPath),
    request_body(content = String, content_type = "text/plain", description = "The new description"),
    responses(
        (status = 200, description = "The key", body = ApiKeyOut),
        (status = 400, description = "Blank description or malformed id (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such key (32)", body = ErrorBody),
    )
)]
pub async fn describe(
    State(state): State<AppState>,
    caller: TbCaller,
    TbPath(path): TbPath<KeyPath>,
    TbBody(body): TbBody,
) -> TbResult<Json<ApiKeyOut>> {
    let description = description_of(&body)?;
    let key = state
        .core
        .update_api_key(
            &caller.0.user,
            path.id,
            ApiKeyChange {
                description: Some(description),
                ..ApiKeyChange::default()
            },
        )
        .await
        .map_err(|error| TbError::from(error).naming(ENTITY, path.id))?;
    Ok(Json(info(&state, &key)))
}

/// T26: a page of a user's keys.
#[utoipa::path(
    get, path = "/api/apiKeys/{userId}", tag = TAG, operation_id = "getUserApiKeys",
    security(("xAuthorization" = []), ("bearer" = [])),
    params(OwnerPath, ListQuery),
    responses(
        (status = 200, description = "A page of keys (no values)", body = ApiKeyPageOut),
        (status = 400, description = "Malformed parameters (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The owner is outside the caller's tenancy (20)", body = ErrorBody),
        (status = 404, description = "No such user (32)", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: TbCaller,
    TbPath(path): TbPath<OwnerPath>,
    TbQuery(query): TbQuery<ListQuery>,
) -> TbResult<Json<ApiKeyPageOut>> {
    let page = paging::page_request(query.page_size, query.page)?;
    let sort = match query.sort_property.as_deref() {
        None | Some("createdTime") => ApiKeySort::CreatedTime,
        Some("expirationTime") => ApiKeySort::ExpirationTime,
        Some("description") => ApiKeySort::Description,
        Some("enabled") => ApiKeySort::Enabled,
        Some(other) => {
            return Err(TbError::bad_request(format!(
                "sortProperty must be createdTime, expirationTime, description or enabled, not '{other}'"
            )))
        }
    };
    let descending = paging::descending(query.sort_order.as_deref())?;
    let text_search = paging::text_search(query.text_search)?;
    let api_query = ApiKeyQuery {
        user_id: path.user_id,
        text_search,
        sort,
        descending,
        offset: 0,
        limit: 0,
    };
    let found = state
        .core
        .list_api_keys(&caller.0.user, api_query, page)
        .await
        .map_err(|error| TbError::from(error).naming("User", path.user_id))?;
    let owner = &found.owner;
    let now = state.core.now_millis();
    let (total_pages, has_next) = paging::totals(found.total, page);
    Ok(Json(ApiKeyPageOut {
        data: found
            .items
            .iter()
            .map(|key| ApiKeyOut::info(key, owner.tenancy.tenant_id, now))
            .collect(),
        total_pages,
        total_elements: found.total,
        has_next,
    }))
}
