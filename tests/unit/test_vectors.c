/* Known answers: Wycheproof AES-GCM and HKDF-SHA256 through the engine's
 * own primitive wrappers, and dcmseal's published format vectors
 * (tests/vectors/README.md). Run with --generate DIR to write the latter. */
#include <stdlib.h>
#include <string.h>

#include "../../engine/internal.h"
#include "../support/check.h"
#include "../support/soft_ring.h"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (p != NULL && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p != NULL) {
        p[n] = '\0';
        if (len != NULL)
            *len = (size_t)n;
    }
    return p;
}

static size_t unhex(uint8_t *out, size_t cap, const char *hex, size_t hex_len)
{
    size_t n = 0;
    for (size_t i = 0; i + 1 < hex_len && n < cap; i += 2) {
        unsigned v;
        if (sscanf(hex + i, "%2x", &v) != 1)
            break;
        out[n++] = (uint8_t)v;
    }
    return n;
}

/* ---- a scanner for Wycheproof's flat test objects ------------------------ */

/* The value of "name" between |from| and |to|: a string's contents (quotes
 * stripped) or a number's digits. Returns its length or -1. */
static long json_field(const char *from, const char *to, const char *name, const char **val)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", name);
    const char *p = strstr(from, pat);
    if (p == NULL || p >= to)
        return -1;
    p += strlen(pat);
    while (*p == ' ' || *p == ':')
        p++;
    if (*p == '"') {
        const char *end = strchr(p + 1, '"');
        *val = p + 1;
        return end ? end - p - 1 : -1;
    }
    *val = p;
    long n = 0;
    while (p[n] >= '0' && p[n] <= '9')
        n++;
    return n;
}

static long json_hex(const char *from, const char *to, const char *name, uint8_t *out,
                     size_t cap)
{
    const char *v;
    long n = json_field(from, to, name, &v);
    return n < 0 || (size_t)n / 2 > cap ? -1 : (long)unhex(out, cap, v, (size_t)n);
}

static long json_int(const char *from, const char *to, const char *name)
{
    const char *v;
    return json_field(from, to, name, &v) < 0 ? -1 : strtol(v, NULL, 10);
}

static int json_valid(const char *from, const char *to)
{
    const char *v;
    long n = json_field(from, to, "result", &v);
    return n == 5 && strncmp(v, "valid", 5) == 0;
}

/* Calls |fn| for every test object. The group's own fields (ivSize, ...)
 * stand between the previous group's "tests" and this group's "tests", and
 * test objects never use their names, so [group, t) finds them. */
static void wycheproof_each(const char *doc, void (*fn)(const char *group, const char *t,
                                                        const char *end))
{
    const char *prev = doc, *cur = strstr(doc, "\"tests\"");
    for (const char *t = strstr(doc, "\"tcId\""); t != NULL && cur != NULL;) {
        const char *next = strstr(cur + 1, "\"tests\"");
        while (next != NULL && next < t) {
            prev = cur;
            cur = next;
            next = strstr(cur + 1, "\"tests\"");
        }
        const char *end = strchr(t, '}');
        if (end == NULL)
            break;
        fn(prev, t, end);
        t = strstr(end, "\"tcId\"");
    }
}

static int gcm_tested, gcm_invalid_tested;

