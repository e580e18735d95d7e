/* Streaming encryption and decryption in the STREAM construction
 * (FORMAT.md "Payload"): every segment but the last is full, and a segment is
 * only sealed or opened once we know whether it is the last one. */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "internal.h"

#define SEGMENT_CT(seg) ((size_t)(seg) + DCMSEAL_TAG_LEN)

struct dcmseal_encryptor {
    EVP_CIPHER_CTX *gcm;
    uint8_t aad[DCMSEAL_HEADER_LEN];
    /* The sealed metadata block, written ahead of the first segment. */
    uint8_t *meta;
    size_t meta_pending;
    uint32_t seg;
    uint64_t index;
    uint8_t *buf; /* plain text of the segment not yet known to be non-last */
    size_t buffered;
    size_t buf_used; /* the most |buf| ever held: what free wipes */
    dcmseal_status failed;
    int finished;
};

struct dcmseal_decryptor {
    const dcmseal_keyring *ring;
    uint8_t pre[DCMSEAL_PREAMBLE_LEN];
    size_t pre_len;
    int have_header;
    dcmseal_header h;
    dcmseal_header_info info;
    /* In the secure heap; once GCM is set up only the identity key, and
     * the metadata key until the metadata block is open, are kept. */
    dcmseal_keys *keys;
    uint8_t *meta_ct;     /* the metadata block as it arrives */
    size_t meta_got;
    int have_meta;        /* the block is open (or there is none) */
    dcmseal_meta meta;
    EVP_CIPHER_CTX *gcm;
    uint8_t *buf; /* cipher text of the segment not yet known to be non-last */
    size_t buffered;
    size_t buf_used; /* the most |buf| ever held: what free wipes */
    uint64_t index;
    dcmseal_status failed;
    int finished;
};

/* ---- shared ------------------------------------------------------------- */

/* Makes |st| sticky and wipes the |n| bytes the failing call had written. */
static dcmseal_status stream_fail(dcmseal_status *failed, dcmseal_status st,
                                  uint8_t *out, size_t n, size_t *out_len)
{
    if (n > 0)
        OPENSSL_cleanse(out, n);
    if (out_len != NULL)
        *out_len = 0;
    *failed = st;
    return st;
}

static dcmseal_status stream_refuse(dcmseal_status failed, int finished,
                                    size_t *out_len, dcmseal_error *err)
{
    if (out_len != NULL)
        *out_len = 0;
    if (failed != DCMSEAL_OK)
        return dcmseal_fail(err, failed, "stream already failed");
    if (finished)
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "stream already finished");
    return DCMSEAL_OK;
}

/* ---- encryption --------------------------------------------------------- */

static dcmseal_status seal_segment(dcmseal_encryptor_t *enc, uint8_t *out,
                                   const uint8_t *in, size_t n, int last,
                                   dcmseal_error *err)
{
    uint8_t nonce[DCMSEAL_NONCE_LEN];
    dcmseal_segment_nonce(nonce, enc->index, last);
    dcmseal_status st = dcmseal_gcm_seal(enc->gcm, out, out + n, nonce, enc->aad,
                                         sizeof enc->aad, in, n, err);
    enc->index++;
    return st;
}

