/*
 * Every SQL statement the server runs, in one table. Each is prepared on every pipelined
 * connection when it connects (and the job statements on each worker's connection), and
 * referred to by its id.
 *
 * The columns a statement returns are listed, in order and by name, in db/columns.h
 * (DB_COLS_<STMT>, named in each comment here as "Columns:"): code reads results by those
 * names, so a SELECT list changes together with its list; test_db_columns compares them
 * with what PostgreSQL reports. Columns without a natural name get an alias for that.
 */
#include "db/db.h"

/* RFC 3339 UTC with milliseconds, as the contract writes timestamps. */
#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* The contract's Job object, built by PostgreSQL so that handlers pass it through. */
#define JOB_JSON_OF(t)                                                                                       \
    "json_build_object('id', " t "id, 'kind', " t "kind, 'queue', " t "queue, 'state', " t "state, "         \
    "'attempt', " t "attempt, 'max_attempts', " t "max_attempts, 'error', " t "error, 'result', " t          \
    "result, "                                                                                               \
    "'created_at', " TS(t "created_at") ", 'run_at', " TS(t "run_at") ", 'started_at', " TS(                 \
        t "started_at") ", 'finished_at', " TS(t "finished_at") ")::text"
#define JOB_JSON JOB_JSON_OF("")

/* What a job.updated event needs from a changed row of jobs t (src/jobs/events.c): its id and
 * owner, its version (bumped by the change) and, when it has an owner, its Job JSON. Columns:
 * DB_COLS_JOB_EVENT. */
#define JOB_EVENT_OF(t)                                                                                      \
    t "id AS event_id, " t "owner_id AS event_owner, " t "version AS event_version, CASE WHEN " t            \
      "owner_id IS NOT NULL THEN " JOB_JSON_OF(t) " END AS event_job"
#define JOB_EVENT_J JOB_EVENT_OF("j.") /* of `jobs j` */

/* The contract's User object. */
#define USER_JSON                                                                                            \
    "json_build_object('id', id, 'email', email, 'username', username, 'display_name', display_name, "       \
    "'bio', bio, "                                                                                           \
    "'role', role, 'email_confirmed', email_confirmed, 'disabled', disabled, 'created_at', " TS(             \
        "created_at") ", "                                                                                   \
                      "'updated_at', " TS("updated_at") ")::text"

/* An API key's last use ($1 its hash), written at most once every $2 seconds: a key used by
 * every request does not rewrite its row on every request. */
#define API_KEY_TOUCH                                                                                        \
    "UPDATE api_keys SET last_used_at = now() WHERE key_hash = $1 AND (last_used_at IS NULL OR "             \
    "last_used_at < now() - $2::int * interval '1 second')"

/* The contract's File object. */
#define FILE_JSON                                                                                            \
    "json_build_object('id', id, 'name', name, 'content_type', content_type, 'size', size, 'sha256', "       \
    "sha256, 'state', state, 'job_id', job_id, 'analysis', analysis, 'created_at', " TS(                     \
        "created_at") ", 'updated_at', " TS("updated_at") ")::text"

/* The contract's Room (of rooms r) and Message (of room_messages m, its author u joined). */
#define ROOM_JSON                                                                                            \
    "json_build_object('id', r.id, 'name', r.name, 'created_by', r.created_by, 'created_at', " TS(           \
        "r.created_at") ")::text"
#define MESSAGE_JSON                                                                                         \
    "json_build_object('id', m.id, 'room_id', m.room_id, 'user', CASE WHEN u.id IS NULL THEN NULL ELSE "     \
    "json_build_object('id', u.id, 'username', u.username) END, 'text', m.text, 'created_at', " TS(          \
        "m.created_at") ")::text"
/* Is $2 a member of room $1? */
#define ROOM_MEMBER_SQL "EXISTS (SELECT 1 FROM room_members WHERE room_id = $1::uuid AND user_id = $2::uuid)"

/* The User's fields as plain columns, for handlers_user_json_from_row: on the hottest path
 * the loop writes the JSON for less than PostgreSQL's json_build_object costs the backend.
 * Columns: DB_COLS_USER_ROW. */
#define USER_COLUMNS                                                                                         \
    "id, email, username, display_name, bio, role, email_confirmed, disabled, to_json(created_at AT TIME "   \
    "ZONE 'UTC') AS created_at, to_json(updated_at AT TIME ZONE 'UTC') AS updated_at"

