#define _GNU_SOURCE /* memmem */
/* Engine tests over a host key ring: STREAM framing, tamper and truncation
 * resistance, slots, random access, identity binding, error states, and the
 * identity that seal_fd binds and open_fd checks for the objects of
 * tests/support/identity_cases.sh (argv[1]). */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "../../engine/internal.h"
#include "../support/check.h"
#include "../support/buf.h"
#include "../support/soft_ring.h"

#define SEG 4096u

static soft_ring ring, other_ring;

static const dcmseal_identity ID = {"1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.5.6.7",
                                    "1.2.3.4.5"};

/* Encrypts |pt| feeding |chunk| bytes per update. */
static dcmseal_status seal(buf *out, const dcmseal_keyring *kr, const dcmseal_identity *id,
                           const uint8_t *pt, size_t n, size_t chunk)
{
    dcmseal_error err;
    dcmseal_encryptor_t *enc = NULL;
    dcmseal_encrypt_params p = {.keyring = kr, .segment_size = SEG, .identity = id};
    out->p = malloc(DCMSEAL_PREAMBLE_LEN + n + (n / SEG + 2) * DCMSEAL_TAG_LEN + SEG);
    dcmseal_status st = dcmseal_encrypt_init(&enc, out->p, &p, &err);
    if (st != DCMSEAL_OK)
        return st;
    out->n = DCMSEAL_PREAMBLE_LEN;
    for (size_t off = 0; off < n && st == DCMSEAL_OK; off += chunk) {
        size_t take = n - off < chunk ? n - off : chunk, w = 0;
        size_t cap = dcmseal_encrypt_update_max(enc, take);
        st = dcmseal_encrypt_update(enc, out->p + out->n, cap, &w, pt + off, take, &err);
        out->n += w;
    }
    size_t w = 0;
    if (st == DCMSEAL_OK)
        st = dcmseal_encrypt_final(enc, out->p + out->n, SEG + DCMSEAL_TAG_LEN, &w, &err);
    out->n += w;
    dcmseal_encryptor_free(enc);
    return st;
}

/* Decrypts |ct| feeding |chunk| bytes per update; |err| may be NULL. */
static dcmseal_status open_ex(buf *out, const dcmseal_keyring *kr, const uint8_t *ct,
                              size_t n, size_t chunk, dcmseal_error *err)
{
    dcmseal_decryptor_t *dec = NULL;
    dcmseal_status st = dcmseal_decrypt_new(&dec, kr, err);
    out->p = malloc(n + 1);
    out->n = 0;
    for (size_t off = 0; off < n && st == DCMSEAL_OK; off += chunk) {
        size_t take = n - off < chunk ? n - off : chunk, w = 0;
        st = dcmseal_decrypt_update(dec, out->p + out->n, n + 1 - out->n, &w, ct + off, take,
                                    err);
        out->n += w;
    }
    size_t w = 0;
    if (st == DCMSEAL_OK)
        st = dcmseal_decrypt_final(dec, out->p + out->n, n + 1 - out->n, &w, err);
    out->n += w;
    dcmseal_decryptor_free(dec);
    return st;
}

static dcmseal_status open_all(buf *out, const uint8_t *ct, size_t n)
{
    return open_ex(out, &ring.ring, ct, n, 65536, NULL);
}

static uint8_t *pattern(size_t n, uint8_t seed)
{
    uint8_t *p = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 31 + seed);
    return p;
}

static void test_round_trips(void)
{
    const size_t sizes[] = {0, 1, 100, SEG - 1, SEG, SEG + 1, 2 * SEG, 3 * SEG + 17, 70000};
    const size_t chunks[] = {1, 7, SEG, SEG + 1, 100000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t *pt = pattern(sizes[i], (uint8_t)i);
        for (size_t j = 0; j < sizeof chunks / sizeof chunks[0]; j++) {
            if (chunks[j] == 1 && sizes[i] > 3 * SEG)
                continue;
            buf ct = {0}, back = {0};
            dcmseal_status st = seal(&ct, &ring.ring, &ID, pt, sizes[i], chunks[j]);
            CHECK(st == DCMSEAL_OK, "seal %zu/%zu: %d", sizes[i], chunks[j], st);
            size_t nseg = sizes[i] == 0 ? 1 : (sizes[i] + SEG - 1) / SEG;
            CHECK(ct.n == DCMSEAL_PREAMBLE_LEN + sizes[i] + nseg * DCMSEAL_TAG_LEN,
                  "size %zu: sealed %zu bytes", sizes[i], ct.n);
            uint64_t plain = 0;
            CHECK(dcmseal_plaintext_size(&plain, ct.n, SEG, NULL) == DCMSEAL_OK &&
                      plain == sizes[i], "plaintext_size of %zu", sizes[i]);
            st = open_ex(&back, &ring.ring, ct.p, ct.n, chunks[j], NULL);
            CHECK(st == DCMSEAL_OK && back.n == sizes[i] && memcmp(back.p, pt, sizes[i]) == 0,
                  "round trip %zu/%zu: %d", sizes[i], chunks[j], st);
            buf_free(&ct);
            buf_free(&back);
        }
        free(pt);
    }
}

