/* Output that becomes visible only when complete: a temporary file in the
 * target's directory (so that rename is atomic), fsync, then link or rename,
 * then fsync of the directory so that the new name survives a crash. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "internal.h"

struct dcmseal_outfile {
    int fd;
    int replace;
    char *path;
    char *tmp;
};

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
    DCMSEAL_ENSURE(out != NULL && path != NULL && path[0] != '\0', err,
                   DCMSEAL_E_USAGE, "no output path");
    DCMSEAL_ENSURE(replace || access(path, F_OK) != 0, err, DCMSEAL_E_USAGE,
                   "output exists (use --force to replace it)");
    f = OPENSSL_zalloc(sizeof *f);
    DCMSEAL_ENSURE(f != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    f->fd = -1;
    f->replace = replace;
    f->path = OPENSSL_strdup(path);
    dir = dir_of(path);
    base = f->path ? OPENSSL_strdup(f->path) : NULL;
    DCMSEAL_ENSURE(f->path != NULL && dir != NULL && base != NULL, err,
                   DCMSEAL_E_INTERNAL, "out of memory");
    size_t len = strlen(dir) + strlen(base) + 32;
    f->tmp = OPENSSL_malloc(len);
    DCMSEAL_ENSURE(f->tmp != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    /* A dot name so that directory listings and globbing pass it over. */
    snprintf(f->tmp, len, "%s/.%s.dcmseal-XXXXXX", dir, basename(base));
    f->fd = mkstemp(f->tmp);
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

dcmseal_status dcmseal_outfile_commit(dcmseal_outfile_t *f, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    DCMSEAL_ENSURE(fsync(f->fd) == 0, err, DCMSEAL_E_IO, "fsync failed: %s",
                   strerror(errno));
    int rc = close(f->fd);
    f->fd = -1;
    DCMSEAL_ENSURE(rc == 0, err, DCMSEAL_E_IO, "close failed: %s", strerror(errno));
    if (f->replace) {
        DCMSEAL_ENSURE(rename(f->tmp, f->path) == 0, err, DCMSEAL_E_IO,
                       "rename failed: %s", strerror(errno));
    } else {
        /* link() refuses an existing name, so a file that appeared while we
         * worked is never overwritten. */
        DCMSEAL_ENSURE(link(f->tmp, f->path) == 0, err,
                       errno == EEXIST ? DCMSEAL_E_USAGE : DCMSEAL_E_IO,
                       "cannot create output: %s", strerror(errno));
        unlink(f->tmp);
    }
    f->tmp[0] = '\0';
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
    if (f->tmp != NULL && f->tmp[0] != '\0')
        unlink(f->tmp);
    OPENSSL_free(f->tmp);
    OPENSSL_free(f->path);
    OPENSSL_free(f);
}
