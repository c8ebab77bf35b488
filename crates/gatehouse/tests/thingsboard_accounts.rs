//! Accounts in the ThingsBoard dialect: users (`/api/user*`) by tenancy, activation links
//! (T7/T8), password reset links (T9–T11, the tokens taken from an expired-password login;
//! the mailed links are in `thingsboard_mail.rs`), enabling and disabling credentials.

mod common;

use common::{
    assert_tb_error, assert_tb_shape, jwt_claims, tb_id, tb_pair, TestApp, ADMIN_PASSWORD,
    TB_NULL_UUID,
};
use gatehouse_core::clock::ManualClock;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_engines!(
    system_administrator_creates_tenant_administrators,
    duplicate_emails_and_bad_user_bodies_are_400,
    tenant_administrator_creates_customer_users_in_its_tenant,
    customer_users_cannot_manage_users,
    get_user_by_id_not_found_malformed_and_other_tenant,
    update_user_changes_profile_but_not_authority,
    delete_user_removes_it_and_its_sessions,
    activation_link_is_text_and_fresh_each_time,
    activation_link_check_redirects_or_answers_409,
    activation_sets_the_password_once,
    parallel_activations_with_one_token_have_one_winner,
    activation_refuses_weak_passwords_and_keeps_the_link,
    expired_activation_link,
    credentials_can_be_disabled_and_enabled,
    reset_password_by_email_always_answers_200,
    reset_link_check_redirects_and_is_rate_limited,
    reset_password_sets_the_password_once,
    expired_reset_link,
);

const DENIED: &str = "You don't have permission to perform this operation!";

async fn sys_token(app: &TestApp) -> String {
    app.tb_login("admin", ADMIN_PASSWORD).await.0
}

fn new_tenant() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn tenant_admin_body(email: &str, tenant: &str) -> Value {
    json!({"email": email, "authority": "TENANT_ADMIN", "tenantId": tb_id("TENANT", tenant)})
}

fn customer_body(email: &str, customer: &str) -> Value {
    json!({"email": email, "authority": "CUSTOMER_USER", "customerId": tb_id("CUSTOMER", customer)})
}

/// An activated tenant administrator of a fresh tenant: (id, token, tenant).
async fn tenant_admin(app: &TestApp, sys: &str, email: &str) -> (String, String, String) {
    let tenant = new_tenant();
    let (id, token, _) = app
        .tb_new_user(sys, tenant_admin_body(email, &tenant), "tenant-pass-1")
        .await;
    (id, token, tenant)
}

async fn user_status(app: &TestApp, token: &str, id: &str) -> (StatusCode, Value) {
    app.tb_get(&format!("/api/user/{id}"), token).await
}

async fn raw_get(app: &TestApp, path: &str, token: Option<&str>) -> common::RawAnswer {
    let auth = token.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|auth| vec![("x-authorization", auth)])
        .unwrap_or_default();
    app.tb_send(Method::GET, path, &headers, None).await
}

