/* The PKCS#11 module against a throwaway SoftHSM token of its own. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1
#endif
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <dcmseal/pkcs11.h>
#include <p11-kit/pkcs11.h>

#include "../support/check.h"
#include "../support/softhsm.h"

#define MODULE SOFTHSM_MODULE
#define LABEL "dcmseal-test"
#define PIN "5678"
#define BAD_PIN "0000"

static char dir[64];

static const char *path_in(const char *name)
{
    static char buf[4][256];
    static int i;
    char *p = buf[i++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

/* Mode 0600, as a pin-source must be. */
static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
}

/* Checks a status and that the message, if any, never shows a PIN. */
#define EXPECT(st, want, err, what)                                                  \
    do {                                                                               \
        dcmseal_status st_ = (st);                                                     \
        CHECK(st_ == (want), "%s: got %s (%s), want %s", what, dcmseal_status_name(st_), \
              st_ == DCMSEAL_OK ? "" : (err).message, dcmseal_status_name(want));      \
        CHECK(st_ == DCMSEAL_OK || (strstr((err).message, PIN) == NULL &&              \
                                    strstr((err).message, BAD_PIN) == NULL),           \
              "%s: PIN in message '%s'", what, (err).message);                         \
    } while (0)

static DCMSEAL_PRINTF(2, 3) dcmseal_status try_open(dcmseal_error *err, const char *fmt, ...)
{
    char uri[512];
    dcmseal_token_t *tok = NULL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(uri, sizeof uri, fmt, ap);
    va_end(ap);
    dcmseal_status st = dcmseal_token_open(&tok, uri, err);
    dcmseal_token_free(tok);
    return st;
}

static void test_open(void)
{
    dcmseal_error err;
    dcmseal_token_t *tok = NULL;
    char uri[512];

    snprintf(uri, sizeof uri,
             "pkcs11:token=" LABEL ";object=k1?module-path=" MODULE "&pin-source=%s",
             path_in("pin"));
    EXPECT(dcmseal_token_open(&tok, uri, &err), DCMSEAL_OK, err, "open, plain pin path");
    CHECK(tok && strcmp(dcmseal_token_get0_label(tok), LABEL) == 0, "label");
    CHECK(tok && dcmseal_token_get0_object(tok) &&
              strcmp(dcmseal_token_get0_object(tok), "k1") == 0, "object");
    dcmseal_token_free(tok);

    EXPECT(try_open(&err, "pkcs11:token=" LABEL "?module-path=" MODULE "&pin-source=file://%s",
                    path_in("pin")),
           DCMSEAL_OK, err, "open, file:// pin-source");
    /* A PIN from the environment is read once, then removed from it. */
    setenv("TEST_PKCS11_PIN", PIN, 1);
    EXPECT(try_open(&err, "pkcs11:token=" LABEL "?module-path=" MODULE "&pin-source=%s",
                    "env:TEST_PKCS11_PIN"),
           DCMSEAL_OK, err, "open, env: pin-source");
    CHECK(getenv("TEST_PKCS11_PIN") == NULL, "env: pin-source still set after the open");
    EXPECT(try_open(&err, "pkcs11:token=" LABEL "?module-path=" MODULE "&pin-source=%s",
                    "env:TEST_PKCS11_UNSET"),
           DCMSEAL_E_TOKEN, err, "open, unset env: pin-source");
    CHECK(strstr(err.message, "TEST_PKCS11_UNSET is not set") != NULL, "unset env message: %s",
          err.message);

    setenv("DCMSEAL_PIN", PIN, 1);
    EXPECT(try_open(&err, "pkcs11:token=" LABEL "?module-path=%s", MODULE), DCMSEAL_OK, err,
           "open, DCMSEAL_PIN");
    CHECK(getenv("DCMSEAL_PIN") == NULL, "DCMSEAL_PIN still set after the open");
    if (access("/usr/share/p11-kit/modules/softhsm2.module", R_OK) == 0) {
        setenv("DCMSEAL_PIN", PIN, 1);
        EXPECT(try_open(&err, "pkcs11:token=" LABEL "?module-name=%s", "softhsm2"), DCMSEAL_OK,
               err, "open, module-name");
        setenv("DCMSEAL_PIN", PIN, 1);
        EXPECT(try_open(&err, "pkcs11:token=%s", LABEL), DCMSEAL_OK, err,
               "open, registered modules");
    }
    unsetenv("DCMSEAL_PIN");

    /* A pin-source others may read, or that another user owns, is refused
     * before the token is asked anything. */
    write_file(path_in("openpin"), PIN "\n");
    chmod(path_in("openpin"), 0640);
    EXPECT(try_open(&err, "pkcs11:token=" LABEL "?module-path=" MODULE "&pin-source=file:%s",
                    path_in("openpin")),
           DCMSEAL_E_TOKEN, err, "open, group-readable pin-source");
    CHECK(strstr(err.message, "accessible to group or others (mode 0640)") != NULL,
          "group-readable message: %s", err.message);
    if (geteuid() == 0) {
        chmod(path_in("openpin"), 0600);
        CHECK(chown(path_in("openpin"), 65534, 65534) == 0, "chown");
        EXPECT(try_open(&err, "pkcs11:token=" LABEL "?module-path=" MODULE "&pin-source=file:%s",
                        path_in("openpin")),
               DCMSEAL_E_TOKEN, err, "open, pin-source of another user");
        CHECK(strstr(err.message, "owned by uid 65534") != NULL, "owner message: %s",
              err.message);
    }
    EXPECT(try_open(&err, "pkcs11:token=" LABEL "?module-path=%s", MODULE), DCMSEAL_E_TOKEN,
           err, "open, no PIN");
    CHECK(strstr(err.message, "DCMSEAL_PIN") != NULL, "no PIN message: %s", err.message);

    EXPECT(try_open(&err, "pkcs11:token=" LABEL "?module-path=" MODULE "&pin-source=file:%s",
                    path_in("badpin")),
           DCMSEAL_E_TOKEN, err, "open, wrong PIN");
    CHECK(strstr(err.message, "CKR_PIN_INCORRECT") && strstr(err.message, LABEL),
          "wrong PIN message: %s", err.message);
    EXPECT(try_open(&err, "pkcs11:token=" LABEL "?module-path=" MODULE "&pin-value=%s", PIN),
           DCMSEAL_E_USAGE, err, "open, pin-value");
    CHECK(strstr(err.message, "pin-source") && strstr(err.message, "DCMSEAL_PIN"),
          "pin-value message: %s", err.message);
    EXPECT(try_open(&err, "pkcs11:token=" LABEL "?module-path=%s&pin-source=env:TEST_PKCS11_PIN",
                    "/nonexistent/libnothing.so"),
           DCMSEAL_E_TOKEN, err, "open, bad module path");
    CHECK(strstr(err.message, "/nonexistent/libnothing.so") != NULL, "module message: %s",
          err.message);
    EXPECT(try_open(&err, "pkcs11:token=%s?module-path=" MODULE "&pin-source=env:TEST_PKCS11_PIN",
                    "no-such-token"),
           DCMSEAL_E_TOKEN, err, "open, unknown token");
    CHECK(strstr(err.message, "no-such-token") != NULL, "token message: %s", err.message);
    EXPECT(try_open(&err, "%s", "http://example.org/"), DCMSEAL_E_USAGE, err, "open, bad URI");
}

/* ---- the module itself, behind dcmseal's back --------------------------- */

/* The same shared object p11-kit loaded, hence the same SoftHSM state. */
static CK_FUNCTION_LIST *raw;
static CK_SLOT_ID raw_slot;
static CK_SESSION_HANDLE raw_h;

static int raw_open(void)
{
    return softhsm_raw_open(LABEL, PIN, &raw, &raw_slot, &raw_h) == 0;
}

static CK_OBJECT_HANDLE raw_find(CK_OBJECT_CLASS cls, const char *label, const char *id)
{
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_ID, (void *)id, strlen(id)},
    };
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_ULONG n = 0;
    if (raw->C_FindObjectsInit(raw_h, t, 3) == CKR_OK) {
        raw->C_FindObjects(raw_h, &h, 1, &n);
        raw->C_FindObjectsFinal(raw_h);
    }
    return n == 1 ? h : CK_INVALID_HANDLE;
}

/* The |cls| half of |label| v|v|: the CKA_ID dcmseal gives it now
 * ("dcmseal-kek:LABEL:vN"), else the one it gave before ("dcmseal-kek-vN"). */
static CK_OBJECT_HANDLE raw_version(CK_OBJECT_CLASS cls, const char *label, uint32_t v)
{
    char id[128];
    snprintf(id, sizeof id, "dcmseal-kek:%s:v%u", label, (unsigned)v);
    CK_OBJECT_HANDLE h = raw_find(cls, label, id);
    snprintf(id, sizeof id, "dcmseal-kek-v%u", (unsigned)v);
    return h != CK_INVALID_HANDLE ? h : raw_find(cls, label, id);
}

/* A key pair with dcmseal's label and ID but attributes of the test's
 * choosing, as a careless administrator might import one. */
static int raw_generate(const char *label, const char *id, CK_ULONG bits, CK_BBOOL sensitive,
                        CK_BBOOL extractable, CK_BBOOL decrypt)
{
    CK_BBOOL t = CK_TRUE;
    CK_BYTE e[] = {1, 0, 1};
    CK_MECHANISM mech = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    CK_ATTRIBUTE pub[] = {
        {CKA_TOKEN, &t, 1}, {CKA_ENCRYPT, &t, 1},
        {CKA_LABEL, (void *)label, strlen(label)}, {CKA_ID, (void *)id, strlen(id)},
        {CKA_MODULUS_BITS, &bits, sizeof bits}, {CKA_PUBLIC_EXPONENT, e, sizeof e},
    };
    CK_ATTRIBUTE priv[] = {
        {CKA_TOKEN, &t, 1}, {CKA_PRIVATE, &t, 1}, {CKA_SENSITIVE, &sensitive, 1},
        {CKA_EXTRACTABLE, &extractable, 1}, {CKA_DECRYPT, &decrypt, 1},
        {CKA_LABEL, (void *)label, strlen(label)}, {CKA_ID, (void *)id, strlen(id)},
    };
    CK_OBJECT_HANDLE hpub, hpriv;
    return raw->C_GenerateKeyPair(raw_h, &mech, pub, 6, priv, 7, &hpub, &hpriv) == CKR_OK;
}

/* With |copy|, gives the private half of |label| v1 a new handle (copied,
 * then the original destroyed); without, destroys both halves. (SoftHSM
 * copies a non-modifiable object, as the public half now is, with no
 * template at all.) */
static int raw_replace(const char *label, int copy)
{
    static const CK_OBJECT_CLASS cls[] = {CKO_PUBLIC_KEY, CKO_PRIVATE_KEY};
    for (int i = copy ? 1 : 0; i < 2; i++) {
        CK_OBJECT_HANDLE h = raw_version(cls[i], label, 1), dup;
        CK_BBOOL yes = CK_TRUE;
        CK_ATTRIBUTE keep[] = {{CKA_TOKEN, &yes, 1}}; /* SoftHSM refuses an empty one */
        if (h == CK_INVALID_HANDLE ||
            (copy && raw->C_CopyObject(raw_h, h, keep, 1, &dup) != CKR_OK) ||
            raw->C_DestroyObject(raw_h, h) != CKR_OK)
            return 0;
    }
    return 1;
}

/* ---- independent fingerprint -------------------------------------------- */

static void put_tlv(unsigned char *buf, size_t *pos, unsigned char tag,
                    const unsigned char *v, size_t len, int pad)
{
    size_t total = len + (pad ? 1 : 0);
    buf[(*pos)++] = tag;
    if (total >= 256) {
        buf[(*pos)++] = 0x82;
        buf[(*pos)++] = (unsigned char)(total >> 8);
    } else if (total >= 128) {
        buf[(*pos)++] = 0x81;
    }
    buf[(*pos)++] = (unsigned char)total;
    if (pad)
        buf[(*pos)++] = 0;
    memcpy(buf + *pos, v, len);
    *pos += len;
}

/* SHA-256 of what `openssl pkey -pubin -outform DER` prints for the public key
 * |label| v1 as read straight from the module, with a SubjectPublicKeyInfo
 * encoded by hand. 0 on failure. */
