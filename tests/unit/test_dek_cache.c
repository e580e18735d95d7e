/* The DEK cache (engine/dek_cache.c) over a soft ring that counts the
 * unwraps reaching it: what is answered from the cache, what is not, the
 * count and age limits, LRU order, that an entry answers only for the
 * exact slot that produced it, and that origin proofs are kept the same way. */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "../../engine/internal.h"
#include "../support/check.h"
#include "../support/soft_ring.h"

static soft_ring inner;

/* One small sealed object, in segments of the minimum size. */
typedef struct object {
    uint8_t bytes[DCMSEAL_PREAMBLE_LEN + DCMSEAL_SEGMENT_MIN + DCMSEAL_TAG_LEN];
    size_t len;
} object;

static const uint8_t PLAIN[32] = "the DEK cache test's plain text";

static int seal(object *o, const dcmseal_keyring *ring)
{
    dcmseal_encryptor_t *enc = NULL;
    const dcmseal_encrypt_params p = {.keyring = ring, .segment_size = DCMSEAL_SEGMENT_MIN};
    uint8_t *body = o->bytes + DCMSEAL_PREAMBLE_LEN;
    const size_t cap = sizeof o->bytes - DCMSEAL_PREAMBLE_LEN;
    size_t w1 = 0, w2 = 0;
    int ok = dcmseal_encrypt_init(&enc, o->bytes, &p, NULL) == DCMSEAL_OK &&
             dcmseal_encrypt_update(enc, body, cap, &w1, PLAIN, sizeof PLAIN, NULL) ==
                 DCMSEAL_OK &&
             dcmseal_encrypt_final(enc, body + w1, cap - w1, &w2, NULL) == DCMSEAL_OK;
    o->len = DCMSEAL_PREAMBLE_LEN + w1 + w2;
    dcmseal_encryptor_free(enc);
    return ok;
}

/* Opens |o| through |ring| and checks its plain text. */
static dcmseal_status open_object(const object *o, const dcmseal_keyring *ring)
{
    dcmseal_decryptor_t *dec = NULL;
    uint8_t out[DCMSEAL_SEGMENT_MIN];
    size_t w1 = 0, w2 = 0;
    dcmseal_status st = dcmseal_decrypt_new(&dec, ring, NULL);
    if (st == DCMSEAL_OK)
        st = dcmseal_decrypt_update(dec, out, sizeof out, &w1, o->bytes, o->len, NULL);
    if (st == DCMSEAL_OK)
        st = dcmseal_decrypt_final(dec, out + w1, sizeof out - w1, &w2, NULL);
    if (st == DCMSEAL_OK && (w1 + w2 != sizeof PLAIN || memcmp(out, PLAIN, sizeof PLAIN) != 0))
        st = DCMSEAL_E_INTERNAL;
    dcmseal_decryptor_free(dec);
    return st;
}

typedef struct rig {
    dcmseal_dek_cache_t *cache;
    dcmseal_cached_ring_t *ring;
    const dcmseal_keyring *kr;
} rig;

static int rig_new(rig *r, size_t entries, uint32_t age_ms)
{
    memset(r, 0, sizeof *r);
    if (dcmseal_dek_cache_new(&r->cache, entries, age_ms, NULL) != DCMSEAL_OK ||
        dcmseal_cached_ring_new(&r->ring, r->cache, &inner.ring, NULL) != DCMSEAL_OK)
        return 0;
    r->kr = dcmseal_cached_ring_get0_keyring(r->ring);
    return 1;
}

static void rig_free(rig *r)
{
    dcmseal_cached_ring_free(r->ring);
    dcmseal_dek_cache_free(r->cache);
}