async fn system_administrator_creates_tenant_administrators(app: TestApp) {
    let sys = sys_token(&app).await;
    let tenant = new_tenant();
    let mut body = tenant_admin_body("tenant@example.com", &tenant);
    body["firstName"] = json!("Tina");
    body["lastName"] = json!("Tenant");
    body["phone"] = json!("+49 30 1234");
    body["additionalInfo"] =
        json!({"description": "first tenant", "defaultDashboardFullscreen": false});
    let user = app.tb_create_user(&sys, body).await;
    let id = user["id"]["id"].as_str().unwrap().to_owned();
    assert_eq!(user["id"]["entityType"], "USER", "{user}");
    assert!(user["createdTime"].is_i64());
    assert_eq!(user["tenantId"], tb_id("TENANT", &tenant));
    assert_eq!(user["customerId"], tb_id("CUSTOMER", TB_NULL_UUID));
    assert_eq!(user["email"], "tenant@example.com");
    assert_eq!(user["name"], "tenant@example.com");
    assert_eq!(user["authority"], "TENANT_ADMIN");
    assert_eq!(user["firstName"], "Tina");
    assert_eq!(user["lastName"], "Tenant");
    assert_eq!(user["phone"], "+49 30 1234");
    assert_eq!(user["additionalInfo"]["description"], "first tenant");
    assert_eq!(user["additionalInfo"]["defaultDashboardFullscreen"], false);
    assert_eq!(
        user["additionalInfo"]["userCredentialsEnabled"], false,
        "not active before activation: {user}"
    );
    // Not active until activated (ThingsBoard's answer for never-activated credentials).
    let (status, body) = app.tb_try_login("tenant@example.com", "anything-1").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "User account is not active",
    );
    // Readable, same shape.
    let (status, read) = user_status(&app, &sys, &id).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read, user);
    // A system administrator may create another system administrator.
    let other = app
        .tb_create_user(
            &sys,
            json!({"email": "root2@example.com", "authority": "SYS_ADMIN"}),
        )
        .await;
    assert_eq!(other["authority"], "SYS_ADMIN");
    assert_eq!(other["tenantId"], tb_id("TENANT", TB_NULL_UUID));
    // A tenant administrator needs a tenant.
    let (status, body) = app
        .tb_post(
            "/api/user",
            &sys,
            json!({"email": "lost@example.com", "authority": "TENANT_ADMIN"}),
        )
        .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "tenantId must be given for a tenant administrator",
    );
    // A system administrator cannot create customer users (outside its reach).
    let (status, body) = app
        .tb_post(
            "/api/user",
            &sys,
            json!({"email": "cust@example.com", "authority": "CUSTOMER_USER", "tenantId": tb_id("TENANT", &tenant), "customerId": tb_id("CUSTOMER", &new_tenant())}),
        )
        .await;
    assert_tb_error(status, &body, StatusCode::FORBIDDEN, 20, DENIED);
    let (status, _) = app.tb_try_login("lost@example.com", "x-pass-1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn duplicate_emails_and_bad_user_bodies_are_400(app: TestApp) {
    let sys = sys_token(&app).await;
    let tenant = new_tenant();
    let first = app
        .tb_create_user(&sys, tenant_admin_body("dup@example.com", &tenant))
        .await;
    let (status, body) = app
        .tb_post(
            "/api/user",
            &sys,
            tenant_admin_body("dup@example.com", &new_tenant()),
        )
        .await;
    let (code, message) = assert_tb_shape(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(code, 31);
    assert!(message.contains("dup@example.com"), "{message}");
    // An email that equals another user's login name is taken too.
    app.create_user("cw@example.com", "cw-password-1", &[])
        .await;
    let (status, body) = app
        .tb_post(
            "/api/user",
            &sys,
            tenant_admin_body("cw@example.com", &tenant),
        )
        .await;
    let (code, _) = assert_tb_shape(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(code, 31);
    // Bad bodies.
    for bad in [
        json!({"authority": "TENANT_ADMIN", "tenantId": tb_id("TENANT", &tenant)}),
        json!({"email": "not-an-email", "authority": "TENANT_ADMIN", "tenantId": tb_id("TENANT", &tenant)}),
        json!({"email": "x@example.com", "authority": "ROOT", "tenantId": tb_id("TENANT", &tenant)}),
        json!({"email": "x@example.com", "authority": "TENANT_ADMIN", "tenantId": {"entityType": "TENANT", "id": "nope"}}),
        json!({"email": "x@example.com", "authority": "TENANT_ADMIN", "tenantId": tb_id("TENANT", &tenant), "additionalInfo": [1]}),
        json!({"email": "x@example.com", "authority": "TENANT_ADMIN", "tenantId": tb_id("TENANT", &tenant), "firstName": 7}),
        json!({"email": "x@example.com", "tenantId": tb_id("TENANT", &tenant)}),
        json!(["x@example.com"]),
    ] {
        let (status, body) = app.tb_post("/api/user", &sys, bad.clone()).await;
        let (code, _) = assert_tb_shape(status, &body, StatusCode::BAD_REQUEST);
        assert_eq!(code, 31, "{bad} -> {body}");
    }
    // Nothing was lost or added.
    let (status, read) = user_status(&app, &sys, first["id"]["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["email"], "dup@example.com");
    let (status, _) = app.tb_try_login("x@example.com", "whatever-1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.tb_login("cw@example.com", "cw-password-1").await;
}

async fn tenant_administrator_creates_customer_users_in_its_tenant(app: TestApp) {
    let sys = sys_token(&app).await;
    let (_, ta, tenant) = tenant_admin(&app, &sys, "ta@example.com").await;
    let customer = new_tenant();
    // The tenant given is ignored: users land in the creator's tenant.
    let mut body = customer_body("customer@example.com", &customer);
    body["tenantId"] = tb_id("TENANT", &new_tenant());
    let user = app.tb_create_user(&ta, body).await;
    assert_eq!(user["authority"], "CUSTOMER_USER", "{user}");
    assert_eq!(user["tenantId"], tb_id("TENANT", &tenant));
    assert_eq!(user["customerId"], tb_id("CUSTOMER", &customer));
    let id = user["id"]["id"].as_str().unwrap().to_owned();
    let activate = app.tb_activation_token(&ta, &id).await;
    let (token, _) = app.tb_activate(&activate, "customer-pass-1").await;
    let claims = jwt_claims(&token);
    assert_eq!(claims["scopes"], json!(["CUSTOMER_USER"]));
    assert_eq!(claims["tenantId"], tenant.as_str());
    assert_eq!(claims["customerId"], customer.as_str());
    assert_eq!(claims["sub"], "customer@example.com");
    // Another tenant administrator in the same tenant.
    let colleague = app
        .tb_create_user(
            &ta,
            json!({"email": "ta2@example.com", "authority": "TENANT_ADMIN"}),
        )
        .await;
    assert_eq!(colleague["tenantId"], tb_id("TENANT", &tenant));
    // A customer user needs a customer.
    let (status, body) = app
        .tb_post(
            "/api/user",
            &ta,
            json!({"email": "nocust@example.com", "authority": "CUSTOMER_USER"}),
        )
        .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "customerId must be given for a customer user",
    );
    // Not a system administrator.
    let (status, body) = app
        .tb_post(
            "/api/user",
            &ta,
            json!({"email": "sys3@example.com", "authority": "SYS_ADMIN"}),
        )
        .await;
    assert_tb_error(status, &body, StatusCode::FORBIDDEN, 20, DENIED);
    let (status, _) = app.tb_try_login("sys3@example.com", "whatever-1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn customer_users_cannot_manage_users(app: TestApp) {
    let sys = sys_token(&app).await;
    let (ta_id, ta, _) = tenant_admin(&app, &sys, "ta@example.com").await;
    let customer = new_tenant();
    let (id, token, _) = app
        .tb_new_user(
            &ta,
            customer_body("c1@example.com", &customer),
            "customer-pass-1",
        )
        .await;
    let (colleague_id, _, _) = app
        .tb_new_user(
            &ta,
            customer_body("c2@example.com", &customer),
            "customer-pass-2",
        )
        .await;
    let (status, body) = app
        .tb_post(
            "/api/user",
            &token,
            customer_body("c3@example.com", &customer),
        )
        .await;
    assert_tb_error(status, &body, StatusCode::FORBIDDEN, 20, DENIED);
    for path in [format!("/api/user/{colleague_id}/activationLink")] {
        let answer = raw_get(&app, &path, Some(&token)).await;
        assert_tb_error(
            answer.status,
            &answer.json(),
            StatusCode::FORBIDDEN,
            20,
            DENIED,
        );
    }
    let (status, body) = app
        .tb_request(
            Method::DELETE,
            &format!("/api/user/{colleague_id}"),
            Some(&format!("Bearer {token}")),
            None,
        )
        .await;
    assert_tb_error(status, &body, StatusCode::FORBIDDEN, 20, DENIED);
    let (status, body) = app
        .tb_post(
            &format!(
                "/api/user/{colleague_id}/userCredentialsEnabled?userCredentialsEnabled=false"
            ),
            &token,
            json!({}),
        )
        .await;
    assert_tb_error(status, &body, StatusCode::FORBIDDEN, 20, DENIED);
    // A customer user reads itself and the users of its customer, not its tenant administrator.
    let (status, body) = user_status(&app, &token, &id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = user_status(&app, &token, &colleague_id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = user_status(&app, &token, &ta_id).await;
    assert_tb_error(status, &body, StatusCode::FORBIDDEN, 20, DENIED);
    // The colleague is untouched.
    app.tb_login("c2@example.com", "customer-pass-2").await;
}

async fn get_user_by_id_not_found_malformed_and_other_tenant(app: TestApp) {
    let sys = sys_token(&app).await;
    let (a_id, a, _) = tenant_admin(&app, &sys, "a@example.com").await;
    let (b_id, _, _) = tenant_admin(&app, &sys, "b@example.com").await;
    let missing = uuid::Uuid::new_v4();
    let (status, body) = user_status(&app, &sys, &missing.to_string()).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        32,
        &format!("User with id [{missing}] is not found"),
    );
    for malformed in ["abc", "123", "not-a-uuid-at-all-0000000000000000"] {
        let (status, body) = user_status(&app, &sys, malformed).await;
        let (code, _) = assert_tb_shape(status, &body, StatusCode::BAD_REQUEST);
        assert_eq!(code, 31, "{body}");
    }
    // Another tenant's administrator is out of reach.
    let (status, body) = user_status(&app, &a, &b_id).await;
    assert_tb_error(status, &body, StatusCode::FORBIDDEN, 20, DENIED);
    // So is the system administrator.
    let sys_id = app.tb_me(&sys).await["id"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = user_status(&app, &a, &sys_id).await;
    assert_tb_error(status, &body, StatusCode::FORBIDDEN, 20, DENIED);
    let (status, body) = user_status(&app, &a, &a_id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["email"], "a@example.com");
    // Without a token.
    let answer = raw_get(&app, &format!("/api/user/{a_id}"), None).await;
    assert_tb_error(
        answer.status,
        &answer.json(),
        StatusCode::UNAUTHORIZED,
        10,
        "Authentication failed",
    );
}

async fn update_user_changes_profile_but_not_authority(app: TestApp) {
    let sys = sys_token(&app).await;
    let (id, token, tenant) = tenant_admin(&app, &sys, "upd@example.com").await;
    let (status, body) = app
        .tb_post(
            "/api/user",
            &sys,
            json!({"id": tb_id("USER", &id), "email": "upd@example.com", "authority": "TENANT_ADMIN", "tenantId": tb_id("TENANT", &tenant), "firstName": "Up", "phone": "+1 555", "additionalInfo": {"lang": "de"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["firstName"], "Up");
    assert_eq!(body["phone"], "+1 555");
    assert_eq!(body["additionalInfo"]["lang"], "de");
    assert_eq!(body["additionalInfo"]["userCredentialsEnabled"], true);
    let (_, read) = user_status(&app, &sys, &id).await;
    assert_eq!(read["firstName"], "Up");
    // The authority cannot change.
    let (status, body) = app
        .tb_post(
            "/api/user",
            &sys,
            json!({"id": tb_id("USER", &id), "email": "upd@example.com", "authority": "SYS_ADMIN"}),
        )
        .await;
    let (code, _) = assert_tb_shape(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(code, 31);
    // A missing user.
    let missing = uuid::Uuid::new_v4();
    let (status, body) = app
        .tb_post(
            "/api/user",
            &sys,
            json!({"id": tb_id("USER", &missing.to_string()), "email": "ghost@example.com", "authority": "TENANT_ADMIN", "tenantId": tb_id("TENANT", &tenant)}),
        )
        .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        32,
        &format!("User with id [{missing}] is not found"),
    );
    // An email taken by someone else.
    let (_, _, _) = tenant_admin(&app, &sys, "taken@example.com").await;
    let (status, body) = app
        .tb_post(
            "/api/user",
            &sys,
            json!({"id": tb_id("USER", &id), "email": "taken@example.com", "authority": "TENANT_ADMIN", "tenantId": tb_id("TENANT", &tenant)}),
        )
        .await;
    let (code, _) = assert_tb_shape(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(code, 31);
    let (_, read) = user_status(&app, &sys, &id).await;
    assert_eq!(read["email"], "upd@example.com", "{read}");
    assert_eq!(read["authority"], "TENANT_ADMIN");
    // The user's own token still works, and it may edit itself.
    let me = app.tb_me(&token).await;
    assert_eq!(me["firstName"], "Up");
}

async fn delete_user_removes_it_and_its_sessions(app: TestApp) {
    let sys = sys_token(&app).await;
    let (id, token, _) = tenant_admin(&app, &sys, "gone@example.com").await;
    let (keep_id, keep_token, _) = tenant_admin(&app, &sys, "stay@example.com").await;
    let answer = app
        .tb_send(
            Method::DELETE,
            &format!("/api/user/{id}"),
            &[("x-authorization", &format!("Bearer {sys}"))],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.text, "");
    let (status, body) = user_status(&app, &sys, &id).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        32,
        &format!("User with id [{id}] is not found"),
    );
    let (status, body) = app.tb_get("/api/auth/user", &token).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        11,
        "Token has expired",
    );
    let (status, body) = app.tb_try_login("gone@example.com", "tenant-pass-1").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "Invalid username or password",
    );
    // Again: not found.
    let (status, body) = app
        .tb_request(
            Method::DELETE,
            &format!("/api/user/{id}"),
            Some(&format!("Bearer {sys}")),
            None,
        )
        .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        32,
        &format!("User with id [{id}] is not found"),
    );
    // Nobody deletes itself.
    let sys_id = app.tb_me(&sys).await["id"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = app
        .tb_request(
            Method::DELETE,
            &format!("/api/user/{sys_id}"),
            Some(&format!("Bearer {sys}")),
            None,
        )
        .await;
    // ThingsBoard: PERMISSION_DENIED ("It is not allowed to delete its own user!").
    let (code, _) = assert_tb_shape(status, &body, StatusCode::FORBIDDEN);
    assert_eq!(code, 20);
    app.tb_me(&sys).await;
    // A tenant administrator cannot delete another tenant's administrator.
    let (status, body) = app
        .tb_request(
            Method::DELETE,
            &format!("/api/user/{keep_id}"),
            Some(&format!("Bearer {token}")),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "deleted user's token: {body}"
    );
    let (_, other_ta, _) = tenant_admin(&app, &sys, "other@example.com").await;
    let (status, body) = app
        .tb_request(
            Method::DELETE,
            &format!("/api/user/{keep_id}"),
            Some(&format!("Bearer {other_ta}")),
            None,
        )
        .await;
    assert_tb_error(status, &body, StatusCode::FORBIDDEN, 20, DENIED);
    app.tb_me(&keep_token).await;
    app.tb_me(&sys).await;
}

async fn activation_link_is_text_and_fresh_each_time(app: TestApp) {
    let sys = sys_token(&app).await;
    let user = app
        .tb_create_user(&sys, tenant_admin_body("link@example.com", &new_tenant()))
        .await;
    let id = user["id"]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/user/{id}/activationLink");
    let first = raw_get(&app, &path, Some(&sys)).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let content_type = first.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    // Links live under the public URL, by default the address the server listens on.
    assert!(
        first
            .text
            .starts_with(&format!("{}/api/noauth/activate?activateToken=", app.base)),
        "{}",
        first.text
    );
    assert!(
        first.text.contains("/api/noauth/activate?activateToken="),
        "{}",
        first.text
    );
    let token1 = first
        .text
        .split_once("activateToken=")
        .unwrap()
        .1
        .to_owned();
    assert_eq!(
        token1.len(),
        40,
        "ThingsBoard's 40-character tokens: {token1}"
    );
    let second = raw_get(&app, &path, Some(&sys)).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    let token2 = second
        .text
        .split_once("activateToken=")
        .unwrap()
        .1
        .to_owned();
    assert_ne!(token1, token2);
    // Both links are valid until one is used.
    for token in [&token1, &token2] {
        let answer = raw_get(
            &app,
            &format!("/api/noauth/activate?activateToken={token}"),
            None,
        )
        .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    }
    app.tb_activate(&token1, "link-pass-1").await;
    let answer = raw_get(
        &app,
        &format!("/api/noauth/activate?activateToken={token2}"),
        None,
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::CONFLICT,
        "the other link died with the activation"
    );
    let answer = raw_get(&app, &path, Some(&sys)).await;
    assert_tb_error(
        answer.status,
        &answer.json(),
        StatusCode::BAD_REQUEST,
        31,
        "User is already activated!",
    );
    // Unknown user.
    let missing = uuid::Uuid::new_v4();
    let answer = raw_get(
        &app,
        &format!("/api/user/{missing}/activationLink"),
        Some(&sys),
    )
    .await;
    assert_tb_error(
        answer.status,
        &answer.json(),
        StatusCode::NOT_FOUND,
        32,
        &format!("User with id [{missing}] is not found"),
    );
    // Connectware users have passwords: already active.
    let cw = app.create_user("cw-link", "cw-password-1", &[]).await;
    let answer = raw_get(
        &app,
        &format!("/api/user/{}/activationLink", cw["id"].as_str().unwrap()),
        Some(&app.admin_token),
    )
    .await;
    assert!(
        answer.status.is_client_error(),
        "{} {}",
        answer.status,
        answer.text
    );
    assert_tb_shape(answer.status, &answer.json(), answer.status);
}

async fn activation_link_check_redirects_or_answers_409(app: TestApp) {
    let sys = sys_token(&app).await;
    let user = app
        .tb_create_user(&sys, tenant_admin_body("check@example.com", &new_tenant()))
        .await;
    let token = app
        .tb_activation_token(&sys, user["id"]["id"].as_str().unwrap())
        .await;
    let answer = raw_get(
        &app,
        &format!("/api/noauth/activate?activateToken={token}"),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    assert_eq!(
        answer.header("location").as_deref(),
        Some(format!("/login/createPassword?activateToken={token}").as_str())
    );
    // Checking does not use the token up.
    let answer = raw_get(
        &app,
        &format!("/api/noauth/activate?activateToken={token}"),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    for unknown in ["unknown-token", "x", &"y".repeat(300), ""] {
        let answer = raw_get(
            &app,
            &format!("/api/noauth/activate?activateToken={unknown}"),
            None,
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::CONFLICT,
            "{unknown}: {}",
            answer.text
        );
        assert_eq!(answer.text, "", "409 has an empty body");
    }
    // No token at all.
    let answer = raw_get(&app, "/api/noauth/activate", None).await;
    let (code, _) = assert_tb_shape(answer.status, &answer.json(), StatusCode::BAD_REQUEST);
    assert_eq!(code, 31);
    app.tb_activate(&token, "check-pass-1").await;
}

async fn activate(app: &TestApp, token: &str, password: &str) -> (StatusCode, Value) {
    app.tb_request(
        Method::POST,
        "/api/noauth/activate?sendActivationMail=false",
        None,
        Some(json!({"activateToken": token, "password": password})),
    )
    .await
}

async fn activation_sets_the_password_once(app: TestApp) {
    let sys = sys_token(&app).await;
    let tenant = new_tenant();
    let user = app
        .tb_create_user(&sys, tenant_admin_body("act@example.com", &tenant))
        .await;
    let id = user["id"]["id"].as_str().unwrap().to_owned();
    let token = app.tb_activation_token(&sys, &id).await;
    let (status, body) = activate(&app, &token, "act-pass-1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (access, refresh) = tb_pair(&body);
    let claims = jwt_claims(&access);
    assert_eq!(claims["userId"], id.as_str());
    assert_eq!(claims["enabled"], true);
    assert_eq!(claims["scopes"], json!(["TENANT_ADMIN"]));
    assert_eq!(claims["tenantId"], tenant.as_str());
    let me = app.tb_me(&access).await;
    assert_eq!(me["additionalInfo"]["userCredentialsEnabled"], true);
    let (status, body) = app
        .tb_request(
            Method::POST,
            "/api/auth/token",
            None,
            Some(json!({"refreshToken": refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The token worked once.
    let (status, body) = activate(&app, &token, "other-pass-2").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        &format!("Unable to find user credentials by activateToken [{token}]"),
    );
    let (status, body) = activate(&app, "never-issued", "other-pass-2").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "Unable to find user credentials by activateToken [never-issued]",
    );
    // The password set is the first one.
    app.tb_login("act@example.com", "act-pass-1").await;
    let (status, _) = app.tb_try_login("act@example.com", "other-pass-2").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Bad bodies.
    for bad in [
        json!({}),
        json!({"activateToken": token}),
        json!({"password": "x-pass-1"}),
        json!([]),
    ] {
        let (status, body) = app
            .tb_request(
                Method::POST,
                "/api/noauth/activate",
                None,
                Some(bad.clone()),
            )
            .await;
        let (code, _) = assert_tb_shape(status, &body, StatusCode::BAD_REQUEST);
        assert_eq!(code, 31, "{bad}");
    }
}

async fn parallel_activations_with_one_token_have_one_winner(app: TestApp) {
    let sys = sys_token(&app).await;
    let user = app
        .tb_create_user(&sys, tenant_admin_body("race@example.com", &new_tenant()))
        .await;
    let token = app
        .tb_activation_token(&sys, user["id"]["id"].as_str().unwrap())
        .await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let client = app.client.clone();
        let url = app.url("/api/noauth/activate?sendActivationMail=false");
        let body = json!({"activateToken": token, "password": format!("race-pass-{i}")});
        tasks.push(tokio::spawn(async move {
            let response = client.post(url).json(&body).send().await.expect("sent");
            let status = response.status();
            (i, status, response.json::<Value>().await.expect("JSON"))
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (i, status, body) = task.await.expect("task");
        if status == StatusCode::OK {
            winners.push(i);
        } else {
            let (code, _) = assert_tb_shape(status, &body, StatusCode::BAD_REQUEST);
            assert_eq!(code, 31, "{body}");
        }
    }
    assert_eq!(winners.len(), 1, "exactly one activation wins: {winners:?}");
    app.tb_login("race@example.com", &format!("race-pass-{}", winners[0]))
        .await;
}

async fn activation_refuses_weak_passwords_and_keeps_the_link(app: TestApp) {
    let sys = sys_token(&app).await;
    let user = app
        .tb_create_user(&sys, tenant_admin_body("weak@example.com", &new_tenant()))
        .await;
    let token = app
        .tb_activation_token(&sys, user["id"]["id"].as_str().unwrap())
        .await;
    let (status, body) = activate(&app, &token, "abc").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "Password must be 5 or more characters in length.",
    );
    let (status, body) = activate(&app, &token, "").await;
    let (code, _) = assert_tb_shape(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(code, 31);
    app.tb_update_security(&sys, |settings| {
        settings["passwordPolicy"]["minimumDigits"] = json!(2);
        settings["passwordPolicy"]["minimumUppercaseLetters"] = json!(1);
    })
    .await;
    let (status, body) = activate(&app, &token, "nodigits").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "Password must contain 1 or more uppercase characters.\nPassword must contain 2 or more digit characters.",
    );
    // Still not active, and the link still works.
    let (status, _) = app.tb_try_login("weak@example.com", "nodigits").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = activate(&app, &token, "Strong-pass-12").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn expired_activation_link(app: TestApp) {
    let (app, clock) = app.on_manual_clock(|_| {}).await;
    let sys = sys_token(&app).await;
    let user = app
        .tb_create_user(&sys, tenant_admin_body("late@example.com", &new_tenant()))
        .await;
    let id = user["id"]["id"].as_str().unwrap().to_owned();
    let token = app.tb_activation_token(&sys, &id).await;
    clock.advance(25 * 3_600_000);
    let answer = raw_get(
        &app,
        &format!("/api/noauth/activate?activateToken={token}"),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    assert_eq!(
        answer.header("location").as_deref(),
        Some("/activationLinkExpired")
    );
    let (status, body) = activate(&app, &token, "late-pass-1").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "Activation token expired",
    );
    // A fresh link works; the TTL follows the security settings.
    let sys = sys_token(&app).await;
    app.tb_update_security(&sys, |settings| {
        settings["userActivationTokenTtl"] = json!(1)
    })
    .await;
    let fresh = app.tb_activation_token(&sys, &id).await;
    clock.advance(3_599_000);
    let answer = raw_get(
        &app,
        &format!("/api/noauth/activate?activateToken={fresh}"),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert!(answer
        .header("location")
        .unwrap()
        .starts_with("/login/createPassword"));
    clock.advance(2_000);
    let answer = raw_get(
        &app,
        &format!("/api/noauth/activate?activateToken={fresh}"),
        None,
    )
    .await;
    assert_eq!(
        answer.header("location").as_deref(),
        Some("/activationLinkExpired")
    );
    let another = app.tb_activation_token(&sys, &id).await;
    app.tb_activate(&another, "late-pass-1").await;
}

async fn credentials_can_be_disabled_and_enabled(app: TestApp) {
    let sys = sys_token(&app).await;
    let (id, token, _) = tenant_admin(&app, &sys, "toggle@example.com").await;
    let (_, refresh) = app.tb_login("toggle@example.com", "tenant-pass-1").await;
    let (status, body) = app
        .tb_post(
            &format!("/api/user/{id}/userCredentialsEnabled?userCredentialsEnabled=false"),
            &sys,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.tb_get("/api/auth/user", &token).await;
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
            Some(json!({"refreshToken": refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = app
        .tb_try_login("toggle@example.com", "tenant-pass-1")
        .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        10,
        "User account is not active",
    );
    let (_, read) = user_status(&app, &sys, &id).await;
    assert_eq!(read["additionalInfo"]["userCredentialsEnabled"], false);
    let (status, body) = app
        .tb_post(
            &format!("/api/user/{id}/userCredentialsEnabled?userCredentialsEnabled=true"),
            &sys,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.tb_login("toggle@example.com", "tenant-pass-1").await;
    // Bad values and ids.
    let (status, body) = app
        .tb_post(
            &format!("/api/user/{id}/userCredentialsEnabled?userCredentialsEnabled=maybe"),
            &sys,
            json!({}),
        )
        .await;
    assert_eq!(
        assert_tb_shape(status, &body, StatusCode::BAD_REQUEST).0,
        31
    );
    let (status, body) = app
        .tb_post(
            "/api/user/abc/userCredentialsEnabled?userCredentialsEnabled=true",
            &sys,
            json!({}),
        )
        .await;
    assert_eq!(
        assert_tb_shape(status, &body, StatusCode::BAD_REQUEST).0,
        31
    );
    let missing = uuid::Uuid::new_v4();
    let (status, body) = app
        .tb_post(
            &format!("/api/user/{missing}/userCredentialsEnabled?userCredentialsEnabled=true"),
            &sys,
            json!({}),
        )
        .await;
    assert_tb_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        32,
        &format!("User with id [{missing}] is not found"),
    );
    // Nobody disables itself.
    let sys_id = app.tb_me(&sys).await["id"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = app
        .tb_post(
            &format!("/api/user/{sys_id}/userCredentialsEnabled?userCredentialsEnabled=false"),
            &sys,
            json!({}),
        )
        .await;
    assert_eq!(assert_tb_shape(status, &body, StatusCode::FORBIDDEN).0, 20);
    app.tb_me(&sys).await;
}

async fn reset_by_email(app: &TestApp, body: &[u8]) -> common::RawAnswer {
    app.tb_send(
        Method::POST,
        "/api/noauth/resetPasswordByEmail",
        &[("content-type", "application/json")],
        Some(body.to_vec()),
    )
    .await
}

async fn reset_password_by_email_always_answers_200(app: TestApp) {
    let sys = sys_token(&app).await;
    tenant_admin(&app, &sys, "real@example.com").await;
    for body in [
        json!({"email": "real@example.com"}),
        json!({"email": "unknown@example.com"}),
        json!({"email": "not an email"}),
        json!({"email": ""}),
        json!({"email": "x".repeat(10_000)}),
        json!({}),
    ] {
        let answer = reset_by_email(&app, &serde_json::to_vec(&body).unwrap()).await;
        assert_eq!(answer.status, StatusCode::OK, "{body}: {}", answer.text);
        assert_eq!(answer.text, "", "empty body");
    }
    // Not a JSON object: 400 in ThingsBoard's shape.
    for raw in [&b"{"[..], b"[]", b"\"real@example.com\""] {
        let answer = reset_by_email(&app, raw).await;
        assert_eq!(
            assert_tb_shape(answer.status, &answer.json(), StatusCode::BAD_REQUEST).0,
            31
        );
    }
    // Without a mail server nothing changes for the user.
    app.tb_login("real@example.com", "tenant-pass-1").await;
}

/// A reset token for an activated user, from a login after its password expired, and a
/// pair of that user still alive at that moment (refreshed after the clock moved).
async fn expired_login_reset_token(
    app: &TestApp,
    clock: &ManualClock,
    email: &str,
) -> (String, String) {
    let sys = sys_token(app).await;
    let (_, _, refresh) = app
        .tb_new_user(
            &sys,
            tenant_admin_body(email, &new_tenant()),
            "tenant-pass-1",
        )
        .await;
    app.tb_update_security(&sys, |settings| {
        settings["passwordPolicy"]["passwordExpirationPeriodDays"] = json!(1);
    })
    .await;
    clock.advance(2 * 86_400_000);
    let (status, body) = app.tb_try_login(email, "tenant-pass-1").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        15,
        "User password expired!",
    );
    let reset = body["resetToken"].as_str().unwrap().to_owned();
    let (status, body) = app
        .tb_request(
            Method::POST,
            "/api/auth/token",
            None,
            Some(json!({"refreshToken": refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "refresh after expiry: {body}");
    let (live, _) = tb_pair(&body);
    app.tb_me(&live).await;
    (reset, live)
}

async fn reset_link_check_redirects_and_is_rate_limited(app: TestApp) {
    let (app, clock) = app.on_manual_clock(|_| {}).await;
    let (reset, _) = expired_login_reset_token(&app, &clock, "check@example.com").await;
    let path = format!("/api/noauth/resetPassword?resetToken={reset}");
    for _ in 0..5 {
        let answer = raw_get(&app, &path, None).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
        assert_eq!(
            answer.header("location").as_deref(),
            Some(format!("/login/resetPassword?resetToken={reset}").as_str())
        );
    }
    let answer = raw_get(&app, &path, None).await;
    assert_eq!(
        answer.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        answer.text
    );
    assert_eq!(answer.text, "", "429 has an empty body");
    // Unknown tokens are 409 (not counted against anyone).
    let answer = raw_get(&app, "/api/noauth/resetPassword?resetToken=unknown", None).await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(answer.text, "");
    let answer = raw_get(&app, "/api/noauth/resetPassword", None).await;
    assert_eq!(
        assert_tb_shape(answer.status, &answer.json(), StatusCode::BAD_REQUEST).0,
        31
    );
    // Time gives checks back; the token itself still works.
    clock.advance(61_000);
    let answer = raw_get(&app, &path, None).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let (status, body) = reset_post(&app, &reset, "new-pass-22").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn reset_post(app: &TestApp, token: &str, password: &str) -> (StatusCode, Value) {
    app.tb_request(
        Method::POST,
        "/api/noauth/resetPassword",
        None,
        Some(json!({"resetToken": token, "password": password})),
    )
    .await
}

async fn reset_password_sets_the_password_once(app: TestApp) {
    let (app, clock) = app.on_manual_clock(|_| {}).await;
    let (reset, old_token) = expired_login_reset_token(&app, &clock, "reset@example.com").await;
    // Policy violations first: nothing is used up.
    let (status, body) = reset_post(&app, &reset, "abc").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "Password must be 5 or more characters in length.",
    );
    let (status, body) = reset_post(&app, "never-issued", "new-pass-22").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "Invalid reset token!",
    );
    let answer = app
        .tb_send(
            Method::POST,
            "/api/noauth/resetPassword",
            &[("content-type", "application/json")],
            Some(
                serde_json::to_vec(&json!({"resetToken": reset, "password": "new-pass-22"}))
                    .unwrap(),
            ),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.text, "", "200 with an empty body");
    let (status, body) = app.tb_get("/api/auth/user", &old_token).await;
    assert_tb_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        11,
        "Token has expired",
    );
    let (status, _) = app.tb_try_login("reset@example.com", "tenant-pass-1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (token, _) = app.tb_login("reset@example.com", "new-pass-22").await;
    app.tb_me(&token).await;
    // Reused token.
    let (status, body) = reset_post(&app, &reset, "third-pass-33").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "Invalid reset token!",
    );
    let answer = raw_get(
        &app,
        &format!("/api/noauth/resetPassword?resetToken={reset}"),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    app.tb_login("reset@example.com", "new-pass-22").await;
    // Bad bodies.
    for bad in [
        json!({}),
        json!({"resetToken": "x"}),
        json!([]),
        json!({"resetToken": 1, "password": 2}),
    ] {
        let (status, body) = app
            .tb_request(
                Method::POST,
                "/api/noauth/resetPassword",
                None,
                Some(bad.clone()),
            )
            .await;
        assert_eq!(
            assert_tb_shape(status, &body, StatusCode::BAD_REQUEST).0,
            31,
            "{bad}"
        );
    }
}

async fn expired_reset_link(app: TestApp) {
    let (app, clock) = app.on_manual_clock(|_| {}).await;
    let (reset, _) = expired_login_reset_token(&app, &clock, "stale@example.com").await;
    clock.advance(24 * 3_600_000 + 1_000);
    let answer = raw_get(
        &app,
        &format!("/api/noauth/resetPassword?resetToken={reset}"),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    assert_eq!(
        answer.header("location").as_deref(),
        Some("/passwordResetLinkExpired")
    );
    let (status, body) = reset_post(&app, &reset, "new-pass-22").await;
    assert_tb_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        31,
        "Password reset token expired",
    );
    let (status, body) = app.tb_try_login("stale@example.com", "new-pass-22").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}