static int openssl_fingerprint(const char *label, unsigned char fp[32])
{
    static const unsigned char alg[] = {0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                        0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00};
    unsigned char n[512], e[16], ints[600], rsa[600], bits[600], body[700], spki[700];
    size_t pi = 0, pr = 0, pb = 0, pd = 0, ps = 0;
    CK_ATTRIBUTE t[] = {{CKA_MODULUS, n, sizeof n}, {CKA_PUBLIC_EXPONENT, e, sizeof e}};
    CK_OBJECT_HANDLE h = raw_version(CKO_PUBLIC_KEY, label, 1);
    char cmd[1024];
    FILE *f;
    if (h == CK_INVALID_HANDLE || raw->C_GetAttributeValue(raw_h, h, t, 2) != CKR_OK)
        return 0;
    put_tlv(ints, &pi, 0x02, n, t[0].ulValueLen, n[0] & 0x80);
    put_tlv(ints, &pi, 0x02, e, t[1].ulValueLen, e[0] & 0x80);
    put_tlv(rsa, &pr, 0x30, ints, pi, 0);
    put_tlv(bits, &pb, 0x03, rsa, pr, 1);
    memcpy(body, alg, sizeof alg);
    pd = sizeof alg;
    memcpy(body + pd, bits, pb);
    pd += pb;
    put_tlv(spki, &ps, 0x30, body, pd, 0);
    if ((f = fopen(path_in("k.der"), "wb")) == NULL || fwrite(spki, 1, ps, f) != ps ||
        fclose(f) != 0)
        return 0;
    snprintf(cmd, sizeof cmd,
             "openssl pkey -pubin -inform DER -in %s -outform DER -out %s 2>/dev/null",
             path_in("k.der"), path_in("k2.der"));
    if (system(cmd) != 0 || (f = fopen(path_in("k2.der"), "rb")) == NULL)
        return 0;
    ps = fread(spki, 1, sizeof spki, f);
    fclose(f);
    return EVP_Digest(spki, ps, fp, NULL, EVP_sha256(), NULL);
}

/* ---- keys ---------------------------------------------------------------- */

static void test_keys(dcmseal_session_t *s, dcmseal_kek_info *alpha, dcmseal_kek_info *beta,
                      dcmseal_kek_info *delta)
{
    dcmseal_error err;
    dcmseal_kek_info info, list[8];
    unsigned char fp[32];
    size_t n = 99;

    EXPECT(dcmseal_kek_create(s, alpha, "alpha", 2048, &err), DCMSEAL_OK, err, "create 2048");
    CHECK(alpha->bits == 2048 && alpha->version == 1 && strcmp(alpha->name, "alpha") == 0,
          "create 2048: bits %u version %u", alpha->bits, alpha->version);
    EXPECT(dcmseal_kek_create(s, beta, "beta", 3072, &err), DCMSEAL_OK, err, "create 3072");
    CHECK(beta->bits == 3072, "create 3072: bits %u", beta->bits);
    EXPECT(dcmseal_kek_create(s, delta, "delta", 2048, &err), DCMSEAL_OK, err, "create delta");
    EXPECT(dcmseal_kek_create(s, &info, "gamma", 4096, &err), DCMSEAL_E_USAGE, err,
           "create 4096");
    EXPECT(dcmseal_kek_create(s, &info, "gamma", 1024, &err), DCMSEAL_E_USAGE, err,
           "create 1024");
    EXPECT(dcmseal_kek_create(s, &info, "alpha", 2048, &err), DCMSEAL_E_USAGE, err,
           "create duplicate");
    CHECK(strstr(err.message, "alpha already exists") != NULL, "duplicate message: %s",
          err.message);
    EXPECT(dcmseal_kek_create(s, &info, "bad name", 2048, &err), DCMSEAL_E_USAGE, err,
           "create bad name");
    EXPECT(dcmseal_kek_create(s, &info, "", 2048, &err), DCMSEAL_E_USAGE, err,
           "create empty name");

    EXPECT(dcmseal_kek_find(s, &info, "alpha", 0, &err), DCMSEAL_OK, err, "find latest");
    CHECK(info.version == 1 && info.bits == 2048 &&
              memcmp(info.fingerprint, alpha->fingerprint, 32) == 0,
          "find latest: v%u %u bits", info.version, info.bits);
    EXPECT(dcmseal_kek_find(s, &info, "beta", 1, &err), DCMSEAL_OK, err, "find v1");
    CHECK(info.bits == 3072, "find v1: bits %u", info.bits);
    EXPECT(dcmseal_kek_find(s, &info, "alpha", 2, &err), DCMSEAL_E_KEY, err,
           "find absent version");
    CHECK(strstr(err.message, "'alpha' (v2) not found on token '" LABEL "'"),
          "absent message: %s", err.message);
    EXPECT(dcmseal_kek_find(s, &info, "nothere", 0, &err), DCMSEAL_E_KEY, err,
           "find absent key");

    EXPECT(dcmseal_kek_list(s, NULL, 0, &n, NULL, &err), DCMSEAL_OK, err, "list count");
    CHECK(n == 3, "list count: %zu", n);
    EXPECT(dcmseal_kek_list(s, list, 8, &n, NULL, &err), DCMSEAL_OK, err, "list");
    CHECK(n == 3 && strcmp(list[0].name, "alpha") == 0 && strcmp(list[1].name, "beta") == 0 &&
              strcmp(list[2].name, "delta") == 0,
          "list order");
    CHECK(list[0].bits == 2048 && list[1].bits == 3072 && list[0].version == 1,
          "list bits/version");
    CHECK(memcmp(list[0].fingerprint, alpha->fingerprint, 32) == 0 &&
              memcmp(list[1].fingerprint, beta->fingerprint, 32) == 0,
          "list fingerprints");
    CHECK(memcmp(alpha->fingerprint, beta->fingerprint, 32) != 0 &&
              memcmp(alpha->fingerprint, delta->fingerprint, 32) != 0,
          "fingerprints differ");
    CHECK(openssl_fingerprint("alpha", fp) && memcmp(fp, alpha->fingerprint, 32) == 0,
          "fingerprint equals openssl pkey | sha256 (alpha)");
    CHECK(openssl_fingerprint("beta", fp) && memcmp(fp, beta->fingerprint, 32) == 0,
          "fingerprint equals openssl pkey | sha256 (beta)");
}

static void test_wrap(dcmseal_session_t *s, const dcmseal_kek_info *alpha,
                      const dcmseal_kek_info *beta, const dcmseal_kek_info *delta)
{
    dcmseal_error err;
    uint8_t dek[32], got[64], w[DCMSEAL_WRAPPED_MAX], w2[DCMSEAL_WRAPPED_MAX];
    size_t wlen = 0, w2len = 0, glen = 0;
    dcmseal_oaep used = DCMSEAL_OAEP_AUTO;

    RAND_bytes(dek, sizeof dek);
    EXPECT(dcmseal_kek_wrap(s, w, sizeof w, &wlen, &used, alpha, DCMSEAL_OAEP_AUTO, dek, 32,
                            &err),
           DCMSEAL_OK, err, "wrap auto");
    CHECK(used == DCMSEAL_OAEP_SHA1 && wlen == 256, "wrap auto: used %s, %zu bytes",
          dcmseal_oaep_name(used), wlen);
    EXPECT(dcmseal_kek_unwrap(s, got, sizeof got, &glen, alpha, used, w, wlen, &err),
           DCMSEAL_OK, err, "unwrap");
    CHECK(glen == 32 && memcmp(got, dek, 32) == 0, "unwrap round trip");
    EXPECT(dcmseal_kek_wrap(s, w2, sizeof w2, &w2len, &used, beta, DCMSEAL_OAEP_SHA1, dek, 32,
                            &err),
           DCMSEAL_OK, err, "wrap sha1 (3072)");
    CHECK(used == DCMSEAL_OAEP_SHA1 && w2len == 384, "wrap sha1: %zu bytes", w2len);
    EXPECT(dcmseal_kek_unwrap(s, got, sizeof got, &glen, beta, used, w2, w2len, &err),
           DCMSEAL_OK, err, "unwrap (3072)");
    CHECK(glen == 32 && memcmp(got, dek, 32) == 0, "unwrap round trip (3072)");

    EXPECT(dcmseal_kek_wrap(s, w2, sizeof w2, &w2len, &used, alpha, DCMSEAL_OAEP_SHA256, dek,
                            32, &err),
           DCMSEAL_E_KEY, err, "wrap sha256 on SoftHSM");
    CHECK(strstr(err.message, "does not support RSA-OAEP-SHA256") &&
              strstr(err.message, "CKR_ARGUMENTS_BAD"),
          "sha256 message: %s", err.message);
    EXPECT(dcmseal_kek_unwrap(s, got, sizeof got, &glen, alpha, DCMSEAL_OAEP_SHA256, w, wlen,
                              &err),
           DCMSEAL_E_KEY, err, "unwrap sha256 on SoftHSM");

    w[17] ^= 0x04;
    EXPECT(dcmseal_kek_unwrap(s, got, sizeof got, &glen, alpha, DCMSEAL_OAEP_SHA1, w, wlen,
                              &err),
           DCMSEAL_E_AUTH, err, "unwrap tampered");
    printf("# tampered: %s\n", err.message);
    w[17] ^= 0x04;
    EXPECT(dcmseal_kek_unwrap(s, got, sizeof got, &glen, alpha, DCMSEAL_OAEP_SHA1, w, wlen - 1,
                              &err),
           DCMSEAL_E_AUTH, err, "unwrap truncated");
    printf("# truncated: %s\n", err.message);
    EXPECT(dcmseal_kek_unwrap(s, got, sizeof got, &glen, delta, DCMSEAL_OAEP_SHA1, w, wlen,
                              &err),
           DCMSEAL_E_AUTH, err, "unwrap under another 2048 key");
    EXPECT(dcmseal_kek_unwrap(s, got, sizeof got, &glen, beta, DCMSEAL_OAEP_SHA1, w, wlen,
                              &err),
           DCMSEAL_E_AUTH, err, "unwrap under the 3072 key");
    EXPECT(dcmseal_kek_unwrap(s, got, 16, &glen, alpha, DCMSEAL_OAEP_SHA1, w, wlen, &err),
           DCMSEAL_E_AUTH, err, "unwrap into a short buffer");
    /* The session still works after the refusals. */
    EXPECT(dcmseal_kek_unwrap(s, got, sizeof got, &glen, alpha, DCMSEAL_OAEP_SHA1, w, wlen,
                              &err),
           DCMSEAL_OK, err, "unwrap after failures");
}

static void test_policy(dcmseal_session_t *s, const dcmseal_kek_info *alpha)
{
    static const struct {
        const char *name, *id, *needle;
        CK_ULONG bits;
        CK_BBOOL sensitive, extractable, decrypt;
    } bad[] = {
        {"weak", "dcmseal-kek-v1", "RSA 1024 bits", 1024, CK_TRUE, CK_FALSE, CK_TRUE},
        {"leaky", "dcmseal-kek-v1", "CKA_EXTRACTABLE=true", 2048, CK_TRUE, CK_TRUE, CK_TRUE},
        {"plain", "dcmseal-kek-v1", "CKA_SENSITIVE=false", 2048, CK_FALSE, CK_FALSE, CK_TRUE},
        {"mute", "dcmseal-kek-v1", "CKA_DECRYPT=false", 2048, CK_TRUE, CK_FALSE, CK_FALSE},
    };
    dcmseal_error err;
    dcmseal_kek_info info, list[16];
    size_t n = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(raw_generate(bad[i].name, bad[i].id, bad[i].bits, bad[i].sensitive,
                           bad[i].extractable, bad[i].decrypt),
              "generate %s", bad[i].name);
        EXPECT(dcmseal_kek_find(s, &info, bad[i].name, 0, &err), DCMSEAL_E_KEY, err,
               bad[i].name);
        CHECK(strstr(err.message, bad[i].needle) != NULL, "%s: message '%s'", bad[i].name,
              err.message);
    }
    /* Versions compare as numbers, not strings. */
    CHECK(raw_generate("alpha", "dcmseal-kek-v9", 2048, CK_TRUE, CK_FALSE, CK_TRUE) &&
              raw_generate("alpha", "dcmseal-kek-v10", 2048, CK_TRUE, CK_FALSE, CK_TRUE) &&
              raw_generate("alpha", "not-dcmseal-v99", 2048, CK_TRUE, CK_FALSE, CK_TRUE),
          "generate alpha v9, v10");
    EXPECT(dcmseal_kek_find(s, &info, "alpha", 0, &err), DCMSEAL_OK, err, "find alpha latest");
    CHECK(info.version == 10 && memcmp(info.fingerprint, alpha->fingerprint, 32) != 0,
          "latest alpha is v%u", info.version);
    EXPECT(dcmseal_kek_list(s, list, 16, &n, NULL, &err), DCMSEAL_OK, err, "list with bad keys");
    CHECK(n == 9 && strcmp(list[0].name, "alpha") == 0 && list[0].version == 1 &&
              list[1].version == 9 && list[2].version == 10 && list[3].bits == 3072,
          "list with bad keys: %zu", n);
    EXPECT(dcmseal_kek_list(s, list, 2, &n, NULL, &err), DCMSEAL_OK, err, "list capped");
    CHECK(n == 9 && list[1].version == 9, "list capped: %zu", n);
}

