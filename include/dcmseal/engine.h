/*
 * dcmseal/engine.h: envelope encryption of objects (DICOM or opaque).
 *
 * Each object gets a fresh random 256-bit data key (DEK), wrapped by a
 * key-encryption key (KEK) through a dcmseal_keyring and stored in one of two
 * header slots. The payload is cut into fixed-size segments, each sealed with
 * AES-256-GCM under a key derived from the DEK (HKDF-SHA256, per-object
 * salt), in the STREAM construction. docs/FORMAT.md is the normative layout.
 *
 * Streams follow init / update / final with caller-supplied buffers. After a
 * failure a stream refuses further input (returning the first error again)
 * and zeroes whatever output the failing call had written.
 *
 * Key material: each DEK (DCMSEAL_DEK_LEN bytes) and the keys derived from
 * it are allocated in OpenSSL's secure heap (OPENSSL_secure_zalloc) and
 * wiped when freed, and so is the DEK buffer handed to a dcmseal_keyring.
 * That works whether or not the program initialised the secure heap: call
 * CRYPTO_secure_malloc_init (e.g. 256 KiB, 32) before using the library to
 * have them locked in memory and left out of core dumps; without it they
 * live in ordinary memory, still wiped. The AES key schedule lives in
 * OpenSSL's own cipher context, which OpenSSL wipes on free.
 */
#ifndef DCMSEAL_ENGINE_H
#define DCMSEAL_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include <dcmseal/error.h>
#include <dcmseal/pkcs11.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DCMSEAL_FORMAT_V1 1              /* no origin proof, no metadata block */
#define DCMSEAL_FORMAT_V2 2              /* origin proof required; metadata block */
#define DCMSEAL_FORMAT_VERSION DCMSEAL_FORMAT_V2 /* what this build writes */
#define DCMSEAL_TAG_LEN 16
#define DCMSEAL_HEADER_LEN 128           /* immutable header */
#define DCMSEAL_SLOT_LEN 1024            /* one key slot */
#define DCMSEAL_PREAMBLE_LEN (DCMSEAL_HEADER_LEN + 2 * DCMSEAL_SLOT_LEN)
#define DCMSEAL_SEGMENT_DEFAULT (256u * 1024u)
#define DCMSEAL_SEGMENT_MIN 4096u
#define DCMSEAL_SEGMENT_MAX (16u * 1024u * 1024u)
#define DCMSEAL_PROOF_LEN 32             /* an origin proof: HMAC-SHA256 */

/* ---- Key rings: how the engine reaches a KEK ---------------------------- */

/* What a slot records about the KEK that wrapped the DEK. */
typedef struct dcmseal_wrap_meta {
    char kek_name[DCMSEAL_KEK_NAME_MAX + 1];
    uint32_t kek_version;
    dcmseal_oaep oaep;
    uint8_t kek_fingerprint[DCMSEAL_KEK_FINGERPRINT_LEN];
} dcmseal_wrap_meta;

/* What a key ring knows about the origin keys of a KEK (FORMAT.md "Origin
 * proof"). */
typedef struct dcmseal_origin_policy {
    int has_key;  /* the KEK version has an origin key: new objects get proofs */
    int required; /* the KEK's name refuses objects without a proof */
} dcmseal_origin_policy;

/* A small function table; the token adapter below is one implementation,
 * tests and plugins may supply others.
 *  - |wrap| wraps under the ring's current KEK and describes it in |meta|.
 *  - |unwrap| must refuse (DCMSEAL_E_KEY) a KEK whose fingerprint differs
 *    from |meta|'s, and return DCMSEAL_E_AUTH when the bytes do not decrypt.
 *  - |rewrap| (may be NULL: then unwrap + wrap on the host) moves a wrapped
 *    DEK from the KEK in |old_meta| to the ring's current KEK, without the
 *    DEK leaving the token where it can; |*in_token| says whether it did.
 *  - |current| describes the ring's current KEK (oaep is left AUTO), or
 *    fails with DCMSEAL_E_USAGE when the ring has none.
 * Origin proofs (FORMAT.md "Origin proof"); a ring without origin keys
 * leaves all four NULL, and then writes format v1 only and refuses v2:
 *  - |origin| says whether the KEK in |meta| has an origin key and whether
 *    its name requires proofs.
 *  - |prove| computes HMAC-SHA256 of |msg| with the origin key of the KEK in
 *    |meta| (name and version), where the key lives (the token).
 *  - |check_proof| checks one, failing with DCMSEAL_E_AUTH when it does not
 *    match; like |unwrap|, it refuses a KEK whose fingerprint differs from
 *    |meta|'s with DCMSEAL_E_KEY.
 *  - |conceal| computes HMAC-SHA256 of |msg| with the concealment key of
 *    the KEK name |name| (FORMAT.md "Concealed names"). */
