/* Origin keys and concealment keys: HMAC-SHA256 secret keys that never leave
 * the token, and the require-origin policy of a name (docs/KEYS.md "Origin
 * keys", docs/FORMAT.md "Origin proof" and "Concealed names").
 *
 * Why HMAC in the token rather than a signature key: encryption needs only
 * the KEK's public half, which is cheap; an RSA or EC signature would add a
 * private-key operation to every encrypt. An HMAC costs one symmetric token
 * call per object on both sides, and only a logged-in user of the token can
 * make one, which is the property origin needs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "internal.h"

static const CK_BBOOL yes = CK_TRUE, no = CK_FALSE;

#define ORIGIN_ID_PREFIX "dcmseal-origin:"
#define CONCEAL_ID_PREFIX "dcmseal-names:"
#define ORIGIN_POLICY_APP "dcmseal-origin-policy"

/* "dcmseal-origin:NAME:vN" and "dcmseal-names:NAME": unique per name (and
 * version), since other PKCS#11 tools select keys by CKA_ID; ':' cannot
 * occur in a name, so no two names share an ID. */
size_t hmac_key_id(char id[HMAC_ID_MAX], const char *name, uint32_t version)
{
    int n = version != 0 ? snprintf(id, HMAC_ID_MAX, ORIGIN_ID_PREFIX "%s:v%u", name,
                                    (unsigned)version)
                         : snprintf(id, HMAC_ID_MAX, CONCEAL_ID_PREFIX "%s", name);
    return n > 0 && n < HMAC_ID_MAX ? (size_t)n : 0;
}

/* ---- finding, judging, caching ------------------------------------------ */

/* Only private objects: anyone who can reach the token's slot can make a
 * public one without the PIN, with a value of their choosing, under any
 * label and ID. Used for proofs, such a key would let them forge. */
CK_RV hmac_key_find(dcmseal_session_t *s, const char *name, uint32_t version,
                    CK_OBJECT_HANDLE *h)
{
    static const CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    char id[HMAC_ID_MAX];
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, (void *)&cls, sizeof cls},
        {CKA_LABEL, (void *)name, strlen(name)},
        {CKA_ID, id, hmac_key_id(id, name, version)},
        {CKA_PRIVATE, (void *)&yes, 1},
    };
    CK_OBJECT_HANDLE *hs = NULL;
    size_t n = 0;
    CK_RV rv = p11_find_all(s, t, 4, &hs, &n);
    *h = n > 0 ? hs[0] : CK_INVALID_HANDLE;
    free(hs);
    return rv;
}

/* What makes an HMAC key of ours acceptable; "" when it is, else the
 * attribute at fault. |verify|: it must also verify (an origin key). A key
 * that neither signs nor verifies is disabled, which is not a violation.
 * The same lockdown as a KEK's private half (policy.c), and one thing more:
 * the key was made in the token and never left it (CKA_LOCAL,
 * CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE). Whoever knows the value of
 * an origin key can forge, so a key imported with a known value, even by
 * someone with the PIN, is refused rather than trusted. */
static void hmac_judge(char *why, size_t cap, dcmseal_session_t *s, CK_OBJECT_HANDLE h,
                       int verify, int *disabled)
{
    CK_KEY_TYPE type = (CK_KEY_TYPE)-1;
    CK_ULONG len = 0;
    CK_BBOOL sensitive = BOOL_UNSET, extractable = BOOL_UNSET, sign = BOOL_UNSET,
             ver = BOOL_UNSET, priv = BOOL_UNSET, local = BOOL_UNSET, always = BOOL_UNSET,
             never = BOOL_UNSET;
    CK_ATTRIBUTE t[] = {
        {CKA_KEY_TYPE, &type, sizeof type}, {CKA_VALUE_LEN, &len, sizeof len},
        {CKA_SENSITIVE, &sensitive, 1},     {CKA_EXTRACTABLE, &extractable, 1},
        {CKA_SIGN, &sign, 1},               {CKA_VERIFY, &ver, 1},
        {CKA_PRIVATE, &priv, 1},            {CKA_LOCAL, &local, 1},
        {CKA_ALWAYS_SENSITIVE, &always, 1}, {CKA_NEVER_EXTRACTABLE, &never, 1},
    };
    CK_RV rv = p11_read_attrs(s, h, t, sizeof t / sizeof t[0]);
    why[0] = '\0';
    *disabled = sign == CK_FALSE && (ver == CK_FALSE || !verify);
    if (rv != CKR_OK)
        snprintf(why, cap, "its attributes cannot be read (%s)", ckr_name(rv));
    else if (type != CKK_GENERIC_SECRET && type != CKK_SHA256_HMAC)
        snprintf(why, cap, "CKA_KEY_TYPE is not CKK_GENERIC_SECRET");
    else if (t[1].ulValueLen == CK_UNAVAILABLE_INFORMATION || len < 32)
        snprintf(why, cap, "CKA_VALUE_LEN is below 32 bytes");
    else if (priv != CK_TRUE)
        snprintf(why, cap, "CKA_PRIVATE is not true");
    else if (sensitive != CK_TRUE)
        snprintf(why, cap, "CKA_SENSITIVE is not true");
    else if (extractable != CK_FALSE)
        snprintf(why, cap, "CKA_EXTRACTABLE is not false");
    else if (local != CK_TRUE)
        snprintf(why, cap, "CKA_LOCAL is not true: it was not made in the token");
    else if (always != CK_TRUE || never != CK_TRUE)
        snprintf(why, cap, "CKA_ALWAYS_SENSITIVE or CKA_NEVER_EXTRACTABLE is not true: its "
                           "value may have left the token");
    else if (!*disabled && (sign != CK_TRUE || (verify && ver != CK_TRUE)))
        snprintf(why, cap, "CKA_SIGN or CKA_VERIFY is not true");
}

