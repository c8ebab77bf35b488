//! The Connectware Auth-Server dialect (`/api/users`, `/api/roles`, `/api/login`, …).
//!
//! Errors use one JSON shape, documented in `docs/connectware.md`:
//! `{"statusCode": 400, "error": "Bad Request", "message": "…", "field": "username"}`
//! (`field` only when one field is at fault). Callers authenticate with
//! `Authorization: Bearer <token>` or `?apiToken=<token>`; each request is authorized by the
//! caller's `http` permissions against the request path.

mod caller;
mod certificates;
mod entra;
mod error;
mod extract;
mod maintenance;
mod mfa;
mod permissions;
mod registry;
mod roles;
mod schema;
mod session;
mod users;
mod wire;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use caller::Caller;
pub use error::{method_not_allowed, not_found, panic_response, timeout_response, ApiError};
pub use maintenance::streams_upload;

use crate::AppState;

/// The dialect's shared components: the error shape and the error answers every operation
/// refers to.
#[derive(OpenApi)]
#[openapi(
    components(
        schemas(error::ErrorBody),
        responses(
            schema::BadRequest,
            schema::Unauthorized,
            schema::Forbidden,
            schema::NotFound,
            schema::Conflict,
            schema::PayloadTooLarge,
            schema::UnsupportedMediaType,
            schema::UnprocessableEntity,
            schema::Locked,
            schema::TooManyRequests,
            schema::ServiceUnavailable,
            schema::InternalError,
        )
    ),
    tags((name = "connectware", description = "The Connectware Auth-Server dialect (C1–C36, C38–C47)"))
)]
struct ConnectwareDoc;

/// The Connectware routes (C1–C36, C38–C47), each registered with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ConnectwareDoc::openapi())
        .routes(routes!(users::create))
        .routes(routes!(users::list))
        .routes(routes!(users::create_batch))
        .routes(routes!(users::change_password))
        .routes(routes!(users::get_one, users::update, users::delete))
        .routes(routes!(users::tokens, users::delete_tokens))
        .routes(routes!(users::add_certificate, users::remove_certificate))
        .routes(routes!(users::add_role, users::remove_role))
        .routes(routes!(roles::create, roles::list))
        .routes(routes!(roles::page))
        .routes(routes!(roles::get_one, roles::update, roles::delete))
        .routes(routes!(roles::permissions, roles::add_permission))
        .routes(routes!(
            roles::permission,
            roles::update_permission,
            roles::delete_permission
        ))
        .routes(routes!(permissions::page))
        .routes(routes!(permissions::ids))
        .routes(routes!(session::login))
        .routes(routes!(entra::login))
        .routes(routes!(entra::callback))
        .routes(routes!(session::session))
        .routes(routes!(mfa::enable))
        .routes(routes!(mfa::validate))
        .routes(routes!(mfa::login))
        .routes(routes!(mfa::disable))
        .routes(routes!(mfa::regenerate_backup_codes))
        .routes(routes!(registry::register))
        .routes(routes!(registry::list))
        .routes(routes!(registry::open))
        .routes(routes!(registry::confirm))
        .routes(routes!(certificates::list, certificates::add))
        .routes(routes!(certificates::content))
        .routes(routes!(certificates::delete))
        .routes(routes!(maintenance::status))
        .routes(routes!(maintenance::backup))
        .routes(routes!(maintenance::download))
        .routes(routes!(maintenance::restore))
}
