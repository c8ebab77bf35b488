//! EMQX 5 HTTP authentication and authorization: `/api/broker/emqx/authn` and
//! `/api/broker/emqx/authz`, POST (EMQX `method = post`: a JSON or form body) or GET (query
//! string), with the parameters of the EMQX request template.
//!
//! - authn: 200 `{"result":"allow","is_superuser":…}` (plus `expire_at`, Unix seconds, when
//!   the password was an access token), 200 `{"result":"deny"}`;
//! - authz: 200 `{"result":"allow"}` or `{"result":"deny"}`.
//!
//! Malformed requests are 400 and an unavailable Gatehouse 503; EMQX treats both as `ignore`
//! (the next authenticator or authorizer decides; with none left the client is refused). A
//! certificate common name (`cert_common_name`) authenticates only when the request's
//! `listener` field names a listener in `broker.certificate_listeners`. Like the go-auth
//! backend, authz cannot rewrite topics, so a publish of a user with a publish prefix is denied.

use std::time::Instant;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gatehouse_core::broker::{MqttAccess, MqttCredentials, PresentedCertificate};
use gatehouse_core::CoreError;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, IntoResponses, ToSchema};

use super::access::HookCaller;
use super::answer::AnswerBody;
use super::params::{HookRequest, Params};
use super::{failure_status, record, Outcome, TAG};
use crate::AppState;

/// Parameters of the authentication request (EMQX placeholders `${username}`, `${password}`,
/// `${clientid}`, `${cert_common_name}`, and a literal `listener`).
#[derive(Debug, Deserialize, ToSchema, IntoParams)]
#[schema(as = EmqxAuthnRequest, example = json!({"username": "device001", "password": "secret", "clientid": "device001"}))]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Documentation only: requests are read by `Params`.
pub struct AuthnParams {
    /// The MQTT username (may be empty when a certificate names the user).
    #[param(required = false)]
    username: Option<String>,
    /// The password, or an access token or API key.
    password: Option<String>,
    /// The MQTT client id.
    clientid: Option<String>,
    /// The client certificate's common name (`${cert_common_name}`).
    cert_common_name: Option<String>,
    /// The listener the client connected to, as written in the authenticator's body template
    /// (e.g. `ssl:default`); a certificate counts only for listeners in
    /// `broker.certificate_listeners`.
    listener: Option<String>,
}

/// The `action` of an authorization request.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[schema(as = EmqxAction)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Publish to `topic`.
    Publish,
    /// Subscribe to the filter `topic`.
    Subscribe,
    /// Both.
    All,
}

/// Parameters of the authorization request (`${username}`, `${clientid}`, `${action}`,
/// `${topic}`).
#[derive(Debug, Deserialize, ToSchema, IntoParams)]
#[schema(as = EmqxAuthzRequest, example = json!({"username": "device001", "clientid": "device001", "action": "publish", "topic": "plant1/t"}))]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Documentation only.
pub struct AuthzParams {
    /// The MQTT username.
    #[param(min_length = 1, required = false)]
    #[schema(min_length = 1)]
    username: String,
    /// The MQTT client id.
    clientid: Option<String>,
    /// What the client wants to do.
    #[param(inline, required = false)]
    action: Action,
    /// The topic (publish) or topic filter (subscribe).
    #[param(min_length = 1, required = false)]
    #[schema(min_length = 1)]
    topic: String,
}

/// An EMQX answer: `{"result": …}` and the authn extras.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = EmqxAnswer, example = json!({"result": "allow", "is_superuser": false}))]
#[allow(dead_code)] // Documentation only.
pub struct EmqxAnswer {
    /// `allow` or `deny`.
    result: String,
    /// Authentication: whether EMQX may skip authorization for this client.
    #[schema(required = false)]
    is_superuser: Option<bool>,
    /// Authentication with a token: when it expires, Unix seconds.
    #[schema(required = false)]
    expire_at: Option<i64>,
    /// Why the request is malformed (400 only).
    #[schema(required = false)]
    reason: Option<String>,
}

