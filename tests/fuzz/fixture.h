/* The decryptor target's fixed key material, shared with the seed maker so
 * that the seeds it writes decrypt under the target's key ring:
 *  - the known-answer KEK (tests/vectors/kat-kek.pem, name "kat", v1,
 *    OAEP SHA-256) and its published origin key (tests/vectors/kat.txt) as
 *    a host key ring, so that the committed KAT objects (v1 and v2) and any
 *    object the seed maker seals open in the target;
 *  - a fixed DEK and salt, 4 KiB segments and no identity, so that the
 *    immutable header (the AAD of every segment) is the same in every run
 *    and a payload sealed once stays valid after the fixed preamble;
 *  - the same with a fixed metadata block, for the metadata mode. */
#ifndef DCMSEAL_FUZZ_FIXTURE_H
#define DCMSEAL_FUZZ_FIXTURE_H

#include "../../engine/internal.h"
#include "../support/soft_ring.h"

/* The smallest segment size: many segments per small input. */
#define FUZZ_SEGMENT DCMSEAL_SEGMENT_MIN

/* Input modes of the decrypt target (first byte, low bits). */
enum {
    FUZZ_MODE_WHOLE = 1,  /* the input is a whole object, preamble included */
    FUZZ_MODE_READER = 2, /* also open it for random access and compare */
    FUZZ_MODE_META = 4    /* not whole: the payload follows the fixed preamble
                             and metadata block of fuzz_fixture.meta_prefix */
};

/* The fixed metadata block's contents. */
extern const dcmseal_meta FUZZ_META;

typedef struct fuzz_fixture {
    soft_ring soft;
    /* The soft ring behind a memo of unwrap results: RSA-OAEP decryption
     * costs about a millisecond, and a fuzzer replays the same few slots. */
    dcmseal_keyring ring;
    uint8_t preamble[DCMSEAL_PREAMBLE_LEN];
    uint8_t meta_prefix[DCMSEAL_PREAMBLE_LEN + DCMSEAL_META_MAX];
    size_t meta_prefix_len;
} fuzz_fixture;

/* Loads the KAT KEK and makes the fixed preamble; 0 on success. */
int fuzz_fixture_init(fuzz_fixture *f);

/* Starts an encryptor with the fixed DEK and salt (the fixed preamble when
 * |id| and |meta| are NULL and |segment_size| is FUZZ_SEGMENT; with |meta|
 * FUZZ_META, the header of meta_prefix). */
dcmseal_status fuzz_fixture_encryptor(fuzz_fixture *f, dcmseal_encryptor_t **enc,
                                      uint8_t preamble[DCMSEAL_PREAMBLE_LEN],
                                      uint32_t segment_size, const dcmseal_identity *id,
                                      const dcmseal_meta *meta);

#endif
