/* Whole objects over file descriptors: probe, seal, open, verify. Buffers are
 * fixed at start, so memory is bounded whatever the input size. */
#define _GNU_SOURCE /* sync_file_range */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <dcmseal/dicomio.h>

#include "internal.h"

/* Input is read in chunks of this size; the first chunk is also the DICOM
 * probe's window. */
#define IO_CHUNK DCMSEAL_DICOM_PROBE_MAX

/* Outputs are flushed before they appear (engine/outfile.c), and the kernel
 * starts writing a large output back only when far more is dirty than one
 * object. Asking for write-back every WRITEBACK_STEP bytes lets the disk
 * work while the next chunks are encrypted, so that the final fsync waits
 * for a tail instead of the whole object: a large object costs about the
 * larger of its CPU and disk time, not their sum. Only a hint: a pipe
 * refuses it (then it is not asked again), and write errors are the
 * fsync's to report. */
#define WRITEBACK_STEP (8u << 20)

typedef struct writeback {
    uint64_t asked; /* output bytes when write-back was last asked for */
    int refused;
} writeback;

static void writeback_ask(writeback *wb, int fd, uint64_t written)
{
    if (wb->refused || written - wb->asked < WRITEBACK_STEP)
        return;
    wb->asked = written;
    wb->refused = sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE) != 0;
}

static dcmseal_status read_full(int fd, uint8_t *buf, size_t cap, size_t *n,
                                dcmseal_error *err)
{
    *n = 0;
    while (*n < cap) {
        ssize_t r = read(fd, buf + *n, cap - *n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return dcmseal_fail(err, DCMSEAL_E_IO, "cannot read the input: %s",
                                strerror(errno));
        if (r == 0)
            break;
        *n += (size_t)r;
    }
    return DCMSEAL_OK;
}

static dcmseal_status write_all(int fd, const uint8_t *buf, size_t n, dcmseal_error *err)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return dcmseal_fail(err, DCMSEAL_E_IO, "cannot write the output: %s",
                                strerror(errno));
        buf += w;
        n -= (size_t)w;
    }
    return DCMSEAL_OK;
}

/* The identity of |buf| (the first bytes of an object), or why it has none. */
static dcmseal_status probe_identity(dcmseal_identity *id, int *is_dicom,
                                     char *why, size_t why_cap, const uint8_t *buf,
                                     size_t len, int complete, dcmseal_error *err)
{
    dcmseal_dicom_info info;
    dcmseal_status st = dcmseal_dicom_probe(&info, buf, len, complete, err);
    if (st != DCMSEAL_OK)
        return st;
    memset(id, 0, sizeof *id);
    *is_dicom = info.klass == DCMSEAL_DICOM_OK;
    if (*is_dicom) {
        memcpy(id->sop_class_uid, info.sop_class_uid, sizeof id->sop_class_uid);
        memcpy(id->sop_instance_uid, info.sop_instance_uid, sizeof id->sop_instance_uid);
        memcpy(id->study_instance_uid, info.study_instance_uid,
               sizeof id->study_instance_uid);
    } else {
        snprintf(why, why_cap, "%s%s%s", dcmseal_dicom_class_name(info.klass),
                 info.reason[0] ? ": " : "", info.reason);
    }
    OPENSSL_cleanse(&info, sizeof info);
    return DCMSEAL_OK;
}

/* Where seal's plain text comes from: a file descriptor read chunk by chunk
 * into a buffer of ours, or a caller's buffer handed out in place. */
typedef struct source {
    int is_mem;
    int fd;
    const uint8_t *mem;
    size_t len, pos;    /* memory only */
    uint8_t *buf;       /* fd only: IO_CHUNK bytes */
    size_t buf_used;    /* the most |buf| ever held: what seal wipes */
} source;

/* The next chunk of at most IO_CHUNK bytes in |*p|, |*n| = 0 at the end. */
static dcmseal_status source_next(source *src, const uint8_t **p, size_t *n,
                                  dcmseal_error *err)
{
    if (src->is_mem) {
        *n = src->len - src->pos < IO_CHUNK ? src->len - src->pos : IO_CHUNK;
        *p = src->mem + src->pos;
        src->pos += *n;
        return DCMSEAL_OK;
    }
    *p = src->buf;
    dcmseal_status st = read_full(src->fd, src->buf, IO_CHUNK, n, err);
    dcmseal_high_water(&src->buf_used, *n);
    return st;
}