/// The documented answers of both hooks.
#[derive(IntoResponses)]
#[allow(dead_code)] // Documentation only.
enum EmqxAnswers {
    /// `allow` or `deny`.
    #[response(status = 200, description = "allow or deny")]
    Decided(EmqxAnswer),
    /// Malformed.
    #[response(status = 400, description = "Malformed request (EMQX: ignore)")]
    Malformed(EmqxAnswer),
    /// Refused caller.
    #[response(status = 403, description = "The caller may not use the broker hooks")]
    Refused(AnswerBody),
    /// Too large.
    #[response(status = 413, description = "Body too large")]
    TooLarge(AnswerBody),
    /// Unavailable.
    #[response(
        status = 503,
        description = "Gatehouse cannot decide now (EMQX: ignore)"
    )]
    Unavailable(EmqxAnswer),
}

/// An answer with its outcome.
struct Answer {
    status: StatusCode,
    body: Value,
    outcome: Outcome,
}

impl Answer {
    fn allow(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body,
            outcome: Outcome::Allowed,
        }
    }

    fn deny() -> Self {
        Self {
            status: StatusCode::OK,
            body: json!({"result": "deny"}),
            outcome: Outcome::Denied,
        }
    }

    fn malformed(reason: String) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            body: json!({"result": "deny", "reason": reason}),
            outcome: Outcome::Denied,
        }
    }

    fn from_core(error: CoreError) -> Self {
        let Some(status) = failure_status("emqx", &error) else {
            return Self::deny();
        };
        Self {
            status,
            body: json!({"result": "deny", "reason": "unavailable"}),
            outcome: Outcome::Error,
        }
    }

    fn render(self, hook: &'static str, started: Instant) -> Response {
        record(hook, self.outcome, started, None, None);
        (self.status, Json(self.body)).into_response()
    }
}

/// Authentication.
async fn authenticate(state: &AppState, params: &Params) -> Result<Answer, String> {
    let username = params.text("username")?.filter(|name| !name.is_empty());
    let password = params
        .text("password")?
        .filter(|password| !password.is_empty());
    params.text("clientid")?;
    let common_name = params
        .text("cert_common_name")?
        .filter(|name| !name.is_empty());
    let listener = params.text("listener")?.unwrap_or_default();
    let certificate = common_name
        .filter(|_| state.broker_certificates.trusts_name(listener))
        .map(|name| PresentedCertificate {
            common_name: name.to_owned(),
            fingerprint: None,
        });
    if username.is_none() && certificate.is_none() {
        return Err("username missing".to_owned());
    }
    let login = state
        .core
        .mqtt_connect(MqttCredentials {
            username: username.map(str::to_owned),
            password: password.map(str::to_owned),
            certificate,
        })
        .await;
    Ok(match login {
        Ok(login) => {
            let mut body = json!({"result": "allow", "is_superuser": login.principal.superuser});
            if let Some(expire_at) = login.expire_at {
                body["expire_at"] = json!(expire_at);
            }
            Answer::allow(body)
        }
        Err(error) => Answer::from_core(error),
    })
}

/// Authorization.
async fn authorize(state: &AppState, params: &Params) -> Result<Answer, String> {
    let username = params.required("username")?;
    params.text("clientid")?;
    let topic = params.required("topic")?;
    let checks: &[MqttAccess] = match params.required("action")? {
        "publish" => &[MqttAccess::Publish],
        "subscribe" => &[MqttAccess::Subscribe],
        "all" => &[MqttAccess::Publish, MqttAccess::Subscribe],
        _ => return Err("action must be publish, subscribe or all".to_owned()),
    };
    for access in checks {
        let decision = match state.core.mqtt_authorize(username, *access, topic).await {
            Ok(decision) => decision,
            Err(error) => return Ok(Answer::from_core(error)),
        };
        if !decision.allows_as_asked(topic) {
            return Ok(Answer::deny());
        }
    }
    Ok(Answer::allow(json!({"result": "allow"})))
}

