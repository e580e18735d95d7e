#include "fixture.h"

#include <string.h>

#include <openssl/crypto.h>

/* Published with the fuzz targets on purpose: it protects nothing. */
static const uint8_t FIXED_DEK[DCMSEAL_DEK_LEN] = "dcmseal fuzz fixture: fixed DEK";
static const uint8_t FIXED_SALT[DCMSEAL_SALT_LEN] = "dcmseal fuzz fixture: the salt";

#define MEMO_SLOTS 64

typedef struct memo_entry {
    int used;
    dcmseal_oaep oaep;
    size_t wrapped_len;
    uint8_t wrapped[DCMSEAL_WRAPPED_MAX];
    dcmseal_status st;
    uint8_t dek[DCMSEAL_DEK_LEN];
} memo_entry;

static memo_entry memo[MEMO_SLOTS];

static size_t memo_index(dcmseal_oaep oaep, const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u ^ (uint32_t)oaep; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h % MEMO_SLOTS;
}

static dcmseal_status memo_unwrap(void *self, uint8_t dek[DCMSEAL_DEK_LEN],
                                  const dcmseal_wrap_meta *meta, const uint8_t *wrapped,
                                  size_t wrapped_len, dcmseal_error *err)
{
    fuzz_fixture *f = self;
    /* The fingerprint check is cheap and must stay the soft ring's. */
    if (memcmp(meta->kek_fingerprint, f->soft.meta.kek_fingerprint,
               DCMSEAL_KEK_FINGERPRINT_LEN) != 0 || wrapped_len > DCMSEAL_WRAPPED_MAX)
        return f->soft.ring.unwrap(f->soft.ring.self, dek, meta, wrapped, wrapped_len, err);
    memo_entry *e = &memo[memo_index(meta->oaep, wrapped, wrapped_len)];
    if (!e->used || e->oaep != meta->oaep || e->wrapped_len != wrapped_len ||
        memcmp(e->wrapped, wrapped, wrapped_len) != 0) {
        e->used = 1;
        e->oaep = meta->oaep;
        e->wrapped_len = wrapped_len;
        memcpy(e->wrapped, wrapped, wrapped_len);
        e->st = f->soft.ring.unwrap(f->soft.ring.self, e->dek, meta, wrapped, wrapped_len,
                                    NULL);
    }
    if (e->st != DCMSEAL_OK)
        return dcmseal_fail(err, e->st, "authentication failed (unwrap)");
    memcpy(dek, e->dek, DCMSEAL_DEK_LEN);
    return DCMSEAL_OK;
}

static dcmseal_status memo_wrap(void *self, dcmseal_wrap_meta *meta, uint8_t *out,
                                size_t out_cap, size_t *out_len,
                                const uint8_t dek[DCMSEAL_DEK_LEN], dcmseal_error *err)
{
    fuzz_fixture *f = self;
    return f->soft.ring.wrap(f->soft.ring.self, meta, out, out_cap, out_len, dek, err);
}

dcmseal_status fuzz_fixture_encryptor(fuzz_fixture *f, dcmseal_encryptor_t **enc,
                                      uint8_t preamble[DCMSEAL_PREAMBLE_LEN],
                                      uint32_t segment_size, const dcmseal_identity *id)
{
    const dcmseal_encrypt_params p = {
        .keyring = &f->ring, .segment_size = segment_size, .identity = id};
    return dcmseal_encrypt_init_fixed(enc, preamble, &p, FIXED_DEK, FIXED_SALT, NULL);
}

int fuzz_fixture_init(fuzz_fixture *f)
{
    dcmseal_encryptor_t *enc = NULL;
    memset(f, 0, sizeof *f);
    if (soft_ring_init(&f->soft, KAT_KEK_PEM, "kat", 1, DCMSEAL_OAEP_SHA256) != 0)
        return -1;
    f->ring = (dcmseal_keyring){.self = f, .wrap = memo_wrap, .unwrap = memo_unwrap};
    if (fuzz_fixture_encryptor(f, &enc, f->preamble, FUZZ_SEGMENT, NULL) != DCMSEAL_OK)
        return -1;
    dcmseal_encryptor_free(enc);
    return 0;
}
