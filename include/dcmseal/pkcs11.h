/*
 * dcmseal/pkcs11.h: key-encryption keys (KEKs) held in a PKCS#11 token.
 *
 * Modules are loaded through p11-kit and tokens are named with RFC 7512
 * PKCS#11 URIs. A KEK is an RSA 2048 or 3072 key pair generated inside the
 * token; its private half is sensitive and never extractable, so unwrapping
 * always happens in the token. The host sees only public keys and wrapped
 * (RSA-OAEP encrypted) data keys.
 *
 * Objects:
 *   dcmseal_token_t   - a loaded module, the selected token and its PIN.
 *                       Thread-safe; shared by all sessions.
 *   dcmseal_session_t - one PKCS#11 session. Use one per thread. A session
 *                       that the token drops is reopened and logged in
 *                       again, and transient token errors (device error,
 *                       device removed, session closed, ...) are retried
 *                       with bounded exponential backoff: 5 retries, 50 ms
 *                       doubling to 800 ms; DCMSEAL_RETRY_MAX in the
 *                       environment (0..20) sets the count. Once the token
 *                       answers again, the same objects carry on.
 *
 * Secrets: data keys that pass through this module (unwrap, the host path of
 * rewrap) and the PIN are held in OpenSSL's secure heap (OPENSSL_secure_*)
 * and wiped when done. That works whether or not the program initialised
 * the secure heap; a program that calls CRYPTO_secure_malloc_init first gets
 * them in memory that is locked and left out of core dumps (the dcmseal
 * command does, with a 256 KiB heap). Data keys are 32 bytes
 * (DCMSEAL_DEK_LEN).
 */
#ifndef DCMSEAL_PKCS11_H
#define DCMSEAL_PKCS11_H

#include <stddef.h>
#include <stdint.h>

#include <dcmseal/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dcmseal_token dcmseal_token_t;
typedef struct dcmseal_session dcmseal_session_t;

#define DCMSEAL_DEK_LEN 32             /* a data key: what KEKs wrap */
#define DCMSEAL_KEK_NAME_MAX 64        /* bytes, without NUL */
#define DCMSEAL_KEK_FINGERPRINT_LEN 32 /* SHA-256 of the DER SubjectPublicKeyInfo */
#define DCMSEAL_WRAPPED_MAX 512        /* RSA-4096 ciphertext */

/* RSA-OAEP variants. The numeric values are stored in file headers. */
typedef enum {
    DCMSEAL_OAEP_AUTO = 0,   /* only as a preference: SHA-256, else SHA-1 */
    DCMSEAL_OAEP_SHA1 = 1,   /* OAEP, SHA-1, MGF1-SHA1, empty label */
    DCMSEAL_OAEP_SHA256 = 2, /* OAEP, SHA-256, MGF1-SHA256, empty label */
} dcmseal_oaep;

/* "sha1", "sha256" or "auto". */
DCMSEAL_API const char *dcmseal_oaep_name(dcmseal_oaep oaep);

typedef struct dcmseal_kek_info {
    char name[DCMSEAL_KEK_NAME_MAX + 1];
    uint32_t version; /* 1, 2, ... */
    unsigned bits;    /* RSA modulus size */
    uint8_t fingerprint[DCMSEAL_KEK_FINGERPRINT_LEN];
    /* A disabled version has CKA_DECRYPT and CKA_UNWRAP false on its private
     * half, so that the token itself refuses to decrypt with it; dcmseal
     * does not wrap under it. */
    int enabled;
    /* The primary version of a name is its highest enabled one: new objects
     * are wrapped under it. */
    int primary;
    /* The minimum decryption version of the name (0: none); versions below
     * it are refused by dcmseal_kek_find. See dcmseal_kek_set_min_version. */
    uint32_t min_version;
    /* This version has an origin key (see "Origin keys" below); versions
     * made before dcmseal had them do not, until dcmseal_kek_upgrade. */
    int has_origin;
    /* The name's policy refuses objects without an origin proof. See
     * dcmseal_kek_set_require_origin. */
    int require_origin;
    /* What this version lacks of the protections dcmseal gives keys now
     * (DCMSEAL_KEK_WEAK_*, DCMSEAL_KEK_NO_PUBLIC; 0: none): versions made
     * before, or on a token that refused part of the template, keep
     * working and say so here. */
    unsigned weak;
    /* Filled by dcmseal_kek_list only (0 from the other functions): */
    int64_t disabled_at;     /* when the version was disabled, seconds since
                                1970 UTC; 0 when enabled or not recorded */
    uint32_t retention_days; /* of the name; see dcmseal_kek_set_retention */
    int purge_protection;    /* on for the name: the retention only grows */
    int purge_locked;        /* the token itself refuses to remove it */
} dcmseal_kek_info;

