/* Format v2 over host key rings (engine/origin.c, engine/meta.c): which
 * format a writer picks, origin proofs made, checked, stripped, moved and
 * forged, the policy for v1 objects, the metadata block, concealed names.
 * Every proof is also recomputed here from FORMAT.md's definition with
 * OpenSSL's own HMAC, so that the engine and the document cannot drift. */
#define _GNU_SOURCE /* memfd_create */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/hmac.h>

#include "../../engine/internal.h"
#include "../support/check.h"
#include "../support/buf.h"
#include "../support/soft_ring.h"

#define SEG 4096u

/* |archive|: the archive's KEK with its origin key; |legacy|: the same RSA
 * key as a KEK made before origin keys; |forger|: the same public key (all
 * an attacker can read from the token) with an origin key of the
 * attacker's own. */
static soft_ring archive, legacy, forger;

static const dcmseal_identity ID = {"1.2.840.10008.5.1.4.1.1.2", "2.25.7777", "2.25.42"};

static uint8_t *pattern(size_t n)
{
    uint8_t *p = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 13 + 5);
    return p;
}

static dcmseal_status seal(buf *out, const soft_ring *r, const dcmseal_meta *meta,
                           const uint8_t *pt, size_t n, dcmseal_error *err)
{
    dcmseal_encryptor_t *enc = NULL;
    dcmseal_encrypt_params p = {
        .keyring = &r->ring, .segment_size = SEG, .identity = &ID, .meta = meta};
    size_t w = 0;
    out->p = malloc(DCMSEAL_PREAMBLE_LEN + DCMSEAL_META_MAX + n + (n / SEG + 2) * 16 + SEG);
    out->n = 0;
    dcmseal_status st = dcmseal_encrypt_init(&enc, out->p, &p, err);
    if (st != DCMSEAL_OK)
        return st;
    out->n = DCMSEAL_PREAMBLE_LEN;
    size_t cap = dcmseal_encrypt_update_max(enc, n);
    st = dcmseal_encrypt_update(enc, out->p + out->n, cap, &w, pt, n, err);
    out->n += w;
    if (st == DCMSEAL_OK) {
        cap = dcmseal_encrypt_final_max(enc);
        st = dcmseal_encrypt_final(enc, out->p + out->n, cap, &w, err);
        out->n += w;
    }
    dcmseal_encryptor_free(enc);
    return st;
}

/* Decrypts in chunks of |chunk|; |info| and |meta| receive what the
 * decryptor reported (when not NULL). */
static dcmseal_status open_obj(buf *out, const soft_ring *r, const buf *ct, size_t chunk,
                               dcmseal_header_info *info, dcmseal_meta *meta,
                               dcmseal_error *err)
{
    dcmseal_decryptor_t *dec = NULL;
    dcmseal_status st = dcmseal_decrypt_new(&dec, &r->ring, err);
    out->p = malloc(ct->n + 1);
    out->n = 0;
    for (size_t off = 0; off < ct->n && st == DCMSEAL_OK; off += chunk) {
        size_t take = ct->n - off < chunk ? ct->n - off : chunk, w = 0;
        st = dcmseal_decrypt_update(dec, out->p + out->n, ct->n + 1 - out->n, &w, ct->p + off,
                                    take, err);
        out->n += w;
    }
    size_t w = 0;
    if (st == DCMSEAL_OK)
        st = dcmseal_decrypt_final(dec, out->p + out->n, ct->n + 1 - out->n, &w, err);
    out->n += w;
    if (st == DCMSEAL_OK && info != NULL)
        *info = *dcmseal_decrypt_get0_header(dec);
    if (st == DCMSEAL_OK && meta != NULL) {
        const dcmseal_meta *m = dcmseal_decrypt_get0_meta(dec);
        if (m != NULL)
            *meta = *m;
        else
            memset(meta, 0, sizeof *meta);
    }
    dcmseal_decryptor_free(dec);
    return st;
}

/* The proof FORMAT.md defines, computed independently. */
static void expected_proof(uint8_t out[32], const uint8_t key[32], const uint8_t *obj,
                           int slot)
{
    uint8_t msg[17 + 128 + 616];
    unsigned int n = 32;
    memcpy(msg, "dcmseal v2 origin", 17);
    memcpy(msg + 17, obj, 128);
    memcpy(msg + 17 + 128, obj + 128 + slot * 1024 + 16, 616);
    HMAC(EVP_sha256(), key, 32, msg, sizeof msg, out, &n);
}

