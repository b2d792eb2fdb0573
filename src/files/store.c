#include "files/files.h"
#include "util/util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int files_fail(char *err, size_t errlen, const char *what)
{
    int saved = errno;
    snprintf(err, errlen, "%s: %s", what, strerror(saved));
    errno = saved;
    return -1;
}

/* 1 when made, 0 when it was there, -1 on error. */
static int files_mkdir(const char *path)
{
    if (mkdir(path, 0750) == 0)
        return 1;
    return errno == EEXIST ? 0 : -1;
}

/* fsync of a directory, so that an entry made or removed in it is durable. */
static int files_sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int files_path(const char *dir, const char *id, char *out, size_t outlen)
{
    if (strlen(id) != 36)
        return -1;
    for (int i = 0; i < 36; i++)
        if (!(isxdigit((unsigned char)id[i]) || ((i == 8 || i == 13 || i == 18 || i == 23) && id[i] == '-')))
            return -1;
    int n = snprintf(out, outlen, "%s/%.2s/%.2s/%s", dir, id, id + 2, id);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

int files_upload_begin(files_upload_t *u, const char *dir, size_t capacity, char *err, size_t errlen)
{
    memset(u, 0, sizeof(*u));
    u->fd = -1;
    char tmp_dir[PATH_MAX];
    if (snprintf(tmp_dir, sizeof(tmp_dir), "%s/tmp", dir) >= (int)sizeof(tmp_dir) ||
        snprintf(u->tmp_path, sizeof(u->tmp_path), "%s/upload.XXXXXX", tmp_dir) >= (int)sizeof(u->tmp_path)) {
        errno = ENAMETOOLONG;
        return files_fail(err, errlen, "uploads.dir");
    }
    if (files_mkdir(dir) < 0 || files_mkdir(tmp_dir) < 0)
        return files_fail(err, errlen, "cannot create the upload directory");
    u->fd = mkstemp(u->tmp_path);
    if (u->fd < 0) {
        u->tmp_path[0] = '\0';
        return files_fail(err, errlen, "cannot create a temporary file");
    }
    /* Reserved now, so that filling the mapping cannot run out of space (which would be a
     * SIGBUS on the loop). */
    int rc = capacity > 0 ? posix_fallocate(u->fd, 0, (off_t)capacity) : 0;
    if (rc != 0) {
        errno = rc;
        files_fail(err, errlen, "cannot reserve space");
        files_upload_abort(u);
        errno = rc;
        return -1;
    }
    if (capacity > 0) {
        void *map = mmap(NULL, capacity, PROT_READ | PROT_WRITE, MAP_SHARED, u->fd, 0);
        if (map == MAP_FAILED) {
            files_fail(err, errlen, "cannot map the temporary file");
            int saved = errno;
            files_upload_abort(u);
            errno = saved;
            return -1;
        }
        u->map = map;
    }
    u->capacity = capacity;
    return 0;
}

/* Hash, unmap, cut to the content's length, fsync: the temporary file holds the upload. */
static int files_upload_seal(files_upload_t *u, char sha256[65], char *err, size_t errlen)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(u->len > 0 ? u->map : (const unsigned char *)"", u->len, digest, &n, EVP_sha256(), NULL) !=
            1 ||
        n != 32) {
        errno = EIO;
        return files_fail(err, errlen, "cannot hash the upload");
    }
    util_hex_encode(digest, 32, sha256, 0);
    /* No msync: on Linux the mapping's pages are the file's page cache, and fsync below
     * writes them back (an msync first flushed every page a second time). */
    if (u->map != NULL)
        munmap(u->map, u->capacity);
    u->map = NULL;
    if (ftruncate(u->fd, (off_t)u->len) != 0 || fsync(u->fd) != 0)
        return files_fail(err, errlen, "cannot write the upload");
    return 0;
}

