//! Access/refresh token pairs with ThingsBoard's JWT claims.
//!
//! A login opens a session of kind [`SessionKind::Pair`] that lives as long as its refresh
//! token. Access tokens are short-lived and valid while the session exists; the session is
//! bound to the digest of its current refresh token, which is rotated on every refresh, so a
//! refresh token works once. Presenting an already used refresh token revokes the session
//! (a stolen token is useless once either party refreshes). Logout deletes the session; a
//! password change deletes every session of the user.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{AuthFailure, CoreError, CoreResult};
use crate::mfa::flows::SecondStep;
use crate::mfa::{MfaChallenge, MfaScope};
use crate::model::{Session, SessionKind, User};
use crate::password::PlainPassword;
use crate::service::Gatehouse;
use crate::store::PasswordChange;
use crate::tokens::{digest_hex, TokenSubject};

/// The `scopes` entry of refresh tokens.
const REFRESH_SCOPE: &str = "REFRESH_TOKEN";

/// Label of pair sessions in session listings.
const PAIR_SESSION_LABEL: &str = "thingsboard";

/// Claims of a pair's access token, in ThingsBoard's order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PairAccessClaims {
    /// The email, or the login name of users without one.
    pub sub: String,
    /// The user id.
    pub user_id: String,
    /// One element: the authority (`SYS_ADMIN`, …).
    pub scopes: Vec<String>,
    /// The session id.
    pub session_id: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// The configured issuer.
    pub iss: String,
    /// Issue time, Unix seconds.
    pub iat: i64,
    /// First name, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Whether the credentials are enabled.
    pub enabled: bool,
    /// Always false (public-customer logins are not offered).
    pub is_public: bool,
    /// The tenant id.
    pub tenant_id: String,
    /// The customer id.
    pub customer_id: String,
}

/// Claims of a pair's refresh token, in ThingsBoard's order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PairRefreshClaims {
    /// The email, or the login name.
    pub sub: String,
    /// The user id.
    pub user_id: String,
    /// `["REFRESH_TOKEN"]`.
    pub scopes: Vec<String>,
    /// The session id.
    pub session_id: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// The configured issuer.
    pub iss: String,
    /// Issue time, Unix seconds.
    pub iat: i64,
    /// Always false.
    pub is_public: bool,
    /// A fresh UUID per token, so every refresh token differs.
    pub jti: String,
}

/// A signed token pair.
#[derive(Debug, Clone)]
pub struct TokenPair {
    /// The access token.
    pub token: String,
    /// The refresh token.
    pub refresh_token: String,
}

/// What a ThingsBoard login produced.
#[derive(Debug, Clone)]
pub enum PairLogin {
    /// A full token pair.
    Pair(TokenPair),
    /// An MFA token of the challenge's scope (no refresh token).
    Mfa(Box<MfaChallenge>),
}

struct SignedPair {
    pair: TokenPair,
    refresh_expires_at: i64,
}

impl Gatehouse {
    /// Checks username and password (see [`Gatehouse::verify_password_login`]) and opens a
    /// pair session, or the MFA step that must come first.
    pub async fn login_pair(
        &self,
        login: &str,
        password: &PlainPassword,
        client: Option<std::net::IpAddr>,
    ) -> CoreResult<PairLogin> {
        let user = self
            .verify_password_login(login, password, client, false)
            .await?;
        self.pair_or_mfa(&user).await
    }

    /// The end of a ThingsBoard login of a user who has proven its password: a pair, or an MFA
    /// token (`PRE_VERIFICATION_TOKEN` when it has a factor, `MFA_CONFIGURATION_TOKEN` when it
    /// must enrol one first).
    pub async fn pair_or_mfa(&self, user: &User) -> CoreResult<PairLogin> {
        let scope = match self.second_step(user).await? {
            SecondStep::None => {
                let pair = self.open_pair_session(user).await?;
                tracing::info!(user_id = %user.id, "login succeeded (token pair)");
                return Ok(PairLogin::Pair(pair));
            }
            SecondStep::Verify => MfaScope::PreVerification,
            SecondStep::Enrol => MfaScope::Configuration,
        };
        let challenge = self.open_mfa_challenge(user, scope, None, None).await?;
        Ok(PairLogin::Mfa(Box::new(challenge)))
    }

    /// Opens a new pair session for a user who has just proven who it is.
    pub async fn open_pair_session(&self, user: &User) -> CoreResult<TokenPair> {
        self.open_pair_session_since(user, self.clock.now_millis())
            .await
    }