static uint8_t *slot_raw(buf *b, int i) { return b->p + DCMSEAL_HEADER_LEN + i * DCMSEAL_SLOT_LEN; }

/* Rewrites slot |i| of |b| through |edit|, checksum recomputed. */
static void edit_slot(buf *b, int i, void (*edit)(dcmseal_slot *s))
{
    dcmseal_slot s;
    CHECK(dcmseal_slot_decode(&s, slot_raw(b, i)) == 1, "slot %d decodes", i);
    edit(&s);
    dcmseal_slot_encode(slot_raw(b, i), &s);
}

static void strip_proof(dcmseal_slot *s)
{
    s->origin_kind = DCMSEAL_SLOT_ORIGIN_NONE;
    memset(s->proof, 0, sizeof s->proof);
}

static void flip_proof(dcmseal_slot *s) { s->proof[31] ^= 0x80; }

static void test_writer(void)
{
    buf ct = {0}, back = {0};
    dcmseal_error err;
    dcmseal_header_info info;
    uint8_t *pt = pattern(10000), want[32];

    CHECK(seal(&ct, &archive, NULL, pt, 10000, &err) == DCMSEAL_OK, "seal v2: %s", err.message);
    CHECK(dcmseal_header_inspect(&info, ct.p, ct.n, &err) == DCMSEAL_OK &&
              info.version == DCMSEAL_FORMAT_V2 && info.origin == DCMSEAL_ORIGIN_PRESENT &&
              !info.has_meta, "a KEK with an origin key makes format v2 with a proof");
    CHECK(ct.p[9] == 2 && slot_raw(&ct, 0)[632] == 1, "version byte 2, origin field 1");
    expected_proof(want, archive.origin_key, ct.p, 0);
    CHECK(memcmp(want, slot_raw(&ct, 0) + 636, 32) == 0,
          "the proof is HMAC-SHA256(origin key, label || header || slot[16..632))");
    int checks = archive.checks, unwraps = archive.unwraps;
    CHECK(open_obj(&back, &archive, &ct, 777, &info, NULL, &err) == DCMSEAL_OK &&
              back.n == 10000 && memcmp(back.p, pt, 10000) == 0, "v2 round trip: %s",
          err.message);
    CHECK(info.origin == DCMSEAL_ORIGIN_VERIFIED && archive.checks == checks + 1 &&
              archive.unwraps == unwraps + 1, "one proof check and one unwrap per object");
    buf_free(&back);
    buf_free(&ct);

    CHECK(seal(&ct, &legacy, NULL, pt, 10000, &err) == DCMSEAL_OK, "seal v1: %s", err.message);
    CHECK(dcmseal_header_inspect(&info, ct.p, ct.n, &err) == DCMSEAL_OK &&
              info.version == DCMSEAL_FORMAT_V1 && info.origin == DCMSEAL_ORIGIN_NONE,
          "a KEK without an origin key makes format v1");
    uint8_t zero[360] = {0};
    CHECK(memcmp(slot_raw(&ct, 0) + 632, zero, 360) == 0, "v1 slot: reserved bytes all zero");
    buf_free(&ct);

    legacy.require_origin = 1;
    CHECK(seal(&ct, &legacy, NULL, pt, 100, &err) == DCMSEAL_E_KEY &&
              strstr(err.message, "dcmseal key upgrade") != NULL,
          "no origin key but origin required: refused, %s", err.message);
    legacy.require_origin = 0;
    buf_free(&ct);
    dcmseal_meta m = {.path = "a/b.dcm", .mode = 0640};
    CHECK(seal(&ct, &legacy, &m, pt, 100, &err) == DCMSEAL_E_KEY,
          "a metadata block without an origin key: %s", err.message);
    buf_free(&ct);
    free(pt);
}

