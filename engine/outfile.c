/* Output that becomes visible only when complete: a temporary file in the
 * target's directory (so that rename is atomic), fsync, then link or rename,
 * then fsync of the directory so that the new name survives a crash.
 *
 * Everything happens relative to one descriptor of that directory, taken
 * before the work starts: if a directory on the way to it is renamed or
 * replaced by a symbolic link meanwhile, the output still lands in the
 * directory that was opened, never where the path now leads.
 *
 * The temporary file is unnamed (O_TMPFILE) where the file system allows it,
 * so a process killed mid-write leaves nothing behind; replacing a file
 * still needs a name for the two system calls between link and rename.
 * Elsewhere (NFS, old kernels) it is named from the start. Names read
 * ".NAME.dcmseal-HOST-PID-XXXXXX", so that a walk can tell a file left by a
 * process that is gone (dcmseal_temp_state) and remove it. Either way the
 * file is 0600 until commit: plain text being written is never readable by
 * others under a temporary name.
 *
 * Many outputs finishing at once can share the flushes (group commit, as
 * databases commit transactions): modes, one flush of all their data, the
 * names, one flush of each directory. No name ever points at data that is
 * not durable, and none is reported done before its directory is. */
#define _GNU_SOURCE /* O_TMPFILE */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "group.h"
#include "internal.h"

struct dcmseal_outfile {
    int fd;
    int dir_fd;
    int own_dir;  /* dir_fd is ours to close (dcmseal_outfile_open) */
    int replace;
    int unnamed;  /* O_TMPFILE: no name until commit */
    int named;    /* |tmp| exists and is ours to remove */
    unsigned mode; /* given at commit */
    int target_set; /* replace |name| only while it is (tdev, ino) */
    uint64_t tdev, ino;
    char *name;
    size_t prefix; /* length of |tmp| without its random suffix (0: not made yet) */
    char tmp[NAME_MAX + 1];
};

#define TEMP_TAG ".dcmseal-"
#define TEMP_RANDOM 6 /* hex digits */

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
        strlen(tag + strlen(TEMP_TAG) + used) != TEMP_RANDOM || pid <= 0)
        return DCMSEAL_TEMP_NONE;
    if (host == host_tag() && kill((pid_t)pid, 0) != 0 && errno == ESRCH)
        return DCMSEAL_TEMP_STALE;
    return DCMSEAL_TEMP_LIVE;
}

/* Linking an unnamed file in needs /proc (linkat AT_EMPTY_PATH needs a
 * capability we do not assume). Asked once: a system call per output
 * otherwise. */
static int have_proc(void)
{
    static atomic_int known; /* 0 not asked, 1 yes, 2 no */
    int k = atomic_load_explicit(&known, memory_order_relaxed);
    if (k == 0) {
        k = access("/proc/self/fd", X_OK) == 0 ? 1 : 2;
        atomic_store_explicit(&known, k, memory_order_relaxed);
    }
    return k == 1;
}

/* A temporary name for |f|: the prefix, made the first time (an unnamed
 * output that is only linked never needs one), then TEMP_RANDOM random hex
 * digits. */
static dcmseal_status random_suffix(dcmseal_outfile_t *f, dcmseal_error *err)
{
    uint8_t r[TEMP_RANDOM / 2];
    if (f->prefix == 0) {
        /* A dot name so that directory listings and globbing pass it over;
         * NAME shortened so that the whole stays within NAME_MAX. */
        int room = NAME_MAX - (int)(sizeof "." TEMP_TAG "ffffffff--" - 1) - 10 - TEMP_RANDOM;
        int n = snprintf(f->tmp, sizeof f->tmp, ".%.*s" TEMP_TAG "%08x-%ld-", room, f->name,
                         host_tag(), (long)getpid());
        if (n <= 0 || (size_t)n + TEMP_RANDOM >= sizeof f->tmp)
            return dcmseal_fail(err, DCMSEAL_E_INTERNAL, "temporary name too long");
        f->prefix = (size_t)n;
    }
    if (RAND_bytes(r, sizeof r) != 1)
        return dcmseal_fail(err, DCMSEAL_E_INTERNAL, "no randomness");
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(f->tmp + f->prefix + 2 * i, 3, "%02x", r[i]);
    return DCMSEAL_OK;
}

