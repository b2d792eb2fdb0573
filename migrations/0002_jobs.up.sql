-- The durable job queue (contract: the Job object). A job is enqueued by a plain INSERT, so
-- it commits or rolls back with the rows it belongs to; workers claim it with
-- FOR UPDATE SKIP LOCKED and hold it under a lease (lease_owner, lease_expires_at) that a
-- dead worker stops renewing. unique_key makes enqueueing idempotent while a job with that
-- key is still pending or running.
-- Time-ordered ids (UUID version 7: 48 bits of Unix milliseconds, then random bits), so the
-- primary key also orders jobs newest first and no separate created_at index has to be
-- maintained on every state change.
CREATE FUNCTION hydrant_uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE AS $$
    SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING
               substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
           FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
$$;

-- The smallest version-7 id of a moment: ids below it were made before it (retention).
CREATE FUNCTION hydrant_uuid_v7_floor(t timestamptz) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$
    SELECT encode(overlay('\x00000000000070008000000000000000'::bytea PLACING
               substring(int8send((extract(epoch FROM t) * 1000)::bigint) FROM 3) FROM 1 FOR 6), 'hex')::uuid
$$;

CREATE TABLE jobs (
    id               uuid PRIMARY KEY DEFAULT hydrant_uuid_v7(),
    kind             text NOT NULL CHECK (kind ~ '^[a-z0-9_]+(\.[a-z0-9_]+)*$' AND char_length(kind) <= 64),
    queue            text NOT NULL DEFAULT 'short' CHECK (queue IN ('short', 'medium', 'long')),
    priority         smallint NOT NULL DEFAULT 0,
    payload          jsonb NOT NULL DEFAULT '{}'::jsonb,
    state            text NOT NULL DEFAULT 'queued'
                     CHECK (state IN ('queued', 'running', 'succeeded', 'retrying', 'failed', 'dead', 'cancelled')),
    attempt          integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts     integer NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 100),
    run_at           timestamptz NOT NULL DEFAULT now(),
    lease_owner      text NULL,
    lease_expires_at timestamptz NULL,
    error            text NULL,
    result           jsonb NULL,
    owner_id         uuid NULL REFERENCES users (id) ON DELETE SET NULL,
    unique_key       text NULL CHECK (char_length(unique_key) <= 200),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz NULL,
    finished_at      timestamptz NULL
);

-- What workers claim: per queue, by priority then run_at.
CREATE INDEX jobs_ready_idx ON jobs (queue, priority DESC, run_at, id) WHERE state IN ('queued', 'retrying');
-- What the lease reaper scans.
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE state = 'running';
-- One pending or running job per unique key; a finished one frees the key.
CREATE UNIQUE INDEX jobs_unique_key_idx ON jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('queued', 'running', 'retrying');
-- Listing a user's jobs newest first (everybody's uses the primary key). Every claim and
-- completion rewrites the row into each index, so there are as few as the queries need.
CREATE INDEX jobs_owner_idx ON jobs (owner_id, id DESC) WHERE owner_id IS NOT NULL;
