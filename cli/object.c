/* encrypt, decrypt, verify: one object per file. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
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

static int same_time(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/* Writes what |fn| makes of |in_fd| to |out_path|, which appears only when
 * complete. The output gets the input's permission bits and modification
 * time (|in_sb| NULL: a pipe; 0600 and now), and when it replaces the input
 * itself (|in_place|) its owner too, where we may. If the input changes
 * while it is read, nothing is written: the output would match neither
 * version. With |keep|, the complete output is handed over there instead of
 * committed (dcmseal_outfile_commit is then the caller's). On failure
 * |*culprit| is the output when that is what failed. */
static dcmseal_status transform(const char *out_path, int replace, int in_place, int in_fd,
                                const struct stat *in_sb, object_fn fn, void *ctx,
                                dcmseal_object_report *rep, const char **culprit,
                                dcmseal_outfile_t **keep, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    dcmseal_outfile_t *of = NULL;
    struct stat now;
    if (dcmseal_outfile_open(&of, out_path, in_sb ? in_sb->st_mode & 0777 : 0600, replace,
                             err) != DCMSEAL_OK) {
        *culprit = out_path;
        return err->status;
    }
    int out_fd = dcmseal_outfile_fd(of);
    DCMSEAL_GUARD(fn(ctx, rep, out_fd, in_fd, err));
    if (in_sb != NULL) {
        DCMSEAL_ENSURE(fstat(in_fd, &now) == 0 && now.st_size == in_sb->st_size &&
                           same_time(now.st_mtim, in_sb->st_mtim),
                       err, DCMSEAL_E_IO, "changed while being read; %s",
                       in_place ? "left as it is" : "no output written");
        const struct timespec times[2] = {in_sb->st_atim, in_sb->st_mtim};
        DCMSEAL_ENSURE(futimens(out_fd, times) == 0, err, DCMSEAL_E_IO,
                       "cannot set the time of %s: %s", out_path, strerror(errno));
        if (in_place && fchown(out_fd, in_sb->st_uid, in_sb->st_gid) != 0 && errno != EPERM)
            st = dcmseal_fail(err, DCMSEAL_E_IO, "cannot set the owner of %s: %s", out_path,
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
        *culprit = out_path;
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
        if (transform(out_path, force, 0, in_fd, in_sbp, fn, ctx, rep, &culprit, NULL, &err) !=
            DCMSEAL_OK)
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
typedef struct cli_ring {
    cli_token tok;
    dcmseal_token_ring_t *ring;
} cli_ring;

/* With |for_wrap|, the ring also wraps new objects (see cli_wrap_key). */
static int ring_open(cli_ring *r, const cli_opts *o, int for_wrap, const char *what)
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

static void ring_close(cli_ring *r)
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

static void say_single(const char *path, const dcmseal_object_report *rep, const char *note)
{
    char line[320];
    describe(line, sizeof line, rep, note);
    if (cli_verbose)
        fprintf(stderr, "dcmseal: %s: %s\n", path, line);
}

/* ---- One file of a tree ------------------------------------------------------ */

/* Opens a walked file for reading; NULL |res| outcome set on failure. */
static int open_input(const cli_worker *w, const cli_entry *e, int flags, struct stat *sb,
                      cli_result *res)
{
    int fd = open(e->path, flags | O_CLOEXEC | (w->o->follow ? 0 : O_NOFOLLOW));
    if (fd < 0 || fstat(fd, sb) != 0) {
        dcmseal_fail(&res->err, DCMSEAL_E_IO, "cannot open: %s", strerror(errno));
    } else if (!S_ISREG(sb->st_mode)) {
        /* Replaced by something else since the walk saw it. */
        res->outcome = CLI_IGNORED;
        res->reason = "not a regular file";
    } else {
        return fd;
    }
    if (fd >= 0)
        close(fd);
    return -1;
}

/* Where a walked file's output goes: itself in place, else the same relative
 * path below -o. NULL (and |res| failed) when the path is too long. */
static const char *output_path(const cli_worker *w, const cli_entry *e, cli_result *res)
{
    if (w->o->in_place)
        return e->path;
    if ((size_t)snprintf(res->output, sizeof res->output, "%s/%s", w->o->out, e->rel) >=
        sizeof res->output) {
        dcmseal_fail(&res->err, DCMSEAL_E_IO, "output path too long");
        return NULL;
    }
    return res->output;
}

/* Whether the object in |sealed_fd| decrypts to exactly the bytes of
 * |plain_fd|, both |size| long: authenticated segment by segment, through
 * |ring|. Fails |res| when the object cannot be opened at all. */
static int same_content(const dcmseal_keyring *ring, int sealed_fd, int plain_fd, uint64_t size,
                        cli_result *res)
{
    enum { CHUNK = 256 * 1024 };
    dcmseal_reader_t *r = NULL;
    uint8_t *a = malloc(CHUNK), *b = malloc(CHUNK);
    int same = a != NULL && b != NULL &&
               dcmseal_reader_open(&r, sealed_fd, ring, &res->err) == DCMSEAL_OK &&
               dcmseal_reader_size(r) == size;
    for (uint64_t at = 0; same && at < size; at += CHUNK) {
        size_t want = size - at < CHUNK ? (size_t)(size - at) : CHUNK, got = 0;
        same = dcmseal_reader_pread(r, a, want, at, &got, &res->err) == DCMSEAL_OK &&
               got == want && pread(plain_fd, b, want, (off_t)at) == (ssize_t)want &&
               memcmp(a, b, want) == 0;
    }
    dcmseal_reader_free(r);
    if (a != NULL)
        OPENSSL_cleanse(a, CHUNK);
    free(a);
    free(b);
    return same;
}

/* Whether |out| is what an earlier run made of the input |in|: the only
 * kind of existing output that a run without --force leaves alone. Outputs
 * appear only when complete (they are renamed into place), so the check is
 * cheap: the plain-text size (of |out| when |out_sealed|, else of |in_fd|'s
 * object) and the modification time, which every output copies from its
 * input. A rewrap changes an object's time (it rewrites a key slot: backups
 * must see that) and raises its generation: then, given |ring|, the object
 * is decrypted and compared with the plain file instead, so that a re-run
 * after a rotation still skips what is done. Anything else there is
 * refused: it is someone's data. */
static int already_done(const dcmseal_keyring *ring, const char *out, int out_sealed, int in_fd,
                        const struct stat *in, cli_result *res)
{
    dcmseal_header_info info;
    dcmseal_error err;
    uint64_t plain = 0;
    struct stat sb = {0};
    int fd = open(out, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT)
        return 0;
    const int sealed_fd = out_sealed ? fd : in_fd, plain_fd = out_sealed ? in_fd : fd;
    int same = fd >= 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
               dcmseal_inspect_fd(&info, &plain, sealed_fd, &err) == DCMSEAL_OK &&
               plain == (uint64_t)(out_sealed ? in->st_size : sb.st_size);
    if (same && !same_time(sb.st_mtim, in->st_mtim))
        same = ring != NULL && info.generation > 1 &&
               same_content(ring, sealed_fd, plain_fd, plain, res);
    int dir = fd >= 0 && S_ISDIR(sb.st_mode);
    if (fd >= 0)
        close(fd);
    if (same) {
        res->outcome = CLI_SKIPPED;
        res->reason = "already done";
        res->bytes = plain;
        return 1;
    }
    res->culprit = out;
    if (dir)
        dcmseal_fail(&res->err, DCMSEAL_E_USAGE, "a directory is in the way of the output");
    else if (res->err.message[0] == '\0' || res->err.status == DCMSEAL_E_USAGE)
        dcmseal_fail(&res->err, DCMSEAL_E_USAGE,
                     "exists and is not an earlier run's output for %s (use --force to replace "
                     "it)", res->output[0] ? "this input" : "it");
    return -1;
}

/* transform for a file of a tree. The output is left pending, complete but
 * not yet durable, for tree_finish; |res| then owns |in_fd|. */
static void tree_transform(const cli_worker *w, const char *out, int out_sealed, int in_fd,
                          const struct stat *in_sb, object_fn fn, void *ctx,
                          cli_result *res)
{
    const cli_opts *o = w->o;
    dcmseal_object_report rep;
    if (transform(out, o->force || o->in_place, o->in_place, in_fd, in_sb, fn, ctx, &rep,
                  &res->culprit, &res->out_file, &res->err) == DCMSEAL_OK) {
        res->pending = 1;
        res->fd = in_fd;
        res->sb = *in_sb;
        res->kind = rep.is_dicom;
        res->bytes = rep.plain_bytes;
        res->wrap = rep.wrap;
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
    } else if (res->err.status == DCMSEAL_E_USAGE && !o->force && !o->in_place) {
        dcmseal_error_clear(&res->err);
        already_done(dcmseal_token_ring_get0_keyring(w->ring), out, out_sealed, in_fd, in_sb,
                     res);
    }
}

/* cli_batch_cmd.finish of encrypt and decrypt: commits what tree_transform
 * left pending (fsync, link into place, fsync of the directory). Another
 * process working on the same tree may have put the output in place first:
 * when what it made is what this one would have, the file counts as done
 * (skipped). */
static void tree_finish(const cli_opts *o, const cli_entry *e, cli_result *res,
                        int out_sealed)
{
    const char *out = o->in_place ? e->path : res->output;
    dcmseal_outfile_t *of = res->out_file;
    res->out_file = NULL;
    if (dcmseal_outfile_commit(of, &res->err) == DCMSEAL_OK) {
        res->outcome = CLI_DONE;
    } else {
        res->culprit = out;
        res->kind = -1;
        memset(&res->wrap, 0, sizeof res->wrap);
        res->say = CLI_SAY_NONE;
        if (res->err.status == DCMSEAL_E_USAGE && !o->force && !o->in_place) {
            dcmseal_error_clear(&res->err);
            already_done(NULL, out, out_sealed, res->fd, &res->sb, res);
        }
    }
    close(res->fd);
    res->fd = -1;
}

static void encrypt_finish(const cli_opts *o, const cli_entry *e, cli_result *res)
{
    tree_finish(o, e, res, 1);
}

static void decrypt_finish(const cli_opts *o, const cli_entry *e, cli_result *res)
{
    tree_finish(o, e, res, 0);
}

/* What encrypt_one and decrypt_one start with: where the output goes, the
 * input open for reading, and whether it starts like an encrypted object. */
static int open_pair(const cli_worker *w, const cli_entry *e, struct stat *sb,
                     const char **out, int *sealed, cli_result *res)
{
    uint8_t head[16]; /* enough for the magic */
    *out = output_path(w, e, res);
    int fd = *out ? open_input(w, e, O_RDONLY, sb, res) : -1;
    ssize_t n = fd >= 0 ? pread(fd, head, sizeof head, 0) : -1;
    *sealed = n > 0 && dcmseal_is_sealed(head, (size_t)n);
    return fd;
}

static void encrypt_one(cli_worker *w, const cli_entry *e, cli_result *res)
{
    const cli_opts *o = w->o;
    dcmseal_header_info info;
    dcmseal_error err;
    struct stat sb;
    const char *out;
    int sealed, fd = open_pair(w, e, &sb, &out, &sealed, res);
    if (fd < 0)
        return;
    if (o->in_place && sealed) {
        /* Encrypting it again would bury the object under a second layer;
         * a damaged one needs a human. */
        if (dcmseal_inspect_fd(&info, &res->bytes, fd, &err) == DCMSEAL_OK) {
            res->outcome = CLI_SKIPPED;
            res->reason = "already encrypted";
            res->kind = info.is_dicom;
            res->wrap = info.wrap;
        } else {
            dcmseal_fail(&res->err, err.status, "an encrypted object, but %s; left as it is",
                         err.message);
        }
    } else if (o->force || o->in_place ||
               already_done(dcmseal_token_ring_get0_keyring(w->ring), out, 1, fd, &sb, res) ==
                   0) {
        const dcmseal_seal_opts so = {
            .keyring = dcmseal_token_ring_get0_keyring(w->ring),
            .segment_size = o->segment_size,
            .strict = o->strict,
        };
        tree_transform(w, out, 1, fd, &sb, seal_fn, (void *)&so, res);
    }
    if (!res->pending)
        close(fd);
}

static void decrypt_one(cli_worker *w, const cli_entry *e, cli_result *res)
{
    const cli_opts *o = w->o;
    dcmseal_header_info info;
    struct stat sb;
    const char *out;
    int sealed, fd = open_pair(w, e, &sb, &out, &sealed, res);
    if (fd < 0)
        return;
    if (o->in_place && !sealed) {
        res->outcome = CLI_SKIPPED;
        res->reason = "not encrypted";
        res->bytes = (uint64_t)sb.st_size;
    } else if (dcmseal_inspect_fd(&info, NULL, fd, &res->err) == DCMSEAL_OK &&
               (o->force || o->in_place ||
                already_done(dcmseal_token_ring_get0_keyring(w->ring), out, 0, fd, &sb, res) ==
                    0)) {
        tree_transform(w, out, 0, fd, &sb, open_fn,
                       (void *)dcmseal_token_ring_get0_keyring(w->ring), res);
    }
    if (!res->pending)
        close(fd);
}

static void verify_one(cli_worker *w, const cli_entry *e, cli_result *res)
{
    dcmseal_object_report rep;
    struct stat sb;
    int fd = open_input(w, e, O_RDONLY, &sb, res);
    if (fd < 0)
        return;
    if (dcmseal_open_fd(&rep, -1, fd, dcmseal_token_ring_get0_keyring(w->ring), 1,
                        &res->err) == DCMSEAL_OK) {
        res->outcome = CLI_DONE;
        res->kind = rep.is_dicom;
        res->bytes = rep.plain_bytes;
        res->wrap = rep.wrap;
        res->say = CLI_SAY_STDOUT;
        snprintf(res->line, sizeof res->line, "OK (%s, key '%s' v%u)",
                 rep.is_dicom ? "DICOM identity matches" : "opaque", rep.wrap.kek_name,
                 rep.wrap.kek_version);
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
    if (o->recursive || o->in_place)
        return o->nargs < 1 ? cli_usage_error("encrypt: no input") : cli_batch_run(&cmd, o);
    if (o->nargs != 1 || o->out == NULL)
        return cli_usage_error("encrypt takes one input and -o OUTPUT (or -r, --in-place)");
    if ((rc = ring_open(&r, o, 1, o->args[0])) != EX_OK)
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
        say_single(o->args[0], &rep,
                   o->oaep == DCMSEAL_OAEP_AUTO && rep.wrap.oaep == DCMSEAL_OAEP_SHA1
                       ? " (fallback: the token refused SHA-256)" : "");
    }
    ring_close(&r);
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
    if (o->recursive || o->in_place)
        return o->nargs < 1 ? cli_usage_error("decrypt: no input") : cli_batch_run(&cmd, o);
    if (o->nargs != 1 || o->out == NULL)
        return cli_usage_error("decrypt takes one input and -o OUTPUT (or -r, --in-place)");
    if ((rc = ring_open(&r, o, 0, o->args[0])) != EX_OK)
        return rc;
    rc = run_single(o->args[0], o->out, o->force, open_fn,
                    (void *)dcmseal_token_ring_get0_keyring(r.ring), &rep);
    if (rc == EX_OK)
        say_single(o->args[0], &rep, "");
    ring_close(&r);
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
