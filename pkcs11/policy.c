/* What makes a KEK acceptable: the key policy checked on every use, and a
 * name's minimum decryption version, kept in the token. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    DCMSEAL_ENSURE(kek_name_ok(name), err, DCMSEAL_E_KEY, "key '%.64s' not found on token '%s'",
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
