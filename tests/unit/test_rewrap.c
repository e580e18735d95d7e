/* Rotation by rewrap over host key rings: one slot changes, the payload and
 * the immutable header never do, and an interrupted slot write is harmless.
 * With origin proofs (FORMAT.md "Rewrap"): the old proof is checked before
 * anything is written, the new slot gets a proof under the target's origin
 * key, and a v1 object gets one only with DCMSEAL_REWRAP_UPGRADE, after it
 * authenticated whole. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "../../engine/internal.h"
#include "../support/check.h"
#include "../support/soft_ring.h"

static soft_ring v1, v2;

/* Seals |n| pattern bytes under |ring| into a fresh temporary file; returns
 * its fd. */
static int sealed_file_under(const soft_ring *ring, size_t n, char *path)
{
    static uint8_t pt[50000], out[60000];
    dcmseal_encryptor_t *enc = NULL;
    dcmseal_encrypt_params p = {.keyring = &ring->ring, .segment_size = 4096};
    size_t len = DCMSEAL_PREAMBLE_LEN, w = 0;
    for (size_t i = 0; i < n; i++)
        pt[i] = (uint8_t)(i * 7);
    strcpy(path, "/tmp/dcmseal-rewrap-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0 || dcmseal_encrypt_init(&enc, out, &p, NULL) != DCMSEAL_OK ||
        dcmseal_encrypt_update(enc, out + len, sizeof out - len, &w, pt, n, NULL) != DCMSEAL_OK)
        return -1;
    len += w;
    if (dcmseal_encrypt_final(enc, out + len, sizeof out - len, &w, NULL) != DCMSEAL_OK)
        return -1;
    len += w;
    dcmseal_encryptor_free(enc);
    return write(fd, out, len) == (ssize_t)len ? fd : -1;
}

static int sealed_file(size_t n, char *path)
{
    return sealed_file_under(&v1, n, path);
}

static uint8_t *slurp_fd(int fd, size_t *n)
{
    off_t end = lseek(fd, 0, SEEK_END);
    size_t len = end > 0 ? (size_t)end : 0;
    uint8_t *p = malloc(len + 1);
    *n = p != NULL && pread(fd, p, len, 0) == (ssize_t)len ? len : 0;
    return p;
}

/* Opens the object in |fd| through |ring| and compares with the pattern. */
static int opens_with(int fd, const dcmseal_keyring *ring, size_t n)
{
    dcmseal_reader_t *r = NULL;
    static uint8_t pt[50000];
    size_t got = 0;
    int ok = dcmseal_reader_open(&r, fd, ring, NULL) == DCMSEAL_OK &&
             dcmseal_reader_pread(r, pt, sizeof pt, 0, &got, NULL) == DCMSEAL_OK && got == n;
    for (size_t i = 0; ok && i < n; i++)
        ok = pt[i] == (uint8_t)(i * 7);
    dcmseal_reader_free(r);
    return ok;
}

static int slot_has_proof(const uint8_t *obj, int active)
{
    dcmseal_slot s;
    return dcmseal_slot_decode(&s, obj + DCMSEAL_HEADER_LEN + active * DCMSEAL_SLOT_LEN) == 1 &&
           s.origin_kind == DCMSEAL_SLOT_ORIGIN_HMAC;
}

/* The origin of the object in |fd| as |ring| opens it; -1 when it does not. */
static int origin_of(int fd, const dcmseal_keyring *ring)
{
    dcmseal_reader_t *r = NULL;
    int o = dcmseal_reader_open(&r, fd, ring, NULL) == DCMSEAL_OK
                ? (int)dcmseal_reader_get0_header(r)->origin
                : -1;
    dcmseal_reader_free(r);
    return o;
}