typedef struct dcmseal_keyring {
    void *self;
    dcmseal_status (*wrap)(void *self, dcmseal_wrap_meta *meta, uint8_t *out,
                           size_t out_cap, size_t *out_len,
                           const uint8_t dek[DCMSEAL_DEK_LEN], dcmseal_error *err);
    dcmseal_status (*unwrap)(void *self, uint8_t dek[DCMSEAL_DEK_LEN],
                             const dcmseal_wrap_meta *meta, const uint8_t *wrapped,
                             size_t wrapped_len, dcmseal_error *err);
    dcmseal_status (*rewrap)(void *self, dcmseal_wrap_meta *meta, uint8_t *out,
                             size_t out_cap, size_t *out_len, int *in_token,
                             const dcmseal_wrap_meta *old_meta, const uint8_t *wrapped,
                             size_t wrapped_len, dcmseal_error *err);
    dcmseal_status (*current)(void *self, dcmseal_wrap_meta *meta, dcmseal_error *err);
    dcmseal_status (*origin)(void *self, dcmseal_origin_policy *out,
                             const dcmseal_wrap_meta *meta, dcmseal_error *err);
    dcmseal_status (*prove)(void *self, uint8_t proof[DCMSEAL_PROOF_LEN],
                            const dcmseal_wrap_meta *meta, const uint8_t *msg,
                            size_t msg_len, dcmseal_error *err);
    dcmseal_status (*check_proof)(void *self, const dcmseal_wrap_meta *meta,
                                  const uint8_t *msg, size_t msg_len,
                                  const uint8_t proof[DCMSEAL_PROOF_LEN], dcmseal_error *err);
    dcmseal_status (*conceal)(void *self, uint8_t mac[DCMSEAL_PROOF_LEN], const char *name,
                              const uint8_t *msg, size_t msg_len, dcmseal_error *err);
} dcmseal_keyring;

typedef struct dcmseal_token_ring dcmseal_token_ring_t;

/* A key ring over a token session. |wrap_key| names the KEK used for new
 * objects (its primary version; NULL for a decrypt-only ring); |prefer|
 * picks the OAEP variant. The session is borrowed and must outlive the ring.
 * Errors: those of dcmseal_kek_find for |wrap_key|. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_token_ring_new(dcmseal_token_ring_t **out, dcmseal_session_t *session,
                       const char *wrap_key, dcmseal_oaep prefer,
                       dcmseal_error *err);

/* Makes version |version| (0: primary) of |name| the ring's current KEK.
 * Cheap when it already is. Errors: those of dcmseal_kek_find. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_token_ring_set_current(dcmseal_token_ring_t *ring, const char *name,
                               uint32_t version, dcmseal_error *err);

DCMSEAL_API void dcmseal_token_ring_free(dcmseal_token_ring_t *ring);
/* The ring's function table (borrowed, valid while |ring| lives). */
DCMSEAL_API const dcmseal_keyring *
dcmseal_token_ring_get0_keyring(const dcmseal_token_ring_t *ring);

/* ---- DEK cache: unwrapped data keys kept for a while -------------------- */

/* A server reads the same object several times in a row (its header, then
 * the whole of it, then a frame), and each open costs an RSA decryption in
 * the token. A DEK cache keeps recently unwrapped (and wrapped) DEKs so that
 * those reads stay off the token, within two limits: at most |max_entries|
 * DEKs, each for at most |max_age_ms| after it entered the cache.
 *
 * An entry is found by a SHA-256 digest of everything the slot says about
 * its wrapping (KEK name, version, fingerprint, OAEP variant) and of the
 * wrapped bytes, so it answers only for exactly the slot that produced it:
 * an object rewrapped under another KEK misses, and is unwrapped again.
 * DEKs are held in OpenSSL's secure heap when the process has initialized it
 * (CRYPTO_secure_malloc_init: locked in memory, left out of core dumps),
 * otherwise in ordinary memory; each is wiped (OPENSSL_cleanse) when it is
 * evicted, expires, or the cache is cleared or freed. A secure heap that is
 * full leaves a DEK uncached, never an error.
 *
 * A cached ring keeps origin proofs that verified (FORMAT.md "Origin
 * proof") in the same cache and under the same limits, found by a digest of
 * the KEK, the message and the proof: a read that a cached DEK serves does
 * not go to the token for its proof either.
 *
 * The cost of the speed: for up to |max_age_ms|, a cached DEK (and proof)
 * still opens its object after its KEK version was disabled or put below the
 * minimum decryption version in the token, or after the token became
 * unreachable.
 * dcmseal_dek_cache_clear forgets everything at once.
 *
 * Thread-safe: one cache serves any number of cached rings. A cached ring
 * keeps no state of its own beyond the (locked) cache, so it is exactly as
 * thread-safe as the ring it wraps: a token ring is one thread's at a time,
 * a ring over a pool of sessions may serve many. */
