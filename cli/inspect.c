/* inspect: the header of encrypted objects, without the token; with it,
 * also their origin proof and the original name of a concealed one. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"

static const char *slot_state(int s) { return s == 1 ? "valid" : s == 0 ? "empty" : "damaged"; }

/* Reads the preamble of |fd| into |pre| and the object's size: the file's,
 * or, for a pipe, what is left of the stream, read to its end. */
static int read_object(int fd, uint8_t pre[DCMSEAL_PREAMBLE_LEN], size_t *have, uint64_t *size)
{
    struct stat sb;
    uint8_t rest[65536];
    ssize_t n = 1;
    *have = 0;
    while (*have < DCMSEAL_PREAMBLE_LEN &&
           (n = read(fd, pre + *have, DCMSEAL_PREAMBLE_LEN - *have)) != 0) {
        if (n < 0 && errno != EINTR)
            return -1;
        *have += n > 0 ? (size_t)n : 0;
    }
    if (fstat(fd, &sb) != 0)
        return -1;
    if (S_ISREG(sb.st_mode) && fd != STDIN_FILENO) {
        *size = (uint64_t)sb.st_size;
        return 0;
    }
    *size = *have;
    while (n != 0 && (n = read(fd, rest, sizeof rest)) != 0) {
        if (n < 0 && errno != EINTR)
            return -1;
        *size += n > 0 ? (uint64_t)n : 0;
    }
    return 0;
}

/* What opening an object with the token adds (--token). */
typedef struct opened {
    int done;          /* the object was opened: its origin is known */
    int has_meta;      /* it names its original file */
    dcmseal_meta meta; /* which */
    char when[64];     /* meta's time, "2024-01-31T12:00:00.123456789Z" */
    char label[33];    /* of the token that checked the proof */
} opened;

/* Opens the object in |fd| (origin proof checked, DEK unwrapped, metadata
 * block opened) without decrypting its payload; |*h| then says VERIFIED or
 * NONE. Returns EX_OK or the exit code, reported. */
static int open_object(opened *op, dcmseal_header_info *h, const cli_ring *r, int fd,
                       const char *path)
{
    dcmseal_error err;
    dcmseal_reader_t *rd = NULL;
    struct tm tm;
    char day[32] = "?";
    if (dcmseal_reader_open(&rd, fd, dcmseal_token_ring_get0_keyring(r->ring), &err) !=
        DCMSEAL_OK)
        return cli_report(path, &err);
    *h = *dcmseal_reader_get0_header(rd);
    const dcmseal_meta *m = dcmseal_reader_get0_meta(rd);
    op->done = 1;
    op->has_meta = m != NULL;
    if (m != NULL) {
        const time_t t = (time_t)m->mtime_sec;
        op->meta = *m;
        if (gmtime_r(&t, &tm) != NULL)
            strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(op->when, sizeof op->when, "%s.%09uZ", day, (unsigned)m->mtime_nsec);
    }
    snprintf(op->label, sizeof op->label, "%s", dcmseal_token_get0_label(r->tok.token));
    dcmseal_reader_free(rd);
    return EX_OK;
}

static void print_json(FILE *f, const char *path, const dcmseal_header_info *h, uint64_t plain,
                       uint64_t size, const opened *op)
{
    fputs("{\"file\":", f);
    cli_json_string(f, path);
    fprintf(f, ",\"format_version\":%u,\"origin\":\"%s\",\"concealed\":%s", h->version,
            cli_origin_name(h->origin), h->has_meta ? "true" : "false");
    if (op->has_meta) {
        fputs(",\"original\":{\"path\":", f);
        cli_json_string(f, op->meta.path);
        fprintf(f, ",\"mode\":\"%04o\",\"mtime\":\"%s\"}", (unsigned)op->meta.mode, op->when);
    }
    fprintf(f, ",\"kind\":\"%s\",\"key\":{\"name\":", h->is_dicom ? "dicom" : "opaque");
    cli_json_string(f, h->wrap.kek_name);
    fprintf(f, ",\"version\":%u,\"oaep\":\"%s\",\"fingerprint\":\"", h->wrap.kek_version,
            dcmseal_oaep_name(h->wrap.oaep));
    cli_hex(f, h->wrap.kek_fingerprint, sizeof h->wrap.kek_fingerprint);
    fprintf(f, "\"},\"slot\":{\"active\":%d,\"generation\":%llu,\"other\":\"%s\"},"
               "\"segment_size\":%u,\"plain_bytes\":%llu,\"sealed_bytes\":%llu}\n",
            h->active_slot, (unsigned long long)h->generation, slot_state(h->other_slot_state),
            h->segment_size, (unsigned long long)plain, (unsigned long long)size);
}

