/* Private to engine/: shared by the stream, reader and header code. */
#ifndef DCMSEAL_ENGINE_INTERNAL_H
#define DCMSEAL_ENGINE_INTERNAL_H

#include <openssl/evp.h>

#include <dcmseal/engine.h>
#include <private/guard.h>

#define DCMSEAL_SALT_LEN 32
#define DCMSEAL_COMMIT_LEN 32
#define DCMSEAL_IDTAG_LEN 32
#define DCMSEAL_NONCE_LEN 12
#define DCMSEAL_HEADER_FLAG_DICOM 0x1u
#define DCMSEAL_HEADER_FLAG_META 0x2u /* v2: a metadata block follows the slots */

/* The metadata block (FORMAT.md "Metadata block"): its plain text is a
 * whole number of 256-byte blocks, 20 bytes of fields and the path. */
#define DCMSEAL_META_BLOCK 256u
#define DCMSEAL_META_FIELDS 20u
#define DCMSEAL_META_PLAIN_MAX (17u * DCMSEAL_META_BLOCK) /* fields + 4095-byte path */
#define DCMSEAL_META_MAX (DCMSEAL_META_PLAIN_MAX + DCMSEAL_TAG_LEN)

/* Origin proofs (FORMAT.md "Origin proof"): what a slot's origin field
 * holds, and the message a proof is computed over. */
#define DCMSEAL_SLOT_ORIGIN_NONE 0u
#define DCMSEAL_SLOT_ORIGIN_HMAC 1u
/* A proof covers the slot's bytes 16..632: KEK version, mechanism, name,
 * fingerprint and wrapped key. Not the generation, which only orders the
 * two slots for torn-write recovery and is not a property of the object. */
#define DCMSEAL_SLOT_PROVED_OFF 16u
#define DCMSEAL_SLOT_PROVED_END 632u
#define DCMSEAL_SLOT_PROVED_LEN (DCMSEAL_SLOT_PROVED_END - DCMSEAL_SLOT_PROVED_OFF)
#define DCMSEAL_ORIGIN_LABEL "dcmseal v2 origin"
#define DCMSEAL_ORIGIN_MSG_LEN \
    (sizeof DCMSEAL_ORIGIN_LABEL - 1 + DCMSEAL_HEADER_LEN + DCMSEAL_SLOT_PROVED_LEN)

/* Plain-text buffers are wiped up to the most that was ever in them, not
 * their whole capacity: most objects are far smaller than a chunk or a
 * segment, and wiping (and first touching) megabytes per object cost more
 * CPU than its RSA unwrap in tree runs. This raises |*hw| to |n|. */
static inline void dcmseal_high_water(size_t *hw, size_t n)
{
    if (n > *hw)
        *hw = n;
}

/* Keys derived from one DEK (FORMAT.md section "Key schedule"). Like every
 * DEK the engine holds, they live in OpenSSL's secure heap
 * (OPENSSL_secure_zalloc, OPENSSL_secure_clear_free): locked in memory and
 * left out of core dumps when the program initialised that heap
 * (CRYPTO_secure_malloc_init), ordinary memory wiped on free when not. */
typedef struct dcmseal_keys {
    uint8_t payload[32];
    uint8_t commitment[DCMSEAL_COMMIT_LEN];
    uint8_t identity[32];
    uint8_t meta[32]; /* format v2's metadata block */
} dcmseal_keys;

/* Everything in the immutable header, decoded. */
typedef struct dcmseal_header {
    uint16_t version;
    uint32_t flags;
    uint32_t segment_size;
    uint8_t salt[DCMSEAL_SALT_LEN];
    uint8_t identity_tag[DCMSEAL_IDTAG_LEN];
    uint8_t commitment[DCMSEAL_COMMIT_LEN];
    uint32_t meta_len; /* v2: the metadata block's length, 0 when none */
} dcmseal_header;

/* One key slot, decoded. */
typedef struct dcmseal_slot {
    uint64_t generation;
    dcmseal_wrap_meta meta;
    uint8_t wrapped[DCMSEAL_WRAPPED_MAX];
    size_t wrapped_len;
    uint8_t origin_kind; /* DCMSEAL_SLOT_ORIGIN_* */
    uint8_t proof[DCMSEAL_PROOF_LEN];
} dcmseal_slot;

/* ---- crypto.c ---- */

/* DCMSEAL_E_INTERNAL naming |what| and the newest OpenSSL error; clears the
 * OpenSSL error queue. */
dcmseal_status dcmseal_ossl_fail(dcmseal_error *err, const char *what);