/* The longest retention, in days (100 years). */
#define DCMSEAL_RETENTION_MAX 36500u

/* Bits of dcmseal_kek_info.weak. */
#define DCMSEAL_KEK_WEAK_SHARED_ID 0x01u  /* CKA_ID "dcmseal-kek-vN", the same under every name */
#define DCMSEAL_KEK_WEAK_MECHANISMS 0x02u /* private half not limited to RSA-OAEP
                                             (CKA_ALLOWED_MECHANISMS) */
#define DCMSEAL_KEK_WEAK_SIGN 0x04u       /* private half may sign (CKA_SIGN, CKA_SIGN_RECOVER) */
#define DCMSEAL_KEK_WEAK_PUBLIC 0x08u     /* public half visible or changeable without the
                                             PIN (CKA_PRIVATE, CKA_MODIFIABLE) */
#define DCMSEAL_KEK_NO_PUBLIC 0x10u       /* no public half: decrypts, cannot wrap */
#define DCMSEAL_KEK_WEAK_ORIGIN 0x20u     /* its origin key not limited to HMAC-SHA256
                                             (CKA_ALLOWED_MECHANISMS) */

/* Opens the token named by |uri| ("pkcs11:token=...?module-path=...").
 *
 * The module is |module-path| from the URI, or |module-name| among p11-kit's
 * registered modules, or otherwise every registered module is searched for a
 * token matching the URI's token attributes. The first matching token wins.
 *
 * The user PIN comes from the URI's pin-source ("file:/path", a plain path,
 * or "env:VAR"), or else from the environment variable DCMSEAL_PIN. A URI
 * that carries pin-value is refused (DCMSEAL_E_USAGE): URIs end up in argv,
 * shell history and process listings. A pin-source file must belong to the
 * effective user and give group and others no access (as ssh wants of
 * private keys), or it is refused (DCMSEAL_E_TOKEN, naming the file, its
 * owner or mode). An environment variable that held the PIN is removed
 * from the environment, and its string overwritten, once read (not
 * thread-safe against other uses of the environment, as unsetenv is not).
 * The PIN is wiped as soon as the login is done. Should the token need a
 * new login later (it restarted, or logged out), a pin-source file is read
 * again; a PIN from the environment cannot be, and calls then fail with
 * DCMSEAL_E_TOKEN naming CKR_USER_NOT_LOGGED_IN.
 *
 * Errors: DCMSEAL_E_USAGE (bad URI), DCMSEAL_E_TOKEN (module fails to load,
 * no matching token, no PIN, a pin-source refused, wrong PIN). When no
 * token matches, the message names the tokens the modules do have (see
 * dcmseal_slot_list_new). On success |*out| must be released with
 * dcmseal_token_free. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_token_open(dcmseal_token_t **out, const char *uri, dcmseal_error *err);

/* ---- Finding a token --------------------------------------------------------
 *
 * What a module offers, as `pkcs11-tool -L` shows it: for choosing the URI
 * that dcmseal_token_open takes. Needs no PIN and opens no session. */

typedef struct dcmseal_slot_list dcmseal_slot_list_t;

