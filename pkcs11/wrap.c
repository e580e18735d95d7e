/* Wrapping and unwrapping data keys with RSA-OAEP inside the token, and
 * rewrapping them from one KEK version to another. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "internal.h"

static const CK_BBOOL yes = CK_TRUE, no = CK_FALSE;

/* ---- wrap and unwrap ---------------------------------------------------- */

static void oaep_params(CK_RSA_PKCS_OAEP_PARAMS *p, dcmseal_oaep oaep)
{
    memset(p, 0, sizeof *p);
    p->hashAlg = oaep == DCMSEAL_OAEP_SHA256 ? CKM_SHA256 : CKM_SHA_1;
    p->mgf = oaep == DCMSEAL_OAEP_SHA256 ? CKG_MGF1_SHA256 : CKG_MGF1_SHA1;
    p->source = CKZ_DATA_SPECIFIED;
}

struct crypt_ctx {
    const dcmseal_kek_info *kek;
    int decrypt;
    dcmseal_oaep prefer, used;
    const uint8_t *in;
    size_t in_len;
    CK_OBJECT_HANDLE key;
    unsigned char buf[DCMSEAL_WRAPPED_MAX];
    CK_ULONG buf_len;
    int gone, in_final; /* in_final: the token accepted key and mechanism */
    /* Wrapping: the version has no public half, or its private half is
     * disabled (the public half of a version made now cannot be). */
    int no_public, disabled;
};

/* One OAEP step with |mech|: an operation's init, C_UnwrapKey, C_WrapKey. */
typedef CK_RV (*oaep_step)(dcmseal_session_t *s, CK_MECHANISM *mech, void *arg);

/* Runs |step| with the variant asked for; with AUTO, falls back to SHA-1
 * when the token refuses SHA-256 and remembers that it did. SoftHSM 2.6.1
 * refuses it with CKR_ARGUMENTS_BAD, other tokens with the codes PKCS#11
 * meant for it (ckr_mechanism_refused). */
static CK_RV oaep_run(dcmseal_session_t *s, dcmseal_oaep prefer, dcmseal_oaep *used,
                      oaep_step step, void *arg)
{
    dcmseal_token_t *tok = s->tok;
    CK_RSA_PKCS_OAEP_PARAMS p;
    CK_MECHANISM mech = {CKM_RSA_PKCS_OAEP, &p, sizeof p};
    CK_RV rv;
    *used = prefer;
    if (prefer == DCMSEAL_OAEP_AUTO)
        *used = atomic_load(&tok->no_oaep_sha256) ? DCMSEAL_OAEP_SHA1 : DCMSEAL_OAEP_SHA256;
    for (;;) {
        oaep_params(&p, *used);
        rv = step(s, &mech, arg);
        if (!(ckr_mechanism_refused(rv) && prefer == DCMSEAL_OAEP_AUTO && *used == DCMSEAL_OAEP_SHA256))
            return rv;
        atomic_store(&tok->no_oaep_sha256, 1);
        *used = DCMSEAL_OAEP_SHA1;
    }
}

static CK_RV crypt_init(dcmseal_session_t *s, CK_MECHANISM *mech, void *arg)
{
    struct crypt_ctx *c = arg;
    return c->decrypt ? s->tok->mod->C_DecryptInit(s->h, mech, c->key)
                      : s->tok->mod->C_EncryptInit(s->h, mech, c->key);
}

/* The handle of |c->kek| that |c| needs. A version disabled as dcmseal
 * disables it refuses to decrypt in the token; dcmseal refuses to wrap
 * under it (its public half may not be switchable). */
static CK_RV crypt_key(dcmseal_session_t *s, struct crypt_ctx *c)
{
    CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE;
    int disabled = 0;
    CK_RV rv = kek_handles(s, c->kek, &pub, &priv, &disabled, &c->gone);
    c->key = c->decrypt ? priv : pub;
    c->in_final = 0;
    c->no_public = !c->decrypt && pub == CK_INVALID_HANDLE;
    c->disabled = !c->decrypt && disabled;
    return rv;
}

/* The key can be used for what |c| does. */
static int crypt_usable(const struct crypt_ctx *c)
{
    return !c->gone && !c->no_public && !c->disabled;
}