static const db_stmt_def_t db_statements[DB_STMT__COUNT] = {
    /* Columns: DB_COLS_PING and DB_COLS_ECHO_INT (the test hooks' two have no list). */
    [DB_STMT_PING] = {"ping", "SELECT 1", 0, .shares_sync = 1},
#ifdef HYDRANT_TEST_HOOKS
    [DB_STMT_ECHO_INT_SHARED] = {"echo_int_shared", "SELECT $1::int", 1, .shares_sync = 1},
    [DB_STMT_SLEEP_MS] = {"sleep_ms", "SELECT pg_sleep($1::int / 1000.0)", 1, .read_only = 1},
#endif
    [DB_STMT_ECHO_INT] = {"echo_int", "SELECT $1::int", 1, .read_only = 1},

    /* $1 the batch's deadline in Unix seconds. Past it, the statement fails (a text that is
     * no integer: 22P02, with the time in the message) and so does its batch: nothing commits
     * once the client may have answered 503. The ELSE branch is volatile, so the planner never
     * evaluates it early. Columns: DB_COLS_DEADLINE. */
    [DB_STMT_DEADLINE] = {"deadline",
                          "SELECT CASE WHEN clock_timestamp() <= to_timestamp($1::float8) THEN 0 ELSE "
                          "('hydrant: the batch missed its deadline at ' || clock_timestamp())::int END",
                          1, .read_only = 1},
    /* Columns: DB_COLS_NOTIFY. */
    [DB_STMT_NOTIFY] = {"notify", "SELECT pg_notify($1, $2)", 2},

    /* $1 kind, $2 queue, $3 payload, $4 owner or NULL, $5 unique key or NULL, $6 run_at or NULL
     * (now), $7 max_attempts or NULL (5), $8 priority or NULL (0). No row when the unique key
     * is taken by a pending job. The notification is sent when the caller's batch commits.
     * Columns: DB_COLS_JOB_ENQUEUE. */
    [DB_STMT_JOB_ENQUEUE] =
        {"job_enqueue",
         "INSERT INTO jobs (kind, queue, payload, owner_id, unique_key, run_at, max_attempts, "
         "priority) VALUES ($1, $2, $3::jsonb, $4::uuid, $5, coalesce($6::timestamptz, now()), "
         "coalesce($7::int, 5), coalesce($8::smallint, 0)) "
         "ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN ('queued', "
         "'running', 'retrying') DO NOTHING "
         "RETURNING id, pg_notify('hydrant_jobs', queue)",
         8},

    /* $1 queue, $2 how many, $3 lease owner, $4 lease seconds. Returns id, kind, payload,
     * attempt, max_attempts, seconds from run_at to now (start delay). Columns:
     * DB_COLS_JOB_CLAIM. */
    [DB_STMT_JOB_CLAIM] =
        {"job_claim",
         "WITH due AS (SELECT id FROM jobs WHERE queue = $1 AND state IN ('queued', 'retrying') "
         "AND run_at <= now() ORDER BY priority DESC, run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED) "
         "UPDATE jobs j SET state = 'running', attempt = j.attempt + 1, lease_owner = $3, "
         "lease_expires_at = now() + make_interval(secs => $4::int), started_at = now(), "
         "updated_at = now(), version = j.version + 1 FROM due WHERE j.id = due.id "
         "RETURNING j.id, j.kind, j.payload::text, j.attempt, j.max_attempts, "
         "extract(epoch FROM now() - j.run_at)::float8 AS delay_s, " JOB_EVENT_J,
         4},

    /* $1 lease owner, $2 a JSON array of {id, attempt, state, result, error, delay_ms}; state
     * is succeeded, retrying (run again after delay_ms), dead, failed, or queued (released:
     * the attempt is given back, and idle workers are woken). A job whose lease was lost
     * meanwhile is left alone. A
     * succeeded job's payload loses its "token" (emails carry one-time tokens). Columns:
     * DB_COLS_JOB_FINISH. */
    [DB_STMT_JOB_FINISH] =
        {"job_finish",
         "UPDATE jobs j SET state = r.state, result = r.result, error = r.error, "
         "run_at = CASE WHEN r.state = 'retrying' THEN now() + make_interval(secs => "
         "coalesce(r.delay_ms, 0) / 1000.0) ELSE j.run_at END, "
         "finished_at = CASE WHEN r.state IN ('succeeded', 'dead', 'failed') THEN now() END, "
         "attempt = CASE WHEN r.state = 'queued' THEN j.attempt - 1 ELSE j.attempt END, "
         "payload = CASE WHEN r.state = 'succeeded' THEN j.payload - 'token' ELSE j.payload END, "
         "lease_owner = NULL, lease_expires_at = NULL, updated_at = now(), version = j.version + 1 "
         "FROM jsonb_to_recordset($2::jsonb) AS r(id uuid, attempt int, state text, result jsonb, "
         "error text, delay_ms bigint) "
         "WHERE j.id = r.id AND j.attempt = r.attempt AND j.lease_owner = $1 AND j.state = 'running' "
         "RETURNING j.id, CASE WHEN r.state = 'queued' THEN pg_notify('hydrant_jobs', j.queue) END AS "
         "notify, " JOB_EVENT_J,
         2},

    /* $1 the live lease owners (text array), $2 lease seconds. */
    [DB_STMT_JOB_EXTEND] = {"job_extend",
                            "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $2::int) "
                            "WHERE state = 'running' AND lease_owner = ANY($1::text[])",
                            2},

    /* Jobs whose worker stopped renewing its lease: retried, or dead when out of attempts. A
     * row per queue with its count, then one per moved job with an owner with its event.
     * Columns: DB_COLS_JOB_REAP. */
    [DB_STMT_JOB_REAP] =
        {"job_reap",
         "WITH lost AS (SELECT id FROM jobs WHERE state = 'running' AND lease_expires_at < now() "
         "ORDER BY lease_expires_at LIMIT 1000 FOR UPDATE SKIP LOCKED), "
         "moved AS (UPDATE jobs j SET state = CASE WHEN j.attempt >= j.max_attempts THEN 'dead' "
         "ELSE 'retrying' END, error = 'lease expired: the worker running it was lost', "
         "finished_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END, run_at = now(), "
         "lease_owner = NULL, lease_expires_at = NULL, updated_at = now(), version = j.version + 1 FROM lost "
         "WHERE j.id = lost.id RETURNING j.queue, " JOB_EVENT_J "), "
         "n AS (SELECT queue, count(*) AS count, pg_notify('hydrant_jobs', queue)::text AS notify FROM moved "
         "GROUP BY queue) "
         "SELECT queue, count, notify, NULL::uuid AS event_id, NULL::uuid AS event_owner, NULL::bigint AS "
         "event_version, NULL::text AS event_job FROM n "
         "UNION ALL SELECT NULL, NULL, NULL, event_id, event_owner, event_version, event_job FROM moved "
         "WHERE event_owner IS NOT NULL",
         0},

    /* $1 queue. Milliseconds until the first waiting job in claim order is due (negative
     * when due), or no row. Exact when priorities are equal; otherwise a later high-priority
     * job can hide an earlier one for at most the poll interval, which keeps this a one-row
     * index probe however many jobs are scheduled. Columns: DB_COLS_JOB_NEXT_DUE. */
    [DB_STMT_JOB_NEXT_DUE] =
        {"job_next_due",
         "SELECT (extract(epoch FROM run_at - now()) * 1000)::float8 AS due_ms FROM jobs "
         "WHERE queue = $1 AND state IN ('queued', 'retrying') "
         "ORDER BY priority DESC, run_at, id LIMIT 1",
         1, .read_only = 1},

    /* Refresh families go whole, once their newest token expired a day ago: deleting a
     * family's burnt (revoked) row alone would bring its younger tokens back to life.
     * Columns: DB_COLS_AUTH_PURGE. */
    [DB_STMT_AUTH_PURGE] =
        {"auth_purge",
         "WITH f AS (DELETE FROM refresh_tokens WHERE family_id IN (SELECT family_id FROM "
         "refresh_tokens GROUP BY family_id HAVING max(expires_at) < now() - interval '1 day') "
         "RETURNING 1), e AS (DELETE FROM email_tokens WHERE expires_at < now() - interval '1 day' "
         "RETURNING 1), r AS (DELETE FROM revoked_tokens WHERE expires_at < now() RETURNING 1), "
         "k AS (DELETE FROM idempotency_keys WHERE expires_at < now() RETURNING 1) "
         "SELECT (SELECT count(*) FROM f) AS refresh_tokens, (SELECT count(*) FROM e) AS email_tokens, "
         "(SELECT count(*) FROM r) AS revoked_tokens, (SELECT count(*) FROM k) AS idempotency_keys",
         0},

    /* Idempotency keys (src/http/idempotency.c). $1 scope, $2 route, $3 key, $4 request hash,
     * $5 lifetime in seconds, $6 seconds after which a claim still 'started' may be taken
     * over. One row: 'claimed' with the new attempt's id (this request may act), or the row
     * found: its state ('mismatch' for another request's hash), status, content type and
     * sealed body (base64). No row when a concurrent claim is not committed yet (the caller
     * answers "in progress"). Columns: DB_COLS_IDEM_CLAIM. */
    [DB_STMT_IDEM_CLAIM] =
        {"idem_claim",
         "WITH claim AS (INSERT INTO idempotency_keys (scope, route, key, request_hash, attempt, state, "
         "expires_at) VALUES ($1, $2, $3, $4, gen_random_uuid(), 'started', now() + make_interval(secs => "
         "$5::int)) ON CONFLICT (scope, route, key) DO UPDATE SET request_hash = EXCLUDED.request_hash, "
         "attempt = EXCLUDED.attempt, state = 'started', status = NULL, content_type = NULL, body = NULL, "
         "started_at = now(), expires_at = EXCLUDED.expires_at WHERE idempotency_keys.expires_at <= now() "
         "OR (idempotency_keys.state = 'started' AND idempotency_keys.request_hash = "
         "EXCLUDED.request_hash AND idempotency_keys.started_at <= now() - make_interval(secs => $6::int)) "
         "RETURNING attempt) "
         "SELECT 'claimed' AS state, NULL::int AS status, NULL::text AS content_type, NULL::text AS body, "
         "attempt::text AS attempt FROM claim UNION ALL SELECT "
         "CASE WHEN k.request_hash <> $4 THEN 'mismatch' ELSE k.state END, k.status, k.content_type, "
         "translate(encode(k.body, 'base64'), E'\\n', ''), NULL FROM idempotency_keys k WHERE k.scope = $1 "
         "AND k.route = $2 AND k.key = $3 AND NOT EXISTS (SELECT 1 FROM claim)",
         6},

    /* $1 scope, $2 route, $3 key, $4 attempt. Ends every batch that writes for a request
     * holding a key, in its transaction: the key turns 'committed', or, when another attempt
     * took the key over, the statement fails and the batch rolls back (22P02, as the
     * deadline). Columns: DB_COLS_IDEM_FENCE. */
    [DB_STMT_IDEM_FENCE] =
        {"idem_fence",
         "WITH f AS (UPDATE idempotency_keys SET state = 'committed' WHERE scope = $1 AND route = $2 AND "
         "key = $3 AND attempt = $4::uuid AND state IN ('started', 'committed') RETURNING 1) SELECT CASE "
         "WHEN EXISTS (SELECT 1 FROM f) THEN 0 ELSE ('hydrant: the Idempotency-Key was taken over at ' || "
         "clock_timestamp())::int END",
         4},

    /* $1 scope, $2 route, $3 key, $4 attempt, $5 status, $6 content type, $7 sealed body. */
    [DB_STMT_IDEM_STORE] = {"idem_store",
                            "UPDATE idempotency_keys SET state = 'done', status = $5::int, content_type = "
                            "$6, body = decode($7, 'base64') WHERE scope = $1 AND route = $2 AND key = $3 "
                            "AND attempt = $4::uuid",
                            7},

    /* $1 scope, $2 route, $3 key, $4 attempt: a claim whose request changed nothing is let go,
     * so that a retry acts. */
    [DB_STMT_IDEM_RELEASE] = {"idem_release",
                              "DELETE FROM idempotency_keys WHERE scope = $1 AND route = $2 AND key = $3 "
                              "AND attempt = $4::uuid AND state = 'started'",
                              4},

    /* $1 id, $2 owner or NULL (anybody's). Columns: DB_COLS_JOB_GET. */
    [DB_STMT_JOB_GET] = {"job_get",
                         "SELECT " JOB_JSON " AS job, owner_id FROM jobs WHERE id = $1::uuid "
                         "AND ($2::uuid IS NULL OR owner_id = $2::uuid)",
                         2, .read_only = 1},

    /* $1 state, $2 queue, $3 owner (each NULL for any), $4 limit, $5 the cursor (the last id
     * of the previous page) or NULL. Ids are time-ordered (UUIDv7), so id order is age order.
     * Returns the JSON and the id. Columns: DB_COLS_JOB_LIST. */
    [DB_STMT_JOB_LIST] =
        {"job_list",
         "SELECT " JOB_JSON " AS job, id FROM jobs WHERE ($1::text IS NULL OR state = $1) "
         "AND ($2::text IS NULL OR queue = $2) AND ($3::uuid IS NULL OR owner_id = $3::uuid) "
         "AND ($5::uuid IS NULL OR id < $5::uuid) ORDER BY id DESC LIMIT $4::int",
         5, .read_only = 1},

    /* $1 id, $2 owner or NULL. No row when the job is not cancellable (or not theirs).
     * Columns: DB_COLS_JOB_CANCEL. */
    [DB_STMT_JOB_CANCEL] = {"job_cancel",
                            "UPDATE jobs SET state = 'cancelled', finished_at = now(), updated_at = now(), "
                            "version = version + 1 WHERE id = $1::uuid AND state IN ('queued', 'retrying') "
                            "AND ($2::uuid IS NULL OR owner_id = $2::uuid) RETURNING " JOB_JSON
                            " AS job, owner_id, version",
                            2},

    /* $1 id. No row unless the job is failed or dead. Columns: DB_COLS_JOB_RETRY. */
    [DB_STMT_JOB_RETRY] = {"job_retry",
                           "UPDATE jobs SET state = 'queued', attempt = 0, run_at = now(), error = NULL, "
                           "result = NULL, started_at = NULL, finished_at = NULL, updated_at = now(), "
                           "version = version + 1 WHERE id = $1::uuid AND state IN ('failed', 'dead') "
                           "RETURNING " JOB_JSON
                           " AS job, owner_id, version, pg_notify('hydrant_jobs', queue)",
                           1},

    /* $1 state (failed or dead), $2 kind or NULL, $3 queue or NULL: every such job queued
     * again as JOB_RETRY does one (operators' bulk retry after an outage). Columns:
     * DB_COLS_JOB_RETRY_MATCHING. */
    [DB_STMT_JOB_RETRY_MATCHING] =
        {"job_retry_matching",
         "UPDATE jobs SET state = 'queued', attempt = 0, run_at = now(), error = NULL, result = NULL, "
         "started_at = NULL, finished_at = NULL, updated_at = now(), version = version + 1 WHERE state = $1 "
         "AND state IN ('failed', 'dead') AND ($2::text IS NULL OR kind = $2) "
         "AND ($3::text IS NULL OR queue = $3) RETURNING " JOB_JSON
         " AS job, owner_id, version, pg_notify('hydrant_jobs', queue)",
         3},

    /* $1 a lease owner prefix (one process): a stopping process gives its unfinished jobs
     * back (attempt returned). Columns: DB_COLS_JOB_RELEASE. */
    [DB_STMT_JOB_RELEASE] = {"job_release",
                             "UPDATE jobs SET state = 'queued', attempt = greatest(attempt - 1, 0), "
                             "lease_owner = NULL, lease_expires_at = NULL, updated_at = now(), "
                             "version = version + 1 WHERE state = 'running' AND starts_with(lease_owner, $1) "
                             "RETURNING id, pg_notify('hydrant_jobs', queue), " JOB_EVENT_OF(""),
                             1},

    /* Two parts so that each is read through its partial index, never the whole table.
     * Columns: DB_COLS_JOB_DEPTH. */
    [DB_STMT_JOB_DEPTH] = {"job_depth",
                           "SELECT queue, state, count(*) FROM jobs WHERE state IN ('queued', 'retrying') "
                           "GROUP BY queue, state UNION ALL SELECT queue, 'running', count(*) FROM jobs "
                           "WHERE state = 'running' GROUP BY queue",
                           0, .read_only = 1},

    /* Dead jobs are kept (retention spares them) until retried or deleted: the gauge that
     * shows an outage's casualties. Read through the partial index of migration 0005.
     * Columns: DB_COLS_JOB_DEAD. */
    [DB_STMT_JOB_DEAD] = {"job_dead",
                          "SELECT queue, kind, count(*) FROM jobs WHERE state = 'dead' GROUP BY queue, kind",
                          0},

    /* $1 retention in days. At most 1000 rows per call; ids are time-ordered, so the scan
     * starts at the oldest rows of the primary key. Dead and failed jobs are kept. */
    [DB_STMT_JOB_PURGE] =
        {"job_purge",
         "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE id < hydrant_uuid_v7_floor(now() "
         "- make_interval(days => $1::int)) AND state IN ('succeeded', 'cancelled') ORDER BY id "
         "LIMIT 1000)",
         1},

    /* $1 id, $2 normalised email, $3 username or NULL, $4 password hash. Unique violations
     * name users_email_key or users_username_key. Columns: DB_COLS_USER_CREATE. */
    [DB_STMT_USER_CREATE] =
        {"user_create",
         "INSERT INTO users (id, email, username, password_hash) VALUES ($1::uuid, $2, $3, $4) "
         "RETURNING " USER_JSON " AS user",
         4},

    /* $1 token hash, $2 user id, $3 purpose (confirm, reset), $4 lifetime in seconds. */
    [DB_STMT_EMAIL_TOKEN_CREATE] =
        {"email_token_create",
         "INSERT INTO email_tokens (token_hash, user_id, purpose, expires_at) VALUES ($1, "
         "$2::uuid, $3, now() + make_interval(secs => $4::int))",
         4},

    /* $1 token hash. The token is spent and the user confirmed in one statement; no row for
     * an unknown, used or expired token. Columns: DB_COLS_USER_CONFIRM. */
    [DB_STMT_USER_CONFIRM] =
        {"user_confirm",
         "WITH t AS (UPDATE email_tokens SET used_at = now() WHERE token_hash = $1 AND purpose = "
         "'confirm' AND used_at IS NULL AND expires_at > now() RETURNING user_id) "
         "UPDATE users u SET email_confirmed = true, updated_at = now() FROM t "
         "WHERE u.id = t.user_id RETURNING " USER_JSON " AS user",
         1},

    /* $1 normalised email. Columns: DB_COLS_USER_LOGIN_LOOKUP. */
    [DB_STMT_USER_LOGIN_LOOKUP] =
        {"user_login_lookup",
         "SELECT id, password_hash, role, email_confirmed, disabled, " USER_JSON
         " AS user, extract(epoch FROM tokens_valid_after)::float8 AS tokens_valid_after FROM users WHERE "
         "lower(email) = $1",
         1, .read_only = 1},

    /* $1 id, $2 the new hash, $3 the hash it replaces (unchanged if the password changed
     * meanwhile). */
    [DB_STMT_USER_SET_HASH] =
        {"user_set_hash", "UPDATE users SET password_hash = $2 WHERE id = $1::uuid AND password_hash = $3",
         3},

    /* $1 token hash, $2 family id, $3 user id, $4 lifetime in seconds. */
    [DB_STMT_REFRESH_CREATE] =
        {"refresh_create",
         "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at) VALUES ($1, "
         "$2::uuid, $3::uuid, now() + make_interval(secs => $4::int))",
         4},

    /* $1 user id or NULL, $2 kind, $3 client address, $4 detail JSON or NULL. */
    [DB_STMT_AUTH_EVENT] =
        {"auth_event",
         "INSERT INTO auth_events (user_id, kind, address, detail) VALUES ($1::uuid, $2, $3, "
         "$4::jsonb)",
         4},

    /* $1 id, $2 the token's jti. Everything that can refuse a valid signature, in one query:
     * the user exists, is not disabled, signed out after the token was issued, or revoked it;
     * then the User's columns. Columns: DB_COLS_USER_AUTH. */
    [DB_STMT_USER_AUTH] =
        {"user_auth",
         "SELECT role, disabled, extract(epoch FROM tokens_valid_after)::float8 AS tokens_valid_after, "
         "EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $2) AS revoked, " USER_COLUMNS
         " FROM users WHERE id = $1::uuid",
         2, .shares_sync = 1, .read_only = 1},

    /* $1 presented token's hash, $2 the new token's hash, $3 lifetime in seconds, $4 reuse
     * grace in seconds. One statement, the presented row locked: of two racing uses one
     * rotates and the other is a reuse. Verdict ok (rotated: the new row is in the family),
     * unknown, expired, revoked (its family was revoked) or reused (the presented token was
     * rotated before, beyond the grace: it is burnt, which revokes its whole family). A rotated
     * token is a reuse also when its family is revoked already: a third racer, which finds the
     * family burnt by the second, is told the same as the second. Returns the verdict, the user's id, role,
     * disabled, JSON, the family id and tokens_valid_after. Columns: DB_COLS_REFRESH_USE. */
    [DB_STMT_REFRESH_USE] =
        {"refresh_use",
         "WITH cur AS (SELECT r.token_hash, r.family_id, r.user_id, r.expires_at, r.rotated_at, EXISTS "
         "(SELECT 1 FROM "
         "refresh_tokens f WHERE f.family_id = r.family_id AND f.revoked_at IS NOT NULL) AS revoked FROM "
         "refresh_tokens r WHERE r.token_hash = $1 FOR UPDATE), "
         "verdict AS (SELECT CASE WHEN rotated_at IS NOT NULL AND (revoked OR $4::int = 0 OR rotated_at <= "
         "clock_timestamp() - make_interval(secs => $4::int)) THEN 'reused' WHEN revoked THEN 'revoked' "
         "WHEN expires_at <= now() THEN 'expired' ELSE 'ok' END AS v, family_id, user_id FROM cur), "
         "rot AS (UPDATE refresh_tokens SET rotated_at = coalesce(rotated_at, clock_timestamp()) WHERE "
         "token_hash = $1 "
         "AND (SELECT v FROM verdict) = 'ok' RETURNING 1), "
         "ins AS (INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at) SELECT $2, "
         "family_id, "
         "user_id, now() + make_interval(secs => $3::int) FROM verdict WHERE v = 'ok' RETURNING 1), "
         "burn AS (UPDATE refresh_tokens SET revoked_at = now() WHERE token_hash = $1 AND revoked_at IS NULL "
         "AND (SELECT v FROM verdict) = 'reused' RETURNING 1) "
         "SELECT coalesce((SELECT v FROM verdict), 'unknown') AS verdict, u.id, u.role, "
         "u.disabled, " USER_JSON
         " AS user, (SELECT family_id FROM verdict) AS family_id, extract(epoch FROM "
         "u.tokens_valid_after)::float8 AS tokens_valid_after FROM (SELECT 1) one "
         "LEFT JOIN users u ON u.id = (SELECT user_id FROM verdict)",
         4},

    /* $1 jti, $2 its exp (Unix seconds). */
    [DB_STMT_TOKEN_REVOKE] =
        {"token_revoke",
         "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, to_timestamp($2::float8)) "
         "ON CONFLICT (jti) DO NOTHING",
         2},

    /* $1 family id, $2 user id (a session can only be ended by its user). */
    [DB_STMT_FAMILY_REVOKE] =
        {"family_revoke",
         "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1::uuid AND user_id = "
         "$2::uuid AND revoked_at IS NULL",
         2},

    /* $1 user id: every refresh family ends and every access token issued so far is refused. */
    [DB_STMT_USER_REVOKE_ALL] =
        {"user_revoke_all",
         "WITH families AS (UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = "
         "$1::uuid AND revoked_at IS NULL) UPDATE users SET tokens_valid_after = now(), "
         "updated_at = updated_at WHERE id = $1::uuid",
         1},

    /* $1 normalised email, $2 token hash, $3 token, $4 purpose (confirm: only unconfirmed
     * accounts; reset: any), $5 lifetime in seconds, $6 job kind, $7 its max attempts. Nothing
     * happens for an address without a qualifying account: the caller answers the same either
     * way. Columns: DB_COLS_EMAIL_REQUEST. */
    [DB_STMT_EMAIL_REQUEST] = {"email_request",
                               "WITH u AS (SELECT id, email FROM users WHERE lower(email) = $1 AND NOT "
                               "disabled AND ($4 = 'reset' OR NOT "
                               "email_confirmed)), t AS (INSERT INTO email_tokens (token_hash, user_id, "
                               "purpose, expires_at) SELECT $2, id, "
                               "$4, now() + make_interval(secs => $5::int) FROM u) "
                               "INSERT INTO jobs (kind, queue, payload, owner_id, max_attempts) SELECT $6, "
                               "'short', jsonb_build_object('to', email, 'token', $3::text), id, $7::int "
                               "FROM u RETURNING id, pg_notify('hydrant_jobs', queue)",
                               7},

    /* $1 token hash, $2 new password hash, $3 client address (audit). No row for an unknown,
     * used or expired token. Columns: DB_COLS_PASSWORD_RESET. */
    [DB_STMT_PASSWORD_RESET] =
        {"password_reset",
         "WITH t AS (UPDATE email_tokens SET used_at = now() WHERE token_hash = $1 AND purpose = 'reset' AND "
         "used_at "
         "IS NULL AND expires_at > now() RETURNING user_id), f AS (UPDATE refresh_tokens SET revoked_at = "
         "now() WHERE "
         "user_id IN (SELECT user_id FROM t) AND revoked_at IS NULL), ev AS (INSERT INTO auth_events "
         "(user_id, kind, "
         "address) SELECT user_id, 'password_reset', $3 FROM t) UPDATE users u SET password_hash = $2, "
         "tokens_valid_after = now(), updated_at = now() FROM t WHERE u.id = t.user_id RETURNING u.id",
         3},

    /* $1 id. Columns: DB_COLS_USER_PASSWORD_GET. */
    [DB_STMT_USER_PASSWORD_GET] = {"user_password_get", "SELECT password_hash FROM users WHERE id = $1::uuid",
                                   1, .read_only = 1},

    /* $1 id, $2 new hash, $3 the hash that was verified (a concurrent change wins). Columns:
     * DB_COLS_USER_PASSWORD_SET. */
    [DB_STMT_USER_PASSWORD_SET] = {"user_password_set",
                                   "WITH f AS (UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = "
                                   "$1::uuid AND revoked_at IS NULL "
                                   "AND EXISTS (SELECT 1 FROM users WHERE id = $1::uuid AND password_hash = "
                                   "$3)) UPDATE users SET password_hash "
                                   "= $2, tokens_valid_after = now(), updated_at = now() WHERE id = $1::uuid "
                                   "AND password_hash = $3 RETURNING id",
                                   3},

    /* $1 id; then for username, display_name and bio a flag (set it?) and the value.
     * Columns: DB_COLS_USER_PATCH. */
    [DB_STMT_USER_PATCH] = {"user_patch",
                            "UPDATE users SET username = CASE WHEN $2::boolean THEN $3 ELSE username END, "
                            "display_name = CASE WHEN $4::boolean THEN $5 ELSE display_name END, "
                            "bio = CASE WHEN $6::boolean THEN $7 ELSE bio END, updated_at = now() "
                            "WHERE id = $1::uuid RETURNING " USER_JSON " AS user",
                            7},

    /* $1 id. Columns: DB_COLS_USER_DELETE. */
    [DB_STMT_USER_DELETE] = {"user_delete", "DELETE FROM users WHERE id = $1::uuid RETURNING id", 1},

    /* $1 user id, $2 key hash, $3 prefix. Columns: DB_COLS_API_KEY_SET, and of the next
     * DB_COLS_API_KEY_GET. */
    [DB_STMT_API_KEY_SET] = {"api_key_set",
                             "INSERT INTO api_keys (user_id, key_hash, prefix) VALUES ($1::uuid, $2, $3) "
                             "ON CONFLICT (user_id) DO UPDATE SET key_hash = EXCLUDED.key_hash, prefix = "
                             "EXCLUDED.prefix, created_at = now(), last_used_at = NULL RETURNING prefix, " TS(
                                 "created_at") " AS created_at",
                             3},
    [DB_STMT_API_KEY_GET] = {"api_key_get",
                             "SELECT prefix, " TS("created_at") " AS created_at, " TS(
                                 "last_used_at") " AS last_used_at FROM api_keys WHERE user_id = "
                                                 "$1::uuid",
                             1, .read_only = 1},
    [DB_STMT_API_KEY_DELETE] = {"api_key_delete", "DELETE FROM api_keys WHERE user_id = $1::uuid", 1},

    /* $1 key hash, $2 the least seconds between two writes of its last use. Returns disabled,
     * tokens_valid_after and the User's columns, as user_auth does (a key's answer fills the
     * principal cache entry that the user's tokens are answered from too). Columns:
     * DB_COLS_API_KEY_AUTH. */
    [DB_STMT_API_KEY_AUTH] =
        {"api_key_auth",
         "WITH k AS (SELECT user_id FROM api_keys WHERE key_hash = $1), touch AS (" API_KEY_TOUCH
         ") SELECT disabled, extract(epoch FROM tokens_valid_after)::float8 AS "
         "tokens_valid_after, " USER_COLUMNS " FROM k JOIN users ON users.id = k.user_id",
         2},
    /* $1 key hash, $2 as for api_key_auth. */
    [DB_STMT_API_KEY_TOUCH] = {"api_key_touch", API_KEY_TOUCH, 2},

    /* $1 lower-cased prefix with LIKE's metacharacters escaped, or NULL; $2 limit; $3 and $4
     * the cursor (created_at in Unix microseconds, id) or NULL. Returns the JSON and the
     * row's cursor parts. Columns: DB_COLS_ADMIN_USER_LIST. */
    [DB_STMT_ADMIN_USER_LIST] =
        {"admin_user_list",
         "SELECT " USER_JSON " AS user, (extract(epoch FROM created_at) * 1000000)::bigint AS cursor_us, id "
         "FROM users "
         "WHERE ($1::text IS NULL OR lower(email) LIKE $1 || '%' ESCAPE '\\' OR lower(username) LIKE $1 || "
         "'%' "
         "ESCAPE '\\') AND ($3::bigint IS NULL OR (created_at, id) < (timestamptz 'epoch' + $3::bigint * "
         "interval "
         "'1 microsecond', $4::uuid)) ORDER BY created_at DESC, id DESC LIMIT $2::int",
         4, .read_only = 1},

    /* $1 id. Columns: DB_COLS_ADMIN_USER_GET. */
    [DB_STMT_ADMIN_USER_GET] = {"admin_user_get",
                                "SELECT " USER_JSON " AS user, role FROM users WHERE id = $1::uuid", 1,
                                .read_only = 1},

    /* $1 id, $2 role or NULL (unchanged), $3 disabled or NULL. Disabling moves
     * tokens_valid_after and revokes every refresh family. Columns: DB_COLS_ADMIN_USER_UPDATE. */
    [DB_STMT_ADMIN_USER_UPDATE] = {"admin_user_update",
                                   "WITH f AS (UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = "
                                   "$1::uuid AND revoked_at IS NULL AND "
                                   "coalesce($3::boolean, false)) UPDATE users SET role = coalesce($2, "
                                   "role), disabled = coalesce($3::boolean, "
                                   "disabled), tokens_valid_after = CASE WHEN coalesce($3::boolean, false) "
                                   "THEN now() ELSE tokens_valid_after END, "
                                   "updated_at = now() WHERE id = $1::uuid RETURNING " USER_JSON " AS user",
                                   3},

    /* $1 id, $2 owner, $3 name, $4 content type, $5 size, $6 SHA-256 (hex), $7 the owner's
     * quota in bytes (0: none). The row and its file.process job together, or no row when
     * the upload would take the owner past the quota (the owner's row is locked, so two
     * uploads cannot both squeeze in). Returns the File JSON and version, and the job's JSON and
     * version (their file.updated and job.updated). Columns: DB_COLS_FILE_CREATE. */
    [DB_STMT_FILE_CREATE] =
        {"file_create",
         "WITH owner AS (SELECT id FROM users WHERE id = $2::uuid FOR UPDATE), "
         "ok AS (SELECT o.id FROM owner o WHERE $7::bigint = 0 OR "
         "(SELECT coalesce(sum(size), 0) FROM files WHERE owner_id = o.id) + $5::bigint <= $7::bigint), "
         "j AS (INSERT INTO jobs (kind, queue, payload, owner_id, max_attempts) SELECT 'file.process', "
         "'long', "
         "jsonb_build_object('file_id', $1::text), id, 3 FROM ok RETURNING id, version, " JOB_JSON
         " AS job, pg_notify('hydrant_jobs', queue)), "
         "f AS (INSERT INTO files (id, owner_id, name, content_type, size, sha256, job_id) SELECT $1::uuid, "
         "$2::uuid, $3, $4, $5::bigint, $6, j.id FROM j RETURNING " FILE_JSON " AS file, version) "
         "SELECT f.file, f.version, j.id AS job_id, j.job, j.version AS job_version FROM f CROSS JOIN j",
         7},

    /* $1 id, $2 owner or NULL (anybody's). The File JSON, then name, content type, size and
     * SHA-256 for serving the bytes. Columns: DB_COLS_FILE_GET. */
    [DB_STMT_FILE_GET] = {"file_get",
                          "SELECT " FILE_JSON " AS file, name, content_type, size, sha256 FROM files "
                          "WHERE id = $1::uuid AND ($2::uuid IS NULL OR owner_id = $2::uuid)",
                          2, .read_only = 1},

    /* $1 owner, $2 limit, $3 cursor time (Unix microseconds) or NULL, $4 cursor id. Newest
     * first; returns the JSON, created_at in microseconds and the id. Columns:
     * DB_COLS_FILE_LIST. */
    [DB_STMT_FILE_LIST] =
        {"file_list",
         "SELECT " FILE_JSON " AS file, (extract(epoch FROM created_at) * 1000000)::bigint AS cursor_us, id "
         "FROM files "
         "WHERE owner_id = $1::uuid AND ($3::bigint IS NULL OR (created_at, id) < (timestamptz 'epoch' + "
         "$3::bigint * interval '1 microsecond', $4::uuid)) ORDER BY created_at DESC, id DESC LIMIT $2::int",
         4, .read_only = 1},

    /* $1 id, $2 owner or NULL. Returns the id when a row was deleted. Columns:
     * DB_COLS_FILE_DELETE. */
    [DB_STMT_FILE_DELETE] = {"file_delete",
                             "DELETE FROM files WHERE id = $1::uuid AND ($2::uuid IS NULL OR owner_id = "
                             "$2::uuid) RETURNING id",
                             2},

    /* $1 user id. A files.remove job naming every file of the user, when there is one; run
     * before the user's row is deleted (which takes the files' rows along). Columns:
     * DB_COLS_FILES_REMOVE_QUEUE. */
    [DB_STMT_FILES_REMOVE_QUEUE] =
        {"files_remove_queue",
         "INSERT INTO jobs (kind, queue, payload) SELECT 'files.remove', 'long', "
         "jsonb_build_object('file_ids', jsonb_agg(id)) FROM files WHERE owner_id = "
         "$1::uuid HAVING count(*) > 0 RETURNING id, pg_notify('hydrant_jobs', queue)",
         1},

    /* $1 a text array of file ids (names of stored files). The ones no row has, as given.
     * Columns: DB_COLS_FILES_WITHOUT_ROW. */
    [DB_STMT_FILES_WITHOUT_ROW] = {"files_without_row",
                                   "SELECT t.id FROM unnest($1::text[]) AS t(id) WHERE NOT EXISTS "
                                   "(SELECT 1 FROM files f WHERE f.id = t.id::uuid)",
                                   1},

    /* $1 name, $2 the creator. Returns the Room JSON. Columns: DB_COLS_ROOM_CREATE. */
    [DB_STMT_ROOM_CREATE] =
        {"room_create",
         "WITH r AS (INSERT INTO rooms (name, created_by) VALUES ($1, $2::uuid) RETURNING *), "
         "m AS (INSERT INTO room_members (room_id, user_id) SELECT id, created_by FROM r) "
         "SELECT " ROOM_JSON " AS room FROM r",
         2},

    /* $1 user, $2 limit, $3 cursor (a room id) or NULL. Newest room first. Columns:
     * DB_COLS_ROOM_LIST. */
    [DB_STMT_ROOM_LIST] = {"room_list",
                           "SELECT " ROOM_JSON " AS room, r.id FROM room_members rm JOIN rooms r ON r.id = "
                           "rm.room_id WHERE rm.user_id = $1::uuid AND ($3::uuid IS NULL OR rm.room_id < "
                           "$3::uuid) ORDER BY rm.room_id DESC LIMIT $2::int",
                           3, .read_only = 1},

    /* $1 room, $2 user. Columns: DB_COLS_ROOM_MEMBER. */
    [DB_STMT_ROOM_MEMBER] = {"room_member", "SELECT " ROOM_MEMBER_SQL " AS member", 2, .read_only = 1},

    /* $1 room, $2 the member adding, $3 the user added. Whether $2 is a member, whether $3
     * exists, whether $3 was added now (not a member before), and the Room JSON. Columns:
     * DB_COLS_ROOM_MEMBER_ADD. */
    [DB_STMT_ROOM_MEMBER_ADD] =
        {"room_member_add",
         "WITH caller AS (SELECT " ROOM_MEMBER_SQL " AS member), "
         "target AS (SELECT id FROM users WHERE id = $3::uuid), "
         "ins AS (INSERT INTO room_members (room_id, user_id) SELECT $1::uuid, t.id FROM target t, caller c "
         "WHERE c.member ON CONFLICT DO NOTHING RETURNING user_id) "
         "SELECT (SELECT member FROM caller) AS member, EXISTS (SELECT 1 FROM target) AS user_exists, "
         "EXISTS (SELECT 1 FROM ins) AS added, (SELECT " ROOM_JSON
         " FROM rooms r WHERE r.id = $1::uuid) AS room",
         3},

    /* $1 room, $2 user. A row when $2 was a member. Columns: DB_COLS_ROOM_MEMBER_LEAVE. */
    [DB_STMT_ROOM_MEMBER_LEAVE] = {"room_member_leave",
                                   "DELETE FROM room_members WHERE room_id = $1::uuid AND user_id = $2::uuid "
                                   "RETURNING room_id",
                                   2},

    /* $1 room, $2 author, $3 text. The Message JSON and the room's members (a JSON array of
     * ids, for room.message), no row when $2 is no member. Columns:
     * DB_COLS_ROOM_MESSAGE_CREATE. */
    [DB_STMT_ROOM_MESSAGE_CREATE] = {"room_message_create",
                                     "WITH m AS (INSERT INTO room_messages (room_id, user_id, text) SELECT "
                                     "$1::uuid, $2::uuid, $3 WHERE " ROOM_MEMBER_SQL " RETURNING *) "
                                     "SELECT " MESSAGE_JSON
                                     " AS message, (SELECT json_agg(user_id) FROM room_members "
                                     "WHERE room_id = $1::uuid)::text AS members FROM m LEFT JOIN users u ON "
                                     "u.id = m.user_id",
                                     3},

    /* $1 room, $2 member, $3 limit, $4 cursor (a seq) or NULL. Newest first; nothing for a
     * non-member (the caller asks DB_STMT_ROOM_MEMBER in the same batch to tell 404).
     * Columns: DB_COLS_ROOM_MESSAGE_LIST. */
    [DB_STMT_ROOM_MESSAGE_LIST] =
        {"room_message_list",
         "SELECT " MESSAGE_JSON " AS message, m.seq FROM room_messages m LEFT JOIN "
         "users u ON u.id = m.user_id WHERE m.room_id = $1::uuid AND " ROOM_MEMBER_SQL
         " AND ($4::bigint IS NULL OR m.seq < $4::bigint) ORDER BY m.seq DESC LIMIT "
         "$3::int",
         4, .read_only = 1},

    /* $1 id, $2 state (ready or failed), $3 the analysis JSON. No row when the file is gone;
     * else the File JSON, its owner and version (its file.updated). Columns:
     * DB_COLS_FILE_PROCESSED. */
    [DB_STMT_FILE_PROCESSED] = {"file_processed",
                                "UPDATE files SET state = $2, analysis = $3::jsonb, updated_at = now(), "
                                "version = version + 1 WHERE id = $1::uuid RETURNING id, " FILE_JSON
                                " AS file, owner_id, version",
                                3},
};

const db_stmt_def_t *db_stmt_get(db_stmt_id_t id)
{
    return (id >= 0 && id < DB_STMT__COUNT) ? &db_statements[id] : NULL;
}

int db_stmts_write(const db_query_t *queries, int nqueries)
{
    for (int i = 0; i < nqueries; i++) {
        const db_stmt_def_t *s = db_stmt_get(queries[i].stmt);
        if (s != NULL && !s->read_only && !s->shares_sync)
            return 1;
    }
    return 0;
}