dcmseal_status dcmseal_hkdf_sha256(uint8_t *out, size_t out_len,
                                   const uint8_t *ikm, size_t ikm_len,
                                   const uint8_t *salt, size_t salt_len,
                                   const uint8_t *info, size_t info_len,
                                   dcmseal_error *err);

/* K_payload, C and K_id; K_meta too with |with_meta| (else it is left as
 * it was). */
dcmseal_status dcmseal_keys_derive(dcmseal_keys *keys,
                                   const uint8_t dek[DCMSEAL_DEK_LEN],
                                   const uint8_t salt[DCMSEAL_SALT_LEN], int with_meta,
                                   dcmseal_error *err);

/* HMAC-SHA256 over the canonical identity context; |id| NULL means empty. */
dcmseal_status dcmseal_identity_tag(uint8_t tag[DCMSEAL_IDTAG_LEN],
                                    const dcmseal_keys *keys,
                                    const dcmseal_identity *id,
                                    dcmseal_error *err);

/* AES-256-GCM with a 96-bit nonce and 128-bit tag, key schedule kept across
 * calls. |tag| is written by seal and read by open; open writes plain text to
 * |out| and wipes it again when the tag does not match. */
dcmseal_status dcmseal_gcm_init(EVP_CIPHER_CTX **ctx, const uint8_t key[32],
                                int encrypt, dcmseal_error *err);
dcmseal_status dcmseal_gcm_seal(EVP_CIPHER_CTX *ctx, uint8_t *out,
                                uint8_t tag[DCMSEAL_TAG_LEN],
                                const uint8_t nonce[DCMSEAL_NONCE_LEN],
                                const uint8_t *aad, size_t aad_len,
                                const uint8_t *in, size_t in_len,
                                dcmseal_error *err);
dcmseal_status dcmseal_gcm_open(EVP_CIPHER_CTX *ctx, uint8_t *out,
                                const uint8_t nonce[DCMSEAL_NONCE_LEN],
                                const uint8_t *aad, size_t aad_len,
                                const uint8_t *in, size_t in_len,
                                const uint8_t tag[DCMSEAL_TAG_LEN],
                                dcmseal_error *err);

/* STREAM nonce: 88-bit big-endian segment index, then the last-segment flag. */
void dcmseal_segment_nonce(uint8_t nonce[DCMSEAL_NONCE_LEN], uint64_t index,
                           int last);

/* ---- header.c ---- */

void dcmseal_header_encode(uint8_t out[DCMSEAL_HEADER_LEN],
                           const dcmseal_header *h);
dcmseal_status dcmseal_header_decode(dcmseal_header *h,
                                     const uint8_t in[DCMSEAL_HEADER_LEN],
                                     dcmseal_error *err);
void dcmseal_slot_encode(uint8_t out[DCMSEAL_SLOT_LEN], const dcmseal_slot *s);
/* 1 when the slot is intact, 0 when it is all zero (never written), -1 when
 * it is damaged (bad checksum or malformed). */
int dcmseal_slot_decode(dcmseal_slot *s, const uint8_t in[DCMSEAL_SLOT_LEN]);

/* Parses a whole preamble: header, both slots, picks the intact slot with the
 * highest generation. */
dcmseal_status dcmseal_preamble_decode(dcmseal_header *h, dcmseal_slot *slot,
                                       dcmseal_header_info *info,
                                       const uint8_t *in, size_t len,
                                       dcmseal_error *err);

/* ---- origin.c ---- */

/* The message an origin proof is computed over: the label, the immutable
 * header, and bytes DCMSEAL_SLOT_PROVED_OFF.._END of the encoded slot. */
void dcmseal_origin_message(uint8_t msg[DCMSEAL_ORIGIN_MSG_LEN],
                            const uint8_t header[DCMSEAL_HEADER_LEN],
                            const uint8_t slot[DCMSEAL_SLOT_LEN]);

/* FORMAT.md "Reading rules" step 3: checks the proof of |slot| (|raw| its
 * encoding) over |header| through |ring|, or, when it has none, that this
 * is allowed (format v1, and the name does not require origin). |*origin|
 * becomes VERIFIED or NONE. */
dcmseal_status dcmseal_origin_check(dcmseal_origin *origin,
                                    const uint8_t header[DCMSEAL_HEADER_LEN],
                                    const dcmseal_header *h, const dcmseal_slot *slot,
                                    const uint8_t raw[DCMSEAL_SLOT_LEN],
                                    const dcmseal_keyring *ring, dcmseal_error *err);

/* Gives |slot| an origin proof under its KEK's origin key, over |header|;
 * |raw| receives the slot's final encoding. */
