/* A bounded cache of unwrapped DEKs, and the key ring that consults it
 * (engine.h "DEK cache"). A lookup scans every entry: a cache is at most a
 * few thousand entries of 32-byte digests, and one scan costs far less than
 * the RSA decryption it saves. */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "internal.h"

#define ID_LEN 32 /* SHA-256 */

typedef struct entry {
    uint8_t id[ID_LEN];
    uint64_t born_ms; /* when it entered: the age limit counts from here */
    uint64_t used;    /* tick of the last hit or insert: LRU */
    uint8_t *dek;     /* DCMSEAL_DEK_LEN bytes, secure heap; NULL: free entry */
} entry;

struct dcmseal_dek_cache {
    pthread_mutex_t lock;
    entry *e;
    size_t cap, n;
    uint64_t max_age_ms;
    uint64_t tick;
    uint64_t hits, misses, evicted;
};

struct dcmseal_cached_ring {
    dcmseal_keyring ring;
    dcmseal_dek_cache_t *cache;
    const dcmseal_keyring *inner;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Everything that determines what |wrapped| unwraps to, and under which
 * policy: the same slot, byte for byte, or a miss. */
static int slot_id(uint8_t id[ID_LEN], const dcmseal_wrap_meta *meta, const uint8_t *wrapped,
                   size_t wrapped_len)
{
    uint8_t fixed[DCMSEAL_KEK_NAME_MAX + 1 + 4 + 1 + DCMSEAL_KEK_FINGERPRINT_LEN + 8];
    size_t n = 0;
    memset(fixed, 0, sizeof fixed);
    memcpy(fixed, meta->kek_name, strnlen(meta->kek_name, DCMSEAL_KEK_NAME_MAX));
    n += DCMSEAL_KEK_NAME_MAX + 1;
    for (int i = 3; i >= 0; i--)
        fixed[n++] = (uint8_t)(meta->kek_version >> (8 * i));
    fixed[n++] = (uint8_t)meta->oaep;
    memcpy(fixed + n, meta->kek_fingerprint, DCMSEAL_KEK_FINGERPRINT_LEN);
    n += DCMSEAL_KEK_FINGERPRINT_LEN;
    for (int i = 7; i >= 0; i--)
        fixed[n++] = (uint8_t)((uint64_t)wrapped_len >> (8 * i));
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(md, fixed, n) == 1 &&
             EVP_DigestUpdate(md, wrapped, wrapped_len) == 1 &&
             EVP_DigestFinal_ex(md, id, NULL) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

/* Called holding the lock. */
static void evict(dcmseal_dek_cache_t *c, entry *e)
{
    OPENSSL_secure_clear_free(e->dek, DCMSEAL_DEK_LEN);
    e->dek = NULL;
    c->n--;
    c->evicted++;
}

static int expired(const dcmseal_dek_cache_t *c, const entry *e, uint64_t now)
{
    return now - e->born_ms >= c->max_age_ms;
}

static int lookup(dcmseal_dek_cache_t *c, uint8_t dek[DCMSEAL_DEK_LEN],
                  const uint8_t id[ID_LEN])
{
    int hit = 0;
    uint64_t now = now_ms();
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->cap && !hit; i++) {
        entry *e = &c->e[i];
        if (e->dek == NULL || memcmp(e->id, id, ID_LEN) != 0)
            continue;
        if (expired(c, e, now)) {
            evict(c, e);
            break;
        }
        memcpy(dek, e->dek, DCMSEAL_DEK_LEN);
        e->used = ++c->tick;
        hit = 1;
    }
    if (hit)
        c->hits++;
    else
        c->misses++;
    pthread_mutex_unlock(&c->lock);
    return hit;
}

/* Keeps |dek| under |id|: in a free entry, or in place of an expired one,
 * or of the least recently used. */
static void insert(dcmseal_dek_cache_t *c, const uint8_t id[ID_LEN],
                   const uint8_t dek[DCMSEAL_DEK_LEN])
{
    uint64_t now = now_ms();
    entry *slot = NULL, *lru = NULL;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->cap; i++) {
        entry *e = &c->e[i];
        /* Another thread may have cached the same slot meanwhile. */
        if (e->dek != NULL && (expired(c, e, now) || memcmp(e->id, id, ID_LEN) == 0))
            evict(c, e);
        if (e->dek == NULL && slot == NULL)
            slot = e;
        else if (e->dek != NULL && (lru == NULL || e->used < lru->used))
            lru = e;
    }
    if (slot == NULL && (slot = lru) != NULL)
        evict(c, slot);
    if (slot != NULL && (slot->dek = OPENSSL_secure_malloc(DCMSEAL_DEK_LEN)) != NULL) {
        memcpy(slot->dek, dek, DCMSEAL_DEK_LEN);
        memcpy(slot->id, id, ID_LEN);
        slot->born_ms = now;
        slot->used = ++c->tick;
        c->n++;
    }
    pthread_mutex_unlock(&c->lock);
}