dcmseal_status dcmseal_encrypt_init_fixed(dcmseal_encryptor_t **out,
                                          uint8_t header[DCMSEAL_PREAMBLE_LEN],
                                          const dcmseal_encrypt_params *p,
                                          const uint8_t dek[DCMSEAL_DEK_LEN],
                                          const uint8_t salt[DCMSEAL_SALT_LEN],
                                          dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    dcmseal_encryptor_t *enc = NULL;
    dcmseal_keys *keys = OPENSSL_secure_zalloc(sizeof *keys);
    dcmseal_header h;
    dcmseal_slot slot;
    dcmseal_origin_policy pol;
    uint8_t *raw = header + DCMSEAL_HEADER_LEN;
    memset(&h, 0, sizeof h);
    memset(&slot, 0, sizeof slot);

    DCMSEAL_ENSURE(out != NULL && header != NULL && p != NULL && p->keyring != NULL &&
                   p->keyring->wrap != NULL, err, DCMSEAL_E_USAGE,
                   "encrypt: missing argument or key ring");
    DCMSEAL_ENSURE(keys != NULL, err, DCMSEAL_E_INTERNAL, "out of secure memory");
    h.segment_size = p->segment_size ? p->segment_size : DCMSEAL_SEGMENT_DEFAULT;
    DCMSEAL_ENSURE(h.segment_size >= DCMSEAL_SEGMENT_MIN &&
                   h.segment_size <= DCMSEAL_SEGMENT_MAX, err, DCMSEAL_E_USAGE,
                   "segment size %u outside %u..%u", h.segment_size,
                   DCMSEAL_SEGMENT_MIN, DCMSEAL_SEGMENT_MAX);
    DCMSEAL_ENSURE(p->meta == NULL || dcmseal_meta_path_ok(p->meta->path), err,
                   DCMSEAL_E_USAGE, "encrypt: the metadata path is not a relative path");
    DCMSEAL_ENSURE(p->meta == NULL || (p->meta->mode <= 0777 &&
                                       p->meta->mtime_nsec < 1000000000u),
                   err, DCMSEAL_E_USAGE, "encrypt: bad metadata mode or time");
    enc = OPENSSL_zalloc(sizeof *enc);
    DCMSEAL_ENSURE(enc != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    enc->seg = h.segment_size;
    enc->buf = OPENSSL_malloc(enc->seg);
    DCMSEAL_ENSURE(enc->buf != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");

    DCMSEAL_GUARD(p->keyring->wrap(p->keyring->self, &slot.meta, slot.wrapped,
                                   sizeof slot.wrapped, &slot.wrapped_len, dek, err));
    slot.generation = 1;
    /* The KEK decides the format: v2 (with a proof) when it has an origin
     * key, else v1, which only a name that accepts unproven objects may
     * get; docs/KEYS.md says how a KEK made before origin keys gets one. */
    DCMSEAL_GUARD(dcmseal_origin_policy_of(&pol, p->keyring, &slot.meta, err));
    DCMSEAL_ENSURE(pol.has_key || !pol.required, err, DCMSEAL_E_KEY,
                   "key '%s' v%u has no origin key, and its policy requires origin proofs: "
                   "run `dcmseal key upgrade %s`",
                   slot.meta.kek_name, slot.meta.kek_version, slot.meta.kek_name);
    DCMSEAL_ENSURE(pol.has_key || p->meta == NULL, err, DCMSEAL_E_KEY,
                   "key '%s' v%u has no origin key; concealed names need one: run `dcmseal "
                   "key upgrade %s`",
                   slot.meta.kek_name, slot.meta.kek_version, slot.meta.kek_name);
    h.version = pol.has_key ? DCMSEAL_FORMAT_V2 : DCMSEAL_FORMAT_V1;
    h.flags = p->identity != NULL ? DCMSEAL_HEADER_FLAG_DICOM : 0;
    if (p->meta != NULL) {
        h.flags |= DCMSEAL_HEADER_FLAG_META;
        h.meta_len = dcmseal_meta_len(p->meta);
    }
    memcpy(h.salt, salt, DCMSEAL_SALT_LEN);
    DCMSEAL_GUARD(dcmseal_keys_derive(keys, dek, salt, p->meta != NULL, err));
    DCMSEAL_GUARD(dcmseal_identity_tag(h.identity_tag, keys, p->identity, err));
    memcpy(h.commitment, keys->commitment, DCMSEAL_COMMIT_LEN);
    DCMSEAL_GUARD(dcmseal_gcm_init(&enc->gcm, keys->payload, 1, err));

    dcmseal_header_encode(enc->aad, &h);
    memcpy(header, enc->aad, DCMSEAL_HEADER_LEN);
    if (pol.has_key)
        DCMSEAL_GUARD(dcmseal_origin_prove(&slot, raw, enc->aad, p->keyring, err));
    else
        dcmseal_slot_encode(raw, &slot);
    memset(header + DCMSEAL_HEADER_LEN + DCMSEAL_SLOT_LEN, 0, DCMSEAL_SLOT_LEN);
    if (p->meta != NULL) {
        enc->meta = OPENSSL_malloc(h.meta_len);
        DCMSEAL_ENSURE(enc->meta != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
        DCMSEAL_GUARD(dcmseal_meta_seal(enc->meta, p->meta, keys, enc->aad, err));
        enc->meta_pending = h.meta_len;
    }
    *out = enc;
    enc = NULL;
out:
    OPENSSL_secure_clear_free(keys, sizeof *keys);
    dcmseal_encryptor_free(enc);
    return st;
}

dcmseal_status dcmseal_encrypt_init(dcmseal_encryptor_t **out,
                                    uint8_t header[DCMSEAL_PREAMBLE_LEN],
                                    const dcmseal_encrypt_params *params,
                                    dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    uint8_t *dek = OPENSSL_secure_malloc(DCMSEAL_DEK_LEN), salt[DCMSEAL_SALT_LEN];
    DCMSEAL_ENSURE(dek != NULL, err, DCMSEAL_E_INTERNAL, "out of secure memory");
    DCMSEAL_ENSURE(RAND_priv_bytes(dek, DCMSEAL_DEK_LEN) == 1 &&
                   RAND_bytes(salt, sizeof salt) == 1,
                   err, DCMSEAL_E_INTERNAL, "random generator failed");
    st = dcmseal_encrypt_init_fixed(out, header, params, dek, salt, err);
out:
    OPENSSL_secure_clear_free(dek, DCMSEAL_DEK_LEN);
    return st;
}

size_t dcmseal_encrypt_update_max(const dcmseal_encryptor_t *enc, size_t in_len)
{
    return enc->meta_pending + (enc->buffered + in_len) / enc->seg * SEGMENT_CT(enc->seg);
}

size_t dcmseal_encrypt_final_max(const dcmseal_encryptor_t *enc)
{
    return enc->meta_pending + SEGMENT_CT(enc->buffered);
}

/* The metadata block goes out with the first output, ahead of the first
 * segment: it is cipher text already, sealed at init. */
static size_t put_meta(dcmseal_encryptor_t *enc, uint8_t *out)
{
    size_t n = enc->meta_pending;
    if (n > 0) {
        memcpy(out, enc->meta, n);
        enc->meta_pending = 0;
    }
    return n;
}

dcmseal_status dcmseal_encrypt_update(dcmseal_encryptor_t *enc, uint8_t *out,
                                      size_t out_cap, size_t *out_len,
                                      const uint8_t *in, size_t in_len,
                                      dcmseal_error *err)
{
    dcmseal_status st;
    size_t n = 0;
    if ((st = stream_refuse(enc->failed, enc->finished, out_len, err)) != DCMSEAL_OK)
        return st;
    if (out_cap < dcmseal_encrypt_update_max(enc, in_len))
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "encrypt: output buffer too small");
    n = put_meta(enc, out);
    while (in_len > 0) {
        if (enc->buffered == enc->seg) {
            DCMSEAL_GUARD(seal_segment(enc, out + n, enc->buf, enc->seg, 0, err));
            n += SEGMENT_CT(enc->seg);
            enc->buffered = 0;
        }
        /* Seal straight from the caller's buffer when a whole segment and
         * at least one more byte are there: no copy on the bulk path. */
        if (enc->buffered == 0 && in_len > enc->seg) {
            DCMSEAL_GUARD(seal_segment(enc, out + n, in, enc->seg, 0, err));
            n += SEGMENT_CT(enc->seg);
            in += enc->seg;
            in_len -= enc->seg;
            continue;
        }
        size_t take = enc->seg - enc->buffered < in_len ? enc->seg - enc->buffered : in_len;
        memcpy(enc->buf + enc->buffered, in, take);
        enc->buffered += take;
        dcmseal_high_water(&enc->buf_used, enc->buffered);
        in += take;
        in_len -= take;
    }
    *out_len = n;
out:
    if (st != DCMSEAL_OK)
        return stream_fail(&enc->failed, st, out, n, out_len);
    return DCMSEAL_OK;
}

dcmseal_status dcmseal_encrypt_final(dcmseal_encryptor_t *enc, uint8_t *out,
                                     size_t out_cap, size_t *out_len,
                                     dcmseal_error *err)
{
    dcmseal_status st;
    if ((st = stream_refuse(enc->failed, enc->finished, out_len, err)) != DCMSEAL_OK)
        return st;
    if (out_cap < dcmseal_encrypt_final_max(enc))
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "encrypt: output buffer too small");
    const size_t m = put_meta(enc, out);
    st = seal_segment(enc, out + m, enc->buf, enc->buffered, 1, err);
    if (st != DCMSEAL_OK)
        return stream_fail(&enc->failed, st, out, m + SEGMENT_CT(enc->buffered), out_len);
    *out_len = m + SEGMENT_CT(enc->buffered);
    enc->finished = 1;
    OPENSSL_cleanse(enc->buf, enc->buffered);
    enc->buffered = 0;
    return DCMSEAL_OK;
}

void dcmseal_encryptor_free(dcmseal_encryptor_t *enc)
{
    if (enc == NULL)
        return;
    EVP_CIPHER_CTX_free(enc->gcm);
    OPENSSL_free(enc->meta); /* cipher text only */
    /* Not the whole segment: small objects never fill it (see buf_used). */
    if (enc->buf != NULL)
        OPENSSL_cleanse(enc->buf, enc->buf_used);
    OPENSSL_free(enc->buf);
    OPENSSL_clear_free(enc, sizeof *enc);
}

/* ---- decryption --------------------------------------------------------- */

dcmseal_status dcmseal_decrypt_new(dcmseal_decryptor_t **out,
                                   const dcmseal_keyring *keyring,
                                   dcmseal_error *err)
{
    if (out == NULL || keyring == NULL)
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "decrypt: missing argument");
    *out = OPENSSL_zalloc(sizeof **out);
    if (*out == NULL)
        return dcmseal_fail(err, DCMSEAL_E_INTERNAL, "out of memory");
    (*out)->ring = keyring;
    return DCMSEAL_OK;
}