/* Payload bytes are never the plain text: a cheap check that we encrypt. */
static void test_ciphertext_hides_plaintext(void)
{
    uint8_t pt[2 * SEG];
    memset(pt, 'A', sizeof pt);
    buf ct = {0};
    CHECK(seal(&ct, &ring.ring, &ID, pt, sizeof pt, sizeof pt) == DCMSEAL_OK, "seal");
    CHECK(memmem(ct.p, ct.n, "AAAAAAAA", 8) == NULL, "plain text visible in object");
    CHECK(memmem(ct.p, ct.n, ID.sop_instance_uid, strlen(ID.sop_instance_uid)) == NULL,
          "UID visible in object");
    buf_free(&ct);
}

static void test_truncation(void)
{
    const size_t n = 3 * SEG + 1000;
    uint8_t *pt = pattern(n, 3);
    buf ct = {0}, back = {0};
    CHECK(seal(&ct, &ring.ring, NULL, pt, n, n) == DCMSEAL_OK, "seal");
    int cases = 0, accepted = 0;
    for (size_t s = 0; s <= 4; s++) {
        size_t boundary = DCMSEAL_PREAMBLE_LEN + s * (SEG + DCMSEAL_TAG_LEN);
        const long deltas[] = {-17, -16, -1, 0, 1, 16, 17, 1000};
        for (size_t d = 0; d < sizeof deltas / sizeof deltas[0]; d++) {
            long len = (long)boundary + deltas[d];
            if (len < 0 || (size_t)len >= ct.n)
                continue;
            cases++;
            if (open_all(&back, ct.p, (size_t)len) == DCMSEAL_OK)
                accepted++;
            buf_free(&back);
        }
    }
    /* And everywhere else, at a stride that is not a divisor of a segment. */
    for (size_t len = 0; len < ct.n; len += 331) {
        cases++;
        if (open_all(&back, ct.p, len) == DCMSEAL_OK)
            accepted++;
        buf_free(&back);
    }
    CHECK(cases > 40 && accepted == 0, "%d of %d truncations accepted", accepted, cases);
    CHECK(open_all(&back, ct.p, ct.n) == DCMSEAL_OK && back.n == n, "untruncated opens");
    buf_free(&back);
    buf_free(&ct);
    free(pt);
}

static void test_segment_surgery(void)
{
    const size_t n = 4 * SEG, full = SEG + DCMSEAL_TAG_LEN;
    uint8_t *pt = pattern(n, 5);
    buf ct = {0}, back = {0};
    CHECK(seal(&ct, &ring.ring, NULL, pt, n, n) == DCMSEAL_OK, "seal");
    uint8_t *seg = ct.p + DCMSEAL_PREAMBLE_LEN;
    uint8_t *m = malloc(ct.n + full);

    /* swap segments 1 and 2 */
    memcpy(m, ct.p, ct.n);
    memcpy(m + DCMSEAL_PREAMBLE_LEN + full, seg + 2 * full, full);
    memcpy(m + DCMSEAL_PREAMBLE_LEN + 2 * full, seg + full, full);
    CHECK(open_all(&back, m, ct.n) == DCMSEAL_E_AUTH, "reordered segments accepted");
    buf_free(&back);
    /* duplicate segment 1 over segment 2 */
    memcpy(m, ct.p, ct.n);
    memcpy(m + DCMSEAL_PREAMBLE_LEN + 2 * full, seg + full, full);
    CHECK(open_all(&back, m, ct.n) == DCMSEAL_E_AUTH, "duplicated segment accepted");
    buf_free(&back);
    /* remove segment 1 */
    memcpy(m, ct.p, DCMSEAL_PREAMBLE_LEN + full);
    memcpy(m + DCMSEAL_PREAMBLE_LEN + full, seg + 2 * full, 2 * full);
    CHECK(open_all(&back, m, ct.n - full) == DCMSEAL_E_AUTH, "removed segment accepted");
    buf_free(&back);
    /* append a copy of the last segment, and appended garbage */
    memcpy(m, ct.p, ct.n);
    memcpy(m + ct.n, seg + 3 * full, full);
    CHECK(open_all(&back, m, ct.n + full) == DCMSEAL_E_AUTH, "appended segment accepted");
    buf_free(&back);
    memset(m + ct.n, 0, 20);
    CHECK(open_all(&back, m, ct.n + 20) == DCMSEAL_E_AUTH, "appended bytes accepted");
    buf_free(&back);
    free(m);
    buf_free(&ct);
    free(pt);
}