/* What the key lacks that the lockdown asks for but proofs do not need:
 * the token may have refused CKA_ALLOWED_MECHANISMS (hmac_generate), and
 * then anyone with the PIN can use the key for other MACs. An attribute
 * the token does not report counts as lacking, as for KEKs (kek_weak). */
unsigned origin_weak(dcmseal_session_t *s, CK_OBJECT_HANDLE h)
{
    CK_MECHANISM_TYPE mechs[8];
    CK_ATTRIBUTE t[] = {{CKA_ALLOWED_MECHANISMS, mechs, sizeof mechs}};
    if (h == CK_INVALID_HANDLE)
        return 0;
    int hmac_only = p11_read_attrs(s, h, t, 1) == CKR_OK &&
                    t[0].ulValueLen == sizeof mechs[0] && mechs[0] == CKM_SHA256_HMAC;
    return hmac_only ? 0 : DCMSEAL_KEK_WEAK_ORIGIN;
}

/* The cached handle of |name| v|version| (0: the concealment key). */
static int hcache_get(dcmseal_session_t *s, const char *name, uint32_t version,
                      CK_OBJECT_HANDLE *h)
{
    for (size_t i = 0; i < HMAC_CACHE_SIZE; i++) {
        struct hmac_cache *e = &s->hcache[i];
        if (e->valid && e->version == version && strcmp(e->name, name) == 0) {
            *h = e->h;
            if (i > 0) { /* most recent first */
                struct hmac_cache tmp = *e;
                memmove(&s->hcache[1], &s->hcache[0], i * sizeof tmp);
                s->hcache[0] = tmp;
            }
            return 1;
        }
    }
    return 0;
}

static void hcache_put(dcmseal_session_t *s, const char *name, uint32_t version,
                       CK_OBJECT_HANDLE h)
{
    memmove(&s->hcache[1], &s->hcache[0], (HMAC_CACHE_SIZE - 1) * sizeof s->hcache[0]);
    s->hcache[0].valid = 1;
    snprintf(s->hcache[0].name, sizeof s->hcache[0].name, "%s", name);
    s->hcache[0].version = version;
    s->hcache[0].h = h;
}

/* ---- generation --------------------------------------------------------- */

/* dcmseal's template. CKA_ALLOWED_MECHANISMS pins the key to HMAC-SHA256
 * where the token knows the attribute; a token that refuses it gets the key
 * without (hsm-check reports which). The key stays modifiable so that
 * disabling can switch CKA_SIGN and CKA_VERIFY off. */
