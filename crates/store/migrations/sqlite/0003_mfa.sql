-- Multi-factor authentication: each user's factors (enrolled, or pending while an enrolment
-- waits for its first code), backup codes as keyed digests, and the second-factor failure
-- counter with its ban. TOTP seeds are sealed (XChaCha20-Poly1305) before they reach the
-- database; codes are stored as keyed digests. Kept in lockstep with the other engine.
ALTER TABLE users ADD COLUMN mfa_failed_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN mfa_banned_until INTEGER;

CREATE TABLE mfa_factors (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    enrolled INTEGER NOT NULL,
    use_by_default INTEGER NOT NULL,
    sealed_secret TEXT,
    contact TEXT,
    -- TOTP: the last accepted time step (a code works once).
    last_totp_step INTEGER,
    -- EMAIL/SMS: the keyed digest of the code last sent, and when it expires.
    code_digest TEXT,
    code_expires_at INTEGER,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, provider, enrolled)
);

CREATE TABLE mfa_backup_codes (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    PRIMARY KEY (user_id, digest)
);

-- Earlier versions kept a bare flag; without factors behind it, no user is enrolled.
UPDATE users SET mfa_enrolled = 0;
