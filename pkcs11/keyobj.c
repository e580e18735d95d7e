/* KEK objects in the token: names and versions (CKA_LABEL, CKA_ID), their
 * attributes and fingerprints, and each session's cache of their handles. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include "internal.h"

/* CKA_ID: "dcmseal-kek:NAME:vN" since it must differ between names (tools
 * that select keys by ID took one name's v1 for another's); versions made
 * before carry "dcmseal-kek-vN", and are read as well. */
#define KEK_ID_TAG "dcmseal-kek:"
#define KEK_ID_LEGACY "dcmseal-kek-v"

int kek_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > DCMSEAL_KEK_NAME_MAX)
        return 0;
    return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

dcmseal_status kek_name_known(const dcmseal_session_t *s, const char *name, dcmseal_error *err)
{
    return kek_name_ok(name) ? DCMSEAL_OK
                             : dcmseal_fail(err, DCMSEAL_E_KEY,
                                            "key '%.64s' not found on token '%s'", name,
                                            s->tok->label);
}

size_t kek_id(char id[KEK_ID_MAX], const char *name, uint32_t version)
{
    return (size_t)snprintf(id, KEK_ID_MAX, KEK_ID_TAG "%s:v%u", name, (unsigned)version);
}

size_t kek_id_legacy(char id[KEK_ID_MAX], uint32_t version)
{
    return (size_t)snprintf(id, KEK_ID_MAX, KEK_ID_LEGACY "%u", (unsigned)version);
}

/* The decimal version at |p| (|len| bytes, no leading zero), 0 when none. */
static uint32_t parse_version(const unsigned char *p, size_t len)
{
    uint64_t v = 0;
    if (len == 0 || len > 10 || p[0] == '0')
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    return v <= UINT32_MAX ? (uint32_t)v : 0;
}

/* The version in a CKA_ID of either form for |label|, or 0. */
static uint32_t kek_id_version(const unsigned char *id, CK_ULONG len, const char *label)
{
    const size_t tag = sizeof KEK_ID_TAG - 1, legacy = sizeof KEK_ID_LEGACY - 1;
    const size_t n = strlen(label);
    if (len == CK_UNAVAILABLE_INFORMATION)
        return 0;
    if (len > legacy && memcmp(id, KEK_ID_LEGACY, legacy) == 0)
        return parse_version(id + legacy, len - legacy);
    if (len > tag + n + 2 && memcmp(id, KEK_ID_TAG, tag) == 0 &&
        memcmp(id + tag, label, n) == 0 && id[tag + n] == ':' && id[tag + n + 1] == 'v')
        return parse_version(id + tag + n + 2, len - tag - n - 2);
    return 0;
}

unsigned kek_modulus_bits(const unsigned char *m, CK_ULONG len)
{
    if (len == CK_UNAVAILABLE_INFORMATION)
        return 0;
    while (len > 0 && m[0] == 0)
        m++, len--;
    if (len == 0)
        return 0;
    unsigned bits = (unsigned)len * 8;
    for (unsigned char top = m[0]; !(top & 0x80); top <<= 1)
        bits--;
    return bits;
}

/* ---- object access ------------------------------------------------------ */

/* All handles matching |t| into a growing array (free() it). */
CK_RV p11_find_all(dcmseal_session_t *s, CK_ATTRIBUTE *t, CK_ULONG n,
                   CK_OBJECT_HANDLE **out, size_t *count)
{
    CK_FUNCTION_LIST *m = s->tok->mod;
    CK_OBJECT_HANDLE *hs = NULL, *grown;
    size_t used = 0, cap = 0;
    CK_ULONG got = 0;
    CK_RV rv = m->C_FindObjectsInit(s->h, t, n);
    if (rv != CKR_OK)
        return rv;
    do {
        if (used == cap) {
            cap = cap ? cap * 2 : 16;
            if ((grown = realloc(hs, cap * sizeof *hs)) == NULL) {
                rv = CKR_HOST_MEMORY;
                break;
            }
            hs = grown;
        }
        rv = m->C_FindObjects(s->h, hs + used, cap - used, &got);
        used += got;
    } while (rv == CKR_OK && got > 0);
    m->C_FindObjectsFinal(s->h);
    if (rv == CKR_OK && used == 0)
        rv = session_check_login(s);
    if (rv != CKR_OK) {
        free(hs);
        hs = NULL;
        used = 0;
    }
    *out = hs;
    *count = used;
    return rv;
}

/* The objects of |cls| labelled |name| with the CKA_ID of |version|: the
 * form dcmseal gives now, else the one it gave before (|*legacy|). */
