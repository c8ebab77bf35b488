//! The ThingsBoard authentication dialect (`/api/auth/*`, `/api/noauth/*`, `/api/apiKey*`,
//! `/api/user*`, `/api/admin/securitySettings`, `/api/2fa/*`, `/api/auth/2fa/*`, `/api/oauth2/*`,
//! `/api/domain*`, `/api/signup/*`).
//!
//! Errors have ThingsBoard's shape `{status, message, errorCode, timestamp}` with its codes
//! and messages. Callers authenticate with `X-Authorization: Bearer <JWT>` (falling back to
//! `Authorization`), or with `X-Authorization: ApiKey tb_…`; ThingsBoard authorities decide
//! what they may do. Compatibility and deliberate differences: `docs/thingsboard.md`.

mod apikeys;
mod auth;
mod domains;
mod error;
mod extract;
mod links;
mod oauth2;
mod oauth2_login;
mod oauth2_wire;
mod paging;
mod signup;
mod twofa;
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
    tags((name = "thingsboard", description = "The ThingsBoard authentication dialect (T1–T53 and companions)"))
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
        .routes(routes!(
            twofa::platform_settings,
            twofa::save_platform_settings
        ))
        .routes(routes!(twofa::available_providers))
        .routes(routes!(twofa::account_settings))
        .routes(routes!(
            twofa::save_config,
            twofa::update_config,
            twofa::delete_config
        ))
        .routes(routes!(twofa::generate_config))
        .routes(routes!(twofa::submit_config))
        .routes(routes!(twofa::login_providers))
        .routes(routes!(twofa::send_code))
        .routes(routes!(twofa::check_code))
        .routes(routes!(twofa::configuration_login))
        .routes(routes!(oauth2::save_client))
        .routes(routes!(oauth2::get_client, oauth2::delete_client))
        .routes(routes!(oauth2::client_infos))
        .routes(routes!(oauth2::client_list))
        .routes(routes!(oauth2::login_processing_url))
        .routes(routes!(oauth2::login_clients))
        .routes(routes!(oauth2::templates, oauth2::save_template))
        .routes(routes!(oauth2::delete_template))
        .routes(routes!(domains::save))
        .routes(routes!(domains::delete))
        .routes(routes!(domains::infos))
        .routes(routes!(domains::info))
        .routes(routes!(domains::set_clients))
        .routes(routes!(signup::sign_up))
        .routes(routes!(signup::activate_email))
        .routes(routes!(signup::activate_by_email_code))
        .routes(routes!(signup::resend_email_activation))
        .routes(routes!(signup::mobile_login))
        .routes(routes!(signup::recaptcha_public_key))
        .routes(routes!(signup::recaptcha_params))
        .routes(routes!(signup::accept_privacy_policy))
        .routes(routes!(signup::privacy_policy_accepted))
        .routes(routes!(
            signup::delete_tenant_account,
            signup::delete_tenant_account_post
        ))
        .routes(routes!(oauth2_login::authorize))
        .routes(routes!(oauth2_login::callback))
}
