/* What makes a KEK acceptable: the key policy checked on every use, and a
 * name's minimum decryption version, kept in the token. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "internal.h"

static const CK_BBOOL yes = CK_TRUE;

static const char *bool_str(CK_BBOOL b)
{
    return b == CK_TRUE ? "true" : b == CK_FALSE ? "false" : "unset";
}

/* The key policy; on success fills |info|. */
dcmseal_status kek_judge(dcmseal_session_t *s, dcmseal_kek_info *info,
                         const struct kek_obj *o, const char *name,
                         uint32_t version, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    char why[96] = "";
    unsigned bits = kek_modulus_bits(o->modulus, o->modulus_len);
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
    else if (!kek_describe(info, o, name, version))
        snprintf(why, sizeof why, "no public exponent on either half, so no fingerprint");
    /* Nothing here depends on the public half: decryption never does. A
     * version without one (DCMSEAL_KEK_NO_PUBLIC) cannot wrap, and the
     * token refuses to wrap under one whose CKA_ENCRYPT/CKA_WRAP is off. */
    DCMSEAL_ENSURE(why[0] == '\0', err, DCMSEAL_E_KEY, "key '%s' v%u on token '%s' refused: %s",
                   name, (unsigned)version, s->tok->label, why);
out:
    return st;
}


/* The minimum decryption version of a name lives in a private CKO_DATA token
 * object of its own, so that the token stays the only source of truth. */
#define POLICY_APP "dcmseal-kek-policy"

/* The policy objects of |name| (into |*hs|, free() it, unless |hs| is NULL)
 * and the minimum decryption version: 0 when there is none, else the highest
 * they hold (two are left when a change was cut short), UINT32_MAX for a
 * value that is not 4 bytes, so that a damaged one refuses rather than
 * allows. */
CK_RV kek_min_read(dcmseal_session_t *s, const char *name, uint32_t *min,
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
    CK_RV rv = p11_find_all(s, t, 3, &found, &count);
    *min = 0;
    for (size_t i = 0; rv == CKR_OK && i < count; i++) {
        uint32_t m = UINT32_MAX;
        vt[0].ulValueLen = sizeof v;
        if ((rv = p11_read_attrs(s, found[i], vt, 1)) == CKR_OK && vt[0].ulValueLen == sizeof v)
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
    CK_RV rv = kek_find_op(s, &c->f);
    if (rv != CKR_OK || c->f.n_versions == 0 || c->min > c->f.primary)
        return rv;
    rv = kek_min_read(s, c->f.name, &old, &hs, &n);
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
    DCMSEAL_GUARD(kek_name_known(s, name, err));
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

/* ---- retention, purge protection, disabled-at --------------------------- *
 *
 * Each lives in private CKO_DATA token objects of its own application, so
 * that the rules for changing one do not bind the others:
 *   dcmseal-kek-retention  CKA_LABEL name, CKA_VALUE days (4 bytes) and flags
 *                          (4 bytes, bit 0: purge protection), big-endian.
 *   dcmseal-kek-disabled   CKA_LABEL name, CKA_VALUE version (4 bytes) and
 *                          the time it was disabled (8 bytes, seconds since
 *                          1970, signed), big-endian.
 * A name may hold several retention objects: the longest retention is in
 * force, and purge protection is on when any of them says so. Under purge
 * protection they are made CKA_DESTROYABLE and CKA_MODIFIABLE false, so
 * that the token itself keeps the retention from shrinking: a new, longer
 * one is added beside it. */
#define RETENTION_APP "dcmseal-kek-retention"
#define DISABLED_APP "dcmseal-kek-disabled"
#define RETENTION_PURGE 1u

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* The data objects of |app| labelled |name| (free() them). */
static CK_RV data_find(dcmseal_session_t *s, const char *app, const char *name,
                       CK_OBJECT_HANDLE **hs, size_t *n)
{
    static const CK_OBJECT_CLASS cls = CKO_DATA;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, (void *)&cls, sizeof cls},
        {CKA_APPLICATION, (void *)app, strlen(app)},
        {CKA_LABEL, (void *)name, strlen(name)},
    };
    return p11_find_all(s, t, 3, hs, n);
}

