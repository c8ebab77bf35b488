//! Signed access tokens (JWT, HS512) bound to stored sessions.
//!
//! The token carries the user id (`sub`), the session id (`sid`), `iat` and `exp`; a token is
//! accepted only while its session exists, so deleting the session revokes it. Expiry is checked
//! against the injected clock, not the library's, so tests can move time.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{AuthFailure, CoreError, CoreResult};

/// Setting key of the token signing secret (base64), stored at first start and shared by
/// every replica.
pub const SIGNING_KEY_SETTING: &str = "jwt.signing_key";

/// Issuer claim of Gatehouse tokens.
pub const ISSUER: &str = "gatehouse";

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// The user id.
    pub sub: String,
    /// The session id.
    pub sid: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// Always [`ISSUER`].
    pub iss: String,
}

/// The verified identity a token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenSubject {
    /// The user.
    pub user_id: Uuid,
    /// The session the token belongs to.
    pub session_id: Uuid,
}

/// The signing key of this installation and its key id.
#[derive(Clone)]
pub struct TokenKeys {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl TokenKeys {
    /// Builds keys from a secret of at least 64 bytes (512 bits, as HS512 requires).
    pub fn from_secret(secret: &[u8]) -> CoreResult<Self> {
        if secret.len() < 64 {
            return Err(CoreError::invalid(
                "jwt signing key",
                "must be at least 64 bytes",
            ));
        }
        let kid = hex::encode(&Sha256::digest(secret)[..8]);
        Ok(Self {
            kid,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        })
    }

    /// Generates a new random 64-byte secret.
    pub fn generate_secret() -> Vec<u8> {
        use rand::RngCore;
        let mut secret = vec![0u8; 64];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        secret
    }

    /// Signs arbitrary claims with this installation's key (HS512, with `kid`).
    pub fn sign<T: Serialize>(&self, claims: &T) -> CoreResult<String> {
        let mut header = Header::new(Algorithm::HS512);
        header.kid = Some(self.kid.clone());
        encode(&header, claims, &self.encoding).map_err(CoreError::internal)
    }

    /// Decodes claims signed by this installation's key and issued by `issuer`, without
    /// checking expiry (the caller checks it against the injected clock). `None` when the
    /// signature, the issuer or the claims' shape does not match.
    pub fn decode<T: DeserializeOwned>(&self, token: &str, issuer: &str) -> Option<T> {
        let mut validation = Validation::new(Algorithm::HS512);
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.set_issuer(&[issuer]);
        decode::<T>(token, &self.decoding, &validation)
            .ok()
            .map(|data| data.claims)
    }

    /// Signs an access token for a session.
    pub fn issue(
        &self,
        subject: TokenSubject,
        issued_millis: i64,
        expires_millis: i64,
    ) -> CoreResult<String> {
        self.sign(&AccessClaims {
            sub: subject.user_id.to_string(),
            sid: subject.session_id.to_string(),
            iat: issued_millis.div_euclid(1000),
            exp: expires_millis.div_euclid(1000),
            iss: ISSUER.to_owned(),
        })
    }

    /// Verifies signature, issuer and expiry (against `now_millis`) and returns the subject.
    pub fn verify(&self, token: &str, now_millis: i64) -> CoreResult<TokenSubject> {
        const REJECTED: CoreError = CoreError::Unauthenticated(AuthFailure::TokenExpired);
        let claims: AccessClaims = self.decode(token, ISSUER).ok_or(REJECTED)?;
        if claims.exp.saturating_mul(1000) <= now_millis {
            return Err(REJECTED);
        }
        let user_id = Uuid::parse_str(&claims.sub).map_err(|_| REJECTED)?;
        let session_id = Uuid::parse_str(&claims.sid).map_err(|_| REJECTED)?;
        Ok(TokenSubject {
            user_id,
            session_id,
        })
    }
}

/// A random URL-safe token of `bytes` random bytes (base64url without padding), for one-time
/// links and API keys.
pub fn random_token(bytes: usize) -> String {
    use base64::Engine as _;
    use rand::RngCore;
    let mut buffer = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buffer);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buffer)
}

/// Lower-case hex SHA-256 of a high-entropy secret (token, API key): what is stored instead.
pub fn digest_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_verify_expire_and_tamper() {
        let keys = TokenKeys::from_secret(&TokenKeys::generate_secret()).unwrap();
        let subject = TokenSubject {
            user_id: Uuid::new_v4(),
            session_id: Uuid::new_v4(),
        };
        let token = keys.issue(subject, 1_000_000, 2_000_000).unwrap();
        assert_eq!(keys.verify(&token, 1_500_000).unwrap(), subject);
        assert!(keys.verify(&token, 2_000_000).is_err());
        let other = TokenKeys::from_secret(&TokenKeys::generate_secret()).unwrap();
        assert!(other.verify(&token, 1_500_000).is_err());
        assert!(keys.verify("not.a.jwt", 0).is_err());
        assert!(keys.verify("", 0).is_err());
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(TokenKeys::from_secret(&[0u8; 32]).is_err());
    }
}
