/* Origin and concealment keys (pkcs11/origin.c) against a throwaway SoftHSM
 * token: their template, proofs made and checked in the token, their life
 * with the KEK version, the upgrade of KEKs made before them, and the
 * require-origin policy. The module is also driven directly, behind
 * dcmseal's back, to see what is really in the token. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <dcmseal/pkcs11.h>
#include <openssl/hmac.h>
#include <p11-kit/pkcs11.h>

#include "../support/check.h"
#include "../support/softhsm.h"

#define MODULE SOFTHSM_MODULE
#define LABEL "dcmseal-origin"
#define PIN "2468"

static char dir[64];
static CK_FUNCTION_LIST *raw;
static CK_SESSION_HANDLE raw_h;

#define EXPECT(st, want, err, what)                                                      \
    do {                                                                                 \
        dcmseal_status st_ = (st);                                                       \
        CHECK(st_ == (want), "%s: got %s (%s), want %s", what, dcmseal_status_name(st_), \
              st_ == DCMSEAL_OK ? "" : (err).message, dcmseal_status_name(want));        \
    } while (0)

static int raw_open(void)
{
    CK_SLOT_ID slot;
    return softhsm_raw_open(LABEL, PIN, &raw, &slot, &raw_h) == 0;
}

/* The objects that match |t| (|n| attributes), the first in |*first|. */
static CK_ULONG raw_find(CK_ATTRIBUTE *t, CK_ULONG n_attrs, CK_OBJECT_HANDLE *first)
{
    CK_OBJECT_HANDLE hs[16];
    CK_ULONG n = 0;
    if (raw->C_FindObjectsInit(raw_h, t, n_attrs) == CKR_OK) {
        raw->C_FindObjects(raw_h, hs, 16, &n);
        raw->C_FindObjectsFinal(raw_h);
    }
    if (first != NULL)
        *first = n > 0 ? hs[0] : CK_INVALID_HANDLE;
    return n;
}

/* Every object of |cls| labelled |label| with CKA_ID |id| (NULL: any). */
static CK_ULONG raw_count(CK_OBJECT_CLASS cls, const char *label, const char *id,
                          CK_OBJECT_HANDLE *first)
{
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_ID, (void *)id, id ? strlen(id) : 0},
    };
    return raw_find(t, id ? 3 : 2, first);
}

/* The require-origin policy objects of |label| (other CKO_DATA objects,
 * such as the record of when a version was disabled, share the label). */
static CK_ULONG raw_policies(const char *label)
{
    static const char app[] = "dcmseal-origin-policy";
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_APPLICATION, (void *)app, sizeof app - 1},
    };
    return raw_find(t, 3, NULL);
}

static CK_OBJECT_HANDLE raw_secret(const char *label, const char *id)
{
    CK_OBJECT_HANDLE h;
    return raw_count(CKO_SECRET_KEY, label, id, &h) == 1 ? h : CK_INVALID_HANDLE;
}

static CK_BBOOL raw_bool(CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE a)
{
    CK_BBOOL v = 0xff;
    CK_ATTRIBUTE t = {a, &v, 1};
    return raw->C_GetAttributeValue(raw_h, h, &t, 1) == CKR_OK ? v : 0xff;
}

/* An RSA key pair under dcmseal's label and ID, as dcmseal made KEKs before
 * it had origin keys. */
static int raw_legacy_kek(const char *label, uint32_t version)
{
    CK_BBOOL t = CK_TRUE, f = CK_FALSE;
    CK_BYTE e[] = {1, 0, 1};
    CK_ULONG bits = 2048;
    char id[32];
    snprintf(id, sizeof id, "dcmseal-kek-v%u", (unsigned)version);
    CK_MECHANISM mech = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    CK_ATTRIBUTE pub[] = {
        {CKA_TOKEN, &t, 1}, {CKA_ENCRYPT, &t, 1}, {CKA_WRAP, &t, 1},
        {CKA_LABEL, (void *)label, strlen(label)}, {CKA_ID, id, strlen(id)},
        {CKA_MODULUS_BITS, &bits, sizeof bits}, {CKA_PUBLIC_EXPONENT, e, sizeof e},
    };
    CK_ATTRIBUTE priv[] = {
        {CKA_TOKEN, &t, 1}, {CKA_PRIVATE, &t, 1}, {CKA_SENSITIVE, &t, 1},
        {CKA_EXTRACTABLE, &f, 1}, {CKA_DECRYPT, &t, 1}, {CKA_UNWRAP, &t, 1},
        {CKA_LABEL, (void *)label, strlen(label)}, {CKA_ID, id, strlen(id)},
    };
    CK_OBJECT_HANDLE hpub, hpriv;
    return raw->C_GenerateKeyPair(raw_h, &mech, pub, 7, priv, 8, &hpub, &hpriv) == CKR_OK;
}

