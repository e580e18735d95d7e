/* libFuzzer target: the streaming decryptor, and on request the random-access
 * reader, on arbitrary cipher text under a fixed key (fixture.h).
 *
 * Input: a mode byte, a chunking byte, then the data.
 *  - mode & FUZZ_MODE_WHOLE: the data is a whole object. Otherwise it is the
 *    payload after the fixture's valid preamble, so that the fuzzer spends
 *    its time in the segment framing rather than on the header.
 *  - mode & FUZZ_MODE_META (not whole): the payload follows the fixture's
 *    preamble and metadata block (format v2 with a concealed name) instead.
 *  - mode & FUZZ_MODE_READER: the object is also opened with
 *    dcmseal_reader_open and read at chosen ranges, and the two APIs must
 *    agree on what they accept, on the plain text and on the metadata.
 * The fixture's KEK has an origin key, so whole objects pass the origin
 * proof check only when their header and slot are a real object's.
 * The chunking byte seeds the sizes in which the object is fed to
 * dcmseal_decrypt_update: single bytes, odd sizes, whole segments, the rest.
 *
 * Checked on every input: no write past what dcmseal_decrypt_update_max
 * promised (each output buffer is allocated to exactly that size); after a
 * failure no output and a zeroed buffer, and the stream stays failed; the
 * status is one a reader of untrusted data should see; a success yields the
 * plain-text size dcmseal_object_plaintext_size computes, a verified origin
 * for format v2, and metadata exactly when the header announces a block. */
#define _GNU_SOURCE /* memfd_create */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fixture.h"
#include "fuzz.h"

static fuzz_fixture fx;
static int memfd = -1;
/* The metadata path the stream reported ("" for none), for the reader. */
static char stream_path[DCMSEAL_META_PATH_MAX + 1];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (fuzz_fixture_init(&fx) != 0) {
        fprintf(stderr, "fuzz_decrypt: cannot load the fixture key %s\n", KAT_KEK_PEM);
        abort();
    }
    memfd = memfd_create("fuzz_decrypt", MFD_CLOEXEC);
    FUZZ_CHECK(memfd >= 0);
    return 0;
}

static size_t next_chunk(uint32_t *rng, size_t left)
{
    const size_t full = FUZZ_SEGMENT + DCMSEAL_TAG_LEN;
    uint32_t r = fuzz_rand(rng);
    size_t n;
    switch (r & 3) {
    case 0: n = 1 + (r >> 2) % 16; break;
    case 1: n = 1 + (r >> 2) % (2 * full); break;
    case 2: n = full; break;
    default: n = left; break;
    }
    return n < left ? n : left;
}

/* What a failed call must leave behind. */
static void check_failed_call(dcmseal_status st, const dcmseal_error *err,
                              const uint8_t *out, size_t cap, size_t written)
{
    /* Untrusted bytes are bad data, a failed unwrap, or a KEK the ring
     * does not have; never a usage or internal error. */
    FUZZ_CHECK(st == DCMSEAL_E_FORMAT || st == DCMSEAL_E_AUTH || st == DCMSEAL_E_KEY);
    FUZZ_CHECK(err->status == st);
    FUZZ_CHECK(err->message[0] != '\0' && memchr(err->message, 0, sizeof err->message));
    FUZZ_CHECK(written == 0);
    FUZZ_CHECK(out == NULL || fuzz_all_zero(out, cap));
}

/* Exactly |cap| zeroed bytes (NULL for none), so that ASan sees any write
 * past the room an API promised. */
static uint8_t *exact_buffer(size_t cap)
{
    uint8_t *out = cap > 0 ? calloc(cap, 1) : NULL;
    FUZZ_CHECK(cap == 0 || out != NULL);
    return out;
}

/* Takes what one call wrote to |out|: appends it to |pt| (|*total| bytes
 * there, room for |room|) after a success, or checks what a failure must
 * leave behind. Frees |out|. */
