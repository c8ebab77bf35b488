//! Self-service sign-up (T12–T21): sign-up, email verification, the CAPTCHA parameters, the
//! mobile redirect, the privacy policy and the deletion of a signed-up account.
//!
//! The `/api/noauth/*` operations exist only while `signup.enabled` is set (404 code 32
//! otherwise); the `/api/signup/*` operations serve the accounts that signed up whatever the
//! setting. The rules live in `gatehouse_core::signup`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gatehouse_core::model::{Profile, TokenPurpose};
use gatehouse_core::names::Email;
use gatehouse_core::password::PlainPassword;
use gatehouse_core::signup::{MobileCredentials, SignUpForm};
use gatehouse_core::CoreError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::auth::new_password;
use super::error::{ErrorBody, ErrorCode, TbError, TbResult};
use super::extract::{json_object, AccountCaller, TbBody, TbQuery};
use super::links::check;
use super::wire::JwtPairOut;
use super::TAG;
use crate::client::ClientAddress;
use crate::AppState;

/// Body of T12: ThingsBoard's flat `SignUpRequest`, or the 4.4 clients' `fields` map
/// (`EMAIL`, `PASSWORD`, `REPEAT_PASSWORD`, `FIRST_NAME`, `LAST_NAME`, `PHONE`, `COUNTRY`,
/// `CITY`, `STATE`, `ZIP`, `ADDRESS`, `ADDRESS2`); a field of the map wins over its flat twin.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = SignUpRequest)]
#[serde(rename_all = "camelCase")]
pub struct SignUpIn {
    /// First name.
    #[serde(default)]
    first_name: Option<String>,
    /// Last name.
    #[serde(default)]
    last_name: Option<String>,
    /// Email, the new account's login name.
    #[serde(default)]
    email: Option<String>,
    /// The password chosen.
    #[serde(default)]
    password: Option<String>,
    /// The form's fields by id (ThingsBoard 4.4 clients).
    #[serde(default)]
    #[schema(value_type = Object)]
    fields: Option<BTreeMap<String, String>>,
    /// The reCAPTCHA answer.
    #[serde(default)]
    recaptcha_response: Option<String>,
    /// Mobile applications only: the package name.
    #[serde(default)]
    pkg_name: Option<String>,
    /// Mobile applications only: `ANDROID` or `IOS` (informational).
    #[serde(default)]
    #[allow(dead_code)]
    platform: Option<String>,
    /// Mobile applications only: the application's secret.
    #[serde(default)]
    app_secret: Option<String>,
}

/// Sign-up fields kept in the account's `additionalInfo`, by form id and JSON key.
const ADDRESS_FIELDS: [(&str, &str); 6] = [
    ("COUNTRY", "country"),
    ("CITY", "city"),
    ("STATE", "state"),
    ("ZIP", "zip"),
    ("ADDRESS", "address"),
    ("ADDRESS2", "address2"),
];

/// Longest value of a sign-up field, in characters: a profile field's.
const MAX_FIELD_CHARS: usize = gatehouse_core::accounts::MAX_PROFILE_FIELD_CHARS;

impl SignUpIn {
    /// The value of form field `id`, else of its flat twin; blank counts as absent.
    fn field(&self, id: &str, flat: &Option<String>) -> Option<String> {
        self.fields
            .as_ref()
            .and_then(|fields| fields.get(id).cloned())
            .or_else(|| flat.clone())
            .filter(|value| !value.trim().is_empty())
    }