static CK_RV kek_find_version(dcmseal_session_t *s, CK_OBJECT_CLASS cls, const char *name,
                              uint32_t version, CK_OBJECT_HANDLE **hs, size_t *n, int *legacy)
{
    char id[KEK_ID_MAX];
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_LABEL, (void *)name, strlen(name)},
        {CKA_ID, id, kek_id(id, name, version)},
    };
    CK_RV rv = p11_find_all(s, t, 3, hs, n);
    *legacy = 0;
    if (rv == CKR_OK && *n == 0) {
        free(*hs);
        t[2].ulValueLen = kek_id_legacy(id, version);
        rv = p11_find_all(s, t, 3, hs, n);
        *legacy = 1;
    }
    return rv;
}

/* C_GetAttributeValue that leaves missing, sensitive or oversized attributes
 * marked unavailable instead of failing: the policy judges those. */
CK_RV p11_read_attrs(dcmseal_session_t *s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE *t, CK_ULONG n)
{
    CK_RV rv = s->tok->mod->C_GetAttributeValue(s->h, h, t, n);
    if (rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_ATTRIBUTE_TYPE_INVALID ||
        rv == CKR_BUFFER_TOO_SMALL)
        rv = CKR_OK;
    return rv;
}

CK_RV kek_read(dcmseal_session_t *s, const char *name, uint32_t version,
               struct kek_obj *o)
{
    CK_OBJECT_HANDLE *hs = NULL;
    size_t n = 0;
    int legacy;
    CK_RV rv;
    memset(o, 0, sizeof *o);
    o->pub = o->priv = CK_INVALID_HANDLE;
    o->type = (CK_KEY_TYPE)-1;
    o->sensitive = o->extractable = o->decrypt = o->unwrap = o->sign = o->sign_recover =
        BOOL_UNSET;
    o->encrypt = o->wrap = o->pub_private = o->pub_modifiable = BOOL_UNSET;
    CK_ATTRIBUTE priv[] = {
        {CKA_MODULUS, o->modulus, sizeof o->modulus},
        {CKA_PUBLIC_EXPONENT, o->exponent, sizeof o->exponent},
        {CKA_KEY_TYPE, &o->type, sizeof o->type},
        {CKA_SENSITIVE, &o->sensitive, 1},
        {CKA_EXTRACTABLE, &o->extractable, 1},
        {CKA_DECRYPT, &o->decrypt, 1},
        {CKA_UNWRAP, &o->unwrap, 1},
        {CKA_SIGN, &o->sign, 1},
        {CKA_SIGN_RECOVER, &o->sign_recover, 1},
        {CKA_ALLOWED_MECHANISMS, o->mechs, sizeof o->mechs},
    };
    if ((rv = kek_find_version(s, CKO_PRIVATE_KEY, name, version, &hs, &n, &legacy)) != CKR_OK ||
        n == 0)
        goto out;
    o->priv = hs[0];
    o->legacy_id = legacy;
    if ((rv = p11_read_attrs(s, o->priv, priv, sizeof priv / sizeof priv[0])) != CKR_OK)
        goto out;
    o->modulus_len = priv[0].ulValueLen;
    o->exponent_len = priv[1].ulValueLen;
    o->mechs_len = priv[9].ulValueLen;
    free(hs);
    hs = NULL;
    /* Any public object may carry the version's label and ID, and one
     * needs no PIN to be made: the version's public half is the one whose
     * modulus is its private half's. */
    if ((rv = kek_find_version(s, CKO_PUBLIC_KEY, name, version, &hs, &n, &legacy)) != CKR_OK)
        goto out;
    for (size_t i = 0; i < n && o->pub == CK_INVALID_HANDLE; i++) {
        unsigned char m[MODULUS_MAX];
        CK_ATTRIBUTE pub[] = {
            {CKA_MODULUS, m, sizeof m},
            {CKA_PUBLIC_EXPONENT, o->pub_exponent, sizeof o->pub_exponent},
            {CKA_ENCRYPT, &o->encrypt, 1},
            {CKA_WRAP, &o->wrap, 1},
            {CKA_PRIVATE, &o->pub_private, 1},
            {CKA_MODIFIABLE, &o->pub_modifiable, 1},
        };
        if ((rv = p11_read_attrs(s, hs[i], pub, sizeof pub / sizeof pub[0])) != CKR_OK)
            goto out;
        if (o->modulus_len != CK_UNAVAILABLE_INFORMATION && pub[0].ulValueLen == o->modulus_len &&
            memcmp(m, o->modulus, o->modulus_len) == 0) {
            o->pub = hs[i];
            o->pub_exponent_len = pub[1].ulValueLen;
        } else {
            o->encrypt = o->wrap = o->pub_private = o->pub_modifiable = BOOL_UNSET;
        }
    }
out:
    free(hs);
    return rv;
}

