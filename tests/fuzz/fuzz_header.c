/* libFuzzer target: the preamble parser (dcmseal_header_inspect and the
 * dcmseal_preamble_decode the decryptor, reader and rewrap use), the slot
 * codec (origin proof fields included), the size arithmetic of
 * dcmseal_plaintext_size and dcmseal_object_plaintext_size, and the parser of
 * a metadata block's plain text (format v2).
 *
 * Input: a flags byte, an 8-byte big-endian object size, then the preamble.
 * With flags bit 0 the slot checksums are recomputed before parsing, so that
 * the fuzzer reaches the field checks behind the SHA-256 it cannot forge.
 * With flags bit 1 the bytes after the size are also parsed as the plain
 * text of a metadata block (which a reader sees only once it authenticated,
 * but parses all the same).
 *
 * Checked: every accepted preamble has its fields in the ranges FORMAT.md
 * allows and re-encodes to exactly the bytes it came from (nothing is
 * accepted that a writer would not write); refusals are bad data with a
 * message; dcmseal_plaintext_size agrees with the size a writer produces;
 * an accepted metadata block re-encodes to its bytes and holds a path that
 * stays below any directory it is joined to. */
#include <string.h>

#include <openssl/sha.h>

#include "../../engine/internal.h"
#include "fuzz.h"

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* The encrypted size of |plain| bytes in segments of |seg|, as a writer
 * makes it; 0 when it does not fit in 64 bits. */
static uint64_t sealed_size(uint64_t plain, uint32_t seg)
{
    uint64_t nseg = plain == 0 ? 1 : plain / seg + (plain % seg != 0), size;
    if (__builtin_mul_overflow(nseg, (uint64_t)DCMSEAL_TAG_LEN, &size) ||
        __builtin_add_overflow(size, plain, &size) ||
        __builtin_add_overflow(size, (uint64_t)DCMSEAL_PREAMBLE_LEN, &size))
        return 0;
    return size;
}

static void check_slot(const uint8_t *raw)
{
    dcmseal_slot s;
    uint8_t again[DCMSEAL_SLOT_LEN];
    const int state = dcmseal_slot_decode(&s, raw);
    FUZZ_CHECK(state >= -1 && state <= 1);
    if (state != 1)
        return;
    const size_t name_len = strlen(s.meta.kek_name);
    FUZZ_CHECK(name_len >= 1 && name_len <= DCMSEAL_KEK_NAME_MAX);
    FUZZ_CHECK(s.wrapped_len >= 1 && s.wrapped_len <= DCMSEAL_WRAPPED_MAX);
    FUZZ_CHECK(s.meta.oaep == DCMSEAL_OAEP_SHA1 || s.meta.oaep == DCMSEAL_OAEP_SHA256);
    FUZZ_CHECK(s.generation >= 1 && s.meta.kek_version >= 1);
    FUZZ_CHECK(s.origin_kind == DCMSEAL_SLOT_ORIGIN_NONE ||
               s.origin_kind == DCMSEAL_SLOT_ORIGIN_HMAC);
    dcmseal_slot_encode(again, &s);
    FUZZ_CHECK(memcmp(again, raw, sizeof again) == 0);
}

