/*
 * The columns each registry statement returns, in order, so that code reads a result by a
 * named index (DB_COL_<STMT>_<NAME>) and never by a bare number: a reordered SELECT list
 * would otherwise hand one column's value to another field without a word.
 *
 * One X-macro list per statement that returns rows, DB_COLS_<STMT>(X, s), each entry
 * X(s, NAME, "name") with "name" the column's name as PostgreSQL reports it (PQfname: the
 * alias the SQL gives it). From each list come an enum DB_COL_<STMT>_<NAME> = 0, 1, ...
 * ending with DB_COL_<STMT>__COUNT, and, in test_db_columns, the expected names: that test
 * prepares every statement on a migrated database and compares PQnfields and PQfname with
 * these lists, and requires a list for every statement that returns columns. <STMT> is the
 * statement's DB_STMT_ suffix. statements.c names the list next to each SQL text: change
 * both together.
 *
 * Blocks of columns that several statements embed, and that code reads from an offset, have
 * a list of their own (DB_COLS_USER_ROW): the embedding statement passes a prefix, so its
 * enum holds DB_COL_<STMT>_<PREFIX>_<NAME> for each, the first of which is the block's
 * offset; the block's own enum, DB_COL_USER_ROW_<NAME>, counts from 0 within the block.
 *
 * Four single-column probes (ping, echo_int, deadline, idem_fence) keep PostgreSQL's own
 * names ("?column?", "int4", "case"): nothing in the server reads them by value except
 * their status.
 */
#ifndef HYDRANT_DB_COLUMNS_H
#define HYDRANT_DB_COLUMNS_H

/* The contract's User as plain columns (statements.c's USER_COLUMNS), for
 * handlers_user_json_from_row. */
#define DB_COLS_USER_ROW(X, s)                                                                               \
    X(s, ID, "id")                                                                                           \
    X(s, EMAIL, "email")                                                                                     \
    X(s, USERNAME, "username")                                                                               \
    X(s, DISPLAY_NAME, "display_name")                                                                       \
    X(s, BIO, "bio")                                                                                         \
    X(s, ROLE, "role")                                                                                       \
    X(s, EMAIL_CONFIRMED, "email_confirmed")                                                                 \
    X(s, DISABLED, "disabled")                                                                               \
    X(s, CREATED_AT, "created_at")                                                                           \
    X(s, UPDATED_AT, "updated_at")

#define DB_COLS_PING(X, s)     X(s, ONE, "?column?")
#define DB_COLS_ECHO_INT(X, s) X(s, VALUE, "int4")
#define DB_COLS_DEADLINE(X, s) X(s, CHECK, "case")
#define DB_COLS_NOTIFY(X, s)   X(s, NOTIFY, "pg_notify")

/* ---- the job queue ---- */
/* A job.updated event's columns, last in the statements that change a job in a worker
 * (statements.c, JOB_EVENT_OF); DB_COL_<STMT>_EVENT_ID is the block's offset. */
#define DB_COLS_JOB_EVENT(X, s)                                                                              \
    X(s, ID, "event_id") X(s, OWNER, "event_owner") X(s, VERSION, "event_version") X(s, JOB, "event_job")
