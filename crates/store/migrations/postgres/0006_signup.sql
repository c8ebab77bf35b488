-- Self-service sign-up (ThingsBoard T12-T21): one row per account created by a sign-up. The
-- account itself is an ordinary user row; this row says where it came from and what happened
-- since: activated (by its email code, a credential token of purpose 'signup', or by an
-- administrator who enabled it), privacy policy accepted. Kept in lockstep with the other engine.
CREATE TABLE signups (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    -- 1 when the sign-up created the user's tenant (the owner may delete it), 0 when it created
    -- a customer of a configured tenant.
    owns_tenant BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    -- When the account was first enabled; NULL while the sign-up is pending. A later lockout or
    -- disabling does not make it pending again.
    activated_at BIGINT,
    privacy_policy_accepted_at BIGINT
);

-- Pending sign-ups are counted (a cap) and purged once old.
CREATE INDEX signups_pending ON signups (activated_at, created_at);

-- Sign-up treats addresses without regard to case when it asks whether one is taken.
CREATE INDEX users_email_lower ON users (LOWER(email));
CREATE INDEX users_username_lower ON users (LOWER(username));