static void check_preamble(const uint8_t *buf, size_t len)
{
    dcmseal_header_info info, info2;
    dcmseal_header h;
    dcmseal_slot slot;
    dcmseal_error err;
    uint8_t again[DCMSEAL_HEADER_LEN];
    memset(&err, 0, sizeof err);
    dcmseal_status st = dcmseal_header_inspect(&info, buf, len, &err);
    if (st != DCMSEAL_OK) {
        FUZZ_CHECK(st == DCMSEAL_E_FORMAT || st == DCMSEAL_E_AUTH);
        FUZZ_CHECK(err.status == st && err.message[0] != '\0');
        FUZZ_CHECK(memchr(err.message, 0, sizeof err.message) != NULL);
        return;
    }
    FUZZ_CHECK(len >= DCMSEAL_PREAMBLE_LEN);
    FUZZ_CHECK(info.version == DCMSEAL_FORMAT_V1 || info.version == DCMSEAL_FORMAT_V2);
    FUZZ_CHECK(info.origin == DCMSEAL_ORIGIN_NONE || info.origin == DCMSEAL_ORIGIN_PRESENT);
    FUZZ_CHECK(info.has_meta == (info.meta_len != 0));
    FUZZ_CHECK(info.version == DCMSEAL_FORMAT_V2 || !info.has_meta);
    FUZZ_CHECK(!info.has_meta || (info.meta_len <= DCMSEAL_META_MAX &&
                                  (info.meta_len - DCMSEAL_TAG_LEN) % DCMSEAL_META_BLOCK == 0));
    FUZZ_CHECK(info.segment_size >= DCMSEAL_SEGMENT_MIN &&
               info.segment_size <= DCMSEAL_SEGMENT_MAX);
    FUZZ_CHECK(info.active_slot == 0 || info.active_slot == 1);
    FUZZ_CHECK(info.other_slot_state >= -1 && info.other_slot_state <= 1);
    FUZZ_CHECK(info.generation >= 1 && info.wrap.kek_version >= 1);
    FUZZ_CHECK(info.wrapped_len >= 1 && info.wrapped_len <= DCMSEAL_WRAPPED_MAX);
    FUZZ_CHECK(memchr(info.wrap.kek_name, 0, sizeof info.wrap.kek_name) != NULL);

    FUZZ_CHECK(dcmseal_preamble_decode(&h, &slot, &info2, buf, len, NULL) == DCMSEAL_OK);
    FUZZ_CHECK(memcmp(&info, &info2, sizeof info) == 0);
    FUZZ_CHECK(slot.generation == info.generation && slot.wrapped_len == info.wrapped_len);
    dcmseal_header_encode(again, &h);
    FUZZ_CHECK(memcmp(again, buf, sizeof again) == 0);
    /* The slot picked is intact, and no intact slot has a higher generation. */
    const uint8_t *raw = buf + DCMSEAL_HEADER_LEN;
    dcmseal_slot other;
    if (dcmseal_slot_decode(&other, raw + (1 - info.active_slot) * DCMSEAL_SLOT_LEN) == 1)
        FUZZ_CHECK(other.generation <= info.generation);
}

static void check_meta(const uint8_t *buf, size_t len)
{
    dcmseal_meta m;
    uint8_t again[DCMSEAL_META_PLAIN_MAX];
    if (!dcmseal_meta_decode(&m, buf, len))
        return;
    FUZZ_CHECK(dcmseal_meta_path_ok(m.path));
    FUZZ_CHECK(m.path[0] != '/' && strstr(m.path, "//") == NULL);
    FUZZ_CHECK(strcmp(m.path, "..") != 0 && strncmp(m.path, "../", 3) != 0 &&
               strstr(m.path, "/../") == NULL);
    FUZZ_CHECK(m.mode <= 0777 && m.mtime_nsec < 1000000000u);
    FUZZ_CHECK(dcmseal_meta_encode(again, &m) == len && memcmp(again, buf, len) == 0);
    FUZZ_CHECK(dcmseal_meta_len(&m) == len + DCMSEAL_TAG_LEN);
}

static void check_sizes(uint64_t object_size, uint32_t seg)
{
    uint64_t plain = UINT64_MAX;
    dcmseal_status st = dcmseal_plaintext_size(&plain, object_size, seg, NULL);
    if (st == DCMSEAL_OK) {
        FUZZ_CHECK(seg > 0);
        FUZZ_CHECK(sealed_size(plain, seg) == object_size);
    } else {
        FUZZ_CHECK(st == DCMSEAL_E_FORMAT);
    }
    /* And the other way round: what a writer makes is accepted. */
    if (seg > 0) {
        const uint64_t p = object_size >> 6; /* keeps the sealed size in range */
        const uint64_t s = sealed_size(p, seg);
        FUZZ_CHECK(s != 0);
        FUZZ_CHECK(dcmseal_plaintext_size(&plain, s, seg, NULL) == DCMSEAL_OK && plain == p);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 9)
        return 0;
    const unsigned flags = data[0];
    const uint64_t object_size = get_be(data + 1, 8);
    data += 9;
    size -= 9;
    /* A copy of exactly the input's size, so that reads past it show. */
    uint8_t *buf = calloc(size > 0 ? size : 1, 1);
    FUZZ_CHECK(buf != NULL);
    if (size > 0)
        memcpy(buf, data, size);
    for (size_t i = 0; i < 2; i++) {
        uint8_t *slot = buf + DCMSEAL_HEADER_LEN + i * DCMSEAL_SLOT_LEN;
        if (size < DCMSEAL_HEADER_LEN + (i + 1) * DCMSEAL_SLOT_LEN)
            break;
        if (flags & 1)
            SHA256(slot, DCMSEAL_SLOT_LEN - SHA256_DIGEST_LENGTH,
                   slot + DCMSEAL_SLOT_LEN - SHA256_DIGEST_LENGTH);
        check_slot(slot);
    }
    check_preamble(buf, size);
    if (flags & 2)
        check_meta(buf, size);
    check_sizes(object_size, size >= 20 ? (uint32_t)get_be(buf + 16, 4) : DCMSEAL_SEGMENT_MIN);
    free(buf);
    return 0;
}
