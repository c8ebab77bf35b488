//! The parameters of an HTTP-backend hook request, wherever the broker put them: a JSON object
//! body (go-auth and amqtt `params_mode json`, also with GET), a form body (go-auth and amqtt
//! `form` with POST or PUT) or the query string (amqtt `form` with GET). Body fields win over
//! query fields of the same name. Nothing here fails the request: a malformed one becomes a
//! reason, and the hook answers it with a denial.

use std::collections::HashMap;

use axum::extract::{FromRequest, Request};
use axum::http::header;
use axum::response::Response;
use serde_json::Value;

use super::answer::{Answer, Mode};

/// The query parameter choosing the answer format.
const RESPONSE_PARAMETER: &str = "response";

/// A hook request: the answer format and the parameters, or why they could not be read.
pub struct HookRequest {
    /// The answer format (`?response=text` or JSON).
    pub mode: Mode,
    /// The parameters, or a reason to deny.
    pub params: Result<Params, String>,
}

/// Parameters by name: strings from forms and query strings, any JSON value from JSON bodies.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, Value>);

impl Params {
    /// A string parameter; absent and JSON `null` (amqtt sends `null` for a missing username
    /// or password) are `None`; any other JSON type is malformed.
    pub fn text(&self, name: &str) -> Result<Option<&str>, String> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(format!("{name} must be a string")),
        }
    }

    /// A string parameter that must be present and not empty.
    pub fn required(&self, name: &str) -> Result<&str, String> {
        self.text(name)?
            .filter(|text| !text.is_empty())
            .ok_or_else(|| format!("{name} missing"))
    }

    /// The client id, sent as `clientid` (go-auth) or `client_id` (amqtt); checked for its
    /// type only (authorization does not depend on it).
    pub fn client_id(&self) -> Result<Option<&str>, String> {
        Ok(self.text("clientid")?.or(self.text("client_id")?))
    }

    /// `acc`: a JSON number or a decimal string (forms and go-auth's README send strings).
    pub fn acc(&self) -> Result<u64, String> {
        const MALFORMED: &str = "acc must be 1, 2, 3, 4 or 8";
        match self.0.get("acc") {
            None | Some(Value::Null) => Err("acc missing".to_owned()),
            Some(Value::Number(number)) => number.as_u64().ok_or_else(|| MALFORMED.to_owned()),
            Some(Value::String(text)) => text.trim().parse().map_err(|_| MALFORMED.to_owned()),
            Some(_) => Err(MALFORMED.to_owned()),
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for HookRequest {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mode, query) = match query_params(request.uri().query().unwrap_or_default()) {
            Ok(parsed) => parsed,
            Err(reason) => {
                return Ok(Self {
                    mode: Mode::Json,
                    params: Err(reason),
                })
            }
        };
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| {
                value
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            });
        let body = match axum::body::Bytes::from_request(request, state).await {
            Ok(body) => body,
            Err(rejection) => {
                // 413 is documented as JSON in every mode; other failures follow the mode.
                return Err(
                    if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                        Answer::too_large().render(Mode::Json)
                    } else {
                        Answer::deny("unreadable request body").render(mode)
                    },
                );
            }
        };
        let params = body_params(content_type.as_deref(), &body).map(|body| {
            let mut params = query;
            params.extend(body);
            Params(params)
        });
        Ok(Self { mode, params })
    }
}

/// The answer format and the other parameters of a query string.
fn query_params(query: &str) -> Result<(Mode, HashMap<String, Value>), String> {
    let mut params = form_params(query)?;
    let mode = match params.remove(RESPONSE_PARAMETER) {
        None => Mode::Json,
        Some(Value::String(mode)) if mode == "json" => Mode::Json,
        Some(Value::String(mode)) if mode == "text" => Mode::Text,
        Some(_) => return Err("response must be json or text".to_owned()),
    };
    Ok((mode, params))
}

/// The parameters of a body: a JSON object for JSON content types (and for untyped bodies
/// that start with `{`), form fields otherwise.
fn body_params(content_type: Option<&str>, body: &[u8]) -> Result<HashMap<String, Value>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(HashMap::new());
    }
    let json = match content_type {
        Some("application/json") => true,
        Some(other) if other.ends_with("+json") => true,
        Some("application/x-www-form-urlencoded") => false,
        _ => body.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{'),
    };
    if json {
        let object: serde_json::Map<String, Value> =
            serde_json::from_slice(body).map_err(|_| "body is not a JSON object".to_owned())?;
        Ok(object.into_iter().collect())
    } else {
        let text = std::str::from_utf8(body).map_err(|_| "form body is not UTF-8".to_owned())?;
        form_params(text)
    }
}