/* CKA_VALUE of |h| into |v|; its length, or 0 when it is not |cap| long. */
static CK_RV data_value(dcmseal_session_t *s, CK_OBJECT_HANDLE h, unsigned char *v, size_t cap,
                        size_t *len)
{
    CK_ATTRIBUTE t[] = {{CKA_VALUE, v, cap}};
    CK_RV rv = p11_read_attrs(s, h, t, 1);
    *len = rv == CKR_OK && t[0].ulValueLen == cap ? cap : 0;
    return rv;
}

/* A new data object; |locked|: neither destroyable nor modifiable, where
 * the token knows those attributes (|*locked| is cleared where it does not). */
static CK_RV data_create(dcmseal_session_t *s, const char *app, const char *name,
                         const unsigned char *v, size_t len, int *locked)
{
    static const CK_OBJECT_CLASS cls = CKO_DATA;
    static const CK_BBOOL no = CK_FALSE;
    CK_OBJECT_HANDLE h;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, (void *)&cls, sizeof cls},
        {CKA_TOKEN, (void *)&yes, 1},
        {CKA_PRIVATE, (void *)&yes, 1},
        {CKA_APPLICATION, (void *)app, strlen(app)},
        {CKA_LABEL, (void *)name, strlen(name)},
        {CKA_VALUE, (void *)v, len},
        {CKA_DESTROYABLE, (void *)&no, 1},
        {CKA_MODIFIABLE, (void *)&no, 1},
    };
    CK_RV rv = s->tok->mod->C_CreateObject(s->h, t, locked && *locked ? 8 : 6, &h);
    if (locked && *locked && (rv == CKR_ATTRIBUTE_TYPE_INVALID ||
                              rv == CKR_ATTRIBUTE_VALUE_INVALID ||
                              rv == CKR_TEMPLATE_INCONSISTENT)) {
        /* A token before PKCS#11 2.40: dcmseal alone keeps the rule. */
        *locked = 0;
        rv = s->tok->mod->C_CreateObject(s->h, t, 6, &h);
    }
    return rv;
}

CK_RV kek_retention_read(dcmseal_session_t *s, const char *name, uint32_t *days, int *purge,
                         int *locked)
{
    static const CK_BBOOL unset = BOOL_UNSET;
    CK_OBJECT_HANDLE *hs = NULL;
    size_t n = 0, len;
    unsigned char v[8];
    CK_RV rv = data_find(s, RETENTION_APP, name, &hs, &n);
    *days = 0;
    *purge = 0;
    if (locked != NULL)
        *locked = 0;
    for (size_t i = 0; rv == CKR_OK && i < n; i++) {
        if ((rv = data_value(s, hs[i], v, sizeof v, &len)) != CKR_OK)
            break;
        /* Damaged: as long and as protected as can be, so that it refuses
         * rather than allows. */
        uint32_t d = len ? get32(v) : UINT32_MAX;
        int p = len ? (get32(v + 4) & RETENTION_PURGE) != 0 : 1;
        *days = d > *days ? d : *days;
        *purge |= p;
        if (p && locked != NULL) {
            CK_BBOOL destroyable = unset;
            CK_ATTRIBUTE t[] = {{CKA_DESTROYABLE, &destroyable, 1}};
            if ((rv = p11_read_attrs(s, hs[i], t, 1)) == CKR_OK && destroyable == CK_FALSE)
                *locked = 1;
        }
    }
    free(hs);
    return rv;
}

struct retention_ctx {
    struct find_ctx f;
    uint32_t days, old_days;
    int purge, old_purge, locked;
};

/* Adds the new retention object first, then removes the old ones that may
 * go: cut short, the longer retention stays in force, and a rerun finishes
 * the change. Under purge protection the old ones stay, locked. */
