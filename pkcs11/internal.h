/* What the files of the pkcs11 module share. Not installed, not exported.
 *   ckr.c     PKCS#11 return codes: names, and what each means to dcmseal
 *   token.c   modules, tokens, PINs, sessions, retries
 *   keyobj.c  KEK objects: names and versions, attributes, fingerprints, handle cache
 *   policy.c  what makes a KEK acceptable; the minimum decryption version;
 *             retention, purge protection and when a version was disabled
 *   lookup.c  finding a version or a primary; listing
 *   keygen.c  generation, enable/disable, destroy
 *   wrap.c    wrap, unwrap, rewrap (RSA-OAEP in the token; the rewrap path)
 *   origin.c  origin and concealment keys (HMAC-SHA256), the require-origin policy
 *   check.c   what a token can do for dcmseal (hsm-check)
 *   slots.c   the slots and tokens a module offers (token list) */
#ifndef DCMSEAL_PKCS11_INTERNAL_H
#define DCMSEAL_PKCS11_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <p11-kit/pkcs11.h>

#include <dcmseal/pkcs11.h>
#include <private/guard.h>

#define DCMSEAL_PIN_MAX 256

struct dcmseal_token {
    CK_FUNCTION_LIST *mod;
    CK_SLOT_ID slot;
    /* Held open for the token's lifetime: PKCS#11 drops the login state when
     * the application's last session closes. */
    CK_SESSION_HANDLE login_session;
    /* Serializes C_Login (the login state is token-wide) and the writing of
     * |rewrap_refusal|. */
    pthread_mutex_t lock;
    /* Set for a module that is unsafe to call from several threads at once
     * (module_serialized in token.c): then every call from a session goes
     * through |one_caller|, one at a time. */
    int serialized;
    pthread_mutex_t one_caller;
    /* Held shared by every call into the module, exclusively while the
     * module is finalized and initialized again: some tokens (SoftHSM whose
     * directory went away and came back) recover no other way. |gen| counts
     * those restarts; a session handle from an older one is void. */
    pthread_rwlock_t gate;
    unsigned gen;
    unsigned char serial[16];
    atomic_int no_oaep_sha256;
    /* How dcmseal_kek_rewrap moves data keys on this token: decided once,
     * by the first rewraps (wrap.c), so that a batch never pays for a
     * refused attempt per object. |rewrap_refusal| says why the in-token
     * path was refused; it is written once, before |rewrap_path| becomes
     * REWRAP_HOST, and never again. */
    atomic_int rewrap_path;
    char rewrap_refusal[128];
    /* How the token refused CKA_VALUE_LEN in a C_UnwrapKey template (SoftHSM
     * 2.6.1: CKR_ATTRIBUTE_READ_ONLY), 0 while it has not: unwrapped
     * lengths are then measured (wrap.c). */
    atomic_ulong no_unwrap_value_len;
    unsigned retry_max; /* DCMSEAL_RETRY_MAX, read at open */
    char label[33];
    char *object;
    /* The PIN is held only while dcmseal_token_open logs in (in OpenSSL's
     * secure heap); a later login reads it again from |pin_source|, a file.
     * A PIN from the environment cannot be read again: it is removed from
     * the environment once read (|pin_from_env|). */
    unsigned char *pin;
    size_t pin_len;
    char *pin_source;
    int pin_from_env;
};

/* The handles of the KEKs used last on this session, most recent first, so
 * that wrap, unwrap and a rewrap from one version to another stay off
 * C_FindObjects. Valid only for the session handle they were filled on. */
#define KEK_CACHE_SIZE 4
struct kek_cache {
    int valid;
    char name[DCMSEAL_KEK_NAME_MAX + 1];
    uint32_t version;
    CK_OBJECT_HANDLE pub, priv;
    int disabled; /* as read with the handles; dcmseal disabling clears the cache */
};

/* The same for origin keys (version >= 1) and concealment keys (version 0),
 * which are used once per object too. */
#define HMAC_CACHE_SIZE 4
struct hmac_cache {
    int valid;
    char name[DCMSEAL_KEK_NAME_MAX + 1];
    uint32_t version;
    CK_OBJECT_HANDLE h;
};

