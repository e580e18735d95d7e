/* KEKs: RSA key pairs in the token named by CKA_LABEL and versioned by CKA_ID. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include "internal.h"

#define KEK_ID_PREFIX "dcmseal-kek-v"
#define KEK_ID_MAX 32
#define MODULUS_MAX 1024 /* RSA-8192: larger keys fail the policy anyway */

static const CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
#define BOOL_UNSET ((CK_BBOOL)0xff)

/* Everything the policy and the fingerprint need about one KEK version. */
struct kek_obj {
    CK_OBJECT_HANDLE pub, priv;
    CK_KEY_TYPE type;
    CK_BBOOL sensitive, extractable, decrypt, unwrap, encrypt, wrap;
    unsigned char modulus[MODULUS_MAX], pub_modulus[MODULUS_MAX], exponent[16];
    CK_ULONG modulus_len, pub_modulus_len, exponent_len;
};

static int name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > DCMSEAL_KEK_NAME_MAX)
        return 0;
    return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static size_t kek_id(char id[KEK_ID_MAX], uint32_t version)
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

static unsigned modulus_bits(const unsigned char *m, CK_ULONG len)
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
static CK_RV find_all(dcmseal_session_t *s, CK_ATTRIBUTE *t, CK_ULONG n,
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
static CK_RV find_one(dcmseal_session_t *s, CK_OBJECT_CLASS cls, const char *name,
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
    CK_RV rv = find_all(s, t, 3, &hs, &n);
    *h = n > 0 ? hs[0] : CK_INVALID_HANDLE;
    free(hs);
    return rv;
}

/* C_GetAttributeValue that leaves missing, sensitive or oversized attributes
 * marked unavailable instead of failing: the policy judges those. */
static CK_RV read_attrs(dcmseal_session_t *s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE *t, CK_ULONG n)
{
    CK_RV rv = s->tok->mod->C_GetAttributeValue(s->h, h, t, n);
    if (rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_ATTRIBUTE_TYPE_INVALID ||
        rv == CKR_BUFFER_TOO_SMALL)
        rv = CKR_OK;
    return rv;
}

static CK_RV kek_read(dcmseal_session_t *s, const char *name, uint32_t version,
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
    if ((rv = find_one(s, CKO_PRIVATE_KEY, name, version, &o->priv)) != CKR_OK ||
        o->priv == CK_INVALID_HANDLE || (rv = read_attrs(s, o->priv, priv, 6)) != CKR_OK)
        return rv;
    o->modulus_len = priv[0].ulValueLen;
    if ((rv = find_one(s, CKO_PUBLIC_KEY, name, version, &o->pub)) != CKR_OK ||
        o->pub == CK_INVALID_HANDLE || (rv = read_attrs(s, o->pub, pub, 4)) != CKR_OK)
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
static int kek_disabled(const struct kek_obj *o)
{
    return o->decrypt == CK_FALSE && o->unwrap == CK_FALSE && o->encrypt == CK_FALSE &&
           o->wrap == CK_FALSE;
}

static void kek_describe(dcmseal_kek_info *info, const struct kek_obj *o, const char *name,
                         uint32_t version)
{
    memset(info, 0, sizeof *info);
    info->enabled = !kek_disabled(o);
    snprintf(info->name, sizeof info->name, "%s", name);
    info->version = version;
    info->bits = modulus_bits(o->modulus, o->modulus_len);
    kek_fingerprint(o, info->fingerprint);
}

static const char *bool_str(CK_BBOOL b)
{
    return b == CK_TRUE ? "true" : b == CK_FALSE ? "false" : "unset";
}

/* The key policy; on success fills |info|. */
static dcmseal_status kek_judge(dcmseal_session_t *s, dcmseal_kek_info *info,
                                const struct kek_obj *o, const char *name,
                                uint32_t version, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    char why[96] = "";
    unsigned bits = modulus_bits(o->modulus, o->modulus_len);
    if (o->priv == CK_INVALID_HANDLE) {
        if (version != 0)
            return dcmseal_fail(err, DCMSEAL_E_KEY, "key '%s' (v%u) not found on token '%s'",
                                name, (unsigned)version, s->tok->label);
        return dcmseal_fail(err, DCMSEAL_E_KEY, "key '%s' not found on token '%s'", name,
                            s->tok->label);
    }
    DCMSEAL_ENSURE(!kek_disabled(o), err, DCMSEAL_E_KEY, "key '%s' v%u on token '%s' is disabled",
                   name, (unsigned)version, s->tok->label);
    if (o->type != CKK_RSA)
        snprintf(why, sizeof why, "CKA_KEY_TYPE is not CKK_RSA");
    else if (bits != 2048 && bits != 3072)
        snprintf(why, sizeof why, "RSA %u bits, only 2048 or 3072 allowed", bits);
    else if (o->sensitive != CK_TRUE)
        snprintf(why, sizeof why, "private key has CKA_SENSITIVE=%s", bool_str(o->sensitive));
    else if (o->extractable != CK_FALSE)
        snprintf(why, sizeof why, "private key has CKA_EXTRACTABLE=%s",
                 bool_str(o->extractable));
    else if (o->decrypt != CK_TRUE)
        snprintf(why, sizeof why, "private key has CKA_DECRYPT=%s", bool_str(o->decrypt));
    else if (o->unwrap != CK_TRUE)
        snprintf(why, sizeof why, "private key has CKA_UNWRAP=%s", bool_str(o->unwrap));
    else if (o->pub == CK_INVALID_HANDLE)
        snprintf(why, sizeof why, "public key missing");
    else if (o->encrypt != CK_TRUE)
        snprintf(why, sizeof why, "public key has CKA_ENCRYPT=%s", bool_str(o->encrypt));
    else if (o->wrap != CK_TRUE)
        snprintf(why, sizeof why, "public key has CKA_WRAP=%s", bool_str(o->wrap));
    else if (o->pub_modulus_len != o->modulus_len ||
             memcmp(o->pub_modulus, o->modulus, o->modulus_len) != 0)
        snprintf(why, sizeof why, "public key CKA_MODULUS differs from the private key's");
    DCMSEAL_ENSURE(why[0] == '\0', err, DCMSEAL_E_KEY, "key '%s' v%u on token '%s' refused: %s",
                   name, (unsigned)version, s->tok->label, why);
    kek_describe(info, o, name, version);
out:
    return st;
}

/* Moves entry |i| to the front, the least recently used falling off the
 * end. */
static void cache_front(dcmseal_session_t *s, size_t i)
{
    struct kek_cache e = s->cache[i];
    memmove(&s->cache[1], &s->cache[0], i * sizeof e);
    s->cache[0] = e;
}

static void cache_put(dcmseal_session_t *s, const char *name, uint32_t version,
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
static CK_RV kek_handles(dcmseal_session_t *s, const dcmseal_kek_info *kek,
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
        cache_put(s, kek->name, kek->version, o);
    }
    *pub = s->cache[0].pub;
    *priv = s->cache[0].priv;
out:
    free(o);
    return rv;
}

/* ---- find --------------------------------------------------------------- */

/* Private keys labelled |name| (any |name| when NULL), with their versions. */
static CK_RV kek_versions(dcmseal_session_t *s, const char *name, CK_OBJECT_HANDLE **hs,
                          size_t *n)
{
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_LABEL, (void *)name, name ? strlen(name) : 0},
    };
    return find_all(s, t, name ? 2 : 1, hs, n);
}