static CK_RV hmac_generate(dcmseal_session_t *s, const char *name, uint32_t version,
                           CK_OBJECT_HANDLE *h)
{
    static const CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    static const CK_KEY_TYPE type = CKK_GENERIC_SECRET;
    static const CK_ULONG len = 32;
    static const CK_MECHANISM_TYPE allowed[] = {CKM_SHA256_HMAC};
    CK_MECHANISM mech = {CKM_GENERIC_SECRET_KEY_GEN, NULL, 0};
    char id[HMAC_ID_MAX];
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, (void *)&cls, sizeof cls},
        {CKA_KEY_TYPE, (void *)&type, sizeof type},
        {CKA_VALUE_LEN, (void *)&len, sizeof len},
        {CKA_TOKEN, (void *)&yes, 1},
        {CKA_PRIVATE, (void *)&yes, 1},
        {CKA_SENSITIVE, (void *)&yes, 1},
        {CKA_EXTRACTABLE, (void *)&no, 1},
        {CKA_SIGN, (void *)&yes, 1},
        /* A concealment key only ever computes names. */
        {CKA_VERIFY, (void *)(version != 0 ? &yes : &no), 1},
        {CKA_ENCRYPT, (void *)&no, 1},
        {CKA_DECRYPT, (void *)&no, 1},
        {CKA_WRAP, (void *)&no, 1},
        {CKA_UNWRAP, (void *)&no, 1},
        {CKA_DERIVE, (void *)&no, 1},
        {CKA_LABEL, (void *)name, strlen(name)},
        {CKA_ID, id, hmac_key_id(id, name, version)},
        {CKA_ALLOWED_MECHANISMS, (void *)allowed, sizeof allowed},
    };
    const CK_ULONG n = sizeof t / sizeof t[0];
    CK_RV rv = s->tok->mod->C_GenerateKey(s->h, &mech, t, n, h);
    if (rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_VALUE_INVALID ||
        rv == CKR_TEMPLATE_INCONSISTENT)
        rv = s->tok->mod->C_GenerateKey(s->h, &mech, t, n - 1, h);
    return rv;
}

/* Makes the origin key of |name| v|version|, destroying any left over by a
 * run that was cut short between it and the key pair: a version that has a
 * key pair is never given a second origin key (see gen_op). */
CK_RV origin_generate(dcmseal_session_t *s, const char *name, uint32_t version)
{
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_RV rv;
    while ((rv = hmac_key_find(s, name, version, &h)) == CKR_OK && h != CK_INVALID_HANDLE)
        if ((rv = s->tok->mod->C_DestroyObject(s->h, h)) != CKR_OK)
            return rv;
    return rv == CKR_OK ? hmac_generate(s, name, version, &h) : rv;
}

/* The concealment key of |name|, made unless there is one: names stay what
 * they were for as long as the key exists. */
CK_RV conceal_ensure(dcmseal_session_t *s, const char *name, int *made)
{
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_RV rv = hmac_key_find(s, name, 0, &h);
    *made = 0;
    if (rv == CKR_OK && h == CK_INVALID_HANDLE && (rv = hmac_generate(s, name, 0, &h)) == CKR_OK)
        *made = 1;
    return rv;
}

CK_RV origin_set_uses(dcmseal_session_t *s, const char *name, uint32_t version, int destroy,
                      CK_BBOOL enabled)
{
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_ATTRIBUTE t[] = {{CKA_SIGN, &enabled, 1}, {CKA_VERIFY, &enabled, 1}};
    CK_RV rv = hmac_key_find(s, name, version, &h);
    /* A version made before origin keys has none: nothing to change. */
    if (rv != CKR_OK || h == CK_INVALID_HANDLE)
        return rv;
    return destroy ? s->tok->mod->C_DestroyObject(s->h, h)
                   : s->tok->mod->C_SetAttributeValue(s->h, h, t, 2);
}

/* ---- the require-origin policy ------------------------------------------ */

/* Like the minimum decryption version (policy.c), a private CKO_DATA token
 * object of its own, so that the token stays the only source of truth; its
 * value is one byte, 1. Any other value, or several objects, still require
 * origin: a damaged policy refuses rather than allows. */
CK_RV origin_policy_read(dcmseal_session_t *s, const char *name, int *required,
                         CK_OBJECT_HANDLE **hs, size_t *n)
{
    static const CK_OBJECT_CLASS cls = CKO_DATA;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, (void *)&cls, sizeof cls},
        {CKA_APPLICATION, (void *)ORIGIN_POLICY_APP, sizeof ORIGIN_POLICY_APP - 1},
        {CKA_LABEL, (void *)name, strlen(name)},
    };
    CK_OBJECT_HANDLE *found = NULL;
    size_t count = 0;
    CK_RV rv = p11_find_all(s, t, 3, &found, &count);
    *required = rv == CKR_OK && count > 0;
    if (hs != NULL) {
        *hs = found;
        *n = count;
    } else {
        free(found);
    }
    return rv;
}

