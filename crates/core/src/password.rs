//! Passwords: the plain-text wrapper that never prints, and the password policy.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, PolicyBreach};

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

/// The password policy, shared by every dialect: Connectware's `{min, lower, upper, numeric,
/// symbol}` (minimum counts of characters overall and per class; zero disables a rule) extended
/// by ThingsBoard's `UserPasswordPolicy` (maximum length, whitespace, expiry, reuse, forced
/// reset). Classes use Unicode categories: lower/upper case letters, numeric characters, and
/// everything that is not a letter, number or whitespace counts as a symbol.
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
    /// Maximum length in characters; applies only when greater than `min` (0: no maximum).
    #[serde(default)]
    pub max: u32,
    /// Whether whitespace characters are allowed.
    #[serde(default = "allowed")]
    pub allow_whitespace: bool,
    /// Days after which a password expires and must be reset (0: never).
    #[serde(default)]
    pub expiration_days: u32,
    /// Days during which a former password may not be chosen again (0: no rule).
    #[serde(default)]
    pub reuse_days: u32,
    /// Refuse a correct password that breaks the policy at login, asking for a reset.
    #[serde(default)]
    pub force_reset_if_invalid: bool,
}

fn allowed() -> bool {
    true
}

impl Default for PasswordPolicy {
    /// Connectware's default: `{"min": 5}`; nothing else is enforced.
    fn default() -> Self {
        Self {
            min: 5,
            lower: 0,
            upper: 0,
            numeric: 0,
            symbol: 0,
            max: 0,
            allow_whitespace: true,
            expiration_days: 0,
            reuse_days: 0,
            force_reset_if_invalid: false,
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
        let mut target = (self.min as usize).max(24);
        if self.max > self.min {
            target = target.min(self.max as usize);
        }
        if chars.len() < target {
            let fill = u32::try_from(target - chars.len()).unwrap_or(u32::MAX);
            let alphabet = [LOWER, UPPER, DIGITS].concat();
            chars.extend(pick(&alphabet, fill));
        }
        chars.shuffle(&mut rand::rngs::OsRng);
        // Every byte comes from the ASCII sets above.
        String::from_utf8(chars).unwrap_or_default()
    }

    /// The maximum length in force, if any (ThingsBoard applies it only above the minimum).
    pub fn effective_max(&self) -> Option<u32> {
        (self.max > 0 && self.max > self.min).then_some(self.max)
    }

    /// Every rule `password` breaks, in the policy's order (empty when it complies). Reuse is
    /// checked separately, against the password history.
    pub fn breaches(&self, password: &PlainPassword) -> Vec<PolicyBreach> {
        let text = password.expose();
        let count = |predicate: fn(&char) -> bool| text.chars().filter(predicate).count() as u64;
        let length = text.chars().count() as u64;
        let mut breaches = Vec::new();
        if length < u64::from(self.min) {
            breaches.push(PolicyBreach::TooShort { min: self.min });
        }
        if let Some(max) = self.effective_max() {
            if length > u64::from(max) {
                breaches.push(PolicyBreach::TooLong { max });
            }
        }
        type Breach = fn(u32) -> PolicyBreach;
        let classes: [(u32, u64, Breach); 4] = [
            (self.upper, count(|c| c.is_uppercase()), |min| {
                PolicyBreach::Uppercase { min }
            }),
            (self.lower, count(|c| c.is_lowercase()), |min| {
                PolicyBreach::Lowercase { min }
            }),
            (self.numeric, count(|c| c.is_numeric()), |min| {
                PolicyBreach::Digits { min }
            }),
            (
                self.symbol,
                count(|c| !c.is_alphanumeric() && !c.is_whitespace()),
                |min| PolicyBreach::Symbols { min },
            ),
        ];
        for (required, actual, breach) in classes {
            if actual < u64::from(required) {
                breaches.push(breach(required));
            }
        }
        if !self.allow_whitespace && text.chars().any(char::is_whitespace) {
            breaches.push(PolicyBreach::Whitespace);
        }
        breaches
    }

    /// Checks `password` against every rule; the error lists the broken rules.
    pub fn check(&self, password: &PlainPassword, field: &str) -> Result<(), CoreError> {
        let breaches = self.breaches(password);
        if breaches.is_empty() {
            Ok(())
        } else {
            Err(CoreError::PolicyViolation {
                field: field.to_owned(),
                breaches,
            })
        }
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
            ..PasswordPolicy::default()
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
            max: 60,
            allow_whitespace: false,
            ..PasswordPolicy::default()
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
    fn every_breach_is_listed_in_order() {
        let policy = PasswordPolicy {
            min: 6,
            max: 8,
            upper: 1,
            numeric: 1,
            allow_whitespace: false,
            ..PasswordPolicy::default()
        };
        assert_eq!(
            policy.breaches(&pw("a b")),
            vec![
                PolicyBreach::TooShort { min: 6 },
                PolicyBreach::Uppercase { min: 1 },
                PolicyBreach::Digits { min: 1 },
                PolicyBreach::Whitespace
            ]
        );
        assert_eq!(
            policy.breaches(&pw("Abcdefgh1")),
            vec![PolicyBreach::TooLong { max: 8 }]
        );
        // A maximum at or below the minimum is ignored, as ThingsBoard does.
        let loose = PasswordPolicy {
            min: 6,
            max: 6,
            ..PasswordPolicy::default()
        };
        assert!(loose.breaches(&pw("abcdefghijkl")).is_empty());
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
