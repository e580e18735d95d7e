/* encrypt, decrypt, verify, inspect: one object per file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli.h"

typedef dcmseal_status (*object_fn)(void *ctx, dcmseal_object_report *rep, int out_fd,
                                    int in_fd, dcmseal_error *err);

/* Runs |fn| from |in_path| to |out_path| ("-": stdin, stdout). A file output
 * appears only if |fn| succeeds; the input is only ever read. */
static int run_object(const char *in_path, const char *out_path, int force,
                      object_fn fn, void *ctx, dcmseal_object_report *rep)
{
    dcmseal_error err;
    dcmseal_outfile_t *of = NULL;
    int in_fd = 0, out_fd = 1, rc;
    unsigned mode = 0600;
    struct stat in_sb, out_sb;

    if (strcmp(in_path, "-") != 0) {
        in_fd = open(in_path, O_RDONLY | O_CLOEXEC);
        if (in_fd < 0) {
            fprintf(stderr, "dcmseal: %s: cannot open: %s\n", in_path, strerror(errno));
            return EX_IOERR;
        }
        if (fstat(in_fd, &in_sb) == 0 && S_ISREG(in_sb.st_mode)) {
            mode = in_sb.st_mode & 0666;
            if (stat(out_path, &out_sb) == 0 && out_sb.st_dev == in_sb.st_dev &&
                out_sb.st_ino == in_sb.st_ino) {
                close(in_fd);
                return cli_usage_error("%s: output is the input; refusing to replace it",
                                       in_path);
            }
        }
    }
    if (strcmp(out_path, "-") != 0) {
        if (dcmseal_outfile_open(&of, out_path, mode, force, &err) != DCMSEAL_OK) {
            rc = cli_report(out_path, &err);
            goto out;
        }
        out_fd = dcmseal_outfile_fd(of);
    }
    if (fn(ctx, rep, out_fd, in_fd, &err) != DCMSEAL_OK) {
        rc = cli_report(in_path, &err);
        goto out;
    }
    rc = EX_OK;
    if (of != NULL) {
        dcmseal_status st = dcmseal_outfile_commit(of, &err);
        of = NULL;
        if (st != DCMSEAL_OK)
            rc = cli_report(out_path, &err);
    } else if (fflush(stdout) != 0 || (fsync(1) != 0 && errno != EINVAL && errno != EROFS)) {
        fprintf(stderr, "dcmseal: -: write failed: %s\n", strerror(errno));
        rc = EX_IOERR;
    }
out:
    dcmseal_outfile_abort(of);
    if (in_fd != 0)
        close(in_fd);
    return rc;
}

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

/* Token, session and key ring for one command. */
typedef struct cli_ring {
    cli_token tok;
    dcmseal_token_ring_t *ring;
} cli_ring;

/* With |for_wrap|, the ring also wraps new objects under the key named by
 * --key, $DCMSEAL_KEY or the token URI's object= attribute. */
static int ring_open(cli_ring *r, const cli_opts *o, int for_wrap, const char *what)
{
    dcmseal_error err;
    int rc = cli_token_open(&r->tok, o->token, what);
    r->ring = NULL;
    if (rc != EX_OK)
        return rc;
    const char *key = o->key ? o->key : getenv("DCMSEAL_KEY");
    if (key == NULL)
        key = dcmseal_token_get0_object(r->tok.token);
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

static void say_wrap(const char *path, const dcmseal_object_report *rep, const char *note)
{
    if (cli_verbose)
        fprintf(stderr, "dcmseal: %s: %s object, key '%s' v%u, RSA-OAEP %s%s\n", path,
                rep->is_dicom ? "DICOM" : "opaque", rep->wrap.kek_name,
                rep->wrap.kek_version, dcmseal_oaep_name(rep->wrap.oaep), note);
}

int cli_cmd_encrypt(int argc, char **argv)
{
    cli_opts o;
    cli_ring r;
    dcmseal_object_report rep;
    int rc = cli_parse(&o, argc, argv,
                       OPT_TOKEN | OPT_KEY | OPT_OUT | OPT_FORCE | OPT_STRICT |
                           OPT_SEGMENT | OPT_OAEP);
    if (rc != EX_OK)
        return rc;
    if (o.nargs != 1 || o.out == NULL)
        return cli_usage_error("encrypt takes one input and -o OUTPUT");
    if ((rc = ring_open(&r, &o, 1, o.args[0])) != EX_OK)
        return rc;
    const dcmseal_seal_opts so = {
        .keyring = dcmseal_token_ring_get0_keyring(r.ring),
        .segment_size = o.segment_size,
        .strict = o.strict,
    };
    rc = run_object(o.args[0], o.out, o.force, seal_fn, (void *)&so, &rep);
    if (rc == EX_OK) {
        if (!rep.is_dicom)
            fprintf(stderr, "dcmseal: %s: not DICOM (%s); encrypted as an opaque object\n",
                    o.args[0], rep.not_dicom_reason);
        say_wrap(o.args[0], &rep,
                 o.oaep == DCMSEAL_OAEP_AUTO && rep.wrap.oaep == DCMSEAL_OAEP_SHA1
                     ? " (fallback: the token refused SHA-256)" : "");
    }
    ring_close(&r);
    return rc;
}

int cli_cmd_decrypt(int argc, char **argv)
{
    cli_opts o;
    cli_ring r;
    dcmseal_object_report rep;
    int rc = cli_parse(&o, argc, argv, OPT_TOKEN | OPT_OUT | OPT_FORCE);
    if (rc != EX_OK)
        return rc;
    if (o.nargs != 1 || o.out == NULL)
        return cli_usage_error("decrypt takes one input and -o OUTPUT");
    if ((rc = ring_open(&r, &o, 0, o.args[0])) != EX_OK)
        return rc;
    rc = run_object(o.args[0], o.out, o.force, open_fn,
                    (void *)dcmseal_token_ring_get0_keyring(r.ring), &rep);
    if (rc == EX_OK)
        say_wrap(o.args[0], &rep, "");
    ring_close(&r);
    return rc;
}

int cli_cmd_verify(int argc, char **argv)
{
    cli_opts o;
    cli_ring r;
    dcmseal_error err;
    dcmseal_object_report rep;
    int rc = cli_parse(&o, argc, argv, OPT_TOKEN);
    if (rc != EX_OK)
        return rc;
    if (o.nargs < 1)
        return cli_usage_error("verify takes one or more files");
    if ((rc = ring_open(&r, &o, 0, o.nargs == 1 ? o.args[0] : "token")) != EX_OK)
        return rc;
    for (int i = 0; i < o.nargs; i++) {
        const char *path = o.args[i];
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            fprintf(stderr, "dcmseal: %s: cannot open: %s\n", path, strerror(errno));
            rc = EX_IOERR;
            continue;
        }
        if (dcmseal_open_fd(&rep, -1, fd, dcmseal_token_ring_get0_keyring(r.ring), 1,
                            &err) == DCMSEAL_OK)
            printf("%s: OK (%s, key '%s' v%u)\n", path,
                   rep.is_dicom ? "DICOM identity matches" : "opaque",
                   rep.wrap.kek_name, rep.wrap.kek_version);
        else
            rc = cli_report(path, &err);
        close(fd);
    }
    ring_close(&r);
    return rc;
}

