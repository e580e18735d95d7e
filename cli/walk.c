/* Walking the paths a command is given, through directory descriptors.
 *
 * A tree is only ever entered by descriptor: each directory is opened
 * relative to its parent's descriptor without following a symbolic link,
 * and everything done to a file later (open, create, link, rename, unlink)
 * is relative to the descriptor of the directory it was found in. Someone
 * who swaps a directory of the tree for a link to another one while a run
 * is under way therefore changes nothing: the run keeps working in the
 * directory it opened. Path strings are for messages only. */
#define _GNU_SOURCE /* O_DIRECTORY, F_DUPFD_CLOEXEC */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sysexits.h>
#include <unistd.h>
#if defined(SYS_openat2) && defined(__has_include)
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#define HAVE_OPENAT2 1
#endif
#endif

#include "cli.h"

struct cli_dir {
    atomic_int refs;
    int fd;
    cli_dir *out;
    pthread_mutex_t lock; /* guards parent */
    /* Made by this run and not yet durable: whose fsync records its name. */
    cli_dir *parent;
};

/* Takes |fd| over; NULL (errno set) when |fd| is -1 or memory is short. */
static cli_dir *dir_new(int fd)
{
    cli_dir *d = fd >= 0 ? calloc(1, sizeof *d) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        errno = fd >= 0 ? ENOMEM : errno;
        return NULL;
    }
    atomic_init(&d->refs, 1);
    d->fd = fd;
    pthread_mutex_init(&d->lock, NULL);
    return d;
}

int cli_dir_fd(const cli_dir *d) { return d->fd; }

cli_dir *cli_dir_get0_out(const cli_dir *d) { return d->out; }

void cli_dir_set_out(cli_dir *d, cli_dir *out)
{
    cli_dir_unref(d->out);
    d->out = out;
}

cli_dir *cli_dir_ref(cli_dir *d)
{
    if (d != NULL)
        atomic_fetch_add_explicit(&d->refs, 1, memory_order_relaxed);
    return d;
}

