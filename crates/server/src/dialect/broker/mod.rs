//! The MQTT broker hooks (`/api/broker/*`): brokers ask Gatehouse whether a client may connect,
//! and what it may publish, subscribe to and receive. Each hook speaks its broker's wire format
//! exactly and calls one core operation of `gatehouse_core::broker`.
//!
//! Served so far: the mosquitto-go-auth HTTP backend, which amqtt's HTTP plugins speak too
//! (`/api/broker/http/{user,superuser,acl}`, [`http_backend`]).
//!
//! Only brokers may call the hooks ([`HookAccess`]): callers from the configured networks
//! (default: loopback) or presenting the configured shared secret.

mod access;
mod answer;
mod http_backend;
mod params;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use access::{HookAccess, DEFAULT_ALLOWED_ADDRESSES, SECRET_HEADER};

use crate::AppState;

/// The OpenAPI tag of the hooks.
const TAG: &str = "broker";

/// The hooks' shared components.
#[derive(OpenApi)]
#[openapi(
    components(schemas(answer::AnswerBody, http_backend::ResponseFormat)),
    tags((name = "broker", description = "MQTT broker hooks (mosquitto-go-auth and amqtt HTTP \
        backends). Callable only from `broker.hook_allowed_addresses` (default: loopback) or \
        with the header `X-Gatehouse-Broker-Secret`; never with a user's token."))
)]
struct BrokerDoc;

/// The broker hook routes, each registered with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(BrokerDoc::openapi())
        .routes(routes!(
            http_backend::user_post,
            http_backend::user_get,
            http_backend::user_put
        ))
        .routes(routes!(
            http_backend::superuser_post,
            http_backend::superuser_get,
            http_backend::superuser_put
        ))
        .routes(routes!(
            http_backend::acl_post,
            http_backend::acl_get,
            http_backend::acl_put
        ))
}