typedef struct dcmseal_dek_cache dcmseal_dek_cache_t;

/* Makes a cache of at most |max_entries| DEKs (at most
 * DCMSEAL_DEK_CACHE_MAX), each kept for at most |max_age_ms|. Either one 0
 * makes a cache that holds nothing: rings over it ask the inner ring every
 * time. Errors: DCMSEAL_E_USAGE when |max_entries| is too large;
 * DCMSEAL_E_INTERNAL. On success |*out| must be released with
 * dcmseal_dek_cache_free. */
#define DCMSEAL_DEK_CACHE_MAX 65536
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_dek_cache_new(dcmseal_dek_cache_t **out, size_t max_entries, uint32_t max_age_ms,
                      dcmseal_error *err);

/* Wipes and frees every entry, then the cache. Accepts NULL. The cached
 * rings over it must be freed first. */
DCMSEAL_API void dcmseal_dek_cache_free(dcmseal_dek_cache_t *cache);

/* Wipes the entries older than the cache's age limit. Lookups skip and wipe
 * expired entries anyway; calling this now and then (say once a second)
 * bounds how long a DEK outlives its age when nothing reads. */
DCMSEAL_API void dcmseal_dek_cache_expire(dcmseal_dek_cache_t *cache);

/* Wipes every entry. */
DCMSEAL_API void dcmseal_dek_cache_clear(dcmseal_dek_cache_t *cache);

typedef struct dcmseal_dek_cache_stats {
    uint64_t hits;      /* unwraps answered from the cache */
    uint64_t misses;    /* unwraps that went to the inner ring */
    uint64_t evicted;   /* entries wiped to make room or for age */
    size_t entries;     /* held now */
    int secure;         /* entries live in OpenSSL's secure heap */
} dcmseal_dek_cache_stats;

DCMSEAL_API void dcmseal_dek_cache_get_stats(dcmseal_dek_cache_t *cache,
                                             dcmseal_dek_cache_stats *out);

typedef struct dcmseal_cached_ring dcmseal_cached_ring_t;

/* A key ring over |inner| (borrowed, must outlive the ring) whose unwrap
 * answers from |cache| when it can and otherwise asks |inner| and keeps the
 * answer; its wrap asks |inner| and keeps the new DEK. rewrap and current
 * are |inner|'s (rewrap NULL when |inner| has none). Errors:
 * DCMSEAL_E_USAGE, DCMSEAL_E_INTERNAL. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_cached_ring_new(dcmseal_cached_ring_t **out, dcmseal_dek_cache_t *cache,
                        const dcmseal_keyring *inner, dcmseal_error *err);

DCMSEAL_API void dcmseal_cached_ring_free(dcmseal_cached_ring_t *ring);

/* The ring's function table (borrowed, valid while |ring| lives). */
DCMSEAL_API const dcmseal_keyring *
dcmseal_cached_ring_get0_keyring(const dcmseal_cached_ring_t *ring);

/* ---- Identity ----------------------------------------------------------- */

/* The DICOM identity bound into an object. Stored only as a keyed digest. */
typedef struct dcmseal_identity {
    char sop_class_uid[65];
    char sop_instance_uid[65];
    char study_instance_uid[65];
} dcmseal_identity;

/* ---- Metadata: what a concealed object says about its file ---------------- */

#define DCMSEAL_META_PATH_MAX 4095

/* The file an object was made from, kept encrypted and authenticated in its
 * metadata block (format v2, FORMAT.md "Metadata block"). */
typedef struct dcmseal_meta {
    /* Relative, '/'-separated, 1..DCMSEAL_META_PATH_MAX bytes; no empty, "."
     * or ".." component, no NUL: safe to join below any directory. */
    char path[DCMSEAL_META_PATH_MAX + 1];
    uint32_t mode;       /* permission bits, <= 0777 */
    int64_t mtime_sec;   /* modification time */
    uint32_t mtime_nsec; /* < 1000000000 */
} dcmseal_meta;

/* 1 when |path| is one dcmseal_meta accepts (see above), else 0. */
DCMSEAL_API int dcmseal_meta_path_ok(const char *path);

/* ---- Header inspection (no key needed) ---------------------------------- */

/* What is known about an object's origin (FORMAT.md "Origin proof"). */
typedef enum {
    DCMSEAL_ORIGIN_NONE = 0,     /* no proof (format v1 only) */
    DCMSEAL_ORIGIN_PRESENT = 1,  /* the active slot carries a proof, not checked here */
    DCMSEAL_ORIGIN_VERIFIED = 2, /* the proof verified in the token when it was opened */
} dcmseal_origin;