/// Reads the parameters and answers with `decide`.
async fn answer<F, Fut>(hook: &'static str, request: HookRequest, decide: F) -> Response
where
    F: FnOnce(Params) -> Fut,
    Fut: std::future::Future<Output = Result<Answer, String>>,
{
    let started = Instant::now();
    let answer = match request.params {
        Ok(params) => decide(params).await.unwrap_or_else(Answer::malformed),
        Err(reason) => Answer::malformed(reason),
    };
    answer.render(hook, started)
}

const AUTHN_DESCRIPTION: &str = concat!(
    "EMQX 5 HTTP authentication. Allowed: 200 \
    `{\"result\":\"allow\",\"is_superuser\":…}`, with `expire_at` (Unix seconds) when the \
    password is an access token; refused: 200 `{\"result\":\"deny\"}`. A `cert_common_name` \
    names the user when `listener` is in `broker.certificate_listeners`. Malformed requests are \
    400 and an unavailable Gatehouse 503 (EMQX: ignore).",
    callers_note!()
);

const AUTHZ_DESCRIPTION: &str = concat!(
    "EMQX 5 HTTP authorization: 200 `{\"result\":\"allow\"}` or \
    `{\"result\":\"deny\"}`. `publish` checks a topic name, `subscribe` a filter, `all` both. A \
    publish of a user with a publish prefix is denied (EMQX cannot rewrite the topic). \
    Malformed requests are 400, an unavailable Gatehouse 503.",
    callers_note!()
);

/// EMQX authentication (POST).
#[utoipa::path(
    post, path = "/api/broker/emqx/authn", tag = TAG, operation_id = "emqxAuthenticate",
    description = AUTHN_DESCRIPTION,
    request_body(content(
        (AuthnParams = "application/json"),
        (AuthnParams = "application/x-www-form-urlencoded"))),
    responses(EmqxAnswers),
)]
pub async fn authenticate_post(
    _caller: HookCaller,
    state: axum::extract::State<AppState>,
    request: HookRequest,
) -> Response {
    answer("emqx_authn", request, |params| async move {
        authenticate(&state, &params).await
    })
    .await
}

/// EMQX authentication (GET: parameters in the query string).
#[utoipa::path(
    get, path = "/api/broker/emqx/authn", tag = TAG, operation_id = "emqxAuthenticateGet",
    description = AUTHN_DESCRIPTION, params(AuthnParams),
    responses(EmqxAnswers),
)]
pub async fn authenticate_get(
    _caller: HookCaller,
    state: axum::extract::State<AppState>,
    request: HookRequest,
) -> Response {
    authenticate_post(_caller, state, request).await
}

/// EMQX authorization (POST).
#[utoipa::path(
    post, path = "/api/broker/emqx/authz", tag = TAG, operation_id = "emqxAuthorize",
    description = AUTHZ_DESCRIPTION,
    request_body(content(
        (AuthzParams = "application/json"),
        (AuthzParams = "application/x-www-form-urlencoded"))),
    responses(EmqxAnswers),
)]
pub async fn authorize_post(
    _caller: HookCaller,
    state: axum::extract::State<AppState>,
    request: HookRequest,
) -> Response {
    answer("emqx_authz", request, |params| async move {
        authorize(&state, &params).await
    })
    .await
}

/// EMQX authorization (GET: parameters in the query string).
#[utoipa::path(
    get, path = "/api/broker/emqx/authz", tag = TAG, operation_id = "emqxAuthorizeGet",
    description = AUTHZ_DESCRIPTION, params(AuthzParams),
    responses(EmqxAnswers),
)]
pub async fn authorize_get(
    _caller: HookCaller,
    state: axum::extract::State<AppState>,
    request: HookRequest,
) -> Response {
    authorize_post(_caller, state, request).await
}
