/* The key ring over a PKCS#11 session: the engine's only way to the token. */
#include <string.h>

#include <openssl/crypto.h>

#include "internal.h"

struct dcmseal_token_ring {
    dcmseal_keyring ring;
    dcmseal_session_t *session;
    dcmseal_oaep prefer;
    int has_current;
    dcmseal_kek_info current; /* the KEK new slots are wrapped under */
    /* Objects in a batch mostly share one KEK version: remember the last one
     * found so that finding it stays off the per-object path. */
    int have_last;
    dcmseal_kek_info last;
};

static void describe(dcmseal_wrap_meta *meta, const dcmseal_kek_info *kek, dcmseal_oaep oaep)
{
    memcpy(meta->kek_name, kek->name, sizeof meta->kek_name);
    meta->kek_version = kek->version;
    meta->oaep = oaep;
    memcpy(meta->kek_fingerprint, kek->fingerprint, sizeof meta->kek_fingerprint);
}

static dcmseal_status ring_current(void *self, dcmseal_wrap_meta *meta, dcmseal_error *err)
{
    dcmseal_token_ring_t *r = self;
    if (!r->has_current)
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "no key named for wrapping");
    describe(meta, &r->current, DCMSEAL_OAEP_AUTO);
    return DCMSEAL_OK;
}

static dcmseal_status ring_wrap(void *self, dcmseal_wrap_meta *meta, uint8_t *out,
                                size_t out_cap, size_t *out_len,
                                const uint8_t dek[DCMSEAL_DEK_LEN], dcmseal_error *err)
{
    dcmseal_token_ring_t *r = self;
    dcmseal_oaep used = DCMSEAL_OAEP_AUTO;
    dcmseal_status st = ring_current(self, meta, err);
    if (st == DCMSEAL_OK)
        st = dcmseal_kek_wrap(r->session, out, out_cap, out_len, &used, &r->current,
                              r->prefer, dek, DCMSEAL_DEK_LEN, err);
    meta->oaep = used;
    return st;
}

