//! The OpenID Connect / OAuth2 relying party over `openidconnect` (the core's
//! [`RelyingParty`]): discovery, the authorization URL (PKCE S256, nonce), the code exchange,
//! ID-token validation against the provider's JWKS, and userinfo.
//!
//! The HTTP client follows no redirects (a provider endpoint that redirects is refused rather
//! than followed somewhere else) and gives up after [`HTTP_TIMEOUT`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use gatehouse_core::error::{CoreError, CoreResult};
use gatehouse_core::federation::{
    federation_failure, AuthorizationRequest, EntraSettings, JsonRequest, ProviderAnswer,
    ProviderEndpoints, RelyingParty,
};
use gatehouse_core::oauth2::ClientAuthentication;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    JsonWebKeySet, JsonWebKeySetUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Longest wait for one request to a provider.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a provider's discovery document is reused.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

/// Largest JSON document read from a provider or a mapper service.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// An issuer for ID-token checks of providers that configure none (the issuer check is
/// switched off for them; the library needs a value).
const UNNAMED_ISSUER: &str = "https://issuer.invalid";

/// Signature algorithms accepted on ID tokens: asymmetric only (an HMAC-signed token would be
/// checked with the client secret, which the provider's users could know).
const ID_TOKEN_ALGORITHMS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// The relying party.
pub struct OidcRelyingParty {
    http: reqwest::Client,
    discovered: Mutex<HashMap<String, (Instant, ProviderEndpoints)>>,
}

impl OidcRelyingParty {
    /// A relying party with its own HTTP client (rustls, no redirects, [`HTTP_TIMEOUT`]).
    pub fn new() -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(HTTP_TIMEOUT)
            .user_agent(concat!("Gatehouse/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            discovered: Mutex::new(HashMap::new()),
        })
    }

    fn cached(&self, issuer: &str) -> Option<(Instant, ProviderEndpoints)> {
        self.discovered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(issuer)
            .cloned()
    }

    async fn userinfo(&self, uri: &str, access_token: &str) -> CoreResult<Map<String, Value>> {
        let document = self
            .fetch_json(JsonRequest {
                url: uri.to_owned(),
                body: None,
                bearer: Some(SecretString::from(access_token.to_owned())),
                basic: None,
                headers: Vec::new(),
            })
            .await?;
        match document {
            Value::Object(claims) => Ok(claims),
            _ => Err(federation_failure(
                "the identity provider's userinfo is not a JSON object",
            )),
        }
    }
}

fn unreachable(what: &str, error: impl std::fmt::Display) -> CoreError {
    tracing::warn!(%error, "{what}");
    CoreError::Unavailable {
        reason: format!("{what}: the identity provider cannot be reached"),
    }
}

fn bad_endpoint(field: &str) -> CoreError {
    federation_failure(format!("the provider's {field} is not a valid URL"))
}