struct dcmseal_session {
    dcmseal_token_t *tok;
    CK_SESSION_HANDLE h;
    unsigned gen; /* of the token when |h| was opened */
    struct kek_cache cache[KEK_CACHE_SIZE];
    struct hmac_cache hcache[HMAC_CACHE_SIZE];
    /* A throwaway AES session key that measures the length of unwrapped
     * keys (wrap.c), CK_INVALID_HANDLE until needed. */
    CK_OBJECT_HANDLE len_probe;
};

/* Forgets the object handles of |s|: they may not survive a new session. */
void cache_clear(dcmseal_session_t *s);

/* One attempt at an operation on |s->h|. It must be repeatable from the
 * start: session_run may call it several times. */
typedef CK_RV (*session_op)(dcmseal_session_t *s, void *arg);

/* Runs |op|; when cached object handles went stale, forgets them and runs it
 * again; when the token dropped the session or failed transiently, reopens
 * the session, logs in again and retries with exponential backoff (see
 * token.c). Returns the last CK_RV. */
CK_RV session_run(dcmseal_session_t *s, session_op op, void *arg);

/* CKR_OK when |s| is logged in as the user, else CKR_USER_NOT_LOGGED_IN or
 * the failure of C_GetSessionInfo. */
CK_RV session_check_login(dcmseal_session_t *s);

/* The modules a token URI's module-path names (a NULL-terminated array of
 * one), or, without one or when it is p11-kit's own proxy, every module
 * p11-kit registers; loaded and initialized. Errors: DCMSEAL_E_TOKEN. */
dcmseal_status p11_modules_load(CK_FUNCTION_LIST ***out, const char *path, dcmseal_error *err);
/* Finalizes and releases every module of |mods| but |keep|, and frees the
 * array. Accepts NULL. */
void p11_modules_release(CK_FUNCTION_LIST **mods, const CK_FUNCTION_LIST *keep);
/* Copies a blank-padded PKCS#11 string of |len| bytes, without the padding. */
void p11_copy_padded(char *dst, const unsigned char *src, size_t len);
/* Appends "'label'" for every initialized token of |mod| to |buf| (at
 * |*len|), ", "-separated, as far as |cap| allows (slots.c). */
void p11_token_labels(CK_FUNCTION_LIST *mod, char *buf, size_t cap, size_t *len);

/* ---- Return codes (ckr.c) ------------------------------------------------ */

/* What a CK_RV means to dcmseal; docs/HSM.md "Error classes". */
typedef enum {
    P11_OK,
    P11_REFUSED,     /* the token does not do that (mechanism, template, function) */
    P11_KEY,         /* the key: gone, disabled for this use, wrong type */
    P11_BAD_DATA,    /* the bytes: a ciphertext or wrapped key that does not decode */
    P11_TRANSIENT,   /* a dropped session, a busy or briefly absent device: retry */
    P11_UNAVAILABLE, /* anything else, unknown codes too: the token cannot serve now */
} p11_class;

/* "CKR_PIN_INCORRECT" etc.; never NULL. */
const char *ckr_name(CK_RV rv);
/* The class of |rv| from any call. */
p11_class ckr_class(CK_RV rv);
/* The class of |rv| from a call that consumed a ciphertext after the token
 * had accepted key and mechanism (C_Decrypt after C_DecryptInit). */
p11_class ckr_class_decrypt(CK_RV rv);
/* CKR_GENERAL_ERROR, CKR_FUNCTION_FAILED: the catch-all answers, which
 * tokens also give for bytes that do not decode. */
int ckr_catch_all(CK_RV rv);
/* The refusals that mean "not this mechanism or these parameters": where
 * dcmseal's AUTO preference tries RSA-OAEP SHA-1 after SHA-256. */
int ckr_mechanism_refused(CK_RV rv);
/* The status a wrap (|decrypting| 0) or unwrap (1) fails with for class
 * |c|: REFUSED and KEY are key errors, which a batch goes past; BAD_DATA is
 * an authentication failure (a usage error when wrapping); only TRANSIENT
 * (after the retries) and UNAVAILABLE say that the token is unavailable. */
dcmseal_status p11_status(p11_class c, int decrypting);

/* Fails with "<what> on token '<label>' failed: <CKR name>". */
dcmseal_status p11_fail(dcmseal_error *err, dcmseal_status st, const dcmseal_token_t *tok,
                        CK_RV rv, const char *fmt, ...) DCMSEAL_PRINTF(5, 6);

/* ---- KEK objects (keyobj.c) ----------------------------------------------- */