/* The token drops every session; dcmseal must reopen and log in again. */
static void test_reopen(dcmseal_session_t *s, const dcmseal_kek_info *alpha)
{
    dcmseal_error err;
    uint8_t dek[32] = {1, 2, 3}, got[32], w[DCMSEAL_WRAPPED_MAX];
    size_t wlen = 0, glen = 0;
    dcmseal_oaep used = DCMSEAL_OAEP_AUTO;
    dcmseal_kek_info tmp, info;
    CK_SESSION_INFO si;

    memset(&tmp, 0, sizeof tmp);
    CHECK(raw->C_CloseAllSessions(raw_slot) == CKR_OK, "C_CloseAllSessions");
    EXPECT(dcmseal_kek_wrap(s, w, sizeof w, &wlen, &used, alpha, DCMSEAL_OAEP_AUTO, dek, 32,
                            &err),
           DCMSEAL_OK, err, "wrap after the token dropped the session");
    CHECK(raw->C_CloseAllSessions(raw_slot) == CKR_OK, "C_CloseAllSessions");
    EXPECT(dcmseal_kek_unwrap(s, got, sizeof got, &glen, alpha, used, w, wlen, &err),
           DCMSEAL_OK, err, "unwrap after the token dropped the session");
    CHECK(glen == 32 && memcmp(got, dek, 32) == 0, "round trip after reopen");
    CHECK(raw->C_CloseAllSessions(raw_slot) == CKR_OK, "C_CloseAllSessions");
    EXPECT(dcmseal_kek_find(s, &info, "beta", 0, &err), DCMSEAL_OK, err,
           "find after the token dropped the session");

    /* A logout elsewhere in the process invalidates the cached private key
     * handle and hides the key until dcmseal logs in again. */
    CHECK(raw_open(), "raw session");
    CHECK(raw->C_Logout(raw_h) == CKR_OK, "C_Logout");
    EXPECT(dcmseal_kek_unwrap(s, got, sizeof got, &glen, alpha, used, w, wlen, &err),
           DCMSEAL_OK, err, "unwrap after a logout");
    CHECK(raw->C_Logout(raw_h) == CKR_OK, "C_Logout");
    EXPECT(dcmseal_kek_find(s, &info, "alpha", 1, &err), DCMSEAL_OK, err,
           "find after a logout");

    /* A key deleted behind a cached handle is reported as gone. */
    EXPECT(dcmseal_kek_create(s, &tmp, "temp", 2048, &err), DCMSEAL_OK, err, "create temp");
    EXPECT(dcmseal_kek_wrap(s, w, sizeof w, &wlen, &used, &tmp, DCMSEAL_OAEP_AUTO, dek, 32,
                            &err),
           DCMSEAL_OK, err, "wrap temp");
    /* Same key, new handles: the cached ones go stale, the key does not. */
    CHECK(raw_replace("temp", 1) && raw_replace("temp", 1), "copy and destroy temp");
    EXPECT(dcmseal_kek_wrap(s, w, sizeof w, &wlen, &used, &tmp, DCMSEAL_OAEP_AUTO, dek, 32,
                            &err),
           DCMSEAL_OK, err, "wrap after the handles changed");
    CHECK(raw_replace("temp", 0), "destroy temp");
    EXPECT(dcmseal_kek_wrap(s, w, sizeof w, &wlen, &used, &tmp, DCMSEAL_OAEP_AUTO, dek, 32,
                            &err),
           DCMSEAL_E_KEY, err, "wrap with a deleted key");
    CHECK(raw->C_GetSessionInfo(raw_h, &si) == CKR_OK, "raw session still open");
}

/* ---- versions ------------------------------------------------------------ */


/* The four use attributes of |label| v|v|, as "DUEW" digits (1 true, 0 false). */
static void raw_uses(const char *label, uint32_t v, char out[5])
{
    CK_BBOOL b[4] = {9, 9, 9, 9};
    CK_ATTRIBUTE pt[] = {{CKA_DECRYPT, &b[0], 1}, {CKA_UNWRAP, &b[1], 1}};
    CK_ATTRIBUTE ut[] = {{CKA_ENCRYPT, &b[2], 1}, {CKA_WRAP, &b[3], 1}};
    raw->C_GetAttributeValue(raw_h, raw_version(CKO_PRIVATE_KEY, label, v), pt, 2);
    raw->C_GetAttributeValue(raw_h, raw_version(CKO_PUBLIC_KEY, label, v), ut, 2);
    for (int i = 0; i < 4; i++)
        out[i] = (char)('0' + b[i]);
    out[4] = '\0';
}

/* ---- KEK objects that only do what they are for ---------------------------- */

static CK_ULONG raw_id(CK_OBJECT_HANDLE h, char *id, size_t cap)
{
    CK_ATTRIBUTE t[] = {{CKA_ID, id, cap - 1}};
    CK_RV rv = raw->C_GetAttributeValue(raw_h, h, t, 1);
    id[rv == CKR_OK && t[0].ulValueLen < cap ? t[0].ulValueLen : 0] = '\0';
    return rv == CKR_OK ? t[0].ulValueLen : 0;
}

/* A version made as dcmseal made them before: CKA_ID "dcmseal-kek-vN",
 * public half public and modifiable, private half allowed every mechanism. */
static int raw_legacy(const char *label, uint32_t v)
{
    CK_BBOOL t = CK_TRUE, f = CK_FALSE;
    CK_ULONG bits = 2048;
    CK_BYTE e[] = {1, 0, 1};
    char id[32];
    CK_ULONG id_len = (CK_ULONG)snprintf(id, sizeof id, "dcmseal-kek-v%u", (unsigned)v);
    CK_MECHANISM mech = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    CK_ATTRIBUTE pub[] = {
        {CKA_TOKEN, &t, 1}, {CKA_ENCRYPT, &t, 1}, {CKA_WRAP, &t, 1}, {CKA_VERIFY, &f, 1},
        {CKA_LABEL, (void *)label, strlen(label)}, {CKA_ID, id, id_len},
        {CKA_MODULUS_BITS, &bits, sizeof bits}, {CKA_PUBLIC_EXPONENT, e, sizeof e},
    };
    CK_ATTRIBUTE priv[] = {
        {CKA_TOKEN, &t, 1}, {CKA_PRIVATE, &t, 1}, {CKA_SENSITIVE, &t, 1},
        {CKA_EXTRACTABLE, &f, 1}, {CKA_DECRYPT, &t, 1}, {CKA_UNWRAP, &t, 1},
        {CKA_SIGN, &f, 1}, {CKA_LABEL, (void *)label, strlen(label)}, {CKA_ID, id, id_len},
    };
    CK_OBJECT_HANDLE hpub, hpriv;
    return raw->C_GenerateKeyPair(raw_h, &mech, pub, 8, priv, 9, &hpub, &hpriv) == CKR_OK;
}

