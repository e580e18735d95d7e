/* Getting from a header to usable keys: origin, unwrap, derive, commit
 * (FORMAT.md "Reading rules", steps 3 to 6). */
#include <openssl/crypto.h>

#include "internal.h"

dcmseal_status dcmseal_open_keys(dcmseal_keys *keys, dcmseal_origin *origin,
                                 const uint8_t pre[DCMSEAL_PREAMBLE_LEN], int active,
                                 const dcmseal_header *h, const dcmseal_slot *slot,
                                 const dcmseal_keyring *ring, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    uint8_t *dek = OPENSSL_secure_malloc(DCMSEAL_DEK_LEN);
    DCMSEAL_ENSURE(ring != NULL && ring->unwrap != NULL, err, DCMSEAL_E_USAGE,
                   "no key ring to unwrap with");
    DCMSEAL_ENSURE(dek != NULL, err, DCMSEAL_E_INTERNAL, "out of secure memory");
    /* Origin first: the proof also covers the wrapped key, so a slot that
     * someone without the token made never reaches the KEK's private half
     * (no chosen ciphertexts for RSA-OAEP from forged objects). */
    DCMSEAL_GUARD(dcmseal_origin_check(origin, pre, h, slot,
                                       pre + DCMSEAL_HEADER_LEN + active * DCMSEAL_SLOT_LEN,
                                       ring, err));
    DCMSEAL_GUARD(ring->unwrap(ring->self, dek, &slot->meta, slot->wrapped,
                               slot->wrapped_len, err));
    DCMSEAL_GUARD(dcmseal_keys_derive(keys, dek, h->salt, h->meta_len != 0, err));
    /* Key commitment (FORMAT.md): without it a crafted slot could make one
     * ciphertext decrypt validly under two different DEKs. */
    DCMSEAL_ENSURE(CRYPTO_memcmp(keys->commitment, h->commitment,
                                 DCMSEAL_COMMIT_LEN) == 0,
                   err, DCMSEAL_E_AUTH, "authentication failed (key commitment)");
out:
    OPENSSL_secure_clear_free(dek, DCMSEAL_DEK_LEN);
    if (st != DCMSEAL_OK)
        OPENSSL_cleanse(keys, sizeof *keys);
    return st;
}
