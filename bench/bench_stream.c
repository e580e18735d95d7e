/* In-memory throughput of dcmseal's streaming encryption and decryption
 * against raw OpenSSL EVP AES-256-GCM loops over the same segment size, one a
 * direction (the limit), on one thread and on --threads threads at once (each thread its own
 * stream over its own buffers, as `encrypt -r --jobs N` runs N objects).
 * Within one run every figure is measured back to back, so ratios compare
 * like with like; a timing goal belongs here, not in unit tests.
 *
 *   bench_stream [--mib N] [--segment BYTES] [--threads T] [--runs R] [--json]
 *
 * --mib is per thread (default 512: a phase then lasts long enough to
 * average out a noisy machine), --threads defaults to the online cores,
 * --runs to 5. The text output gives the median of the runs and the median
 * of the per-run ratios; --json gives every run's figures, in MiB/s:
 *   {"segment":S,"mib_per_thread":N,"threads":T,"runs":[{"1":{"raw":..,
 *    "raw_decrypt":..,"encrypt":..,"decrypt":..},"T":{...}}, ...]}
 * "raw" is the raw encryption loop, the limit for "encrypt"; "raw_decrypt"
 * the raw decryption loop, the limit for "decrypt".                        */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "../tests/support/soft_ring.h"

#define CHUNK (1u << 20) /* what dcmseal_seal_fd hands the stream at a time */
#define MAX_THREADS 64
#define MAX_RUNS 101

/* Each of dcmseal's directions against a raw loop in the same direction:
 * AES-GCM decrypts faster than it encrypts. The raw loops come first, since
 * the raw decryption reads what the raw encryption wrote. */
typedef enum {
    PHASE_RAW, PHASE_RAW_DECRYPT, PHASE_ENCRYPT, PHASE_DECRYPT, PHASE_COUNT
} phase;
static const char *const phase_name[PHASE_COUNT] = {"raw", "raw_decrypt", "encrypt",
                                                    "decrypt"};
/* The limit each phase is compared with. */
static const phase phase_ref[PHASE_COUNT] = {PHASE_RAW, PHASE_RAW_DECRYPT, PHASE_RAW,
                                             PHASE_RAW_DECRYPT};

/* One thread's stream: its own key ring and buffers. */
typedef struct lane {
    soft_ring ring;
    uint8_t *pt, *ct, *back;
    uint8_t (*tags)[16]; /* the raw loop's, one a segment */
    size_t ct_len;
    dcmseal_encryptor_t *enc;
    dcmseal_decryptor_t *dec;
    double t0, t1; /* when this lane's work started and ended */
    int ok;
} lane;

typedef struct bench {
    size_t n; /* bytes per lane */
    uint32_t seg;
    lane lanes[MAX_THREADS];
    pthread_barrier_t start;
    phase ph;
    int nthreads;
} bench;

typedef struct job {
    bench *b;
    lane *l;
} job;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The limit: one EVP context, a fresh nonce and tag per segment, nothing
 * else. Encrypts |pt| to |back|, or decrypts |back| to |ct| and checks each
 * tag. */
static int raw_gcm(lane *l, size_t n, size_t seg, int enc)
{
    uint8_t key[32] = {1}, iv[12] = {0};
    int len, ok = 1;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    ok = c != NULL && EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, key, NULL, enc) == 1;
    for (size_t off = 0, i = 0; ok && off < n; off += seg, i++) {
        size_t take = n - off < seg ? n - off : seg;
        iv[11]++;
        if (enc)
            ok = EVP_EncryptInit_ex(c, NULL, NULL, NULL, iv) == 1 &&
                 EVP_EncryptUpdate(c, l->back + off, &len, l->pt + off, (int)take) == 1 &&
                 EVP_EncryptFinal_ex(c, l->back + off, &len) == 1 &&
                 EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, l->tags[i]) == 1;
        else
            ok = EVP_DecryptInit_ex(c, NULL, NULL, NULL, iv) == 1 &&
                 EVP_DecryptUpdate(c, l->ct + off, &len, l->back + off, (int)take) == 1 &&
                 EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, l->tags[i]) == 1 &&
                 EVP_DecryptFinal_ex(c, l->ct + off, &len) == 1;
    }
    EVP_CIPHER_CTX_free(c);
    return ok;
}

/* What each phase does before the clock starts: dcmseal's key setup (a DEK
 * wrapped, or unwrapped from the header) is per object, not per byte. */
static int prepare(lane *l, phase ph, uint32_t seg)
{
    size_t w;
    dcmseal_encrypt_params p = {.keyring = &l->ring.ring, .segment_size = seg};
    switch (ph) {
    case PHASE_ENCRYPT:
        l->ct_len = DCMSEAL_PREAMBLE_LEN;
        return dcmseal_encrypt_init(&l->enc, l->ct, &p, NULL) == DCMSEAL_OK;
    case PHASE_DECRYPT:
        return dcmseal_decrypt_new(&l->dec, &l->ring.ring, NULL) == DCMSEAL_OK &&
               dcmseal_decrypt_update(l->dec, NULL, 0, &w, l->ct, DCMSEAL_PREAMBLE_LEN, NULL) ==
                   DCMSEAL_OK;
    default: return 1;
    }
}

