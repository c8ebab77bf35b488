-- Federated login: the ThingsBoard dialect's OAuth2 clients, registration templates and domains,
-- the links from a provider's subject to a user, and the logins under way (between the redirect
-- to a provider and its callback). Kept in lockstep with the other engine.

-- OAuth2 clients. The client secret (and the CUSTOM mapper's password) is sealed (AEAD with the MFA
-- key); it is never stored in clear and never returned in full.
CREATE TABLE oauth2_clients (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    title TEXT NOT NULL,
    -- JSON: every field of the client but the secret.
    document TEXT NOT NULL,
    -- Empty for a public client (no secret).
    client_secret_sealed TEXT NOT NULL,
    -- The CUSTOM mapper's basic-auth password, sealed like the secret.
    mapper_password_sealed TEXT
);

CREATE INDEX oauth2_clients_tenant ON oauth2_clients (tenant_id, created_at);

CREATE TABLE oauth2_templates (
    id TEXT PRIMARY KEY,
    provider_id TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    -- JSON: every field of the template.
    document TEXT NOT NULL
);

CREATE TABLE domains (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL UNIQUE,
    oauth2_enabled BIGINT NOT NULL,
    propagate_to_edge BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE domain_oauth2_clients (
    domain_id TEXT NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    client_id TEXT NOT NULL REFERENCES oauth2_clients(id) ON DELETE CASCADE,
    PRIMARY KEY (domain_id, client_id)
);

CREATE INDEX domain_oauth2_clients_client ON domain_oauth2_clients (client_id);

-- Which user a provider's subject is: provider is `entra` or `oauth2:<client id>`.
CREATE TABLE federated_identities (
    provider TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (provider, subject)
);

CREATE INDEX federated_identities_user ON federated_identities (user_id);

-- Logins under way, keyed by the SHA-256 of their `state`. The browser holds the other half: a
-- cookie whose SHA-256 is binding_digest and which is the PKCE verifier, so the verifier is
-- never stored here. A row is taken (deleted) by the callback, whatever its outcome.
CREATE TABLE federation_logins (
    state_digest TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    binding_digest TEXT NOT NULL,
    nonce TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    return_to TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE INDEX federation_logins_expiry ON federation_logins (expires_at);
