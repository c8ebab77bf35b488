//! OAuth2 administration of the ThingsBoard dialect (T40–T53): clients (create, read, update,
//! delete, secrets masked and sealed, ThingsBoard's validation rules, tenant isolation, paging),
//! the login processing URL, registration templates (bundled ones seeded once), domains
//! (names, uniqueness, clients), the public list of login buttons matched by host, who may
//! call what, and hostile input.

mod common;

use common::{
    assert_tb_error, assert_tb_shape, tb_id, Engine, TestApp, ADMIN_PASSWORD, TB_NULL_UUID,
};
use gatehouse_core::sealing::SealingKey;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::{Connection, Row};

both_engines!(
    client_is_created_read_updated_and_deleted,
    secrets_are_sealed_masked_and_kept_on_a_masked_save,
    public_clients_need_no_secret,
    validation_follows_thingsboards_rules,
    tenant_administrators_see_only_their_tenants_clients,
    client_infos_are_paged_searched_sorted_and_listed_by_id,
    login_processing_url_is_a_json_string,
    templates_are_seeded_once_saved_and_deleted,
    domains_are_saved_listed_and_deleted,
    domain_names_are_validated_and_unique,
    domain_clients_are_replaced_and_follow_deletions,
    public_list_matches_the_requested_host,
    public_list_honours_forwarded_headers_only_when_trusted,
    authorities_are_enforced,
    hostile_input_is_refused,
);

const DENIED: &str = "You don't have permission to perform this operation!";
const MASK: &str = "********";