/* One slot of a module, and the token in it. */
typedef struct dcmseal_slot_info {
    char module[256];          /* the module's file, or its p11-kit name */
    char library[33];          /* the module's own description (CK_INFO) */
    unsigned long slot_id;     /* CK_SLOT_ID, as the module numbers it */
    char slot_description[65];
    int token_present;
    /* The rest only when |token_present|: CK_TOKEN_INFO, without padding. */
    char label[33], manufacturer[33], model[17], serial[17];
    unsigned long flags;       /* CK_TOKEN_INFO flags (CKF_*) */
    int initialized;           /* CKF_TOKEN_INITIALIZED: it has a label and an SO PIN */
    int user_pin_initialized;  /* CKF_USER_PIN_INITIALIZED: dcmseal can log in */
    int login_required;        /* CKF_LOGIN_REQUIRED */
    int write_protected;       /* CKF_WRITE_PROTECTED: keys cannot be made */
    /* For an initialized token: a PKCS#11 URI that names it by label and
     * module file, e.g. "pkcs11:token=archive?module-path=/usr/lib/...";
     * add "&pin-source=file:PATH" for dcmseal_token_open. Else "". */
    char uri[512];
} dcmseal_slot_info;

/* Lists every slot of the modules that |where| names: a module file
 * ("/usr/lib/softhsm/libsofthsm2.so"), or a PKCS#11 URI, of which only the
 * module-path or module-name counts (not the token attributes: the point
 * is to see the tokens there), or NULL for every module p11-kit registers.
 * Slots come in module order, then in the module's slot order. Errors:
 * DCMSEAL_E_USAGE for a bad URI, DCMSEAL_E_TOKEN when a module does not
 * load or answer, DCMSEAL_E_INTERNAL. On success |*out| must be released
 * with dcmseal_slot_list_free. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_slot_list_new(dcmseal_slot_list_t **out, const char *where, dcmseal_error *err);

/* The number of slots. */
DCMSEAL_API size_t dcmseal_slot_list_count(const dcmseal_slot_list_t *l);

/* Slot |i| (0 <= i < dcmseal_slot_list_count), borrowed from |l|. */
DCMSEAL_API const dcmseal_slot_info *dcmseal_slot_list_get0(const dcmseal_slot_list_t *l,
                                                            size_t i);

/* Frees |l|. Accepts NULL. */
DCMSEAL_API void dcmseal_slot_list_free(dcmseal_slot_list_t *l);

/* Logs out, finalizes the module and wipes the PIN. Accepts NULL. All
 * sessions must have been freed. */
DCMSEAL_API void dcmseal_token_free(dcmseal_token_t *tok);

/* The token's label, without padding (borrowed). */
DCMSEAL_API const char *dcmseal_token_get0_label(const dcmseal_token_t *tok);

/* The URI's object= attribute, or NULL (borrowed). */
DCMSEAL_API const char *dcmseal_token_get0_object(const dcmseal_token_t *tok);

/* Opens a read-write session, logging the user in if needed. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_session_open(dcmseal_session_t **out, dcmseal_token_t *tok,
                     dcmseal_error *err);

/* The label of the session's token (borrowed). */
DCMSEAL_API const char *dcmseal_session_get0_token_label(const dcmseal_session_t *s);

/* Closes the session. Accepts NULL. */
DCMSEAL_API void dcmseal_session_free(dcmseal_session_t *s);