    fn into_form(self) -> TbResult<SignUpForm> {
        if let Some(fields) = &self.fields {
            if fields.len() > 32 {
                return Err(TbError::bad_request("Too many sign-up fields"));
            }
            // Passwords are the password rules' business (as in the flat form).
            let is_password = |id: &str| matches!(id, "PASSWORD" | "REPEAT_PASSWORD");
            if let Some((id, _)) = fields.iter().find(|(id, value)| {
                value.chars().count() > MAX_FIELD_CHARS
                    || (!is_password(id) && value.chars().any(char::is_control))
            }) {
                return Err(TbError::bad_request(format!(
                    "Sign-up field {id} must be at most {MAX_FIELD_CHARS} characters without \
                     control characters"
                )));
            }
        }
        let email = self
            .field("EMAIL", &self.email)
            .ok_or_else(|| TbError::bad_request("Email is required"))?;
        let email = Email::parse(email.trim(), "email")
            .map_err(|_| TbError::bad_request(format!("Invalid email address format '{email}'")))?;
        let password = self
            .field("PASSWORD", &self.password)
            .ok_or_else(|| TbError::bad_request("Password is required"))?;
        if let Some(repeated) = self.field("REPEAT_PASSWORD", &None) {
            if repeated != password {
                return Err(TbError::bad_request("Passwords do not match"));
            }
        }
        let password: PlainPassword = new_password(&password)?;
        let mut address = Map::new();
        for (id, key) in ADDRESS_FIELDS {
            if let Some(value) = self.field(id, &None) {
                address.insert(key.to_owned(), Value::String(value));
            }
        }
        let profile = Profile {
            email: None,
            first_name: self.field("FIRST_NAME", &self.first_name),
            last_name: self.field("LAST_NAME", &self.last_name),
            phone: self.field("PHONE", &None),
            additional_info: (!address.is_empty()).then(|| {
                Value::Object(Map::from_iter([(
                    "signUp".to_owned(),
                    Value::Object(address),
                )]))
                .to_string()
            }),
        };
        let mobile = match (self.pkg_name, self.app_secret) {
            (None, None) => None,
            (Some(package), Some(secret)) => Some(MobileCredentials { package, secret }),
            _ => {
                return Err(TbError::bad_request(
                    "pkgName and appSecret go together (mobile applications only)",
                ))
            }
        };
        Ok(SignUpForm {
            email,
            password,
            profile,
            captcha_response: self.recaptcha_response.unwrap_or_default(),
            mobile,
        })
    }
}

/// Query of T13 and T14.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EmailCodeQuery {
    /// The code from the verification mail.
    #[serde(rename = "emailCode")]
    email_code: String,
    /// Mobile applications only: the package name (T13 then redirects into the app).
    #[serde(rename = "pkgName", default)]
    pkg_name: Option<String>,
    /// Mobile applications only: `ANDROID` or `IOS` (informational).
    #[serde(default)]
    #[allow(dead_code)]
    platform: Option<String>,
}

/// Query of T15.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResendQuery {
    /// The address the sign-up used.
    email: String,
    /// Mobile applications only: the package name.
    #[serde(rename = "pkgName", default)]
    pkg_name: Option<String>,
    /// Mobile applications only: `ANDROID` or `IOS` (informational).
    #[serde(default)]
    #[allow(dead_code)]
    platform: Option<String>,
}

/// Query of T16.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MobileLoginQuery {
    /// The mobile application's package name.
    #[serde(rename = "pkgName")]
    pkg_name: String,
    /// `ANDROID` or `IOS` (informational).
    #[serde(default)]
    #[allow(dead_code)]
    platform: Option<String>,
}

/// `CaptchaClientParams` of T18.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CaptchaClientParams)]
#[serde(rename_all = "camelCase")]
pub struct CaptchaParamsOut {
    /// The public site key.
    captcha_site_key: String,
    /// `v2`, `v3` or `enterprise`.
    captcha_version: String,
    /// The action score-based versions expect.
    #[serde(skip_serializing_if = "Option::is_none")]
    captcha_action: Option<String>,
}

/// Body of T21: ThingsBoard's `DeleteTenantRequest`, plus the password that re-authenticates.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = DeleteTenantRequest)]
#[serde(rename_all = "camelCase")]
pub struct DeleteAccountIn {
    /// Why the account goes (accepted; neither logged nor stored).
    #[serde(default)]
    #[allow(dead_code)]
    reason: Option<String>,
    /// More words on it (not stored).
    #[serde(default)]
    #[allow(dead_code)]
    additional_notes: Option<String>,
    /// The account's password. Without it, the caller's session must come from a login in
    /// the last `signup.reauthentication_secs` seconds.
    #[serde(default)]
    password: Option<String>,
}

