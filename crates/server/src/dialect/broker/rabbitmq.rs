//! The RabbitMQ HTTP auth backend (`rabbitmq_auth_backend_http`) for RabbitMQ's MQTT plugin:
//! `/api/broker/rabbitmq/{user,vhost,resource,topic}`, GET (query string, RabbitMQ's default)
//! or POST (form body, `http_method = post`). Answers are `allow` or `deny` as plain text.
//!
//! - `user`: username and password (or an access token or API key as the password); no
//!   management tags are granted;
//! - `vhost`: any known, enabled user;
//! - `resource`: what the MQTT plugin itself needs and nothing more: read and write on
//!   exchanges (publishing and binding; the topic check below decides per routing key), and
//!   every permission on the plugin's own queues (`mqtt-subscription-…`, `mqtt-will-…`);
//! - `topic`: the routing key translated back to an MQTT topic (`.` and `/` swapped, `*` →
//!   `+`), `write` = publish, `read` = subscribe (a filter). A publish of a user with a publish
//!   prefix is denied, as RabbitMQ cannot rewrite the topic.
//!
//! RabbitMQ treats any status but 200 as an error and refuses; malformed requests are 400 and an
//! unavailable Gatehouse 503, both with the body `deny`.

use std::time::Instant;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gatehouse_core::broker::MqttAccess;
use gatehouse_core::CoreError;
use serde::Deserialize;
use utoipa::{IntoParams, IntoResponses, ToSchema};

use super::access::HookCaller;
use super::answer::AnswerBody;
use super::params::{HookRequest, Params};
use super::{connect_with_password, failure_status, record, Outcome, TAG};
use crate::AppState;

/// Queue-name prefixes of the queues RabbitMQ's MQTT plugin declares for its clients.
const MQTT_QUEUE_PREFIXES: [&str; 2] = ["mqtt-subscription-", "mqtt-will-"];

/// Parameters of `user`.
#[derive(Debug, Deserialize, ToSchema, IntoParams)]
#[schema(as = RabbitMqUserRequest)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Documentation only: requests are read by `Params`.
pub struct UserParams {
    /// The username.
    #[param(min_length = 1, required = false)]
    #[schema(min_length = 1)]
    username: String,
    /// The password, or an access token or API key.
    password: Option<String>,
}

/// Parameters of `vhost`.
#[derive(Debug, Deserialize, ToSchema, IntoParams)]
#[schema(as = RabbitMqVhostRequest)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Documentation only.
pub struct VhostParams {
    /// The username.
    #[param(min_length = 1, required = false)]
    #[schema(min_length = 1)]
    username: String,
    /// The virtual host.
    vhost: Option<String>,
    /// The client's address.
    ip: Option<String>,
}

/// The resource kinds of `resource`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = RabbitMqResourceKind)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // Documentation only.
pub enum ResourceKind {
    /// An exchange.
    Exchange,
    /// A queue.
    Queue,
    /// A topic.
    Topic,
}

/// The permissions RabbitMQ asks about.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = RabbitMqPermission)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // Documentation only.
pub enum Permission {
    /// Declare or delete.
    Configure,
    /// Publish, bind to.
    Write,
    /// Consume, bind from.
    Read,
}

/// Parameters of `resource`.
#[derive(Debug, Deserialize, ToSchema, IntoParams)]
#[schema(as = RabbitMqResourceRequest)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Documentation only.
pub struct ResourceParams {
    /// The username.
    #[param(min_length = 1, required = false)]
    #[schema(min_length = 1)]
    username: String,
    /// The virtual host.
    vhost: Option<String>,
    /// What kind of resource.
    #[param(inline, required = false)]
    resource: ResourceKind,
    /// The resource's name.
    #[param(min_length = 1, required = false)]
    #[schema(min_length = 1)]
    name: String,
    /// The permission asked for.
    #[param(inline, required = false)]
    permission: Permission,
}

/// Parameters of `topic`.
#[derive(Debug, Deserialize, ToSchema, IntoParams)]
#[schema(as = RabbitMqTopicRequest)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Documentation only.
pub struct TopicParams {
    /// The username.
    #[param(min_length = 1, required = false)]
    #[schema(min_length = 1)]
    username: String,
    /// The virtual host.
    vhost: Option<String>,
    /// Always `topic`.
    resource: Option<String>,
    /// The exchange.
    name: Option<String>,
    /// `write` (publish) or `read` (subscribe).
    #[param(inline, required = false)]
    permission: Permission,
    /// The routing key: the MQTT topic with `/` and `.` swapped and `+` as `*`.
    #[param(min_length = 1, required = false)]
    #[schema(min_length = 1)]
    routing_key: String,
}