dcmseal_status dcmseal_dek_cache_new(dcmseal_dek_cache_t **out, size_t max_entries,
                                     uint32_t max_age_ms, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    dcmseal_dek_cache_t *c = NULL;
    DCMSEAL_ENSURE(out != NULL, err, DCMSEAL_E_USAGE, "DEK cache: missing argument");
    DCMSEAL_ENSURE(max_entries <= DCMSEAL_DEK_CACHE_MAX, err, DCMSEAL_E_USAGE,
                   "DEK cache of %zu entries: at most %d", max_entries, DCMSEAL_DEK_CACHE_MAX);
    c = OPENSSL_zalloc(sizeof *c);
    DCMSEAL_ENSURE(c != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    pthread_mutex_init(&c->lock, NULL);
    c->cap = max_age_ms == 0 ? 0 : max_entries;
    c->max_age_ms = max_age_ms;
    if (c->cap > 0) {
        c->e = OPENSSL_zalloc(c->cap * sizeof c->e[0]);
        DCMSEAL_ENSURE(c->e != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    }
    *out = c;
    c = NULL;
out:
    dcmseal_dek_cache_free(c);
    return st;
}

void dcmseal_dek_cache_clear(dcmseal_dek_cache_t *c)
{
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->cap; i++)
        if (c->e[i].dek != NULL)
            evict(c, &c->e[i]);
    pthread_mutex_unlock(&c->lock);
}

void dcmseal_dek_cache_expire(dcmseal_dek_cache_t *c)
{
    uint64_t now = now_ms();
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->cap; i++)
        if (c->e[i].dek != NULL && expired(c, &c->e[i], now))
            evict(c, &c->e[i]);
    pthread_mutex_unlock(&c->lock);
}

void dcmseal_dek_cache_free(dcmseal_dek_cache_t *c)
{
    if (c == NULL)
        return;
    if (c->e != NULL)
        dcmseal_dek_cache_clear(c);
    OPENSSL_free(c->e);
    pthread_mutex_destroy(&c->lock);
    OPENSSL_free(c);
}

void dcmseal_dek_cache_get_stats(dcmseal_dek_cache_t *c, dcmseal_dek_cache_stats *out)
{
    pthread_mutex_lock(&c->lock);
    out->hits = c->hits;
    out->misses = c->misses;
    out->evicted = c->evicted;
    out->entries = c->n;
    pthread_mutex_unlock(&c->lock);
    out->secure = CRYPTO_secure_malloc_initialized();
}

/* ---- the ring ------------------------------------------------------------ */

static dcmseal_status cached_wrap(void *self, dcmseal_wrap_meta *meta, uint8_t *out,
                                  size_t out_cap, size_t *out_len,
                                  const uint8_t dek[DCMSEAL_DEK_LEN], dcmseal_error *err)
{
    dcmseal_cached_ring_t *r = self;
    uint8_t id[ID_LEN];
    dcmseal_status st = r->inner->wrap(r->inner->self, meta, out, out_cap, out_len, dek, err);
    /* The object just written is likely read soon. */
    if (st == DCMSEAL_OK && r->cache->cap > 0 && slot_id(id, meta, out, *out_len))
        insert(r->cache, id, dek);
    return st;
}

static dcmseal_status cached_unwrap(void *self, uint8_t dek[DCMSEAL_DEK_LEN],
                                    const dcmseal_wrap_meta *meta, const uint8_t *wrapped,
                                    size_t wrapped_len, dcmseal_error *err)
{
    dcmseal_cached_ring_t *r = self;
    uint8_t id[ID_LEN];
    int have_id = r->cache->cap > 0 && slot_id(id, meta, wrapped, wrapped_len);
    if (have_id && lookup(r->cache, dek, id))
        return DCMSEAL_OK;
    dcmseal_status st = r->inner->unwrap(r->inner->self, dek, meta, wrapped, wrapped_len, err);
    if (st == DCMSEAL_OK && have_id)
        insert(r->cache, id, dek);
    return st;
}

static dcmseal_status cached_rewrap(void *self, dcmseal_wrap_meta *meta, uint8_t *out,
                                    size_t out_cap, size_t *out_len, int *in_token,
                                    const dcmseal_wrap_meta *old_meta, const uint8_t *wrapped,
                                    size_t wrapped_len, dcmseal_error *err)
{
    dcmseal_cached_ring_t *r = self;
    return r->inner->rewrap(r->inner->self, meta, out, out_cap, out_len, in_token, old_meta,
                            wrapped, wrapped_len, err);
}

