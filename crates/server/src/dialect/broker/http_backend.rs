//! The mosquitto-go-auth HTTP backend (`auth_opt_http_getuser_uri`, `…_superuser_uri`,
//! `…_aclcheck_uri`), also spoken by amqtt's `UserAuthHttpPlugin` and `TopicAuthHttpPlugin`:
//! `/api/broker/http/user`, `/api/broker/http/superuser` and `/api/broker/http/acl`, each with
//! POST, GET and PUT (go-auth defaults to POST, amqtt to GET), parameters in a JSON body, a form
//! body or the query string (see [`super::params`]).
//!
//! `acc` values: 1 receive (a message is about to be delivered), 2 publish, 3 both (must both be
//! allowed), 4 subscribe (the topic is a filter and may hold wildcards), 8 unsubscribe (allowed
//! for any known, enabled user).
//!
//! The publish prefix: this backend can only allow or deny, never rewrite a topic. For a user
//! with an `mqttPublishPrefix` a publish is therefore refused (allowing it would let the message
//! through on the unprefixed topic, which the user's permissions do not cover): prefixes need a
//! broker that rewrites topics (VerneMQ's `auth_on_publish` modifiers).

use std::collections::BTreeMap;
use std::future::Future;
use std::marker::PhantomData;
use std::time::Instant;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::Response;
use gatehouse_core::broker::MqttAccess;
use serde::Deserialize;
use serde_json::json;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::response::{Response as ResponseDoc, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{IntoParams, IntoResponses, PartialSchema, ToSchema};

use super::access::HookCaller;
use super::answer::{Answer, AnswerBody};
use super::params::{HookRequest, Params};
use super::{connect_with_password, record, Outcome, TAG};
use crate::AppState;

/// `acc` as documented: a number (JSON) or a decimal string (forms, query strings).
fn acc_schema() -> impl Into<RefOr<Schema>> {
    let values = [1, 2, 3, 4, 8];
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .enum_values(Some(values)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(values.map(|value| value.to_string()))),
        )
        .description(Some(
            "1 receive, 2 publish, 3 receive and publish, 4 subscribe, 8 unsubscribe",
        ))
}

/// Parameters of the `user` hook (go-auth sends `clientid`, amqtt `client_id`). As query
/// parameters (GET) none is required by the document: GET requests may carry them in a JSON
/// body instead; a request without `username` is denied.
#[derive(Debug, Deserialize, ToSchema, IntoParams)]
#[schema(as = BrokerHttpUserRequest, example = json!({"username": "device-1", "password": "secret", "clientid": "device-1"}))]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Documentation only: requests are read by `Params`, which accepts every variant.
pub struct UserParams {
    /// The MQTT username.
    #[param(min_length = 1, required = false)]
    #[schema(min_length = 1)]
    username: String,
    /// The MQTT password: a password, or a Gatehouse access token or API key.
    password: Option<String>,
    /// The MQTT client id (go-auth).
    clientid: Option<String>,
    /// The MQTT client id (amqtt).
    client_id: Option<String>,
}

/// Parameters of the `superuser` hook.
#[derive(Debug, Deserialize, ToSchema, IntoParams)]
#[schema(as = BrokerHttpSuperuserRequest, example = json!({"username": "admin"}))]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Documentation only.
pub struct SuperuserParams {
    /// The MQTT username.
    #[param(min_length = 1, required = false)]
    #[schema(min_length = 1)]
    username: String,
}

/// Parameters of the `acl` hook.
#[derive(Debug, Deserialize, ToSchema, IntoParams)]
#[schema(as = BrokerHttpAclRequest, example = json!({"username": "device-1", "clientid": "device-1", "topic": "sensors/t1", "acc": 2}))]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Documentation only.
pub struct AclParams {
    /// The MQTT username.
    #[param(min_length = 1, required = false)]
    #[schema(min_length = 1)]
    username: String,
    /// The MQTT client id (go-auth).
    clientid: Option<String>,
    /// The MQTT client id (amqtt).
    client_id: Option<String>,
    /// The topic (publish, receive) or topic filter (subscribe, unsubscribe).
    #[param(min_length = 1, required = false)]
    #[schema(min_length = 1)]
    topic: String,
    /// What the client wants to do.
    #[param(schema_with = acc_schema, required = false)]
    #[schema(schema_with = acc_schema)]
    acc: u8,
}

