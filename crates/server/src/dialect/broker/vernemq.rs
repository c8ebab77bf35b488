//! VerneMQ webhooks (`vmq_webhooks`): one endpoint, `POST /api/broker/vernemq`, for every hook,
//! dispatched on the `vernemq-hook` header; and `POST /api/broker/auth/enhanced` (C37), the
//! `on_auth_m5` hook on a path of its own.
//!
//! Answers follow `vmq_webhooks_plugin`: decisions are HTTP 200 with `{"result":"ok"}` (plus
//! `modifiers`, or top-level `topics` for MQTT 3 subscribes) or `{"result":{"error":"…"}}`;
//! informational hooks get `{}`. VerneMQ treats any other status as an error, which refuses the
//! client, so malformed requests are 400 and an unavailable core is 503, both with an error
//! `result` that says why.
//!
//! - `auth_on_register(_m5)`: a certificate from a trusted listener, a client that just passed
//!   enhanced authentication, or username and password (or a token or API key as the password);
//! - `auth_on_publish(_m5)`: the topic modifier carries the user's publish prefix;
//! - `auth_on_subscribe(_m5)`: refused filters get qos 128 (MQTT 3) or 135 (MQTT 5);
//! - `on_auth_m5`: enhanced authentication with [`TOKEN_AUTH_METHOD`].
//!
//! Allowed publish and subscribe answers carry `cache-control: max-age=<broker.cache_ttl_secs>`
//! (VerneMQ then skips the hook for that long, the same bound as a change made on another
//! replica); register answers and denials are never cached.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use gatehouse_core::broker::{
    EnhancedAuth, MqttAccess, MqttCredentials, MqttLogin, TOKEN_AUTH_METHOD,
};
use gatehouse_core::CoreError;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::access::HookCaller;
use super::certificates::read_client_cert;
use super::{failure_status, record, Outcome, TAG};
use crate::AppState;

/// The header naming the hook.
const HOOK_HEADER: &str = "vernemq-hook";

/// The reason of every refusal; VerneMQ turns it into "not authorized" for the client.
const NOT_ALLOWED: &str = "not_allowed";

/// SUBACK codes of a refused filter.
const REFUSED_QOS_V3: u8 = 128;
const REFUSED_QOS_V5: u8 = 135;

/// The hooks this endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = VerneMqHook)]
pub enum Hook {
    /// CONNECT of an MQTT 3 client.
    AuthOnRegister,
    /// CONNECT of an MQTT 5 client.
    AuthOnRegisterM5,
    /// PUBLISH of an MQTT 3 client.
    AuthOnPublish,
    /// PUBLISH of an MQTT 5 client.
    AuthOnPublishM5,
    /// SUBSCRIBE of an MQTT 3 client.
    AuthOnSubscribe,
    /// SUBSCRIBE of an MQTT 5 client.
    AuthOnSubscribeM5,
    /// MQTT 5 enhanced authentication (AUTH).
    OnAuthM5,
    /// UNSUBSCRIBE (allowed as asked).
    OnUnsubscribe,
    /// UNSUBSCRIBE of an MQTT 5 client (allowed as asked).
    OnUnsubscribeM5,
    /// A delivery (allowed: subscriptions were checked).
    OnDeliver,
    /// A delivery to an MQTT 5 client.
    OnDeliverM5,
    /// Informational: answered `{}`.
    OnRegister,
    /// Informational.
    OnRegisterM5,
    /// Informational.
    OnPublish,
    /// Informational.
    OnPublishM5,
    /// Informational.
    OnSubscribe,
    /// Informational.
    OnSubscribeM5,
    /// Informational.
    OnOfflineMessage,
    /// Informational.
    OnClientWakeup,
    /// Informational.
    OnClientOffline,
    /// Informational.
    OnClientGone,
    /// Informational.
    OnSessionExpired,
    /// Informational.
    OnDeliveryComplete,
}