#define KEK_ID_MAX 96     /* "dcmseal-kek:" NAME ":v" VERSION */
#define MODULUS_MAX 1024 /* RSA-8192: larger keys fail the policy anyway */
#define EXPONENT_MAX 16
#define MECHS_MAX 8
#define BOOL_UNSET ((CK_BBOOL)0xff)

/* Everything the policy, the fingerprint and the flags need about one KEK
 * version. The public half is the one whose modulus is the private half's;
 * |pub| is CK_INVALID_HANDLE when there is none. */
struct kek_obj {
    CK_OBJECT_HANDLE pub, priv;
    int legacy_id; /* found under the CKA_ID dcmseal gave before: dcmseal-kek-vN */
    CK_KEY_TYPE type;
    CK_BBOOL sensitive, extractable, decrypt, unwrap, sign, sign_recover;
    CK_BBOOL encrypt, wrap, pub_private, pub_modifiable;
    unsigned char modulus[MODULUS_MAX], exponent[EXPONENT_MAX], pub_exponent[EXPONENT_MAX];
    CK_ULONG modulus_len, exponent_len, pub_exponent_len;
    CK_MECHANISM_TYPE mechs[MECHS_MAX];
    CK_ULONG mechs_len; /* bytes, or CK_UNAVAILABLE_INFORMATION */
};

/* 1..64 bytes of A-Z a-z 0-9 . _ - */
int kek_name_ok(const char *name);
/* DCMSEAL_OK for a name kek_name_ok takes; otherwise DCMSEAL_E_KEY, "key
 * '...' not found on token '...'": no key can have such a name. */
dcmseal_status kek_name_known(const dcmseal_session_t *s, const char *name, dcmseal_error *err);
/* Writes the CKA_ID of |name| v|version| to |id|, "dcmseal-kek:NAME:vN",
 * unique per name and version; returns its length. Versions made before
 * carry "dcmseal-kek-vN" under every name: kek_id_legacy. */
size_t kek_id(char id[KEK_ID_MAX], const char *name, uint32_t version);
size_t kek_id_legacy(char id[KEK_ID_MAX], uint32_t version);
/* The size in bits of a big-endian modulus; 0 when unavailable. */
unsigned kek_modulus_bits(const unsigned char *m, CK_ULONG len);
/* All handles matching |t| into a growing array (free() it). */
CK_RV p11_find_all(dcmseal_session_t *s, CK_ATTRIBUTE *t, CK_ULONG n, CK_OBJECT_HANDLE **out,
                   size_t *count);

/* C_GetAttributeValue that leaves missing, sensitive or oversized attributes
 * marked unavailable instead of failing. */
CK_RV p11_read_attrs(dcmseal_session_t *s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE *t, CK_ULONG n);
/* Both halves of version |version| of |name| (either CKA_ID form); o->priv
 * is CK_INVALID_HANDLE when there is none. */
CK_RV kek_read(dcmseal_session_t *s, const char *name, uint32_t version, struct kek_obj *o);
/* The private half may neither decrypt nor unwrap, as
 * dcmseal_kek_set_enabled(..., 0) leaves it. */
int kek_disabled(const struct kek_obj *o);
/* The DCMSEAL_KEK_WEAK_* and DCMSEAL_KEK_NO_PUBLIC bits of |o|. */
unsigned kek_weak(const struct kek_obj *o);
/* Fills |info| (name, version, bits, fingerprint, enabled, weak) from |o|;
 * 0 when the fingerprint cannot be computed (no public exponent). */
int kek_describe(dcmseal_kek_info *info, const struct kek_obj *o, const char *name,
                 uint32_t version);
/* Remembers the handles of |o| as those of |name| v|version| on |s|. */
void kek_cache_put(dcmseal_session_t *s, const char *name, uint32_t version,
                   const struct kek_obj *o);
/* The handles of |kek| and whether it is disabled, from the cache or the
 * token; |*gone| when the key is absent or no longer has the fingerprint it
 * was found with. */
CK_RV kek_handles(dcmseal_session_t *s, const dcmseal_kek_info *kek, CK_OBJECT_HANDLE *pub,
                  CK_OBJECT_HANDLE *priv, int *disabled, int *gone);
