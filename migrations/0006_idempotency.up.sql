-- Idempotency-Key (contract v1.1): a POST's first answer, kept 24 hours and replayed to a
-- repeat by the same caller with the same key and request. The row is claimed before the
-- request acts ('started'), marked in the same transaction as each of its writes
-- ('committed', by the attempt that holds it: a retry that took over a stale claim fences
-- the old attempt out), and holds the answer once there is one ('done'). The answer is
-- stored encrypted (AES-256-GCM under a key derived from auth.jwt-secret): login and
-- refresh answers carry tokens.
CREATE TABLE idempotency_keys (
    scope        text NOT NULL,            -- the caller: a user id, or '' without credentials
    route        text NOT NULL,            -- "POST /api/v1/auth/signup"
    key          text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
    request_hash text NOT NULL,            -- SHA-256 of the route, path, content type and body
    attempt      uuid NOT NULL,
    state        text NOT NULL CHECK (state IN ('started', 'committed', 'done')),
    status       int NULL,
    content_type text NULL,
    body         bytea NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (scope, route, key)
);
-- auth.purge deletes what has expired.
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);