void cli_dir_unref(cli_dir *d)
{
    if (d == NULL || atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* Nothing below it was reported done (that needs cli_dir_durable), so
     * an error here breaks no promise: this is for an empty directory. */
    if (d->parent != NULL)
        fsync(d->parent->fd);
    cli_dir_unref(d->parent);
    cli_dir_unref(d->out);
    close(d->fd);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

int cli_dir_durable(cli_dir *d)
{
    int rc = 0;
    pthread_mutex_lock(&d->lock);
    if (d->parent != NULL) {
        /* Its parent's own name first, then its name in the parent. Locks
         * are only ever taken child first, so this cannot deadlock. */
        rc = cli_dir_durable(d->parent);
        if (rc == 0 && fsync(d->parent->fd) != 0)
            rc = errno;
        if (rc == 0) {
            cli_dir_unref(d->parent);
            d->parent = NULL;
        }
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

/* Opens the directory |name| in |at| (one path component). Without
 * |follow|, a symbolic link fails with ELOOP. openat2 says so in the
 * kernel's own terms where it exists (and refuses ".." and absolute names
 * too); for one component, openat with O_NOFOLLOW does the same. */
static int open_dir_at(int at, const char *name, int follow)
{
    const int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
#ifdef HAVE_OPENAT2
    static atomic_int no_openat2;
    if (!follow && !atomic_load_explicit(&no_openat2, memory_order_relaxed)) {
        struct open_how how = {.flags = flags | O_NOFOLLOW,
                               .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
                                          RESOLVE_NO_MAGICLINKS};
        int fd = (int)syscall(SYS_openat2, at, name, &how, sizeof how);
        /* ENOSYS: a kernel before 5.6; EPERM: a seccomp filter refusing
         * system calls it does not know. */
        if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
            return fd;
        atomic_store_explicit(&no_openat2, 1, memory_order_relaxed);
    }
#endif
    return openat(at, name, flags | (follow ? 0 : O_NOFOLLOW));
}

/* The directory that holds |path| (the user's path, resolved once), and
 * the last part of |path| (up to trailing slashes). */
static cli_dir *open_parent(const char *path, const char **name)
{
    size_t end = strlen(path);
    while (end > 1 && path[end - 1] == '/')
        end--;
    const char *slash = memrchr(path, '/', end);
    *name = slash ? slash + 1 : path;
    if (slash == NULL)
        return dir_new(open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    char *dir = slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
    if (dir == NULL)
        return NULL;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int e = errno;
    free(dir);
    errno = e;
    return dir_new(fd);
}

int cli_dir_make(cli_dir **out, cli_dir *at, const char *name, mode_t mode)
{
    cli_dir *parent = NULL;
    int fd, made;
    *out = NULL;
    if (at == NULL) {
        /* The root the user named: its own path is theirs to resolve. */
        const char *base;
        made = mkdir(name, mode) == 0;
        if (!made && errno != EEXIST)
            return errno;
        if (made && (parent = open_parent(name, &base)) == NULL)
            return errno;
        fd = open(name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } else {
        made = mkdirat(at->fd, name, mode) == 0;
        if (!made && errno != EEXIST)
            return errno;
        parent = made ? cli_dir_ref(at) : NULL;
        fd = open_dir_at(at->fd, name, 0);
    }
    if ((*out = dir_new(fd)) == NULL) {
        int e = errno;
        cli_dir_unref(parent);
        return e == ELOOP ? ENOTDIR : e;
    }
    (*out)->parent = parent;
    return 0;
}

int cli_entry_open(const cli_entry *e, int flags, int follow, struct stat *sb)
{
    int fd = openat(e->dir->fd, e->name,
                    flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (follow ? 0 : O_NOFOLLOW));
    if (fd < 0)
        return errno == ELOOP && !follow ? -2 : -1;
    if (fstat(fd, sb) != 0) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    /* O_NONBLOCK did its part (a FIFO put in the file's place cannot make
     * open wait for a writer); reads of a regular file ignore it. */
    if (!S_ISREG(sb->st_mode)) {
        close(fd);
        return -2;
    }
    return fd;
}

/* ---- The walk ----------------------------------------------------------------- */

/* A directory being walked, for loops through followed links. */
typedef struct level {
    dev_t dev;
    ino_t ino;
    int depth;
    const struct level *up;
} level;

typedef struct walk_state {
    const cli_walk_opts *wo;
    int (*fn)(const cli_entry *e, void *ctx);
    void *ctx;
    int rc;
    char *buf; /* ROOT/REL of the entry at hand */
    size_t cap;
    size_t root_len;
    char why[200]; /* the reason of the entry at hand, when made up */
} walk_state;

/* The walk recurses, a few hundred bytes of stack a level: a tree made
 * deep on purpose must not exhaust a thread's stack. No archive comes near. */
#define WALK_DEPTH_MAX 1024

/* Internal: out of memory for a path; the walk ends with EX_OSERR. */
#define WALK_NOMEM (-3)

static int grow(walk_state *w, size_t need)
{
    if (need <= w->cap)
        return 1;
    size_t cap = need * 2;
    char *p = realloc(w->buf, cap);
    if (p == NULL)
        return 0;
    w->buf = p;
    w->cap = cap;
    return 1;
}

/* FNV-1a: fixed for all time, so every machine of a job array splits a tree
 * the same way. */
static uint64_t path_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3u;
    return h;
}

/* Hands |e| to the callback unless the shard leaves it out. */
static int deliver(walk_state *w, cli_entry *e)
{
    if (e->kind != CLI_ENTRY_DIR && w->wo->shard_n > 0 &&
        path_hash(e->rel) % w->wo->shard_n != w->wo->shard_k - 1)
        return EX_OK;
    int rc = w->fn(e, w->ctx);
    if (rc != EX_OK && rc != CLI_WALK_STOP)
        w->rc = rc;
    return rc;
}

__attribute__((format(printf, 3, 4))) static void
fail_entry(walk_state *w, cli_entry *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->why, sizeof w->why, fmt, ap);
    va_end(ap);
    e->kind = CLI_ENTRY_ERROR;
    e->why = w->why;
    e->rc = EX_IOERR;
}

/* Sorts what is not a directory into the kinds, with a reason. */
static void classify(cli_entry *e)
{
    const struct stat *sb = e->sb;
    if (S_ISREG(sb->st_mode)) {
        int temp = dcmseal_temp_state(e->name);
        e->stale = temp == DCMSEAL_TEMP_STALE;
        if (e->stale)
            e->why = "temporary file left by an interrupted dcmseal run";
        else if (temp == DCMSEAL_TEMP_LIVE)
            e->why = "temporary file of a dcmseal run in progress";
        else
            e->kind = CLI_ENTRY_FILE;
    } else {
        e->why = S_ISLNK(sb->st_mode) ? "symbolic link, not followed (see --follow-symlinks)"
                                      : "not a regular file";
    }
}

/* fstatat of |e|; with |follow|, a link to nothing is told apart. */
static void stat_entry(walk_state *w, cli_entry *e, struct stat *sb)
{
    const int follow = w->wo->follow;
    e->sb = sb;
    if (fstatat(e->dir->fd, e->name, sb, follow ? 0 : AT_SYMLINK_NOFOLLOW) == 0)
        return;
    int err = errno;
    if (follow && err == ENOENT && fstatat(e->dir->fd, e->name, sb, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISLNK(sb->st_mode)) {
        e->why = "symbolic link to nothing";
        e->kind = CLI_ENTRY_IGNORED;
    } else {
        fail_entry(w, e, "cannot read: %s", strerror(err));
    }
    e->sb = NULL;
}

static int walk_dir(walk_state *w, cli_dir *d, size_t len, const level *here);

/* An ERROR for the directory whose path is the first |len| bytes of w->buf. */
static int dir_failed(walk_state *w, size_t len, const char *what, int err)
{
    w->buf[len] = '\0';
    cli_entry e = {.path = w->buf, .rel = w->buf + w->root_len, .name = w->buf};
    while (*e.rel == '/')
        e.rel++;
    fail_entry(w, &e, "%s: %s", what, strerror(err));
    return deliver(w, &e);
}

/* The directory |e| (|len| the length of its path): opened, checked,
 * delivered, then walked. */
static int enter(walk_state *w, cli_entry *e, size_t len, const level *up)
{
    struct stat sb;
    cli_dir *self = NULL;
    const int depth = up ? up->depth + 1 : 0;
    const int max = w->wo->max_depth > 0 && w->wo->max_depth < WALK_DEPTH_MAX
                        ? w->wo->max_depth : WALK_DEPTH_MAX;
    int fd = -1, rc;
    if (depth >= max) {
        fail_entry(w, e, "more than %d directory levels deep: not entered%s", max,
                   max < WALK_DEPTH_MAX ? " (see ulimit -n)" : "");
        return deliver(w, e);
    }
    if (e->dir != NULL)
        fd = open_dir_at(e->dir->fd, e->name, w->wo->follow);
    else
        fd = open(e->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (w->wo->follow ? 0 : O_NOFOLLOW));
    if (fd < 0 && errno == ELOOP && !w->wo->follow) {
        /* Swapped for a link since it was looked at. */
        e->why = "symbolic link, not followed (see --follow-symlinks)";
        return deliver(w, e);
    }
    if ((self = dir_new(fd)) == NULL || fstat(self->fd, &sb) != 0) {
        fail_entry(w, e, "cannot read: %s", strerror(errno));
        cli_dir_unref(self);
        return deliver(w, e);
    }
    for (const level *l = up; l != NULL; l = l->up) {
        if (l->dev == sb.st_dev && l->ino == sb.st_ino) {
            e->why = "a link to a directory above it: not followed again";
            cli_dir_unref(self);
            return deliver(w, e);
        }
    }
    /* What is walked is what was opened, whatever the name meant before. */
    e->kind = CLI_ENTRY_DIR;
    e->self = self;
    e->sb = &sb;
    rc = deliver(w, e);
    if (rc != CLI_WALK_STOP) {
        const level here = {sb.st_dev, sb.st_ino, depth, up};
        rc = walk_dir(w, self, len, &here);
    }
    cli_dir_unref(self);
    return rc;
}

/* Everything in |d|, whose path is the first |len| bytes of w->buf. */
static int walk_dir(walk_state *w, cli_dir *d, size_t len, const level *here)
{
    struct dirent *de;
    /* The walk's own reader, closed when the walk leaves the directory:
     * the shared descriptor may live on with files in flight. */
    int rfd = fcntl(d->fd, F_DUPFD_CLOEXEC, 0);
    DIR *ds = rfd >= 0 ? fdopendir(rfd) : NULL;
    int rc = EX_OK;
    if (ds == NULL) {
        int err = errno;
        if (rfd >= 0)
            close(rfd);
        return dir_failed(w, len, "cannot read", err);
    }
    const size_t sep = len > 0 && w->buf[len - 1] == '/' ? 0 : 1;
    for (;;) {
        errno = 0;
        if ((de = readdir(ds)) == NULL) {
            if (errno != 0)
                rc = dir_failed(w, len, "reading the directory failed", errno);
            break;
        }
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        size_t nlen = strlen(name), end = len + sep + nlen;
        if (!grow(w, end + 1)) {
            rc = WALK_NOMEM;
            break;
        }
        w->buf[len] = '/';
        memcpy(w->buf + len + sep, name, nlen + 1);
        struct stat sb;
        cli_entry e = {.path = w->buf, .rel = w->buf + w->root_len, .dir = d,
                       .name = w->buf + len + sep, .kind = CLI_ENTRY_IGNORED};
        while (*e.rel == '/')
            e.rel++;
        stat_entry(w, &e, &sb);
        if (e.sb != NULL && S_ISDIR(sb.st_mode)) {
            rc = enter(w, &e, end, here);
        } else {
            if (e.sb != NULL)
                classify(&e);
            rc = deliver(w, &e);
        }
        if (rc == CLI_WALK_STOP || rc == WALK_NOMEM)
            break;
        rc = EX_OK;
    }
    closedir(ds);
    return rc;
}

/* One path from the command line. */
static int walk_one(walk_state *w, const char *path)
{
    struct stat sb;
    size_t len = strlen(path);
    if (!grow(w, len + 1))
        return WALK_NOMEM;
    memcpy(w->buf, path, len + 1);
    cli_entry e = {.path = w->buf, .rel = w->buf, .name = w->buf, .kind = CLI_ENTRY_IGNORED,
                   .sb = &sb};
    if ((w->wo->follow ? stat(path, &sb) : lstat(path, &sb)) != 0) {
        fail_entry(w, &e, "%s", strerror(errno));
        e.sb = NULL;
    } else if (S_ISDIR(sb.st_mode) && !w->wo->recursive) {
        e.kind = CLI_ENTRY_ERROR, e.why = "is a directory (use -r)", e.rc = EX_USAGE;
    } else if (S_ISDIR(sb.st_mode)) {
        /* Without trailing slashes, so that rel never starts with one. */
        while (len > 1 && w->buf[len - 1] == '/')
            w->buf[--len] = '\0';
        w->root_len = len;
        e.rel = "";
        return enter(w, &e, len, NULL);
    } else if (!S_ISREG(sb.st_mode)) {
        classify(&e);
    } else {
        /* A named file: its directory once by path, the file in it by name,
         * as in a tree. */
        int rc;
        cli_dir *parent = open_parent(w->buf, &e.name);
        if (parent == NULL) {
            fail_entry(w, &e, "cannot open its directory: %s",
                       strerror(errno));
            return deliver(w, &e);
        }
        e.dir = parent;
        stat_entry(w, &e, &sb);
        if (e.sb != NULL && !S_ISDIR(sb.st_mode))
            classify(&e);
        else if (e.sb != NULL)
            fail_entry(w, &e, "changed while being looked at");
        rc = deliver(w, &e);
        cli_dir_unref(parent);
        return rc;
    }
    return deliver(w, &e);
}

int cli_walk(const char *const *paths, int npaths, const cli_walk_opts *wo,
             int (*fn)(const cli_entry *e, void *ctx), void *ctx)
{
    walk_state w = {.wo = wo, .fn = fn, .ctx = ctx, .rc = EX_OK};
    int rc = EX_OK;
    for (int i = 0; i < npaths && rc != CLI_WALK_STOP && rc != WALK_NOMEM; i++)
        rc = walk_one(&w, paths[i]);
    free(w.buf);
    if (rc == WALK_NOMEM)
        return EX_OSERR;
    return rc == CLI_WALK_STOP ? CLI_WALK_STOP : w.rc;
}