    /// Opens a new pair session that continues a login made at `logged_in_at` (the session's
    /// `created_at`, which re-authentication checks read); its tokens are fresh.
    pub(crate) async fn open_pair_session_since(
        &self,
        user: &User,
        logged_in_at: i64,
    ) -> CoreResult<TokenPair> {
        let now = self.clock.now_millis();
        let session_id = Uuid::new_v4();
        let signed = self.sign_pair(user, session_id, now)?;
        self.store
            .insert_session(Session {
                id: session_id,
                user_id: user.id,
                kind: SessionKind::Pair,
                fingerprint: digest_hex(&signed.pair.refresh_token),
                label: Some(PAIR_SESSION_LABEL.to_owned()),
                created_at: logged_in_at,
                expires_at: signed.refresh_expires_at,
            })
            .await?;
        Ok(signed.pair)
    }

    fn sign_pair(&self, user: &User, session_id: Uuid, now: i64) -> CoreResult<SignedPair> {
        let settings = &self.settings.token_pair;
        let iat = now.div_euclid(1000);
        let access_exp = iat + i64::from(settings.access_token_seconds);
        let refresh_exp = iat + i64::from(settings.refresh_token_seconds);
        let sub = user.email_or_username().to_owned();
        let token = self.keys.sign(&PairAccessClaims {
            sub: sub.clone(),
            user_id: user.id.to_string(),
            scopes: vec![user.tenancy.authority.as_str().to_owned()],
            session_id: session_id.to_string(),
            exp: access_exp,
            iss: settings.issuer.clone(),
            iat,
            first_name: user.profile.first_name.clone(),
            last_name: user.profile.last_name.clone(),
            enabled: user.credentials_enabled,
            is_public: false,
            tenant_id: user.tenancy.tenant_id.to_string(),
            customer_id: user.tenancy.customer_id.to_string(),
        })?;
        let refresh_token = self.keys.sign(&PairRefreshClaims {
            sub,
            user_id: user.id.to_string(),
            scopes: vec![REFRESH_SCOPE.to_owned()],
            session_id: session_id.to_string(),
            exp: refresh_exp,
            iss: settings.issuer.clone(),
            iat,
            is_public: false,
            jti: Uuid::new_v4().to_string(),
        })?;
        Ok(SignedPair {
            pair: TokenPair {
                token,
                refresh_token,
            },
            refresh_expires_at: refresh_exp.saturating_mul(1000),
        })
    }

    /// Verifies the signature, issuer, kind and expiry of a pair's access token.
    pub(crate) fn verify_pair_access(&self, token: &str, now: i64) -> CoreResult<TokenSubject> {
        if jsonwebtoken::decode_header(token).is_err() {
            // Not a JWT at all: ThingsBoard answers like a bad password.
            return Err(CoreError::unauthenticated(AuthFailure::BadCredentials));
        }
        const EXPIRED: CoreError = CoreError::Unauthenticated(AuthFailure::TokenExpired);
        let claims: PairAccessClaims = self
            .keys
            .decode(token, &self.settings.token_pair.issuer)
            .ok_or(EXPIRED)?;
        let authority = claims.scopes.first().map(String::as_str);
        if authority.and_then(crate::model::Authority::parse).is_none()
            || claims.exp.saturating_mul(1000) <= now
        {
            return Err(EXPIRED);
        }
        Ok(TokenSubject {
            user_id: Uuid::parse_str(&claims.user_id).map_err(|_| EXPIRED)?,
            session_id: Uuid::parse_str(&claims.session_id).map_err(|_| EXPIRED)?,
        })
    }

