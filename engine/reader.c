/* Random access: a byte range costs only the segments it touches. Each
 * segment read is authenticated on its own; the last segment's flag ties it
 * to the object's end, so truncation shows when the tail is read.
 *
 * A segment that the range covers whole is read and decrypted in place in
 * the caller's buffer (GCM wipes it again if the tag is wrong); only a
 * segment that the range cuts goes through the reader's own buffers, which
 * are therefore made on first use and wiped as far as they were used. A
 * server that reads whole objects, one reader each, then never touches
 * (and faults in, and wipes) half a MiB per object for nothing. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "internal.h"

struct dcmseal_reader {
    int fd;
    dcmseal_header h;
    dcmseal_header_info info;
    dcmseal_meta meta;
    uint64_t payload;  /* offset of the first segment */
    uint8_t aad[DCMSEAL_HEADER_LEN];
    EVP_CIPHER_CTX *gcm;
    uint64_t size;     /* plain text */
    uint64_t nseg;
    uint8_t *ct;       /* one cipher-text segment; NULL until needed */
    uint8_t *pt;       /* its plain text; NULL until needed */
    size_t pt_used;    /* the most |pt| ever held: what free wipes */
    uint64_t cached;   /* segment index held in pt, UINT64_MAX for none */
};

static dcmseal_status pread_full(int fd, uint8_t *buf, size_t len, uint64_t off,
                                 dcmseal_error *err)
{
    while (len > 0) {
        ssize_t r = pread(fd, buf, len, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return dcmseal_fail(err, DCMSEAL_E_IO, "read failed: %s", strerror(errno));
        if (r == 0)
            return dcmseal_fail(err, DCMSEAL_E_FORMAT, "object shrank while reading");
        buf += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return DCMSEAL_OK;
}

/* The size of the object in |fd|, which must hold at least a preamble. */
static dcmseal_status object_size(uint64_t *size, int fd, dcmseal_error *err)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return dcmseal_fail(err, DCMSEAL_E_IO, "stat failed: %s", strerror(errno));
    if ((uint64_t)sb.st_size < DCMSEAL_PREAMBLE_LEN)
        return dcmseal_fail(err, DCMSEAL_E_FORMAT, "truncated: %lld bytes, the header alone is %d",
                            (long long)sb.st_size, DCMSEAL_PREAMBLE_LEN);
    *size = (uint64_t)sb.st_size;
    return DCMSEAL_OK;
}

/* A reader of the |size|-byte object in |fd| with header |h| and AAD |aad|,
 * but no cipher yet: that is the caller's to set. */
static dcmseal_status reader_new(dcmseal_reader_t **out, int fd, const dcmseal_header *h,
                                 const uint8_t aad[DCMSEAL_HEADER_LEN], uint64_t size,
                                 dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    dcmseal_reader_t *r = OPENSSL_zalloc(sizeof *r);
    DCMSEAL_ENSURE(r != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    r->fd = fd;
    r->cached = UINT64_MAX;
    r->h = *h;
    memcpy(r->aad, aad, sizeof r->aad);
    /* The metadata block (v2) sits between the slots and the first segment. */
    DCMSEAL_ENSURE(size >= DCMSEAL_PREAMBLE_LEN + (uint64_t)h->meta_len, err, DCMSEAL_E_FORMAT,
                   "truncated: %llu bytes, the header and metadata alone are %llu",
                   (unsigned long long)size,
                   (unsigned long long)(DCMSEAL_PREAMBLE_LEN + (uint64_t)h->meta_len));
    r->payload = DCMSEAL_PREAMBLE_LEN + (uint64_t)h->meta_len;
    DCMSEAL_GUARD(dcmseal_plaintext_size(&r->size, size - h->meta_len, r->h.segment_size, err));
    r->nseg = r->size == 0 ? 1 : (r->size + r->h.segment_size - 1) / r->h.segment_size;
    r->info.version = h->version;
    r->info.is_dicom = (h->flags & DCMSEAL_HEADER_FLAG_DICOM) != 0;
    r->info.segment_size = h->segment_size;
    r->info.has_meta = h->meta_len != 0;
    r->info.meta_len = h->meta_len;
    *out = r;
    r = NULL;
out:
    dcmseal_reader_free(r);
    return st;
}

dcmseal_status dcmseal_reader_open(dcmseal_reader_t **out, int fd,
                                   const dcmseal_keyring *keyring, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    dcmseal_reader_t *r = NULL;
    uint8_t pre[DCMSEAL_PREAMBLE_LEN], *meta = NULL;
    dcmseal_header h;
    dcmseal_header_info info;
    dcmseal_slot slot;
    dcmseal_keys *keys = OPENSSL_secure_zalloc(sizeof *keys);
    uint64_t size = 0;
    memset(&slot, 0, sizeof slot);

    DCMSEAL_ENSURE(out != NULL && keyring != NULL, err, DCMSEAL_E_USAGE,
                   "reader: missing argument");
    DCMSEAL_ENSURE(keys != NULL, err, DCMSEAL_E_INTERNAL, "out of secure memory");
    DCMSEAL_GUARD(object_size(&size, fd, err));
    DCMSEAL_GUARD(pread_full(fd, pre, sizeof pre, 0, err));
    DCMSEAL_GUARD(dcmseal_preamble_decode(&h, &slot, &info, pre, sizeof pre, err));
    DCMSEAL_GUARD(reader_new(&r, fd, &h, pre, size, err));
    r->info = info;
    DCMSEAL_GUARD(dcmseal_open_keys(keys, &r->info.origin, pre, info.active_slot, &r->h, &slot,
                                    keyring, err));
    if (r->h.meta_len > 0) {
        meta = OPENSSL_malloc(r->h.meta_len);
        DCMSEAL_ENSURE(meta != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
        DCMSEAL_GUARD(pread_full(fd, meta, r->h.meta_len, DCMSEAL_PREAMBLE_LEN, err));
        DCMSEAL_GUARD(dcmseal_meta_open(&r->meta, meta, r->h.meta_len, keys, pre, err));
    }
    DCMSEAL_GUARD(dcmseal_gcm_init(&r->gcm, keys->payload, 0, err));
    *out = r;
    r = NULL;
out:
    OPENSSL_secure_clear_free(keys, sizeof *keys);
    OPENSSL_cleanse(&slot, sizeof slot);
    OPENSSL_free(meta); /* cipher text only */
    dcmseal_reader_free(r);
    return st;
}

dcmseal_status dcmseal_reader_open_cipher(dcmseal_reader_t **out, int fd,
                                          const dcmseal_header *h,
                                          const uint8_t aad[DCMSEAL_HEADER_LEN],
                                          const EVP_CIPHER_CTX *gcm, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    dcmseal_reader_t *r = NULL;
    uint64_t size = 0;
    DCMSEAL_GUARD(object_size(&size, fd, err));
    DCMSEAL_GUARD(reader_new(&r, fd, h, aad, size, err));
    r->gcm = EVP_CIPHER_CTX_new();
    if (r->gcm == NULL || EVP_CIPHER_CTX_copy(r->gcm, gcm) != 1) {
        st = dcmseal_ossl_fail(err, "AES-256-GCM copy");
        goto out;
    }
    *out = r;
    r = NULL;
out:
    dcmseal_reader_free(r);
    return st;
}

uint64_t dcmseal_reader_size(const dcmseal_reader_t *r) { return r->size; }

const dcmseal_header_info *dcmseal_reader_get0_header(const dcmseal_reader_t *r)
{
    return &r->info;
}

const dcmseal_meta *dcmseal_reader_get0_meta(const dcmseal_reader_t *r)
{
    return r->h.meta_len > 0 ? &r->meta : NULL;
}

/* The plain-text size of segment |i|. */
static size_t segment_len(const dcmseal_reader_t *r, uint64_t i)
{
    const uint64_t seg = r->h.segment_size;
    return (size_t)(i + 1 < r->nseg ? seg : r->size - i * seg);
}

/* Reads segment |i|'s cipher text to |ct| and its tag to |tag|, and
 * decrypts it to |out| (which may be |ct|). */
static dcmseal_status open_segment(dcmseal_reader_t *r, uint8_t *out, uint8_t *ct,
                                   uint8_t tag[DCMSEAL_TAG_LEN], uint64_t i, dcmseal_error *err)
{
    dcmseal_status st;
    uint8_t nonce[DCMSEAL_NONCE_LEN];
    const uint64_t off = r->payload + i * ((uint64_t)r->h.segment_size + DCMSEAL_TAG_LEN);
    const size_t n = segment_len(r, i);
    /* One read when the tag follows the cipher text in memory too. */
    if ((st = pread_full(r->fd, ct, tag == ct + n ? n + DCMSEAL_TAG_LEN : n, off, err)) !=
            DCMSEAL_OK ||
        (tag != ct + n &&
         (st = pread_full(r->fd, tag, DCMSEAL_TAG_LEN, off + n, err)) != DCMSEAL_OK))
        return st;
    dcmseal_segment_nonce(nonce, i, i + 1 == r->nseg);
    if (dcmseal_gcm_open(r->gcm, out, nonce, r->aad, sizeof r->aad, ct, n, tag, err) !=
        DCMSEAL_OK)
        return dcmseal_fail(err, DCMSEAL_E_AUTH, "authentication failed in segment %llu",
                            (unsigned long long)i);
    return DCMSEAL_OK;
}

/* Decrypts segment |i| into r->pt unless it is there already. */
static dcmseal_status load_segment(dcmseal_reader_t *r, uint64_t i, dcmseal_error *err)
{
    dcmseal_status st;
    if (r->cached == i)
        return DCMSEAL_OK;
    r->cached = UINT64_MAX;
    if (r->pt == NULL) {
        r->ct = OPENSSL_malloc((size_t)r->h.segment_size + DCMSEAL_TAG_LEN);
        r->pt = OPENSSL_malloc(r->h.segment_size);
        if (r->ct == NULL || r->pt == NULL)
            return dcmseal_fail(err, DCMSEAL_E_INTERNAL, "out of memory");
    }
    const size_t n = segment_len(r, i);
    dcmseal_high_water(&r->pt_used, n);
    if ((st = open_segment(r, r->pt, r->ct, r->ct + n, i, err)) != DCMSEAL_OK)
        return st;
    r->cached = i;
    return DCMSEAL_OK;
}

dcmseal_status dcmseal_reader_pread(dcmseal_reader_t *r, uint8_t *out, size_t len,
                                    uint64_t offset, size_t *n, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    const uint64_t seg = r->h.segment_size;
    size_t done = 0;
    if (offset >= r->size)
        len = 0;
    else if (len > r->size - offset)
        len = (size_t)(r->size - offset);
    while (done < len) {
        uint64_t pos = offset + done, i = pos / seg;
        size_t in_seg = (size_t)(pos % seg), whole = segment_len(r, i);
        if (in_seg == 0 && len - done >= whole && r->cached != i) {
            uint8_t tag[DCMSEAL_TAG_LEN];
            DCMSEAL_GUARD(open_segment(r, out + done, out + done, tag, i, err));
            done += whole;
            continue;
        }
        DCMSEAL_GUARD(load_segment(r, i, err));
        size_t take = (size_t)seg - in_seg;
        take = take < len - done ? take : len - done;
        memcpy(out + done, r->pt + in_seg, take);
        done += take;
    }
out:
    if (st != DCMSEAL_OK) {
        OPENSSL_cleanse(out, done);
        done = 0;
    }
    *n = done;
    return st;
}

void dcmseal_reader_free(dcmseal_reader_t *r)
{
    if (r == NULL)
        return;
    EVP_CIPHER_CTX_free(r->gcm);
    OPENSSL_free(r->ct); /* cipher text only */
    if (r->pt != NULL)
        OPENSSL_cleanse(r->pt, r->pt_used);
    OPENSSL_free(r->pt);
    OPENSSL_clear_free(r, sizeof *r);
}

dcmseal_status dcmseal_inspect_fd(dcmseal_header_info *info, uint64_t *plain_bytes, int fd,
                                  dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    uint8_t pre[DCMSEAL_PREAMBLE_LEN];
    uint64_t plain;
    struct stat sb;
    DCMSEAL_ENSURE(info != NULL, err, DCMSEAL_E_USAGE, "inspect: missing argument");
    DCMSEAL_ENSURE(fstat(fd, &sb) == 0, err, DCMSEAL_E_IO, "stat failed: %s",
                   strerror(errno));
    /* A short file is the header parser's to describe. */
    size_t n = (uint64_t)sb.st_size < sizeof pre ? (size_t)sb.st_size : sizeof pre;
    DCMSEAL_GUARD(pread_full(fd, pre, n, 0, err));
    DCMSEAL_GUARD(dcmseal_header_inspect(info, pre, n, err));
    DCMSEAL_GUARD(dcmseal_object_plaintext_size(&plain, info, (uint64_t)sb.st_size, err));
    if (plain_bytes != NULL)
        *plain_bytes = plain;
out:
    return st;
}
