//! Secrets that must be read back (TOTP seeds now; OAuth2 client secrets and LDAP bind
//! passwords later) are sealed with XChaCha20-Poly1305 under the installation's MFA key, bound
//! to their owner (the associated data), so a sealed value copied to another user's row does
//! not open. Short one-time codes (backup codes, mailed codes) are stored as keyed digests
//! (HMAC-SHA256 under a key derived from the same key): a database dump alone neither reveals
//! nor lets anyone brute-force them offline.
//!
//! The key never changes silently: its check value is stored with the data
//! ([`Gatehouse::verify_sealing_key`]), and a server started with another key refuses to start.

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{CoreError, CoreResult};
use crate::service::Gatehouse;

/// Length of a sealing key, bytes.
pub const KEY_BYTES: usize = 32;

/// Length of the random nonce in front of every sealed value.
const NONCE_BYTES: usize = 24;

/// Setting key of the stored key check value.
/// Setting key of the check value of the MFA key the stored secrets were sealed with.
pub const KEY_CHECK_SETTING: &str = "mfa.key_check";

/// The installation's key for sealed secrets and keyed digests.
#[derive(Clone)]
pub struct SealingKey {
    cipher: XChaCha20Poly1305,
    digest_key: [u8; 32],
    check_value: String,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey([redacted])")
    }
}

/// HMAC-SHA256 of `message` under `key`.
fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    for part in parts {
        // Length-prefixed, so that ("ab", "c") and ("a", "bc") differ.
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

impl SealingKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(key: &[u8; KEY_BYTES]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
            digest_key: hmac(key, &[b"gatehouse digest key v1"]),
            check_value: hex::encode(&hmac(key, &[b"gatehouse key check v1"])[..16]),
        }
    }

    /// A key from its base64 text (as configured in `mfa.encryption_key`).
    pub fn parse_base64(text: &str) -> CoreResult<Self> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| CoreError::invalid("mfa.encryption_key", "must be base64"))?;
        let key: [u8; KEY_BYTES] = bytes.try_into().map_err(|_| {
            CoreError::invalid(
                "mfa.encryption_key",
                "must be 32 bytes (e.g. `openssl rand -base64 32`)",
            )
        })?;
        Ok(Self::from_bytes(&key))
    }

    /// A new random key, as base64 text.
    pub fn generate_base64() -> String {
        use rand::RngCore;
        let mut key = [0u8; KEY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut key);
        base64::engine::general_purpose::STANDARD.encode(key)
    }

    /// Seals `plaintext` for `owner` (associated data): base64 of nonce and ciphertext.
    pub fn seal(&self, plaintext: &[u8], owner: &str) -> CoreResult<String> {
        use rand::RngCore;
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| CoreError::internal("sealing failed"))?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        Ok(base64::engine::general_purpose::STANDARD.encode(sealed))
    }

    /// Opens a value sealed for `owner`; an internal error when it was sealed under another
    /// key, for another owner, or was altered.
    pub fn open(&self, sealed: &str, owner: &str) -> CoreResult<Vec<u8>> {
        const DAMAGED: &str = "a sealed secret cannot be opened (wrong key or altered data)";
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|_| CoreError::internal(DAMAGED))?;
        if bytes.len() <= NONCE_BYTES {
            return Err(CoreError::internal(DAMAGED));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] =
            nonce.try_into().map_err(|_| CoreError::internal(DAMAGED))?;
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| CoreError::internal(DAMAGED))
    }

    /// Keyed digest (hex HMAC-SHA256) of a short one-time `code` of `owner` for `purpose`.
    pub fn digest(&self, purpose: &str, owner: &str, code: &str) -> String {
        hex::encode(hmac(
            &self.digest_key,
            &[purpose.as_bytes(), owner.as_bytes(), code.as_bytes()],
        ))
    }

    /// A value that identifies the key without revealing it, stored to detect a changed key.
    pub fn check_value(&self) -> &str {
        &self.check_value
    }
}

impl Gatehouse {
    /// Compares the configured key with the one the stored secrets were sealed with (its check
    /// value is stored at first start). A different key fails loudly instead of locking every
    /// MFA user out; replicas racing at first start agree on the first stored value.
    pub async fn verify_sealing_key(&self) -> CoreResult<()> {
        let stored = self
            .store
            .setting_or_insert(KEY_CHECK_SETTING, self.sealing.check_value())
            .await?;
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            stored.as_bytes(),
            self.sealing.check_value().as_bytes(),
        )) {
            return Err(CoreError::invalid(
                "mfa.encryption_key",
                "is not the key this database's MFA secrets were sealed with; configure the \
                 original key (every replica needs the same one)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_refuse_other_owner_key_or_tampering() {
        let key = SealingKey::parse_base64(&SealingKey::generate_base64()).unwrap();
        let sealed = key.seal(b"secret seed", "user-1").unwrap();
        assert_eq!(key.open(&sealed, "user-1").unwrap(), b"secret seed");
        assert!(key.open(&sealed, "user-2").is_err());
        let other = SealingKey::parse_base64(&SealingKey::generate_base64()).unwrap();
        assert!(other.open(&sealed, "user-1").is_err());
        let mut bytes = base64::engine::general_purpose::STANDARD
            .decode(&sealed)
            .unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = base64::engine::general_purpose::STANDARD.encode(bytes);
        assert!(key.open(&tampered, "user-1").is_err());
        assert!(key.open("", "user-1").is_err());
        assert_ne!(key.seal(b"x", "u").unwrap(), key.seal(b"x", "u").unwrap());
    }

    #[test]
    fn digests_and_check_values_depend_on_the_key() {
        let a = SealingKey::from_bytes(&[1; 32]);
        let b = SealingKey::from_bytes(&[2; 32]);
        assert_eq!(a.digest("p", "u", "c"), a.digest("p", "u", "c"));
        assert_ne!(a.digest("p", "u", "c"), b.digest("p", "u", "c"));
        assert_ne!(a.digest("p", "u", "c"), a.digest("p", "v", "c"));
        assert_ne!(a.digest("pu", "", "c"), a.digest("p", "u", "c"));
        assert_ne!(a.check_value(), b.check_value());
        assert!(SealingKey::parse_base64("c2hvcnQ=").is_err());
        assert!(SealingKey::parse_base64("not base64!").is_err());
    }
}