typedef struct dcmseal_header_info {
    uint16_t version;        /* DCMSEAL_FORMAT_V1 or _V2 */
    int is_dicom;            /* identity context present */
    uint32_t segment_size;
    int active_slot;         /* 0 or 1 */
    uint64_t generation;     /* of the active slot */
    int other_slot_state;    /* 0 empty, 1 valid, -1 damaged */
    dcmseal_wrap_meta wrap;  /* of the active slot */
    size_t wrapped_len;
    dcmseal_origin origin;   /* NONE or PRESENT; VERIFIED once opened */
    int has_meta;            /* a metadata block (concealed name) follows the slots */
    uint32_t meta_len;       /* its length in bytes, 0 when none */
    /* Of the other slot when other_slot_state is 1: a key wrapped under this
     * KEK is in the file too (a rewrap stopped before it wiped its old slot,
     * or an object rewrapped by dcmseal before 0.2). */
    dcmseal_wrap_meta other_wrap;
} dcmseal_header_info;

/* Parses the first DCMSEAL_PREAMBLE_LEN bytes of an object. Errors:
 * DCMSEAL_E_FORMAT for a short buffer, wrong magic, unsupported version or
 * non-zero reserved fields; DCMSEAL_E_AUTH when no slot is intact. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_header_inspect(dcmseal_header_info *info, const uint8_t *buf,
                       size_t len, dcmseal_error *err);

/* Whether |buf| (the first |len| bytes of a file) starts with the dcmseal
 * magic. Says nothing about the rest: use it to tell "not ours" from
 * "ours but damaged". */
DCMSEAL_API int dcmseal_is_sealed(const uint8_t *buf, size_t len);

/* dcmseal_header_inspect and dcmseal_plaintext_size of the object in |fd|
 * (read with pread; the offset is unchanged). |plain_bytes| may be NULL.
 * Errors: those two's, DCMSEAL_E_IO. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_inspect_fd(dcmseal_header_info *info, uint64_t *plain_bytes, int fd,
                   dcmseal_error *err);

/* Plain-text size of an object without a metadata block whose total
 * encrypted size is |object_size| and segment size |segment_size|;
 * DCMSEAL_E_FORMAT when no plain-text size yields that encrypted size. For
 * any object use dcmseal_object_plaintext_size. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_plaintext_size(uint64_t *out, uint64_t object_size,
                       uint32_t segment_size, dcmseal_error *err);

/* Plain-text size of the object described by |info| (from
 * dcmseal_header_inspect) whose total size is |object_size|, metadata block
 * included. Errors as dcmseal_plaintext_size. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_object_plaintext_size(uint64_t *out, const dcmseal_header_info *info,
                              uint64_t object_size, dcmseal_error *err);

/* ---- Streaming encryption ----------------------------------------------- */

typedef struct dcmseal_encryptor dcmseal_encryptor_t;

typedef struct dcmseal_encrypt_params {
    const dcmseal_keyring *keyring;
    uint32_t segment_size;            /* 0: DCMSEAL_SEGMENT_DEFAULT */
    const dcmseal_identity *identity; /* NULL: opaque object */
    const dcmseal_meta *meta;         /* NULL: no metadata block */
} dcmseal_encrypt_params;

/* Starts an object: draws a DEK and salt, wraps the DEK, and writes the
 * DCMSEAL_PREAMBLE_LEN-byte header to |header|. When the key ring's KEK has
 * an origin key, the object is format v2 and its slot carries an origin
 * proof made through the ring; otherwise it is format v1, unless the KEK's
 * name requires origin (then DCMSEAL_E_KEY). |meta| needs format v2: its
 * block is written before the first segment, by the first update or final.
 * Errors: DCMSEAL_E_USAGE for bad parameters (a |meta| path that
 * dcmseal_meta_path_ok refuses), DCMSEAL_E_KEY when the KEK has no origin
 * key but |meta| is given or the name requires origin, the key ring's
 * errors, DCMSEAL_E_INTERNAL. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_encrypt_init(dcmseal_encryptor_t **out,
                     uint8_t header[DCMSEAL_PREAMBLE_LEN],
                     const dcmseal_encrypt_params *params, dcmseal_error *err);

/* Upper bound of what update may write for |in_len| more input bytes. */
DCMSEAL_API size_t dcmseal_encrypt_update_max(const dcmseal_encryptor_t *enc,
                                              size_t in_len);

/* Consumes all of |in| and writes every segment that is known not to be the
 * last. DCMSEAL_E_USAGE when |out_cap| < dcmseal_encrypt_update_max. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_encrypt_update(dcmseal_encryptor_t *enc, uint8_t *out, size_t out_cap,
                       size_t *out_len, const uint8_t *in, size_t in_len,
                       dcmseal_error *err);

/* The most dcmseal_encrypt_final may write. */
DCMSEAL_API size_t dcmseal_encrypt_final_max(const dcmseal_encryptor_t *enc);