/* Private keys labelled |name| (any when NULL). */
CK_RV kek_versions(dcmseal_session_t *s, const char *name, CK_OBJECT_HANDLE **hs, size_t *n);
/* CKA_LABEL and the version in CKA_ID (either form) of |h|; version 0 when
 * it is not a dcmseal KEK. */
CK_RV kek_identity(dcmseal_session_t *s, CK_OBJECT_HANDLE h,
                   char label[DCMSEAL_KEK_NAME_MAX + 1], uint32_t *version);
/* The versions of |name| that have a private key, highest first (free()). */
CK_RV kek_name_versions(dcmseal_session_t *s, const char *name, uint32_t **out, size_t *n);

/* ---- Policy (policy.c) ---------------------------------------------------- */

/* The key policy; on success fills |info|. */
dcmseal_status kek_judge(dcmseal_session_t *s, dcmseal_kek_info *info, const struct kek_obj *o,
                         const char *name, uint32_t version, dcmseal_error *err);
/* The minimum decryption version of |name| and, unless |hs| is NULL, the
 * policy objects that hold it (free() them). */
CK_RV kek_min_read(dcmseal_session_t *s, const char *name, uint32_t *min, CK_OBJECT_HANDLE **hs,
                   size_t *n);

/* The retention of |name| in days (the longest of its retention objects,
 * 0: none) and whether purge protection is on; |locked| (may be NULL): the
 * token itself refuses to destroy a purge-protected one. */
CK_RV kek_retention_read(dcmseal_session_t *s, const char *name, uint32_t *days, int *purge,
                         int *locked);
/* When version |version| of |name| was last disabled (seconds since 1970),
 * or 0 when that is not recorded. */
CK_RV kek_disabled_read(dcmseal_session_t *s, const char *name, uint32_t version, int64_t *at);
/* Records that the version is disabled now: with |renew| (it was enabled
 * until now) in place of any earlier record, else only when there is none
 * (disabling it again does not restart its retention). */
CK_RV kek_disabled_note(dcmseal_session_t *s, const char *name, uint32_t version, int renew);
/* Removes the version's disabled-at records (enabled again, destroyed). */
CK_RV kek_disabled_forget(dcmseal_session_t *s, const char *name, uint32_t version);

/* ---- Lookup (lookup.c) ---------------------------------------------------- */

struct find_ctx {
    const char *name;
    uint32_t version;  /* asked for; 0 = the primary */
    uint32_t found;    /* resolved, 0 when absent */
    uint32_t primary;  /* the highest enabled version, 0 when unknown or none */
    size_t n_versions; /* how many versions |name| has */
    uint32_t min;      /* the minimum decryption version, 0 when none */
    int has_origin;    /* the version found has an origin key */
    unsigned origin_weak; /* and what it lacks (origin_weak) */
    int require_origin;
    struct kek_obj obj;
};

/* A session_op over a struct find_ctx. */
CK_RV kek_find_op(dcmseal_session_t *s, void *arg);
/* dcmseal_kek_find without the argument checks. */
dcmseal_status kek_find(dcmseal_session_t *s, dcmseal_kek_info *out, const char *name,
                        uint32_t version, dcmseal_error *err);

/* ---- Generation and state (keygen.c), unwrap (wrap.c) ---------------------- */

/* Generates version |version| of KEK |name| (RSA |bits|) on |s|'s token
 * with dcmseal's template: token objects; private half sensitive, never
 * extractable, decrypt and unwrap only, RSA-OAEP only
 * (CKA_ALLOWED_MECHANISMS), no signing; public half encrypt and wrap only,
 * private (invisible without the PIN) and not modifiable. A token that
 * refuses an attribute of it gets the template without
 * CKA_ALLOWED_MECHANISMS, then also without the public half's
 * CKA_PRIVATE/CKA_MODIFIABLE and CKA_SIGN_RECOVER: the key made then says
 * what it lacks when read back (kek_weak, `key list`, `hsm-check`). No
 * session retry: `key create`, `key rotate` and the token check share it,
 * so that the check tests exactly what dcmseal generates. */
CK_RV kek_generate_pair(dcmseal_session_t *s, const char *name, uint32_t version,
                        CK_ULONG bits, CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv);

/* C_UnwrapKey of |in| with |key| and |mech| into a new sensitive,
 * extractable generic secret session object |*dek| of exactly
 * DCMSEAL_DEK_LEN bytes (CKA_VALUE_LEN, or measured where the token refuses
 * that attribute; another length is CKR_WRAPPED_KEY_INVALID): the first
 * half of an in-token rewrap, shared with the token check for the same
 * reason. */
