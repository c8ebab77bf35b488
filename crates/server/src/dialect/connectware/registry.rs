//! The client registry (C29–C32): device self-registration with a password or a CSR, the list
//! of requests, opening the registration window, and granting a request.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use gatehouse_core::clock::format_millis;
use gatehouse_core::error::{CoreError, CoreResult};
use gatehouse_core::model::GrantType;
use gatehouse_core::permission::{Context, Operation};
use gatehouse_core::registry::{
    Confirmation, Registration, RegistrationAnswer, RegistrationRequest, DEFAULT_OPEN_MILLIS,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::caller::Caller;
use super::error::{error_response, ApiError};
use super::extract::{media_type, Body, RawBody};
use super::schema::{
    BadRequest, Conflict, ContextSchema, Forbidden, GrantTypeSchema, InternalError, Locked,
    NotFound, OperationSchema, PayloadTooLarge, ServiceUnavailable, TooManyRequests, Unauthorized,
    UnprocessableEntity, UnsupportedMediaType,
};
use super::wire::{
    objects, optional_objects, parse_grants, parse_prefix, parse_role_ids, PermissionIn, UserOut,
};
use crate::client::ClientAddress;
use crate::AppState;

type ApiResult<T> = Result<T, ApiError>;

/// Body of C29.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(
    as = RegistrationRequest,
    example = json!({
        "username": "iot.device.0123456",
        "password": "secret-password",
        "roles": ["manufacturer.iotModule.simpleRole"],
        "context": "IoT Device Serial Number <0123456>"
    })
)]
pub struct RegisterIn {
    /// The username to register (the username rules apply).
    #[schema(min_length = 3, max_length = 128)]
    username: String,
    /// A password (the password policy applies). Either this or `csr` is required.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 1024)]
    password: Option<String>,
    /// A certificate signing request: base64 of its PEM text (PEM text itself is accepted
    /// too). Its subject CN must equal `username`. The signed certificate comes with the grant.
    #[serde(default)]
    csr: Option<String>,
    /// Names of roles the device asks for (shown to the administrator, not applied).
    #[serde(default)]
    roles: Vec<String>,
    /// Permissions the device asks for (shown to the administrator, not applied).
    #[serde(default, deserialize_with = "objects")]
    #[schema(nullable)]
    permissions: Vec<PermissionIn>,
    /// Free text for the administrator (at most 1024 characters).
    #[serde(default)]
    #[schema(max_length = 1024)]
    context: Option<String>,
}

/// The answer of C29 when granted.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RegistrationGranted)]
pub struct GrantedOut {
    /// The signed certificate: base64 of its PEM text (only when a CSR was sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<String>,
}

/// The answer of C29 while pending.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RegistrationPending)]
pub struct PendingOut {}

/// The CSR as PEM text: base64 of the PEM (the seed's form, line breaks allowed) or the PEM.
fn csr_text(csr: &str) -> CoreResult<String> {
    let trimmed = csr.trim();
    if trimmed.starts_with("-----BEGIN") {
        return Ok(trimmed.to_owned());
    }
    let compact: String = trimmed
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| {
            CoreError::invalid("csr", "must be base64 of a PEM certificate signing request")
        })?;
    String::from_utf8(bytes).map_err(|_| {
        CoreError::invalid("csr", "must be base64 of a PEM certificate signing request")
    })
}

