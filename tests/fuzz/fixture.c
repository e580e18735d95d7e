#include "fixture.h"

#include <string.h>

#include <openssl/crypto.h>

/* Published with the fuzz targets on purpose: it protects nothing. */
static const uint8_t FIXED_DEK[DCMSEAL_DEK_LEN] = "dcmseal fuzz fixture: fixed DEK";
static const uint8_t FIXED_SALT[DCMSEAL_SALT_LEN] = "dcmseal fuzz fixture: the salt";
/* tests/vectors/kat.txt's origin_key: the KAT v2 objects open here too. */
static const uint8_t KAT_ORIGIN_KEY[32] = "dcmseal known-answer origin key";

const dcmseal_meta FUZZ_META = {.path = "fuzz/1.2.3.4/IM0001.dcm", .mode = 0640};

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

/* Origin proofs are host HMACs here, cheap enough to run every time. */
static dcmseal_status fwd_origin(void *self, dcmseal_origin_policy *out,
                                 const dcmseal_wrap_meta *meta, dcmseal_error *err)
{
    fuzz_fixture *f = self;
    return f->soft.ring.origin(f->soft.ring.self, out, meta, err);
}

static dcmseal_status fwd_prove(void *self, uint8_t proof[DCMSEAL_PROOF_LEN],
                                const dcmseal_wrap_meta *meta, const uint8_t *msg, size_t len,
                                dcmseal_error *err)
{
    fuzz_fixture *f = self;
    return f->soft.ring.prove(f->soft.ring.self, proof, meta, msg, len, err);
}

static dcmseal_status fwd_check(void *self, const dcmseal_wrap_meta *meta, const uint8_t *msg,
                                size_t len, const uint8_t proof[DCMSEAL_PROOF_LEN],
                                dcmseal_error *err)
{
    fuzz_fixture *f = self;
    return f->soft.ring.check_proof(f->soft.ring.self, meta, msg, len, proof, err);
}

dcmseal_status fuzz_fixture_encryptor(fuzz_fixture *f, dcmseal_encryptor_t **enc,
                                      uint8_t preamble[DCMSEAL_PREAMBLE_LEN],
                                      uint32_t segment_size, const dcmseal_identity *id,
                                      const dcmseal_meta *meta)
{
    const dcmseal_encrypt_params p = {
        .keyring = &f->ring, .segment_size = segment_size, .identity = id, .meta = meta};
    return dcmseal_encrypt_init_fixed(enc, preamble, &p, FIXED_DEK, FIXED_SALT, NULL);
}

int fuzz_fixture_init(fuzz_fixture *f)
{
    dcmseal_encryptor_t *enc = NULL;
    memset(f, 0, sizeof *f);
    if (soft_ring_init(&f->soft, KAT_KEK_PEM, "kat", 1, DCMSEAL_OAEP_SHA256) != 0)
        return -1;
    soft_ring_set_origin(&f->soft, KAT_ORIGIN_KEY);
    f->ring = (dcmseal_keyring){.self = f,
                                .wrap = memo_wrap,
                                .unwrap = memo_unwrap,
                                .origin = fwd_origin,
                                .prove = fwd_prove,
                                .check_proof = fwd_check};
    if (fuzz_fixture_encryptor(f, &enc, f->preamble, FUZZ_SEGMENT, NULL, NULL) != DCMSEAL_OK)
        return -1;
    dcmseal_encryptor_free(enc);
    /* The metadata block comes out with the first update. */
    size_t w = 0;
    if (fuzz_fixture_encryptor(f, &enc, f->meta_prefix, FUZZ_SEGMENT, NULL, &FUZZ_META) !=
            DCMSEAL_OK ||
        dcmseal_encrypt_update(enc, f->meta_prefix + DCMSEAL_PREAMBLE_LEN, DCMSEAL_META_MAX, &w,
                               NULL, 0, NULL) != DCMSEAL_OK) {
        dcmseal_encryptor_free(enc);
        return -1;
    }
    f->meta_prefix_len = DCMSEAL_PREAMBLE_LEN + w;
    dcmseal_encryptor_free(enc);
    return 0;
}
