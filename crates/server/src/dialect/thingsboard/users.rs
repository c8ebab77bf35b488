//! Users managed through this dialect: create (to be activated by link), read, update,
//! delete, the activation link, and enabling or disabling credentials.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use gatehouse_core::accounts::{Access, AccountDraft};
use gatehouse_core::model::{Authority, Profile, Tenancy, NULL_UUID};
use gatehouse_core::names::Email;
use gatehouse_core::{CoreError, Rejection};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::error::{ErrorBody, TbError, TbResult};
use super::extract::{json_object, TbBody, TbCaller, TbPath, TbQuery};
use super::wire::{EntityId, UserOut};
use super::TAG;
use crate::AppState;

/// Body of `POST /api/user`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = UserRequest, example = json!({"email": "tenant@example.com", "authority": "TENANT_ADMIN", "tenantId": {"entityType": "TENANT", "id": "784f394c-42b6-435a-983c-b7beff2784f9"}, "firstName": "Ada"}))]
pub struct UserIn {
    /// Present to update that user.
    #[serde(default)]
    id: Option<EntityId>,
    /// Email, also the login name.
    email: String,
    /// `SYS_ADMIN`, `TENANT_ADMIN` or `CUSTOMER_USER`.
    #[serde(default)]
    authority: Option<String>,
    /// The tenant (required for tenant administrators created by a system administrator).
    #[serde(default)]
    tenant_id: Option<EntityId>,
    /// The customer (required for customer users).
    #[serde(default)]
    customer_id: Option<EntityId>,
    /// First name.
    #[serde(default)]
    first_name: Option<String>,
    /// Last name.
    #[serde(default)]
    last_name: Option<String>,
    /// Phone number.
    #[serde(default)]
    phone: Option<String>,
    /// A JSON object kept for clients.
    #[serde(default)]
    #[schema(value_type = Object)]
    additional_info: Option<Value>,
}

/// Query of `POST /api/user`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CreateQuery {
    /// Mail the new user its activation link (default false).
    #[serde(rename = "sendActivationMail", default)]
    send_activation_mail: Option<bool>,
}

/// Query of `POST /api/user/{userId}/userCredentialsEnabled`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EnabledQuery {
    /// The new state (default true).
    #[serde(rename = "userCredentialsEnabled", default)]
    user_credentials_enabled: Option<bool>,
}

/// Path of a user.
#[derive(Debug, Deserialize, IntoParams)]
pub struct UserPath {
    /// The user's id.
    #[serde(rename = "userId")]
    user_id: Uuid,
}

/// A text field as sent; blank counts as absent.
fn text_field(value: Option<String>) -> Option<String> {
    value.filter(|text| !text.trim().is_empty())
}

impl UserIn {
    fn profile(&mut self) -> TbResult<Profile> {
        let additional_info = match self.additional_info.take() {
            None | Some(Value::Null) => None,
            Some(value @ Value::Object(_)) => Some(value.to_string()),
            Some(_) => return Err(TbError::bad_request("additionalInfo must be a JSON object")),
        };
        Ok(Profile {
            email: None,
            first_name: text_field(self.first_name.take()),
            last_name: text_field(self.last_name.take()),
            phone: text_field(self.phone.take()),
            additional_info,
        })
    }

    fn tenancy(&self) -> TbResult<Option<Tenancy>> {
        let Some(text) = self.authority.as_deref() else {
            return Ok(None);
        };
        let authority = Authority::parse(text).ok_or_else(|| {
            TbError::bad_request("authority must be SYS_ADMIN, TENANT_ADMIN or CUSTOMER_USER")
        })?;
        Ok(Some(Tenancy {
            authority,
            tenant_id: self.tenant_id.as_ref().map_or(NULL_UUID, |id| id.id),
            customer_id: self.customer_id.as_ref().map_or(NULL_UUID, |id| id.id),
        }))
    }
}

/// Create a user without a password (it activates by link), or update one when `id` is given.
#[utoipa::path(
    post, path = "/api/user", tag = TAG, operation_id = "saveUser",
    security(("xAuthorization" = []), ("bearer" = [])),
    params(CreateQuery),
    request_body = UserIn,
    responses(
        (status = 200, description = "The user", body = UserOut),
        (status = 400, description = "Invalid fields or a duplicate email (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Outside the caller's tenancy (20)", body = ErrorBody),
        (status = 404, description = "No such user to update (32)", body = ErrorBody),
        (status = 503, description = "The activation mail could not be sent (2)", body = ErrorBody),
    )
)]
pub async fn save(
    State(state): State<AppState>,
    caller: TbCaller,
    TbQuery(query): TbQuery<CreateQuery>,
    TbBody(body): TbBody,
) -> TbResult<Json<UserOut>> {
    caller.require(&[Authority::SysAdmin, Authority::TenantAdmin])?;
    let mut request: UserIn = json_object(&body)?;
    let email = Email::parse(request.email.trim(), "email")?;
    let profile = request.profile()?;
    let tenancy = request.tenancy()?;
    let actor = &caller.0.user;
    let user = match &request.id {
        Some(id) => state
            .core
            .update_account(actor, id.id, email, tenancy, profile)
            .await
            .map_err(|error| TbError::from(error).naming("User", id.id))?,
        None => {
            let tenancy = tenancy.ok_or_else(|| TbError::bad_request("authority must be given"))?;
            let draft = AccountDraft {
                email,
                tenancy,
                profile,
            };
            state
                .core
                .create_account(actor, draft, query.send_activation_mail.unwrap_or(false))
                .await?
        }
    };
    Ok(Json(UserOut::from(&user)))
}