static void test_cross_object_swaps(void)
{
    const size_t n = 2 * SEG + 10;
    uint8_t *pt = pattern(n, 9);
    buf a = {0}, b = {0}, back = {0};
    CHECK(seal(&a, &ring.ring, &ID, pt, n, n) == DCMSEAL_OK, "seal a");
    CHECK(seal(&b, &ring.ring, &ID, pt, n, n) == DCMSEAL_OK, "seal b");
    CHECK(a.n == b.n && memcmp(a.p, b.p, a.n) != 0, "two objects differ");
    uint8_t *m = malloc(a.n);

    memcpy(m, a.p, DCMSEAL_PREAMBLE_LEN); /* header and slots of a, payload of b */
    memcpy(m + DCMSEAL_PREAMBLE_LEN, b.p + DCMSEAL_PREAMBLE_LEN, a.n - DCMSEAL_PREAMBLE_LEN);
    CHECK(open_all(&back, m, a.n) == DCMSEAL_E_AUTH, "swapped header accepted");
    buf_free(&back);
    memcpy(m, a.p, a.n); /* slot of b in a */
    memcpy(m + DCMSEAL_HEADER_LEN, b.p + DCMSEAL_HEADER_LEN, DCMSEAL_SLOT_LEN);
    CHECK(open_all(&back, m, a.n) == DCMSEAL_E_AUTH, "swapped slot accepted");
    buf_free(&back);
    memcpy(m, a.p, a.n); /* immutable header of b in a */
    memcpy(m, b.p, DCMSEAL_HEADER_LEN);
    CHECK(open_all(&back, m, a.n) == DCMSEAL_E_AUTH, "swapped immutable header accepted");
    buf_free(&back);
    memcpy(m, a.p, a.n); /* segment 0 of b in a */
    memcpy(m + DCMSEAL_PREAMBLE_LEN, b.p + DCMSEAL_PREAMBLE_LEN, SEG + DCMSEAL_TAG_LEN);
    CHECK(open_all(&back, m, a.n) == DCMSEAL_E_AUTH, "swapped segment accepted");
    buf_free(&back);
    free(m);
    buf_free(&a);
    buf_free(&b);
    free(pt);
}

/* Every single-bit flip of the header, the active slot and the payload of a
 * small object is rejected; a flip in the unused slot is tolerated (that is
 * what lets a torn slot write survive) and reported as damage. */
static void test_bit_flips(void)
{
    const size_t n = 100;
    uint8_t *pt = pattern(n, 11);
    buf ct = {0}, back = {0};
    CHECK(seal(&ct, &ring.ring, &ID, pt, n, n) == DCMSEAL_OK, "seal");
    const size_t inactive = DCMSEAL_HEADER_LEN + DCMSEAL_SLOT_LEN;
    int flips = 0, accepted = 0, not_65 = 0;
    for (size_t bit = 0; bit < ct.n * 8; bit++) {
        size_t byte = bit / 8;
        if (byte >= inactive && byte < inactive + DCMSEAL_SLOT_LEN)
            continue;
        ct.p[byte] ^= (uint8_t)(1u << (bit % 8));
        dcmseal_status st = open_all(&back, ct.p, ct.n);
        ct.p[byte] ^= (uint8_t)(1u << (bit % 8));
        buf_free(&back);
        flips++;
        accepted += st == DCMSEAL_OK;
        not_65 += st != DCMSEAL_E_AUTH && st != DCMSEAL_E_FORMAT;
    }
    CHECK(flips == (int)(ct.n - DCMSEAL_SLOT_LEN) * 8 && accepted == 0 && not_65 == 0,
          "%d of %d flips accepted, %d not bad-data", accepted, flips, not_65);

    int tolerated = 0, reported = 0;
    for (size_t byte = inactive; byte < inactive + DCMSEAL_SLOT_LEN; byte += 37) {
        dcmseal_header_info info;
        ct.p[byte] ^= 0x10;
        tolerated += open_all(&back, ct.p, ct.n) == DCMSEAL_OK && back.n == n;
        reported += dcmseal_header_inspect(&info, ct.p, ct.n, NULL) == DCMSEAL_OK &&
                    info.other_slot_state == -1;
        ct.p[byte] ^= 0x10;
        buf_free(&back);
    }
    CHECK(tolerated == 28 && reported == 28, "inactive slot flips: %d tolerated, %d reported",
          tolerated, reported);
    buf_free(&ct);
    free(pt);
}