dcmseal_status dcmseal_origin_prove(dcmseal_slot *slot, uint8_t raw[DCMSEAL_SLOT_LEN],
                                    const uint8_t header[DCMSEAL_HEADER_LEN],
                                    const dcmseal_keyring *ring, dcmseal_error *err);

/* What |ring| says about the origin keys of |meta|'s KEK ({0, 0} for a ring
 * without origin keys). */
dcmseal_status dcmseal_origin_policy_of(dcmseal_origin_policy *pol,
                                        const dcmseal_keyring *ring,
                                        const dcmseal_wrap_meta *meta, dcmseal_error *err);

/* ---- meta.c ---- */

/* The length of the metadata block that holds |m| (tag included). */
uint32_t dcmseal_meta_len(const dcmseal_meta *m);
/* Seals |m| into |out| (dcmseal_meta_len(m) bytes) under |keys|, AAD
 * |header|. */
dcmseal_status dcmseal_meta_seal(uint8_t *out, const dcmseal_meta *m, const dcmseal_keys *keys,
                                 const uint8_t header[DCMSEAL_HEADER_LEN], dcmseal_error *err);
/* Opens the metadata block |in| (|len| bytes, as the header says) and
 * parses it into |m|. DCMSEAL_E_AUTH when it does not authenticate or parse. */
dcmseal_status dcmseal_meta_open(dcmseal_meta *m, const uint8_t *in, size_t len,
                                 const dcmseal_keys *keys,
                                 const uint8_t header[DCMSEAL_HEADER_LEN], dcmseal_error *err);
/* The plain text of a metadata block and back; decode returns 0 when |in|
 * is not one a writer makes. Exposed for the fuzzer. */
size_t dcmseal_meta_encode(uint8_t out[DCMSEAL_META_PLAIN_MAX], const dcmseal_meta *m);
int dcmseal_meta_decode(dcmseal_meta *m, const uint8_t *in, size_t len);

/* ---- open.c: shared by the decryptor, the reader and rewrap ---- */

/* Checks the origin of the object whose preamble is |pre| (decoded into |h|
 * and |slot|, |active| the slot's index), unwraps |slot|'s DEK through
 * |ring|, derives the keys and checks the key commitment in constant time.
 * Wipes the DEK before returning. */
dcmseal_status dcmseal_open_keys(dcmseal_keys *keys, dcmseal_origin *origin,
                                 const uint8_t pre[DCMSEAL_PREAMBLE_LEN], int active,
                                 const dcmseal_header *h, const dcmseal_slot *slot,
                                 const dcmseal_keyring *ring, dcmseal_error *err);

/* ---- object.c ---- */

/* Authenticates the whole object in |fd| whose preamble is |pre| (as read
 * before): every segment, and the DICOM identity. Reads with pread. */
dcmseal_status dcmseal_authenticate_fd(int fd, const uint8_t pre[DCMSEAL_PREAMBLE_LEN],
                                       const dcmseal_keyring *ring, dcmseal_error *err);

/* ---- reader.c ---- */

/* A reader over the object in |fd| whose header |h| and AAD |aad| the caller
 * decoded and authenticated, opening segments with a copy of |gcm| (the
 * payload cipher): no second unwrap. */
dcmseal_status dcmseal_reader_open_cipher(dcmseal_reader_t **out, int fd,
                                          const dcmseal_header *h,
                                          const uint8_t aad[DCMSEAL_HEADER_LEN],
                                          const EVP_CIPHER_CTX *gcm, dcmseal_error *err);

/* ---- stream.c ---- */

/* A reader over the object in |fd| that |dec| has consumed the header of,
 * with |dec|'s keys (dcmseal_reader_open_cipher). DCMSEAL_E_USAGE before the
 * header. */
dcmseal_status dcmseal_decrypt_reader(dcmseal_reader_t **out, int fd,
                                      const dcmseal_decryptor_t *dec, dcmseal_error *err);

/* Test hook for known-answer vectors. */

/* dcmseal_encrypt_init with a caller-chosen DEK and salt. Only for
 * known-answer tests: reusing a DEK/salt pair destroys confidentiality. */
dcmseal_status dcmseal_encrypt_init_fixed(dcmseal_encryptor_t **out,
                                          uint8_t header[DCMSEAL_PREAMBLE_LEN],
                                          const dcmseal_encrypt_params *params,
                                          const uint8_t dek[DCMSEAL_DEK_LEN],
                                          const uint8_t salt[DCMSEAL_SALT_LEN],
                                          dcmseal_error *err);

#endif