impl Hook {
    /// The metrics label.
    fn label(self) -> &'static str {
        match self {
            Self::AuthOnRegister => "vernemq_auth_on_register",
            Self::AuthOnRegisterM5 => "vernemq_auth_on_register_m5",
            Self::AuthOnPublish => "vernemq_auth_on_publish",
            Self::AuthOnPublishM5 => "vernemq_auth_on_publish_m5",
            Self::AuthOnSubscribe => "vernemq_auth_on_subscribe",
            Self::AuthOnSubscribeM5 => "vernemq_auth_on_subscribe_m5",
            Self::OnAuthM5 => "vernemq_on_auth_m5",
            Self::OnUnsubscribe | Self::OnUnsubscribeM5 => "vernemq_on_unsubscribe",
            Self::OnDeliver | Self::OnDeliverM5 => "vernemq_on_deliver",
            _ => "vernemq_informational",
        }
    }
}

/// The `vernemq-hook` header.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // Documentation only: the handler reads the header itself.
pub struct HookHeader {
    /// The hook being called.
    #[param(rename = "vernemq-hook", inline)]
    hook: Hook,
}

/// Any hook's request body: a JSON object whose fields depend on the hook (see the
/// operation's description).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = VerneMqHookRequest, example = json!({"username": "device001", "mountpoint": "", "client_id": "device001", "qos": 1, "topic": "plant1/t", "payload": "aGVsbG8=", "retain": false}))]
#[allow(dead_code)] // Documentation only.
pub struct AnyHookRequest(Map<String, Value>);

/// Any hook's answer.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = VerneMqHookAnswer, example = json!({"result": "ok", "modifiers": {"topic": "site1/plant1/t"}}))]
#[allow(dead_code)] // Documentation only.
pub struct AnyHookAnswer(Map<String, Value>);

/// `on_auth_m5` / C37 properties.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = EnhancedAuthProperties)]
pub struct AuthProperties {
    /// The method; Gatehouse speaks `GATEHOUSE-TOKEN`.
    p_authentication_method: String,
    /// Base64 of the method's data; for `GATEHOUSE-TOKEN` an access token or API key.
    #[serde(default)]
    p_authentication_data: Option<String>,
}

/// The body of `on_auth_m5` and of C37.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = EnhancedAuthRequest, example = json!({"username": null, "mountpoint": "", "client_id": "device001", "properties": {"p_authentication_method": "GATEHOUSE-TOKEN", "p_authentication_data": "ZXlKaGJHY2lPaUpJVXpJMU5pSjkuLi4="}}))]
pub struct AuthRequest {
    /// The username of the CONNECT, if any.
    #[serde(default)]
    username: Option<String>,
    /// The VerneMQ mountpoint.
    #[serde(default)]
    mountpoint: String,
    /// The MQTT client id.
    client_id: String,
    /// The AUTH properties.
    properties: AuthProperties,
}

/// `auth_on_register(_m5)`.
#[derive(Debug, Deserialize)]
struct Register {
    #[serde(default)]
    mountpoint: String,
    client_id: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    client_cert: Option<String>,
    #[serde(default)]
    listener_addr: Option<String>,
    #[serde(default)]
    listener_port: Option<u16>,
}

/// `auth_on_publish(_m5)`.
#[derive(Debug, Deserialize)]
struct Publish {
    #[serde(default)]
    username: Option<String>,
    topic: String,
}

/// `auth_on_subscribe(_m5)`: each filter is kept whole, so that the MQTT 5 answer can echo
/// its options.
#[derive(Debug, Deserialize)]
struct Subscribe {
    #[serde(default)]
    username: Option<String>,
    topics: Vec<Map<String, Value>>,
}

/// An answer before rendering: its status, body and whether VerneMQ may cache it.
struct Answer {
    status: StatusCode,
    body: Value,
    cacheable: bool,
    outcome: Outcome,
    reason: Option<String>,
}

impl Answer {
    fn ok(modifiers: Option<Value>) -> Self {
        let body = match modifiers {
            Some(modifiers) => json!({"result": "ok", "modifiers": modifiers}),
            None => json!({"result": "ok"}),
        };
        Self::allowed(body)
    }

