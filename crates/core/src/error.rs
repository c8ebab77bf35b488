//! The one error type of the core. Every dialect maps it to its own wire shape; nothing here
//! knows about HTTP status codes.

use thiserror::Error;

/// Why a core operation did not succeed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CoreError {
    /// The named thing (e.g. "user", "role") does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked up.
        what: &'static str,
    },
    /// The request conflicts with stored state (a duplicate name, an already declared permission).
    #[error("{message}")]
    Conflict {
        /// What conflicts, for the caller.
        message: String,
    },
    /// A field of the request is malformed.
    #[error("{field}: {reason}")]
    Invalid {
        /// The offending field, as the caller named it.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A password breaks the password policy.
    #[error("{field}: {}", breaches.first().map(ToString::to_string).unwrap_or_default())]
    PolicyViolation {
        /// The field that breaks the policy.
        field: String,
        /// Every broken rule, in the policy's order (never empty).
        breaches: Vec<PolicyBreach>,
    },
    /// The caller could not be authenticated.
    #[error("unauthenticated: {0}")]
    Unauthenticated(AuthFailure),
    /// A credential operation was refused for a reason the caller must see (a wrong current
    /// password, an unknown or expired link token …).
    #[error("{0}")]
    Rejected(Rejection),
    /// The caller is authenticated but lacks the permission.
    #[error("forbidden: {reason}")]
    Forbidden {
        /// A reason safe to show to the caller.
        reason: String,
    },
    /// The account or resource is locked.
    #[error("locked: {reason}")]
    Locked {
        /// Why it is locked.
        reason: String,
    },
    /// Too many attempts; try again after the given number of seconds.
    #[error("rate limited, retry after {retry_after_secs}s")]
    RateLimited {
        /// Seconds until a retry may succeed.
        retry_after_secs: u64,
    },
    /// A dependency (database, hashing pool) cannot serve the request right now.
    #[error("unavailable: {reason}")]
    Unavailable {
        /// What is unavailable.
        reason: String,
    },
    /// A bug or an unexpected failure of a dependency. The message is logged, not shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    /// Shorthand for [`CoreError::Invalid`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`CoreError::Conflict`].
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict {
            message: message.into(),
        }
    }

    /// Shorthand for [`CoreError::NotFound`].
    pub fn not_found(what: &'static str) -> Self {
        Self::NotFound { what }
    }

    /// Shorthand for [`CoreError::Unauthenticated`].
    pub fn unauthenticated(failure: AuthFailure) -> Self {
        Self::Unauthenticated(failure)
    }

    /// Shorthand for [`CoreError::Internal`].
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::Internal(message.to_string())
    }
}

/// Why a caller could not be authenticated. Safe to show: never says which half of a
/// credential was wrong. Each dialect words these in its own way.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credential was presented.
    #[error("a credential is required")]
    MissingCredentials,
    /// Unknown user, wrong password, unknown API key, a malformed token, or a user who may not
    /// log in with a password: one answer for all so that names cannot be probed.
    #[error("invalid username or password")]
    BadCredentials,
    /// The account is not activated, was disabled, or is locked.
    #[error("the account is not active")]
    NotActive,
    /// This attempt used up the allowed failed attempts and locked the account.
    #[error("the account is locked due to the security policy")]
    LockedNow,
    /// An access token that is expired, revoked or not signed by this installation.
    #[error("invalid or expired token")]
    TokenExpired,
    /// A refresh token that was revoked or already used.
    #[error("the refresh token is outdated")]
    TokenOutdated,
    /// A token of the wrong kind was presented as a refresh token.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// The password is older than the policy allows; it must be reset with this token.
    #[error("the password has expired")]
    PasswordExpired {
        /// A password-reset token for the user (shown once).
        reset_token: String,
    },
    /// The password is right but breaks the current policy, which demands a reset.
    #[error("the password violates the password policy and must be reset")]
    PasswordViolatesPolicy,
    /// The API key has expired.
    #[error("the API key has expired")]
    ApiKeyExpired,
    /// A login through an identity provider (OpenID Connect, OAuth2) failed; the reason is
    /// safe to show the user (it never carries a token or secret).
    #[error("{reason}")]
    Federation {
        /// What went wrong.
        reason: String,
    },
    /// Too many wrong second-factor codes: the user is banned for a while (or, with no
    /// `retry_after_secs`, disabled until an administrator enables it).
    #[error("too many failed login attempts")]
    MfaBanned {
        /// Seconds until the ban ends, when it ends by itself.
        retry_after_secs: Option<u64>,
    },
}

