/* Known answers: Wycheproof AES-GCM and HKDF-SHA256 through the engine's
 * own primitive wrappers, and dcmseal's published format vectors
 * (tests/vectors/README.md). Run with --generate DIR to write the latter. */
#include <stdlib.h>
#include <string.h>

#include <openssl/hmac.h>

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
    int version; /* 1: a KEK without origin key; 2: with one */
    uint32_t segment_size;
    size_t plain_len;
    int dicom;
    const dcmseal_meta *meta;
} kat;

static const dcmseal_meta KAT_META = {
    .path = "1.2.840.113619.2.55.3/2.25.1234567890123456789.dcm",
    .mode = 0640,
    .mtime_sec = 1700000000,
    .mtime_nsec = 123456789,
};
static const dcmseal_meta KAT_META_SHORT = {.path = "a/b", .mode = 0600};

static const kat KATS[] = {
    {"kat-empty-opaque", 1, 4096, 0, 0, NULL},
    {"kat-3seg-dicom", 1, 4096, 10000, 1, NULL},
    {"kat-2seg-exact", 1, 4096, 8192, 0, NULL},
    {"kat2-3seg-dicom", 2, 4096, 10000, 1, NULL},
    {"kat2-concealed", 2, 4096, 5000, 1, &KAT_META},
    {"kat2-empty-meta", 2, 4096, 0, 0, &KAT_META_SHORT},
};
#define NKATS (sizeof KATS / sizeof KATS[0])

static const dcmseal_identity KAT_ID = {"1.2.840.10008.5.1.4.1.1.2",
                                        "2.25.1234567890123456789", "2.25.42"};

/* The published origin and concealment keys of the known-answer KEK: what
 * the token would hold, here in the open on purpose. */
static const uint8_t KAT_ORIGIN_KEY[32] = "dcmseal known-answer origin key";
static const uint8_t KAT_CONCEAL_KEY[32] = "dcmseal known-answer names key";

/* |v1|: the KAT KEK without an origin key; |v2|: the same with one. */
static soft_ring *kat_ring(size_t k, soft_ring *v1, soft_ring *v2)
{
    return KATS[k].version == 1 ? v1 : v2;
}

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
 * OAEP, so only header, metadata block and payload are reproducible). */
