/* Output that becomes visible only when complete: a temporary file in the
 * target's directory (so that rename is atomic), fsync, then link or rename,
 * then fsync of the directory so that the new name survives a crash.
 *
 * The temporary file is unnamed (O_TMPFILE) where the file system allows it,
 * so a process killed mid-write leaves nothing behind; replacing a file
 * still needs a name for the two system calls between link and rename.
 * Elsewhere (NFS, old kernels) it is named from the start. Names read
 * ".NAME.dcmseal-HOST-PID-XXXXXX", so that a walk can tell a file left by a
 * process that is gone (dcmseal_temp_state) and remove it. */
#define _GNU_SOURCE /* O_TMPFILE */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "internal.h"

struct dcmseal_outfile {
    int fd;
    int replace;
    int unnamed; /* O_TMPFILE: no name until commit */
    int named;   /* |tmp| exists and is ours to remove */
    char *path;
    char *tmp;
};

#define TEMP_TAG ".dcmseal-"

/* This machine, in temporary names: PIDs mean something only here. */
static uint32_t host_tag(void)
{
    char name[256] = "";
    uint32_t h = 0x811c9dc5u; /* FNV-1a */
    gethostname(name, sizeof name - 1);
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x01000193u;
    return h;
}

int dcmseal_temp_state(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *tag = strstr(base, TEMP_TAG);
    unsigned host;
    long pid;
    int used = 0;
    if (base[0] != '.' || tag == NULL)
        return DCMSEAL_TEMP_NONE;
    while (strstr(tag + 1, TEMP_TAG) != NULL) /* NAME may contain the tag */
        tag = strstr(tag + 1, TEMP_TAG);
    if (sscanf(tag + strlen(TEMP_TAG), "%8x-%ld-%n", &host, &pid, &used) != 2 || used == 0 ||
        strlen(tag + strlen(TEMP_TAG) + used) != 6 || pid <= 0)
        return DCMSEAL_TEMP_NONE;
    if (host == host_tag() && kill((pid_t)pid, 0) != 0 && errno == ESRCH)
        return DCMSEAL_TEMP_STALE;
    return DCMSEAL_TEMP_LIVE;
}

static char *dir_of(const char *path)
{
    char *copy = OPENSSL_strdup(path);
    char *d = copy ? OPENSSL_strdup(dirname(copy)) : NULL;
    OPENSSL_free(copy);
    return d;
}