/* Reads CKA_LABEL and the version in CKA_ID of |h|; version 0 when it is not
 * a dcmseal KEK. */
static CK_RV kek_identity(dcmseal_session_t *s, CK_OBJECT_HANDLE h,
                          char label[DCMSEAL_KEK_NAME_MAX + 1], uint32_t *version)
{
    unsigned char id[KEK_ID_MAX];
    CK_ATTRIBUTE t[] = {
        {CKA_LABEL, label, DCMSEAL_KEK_NAME_MAX},
        {CKA_ID, id, sizeof id},
    };
    CK_RV rv = read_attrs(s, h, t, 2);
    *version = 0;
    if (rv != CKR_OK || t[0].ulValueLen == CK_UNAVAILABLE_INFORMATION)
        return rv;
    label[t[0].ulValueLen] = '\0';
    if (strlen(label) == t[0].ulValueLen && name_ok(label))
        *version = kek_id_version(id, t[1].ulValueLen);
    return CKR_OK;
}

static int version_desc(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x < y) - (x > y);
}

/* The versions of |name| that have a private key, highest first (free()). */
static CK_RV name_versions(dcmseal_session_t *s, const char *name, uint32_t **out, size_t *n)
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

/* The minimum decryption version of a name lives in a private CKO_DATA token
 * object of its own, so that the token stays the only source of truth. */
#define POLICY_APP "dcmseal-kek-policy"

/* The policy objects of |name| (into |*hs|, free() it, unless |hs| is NULL)
 * and the minimum decryption version: 0 when there is none, else the highest
 * they hold (two are left when a change was cut short), UINT32_MAX for a
 * value that is not 4 bytes, so that a damaged one refuses rather than
 * allows. */
static CK_RV min_read(dcmseal_session_t *s, const char *name, uint32_t *min,
                      CK_OBJECT_HANDLE **hs, size_t *n)
{
    static const CK_OBJECT_CLASS cls = CKO_DATA;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, (void *)&cls, sizeof cls},
        {CKA_APPLICATION, (void *)POLICY_APP, sizeof POLICY_APP - 1},
        {CKA_LABEL, (void *)name, strlen(name)},
    };
    unsigned char v[4];
    CK_ATTRIBUTE vt[] = {{CKA_VALUE, v, sizeof v}};
    CK_OBJECT_HANDLE *found = NULL;
    size_t count = 0;
    CK_RV rv = find_all(s, t, 3, &found, &count);
    *min = 0;
    for (size_t i = 0; rv == CKR_OK && i < count; i++) {
        uint32_t m = UINT32_MAX;
        vt[0].ulValueLen = sizeof v;
        if ((rv = read_attrs(s, found[i], vt, 1)) == CKR_OK && vt[0].ulValueLen == sizeof v)
            m = (uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 | (uint32_t)v[2] << 8 | v[3];
        *min = m > *min ? m : *min;
    }
    if (hs != NULL) {
        *hs = found;
        *n = count;
    } else {
        free(found);
    }
    return rv;
}

struct find_ctx {
    const char *name;
    uint32_t version;  /* asked for; 0 = the primary */
    uint32_t found;    /* resolved, 0 when absent */
    uint32_t primary;  /* the highest enabled version, 0 when unknown or none */
    size_t n_versions; /* how many versions |name| has */
    uint32_t min;      /* the minimum decryption version, 0 when none */
    struct kek_obj obj;
};

