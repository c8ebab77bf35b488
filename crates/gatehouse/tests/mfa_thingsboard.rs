//! ThingsBoard two-factor authentication (T27–T39) end to end over HTTP: the platform settings,
//! TOTP and backup-code configuration, logins that answer a `PRE_VERIFICATION_TOKEN`, enforced
//! 2FA with its `MFA_CONFIGURATION_TOKEN`, codes mailed through a real SMTP server and texted
//! through an HTTP SMS gateway, the lockout after wrong codes, the delete rules, and the factors
//! shared with Connectware's MFA. TOTP steps and expiries move with a manual clock.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::otp::{code_at, secret_of, wrong_code_at};
use common::smtp::SmtpServer;
use common::{
    assert_tb_error, assert_tb_shape, jwt_claims, tb_id, tb_pair, TestApp, ADMIN_PASSWORD,
};
use gatehouse::mail::{MailSettings, MailTls};
use gatehouse::sms::SmsSettings;
use gatehouse_core::clock::{Clock, ManualClock};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_engines!(
    platform_settings_defaults_permissions_and_validation,
    totp_configuration_and_pre_verification_login,
    enforced_two_fa_hands_out_configuration_tokens,
    email_codes_travel_over_smtp,
    sms_codes_travel_through_the_http_gateway,
    wrong_codes_lock_the_user_for_the_ban_time,
    wrong_codes_disable_the_account_without_a_ban_time,
    delete_and_update_rules_of_account_configs,
    connectware_enrolment_logs_in_through_thingsboard,
    thingsboard_enrolment_logs_in_through_connectware,
    code_checks_are_rate_limited,
);

const PASSWORD: &str = "tenant-password-1";
const PERMISSION_DENIED: &str = "You don't have permission to perform this operation!";
const WRONG_CODE: &str = "Verification code is incorrect";
const LOCKED: &str = "User account was locked due to exceeded 2FA verification attempts";
const MAIL_WAIT: Duration = Duration::from_secs(15);

/// The body of a new tenant administrator (of a tenant of its own).
fn tenant_admin(email: &str) -> Value {
    json!({
        "email": email,
        "authority": "TENANT_ADMIN",
        "tenantId": tb_id("TENANT", &uuid::Uuid::new_v4().to_string()),
    })
}

/// The sysadmin's token pair access token.
async fn sysadmin(app: &TestApp) -> String {
    app.tb_login("admin", ADMIN_PASSWORD).await.0
}

/// A request with `X-Authorization: Bearer <token>` and an optional JSON body.
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    app.tb_request(method, path, Some(&format!("Bearer {token}")), body)
        .await
}

/// A POST without a body (the 2FA endpoints that take only query parameters).
async fn post_empty(app: &TestApp, path: &str, token: &str) -> (StatusCode, Value) {
    call(app, Method::POST, path, token, None).await
}

/// Saves platform settings as the sysadmin; panics unless 200, answered as given (a users
/// filter with its optional lists spelled out) and read back the same.
async fn save_platform(app: &TestApp, sys: &str, settings: Value) {
    let (status, saved) = app
        .tb_post("/api/2fa/settings", sys, settings.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "save {settings}: {saved}");
    let mut expected = settings.clone();
    if expected["enforcedUsersFilter"]["type"] == "TENANT_ADMINISTRATORS" {
        let filter = &mut expected["enforcedUsersFilter"];
        for list in ["tenantsIds", "tenantProfilesIds"] {
            if filter.get(list).is_none() {
                filter[list] = Value::Null;
            }
        }
    }
    assert_eq!(saved, expected, "the saved settings are answered as given");
    let (status, read) = app.tb_get("/api/2fa/settings", sys).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read, saved, "GET answers what was saved");
}