    fn allowed(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body,
            cacheable: false,
            outcome: Outcome::Allowed,
            reason: None,
        }
    }

    fn cacheable(mut self) -> Self {
        self.cacheable = true;
        self
    }

    fn refused(error: &str) -> Self {
        Self::failed(StatusCode::OK, Outcome::Denied, error)
    }

    fn malformed(reason: impl Into<String>) -> Self {
        Self::failed(StatusCode::BAD_REQUEST, Outcome::Denied, &reason.into())
    }

    fn failed(status: StatusCode, outcome: Outcome, error: &str) -> Self {
        Self {
            status,
            body: json!({"result": {"error": error}}),
            cacheable: false,
            outcome,
            reason: Some(error.to_owned()),
        }
    }

    /// A refused credential or an unavailable core.
    fn from_core(error: CoreError) -> Self {
        match failure_status("vernemq", &error) {
            Some(StatusCode::SERVICE_UNAVAILABLE) => Self::failed(
                StatusCode::SERVICE_UNAVAILABLE,
                Outcome::Error,
                "unavailable",
            ),
            Some(status) => Self::failed(status, Outcome::Error, "internal_error"),
            None => Self::refused(NOT_ALLOWED),
        }
    }

    fn render(self, state: &AppState, hook: &'static str, started: Instant) -> Response {
        record(hook, self.outcome, started, None, self.reason.as_deref());
        let mut response = (self.status, Json(self.body)).into_response();
        let max_age = state.core.settings().broker.cache_ttl_secs;
        let cache = if self.cacheable && max_age > 0 {
            HeaderValue::from_str(&format!("max-age={max_age}"))
                .unwrap_or(HeaderValue::from_static("no-store"))
        } else {
            HeaderValue::from_static("no-store")
        };
        response.headers_mut().insert(header::CACHE_CONTROL, cache);
        response
    }
}

/// Reads a hook's body as `T`; `Err` is the 400 answer naming the problem.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Answer> {
    serde_json::from_slice(body).map_err(|error| {
        Answer::malformed(format!(
            "malformed request: {}",
            error.to_string().replace('`', "")
        ))
    })
}

const WEBHOOK_DESCRIPTION: &str = concat!(
    "VerneMQ webhooks (`vmq_webhooks`): every hook on this one \
    endpoint, named by the `vernemq-hook` header. `auth_on_register(_m5)` checks `username` and \
    `password` (also an access token or API key as the password), a `client_cert` from a \
    listener in `broker.certificate_listeners`, or a client that passed `on_auth_m5` just \
    before. `auth_on_publish(_m5)` answers `modifiers.topic` with the user's publish prefix \
    applied. `auth_on_subscribe` answers top-level `topics` with qos 128 for refused filters, \
    `auth_on_subscribe_m5` `modifiers.topics` with qos 135. `on_auth_m5` is enhanced \
    authentication (see `POST /api/broker/auth/enhanced`). `on_unsubscribe(_m5)` and \
    `on_deliver(_m5)` answer `{\"result\":\"ok\"}`, informational hooks `{}`. Refusals are 200 \
    `{\"result\":{\"error\":\"not_allowed\"}}`; malformed requests 400 and an unavailable \
    Gatehouse 503, both with an error `result`. Allowed publish and subscribe answers carry \
    `cache-control: max-age`.",
    callers_note!()
);

/// Answers every VerneMQ webhook.
#[utoipa::path(
    post, path = "/api/broker/vernemq", tag = TAG, operation_id = "vernemqWebhook",
    description = WEBHOOK_DESCRIPTION, params(HookHeader),
    request_body(content = AnyHookRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The hook's answer", body = AnyHookAnswer),
        (status = 400, description = "Malformed request or unknown hook", body = AnyHookAnswer,
            example = json!({"result": {"error": "unknown hook"}})),
        (status = 403, description = "The caller may not use the broker hooks",
            body = super::answer::AnswerBody),
        (status = 413, description = "Body too large"),
        (status = 503, description = "Gatehouse cannot decide now", body = AnyHookAnswer,
            example = json!({"result": {"error": "unavailable"}})),
    ),
)]
pub async fn webhook(
    _caller: HookCaller,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let hook = headers
        .get(HOOK_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|name| serde_json::from_value::<Hook>(Value::String(name.to_owned())).ok());
    let Some(hook) = hook else {
        return Answer::malformed("unknown hook").render(&state, "vernemq_unknown", started);
    };
    let answer = match answer(&state, hook, &body).await {
        Ok(answer) | Err(answer) => answer,
    };
    answer.render(&state, hook.label(), started)
}

