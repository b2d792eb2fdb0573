DROP TRIGGER IF EXISTS api_keys_principal_truncated ON api_keys;
DROP TRIGGER IF EXISTS api_keys_principal_updated ON api_keys;
DROP TRIGGER IF EXISTS api_keys_principal_written ON api_keys;
DROP FUNCTION IF EXISTS hydrant_api_key_changed();