static void test_origin(void)
{
    /* Rings with origin keys, as after this change: o1 -> o2. A legacy
     * ring (no origin key) for the same name and v1 key makes v1 objects. */
    static soft_ring o1, o2, old1;
    dcmseal_rewrap_report rep;
    dcmseal_error err;
    char path[64];
    size_t len;
    CHECK(soft_ring_init(&o1, NULL, "kek", 1, DCMSEAL_OAEP_SHA256) == 0 &&
              soft_ring_init(&o2, NULL, "kek", 2, DCMSEAL_OAEP_SHA1) == 0, "rings");
    soft_ring_set_origin(&o1, NULL);
    soft_ring_set_origin(&o2, NULL);
    o2.previous = &o1;
    old1 = o1;
    old1.has_origin = 0;
    old1.ring.self = &old1;

    /* A proven object moves with its proof renewed under the target. */
    int fd = sealed_file_under(&o1, 9000, path);
    unlink(path);
    int checks = o2.checks;
    CHECK(dcmseal_rewrap_fd(&rep, fd, &o2.ring, 0, &err) == DCMSEAL_OK && rep.changed &&
              rep.origin == DCMSEAL_ORIGIN_PRESENT && !rep.upgraded,
          "rewrap of a v2 object: %s", err.message);
    CHECK(o2.checks == checks + 1, "the old proof was checked");
    uint8_t *obj = slurp_fd(fd, &len);
    CHECK(slot_has_proof(obj, 1) && obj[9] == 2, "the new slot carries a proof, still v2");
    free(obj);
    CHECK(origin_of(fd, &o2.ring) == DCMSEAL_ORIGIN_VERIFIED, "verifies under v2's origin key");
    /* With v1's origin key gone the object still verifies: it names v2. */
    o1.has_origin = 0;
    CHECK(origin_of(fd, &o2.ring) == DCMSEAL_ORIGIN_VERIFIED, "v1's origin key not needed");
    o1.has_origin = 1;
    close(fd);

    /* A changed proof: refused, nothing written. */
    fd = sealed_file_under(&o1, 100, path);
    unlink(path);
    uint8_t *before = slurp_fd(fd, &len);
    dcmseal_slot s;
    CHECK(dcmseal_slot_decode(&s, before + DCMSEAL_HEADER_LEN) == 1, "decode");
    s.proof[0] ^= 1;
    uint8_t raw[DCMSEAL_SLOT_LEN];
    dcmseal_slot_encode(raw, &s);
    CHECK(pwrite(fd, raw, sizeof raw, DCMSEAL_HEADER_LEN) == (ssize_t)sizeof raw, "tamper");
    free(before);
    before = slurp_fd(fd, &len);
    CHECK(dcmseal_rewrap_fd(&rep, fd, &o2.ring, 0, &err) == DCMSEAL_E_AUTH &&
              strstr(err.message, "not made with this archive's keys") != NULL,
          "rewrap of a bad proof: %s", err.message);
    CHECK(dcmseal_rewrap_fd(&rep, fd, &o2.ring, DCMSEAL_REWRAP_UPGRADE, &err) == DCMSEAL_E_AUTH,
          "upgrade does not launder a bad proof");
    uint8_t *after = slurp_fd(fd, &len);
    CHECK(memcmp(before, after, len) == 0, "nothing written");
    free(before);
    free(after);
    close(fd);

    /* A proven object never moves to a KEK without an origin key. */
    fd = sealed_file_under(&o1, 100, path);
    unlink(path);
    o2.has_origin = 0;
    CHECK(dcmseal_rewrap_fd(&rep, fd, &o2.ring, 0, &err) == DCMSEAL_E_KEY &&
              strstr(err.message, "key upgrade") != NULL, "target without origin: %s",
          err.message);
    o2.has_origin = 1;
    close(fd);

    /* v1 objects: moved as they are without the flag, proven with it. */
    fd = sealed_file_under(&old1, 9000, path);
    unlink(path);
    CHECK(dcmseal_rewrap_fd(&rep, fd, &o2.ring, 0, &err) == DCMSEAL_OK && rep.changed &&
              rep.origin == DCMSEAL_ORIGIN_NONE, "plain rewrap of v1: %s", err.message);
    obj = slurp_fd(fd, &len);
    CHECK(!slot_has_proof(obj, 1) && obj[9] == 1, "no proof is added without --upgrade");
    free(obj);
    CHECK(dcmseal_rewrap_fd(&rep, fd, &o2.ring, DCMSEAL_REWRAP_UPGRADE, &err) == DCMSEAL_OK &&
              rep.changed && rep.upgraded && rep.origin == DCMSEAL_ORIGIN_PRESENT &&
              rep.generation == 3 && rep.to.kek_version == 2 && !rep.in_token,
          "upgrade under the same KEK: %s", err.message);
    obj = slurp_fd(fd, &len);
    CHECK(slot_has_proof(obj, 0) && obj[9] == 1, "the v1 object now carries a proof");
    free(obj);
    CHECK(origin_of(fd, &o2.ring) == DCMSEAL_ORIGIN_VERIFIED, "and it verifies");
    CHECK(dcmseal_rewrap_fd(&rep, fd, &o2.ring, DCMSEAL_REWRAP_UPGRADE, &err) == DCMSEAL_OK &&
              !rep.changed, "upgrading again changes nothing");
    /* Once proven, stripping the proof from an upgraded v1 object gives an
     * object the name's policy can refuse. */
    close(fd);

    /* An upgrade authenticates every segment first. */
    fd = sealed_file_under(&old1, 9000, path);
    unlink(path);
    uint8_t x = 0;
    CHECK(pread(fd, &x, 1, DCMSEAL_PREAMBLE_LEN + 4096 + 16 + 7) == 1, "read");
    x ^= 4;
    CHECK(pwrite(fd, &x, 1, DCMSEAL_PREAMBLE_LEN + 4096 + 16 + 7) == 1, "damage segment 1");
    before = slurp_fd(fd, &len);
    CHECK(dcmseal_rewrap_fd(&rep, fd, &o2.ring, DCMSEAL_REWRAP_UPGRADE, &err) == DCMSEAL_E_AUTH &&
              strstr(err.message, "segment 1") != NULL, "damaged v1 upgrade: %s", err.message);
    after = slurp_fd(fd, &len);
    CHECK(memcmp(before, after, len) == 0, "a failed upgrade wrote nothing");
    free(before);
    free(after);
    /* Without the flag a damaged v1 object still moves, as before: rewrap
     * reads no payload. */
    CHECK(dcmseal_rewrap_fd(&rep, fd, &o2.ring, 0, &err) == DCMSEAL_OK && rep.changed,
          "plain rewrap reads no payload");
    close(fd);

    /* Under a name that requires origin, an unproven v1 object is refused
     * like decrypt refuses it, with or without the flag. */
    fd = sealed_file_under(&old1, 100, path);
    unlink(path);
    o1.require_origin = o2.require_origin = 1;
    CHECK(dcmseal_rewrap_fd(&rep, fd, &o2.ring, 0, &err) == DCMSEAL_E_AUTH &&
              dcmseal_rewrap_fd(&rep, fd, &o2.ring, DCMSEAL_REWRAP_UPGRADE, &err) ==
                  DCMSEAL_E_AUTH, "v1 under require-origin: %s", err.message);
    o1.require_origin = o2.require_origin = 0;
    close(fd);
    soft_ring_free(&o1);
    soft_ring_free(&o2);
}