static void test_hardened(dcmseal_session_t *s, const dcmseal_kek_info *alpha)
{
    dcmseal_error err;
    dcmseal_kek_info info, k, list[4];
    CK_OBJECT_HANDLE priv = raw_version(CKO_PRIVATE_KEY, "alpha", 1);
    CK_OBJECT_HANDLE pub = raw_version(CKO_PUBLIC_KEY, "alpha", 1);
    char id1[128], id2[128];
    CK_MECHANISM_TYPE mechs[8];
    CK_BBOOL sign = 9, recover = 9, priv_pub = 9, modifiable = 9, f = CK_FALSE;
    CK_ATTRIBUTE pt[] = {{CKA_ALLOWED_MECHANISMS, mechs, sizeof mechs},
                         {CKA_SIGN, &sign, 1}, {CKA_SIGN_RECOVER, &recover, 1}};
    CK_ATTRIBUTE ut[] = {{CKA_PRIVATE, &priv_pub, 1}, {CKA_MODIFIABLE, &modifiable, 1}};
    CK_ATTRIBUTE no_wrap[] = {{CKA_WRAP, &f, 1}};
    CK_MECHANISM pkcs1 = {CKM_RSA_PKCS, NULL, 0}, raw_rsa = {CKM_RSA_X_509, NULL, 0};
    uint8_t dek[32] = {4, 2}, w[DCMSEAL_WRAPPED_MAX], out[64];
    size_t wlen = 0, olen = 0, n = 0;
    dcmseal_oaep used = DCMSEAL_OAEP_AUTO;
    CK_RV rv;

    /* CKA_ID: one per name and version, so that tools selecting by ID
     * cannot take one key for another. */
    raw_id(priv, id1, sizeof id1);
    raw_id(raw_version(CKO_PRIVATE_KEY, "delta", 1), id2, sizeof id2);
    CHECK(strcmp(id1, "dcmseal-kek:alpha:v1") == 0 && strcmp(id2, "dcmseal-kek:delta:v1") == 0,
          "CKA_ID per name and version: '%s', '%s'", id1, id2);
    raw_id(pub, id2, sizeof id2);
    CHECK(strcmp(id1, id2) == 0, "both halves share the ID: '%s', '%s'", id1, id2);

    /* The private half does RSA-OAEP only: no raw RSA, no PKCS#1 v1.5
     * (a padding oracle), no signatures. */
    CHECK(raw->C_GetAttributeValue(raw_h, priv, pt, 3) == CKR_OK &&
              pt[0].ulValueLen == sizeof(CK_MECHANISM_TYPE) && mechs[0] == CKM_RSA_PKCS_OAEP &&
              sign == CK_FALSE && recover == CK_FALSE,
          "private half: %lu allowed mechanisms, CKA_SIGN %d, CKA_SIGN_RECOVER %d",
          (unsigned long)(pt[0].ulValueLen / sizeof(CK_MECHANISM_TYPE)), sign, recover);
    rv = raw->C_DecryptInit(raw_h, &pkcs1, priv);
    CHECK(rv != CKR_OK, "C_DecryptInit with PKCS#1 v1.5 accepted");
    rv = raw->C_DecryptInit(raw_h, &raw_rsa, priv);
    CHECK(rv != CKR_OK, "C_DecryptInit with raw RSA accepted");
    rv = raw->C_SignInit(raw_h, &pkcs1, priv);
    CHECK(rv != CKR_OK, "C_SignInit accepted");
    rv = raw->C_SignRecoverInit(raw_h, &raw_rsa, priv);
    CHECK(rv != CKR_OK, "C_SignRecoverInit accepted");

    /* The public half is private (invisible without the PIN) and cannot be
     * changed. */
    CHECK(raw->C_GetAttributeValue(raw_h, pub, ut, 2) == CKR_OK && priv_pub == CK_TRUE &&
              modifiable == CK_FALSE,
          "public half: CKA_PRIVATE %d, CKA_MODIFIABLE %d", priv_pub, modifiable);
    rv = raw->C_SetAttributeValue(raw_h, pub, no_wrap, 1);
    CHECK(rv != CKR_OK, "the public half took CKA_WRAP=false");
    EXPECT(dcmseal_kek_find(s, &info, "alpha", 1, &err), DCMSEAL_OK, err, "find alpha v1");
    CHECK(info.weak == 0, "a new key is flagged: 0x%x", info.weak);

    /* Decryption does not depend on the public half: without it, a key
     * still unwraps (modulus and exponent come from the private half,
     * checked against the fingerprint), and refuses to wrap, saying why. */
    EXPECT(dcmseal_kek_create(s, &k, "nopub", 2048, &err), DCMSEAL_OK, err, "create nopub");
    EXPECT(dcmseal_kek_wrap(s, w, sizeof w, &wlen, &used, &k, DCMSEAL_OAEP_AUTO, dek, 32, &err),
           DCMSEAL_OK, err, "wrap under nopub");
    CHECK(raw->C_DestroyObject(raw_h, raw_version(CKO_PUBLIC_KEY, "nopub", 1)) == CKR_OK,
          "destroy the public half");
    EXPECT(dcmseal_kek_unwrap(s, out, sizeof out, &olen, &k, used, w, wlen, &err), DCMSEAL_OK,
           err, "unwrap without the public half (cached handles)");
    EXPECT(dcmseal_kek_find(s, &info, "nopub", 1, &err), DCMSEAL_OK, err,
           "find without the public half");
    CHECK(memcmp(info.fingerprint, k.fingerprint, 32) == 0 && info.bits == 2048 &&
              (info.weak & DCMSEAL_KEK_NO_PUBLIC),
          "without the public half: same fingerprint, flagged 0x%x", info.weak);
    EXPECT(dcmseal_kek_unwrap(s, out, sizeof out, &olen, &info, used, w, wlen, &err), DCMSEAL_OK,
           err, "unwrap without the public half");
    CHECK(olen == 32 && memcmp(out, dek, 32) == 0, "round trip without the public half");
    EXPECT(dcmseal_kek_wrap(s, w, sizeof w, &wlen, &used, &info, DCMSEAL_OAEP_AUTO, dek, 32,
                            &err),
           DCMSEAL_E_KEY, err, "wrap without the public half");
    CHECK(strstr(err.message, "public half") != NULL, "no public half message: %s", err.message);

    /* A public key planted under a version's label and ID (a public object
     * needs no PIN) is not the version's: the one whose modulus is the
     * private half's is. */
    CHECK(raw_generate("planted", "x", 2048, CK_TRUE, CK_FALSE, CK_TRUE), "generate a stranger");
    {
        CK_OBJECT_HANDLE stranger = raw_find(CKO_PUBLIC_KEY, "planted", "x"), copy;
        char pid[64];
        snprintf(pid, sizeof pid, "dcmseal-kek:delta:v1");
        CK_BBOOL tok = CK_TRUE;
        CK_ATTRIBUTE relabel[] = {{CKA_LABEL, "delta", 5}, {CKA_ID, pid, strlen(pid)},
                                  {CKA_TOKEN, &tok, 1}};
        CHECK(raw->C_CopyObject(raw_h, stranger, relabel, 3, &copy) == CKR_OK,
              "plant a public key as delta v1");
    }
    EXPECT(dcmseal_kek_find(s, &info, "delta", 1, &err), DCMSEAL_OK, err,
           "find delta with a planted public key");
    EXPECT(dcmseal_kek_wrap(s, w, sizeof w, &wlen, &used, &info, DCMSEAL_OAEP_AUTO, dek, 32,
                            &err),
           DCMSEAL_OK, err, "wrap under delta with a planted public key");
    EXPECT(dcmseal_kek_unwrap(s, out, sizeof out, &olen, &info, used, w, wlen, &err), DCMSEAL_OK,
           err, "and the real private half unwraps it");

    /* Keys made before keep working, and say what they lack. */
    CHECK(raw_legacy("old", 1), "a key as dcmseal made it before");
    EXPECT(dcmseal_kek_find(s, &info, "old", 0, &err), DCMSEAL_OK, err, "find a legacy key");
    CHECK(info.version == 1 &&
              (info.weak & (DCMSEAL_KEK_WEAK_SHARED_ID | DCMSEAL_KEK_WEAK_MECHANISMS |
                            DCMSEAL_KEK_WEAK_PUBLIC)) ==
                  (DCMSEAL_KEK_WEAK_SHARED_ID | DCMSEAL_KEK_WEAK_MECHANISMS |
                   DCMSEAL_KEK_WEAK_PUBLIC),
          "legacy key flags: 0x%x", info.weak);
    EXPECT(dcmseal_kek_wrap(s, w, sizeof w, &wlen, &used, &info, DCMSEAL_OAEP_AUTO, dek, 32,
                            &err),
           DCMSEAL_OK, err, "wrap under a legacy key");
    EXPECT(dcmseal_kek_unwrap(s, out, sizeof out, &olen, &info, used, w, wlen, &err), DCMSEAL_OK,
           err, "unwrap under a legacy key");
    EXPECT(dcmseal_kek_list(s, list, 4, &n, "old", &err), DCMSEAL_OK, err, "list a legacy key");
    CHECK(n == 1 && (list[0].weak & DCMSEAL_KEK_WEAK_SHARED_ID), "list flags the legacy key");
    EXPECT(dcmseal_kek_rotate(s, &info, "old", 0, &err), DCMSEAL_OK, err, "rotate a legacy key");
    CHECK(info.version == 2 && info.weak == 0, "its next version is made the new way: v%u 0x%x",
          info.version, info.weak);
    /* Disabling a legacy key switches its public half off as well. */
    {
        char uses[5];
        EXPECT(dcmseal_kek_set_enabled(s, "old", 1, 0, &err), DCMSEAL_OK, err,
               "disable the legacy version");
        raw_uses("old", 1, uses);
        CHECK(strcmp(uses, "0000") == 0, "legacy disabled: %s", uses);
        EXPECT(dcmseal_kek_set_enabled(s, "old", 1, 1, &err), DCMSEAL_OK, err,
               "enable the legacy version");
        raw_uses("old", 1, uses);
        CHECK(strcmp(uses, "1111") == 0, "legacy enabled: %s", uses);
    }
    (void)alpha;
}

static void test_versions(dcmseal_session_t *s)
{
    dcmseal_error err;
    dcmseal_kek_info v1, v2, v3, info, list[8];
    uint8_t dek[32] = {7}, w[DCMSEAL_WRAPPED_MAX], out[64];
    size_t n = 0, wlen = 0;
    dcmseal_oaep used;
    char uses[5];
    CK_RSA_PKCS_OAEP_PARAMS p = {CKM_SHA_1, CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED, NULL, 0};
    CK_MECHANISM mech = {CKM_RSA_PKCS_OAEP, &p, sizeof p};
    CK_RV rv;

    EXPECT(dcmseal_kek_rotate(s, &info, "rot", 0, &err), DCMSEAL_E_KEY, err, "rotate absent");
    EXPECT(dcmseal_kek_create(s, &v1, "rot", 2048, &err), DCMSEAL_OK, err, "create rot");
    CHECK(v1.enabled && v1.primary, "create: enabled %d primary %d", v1.enabled, v1.primary);
    EXPECT(dcmseal_kek_rotate(s, &v2, "rot", 0, &err), DCMSEAL_OK, err, "rotate rot");
    CHECK(v2.version == 2 && v2.bits == 2048 && v2.enabled && v2.primary &&
              memcmp(v1.fingerprint, v2.fingerprint, 32) != 0,
          "rotate: v%u %u bits", v2.version, v2.bits);
    EXPECT(dcmseal_kek_rotate(s, &v3, "rot", 3072, &err), DCMSEAL_OK, err, "rotate to 3072");
    CHECK(v3.version == 3 && v3.bits == 3072, "rotate 3072: v%u %u bits", v3.version, v3.bits);
    EXPECT(dcmseal_kek_rotate(s, &info, "rot", 1024, &err), DCMSEAL_E_USAGE, err,
           "rotate to 1024");
    EXPECT(dcmseal_kek_create(s, &info, "rot", 2048, &err), DCMSEAL_E_USAGE, err,
           "create an existing name");
    EXPECT(dcmseal_kek_find(s, &info, "rot", 1, &err), DCMSEAL_OK, err, "find rot v1");
    CHECK(info.enabled && !info.primary, "v1 is not primary");
    EXPECT(dcmseal_kek_list(s, list, 8, &n, "rot", &err), DCMSEAL_OK, err, "list rot");
    CHECK(n == 3 && list[0].version == 1 && list[2].version == 3 && !list[0].primary &&
              !list[1].primary && list[2].primary && list[0].enabled && list[2].enabled,
          "list rot: %zu", n);

    /* Disable v3: the primary falls back to v2, and the token refuses v3. */
    EXPECT(dcmseal_kek_set_enabled(s, "rot", 3, 0, &err), DCMSEAL_OK, err, "disable v3");
    EXPECT(dcmseal_kek_set_enabled(s, "rot", 3, 0, &err), DCMSEAL_OK, err, "disable v3 again");
    /* The private half refuses; the public half cannot be changed (and
     * encrypting with a public key is no secret anyway): dcmseal refuses to
     * wrap under a disabled version itself. */
    raw_uses("rot", 3, uses);
    CHECK(strcmp(uses, "0011") == 0, "disabled attributes: %s", uses);
    rv = raw->C_DecryptInit(raw_h, &mech, raw_version(CKO_PRIVATE_KEY, "rot", 3));
    CHECK(rv == CKR_KEY_FUNCTION_NOT_PERMITTED, "SoftHSM C_DecryptInit on a disabled key: 0x%lx",
          (unsigned long)rv);
    EXPECT(dcmseal_kek_find(s, &info, "rot", 0, &err), DCMSEAL_OK, err, "find primary");
    CHECK(info.version == 2 && info.primary, "primary after disabling v3: v%u", info.version);
    EXPECT(dcmseal_kek_find(s, &info, "rot", 3, &err), DCMSEAL_E_KEY, err, "find disabled");
    CHECK(strstr(err.message, "'rot' v3 on token '" LABEL "' is disabled") != NULL,
          "disabled message: %s", err.message);
    EXPECT(dcmseal_kek_wrap(s, w, sizeof w, &wlen, &used, &v3, DCMSEAL_OAEP_AUTO, dek, 32, &err),
           DCMSEAL_E_KEY, err, "wrap with a disabled key");
    CHECK(strstr(err.message, "disabled") != NULL, "wrap disabled message: %s", err.message);
    EXPECT(dcmseal_kek_list(s, list, 8, &n, "rot", &err), DCMSEAL_OK, err, "list rot");
    CHECK(n == 3 && list[1].primary && !list[2].enabled && !list[2].primary,
          "list after disabling v3");

    /* The next version follows the highest, disabled or not. */
    EXPECT(dcmseal_kek_rotate(s, &info, "rot", 0, &err), DCMSEAL_OK, err, "rotate after disable");
    CHECK(info.version == 4 && info.bits == 3072, "rotate after disable: v%u %u bits",
          info.version, info.bits);
    EXPECT(dcmseal_kek_set_enabled(s, "rot", 3, 1, &err), DCMSEAL_OK, err, "enable v3");
    raw_uses("rot", 3, uses);
    CHECK(strcmp(uses, "1111") == 0, "enabled attributes: %s", uses);
    EXPECT(dcmseal_kek_wrap(s, w, sizeof w, &wlen, &used, &v3, DCMSEAL_OAEP_AUTO, dek, 32, &err),
           DCMSEAL_OK, err, "wrap after enabling");
    EXPECT(dcmseal_kek_unwrap(s, out, sizeof out, &n, &v3, used, w, wlen, &err), DCMSEAL_OK, err,
           "unwrap after enabling");
    for (uint32_t v = 1; v <= 4; v++)
        EXPECT(dcmseal_kek_set_enabled(s, "rot", v, 0, &err), DCMSEAL_OK, err, "disable all");
    EXPECT(dcmseal_kek_find(s, &info, "rot", 0, &err), DCMSEAL_E_KEY, err, "find none enabled");
    CHECK(strstr(err.message, "key 'rot' has no enabled version on token '" LABEL "'"),
          "none enabled message: %s", err.message);
    EXPECT(dcmseal_kek_set_enabled(s, "rot", 9, 0, &err), DCMSEAL_E_KEY, err, "disable absent");

    /* Half-disabled is not disabled: the policy names the attribute. */
    EXPECT(dcmseal_kek_set_enabled(s, "rot", 2, 1, &err), DCMSEAL_OK, err, "enable v2");
    {
        CK_BBOOL f = CK_FALSE;
        CK_ATTRIBUTE t[] = {{CKA_UNWRAP, &f, 1}};
        CHECK(raw->C_SetAttributeValue(raw_h, raw_version(CKO_PRIVATE_KEY, "rot", 2), t, 1) ==
                  CKR_OK,
              "raw CKA_UNWRAP=false");
    }
    EXPECT(dcmseal_kek_find(s, &info, "rot", 0, &err), DCMSEAL_E_KEY, err, "find half-disabled");
    CHECK(strstr(err.message, "CKA_UNWRAP=false") != NULL, "half-disabled message: %s",
          err.message);

    EXPECT(dcmseal_kek_destroy(s, "rot", 4, &err), DCMSEAL_OK, err, "destroy v4");
    CHECK(raw_version(CKO_PRIVATE_KEY, "rot", 4) == CK_INVALID_HANDLE &&
              raw_version(CKO_PUBLIC_KEY, "rot", 4) == CK_INVALID_HANDLE,
          "both halves destroyed");
    EXPECT(dcmseal_kek_destroy(s, "rot", 4, &err), DCMSEAL_E_KEY, err, "destroy again");
    EXPECT(dcmseal_kek_find(s, &info, "rot", 4, &err), DCMSEAL_E_KEY, err, "find destroyed");
    EXPECT(dcmseal_kek_rotate(s, &info, "rot", 2048, &err), DCMSEAL_OK, err,
           "rotate after destroy");
    CHECK(info.version == 4 && info.primary, "rotate after destroy: v%u", info.version);
}

