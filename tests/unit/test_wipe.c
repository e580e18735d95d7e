#define _GNU_SOURCE /* memmem */
/* Secrets are wiped before their memory is released: every block OpenSSL's
 * allocator (which dcmseal uses for all key-bearing state) hands back is
 * scanned for the DEK and the keys derived from it, and for the token PIN. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <dcmseal/pkcs11.h>

#include "../../engine/internal.h"
#include "../support/check.h"
#include "../support/soft_ring.h"

/* Each block carries its size in front, so that free can scan it, and sits
 * in a list of live blocks, so that a test can scan those too. */
typedef union block_head {
    struct {
        size_t n;
        union block_head *prev, *next;
    } h;
    max_align_t align;
} block_head;

static block_head live = {.h = {0, &live, &live}};
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;

static uint8_t secrets[3][32];
static int nsecrets, armed, found;

static void scan(const uint8_t *p, size_t n)
{
    for (int s = 0; armed && s < nsecrets; s++)
        if (n >= 16 && memmem(p, n, secrets[s], 16) != NULL)
            found++;
}

static void *t_malloc(size_t n, const char *file, int line)
{
    (void)file, (void)line;
    block_head *h = malloc(sizeof *h + n);
    if (h == NULL)
        return NULL;
    h->h.n = n;
    pthread_mutex_lock(&live_lock);
    h->h.prev = &live;
    h->h.next = live.h.next;
    live.h.next->h.prev = h;
    live.h.next = h;
    pthread_mutex_unlock(&live_lock);
    return h + 1;
}

static void t_free(void *p, const char *file, int line)
{
    (void)file, (void)line;
    if (p == NULL)
        return;
    block_head *h = (block_head *)p - 1;
    scan(p, h->h.n);
    pthread_mutex_lock(&live_lock);
    h->h.prev->h.next = h->h.next;
    h->h.next->h.prev = h->h.prev;
    pthread_mutex_unlock(&live_lock);
    free(h);
}

static void *t_realloc(void *p, size_t n, const char *file, int line)
{
    if (p == NULL)
        return t_malloc(n, file, line);
    block_head *h = (block_head *)p - 1;
    void *q = t_malloc(n, file, line);
    if (q != NULL) {
        memcpy(q, p, h->h.n < n ? h->h.n : n);
        t_free(p, file, line);
    }
    return q;
}

/* Scans every block OpenSSL's ordinary allocator has handed out and not
 * taken back. */
static void scan_live(void)
{
    pthread_mutex_lock(&live_lock);
    for (block_head *h = live.h.next; h != &live; h = h->h.next)
        scan((const uint8_t *)(h + 1), h->h.n);
    pthread_mutex_unlock(&live_lock);
}

static void arm(const uint8_t dek[32], const uint8_t salt[32])
{
    dcmseal_keys k;
    if (dcmseal_keys_derive(&k, dek, salt, 1, NULL) != DCMSEAL_OK)
        return;
    memcpy(secrets[0], dek, 32);
    memcpy(secrets[1], k.payload, 32);
    memcpy(secrets[2], k.identity, 32);
    nsecrets = 3;
    armed = 1;
    OPENSSL_cleanse(&k, sizeof k);
}

/* A PIN long enough to scan for, on a SoftHSM token in a temporary
 * directory: opening the token reads it from a pin-source file and logs in;
 * freeing the token must leave it nowhere in freed memory. */
#define PIN "wipe-check-pin-7c1e9a0d"

