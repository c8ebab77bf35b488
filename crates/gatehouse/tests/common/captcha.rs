//! A stand-in for Google's reCAPTCHA verification services, on a loopback port, for the sign-up
//! tests. It answers both APIs Gatehouse may ask:
//!
//! - v2 and v3 (`siteverify`): a form `secret, response[, remoteip]` POSTed to any path;
//!   answered `{"success", "score", "action", "hostname"}`. A secret other than the expected one
//!   is refused the way Google refuses it (`success: false`, `invalid-input-secret`).
//! - Enterprise (`assessments`): JSON `{"event": {"token", "siteKey", "expectedAction",
//!   "userIpAddress"}}` POSTed to `…?key=<API key>`; answered `{"tokenProperties": {"valid",
//!   "action"}, "riskAnalysis": {"score"}}`. A wrong key is 403, as Google answers it.
//!
//! What a token is worth is decided by the token itself ([`HUMAN`], [`ROBOT`], …), so tests
//! choose the outcome by what they send as `recaptchaResponse`. Every request is recorded.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// Accepted: valid, score 0.9, action `signup`.
pub const HUMAN: &str = "human";
/// Refused: not valid (score 0.1).
pub const ROBOT: &str = "robot";
/// Valid with action `signup`, but a score of 0.3.
pub const LOW_SCORE: &str = "low-score";
/// Valid with score 0.9, but the action `login`.
pub const WRONG_ACTION: &str = "wrong-action";
/// The service fails: HTTP 500.
pub const CRASH: &str = "crash";
/// The service answers 200 with a body that is not JSON.
pub const GARBAGE: &str = "garbage";
/// The service answers like [`HUMAN`], but only after 3 s.
pub const SLOW: &str = "slow";

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct CaptchaRequest {
    /// `POST`, …
    pub method: String,
    /// The path.
    pub path: String,
    /// The query parameters.
    pub query: BTreeMap<String, String>,
    /// The `Content-Type` header.
    pub content_type: String,
    /// The form fields of a form body (v2, v3).
    pub form: BTreeMap<String, String>,
    /// The JSON body (Enterprise), `Null` otherwise.
    pub json: Value,
}

/// The running stand-in; stops on drop.
pub struct CaptchaServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    received: Arc<Mutex<Vec<CaptchaRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

/// Parses `a=b&c=d` (form or query) into a map.
fn pairs(text: &str) -> BTreeMap<String, String> {
    reqwest::Url::parse(&format!("http://parse.invalid/?{text}"))
        .map(|url| url.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

/// Score and action of a token, or `None` when the token is not valid.
fn verdict(token: &str) -> Option<(f64, &'static str)> {
    match token {
        HUMAN | SLOW => Some((0.9, "signup")),
        LOW_SCORE => Some((0.3, "signup")),
        WRONG_ACTION => Some((0.9, "login")),
        _ => None,
    }
}

async fn answer(secret: &str, request: &CaptchaRequest) -> Response {
    let enterprise = request.json.is_object();
    let token = if enterprise {
        request.json["event"]["token"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    } else {
        request.form.get("response").cloned().unwrap_or_default()
    };
    match token.as_str() {
        CRASH => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        GARBAGE => return (StatusCode::OK, "<html>not json</html>").into_response(),
        SLOW => tokio::time::sleep(Duration::from_secs(3)).await,
        _ => {}
    }
    if enterprise {
        if request.query.get("key").map(String::as_str) != Some(secret) {
            return (
                StatusCode::FORBIDDEN,
                axum::Json(json!({"error": {"code": 403, "status": "PERMISSION_DENIED"}})),
            )
                .into_response();
        }
        let body = match verdict(&token) {
            Some((score, action)) => json!({
                "name": "projects/p/assessments/1",
                "tokenProperties": {"valid": true, "action": action, "hostname": "localhost"},
                "riskAnalysis": {"score": score, "reasons": []},
            }),
            None => json!({
                "tokenProperties": {"valid": false, "invalidReason": "MALFORMED"},
                "riskAnalysis": {"score": 0.1},
            }),
        };
        return axum::Json(body).into_response();
    }
    if request.form.get("secret").map(String::as_str) != Some(secret) {
        return axum::Json(json!({"success": false, "error-codes": ["invalid-input-secret"]}))
            .into_response();
    }
    let body = match verdict(&token) {
        Some((score, action)) => json!({
            "success": true, "score": score, "action": action,
            "challenge_ts": "2030-03-17T00:00:00Z", "hostname": "localhost",
        }),
        None => json!({"success": false, "score": 0.1, "error-codes": ["invalid-input-response"]}),
    };
    axum::Json(body).into_response()
}

impl CaptchaServer {
    /// Starts the stand-in on a port of its own; `secret` is the only secret (v2, v3) or API key
    /// (Enterprise) it accepts.
    pub async fn start(secret: &str) -> CaptchaServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        Self::serve(listener, secret)
    }

    /// Starts the stand-in on `port` (one a test pointed the application at before anything
    /// listened there).
    pub async fn start_on(port: u16, secret: &str) -> CaptchaServer {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|error| panic!("port {port}: {error}"));
        Self::serve(listener, secret)
    }

    fn serve(listener: tokio::net::TcpListener, secret: &str) -> CaptchaServer {
        let address = listener.local_addr().expect("its address");
        let received: Arc<Mutex<Vec<CaptchaRequest>>> = Arc::default();
        let log = received.clone();
        let secret = secret.to_owned();
        let router = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
                let (log, secret) = (log.clone(), secret.clone());
                async move {
                    let content_type = headers
                        .get("content-type")
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let request = CaptchaRequest {
                        method: method.to_string(),
                        path: uri.path().to_owned(),
                        query: pairs(uri.query().unwrap_or_default()),
                        form: if content_type.starts_with("application/x-www-form-urlencoded") {
                            pairs(&body)
                        } else {
                            BTreeMap::new()
                        },
                        json: if content_type.starts_with("application/json") {
                            serde_json::from_str(&body).unwrap_or(Value::Null)
                        } else {
                            Value::Null
                        },
                        content_type,
                    };
                    log.lock().unwrap().push(request.clone());
                    answer(&secret, &request).await
                }
            },
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        CaptchaServer {
            base: format!("http://{address}"),
            received,
            task,
        }
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<CaptchaRequest> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for CaptchaServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
