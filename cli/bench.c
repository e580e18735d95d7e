/* bench: how fast the token runs what rotation and encryption ask of it.
 * Per session count (one thread per session), objects per second and p50/p99
 * latency of: a raw unwrap loop (C_Decrypt, one RSA private-key operation
 * each: the token's limit), rewrap in the token and through host memory (the
 * two paths of dcmseal_kek_rewrap), wrapping a new data key, and the origin
 * proof of format v2: making one (C_Sign, what encrypt adds), checking one
 * (C_Verify), and unwrap plus check on the same session (what decrypt asks of
 * the token per object: its limit for format v2). The objects
 * are wrapped data keys held in memory; files and their I/O are not part of
 * it. The KEK is a scratch one (v1 -> v2) made for the run and destroyed
 * after it, unless --keep, or an existing one named with --key. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sysexits.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "cli.h"

#define BENCH_OBJECTS_DEFAULT 200
#define BENCH_COUNTS_MAX CLI_SESSIONS_MAX

typedef enum {
    OP_UNWRAP,
    OP_REWRAP_TOKEN,
    OP_REWRAP_HOST,
    OP_WRAP,
    OP_PROVE,
    OP_CHECK,
    OP_UNWRAP_CHECK,
    OP_REWRAP_PROOFS,
    OP_COUNT
} bench_op;

static const char *const op_id[OP_COUNT] = {"unwrap", "rewrap-in-token", "rewrap-host",
                                            "wrap",   "prove",           "check",
                                            "unwrap+check", "rewrap+proofs"};
static const char *const op_title[OP_COUNT] = {
    "unwrap (C_Decrypt)", "rewrap in token",      "rewrap via host",  "wrap new DEK",
    "origin proof (Sign)", "proof check (Verify)", "unwrap + check",   "rewrap + proofs"};

/* As long as the message an origin proof covers (FORMAT.md). */
#define BENCH_PROOF_MSG 761

typedef struct bench_opts {
    const char *token, *key;
    unsigned objects, bits;
    int counts[BENCH_COUNTS_MAX]; /* session counts */
    size_t ncounts;
    int keep, json;
} bench_opts;

/* The keys and objects every phase works on; read-only while threads run. */
typedef struct bench_data {
    dcmseal_kek_info from, to;
    dcmseal_oaep oaep; /* of the wrapped objects */
    int in_token;      /* the token rewraps without the key leaving it */
    const char *refusal; /* else why not (dcmseal_session_get0_rewrap_refusal) */
    unsigned n;
    uint8_t (*dek)[DCMSEAL_DEK_LEN];
    uint8_t (*wrapped)[DCMSEAL_WRAPPED_MAX];
    size_t *wrapped_len;
    /* Per object, the message and origin proof under |from|; NULL when
     * |from| has no origin key. */
    uint8_t (*msg)[BENCH_PROOF_MSG];
    uint8_t (*proof)[DCMSEAL_HMAC_LEN];
} bench_data;

/* One operation at one session count. */
typedef struct bench_phase {
    const bench_data *d;
    bench_op op;
    atomic_uint next;
    atomic_int failed;
    double *latency; /* seconds, per object */
    pthread_mutex_t lock;
    dcmseal_error err; /* the first failure */
} bench_phase;

typedef struct bench_worker {
    bench_phase *ph;
    dcmseal_session_t *session;
} bench_worker;

typedef struct bench_row {
    int sessions;
    bench_op op;
    int available;
    double per_second, p50, p99; /* latencies in seconds */
    /* CPU seconds of the whole process per object: with a token that runs
     * in the process (SoftHSM) its RSA included. On a shared machine a
     * steadier figure than the rate. */
    double cpu;
} bench_row;