static CK_RV crypt_op(dcmseal_session_t *s, void *arg)
{
    struct crypt_ctx *c = arg;
    CK_RV rv = crypt_key(s, c);
    if (rv != CKR_OK || !crypt_usable(c) ||
        (rv = oaep_run(s, c->prefer, &c->used, crypt_init, c)) != CKR_OK)
        return rv;
    c->in_final = 1;
    c->buf_len = sizeof c->buf;
    return c->decrypt ? s->tok->mod->C_Decrypt(s->h, (CK_BYTE *)c->in, c->in_len, c->buf,
                                               &c->buf_len)
                      : s->tok->mod->C_Encrypt(s->h, (CK_BYTE *)c->in, c->in_len, c->buf,
                                               &c->buf_len);
}

/* How the token's answer to a wrap or unwrap reads to the caller (ckr.c). */
static dcmseal_status crypt_status(const struct crypt_ctx *c, CK_RV rv)
{
    if (c->gone)
        return DCMSEAL_E_KEY;
    return p11_status(c->decrypt && c->in_final ? ckr_class_decrypt(rv) : ckr_class(rv),
                      c->decrypt);
}

static dcmseal_status crypt_fail(dcmseal_session_t *s, const struct crypt_ctx *c, CK_RV rv,
                                 dcmseal_error *err)
{
    const dcmseal_kek_info *kek = c->kek;
    dcmseal_status st = crypt_status(c, rv);
    if (c->gone)
        return dcmseal_fail(err, st, "key '%s' (v%u) not found on token '%s'", kek->name,
                            (unsigned)kek->version, s->tok->label);
    if (c->no_public)
        return dcmseal_fail(err, DCMSEAL_E_KEY,
                            "key '%s' v%u on token '%s' has no public half: objects under it "
                            "still decrypt, but it cannot wrap",
                            kek->name, (unsigned)kek->version, s->tok->label);
    if (c->disabled)
        return dcmseal_fail(err, DCMSEAL_E_KEY, "key '%s' v%u on token '%s' is disabled",
                            kek->name, (unsigned)kek->version, s->tok->label);
    if (!c->in_final && ckr_mechanism_refused(rv))
        return dcmseal_fail(err, st,
                            "key '%s' v%u: token '%s' does not support RSA-OAEP-%s (%s)",
                            kek->name, (unsigned)kek->version, s->tok->label,
                            c->used == DCMSEAL_OAEP_SHA256 ? "SHA256" : "SHA1", ckr_name(rv));
    /* dcmseal generates every KEK allowed to do both; the token refusing one
     * is what dcmseal_kek_set_enabled(..., 0) does. */
    if (rv == CKR_KEY_FUNCTION_NOT_PERMITTED)
        return dcmseal_fail(err, st, "key '%s' v%u on token '%s' is disabled (%s)", kek->name,
                            (unsigned)kek->version, s->tok->label, ckr_name(rv));
    if (st == DCMSEAL_E_AUTH)
        return dcmseal_fail(err, st,
                            "authentication failed: key '%s' v%u on token '%s' rejected the "
                            "wrapped key (%s)",
                            kek->name, (unsigned)kek->version, s->tok->label, ckr_name(rv));
    return p11_fail(err, st, s->tok, rv, "%s with key '%s' v%u",
                    c->decrypt ? "unwrapping" : "wrapping", kek->name, (unsigned)kek->version);
}

static dcmseal_status kek_crypt(dcmseal_session_t *s, struct crypt_ctx *c, dcmseal_error *err)
{
    CK_RV rv = session_run(s, crypt_op, c);
    return rv == CKR_OK && crypt_usable(c) ? DCMSEAL_OK : crypt_fail(s, c, rv, err);
}

static int oaep_valid(dcmseal_oaep o, int allow_auto)
{
    return o == DCMSEAL_OAEP_SHA1 || o == DCMSEAL_OAEP_SHA256 ||
           (allow_auto && o == DCMSEAL_OAEP_AUTO);
}