/// The answer format.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = BrokerHookResponseFormat)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // Documentation only.
pub enum ResponseFormat {
    /// `{"ok": …}` (default).
    Json,
    /// `ok` or `denied` as plain text.
    Text,
}

/// The `response` query parameter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Documentation only.
pub struct FormatQuery {
    /// `text` answers `ok` / `denied` as plain text (go-auth and amqtt `response_mode text`);
    /// the default is JSON `{"ok": …}`, which also suits their `status` and `json` modes.
    response: Option<ResponseFormat>,
}

/// The media types of the request bodies.
const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

/// What every operation's description ends with.
macro_rules! access_note {
    () => {
        concat!(
            callers_note!(),
            " Parameters come from a \
        JSON body, a form body or the query string (body fields win). Answers: 200 \
        `{\"ok\":true}` allows; 403 `{\"ok\":false,\"error\":…}` denies (also malformed \
        requests and refused callers); 503 when Gatehouse cannot decide now. With \
        `?response=text` the body is `ok` or `denied` as plain text."
        )
    };
}

const USER_DESCRIPTION: &str = concat!(
    "mosquitto-go-auth `http_getuser_uri` / amqtt `user_uri`: checks `username` and \
     `password` at CONNECT. The password may also be an access token or API key of that user \
     (a token of another user is refused). Unknown, disabled and locked users are refused.",
    access_note!()
);

const SUPERUSER_DESCRIPTION: &str = concat!(
    "mosquitto-go-auth `http_superuser_uri`: allowed for enabled holders of the built-in \
     administrator role (go-auth then skips the ACL checks).",
    access_note!()
);

const ACL_DESCRIPTION: &str = concat!(
    "mosquitto-go-auth `http_aclcheck_uri` / amqtt `topic_uri`: `acc` 1 (receive) and 2 \
     (publish) check a topic name, 4 (subscribe) a topic filter, which the user's `mqtt` \
     permissions must cover; 3 needs both receive and publish; 8 (unsubscribe) is allowed for \
     known, enabled users. `$`-topics need explicit permissions. A publish of a user with a \
     publish prefix is refused: this hook cannot rewrite topics (use the VerneMQ hook).",
    access_note!()
);

/// One hook of this backend: its name in metrics and logs, what its answers mean in the
/// document, and its decision.
trait Hook {
    /// The `hook` label of the metrics and logs.
    const NAME: &'static str;
    /// What a 200 answer means.
    const ALLOWED: &'static str = "Allowed";
    /// What a 403 answer means.
    const DENIED: &'static str = "Denied, malformed, or the caller may not use the broker hooks";
    /// The reason of the documented 403 JSON example.
    const DENIAL: &'static str;

    /// The answer to readable parameters; `Err` is a malformed request, denied with that reason.
    fn decide(
        state: &AppState,
        params: &Params,
    ) -> impl Future<Output = Result<Answer, String>> + Send;
}

/// The `user` hook.
struct User;

impl Hook for User {
    const NAME: &'static str = "http_user";
    const DENIAL: &'static str = "invalid username or password";

    async fn decide(state: &AppState, params: &Params) -> Result<Answer, String> {
        let username = params.required("username")?;
        params.client_id()?;
        let password = params.text("password")?;
        Ok(
            match connect_with_password(state, username, password).await {
                Ok(_) => Answer::allow(),
                Err(error) => Answer::from_core(error),
            },
        )
    }
}

/// The `superuser` hook.
struct Superuser;

impl Hook for Superuser {
    const NAME: &'static str = "http_superuser";
    const ALLOWED: &'static str = "A superuser";
    const DENIED: &'static str =
        "Not a superuser, malformed, or the caller may not use the broker hooks";
    const DENIAL: &'static str = "not a superuser";

    async fn decide(state: &AppState, params: &Params) -> Result<Answer, String> {
        let username = params.required("username")?;
        Ok(match state.core.mqtt_principal(username).await {
            Ok(Some(principal)) if principal.superuser && principal.enabled => Answer::allow(),
            Ok(_) => Answer::deny("not a superuser"),
            Err(error) => Answer::from_core(error),
        })
    }
}

/// The `acl` hook.
struct Acl;