static void test_reading_rules(void)
{
    buf ct = {0}, back = {0}, v1 = {0}, other = {0};
    dcmseal_error err;
    dcmseal_header_info info;
    uint8_t *pt = pattern(9000);
    CHECK(seal(&ct, &archive, NULL, pt, 9000, &err) == DCMSEAL_OK, "seal");

    /* Stripped, changed: refused before the KEK's private half is used. */
    buf t = {malloc(ct.n), ct.n};
    memcpy(t.p, ct.p, ct.n);
    edit_slot(&t, 0, strip_proof);
    int unwraps = archive.unwraps;
    CHECK(open_obj(&back, &archive, &t, t.n, NULL, NULL, &err) == DCMSEAL_E_AUTH &&
              strstr(err.message, "not made with this archive's keys") != NULL && back.n == 0,
          "v2 without its proof: %s", err.message);
    CHECK(archive.unwraps == unwraps, "a stripped object reached the unwrap");
    buf_free(&back);
    memcpy(t.p, ct.p, ct.n);
    edit_slot(&t, 0, flip_proof);
    CHECK(open_obj(&back, &archive, &t, t.n, NULL, NULL, &err) == DCMSEAL_E_AUTH && back.n == 0,
          "a changed proof: %s", err.message);
    buf_free(&back);
    /* Claiming v1 to escape the proof changes the AAD of every segment. */
    memcpy(t.p, ct.p, ct.n);
    edit_slot(&t, 0, strip_proof);
    t.p[9] = 1;
    CHECK(open_obj(&back, &archive, &t, t.n, NULL, NULL, &err) == DCMSEAL_E_AUTH && back.n == 0,
          "v2 relabelled v1 without its proof: %s", err.message);
    buf_free(&back);
    /* Any other change to the header breaks the proof first. */
    memcpy(t.p, ct.p, ct.n);
    t.p[60] ^= 1; /* identity tag */
    CHECK(open_obj(&back, &archive, &t, t.n, NULL, NULL, &err) == DCMSEAL_E_AUTH &&
              strstr(err.message, "not made with this archive's keys") != NULL,
          "a changed identity tag: %s", err.message);
    buf_free(&back);
    free(t.p);

    /* A proof cannot move to another object: its header is another. */
    CHECK(seal(&other, &archive, NULL, pt, 9000, &err) == DCMSEAL_OK, "seal other");
    memcpy(slot_raw(&other, 0) + 636, slot_raw(&ct, 0) + 636, 32);
    dcmseal_slot s;
    CHECK(dcmseal_slot_decode(&s, slot_raw(&other, 0)) == -1, "checksum catches a raw copy");
    CHECK(dcmseal_slot_decode(&s, slot_raw(&ct, 0)) == 1, "decode");
    dcmseal_slot_encode(slot_raw(&other, 0), &s); /* ct's whole slot, proof and all */
    CHECK(open_obj(&back, &archive, &other, other.n, NULL, NULL, &err) == DCMSEAL_E_AUTH,
          "another object's slot and proof: %s", err.message);
    buf_free(&back);
    buf_free(&other);

    /* Format v1: accepted without a proof, unless the name requires one. */
    CHECK(seal(&v1, &legacy, NULL, pt, 9000, &err) == DCMSEAL_OK, "seal v1");
    CHECK(open_obj(&back, &archive, &v1, 500, &info, NULL, &err) == DCMSEAL_OK &&
              back.n == 9000 && info.origin == DCMSEAL_ORIGIN_NONE && info.version == 1,
          "v1 without a proof opens, origin NONE: %s", err.message);
    buf_free(&back);
    archive.require_origin = 1;
    unwraps = archive.unwraps;
    CHECK(open_obj(&back, &archive, &v1, v1.n, NULL, NULL, &err) == DCMSEAL_E_AUTH &&
              strstr(err.message, "requires one") != NULL && back.n == 0,
          "v1 under a name that requires origin: %s", err.message);
    CHECK(archive.unwraps == unwraps, "refused before the unwrap");
    buf_free(&back);
    CHECK(open_obj(&back, &archive, &ct, ct.n, &info, NULL, &err) == DCMSEAL_OK &&
              info.origin == DCMSEAL_ORIGIN_VERIFIED, "v2 under that name");
    buf_free(&back);
    archive.require_origin = 0;
    buf_free(&v1);

    /* A ring that knows nothing of origin cannot open v2. */
    dcmseal_keyring plain = archive.ring;
    plain.origin = NULL;
    plain.prove = NULL;
    plain.check_proof = NULL;
    dcmseal_decryptor_t *dec = NULL;
    size_t w = 0;
    CHECK(dcmseal_decrypt_new(&dec, &plain, &err) == DCMSEAL_OK &&
              dcmseal_decrypt_update(dec, back.p, 0, &w, ct.p, DCMSEAL_PREAMBLE_LEN, &err) ==
                  DCMSEAL_E_KEY, "v2 through a ring without origin: %s", err.message);
    dcmseal_decryptor_free(dec);
    buf_free(&ct);
    free(pt);
}