dcmseal_status dcmseal_kek_wrap(dcmseal_session_t *s, uint8_t *out, size_t out_cap,
                                size_t *out_len, dcmseal_oaep *used,
                                const dcmseal_kek_info *kek, dcmseal_oaep prefer,
                                const uint8_t *key, size_t key_len, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    struct crypt_ctx c = {.kek = kek, .prefer = prefer, .in = key, .in_len = key_len};
    DCMSEAL_ENSURE(s != NULL && out != NULL && out_len != NULL && used != NULL &&
                       kek != NULL && key != NULL && oaep_valid(prefer, 1),
                   err, DCMSEAL_E_USAGE, "key wrap: missing or bad argument");
    /* OAEP carries at most k - 2*hLen - 2 bytes; SoftHSM would only say
     * CKR_GENERAL_ERROR. SHA-256's bound also covers AUTO's SHA-1 fallback. */
    DCMSEAL_ENSURE(key_len + 2 * (prefer == DCMSEAL_OAEP_SHA1 ? 20 : 32) + 2 <= kek->bits / 8,
                   err, DCMSEAL_E_USAGE, "key wrap: %zu bytes do not fit RSA-%u OAEP", key_len,
                   kek->bits);
    DCMSEAL_GUARD(kek_crypt(s, &c, err));
    DCMSEAL_ENSURE(c.buf_len <= out_cap, err, DCMSEAL_E_USAGE,
                   "key wrap: %lu bytes of output do not fit in %zu", (unsigned long)c.buf_len,
                   out_cap);
    memcpy(out, c.buf, c.buf_len);
    *out_len = c.buf_len;
    *used = c.used;
out:
    return st;
}

dcmseal_status dcmseal_kek_unwrap(dcmseal_session_t *s, uint8_t *out, size_t out_cap,
                                  size_t *out_len, const dcmseal_kek_info *kek,
                                  dcmseal_oaep oaep, const uint8_t *wrapped, size_t wrapped_len,
                                  dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    /* Its buffer receives the key: in the secure heap (see dcmseal/pkcs11.h). */
    struct crypt_ctx *c = OPENSSL_secure_zalloc(sizeof *c);
    DCMSEAL_ENSURE(s != NULL && out != NULL && out_len != NULL && kek != NULL &&
                       wrapped != NULL && oaep_valid(oaep, 0),
                   err, DCMSEAL_E_USAGE, "key unwrap: missing or bad argument");
    DCMSEAL_ENSURE(c != NULL, err, DCMSEAL_E_INTERNAL, "out of secure memory");
    *c = (struct crypt_ctx){
        .kek = kek, .decrypt = 1, .prefer = oaep, .in = wrapped, .in_len = wrapped_len};
    DCMSEAL_GUARD(kek_crypt(s, c, err));
    /* A longer plaintext than the caller's key cannot be a dcmseal DEK. */
    DCMSEAL_ENSURE(c->buf_len <= out_cap, err, DCMSEAL_E_AUTH,
                   "authentication failed: key '%s' v%u on token '%s' unwrapped %lu bytes, "
                   "expected at most %zu",
                   kek->name, (unsigned)kek->version, s->tok->label, (unsigned long)c->buf_len,
                   out_cap);
    memcpy(out, c->buf, c->buf_len);
    *out_len = c->buf_len;
out:
    OPENSSL_secure_clear_free(c, sizeof *c);
    return st;
}

/* ---- rewrap ------------------------------------------------------------- */

struct rewrap_ctx {
    struct crypt_ctx u, w; /* unwrapping under |from|, wrapping under |to| */
    struct crypt_ctx *failed;
    const char *call;     /* the PKCS#11 call that answered last, NULL while finding keys */
    CK_OBJECT_HANDLE dek; /* the session object between the two steps */
    int verify_hidden;    /* the token's path is undecided: check that |dek| is secret */
    int exposed;          /* it was not: the token ignored CKA_SENSITIVE */
};

/* Where the token will not take CKA_VALUE_LEN when unwrapping (SoftHSM
 * 2.6.1 answers CKR_ATTRIBUTE_READ_ONLY and records no length), the
 * unwrapped key is measured: wrapped under a throwaway AES key of the
 * session with CKM_AES_KEY_WRAP, whose output is the key, zero-padded to
 * 8 bytes, and 8 more. Keys of 25 to 31 bytes pass for 32 there; none
 * shorter or longer does. The output is the key encrypted under a key
 * that never leaves the token, and is dropped. */
