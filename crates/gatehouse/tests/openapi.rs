//! The OpenAPI document (`GET /api/openapi.json`) and the Swagger UI (`/api/docs`): the
//! document lists exactly the served operations, every listed operation is routed, no route
//! bypasses the document, and the UI loads under its own Content-Security-Policy.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{Engine, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Every operation the server must document: C1–C36, C38–C47 and T1–T11, T22–T54 (numbered as in the
/// endpoint list) with the ThingsBoard companions, the broker hooks, the health endpoints and
/// the metrics. Adding or removing a route without updating this list fails.
const EXPECTED: &[(&str, &str)] = &[
    ("POST", "/api/users"),                             // C1
    ("GET", "/api/listUsers"),                          // C2
    ("POST", "/api/users/batch"),                       // C3
    ("PUT", "/api/users/change-password"),              // C4
    ("GET", "/api/users/{id}"),                         // C5
    ("PUT", "/api/users/{id}"),                         // C6
    ("DELETE", "/api/users/{id}"),                      // C7
    ("GET", "/api/users/{id}/tokens"),                  // C8
    ("DELETE", "/api/users/{id}/tokens"),               // C9
    ("POST", "/api/users/{id}/certificates"),           // C10
    ("DELETE", "/api/users/{id}/certificates"),         // C11
    ("POST", "/api/users/{id}/roles"),                  // C12
    ("DELETE", "/api/users/{id}/roles"),                // C13
    ("POST", "/api/roles"),                             // C14
    ("GET", "/api/roles"),                              // C15
    ("GET", "/api/roles/page"),                         // C16
    ("GET", "/api/roles/{id}"),                         // C17
    ("PUT", "/api/roles/{id}"),                         // C18
    ("DELETE", "/api/roles/{id}"),                      // C19
    ("GET", "/api/roles/{id}/permissions"),             // C20
    ("POST", "/api/roles/{id}/permissions"),            // C21
    ("GET", "/api/roles/{id}/permissions/{pemId}"),     // C22
    ("PUT", "/api/roles/{id}/permissions/{pemId}"),     // C23
    ("DELETE", "/api/roles/{id}/permissions/{pemId}"),  // C24
    ("POST", "/api/login"),                             // C25
    ("GET", "/api/session"),                            // C26
    ("GET", "/api/permissions/page"),                   // C27
    ("GET", "/api/permissions/ids"),                    // C28
    ("POST", "/api/client-registry/register"),          // C29
    ("GET", "/api/client-registry"),                    // C30
    ("POST", "/api/client-registry/open"),              // C31
    ("POST", "/api/client-registry/confirm"),           // C32
    ("GET", "/api/certificates"),                       // C33
    ("POST", "/api/certificates"),                      // C34
    ("GET", "/api/certificates/content"),               // C35
    ("DELETE", "/api/certificates/{id}"),               // C36
    ("GET", "/api/maintenance/db"),                     // C38
    ("POST", "/api/maintenance/db/backup"),             // C39
    ("GET", "/api/maintenance/db/backup/{id}"),         // C39
    ("POST", "/api/maintenance/db/restore"),            // C40
    ("POST", "/api/mfa/enable"),                        // C41
    ("POST", "/api/mfa/validate"),                      // C42
    ("POST", "/api/mfa/login"),                         // C43
    ("POST", "/api/mfa/disable"),                       // C44
    ("POST", "/api/mfa/regenerate/backupcodes"),        // C45
    ("GET", "/api/msEntraId/login"),                    // C46
    ("GET", "/api/msEntraId/redirect"),                 // C47
    ("POST", "/api/auth/login"),                        // T1
    ("POST", "/api/auth/token"),                        // T2
    ("POST", "/api/auth/logout"),                       // T3
    ("GET", "/api/auth/user"),                          // T4
    ("POST", "/api/auth/changePassword"),               // T5
    ("GET", "/api/noauth/userPasswordPolicy"),          // T6
    ("GET", "/api/noauth/activate"),                    // T7
    ("POST", "/api/noauth/activate"),                   // T8
    ("GET", "/api/noauth/resetPassword"),               // T9
    ("POST", "/api/noauth/resetPassword"),              // T10
    ("POST", "/api/noauth/resetPasswordByEmail"),       // T11
    ("POST", "/api/apiKey"),                            // T22
    ("DELETE", "/api/apiKey/{id}"),                     // T23
    ("PUT", "/api/apiKey/{id}/enabled/{enabledValue}"), // T24
    ("PUT", "/api/apiKey/{id}/description"),            // T25
    ("GET", "/api/apiKeys/{userId}"),                   // T26
    ("GET", "/api/2fa/settings"),                       // T27
    ("POST", "/api/2fa/settings"),                      // T28
    ("GET", "/api/2fa/providers"),                      // T29
    ("GET", "/api/2fa/account/settings"),               // T30
    ("POST", "/api/2fa/account/config"),                // T31
    ("PUT", "/api/2fa/account/config"),                 // T32
    ("DELETE", "/api/2fa/account/config"),              // T33
    ("POST", "/api/2fa/account/config/generate"),       // T34
    ("POST", "/api/2fa/account/config/submit"),         // T35
    ("GET", "/api/auth/2fa/providers"),                 // T36
    ("POST", "/api/auth/2fa/verification/send"),        // T37
    ("POST", "/api/auth/2fa/verification/check"),       // T38
    ("POST", "/api/auth/2fa/login"),                    // T39
    ("POST", "/api/oauth2/client"),                     // T40
    ("GET", "/api/oauth2/client/{id}"),                 // T41
    ("DELETE", "/api/oauth2/client/{id}"),              // T42
    ("GET", "/api/oauth2/client/infos"),                // T43
    ("GET", "/api/oauth2/client/list"),                 // T43 by ids
    ("GET", "/api/oauth2/loginProcessingUrl"),          // T44
    ("POST", "/api/noauth/oauth2Clients"),              // T45
    ("GET", "/api/oauth2/config/template"),             // T46
    ("POST", "/api/oauth2/config/template"),            // T47
    ("DELETE", "/api/oauth2/config/template/{id}"),     // T48
    ("POST", "/api/domain"),                            // T49
    ("DELETE", "/api/domain/{id}"),                     // T50
    ("GET", "/api/domain/infos"),                       // T51
    ("GET", "/api/domain/info/{id}"),                   // T52
    ("PUT", "/api/domain/{id}/oauth2Clients"),          // T53
    ("GET", "/oauth2/authorization/{clientId}"),        // T54
    ("GET", "/login/oauth2/code/"),                     // T54
    ("POST", "/api/noauth/signup"),                     // T12
    ("GET", "/api/noauth/activateEmail"),               // T13
    ("POST", "/api/noauth/activateByEmailCode"),        // T14
    ("POST", "/api/noauth/resendEmailActivation"),      // T15
    ("GET", "/api/noauth/login"),                       // T16
    ("GET", "/api/noauth/signup/recaptchaPublicKey"),   // T17
    ("GET", "/api/noauth/signup/recaptchaParams"),      // T18
    ("POST", "/api/signup/acceptPrivacyPolicy"),        // T19
    ("GET", "/api/signup/privacyPolicyAccepted"),       // T20
    ("DELETE", "/api/signup/tenantAccount"),            // T21
    ("POST", "/api/signup/tenantAccount"),              // T21, as the 4.4 cloud client sends it
    ("GET", "/api/admin/securitySettings"),
    ("POST", "/api/admin/securitySettings"),
    ("POST", "/api/user"),
    ("GET", "/api/user/{userId}"),
    ("DELETE", "/api/user/{userId}"),
    ("GET", "/api/user/{userId}/activationLink"),
    ("POST", "/api/user/{userId}/userCredentialsEnabled"),
    ("POST", "/api/broker/http/user"),
    ("GET", "/api/broker/http/user"),
    ("PUT", "/api/broker/http/user"),
    ("POST", "/api/broker/http/superuser"),
    ("GET", "/api/broker/http/superuser"),
    ("PUT", "/api/broker/http/superuser"),
    ("POST", "/api/broker/http/acl"),
    ("GET", "/api/broker/http/acl"),
    ("PUT", "/api/broker/http/acl"),
    ("POST", "/api/broker/vernemq"),
    ("POST", "/api/broker/auth/enhanced"),
    ("POST", "/api/broker/emqx/authn"),
    ("GET", "/api/broker/emqx/authn"),
    ("POST", "/api/broker/emqx/authz"),
    ("GET", "/api/broker/emqx/authz"),
    ("GET", "/api/broker/rabbitmq/user"),
    ("POST", "/api/broker/rabbitmq/user"),
    ("GET", "/api/broker/rabbitmq/vhost"),
    ("POST", "/api/broker/rabbitmq/vhost"),
    ("GET", "/api/broker/rabbitmq/resource"),
    ("POST", "/api/broker/rabbitmq/resource"),
    ("GET", "/api/broker/rabbitmq/topic"),
    ("POST", "/api/broker/rabbitmq/topic"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
];

/// Operations that need no token.
const PUBLIC: &[(&str, &str)] = &[
    ("POST", "/api/login"),
    ("POST", "/api/client-registry/register"),
    ("POST", "/api/mfa/login"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/token"),
    ("GET", "/api/noauth/userPasswordPolicy"),
    ("GET", "/api/noauth/activate"),
    ("POST", "/api/noauth/activate"),
    ("GET", "/api/noauth/resetPassword"),
    ("POST", "/api/noauth/resetPassword"),
    ("POST", "/api/noauth/resetPasswordByEmail"),
    ("POST", "/api/noauth/oauth2Clients"),
    ("POST", "/api/noauth/signup"),
    ("GET", "/api/noauth/activateEmail"),
    ("POST", "/api/noauth/activateByEmailCode"),
    ("POST", "/api/noauth/resendEmailActivation"),
    ("GET", "/api/noauth/login"),
    ("GET", "/api/noauth/signup/recaptchaPublicKey"),
    ("GET", "/api/noauth/signup/recaptchaParams"),
    ("GET", "/api/msEntraId/login"),
    ("GET", "/api/msEntraId/redirect"),
    ("GET", "/oauth2/authorization/{clientId}"),
    ("GET", "/login/oauth2/code/"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
];

const DOCS_CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'";
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

async fn document(app: &TestApp) -> Value {
    let response = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-security-policy"],
        API_CSP,
        "the document keeps the API's policy"
    );
    response.json().await.expect("the document is JSON")
}

/// Every (METHOD, path) in the document, with its operation object.
fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let paths = document["paths"].as_object().expect("paths");
    let mut operations = Vec::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            if matches!(
                method.as_str(),
                "get" | "put" | "post" | "delete" | "patch" | "head" | "options" | "trace"
            ) {
                operations.push((method.to_uppercase(), path.clone(), operation.clone()));
            }
        }
    }
    operations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_is_openapi_3_1_and_lists_exactly_the_served_operations() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let document = document(&app).await;
    let version = document["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1."), "OpenAPI 3.1.x, got {version}");

    let listed: BTreeSet<(String, String)> = operations(&document)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let expected: BTreeSet<(String, String)> = EXPECTED
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    let missing: Vec<_> = expected.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "undocumented: {missing:?}; documented but not expected: {extra:?}"
    );
}