/* What an attacker who read the KEK's public half can make: a format v2
 * object that is right in every byte but the proof, which needs a key only
 * the token holds. Made here with the engine and a ring of the attacker's
 * (same public key, own HMAC key); tests/integration/forge.sh does it from
 * docs/FORMAT.md alone. */
static void test_forgery(void)
{
    buf ct = {0}, back = {0};
    dcmseal_error err;
    uint8_t *pt = pattern(5000);
    CHECK(seal(&ct, &forger, NULL, pt, 5000, &err) == DCMSEAL_OK, "forge");
    CHECK(open_obj(&back, &forger, &ct, ct.n, NULL, NULL, &err) == DCMSEAL_OK,
          "the forger's own ring opens it (the bytes are right)");
    buf_free(&back);
    int unwraps = archive.unwraps;
    CHECK(open_obj(&back, &archive, &ct, ct.n, NULL, NULL, &err) == DCMSEAL_E_AUTH &&
              strstr(err.message, "not made with this archive's keys") != NULL && back.n == 0,
          "the archive refuses it: %s", err.message);
    CHECK(archive.unwraps == unwraps, "without touching the KEK");
    buf_free(&back);
    /* As v1, it is refused only where the name requires origin. */
    edit_slot(&ct, 0, strip_proof);
    ct.p[9] = 1;
    CHECK(open_obj(&back, &archive, &ct, ct.n, NULL, NULL, &err) == DCMSEAL_E_AUTH,
          "relabelled v1, its segments break: %s", err.message);
    buf_free(&back);
    buf_free(&ct);
    free(pt);
}