/* Generates a new KEK |name| (version 1) of |bits| (2048 or 3072) inside the
 * token: private half sensitive, never extractable, RSA-OAEP decrypt and
 * unwrap only; public half private and not modifiable; CKA_LABEL |name|,
 * CKA_ID "dcmseal-kek:NAME:v1". With it come its origin key and the name's
 * concealment key (see "Origin keys" below), locked down the same way, and
 * the name's policy requires origin proofs: a new name has no object
 * without one. Where the token refuses part of a template the key is made
 * without it and |out->weak| says what it lacks. Errors: DCMSEAL_E_USAGE
 * for another size or a name that is empty, too long or already present;
 * DCMSEAL_E_TOKEN when generation fails. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_kek_create(dcmseal_session_t *s, dcmseal_kek_info *out,
                   const char *name, unsigned bits, dcmseal_error *err);

/* Generates the next version of the existing KEK |name| (highest version +
 * 1, same size as that version unless |bits| is non-zero), with its origin
 * key; it becomes the primary. Errors: DCMSEAL_E_USAGE for a bad size; DCMSEAL_E_KEY when |name|
 * does not exist; DCMSEAL_E_TOKEN. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_kek_rotate(dcmseal_session_t *s, dcmseal_kek_info *out,
                   const char *name, unsigned bits, dcmseal_error *err);

/* Enables or disables version |version| of |name|: CKA_DECRYPT and
 * CKA_UNWRAP of its private half, so that the token refuses to decrypt with
 * a disabled version; dcmseal refuses to wrap under one. (The public half
 * of versions made before is switched too; that of versions made now
 * cannot be changed.) Its origin key goes with it (CKA_SIGN, CKA_VERIFY).
 * Disabling records the time in the token (a private
 * CKO_DATA object, CKA_APPLICATION "dcmseal-kek-disabled"), unless the
 * version was disabled already and that is recorded: the retention of
 * dcmseal_kek_destroy counts from it. Enabling removes the record.
 * Idempotent. Errors: DCMSEAL_E_KEY when absent; DCMSEAL_E_TOKEN. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_kek_set_enabled(dcmseal_session_t *s, const char *name,
                        uint32_t version, int enabled, dcmseal_error *err);

/* Sets the minimum decryption version of |name| (0 clears it): versions
 * below it are refused by dcmseal_kek_find, and so for every use, without
 * being destroyed or disabled. It is kept in the token as a private CKO_DATA
 * token object (CKA_APPLICATION "dcmseal-kek-policy", CKA_LABEL |name|,
 * CKA_VALUE the version as 4 bytes big-endian). Idempotent. Errors:
 * DCMSEAL_E_KEY when no version of |name| exists; DCMSEAL_E_USAGE when
 * |min_version| is above the primary version (new objects would be
 * refused); DCMSEAL_E_TOKEN. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_kek_set_min_version(dcmseal_session_t *s, const char *name, uint32_t min_version,
                            dcmseal_error *err);

/* Sets the retention of |name| to |days| (0..DCMSEAL_RETENTION_MAX, 0: none):
 * dcmseal_kek_destroy then refuses a version until it has been disabled
 * that long. With |purge_protection|, from now on and for good, the
 * retention can only grow: shortening or removing it is refused, and on
 * tokens that know CKA_DESTROYABLE (PKCS#11 2.40) the token itself refuses
 * to destroy it (dcmseal_kek_info.purge_locked). A |purge_protection| of 0
 * leaves protection as it is; it cannot turn it off. Kept in the token as
 * private CKO_DATA objects (CKA_APPLICATION "dcmseal-kek-retention",
 * CKA_LABEL |name|, CKA_VALUE days and flags, 4 bytes each, big-endian);
 * the longest one is in force. Idempotent. Errors: DCMSEAL_E_KEY when no
 * version of |name| exists; DCMSEAL_E_USAGE for a retention too long, a
 * shorter one under purge protection, or purge protection with 0 days;
 * DCMSEAL_E_TOKEN. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_kek_set_retention(dcmseal_session_t *s, const char *name, uint32_t days,
                          int purge_protection, dcmseal_error *err);

/* Whether dcmseal_kek_destroy may destroy version |version| of |name| now:
 * DCMSEAL_OK when the name has no retention, or when the version has been
 * disabled for at least its retention (by the host's clock). Errors:
 * DCMSEAL_E_USAGE naming the reason (enabled, within the retention and
 * until when, or disabled without a record of when); DCMSEAL_E_KEY when
 * absent; DCMSEAL_E_TOKEN. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_kek_destroy_check(dcmseal_session_t *s, const char *name, uint32_t version,
                          dcmseal_error *err);

/* Destroys both halves of version |version| of |name|, and its origin key,
 * after dcmseal_kek_destroy_check. When no version of |name| is left, its
 * concealment key and origin policy go too. Whether objects still need it is the caller's
 * to find out (the CLI also refuses primary and enabled versions, and
 * counts the objects below --archive directories). Errors: those of
 * dcmseal_kek_destroy_check; DCMSEAL_E_TOKEN. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_kek_destroy(dcmseal_session_t *s, const char *name, uint32_t version,
                    dcmseal_error *err);

/* Re-wraps a data key of exactly DCMSEAL_DEK_LEN bytes from |from| (RSA-OAEP
 * variant |from_oaep|) to |to| (preference |prefer|, as for
 * dcmseal_kek_wrap). Where the token allows it the key never reaches host
 * memory: C_UnwrapKey into a sensitive session object (CKA_VALUE_LEN 32;
 * where the token refuses that attribute the length is measured by
 * wrapping the key under a throwaway AES session key with CKM_AES_KEY_WRAP,
 * which tells it to within 8 bytes), C_WrapKey under |to|, then
 * C_DestroyObject. Otherwise it goes through host memory: unwrap into a
 * buffer in the secure heap, wrap, wipe the buffer at once. |*in_token|
 * says which path ran.
 *
 * The path is decided per token, by the first rewraps, not by failing once
 * per object: when the token refuses the in-token path (a capability
 * answer such as CKR_ATTRIBUTE_READ_ONLY for the unwrap template, or a
 * refused C_WrapKey of the unwrapped key; docs/HSM.md "Error classes"), or
 * leaves the unwrapped key readable, every rewrap on the token from then
 * on takes the host path at once (see dcmseal_session_get0_rewrap_refusal).
 * A refusal is never an error of its own. Errors: those of unwrap and
 * wrap; DCMSEAL_E_AUTH when the wrapped key is not a 32-byte key. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_kek_rewrap(dcmseal_session_t *s, uint8_t *out, size_t out_cap,
                   size_t *out_len, dcmseal_oaep *used, int *in_token,
                   const dcmseal_kek_info *from, dcmseal_oaep from_oaep,
                   const uint8_t *wrapped, size_t wrapped_len,
                   const dcmseal_kek_info *to, dcmseal_oaep prefer,
                   dcmseal_error *err);

/* Why dcmseal_kek_rewrap takes the host path on the token of |s|, e.g.
 * "C_UnwrapKey: CKR_ATTRIBUTE_READ_ONLY"; NULL while it has not been
 * decided so (the in-token path works, or no rewrap ran yet). Borrowed from
 * the token: valid until dcmseal_token_free. */
