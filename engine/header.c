/* Byte layout of the immutable header and the key slots (docs/FORMAT.md). */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "internal.h"

static const uint8_t MAGIC[8] = {0x89, 'D', 'C', 'M', 'S', 'E', 'A', 'L'};
static const uint8_t SLOT_MAGIC[4] = {'S', 'L', 'O', 'T'};

enum {
    SLOT_OFF_GEN = 8,
    SLOT_OFF_VERSION = 16,
    SLOT_OFF_OAEP = 20,
    SLOT_OFF_NAME_LEN = 21,
    SLOT_OFF_WRAPPED_LEN = 22,
    SLOT_OFF_NAME = 24,
    SLOT_OFF_FPR = SLOT_OFF_NAME + DCMSEAL_KEK_NAME_MAX,
    SLOT_OFF_WRAPPED = SLOT_OFF_FPR + DCMSEAL_KEK_FINGERPRINT_LEN,
    SLOT_OFF_ORIGIN = SLOT_OFF_WRAPPED + DCMSEAL_WRAPPED_MAX, /* 632, reserved in v1 */
    SLOT_OFF_PROOF = SLOT_OFF_ORIGIN + 4,
    SLOT_OFF_PAD = SLOT_OFF_PROOF + DCMSEAL_PROOF_LEN,
    SLOT_OFF_SUM = DCMSEAL_SLOT_LEN - SHA256_DIGEST_LENGTH,
};

_Static_assert(SLOT_OFF_VERSION == DCMSEAL_SLOT_PROVED_OFF &&
                   SLOT_OFF_ORIGIN == DCMSEAL_SLOT_PROVED_END,
               "a proof covers the slot's fields from the KEK version to the wrapped key");

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) << 32 | get32(p + 4); }

static int all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

void dcmseal_header_encode(uint8_t out[DCMSEAL_HEADER_LEN], const dcmseal_header *h)
{
    memset(out, 0, DCMSEAL_HEADER_LEN);
    memcpy(out, MAGIC, sizeof MAGIC);
    put16(out + 8, h->version);
    put16(out + 10, DCMSEAL_HEADER_LEN);
    put32(out + 12, h->flags);
    put32(out + 16, h->segment_size);
    put32(out + 20, h->meta_len);
    memcpy(out + 24, h->salt, DCMSEAL_SALT_LEN);
    memcpy(out + 56, h->identity_tag, DCMSEAL_IDTAG_LEN);
    memcpy(out + 88, h->commitment, DCMSEAL_COMMIT_LEN);
}

dcmseal_status dcmseal_header_decode(dcmseal_header *h,
                                     const uint8_t in[DCMSEAL_HEADER_LEN],
                                     dcmseal_error *err)
{
    if (memcmp(in, MAGIC, sizeof MAGIC) != 0)
        return dcmseal_fail(err, DCMSEAL_E_FORMAT, "not a dcmseal object (bad magic)");
    h->version = get16(in + 8);
    if (h->version != DCMSEAL_FORMAT_V1 && h->version != DCMSEAL_FORMAT_V2)
        return dcmseal_fail(err, DCMSEAL_E_FORMAT,
                            "unsupported format version %u (this build reads 1 and 2)",
                            h->version);
    if (get16(in + 10) != DCMSEAL_HEADER_LEN)
        return dcmseal_fail(err, DCMSEAL_E_FORMAT, "bad header length %u", get16(in + 10));
    h->flags = get32(in + 12);
    const uint32_t known = h->version == DCMSEAL_FORMAT_V1
                               ? DCMSEAL_HEADER_FLAG_DICOM
                               : DCMSEAL_HEADER_FLAG_DICOM | DCMSEAL_HEADER_FLAG_META;
    if ((h->flags & ~known) != 0)
        return dcmseal_fail(err, DCMSEAL_E_FORMAT, "unknown header flags 0x%08x", h->flags);
    h->segment_size = get32(in + 16);
    if (h->segment_size < DCMSEAL_SEGMENT_MIN || h->segment_size > DCMSEAL_SEGMENT_MAX)
        return dcmseal_fail(err, DCMSEAL_E_FORMAT, "segment size %u out of range",
                            h->segment_size);
    /* v1: reserved. v2: the metadata block's length, which the flag
     * announces: one whole number of 256-byte blocks and the tag. */
    h->meta_len = get32(in + 20);
    if ((h->flags & DCMSEAL_HEADER_FLAG_META) != 0
            ? h->meta_len < DCMSEAL_TAG_LEN + DCMSEAL_META_BLOCK ||
                  h->meta_len > DCMSEAL_META_MAX ||
                  (h->meta_len - DCMSEAL_TAG_LEN) % DCMSEAL_META_BLOCK != 0
            : h->meta_len != 0)
        return dcmseal_fail(err, DCMSEAL_E_FORMAT, "bad metadata block length %u",
                            h->meta_len);
    if (!all_zero(in + 120, 8))
        return dcmseal_fail(err, DCMSEAL_E_FORMAT, "reserved header bytes are not zero");
    memcpy(h->salt, in + 24, DCMSEAL_SALT_LEN);
    memcpy(h->identity_tag, in + 56, DCMSEAL_IDTAG_LEN);
    memcpy(h->commitment, in + 88, DCMSEAL_COMMIT_LEN);
    return DCMSEAL_OK;
}