/// C29 `POST /api/client-registry/register`.
#[utoipa::path(
    post,
    path = "/api/client-registry/register",
    operation_id = "registerClient",
    tag = "connectware",
    summary = "Register a device (C29)",
    description = "Needs no token. A new request is recorded while the registry is open (202). Sending the same request again polls it: 202 while pending, 201 once granted, with the signed certificate when a CSR was sent. A request for the same username with other credentials, or for an existing user, is 409.",
    request_body(content = RegisterIn, content_type = "application/json"),
    responses(
        (status = 201, description = "Granted: the user exists; proceed to log in", body = GrantedOut),
        (status = 202, description = "Pending: recorded, waiting for an administrator; send the same request again later", body = PendingOut),
        (status = 400, response = BadRequest),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = UnprocessableEntity),
        (status = 423, response = Locked),
        (status = 429, response = TooManyRequests),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Body(body): Body<RegisterIn>,
) -> ApiResult<Response> {
    let request = RegistrationRequest {
        username: body.username,
        password: body.password,
        csr_pem: body.csr.as_deref().map(csr_text).transpose()?,
        roles: body.roles,
        permissions: parse_grants("permissions", &body.permissions)?,
        context: body.context,
        client,
    };
    Ok(match state.core.register_client(request).await? {
        RegistrationAnswer::Pending => (StatusCode::ACCEPTED, Json(PendingOut {})).into_response(),
        RegistrationAnswer::Granted { certificate } => (
            StatusCode::CREATED,
            Json(GrantedOut {
                certificate: certificate
                    .map(|pem| base64::engine::general_purpose::STANDARD.encode(pem.as_bytes())),
            }),
        )
            .into_response(),
    })
}

/// A requested permission as listed.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RequestedPermission)]
pub struct RequestedPermissionOut {
    /// Topic or path filter.
    resource: String,
    /// Operation.
    #[schema(value_type = OperationSchema)]
    operation: Operation,
    /// Context.
    #[schema(value_type = ContextSchema)]
    context: Context,
}

/// One registration request as listed (C30).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RegistrationEntry)]
pub struct RegistrationOut {
    /// When it was recorded.
    #[schema(format = DateTime)]
    timestamp: String,
    /// The username asked for.
    username: String,
    /// `password` or `certificate` (a CSR was sent).
    #[serde(rename = "credentialType")]
    #[schema(pattern = "^(password|certificate)$")]
    credential_type: &'static str,
    /// Role names the device asked for.
    roles: Vec<String>,
    /// Free text from the device (`MQTT CONNECT` for the implicit flow).
    #[schema(required = true)]
    context: Option<String>,
    /// Permissions the device asked for.
    permissions: Vec<RequestedPermissionOut>,
    /// Whether it was granted.
    granted: bool,
}

impl From<&Registration> for RegistrationOut {
    fn from(registration: &Registration) -> Self {
        Self {
            timestamp: format_millis(registration.created_at),
            username: registration.username.clone(),
            credential_type: registration.credential_type.as_str(),
            roles: registration.requested_roles.clone(),
            context: registration.context.clone(),
            permissions: registration
                .requested_permissions
                .iter()
                .map(|grant| RequestedPermissionOut {
                    resource: grant.resource.as_str().to_owned(),
                    operation: grant.operation,
                    context: grant.context,
                })
                .collect(),
            granted: registration.granted,
        }
    }
}