struct policy_ctx {
    const char *name;
    int required;
    size_t n_versions;
};

static CK_RV policy_set_op(dcmseal_session_t *s, void *arg)
{
    struct policy_ctx *c = arg;
    static const CK_OBJECT_CLASS cls = CKO_DATA;
    static const unsigned char one = 1;
    CK_ATTRIBUTE t[] = {
        {CKA_VALUE, (void *)&one, 1},
        {CKA_CLASS, (void *)&cls, sizeof cls},
        {CKA_TOKEN, (void *)&yes, 1},
        {CKA_PRIVATE, (void *)&yes, 1},
        {CKA_APPLICATION, (void *)ORIGIN_POLICY_APP, sizeof ORIGIN_POLICY_APP - 1},
        {CKA_LABEL, (void *)c->name, strlen(c->name)},
    };
    CK_OBJECT_HANDLE *hs = NULL, h;
    uint32_t *vs = NULL;
    size_t n = 0;
    int now = 0;
    CK_RV rv = kek_name_versions(s, c->name, &vs, &c->n_versions);
    free(vs);
    if (rv != CKR_OK || c->n_versions == 0)
        return rv;
    rv = origin_policy_read(s, c->name, &now, &hs, &n);
    /* Idempotent: one object when required, none when not. */
    if (rv == CKR_OK && c->required && n == 0)
        rv = s->tok->mod->C_CreateObject(s->h, t, sizeof t / sizeof t[0], &h);
    for (size_t i = c->required ? 1 : 0; rv == CKR_OK && i < n; i++)
        rv = s->tok->mod->C_DestroyObject(s->h, hs[i]);
    free(hs);
    return rv;
}

dcmseal_status dcmseal_kek_set_require_origin(dcmseal_session_t *s, const char *name,
                                              int required, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    struct policy_ctx c = {name, required != 0, 0};
    CK_RV rv;
    DCMSEAL_ENSURE(s != NULL && name != NULL, err, DCMSEAL_E_USAGE,
                   "key policy: missing argument");
    DCMSEAL_GUARD(kek_name_known(s, name, err));
    rv = session_run(s, policy_set_op, &c);
    if (rv != CKR_OK) {
        st = p11_fail(err, DCMSEAL_E_TOKEN, s->tok, rv, "setting the origin policy of key '%s'",
                      name);
        goto out;
    }
    DCMSEAL_ENSURE(c.n_versions != 0, err, DCMSEAL_E_KEY, "key '%s' not found on token '%s'",
                   name, s->tok->label);
out:
    return st;
}

struct req_ctx {
    const char *name;
    int required;
};

static CK_RV origin_policy_op(dcmseal_session_t *s, void *arg)
{
    struct req_ctx *c = arg;
    return origin_policy_read(s, c->name, &c->required, NULL, NULL);
}

dcmseal_status dcmseal_kek_get_require_origin(dcmseal_session_t *s, const char *name,
                                              int *required, dcmseal_error *err)
{
    struct req_ctx c = {name, 0};
    CK_RV rv;
    if (s == NULL || name == NULL || required == NULL)
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "key policy: missing argument");
    *required = 0;
    if (!kek_name_ok(name))
        return DCMSEAL_OK; /* no such name, no policy; finding its key fails anyway */
    rv = session_run(s, origin_policy_op, &c);
    if (rv != CKR_OK)
        return p11_fail(err, DCMSEAL_E_TOKEN, s->tok, rv,
                        "reading the origin policy of key '%s'", name);
    *required = c.required;
    return DCMSEAL_OK;
}

/* ---- sign and verify ---------------------------------------------------- */

struct mac_ctx {
    const char *name;
    uint32_t version; /* 0: the concealment key */
    int verify;
    const uint8_t *msg;
    size_t msg_len;
    uint8_t mac[DCMSEAL_HMAC_LEN];
    int absent, disabled, in_final;
    char why[96]; /* the policy violation, if any */
};

