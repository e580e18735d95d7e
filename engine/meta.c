/* The metadata block of format v2 (FORMAT.md "Metadata block"): the file an
 * object was made from, sealed under a key of its own. */
#include <string.h>

#include <openssl/crypto.h>

#include "internal.h"

/* 0xff * 11 || 0x02: STREAM nonces end in 0x00 or 0x01, so this one is
 * never a segment's, even though the key differs as well. */
static const uint8_t META_NONCE[DCMSEAL_NONCE_LEN] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                                       0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
#define META_FORMAT 1

int dcmseal_meta_path_ok(const char *path)
{
    if (path == NULL)
        return 0;
    size_t n = strnlen(path, DCMSEAL_META_PATH_MAX + 1);
    if (n == 0 || n > DCMSEAL_META_PATH_MAX)
        return 0;
    /* Component by component: never empty, never "." or "..", so that the
     * path joined below a directory stays below it. */
    for (const char *c = path;;) {
        const char *end = strchr(c, '/');
        size_t len = end ? (size_t)(end - c) : strlen(c);
        if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
            return 0;
        if (end == NULL)
            return 1;
        c = end + 1;
    }
}

static size_t plain_len(size_t path_len)
{
    size_t n = DCMSEAL_META_FIELDS + path_len;
    return (n + DCMSEAL_META_BLOCK - 1) / DCMSEAL_META_BLOCK * DCMSEAL_META_BLOCK;
}

uint32_t dcmseal_meta_len(const dcmseal_meta *m)
{
    return (uint32_t)(plain_len(strnlen(m->path, DCMSEAL_META_PATH_MAX)) + DCMSEAL_TAG_LEN);
}

size_t dcmseal_meta_encode(uint8_t out[DCMSEAL_META_PLAIN_MAX], const dcmseal_meta *m)
{
    const size_t p = strnlen(m->path, DCMSEAL_META_PATH_MAX), n = plain_len(p);
    const uint64_t t = (uint64_t)m->mtime_sec;
    memset(out, 0, n);
    out[0] = META_FORMAT;
    out[2] = (uint8_t)(p >> 8);
    out[3] = (uint8_t)p;
    for (int i = 0; i < 4; i++)
        out[4 + i] = (uint8_t)(m->mode >> (24 - 8 * i));
    for (int i = 0; i < 8; i++)
        out[8 + i] = (uint8_t)(t >> (56 - 8 * i));
    for (int i = 0; i < 4; i++)
        out[16 + i] = (uint8_t)(m->mtime_nsec >> (24 - 8 * i));
    memcpy(out + DCMSEAL_META_FIELDS, m->path, p);
    return n;
}

int dcmseal_meta_decode(dcmseal_meta *m, const uint8_t *in, size_t len)
{
    uint64_t t = 0;
    uint32_t mode = 0, nsec = 0;
    if (len < DCMSEAL_META_FIELDS || in[0] != META_FORMAT || in[1] != 0)
        return 0;
    const size_t p = (size_t)in[2] << 8 | in[3];
    for (int i = 0; i < 4; i++) {
        mode = mode << 8 | in[4 + i];
        nsec = nsec << 8 | in[16 + i];
    }
    for (int i = 0; i < 8; i++)
        t = t << 8 | in[8 + i];
    /* Exactly what a writer makes: the length the path implies, zero
     * padding, a path the writer would accept. */
    if (p == 0 || p > DCMSEAL_META_PATH_MAX || len != plain_len(p) || mode > 0777 ||
        nsec >= 1000000000u || memchr(in + DCMSEAL_META_FIELDS, 0, p) != NULL)
        return 0;
    for (size_t i = DCMSEAL_META_FIELDS + p; i < len; i++)
        if (in[i] != 0)
            return 0;
    memset(m, 0, sizeof *m);
    memcpy(m->path, in + DCMSEAL_META_FIELDS, p);
    m->mode = mode;
    m->mtime_sec = (int64_t)t;
    m->mtime_nsec = nsec;
    if (!dcmseal_meta_path_ok(m->path)) {
        memset(m, 0, sizeof *m);
        return 0;
    }
    return 1;
}

dcmseal_status dcmseal_meta_seal(uint8_t *out, const dcmseal_meta *m, const dcmseal_keys *keys,
                                 const uint8_t header[DCMSEAL_HEADER_LEN], dcmseal_error *err)
{
    uint8_t pt[DCMSEAL_META_PLAIN_MAX];
    EVP_CIPHER_CTX *gcm = NULL;
    const size_t n = dcmseal_meta_encode(pt, m);
    dcmseal_status st = dcmseal_gcm_init(&gcm, keys->meta, 1, err);
    if (st == DCMSEAL_OK)
        st = dcmseal_gcm_seal(gcm, out, out + n, META_NONCE, header, DCMSEAL_HEADER_LEN, pt, n,
                              err);
    EVP_CIPHER_CTX_free(gcm);
    OPENSSL_cleanse(pt, n);
    return st;
}

dcmseal_status dcmseal_meta_open(dcmseal_meta *m, const uint8_t *in, size_t len,
                                 const dcmseal_keys *keys,
                                 const uint8_t header[DCMSEAL_HEADER_LEN], dcmseal_error *err)
{
    uint8_t pt[DCMSEAL_META_PLAIN_MAX];
    EVP_CIPHER_CTX *gcm = NULL;
    dcmseal_status st = DCMSEAL_OK;
    /* The header vouched for the length (dcmseal_header_decode). */
    const size_t n = len - DCMSEAL_TAG_LEN;
    DCMSEAL_ENSURE(len > DCMSEAL_TAG_LEN && n <= sizeof pt, err, DCMSEAL_E_FORMAT,
                   "bad metadata block length %zu", len);
    DCMSEAL_GUARD(dcmseal_gcm_init(&gcm, keys->meta, 0, err));
    if (dcmseal_gcm_open(gcm, pt, META_NONCE, header, DCMSEAL_HEADER_LEN, in, n, in + n, err) !=
        DCMSEAL_OK) {
        st = dcmseal_fail(err, DCMSEAL_E_AUTH, "authentication failed in the metadata block");
        goto out;
    }
    /* Authentic, hence written by a holder of the token: still checked as
     * strictly as the writer checks it, since its path will be joined below
     * a directory. */
    DCMSEAL_ENSURE(dcmseal_meta_decode(m, pt, n), err, DCMSEAL_E_AUTH,
                   "the metadata block is authentic but malformed");
out:
    EVP_CIPHER_CTX_free(gcm);
    OPENSSL_cleanse(pt, sizeof pt);
    return st;
}