/* A slot whose checksum is recomputed after tampering must still fail: at
 * the unwrap, or at the key commitment. */
static void test_forged_slot(void)
{
    buf ct = {0}, back = {0};
    uint8_t pt[10] = {0};
    CHECK(seal(&ct, &ring.ring, NULL, pt, sizeof pt, sizeof pt) == DCMSEAL_OK, "seal");
    uint8_t *raw = ct.p + DCMSEAL_HEADER_LEN;
    dcmseal_slot s;
    CHECK(dcmseal_slot_decode(&s, raw) == 1, "slot decodes");
    s.wrapped[5] ^= 1;
    dcmseal_slot_encode(raw, &s);
    CHECK(open_all(&back, ct.p, ct.n) == DCMSEAL_E_AUTH, "forged wrapped key accepted");
    buf_free(&back);
    s.wrapped[5] ^= 1;
    s.generation = 7;
    dcmseal_slot_encode(raw, &s);
    CHECK(open_all(&back, ct.p, ct.n) == DCMSEAL_OK, "re-encoded intact slot refused");
    buf_free(&back);
    /* The newer of two intact slots wins: a slot from another object with a
     * higher generation must not decrypt this one. */
    buf other = {0};
    CHECK(seal(&other, &ring.ring, NULL, pt, sizeof pt, sizeof pt) == DCMSEAL_OK, "seal");
    dcmseal_slot o;
    CHECK(dcmseal_slot_decode(&o, other.p + DCMSEAL_HEADER_LEN) == 1, "other slot");
    o.generation = 8;
    dcmseal_slot_encode(ct.p + DCMSEAL_HEADER_LEN + DCMSEAL_SLOT_LEN, &o);
    CHECK(open_all(&back, ct.p, ct.n) == DCMSEAL_E_AUTH, "foreign newer slot accepted");
    buf_free(&back);
    buf_free(&other);
    buf_free(&ct);
}

static void test_wrong_key(void)
{
    buf ct = {0}, back = {0};
    uint8_t pt[10] = {1};
    dcmseal_error err;
    CHECK(seal(&ct, &ring.ring, NULL, pt, sizeof pt, sizeof pt) == DCMSEAL_OK, "seal");
    CHECK(open_ex(&back, &other_ring.ring, ct.p, ct.n, ct.n, &err) == DCMSEAL_E_KEY,
          "other key: %s", err.message);
    CHECK(back.n == 0, "plain text released under the wrong key");
    buf_free(&back);
    buf_free(&ct);
}

static void test_not_ours(void)
{
    buf back = {0};
    uint8_t junk[DCMSEAL_PREAMBLE_LEN + 64];
    RAND_bytes(junk, sizeof junk);
    CHECK(open_all(&back, junk, sizeof junk) == DCMSEAL_E_FORMAT, "random bytes");
    buf_free(&back);
    CHECK(open_all(&back, junk, 0) == DCMSEAL_E_FORMAT, "empty input");
    buf_free(&back);
    /* A future version is refused by name, not misread. */
    buf ct = {0};
    CHECK(seal(&ct, &ring.ring, NULL, junk, 10, 10) == DCMSEAL_OK, "seal");
    ct.p[9] = 3;
    dcmseal_error err;
    CHECK(open_ex(&back, &ring.ring, ct.p, ct.n, ct.n, &err) == DCMSEAL_E_FORMAT &&
              strstr(err.message, "version 3") != NULL, "future version: %s", err.message);
    buf_free(&back);
    buf_free(&ct);
}

/* After a failure the stream is dead, and the failing call's output is
 * zeroed rather than left half-written. */
