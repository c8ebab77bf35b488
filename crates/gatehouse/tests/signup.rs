//! ThingsBoard self-service sign-up (T12–T21) end to end over HTTP, against a real SMTP server
//! (aiosmtpd) and a reCAPTCHA stand-in (`common::captcha`): sign-up in both body shapes, the
//! CAPTCHA versions v2, v3 and Enterprise and an unreachable verifier, the verification mail
//! and its code (link check, activation, expiry, resends, the mail budget), repeated sign-ups of
//! pending and of taken addresses, the caps and rate limits, mobile applications, the privacy
//! policy gate, the deletion of a signed-up account with its tenant (or customer), concurrency
//! and hostile input. Expiries and windows move with a manual clock.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::backup::{dump, Dump};
use common::captcha::{self, CaptchaServer};
use common::otp::{code_at, secret_of};
use common::smtp::{link_in, ReceivedMail, SmtpServer};
use common::{
    assert_error, assert_tb_error, assert_tb_shape, jwt_claims, tb_id, tb_pair, RawAnswer, TestApp,
    ADMIN_PASSWORD, TB_NULL_UUID,
};
use gatehouse::config::Settings;
use gatehouse::mail::MailSettings;
use gatehouse::signup::{AccountKind, CaptchaConfig, CaptchaVersion, MobileAppConfig};
use gatehouse_core::clock::ManualClock;
use gatehouse_core::ratelimit::RateLimit;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_engines!(
    // configuration, T17, T18
    disabled_sign_up_is_404_but_account_endpoints_stay,
    enabling_needs_mail_and_captcha_keys,
    captcha_parameters_are_public,
    // T12
    sign_up_creates_an_inactive_tenant_admin_of_a_new_tenant,
    sign_up_reads_thingsboard_4_4_form_fields,
    bad_sign_up_forms_are_refused_and_create_nothing,
    captcha_v3_needs_the_score_and_the_action,
    captcha_enterprise_assessments_are_asked_with_the_api_key,
    unusable_verifier_is_503_and_creates_nothing,
    signing_up_again_before_verification_replaces_the_pending_sign_up,
    signing_up_with_a_taken_address_changes_nothing,
    signing_up_with_the_address_of_an_enabled_account_changes_nothing,
    signing_up_in_another_case_of_a_verified_address_changes_nothing,
    signing_up_in_another_case_of_a_pending_address_renews_it,
    signing_up_in_another_case_of_a_connectware_username_changes_nothing,
    an_enabled_account_is_not_purged_as_an_abandoned_sign_up,
    enabled_accounts_do_not_hold_up_the_purge,
    a_locked_account_is_no_pending_sign_up,
    a_disabled_account_does_not_reactivate_itself_by_signing_up_again,
    a_disabled_account_is_not_purged_as_an_abandoned_sign_up,
    unverified_sign_ups_are_capped,
    the_unverified_cap_does_not_tell_taken_addresses_from_free_ones,
    parallel_sign_ups_do_not_overrun_the_cap,
    sign_ups_per_client_address_are_rate_limited,
    parallel_sign_ups_of_one_address_create_one_account,
    parallel_sign_ups_in_different_cases_create_one_account,
    // T13, T14, T15
    email_code_link_redirects_without_using_the_code,
    parallel_uses_of_one_email_code_activate_once,
    codes_expire_and_unverified_sign_ups_are_purged,
    resend_mails_new_codes_only_to_pending_sign_ups,
    resends_that_mail_nothing_spend_no_mail_budget,
    resend_finds_a_pending_sign_up_in_another_case,
    // mobile applications (T12–T16)
    mobile_applications_get_links_into_the_app,
    // T19, T20
    privacy_policy_gates_the_api_until_accepted,
    privacy_policy_acceptance_can_be_off,
    accepting_the_privacy_policy_mints_no_pair_outliving_an_api_key,
    mqtt_connections_wait_for_the_privacy_policy,
    client_certificates_wait_for_the_privacy_policy,
    // T21
    deleting_a_signed_up_tenant_removes_exactly_that_tenant,
    deletion_needs_reauthentication,
    accepting_the_privacy_policy_is_no_reauthentication,
    customer_sign_ups_join_the_configured_tenant_and_delete_only_their_customer,
    customer_sign_ups_never_go_to_the_null_tenant,
    // hostile input
    hostile_sign_up_input_is_refused_in_thingsboards_shape,
    control_characters_in_address_fields_are_refused,
);

/// The only CAPTCHA secret (v2, v3) or API key (Enterprise) the stand-in accepts.
const SECRET: &str = "captcha-secret-1";
const SITE_KEY: &str = "site-key-1";
const PASSWORD: &str = "signup-pass-1";
const MAIL_WAIT: Duration = Duration::from_secs(15);
const POLICY_PENDING: &str =
    "You must accept the privacy policy first (POST /api/signup/acceptPrivacyPolicy)";
const CODE_UNKNOWN: &str = "Invalid email verification code";
const CODE_EXPIRED: &str = "Email verification code expired";
const NOT_ACTIVE: &str = "User account is not active";
const BAD_CREDENTIALS: &str = "Invalid username or password";
const WRONG_PASSWORD: &str = "Current password doesn't match!";
const HOUR_MS: i64 = 3_600_000;

// ---------------------------------------------------------------------------------------------
// Helpers

/// An application with sign-up enabled, its mail server and its CAPTCHA service.
struct Env {
    app: TestApp,
    smtp: SmtpServer,
    captcha: CaptchaServer,
}

/// Sign-up on, v2 CAPTCHA checked at `verify_url`, mail to `smtp_port`; no per-address limit
/// (every request of a test comes from 127.0.0.1; the rate-limit test sets its own).
fn enable_signup(settings: &mut Settings, smtp_port: u16, verify_url: &str) {
    settings.mail = common::smtp::mail_settings(smtp_port);
    settings.signup.enabled = true;
    settings.signup.captcha = CaptchaConfig {
        version: CaptchaVersion::V2,
        site_key: SITE_KEY.to_owned(),
        secret_key: Some(SECRET.to_owned()),
        verify_url: Some(verify_url.to_owned()),
        timeout_secs: 5,
        ..CaptchaConfig::default()
    };
    settings.signup.per_address = RateLimit {
        burst: 0,
        per_minute: 0,
    };
}

/// Replaces `app` by one with sign-up enabled (then `adjust`ed), on a manual clock if asked.
async fn start_env(
    app: TestApp,
    manual_clock: bool,
    adjust: impl FnOnce(&mut Settings),
) -> (Env, Option<Arc<ManualClock>>) {
    let smtp = SmtpServer::start();
    let captcha = CaptchaServer::start(SECRET).await;
    let verify_url = format!("{}/recaptcha/api/siteverify", captcha.base);
    let port = smtp.port();
    let configure = move |settings: &mut Settings| {
        enable_signup(settings, port, &verify_url);
        adjust(settings);
    };
    let (app, clock) = if manual_clock {
        let (app, clock) = app.on_manual_clock(configure).await;
        (app, Some(clock))
    } else {
        let engine = app.engine;
        app.stop().await;
        (TestApp::spawn_with(engine, configure, None).await, None)
    };
    (Env { app, smtp, captcha }, clock)
}

/// Sign-up on, system clock.
async fn start(app: TestApp, adjust: impl FnOnce(&mut Settings)) -> Env {
    start_env(app, false, adjust).await.0
}

/// Sign-up on, manual clock.
async fn start_on_clock(
    app: TestApp,
    adjust: impl FnOnce(&mut Settings),
) -> (Env, Arc<ManualClock>) {
    let (env, clock) = start_env(app, true, adjust).await;
    (env, clock.expect("a manual clock"))
}

/// The flat body of ThingsBoard's `SignUpRequest`, with a CAPTCHA answer the stand-in accepts.
fn form(email: &str, password: &str) -> Value {
    json!({
        "email": email, "password": password, "firstName": "Ann", "lastName": "Example",
        "recaptchaResponse": captcha::HUMAN,
    })
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The sign-up mail's code: the link `<public_url>/api/noauth/activateEmail?emailCode=<code>`
/// (maybe followed by `&pkgName=…`) is in the text, and so is the code on its own.
fn code_from_mail(mail: &ReceivedMail, public_url: &str) -> String {
    assert_eq!(mail.subject, "Verify your email", "{mail:?}");
    let link = link_in(&mail.text, "/api/noauth/activateEmail?emailCode=")
        .unwrap_or_else(|| panic!("no verification link in {:?}", mail.text));
    let prefix = format!("{public_url}/api/noauth/activateEmail?emailCode=");
    let rest = link
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{link} is not under {prefix}"));
    let code = rest.split('&').next().unwrap_or_default().to_owned();
    assert!(
        code.len() >= 32
            && code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "a long URL-safe code: {code:?}"
    );
    assert!(
        mail.text.matches(code.as_str()).count() >= 2,
        "the code also on its own (for the app): {:?}",
        mail.text
    );
    code
}

/// Lets background mail tasks finish (before asserting that nothing more was mailed).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(800)).await;
}

impl Env {
    /// `POST /api/noauth/signup` with `body`.
    async fn sign_up_with(&self, body: Value) -> (StatusCode, Value) {
        self.app
            .tb_request(Method::POST, "/api/noauth/signup", None, Some(body))
            .await
    }

    /// Signs up with the flat form; panics unless 200; returns the outcome.
    async fn sign_up(&self, email: &str, password: &str) -> String {
        let (status, body) = self.sign_up_with(form(email, password)).await;
        assert_eq!(status, StatusCode::OK, "sign-up of {email}: {body}");
        body.as_str()
            .unwrap_or_else(|| panic!("a JSON string: {body}"))
            .to_owned()
    }

    /// The next verification mail to `email`; its code.
    async fn code(&self, email: &str) -> String {
        let mail = self.smtp.wait_for_mail(email, MAIL_WAIT).await;
        code_from_mail(&mail, &self.app.base)
    }

    /// The mails `email` received so far.
    fn mails_to(&self, email: &str) -> Vec<ReceivedMail> {
        self.smtp
            .mails()
            .into_iter()
            .filter(|mail| mail.to.eq_ignore_ascii_case(email))
            .collect()
    }

    /// `GET /api/noauth/activateEmail?emailCode=…` (plus `extra` query text).
    async fn check_code(&self, code: &str, extra: &str) -> RawAnswer {
        self.app
            .tb_send(
                Method::GET,
                &format!("/api/noauth/activateEmail?emailCode={code}{extra}"),
                &[],
                None,
            )
            .await
    }

    /// `POST /api/noauth/activateByEmailCode?emailCode=…` (plus `extra` query text).
    async fn use_code(&self, code: &str, extra: &str) -> (StatusCode, Value) {
        self.app
            .tb_request(
                Method::POST,
                &format!("/api/noauth/activateByEmailCode?emailCode={code}{extra}"),
                None,
                None,
            )
            .await
    }

    /// Uses a code that must work; the pair.
    async fn activate(&self, code: &str) -> (String, String) {
        let (status, body) = self.use_code(code, "").await;
        assert_eq!(status, StatusCode::OK, "activateByEmailCode: {body}");
        tb_pair(&body)
    }

    /// `POST /api/noauth/resendEmailActivation?email=…`; must be 200 with an empty body.
    async fn resend(&self, query: &str) {
        let answer = self
            .app
            .tb_send(
                Method::POST,
                &format!("/api/noauth/resendEmailActivation?{query}"),
                &[],
                None,
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "resend {query}: {}",
            answer.text
        );
        assert_eq!(answer.text, "", "an empty body");
    }

    /// Signs up (a new address) and uses the mailed code: the pair of the activation.
    async fn activated(&self, email: &str, password: &str) -> (String, String) {
        assert_eq!(self.sign_up(email, password).await, "SUCCESS");
        let code = self.code(email).await;
        self.activate(&code).await
    }

    /// A signed-up, verified account that accepted the privacy policy: the pair T19 answered.
    async fn account(&self, email: &str, password: &str) -> (String, String) {
        let (token, _) = self.activated(email, password).await;
        accept_policy(&self.app, &token).await
    }
}

/// T19 as `token`; panics unless 200; the new pair.
async fn accept_policy(app: &TestApp, token: &str) -> (String, String) {
    let (status, body) = app
        .tb_post("/api/signup/acceptPrivacyPolicy", token, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "acceptPrivacyPolicy: {body}");
    tb_pair(&body)
}

/// T20 as `token`.
async fn policy_accepted(app: &TestApp, token: &str) -> Value {
    let (status, body) = app.tb_get("/api/signup/privacyPolicyAccepted", token).await;
    assert_eq!(status, StatusCode::OK, "privacyPolicyAccepted: {body}");
    body
}

/// T21: `method` (DELETE or POST) `/api/signup/tenantAccount` with `auth` and an optional body.
async fn delete_account(
    app: &TestApp,
    method: Method,
    auth: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    app.tb_request(method, "/api/signup/tenantAccount", Some(auth), body)
        .await
}

async fn sysadmin(app: &TestApp) -> String {
    app.tb_login("admin", ADMIN_PASSWORD).await.0
}

fn tenant_admin_body(email: &str, tenant: &str) -> Value {
    json!({"email": email, "authority": "TENANT_ADMIN", "tenantId": tb_id("TENANT", tenant)})
}

/// The id of the caller's user.
async fn my_id(app: &TestApp, token: &str) -> String {
    app.tb_me(token).await["id"]["id"]
        .as_str()
        .expect("user id")
        .to_owned()
}

