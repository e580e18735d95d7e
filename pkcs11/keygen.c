/* The life of a KEK version: generated (create, rotate), disabled and enabled
 * again, destroyed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const CK_BBOOL yes = CK_TRUE, no = CK_FALSE;

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

/* Answers that mean "not this template": the token does not know or will
 * not take one of its attributes. */
static int template_refused(CK_RV rv)
{
    return rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_VALUE_INVALID ||
           rv == CKR_ATTRIBUTE_READ_ONLY || rv == CKR_TEMPLATE_INCONSISTENT;
}

CK_RV kek_generate_pair(dcmseal_session_t *s, const char *name, uint32_t version,
                        CK_ULONG bits, CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv)
{
    static const unsigned char e65537[] = {0x01, 0x00, 0x01};
    /* RSA-OAEP only: not raw RSA nor PKCS#1 v1.5, with which the key would
     * sign anything or answer as a padding oracle. */
    static const CK_MECHANISM_TYPE oaep_only[] = {CKM_RSA_PKCS_OAEP};
    CK_MECHANISM mech = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    char id[KEK_ID_MAX];
    CK_ULONG id_len = kek_id(id, name, version);
    /* The hardening attributes come last, newest last, so that each
     * fallback below only shortens the templates. */
    CK_ATTRIBUTE pub_t[] = {
        {CKA_TOKEN, (void *)&yes, 1},
        {CKA_ENCRYPT, (void *)&yes, 1},
        {CKA_WRAP, (void *)&yes, 1},
        {CKA_VERIFY, (void *)&no, 1},
        {CKA_LABEL, (void *)name, strlen(name)},
        {CKA_ID, id, id_len},
        {CKA_MODULUS_BITS, &bits, sizeof bits},
        {CKA_PUBLIC_EXPONENT, (void *)e65537, sizeof e65537},
        /* Without the PIN no one sees it, deletes it, turns CKA_WRAP off or
         * plants another under a future version's ID. */
        {CKA_PRIVATE, (void *)&yes, 1},
        {CKA_MODIFIABLE, (void *)&no, 1},
        {CKA_VERIFY_RECOVER, (void *)&no, 1},
        {CKA_ALLOWED_MECHANISMS, (void *)oaep_only, sizeof oaep_only},
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
        {CKA_SIGN_RECOVER, (void *)&no, 1},
        {CKA_ALLOWED_MECHANISMS, (void *)oaep_only, sizeof oaep_only},
    };
    /* The whole template; without CKA_ALLOWED_MECHANISMS (PKCS#11 2.40);
     * then without every attribute the first dcmseal templates lacked. */
    static const CK_ULONG pub_n[] = {12, 11, 8}, priv_n[] = {11, 10, 9};
    CK_RV rv = CKR_OK;
    for (size_t i = 0; i < sizeof pub_n / sizeof pub_n[0]; i++) {
        rv = s->tok->mod->C_GenerateKeyPair(s->h, &mech, pub_t, pub_n[i], priv_t, priv_n[i], pub,
                                            priv);
        if (!template_refused(rv))
            break;
    }
    return rv;
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
    int made;
    CK_RV rv = p11_find_all(s, any, 1, &hs, &n);
    c->exists = 0;
    c->highest = c->version = 0;
    c->bits = c->want;
    for (size_t i = 0; rv == CKR_OK && i < n; i++) {
        char label[DCMSEAL_KEK_NAME_MAX + 1];
        uint32_t v;
        CK_OBJECT_CLASS cls = CKO_DATA;
        CK_ATTRIBUTE ct[] = {{CKA_CLASS, &cls, sizeof cls}};
        /* Only key pairs make a name taken: the policy objects and the
         * origin and concealment keys share the label, and a run cut short
         * may have left the latter before its key pair. */
        if ((rv = p11_read_attrs(s, hs[i], ct, 1)) == CKR_OK &&
            (cls == CKO_PRIVATE_KEY || cls == CKO_PUBLIC_KEY))
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
        if ((rv = p11_read_attrs(s, top, mod_t, 1)) != CKR_OK)
            goto out;
        c->bits = kek_modulus_bits(modulus, mod_t[0].ulValueLen);
    }
    if (c->bits != 2048 && c->bits != 3072)
        goto out;
    /* The origin key first: every version that has a key pair has one,
     * whatever point a crash stops this at. A new name also gets its
     * concealment key. */
    if (!c->rotate && (rv = conceal_ensure(s, c->name, &made)) != CKR_OK)
        goto out;
    if ((rv = origin_generate(s, c->name, c->highest + 1)) != CKR_OK)
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
    DCMSEAL_ENSURE(kek_name_ok(name), err, DCMSEAL_E_USAGE,
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
    /* A new name has only objects with origin proofs: objects without one
     * (format v1) can only be forgeries, so it refuses them from the start
     * (docs/KEYS.md "Origin keys"). */
    if (!rotate)
        DCMSEAL_GUARD(dcmseal_kek_set_require_origin(s, name, 1, err));
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
    CK_BBOOL modifiable = CK_TRUE;
    CK_ATTRIBUTE priv_t[] = {{CKA_DECRYPT, &enabled, 1}, {CKA_UNWRAP, &enabled, 1}};
    CK_ATTRIBUTE pub_t[] = {{CKA_ENCRYPT, &enabled, 1}, {CKA_WRAP, &enabled, 1}};
    CK_ATTRIBUTE mod_t[] = {{CKA_MODIFIABLE, &modifiable, 1}};
    CK_RV rv = s->tok->mod->C_SetAttributeValue(s->h, priv, priv_t, 2);
    if (rv != CKR_OK || pub == CK_INVALID_HANDLE ||
        (rv = p11_read_attrs(s, pub, mod_t, 1)) != CKR_OK || modifiable == CK_FALSE)
        return rv;
    return s->tok->mod->C_SetAttributeValue(s->h, pub, pub_t, 2);
}

/* The public half goes first, so that a destroy cut short leaves the
 * private half, which a retry finds (a public half alone has no modulus to
 * be matched by). A version without a public half can be disabled: it
 * still decrypts. When the version was disabled is recorded in the token
 * (policy.c), after the change: a record must never claim a version
 * disabled that was not. */
static CK_RV state_op(dcmseal_session_t *s, void *arg)
{
    struct state_ctx *c = arg;
    CK_FUNCTION_LIST *m = s->tok->mod;
    struct kek_obj *o = malloc(sizeof *o);
    CK_OBJECT_HANDLE h[2];
    CK_BBOOL decrypt = BOOL_UNSET;
    CK_ATTRIBUTE was[] = {{CKA_DECRYPT, &decrypt, 1}};
    CK_RV rv = o == NULL ? CKR_HOST_MEMORY : kek_read(s, c->name, c->version, o);
    if (rv != CKR_OK)
        goto out;
    h[0] = o->priv;
    h[1] = o->pub;
    c->gone = c->destroy ? h[0] == CK_INVALID_HANDLE && h[1] == CK_INVALID_HANDLE
                         : h[0] == CK_INVALID_HANDLE;
    if (c->gone)
        goto out;
    if (!c->destroy) {
        if ((rv = p11_read_attrs(s, h[0], was, 1)) == CKR_OK &&
            (rv = kek_set_uses(s, h[0], h[1], c->enabled)) == CKR_OK &&
            (rv = origin_set_uses(s, c->name, c->version, 0, c->enabled)) == CKR_OK)
            rv = c->enabled ? kek_disabled_forget(s, c->name, c->version)
                            : kek_disabled_note(s, c->name, c->version, decrypt != CK_FALSE);
        goto out;
    }
    /* The origin key first: a crash then leaves a version without one,
     * which a re-run destroys, never an origin key without its version. */
    rv = origin_set_uses(s, c->name, c->version, 1, CK_FALSE);
    for (int i = 1; i >= 0 && rv == CKR_OK; i--)
        rv = h[i] == CK_INVALID_HANDLE ? CKR_OK : m->C_DestroyObject(s->h, h[i]);
    if (rv == CKR_OK)
        rv = kek_disabled_forget(s, c->name, c->version);
    if (rv == CKR_OK)
        rv = origin_forget_name(s, c->name);
out:
    free(o);
    return rv;
}

static dcmseal_status kek_state(dcmseal_session_t *s, struct state_ctx *c, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    const char *what = c->destroy ? "destroying" : c->enabled ? "enabling" : "disabling";
    CK_RV rv;
    DCMSEAL_ENSURE(s != NULL && c->name != NULL && c->version != 0, err, DCMSEAL_E_USAGE,
                   "key: missing argument");
    DCMSEAL_GUARD(kek_name_known(s, c->name, err));
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
    dcmseal_status st = dcmseal_kek_destroy_check(s, name, version, err);
    return st == DCMSEAL_OK ? kek_state(s, &c, err) : st;
}
