/* encrypt, decrypt, verify: one object per file. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"

typedef dcmseal_status (*object_fn)(void *ctx, dcmseal_object_report *rep, int out_fd,
                                    int in_fd, dcmseal_error *err);

static dcmseal_status seal_fn(void *ctx, dcmseal_object_report *rep, int out_fd,
                              int in_fd, dcmseal_error *err)
{
    return dcmseal_seal_fd(rep, out_fd, in_fd, ctx, err);
}

static dcmseal_status open_fn(void *ctx, dcmseal_object_report *rep, int out_fd,
                              int in_fd, dcmseal_error *err)
{
    return dcmseal_open_fd(rep, out_fd, in_fd, ctx, 0, err);
}

/* decrypt of an object opened with dcmseal_open_fd_begin: |ctx| points to
 * it, and is cleared once _finish has freed it. */
static dcmseal_status finish_fn(void *ctx, dcmseal_object_report *rep, int out_fd, int in_fd,
                                dcmseal_error *err)
{
    dcmseal_opening_t **op = ctx;
    dcmseal_opening_t *mine = *op;
    (void)in_fd;
    *op = NULL;
    return dcmseal_open_fd_finish(mine, rep, out_fd, 0, err);
}

static int same_time(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/* The umask, read while the process has one thread: umask(2) reads it only
 * by setting it. */
static mode_t process_umask = 077;

static void read_umask(void)
{
    process_umask = umask(077);
    umask(process_umask);
}

/* Permission bits for a file made from one with |src| (NULL: a pipe): as cp
 * gives them, the source's less the umask, so never more than the source's,
 * and never set-id bits. Work in place keeps the file's own bits (and its
 * owner): to its users it is the same file. */
static unsigned new_mode(const struct stat *src, int in_place)
{
    if (src == NULL)
        return 0600 & ~process_umask;
    return src->st_mode & 0777 & (in_place ? 0777 : ~process_umask);
}

/* Writes what |fn| makes of |in_fd| to |of|, whose name (|out_name|, for
 * messages) appears only when complete. The output gets the input's
 * modification time (|in_sb| NULL: a pipe; now), or that of |restore| (the
 * original file a concealed object names), and when it replaces the
 * input itself (|in_place|) its owner too, where we may. If the input
 * changes while it is read, nothing is written: the output would match
 * neither version. With |keep|, the complete output is handed over there
 * instead of committed (dcmseal_outfile_commit is then the caller's);
 * otherwise |of| is committed or aborted. On failure |*culprit| is the
 * output when that is what failed. */
static dcmseal_status transform(dcmseal_outfile_t *of, const char *out_name, int in_place,
                                int in_fd, const struct stat *in_sb, const dcmseal_meta *restore,
                                object_fn fn, void *ctx, dcmseal_object_report *rep,
                                const char **culprit, dcmseal_outfile_t **keep,
                                dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    struct stat now;
    int out_fd = dcmseal_outfile_fd(of);
    DCMSEAL_GUARD(fn(ctx, rep, out_fd, in_fd, err));
    if (in_sb != NULL) {
        DCMSEAL_ENSURE(fstat(in_fd, &now) == 0 && now.st_size == in_sb->st_size &&
                           same_time(now.st_mtim, in_sb->st_mtim),
                       err, DCMSEAL_E_IO, "changed while being read; %s",
                       in_place ? "left as it is" : "no output written");
        struct timespec times[2] = {in_sb->st_atim, in_sb->st_mtim};
        if (restore != NULL)
            times[0] = times[1] = (struct timespec){(time_t)restore->mtime_sec,
                                                    (long)restore->mtime_nsec};
        DCMSEAL_ENSURE(futimens(out_fd, times) == 0, err, DCMSEAL_E_IO,
                       "cannot set the time of %s: %s", out_name, strerror(errno));
        if (in_place && fchown(out_fd, in_sb->st_uid, in_sb->st_gid) != 0 && errno != EPERM)
            st = dcmseal_fail(err, DCMSEAL_E_IO, "cannot set the owner of %s: %s", out_name,
                              strerror(errno));
        DCMSEAL_GUARD(st);
    }
    if (keep != NULL) {
        *keep = of;
        return DCMSEAL_OK;
    }
    st = dcmseal_outfile_commit(of, err);
    of = NULL;
    if (st != DCMSEAL_OK)
        *culprit = out_name;
out:
    dcmseal_outfile_abort(of);
    return st;
}

/* Runs |fn| from |in_path| to |out_path| ("-": stdin, stdout). The input is
 * only ever read. */
static int run_single(const char *in_path, const char *out_path, int force, object_fn fn,
                      void *ctx, dcmseal_object_report *rep)
{
    dcmseal_error err;
    const char *culprit = in_path;
    int in_fd = 0, rc = EX_OK;
    struct stat in_sb, out_sb;
    const struct stat *in_sbp = NULL;

    if (strcmp(in_path, "-") != 0) {
        in_fd = open(in_path, O_RDONLY | O_CLOEXEC);
        if (in_fd < 0) {
            fprintf(stderr, "dcmseal: %s: cannot open: %s\n", in_path, strerror(errno));
            return EX_IOERR;
        }
        if (fstat(in_fd, &in_sb) == 0 && S_ISREG(in_sb.st_mode)) {
            in_sbp = &in_sb;
            if (stat(out_path, &out_sb) == 0 && out_sb.st_dev == in_sb.st_dev &&
                out_sb.st_ino == in_sb.st_ino) {
                close(in_fd);
                return cli_usage_error("%s: output is the input; use --in-place to "
                                       "replace it", in_path);
            }
        }
    }
    if (strcmp(out_path, "-") != 0) {
        dcmseal_outfile_t *of;
        if (dcmseal_outfile_open(&of, out_path, new_mode(in_sbp, 0), force, &err) != DCMSEAL_OK)
            rc = cli_report(out_path, &err);
        else if (transform(of, out_path, 0, in_fd, in_sbp, NULL, fn, ctx, rep, &culprit, NULL,
                           &err) != DCMSEAL_OK)
            rc = cli_report(culprit, &err);
    } else if (fn(ctx, rep, STDOUT_FILENO, in_fd, &err) != DCMSEAL_OK) {
        rc = cli_report(in_path, &err);
    } else if (fflush(stdout) != 0 ||
               (fsync(STDOUT_FILENO) != 0 && errno != EINVAL && errno != EROFS)) {
        fprintf(stderr, "dcmseal: -: write failed: %s\n", strerror(errno));
        rc = EX_IOERR;
    }
    if (in_fd != 0)
        close(in_fd);
    return rc;
}

/* Token, session and key ring for a one-file command. */
/* With |for_wrap|, the ring also wraps new objects (see cli_wrap_key). */
int cli_ring_open(cli_ring *r, const cli_opts *o, int for_wrap, const char *what)
{
    dcmseal_error err;
    int rc = cli_token_open(&r->tok, o->token, what);
    r->ring = NULL;
    if (rc != EX_OK)
        return rc;
    const char *key = cli_wrap_key(o, r->tok.token);
    if (for_wrap && key == NULL) {
        cli_token_close(&r->tok);
        return cli_usage_error("no key: give --key NAME, DCMSEAL_KEY or object= in "
                               "the token URI");
    }
    if (dcmseal_token_ring_new(&r->ring, r->tok.session, for_wrap ? key : NULL, o->oaep,
                               &err) != DCMSEAL_OK) {
        cli_token_close(&r->tok);
        return cli_report(what, &err);
    }
    return EX_OK;
}

void cli_ring_close(cli_ring *r)
{
    dcmseal_token_ring_free(r->ring);
    cli_token_close(&r->tok);
}

/* "DICOM object, key 'k' v2, RSA-OAEP sha1" */
static void describe(char *buf, size_t cap, const dcmseal_object_report *rep,
                     const char *note)
{
    snprintf(buf, cap, "%s object, key '%s' v%u, RSA-OAEP %s%s",
             rep->is_dicom ? "DICOM" : "opaque", rep->wrap.kek_name, rep->wrap.kek_version,
             dcmseal_oaep_name(rep->wrap.oaep), note);
}

/* What a one-file command says about an object without an origin proof:
 * that it wrote one (encrypt) or opened one (decrypt). */
static void say_unproven(const char *path, const dcmseal_object_report *rep, int wrote)
{
    if (rep->format_version == 0 || rep->origin != DCMSEAL_ORIGIN_NONE)
        return;
    if (wrote)
        fprintf(stderr, "dcmseal: %s: notice: key '%s' v%u has no origin key: written in "
                        "format v1, without an origin proof (run `dcmseal key upgrade %s`)\n",
                path, rep->wrap.kek_name, rep->wrap.kek_version, rep->wrap.kek_name);
    else
        fprintf(stderr, "dcmseal: %s: notice: no origin proof (format v1): anyone with the "
                        "public half of key '%s' could have made it; `dcmseal key policy %s "
                        "--require-origin` refuses such objects\n",
                path, rep->wrap.kek_name, rep->wrap.kek_name);
}

static void say_single(const char *path, const dcmseal_object_report *rep, const char *note)
{
    char line[320];
    describe(line, sizeof line, rep, note);
    if (cli_verbose)
        fprintf(stderr, "dcmseal: %s: %s\n", path, line);
}

/* ---- One file of a tree ------------------------------------------------------ */

int cli_open_input(const cli_worker *w, const cli_entry *e, int flags, struct stat *sb,
                   cli_result *res)
{
    int fd = cli_entry_open(e, flags, w->o->follow, sb);
    if (fd == -2) {
        /* Replaced by something else since the walk saw it. */
        res->outcome = CLI_IGNORED;
        res->reason = "not a regular file";
    } else if (fd < 0) {
        dcmseal_fail(&res->err, DCMSEAL_E_IO, "cannot open: %s", strerror(errno));
    }
    return fd;
}

int cli_fanout_dir(const char *rel, int dir_fd)
{
    static const char hex[] = "0123456789abcdef";
    const size_t n = strlen(rel);
    if (!((n == 2 || (n == 5 && rel[2] == '/' && strspn(rel + 3, hex) == 2)) &&
          strspn(rel, hex) == 2))
        return 0;
    /* A name alone could be any folder's ("d1", "ab"): its entries decide.
     * A new open file description, not a dup: the walk reads this
     * directory next, from where its own reader stands. */
    int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;
    char prefix[5] = {rel[0], rel[1], n == 5 ? rel[3] : '\0', n == 5 ? rel[4] : '\0', '\0'};
    int seen = 0, fanout = d != NULL;
    if (d == NULL && fd >= 0)
        close(fd);
    while (fanout && (de = readdir(d)) != NULL) {
        const char *e = de->d_name;
        if (e[0] == '.') /* ".", "..", and temporary files of a run cut short */
            continue;
        seen = 1;
        fanout = n == 2 ? strlen(e) == 2 && strspn(e, hex) == 2
                        : strlen(e) == 32 && strspn(e, hex) == 32 && strncmp(e, prefix, 4) == 0;
    }
    if (d != NULL)
        closedir(d);
    return fanout && seen;
}

/* An output that goes to the folder |rel|'s last '/' names below DST (""
 * when none), under the name after it: made for it, and held in |res|
 * (out_dir, out_name) for tree_finish. res->output is its path. -1 (and
 * |res| failed) when it cannot be had. */
static int output_below_root(const cli_worker *w, const char *rel, cli_result *res)
{
    char dirs[PATH_MAX];
    const char *slash = strrchr(rel, '/');
    const size_t n = slash != NULL ? (size_t)(slash - rel) : 0;
    const char *name = slash != NULL ? slash + 1 : rel;
    int err;
    if ((size_t)snprintf(res->output, sizeof res->output, "%s/%s", w->o->out, rel) >=
            sizeof res->output ||
        n >= sizeof dirs || strlen(name) >= sizeof res->out_name) {
        dcmseal_fail(&res->err, DCMSEAL_E_IO, "output path too long");
        return -1;
    }
    memcpy(dirs, rel, n);
    dirs[n] = '\0';
    snprintf(res->out_name, sizeof res->out_name, "%s", name);
    if ((err = cli_batch_out_dir(&res->out_dir, w, dirs)) != 0) {
        res->culprit = res->output;
        dcmseal_fail(&res->err, DCMSEAL_E_IO, "cannot create its folder: %s", strerror(err));
        return -1;
    }
    return cli_dir_fd(res->out_dir);
}

/* The directory a walked file's output goes to: its own in place, else the
 * copy of its directory below -o, where the output has the same name
 * (res->output is then its path, for messages); with --conceal-names the
 * fan-out folder of its concealed name (res->out_name). |lazy| (decrypt):
 * a folder not mirrored ahead (cli_fanout_dir) is made now. -1 (and |res|
 * failed) when there is none. */
static int output_dir(const cli_worker *w, const cli_entry *e, int lazy, cli_result *res)
{
    char hidden[DCMSEAL_CONCEALED_NAME_LEN];
    if (w->o->in_place)
        return cli_dir_fd(e->dir);
    if (w->o->conceal) {
        if (dcmseal_conceal_name(hidden, dcmseal_token_ring_get0_keyring(w->ring), w->wrap_key,
                                 e->rel, &res->err) != DCMSEAL_OK)
            return -1;
        return output_below_root(w, hidden, res);
    }
    if ((size_t)snprintf(res->output, sizeof res->output, "%s/%s", w->o->out, e->rel) >=
        sizeof res->output) {
        dcmseal_fail(&res->err, DCMSEAL_E_IO, "output path too long");
        return -1;
    }
    const cli_dir *out = cli_dir_get0_out(e->dir);
    if (out == NULL && lazy)
        return output_below_root(w, e->rel, res);
    if (out == NULL) {
        res->culprit = res->output;
        dcmseal_fail(&res->err, DCMSEAL_E_IO, "cannot create output: its directory could "
                                              "not be made (see above)");
        return -1;
    }
    return cli_dir_fd(out);
}

/* Whether the object in |sealed_fd| decrypts, every segment authenticated,
 * to exactly the |size| bytes of |plain_fd|. Errors: those of opening the
 * object; DCMSEAL_E_IO reading |plain_fd|. */
static dcmseal_status same_plain_text(int *same, const dcmseal_keyring *ring, int sealed_fd,
                                      int plain_fd, uint64_t size, dcmseal_error *err)
{
    enum { CHUNK = 256 * 1024 };
    dcmseal_status st = DCMSEAL_OK;
    dcmseal_reader_t *r = NULL;
    uint8_t *a = NULL, *b = NULL;
    *same = 0;
    if (size == 0) {
        /* No segment to read: the reader would check no tag. */
        dcmseal_object_report rep;
        DCMSEAL_GUARD(dcmseal_open_fd(&rep, -1, sealed_fd, ring, 0, err));
        *same = rep.plain_bytes == 0;
        goto out;
    }
    DCMSEAL_GUARD(dcmseal_reader_open(&r, sealed_fd, ring, err));
    if (dcmseal_reader_size(r) != size)
        goto out;
    a = OPENSSL_malloc(CHUNK);
    b = OPENSSL_malloc(CHUNK);
    DCMSEAL_ENSURE(a != NULL && b != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    for (uint64_t off = 0; off < size;) {
        size_t n;
        DCMSEAL_GUARD(dcmseal_reader_pread(r, a, CHUNK, off, &n, err));
        ssize_t m = pread(plain_fd, b, n, (off_t)off);
        DCMSEAL_ENSURE(m >= 0, err, DCMSEAL_E_IO, "read failed: %s", strerror(errno));
        if ((size_t)m != n || memcmp(a, b, n) != 0)
            goto out;
        off += n;
    }
    *same = 1;
out:
    if (a != NULL)
        OPENSSL_clear_free(a, CHUNK);
    if (b != NULL)
        OPENSSL_clear_free(b, CHUNK);
    dcmseal_reader_free(r);
    return st;
}

/* Whether |fd| has the plain-text size that the input |in_fd| (whose fstat
 * is |in|) makes: that of |fd| when |out_sealed| (encrypt: the object holds
 * it), else that of |in_fd|'s object. |*sb| is |fd|'s fstat, |*info| the
 * object's header. */
static int same_size(int fd, int out_sealed, int in_fd, const struct stat *in, struct stat *sb,
                     dcmseal_header_info *info, uint64_t *plain)
{
    dcmseal_error err;
    *plain = 0;
    return fstat(fd, sb) == 0 && S_ISREG(sb->st_mode) &&
           dcmseal_inspect_fd(info, plain, out_sealed ? fd : in_fd, &err) == DCMSEAL_OK &&
           *plain == (uint64_t)(out_sealed ? in->st_size : sb->st_size);
}

/* Whether the entry |name| of |dir_fd| (res->output) is what an earlier run
 * made of the input |in|: the only kind of existing output that a run
 * without --force leaves alone. Outputs appear only when complete (they are
 * renamed into place), so the cheap test suffices for a resume: the
 * plain-text size (of the output when |out_sealed|, else of |in_fd|'s
 * object) and the modification time, which every output copies from its
 * input. A rewrap changes an object's time (it rewrites a key slot: backups
 * must see that) and raises its generation: then the object is decrypted
 * and compared with the plain file instead, so that a re-run after a
 * rotation still skips what is done. A file planted with the right size and
 * time would pass, so --verify-existing compares content always. Content is
 * compared through |ring|; NULL where there is no token session, and then
 * such an output is left for a re-run to check. Anything else there is
 * refused: it is someone's data. */
static int already_done(const cli_opts *o, const dcmseal_keyring *ring, int dir_fd,
                        const char *name, int out_sealed, int in_fd, const struct stat *in,
                        cli_result *res)
{
    dcmseal_header_info info;
    dcmseal_error err;
    uint64_t plain = 0;
    struct stat sb = {0};
    const char *why = "exists and is not an earlier run's output for this input";
    int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0 && errno == ENOENT)
        return 0;
    /* This process's trouble, not something in the way. */
    if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == EIO)) {
        res->culprit = res->output;
        dcmseal_fail(&res->err, DCMSEAL_E_IO, "cannot open: %s", strerror(errno));
        return -1;
    }
    const int sealed_fd = out_sealed ? fd : in_fd, plain_fd = out_sealed ? in_fd : fd;
    int same = fd >= 0 && same_size(fd, out_sealed, in_fd, in, &sb, &info, &plain);
    const int rotated = same && !same_time(sb.st_mtim, in->st_mtim);
    if (rotated && info.generation <= 1)
        same = 0;
    if (same && (o->verify_existing || rotated) && ring == NULL) {
        same = 0;
        why = "appeared while this run was writing it (run again to check it)";
    } else if (same && (o->verify_existing || rotated)) {
        dcmseal_status st = same_plain_text(&same, ring, sealed_fd, plain_fd, plain, &err);
        /* An output that does not open is not ours; an input that does not
         * open, or a key that cannot be used, is an error of its own. */
        if (st != DCMSEAL_OK &&
            (!out_sealed || (st != DCMSEAL_E_AUTH && st != DCMSEAL_E_FORMAT))) {
            close(fd);
            res->err = err;
            res->culprit = out_sealed ? res->output : NULL;
            return -1;
        }
        if (!same && !rotated)
            why = "exists with this input's size and time, but not its content "
                  "(--verify-existing)";
    }
    const int dir = fd >= 0 && S_ISDIR(sb.st_mode);
    if (fd >= 0)
        close(fd);
    if (same) {
        res->outcome = CLI_SKIPPED;
        res->reason = o->verify_existing ? "already done (content verified)" : "already done";
        res->bytes = plain;
        return 1;
    }
    res->culprit = res->output;
    if (dir)
        dcmseal_fail(&res->err, DCMSEAL_E_USAGE, "a directory is in the way of the output");
    else
        dcmseal_fail(&res->err, DCMSEAL_E_USAGE, "%s (use --force to replace it)", why);
    return -1;
}