static size_t kat_seal(size_t k, soft_ring *ring, uint8_t *out)
{
    uint8_t dek[32], salt[32], *pt;
    size_t w, n = DCMSEAL_PREAMBLE_LEN;
    kat_inputs(k, dek, salt, &pt);
    dcmseal_encryptor_t *enc = NULL;
    dcmseal_encrypt_params p = {.keyring = &ring->ring, .segment_size = KATS[k].segment_size,
                                .identity = KATS[k].dicom ? &KAT_ID : NULL,
                                .meta = KATS[k].meta};
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

/* FORMAT.md's origin proof of the slot at |slot| (an offset into |obj|),
 * computed here with OpenSSL rather than through the engine. */
static void kat_proof(uint8_t out[32], const uint8_t *obj, size_t slot)
{
    uint8_t msg[17 + 128 + 616];
    unsigned int n = 32;
    memcpy(msg, "dcmseal v2 origin", 17);
    memcpy(msg + 17, obj, 128);
    memcpy(msg + 17 + 128, obj + slot + 16, 616);
    HMAC(EVP_sha256(), KAT_ORIGIN_KEY, 32, msg, sizeof msg, out, &n);
}

static int kat_generate(const char *dir, soft_ring *v1, soft_ring *v2)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/kat.txt", dir);
    FILE *txt = fopen(path, "w");
    if (txt == NULL)
        return 1;
    fprintf(txt, "# dcmseal format v1 and v2 known answers; see README.md in this folder.\n");
    kat_write_hex(txt, "origin_key", KAT_ORIGIN_KEY, 32);
    kat_write_hex(txt, "conceal_key", KAT_CONCEAL_KEY, 32);
    for (size_t k = 0; k < NKATS; k++) {
        static uint8_t obj[1 << 16];
        uint8_t dek[32], salt[32], *pt, tag[32];
        dcmseal_keys keys;
        kat_inputs(k, dek, salt, &pt);
        free(pt);
        size_t n = kat_seal(k, kat_ring(k, v1, v2), obj);
        if (n == 0 || dcmseal_keys_derive(&keys, dek, salt, 1, NULL) != DCMSEAL_OK ||
            dcmseal_identity_tag(tag, &keys, KATS[k].dicom ? &KAT_ID : NULL, NULL) != DCMSEAL_OK)
            return 1;
        fprintf(txt, "\nname = %s\nversion = %d\nsegment_size = %u\nplain_len = %zu\n",
                KATS[k].name, KATS[k].version, KATS[k].segment_size, KATS[k].plain_len);
        if (KATS[k].dicom)
            fprintf(txt, "sop_class_uid = %s\nsop_instance_uid = %s\nstudy_instance_uid = %s\n",
                    KAT_ID.sop_class_uid, KAT_ID.sop_instance_uid, KAT_ID.study_instance_uid);
        kat_write_hex(txt, "dek", dek, 32);
        kat_write_hex(txt, "salt", salt, 32);
        kat_write_hex(txt, "payload_key", keys.payload, 32);
        kat_write_hex(txt, "commitment", keys.commitment, 32);
        kat_write_hex(txt, "identity_key", keys.identity, 32);
        kat_write_hex(txt, "identity_tag", tag, 32);
        if (KATS[k].version == 2)
            kat_write_hex(txt, "meta_key", keys.meta, 32);
        if (KATS[k].meta != NULL) {
            const dcmseal_meta *m = KATS[k].meta;
            char name[DCMSEAL_CONCEALED_NAME_LEN];
            if (dcmseal_conceal_name(name, &v2->ring, "kat", m->path, NULL) != DCMSEAL_OK)
                return 1;
            fprintf(txt, "meta_path = %s\nmeta_mode = %04o\nmeta_mtime = %lld.%09u\n",
                    m->path, (unsigned)m->mode, (long long)m->mtime_sec, (unsigned)m->mtime_nsec);
            kat_write_hex(txt, "meta_block", obj + DCMSEAL_PREAMBLE_LEN, dcmseal_meta_len(m));
            fprintf(txt, "concealed_name = %s\n", name);
        }
        /* The published object is written once: its slot, randomised by
         * OAEP, is part of what others check against (origin_proof). */
        snprintf(path, sizeof path, "%s/%s.dcms", dir, KATS[k].name);
        FILE *f = fopen(path, "rb");
        if (f == NULL) {
            f = fopen(path, "wb");
            if (f == NULL || fwrite(obj, 1, n, f) != n || fclose(f) != 0)
                return 1;
        } else {
            n = fread(obj, 1, sizeof obj, f);
            fclose(f);
        }
        if (KATS[k].version == 2) {
            uint8_t proof[32];
            kat_proof(proof, obj, DCMSEAL_HEADER_LEN);
            kat_write_hex(txt, "origin_proof", proof, 32);
        }
        fprintf(txt, "object = %s.dcms\n", KATS[k].name);
    }
    return fclose(txt) != 0;
}

/* The value of "label = value" in the block of KAT |name| in kat.txt (NULL:
 * before the first block), as a string of |cap| bytes at most; its length
 * or -1. */
static long kat_str(const char *txt, const char *name, const char *label, char *out, size_t cap)
{
    char pat[128];
    const char *b = txt, *e;
    if (name != NULL) {
        snprintf(pat, sizeof pat, "name = %s\n", name);
        b = strstr(txt, pat);
    }
    e = b ? strstr(b + 1, "\nname = ") : NULL;
    snprintf(pat, sizeof pat, "\n%s = ", label);
    const char *v = b ? strstr(b, pat) : NULL;
    if (v == NULL || (e != NULL && v > e))
        return -1;
    v += strlen(pat);
    size_t n = strcspn(v, "\n");
    if (n >= cap)
        return -1;
    memcpy(out, v, n);
    out[n] = '\0';
    return (long)n;
}

static long kat_hex(const char *txt, const char *name, const char *label, uint8_t *out,
                    size_t cap)
{
    static char hex[2 * DCMSEAL_META_MAX + 1];
    long n = kat_str(txt, name, label, hex, sizeof hex);
    return n < 0 ? -1 : (long)unhex(out, cap, hex, (size_t)n);
}

