/* What token.c, kek.c and check.c share. Not installed, not exported. */
#ifndef DCMSEAL_PKCS11_INTERNAL_H
#define DCMSEAL_PKCS11_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <p11-kit/pkcs11.h>

#include <dcmseal/pkcs11.h>

#define DCMSEAL_PIN_MAX 256

struct dcmseal_token {
    CK_FUNCTION_LIST *mod;
    CK_SLOT_ID slot;
    /* Held open for the token's lifetime: PKCS#11 drops the login state when
     * the application's last session closes. */
    CK_SESSION_HANDLE login_session;
    pthread_mutex_t lock; /* serializes C_Login: the login state is token-wide */
    /* Held shared by every call into the module, exclusively while the
     * module is finalized and initialized again: some tokens (SoftHSM whose
     * directory went away and came back) recover no other way. |gen| counts
     * those restarts; a session handle from an older one is void. */
    pthread_rwlock_t gate;
    unsigned gen;
    unsigned char serial[16];
    atomic_int no_oaep_sha256;
    /* The token refused C_UnwrapKey/C_WrapKey for a rewrap: a batch should
     * not pay for a failing attempt per object. */
    atomic_int no_token_rewrap;
    unsigned retry_max; /* DCMSEAL_RETRY_MAX, read at open */
    char label[33];
    char *object;
    unsigned char pin[DCMSEAL_PIN_MAX];
    size_t pin_len;
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
};

struct dcmseal_session {
    dcmseal_token_t *tok;
    CK_SESSION_HANDLE h;
    unsigned gen; /* of the token when |h| was opened */
    struct kek_cache cache[KEK_CACHE_SIZE];
};

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

/* "CKR_PIN_INCORRECT" etc.; never NULL. */
const char *ckr_name(CK_RV rv);

/* Fails with "<what> on token '<label>' failed: <CKR name>". */
dcmseal_status p11_fail(dcmseal_error *err, dcmseal_status st, const dcmseal_token_t *tok,
                        CK_RV rv, const char *fmt, ...) DCMSEAL_PRINTF(5, 6);

/* Generates version |version| of KEK |name| (RSA |bits|) on |s|'s token
 * with dcmseal's template: token objects, private half sensitive, never
 * extractable, decrypt and unwrap only; public half encrypt and wrap only.
 * One call, no retry: `key create`, `key rotate` and the token check share
 * it, so that the check tests exactly what dcmseal generates. */
CK_RV kek_generate_pair(dcmseal_session_t *s, const char *name, uint32_t version,
                        CK_ULONG bits, CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv);

/* C_UnwrapKey of |in| with |key| and |mech| into a new sensitive,
 * extractable generic secret session object |*dek|: the first half of an
 * in-token rewrap, shared with the token check for the same reason. */
CK_RV kek_unwrap_dek(dcmseal_session_t *s, CK_MECHANISM *mech, CK_OBJECT_HANDLE key,
                     const uint8_t *in, size_t in_len, CK_OBJECT_HANDLE *dek);

/* Sets CKA_DECRYPT and CKA_UNWRAP of |priv|, then CKA_ENCRYPT and CKA_WRAP
 * of |pub|, to |enabled|: how dcmseal disables and enables a KEK version,
 * so that the token itself refuses a disabled one. Shared with the check. */
CK_RV kek_set_uses(dcmseal_session_t *s, CK_OBJECT_HANDLE priv, CK_OBJECT_HANDLE pub,
                   CK_BBOOL enabled);

#endif