/* Reads the versions from the highest down to the one asked for, so that
 * it learns on the way whether that one is the primary. */
static CK_RV find_op(dcmseal_session_t *s, void *arg)
{
    struct find_ctx *c = arg;
    uint32_t *vs = NULL;
    CK_RV rv = name_versions(s, c->name, &vs, &c->n_versions);
    c->found = c->primary = 0;
    for (size_t i = 0; rv == CKR_OK && i < c->n_versions; i++) {
        if (c->version != 0 && vs[i] < c->version)
            break;
        if ((rv = kek_read(s, c->name, vs[i], &c->obj)) != CKR_OK)
            break;
        if (c->primary == 0 && !kek_disabled(&c->obj))
            c->primary = vs[i];
        if (vs[i] == (c->version != 0 ? c->version : c->primary)) {
            c->found = vs[i];
            break;
        }
    }
    if (c->found == 0)
        c->obj.priv = CK_INVALID_HANDLE;
    if (rv == CKR_OK)
        rv = min_read(s, c->name, &c->min, NULL, NULL);
    free(vs);
    return rv;
}

static dcmseal_status kek_find(dcmseal_session_t *s, dcmseal_kek_info *out, const char *name,
                               uint32_t version, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    struct find_ctx *c = NULL;
    CK_RV rv;
    DCMSEAL_ENSURE(name_ok(name), err, DCMSEAL_E_KEY, "key '%.64s' not found on token '%s'",
                   name, s->tok->label);
    c = OPENSSL_zalloc(sizeof *c);
    DCMSEAL_ENSURE(c != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    c->name = name;
    c->version = version;
    rv = session_run(s, find_op, c);
    if (rv != CKR_OK) {
        st = version != 0 ? p11_fail(err, DCMSEAL_E_TOKEN, s->tok, rv, "finding key '%s' v%u",
                                     name, (unsigned)version)
                          : p11_fail(err, DCMSEAL_E_TOKEN, s->tok, rv,
                                     "finding the primary version of key '%s'", name);
        goto out;
    }
    DCMSEAL_ENSURE(version != 0 || c->found != 0 || c->n_versions == 0, err, DCMSEAL_E_KEY,
                   "key '%s' has no enabled version on token '%s'", name, s->tok->label);
    /* The primary is never below: dcmseal_kek_set_min_version refuses that. */
    DCMSEAL_ENSURE(c->found == 0 || c->found >= c->min, err, DCMSEAL_E_KEY,
                   "key '%s' v%u on token '%s' is below the minimum decryption version %u",
                   name, (unsigned)c->found, s->tok->label, (unsigned)c->min);
    DCMSEAL_GUARD(kek_judge(s, out, &c->obj, name, version != 0 ? version : c->found, err));
    out->primary = c->found == c->primary;
    out->min_version = c->min;
    cache_put(s, name, c->found, &c->obj);
out:
    OPENSSL_free(c);
    return st;
}

dcmseal_status dcmseal_kek_find(dcmseal_session_t *s, dcmseal_kek_info *out, const char *name,
                                uint32_t version, dcmseal_error *err)
{
    if (s == NULL || out == NULL || name == NULL)
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "key find: missing argument");
    return kek_find(s, out, name, version, err);
}

/* ---- create and rotate -------------------------------------------------- */

struct gen_ctx {
    const char *name;
    int rotate;
    unsigned want;    /* bits asked for; 0 = as the highest version (rotate) */
    CK_ULONG bits;    /* resolved */
    uint32_t highest; /* the highest version present, whatever its state */
    uint32_t version; /* generated, 0 when nothing was */
    int exists;       /* some key object carries the name */
};

CK_RV kek_generate_pair(dcmseal_session_t *s, const char *name, uint32_t version,
                        CK_ULONG bits, CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv)
{
    static const unsigned char e65537[] = {0x01, 0x00, 0x01};
    CK_MECHANISM mech = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    char id[KEK_ID_MAX];
    CK_ULONG id_len = kek_id(id, version);
    CK_ATTRIBUTE pub_t[] = {
        {CKA_TOKEN, (void *)&yes, 1},
        {CKA_ENCRYPT, (void *)&yes, 1},
        {CKA_WRAP, (void *)&yes, 1},
        {CKA_VERIFY, (void *)&no, 1},
        {CKA_LABEL, (void *)name, strlen(name)},
        {CKA_ID, id, id_len},
        {CKA_MODULUS_BITS, &bits, sizeof bits},
        {CKA_PUBLIC_EXPONENT, (void *)e65537, sizeof e65537},
    };
    CK_ATTRIBUTE priv_t[] = {
        {CKA_TOKEN, (void *)&yes, 1},
        {CKA_PRIVATE, (void *)&yes, 1},
        {CKA_SENSITIVE, (void *)&yes, 1},
        {CKA_EXTRACTABLE, (void *)&no, 1},
        {CKA_DECRYPT, (void *)&yes, 1},
        {CKA_UNWRAP, (void *)&yes, 1},
        {CKA_SIGN, (void *)&no, 1},
        {CKA_LABEL, (void *)name, strlen(name)},
        {CKA_ID, id, id_len},
    };
    return s->tok->mod->C_GenerateKeyPair(s->h, &mech, pub_t, sizeof pub_t / sizeof pub_t[0],
                                          priv_t, sizeof priv_t / sizeof priv_t[0], pub, priv);
}

/* Looks at every object labelled |name|, public halves and strays included,
 * so that a new version never collides with a leftover. */