static dcmseal_status kat_open(soft_ring *ring, const uint8_t *obj, size_t len, uint8_t *out,
                               size_t cap, size_t *n, dcmseal_meta *meta,
                               dcmseal_header_info *info)
{
    dcmseal_decryptor_t *dec = NULL;
    size_t w1 = 0, w2 = 0;
    dcmseal_status st = dcmseal_decrypt_new(&dec, &ring->ring, NULL);
    if (st == DCMSEAL_OK)
        st = dcmseal_decrypt_update(dec, out, cap, &w1, obj, len, NULL);
    if (st == DCMSEAL_OK)
        st = dcmseal_decrypt_final(dec, out + w1, cap - w1, &w2, NULL);
    *n = w1 + w2;
    if (st == DCMSEAL_OK) {
        *info = *dcmseal_decrypt_get0_header(dec);
        const dcmseal_meta *m = dcmseal_decrypt_get0_meta(dec);
        memset(meta, 0, sizeof *meta);
        if (m != NULL)
            *meta = *m;
    }
    dcmseal_decryptor_free(dec);
    return st;
}

static void test_kats(const char *dir, soft_ring *v1, soft_ring *v2)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/kat.txt", dir);
    char *txt = slurp(path, NULL);
    CHECK(txt != NULL, "cannot read %s", path);
    if (txt == NULL)
        return;
    uint8_t key[32];
    CHECK(kat_hex(txt, NULL, "origin_key", key, 32) == 32 &&
              memcmp(key, KAT_ORIGIN_KEY, 32) == 0 &&
              kat_hex(txt, NULL, "conceal_key", key, 32) == 32 &&
              memcmp(key, KAT_CONCEAL_KEY, 32) == 0, "published origin and concealment keys");
    for (size_t k = 0; k < NKATS; k++) {
        const char *name = KATS[k].name;
        uint8_t dek[32], salt[32], *pt, want[DCMSEAL_META_MAX], tag[32];
        static uint8_t fresh[1 << 16], back[1 << 16];
        char str[DCMSEAL_META_PATH_MAX + 1];
        dcmseal_keys keys;
        kat_inputs(k, dek, salt, &pt);
        CHECK(kat_str(txt, name, "version", str, sizeof str) == 1 &&
                  atoi(str) == KATS[k].version, "%s version", name);
        CHECK(dcmseal_keys_derive(&keys, dek, salt, 1, NULL) == DCMSEAL_OK, "derive");
        CHECK(kat_hex(txt, name, "payload_key", want, 32) == 32 &&
                  memcmp(want, keys.payload, 32) == 0, "%s payload key", name);
        CHECK(kat_hex(txt, name, "commitment", want, 32) == 32 &&
                  memcmp(want, keys.commitment, 32) == 0, "%s commitment", name);
        CHECK(dcmseal_identity_tag(tag, &keys, KATS[k].dicom ? &KAT_ID : NULL, NULL) ==
                      DCMSEAL_OK && kat_hex(txt, name, "identity_tag", want, 32) == 32 &&
                  memcmp(want, tag, 32) == 0, "%s identity tag", name);
        if (KATS[k].version == 2)
            CHECK(kat_hex(txt, name, "meta_key", want, 32) == 32 &&
                      memcmp(want, keys.meta, 32) == 0, "%s metadata key", name);

        size_t len = 0;
        snprintf(path, sizeof path, "%s/%s.dcms", dir, name);
        uint8_t *obj = (uint8_t *)slurp(path, &len);
        soft_ring *ring = kat_ring(k, v1, v2);
        size_t n = kat_seal(k, ring, fresh);
        /* Everything but the OAEP-randomised slots must be reproduced. */
        const size_t payload = DCMSEAL_PREAMBLE_LEN;
        CHECK(obj != NULL && n == len && memcmp(obj, fresh, DCMSEAL_HEADER_LEN) == 0 &&
                  memcmp(obj + payload, fresh + payload, n - payload) == 0,
              "%s: header, metadata block or payload differs from the vector", name);
        CHECK(obj != NULL && obj[9] == KATS[k].version, "%s: version byte", name);
        if (KATS[k].version == 2 && obj != NULL) {
            uint8_t proof[32];
            kat_proof(proof, obj, DCMSEAL_HEADER_LEN);
            CHECK(kat_hex(txt, name, "origin_proof", want, 32) == 32 &&
                      memcmp(want, proof, 32) == 0 &&
                      memcmp(obj + DCMSEAL_HEADER_LEN + 636, proof, 32) == 0 &&
                      obj[DCMSEAL_HEADER_LEN + 632] == 1,
                  "%s: origin proof in slot A is the published one", name);
        }
        if (KATS[k].meta != NULL && obj != NULL) {
            const dcmseal_meta *m = KATS[k].meta;
            char cname[DCMSEAL_CONCEALED_NAME_LEN];
            long ml = kat_hex(txt, name, "meta_block", want, sizeof want);
            CHECK(ml == (long)dcmseal_meta_len(m) &&
                      memcmp(obj + DCMSEAL_PREAMBLE_LEN, want, (size_t)ml) == 0,
                  "%s: metadata block", name);
            CHECK(kat_str(txt, name, "meta_path", str, sizeof str) > 0 &&
                      strcmp(str, m->path) == 0, "%s: metadata path", name);
            CHECK(dcmseal_conceal_name(cname, &v2->ring, "kat", m->path, NULL) == DCMSEAL_OK &&
                      kat_str(txt, name, "concealed_name", str, sizeof str) > 0 &&
                      strcmp(str, cname) == 0, "%s: concealed name", name);
        }
        /* And the published object must decrypt with the published keys. */
        dcmseal_header_info info;
        dcmseal_meta meta;
        size_t got = 0;
        dcmseal_status st = obj ? kat_open(ring, obj, len, back, sizeof back, &got, &meta, &info)
                                : DCMSEAL_E_IO;
        CHECK(st == DCMSEAL_OK && got == KATS[k].plain_len &&
                  memcmp(back, pt, KATS[k].plain_len) == 0, "%s: decrypt: %d", name, st);
        CHECK(st != DCMSEAL_OK ||
                  info.origin == (KATS[k].version == 2 ? DCMSEAL_ORIGIN_VERIFIED
                                                       : DCMSEAL_ORIGIN_NONE),
              "%s: origin", name);
        CHECK(st != DCMSEAL_OK || KATS[k].meta == NULL ||
                  (strcmp(meta.path, KATS[k].meta->path) == 0 &&
                   meta.mode == KATS[k].meta->mode &&
                   meta.mtime_sec == KATS[k].meta->mtime_sec &&
                   meta.mtime_nsec == KATS[k].meta->mtime_nsec), "%s: metadata", name);
        /* v1 vectors: refused where origin is required; v2 vectors: refused
         * without the published origin key. */
        if (obj != NULL && KATS[k].version == 1) {
            v2->require_origin = 1;
            CHECK(kat_open(v2, obj, len, back, sizeof back, &got, &meta, &info) ==
                      DCMSEAL_E_AUTH, "%s: refused under require-origin", name);
            v2->require_origin = 0;
        } else if (obj != NULL) {
            uint8_t saved = v2->origin_key[0];
            v2->origin_key[0] ^= 1;
            CHECK(kat_open(v2, obj, len, back, sizeof back, &got, &meta, &info) ==
                      DCMSEAL_E_AUTH, "%s: refused under another origin key", name);
            v2->origin_key[0] = saved;
        }
        free(obj);
        free(pt);
    }
    free(txt);
}

