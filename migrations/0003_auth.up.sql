-- Sessions and one-time tokens. Every token is stored only as its SHA-256 (hex): a leaked
-- table gives nobody a usable token.

-- Email confirmation (24 h) and password reset (1 h) tokens: single use.
CREATE TABLE email_tokens (
    token_hash text PRIMARY KEY CHECK (char_length(token_hash) = 64),
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text NOT NULL CHECK (purpose IN ('confirm', 'reset')),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_tokens_user_idx ON email_tokens (user_id);

-- Refresh tokens: one family per login; each use rotates (rotated_at set, a child row added);
-- presenting a rotated token again revokes the family.
CREATE TABLE refresh_tokens (
    token_hash text PRIMARY KEY CHECK (char_length(token_hash) = 64),
    family_id  uuid NOT NULL,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    rotated_at timestamptz NULL,
    revoked_at timestamptz NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
-- "Is this family revoked?" is asked at every refresh: answered from the revoked rows only.
CREATE INDEX refresh_tokens_revoked_family_idx ON refresh_tokens (family_id) WHERE revoked_at IS NOT NULL;
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);

-- One API key per user.
CREATE TABLE api_keys (
    user_id      uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    key_hash     text NOT NULL UNIQUE CHECK (char_length(key_hash) = 64),
    prefix       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz NULL
);

-- Access tokens revoked by logout before their expiry (the Redis copy is the fast path).
CREATE TABLE revoked_tokens (
    jti        text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

-- Audit trail: sign-ups, logins (both outcomes), logouts, password changes and resets, role
-- changes, disabling. Never a secret.
CREATE TABLE auth_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    uuid NULL REFERENCES users (id) ON DELETE SET NULL,
    kind       text NOT NULL,
    address    text NULL,
    detail     jsonb NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX auth_events_user_idx ON auth_events (user_id, created_at DESC);