/* Creates the named temporary file, as mkstemp would, but in |f->dir_fd|. */
static dcmseal_status create_named(dcmseal_outfile_t *f, dcmseal_error *err)
{
    for (int tries = 0; tries < 100; tries++) {
        dcmseal_status st = random_suffix(f, err);
        if (st != DCMSEAL_OK)
            return st;
        f->fd = openat(f->dir_fd, f->tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                       0600);
        if (f->fd >= 0) {
            f->named = 1;
            return DCMSEAL_OK;
        }
        if (errno != EEXIST)
            break;
    }
    return dcmseal_fail(err, DCMSEAL_E_IO, "cannot create a temporary file: %s",
                        strerror(errno));
}

/* Whether |name| is one path component, so that it can only mean an entry
 * of the directory given. */
static int one_component(const char *name)
{
    return name != NULL && name[0] != '\0' && strchr(name, '/') == NULL &&
           strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* Takes |dir_fd| over when |own_dir|, also on failure. */
static dcmseal_status outfile_new(dcmseal_outfile_t **out, int dir_fd, int own_dir,
                                  const char *name, unsigned mode, int replace,
                                  dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    dcmseal_outfile_t *f = NULL;
    struct stat sb;
    DCMSEAL_ENSURE(out != NULL && one_component(name), err, DCMSEAL_E_USAGE,
                   "output: not a file name");
    /* A symbolic link counts as existing: it is never written through. */
    const int exists = fstatat(dir_fd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0;
    DCMSEAL_ENSURE(replace || !exists, err, DCMSEAL_E_USAGE,
                   "output exists (use --force to replace it)");
    /* Said now, not by the rename at commit, after all the work. */
    DCMSEAL_ENSURE(!exists || !S_ISDIR(sb.st_mode), err, DCMSEAL_E_USAGE,
                   "output is a directory; give the name of a file");
    f = OPENSSL_zalloc(sizeof *f);
    DCMSEAL_ENSURE(f != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    f->fd = -1;
    f->dir_fd = dir_fd;
    f->own_dir = own_dir;
    own_dir = 0;
    f->replace = replace;
    f->mode = mode & 07777;
    f->name = OPENSSL_strdup(name);
    DCMSEAL_ENSURE(f->name != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    f->fd = have_proc() ? openat(dir_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600) : -1;
    f->unnamed = f->fd >= 0;
    if (!f->unnamed)
        DCMSEAL_GUARD(create_named(f, err));
    *out = f;
    f = NULL;
out:
    if (own_dir)
        close(dir_fd);
    dcmseal_outfile_abort(f);
    return st;
}

dcmseal_status dcmseal_outfile_openat(dcmseal_outfile_t **out, int dir_fd, const char *name,
                                      unsigned mode, int replace, dcmseal_error *err)
{
    return outfile_new(out, dir_fd, 0, name, mode, replace, err);
}

dcmseal_status dcmseal_outfile_open(dcmseal_outfile_t **out, const char *path,
                                    unsigned mode, int replace, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    char *dir = NULL;
    const char *base = path ? strrchr(path, '/') : NULL;
    DCMSEAL_ENSURE(out != NULL && path != NULL && path[0] != '\0', err,
                   DCMSEAL_E_USAGE, "no output path");
    base = base ? base + 1 : path;
    dir = base == path ? OPENSSL_strdup(".")
          : base == path + 1 ? OPENSSL_strdup("/")
                             : OPENSSL_strndup(path, (size_t)(base - path - 1));
    DCMSEAL_ENSURE(dir != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DCMSEAL_ENSURE(dir_fd >= 0, err, DCMSEAL_E_IO, "cannot open the directory %s: %s", dir,
                   strerror(errno));
    st = outfile_new(out, dir_fd, 1, base, mode, replace, err);
out:
    OPENSSL_free(dir);
    return st;
}

int dcmseal_outfile_fd(const dcmseal_outfile_t *f) { return f->fd; }

void dcmseal_outfile_set_target(dcmseal_outfile_t *f, uint64_t dev, uint64_t ino)
{
    f->target_set = 1;
    f->tdev = dev;
    f->ino = ino;
}

/* Gives the unnamed file |f| a temporary name. */
static dcmseal_status name_unnamed(dcmseal_outfile_t *f, dcmseal_error *err)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", f->fd);
    for (int tries = 0; tries < 100; tries++) {
        dcmseal_status st = random_suffix(f, err);
        if (st != DCMSEAL_OK)
            return st;
        if (linkat(AT_FDCWD, proc, f->dir_fd, f->tmp, AT_SYMLINK_FOLLOW) == 0) {
            f->named = 1;
            return DCMSEAL_OK;
        }
        if (errno != EEXIST)
            break;
    }
    int e = errno;
    return dcmseal_fail(err, DCMSEAL_E_IO, "cannot create output: %s", strerror(e));
}

/* Whether |f->name| still is the file that was read: a name whose file was
 * replaced meanwhile keeps the newcomer. */
static int target_unchanged(const dcmseal_outfile_t *f)
{
    struct stat sb;
    return !f->target_set ||
           (fstatat(f->dir_fd, f->name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
            (uint64_t)sb.st_dev == f->tdev && (uint64_t)sb.st_ino == f->ino);
}

/* Before the flush: the content is complete, so only now may it have its
 * final mode. */
static dcmseal_status commit_mode(dcmseal_outfile_t *f, dcmseal_error *err)
{
    if (fchmod(f->fd, f->mode) != 0)
        return dcmseal_fail(err, DCMSEAL_E_IO, "chmod failed: %s", strerror(errno));
    return DCMSEAL_OK;
}

/* After the flush: the name, then the descriptor closed. The directory's
 * flush is the caller's. */
static dcmseal_status commit_name(dcmseal_outfile_t *f, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    if (f->unnamed && !f->replace) {
        /* linkat refuses an existing name, so a file that appeared while we
         * worked is never overwritten. */
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", f->fd);
        DCMSEAL_ENSURE(linkat(AT_FDCWD, proc, f->dir_fd, f->name, AT_SYMLINK_FOLLOW) == 0,
                       err, errno == EEXIST ? DCMSEAL_E_USAGE : DCMSEAL_E_IO,
                       "cannot create output: %s", strerror(errno));
    } else if (f->replace) {
        /* rename is the only atomic replace, and it needs a name: the window
         * in which a kill leaves that name behind is these calls. */
        if (f->unnamed)
            DCMSEAL_GUARD(name_unnamed(f, err));
        /* Someone who may write this directory can still swap the name
         * between this check and the rename; they could as well have
         * removed it. No one else can: the directory is the one opened. */
        DCMSEAL_ENSURE(target_unchanged(f), err, DCMSEAL_E_IO,
                       "replaced or removed while being worked on; left as it is");
        DCMSEAL_ENSURE(renameat(f->dir_fd, f->tmp, f->dir_fd, f->name) == 0, err,
                       DCMSEAL_E_IO, "rename failed: %s", strerror(errno));
        f->named = 0;
    } else {
        DCMSEAL_ENSURE(linkat(f->dir_fd, f->tmp, f->dir_fd, f->name, 0) == 0, err,
                       errno == EEXIST ? DCMSEAL_E_USAGE : DCMSEAL_E_IO,
                       "cannot create output: %s", strerror(errno));
    }
    int rc = close(f->fd);
    f->fd = -1;
    /* The data was flushed before the name appeared, so a late close error
     * is the file system's to report, and ours to pass on. */
    DCMSEAL_ENSURE(rc == 0, err, DCMSEAL_E_IO, "close failed: %s", strerror(errno));
out:
    return st;
}

dcmseal_status dcmseal_outfile_commit(dcmseal_outfile_t *f, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    DCMSEAL_GUARD(commit_mode(f, err));
    DCMSEAL_ENSURE(fsync(f->fd) == 0, err, DCMSEAL_E_IO, "fsync failed: %s",
                   strerror(errno));
    DCMSEAL_GUARD(commit_name(f, err));
    DCMSEAL_ENSURE(fsync(f->dir_fd) == 0, err, DCMSEAL_E_IO,
                   "fsync of directory failed: %s", strerror(errno));
out:
    dcmseal_outfile_abort(f);
    return st;
}

/* ---- group commit ---------------------------------------------------------- */

#define OUTFILE(m) ((dcmseal_outfile_t *)(m)->item)

/* dcmseal_outfile_commit for a group: modes, one flush of all the data,
 * the names, then each directory flushed once. */
static void outfile_group_commit(commit_member *list)
{
    commit_member *m, *p;
    for (m = list; m != NULL; m = m->next)
        if (m->st == DCMSEAL_OK)
            m->st = commit_mode(OUTFILE(m), m->err);
    commit_flush(list, 0);
    for (m = list; m != NULL; m = m->next)
        if (m->st == DCMSEAL_OK)
            m->st = commit_name(OUTFILE(m), m->err);
    /* Told apart by descriptor: each stays open until its outfiles are
     * committed, so one number is one directory. Two descriptors of one
     * directory are flushed twice (a tree run has one per directory). */
    for (m = list; m != NULL; m = m->next) {
        int first = m->st == DCMSEAL_OK;
        for (p = list; first && p != m; p = p->next)
            first = !(p->st == DCMSEAL_OK && OUTFILE(p)->dir_fd == OUTFILE(m)->dir_fd);
        if (!first || fsync(OUTFILE(m)->dir_fd) == 0)
            continue;
        const int e = errno;
        for (p = m; p != NULL; p = p->next)
            if (p->st == DCMSEAL_OK && OUTFILE(p)->dir_fd == OUTFILE(m)->dir_fd)
                p->st = dcmseal_fail(p->err, DCMSEAL_E_IO, "fsync of directory failed: %s",
                                     strerror(e));
    }
}

size_t dcmseal_outfile_commit_all(dcmseal_outfile_t *const *files, size_t n,
                                  dcmseal_error *const *errs)
{
    commit_member *m = n > 0 ? OPENSSL_zalloc(n * sizeof *m) : NULL;
    size_t done = 0;
    for (size_t i = 0; i < n; i++) {
        dcmseal_error_clear(errs[i]);
        if (files[i] == NULL)
            dcmseal_fail(errs[i], DCMSEAL_E_USAGE, "commit: no outfile");
        else if (m == NULL) /* out of memory: each alone, as safely */
            done += dcmseal_outfile_commit(files[i], errs[i]) == DCMSEAL_OK;
        else
            m[i] = (commit_member){.item = files[i], .fd = files[i]->fd, .err = errs[i]};
    }
    if (m == NULL)
        return done;
    for (size_t i = 0; i < n; i++) {
        m[i].st = errs[i]->status;
        m[i].next = i + 1 < n ? &m[i + 1] : NULL;
    }
    outfile_group_commit(m);
    for (size_t i = 0; i < n; i++) {
        done += errs[i]->status == DCMSEAL_OK;
        dcmseal_outfile_abort(files[i]);
    }
    OPENSSL_free(m);
    return done;
}

void dcmseal_outfile_abort(dcmseal_outfile_t *f)
{
    if (f == NULL)
        return;
    if (f->fd >= 0)
        close(f->fd);
    if (f->named)
        unlinkat(f->dir_fd, f->tmp, 0);
    if (f->own_dir)
        close(f->dir_fd);
    OPENSSL_free(f->name);
    OPENSSL_free(f);
}