static CK_RV dek_measure(dcmseal_session_t *s, CK_OBJECT_HANDLE dek)
{
    static const CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    static const CK_KEY_TYPE type = CKK_AES;
    static const CK_ULONG len = 32;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, (void *)&cls, sizeof cls}, {CKA_KEY_TYPE, (void *)&type, sizeof type},
        {CKA_VALUE_LEN, (void *)&len, sizeof len}, {CKA_TOKEN, (void *)&no, 1},
        {CKA_PRIVATE, (void *)&yes, 1},         {CKA_SENSITIVE, (void *)&yes, 1},
        {CKA_EXTRACTABLE, (void *)&no, 1},      {CKA_WRAP, (void *)&yes, 1},
        {CKA_ENCRYPT, (void *)&no, 1},          {CKA_DECRYPT, (void *)&no, 1},
        {CKA_UNWRAP, (void *)&no, 1},
    };
    CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0}, kw = {CKM_AES_KEY_WRAP, NULL, 0};
    unsigned char out[DCMSEAL_WRAPPED_MAX + 8];
    CK_ULONG out_len = sizeof out;
    CK_RV rv = CKR_OK;
    if (s->len_probe == CK_INVALID_HANDLE)
        rv = s->tok->mod->C_GenerateKey(s->h, &gen, t, sizeof t / sizeof t[0], &s->len_probe);
    if (rv == CKR_OK)
        rv = s->tok->mod->C_WrapKey(s->h, &kw, s->len_probe, dek, out, &out_len);
    /* KEY_SIZE_RANGE: under 16 bytes, which AES key wrap cannot take. */
    if (rv == CKR_KEY_SIZE_RANGE || rv == CKR_BUFFER_TOO_SMALL ||
        (rv == CKR_OK && out_len != DCMSEAL_DEK_LEN + 8))
        rv = CKR_WRAPPED_KEY_INVALID;
    return rv;
}

CK_RV kek_unwrap_dek(dcmseal_session_t *s, CK_MECHANISM *mech, CK_OBJECT_HANDLE key,
                     const uint8_t *in, size_t in_len, CK_OBJECT_HANDLE *dek)
{
    static const CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    static const CK_KEY_TYPE type = CKK_GENERIC_SECRET;
    static const CK_ULONG len = DCMSEAL_DEK_LEN;
    /* Sensitive: never readable; extractable: C_WrapKey needs it; exactly a
     * DEK long, or the key would be "rewrapped" into an object that never
     * opens. */
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, (void *)&cls, sizeof cls},   {CKA_KEY_TYPE, (void *)&type, sizeof type},
        {CKA_TOKEN, (void *)&no, 1},             {CKA_PRIVATE, (void *)&yes, 1},
        {CKA_SENSITIVE, (void *)&yes, 1},        {CKA_EXTRACTABLE, (void *)&yes, 1},
        {CKA_VALUE_LEN, (void *)&len, sizeof len},
    };
    const CK_ULONG n = sizeof t / sizeof t[0];
    int measure = atomic_load(&s->tok->no_unwrap_value_len) != 0;
    CK_RV rv = s->tok->mod->C_UnwrapKey(s->h, mech, key, (CK_BYTE *)in, in_len, t,
                                        measure ? n - 1 : n, dek);
    if (!measure && (rv == CKR_ATTRIBUTE_READ_ONLY || rv == CKR_ATTRIBUTE_TYPE_INVALID)) {
        atomic_store(&s->tok->no_unwrap_value_len, rv);
        measure = 1;
        rv = s->tok->mod->C_UnwrapKey(s->h, mech, key, (CK_BYTE *)in, in_len, t, n - 1, dek);
    }
    if (rv == CKR_OK && measure && (rv = dek_measure(s, *dek)) != CKR_OK) {
        s->tok->mod->C_DestroyObject(s->h, *dek);
        *dek = CK_INVALID_HANDLE;
    }
    return rv;
}

static CK_RV unwrap_key(dcmseal_session_t *s, CK_MECHANISM *mech, void *arg)
{
    struct rewrap_ctx *r = arg;
    return kek_unwrap_dek(s, mech, r->u.key, r->u.in, r->u.in_len, &r->dek);
}

static CK_RV wrap_key(dcmseal_session_t *s, CK_MECHANISM *mech, void *arg)
{
    struct rewrap_ctx *r = arg;
    r->w.buf_len = sizeof r->w.buf;
    return s->tok->mod->C_WrapKey(s->h, mech, r->w.key, r->dek, r->w.buf, &r->w.buf_len);
}