dcmseal_status dcmseal_outfile_open(dcmseal_outfile_t **out, const char *path,
                                    unsigned mode, int replace, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    dcmseal_outfile_t *f = NULL;
    char *dir = NULL, *base = NULL;
    struct stat sb;
    DCMSEAL_ENSURE(out != NULL && path != NULL && path[0] != '\0', err,
                   DCMSEAL_E_USAGE, "no output path");
    DCMSEAL_ENSURE(replace || access(path, F_OK) != 0, err, DCMSEAL_E_USAGE,
                   "output exists (use --force to replace it)");
    /* Said now, not by the rename at commit, after all the work. */
    DCMSEAL_ENSURE(lstat(path, &sb) != 0 || !S_ISDIR(sb.st_mode), err, DCMSEAL_E_USAGE,
                   "output is a directory; give the name of a file");
    f = OPENSSL_zalloc(sizeof *f);
    DCMSEAL_ENSURE(f != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    f->fd = -1;
    f->replace = replace;
    f->path = OPENSSL_strdup(path);
    dir = dir_of(path);
    base = f->path ? OPENSSL_strdup(f->path) : NULL;
    DCMSEAL_ENSURE(f->path != NULL && dir != NULL && base != NULL, err,
                   DCMSEAL_E_INTERNAL, "out of memory");
    size_t len = strlen(dir) + strlen(base) + 64;
    f->tmp = OPENSSL_zalloc(len);
    DCMSEAL_ENSURE(f->tmp != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    /* Linking an unnamed file in needs /proc (linkat AT_EMPTY_PATH needs a
     * capability we do not assume). */
    f->fd = access("/proc/self/fd", X_OK) == 0
                ? open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600) : -1;
    f->unnamed = f->fd >= 0;
    /* A dot name so that directory listings and globbing pass it over. */
    snprintf(f->tmp, len, "%s/.%s" TEMP_TAG "%08x-%ld-XXXXXX", dir, basename(base),
             host_tag(), (long)getpid());
    if (!f->unnamed)
        f->named = (f->fd = mkstemp(f->tmp)) >= 0;
    else
        f->tmp[strlen(f->tmp) - 6] = '\0'; /* the prefix, for commit */
    DCMSEAL_ENSURE(f->fd >= 0, err, DCMSEAL_E_IO, "cannot create a file in %s: %s",
                   dir, strerror(errno));
    DCMSEAL_ENSURE(fchmod(f->fd, mode & 07777) == 0, err, DCMSEAL_E_IO,
                   "chmod failed: %s", strerror(errno));
    *out = f;
    f = NULL;
out:
    OPENSSL_free(dir);
    OPENSSL_free(base);
    dcmseal_outfile_abort(f);
    return st;
}

int dcmseal_outfile_fd(const dcmseal_outfile_t *f) { return f->fd; }

static dcmseal_status sync_dir(const char *path, dcmseal_error *err)
{
    char *dir = dir_of(path);
    int fd = dir ? open(dir, O_RDONLY | O_DIRECTORY) : -1;
    int ok = fd >= 0 && fsync(fd) == 0;
    int e = errno;
    if (fd >= 0)
        close(fd);
    OPENSSL_free(dir);
    return ok ? DCMSEAL_OK
              : dcmseal_fail(err, DCMSEAL_E_IO, "fsync of directory failed: %s", strerror(e));
}

/* Gives the unnamed file |f| the name |f->tmp| + six random hex digits. */
static dcmseal_status name_unnamed(dcmseal_outfile_t *f, dcmseal_error *err)
{
    char proc[64];
    size_t prefix = strlen(f->tmp);
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", f->fd);
    for (int tries = 0; tries < 100; tries++) {
        uint8_t r[3];
        if (RAND_bytes(r, sizeof r) != 1)
            return dcmseal_fail(err, DCMSEAL_E_INTERNAL, "no randomness");
        snprintf(f->tmp + prefix, 7, "%02x%02x%02x", r[0], r[1], r[2]);
        if (linkat(AT_FDCWD, proc, AT_FDCWD, f->tmp, AT_SYMLINK_FOLLOW) == 0) {
            f->named = 1;
            return DCMSEAL_OK;
        }
        if (errno != EEXIST)
            break;
    }
    int e = errno;
    return dcmseal_fail(err, DCMSEAL_E_IO, "cannot create output: %s", strerror(e));
}

dcmseal_status dcmseal_outfile_commit(dcmseal_outfile_t *f, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    DCMSEAL_ENSURE(fsync(f->fd) == 0, err, DCMSEAL_E_IO, "fsync failed: %s",
                   strerror(errno));
    if (f->unnamed && !f->replace) {
        /* linkat refuses an existing name, so a file that appeared while we
         * worked is never overwritten. */
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", f->fd);
        DCMSEAL_ENSURE(linkat(AT_FDCWD, proc, AT_FDCWD, f->path, AT_SYMLINK_FOLLOW) == 0,
                       err, errno == EEXIST ? DCMSEAL_E_USAGE : DCMSEAL_E_IO,
                       "cannot create output: %s", strerror(errno));
    } else if (f->replace) {
        /* rename is the only atomic replace, and it needs a name: the window
         * in which a kill leaves that name behind is these two calls. */
        if (f->unnamed)
            DCMSEAL_GUARD(name_unnamed(f, err));
        DCMSEAL_ENSURE(rename(f->tmp, f->path) == 0, err, DCMSEAL_E_IO,
                       "rename failed: %s", strerror(errno));
        f->named = 0;
    } else {
        DCMSEAL_ENSURE(link(f->tmp, f->path) == 0, err,
                       errno == EEXIST ? DCMSEAL_E_USAGE : DCMSEAL_E_IO,
                       "cannot create output: %s", strerror(errno));
    }
    int rc = close(f->fd);
    f->fd = -1;
    /* The data was flushed before the name appeared, so a late close error
     * is the file system's to report, and ours to pass on. */
    DCMSEAL_ENSURE(rc == 0, err, DCMSEAL_E_IO, "close failed: %s", strerror(errno));
    DCMSEAL_GUARD(sync_dir(f->path, err));
out:
    dcmseal_outfile_abort(f);
    return st;
}

void dcmseal_outfile_abort(dcmseal_outfile_t *f)
{
    if (f == NULL)
        return;
    if (f->fd >= 0)
        close(f->fd);
    if (f->named)
        unlink(f->tmp);
    OPENSSL_free(f->tmp);
    OPENSSL_free(f->path);
    OPENSSL_free(f);
}