/// One user the caller may see.
#[utoipa::path(
    get, path = "/api/user/{userId}", tag = TAG, operation_id = "getUserById",
    security(("xAuthorization" = []), ("bearer" = [])),
    params(UserPath),
    responses(
        (status = 200, description = "The user", body = UserOut),
        (status = 400, description = "Malformed id (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Outside the caller's tenancy (20)", body = ErrorBody),
        (status = 404, description = "No such user (32)", body = ErrorBody),
    )
)]
pub async fn get_one(
    State(state): State<AppState>,
    caller: TbCaller,
    TbPath(path): TbPath<UserPath>,
) -> TbResult<Json<UserOut>> {
    let user = state
        .core
        .managed_user(&caller.0.user, path.user_id, Access::Read)
        .await
        .map_err(|error| TbError::from(error).naming("User", path.user_id))?;
    Ok(Json(UserOut::from(&user)))
}

/// Delete a user the caller manages (not itself).
#[utoipa::path(
    delete, path = "/api/user/{userId}", tag = TAG, operation_id = "tbDeleteUser",
    security(("xAuthorization" = []), ("bearer" = [])),
    params(UserPath),
    responses(
        (status = 200, description = "Deleted (empty body)"),
        (status = 400, description = "Malformed id (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Outside the caller's tenancy, or the caller itself (20)", body = ErrorBody),
        (status = 404, description = "No such user (32)", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: TbCaller,
    TbPath(path): TbPath<UserPath>,
) -> TbResult<()> {
    caller.require(&[Authority::SysAdmin, Authority::TenantAdmin])?;
    state
        .core
        .delete_account(&caller.0.user, path.user_id)
        .await
        .map_err(|error| TbError::from(error).naming("User", path.user_id))
}

/// A fresh activation link for a user who has not activated yet (text/plain).
#[utoipa::path(
    get, path = "/api/user/{userId}/activationLink", tag = TAG, operation_id = "getActivationLink",
    security(("xAuthorization" = []), ("bearer" = [])),
    params(UserPath),
    responses(
        (status = 200, description = "The link", body = String, content_type = "text/plain"),
        (status = 400, description = "Already activated (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Outside the caller's tenancy (20)", body = ErrorBody),
        (status = 404, description = "No such user (32)", body = ErrorBody),
    )
)]
pub async fn activation_link(
    State(state): State<AppState>,
    caller: TbCaller,
    TbPath(path): TbPath<UserPath>,
) -> TbResult<impl IntoResponse> {
    caller.require(&[Authority::SysAdmin, Authority::TenantAdmin])?;
    let link = state
        .core
        .activation_link(&caller.0.user, path.user_id)
        .await
        .map_err(|error| {
            let activated = matches!(error, CoreError::Rejected(Rejection::AlreadyActivated));
            TbError::from(error)
                .naming("User", path.user_id)
                .with_message_if(activated, "User is already activated!")
        })?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], link))
}

/// Enable (unlock, clearing failed attempts) or disable (revoking every session) a user's
/// credentials.
#[utoipa::path(
    post, path = "/api/user/{userId}/userCredentialsEnabled", tag = TAG, operation_id = "setUserCredentialsEnabled",
    security(("xAuthorization" = []), ("bearer" = [])),
    params(UserPath, EnabledQuery),
    responses(
        (status = 200, description = "Done (empty body)"),
        (status = 400, description = "Malformed id (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Outside the caller's tenancy, or disabling oneself (20)", body = ErrorBody),
        (status = 404, description = "No such user (32)", body = ErrorBody),
    )
)]
pub async fn set_enabled(
    State(state): State<AppState>,
    caller: TbCaller,
    TbPath(path): TbPath<UserPath>,
    TbQuery(query): TbQuery<EnabledQuery>,
) -> TbResult<()> {
    caller.require(&[Authority::SysAdmin, Authority::TenantAdmin])?;
    state
        .core
        .set_account_enabled(
            &caller.0.user,
            path.user_id,
            query.user_credentials_enabled.unwrap_or(true),
        )
        .await
        .map_err(|error| TbError::from(error).naming("User", path.user_id))
}