/// T12: sign up. Answers `"SUCCESS"` (also when the address belongs to a verified account,
/// whose owner is told by mail), or `"INACTIVE_USER_EXISTS"` when an unverified sign-up of
/// the address exists (the newest sign-up's password and names replace it; a new code is
/// mailed).
#[utoipa::path(
    post, path = "/api/noauth/signup", tag = TAG, operation_id = "signUp",
    request_body = SignUpIn,
    responses(
        (status = 200, description = "`\"SUCCESS\"` or `\"INACTIVE_USER_EXISTS\"`", body = String, content_type = "application/json"),
        (status = 400, description = "A missing or malformed field, a refused CAPTCHA answer, an unknown mobile application (31), a password breaking the policy (31)", body = ErrorBody),
        (status = 404, description = "Sign-up is not enabled (32)", body = ErrorBody),
        (status = 429, description = "Too many sign-ups from this address, or too many unverified sign-ups (33)", body = ErrorBody),
        (status = 503, description = "The CAPTCHA verifier cannot be reached (2)", body = ErrorBody),
    )
)]
pub async fn sign_up(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    TbBody(body): TbBody,
) -> TbResult<Json<&'static str>> {
    state.core.enabled_signup()?;
    let request: SignUpIn = json_object(&body)?;
    let outcome = state.core.sign_up(request.into_form()?, client).await?;
    Ok(Json(outcome.as_str()))
}

/// The URL prefix of pages in the mobile application `package`, or of the web UI (empty).
fn page_base(state: &AppState, package: Option<&str>) -> TbResult<String> {
    Ok(match package {
        Some(package) => format!("{}://auth", state.core.mobile_app(package)?.callback_scheme),
        None => String::new(),
    })
}

/// T13: the link of the verification mail. Redirects (303) to the page that activates the
/// account (`/signup/emailVerified?emailCode=…`, or the mobile application's
/// `<scheme>://auth/signup/emailVerified?emailCode=…`), or to `…/signup/emailVerificationExpired`;
/// 409 with an empty body for an unknown code. Using the code is T14's job, so mail scanners
/// that open links change nothing.
#[utoipa::path(
    get, path = "/api/noauth/activateEmail", tag = TAG, operation_id = "activateEmail",
    params(EmailCodeQuery),
    responses(
        (status = 303, description = "To the page that activates the account, or to the expiry page"),
        (status = 400, description = "No code, or an unknown mobile application (31)", body = ErrorBody),
        (status = 404, description = "Sign-up is not enabled (32)", body = ErrorBody),
        (status = 409, description = "Unknown code (empty body)"),
    )
)]
pub async fn activate_email(
    State(state): State<AppState>,
    TbQuery(query): TbQuery<EmailCodeQuery>,
) -> TbResult<Response> {
    state.core.enabled_signup()?;
    let base = page_base(&state, query.pkg_name.as_deref())?;
    Ok(check(
        &state,
        &query.email_code,
        TokenPurpose::EmailVerification,
        &base,
    )
    .await)
}

/// T14: use the email code: the account becomes active and gets a token pair (or the MFA
/// token its second factor asks for first).
#[utoipa::path(
    post, path = "/api/noauth/activateByEmailCode", tag = TAG, operation_id = "activateUserByEmailCode",
    params(EmailCodeQuery),
    responses(
        (status = 200, description = "A token pair", body = JwtPairOut),
        (status = 400, description = "Unknown, used or expired code (31)", body = ErrorBody),
        (status = 404, description = "Sign-up is not enabled (32)", body = ErrorBody),
    )
)]
pub async fn activate_by_email_code(
    State(state): State<AppState>,
    TbQuery(query): TbQuery<EmailCodeQuery>,
) -> TbResult<Json<JwtPairOut>> {
    state.core.enabled_signup()?;
    if let Some(package) = &query.pkg_name {
        state.core.mobile_app(package)?;
    }
    let user = state.core.verify_email(&query.email_code).await?;
    let login = state.core.pair_or_mfa(&user).await?;
    Ok(Json(login.into()))
}

/// T15: mail a new code to an unverified sign-up. Always 200 (nothing tells whether the
/// address signed up); mails per address are limited silently.
#[utoipa::path(
    post, path = "/api/noauth/resendEmailActivation", tag = TAG, operation_id = "resendEmailActivation",
    params(ResendQuery),
    responses(
        (status = 200, description = "Accepted (empty body)"),
        (status = 400, description = "No email, or an unknown mobile application (31)", body = ErrorBody),
        (status = 404, description = "Sign-up is not enabled (32)", body = ErrorBody),
        (status = 429, description = "Too many requests from this client address (33)", body = ErrorBody),
    )
)]
pub async fn resend_email_activation(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    TbQuery(query): TbQuery<ResendQuery>,
) -> TbResult<()> {
    state
        .core
        .resend_email_verification(query.email.trim().to_owned(), query.pkg_name, client)?;
    Ok(())
}

