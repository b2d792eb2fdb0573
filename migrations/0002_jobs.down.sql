DROP TABLE IF EXISTS jobs;
DROP FUNCTION IF EXISTS hydrant_uuid_v7();
DROP FUNCTION IF EXISTS hydrant_uuid_v7_floor(timestamptz);