static CK_RV gen_op(dcmseal_session_t *s, void *arg)
{
    struct gen_ctx *c = arg;
    CK_OBJECT_HANDLE *hs = NULL, top = CK_INVALID_HANDLE, pub, priv;
    CK_ATTRIBUTE any[] = {{CKA_LABEL, (void *)c->name, strlen(c->name)}};
    unsigned char modulus[MODULUS_MAX];
    CK_ATTRIBUTE mod_t[] = {{CKA_MODULUS, modulus, sizeof modulus}};
    size_t n = 0;
    CK_RV rv = find_all(s, any, 1, &hs, &n);
    c->exists = 0;
    c->highest = c->version = 0;
    c->bits = c->want;
    for (size_t i = 0; rv == CKR_OK && i < n; i++) {
        char label[DCMSEAL_KEK_NAME_MAX + 1];
        uint32_t v;
        CK_OBJECT_CLASS cls = CKO_DATA;
        CK_ATTRIBUTE ct[] = {{CKA_CLASS, &cls, sizeof cls}};
        /* The min-version policy object shares the label; it does not make
         * the name taken, so that destroying every version frees it. */
        if ((rv = read_attrs(s, hs[i], ct, 1)) == CKR_OK && cls != CKO_DATA)
            c->exists = 1;
        if (rv == CKR_OK && (rv = kek_identity(s, hs[i], label, &v)) == CKR_OK &&
            v > c->highest && strcmp(label, c->name) == 0) {
            c->highest = v;
            top = hs[i];
        }
    }
    if (rv != CKR_OK || (c->rotate ? c->highest == 0 || c->highest == UINT32_MAX : c->exists))
        goto out;
    if (c->bits == 0) {
        if ((rv = read_attrs(s, top, mod_t, 1)) != CKR_OK)
            goto out;
        c->bits = modulus_bits(modulus, mod_t[0].ulValueLen);
    }
    if (c->bits != 2048 && c->bits != 3072)
        goto out;
    rv = kek_generate_pair(s, c->name, c->highest + 1, c->bits, &pub, &priv);
    if (rv == CKR_OK)
        c->version = c->highest + 1;
out:
    free(hs);
    return rv;
}

static dcmseal_status kek_generate(dcmseal_session_t *s, dcmseal_kek_info *out,
                                   const char *name, unsigned bits, int rotate,
                                   dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    struct gen_ctx c = {.name = name, .rotate = rotate, .want = bits};
    const char *what = rotate ? "rotate" : "create";
    CK_RV rv;
    DCMSEAL_ENSURE(s != NULL && out != NULL && name != NULL, err, DCMSEAL_E_USAGE,
                   "key %s: missing argument", what);
    DCMSEAL_ENSURE(name_ok(name), err, DCMSEAL_E_USAGE,
                   "key name '%.64s%s' must be 1 to %d characters of A-Z a-z 0-9 . _ -", name,
                   strlen(name) > 64 ? "..." : "", DCMSEAL_KEK_NAME_MAX);
    DCMSEAL_ENSURE(bits == 2048 || bits == 3072 || (rotate && bits == 0), err, DCMSEAL_E_USAGE,
                   "key '%s': RSA %u bits refused, only RSA 2048 or 3072 KEKs are allowed",
                   name, bits);
    rv = session_run(s, gen_op, &c);
    if (rv != CKR_OK) {
        st = p11_fail(err, DCMSEAL_E_TOKEN, s->tok, rv, "generating key '%s' v%u (RSA %lu)",
                      name, (unsigned)c.highest + 1, (unsigned long)c.bits);
        goto out;
    }
    DCMSEAL_ENSURE(rotate || !c.exists, err, DCMSEAL_E_USAGE,
                   "key %s already exists on token '%s'", name, s->tok->label);
    DCMSEAL_ENSURE(!rotate || c.highest != 0, err, DCMSEAL_E_KEY,
                   "key '%s' not found on token '%s'", name, s->tok->label);
    DCMSEAL_ENSURE(c.version != 0, err, DCMSEAL_E_USAGE,
                   "key '%s' v%u on token '%s': cannot rotate to RSA %lu bits, give 2048 or "
                   "3072",
                   name, (unsigned)c.highest, s->tok->label, (unsigned long)c.bits);
    /* A new name starts without a minimum: a policy left behind by versions
     * that were all destroyed speaks of keys that no longer exist. */
    if (!rotate)
        DCMSEAL_GUARD(dcmseal_kek_set_min_version(s, name, 0, err));
    st = kek_find(s, out, name, c.version, err);
out:
    return st;
}

dcmseal_status dcmseal_kek_create(dcmseal_session_t *s, dcmseal_kek_info *out,
                                  const char *name, unsigned bits, dcmseal_error *err)
{
    return kek_generate(s, out, name, bits, 0, err);
}

dcmseal_status dcmseal_kek_rotate(dcmseal_session_t *s, dcmseal_kek_info *out,
                                  const char *name, unsigned bits, dcmseal_error *err)
{
    return kek_generate(s, out, name, bits, 1, err);
}

/* ---- enable, disable, destroy ------------------------------------------- */

struct state_ctx {
    const char *name;
    uint32_t version;
    int destroy;
    CK_BBOOL enabled;
    int gone;
};

