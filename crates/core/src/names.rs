//! Names that identify things: usernames and role names, parsed at the edge.

use std::fmt;

use crate::error::CoreError;

/// Longest username accepted, in characters.
pub const MAX_USERNAME_CHARS: usize = 128;

/// A login name. Rule: 3 to 128 characters, the first an ASCII letter or digit, the rest ASCII
/// letters, digits or one of `_ . @ + -`. This is Connectware's rule (`[a-zA-Z0-9][a-zA-Z0-9_.]*`,
/// at least 3 characters) widened by `@ + -` so that email addresses, which ThingsBoard uses as
/// login names, are valid usernames. Usernames are case-sensitive, like ThingsBoard's default.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Parses a username, naming the broken rule on failure.
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        let count = text.chars().count();
        if count < 3 {
            return Err(CoreError::invalid(
                "username",
                "must be at least 3 characters long",
            ));
        }
        if count > MAX_USERNAME_CHARS {
            return Err(CoreError::invalid(
                "username",
                "must be at most 128 characters long",
            ));
        }
        let mut chars = text.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_.@+-".contains(c));
        if !first_ok || !rest_ok {
            return Err(CoreError::invalid(
                "username",
                "must start with a letter or digit and contain only letters, digits and _ . @ + -",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address, as ThingsBoard uses for login names: `local@domain.tld`, at most 128
/// characters, the local part of ASCII letters, digits and `_ . + -` (starting with a letter or
/// digit), the domain of dot-separated labels of letters, digits and `-`. Narrower than RFC 5322
/// on purpose: every accepted address is also a valid [`Username`], so a user created by email
/// logs in through every dialect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parses an email address; `field` names the request field in the error.
    pub fn parse(text: &str, field: &str) -> Result<Self, CoreError> {
        let invalid = || CoreError::invalid(field, "must be a valid email address");
        let (local, domain) = text.split_once('@').ok_or_else(invalid)?;
        let local_ok = local
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.+-".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !local_ok || !domain_ok || text.len() > MAX_USERNAME_CHARS {
            return Err(invalid());
        }
        Ok(Self(text.to_owned()))
    }

    /// The address as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same text as a login name (every email is a valid username).
    pub fn to_username(&self) -> Username {
        Username(self.0.clone())
    }
}

/// Longest role name accepted, in characters.
pub const MAX_ROLE_NAME_CHARS: usize = 128;

/// A role name: 1 to 128 characters, no control characters, no leading or trailing spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoleName(String);

impl RoleName {
    /// Parses a role name.
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        if text.trim().is_empty() {
            return Err(CoreError::invalid("name", "must not be empty"));
        }
        if text.trim() != text {
            return Err(CoreError::invalid(
                "name",
                "must not start or end with whitespace",
            ));
        }
        if text.chars().count() > MAX_ROLE_NAME_CHARS {
            return Err(CoreError::invalid(
                "name",
                "must be at most 128 characters long",
            ));
        }
        if text.chars().any(char::is_control) {
            return Err(CoreError::invalid(
                "name",
                "must not contain control characters",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_usernames() {
        for good in ["a@b.co", "first.last+tag@mail.example.org", "x_1-2@a-b.io"] {
            let email = Email::parse(good, "email").unwrap();
            assert_eq!(
                Username::parse(email.as_str()).unwrap(),
                email.to_username()
            );
        }
        for bad in [
            "", "a", "a@b", "@b.co", "a@.co", "a@b..co", ".a@b.co", "a b@c.de", "a@b.c o",
            "a@@b.co", "ä@b.co",
        ] {
            assert!(Email::parse(bad, "email").is_err(), "{bad}");
        }
        assert!(Email::parse(&format!("{}@b.co", "a".repeat(130)), "email").is_err());
    }

    #[test]
    fn usernames() {
        for good in [
            "abc",
            "iot.device.0123456",
            "jane.doe+iot@example-corp.com",
            "A_1",
        ] {
            assert!(Username::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            "",
            ".abc",
            "-abc",
            "a b c",
            "abc/def",
            "ab#",
            "ümlaut",
            &"a".repeat(129),
        ] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn role_names() {
        assert!(RoleName::parse("connectware-admin").is_ok());
        assert!(RoleName::parse("manufacturer.iotModule.simpleRole").is_ok());
        assert!(RoleName::parse(" x").is_err());
        assert!(RoleName::parse("").is_err());
        assert!(RoleName::parse("a\nb").is_err());
    }
}