static void test_pin(void)
{
    char dir[] = "/tmp/test_wipe.XXXXXX", cmd[1024], uri[512];
    if (mkdtemp(dir) == NULL)
        return;
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/tokens && printf 'directories.tokendir = %s/tokens\n"
             "objectstore.backend = file\n' > %s/softhsm2.conf && (umask 077; printf '%s\n' > %s/pin) && "
             "SOFTHSM2_CONF=%s/softhsm2.conf softhsm2-util --init-token --free --label wipe "
             "--so-pin 1234 --pin %s >/dev/null",
             dir, dir, dir, PIN, dir, dir, PIN);
    CHECK(system(cmd) == 0, "make a SoftHSM token");
    snprintf(cmd, sizeof cmd, "%s/softhsm2.conf", dir);
    setenv("SOFTHSM2_CONF", cmd, 1);
    snprintf(uri, sizeof uri,
             "pkcs11:token=wipe?module-path=/usr/lib/softhsm/libsofthsm2.so"
             "&pin-source=file:%s/pin", dir);
    memcpy(secrets[0], PIN, 16);
    nsecrets = 1;
    found = 0;
    armed = 1;
    dcmseal_token_t *tok = NULL;
    dcmseal_session_t *s = NULL;
    CHECK(dcmseal_token_open(&tok, uri, NULL) == DCMSEAL_OK &&
              dcmseal_session_open(&s, tok, NULL) == DCMSEAL_OK, "open the token, log in");
    dcmseal_session_free(s);
    dcmseal_token_free(tok);
    armed = 0;
    CHECK(found == 0, "the PIN was left in %d freed block(s)", found);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        printf("note: %s not removed\n", dir);
}

/* A key ring with no RSA inside (OpenSSL's own RSA code frees buffers that
 * held a DEK, which is not ours to fix), so that whatever the scanner finds
 * below is the DEK cache's: the "wrapped" key is the DEK XOR 0x5c. */
static uint8_t xor_last[DCMSEAL_DEK_LEN];

static dcmseal_status xor_wrap(void *self, dcmseal_wrap_meta *meta, uint8_t *out, size_t cap,
                               size_t *len, const uint8_t dek[DCMSEAL_DEK_LEN],
                               dcmseal_error *err)
{
    (void)self, (void)cap, (void)err;
    memset(meta, 0, sizeof *meta);
    strcpy(meta->kek_name, "xor");
    meta->kek_version = 1;
    for (size_t i = 0; i < DCMSEAL_DEK_LEN; i++)
        out[i] = dek[i] ^ 0x5c;
    *len = DCMSEAL_DEK_LEN;
    memcpy(xor_last, dek, DCMSEAL_DEK_LEN);
    return DCMSEAL_OK;
}

static dcmseal_status xor_unwrap(void *self, uint8_t dek[DCMSEAL_DEK_LEN],
                                 const dcmseal_wrap_meta *meta, const uint8_t *wrapped,
                                 size_t len, dcmseal_error *err)
{
    (void)self, (void)meta, (void)len, (void)err;
    for (size_t i = 0; i < DCMSEAL_DEK_LEN; i++)
        dek[i] = wrapped[i] ^ 0x5c;
    return DCMSEAL_OK;
}

static dcmseal_status xor_current(void *self, dcmseal_wrap_meta *meta, dcmseal_error *err)
{
    (void)self, (void)meta;
    return dcmseal_fail(err, DCMSEAL_E_USAGE, "none");
}

/* The DEK cache wipes each DEK it lets go: evicted for room, expired,
 * cleared, or freed with the cache. (Without a secure heap, as here, its
 * blocks come from the hooked allocator and are scanned when freed.) */