/// A token of the bootstrap system administrator.
async fn sys(app: &TestApp) -> String {
    app.tb_login("admin", ADMIN_PASSWORD).await.0
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A complete client as ThingsBoard's client sends it (the §7 snippet).
fn client_body(title: &str, secret: &str) -> Value {
    json!({
        "title": title, "clientId": "cid", "clientSecret": secret,
        "authorizationUri": "https://accounts.google.com/o/oauth2/v2/auth",
        "accessTokenUri": "https://oauth2.googleapis.com/token",
        "scope": ["email", "openid", "profile"], "userNameAttributeName": "email",
        "clientAuthenticationMethod": "BASIC", "loginButtonLabel": title,
        "loginButtonIcon": "google-logo",
        "additionalInfo": {"providerName": "Google"},
        "mapperConfig": {"type": "BASIC", "allowUserCreation": true, "activateUser": false,
            "basic": {"emailAttributeKey": "email", "tenantNameStrategy": "DOMAIN"}}
    })
}

async fn save_client(app: &TestApp, token: &str, body: Value) -> (StatusCode, Value) {
    app.tb_post("/api/oauth2/client", token, body).await
}

async fn create_client(app: &TestApp, token: &str, body: Value) -> Value {
    let (status, saved) = save_client(app, token, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "save client {body}: {saved}");
    saved
}

fn id_of(entity: &Value) -> String {
    entity["id"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {entity}"))
        .to_owned()
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    app.tb_request(method, path, Some(&bearer(token)), body)
        .await
}

/// A new tenant administrator of a new tenant: (token, tenant id).
async fn tenant_admin(app: &TestApp, sys: &str, email: &str) -> (String, String) {
    let tenant = uuid::Uuid::new_v4().to_string();
    let (_, token, _) = app
        .tb_new_user(
            sys,
            json!({"email": email, "authority": "TENANT_ADMIN", "tenantId": tb_id("TENANT", &tenant)}),
            "tenant-pass-1",
        )
        .await;
    (token, tenant)
}

/// A customer user of the tenant administrator's tenant.
async fn customer(app: &TestApp, ta: &str, email: &str) -> String {
    let customer = uuid::Uuid::new_v4().to_string();
    let (_, token, _) = app
        .tb_new_user(
            ta,
            json!({"email": email, "authority": "CUSTOMER_USER", "customerId": tb_id("CUSTOMER", &customer)}),
            "customer-pass-1",
        )
        .await;
    token
}

/// The values of one text column of a query, on the app's database.
async fn column(app: &TestApp, sql: &str, name: &str) -> Vec<Option<String>> {
    let url = app.settings.database_url();
    match app.engine {
        Engine::Sqlite => {
            let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .fetch_all(&mut connection)
                .await
                .unwrap();
            let _ = connection.close().await;
            rows.iter()
                .map(|row| row.get::<Option<String>, _>(name))
                .collect()
        }
        Engine::Postgres => {
            let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .fetch_all(&mut connection)
                .await
                .unwrap();
            let _ = connection.close().await;
            rows.iter()
                .map(|row| row.get::<Option<String>, _>(name))
                .collect()
        }
    }
}

/// The sealed secret and mapper password stored for a client.
async fn sealed(app: &TestApp, id: &str) -> (String, Option<String>) {
    let secret = column(
        app,
        &format!("SELECT client_secret_sealed AS v FROM oauth2_clients WHERE id = '{id}'"),
        "v",
    )
    .await;
    let password = column(
        app,
        &format!("SELECT mapper_password_sealed AS v FROM oauth2_clients WHERE id = '{id}'"),
        "v",
    )
    .await;
    (
        secret[0].clone().expect("sealed secret"),
        password[0].clone(),
    )
}

async fn client_is_created_read_updated_and_deleted(app: TestApp) {
    let token = sys(&app).await;
    let saved = create_client(&app, &token, client_body("Google", "s3cret")).await;
    let id = id_of(&saved);
    assert_eq!(saved["id"]["entityType"], "OAUTH2_CLIENT");
    assert!(saved["createdTime"].is_i64(), "{saved}");
    assert_eq!(saved["tenantId"], tb_id("TENANT", TB_NULL_UUID));
    assert_eq!(saved["title"], "Google");
    assert_eq!(saved["name"], "Google");
    assert_eq!(saved["clientId"], "cid");
    assert_eq!(saved["clientSecret"], MASK);
    assert_eq!(saved["scope"], json!(["email", "openid", "profile"]));
    assert_eq!(saved["platforms"], json!([]));
    assert_eq!(saved["additionalInfo"], json!({"providerName": "Google"}));
    assert_eq!(saved["mapperConfig"]["type"], "BASIC");
    assert_eq!(saved["mapperConfig"]["allowUserCreation"], true);
    assert_eq!(
        saved["mapperConfig"]["basic"]["tenantNameStrategy"],
        "DOMAIN"
    );
    assert_eq!(saved["mapperConfig"]["basic"]["emailAttributeKey"], "email");
    // GET answers the same.
    let (status, read) = app
        .tb_get(&format!("/api/oauth2/client/{id}"), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read, saved);
    // An edited copy of what was read updates the client (tenant and creation time stay).
    let mut edited = read.clone();
    edited["title"] = json!("Google (staff)");
    edited["platforms"] = json!(["WEB", "IOS"]);
    edited["tenantId"] = tb_id("TENANT", &uuid::Uuid::new_v4().to_string());
    edited["createdTime"] = json!(1);
    let updated = create_client(&app, &token, edited).await;
    assert_eq!(id_of(&updated), id);
    assert_eq!(updated["title"], "Google (staff)");
    assert_eq!(updated["name"], "Google (staff)");
    assert_eq!(updated["platforms"], json!(["WEB", "IOS"]));
    assert_eq!(updated["createdTime"], saved["createdTime"]);
    assert_eq!(updated["tenantId"], saved["tenantId"]);
    // Updating an unknown client: 404.
    let unknown = uuid::Uuid::new_v4().to_string();
    let mut body = client_body("x", "s");
    body["id"] = tb_id("OAUTH2_CLIENT", &unknown);
    let (status, answer) = save_client(&app, &token, body).await;
    assert_tb_error(
        status,
        &answer,
        StatusCode::NOT_FOUND,
        32,
        &format!("Oauth2 client with id [{unknown}] is not found"),
    );
    // Delete: 200 empty, then 404 for GET and DELETE.
    let path = format!("/api/oauth2/client/{id}");
    let (status, answer) = call(&app, Method::DELETE, &path, &token, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, Value::Null);
    let message = format!("Oauth2 client with id [{id}] is not found");
    let (status, answer) = app.tb_get(&path, &token).await;
    assert_tb_error(status, &answer, StatusCode::NOT_FOUND, 32, &message);
    let (status, answer) = call(&app, Method::DELETE, &path, &token, None).await;
    assert_tb_error(status, &answer, StatusCode::NOT_FOUND, 32, &message);
    // A malformed id: 400.
    let (status, answer) = app.tb_get("/api/oauth2/client/not-a-uuid", &token).await;
    let (code, _) = assert_tb_shape(status, &answer, StatusCode::BAD_REQUEST);
    assert_eq!(code, 31);
}

async fn secrets_are_sealed_masked_and_kept_on_a_masked_save(app: TestApp) {
    // A known installation key, to open what is stored.
    let key = SealingKey::generate_base64();
    let engine = app.engine;
    app.stop().await;
    let configured = key.clone();
    let app = TestApp::spawn_with(
        engine,
        move |settings| settings.mfa.encryption_key = Some(configured),
        None,
    )
    .await;
    let opener = SealingKey::parse_base64(&key).unwrap();
    let open = |sealed: &str, owner: &str| {
        String::from_utf8(opener.open(sealed, owner).expect("opens")).unwrap()
    };
    let token = sys(&app).await;
    let secret = "provider-secret-7f3a9c1e55";
    let password = "mapper-password-2b8d4e6f";
    let mut body = client_body("Custom", secret);
    body["mapperConfig"] = json!({"type": "CUSTOM", "allowUserCreation": true,
        "custom": {"url": "https://mapper.example.com/map", "username": "u",
                   "password": password, "sendToken": true}});
    let saved = create_client(&app, &token, body).await;
    let id = id_of(&saved);
    assert_eq!(saved["clientSecret"], MASK);
    assert_eq!(saved["mapperConfig"]["custom"]["password"], MASK);
    assert_eq!(saved["mapperConfig"]["custom"]["username"], "u");
    assert_eq!(saved["mapperConfig"]["custom"]["sendToken"], true);
    // Stored sealed, bound to the client: never in clear anywhere in the database.
    assert!(!app.database_contains(secret).await, "the secret is stored");
    assert!(
        !app.database_contains(password).await,
        "the password is stored"
    );
    assert!(
        app.database_contains("mapper.example.com").await,
        "the scan finds text"
    );
    let (sealed_secret, sealed_password) = sealed(&app, &id).await;
    let sealed_password = sealed_password.expect("sealed password");
    assert_eq!(open(&sealed_secret, &format!("oauth2_client:{id}")), secret);
    assert_eq!(
        open(
            &sealed_password,
            &format!("oauth2_client:{id}:mapper_password")
        ),
        password
    );
    assert!(opener.open(&sealed_secret, "oauth2_client:other").is_err());
    // An edited copy of the GET (masks included) keeps both, byte for byte.
    let (_, mut read) = app
        .tb_get(&format!("/api/oauth2/client/{id}"), &token)
        .await;
    assert_eq!(read["clientSecret"], MASK);
    read["title"] = json!("Custom 2");
    let updated = create_client(&app, &token, read.clone()).await;
    assert_eq!(updated["clientSecret"], MASK);
    assert_eq!(updated["title"], "Custom 2");
    assert_eq!(
        sealed(&app, &id).await,
        (sealed_secret.clone(), Some(sealed_password.clone()))
    );
    // A new secret replaces it; an absent password removes it.
    read["clientSecret"] = json!("rotated-secret-91c0");
    read["mapperConfig"]["custom"]["password"] = Value::Null;
    let updated = create_client(&app, &token, read.clone()).await;
    assert!(
        updated["mapperConfig"]["custom"]["password"].is_null(),
        "{updated}"
    );
    let (rotated, no_password) = sealed(&app, &id).await;
    assert_eq!(
        open(&rotated, &format!("oauth2_client:{id}")),
        "rotated-secret-91c0"
    );
    assert_eq!(no_password, None);
    // The mask where nothing is stored is refused: on create, and for a removed password.
    read["mapperConfig"]["custom"]["password"] = json!(MASK);
    let (status, answer) = save_client(&app, &token, read).await;
    assert_tb_error(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        31,
        "custom.password must be the mapper service's password, not the mask of a stored one",
    );
    let (status, answer) = save_client(&app, &token, client_body("Copy", MASK)).await;
    assert_tb_error(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        31,
        "clientSecret must be the provider's secret, not the mask of a stored one",
    );
    // The infos never carry secrets.
    let (status, page) = app
        .tb_get("/api/oauth2/client/infos?pageSize=10&page=0", &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(!page.to_string().contains("rotated-secret"), "{page}");
    assert!(page["data"][0].get("clientSecret").is_none(), "{page}");
}

async fn public_clients_need_no_secret(app: TestApp) {
    let token = sys(&app).await;
    // BASIC and POST need a secret.
    for method in ["BASIC", "POST"] {
        let mut body = client_body("Confidential", "");
        body["clientAuthenticationMethod"] = json!(method);
        let (status, answer) = save_client(&app, &token, body.clone()).await;
        assert_tb_error(
            status,
            &answer,
            StatusCode::BAD_REQUEST,
            31,
            "Client secret should be specified!",
        );
        body.as_object_mut().unwrap().remove("clientSecret");
        let (status, answer) = save_client(&app, &token, body).await;
        assert_tb_error(
            status,
            &answer,
            StatusCode::BAD_REQUEST,
            31,
            "Client secret should be specified!",
        );
    }
    // Any other method is a public client (PKCE): no secret needed. It reads the mask too
    // (ThingsBoard's clients require a non-empty clientSecret), and saving that keeps none.
    let mut body = client_body("Public", "");
    body["clientAuthenticationMethod"] = json!("NONE");
    let saved = create_client(&app, &token, body).await;
    assert_eq!(saved["clientSecret"], MASK);
    let again = create_client(&app, &token, saved.clone()).await;
    assert_eq!(again["clientSecret"], MASK);
    assert_eq!(saved["clientAuthenticationMethod"], "NONE");
    let (stored, _) = sealed(&app, &id_of(&saved)).await;
    assert_eq!(stored, "");
    // Turning it confidential needs a real secret: its (empty) secret's mask is no secret.
    let mut edited = saved.clone();
    edited["clientAuthenticationMethod"] = json!("BASIC");
    edited["clientSecret"] = json!(MASK);
    let (status, answer) = save_client(&app, &token, edited.clone()).await;
    assert_tb_error(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        31,
        "Client secret should be specified!",
    );
    edited["clientSecret"] = json!("now-confidential");
    let updated = create_client(&app, &token, edited).await;
    assert_eq!(updated["clientSecret"], MASK);
}

async fn validation_follows_thingsboards_rules(app: TestApp) {
    let token = sys(&app).await;
    type Change = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "no title",
            Box::new(|b| {
                b.as_object_mut().unwrap().remove("title");
            }),
            "title should be specified!",
        ),
        (
            "long title",
            Box::new(|b| b["title"] = json!("t".repeat(101))),
            "title length must be equal or less than 100",
        ),
        (
            "no mapper",
            Box::new(|b| {
                b.as_object_mut().unwrap().remove("mapperConfig");
            }),
            "Mapper config should be specified!",
        ),
        (
            "no mapper type",
            Box::new(|b| {
                b["mapperConfig"].as_object_mut().unwrap().remove("type");
            }),
            "Mapper config type should be specified!",
        ),
        (
            "no client id",
            Box::new(|b| b["clientId"] = json!("")),
            "Client ID should be specified!",
        ),
        (
            "no authorization uri",
            Box::new(|b| {
                b.as_object_mut().unwrap().remove("authorizationUri");
            }),
            "Authorization uri should be specified!",
        ),
        (
            "no token uri",
            Box::new(|b| b["accessTokenUri"] = json!(" ")),
            "Token uri should be specified!",
        ),
        (
            "no scope",
            Box::new(|b| b["scope"] = json!([])),
            "Scope should be specified!",
        ),
        (
            "no user name attribute",
            Box::new(|b| b["userNameAttributeName"] = json!("")),
            "User name attribute name should be specified!",
        ),
        (
            "no method",
            Box::new(|b| b["clientAuthenticationMethod"] = json!("")),
            "Client authentication method should be specified!",
        ),
        (
            "no label",
            Box::new(|b| b["loginButtonLabel"] = json!("")),
            "Login button label should be specified!",
        ),
        (
            "basic without basic",
            Box::new(|b| {
                b["mapperConfig"].as_object_mut().unwrap().remove("basic");
            }),
            "Basic config should be specified!",
        ),
        (
            "basic without email key",
            Box::new(|b| {
                b["mapperConfig"]["basic"]
                    .as_object_mut()
                    .unwrap()
                    .remove("emailAttributeKey");
            }),
            "Email attribute key should be specified!",
        ),
        (
            "apple without email key",
            Box::new(|b| {
                b["mapperConfig"]["type"] = json!("APPLE");
                b["mapperConfig"]["basic"]["emailAttributeKey"] = json!("");
            }),
            "Email attribute key should be specified!",
        ),
        (
            "github with email key",
            Box::new(|b| b["mapperConfig"]["type"] = json!("GITHUB")),
            "Email attribute key cannot be configured for GITHUB mapper type!",
        ),
        (
            "github without basic",
            Box::new(|b| {
                b["mapperConfig"]["type"] = json!("GITHUB");
                b["mapperConfig"]["basic"] = Value::Null;
            }),
            "Basic config should be specified!",
        ),
        (
            "no tenant strategy",
            Box::new(|b| {
                b["mapperConfig"]["basic"]
                    .as_object_mut()
                    .unwrap()
                    .remove("tenantNameStrategy");
            }),
            "Tenant name strategy should be specified!",
        ),
        (
            "custom strategy without pattern",
            Box::new(|b| b["mapperConfig"]["basic"]["tenantNameStrategy"] = json!("CUSTOM")),
            "Tenant name pattern should be specified!",
        ),
        (
            "custom without custom",
            Box::new(|b| b["mapperConfig"]["type"] = json!("CUSTOM")),
            "Custom config should be specified!",
        ),
        (
            "custom without url",
            Box::new(|b| {
                b["mapperConfig"]["type"] = json!("CUSTOM");
                b["mapperConfig"]["custom"] = json!({"username": "u"});
            }),
            "Custom mapper URL should be specified!",
        ),
        (
            "custom with file url",
            Box::new(|b| {
                b["mapperConfig"]["type"] = json!("CUSTOM");
                b["mapperConfig"]["custom"] = json!({"url": "file:///etc/passwd"});
            }),
            "Custom mapper URL must be an http or https URL",
        ),
        (
            "custom with ftp url",
            Box::new(|b| {
                b["mapperConfig"]["type"] = json!("CUSTOM");
                b["mapperConfig"]["custom"] = json!({"url": "ftp://mapper.example.com"});
            }),
            "Custom mapper URL must be an http or https URL",
        ),
        (
            "javascript authorization uri",
            Box::new(|b| b["authorizationUri"] = json!("javascript:alert(1)")),
            "authorizationUri must be an http or https URL",
        ),
        (
            "relative token uri",
            Box::new(|b| b["accessTokenUri"] = json!("/token")),
            "accessTokenUri must be an http or https URL",
        ),
        (
            "bad userinfo uri",
            Box::new(|b| b["userInfoUri"] = json!("data:x")),
            "userInfoUri must be an http or https URL",
        ),
        (
            "bad jwks uri",
            Box::new(|b| b["jwkSetUri"] = json!("https://")),
            "jwkSetUri must be an http or https URL",
        ),
        (
            "additional info not an object",
            Box::new(|b| b["additionalInfo"] = json!("x")),
            "additionalInfo must be a JSON object",
        ),
        (
            "scope with spaces",
            Box::new(|b| b["scope"] = json!(["openid email"])),
            "scope entries must be single non-empty words",
        ),
        (
            "control characters",
            Box::new(|b| b["loginButtonLabel"] = json!("a\u{7}b")),
            "loginButtonLabel must not contain control characters",
        ),
    ];
    for (name, change, message) in cases {
        let mut body = client_body("Google", "s");
        change(&mut body);
        let (status, answer) = save_client(&app, &token, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {answer}");
        assert_tb_error(status, &answer, StatusCode::BAD_REQUEST, 31, message);
    }
    // Wrong values of the enumerations are refused by the parser.
    for (pointer, value) in [
        ("/mapperConfig/type", json!("LDAP")),
        ("/mapperConfig/basic/tenantNameStrategy", json!("RANDOM")),
        ("/platforms", json!(["WINDOWS"])),
    ] {
        let mut body = client_body("Google", "s");
        body["platforms"] = json!([]);
        *body.pointer_mut(pointer).unwrap() = value;
        let (status, answer) = save_client(&app, &token, body).await;
        let (code, message) = assert_tb_shape(status, &answer, StatusCode::BAD_REQUEST);
        assert_eq!(code, 31);
        assert!(message.starts_with("Invalid request body: "), "{message}");
    }
    // GITHUB without an email key, APPLE with one, CUSTOM with a URL: fine.
    let mut github = client_body("GitHub", "s");
    github["mapperConfig"] = json!({"type": "GITHUB", "basic": {"tenantNameStrategy": "EMAIL"}});
    create_client(&app, &token, github).await;
    let mut apple = client_body("Apple", "s");
    apple["mapperConfig"]["type"] = json!("APPLE");
    apple["clientAuthenticationMethod"] = json!("POST");
    create_client(&app, &token, apple).await;
    let mut custom = client_body("Custom", "s");
    custom["mapperConfig"] =
        json!({"type": "CUSTOM", "custom": {"url": "http://10.0.0.9:8080/map"}});
    create_client(&app, &token, custom).await;
    let mut pattern = client_body("Pattern", "s");
    pattern["mapperConfig"]["basic"]["tenantNameStrategy"] = json!("CUSTOM");
    pattern["mapperConfig"]["basic"]["tenantNamePattern"] = json!("%{email}");
    let saved = create_client(&app, &token, pattern).await;
    assert_eq!(
        saved["mapperConfig"]["basic"]["tenantNamePattern"],
        "%{email}"
    );
    // Nothing invalid was stored.
    let (_, page) = app
        .tb_get("/api/oauth2/client/infos?pageSize=100&page=0", &token)
        .await;
    assert_eq!(page["totalElements"], 4, "{page}");
}

async fn tenant_administrators_see_only_their_tenants_clients(app: TestApp) {
    let sys_token = sys(&app).await;
    let (ta1, tenant1) = tenant_admin(&app, &sys_token, "ta1@example.com").await;
    let (ta2, _) = tenant_admin(&app, &sys_token, "ta2@example.com").await;
    let own = create_client(&app, &ta1, client_body("Tenant one", "s1")).await;
    assert_eq!(own["tenantId"], tb_id("TENANT", &tenant1));
    let other = create_client(&app, &ta2, client_body("Tenant two", "s2")).await;
    let system = create_client(&app, &sys_token, client_body("System", "s0")).await;
    let (own_id, other_id, system_id) = (id_of(&own), id_of(&other), id_of(&system));
    // Lists: each tenant administrator sees its own; the system administrator all.
    let titles = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|info| info["title"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, page) = app
        .tb_get("/api/oauth2/client/infos?pageSize=10&page=0", &ta1)
        .await;
    assert_eq!(titles(&page), ["Tenant one"]);
    let (_, page) = app
        .tb_get("/api/oauth2/client/infos?pageSize=10&page=0", &ta2)
        .await;
    assert_eq!(titles(&page), ["Tenant two"]);
    let (_, page) = app
        .tb_get("/api/oauth2/client/infos?pageSize=10&page=0", &sys_token)
        .await;
    assert_eq!(titles(&page), ["Tenant one", "Tenant two", "System"]);
    // Another tenant's (or the system's) client is as missing as an unknown one.
    for foreign in [&other_id, &system_id] {
        let path = format!("/api/oauth2/client/{foreign}");
        let message = format!("Oauth2 client with id [{foreign}] is not found");
        let (status, answer) = app.tb_get(&path, &ta1).await;
        assert_tb_error(status, &answer, StatusCode::NOT_FOUND, 32, &message);
        let mut body = client_body("Hijacked", "x");
        body["id"] = tb_id("OAUTH2_CLIENT", foreign);
        let (status, answer) = save_client(&app, &ta1, body).await;
        assert_tb_error(status, &answer, StatusCode::NOT_FOUND, 32, &message);
        let (status, answer) = call(&app, Method::DELETE, &path, &ta1, None).await;
        assert_tb_error(status, &answer, StatusCode::NOT_FOUND, 32, &message);
    }
    let (_, list) = app
        .tb_get(
            &format!("/api/oauth2/client/list?clientIds={own_id},{other_id},{system_id}"),
            &ta1,
        )
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"]["id"], own_id.as_str());
    // Untouched.
    let (status, read) = app
        .tb_get(&format!("/api/oauth2/client/{other_id}"), &ta2)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["title"], "Tenant two");
    // The system administrator manages a tenant's client; it stays the tenant's.
    let mut edited = own.clone();
    edited["title"] = json!("Renamed by sysadmin");
    let updated = create_client(&app, &sys_token, edited).await;
    assert_eq!(updated["tenantId"], tb_id("TENANT", &tenant1));
    let (status, read) = app
        .tb_get(&format!("/api/oauth2/client/{own_id}"), &ta1)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["title"], "Renamed by sysadmin");
    // A tenant administrator deletes its own.
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/oauth2/client/{own_id}"),
        &ta1,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

async fn client_infos_are_paged_searched_sorted_and_listed_by_id(app: TestApp) {
    let token = sys(&app).await;
    let mut ids = Vec::new();
    for title in ["Delta", "alpha", "Charlie", "bravo", "Echo"] {
        let mut body = client_body(title, "s");
        body["platforms"] = json!(["WEB"]);
        ids.push(id_of(&create_client(&app, &token, body).await));
    }
    let titles = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|info| info["title"].as_str().unwrap().to_owned())
            .collect()
    };
    let get = |query: String| {
        let (app, token) = (&app, &token);
        async move {
            app.tb_get(&format!("/api/oauth2/client/infos?{query}"), token)
                .await
        }
    };
    let (status, page) = get("pageSize=2&page=0".into()).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(titles(&page), ["Delta", "alpha"]);
    assert_eq!(page["totalElements"], 5);
    assert_eq!(page["totalPages"], 3);
    assert_eq!(page["hasNext"], true);
    let info = &page["data"][0];
    assert_eq!(info["id"], tb_id("OAUTH2_CLIENT", &ids[0]));
    assert_eq!(info["providerName"], "Google");
    assert_eq!(info["platforms"], json!(["WEB"]));
    assert_eq!(info["name"], "Delta");
    assert!(info["createdTime"].is_i64());
    let (_, page) = get("pageSize=2&page=2".into()).await;
    assert_eq!(titles(&page), ["Echo"]);
    assert_eq!(page["hasNext"], false);
    let (_, page) = get("pageSize=2&page=7".into()).await;
    assert_eq!(titles(&page), Vec::<String>::new());
    let (_, page) = get("pageSize=10&page=0&textSearch=HA".into()).await;
    assert_eq!(titles(&page), ["alpha", "Charlie"]);
    assert_eq!(page["totalElements"], 2);
    let (_, page) = get("pageSize=10&page=0&sortProperty=title&sortOrder=desc".into()).await;
    assert_eq!(
        titles(&page),
        ["Echo", "Delta", "Charlie", "bravo", "alpha"]
    );
    let (_, page) = get("pageSize=10&page=0&sortProperty=createdTime&sortOrder=DESC".into()).await;
    assert_eq!(titles(&page)[0], "Echo");
    // Percent and underscore are searched literally.
    let (_, page) = get("pageSize=10&page=0&textSearch=%25".into()).await;
    assert_eq!(page["totalElements"], 0);
    for (query, message) in [
        ("pageSize=0&page=0", "pageSize must be between 1 and 1000"),
        (
            "pageSize=1001&page=0",
            "pageSize must be between 1 and 1000",
        ),
        (
            "pageSize=10&page=0&sortProperty=secret",
            "sortProperty must be createdTime or title, not 'secret'",
        ),
        (
            "pageSize=10&page=0&sortOrder=UP",
            "sortOrder must be ASC or DESC",
        ),
        (
            "page=0",
            "Invalid request parameters: pageSize and page must be given",
        ),
    ] {
        let (status, answer) = get(query.into()).await;
        assert_tb_error(status, &answer, StatusCode::BAD_REQUEST, 31, message);
    }
    let (status, answer) = get("pageSize=x&page=0".into()).await;
    let (code, message) = assert_tb_shape(status, &answer, StatusCode::BAD_REQUEST);
    assert_eq!(code, 31);
    assert!(
        message.starts_with("Invalid request parameters"),
        "{message}"
    );
    // By ids: comma-separated or repeated, on /list and on /infos; unknown ids left out.
    let unknown = uuid::Uuid::new_v4().to_string();
    let (status, list) = app
        .tb_get(
            &format!(
                "/api/oauth2/client/list?clientIds={},{}&clientIds={unknown}",
                ids[1], ids[3]
            ),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let listed: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|info| info["title"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["alpha", "bravo"]);
    let (status, list) = get(format!("clientIds={}", ids[4])).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["title"], "Echo");
    let (status, answer) = app.tb_get("/api/oauth2/client/list", &token).await;
    assert_tb_error(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        31,
        "Invalid request parameters: clientIds must be given",
    );
    let (status, answer) = app
        .tb_get("/api/oauth2/client/list?clientIds=nope", &token)
        .await;
    assert_tb_error(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        31,
        "Invalid request parameters: clientIds must hold UUIDs, not 'nope'",
    );
}