/// The keys of a JSON object, sorted (`serde_json` does not keep their order).
fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// Asserts that the provider names appear in `text` (an answer as sent) in this order.
fn assert_in_order(text: &str, names: &[&str]) {
    let positions: Vec<usize> = names
        .iter()
        .map(|name| {
            text.find(&format!("\"{name}\":"))
                .unwrap_or_else(|| panic!("no {name} key in {text}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|pair| pair[0] < pair[1]),
        "{names:?} in this order: {text}"
    );
}

/// Platform settings with the given providers and the usual periods.
fn platform(providers: Value) -> Value {
    json!({
        "providers": providers,
        "minVerificationCodeSendPeriod": 30,
        "maxVerificationFailuresBeforeUserLockout": 10,
        "totalAllowedTimeForVerification": 3600,
        "enforceTwoFa": false,
    })
}

fn totp_provider() -> Value {
    json!({"providerType": "TOTP", "issuerName": "Acme IoT"})
}

fn backup_provider() -> Value {
    json!({"providerType": "BACKUP_CODE", "codesQuantity": 10})
}

/// `POST /api/auth/login` that must answer an MFA token of `scope`; returns the token.
async fn mfa_login(app: &TestApp, login: &str, password: &str, scope: &str) -> String {
    let (status, body) = app.tb_try_login(login, password).await;
    assert_eq!(status, StatusCode::OK, "login of {login}: {body}");
    assert_eq!(
        keys(&body),
        vec!["scope", "token"],
        "an MFA token has no refreshToken: {body}"
    );
    assert_eq!(body["scope"], scope, "{body}");
    let token = body["token"].as_str().expect("token").to_owned();
    assert_eq!(jwt_claims(&token)["scopes"], json!([scope]));
    token
}

/// `verification/check` of `provider` with `code` as `pre`.
async fn check(app: &TestApp, pre: &str, provider: &str, code: &str) -> (StatusCode, Value) {
    post_empty(
        app,
        &format!(
            "/api/auth/2fa/verification/check?providerType={provider}&verificationCode={code}"
        ),
        pre,
    )
    .await
}

/// A check that must complete the login; returns the pair and proves its access token works.
async fn check_ok(app: &TestApp, pre: &str, provider: &str, code: &str) -> (String, String) {
    let (status, body) = check(app, pre, provider, code).await;
    assert_eq!(status, StatusCode::OK, "check {provider} {code}: {body}");
    assert!(
        body.get("scope").is_none(),
        "a full pair has no scope: {body}"
    );
    let pair = tb_pair(&body);
    assert_ne!(
        jwt_claims(&pair.0)["scopes"],
        json!(["PRE_VERIFICATION_TOKEN"])
    );
    app.tb_me(&pair.0).await;
    pair
}

/// `POST /api/2fa/account/config/generate?providerType=…` as `token`; panics unless 200.
async fn generate(app: &TestApp, token: &str, provider: &str) -> Value {
    let (status, config) = post_empty(
        app,
        &format!("/api/2fa/account/config/generate?providerType={provider}"),
        token,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "generate {provider}: {config}");
    assert_eq!(config["providerType"], provider);
    config
}

/// `POST /api/2fa/account/config[?verificationCode=…]` as `token`.
async fn save_config(
    app: &TestApp,
    token: &str,
    config: &Value,
    code: Option<&str>,
) -> (StatusCode, Value) {
    let path = match code {
        Some(code) => format!("/api/2fa/account/config?verificationCode={code}"),
        None => "/api/2fa/account/config".to_owned(),
    };
    app.tb_post(&path, token, config.clone()).await
}

/// Configures TOTP for `token`'s user at the clock's time (the code is the current step's) and
/// moves the clock to the next step, so the next login's code is not a replay. Returns the
/// secret.
async fn configure_totp(app: &TestApp, clock: &ManualClock, token: &str) -> String {
    let config = generate(app, token, "TOTP").await;
    let secret = secret_of(config["authUrl"].as_str().expect("authUrl"));
    let (status, body) = save_config(
        app,
        token,
        &config,
        Some(&code_at(&secret, clock.now_millis())),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "configure TOTP: {body}");
    clock.advance(30_000);
    secret
}

/// Generates and saves backup codes for `token`'s user; returns them.
async fn configure_backup_codes(app: &TestApp, token: &str) -> Vec<String> {
    let config = generate(app, token, "BACKUP_CODE").await;
    let (status, body) = save_config(app, token, &config, None).await;
    assert_eq!(status, StatusCode::OK, "configure backup codes: {body}");
    strings(&config["codes"])
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|item| item.as_str().expect("a string").to_owned())
        .collect()
}

/// The body of an answer as it came (to tell a JSON `null` from an empty body).
async fn raw_get(app: &TestApp, path: &str, token: &str) -> common::RawAnswer {
    app.tb_send(
        Method::GET,
        path,
        &[("x-authorization", &format!("Bearer {token}"))],
        None,
    )
    .await
}

/// The only run of exactly six digits in `text`.
fn six_digits(text: &str) -> String {
    let runs: Vec<&str> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|run| run.len() == 6)
        .collect();
    assert_eq!(runs.len(), 1, "one 6-digit code in {text:?}");
    runs[0].to_owned()
}

// ---------------------------------------------------------------------------------------------

async fn platform_settings_defaults_permissions_and_validation(app: TestApp) {
    let sys = sysadmin(&app).await;
    // Until saved, the settings derive from `[mfa]`: TOTP and backup codes.
    let defaults = json!({
        "providers": [
            {"providerType": "TOTP", "issuerName": "Gatehouse"},
            {"providerType": "BACKUP_CODE", "codesQuantity": 10},
        ],
        "minVerificationCodeSendPeriod": 30,
        "maxVerificationFailuresBeforeUserLockout": 10,
        "totalAllowedTimeForVerification": 600,
        "enforceTwoFa": false,
    });
    let (status, body) = app.tb_get("/api/2fa/settings", &sys).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, defaults);

    // Only system administrators read or change them; anonymous callers are 401.
    let (_, tenant, _) = app
        .tb_new_user(&sys, tenant_admin("tenant@example.com"), PASSWORD)
        .await;
    let (status, body) = app.tb_get("/api/2fa/settings", &tenant).await;
    assert_tb_error(status, &body, StatusCode::FORBIDDEN, 20, PERMISSION_DENIED);
    let (status, body) = app
        .tb_post("/api/2fa/settings", &tenant, defaults.clone())
        .await;
    assert_tb_error(status, &body, StatusCode::FORBIDDEN, 20, PERMISSION_DENIED);
    let (status, body) = app
        .tb_request(Method::GET, "/api/2fa/settings", None, None)
        .await;
    assert_tb_shape(status, &body, StatusCode::UNAUTHORIZED);
    // Tenant administrators see which providers they may use.
    let (status, body) = app.tb_get("/api/2fa/providers", &tenant).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!(["TOTP", "BACKUP_CODE"]));

    // Invalid settings are 400 (31) and change nothing.
    let valid = platform(json!([totp_provider(), backup_provider()]));
    let invalid: Vec<(Value, &str)> = vec![
        (
            {
                let mut s = valid.clone();
                s["minVerificationCodeSendPeriod"] = json!(4);
                s
            },
            "minVerificationCodeSendPeriod must be greater than or equal to 5",
        ),
        (
            {
                let mut s = valid.clone();
                s["totalAllowedTimeForVerification"] = json!(59);
                s
            },
            "totalAllowedTimeForVerification must be greater than or equal to 60",
        ),
        (
            {
                let mut s = valid.clone();
                s["totalAllowedTimeForVerification"] = json!(2_147_483_648_u64);
                s
            },
            "totalAllowedTimeForVerification must be less than or equal to 86400",
        ),
        (
            {
                let mut s = valid.clone();
                s["maxVerificationFailuresBeforeUserLockout"] = json!(1_000_001);
                s
            },
            "maxVerificationFailuresBeforeUserLockout must be less than or equal to 1000000",
        ),
        (
            platform(json!([totp_provider(), totp_provider()])),
            "providers TOTP is listed twice",
        ),
        (
            {
                let mut s = valid.clone();
                s["enforceTwoFa"] = json!(true);
                s
            },
            "enforcedUsersFilter is required when 2FA is enforced",
        ),
        (
            platform(json!([
                totp_provider(),
                {"providerType": "EMAIL", "verificationCodeLifetime": 60}
            ])),
            "providers EMAIL requires a mail server ([mail] in the configuration)",
        ),
        (
            platform(json!([
                totp_provider(),
                {"providerType": "SMS", "verificationCodeLifetime": 60,
                 "smsVerificationMessageTemplate": "Your code: ${code}"}
            ])),
            "providers SMS requires an SMS gateway ([mfa.sms] in the configuration)",
        ),
        (
            {
                let mut s = valid.clone();
                s["verificationCodeCheckRateLimit"] = json!("0:5");
                s
            },
            "verificationCodeCheckRateLimit must match [1-9]\\d*:[1-9]\\d*",
        ),
        (
            {
                let mut s = valid.clone();
                s["verificationCodeCheckRateLimit"] = json!("3");
                s
            },
            "verificationCodeCheckRateLimit must match [1-9]\\d*:[1-9]\\d*",
        ),
    ];
    for (settings, message) in invalid {
        let (status, body) = app.tb_post("/api/2fa/settings", &sys, settings).await;
        assert_tb_error(status, &body, StatusCode::BAD_REQUEST, 31, message);
    }
    let (_, body) = app.tb_get("/api/2fa/settings", &sys).await;
    assert_eq!(body, defaults, "nothing invalid was saved");

    // A valid save is what GET answers from then on.
    let mut saved = valid.clone();
    saved["verificationCodeCheckRateLimit"] = json!("3:900");
    saved["enforceTwoFa"] = json!(true);
    saved["enforcedUsersFilter"] = json!({"type": "USER_LIST", "usersIds": [uuid::Uuid::new_v4()]});
    save_platform(&app, &sys, saved.clone()).await;
    let (status, body) = app.tb_get("/api/2fa/settings", &sys).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, saved);
    let (_, body) = app.tb_get("/api/2fa/providers", &tenant).await;
    assert_eq!(body, json!(["TOTP", "BACKUP_CODE"]));
}

