/* A walk whose files are handled by worker threads. The walk runs on the
 * calling thread and feeds a bounded queue, so memory stays bounded however
 * large the tree; each worker has its own context (for example its own
 * PKCS#11 session: the token's private-key operations are the bottleneck,
 * and one session per thread is what lets a token use its cores). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* A queued file: its place in the walk, its directory (a reference),
 * where the relative part of its path and its name start, and the path. */
typedef struct item {
    unsigned long seq;
    cli_dir *dir;
    size_t rel, name;
    char path[];
} item;

typedef struct pool {
    cli_queue q;
    pthread_mutex_t lock; /* guards rc */
    int rc;
    const cli_pool_ops *ops;
    unsigned long seq; /* the next entry's, on the walking thread */
} pool;

typedef struct worker_arg {
    pool *p;
    void *ctx;
} worker_arg;

int cli_queue_init(cli_queue *q, size_t cap)
{
    *q = (cli_queue){.cap = cap};
    q->items = calloc(cap, sizeof *q->items);
    q->at = calloc(cap, sizeof *q->at);
    if (q->items == NULL || q->at == NULL) {
        free(q->items);
        free(q->at);
        return EX_OSERR;
    }
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->gathered, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&q->not_full, NULL);
    return EX_OK;
}

void cli_queue_push(cli_queue *q, void *it)
{
    pthread_mutex_lock(&q->lock);
    while (q->count == q->cap) {
        q->pushers++;
        pthread_cond_wait(&q->not_full, &q->lock);
        q->pushers--;
    }
    const size_t i = (q->head + q->count++) % q->cap;
    q->items[i] = it;
    clock_gettime(CLOCK_MONOTONIC, &q->at[i]);
    /* A gathering taker is woken once, when what it waits for is there;
     * the other takers wait for its turn to end, not for each item. */
    if (!q->gathering)
        pthread_cond_signal(&q->not_empty);
    else if (q->count == q->want)
        pthread_cond_signal(&q->gathered);
    pthread_mutex_unlock(&q->lock);
}

/* Takes up to |max| items into |items|; called with the lock held. */
static size_t take(cli_queue *q, void **items, size_t max)
{
    size_t n = 0;
    for (; n < max && q->count > 0; n++) {
        items[n] = q->items[q->head];
        q->head = (q->head + 1) % q->cap;
        q->count--;
    }
    /* A producer that waits for room is woken once half the queue is
     * free, not for each item taken: it then refills in one go, instead
     * of a wake-up and a sleep per file. */
    if (n > 0 && q->pushers > 0 && q->count <= q->cap / 2)
        pthread_cond_broadcast(&q->not_full);
    return n;
}

void *cli_queue_pop(cli_queue *q)
{
    void *it = NULL;
    pthread_mutex_lock(&q->lock);
    while (q->count == 0 && !q->closed)
        pthread_cond_wait(&q->not_empty, &q->lock);
    take(q, &it, 1);
    pthread_mutex_unlock(&q->lock);
    return it;
}

size_t cli_queue_pop_many(cli_queue *q, void **items, size_t max, long wait_ns)
{
    pthread_mutex_lock(&q->lock);
    /* One taker gathers at a time; the others wait for what comes after
     * its group. */
    while ((q->count == 0 || q->gathering) && !q->closed)
        pthread_cond_wait(&q->not_empty, &q->lock);
    if (wait_ns > 0 && q->count > 0 && q->count < max && !q->closed) {
        struct timespec until = q->at[q->head];
        until.tv_nsec += wait_ns % 1000000000L;
        until.tv_sec += wait_ns / 1000000000L + until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        q->gathering = 1;
        q->want = max < q->cap ? max : q->cap;
        while (q->count < q->want && !q->closed &&
               pthread_cond_timedwait(&q->gathered, &q->lock, &until) == 0)
            ;
        q->gathering = 0;
    }
    size_t n = take(q, items, max);
    if (q->count > 0)
        pthread_cond_signal(&q->not_empty); /* the next group's taker */
    pthread_mutex_unlock(&q->lock);
    return n;
}

void cli_queue_close(cli_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = 1;
    pthread_cond_broadcast(&q->not_empty);
    pthread_cond_broadcast(&q->gathered);
    pthread_mutex_unlock(&q->lock);
}

void cli_queue_destroy(cli_queue *q)
{
    pthread_cond_destroy(&q->not_full);
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->gathered);
    pthread_mutex_destroy(&q->lock);
    free(q->items);
    free(q->at);
}

static int enqueue(const cli_entry *walked, void *ctx)
{
    pool *p = ctx;
    cli_entry e = *walked;
    e.seq = p->seq++;
    int rc = p->ops->visit(&e, p->ops->ctx);
    if (rc == CLI_POOL_SKIP)
        return EX_OK;
    if (e.kind != CLI_ENTRY_FILE || rc != EX_OK)
        return rc;
    size_t len = strlen(e.path);
    item *it = malloc(sizeof *it + len + 1);
    if (it == NULL) {
        /* Stop: an entry that no one will tell of would hold up the rest. */
        pthread_mutex_lock(&p->lock);
        p->rc = EX_OSERR;
        pthread_mutex_unlock(&p->lock);
        return CLI_WALK_STOP;
    }
    it->seq = e.seq;
    it->dir = cli_dir_ref(e.dir);
    it->rel = (size_t)(e.rel - e.path);
    it->name = (size_t)(e.name - e.path);
    memcpy(it->path, e.path, len + 1);
    cli_queue_push(&p->q, it);
    return EX_OK;
}

static void *work(void *arg)
{
    worker_arg *w = arg;
    pool *p = w->p;
    item *it;
    while ((it = cli_queue_pop(&p->q)) != NULL) {
        const cli_entry e = {.path = it->path, .rel = it->path + it->rel, .dir = it->dir,
                             .name = it->path + it->name, .kind = CLI_ENTRY_FILE,
                             .seq = it->seq};
        int rc = p->ops->file(&e, w->ctx);
        cli_dir_unref(it->dir);
        free(it);
        if (rc != EX_OK) {
            pthread_mutex_lock(&p->lock);
            p->rc = rc;
            pthread_mutex_unlock(&p->lock);
        }
    }
    return NULL;
}

int cli_default_jobs(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > CLI_JOBS_MAX ? CLI_JOBS_MAX : (int)n;
}

int cli_pool_walk(const char *const *paths, int npaths, const cli_walk_opts *wo, int jobs,
                  const cli_pool_ops *ops, void **workers)
{
    pool p = {.ops = ops};
    pthread_t tid[CLI_JOBS_MAX];
    worker_arg args[CLI_JOBS_MAX];
    int started = 0;
    if (cli_queue_init(&p.q, CLI_QUEUE_LEN) != EX_OK)
        return EX_OSERR;
    pthread_mutex_init(&p.lock, NULL);
    for (; started < jobs; started++) {
        args[started] = (worker_arg){&p, workers[started]};
        if (pthread_create(&tid[started], NULL, work, &args[started]) != 0)
            break;
    }
    int rc = started > 0 ? cli_walk(paths, npaths, wo, enqueue, &p) : EX_OSERR;
    cli_queue_close(&p.q);
    for (int i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    cli_queue_destroy(&p.q);
    pthread_mutex_destroy(&p.lock);
    return rc == CLI_WALK_STOP || p.rc == EX_OK ? rc : p.rc;
}