async fn login_processing_url_is_a_json_string(app: TestApp) {
    let token = sys(&app).await;
    let answer = app
        .tb_send(
            Method::GET,
            "/api/oauth2/loginProcessingUrl",
            &[("x-authorization", &bearer(&token))],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text, "\"/login/oauth2/code/\"");
    assert!(answer
        .header("content-type")
        .unwrap_or_default()
        .starts_with("application/json"));
    let (ta, _) = tenant_admin(&app, &token, "ta@example.com").await;
    let (status, body) = app.tb_get("/api/oauth2/loginProcessingUrl", &ta).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!("/login/oauth2/code/"));
}

async fn templates_are_seeded_once_saved_and_deleted(app: TestApp) {
    let token = sys(&app).await;
    let (status, templates) = app.tb_get("/api/oauth2/config/template", &token).await;
    assert_eq!(status, StatusCode::OK, "{templates}");
    let providers = |templates: &Value| -> Vec<String> {
        templates
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["providerId"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        providers(&templates),
        ["Apple", "Facebook", "Github", "Google"]
    );
    let google = templates
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["providerId"] == "Google")
        .unwrap()
        .clone();
    assert_eq!(
        google["id"]["entityType"],
        "OAUTH2_CLIENT_REGISTRATION_TEMPLATE"
    );
    assert_eq!(google["name"], "Google");
    assert_eq!(
        google["authorizationUri"],
        "https://accounts.google.com/o/oauth2/v2/auth"
    );
    assert_eq!(
        google["accessTokenUri"],
        "https://oauth2.googleapis.com/token"
    );
    assert_eq!(
        google["userInfoUri"],
        "https://openidconnect.googleapis.com/v1/userinfo"
    );
    assert_eq!(
        google["jwkSetUri"],
        "https://www.googleapis.com/oauth2/v3/certs"
    );
    assert_eq!(google["scope"], json!(["email", "openid", "profile"]));
    assert_eq!(google["userNameAttributeName"], "email");
    assert_eq!(google["clientAuthenticationMethod"], "BASIC");
    assert_eq!(google["loginButtonIcon"], "google-logo");
    assert_eq!(google["mapperConfig"]["type"], "BASIC");
    assert_eq!(
        google["mapperConfig"]["basic"]["emailAttributeKey"],
        "email"
    );
    assert_eq!(
        google["mapperConfig"]["basic"]["firstNameAttributeKey"],
        "given_name"
    );
    assert_eq!(
        google["mapperConfig"]["basic"]["lastNameAttributeKey"],
        "family_name"
    );
    assert_eq!(
        google["mapperConfig"]["basic"]["tenantNameStrategy"],
        "DOMAIN"
    );
    let by = |provider: &str| {
        templates
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["providerId"] == provider)
            .unwrap()
            .clone()
    };
    let github = by("Github");
    assert_eq!(github["mapperConfig"]["type"], "GITHUB");
    assert_eq!(github["userNameAttributeName"], "login");
    assert_eq!(github["scope"], json!(["read:user", "user:email"]));
    assert!(github["mapperConfig"]["basic"]["emailAttributeKey"].is_null());
    let apple = by("Apple");
    assert_eq!(apple["mapperConfig"]["type"], "APPLE");
    assert_eq!(apple["clientAuthenticationMethod"], "POST");
    assert_eq!(
        apple["authorizationUri"],
        "https://appleid.apple.com/auth/authorize?response_mode=form_post"
    );
    assert_eq!(apple["jwkSetUri"], "https://appleid.apple.com/auth/keys");
    let facebook = by("Facebook");
    assert_eq!(
        facebook["userInfoUri"],
        "https://graph.facebook.com/me?fields=id,name,first_name,last_name,email"
    );
    assert_eq!(facebook["scope"], json!(["email", "public_profile"]));
    // Tenant administrators read them too; the second read seeds nothing more.
    let (ta, _) = tenant_admin(&app, &token, "ta@example.com").await;
    let (status, again) = app.tb_get("/api/oauth2/config/template", &ta).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, templates);
    // A deleted bundled template stays deleted.
    let google_id = id_of(&google);
    let path = format!("/api/oauth2/config/template/{google_id}");
    let (status, answer) = call(&app, Method::DELETE, &path, &token, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, templates) = app.tb_get("/api/oauth2/config/template", &token).await;
    assert_eq!(providers(&templates), ["Apple", "Facebook", "Github"]);
    let (status, answer) = call(&app, Method::DELETE, &path, &token, None).await;
    assert_tb_error(
        status,
        &answer,
        StatusCode::NOT_FOUND,
        32,
        &format!("Oauth2 client registration template with id [{google_id}] is not found"),
    );
    // Save a new one, then update it.
    let mut custom = google.clone();
    custom.as_object_mut().unwrap().remove("id");
    custom["providerId"] = json!("Keycloak");
    custom["comment"] = json!("on premises");
    custom["authorizationUri"] =
        json!("https://sso.example.com/realms/iot/protocol/openid-connect/auth");
    let (status, saved) = app
        .tb_post("/api/oauth2/config/template", &token, custom.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["providerId"], "Keycloak");
    assert_eq!(saved["comment"], "on premises");
    assert_ne!(saved["id"], google["id"]);
    let mut edited = saved.clone();
    edited["loginButtonLabel"] = json!("Company SSO");
    let (status, updated) = app
        .tb_post("/api/oauth2/config/template", &token, edited)
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["id"], saved["id"]);
    assert_eq!(updated["createdTime"], saved["createdTime"]);
    assert_eq!(updated["loginButtonLabel"], "Company SSO");
    // Provider ids are unique.
    let mut duplicate = custom.clone();
    duplicate["providerId"] = json!("Github");
    let (status, answer) = app
        .tb_post("/api/oauth2/config/template", &token, duplicate)
        .await;
    assert_tb_error(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        31,
        "Client registration template with such providerId already exists!",
    );
    let mut renamed = updated.clone();
    renamed["providerId"] = json!("Apple");
    let (status, answer) = app
        .tb_post("/api/oauth2/config/template", &token, renamed)
        .await;
    assert_tb_error(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        31,
        "Client registration template with such providerId already exists!",
    );
    // The deleted provider id is free again.
    let mut google_again = custom.clone();
    google_again["providerId"] = json!("Google");
    let (status, _) = app
        .tb_post("/api/oauth2/config/template", &token, google_again)
        .await;
    assert_eq!(status, StatusCode::OK);
    // Invalid templates.
    for (change, message) in [
        (
            json!({"providerId": ""}),
            "Provider ID should be specified!",
        ),
        (
            json!({"mapperConfig": null}),
            "Mapper config should be specified!",
        ),
        (
            json!({"helpLink": "javascript:x"}),
            "helpLink must be an http or https URL",
        ),
    ] {
        let mut body = custom.clone();
        body["providerId"] = json!("Other");
        for (key, value) in change.as_object().unwrap() {
            body[key] = value.clone();
        }
        let (status, answer) = app
            .tb_post("/api/oauth2/config/template", &token, body)
            .await;
        assert_tb_error(status, &answer, StatusCode::BAD_REQUEST, 31, message);
    }
    let mut unknown = custom.clone();
    let unknown_id = uuid::Uuid::new_v4().to_string();
    unknown["id"] = tb_id("OAUTH2_CLIENT_REGISTRATION_TEMPLATE", &unknown_id);
    unknown["providerId"] = json!("Other");
    let (status, answer) = app
        .tb_post("/api/oauth2/config/template", &token, unknown)
        .await;
    assert_tb_error(
        status,
        &answer,
        StatusCode::NOT_FOUND,
        32,
        &format!("Oauth2 client registration template with id [{unknown_id}] is not found"),
    );
    let (_, templates) = app.tb_get("/api/oauth2/config/template", &token).await;
    assert_eq!(
        providers(&templates),
        ["Apple", "Facebook", "Github", "Google", "Keycloak"]
    );
}