/* Writes the last segment (after the metadata block, when nothing wrote
 * it yet); needs dcmseal_encrypt_final_max of room. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_encrypt_final(dcmseal_encryptor_t *enc, uint8_t *out, size_t out_cap,
                      size_t *out_len, dcmseal_error *err);

/* Wipes and frees. Accepts NULL. */
DCMSEAL_API void dcmseal_encryptor_free(dcmseal_encryptor_t *enc);

/* ---- Streaming decryption ----------------------------------------------- */

typedef struct dcmseal_decryptor dcmseal_decryptor_t;

DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_decrypt_new(dcmseal_decryptor_t **out, const dcmseal_keyring *keyring,
                    dcmseal_error *err);

/* Upper bound of what update may write for |in_len| more input bytes. */
DCMSEAL_API size_t dcmseal_decrypt_update_max(const dcmseal_decryptor_t *dec,
                                              size_t in_len);

/* Consumes all of |in| (header first, then the metadata block if any, then
 * segments) and writes the plain text of every segment that authenticated
 * and is known not to be the last. As soon as the header is complete the
 * origin proof is checked (or, for format v1 without one, the name's
 * policy), then the DEK is unwrapped and the key commitment checked
 * (FORMAT.md "Reading rules"). Errors: DCMSEAL_E_FORMAT, DCMSEAL_E_AUTH
 * (also "not made with this archive's keys"), key ring errors. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_decrypt_update(dcmseal_decryptor_t *dec, uint8_t *out, size_t out_cap,
                       size_t *out_len, const uint8_t *in, size_t in_len,
                       dcmseal_error *err);

/* Authenticates the last segment and writes its plain text. Only a DCMSEAL_OK
 * from here proves the object whole; truncation is reported here. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_decrypt_final(dcmseal_decryptor_t *dec, uint8_t *out, size_t out_cap,
                      size_t *out_len, dcmseal_error *err);

/* The parsed header, once update has consumed it; NULL before (borrowed).
 * Its |origin| is VERIFIED or NONE (format v1 accepted without a proof). */
DCMSEAL_API const dcmseal_header_info *
dcmseal_decrypt_get0_header(const dcmseal_decryptor_t *dec);

/* The authenticated metadata block, once update has consumed it; NULL
 * before, or when the object has none (borrowed). */
DCMSEAL_API const dcmseal_meta *dcmseal_decrypt_get0_meta(const dcmseal_decryptor_t *dec);

/* Checks, in constant time, that |id| (NULL: opaque) is the identity bound
 * into the object. Only valid once the header is consumed. DCMSEAL_E_AUTH on
 * mismatch. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_decrypt_check_identity(const dcmseal_decryptor_t *dec,
                               const dcmseal_identity *id, dcmseal_error *err);

DCMSEAL_API void dcmseal_decryptor_free(dcmseal_decryptor_t *dec);

/* ---- Random access ------------------------------------------------------ */

typedef struct dcmseal_reader dcmseal_reader_t;

/* Opens the encrypted object in |fd| (borrowed, must support pread) for
 * random access. Checks the origin proof, unwraps the DEK, checks the
 * commitment and opens the metadata block, as the decryptor does. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_reader_open(dcmseal_reader_t **out, int fd,
                    const dcmseal_keyring *keyring, dcmseal_error *err);

/* Plain-text size of the object. */
DCMSEAL_API uint64_t dcmseal_reader_size(const dcmseal_reader_t *r);

/* The object's header (origin VERIFIED or NONE) and its metadata block
 * (NULL when it has none); borrowed from |r|. */
DCMSEAL_API const dcmseal_header_info *dcmseal_reader_get0_header(const dcmseal_reader_t *r);
DCMSEAL_API const dcmseal_meta *dcmseal_reader_get0_meta(const dcmseal_reader_t *r);

/* Reads up to |len| plain-text bytes at |offset|, decrypting and
 * authenticating only the segments the range touches. |*n| is short only at
 * the end of the object. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_reader_pread(dcmseal_reader_t *r, uint8_t *out, size_t len,
                     uint64_t offset, size_t *n, dcmseal_error *err);

DCMSEAL_API void dcmseal_reader_free(dcmseal_reader_t *r);

/* ---- Whole objects over file descriptors -------------------------------- */

typedef struct dcmseal_seal_opts {
    const dcmseal_keyring *keyring;
    uint32_t segment_size; /* 0: DCMSEAL_SEGMENT_DEFAULT */
    int strict;            /* refuse input that is not DICOM */
    const dcmseal_meta *meta; /* NULL: no metadata block */
} dcmseal_seal_opts;