/* ---- group commit ---------------------------------------------------------- */

#define GROUP_FILES 24

/* Whether another open of |fd|'s file can take the lock rewrap holds. */
static int unlocked(int fd)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    int again = open(proc, O_RDONLY | O_CLOEXEC);
    int ok = again >= 0 && flock(again, LOCK_EX | LOCK_NB) == 0;
    if (again >= 0)
        close(again);
    return ok;
}

/* Objects finished together share the flushes (one of the file system for
 * all their new slots, one for all the wiped old ones), and each comes out
 * moved and retired; one that has nothing pending fails alone. */
static void test_group(void)
{
    dcmseal_rewrap_report rep[GROUP_FILES + 1], *reps[GROUP_FILES + 1];
    dcmseal_error err[GROUP_FILES + 1], *errs[GROUP_FILES + 1];
    int fds[GROUP_FILES + 1];
    char path[64];
    static const uint8_t zero_slot[DCMSEAL_SLOT_LEN];
    int started = 0, wiped = 0;
    for (int i = 0; i <= GROUP_FILES; i++) {
        fds[i] = sealed_file(3000 + (size_t)i, path);
        unlink(path);
        reps[i] = &rep[i];
        errs[i] = &err[i];
        started += i == GROUP_FILES ||
                   (dcmseal_rewrap_fd_start(&rep[i], fds[i], &v2.ring, 0, &err[i]) ==
                        DCMSEAL_OK && rep[i].pending);
    }
    memset(&rep[GROUP_FILES], 0, sizeof rep[GROUP_FILES]); /* never started */
    CHECK(started == GROUP_FILES + 1, "start failed");
    CHECK(dcmseal_rewrap_finish_all(reps, fds, GROUP_FILES + 1, errs) == GROUP_FILES,
          "%d objects finished together", GROUP_FILES);
    for (int i = 0; i < GROUP_FILES; i++) {
        uint8_t pre[DCMSEAL_PREAMBLE_LEN];
        dcmseal_header_info info;
        if (err[i].status == DCMSEAL_OK && rep[i].changed && rep[i].retired && !rep[i].pending &&
            pread(fds[i], pre, sizeof pre, 0) == (ssize_t)sizeof pre &&
            dcmseal_header_inspect(&info, pre, sizeof pre, NULL) == DCMSEAL_OK &&
            info.wrap.kek_version == 2 && info.other_slot_state == 0 &&
            memcmp(pre + DCMSEAL_HEADER_LEN + (size_t)(1 - info.active_slot) * DCMSEAL_SLOT_LEN,
                   zero_slot, DCMSEAL_SLOT_LEN) == 0 &&
            opens_with(fds[i], &v2.ring, 3000 + (size_t)i) && unlocked(fds[i]))
            wiped++;
    }
    CHECK(wiped == GROUP_FILES, "%d of %d objects moved, their old slot wiped, unlocked", wiped,
          GROUP_FILES);
    CHECK(err[GROUP_FILES].status == DCMSEAL_E_USAGE && !rep[GROUP_FILES].retired,
          "an object with nothing pending fails alone: %s", err[GROUP_FILES].message);
    for (int i = 0; i <= GROUP_FILES; i++)
        close(fds[i]);
}

