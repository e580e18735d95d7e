/* The slots and tokens a module offers: for finding the URI of a token. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/uri.h>

#include "internal.h"

struct dcmseal_slot_list {
    dcmseal_slot_info *slots;
    size_t n, cap;
};

/* Appends |v| to |out| (at |*len|), percent-encoding every byte but RFC
 * 3986's unreserved ones and those in |keep|. */
static void encode(char *out, size_t cap, size_t *len, const char *v, const char *keep)
{
    for (; *v != '\0' && *len + 4 < cap; v++) {
        unsigned char c = (unsigned char)*v;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            strchr("-._~", c) != NULL || strchr(keep, c) != NULL)
            out[(*len)++] = (char)c;
        else
            *len += (size_t)snprintf(out + *len, cap - *len, "%%%02X", c);
    }
    out[*len] = '\0';
}

/* "pkcs11:token=LABEL?module-path=FILE" (a registered module whose file is
 * not an absolute path: "?module-name=NAME"), written as RFC 7512 wants it
 * but with the slashes of the path left readable; "" when neither names the
 * module, or when it does not fit. */
static void token_uri(char *out, size_t cap, const char *label, const char *file,
                      const char *name)
{
    size_t len = 0;
    out[0] = '\0';
    if ((file == NULL || file[0] != '/') && name == NULL)
        return;
    encode(out, cap, &len, "pkcs11:token=", ":=");
    encode(out, cap, &len, label, "");
    encode(out, cap, &len, file && file[0] == '/' ? "?module-path=" : "?module-name=", "?=");
    encode(out, cap, &len, file && file[0] == '/' ? file : name, "/");
    if (len + 4 >= cap)
        out[0] = '\0';
}