/// C30 `GET /api/client-registry`.
#[utoipa::path(
    get,
    path = "/api/client-registry",
    operation_id = "listRegistrations",
    tag = "connectware",
    summary = "List registration requests (C30)",
    security(("bearer" = []), ("apiToken" = [])),
    responses(
        (status = 200, description = "Every request, oldest first, pending and granted", body = Vec<RegistrationOut>),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Vec<RegistrationOut>>> {
    let registrations = state.core.registrations().await?;
    Ok(Json(
        registrations.iter().map(RegistrationOut::from).collect(),
    ))
}

/// Body of C31.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = OpenRegistry)]
#[serde(deny_unknown_fields)]
pub struct OpenIn {
    /// How long the registry stays open, ms (default 30000; 0 closes it; at most a day).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 86_400_000, default = 30000)]
    duration: Option<u64>,
}

/// C31 `POST /api/client-registry/open`.
#[utoipa::path(
    post,
    path = "/api/client-registry/open",
    operation_id = "openRegistry",
    tag = "connectware",
    summary = "Open the client registry (C31)",
    description = "Opens the registry for `duration` ms from now, for every replica; the body may be left out (30000 ms). `duration: 0` closes it.",
    request_body(content = Option<OpenIn>, content_type = "application/json"),
    security(("bearer" = []), ("apiToken" = [])),
    responses(
        (status = 204, description = "Open (or closed with 0)"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn open(
    State(state): State<AppState>,
    _caller: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<StatusCode, Response> {
    let duration = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let json = media_type(&headers) == "application/json";
        if !json {
            return Err(error_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be sent as Content-Type: application/json".to_owned(),
                None,
            ));
        }
        open_duration(&body).map_err(IntoResponse::into_response)?
    };
    state
        .core
        .open_registry(duration.unwrap_or(DEFAULT_OPEN_MILLIS))
        .await
        .map_err(|error| ApiError(error).into_response())?;
    Ok(StatusCode::NO_CONTENT)
}

/// The `duration` of a C31 body.
fn open_duration(body: &[u8]) -> ApiResult<Option<u64>> {
    {
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|error| CoreError::invalid("body", format!("unreadable JSON: {error}")))?;
        if !value.is_object() {
            return Err(CoreError::invalid("body", "must be a JSON object").into());
        }
        let body: OpenIn = serde_json::from_value(value)
            .map_err(|error| CoreError::invalid("duration", error.to_string()))?;
        Ok(body.duration)
    }
}

/// Body of C32.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(
    as = ConfirmRegistration,
    example = json!({
        "username": "iot.device.0123456",
        "mqttPublishPrefix": "plant1/",
        "initialPermissions": [{"resource": "plant1/#", "operation": "write", "context": "mqtt"}],
        "roles": []
    })
)]
pub struct ConfirmIn {
    /// The username of a pending request.
    username: String,
    /// The new user's MQTT publish prefix.
    #[serde(rename = "mqttPublishPrefix", default)]
    mqtt_publish_prefix: Option<String>,
    /// The new user's grant types; by default what the request proves (`password`, and
    /// `certificate` when a CSR was sent).
    #[serde(rename = "grantTypes", default, deserialize_with = "optional_objects")]
    #[schema(value_type = Option<Vec<GrantTypeSchema>>, min_items = 1)]
    grant_types: Option<Vec<GrantType>>,
    /// The new user's direct permissions.
    #[serde(rename = "initialPermissions", default, deserialize_with = "objects")]
    #[schema(nullable)]
    initial_permissions: Vec<PermissionIn>,
    /// Ids of roles the new user gets (ids, not names).
    #[serde(default)]
    #[schema(value_type = Vec<uuid::Uuid>)]
    roles: Vec<String>,
}

/// C32 `POST /api/client-registry/confirm`.
#[utoipa::path(
    post,
    path = "/api/client-registry/confirm",
    operation_id = "confirmRegistration",
    tag = "connectware",
    summary = "Grant a pending registration (C32)",
    description = "Creates the user (auto-generated, with the request's password, and with its CSR signed and the certificate bound) and marks the request granted; the device collects the grant by sending its request again.",
    request_body(content = ConfirmIn, content_type = "application/json"),
    security(("bearer" = []), ("apiToken" = [])),
    responses(
        (status = 200, description = "The new user", body = UserOut),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    )
)]
pub async fn confirm(
    State(state): State<AppState>,
    _caller: Caller,
    Body(body): Body<ConfirmIn>,
) -> ApiResult<Json<UserOut>> {
    let confirmation = Confirmation {
        username: body.username,
        mqtt_publish_prefix: body
            .mqtt_publish_prefix
            .as_deref()
            .map(parse_prefix)
            .transpose()?,
        grant_types: body.grant_types,
        initial_permissions: parse_grants("initialPermissions", &body.initial_permissions)?,
        role_ids: parse_role_ids("roles", &body.roles)?,
    };
    let view = state.core.confirm_registration(confirmation).await?;
    Ok(Json(UserOut::from(&view)))
}
