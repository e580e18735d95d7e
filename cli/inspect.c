/* inspect: the header of encrypted objects, without the token. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

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

static void print_json(FILE *f, const char *path, const dcmseal_header_info *h, uint64_t plain,
                       uint64_t size)
{
    fputs("{\"file\":", f);
    cli_json_string(f, path);
    fprintf(f, ",\"format_version\":%u,\"kind\":\"%s\",\"key\":{\"name\":", h->version,
            h->is_dicom ? "dicom" : "opaque");
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
                       uint64_t size)
{
    fprintf(f, "file:            %s\n", path);
    fprintf(f, "format:          dcmseal v%u\n", h->version);
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

/* One file ("-": stdin); its exit code. */
static int inspect_one(const char *path, int json, int first)
{
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
    int why = errno;
    if (!is_stdin)
        close(fd);
    if (bad) {
        fprintf(stderr, "dcmseal: %s: read failed: %s\n", path, strerror(why));
        return EX_IOERR;
    }
    if (dcmseal_header_inspect(&h, pre, have, &err) != DCMSEAL_OK ||
        dcmseal_plaintext_size(&plain, size, h.segment_size, &err) != DCMSEAL_OK)
        return cli_report(path, &err);
    if (json) {
        print_json(stdout, path, &h, plain, size);
    } else {
        if (!first)
            fputc('\n', stdout);
        print_text(stdout, path, &h, plain, size);
    }
    return EX_OK;
}

int cli_cmd_inspect(const cli_opts *o)
{
    int rc = EX_OK, printed = 0, stdin_used = 0;
    if (o->nargs < 1)
        return cli_usage_error("inspect takes one or more files (- for stdin)");
    for (int i = 0; i < o->nargs; i++) {
        if (strcmp(o->args[i], "-") == 0 && stdin_used++)
            return cli_usage_error("inspect: - (stdin) given twice");
    }
    for (int i = 0; i < o->nargs; i++) {
        int r = inspect_one(o->args[i], o->json, !printed);
        printed += r == EX_OK;
        rc = r > rc ? r : rc; /* the worst of them: EX_IOERR over EX_DATAERR */
    }
    return rc;
}
