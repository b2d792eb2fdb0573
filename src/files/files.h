/*
 * Uploaded files on disk (uploads.dir): where a file's bytes live, and how an upload gets
 * there durably. Every function here does blocking file I/O: it runs on the thread pool or in
 * a job worker, never on an event loop (the one exception is filling u->map, which is memory).
 *
 * Layout: <dir>/tmp/ holds uploads in progress; <dir>/<ab>/<cd>/<id> a stored file, where ab
 * and cd are the id's first four hex digits (no directory grows past 65,536 entries per
 * level). An upload is written into a preallocated temporary file (so a full disk is an error
 * at the start, not a SIGBUS halfway), hashed, fsynced, then renamed into place and its
 * directory fsynced: once files_upload_commit returns 0 the bytes survive a crash. A crash
 * can leave a temporary file, or bytes whose row was never written (or whose row was deleted
 * first): files_sweep_tmp and files_walk_stored find them once they are old enough.
 */
#ifndef HYDRANT_FILES_H
#define HYDRANT_FILES_H

#include <limits.h>
#include <stddef.h>
#include <time.h>

typedef struct {
    int fd;
    char tmp_path[PATH_MAX];
    unsigned char *map; /* capacity bytes, shared with the file: memcpy into it */
    size_t capacity;
    size_t len; /* bytes of content so far (<= capacity) */
} files_upload_t;

/* Creates <dir>/tmp/ if needed and a temporary file there with `capacity` bytes reserved.
 * Returns 0, or -1 with errno set (ENOSPC or EDQUOT: the disk is full) and err filled. */
int files_upload_begin(files_upload_t *u, const char *dir, size_t capacity, char *err, size_t errlen);

/* The first u->len bytes become file `id`: hashed (SHA-256, lower-case hex into sha256),
 * truncated, fsynced, renamed to files_path(dir, id) and the directory fsynced. Returns 0, or
 * -1 with errno set and err filled (the temporary file is then removed). Either way u is
 * finished with. */
int files_upload_commit(files_upload_t *u, const char *dir, const char *id, char sha256[65], char *err,
                        size_t errlen);

/* Gives up an upload: its temporary file is removed. Safe on a u that begin failed. */
void files_upload_abort(files_upload_t *u);

/* <dir>/<ab>/<cd>/<id> into out. Returns 0, or -1 when id is not a 36-character UUID or
 * the path does not fit. */
int files_path(const char *dir, const char *id, char *out, size_t outlen);

/* Removes a stored file. Returns 0 when it is gone (or was never there), -1 otherwise. */
int files_remove(const char *dir, const char *id);

/* Sweeping what a crash left behind (the files.sweep job kind). */

/* Removes the regular files of <dir>/tmp last modified before `before`: uploads in progress
 * when the process was killed (a live one is younger). Returns how many were removed (0 when
 * there is no such directory), or -1 with errno set. */
int files_sweep_tmp(const char *dir, time_t before);

/* Calls fn(id, arg) for every stored file <dir>/<ab>/<cd>/<id> last modified before `before`;
 * fn returns 0 to go on. Returns 0 (also when dir does not exist), fn's non-zero value, or -1
 * with errno set when a directory cannot be read. */
typedef int (*files_visit_fn)(const char *id, void *arg);
int files_walk_stored(const char *dir, time_t before, files_visit_fn fn, void *arg);

#endif