static dcmseal_status cached_current(void *self, dcmseal_wrap_meta *meta, dcmseal_error *err)
{
    dcmseal_cached_ring_t *r = self;
    return r->inner->current(r->inner->self, meta, err);
}

/* A proof that verified, found by a digest of the KEK it was checked under
 * and of the message and proof themselves (FORMAT.md "Origin proof"): the
 * same pair is as good as checked again, for as long as a DEK is kept. */
static int proof_id(uint8_t id[ID_LEN], const dcmseal_wrap_meta *meta, const uint8_t *msg,
                    size_t msg_len, const uint8_t proof[DCMSEAL_PROOF_LEN])
{
    static const char label[] = "dcmseal DEK cache: a verified origin proof";
    uint8_t kek[ID_LEN];
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = slot_id(kek, meta, proof, DCMSEAL_PROOF_LEN) && md != NULL &&
             EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(md, label, sizeof label) == 1 &&
             EVP_DigestUpdate(md, kek, sizeof kek) == 1 &&
             EVP_DigestUpdate(md, msg, msg_len) == 1 && EVP_DigestFinal_ex(md, id, NULL) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

static dcmseal_status cached_origin(void *self, dcmseal_origin_policy *out,
                                    const dcmseal_wrap_meta *meta, dcmseal_error *err)
{
    dcmseal_cached_ring_t *r = self;
    return r->inner->origin(r->inner->self, out, meta, err);
}

static dcmseal_status cached_prove(void *self, uint8_t proof[DCMSEAL_PROOF_LEN],
                                   const dcmseal_wrap_meta *meta, const uint8_t *msg,
                                   size_t msg_len, dcmseal_error *err)
{
    dcmseal_cached_ring_t *r = self;
    return r->inner->prove(r->inner->self, proof, meta, msg, msg_len, err);
}

/* A read served by a cached DEK should not go to the token for its proof
 * either: a verified proof is kept like a DEK, under the same limits. */
static dcmseal_status cached_check_proof(void *self, const dcmseal_wrap_meta *meta,
                                         const uint8_t *msg, size_t msg_len,
                                         const uint8_t proof[DCMSEAL_PROOF_LEN],
                                         dcmseal_error *err)
{
    dcmseal_cached_ring_t *r = self;
    uint8_t id[ID_LEN], kept[DCMSEAL_DEK_LEN];
    int have_id = r->cache->cap > 0 && proof_id(id, meta, msg, msg_len, proof);
    if (have_id && lookup(r->cache, kept, id) && CRYPTO_memcmp(kept, proof, sizeof kept) == 0)
        return DCMSEAL_OK;
    dcmseal_status st = r->inner->check_proof(r->inner->self, meta, msg, msg_len, proof, err);
    if (st == DCMSEAL_OK && have_id)
        insert(r->cache, id, proof);
    return st;
}

static dcmseal_status cached_conceal(void *self, uint8_t mac[DCMSEAL_PROOF_LEN],
                                     const char *name, const uint8_t *msg, size_t msg_len,
                                     dcmseal_error *err)
{
    dcmseal_cached_ring_t *r = self;
    return r->inner->conceal(r->inner->self, mac, name, msg, msg_len, err);
}

dcmseal_status dcmseal_cached_ring_new(dcmseal_cached_ring_t **out, dcmseal_dek_cache_t *cache,
                                       const dcmseal_keyring *inner, dcmseal_error *err)
{
    if (out == NULL || cache == NULL || inner == NULL || inner->wrap == NULL ||
        inner->unwrap == NULL || inner->current == NULL)
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "cached key ring: missing argument");
    dcmseal_cached_ring_t *r = OPENSSL_zalloc(sizeof *r);
    if (r == NULL)
        return dcmseal_fail(err, DCMSEAL_E_INTERNAL, "out of memory");
    r->ring = (dcmseal_keyring){
        .self = r,
        .wrap = cached_wrap,
        .unwrap = cached_unwrap,
        .rewrap = inner->rewrap != NULL ? cached_rewrap : NULL,
        .current = cached_current,
        .origin = inner->origin != NULL ? cached_origin : NULL,
        .prove = inner->prove != NULL ? cached_prove : NULL,
        .check_proof = inner->check_proof != NULL ? cached_check_proof : NULL,
        .conceal = inner->conceal != NULL ? cached_conceal : NULL,
    };
    r->cache = cache;
    r->inner = inner;
    *out = r;
    return DCMSEAL_OK;
}

void dcmseal_cached_ring_free(dcmseal_cached_ring_t *ring)
{
    OPENSSL_free(ring);
}

const dcmseal_keyring *dcmseal_cached_ring_get0_keyring(const dcmseal_cached_ring_t *ring)
{
    return &ring->ring;
}