static CK_RV retention_op(dcmseal_session_t *s, void *arg)
{
    struct retention_ctx *c = arg;
    CK_OBJECT_HANDLE *hs = NULL;
    size_t n = 0;
    unsigned char v[8];
    CK_RV rv = kek_find_op(s, &c->f);
    if (rv != CKR_OK || c->f.n_versions == 0)
        return rv;
    if ((rv = kek_retention_read(s, c->f.name, &c->old_days, &c->old_purge, NULL)) != CKR_OK)
        return rv;
    const int purge = c->purge || c->old_purge;
    if ((c->old_purge && c->days < c->old_days) || (purge && c->days == 0))
        return CKR_OK; /* refused: dcmseal_kek_set_retention says why */
    if ((c->days == c->old_days && purge == c->old_purge) ||
        (rv = data_find(s, RETENTION_APP, c->f.name, &hs, &n)) != CKR_OK)
        return rv;
    c->locked = purge;
    if (c->days != 0) {
        put32(v, c->days);
        put32(v + 4, purge ? RETENTION_PURGE : 0);
        rv = data_create(s, RETENTION_APP, c->f.name, v, sizeof v, &c->locked);
    }
    for (size_t i = 0; rv == CKR_OK && i < n; i++) {
        rv = s->tok->mod->C_DestroyObject(s->h, hs[i]);
        if (rv == CKR_ACTION_PROHIBITED && purge)
            rv = CKR_OK; /* a locked one: it stays, and is not longer */
    }
    free(hs);
    return rv;
}

dcmseal_status dcmseal_kek_set_retention(dcmseal_session_t *s, const char *name, uint32_t days,
                                         int purge_protection, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    struct retention_ctx *c = NULL;
    CK_RV rv;
    DCMSEAL_ENSURE(s != NULL && name != NULL, err, DCMSEAL_E_USAGE,
                   "key policy: missing argument");
    DCMSEAL_ENSURE(days <= DCMSEAL_RETENTION_MAX, err, DCMSEAL_E_USAGE,
                   "key '%.64s': a retention of %u days is more than %u", name, (unsigned)days,
                   DCMSEAL_RETENTION_MAX);
    DCMSEAL_GUARD(kek_name_known(s, name, err));
    c = OPENSSL_zalloc(sizeof *c);
    DCMSEAL_ENSURE(c != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    c->f.name = name;
    c->days = days;
    c->purge = purge_protection != 0;
    rv = session_run(s, retention_op, c);
    if (rv != CKR_OK) {
        st = p11_fail(err, DCMSEAL_E_TOKEN, s->tok, rv, "setting the retention of key '%s'",
                      name);
        goto out;
    }
    DCMSEAL_ENSURE(c->f.n_versions != 0, err, DCMSEAL_E_KEY, "key '%s' not found on token '%s'",
                   name, s->tok->label);
    DCMSEAL_ENSURE(!(c->old_purge && days < c->old_days), err, DCMSEAL_E_USAGE,
                   "key '%s' has purge protection: its retention of %u days cannot be "
                   "shortened, nor removed", name, (unsigned)c->old_days);
    DCMSEAL_ENSURE(!((c->purge || c->old_purge) && days == 0), err, DCMSEAL_E_USAGE,
                   "key '%s': purge protection needs a retention of at least one day", name);
out:
    OPENSSL_free(c);
    return st;
}

CK_RV kek_disabled_read(dcmseal_session_t *s, const char *name, uint32_t version, int64_t *at)
{
    CK_OBJECT_HANDLE *hs = NULL;
    size_t n = 0, len;
    unsigned char v[12];
    CK_RV rv = data_find(s, DISABLED_APP, name, &hs, &n);
    *at = 0;
    for (size_t i = 0; rv == CKR_OK && i < n; i++) {
        if ((rv = data_value(s, hs[i], v, sizeof v, &len)) != CKR_OK || len == 0 ||
            get32(v) != version)
            continue;
        /* The latest disabling counts: one left from an earlier time the
         * version was disabled cannot shorten the wait. */
        int64_t t = (int64_t)((uint64_t)get32(v + 4) << 32 | get32(v + 8));
        *at = t > *at ? t : *at;
    }
    free(hs);
    return rv;
}

CK_RV kek_disabled_note(dcmseal_session_t *s, const char *name, uint32_t version, int renew)
{
    unsigned char v[12];
    int64_t at = 0;
    CK_RV rv = renew ? kek_disabled_forget(s, name, version)
                     : kek_disabled_read(s, name, version, &at);
    if (rv != CKR_OK || at != 0)
        return rv;
    uint64_t now = (uint64_t)time(NULL);
    put32(v, version);
    put32(v + 4, (uint32_t)(now >> 32));
    put32(v + 8, (uint32_t)now);
    return data_create(s, DISABLED_APP, name, v, sizeof v, NULL);
}

CK_RV kek_disabled_forget(dcmseal_session_t *s, const char *name, uint32_t version)
{
    CK_OBJECT_HANDLE *hs = NULL;
    size_t n = 0, len;
    unsigned char v[12];
    CK_RV rv = data_find(s, DISABLED_APP, name, &hs, &n);
    for (size_t i = 0; rv == CKR_OK && i < n; i++)
        if ((rv = data_value(s, hs[i], v, sizeof v, &len)) == CKR_OK && len && get32(v) == version)
            rv = s->tok->mod->C_DestroyObject(s->h, hs[i]);
    free(hs);
    return rv;
}

/* ---- whether a version may be destroyed --------------------------------- */

struct destroy_ctx {
    const char *name;
    uint32_t version;
    struct kek_obj obj;
    uint32_t days;
    int purge;
    int64_t at;
};

static CK_RV destroy_check_op(dcmseal_session_t *s, void *arg)
{
    struct destroy_ctx *c = arg;
    CK_RV rv = kek_read(s, c->name, c->version, &c->obj);
    if (rv == CKR_OK)
        rv = kek_retention_read(s, c->name, &c->days, &c->purge, NULL);
    if (rv == CKR_OK)
        rv = kek_disabled_read(s, c->name, c->version, &c->at);
    return rv;
}

/* "2026-12-01 09:21 UTC" */
static void utc(char *buf, size_t cap, int64_t t)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, cap, "%Y-%m-%d %H:%M UTC", &tm) == 0)
        snprintf(buf, cap, "%lld s after 1970", (long long)t);
}