/* The KEK a slot names, checked against the fingerprint the slot recorded. */
static dcmseal_status ring_lookup(dcmseal_token_ring_t *r, const dcmseal_wrap_meta *meta,
                                  dcmseal_error *err)
{
    dcmseal_status st;
    if (!r->have_last || r->last.version != meta->kek_version ||
        strcmp(r->last.name, meta->kek_name) != 0) {
        r->have_last = 0;
        if ((st = dcmseal_kek_find(r->session, &r->last, meta->kek_name, meta->kek_version,
                                   err)) != DCMSEAL_OK)
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
    return DCMSEAL_OK;
}

static dcmseal_status ring_unwrap(void *self, uint8_t dek[DCMSEAL_DEK_LEN],
                                  const dcmseal_wrap_meta *meta, const uint8_t *wrapped,
                                  size_t wrapped_len, dcmseal_error *err)
{
    dcmseal_token_ring_t *r = self;
    size_t len = 0;
    dcmseal_status st = ring_lookup(r, meta, err);
    if (st == DCMSEAL_OK)
        st = dcmseal_kek_unwrap(r->session, dek, DCMSEAL_DEK_LEN, &len, &r->last, meta->oaep,
                                wrapped, wrapped_len, err);
    if (st == DCMSEAL_OK && len != DCMSEAL_DEK_LEN)
        st = dcmseal_fail(err, DCMSEAL_E_AUTH, "authentication failed (wrapped key)");
    if (st != DCMSEAL_OK)
        OPENSSL_cleanse(dek, DCMSEAL_DEK_LEN);
    return st;
}

static dcmseal_status ring_rewrap(void *self, dcmseal_wrap_meta *meta, uint8_t *out,
                                  size_t out_cap, size_t *out_len, int *in_token,
                                  const dcmseal_wrap_meta *old_meta, const uint8_t *wrapped,
                                  size_t wrapped_len, dcmseal_error *err)
{
    dcmseal_token_ring_t *r = self;
    dcmseal_oaep used = DCMSEAL_OAEP_AUTO;
    dcmseal_status st = ring_current(self, meta, err);
    if (st == DCMSEAL_OK)
        st = ring_lookup(r, old_meta, err);
    if (st == DCMSEAL_OK)
        st = dcmseal_kek_rewrap(r->session, out, out_cap, out_len, &used, in_token, &r->last,
                                old_meta->oaep, wrapped, wrapped_len, &r->current, r->prefer,
                                err);
    meta->oaep = used;
    return st;
}

/* ---- origin (FORMAT.md "Origin proof") ---------------------------------------- */

static int is_current(const dcmseal_token_ring_t *r, const dcmseal_wrap_meta *meta)
{
    return r->has_current && r->current.version == meta->kek_version &&
           strcmp(r->current.name, meta->kek_name) == 0 &&
           memcmp(r->current.fingerprint, meta->kek_fingerprint, sizeof meta->kek_fingerprint) ==
               0;
}

/* What kek_find learnt about the KEK: the writer asks about the current one
 * (found at start), a reader about the one its slot names (found once per
 * version, as for unwrap). */
static dcmseal_status ring_origin(void *self, dcmseal_origin_policy *out,
                                  const dcmseal_wrap_meta *meta, dcmseal_error *err)
{
    dcmseal_token_ring_t *r = self;
    const dcmseal_kek_info *k = &r->current;
    if (!is_current(r, meta)) {
        dcmseal_status st = ring_lookup(r, meta, err);
        if (st != DCMSEAL_OK)
            return st;
        k = &r->last;
    }
    out->has_key = k->has_origin;
    out->required = k->require_origin;
    return DCMSEAL_OK;
}

static dcmseal_status ring_prove(void *self, uint8_t proof[DCMSEAL_PROOF_LEN],
                                 const dcmseal_wrap_meta *meta, const uint8_t *msg,
                                 size_t msg_len, dcmseal_error *err)
{
    dcmseal_token_ring_t *r = self;
    return dcmseal_origin_sign(r->session, proof, meta->kek_name, meta->kek_version, msg,
                               msg_len, err);
}

static dcmseal_status ring_check_proof(void *self, const dcmseal_wrap_meta *meta,
                                       const uint8_t *msg, size_t msg_len,
                                       const uint8_t proof[DCMSEAL_PROOF_LEN], dcmseal_error *err)
{
    dcmseal_token_ring_t *r = self;
    /* The KEK the slot names first: a missing, disabled or other key is
     * reported as such, not as a proof that does not verify. */
    dcmseal_status st = ring_lookup(r, meta, err);
    if (st == DCMSEAL_OK)
        st = dcmseal_origin_verify(r->session, meta->kek_name, meta->kek_version, msg, msg_len,
                                   proof, err);
    return st;
}

static dcmseal_status ring_conceal(void *self, uint8_t mac[DCMSEAL_PROOF_LEN], const char *name,
                                   const uint8_t *msg, size_t msg_len, dcmseal_error *err)
{
    dcmseal_token_ring_t *r = self;
    return dcmseal_conceal_sign(r->session, mac, name, msg, msg_len, err);
}

dcmseal_status dcmseal_token_ring_set_current(dcmseal_token_ring_t *r, const char *name,
                                              uint32_t version, dcmseal_error *err)
{
    dcmseal_status st;
    /* An explicit version that is already current needs no token call; the
     * primary may have moved, so it is looked up again. */
    if (r->has_current && version != 0 && r->current.version == version &&
        strcmp(r->current.name, name) == 0)
        return DCMSEAL_OK;
    r->has_current = 0;
    if ((st = dcmseal_kek_find(r->session, &r->current, name, version, err)) != DCMSEAL_OK)
        return st;
    /* Said once here rather than at every object's wrap. */
    if (r->current.weak & DCMSEAL_KEK_NO_PUBLIC)
        return dcmseal_fail(err, DCMSEAL_E_KEY,
                            "key '%s' v%u on token '%s' has no public half: objects under it "
                            "still decrypt, but it cannot wrap",
                            r->current.name, r->current.version,
                            dcmseal_session_get0_token_label(r->session));
    r->has_current = 1;
    return DCMSEAL_OK;
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
    r->ring = (dcmseal_keyring){
        .self = r,
        .wrap = ring_wrap,
        .unwrap = ring_unwrap,
        .rewrap = ring_rewrap,
        .current = ring_current,
        .origin = ring_origin,
        .prove = ring_prove,
        .check_proof = ring_check_proof,
        .conceal = ring_conceal,
    };
    r->session = session;
    r->prefer = prefer;
    if (wrap_key != NULL)
        DCMSEAL_GUARD(dcmseal_token_ring_set_current(r, wrap_key, 0, err));
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
