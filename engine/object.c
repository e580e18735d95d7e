/* Whole objects over file descriptors: probe, seal, open, verify. Buffers are
 * fixed at start, so memory is bounded whatever the input size. */
#define _GNU_SOURCE /* sync_file_range */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <dcmseal/dicomio.h>

#include "internal.h"

/* Input is read in chunks of this size. The DICOM probe reads the first chunk
 * from memory and, when the input is a regular file (seal) or a sealed object
 * it can read again (verify), the rest at random offsets; of any other input
 * the first chunk is all it has (FORMAT.md "Identity context"). */
#define IO_CHUNK (1024u * 1024u)

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

/* Reads |cap| bytes, or up to the end of the input, at the file offset or,
 * when |at| is not negative, at offset |at| (pread); |*n| says how many. */
static dcmseal_status read_full(int fd, uint8_t *buf, size_t cap, off_t at, size_t *n,
                                dcmseal_error *err)
{
    *n = 0;
    while (*n < cap) {
        ssize_t r = at < 0 ? read(fd, buf + *n, cap - *n)
                           : pread(fd, buf + *n, cap - *n, at + (off_t)*n);
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

/* The identity of the object |src| describes into |id| and |rep| (is_dicom,
 * and why it is opaque or what to notice), and the probe's verdict. */
static dcmseal_status probe_identity(dcmseal_identity *id, dcmseal_object_report *rep,
                                     dcmseal_dicom_class *klass,
                                     const dcmseal_dicom_source *src, dcmseal_error *err)
{
    dcmseal_dicom_info info;
    dcmseal_status st = dcmseal_dicom_probe_source(&info, src, err);
    memset(id, 0, sizeof *id);
    if (st == DCMSEAL_OK) {
        *klass = info.klass;
        rep->is_dicom = info.klass == DCMSEAL_DICOM_OK;
        if (rep->is_dicom) {
            memcpy(id->sop_class_uid, info.sop_class_uid, sizeof id->sop_class_uid);
            memcpy(id->sop_instance_uid, info.sop_instance_uid, sizeof id->sop_instance_uid);
            memcpy(id->study_instance_uid, info.study_instance_uid,
                   sizeof id->study_instance_uid);
            snprintf(rep->notice, sizeof rep->notice, "%s", info.notice);
        } else {
            snprintf(rep->not_dicom_reason, sizeof rep->not_dicom_reason, "%s%s%s",
                     dcmseal_dicom_class_name(info.klass), info.reason[0] ? ": " : "",
                     info.reason);
        }
    }
    OPENSSL_cleanse(&info, sizeof info);
    return st;
}

/* The probe's reads past the first chunk of an input it may read again. */
typedef struct probe_fd {
    int fd;
    uint64_t base; /* where the object starts in |fd| */
} probe_fd;

static dcmseal_status probe_fd_read(void *self, uint8_t *out, size_t len, uint64_t offset,
                                    dcmseal_error *err)
{
    const probe_fd *p = self;
    size_t n = 0;
    dcmseal_status st = read_full(p->fd, out, len, (off_t)(p->base + offset), &n, err);
    if (st == DCMSEAL_OK && n < len)
        st = dcmseal_fail(err, DCMSEAL_E_IO, "the input shrank while being read");
    return st;
}

/* The probe's reads past the plain text that verify kept: through a reader
 * over the sealed object, opened on first use with the decryptor's keys, so
 * that each segment read is authenticated again. */
typedef struct probe_sealed {
    int fd;
    const dcmseal_decryptor_t *dec;
    dcmseal_reader_t *reader;
} probe_sealed;

static dcmseal_status probe_sealed_read(void *self, uint8_t *out, size_t len, uint64_t offset,
                                        dcmseal_error *err)
{
    probe_sealed *p = self;
    dcmseal_status st;
    size_t n = 0;
    if (p->reader == NULL &&
        (st = dcmseal_decrypt_reader(&p->reader, p->fd, p->dec, err)) != DCMSEAL_OK)
        return st;
    if ((st = dcmseal_reader_pread(p->reader, out, len, offset, &n, err)) != DCMSEAL_OK)
        return st;
    return n == len ? DCMSEAL_OK
                    : dcmseal_fail(err, DCMSEAL_E_FORMAT, "the object shrank while being read");
}

/* Whether the object of which |consumed| bytes were just read from |fd| can
 * be read again with pread: |fd| is a regular file; the object starts at
 * |*base| and the file is |*size| bytes. Asked only of objects larger than a
 * chunk, so that small ones cost no system call. */
static int rereadable(int fd, uint64_t consumed, uint64_t *base, uint64_t *size)
{
    struct stat sb;
    const off_t pos = lseek(fd, 0, SEEK_CUR);
    if (pos < 0 || (uint64_t)pos < consumed || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) ||
        (uint64_t)sb.st_size < (uint64_t)pos)
        return 0;
    *base = (uint64_t)pos - consumed;
    *size = (uint64_t)sb.st_size;
    return 1;
}

/* verify: checks the identity of the plain text against the one bound into
 * the header, once all of |in_fd| was read. The probe has the first
 * |head_len| bytes in |head| and, when |in_fd| is a regular file that holds
 * the object from offset 0 (what the reader reads), the rest through a
 * reader; otherwise only |head|. An opaque object binds no identity and is
 * not probed: its tag is that of the empty context (FORMAT.md). */
static dcmseal_status verify_identity(dcmseal_object_report *rep,
                                      const dcmseal_decryptor_t *dec, int in_fd, int positioned,
                                      const uint8_t *head, size_t head_len, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    dcmseal_identity id;
    dcmseal_dicom_class klass = DCMSEAL_DICOM_OK;
    probe_sealed ps = {in_fd, dec, NULL};
    dcmseal_dicom_source src = {.head = head, .head_len = head_len, .size = rep->plain_bytes};
    uint64_t base = 0, size = 0;
    memset(&id, 0, sizeof id);

    if (!dcmseal_decrypt_get0_header(dec)->is_dicom)
        return dcmseal_decrypt_check_identity(dec, NULL, err);
    /* Read by pread from offset 0 (rewrap --upgrade), the object is there
     * to be read again; read() leaves the offset after what was read. */
    if (rep->plain_bytes > head_len &&
        (positioned || (rereadable(in_fd, rep->sealed_bytes, &base, &size) && base == 0))) {
        src.read = probe_sealed_read;
        src.self = &ps;
    } else if (rep->plain_bytes > head_len) {
        src.size = head_len;
        src.prefix = 1;
    }
    DCMSEAL_GUARD(probe_identity(&id, rep, &klass, &src, err));
    DCMSEAL_ENSURE(klass != DCMSEAL_DICOM_INCOMPLETE || !src.prefix, err, DCMSEAL_E_USAGE,
                   "cannot check the identity: %s (verify the file rather than a pipe)",
                   rep->not_dicom_reason);
    DCMSEAL_ENSURE(rep->is_dicom, err, DCMSEAL_E_AUTH,
                   "identity mismatch: an identity is bound, but the plain text has none "
                   "(%s)", rep->not_dicom_reason);
    st = dcmseal_decrypt_check_identity(dec, &id, err);
out:
    dcmseal_reader_free(ps.reader);
    OPENSSL_cleanse(&id, sizeof id);
    return st;
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
    dcmseal_status st = read_full(src->fd, src->buf, IO_CHUNK, -1, n, err);
    dcmseal_high_water(&src->buf_used, *n);
    return st;
}

/* Probes the input for a DICOM identity, then encrypts all of it to
 * |out_fd|: the one path behind dcmseal_seal_fd and dcmseal_seal_mem. */
static dcmseal_status seal(dcmseal_object_report *rep, int out_fd, source *in_src,
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
    dcmseal_dicom_class klass;
    uint64_t base = 0, size = 0;
    memset(&id, 0, sizeof id);

    DCMSEAL_ENSURE(rep != NULL && opts != NULL, err, DCMSEAL_E_USAGE,
                   "seal: missing argument");
    memset(rep, 0, sizeof rep[0]);
    seg = opts->segment_size ? opts->segment_size : DCMSEAL_SEGMENT_DEFAULT;
    DCMSEAL_ENSURE(seg >= DCMSEAL_SEGMENT_MIN && seg <= DCMSEAL_SEGMENT_MAX, err,
                   DCMSEAL_E_USAGE, "segment size %u outside %u..%u", seg,
                   DCMSEAL_SEGMENT_MIN, DCMSEAL_SEGMENT_MAX);
    /* Room for every segment one chunk can complete, plus the last one,
     * and the metadata block that goes out first. */
    out_cap = ((size_t)IO_CHUNK / seg + 2) * ((size_t)seg + DCMSEAL_TAG_LEN) + DCMSEAL_META_MAX;
    if (!in_src->is_mem)
        in_src->buf = OPENSSL_malloc(IO_CHUNK);
    out = OPENSSL_malloc(out_cap);
    DCMSEAL_ENSURE((in_src->buf != NULL || in_src->is_mem) && out != NULL, err,
                   DCMSEAL_E_INTERNAL, "out of memory");

    DCMSEAL_GUARD(source_next(in_src, &in, &n, err));
    /* An object in memory is all at hand. Of a file: a short first chunk is
     * the whole input; after a full one, the probe reads on in place in a
     * regular file, and has only this chunk of any other input. */
    dcmseal_dicom_source src = {.head = in, .head_len = n, .size = n};
    probe_fd pf = {in_src->fd, 0};
    if (in_src->is_mem) {
        src.head_len = src.size = in_src->len;
    } else if (n == IO_CHUNK && rereadable(in_src->fd, n, &base, &size)) {
        pf.base = base;
        src.size = size - base;
        src.read = probe_fd_read;
        src.self = &pf;
    } else if (n == IO_CHUNK) {
        src.prefix = 1;
    }
    DCMSEAL_GUARD(probe_identity(&id, rep, &klass, &src, err));
    DCMSEAL_ENSURE(rep->is_dicom || !opts->strict, err, DCMSEAL_E_NOT_DICOM,
                   "not DICOM (%s); refused by --strict", rep->not_dicom_reason);

    const dcmseal_encrypt_params params = {
        .keyring = opts->keyring,
        .segment_size = seg,
        .identity = rep->is_dicom ? &id : NULL,
        .meta = opts->meta,
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
        DCMSEAL_GUARD(source_next(in_src, &in, &n, err));
    }
    DCMSEAL_GUARD(dcmseal_encrypt_final(enc, out, out_cap, &w, err));
    DCMSEAL_GUARD(write_all(out_fd, out, w, err));
    rep->sealed_bytes += w;
    dcmseal_slot slot;
    dcmseal_header h;
    dcmseal_header_info info;
    if (dcmseal_preamble_decode(&h, &slot, &info, header, sizeof header, NULL) == DCMSEAL_OK) {
        rep->wrap = slot.meta;
        rep->format_version = info.version;
        rep->origin = info.origin;
    }
out:
    dcmseal_encryptor_free(enc);
    OPENSSL_cleanse(&id, sizeof id);
    if (in_src->buf != NULL)
        OPENSSL_cleanse(in_src->buf, in_src->buf_used);
    OPENSSL_free(in_src->buf);
    in_src->buf = NULL;
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

/* ---- opening ------------------------------------------------------------- */

struct dcmseal_opening {
    dcmseal_decryptor_t *dec;
    int fd;
    int positioned; /* read with pread from |off|, else read() */
    int at_end;     /* a read came short: the input ends there */
    uint64_t off;
    uint64_t sealed_bytes;
    uint8_t *in; /* one chunk of cipher text */
};

static dcmseal_status opening_read(dcmseal_opening_t *op, size_t want, size_t *n,
                                   dcmseal_error *err)
{
    *n = 0;
    /* read_full stops short only at the end: asking again would cost a
     * system call per object to learn nothing. */
    if (op->at_end)
        return DCMSEAL_OK;
    dcmseal_status st =
        read_full(op->fd, op->in, want, op->positioned ? (off_t)op->off : -1, n, err);
    op->at_end = st == DCMSEAL_OK && *n < want;
    op->off += *n;
    op->sealed_bytes += *n;
    return st;
}

/* Feeds |n| bytes of what precedes the segments; the decryptor writes no
 * plain text for them. */
static dcmseal_status opening_feed(dcmseal_opening_t *op, const uint8_t *in, size_t n,
                                   dcmseal_error *err)
{
    size_t w = 0;
    return dcmseal_decrypt_update(op->dec, NULL, 0, &w, in, n, err);
}

/* Up to the first segment. With |pre|, the preamble is that (read before by
 * the caller) and the rest comes from |fd| by pread; otherwise everything
 * is read from |fd| as it stands (a pipe will do). */
static dcmseal_status opening_begin(dcmseal_opening_t **out, int fd,
                                    const uint8_t pre[DCMSEAL_PREAMBLE_LEN],
                                    const dcmseal_keyring *ring, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    dcmseal_opening_t *op = NULL;
    const dcmseal_header_info *info;
    size_t n = 0, w = 0;
    DCMSEAL_ENSURE(out != NULL, err, DCMSEAL_E_USAGE, "open: missing argument");
    op = OPENSSL_zalloc(sizeof *op);
    DCMSEAL_ENSURE(op != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    op->fd = fd;
    op->in = OPENSSL_malloc(IO_CHUNK);
    DCMSEAL_ENSURE(op->in != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    DCMSEAL_GUARD(dcmseal_decrypt_new(&op->dec, ring, err));
    if (pre != NULL) {
        op->positioned = 1;
        op->off = op->sealed_bytes = DCMSEAL_PREAMBLE_LEN;
        DCMSEAL_GUARD(opening_feed(op, pre, DCMSEAL_PREAMBLE_LEN, err));
    } else {
        DCMSEAL_GUARD(opening_read(op, DCMSEAL_PREAMBLE_LEN, &n, err));
        DCMSEAL_GUARD(opening_feed(op, op->in, n, err));
    }
    /* A short object: final says how it falls short. */
    if ((info = dcmseal_decrypt_get0_header(op->dec)) == NULL) {
        st = dcmseal_decrypt_final(op->dec, NULL, 0, &w, err);
        goto out;
    }
    if (info->meta_len > 0) {
        DCMSEAL_GUARD(opening_read(op, info->meta_len, &n, err));
        DCMSEAL_GUARD(opening_feed(op, op->in, n, err));
        if (n < info->meta_len) {
            st = dcmseal_decrypt_final(op->dec, NULL, 0, &w, err);
            goto out;
        }
    }
    *out = op;
    op = NULL;
out:
    dcmseal_opening_abort(op);
    return st;
}

dcmseal_status dcmseal_open_fd_begin(dcmseal_opening_t **out, int in_fd,
                                     const dcmseal_keyring *keyring, dcmseal_error *err)
{
    return opening_begin(out, in_fd, NULL, keyring, err);
}

const dcmseal_header_info *dcmseal_opening_get0_header(const dcmseal_opening_t *op)
{
    return dcmseal_decrypt_get0_header(op->dec);
}

const dcmseal_meta *dcmseal_opening_get0_meta(const dcmseal_opening_t *op)
{
    return dcmseal_decrypt_get0_meta(op->dec);
}

void dcmseal_opening_abort(dcmseal_opening_t *op)
{
    if (op == NULL)
        return;
    dcmseal_decryptor_free(op->dec);
    OPENSSL_free(op->in); /* cipher text only */
    OPENSSL_free(op);
}

dcmseal_status dcmseal_open_fd_finish(dcmseal_opening_t *op, dcmseal_object_report *rep,
                                      int out_fd, int check_identity, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    uint8_t *out = NULL, *head = NULL;
    size_t n = 0, w = 0, head_len = 0, out_cap = 0, out_used = 0;
    writeback wb = {0, 0};

    DCMSEAL_ENSURE(op != NULL && rep != NULL, err, DCMSEAL_E_USAGE, "open: missing argument");
    memset(rep, 0, sizeof rep[0]);
    rep->sealed_bytes = op->sealed_bytes;
    const dcmseal_header_info *info = dcmseal_decrypt_get0_header(op->dec);
    head = check_identity ? OPENSSL_malloc(IO_CHUNK) : NULL;
    DCMSEAL_ENSURE(head != NULL || !check_identity, err, DCMSEAL_E_INTERNAL, "out of memory");
    out_cap = IO_CHUNK + info->segment_size + DCMSEAL_TAG_LEN;
    out = OPENSSL_malloc(out_cap);
    DCMSEAL_ENSURE(out != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    for (int last = 0; !last;) {
        DCMSEAL_GUARD(opening_read(op, IO_CHUNK, &n, err));
        /* The most either call may write (final: what is buffered). */
        dcmseal_high_water(&out_used, dcmseal_decrypt_update_max(op->dec, n));
        if (n > 0) {
            DCMSEAL_GUARD(dcmseal_decrypt_update(op->dec, out, out_cap, &w, op->in, n, err));
        } else {
            DCMSEAL_GUARD(dcmseal_decrypt_final(op->dec, out, out_cap, &w, err));
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
    rep->sealed_bytes = op->sealed_bytes;
    if (head != NULL)
        DCMSEAL_GUARD(verify_identity(rep, op->dec, op->fd, op->positioned, head, head_len, err));
    rep->is_dicom = info->is_dicom;
    rep->wrap = info->wrap;
    rep->format_version = info->version;
    rep->origin = info->origin;
out:
    dcmseal_opening_abort(op);
    if (out != NULL)
        OPENSSL_cleanse(out, out_used < out_cap ? out_used : out_cap);
    OPENSSL_free(out);
    if (head != NULL)
        OPENSSL_cleanse(head, head_len);
    OPENSSL_free(head);
    return st;
}

dcmseal_status dcmseal_open_fd(dcmseal_object_report *rep, int out_fd, int in_fd,
                               const dcmseal_keyring *keyring, int check_identity,
                               dcmseal_error *err)
{
    dcmseal_opening_t *op = NULL;
    dcmseal_status st;
    if (rep == NULL)
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "open: missing argument");
    memset(rep, 0, sizeof rep[0]);
    if ((st = dcmseal_open_fd_begin(&op, in_fd, keyring, err)) != DCMSEAL_OK)
        return st;
    return dcmseal_open_fd_finish(op, rep, out_fd, check_identity, err);
}

dcmseal_status dcmseal_authenticate_fd(int fd, const uint8_t pre[DCMSEAL_PREAMBLE_LEN],
                                       const dcmseal_keyring *ring, dcmseal_error *err)
{
    dcmseal_opening_t *op = NULL;
    dcmseal_object_report rep;
    dcmseal_status st = opening_begin(&op, fd, pre, ring, err);
    return st != DCMSEAL_OK ? st : dcmseal_open_fd_finish(op, &rep, -1, 1, err);
}
