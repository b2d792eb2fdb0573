-- The principal cache (docs/ARCHITECTURE.md, "The principal cache"): servers keep, per event
-- loop, what checking an access token and GET /api/v1/me read from a user's row. Every change
-- to those columns, and every deletion, notifies channel hydrant_principal with the user's id
-- in the changing transaction: sent on commit, never when it rolls back, whoever makes it
-- (a handler, `hydrant user`, an operator's SQL). A password hash alone (a re-hash at login)
-- changes nothing cached and says nothing. TRUNCATE tells everyone ('*').
CREATE FUNCTION hydrant_principal_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        PERFORM pg_notify('hydrant_principal', '*');
    ELSE
        PERFORM pg_notify('hydrant_principal', OLD.id::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_principal_updated AFTER UPDATE ON users FOR EACH ROW
    WHEN ((OLD.email, OLD.username, OLD.display_name, OLD.bio, OLD.role, OLD.email_confirmed, OLD.disabled,
           OLD.tokens_valid_after, OLD.created_at, OLD.updated_at)
          IS DISTINCT FROM
          (NEW.email, NEW.username, NEW.display_name, NEW.bio, NEW.role, NEW.email_confirmed, NEW.disabled,
           NEW.tokens_valid_after, NEW.created_at, NEW.updated_at))
    EXECUTE FUNCTION hydrant_principal_changed();
CREATE TRIGGER users_principal_deleted AFTER DELETE ON users FOR EACH ROW
    EXECUTE FUNCTION hydrant_principal_changed();
CREATE TRIGGER users_principal_truncated AFTER TRUNCATE ON users FOR EACH STATEMENT
    EXECUTE FUNCTION hydrant_principal_changed();