/// T16: the mobile application's login: redirects (302) to `<scheme>://auth/login`.
#[utoipa::path(
    get, path = "/api/noauth/login", tag = TAG, operation_id = "mobileLogin",
    params(MobileLoginQuery),
    responses(
        (status = 302, description = "To the application's login page"),
        (status = 400, description = "No or an unknown package name (31)", body = ErrorBody),
        (status = 404, description = "Sign-up is not enabled (32)", body = ErrorBody),
    )
)]
pub async fn mobile_login(
    State(state): State<AppState>,
    TbQuery(query): TbQuery<MobileLoginQuery>,
) -> TbResult<Response> {
    state.core.enabled_signup()?;
    let base = page_base(&state, Some(&query.pkg_name))?;
    Ok((
        StatusCode::FOUND,
        [(header::LOCATION, format!("{base}/login"))],
    )
        .into_response())
}

/// T17: the reCAPTCHA site key (a JSON string), for sign-up pages of older ThingsBoard UIs.
#[utoipa::path(
    get, path = "/api/noauth/signup/recaptchaPublicKey", tag = TAG, operation_id = "getRecaptchaPublicKey",
    responses(
        (status = 200, description = "The site key", body = String, content_type = "application/json"),
        (status = 404, description = "Sign-up is not enabled (32)", body = ErrorBody),
    )
)]
pub async fn recaptcha_public_key(State(state): State<AppState>) -> TbResult<Json<String>> {
    Ok(Json(state.core.enabled_signup()?.captcha.site_key.clone()))
}

/// T18: what a sign-up page needs to show the CAPTCHA.
#[utoipa::path(
    get, path = "/api/noauth/signup/recaptchaParams", tag = TAG, operation_id = "getRecaptchaParams",
    responses(
        (status = 200, description = "Site key, version and action", body = CaptchaParamsOut),
        (status = 404, description = "Sign-up is not enabled (32)", body = ErrorBody),
    )
)]
pub async fn recaptcha_params(State(state): State<AppState>) -> TbResult<Json<CaptchaParamsOut>> {
    let captcha = &state.core.enabled_signup()?.captcha;
    Ok(Json(CaptchaParamsOut {
        captcha_site_key: captcha.site_key.clone(),
        captcha_version: captcha.version.clone(),
        captcha_action: captcha.action.clone(),
    }))
}

/// T19: accept the privacy policy; answers a new token pair whose session replaces the
/// caller's. Accounts that did not sign up themselves may call it too (nothing changes).
#[utoipa::path(
    post, path = "/api/signup/acceptPrivacyPolicy", tag = TAG, operation_id = "acceptPrivacyPolicy",
    security(("xAuthorization" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "A new token pair", body = JwtPairOut),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not a ThingsBoard token pair (an API key or a Connectware token) (20)", body = ErrorBody),
    )
)]
pub async fn accept_privacy_policy(
    State(state): State<AppState>,
    AccountCaller(principal): AccountCaller,
) -> TbResult<Json<JwtPairOut>> {
    let pair = state.core.accept_privacy_policy(&principal).await?;
    Ok(Json(pair.into()))
}

/// T20: whether the caller has accepted the privacy policy (true for accounts that did not
/// sign up themselves: they were never asked).
#[utoipa::path(
    get, path = "/api/signup/privacyPolicyAccepted", tag = TAG, operation_id = "privacyPolicyAccepted",
    security(("xAuthorization" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "true or false", body = bool, content_type = "application/json"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    )
)]
pub async fn privacy_policy_accepted(
    State(state): State<AppState>,
    AccountCaller(principal): AccountCaller,
) -> TbResult<Json<bool>> {
    Ok(Json(
        state
            .core
            .privacy_policy_accepted(principal.user.id)
            .await?,
    ))
}

/// The refusal of a deletion, with the reason (re-authentication, not a signed-up account).
fn deletion_error(error: CoreError) -> TbError {
    match error {
        CoreError::Forbidden { reason } => {
            TbError::new(StatusCode::FORBIDDEN, ErrorCode::PermissionDenied, reason)
        }
        other => other.into(),
    }
}

