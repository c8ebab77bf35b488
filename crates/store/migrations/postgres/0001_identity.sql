-- Identity core: users, roles, permissions, certificates, sessions, settings.
-- Kept in lockstep with ../sqlite/0001_identity.sql. Ids are UUID text, times are Unix
-- milliseconds, flags are 0/1 integers (one query path serves both engines). Names use
-- byte-order collation ("C"), SQLite's default, so both engines sort pages alike.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT COLLATE "C" NOT NULL UNIQUE,
    password_hash TEXT,
    identity_provider TEXT NOT NULL,
    grant_types TEXT NOT NULL,
    auto_generated BIGINT NOT NULL,
    mqtt_publish_prefix TEXT,
    enforce_mfa_enrollment BIGINT NOT NULL,
    mfa_enrolled BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE roles (
    id TEXT PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL,
    is_shared BIGINT NOT NULL,
    auto_generated BIGINT NOT NULL,
    ldap_group_dn TEXT,
    ms_entra_id_group_ids TEXT,
    owner_user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    builtin BIGINT NOT NULL
);
-- Role names are unique among roles that belong to no single user; a user's own role is
-- named after the user.
CREATE UNIQUE INDEX roles_name_unique ON roles(name) WHERE owner_user_id IS NULL;
CREATE UNIQUE INDEX roles_owner_unique ON roles(owner_user_id) WHERE owner_user_id IS NOT NULL;

CREATE TABLE role_permissions (
    id TEXT PRIMARY KEY,
    role_id TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    resource TEXT NOT NULL,
    operation TEXT NOT NULL,
    context TEXT NOT NULL,
    UNIQUE (role_id, resource, context)
);

CREATE TABLE user_roles (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role_id TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role_id)
);
CREATE INDEX user_roles_role ON user_roles(role_id);

CREATE TABLE user_certificates (
    fingerprint TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT
);
CREATE INDEX user_certificates_user ON user_certificates(user_id);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL,
    label TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
