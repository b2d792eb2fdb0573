DROP TRIGGER IF EXISTS users_principal_truncated ON users;
DROP TRIGGER IF EXISTS users_principal_deleted ON users;
DROP TRIGGER IF EXISTS users_principal_updated ON users;
DROP FUNCTION IF EXISTS hydrant_principal_changed();