/* Probes the first chunk for a DICOM identity, then encrypts everything to
 * |out_fd|: the one path behind dcmseal_seal_fd and dcmseal_seal_mem. */
static dcmseal_status seal(dcmseal_object_report *rep, int out_fd, source *src,
                           const dcmseal_seal_opts *opts, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    dcmseal_encryptor_t *enc = NULL;
    dcmseal_identity id;
    uint8_t header[DCMSEAL_PREAMBLE_LEN];
    const uint8_t *in = NULL;
    uint8_t *out = NULL;
    size_t n = 0, w = 0, out_cap;
    uint32_t seg;
    writeback wb = {0, 0};

    DCMSEAL_ENSURE(rep != NULL && opts != NULL, err, DCMSEAL_E_USAGE,
                   "seal: missing argument");
    memset(rep, 0, sizeof rep[0]);
    seg = opts->segment_size ? opts->segment_size : DCMSEAL_SEGMENT_DEFAULT;
    DCMSEAL_ENSURE(seg >= DCMSEAL_SEGMENT_MIN && seg <= DCMSEAL_SEGMENT_MAX, err,
                   DCMSEAL_E_USAGE, "segment size %u outside %u..%u", seg,
                   DCMSEAL_SEGMENT_MIN, DCMSEAL_SEGMENT_MAX);
    /* Room for every segment one chunk can complete, plus the last one. */
    out_cap = ((size_t)IO_CHUNK / seg + 2) * ((size_t)seg + DCMSEAL_TAG_LEN);
    if (!src->is_mem)
        src->buf = OPENSSL_malloc(IO_CHUNK);
    out = OPENSSL_malloc(out_cap);
    DCMSEAL_ENSURE((src->buf != NULL || src->is_mem) && out != NULL, err,
                   DCMSEAL_E_INTERNAL, "out of memory");

    DCMSEAL_GUARD(source_next(src, &in, &n, err));
    DCMSEAL_GUARD(probe_identity(&id, &rep->is_dicom, rep->not_dicom_reason,
                                 sizeof rep->not_dicom_reason, in, n, n < IO_CHUNK, err));
    DCMSEAL_ENSURE(rep->is_dicom || !opts->strict, err, DCMSEAL_E_NOT_DICOM,
                   "not DICOM (%s); refused by --strict", rep->not_dicom_reason);

    const dcmseal_encrypt_params params = {
        .keyring = opts->keyring,
        .segment_size = seg,
        .identity = rep->is_dicom ? &id : NULL,
    };
    DCMSEAL_GUARD(dcmseal_encrypt_init(&enc, header, &params, err));
    DCMSEAL_GUARD(write_all(out_fd, header, sizeof header, err));
    rep->sealed_bytes = sizeof header;
    while (n > 0) {
        rep->plain_bytes += n;
        DCMSEAL_GUARD(dcmseal_encrypt_update(enc, out, out_cap, &w, in, n, err));
        DCMSEAL_GUARD(write_all(out_fd, out, w, err));
        rep->sealed_bytes += w;
        writeback_ask(&wb, out_fd, rep->sealed_bytes);
        DCMSEAL_GUARD(source_next(src, &in, &n, err));
    }
    DCMSEAL_GUARD(dcmseal_encrypt_final(enc, out, out_cap, &w, err));
    DCMSEAL_GUARD(write_all(out_fd, out, w, err));
    rep->sealed_bytes += w;
    dcmseal_slot slot;
    dcmseal_header h;
    if (dcmseal_preamble_decode(&h, &slot, NULL, header, sizeof header, NULL) == DCMSEAL_OK)
        rep->wrap = slot.meta;
out:
    dcmseal_encryptor_free(enc);
    OPENSSL_cleanse(&id, sizeof id);
    if (src->buf != NULL)
        OPENSSL_cleanse(src->buf, src->buf_used);
    OPENSSL_free(src->buf);
    src->buf = NULL;
    OPENSSL_free(out); /* cipher text only */
    return st;
}

dcmseal_status dcmseal_seal_fd(dcmseal_object_report *rep, int out_fd, int in_fd,
                               const dcmseal_seal_opts *opts, dcmseal_error *err)
{
    source src = {.fd = in_fd};
    return seal(rep, out_fd, &src, opts, err);
}

