/* Rotation by rewrap: one key slot is rewritten, never the payload, and once
 * it is durable the old slot is wiped, so that the old KEK no longer opens
 * the object (FORMAT.md "Key slots"). Finishing many objects at once
 * shares the flushes (group commit). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "group.h"
#include "internal.h"

static int same_kek(const dcmseal_wrap_meta *a, const dcmseal_wrap_meta *b)
{
    return a->kek_version == b->kek_version && strcmp(a->kek_name, b->kek_name) == 0 &&
           memcmp(a->kek_fingerprint, b->kek_fingerprint, sizeof a->kek_fingerprint) == 0;
}

static off_t slot_offset(int slot)
{
    return DCMSEAL_HEADER_LEN + (off_t)slot * DCMSEAL_SLOT_LEN;
}

/* The host path, for rings that cannot rewrap themselves. */
static dcmseal_status host_rewrap(const dcmseal_keyring *ring, dcmseal_slot *to,
                                  const dcmseal_slot *from, dcmseal_error *err)
{
    uint8_t *dek = OPENSSL_secure_malloc(DCMSEAL_DEK_LEN);
    dcmseal_status st = dek != NULL ? DCMSEAL_OK
                                    : dcmseal_fail(err, DCMSEAL_E_INTERNAL, "out of secure memory");
    if (st == DCMSEAL_OK)
        st = ring->unwrap(ring->self, dek, &from->meta, from->wrapped, from->wrapped_len, err);
    if (st == DCMSEAL_OK)
        st = ring->wrap(ring->self, &to->meta, to->wrapped, sizeof to->wrapped,
                        &to->wrapped_len, dek, err);
    OPENSSL_secure_clear_free(dek, DCMSEAL_DEK_LEN);
    return st;
}

