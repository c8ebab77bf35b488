//! OAuth2 administration: clients (T40–T43), the login processing URL (T44), the public list
//! of login buttons (T45) and registration templates (T46–T48). Domains (T49–T53) are in
//! `domains.rs`; the browser login itself (T54) in `oauth2_login.rs`.

use axum::extract::State;
use axum::Json;
use gatehouse_core::model::Authority;
use gatehouse_core::oauth2::{OAuth2ClientQuery, OAuth2ClientSort, LOGIN_PROCESSING_URL};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::error::{ErrorBody, TbError, TbResult};
use super::extract::{json_object, TbBody, TbCaller, TbPath, TbQuery};
use super::oauth2_wire::{
    ClientInfoPageWire, ClientInfoWire, ClientInfosWire, ClientWire, LoginInfoWire, TemplateWire,
};
use super::paging;
use super::TAG;
use crate::client::RequestOrigin;
use crate::AppState;

/// Entity name of clients in not-found messages (ThingsBoard's `EntityType` normal name).
pub const CLIENT: &str = "Oauth2 client";

/// Entity name of templates in not-found messages.
const TEMPLATE: &str = "Oauth2 client registration template";

/// Who administers OAuth2 clients.
const ADMINS: &[Authority] = &[Authority::SysAdmin, Authority::TenantAdmin];

/// Path of a client or template.
#[derive(Debug, Deserialize, IntoParams)]
pub struct IdPath {
    /// The id.
    id: Uuid,
}

/// Query of T43.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct InfosQuery {
    /// Entries per page (1–1000); required unless `clientIds` is given.
    #[serde(default)]
    page_size: Option<u64>,
    /// Page number, from 0; required unless `clientIds` is given.
    #[serde(default)]
    page: Option<u64>,
    /// Only clients whose title contains this text (ignoring case).
    #[serde(default)]
    text_search: Option<String>,
    /// `createdTime` (default) or `title`.
    #[serde(default)]
    sort_property: Option<String>,
    /// `ASC` (default) or `DESC`.
    #[serde(default)]
    sort_order: Option<String>,
    /// With this, the answer is the list of these clients (ids repeated or comma-separated)
    /// instead of a page.
    #[serde(default)]
    #[param(value_type = Option<Vec<String>>)]
    client_ids: Vec<String>,
}

/// Query of `GET /api/oauth2/client/list`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    /// Client ids, repeated or comma-separated.
    #[serde(default)]
    #[param(required = true)]
    client_ids: Vec<String>,
}

/// Query of T45.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct LoginClientsQuery {
    /// `WEB`, `ANDROID` or `IOS`: only clients serving it (other values are ignored).
    #[serde(default)]
    platform: Option<String>,
    /// A mobile application's package: there are no mobile applications here, so the
    /// answer is empty.
    #[serde(default)]
    pkg_name: Option<String>,
}

/// UUIDs from repeated and/or comma-separated query values (blank entries are skipped).
pub fn uuid_list(values: &[String], name: &str) -> TbResult<Vec<Uuid>> {
    values
        .iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            Uuid::parse_str(entry).map_err(|_| {
                TbError::bad_request(format!(
                    "Invalid request parameters: {name} must hold UUIDs, not '{}'",
                    entry.chars().take(64).collect::<String>()
                ))
            })
        })
        .collect()
}

/// T40: create a client (no `id`) or update one; answers it with the secret masked.
#[utoipa::path(
    post, path = "/api/oauth2/client", tag = TAG, operation_id = "saveOAuth2Client",
    security(("xAuthorization" = []), ("bearer" = [])),
    request_body = ClientWire,
    responses(
        (status = 200, description = "The client; `clientSecret` (and `mapperConfig.custom.password`) read `********`", body = ClientWire),
        (status = 400, description = "Invalid client, e.g. `Client ID should be specified!` (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an administrator (20)", body = ErrorBody),
        (status = 404, description = "No such client to update (32)", body = ErrorBody),
    )
)]
pub async fn save_client(
    State(state): State<AppState>,
    caller: TbCaller,
    TbBody(body): TbBody,
) -> TbResult<Json<ClientWire>> {
    caller.require(ADMINS)?;
    let request: ClientWire = json_object(&body)?;
    let id = request.id();
    let saved = state
        .core
        .save_oauth2_client(&caller.0.user, id, request.to_core()?)
        .await
        .map_err(|error| TbError::from(error).naming(CLIENT, id.unwrap_or_default()))?;
    Ok(Json(ClientWire::of(&saved)))
}