void dcmseal_slot_encode(uint8_t out[DCMSEAL_SLOT_LEN], const dcmseal_slot *s)
{
    size_t name_len = strnlen(s->meta.kek_name, DCMSEAL_KEK_NAME_MAX);
    memset(out, 0, DCMSEAL_SLOT_LEN);
    memcpy(out, SLOT_MAGIC, sizeof SLOT_MAGIC);
    put64(out + SLOT_OFF_GEN, s->generation);
    put32(out + SLOT_OFF_VERSION, s->meta.kek_version);
    out[SLOT_OFF_OAEP] = (uint8_t)s->meta.oaep;
    out[SLOT_OFF_NAME_LEN] = (uint8_t)name_len;
    put16(out + SLOT_OFF_WRAPPED_LEN, (uint16_t)s->wrapped_len);
    memcpy(out + SLOT_OFF_NAME, s->meta.kek_name, name_len);
    memcpy(out + SLOT_OFF_FPR, s->meta.kek_fingerprint, DCMSEAL_KEK_FINGERPRINT_LEN);
    memcpy(out + SLOT_OFF_WRAPPED, s->wrapped, s->wrapped_len);
    out[SLOT_OFF_ORIGIN] = s->origin_kind;
    if (s->origin_kind != 0)
        memcpy(out + SLOT_OFF_PROOF, s->proof, DCMSEAL_PROOF_LEN);
    SHA256(out, SLOT_OFF_SUM, out + SLOT_OFF_SUM);
}

int dcmseal_slot_decode(dcmseal_slot *s, const uint8_t in[DCMSEAL_SLOT_LEN])
{
    uint8_t sum[SHA256_DIGEST_LENGTH];
    if (all_zero(in, DCMSEAL_SLOT_LEN))
        return 0;
    /* The checksum guards against torn writes, not attackers: a forged slot
     * still has to unwrap to a DEK that matches the header's commitment. */
    SHA256(in, SLOT_OFF_SUM, sum);
    if (CRYPTO_memcmp(sum, in + SLOT_OFF_SUM, sizeof sum) != 0 ||
        memcmp(in, SLOT_MAGIC, sizeof SLOT_MAGIC) != 0 || !all_zero(in + 4, 4) ||
        !all_zero(in + SLOT_OFF_PAD, SLOT_OFF_SUM - SLOT_OFF_PAD))
        return -1;
    /* A slot either carries an HMAC-SHA256 origin proof or is zero where
     * one would be (FORMAT.md "Key slots"). */
    const uint8_t kind = in[SLOT_OFF_ORIGIN];
    if (!all_zero(in + SLOT_OFF_ORIGIN + 1, 3) ||
        (kind == DCMSEAL_SLOT_ORIGIN_NONE ? !all_zero(in + SLOT_OFF_PROOF, DCMSEAL_PROOF_LEN)
                                          : kind != DCMSEAL_SLOT_ORIGIN_HMAC))
        return -1;
    memset(s, 0, sizeof *s);
    s->generation = get64(in + SLOT_OFF_GEN);
    s->meta.kek_version = get32(in + SLOT_OFF_VERSION);
    s->meta.oaep = (dcmseal_oaep)in[SLOT_OFF_OAEP];
    size_t name_len = in[SLOT_OFF_NAME_LEN];
    s->wrapped_len = get16(in + SLOT_OFF_WRAPPED_LEN);
    if ((s->meta.oaep != DCMSEAL_OAEP_SHA1 && s->meta.oaep != DCMSEAL_OAEP_SHA256) ||
        name_len == 0 || name_len > DCMSEAL_KEK_NAME_MAX ||
        s->wrapped_len == 0 || s->wrapped_len > DCMSEAL_WRAPPED_MAX ||
        s->generation == 0 || s->meta.kek_version == 0 ||
        memchr(in + SLOT_OFF_NAME, 0, name_len) != NULL ||
        !all_zero(in + SLOT_OFF_NAME + name_len, DCMSEAL_KEK_NAME_MAX - name_len) ||
        !all_zero(in + SLOT_OFF_WRAPPED + s->wrapped_len,
                  DCMSEAL_WRAPPED_MAX - s->wrapped_len))
        return -1;
    memcpy(s->meta.kek_name, in + SLOT_OFF_NAME, name_len);
    memcpy(s->meta.kek_fingerprint, in + SLOT_OFF_FPR, DCMSEAL_KEK_FINGERPRINT_LEN);
    memcpy(s->wrapped, in + SLOT_OFF_WRAPPED, s->wrapped_len);
    s->origin_kind = kind;
    memcpy(s->proof, in + SLOT_OFF_PROOF, DCMSEAL_PROOF_LEN);
    return 1;
}

