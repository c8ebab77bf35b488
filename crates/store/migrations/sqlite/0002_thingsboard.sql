-- ThingsBoard-facing identity: profile and tenancy of users, lockout state, password history,
-- one-time credential tokens (stored as digests), API keys (stored as digests), and the kind
-- of a session (one token, or an access/refresh pair). Kept in lockstep with the other engine.
ALTER TABLE users ADD COLUMN email TEXT;
ALTER TABLE users ADD COLUMN first_name TEXT;
ALTER TABLE users ADD COLUMN last_name TEXT;
ALTER TABLE users ADD COLUMN phone TEXT;
ALTER TABLE users ADD COLUMN additional_info TEXT;
ALTER TABLE users ADD COLUMN authority TEXT NOT NULL DEFAULT 'CUSTOMER_USER';
ALTER TABLE users ADD COLUMN tenant_id TEXT NOT NULL DEFAULT '13814000-1dd2-11b2-8080-808080808080';
ALTER TABLE users ADD COLUMN customer_id TEXT NOT NULL DEFAULT '13814000-1dd2-11b2-8080-808080808080';
ALTER TABLE users ADD COLUMN credentials_enabled INTEGER NOT NULL DEFAULT 1;
ALTER TABLE users ADD COLUMN failed_login_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN password_changed_at INTEGER;
CREATE UNIQUE INDEX users_email_unique ON users(email) WHERE email IS NOT NULL;
CREATE INDEX users_tenant ON users(tenant_id, customer_id);

-- Passwords set so far start their expiry period now; holders of the built-in administrator
-- role administer the installation.
UPDATE users SET password_changed_at = updated_at WHERE password_hash IS NOT NULL;
UPDATE users SET authority = 'SYS_ADMIN'
    WHERE id IN (SELECT ur.user_id FROM user_roles ur JOIN roles r ON r.id = ur.role_id
                 WHERE r.builtin = 1 AND r.name = 'connectware-admin');

-- `id` orders entries set in the same millisecond (newest = highest id).
CREATE TABLE password_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    password_hash TEXT NOT NULL,
    changed_at INTEGER NOT NULL
);
CREATE INDEX password_history_user ON password_history(user_id, changed_at);

CREATE TABLE credential_tokens (
    digest TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX credential_tokens_user ON credential_tokens(user_id, purpose);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    digest TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    expiration_time INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX api_keys_user ON api_keys(user_id);

ALTER TABLE sessions ADD COLUMN kind TEXT NOT NULL DEFAULT 'token';
