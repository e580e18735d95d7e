/* Primitives of the format: HKDF key schedule, identity digest, GCM. */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>

#include "internal.h"

dcmseal_status dcmseal_ossl_fail(dcmseal_error *err, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[160] = "no detail";
    if (e != 0)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return dcmseal_fail(err, DCMSEAL_E_INTERNAL, "%s failed: %s", what, buf);
}

dcmseal_status dcmseal_hkdf_sha256(uint8_t *out, size_t out_len,
                                   const uint8_t *ikm, size_t ikm_len,
                                   const uint8_t *salt, size_t salt_len,
                                   const uint8_t *info, size_t info_len,
                                   dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_HKDF, NULL);
    EVP_KDF_CTX *kctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    /* OSSL_PARAM wants non-const pointers and a non-NULL pointer even for
     * empty inputs; it never writes through them. */
    static uint8_t empty[1];
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                          ikm_len ? (void *)ikm : empty, ikm_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
                                          salt_len ? (void *)salt : empty, salt_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                          info_len ? (void *)info : empty, info_len),
        OSSL_PARAM_construct_end(),
    };
    if (kctx == NULL || EVP_KDF_derive(kctx, out, out_len, params) != 1)
        st = dcmseal_ossl_fail(err, "HKDF-SHA256");
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return st;
}

/* Labels are part of the format (FORMAT.md "Key schedule"). */
static const char LABEL_PAYLOAD[] = "dcmseal v1 payload";
static const char LABEL_COMMIT[] = "dcmseal v1 commitment";
static const char LABEL_IDENTITY[] = "dcmseal v1 identity";
/* Format v2 keeps the three above and adds one key of its own. */
static const char LABEL_META[] = "dcmseal v2 metadata";

dcmseal_status dcmseal_keys_derive(dcmseal_keys *keys,
                                   const uint8_t dek[DCMSEAL_DEK_LEN],
                                   const uint8_t salt[DCMSEAL_SALT_LEN], int with_meta,
                                   dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
#define DERIVE(field, label)                                                   \
    DCMSEAL_GUARD(dcmseal_hkdf_sha256(keys->field, sizeof keys->field, dek,    \
                                      DCMSEAL_DEK_LEN, salt, DCMSEAL_SALT_LEN, \
                                      (const uint8_t *)label,                  \
                                      sizeof label - 1, err))
    DERIVE(payload, LABEL_PAYLOAD);
    DERIVE(commitment, LABEL_COMMIT);
    DERIVE(identity, LABEL_IDENTITY);
    /* Only objects with a metadata block need it: one HKDF less for the
     * others, which are most. */
    if (with_meta)
        DERIVE(meta, LABEL_META);
#undef DERIVE
out:
    if (st != DCMSEAL_OK)
        OPENSSL_cleanse(keys, sizeof *keys);
    return st;
}

dcmseal_status dcmseal_identity_tag(uint8_t tag[DCMSEAL_IDTAG_LEN],
                                    const dcmseal_keys *keys,
                                    const dcmseal_identity *id,
                                    dcmseal_error *err)
{
    /* Each UID is length-prefixed so that no two identities share an
     * encoding; 3 * (1 + 64) bytes at most. */
    uint8_t ctx[3 * 65];
    size_t n = 0;
    if (id != NULL) {
        const char *uids[3] = {id->sop_class_uid, id->sop_instance_uid,
                               id->study_instance_uid};
        for (int i = 0; i < 3; i++) {
            size_t l = strnlen(uids[i], 64);
            ctx[n++] = (uint8_t)l;
            memcpy(ctx + n, uids[i], l);
            n += l;
        }
    }
    unsigned int tag_len = 0;
    if (HMAC(EVP_sha256(), keys->identity, sizeof keys->identity, ctx, n, tag,
             &tag_len) == NULL || tag_len != DCMSEAL_IDTAG_LEN)
        return dcmseal_ossl_fail(err, "HMAC-SHA256");
    return DCMSEAL_OK;
}