/* What happened to one object. */
typedef struct dcmseal_object_report {
    int is_dicom;          /* identity bound; otherwise an opaque object */
    char not_dicom_reason[200]; /* why it is opaque, when it is */
    /* What the user should know about the identity of an object that has
     * one, e.g. its meta header names another SOP Instance UID than its data
     * set (the data set's is bound); empty otherwise. Never holds a UID. */
    char notice[200];
    uint64_t plain_bytes;
    uint64_t sealed_bytes;
    dcmseal_wrap_meta wrap;
    uint16_t format_version;   /* DCMSEAL_FORMAT_V1 or _V2 */
    /* Sealing: PRESENT (a proof was made) or NONE (format v1). Opening:
     * VERIFIED, or NONE for a format v1 object accepted without one. */
    dcmseal_origin origin;
} dcmseal_object_report;

/* Reads all of |in_fd| from its current offset, probes it for a DICOM identity
 * (dcmseal_dicom_probe_source, FORMAT.md "Identity context"), and writes the
 * encrypted object to |out_fd|. The probe reads the first MiB from memory and,
 * when |in_fd| is a regular file, what else it needs with pread; of a pipe it
 * has only the first MiB. Memory stays bounded whatever the input size. Input
 * that is not DICOM, or whose identity cannot be read completely, is sealed as
 * an opaque object (|rep| says why), or refused with DCMSEAL_E_NOT_DICOM when
 * |opts->strict|. Errors also: key ring errors, DCMSEAL_E_IO. Whatever was
 * written to |out_fd| before a failure must be discarded by the caller. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_seal_fd(dcmseal_object_report *rep, int out_fd, int in_fd,
                const dcmseal_seal_opts *opts, dcmseal_error *err);

/* dcmseal_seal_fd of the |in_len| bytes at |in| (borrowed, read only), for
 * callers that hold an object in memory, such as a server handed a whole
 * upload: the same probe, which sees all of the object, the same object,
 * no copy of the input. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_seal_mem(dcmseal_object_report *rep, int out_fd, const uint8_t *in, size_t in_len,
                 const dcmseal_seal_opts *opts, dcmseal_error *err);

/* Decrypts the object in |in_fd| to |out_fd| (-1: authenticate only). With
 * |check_identity|, also checks that the identity bound into the header is
 * the plain text's (FORMAT.md "Identity context"): for an object with an
 * identity, by probing the plain text, reading past its first MiB through
 * dcmseal_reader when |in_fd| is a regular file at offset 0 (DCMSEAL_E_USAGE
 * when the identity lies further in any other input); for an opaque object,
 * by checking the tag of the empty context. A mismatch is DCMSEAL_E_AUTH.
 * Plain text reaches |out_fd| only segment by segment after authentication;
 * only DCMSEAL_OK proves the whole object. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_open_fd(dcmseal_object_report *rep, int out_fd, int in_fd,
                const dcmseal_keyring *keyring, int check_identity,
                dcmseal_error *err);

/* dcmseal_open_fd in two steps, for a caller that learns from an object
 * where its plain text goes (the original path in its metadata block).
 * _begin reads |in_fd| up to the first segment: header and slots, the
 * origin proof, the DEK, the commitment and the metadata block, so that
 * what _get0_header and _get0_meta return is authenticated; no plain text
 * is released yet. _finish then decrypts the segments as dcmseal_open_fd
 * does and frees |op| whatever the outcome; _abort frees it without.
 * Errors as dcmseal_open_fd. */
typedef struct dcmseal_opening dcmseal_opening_t;
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_open_fd_begin(dcmseal_opening_t **out, int in_fd, const dcmseal_keyring *keyring,
                      dcmseal_error *err);
DCMSEAL_API const dcmseal_header_info *dcmseal_opening_get0_header(const dcmseal_opening_t *op);
DCMSEAL_API const dcmseal_meta *dcmseal_opening_get0_meta(const dcmseal_opening_t *op);
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_open_fd_finish(dcmseal_opening_t *op, dcmseal_object_report *rep, int out_fd,
                       int check_identity, dcmseal_error *err);
DCMSEAL_API void dcmseal_opening_abort(dcmseal_opening_t *op);

/* ---- Concealed names ---------------------------------------------------- */

/* "ab/cd/" and 32 hex digits, and the NUL. */
#define DCMSEAL_CONCEALED_NAME_LEN 39

/* Writes to |out| the name under which a tree run with concealed names
 * stores the file at relative path |path|: 128 bits of HMAC-SHA256 under the
 * concealment key of KEK name |kek_name|, in lower-case hex, with two levels
 * of fan-out folders from its first four digits (FORMAT.md "Concealed
 * names"). The same path gives the same name for as long as the key exists,
 * so that a run can be resumed after rotation. Errors: DCMSEAL_E_USAGE for a
 * path dcmseal_meta_path_ok refuses or a ring without |conceal|, the key
 * ring's errors. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_conceal_name(char out[DCMSEAL_CONCEALED_NAME_LEN], const dcmseal_keyring *keyring,
                     const char *kek_name, const char *path, dcmseal_error *err);

/* ---- Rotation: rewrapping in place -------------------------------------- */

