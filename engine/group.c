/* Group commit (group.h): a leader gathers and commits, followers wait on
 * their own condition. */
#define _GNU_SOURCE /* syncfs, sync_file_range */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "group.h"

void commit_group_init(commit_group *g, commit_fn commit, unsigned max_files,
                       uint64_t max_bytes, long max_wait_ns)
{
    pthread_condattr_t ca;
    *g = (commit_group){.commit = commit, .max_files = max_files ? max_files : UINT_MAX,
                        .max_bytes = max_bytes ? max_bytes : UINT64_MAX,
                        .max_wait_ns = max_wait_ns > 0 ? max_wait_ns : 0};
    pthread_mutex_init(&g->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->full, &ca);
    pthread_condattr_destroy(&ca);
}

void commit_group_destroy(commit_group *g)
{
    pthread_cond_destroy(&g->full);
    pthread_mutex_destroy(&g->lock);
}

/* Reverses a list linked by |next|. */
static commit_member *reversed(commit_member *m)
{
    commit_member *out = NULL, *next;
    for (; m != NULL; m = next) {
        next = m->next;
        m->next = out;
        out = m;
    }
    return out;
}

/* Whether what has joined fills a group. Called with the lock held. */
static int is_full(const commit_group *g)
{
    return g->joined_files >= g->max_files || g->joined_bytes >= g->max_bytes;
}

/* Takes the oldest members of g->joined that fit the budget (one at least)
 * off it, oldest first; the newer rest stay for the next commit. Called
 * with the lock held. */
static commit_member *take(commit_group *g)
{
    commit_member *list = reversed(g->joined), **end = &list;
    unsigned files = 0;
    uint64_t bytes = 0;
    for (; *end != NULL; end = &(*end)->next, files++) {
        if (files == g->max_files || (files > 0 && (bytes >= g->max_bytes ||
                                                 (*end)->bytes > g->max_bytes - bytes)))
            break;
        bytes += (*end)->bytes;
    }
    g->joined = reversed(*end);
    g->joined_files -= files;
    g->joined_bytes -= bytes;
    *end = NULL;
    return list;
}

/* Lets the group fill: until it is full, or the oldest member has waited
 * max_wait_ns. Called with the lock held, by the committer. */
static void gather(commit_group *g)
{
    if (g->max_wait_ns == 0 || g->joined == NULL)
        return;
    const commit_member *oldest = g->joined;
    while (oldest->next != NULL)
        oldest = oldest->next;
    struct timespec until = oldest->at;
    until.tv_nsec += g->max_wait_ns % 1000000000L;
    until.tv_sec += g->max_wait_ns / 1000000000L + until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    g->gathering = 1;
    while (!is_full(g) && pthread_cond_timedwait(&g->full, &g->lock, &until) == 0)
        ;
    g->gathering = 0;
}

dcmseal_status commit_group_join(commit_group *g, commit_member *m)
{
    m->done = 0;
    clock_gettime(CLOCK_MONOTONIC, &m->at);
    pthread_cond_init(&m->wake, NULL);
    pthread_mutex_lock(&g->lock);
    m->next = g->joined;
    g->joined = m;
    g->joined_files++;
    g->joined_bytes += m->bytes;
    if (g->gathering && is_full(g))
        pthread_cond_signal(&g->full);
    /* Whoever finds no commit running commits the oldest of those that
     * joined, its own file among them or not; the rest wait, and the next
     * commit is started by one of them, woken when this one ends. */
    while (!m->done) {
        if (g->committing) {
            pthread_cond_wait(&m->wake, &g->lock);
            continue;
        }
        g->committing = 1;
        gather(g);
        commit_member *list = take(g), *next;
        pthread_mutex_unlock(&g->lock);
        g->commit(list);
        pthread_mutex_lock(&g->lock);
        g->commits++;
        /* Under the lock: a member's thread, and its stack, stay until it
         * sees |done| after this. */
        for (commit_member *p = list; p != NULL; p = next) {
            next = p->next;
            p->done = 1;
            g->members++;
            if (p != m)
                pthread_cond_signal(&p->wake);
        }
        g->committing = 0;
        if (g->joined != NULL && !m->done)
            continue; /* still ours to commit, with the next group */
        if (g->joined != NULL)
            pthread_cond_signal(&g->joined->wake);
    }
    pthread_mutex_unlock(&g->lock);
    pthread_cond_destroy(&m->wake);
    return m->st;
}

void commit_flush(commit_member *list, int data_only)
{
    commit_member *m, *p;
    size_t live = 0;
    for (m = list; m != NULL; m = m->next)
        live += m->st == DCMSEAL_OK;
    if (live == 1) {
        for (m = list; m != NULL; m = m->next)
            if (m->st == DCMSEAL_OK && (data_only ? fdatasync(m->fd) : fsync(m->fd)) != 0)
                m->st = dcmseal_fail(m->err, DCMSEAL_E_IO, "fsync failed: %s", strerror(errno));
        return;
    }
    for (m = list; m != NULL; m = m->next) {
        int first = m->st == DCMSEAL_OK;
        for (p = list; first && p != m; p = p->next)
            first = !(p->st == DCMSEAL_OK && p->dev == m->dev);
        if (!first || syncfs(m->fd) == 0)
            continue;
        const int e = errno;
        for (p = m; p != NULL; p = p->next)
            if (p->st == DCMSEAL_OK && p->dev == m->dev)
                p->st = dcmseal_fail(p->err, DCMSEAL_E_IO, "flush failed: %s", strerror(e));
    }
    for (m = list; m != NULL; m = m->next)
        if (m->st == DCMSEAL_OK && sync_file_range(m->fd, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE) != 0)
            m->st = dcmseal_fail(m->err, DCMSEAL_E_IO, "flush failed: %s", strerror(errno));
}
