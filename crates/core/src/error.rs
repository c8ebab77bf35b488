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
    /// A value is well-formed but breaks a configured policy (e.g. the password policy).
    #[error("{field}: {reason}")]
    PolicyViolation {
        /// The field that breaks the policy.
        field: String,
        /// Which rule is broken.
        reason: String,
    },
    /// The caller could not be authenticated.
    #[error("unauthenticated: {reason}")]
    Unauthenticated {
        /// A reason safe to show to the caller (never which half of a credential was wrong).
        reason: &'static str,
    },
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

    /// Shorthand for [`CoreError::Internal`].
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::Internal(message.to_string())
    }
}

/// Result of a core operation.
pub type CoreResult<T> = Result<T, CoreError>;
