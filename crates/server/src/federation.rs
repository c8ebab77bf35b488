//! What both dialects' federated logins share on the wire: the cookie that binds a login to
//! the browser that started it, and redirects that carry a result in their query.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, SameSite};
use gatehouse_core::federation::LOGIN_LIFETIME_MILLIS;

/// The cookie that binds a login under way to the browser that started it. Its value is also
/// the PKCE verifier; the server keeps only its digest.
pub const BINDING_COOKIE: &str = "gatehouse_federated_login";

/// The path the binding cookie is sent to: both dialects' callbacks.
const COOKIE_PATH: &str = "/";

/// The binding cookie as the request carries it.
pub fn binding_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| Cookie::parse(pair.trim().to_owned()).ok())
        .find(|cookie| cookie.name() == BINDING_COOKIE)
        .map(|cookie| cookie.value().to_owned())
}

/// A `Set-Cookie` for the binding cookie: HttpOnly, `SameSite=Lax` (the provider sends the
/// browser back with a top-level GET), `Secure` when the callback is https, and lasting as long
/// as the login may. `None` as value removes it.
fn binding_set_cookie(value: Option<&str>, secure: bool) -> Option<HeaderValue> {
    let max_age = match value {
        Some(_) => time::Duration::milliseconds(LOGIN_LIFETIME_MILLIS),
        None => time::Duration::ZERO,
    };
    let cookie = Cookie::build((BINDING_COOKIE, value.unwrap_or_default().to_owned()))
        .path(COOKIE_PATH)
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(max_age)
        .build();
    HeaderValue::from_str(&cookie.to_string()).ok()
}

/// A 302 to `location`, setting (`Some`) or clearing (`None`) the binding cookie.
pub fn redirect(location: &str, binding: Option<&str>, secure: bool) -> Response {
    let Ok(location) = HeaderValue::from_str(location) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut response = (StatusCode::FOUND, [(header::LOCATION, location)]).into_response();
    if let Some(cookie) = binding_set_cookie(binding, secure) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// `base` with `parameters` added to its query (after any it has).
pub fn with_query(base: &str, parameters: &[(&str, &str)]) -> String {
    match url::Url::parse(base) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(parameters);
            url.to_string()
        }
        // A relative place: add the parameters by hand, encoded the same way.
        Err(_) => {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(parameters)
                .finish();
            let separator = if base.contains('?') { '&' } else { '?' };
            format!("{base}{separator}{query}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_join_any_query() {
        assert_eq!(
            with_query("https://ui.example/admin/", &[("apiToken", "a b&c")]),
            "https://ui.example/admin/?apiToken=a+b%26c"
        );
        assert_eq!(
            with_query("https://ui.example/admin/?tab=1", &[("error", "x")]),
            "https://ui.example/admin/?tab=1&error=x"
        );
        assert_eq!(
            with_query("/login", &[("loginError", "é")]),
            "/login?loginError=%C3%A9"
        );
    }

    #[test]
    fn the_binding_cookie_is_read_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; gatehouse_federated_login=xyz; b=2"),
        );
        assert_eq!(binding_cookie(&headers).as_deref(), Some("xyz"));
        assert_eq!(binding_cookie(&HeaderMap::new()), None);
    }

    #[test]
    fn the_binding_cookie_is_http_only_and_short_lived() {
        let response = redirect("https://op.example/auth", Some("v"), true);
        let cookie = response.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap_or_default();
        assert!(
            cookie.starts_with("gatehouse_federated_login=v"),
            "{cookie}"
        );
        for part in [
            "HttpOnly",
            "Secure",
            "SameSite=Lax",
            "Max-Age=180",
            "Path=/",
        ] {
            assert!(cookie.contains(part), "{cookie} lacks {part}");
        }
        let cleared = redirect("/", None, false);
        let cookie = cleared.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap_or_default();
        assert!(
            cookie.contains("Max-Age=0") && !cookie.contains("Secure"),
            "{cookie}"
        );
    }
}