async fn delete_account(
    state: &AppState,
    principal: &gatehouse_core::auth::Principal,
    body: &[u8],
) -> TbResult<()> {
    let request: DeleteAccountIn = if body.iter().all(u8::is_ascii_whitespace) {
        DeleteAccountIn::default()
    } else {
        json_object(body)?
    };
    let password = request
        .password
        .as_deref()
        .map(|password| {
            PlainPassword::parse(password, "password")
                .map_err(|_| TbError::bad_request("Current password doesn't match!"))
        })
        .transpose()?;
    state
        .core
        .delete_signed_up_account(principal, password.as_ref())
        .await
        .map_err(deletion_error)?;
    Ok(())
}

/// T21: the owner of a signed-up account deletes it: the whole tenant (every user, API key,
/// 2FA factor, OAuth2 client and domain in it) when the sign-up created the tenant, else its
/// customer's users. Needs re-authentication: `password` in the body, or a session from a
/// login in the last `signup.reauthentication_secs` seconds.
#[utoipa::path(
    delete, path = "/api/signup/tenantAccount", tag = TAG, operation_id = "deleteTenantAccount",
    security(("xAuthorization" = []), ("bearer" = [])),
    request_body(content = DeleteAccountIn, description = "Optional", content_type = "application/json"),
    responses(
        (status = 200, description = "Deleted (empty body)"),
        (status = 400, description = "A wrong password or a malformed body (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not a signed-up account, or re-authentication needed (20)", body = ErrorBody),
    )
)]
pub async fn delete_tenant_account(
    State(state): State<AppState>,
    AccountCaller(principal): AccountCaller,
    TbBody(body): TbBody,
) -> TbResult<()> {
    delete_account(&state, &principal, &body).await
}

/// T21 as ThingsBoard 4.4's cloud client sends it (POST with a `DeleteTenantRequest`).
#[utoipa::path(
    post, path = "/api/signup/tenantAccount", tag = TAG, operation_id = "deleteTenantAccountPost",
    security(("xAuthorization" = []), ("bearer" = [])),
    request_body(content = DeleteAccountIn, description = "Optional", content_type = "application/json"),
    responses(
        (status = 200, description = "Deleted (empty body)"),
        (status = 400, description = "A wrong password or a malformed body (31)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not a signed-up account, or re-authentication needed (20)", body = ErrorBody),
    )
)]
pub async fn delete_tenant_account_post(
    State(state): State<AppState>,
    AccountCaller(principal): AccountCaller,
    TbBody(body): TbBody,
) -> TbResult<()> {
    delete_account(&state, &principal, &body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: Value) -> TbResult<SignUpForm> {
        serde_json::from_value::<SignUpIn>(value)
            .unwrap()
            .into_form()
    }

    #[test]
    fn flat_and_field_forms_read_alike() {
        let flat = parse(serde_json::json!({
            "email": "a@example.com", "password": "Secret-123", "firstName": "Ann",
            "recaptchaResponse": "ok"
        }))
        .unwrap();
        let fields = parse(serde_json::json!({
            "fields": {"EMAIL": "a@example.com", "PASSWORD": "Secret-123",
                       "REPEAT_PASSWORD": "Secret-123", "FIRST_NAME": "Ann", "CITY": "Kyiv"},
            "recaptchaResponse": "ok"
        }))
        .unwrap();
        assert_eq!(flat.email.as_str(), fields.email.as_str());
        assert_eq!(flat.profile.first_name, fields.profile.first_name);
        assert_eq!(
            fields.profile.additional_info.as_deref(),
            Some(r#"{"signUp":{"city":"Kyiv"}}"#)
        );
    }

    #[test]
    fn bad_forms_are_refused() {
        for body in [
            serde_json::json!({"password": "Secret-123"}),
            serde_json::json!({"email": "not-an-email", "password": "Secret-123"}),
            serde_json::json!({"email": "a@example.com"}),
            serde_json::json!({"fields": {"EMAIL": "a@example.com", "PASSWORD": "x1",
                                          "REPEAT_PASSWORD": "x2"}}),
            serde_json::json!({"email": "a@example.com", "password": "Secret-123",
                               "pkgName": "org.example"}),
            serde_json::json!({"fields": {"EMAIL": "a@example.com", "PASSWORD": "Secret-123",
                                          "CITY": "x".repeat(300)}}),
        ] {
            let error = parse(body.clone())
                .err()
                .unwrap_or_else(|| panic!("{body} accepted"));
            assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{body}");
        }
    }
}