/* dcmseal's encryptor over the lane, fed CHUNK bytes at a time, as
 * dcmseal_seal_fd feeds it. */
static int stream_encrypt(lane *l, size_t n, uint32_t seg)
{
    size_t w;
    int ok = 1;
    for (size_t off = 0; ok && off < n; off += CHUNK) {
        size_t take = n - off < CHUNK ? n - off : CHUNK;
        ok = dcmseal_encrypt_update(l->enc, l->ct + l->ct_len,
                                    dcmseal_encrypt_update_max(l->enc, take), &w, l->pt + off,
                                    take, NULL) == DCMSEAL_OK;
        l->ct_len += ok ? w : 0;
    }
    ok = ok && dcmseal_encrypt_final(l->enc, l->ct + l->ct_len, seg + DCMSEAL_TAG_LEN, &w,
                                     NULL) == DCMSEAL_OK;
    l->ct_len += ok ? w : 0;
    dcmseal_encryptor_free(l->enc);
    l->enc = NULL;
    return ok;
}

/* dcmseal's decryptor over what stream_encrypt made. */
static int stream_decrypt(lane *l, size_t n, uint32_t seg)
{
    size_t w, pn = 0;
    int ok = 1;
    for (size_t off = DCMSEAL_PREAMBLE_LEN; ok && off < l->ct_len; off += CHUNK) {
        size_t take = l->ct_len - off < CHUNK ? l->ct_len - off : CHUNK;
        ok = dcmseal_decrypt_update(l->dec, l->back + pn, dcmseal_decrypt_update_max(l->dec, take),
                                    &w, l->ct + off, take, NULL) == DCMSEAL_OK;
        pn += ok ? w : 0;
    }
    ok = ok && dcmseal_decrypt_final(l->dec, l->back + pn, seg, &w, NULL) == DCMSEAL_OK;
    pn += ok ? w : 0;
    dcmseal_decryptor_free(l->dec);
    l->dec = NULL;
    return ok && pn == n;
}

static void *lane_main(void *arg)
{
    job *j = arg;
    bench *b = j->b;
    int ready = prepare(j->l, b->ph, b->seg);
    pthread_barrier_wait(&b->start);
    if (!ready) {
        dcmseal_encryptor_free(j->l->enc);
        dcmseal_decryptor_free(j->l->dec);
        j->l->enc = NULL;
        j->l->dec = NULL;
        return NULL;
    }
    j->l->t0 = now();
    switch (b->ph) {
    case PHASE_RAW: j->l->ok = raw_gcm(j->l, b->n, b->seg, 1); break;
    case PHASE_RAW_DECRYPT: j->l->ok = raw_gcm(j->l, b->n, b->seg, 0); break;
    case PHASE_ENCRYPT: j->l->ok = stream_encrypt(j->l, b->n, b->seg); break;
    case PHASE_DECRYPT: j->l->ok = stream_decrypt(j->l, b->n, b->seg); break;
    case PHASE_COUNT: break;
    }
    j->l->t1 = now();
    return NULL;
}

/* Runs |ph| on |t| lanes at once; MiB/s of all of them together, from the
 * first lane's start (all are prepared and released at once) to the last
 * lane's end; < 0 on error. */
