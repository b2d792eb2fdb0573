-- Chat rooms (contract: Realtime). A room's members may read and post its messages and add
-- members; anybody else is told the room does not exist. Ids are time-ordered (UUID v7) so
-- a member's rooms list newest first by their key; messages are ordered by seq, taken when
-- the message is stored, so history pages have one total order that a cursor can resume.
CREATE TABLE rooms (
    id         uuid PRIMARY KEY DEFAULT hydrant_uuid_v7(),
    name       text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    created_by uuid NULL REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE room_members (
    room_id   uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    joined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, user_id)
);
-- A user's rooms (GET /api/v1/rooms), newest room first.
CREATE INDEX room_members_user_idx ON room_members (user_id, room_id DESC);

CREATE TABLE room_messages (
    seq        bigint GENERATED ALWAYS AS IDENTITY,
    id         uuid NOT NULL DEFAULT hydrant_uuid_v7() UNIQUE,
    room_id    uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    uuid NULL REFERENCES users (id) ON DELETE SET NULL,
    text       text NOT NULL CHECK (char_length(text) BETWEEN 1 AND 4000),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, seq)
);