static void test_meta(void)
{
    buf ct = {0}, back = {0}, other = {0};
    dcmseal_error err;
    dcmseal_header_info info;
    dcmseal_meta m = {.path = "1.2.840.113619/2.25.99/IM0001.dcm", .mode = 0640,
                      .mtime_sec = -5, .mtime_nsec = 999999999}, got;
    const size_t n = 3 * SEG + 10;
    uint8_t *pt = pattern(n);
    CHECK(seal(&ct, &archive, &m, pt, n, &err) == DCMSEAL_OK, "seal with metadata: %s",
          err.message);
    CHECK(dcmseal_header_inspect(&info, ct.p, ct.n, &err) == DCMSEAL_OK && info.has_meta &&
              info.meta_len == 256 + 16 && (ct.p[15] & 2) != 0,
          "flag bit 1 and the block's length in the header");
    CHECK(memmem(ct.p, ct.n, "IM0001", 6) == NULL && memmem(ct.p, ct.n, "2.25.99", 7) == NULL,
          "the path is not in the object in plain text");
    uint64_t plain = 0;
    CHECK(dcmseal_object_plaintext_size(&plain, &info, ct.n, &err) == DCMSEAL_OK && plain == n,
          "plain-text size with a metadata block");
    for (size_t chunk = 1; chunk <= 1 << 20; chunk *= 37) {
        CHECK(open_obj(&back, &archive, &ct, chunk, NULL, &got, &err) == DCMSEAL_OK &&
                  back.n == n && memcmp(back.p, pt, n) == 0, "round trip in chunks of %zu: %s",
              chunk, err.message);
        CHECK(strcmp(got.path, m.path) == 0 && got.mode == 0640 && got.mtime_sec == -5 &&
                  got.mtime_nsec == 999999999, "metadata comes back");
        buf_free(&back);
    }
    /* Random access skips the block; _begin knows the path before any
     * plain text. */
    int fd = memfd_create("v2", 0);
    CHECK(fd >= 0 && write(fd, ct.p, ct.n) == (ssize_t)ct.n, "memfd");
    dcmseal_reader_t *r = NULL;
    uint8_t part[100];
    size_t got_n = 0;
    CHECK(dcmseal_reader_open(&r, fd, &archive.ring, &err) == DCMSEAL_OK &&
              dcmseal_reader_size(r) == n &&
              dcmseal_reader_pread(r, part, sizeof part, 2 * SEG + 5, &got_n, &err) ==
                  DCMSEAL_OK && got_n == sizeof part && memcmp(part, pt + 2 * SEG + 5, 100) == 0,
          "random access with a metadata block: %s", err.message);
    CHECK(r != NULL && dcmseal_reader_get0_meta(r) != NULL &&
              strcmp(dcmseal_reader_get0_meta(r)->path, m.path) == 0 &&
              dcmseal_reader_get0_header(r)->origin == DCMSEAL_ORIGIN_VERIFIED,
          "the reader has the metadata and the origin");
    dcmseal_reader_free(r);
    lseek(fd, 0, SEEK_SET);
    dcmseal_opening_t *op = NULL;
    dcmseal_object_report rep;
    CHECK(dcmseal_open_fd_begin(&op, fd, &archive.ring, &err) == DCMSEAL_OK &&
              dcmseal_opening_get0_meta(op) != NULL &&
              strcmp(dcmseal_opening_get0_meta(op)->path, m.path) == 0,
          "begin: %s", err.message);
    int out = memfd_create("out", 0);
    CHECK(op != NULL && dcmseal_open_fd_finish(op, &rep, out, 0, &err) == DCMSEAL_OK &&
              rep.plain_bytes == n && rep.origin == DCMSEAL_ORIGIN_VERIFIED &&
              rep.format_version == 2 && rep.sealed_bytes == ct.n,
          "finish: %s", err.message);
    close(out);
    close(fd);

    /* Tampered, swapped, cut: refused, and no plain text. */
    buf t = {malloc(ct.n), ct.n};
    memcpy(t.p, ct.p, ct.n);
    t.p[DCMSEAL_PREAMBLE_LEN + 3] ^= 1;
    CHECK(open_obj(&back, &archive, &t, t.n, NULL, NULL, &err) == DCMSEAL_E_AUTH &&
              back.n == 0 && strstr(err.message, "metadata") != NULL,
          "a changed metadata block: %s", err.message);
    buf_free(&back);
    CHECK(seal(&other, &archive, &m, pt, n, &err) == DCMSEAL_OK, "another object");
    memcpy(t.p, ct.p, ct.n);
    memcpy(t.p + DCMSEAL_PREAMBLE_LEN, other.p + DCMSEAL_PREAMBLE_LEN, info.meta_len);
    CHECK(open_obj(&back, &archive, &t, t.n, NULL, NULL, &err) == DCMSEAL_E_AUTH && back.n == 0,
          "another object's metadata block: %s", err.message);
    buf_free(&back);
    buf_free(&other);
    t.n = DCMSEAL_PREAMBLE_LEN + 100;
    memcpy(t.p, ct.p, t.n);
    CHECK(open_obj(&back, &archive, &t, t.n, NULL, NULL, &err) == DCMSEAL_E_AUTH,
          "cut inside the metadata block: %s", err.message);
    buf_free(&back);
    free(t.p);
    buf_free(&ct);

    /* An empty object: final writes the block and the one segment. */
    CHECK(seal(&ct, &archive, &m, pt, 0, &err) == DCMSEAL_OK &&
              ct.n == DCMSEAL_PREAMBLE_LEN + 256 + 16 + 16, "empty object with metadata");
    CHECK(open_obj(&back, &archive, &ct, 5, NULL, &got, &err) == DCMSEAL_OK && back.n == 0 &&
              strcmp(got.path, m.path) == 0, "opens");
    buf_free(&back);
    buf_free(&ct);

    /* Padding to whole 256-byte blocks; lengths a writer never makes are
     * refused by the header parser. */
    memset(m.path, 'x', 236);
    m.path[236] = '\0';
    CHECK(dcmseal_meta_len(&m) == 256 + 16, "236-byte path: one block");
    m.path[236] = 'y';
    m.path[237] = '\0';
    CHECK(dcmseal_meta_len(&m) == 512 + 16, "237 bytes: two blocks");
    memset(m.path, 'z', DCMSEAL_META_PATH_MAX);
    m.path[DCMSEAL_META_PATH_MAX] = '\0';
    CHECK(dcmseal_meta_len(&m) == DCMSEAL_META_MAX, "the longest path fits the largest block");
    CHECK(seal(&ct, &archive, &m, pt, 10, &err) == DCMSEAL_OK, "longest path");
    CHECK(open_obj(&back, &archive, &ct, 64, NULL, &got, &err) == DCMSEAL_OK &&
              strcmp(got.path, m.path) == 0, "longest path round trip");
    buf_free(&back);
    ct.p[23] ^= 1; /* meta_len, low byte */
    CHECK(dcmseal_header_inspect(&info, ct.p, ct.n, &err) == DCMSEAL_E_FORMAT,
          "a block length that is not a whole number of blocks");
    buf_free(&ct);

    static const char *const bad[] = {"",     "/etc/passwd", "a//b", "a/", "./a",
                                      "a/..", "../a",        "a/./b", ".."};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dcmseal_meta b = {.mode = 0600};
        snprintf(b.path, sizeof b.path, "%s", bad[i]);
        CHECK(!dcmseal_meta_path_ok(b.path) &&
                  seal(&ct, &archive, &b, pt, 10, &err) == DCMSEAL_E_USAGE,
              "path '%s' refused", bad[i]);
        buf_free(&ct);
    }
    CHECK(dcmseal_meta_path_ok("..a/b.../.c") && dcmseal_meta_path_ok("a"), "dots in names");
    dcmseal_meta b = {.path = "x", .mode = 01777};
    CHECK(seal(&ct, &archive, &b, pt, 10, &err) == DCMSEAL_E_USAGE, "mode beyond 0777");
    buf_free(&ct);
    free(pt);
}