/* ---- minimum decryption version ----------------------------------------- */

/* The policy data objects labelled |label|, as the module sees them. */
static CK_ULONG raw_policies(const char *label, uint32_t *value)
{
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL tok = CK_FALSE, priv = CK_FALSE;
    unsigned char v[4] = {0};
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_APPLICATION, "dcmseal-kek-policy", 18},
        {CKA_LABEL, (void *)label, strlen(label)},
    };
    CK_ATTRIBUTE vt[] = {{CKA_VALUE, v, 4}, {CKA_TOKEN, &tok, 1}, {CKA_PRIVATE, &priv, 1}};
    CK_OBJECT_HANDLE h[4];
    CK_ULONG n = 0;
    *value = 0;
    if (raw->C_FindObjectsInit(raw_h, t, 3) != CKR_OK)
        return 99;
    raw->C_FindObjects(raw_h, h, 4, &n);
    raw->C_FindObjectsFinal(raw_h);
    if (n > 0 && raw->C_GetAttributeValue(raw_h, h[0], vt, 3) == CKR_OK && vt[0].ulValueLen == 4 &&
        tok == CK_TRUE && priv == CK_TRUE)
        *value = (uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 | (uint32_t)v[2] << 8 | v[3];
    return n;
}

static void test_min_version(dcmseal_token_t **tokp, dcmseal_session_t **sp, const char *uri)
{
    dcmseal_error err;
    dcmseal_kek_info v1, v2, info, list[4];
    uint8_t dek[32] = {9}, w[DCMSEAL_WRAPPED_MAX], out[64];
    size_t n = 0, wlen = 0, olen = 0;
    dcmseal_oaep used = DCMSEAL_OAEP_AUTO;
    uint32_t raw_min = 0;
    dcmseal_session_t *s = *sp;

    EXPECT(dcmseal_kek_create(s, &v1, "minv", 2048, &err), DCMSEAL_OK, err, "create minv");
    CHECK(v1.min_version == 0, "fresh key min_version %u", v1.min_version);
    EXPECT(dcmseal_kek_wrap(s, w, sizeof w, &wlen, &used, &v1, DCMSEAL_OAEP_AUTO, dek, 32, &err),
           DCMSEAL_OK, err, "wrap under minv v1");
    EXPECT(dcmseal_kek_rotate(s, &v2, "minv", 0, &err), DCMSEAL_OK, err, "rotate minv");

    EXPECT(dcmseal_kek_set_min_version(s, "minv", 2, &err), DCMSEAL_OK, err, "set min 2");
    CHECK(raw_policies("minv", &raw_min) == 1 && raw_min == 2,
          "one private token data object holding 2: %u", raw_min);
    EXPECT(dcmseal_kek_set_min_version(s, "minv", 2, &err), DCMSEAL_OK, err, "set min 2 again");
    CHECK(raw_policies("minv", &raw_min) == 1 && raw_min == 2, "still one data object");
    EXPECT(dcmseal_kek_set_min_version(s, "minv", 1, &err), DCMSEAL_OK, err, "set min 1");
    CHECK(raw_policies("minv", &raw_min) == 1 && raw_min == 1, "changed to 1: %u", raw_min);
    EXPECT(dcmseal_kek_find(s, &info, "minv", 1, &err), DCMSEAL_OK, err, "find v1, min 1");
    EXPECT(dcmseal_kek_set_min_version(s, "minv", 2, &err), DCMSEAL_OK, err, "set min 2, again");
    CHECK(raw_policies("minv", &raw_min) == 1 && raw_min == 2, "changed to 2: %u", raw_min);

    EXPECT(dcmseal_kek_find(s, &info, "minv", 1, &err), DCMSEAL_E_KEY, err, "find v1 below min");
    CHECK(strstr(err.message, "key 'minv' v1 on token '" LABEL
                              "' is below the minimum decryption version 2") != NULL,
          "below-min message: %s", err.message);
    EXPECT(dcmseal_kek_find(s, &info, "minv", 2, &err), DCMSEAL_OK, err, "find v2");
    CHECK(info.version == 2 && info.primary && info.min_version == 2, "v2: v%u min %u",
          info.version, info.min_version);
    EXPECT(dcmseal_kek_find(s, &info, "minv", 0, &err), DCMSEAL_OK, err, "find primary");
    CHECK(info.version == 2 && info.min_version == 2, "primary v%u min %u", info.version,
          info.min_version);
    EXPECT(dcmseal_kek_list(s, list, 4, &n, "minv", &err), DCMSEAL_OK, err, "list minv");
    CHECK(n == 2 && list[0].version == 1 && list[0].min_version == 2 &&
              list[1].min_version == 2,
          "list min: %zu entries, %u %u", n, n > 0 ? list[0].min_version : 0,
          n > 1 ? list[1].min_version : 0);
    /* Not destroyed, not disabled: only refused. */
    CHECK(raw_version(CKO_PRIVATE_KEY, "minv", 1) != CK_INVALID_HANDLE && n > 0 &&
              list[0].enabled,
          "v1 still on the token");
    EXPECT(dcmseal_kek_list(s, list, 4, &n, "rot", &err), DCMSEAL_OK, err, "list rot");
    CHECK(n > 0 && list[0].min_version == 0, "other names keep no minimum");

    /* An object wrapped under v1 is refused where the engine looks its key up. */
    {
        const char *why = "";
        dcmseal_status st = dcmseal_kek_find(s, &info, v1.name, v1.version, &err);
        if (st == DCMSEAL_OK)
            st = dcmseal_kek_unwrap(s, out, sizeof out, &olen, &info, used, w, wlen, &err);
        else
            why = err.message;
        CHECK(st == DCMSEAL_E_KEY && strstr(why, "minimum decryption version") != NULL,
              "unwrap under v1 through find: %s (%s)", dcmseal_status_name(st), why);
    }

    EXPECT(dcmseal_kek_set_min_version(s, "minv", 3, &err), DCMSEAL_E_USAGE, err,
           "set min above the primary");
    CHECK(strstr(err.message, "primary version 2") != NULL, "above-primary message: %s",
          err.message);
    EXPECT(dcmseal_kek_set_min_version(s, "no-such-key", 1, &err), DCMSEAL_E_KEY, err,
           "set min on an unknown name");
    EXPECT(dcmseal_kek_set_min_version(s, "no-such-key", 0, &err), DCMSEAL_E_KEY, err,
           "clear min on an unknown name");
    CHECK(raw_policies("no-such-key", &raw_min) == 0, "no data object for an unknown name");

    /* A token object: it survives closing and reopening the token. */
    dcmseal_session_free(*sp);
    dcmseal_token_free(*tokp);
    *sp = NULL;
    *tokp = NULL;
    EXPECT(dcmseal_token_open(tokp, uri, &err), DCMSEAL_OK, err, "reopen token");
    if (*tokp != NULL)
        EXPECT(dcmseal_session_open(sp, *tokp, &err), DCMSEAL_OK, err, "reopen session");
    if ((s = *sp) == NULL || !raw_open())
        return;
    EXPECT(dcmseal_kek_find(s, &info, "minv", 1, &err), DCMSEAL_E_KEY, err,
           "find v1 after reopening");
    CHECK(strstr(err.message, "minimum decryption version 2") != NULL,
          "after reopen message: %s", err.message);

    EXPECT(dcmseal_kek_set_min_version(s, "minv", 0, &err), DCMSEAL_OK, err, "clear min");
    CHECK(raw_policies("minv", &raw_min) == 0, "data object gone after clearing");
    EXPECT(dcmseal_kek_find(s, &info, "minv", 1, &err), DCMSEAL_OK, err, "find v1 after clear");
    CHECK(info.min_version == 0, "min after clear %u", info.min_version);
    EXPECT(dcmseal_kek_unwrap(s, out, sizeof out, &olen, &info, used, w, wlen, &err), DCMSEAL_OK,
           err, "unwrap under v1 after clear");
    CHECK(olen == 32 && memcmp(out, dek, 32) == 0, "v1 round trip after clear");
    EXPECT(dcmseal_kek_set_min_version(s, "minv", 0, &err), DCMSEAL_OK, err, "clear again");
}

/* ---- retention and purge protection --------------------------------------- */

/* The data objects of |app| labelled |label|, as the module sees them; the
 * first into |*h| (may be NULL). */
static CK_ULONG raw_data(const char *app, const char *label, CK_OBJECT_HANDLE *h)
{
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_APPLICATION, (void *)app, strlen(app)},
        {CKA_LABEL, (void *)label, strlen(label)},
    };
    CK_OBJECT_HANDLE hs[8];
    CK_ULONG n = 0;
    if (raw->C_FindObjectsInit(raw_h, t, 3) != CKR_OK)
        return 99;
    raw->C_FindObjects(raw_h, hs, 8, &n);
    raw->C_FindObjectsFinal(raw_h);
    if (h != NULL)
        *h = n > 0 ? hs[0] : CK_INVALID_HANDLE;
    return n;
}

/* Replaces the disabled-at record of |label| v|version| by one that says
 * |at|, as an older run might have left it. */
static int raw_disabled_at(const char *label, uint32_t version, int64_t at)
{
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL yes = CK_TRUE;
    CK_OBJECT_HANDLE h;
    unsigned char v[12];
    uint64_t u = (uint64_t)at;
    for (int i = 0; i < 4; i++)
        v[i] = (unsigned char)(version >> (24 - 8 * i));
    for (int i = 0; i < 8; i++)
        v[4 + i] = (unsigned char)(u >> (56 - 8 * i));
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls}, {CKA_TOKEN, &yes, 1}, {CKA_PRIVATE, &yes, 1},
        {CKA_APPLICATION, "dcmseal-kek-disabled", 20}, {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_VALUE, v, sizeof v},
    };
    while (raw_data("dcmseal-kek-disabled", label, &h) > 0)
        if (raw->C_DestroyObject(raw_h, h) != CKR_OK)
            return 0;
    return at == 0 || raw->C_CreateObject(raw_h, t, 6, &h) == CKR_OK;
}

/* Version |v| of "ret" as dcmseal_kek_list reports it. */
static dcmseal_kek_info listed(dcmseal_session_t *s, uint32_t v)
{
    dcmseal_kek_info keys[8], none;
    dcmseal_error err;
    size_t n = 0;
    memset(&none, 0, sizeof none);
    if (dcmseal_kek_list(s, keys, 8, &n, "ret", &err) != DCMSEAL_OK)
        return none;
    for (size_t i = 0; i < n && i < 8; i++)
        if (keys[i].version == v)
            return keys[i];
    return none;
}

