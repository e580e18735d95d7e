/* Token-bound operations: objects per second for a raw unwrap loop (the
 * limit: one RSA private-key operation each) against rewrap, in one session
 * of the token named by $DCMSEAL_TOKEN, under KEK versions it creates.
 *   bench_token KEYNAME [N]                                                  */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/rand.h>

#include <dcmseal/pkcs11.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    dcmseal_error err;
    dcmseal_token_t *tok = NULL;
    dcmseal_session_t *s = NULL;
    dcmseal_kek_info a, b;
    if (argc < 2 || getenv("DCMSEAL_TOKEN") == NULL) {
        fprintf(stderr, "usage: DCMSEAL_TOKEN=URI bench_token KEYNAME [N]\n");
        return 64;
    }
    int n = argc > 2 ? atoi(argv[2]) : 300;
    if (dcmseal_token_open(&tok, getenv("DCMSEAL_TOKEN"), &err) != DCMSEAL_OK ||
        dcmseal_session_open(&s, tok, &err) != DCMSEAL_OK ||
        dcmseal_kek_create(s, &a, argv[1], 2048, &err) != DCMSEAL_OK ||
        dcmseal_kek_rotate(s, &b, argv[1], 0, &err) != DCMSEAL_OK) {
        fprintf(stderr, "bench_token: %s\n", err.message);
        return 69;
    }
    uint8_t dek[32], wrapped[512], out[512], back[64];
    size_t wlen, olen, blen;
    dcmseal_oaep used;
    int in_token = 0;
    RAND_bytes(dek, sizeof dek);
    if (dcmseal_kek_wrap(s, wrapped, sizeof wrapped, &wlen, &used, &a, DCMSEAL_OAEP_AUTO, dek,
                         sizeof dek, &err) != DCMSEAL_OK)
        return 69;
    double t = now();
    for (int i = 0; i < n; i++)
        if (dcmseal_kek_unwrap(s, back, sizeof back, &blen, &a, used, wrapped, wlen, &err) !=
            DCMSEAL_OK)
            return 69;
    double unwrap = now() - t;
    t = now();
    for (int i = 0; i < n; i++)
        if (dcmseal_kek_rewrap(s, out, sizeof out, &olen, &used, &in_token, &a, used, wrapped,
                               wlen, &b, DCMSEAL_OAEP_AUTO, &err) != DCMSEAL_OK)
            return 69;
    double rewrap = now() - t;
    printf("RSA-2048, 1 session, %d operations\n", n);
    printf("raw unwrap (C_Decrypt)   %8.0f /s   1.00\n", n / unwrap);
    printf("rewrap (%s)  %8.0f /s   %.2f of raw unwrap\n",
           in_token ? "in token" : "host    ", n / rewrap, unwrap / rewrap);
    dcmseal_session_free(s);
    dcmseal_token_free(tok);
    return 0;
}