size_t dcmseal_decrypt_update_max(const dcmseal_decryptor_t *dec, size_t in_len)
{
    /* Plain text is never longer than the cipher text it comes from. */
    if (!dec->have_header) {
        size_t rest = DCMSEAL_PREAMBLE_LEN - dec->pre_len;
        return in_len > rest ? in_len - rest : 0;
    }
    if (!dec->have_meta) { /* the metadata block yields no plain text here */
        size_t rest = dec->h.meta_len - dec->meta_got;
        return in_len > rest ? in_len - rest : 0;
    }
    return dec->buffered + in_len;
}

/* Called once the preamble is complete: origin, unwrap, commit, set up
 * GCM. */
static dcmseal_status decrypt_start(dcmseal_decryptor_t *dec, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    dcmseal_slot slot;
    memset(&slot, 0, sizeof slot);
    DCMSEAL_GUARD(dcmseal_preamble_decode(&dec->h, &slot, &dec->info, dec->pre,
                                          sizeof dec->pre, err));
    dec->keys = OPENSSL_secure_zalloc(sizeof *dec->keys);
    DCMSEAL_ENSURE(dec->keys != NULL, err, DCMSEAL_E_INTERNAL, "out of secure memory");
    DCMSEAL_GUARD(dcmseal_open_keys(dec->keys, &dec->info.origin, dec->pre,
                                    dec->info.active_slot, &dec->h, &slot, dec->ring, err));
    DCMSEAL_GUARD(dcmseal_gcm_init(&dec->gcm, dec->keys->payload, 0, err));
    /* What is left to do needs the identity key, and the metadata key
     * until its block is open. */
    OPENSSL_cleanse(dec->keys->payload, sizeof dec->keys->payload);
    OPENSSL_cleanse(dec->keys->commitment, sizeof dec->keys->commitment);
    dec->buf = OPENSSL_malloc(SEGMENT_CT(dec->h.segment_size));
    DCMSEAL_ENSURE(dec->buf != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    if (dec->h.meta_len > 0) {
        dec->meta_ct = OPENSSL_malloc(dec->h.meta_len);
        DCMSEAL_ENSURE(dec->meta_ct != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    } else {
        dec->have_meta = 1;
    }
    dec->have_header = 1;
out:
    OPENSSL_cleanse(&slot, sizeof slot);
    return st;
}

/* Called once the metadata block is complete. */
static dcmseal_status decrypt_meta(dcmseal_decryptor_t *dec, dcmseal_error *err)
{
    dcmseal_status st = dcmseal_meta_open(&dec->meta, dec->meta_ct, dec->h.meta_len, dec->keys,
                                          dec->pre, err);
    OPENSSL_cleanse(dec->keys->meta, sizeof dec->keys->meta);
    dec->have_meta = st == DCMSEAL_OK;
    return st;
}

static dcmseal_status open_segment(dcmseal_decryptor_t *dec, uint8_t *out,
                                   const uint8_t *in, size_t len, int last,
                                   dcmseal_error *err)
{
    uint8_t nonce[DCMSEAL_NONCE_LEN];
    size_t n = len - DCMSEAL_TAG_LEN;
    dcmseal_segment_nonce(nonce, dec->index, last);
    if (dcmseal_gcm_open(dec->gcm, out, nonce, dec->pre, DCMSEAL_HEADER_LEN, in, n,
                         in + n, err) != DCMSEAL_OK)
        return dcmseal_fail(err, DCMSEAL_E_AUTH,
                            "authentication failed in segment %llu%s",
                            (unsigned long long)dec->index,
                            last ? " (last: truncated or tampered)" : "");
    dec->index++;
    return DCMSEAL_OK;
}

dcmseal_status dcmseal_decrypt_update(dcmseal_decryptor_t *dec, uint8_t *out,
                                      size_t out_cap, size_t *out_len,
                                      const uint8_t *in, size_t in_len,
                                      dcmseal_error *err)
{
    dcmseal_status st;
    size_t n = 0;
    if ((st = stream_refuse(dec->failed, dec->finished, out_len, err)) != DCMSEAL_OK)
        return st;
    if (out_cap < dcmseal_decrypt_update_max(dec, in_len))
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "decrypt: output buffer too small");
    while (in_len > 0 && !dec->have_header) {
        size_t take = sizeof dec->pre - dec->pre_len;
        take = take < in_len ? take : in_len;
        memcpy(dec->pre + dec->pre_len, in, take);
        dec->pre_len += take;
        in += take;
        in_len -= take;
        /* Fail fast on input that is not ours before waiting for slots. */
        if (dec->pre_len >= DCMSEAL_HEADER_LEN && dec->pre_len - take < DCMSEAL_HEADER_LEN)
            DCMSEAL_GUARD(dcmseal_header_decode(&dec->h, dec->pre, err));
        if (dec->pre_len == sizeof dec->pre)
            DCMSEAL_GUARD(decrypt_start(dec, err));
    }
    while (in_len > 0 && !dec->have_meta) {
        size_t take = dec->h.meta_len - dec->meta_got;
        take = take < in_len ? take : in_len;
        memcpy(dec->meta_ct + dec->meta_got, in, take);
        dec->meta_got += take;
        in += take;
        in_len -= take;
        if (dec->meta_got == dec->h.meta_len)
            DCMSEAL_GUARD(decrypt_meta(dec, err));
    }
    const size_t full = SEGMENT_CT(dec->h.segment_size);
    while (in_len > 0) {
        if (dec->buffered == full) {
            DCMSEAL_GUARD(open_segment(dec, out + n, dec->buf, full, 0, err));
            n += dec->h.segment_size;
            dec->buffered = 0;
        }
        if (dec->buffered == 0 && in_len > full) {
            DCMSEAL_GUARD(open_segment(dec, out + n, in, full, 0, err));
            n += dec->h.segment_size;
            in += full;
            in_len -= full;
            continue;
        }
        size_t take = full - dec->buffered < in_len ? full - dec->buffered : in_len;
        memcpy(dec->buf + dec->buffered, in, take);
        dec->buffered += take;
        dcmseal_high_water(&dec->buf_used, dec->buffered);
        in += take;
        in_len -= take;
    }
    *out_len = n;
out:
    if (st != DCMSEAL_OK)
        return stream_fail(&dec->failed, st, out, n, out_len);
    return DCMSEAL_OK;
}

dcmseal_status dcmseal_decrypt_final(dcmseal_decryptor_t *dec, uint8_t *out,
                                     size_t out_cap, size_t *out_len,
                                     dcmseal_error *err)
{
    dcmseal_status st;
    size_t n = 0;
    if ((st = stream_refuse(dec->failed, dec->finished, out_len, err)) != DCMSEAL_OK)
        return st;
    DCMSEAL_ENSURE(dec->have_header, err, DCMSEAL_E_FORMAT,
                   "truncated: %zu bytes, the header alone is %d", dec->pre_len,
                   DCMSEAL_PREAMBLE_LEN);
    DCMSEAL_ENSURE(dec->have_meta, err, DCMSEAL_E_AUTH,
                   "authentication failed: truncated in the metadata block");
    /* Only the first segment may be empty (empty object); a missing or
     * empty tail means the object was cut at a segment boundary. */
    DCMSEAL_ENSURE(dec->buffered > DCMSEAL_TAG_LEN ||
                   (dec->buffered == DCMSEAL_TAG_LEN && dec->index == 0),
                   err, DCMSEAL_E_AUTH, "authentication failed: truncated after segment %llu",
                   (unsigned long long)dec->index);
    n = dec->buffered - DCMSEAL_TAG_LEN;
    if (out_cap < n)
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "decrypt: output buffer too small");
    DCMSEAL_GUARD(open_segment(dec, out, dec->buf, dec->buffered, 1, err));
    *out_len = n;
    dec->finished = 1;
out:
    if (st != DCMSEAL_OK)
        return stream_fail(&dec->failed, st, out, n, out_len);
    return DCMSEAL_OK;
}

