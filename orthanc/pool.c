/* The token and a pool of its sessions, behind one key ring that any number
 * of Orthanc's threads may use at once.
 *
 * A session is borrowed for one token call (a wrap or an unwrap), not for a
 * whole request: the AES work of a large object then never holds a session
 * that another request needs for its RSA. Sessions heal themselves (see
 * pkcs11.h), so the pool never closes one; it opens them as they are first
 * needed, so that a token that is away at the time costs nothing until it
 * is asked for.
 *
 * Every token call's outcome passes through here, which is where an outage
 * is seen: the first failure that says the token is unavailable is logged,
 * later ones are counted, and the first success after them is logged with
 * the count. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "plugin.h"

typedef struct slot {
    dcmseal_session_t *session;
    dcmseal_token_ring_t *ring;
    uint32_t current; /* KEK version |ring| wraps under; 0: none set */
    int busy;
} slot;

struct pool {
    dcmseal_keyring ring;
    dcmseal_token_t *tok;
    char key[DCMSEAL_KEK_NAME_MAX + 1];
    uint64_t refresh_ms;

    pthread_mutex_t lock; /* everything below */
    pthread_cond_t freed;
    slot *slots;
    unsigned n, open;
    uint32_t primary;
    uint64_t primary_checked_ms;
    uint64_t token_calls, waits;
    int outage;
    uint64_t outage_since_ms, outage_failures, outages;
    atomic_int outage_flag; /* |outage|, read without the lock on success */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- outages -------------------------------------------------------------- */

/* Only "the token cannot be reached" is an outage. A missing or disabled
 * key, or a wrapped key the token rejects, belongs to one object and is
 * reported with it. */
static void note(pool *p, dcmseal_status st, const dcmseal_error *err)
{
    if (st == DCMSEAL_OK) {
        if (!atomic_load(&p->outage_flag))
            return;
        pthread_mutex_lock(&p->lock);
        if (p->outage) {
            plugin_log(PLUGIN_WARNING,
                       "dcmseal: token '%s' answers again after %.1f s; %llu token calls "
                       "failed meanwhile",
                       dcmseal_token_get0_label(p->tok),
                       (double)(now_ms() - p->outage_since_ms) / 1000.0,
                       (unsigned long long)p->outage_failures);
            p->outage = 0;
            atomic_store(&p->outage_flag, 0);
        }
        pthread_mutex_unlock(&p->lock);
        return;
    }
    if (st != DCMSEAL_E_TOKEN)
        return;
    pthread_mutex_lock(&p->lock);
    if (!p->outage) {
        plugin_log(PLUGIN_ERROR,
                   "dcmseal: token '%s' is unavailable (%s): storing and reading sealed "
                   "files fails until it answers again; logged once per outage",
                   dcmseal_token_get0_label(p->tok), err != NULL ? err->message : "?");
        p->outage = 1;
        atomic_store(&p->outage_flag, 1);
        p->outage_since_ms = now_ms();
        p->outage_failures = 0;
        p->outages++;
    }
    p->outage_failures++;
    pthread_mutex_unlock(&p->lock);
}

/* ---- sessions ------------------------------------------------------------- */

static dcmseal_status acquire(pool *p, slot **out, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    slot *s = NULL;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        /* An open idle session first; then room for a new one. */
        for (unsigned i = 0; i < p->n && s == NULL; i++)
            if (!p->slots[i].busy && p->slots[i].session != NULL)
                s = &p->slots[i];
        for (unsigned i = 0; i < p->n && s == NULL; i++)
            if (!p->slots[i].busy)
                s = &p->slots[i];
        if (s != NULL)
            break;
        p->waits++;
        pthread_cond_wait(&p->freed, &p->lock);
    }
    s->busy = 1;
    pthread_mutex_unlock(&p->lock);
    if (s->session == NULL) {
        st = dcmseal_session_open(&s->session, p->tok, err);
        if (st == DCMSEAL_OK &&
            (st = dcmseal_token_ring_new(&s->ring, s->session, NULL, DCMSEAL_OAEP_AUTO, err)) !=
                DCMSEAL_OK) {
            dcmseal_session_free(s->session);
            s->session = NULL;
        }
        note(p, st, err);
        pthread_mutex_lock(&p->lock);
        if (st == DCMSEAL_OK)
            p->open++;
        else
            s->busy = 0;
        pthread_mutex_unlock(&p->lock);
        if (st != DCMSEAL_OK) {
            pthread_cond_signal(&p->freed);
            return st;
        }
    }
    *out = s;
    return DCMSEAL_OK;
}

