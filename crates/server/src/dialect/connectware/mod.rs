//! The Connectware Auth-Server dialect (`/api/users`, `/api/roles`, `/api/login`, …).
//!
//! Errors use one JSON shape, documented in `docs/connectware.md`:
//! `{"statusCode": 400, "error": "Bad Request", "message": "…", "field": "username"}`
//! (`field` only when one field is at fault). Callers authenticate with
//! `Authorization: Bearer <token>` or `?apiToken=<token>`; each request is authorized by the
//! caller's `http` permissions against the request path.

mod caller;
mod error;
mod extract;
mod permissions;
mod roles;
mod session;
mod users;
mod wire;

use axum::routing::{get, post, put};
use axum::Router;

pub use caller::Caller;
pub use error::{method_not_allowed, not_found, panic_response, timeout_response, ApiError};

use crate::AppState;

/// The Connectware routes (C1–C28).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users", post(users::create))
        .route("/api/listUsers", get(users::list))
        .route("/api/users/batch", post(users::create_batch))
        .route("/api/users/change-password", put(users::change_password))
        .route(
            "/api/users/{id}",
            get(users::get_one).put(users::update).delete(users::delete),
        )
        .route(
            "/api/users/{id}/tokens",
            get(users::tokens).delete(users::delete_tokens),
        )
        .route(
            "/api/users/{id}/certificates",
            post(users::add_certificate).delete(users::remove_certificate),
        )
        .route(
            "/api/users/{id}/roles",
            post(users::add_role).delete(users::remove_role),
        )
        .route("/api/roles", post(roles::create).get(roles::list))
        .route("/api/roles/page", get(roles::page))
        .route(
            "/api/roles/{id}",
            get(roles::get_one).put(roles::update).delete(roles::delete),
        )
        .route(
            "/api/roles/{id}/permissions",
            get(roles::permissions).post(roles::add_permission),
        )
        .route(
            "/api/roles/{id}/permissions/{pem_id}",
            get(roles::permission)
                .put(roles::update_permission)
                .delete(roles::delete_permission),
        )
        .route("/api/permissions/page", get(permissions::page))
        .route("/api/permissions/ids", get(permissions::ids))
        .route("/api/login", post(session::login))
        .route("/api/session", get(session::session))
}
