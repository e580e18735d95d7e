/* An LD_PRELOAD library for the tests: stops a dcmseal process at a chosen
 * system call, so that a test can change the file system at that moment
 * (swap a directory for a symbolic link while a file is in flight), and
 * makes O_TMPFILE unavailable, as it is on NFS. dcmseal itself has no test
 * hook: the same tests run against any build, the tree before a fix too.
 *
 *   DCMSEAL_PAUSE_AT=FAMILY:NAME   FAMILY is open, link, rename, unlink or
 *       write (write, pwrite); NAME is the last part of the path the call names (for link
 *       and rename the new name; for write the file written), or a prefix
 *       ending in '*'. The first matching call, in any thread, waits
 *       before it runs; other calls go on.
 *   DCMSEAL_PAUSE_FIFO=PATH   the handshake when it waits: the thread
 *       opens PATH for writing and writes one line "FAMILY PATH", closes it,
 *       then opens it for reading and goes on at end of file. A shell test:
 *           read -r what < "$fifo"; <change things>; : > "$fifo"
 *   DCMSEAL_NO_TMPFILE=1   open/openat with O_TMPFILE fail with EOPNOTSUPP.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *family;  /* of DCMSEAL_PAUSE_AT */
static size_t family_len;
static const char *want;    /* its NAME */
static const char *fifo;
static int no_tmpfile;
static atomic_int fired;

__attribute__((constructor)) static void init(void)
{
    const char *at = getenv("DCMSEAL_PAUSE_AT");
    const char *colon = at ? strchr(at, ':') : NULL;
    fifo = getenv("DCMSEAL_PAUSE_FIFO");
    no_tmpfile = getenv("DCMSEAL_NO_TMPFILE") != NULL;
    if (colon != NULL && fifo != NULL) {
        family = at;
        family_len = (size_t)(colon - at);
        want = colon + 1;
    }
}

static int matches(const char *fam, const char *path)
{
    if (family == NULL || path == NULL || strlen(fam) != family_len ||
        strncmp(fam, family, family_len) != 0)
        return 0;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(want);
    if (n > 0 && want[n - 1] == '*')
        return strncmp(base, want, n - 1) == 0;
    return strcmp(base, want) == 0;
}

/* Raw system calls only: the wrappers below must not see the handshake. */
static void pause_if(const char *fam, const char *path)
{
    if (!matches(fam, path) || atomic_exchange(&fired, 1))
        return;
    int saved = errno;
    char line[4200];
    int n = snprintf(line, sizeof line, "%s %s\n", fam, path);
    long fd = syscall(SYS_openat, AT_FDCWD, fifo, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        syscall(SYS_write, fd, line, (size_t)(n < (int)sizeof line ? n : (int)sizeof line - 1));
        syscall(SYS_close, fd);
    }
    fd = syscall(SYS_openat, AT_FDCWD, fifo, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        while (syscall(SYS_read, fd, line, sizeof line) > 0)
            ;
        syscall(SYS_close, fd);
    }
    errno = saved;
}

#define NEXT(name)                                                             \
    static __typeof__(name) *next_##name;                                      \
    if (next_##name == NULL)                                                   \
        next_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

static int refuse_tmpfile(int flags)
{
    if (no_tmpfile && (flags & O_TMPFILE) == O_TMPFILE) {
        errno = EOPNOTSUPP;
        return 1;
    }
    return 0;
}

static mode_t mode_arg(int flags, va_list ap)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

/* open, open64, openat, openat64: the same, with or without a directory. */
#define OPEN_LIKE(fn, params, args)                                            \
    int fn params                                                              \
    {                                                                          \
        NEXT(fn);                                                              \
        va_list ap;                                                            \
        va_start(ap, flags);                                                   \
        mode_t mode = mode_arg(flags, ap);                                     \
        va_end(ap);                                                            \
        if (refuse_tmpfile(flags))                                             \
            return -1;                                                         \
        pause_if("open", path);                                                \
        return next_##fn args;                                                 \
    }

OPEN_LIKE(open, (const char *path, int flags, ...), (path, flags, mode))
OPEN_LIKE(open64, (const char *path, int flags, ...), (path, flags, mode))
OPEN_LIKE(openat, (int dir, const char *path, int flags, ...), (dir, path, flags, mode))
OPEN_LIKE(openat64, (int dir, const char *path, int flags, ...), (dir, path, flags, mode))

/* What _FORTIFY_SOURCE makes of open without a mode. */
int __open_2(const char *path, int flags);
int __open_2(const char *path, int flags)
{
    NEXT(__open_2);
    pause_if("open", path);
    return next___open_2(path, flags);
}

int __openat_2(int dir, const char *path, int flags);
int __openat_2(int dir, const char *path, int flags)
{
    NEXT(__openat_2);
    pause_if("open", path);
    return next___openat_2(dir, path, flags);
}

int link(const char *from, const char *to)
{
    NEXT(link);
    pause_if("link", to);
    return next_link(from, to);
}

int linkat(int from_dir, const char *from, int to_dir, const char *to, int flags)
{
    NEXT(linkat);
    pause_if("link", to);
    return next_linkat(from_dir, from, to_dir, to, flags);
}

int rename(const char *from, const char *to)
{
    NEXT(rename);
    pause_if("rename", to);
    return next_rename(from, to);
}

int renameat(int from_dir, const char *from, int to_dir, const char *to)
{
    NEXT(renameat);
    pause_if("rename", to);
    return next_renameat(from_dir, from, to_dir, to);
}

int renameat2(int from_dir, const char *from, int to_dir, const char *to, unsigned flags)
{
    NEXT(renameat2);
    pause_if("rename", to);
    return next_renameat2(from_dir, from, to_dir, to, flags);
}

int unlink(const char *path)
{
    NEXT(unlink);
    pause_if("unlink", path);
    return next_unlink(path);
}

int unlinkat(int dir, const char *path, int flags)
{
    NEXT(unlinkat);
    pause_if("unlink", path);
    return next_unlinkat(dir, path, flags);
}

/* The file a descriptor names, for write: looked up only when waiting at a
 * write is what was asked for. */
static void pause_write(int fd)
{
    if (family != NULL && family_len == 5 && strncmp(family, "write", 5) == 0 && !fired) {
        char proc[64], path[4096];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        ssize_t len = readlink(proc, path, sizeof path - 1);
        if (len > 0) {
            path[len] = '\0';
            pause_if("write", path);
        }
    }
}

ssize_t write(int fd, const void *buf, size_t n)
{
    NEXT(write);
    pause_write(fd);
    return next_write(fd, buf, n);
}

/* rewrap writes key slots in place. */
ssize_t pwrite(int fd, const void *buf, size_t n, off_t at)
{
    NEXT(pwrite);
    pause_write(fd);
    return next_pwrite(fd, buf, n, at);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t at)
{
    NEXT(pwrite64);
    pause_write(fd);
    return next_pwrite64(fd, buf, n, at);
}