#define DB_COLS_JOB_ENQUEUE(X, s) X(s, ID, "id") X(s, NOTIFY, "pg_notify")
#define DB_COLS_JOB_CLAIM(X, s)                                                                              \
    X(s, ID, "id")                                                                                           \
    X(s, KIND, "kind")                                                                                       \
    X(s, PAYLOAD, "payload")                                                                                 \
    X(s, ATTEMPT, "attempt")                                                                                 \
    X(s, MAX_ATTEMPTS, "max_attempts")                                                                       \
    X(s, DELAY_S, "delay_s")                                                                                 \
    DB_COLS_JOB_EVENT(X, s##_EVENT)
#define DB_COLS_JOB_FINISH(X, s) X(s, ID, "id") X(s, NOTIFY, "notify") DB_COLS_JOB_EVENT(X, s##_EVENT)
/* Per queue a row with the count (no event), and per job with an owner one with the event. */
#define DB_COLS_JOB_REAP(X, s)                                                                               \
    X(s, QUEUE, "queue") X(s, COUNT, "count") X(s, NOTIFY, "notify") DB_COLS_JOB_EVENT(X, s##_EVENT)
#define DB_COLS_JOB_NEXT_DUE(X, s) X(s, DUE_MS, "due_ms")
#define DB_COLS_JOB_GET(X, s)      X(s, JOB, "job") X(s, OWNER_ID, "owner_id")
#define DB_COLS_JOB_LIST(X, s)     X(s, JOB, "job") X(s, ID, "id")
#define DB_COLS_JOB_CANCEL(X, s)   X(s, JOB, "job") X(s, OWNER_ID, "owner_id") X(s, VERSION, "version")
#define DB_COLS_JOB_RETRY(X, s)                                                                              \
    X(s, JOB, "job") X(s, OWNER_ID, "owner_id") X(s, VERSION, "version") X(s, NOTIFY, "pg_notify")
#define DB_COLS_JOB_RETRY_MATCHING(X, s)                                                                     \
    X(s, JOB, "job") X(s, OWNER_ID, "owner_id") X(s, VERSION, "version") X(s, NOTIFY, "pg_notify")
#define DB_COLS_JOB_RELEASE(X, s) X(s, ID, "id") X(s, NOTIFY, "pg_notify") DB_COLS_JOB_EVENT(X, s##_EVENT)
#define DB_COLS_JOB_DEPTH(X, s)   X(s, QUEUE, "queue") X(s, STATE, "state") X(s, COUNT, "count")
#define DB_COLS_JOB_DEAD(X, s)    X(s, QUEUE, "queue") X(s, KIND, "kind") X(s, COUNT, "count")
#define DB_COLS_AUTH_PURGE(X, s)                                                                             \
    X(s, REFRESH_TOKENS, "refresh_tokens")                                                                   \
    X(s, EMAIL_TOKENS, "email_tokens")                                                                       \
    X(s, REVOKED_TOKENS, "revoked_tokens")                                                                   \
    X(s, IDEMPOTENCY_KEYS, "idempotency_keys")

/* ---- accounts ---- */
#define DB_COLS_USER_CREATE(X, s)  X(s, USER, "user")
#define DB_COLS_USER_CONFIRM(X, s) X(s, USER, "user")
#define DB_COLS_USER_LOGIN_LOOKUP(X, s)                                                                      \
    X(s, ID, "id")                                                                                           \
    X(s, PASSWORD_HASH, "password_hash")                                                                     \
    X(s, ROLE, "role")                                                                                       \
    X(s, EMAIL_CONFIRMED, "email_confirmed")                                                                 \
    X(s, DISABLED, "disabled")                                                                               \
    X(s, USER, "user")                                                                                       \
    X(s, TOKENS_VALID_AFTER, "tokens_valid_after")
/* The User's columns from DB_COL_USER_AUTH_USER_ID on. */
#define DB_COLS_USER_AUTH(X, s)                                                                              \
    X(s, ROLE, "role")                                                                                       \
    X(s, DISABLED, "disabled")                                                                               \
    X(s, TOKENS_VALID_AFTER, "tokens_valid_after")                                                           \
    X(s, REVOKED, "revoked")                                                                                 \
    DB_COLS_USER_ROW(X, s##_USER)
#define DB_COLS_REFRESH_USE(X, s)                                                                            \
    X(s, VERDICT, "verdict")                                                                                 \
    X(s, ID, "id")                                                                                           \
    X(s, ROLE, "role")                                                                                       \
    X(s, DISABLED, "disabled")                                                                               \
    X(s, USER, "user")                                                                                       \
    X(s, FAMILY_ID, "family_id")                                                                             \
    X(s, TOKENS_VALID_AFTER, "tokens_valid_after")
#define DB_COLS_EMAIL_REQUEST(X, s)     X(s, ID, "id") X(s, NOTIFY, "pg_notify")
#define DB_COLS_PASSWORD_RESET(X, s)    X(s, ID, "id")
#define DB_COLS_USER_PASSWORD_GET(X, s) X(s, PASSWORD_HASH, "password_hash")
#define DB_COLS_USER_PASSWORD_SET(X, s) X(s, ID, "id")
#define DB_COLS_USER_PATCH(X, s)        X(s, USER, "user")
#define DB_COLS_USER_DELETE(X, s)       X(s, ID, "id")
#define DB_COLS_API_KEY_SET(X, s)       X(s, PREFIX, "prefix") X(s, CREATED_AT, "created_at")
#define DB_COLS_API_KEY_GET(X, s)                                                                            \
    X(s, PREFIX, "prefix") X(s, CREATED_AT, "created_at") X(s, LAST_USED_AT, "last_used_at")
/* The User's columns from DB_COL_API_KEY_AUTH_USER_ID on (as for DB_COLS_USER_AUTH: one
 * principal cache entry answers both). */
#define DB_COLS_API_KEY_AUTH(X, s)                                                                           \
    X(s, DISABLED, "disabled")                                                                               \
    X(s, TOKENS_VALID_AFTER, "tokens_valid_after")                                                           \
    DB_COLS_USER_ROW(X, s##_USER)
#define DB_COLS_ADMIN_USER_LIST(X, s)   X(s, USER, "user") X(s, CURSOR_US, "cursor_us") X(s, ID, "id")
#define DB_COLS_ADMIN_USER_GET(X, s)    X(s, USER, "user") X(s, ROLE, "role")
#define DB_COLS_ADMIN_USER_UPDATE(X, s) X(s, USER, "user")

/* ---- files ---- */
#define DB_COLS_FILE_CREATE(X, s)                                                                            \
    X(s, FILE, "file")                                                                                       \
    X(s, VERSION, "version") X(s, JOB_ID, "job_id") X(s, JOB, "job") X(s, JOB_VERSION, "job_version")
#define DB_COLS_FILE_GET(X, s)                                                                               \
    X(s, FILE, "file")                                                                                       \
    X(s, NAME, "name")                                                                                       \
    X(s, CONTENT_TYPE, "content_type")                                                                       \
    X(s, SIZE, "size")                                                                                       \
    X(s, SHA256, "sha256")
#define DB_COLS_FILE_LIST(X, s)   X(s, FILE, "file") X(s, CURSOR_US, "cursor_us") X(s, ID, "id")
#define DB_COLS_FILE_DELETE(X, s) X(s, ID, "id")
#define DB_COLS_FILE_PROCESSED(X, s)                                                                         \
    X(s, ID, "id") X(s, FILE, "file") X(s, OWNER_ID, "owner_id") X(s, VERSION, "version")
#define DB_COLS_FILES_REMOVE_QUEUE(X, s) X(s, ID, "id") X(s, NOTIFY, "pg_notify")
#define DB_COLS_FILES_WITHOUT_ROW(X, s)  X(s, ID, "id")

/* ---- rooms ---- */
#define DB_COLS_ROOM_CREATE(X, s) X(s, ROOM, "room")
#define DB_COLS_ROOM_LIST(X, s)   X(s, ROOM, "room") X(s, ID, "id")
#define DB_COLS_ROOM_MEMBER(X, s) X(s, MEMBER, "member")
#define DB_COLS_ROOM_MEMBER_ADD(X, s)                                                                        \
    X(s, MEMBER, "member") X(s, USER_EXISTS, "user_exists") X(s, ADDED, "added") X(s, ROOM, "room")
#define DB_COLS_ROOM_MEMBER_LEAVE(X, s)   X(s, ROOM_ID, "room_id")
#define DB_COLS_ROOM_MESSAGE_CREATE(X, s) X(s, MESSAGE, "message") X(s, MEMBERS, "members")
#define DB_COLS_ROOM_MESSAGE_LIST(X, s)   X(s, MESSAGE, "message") X(s, SEQ, "seq")

/* ---- Idempotency-Key ---- */
#define DB_COLS_IDEM_CLAIM(X, s)                                                                             \
    X(s, STATE, "state")                                                                                     \
    X(s, STATUS, "status")                                                                                   \
    X(s, CONTENT_TYPE, "content_type")                                                                       \
    X(s, BODY, "body")                                                                                       \
    X(s, ATTEMPT, "attempt")
#define DB_COLS_IDEM_FENCE(X, s) X(s, CHECK, "case")

/* Every statement with a column list (the test-hook statements have none: only
 * hydrant_db_testhooks has them, and nothing outside its tests reads them). */
#define DB_COLUMN_STATEMENTS(X)                                                                              \
    X(PING)                                                                                                  \
    X(ECHO_INT)                                                                                              \
    X(DEADLINE)                                                                                              \
    X(NOTIFY)                                                                                                \
    X(JOB_ENQUEUE)                                                                                           \
    X(JOB_CLAIM)                                                                                             \
    X(JOB_FINISH)                                                                                            \
    X(JOB_REAP)                                                                                              \
    X(JOB_NEXT_DUE)                                                                                          \
    X(JOB_GET)                                                                                               \
    X(JOB_LIST)                                                                                              \
    X(JOB_CANCEL)                                                                                            \
    X(JOB_RETRY)                                                                                             \
    X(JOB_RETRY_MATCHING)                                                                                    \
    X(JOB_RELEASE)                                                                                           \
    X(JOB_DEPTH)                                                                                             \
    X(JOB_DEAD)                                                                                              \
    X(AUTH_PURGE)                                                                                            \
    X(USER_CREATE)                                                                                           \
    X(USER_CONFIRM)                                                                                          \
    X(USER_LOGIN_LOOKUP)                                                                                     \
    X(USER_AUTH)                                                                                             \
    X(REFRESH_USE)                                                                                           \
    X(EMAIL_REQUEST)                                                                                         \
    X(PASSWORD_RESET)                                                                                        \
    X(USER_PASSWORD_GET)                                                                                     \
    X(USER_PASSWORD_SET)                                                                                     \
    X(USER_PATCH)                                                                                            \
    X(USER_DELETE)                                                                                           \
    X(API_KEY_SET)                                                                                           \
    X(API_KEY_GET)                                                                                           \
    X(API_KEY_AUTH)                                                                                          \
    X(ADMIN_USER_LIST)                                                                                       \
    X(ADMIN_USER_GET)                                                                                        \
    X(ADMIN_USER_UPDATE)                                                                                     \
    X(FILE_CREATE)                                                                                           \
    X(FILE_GET)                                                                                              \
    X(FILE_LIST)                                                                                             \
    X(FILE_DELETE)                                                                                           \
    X(FILE_PROCESSED)                                                                                        \
    X(FILES_REMOVE_QUEUE)                                                                                    \
    X(FILES_WITHOUT_ROW)                                                                                     \
    X(ROOM_CREATE)                                                                                           \
    X(ROOM_LIST)                                                                                             \
    X(ROOM_MEMBER)                                                                                           \
    X(ROOM_MEMBER_ADD)                                                                                       \
    X(ROOM_MEMBER_LEAVE)                                                                                     \
    X(ROOM_MESSAGE_CREATE)                                                                                   \
    X(ROOM_MESSAGE_LIST)                                                                                     \
    X(IDEM_CLAIM)                                                                                            \
    X(IDEM_FENCE)

#define DB_COL_ENUMERATOR_(s, name, fname) DB_COL_##s##_##name,
#define DB_COL_ENUM_(s)                    enum { DB_COLS_##s(DB_COL_ENUMERATOR_, s) DB_COL_##s##__COUNT };

DB_COL_ENUM_(USER_ROW)
DB_COL_ENUM_(JOB_EVENT)
DB_COLUMN_STATEMENTS(DB_COL_ENUM_)

#endif