/* Work in place, when the commit found the file replaced: whether another
 * process put there what this one was making of it (two runs over one
 * tree). The file then counts as done. Not with --verify-existing, which
 * leaves that to a re-run that can check it. */
static void done_meanwhile(const cli_opts *o, const cli_entry *e, int out_sealed,
                           cli_result *res)
{
    struct stat now;
    dcmseal_header_info info;
    uint64_t plain;
    int fd = openat(cli_dir_fd(e->dir), e->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return;
    if (!o->verify_existing && same_size(fd, out_sealed, res->fd, &res->sb, &now, &info, &plain) &&
        (now.st_dev != res->sb.st_dev || now.st_ino != res->sb.st_ino) &&
        same_time(now.st_mtim, res->sb.st_mtim)) {
        res->outcome = CLI_SKIPPED;
        res->reason = "done meanwhile by another run";
        res->bytes = plain;
    }
    close(fd);
}

/* What the report of a file's work puts into its result, for the summary
 * and --report. */
static void result_of(cli_result *res, const dcmseal_object_report *rep)
{
    res->kind = rep->is_dicom;
    res->bytes = rep->plain_bytes;
    res->wrap = rep->wrap;
    res->format_version = rep->format_version;
    res->origin = rep->origin;
}

/* transform for a file of a tree, into the entry |name| of |dir_fd|. The
 * output is left pending, complete but not yet durable, for tree_finish;
 * |res| then owns |in_fd|. A restored concealed file gets the mode and time
 * of |restore|, and counts as done by that time, not the object's. */
static void tree_transform(const cli_worker *w, int dir_fd, const char *name, int out_sealed,
                           int in_fd, const struct stat *in_sb, const dcmseal_meta *restore,
                           object_fn fn, void *ctx, cli_result *res)
{
    const cli_opts *o = w->o;
    const char *out = o->in_place ? NULL : res->output;
    dcmseal_object_report rep;
    dcmseal_outfile_t *of;
    struct stat want = *in_sb;
    if (restore != NULL) {
        want.st_mode = (want.st_mode & ~07777u) | restore->mode;
        want.st_mtim = (struct timespec){(time_t)restore->mtime_sec, (long)restore->mtime_nsec};
    }
    if (dcmseal_outfile_openat(&of, dir_fd, name, new_mode(&want, o->in_place),
                               o->force || o->in_place, &res->err) != DCMSEAL_OK) {
        res->culprit = out;
        if (res->err.status == DCMSEAL_E_USAGE && !o->force && !o->in_place)
            already_done(o, dcmseal_token_ring_get0_keyring(w->ring), dir_fd, name,
                         out_sealed, in_fd, &want, res);
        return;
    }
    /* In place, the name is replaced only while it is still the file read. */
    if (o->in_place)
        dcmseal_outfile_set_target(of, (uint64_t)in_sb->st_dev, (uint64_t)in_sb->st_ino);
    if (transform(of, out ? out : name, o->in_place, in_fd, in_sb, restore, fn, ctx, &rep,
                  &res->culprit, &res->out_file, &res->err) != DCMSEAL_OK)
        return;
    res->pending = 1;
    res->fd = in_fd;
    res->sb = want;
    result_of(res, &rep);
    describe(res->line, sizeof res->line, &rep, "");
    res->say = CLI_SAY_VERBOSE;
    if (out_sealed && !rep.is_dicom) {
        res->say = CLI_SAY_NOTICE;
        snprintf(res->line, sizeof res->line, "encrypted as an opaque object (%s)",
                 rep.not_dicom_reason);
    } else if (out_sealed && rep.notice[0] != '\0') {
        res->say = CLI_SAY_NOTICE;
        snprintf(res->line, sizeof res->line, "encrypted (DICOM); note: %s", rep.notice);
    }
}

/* The outputs of a tree run committed together (--durability group, the
 * default): one flush of their data, then their names, then one flush of
 * each directory, whatever the number of files that finish at once. A
 * group gathers for at most CLI_GROUP_WAIT_MS, CLI_GROUP_FILES files or
 * GROUP_BYTES of data. --durability file commits each output on its own. */
#define GROUP_BYTES (64u << 20)

/* cli_batch_run for encrypt and decrypt, with the durability asked for. */
static int tree_run(cli_batch_cmd cmd, const cli_opts *o)
{
    if (!o->durability_file) {
        cmd.group = CLI_GROUP_FILES;
        cmd.group_bytes = GROUP_BYTES;
        cmd.group_wait_ms = CLI_GROUP_WAIT_MS;
    }
    return cli_batch_run(&cmd, o);
}

/* cli_batch_cmd.finish of encrypt and decrypt: commits what tree_transform
 * left pending, all of |res| together (their data durable, their names,
 * their directories durable; then the directories above each that this run
 * made). Another process working on the same tree may have put an output
 * in place first (or, in place, replaced the file): when what it made is
 * what this one would have, the file counts as done (skipped). */
static void tree_finish(const cli_opts *o, cli_entry *const *e, cli_result *const *res,
                        size_t n, int out_sealed)
{
    dcmseal_outfile_t *files[CLI_GROUP_FILES] = {NULL};
    dcmseal_error *errs[CLI_GROUP_FILES] = {NULL};
    for (size_t i = 0; i < n; i++) { /* n <= CLI_GROUP_FILES: cli_batch_cmd.group */
        files[i] = res[i]->out_file;
        errs[i] = &res[i]->err;
        res[i]->out_file = NULL;
    }
    (void)dcmseal_outfile_commit_all(files, n, errs);
    for (size_t i = 0; i < n; i++) {
        cli_result *r = res[i];
        cli_dir *out_dir = o->in_place ? NULL
                           : r->out_dir ? r->out_dir : cli_dir_get0_out(e[i]->dir);
        int err;
        if (r->err.status == DCMSEAL_OK) {
            if (out_dir == NULL || (err = cli_dir_durable(out_dir)) == 0)
                r->outcome = CLI_DONE;
            else
                dcmseal_fail(&r->err, DCMSEAL_E_IO, "fsync of a directory above it failed: %s",
                             strerror(err));
        }
        if (r->outcome != CLI_DONE) {
            r->culprit = o->in_place ? NULL : r->output;
            r->kind = -1;
            memset(&r->wrap, 0, sizeof r->wrap);
            r->say = CLI_SAY_NONE;
            if (r->err.status == DCMSEAL_E_USAGE && !o->force && !o->in_place)
                already_done(o, NULL, cli_dir_fd(out_dir),
                             r->out_dir ? r->out_name : e[i]->name, out_sealed, r->fd, &r->sb,
                             r);
            else if (o->in_place)
                done_meanwhile(o, e[i], out_sealed, r);
        }
        close(r->fd);
        r->fd = -1;
        cli_dir_unref(r->out_dir);
        r->out_dir = NULL;
    }
}

static void encrypt_finish(const cli_opts *o, cli_entry *const *e, cli_result *const *res,
                           size_t n)
{
    tree_finish(o, e, res, n, 1);
}

static void decrypt_finish(const cli_opts *o, cli_entry *const *e, cli_result *const *res,
                           size_t n)
{
    tree_finish(o, e, res, n, 0);
}

/* What encrypt_one starts with: the directory the output goes to, the
 * input open for reading, and whether it starts like an encrypted object. */
static int open_pair(const cli_worker *w, const cli_entry *e, struct stat *sb, int *out_dir,
                     int *sealed, cli_result *res)
{
    uint8_t head[16]; /* enough for the magic */
    *out_dir = output_dir(w, e, 0, res);
    int fd = *out_dir >= 0 ? cli_open_input(w, e, 0, sb, res) : -1;
    ssize_t n = fd >= 0 ? pread(fd, head, sizeof head, 0) : -1;
    *sealed = n > 0 && dcmseal_is_sealed(head, (size_t)n);
    return fd;
}

/* The name of a walked file's output in the directory output_dir gave. */
static const char *output_name(const cli_entry *e, const cli_result *res)
{
    return res->out_dir != NULL ? res->out_name : e->name;
}

static void encrypt_one(cli_worker *w, const cli_entry *e, cli_result *res)
{
    const cli_opts *o = w->o;
    const dcmseal_keyring *ring = dcmseal_token_ring_get0_keyring(w->ring);
    dcmseal_header_info info;
    dcmseal_object_report rep;
    dcmseal_error err;
    struct stat sb;
    int out_dir, sealed, fd = open_pair(w, e, &sb, &out_dir, &sealed, res);
    if (fd < 0)
        return;
    const char *name = output_name(e, res);
    if (o->in_place && sealed) {
        /* Encrypting it again would bury the object under a second layer;
         * a damaged one needs a human. --verify-existing authenticates it
         * all, where without it the header has to do. */
        dcmseal_status st = dcmseal_inspect_fd(&info, &res->bytes, fd, &err);
        if (st == DCMSEAL_OK && o->verify_existing)
            st = dcmseal_open_fd(&rep, -1, fd, ring, 1, &err);
        if (st == DCMSEAL_OK) {
            res->outcome = CLI_SKIPPED;
            res->reason = o->verify_existing ? "already encrypted (verified)"
                                             : "already encrypted";
            res->kind = info.is_dicom;
            res->wrap = info.wrap;
        } else {
            dcmseal_fail(&res->err, err.status, "an encrypted object, but %s; left as it is",
                         err.message);
        }
    } else if (o->force || o->in_place ||
               already_done(o, ring, out_dir, name, 1, fd, &sb, res) == 0) {
        /* A concealed name hides the path: the object keeps it, with the
         * mode and time, for decrypt -r to restore (FORMAT.md). */
        dcmseal_meta meta = {.mode = (uint32_t)(sb.st_mode & 0777),
                             .mtime_sec = (int64_t)sb.st_mtim.tv_sec,
                             .mtime_nsec = (uint32_t)sb.st_mtim.tv_nsec};
        snprintf(meta.path, sizeof meta.path, "%s", e->rel);
        const dcmseal_seal_opts so = {
            .keyring = ring,
            .segment_size = o->segment_size,
            .strict = o->strict,
            .meta = o->conceal ? &meta : NULL,
        };
        tree_transform(w, out_dir, name, 1, fd, &sb, NULL, seal_fn, (void *)&so, res);
    }
    if (!res->pending)
        close(fd);
}

/* An object that names its original file (a concealed tree): it goes back
 * to that path below -o, with that mode and time, into folders made
 * relative to DST's descriptor (cli_batch_out_dir), never by path. Only the
 * opened object knows the path, so even a re-run that finds it done
 * unwraps it. */
static void decrypt_concealed(cli_worker *w, int fd, const struct stat *sb, cli_result *res)
{
    const cli_opts *o = w->o;
    const dcmseal_keyring *ring = dcmseal_token_ring_get0_keyring(w->ring);
    dcmseal_opening_t *op = NULL;
    if (dcmseal_open_fd_begin(&op, fd, ring, &res->err) != DCMSEAL_OK)
        return;
    dcmseal_meta meta = *dcmseal_opening_get0_meta(op);
    snprintf(res->original, sizeof res->original, "%s", meta.path);
    struct stat want = *sb;
    want.st_mtim = (struct timespec){(time_t)meta.mtime_sec, (long)meta.mtime_nsec};
    int out_dir = output_below_root(w, meta.path, res);
    if (out_dir >= 0 &&
        (o->force || already_done(o, ring, out_dir, res->out_name, 0, fd, &want, res) == 0))
        tree_transform(w, out_dir, res->out_name, 0, fd, sb, &meta, finish_fn, &op, res);
    dcmseal_opening_abort(op);
    OPENSSL_cleanse(&meta, sizeof meta);
}

static void decrypt_one(cli_worker *w, const cli_entry *e, cli_result *res)
{
    const cli_opts *o = w->o;
    const dcmseal_keyring *ring = dcmseal_token_ring_get0_keyring(w->ring);
    dcmseal_header_info info;
    uint8_t head[16]; /* enough for the magic */
    struct stat sb;
    int out_dir;
    /* Where the output goes is known only once the header says whether the
     * object names its original file: opened first, then placed. */
    int fd = cli_open_input(w, e, 0, &sb, res);
    if (fd < 0)
        return;
    ssize_t n = 0;
    if (o->in_place && !((n = pread(fd, head, sizeof head, 0)) > 0 &&
                         dcmseal_is_sealed(head, (size_t)n))) {
        res->outcome = CLI_SKIPPED;
        res->reason = "not encrypted";
        res->bytes = (uint64_t)sb.st_size;
    } else if (dcmseal_inspect_fd(&info, NULL, fd, &res->err) != DCMSEAL_OK) {
        /* not an object: |res| says why */
    } else if (info.has_meta && !o->in_place) {
        decrypt_concealed(w, fd, &sb, res);
    } else if ((out_dir = output_dir(w, e, 1, res)) >= 0 &&
               (o->force || o->in_place ||
                already_done(o, ring, out_dir, output_name(e, res), 0, fd, &sb, res) == 0)) {
        tree_transform(w, out_dir, output_name(e, res), 0, fd, &sb, NULL, open_fn, (void *)ring,
                       res);
    }
    if (!res->pending)
        close(fd);
}

static void verify_one(cli_worker *w, const cli_entry *e, cli_result *res)
{
    dcmseal_object_report rep;
    struct stat sb;
    int fd = cli_open_input(w, e, 0, &sb, res);
    if (fd < 0)
        return;
    dcmseal_opening_t *op = NULL;
    dcmseal_status st = dcmseal_open_fd_begin(&op, fd, dcmseal_token_ring_get0_keyring(w->ring),
                                              &res->err);
    if (st == DCMSEAL_OK) {
        /* For --report: the name a concealed object stands for. */
        const dcmseal_meta *m = dcmseal_opening_get0_meta(op);
        if (m != NULL)
            snprintf(res->original, sizeof res->original, "%s", m->path);
        st = dcmseal_open_fd_finish(op, &rep, -1, 1, &res->err);
    }
    if (st == DCMSEAL_OK) {
        res->outcome = CLI_DONE;
        result_of(res, &rep);
        res->say = CLI_SAY_STDOUT;
        snprintf(res->line, sizeof res->line, "OK (%s, %s, key '%s' v%u)",
                 rep.is_dicom ? "DICOM identity matches" : "opaque",
                 rep.origin == DCMSEAL_ORIGIN_VERIFIED ? "origin verified" : "no origin proof",
                 rep.wrap.kek_name, rep.wrap.kek_version);
    }
    close(fd);
}

/* ---- Commands ----------------------------------------------------------------- */

int cli_cmd_encrypt(const cli_opts *o)
{
    static const cli_batch_cmd cmd = {.name = "encrypt",
                                      .done = "encrypted",
                                      .skipped = "already done",
                                      .wrap = 1,
                                      .counts_bytes = 1,
                                      .one = encrypt_one,
                                      .finish = encrypt_finish};
    cli_ring r;
    dcmseal_object_report rep;
    int rc;
    read_umask();
    if (o->conceal && (!o->recursive || o->out == NULL || o->in_place))
        return cli_usage_error("encrypt: --conceal-names takes -r SRC -o DST");
    if (o->recursive || o->in_place)
        return o->nargs < 1 ? cli_usage_error("encrypt: no input") : tree_run(cmd, o);
    if (o->verify_existing || (o->given & OPT_DURABILITY))
        return cli_usage_error("encrypt: --%s is for -r and --in-place",
                               o->verify_existing ? "verify-existing" : "durability");
    if (o->nargs != 1 || o->out == NULL)
        return cli_usage_error("encrypt takes one input and -o OUTPUT (or -r, --in-place)");
    if ((rc = cli_ring_open(&r, o, 1, o->args[0])) != EX_OK)
        return rc;
    const dcmseal_seal_opts so = {
        .keyring = dcmseal_token_ring_get0_keyring(r.ring),
        .segment_size = o->segment_size,
        .strict = o->strict,
    };
    rc = run_single(o->args[0], o->out, o->force, seal_fn, (void *)&so, &rep);
    if (rc == EX_OK) {
        if (!rep.is_dicom)
            fprintf(stderr, "dcmseal: %s: encrypted as an opaque object (%s)\n", o->args[0],
                    rep.not_dicom_reason);
        else if (rep.notice[0] != '\0')
            fprintf(stderr, "dcmseal: %s: encrypted (DICOM); note: %s\n", o->args[0],
                    rep.notice);
        say_unproven(o->args[0], &rep, 1);
        say_single(o->args[0], &rep,
                   o->oaep == DCMSEAL_OAEP_AUTO && rep.wrap.oaep == DCMSEAL_OAEP_SHA1
                       ? " (fallback: the token refused SHA-256)" : "");
    }
    cli_ring_close(&r);
    return rc;
}

int cli_cmd_decrypt(const cli_opts *o)
{
    static const cli_batch_cmd cmd = {.name = "decrypt",
                                      .done = "decrypted",
                                      .skipped = "already done",
                                      .counts_bytes = 1,
                                      .one = decrypt_one,
                                      .finish = decrypt_finish};
    cli_ring r;
    dcmseal_object_report rep;
    int rc;
    read_umask();
    if (o->recursive || o->in_place)
        return o->nargs < 1 ? cli_usage_error("decrypt: no input") : tree_run(cmd, o);
    if (o->verify_existing || (o->given & OPT_DURABILITY))
        return cli_usage_error("decrypt: --%s is for -r and --in-place",
                               o->verify_existing ? "verify-existing" : "durability");
    if (o->nargs != 1 || o->out == NULL)
        return cli_usage_error("decrypt takes one input and -o OUTPUT (or -r, --in-place)");
    if ((rc = cli_ring_open(&r, o, 0, o->args[0])) != EX_OK)
        return rc;
    rc = run_single(o->args[0], o->out, o->force, open_fn,
                    (void *)dcmseal_token_ring_get0_keyring(r.ring), &rep);
    if (rc == EX_OK) {
        say_unproven(o->args[0], &rep, 0);
        say_single(o->args[0], &rep, "");
    }
    cli_ring_close(&r);
    return rc;
}

int cli_cmd_verify(const cli_opts *o)
{
    static const cli_batch_cmd cmd = {.name = "verify",
                                      .done = "verified",
                                      .skipped = "",
                                      .counts_bytes = 1,
                                      .one = verify_one};
    if (o->nargs < 1)
        return cli_usage_error("verify takes one or more files");
    return cli_batch_run(&cmd, o);
}
