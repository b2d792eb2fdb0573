-- API keys in the principal cache (docs/PERFORMANCE.md, section 6): a loop answers a key from
-- its user's cache entry, which holds the key's hash among the user's verified credentials.
-- Making, replacing or deleting a key notifies channel hydrant_principal with the user's id
-- (as migration 0007 does for the user's row), in the changing transaction, so that every
-- server forgets the user and asks the database at its next use of the key. Writing a key's
-- last use alone changes nothing cached and says nothing. TRUNCATE tells everyone ('*').
-- A deleted user's keys go by cascade and notify too (the user's own deletion does already).
CREATE FUNCTION hydrant_api_key_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        PERFORM pg_notify('hydrant_principal', '*');
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('hydrant_principal', NEW.user_id::text);
    ELSE
        PERFORM pg_notify('hydrant_principal', OLD.user_id::text);
        IF TG_OP = 'UPDATE' AND NEW.user_id IS DISTINCT FROM OLD.user_id THEN
            PERFORM pg_notify('hydrant_principal', NEW.user_id::text);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

-- An INSERT replaces no key, but the answer to POST /me/api-key waits to hear its change: a
-- notification for it too keeps that answer from waiting for nothing.
CREATE TRIGGER api_keys_principal_written AFTER INSERT OR DELETE ON api_keys FOR EACH ROW
    EXECUTE FUNCTION hydrant_api_key_changed();
CREATE TRIGGER api_keys_principal_updated AFTER UPDATE ON api_keys FOR EACH ROW
    WHEN ((OLD.user_id, OLD.key_hash) IS DISTINCT FROM (NEW.user_id, NEW.key_hash))
    EXECUTE FUNCTION hydrant_api_key_changed();
CREATE TRIGGER api_keys_principal_truncated AFTER TRUNCATE ON api_keys FOR EACH STATEMENT
    EXECUTE FUNCTION hydrant_api_key_changed();
