/* Orthanc's storage layout, root/xx/yy/uuid (xx and yy: the first two pairs
 * of hex digits of the uuid), so that an existing storage directory is read
 * as it is and the dcmseal command works on the same tree. Every name is
 * resolved from the root's descriptor, one component at a time, without
 * following symbolic links: whoever can write below the root cannot send a
 * read or a write elsewhere. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "plugin.h"

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

struct store {
    int root;
    char *path;
};

int store_uuid_ok(const char *uuid)
{
    static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
    if (uuid == NULL || strlen(uuid) != sizeof shape - 1)
        return 0;
    for (size_t i = 0; i < sizeof shape - 1; i++) {
        char c = uuid[i];
        int hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        if (shape[i] == '-' ? c != '-' : !hex)
            return 0;
    }
    return 1;
}

/* mkdir -p, mode 0700 for what it makes. */
static int make_dirs(const char *path)
{
    char *p = OPENSSL_strdup(path);
    int rc = p != NULL ? 0 : -1;
    for (char *s = p ? p + 1 : NULL; rc == 0 && s != NULL; s = strchr(s + 1, '/')) {
        char c = *s;
        if (c != '/' && c != '\0')
            continue;
        *s = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
            rc = -1;
        *s = c;
        if (c == '\0')
            break;
    }
    if (rc == 0 && mkdir(path, 0700) != 0 && errno != EEXIST)
        rc = -1;
    OPENSSL_free(p);
    return rc;
}

dcmseal_status store_open(store **out, const char *root, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    store *s = OPENSSL_zalloc(sizeof *s);
    DCMSEAL_ENSURE(s != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    s->root = -1;
    s->path = OPENSSL_strdup(root);
    DCMSEAL_ENSURE(s->path != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    DCMSEAL_ENSURE(make_dirs(root) == 0, err, DCMSEAL_E_IO,
                   "cannot create the storage directory %s: %s", root, strerror(errno));
    /* The root itself is the administrator's choice and may be a link. */
    s->root = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DCMSEAL_ENSURE(s->root >= 0, err, DCMSEAL_E_IO, "cannot open the storage directory %s: %s",
                   root, strerror(errno));
    *out = s;
    s = NULL;
out:
    store_free(s);
    return st;
}

void store_free(store *s)
{
    if (s == NULL)
        return;
    if (s->root >= 0)
        close(s->root);
    OPENSSL_free(s->path);
    OPENSSL_free(s);
}

/* Opens (with |create|, makes first) the directory |name| below |parent|. */
static int sub_dir(int parent, const char *name, int create)
{
    int fd = openat(parent, name, DIR_FLAGS);
    if (fd < 0 && errno == ENOENT && create) {
        if (mkdirat(parent, name, 0700) != 0 && errno != EEXIST)
            return -1;
        fd = openat(parent, name, DIR_FLAGS);
    }
    return fd;
}

dcmseal_status store_dir(store *s, int *dirfd, int *absent, const char *uuid, int create,
                         dcmseal_error *err)
{
    char xx[3] = {uuid[0], uuid[1], 0}, yy[3] = {uuid[2], uuid[3], 0};
    *dirfd = -1;
    *absent = 0;
    /* Someone else may remove an empty folder between our mkdirat and
     * openat: then it is made again. */
    for (int tries = 0; tries < 8; tries++) {
        int a = sub_dir(s->root, xx, create);
        int b = a >= 0 ? sub_dir(a, yy, create) : -1;
        int e = errno;
        if (a >= 0)
            close(a);
        if (b >= 0) {
            *dirfd = b;
            return DCMSEAL_OK;
        }
        if (e != ENOENT)
            return dcmseal_fail(err, DCMSEAL_E_IO, "%s/%s/%s: %s", s->path, xx, yy,
                                strerror(e));
        if (!create) {
            *absent = 1;
            return DCMSEAL_OK;
        }
    }
    return dcmseal_fail(err, DCMSEAL_E_IO, "%s/%s/%s keeps disappearing", s->path, xx, yy);
}

dcmseal_status store_open_file(store *s, int *fd, int *absent, const char *uuid,
                               dcmseal_error *err)
{
    int dir;
    dcmseal_status st = store_dir(s, &dir, absent, uuid, 0, err);
    *fd = -1;
    if (st != DCMSEAL_OK || *absent)
        return st;
    *fd = openat(dir, uuid, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    int e = errno;
    close(dir);
    if (*fd >= 0)
        return DCMSEAL_OK;
    if (e == ENOENT) {
        *absent = 1;
        return DCMSEAL_OK;
    }
    return dcmseal_fail(err, DCMSEAL_E_IO, "cannot open %s: %s", uuid, strerror(e));
}

/* Empty folders stay: removing one races with a write that has just opened
 * it to link a new file in (and Orthanc makes them again anyway). */
dcmseal_status store_remove(store *s, const char *uuid, dcmseal_error *err)
{
    int dir, absent;
    dcmseal_status st = store_dir(s, &dir, &absent, uuid, 0, err);
    if (st != DCMSEAL_OK || absent)
        return st;
    if (unlinkat(dir, uuid, 0) != 0 && errno != ENOENT)
        st = dcmseal_fail(err, DCMSEAL_E_IO, "cannot remove %s: %s", uuid, strerror(errno));
    close(dir);
    return st;
}