typedef struct dcmseal_rewrap_report {
    int changed;            /* a new slot was written (0: already under the target KEK) */
    int in_token;           /* the DEK never left the token */
    uint16_t format_version; /* of the object's header, which rewrap never changes */
    dcmseal_origin origin;  /* of the slot now active: PRESENT or NONE */
    int upgraded;           /* DCMSEAL_REWRAP_UPGRADE gave it its proof */
    dcmseal_wrap_meta from; /* the slot that was active */
    dcmseal_wrap_meta to;   /* the new slot (== from when unchanged) */
    uint64_t generation;    /* of the slot now active */
    /* Set by _start: work is left for _finish (and the object is locked):
     * a new slot to flush and the old one to wipe, or, for an object
     * already under the target, a leftover key in its other slot. */
    int pending;
    /* Set by _finish: the other slot is all zeros and flushed: no wrap of
     * the DEK under any other KEK is left in the file. */
    int retired;
} dcmseal_rewrap_report;

/* Flags of dcmseal_rewrap_fd. */
enum {
    /* Give a format v1 object without an origin proof one, after
     * authenticating every segment and its DICOM identity (which shows it
     * whole, but cannot show who made it: FORMAT.md "Upgrading v1"). */
    DCMSEAL_REWRAP_UPGRADE = 1,
};

/* Moves the object in |fd| (open read-write) to |keyring|'s current KEK and
 * retires the old wrap (FORMAT.md "Key slots"):
 *   1. writes the inactive key slot with a higher generation;
 *   2. flushes it (fdatasync): the object now opens under the new KEK;
 *   3. overwrites the old slot with zeros, and flushes again: from then on
 *      the file holds no wrap of the DEK under the old KEK, so neither a
 *      damaged new slot nor an old slot with its generation raised makes it
 *      open under the old KEK again.
 * The immutable header and the payload are never written. A crash at any
 * point leaves an object that opens under the old or the new KEK; a re-run
 * finishes the job, including step 3 for an object already moved. Holds an
 * exclusive flock on |fd| meanwhile, so concurrent rewraps of one file
 * serialize. An object already under the target KEK with an empty other
 * slot is left alone (|rep->changed| and |rep->pending| 0) unless it is
 * upgraded.
 *
 * Origin: the active slot's proof is checked first; the new slot gets a
 * proof under the target's origin key. An object without one is refused
 * when it is format v2 or its name requires origin; a format v1 object
 * keeps having none, unless |flags| has DCMSEAL_REWRAP_UPGRADE. An object
 * with a proof is never moved to a KEK without an origin key.
 * Errors: DCMSEAL_E_FORMAT, DCMSEAL_E_AUTH (no intact slot, the token
 * rejects the wrapped key, "not made with this archive's keys", an upgrade
 * that does not authenticate), key ring errors (DCMSEAL_E_KEY: the target
 * has no origin key), DCMSEAL_E_IO. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_rewrap_fd(dcmseal_rewrap_report *rep, int fd,
                  const dcmseal_keyring *keyring, unsigned flags, dcmseal_error *err);

/* dcmseal_rewrap_fd in two halves, so that a caller with many objects can
 * finish some while its token works on the next ones. _start does step 1
 * (or nothing, for an object already moved): when it returns DCMSEAL_OK
 * with |rep->pending| set, |fd| is still locked and the caller must call
 * dcmseal_rewrap_fd_finish or dcmseal_rewrap_finish_all (from any
 * thread); it may count the object as moved only when that succeeds.
 * Otherwise (an error, or nothing to do) the lock is already released and
 * no finish may be called. Errors as dcmseal_rewrap_fd. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_rewrap_fd_start(dcmseal_rewrap_report *rep, int fd,
                        const dcmseal_keyring *keyring, unsigned flags, dcmseal_error *err);
/* Steps 2 and 3 of what dcmseal_rewrap_fd_start left in |fd| (fdatasync,
 * wipe, fdatasync), then releases the lock, whatever the outcome; sets
 * |rep->retired| on success. Errors: DCMSEAL_E_USAGE when nothing is
 * pending; DCMSEAL_E_IO (the object then opens under the old or the new
 * KEK; a re-run settles which and wipes what is left). */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_rewrap_fd_finish(dcmseal_rewrap_report *rep, int fd, dcmseal_error *err);