static void test_retention(dcmseal_session_t *s)
{
    dcmseal_error err;
    dcmseal_kek_info info;
    CK_OBJECT_HANDLE h;
    const char *const RET = "dcmseal-kek-retention", *const DIS = "dcmseal-kek-disabled";

    EXPECT(dcmseal_kek_create(s, &info, "ret", 2048, &err), DCMSEAL_OK, err, "create ret");
    for (int i = 0; i < 3; i++)
        EXPECT(dcmseal_kek_rotate(s, &info, "ret", 0, &err), DCMSEAL_OK, err, "rotate ret");
    info = listed(s, 1);
    CHECK(info.version == 1 && info.retention_days == 0 && info.disabled_at == 0 &&
              !info.purge_protection, "fresh: no retention, not disabled");
    EXPECT(dcmseal_kek_destroy_check(s, "ret", 1, &err), DCMSEAL_OK, err,
           "no retention: destroying may follow at once");

    /* Disabled-at: recorded, kept when disabled again, dropped on enable. */
    int64_t before = (int64_t)time(NULL);
    EXPECT(dcmseal_kek_set_enabled(s, "ret", 1, 0, &err), DCMSEAL_OK, err, "disable v1");
    int64_t after = (int64_t)time(NULL);
    info = listed(s, 1);
    CHECK(info.disabled_at >= before && info.disabled_at <= after,
          "disabled_at %lld within [%lld, %lld]", (long long)info.disabled_at,
          (long long)before, (long long)after);
    CHECK(raw_data(DIS, "ret", NULL) == 1, "one disabled-at object in the token");
    CHECK(raw_disabled_at("ret", 1, before - 100), "backdate the record");
    EXPECT(dcmseal_kek_set_enabled(s, "ret", 1, 0, &err), DCMSEAL_OK, err, "disable v1 again");
    CHECK(listed(s, 1).disabled_at == before - 100 && raw_data(DIS, "ret", NULL) == 1,
          "disabling again keeps the record: the retention does not restart");
    EXPECT(dcmseal_kek_set_enabled(s, "ret", 1, 1, &err), DCMSEAL_OK, err, "enable v1");
    CHECK(raw_data(DIS, "ret", NULL) == 0 && listed(s, 1).disabled_at == 0,
          "enabling removes the record");
    EXPECT(dcmseal_kek_set_enabled(s, "ret", 1, 0, &err), DCMSEAL_OK, err, "disable v1, anew");
    CHECK(listed(s, 1).disabled_at >= before, "a new record after enable and disable");

    /* A retention: destroy waits for it, in the library itself. */
    EXPECT(dcmseal_kek_set_retention(s, "ret", 2, 0, &err), DCMSEAL_OK, err, "retention 2");
    CHECK(raw_data(RET, "ret", NULL) == 1 && listed(s, 2).retention_days == 2,
          "one retention object; every version reports 2 days");
    EXPECT(dcmseal_kek_destroy(s, "ret", 1, &err), DCMSEAL_E_USAGE, err, "destroy within");
    CHECK(strstr(err.message, "within its retention of 2 days") != NULL, "says why: %s",
          err.message);
    CHECK(raw_version(CKO_PRIVATE_KEY, "ret", 1) != CK_INVALID_HANDLE, "v1 is still there");
    EXPECT(dcmseal_kek_destroy_check(s, "ret", 3, &err), DCMSEAL_E_USAGE, err,
           "an enabled version under a retention");
    CHECK(raw_disabled_at("ret", 1, (int64_t)time(NULL) - 2 * 86400 - 60), "2 days ago");
    EXPECT(dcmseal_kek_destroy(s, "ret", 1, &err), DCMSEAL_OK, err, "destroy once it passed");
    CHECK(raw_version(CKO_PRIVATE_KEY, "ret", 1) == CK_INVALID_HANDLE &&
              raw_data(DIS, "ret", NULL) == 0, "v1 and its record are gone");
    EXPECT(dcmseal_kek_set_enabled(s, "ret", 2, 0, &err), DCMSEAL_OK, err, "disable v2");
    CHECK(raw_disabled_at("ret", 2, 0), "lose the record of v2");
    EXPECT(dcmseal_kek_destroy(s, "ret", 2, &err), DCMSEAL_E_USAGE, err, "no record");
    CHECK(strstr(err.message, "not recorded") != NULL, "says so: %s", err.message);
    EXPECT(dcmseal_kek_set_retention(s, "ret", 1, 0, &err), DCMSEAL_OK, err, "shorten to 1");
    CHECK(raw_data(RET, "ret", NULL) == 1 && listed(s, 3).retention_days == 1, "now 1 day");

    /* Purge protection: the retention only grows, and the token keeps it. */
    EXPECT(dcmseal_kek_set_retention(s, "ret", 0, 1, &err), DCMSEAL_E_USAGE, err,
           "purge protection without a retention");
    EXPECT(dcmseal_kek_set_retention(s, "ret", 3, 1, &err), DCMSEAL_OK, err, "purge on, 3 days");
    info = listed(s, 3);
    CHECK(info.retention_days == 3 && info.purge_protection && info.purge_locked,
          "3 days, protected, locked by the token");
    CHECK(raw_data(RET, "ret", &h) == 1 && raw->C_DestroyObject(raw_h, h) == CKR_ACTION_PROHIBITED,
          "the token refuses to destroy the retention object");
    EXPECT(dcmseal_kek_set_retention(s, "ret", 2, 0, &err), DCMSEAL_E_USAGE, err, "shorten");
    EXPECT(dcmseal_kek_set_retention(s, "ret", 0, 0, &err), DCMSEAL_E_USAGE, err, "remove");
    CHECK(strstr(err.message, "purge protection") != NULL, "says why: %s", err.message);
    EXPECT(dcmseal_kek_set_retention(s, "ret", 5, 0, &err), DCMSEAL_OK, err, "lengthen to 5");
    EXPECT(dcmseal_kek_set_retention(s, "ret", 5, 1, &err), DCMSEAL_OK, err, "again: a no-op");
    info = listed(s, 3);
    CHECK(info.retention_days == 5 && info.purge_protection && raw_data(RET, "ret", NULL) == 2,
          "5 days, still protected; the 3-day object stays, locked");
    EXPECT(dcmseal_kek_set_retention(s, "nosuch", 5, 0, &err), DCMSEAL_E_KEY, err,
           "retention of a name that is not there");
}

/* ---- rewrap -------------------------------------------------------------- */

/* Data keys unwrapped into the token and not destroyed: generic secrets
 * (the AES key that measures them stays for the session). */
static CK_ULONG raw_session_secrets(void)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_GENERIC_SECRET;
    CK_BBOOL f = CK_FALSE;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_TOKEN, &f, 1},
                        {CKA_KEY_TYPE, &type, sizeof type}};
    CK_OBJECT_HANDLE h[64];
    CK_ULONG n = 0;
    if (raw->C_FindObjectsInit(raw_h, t, 3) == CKR_OK) {
        raw->C_FindObjects(raw_h, h, 64, &n);
        raw->C_FindObjectsFinal(raw_h);
    }
    return n;
}

static void test_rewrap(dcmseal_session_t *s, const dcmseal_kek_info *alpha,
                        const dcmseal_kek_info *beta)
{
    dcmseal_error err;
    dcmseal_kek_info r1, r2;
    uint8_t dek[32], got[64], w[DCMSEAL_WRAPPED_MAX], w2[DCMSEAL_WRAPPED_MAX];
    size_t wlen = 0, w2len = 0, glen = 0;
    dcmseal_oaep used = DCMSEAL_OAEP_AUTO, used2 = DCMSEAL_OAEP_AUTO;
    int in_token = -1, all = 1;

    RAND_bytes(dek, sizeof dek);
    EXPECT(dcmseal_kek_wrap(s, w, sizeof w, &wlen, &used, alpha, DCMSEAL_OAEP_AUTO, dek, 32, &err),
           DCMSEAL_OK, err, "wrap for rewrap");
    EXPECT(dcmseal_kek_rewrap(s, w2, sizeof w2, &w2len, &used2, &in_token, alpha, used, w, wlen,
                              beta, DCMSEAL_OAEP_AUTO, &err),
           DCMSEAL_OK, err, "rewrap alpha -> beta");
    CHECK(in_token == 1 && w2len == 384, "rewrap: in_token %d, %zu bytes", in_token, w2len);
    /* SoftHSM 2.6.1 refuses CKA_VALUE_LEN in C_UnwrapKey's template after it
     * created the object, and leaves that empty object in the session: once,
     * as dcmseal then remembers the refusal. Later rewraps leave nothing. */
    const CK_ULONG orphans = raw_session_secrets();
    CHECK(orphans <= 1, "session secret keys after the first rewrap: %lu", (unsigned long)orphans);
    EXPECT(dcmseal_kek_unwrap(s, got, sizeof got, &glen, beta, used2, w2, w2len, &err),
           DCMSEAL_OK, err, "unwrap the rewrapped key");
    CHECK(glen == 32 && memcmp(got, dek, 32) == 0, "rewrap round trip");

    EXPECT(dcmseal_kek_create(s, &r1, "rw", 2048, &err), DCMSEAL_OK, err, "create rw");
    EXPECT(dcmseal_kek_rotate(s, &r2, "rw", 0, &err), DCMSEAL_OK, err, "rotate rw");
    EXPECT(dcmseal_kek_wrap(s, w, sizeof w, &wlen, &used, &r1, DCMSEAL_OAEP_AUTO, dek, 32, &err),
           DCMSEAL_OK, err, "wrap under rw v1");
    for (int i = 0; i < 50; i++) {
        all &= dcmseal_kek_rewrap(s, w2, sizeof w2, &w2len, &used2, &in_token, &r1, used, w,
                                  wlen, &r2, DCMSEAL_OAEP_AUTO, &err) == DCMSEAL_OK &&
               in_token == 1;
    }
    CHECK(all, "50 rewraps v1 -> v2: %s", err.message);
    EXPECT(dcmseal_kek_unwrap(s, got, sizeof got, &glen, &r2, used2, w2, w2len, &err),
           DCMSEAL_OK, err, "unwrap under v2");
    CHECK(glen == 32 && memcmp(got, dek, 32) == 0, "rewrap v1 -> v2 round trip");
    CHECK(raw_session_secrets() == orphans, "session secret keys left: %lu",
          (unsigned long)raw_session_secrets());

    w[40] ^= 1;
    EXPECT(dcmseal_kek_rewrap(s, w2, sizeof w2, &w2len, &used2, &in_token, &r1, used, w, wlen,
                              &r2, DCMSEAL_OAEP_AUTO, &err),
           DCMSEAL_E_AUTH, err, "rewrap tampered");
    printf("# rewrap tampered: %s\n", err.message);
    w[40] ^= 1;
    EXPECT(dcmseal_kek_rewrap(s, w2, sizeof w2, &w2len, &used2, &in_token, &r1, used, w, wlen - 1,
                              &r2, DCMSEAL_OAEP_AUTO, &err),
           DCMSEAL_E_AUTH, err, "rewrap truncated");
    printf("# rewrap truncated: %s\n", err.message);
    /* A wrapped key that is not a 32-byte data key is no dcmseal object:
     * rewrap refuses it, in the token or not, instead of "moving" it. */
    {
        static const size_t bad_len[] = {16, 64};
        for (size_t i = 0; i < 2; i++) {
            uint8_t odd[64] = {3}, res[DCMSEAL_WRAPPED_MAX];
            size_t olen_w = 0, rlen = 0;
            dcmseal_oaep u = DCMSEAL_OAEP_AUTO;
            EXPECT(dcmseal_kek_wrap(s, w2, sizeof w2, &olen_w, &u, &r1, DCMSEAL_OAEP_AUTO, odd,
                                    bad_len[i], &err),
                   DCMSEAL_OK, err, "wrap a key of another size");
            EXPECT(dcmseal_kek_rewrap(s, res, sizeof res, &rlen, &used2, &in_token, &r1, u, w2,
                                      olen_w, &r2, DCMSEAL_OAEP_AUTO, &err),
                   DCMSEAL_E_AUTH, err, bad_len[i] == 16 ? "rewrap a 16-byte key"
                                                         : "rewrap a 64-byte key");
            printf("# rewrap a %zu-byte key: %s\n", bad_len[i], err.message);
        }
        CHECK(raw_session_secrets() == orphans,
              "session secret keys left after refusing lengths");
    }
    EXPECT(dcmseal_kek_set_enabled(s, "rw", 1, 0, &err), DCMSEAL_OK, err, "disable rw v1");
    EXPECT(dcmseal_kek_rewrap(s, w2, sizeof w2, &w2len, &used2, &in_token, &r1, used, w, wlen,
                              &r2, DCMSEAL_OAEP_AUTO, &err),
           DCMSEAL_E_KEY, err, "rewrap from a disabled key");
    CHECK(strstr(err.message, "disabled") != NULL, "rewrap disabled message: %s", err.message);
    EXPECT(dcmseal_kek_set_enabled(s, "rw", 1, 1, &err), DCMSEAL_OK, err, "enable rw v1");
    EXPECT(dcmseal_kek_rewrap(s, w2, sizeof w2, &w2len, &used2, &in_token, &r1, used, w, wlen,
                              &r2, DCMSEAL_OAEP_AUTO, &err),
           DCMSEAL_OK, err, "rewrap after the failures");
    CHECK(in_token == 1, "still in token after the failures");
    CHECK(raw_session_secrets() == orphans, "session secret keys left after failures");
}