/// T41: one client, its secret masked.
#[utoipa::path(
    get, path = "/api/oauth2/client/{id}", tag = TAG, operation_id = "getOAuth2ClientById",
    security(("xAuthorization" = []), ("bearer" = [])),
    params(IdPath),
    responses(
        (status = 200, description = "The client; `clientSecret` reads `********`", body = ClientWire),
        (status = 400, description = "Malformed id (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an administrator (20)", body = ErrorBody),
        (status = 404, description = "No such client in the caller's tenant (32)", body = ErrorBody),
    )
)]
pub async fn get_client(
    State(state): State<AppState>,
    caller: TbCaller,
    TbPath(path): TbPath<IdPath>,
) -> TbResult<Json<ClientWire>> {
    caller.require(ADMINS)?;
    let client = state
        .core
        .oauth2_client(&caller.0.user, path.id)
        .await
        .map_err(|error| TbError::from(error).naming(CLIENT, path.id))?;
    Ok(Json(ClientWire::of(&client)))
}

/// T42: delete a client; domains stop offering it.
#[utoipa::path(
    delete, path = "/api/oauth2/client/{id}", tag = TAG, operation_id = "deleteOauth2Client",
    security(("xAuthorization" = []), ("bearer" = [])),
    params(IdPath),
    responses(
        (status = 200, description = "Deleted (empty body)"),
        (status = 400, description = "Malformed id (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an administrator (20)", body = ErrorBody),
        (status = 404, description = "No such client in the caller's tenant (32)", body = ErrorBody),
    )
)]
pub async fn delete_client(
    State(state): State<AppState>,
    caller: TbCaller,
    TbPath(path): TbPath<IdPath>,
) -> TbResult<()> {
    caller.require(ADMINS)?;
    state
        .core
        .delete_oauth2_client(&caller.0.user, path.id)
        .await
        .map_err(|error| TbError::from(error).naming(CLIENT, path.id))
}

/// The infos of the listed clients the caller administers.
async fn infos_by_ids(
    state: &AppState,
    caller: &TbCaller,
    values: &[String],
) -> TbResult<Vec<ClientInfoWire>> {
    let ids = uuid_list(values, "clientIds")?;
    let infos = state
        .core
        .oauth2_client_infos_by_ids(&caller.0.user, &ids)
        .await?;
    Ok(infos.iter().map(ClientInfoWire::from).collect())
}

/// T43: a page of the clients the caller administers (a tenant administrator: its tenant's;
/// a system administrator: all); with `clientIds`, the list of those clients.
#[utoipa::path(
    get, path = "/api/oauth2/client/infos", tag = TAG, operation_id = "findTenantOAuth2ClientInfos",
    security(("xAuthorization" = []), ("bearer" = [])),
    params(InfosQuery),
    responses(
        (status = 200, description = "A page of client infos, or with `clientIds` a list", body = ClientInfosWire),
        (status = 400, description = "Malformed parameters (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an administrator (20)", body = ErrorBody),
    )
)]
pub async fn client_infos(
    State(state): State<AppState>,
    caller: TbCaller,
    TbQuery(query): TbQuery<InfosQuery>,
) -> TbResult<Json<ClientInfosWire>> {
    caller.require(ADMINS)?;
    if !query.client_ids.is_empty() {
        let list = infos_by_ids(&state, &caller, &query.client_ids).await?;
        return Ok(Json(ClientInfosWire::List(list)));
    }
    let (Some(page_size), Some(page)) = (query.page_size, query.page) else {
        return Err(TbError::bad_request(
            "Invalid request parameters: pageSize and page must be given",
        ));
    };
    let page = paging::page_request(page_size, page)?;
    let sort = match query.sort_property.as_deref() {
        None | Some("createdTime") => OAuth2ClientSort::CreatedTime,
        Some("title") => OAuth2ClientSort::Title,
        Some(other) => {
            return Err(TbError::bad_request(format!(
                "sortProperty must be createdTime or title, not '{}'",
                other.chars().take(64).collect::<String>()
            )))
        }
    };
    let client_query = OAuth2ClientQuery {
        tenant_id: None,
        text_search: paging::text_search(query.text_search)?,
        sort,
        descending: paging::descending(query.sort_order.as_deref())?,
        offset: 0,
        limit: 0,
    };
    let found = state
        .core
        .oauth2_client_infos(&caller.0.user, client_query, page)
        .await?;
    let (total_pages, has_next) = paging::totals(found.total, page);
    Ok(Json(ClientInfosWire::Page(ClientInfoPageWire {
        data: found.items.iter().map(ClientInfoWire::from).collect(),
        total_pages,
        total_elements: found.total,
        has_next,
    })))
}

/// T43 by ids: the listed clients the caller administers, oldest first (others are left out).
#[utoipa::path(
    get, path = "/api/oauth2/client/list", tag = TAG, operation_id = "findTenantOAuth2ClientInfosByIds",
    security(("xAuthorization" = []), ("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "The client infos", body = Vec<ClientInfoWire>),
        (status = 400, description = "Missing or malformed `clientIds` (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an administrator (20)", body = ErrorBody),
    )
)]
pub async fn client_list(
    State(state): State<AppState>,
    caller: TbCaller,
    TbQuery(query): TbQuery<ListQuery>,
) -> TbResult<Json<Vec<ClientInfoWire>>> {
    caller.require(ADMINS)?;
    if query.client_ids.is_empty() {
        return Err(TbError::bad_request(
            "Invalid request parameters: clientIds must be given",
        ));
    }
    Ok(Json(
        infos_by_ids(&state, &caller, &query.client_ids).await?,
    ))
}