dcmseal_status dcmseal_rewrap_fd_start(dcmseal_rewrap_report *rep, int fd,
                                       const dcmseal_keyring *ring, unsigned flags,
                                       dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    uint8_t pre[DCMSEAL_PREAMBLE_LEN], raw[DCMSEAL_SLOT_LEN];
    dcmseal_header h;
    dcmseal_header_info info;
    dcmseal_slot from, to;
    dcmseal_wrap_meta target;
    dcmseal_origin have = DCMSEAL_ORIGIN_NONE;
    dcmseal_origin_policy pol;
    int locked = 0;
    ssize_t n;
    struct stat sb;
    uint64_t plain;
    memset(&to, 0, sizeof to);

    DCMSEAL_ENSURE(rep != NULL && ring != NULL && ring->current != NULL, err,
                   DCMSEAL_E_USAGE, "rewrap: missing argument");
    memset(rep, 0, sizeof *rep);
    DCMSEAL_GUARD(ring->current(ring->self, &target, err));
    /* Whoever holds the lock may be moving the same slot: wait, then read. */
    while (flock(fd, LOCK_EX) != 0)
        DCMSEAL_ENSURE(errno == EINTR, err, DCMSEAL_E_IO, "lock failed: %s", strerror(errno));
    locked = 1;
    do
        n = pread(fd, pre, sizeof pre, 0);
    while (n < 0 && errno == EINTR);
    DCMSEAL_ENSURE(n >= 0, err, DCMSEAL_E_IO, "read failed: %s", strerror(errno));
    DCMSEAL_GUARD(dcmseal_preamble_decode(&h, &from, &info, pre, (size_t)n, err));
    /* Refuse what inspect and decrypt refuse by size alone (no payload, a
     * last segment shorter than its tag): rewrap reads no further. */
    DCMSEAL_ENSURE(fstat(fd, &sb) == 0, err, DCMSEAL_E_IO, "stat failed: %s", strerror(errno));
    DCMSEAL_GUARD(dcmseal_object_plaintext_size(&plain, &info, (uint64_t)sb.st_size, err));
    rep->from = rep->to = from.meta;
    rep->generation = from.generation;
    rep->origin = info.origin;
    rep->format_version = info.version;
    /* Nothing gets a proof that did not earn one: the proof there is
     * checked (or its absence allowed, as decrypt would) before anything. */
    DCMSEAL_GUARD(dcmseal_origin_check(&have, pre, &h, &from,
                                       pre + DCMSEAL_HEADER_LEN +
                                           info.active_slot * DCMSEAL_SLOT_LEN,
                                       ring, err));
    const int upgrade = have == DCMSEAL_ORIGIN_NONE && (flags & DCMSEAL_REWRAP_UPGRADE);
    const int prove = have == DCMSEAL_ORIGIN_VERIFIED || upgrade;
    const int same = same_kek(&from.meta, &target);
    if (same && !upgrade) {
        /* Moved already; a key left in the other slot (a rewrap stopped
         * before its wipe, an older dcmseal, a torn write) is retired.
         * Its new slot may not be durable yet: _finish flushes first. */
        if (info.other_slot_state != 0) {
            rep->pending = 1;
            locked = 0;
        }
        goto out;
    }
    /* The new slot needs a higher generation; a wrapped-around 0 would be a
     * damaged slot, and the object would silently stay where it is. */
    DCMSEAL_ENSURE(from.generation < UINT64_MAX, err, DCMSEAL_E_FORMAT,
                   "key slot generation %llu cannot be raised",
                   (unsigned long long)from.generation);
    /* A proof is never dropped: a v2 object would no longer open. */
    if (prove) {
        DCMSEAL_GUARD(dcmseal_origin_policy_of(&pol, ring, &target, err));
        DCMSEAL_ENSURE(pol.has_key, err, DCMSEAL_E_KEY,
                       "key '%s' v%u has no origin key, so objects with origin proofs cannot "
                       "move to it: run `dcmseal key upgrade %s`",
                       target.kek_name, target.kek_version, target.kek_name);
    }
    /* A v1 object is only as good as its authentication: every segment and
     * the DICOM identity, read under the lock from the preamble read above. */
    if (upgrade)
        DCMSEAL_GUARD(dcmseal_authenticate_fd(fd, pre, ring, err));

    if (same) {
        to.meta = from.meta;
        memcpy(to.wrapped, from.wrapped, from.wrapped_len);
        to.wrapped_len = from.wrapped_len;
    } else if (ring->rewrap != NULL) {
        DCMSEAL_GUARD(ring->rewrap(ring->self, &to.meta, to.wrapped, sizeof to.wrapped,
                                   &to.wrapped_len, &rep->in_token, &from.meta, from.wrapped,
                                   from.wrapped_len, err));
    } else {
        DCMSEAL_GUARD(host_rewrap(ring, &to, &from, err));
    }
    /* Authentication unwrapped the DEK on the host. */
    if (upgrade)
        rep->in_token = 0;
    /* The active slot has the highest intact generation, so this wins. */
    to.generation = from.generation + 1;
    if (prove)
        DCMSEAL_GUARD(dcmseal_origin_prove(&to, raw, pre, ring, err));
    else
        dcmseal_slot_encode(raw, &to);
    do
        n = pwrite(fd, raw, sizeof raw, slot_offset(1 - info.active_slot));
    while (n < 0 && errno == EINTR);
    DCMSEAL_ENSURE(n == (ssize_t)sizeof raw, err, DCMSEAL_E_IO, "write failed: %s",
                   n < 0 ? strerror(errno) : "short write");
    /* Written, not yet durable: the lock stays until _finish has flushed
     * and wiped, so that a concurrent rewrap never sees a slot a crash
     * could undo. */
    rep->changed = 1;
    rep->pending = 1;
    rep->to = to.meta;
    rep->generation = to.generation;
    rep->origin = prove ? DCMSEAL_ORIGIN_PRESENT : DCMSEAL_ORIGIN_NONE;
    rep->upgraded = upgrade;
    locked = 0;
out:
    if (locked)
        flock(fd, LOCK_UN);
    OPENSSL_cleanse(&from, sizeof from);
    OPENSSL_cleanse(&to, sizeof to);
    return st;
}

/* ---- finishing: flush, wipe the old slot, flush ---------------------------- */

/* Overwrites the slot that is not active with zeros (an empty slot). Read
 * again rather than remembered: the same works for an object _start moved
 * and for one it found moved with a leftover. */