dcmseal_status dcmseal_seal_mem(dcmseal_object_report *rep, int out_fd, const uint8_t *in,
                                size_t in_len, const dcmseal_seal_opts *opts,
                                dcmseal_error *err)
{
    static const uint8_t none[1];
    source src = {.is_mem = 1, .fd = -1, .mem = in != NULL ? in : none, .len = in_len};
    if (in == NULL && in_len > 0)
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "seal: missing input");
    return seal(rep, out_fd, &src, opts, err);
}

dcmseal_status dcmseal_open_fd(dcmseal_object_report *rep, int out_fd, int in_fd,
                               const dcmseal_keyring *keyring, int check_identity,
                               dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    dcmseal_decryptor_t *dec = NULL;
    uint8_t *in = NULL, *out = NULL, *head = NULL;
    size_t n = 0, w = 0, head_len = 0, out_cap = 0, out_used = 0;
    writeback wb = {0, 0};

    DCMSEAL_ENSURE(rep != NULL, err, DCMSEAL_E_USAGE, "open: missing argument");
    memset(rep, 0, sizeof rep[0]);
    DCMSEAL_GUARD(dcmseal_decrypt_new(&dec, keyring, err));
    in = OPENSSL_malloc(IO_CHUNK);
    head = check_identity ? OPENSSL_malloc(IO_CHUNK) : NULL;
    DCMSEAL_ENSURE(in != NULL && (head != NULL || !check_identity), err,
                   DCMSEAL_E_INTERNAL, "out of memory");
    /* The header alone first: it tells the segment size, and so how much
     * output room one chunk needs. */
    DCMSEAL_GUARD(read_full(in_fd, in, DCMSEAL_PREAMBLE_LEN, &n, err));
    rep->sealed_bytes = n;
    DCMSEAL_GUARD(dcmseal_decrypt_update(dec, NULL, 0, &w, in, n, err));
    if (dcmseal_decrypt_get0_header(dec) == NULL) {
        st = dcmseal_decrypt_final(dec, NULL, 0, &w, err);
        goto out;
    }
    out_cap = IO_CHUNK + dcmseal_decrypt_get0_header(dec)->segment_size + DCMSEAL_TAG_LEN;
    out = OPENSSL_malloc(out_cap);
    DCMSEAL_ENSURE(out != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    for (int last = 0; !last;) {
        DCMSEAL_GUARD(read_full(in_fd, in, IO_CHUNK, &n, err));
        rep->sealed_bytes += n;
        /* The most either call may write (final: what is buffered). */
        dcmseal_high_water(&out_used, dcmseal_decrypt_update_max(dec, n));
        if (n > 0) {
            DCMSEAL_GUARD(dcmseal_decrypt_update(dec, out, out_cap, &w, in, n, err));
        } else {
            DCMSEAL_GUARD(dcmseal_decrypt_final(dec, out, out_cap, &w, err));
            last = 1;
        }
        if (head != NULL && head_len < IO_CHUNK) {
            size_t take = IO_CHUNK - head_len < w ? IO_CHUNK - head_len : w;
            memcpy(head + head_len, out, take);
            head_len += take;
        }
        rep->plain_bytes += w;
        if (out_fd >= 0) {
            DCMSEAL_GUARD(write_all(out_fd, out, w, err));
            writeback_ask(&wb, out_fd, rep->plain_bytes);
        }
    }
    const dcmseal_header_info *info = dcmseal_decrypt_get0_header(dec);
    rep->is_dicom = info->is_dicom;
    rep->wrap = info->wrap;
    if (head != NULL) {
        dcmseal_identity id;
        int is_dicom = 0;
        DCMSEAL_GUARD(probe_identity(&id, &is_dicom, rep->not_dicom_reason,
                                     sizeof rep->not_dicom_reason, head, head_len,
                                     rep->plain_bytes == head_len, err));
        st = dcmseal_decrypt_check_identity(dec, is_dicom ? &id : NULL, err);
        OPENSSL_cleanse(&id, sizeof id);
    }
out:
    dcmseal_decryptor_free(dec);
    OPENSSL_free(in); /* cipher text only */
    if (out != NULL)
        OPENSSL_cleanse(out, out_used < out_cap ? out_used : out_cap);
    OPENSSL_free(out);
    if (head != NULL)
        OPENSSL_cleanse(head, head_len);
    OPENSSL_free(head);
    return st;
}