DCMSEAL_API const char *dcmseal_session_get0_rewrap_refusal(const dcmseal_session_t *s);

/* Finds version |version| of KEK |name| (0: the primary version) and checks
 * the key policy: RSA 2048/3072, private key sensitive, not extractable and
 * allowed to decrypt and unwrap. The fingerprint is computed from the
 * private half (its modulus and exponent), and the public half is the one
 * whose modulus matches: decryption never depends on the public half, and
 * a public object planted under the version's label and ID is ignored.
 * Errors: DCMSEAL_E_KEY when absent, disabled (the message says "disabled"
 * and names key, version and token), below the minimum decryption version
 * (the message says "below the minimum decryption version") or when the
 * policy is violated (the message names the attribute); DCMSEAL_E_TOKEN when
 * the token fails. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_kek_find(dcmseal_session_t *s, dcmseal_kek_info *out,
                 const char *name, uint32_t version, dcmseal_error *err);

/* Lists every dcmseal KEK on the token (only those named |name| unless it is
 * NULL), sorted by name then version, writing at most |cap| entries and the
 * total count to |*count|. Keys that violate the policy or are below the
 * minimum decryption version are listed too; use dcmseal_kek_find to use
 * one. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_kek_list(dcmseal_session_t *s, dcmseal_kek_info *out, size_t cap,
                 size_t *count, const char *name, dcmseal_error *err);

/* Encrypts |key| with the public half of |kek| using RSA-OAEP. With
 * DCMSEAL_OAEP_AUTO, SHA-256 is tried first and SHA-1 is used when the token
 * refuses it (SoftHSM 2.6 does); the refusal is remembered for the token.
 * |*used| receives the variant that wrapped it. Errors: DCMSEAL_E_KEY when
 * the key is gone or refuses the variant asked for; DCMSEAL_E_TOKEN. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_kek_wrap(dcmseal_session_t *s, uint8_t *out, size_t out_cap,
                 size_t *out_len, dcmseal_oaep *used, const dcmseal_kek_info *kek,
                 dcmseal_oaep prefer, const uint8_t *key, size_t key_len,
                 dcmseal_error *err);

/* Decrypts |wrapped| inside the token with the private half of |kek| and
 * RSA-OAEP variant |oaep|, writing the data key to |out|. Errors:
 * DCMSEAL_E_AUTH when the token rejects the ciphertext; DCMSEAL_E_KEY when
 * the key is gone or not permitted; DCMSEAL_E_TOKEN. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_kek_unwrap(dcmseal_session_t *s, uint8_t *out, size_t out_cap,
                   size_t *out_len, const dcmseal_kek_info *kek,
                   dcmseal_oaep oaep, const uint8_t *wrapped, size_t wrapped_len,
                   dcmseal_error *err);

/* ---- Origin keys -----------------------------------------------------------
 *
 * Every KEK version has an origin key: an HMAC-SHA256 secret key in the
 * token (CKO_SECRET_KEY, CKK_GENERIC_SECRET, 32 bytes, CKA_SENSITIVE, never
 * extractable, CKA_SIGN and CKA_VERIFY only, CKA_ALLOWED_MECHANISMS
 * {CKM_SHA256_HMAC} where the token takes it), with the KEK's CKA_LABEL and
 * CKA_ID "dcmseal-origin:NAME:vN". Only a user logged in to the token can
 * compute or check a proof with it, which is what lets an object show that
 * it was made with the archive's token (docs/FORMAT.md "Origin proof").
 * It is made, disabled, enabled and destroyed with its KEK version.
 *
 * Every name also has a concealment key (the same template, CKA_SIGN only,
 * CKA_ID "dcmseal-names:NAME"), never rotated, which names the objects of
 * trees encrypted with concealed names (docs/FORMAT.md "Concealed names"). */