const ENHANCED_DESCRIPTION: &str = concat!("MQTT 5 enhanced authentication (C37) in VerneMQ's \
    `on_auth_m5` shape. Method `GATEHOUSE-TOKEN`: `p_authentication_data` is base64 of an \
    access token or API key; a `username` sent with it must be that token's user. Success is \
    `{\"result\":\"ok\",\"modifiers\":{\"properties\":{\"p_authentication_method\":…},\
    \"reason_code\":0}}` and lets the `auth_on_register_m5` that follows pass without a \
    password. Any other method is refused with `{\"result\":{\"error\":\"bad_authentication_method\"}}` \
    (MQTT 5 reason 0x8C), a bad token with `not_allowed`.", callers_note!());

/// MQTT 5 enhanced authentication (C37).
#[utoipa::path(
    post, path = "/api/broker/auth/enhanced", tag = TAG, operation_id = "brokerEnhancedAuth",
    description = ENHANCED_DESCRIPTION,
    request_body(content = AuthRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Authenticated, or refused with an error `result`",
            body = AnyHookAnswer,
            example = json!({"result": "ok", "modifiers": {"properties": {"p_authentication_method": "GATEHOUSE-TOKEN"}, "reason_code": 0}})),
        (status = 400, description = "Malformed request", body = AnyHookAnswer,
            example = json!({"result": {"error": "malformed request"}})),
        (status = 403, description = "The caller may not use the broker hooks",
            body = super::answer::AnswerBody),
        (status = 413, description = "Body too large"),
        (status = 503, description = "Gatehouse cannot decide now", body = AnyHookAnswer),
    ),
)]
pub async fn enhanced(_caller: HookCaller, State(state): State<AppState>, body: Bytes) -> Response {
    let started = Instant::now();
    let answer = match enhanced_auth(&state, &body).await {
        Ok(answer) | Err(answer) => answer,
    };
    answer.render(&state, "enhanced_auth", started)
}

/// The answer of `hook` to `body`.
async fn answer(state: &AppState, hook: Hook, body: &[u8]) -> Result<Answer, Answer> {
    match hook {
        Hook::AuthOnRegister | Hook::AuthOnRegisterM5 => register(state, parse(body)?).await,
        Hook::AuthOnPublish | Hook::AuthOnPublishM5 => publish(state, parse(body)?).await,
        Hook::AuthOnSubscribe => subscribe(state, parse(body)?, false).await,
        Hook::AuthOnSubscribeM5 => subscribe(state, parse(body)?, true).await,
        Hook::OnAuthM5 => enhanced_auth(state, body).await,
        Hook::OnUnsubscribe | Hook::OnUnsubscribeM5 | Hook::OnDeliver | Hook::OnDeliverM5 => {
            parse::<Map<String, Value>>(body)?;
            Ok(Answer::ok(None))
        }
        _ => {
            parse::<Map<String, Value>>(body)?;
            Ok(Answer::allowed(json!({})))
        }
    }
}

/// `auth_on_register(_m5)`.
async fn register(state: &AppState, request: Register) -> Result<Answer, Answer> {
    let trusted_listener = state
        .broker_certificates
        .trusts_address(request.listener_addr.as_deref(), request.listener_port);
    let certificate = match &request.client_cert {
        Some(text) if trusted_listener => Some(read_client_cert(text).map_err(Answer::malformed)?),
        _ => None,
    };
    if certificate.is_none() && request.password.is_none() {
        // A client that passed enhanced authentication connects without a password.
        let Some(username) = state
            .core
            .mqtt_take_enhanced(&request.mountpoint, &request.client_id)
        else {
            return Ok(Answer::refused(NOT_ALLOWED));
        };
        if request
            .username
            .as_ref()
            .is_some_and(|given| *given != username)
        {
            return Ok(Answer::refused(NOT_ALLOWED));
        }
        let principal = state
            .core
            .mqtt_principal(&username)
            .await
            .map_err(Answer::from_core)?;
        return Ok(match principal {
            Some(principal) if principal.enabled => {
                Answer::ok(username_modifier(request.username.as_deref(), &username))
            }
            _ => Answer::refused(NOT_ALLOWED),
        });
    }
    let login: MqttLogin = state
        .core
        .mqtt_connect(MqttCredentials {
            username: request.username.clone(),
            password: request.password,
            certificate,
        })
        .await
        .map_err(Answer::from_core)?;
    Ok(Answer::ok(username_modifier(
        request.username.as_deref(),
        &login.principal.username,
    )))
}