/// The documented answers of every path.
#[derive(IntoResponses)]
#[allow(dead_code)] // Documentation only.
enum RabbitMqAnswers {
    /// Decided.
    #[response(status = 200, description = "`allow` or `deny` (text/plain)", content_type = "text/plain", example = json!("allow"))]
    Decided(String),
    /// Malformed.
    #[response(status = 400, description = "Malformed request: `deny`", content_type = "text/plain", example = json!("deny"))]
    Malformed(String),
    /// Refused caller.
    #[response(status = 403, description = "The caller may not use the broker hooks")]
    Refused(AnswerBody),
    /// Too large.
    #[response(status = 413, description = "Body too large")]
    TooLarge(AnswerBody),
    /// Unavailable.
    #[response(status = 503, description = "Gatehouse cannot decide now: `deny`", content_type = "text/plain", example = json!("deny"))]
    Unavailable(String),
}

/// An answer: its status and outcome (the body follows from both).
struct Answer {
    status: StatusCode,
    outcome: Outcome,
}

impl Answer {
    const ALLOW: Self = Self {
        status: StatusCode::OK,
        outcome: Outcome::Allowed,
    };
    const DENY: Self = Self {
        status: StatusCode::OK,
        outcome: Outcome::Denied,
    };
    const MALFORMED: Self = Self {
        status: StatusCode::BAD_REQUEST,
        outcome: Outcome::Denied,
    };

    fn decided(allowed: bool) -> Self {
        if allowed {
            Self::ALLOW
        } else {
            Self::DENY
        }
    }

    fn from_core(error: CoreError) -> Self {
        let Some(status) = failure_status("rabbitmq", &error) else {
            return Self::DENY;
        };
        Self {
            status,
            outcome: Outcome::Error,
        }
    }
}

/// The MQTT topic (or filter) of a routing key: RabbitMQ's MQTT plugin swaps `/` and `.` and
/// writes `+` as `*`.
fn mqtt_topic(routing_key: &str) -> String {
    routing_key
        .chars()
        .map(|c| match c {
            '.' => '/',
            '/' => '.',
            '*' => '+',
            other => other,
        })
        .collect()
}

/// Whether `username` names a known, enabled user.
async fn known(state: &AppState, username: &str) -> Answer {
    match state.core.mqtt_principal(username).await {
        Ok(principal) => Answer::decided(principal.is_some_and(|principal| principal.enabled)),
        Err(error) => Answer::from_core(error),
    }
}

async fn user(state: &AppState, params: &Params) -> Result<Answer, String> {
    let username = params.required("username")?;
    let password = params.text("password")?;
    Ok(
        match connect_with_password(state, username, password).await {
            Ok(_) => Answer::ALLOW,
            Err(error) => Answer::from_core(error),
        },
    )
}

async fn vhost(state: &AppState, params: &Params) -> Result<Answer, String> {
    let username = params.required("username")?;
    params.text("vhost")?;
    params.text("ip")?;
    Ok(known(state, username).await)
}

async fn resource(state: &AppState, params: &Params) -> Result<Answer, String> {
    let username = params.required("username")?;
    params.text("vhost")?;
    let name = params.required("name")?;
    let permission = params.required("permission")?;
    if !matches!(permission, "configure" | "write" | "read") {
        return Err("permission must be configure, write or read".to_owned());
    }
    let needed_by_mqtt = match params.required("resource")? {
        "exchange" | "topic" => permission != "configure",
        "queue" => MQTT_QUEUE_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix)),
        _ => return Err("resource must be exchange, queue or topic".to_owned()),
    };
    if !needed_by_mqtt {
        return Ok(Answer::DENY);
    }
    Ok(known(state, username).await)
}

async fn topic(state: &AppState, params: &Params) -> Result<Answer, String> {
    let username = params.required("username")?;
    params.text("vhost")?;
    params.text("resource")?;
    params.text("name")?;
    let routing_key = params.required("routing_key")?;
    let access = match params.required("permission")? {
        "write" => MqttAccess::Publish,
        "read" => MqttAccess::Subscribe,
        "configure" => return Ok(Answer::DENY),
        _ => return Err("permission must be configure, write or read".to_owned()),
    };
    let topic = mqtt_topic(routing_key);
    Ok(
        match state.core.mqtt_authorize(username, access, &topic).await {
            Ok(decision) => Answer::decided(decision.allows_as_asked(&topic)),
            Err(error) => Answer::from_core(error),
        },
    )
}