int main(int argc, char **argv)
{
    soft_ring ring, v2;
    if (argc != 3) {
        fprintf(stderr, "usage: test_vectors WYCHEPROOF_DIR KAT_DIR | --generate KAT_DIR\n");
        return 2;
    }
    const char *kat_dir = argv[2];
    char pem[1024];
    snprintf(pem, sizeof pem, "%s/kat-kek.pem", kat_dir);
    if (soft_ring_init(&ring, pem, "kat", 1, DCMSEAL_OAEP_SHA256) != 0 ||
        soft_ring_init(&v2, pem, "kat", 1, DCMSEAL_OAEP_SHA256) != 0) {
        printf("cannot load %s\n", pem);
        return 1;
    }
    soft_ring_set_origin(&v2, KAT_ORIGIN_KEY);
    memcpy(v2.conceal_key, KAT_CONCEAL_KEY, 32);
    if (strcmp(argv[1], "--generate") == 0)
        return kat_generate(kat_dir, &ring, &v2);

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

    test_kats(kat_dir, &ring, &v2);
    soft_ring_free(&ring);
    soft_ring_free(&v2);
    printf("ran %d AES-GCM and %d HKDF Wycheproof vectors\n", gcm_tested, hkdf_tested);
    return check_done("test_vectors");
}