static void test_error_state(void)
{
    const size_t n = 3 * SEG;
    uint8_t *pt = pattern(n, 13);
    buf ct = {0};
    dcmseal_error err;
    CHECK(seal(&ct, &ring.ring, NULL, pt, n, n) == DCMSEAL_OK, "seal");
    ct.p[DCMSEAL_PREAMBLE_LEN + (SEG + DCMSEAL_TAG_LEN) + 5] ^= 1; /* segment 1 */
    dcmseal_decryptor_t *dec = NULL;
    CHECK(dcmseal_decrypt_new(&dec, &ring.ring, &err) == DCMSEAL_OK, "new");
    uint8_t *out = malloc(ct.n);
    memset(out, 0xAA, ct.n);
    size_t w = 123;
    dcmseal_status st = dcmseal_decrypt_update(dec, out, ct.n, &w, ct.p, ct.n, &err);
    CHECK(st == DCMSEAL_E_AUTH && w == 0, "tampered segment: %d, %zu", st, w);
    int leaked = 0;
    for (size_t i = 0; i < SEG; i++)
        leaked += out[i] == pt[i] && pt[i] != 0 && pt[i] != 0xAA;
    CHECK(leaked == 0, "%d plain-text bytes left in the output after a failure", leaked);
    st = dcmseal_decrypt_update(dec, out, ct.n, &w, ct.p, 1, &err);
    CHECK(st == DCMSEAL_E_AUTH, "stream accepts input after failing: %d", st);
    CHECK(dcmseal_decrypt_final(dec, out, ct.n, &w, &err) == DCMSEAL_E_AUTH, "final after fail");
    dcmseal_decryptor_free(dec);
    free(out);
    buf_free(&ct);
    free(pt);
}

static void test_identity(void)
{
    buf ct = {0}, back = {0};
    uint8_t pt[50] = {0};
    dcmseal_error err;
    CHECK(seal(&ct, &ring.ring, &ID, pt, sizeof pt, sizeof pt) == DCMSEAL_OK, "seal");
    dcmseal_decryptor_t *dec = NULL;
    size_t w;
    CHECK(dcmseal_decrypt_new(&dec, &ring.ring, &err) == DCMSEAL_OK &&
              dcmseal_decrypt_update(dec, NULL, 0, &w, ct.p, DCMSEAL_PREAMBLE_LEN, &err) ==
                  DCMSEAL_OK, "header");
    CHECK(dcmseal_decrypt_get0_header(dec) && dcmseal_decrypt_get0_header(dec)->is_dicom,
          "DICOM flag");
    CHECK(dcmseal_decrypt_check_identity(dec, &ID, &err) == DCMSEAL_OK, "right identity");
    dcmseal_identity other = ID;
    other.sop_instance_uid[strlen(other.sop_instance_uid) - 1] ^= 1;
    CHECK(dcmseal_decrypt_check_identity(dec, &other, &err) == DCMSEAL_E_AUTH, "other uid");
    CHECK(dcmseal_decrypt_check_identity(dec, NULL, &err) == DCMSEAL_E_AUTH, "opaque vs dicom");
    /* UIDs shift between fields: length prefixes keep them apart. */
    dcmseal_identity shifted = ID;
    strcpy(shifted.sop_class_uid, "1.2.840.10008.5.1.4.1.1.21");
    strcpy(shifted.sop_instance_uid, ".2.3.4.5.6.7");
    CHECK(dcmseal_decrypt_check_identity(dec, &shifted, &err) == DCMSEAL_E_AUTH, "shifted");
    dcmseal_decryptor_free(dec);
    buf_free(&back);
    buf_free(&ct);
}