static CK_RV mac_op(dcmseal_session_t *s, void *arg)
{
    struct mac_ctx *c = arg;
    CK_FUNCTION_LIST *m = s->tok->mod;
    CK_MECHANISM mech = {CKM_SHA256_HMAC, NULL, 0};
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_RV rv = CKR_OK;
    c->absent = c->disabled = c->in_final = 0;
    c->why[0] = '\0';
    if (!hcache_get(s, c->name, c->version, &h)) {
        if ((rv = hmac_key_find(s, c->name, c->version, &h)) != CKR_OK)
            return rv;
        if (h == CK_INVALID_HANDLE) {
            c->absent = 1;
            return CKR_OK;
        }
        hmac_judge(c->why, sizeof c->why, s, h, c->version != 0, &c->disabled);
        if (c->why[0] != '\0' || c->disabled)
            return CKR_OK;
        hcache_put(s, c->name, c->version, h);
    }
    if (c->verify) {
        if ((rv = m->C_VerifyInit(s->h, &mech, h)) != CKR_OK)
            return rv;
        c->in_final = 1;
        return m->C_Verify(s->h, (CK_BYTE *)c->msg, c->msg_len, c->mac, sizeof c->mac);
    }
    CK_ULONG len = sizeof c->mac;
    if ((rv = m->C_SignInit(s->h, &mech, h)) != CKR_OK)
        return rv;
    c->in_final = 1;
    rv = m->C_Sign(s->h, (CK_BYTE *)c->msg, c->msg_len, c->mac, &len);
    return rv == CKR_OK && len != sizeof c->mac ? CKR_FUNCTION_FAILED : rv;
}

static dcmseal_status mac_run(dcmseal_session_t *s, struct mac_ctx *c, dcmseal_error *err)
{
    const char *what = c->version != 0 ? "origin" : "concealment";
    char ver[16] = "";
    if (c->version != 0)
        snprintf(ver, sizeof ver, " v%u", (unsigned)c->version);
    if (s == NULL || c->name == NULL || (c->msg == NULL && c->msg_len > 0))
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "%s key: missing argument", what);
    dcmseal_status st = kek_name_known(s, c->name, err);
    if (st != DCMSEAL_OK)
        return st;
    CK_RV rv = session_run(s, mac_op, c);
    if (rv == CKR_OK && c->absent)
        return dcmseal_fail(err, DCMSEAL_E_KEY,
                            "key '%s'%s on token '%s' has no %s key (made before dcmseal had "
                            "them: run `dcmseal key upgrade %s`)",
                            c->name, ver, s->tok->label, what, c->name);
    if (rv == CKR_OK && c->why[0] != '\0')
        return dcmseal_fail(err, DCMSEAL_E_KEY, "%s key of '%s'%s on token '%s' refused: %s",
                            what, c->name, ver, s->tok->label, c->why);
    if ((rv == CKR_OK && c->disabled) || rv == CKR_KEY_FUNCTION_NOT_PERMITTED)
        return dcmseal_fail(err, DCMSEAL_E_KEY, "key '%s'%s on token '%s' is disabled (%s key)",
                            c->name, ver, s->tok->label, what);
    /* ckr.c gives each code its meaning: proof bytes that do not verify
     * are bad data; a key that is gone, switched off or of no use for
     * HMAC is the key's problem; the rest is the token's. */
    const p11_class cls = ckr_class(rv);
    if (c->verify && c->in_final && cls == P11_BAD_DATA)
        return dcmseal_fail(err, DCMSEAL_E_AUTH,
                            "not made with this archive's keys: the origin proof does not "
                            "verify under key '%s'%s",
                            c->name, ver);
    if (rv != CKR_OK)
        return p11_fail(err, cls == P11_KEY || cls == P11_REFUSED ? DCMSEAL_E_KEY : DCMSEAL_E_TOKEN,
                        s->tok, rv, "%s with the %s key of '%s'%s",
                        c->verify ? "checking a proof" : "computing a MAC", what, c->name, ver);
    return DCMSEAL_OK;
}

dcmseal_status dcmseal_origin_sign(dcmseal_session_t *s, uint8_t mac[DCMSEAL_HMAC_LEN],
                                   const char *name, uint32_t version, const uint8_t *msg,
                                   size_t msg_len, dcmseal_error *err)
{
    struct mac_ctx c = {.name = name, .version = version, .msg = msg, .msg_len = msg_len};
    dcmseal_status st;
    if (mac == NULL || version == 0)
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "origin key: missing argument");
    if ((st = mac_run(s, &c, err)) == DCMSEAL_OK)
        memcpy(mac, c.mac, sizeof c.mac);
    return st;
}

dcmseal_status dcmseal_origin_verify(dcmseal_session_t *s, const char *name, uint32_t version,
                                     const uint8_t *msg, size_t msg_len,
                                     const uint8_t mac[DCMSEAL_HMAC_LEN], dcmseal_error *err)
{
    struct mac_ctx c = {
        .name = name, .version = version, .verify = 1, .msg = msg, .msg_len = msg_len};
    if (mac == NULL || version == 0)
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "origin key: missing argument");
    memcpy(c.mac, mac, sizeof c.mac);
    return mac_run(s, &c, err);
}