dcmseal_status dcmseal_preamble_decode(dcmseal_header *h, dcmseal_slot *slot,
                                       dcmseal_header_info *info,
                                       const uint8_t *in, size_t len,
                                       dcmseal_error *err)
{
    dcmseal_status st;
    dcmseal_slot s[2];
    int state[2];
    if (len < DCMSEAL_HEADER_LEN)
        return dcmseal_fail(err, DCMSEAL_E_FORMAT, "truncated header (%zu bytes)", len);
    if ((st = dcmseal_header_decode(h, in, err)) != DCMSEAL_OK)
        return st;
    if (len < DCMSEAL_PREAMBLE_LEN)
        return dcmseal_fail(err, DCMSEAL_E_FORMAT, "truncated key slots (%zu bytes)", len);
    for (int i = 0; i < 2; i++)
        state[i] = dcmseal_slot_decode(&s[i], in + DCMSEAL_HEADER_LEN + i * DCMSEAL_SLOT_LEN);
    int active = state[0] == 1 && (state[1] != 1 || s[0].generation >= s[1].generation) ? 0
                 : state[1] == 1 ? 1 : -1;
    if (active < 0)
        return dcmseal_fail(err, DCMSEAL_E_AUTH, "no intact key slot");
    *slot = s[active];
    if (info != NULL) {
        memset(info, 0, sizeof *info);
        info->version = h->version;
        info->is_dicom = (h->flags & DCMSEAL_HEADER_FLAG_DICOM) != 0;
        info->segment_size = h->segment_size;
        info->active_slot = active;
        info->generation = s[active].generation;
        info->other_slot_state = state[1 - active];
        if (state[1 - active] == 1)
            info->other_wrap = s[1 - active].meta;
        info->wrap = s[active].meta;
        info->wrapped_len = s[active].wrapped_len;
        info->origin = s[active].origin_kind != DCMSEAL_SLOT_ORIGIN_NONE ? DCMSEAL_ORIGIN_PRESENT
                                                                         : DCMSEAL_ORIGIN_NONE;
        info->has_meta = h->meta_len != 0;
        info->meta_len = h->meta_len;
    }
    OPENSSL_cleanse(s, sizeof s);
    return DCMSEAL_OK;
}

dcmseal_status dcmseal_header_inspect(dcmseal_header_info *info, const uint8_t *buf,
                                      size_t len, dcmseal_error *err)
{
    dcmseal_header h;
    dcmseal_slot slot;
    if (info == NULL || buf == NULL)
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "dcmseal_header_inspect: NULL argument");
    return dcmseal_preamble_decode(&h, &slot, info, buf, len, err);
}

int dcmseal_is_sealed(const uint8_t *buf, size_t len)
{
    return buf != NULL && len >= sizeof MAGIC && memcmp(buf, MAGIC, sizeof MAGIC) == 0;
}

dcmseal_status dcmseal_object_plaintext_size(uint64_t *out, const dcmseal_header_info *info,
                                             uint64_t object_size, dcmseal_error *err)
{
    if (info == NULL || out == NULL)
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "plain-text size: missing argument");
    /* The metadata block sits between the slots and the first segment. */
    if (object_size < (uint64_t)DCMSEAL_PREAMBLE_LEN + info->meta_len)
        return dcmseal_fail(err, DCMSEAL_E_FORMAT, "truncated object (%llu bytes)",
                            (unsigned long long)object_size);
    return dcmseal_plaintext_size(out, object_size - info->meta_len, info->segment_size, err);
}

dcmseal_status dcmseal_plaintext_size(uint64_t *out, uint64_t object_size,
                                      uint32_t segment_size, dcmseal_error *err)
{
    const uint64_t full = (uint64_t)segment_size + DCMSEAL_TAG_LEN;
    if (object_size < DCMSEAL_PREAMBLE_LEN + DCMSEAL_TAG_LEN || segment_size == 0)
        return dcmseal_fail(err, DCMSEAL_E_FORMAT, "truncated object (%llu bytes)",
                            (unsigned long long)object_size);
    uint64_t payload = object_size - DCMSEAL_PREAMBLE_LEN;
    /* Rounded up without payload + full - 1, which wraps for sizes near
     * UINT64_MAX. */
    uint64_t nseg = payload / full + (payload % full != 0);
    uint64_t last = payload - (nseg - 1) * full;
    /* The last segment carries at least one byte unless it is the only one. */
    if (last < DCMSEAL_TAG_LEN || (last == DCMSEAL_TAG_LEN && nseg > 1))
        return dcmseal_fail(err, DCMSEAL_E_FORMAT, "object size %llu is not a whole "
                            "number of segments", (unsigned long long)object_size);
    *out = payload - nseg * DCMSEAL_TAG_LEN;
    return DCMSEAL_OK;
}