static void release(pool *p, slot *s)
{
    pthread_mutex_lock(&p->lock);
    s->busy = 0;
    p->token_calls++;
    pthread_mutex_unlock(&p->lock);
    pthread_cond_signal(&p->freed);
}

/* Makes |s|'s ring wrap under the primary version, which is looked up again
 * once |refresh_ms| have passed since it last was (or at once, |force|). */
static dcmseal_status use_primary(pool *p, slot *s, int force, dcmseal_error *err)
{
    dcmseal_status st;
    pthread_mutex_lock(&p->lock);
    int stale = force || p->primary == 0 || now_ms() - p->primary_checked_ms >= p->refresh_ms;
    uint32_t version = p->primary;
    pthread_mutex_unlock(&p->lock);
    if (stale) {
        dcmseal_kek_info info;
        st = dcmseal_kek_find(s->session, &info, p->key, 0, err);
        note(p, st, err);
        if (st != DCMSEAL_OK)
            return st;
        pthread_mutex_lock(&p->lock);
        if (p->primary != 0 && p->primary != info.version)
            plugin_log(PLUGIN_WARNING, "dcmseal: new files are now wrapped under key '%s' v%u "
                                       "(was v%u)",
                       p->key, info.version, p->primary);
        p->primary = version = info.version;
        p->primary_checked_ms = now_ms();
        pthread_mutex_unlock(&p->lock);
    }
    if (s->current == version)
        return DCMSEAL_OK;
    s->current = 0;
    st = dcmseal_token_ring_set_current(s->ring, p->key, version, err);
    note(p, st, err);
    if (st == DCMSEAL_OK)
        s->current = version;
    return st;
}

/* ---- the key ring --------------------------------------------------------- */

static dcmseal_status pool_wrap(void *self, dcmseal_wrap_meta *meta, uint8_t *out,
                                size_t out_cap, size_t *out_len,
                                const uint8_t dek[DCMSEAL_DEK_LEN], dcmseal_error *err)
{
    pool *p = self;
    slot *s = NULL;
    dcmseal_status st = acquire(p, &s, err);
    /* A version that was primary a moment ago may have been disabled since:
     * the token refuses it (a key error), and the primary is looked up
     * again at once. */
    for (int force = 0; st == DCMSEAL_OK && force < 2; force++) {
        const dcmseal_keyring *r = dcmseal_token_ring_get0_keyring(s->ring);
        if ((st = use_primary(p, s, force, err)) == DCMSEAL_OK) {
            st = r->wrap(r->self, meta, out, out_cap, out_len, dek, err);
            note(p, st, err);
        }
        if (st != DCMSEAL_E_KEY)
            break;
    }
    if (s != NULL)
        release(p, s);
    return st;
}

static dcmseal_status pool_unwrap(void *self, uint8_t dek[DCMSEAL_DEK_LEN],
                                  const dcmseal_wrap_meta *meta, const uint8_t *wrapped,
                                  size_t wrapped_len, dcmseal_error *err)
{
    pool *p = self;
    slot *s = NULL;
    dcmseal_status st = acquire(p, &s, err);
    if (st == DCMSEAL_OK) {
        const dcmseal_keyring *r = dcmseal_token_ring_get0_keyring(s->ring);
        st = r->unwrap(r->self, dek, meta, wrapped, wrapped_len, err);
        note(p, st, err);
        release(p, s);
    }
    return st;
}

static dcmseal_status pool_current(void *self, dcmseal_wrap_meta *meta, dcmseal_error *err)
{
    pool *p = self;
    slot *s = NULL;
    dcmseal_status st = acquire(p, &s, err);
    if (st == DCMSEAL_OK) {
        const dcmseal_keyring *r = dcmseal_token_ring_get0_keyring(s->ring);
        if ((st = use_primary(p, s, 0, err)) == DCMSEAL_OK)
            st = r->current(r->self, meta, err);
        release(p, s);
    }
    return st;
}

/* Origin proofs (docs/FORMAT.md "Origin proof"), on whichever session is
 * free, like unwrap: each is one call into the token. */
static dcmseal_status pool_origin(void *self, dcmseal_origin_policy *out,
                                  const dcmseal_wrap_meta *meta, dcmseal_error *err)
{
    pool *p = self;
    slot *s = NULL;
    dcmseal_status st = acquire(p, &s, err);
    if (st == DCMSEAL_OK) {
        const dcmseal_keyring *r = dcmseal_token_ring_get0_keyring(s->ring);
        st = r->origin(r->self, out, meta, err);
        note(p, st, err);
        release(p, s);
    }
    return st;
}