dcmseal_status dcmseal_conceal_sign(dcmseal_session_t *s, uint8_t mac[DCMSEAL_HMAC_LEN],
                                    const char *name, const uint8_t *msg, size_t msg_len,
                                    dcmseal_error *err)
{
    struct mac_ctx c = {.name = name, .msg = msg, .msg_len = msg_len};
    dcmseal_status st;
    if (mac == NULL)
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "concealment key: missing argument");
    if ((st = mac_run(s, &c, err)) == DCMSEAL_OK)
        memcpy(mac, c.mac, sizeof c.mac);
    OPENSSL_cleanse(c.mac, sizeof c.mac);
    return st;
}

/* ---- upgrade ------------------------------------------------------------ */

struct upgrade_ctx {
    const char *name;
    size_t n_versions;
    unsigned added;
};

/* Each version without an origin key gets one, in the KEK's state (a
 * disabled version's origin key is disabled too); the name gets its
 * concealment key. Repeatable: what exists is left alone. */
static CK_RV upgrade_op(dcmseal_session_t *s, void *arg)
{
    struct upgrade_ctx *c = arg;
    uint32_t *vs = NULL;
    struct kek_obj *o = malloc(sizeof *o);
    int made = 0;
    CK_RV rv = o == NULL ? CKR_HOST_MEMORY : kek_name_versions(s, c->name, &vs, &c->n_versions);
    c->added = 0;
    for (size_t i = 0; rv == CKR_OK && i < c->n_versions; i++) {
        CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
        if ((rv = hmac_key_find(s, c->name, vs[i], &h)) != CKR_OK || h != CK_INVALID_HANDLE)
            continue;
        if ((rv = kek_read(s, c->name, vs[i], o)) != CKR_OK ||
            (rv = hmac_generate(s, c->name, vs[i], &h)) != CKR_OK)
            break;
        c->added++;
        if (kek_disabled(o))
            rv = origin_set_uses(s, c->name, vs[i], 0, CK_FALSE);
    }
    if (rv == CKR_OK && c->n_versions > 0 && (rv = conceal_ensure(s, c->name, &made)) == CKR_OK)
        c->added += (unsigned)made;
    free(vs);
    free(o);
    return rv;
}

dcmseal_status dcmseal_kek_upgrade(dcmseal_session_t *s, const char *name, unsigned *added,
                                   dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    struct upgrade_ctx c = {name, 0, 0};
    CK_RV rv;
    DCMSEAL_ENSURE(s != NULL && name != NULL && added != NULL, err, DCMSEAL_E_USAGE,
                   "key upgrade: missing argument");
    *added = 0;
    DCMSEAL_GUARD(kek_name_known(s, name, err));
    rv = session_run(s, upgrade_op, &c);
    cache_clear(s);
    if (rv != CKR_OK) {
        st = p11_fail(err, DCMSEAL_E_TOKEN, s->tok, rv, "adding origin keys to key '%s'", name);
        goto out;
    }
    DCMSEAL_ENSURE(c.n_versions != 0, err, DCMSEAL_E_KEY, "key '%s' not found on token '%s'",
                   name, s->tok->label);
    *added = c.added;
out:
    return st;
}

/* ---- a name's last version goes -------------------------------------------- */

/* Once no version of |name| is left, its concealment key and origin policy
 * speak of nothing: they go too, so that a name made again starts afresh
 * (and scratch keys leave nothing behind). */
CK_RV origin_forget_name(dcmseal_session_t *s, const char *name)
{
    uint32_t *vs = NULL;
    size_t n = 0;
    int required;
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE, *hs = NULL;
    CK_RV rv = kek_name_versions(s, name, &vs, &n);
    free(vs);
    if (rv != CKR_OK || n != 0)
        return rv;
    if ((rv = hmac_key_find(s, name, 0, &h)) == CKR_OK && h != CK_INVALID_HANDLE)
        rv = s->tok->mod->C_DestroyObject(s->h, h);
    if (rv == CKR_OK && (rv = origin_policy_read(s, name, &required, &hs, &n)) == CKR_OK)
        for (size_t i = 0; rv == CKR_OK && i < n; i++)
            rv = s->tok->mod->C_DestroyObject(s->h, hs[i]);
    free(hs);
    return rv;
}