/* Renames the sealed temporary file to its place, making the fan-out directories. */
static int files_upload_place(files_upload_t *u, const char *dir, const char *id, char *err, size_t errlen)
{
    char path[PATH_MAX], level1[PATH_MAX], level2[PATH_MAX];
    if (files_path(dir, id, path, sizeof(path)) != 0) {
        errno = EINVAL;
        return files_fail(err, errlen, "bad file id");
    }
    snprintf(level1, sizeof(level1), "%s/%.2s", dir, id);
    snprintf(level2, sizeof(level2), "%s/%.2s/%.2s", dir, id, id + 2);
    int made1 = files_mkdir(level1), made2 = made1 < 0 ? -1 : files_mkdir(level2);
    if (made1 < 0 || made2 < 0)
        return files_fail(err, errlen, "cannot create the file's directory");
    if (rename(u->tmp_path, path) != 0)
        return files_fail(err, errlen, "cannot move the upload into place");
    u->tmp_path[0] = '\0';
    /* The new entry, and the directories' own entries only when they were just made. */
    if (files_sync_dir(level2) != 0 || (made2 && files_sync_dir(level1) != 0) ||
        (made1 && files_sync_dir(dir) != 0))
        return files_fail(err, errlen, "cannot make the file durable");
    return 0;
}

int files_upload_commit(files_upload_t *u, const char *dir, const char *id, char sha256[65], char *err,
                        size_t errlen)
{
    int rc =
        files_upload_seal(u, sha256, err, errlen) == 0 ? files_upload_place(u, dir, id, err, errlen) : -1;
    int saved = errno;
    files_upload_abort(u);
    errno = saved;
    return rc;
}

void files_upload_abort(files_upload_t *u)
{
    if (u->map != NULL)
        munmap(u->map, u->capacity);
    u->map = NULL;
    if (u->fd >= 0)
        close(u->fd);
    u->fd = -1;
    if (u->tmp_path[0] != '\0')
        unlink(u->tmp_path);
    u->tmp_path[0] = '\0';
}

int files_remove(const char *dir, const char *id)
{
    char path[PATH_MAX];
    if (files_path(dir, id, path, sizeof(path)) != 0)
        return -1;
    return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* ------------------------------------------------------------- sweeping ---- */

/* 1 when name (in the directory d) is a regular file last modified before `before`. */
static int files_older(DIR *d, const char *name, time_t before)
{
    struct stat st;
    return fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
           st.st_mtime < before;
}

/* opendir, where a missing directory is an empty one: NULL with errno 0 then. */
static DIR *files_opendir(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL && errno == ENOENT)
        errno = 0;
    return d;
}

int files_sweep_tmp(const char *dir, time_t before)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s/tmp", dir) >= (int)sizeof(tmp))
        return errno = ENAMETOOLONG, -1;
    DIR *d = files_opendir(tmp);
    if (d == NULL)
        return errno == 0 ? 0 : -1;
    int removed = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.' && files_older(d, e->d_name, before) && unlinkat(dirfd(d), e->d_name, 0) == 0)
            removed++;
    closedir(d);
    return removed;
}

/* The files of one <ab>/<cd> directory whose names are file ids. */
static int files_walk_leaf(const char *path, time_t before, files_visit_fn fn, void *arg)
{
    DIR *d = files_opendir(path);
    if (d == NULL)
        return errno == 0 ? 0 : -1;
    int rc = 0;
    char check[PATH_MAX];
    for (struct dirent *e; rc == 0 && (e = readdir(d)) != NULL;)
        if (files_path("", e->d_name, check, sizeof(check)) == 0 && files_older(d, e->d_name, before))
            rc = fn(e->d_name, arg);
    closedir(d);
    return rc;
}

/* The fan-out directories (two hex digits) of dir, at level 1 (<ab>) or 2 (<ab>/<cd>). */
static int files_walk_fanout(const char *path, int level, time_t before, files_visit_fn fn, void *arg)
{
    DIR *d = files_opendir(path);
    if (d == NULL)
        return errno == 0 ? 0 : -1;
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d)) != NULL;) {
        char sub[PATH_MAX];
        if (strlen(e->d_name) != 2 || !isxdigit((unsigned char)e->d_name[0]) ||
            !isxdigit((unsigned char)e->d_name[1]) ||
            snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name) >= (int)sizeof(sub))
            continue;
        rc = level == 1 ? files_walk_fanout(sub, 2, before, fn, arg) : files_walk_leaf(sub, before, fn, arg);
    }
    closedir(d);
    return rc;
}

int files_walk_stored(const char *dir, time_t before, files_visit_fn fn, void *arg)
{
    return files_walk_fanout(dir, 1, before, fn, arg);
}