CK_RV kek_set_uses(dcmseal_session_t *s, CK_OBJECT_HANDLE priv, CK_OBJECT_HANDLE pub,
                   CK_BBOOL enabled)
{
    CK_ATTRIBUTE priv_t[] = {{CKA_DECRYPT, &enabled, 1}, {CKA_UNWRAP, &enabled, 1}};
    CK_ATTRIBUTE pub_t[] = {{CKA_ENCRYPT, &enabled, 1}, {CKA_WRAP, &enabled, 1}};
    CK_RV rv = s->tok->mod->C_SetAttributeValue(s->h, priv, priv_t, 2);
    return rv == CKR_OK ? s->tok->mod->C_SetAttributeValue(s->h, pub, pub_t, 2) : rv;
}

/* Both halves at once: a half-disabled key is a policy violation. On a retry
 * after a partial destroy, the half that is left is destroyed. */
static CK_RV state_op(dcmseal_session_t *s, void *arg)
{
    struct state_ctx *c = arg;
    CK_FUNCTION_LIST *m = s->tok->mod;
    CK_OBJECT_HANDLE h[2];
    CK_RV rv;
    if ((rv = find_one(s, CKO_PRIVATE_KEY, c->name, c->version, &h[0])) != CKR_OK ||
        (rv = find_one(s, CKO_PUBLIC_KEY, c->name, c->version, &h[1])) != CKR_OK)
        return rv;
    c->gone = c->destroy ? h[0] == CK_INVALID_HANDLE && h[1] == CK_INVALID_HANDLE
                         : h[0] == CK_INVALID_HANDLE || h[1] == CK_INVALID_HANDLE;
    if (c->gone)
        return rv;
    if (!c->destroy)
        return kek_set_uses(s, h[0], h[1], c->enabled);
    for (int i = 0; i < 2 && rv == CKR_OK; i++)
        rv = h[i] == CK_INVALID_HANDLE ? CKR_OK : m->C_DestroyObject(s->h, h[i]);
    return rv;
}

static dcmseal_status kek_state(dcmseal_session_t *s, struct state_ctx *c, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    const char *what = c->destroy ? "destroying" : c->enabled ? "enabling" : "disabling";
    CK_RV rv;
    DCMSEAL_ENSURE(s != NULL && c->name != NULL && c->version != 0, err, DCMSEAL_E_USAGE,
                   "key: missing argument");
    DCMSEAL_ENSURE(name_ok(c->name), err, DCMSEAL_E_KEY, "key '%.64s' not found on token '%s'",
                   c->name, s->tok->label);
    rv = session_run(s, state_op, c);
    /* Other handles of this session may point at what changed. */
    cache_clear(s);
    if (rv != CKR_OK) {
        st = p11_fail(err, DCMSEAL_E_TOKEN, s->tok, rv, "%s key '%s' v%u", what, c->name,
                      (unsigned)c->version);
        goto out;
    }
    DCMSEAL_ENSURE(!c->gone, err, DCMSEAL_E_KEY, "key '%s' (v%u) not found on token '%s'",
                   c->name, (unsigned)c->version, s->tok->label);
out:
    return st;
}

dcmseal_status dcmseal_kek_set_enabled(dcmseal_session_t *s, const char *name,
                                       uint32_t version, int enabled, dcmseal_error *err)
{
    struct state_ctx c = {name, version, 0, enabled ? CK_TRUE : CK_FALSE, 0};
    return kek_state(s, &c, err);
}

dcmseal_status dcmseal_kek_destroy(dcmseal_session_t *s, const char *name, uint32_t version,
                                   dcmseal_error *err)
{
    struct state_ctx c = {name, version, 1, CK_FALSE, 0};
    return kek_state(s, &c, err);
}

/* ---- minimum decryption version ----------------------------------------- */

struct min_ctx {
    struct find_ctx f; /* version 0: learns the primary */
    uint32_t min;
};

/* Tokens may refuse to change CKA_VALUE (SoftHSM does), so a change creates
 * the new policy object first and then destroys the old ones: cut short, it
 * leaves the stricter of the two in force (see min_read), and a rerun
 * finishes it. Clearing destroys them all. */
static CK_RV min_set_op(dcmseal_session_t *s, void *arg)
{
    struct min_ctx *c = arg;
    CK_FUNCTION_LIST *m = s->tok->mod;
    static const CK_OBJECT_CLASS cls = CKO_DATA;
    unsigned char v[4] = {(unsigned char)(c->min >> 24), (unsigned char)(c->min >> 16),
                          (unsigned char)(c->min >> 8), (unsigned char)c->min};
    CK_ATTRIBUTE t[] = {
        {CKA_VALUE, v, sizeof v},
        {CKA_CLASS, (void *)&cls, sizeof cls},
        {CKA_TOKEN, (void *)&yes, 1},
        {CKA_PRIVATE, (void *)&yes, 1},
        {CKA_APPLICATION, (void *)POLICY_APP, sizeof POLICY_APP - 1},
        {CKA_LABEL, (void *)c->f.name, strlen(c->f.name)},
    };
    CK_OBJECT_HANDLE *hs = NULL, h;
    size_t n = 0;
    uint32_t old;
    CK_RV rv = find_op(s, &c->f);
    if (rv != CKR_OK || c->f.n_versions == 0 || c->min > c->f.primary)
        return rv;
    rv = min_read(s, c->f.name, &old, &hs, &n);
    if (rv == CKR_OK && !(n == 1 && old == c->min) && c->min != 0)
        rv = m->C_CreateObject(s->h, t, sizeof t / sizeof t[0], &h);
    for (size_t i = 0; rv == CKR_OK && i < n && !(n == 1 && old == c->min); i++)
        rv = m->C_DestroyObject(s->h, hs[i]);
    free(hs);
    return rv;
}

