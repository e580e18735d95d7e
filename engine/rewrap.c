/* Rotation by rewrap: one key slot is rewritten, never the payload
 * (FORMAT.md "Key slots"). */
#include <errno.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "internal.h"

static int same_kek(const dcmseal_wrap_meta *a, const dcmseal_wrap_meta *b)
{
    return a->kek_version == b->kek_version && strcmp(a->kek_name, b->kek_name) == 0 &&
           memcmp(a->kek_fingerprint, b->kek_fingerprint, sizeof a->kek_fingerprint) == 0;
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
                                       const dcmseal_keyring *ring, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    uint8_t pre[DCMSEAL_PREAMBLE_LEN], raw[DCMSEAL_SLOT_LEN];
    dcmseal_header h;
    dcmseal_header_info info;
    dcmseal_slot from, to;
    dcmseal_wrap_meta target;
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
    DCMSEAL_GUARD(dcmseal_plaintext_size(&plain, (uint64_t)sb.st_size, h.segment_size, err));
    rep->from = rep->to = from.meta;
    rep->generation = from.generation;
    if (same_kek(&from.meta, &target))
        goto out;
    /* The new slot needs a higher generation; a wrapped-around 0 would be a
     * damaged slot, and the object would silently stay where it is. */
    DCMSEAL_ENSURE(from.generation < UINT64_MAX, err, DCMSEAL_E_FORMAT,
                   "key slot generation %llu cannot be raised",
                   (unsigned long long)from.generation);

    if (ring->rewrap != NULL)
        DCMSEAL_GUARD(ring->rewrap(ring->self, &to.meta, to.wrapped, sizeof to.wrapped,
                                   &to.wrapped_len, &rep->in_token, &from.meta, from.wrapped,
                                   from.wrapped_len, err));
    else
        DCMSEAL_GUARD(host_rewrap(ring, &to, &from, err));
    /* The active slot has the highest intact generation, so this wins. */
    to.generation = from.generation + 1;
    dcmseal_slot_encode(raw, &to);
    const off_t off = DCMSEAL_HEADER_LEN + (off_t)(1 - info.active_slot) * DCMSEAL_SLOT_LEN;
    do
        n = pwrite(fd, raw, sizeof raw, off);
    while (n < 0 && errno == EINTR);
    DCMSEAL_ENSURE(n == (ssize_t)sizeof raw, err, DCMSEAL_E_IO, "write failed: %s",
                   n < 0 ? strerror(errno) : "short write");
    /* Written, not yet durable: the lock stays until _finish has flushed,
     * so that a concurrent rewrap never sees a slot a crash could undo. */
    rep->changed = 1;
    rep->to = to.meta;
    rep->generation = to.generation;
    locked = 0;
out:
    if (locked)
        flock(fd, LOCK_UN);
    OPENSSL_cleanse(&from, sizeof from);
    return st;
}

dcmseal_status dcmseal_rewrap_fd_finish(const dcmseal_rewrap_report *rep, int fd,
                                        dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    if (rep == NULL || !rep->changed) /* then _start holds no lock */
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "rewrap: nothing to finish");
    /* Only once this returns is the object considered moved. */
    if (fdatasync(fd) != 0)
        st = dcmseal_fail(err, DCMSEAL_E_IO, "fsync failed: %s", strerror(errno));
    flock(fd, LOCK_UN);
    return st;
}

dcmseal_status dcmseal_rewrap_fd(dcmseal_rewrap_report *rep, int fd,
                                 const dcmseal_keyring *ring, dcmseal_error *err)
{
    dcmseal_status st = dcmseal_rewrap_fd_start(rep, fd, ring, err);
    if (st == DCMSEAL_OK && rep->changed && (st = dcmseal_rewrap_fd_finish(rep, fd, err)) !=
                                                 DCMSEAL_OK)
        rep->changed = 0;
    return st;
}