/// The claims of an ID token the library has verified (signature, issuer, audience, expiry,
/// nonce): the payload of the same compact JWS, read as JSON.
fn verified_payload(compact: &str) -> CoreResult<Map<String, Value>> {
    let payload = compact
        .split('.')
        .nth(1)
        .ok_or_else(|| federation_failure("the ID token is malformed"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| federation_failure("the ID token is malformed"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(claims)) => Ok(claims),
        _ => Err(federation_failure("the ID token is malformed")),
    }
}

#[async_trait]
impl RelyingParty for OidcRelyingParty {
    async fn discover(&self, issuer: &str) -> CoreResult<ProviderEndpoints> {
        let cached = self.cached(issuer);
        if let Some((at, endpoints)) = &cached {
            if at.elapsed() < DISCOVERY_TTL {
                return Ok(endpoints.clone());
            }
        }
        let issuer_url = IssuerUrl::new(issuer.to_owned()).map_err(|_| bad_endpoint("issuer"))?;
        let metadata = match CoreProviderMetadata::discover_async(issuer_url, &self.http).await {
            Ok(metadata) => metadata,
            // A provider that is down for a moment: the last document still serves.
            Err(error) => {
                return match cached {
                    Some((_, endpoints)) => Ok(endpoints),
                    None => Err(unreachable("OpenID discovery failed", error)),
                }
            }
        };
        let endpoints = ProviderEndpoints {
            issuer: Some(metadata.issuer().to_string()),
            authorization_uri: metadata.authorization_endpoint().to_string(),
            token_uri: metadata
                .token_endpoint()
                .map(ToString::to_string)
                .ok_or_else(|| federation_failure("the provider publishes no token endpoint"))?,
            userinfo_uri: metadata.userinfo_endpoint().map(ToString::to_string),
            jwks_uri: Some(metadata.jwks_uri().to_string()),
            client_id: String::new(),
            client_secret: None,
            authentication: ClientAuthentication::Basic,
            scopes: Vec::new(),
        };
        self.discovered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(issuer.to_owned(), (Instant::now(), endpoints.clone()));
        Ok(endpoints)
    }

    fn authorization_url(
        &self,
        provider: &ProviderEndpoints,
        request: &AuthorizationRequest<'_>,
    ) -> CoreResult<String> {
        let mut client = CoreClient::new(
            ClientId::new(provider.client_id.clone()),
            IssuerUrl::new(UNNAMED_ISSUER.to_owned()).map_err(|_| bad_endpoint("issuer"))?,
            JsonWebKeySet::default(),
        )
        .set_auth_uri(
            AuthUrl::new(provider.authorization_uri.clone())
                .map_err(|_| bad_endpoint("authorization URI"))?,
        )
        .set_redirect_uri(
            RedirectUrl::new(request.redirect_uri.to_owned())
                .map_err(|_| bad_endpoint("redirect URI"))?,
        );
        // The scopes are sent exactly as configured: `openid` only when asked for.
        client = client.disable_openid_scope();
        let state = request.state.to_owned();
        let nonce = request.nonce.to_owned();
        let mut authorization = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || CsrfToken::new(state),
            move || Nonce::new(nonce),
        );
        for scope in &provider.scopes {
            authorization = authorization.add_scope(Scope::new(scope.clone()));
        }
        let verifier = PkceCodeVerifier::new(request.pkce_verifier.to_owned());
        let (url, _, _) = authorization
            .set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(&verifier))
            .url();
        Ok(url.to_string())
    }

    async fn complete(
        &self,
        provider: &ProviderEndpoints,
        code: &str,
        request: &AuthorizationRequest<'_>,
    ) -> CoreResult<ProviderAnswer> {
        let verify_id_token = provider.is_openid() && provider.jwks_uri.is_some();
        let keys = match (&provider.jwks_uri, verify_id_token) {
            (Some(uri), true) => {
                let url =
                    JsonWebKeySetUrl::new(uri.clone()).map_err(|_| bad_endpoint("JWKS URI"))?;
                JsonWebKeySet::fetch_async(&url, &self.http)
                    .await
                    .map_err(|error| unreachable("the provider's keys could not be read", error))?
            }
            _ => JsonWebKeySet::default(),
        };
        let issuer = provider.issuer.as_deref().unwrap_or(UNNAMED_ISSUER);
        let mut client = CoreClient::new(
            ClientId::new(provider.client_id.clone()),
            IssuerUrl::new(issuer.to_owned()).map_err(|_| bad_endpoint("issuer"))?,
            keys,
        )
        .set_auth_uri(
            AuthUrl::new(provider.authorization_uri.clone())
                .map_err(|_| bad_endpoint("authorization URI"))?,
        )
        .set_token_uri(
            TokenUrl::new(provider.token_uri.clone()).map_err(|_| bad_endpoint("token URI"))?,
        )
        .set_redirect_uri(
            RedirectUrl::new(request.redirect_uri.to_owned())
                .map_err(|_| bad_endpoint("redirect URI"))?,
        )
        .set_auth_type(match provider.authentication {
            ClientAuthentication::Basic => AuthType::BasicAuth,
            ClientAuthentication::Post | ClientAuthentication::None => AuthType::RequestBody,
        });
        // Public clients come without a secret (see `ProviderEndpoints::client_secret`).
        if let Some(secret) = &provider.client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.expose_secret().to_owned()));
        }
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(request.pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|error| match error {
                RequestTokenError::ServerResponse(answer) => {
                    tracing::info!(error = %answer.error(), "the identity provider refused the code");
                    federation_failure(format!(
                        "the identity provider refused the login ({})",
                        answer.error()
                    ))
                }
                RequestTokenError::Request(error) => {
                    unreachable("the token request failed", error)
                }
                other => {
                    tracing::warn!(error = %other, "unusable token response");
                    federation_failure("the identity provider's token response is unusable")
                }
            })?;
        let mut claims = Map::new();
        if verify_id_token {
            let id_token = token
                .id_token()
                .ok_or_else(|| federation_failure("the identity provider sent no ID token"))?;
            let verifier = client
                .id_token_verifier()
                .require_issuer_match(provider.issuer.is_some())
                .set_allowed_algs(ID_TOKEN_ALGORITHMS);
            id_token
                .claims(&verifier, &Nonce::new(request.nonce.to_owned()))
                .map_err(|error| {
                    tracing::info!(%error, "ID token refused");
                    federation_failure(format!("the ID token is not valid: {error}"))
                })?;
            claims = verified_payload(&id_token.to_string())?;
        }
        let access_token = token.access_token().secret().to_owned();
        if let Some(uri) = &provider.userinfo_uri {
            let info = self.userinfo(uri, &access_token).await?;
            if let (Some(from_token), Some(from_info)) = (claims.get("sub"), info.get("sub")) {
                if from_token != from_info {
                    return Err(federation_failure(
                        "userinfo describes another subject than the ID token",
                    ));
                }
            }
            for (name, value) in info {
                claims.entry(name).or_insert(value);
            }
        }
        if claims.is_empty() {
            return Err(federation_failure(
                "the identity provider said nothing about the user",
            ));
        }
        Ok(ProviderAnswer {
            claims,
            access_token: SecretString::from(access_token),
        })
    }

    async fn fetch_json(&self, request: JsonRequest) -> CoreResult<Value> {
        let mut call = match &request.body {
            Some(body) => self.http.post(&request.url).json(body),
            None => self.http.get(&request.url),
        }
        .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = &request.bearer {
            call = call.bearer_auth(token.expose_secret());
        }
        if let Some((user, password)) = &request.basic {
            call = call.basic_auth(user, Some(password.expose_secret()));
        }
        for (name, value) in &request.headers {
            call = call.header(name.as_str(), value.as_str());
        }
        let mut response = call
            .send()
            .await
            .map_err(|error| unreachable("a request to the identity provider failed", error))?;
        if !response.status().is_success() {
            return Err(federation_failure(format!(
                "{} answered {}",
                request.url.split('?').next().unwrap_or_default(),
                response.status()
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| unreachable("a request to the identity provider failed", error))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT_BYTES {
                return Err(federation_failure(
                    "the identity provider's answer is too large",
                ));
            }
        }
        serde_json::from_slice(&body)
            .map_err(|_| federation_failure("the identity provider's answer is not JSON"))
    }
}

/// The `[entra]` section: Microsoft Entra ID login for the Connectware dialect (C46–C47). Off
/// unless `client_id` is set. Any OpenID provider can stand in through `issuer`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EntraConfig {
    /// The directory (tenant) id; with `authority` it names the issuer.
    pub tenant_id: Option<String>,
    /// The application (client) id; unset: no Entra ID login.
    pub client_id: Option<String>,
    /// The client secret. A secret: taken verbatim, never logged nor shown.
    pub client_secret: Option<String>,
    /// The redirect URI registered at Entra; default `<public_url>/api/msEntraId/redirect`.
    pub redirect_uri: Option<String>,
    /// Entra's login host.
    pub authority: String,
    /// The issuer, instead of `<authority>/<tenant_id>/v2.0` (another OpenID provider, tests).
    pub issuer: Option<String>,
    /// Where the browser goes after the login; default `<public_url>/admin/`.
    pub ui_url: Option<String>,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// The claim naming the user.
    pub username_claim: String,
    /// The claim listing group object ids.
    pub groups_claim: String,
    /// The claim identifying the account for good.
    pub subject_claim: String,
    /// Lifetime of the session token, hours; default `auth.default_token_hours`.
    pub token_hours: Option<u64>,
}