/// The ThingsBoard dialect's operations: `X-Authorization` unless public, and every error
/// answer with a body in ThingsBoard's error shape.
fn check_thingsboard_operation(name: &str, operation: &Value, public: bool) {
    if public {
        assert!(
            operation.get("security").is_none(),
            "{name}: needs no token"
        );
    } else {
        assert_eq!(
            operation["security"],
            json!([{"xAuthorization": []}, {"bearer": []}]),
            "{name}: X-Authorization, or Authorization: Bearer"
        );
        assert!(operation["responses"]["401"].is_object(), "{name}: 401");
    }
    for (status, response) in operation["responses"].as_object().expect("responses") {
        if (status.starts_with('4') || status.starts_with('5')) && response.get("content").is_some()
        {
            assert_eq!(
                response["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ThingsboardErrorResponse",
                "{name} {status}"
            );
        }
    }
}

/// Every broker hook: no token scheme (brokers are let in by address or shared secret, which
/// the description names), refused callers answered 403 in the hooks' `{"ok":false,…}` shape,
/// and every answer with a body described by a schema. The go-auth backend in more detail.
fn check_broker_operation(name: &str, path: &str, operation: &Value) {
    assert!(
        operation.get("security").is_none(),
        "{name}: no token scheme opens the hooks"
    );
    let description = operation["description"].as_str().unwrap_or_default();
    assert!(
        description.contains("X-Gatehouse-Broker-Secret")
            && description.contains("hook_allowed_addresses"),
        "{name}: the description says who may call it"
    );
    let responses = operation["responses"].as_object().expect("responses");
    assert_eq!(
        responses["403"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/BrokerHookAnswer",
        "{name}: refused callers"
    );
    for status in ["200", "400", "503"] {
        if path.starts_with("/api/broker/http/") && status == "400" {
            continue;
        }
        let content = responses[status]["content"].as_object();
        assert!(
            content
                .is_some_and(|content| content.values().all(|media| media["schema"].is_object())),
            "{name} {status}: described"
        );
    }
    if !path.starts_with("/api/broker/http/") {
        return;
    }
    for status in ["200", "403"] {
        let content = &responses[status]["content"];
        assert_eq!(
            content["application/json"]["schema"]["$ref"], "#/components/schemas/BrokerHookAnswer",
            "{name} {status}"
        );
        assert!(
            content["text/plain"].is_object(),
            "{name} {status}: text mode"
        );
    }
    for (status, response) in responses {
        if status.starts_with('4') || status.starts_with('5') {
            assert_eq!(
                response["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/BrokerHookAnswer",
                "{name} {status}"
            );
        }
    }
    let parameters = operation["parameters"].as_array().expect("parameters");
    assert!(
        parameters
            .iter()
            .any(|parameter| parameter["name"] == "response" && parameter["in"] == "query"),
        "{name}: ?response"
    );
    if operation.get("requestBody").is_some() {
        let content = &operation["requestBody"]["content"];
        assert!(content["application/json"].is_object(), "{name}: JSON body");
        assert!(
            content["application/x-www-form-urlencoded"].is_object(),
            "{name}: form body"
        );
    } else {
        assert!(
            parameters
                .iter()
                .any(|parameter| parameter["name"] == "username" && parameter["in"] == "query"),
            "{name}: query parameters"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_described_completely() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let document = document(&app).await;
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(
        schemes["apiToken"],
        json!({"type": "apiKey", "in": "query", "name": "apiToken", "description": schemes["apiToken"]["description"]})
    );
    let error = &document["components"]["schemas"]["ConnectwareError"];
    assert_eq!(error["required"], json!(["statusCode", "error", "message"]));
    assert!(error["properties"]["field"].is_object());

    let mut operation_ids = BTreeSet::new();
    for (method, path, operation) in operations(&document) {
        let name = format!("{method} {path}");
        let id = operation["operationId"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "{name}: operationId");
        assert!(
            operation_ids.insert(id.to_owned()),
            "{name}: duplicate operationId {id}"
        );
        assert!(operation["summary"].is_string(), "{name}: summary");
        let tags = operation["tags"].as_array().expect("tags");
        if tags == &vec![json!("thingsboard")] {
            check_thingsboard_operation(
                &name,
                &operation,
                PUBLIC.iter().any(|(m, p)| *m == method && *p == path),
            );
            continue;
        }
        if tags == &vec![json!("broker")] {
            assert!(path.starts_with("/api/broker/"), "{name}: broker path");
            check_broker_operation(&name, &path, &operation);
            continue;
        }
        assert!(
            tags.len() == 1
                && ["connectware", "health", "metrics"].contains(&tags[0].as_str().unwrap()),
            "{name}: tags {tags:?}"
        );
        let public = PUBLIC.iter().any(|(m, p)| *m == method && *p == path);
        if public {
            assert!(
                operation.get("security").is_none(),
                "{name}: needs no token"
            );
        } else {
            assert_eq!(
                operation["security"],
                json!([{"bearer": []}, {"apiToken": []}]),
                "{name}: bearer or apiToken"
            );
            assert_eq!(
                operation["responses"]["401"]["$ref"], "#/components/responses/Unauthorized",
                "{name}: 401"
            );
            // The MFA self-service endpoints need no http permission (they act on the
            // caller's own factors), so they never answer 403.
            if !path.starts_with("/api/mfa/") {
                assert!(operation["responses"]["403"].is_object(), "{name}: 403");
            }
        }
        // An archive id is only ever a file name: a malformed one names no archive (404).
        if path.starts_with("/api/maintenance/") {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                assert!(
                    parameter["schema"]["pattern"].is_string(),
                    "{name}: {parameter}"
                );
            }
        } else if path.contains("{id}") {
            assert_eq!(
                operation["responses"]["400"]["$ref"], "#/components/responses/BadRequest",
                "{name}: a malformed id is a 400"
            );
            for parameter in operation["parameters"].as_array().expect("parameters") {
                if parameter["in"] != "path" {
                    continue;
                }
                // Trusted certificates are named by their SHA-256 fingerprint, all else by UUID.
                if path.starts_with("/api/certificates/") {
                    assert_eq!(
                        parameter["schema"]["pattern"], "^[0-9a-fA-F]{64}$",
                        "{name}: {parameter}"
                    );
                } else {
                    assert_eq!(parameter["schema"]["format"], "uuid", "{name}: {parameter}");
                }
            }
        }
        if operation.get("requestBody").is_some() {
            for status in ["400", "413", "415"] {
                assert!(
                    operation["responses"][status].is_object(),
                    "{name}: {status}"
                );
            }
        }
        // Every error answer of the dialect has the error shape.
        if path.starts_with("/api/") {
            for (status, response) in operation["responses"].as_object().expect("responses") {
                if status.starts_with('4') || status.starts_with('5') {
                    let reference = response["$ref"].as_str().unwrap_or_default();
                    let component = reference.rsplit('/').next().unwrap_or_default();
                    let described = &document["components"]["responses"][component];
                    assert_eq!(
                        described["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ConnectwareError",
                        "{name} {status}"
                    );
                }
            }
        }
    }
    let unauthorized = &document["components"]["responses"]["Unauthorized"];
    assert!(
        unauthorized["headers"]["WWW-Authenticate"].is_object(),
        "401 carries WWW-Authenticate"
    );
    // Shapes the server really sends: bodiless 201/204, C21's 201 with the permission, nullable
    // fields.
    let responses = |method: &str, path: &str| document["paths"][path][method]["responses"].clone();
    assert!(responses("post", "/api/users/{id}/certificates")["201"]
        .get("content")
        .is_none());
    assert!(responses("post", "/api/users/{id}/roles")["201"]
        .get("content")
        .is_none());
    assert!(responses("delete", "/api/roles/{id}")["204"]
        .get("content")
        .is_none());
    assert_eq!(
        responses("post", "/api/roles/{id}/permissions")["201"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/Permission"
    );
    let schemas = &document["components"]["schemas"];
    assert_eq!(
        schemas["Pagination"]["properties"]["nextPage"]["type"],
        json!(["integer", "null"])
    );
    assert_eq!(
        schemas["Role"]["properties"]["ldapGroupDn"]["type"],
        json!(["string", "null"])
    );
    assert_eq!(
        schemas["PermissionUsage"]["properties"]["isRoleShared"]["type"],
        "string"
    );
    for key in [
        "isshared",
        "autogenerated",
        "ldapgroupdn",
        "msEntraIdGroupIds",
    ] {
        assert!(
            schemas["PagedRole"]["properties"][key].is_object(),
            "C16 key {key}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let document = document(&app).await;
    let dummy = uuid::Uuid::new_v4().to_string();
    for (method, path, operation) in operations(&document) {
        let concrete = path
            .replace("{id}", &dummy)
            .replace("{pemId}", &dummy)
            .replace("{userId}", &dummy)
            .replace("{enabledValue}", "true");
        let body = operation.get("requestBody").map(|_| json!({}));
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let (status, answer) = app
            .request(method.clone(), &concrete, Some(&app.admin_token), body)
            .await;
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is documented but not routed: {answer}"
        );
        assert!(
            !(status == StatusCode::NOT_FOUND
                && (answer["message"] == "no such endpoint"
                    || answer["message"] == "Requested item wasn't found!")),
            "{method} {path} is documented but not routed: {answer}"
        );
        let documented = &operation["responses"][status.as_str()];
        assert!(
            documented.is_object(),
            "{method} {path} answered {status}, which is not documented: {answer}"
        );
    }
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn no_route_bypasses_the_document() {
    let server_src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/src");
    let mut files = Vec::new();
    rust_files(&server_src, &mut files);
    assert!(
        !files.is_empty(),
        "no sources under {}",
        server_src.display()
    );
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable source");
        for needle in [".route(", ".route_service("] {
            assert!(
                !text.contains(needle),
                "{} registers a route with `{needle}`: register it with `routes!(…)` and \
                 `#[utoipa::path]` so that it is documented",
                file.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_loads_under_its_own_policy() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let response = app.client.get(app.url("/api/docs")).send().await.unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    assert_eq!(response.headers()["location"], "/api/docs/");

    let response = app.client.get(app.url("/api/docs/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(headers["content-security-policy"], DOCS_CSP);
    assert_eq!(headers["x-frame-options"], "DENY");
    let html = response.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");

    for (asset, content_type) in [
        ("swagger-ui-bundle.js", "text/javascript"),
        ("swagger-initializer.js", "text/javascript"),
        ("swagger-ui.css", "text/css"),
    ] {
        let response = app
            .client
            .get(app.url(&format!("/api/docs/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        assert_eq!(response.headers()["content-type"], content_type, "{asset}");
        assert_eq!(response.headers()["content-security-policy"], DOCS_CSP);
        let text = response.text().await.unwrap();
        if asset == "swagger-initializer.js" {
            assert!(text.contains("/api/openapi.json"), "{text}");
        }
    }

    // API answers keep the strict policy.
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.headers()["content-security-policy"], API_CSP);
}