/* SHA-256 of the DER SubjectPublicKeyInfo, the form `openssl pkey -pubin
 * -outform DER` prints, so that fingerprints can be checked outside dcmseal. */
static int kek_fingerprint(const struct kek_obj *o, uint8_t fp[DCMSEAL_KEK_FINGERPRINT_LEN])
{
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    BIGNUM *n = NULL, *e = NULL;
    unsigned char *der = NULL;
    int der_len = 0, ok = 0;
    /* From the private half, so that decryption needs nothing else; its
     * exponent from the matching public half where a token keeps none. */
    const unsigned char *exp = o->exponent;
    CK_ULONG exp_len = o->exponent_len;
    if (exp_len == CK_UNAVAILABLE_INFORMATION || exp_len == 0) {
        exp = o->pub_exponent;
        exp_len = o->pub != CK_INVALID_HANDLE ? o->pub_exponent_len : CK_UNAVAILABLE_INFORMATION;
    }
    if (o->priv == CK_INVALID_HANDLE || o->modulus_len == CK_UNAVAILABLE_INFORMATION ||
        exp_len == CK_UNAVAILABLE_INFORMATION || exp_len == 0)
        goto out;
    if ((n = BN_bin2bn(o->modulus, (int)o->modulus_len, NULL)) == NULL ||
        (e = BN_bin2bn(exp, (int)exp_len, NULL)) == NULL ||
        (bld = OSSL_PARAM_BLD_new()) == NULL ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
        (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
        EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0 ||
        (der_len = i2d_PUBKEY(pkey, &der)) <= 0)
        goto out;
    ok = EVP_Digest(der, (size_t)der_len, fp, NULL, EVP_sha256(), NULL);
out:
    if (!ok)
        memset(fp, 0, DCMSEAL_KEK_FINGERPRINT_LEN);
    OPENSSL_free(der);
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return ok;
}

/* What dcmseal_kek_set_enabled(..., 0) leaves: the token refuses to decrypt
 * and unwrap with it. One use off and the other on is not "disabled" but a
 * policy violation that kek_judge names. */
int kek_disabled(const struct kek_obj *o)
{
    return o->decrypt == CK_FALSE && o->unwrap == CK_FALSE;
}

/* An attribute the token does not report counts as weak: it cannot be
 * shown to be otherwise. */
unsigned kek_weak(const struct kek_obj *o)
{
    unsigned w = 0;
    int oaep_only = o->mechs_len != CK_UNAVAILABLE_INFORMATION &&
                    o->mechs_len >= sizeof o->mechs[0];
    for (CK_ULONG i = 0; oaep_only && i < o->mechs_len / sizeof o->mechs[0]; i++)
        oaep_only = o->mechs[i] == CKM_RSA_PKCS_OAEP;
    if (o->legacy_id)
        w |= DCMSEAL_KEK_WEAK_SHARED_ID;
    if (!oaep_only)
        w |= DCMSEAL_KEK_WEAK_MECHANISMS;
    if (o->sign != CK_FALSE || o->sign_recover != CK_FALSE)
        w |= DCMSEAL_KEK_WEAK_SIGN;
    if (o->pub == CK_INVALID_HANDLE)
        w |= DCMSEAL_KEK_NO_PUBLIC;
    else if (o->pub_private != CK_TRUE || o->pub_modifiable != CK_FALSE)
        w |= DCMSEAL_KEK_WEAK_PUBLIC;
    return w;
}

int kek_describe(dcmseal_kek_info *info, const struct kek_obj *o, const char *name,
                 uint32_t version)
{
    memset(info, 0, sizeof *info);
    info->enabled = !kek_disabled(o);
    info->weak = kek_weak(o);
    snprintf(info->name, sizeof info->name, "%s", name);
    info->version = version;
    info->bits = kek_modulus_bits(o->modulus, o->modulus_len);
    return kek_fingerprint(o, info->fingerprint);
}

/* ---- the handle cache --------------------------------------------------- */

/* Moves entry |i| to the front, the least recently used falling off the
 * end. */
static void cache_front(dcmseal_session_t *s, size_t i)
{
    struct kek_cache e = s->cache[i];
    memmove(&s->cache[1], &s->cache[0], i * sizeof e);
    s->cache[0] = e;
}

void kek_cache_put(dcmseal_session_t *s, const char *name, uint32_t version,
                   const struct kek_obj *o)
{
    struct kek_cache *e = &s->cache[KEK_CACHE_SIZE - 1];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->version = version;
    e->pub = o->pub;
    e->priv = o->priv;
    e->disabled = kek_disabled(o);
    e->valid = 1;
    cache_front(s, KEK_CACHE_SIZE - 1);
}

static int cache_get(dcmseal_session_t *s, const dcmseal_kek_info *kek)
{
    for (size_t i = 0; i < KEK_CACHE_SIZE; i++) {
        if (s->cache[i].valid && s->cache[i].version == kek->version &&
            strcmp(s->cache[i].name, kek->name) == 0) {
            cache_front(s, i);
            return 1;
        }
    }
    return 0;
}

/* The handles of |kek|, from the cache or the token. A key that no longer
 * has the fingerprint it was found with counts as gone. */
CK_RV kek_handles(dcmseal_session_t *s, const dcmseal_kek_info *kek,
                  CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv, int *disabled, int *gone)
{
    struct kek_obj *o = NULL;
    uint8_t fp[DCMSEAL_KEK_FINGERPRINT_LEN];
    CK_RV rv = CKR_OK;
    *gone = 0;
    if (!cache_get(s, kek)) {
        if ((o = malloc(sizeof *o)) == NULL)
            return CKR_HOST_MEMORY;
        if ((rv = kek_read(s, kek->name, kek->version, o)) != CKR_OK)
            goto out;
        if (o->priv == CK_INVALID_HANDLE || !kek_fingerprint(o, fp) ||
            memcmp(fp, kek->fingerprint, sizeof fp) != 0) {
            *gone = 1;
            goto out;
        }
        kek_cache_put(s, kek->name, kek->version, o);
    }
    *pub = s->cache[0].pub;
    *priv = s->cache[0].priv;
    *disabled = s->cache[0].disabled;
out:
    free(o);
    return rv;
}

/* ---- the versions of a name --------------------------------------------- */

/* Private keys labelled |name| (any |name| when NULL), with their versions. */
CK_RV kek_versions(dcmseal_session_t *s, const char *name, CK_OBJECT_HANDLE **hs,
                   size_t *n)
{
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_LABEL, (void *)name, name ? strlen(name) : 0},
    };
    return p11_find_all(s, t, name ? 2 : 1, hs, n);
}