static double tv_seconds(const struct timeval *tv)
{
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- options ------------------------------------------------------------ */

/* The options, with bench's defaults where they were not given. */
static int bench_options(bench_opts *b, const cli_opts *o)
{
    memset(b, 0, sizeof *b);
    if (o->nargs != 0)
        return cli_usage_error("bench takes no arguments");
    if (o->key != NULL && (o->bits != 0 || o->keep))
        return cli_usage_error("bench: --bits and --keep apply to the scratch key, not to "
                               "--key %s", o->key);
    b->token = o->token;
    b->key = o->key;
    b->keep = o->keep;
    b->json = o->json;
    b->objects = o->objects ? o->objects : BENCH_OBJECTS_DEFAULT;
    b->bits = o->bits ? o->bits : 3072; /* what `key create` makes */
    memcpy(b->counts, o->sessions, o->nsessions * sizeof o->sessions[0]);
    b->ncounts = o->nsessions;
    if (b->ncounts == 0) {
        /* One session, then one per core: where the token's parallelism shows. */
        b->counts[b->ncounts++] = 1;
        if (cli_default_jobs() > 1)
            b->counts[b->ncounts++] = cli_default_jobs();
    }
    return EX_OK;
}

/* ---- one operation ------------------------------------------------------ */

static dcmseal_status bench_one(dcmseal_session_t *s, const bench_data *d, bench_op op,
                                unsigned i, dcmseal_error *err)
{
    uint8_t dek[DCMSEAL_DEK_LEN], out[DCMSEAL_WRAPPED_MAX];
    size_t len = 0, out_len = 0;
    dcmseal_oaep used;
    int in_token = 0;
    dcmseal_status st = DCMSEAL_OK;
    switch (op) {
    case OP_UNWRAP:
        st = dcmseal_kek_unwrap(s, dek, sizeof dek, &len, &d->from, d->oaep, d->wrapped[i],
                                d->wrapped_len[i], err);
        if (st == DCMSEAL_OK && (len != sizeof dek || CRYPTO_memcmp(dek, d->dek[i], len) != 0))
            st = dcmseal_fail(err, DCMSEAL_E_AUTH, "object %u unwrapped to another key",
                              i);
        break;
    case OP_REWRAP_TOKEN:
        st = dcmseal_kek_rewrap(s, out, sizeof out, &out_len, &used, &in_token, &d->from,
                                d->oaep, d->wrapped[i], d->wrapped_len[i], &d->to,
                                DCMSEAL_OAEP_AUTO, err);
        if (st == DCMSEAL_OK && !in_token)
            st = dcmseal_fail(err, DCMSEAL_E_TOKEN,
                              "the token stopped rewrapping in the token at object %u", i);
        break;
    case OP_REWRAP_HOST:
        /* What dcmseal_kek_rewrap falls back to when the token refuses. */
        st = dcmseal_kek_unwrap(s, dek, sizeof dek, &len, &d->from, d->oaep, d->wrapped[i],
                                d->wrapped_len[i], err);
        if (st == DCMSEAL_OK)
            st = dcmseal_kek_wrap(s, out, sizeof out, &out_len, &used, &d->to,
                                  DCMSEAL_OAEP_AUTO, dek, len, err);
        break;
    case OP_WRAP:
        if (RAND_bytes(dek, sizeof dek) != 1)
            st = dcmseal_fail(err, DCMSEAL_E_INTERNAL, "no random bytes");
        else
            st = dcmseal_kek_wrap(s, out, sizeof out, &out_len, &used, &d->to,
                                  DCMSEAL_OAEP_AUTO, dek, sizeof dek, err);
        break;
    case OP_UNWRAP_CHECK:
        st = bench_one(s, d, OP_UNWRAP, i, err);
        if (st == DCMSEAL_OK)
            st = bench_one(s, d, OP_CHECK, i, err);
        break;
    case OP_REWRAP_PROOFS:
        /* What rewrap asks of the token for a format v2 object: the old
         * slot's proof checked, the DEK rewrapped, the new slot proven. */
        st = bench_one(s, d, OP_CHECK, i, err);
        if (st == DCMSEAL_OK)
            st = bench_one(s, d, d->in_token ? OP_REWRAP_TOKEN : OP_REWRAP_HOST, i, err);
        if (st == DCMSEAL_OK)
            st = bench_one(s, d, OP_PROVE, i, err);
        break;
    case OP_PROVE:
        st = dcmseal_origin_sign(s, out, d->from.name, d->from.version, d->msg[i],
                                 sizeof d->msg[i], err);
        break;
    case OP_CHECK:
        st = dcmseal_origin_verify(s, d->from.name, d->from.version, d->msg[i],
                                   sizeof d->msg[i], d->proof[i], err);
        break;
    case OP_COUNT: break;
    }
    OPENSSL_cleanse(dek, sizeof dek);
    return st;
}

/* ---- one phase: |op| on as many threads as sessions ---------------------- */

static void *bench_work(void *arg)
{
    bench_worker *w = arg;
    bench_phase *ph = w->ph;
    dcmseal_error err;
    for (;;) {
        if (atomic_load(&ph->failed) || cli_interrupted())
            break;
        unsigned i = atomic_fetch_add(&ph->next, 1);
        if (i >= ph->d->n)
            break;
        double t0 = now();
        dcmseal_status st = bench_one(w->session, ph->d, ph->op, i, &err);
        ph->latency[i] = now() - t0;
        if (st != DCMSEAL_OK) {
            pthread_mutex_lock(&ph->lock);
            if (!atomic_exchange(&ph->failed, 1))
                ph->err = err;
            pthread_mutex_unlock(&ph->lock);
            break;
        }
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The nearest-rank percentile of sorted |v|. */
static double percentile(const double *v, unsigned n, double q)
{
    unsigned rank = (unsigned)(q * n);
    if ((double)rank < q * n)
        rank++;
    return v[rank > 0 ? rank - 1 : 0];
}

static dcmseal_status bench_phase_run(bench_row *row, const bench_data *d,
                                      dcmseal_session_t **sessions, int nsessions, bench_op op,
                                      dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    bench_phase ph = {.d = d, .op = op};
    bench_worker w[CLI_JOBS_MAX];
    pthread_t tid[CLI_JOBS_MAX];
    int started = 0;
    atomic_init(&ph.next, 0);
    atomic_init(&ph.failed, 0);
    *row = (bench_row){.sessions = nsessions, .op = op};
    ph.latency = calloc(d->n, sizeof *ph.latency);
    DCMSEAL_ENSURE(ph.latency != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    pthread_mutex_init(&ph.lock, NULL);
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    double t0 = now();
    for (; started < nsessions; started++) {
        w[started] = (bench_worker){&ph, sessions[started]};
        if (pthread_create(&tid[started], NULL, bench_work, &w[started]) != 0)
            break;
    }
    for (int i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    double elapsed = now() - t0;
    getrusage(RUSAGE_SELF, &ru1);
    pthread_mutex_destroy(&ph.lock);
    if (atomic_load(&ph.failed)) {
        *err = ph.err;
        st = ph.err.status;
        goto out;
    }
    DCMSEAL_ENSURE(started == nsessions, err, DCMSEAL_E_INTERNAL,
                   "cannot start %d threads", nsessions);
    DCMSEAL_ENSURE(!cli_interrupted(), err, DCMSEAL_E_INTERNAL, "interrupted");
    qsort(ph.latency, d->n, sizeof *ph.latency, cmp_double);
    row->available = 1;
    row->per_second = elapsed > 0 ? d->n / elapsed : 0;
    row->p50 = percentile(ph.latency, d->n, 0.50);
    row->p99 = percentile(ph.latency, d->n, 0.99);
    row->cpu = (tv_seconds(&ru1.ru_utime) - tv_seconds(&ru0.ru_utime) +
                tv_seconds(&ru1.ru_stime) - tv_seconds(&ru0.ru_stime)) /
               d->n;
out:
    free(ph.latency);
    return st;
}

/* ---- keys and objects --------------------------------------------------- */

/* --key NAME: its primary is the rewrap target, the enabled version below it
 * (if any) the source; nothing on the token is changed. */
static dcmseal_status keys_existing(bench_data *d, const cli_token *t, const char *name,
                                    dcmseal_error *err)
{
    dcmseal_status st;
    dcmseal_kek_info keys[64];
    size_t n = 0;
    if ((st = dcmseal_kek_find(t->session, &d->to, name, 0, err)) != DCMSEAL_OK ||
        (st = dcmseal_kek_list(t->session, keys, 64, &n, name, err)) != DCMSEAL_OK)
        return st;
    for (size_t i = n < 64 ? n : 64; i-- > 0;)
        if (keys[i].enabled && keys[i].version < d->to.version &&
            dcmseal_kek_find(t->session, &d->from, name, keys[i].version, err) == DCMSEAL_OK)
            return DCMSEAL_OK;
    d->from = d->to;
    return DCMSEAL_OK;
}

static dcmseal_status keys_scratch(bench_data *d, const cli_token *t, char *name,
                                   unsigned bits, dcmseal_error *err)
{
    dcmseal_status st;
    if ((st = dcmseal_kek_scratch_name(name, "dcmseal-bench", err)) != DCMSEAL_OK ||
        (st = dcmseal_kek_create(t->session, &d->from, name, bits, err)) != DCMSEAL_OK)
        return st;
    return dcmseal_kek_rotate(t->session, &d->to, name, 0, err);
}

/* Destroys every version of the scratch key |name| (none may be left). */
static dcmseal_status keys_destroy(const cli_token *t, const char *name, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    dcmseal_kek_info keys[8];
    size_t n = 0;
    if ((st = dcmseal_kek_list(t->session, keys, 8, &n, name, err)) != DCMSEAL_OK)
        return st;
    for (size_t i = 0; i < n && i < 8 && st == DCMSEAL_OK; i++)
        st = dcmseal_kek_destroy(t->session, name, keys[i].version, err);
    return st;
}

/* Draws the data keys and wraps them under |d->from|, untimed. */
static dcmseal_status objects_make(bench_data *d, const cli_token *t, unsigned n,
                                   dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    d->n = n;
    d->dek = OPENSSL_secure_zalloc(n * sizeof *d->dek);
    d->wrapped = calloc(n, sizeof *d->wrapped);
    d->wrapped_len = calloc(n, sizeof *d->wrapped_len);
    if (d->dek == NULL || d->wrapped == NULL || d->wrapped_len == NULL)
        return dcmseal_fail(err, DCMSEAL_E_INTERNAL, "out of memory");
    for (unsigned i = 0; i < n && st == DCMSEAL_OK; i++) {
        if (RAND_bytes(d->dek[i], DCMSEAL_DEK_LEN) != 1)
            return dcmseal_fail(err, DCMSEAL_E_INTERNAL, "no random bytes");
        st = dcmseal_kek_wrap(t->session, d->wrapped[i], DCMSEAL_WRAPPED_MAX, &d->wrapped_len[i],
                              &d->oaep, &d->from, DCMSEAL_OAEP_AUTO, d->dek[i], DCMSEAL_DEK_LEN,
                              err);
    }
    /* The origin proofs that decrypt would check, untimed. */
    if (st == DCMSEAL_OK && d->from.has_origin) {
        d->msg = calloc(n, sizeof *d->msg);
        d->proof = calloc(n, sizeof *d->proof);
        if (d->msg == NULL || d->proof == NULL)
            return dcmseal_fail(err, DCMSEAL_E_INTERNAL, "out of memory");
        for (unsigned i = 0; i < n && st == DCMSEAL_OK; i++) {
            if (RAND_bytes(d->msg[i], sizeof d->msg[i]) != 1)
                return dcmseal_fail(err, DCMSEAL_E_INTERNAL, "no random bytes");
            st = dcmseal_origin_sign(t->session, d->proof[i], d->from.name, d->from.version,
                                     d->msg[i], sizeof d->msg[i], err);
        }
    }
    /* One rewrap says whether the token keeps the key inside. */
    if (st == DCMSEAL_OK) {
        uint8_t out[DCMSEAL_WRAPPED_MAX];
        size_t out_len;
        dcmseal_oaep used;
        st = dcmseal_kek_rewrap(t->session, out, sizeof out, &out_len, &used, &d->in_token,
                                &d->from, d->oaep, d->wrapped[0], d->wrapped_len[0], &d->to,
                                DCMSEAL_OAEP_AUTO, err);
        d->refusal = dcmseal_session_get0_rewrap_refusal(t->session);
    }
    return st;
}

static void objects_free(bench_data *d)
{
    if (d->dek != NULL)
        OPENSSL_secure_clear_free(d->dek, (size_t)d->n * sizeof *d->dek);
    free(d->wrapped);
    free(d->wrapped_len);
    free(d->msg);
    free(d->proof);
}

/* Whether |op| can run: in-token rewrap needs a token that does it, proofs
 * an origin key. */
static int op_available(const bench_data *d, bench_op op)
{
    if (op == OP_REWRAP_TOKEN)
        return d->in_token;
    if (op == OP_PROVE || op == OP_CHECK || op == OP_UNWRAP_CHECK || op == OP_REWRAP_PROOFS)
        return d->proof != NULL;
    return 1;
}

/* ---- output ------------------------------------------------------------- */

static void print_head(const bench_opts *o, const bench_data *d, const char *label,
                       int scratch)
{
    printf("dcmseal bench: token '%s', %s key '%s' v%u -> v%u, RSA-%u, RSA-OAEP %s, "
           "%u %s\n",
           label, scratch ? "scratch" : "existing", d->from.name, d->from.version,
           d->to.version, d->to.bits, dcmseal_oaep_name(d->oaep), o->objects,
           cli_plural(o->objects, "object", "objects"));
    printf("%8s  %-20s %10s %9s %9s %10s\n", "sessions", "operation", "objects/s", "p50 ms",
           "p99 ms", "vs unwrap");
}

static void print_row(const bench_row *r, double unwrap_rate, const bench_data *d)
{
    if (!r->available) {
        if (r->op == OP_REWRAP_TOKEN)
            printf("%8d  %-20s %10s   (refused: %s; rewrap goes via host)\n", r->sessions,
                   op_title[r->op], "n/a", d->refusal != NULL ? d->refusal : "see hsm-check");
        else
            printf("%8d  %-20s %10s   (the key has no origin key: see `dcmseal key upgrade`)\n",
                   r->sessions, op_title[r->op], "n/a");
        return;
    }
    printf("%8d  %-20s %10.1f %9.2f %9.2f %10.2f\n", r->sessions, op_title[r->op],
           r->per_second, r->p50 * 1e3, r->p99 * 1e3,
           unwrap_rate > 0 ? r->per_second / unwrap_rate : 0);
    fflush(stdout);
}

static void print_json(const bench_opts *o, const bench_data *d, const char *label,
                       int scratch, const bench_row *rows, size_t nrows)
{
    double unwrap_rate = 0;
    fputs("{\"token\":", stdout);
    cli_json_string(stdout, label);
    fputs(",\"key\":", stdout);
    cli_json_string(stdout, d->from.name);
    printf(",\"scratch\":%s,\"kept\":%s,\"from_version\":%u,\"to_version\":%u,\"bits\":%u,"
           "\"oaep\":\"%s\",\"objects\":%u,\"in_token_rewrap\":%s,\"rewrap_refusal\":",
           scratch ? "true" : "false", scratch && o->keep ? "true" : "false", d->from.version,
           d->to.version, d->to.bits, dcmseal_oaep_name(d->oaep), o->objects,
           d->in_token ? "true" : "false");
    if (d->refusal != NULL)
        cli_json_string(stdout, d->refusal);
    else
        fputs("null", stdout);
    fputs(",\"results\":[", stdout);
    for (size_t i = 0; i < nrows; i++) {
        const bench_row *r = &rows[i];
        if (r->op == OP_UNWRAP)
            unwrap_rate = r->per_second;
        printf("%s{\"sessions\":%d,\"operation\":\"%s\",", i ? "," : "", r->sessions,
               op_id[r->op]);
        if (r->available)
            printf("\"objects_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
                   "\"ratio_to_unwrap\":%.3f,\"cpu_ms_per_object\":%.4f}",
                   r->per_second, r->p50 * 1e3, r->p99 * 1e3,
                   unwrap_rate > 0 ? r->per_second / unwrap_rate : 0, r->cpu * 1e3);
        else
            fputs("\"objects_per_s\":null,\"p50_ms\":null,\"p99_ms\":null,"
                  "\"ratio_to_unwrap\":null,\"cpu_ms_per_object\":null}", stdout);
    }
    fputs("]}\n", stdout);
}

/* ---- the command -------------------------------------------------------- */

/* Runs every operation at every session count, printing table rows as they
 * come (the JSON object at the end). */
static dcmseal_status bench_all(const bench_opts *o, const bench_data *d, const cli_token *t,
                                bench_row *rows, size_t *nrows, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    dcmseal_session_t *sessions[CLI_JOBS_MAX] = {t->session};
    int most = 1, opened = 1;
    for (size_t i = 0; i < o->ncounts; i++)
        most = o->counts[i] > most ? o->counts[i] : most;
    /* Sessions open before timing starts; the first is cli_token_open's. */
    for (; opened < most; opened++)
        DCMSEAL_GUARD(dcmseal_session_open(&sessions[opened], t->token, err));
    /* Each session finds both key versions once (then caches their handles),
     * as a rewrap worker does at its first object: not what is measured. */
    for (int i = 0; i < most; i++) {
        DCMSEAL_GUARD(bench_one(sessions[i], d, OP_UNWRAP, 0, err));
        DCMSEAL_GUARD(bench_one(sessions[i], d, OP_WRAP, 0, err));
    }
    *nrows = 0;
    for (size_t i = 0; i < o->ncounts; i++) {
        double unwrap_rate = 0;
        for (int op = 0; op < OP_COUNT; op++) {
            bench_row *r = &rows[(*nrows)++];
            if (!op_available(d, (bench_op)op))
                *r = (bench_row){.sessions = o->counts[i], .op = (bench_op)op};
            else
                DCMSEAL_GUARD(bench_phase_run(r, d, sessions, o->counts[i], op, err));
            if (op == OP_UNWRAP)
                unwrap_rate = r->per_second;
            if (!o->json)
                print_row(r, unwrap_rate, d);
        }
    }
out:
    for (int i = 1; i < opened; i++)
        dcmseal_session_free(sessions[i]);
    return st;
}

int cli_cmd_bench(const cli_opts *opts)
{
    bench_opts o;
    cli_token t;
    dcmseal_error err;
    bench_data d;
    bench_row rows[BENCH_COUNTS_MAX * OP_COUNT];
    size_t nrows = 0;
    char scratch[DCMSEAL_KEK_NAME_MAX + 1] = "", label[33];
    dcmseal_status st;
    int rc = bench_options(&o, opts);
    if (rc != EX_OK)
        return rc;
    if ((rc = cli_token_open(&t, o.token, "token")) != EX_OK)
        return rc;
    snprintf(label, sizeof label, "%s", dcmseal_token_get0_label(t.token));
    memset(&d, 0, sizeof d);
    /* From here a scratch key may exist: Ctrl-C waits for its removal. */
    cli_interrupt_arm("removing scratch keys");
    st = o.key != NULL ? keys_existing(&d, &t, o.key, &err)
                       : keys_scratch(&d, &t, scratch, o.bits, &err);
    if (st == DCMSEAL_OK)
        st = objects_make(&d, &t, o.objects, &err);
    if (st == DCMSEAL_OK && !o.json)
        print_head(&o, &d, label, o.key == NULL);
    if (st == DCMSEAL_OK)
        st = bench_all(&o, &d, &t, rows, &nrows, &err);
    if (st != DCMSEAL_OK)
        rc = cli_report("bench", &err);
    else if (o.json)
        print_json(&o, &d, label, o.key == NULL, rows, nrows);
    objects_free(&d);
    if (scratch[0] != '\0' && o.keep && d.from.version != 0) {
        fprintf(stderr,
                "dcmseal: bench: kept scratch key '%s' (v1, v2); to remove it: for v in 1 2; "
                "do dcmseal key disable %s $v; done; for v in 1 2; do dcmseal key destroy %s "
                "$v --no-archive-check; done\n",
                scratch, scratch, scratch);
    } else if (scratch[0] != '\0') {
        dcmseal_error derr;
        if (keys_destroy(&t, scratch, &derr) != DCMSEAL_OK) {
            fprintf(stderr, "dcmseal: bench: scratch key '%s' may be left on the token: %s\n",
                    scratch, derr.message);
            if (rc == EX_OK)
                rc = cli_exit_code(derr.status);
        }
    }
    cli_token_close(&t);
    cli_interrupt_disarm();
    return rc;
}