/// Creates an API key for the caller itself; its value.
async fn own_api_key(app: &TestApp, token: &str) -> String {
    let id = my_id(app, token).await;
    let (status, key) = app
        .tb_post(
            "/api/apiKey",
            token,
            json!({"userId": tb_id("USER", &id), "description": "mine"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "create key: {key}");
    key["value"].as_str().expect("key value").to_owned()
}

/// `GET /api/auth/user` with an API key.
async fn me_by_key(app: &TestApp, key: &str) -> StatusCode {
    app.tb_request(
        Method::GET,
        "/api/auth/user",
        Some(&format!("ApiKey {key}")),
        None,
    )
    .await
    .0
}

/// Asserts a 401 for `token` on `GET /api/auth/user`.
async fn assert_token_dead(app: &TestApp, token: &str) {
    let (status, body) = app.tb_get("/api/auth/user", token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

/// Asserts that `login` cannot log in with `password`, with `message`.
async fn assert_login_refused(app: &TestApp, login: &str, password: &str, message: &str) {
    let (status, body) = app.tb_try_login(login, password).await;
    assert_tb_error(status, &body, StatusCode::UNAUTHORIZED, 10, message);
}

/// `POST /api/user/{id}/userCredentialsEnabled` as the system administrator `sys`; the status.
async fn set_enabled(app: &TestApp, sys: &str, id: &str, enabled: bool) -> StatusCode {
    let (status, body) = app
        .tb_post(
            &format!("/api/user/{id}/userCredentialsEnabled?userCredentialsEnabled={enabled}"),
            sys,
            json!({}),
        )
        .await;
    assert!(
        status == StatusCode::OK || status == StatusCode::NOT_FOUND,
        "{body}"
    );
    status
}

/// Signs `email` up with `password` and has the system administrator enable it by hand (the
/// owner never used the mailed code), then the owner logs in and accepts the privacy policy.
/// Returns (system administrator token, user id).
async fn enabled_by_hand(env: &Env, email: &str, password: &str) -> (String, String) {
    let app = &env.app;
    assert_eq!(env.sign_up(email, password).await, "SUCCESS");
    env.code(email).await;
    let sys = sysadmin(app).await;
    let id = user_id_of(app, email).await;
    assert_eq!(set_enabled(app, &sys, &id, true).await, StatusCode::OK);
    let (token, _) = app.tb_login(email, password).await;
    accept_policy(app, &token).await;
    (sys, id)
}

/// The id of the user with login name `username` (from Connectware's user list, as the admin).
async fn user_id_of(app: &TestApp, username: &str) -> String {
    let (status, page) = app
        .get(
            &format!("/api/listUsers?usernames={username}"),
            &app.admin_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["users"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no {username} in {page}"))
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// Configuration, T17, T18

async fn disabled_sign_up_is_404_but_account_endpoints_stay(app: TestApp) {
    // Off by default: every visitor endpoint is 404 code 32, whatever it is sent.
    for (method, path, body) in [
        (
            Method::POST,
            "/api/noauth/signup",
            Some(form("a@example.com", PASSWORD)),
        ),
        (Method::POST, "/api/noauth/signup", Some(json!([1]))),
        (Method::GET, "/api/noauth/signup/recaptchaPublicKey", None),
        (Method::GET, "/api/noauth/signup/recaptchaParams", None),
        (Method::GET, "/api/noauth/activateEmail?emailCode=abc", None),
        (
            Method::POST,
            "/api/noauth/activateByEmailCode?emailCode=abc",
            None,
        ),
        (
            Method::POST,
            "/api/noauth/resendEmailActivation?email=a@example.com",
            None,
        ),
        (
            Method::GET,
            "/api/noauth/login?pkgName=org.example.app",
            None,
        ),
    ] {
        let (status, answer) = app.tb_request(method.clone(), path, None, body).await;
        let (code, _) = assert_tb_shape(status, &answer, StatusCode::NOT_FOUND);
        assert_eq!(code, 32, "{method} {path}: {answer}");
    }
    // The account endpoints serve everyone: accounts that did not sign up were never asked to
    // accept the policy, and may not delete themselves through T21.
    let (sys, sys_refresh) = app.tb_login("admin", ADMIN_PASSWORD).await;
    assert_eq!(policy_accepted(&app, &sys).await, json!(true));
    for method in [Method::DELETE, Method::POST] {
        for body in [None, Some(json!({"password": ADMIN_PASSWORD}))] {
            let (status, answer) =
                delete_account(&app, method.clone(), &bearer(&sys), body.clone()).await;
            assert_tb_shape(status, &answer, StatusCode::FORBIDDEN);
            assert_eq!(answer["errorCode"], 20, "{method} {body:?}: {answer}");
        }
    }
    app.tb_me(&sys).await;
    // T19 answers a new pair and ends the caller's pair session.
    let (new_sys, _) = accept_policy(&app, &sys).await;
    assert_token_dead(&app, &sys).await;
    let (status, body) = app
        .tb_request(
            Method::POST,
            "/api/auth/token",
            None,
            Some(json!({"refreshToken": sys_refresh})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "old refresh token: {body}"
    );
    assert_eq!(policy_accepted(&app, &new_sys).await, json!(true));
    // Without a credential they are 401.
    let (status, body) = app
        .tb_request(Method::GET, "/api/signup/privacyPolicyAccepted", None, None)
        .await;
    assert_tb_shape(status, &body, StatusCode::UNAUTHORIZED);
    let (status, body) = app
        .tb_request(Method::DELETE, "/api/signup/tenantAccount", None, None)
        .await;
    assert_tb_shape(status, &body, StatusCode::UNAUTHORIZED);
}

async fn enabling_needs_mail_and_captcha_keys(app: TestApp) {
    let base = app.settings.clone();
    let refusal = |adjust: &dyn Fn(&mut Settings)| {
        let mut settings = base.clone();
        settings.signup.enabled = true;
        settings.signup.captcha.site_key = SITE_KEY.to_owned();
        settings.signup.captcha.secret_key = Some(SECRET.to_owned());
        settings.mail = common::smtp::mail_settings(25);
        adjust(&mut settings);
        async move {
            match gatehouse::startup::Application::build(&settings).await {
                Ok(_) => panic!("started with {:?}", settings.signup),
                Err(error) => error.to_string(),
            }
        }
    };
    let message = refusal(&|settings| settings.mail = MailSettings::default()).await;
    assert!(
        message.contains("sign-up") && message.contains("mail"),
        "{message}"
    );
    let message = refusal(&|settings| settings.signup.captcha.secret_key = None).await;
    assert!(message.contains("signup.captcha.secret_key"), "{message}");
    let message = refusal(&|settings| settings.signup.captcha.site_key = String::new()).await;
    assert!(message.contains("signup.captcha.site_key"), "{message}");
    let message = refusal(&|settings| settings.signup.account = AccountKind::Customer).await;
    assert!(message.contains("signup.tenant_id"), "{message}");
    let message = refusal(&|settings| {
        settings.signup.mobile_apps = vec![MobileAppConfig {
            package: "org.example.app".to_owned(),
            secret: "s".to_owned(),
            callback_scheme: "not a scheme".to_owned(),
        }]
    })
    .await;
    assert!(message.contains("callback_scheme"), "{message}");
    // The secret never shows in the settings' debug form.
    let mut shown = base.clone();
    shown.signup.captcha.secret_key = Some(SECRET.to_owned());
    assert!(!format!("{shown:?}").contains(SECRET));
    // The app under test still serves.
    app.tb_me(&sysadmin(&app).await).await;
}

async fn captcha_parameters_are_public(app: TestApp) {
    let env = start(app, |_| {}).await;
    let app = &env.app;
    let answer = app
        .tb_send(
            Method::GET,
            "/api/noauth/signup/recaptchaPublicKey",
            &[],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.text, format!("\"{SITE_KEY}\""), "a JSON string");
    let (status, params) = app
        .tb_request(
            Method::GET,
            "/api/noauth/signup/recaptchaParams",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{params}");
    assert_eq!(
        params,
        json!({"captchaSiteKey": SITE_KEY, "captchaVersion": "v2"}),
        "no action for v2"
    );
    // The secret is not shown, and the verifier was not asked.
    assert!(!answer.text.contains(SECRET) && !params.to_string().contains(SECRET));
    assert!(env.captcha.requests().is_empty());
}

// ---------------------------------------------------------------------------------------------
// T12: sign-up

async fn sign_up_creates_an_inactive_tenant_admin_of_a_new_tenant(app: TestApp) {
    let env = start(app, |_| {}).await;
    let app = &env.app;
    let email = "new.owner@example.com";
    let answer = app
        .tb_send(
            Method::POST,
            "/api/noauth/signup",
            &[("content-type", "application/json")],
            Some(serde_json::to_vec(&form(email, PASSWORD)).unwrap()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.text, "\"SUCCESS\"", "a JSON string");
    // The CAPTCHA answer was checked with the secret and the client's address.
    let requests = env.captcha.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let asked = &requests[0];
    assert_eq!(asked.method, "POST");
    assert_eq!(asked.path, "/recaptcha/api/siteverify");
    assert!(
        asked
            .content_type
            .starts_with("application/x-www-form-urlencoded"),
        "{asked:?}"
    );
    assert_eq!(asked.form.get("secret").map(String::as_str), Some(SECRET));
    assert_eq!(
        asked.form.get("response").map(String::as_str),
        Some(captcha::HUMAN)
    );
    assert_eq!(
        asked.form.get("remoteip").map(String::as_str),
        Some("127.0.0.1")
    );

    // The account exists but is inactive until the mailed code is used.
    assert_login_refused(app, email, PASSWORD, NOT_ACTIVE).await;
    let mail = env.smtp.wait_for_mail(email, MAIL_WAIT).await;
    assert!(
        mail.text.contains("24 hours"),
        "the code's lifetime: {:?}",
        mail.text
    );
    let code = code_from_mail(&mail, &app.base);
    let (token, refresh) = env.activate(&code).await;
    let me = app.tb_me(&token).await;
    assert_eq!(me["email"], email);
    assert_eq!(me["authority"], "TENANT_ADMIN");
    assert_eq!(me["firstName"], "Ann");
    assert_eq!(me["lastName"], "Example");
    assert_eq!(me["additionalInfo"]["userCredentialsEnabled"], true);
    assert_eq!(me["customerId"]["id"], TB_NULL_UUID);
    let tenant = me["tenantId"]["id"].as_str().expect("tenant id").to_owned();
    assert_ne!(tenant, TB_NULL_UUID, "a tenant of its own");
    assert_eq!(jwt_claims(&token)["tenantId"], tenant.as_str());
    assert_eq!(jwt_claims(&token)["scopes"], json!(["TENANT_ADMIN"]));
    // The pair is a working pair; the password logs in now.
    let (status, body) = app
        .tb_request(
            Method::POST,
            "/api/auth/token",
            None,
            Some(json!({"refreshToken": refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "refresh: {body}");
    let (again, _) = app.tb_login(email, PASSWORD).await;
    assert_eq!(app.tb_me(&again).await["id"], me["id"]);

    // Every sign-up gets a new tenant.
    let (second, _) = env.activated("second.owner@example.com", PASSWORD).await;
    let second_me = app.tb_me(&second).await;
    assert_eq!(second_me["authority"], "TENANT_ADMIN");
    let second_tenant = second_me["tenantId"]["id"].as_str().unwrap();
    assert_ne!(second_tenant, TB_NULL_UUID);
    assert_ne!(second_tenant, tenant, "a new tenant per sign-up");
    assert_ne!(second_me["id"], me["id"]);
}

async fn sign_up_reads_thingsboard_4_4_form_fields(app: TestApp) {
    let env = start(app, |_| {}).await;
    let app = &env.app;
    let email = "fields@example.com";
    let (status, body) = env
        .sign_up_with(json!({
            "fields": {
                "EMAIL": email, "PASSWORD": PASSWORD, "REPEAT_PASSWORD": PASSWORD,
                "FIRST_NAME": "Olena", "LAST_NAME": "Petrenko", "PHONE": "+380441234567",
                "COUNTRY": "Ukraine", "CITY": "Kyiv",
            },
            "recaptchaResponse": captcha::HUMAN,
        }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!("SUCCESS"));
    let code = env.code(email).await;
    let (token, _) = env.activate(&code).await;
    let me = app.tb_me(&token).await;
    assert_eq!(me["email"], email);
    assert_eq!(me["firstName"], "Olena");
    assert_eq!(me["lastName"], "Petrenko");
    assert_eq!(me["phone"], "+380441234567");
    assert_eq!(
        me["additionalInfo"]["signUp"],
        json!({"country": "Ukraine", "city": "Kyiv"}),
        "{me}"
    );
    // A field of the map wins over its flat twin.
    let email = "twin@example.com";
    let (status, body) = env
        .sign_up_with(json!({
            "email": "flat@example.com", "password": "flat-pass-1", "firstName": "Flat",
            "fields": {"EMAIL": email, "PASSWORD": PASSWORD, "FIRST_NAME": "Mapped"},
            "recaptchaResponse": captcha::HUMAN,
        }))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!("SUCCESS")));
    let code = env.code(email).await;
    let (token, _) = env.activate(&code).await;
    assert_eq!(app.tb_me(&token).await["firstName"], "Mapped");
    app.tb_login(email, PASSWORD).await;
    assert_login_refused(app, "flat@example.com", "flat-pass-1", BAD_CREDENTIALS).await;
}

async fn bad_sign_up_forms_are_refused_and_create_nothing(app: TestApp) {
    let env = start(app, |_| {}).await;
    let email = "careful@example.com";
    let with = |change: &dyn Fn(&mut Value)| {
        let mut body = form(email, PASSWORD);
        change(&mut body);
        body
    };
    let fields = |map: Value| json!({"fields": map, "recaptchaResponse": captcha::HUMAN});
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        (
            "no email",
            with(&|b| b["email"] = Value::Null),
            Some("Email is required"),
        ),
        (
            "blank email",
            with(&|b| b["email"] = json!("  ")),
            Some("Email is required"),
        ),
        (
            "malformed email",
            with(&|b| b["email"] = json!("not-an-email")),
            Some("Invalid email address format 'not-an-email'"),
        ),
        (
            "no password",
            with(&|b| b["password"] = Value::Null),
            Some("Password is required"),
        ),
        (
            "password breaks the policy",
            with(&|b| b["password"] = json!("abc")),
            Some("Password must be 5 or more characters in length."),
        ),
        (
            "no CAPTCHA answer",
            with(&|b| b["recaptchaResponse"] = Value::Null),
            None,
        ),
        (
            "empty CAPTCHA answer",
            with(&|b| b["recaptchaResponse"] = json!("")),
            None,
        ),
        (
            "refused CAPTCHA answer",
            with(&|b| b["recaptchaResponse"] = json!(captcha::ROBOT)),
            None,
        ),
        (
            "pkgName without appSecret",
            with(&|b| b["pkgName"] = json!("org.example.app")),
            None,
        ),
        (
            "unknown mobile application",
            with(&|b| {
                b["pkgName"] = json!("org.example.app");
                b["appSecret"] = json!("secret");
            }),
            None,
        ),
        (
            "repeated password differs",
            fields(
                json!({"EMAIL": email, "PASSWORD": PASSWORD, "REPEAT_PASSWORD": "other-pass-1"}),
            ),
            Some("Passwords do not match"),
        ),
        (
            "fields without a password",
            fields(json!({"EMAIL": email})),
            Some("Password is required"),
        ),
    ];
    for (what, body, message) in cases {
        let (status, answer) = env.sign_up_with(body.clone()).await;
        let (code, actual) = assert_tb_shape(status, &answer, StatusCode::BAD_REQUEST);
        assert_eq!(code, 31, "{what}: {answer}");
        if let Some(message) = message {
            assert_eq!(actual, message, "{what}");
        }
    }
    // Form errors never reach the verifier; the password policy is checked after the CAPTCHA
    // (the breach's answer was verified), then the refused answer.
    let asked: Vec<String> = env
        .captcha
        .requests()
        .iter()
        .map(|request| request.form.get("response").cloned().unwrap_or_default())
        .collect();
    assert_eq!(
        asked,
        vec![captcha::HUMAN.to_owned(), captcha::ROBOT.to_owned()]
    );
    // A stricter policy is applied too.
    let sys = sysadmin(&env.app).await;
    env.app
        .tb_update_security(&sys, |settings| {
            settings["passwordPolicy"]["minimumDigits"] = json!(3);
        })
        .await;
    let (status, answer) = env.sign_up_with(form(email, "only-one-1")).await;
    assert_tb_error(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        31,
        "Password must contain 3 or more digit characters.",
    );
    // Nothing was created and nothing mailed: the address signs up afresh.
    settle().await;
    assert!(env.mails_to(email).is_empty(), "{:?}", env.mails_to(email));
    assert_login_refused(&env.app, email, PASSWORD, BAD_CREDENTIALS).await;
    assert_eq!(env.sign_up(email, "good-pass-123").await, "SUCCESS");
    env.code(email).await;
}

async fn captcha_v3_needs_the_score_and_the_action(app: TestApp) {
    let env = start(app, |settings| {
        settings.signup.captcha.version = CaptchaVersion::V3;
        settings.signup.captcha.action = Some("signup".to_owned());
    })
    .await;
    let (status, params) = env
        .app
        .tb_request(
            Method::GET,
            "/api/noauth/signup/recaptchaParams",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{params}");
    assert_eq!(
        params,
        json!({"captchaSiteKey": SITE_KEY, "captchaVersion": "v3", "captchaAction": "signup"})
    );
    for refused in [captcha::LOW_SCORE, captcha::WRONG_ACTION, captcha::ROBOT] {
        let mut body = form("scored@example.com", PASSWORD);
        body["recaptchaResponse"] = json!(refused);
        let (status, answer) = env.sign_up_with(body).await;
        let (code, _) = assert_tb_shape(status, &answer, StatusCode::BAD_REQUEST);
        assert_eq!(code, 31, "{refused}: {answer}");
    }
    assert_eq!(env.sign_up("scored@example.com", PASSWORD).await, "SUCCESS");
    let requests = env.captcha.requests();
    assert_eq!(requests.len(), 4, "{requests:?}");
    for request in &requests {
        assert_eq!(request.form.get("secret").map(String::as_str), Some(SECRET));
    }
    env.code("scored@example.com").await;
    // The lowest score is configurable.
    let engine = env.app.engine;
    drop(env);
    let env = start(TestApp::spawn(engine).await, |settings| {
        settings.signup.captcha.version = CaptchaVersion::V3;
        settings.signup.captcha.min_score = 0.2;
    })
    .await;
    let mut body = form("lenient@example.com", PASSWORD);
    body["recaptchaResponse"] = json!(captcha::LOW_SCORE);
    let (status, answer) = env.sign_up_with(body).await;
    assert_eq!((status, answer), (StatusCode::OK, json!("SUCCESS")));
    // Without a configured action any action passes.
    let mut body = form("any.action@example.com", PASSWORD);
    body["recaptchaResponse"] = json!(captcha::WRONG_ACTION);
    let (status, answer) = env.sign_up_with(body).await;
    assert_eq!((status, answer), (StatusCode::OK, json!("SUCCESS")));
}

async fn captcha_enterprise_assessments_are_asked_with_the_api_key(app: TestApp) {
    let smtp = SmtpServer::start();
    let captcha = CaptchaServer::start(SECRET).await;
    let verify_url = format!("{}/v1/projects/gatehouse-test/assessments", captcha.base);
    let port = smtp.port();
    let engine = app.engine;
    app.stop().await;
    let app = TestApp::spawn_with(
        engine,
        |settings| {
            enable_signup(settings, port, &verify_url);
            settings.signup.captcha.version = CaptchaVersion::Enterprise;
            settings.signup.captcha.action = Some("signup".to_owned());
        },
        None,
    )
    .await;
    let env = Env { app, smtp, captcha };
    let (status, params) = env
        .app
        .tb_request(
            Method::GET,
            "/api/noauth/signup/recaptchaParams",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{params}");
    assert_eq!(
        params,
        json!({"captchaSiteKey": SITE_KEY, "captchaVersion": "enterprise", "captchaAction": "signup"})
    );
    assert_eq!(
        env.sign_up("assessed@example.com", PASSWORD).await,
        "SUCCESS"
    );
    let requests = env.captcha.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let asked = &requests[0];
    assert_eq!(asked.method, "POST");
    assert_eq!(asked.path, "/v1/projects/gatehouse-test/assessments");
    assert_eq!(asked.query.get("key").map(String::as_str), Some(SECRET));
    assert!(
        asked.content_type.starts_with("application/json"),
        "{asked:?}"
    );
    assert_eq!(
        asked.json,
        json!({"event": {"token": captcha::HUMAN, "siteKey": SITE_KEY,
                         "expectedAction": "signup", "userIpAddress": "127.0.0.1"}})
    );
    for refused in [captcha::ROBOT, captcha::LOW_SCORE, captcha::WRONG_ACTION] {
        let mut body = form("refused@example.com", PASSWORD);
        body["recaptchaResponse"] = json!(refused);
        let (status, answer) = env.sign_up_with(body).await;
        let (code, _) = assert_tb_shape(status, &answer, StatusCode::BAD_REQUEST);
        assert_eq!(code, 31, "{refused}: {answer}");
    }
    let code = env.code("assessed@example.com").await;
    env.activate(&code).await;
    assert_login_refused(&env.app, "refused@example.com", PASSWORD, BAD_CREDENTIALS).await;
}

async fn unusable_verifier_is_503_and_creates_nothing(app: TestApp) {
    // The application asks a port where nothing listens yet.
    let port = common::ports::free_port();
    let smtp = SmtpServer::start();
    let smtp_port = smtp.port();
    let engine = app.engine;
    app.stop().await;
    let verify_url = format!("http://127.0.0.1:{port}/recaptcha/api/siteverify");
    let app = TestApp::spawn_with(
        engine,
        |settings| {
            enable_signup(settings, smtp_port, &verify_url);
            settings.signup.captcha.timeout_secs = 1;
        },
        None,
    )
    .await;
    let email = "patient@example.com";
    let (status, body) = app
        .tb_request(
            Method::POST,
            "/api/noauth/signup",
            None,
            Some(form(email, PASSWORD)),
        )
        .await;
    let (code, message) = assert_tb_shape(status, &body, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(code, 2, "{body}");
    assert!(!message.contains(SECRET), "{message}");
    // Now it listens, but fails, answers something that is not JSON, or answers too late.
    let captcha = CaptchaServer::start_on(port, SECRET).await;
    for failing in [captcha::CRASH, captcha::GARBAGE, captcha::SLOW] {
        let mut body = form(email, PASSWORD);
        body["recaptchaResponse"] = json!(failing);
        let (status, answer) = app
            .tb_request(Method::POST, "/api/noauth/signup", None, Some(body))
            .await;
        let (code, message) = assert_tb_shape(status, &answer, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(code, 2, "{failing}: {answer}");
        assert!(!message.contains(SECRET), "{message}");
    }
    assert_eq!(captcha.requests().len(), 3);
    // Nothing was created: the address signs up afresh, and only that is mailed.
    assert_login_refused(&app, email, PASSWORD, BAD_CREDENTIALS).await;
    let (status, body) = app
        .tb_request(
            Method::POST,
            "/api/noauth/signup",
            None,
            Some(form(email, PASSWORD)),
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!("SUCCESS")));
    smtp.wait_for_mail(email, MAIL_WAIT).await;
    settle().await;
    assert_eq!(smtp.mails().len(), 1, "{:?}", smtp.mails());
}

async fn signing_up_again_before_verification_replaces_the_pending_sign_up(app: TestApp) {
    let env = start(app, |_| {}).await;
    let app = &env.app;
    let email = "twice@example.com";
    assert_eq!(env.sign_up(email, "first-pass-1").await, "SUCCESS");
    let first = env.code(email).await;
    let mut body = form(email, "second-pass-2");
    body["firstName"] = json!("Bob");
    body["lastName"] = json!("Second");
    let (status, answer) = env.sign_up_with(body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!("INACTIVE_USER_EXISTS"));
    let second = env.code(email).await;
    assert_ne!(first, second, "a new code");
    // The earlier code stopped working; the account is still inactive.
    let answer = env.check_code(&first, "").await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.text);
    assert_eq!(answer.text, "");
    let (status, body) = env.use_code(&first, "").await;
    assert_tb_error(status, &body, StatusCode::BAD_REQUEST, 31, CODE_UNKNOWN);
    assert_login_refused(app, email, "second-pass-2", NOT_ACTIVE).await;
    // The newest code activates the newest password and names.
    let (token, _) = env.activate(&second).await;
    let me = app.tb_me(&token).await;
    assert_eq!(me["firstName"], "Bob");
    assert_eq!(me["lastName"], "Second");
    app.tb_login(email, "second-pass-2").await;
    assert_login_refused(app, email, "first-pass-1", BAD_CREDENTIALS).await;
    // Verified now: a further sign-up changes nothing and tells the owner.
    assert_eq!(env.sign_up(email, "third-pass-3").await, "SUCCESS");
    let notice = env.smtp.wait_for_mail(email, MAIL_WAIT).await;
    assert_eq!(notice.subject, "You already have an account", "{notice:?}");
    assert!(!notice.text.contains("emailCode"), "{:?}", notice.text);
    app.tb_login(email, "second-pass-2").await;
    assert_login_refused(app, email, "third-pass-3", BAD_CREDENTIALS).await;
    assert_eq!(app.tb_me(&token).await["firstName"], "Bob");
}

async fn signing_up_with_a_taken_address_changes_nothing(app: TestApp) {
    let env = start(app, |_| {}).await;
    let app = &env.app;
    let sys = sysadmin(app).await;
    // A tenant administrator the sysadmin created and activated.
    let taken = "taken@example.com";
    let tenant = uuid::Uuid::new_v4().to_string();
    let (_, token, _) = app
        .tb_new_user(&sys, tenant_admin_body(taken, &tenant), "owner-pass-1")
        .await;
    let before = app.tb_me(&token).await;
    assert_eq!(env.sign_up(taken, "intruder-pass-1").await, "SUCCESS");
    let notice = env.smtp.wait_for_mail(taken, MAIL_WAIT).await;
    assert_eq!(notice.subject, "You already have an account", "{notice:?}");
    assert!(
        notice
            .text
            .contains(&format!("{}/login/resetPasswordRequest", app.base)),
        "{:?}",
        notice.text
    );
    assert!(!notice.text.contains("emailCode"), "{:?}", notice.text);
    app.tb_login(taken, "owner-pass-1").await;
    assert_login_refused(app, taken, "intruder-pass-1", BAD_CREDENTIALS).await;
    assert_eq!(app.tb_me(&token).await, before, "the account is unchanged");
    // A Connectware user whose login name is the address.
    let cw = "cw.user@example.com";
    app.create_user(cw, "cw-user-pass-1", &[]).await;
    assert_eq!(env.sign_up(cw, "intruder-pass-1").await, "SUCCESS");
    let notice = env.smtp.wait_for_mail(cw, MAIL_WAIT).await;
    assert_eq!(notice.subject, "You already have an account", "{notice:?}");
    app.login(cw, "cw-user-pass-1").await;
    let (status, _) = app.try_login(cw, "intruder-pass-1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A verified sign-up.
    let verified = "verified@example.com";
    let (token, _) = env.account(verified, PASSWORD).await;
    let me = app.tb_me(&token).await;
    assert_eq!(env.sign_up(verified, "intruder-pass-1").await, "SUCCESS");
    let notice = env.smtp.wait_for_mail(verified, MAIL_WAIT).await;
    assert_eq!(notice.subject, "You already have an account", "{notice:?}");
    app.tb_login(verified, PASSWORD).await;
    assert_login_refused(app, verified, "intruder-pass-1", BAD_CREDENTIALS).await;
    assert_eq!(app.tb_me(&token).await, me);
    assert_eq!(policy_accepted(app, &token).await, json!(true));
}

/// The users whose login name is `username`, exactly (Connectware's user list, as the admin).
async fn users_named(app: &TestApp, username: &str) -> Vec<Value> {
    let (status, page) = app
        .get(
            &format!("/api/listUsers?usernames={username}"),
            &app.admin_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["users"].as_array().cloned().unwrap_or_default()
}

/// Addresses are taken regardless of case: a sign-up with another case of a verified account's
/// address answers `SUCCESS`, creates nothing, and the notice goes to the address of record.
async fn signing_up_in_another_case_of_a_verified_address_changes_nothing(app: TestApp) {
    let env = start(app, |_| {}).await;
    let app = &env.app;
    let (token, _) = env.account("ann@example.com", PASSWORD).await;
    let me = app.tb_me(&token).await;
    let before = dump(app).await;
    assert_eq!(
        env.sign_up("Ann@Example.com", "intruder-pass-1").await,
        "SUCCESS"
    );
    let notice = env.smtp.wait_for_mail("ann@example.com", MAIL_WAIT).await;
    assert_eq!(notice.subject, "You already have an account", "{notice:?}");
    assert_eq!(notice.to, "ann@example.com", "the address of record");
    assert!(!notice.text.contains("emailCode"), "{:?}", notice.text);
    // Nothing was created or changed, and nothing else was mailed.
    assert_same_content(&before, &dump(app).await);
    settle().await;
    let mails = env.smtp.mails();
    assert_eq!(mails.len(), 2, "the code and the notice only: {mails:?}");
    assert!(
        mails.iter().all(|mail| mail.to == "ann@example.com"),
        "{mails:?}"
    );
    assert!(users_named(app, "Ann@Example.com").await.is_empty());
    app.tb_login("ann@example.com", PASSWORD).await;
    for login in ["ann@example.com", "Ann@Example.com"] {
        assert_login_refused(app, login, "intruder-pass-1", BAD_CREDENTIALS).await;
    }
    assert_eq!(app.tb_me(&token).await, me);
}

/// A sign-up with another case of a pending sign-up's address renews that sign-up: the answer
/// is `INACTIVE_USER_EXISTS`, the newest password replaces the pending one, and the new code
/// goes to the address the first sign-up used, which stays the account's address.
async fn signing_up_in_another_case_of_a_pending_address_renews_it(app: TestApp) {
    let env = start(app, |_| {}).await;
    let app = &env.app;
    let email = "carol@example.com";
    assert_eq!(env.sign_up(email, "first-pass-1").await, "SUCCESS");
    let first = env.code(email).await;
    let mut body = form("CAROL@Example.COM", "second-pass-2");
    body["firstName"] = json!("Carol");
    let (status, answer) = env.sign_up_with(body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!("INACTIVE_USER_EXISTS"));
    let mail = env.smtp.wait_for_mail(email, MAIL_WAIT).await;
    assert_eq!(mail.to, email, "the address of record");
    assert!(mail.text.contains(email), "{:?}", mail.text);
    let second = code_from_mail(&mail, &app.base);
    assert_ne!(first, second, "a new code");
    // The first code was voided, and no second account was made.
    let (status, body) = env.use_code(&first, "").await;
    assert_tb_error(status, &body, StatusCode::BAD_REQUEST, 31, CODE_UNKNOWN);
    assert!(users_named(app, "CAROL@Example.COM").await.is_empty());
    assert_login_refused(app, email, "second-pass-2", NOT_ACTIVE).await;
    // The new code activates the newest password under the address of record.
    let (token, _) = env.activate(&second).await;
    let me = app.tb_me(&token).await;
    assert_eq!(me["email"], email);
    assert_eq!(me["firstName"], "Carol");
    app.tb_login(email, "second-pass-2").await;
    assert_login_refused(app, email, "first-pass-1", BAD_CREDENTIALS).await;
    settle().await;
    let mails = env.smtp.mails();
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert!(mails.iter().all(|mail| mail.to == email), "{mails:?}");
}

/// A Connectware user has no email, but its login name may be an address: a sign-up with that
/// address in another case answers `SUCCESS` and creates no account.
async fn signing_up_in_another_case_of_a_connectware_username_changes_nothing(app: TestApp) {
    let env = start(app, |_| {}).await;
    let app = &env.app;
    let username = "bob@example.com";
    app.create_user(username, "bob-cw-pass-1", &[]).await;
    let before = dump(app).await;
    assert_eq!(
        env.sign_up("BOB@example.com", "intruder-pass-1").await,
        "SUCCESS"
    );
    let notice = env.smtp.wait_for_mail(username, MAIL_WAIT).await;
    assert_eq!(notice.subject, "You already have an account", "{notice:?}");
    assert_eq!(notice.to, username, "the login name of record");
    assert_same_content(&before, &dump(app).await);
    assert!(users_named(app, "BOB@example.com").await.is_empty());
    settle().await;
    assert_eq!(env.smtp.mails().len(), 1, "{:?}", env.smtp.mails());
    app.login(username, "bob-cw-pass-1").await;
    assert_login_refused(app, "BOB@example.com", "intruder-pass-1", BAD_CREDENTIALS).await;
    let (status, _) = app.try_login(username, "intruder-pass-1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// An unverified sign-up that an administrator enabled (`userCredentialsEnabled`) is an active
/// account: signing up again with its address must not replace its password.
async fn signing_up_with_the_address_of_an_enabled_account_changes_nothing(app: TestApp) {
    let env = start(app, |_| {}).await;
    let app = &env.app;
    let email = "enabled.by.admin@example.com";
    assert_eq!(env.sign_up(email, "owner-pass-1").await, "SUCCESS");
    env.code(email).await;
    // The owner never got to the mail; the sysadmin enables the account by hand.
    let sys = sysadmin(app).await;
    let id = user_id_of(app, email).await;
    let (status, body) = app
        .tb_post(
            &format!("/api/user/{id}/userCredentialsEnabled?userCredentialsEnabled=true"),
            &sys,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (token, _) = app.tb_login(email, "owner-pass-1").await;
    let (token, _) = accept_policy(app, &token).await;
    let me = app.tb_me(&token).await;
    // Someone signs up with the active account's address.
    let answer = env.sign_up(email, "intruder-pass-1").await;
    let (status, _) = app.tb_try_login(email, "intruder-pass-1").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the intruder's password logs in to the enabled account (its sign-up answered {answer})"
    );
    app.tb_login(email, "owner-pass-1").await;
    assert_eq!(answer, "SUCCESS", "an active account's address");
    assert_eq!(app.tb_me(&token).await, me);
}

/// The same account (unverified sign-up, enabled by an administrator, in use) is not deleted
/// as an abandoned sign-up when the retention has passed.
async fn an_enabled_account_is_not_purged_as_an_abandoned_sign_up(app: TestApp) {
    let (env, clock) = start_on_clock(app, |_| {}).await;
    let app = &env.app;
    let email = "enabled.long.ago@example.com";
    assert_eq!(env.sign_up(email, PASSWORD).await, "SUCCESS");
    env.code(email).await;
    let sys = sysadmin(app).await;
    let id = user_id_of(app, email).await;
    let (status, body) = app
        .tb_post(
            &format!("/api/user/{id}/userCredentialsEnabled?userCredentialsEnabled=true"),
            &sys,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (token, _) = app.tb_login(email, PASSWORD).await;
    accept_policy(app, &token).await;
    // Three days later, the next sign-up purges abandoned sign-ups.
    clock.advance(73 * HOUR_MS);
    app.tb_login(email, PASSWORD).await;
    assert_eq!(env.sign_up("next@example.com", PASSWORD).await, "SUCCESS");
    let (status, body) = app.tb_try_login(email, PASSWORD).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the enabled account was purged as an unverified sign-up: {body}"
    );
}

/// An account an administrator enabled is in use even if its email was never verified. When
/// the lockout (`maxFailedLoginAttempts`) disables it, it must not count as a pending sign-up
/// again: otherwise anyone who locks it with wrong passwords can sign up with its address and
/// replace its password, and the intruder's password logs in once the account is unlocked.
async fn a_locked_account_is_no_pending_sign_up(app: TestApp) {
    let env = start(app, |_| {}).await;
    let app = &env.app;
    let email = "locked.owner@example.com";
    let (sys, id) = enabled_by_hand(&env, email, "owner-pass-1").await;
    app.tb_update_security(&sys, |settings| {
        settings["maxFailedLoginAttempts"] = json!(3);
    })
    .await;
    // An intruder locks the account with wrong passwords, then signs up with its address.
    for _ in 0..4 {
        let (status, _) = app.tb_try_login(email, "wrong-guess-1").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_login_refused(app, email, "owner-pass-1", NOT_ACTIVE).await;
    let answer = env.sign_up(email, "intruder-pass-1").await;
    // The administrator unlocks the owner's account.
    assert_eq!(set_enabled(app, &sys, &id, true).await, StatusCode::OK);
    let (status, body) = app.tb_try_login(email, "intruder-pass-1").await;
    assert_ne!(
        status,
        StatusCode::OK,
        "the intruder's password logs in to the unlocked account (its sign-up answered \
         {answer}): {body}"
    );
    app.tb_login(email, "owner-pass-1").await;
    assert_eq!(answer, "SUCCESS", "a locked account is no pending sign-up");
}

/// An administrator disables an account that was enabled by hand (its email never verified):
/// signing up again with its address must not give its owner a code that enables it again.
async fn a_disabled_account_does_not_reactivate_itself_by_signing_up_again(app: TestApp) {
    let env = start(app, |_| {}).await;
    let app = &env.app;
    let email = "suspended@example.com";
    let (sys, id) = enabled_by_hand(&env, email, "owner-pass-1").await;
    assert_eq!(set_enabled(app, &sys, &id, false).await, StatusCode::OK);
    assert_login_refused(app, email, "owner-pass-1", NOT_ACTIVE).await;
    // The suspended owner signs up again with its own address.
    let answer = env.sign_up(email, "comeback-pass-1").await;
    let mail = env.smtp.wait_for_mail(email, MAIL_WAIT).await;
    let activation = if mail.subject == "Verify your email" {
        let code = code_from_mail(&mail, &app.base);
        Some(env.use_code(&code, "").await.0)
    } else {
        None
    };
    let (status, body) = app.tb_try_login(email, "comeback-pass-1").await;
    assert_ne!(
        status,
        StatusCode::OK,
        "the disabled account enabled itself (sign-up answered {answer}, mail {:?}, code \
         used: {activation:?}): {body}",
        mail.subject
    );
    assert_eq!(
        answer, "SUCCESS",
        "a disabled account is no pending sign-up"
    );
    assert_eq!(mail.subject, "You already have an account", "{mail:?}");
}

/// The same disabled account is suspended, not abandoned: the purge of unverified sign-ups
/// must not delete it once the retention has passed.
async fn a_disabled_account_is_not_purged_as_an_abandoned_sign_up(app: TestApp) {
    let (env, clock) = start_on_clock(app, |_| {}).await;
    let app = &env.app;
    let email = "suspended.long.ago@example.com";
    let (sys, id) = enabled_by_hand(&env, email, PASSWORD).await;
    assert_eq!(set_enabled(app, &sys, &id, false).await, StatusCode::OK);
    clock.advance(73 * HOUR_MS);
    let sys = sysadmin(app).await;
    assert_eq!(env.sign_up("next@example.com", PASSWORD).await, "SUCCESS");
    assert_eq!(
        set_enabled(app, &sys, &id, true).await,
        StatusCode::OK,
        "the disabled account was purged as an unverified sign-up"
    );
    app.tb_login(email, PASSWORD).await;
}

/// The purge deletes abandoned sign-ups a batch (100) at a time, oldest first; accounts an
/// administrator enabled are kept, and must not take the batch's places: a sign-up abandoned
/// after 100 enabled ones is purged too.
async fn enabled_accounts_do_not_hold_up_the_purge(app: TestApp) {
    let (env, clock) = start_on_clock(app, |_| {}).await;
    let app = &env.app;
    let kept: Vec<String> = (0..100).map(|n| format!("kept{n}@example.com")).collect();
    for email in &kept {
        assert_eq!(env.sign_up(email, PASSWORD).await, "SUCCESS");
    }
    clock.advance(1_000);
    assert_eq!(
        env.sign_up("abandoned@example.com", PASSWORD).await,
        "SUCCESS"
    );
    // The administrator enables the 100 older ones by hand.
    let sys = sysadmin(app).await;
    let (status, page) = app
        .get(
            &format!(
                "/api/listUsers?rowsPerPage=1000&usernames={}",
                kept.join(",")
            ),
            &app.admin_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let users = page["users"].as_array().expect("users");
    assert_eq!(users.len(), 100);
    for user in users {
        let id = user["id"].as_str().expect("an id");
        let (status, body) = app
            .tb_post(
                &format!("/api/user/{id}/userCredentialsEnabled?userCredentialsEnabled=true"),
                &sys,
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Three days later the next sign-up purges.
    clock.advance(73 * HOUR_MS);
    assert_eq!(
        env.sign_up("trigger@example.com", PASSWORD).await,
        "SUCCESS"
    );
    assert_eq!(
        env.sign_up("abandoned@example.com", PASSWORD).await,
        "SUCCESS",
        "the abandoned sign-up was purged: its address signs up afresh"
    );
    app.tb_login(&kept[0], PASSWORD).await;
    app.tb_login(&kept[99], PASSWORD).await;
}

async fn unverified_sign_ups_are_capped(app: TestApp) {
    let env = start(app, |settings| settings.signup.max_unverified = 2).await;
    assert_eq!(env.sign_up("one@example.com", PASSWORD).await, "SUCCESS");
    assert_eq!(env.sign_up("two@example.com", PASSWORD).await, "SUCCESS");
    let answer = env
        .app
        .tb_send(
            Method::POST,
            "/api/noauth/signup",
            &[("content-type", "application/json")],
            Some(serde_json::to_vec(&form("three@example.com", PASSWORD)).unwrap()),
        )
        .await;
    assert_tb_error(
        answer.status,
        &answer.json(),
        StatusCode::TOO_MANY_REQUESTS,
        33,
        "Too many requests",
    );
    assert!(
        answer.header("retry-after").is_some(),
        "{:?}",
        answer.headers
    );
    // While the cap is reached every address gets the same answer, a pending one too (a
    // different answer would tell which addresses are taken).
    let code = env.code("one@example.com").await;
    let (status, body) = env.sign_up_with(form("one@example.com", PASSWORD)).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        33,
        "Too many requests",
    );
    // A verification frees a place.
    env.activate(&code).await;
    assert_eq!(env.sign_up("three@example.com", PASSWORD).await, "SUCCESS");
    let (status, body) = env.sign_up_with(form("four@example.com", PASSWORD)).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        33,
        "Too many requests",
    );
    // The refused address was not created.
    settle().await;
    assert!(env.mails_to("four@example.com").is_empty());
}

/// While the cap of unverified sign-ups is reached, a sign-up with the address of a verified
/// account must get the same answer as one with a free address: `SUCCESS` for the one and 429
/// for the other tells which addresses have accounts.
async fn the_unverified_cap_does_not_tell_taken_addresses_from_free_ones(app: TestApp) {
    let env = start(app, |settings| settings.signup.max_unverified = 1).await;
    let app = &env.app;
    let sys = sysadmin(app).await;
    let tenant = uuid::Uuid::new_v4().to_string();
    app.tb_new_user(
        &sys,
        tenant_admin_body("has.account@example.com", &tenant),
        "owner-pass-1",
    )
    .await;
    assert_eq!(
        env.sign_up("fills.the.cap@example.com", PASSWORD).await,
        "SUCCESS"
    );
    let (taken, taken_body) = env
        .sign_up_with(form("has.account@example.com", PASSWORD))
        .await;
    let (free, free_body) = env
        .sign_up_with(form("no.account@example.com", PASSWORD))
        .await;
    assert_eq!(
        taken, free,
        "a taken address answers {taken} {taken_body}, a free one {free} {free_body}"
    );
}

/// The documentation says the cap of unverified sign-ups is enforced in the database, so it
/// holds across replicas: then it holds for parallel sign-ups of one replica too.
async fn parallel_sign_ups_do_not_overrun_the_cap(app: TestApp) {
    let env = start(app, |settings| settings.signup.max_unverified = 3).await;
    let mut tasks = Vec::new();
    for n in 0..16 {
        let request = env
            .app
            .client
            .post(env.app.url("/api/noauth/signup"))
            .json(&form(&format!("crowd{n}@example.com"), PASSWORD));
        tasks.push(tokio::spawn(async move {
            let response = request.send().await.expect("sent");
            response.status()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("joined"));
    }
    let accepted = statuses
        .iter()
        .filter(|status| **status == StatusCode::OK)
        .count();
    assert_eq!(accepted, 3, "a cap of 3: {statuses:?}");
}

async fn sign_ups_per_client_address_are_rate_limited(app: TestApp) {
    let (env, clock) = start_on_clock(app, |settings| {
        settings.signup.per_address = RateLimit {
            burst: 2,
            per_minute: 1,
        };
        settings.http.trust_forwarded_for = true;
    })
    .await;
    let from = |address: &'static str, email: &str| {
        let body = serde_json::to_vec(&form(email, PASSWORD)).unwrap();
        let app = &env.app;
        async move {
            app.tb_send(
                Method::POST,
                "/api/noauth/signup",
                &[
                    ("content-type", "application/json"),
                    ("x-forwarded-for", address),
                ],
                Some(body),
            )
            .await
        }
    };
    let a = "198.51.100.1";
    assert_eq!(from(a, "r1@example.com").await.status, StatusCode::OK);
    assert_eq!(from(a, "r2@example.com").await.status, StatusCode::OK);
    let refused = from(a, "r3@example.com").await;
    assert_tb_error(
        refused.status,
        &refused.json(),
        StatusCode::TOO_MANY_REQUESTS,
        33,
        "Too many requests",
    );
    assert!(refused.header("retry-after").is_some());
    // Resends count against the same budget.
    let answer = env
        .app
        .tb_send(
            Method::POST,
            "/api/noauth/resendEmailActivation?email=r1@example.com",
            &[("x-forwarded-for", a)],
            None,
        )
        .await;
    assert_tb_error(
        answer.status,
        &answer.json(),
        StatusCode::TOO_MANY_REQUESTS,
        33,
        "Too many requests",
    );
    // Another client address has its own budget, and is the one the verifier is told.
    let b = "203.0.113.9";
    let answer = from(b, "r3@example.com").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let last = env.captcha.requests().pop().unwrap();
    assert_eq!(last.form.get("remoteip").map(String::as_str), Some(b));
    assert_eq!(
        env.captcha.requests().len(),
        3,
        "refused requests were not verified"
    );
    // A minute gives one back.
    clock.advance(60_000);
    assert_eq!(from(a, "r4@example.com").await.status, StatusCode::OK);
    assert_eq!(
        from(a, "r5@example.com").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The refused sign-up created nothing.
    assert_eq!(from(b, "r5@example.com").await.json(), json!("SUCCESS"));
}

async fn parallel_sign_ups_of_one_address_create_one_account(app: TestApp) {
    let env = start(app, |settings| settings.signup.mails_per_address_hour = 20).await;
    let email = "racer@example.com";
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let request = env
            .app
            .client
            .post(env.app.url("/api/noauth/signup"))
            .json(&form(email, PASSWORD));
        tasks.push(tokio::spawn(async move {
            let response = request.send().await.expect("sent");
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body)
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("joined"));
    }
    let mut outcomes: Vec<String> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, StatusCode::OK, "{body}");
            body.as_str().unwrap().to_owned()
        })
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        vec![
            "INACTIVE_USER_EXISTS",
            "INACTIVE_USER_EXISTS",
            "INACTIVE_USER_EXISTS",
            "INACTIVE_USER_EXISTS",
            "INACTIVE_USER_EXISTS",
            "SUCCESS"
        ],
        "one sign-up created the account"
    );
    // Some mailed code activates it; then no code works any more.
    let mut codes = Vec::new();
    while codes.is_empty() || env.mails_to(email).len() > codes.len() {
        codes.push(env.code(email).await);
        if codes.len() < 6 {
            settle().await;
        }
    }
    let mut activated = 0;
    for code in &codes {
        let (status, _) = env.use_code(code, "").await;
        if status == StatusCode::OK {
            activated += 1;
        }
    }
    assert_eq!(activated, 1, "exactly one activation of {codes:?}");
    env.app.tb_login(email, PASSWORD).await;
}

/// Addresses are taken regardless of case, also when sign-ups race: of parallel sign-ups of
/// one address in different cases, one creates the account. (Several rounds, as the race
/// window is narrow.)
async fn parallel_sign_ups_in_different_cases_create_one_account(app: TestApp) {
    let env = start(app, |settings| settings.signup.mails_per_address_hour = 20).await;
    let mut rounds = Vec::new();
    for round in 0..5 {
        let variants = [
            format!("racer{round}@example.com"),
            format!("Racer{round}@example.com"),
            format!("RACER{round}@example.com"),
            format!("racer{round}@Example.com"),
            format!("rAcEr{round}@example.com"),
            format!("racer{round}@EXAMPLE.COM"),
        ];
        let mut tasks = Vec::new();
        for email in &variants {
            let request = env
                .app
                .client
                .post(env.app.url("/api/noauth/signup"))
                .json(&form(email, PASSWORD));
            tasks.push(tokio::spawn(async move {
                let response = request.send().await.expect("sent");
                let status = response.status();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                (status, body)
            }));
        }
        let mut created = 0;
        for task in tasks {
            let (status, body) = task.await.expect("joined");
            assert_eq!(status, StatusCode::OK, "{body}");
            if body == json!("SUCCESS") {
                created += 1;
            }
        }
        let mut accounts = Vec::new();
        for email in &variants {
            for user in users_named(&env.app, email).await {
                accounts.push(user["username"].as_str().unwrap_or_default().to_owned());
            }
        }
        rounds.push((created, accounts));
    }
    assert!(
        rounds
            .iter()
            .all(|(created, accounts)| *created == 1 && accounts.len() == 1),
        "one account for one address, in every round: {rounds:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// T13, T14, T15: the email code

async fn email_code_link_redirects_without_using_the_code(app: TestApp) {
    let env = start(app, |_| {}).await;
    let app = &env.app;
    let email = "linked@example.com";
    assert_eq!(env.sign_up(email, PASSWORD).await, "SUCCESS");
    let mail = env.smtp.wait_for_mail(email, MAIL_WAIT).await;
    let code = code_from_mail(&mail, &app.base);
    // Following the mailed link as a browser (or a mail scanner) does: a redirect, twice.
    let link = link_in(&mail.text, "/api/noauth/activateEmail?emailCode=").unwrap();
    let path = link.strip_prefix(&app.base).unwrap();
    for _ in 0..2 {
        let answer = app.tb_send(Method::GET, path, &[], None).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
        assert_eq!(
            answer.header("location").as_deref(),
            Some(format!("/signup/emailVerified?emailCode={code}").as_str())
        );
    }
    assert_login_refused(app, email, PASSWORD, NOT_ACTIVE).await;
    // Unknown codes: 409 with an empty body (T13), 400 (T14).
    for unknown in ["abc", &"x".repeat(300), &"A".repeat(10_000), "%00%01%1F"] {
        let answer = env.check_code(unknown, "").await;
        assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.text);
        assert_eq!(answer.text, "");
        let (status, body) = env.use_code(unknown, "").await;
        assert_tb_error(status, &body, StatusCode::BAD_REQUEST, 31, CODE_UNKNOWN);
    }
    // No code at all is a bad request.
    for path in [
        "/api/noauth/activateEmail",
        "/api/noauth/activateByEmailCode",
    ] {
        let method = if path.ends_with("Email") {
            Method::GET
        } else {
            Method::POST
        };
        let (status, body) = app.tb_request(method, path, None, None).await;
        let (code, _) = assert_tb_shape(status, &body, StatusCode::BAD_REQUEST);
        assert_eq!(code, 31);
    }
    // The code works once.
    let (token, _) = env.activate(&code).await;
    assert_eq!(app.tb_me(&token).await["email"], email);
    let (status, body) = env.use_code(&code, "").await;
    assert_tb_error(status, &body, StatusCode::BAD_REQUEST, 31, CODE_UNKNOWN);
    let answer = env.check_code(&code, "").await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    app.tb_login(email, PASSWORD).await;
}

async fn parallel_uses_of_one_email_code_activate_once(app: TestApp) {
    let env = start(app, |_| {}).await;
    let email = "contended@example.com";
    assert_eq!(env.sign_up(email, PASSWORD).await, "SUCCESS");
    let code = env.code(email).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = env.app.client.clone();
        let url = env
            .app
            .url(&format!("/api/noauth/activateByEmailCode?emailCode={code}"));
        tasks.push(tokio::spawn(async move {
            let response = client.post(url).send().await.expect("sent");
            let status = response.status();
            (status, response.text().await.unwrap_or_default())
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        let (status, text) = task.await.expect("joined");
        if status != StatusCode::OK {
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            assert_tb_error(status, &body, StatusCode::BAD_REQUEST, 31, CODE_UNKNOWN);
        }
        statuses.push(status);
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|status| **status == StatusCode::OK)
            .count(),
        1,
        "{statuses:?}"
    );
    env.app.tb_login(email, PASSWORD).await;
}

async fn codes_expire_and_unverified_sign_ups_are_purged(app: TestApp) {
    let (env, clock) = start_on_clock(app, |_| {}).await;
    let app = &env.app;
    assert_eq!(env.sign_up("late@example.com", PASSWORD).await, "SUCCESS");
    assert_eq!(env.sign_up("never@example.com", PASSWORD).await, "SUCCESS");
    let late = env.code("late@example.com").await;
    let never = env.code("never@example.com").await;
    // A day later the codes have expired.
    clock.advance(24 * HOUR_MS + 1_000);
    let answer = env.check_code(&late, "").await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    assert_eq!(
        answer.header("location").as_deref(),
        Some("/signup/emailVerificationExpired")
    );
    let (status, body) = env.use_code(&late, "").await;
    assert_tb_error(status, &body, StatusCode::BAD_REQUEST, 31, CODE_EXPIRED);
    assert_login_refused(app, "late@example.com", PASSWORD, NOT_ACTIVE).await;
    // A resend brings a fresh code.
    env.resend("email=late@example.com").await;
    let fresh = env.code("late@example.com").await;
    let answer = env.check_code(&fresh, "").await;
    assert_eq!(
        answer.header("location").as_deref(),
        Some(format!("/signup/emailVerified?emailCode={fresh}").as_str())
    );
    env.activate(&fresh).await;
    // A sign-up renewed later keeps its place longer.
    assert_eq!(
        env.sign_up("renewed@example.com", PASSWORD).await,
        "SUCCESS"
    );
    env.code("renewed@example.com").await;
    clock.advance(40 * HOUR_MS);
    assert_eq!(
        env.sign_up("renewed@example.com", PASSWORD).await,
        "INACTIVE_USER_EXISTS"
    );
    env.code("renewed@example.com").await;
    // 72 hours after it signed up, the unverified account is deleted by the next sign-up.
    clock.advance(8 * HOUR_MS);
    assert_eq!(
        env.sign_up("trigger@example.com", PASSWORD).await,
        "SUCCESS"
    );
    let (status, body) = env.use_code(&never, "").await;
    assert_tb_error(status, &body, StatusCode::BAD_REQUEST, 31, CODE_UNKNOWN);
    assert_login_refused(app, "never@example.com", PASSWORD, BAD_CREDENTIALS).await;
    assert_eq!(env.sign_up("never@example.com", PASSWORD).await, "SUCCESS");
    // The verified and the renewed accounts stay.
    app.tb_login("late@example.com", PASSWORD).await;
    assert_eq!(
        env.sign_up("renewed@example.com", PASSWORD).await,
        "INACTIVE_USER_EXISTS"
    );
}

async fn resend_mails_new_codes_only_to_pending_sign_ups(app: TestApp) {
    let (env, clock) = start_on_clock(app, |_| {}).await;
    let app = &env.app;
    // Unknown, malformed and non-pending addresses: 200 and nothing mailed.
    let sys = sysadmin(app).await;
    let tenant = uuid::Uuid::new_v4().to_string();
    app.tb_new_user(
        &sys,
        tenant_admin_body("admin.made@example.com", &tenant),
        "made-pass-1",
    )
    .await;
    env.resend("email=nobody@example.com").await;
    env.resend("email=not-an-email").await;
    env.resend("email=admin.made@example.com").await;
    env.resend("email=%0A%00").await;
    let (status, body) = app
        .tb_request(
            Method::POST,
            "/api/noauth/resendEmailActivation",
            None,
            None,
        )
        .await;
    let (code, _) = assert_tb_shape(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(code, 31);
    // A pending sign-up gets a new code per resend, up to 3 mails an hour.
    let email = "pending@example.com";
    assert_eq!(env.sign_up(email, PASSWORD).await, "SUCCESS");
    let first = env.code(email).await;
    env.resend(&format!("email={email}")).await;
    let second = env.code(email).await;
    env.resend(&format!("email=%20{email}%20")).await;
    let third = env.code(email).await;
    assert!(first != second && second != third && first != third);
    env.resend(&format!("email={email}")).await;
    env.resend(&format!("email={email}")).await;
    settle().await;
    assert_eq!(env.mails_to(email).len(), 3, "capped silently");
    // Older codes stay valid.
    for code in [&first, &second, &third] {
        let answer = env.check_code(code, "").await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
        assert_eq!(
            answer.header("location").as_deref(),
            Some(format!("/signup/emailVerified?emailCode={code}").as_str())
        );
    }
    // An hour later mails flow again.
    clock.advance(HOUR_MS);
    env.resend(&format!("email={email}")).await;
    let fourth = env.code(email).await;
    // Using one code voids the others.
    env.activate(&first).await;
    for code in [&second, &third, &fourth] {
        let (status, body) = env.use_code(code, "").await;
        assert_tb_error(status, &body, StatusCode::BAD_REQUEST, 31, CODE_UNKNOWN);
    }
    // Verified: resends mail nothing more.
    env.resend(&format!("email={email}")).await;
    settle().await;
    assert_eq!(env.mails_to(email).len(), 4);
    for quiet in [
        "nobody@example.com",
        "admin.made@example.com",
        "not-an-email",
    ] {
        assert!(env.mails_to(quiet).is_empty(), "{quiet}");
    }
}

/// The mail budget of an address (3 an hour) is for mails sent: resends for an address that
/// has no pending sign-up mail nothing, so they must not spend it. Otherwise three anonymous
/// requests keep an address's verification mail from being sent for an hour.
async fn resends_that_mail_nothing_spend_no_mail_budget(app: TestApp) {
    let env = start(app, |_| {}).await;
    let email = "victim@example.com";
    for _ in 0..3 {
        env.resend(&format!("email={email}")).await;
    }
    settle().await;
    assert!(env.mails_to(email).is_empty());
    assert_eq!(env.sign_up(email, PASSWORD).await, "SUCCESS");
    let mail = env.smtp.wait_for_mail(email, Duration::from_secs(5)).await;
    let code = code_from_mail(&mail, &env.app.base);
    env.activate(&code).await;
}

/// Sign-up treats an address in another case as the same address; so must the resend, or a
/// visitor who types its address differently never gets the code it asks for.
async fn resend_finds_a_pending_sign_up_in_another_case(app: TestApp) {
    let env = start(app, |_| {}).await;
    let email = "dave@example.com";
    assert_eq!(env.sign_up(email, PASSWORD).await, "SUCCESS");
    env.code(email).await;
    env.resend("email=DAVE@Example.com").await;
    settle().await;
    let mails = env.mails_to(email);
    assert_eq!(mails.len(), 2, "a new code for the resend: {mails:?}");
    assert_eq!(mails[1].to, email, "the address of record");
    let code = code_from_mail(&mails[1], &env.app.base);
    env.activate(&code).await;
}

// ---------------------------------------------------------------------------------------------
// Mobile applications

async fn mobile_applications_get_links_into_the_app(app: TestApp) {
    const PUBLIC: &str = "https://iot.example.com";
    const PKG: &str = "org.example.iot";
    let (env, clock) = start_on_clock(app, |settings| {
        settings.http.public_url = Some(PUBLIC.to_owned());
        settings.signup.mobile_apps = vec![MobileAppConfig {
            package: PKG.to_owned(),
            secret: "app-secret-1".to_owned(),
            callback_scheme: "exampleiot".to_owned(),
        }];
    })
    .await;
    let app = &env.app;
    let email = "mobile@example.com";
    let mobile = |secret: &str| {
        let mut body = form(email, PASSWORD);
        body["pkgName"] = json!(PKG);
        body["appSecret"] = json!(secret);
        body["platform"] = json!("ANDROID");
        body
    };
    let (status, body) = env.sign_up_with(mobile("wrong-secret")).await;
    let (code, _) = assert_tb_shape(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(code, 31);
    let (status, body) = env.sign_up_with(mobile("app-secret-1")).await;
    assert_eq!((status, body), (StatusCode::OK, json!("SUCCESS")));
    let mail = env.smtp.wait_for_mail(email, MAIL_WAIT).await;
    let code = code_from_mail(&mail, PUBLIC);
    let link = link_in(&mail.text, "/api/noauth/activateEmail?emailCode=").unwrap();
    assert_eq!(
        link,
        format!("{PUBLIC}/api/noauth/activateEmail?emailCode={code}&pkgName={PKG}")
    );
    // The link leads into the app; without pkgName to the web page.
    let answer = env.check_code(&code, &format!("&pkgName={PKG}")).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    assert_eq!(
        answer.header("location").as_deref(),
        Some(format!("exampleiot://auth/signup/emailVerified?emailCode={code}").as_str())
    );
    let answer = env.check_code(&code, "").await;
    assert_eq!(
        answer.header("location").as_deref(),
        Some(format!("/signup/emailVerified?emailCode={code}").as_str())
    );
    let answer = env.check_code(&code, "&pkgName=org.example.other").await;
    let (status, body) = (answer.status, answer.json());
    let (error, _) = assert_tb_shape(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(error, 31);
    // T16: the app's login page.
    let answer = app
        .tb_send(
            Method::GET,
            &format!("/api/noauth/login?pkgName={PKG}&platform=ANDROID"),
            &[],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.text);
    assert_eq!(
        answer.header("location").as_deref(),
        Some("exampleiot://auth/login")
    );
    for path in [
        "/api/noauth/login?pkgName=org.example.other",
        "/api/noauth/login",
    ] {
        let (status, body) = app.tb_request(Method::GET, path, None, None).await;
        let (error, _) = assert_tb_shape(status, &body, StatusCode::BAD_REQUEST);
        assert_eq!(error, 31, "{path}");
    }
    // Expired, the link leads to the app's expiry page.
    clock.advance(24 * HOUR_MS + 1_000);
    let answer = env.check_code(&code, &format!("&pkgName={PKG}")).await;
    assert_eq!(
        answer.header("location").as_deref(),
        Some("exampleiot://auth/signup/emailVerificationExpired")
    );
    // A resend from the app mails a link into the app again.
    let (status, body) = app
        .tb_request(
            Method::POST,
            &format!("/api/noauth/resendEmailActivation?email={email}&pkgName=org.example.other"),
            None,
            None,
        )
        .await;
    let (error, _) = assert_tb_shape(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(error, 31);
    env.resend(&format!("email={email}&pkgName={PKG}&platform=IOS"))
        .await;
    let mail = env.smtp.wait_for_mail(email, MAIL_WAIT).await;
    let fresh = code_from_mail(&mail, PUBLIC);
    assert!(
        mail.text
            .contains(&format!("emailCode={fresh}&pkgName={PKG}")),
        "{:?}",
        mail.text
    );
    let (status, body) = env.use_code(&fresh, "&pkgName=org.example.other").await;
    let (error, _) = assert_tb_shape(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(error, 31);
    let (status, body) = env.use_code(&fresh, &format!("&pkgName={PKG}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.tb_login(email, PASSWORD).await;
}

// ---------------------------------------------------------------------------------------------
// T19, T20: the privacy policy

async fn privacy_policy_gates_the_api_until_accepted(app: TestApp) {
    let env = start(app, |_| {}).await;
    let app = &env.app;
    let email = "careful.reader@example.com";
    let (token, refresh) = env.activated(email, PASSWORD).await;
    let id = my_id(app, &token).await;
    assert_eq!(policy_accepted(app, &token).await, json!(false));
    // Everything else is refused with 403 code 20.
    let refused: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/api/apiKey".to_owned(),
            Some(json!({"userId": tb_id("USER", &id), "description": "k"})),
        ),
        (Method::GET, "/api/2fa/account/settings".to_owned(), None),
        (
            Method::POST,
            "/api/user".to_owned(),
            Some(json!({"email": "helper@example.com", "authority": "TENANT_ADMIN"})),
        ),
        (Method::GET, format!("/api/user/{id}"), None),
        (
            Method::POST,
            "/api/auth/changePassword".to_owned(),
            Some(json!({"currentPassword": PASSWORD, "newPassword": "changed-pass-1"})),
        ),
    ];
    for (method, path, body) in &refused {
        let (status, answer) = app
            .tb_request(method.clone(), path, Some(&bearer(&token)), body.clone())
            .await;
        assert_tb_error(status, &answer, StatusCode::FORBIDDEN, 20, POLICY_PENDING);
    }
    // Connectware refuses the same tokens.
    let (status, body) = app.get("/api/session", &token).await;
    let message = assert_error(status, &body, StatusCode::FORBIDDEN);
    assert!(message.contains("privacy policy"), "{message}");
    // Its own user, logout, T19 and T20 are allowed.
    assert_eq!(app.tb_me(&token).await["email"], email);
    let (other, _) = app.tb_login(email, PASSWORD).await;
    let (status, body) = app
        .tb_request(
            Method::POST,
            "/api/auth/logout",
            Some(&bearer(&other)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_token_dead(app, &other).await;
    let (accepted, _) = accept_policy(app, &token).await;
    // The old pair's session ended.
    assert_token_dead(app, &token).await;
    let (status, _) = app
        .tb_request(
            Method::POST,
            "/api/auth/token",
            None,
            Some(json!({"refreshToken": refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(policy_accepted(app, &accepted).await, json!(true));
    for (method, path, body) in refused.into_iter().take(2) {
        let (status, answer) = app
            .tb_request(method, &path, Some(&bearer(&accepted)), body)
            .await;
        assert_eq!(status, StatusCode::OK, "{path}: {answer}");
    }
    let (status, body) = app.get("/api/session", &accepted).await;
    assert!(
        !body.to_string().contains("privacy policy"),
        "{status} {body}"
    );
    // Accepting again is harmless; a fresh login is accepted too.
    let (again, _) = accept_policy(app, &accepted).await;
    assert_eq!(policy_accepted(app, &again).await, json!(true));
    let (login, _) = app.tb_login(email, PASSWORD).await;
    assert_eq!(policy_accepted(app, &login).await, json!(true));
    own_api_key(app, &login).await;
}

async fn privacy_policy_acceptance_can_be_off(app: TestApp) {
    let env = start(app, |settings| {
        settings.signup.privacy_policy_required = false;
    })
    .await;
    let app = &env.app;
    let (token, _) = env.activated("relaxed@example.com", PASSWORD).await;
    let key = own_api_key(app, &token).await;
    assert_eq!(me_by_key(app, &key).await, StatusCode::OK);
    let (status, body) = app.tb_get("/api/2fa/account/settings", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.get("/api/session", &token).await;
    assert!(
        !body.to_string().contains("privacy policy"),
        "{status} {body}"
    );
}

/// T19 answers a token pair to any caller, also to one that authenticated with an API key. Such
/// a pair must not outlive the key: whoever holds a key that is later deleted (or expires)
/// must not keep a refreshable session. (With sign-up off, as `/api/signup/*` stays served.)
async fn accepting_the_privacy_policy_mints_no_pair_outliving_an_api_key(app: TestApp) {
    let sys = sysadmin(&app).await;
    let id = my_id(&app, &sys).await;
    let (status, key) = app
        .tb_post(
            "/api/apiKey",
            &sys,
            json!({"userId": tb_id("USER", &id), "description": "short-lived"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "create key: {key}");
    let value = key["value"].as_str().expect("key value").to_owned();
    let key_id = key["id"]["id"].as_str().expect("key id").to_owned();
    let (status, body) = app
        .tb_request(
            Method::POST,
            "/api/signup/acceptPrivacyPolicy",
            Some(&format!("ApiKey {value}")),
            None,
        )
        .await;
    if status != StatusCode::OK {
        assert_tb_shape(status, &body, status);
        assert!(status.is_client_error(), "{status} {body}");
        return;
    }
    let (minted, minted_refresh) = tb_pair(&body);
    // The key is deleted: everything it opened must end with it.
    let (status, body) = app
        .tb_request(
            Method::DELETE,
            &format!("/api/apiKey/{key_id}"),
            Some(&bearer(&sys)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "delete key: {body}");
    assert_eq!(me_by_key(&app, &value).await, StatusCode::UNAUTHORIZED);
    let (access, _) = app.tb_get("/api/auth/user", &minted).await;
    let (refresh, _) = app
        .tb_request(
            Method::POST,
            "/api/auth/token",
            None,
            Some(json!({"refreshToken": minted_refresh})),
        )
        .await;
    assert_eq!(
        (access, refresh),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED),
        "the pair T19 minted from an API key outlives the deleted key"
    );
}

/// Until the privacy policy is accepted, a signed-up account may use nothing but the sign-up
/// endpoints: the broker hooks must not let it connect either, with its password or its token.
async fn mqtt_connections_wait_for_the_privacy_policy(app: TestApp) {
    let env = start(app, |_| {}).await;
    let app = &env.app;
    let email = "mqtt.reader@example.com";
    let (token, _) = env.activated(email, PASSWORD).await;
    let mut allowed = Vec::new();
    for (what, password) in [("password", PASSWORD), ("token", token.as_str())] {
        let answer = app
            .tb_send(
                Method::POST,
                "/api/broker/emqx/authn",
                &[("content-type", "application/json")],
                Some(
                    serde_json::to_vec(&json!({"username": email, "password": password,
                                               "clientid": "c-1"}))
                    .unwrap(),
                ),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{what}: {}", answer.text);
        if answer.json()["result"] != "deny" {
            allowed.push((what, answer.text));
        }
    }
    assert!(
        allowed.is_empty(),
        "MQTT connects before the privacy policy is accepted: {allowed:?}"
    );
    // Once accepted, it connects like any user.
    accept_policy(app, &token).await;
    let answer = app
        .tb_send(
            Method::POST,
            "/api/broker/emqx/authn",
            &[("content-type", "application/json")],
            Some(
                serde_json::to_vec(&json!({"username": email, "password": PASSWORD,
                                           "clientid": "c-1"}))
                .unwrap(),
            ),
        )
        .await;
    assert_eq!(answer.json()["result"], "allow", "{}", answer.text);
}

/// A client certificate `CN=<common_name>` (PEM) and its key (PKCS#8 PEM), issued by a new CA
/// whose certificate (PEM) comes first.
fn certificate_chain(common_name: &str) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Sign-up test CA");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(1));
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_pem = ca.self_signed(&ca_key).expect("self-signed CA").pem();
    let key = rcgen::KeyPair::generate().expect("leaf key");
    let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).expect("leaf params");
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    leaf.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let leaf_pem = leaf.signed_by(&key, &issuer).expect("signed leaf").pem();
    (ca_pem, leaf_pem, key.serialize_pem())
}

/// The Connectware dialect refuses a signed-up account's token until the privacy policy is
/// accepted; a client certificate of the same account (HTTPS listener) must be refused too.
async fn client_certificates_wait_for_the_privacy_policy(app: TestApp) {
    let env = start(app, |settings| {
        settings.tls.listen = Some("127.0.0.1:0".parse().expect("loopback address"));
        settings.tls.trust_refresh_secs = 0;
    })
    .await;
    let app = &env.app;
    let email = "cert.owner@example.com";
    let (token, _) = env.activated(email, PASSWORD).await;
    // The administrator lets the account use a certificate and read its session.
    let id = user_id_of(app, email).await;
    let (status, body) = app
        .put(
            &format!("/api/users/{id}"),
            &app.admin_token,
            json!({
                "grantTypes": [{"method": "password", "isRequired": false},
                               {"method": "certificate", "isRequired": false}],
                "permissions": [{"resource": "/api/session", "operation": "read",
                                 "context": "http"}],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (ca, leaf, key) = certificate_chain(email);
    let (status, body) = app
        .post("/api/certificates", &app.admin_token, json!(ca))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The token is refused, as the privacy policy is pending.
    let (status, body) = app.get("/api/session", &token).await;
    let message = assert_error(status, &body, StatusCode::FORBIDDEN);
    assert!(message.contains("privacy policy"), "{message}");
    // The certificate must be too.
    let response = app
        .https_client(Some((&leaf, &key)))
        .get(app.tls_url("/api/session"))
        .send()
        .await
        .expect("HTTPS");
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a client certificate passes the privacy-policy gate: {text}"
    );
    assert!(text.contains("privacy policy"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// T21: deleting a signed-up account

/// `before` and `after` differ only in what the test says; the differing tables and rows are
/// printed otherwise.
fn assert_same_content(before: &Dump, after: &Dump) {
    let mut differences = Vec::new();
    for table in before.keys().chain(after.keys()) {
        let (old, new) = (before.get(table), after.get(table));
        if old != new {
            let old = old.cloned().unwrap_or_default();
            let new = new.cloned().unwrap_or_default();
            let gone: Vec<&String> = old.iter().filter(|row| !new.contains(row)).collect();
            let added: Vec<&String> = new.iter().filter(|row| !old.contains(row)).collect();
            differences.push(format!("{table}: gone {gone:#?}, added {added:#?}"));
        }
    }
    differences.dedup();
    assert!(
        differences.is_empty(),
        "the database differs:\n{}",
        differences.join("\n")
    );
}

async fn deleting_a_signed_up_tenant_removes_exactly_that_tenant(app: TestApp) {
    let env = start(app, |_| {}).await;
    let app = &env.app;
    // What exists before: the admin, another tenant with its administrator and key, another
    // signed-up account.
    let sys = sysadmin(app).await;
    let other_tenant = uuid::Uuid::new_v4().to_string();
    let (_, other, _) = app
        .tb_new_user(
            &sys,
            tenant_admin_body("other.tenant@example.com", &other_tenant),
            "other-pass-1",
        )
        .await;
    let other_key = own_api_key(app, &other).await;
    let (neighbour, _) = env.account("neighbour@example.com", PASSWORD).await;
    let neighbour_key = own_api_key(app, &neighbour).await;
    let before = dump(app).await;

    // The owner signs up and fills its tenant.
    let (owner, _) = env.account("owner@example.com", PASSWORD).await;
    let owner_me = app.tb_me(&owner).await;
    let tenant = owner_me["tenantId"]["id"].as_str().unwrap().to_owned();
    let owner_key = own_api_key(app, &owner).await;
    let (owner_login, _) = app.tb_login("owner@example.com", PASSWORD).await;
    // A second tenant administrator and a customer user, created by the owner.
    let (member_id, member, _) = app
        .tb_new_user(
            &owner,
            json!({"email": "member@example.com", "authority": "TENANT_ADMIN"}),
            "member-pass-1",
        )
        .await;
    let member_me = app.tb_me(&member).await;
    assert_eq!(member_me["tenantId"]["id"], tenant.as_str());
    let member_key = own_api_key(app, &member).await;
    let customer = uuid::Uuid::new_v4().to_string();
    let (_, customer_user, _) = app
        .tb_new_user(
            &owner,
            json!({"email": "customer.user@example.com", "authority": "CUSTOMER_USER",
                   "customerId": tb_id("CUSTOMER", &customer)}),
            "customer-pass-1",
        )
        .await;
    // The member enrols TOTP and backup codes.
    let (status, config) = app
        .tb_post(
            "/api/2fa/account/config/generate?providerType=TOTP",
            &member,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{config}");
    let secret = secret_of(config["authUrl"].as_str().unwrap());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (status, body) = app
        .tb_post(
            &format!(
                "/api/2fa/account/config?verificationCode={}",
                code_at(&secret, now)
            ),
            &member,
            config,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, codes) = app
        .tb_post(
            "/api/2fa/account/config/generate?providerType=BACKUP_CODE",
            &member,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{codes}");
    let (status, body) = app.tb_post("/api/2fa/account/config", &member, codes).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // An OAuth2 client of the tenant.
    let (status, client) = app
        .tb_post(
            "/api/oauth2/client",
            &owner,
            json!({
                "title": "Tenant SSO", "clientId": "cid", "clientSecret": "csecret",
                "authorizationUri": "https://sso.example.com/auth",
                "accessTokenUri": "https://sso.example.com/token",
                "scope": ["openid", "email"], "userNameAttributeName": "email",
                "clientAuthenticationMethod": "BASIC", "loginButtonLabel": "SSO",
                "mapperConfig": {"type": "BASIC", "allowUserCreation": true, "activateUser": false,
                    "basic": {"emailAttributeKey": "email", "tenantNameStrategy": "DOMAIN"}}
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{client}");
    let client_id = client["id"]["id"].as_str().unwrap().to_owned();
    // Users the owner created cannot delete the tenant: they did not sign up.
    for token in [&member, &customer_user] {
        let (status, body) = delete_account(
            app,
            Method::DELETE,
            &bearer(token),
            Some(json!({"password": "member-pass-1"})),
        )
        .await;
        assert_tb_shape(status, &body, StatusCode::FORBIDDEN);
        assert_eq!(body["errorCode"], 20, "{body}");
    }
    assert_ne!(dump(app).await, before);

    // The owner deletes the account (a fresh session: no password needed).
    let (status, body) = delete_account(
        app,
        Method::DELETE,
        &bearer(&owner),
        Some(json!({"reason": "Just testing", "additionalNotes": "bye"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, Value::Null, "an empty body");

    // Everything of the tenant is gone: tokens, sessions, keys, logins, the client.
    for token in [&owner, &owner_login, &member, &customer_user] {
        assert_token_dead(app, token).await;
    }
    for key in [&owner_key, &member_key] {
        assert_eq!(me_by_key(app, key).await, StatusCode::UNAUTHORIZED);
    }
    for (login, password) in [
        ("owner@example.com", PASSWORD),
        ("member@example.com", "member-pass-1"),
        ("customer.user@example.com", "customer-pass-1"),
    ] {
        assert_login_refused(app, login, password, BAD_CREDENTIALS).await;
    }
    let (status, body) = app
        .tb_get(&format!("/api/oauth2/client/{client_id}"), &sys)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = app.tb_get(&format!("/api/user/{member_id}"), &sys).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // Everyone else is untouched.
    app.tb_me(&sys).await;
    app.tb_me(&other).await;
    app.tb_me(&neighbour).await;
    assert_eq!(me_by_key(app, &other_key).await, StatusCode::OK);
    assert_eq!(me_by_key(app, &neighbour_key).await, StatusCode::OK);
    // The database holds exactly what it held before the sign-up, but for the change counters
    // of the caches, which count every change on the way.
    let (mut before, mut after) = (before, dump(app).await);
    let counters = (
        before.remove("change_counters"),
        after.remove("change_counters"),
    );
    assert_ne!(counters.0, counters.1, "the changes were counted");
    assert_same_content(&before, &after);
    // The address is free again.
    assert_eq!(env.sign_up("owner@example.com", PASSWORD).await, "SUCCESS");
}

async fn deletion_needs_reauthentication(app: TestApp) {
    let (env, clock) = start_on_clock(app, |_| {}).await;
    let app = &env.app;
    env.account("patient@example.com", PASSWORD).await;
    env.account("quick@example.com", PASSWORD).await;
    let (login, refresh) = app.tb_login("patient@example.com", PASSWORD).await;
    let key = own_api_key(app, &login).await;
    // More than 300 s after the login, the session no longer proves who calls.
    clock.advance(301_000);
    for body in [None, Some(json!({})), Some(json!({"reason": "bye"}))] {
        for method in [Method::DELETE, Method::POST] {
            let (status, answer) =
                delete_account(app, method.clone(), &bearer(&login), body.clone()).await;
            assert_tb_shape(status, &answer, StatusCode::FORBIDDEN);
            assert_eq!(answer["errorCode"], 20, "{method} {body:?}: {answer}");
        }
    }
    // A refresh keeps the session: no fresher.
    let (status, refreshed) = app
        .tb_request(
            Method::POST,
            "/api/auth/token",
            None,
            Some(json!({"refreshToken": refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let (refreshed, _) = tb_pair(&refreshed);
    let (status, answer) = delete_account(app, Method::DELETE, &bearer(&refreshed), None).await;
    assert_tb_shape(status, &answer, StatusCode::FORBIDDEN);
    // An API key has no session at all.
    let by_key = format!("ApiKey {key}");
    let (status, answer) = delete_account(app, Method::DELETE, &by_key, None).await;
    assert_tb_shape(status, &answer, StatusCode::FORBIDDEN);
    // A wrong password is 400; malformed bodies are 400.
    for auth in [bearer(&refreshed), by_key.clone()] {
        let (status, answer) = delete_account(
            app,
            Method::DELETE,
            &auth,
            Some(json!({"password": "not-my-password"})),
        )
        .await;
        assert_tb_error(status, &answer, StatusCode::BAD_REQUEST, 31, WRONG_PASSWORD);
    }
    let (status, answer) = delete_account(
        app,
        Method::DELETE,
        &bearer(&refreshed),
        Some(json!({"password": ""})),
    )
    .await;
    assert_tb_error(status, &answer, StatusCode::BAD_REQUEST, 31, WRONG_PASSWORD);
    // Guesses share the account's login budget (10 failures, then 2 a minute): a stolen
    // session cannot try passwords here faster than at the login.
    for _ in 0..8 {
        let (status, answer) = delete_account(
            app,
            Method::DELETE,
            &bearer(&refreshed),
            Some(json!({"password": "still-guessing"})),
        )
        .await;
        assert_tb_error(status, &answer, StatusCode::BAD_REQUEST, 31, WRONG_PASSWORD);
    }
    for guess in ["one-more-guess", PASSWORD] {
        let (status, answer) = delete_account(
            app,
            Method::DELETE,
            &bearer(&refreshed),
            Some(json!({"password": guess})),
        )
        .await;
        assert_tb_error(
            status,
            &answer,
            StatusCode::TOO_MANY_REQUESTS,
            33,
            "Too many requests",
        );
    }
    // It is the login's budget: the login waits too.
    let (status, answer) = app.tb_try_login("patient@example.com", PASSWORD).await;
    let (code, _) = assert_tb_shape(status, &answer, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(code, 33, "{answer}");
    clock.advance(60_000);
    for raw in [&b"[1]"[..], b"{\"password\": 5}", b"not json", b"\"x\""] {
        let answer = app
            .tb_send(
                Method::DELETE,
                "/api/signup/tenantAccount",
                &[
                    ("x-authorization", &bearer(&refreshed)),
                    ("content-type", "application/json"),
                ],
                Some(raw.to_vec()),
            )
            .await;
        let (code, _) = assert_tb_shape(answer.status, &answer.json(), StatusCode::BAD_REQUEST);
        assert_eq!(code, 31, "{}", String::from_utf8_lossy(raw));
    }
    app.tb_me(&refreshed).await;
    // With the password it goes (POST, as ThingsBoard 4.4's client sends it), with the key too.
    let (status, answer) = delete_account(
        app,
        Method::POST,
        &by_key,
        Some(json!({"password": PASSWORD, "reason": "done"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_token_dead(app, &refreshed).await;
    assert_login_refused(app, "patient@example.com", PASSWORD, BAD_CREDENTIALS).await;
    // A login within the window needs no password.
    let (fresh, _) = app.tb_login("quick@example.com", PASSWORD).await;
    clock.advance(299_000);
    let (status, answer) = delete_account(app, Method::DELETE, &bearer(&fresh), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_login_refused(app, "quick@example.com", PASSWORD, BAD_CREDENTIALS).await;
}

/// T19 answers a new pair whose session is new: it must not count as the recent login that
/// spares the password. Otherwise whoever holds an old access token, or an API key (which has
/// no session at all), mints a "fresh" session and deletes the tenant without the password.
async fn accepting_the_privacy_policy_is_no_reauthentication(app: TestApp) {
    let (env, clock) = start_on_clock(app, |_| {}).await;
    let app = &env.app;
    env.account("stolen.token@example.com", PASSWORD).await;
    let (old, _) = app.tb_login("stolen.token@example.com", PASSWORD).await;
    let (keyed, _) = env.account("leaked.key@example.com", PASSWORD).await;
    let key = format!("ApiKey {}", own_api_key(app, &keyed).await);
    clock.advance(600_000);
    for auth in [bearer(&old), key.clone()] {
        let (status, answer) = delete_account(app, Method::DELETE, &auth, None).await;
        assert_tb_shape(status, &answer, StatusCode::FORBIDDEN);
    }
    // An API key gets no pair from T19 at all: a pair would outlive the key.
    let (status, body) = app
        .tb_request(
            Method::POST,
            "/api/signup/acceptPrivacyPolicy",
            Some(&key),
            None,
        )
        .await;
    assert_tb_shape(status, &body, StatusCode::FORBIDDEN);
    // The policy was accepted long ago; T19 answers a pair for the old token, whose session
    // continues the old login: no fresh login to delete the account with.
    let (status, body) = app
        .tb_request(
            Method::POST,
            "/api/signup/acceptPrivacyPolicy",
            Some(&bearer(&old)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (minted, _) = tb_pair(&body);
    let (status, answer) = delete_account(app, Method::DELETE, &bearer(&minted), None).await;
    assert_tb_shape(status, &answer, StatusCode::FORBIDDEN);
    for login in ["stolen.token@example.com", "leaked.key@example.com"] {
        assert_eq!(
            app.tb_try_login(login, PASSWORD).await.0,
            StatusCode::OK,
            "{login} was deleted without re-authentication"
        );
    }
}

async fn customer_sign_ups_join_the_configured_tenant_and_delete_only_their_customer(app: TestApp) {
    let tenant = uuid::Uuid::new_v4();
    let env = start(app, move |settings| {
        settings.signup.account = AccountKind::Customer;
        settings.signup.tenant_id = Some(tenant);
    })
    .await;
    let app = &env.app;
    let tenant = tenant.to_string();
    let sys = sysadmin(app).await;
    let (_, tenant_admin, _) = app
        .tb_new_user(
            &sys,
            tenant_admin_body("tenant.admin@example.com", &tenant),
            "tenant-pass-1",
        )
        .await;
    let (alice, _) = env.account("alice@example.com", PASSWORD).await;
    let (bob, _) = env.account("bob@example.com", PASSWORD).await;
    let alice_me = app.tb_me(&alice).await;
    let bob_me = app.tb_me(&bob).await;
    for me in [&alice_me, &bob_me] {
        assert_eq!(me["authority"], "CUSTOMER_USER", "{me}");
        assert_eq!(me["tenantId"]["id"], tenant.as_str(), "{me}");
        assert_ne!(me["customerId"]["id"], TB_NULL_UUID, "{me}");
    }
    let alice_customer = alice_me["customerId"]["id"].as_str().unwrap().to_owned();
    assert_ne!(
        alice_me["customerId"], bob_me["customerId"],
        "a customer each"
    );
    assert_eq!(jwt_claims(&alice)["scopes"], json!(["CUSTOMER_USER"]));
    // The tenant's administrator adds a colleague to Alice's customer.
    app.tb_new_user(
        &tenant_admin,
        json!({"email": "colleague@example.com", "authority": "CUSTOMER_USER",
               "customerId": tb_id("CUSTOMER", &alice_customer)}),
        "colleague-pass-1",
    )
    .await;
    // The tenant's administrator did not sign up: it cannot delete anything this way.
    let (status, body) = delete_account(
        app,
        Method::DELETE,
        &bearer(&tenant_admin),
        Some(json!({"password": "tenant-pass-1"})),
    )
    .await;
    assert_tb_shape(status, &body, StatusCode::FORBIDDEN);
    assert_eq!(body["errorCode"], 20);
    // Alice deletes her customer: her and her colleague, nobody else.
    let (status, body) = delete_account(
        app,
        Method::POST,
        &bearer(&alice),
        Some(json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_token_dead(app, &alice).await;
    assert_login_refused(app, "alice@example.com", PASSWORD, BAD_CREDENTIALS).await;
    assert_login_refused(
        app,
        "colleague@example.com",
        "colleague-pass-1",
        BAD_CREDENTIALS,
    )
    .await;
    app.tb_me(&bob).await;
    app.tb_me(&tenant_admin).await;
    app.tb_login("tenant.admin@example.com", "tenant-pass-1")
        .await;
    app.tb_login("bob@example.com", PASSWORD).await;
}

/// ThingsBoard's null tenant (`13814000-…`, not the nil UUID) holds every user created outside
/// a tenancy. Customer sign-ups there would escape the privacy-policy gate (which skips users
/// of the null tenant) and could never be deleted: the configuration must be refused.
async fn customer_sign_ups_never_go_to_the_null_tenant(app: TestApp) {
    let mut settings = app.settings.clone();
    settings.signup.enabled = true;
    settings.signup.captcha.site_key = SITE_KEY.to_owned();
    settings.signup.captcha.secret_key = Some(SECRET.to_owned());
    settings.mail = common::smtp::mail_settings(25);
    settings.signup.account = AccountKind::Customer;
    settings.signup.tenant_id = Some(TB_NULL_UUID.parse().expect("a UUID"));
    match gatehouse::startup::Application::build(&settings).await {
        Ok(_) => panic!("started with customer sign-ups in the null tenant"),
        Err(error) => assert!(error.to_string().contains("signup.tenant_id"), "{error}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile input

/// Asserts a client error in ThingsBoard's shape (never a 5xx).
fn assert_refused(what: &str, answer: &RawAnswer) {
    assert!(
        answer.status.is_client_error(),
        "{what}: {} {}",
        answer.status,
        answer.text
    );
    let body = answer.json();
    let (code, _) = assert_tb_shape(answer.status, &body, answer.status);
    assert!([31, 32, 33].contains(&code), "{what}: {body}");
}

async fn hostile_sign_up_input_is_refused_in_thingsboards_shape(app: TestApp) {
    let env = start(app, |_| {}).await;
    let app = &env.app;
    let post = |body: Vec<u8>| async move {
        app.tb_send(
            Method::POST,
            "/api/noauth/signup",
            &[("content-type", "application/json")],
            Some(body),
        )
        .await
    };
    let email = "hostile@example.com";
    let json_bodies: Vec<(&str, Value)> = vec![
        ("array", json!([form(email, PASSWORD)])),
        ("string", json!("SUCCESS")),
        ("number", json!(1)),
        ("null", Value::Null),
        (
            "email of a wrong type",
            json!({"email": 5, "password": PASSWORD, "recaptchaResponse": "human"}),
        ),
        (
            "fields of a wrong type",
            json!({"fields": [1, 2], "recaptchaResponse": "human"}),
        ),
        (
            "field value of a wrong type",
            json!({"fields": {"EMAIL": {"a": 1}}, "recaptchaResponse": "human"}),
        ),
        (
            "too many fields",
            json!({"fields": (0..40).map(|n| (format!("F{n}"), json!("x"))).collect::<serde_json::Map<_, _>>(),
                   "recaptchaResponse": "human"}),
        ),
        (
            "a long address field",
            json!({"fields": {"EMAIL": email, "PASSWORD": PASSWORD, "CITY": "x".repeat(256)},
                   "recaptchaResponse": "human"}),
        ),
        ("a long first name", {
            let mut body = form(email, PASSWORD);
            body["firstName"] = json!("n".repeat(100_000));
            body
        }),
        (
            "a long mapped last name",
            json!({"fields": {"EMAIL": email, "PASSWORD": PASSWORD,
                                                      "LAST_NAME": "n".repeat(256)},
                                           "recaptchaResponse": "human"}),
        ),
        (
            "a long email",
            form(&format!("{}@example.com", "e".repeat(1000)), PASSWORD),
        ),
        ("a long password", form(email, &"p".repeat(2000))),
        ("a long CAPTCHA answer", {
            let mut body = form(email, PASSWORD);
            body["recaptchaResponse"] = json!("h".repeat(9000));
            body
        }),
        ("a NUL in the first name", {
            let mut body = form(email, PASSWORD);
            body["firstName"] = json!("Ann\u{0}");
            body
        }),
        ("a bell in the last name", {
            let mut body = form(email, PASSWORD);
            body["lastName"] = json!("Ex\u{7}ample");
            body
        }),
        (
            "a newline in the phone",
            json!({"fields": {"EMAIL": email, "PASSWORD": PASSWORD,
                                                     "PHONE": "+1\n555"},
                                          "recaptchaResponse": "human"}),
        ),
        (
            "a control character in the email",
            form("host\u{1}ile@example.com", PASSWORD),
        ),
        (
            "a newline after the email",
            form("hostile@example.com\nBcc: x@example.com", PASSWORD),
        ),
    ];
    for (what, body) in json_bodies {
        let answer = post(serde_json::to_vec(&body).unwrap()).await;
        assert_refused(what, &answer);
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            answer.text
        );
    }
    for (what, raw) in [
        ("no body", Vec::new()),
        ("not JSON", b"email=a@example.com".to_vec()),
        ("truncated JSON", b"{\"email\": \"a@exa".to_vec()),
        ("invalid UTF-8", b"{\"email\": \"\xff\xfe\"}".to_vec()),
        (
            "deep nesting",
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
        ),
    ] {
        let answer = post(raw).await;
        assert_refused(what, &answer);
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            answer.text
        );
    }
    // A body above the limit is 413 in the same shape.
    // (On a client of its own: the server answers before reading the whole body and closes
    // the connection, which a pooled client could try to reuse.)
    let mut huge = form(email, PASSWORD);
    huge["lastName"] = json!("x".repeat(2 * 1024 * 1024));
    let response = reqwest::Client::new()
        .post(app.url("/api/noauth/signup"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&huge).unwrap())
        .send()
        .await
        .expect("sent");
    let answer = RawAnswer {
        status: response.status(),
        headers: response.headers().clone(),
        text: response.text().await.expect("a body"),
    };
    assert_refused("a huge body", &answer);
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    // None of it reached the verifier or created anything.
    assert!(
        env.captcha.requests().is_empty(),
        "{:?}",
        env.captcha.requests()
    );
    // Hostile email codes and addresses.
    for code in [
        "%00",
        "%0D%0ALocation:%20x",
        &"9".repeat(20_000),
        "%F0%9F%92%A9",
    ] {
        let answer = env.check_code(code, "").await;
        assert_eq!(
            answer.status,
            StatusCode::CONFLICT,
            "{code}: {}",
            answer.text
        );
        let answer = app
            .tb_send(
                Method::POST,
                &format!("/api/noauth/activateByEmailCode?emailCode={code}"),
                &[],
                None,
            )
            .await;
        assert_refused(code, &answer);
    }
    let answer = app
        .tb_send(
            Method::POST,
            "/api/noauth/activateByEmailCode?emailCode=a&emailCode=b",
            &[],
            None,
        )
        .await;
    assert!(answer.status.is_client_error(), "{}", answer.text);
    env.resend(&format!("email={}", "x".repeat(10_000))).await;
    settle().await;
    assert!(env.smtp.mails().is_empty(), "{:?}", env.smtp.mails());
    assert_login_refused(app, email, PASSWORD, BAD_CREDENTIALS).await;
}

/// The address fields of ThingsBoard 4.4's form (`COUNTRY`, `CITY`, …) follow the rule of the
/// other text fields: no control characters.
async fn control_characters_in_address_fields_are_refused(app: TestApp) {
    let env = start(app, |_| {}).await;
    let email = "address@example.com";
    for (field, value) in [
        ("CITY", "Kyiv\u{0}"),
        ("COUNTRY", "Ukra\u{1b}[31mine"),
        ("ADDRESS", "Main St 1\r\nX-Injected: yes"),
    ] {
        let (status, body) = env
            .sign_up_with(json!({
                "fields": {"EMAIL": email, "PASSWORD": PASSWORD, field: value},
                "recaptchaResponse": captcha::HUMAN,
            }))
            .await;
        let (code, _) = assert_tb_shape(status, &body, StatusCode::BAD_REQUEST);
        assert_eq!(code, 31, "{field}: {body}");
    }
}