/// Why a credential operation was refused. Each dialect words these in its own way.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The current password given to a password change is wrong.
    #[error("is not the current password")]
    WrongCurrentPassword,
    /// The new password equals the current one.
    #[error("must differ from the current password")]
    PasswordUnchanged,
    /// No activation link has this token.
    #[error("unknown activation token")]
    ActivationTokenUnknown,
    /// The activation link has expired.
    #[error("the activation link has expired")]
    ActivationTokenExpired,
    /// The user is activated already.
    #[error("the user is already activated")]
    AlreadyActivated,
    /// No password-reset link has this token.
    #[error("unknown password reset token")]
    ResetTokenUnknown,
    /// The password-reset link has expired.
    #[error("the password reset link has expired")]
    ResetTokenExpired,
    /// No pending sign-up has this email code.
    #[error("unknown email code")]
    EmailCodeUnknown,
    /// The email code has expired.
    #[error("the email code has expired")]
    EmailCodeExpired,
    /// The user's password is managed elsewhere (LDAP, Entra ID).
    #[error("the password of an externally managed user cannot be changed here")]
    ExternallyManaged,
    /// A second-factor code is wrong, expired or used already.
    #[error("the verification code is incorrect")]
    InvalidVerificationCode,
    /// The user has no factor of the requested provider.
    #[error("2FA is not configured for the account")]
    MfaNotConfigured,
    /// The provider is not enabled in the platform settings.
    #[error("the 2FA provider is not enabled")]
    MfaProviderDisabled,
    /// The user has a factor of this provider already.
    #[error("the 2FA provider is already configured")]
    MfaAlreadyConfigured,
    /// The last factor of a user who must use 2FA cannot be removed.
    #[error("at least one 2FA provider is required")]
    MfaRequired,
    /// Backup codes back up another factor, which must be configured first.
    #[error("backup codes require another 2FA provider to be configured first")]
    MfaNeedsPrimary,
    /// A confirmation without a started enrolment.
    #[error("no MFA enrolment is in progress; start one with /api/mfa/enable")]
    NoEnrolmentInProgress,
}

/// One broken rule of the password policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyBreach {
    /// Fewer characters than the minimum.
    TooShort {
        /// The minimum.
        min: u32,
    },
    /// More characters than the maximum.
    TooLong {
        /// The maximum.
        max: u32,
    },
    /// Too few upper-case letters.
    Uppercase {
        /// The minimum count.
        min: u32,
    },
    /// Too few lower-case letters.
    Lowercase {
        /// The minimum count.
        min: u32,
    },
    /// Too few digits.
    Digits {
        /// The minimum count.
        min: u32,
    },
    /// Too few symbols.
    Symbols {
        /// The minimum count.
        min: u32,
    },
    /// A whitespace character where the policy forbids them.
    Whitespace,
    /// The password was used within the reuse period.
    Reused {
        /// The reuse period in days.
        days: u32,
    },
    /// A username the naming rules refuse (the client registry reports it as a policy breach).
    Username,
}

impl std::fmt::Display for PolicyBreach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at_least = |f: &mut std::fmt::Formatter<'_>, min: u32, what: &str| {
            write!(f, "the password policy requires at least {min} {what}")
        };
        match *self {
            PolicyBreach::TooShort { min } => at_least(f, min, "characters"),
            PolicyBreach::TooLong { max } => {
                write!(f, "the password policy allows at most {max} characters")
            }
            PolicyBreach::Uppercase { min } => at_least(f, min, "upper-case letters"),
            PolicyBreach::Lowercase { min } => at_least(f, min, "lower-case letters"),
            PolicyBreach::Digits { min } => at_least(f, min, "digits"),
            PolicyBreach::Symbols { min } => at_least(f, min, "symbols"),
            PolicyBreach::Whitespace => {
                f.write_str("the password policy forbids whitespace characters")
            }
            PolicyBreach::Reused { days } => write!(
                f,
                "the password was already used within the last {days} days"
            ),
            PolicyBreach::Username => f.write_str(
                "a username must be 3 to 128 characters, start with a letter or digit and \
                 contain only letters, digits and _ . @ + -",
            ),
        }
    }
}

/// Result of a core operation.
pub type CoreResult<T> = Result<T, CoreError>;