static void test_random_access(void)
{
    const size_t n = 5 * SEG + 123;
    uint8_t *pt = pattern(n, 17);
    buf ct = {0};
    dcmseal_error err;
    CHECK(seal(&ct, &ring.ring, NULL, pt, n, n) == DCMSEAL_OK, "seal");
    /* Damage segment 3: ranges elsewhere still read, ranges touching it fail.
     * That proves only touched segments are decrypted. */
    ct.p[DCMSEAL_PREAMBLE_LEN + 3 * (SEG + DCMSEAL_TAG_LEN) + 100] ^= 4;
    char path[] = "/tmp/dcmseal-test-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, ct.p, ct.n) == (ssize_t)ct.n, "temp file");
    unlink(path);
    dcmseal_reader_t *r = NULL;
    CHECK(dcmseal_reader_open(&r, fd, &ring.ring, &err) == DCMSEAL_OK, "reader: %s", err.message);
    if (r != NULL) {
        CHECK(dcmseal_reader_size(r) == n, "reader size");
        uint8_t out[3 * SEG];
        size_t got = 0;
        const struct { uint64_t off; size_t len; dcmseal_status want; } cases[] = {
            {0, 10, DCMSEAL_OK},
            {SEG - 5, 10, DCMSEAL_OK},       /* spans segments 0 and 1 */
            {2 * SEG, SEG, DCMSEAL_OK},
            {4 * SEG + 7, SEG + 116, DCMSEAL_OK}, /* the tail, exactly */
            {3 * SEG + 1, 5, DCMSEAL_E_AUTH},
            {2 * SEG + 4000, 200, DCMSEAL_E_AUTH},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            dcmseal_status st = dcmseal_reader_pread(r, out, cases[i].len, cases[i].off, &got, &err);
            CHECK(st == cases[i].want, "range %zu: %d", i, st);
            if (st == DCMSEAL_OK)
                CHECK(got == cases[i].len && memcmp(out, pt + cases[i].off, got) == 0,
                      "range %zu content", i);
        }
        /* Whole segments are decrypted in place in the caller's buffer: a
         * damaged one leaves no plain text of the range behind, not even
         * of the good segment before it. */
        for (int k = 0; k < 2; k++) {
            memset(out, 0xaa, sizeof out);
            const uint64_t off = k == 0 ? 3 * SEG : 2 * SEG;
            const size_t len = k == 0 ? SEG : 2 * SEG;
            CHECK(dcmseal_reader_pread(r, out, len, off, &got, &err) == DCMSEAL_E_AUTH &&
                      got == 0, "whole damaged segment %d refused", k);
            CHECK(memmem(out, len, pt + 2 * SEG + 100, 64) == NULL &&
                      memmem(out, len, pt + 3 * SEG + 200, 64) == NULL,
                  "case %d: plain text left in the buffer after the failure", k);
        }
        /* A segment already in the reader's buffer is copied, not decrypted
         * again; the next one goes straight to the caller's buffer. */
        CHECK(dcmseal_reader_pread(r, out, 10, SEG + 5, &got, &err) == DCMSEAL_OK &&
                  dcmseal_reader_pread(r, out, 2 * SEG, SEG, &got, &err) == DCMSEAL_OK &&
                  got == 2 * SEG && memcmp(out, pt + SEG, got) == 0,
              "cached segment, then a whole one");
        CHECK(dcmseal_reader_pread(r, out, 100, n - 10, &got, &err) == DCMSEAL_OK && got == 10,
              "short read at the end");
        CHECK(dcmseal_reader_pread(r, out, 100, n + 10, &got, &err) == DCMSEAL_OK && got == 0,
              "read past the end");
        dcmseal_reader_free(r);
    }
    close(fd);
    /* A tail cut at a segment boundary shows when the tail is read. */
    strcpy(path, "/tmp/dcmseal-test-XXXXXX");
    fd = mkstemp(path);
    size_t cut = DCMSEAL_PREAMBLE_LEN + 2 * (SEG + DCMSEAL_TAG_LEN);
    CHECK(fd >= 0 && write(fd, ct.p, cut) == (ssize_t)cut, "temp file");
    unlink(path);
    r = NULL;
    CHECK(dcmseal_reader_open(&r, fd, &ring.ring, &err) == DCMSEAL_OK, "reader on cut file");
    if (r != NULL) {
        uint8_t out[16];
        size_t got;
        CHECK(dcmseal_reader_pread(r, out, 16, 2 * SEG - 16, &got, &err) == DCMSEAL_E_AUTH,
              "truncated tail accepted by the reader");
        dcmseal_reader_free(r);
    }
    close(fd);
    buf_free(&ct);
    free(pt);
}

/* ---- seal_fd and open_fd on the objects identity_cases.sh builds -------- */

#define CASE_CLASS "1.2.840.10008.5.1.4.1.1.7"
#define CASE_INSTANCE "1.2.826.0.1.3680043.10.1001.2"
#define CASE_META_INSTANCE "1.2.826.0.1.3680043.10.1001.9"
#define CASE_STUDY "1.2.826.0.1.3680043.10.1001.1"

static const char *cases;

static int tmpfile_fd(void)
{
    char path[] = "/tmp/dcmseal-test-XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0)
        unlink(path);
    return fd;
}

static uint8_t *slurp_fd(int fd, size_t *n)
{
    struct stat sb;
    uint8_t *p = NULL;
    *n = 0;
    if (fstat(fd, &sb) == 0 && (p = malloc((size_t)sb.st_size + 1)) != NULL &&
        pread(fd, p, (size_t)sb.st_size, 0) == (ssize_t)sb.st_size)
        *n = (size_t)sb.st_size;
    return p;
}

/* Writes a file into a pipe, as `cat FILE |` would. */
typedef struct {
    int from, to;
} pump;

static void *pump_main(void *arg)
{
    pump *p = arg;
    uint8_t b[65536];
    ssize_t n;
    while ((n = read(p->from, b, sizeof b)) > 0)
        if (write(p->to, b, (size_t)n) != n)
            break;
    close(p->to);
    return NULL;
}

