//! Passwords: the plain-text wrapper that never prints, and the password policy.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// Longest password accepted, in bytes; bounds the hashing cost of hostile input.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A plain-text password as received. Its `Debug` output is redacted.
#[derive(Clone)]
pub struct PlainPassword(SecretString);

impl PlainPassword {
    /// Wraps a password, rejecting empty and over-long input (a shape check, not the policy).
    pub fn parse(text: &str, field: &'static str) -> Result<Self, CoreError> {
        if text.is_empty() {
            return Err(CoreError::invalid(field, "must not be empty"));
        }
        if text.len() > MAX_PASSWORD_BYTES {
            return Err(CoreError::invalid(field, "must be at most 1024 bytes"));
        }
        Ok(Self(SecretString::from(text.to_owned())))
    }

    /// The secret text, for hashing and policy checks only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for PlainPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainPassword(<redacted>)")
    }
}

/// Connectware's password policy `{min, lower, upper, numeric, symbol}`: minimum counts of
/// characters overall and per class. A missing or zero value disables that rule. Classes use
/// Unicode categories: lower/upper case letters, numeric characters, and everything else that is
/// not a letter, number or whitespace counts as a symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordPolicy {
    /// Minimum length in characters.
    #[serde(default)]
    pub min: u32,
    /// Minimum number of lower-case letters.
    #[serde(default)]
    pub lower: u32,
    /// Minimum number of upper-case letters.
    #[serde(default)]
    pub upper: u32,
    /// Minimum number of digits.
    #[serde(default)]
    pub numeric: u32,
    /// Minimum number of symbols.
    #[serde(default)]
    pub symbol: u32,
}

impl Default for PasswordPolicy {
    /// Connectware's default: `{"min": 5}`.
    fn default() -> Self {
        Self {
            min: 5,
            lower: 0,
            upper: 0,
            numeric: 0,
            symbol: 0,
        }
    }
}

impl PasswordPolicy {
    /// Generates a random password that satisfies this policy: at least 24 characters, with the
    /// required number of characters of each class, shuffled.
    pub fn generate(&self) -> String {
        use rand::seq::SliceRandom;
        use rand::Rng;
        const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
        const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
        const DIGITS: &[u8] = b"23456789";
        const SYMBOLS: &[u8] = b"!#%+-.:=?@_~";
        let mut rng = rand::rngs::OsRng;
        let mut pick = |set: &[u8], count: u32| -> Vec<u8> {
            (0..count)
                .map(|_| set[rng.gen_range(0..set.len())])
                .collect()
        };
        let mut chars = Vec::new();
        chars.extend(pick(LOWER, self.lower.max(4)));
        chars.extend(pick(UPPER, self.upper.max(4)));
        chars.extend(pick(DIGITS, self.numeric.max(4)));
        chars.extend(pick(SYMBOLS, self.symbol));
        let target = (self.min as usize).max(24);
        if chars.len() < target {
            let fill = u32::try_from(target - chars.len()).unwrap_or(u32::MAX);
            let alphabet = [LOWER, UPPER, DIGITS].concat();
            chars.extend(pick(&alphabet, fill));
        }
        chars.shuffle(&mut rand::rngs::OsRng);
        // Every byte comes from the ASCII sets above.
        String::from_utf8(chars).unwrap_or_default()
    }

    /// Checks `password` against every rule; the error names the first broken rule.
    pub fn check(&self, password: &PlainPassword, field: &str) -> Result<(), CoreError> {
        let text = password.expose();
        let count = |predicate: fn(&char) -> bool| text.chars().filter(predicate).count() as u64;
        let rules: [(u32, u64, &str); 5] = [
            (self.min, text.chars().count() as u64, "characters"),
            (
                self.lower,
                count(|c| c.is_lowercase()),
                "lower-case letters",
            ),
            (
                self.upper,
                count(|c| c.is_uppercase()),
                "upper-case letters",
            ),
            (self.numeric, count(|c| c.is_numeric()), "digits"),
            (
                self.symbol,
                count(|c| !c.is_alphanumeric() && !c.is_whitespace()),
                "symbols",
            ),
        ];
        for (required, actual, what) in rules {
            if actual < u64::from(required) {
                return Err(CoreError::PolicyViolation {
                    field: field.to_owned(),
                    reason: format!("the password policy requires at least {required} {what}"),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(text: &str) -> PlainPassword {
        PlainPassword::parse(text, "password").unwrap()
    }

    #[test]
    fn default_policy_needs_five_characters() {
        let policy = PasswordPolicy::default();
        assert!(policy.check(&pw("abcd"), "password").is_err());
        assert!(policy.check(&pw("abcde"), "password").is_ok());
        assert!(policy.check(&pw("äöüßé"), "password").is_ok());
    }

    #[test]
    fn class_rules_name_the_rule() {
        let policy = PasswordPolicy {
            min: 8,
            upper: 2,
            lower: 2,
            numeric: 1,
            symbol: 1,
        };
        let err = policy.check(&pw("abcdefgh"), "password").unwrap_err();
        assert!(err.to_string().contains("upper-case"), "{err}");
        assert!(policy.check(&pw("abCDef1!"), "password").is_ok());
        let err = policy.check(&pw("abCDefg1"), "password").unwrap_err();
        assert!(err.to_string().contains("symbols"), "{err}");
    }

    #[test]
    fn generated_passwords_satisfy_the_policy() {
        let strict = PasswordPolicy {
            min: 40,
            lower: 3,
            upper: 5,
            numeric: 6,
            symbol: 7,
        };
        for policy in [PasswordPolicy::default(), strict] {
            let generated = policy.generate();
            assert!(generated.len() >= 24);
            assert!(
                policy.check(&pw(&generated), "password").is_ok(),
                "{policy:?}"
            );
        }
        assert_ne!(
            PasswordPolicy::default().generate(),
            PasswordPolicy::default().generate()
        );
    }

    #[test]
    fn debug_never_shows_the_password() {
        assert!(!format!("{:?}", pw("hunter22")).contains("hunter22"));
    }

    #[test]
    fn shape_limits() {
        assert!(PlainPassword::parse("", "p").is_err());
        assert!(PlainPassword::parse(&"x".repeat(1025), "p").is_err());
    }
}