dcmseal_status dcmseal_kek_set_min_version(dcmseal_session_t *s, const char *name,
                                           uint32_t min_version, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    struct min_ctx *c = NULL;
    CK_RV rv;
    DCMSEAL_ENSURE(s != NULL && name != NULL, err, DCMSEAL_E_USAGE,
                   "key min-version: missing argument");
    DCMSEAL_ENSURE(name_ok(name), err, DCMSEAL_E_KEY, "key '%.64s' not found on token '%s'",
                   name, s->tok->label);
    c = OPENSSL_zalloc(sizeof *c);
    DCMSEAL_ENSURE(c != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    c->f.name = name;
    c->min = min_version;
    rv = session_run(s, min_set_op, c);
    if (rv != CKR_OK) {
        st = p11_fail(err, DCMSEAL_E_TOKEN, s->tok, rv,
                      "setting the minimum decryption version of key '%s'", name);
        goto out;
    }
    DCMSEAL_ENSURE(c->f.n_versions != 0, err, DCMSEAL_E_KEY, "key '%s' not found on token '%s'",
                   name, s->tok->label);
    DCMSEAL_ENSURE(min_version <= c->f.primary, err, DCMSEAL_E_USAGE,
                   "key '%s': minimum decryption version %u is above the primary version %u on "
                   "token '%s'; new objects would be refused",
                   name, (unsigned)min_version, (unsigned)c->f.primary, s->tok->label);
out:
    OPENSSL_free(c);
    return st;
}

/* ---- list --------------------------------------------------------------- */

struct list_ctx {
    const char *name;
    dcmseal_kek_info *keys;
    size_t n;
};

static CK_RV list_op(dcmseal_session_t *s, void *arg)
{
    struct list_ctx *c = arg;
    CK_OBJECT_HANDLE *hs = NULL;
    struct kek_obj *o = malloc(sizeof *o);
    size_t n = 0;
    CK_RV rv = o == NULL ? CKR_HOST_MEMORY : kek_versions(s, c->name, &hs, &n);
    free(c->keys);
    c->n = 0;
    c->keys = rv == CKR_OK && n > 0 ? calloc(n, sizeof *c->keys) : NULL;
    if (rv == CKR_OK && n > 0 && c->keys == NULL)
        rv = CKR_HOST_MEMORY;
    for (size_t i = 0; rv == CKR_OK && i < n; i++) {
        char label[DCMSEAL_KEK_NAME_MAX + 1];
        uint32_t v;
        if ((rv = kek_identity(s, hs[i], label, &v)) != CKR_OK || v == 0 ||
            (rv = kek_read(s, label, v, o)) != CKR_OK)
            continue;
        kek_describe(&c->keys[c->n], o, label, v);
        rv = min_read(s, label, &c->keys[c->n++].min_version, NULL, NULL);
    }
    free(hs);
    free(o);
    return rv;
}

static int info_cmp(const void *a, const void *b)
{
    const dcmseal_kek_info *x = a, *y = b;
    int r = strcmp(x->name, y->name);
    return r != 0 ? r : (x->version > y->version) - (x->version < y->version);
}

dcmseal_status dcmseal_kek_list(dcmseal_session_t *s, dcmseal_kek_info *out, size_t cap,
                                size_t *count, const char *name, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    struct list_ctx c = {name, NULL, 0};
    const char *done = NULL; /* the last name whose primary is known */
    CK_RV rv;
    DCMSEAL_ENSURE(s != NULL && count != NULL && (out != NULL || cap == 0), err,
                   DCMSEAL_E_USAGE, "key list: missing argument");
    rv = session_run(s, list_op, &c);
    if (rv != CKR_OK) {
        st = p11_fail(err, DCMSEAL_E_TOKEN, s->tok, rv, "listing keys");
        goto out;
    }
    if (c.n > 0)
        qsort(c.keys, c.n, sizeof *c.keys, info_cmp);
    for (size_t i = c.n; i-- > 0;) {
        if (c.keys[i].enabled && (done == NULL || strcmp(done, c.keys[i].name) != 0)) {
            c.keys[i].primary = 1;
            done = c.keys[i].name;
        }
    }
    if (cap > 0)
        memcpy(out, c.keys, (c.n < cap ? c.n : cap) * sizeof *out);
    *count = c.n;
out:
    free(c.keys);
    return st;
}

/* ---- wrap and unwrap ---------------------------------------------------- */

static void oaep_params(CK_RSA_PKCS_OAEP_PARAMS *p, dcmseal_oaep oaep)
{
    memset(p, 0, sizeof *p);
    p->hashAlg = oaep == DCMSEAL_OAEP_SHA256 ? CKM_SHA256 : CKM_SHA_1;
    p->mgf = oaep == DCMSEAL_OAEP_SHA256 ? CKG_MGF1_SHA256 : CKG_MGF1_SHA1;
    p->source = CKZ_DATA_SPECIFIED;
}

/* SoftHSM 2.6.1 answers C_EncryptInit/C_DecryptInit with OAEP-SHA256 by
 * CKR_ARGUMENTS_BAD (it accepts only SHA-1 and MGF1-SHA1); other tokens use the
 * codes PKCS#11 meant for it. */
static int oaep_refused(CK_RV rv)
{
    return rv == CKR_MECHANISM_INVALID || rv == CKR_MECHANISM_PARAM_INVALID ||
           rv == CKR_ARGUMENTS_BAD;
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
};

/* One OAEP step with |mech|: an operation's init, C_UnwrapKey, C_WrapKey. */
typedef CK_RV (*oaep_step)(dcmseal_session_t *s, CK_MECHANISM *mech, void *arg);

/* Runs |step| with the variant asked for; with AUTO, falls back to SHA-1
 * when the token refuses SHA-256 and remembers that it did. */
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
        if (!(oaep_refused(rv) && prefer == DCMSEAL_OAEP_AUTO && *used == DCMSEAL_OAEP_SHA256))
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

/* The handle of |c->kek| that |c| needs. */
static CK_RV crypt_key(dcmseal_session_t *s, struct crypt_ctx *c)
{
    CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE;
    CK_RV rv = kek_handles(s, c->kek, &pub, &priv, &c->gone);
    c->key = c->decrypt ? priv : pub;
    c->in_final = 0;
    return rv;
}

static CK_RV crypt_op(dcmseal_session_t *s, void *arg)
{
    struct crypt_ctx *c = arg;
    CK_RV rv = crypt_key(s, c);
    if (rv != CKR_OK || c->gone || (rv = oaep_run(s, c->prefer, &c->used, crypt_init, c)) != CKR_OK)
        return rv;
    c->in_final = 1;
    c->buf_len = sizeof c->buf;
    return c->decrypt ? s->tok->mod->C_Decrypt(s->h, (CK_BYTE *)c->in, c->in_len, c->buf,
                                               &c->buf_len)
                      : s->tok->mod->C_Encrypt(s->h, (CK_BYTE *)c->in, c->in_len, c->buf,
                                               &c->buf_len);
}

/* How the token's answer to a wrap or unwrap reads to the caller. */
static dcmseal_status crypt_status(const struct crypt_ctx *c, CK_RV rv)
{
    if (c->gone || rv == CKR_KEY_HANDLE_INVALID || rv == CKR_OBJECT_HANDLE_INVALID ||
        rv == CKR_KEY_FUNCTION_NOT_PERMITTED || rv == CKR_KEY_TYPE_INCONSISTENT ||
        (!c->in_final && oaep_refused(rv)))
        return DCMSEAL_E_KEY;
    /* SoftHSM 2.6.1's C_Decrypt returns CKR_ENCRYPTED_DATA_LEN_RANGE for a
     * ciphertext that is not exactly the modulus size, and CKR_GENERAL_ERROR
     * when the OAEP decoding of a tampered one fails. CKR_GENERAL_ERROR is read
     * as "bad ciphertext" only after C_DecryptInit succeeded on a live session;
     * device and session trouble have codes of their own. */
    if (c->decrypt && c->in_final &&
        (rv == CKR_ENCRYPTED_DATA_INVALID || rv == CKR_ENCRYPTED_DATA_LEN_RANGE ||
         rv == CKR_DATA_INVALID || rv == CKR_DATA_LEN_RANGE || rv == CKR_WRAPPED_KEY_INVALID ||
         rv == CKR_WRAPPED_KEY_LEN_RANGE || rv == CKR_GENERAL_ERROR))
        return DCMSEAL_E_AUTH;
    if (!c->decrypt && c->in_final && rv == CKR_DATA_LEN_RANGE)
        return DCMSEAL_E_USAGE;
    return DCMSEAL_E_TOKEN;
}

static dcmseal_status crypt_fail(dcmseal_session_t *s, const struct crypt_ctx *c, CK_RV rv,
                                 dcmseal_error *err)
{
    const dcmseal_kek_info *kek = c->kek;
    dcmseal_status st = crypt_status(c, rv);
    if (c->gone)
        return dcmseal_fail(err, st, "key '%s' (v%u) not found on token '%s'", kek->name,
                            (unsigned)kek->version, s->tok->label);
    if (!c->in_final && oaep_refused(rv))
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
    return rv == CKR_OK && !c->gone ? DCMSEAL_OK : crypt_fail(s, c, rv, err);
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
    struct crypt_ctx c = {
        .kek = kek, .decrypt = 1, .prefer = oaep, .in = wrapped, .in_len = wrapped_len};
    DCMSEAL_ENSURE(s != NULL && out != NULL && out_len != NULL && kek != NULL &&
                       wrapped != NULL && oaep_valid(oaep, 0),
                   err, DCMSEAL_E_USAGE, "key unwrap: missing or bad argument");
    DCMSEAL_GUARD(kek_crypt(s, &c, err));
    /* A longer plaintext than the caller's key cannot be a dcmseal DEK. */
    DCMSEAL_ENSURE(c.buf_len <= out_cap, err, DCMSEAL_E_AUTH,
                   "authentication failed: key '%s' v%u on token '%s' unwrapped %lu bytes, "
                   "expected at most %zu",
                   kek->name, (unsigned)kek->version, s->tok->label, (unsigned long)c.buf_len,
                   out_cap);
    memcpy(out, c.buf, c.buf_len);
    *out_len = c.buf_len;
out:
    OPENSSL_cleanse(c.buf, sizeof c.buf);
    return st;
}

/* ---- rewrap ------------------------------------------------------------- */

struct rewrap_ctx {
    struct crypt_ctx u, w; /* unwrapping under |from|, wrapping under |to| */
    struct crypt_ctx *failed;
    CK_OBJECT_HANDLE dek; /* the session object between the two steps */
};

CK_RV kek_unwrap_dek(dcmseal_session_t *s, CK_MECHANISM *mech, CK_OBJECT_HANDLE key,
                     const uint8_t *in, size_t in_len, CK_OBJECT_HANDLE *dek)
{
    static const CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    static const CK_KEY_TYPE type = CKK_GENERIC_SECRET;
    /* Sensitive: never readable; extractable: C_WrapKey needs it. */
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, (void *)&cls, sizeof cls},   {CKA_KEY_TYPE, (void *)&type, sizeof type},
        {CKA_TOKEN, (void *)&no, 1},             {CKA_PRIVATE, (void *)&yes, 1},
        {CKA_SENSITIVE, (void *)&yes, 1},        {CKA_EXTRACTABLE, (void *)&yes, 1},
    };
    return s->tok->mod->C_UnwrapKey(s->h, mech, key, (CK_BYTE *)in, in_len, t,
                                    sizeof t / sizeof t[0], dek);
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