/* ---- faults -------------------------------------------------------------- */

static void plan(const char *text)
{
    write_file(path_in("plan.new"), text);
    if (rename(path_in("plan.new"), path_in("plan")) != 0)
        perror("rename plan");
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_faults(const dcmseal_kek_info *alpha, const dcmseal_kek_info *beta)
{
    dcmseal_error err;
    dcmseal_token_t *tok = NULL;
    dcmseal_session_t *s = NULL;
    char uri[512];
    uint8_t dek[32] = {9, 8, 7}, got[64], w[DCMSEAL_WRAPPED_MAX], w2[DCMSEAL_WRAPPED_MAX];
    size_t wlen = 0, w2len = 0, glen = 0;
    dcmseal_oaep used = DCMSEAL_OAEP_AUTO, used2;
    dcmseal_kek_info info;
    int in_token = 0, all = 1;
    double t0;

    plan("");
    setenv("FAULTY_PKCS11_MODULE", MODULE, 1);
    setenv("FAULTY_PKCS11_PLAN", path_in("plan"), 1);
    setenv("DCMSEAL_RETRY_MAX", "2", 1);
    snprintf(uri, sizeof uri, "pkcs11:token=" LABEL "?module-path=%s&pin-source=file:%s",
             FAULTY_MODULE, path_in("pin"));
    EXPECT(dcmseal_token_open(&tok, uri, &err), DCMSEAL_OK, err, "open through the shim");
    if (tok == NULL || dcmseal_session_open(&s, tok, &err) != DCMSEAL_OK) {
        CHECK(0, "shim session: %s", err.message);
        dcmseal_token_free(tok);
        return;
    }
    EXPECT(dcmseal_kek_wrap(s, w, sizeof w, &wlen, &used, alpha, DCMSEAL_OAEP_AUTO, dek, 32, &err),
           DCMSEAL_OK, err, "wrap through the shim");

    plan("C_Decrypt CKR_DEVICE_ERROR 2\n");
    EXPECT(dcmseal_kek_unwrap(s, got, sizeof got, &glen, alpha, used, w, wlen, &err), DCMSEAL_OK,
           err, "unwrap after 2 device errors");
    CHECK(glen == 32 && memcmp(got, dek, 32) == 0, "unwrap after device errors: round trip");
    plan("C_Encrypt CKR_SESSION_CLOSED 1\n");
    EXPECT(dcmseal_kek_wrap(s, w, sizeof w, &wlen, &used, alpha, DCMSEAL_OAEP_AUTO, dek, 32, &err),
           DCMSEAL_OK, err, "wrap after a closed session");

    plan("C_Decrypt CKR_DEVICE_ERROR 1000\n");
    t0 = now();
    EXPECT(dcmseal_kek_unwrap(s, got, sizeof got, &glen, alpha, used, w, wlen, &err),
           DCMSEAL_E_TOKEN, err, "unwrap on a failing device");
    CHECK(now() - t0 < 2.0, "gave up after %.2f s", now() - t0);
    CHECK(strstr(err.message, "CKR_DEVICE_ERROR") && strstr(err.message, LABEL) &&
              strstr(err.message, "'alpha' v1"),
          "device error message: %s", err.message);
    plan("");
    EXPECT(dcmseal_kek_unwrap(s, got, sizeof got, &glen, alpha, used, w, wlen, &err), DCMSEAL_OK,
           err, "unwrap once the device is back");

    plan("* CKR_DEVICE_REMOVED 3\n");
    EXPECT(dcmseal_kek_unwrap(s, got, sizeof got, &glen, alpha, used, w, wlen, &err), DCMSEAL_OK,
           err, "unwrap after the token was removed and came back");
    plan("* CKR_TOKEN_NOT_PRESENT 3\n");
    EXPECT(dcmseal_kek_find(s, &info, "beta", 1, &err), DCMSEAL_OK, err,
           "find after the token was absent");

    /* A warm batch never searches: the handles of both keys are cached. */
    EXPECT(dcmseal_kek_rewrap(s, w2, sizeof w2, &w2len, &used2, &in_token, alpha, used, w, wlen,
                              beta, DCMSEAL_OAEP_AUTO, &err),
           DCMSEAL_OK, err, "rewrap through the shim");
    plan("C_FindObjectsInit CKR_DEVICE_ERROR 1000\n");
    for (int i = 0; i < 10; i++)
        all &= dcmseal_kek_rewrap(s, w2, sizeof w2, &w2len, &used2, &in_token, alpha, used, w,
                                  wlen, beta, DCMSEAL_OAEP_AUTO, &err) == DCMSEAL_OK &&
               dcmseal_kek_unwrap(s, got, sizeof got, &glen, alpha, used, w, wlen, &err) ==
                   DCMSEAL_OK;
    CHECK(all, "rewrap batch without C_FindObjects: %s", err.message);
    plan("");

    /* The in-token path refused: the host path takes over, once per token. */
    plan("C_UnwrapKey CKR_FUNCTION_NOT_SUPPORTED 1\n");
    EXPECT(dcmseal_kek_rewrap(s, w2, sizeof w2, &w2len, &used2, &in_token, alpha, used, w, wlen,
                              beta, DCMSEAL_OAEP_AUTO, &err),
           DCMSEAL_OK, err, "rewrap, in-token path refused");
    CHECK(in_token == 0, "fallback: in_token %d", in_token);
    EXPECT(dcmseal_kek_rewrap(s, w2, sizeof w2, &w2len, &used2, &in_token, alpha, used, w, wlen,
                              beta, DCMSEAL_OAEP_AUTO, &err),
           DCMSEAL_OK, err, "rewrap, refusal remembered");
    CHECK(in_token == 0, "refusal remembered: in_token %d", in_token);
    EXPECT(dcmseal_kek_unwrap(s, got, sizeof got, &glen, beta, used2, w2, w2len, &err),
           DCMSEAL_OK, err, "unwrap the host-rewrapped key");
    CHECK(glen == 32 && memcmp(got, dek, 32) == 0, "host rewrap round trip");
    w[3] ^= 0x20;
    EXPECT(dcmseal_kek_rewrap(s, w2, sizeof w2, &w2len, &used2, &in_token, alpha, used, w, wlen,
                              beta, DCMSEAL_OAEP_AUTO, &err),
           DCMSEAL_E_AUTH, err, "host rewrap tampered");
    plan("");
    dcmseal_session_free(s);
    dcmseal_token_free(tok);
}

/* ---- error classes (pkcs11/ckr.c), through the fault-injecting module ------ */

/* A token of its own through the shim: the rewrap path is decided per
 * token, so each case starts undecided. */
static int shim_open(dcmseal_token_t **tok, dcmseal_session_t **s)
{
    char uri[512];
    dcmseal_error err;
    snprintf(uri, sizeof uri, "pkcs11:token=" LABEL "?module-path=%s&pin-source=file:%s",
             FAULTY_MODULE, path_in("pin"));
    *s = NULL;
    if (dcmseal_token_open(tok, uri, &err) != DCMSEAL_OK ||
        dcmseal_session_open(s, *tok, &err) != DCMSEAL_OK) {
        CHECK(0, "shim token: %s", err.message);
        return 0;
    }
    return 1;
}

/* What wrap and unwrap fail with when the token answers a code: one case
 * per class, and the codes two real tokens use for bad bytes. */
static void test_classes_crypt(const dcmseal_kek_info *alpha)
{
    static const struct {
        const char *plan;
        int unwrap;
        dcmseal_status want;
    } cases[] = {
        /* refused: the key cannot be used so on this token, not an outage */
        {"C_DecryptInit CKR_MECHANISM_INVALID 1", 1, DCMSEAL_E_KEY},
        {"C_DecryptInit CKR_ATTRIBUTE_READ_ONLY 1", 1, DCMSEAL_E_KEY},
        {"C_EncryptInit CKR_MECHANISM_INVALID 1", 0, DCMSEAL_E_KEY},
        {"C_EncryptInit CKR_TEMPLATE_INCONSISTENT 1", 0, DCMSEAL_E_KEY},
        /* the key: disabled (CKR_KEY_FUNCTION_NOT_PERMITTED), wrong type */
        {"C_DecryptInit 0x68 1", 1, DCMSEAL_E_KEY},
        {"C_EncryptInit 0x63 1", 0, DCMSEAL_E_KEY},
        /* bad data: ENCRYPTED_DATA_INVALID, ENCRYPTED_DATA_LEN_RANGE, and the
         * catch-alls SoftHSM and openCryptoki give for an OAEP decoding
         * failure, even after every retry */
        {"C_Decrypt 0x40 1", 1, DCMSEAL_E_AUTH},
        {"C_Decrypt 0x41 1", 1, DCMSEAL_E_AUTH},
        {"C_Decrypt CKR_GENERAL_ERROR 1", 1, DCMSEAL_E_AUTH},
        {"C_Decrypt CKR_FUNCTION_FAILED 1000", 1, DCMSEAL_E_AUTH},
        {"C_Encrypt 0x21 1", 0, DCMSEAL_E_USAGE}, /* DATA_LEN_RANGE: ours */
        /* transient for good, and unavailable: the token, so 69 and a stop */
        {"C_Decrypt CKR_DEVICE_ERROR 1000", 1, DCMSEAL_E_TOKEN},
        {"C_DecryptInit CKR_HOST_MEMORY 1", 1, DCMSEAL_E_TOKEN},
        {"C_EncryptInit CKR_GENERAL_ERROR 1", 0, DCMSEAL_E_TOKEN},
        {"C_Decrypt 0x80000001 1", 1, DCMSEAL_E_TOKEN}, /* vendor-defined, unknown */
    };
    dcmseal_token_t *tok = NULL;
    dcmseal_session_t *s = NULL;
    dcmseal_error err;
    uint8_t dek[32] = {1, 2, 3}, got[64], w[DCMSEAL_WRAPPED_MAX], w2[DCMSEAL_WRAPPED_MAX];
    size_t wlen = 0, w2len = 0, glen = 0;
    dcmseal_oaep used = DCMSEAL_OAEP_AUTO, used2;
    char line[96];
    if (!shim_open(&tok, &s))
        goto out;
    plan("");
    EXPECT(dcmseal_kek_wrap(s, w, sizeof w, &wlen, &used, alpha, DCMSEAL_OAEP_AUTO, dek, 32, &err),
           DCMSEAL_OK, err, "classes: wrap");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(line, sizeof line, "%s\n", cases[i].plan);
        plan(line);
        /* The variant the key was wrapped with: no SHA-256 fallback to hide
         * a refusal behind. */
        dcmseal_status st =
            cases[i].unwrap
                ? dcmseal_kek_unwrap(s, got, sizeof got, &glen, alpha, used, w, wlen, &err)
                : dcmseal_kek_wrap(s, w2, sizeof w2, &w2len, &used2, alpha, used, dek, 32, &err);
        CHECK(st == cases[i].want, "%s: %s (%s), want %s", cases[i].plan,
              dcmseal_status_name(st), st ? err.message : "", dcmseal_status_name(cases[i].want));
        CHECK(st == DCMSEAL_OK || strstr(err.message, LABEL) != NULL, "%s: no token in '%s'",
              cases[i].plan, err.message);
    }
    plan("");
    EXPECT(dcmseal_kek_unwrap(s, got, sizeof got, &glen, alpha, used, w, wlen, &err), DCMSEAL_OK,
           err, "classes: unwrap after the faults");
out:
    dcmseal_session_free(s);
    dcmseal_token_free(tok);
}