/* How many unwraps reached the inner ring while opening |o|. */
static int cost(const object *o, const rig *r)
{
    int before = inner.unwraps;
    if (open_object(o, r->kr) != DCMSEAL_OK)
        return -1;
    return inner.unwraps - before;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void test_hits_and_misses(void)
{
    rig r;
    object a, b;
    CHECK(rig_new(&r, 8, 60000), "cache");
    CHECK(seal(&a, &inner.ring) && seal(&b, &inner.ring), "seal");
    CHECK(cost(&a, &r) == 1, "first open of a unwraps in the token");
    CHECK(cost(&a, &r) == 0, "second open of a is answered by the cache");
    CHECK(cost(&b, &r) == 1, "b is another slot: a miss");
    CHECK(cost(&a, &r) == 0 && cost(&b, &r) == 0, "both cached");
    dcmseal_dek_cache_stats s;
    dcmseal_dek_cache_get_stats(r.cache, &s);
    CHECK(s.hits == 3 && s.misses == 2 && s.entries == 2, "stats %llu/%llu/%zu",
          (unsigned long long)s.hits, (unsigned long long)s.misses, s.entries);

    /* A DEK wrapped through the cached ring is kept: the new object opens
     * without the token. */
    object c;
    CHECK(seal(&c, r.kr), "seal through the cached ring");
    CHECK(cost(&c, &r) == 0, "a freshly written object is read from the cache");

    dcmseal_dek_cache_clear(r.cache);
    dcmseal_dek_cache_get_stats(r.cache, &s);
    CHECK(s.entries == 0, "clear empties the cache");
    CHECK(cost(&a, &r) == 1, "after clear, the token again");
    rig_free(&r);
}

static void test_off(void)
{
    object a;
    CHECK(seal(&a, &inner.ring), "seal");
    for (int age = 0; age < 2; age++) {
        rig r;
        /* 0 entries, or an age of 0: the cache holds nothing. */
        CHECK(rig_new(&r, age ? 8 : 0, age ? 0 : 60000), "cache");
        CHECK(cost(&a, &r) == 1 && cost(&a, &r) == 1, "off (%s): every open unwraps",
              age ? "age 0" : "size 0");
        object b;
        CHECK(seal(&b, r.kr) && cost(&b, &r) == 1, "off: writes are not kept either");
        dcmseal_dek_cache_stats s;
        dcmseal_dek_cache_get_stats(r.cache, &s);
        CHECK(s.entries == 0 && s.hits == 0, "off: nothing held");
        rig_free(&r);
    }
    dcmseal_dek_cache_t *c = NULL;
    CHECK(dcmseal_dek_cache_new(&c, DCMSEAL_DEK_CACHE_MAX + 1, 1000, NULL) == DCMSEAL_E_USAGE,
          "too many entries refused");
}

static void test_count_limit_lru(void)
{
    rig r;
    object o[3];
    CHECK(rig_new(&r, 2, 60000), "cache");
    for (int i = 0; i < 3; i++)
        CHECK(seal(&o[i], &inner.ring), "seal");
    CHECK(cost(&o[0], &r) == 1 && cost(&o[1], &r) == 1, "fill");
    CHECK(cost(&o[0], &r) == 0, "o0 used again: now the most recent");
    CHECK(cost(&o[2], &r) == 1, "o2 evicts the least recently used, o1");
    CHECK(cost(&o[0], &r) == 0, "o0 stayed");
    CHECK(cost(&o[1], &r) == 1, "o1 was evicted");
    dcmseal_dek_cache_stats s;
    dcmseal_dek_cache_get_stats(r.cache, &s);
    CHECK(s.entries == 2 && s.evicted == 2, "never more than 2 held (%zu, %llu evicted)",
          s.entries, (unsigned long long)s.evicted);
    rig_free(&r);
}

static void test_age_limit(void)
{
    rig r;
    object a;
    CHECK(rig_new(&r, 8, 100), "cache");
    CHECK(seal(&a, &inner.ring), "seal");
    CHECK(cost(&a, &r) == 1 && cost(&a, &r) == 0, "cached");
    sleep_ms(150);
    CHECK(cost(&a, &r) == 1, "older than the age limit: unwrapped again");
    /* A hit does not make an entry younger: the limit counts from entry. */
    sleep_ms(60);
    CHECK(cost(&a, &r) == 0, "still young");
    sleep_ms(60);
    CHECK(cost(&a, &r) == 1, "hits do not extend the age");
    sleep_ms(150);
    dcmseal_dek_cache_expire(r.cache);
    dcmseal_dek_cache_stats s;
    dcmseal_dek_cache_get_stats(r.cache, &s);
    CHECK(s.entries == 0, "expire wipes what is too old, without a lookup");
    rig_free(&r);
}

/* An entry answers for exactly its slot: the same wrapped bytes claimed by
 * another KEK (fingerprint, version or OAEP variant) go to the inner ring,
 * which refuses them; a rewrapped object is a new slot. */
static void test_exact_slot(void)
{
    rig r;
    object a;
    dcmseal_header h;
    dcmseal_slot slot;
    uint8_t dek[DCMSEAL_DEK_LEN];
    CHECK(rig_new(&r, 8, 60000), "cache");
    CHECK(seal(&a, &inner.ring) && cost(&a, &r) == 1, "cached");
    CHECK(dcmseal_preamble_decode(&h, &slot, NULL, a.bytes, a.len, NULL) == DCMSEAL_OK,
          "decode");
    const uint8_t *wrapped = slot.wrapped;
    struct { size_t wrapped_len; dcmseal_wrap_meta wrap; } info = {slot.wrapped_len, slot.meta};
    dcmseal_wrap_meta m = info.wrap;
    int before = inner.unwraps;
    CHECK(r.kr->unwrap(r.kr->self, dek, &m, wrapped, info.wrapped_len, NULL) == DCMSEAL_OK &&
              inner.unwraps == before, "the slot as written: a hit");
    m.kek_fingerprint[0] ^= 1;
    CHECK(r.kr->unwrap(r.kr->self, dek, &m, wrapped, info.wrapped_len, NULL) == DCMSEAL_E_KEY &&
              inner.unwraps == before + 1, "another fingerprint: the inner ring refuses it");
    m = info.wrap;
    m.kek_version++;
    CHECK(r.kr->unwrap(r.kr->self, dek, &m, wrapped, info.wrapped_len, NULL) == DCMSEAL_OK &&
              inner.unwraps == before + 2, "another version: not from the cache");
    m = info.wrap;
    m.oaep = m.oaep == DCMSEAL_OAEP_SHA1 ? DCMSEAL_OAEP_SHA256 : DCMSEAL_OAEP_SHA1;
    CHECK(r.kr->unwrap(r.kr->self, dek, &m, wrapped, info.wrapped_len, NULL) == DCMSEAL_E_AUTH &&
              inner.unwraps == before + 3, "another OAEP variant: not from the cache");
    OPENSSL_cleanse(dek, sizeof dek);
    rig_free(&r);
}

/* Many threads, one cache, each with a cached ring over its own soft ring
 * (a soft ring is not thread-safe): every open succeeds. */
typedef struct worker {
    soft_ring ring;
    const object *objects;
    dcmseal_dek_cache_t *cache;
    int ok;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    dcmseal_cached_ring_t *cr = NULL;
    w->ok = dcmseal_cached_ring_new(&cr, w->cache, &w->ring.ring, NULL) == DCMSEAL_OK;
    for (int i = 0; w->ok && i < 200; i++)
        w->ok = open_object(&w->objects[i % 5], dcmseal_cached_ring_get0_keyring(cr)) ==
                DCMSEAL_OK;
    dcmseal_cached_ring_free(cr);
    return NULL;
}

static void test_threads(void)
{
    static object o[5];
    static worker w[4];
    dcmseal_dek_cache_t *cache = NULL;
    pthread_t t[4];
    CHECK(dcmseal_dek_cache_new(&cache, 3, 60000, NULL) == DCMSEAL_OK, "cache");
    for (int i = 0; i < 5; i++)
        CHECK(seal(&o[i], &inner.ring), "seal");
    for (int i = 0; i < 4; i++) {
        w[i].ring = inner; /* the same key; its own counters */
        w[i].ring.ring.self = &w[i].ring;
        w[i].objects = o;
        w[i].cache = cache;
        CHECK(pthread_create(&t[i], NULL, work, &w[i]) == 0, "thread");
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK(w[i].ok, "thread %d: every open succeeded", i);
    }
    dcmseal_dek_cache_stats s;
    dcmseal_dek_cache_get_stats(cache, &s);
    CHECK(s.entries <= 3 && s.hits + s.misses == 800, "bounded under contention");
    dcmseal_dek_cache_free(cache);
}

/* Format v2: a read that a cached DEK serves does not ask the token for
 * its origin proof either, but a proof the cache has not seen does, and a
 * wrong one is refused (FORMAT.md "Origin proof"). */
static void test_proofs(void)
{
    rig r;
    object a;
    CHECK(rig_new(&r, 8, 60000), "cache");
    soft_ring_set_origin(&inner, NULL);
    CHECK(seal(&a, &inner.ring) && a.bytes[9] == 2, "seal format v2");
    int checks = inner.checks;
    CHECK(cost(&a, &r) == 1 && inner.checks == checks + 1, "first open: unwrap and check");
    CHECK(cost(&a, &r) == 0 && inner.checks == checks + 1, "second open: neither");
    /* The same slot with another proof: the DEK is cached, the proof not. */
    object forged = a;
    dcmseal_slot sl;
    CHECK(dcmseal_slot_decode(&sl, forged.bytes + DCMSEAL_HEADER_LEN) == 1, "slot");
    sl.proof[3] ^= 1;
    dcmseal_slot_encode(forged.bytes + DCMSEAL_HEADER_LEN, &sl);
    CHECK(open_object(&forged, r.kr) == DCMSEAL_E_AUTH && inner.checks == checks + 2,
          "a changed proof goes to the token, and is refused there");
    CHECK(open_object(&forged, r.kr) == DCMSEAL_E_AUTH, "and is never cached");
    CHECK(cost(&a, &r) == 0, "the real one still opens from the cache");
    inner.has_origin = 0;
    rig_free(&r);
}

int main(void)
{
    if (soft_ring_init(&inner, NULL, "cache", 1, DCMSEAL_OAEP_SHA256) != 0)
        return 1;
    test_proofs();
    test_hits_and_misses();
    test_off();
    test_count_limit_lru();
    test_age_limit();
    test_exact_slot();
    test_threads();
    soft_ring_free(&inner);
    return check_done("test_dek_cache");
}