impl Default for EntraConfig {
    fn default() -> Self {
        Self {
            tenant_id: None,
            client_id: None,
            client_secret: None,
            redirect_uri: None,
            authority: "https://login.microsoftonline.com".to_owned(),
            issuer: None,
            ui_url: None,
            scopes: ["openid", "profile", "email"].map(str::to_owned).to_vec(),
            username_claim: "preferred_username".to_owned(),
            groups_claim: "groups".to_owned(),
            subject_claim: "oid".to_owned(),
            token_hours: None,
        }
    }
}

/// Redacts the client secret.
impl fmt::Debug for EntraConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntraConfig")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("redirect_uri", &self.redirect_uri)
            .field("authority", &self.authority)
            .field("issuer", &self.issuer)
            .field("ui_url", &self.ui_url)
            .field("scopes", &self.scopes)
            .field("username_claim", &self.username_claim)
            .field("groups_claim", &self.groups_claim)
            .field("subject_claim", &self.subject_claim)
            .field("token_hours", &self.token_hours)
            .finish()
    }
}

impl EntraConfig {
    /// The core's Entra settings, or `None` when Entra ID login is off. `public_url` gives the
    /// default redirect URI and UI; `default_token_hours` the default session lifetime.
    pub fn core(
        &self,
        public_url: &str,
        default_token_hours: u64,
    ) -> Result<Option<EntraSettings>, String> {
        let Some(client_id) = self.client_id.clone().filter(|id| !id.is_empty()) else {
            return Ok(None);
        };
        let client_secret = self
            .client_secret
            .clone()
            .filter(|secret| !secret.is_empty())
            .ok_or("entra.client_secret is required with entra.client_id")?;
        let issuer = match (&self.issuer, &self.tenant_id) {
            (Some(issuer), _) => issuer.clone(),
            (None, Some(tenant)) if !tenant.is_empty() => {
                format!("{}/{}/v2.0", self.authority.trim_end_matches('/'), tenant)
            }
            _ => return Err("entra.tenant_id (or entra.issuer) is required".to_owned()),
        };
        let public_url = public_url.trim_end_matches('/');
        let absolute = |name: &str, url: &str| -> Result<String, String> {
            reqwest::Url::parse(url)
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https"))
                .map(|_| url.to_owned())
                .ok_or(format!("entra.{name} must be an absolute http(s) URL"))
        };
        if self.scopes.iter().all(|scope| scope != "openid") {
            return Err("entra.scopes must contain openid".to_owned());
        }
        Ok(Some(EntraSettings {
            issuer: absolute("issuer", &issuer)?,
            client_id,
            client_secret: SecretString::from(client_secret),
            redirect_uri: absolute(
                "redirect_uri",
                &self
                    .redirect_uri
                    .clone()
                    .unwrap_or(format!("{public_url}/api/msEntraId/redirect")),
            )?,
            ui_url: absolute(
                "ui_url",
                &self
                    .ui_url
                    .clone()
                    .unwrap_or(format!("{public_url}/admin/")),
            )?,
            scopes: self.scopes.clone(),
            username_claim: self.username_claim.clone(),
            groups_claim: self.groups_claim.clone(),
            subject_claim: self.subject_claim.clone(),
            token_hours: self.token_hours.unwrap_or(default_token_hours).max(1),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured() -> EntraConfig {
        EntraConfig {
            tenant_id: Some("tenant-1".to_owned()),
            client_id: Some("app-1".to_owned()),
            client_secret: Some("s3cret".to_owned()),
            ..EntraConfig::default()
        }
    }

    #[test]
    fn entra_is_off_without_a_client_id() {
        assert!(matches!(
            EntraConfig::default().core("http://127.0.0.1:8080", 24),
            Ok(None)
        ));
    }

    #[test]
    fn entra_defaults_derive_from_the_tenant_and_the_public_url() {
        let settings = configured()
            .core("https://gh.example/", 24)
            .ok()
            .flatten()
            .expect("settings");
        assert_eq!(
            settings.issuer,
            "https://login.microsoftonline.com/tenant-1/v2.0"
        );
        assert_eq!(
            settings.redirect_uri,
            "https://gh.example/api/msEntraId/redirect"
        );
        assert_eq!(settings.ui_url, "https://gh.example/admin/");
        assert_eq!(settings.token_hours, 24);
        assert_eq!(settings.subject_claim, "oid");
    }

    #[test]
    fn unusable_entra_settings_stop_the_start() {
        type Spoil = fn(&mut EntraConfig);
        let cases: [(&str, Spoil); 5] = [
            ("client_secret", |c| c.client_secret = None),
            ("tenant_id", |c| c.tenant_id = None),
            ("issuer", |c| c.issuer = Some("ftp://x".to_owned())),
            ("ui_url", |c| c.ui_url = Some("/admin".to_owned())),
            ("openid", |c| c.scopes = vec!["email".to_owned()]),
        ];
        for (named, spoil) in cases {
            let mut config = configured();
            spoil(&mut config);
            let error = config.core("http://127.0.0.1:8080", 24).expect_err(named);
            assert!(error.contains(named), "{named}: {error}");
        }
    }

    #[test]
    fn the_secret_is_not_in_debug_output() {
        let shown = format!("{:?}", configured());
        assert!(
            !shown.contains("s3cret") && shown.contains("[redacted]"),
            "{shown}"
        );
    }

    #[test]
    fn verified_payloads_are_read_as_json_objects() {
        let encode = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
        let token = format!(
            "{}.{}.sig",
            encode("{}"),
            encode(r#"{"sub":"a","groups":["g"]}"#)
        );
        let claims = verified_payload(&token).expect("claims");
        assert_eq!(claims["groups"], serde_json::json!(["g"]));
        for bad in ["", "a", "a.!!!.b", &format!("a.{}.b", encode("[1]"))] {
            assert!(verified_payload(bad).is_err(), "{bad}");
        }
    }
}
