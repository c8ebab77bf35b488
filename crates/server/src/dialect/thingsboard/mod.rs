//! The ThingsBoard authentication dialect (`/api/auth/*`, `/api/noauth/*`, `/api/apiKey*`,
//! `/api/user*`, `/api/admin/securitySettings`).
//!
//! Errors have ThingsBoard's shape `{status, message, errorCode, timestamp}` with its codes
//! and messages. Callers authenticate with `X-Authorization: Bearer <JWT>` (falling back to
//! `Authorization`), or with `X-Authorization: ApiKey tb_…`; ThingsBoard authorities decide
//! what they may do. Compatibility and deliberate differences: `docs/thingsboard.md`.

mod apikeys;
mod auth;
mod error;
mod extract;
mod links;
mod users;
mod wire;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{
    internal_error_response, method_not_allowed, not_found, owns_path, timeout_response, TbError,
};

use crate::AppState;

/// The OpenAPI tag of this dialect's operations.
const TAG: &str = "thingsboard";

/// The dialect's shared components.
#[derive(OpenApi)]
#[openapi(
    components(schemas(error::ErrorBody)),
    tags((name = "thingsboard", description = "The ThingsBoard authentication dialect (T1–T11, T22–T26 and companions)"))
)]
struct ThingsboardDoc;

/// The ThingsBoard routes, each registered with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ThingsboardDoc::openapi())
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::user))
        .routes(routes!(auth::change_password))
        .routes(routes!(auth::password_policy))
        .routes(routes!(
            auth::security_settings,
            auth::save_security_settings
        ))
        .routes(routes!(links::check_activate_token, links::activate))
        .routes(routes!(links::check_reset_token, links::reset_password))
        .routes(routes!(links::reset_password_by_email))
        .routes(routes!(users::save))
        .routes(routes!(users::get_one, users::delete))
        .routes(routes!(users::activation_link))
        .routes(routes!(users::set_enabled))
        .routes(routes!(apikeys::save))
        .routes(routes!(apikeys::delete))
        .routes(routes!(apikeys::enable))
        .routes(routes!(apikeys::describe))
        .routes(routes!(apikeys::list))
}
