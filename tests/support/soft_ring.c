#include "soft_ring.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

static EVP_PKEY_CTX *oaep_ctx(soft_ring *r, int encrypt)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(r->pkey, NULL);
    const EVP_MD *md = r->meta.oaep == DCMSEAL_OAEP_SHA256 ? EVP_sha256() : EVP_sha1();
    if (c == NULL || (encrypt ? EVP_PKEY_encrypt_init(c) : EVP_PKEY_decrypt_init(c)) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(c, md) != 1 || EVP_PKEY_CTX_set_rsa_mgf1_md(c, md) != 1) {
        EVP_PKEY_CTX_free(c);
        return NULL;
    }
    return c;
}

static void note_dek(soft_ring *r, const uint8_t *dek)
{
    if (CRYPTO_secure_malloc_initialized() && !CRYPTO_secure_allocated(dek))
        r->insecure_deks++;
}

static dcmseal_status wrap(void *self, dcmseal_wrap_meta *meta, uint8_t *out, size_t cap,
                           size_t *len, const uint8_t dek[DCMSEAL_DEK_LEN],
                           dcmseal_error *err)
{
    soft_ring *r = self;
    EVP_PKEY_CTX *c = oaep_ctx(r, 1);
    note_dek(r, dek);
    *len = cap;
    int ok = c != NULL && EVP_PKEY_encrypt(c, out, len, dek, DCMSEAL_DEK_LEN) == 1;
    EVP_PKEY_CTX_free(c);
    if (!ok)
        return dcmseal_fail(err, DCMSEAL_E_KEY, "soft ring: wrap failed");
    *meta = r->meta;
    memcpy(r->last_dek, dek, DCMSEAL_DEK_LEN);
    r->wraps++;
    return DCMSEAL_OK;
}

static dcmseal_status unwrap(void *self, uint8_t dek[DCMSEAL_DEK_LEN],
                             const dcmseal_wrap_meta *meta, const uint8_t *wrapped,
                             size_t wrapped_len, dcmseal_error *err)
{
    soft_ring *r = self;
    uint8_t buf[512];
    size_t n = sizeof buf;
    r->unwraps++;
    note_dek(r, dek);
    if (memcmp(meta->kek_fingerprint, r->meta.kek_fingerprint, DCMSEAL_KEK_FINGERPRINT_LEN) != 0)
        return r->previous != NULL
                   ? unwrap(r->previous, dek, meta, wrapped, wrapped_len, err)
                   : dcmseal_fail(err, DCMSEAL_E_KEY, "soft ring: not my key");
    soft_ring tmp = *r;
    tmp.meta.oaep = meta->oaep;
    EVP_PKEY_CTX *c = oaep_ctx(&tmp, 0);
    int ok = c != NULL && EVP_PKEY_decrypt(c, buf, &n, wrapped, wrapped_len) == 1 &&
             n == DCMSEAL_DEK_LEN;
    EVP_PKEY_CTX_free(c);
    if (ok)
        memcpy(dek, buf, DCMSEAL_DEK_LEN);
    OPENSSL_cleanse(buf, sizeof buf);
    return ok ? DCMSEAL_OK : dcmseal_fail(err, DCMSEAL_E_AUTH, "authentication failed (unwrap)");
}

static dcmseal_status current(void *self, dcmseal_wrap_meta *meta, dcmseal_error *err)
{
    (void)err;
    *meta = ((soft_ring *)self)->meta;
    return DCMSEAL_OK;
}

/* The ring in |r|'s chain whose KEK is the one |meta| names. */
static soft_ring *holder(soft_ring *r, const dcmseal_wrap_meta *meta)
{
    for (; r != NULL; r = r->previous)
        if (memcmp(meta->kek_fingerprint, r->meta.kek_fingerprint, DCMSEAL_KEK_FINGERPRINT_LEN) ==
                0 &&
            meta->kek_version == r->meta.kek_version &&
            strcmp(meta->kek_name, r->meta.kek_name) == 0)
            return r;
    return NULL;
}