static void gcm_case(const char *group, const char *t, const char *end)
{
    if (json_int(group, t, "ivSize") != 96 || json_int(group, t, "keySize") != 256 ||
        json_int(group, t, "tagSize") != 128)
        return;
    static uint8_t key[64], iv[64], tag[64], aad[1024], msg[1024], ct[1024], out[1024];
    uint8_t got_tag[16];
    long tc = json_int(t, end, "tcId");
    long nk = json_hex(t, end, "key", key, sizeof key), niv = json_hex(t, end, "iv", iv, sizeof iv);
    long na = json_hex(t, end, "aad", aad, sizeof aad), nm = json_hex(t, end, "msg", msg, sizeof msg);
    long nc = json_hex(t, end, "ct", ct, sizeof ct), nt = json_hex(t, end, "tag", tag, sizeof tag);
    if (nk != 32 || niv != 12 || nt != 16 || na < 0 || nm < 0 || nc != nm)
        return;
    int valid = json_valid(t, end);
    EVP_CIPHER_CTX *enc = NULL, *dec = NULL;
    CHECK(dcmseal_gcm_init(&enc, key, 1, NULL) == DCMSEAL_OK &&
              dcmseal_gcm_init(&dec, key, 0, NULL) == DCMSEAL_OK, "gcm init %ld", tc);
    if (valid) {
        CHECK(dcmseal_gcm_seal(enc, out, got_tag, iv, aad, (size_t)na, msg, (size_t)nm, NULL) ==
                      DCMSEAL_OK && memcmp(out, ct, (size_t)nc) == 0 &&
                  memcmp(got_tag, tag, 16) == 0, "gcm seal tcId %ld", tc);
    } else {
        gcm_invalid_tested++;
    }
    dcmseal_status st = dcmseal_gcm_open(dec, out, iv, aad, (size_t)na, ct, (size_t)nc, tag, NULL);
    CHECK(valid ? st == DCMSEAL_OK && memcmp(out, msg, (size_t)nm) == 0 : st == DCMSEAL_E_AUTH,
          "gcm open tcId %ld: %d", tc, st);
    EVP_CIPHER_CTX_free(enc);
    EVP_CIPHER_CTX_free(dec);
    gcm_tested++;
}

static int hkdf_tested;

static void hkdf_case(const char *group, const char *t, const char *end)
{
    (void)group;
    static uint8_t ikm[512], salt[512], info[512], okm[8192], out[8192];
    long tc = json_int(t, end, "tcId");
    long ni = json_hex(t, end, "ikm", ikm, sizeof ikm), ns = json_hex(t, end, "salt", salt, sizeof salt);
    long nf = json_hex(t, end, "info", info, sizeof info), size = json_int(t, end, "size");
    long no = json_hex(t, end, "okm", okm, sizeof okm);
    if (ni < 0 || ns < 0 || nf < 0 || size < 0 || (size_t)size > sizeof out)
        return;
    dcmseal_status st = dcmseal_hkdf_sha256(out, (size_t)size, ikm, (size_t)ni, salt,
                                            (size_t)ns, info, (size_t)nf, NULL);
    if (json_valid(t, end))
        CHECK(st == DCMSEAL_OK && no == size && memcmp(out, okm, (size_t)size) == 0,
              "hkdf tcId %ld", tc);
    else
        CHECK(st != DCMSEAL_OK, "hkdf tcId %ld: invalid case accepted", tc);
    hkdf_tested++;
}

/* ---- dcmseal's own format vectors ----------------------------------------- */

typedef struct kat {
    const char *name;
    uint32_t segment_size;
    size_t plain_len;
    int dicom;
} kat;

static const kat KATS[] = {
    {"kat-empty-opaque", 4096, 0, 0},
    {"kat-3seg-dicom", 4096, 10000, 1},
    {"kat-2seg-exact", 4096, 8192, 0},
};

static const dcmseal_identity KAT_ID = {"1.2.840.10008.5.1.4.1.1.2",
                                        "2.25.1234567890123456789", "2.25.42"};

static void kat_inputs(size_t k, uint8_t dek[32], uint8_t salt[32], uint8_t **pt)
{
    for (int i = 0; i < 32; i++) {
        dek[i] = (uint8_t)(i + 16 * k);
        salt[i] = (uint8_t)(0x80 + i + k);
    }
    *pt = malloc(KATS[k].plain_len + 1);
    for (size_t i = 0; i < KATS[k].plain_len; i++)
        (*pt)[i] = (uint8_t)((i * 31 + 7) & 0xff);
}

/* The object for KAT |k| with its DEK and salt fixed (slot is randomised by
 * OAEP, so only header and payload are reproducible). */