static dcmseal_status pool_prove(void *self, uint8_t proof[DCMSEAL_PROOF_LEN],
                                 const dcmseal_wrap_meta *meta, const uint8_t *msg,
                                 size_t msg_len, dcmseal_error *err)
{
    pool *p = self;
    slot *s = NULL;
    dcmseal_status st = acquire(p, &s, err);
    if (st == DCMSEAL_OK) {
        const dcmseal_keyring *r = dcmseal_token_ring_get0_keyring(s->ring);
        st = r->prove(r->self, proof, meta, msg, msg_len, err);
        note(p, st, err);
        release(p, s);
    }
    return st;
}

static dcmseal_status pool_check_proof(void *self, const dcmseal_wrap_meta *meta,
                                       const uint8_t *msg, size_t msg_len,
                                       const uint8_t proof[DCMSEAL_PROOF_LEN],
                                       dcmseal_error *err)
{
    pool *p = self;
    slot *s = NULL;
    dcmseal_status st = acquire(p, &s, err);
    if (st == DCMSEAL_OK) {
        const dcmseal_keyring *r = dcmseal_token_ring_get0_keyring(s->ring);
        st = r->check_proof(r->self, meta, msg, msg_len, proof, err);
        note(p, st, err);
        release(p, s);
    }
    return st;
}

const dcmseal_keyring *pool_keyring(pool *p)
{
    return &p->ring;
}

/* ---- life ----------------------------------------------------------------- */

dcmseal_status pool_new(pool **out, const plugin_config *cfg, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    pool *p = OPENSSL_zalloc(sizeof *p);
    slot *s = NULL;
    const char *key;
    DCMSEAL_ENSURE(p != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->freed, NULL);
    p->ring = (dcmseal_keyring){.self = p,
                                .wrap = pool_wrap,
                                .unwrap = pool_unwrap,
                                .current = pool_current,
                                .origin = pool_origin,
                                .prove = pool_prove,
                                .check_proof = pool_check_proof};
    p->refresh_ms = (uint64_t)cfg->key_refresh_s * 1000u;
    p->n = cfg->sessions;
    p->slots = OPENSSL_zalloc(p->n * sizeof p->slots[0]);
    DCMSEAL_ENSURE(p->slots != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    DCMSEAL_GUARD(dcmseal_token_open(&p->tok, cfg->token, err));
    key = cfg->key != NULL ? cfg->key : dcmseal_token_get0_object(p->tok);
    DCMSEAL_ENSURE(key != NULL, err, DCMSEAL_E_USAGE,
                   "configuration: no key: set Dcmseal.Key, DCMSEAL_KEY, or object= in the "
                   "token URI");
    DCMSEAL_ENSURE(strlen(key) <= DCMSEAL_KEK_NAME_MAX, err, DCMSEAL_E_USAGE,
                   "configuration: key name longer than %d bytes", DCMSEAL_KEK_NAME_MAX);
    strcpy(p->key, key);
    /* A wrong key name must stop Orthanc now, not fail every upload. */
    DCMSEAL_GUARD(acquire(p, &s, err));
    st = use_primary(p, s, 1, err);
    release(p, s);
    DCMSEAL_GUARD(st);
    *out = p;
    p = NULL;
out:
    pool_free(p);
    return st;
}

void pool_free(pool *p)
{
    if (p == NULL)
        return;
    for (unsigned i = 0; p->slots != NULL && i < p->n; i++) {
        dcmseal_token_ring_free(p->slots[i].ring);
        dcmseal_session_free(p->slots[i].session);
    }
    OPENSSL_free(p->slots);
    dcmseal_token_free(p->tok);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->freed);
    OPENSSL_free(p);
}

void pool_get_stats(pool *p, pool_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&p->lock);
    snprintf(out->token, sizeof out->token, "%s", dcmseal_token_get0_label(p->tok));
    memcpy(out->key, p->key, sizeof out->key);
    out->primary = p->primary;
    out->sessions_open = p->open;
    out->sessions_max = p->n;
    out->token_calls = p->token_calls;
    out->waits = p->waits;
    out->outage = p->outage;
    out->outage_seconds = p->outage ? (double)(now_ms() - p->outage_since_ms) / 1000.0 : 0;
    out->outages = p->outages;
    pthread_mutex_unlock(&p->lock);
}