impl Hook for Acl {
    const NAME: &'static str = "http_acl";
    const DENIAL: &'static str = "not allowed";

    async fn decide(state: &AppState, params: &Params) -> Result<Answer, String> {
        let username = params.required("username")?;
        params.client_id()?;
        let topic = params.required("topic")?;
        let acc = params.acc()?;
        let checks: &[MqttAccess] = match acc {
            1 => &[MqttAccess::Receive],
            2 => &[MqttAccess::Publish],
            3 => &[MqttAccess::Receive, MqttAccess::Publish],
            4 => &[MqttAccess::Subscribe],
            8 => {
                return Ok(match state.core.mqtt_principal(username).await {
                    Ok(Some(principal)) if principal.enabled => Answer::allow(),
                    Ok(_) => Answer::deny("not allowed"),
                    Err(error) => Answer::from_core(error),
                })
            }
            _ => return Err("acc must be 1, 2, 3, 4 or 8".to_owned()),
        };
        for access in checks {
            let decision = match state.core.mqtt_authorize(username, *access, topic).await {
                Ok(decision) => decision,
                Err(error) => return Ok(Answer::from_core(error)),
            };
            if !decision.allowed {
                return Ok(Answer::deny("not allowed"));
            }
            if decision.rewrites(topic) {
                return Ok(Answer::deny(
                    "the user has a publish prefix, which this hook cannot apply",
                ));
            }
        }
        Ok(Answer::allow())
    }
}

/// The documented answers of hook `H`, the same for each of its methods: 200, 403 and 503 as
/// JSON or, with `?response=text`, as plain text (`ok`, `denied`, `unavailable`); 413 always
/// as JSON.
struct HookAnswers<H>(PhantomData<H>);

impl<H: Hook> IntoResponses for HookAnswers<H> {
    fn responses() -> BTreeMap<String, RefOr<ResponseDoc>> {
        let denial = json!({"ok": false, "error": H::DENIAL});
        let unavailable = json!({"ok": false, "error": "unavailable"});
        let answers = [
            ("200", H::ALLOWED, Some((json!({"ok": true}), "ok"))),
            ("403", H::DENIED, Some((denial, "denied"))),
            ("413", "Body too large (always JSON)", None),
            (
                "503",
                "Gatehouse cannot decide now (brokers deny)",
                Some((unavailable, "unavailable")),
            ),
        ];
        answers
            .into_iter()
            .map(|(status, description, examples)| {
                let (json_example, text) = examples.unzip();
                let json = ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(AnswerBody::name())))
                    .example(json_example);
                let mut response = ResponseBuilder::new()
                    .description(description)
                    .content(JSON, json.build());
                if let Some(text) = text {
                    let text = ContentBuilder::new()
                        .schema(Some(String::schema()))
                        .example(Some(text.into()));
                    response = response.content("text/plain", text.build());
                }
                (status.to_owned(), response.build().into())
            })
            .collect()
    }
}

/// A hook call by a caller the access rule let in ([`HookCaller`]), with its request.
pub struct HookCall {
    state: AppState,
    request: HookRequest,
}

impl FromRequest<AppState> for HookCall {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        HookCaller::from_request_parts(&mut parts, state).await?;
        let request = HookRequest::from_request(Request::from_parts(parts, body), state).await?;
        Ok(Self {
            state: state.clone(),
            request,
        })
    }
}

impl HookCall {
    /// Reads the parameters, decides with hook `H`, counts, logs and renders: the body of every
    /// method of every hook.
    async fn answer<H: Hook>(self) -> Response {
        let started = Instant::now();
        let answer = match self.request.params {
            Ok(params) => {
                let username = params.text("username").ok().flatten().map(str::to_owned);
                let answer = H::decide(&self.state, &params)
                    .await
                    .unwrap_or_else(Answer::deny);
                finish(H::NAME, started, username.as_deref(), answer)
            }
            Err(reason) => finish(H::NAME, started, None, Answer::deny(reason)),
        };
        answer.render(self.request.mode)
    }
}

/// What one hook answers, counted, timed and logged without secrets.
fn finish(hook: &'static str, started: Instant, username: Option<&str>, answer: Answer) -> Answer {
    let outcome = if answer.allowed() {
        Outcome::Allowed
    } else if answer.is_error() {
        Outcome::Error
    } else {
        Outcome::Denied
    };
    record(hook, outcome, started, username, answer.reason());
    answer
}

