/* Makes fuzz seeds from one file (tests/fuzz/seeds.sh runs it per file):
 *
 *   make_seeds OUTDIR NAME FILE [LIMIT]   FILE is plain text: seal its first
 *                                         LIMIT bytes (default: all)
 *   make_seeds OUTDIR NAME FILE --sealed  FILE is already an object sealed
 *                                         under the KAT KEK
 *
 * and writes, in the input formats of the targets (their file comments):
 *   OUTDIR/decrypt/NAME.whole    the whole object (real seal path: DICOM
 *                                probe, random DEK, fixture key ring, 4 KiB
 *                                segments), read as a stream and at random
 *   OUTDIR/decrypt/NAME.payload  (plain text only) the payload sealed with
 *                                the fixture's fixed DEK and salt, so that it
 *                                opens after the fixture's preamble
 *   OUTDIR/decrypt/NAME.meta     (plain text only) the same after the
 *                                fixture's preamble and metadata block
 *   OUTDIR/header/NAME           the preamble and the object's size */
#define _GNU_SOURCE /* memfd_create */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"
#include "fuzz.h"

static fuzz_fixture fx;

static void die(const char *what)
{
    fprintf(stderr, "make_seeds: %s%s%s\n", what, errno ? ": " : "", errno ? strerror(errno) : "");
    exit(1);
}

static uint8_t *slurp(const char *path, size_t limit, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        die(path);
    uint8_t *buf = malloc(limit > 0 ? limit : 1);
    if (buf == NULL)
        die("out of memory");
    *len = fread(buf, 1, limit, f);
    fclose(f);
    return buf;
}

static void put(const char *dir, const char *sub, const char *name, const char *suffix,
                const uint8_t *prefix, size_t prefix_len, const uint8_t *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
        die(path);
    snprintf(path, sizeof path, "%s/%s/%s%s", dir, sub, name, suffix);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(prefix, 1, prefix_len, f) != prefix_len ||
        fwrite(p, 1, n, f) != n || fclose(f) != 0)
        die(path);
}

/* The segments of |pt| sealed after the fixture's fixed preamble (and its
 * metadata block, with |meta|). */
static uint8_t *seal_fixed(const uint8_t *pt, size_t n, int meta, size_t *out_len)
{
    dcmseal_encryptor_t *enc = NULL;
    uint8_t pre[DCMSEAL_PREAMBLE_LEN];
    const uint8_t *want = meta ? fx.meta_prefix : fx.preamble;
    uint8_t *out = malloc(DCMSEAL_META_MAX + n + (n / FUZZ_SEGMENT + 2) *
                                                     (FUZZ_SEGMENT + DCMSEAL_TAG_LEN));
    size_t w = 0, total = 0, skip = meta ? fx.meta_prefix_len - DCMSEAL_PREAMBLE_LEN : 0;
    if (out == NULL ||
        fuzz_fixture_encryptor(&fx, &enc, pre, FUZZ_SEGMENT, NULL, meta ? &FUZZ_META : NULL) !=
            DCMSEAL_OK ||
        memcmp(pre, want, DCMSEAL_HEADER_LEN) != 0 ||
        dcmseal_encrypt_update(enc, out, dcmseal_encrypt_update_max(enc, n), &w, pt, n, NULL) !=
            DCMSEAL_OK)
        die("sealing with the fixture failed");
    total = w;
    if (dcmseal_encrypt_final(enc, out + total, dcmseal_encrypt_final_max(enc), &w, NULL) !=
        DCMSEAL_OK)
        die("sealing with the fixture failed");
    dcmseal_encryptor_free(enc);
    /* The metadata block is the fixture's already. */
    memmove(out, out + skip, total + w - skip);
    *out_len = total + w - skip;
    return out;
}

/* The object dcmseal_seal_fd makes of |pt| under the fixture's key ring. */
static uint8_t *seal_real(const uint8_t *pt, size_t n, size_t *out_len)
{
    int in = memfd_create("plain", MFD_CLOEXEC), out = memfd_create("sealed", MFD_CLOEXEC);
    dcmseal_object_report rep;
    dcmseal_error err;
    const dcmseal_seal_opts opts = {.keyring = &fx.ring, .segment_size = FUZZ_SEGMENT};
    struct stat sb;
    if (in < 0 || out < 0 || write(in, pt, n) != (ssize_t)n || lseek(in, 0, SEEK_SET) != 0)
        die("memfd");
    if (dcmseal_seal_fd(&rep, out, in, &opts, &err) != DCMSEAL_OK) {
        fprintf(stderr, "make_seeds: %s\n", err.message);
        exit(1);
    }
    if (fstat(out, &sb) != 0)
        die("fstat");
    const size_t len = (size_t)sb.st_size;
    uint8_t *buf = malloc(len);
    if (buf == NULL || pread(out, buf, len, 0) != (ssize_t)len)
        die("reading the sealed object back");
    close(in);
    close(out);
    *out_len = len;
    return buf;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: make_seeds OUTDIR NAME FILE [LIMIT | --sealed]\n");
        return 64;
    }
    const char *dir = argv[1], *name = argv[2];
    const int sealed = argc == 5 && strcmp(argv[4], "--sealed") == 0;
    const size_t limit = argc == 5 && !sealed ? strtoul(argv[4], NULL, 10) : 64u << 20;
    if (fuzz_fixture_init(&fx) != 0)
        die("cannot load the fixture key " KAT_KEK_PEM);
    /* One chunking byte per name, so that the seeds differ in how they
     * are fed, too. */
    uint8_t chunk = 0;
    for (const char *p = name; *p; p++)
        chunk = (uint8_t)(chunk * 31 + (uint8_t)*p);

    size_t n, obj_len;
    uint8_t *in = slurp(argv[3], limit, &n);
    uint8_t *obj = sealed ? in : seal_real(in, n, &obj_len);
    if (sealed)
        obj_len = n;
    const uint8_t whole[2] = {FUZZ_MODE_WHOLE | FUZZ_MODE_READER, chunk};
    put(dir, "decrypt", name, ".whole", whole, sizeof whole, obj, obj_len);
    if (!sealed) {
        size_t payload_len;
        uint8_t *payload = seal_fixed(in, n, 0, &payload_len);
        const uint8_t mode[2] = {FUZZ_MODE_READER, chunk};
        put(dir, "decrypt", name, ".payload", mode, sizeof mode, payload, payload_len);
        free(payload);
        payload = seal_fixed(in, n, 1, &payload_len);
        const uint8_t meta_mode[2] = {FUZZ_MODE_READER | FUZZ_MODE_META, chunk};
        put(dir, "decrypt", name, ".meta", meta_mode, sizeof meta_mode, payload, payload_len);
        free(payload);
    }
    uint8_t head[9] = {0};
    for (int i = 0; i < 8; i++)
        head[1 + i] = (uint8_t)((uint64_t)obj_len >> (56 - 8 * i));
    put(dir, "header", name, "", head, sizeof head, obj,
        obj_len < DCMSEAL_PREAMBLE_LEN ? obj_len : DCMSEAL_PREAMBLE_LEN);
    if (obj != in)
        free(obj);
    free(in);
    return 0;
}