#define DCMSEAL_HMAC_LEN 32

/* Computes HMAC-SHA256 of |msg| inside the token with the origin key of
 * |name| v|version|. Errors: DCMSEAL_E_KEY when that version has no origin
 * key (the message names `dcmseal key upgrade`), when it is disabled or
 * violates the key policy (the attribute is named); DCMSEAL_E_TOKEN. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_origin_sign(dcmseal_session_t *s, uint8_t mac[DCMSEAL_HMAC_LEN], const char *name,
                    uint32_t version, const uint8_t *msg, size_t msg_len, dcmseal_error *err);

/* Checks inside the token (C_Verify) that |mac| is HMAC-SHA256 of |msg|
 * under the origin key of |name| v|version|. Errors: DCMSEAL_E_AUTH when it
 * is not (the message says "not made with this archive's keys"); others as
 * dcmseal_origin_sign. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_origin_verify(dcmseal_session_t *s, const char *name, uint32_t version,
                      const uint8_t *msg, size_t msg_len, const uint8_t mac[DCMSEAL_HMAC_LEN],
                      dcmseal_error *err);

/* Computes HMAC-SHA256 of |msg| inside the token with the concealment key
 * of |name|. Errors as dcmseal_origin_sign. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_conceal_sign(dcmseal_session_t *s, uint8_t mac[DCMSEAL_HMAC_LEN], const char *name,
                     const uint8_t *msg, size_t msg_len, dcmseal_error *err);

/* Makes what KEKs created before dcmseal had origin keys lack: an origin key
 * for every version of |name| without one (disabled when the version is),
 * and the name's concealment key. Idempotent; |*added| counts the keys made.
 * The policy is left as it is: see dcmseal_kek_set_require_origin. Errors:
 * DCMSEAL_E_KEY when |name| has no version; DCMSEAL_E_TOKEN. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_kek_upgrade(dcmseal_session_t *s, const char *name, unsigned *added,
                    dcmseal_error *err);

/* Sets whether objects under |name| must carry an origin proof: with it,
 * objects in format v1 without one are refused as "not made with this
 * archive's keys". Kept in the token as a private CKO_DATA object
 * (CKA_APPLICATION "dcmseal-origin-policy", CKA_LABEL |name|, CKA_VALUE
 * 0x01), beside the minimum decryption version. Idempotent. Errors:
 * DCMSEAL_E_KEY when |name| has no version; DCMSEAL_E_TOKEN. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_kek_set_require_origin(dcmseal_session_t *s, const char *name, int required,
                               dcmseal_error *err);

/* Whether |name|'s policy requires origin proofs (0 for a name that does
 * not exist). Errors: DCMSEAL_E_TOKEN. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_kek_get_require_origin(dcmseal_session_t *s, const char *name, int *required,
                               dcmseal_error *err);

/* ---- Scratch keys and token checks ---------------------------------------
 *
 * For the tools that measure or probe a token with keys of their own
 * (`dcmseal hsm-check`, `dcmseal bench`): they create KEKs under a name
 * nobody uses and destroy them afterwards. */