int kek_dek_readable(dcmseal_session_t *s, CK_OBJECT_HANDLE dek, CK_RV *rv)
{
    /* The length alone: no byte of the key comes to this process. */
    CK_ATTRIBUTE t = {CKA_VALUE, NULL, 0};
    *rv = s->tok->mod->C_GetAttributeValue(s->h, dek, &t, 1);
    return *rv == CKR_OK && t.ulValueLen != CK_UNAVAILABLE_INFORMATION;
}

static CK_RV rewrap_op(dcmseal_session_t *s, void *arg)
{
    struct rewrap_ctx *r = arg;
    CK_RV rv;
    r->call = NULL;
    r->failed = &r->u;
    if ((rv = crypt_key(s, &r->u)) != CKR_OK || r->u.gone)
        return rv;
    r->failed = &r->w;
    if ((rv = crypt_key(s, &r->w)) != CKR_OK || !crypt_usable(&r->w))
        return rv;
    /* Neither step has a separate init: a refused mechanism and refused
     * bytes come from the same call. */
    r->failed = &r->u;
    r->call = "C_UnwrapKey";
    r->u.in_final = r->w.in_final = 1;
    r->dek = CK_INVALID_HANDLE;
    if ((rv = oaep_run(s, r->u.prefer, &r->u.used, unwrap_key, r)) != CKR_OK)
        return rv;
    if (r->verify_hidden && kek_dek_readable(s, r->dek, &rv)) {
        r->exposed = 1;
        s->tok->mod->C_DestroyObject(s->h, r->dek);
        return CKR_OK;
    }
    r->failed = &r->w;
    r->call = "C_WrapKey";
    rv = oaep_run(s, r->w.prefer, &r->w.used, wrap_key, r);
    s->tok->mod->C_DestroyObject(s->h, r->dek);
    return rv;
}

rewrap_fallback kek_rewrap_fallback(CK_RV rv, dcmseal_oaep used)
{
    /* SHA-256 may be refused for C_UnwrapKey alone; the host path's
     * C_DecryptInit says whether the token does it at all, and a SHA-1
     * object still goes in the token. */
    if (ckr_mechanism_refused(rv) && used == DCMSEAL_OAEP_SHA256)
        return REWRAP_FALLBACK_OBJECT;
    /* With CKA_VALUE_LEN in the unwrap template, these can be the answer to
     * a key of the wrong length in these bytes, not to the token: the host
     * path checks the length itself. */
    if (rv == CKR_TEMPLATE_INCONSISTENT || rv == CKR_ATTRIBUTE_VALUE_INVALID)
        return REWRAP_FALLBACK_OBJECT;
    if (ckr_class(rv) == P11_REFUSED)
        return REWRAP_FALLBACK_TOKEN;
    /* Tokens' answer to tampered bytes as well as to internal trouble: the
     * host path, whose C_DecryptInit separates key and mechanism trouble
     * from the bytes, tells them apart. */
    return ckr_catch_all(rv) ? REWRAP_FALLBACK_OBJECT : REWRAP_FALLBACK_NONE;
}

/* Every later rewrap on |tok| takes the host path; the first reason
 * given is kept. */
static void rewrap_refuse(dcmseal_token_t *tok, const char *call, const char *why)
{
    pthread_mutex_lock(&tok->lock);
    if (atomic_load(&tok->rewrap_path) != REWRAP_HOST) {
        snprintf(tok->rewrap_refusal, sizeof tok->rewrap_refusal, "%s: %s", call, why);
        atomic_store(&tok->rewrap_path, REWRAP_HOST);
    }
    pthread_mutex_unlock(&tok->lock);
}

const char *dcmseal_session_get0_rewrap_refusal(const dcmseal_session_t *s)
{
    return s != NULL && atomic_load(&s->tok->rewrap_path) == REWRAP_HOST
               ? s->tok->rewrap_refusal
               : NULL;
}

/* Tries the in-token path: *|done| when it rewrapped, an error when the
 * token's answer is final, and otherwise (DCMSEAL_OK, not done) the host
 * path is to run. */
