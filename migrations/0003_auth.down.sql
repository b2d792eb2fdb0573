DROP TABLE IF EXISTS auth_events;
DROP TABLE IF EXISTS revoked_tokens;
DROP TABLE IF EXISTS api_keys;
DROP TABLE IF EXISTS refresh_tokens;
DROP TABLE IF EXISTS email_tokens;