/// Reads the parameters, decides, counts and renders `allow` / `deny`.
async fn answer<F, Fut>(hook: &'static str, request: HookRequest, decide: F) -> Response
where
    F: FnOnce(Params) -> Fut,
    Fut: std::future::Future<Output = Result<Answer, String>>,
{
    let started = Instant::now();
    let (answer, reason) = match request.params {
        Ok(params) => match decide(params).await {
            Ok(answer) => (answer, None),
            Err(reason) => (Answer::MALFORMED, Some(reason)),
        },
        Err(reason) => (Answer::MALFORMED, Some(reason)),
    };
    record(hook, answer.outcome, started, None, reason.as_deref());
    let body = if answer.outcome == Outcome::Allowed {
        "allow"
    } else {
        "deny"
    };
    (
        answer.status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// Declares the GET and POST operations of one path: the documentation and a handler that
/// reads the request and decides with `$decide`.
macro_rules! rabbitmq_path {
    ($get:ident, $post:ident, $path:literal, $id:literal, $params:ty, $hook:literal, $decide:ident, $description:literal) => {
        #[doc = concat!("RabbitMQ `", $hook, "` check (GET: query string).")]
        #[utoipa::path(
            get, path = $path, tag = TAG, operation_id = concat!($id, "Get"),
            summary = concat!("RabbitMQ `", $hook, "` check (GET: query string)."),
            description = concat!($description, callers_note!()),
            params($params), responses(RabbitMqAnswers),
        )]
        pub async fn $get(
            _caller: HookCaller,
            axum::extract::State(state): axum::extract::State<AppState>,
            request: HookRequest,
        ) -> Response {
            answer(concat!("rabbitmq_", $hook), request, |params| async move {
                $decide(&state, &params).await
            })
            .await
        }

        #[doc = concat!("RabbitMQ `", $hook, "` check (POST: form body).")]
        #[utoipa::path(
            post, path = $path, tag = TAG, operation_id = $id,
            summary = concat!("RabbitMQ `", $hook, "` check (POST: form body)."),
            description = concat!($description, callers_note!()),
            request_body(content = $params, content_type = "application/x-www-form-urlencoded"),
            responses(RabbitMqAnswers),
        )]
        pub async fn $post(
            caller: HookCaller,
            state: axum::extract::State<AppState>,
            request: HookRequest,
        ) -> Response {
            $get(caller, state, request).await
        }
    };
}

rabbitmq_path!(
    user_get,
    user_post,
    "/api/broker/rabbitmq/user",
    "rabbitmqUser",
    UserParams,
    "user",
    user,
    "RabbitMQ `user_path`: `allow` when the username and password (or an access token or API \
     key of that user) are right, else `deny`. No management tags are granted."
);
rabbitmq_path!(
    vhost_get,
    vhost_post,
    "/api/broker/rabbitmq/vhost",
    "rabbitmqVhost",
    VhostParams,
    "vhost",
    vhost,
    "RabbitMQ `vhost_path`: `allow` for known, enabled users."
);
rabbitmq_path!(
    resource_get,
    resource_post,
    "/api/broker/rabbitmq/resource",
    "rabbitmqResource",
    ResourceParams,
    "resource",
    resource,
    "RabbitMQ `resource_path`: `allow` for what the MQTT plugin needs: read and write on \
     exchanges, every permission on its queues (`mqtt-subscription-…`, `mqtt-will-…`); `deny` \
     for anything else."
);
rabbitmq_path!(
    topic_get,
    topic_post,
    "/api/broker/rabbitmq/topic",
    "rabbitmqTopic",
    TopicParams,
    "topic",
    topic,
    "RabbitMQ `topic_path`: the routing key as an MQTT topic (`.` and `/` swapped, `*` as `+`); \
     `write` is a publish, `read` a subscribe, checked against the user's `mqtt` permissions."
);

#[cfg(test)]
mod tests {
    use super::mqtt_topic;

    #[test]
    fn routing_keys_become_mqtt_topics() {
        assert_eq!(mqtt_topic("plant1.line2.temp"), "plant1/line2/temp");
        assert_eq!(mqtt_topic("cmd.*.in"), "cmd/+/in");
        assert_eq!(mqtt_topic("a.#"), "a/#");
        assert_eq!(mqtt_topic("v1/2.x"), "v1.2/x");
    }
}
