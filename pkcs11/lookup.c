/* Finding a KEK version (or a name's primary) and listing them all. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "internal.h"

/* Reads the versions from the highest down to the one asked for, so that
 * it learns on the way whether that one is the primary. */
CK_RV kek_find_op(dcmseal_session_t *s, void *arg)
{
    struct find_ctx *c = arg;
    uint32_t *vs = NULL;
    CK_RV rv = kek_name_versions(s, c->name, &vs, &c->n_versions);
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
        rv = kek_min_read(s, c->name, &c->min, NULL, NULL);
    c->has_origin = 0;
    if (rv == CKR_OK && c->found != 0) {
        CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
        rv = hmac_key_find(s, c->name, c->found, &h);
        c->has_origin = h != CK_INVALID_HANDLE;
        c->origin_weak = rv == CKR_OK ? origin_weak(s, h) : 0;
    }
    if (rv == CKR_OK)
        rv = origin_policy_read(s, c->name, &c->require_origin, NULL, NULL);
    free(vs);
    return rv;
}

dcmseal_status kek_find(dcmseal_session_t *s, dcmseal_kek_info *out, const char *name,
                        uint32_t version, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    struct find_ctx *c = NULL;
    CK_RV rv;
    DCMSEAL_GUARD(kek_name_known(s, name, err));
    c = OPENSSL_zalloc(sizeof *c);
    DCMSEAL_ENSURE(c != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    c->name = name;
    c->version = version;
    rv = session_run(s, kek_find_op, c);
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
    out->has_origin = c->has_origin;
    out->weak |= c->origin_weak;
    out->require_origin = c->require_origin;
    kek_cache_put(s, name, c->found, &c->obj);
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
        CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
        dcmseal_kek_info *k = &c->keys[c->n++];
        kek_describe(k, o, label, v);
        if ((rv = kek_min_read(s, label, &k->min_version, NULL, NULL)) == CKR_OK &&
            (rv = kek_retention_read(s, label, &k->retention_days, &k->purge_protection,
                                     &k->purge_locked)) == CKR_OK &&
            !k->enabled)
            rv = kek_disabled_read(s, label, v, &k->disabled_at);
        if (rv == CKR_OK && (rv = hmac_key_find(s, label, v, &h)) == CKR_OK)
            rv = origin_policy_read(s, label, &k->require_origin, NULL, NULL);
        k->has_origin = h != CK_INVALID_HANDLE;
        k->weak |= rv == CKR_OK ? origin_weak(s, h) : 0;
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
