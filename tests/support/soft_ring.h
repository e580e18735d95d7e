/* A key ring whose KEK is an RSA key in host memory: lets engine tests run
 * without a token, and lets known-answer vectors be checked anywhere. Never
 * for production: the whole point of dcmseal is that KEKs stay in a token. */
#ifndef DCMSEAL_TEST_SOFT_RING_H
#define DCMSEAL_TEST_SOFT_RING_H

#include <dcmseal/engine.h>

typedef struct soft_ring {
    dcmseal_keyring ring;
    void *pkey;            /* EVP_PKEY * */
    dcmseal_wrap_meta meta;
    uint8_t last_dek[DCMSEAL_DEK_LEN]; /* what the last wrap saw, for tests */
    int wraps, unwraps;
    /* Wraps and unwraps handed a DEK buffer outside OpenSSL's secure heap
     * while that heap was initialised. */
    int insecure_deks;
    /* Unwraps what this ring's own key cannot: a ring for the new KEK with
     * the old ring here can rewrap (on the host). */
    struct soft_ring *previous;
    /* Origin (FORMAT.md "Origin proof"): a host HMAC key standing in for
     * the token's origin key of this ring's KEK, when |has_origin|; the
     * name's require-origin policy; the name's concealment key. */
    int has_origin, require_origin;
    uint8_t origin_key[32], conceal_key[32];
    int proofs, checks; /* calls of prove and check_proof, for tests */
} soft_ring;

/* Loads the PEM private key at |pem_path|, or makes a fresh RSA-2048 key
 * when it is NULL; 0 on success. */
int soft_ring_init(soft_ring *r, const char *pem_path, const char *name,
                   uint32_t version, dcmseal_oaep oaep);
void soft_ring_free(soft_ring *r);

/* Gives the ring's KEK an origin key: |key|, or a random one when NULL. */
void soft_ring_set_origin(soft_ring *r, const uint8_t key[32]);

#endif