/* Reads CKA_LABEL and the version in CKA_ID of |h|; version 0 when it is not
 * a dcmseal KEK. */
CK_RV kek_identity(dcmseal_session_t *s, CK_OBJECT_HANDLE h,
                   char label[DCMSEAL_KEK_NAME_MAX + 1], uint32_t *version)
{
    unsigned char id[KEK_ID_MAX];
    CK_ATTRIBUTE t[] = {
        {CKA_LABEL, label, DCMSEAL_KEK_NAME_MAX},
        {CKA_ID, id, sizeof id},
    };
    CK_RV rv = p11_read_attrs(s, h, t, 2);
    *version = 0;
    if (rv != CKR_OK || t[0].ulValueLen == CK_UNAVAILABLE_INFORMATION)
        return rv;
    label[t[0].ulValueLen] = '\0';
    if (strlen(label) == t[0].ulValueLen && kek_name_ok(label))
        *version = kek_id_version(id, t[1].ulValueLen, label);
    return CKR_OK;
}

static int version_desc(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x < y) - (x > y);
}

/* The versions of |name| that have a private key, highest first (free()). */
CK_RV kek_name_versions(dcmseal_session_t *s, const char *name, uint32_t **out, size_t *n)
{
    CK_OBJECT_HANDLE *hs = NULL;
    size_t count = 0;
    uint32_t *vs = NULL;
    CK_RV rv = kek_versions(s, name, &hs, &count);
    *n = 0;
    if (rv == CKR_OK && (vs = malloc((count ? count : 1) * sizeof *vs)) == NULL)
        rv = CKR_HOST_MEMORY;
    for (size_t i = 0; rv == CKR_OK && i < count; i++) {
        char label[DCMSEAL_KEK_NAME_MAX + 1];
        uint32_t v;
        if ((rv = kek_identity(s, hs[i], label, &v)) == CKR_OK && v != 0 &&
            strcmp(label, name) == 0)
            vs[(*n)++] = v;
    }
    if (*n > 1)
        qsort(vs, *n, sizeof *vs, version_desc);
    free(hs);
    *out = vs;
    return rv;
}