/* The rewrap path: a capability refusal of the in-token path, or a token
 * that leaves the unwrapped key readable, sends this object and every later
 * one on the token through host memory, without asking the token again;
 * other answers keep their class. */
static void test_classes_rewrap(const dcmseal_kek_info *alpha, const dcmseal_kek_info *beta)
{
    static const struct {
        const char *plan;
        dcmseal_status want;
        const char *refusal; /* the token's reason afterwards; NULL: none */
    } cases[] = {
        {"", DCMSEAL_OK, NULL},
        /* SoftHSM refuses CKA_VALUE_LEN in the template with READ_ONLY, and
         * the unwrap is tried again without it (the length is then
         * measured): a token that refuses both, as openCryptoki refuses
         * CKA_EXTRACTABLE, is refused for good. */
        {"C_UnwrapKey CKR_ATTRIBUTE_READ_ONLY 2", DCMSEAL_OK, "C_UnwrapKey: CKR_ATTRIBUTE_READ_ONLY"},
        {"C_UnwrapKey CKR_FUNCTION_NOT_SUPPORTED 1", DCMSEAL_OK,
         "C_UnwrapKey: CKR_FUNCTION_NOT_SUPPORTED"},
        {"C_UnwrapKey CKR_MECHANISM_INVALID 1", DCMSEAL_OK, "C_UnwrapKey: CKR_MECHANISM_INVALID"},
        /* On SoftHSM the first C_WrapKey is the unwrap step's length
         * measure (AES key wrap under a session key): a token that refuses
         * it cannot check the length in the token. */
        {"C_WrapKey CKR_KEY_UNEXTRACTABLE 1", DCMSEAL_OK, "C_UnwrapKey: CKR_KEY_UNEXTRACTABLE"},
        {"C_UnwrapKey SENSITIVE_IGNORED 2", DCMSEAL_OK, "C_UnwrapKey: the unwrapped key's CKA_VALUE"},
        /* this object only: the answer to a key of the wrong length too,
         * with CKA_VALUE_LEN in the template */
        {"C_UnwrapKey 0x13 1", DCMSEAL_OK, NULL}, /* ATTRIBUTE_VALUE_INVALID */
        {"C_UnwrapKey CKR_TEMPLATE_INCONSISTENT 1", DCMSEAL_OK, NULL},
        /* this object only: the host path tells bad bytes from trouble */
        {"C_UnwrapKey CKR_GENERAL_ERROR 1", DCMSEAL_OK, NULL},
        /* no fallback */
        {"C_UnwrapKey 0x110 1", DCMSEAL_E_AUTH, NULL}, /* WRAPPED_KEY_INVALID */
        {"C_UnwrapKey 0x68 1", DCMSEAL_E_KEY, NULL},  /* KEY_FUNCTION_NOT_PERMITTED */
        {"C_UnwrapKey CKR_DEVICE_ERROR 1000", DCMSEAL_E_TOKEN, NULL},
    };
    dcmseal_error err;
    uint8_t dek[32] = {4, 5, 6}, got[64], w[DCMSEAL_WRAPPED_MAX], w2[DCMSEAL_WRAPPED_MAX];
    size_t wlen = 0, w2len = 0, glen = 0;
    dcmseal_oaep used = DCMSEAL_OAEP_AUTO, used2;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *what = cases[i].plan[0] ? cases[i].plan : "no fault";
        dcmseal_token_t *tok = NULL;
        dcmseal_session_t *s = NULL;
        char line[96];
        int in_token = -1;
        if (!shim_open(&tok, &s))
            goto next;
        plan("");
        EXPECT(dcmseal_kek_wrap(s, w, sizeof w, &wlen, &used, alpha, DCMSEAL_OAEP_AUTO, dek, 32,
                                &err),
               DCMSEAL_OK, err, "rewrap classes: wrap");
        snprintf(line, sizeof line, "%s\n", cases[i].plan);
        plan(line);
        dcmseal_status st = dcmseal_kek_rewrap(s, w2, sizeof w2, &w2len, &used2, &in_token, alpha,
                                               used, w, wlen, beta, DCMSEAL_OAEP_AUTO, &err);
        const char *why = dcmseal_session_get0_rewrap_refusal(s);
        CHECK(st == cases[i].want, "%s: %s (%s), want %s", what, dcmseal_status_name(st),
              st ? err.message : "", dcmseal_status_name(cases[i].want));
        CHECK(cases[i].refusal == NULL ? why == NULL
                                       : why != NULL && strstr(why, cases[i].refusal) == why,
              "%s: refusal '%s', want '%s'", what, why ? why : "(none)",
              cases[i].refusal ? cases[i].refusal : "(none)");
        if (st == DCMSEAL_OK) {
            CHECK(in_token == (cases[i].plan[0] == '\0'), "%s: in_token %d", what, in_token);
            EXPECT(dcmseal_kek_unwrap(s, got, sizeof got, &glen, beta, used2, w2, w2len, &err),
                   DCMSEAL_OK, err, "rewrap classes: unwrap the result");
            CHECK(glen == 32 && memcmp(got, dek, 32) == 0, "%s: round trip", what);
        }
        /* Decided once: a refused token is not asked again (C_UnwrapKey
         * would fail now), an undecided or in-token one is. */
        plan("C_UnwrapKey CKR_DEVICE_ERROR 1000\n");
        st = dcmseal_kek_rewrap(s, w2, sizeof w2, &w2len, &used2, &in_token, alpha, used, w, wlen,
                                beta, DCMSEAL_OAEP_AUTO, &err);
        CHECK(why != NULL ? st == DCMSEAL_OK && in_token == 0 : st == DCMSEAL_E_TOKEN,
              "%s: the next rewrap: %s, in_token %d", what, dcmseal_status_name(st), in_token);
    next:
        plan("");
        dcmseal_session_free(s);
        dcmseal_token_free(tok);
    }
    CHECK(raw_session_secrets() == 0, "session secret keys left after the rewrap classes: %lu",
          (unsigned long)raw_session_secrets());
}

/* SoftHSM keeps its objects in files: the directory going away is what a
 * token being pulled looks like to it. */
static void test_moved(dcmseal_session_t *s, const dcmseal_kek_info *alpha)
{
    dcmseal_error err;
    uint8_t dek[32] = {5}, got[64], w[DCMSEAL_WRAPPED_MAX];
    size_t wlen = 0, glen = 0;
    dcmseal_oaep used = DCMSEAL_OAEP_AUTO;
    dcmseal_kek_info info;
    dcmseal_status st;
    char away[256];

    snprintf(away, sizeof away, "%s", path_in("tokens.away"));
    EXPECT(dcmseal_kek_wrap(s, w, sizeof w, &wlen, &used, alpha, DCMSEAL_OAEP_AUTO, dek, 32, &err),
           DCMSEAL_OK, err, "wrap before the move");
    CHECK(rename(path_in("tokens"), away) == 0, "move the token directory away");
    st = dcmseal_kek_unwrap(s, got, sizeof got, &glen, alpha, used, w, wlen, &err);
    printf("# moved, unwrap: %s: %s\n", dcmseal_status_name(st), st ? err.message : "");
    CHECK(st == DCMSEAL_OK || st == DCMSEAL_E_TOKEN || st == DCMSEAL_E_KEY,
          "moved, unwrap: %s", dcmseal_status_name(st));
    st = dcmseal_kek_find(s, &info, "beta", 1, &err);
    printf("# moved, find: %s: %s\n", dcmseal_status_name(st), st ? err.message : "");
    CHECK(st == DCMSEAL_OK || st == DCMSEAL_E_TOKEN || st == DCMSEAL_E_KEY, "moved, find: %s",
          dcmseal_status_name(st));
    st = try_open(&err, "pkcs11:token=" LABEL "?module-path=" MODULE "&pin-source=file:%s",
                  path_in("badpin"));
    printf("# moved, open with a wrong PIN: %s: %s\n", dcmseal_status_name(st), err.message);
    CHECK(st == DCMSEAL_E_TOKEN, "moved, wrong PIN: %s", dcmseal_status_name(st));
    CHECK(rename(away, path_in("tokens")) == 0, "move the token directory back");
    EXPECT(dcmseal_kek_unwrap(s, got, sizeof got, &glen, alpha, used, w, wlen, &err), DCMSEAL_OK,
           err, "unwrap after the move back");
    CHECK(glen == 32 && memcmp(got, dek, 32) == 0, "round trip after the move back");
    EXPECT(dcmseal_kek_find(s, &info, "beta", 1, &err), DCMSEAL_OK, err,
           "find after the move back");
}

struct worker {
    dcmseal_token_t *tok;
    const dcmseal_kek_info *kek;
    int ok;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    dcmseal_session_t *s = NULL;
    dcmseal_error err;
    uint8_t dek[32], got[32], wr[DCMSEAL_WRAPPED_MAX];
    size_t wlen, glen;
    dcmseal_oaep used;
    if (dcmseal_session_open(&s, w->tok, &err) != DCMSEAL_OK)
        return NULL;
    w->ok = 1;
    for (int i = 0; i < 10 && w->ok; i++) {
        RAND_bytes(dek, sizeof dek);
        w->ok = dcmseal_kek_wrap(s, wr, sizeof wr, &wlen, &used, w->kek, DCMSEAL_OAEP_AUTO,
                                 dek, 32, &err) == DCMSEAL_OK &&
                dcmseal_kek_unwrap(s, got, sizeof got, &glen, w->kek, used, wr, wlen, &err) ==
                    DCMSEAL_OK &&
                glen == 32 && memcmp(dek, got, 32) == 0;
    }
    dcmseal_session_free(s);
    return NULL;
}

static void test_threads(dcmseal_token_t *tok, const dcmseal_kek_info *kek)
{
    pthread_t th[4];
    struct worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){tok, kek, 0};
        pthread_create(&th[i], NULL, worker_run, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(w[i].ok, "thread %d", i);
    }
}

int main(void)
{
    char uri[512];
    dcmseal_error err;
    dcmseal_token_t *tok = NULL;
    dcmseal_session_t *s = NULL;
    dcmseal_kek_info alpha, beta, delta;
    int rc;

    snprintf(dir, sizeof dir, "/tmp/test_pkcs11.XXXXXX");
    if (softhsm_token_new(dir, LABEL, PIN) != 0)
        return 2;
    unsetenv("DCMSEAL_PIN");
    /* Fast failures where the token is gone for good (test_moved). */
    setenv("DCMSEAL_RETRY_MAX", "2", 1);
    write_file(path_in("pin"), PIN "\n");
    write_file(path_in("badpin"), BAD_PIN "\n");

    test_open();

    snprintf(uri, sizeof uri,
             "pkcs11:token=" LABEL "?module-path=" MODULE "&pin-source=file:%s",
             path_in("pin"));
    EXPECT(dcmseal_token_open(&tok, uri, &err), DCMSEAL_OK, err, "open");
    if (tok != NULL)
        EXPECT(dcmseal_session_open(&s, tok, &err), DCMSEAL_OK, err, "session");
    if (s != NULL && raw_open()) {
        test_keys(s, &alpha, &beta, &delta);
        test_wrap(s, &alpha, &beta, &delta);
        test_policy(s, &alpha);
        test_hardened(s, &alpha);
        test_threads(tok, &alpha);
        test_reopen(s, &alpha);
        test_versions(s);
        test_min_version(&tok, &s, uri);
        test_retention(s);
        test_rewrap(s, &alpha, &beta);
        test_faults(&alpha, &beta);
        test_classes_crypt(&alpha);
        test_classes_rewrap(&alpha, &beta);
        test_moved(s, &alpha);
    } else {
        CHECK(0, "no session, no raw module access");
    }
    dcmseal_session_free(s);
    dcmseal_token_free(tok);

    softhsm_token_remove(dir);
    rc = check_done("test_pkcs11");
    return rc;
}
