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
    int dirfd; /* every name below is relative to it */
    int replace;
    int unnamed; /* O_TMPFILE: no name until commit */
    int named;   /* |tmp| exists and is ours to remove */
    char *name;
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

/* Appends six random hex digits to |f->tmp| (which has room for them). */
static dcmseal_status random_suffix(dcmseal_outfile_t *f, size_t prefix, dcmseal_error *err)
{
    uint8_t r[3];
    if (RAND_bytes(r, sizeof r) != 1)
        return dcmseal_fail(err, DCMSEAL_E_INTERNAL, "no randomness");
    snprintf(f->tmp + prefix, 7, "%02x%02x%02x", r[0], r[1], r[2]);
    return DCMSEAL_OK;
}

/* Takes ownership of |dirfd|. */
static dcmseal_status outfile_open(dcmseal_outfile_t **out, int dirfd, const char *name,
                                   unsigned mode, int replace, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    dcmseal_outfile_t *f = OPENSSL_zalloc(sizeof *f);
    size_t prefix = 0;
    struct stat sb;
    if (f == NULL) {
        close(dirfd);
        return dcmseal_fail(err, DCMSEAL_E_INTERNAL, "out of memory");
    }
    f->fd = -1;
    f->dirfd = dirfd;
    f->replace = replace;
    DCMSEAL_ENSURE(replace || faccessat(dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) != 0, err,
                   DCMSEAL_E_USAGE, "output exists (use --force to replace it)");
    /* Said now, not by the rename at commit, after all the work. */
    DCMSEAL_ENSURE(fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(sb.st_mode),
                   err, DCMSEAL_E_USAGE, "output is a directory; give the name of a file");
    f->name = OPENSSL_strdup(name);
    size_t len = strlen(name) + 64;
    f->tmp = OPENSSL_zalloc(len);
    DCMSEAL_ENSURE(f->name != NULL && f->tmp != NULL, err, DCMSEAL_E_INTERNAL,
                   "out of memory");
    /* Linking an unnamed file in needs /proc (linkat AT_EMPTY_PATH needs a
     * capability we do not assume). */
    f->fd = access("/proc/self/fd", X_OK) == 0
                ? openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600) : -1;
    f->unnamed = f->fd >= 0;
    /* A dot name so that directory listings and globbing pass it over. */
    prefix = (size_t)snprintf(f->tmp, len, ".%s" TEMP_TAG "%08x-%ld-", name, host_tag(),
                              (long)getpid());
    for (int tries = 0; !f->unnamed && !f->named && tries < 100; tries++) {
        DCMSEAL_GUARD(random_suffix(f, prefix, err));
        f->fd = openat(dirfd, f->tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        f->named = f->fd >= 0;
        if (f->fd < 0 && errno != EEXIST)
            break;
    }
    DCMSEAL_ENSURE(f->fd >= 0, err, DCMSEAL_E_IO, "cannot create a file next to %s: %s", name,
                   strerror(errno));
    DCMSEAL_ENSURE(fchmod(f->fd, mode & 07777) == 0, err, DCMSEAL_E_IO,
                   "chmod failed: %s", strerror(errno));
    *out = f;
    f = NULL;
out:
    dcmseal_outfile_abort(f);
    return st;
}

dcmseal_status dcmseal_outfile_open(dcmseal_outfile_t **out, const char *path,
                                    unsigned mode, int replace, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    char *copy = NULL, *base = NULL;
    int dirfd;
    DCMSEAL_ENSURE(out != NULL && path != NULL && path[0] != '\0', err,
                   DCMSEAL_E_USAGE, "no output path");
    copy = OPENSSL_strdup(path);
    base = OPENSSL_strdup(path);
    DCMSEAL_ENSURE(copy != NULL && base != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    const char *dir = dirname(copy);
    dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DCMSEAL_ENSURE(dirfd >= 0, err, DCMSEAL_E_IO, "cannot create a file in %s: %s", dir,
                   strerror(errno));
    st = outfile_open(out, dirfd, basename(base), mode, replace, err);
out:
    OPENSSL_free(copy);
    OPENSSL_free(base);
    return st;
}

dcmseal_status dcmseal_outfile_openat(dcmseal_outfile_t **out, int dirfd, const char *name,
                                      unsigned mode, int replace, dcmseal_error *err)
{
    if (out == NULL || name == NULL || name[0] == '\0' || strchr(name, '/') != NULL ||
        strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "bad output name");
    int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return dcmseal_fail(err, DCMSEAL_E_IO, "bad directory: %s", strerror(errno));
    return outfile_open(out, fd, name, mode, replace, err);
}

int dcmseal_outfile_fd(const dcmseal_outfile_t *f) { return f->fd; }

/* Gives the unnamed file |f| the name |f->tmp| (a prefix) + six random hex
 * digits. */
static dcmseal_status name_unnamed(dcmseal_outfile_t *f, dcmseal_error *err)
{
    char proc[64];
    size_t prefix = strlen(f->tmp);
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", f->fd);
    for (int tries = 0; tries < 100; tries++) {
        dcmseal_status st = random_suffix(f, prefix, err);
        if (st != DCMSEAL_OK)
            return st;
        if (linkat(AT_FDCWD, proc, f->dirfd, f->tmp, AT_SYMLINK_FOLLOW) == 0) {
            f->named = 1;
            return DCMSEAL_OK;
        }
        f->tmp[prefix] = '\0';
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
        DCMSEAL_ENSURE(linkat(AT_FDCWD, proc, f->dirfd, f->name, AT_SYMLINK_FOLLOW) == 0,
                       err, errno == EEXIST ? DCMSEAL_E_USAGE : DCMSEAL_E_IO,
                       "cannot create output: %s", strerror(errno));
    } else if (f->replace) {
        /* rename is the only atomic replace, and it needs a name: the window
         * in which a kill leaves that name behind is these two calls. */
        if (f->unnamed)
            DCMSEAL_GUARD(name_unnamed(f, err));
        DCMSEAL_ENSURE(renameat(f->dirfd, f->tmp, f->dirfd, f->name) == 0, err, DCMSEAL_E_IO,
                       "rename failed: %s", strerror(errno));
        f->named = 0;
    } else {
        DCMSEAL_ENSURE(linkat(f->dirfd, f->tmp, f->dirfd, f->name, 0) == 0, err,
                       errno == EEXIST ? DCMSEAL_E_USAGE : DCMSEAL_E_IO,
                       "cannot create output: %s", strerror(errno));
    }
    int rc = close(f->fd);
    f->fd = -1;
    /* The data was flushed before the name appeared, so a late close error
     * is the file system's to report, and ours to pass on. */
    DCMSEAL_ENSURE(rc == 0, err, DCMSEAL_E_IO, "close failed: %s", strerror(errno));
    /* The new name survives a crash only once its directory is flushed. */
    DCMSEAL_ENSURE(fsync(f->dirfd) == 0, err, DCMSEAL_E_IO, "fsync of directory failed: %s",
                   strerror(errno));
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
        unlinkat(f->dirfd, f->tmp, 0);
    close(f->dirfd);
    OPENSSL_free(f->tmp);
    OPENSSL_free(f->name);
    OPENSSL_free(f);
}
