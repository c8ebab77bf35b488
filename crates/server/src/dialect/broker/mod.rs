//! The MQTT broker hooks (`/api/broker/*`): brokers ask Gatehouse whether a client may connect,
//! and what it may publish, subscribe to and receive. Each hook speaks its broker's wire format
//! exactly and calls one core operation of `gatehouse_core::broker`.
//!
//! - the mosquitto-go-auth HTTP backend, which amqtt's HTTP plugins speak too
//!   (`/api/broker/http/{user,superuser,acl}`, [`http_backend`]);
//! - VerneMQ webhooks (`/api/broker/vernemq`) and MQTT 5 enhanced authentication
//!   (`/api/broker/auth/enhanced`, C37) ([`vernemq`]);
//! - EMQX 5 HTTP authentication and authorization (`/api/broker/emqx/{authn,authz}`, [`emqx`]);
//! - the RabbitMQ HTTP auth backend (`/api/broker/rabbitmq/…`, [`rabbitmq`]).
//!
//! Only brokers may call the hooks ([`HookAccess`]): callers from the configured networks
//! (default: loopback) or presenting the configured shared secret.

/// Who may call the hooks: the sentence every hook operation's description carries.
macro_rules! callers_note {
    () => {
        " Callable only by brokers: from an address in `broker.hook_allowed_addresses` \
        (default: loopback), or with the header `X-Gatehouse-Broker-Secret` equal to \
        `broker.hook_secret`; an `Authorization` token does not open it."
    };
}

mod access;
mod answer;
mod certificates;
mod emqx;
mod http_backend;
mod params;
mod rabbitmq;
mod vernemq;

use std::time::Instant;

use axum::http::StatusCode;
use gatehouse_core::CoreError;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use access::{HookAccess, DEFAULT_ALLOWED_ADDRESSES, SECRET_HEADER};
pub use certificates::CertificateListeners;

use crate::AppState;

/// The OpenAPI tag of the hooks.
const TAG: &str = "broker";

/// The hooks' shared components.
#[derive(OpenApi)]
#[openapi(
    components(schemas(
        answer::AnswerBody,
        http_backend::ResponseFormat,
        vernemq::Hook,
        vernemq::AnyHookRequest,
        vernemq::AnyHookAnswer,
        vernemq::AuthRequest,
        vernemq::AuthProperties,
        emqx::EmqxAnswer,
        emqx::Action,
        emqx::AuthnParams,
        emqx::AuthzParams,
        rabbitmq::UserParams,
        rabbitmq::VhostParams,
        rabbitmq::ResourceParams,
        rabbitmq::TopicParams,
        rabbitmq::ResourceKind,
        rabbitmq::Permission,
    )),
    tags((name = "broker", description = "MQTT broker hooks: mosquitto-go-auth and amqtt HTTP \
        backends, VerneMQ webhooks and MQTT 5 enhanced authentication, EMQX 5 HTTP \
        authentication and authorization, RabbitMQ HTTP auth backend. Callable only from `broker.hook_allowed_addresses` (default: loopback) or \
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
        .routes(routes!(vernemq::webhook))
        .routes(routes!(vernemq::enhanced))
        .routes(routes!(emqx::authenticate_post, emqx::authenticate_get))
        .routes(routes!(emqx::authorize_post, emqx::authorize_get))
        .routes(routes!(rabbitmq::user_get, rabbitmq::user_post))
        .routes(routes!(rabbitmq::vhost_get, rabbitmq::vhost_post))
        .routes(routes!(rabbitmq::resource_get, rabbitmq::resource_post))
        .routes(routes!(rabbitmq::topic_get, rabbitmq::topic_post))
}

/// A CONNECT with a username and password (or a token or API key as the password), as the
/// HTTP-style hooks pass it: the one call they share.
async fn connect_with_password(
    state: &AppState,
    username: &str,
    password: Option<&str>,
) -> Result<gatehouse_core::broker::MqttLogin, CoreError> {
    state
        .core
        .mqtt_connect(gatehouse_core::broker::MqttCredentials {
            username: Some(username.to_owned()),
            password: password.map(str::to_owned),
            certificate: None,
        })
        .await
}

/// The status of a core failure that is not a decision: 503 when the core is unavailable (the
/// database, the hashing queue), 500 for a bug, each logged; `None` for refusals, which every
/// hook answers as a denial in its own shape.
fn failure_status(hook_family: &'static str, error: &CoreError) -> Option<StatusCode> {
    match error {
        CoreError::Unavailable { reason } => {
            tracing::warn!(%reason, hook_family, "broker hook: core unavailable");
            Some(StatusCode::SERVICE_UNAVAILABLE)
        }
        CoreError::Internal(detail) => {
            tracing::error!(error = %detail, hook_family, "broker hook: internal error");
            Some(StatusCode::INTERNAL_SERVER_ERROR)
        }
        _ => None,
    }
}

/// How a hook call ended, as the metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The broker was told to let the client go on.
    Allowed,
    /// The broker was told to refuse (also malformed requests).
    Denied,
    /// Gatehouse could not decide (503, 500).
    Error,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Error => "error",
        }
    }
}

/// Counts and times one hook call (`gatehouse_broker_hook_answers_total`,
/// `gatehouse_broker_hook_duration_seconds`, labelled by hook and outcome) and logs it at debug
/// level without credentials: the one place every hook reports to.
fn record(
    hook: &'static str,
    outcome: Outcome,
    started: Instant,
    username: Option<&str>,
    reason: Option<&str>,
) {
    let result = outcome.label();
    metrics::counter!("gatehouse_broker_hook_answers_total", "hook" => hook, "result" => result)
        .increment(1);
    metrics::histogram!("gatehouse_broker_hook_duration_seconds", "hook" => hook, "result" => result)
        .record(started.elapsed().as_secs_f64());
    tracing::debug!(hook, username, result, reason, "broker hook");
}