static const char *slot_state(int s) { return s == 1 ? "valid" : s == 0 ? "empty" : "damaged"; }

int cli_cmd_inspect(int argc, char **argv)
{
    cli_opts o;
    dcmseal_error err;
    dcmseal_header_info h;
    uint8_t pre[DCMSEAL_PREAMBLE_LEN];
    uint64_t plain = 0;
    struct stat sb;
    int rc = cli_parse(&o, argc, argv, OPT_JSON);
    if (rc != EX_OK)
        return rc;
    if (o.nargs != 1)
        return cli_usage_error("inspect takes one file");
    const char *path = o.args[0];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "dcmseal: %s: cannot open: %s\n", path, strerror(errno));
        return EX_IOERR;
    }
    ssize_t n = pread(fd, pre, sizeof pre, 0);
    int ok = n >= 0 && fstat(fd, &sb) == 0;
    close(fd);
    if (!ok) {
        fprintf(stderr, "dcmseal: %s: read failed: %s\n", path, strerror(errno));
        return EX_IOERR;
    }
    if (dcmseal_header_inspect(&h, pre, (size_t)n, &err) != DCMSEAL_OK ||
        dcmseal_plaintext_size(&plain, (uint64_t)sb.st_size, h.segment_size, &err) !=
            DCMSEAL_OK)
        return cli_report(path, &err);
    FILE *f = stdout;
    if (o.json) {
        fputs("{\"file\":", f);
        cli_json_string(f, path);
        fprintf(f, ",\"format_version\":%u,\"kind\":\"%s\",\"key\":{\"name\":", h.version,
                h.is_dicom ? "dicom" : "opaque");
        cli_json_string(f, h.wrap.kek_name);
        fprintf(f, ",\"version\":%u,\"oaep\":\"%s\",\"fingerprint\":\"", h.wrap.kek_version,
                dcmseal_oaep_name(h.wrap.oaep));
        cli_hex(f, h.wrap.kek_fingerprint, sizeof h.wrap.kek_fingerprint);
        fprintf(f, "\"},\"slot\":{\"active\":%d,\"generation\":%llu,\"other\":\"%s\"},"
                   "\"segment_size\":%u,\"plain_bytes\":%llu,\"sealed_bytes\":%llu}\n",
                h.active_slot, (unsigned long long)h.generation,
                slot_state(h.other_slot_state), h.segment_size, (unsigned long long)plain,
                (unsigned long long)sb.st_size);
    } else {
        fprintf(f, "file:            %s\n", path);
        fprintf(f, "format:          dcmseal v%u\n", h.version);
        fprintf(f, "object:          %s\n",
                h.is_dicom ? "DICOM (identity bound)" : "opaque (no DICOM identity)");
        fprintf(f, "key:             %s v%u\n", h.wrap.kek_name, h.wrap.kek_version);
        fputs("key fingerprint: sha256:", f);
        cli_hex(f, h.wrap.kek_fingerprint, sizeof h.wrap.kek_fingerprint);
        fprintf(f, "\nwrap mechanism:  RSA-OAEP %s\n", dcmseal_oaep_name(h.wrap.oaep));
        fprintf(f, "key slot:        %c, generation %llu (other slot %s)\n",
                'A' + h.active_slot, (unsigned long long)h.generation,
                slot_state(h.other_slot_state));
        fprintf(f, "segment size:    %u\n", h.segment_size);
        fprintf(f, "plain size:      %llu\n", (unsigned long long)plain);
        fprintf(f, "sealed size:     %llu\n", (unsigned long long)sb.st_size);
    }
    return EX_OK;
}
