/* A walk whose files are handled by worker threads. The walk runs on the
 * calling thread and feeds a bounded queue, so memory stays bounded however
 * large the tree; each worker has its own context (for example its own
 * PKCS#11 session: the token's private-key operations are the bottleneck,
 * and one session per thread is what lets a token use its cores). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli.h"

#define QUEUE_LEN 256

/* A queued file: its path, and where the relative part starts. */
typedef struct item {
    char *path;
    size_t rel;
} item;

typedef struct pool {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    item queue[QUEUE_LEN];
    size_t head, count;
    int done, rc;
    const cli_pool_ops *ops;
} pool;

typedef struct worker_arg {
    pool *p;
    void *ctx;
} worker_arg;

static int enqueue(const cli_entry *e, void *ctx)
{
    pool *p = ctx;
    int rc = p->ops->visit(e, p->ops->ctx);
    if (rc == CLI_POOL_SKIP)
        return EX_OK;
    if (e->kind != CLI_ENTRY_FILE || rc != EX_OK)
        return rc;
    char *copy = strdup(e->path);
    if (copy == NULL)
        return EX_OSERR;
    pthread_mutex_lock(&p->lock);
    while (p->count == QUEUE_LEN)
        pthread_cond_wait(&p->not_full, &p->lock);
    p->queue[(p->head + p->count++) % QUEUE_LEN] = (item){copy, (size_t)(e->rel - e->path)};
    pthread_cond_signal(&p->not_empty);
    pthread_mutex_unlock(&p->lock);
    return EX_OK;
}

static void *work(void *arg)
{
    worker_arg *w = arg;
    pool *p = w->p;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        while (p->count == 0 && !p->done)
            pthread_cond_wait(&p->not_empty, &p->lock);
        if (p->count == 0) {
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        item it = p->queue[p->head];
        p->head = (p->head + 1) % QUEUE_LEN;
        p->count--;
        pthread_cond_signal(&p->not_full);
        pthread_mutex_unlock(&p->lock);

        const cli_entry e = {.path = it.path, .rel = it.path + it.rel, .kind = CLI_ENTRY_FILE};
        int rc = p->ops->file(&e, w->ctx);
        free(it.path);
        if (rc != EX_OK) {
            pthread_mutex_lock(&p->lock);
            p->rc = rc;
            pthread_mutex_unlock(&p->lock);
        }
    }
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
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.not_empty, NULL);
    pthread_cond_init(&p.not_full, NULL);
    for (; started < jobs; started++) {
        args[started] = (worker_arg){&p, workers[started]};
        if (pthread_create(&tid[started], NULL, work, &args[started]) != 0)
            break;
    }
    int rc = started > 0 ? cli_walk(paths, npaths, wo, enqueue, &p) : EX_OSERR;
    pthread_mutex_lock(&p.lock);
    p.done = 1;
    pthread_cond_broadcast(&p.not_empty);
    pthread_mutex_unlock(&p.lock);
    for (int i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    pthread_cond_destroy(&p.not_full);
    pthread_cond_destroy(&p.not_empty);
    pthread_mutex_destroy(&p.lock);
    return rc == CLI_WALK_STOP || p.rc == EX_OK ? rc : p.rc;
}