/* A generic secret under an origin key's label and ID, with attributes of
 * the test's choosing. */
static CK_OBJECT_HANDLE raw_hmac_key(const char *label, const char *id, CK_BBOOL extractable)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_GENERIC_SECRET;
    CK_ULONG len = 32;
    CK_BBOOL t = CK_TRUE;
    CK_MECHANISM mech = {CKM_GENERIC_SECRET_KEY_GEN, NULL, 0};
    CK_ATTRIBUTE a[] = {
        {CKA_CLASS, &cls, sizeof cls}, {CKA_KEY_TYPE, &type, sizeof type},
        {CKA_VALUE_LEN, &len, sizeof len}, {CKA_TOKEN, &t, 1}, {CKA_PRIVATE, &t, 1},
        {CKA_SENSITIVE, &t, 1}, {CKA_EXTRACTABLE, &extractable, 1}, {CKA_SIGN, &t, 1},
        {CKA_VERIFY, &t, 1}, {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_ID, (void *)id, strlen(id)},
    };
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    return raw->C_GenerateKey(raw_h, &mech, a, 11, &h) == CKR_OK ? h : CK_INVALID_HANDLE;
}

static const uint8_t MSG[] = "an immutable header and a key slot";

static void test_template(dcmseal_session_t *s)
{
    dcmseal_error err;
    dcmseal_kek_info k;
    EXPECT(dcmseal_kek_create(s, &k, "alpha", 2048, &err), DCMSEAL_OK, err, "create alpha");
    CHECK(k.has_origin && k.require_origin, "create: origin %d, policy %d", k.has_origin,
          k.require_origin);
    CK_OBJECT_HANDLE h = raw_secret("alpha", "dcmseal-origin:alpha:v1");
    CHECK(h != CK_INVALID_HANDLE, "origin key v1 in the token under its own CKA_ID");
    CK_KEY_TYPE type = 0;
    CK_ULONG len = 0;
    CK_ATTRIBUTE t[] = {{CKA_KEY_TYPE, &type, sizeof type}, {CKA_VALUE_LEN, &len, sizeof len}};
    CHECK(raw->C_GetAttributeValue(raw_h, h, t, 2) == CKR_OK && type == CKK_GENERIC_SECRET &&
              len == 32, "generic secret, 32 bytes");
    static const struct {
        CK_ATTRIBUTE_TYPE a;
        CK_BBOOL want;
        const char *name;
    } want[] = {
        {CKA_TOKEN, CK_TRUE, "CKA_TOKEN"},       {CKA_PRIVATE, CK_TRUE, "CKA_PRIVATE"},
        {CKA_SENSITIVE, CK_TRUE, "CKA_SENSITIVE"}, {CKA_EXTRACTABLE, CK_FALSE, "CKA_EXTRACTABLE"},
        {CKA_SIGN, CK_TRUE, "CKA_SIGN"},         {CKA_VERIFY, CK_TRUE, "CKA_VERIFY"},
        {CKA_ENCRYPT, CK_FALSE, "CKA_ENCRYPT"},   {CKA_DECRYPT, CK_FALSE, "CKA_DECRYPT"},
        {CKA_WRAP, CK_FALSE, "CKA_WRAP"},         {CKA_UNWRAP, CK_FALSE, "CKA_UNWRAP"},
        {CKA_DERIVE, CK_FALSE, "CKA_DERIVE"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CHECK(raw_bool(h, want[i].a) == want[i].want, "origin key %s", want[i].name);
    uint8_t value[64];
    CK_ATTRIBUTE v = {CKA_VALUE, value, sizeof value};
    CHECK(raw->C_GetAttributeValue(raw_h, h, &v, 1) == CKR_ATTRIBUTE_SENSITIVE,
          "the origin key's value cannot be read");
    CK_MECHANISM_TYPE allowed[8];
    CK_ATTRIBUTE am = {CKA_ALLOWED_MECHANISMS, allowed, sizeof allowed};
    CHECK(raw->C_GetAttributeValue(raw_h, h, &am, 1) == CKR_OK &&
              am.ulValueLen == sizeof(CK_MECHANISM_TYPE) && allowed[0] == CKM_SHA256_HMAC,
          "CKA_ALLOWED_MECHANISMS is {CKM_SHA256_HMAC}");
    /* The token enforces it: no other MAC, no other use. */
    CK_MECHANISM sha1 = {CKM_SHA_1_HMAC, NULL, 0};
    CK_RV rv = raw->C_SignInit(raw_h, &sha1, h);
    CHECK(rv != CKR_OK, "the origin key made an HMAC-SHA1");
    if (rv == CKR_OK) {
        uint8_t out[20];
        CK_ULONG n = sizeof out;
        raw->C_Sign(raw_h, (CK_BYTE *)MSG, sizeof MSG, out, &n);
    }

    CK_OBJECT_HANDLE c = raw_secret("alpha", "dcmseal-names:alpha");
    CHECK(c != CK_INVALID_HANDLE, "concealment key made with the name");
    CHECK(raw_bool(c, CKA_SIGN) == CK_TRUE && raw_bool(c, CKA_VERIFY) == CK_FALSE &&
              raw_bool(c, CKA_SENSITIVE) == CK_TRUE && raw_bool(c, CKA_EXTRACTABLE) == CK_FALSE,
          "concealment key: sign only, sensitive, not extractable");
    int req = 0;
    EXPECT(dcmseal_kek_get_require_origin(s, "alpha", &req, &err), DCMSEAL_OK, err, "policy");
    CHECK(req == 1, "a new name requires origin");
    CHECK(raw_policies("alpha") == 1, "one policy object");
}

static void test_proofs(dcmseal_session_t *s)
{
    dcmseal_error err;
    dcmseal_kek_info k;
    uint8_t m1[DCMSEAL_HMAC_LEN], again[DCMSEAL_HMAC_LEN], m2[DCMSEAL_HMAC_LEN];
    EXPECT(dcmseal_origin_sign(s, m1, "alpha", 1, MSG, sizeof MSG, &err), DCMSEAL_OK, err,
           "sign v1");
    EXPECT(dcmseal_origin_sign(s, again, "alpha", 1, MSG, sizeof MSG, &err), DCMSEAL_OK, err,
           "sign v1 again");
    CHECK(memcmp(m1, again, sizeof m1) == 0, "a proof is a function of key and message");
    EXPECT(dcmseal_origin_verify(s, "alpha", 1, MSG, sizeof MSG, m1, &err), DCMSEAL_OK, err,
           "verify v1");
    m1[7] ^= 0x40;
    EXPECT(dcmseal_origin_verify(s, "alpha", 1, MSG, sizeof MSG, m1, &err), DCMSEAL_E_AUTH, err,
           "a changed proof");
    CHECK(strstr(err.message, "not made with this archive's keys") != NULL, "message: %s",
          err.message);
    m1[7] ^= 0x40;
    EXPECT(dcmseal_origin_verify(s, "alpha", 1, MSG, sizeof MSG - 1, m1, &err), DCMSEAL_E_AUTH,
           err, "another message");

    EXPECT(dcmseal_kek_rotate(s, &k, "alpha", 0, &err), DCMSEAL_OK, err, "rotate");
    CHECK(k.version == 2 && k.has_origin, "v2 has an origin key");
    EXPECT(dcmseal_origin_sign(s, m2, "alpha", 2, MSG, sizeof MSG, &err), DCMSEAL_OK, err,
           "sign v2");
    CHECK(memcmp(m1, m2, sizeof m1) != 0, "each version has its own origin key");
    EXPECT(dcmseal_origin_verify(s, "alpha", 2, MSG, sizeof MSG, m1, &err), DCMSEAL_E_AUTH, err,
           "a v1 proof does not pass under v2");
    EXPECT(dcmseal_origin_sign(s, m2, "alpha", 3, MSG, sizeof MSG, &err), DCMSEAL_E_KEY, err,
           "sign under a version that does not exist");

    uint8_t n1[DCMSEAL_HMAC_LEN], n2[DCMSEAL_HMAC_LEN];
    EXPECT(dcmseal_conceal_sign(s, n1, "alpha", MSG, sizeof MSG, &err), DCMSEAL_OK, err,
           "conceal");
    CHECK(memcmp(n1, m1, sizeof n1) != 0 && memcmp(n1, m2, sizeof n1) != 0,
          "the concealment key is none of the origin keys");
    EXPECT(dcmseal_conceal_sign(s, n2, "alpha", MSG, sizeof MSG, &err), DCMSEAL_OK, err,
           "conceal again");
    CHECK(memcmp(n1, n2, sizeof n1) == 0, "names do not change with rotation or time");
    /* Through the module as it stands: the token's own HMAC is what it is. */
    CK_OBJECT_HANDLE h = raw_secret("alpha", "dcmseal-names:alpha");
    CK_MECHANISM mech = {CKM_SHA256_HMAC, NULL, 0};
    uint8_t r[32];
    CK_ULONG rn = sizeof r;
    CHECK(raw->C_SignInit(raw_h, &mech, h) == CKR_OK &&
              raw->C_Sign(raw_h, (CK_BYTE *)MSG, sizeof MSG, r, &rn) == CKR_OK && rn == 32 &&
              memcmp(r, n1, 32) == 0, "dcmseal_conceal_sign is the token's HMAC-SHA256");
}

static void test_lifecycle(dcmseal_session_t *s)
{
    dcmseal_error err;
    uint8_t m[DCMSEAL_HMAC_LEN];
    EXPECT(dcmseal_kek_set_enabled(s, "alpha", 1, 0, &err), DCMSEAL_OK, err, "disable v1");
    CK_OBJECT_HANDLE h = raw_secret("alpha", "dcmseal-origin:alpha:v1");
    CHECK(raw_bool(h, CKA_SIGN) == CK_FALSE && raw_bool(h, CKA_VERIFY) == CK_FALSE,
          "disabling the version disables its origin key in the token");
    EXPECT(dcmseal_origin_sign(s, m, "alpha", 1, MSG, sizeof MSG, &err), DCMSEAL_E_KEY, err,
           "sign under a disabled version");
    CHECK(strstr(err.message, "disabled") != NULL, "message: %s", err.message);
    EXPECT(dcmseal_kek_set_enabled(s, "alpha", 1, 1, &err), DCMSEAL_OK, err, "enable v1");
    EXPECT(dcmseal_origin_sign(s, m, "alpha", 1, MSG, sizeof MSG, &err), DCMSEAL_OK, err,
           "sign after enable");
    EXPECT(dcmseal_kek_set_enabled(s, "alpha", 1, 0, &err), DCMSEAL_OK, err, "disable again");
    EXPECT(dcmseal_kek_destroy(s, "alpha", 1, &err), DCMSEAL_OK, err, "destroy v1");
    CHECK(raw_secret("alpha", "dcmseal-origin:alpha:v1") == CK_INVALID_HANDLE,
          "the origin key goes with its version");
    CHECK(raw_secret("alpha", "dcmseal-names:alpha") != CK_INVALID_HANDLE &&
              raw_policies("alpha") == 1,
          "the name's keys stay while a version is left");
    EXPECT(dcmseal_kek_destroy(s, "alpha", 2, &err), DCMSEAL_OK, err, "destroy v2");
    CHECK(raw_count(CKO_SECRET_KEY, "alpha", NULL, NULL) == 0 &&
              raw_count(CKO_DATA, "alpha", NULL, NULL) == 0,
          "nothing of the name is left once its last version is destroyed");
    dcmseal_kek_info k;
    EXPECT(dcmseal_kek_create(s, &k, "alpha", 2048, &err), DCMSEAL_OK, err, "create again");
    CHECK(k.version == 1 && k.has_origin && k.require_origin, "a fresh start");

    /* A run cut short before the key pair leaves an origin key behind: it
     * neither makes the name taken nor survives as the next version's. */
    CHECK(raw_hmac_key("alpha", "dcmseal-origin:alpha:v2", CK_TRUE) != CK_INVALID_HANDLE,
          "plant a stray origin key");
    CHECK(raw_hmac_key("gamma", "dcmseal-origin:gamma:v1", CK_TRUE) != CK_INVALID_HANDLE,
          "plant a stray origin key for a new name");
    EXPECT(dcmseal_kek_rotate(s, &k, "alpha", 0, &err), DCMSEAL_OK, err, "rotate over a stray");
    h = raw_secret("alpha", "dcmseal-origin:alpha:v2");
    CHECK(h != CK_INVALID_HANDLE && raw_bool(h, CKA_EXTRACTABLE) == CK_FALSE,
          "the stray was replaced by a key of dcmseal's template");
    EXPECT(dcmseal_kek_create(s, &k, "gamma", 2048, &err), DCMSEAL_OK, err,
           "create over a stray");
    h = raw_secret("gamma", "dcmseal-origin:gamma:v1");
    CHECK(h != CK_INVALID_HANDLE && raw_bool(h, CKA_EXTRACTABLE) == CK_FALSE, "replaced too");

    /* An origin key that breaks the policy is refused by name. */
    CK_OBJECT_HANDLE bad = raw_secret("gamma", "dcmseal-origin:gamma:v1");
    CHECK(raw->C_DestroyObject(raw_h, bad) == CKR_OK, "remove gamma's origin key");
    CHECK(raw_hmac_key("gamma", "dcmseal-origin:gamma:v1", CK_TRUE) != CK_INVALID_HANDLE,
          "an extractable one in its place");
    EXPECT(dcmseal_origin_sign(s, m, "gamma", 1, MSG, sizeof MSG, &err), DCMSEAL_E_KEY, err,
           "an extractable origin key");
    CHECK(strstr(err.message, "CKA_EXTRACTABLE") != NULL, "message: %s", err.message);
}

static void test_upgrade(dcmseal_session_t *s)
{
    dcmseal_error err;
    dcmseal_kek_info k;
    uint8_t m[DCMSEAL_HMAC_LEN];
    unsigned added = 99;
    CHECK(raw_legacy_kek("legacy", 1) && raw_legacy_kek("legacy", 2), "legacy KEK v1, v2");
    EXPECT(dcmseal_kek_set_enabled(s, "legacy", 1, 0, &err), DCMSEAL_OK, err,
           "disable legacy v1 (it has no origin key yet)");
    EXPECT(dcmseal_kek_find(s, &k, "legacy", 0, &err), DCMSEAL_OK, err, "find legacy");
    CHECK(k.version == 2 && !k.has_origin && !k.require_origin, "no origin key, no policy");
    EXPECT(dcmseal_origin_sign(s, m, "legacy", 2, MSG, sizeof MSG, &err), DCMSEAL_E_KEY, err,
           "sign without an origin key");
    CHECK(strstr(err.message, "dcmseal key upgrade legacy") != NULL, "message: %s", err.message);
    EXPECT(dcmseal_kek_upgrade(s, "legacy", &added, &err), DCMSEAL_OK, err, "upgrade");
    CHECK(added == 3, "two origin keys and a concealment key, got %u", added);
    CK_OBJECT_HANDLE h1 = raw_secret("legacy", "dcmseal-origin:legacy:v1");
    CHECK(h1 != CK_INVALID_HANDLE && raw_bool(h1, CKA_SIGN) == CK_FALSE,
          "a disabled version gets a disabled origin key");
    EXPECT(dcmseal_kek_upgrade(s, "legacy", &added, &err), DCMSEAL_OK, err, "upgrade again");
    CHECK(added == 0, "idempotent, got %u", added);
    EXPECT(dcmseal_kek_find(s, &k, "legacy", 0, &err), DCMSEAL_OK, err, "find after upgrade");
    CHECK(k.has_origin && !k.require_origin, "upgrade leaves the policy alone");
    EXPECT(dcmseal_origin_sign(s, m, "legacy", 2, MSG, sizeof MSG, &err), DCMSEAL_OK, err,
           "sign after upgrade");
    EXPECT(dcmseal_kek_upgrade(s, "nosuch", &added, &err), DCMSEAL_E_KEY, err,
           "upgrade of no key");

    int req = -1;
    EXPECT(dcmseal_kek_set_require_origin(s, "legacy", 1, &err), DCMSEAL_OK, err, "require");
    EXPECT(dcmseal_kek_set_require_origin(s, "legacy", 1, &err), DCMSEAL_OK, err, "again");
    CHECK(raw_policies("legacy") == 1, "idempotent: one object");
    EXPECT(dcmseal_kek_get_require_origin(s, "legacy", &req, &err), DCMSEAL_OK, err, "get");
    CHECK(req == 1, "required");
    EXPECT(dcmseal_kek_set_require_origin(s, "legacy", 0, &err), DCMSEAL_OK, err, "clear");
    EXPECT(dcmseal_kek_get_require_origin(s, "legacy", &req, &err), DCMSEAL_OK, err, "get");
    CHECK(req == 0 && raw_policies("legacy") == 0, "cleared");
    EXPECT(dcmseal_kek_set_require_origin(s, "nosuch", 1, &err), DCMSEAL_E_KEY, err,
           "policy of no key");
    /* Two policy objects (a change cut short, or planted by someone with
     * the PIN): still required. */
    EXPECT(dcmseal_kek_set_require_origin(s, "legacy", 1, &err), DCMSEAL_OK, err, "require");
    dcmseal_kek_info list[8];
    size_t n = 0;
    EXPECT(dcmseal_kek_list(s, list, 8, &n, "legacy", &err), DCMSEAL_OK, err, "list");
    CHECK(n == 2 && list[0].has_origin && list[1].has_origin && list[0].require_origin &&
              list[1].require_origin, "list shows origin keys and policy");
}

/* A secret key of a known value, put in the token by C_CreateObject (so
 * CKA_LOCAL false) under an origin or concealment key's label and ID, as
 * a public object (|priv| false) or a private one. */
static CK_OBJECT_HANDLE raw_import(const char *label, const char *id, CK_BBOOL priv,
                                   const uint8_t value[32])
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_GENERIC_SECRET;
    CK_BBOOL t = CK_TRUE, f = CK_FALSE;
    CK_ATTRIBUTE a[] = {
        {CKA_CLASS, &cls, sizeof cls}, {CKA_KEY_TYPE, &type, sizeof type},
        {CKA_VALUE, (void *)value, 32}, {CKA_TOKEN, &t, 1}, {CKA_PRIVATE, &priv, 1},
        {CKA_SENSITIVE, &t, 1}, {CKA_EXTRACTABLE, &f, 1}, {CKA_SIGN, &t, 1},
        {CKA_VERIFY, &t, 1}, {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_ID, (void *)id, strlen(id)},
    };
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    return raw->C_CreateObject(raw_h, a, 11, &h) == CKR_OK ? h : CK_INVALID_HANDLE;
}

/* Keys whose value someone outside the token knows are never used: a
 * public object, which anyone who reaches the slot can make without the
 * PIN, and an imported private one, which needs the PIN but was still
 * known outside. A proof made with that value is not accepted, and a name
 * with only such keys counts as having none. Then the lockdown of keys
 * made on a token that ignores CKA_ALLOWED_MECHANISMS shows in |weak|. */
static void test_planted(dcmseal_session_t *s)
{
    static const uint8_t known[32] = "the attacker knows these bytes!";
    dcmseal_error err;
    dcmseal_kek_info k;
    uint8_t forged[32], m[DCMSEAL_HMAC_LEN];
    unsigned mac_len = 0, added = 0;
    CHECK(HMAC(EVP_sha256(), known, sizeof known, MSG, sizeof MSG, forged, &mac_len) != NULL &&
              mac_len == 32, "HMAC");

    CHECK(raw_legacy_kek("planted", 1), "a KEK without an origin key");
    CHECK(raw_import("planted", "dcmseal-origin:planted:v1", CK_FALSE, known) !=
                  CK_INVALID_HANDLE &&
              raw_import("planted", "dcmseal-names:planted", CK_FALSE, known) !=
                  CK_INVALID_HANDLE,
          "plant public origin and concealment keys");
    EXPECT(dcmseal_kek_find(s, &k, "planted", 0, &err), DCMSEAL_OK, err, "find planted");
    CHECK(!k.has_origin, "a public key does not count as the version's origin key");
    EXPECT(dcmseal_origin_verify(s, "planted", 1, MSG, sizeof MSG, forged, &err), DCMSEAL_E_KEY,
           err, "a proof made with the planted key's value");
    CHECK(strstr(err.message, "has no origin key") != NULL, "message: %s", err.message);
    EXPECT(dcmseal_conceal_sign(s, m, "planted", MSG, sizeof MSG, &err), DCMSEAL_E_KEY, err,
           "names with the planted concealment key");
    /* The upgrade makes real ones beside them, and proofs go by those. */
    EXPECT(dcmseal_kek_upgrade(s, "planted", &added, &err), DCMSEAL_OK, err, "upgrade");
    CHECK(added == 2, "an origin and a concealment key made, got %u", added);
    EXPECT(dcmseal_origin_verify(s, "planted", 1, MSG, sizeof MSG, forged, &err),
           DCMSEAL_E_AUTH, err, "the forged proof after the upgrade");
    EXPECT(dcmseal_conceal_sign(s, m, "planted", MSG, sizeof MSG, &err), DCMSEAL_OK, err,
           "names after the upgrade");
    CHECK(memcmp(m, forged, sizeof m) != 0, "not with the planted value");

    CHECK(raw_legacy_kek("imported", 1) &&
              raw_import("imported", "dcmseal-origin:imported:v1", CK_TRUE, known) !=
                  CK_INVALID_HANDLE,
          "a private origin key imported with a known value");
    EXPECT(dcmseal_origin_verify(s, "imported", 1, MSG, sizeof MSG, forged, &err), DCMSEAL_E_KEY,
           err, "a proof under the imported key");
    CHECK(strstr(err.message, "CKA_LOCAL") != NULL, "message: %s", err.message);

    /* A generated origin key without CKA_ALLOWED_MECHANISMS works, and
     * the version says what it lacks. */
    CHECK(raw_legacy_kek("loose", 1) &&
              raw_hmac_key("loose", "dcmseal-origin:loose:v1", CK_FALSE) != CK_INVALID_HANDLE,
          "an origin key made without CKA_ALLOWED_MECHANISMS");
    EXPECT(dcmseal_origin_sign(s, m, "loose", 1, MSG, sizeof MSG, &err), DCMSEAL_OK, err,
           "it makes proofs");
    EXPECT(dcmseal_kek_find(s, &k, "loose", 0, &err), DCMSEAL_OK, err, "find loose");
    CHECK(k.has_origin && (k.weak & DCMSEAL_KEK_WEAK_ORIGIN), "weak: %#x", k.weak);
    EXPECT(dcmseal_kek_find(s, &k, "planted", 0, &err), DCMSEAL_OK, err, "find planted");
    CHECK(k.has_origin && !(k.weak & DCMSEAL_KEK_WEAK_ORIGIN),
          "dcmseal's own origin key lacks nothing: %#x", k.weak);
}

int main(void)
{
    char uri[512];
    dcmseal_error err;
    dcmseal_token_t *tok = NULL;
    dcmseal_session_t *s = NULL;

    snprintf(dir, sizeof dir, "/tmp/test_origin.XXXXXX");
    if (softhsm_token_new(dir, LABEL, PIN) != 0)
        return 2;
    setenv("TEST_ORIGIN_PIN", PIN, 1);
    snprintf(uri, sizeof uri,
             "pkcs11:token=" LABEL "?module-path=" MODULE "&pin-source=env:TEST_ORIGIN_PIN");
    EXPECT(dcmseal_token_open(&tok, uri, &err), DCMSEAL_OK, err, "open");
    if (tok != NULL)
        EXPECT(dcmseal_session_open(&s, tok, &err), DCMSEAL_OK, err, "session");
    if (s != NULL && raw_open()) {
        test_template(s);
        test_proofs(s);
        test_lifecycle(s);
        test_upgrade(s);
        test_planted(s);
    } else {
        CHECK(0, "no session, no raw module access");
    }
    dcmseal_session_free(s);
    dcmseal_token_free(tok);
    softhsm_token_remove(dir);
    return check_done("test_origin");
}