static void take_output(dcmseal_status st, const dcmseal_error *err, uint8_t *out,
                        size_t cap, size_t written, uint8_t *pt, size_t *total, size_t room)
{
    if (st == DCMSEAL_OK) {
        FUZZ_CHECK(written <= cap && *total + written <= room);
        if (written > 0)
            memcpy(pt + *total, out, written);
        *total += written;
    } else {
        check_failed_call(st, err, out, cap, written);
    }
    free(out);
}

/* Decrypts |obj| in chunks; the plain text goes to |pt| (room for |len|). */
static dcmseal_status stream(uint8_t *pt, size_t *pt_len, const uint8_t *obj, size_t len,
                             uint32_t rng)
{
    dcmseal_decryptor_t *dec = NULL;
    dcmseal_error err;
    dcmseal_status st = DCMSEAL_OK;
    size_t off = 0, total = 0, w;
    FUZZ_CHECK(dcmseal_decrypt_new(&dec, &fx.ring, &err) == DCMSEAL_OK);
    while (off < len && st == DCMSEAL_OK) {
        const size_t n = next_chunk(&rng, len - off);
        const size_t cap = dcmseal_decrypt_update_max(dec, n);
        uint8_t *out = exact_buffer(cap);
        w = SIZE_MAX;
        st = dcmseal_decrypt_update(dec, out, cap, &w, obj + off, n, &err);
        take_output(st, &err, out, cap, w, pt, &total, len);
        off += n;
    }
    if (st == DCMSEAL_OK) {
        /* The last segment holds at most one segment of plain text. */
        const dcmseal_header_info *h = dcmseal_decrypt_get0_header(dec);
        const size_t cap = h != NULL ? h->segment_size : 0;
        uint8_t *out = exact_buffer(cap);
        w = SIZE_MAX;
        st = dcmseal_decrypt_final(dec, out, cap, &w, &err);
        take_output(st, &err, out, cap, w, pt, &total, len);
    }
    uint8_t one = 0;
    if (st != DCMSEAL_OK) {
        /* Sticky: nothing more goes through. */
        w = SIZE_MAX;
        FUZZ_CHECK(dcmseal_decrypt_update(dec, NULL, 0, &w, &one, 1, NULL) == st && w == 0);
        w = SIZE_MAX;
        FUZZ_CHECK(dcmseal_decrypt_final(dec, NULL, 0, &w, NULL) == st && w == 0);
        total = 0;
    } else {
        const dcmseal_header_info *h = dcmseal_decrypt_get0_header(dec);
        uint64_t expect = UINT64_MAX;
        FUZZ_CHECK(h != NULL);
        FUZZ_CHECK(dcmseal_object_plaintext_size(&expect, h, len, NULL) == DCMSEAL_OK);
        FUZZ_CHECK(expect == total);
        FUZZ_CHECK(h->origin == DCMSEAL_ORIGIN_VERIFIED ||
                   (h->origin == DCMSEAL_ORIGIN_NONE && h->version == DCMSEAL_FORMAT_V1));
        const dcmseal_meta *m = dcmseal_decrypt_get0_meta(dec);
        FUZZ_CHECK((m != NULL) == h->has_meta);
        FUZZ_CHECK(m == NULL || dcmseal_meta_path_ok(m->path));
        snprintf(stream_path, sizeof stream_path, "%s", m != NULL ? m->path : "");
        /* No identity is bound in an opaque object; one is in a DICOM one. */
        FUZZ_CHECK((dcmseal_decrypt_check_identity(dec, NULL, NULL) == DCMSEAL_OK) ==
                   !h->is_dicom);
        w = SIZE_MAX;
        FUZZ_CHECK(dcmseal_decrypt_update(dec, NULL, 0, &w, &one, 1, NULL) == DCMSEAL_E_USAGE);
    }
    dcmseal_decryptor_free(dec);
    *pt_len = total;
    return st;
}