/* The read end of a pipe that a thread pours |from| into, or -1. */
static int pour(pump *p, pthread_t *t, int from)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    p->from = from;
    p->to = fds[1];
    if (pthread_create(t, NULL, pump_main, p) != 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    return fds[0];
}

/* Closes the read end first, so that a pump whose reader stopped early ends
 * too (SIGPIPE is ignored). */
static void pour_end(pthread_t t, int rd)
{
    close(rd);
    pthread_join(t, NULL);
}

/* seal_fd of |in_fd|, or of a pipe it is poured into (|piped|). */
static dcmseal_status seal_input(dcmseal_object_report *rep, int out_fd, int in_fd, int piped)
{
    const dcmseal_seal_opts opts = {.keyring = &ring.ring, .segment_size = SEG};
    pump p;
    pthread_t t;
    int rd = piped ? pour(&p, &t, in_fd) : in_fd;
    if (rd < 0)
        return DCMSEAL_E_IO;
    dcmseal_status st = dcmseal_seal_fd(rep, out_fd, rd, &opts, NULL);
    if (piped)
        pour_end(t, rd);
    return st;
}

/* Which identity the object in |fd| binds: checked against |id| (NULL:
 * opaque) with the decryptor, as a reader of the header would. */
static dcmseal_status bound_is(int fd, const dcmseal_identity *id)
{
    dcmseal_decryptor_t *dec = NULL;
    uint8_t pre[DCMSEAL_PREAMBLE_LEN];
    size_t w = 0;
    dcmseal_status st = dcmseal_decrypt_new(&dec, &ring.ring, NULL);
    if (st == DCMSEAL_OK && pread(fd, pre, sizeof pre, 0) != (ssize_t)sizeof pre)
        st = DCMSEAL_E_IO;
    if (st == DCMSEAL_OK)
        st = dcmseal_decrypt_update(dec, NULL, 0, &w, pre, sizeof pre, NULL);
    if (st == DCMSEAL_OK)
        st = dcmseal_decrypt_check_identity(dec, id, NULL);
    dcmseal_decryptor_free(dec);
    return st;
}

/* open_fd with |check_identity| of |fd| from offset 0, or through a pipe;
 * |*plain| gets the plain text. */
static dcmseal_status open_input(dcmseal_object_report *rep, int fd, int piped, uint8_t **plain,
                                 size_t *plain_len, dcmseal_error *err)
{
    pump p;
    pthread_t t;
    lseek(fd, 0, SEEK_SET);
    int out = tmpfile_fd(), rd = piped ? pour(&p, &t, fd) : fd;
    dcmseal_status st = DCMSEAL_E_IO;
    if (rd >= 0 && out >= 0)
        st = dcmseal_open_fd(rep, out, rd, &ring.ring, 1, err);
    if (piped && rd >= 0)
        pour_end(t, rd);
    *plain = slurp_fd(out, plain_len);
    close(out);
    return st;
}