static void test_dek_cache(void)
{
    const dcmseal_keyring xor_ring = {
        .wrap = xor_wrap, .unwrap = xor_unwrap, .current = xor_current};
    dcmseal_dek_cache_t *c = NULL;
    dcmseal_cached_ring_t *cr = NULL;
    dcmseal_dek_cache_stats st;
    uint8_t wrapped[DCMSEAL_WRAPPED_MAX];
    dcmseal_wrap_meta meta;
    size_t len;
    /* Each wrap of a new DEK through the cached ring makes it keep the DEK. */
    #define KEEP_ONE(slot)                                                                 \
        do {                                                                               \
            uint8_t dek[DCMSEAL_DEK_LEN];                                                  \
            memset(dek, 0x30 + (slot) + 2 * round + 4 * (int)st.evicted, sizeof dek);      \
            memcpy(secrets[slot], dek, sizeof dek);                                        \
            const dcmseal_keyring *k = dcmseal_cached_ring_get0_keyring(cr);               \
            CHECK(k->wrap(k->self, &meta, wrapped, sizeof wrapped, &len, dek, NULL) ==     \
                      DCMSEAL_OK, "wrap");                                                 \
        } while (0)
    for (int round = 0; round < 2; round++) {
        memset(&st, 0, sizeof st);
        CHECK(dcmseal_dek_cache_new(&c, 1, round == 0 ? 60000 : 1, NULL) == DCMSEAL_OK &&
                  dcmseal_cached_ring_new(&cr, c, &xor_ring, NULL) == DCMSEAL_OK,
              "cache");
        nsecrets = 3;
        found = 0;
        armed = 1;
        KEEP_ONE(0);
        KEEP_ONE(1); /* the first is evicted: one entry only */
        dcmseal_dek_cache_get_stats(c, &st);
        CHECK(st.evicted == 1, "round %d: one evicted (%llu)", round,
              (unsigned long long)st.evicted);
        if (round == 0) {
            dcmseal_dek_cache_clear(c);
        } else {
            struct timespec ts = {0, 5000000};
            nanosleep(&ts, NULL);
            dcmseal_dek_cache_expire(c);
        }
        dcmseal_dek_cache_get_stats(c, &st);
        CHECK(st.entries == 0 && st.evicted == 2, "round %d: %s", round,
              round == 0 ? "cleared" : "expired");
        KEEP_ONE(2);
        dcmseal_cached_ring_free(cr);
        dcmseal_dek_cache_free(c); /* with one entry in it */
        armed = 0;
        CHECK(found == 0, "round %d: the DEK cache left %d DEK(s) in freed memory", round,
              found);
    }
    #undef KEEP_ONE
}

/* ---- the PIN is nowhere in the process once the login is done ------------ */

/* The test keeps the PIN only masked, so that none of its own copies is what
 * the scan finds; each byte is unmasked only as it is compared or written. */
#define PIN_MASK 0xa5
static uint8_t pin_x[16];

static uint8_t pin_at(size_t i)
{
    return (uint8_t)(pin_x[i] ^ PIN_MASK);
}

/* How often the PIN occurs in the process's writable memory: heap, stacks,
 * the environment block, every library's data. Read through /proc/self/mem,
 * which answers an error, not a fault, for what is not mapped; mappings over
 * 1 GiB are reservations (AddressSanitizer's shadow), not data. */
static size_t scan_process(void)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    int mem = open("/proc/self/mem", O_RDONLY);
    static uint8_t buf[1 << 16];
    char line[512];
    size_t hits = 0;
    while (maps != NULL && mem >= 0 && fgets(line, sizeof line, maps) != NULL) {
        unsigned long a, b;
        char perms[5], path[256] = "";
        if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %255s", &a, &b, perms, path) < 3 ||
            perms[0] != 'r' || perms[1] != 'w' || strncmp(path, "/dev/", 5) == 0 ||
            b - a > (1ul << 30))
            continue;
        /* Chunks overlap by the PIN's length less one, so that none is
         * missed across a boundary. */
        for (unsigned long at = a; at < b;) {
            size_t want = b - at < sizeof buf ? b - at : sizeof buf;
            ssize_t n = pread(mem, buf, want, (off_t)at);
            if (n <= 0)
                break;
            for (size_t i = 0; i + sizeof pin_x <= (size_t)n; i++) {
                size_t j = 0;
                while (j < sizeof pin_x && buf[i + j] == pin_at(j))
                    j++;
                hits += j == sizeof pin_x;
            }
            at += (size_t)n > sizeof pin_x ? (size_t)n - (sizeof pin_x - 1) : (size_t)n;
            if ((size_t)n < want)
                break;
        }
    }
    OPENSSL_cleanse(buf, sizeof buf);
    if (mem >= 0)
        close(mem);
    if (maps != NULL)
        fclose(maps);
    return hits;
}