/* The module's slots, with or without a token, each as a new entry. */
static dcmseal_status add_module(dcmseal_slot_list_t *l, CK_FUNCTION_LIST *mod,
                                 const char *path, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    CK_SLOT_ID *ids = NULL;
    CK_ULONG n = 0;
    CK_INFO info;
    /* The module's file: the path it was loaded from, or where p11-kit's
     * configuration says it is. */
    char *file = path ? NULL : p11_kit_config_option(mod, "module"), library[33] = "";
    char *name = path ? NULL : p11_kit_module_get_name(mod);
    CK_RV rv = mod->C_GetInfo(&info);
    if (rv == CKR_OK)
        p11_copy_padded(library, info.libraryDescription, sizeof info.libraryDescription);
    if (rv == CKR_OK && (rv = mod->C_GetSlotList(CK_FALSE, NULL, &n)) == CKR_OK && n > 0) {
        ids = calloc(n, sizeof *ids);
        DCMSEAL_ENSURE(ids != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
        rv = mod->C_GetSlotList(CK_FALSE, ids, &n);
    }
    DCMSEAL_ENSURE(rv == CKR_OK, err, DCMSEAL_E_TOKEN, "PKCS#11 module '%s': listing its slots "
                   "failed: %s", path ? path : name ? name : library, ckr_name(rv));
    for (CK_ULONG i = 0; i < n; i++) {
        CK_SLOT_INFO si;
        CK_TOKEN_INFO ti;
        if (l->n == l->cap) {
            size_t cap = l->cap ? 2 * l->cap : 8;
            dcmseal_slot_info *more = realloc(l->slots, cap * sizeof *more);
            DCMSEAL_ENSURE(more != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
            l->slots = more;
            l->cap = cap;
        }
        dcmseal_slot_info *s = memset(&l->slots[l->n], 0, sizeof *s);
        snprintf(s->module, sizeof s->module, "%s",
                 path ? path : file ? file : name ? name : "");
        memcpy(s->library, library, sizeof library);
        s->slot_id = (unsigned long)ids[i];
        /* A slot that will not describe itself is still a slot. */
        if (mod->C_GetSlotInfo(ids[i], &si) == CKR_OK) {
            p11_copy_padded(s->slot_description, si.slotDescription,
                            sizeof si.slotDescription);
            s->token_present = (si.flags & CKF_TOKEN_PRESENT) != 0;
        }
        if (s->token_present && mod->C_GetTokenInfo(ids[i], &ti) == CKR_OK) {
            p11_copy_padded(s->label, ti.label, sizeof ti.label);
            p11_copy_padded(s->manufacturer, ti.manufacturerID, sizeof ti.manufacturerID);
            p11_copy_padded(s->model, ti.model, sizeof ti.model);
            p11_copy_padded(s->serial, ti.serialNumber, sizeof ti.serialNumber);
            s->flags = (unsigned long)ti.flags;
            s->initialized = (ti.flags & CKF_TOKEN_INITIALIZED) != 0;
            s->user_pin_initialized = (ti.flags & CKF_USER_PIN_INITIALIZED) != 0;
            s->login_required = (ti.flags & CKF_LOGIN_REQUIRED) != 0;
            s->write_protected = (ti.flags & CKF_WRITE_PROTECTED) != 0;
            if (s->initialized)
                token_uri(s->uri, sizeof s->uri, s->label, path ? path : file, name);
        }
        l->n++;
    }
out:
    free(ids);
    free(name);
    free(file);
    return st;
}

dcmseal_status dcmseal_slot_list_new(dcmseal_slot_list_t **out, const char *where,
                                     dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    dcmseal_slot_list_t *l = NULL;
    CK_FUNCTION_LIST **mods = NULL;
    P11KitUri *uri = NULL;
    const char *path = where, *want_name = NULL;
    DCMSEAL_ENSURE(out != NULL, err, DCMSEAL_E_USAGE, "slot list: missing argument");
    *out = NULL;
    if (where != NULL && strncmp(where, "pkcs11:", 7) == 0) {
        uri = p11_kit_uri_new();
        DCMSEAL_ENSURE(uri != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
        int r = p11_kit_uri_parse(where, P11_KIT_URI_FOR_ANY, uri);
        DCMSEAL_ENSURE(r == P11_KIT_URI_OK, err, DCMSEAL_E_USAGE, "bad token URI: %s",
                       p11_kit_uri_message(r));
        path = p11_kit_uri_get_module_path(uri);
        want_name = p11_kit_uri_get_module_name(uri);
    }
    l = calloc(1, sizeof *l);
    DCMSEAL_ENSURE(l != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    DCMSEAL_GUARD(p11_modules_load(&mods, path, err));
    for (size_t i = 0; mods[i] != NULL && st == DCMSEAL_OK; i++) {
        char *name = p11_kit_module_get_name(mods[i]);
        int skip = want_name != NULL && (name == NULL || strcmp(name, want_name) != 0);
        free(name);
        if (!skip)
            st = add_module(l, mods[i], path, err);
    }
    DCMSEAL_GUARD(st);
    *out = l;
    l = NULL;
out:
    p11_modules_release(mods, NULL);
    p11_kit_uri_free(uri);
    dcmseal_slot_list_free(l);
    return st;
}

size_t dcmseal_slot_list_count(const dcmseal_slot_list_t *l)
{
    return l->n;
}

const dcmseal_slot_info *dcmseal_slot_list_get0(const dcmseal_slot_list_t *l, size_t i)
{
    return i < l->n ? &l->slots[i] : NULL;
}

void dcmseal_slot_list_free(dcmseal_slot_list_t *l)
{
    if (l == NULL)
        return;
    free(l->slots);
    free(l);
}

void p11_token_labels(CK_FUNCTION_LIST *mod, char *buf, size_t cap, size_t *len)
{
    CK_SLOT_ID *ids = NULL;
    CK_ULONG n = 0;
    if (mod->C_GetSlotList(CK_TRUE, NULL, &n) != CKR_OK || n == 0 ||
        (ids = calloc(n, sizeof *ids)) == NULL || mod->C_GetSlotList(CK_TRUE, ids, &n) != CKR_OK)
        n = 0;
    for (CK_ULONG i = 0; i < n && *len < cap; i++) {
        CK_TOKEN_INFO ti;
        char label[33];
        if (mod->C_GetTokenInfo(ids[i], &ti) != CKR_OK || !(ti.flags & CKF_TOKEN_INITIALIZED))
            continue;
        p11_copy_padded(label, ti.label, sizeof ti.label);
        int w = snprintf(buf + *len, cap - *len, "%s'%s'", *len ? ", " : "", label);
        *len = w < 0 || (size_t)w >= cap - *len ? cap : *len + (size_t)w;
    }
    free(ids);
}