/* Opens |obj| for random access; compares with what the stream gave. */
static void reader(const uint8_t *obj, size_t len, uint32_t rng, dcmseal_status stream_st,
                   const uint8_t *pt, size_t pt_len)
{
    dcmseal_reader_t *r = NULL;
    dcmseal_error err;
    size_t got;
    FUZZ_CHECK(ftruncate(memfd, 0) == 0);
    FUZZ_CHECK(pwrite(memfd, obj, len, 0) == (ssize_t)len);
    dcmseal_status st = dcmseal_reader_open(&r, memfd, &fx.ring, &err);
    if (stream_st == DCMSEAL_OK) {
        FUZZ_CHECK(st == DCMSEAL_OK && dcmseal_reader_size(r) == pt_len);
        const dcmseal_meta *m = dcmseal_reader_get0_meta(r);
        FUZZ_CHECK(strcmp(m != NULL ? m->path : "", stream_path) == 0);
    }
    if (st != DCMSEAL_OK) {
        FUZZ_CHECK(st == DCMSEAL_E_FORMAT || st == DCMSEAL_E_AUTH || st == DCMSEAL_E_KEY);
        return;
    }
    const uint64_t size = dcmseal_reader_size(r);
    FUZZ_CHECK(size <= len);
    /* A few ranges first, to exercise the segment cache and the edges. */
    for (int i = 0; i < 4; i++) {
        const uint64_t off = fuzz_rand(&rng) % (size + 2);
        const size_t n = fuzz_rand(&rng) % (2 * FUZZ_SEGMENT + 40);
        uint8_t *buf = exact_buffer(n);
        got = SIZE_MAX;
        st = dcmseal_reader_pread(r, buf, n, off, &got, &err);
        if (st == DCMSEAL_OK) {
            const size_t want = off >= size ? 0 : size - off < n ? (size_t)(size - off) : n;
            FUZZ_CHECK(got == want);
            FUZZ_CHECK(stream_st != DCMSEAL_OK || got == 0 || memcmp(buf, pt + off, got) == 0);
        } else {
            FUZZ_CHECK(st == DCMSEAL_E_AUTH && got == 0 && stream_st != DCMSEAL_OK);
        }
        free(buf);
    }
    uint8_t *all = exact_buffer(size);
    got = SIZE_MAX;
    st = dcmseal_reader_pread(r, all, size, 0, &got, &err);
    if (stream_st == DCMSEAL_OK)
        FUZZ_CHECK(st == DCMSEAL_OK && got == pt_len && (got == 0 || memcmp(all, pt, got) == 0));
    /* Reading every segment authenticates every segment, the last with its
     * flag: then the stream must have accepted the object too. An empty
     * object's one segment is never read, so it proves nothing. */
    if (st == DCMSEAL_OK && size > 0)
        FUZZ_CHECK(stream_st == DCMSEAL_OK);
    free(all);
    dcmseal_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const unsigned mode = data[0];
    const uint32_t rng = 0x9E3779B9u ^ data[1];
    data += 2;
    size -= 2;
    const uint8_t *prefix = (mode & FUZZ_MODE_META) ? fx.meta_prefix : fx.preamble;
    const size_t pre = (mode & FUZZ_MODE_WHOLE) ? 0
                       : (mode & FUZZ_MODE_META) ? fx.meta_prefix_len
                                                 : DCMSEAL_PREAMBLE_LEN;
    const size_t len = pre + size;
    /* A copy of exactly the object's size, so that reads past it show. */
    uint8_t *obj = malloc(len > 0 ? len : 1), *pt = malloc(len > 0 ? len : 1);
    FUZZ_CHECK(obj != NULL && pt != NULL);
    memcpy(obj, prefix, pre);
    if (size > 0)
        memcpy(obj + pre, data, size);
    size_t pt_len = 0;
    const dcmseal_status st = stream(pt, &pt_len, obj, len, rng);
    if (mode & FUZZ_MODE_READER)
        reader(obj, len, rng, st, pt, pt_len);
    free(pt);
    free(obj);
    return 0;
}
