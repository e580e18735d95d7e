/*
 * Known answers run by a real token, through dcmseal's own unwrap: for
 * tests/integration/vectors.sh, which says what to do on stdin, one command
 * a line:
 *
 *   key NAME VERSION PEMFILE        imports the RSA private key in PEMFILE
 *                                   as version VERSION of KEK NAME, both
 *                                   halves, with the attributes dcmseal's
 *                                   key policy asks for (private half
 *                                   sensitive, not extractable)
 *   unwrap OAEP EXPECT ID CT [MSG]  dcmseal_kek_unwrap of hex CT under the
 *                                   last key with OAEP (sha1 | sha256);
 *                                   EXPECT is ok (and the result must be
 *                                   hex MSG, possibly empty), or the status
 *                                   name it must fail with (auth, key, ...)
 *
 * The token is DCMSEAL_TOKEN's. Prints a line per failed expectation and a
 * count per EXPECT; exits 1 when any failed. dcmseal never imports keys:
 * this reaches into the module (pkcs11/internal.h) to do it for the test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "../../pkcs11/internal.h"
#include "check.h"

#define LINE_MAX_ 8192

static size_t unhex(uint8_t *out, size_t cap, const char *hex)
{
    size_t n = 0, len = strlen(hex);
    for (size_t i = 0; i + 1 < len && n < cap; i += 2) {
        unsigned v;
        if (sscanf(hex + i, "%2x", &v) != 1)
            break;
        out[n++] = (uint8_t)v;
    }
    return n;
}

/* The big-endian bytes of RSA parameter |name| of |pk| into |buf|. */
static CK_ULONG rsa_param(const EVP_PKEY *pk, const char *name, uint8_t *buf, size_t cap)
{
    BIGNUM *bn = NULL;
    int n = 0;
    if (EVP_PKEY_get_bn_param(pk, name, &bn) == 1 && BN_num_bytes(bn) <= (int)cap)
        n = BN_bn2bin(bn, buf);
    BN_clear_free(bn);
    return (CK_ULONG)n;
}

static int import_key(dcmseal_session_t *s, dcmseal_kek_info *kek, const char *name,
                      uint32_t version, const char *pem_path)
{
    static const CK_OBJECT_CLASS priv_cls = CKO_PRIVATE_KEY, pub_cls = CKO_PUBLIC_KEY;
    static const CK_KEY_TYPE rsa = CKK_RSA;
    static const CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    static uint8_t v[8][MODULUS_MAX];
    static const char *const params[8] = {
        OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
        OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
        OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
        OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
    };
    CK_ULONG len[8];
    char id[KEK_ID_MAX];
    CK_ULONG id_len = kek_id(id, name, version);
    CK_OBJECT_HANDLE h;
    dcmseal_error err;
    EVP_PKEY *pk = NULL;
    FILE *f = fopen(pem_path, "r");
    int ok = 0;
    if (f != NULL) {
        pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
    }
    if (pk == NULL) {
        CHECK(0, "%s: not an RSA private key", pem_path);
        return 0;
    }
    for (int i = 0; i < 8; i++)
        len[i] = rsa_param(pk, params[i], v[i], sizeof v[i]);
    EVP_PKEY_free(pk);
    CK_ATTRIBUTE priv[] = {
        {CKA_CLASS, (void *)&priv_cls, sizeof priv_cls},
        {CKA_KEY_TYPE, (void *)&rsa, sizeof rsa},
        {CKA_TOKEN, (void *)&yes, 1},
        {CKA_PRIVATE, (void *)&yes, 1},
        {CKA_SENSITIVE, (void *)&yes, 1},
        {CKA_EXTRACTABLE, (void *)&no, 1},
        {CKA_DECRYPT, (void *)&yes, 1},
        {CKA_UNWRAP, (void *)&yes, 1},
        {CKA_SIGN, (void *)&no, 1},
        {CKA_LABEL, (void *)name, strlen(name)},
        {CKA_ID, id, id_len},
        {CKA_MODULUS, v[0], len[0]},
        {CKA_PUBLIC_EXPONENT, v[1], len[1]},
        {CKA_PRIVATE_EXPONENT, v[2], len[2]},
        {CKA_PRIME_1, v[3], len[3]},
        {CKA_PRIME_2, v[4], len[4]},
        {CKA_EXPONENT_1, v[5], len[5]},
        {CKA_EXPONENT_2, v[6], len[6]},
        {CKA_COEFFICIENT, v[7], len[7]},
    };
    CK_ATTRIBUTE pub[] = {
        {CKA_CLASS, (void *)&pub_cls, sizeof pub_cls},
        {CKA_KEY_TYPE, (void *)&rsa, sizeof rsa},
        {CKA_TOKEN, (void *)&yes, 1},
        {CKA_ENCRYPT, (void *)&yes, 1},
        {CKA_WRAP, (void *)&yes, 1},
        {CKA_VERIFY, (void *)&no, 1},
        {CKA_LABEL, (void *)name, strlen(name)},
        {CKA_ID, id, id_len},
        {CKA_MODULUS, v[0], len[0]},
        {CKA_PUBLIC_EXPONENT, v[1], len[1]},
    };
    CK_FUNCTION_LIST *m = s->tok->mod;
    CK_RV rv = m->C_CreateObject(s->h, priv, sizeof priv / sizeof priv[0], &h);
    if (rv == CKR_OK)
        rv = m->C_CreateObject(s->h, pub, sizeof pub / sizeof pub[0], &h);
    CHECK(rv == CKR_OK, "importing %s as '%s' v%u: %s", pem_path, name, (unsigned)version,
          ckr_name(rv));
    if (rv == CKR_OK) {
        ok = dcmseal_kek_find(s, kek, name, version, &err) == DCMSEAL_OK;
        CHECK(ok, "'%s' v%u imported, but: %s", name, (unsigned)version, err.message);
    }
    OPENSSL_cleanse(v, sizeof v);
    return ok;
}