static double run_phase(bench *b, phase ph, int t)
{
    pthread_t tid[MAX_THREADS];
    job jobs[MAX_THREADS];
    b->ph = ph;
    if (pthread_barrier_init(&b->start, NULL, (unsigned)t + 1) != 0)
        return -1;
    int started = 0;
    for (; started < t; started++) {
        jobs[started] = (job){b, &b->lanes[started]};
        b->lanes[started].ok = 0;
        if (pthread_create(&tid[started], NULL, lane_main, &jobs[started]) != 0)
            break;
    }
    if (started < t) {
        fprintf(stderr, "bench_stream: cannot start %d threads\n", t);
        exit(1); /* the started ones wait at the barrier forever */
    }
    pthread_barrier_wait(&b->start);
    for (int i = 0; i < t; i++)
        pthread_join(tid[i], NULL);
    pthread_barrier_destroy(&b->start);
    double first = b->lanes[0].t0, last = b->lanes[0].t1;
    for (int i = 0; i < t; i++) {
        if (!b->lanes[i].ok)
            return -1;
        first = b->lanes[i].t0 < first ? b->lanes[i].t0 : first;
        last = b->lanes[i].t1 > last ? b->lanes[i].t1 : last;
        if ((ph == PHASE_DECRYPT && memcmp(b->lanes[i].back, b->lanes[i].pt, b->n) != 0) ||
            (ph == PHASE_RAW_DECRYPT && memcmp(b->lanes[i].ct, b->lanes[i].pt, b->n) != 0))
            return -1;
    }
    return (double)t * (double)b->n / (1024.0 * 1024.0) / (last - first);
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, c = *(const double *)y;
    return (a > c) - (a < c);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int usage(void)
{
    fputs("usage: bench_stream [--mib N] [--segment BYTES] [--threads T] [--runs R] [--json]\n",
          stderr);
    return 2;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"mib", required_argument, NULL, 'm'},   {"segment", required_argument, NULL, 's'},
        {"threads", required_argument, NULL, 't'}, {"runs", required_argument, NULL, 'r'},
        {"json", no_argument, NULL, 'j'},         {0, 0, 0, 0},
    };
    static bench b;
    unsigned long mib = 512, seg = DCMSEAL_SEGMENT_DEFAULT, runs = 5;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned long threads = cores < 1 ? 1 : cores > MAX_THREADS ? MAX_THREADS : (unsigned long)cores;
    int json = 0, c;
    char *end;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        unsigned long v = optarg ? strtoul(optarg, &end, 10) : 0;
        if (optarg && (*end != '\0' || optarg[0] == '\0'))
            return usage();
        switch (c) {
        case 'm': mib = v; break;
        case 's': seg = v; break;
        case 't': threads = v; break;
        case 'r': runs = v; break;
        case 'j': json = 1; break;
        default: return usage();
        }
    }
    if (optind != argc || mib < 1 || mib > 4096 || seg < DCMSEAL_SEGMENT_MIN ||
        seg > DCMSEAL_SEGMENT_MAX || threads < 1 || threads > MAX_THREADS || runs < 1 ||
        runs > MAX_RUNS)
        return usage();
    b.n = (size_t)mib << 20;
    b.seg = (uint32_t)seg;
    b.nthreads = (int)threads;
    for (int i = 0; i < b.nthreads; i++) {
        lane *l = &b.lanes[i];
        if (soft_ring_init(&l->ring, NULL, "bench", 1, DCMSEAL_OAEP_SHA256) != 0)
            return 1;
        l->pt = malloc(b.n);
        l->ct = malloc(b.n + (b.n / b.seg + 1) * DCMSEAL_TAG_LEN + DCMSEAL_PREAMBLE_LEN);
        l->back = malloc(b.n + b.seg + DCMSEAL_TAG_LEN);
        l->tags = malloc((b.n / b.seg + 1) * sizeof *l->tags);
        if (l->pt == NULL || l->ct == NULL || l->back == NULL || l->tags == NULL ||
            RAND_bytes(l->pt, (int)b.n) != 1)
            return 1;
        /* Touch every page once, so no run pays for first faults. */
        memset(l->back, 0, b.n);
        memset(l->ct, 0, b.n);
    }

    /* [run][one or all][phase] */
    static double rate[MAX_RUNS][2][PHASE_COUNT];
    const int counts[2] = {1, b.nthreads};
    for (unsigned long r = 0; r < runs; r++)
        for (int k = 0; k < 2; k++)
            for (int ph = 0; ph < PHASE_COUNT; ph++)
                if ((rate[r][k][ph] = run_phase(&b, (phase)ph, counts[k])) < 0) {
                    fprintf(stderr, "bench_stream: %s on %d threads failed\n",
                            phase_name[ph], counts[k]);
                    return 1;
                }

    if (json) {
        printf("{\"segment\":%u,\"mib_per_thread\":%lu,\"threads\":%d,\"runs\":[", b.seg, mib,
               b.nthreads);
        for (unsigned long r = 0; r < runs; r++) {
            printf("%s{", r ? "," : "");
            for (int k = 0; k < 2; k++) {
                printf("%s\"%d\":{", k ? "," : "", counts[k]);
                for (int ph = 0; ph < PHASE_COUNT; ph++)
                    printf("%s\"%s\":%.1f", ph ? "," : "", phase_name[ph], rate[r][k][ph]);
                putchar('}');
            }
            putchar('}');
        }
        puts("]}");
    } else {
        printf("segment %u, %lu MiB per thread, median of %lu runs; ratios are the median of "
               "each run's own ratio\n", b.seg, mib, runs);
        printf("%-8s %-11s %10s %12s %12s\n", "threads", "", "MiB/s", "vs raw", "vs 1 thread");
        for (int k = 0; k < 2; k++) {
            for (int ph = 0; ph < PHASE_COUNT; ph++) {
                double v[MAX_RUNS], to_raw[MAX_RUNS], to_one[MAX_RUNS];
                for (unsigned long r = 0; r < runs; r++) {
                    v[r] = rate[r][k][ph];
                    to_raw[r] = rate[r][k][ph] / rate[r][k][phase_ref[ph]];
                    to_one[r] = rate[r][k][ph] / rate[r][0][ph];
                }
                printf("%-8d %-11s %10.0f %12.2f %12.2f\n", counts[k], phase_name[ph],
                       median(v, (int)runs), median(to_raw, (int)runs),
                       median(to_one, (int)runs));
            }
        }
    }
    for (int i = 0; i < b.nthreads; i++) {
        soft_ring_free(&b.lanes[i].ring);
        free(b.lanes[i].pt);
        free(b.lanes[i].ct);
        free(b.lanes[i].back);
        free(b.lanes[i].tags);
    }
    return 0;
}
