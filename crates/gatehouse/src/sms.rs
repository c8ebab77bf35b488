//! Outgoing SMS through an HTTP gateway: the `[mfa.sms]` settings and the [`HttpSmsSender`]
//! that sends the core's [`Sms`] as one HTTP request. Most gateways (Twilio, MessageBird, an
//! in-house relay) take a request whose URL, headers and body carry the recipient and text;
//! every part is a template with `${phoneNumber}`, `${message}` and `${code}`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_core::error::{CoreError, CoreResult};
use gatehouse_core::mfa::{NoSmsSender, Sms, SmsSender};
use serde::{Deserialize, Serialize};

/// The `[mfa.sms]` section; `url` unset means there is no gateway (SMS codes are off).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsSettings {
    /// The gateway's URL (http or https); may contain the placeholders, URL-encoded.
    pub url: Option<String>,
    /// `POST`, `PUT` or `GET`.
    pub method: String,
    /// Headers sent with every request (e.g. `Authorization`). Values are secrets: never
    /// logged nor shown by `Debug`.
    pub headers: BTreeMap<String, String>,
    /// The request body; JSON-escaped values when `content_type` contains `json`,
    /// form-encoded values otherwise.
    pub body: String,
    /// The body's content type.
    pub content_type: String,
    /// Seconds before the request is given up.
    pub timeout_secs: u64,
}

impl Default for SmsSettings {
    fn default() -> Self {
        Self {
            url: None,
            method: "POST".to_owned(),
            headers: BTreeMap::new(),
            body: r#"{"to":"${phoneNumber}","text":"${message}"}"#.to_owned(),
            content_type: "application/json".to_owned(),
            timeout_secs: 10,
        }
    }
}

/// Redacts header values (they carry the gateway's credentials).
impl fmt::Debug for SmsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmsSettings")
            .field("url", &self.url)
            .field("method", &self.method)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("body", &self.body)
            .field("content_type", &self.content_type)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// How placeholder values are escaped in one part of the request.
#[derive(Clone, Copy)]
enum Escape {
    Json,
    Form,
    Header,
}

fn escape(value: &str, escape: Escape) -> String {
    match escape {
        Escape::Json => {
            let quoted = serde_json::Value::String(value.to_owned()).to_string();
            quoted[1..quoted.len() - 1].to_owned()
        }
        Escape::Form => form_urlencoded(value),
        // Header values cannot carry line breaks.
        Escape::Header => value.replace(['\r', '\n'], " "),
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_urlencoded(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                encoded.push(char::from(byte))
            }
            b' ' => encoded.push('+'),
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

fn fill(template: &str, sms: &Sms, how: Escape) -> String {
    template
        .replace("${phoneNumber}", &escape(&sms.phone_number, how))
        .replace("${message}", &escape(&sms.message, how))
        .replace("${code}", &escape(&sms.code, how))
}

/// Sends SMS through the configured HTTP gateway.
pub struct HttpSmsSender {
    client: reqwest::Client,
    settings: SmsSettings,
    method: reqwest::Method,
}

/// The sender for `settings`: none when no URL is set.
pub fn sms_sender(settings: &SmsSettings) -> Result<Arc<dyn SmsSender>, String> {
    let Some(url) = settings.url.as_deref().filter(|url| !url.trim().is_empty()) else {
        return Ok(Arc::new(NoSmsSender));
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!(
            "mfa.sms.url must start with http:// or https://, not {url:?}"
        ));
    }
    let method = match settings.method.to_ascii_uppercase().as_str() {
        "POST" => reqwest::Method::POST,
        "PUT" => reqwest::Method::PUT,
        "GET" => reqwest::Method::GET,
        other => {
            return Err(format!(
                "mfa.sms.method must be POST, PUT or GET, not {other:?}"
            ))
        }
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(settings.timeout_secs.clamp(1, 120)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|error| format!("cannot build the SMS client: {error}"))?;
    Ok(Arc::new(HttpSmsSender {
        client,
        settings: settings.clone(),
        method,
    }))
}

#[async_trait]
impl SmsSender for HttpSmsSender {
    async fn send(&self, sms: Sms) -> CoreResult<()> {
        let url = fill(
            self.settings.url.as_deref().unwrap_or_default(),
            &sms,
            Escape::Form,
        );
        let body_escape = if self.settings.content_type.contains("json") {
            Escape::Json
        } else {
            Escape::Form
        };
        let mut request = self
            .client
            .request(self.method.clone(), &url)
            .header(reqwest::header::CONTENT_TYPE, &self.settings.content_type);
        for (name, value) in &self.settings.headers {
            request = request.header(name, fill(value, &sms, Escape::Header));
        }
        if self.method != reqwest::Method::GET {
            request = request.body(fill(&self.settings.body, &sms, body_escape));
        }
        let unavailable = |reason: String| CoreError::Unavailable { reason };
        let response = request.send().await.map_err(|error| {
            // The URL may carry the message; only the kind of failure is logged.
            tracing::warn!(
                timeout = error.is_timeout(),
                connect = error.is_connect(),
                "SMS gateway unreachable"
            );
            unavailable("the SMS gateway cannot be reached".to_owned())
        })?;
        if !response.status().is_success() {
            tracing::warn!(
                status = response.status().as_u16(),
                "SMS gateway refused a message"
            );
            return Err(unavailable(
                "the SMS gateway refused the message".to_owned(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_escaped_for_their_part() {
        let sms = Sms {
            phone_number: "+4915123456789".to_owned(),
            message: "Code \"123456\"\nbye & go".to_owned(),
            code: "123456".to_owned(),
        };
        assert_eq!(
            fill(
                r#"{"to":"${phoneNumber}","text":"${message}"}"#,
                &sms,
                Escape::Json
            ),
            r#"{"to":"+4915123456789","text":"Code \"123456\"\nbye & go"}"#
        );
        assert_eq!(
            fill("to=${phoneNumber}&c=${code}", &sms, Escape::Form),
            "to=%2B4915123456789&c=123456"
        );
        assert_eq!(
            fill("${message}", &sms, Escape::Header),
            "Code \"123456\" bye & go"
        );
    }

    #[test]
    fn bad_urls_and_methods_are_refused() {
        let mut settings = SmsSettings::default();
        assert!(!sms_sender(&settings).unwrap().is_configured());
        settings.url = Some("ftp://x".to_owned());
        assert!(sms_sender(&settings).is_err());
        settings.url = Some("http://127.0.0.1:9/sms".to_owned());
        settings.method = "DELETE".to_owned();
        assert!(sms_sender(&settings).is_err());
        settings.method = "post".to_owned();
        assert!(sms_sender(&settings).unwrap().is_configured());
    }
}