/// `application/x-www-form-urlencoded` pairs; a name given twice is malformed.
fn form_params(text: &str) -> Result<HashMap<String, Value>, String> {
    let mut params = HashMap::new();
    for pair in text.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(name)?;
        let value = percent_decode(value)?;
        if params.insert(name.clone(), Value::String(value)).is_some() {
            return Err(format!("{name} given twice"));
        }
    }
    Ok(params)
}

/// The value of a hexadecimal digit.
fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|digit| u8::try_from(digit).ok())
}

/// Decodes `+` and `%XX`; a `%` without two hex digits stays as it is (as browsers do). The
/// result must be UTF-8.
fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => decoded.push(b' '),
            b'%' => match (
                bytes.get(index + 1).copied().and_then(hex_digit),
                bytes.get(index + 2).copied().and_then(hex_digit),
            ) {
                (Some(high), Some(low)) => {
                    decoded.push(high << 4 | low);
                    index += 2;
                }
                _ => decoded.push(b'%'),
            },
            byte => decoded.push(byte),
        }
        index += 1;
    }
    String::from_utf8(decoded).map_err(|_| "parameter is not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(content_type: Option<&str>, body: &str, query: &str) -> Result<Params, String> {
        let (_, mut all) = query_params(query)?;
        all.extend(body_params(content_type, body.as_bytes())?);
        Ok(Params(all))
    }

    #[test]
    fn json_form_and_query() {
        let json = params(
            Some("application/json"),
            r#"{"username":"d","password":null,"client_id":"c","acc":2}"#,
            "",
        )
        .unwrap();
        assert_eq!(json.required("username").unwrap(), "d");
        assert_eq!(json.text("password").unwrap(), None);
        assert_eq!(json.client_id().unwrap(), Some("c"));
        assert_eq!(json.acc().unwrap(), 2);

        let form = params(
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            "username=a+b&password=p%26w%3D&clientid=x&acc=4",
            "",
        )
        .unwrap();
        assert_eq!(form.required("username").unwrap(), "a b");
        assert_eq!(form.text("password").unwrap(), Some("p&w="));
        assert_eq!(form.acc().unwrap(), 4);

        let query = params(None, "", "username=q&topic=a%2Fb&acc=1&response=text").unwrap();
        assert_eq!(query.required("topic").unwrap(), "a/b");
        assert_eq!(
            query.text("response").unwrap(),
            None,
            "response is not a parameter"
        );
    }

    #[test]
    fn body_wins_and_untyped_bodies_are_sniffed() {
        let merged = params(None, r#"{"username":"body"}"#, "username=query").unwrap();
        assert_eq!(merged.required("username").unwrap(), "body");
        let form = params(Some("text/plain"), "username=f", "").unwrap();
        assert_eq!(form.required("username").unwrap(), "f");
    }

    #[test]
    fn malformed_input_is_a_reason() {
        assert!(params(Some("application/json"), "not json", "").is_err());
        assert!(params(Some("application/json"), "[1]", "").is_err());
        assert!(params(None, "", "response=xml").is_err());
        assert!(params(None, "a=1&a=2", "").is_err());
        assert!(params(None, "a=%FF", "").is_err());
        let typed = params(None, r#"{"username":7,"acc":"abc","topic":[]}"#, "").unwrap();
        assert!(typed.required("username").is_err());
        assert!(typed.acc().is_err());
        assert!(typed.required("topic").is_err());
        let acc = params(None, r#"{"acc":2.5}"#, "").unwrap();
        assert!(acc.acc().is_err());
        let acc = params(None, r#"{"acc":-1}"#, "").unwrap();
        assert!(acc.acc().is_err());
        let empty = params(None, r#"{"username":""}"#, "").unwrap();
        assert!(empty.required("username").is_err());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2fb%").unwrap(), "a/b%");
        assert_eq!(percent_decode("%zz%4").unwrap(), "%zz%4");
        assert_eq!(percent_decode("%+1").unwrap(), "% 1");
        assert_eq!(percent_decode("%C3%A9").unwrap(), "é");
        assert_eq!(percent_decode("%00").unwrap(), "\0");
    }
}