int main(void)
{
    if (soft_ring_init(&v1, NULL, "kek", 1, DCMSEAL_OAEP_SHA256) != 0 ||
        soft_ring_init(&v2, NULL, "kek", 2, DCMSEAL_OAEP_SHA1) != 0)
        return 1;
    v2.previous = &v1;
    char path[64];
    const size_t n = 20000;
    int fd = sealed_file(n, path);
    CHECK(fd >= 0, "sealed file");
    unlink(path);
    size_t len0, len1;
    uint8_t *before = slurp_fd(fd, &len0);

    dcmseal_rewrap_report rep;
    dcmseal_error err;
    CHECK(dcmseal_rewrap_fd(&rep, fd, &v2.ring, 0, &err) == DCMSEAL_OK, "rewrap: %s", err.message);
    CHECK(rep.changed && rep.from.kek_version == 1 && rep.to.kek_version == 2 &&
              rep.to.oaep == DCMSEAL_OAEP_SHA1 && rep.generation == 2, "report");
    uint8_t *after = slurp_fd(fd, &len1);
    const size_t slot_b = DCMSEAL_HEADER_LEN + DCMSEAL_SLOT_LEN;
    CHECK(len0 == len1 && memcmp(before, after, DCMSEAL_HEADER_LEN) == 0 &&
              memcmp(before + DCMSEAL_PREAMBLE_LEN, after + DCMSEAL_PREAMBLE_LEN,
                     len0 - DCMSEAL_PREAMBLE_LEN) == 0,
          "header or payload changed");
    CHECK(memcmp(before + slot_b, after + slot_b, DCMSEAL_SLOT_LEN) != 0, "slot B unchanged");
    CHECK(opens_with(fd, &v2.ring, n), "opens under v2");
    dcmseal_header_info info;
    CHECK(dcmseal_header_inspect(&info, after, len1, NULL) == DCMSEAL_OK &&
              info.active_slot == 1 && info.wrap.kek_version == 2 && info.other_slot_state == 0,
          "slot B active, A wiped");
    /* Rotation retires the old wrap: nothing under v1 is left in the file,
     * so that neither zeroing the new slot nor raising the old one's
     * generation opens it under v1 again. */
    static const uint8_t zero_slot[DCMSEAL_SLOT_LEN];
    CHECK(memcmp(after + DCMSEAL_HEADER_LEN, zero_slot, DCMSEAL_SLOT_LEN) == 0,
          "the old slot is not all zeros");
    CHECK(rep.retired, "the report does not say the old slot was wiped");
    free(after);
    {
        char cpath[64];
        int copy = sealed_file(n, cpath);
        unlink(cpath);
        size_t lc;
        uint8_t *all = slurp_fd(fd, &lc);
        CHECK(copy >= 0 && pwrite(copy, all, lc, 0) == (ssize_t)lc &&
                  pwrite(copy, zero_slot, sizeof zero_slot, slot_b) == (ssize_t)sizeof zero_slot,
              "a copy with the new slot zeroed");
        CHECK(!opens_with(copy, &v1.ring, n) && !opens_with(copy, &v2.ring, n),
              "with the new slot zeroed the object opens under some key");
        free(all);
        close(copy);
    }

    /* Idempotent: nothing is written when the object is already there. */
    CHECK(dcmseal_rewrap_fd(&rep, fd, &v2.ring, 0, &err) == DCMSEAL_OK && !rep.changed &&
              rep.generation == 2, "second rewrap changed something");
    after = slurp_fd(fd, &len1);
    CHECK(dcmseal_rewrap_fd(&rep, fd, &v2.ring, 0, &err) == DCMSEAL_OK, "third");
    uint8_t *again = slurp_fd(fd, &len1);
    CHECK(memcmp(after, again, len1) == 0, "idempotent rewrap wrote bytes");
    free(again);

    /* An object under the target whose other slot still holds a key (left
     * by a rewrap that stopped between its flushes, or by an older dcmseal)
     * gets that slot wiped, and nothing else written. */
    CHECK(pwrite(fd, before + DCMSEAL_HEADER_LEN, DCMSEAL_SLOT_LEN, DCMSEAL_HEADER_LEN) ==
              DCMSEAL_SLOT_LEN,
          "put the v1 slot back");
    CHECK(dcmseal_rewrap_fd(&rep, fd, &v2.ring, 0, &err) == DCMSEAL_OK && !rep.changed &&
              rep.retired && rep.generation == 2,
          "a leftover slot: changed %d retired %d: %s", rep.changed, rep.retired, err.message);
    {
        size_t ln;
        uint8_t *now = slurp_fd(fd, &ln);
        CHECK(ln == len1 && memcmp(now + DCMSEAL_HEADER_LEN, zero_slot, DCMSEAL_SLOT_LEN) == 0 &&
                  memcmp(now + slot_b, after + slot_b, ln - slot_b) == 0 &&
                  opens_with(fd, &v2.ring, n),
              "the leftover slot is not wiped, or more was written");
        free(now);
    }

    /* A torn write of the next slot (here: garbage in slot A, the inactive
     * one) leaves the object opening under the last complete slot. */
    uint8_t junk[600];
    memset(junk, 0x5c, sizeof junk);
    CHECK(pwrite(fd, junk, sizeof junk, DCMSEAL_HEADER_LEN) == (ssize_t)sizeof junk, "tear");
    CHECK(opens_with(fd, &v2.ring, n), "torn inactive slot broke the object");

    /* And back to v1: slot A is rewritten, generation 3. */
    v1.previous = &v2;
    CHECK(dcmseal_rewrap_fd(&rep, fd, &v1.ring, 0, &err) == DCMSEAL_OK && rep.changed &&
              rep.generation == 3 && rep.to.kek_version == 1, "back to v1: %s", err.message);
    CHECK(opens_with(fd, &v1.ring, n), "opens under v1 again");
    v1.previous = NULL;

    /* In two halves: _start leaves the object written and locked, so that a
     * concurrent rewrap waits until _finish has flushed it. The lock is per
     * open file, hence a second open of the same file. */
    char again_path[64];
    snprintf(again_path, sizeof again_path, "/proc/self/fd/%d", fd);
    int other = open(again_path, O_RDWR);
    CHECK(other >= 0, "second open");
    CHECK(dcmseal_rewrap_fd_start(&rep, fd, &v2.ring, 0, &err) == DCMSEAL_OK && rep.changed &&
              rep.generation == 4 && rep.to.kek_version == 2, "start: %s", err.message);
    CHECK(rep.pending && !rep.retired, "start left nothing to finish");
    CHECK(flock(other, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK,
          "start released the lock before the flush");
    CHECK(opens_with(fd, &v2.ring, n), "the new slot is written before the flush");
    /* Until the new slot is flushed the old one stays: a crash here leaves
     * an object that opens under one or the other. */
    {
        uint8_t old[DCMSEAL_SLOT_LEN];
        dcmseal_slot os;
        CHECK(pread(fd, old, sizeof old, DCMSEAL_HEADER_LEN) == (ssize_t)sizeof old &&
                  dcmseal_slot_decode(&os, old) == 1 && os.meta.kek_version == 1,
              "the old slot went before the flush");
    }
    CHECK(dcmseal_rewrap_fd_finish(&rep, fd, &err) == DCMSEAL_OK && rep.retired, "finish: %s",
          err.message);
    CHECK(flock(other, LOCK_EX | LOCK_NB) == 0, "finish kept the lock");
    flock(other, LOCK_UN);
    {
        uint8_t old[DCMSEAL_SLOT_LEN];
        CHECK(pread(fd, old, sizeof old, DCMSEAL_HEADER_LEN) == (ssize_t)sizeof old &&
                  memcmp(old, zero_slot, sizeof old) == 0,
              "finish did not wipe the old slot");
    }
    /* Nothing to move: no lock is kept, and there is nothing to finish. */
    CHECK(dcmseal_rewrap_fd_start(&rep, fd, &v2.ring, 0, &err) == DCMSEAL_OK && !rep.changed &&
              !rep.pending,
          "start of an object already there");
    CHECK(flock(other, LOCK_EX | LOCK_NB) == 0, "an unchanged object stayed locked");
    flock(other, LOCK_UN);
    CHECK(dcmseal_rewrap_fd_finish(&rep, fd, &err) == DCMSEAL_E_USAGE,
          "finish without a change");
    close(other);

    /* Not ours, and tampered wrapped keys, are refused without writing. */
    uint8_t zero[DCMSEAL_PREAMBLE_LEN] = {0};
    char p2[64];
    int fd2 = sealed_file(10, p2);
    unlink(p2);
    CHECK(pwrite(fd2, zero, 8, 0) == 8, "spoil magic");
    CHECK(dcmseal_rewrap_fd(&rep, fd2, &v2.ring, 0, &err) == DCMSEAL_E_FORMAT, "bad magic");
    close(fd2);
    fd2 = sealed_file(10, p2);
    unlink(p2);
    size_t l2;
    uint8_t *orig = slurp_fd(fd2, &l2);
    dcmseal_slot s;
    CHECK(dcmseal_slot_decode(&s, orig + DCMSEAL_HEADER_LEN) == 1, "decode");
    s.wrapped[3] ^= 1;
    uint8_t raw[DCMSEAL_SLOT_LEN];
    dcmseal_slot_encode(raw, &s);
    CHECK(pwrite(fd2, raw, sizeof raw, DCMSEAL_HEADER_LEN) == (ssize_t)sizeof raw, "forge");
    CHECK(dcmseal_rewrap_fd(&rep, fd2, &v2.ring, 0, &err) == DCMSEAL_E_AUTH, "forged slot");
    uint8_t *now = slurp_fd(fd2, &l2);
    CHECK(memcmp(now + DCMSEAL_HEADER_LEN + DCMSEAL_SLOT_LEN,
                 orig + DCMSEAL_HEADER_LEN + DCMSEAL_SLOT_LEN, DCMSEAL_SLOT_LEN) == 0,
          "a failed rewrap wrote a slot");
    free(orig);
    free(now);
    close(fd2);

    free(before);
    free(after);
    close(fd);
    v2.previous = &v1;
    test_group();
    soft_ring_free(&v1);
    soft_ring_free(&v2);
    test_origin();
    return check_done("test_rewrap");
}
