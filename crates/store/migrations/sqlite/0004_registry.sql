-- Device onboarding: client registration requests and the certificates trusted as issuers of
-- client certificates (the built-in CA is not stored here: it lives in the data directory or
-- the configured files). Kept in lockstep with the other engine.
CREATE TABLE registry_requests (
    username TEXT PRIMARY KEY,
    credential_type TEXT NOT NULL,
    password_hash TEXT,
    csr TEXT,
    -- JSON: requested role names, and requested permissions as {resource, operation, context}.
    requested_roles TEXT NOT NULL,
    requested_permissions TEXT NOT NULL,
    context TEXT,
    origin TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    granted INTEGER NOT NULL DEFAULT 0,
    -- The signed certificate (PEM) of a request granted with a CSR.
    certificate TEXT,
    -- A granted request goes with its user.
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE
);

CREATE INDEX registry_requests_pending ON registry_requests (granted);

CREATE TABLE trusted_certificates (
    -- Lower-case hex SHA-256 of the DER encoding.
    id TEXT PRIMARY KEY,
    pem TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