static void test_identity_cases(void)
{
    static const struct {
        const char *name;
        int meta_differs, large;
    } want[] = {
        {"base.dcm", 0, 0},         {"un-vr.dcm", 0, 0},          {"raw-implicit.dcm", 0, 0},
        {"raw-explicit.dcm", 0, 0}, {"meta-differs.dcm", 1, 0},   {"big-private.dcm", 0, 1},
        {"meta-private.dcm", 0, 1}, {"after-pixels.dcm", 1, 1},   {"after-pixels-small.dcm", 1, 0},
    };
    const dcmseal_identity right = {CASE_CLASS, CASE_INSTANCE, CASE_STUDY};
    const dcmseal_identity meta = {CASE_CLASS, CASE_META_INSTANCE, CASE_STUDY};
    const dcmseal_identity no_study = {CASE_CLASS, CASE_INSTANCE, ""};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const char *name = want[i].name;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", cases, name);
        int in = open(path, O_RDONLY), sealed = tmpfile_fd();
        size_t n = 0, back_len = 0;
        uint8_t *pt = in >= 0 ? slurp_fd(in, &n) : NULL, *back = NULL;
        CHECK(pt != NULL && n > 0 && sealed >= 0, "%s: cannot read", path);
        if (pt == NULL || sealed < 0)
            continue;
        dcmseal_object_report rep;
        dcmseal_error err = {DCMSEAL_OK, ""};

        /* From the file: the data set's identity is bound, and verify
         * checks it, past the first MiB through the reader with the keys
         * it has (one unwrap). */
        CHECK(seal_input(&rep, sealed, in, 0) == DCMSEAL_OK, "%s: seal", name);
        CHECK(rep.is_dicom, "%s: opaque (%s)", name, rep.not_dicom_reason);
        CHECK((rep.notice[0] != '\0') == want[i].meta_differs, "%s: notice '%s'", name,
              rep.notice);
        CHECK(bound_is(sealed, &right) == DCMSEAL_OK, "%s: not the data set's identity", name);
        CHECK(bound_is(sealed, &meta) == DCMSEAL_E_AUTH, "%s: the meta header's bound", name);
        CHECK(bound_is(sealed, &no_study) == DCMSEAL_E_AUTH, "%s: bound without study", name);
        const int unwraps = ring.unwraps;
        CHECK(open_input(&rep, sealed, 0, &back, &back_len, &err) == DCMSEAL_OK,
              "%s: verify: %s", name, err.message);
        CHECK(rep.is_dicom && back_len == n && memcmp(back, pt, n) == 0,
              "%s: not the same bytes back", name);
        CHECK(ring.unwraps == unwraps + 1, "%s: %d unwraps", name, ring.unwraps - unwraps);
        free(back);
        /* Verify from a pipe has the first MiB only. */
        dcmseal_status st = open_input(&rep, sealed, 1, &back, &back_len, &err);
        CHECK(want[i].large ? st == DCMSEAL_E_USAGE : st == DCMSEAL_OK,
              "%s: verify from a pipe: %s (%s)", name, dcmseal_status_name(st), err.message);
        free(back);

        /* From a pipe: of a large one the first MiB, which does not hold
         * the identity, so it is opaque, and verify accepts it as such. */
        close(sealed);
        sealed = tmpfile_fd();
        lseek(in, 0, SEEK_SET);
        CHECK(seal_input(&rep, sealed, in, 1) == DCMSEAL_OK, "%s: seal from a pipe", name);
        CHECK(rep.is_dicom == !want[i].large, "%s from a pipe: %s", name,
              rep.is_dicom ? "bound" : rep.not_dicom_reason);
        CHECK(want[i].large == (strstr(rep.not_dicom_reason, "cannot be read further") != NULL),
              "%s from a pipe: reason '%s'", name, rep.not_dicom_reason);
        CHECK(bound_is(sealed, want[i].large ? NULL : &right) == DCMSEAL_OK,
              "%s from a pipe: wrong identity bound", name);
        CHECK(open_input(&rep, sealed, 0, &back, &back_len, &err) == DCMSEAL_OK &&
                  back_len == n && memcmp(back, pt, n) == 0,
              "%s from a pipe: verify: %s", name, err.message);
        free(back);

        /* An object that binds the meta header's UID, as dcmseal did for
         * UIDs after the pixel data, fails verify. */
        if (want[i].meta_differs) {
            buf ct = {0};
            CHECK(seal(&ct, &ring.ring, &meta, pt, n, n) == DCMSEAL_OK, "%s: seal", name);
            int fd = tmpfile_fd();
            CHECK(fd >= 0 && write(fd, ct.p, ct.n) == (ssize_t)ct.n, "temp file");
            CHECK(open_input(&rep, fd, 0, &back, &back_len, &err) == DCMSEAL_E_AUTH,
                  "%s: the meta header's identity verified", name);
            free(back);
            close(fd);
            buf_free(&ct);
        }
        close(sealed);
        close(in);
        free(pt);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CASES_DIR\n", argv[0]);
        return 2;
    }
    cases = argv[1];
    signal(SIGPIPE, SIG_IGN); /* pour_end */
    if (soft_ring_init(&ring, KAT_KEK_PEM, "test", 1, DCMSEAL_OAEP_SHA256) != 0 ||
        soft_ring_init(&other_ring, NULL, "test", 1, DCMSEAL_OAEP_SHA256) != 0) {
        printf("cannot set up key rings\n");
        return 1;
    }
    /* What dcmseal writes today: format v2, with origin proofs. */
    soft_ring_set_origin(&ring, NULL);
    soft_ring_set_origin(&other_ring, NULL);
    test_round_trips();
    test_ciphertext_hides_plaintext();
    test_truncation();
    test_segment_surgery();
    test_cross_object_swaps();
    test_bit_flips();
    test_forged_slot();
    test_wrong_key();
    test_not_ours();
    test_error_state();
    test_identity();
    test_random_access();
    test_identity_cases();
    soft_ring_free(&ring);
    soft_ring_free(&other_ring);
    return check_done("test_engine");
}