/// T44: where providers send the browser back, as a JSON string.
#[utoipa::path(
    get, path = "/api/oauth2/loginProcessingUrl", tag = TAG, operation_id = "getLoginProcessingUrl",
    security(("xAuthorization" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "`\"/login/oauth2/code/\"`", body = String, content_type = "application/json", example = json!("/login/oauth2/code/")),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an administrator (20)", body = ErrorBody),
    )
)]
pub async fn login_processing_url(caller: TbCaller) -> TbResult<Json<&'static str>> {
    caller.require(ADMINS)?;
    Ok(Json(LOGIN_PROCESSING_URL))
}

/// T45 (public): the login buttons of the domain the request addresses (`Host`, and behind
/// a trusted proxy `X-Forwarded-Host`/`-Proto`/`-Port`; the port is left out when it is the
/// scheme's default), if that domain is OAuth2-enabled.
#[utoipa::path(
    post, path = "/api/noauth/oauth2Clients", tag = TAG, operation_id = "getOAuth2Clients",
    params(LoginClientsQuery),
    responses(
        (status = 200, description = "The login buttons (possibly none)", body = Vec<LoginInfoWire>),
        (status = 400, description = "Malformed parameters (31)", body = ErrorBody),
    )
)]
pub async fn login_clients(
    State(state): State<AppState>,
    origin: Option<RequestOrigin>,
    TbQuery(query): TbQuery<LoginClientsQuery>,
) -> TbResult<Json<Vec<LoginInfoWire>>> {
    let Some(origin) = origin else {
        return Ok(Json(Vec::new()));
    };
    if query.pkg_name.is_some_and(|name| !name.is_empty()) {
        return Ok(Json(Vec::new()));
    }
    let buttons = state
        .core
        .oauth2_login_buttons(&origin.host_and_port(), query.platform.as_deref())
        .await?;
    Ok(Json(buttons.into_iter().map(LoginInfoWire::from).collect()))
}

/// T46: every registration template (the bundled Google, GitHub, Facebook and Apple ones
/// are stored at the first call).
#[utoipa::path(
    get, path = "/api/oauth2/config/template", tag = TAG, operation_id = "getClientRegistrationTemplates",
    security(("xAuthorization" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The templates, by provider id", body = Vec<TemplateWire>),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an administrator (20)", body = ErrorBody),
    )
)]
pub async fn templates(
    State(state): State<AppState>,
    caller: TbCaller,
) -> TbResult<Json<Vec<TemplateWire>>> {
    caller.require(ADMINS)?;
    let templates = state.core.oauth2_templates().await?;
    Ok(Json(templates.iter().map(TemplateWire::of).collect()))
}

/// T47: create a template (no `id`) or update one (system administrators).
#[utoipa::path(
    post, path = "/api/oauth2/config/template", tag = TAG, operation_id = "saveClientRegistrationTemplate",
    security(("xAuthorization" = []), ("bearer" = [])),
    request_body = TemplateWire,
    responses(
        (status = 200, description = "The template", body = TemplateWire),
        (status = 400, description = "Invalid template, or its providerId is taken (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not a system administrator (20)", body = ErrorBody),
        (status = 404, description = "No such template to update (32)", body = ErrorBody),
    )
)]
pub async fn save_template(
    State(state): State<AppState>,
    caller: TbCaller,
    TbBody(body): TbBody,
) -> TbResult<Json<TemplateWire>> {
    caller.require(&[Authority::SysAdmin])?;
    let request: TemplateWire = json_object(&body)?;
    let id = request.id();
    let saved = state
        .core
        .save_oauth2_template(id, request.to_core()?)
        .await
        .map_err(|error| TbError::from(error).naming(TEMPLATE, id.unwrap_or_default()))?;
    Ok(Json(TemplateWire::of(&saved)))
}

/// T48: delete a template (system administrators); a deleted bundled template stays deleted.
#[utoipa::path(
    delete, path = "/api/oauth2/config/template/{id}", tag = TAG, operation_id = "deleteClientRegistrationTemplate",
    security(("xAuthorization" = []), ("bearer" = [])),
    params(IdPath),
    responses(
        (status = 200, description = "Deleted (empty body)"),
        (status = 400, description = "Malformed id (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not a system administrator (20)", body = ErrorBody),
        (status = 404, description = "No such template (32)", body = ErrorBody),
    )
)]
pub async fn delete_template(
    State(state): State<AppState>,
    caller: TbCaller,
    TbPath(path): TbPath<IdPath>,
) -> TbResult<()> {
    caller.require(&[Authority::SysAdmin])?;
    state
        .core
        .delete_oauth2_template(path.id)
        .await
        .map_err(|error| TbError::from(error).naming(TEMPLATE, path.id))
}
