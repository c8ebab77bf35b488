//! OpenAPI descriptions of the dialect's shared pieces: the enumerations that live in the core
//! (described here, so the core does not depend on utoipa) and the error answers every
//! operation shares, as reusable response components.

#![allow(dead_code)] // The enums below exist only to be described; they are never built.

use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::ObjectBuilder;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder, Type as SchemaType};
use utoipa::{ToResponse, ToSchema};

/// The core's `Operation`: what a permission grants.
#[derive(ToSchema)]
#[schema(as = Operation)]
pub enum OperationSchema {
    /// HTTP GET/HEAD/OPTIONS, MQTT subscribe.
    #[serde(rename = "read")]
    Read,
    /// Other HTTP methods, MQTT publish.
    #[serde(rename = "write")]
    Write,
    /// Both.
    #[serde(rename = "readWrite")]
    ReadWrite,
}

/// The core's `Context`: where a permission applies.
#[derive(ToSchema)]
#[schema(as = Context)]
pub enum ContextSchema {
    /// MQTT topics.
    #[serde(rename = "mqtt")]
    Mqtt,
    /// HTTP request paths.
    #[serde(rename = "http")]
    Http,
}

/// The core's `IdentityProvider`: where a user's identity comes from.
#[derive(ToSchema)]
#[schema(as = IdentityProvider)]
pub enum IdentityProviderSchema {
    /// Managed by Gatehouse.
    #[serde(rename = "local")]
    Local,
    /// An LDAP directory.
    #[serde(rename = "ldap")]
    Ldap,
    /// Microsoft Entra ID.
    #[serde(rename = "entra")]
    Entra,
    /// One of the ThingsBoard dialect's OAuth2 clients.
    #[serde(rename = "oauth2")]
    OAuth2,
}

/// The core's `GrantMethod`: how a user may authenticate.
#[derive(ToSchema)]
#[schema(as = GrantMethod)]
pub enum GrantMethodSchema {
    /// Username and password.
    #[serde(rename = "password")]
    Password,
    /// A bound client certificate.
    #[serde(rename = "certificate")]
    Certificate,
}

/// The core's `GrantType`: one allowed authentication method of a user.
#[derive(ToSchema)]
#[schema(as = GrantType)]
pub struct GrantTypeSchema {
    /// The method.
    #[schema(value_type = GrantMethodSchema)]
    method: GrantMethodSchema,
    /// Whether this method is mandatory (stored and shown; enforced once certificate login
    /// exists).
    #[serde(rename = "isRequired")]
    is_required: bool,
}

/// Name of the error schema in the document.
pub const ERROR_SCHEMA: &str = "ConnectwareError";

/// A JSON answer of the error shape, with `headers` (name, description).
fn error_response(description: &str, headers: &[(&str, &str)]) -> RefOr<Response> {
    let mut builder = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(ERROR_SCHEMA)))
            .build(),
    );
    for (name, header_description) in headers {
        let mut header = HeaderBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(SchemaType::String)))
            .description(Some(*header_description))
            .build();
        // The header is always sent. utoipa's `Header` has no `required` field; its extensions
        // are serialized flat, so the key is added there.
        let mut extensions = Extensions::default();
        extensions.insert("required".to_owned(), true.into());
        header.extensions = Some(extensions);
        builder = builder.header(*name, header);
    }
    builder.build().into()
}

macro_rules! error_responses {
    ($($(#[$doc:meta])* $name:ident => $description:literal $(, [$(($header:literal, $header_description:literal)),*])?;)*) => {
        $(
            $(#[$doc])*
            pub struct $name;

            impl<'r> ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<Response>) {
                    (
                        stringify!($name),
                        error_response($description, &[$($(($header, $header_description)),*)?]),
                    )
                }
            }
        )*
    };
}

error_responses! {
    /// 400.
    BadRequest => "Invalid input: a field breaks a rule (with `field`), unreadable JSON or a body that is not a JSON object, a malformed query string, or an id in the path that is not a UUID (`field: \"id\"`).";
    /// 401, with `WWW-Authenticate: Bearer`.
    Unauthorized => "No token, or an invalid, expired or revoked one (for login: wrong username or password).",
        [("WWW-Authenticate", "Always `Bearer`.")];
    /// 403.
    Forbidden => "Authenticated, but the caller has no `http` permission for this method and path.";
    /// 404.
    NotFound => "The user, role, permission, certificate, token, role assignment or backup archive does not exist, or the feature is not enabled.";
    /// 409.
    Conflict => "Conflict with stored state (duplicate name or fingerprint, permission already declared, protected role).";
    /// 413.
    PayloadTooLarge => "The body exceeds `http.body_limit_bytes` (an archive uploaded for restore: `backup.max_upload_bytes`).";
    /// 415.
    UnsupportedMediaType => "The body is not sent as `Content-Type: application/json` (an archive uploaded for restore: it is sent as a `multipart/*` type other than `multipart/form-data`).";
    /// 422.
    UnprocessableEntity => "A password breaks the password policy (in the client registry also: a username breaks the naming rules).";
    /// 423.
    Locked => "The client registry is not open (or holds too many pending requests), or a database backup or restore is running; try again later.";
    /// 429, with `Retry-After`.
    TooManyRequests => "Too many failed logins for this address or account (or registrations for this address).",
        [("Retry-After", "Seconds to wait before trying again.")];
    /// 503.
    ServiceUnavailable => "Overloaded (the password-hashing queue is full) or the request exceeded `http.request_timeout_secs`.";
    /// 500.
    InternalError => "An unexpected failure; the message is always `internal error`.";
}