static void test_conceal(void)
{
    char a[DCMSEAL_CONCEALED_NAME_LEN], b[DCMSEAL_CONCEALED_NAME_LEN],
        c[DCMSEAL_CONCEALED_NAME_LEN];
    dcmseal_error err;
    const char *path = "1.2.840.113619.2.55/1.3.12.2.1107.5/IM0001.dcm";
    CHECK(dcmseal_conceal_name(a, &archive.ring, "archive", path, &err) == DCMSEAL_OK,
          "conceal: %s", err.message);
    CHECK(strlen(a) == 38 && a[2] == '/' && a[5] == '/' && strncmp(a, a + 6, 2) == 0 &&
              strncmp(a + 3, a + 8, 2) == 0 && strspn(a + 6, "0123456789abcdef") == 32,
          "ab/cd/abcd...: %s", a);
    uint8_t msg[256], mac[32];
    unsigned int ml = 32;
    memcpy(msg, "dcmseal v2 name", 16); /* with its NUL */
    memcpy(msg + 16, path, strlen(path));
    HMAC(EVP_sha256(), archive.conceal_key, 32, msg, 16 + strlen(path), mac, &ml);
    char hex[33];
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    CHECK(strcmp(a + 6, hex) == 0, "the name is FORMAT.md's HMAC: %s vs %s", a + 6, hex);
    CHECK(dcmseal_conceal_name(b, &archive.ring, "archive", path, &err) == DCMSEAL_OK &&
              strcmp(a, b) == 0, "the same path, the same name");
    CHECK(dcmseal_conceal_name(c, &archive.ring, "archive", "1.2.840.113619.2.55/x", &err) ==
                  DCMSEAL_OK && strcmp(a, c) != 0, "another path, another name");
    CHECK(dcmseal_conceal_name(c, &archive.ring, "archive", "../x", &err) == DCMSEAL_E_USAGE,
          "not a relative path");
    CHECK(dcmseal_conceal_name(c, &archive.ring, "other", path, &err) == DCMSEAL_E_KEY,
          "a name without a concealment key");
}

int main(void)
{
    if (soft_ring_init(&archive, KAT_KEK_PEM, "archive", 1, DCMSEAL_OAEP_SHA256) != 0 ||
        soft_ring_init(&legacy, KAT_KEK_PEM, "archive", 1, DCMSEAL_OAEP_SHA256) != 0 ||
        soft_ring_init(&forger, KAT_KEK_PEM, "archive", 1, DCMSEAL_OAEP_SHA256) != 0) {
        printf("cannot set up key rings\n");
        return 1;
    }
    soft_ring_set_origin(&archive, NULL);
    soft_ring_set_origin(&forger, NULL);
    test_writer();
    test_reading_rules();
    test_forgery();
    test_meta();
    test_conceal();
    soft_ring_free(&archive);
    soft_ring_free(&legacy);
    soft_ring_free(&forger);
    return check_done("test_v2");
}