async fn totp_configuration_and_pre_verification_login(app: TestApp) {
    let (app, clock) = app.on_manual_clock(|_| {}).await;
    let sys = sysadmin(&app).await;
    save_platform(
        &app,
        &sys,
        platform(json!([totp_provider(), backup_provider()])),
    )
    .await;
    let email = "tenant@example.com";
    let (user_id, full, _) = app.tb_new_user(&sys, tenant_admin(email), PASSWORD).await;

    // Nothing configured: `null`.
    let answer = raw_get(&app, "/api/2fa/account/settings", &full).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.text, "null");

    // A generated TOTP config carries a new 160-bit secret in ThingsBoard's URI form.
    let config = generate(&app, &full, "TOTP").await;
    let auth_url = config["authUrl"].as_str().expect("authUrl").to_owned();
    let prefix = format!("otpauth://totp/Acme%20IoT:{email}?issuer=Acme%20IoT&secret=");
    let secret = auth_url
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{auth_url} does not start with {prefix}"))
        .to_owned();
    assert_eq!(secret.len(), 32, "{secret}");
    assert!(secret
        .bytes()
        .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
    assert_eq!(secret_of(&auth_url), secret);
    assert_eq!(config["useByDefault"], false);
    let other = generate(&app, &full, "TOTP").await;
    assert_ne!(
        other["authUrl"], config["authUrl"],
        "a new secret every time"
    );

    // The code decides: a wrong one is refused, the right one configures TOTP as the default.
    let now = clock.now_millis();
    let (status, body) =
        save_config(&app, &full, &config, Some(&wrong_code_at(&secret, now))).await;
    assert_tb_error(status, &body, StatusCode::BAD_REQUEST, 31, WRONG_CODE);
    let (status, body) = save_config(&app, &full, &config, None).await;
    assert_tb_error(status, &body, StatusCode::BAD_REQUEST, 31, WRONG_CODE);
    let (status, settings) = save_config(&app, &full, &config, Some(&code_at(&secret, now))).await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(keys(&settings["configs"]), vec!["TOTP"], "{settings}");
    let totp = &settings["configs"]["TOTP"];
    assert_eq!(totp["providerType"], "TOTP");
    assert_eq!(totp["useByDefault"], true);
    let shown = totp["authUrl"].as_str().expect("authUrl");
    assert!(
        shown.starts_with(&format!("otpauth://totp/Acme%20IoT:{email}?")),
        "{shown}"
    );
    assert!(
        !shown.contains(&secret),
        "the secret is never shown again: {shown}"
    );
    let (status, body) = save_config(&app, &full, &other, Some(&code_at(&secret, now))).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "2FA provider is already configured",
    );
    let (status, body) = app.tb_get("/api/2fa/account/settings", &full).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, settings);

    // Backup codes: ten distinct codes of 8 hex characters, shown only when generated; saved
    // without a code.
    let backup = generate(&app, &full, "BACKUP_CODE").await;
    let codes = strings(&backup["codes"]);
    assert_eq!(codes.len(), 10, "{backup}");
    assert!(
        codes.iter().all(|code| code.len() == 8
            && code
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))),
        "{codes:?}"
    );
    let mut distinct = codes.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 10);
    assert_eq!(backup["codesLeft"], 10);
    let answer = app
        .tb_send(
            Method::POST,
            "/api/2fa/account/config",
            &[
                ("x-authorization", &format!("Bearer {full}")),
                ("content-type", "application/json"),
            ],
            Some(serde_json::to_vec(&backup).unwrap()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_in_order(&answer.text, &["TOTP", "BACKUP_CODE"]);
    let settings = answer.json();
    assert_eq!(keys(&settings["configs"]), vec!["BACKUP_CODE", "TOTP"]);
    assert_eq!(
        settings["configs"]["BACKUP_CODE"],
        json!({"providerType": "BACKUP_CODE", "useByDefault": false, "codesLeft": 10})
    );
    assert_eq!(settings["configs"]["TOTP"]["useByDefault"], true);

    // The password alone now answers a PRE_VERIFICATION_TOKEN with ThingsBoard's MFA claims.
    let pre = mfa_login(&app, email, PASSWORD, "PRE_VERIFICATION_TOKEN").await;
    let claims = jwt_claims(&pre);
    assert_eq!(claims["sub"], email);
    assert_eq!(claims["userId"], user_id.as_str());
    for claim in ["sessionId", "exp", "iss", "iat", "tenantId", "customerId"] {
        assert!(claims.get(claim).is_some(), "{claim} in {claims}");
    }
    for claim in ["enabled", "firstName", "lastName", "isPublic"] {
        assert!(claims.get(claim).is_none(), "no {claim} in {claims}");
    }
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600,
        "lives totalAllowedTimeForVerification"
    );

    // It opens only the verification endpoints.
    for (method, path) in [
        (Method::GET, "/api/auth/user"),
        (Method::GET, "/api/2fa/account/settings"),
        (Method::GET, "/api/2fa/providers"),
        (Method::POST, "/api/auth/2fa/login"),
        (Method::DELETE, "/api/2fa/account/config?providerType=TOTP"),
    ] {
        let (status, body) = call(&app, method.clone(), path, &pre, None).await;
        assert_tb_error(status, &body, StatusCode::FORBIDDEN, 20, PERMISSION_DENIED);
    }
    // …and a full token does not open those.
    let (status, body) = app.tb_get("/api/auth/2fa/providers", &full).await;
    assert_tb_error(status, &body, StatusCode::FORBIDDEN, 20, PERMISSION_DENIED);

    let (status, providers) = app.tb_get("/api/auth/2fa/providers", &pre).await;
    assert_eq!(status, StatusCode::OK, "{providers}");
    assert_eq!(
        providers,
        json!([
            {"type": "TOTP", "default": true, "contact": null, "minVerificationCodeSendPeriod": 30},
            {"type": "BACKUP_CODE", "default": false, "contact": null, "minVerificationCodeSendPeriod": 30},
        ])
    );

    // Sending a TOTP "code" does nothing but counts against the send period.
    let answer = app
        .tb_send(
            Method::POST,
            "/api/auth/2fa/verification/send?providerType=TOTP",
            &[("x-authorization", &format!("Bearer {pre}"))],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.text, "", "no body");
    let (status, body) = post_empty(
        &app,
        "/api/auth/2fa/verification/send?providerType=TOTP",
        &pre,
    )
    .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        33,
        "Too many requests",
    );

    // Wrong codes, and the enrolment code replayed within its step, are refused.
    let now = clock.now_millis();
    let (status, body) = check(&app, &pre, "TOTP", &wrong_code_at(&secret, now)).await;
    assert_tb_error(status, &body, StatusCode::BAD_REQUEST, 31, WRONG_CODE);
    let (status, body) = check(&app, &pre, "TOTP", &code_at(&secret, now)).await;
    assert_tb_error(status, &body, StatusCode::BAD_REQUEST, 31, WRONG_CODE);

    // A code of the next step completes the login with a full pair.
    clock.advance(30_000);
    let code = code_at(&secret, clock.now_millis());
    let (access, refresh) = check_ok(&app, &pre, "TOTP", &code).await;
    let me = app.tb_me(&access).await;
    assert_eq!(me["id"]["id"], user_id.as_str());
    assert_eq!(jwt_claims(&access)["scopes"], json!(["TENANT_ADMIN"]));
    let (status, body) = app
        .tb_request(
            Method::POST,
            "/api/auth/token",
            None,
            Some(json!({"refreshToken": refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the refresh token works: {body}");

    // The pre-verification token is used up.
    let (status, body) = check(&app, &pre, "TOTP", &code).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        11,
        "Token has expired",
    );
    let (status, body) = app.tb_get("/api/auth/2fa/providers", &pre).await;
    assert_tb_shape(status, &body, StatusCode::UNAUTHORIZED);

    // The same code on a new login within its step is a replay.
    let pre = mfa_login(&app, email, PASSWORD, "PRE_VERIFICATION_TOKEN").await;
    let (status, body) = check(&app, &pre, "TOTP", &code).await;
    assert_tb_error(status, &body, StatusCode::BAD_REQUEST, 31, WRONG_CODE);

    // A backup code logs in once.
    check_ok(&app, &pre, "BACKUP_CODE", &codes[0]).await;
    let pre = mfa_login(&app, email, PASSWORD, "PRE_VERIFICATION_TOKEN").await;
    let (status, body) = check(&app, &pre, "BACKUP_CODE", &codes[0]).await;
    assert_tb_error(status, &body, StatusCode::BAD_REQUEST, 31, WRONG_CODE);
    let (_, settings) = app.tb_get("/api/2fa/account/settings", &full).await;
    assert_eq!(settings["configs"]["BACKUP_CODE"]["codesLeft"], 9);
    check_ok(&app, &pre, "BACKUP_CODE", &codes[1]).await;
    let (_, settings) = app.tb_get("/api/2fa/account/settings", &full).await;
    assert_eq!(settings["configs"]["BACKUP_CODE"]["codesLeft"], 8);
    assert!(
        settings["configs"]["BACKUP_CODE"].get("codes").is_none(),
        "codes are shown only when generated: {settings}"
    );
}

async fn enforced_two_fa_hands_out_configuration_tokens(app: TestApp) {
    let (app, clock) = app.on_manual_clock(|_| {}).await;
    let sys = sysadmin(&app).await;
    let email = "enforced@example.com";
    let (user_id, _, _) = app.tb_new_user(&sys, tenant_admin(email), PASSWORD).await;
    let mut settings = platform(json!([totp_provider(), backup_provider()]));
    settings["enforceTwoFa"] = json!(true);
    settings["enforcedUsersFilter"] = json!({"type": "TENANT_ADMINISTRATORS"});
    save_platform(&app, &sys, settings).await;

    // The filter names tenant administrators only: the sysadmin still gets a pair.
    app.tb_login("admin", ADMIN_PASSWORD).await;

    let conf = mfa_login(&app, email, PASSWORD, "MFA_CONFIGURATION_TOKEN").await;
    assert_eq!(jwt_claims(&conf)["userId"], user_id.as_str());
    let (status, body) = app.tb_get("/api/auth/user", &conf).await;
    assert_tb_error(status, &body, StatusCode::FORBIDDEN, 20, PERMISSION_DENIED);
    let (status, body) = app.tb_get("/api/auth/2fa/providers", &conf).await;
    assert_tb_error(status, &body, StatusCode::FORBIDDEN, 20, PERMISSION_DENIED);
    let (status, body) = app.tb_get("/api/2fa/providers", &conf).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!(["TOTP", "BACKUP_CODE"]));
    let answer = raw_get(&app, "/api/2fa/account/settings", &conf).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.text, "null");
    let (status, body) = post_empty(&app, "/api/auth/2fa/login", &conf).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "2FA is not configured for account",
    );

    // The configuration token may configure TOTP…
    let secret = configure_totp(&app, &clock, &conf).await;
    let (_, body) = app.tb_get("/api/2fa/account/settings", &conf).await;
    assert_eq!(body["configs"]["TOTP"]["useByDefault"], true, "{body}");
    // …but not change or remove configurations.
    let (status, body) = call(
        &app,
        Method::PUT,
        "/api/2fa/account/config?providerType=TOTP",
        &conf,
        Some(json!({"useByDefault": true})),
    )
    .await;
    assert_tb_error(status, &body, StatusCode::FORBIDDEN, 20, PERMISSION_DENIED);
    let (status, body) = call(
        &app,
        Method::DELETE,
        "/api/2fa/account/config?providerType=TOTP",
        &conf,
        None,
    )
    .await;
    assert_tb_error(status, &body, StatusCode::FORBIDDEN, 20, PERMISSION_DENIED);

    // Configured: the token turns into a full pair, once.
    let (status, body) = post_empty(&app, "/api/auth/2fa/login", &conf).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("scope").is_none(), "{body}");
    let (full, _) = tb_pair(&body);
    assert_eq!(app.tb_me(&full).await["id"]["id"], user_id.as_str());
    let (status, body) = post_empty(&app, "/api/auth/2fa/login", &conf).await;
    assert_tb_shape(status, &body, StatusCode::UNAUTHORIZED);

    // A user who must use 2FA keeps its last provider.
    let (status, body) = call(
        &app,
        Method::DELETE,
        "/api/2fa/account/config?providerType=TOTP",
        &full,
        None,
    )
    .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "At least one 2FA provider is required",
    );
    let (_, body) = app.tb_get("/api/2fa/account/settings", &full).await;
    assert_eq!(body["configs"]["TOTP"]["useByDefault"], true, "{body}");

    // From now on the password leads to a second factor.
    let pre = mfa_login(&app, email, PASSWORD, "PRE_VERIFICATION_TOKEN").await;
    check_ok(&app, &pre, "TOTP", &code_at(&secret, clock.now_millis())).await;

    // A tenant administrator activated while 2FA is enforced gets a configuration token too.
    let user = app
        .tb_create_user(&sys, tenant_admin("newcomer@example.com"))
        .await;
    let id = user["id"]["id"].as_str().expect("id");
    let activate_token = app.tb_activation_token(&sys, id).await;
    let (status, body) = app
        .tb_request(
            Method::POST,
            "/api/noauth/activate?sendActivationMail=false",
            None,
            Some(json!({"activateToken": activate_token, "password": "newcomer-pass-1"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "MFA_CONFIGURATION_TOKEN", "{body}");
    assert!(body.get("refreshToken").is_none(), "{body}");
    let conf = body["token"].as_str().expect("token");
    let (status, body) = app.tb_get("/api/2fa/providers", conf).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.tb_get("/api/auth/user", conf).await;
    assert_tb_error(status, &body, StatusCode::FORBIDDEN, 20, PERMISSION_DENIED);
}

fn mail_settings(port: u16) -> MailSettings {
    MailSettings {
        host: Some("127.0.0.1".to_owned()),
        port: Some(port),
        tls: MailTls::None,
        from: "Gatehouse <gatehouse@example.com>".to_owned(),
        timeout_secs: 5,
        ..MailSettings::default()
    }
}

async fn email_codes_travel_over_smtp(app: TestApp) {
    let server = SmtpServer::start();
    let port = server.port();
    let (app, clock) = app
        .on_manual_clock(move |settings| settings.mail = mail_settings(port))
        .await;
    let sys = sysadmin(&app).await;
    save_platform(
        &app,
        &sys,
        platform(json!([
            totp_provider(),
            {"providerType": "EMAIL", "verificationCodeLifetime": 60},
        ])),
    )
    .await;
    let email = "tenant@example.com";
    let (_, full, _) = app.tb_new_user(&sys, tenant_admin(email), PASSWORD).await;

    // Generated with the user's address; submitting mails a 6-digit code.
    let config = generate(&app, &full, "EMAIL").await;
    assert_eq!(
        config,
        json!({"providerType": "EMAIL", "useByDefault": false, "email": email})
    );
    let answer = app
        .tb_send(
            Method::POST,
            "/api/2fa/account/config/submit",
            &[
                ("x-authorization", &format!("Bearer {full}")),
                ("content-type", "application/json"),
            ],
            Some(serde_json::to_vec(&config).unwrap()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.text, "");
    let mail = server.wait_for_mail(email, MAIL_WAIT).await;
    let code = six_digits(&mail.text);
    assert!(!mail.raw.contains("secret"), "{}", mail.raw);

    // The mailed code proves the address it went to, not another.
    let mut elsewhere = config.clone();
    elsewhere["email"] = json!("someone.else@example.com");
    let (status, body) = save_config(&app, &full, &elsewhere, Some(&code)).await;
    assert_tb_error(status, &body, StatusCode::BAD_REQUEST, 31, WRONG_CODE);
    let (status, settings) = save_config(&app, &full, &config, Some(&code)).await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(
        settings,
        json!({"configs": {"EMAIL": {"providerType": "EMAIL", "useByDefault": true, "email": email}}})
    );

    // A login asks for it, the address masked as ThingsBoard masks it.
    let pre = mfa_login(&app, email, PASSWORD, "PRE_VERIFICATION_TOKEN").await;
    let (status, providers) = app.tb_get("/api/auth/2fa/providers", &pre).await;
    assert_eq!(status, StatusCode::OK, "{providers}");
    assert_eq!(
        providers,
        json!([{"type": "EMAIL", "default": true, "contact": "te**nt@example.com", "minVerificationCodeSendPeriod": 30}])
    );
    let (status, body) = post_empty(
        &app,
        "/api/auth/2fa/verification/send?providerType=EMAIL",
        &pre,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let code = six_digits(&server.wait_for_mail(email, MAIL_WAIT).await.text);
    let (status, body) = check(&app, &pre, "TOTP", &code).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "2FA is not configured for account",
    );
    check_ok(&app, &pre, "EMAIL", &code).await;

    // A code works once, and only within its lifetime.
    let pre = mfa_login(&app, email, PASSWORD, "PRE_VERIFICATION_TOKEN").await;
    let (status, body) = check(&app, &pre, "EMAIL", &code).await;
    assert_tb_error(status, &body, StatusCode::BAD_REQUEST, 31, WRONG_CODE);
    clock.advance(30_000); // the send period
    let (status, body) = post_empty(
        &app,
        "/api/auth/2fa/verification/send?providerType=EMAIL",
        &pre,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let code = six_digits(&server.wait_for_mail(email, MAIL_WAIT).await.text);
    clock.advance(61_000);
    let (status, body) = check(&app, &pre, "EMAIL", &code).await;
    assert_tb_error(status, &body, StatusCode::BAD_REQUEST, 31, WRONG_CODE);
    // A new code (the period has passed) works.
    let (status, body) = post_empty(
        &app,
        "/api/auth/2fa/verification/send?providerType=EMAIL",
        &pre,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let code = six_digits(&server.wait_for_mail(email, MAIL_WAIT).await.text);
    clock.advance(59_000);
    check_ok(&app, &pre, "EMAIL", &code).await;
}

/// One request the SMS gateway received.
#[derive(Debug, Clone)]
struct GatewayRequest {
    method: String,
    headers: BTreeMap<String, String>,
    body: String,
}

/// A tiny HTTP SMS gateway on a loopback port: records every request and answers with the
/// status it is told to.
struct Gateway {
    url: String,
    received: Arc<Mutex<Vec<GatewayRequest>>>,
    status: Arc<AtomicU16>,
    task: tokio::task::JoinHandle<()>,
}

impl Gateway {
    async fn start() -> Gateway {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let address = listener.local_addr().expect("its address");
        let received: Arc<Mutex<Vec<GatewayRequest>>> = Arc::default();
        let status = Arc::new(AtomicU16::new(200));
        let (log, answer) = (received.clone(), status.clone());
        let router = axum::Router::new().fallback(
            move |method: axum::http::Method, headers: axum::http::HeaderMap, body: String| {
                let (log, answer) = (log.clone(), answer.clone());
                async move {
                    let headers = headers
                        .iter()
                        .map(|(name, value)| {
                            (
                                name.as_str().to_owned(),
                                value.to_str().unwrap_or_default().to_owned(),
                            )
                        })
                        .collect();
                    log.lock().unwrap().push(GatewayRequest {
                        method: method.to_string(),
                        headers,
                        body,
                    });
                    axum::http::StatusCode::from_u16(answer.load(Ordering::SeqCst)).unwrap()
                }
            },
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Gateway {
            url: format!("http://{address}/sms/send"),
            received,
            status,
            task,
        }
    }

    fn requests(&self) -> Vec<GatewayRequest> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn sms_codes_travel_through_the_http_gateway(app: TestApp) {
    let gateway = Gateway::start().await;
    let url = gateway.url.clone();
    let (app, clock) = app
        .on_manual_clock(move |settings| {
            settings.mfa.sms = SmsSettings {
                url: Some(url),
                method: "POST".to_owned(),
                headers: BTreeMap::from([(
                    "Authorization".to_owned(),
                    "Bearer gateway-secret".to_owned(),
                )]),
                body: r#"{"to":"${phoneNumber}","text":"${message}","code":"${code}"}"#.to_owned(),
                content_type: "application/json".to_owned(),
                timeout_secs: 5,
            };
        })
        .await;
    let sys = sysadmin(&app).await;
    save_platform(
        &app,
        &sys,
        platform(json!([
            totp_provider(),
            {"providerType": "SMS", "verificationCodeLifetime": 60,
             "smsVerificationMessageTemplate": "Your code: ${code}"},
        ])),
    )
    .await;
    let email = "texted@example.com";
    let (_, full, _) = app.tb_new_user(&sys, tenant_admin(email), PASSWORD).await;

    let config = generate(&app, &full, "SMS").await;
    assert_eq!(config["useByDefault"], false);
    assert_eq!(
        config["phoneNumber"],
        Value::Null,
        "no number yet: {config}"
    );

    // A number that is not E.164 is refused before anything is sent.
    let (status, body) = app
        .tb_post(
            "/api/2fa/account/config/submit",
            &full,
            json!({"providerType": "SMS", "useByDefault": false, "phoneNumber": "015123456789"}),
        )
        .await;
    assert_tb_shape(status, &body, StatusCode::BAD_REQUEST);
    assert!(gateway.requests().is_empty());

    let phone = "+4915123456789";
    let config = json!({"providerType": "SMS", "useByDefault": false, "phoneNumber": phone});
    let (status, body) = app
        .tb_post("/api/2fa/account/config/submit", &full, config.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let requests = gateway.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    // Another code within the send period is refused (429, 33) and sends nothing; the first
    // code stays valid.
    let (status, body) = app
        .tb_post("/api/2fa/account/config/submit", &full, config.clone())
        .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        33,
        "Too many requests",
    );
    assert_eq!(gateway.requests().len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.headers.get("authorization").map(String::as_str),
        Some("Bearer gateway-secret")
    );
    assert_eq!(
        request.headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    let sent: Value = serde_json::from_str(&request.body).expect("a JSON body");
    let code = sent["code"].as_str().expect("code").to_owned();
    assert_eq!(code.len(), 6);
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(
        sent,
        json!({"to": phone, "text": format!("Your code: {code}"), "code": code})
    );

    let (status, settings) = save_config(&app, &full, &config, Some(&code)).await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(
        settings,
        json!({"configs": {"SMS": {"providerType": "SMS", "useByDefault": true, "phoneNumber": phone}}})
    );

    // The login asks for it; the number is masked after the `+`.
    let pre = mfa_login(&app, email, PASSWORD, "PRE_VERIFICATION_TOKEN").await;
    let (status, providers) = app.tb_get("/api/auth/2fa/providers", &pre).await;
    assert_eq!(status, StatusCode::OK, "{providers}");
    assert_eq!(
        providers,
        json!([{"type": "SMS", "default": true, "contact": "+49*********89", "minVerificationCodeSendPeriod": 30}])
    );
    let (status, body) = post_empty(
        &app,
        "/api/auth/2fa/verification/send?providerType=SMS",
        &pre,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let requests = gateway.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let sent: Value = serde_json::from_str(&requests[1].body).expect("a JSON body");
    assert_eq!(sent["to"], phone);
    let code = sent["code"].as_str().expect("code").to_owned();
    assert_eq!(sent["text"], format!("Your code: {code}"));
    check_ok(&app, &pre, "SMS", &code).await;

    // A gateway that fails makes the send a 503 in ThingsBoard's shape.
    gateway.status.store(500, Ordering::SeqCst);
    clock.advance(30_000);
    let pre = mfa_login(&app, email, PASSWORD, "PRE_VERIFICATION_TOKEN").await;
    let (status, body) = post_empty(
        &app,
        "/api/auth/2fa/verification/send?providerType=SMS",
        &pre,
    )
    .await;
    let (code, message) = assert_tb_shape(status, &body, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(code, 2, "{body}");
    assert!(message.contains("SMS gateway"), "{message}");
    assert_eq!(gateway.requests().len(), 3);
}

/// Platform settings with TOTP and a lockout after three wrong codes; a tenant administrator
/// with TOTP; returns its id, email and secret.
async fn locked_out_setup(
    app: &TestApp,
    clock: &ManualClock,
    sys: &str,
) -> (String, String, String) {
    let mut settings = platform(json!([totp_provider(), backup_provider()]));
    settings["maxVerificationFailuresBeforeUserLockout"] = json!(3);
    save_platform(app, sys, settings).await;
    let email = "guesser@example.com".to_owned();
    let (id, full, _) = app.tb_new_user(sys, tenant_admin(&email), PASSWORD).await;
    let secret = configure_totp(app, clock, &full).await;
    (id, email, secret)
}

/// Three wrong codes: 400, 400, then 401 (10) with the lockout message.
async fn three_wrong_codes(app: &TestApp, clock: &ManualClock, pre: &str, secret: &str) {
    for _ in 0..2 {
        let wrong = wrong_code_at(secret, clock.now_millis());
        let (status, body) = check(app, pre, "TOTP", &wrong).await;
        assert_tb_error(status, &body, StatusCode::BAD_REQUEST, 31, WRONG_CODE);
    }
    let wrong = wrong_code_at(secret, clock.now_millis());
    let (status, body) = check(app, pre, "TOTP", &wrong).await;
    assert_tb_error(status, &body, StatusCode::UNAUTHORIZED, 10, LOCKED);
}

async fn wrong_codes_lock_the_user_for_the_ban_time(app: TestApp) {
    let (app, clock) = app.on_manual_clock(|_| {}).await;
    assert_eq!(app.settings.mfa.ban_minutes, 15, "the default ban");
    let sys = sysadmin(&app).await;
    let (_, email, secret) = locked_out_setup(&app, &clock, &sys).await;
    let pre = mfa_login(&app, &email, PASSWORD, "PRE_VERIFICATION_TOKEN").await;
    three_wrong_codes(&app, &clock, &pre, &secret).await;

    // During the ban even the right code is refused, saying how long to wait.
    let answer = app
        .tb_send(
            Method::POST,
            &format!(
                "/api/auth/2fa/verification/check?providerType=TOTP&verificationCode={}",
                code_at(&secret, clock.now_millis())
            ),
            &[("x-authorization", &format!("Bearer {pre}"))],
            None,
        )
        .await;
    assert_tb_error(
        answer.status,
        &answer.json(),
        StatusCode::UNAUTHORIZED,
        10,
        LOCKED,
    );
    assert_eq!(answer.header("retry-after").as_deref(), Some("900"));
    clock.advance(14 * 60_000);
    let (status, body) = check(&app, &pre, "TOTP", &code_at(&secret, clock.now_millis())).await;
    assert_tb_error(status, &body, StatusCode::UNAUTHORIZED, 10, LOCKED);

    // Once the 15 minutes are over, the right code works (the token lives an hour).
    clock.advance(60_000);
    check_ok(&app, &pre, "TOTP", &code_at(&secret, clock.now_millis())).await;
    // The account itself was never disabled.
    let pre = mfa_login(&app, &email, PASSWORD, "PRE_VERIFICATION_TOKEN").await;
    clock.advance(30_000);
    check_ok(&app, &pre, "TOTP", &code_at(&secret, clock.now_millis())).await;
}

async fn wrong_codes_disable_the_account_without_a_ban_time(app: TestApp) {
    let (app, clock) = app
        .on_manual_clock(|settings| settings.mfa.ban_minutes = 0)
        .await;
    let sys = sysadmin(&app).await;
    let (id, email, secret) = locked_out_setup(&app, &clock, &sys).await;
    let pre = mfa_login(&app, &email, PASSWORD, "PRE_VERIFICATION_TOKEN").await;
    three_wrong_codes(&app, &clock, &pre, &secret).await;

    // The account is disabled: neither the right code (of a step not yet used) nor the
    // password helps, nor does waiting longer than a ban would last.
    clock.advance(30_000);
    let (status, body) = check(&app, &pre, "TOTP", &code_at(&secret, clock.now_millis())).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "User account is not active",
    );
    let (status, body) = app.tb_try_login(&email, PASSWORD).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "User account is not active",
    );
    clock.advance(60 * 60_000);
    let (status, body) = app.tb_try_login(&email, PASSWORD).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "User account is not active",
    );

    // An administrator enables it again; the second factor is still asked for.
    let (status, body) = post_empty(
        &app,
        &format!("/api/user/{id}/userCredentialsEnabled?userCredentialsEnabled=true"),
        &sys,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let pre = mfa_login(&app, &email, PASSWORD, "PRE_VERIFICATION_TOKEN").await;
    check_ok(&app, &pre, "TOTP", &code_at(&secret, clock.now_millis())).await;
}

async fn delete_and_update_rules_of_account_configs(app: TestApp) {
    let (app, clock) = app.on_manual_clock(|_| {}).await;
    let sys = sysadmin(&app).await;
    save_platform(
        &app,
        &sys,
        platform(json!([totp_provider(), backup_provider()])),
    )
    .await;
    let email = "rules@example.com";
    let (_, full, _) = app.tb_new_user(&sys, tenant_admin(email), PASSWORD).await;

    // Backup codes alone are refused; a provider that is not configured cannot be updated or
    // deleted.
    let backup = generate(&app, &full, "BACKUP_CODE").await;
    let (status, body) = save_config(&app, &full, &backup, None).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "To use 2FA backup codes you first need to configure at least one provider",
    );
    let (status, body) = call(
        &app,
        Method::PUT,
        "/api/2fa/account/config?providerType=TOTP",
        &full,
        Some(json!({"useByDefault": true})),
    )
    .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "2FA is not configured for account",
    );
    let (status, body) = call(
        &app,
        Method::DELETE,
        "/api/2fa/account/config?providerType=TOTP",
        &full,
        None,
    )
    .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "2FA is not configured for account",
    );
    // A provider that is not enabled platform-wide cannot be generated.
    let (status, body) = post_empty(
        &app,
        "/api/2fa/account/config/generate?providerType=EMAIL",
        &full,
    )
    .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "2FA provider is not configured",
    );

    configure_totp(&app, &clock, &full).await;
    let (status, body) = call(
        &app,
        Method::PUT,
        "/api/2fa/account/config?providerType=BACKUP_CODE",
        &full,
        Some(json!({"useByDefault": true})),
    )
    .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "2FA is not configured for account",
    );
    configure_backup_codes(&app, &full).await;

    // One default at a time.
    let (status, settings) = call(
        &app,
        Method::PUT,
        "/api/2fa/account/config?providerType=BACKUP_CODE",
        &full,
        Some(json!({"useByDefault": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings["configs"]["BACKUP_CODE"]["useByDefault"], true);
    assert_eq!(settings["configs"]["TOTP"]["useByDefault"], false);
    let (status, settings) = call(
        &app,
        Method::PUT,
        "/api/2fa/account/config?providerType=TOTP",
        &full,
        Some(json!({"useByDefault": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings["configs"]["TOTP"]["useByDefault"], true);
    assert_eq!(settings["configs"]["BACKUP_CODE"]["useByDefault"], false);
    // Without a default, the first provider becomes it again (as ThingsBoard).
    let (status, settings) = call(
        &app,
        Method::PUT,
        "/api/2fa/account/config?providerType=TOTP",
        &full,
        Some(json!({"useByDefault": false})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(
        settings["configs"]["TOTP"]["useByDefault"], true,
        "{settings}"
    );
    assert_eq!(settings["configs"]["BACKUP_CODE"]["useByDefault"], false);
    let (status, body) = call(
        &app,
        Method::PUT,
        "/api/2fa/account/config?providerType=TOTP",
        &full,
        Some(json!({"useByDefault": "yes"})),
    )
    .await;
    assert_tb_shape(status, &body, StatusCode::BAD_REQUEST);
    let (status, body) = call(
        &app,
        Method::PUT,
        "/api/2fa/account/config?providerType=PIGEON",
        &full,
        Some(json!({"useByDefault": true})),
    )
    .await;
    assert_tb_shape(status, &body, StatusCode::BAD_REQUEST);

    // Deleting the last real provider takes the backup codes with it: nothing is left.
    let answer = app
        .tb_send(
            Method::DELETE,
            "/api/2fa/account/config?providerType=TOTP",
            &[("x-authorization", &format!("Bearer {full}"))],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.text, "null");
    let answer = raw_get(&app, "/api/2fa/account/settings", &full).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text, "null");
    // And the password alone logs in again.
    app.tb_login(email, PASSWORD).await;
}

/// A Connectware user with the minimum-access role; returns its id.
async fn connectware_user(app: &TestApp, username: &str) -> String {
    let role = app.role_id("minimum-access").await;
    let user = app.create_user(username, PASSWORD, &[&role]).await;
    user["id"].as_str().expect("user id").to_owned()
}

async fn connectware_enrolment_logs_in_through_thingsboard(app: TestApp) {
    let (app, clock) = app.on_manual_clock(|_| {}).await;
    let user_id = connectware_user(&app, "device-owner").await;
    let token = app.login("device-owner", PASSWORD).await;
    let (status, start) = app.post("/api/mfa/enable", &token, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{start}");
    assert_eq!(keys(&start), vec!["qrCode", "uri"]);
    let secret = secret_of(start["uri"].as_str().expect("uri"));
    let (status, done) = app
        .post(
            "/api/mfa/validate",
            &token,
            json!({"otp": code_at(&secret, clock.now_millis())}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let backup_codes = strings(&done["backupCodes"]);
    assert_eq!(backup_codes.len(), 10);
    clock.advance(30_000);

    // The ThingsBoard login (by login name) asks for the same factor.
    let pre = mfa_login(&app, "device-owner", PASSWORD, "PRE_VERIFICATION_TOKEN").await;
    let (status, providers) = app.tb_get("/api/auth/2fa/providers", &pre).await;
    assert_eq!(status, StatusCode::OK, "{providers}");
    let types: Vec<&str> = providers
        .as_array()
        .expect("providers")
        .iter()
        .map(|provider| provider["type"].as_str().expect("type"))
        .collect();
    assert_eq!(types, vec!["TOTP", "BACKUP_CODE"]);
    assert_eq!(providers[0]["default"], true);
    let (status, body) = check(
        &app,
        &pre,
        "TOTP",
        &wrong_code_at(&secret, clock.now_millis()),
    )
    .await;
    assert_tb_error(status, &body, StatusCode::BAD_REQUEST, 31, WRONG_CODE);
    let (access, _) = check_ok(&app, &pre, "TOTP", &code_at(&secret, clock.now_millis())).await;
    assert_eq!(app.tb_me(&access).await["id"]["id"], user_id.as_str());

    // Connectware's backup codes are ThingsBoard's BACKUP_CODE.
    let pre = mfa_login(&app, "device-owner", PASSWORD, "PRE_VERIFICATION_TOKEN").await;
    check_ok(&app, &pre, "BACKUP_CODE", &backup_codes[0]).await;
    let (status, first) = app.try_login("device-owner", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, body) = app
        .request(
            Method::POST,
            "/api/mfa/login",
            None,
            Some(json!({"username": "device-owner", "backupCode": backup_codes[0], "secret": first["secret"]})),
        )
        .await;
    assert_eq!(
        common::assert_error(status, &body, StatusCode::UNAUTHORIZED),
        "Invalid OTP",
        "used up in the other dialect"
    );
}

async fn thingsboard_enrolment_logs_in_through_connectware(app: TestApp) {
    let (app, clock) = app.on_manual_clock(|_| {}).await;
    let sys = sysadmin(&app).await;
    let email = "tenant@example.com";
    let (_, full, _) = app.tb_new_user(&sys, tenant_admin(email), PASSWORD).await;
    let secret = configure_totp(&app, &clock, &full).await;
    let codes = configure_backup_codes(&app, &full).await;

    // The Connectware login (by email) asks for the second factor: no token, a secret.
    let (status, first) = app.try_login(email, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["needsMfa"], true, "{first}");
    assert!(first.get("token").is_none(), "{first}");
    assert!(first.get("expiresAt").is_none(), "{first}");
    assert_eq!(first["permissions"], json!([]));
    let handle = first["secret"].as_str().expect("secret").to_owned();
    // The secret is no token for anything else.
    let (status, _) = app.get("/api/session", &handle).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, body) = app
        .request(
            Method::POST,
            "/api/mfa/login",
            None,
            Some(json!({"username": email, "otp": code_at(&secret, clock.now_millis()), "secret": handle})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["needsMfa"], false);
    assert!(body["expiresAt"].is_string(), "{body}");
    // A Connectware token of the tenant administrator (who has no Connectware roles) opens
    // the ThingsBoard endpoints.
    let token = body["token"].as_str().expect("token");
    assert_eq!(app.tb_me(token).await["email"], email);

    // A ThingsBoard backup code is Connectware's `backupCode`, once.
    let (_, first) = app.try_login(email, PASSWORD).await;
    let (status, body) = app
        .request(
            Method::POST,
            "/api/mfa/login",
            None,
            Some(json!({"username": email, "backupCode": codes[3], "secret": first["secret"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["token"].is_string(), "{body}");
    let pre = mfa_login(&app, email, PASSWORD, "PRE_VERIFICATION_TOKEN").await;
    let (status, body) = check(&app, &pre, "BACKUP_CODE", &codes[3]).await;
    assert_tb_error(status, &body, StatusCode::BAD_REQUEST, 31, WRONG_CODE);
    let (_, settings) = app.tb_get("/api/2fa/account/settings", &full).await;
    assert_eq!(settings["configs"]["BACKUP_CODE"]["codesLeft"], 9);
}

/// `verificationCodeCheckRateLimit` "2:60": two checks, then 429 (33) until the budget refills
/// (one check per 30 s); the right code is refused too while limited.
async fn code_checks_are_rate_limited(app: TestApp) {
    let (app, clock) = app.on_manual_clock(|_| {}).await;
    let sys = sysadmin(&app).await;
    let mut settings = platform(json!([totp_provider(), backup_provider()]));
    settings["verificationCodeCheckRateLimit"] = json!("2:60");
    save_platform(&app, &sys, settings).await;
    let email = "limited@example.com";
    let (_, full, _) = app.tb_new_user(&sys, tenant_admin(email), PASSWORD).await;
    let secret = configure_totp(&app, &clock, &full).await;
    let pre = mfa_login(&app, email, PASSWORD, "PRE_VERIFICATION_TOKEN").await;
    for _ in 0..2 {
        let wrong = wrong_code_at(&secret, clock.now_millis());
        let (status, body) = check(&app, &pre, "TOTP", &wrong).await;
        assert_tb_error(status, &body, StatusCode::BAD_REQUEST, 31, WRONG_CODE);
    }
    let right = code_at(&secret, clock.now_millis());
    let (status, body) = check(&app, &pre, "TOTP", &right).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        33,
        "Too many requests",
    );
    clock.advance(29_000);
    let (status, body) = check(&app, &pre, "TOTP", &code_at(&secret, clock.now_millis())).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    clock.advance(1_000);
    check_ok(&app, &pre, "TOTP", &code_at(&secret, clock.now_millis())).await;
}