static dcmseal_status wipe_other(int fd, dcmseal_error *err)
{
    static const uint8_t zeros[DCMSEAL_SLOT_LEN];
    uint8_t pre[DCMSEAL_PREAMBLE_LEN];
    dcmseal_header h;
    dcmseal_slot active;
    dcmseal_header_info info;
    dcmseal_status st;
    ssize_t n;
    do
        n = pread(fd, pre, sizeof pre, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return dcmseal_fail(err, DCMSEAL_E_IO, "read failed: %s", strerror(errno));
    st = dcmseal_preamble_decode(&h, &active, &info, pre, (size_t)n, err);
    OPENSSL_cleanse(&active, sizeof active);
    if (st != DCMSEAL_OK)
        return st;
    do
        n = pwrite(fd, zeros, sizeof zeros, slot_offset(1 - info.active_slot));
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof zeros)
        return dcmseal_fail(err, DCMSEAL_E_IO, "wiping the old key slot failed: %s",
                            n < 0 ? strerror(errno) : "short write");
    return DCMSEAL_OK;
}

static dcmseal_status flush_fd(int fd, dcmseal_error *err)
{
    if (fdatasync(fd) != 0)
        return dcmseal_fail(err, DCMSEAL_E_IO, "fsync failed: %s", strerror(errno));
    return DCMSEAL_OK;
}

dcmseal_status dcmseal_rewrap_fd_finish(dcmseal_rewrap_report *rep, int fd, dcmseal_error *err)
{
    dcmseal_status st;
    if (rep == NULL || !rep->pending) /* then _start holds no lock */
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "rewrap: nothing to finish");
    /* The old slot goes only once the new one is durable; the object counts
     * as moved only once the wipe is durable too. */
    if ((st = flush_fd(fd, err)) == DCMSEAL_OK && (st = wipe_other(fd, err)) == DCMSEAL_OK &&
        (st = flush_fd(fd, err)) == DCMSEAL_OK)
        rep->retired = 1;
    rep->pending = 0;
    flock(fd, LOCK_UN);
    return st;
}

dcmseal_status dcmseal_rewrap_fd(dcmseal_rewrap_report *rep, int fd,
                                 const dcmseal_keyring *ring, unsigned flags, dcmseal_error *err)
{
    dcmseal_status st = dcmseal_rewrap_fd_start(rep, fd, ring, flags, err);
    if (st == DCMSEAL_OK && rep->pending && (st = dcmseal_rewrap_fd_finish(rep, fd, err)) !=
                                                 DCMSEAL_OK)
        rep->changed = 0;
    return st;
}

/* ---- group commit (group.c) ------------------------------------------------ */

#define REPORT(m) ((dcmseal_rewrap_report *)(m)->item)

size_t dcmseal_rewrap_finish_all(dcmseal_rewrap_report *const *reps, const int *fds, size_t n,
                                 dcmseal_error *const *errs)
{
    commit_member *list = n > 0 ? OPENSSL_zalloc(n * sizeof *list) : NULL, *m;
    size_t done = 0;
    for (size_t i = 0; i < n; i++) {
        dcmseal_error_clear(errs[i]);
        if (reps[i] == NULL || !reps[i]->pending) /* then _start holds no lock */
            dcmseal_fail(errs[i], DCMSEAL_E_USAGE, "rewrap: nothing to finish");
        else if (list == NULL) /* out of memory: each alone, as safely */
            done += dcmseal_rewrap_fd_finish(reps[i], fds[i], errs[i]) == DCMSEAL_OK;
        else
            list[i] = (commit_member){.item = reps[i], .fd = fds[i], .err = errs[i]};
    }
    if (list == NULL)
        return done;
    for (size_t i = 0; i < n; i++) {
        list[i].st = errs[i]->status;
        list[i].next = i + 1 < n ? &list[i + 1] : NULL;
    }
    /* What dcmseal_rewrap_fd_finish does, each step for all at once. */
    commit_flush(list, 1);
    for (m = list; m != NULL; m = m->next)
        if (m->st == DCMSEAL_OK)
            m->st = wipe_other(m->fd, m->err);
    commit_flush(list, 1);
    for (m = list; m != NULL; m = m->next) {
        if (m->item == NULL)
            continue; /* nothing was pending */
        REPORT(m)->retired = m->st == DCMSEAL_OK;
        REPORT(m)->pending = 0;
        flock(m->fd, LOCK_UN);
        done += m->st == DCMSEAL_OK;
    }
    OPENSSL_free(list);
    return done;
}