static dcmseal_status rewrap_in_token(dcmseal_session_t *s, struct rewrap_ctx *r, int *done,
                                      dcmseal_error *err)
{
    dcmseal_token_t *tok = s->tok;
    int undecided = atomic_load(&tok->rewrap_path) == REWRAP_UNDECIDED;
    r->verify_hidden = undecided;
    CK_RV rv = session_run(s, rewrap_op, r);
    *done = 0;
    if (r->u.gone || !crypt_usable(&r->w))
        return crypt_fail(s, r->failed, rv, err);
    if (rv == CKR_OK && r->exposed) {
        rewrap_refuse(tok, "C_UnwrapKey",
                      "the unwrapped key's CKA_VALUE is readable (CKA_SENSITIVE ignored)");
        return DCMSEAL_OK;
    }
    if (rv == CKR_OK) {
        int expected = REWRAP_UNDECIDED;
        if (undecided)
            atomic_compare_exchange_strong(&tok->rewrap_path, &expected, REWRAP_IN_TOKEN);
        *done = 1;
        return DCMSEAL_OK;
    }
    switch (r->call != NULL ? kek_rewrap_fallback(rv, r->failed->used) : REWRAP_FALLBACK_NONE) {
    case REWRAP_FALLBACK_TOKEN: rewrap_refuse(tok, r->call, ckr_name(rv)); return DCMSEAL_OK;
    case REWRAP_FALLBACK_OBJECT: return DCMSEAL_OK;
    case REWRAP_FALLBACK_NONE: break;
    }
    return crypt_fail(s, r->failed, rv, err);
}

dcmseal_status dcmseal_kek_rewrap(dcmseal_session_t *s, uint8_t *out, size_t out_cap,
                                  size_t *out_len, dcmseal_oaep *used, int *in_token,
                                  const dcmseal_kek_info *from, dcmseal_oaep from_oaep,
                                  const uint8_t *wrapped, size_t wrapped_len,
                                  const dcmseal_kek_info *to, dcmseal_oaep prefer,
                                  dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    struct rewrap_ctx *r = NULL;
    uint8_t *dek = NULL;
    size_t dek_len = 0;
    int done = 0;
    DCMSEAL_ENSURE(s != NULL && out != NULL && out_len != NULL && used != NULL &&
                       in_token != NULL && from != NULL && to != NULL && wrapped != NULL &&
                       oaep_valid(from_oaep, 0) && oaep_valid(prefer, 1),
                   err, DCMSEAL_E_USAGE, "key rewrap: missing or bad argument");
    *in_token = 0;
    if (atomic_load(&s->tok->rewrap_path) != REWRAP_HOST) {
        r = OPENSSL_zalloc(sizeof *r);
        DCMSEAL_ENSURE(r != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
        r->u = (struct crypt_ctx){
            .kek = from, .decrypt = 1, .prefer = from_oaep, .in = wrapped, .in_len = wrapped_len};
        r->w = (struct crypt_ctx){.kek = to, .prefer = prefer};
        DCMSEAL_GUARD(rewrap_in_token(s, r, &done, err));
        if (done) {
            DCMSEAL_ENSURE(r->w.buf_len <= out_cap, err, DCMSEAL_E_USAGE,
                           "key rewrap: %lu bytes of output do not fit in %zu",
                           (unsigned long)r->w.buf_len, out_cap);
            memcpy(out, r->w.buf, r->w.buf_len);
            *out_len = r->w.buf_len;
            *used = r->w.used;
            *in_token = 1;
            goto out;
        }
    }
    /* The host path: the key is in secure memory from the unwrap to the
     * wrap, and wiped right after. */
    dek = OPENSSL_secure_malloc(DCMSEAL_DEK_LEN);
    DCMSEAL_ENSURE(dek != NULL, err, DCMSEAL_E_INTERNAL, "out of secure memory");
    DCMSEAL_GUARD(dcmseal_kek_unwrap(s, dek, DCMSEAL_DEK_LEN, &dek_len, from, from_oaep, wrapped,
                                     wrapped_len, err));
    DCMSEAL_ENSURE(dek_len == DCMSEAL_DEK_LEN, err, DCMSEAL_E_AUTH,
                   "authentication failed: key '%s' v%u on token '%s' unwrapped %zu bytes, "
                   "not a %d-byte data key",
                   from->name, (unsigned)from->version, s->tok->label, dek_len, DCMSEAL_DEK_LEN);
    DCMSEAL_GUARD(dcmseal_kek_wrap(s, out, out_cap, out_len, used, to, prefer, dek, dek_len,
                                   err));
out:
    OPENSSL_secure_clear_free(dek, DCMSEAL_DEK_LEN);
    OPENSSL_free(r);
    return st;
}
