//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` descriptions, and
//! the Swagger UI that shows it.
//!
//! Every route is registered through [`OpenApiRouter`] with `routes!(…)`, which takes each
//! handler's description together with the handler: a route cannot be served without being
//! documented. The document is served at [`DOCUMENT_PATH`], the UI at [`DOCS_PATH`]; neither is
//! part of the document, and neither needs a token.

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::AppState;

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/api/openapi.json";

/// Where the Swagger UI is served (`/api/docs` redirects to `/api/docs/`).
pub const DOCS_PATH: &str = "/api/docs";

/// The Content-Security-Policy of the Swagger UI pages: its scripts, styles and images are all
/// served by Gatehouse itself (vendored at build time); the UI sets inline styles and shows
/// `data:` images, but runs no inline script. API answers keep the strict default policy.
pub const DOCS_CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'";

/// Security scheme: `Authorization: Bearer <token>` (a bare `Authorization: <token>` works too).
pub const BEARER: &str = "bearer";

/// Security scheme: `?apiToken=<token>`.
pub const API_TOKEN: &str = "apiToken";

/// Security scheme: ThingsBoard's `X-Authorization: Bearer <JWT>` or `X-Authorization: ApiKey tb_…`.
pub const X_AUTHORIZATION: &str = "xAuthorization";

/// The document's frame: title, version, tags and security schemes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gatehouse",
        description = "Identity and access server for IoT platforms. Errors of the Connectware \
                       dialect have the shape `ConnectwareError`; see docs/connectware.md."
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "metrics", description = "Prometheus metrics")
    )
)]
struct GatehouseDoc;

/// Adds the security schemes that authenticated operations refer to.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A token from `POST /api/login` in `Authorization: Bearer <token>` \
                         (the bare `Authorization: <token>` is accepted too).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            API_TOKEN,
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "apiToken",
                "A token from `POST /api/login` in the query; `Authorization` wins when both \
                 are sent.",
            ))),
        );
        components.add_security_scheme(
            X_AUTHORIZATION,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Authorization",
                "ThingsBoard dialect: `Bearer <token>` with a token from `POST /api/auth/login` \
                 (or from `POST /api/login`), or `ApiKey tb_…`. `Authorization` is read when \
                 `X-Authorization` is absent.",
            ))),
        );
    }
}

/// Every documented route: health, metrics and each dialect.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(GatehouseDoc::openapi())
        .merge(crate::health::router())
        .merge(crate::metrics::router())
        .merge(crate::dialect::connectware::router())
        .merge(crate::dialect::thingsboard::router())
        .merge(crate::dialect::broker::router())
}

/// The OpenAPI document of every route.
pub fn document() -> Document {
    router().into_openapi()
}

/// The routes serving `document` and the Swagger UI over it, with the UI's own
/// Content-Security-Policy.
pub fn docs_router(document: Document) -> Router<AppState> {
    Router::from(SwaggerUi::new(DOCS_PATH).url(DOCUMENT_PATH, document))
        .layer(axum::middleware::from_fn(docs_security_policy))
}

/// Sets the Swagger UI's Content-Security-Policy on its pages; the document itself keeps the
/// default policy (set later by the shared middleware, which leaves a present header alone).
async fn docs_security_policy(request: Request, next: Next) -> Response {
    let is_ui = request.uri().path().starts_with(DOCS_PATH);
    let mut response = next.run(request).await;
    if is_ui {
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_CONTENT_SECURITY_POLICY),
        );
    }
    response
}