const dcmseal_header_info *dcmseal_decrypt_get0_header(const dcmseal_decryptor_t *dec)
{
    return dec->have_header ? &dec->info : NULL;
}

const dcmseal_meta *dcmseal_decrypt_get0_meta(const dcmseal_decryptor_t *dec)
{
    return dec->have_header && dec->have_meta && dec->h.meta_len > 0 ? &dec->meta : NULL;
}

dcmseal_status dcmseal_decrypt_check_identity(const dcmseal_decryptor_t *dec,
                                              const dcmseal_identity *id,
                                              dcmseal_error *err)
{
    uint8_t tag[DCMSEAL_IDTAG_LEN];
    dcmseal_status st;
    if (!dec->have_header)
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "identity check before the header");
    st = dcmseal_identity_tag(tag, dec->keys, id, err);
    if (st != DCMSEAL_OK)
        return st;
    if ((id != NULL) != dec->info.is_dicom ||
        CRYPTO_memcmp(tag, dec->h.identity_tag, sizeof tag) != 0)
        return dcmseal_fail(err, DCMSEAL_E_AUTH,
                            "identity mismatch: the object is not the one bound "
                            "into its header");
    return DCMSEAL_OK;
}

dcmseal_status dcmseal_decrypt_reader(dcmseal_reader_t **out, int fd,
                                      const dcmseal_decryptor_t *dec, dcmseal_error *err)
{
    if (!dec->have_header)
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "reader before the header");
    return dcmseal_reader_open_cipher(out, fd, &dec->h, dec->pre, dec->gcm, err);
}

void dcmseal_decryptor_free(dcmseal_decryptor_t *dec)
{
    if (dec == NULL)
        return;
    EVP_CIPHER_CTX_free(dec->gcm);
    OPENSSL_secure_clear_free(dec->keys, sizeof *dec->keys);
    if (dec->buf != NULL)
        OPENSSL_cleanse(dec->buf, dec->buf_used);
    OPENSSL_free(dec->buf);
    OPENSSL_free(dec->meta_ct); /* cipher text only */
    OPENSSL_clear_free(dec, sizeof *dec);
}
