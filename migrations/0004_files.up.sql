-- Uploaded files. The bytes live in uploads.dir under the file's id (src/files); a row is
-- committed only after its bytes are durable, together with its file.process job.
CREATE TABLE files (
    id           uuid PRIMARY KEY,
    owner_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (octet_length(name) BETWEEN 1 AND 255),
    content_type text NOT NULL CHECK (char_length(content_type) <= 255),
    size         bigint NOT NULL CHECK (size >= 0),
    sha256       text NOT NULL CHECK (char_length(sha256) = 64),
    state        text NOT NULL DEFAULT 'processing' CHECK (state IN ('processing', 'ready', 'failed')),
    job_id       uuid NULL,
    analysis     jsonb NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
-- A user's files, newest first (listing, cursor) and their total size (quota).
CREATE INDEX files_owner_idx ON files (owner_id, created_at DESC, id DESC) INCLUDE (size);
