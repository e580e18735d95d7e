/* In-memory throughput of dcmseal's streaming encryption and decryption
 * against a raw OpenSSL EVP AES-256-GCM loop over the same segment size (the
 * limit). Prints ratios; a timing goal belongs here, not in unit tests.
 *   bench_stream [MiB] [segment_size]                                       */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "../tests/support/soft_ring.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double raw_gcm(const uint8_t *in, uint8_t *out, size_t n, size_t seg)
{
    uint8_t key[32] = {1}, iv[12] = {0}, tag[16];
    int l;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, NULL);
    double t = now();
    for (size_t off = 0; off < n; off += seg) {
        size_t take = n - off < seg ? n - off : seg;
        iv[11]++;
        EVP_EncryptInit_ex(c, NULL, NULL, NULL, iv);
        EVP_EncryptUpdate(c, out + off, &l, in + off, (int)take);
        EVP_EncryptFinal_ex(c, out + off, &l);
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag);
    }
    t = now() - t;
    EVP_CIPHER_CTX_free(c);
    return t;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
    uint32_t seg = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : DCMSEAL_SEGMENT_DEFAULT;
    size_t n = mib << 20, chunk = 1 << 20;
    soft_ring ring;
    if (soft_ring_init(&ring, NULL, "bench", 1, DCMSEAL_OAEP_SHA256) != 0)
        return 1;
    uint8_t *pt = malloc(n), *ct = malloc(n + n / 64 + (1 << 20) + DCMSEAL_PREAMBLE_LEN),
            *back = malloc(n + (1 << 20));
    RAND_bytes(pt, (int)n);
    double best_raw = 1e9, best_enc = 1e9, best_dec = 1e9;
    for (int run = 0; run < 5; run++) {
        double t = raw_gcm(pt, back, n, seg);
        best_raw = t < best_raw ? t : best_raw;

        dcmseal_encryptor_t *enc = NULL;
        dcmseal_encrypt_params p = {&ring.ring, seg, NULL};
        size_t w, ctn = DCMSEAL_PREAMBLE_LEN;
        if (dcmseal_encrypt_init(&enc, ct, &p, NULL) != DCMSEAL_OK)
            return 1;
        t = now();
        for (size_t off = 0; off < n; off += chunk) {
            size_t cap = dcmseal_encrypt_update_max(enc, chunk);
            if (dcmseal_encrypt_update(enc, ct + ctn, cap, &w, pt + off, chunk, NULL) != DCMSEAL_OK)
                return 1;
            ctn += w;
        }
        if (dcmseal_encrypt_final(enc, ct + ctn, seg + 16, &w, NULL) != DCMSEAL_OK)
            return 1;
        ctn += w;
        t = now() - t;
        best_enc = t < best_enc ? t : best_enc;
        dcmseal_encryptor_free(enc);

        dcmseal_decryptor_t *dec = NULL;
        size_t pn = 0;
        if (dcmseal_decrypt_new(&dec, &ring.ring, NULL) != DCMSEAL_OK ||
            dcmseal_decrypt_update(dec, NULL, 0, &w, ct, DCMSEAL_PREAMBLE_LEN, NULL) != DCMSEAL_OK)
            return 1;
        t = now();
        for (size_t off = DCMSEAL_PREAMBLE_LEN; off < ctn; off += chunk) {
            size_t take = ctn - off < chunk ? ctn - off : chunk;
            if (dcmseal_decrypt_update(dec, back + pn, dcmseal_decrypt_update_max(dec, take), &w,
                                       ct + off, take, NULL) != DCMSEAL_OK)
                return 1;
            pn += w;
        }
        if (dcmseal_decrypt_final(dec, back + pn, seg, &w, NULL) != DCMSEAL_OK)
            return 1;
        pn += w;
        t = now() - t;
        best_dec = t < best_dec ? t : best_dec;
        dcmseal_decryptor_free(dec);
        if (pn != n || memcmp(back, pt, n) != 0)
            return 1;
    }
    printf("segment %u, %zu MiB, best of 5, 1 thread\n", seg, mib);
    printf("raw EVP AES-256-GCM   %8.0f MiB/s   1.00\n", mib / best_raw);
    printf("dcmseal encrypt       %8.0f MiB/s   %.2f of raw\n", mib / best_enc, best_raw / best_enc);
    printf("dcmseal decrypt       %8.0f MiB/s   %.2f of raw\n", mib / best_dec, best_raw / best_dec);
    soft_ring_free(&ring);
    free(pt);
    free(ct);
    free(back);
    return 0;
}