static dcmseal_status origin(void *self, dcmseal_origin_policy *out,
                             const dcmseal_wrap_meta *meta, dcmseal_error *err)
{
    soft_ring *h = holder(self, meta);
    if (h == NULL)
        return dcmseal_fail(err, DCMSEAL_E_KEY, "soft ring: not my key");
    out->has_key = h->has_origin;
    out->required = h->require_origin;
    return DCMSEAL_OK;
}

static void hmac(uint8_t out[32], const uint8_t key[32], const uint8_t *msg, size_t len)
{
    unsigned int n = 32;
    HMAC(EVP_sha256(), key, 32, msg, len, out, &n);
}

static dcmseal_status prove(void *self, uint8_t proof[DCMSEAL_PROOF_LEN],
                            const dcmseal_wrap_meta *meta, const uint8_t *msg, size_t len,
                            dcmseal_error *err)
{
    soft_ring *h = holder(self, meta);
    ((soft_ring *)self)->proofs++;
    if (h == NULL || !h->has_origin)
        return dcmseal_fail(err, DCMSEAL_E_KEY, "soft ring: no origin key");
    hmac(proof, h->origin_key, msg, len);
    return DCMSEAL_OK;
}

static dcmseal_status check_proof(void *self, const dcmseal_wrap_meta *meta, const uint8_t *msg,
                                  size_t len, const uint8_t proof[DCMSEAL_PROOF_LEN],
                                  dcmseal_error *err)
{
    soft_ring *h = holder(self, meta);
    uint8_t want[32];
    ((soft_ring *)self)->checks++;
    if (h == NULL)
        return dcmseal_fail(err, DCMSEAL_E_KEY, "soft ring: not my key");
    if (!h->has_origin)
        return dcmseal_fail(err, DCMSEAL_E_KEY, "soft ring: no origin key");
    hmac(want, h->origin_key, msg, len);
    return CRYPTO_memcmp(want, proof, sizeof want) == 0
               ? DCMSEAL_OK
               : dcmseal_fail(err, DCMSEAL_E_AUTH, "not made with this archive's keys");
}

static dcmseal_status conceal(void *self, uint8_t mac[DCMSEAL_PROOF_LEN], const char *name,
                              const uint8_t *msg, size_t len, dcmseal_error *err)
{
    soft_ring *r = self;
    if (strcmp(name, r->meta.kek_name) != 0)
        return dcmseal_fail(err, DCMSEAL_E_KEY, "soft ring: no concealment key for '%s'", name);
    hmac(mac, r->conceal_key, msg, len);
    return DCMSEAL_OK;
}

void soft_ring_set_origin(soft_ring *r, const uint8_t key[32])
{
    if (key != NULL)
        memcpy(r->origin_key, key, 32);
    else
        RAND_bytes(r->origin_key, 32);
    r->has_origin = 1;
}

int soft_ring_init(soft_ring *r, const char *pem_path, const char *name, uint32_t version,
                   dcmseal_oaep oaep)
{
    memset(r, 0, sizeof *r);
    if (pem_path != NULL) {
        FILE *f = fopen(pem_path, "r");
        if (f == NULL)
            return -1;
        r->pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
    } else {
        r->pkey = EVP_RSA_gen(2048);
    }
    if (r->pkey == NULL)
        return -1;
    uint8_t *der = NULL;
    int der_len = i2d_PUBKEY(r->pkey, &der);
    if (der_len <= 0)
        return -1;
    SHA256(der, (size_t)der_len, r->meta.kek_fingerprint);
    OPENSSL_free(der);
    snprintf(r->meta.kek_name, sizeof r->meta.kek_name, "%s", name);
    r->meta.kek_version = version;
    r->meta.oaep = oaep;
    r->ring.self = r;
    r->ring.wrap = wrap;
    r->ring.unwrap = unwrap;
    r->ring.current = current;
    r->ring.origin = origin;
    r->ring.prove = prove;
    r->ring.check_proof = check_proof;
    r->ring.conceal = conceal;
    return RAND_bytes(r->conceal_key, sizeof r->conceal_key) == 1 ? 0 : -1;
}

void soft_ring_free(soft_ring *r)
{
    EVP_PKEY_free(r->pkey);
    r->pkey = NULL;
}
