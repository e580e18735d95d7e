/* The key ring over a PKCS#11 session: the engine's only way to the token. */
#include <string.h>

#include <openssl/crypto.h>

#include "internal.h"

struct dcmseal_token_ring {
    dcmseal_keyring ring;
    dcmseal_session_t *session;
    dcmseal_oaep prefer;
    int can_wrap;
    dcmseal_kek_info wrap_kek;
    /* Objects in a batch mostly share one KEK version: remember the last one
     * found so that finding it stays off the per-object path. */
    int have_last;
    dcmseal_kek_info last;
};

static dcmseal_status ring_wrap(void *self, dcmseal_wrap_meta *meta, uint8_t *out,
                                size_t out_cap, size_t *out_len,
                                const uint8_t dek[DCMSEAL_DEK_LEN], dcmseal_error *err)
{
    dcmseal_token_ring_t *r = self;
    dcmseal_status st;
    if (!r->can_wrap)
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "no key named for encryption");
    st = dcmseal_kek_wrap(r->session, out, out_cap, out_len, &meta->oaep, &r->wrap_kek,
                          r->prefer, dek, DCMSEAL_DEK_LEN, err);
    if (st != DCMSEAL_OK)
        return st;
    memcpy(meta->kek_name, r->wrap_kek.name, sizeof meta->kek_name);
    meta->kek_version = r->wrap_kek.version;
    memcpy(meta->kek_fingerprint, r->wrap_kek.fingerprint, sizeof meta->kek_fingerprint);
    return DCMSEAL_OK;
}

static dcmseal_status ring_unwrap(void *self, uint8_t dek[DCMSEAL_DEK_LEN],
                                  const dcmseal_wrap_meta *meta, const uint8_t *wrapped,
                                  size_t wrapped_len, dcmseal_error *err)
{
    dcmseal_token_ring_t *r = self;
    dcmseal_status st;
    size_t len = 0;
    if (!r->have_last || r->last.version != meta->kek_version ||
        strcmp(r->last.name, meta->kek_name) != 0) {
        r->have_last = 0;
        if ((st = dcmseal_kek_find(r->session, &r->last, meta->kek_name,
                                   meta->kek_version, err)) != DCMSEAL_OK)
            return st;
        r->have_last = 1;
    }
    if (CRYPTO_memcmp(r->last.fingerprint, meta->kek_fingerprint,
                      sizeof meta->kek_fingerprint) != 0)
        return dcmseal_fail(err, DCMSEAL_E_KEY,
                            "key '%s' v%u on token '%s' is not the key that wrapped "
                            "this object (fingerprint differs)",
                            meta->kek_name, meta->kek_version,
                            dcmseal_session_get0_token_label(r->session));
    st = dcmseal_kek_unwrap(r->session, dek, DCMSEAL_DEK_LEN, &len, &r->last, meta->oaep,
                            wrapped, wrapped_len, err);
    if (st == DCMSEAL_OK && len != DCMSEAL_DEK_LEN)
        st = dcmseal_fail(err, DCMSEAL_E_AUTH, "authentication failed (wrapped key)");
    if (st != DCMSEAL_OK)
        OPENSSL_cleanse(dek, DCMSEAL_DEK_LEN);
    return st;
}

dcmseal_status dcmseal_token_ring_new(dcmseal_token_ring_t **out,
                                      dcmseal_session_t *session, const char *wrap_key,
                                      dcmseal_oaep prefer, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    dcmseal_token_ring_t *r = NULL;
    DCMSEAL_ENSURE(out != NULL && session != NULL, err, DCMSEAL_E_USAGE,
                   "key ring: missing argument");
    r = OPENSSL_zalloc(sizeof *r);
    DCMSEAL_ENSURE(r != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    r->ring.self = r;
    r->ring.wrap = ring_wrap;
    r->ring.unwrap = ring_unwrap;
    r->session = session;
    r->prefer = prefer;
    if (wrap_key != NULL) {
        DCMSEAL_GUARD(dcmseal_kek_find(session, &r->wrap_kek, wrap_key, 0, err));
        r->can_wrap = 1;
    }
    *out = r;
    r = NULL;
out:
    dcmseal_token_ring_free(r);
    return st;
}

void dcmseal_token_ring_free(dcmseal_token_ring_t *ring)
{
    OPENSSL_free(ring);
}

const dcmseal_keyring *dcmseal_token_ring_get0_keyring(const dcmseal_token_ring_t *ring)
{
    return &ring->ring;
}
