//! Mailed links and notices of the ThingsBoard dialect, against a real SMTP server (aiosmtpd):
//! activation mails whose links are followed end to end, password reset by email (T9–T11),
//! the lockout notice, and what happens without a usable mail server.

mod common;

use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

use common::smtp::{link_in, SmtpServer};
use common::{assert_tb_error, assert_tb_shape, tb_id, tb_pair, TestApp, ADMIN_PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::json;

both_engines!(
    activation_mail_link_works_end_to_end,
    reset_mail_link_works_end_to_end,
    reset_mail_goes_only_to_active_users,
    reset_mails_to_one_address_are_limited,
    links_use_the_configured_public_url,
    lockout_notice_is_mailed,
    activation_mail_without_mail_server_is_400_and_creates_nothing,
    activation_mail_to_an_unreachable_server_creates_nothing,
);

const WAIT: Duration = Duration::from_secs(15);

/// The app again, sending mail to `server`, with links under `public_url` when given.
async fn with_mail(app: TestApp, server: &SmtpServer, public_url: Option<&str>) -> TestApp {
    let engine = app.engine;
    app.stop().await;
    let port = server.port();
    let public_url = public_url.map(str::to_owned);
    TestApp::spawn_with(
        engine,
        move |settings| {
            settings.mail = common::smtp::mail_settings(port);
            settings.http.public_url = public_url;
        },
        None,
    )
    .await
}

/// Path and query of a link under `base`.
fn local_part(link: &str, base: &str) -> String {
    link.strip_prefix(base)
        .unwrap_or_else(|| panic!("{link} is not under {base}"))
        .to_owned()
}

fn tenant_admin(email: &str) -> serde_json::Value {
    json!({"email": email, "authority": "TENANT_ADMIN", "tenantId": tb_id("TENANT", &uuid::Uuid::new_v4().to_string())})
}

async fn activation_mail_link_works_end_to_end(app: TestApp) {
    let server = SmtpServer::start();
    let app = with_mail(app, &server, None).await;
    let (sys, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let (status, user) = app
        .tb_post(
            "/api/user?sendActivationMail=true",
            &sys,
            tenant_admin("new.user@example.com"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    let mail = server.wait_for_mail("new.user@example.com", WAIT).await;
    let link = link_in(&mail.text, "/api/noauth/activate?activateToken=")
        .unwrap_or_else(|| panic!("no activation link in {:?}", mail.text));
    // The default public URL is the address the server listens on: the link is followable.
    assert!(
        link.starts_with(&format!("{}/api/noauth/activate?activateToken=", app.base)),
        "{link}"
    );
    let token = link.split_once("activateToken=").unwrap().1.to_owned();
    assert_eq!(token.len(), 40, "{token}");
    // Follow the link as a browser would.
    let answer = app
        .tb_send(Method::GET, &local_part(&link, &app.base), &[], None)
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    let location = answer.header("location").unwrap();
    assert_eq!(
        location,
        format!("/login/createPassword?activateToken={token}")
    );
    // The page posts the token with the chosen password (the default mails a notice).
    let (status, body) = app
        .tb_request(
            Method::POST,
            "/api/noauth/activate",
            None,
            Some(json!({"activateToken": token, "password": "chosen-pass-1"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (access, _) = tb_pair(&body);
    let me = app.tb_me(&access).await;
    assert_eq!(me["id"], user["id"]);
    assert_eq!(me["additionalInfo"]["userCredentialsEnabled"], true);
    let notice = server.wait_for_mail("new.user@example.com", WAIT).await;
    assert_ne!(
        notice.subject, mail.subject,
        "a second, different mail: {notice:?}"
    );
    app.tb_login("new.user@example.com", "chosen-pass-1").await;
    // The mailed link is used up.
    let answer = app
        .tb_send(Method::GET, &local_part(&link, &app.base), &[], None)
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    // sendActivationMail=false on activation mails nothing.
    let (status, user2) = app
        .tb_post(
            "/api/user?sendActivationMail=true",
            &sys,
            tenant_admin("quiet@example.com"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user2}");
    let mail = server.wait_for_mail("quiet@example.com", WAIT).await;
    let link = link_in(&mail.text, "/api/noauth/activate?activateToken=").unwrap();
    let token = link.split_once("activateToken=").unwrap().1;
    app.tb_activate(token, "quiet-pass-1").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let extra: Vec<_> = server
        .mails()
        .into_iter()
        .filter(|mail| mail.to.eq_ignore_ascii_case("quiet@example.com"))
        .collect();
    assert_eq!(extra.len(), 1, "only the activation mail: {extra:?}");
}

async fn reset_by_email(app: &TestApp, email: &str) {
    let (status, body) = app
        .tb_request(
            Method::POST,
            "/api/noauth/resetPasswordByEmail",
            None,
            Some(json!({"email": email})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, serde_json::Value::Null, "empty body");
}

async fn reset_mails_to_one_address_are_limited(app: TestApp) {
    let server = SmtpServer::start();
    let app = with_mail(app, &server, None).await;
    let (sys, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    app.tb_new_user(&sys, tenant_admin("bombed@example.com"), "bombed-pass-1")
        .await;
    app.tb_new_user(&sys, tenant_admin("other@example.com"), "other-pass-1")
        .await;
    // Every request answers 200, but only 3 mails a minute go to one address.
    for _ in 0..8 {
        reset_by_email(&app, "bombed@example.com").await;
    }
    for _ in 0..3 {
        server.wait_for_mail("bombed@example.com", WAIT).await;
    }
    // Another address is not affected; once its mail is in, any fourth one had time too.
    reset_by_email(&app, "other@example.com").await;
    server.wait_for_mail("other@example.com", WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bombed = server
        .mails()
        .iter()
        .filter(|mail| mail.to.contains("bombed@example.com"))
        .count();
    assert_eq!(bombed, 3, "mails to one address are limited");
}

async fn reset_mail_link_works_end_to_end(app: TestApp) {
    let server = SmtpServer::start();
    let app = with_mail(app, &server, None).await;
    let (sys, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let (_, old_token, old_refresh) = app
        .tb_new_user(&sys, tenant_admin("forgetful@example.com"), "old-pass-1")
        .await;
    reset_by_email(&app, "forgetful@example.com").await;
    let mail = server.wait_for_mail("forgetful@example.com", WAIT).await;
    let link = link_in(&mail.text, "/api/noauth/resetPassword?resetToken=")
        .unwrap_or_else(|| panic!("no reset link in {:?}", mail.text));
    assert!(
        link.starts_with(&format!(
            "{}/api/noauth/resetPassword?resetToken=",
            app.base
        )),
        "{link}"
    );
    let token = link.split_once("resetToken=").unwrap().1.to_owned();
    // Requesting a reset changes nothing yet.
    app.tb_me(&old_token).await;
    app.tb_login("forgetful@example.com", "old-pass-1").await;
    let answer = app
        .tb_send(Method::GET, &local_part(&link, &app.base), &[], None)
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    assert_eq!(
        answer.header("location").unwrap(),
        format!("/login/resetPassword?resetToken={token}")
    );
    let answer = app
        .tb_send(
            Method::POST,
            "/api/noauth/resetPassword",
            &[("content-type", "application/json")],
            Some(
                serde_json::to_vec(&json!({"resetToken": token, "password": "new-pass-22"}))
                    .unwrap(),
            ),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.text, "");
    let (status, body) = app.tb_get("/api/auth/user", &old_token).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        11,
        "Token has expired",
    );
    let (status, body) = app
        .tb_request(
            Method::POST,
            "/api/auth/token",
            None,
            Some(json!({"refreshToken": old_refresh})),
        )
        .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "Token is outdated",
    );
    let (status, _) = app
        .tb_try_login("forgetful@example.com", "old-pass-1")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.tb_login("forgetful@example.com", "new-pass-22").await;
    let (status, body) = app
        .tb_request(
            Method::POST,
            "/api/noauth/resetPassword",
            None,
            Some(json!({"resetToken": token, "password": "third-pass-33"})),
        )
        .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "Invalid reset token!",
    );
    // A second request mails a second, different link. Checks are counted per user: one was
    // spent on the first link, 4 more pass, the 6th is 429.
    reset_by_email(&app, "forgetful@example.com").await;
    let mail = server.wait_for_mail("forgetful@example.com", WAIT).await;
    let second = link_in(&mail.text, "/api/noauth/resetPassword?resetToken=").unwrap();
    assert_ne!(second, link);
    for _ in 0..4 {
        let answer = app
            .tb_send(Method::GET, &local_part(&second, &app.base), &[], None)
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER);
    }
    let answer = app
        .tb_send(Method::GET, &local_part(&second, &app.base), &[], None)
        .await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.text, "");
}

async fn reset_mail_goes_only_to_active_users(app: TestApp) {
    let server = SmtpServer::start();
    let app = with_mail(app, &server, None).await;
    let (sys, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    // Not activated yet, and disabled: no mail.
    app.tb_create_user(&sys, tenant_admin("pending@example.com"))
        .await;
    let (disabled_id, _, _) = app
        .tb_new_user(
            &sys,
            tenant_admin("disabled@example.com"),
            "disabled-pass-1",
        )
        .await;
    let (status, body) = app
        .tb_post(
            &format!("/api/user/{disabled_id}/userCredentialsEnabled?userCredentialsEnabled=false"),
            &sys,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.tb_new_user(&sys, tenant_admin("active@example.com"), "active-pass-1")
        .await;
    for email in [
        "pending@example.com",
        "disabled@example.com",
        "nobody@example.com",
        "not an email",
        "PENDING@EXAMPLE.COM",
    ] {
        reset_by_email(&app, email).await;
    }
    // The last request is for an active user: once its mail is in, the others had time too.
    reset_by_email(&app, "active@example.com").await;
    server.wait_for_mail("active@example.com", WAIT).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let recipients: Vec<String> = server.mails().into_iter().map(|mail| mail.to).collect();
    assert_eq!(recipients, ["active@example.com"], "{recipients:?}");
}

async fn links_use_the_configured_public_url(app: TestApp) {
    let server = SmtpServer::start();
    let public = "https://id.example.com/gatehouse";
    let app = with_mail(app, &server, Some(public)).await;
    let (sys, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let (status, user) = app
        .tb_post(
            "/api/user?sendActivationMail=true",
            &sys,
            tenant_admin("public@example.com"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    let mail = server.wait_for_mail("public@example.com", WAIT).await;
    let link = link_in(&mail.text, "/api/noauth/activate?activateToken=").unwrap();
    assert!(
        link.starts_with(&format!("{public}/api/noauth/activate?activateToken=")),
        "{link}"
    );
    // The same link under the local address works.
    let answer = app
        .tb_send(Method::GET, &local_part(&link, public), &[], None)
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    // The text link of the API uses it too.
    let id = user["id"]["id"].as_str().unwrap();
    let answer = app
        .tb_send(
            Method::GET,
            &format!("/api/user/{id}/activationLink"),
            &[("x-authorization", &format!("Bearer {sys}"))],
            None,
        )
        .await;
    assert!(
        answer
            .text
            .starts_with(&format!("{public}/api/noauth/activate?activateToken=")),
        "{}",
        answer.text
    );
    let token = local_part(&link, public)
        .split_once("activateToken=")
        .unwrap()
        .1
        .to_owned();
    app.tb_activate(&token, "public-pass-1").await;
    reset_by_email(&app, "public@example.com").await;
    let mail = server.wait_for_mail("public@example.com", WAIT).await;
    let link = link_in(&mail.text, "/api/noauth/resetPassword?resetToken=").unwrap();
    assert!(
        link.starts_with(&format!("{public}/api/noauth/resetPassword?resetToken=")),
        "{link}"
    );
}

async fn lockout_notice_is_mailed(app: TestApp) {
    let server = SmtpServer::start();
    let app = with_mail(app, &server, None).await;
    let (sys, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    app.tb_update_security(&sys, |settings| {
        settings["maxFailedLoginAttempts"] = json!(2);
        settings["userLockoutNotificationEmail"] = json!("security@example.com");
    })
    .await;
    let (id, _, _) = app
        .tb_new_user(&sys, tenant_admin("locked@example.com"), "right-pass-1")
        .await;
    for _ in 0..2 {
        let (status, body) = app.tb_try_login("locked@example.com", "wrong-pass-1").await;
        assert_tb_error(
            status,
            &body,
            StatusCode::UNAUTHORIZED,
            10,
            "Invalid username or password",
        );
    }
    let (status, body) = app.tb_try_login("locked@example.com", "wrong-pass-1").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "User account is locked due to security policy",
    );
    let notice = server.wait_for_mail("security@example.com", WAIT).await;
    assert!(
        notice.subject.contains("locked@example.com") || notice.text.contains("locked@example.com"),
        "the notice names the account: {notice:?}"
    );
    // Further attempts do not mail again.
    let (status, body) = app.tb_try_login("locked@example.com", "right-pass-1").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "User account is not active",
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(server.mails().len(), 1, "{:?}", server.mails());
    // The user itself gets no mail; unlocking works.
    let (status, body) = app
        .tb_post(
            &format!("/api/user/{id}/userCredentialsEnabled?userCredentialsEnabled=true"),
            &sys,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.tb_login("locked@example.com", "right-pass-1").await;
}

async fn activation_mail_without_mail_server_is_400_and_creates_nothing(app: TestApp) {
    let (sys, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let (status, body) = app
        .tb_post(
            "/api/user?sendActivationMail=true",
            &sys,
            tenant_admin("unmailed@example.com"),
        )
        .await;
    let (code, _) = assert_tb_shape(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(code, 31, "{body}");
    assert_eq!(
        body["message"],
        "sendActivationMail needs a mail server, and none is configured"
    );
    // Nothing was created: the same email can be created without the mail.
    let user = app
        .tb_create_user(&sys, tenant_admin("unmailed@example.com"))
        .await;
    assert_eq!(user["email"], "unmailed@example.com");
    // resetPasswordByEmail still answers 200.
    reset_by_email(&app, "unmailed@example.com").await;
}

async fn activation_mail_to_an_unreachable_server_creates_nothing(app: TestApp) {
    let closed = {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        listener.local_addr().unwrap().port()
    };
    let engine = app.engine;
    app.stop().await;
    let app = TestApp::spawn_with(
        engine,
        move |settings| settings.mail = common::smtp::mail_settings(closed),
        None,
    )
    .await;
    let (sys, _) = app.tb_login("admin", ADMIN_PASSWORD).await;
    let (status, body) = app
        .tb_post(
            "/api/user?sendActivationMail=true",
            &sys,
            tenant_admin("bounced@example.com"),
        )
        .await;
    assert!(
        status.is_server_error(),
        "the mail could not be sent: {status} {body}"
    );
    assert_tb_shape(status, &body, status);
    let user = app
        .tb_create_user(&sys, tenant_admin("bounced@example.com"))
        .await;
    assert_eq!(user["email"], "bounced@example.com");
}