static size_t kat_seal(size_t k, soft_ring *ring, uint8_t *out)
{
    uint8_t dek[32], salt[32], *pt;
    size_t w, n = DCMSEAL_PREAMBLE_LEN;
    kat_inputs(k, dek, salt, &pt);
    dcmseal_encryptor_t *enc = NULL;
    dcmseal_encrypt_params p = {.keyring = &ring->ring, .segment_size = KATS[k].segment_size,
                                .identity = KATS[k].dicom ? &KAT_ID : NULL};
    if (dcmseal_encrypt_init_fixed(&enc, out, &p, dek, salt, NULL) != DCMSEAL_OK ||
        dcmseal_encrypt_update(enc, out + n, 1 << 16, &w, pt, KATS[k].plain_len, NULL) !=
            DCMSEAL_OK)
        n = 0;
    else if (n += w, dcmseal_encrypt_final(enc, out + n, 1 << 16, &w, NULL) != DCMSEAL_OK)
        n = 0;
    else
        n += w;
    dcmseal_encryptor_free(enc);
    free(pt);
    return n;
}

static void kat_write_hex(FILE *f, const char *label, const uint8_t *p, size_t n)
{
    fprintf(f, "%s = ", label);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%02x", p[i]);
    fputc('\n', f);
}

static int kat_generate(const char *dir, soft_ring *ring)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/kat.txt", dir);
    FILE *txt = fopen(path, "w");
    if (txt == NULL)
        return 1;
    fprintf(txt, "# dcmseal format v1 known answers; see README.md in this folder.\n");
    for (size_t k = 0; k < sizeof KATS / sizeof KATS[0]; k++) {
        static uint8_t obj[1 << 16];
        uint8_t dek[32], salt[32], *pt, tag[32];
        dcmseal_keys keys;
        kat_inputs(k, dek, salt, &pt);
        free(pt);
        size_t n = kat_seal(k, ring, obj);
        if (n == 0 || dcmseal_keys_derive(&keys, dek, salt, NULL) != DCMSEAL_OK ||
            dcmseal_identity_tag(tag, &keys, KATS[k].dicom ? &KAT_ID : NULL, NULL) != DCMSEAL_OK)
            return 1;
        fprintf(txt, "\nname = %s\nsegment_size = %u\nplain_len = %zu\n", KATS[k].name,
                KATS[k].segment_size, KATS[k].plain_len);
        if (KATS[k].dicom)
            fprintf(txt, "sop_class_uid = %s\nsop_instance_uid = %s\nstudy_instance_uid = %s\n",
                    KAT_ID.sop_class_uid, KAT_ID.sop_instance_uid, KAT_ID.study_instance_uid);
        kat_write_hex(txt, "dek", dek, 32);
        kat_write_hex(txt, "salt", salt, 32);
        kat_write_hex(txt, "payload_key", keys.payload, 32);
        kat_write_hex(txt, "commitment", keys.commitment, 32);
        kat_write_hex(txt, "identity_key", keys.identity, 32);
        kat_write_hex(txt, "identity_tag", tag, 32);
        fprintf(txt, "object = %s.dcms\n", KATS[k].name);
        snprintf(path, sizeof path, "%s/%s.dcms", dir, KATS[k].name);
        FILE *f = fopen(path, "wb");
        if (f == NULL || fwrite(obj, 1, n, f) != n || fclose(f) != 0)
            return 1;
    }
    return fclose(txt) != 0;
}

/* "label = value" from the block of KAT |name| in kat.txt. */
static long kat_hex(const char *txt, const char *name, const char *label, uint8_t *out)
{
    char pat[128];
    snprintf(pat, sizeof pat, "name = %s\n", name);
    const char *b = strstr(txt, pat);
    const char *e = b ? strstr(b + 1, "\nname = ") : NULL;
    snprintf(pat, sizeof pat, "\n%s = ", label);
    const char *v = b ? strstr(b, pat) : NULL;
    if (v == NULL || (e != NULL && v > e))
        return -1;
    v += strlen(pat);
    return (long)unhex(out, 64, v, strcspn(v, "\n"));
}