static void print_text(FILE *f, const char *path, const dcmseal_header_info *h, uint64_t plain,
                       uint64_t size, const opened *op)
{
    fprintf(f, "file:            %s\n", path);
    fprintf(f, "format:          dcmseal v%u\n", h->version);
    if (h->origin == DCMSEAL_ORIGIN_VERIFIED)
        fprintf(f, "origin proof:    verified in token '%s'\n", op->label);
    else if (h->origin == DCMSEAL_ORIGIN_PRESENT)
        fputs("origin proof:    present, not checked (--token checks it)\n", f);
    else
        fprintf(f, "origin proof:    none (format v1%s)\n",
                op->done ? "; accepted: the key does not require one" : "");
    if (op->has_meta)
        fprintf(f, "original name:   %s (mode %04o, modified %s)\n", op->meta.path,
                (unsigned)op->meta.mode, op->when);
    else if (h->has_meta)
        fputs("name:            concealed; the original is in the encrypted metadata "
              "(--token shows it)\n", f);
    fprintf(f, "object:          %s\n",
            h->is_dicom ? "DICOM (identity bound)" : "opaque (no DICOM identity)");
    fprintf(f, "key:             %s v%u\n", h->wrap.kek_name, h->wrap.kek_version);
    fputs("key fingerprint: sha256:", f);
    cli_hex(f, h->wrap.kek_fingerprint, sizeof h->wrap.kek_fingerprint);
    fprintf(f, "\nwrap mechanism:  RSA-OAEP %s\n", dcmseal_oaep_name(h->wrap.oaep));
    fprintf(f, "key slot:        %c, generation %llu (other slot %s)\n", 'A' + h->active_slot,
            (unsigned long long)h->generation, slot_state(h->other_slot_state));
    fprintf(f, "segment size:    %u\n", h->segment_size);
    fprintf(f, "plain size:      %llu\n", (unsigned long long)plain);
    fprintf(f, "sealed size:     %llu\n", (unsigned long long)size);
}

/* One file ("-": stdin); its exit code. With |r|, the object is opened too
 * (a file only: the reader reads where it needs to). */
static int inspect_one(const char *path, int json, int first, const cli_ring *r)
{
    opened op = {0};
    dcmseal_error err;
    dcmseal_header_info h;
    uint8_t pre[DCMSEAL_PREAMBLE_LEN];
    uint64_t plain = 0, size = 0;
    size_t have = 0;
    const int is_stdin = strcmp(path, "-") == 0;
    int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "dcmseal: %s: cannot open: %s\n", path, strerror(errno));
        return EX_IOERR;
    }
    int bad = read_object(fd, pre, &have, &size);
    int why = errno, rc = EX_OK;
    if (bad) {
        fprintf(stderr, "dcmseal: %s: read failed: %s\n", path, strerror(why));
        rc = EX_IOERR;
    } else if (dcmseal_header_inspect(&h, pre, have, &err) != DCMSEAL_OK ||
               dcmseal_object_plaintext_size(&plain, &h, size, &err) != DCMSEAL_OK) {
        rc = cli_report(path, &err);
    } else if (r != NULL) {
        rc = open_object(&op, &h, r, fd, path);
    }
    if (!is_stdin)
        close(fd);
    if (rc == EX_OK && json) {
        print_json(stdout, path, &h, plain, size, &op);
    } else if (rc == EX_OK) {
        if (!first)
            fputc('\n', stdout);
        print_text(stdout, path, &h, plain, size, &op);
    }
    OPENSSL_cleanse(&op, sizeof op);
    return rc;
}

int cli_cmd_inspect(const cli_opts *o)
{
    int rc = EX_OK, printed = 0, stdin_used = 0;
    cli_ring r;
    if (o->nargs < 1)
        return cli_usage_error("inspect takes one or more files (- for stdin)");
    for (int i = 0; i < o->nargs; i++) {
        if (strcmp(o->args[i], "-") == 0 && stdin_used++)
            return cli_usage_error("inspect: - (stdin) given twice");
    }
    /* Opening an object reads it where the reader needs: not a pipe. */
    if (o->token != NULL && stdin_used)
        return cli_usage_error("inspect: --token opens files, not - (stdin)");
    if (o->token != NULL && (rc = cli_ring_open(&r, o, 0, o->args[0])) != EX_OK)
        return rc;
    for (int i = 0; i < o->nargs; i++) {
        int one = inspect_one(o->args[i], o->json, !printed, o->token != NULL ? &r : NULL);
        printed += one == EX_OK;
        rc = one > rc ? one : rc; /* the worst of them: EX_IOERR over EX_DATAERR */
    }
    if (o->token != NULL)
        cli_ring_close(&r);
    return rc;
}