/* Writes "<prefix>-<16 random hex digits>" to |out|: a KEK name that no
 * token holds, with overwhelming probability. Errors: DCMSEAL_E_USAGE when
 * |prefix| is empty, longer than 40 bytes or not made of A-Z a-z 0-9 . _ -;
 * DCMSEAL_E_INTERNAL when no random bytes are available. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_kek_scratch_name(char out[DCMSEAL_KEK_NAME_MAX + 1], const char *prefix,
                         dcmseal_error *err);

/* What a token can and cannot do for dcmseal: one result per check. */
typedef struct dcmseal_check dcmseal_check_t;

typedef enum {
    DCMSEAL_CHECK_PASS = 0,
    DCMSEAL_CHECK_FAIL,
    DCMSEAL_CHECK_INFO, /* informational: a fact about the token, no verdict */
} dcmseal_check_verdict;

typedef struct dcmseal_check_result {
    /* Stable identifier, in the order the checks run: "token",
     * "mechanisms", "keygen-rsa2048", "keygen-rsa3072", "oaep-sha1",
     * "oaep-sha256", "oaep-sha256-mgf1-sha1", "oaep", "rewrap-in-token",
     * "disabled-refused", "private-not-readable", "private-not-wrappable",
     * "private-attributes-locked", "allowed-mechanisms", "public-half-locked",
     * "unwrap-length", "origin-hmac", "origin-mechanisms", "sessions",
     * "cleanup". docs/HSM.md says what each one means. */
    const char *id;
    dcmseal_check_verdict verdict;
    /* dcmseal cannot work on the token unless this check passes. */
    int required;
    /* The PKCS#11 return code that decided the verdict, e.g.
     * "CKR_ARGUMENTS_BAD", or "-" for a check that could not run. */
    const char *ckr;
    /* A number the check measured (the "sessions" count), or -1. */
    long count;
    /* One line for people: what was done and what the token answered. */
    char detail[320];
} dcmseal_check_result;

/* Probes the token of |s|, on |s| and on up to |max_sessions| (1..1024)
 * further sessions it opens and closes. It generates a scratch KEK with
 * dcmseal's own template (version 1 RSA-2048, version 2 RSA-3072, named by
 * dcmseal_kek_scratch_name with prefix "dcmseal-check") and an origin key
 * for it (proofs made and checked), encrypts and
 * decrypts with it, disables and enables it as `dcmseal key disable`
 * does, and tries to read and to wrap its private half. Before returning,
 * on every path, it destroys the scratch KEK and every session object it
 * made; the "cleanup" result names anything the token refused to destroy.
 * It calls the module directly, without the retries of a dcmseal session,
 * to report the token's own answers: do not use |s| from another thread
 * meanwhile. A check that fails is a result, not an error. Errors:
 * DCMSEAL_E_USAGE for a bad argument; DCMSEAL_E_INTERNAL when out of
 * memory or randomness. On success |*out| must be released with
 * dcmseal_check_free. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_check_run(dcmseal_check_t **out, dcmseal_session_t *s, unsigned max_sessions,
                  dcmseal_error *err);

/* The number of results. */
DCMSEAL_API size_t dcmseal_check_count(const dcmseal_check_t *c);

/* Result |i| (0 <= i < dcmseal_check_count), borrowed from |c|. */
DCMSEAL_API const dcmseal_check_result *dcmseal_check_get0_result(const dcmseal_check_t *c,
                                                                  size_t i);

/* 1 when every required check passed: dcmseal can create, use, disable and
 * rewrap keys on this token (RSA-OAEP with SHA-1 or SHA-256; rewrap in the
 * token or through host memory), else 0. */
DCMSEAL_API int dcmseal_check_usable(const dcmseal_check_t *c);

/* Frees |c|. Accepts NULL. */
DCMSEAL_API void dcmseal_check_free(dcmseal_check_t *c);

#ifdef __cplusplus
}
#endif
#endif
