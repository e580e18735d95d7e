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

#define KEK_ID_PREFIX "dcmseal-kek-v"

int kek_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > DCMSEAL_KEK_NAME_MAX)
        return 0;
    return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

size_t kek_id(char id[KEK_ID_MAX], uint32_t version)
{
    return (size_t)snprintf(id, KEK_ID_MAX, KEK_ID_PREFIX "%u", (unsigned)version);
}

/* The version in a CKA_ID, or 0 when it is not a dcmseal KEK ID. */
static uint32_t kek_id_version(const unsigned char *id, CK_ULONG len)
{
    const size_t plen = sizeof KEK_ID_PREFIX - 1;
    uint64_t v = 0;
    if (len == CK_UNAVAILABLE_INFORMATION || len <= plen || len > plen + 10 ||
        memcmp(id, KEK_ID_PREFIX, plen) != 0 || id[plen] == '0')
        return 0;
    for (CK_ULONG i = plen; i < len; i++) {
        if (id[i] < '0' || id[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(id[i] - '0');
    }
    return v <= UINT32_MAX ? (uint32_t)v : 0;
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

/* The first object of |cls| labelled |name| with the ID of |version|, or
 * CK_INVALID_HANDLE. */
CK_RV kek_find_one(dcmseal_session_t *s, CK_OBJECT_CLASS cls, const char *name,
                   uint32_t version, CK_OBJECT_HANDLE *h)
{
    char id[KEK_ID_MAX];
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_LABEL, (void *)name, strlen(name)},
        {CKA_ID, id, kek_id(id, version)},
    };
    CK_OBJECT_HANDLE *hs = NULL;
    size_t n = 0;
    CK_RV rv = p11_find_all(s, t, 3, &hs, &n);
    *h = n > 0 ? hs[0] : CK_INVALID_HANDLE;
    free(hs);
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
    CK_RV rv;
    memset(o, 0, sizeof *o);
    o->type = (CK_KEY_TYPE)-1;
    o->sensitive = o->extractable = o->decrypt = o->unwrap = o->encrypt = o->wrap = BOOL_UNSET;
    CK_ATTRIBUTE priv[] = {
        {CKA_MODULUS, o->modulus, sizeof o->modulus},
        {CKA_KEY_TYPE, &o->type, sizeof o->type},
        {CKA_SENSITIVE, &o->sensitive, 1},
        {CKA_EXTRACTABLE, &o->extractable, 1},
        {CKA_DECRYPT, &o->decrypt, 1},
        {CKA_UNWRAP, &o->unwrap, 1},
    };
    CK_ATTRIBUTE pub[] = {
        {CKA_MODULUS, o->pub_modulus, sizeof o->pub_modulus},
        {CKA_PUBLIC_EXPONENT, o->exponent, sizeof o->exponent},
        {CKA_ENCRYPT, &o->encrypt, 1},
        {CKA_WRAP, &o->wrap, 1},
    };
    if ((rv = kek_find_one(s, CKO_PRIVATE_KEY, name, version, &o->priv)) != CKR_OK ||
        o->priv == CK_INVALID_HANDLE || (rv = p11_read_attrs(s, o->priv, priv, 6)) != CKR_OK)
        return rv;
    o->modulus_len = priv[0].ulValueLen;
    if ((rv = kek_find_one(s, CKO_PUBLIC_KEY, name, version, &o->pub)) != CKR_OK ||
        o->pub == CK_INVALID_HANDLE || (rv = p11_read_attrs(s, o->pub, pub, 4)) != CKR_OK)
        return rv;
    o->pub_modulus_len = pub[0].ulValueLen;
    o->exponent_len = pub[1].ulValueLen;
    return CKR_OK;
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
    if (o->pub == CK_INVALID_HANDLE || o->pub_modulus_len == CK_UNAVAILABLE_INFORMATION ||
        o->exponent_len == CK_UNAVAILABLE_INFORMATION)
        goto out;
    if ((n = BN_bin2bn(o->pub_modulus, (int)o->pub_modulus_len, NULL)) == NULL ||
        (e = BN_bin2bn(o->exponent, (int)o->exponent_len, NULL)) == NULL ||
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

/* What dcmseal_kek_set_enabled(..., 0) leaves: every use switched off, so
 * that the token itself refuses the key. Any other mix is not "disabled"
 * but a policy violation that kek_judge names. */
int kek_disabled(const struct kek_obj *o)
{
    return o->decrypt == CK_FALSE && o->unwrap == CK_FALSE && o->encrypt == CK_FALSE &&
           o->wrap == CK_FALSE;
}

void kek_describe(dcmseal_kek_info *info, const struct kek_obj *o, const char *name,
                  uint32_t version)
{
    memset(info, 0, sizeof *info);
    info->enabled = !kek_disabled(o);
    snprintf(info->name, sizeof info->name, "%s", name);
    info->version = version;
    info->bits = kek_modulus_bits(o->modulus, o->modulus_len);
    kek_fingerprint(o, info->fingerprint);
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

/* The handles of |kek|, from the cache or the token. A key whose public half
 * no longer has the fingerprint it was found with counts as gone. */
CK_RV kek_handles(dcmseal_session_t *s, const dcmseal_kek_info *kek,
                  CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv, int *gone)
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
        *version = kek_id_version(id, t[1].ulValueLen);
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