/// The `username` modifier when the client did not name the user it authenticated as (a
/// certificate or a token without a username), so that the later hooks carry it.
fn username_modifier(sent: Option<&str>, user: &str) -> Option<Value> {
    (sent != Some(user)).then(|| json!({"username": user}))
}

/// `auth_on_publish(_m5)`.
async fn publish(state: &AppState, request: Publish) -> Result<Answer, Answer> {
    let Some(username) = request.username.as_deref() else {
        return Ok(Answer::refused(NOT_ALLOWED));
    };
    let decision = state
        .core
        .mqtt_authorize(username, MqttAccess::Publish, &request.topic)
        .await
        .map_err(Answer::from_core)?;
    if !decision.allowed {
        return Ok(Answer::refused(NOT_ALLOWED));
    }
    let modifiers = (decision.topic != request.topic).then(|| json!({"topic": decision.topic}));
    Ok(Answer::ok(modifiers).cacheable())
}

/// `auth_on_subscribe(_m5)`: each filter is decided on its own.
async fn subscribe(state: &AppState, request: Subscribe, m5: bool) -> Result<Answer, Answer> {
    let mut filters = Vec::with_capacity(request.topics.len());
    for item in &request.topics {
        let topic = item.get("topic").and_then(Value::as_str).ok_or_else(|| {
            Answer::malformed("malformed request: each topic needs a string topic")
        })?;
        let qos_ok = item
            .get("qos")
            .and_then(Value::as_u64)
            .is_some_and(|qos| qos <= 2);
        if !qos_ok {
            return Err(Answer::malformed(
                "malformed request: each topic needs a qos of 0, 1 or 2",
            ));
        }
        filters.push(topic.to_owned());
    }
    let principal = match request.username.as_deref() {
        Some(username) => state
            .core
            .mqtt_principal(username)
            .await
            .map_err(Answer::from_core)?,
        None => None,
    };
    let Some(principal) = principal.filter(|principal| principal.enabled) else {
        return Ok(Answer::refused(NOT_ALLOWED));
    };
    let refused_qos = if m5 { REFUSED_QOS_V5 } else { REFUSED_QOS_V3 };
    let mut all_allowed = true;
    let topics: Vec<Value> = request
        .topics
        .into_iter()
        .zip(filters)
        .map(|(item, filter)| {
            if principal.decide(MqttAccess::Subscribe, &filter).allowed {
                Value::Object(item)
            } else {
                all_allowed = false;
                json!({"topic": filter, "qos": refused_qos})
            }
        })
        .collect();
    let answer = if all_allowed {
        Answer::ok(None)
    } else if m5 {
        Answer::ok(Some(json!({"topics": topics})))
    } else {
        Answer::allowed(json!({"result": "ok", "topics": topics}))
    };
    Ok(answer.cacheable())
}

/// `on_auth_m5` and C37.
async fn enhanced_auth(state: &AppState, body: &[u8]) -> Result<Answer, Answer> {
    let request: AuthRequest = parse(body)?;
    let method = request.properties.p_authentication_method;
    let data = match request.properties.p_authentication_data.as_deref() {
        Some(text) => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| {
                Answer::malformed("malformed request: p_authentication_data is not base64")
            })?,
        None => Vec::new(),
    };
    let outcome = state
        .core
        .mqtt_enhanced_auth(
            &request.mountpoint,
            &request.client_id,
            request.username.as_deref(),
            &method,
            &data,
        )
        .await
        .map_err(Answer::from_core)?;
    Ok(match outcome {
        EnhancedAuth::Authenticated(_) => Answer::ok(Some(json!({
            "properties": {"p_authentication_method": TOKEN_AUTH_METHOD},
            "reason_code": 0,
        }))),
        EnhancedAuth::UnknownMethod => Answer::refused("bad_authentication_method"),
    })
}