/* Group commit: dcmseal_rewrap_fd_finish of |n| objects at once (reps[i]
 * for the file fds[i]), each step for all of them: one flush of each file
 * system they are on (syncfs) makes every new slot durable, then every old
 * slot is wiped, then one more flush (a group of one uses fdatasync, cheaper
 * for a single file). So two flushes per object cost two per group.
 * syncfs also flushes what other programs wrote to the same file system.
 * *errs[i] gets reps[i]'s own outcome: a failed flush fails every object of
 * that file system, a failed wipe only its own. Returns how many were
 * finished. Errors (in *errs[i]): as dcmseal_rewrap_fd_finish. */
DCMSEAL_API size_t dcmseal_rewrap_finish_all(dcmseal_rewrap_report *const *reps, const int *fds,
                                             size_t n, dcmseal_error *const *errs);

/* An output file that appears under its name only once complete: written to
 * a temporary file in the same directory, flushed, then linked into place.
 * The temporary file has permission bits 0600 (less what the umask takes)
 * until commit, whether it is unnamed (O_TMPFILE) or, where the file system
 * has no O_TMPFILE, named ".NAME.dcmseal-HOST-PID-XXXXXX". */
typedef struct dcmseal_outfile dcmseal_outfile_t;

/* Creates the temporary file for the entry |name| of the directory |dir_fd|.
 * |name| must be one path component (no '/', not "." or ".."): every later
 * step (link, rename, the directory's fsync) is relative to |dir_fd|, so the
 * output lands in that directory even if its path is changed meanwhile.
 * |dir_fd| is borrowed and must stay open until commit or abort. |mode| is
 * what the file gets at commit, as given (the umask is the caller's to
 * apply, as cp applies it). Without |replace| an existing entry |name|
 * (a symbolic link too, which is never followed) is refused with
 * DCMSEAL_E_USAGE, at open and again at commit; with |replace|, a
 * directory named |name| is refused at open (DCMSEAL_E_USAGE), before any
 * output is written. Errors: DCMSEAL_E_USAGE
 * (also for a |name| that is not one component), DCMSEAL_E_IO. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_outfile_openat(dcmseal_outfile_t **out, int dir_fd, const char *name,
                       unsigned mode, int replace, dcmseal_error *err);
/* dcmseal_outfile_openat in the directory part of |path| (resolved once,
 * here), for an output named by its path. Errors: as _openat; DCMSEAL_E_IO
 * when the directory cannot be opened. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_outfile_open(dcmseal_outfile_t **out, const char *path, unsigned mode,
                     int replace, dcmseal_error *err);
DCMSEAL_API int dcmseal_outfile_fd(const dcmseal_outfile_t *f);
/* For an outfile opened with |replace| that replaces the file it was made
 * from (work in place): commit replaces the name only while it still refers
 * to the file with device |dev| and inode |ino| (fstat of the file read), and
 * otherwise fails with DCMSEAL_E_IO, leaving whatever is there. */
DCMSEAL_API void dcmseal_outfile_set_target(dcmseal_outfile_t *f, uint64_t dev,
                                            uint64_t ino);
/* Gives the file its mode, fsyncs it, then renames (or links, without
 * |replace|) it into place, then fsyncs the directory. Frees |f| whatever the
 * outcome; on failure nothing appears under the name. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_outfile_commit(dcmseal_outfile_t *f, dcmseal_error *err);
/* Removes the temporary file and frees |f|. Accepts NULL. */
DCMSEAL_API void dcmseal_outfile_abort(dcmseal_outfile_t *f);

/* Group commit: dcmseal_outfile_commit of |n| outfiles at once, sharing
 * the flushes, as databases commit transactions. Their modes, their data
 * made durable with one flush (syncfs of each file system, then each
 * file's own write-back errors; fsync when only one is left), their names,
 * then each directory flushed once. No name ever points at data that is
 * not durable. *errs[i] gets files[i]'s own outcome: a failed flush of a
 * file system fails each of its outfiles, a failed directory flush each
 * in that directory, a name taken meanwhile only its own; on failure
 * nothing appears under the name (but, as with dcmseal_outfile_commit,
 * after a failed directory flush). Frees every outfile whatever the
 * outcome. Returns how many were committed. Errors (in *errs[i]): as
 * dcmseal_outfile_commit; DCMSEAL_E_USAGE for a NULL outfile. */
DCMSEAL_API size_t dcmseal_outfile_commit_all(dcmseal_outfile_t *const *files, size_t n,
                                              dcmseal_error *const *errs);

/* What a file name says about it, for walks over trees that outfiles write
 * into: not a temporary file, one of a process that may still be running,
 * or one that a process on this machine, now gone, left behind (a kill
 * between link and rename, or a file system without O_TMPFILE). A stale
 * one holds an output that never replaced its target and may be removed. */
enum { DCMSEAL_TEMP_NONE = 0, DCMSEAL_TEMP_LIVE = 1, DCMSEAL_TEMP_STALE = 2 };
DCMSEAL_API int dcmseal_temp_state(const char *path);

#ifdef __cplusplus
}
#endif
#endif