/// Checks a username and password at CONNECT.
#[utoipa::path(
    post, path = "/api/broker/http/user", tag = TAG, operation_id = "goAuthUser",
    description = USER_DESCRIPTION, params(FormatQuery), responses(HookAnswers<User>),
    request_body(content((UserParams = JSON), (UserParams = FORM))),
)]
pub async fn user_post(call: HookCall) -> Response {
    call.answer::<User>().await
}

/// Checks a username and password at CONNECT (GET: parameters in the query or a JSON body).
#[utoipa::path(
    get, path = "/api/broker/http/user", tag = TAG, operation_id = "goAuthUserGet",
    description = USER_DESCRIPTION, params(UserParams, FormatQuery), responses(HookAnswers<User>),
)]
pub async fn user_get(call: HookCall) -> Response {
    call.answer::<User>().await
}

/// Checks a username and password at CONNECT (PUT).
#[utoipa::path(
    put, path = "/api/broker/http/user", tag = TAG, operation_id = "goAuthUserPut",
    description = USER_DESCRIPTION, params(FormatQuery), responses(HookAnswers<User>),
    request_body(content((UserParams = JSON), (UserParams = FORM))),
)]
pub async fn user_put(call: HookCall) -> Response {
    call.answer::<User>().await
}

/// Whether a user is a superuser.
#[utoipa::path(
    post, path = "/api/broker/http/superuser", tag = TAG, operation_id = "goAuthSuperuser",
    description = SUPERUSER_DESCRIPTION, params(FormatQuery), responses(HookAnswers<Superuser>),
    request_body(content((SuperuserParams = JSON), (SuperuserParams = FORM))),
)]
pub async fn superuser_post(call: HookCall) -> Response {
    call.answer::<Superuser>().await
}

/// Whether a user is a superuser (GET: parameters in the query or a JSON body).
#[utoipa::path(
    get, path = "/api/broker/http/superuser", tag = TAG, operation_id = "goAuthSuperuserGet",
    description = SUPERUSER_DESCRIPTION, params(SuperuserParams, FormatQuery),
    responses(HookAnswers<Superuser>),
)]
pub async fn superuser_get(call: HookCall) -> Response {
    call.answer::<Superuser>().await
}

/// Whether a user is a superuser (PUT).
#[utoipa::path(
    put, path = "/api/broker/http/superuser", tag = TAG, operation_id = "goAuthSuperuserPut",
    description = SUPERUSER_DESCRIPTION, params(FormatQuery), responses(HookAnswers<Superuser>),
    request_body(content((SuperuserParams = JSON), (SuperuserParams = FORM))),
)]
pub async fn superuser_put(call: HookCall) -> Response {
    call.answer::<Superuser>().await
}

/// Whether a user may receive, publish, subscribe or unsubscribe.
#[utoipa::path(
    post, path = "/api/broker/http/acl", tag = TAG, operation_id = "goAuthAcl",
    description = ACL_DESCRIPTION, params(FormatQuery), responses(HookAnswers<Acl>),
    request_body(content((AclParams = JSON), (AclParams = FORM))),
)]
pub async fn acl_post(call: HookCall) -> Response {
    call.answer::<Acl>().await
}

/// Whether a user may receive, publish, subscribe or unsubscribe (GET: parameters in the query
/// or a JSON body).
#[utoipa::path(
    get, path = "/api/broker/http/acl", tag = TAG, operation_id = "goAuthAclGet",
    description = ACL_DESCRIPTION, params(AclParams, FormatQuery), responses(HookAnswers<Acl>),
)]
pub async fn acl_get(call: HookCall) -> Response {
    call.answer::<Acl>().await
}

/// Whether a user may receive, publish, subscribe or unsubscribe (PUT).
#[utoipa::path(
    put, path = "/api/broker/http/acl", tag = TAG, operation_id = "goAuthAclPut",
    description = ACL_DESCRIPTION, params(FormatQuery), responses(HookAnswers<Acl>),
    request_body(content((AclParams = JSON), (AclParams = FORM))),
)]
pub async fn acl_put(call: HookCall) -> Response {
    call.answer::<Acl>().await
}
