-- Accounts (contract: the User object). Emails and usernames are unique case-insensitively;
-- tokens_valid_after supports "sign out everywhere": access tokens issued before it are refused.
CREATE TABLE users (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email              text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
    username           text NULL CHECK (username ~ '^[A-Za-z0-9_.-]{3,32}$'),
    display_name       text NOT NULL DEFAULT '' CHECK (char_length(display_name) <= 100),
    bio                text NOT NULL DEFAULT '' CHECK (char_length(bio) <= 2000),
    role               text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'superuser', 'admin')),
    email_confirmed    boolean NOT NULL DEFAULT false,
    disabled           boolean NOT NULL DEFAULT false,
    password_hash      text NOT NULL,
    tokens_valid_after timestamptz NOT NULL DEFAULT '-infinity',
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE UNIQUE INDEX users_username_key ON users (lower(username)) WHERE username IS NOT NULL;
CREATE INDEX users_created_at_idx ON users (created_at DESC, id DESC);