CK_RV kek_unwrap_dek(dcmseal_session_t *s, CK_MECHANISM *mech, CK_OBJECT_HANDLE key,
                     const uint8_t *in, size_t in_len, CK_OBJECT_HANDLE *dek);

/* Whether the token lets the CKA_VALUE of |dek|, unwrapped as sensitive,
 * be read (openCryptoki 3.8.1 ignores CKA_SENSITIVE in C_UnwrapKey); |*rv|
 * is the token's answer. Only the length is asked for. */
int kek_dek_readable(dcmseal_session_t *s, CK_OBJECT_HANDLE dek, CK_RV *rv);

/* The path dcmseal_kek_rewrap takes on a token (dcmseal_token.rewrap_path). */
enum { REWRAP_UNDECIDED, REWRAP_IN_TOKEN, REWRAP_HOST };

typedef enum {
    REWRAP_FALLBACK_NONE,   /* the rewrap fails with the token's answer */
    REWRAP_FALLBACK_OBJECT, /* this object goes through host memory */
    REWRAP_FALLBACK_TOKEN,  /* every object on this token does, from now on */
} rewrap_fallback;

/* What dcmseal_kek_rewrap does when C_UnwrapKey or C_WrapKey of its
 * in-token path answers |rv| with RSA-OAEP variant |used|: the one rule,
 * which hsm-check reports. */
rewrap_fallback kek_rewrap_fallback(CK_RV rv, dcmseal_oaep used);

/* Sets CKA_DECRYPT and CKA_UNWRAP of |priv| to |enabled|: how dcmseal
 * disables and enables a KEK version, so that the token itself refuses to
 * decrypt with a disabled one. The public half of a version made before
 * (modifiable) gets CKA_ENCRYPT and CKA_WRAP set too; that of a version made
 * now cannot be changed, and dcmseal refuses to wrap under a disabled
 * version itself. |pub| may be CK_INVALID_HANDLE. Shared with the check. */
CK_RV kek_set_uses(dcmseal_session_t *s, CK_OBJECT_HANDLE priv, CK_OBJECT_HANDLE pub,
                   CK_BBOOL enabled);

/* ---- Origin and concealment keys (origin.c) --------------------------------- */

#define HMAC_ID_MAX (32 + DCMSEAL_KEK_NAME_MAX)

/* The CKA_ID of the origin key of |name| v|version|, or of the name's
 * concealment key when |version| is 0; its length (0: does not fit). */
size_t hmac_key_id(char id[HMAC_ID_MAX], const char *name, uint32_t version);
/* That key's handle, CK_INVALID_HANDLE when there is none. */
CK_RV hmac_key_find(dcmseal_session_t *s, const char *name, uint32_t version,
                    CK_OBJECT_HANDLE *h);
/* The DCMSEAL_KEK_WEAK_* bits of the origin key |h| (CK_INVALID_HANDLE:
 * none, 0): what it lacks of dcmseal's template and still works without. */
unsigned origin_weak(dcmseal_session_t *s, CK_OBJECT_HANDLE h);
/* Generates the origin key of |name| v|version| with dcmseal's template,
 * replacing one left over. One call, no retry, as kek_generate_pair. */
CK_RV origin_generate(dcmseal_session_t *s, const char *name, uint32_t version);
/* Generates the concealment key of |name| unless it has one; |*made| says
 * whether it did. */
CK_RV conceal_ensure(dcmseal_session_t *s, const char *name, int *made);
/* Sets CKA_SIGN and CKA_VERIFY of the origin key of |name| v|version| to
 * |enabled|, or destroys it; nothing when the version has none. */
CK_RV origin_set_uses(dcmseal_session_t *s, const char *name, uint32_t version, int destroy,
                      CK_BBOOL enabled);
/* Whether |name| requires origin proofs and, unless |hs| is NULL, the
 * policy objects that say so (free() them). */
CK_RV origin_policy_read(dcmseal_session_t *s, const char *name, int *required,
                         CK_OBJECT_HANDLE **hs, size_t *n);
/* Destroys the concealment key and origin policy of |name| once it has no
 * version left. */
CK_RV origin_forget_name(dcmseal_session_t *s, const char *name);

#endif