dcmseal_status dcmseal_gcm_init(EVP_CIPHER_CTX **ctx, const uint8_t key[32],
                                int encrypt, dcmseal_error *err)
{
    *ctx = EVP_CIPHER_CTX_new();
    if (*ctx == NULL ||
        EVP_CipherInit_ex(*ctx, EVP_aes_256_gcm(), NULL, key, NULL, encrypt) != 1) {
        EVP_CIPHER_CTX_free(*ctx);
        *ctx = NULL;
        return dcmseal_ossl_fail(err, "AES-256-GCM init");
    }
    return DCMSEAL_OK;
}

/* One GCM pass; |tag| is output when sealing and input when opening. */
static int gcm_run(EVP_CIPHER_CTX *ctx, int encrypt, uint8_t *out,
                   uint8_t tag[DCMSEAL_TAG_LEN],
                   const uint8_t nonce[DCMSEAL_NONCE_LEN], const uint8_t *aad,
                   size_t aad_len, const uint8_t *in, size_t in_len)
{
    int l = 0;
    if (in_len > INT32_MAX || aad_len > INT32_MAX)
        return 0;
    if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, encrypt) != 1)
        return 0;
    if (aad_len > 0 && EVP_CipherUpdate(ctx, NULL, &l, aad, (int)aad_len) != 1)
        return 0;
    if (in_len > 0 && EVP_CipherUpdate(ctx, out, &l, in, (int)in_len) != 1)
        return 0;
    if (!encrypt &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, DCMSEAL_TAG_LEN, tag) != 1)
        return 0;
    if (EVP_CipherFinal_ex(ctx, out + (in_len > 0 ? l : 0), &l) != 1)
        return 0;
    return encrypt ? EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG,
                                         DCMSEAL_TAG_LEN, tag) == 1
                   : 1;
}

dcmseal_status dcmseal_gcm_seal(EVP_CIPHER_CTX *ctx, uint8_t *out,
                                uint8_t tag[DCMSEAL_TAG_LEN],
                                const uint8_t nonce[DCMSEAL_NONCE_LEN],
                                const uint8_t *aad, size_t aad_len,
                                const uint8_t *in, size_t in_len,
                                dcmseal_error *err)
{
    if (!gcm_run(ctx, 1, out, tag, nonce, aad, aad_len, in, in_len))
        return dcmseal_ossl_fail(err, "AES-256-GCM seal");
    return DCMSEAL_OK;
}

dcmseal_status dcmseal_gcm_open(EVP_CIPHER_CTX *ctx, uint8_t *out,
                                const uint8_t nonce[DCMSEAL_NONCE_LEN],
                                const uint8_t *aad, size_t aad_len,
                                const uint8_t *in, size_t in_len,
                                const uint8_t tag[DCMSEAL_TAG_LEN],
                                dcmseal_error *err)
{
    uint8_t t[DCMSEAL_TAG_LEN];
    memcpy(t, tag, sizeof t);
    if (!gcm_run(ctx, 0, out, t, nonce, aad, aad_len, in, in_len)) {
        /* GCM decrypts before it verifies: never leave unauthenticated
         * plain text behind. */
        if (in_len > 0)
            OPENSSL_cleanse(out, in_len);
        ERR_clear_error();
        return dcmseal_fail(err, DCMSEAL_E_AUTH, "authentication failed");
    }
    return DCMSEAL_OK;
}

void dcmseal_segment_nonce(uint8_t nonce[DCMSEAL_NONCE_LEN], uint64_t index,
                           int last)
{
    memset(nonce, 0, DCMSEAL_NONCE_LEN);
    for (int i = 0; i < 8; i++)
        nonce[10 - i] = (uint8_t)(index >> (8 * i));
    nonce[11] = last ? 1 : 0;
}