dcmseal_status dcmseal_kek_destroy_check(dcmseal_session_t *s, const char *name,
                                         uint32_t version, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    struct destroy_ctx *c = NULL;
    char since[48], from[48];
    CK_RV rv;
    DCMSEAL_ENSURE(s != NULL && name != NULL && version != 0, err, DCMSEAL_E_USAGE,
                   "key destroy: missing argument");
    DCMSEAL_GUARD(kek_name_known(s, name, err));
    c = OPENSSL_zalloc(sizeof *c);
    DCMSEAL_ENSURE(c != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    c->name = name;
    c->version = version;
    rv = session_run(s, destroy_check_op, c);
    if (rv != CKR_OK) {
        st = p11_fail(err, DCMSEAL_E_TOKEN, s->tok, rv, "reading the retention of key '%s'",
                      name);
        goto out;
    }
    /* A half left by a destroy cut short is destroyed again, whatever. */
    DCMSEAL_ENSURE(c->obj.priv != CK_INVALID_HANDLE || c->obj.pub != CK_INVALID_HANDLE, err,
                   DCMSEAL_E_KEY, "key '%s' (v%u) not found on token '%s'", name,
                   (unsigned)version, s->tok->label);
    if (c->days == 0 || c->obj.priv == CK_INVALID_HANDLE)
        goto out;
    DCMSEAL_ENSURE(kek_disabled(&c->obj), err, DCMSEAL_E_USAGE,
                   "key '%s' v%u is enabled; it has a retention of %u days: disable it, then "
                   "destroy it when they have passed", name, (unsigned)version,
                   (unsigned)c->days);
    DCMSEAL_ENSURE(c->at != 0, err, DCMSEAL_E_USAGE,
                   "key '%s' v%u: when it was disabled is not recorded on token '%s', so its "
                   "retention of %u days cannot be counted; 'key disable %s %u' records it now",
                   name, (unsigned)version, s->tok->label, (unsigned)c->days, name,
                   (unsigned)version);
    const int64_t until = c->at + (int64_t)c->days * 86400, now = (int64_t)time(NULL);
    utc(since, sizeof since, c->at);
    utc(from, sizeof from, until);
    DCMSEAL_ENSURE(now >= until, err, DCMSEAL_E_USAGE,
                   "key '%s' v%u is within its retention of %u days: disabled since %s, it may "
                   "be destroyed from %s%s", name, (unsigned)version, (unsigned)c->days, since,
                   from, c->purge ? " (purge protection: the retention cannot be shortened)"
                                  : "");
out:
    OPENSSL_free(c);
    return st;
}