int main(void)
{
    static char line[LINE_MAX_];
    static const char *const names[] = {"ok", "usage", "format", "auth", "not-dicom",
                                        "key", "token", "io", "internal"};
    unsigned long counts[9] = {0};
    dcmseal_token_t *tok = NULL;
    dcmseal_session_t *s = NULL;
    dcmseal_kek_info kek;
    dcmseal_error err;
    int have_key = 0;
    const char *uri = getenv("DCMSEAL_TOKEN");
    if (uri == NULL || dcmseal_token_open(&tok, uri, &err) != DCMSEAL_OK ||
        dcmseal_session_open(&s, tok, &err) != DCMSEAL_OK) {
        printf("token_vectors: no token: %s\n", uri == NULL ? "set DCMSEAL_TOKEN" : err.message);
        dcmseal_token_free(tok);
        return 2;
    }
    while (fgets(line, sizeof line, stdin) != NULL) {
        char cmd[16], a[128], b[16], c[16], id[64];
        static char ct[LINE_MAX_], msg[LINE_MAX_];
        line[strcspn(line, "\n")] = '\0';
        if (sscanf(line, "%15s", cmd) != 1)
            continue;
        if (strcmp(cmd, "key") == 0 && sscanf(line, "key %127s %15s %4095s", a, b, ct) == 3) {
            have_key = import_key(s, &kek, a, (uint32_t)strtoul(b, NULL, 10), ct);
        } else if (strcmp(cmd, "unwrap") == 0 &&
                   sscanf(line, "unwrap %15s %15s %63s %8191s", b, c, id, ct) == 4) {
            static uint8_t ctb[DCMSEAL_WRAPPED_MAX + 16], want[DCMSEAL_WRAPPED_MAX],
                got[DCMSEAL_WRAPPED_MAX];
            dcmseal_oaep oaep = strcmp(b, "sha256") == 0 ? DCMSEAL_OAEP_SHA256 : DCMSEAL_OAEP_SHA1;
            size_t ct_len = unhex(ctb, sizeof ctb, ct), got_len = 0, want_len = 0;
            if (strcmp(c, "ok") == 0 && sscanf(line, "unwrap %*s %*s %*s %*s %8191s", msg) == 1)
                want_len = unhex(want, sizeof want, msg);
            if (!have_key) {
                CHECK(0, "%s: no key", id);
                continue;
            }
            dcmseal_status st =
                dcmseal_kek_unwrap(s, got, sizeof got, &got_len, &kek, oaep, ctb, ct_len, &err);
            counts[st < 9 ? st : 8]++;
            CHECK(strcmp(dcmseal_status_name(st), c) == 0, "%s: %s (%s), expected %s", id,
                  dcmseal_status_name(st), st ? err.message : "", c);
            CHECK(st != DCMSEAL_OK ||
                      (got_len == want_len && memcmp(got, want, want_len) == 0),
                  "%s: decrypted to other bytes", id);
            OPENSSL_cleanse(got, sizeof got);
        } else {
            CHECK(0, "token_vectors: bad line '%.60s'", line);
        }
    }
    for (int i = 0; i < 9; i++)
        if (counts[i] != 0)
            printf("token_vectors: %lu %s\n", counts[i], names[i]);
    dcmseal_session_free(s);
    dcmseal_token_free(tok);
    return check_done("token_vectors");
}