static CK_RV rewrap_op(dcmseal_session_t *s, void *arg)
{
    struct rewrap_ctx *r = arg;
    CK_RV rv;
    r->failed = &r->u;
    if ((rv = crypt_key(s, &r->u)) != CKR_OK || r->u.gone)
        return rv;
    r->failed = &r->w;
    if ((rv = crypt_key(s, &r->w)) != CKR_OK || r->w.gone)
        return rv;
    /* Neither step has a separate init: a refused mechanism and refused
     * bytes come from the same call. */
    r->failed = &r->u;
    r->u.in_final = r->w.in_final = 1;
    r->dek = CK_INVALID_HANDLE;
    if ((rv = oaep_run(s, r->u.prefer, &r->u.used, unwrap_key, r)) != CKR_OK)
        return rv;
    r->failed = &r->w;
    rv = oaep_run(s, r->w.prefer, &r->w.used, wrap_key, r);
    s->tok->mod->C_DestroyObject(s->h, r->dek);
    return rv;
}

/* Answers meaning "not this way": the host path may still work.
 * CKR_GENERAL_ERROR is SoftHSM's answer to tampered bytes as well as to
 * internal trouble; the host path, whose C_DecryptInit separates key and
 * mechanism trouble from the bytes, tells them apart. */
static int rewrap_refused(CK_RV rv)
{
    return oaep_refused(rv) || rv == CKR_FUNCTION_NOT_SUPPORTED ||
           rv == CKR_TEMPLATE_INCOMPLETE || rv == CKR_TEMPLATE_INCONSISTENT ||
           rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_VALUE_INVALID ||
           rv == CKR_KEY_UNEXTRACTABLE || rv == CKR_KEY_NOT_WRAPPABLE ||
           rv == CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT ||
           rv == CKR_WRAPPING_KEY_TYPE_INCONSISTENT || rv == CKR_GENERAL_ERROR;
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
    uint8_t dek[DCMSEAL_WRAPPED_MAX];
    size_t dek_len = 0;
    CK_RV rv;
    DCMSEAL_ENSURE(s != NULL && out != NULL && out_len != NULL && used != NULL &&
                       in_token != NULL && from != NULL && to != NULL && wrapped != NULL &&
                       oaep_valid(from_oaep, 0) && oaep_valid(prefer, 1),
                   err, DCMSEAL_E_USAGE, "key rewrap: missing or bad argument");
    *in_token = 0;
    if (!atomic_load(&s->tok->no_token_rewrap)) {
        r = OPENSSL_zalloc(sizeof *r);
        DCMSEAL_ENSURE(r != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
        r->u = (struct crypt_ctx){
            .kek = from, .decrypt = 1, .prefer = from_oaep, .in = wrapped, .in_len = wrapped_len};
        r->w = (struct crypt_ctx){.kek = to, .prefer = prefer};
        rv = session_run(s, rewrap_op, r);
        if (rv == CKR_OK && !r->u.gone && !r->w.gone) {
            DCMSEAL_ENSURE(r->w.buf_len <= out_cap, err, DCMSEAL_E_USAGE,
                           "key rewrap: %lu bytes of output do not fit in %zu",
                           (unsigned long)r->w.buf_len, out_cap);
            memcpy(out, r->w.buf, r->w.buf_len);
            *out_len = r->w.buf_len;
            *used = r->w.used;
            *in_token = 1;
            goto out;
        }
        if (r->u.gone || r->w.gone || !rewrap_refused(rv)) {
            st = crypt_fail(s, r->failed, rv, err);
            goto out;
        }
        /* A refusal that holds for every object, not one that the variant
         * asked for or these bytes caused, makes the batch skip this path. */
        if (rv != CKR_GENERAL_ERROR &&
            !(oaep_refused(rv) && r->failed->used == DCMSEAL_OAEP_SHA256))
            atomic_store(&s->tok->no_token_rewrap, 1);
    }
    DCMSEAL_GUARD(dcmseal_kek_unwrap(s, dek, sizeof dek, &dek_len, from, from_oaep, wrapped,
                                     wrapped_len, err));
    DCMSEAL_GUARD(dcmseal_kek_wrap(s, out, out_cap, out_len, used, to, prefer, dek, dek_len,
                                   err));
out:
    OPENSSL_cleanse(dek, sizeof dek);
    OPENSSL_free(r);
    return st;
}