async fn save_domain(app: &TestApp, token: &str, query: &str, body: Value) -> (StatusCode, Value) {
    app.tb_post(&format!("/api/domain{query}"), token, body)
        .await
}

async fn domain_info(app: &TestApp, token: &str, id: &str) -> Value {
    let (status, info) = app.tb_get(&format!("/api/domain/info/{id}"), token).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    info
}

fn client_titles(info: &Value) -> Vec<String> {
    info["oauth2ClientInfos"]
        .as_array()
        .unwrap_or_else(|| panic!("no oauth2ClientInfos in {info}"))
        .iter()
        .map(|client| client["title"].as_str().unwrap().to_owned())
        .collect()
}

async fn domains_are_saved_listed_and_deleted(app: TestApp) {
    let token = sys(&app).await;
    let google = id_of(&create_client(&app, &token, client_body("Google", "s")).await);
    let github = id_of(&create_client(&app, &token, client_body("GitHub", "s")).await);
    let (status, domain) = save_domain(
        &app,
        &token,
        &format!("?oauth2ClientIds={google}&oauth2ClientIds={github}"),
        json!({"name": "IoT.Example.com", "oauth2Enabled": true, "propagateToEdge": false}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{domain}");
    let id = id_of(&domain);
    assert_eq!(domain["id"]["entityType"], "DOMAIN");
    assert_eq!(
        domain["name"], "iot.example.com",
        "names are stored in lower case"
    );
    assert_eq!(domain["oauth2Enabled"], true);
    assert_eq!(domain["propagateToEdge"], false);
    assert_eq!(domain["tenantId"], tb_id("TENANT", TB_NULL_UUID));
    assert!(domain["createdTime"].is_i64());
    assert!(domain.get("oauth2ClientInfos").is_none());
    let info = domain_info(&app, &token, &id).await;
    assert_eq!(client_titles(&info), ["Google", "GitHub"]);
    assert_eq!(
        info["oauth2ClientInfos"][0]["id"],
        tb_id("OAUTH2_CLIENT", &google)
    );
    assert_eq!(info["oauth2ClientInfos"][0]["providerName"], "Google");
    assert_eq!(info["name"], "iot.example.com");
    // Comma-separated ids, and a domain without clients.
    let (status, second) = save_domain(
        &app,
        &token,
        &format!("?oauth2ClientIds={github},{google}"),
        json!({"name": "10.0.0.5:8080"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["oauth2Enabled"], false);
    let (status, third) = save_domain(&app, &token, "", json!({"name": "[::1]:8443"})).await;
    assert_eq!(status, StatusCode::OK, "{third}");
    assert_eq!(
        client_titles(&domain_info(&app, &token, &id_of(&third)).await),
        Vec::<String>::new()
    );
    // The page: with client infos, searched, sorted.
    let (status, page) = app
        .tb_get("/api/domain/infos?pageSize=2&page=0", &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["totalElements"], 3);
    assert_eq!(page["totalPages"], 2);
    assert_eq!(page["hasNext"], true);
    assert_eq!(page["data"][0]["name"], "iot.example.com");
    assert_eq!(client_titles(&page["data"][0]), ["Google", "GitHub"]);
    assert_eq!(client_titles(&page["data"][1]), ["Google", "GitHub"]);
    let (_, page) = app
        .tb_get(
            "/api/domain/infos?pageSize=10&page=0&textSearch=EXAMPLE",
            &token,
        )
        .await;
    assert_eq!(page["totalElements"], 1);
    let (_, page) = app
        .tb_get(
            "/api/domain/infos?pageSize=10&page=0&sortProperty=name&sortOrder=ASC",
            &token,
        )
        .await;
    let names: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["10.0.0.5:8080", "[::1]:8443", "iot.example.com"]);
    let (status, answer) = app
        .tb_get(
            "/api/domain/infos?pageSize=10&page=0&sortProperty=secret",
            &token,
        )
        .await;
    assert_tb_error(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        31,
        "sortProperty must be createdTime or name, not 'secret'",
    );
    // Update: name and flags change; without client ids the clients stay.
    let mut edited = domain.clone();
    edited["oauth2Enabled"] = json!(false);
    edited["propagateToEdge"] = json!(true);
    edited["name"] = json!("portal.example.com");
    let (status, updated) = save_domain(&app, &token, "", edited).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(id_of(&updated), id);
    assert_eq!(updated["name"], "portal.example.com");
    assert_eq!(updated["oauth2Enabled"], false);
    assert_eq!(updated["propagateToEdge"], true);
    assert_eq!(updated["createdTime"], domain["createdTime"]);
    assert_eq!(
        client_titles(&domain_info(&app, &token, &id).await),
        ["Google", "GitHub"]
    );
    // With client ids they are replaced.
    let (status, _) =
        save_domain(&app, &token, &format!("?oauth2ClientIds={github}"), updated).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        client_titles(&domain_info(&app, &token, &id).await),
        ["GitHub"]
    );
    // Unknown domain to update: 404.
    let unknown = uuid::Uuid::new_v4().to_string();
    let (status, answer) = save_domain(
        &app,
        &token,
        "",
        json!({"id": tb_id("DOMAIN", &unknown), "name": "x.example.com"}),
    )
    .await;
    assert_tb_error(
        status,
        &answer,
        StatusCode::NOT_FOUND,
        32,
        &format!("Domain with id [{unknown}] is not found"),
    );
    // Delete: the links go with it, the clients stay.
    let path = format!("/api/domain/{id}");
    let (status, answer) = call(&app, Method::DELETE, &path, &token, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, Value::Null);
    let links = column(
        &app,
        &format!("SELECT client_id AS v FROM domain_oauth2_clients WHERE domain_id = '{id}'"),
        "v",
    )
    .await;
    assert!(links.is_empty(), "{links:?}");
    let message = format!("Domain with id [{id}] is not found");
    let (status, answer) = app.tb_get(&format!("/api/domain/info/{id}"), &token).await;
    assert_tb_error(status, &answer, StatusCode::NOT_FOUND, 32, &message);
    let (status, answer) = call(&app, Method::DELETE, &path, &token, None).await;
    assert_tb_error(status, &answer, StatusCode::NOT_FOUND, 32, &message);
    let (status, _) = app
        .tb_get(&format!("/api/oauth2/client/{github}"), &token)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, page) = app
        .tb_get("/api/domain/infos?pageSize=10&page=0", &token)
        .await;
    assert_eq!(page["totalElements"], 2);
}

async fn domain_names_are_validated_and_unique(app: TestApp) {
    let token = sys(&app).await;
    let (status, first) = save_domain(&app, &token, "", json!({"name": "iot.example.com"})).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    // The same name, in any case: ThingsBoard's message.
    for name in ["iot.example.com", "IOT.EXAMPLE.COM"] {
        let (status, answer) = save_domain(&app, &token, "", json!({"name": name})).await;
        assert_tb_error(
            status,
            &answer,
            StatusCode::BAD_REQUEST,
            31,
            "Domain with such name and scheme already exists!",
        );
    }
    // Renaming another domain onto it too.
    let (_, second) = save_domain(&app, &token, "", json!({"name": "other.example.com"})).await;
    let mut renamed = second.clone();
    renamed["name"] = json!("iot.example.com");
    let (status, answer) = save_domain(&app, &token, "", renamed).await;
    assert_tb_error(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        31,
        "Domain with such name and scheme already exists!",
    );
    // A port makes another name.
    let (status, _) = save_domain(&app, &token, "", json!({"name": "iot.example.com:8080"})).await;
    assert_eq!(status, StatusCode::OK);
    let invalid = "Domain name must be a host name or IP address with an optional port, such as \
                   iot.example.com or 10.0.0.5:8080 (no scheme, no path)";
    for name in [
        "https://iot.example.com",
        "iot.example.com/login",
        "iot example.com",
        "iot.example.com:99999",
        "iot.example.com:",
        "-iot.example.com",
        "iot..example.com",
        "::1",
        "bücher.example",
        "under_score.example.com",
    ] {
        let (status, answer) = save_domain(&app, &token, "", json!({"name": name})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {answer}");
        assert_tb_error(status, &answer, StatusCode::BAD_REQUEST, 31, invalid);
    }
    for body in [json!({"name": ""}), json!({}), json!({"name": "  "})] {
        let (status, answer) = save_domain(&app, &token, "", body).await;
        assert_tb_error(
            status,
            &answer,
            StatusCode::BAD_REQUEST,
            31,
            "Domain name should be specified!",
        );
    }
    // Unknown or malformed client ids.
    let unknown = uuid::Uuid::new_v4();
    let (status, answer) = save_domain(
        &app,
        &token,
        &format!("?oauth2ClientIds={unknown}"),
        json!({"name": "new.example.com"}),
    )
    .await;
    assert_tb_error(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        31,
        &format!("oauth2ClientIds names no OAuth2 client: {unknown}"),
    );
    let (status, answer) = save_domain(
        &app,
        &token,
        "?oauth2ClientIds=abc",
        json!({"name": "new.example.com"}),
    )
    .await;
    assert_tb_error(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        31,
        "Invalid request parameters: oauth2ClientIds must hold UUIDs, not 'abc'",
    );
    // Nothing of the refused requests was stored.
    let (_, page) = app
        .tb_get("/api/domain/infos?pageSize=10&page=0", &token)
        .await;
    assert_eq!(page["totalElements"], 3, "{page}");
}

async fn domain_clients_are_replaced_and_follow_deletions(app: TestApp) {
    let token = sys(&app).await;
    let a = id_of(&create_client(&app, &token, client_body("A", "s")).await);
    let b = id_of(&create_client(&app, &token, client_body("B", "s")).await);
    let c = id_of(&create_client(&app, &token, client_body("C", "s")).await);
    let (_, domain) = save_domain(
        &app,
        &token,
        &format!("?oauth2ClientIds={a}"),
        json!({"name": "iot.example.com", "oauth2Enabled": true}),
    )
    .await;
    let id = id_of(&domain);
    let put = |ids: Value| {
        let (app, token, id) = (&app, &token, &id);
        async move {
            call(
                app,
                Method::PUT,
                &format!("/api/domain/{id}/oauth2Clients"),
                token,
                Some(ids),
            )
            .await
        }
    };
    let (status, answer) = put(json!([b, c, b])).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, Value::Null);
    assert_eq!(
        client_titles(&domain_info(&app, &token, &id).await),
        ["B", "C"]
    );
    // Deleting a client takes it off the domain.
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/oauth2/client/{b}"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(client_titles(&domain_info(&app, &token, &id).await), ["C"]);
    let (_, page) = app
        .tb_get("/api/domain/infos?pageSize=10&page=0", &token)
        .await;
    assert_eq!(client_titles(&page["data"][0]), ["C"]);
    // An empty list removes them all.
    let (status, _) = put(json!([])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        client_titles(&domain_info(&app, &token, &id).await),
        Vec::<String>::new()
    );
    // Refusals: unknown client, not an array, unknown domain, malformed id.
    let (status, answer) = put(json!([b])).await;
    assert_tb_error(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        31,
        &format!("oauth2ClientIds names no OAuth2 client: {b}"),
    );
    for body in [json!({"ids": [a]}), json!(["nope"]), json!([1]), json!("x")] {
        let (status, answer) = put(body.clone()).await;
        let (code, message) = assert_tb_shape(status, &answer, StatusCode::BAD_REQUEST);
        assert_eq!(code, 31, "{body}");
        assert!(
            message.starts_with("Invalid request body: expected a JSON array of UUIDs"),
            "{message}"
        );
    }
    let unknown = uuid::Uuid::new_v4().to_string();
    let (status, answer) = call(
        &app,
        Method::PUT,
        &format!("/api/domain/{unknown}/oauth2Clients"),
        &token,
        Some(json!([a])),
    )
    .await;
    assert_tb_error(
        status,
        &answer,
        StatusCode::NOT_FOUND,
        32,
        &format!("Domain with id [{unknown}] is not found"),
    );
    let (status, answer) = call(
        &app,
        Method::PUT,
        "/api/domain/zzz/oauth2Clients",
        &token,
        Some(json!([a])),
    )
    .await;
    assert_eq!(
        assert_tb_shape(status, &answer, StatusCode::BAD_REQUEST).0,
        31
    );
    assert_eq!(
        client_titles(&domain_info(&app, &token, &id).await),
        Vec::<String>::new()
    );
}

/// `POST /api/noauth/oauth2Clients[?query]` with extra headers, unauthenticated.
async fn buttons(app: &TestApp, query: &str, headers: &[(&str, &str)]) -> Value {
    let answer = app
        .tb_send(
            Method::POST,
            &format!("/api/noauth/oauth2Clients{query}"),
            headers,
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    answer.json()
}

fn labels(buttons: &Value) -> Vec<String> {
    buttons
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {buttons}"))
        .iter()
        .map(|button| button["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn public_list_matches_the_requested_host(app: TestApp) {
    let token = sys(&app).await;
    let mut web = client_body("Google", "s");
    web["platforms"] = json!(["WEB"]);
    let web = create_client(&app, &token, web).await;
    let mut mobile = client_body("Mobile", "s");
    mobile["platforms"] = json!(["ANDROID", "IOS"]);
    mobile["loginButtonIcon"] = Value::Null;
    let mobile = create_client(&app, &token, mobile).await;
    let all = create_client(&app, &token, client_body("Everywhere", "s")).await;
    let (web_id, mobile_id, all_id) = (id_of(&web), id_of(&mobile), id_of(&all));
    // Nothing before a domain names this server.
    assert_eq!(buttons(&app, "", &[]).await, json!([]));
    let own = app.base.trim_start_matches("http://").to_owned();
    let (status, domain) = save_domain(
        &app,
        &token,
        &format!("?oauth2ClientIds={web_id},{mobile_id},{all_id}"),
        json!({"name": own, "oauth2Enabled": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{domain}");
    let list = buttons(&app, "", &[]).await;
    assert_eq!(labels(&list), ["Google", "Mobile", "Everywhere"]);
    assert_eq!(
        list[0],
        json!({"name": "Google", "icon": "google-logo", "url": format!("/oauth2/authorization/{web_id}")})
    );
    assert!(list[1]["icon"].is_null());
    // The platform filter: a client without platforms serves all; unknown values are ignored.
    assert_eq!(
        labels(&buttons(&app, "?platform=WEB", &[]).await),
        ["Google", "Everywhere"]
    );
    assert_eq!(
        labels(&buttons(&app, "?platform=IOS", &[]).await),
        ["Mobile", "Everywhere"]
    );
    assert_eq!(
        labels(&buttons(&app, "?platform=TOASTER", &[]).await),
        ["Google", "Mobile", "Everywhere"]
    );
    // Mobile application bundles do not exist here.
    assert_eq!(
        buttons(&app, "?pkgName=com.example.app", &[]).await,
        json!([])
    );
    // The Host header picks the domain; the default port is left out.
    let (_, other) = save_domain(
        &app,
        &token,
        &format!("?oauth2ClientIds={all_id}"),
        json!({"name": "iot.example.com", "oauth2Enabled": true}),
    )
    .await;
    for host in ["iot.example.com", "IOT.example.com:80"] {
        assert_eq!(
            labels(&buttons(&app, "", &[("host", host)]).await),
            ["Everywhere"],
            "{host}"
        );
    }
    for host in ["iot.example.com:8080", "example.com", "bad host"] {
        assert_eq!(
            buttons(&app, "", &[("host", host)]).await,
            json!([]),
            "{host}"
        );
    }
    // Not trusted: forwarded headers are ignored.
    let forwarded = [
        ("x-forwarded-host", "iot.example.com"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-port", "443"),
    ];
    assert_eq!(
        labels(&buttons(&app, "", &forwarded).await),
        ["Google", "Mobile", "Everywhere"]
    );
    // A domain with OAuth2 disabled offers nothing.
    let mut disabled = other.clone();
    disabled["oauth2Enabled"] = json!(false);
    let (status, _) = save_domain(&app, &token, "", disabled).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        buttons(&app, "", &[("host", "iot.example.com")]).await,
        json!([])
    );
    // Deleting a client removes its button.
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/oauth2/client/{mobile_id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        labels(&buttons(&app, "", &[]).await),
        ["Google", "Everywhere"]
    );
    // A GET is not this endpoint.
    let answer = app
        .tb_send(Method::GET, "/api/noauth/oauth2Clients", &[], None)
        .await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
}

async fn public_list_honours_forwarded_headers_only_when_trusted(app: TestApp) {
    let engine = app.engine;
    app.stop().await;
    let app = TestApp::spawn_with(
        engine,
        |settings| settings.http.trust_forwarded_for = true,
        None,
    )
    .await;
    let token = sys(&app).await;
    let secure = id_of(&create_client(&app, &token, client_body("Secure", "s")).await);
    let ported = id_of(&create_client(&app, &token, client_body("Ported", "s")).await);
    for (name, client) in [
        ("iot.example.com", &secure),
        ("iot.example.com:8443", &ported),
    ] {
        let (status, answer) = save_domain(
            &app,
            &token,
            &format!("?oauth2ClientIds={client}"),
            json!({"name": name, "oauth2Enabled": true}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let https = [
        ("x-forwarded-host", "iot.example.com"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-port", "443"),
    ];
    assert_eq!(labels(&buttons(&app, "", &https).await), ["Secure"]);
    let ported_headers = [
        ("host", "iot.example.com"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-port", "8443"),
    ];
    assert_eq!(
        labels(&buttons(&app, "", &ported_headers).await),
        ["Ported"]
    );
    // Plain HTTP on 443 keeps the port.
    let http_443 = [("host", "iot.example.com"), ("x-forwarded-port", "443")];
    assert_eq!(buttons(&app, "", &http_443).await, json!([]));
}

async fn authorities_are_enforced(app: TestApp) {
    let sys_token = sys(&app).await;
    let (ta, _) = tenant_admin(&app, &sys_token, "ta@example.com").await;
    let cu = customer(&app, &ta, "cu@example.com").await;
    let client = id_of(&create_client(&app, &sys_token, client_body("Google", "s")).await);
    let (_, domain) = save_domain(&app, &sys_token, "", json!({"name": "iot.example.com"})).await;
    let domain = id_of(&domain);
    let (_, templates) = app.tb_get("/api/oauth2/config/template", &sys_token).await;
    let template = id_of(&templates[0]);
    let any = uuid::Uuid::new_v4();
    let client_calls: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/api/oauth2/client".into(),
            Some(client_body("x", "s")),
        ),
        (Method::GET, format!("/api/oauth2/client/{client}"), None),
        (Method::DELETE, format!("/api/oauth2/client/{client}"), None),
        (
            Method::GET,
            "/api/oauth2/client/infos?pageSize=10&page=0".into(),
            None,
        ),
        (
            Method::GET,
            format!("/api/oauth2/client/list?clientIds={client}"),
            None,
        ),
        (Method::GET, "/api/oauth2/loginProcessingUrl".into(), None),
        (Method::GET, "/api/oauth2/config/template".into(), None),
    ];
    let sys_only: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/api/oauth2/config/template".into(),
            Some(templates[0].clone()),
        ),
        (
            Method::DELETE,
            format!("/api/oauth2/config/template/{template}"),
            None,
        ),
        (
            Method::POST,
            "/api/domain".into(),
            Some(json!({"name": "x.example.com"})),
        ),
        (Method::DELETE, format!("/api/domain/{domain}"), None),
        (
            Method::GET,
            "/api/domain/infos?pageSize=10&page=0".into(),
            None,
        ),
        (Method::GET, format!("/api/domain/info/{domain}"), None),
        (
            Method::PUT,
            format!("/api/domain/{domain}/oauth2Clients"),
            Some(json!([any])),
        ),
    ];
    // Customer users: 403 everywhere, before the body is read.
    for (method, path, body) in client_calls.iter().chain(sys_only.iter()) {
        let (status, answer) = call(&app, method.clone(), path, &cu, body.clone()).await;
        assert_tb_error(status, &answer, StatusCode::FORBIDDEN, 20, DENIED);
        let (status, answer) = call(&app, method.clone(), path, &cu, Some(json!("garbage"))).await;
        assert_tb_error(status, &answer, StatusCode::FORBIDDEN, 20, DENIED);
    }
    // Tenant administrators: 403 on templates' writes and on domains.
    for (method, path, body) in &sys_only {
        let (status, answer) = call(&app, method.clone(), path, &ta, body.clone()).await;
        assert_tb_error(status, &answer, StatusCode::FORBIDDEN, 20, DENIED);
    }
    // Anonymous callers: 401.
    for (method, path, body) in client_calls.iter().chain(sys_only.iter()) {
        let (status, answer) = app
            .tb_request(method.clone(), path, None, body.clone())
            .await;
        assert_tb_error(
            status,
            &answer,
            StatusCode::UNAUTHORIZED,
            10,
            "Authentication failed",
        );
    }
    // Nothing was changed by the refused calls.
    let (status, _) = app
        .tb_get(&format!("/api/oauth2/client/{client}"), &sys_token)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .tb_get(&format!("/api/domain/info/{domain}"), &sys_token)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, after) = app.tb_get("/api/oauth2/config/template", &sys_token).await;
    assert_eq!(after, templates);
    // An API key of a system administrator works like its token.
    let me = app.tb_me(&sys_token).await;
    let (status, key) = app
        .tb_post(
            "/api/apiKey",
            &sys_token,
            json!({"userId": me["id"], "description": "oauth2 admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{key}");
    let (status, page) = app
        .tb_request(
            Method::GET,
            "/api/domain/infos?pageSize=10&page=0",
            Some(&format!("ApiKey {}", key["value"].as_str().unwrap())),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
}

async fn hostile_input_is_refused(app: TestApp) {
    let token = sys(&app).await;
    let huge = "x".repeat(300_000);
    let mut bodies: Vec<Value> = Vec::new();
    for field in [
        "title",
        "clientId",
        "clientSecret",
        "authorizationUri",
        "accessTokenUri",
        "userNameAttributeName",
        "clientAuthenticationMethod",
        "loginButtonLabel",
        "loginButtonIcon",
        "userInfoUri",
        "jwkSetUri",
    ] {
        let mut body = client_body("Google", "s");
        body[field] = json!(huge);
        bodies.push(body);
        let mut body = client_body("Google", "s");
        body[field] = json!(12);
        bodies.push(body);
        let mut body = client_body("Google", "s");
        body[field] = json!({"nested": [1, 2]});
        bodies.push(body);
    }
    let mut many_scopes = client_body("Google", "s");
    many_scopes["scope"] = json!((0..500).map(|i| format!("s{i}")).collect::<Vec<_>>());
    bodies.push(many_scopes);
    let mut big_info = client_body("Google", "s");
    big_info["additionalInfo"] = json!({"blob": "y".repeat(20_000)});
    bodies.push(big_info);
    let mut big_key = client_body("Google", "s");
    big_key["mapperConfig"]["basic"]["emailAttributeKey"] = json!(huge);
    bodies.push(big_key);
    let mut bad_id = client_body("Google", "s");
    bad_id["id"] = json!({"entityType": "OAUTH2_CLIENT", "id": "not-a-uuid"});
    bodies.push(bad_id);
    // Objects given as arrays of their fields.
    let mut custom_as_array = client_body("Google", "s");
    custom_as_array["mapperConfig"]["custom"] = json!([null, null]);
    bodies.push(custom_as_array);
    let mut mapper_as_array = client_body("Google", "s");
    mapper_as_array["mapperConfig"] = json!([true, false, "BASIC"]);
    bodies.push(mapper_as_array);
    let mut id_as_array = client_body("Google", "s");
    id_as_array["id"] = json!(["OAUTH2_CLIENT", "f81d4fae-7dec-11d0-a765-00a0c91e6bf6"]);
    bodies.push(id_as_array);
    let mut id_as_text = client_body("Google", "s");
    id_as_text["id"] = json!("f81d4fae-7dec-11d0-a765-00a0c91e6bf6");
    bodies.push(id_as_text);
    for body in [json!([]), json!("text"), json!(null), json!(17)] {
        bodies.push(body);
    }
    for body in bodies {
        let (status, answer) = save_client(&app, &token, body).await;
        assert!(status.is_client_error(), "{status}: {answer}");
        assert_eq!(answer["errorCode"], 31, "{answer}");
    }
    // Raw garbage bodies.
    for raw in [b"{".to_vec(), b"\xff\xfe".to_vec(), Vec::new()] {
        for path in [
            "/api/oauth2/client",
            "/api/oauth2/config/template",
            "/api/domain",
        ] {
            let answer = app
                .tb_send(
                    Method::POST,
                    path,
                    &[
                        ("x-authorization", &bearer(&token)),
                        ("content-type", "application/json"),
                    ],
                    Some(raw.clone()),
                )
                .await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{path}: {}",
                answer.text
            );
        }
    }
    // Domains and templates.
    for body in [
        json!({"name": huge}),
        json!({"name": 5}),
        json!({"name": "ok.example.com", "oauth2Enabled": "yes"}),
        json!({"name": "a".repeat(64) + ".example.com"}),
        json!({"name": "\u{0}.example.com"}),
        json!({"name": "ok.example.com", "id": ["DOMAIN", "f81d4fae-7dec-11d0-a765-00a0c91e6bf6"]}),
    ] {
        let (status, answer) = save_domain(&app, &token, "", body).await;
        assert!(status.is_client_error(), "{status}: {answer}");
    }
    let (status, answer) = save_domain(
        &app,
        &token,
        &format!(
            "?oauth2ClientIds={}",
            "f81d4fae-7dec-11d0-a765-00a0c91e6bf6,".repeat(1200)
        ),
        json!({"name": "ok.example.com"}),
    )
    .await;
    assert!(status.is_client_error(), "{status}: {answer}");
    for body in [
        json!({"providerId": huge, "mapperConfig": {"type": "GITHUB", "basic": {"tenantNameStrategy": "DOMAIN"}}}),
        json!({"providerId": "P", "mapperConfig": {"type": "GITHUB", "basic": {"tenantNameStrategy": "DOMAIN"}}, "scope": "openid"}),
        json!({"providerId": "P", "mapperConfig": "BASIC"}),
    ] {
        let (status, answer) = app
            .tb_post("/api/oauth2/config/template", &token, body)
            .await;
        assert!(status.is_client_error(), "{status}: {answer}");
    }
    // Query strings and paths.
    for path in [
        "/api/oauth2/client/infos?pageSize=-1&page=0",
        "/api/oauth2/client/infos?pageSize=10&page=18446744073709551615",
        "/api/oauth2/client/infos?pageSize=10&page=0&textSearch=%00",
        &format!(
            "/api/oauth2/client/infos?pageSize=10&page=0&textSearch={}",
            "q".repeat(300)
        ),
        "/api/domain/infos?pageSize=10",
        "/api/domain/infos?pageSize=abc&page=0",
        "/api/domain/info/1234",
        "/api/oauth2/client/%ZZ",
    ] {
        let (status, answer) = app.tb_get(path, &token).await;
        assert!(status.is_client_error(), "{path}: {status} {answer}");
    }
    let answer = app
        .tb_send(
            Method::POST,
            "/api/noauth/oauth2Clients?platform=%00&pkgName=",
            &[("host", &"h".repeat(2000))],
            None,
        )
        .await;
    assert!(
        answer.status.is_success() || answer.status.is_client_error(),
        "{}",
        answer.text
    );
    // The server is still fine.
    let (status, _) = app
        .tb_get("/api/oauth2/client/infos?pageSize=10&page=0", &token)
        .await;
    assert_eq!(status, StatusCode::OK);
}