static void test_pin_memory(void)
{
    char dir[] = "/tmp/test_wipe_pin.XXXXXX", cmd[1024], uri[512], path[256];
    size_t n;
    uint8_t r[sizeof pin_x];
    static const char hex[] = "0123456789abcdef";
    if (mkdtemp(dir) == NULL || RAND_bytes(r, sizeof r) != 1)
        return;
    for (size_t i = 0; i < sizeof pin_x; i++)
        pin_x[i] = (uint8_t)(hex[r[i] & 15] ^ PIN_MASK);

    /* The token, and a pin-source file that only its owner reads. */
    n = (size_t)snprintf(cmd, sizeof cmd,
                         "mkdir -p %s/tokens && printf 'directories.tokendir = %s/tokens\\n"
                         "objectstore.backend = file\\n' > %s/softhsm2.conf && "
                         "SOFTHSM2_CONF=%s/softhsm2.conf softhsm2-util --init-token --free "
                         "--label wipepin --so-pin 1234 --pin ",
                         dir, dir, dir, dir);
    for (size_t i = 0; i < sizeof pin_x && n + 1 < sizeof cmd; i++)
        cmd[n++] = (char)pin_at(i);
    snprintf(cmd + n, sizeof cmd - n, " >/dev/null");
    int made = system(cmd) == 0;
    OPENSSL_cleanse(cmd, sizeof cmd);
    snprintf(path, sizeof path, "%s/pin", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    for (size_t i = 0; fd >= 0 && i < sizeof pin_x; i++) {
        uint8_t c = pin_at(i);
        made &= write(fd, &c, 1) == 1;
    }
    made &= fd >= 0 && close(fd) == 0;
    CHECK(made, "make a SoftHSM token and its pin-source");
    snprintf(cmd, sizeof cmd, "%s/softhsm2.conf", dir);
    setenv("SOFTHSM2_CONF", cmd, 1);

    /* Control: the scanner sees a copy of the PIN. */
    uint8_t *copy = OPENSSL_malloc(sizeof pin_x);
    for (size_t i = 0; copy != NULL && i < sizeof pin_x; i++)
        copy[i] = pin_at(i);
    CHECK(scan_process() >= 1, "the scanner misses a PIN in the heap");
    OPENSSL_clear_free(copy, sizeof pin_x);
    CHECK(scan_process() == 0, "a PIN before any login (%zu)", scan_process());

    dcmseal_token_t *tok = NULL;
    dcmseal_session_t *s = NULL;
    dcmseal_error err;
    snprintf(uri, sizeof uri,
             "pkcs11:token=wipepin?module-path=/usr/lib/softhsm/libsofthsm2.so"
             "&pin-source=file:%s", path);
    CHECK(dcmseal_token_open(&tok, uri, &err) == DCMSEAL_OK &&
              dcmseal_session_open(&s, tok, &err) == DCMSEAL_OK,
          "log in with a pin-source file: %s", err.message);
    CHECK(scan_process() == 0, "pin-source file: %zu copies of the PIN in memory after login",
          scan_process());
    dcmseal_session_free(s);
    dcmseal_token_free(tok);
    s = NULL;
    tok = NULL;

    /* From DCMSEAL_PIN: the same, and the variable is gone. */
    char value[sizeof pin_x + 1];
    for (size_t i = 0; i < sizeof pin_x; i++)
        value[i] = (char)pin_at(i);
    value[sizeof pin_x] = '\0';
    setenv("DCMSEAL_PIN", value, 1);
    OPENSSL_cleanse(value, sizeof value);
    snprintf(uri, sizeof uri, "pkcs11:token=wipepin?module-path=/usr/lib/softhsm/libsofthsm2.so");
    CHECK(dcmseal_token_open(&tok, uri, &err) == DCMSEAL_OK &&
              dcmseal_session_open(&s, tok, &err) == DCMSEAL_OK,
          "log in with DCMSEAL_PIN: %s", err.message);
    CHECK(getenv("DCMSEAL_PIN") == NULL, "DCMSEAL_PIN is still set after it was read");
    CHECK(scan_process() == 0, "DCMSEAL_PIN: %zu copies of the PIN in memory after login",
          scan_process());
    dcmseal_session_free(s);
    dcmseal_token_free(tok);
    unsetenv("DCMSEAL_PIN");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        printf("note: %s not removed\n", dir);
}

/* ---- key material in OpenSSL's secure heap -------------------------------- */

/* Once the caller initialised the secure heap, the engine keeps each DEK and
 * the keys derived from it there: the buffers it hands a key ring are in it,
 * and while an object is open no block of the ordinary heap holds its DEK or
 * its identity key. (The payload key is expanded into OpenSSL's own cipher
 * context, which dcmseal does not allocate: see docs/SECURITY.md.) */
static void secure_round(soft_ring *v1, soft_ring *v2)
{
    static const dcmseal_identity id = {"1.2.3", "1.2.3.9", "1.2"};
    static uint8_t pt[9000], ct[12000], back[12000];
    memset(pt, 0x3c, sizeof pt);
    size_t n = DCMSEAL_PREAMBLE_LEN, w = 0, w2 = 0;
    dcmseal_encryptor_t *enc = NULL;
    /* Format v2 with a metadata block: its key is one more to keep. */
    static const dcmseal_meta meta = {"a/b.dcm", 0640, 1700000000, 5};
    dcmseal_encrypt_params p = {&v1->ring, 4096, &id, &meta};
    CHECK(dcmseal_encrypt_init(&enc, ct, &p, NULL) == DCMSEAL_OK &&
              dcmseal_encrypt_update(enc, ct + n, sizeof ct - n, &w, pt, sizeof pt, NULL) ==
                  DCMSEAL_OK,
          "encrypt");
    n += w;
    CHECK(dcmseal_encrypt_final(enc, ct + n, sizeof ct - n, &w, NULL) == DCMSEAL_OK, "final");
    n += w;
    dcmseal_encryptor_free(enc);
    CHECK(v1->insecure_deks == 0, "encrypt wrapped a DEK from outside the secure heap");

    /* Open: the header is consumed, the keys are derived and held. */
    dcmseal_keys k;
    CHECK(dcmseal_keys_derive(&k, v1->last_dek, ct + 24, 1, NULL) == DCMSEAL_OK, "derive");
    memcpy(secrets[0], v1->last_dek, 32);
    memcpy(secrets[1], k.identity, 32);
    memcpy(secrets[2], k.meta, 32);
    OPENSSL_cleanse(&k, sizeof k);
    nsecrets = 3;
    dcmseal_decryptor_t *dec = NULL;
    CHECK(dcmseal_decrypt_new(&dec, &v1->ring, NULL) == DCMSEAL_OK &&
              dcmseal_decrypt_update(dec, back, sizeof back, &w, ct, DCMSEAL_PREAMBLE_LEN,
                                     NULL) == DCMSEAL_OK &&
              dcmseal_decrypt_get0_header(dec) != NULL,
          "decrypt the header");
    found = 0;
    armed = 1;
    scan_live();
    armed = 0;
    CHECK(found == 0,
          "an open object's DEK, identity or metadata key is in %d ordinary heap block(s)",
          found);
    CHECK(dcmseal_decrypt_update(dec, back, sizeof back, &w, ct + DCMSEAL_PREAMBLE_LEN,
                                 n - DCMSEAL_PREAMBLE_LEN, NULL) == DCMSEAL_OK &&
              dcmseal_decrypt_final(dec, back + w, sizeof back - w, &w2, NULL) == DCMSEAL_OK &&
              w + w2 == sizeof pt && dcmseal_decrypt_check_identity(dec, &id, NULL) == DCMSEAL_OK,
          "decrypt");
    dcmseal_decryptor_free(dec);

    /* The same object through a file: random access, then a host rewrap. */
    FILE *f = tmpfile();
    dcmseal_reader_t *rd = NULL;
    dcmseal_rewrap_report rep;
    CHECK(f != NULL && fwrite(ct, 1, n, f) == n && fflush(f) == 0, "write the object");
    CHECK(f != NULL && dcmseal_reader_open(&rd, fileno(f), &v1->ring, NULL) == DCMSEAL_OK,
          "reader");
    dcmseal_reader_free(rd);
    CHECK(f != NULL && dcmseal_rewrap_fd(&rep, fileno(f), &v2->ring, 0, NULL) == DCMSEAL_OK &&
              rep.changed,
          "rewrap through the host");
    CHECK(v1->insecure_deks == 0 && v2->insecure_deks == 0,
          "a DEK outside the secure heap: %d (v1), %d (v2)", v1->insecure_deks,
          v2->insecure_deks);
    if (f != NULL)
        fclose(f);
}

static void test_secure_heap(void)
{
    int init = CRYPTO_secure_malloc_init(1 << 16, 32);
    CHECK(init == 1 || init == 2, "CRYPTO_secure_malloc_init: %d", init);
    soft_ring v1, v2;
    if (soft_ring_init(&v1, KAT_KEK_PEM, "sec", 1, DCMSEAL_OAEP_SHA256) != 0 ||
        soft_ring_init(&v2, NULL, "sec", 2, DCMSEAL_OAEP_SHA1) != 0)
        return;
    soft_ring_set_origin(&v1, NULL);
    soft_ring_set_origin(&v2, NULL);
    v2.previous = &v1;
    /* Twice: OpenSSL keeps some secure allocations of its own after the
     * first round; a second one must leave the heap as it found it. */
    secure_round(&v1, &v2);
    const size_t base = CRYPTO_secure_used();
    secure_round(&v1, &v2);
    CHECK(CRYPTO_secure_used() == base, "a round left %zu bytes more in the secure heap",
          CRYPTO_secure_used() - base);
    soft_ring_free(&v1);
    soft_ring_free(&v2);
}

int main(void)
{
    if (!CRYPTO_set_mem_functions(t_malloc, t_realloc, t_free)) {
        printf("cannot hook OpenSSL's allocator\n");
        return 1;
    }
    soft_ring ring;
    if (soft_ring_init(&ring, KAT_KEK_PEM, "wipe", 1, DCMSEAL_OAEP_SHA256) != 0)
        return 1;

    /* Control: a block holding a secret and freed without wiping is seen. */
    uint8_t dek[32], salt[32];
    memset(dek, 0x5a, sizeof dek);
    memset(salt, 0xa5, sizeof salt);
    arm(dek, salt);
    uint8_t *leak = OPENSSL_malloc(64);
    memcpy(leak + 7, dek, 32);
    OPENSSL_free(leak);
    CHECK(found == 1, "the scanner misses an unwiped DEK (%d)", found);
    found = 0;
    armed = 0;

    static const dcmseal_identity id = {"1.2.3", "1.2.3.4", "1.2"};
    static uint8_t pt[20000], ct[30000], back[30000];
    for (size_t i = 0; i < sizeof pt; i++)
        pt[i] = (uint8_t)i;
    uint8_t *hdr = ct;
    size_t n = DCMSEAL_PREAMBLE_LEN, w;
    dcmseal_encryptor_t *enc = NULL;
    dcmseal_encrypt_params p = {.keyring = &ring.ring, .segment_size = 4096, .identity = &id};
    CHECK(dcmseal_encrypt_init(&enc, hdr, &p, NULL) == DCMSEAL_OK, "init");
    arm(ring.last_dek, hdr + 24); /* FORMAT.md: the salt is at offset 24 */
    CHECK(dcmseal_encrypt_update(enc, ct + n, sizeof ct - n, &w, pt, sizeof pt, NULL) ==
              DCMSEAL_OK, "update");
    n += w;
    CHECK(dcmseal_encrypt_final(enc, ct + n, sizeof ct - n, &w, NULL) == DCMSEAL_OK, "final");
    n += w;
    dcmseal_encryptor_free(enc);
    CHECK(found == 0, "encryption left %d unwiped secret(s) in freed memory", found);

    dcmseal_decryptor_t *dec = NULL;
    size_t w1 = 0, w2 = 0;
    CHECK(dcmseal_decrypt_new(&dec, &ring.ring, NULL) == DCMSEAL_OK &&
              dcmseal_decrypt_update(dec, back, sizeof back, &w1, ct, n, NULL) == DCMSEAL_OK &&
              dcmseal_decrypt_final(dec, back + w1, sizeof back - w1, &w2, NULL) == DCMSEAL_OK &&
              w1 + w2 == sizeof pt && memcmp(back, pt, sizeof pt) == 0, "decrypt");
    dcmseal_decryptor_free(dec);
    CHECK(found == 0, "decryption left %d unwiped secret(s) in freed memory", found);

    /* The failure path wipes too. */
    ct[n - 1] ^= 1;
    dec = NULL;
    CHECK(dcmseal_decrypt_new(&dec, &ring.ring, NULL) == DCMSEAL_OK &&
              dcmseal_decrypt_update(dec, back, sizeof back, &w1, ct, n, NULL) == DCMSEAL_OK &&
              dcmseal_decrypt_final(dec, back + w1, sizeof back - w1, &w2, NULL) == DCMSEAL_E_AUTH,
          "tampered decrypt fails");
    dcmseal_decryptor_free(dec);
    CHECK(found == 0, "a failed decryption left %d unwiped secret(s)", found);
    armed = 0;

    /* Whole objects through file descriptors: the plain text that passed
     * through dcmseal_seal_fd's and dcmseal_open_fd's buffers is wiped as
     * well. They wipe as much as they held, not their capacity, so this
     * object is smaller than a segment and than a read chunk. */
    static uint8_t small[5000];
    for (size_t i = 0; i < sizeof small; i++)
        small[i] = (uint8_t)(i * 13 + 1);
    FILE *fin = tmpfile(), *fenc = tmpfile(), *fdec = tmpfile();
    CHECK(fin != NULL && fenc != NULL && fdec != NULL &&
              fwrite(small, 1, sizeof small, fin) == sizeof small && fflush(fin) == 0 &&
              lseek(fileno(fin), 0, SEEK_SET) == 0,
          "temporary files");
    memcpy(secrets[0], small + 4000, 32);
    nsecrets = 1;
    armed = 1;
    dcmseal_object_report rep;
    const dcmseal_seal_opts so = {.keyring = &ring.ring};
    CHECK(dcmseal_seal_fd(&rep, fileno(fenc), fileno(fin), &so, NULL) == DCMSEAL_OK,
          "seal_fd");
    CHECK(found == 0, "dcmseal_seal_fd left plain text in freed memory (%d)", found);
    CHECK(lseek(fileno(fenc), 0, SEEK_SET) == 0 &&
              dcmseal_open_fd(&rep, fileno(fdec), fileno(fenc), &ring.ring, 1, NULL) ==
                  DCMSEAL_OK && rep.plain_bytes == sizeof small,
          "open_fd");
    CHECK(found == 0, "dcmseal_open_fd left plain text in freed memory (%d)", found);
    armed = 0;
    fclose(fin);
    fclose(fenc);
    fclose(fdec);
    test_dek_cache();
    soft_ring_free(&ring);
    test_pin();
    test_pin_memory();
    test_secure_heap();
    return check_done("test_wipe");
}