    /// Exchanges a refresh token for a new pair of the same session, rotating the refresh
    /// token atomically: of two parallel refreshes with one token, one wins.
    pub async fn refresh_pair(&self, refresh_token: &str) -> CoreResult<TokenPair> {
        const EXPIRED: CoreError = CoreError::Unauthenticated(AuthFailure::TokenExpired);
        const OUTDATED: CoreError = CoreError::Unauthenticated(AuthFailure::TokenOutdated);
        let now = self.clock.now_millis();
        if jsonwebtoken::decode_header(refresh_token).is_err() {
            return Err(CoreError::unauthenticated(AuthFailure::BadCredentials));
        }
        let issuer = &self.settings.token_pair.issuer;
        let claims: PairRefreshClaims = match self.keys.decode(refresh_token, issuer) {
            Some(claims) => claims,
            None if self
                .keys
                .decode::<PairAccessClaims>(refresh_token, issuer)
                .is_some() =>
            {
                return Err(CoreError::unauthenticated(AuthFailure::InvalidRefreshToken))
            }
            None => return Err(EXPIRED),
        };
        if claims.scopes.first().map(String::as_str) != Some(REFRESH_SCOPE) {
            return Err(CoreError::unauthenticated(AuthFailure::InvalidRefreshToken));
        }
        if claims.exp.saturating_mul(1000) <= now {
            return Err(EXPIRED);
        }
        let session_id = Uuid::parse_str(&claims.session_id).map_err(|_| OUTDATED)?;
        let user_id = Uuid::parse_str(&claims.user_id).map_err(|_| OUTDATED)?;
        let session = self.store.session(session_id).await?.ok_or(OUTDATED)?;
        let presented = digest_hex(refresh_token);
        let current: bool =
            subtle::ConstantTimeEq::ct_eq(presented.as_bytes(), session.fingerprint.as_bytes())
                .into();
        if session.user_id != user_id || session.kind != SessionKind::Pair {
            return Err(OUTDATED);
        }
        if !current {
            // A refresh token of this session that was already used: treat it as stolen.
            self.store
                .revoke_sessions(user_id, Some(&session.id.to_string()))
                .await?;
            tracing::warn!(user_id = %user_id, session_id = %session.id, "refresh token reused; session revoked");
            return Err(OUTDATED);
        }
        // Refresh reloads the user, so a disabled or changed user is seen at once.
        let user = self.store.user(user_id).await?.ok_or(OUTDATED)?;
        if !user.credentials_enabled {
            return Err(CoreError::unauthenticated(AuthFailure::NotActive));
        }
        let signed = self.sign_pair(&user, session_id, now)?;
        let rotated = self
            .store
            .rotate_session(
                session_id,
                &presented,
                &digest_hex(&signed.pair.refresh_token),
                signed.refresh_expires_at,
            )
            .await?;
        if !rotated {
            return Err(OUTDATED);
        }
        Ok(signed.pair)
    }

    /// Ends the caller's session: its access and refresh tokens stop working. API-key callers
    /// have no session; for them this does nothing.
    pub async fn logout(&self, principal: &Principal) -> CoreResult<()> {
        if let Some(session) = &principal.session {
            self.store
                .revoke_sessions(principal.user.id, Some(&session.id.to_string()))
                .await?;
        }
        Ok(())
    }

    /// ThingsBoard's password change: the checks of [`Gatehouse::change_own_password`], then
    /// every session of the user is revoked and a new pair is returned.
    pub async fn change_password_pair(
        &self,
        principal: &Principal,
        current: &PlainPassword,
        new: &PlainPassword,
    ) -> CoreResult<TokenPair> {
        let user_id = principal.user.id;
        let password_hash = self
            .accept_password_change(user_id, current, new, "newPassword")
            .await?;
        self.store
            .set_password(PasswordChange {
                user_id,
                password_hash,
                changed_at: self.clock.now_millis(),
                history_keep: crate::auth::PASSWORD_HISTORY_KEEP,
                consume_token: None,
                enable_credentials: false,
            })
            .await?;
        tracing::info!(user_id = %user_id, "password changed; sessions revoked");
        let user = self
            .store
            .user(user_id)
            .await?
            .ok_or(CoreError::not_found("user"))?;
        self.open_pair_session(&user).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_claims_keep_thingsboards_order_and_omit_missing_names() {
        let claims = PairAccessClaims {
            sub: "a@b.co".into(),
            user_id: "u".into(),
            scopes: vec!["TENANT_ADMIN".into()],
            session_id: "s".into(),
            exp: 2,
            iss: "thingsboard.io".into(),
            iat: 1,
            first_name: None,
            last_name: Some("L".into()),
            enabled: true,
            is_public: false,
            tenant_id: "t".into(),
            customer_id: "c".into(),
        };
        let json = serde_json::to_string(&claims).unwrap();
        assert_eq!(
            json,
            r#"{"sub":"a@b.co","userId":"u","scopes":["TENANT_ADMIN"],"sessionId":"s","exp":2,"iss":"thingsboard.io","iat":1,"lastName":"L","enabled":true,"isPublic":false,"tenantId":"t","customerId":"c"}"#
        );
    }
}