static void test_kats(const char *dir, soft_ring *ring)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/kat.txt", dir);
    char *txt = slurp(path, NULL);
    CHECK(txt != NULL, "cannot read %s", path);
    if (txt == NULL)
        return;
    for (size_t k = 0; k < sizeof KATS / sizeof KATS[0]; k++) {
        uint8_t dek[32], salt[32], *pt, want[64], tag[32];
        static uint8_t fresh[1 << 16], back[1 << 16];
        dcmseal_keys keys;
        kat_inputs(k, dek, salt, &pt);
        CHECK(dcmseal_keys_derive(&keys, dek, salt, NULL) == DCMSEAL_OK, "derive");
        CHECK(kat_hex(txt, KATS[k].name, "payload_key", want) == 32 &&
                  memcmp(want, keys.payload, 32) == 0, "%s payload key", KATS[k].name);
        CHECK(kat_hex(txt, KATS[k].name, "commitment", want) == 32 &&
                  memcmp(want, keys.commitment, 32) == 0, "%s commitment", KATS[k].name);
        CHECK(dcmseal_identity_tag(tag, &keys, KATS[k].dicom ? &KAT_ID : NULL, NULL) ==
                      DCMSEAL_OK && kat_hex(txt, KATS[k].name, "identity_tag", want) == 32 &&
                  memcmp(want, tag, 32) == 0, "%s identity tag", KATS[k].name);

        size_t len = 0;
        snprintf(path, sizeof path, "%s/%s.dcms", dir, KATS[k].name);
        char *obj = slurp(path, &len);
        size_t n = kat_seal(k, ring, fresh);
        /* Everything but the OAEP-randomised slots must be reproduced. */
        const size_t payload = DCMSEAL_PREAMBLE_LEN;
        CHECK(obj != NULL && n == len && memcmp(obj, fresh, DCMSEAL_HEADER_LEN) == 0 &&
                  memcmp(obj + payload, fresh + payload, n - payload) == 0,
              "%s: header or payload differs from the vector", KATS[k].name);
        /* And the published object must decrypt with the published KEK. */
        dcmseal_decryptor_t *dec = NULL;
        size_t w1 = 0, w2 = 0;
        dcmseal_status st = obj ? dcmseal_decrypt_new(&dec, &ring->ring, NULL) : DCMSEAL_E_IO;
        if (st == DCMSEAL_OK)
            st = dcmseal_decrypt_update(dec, back, sizeof back, &w1, (uint8_t *)obj, len, NULL);
        if (st == DCMSEAL_OK)
            st = dcmseal_decrypt_final(dec, back + w1, sizeof back - w1, &w2, NULL);
        CHECK(st == DCMSEAL_OK && w1 + w2 == KATS[k].plain_len &&
                  memcmp(back, pt, KATS[k].plain_len) == 0, "%s: decrypt: %d", KATS[k].name, st);
        dcmseal_decryptor_free(dec);
        free(obj);
        free(pt);
    }
    free(txt);
}

int main(int argc, char **argv)
{
    soft_ring ring;
    if (argc != 3) {
        fprintf(stderr, "usage: test_vectors WYCHEPROOF_DIR KAT_DIR | --generate KAT_DIR\n");
        return 2;
    }
    const char *kat_dir = argv[2];
    char pem[1024];
    snprintf(pem, sizeof pem, "%s/kat-kek.pem", kat_dir);
    if (soft_ring_init(&ring, pem, "kat", 1, DCMSEAL_OAEP_SHA256) != 0) {
        printf("cannot load %s\n", pem);
        return 1;
    }
    if (strcmp(argv[1], "--generate") == 0)
        return kat_generate(kat_dir, &ring);

    char path[1024];
    snprintf(path, sizeof path, "%s/aes_gcm_test.json", argv[1]);
    char *doc = slurp(path, NULL);
    CHECK(doc != NULL, "cannot read %s", path);
    if (doc != NULL)
        wycheproof_each(doc, gcm_case);
    free(doc);
    CHECK(gcm_tested >= 60 && gcm_invalid_tested >= 10, "only %d GCM vectors (%d invalid) ran",
          gcm_tested, gcm_invalid_tested);

    snprintf(path, sizeof path, "%s/hkdf_sha256_test.json", argv[1]);
    doc = slurp(path, NULL);
    CHECK(doc != NULL, "cannot read %s", path);
    if (doc != NULL)
        wycheproof_each(doc, hkdf_case);
    free(doc);
    CHECK(hkdf_tested >= 80, "only %d HKDF vectors ran", hkdf_tested);

    test_kats(kat_dir, &ring);
    soft_ring_free(&ring);
    printf("ran %d AES-GCM and %d HKDF Wycheproof vectors\n", gcm_tested, hkdf_tested);
    return check_done("test_vectors");
}
