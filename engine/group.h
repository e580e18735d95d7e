/* Group commit: threads that each finish one file hand it to whichever of
 * them finds no commit running, which commits the files that have joined
 * (up to a count and a byte budget) with one set of flushes; the others
 * wait for their own group. The committer first lets the group fill until
 * it is full or its oldest file has waited |max_wait| (the time bound), so
 * that files that finish a little apart still share a flush: on a fast
 * disk the previous commit alone gathers two or three. Used by outfile.c
 * (outputs of tree runs) and rewrap.c (key slots rewritten in place). */
#ifndef DCMSEAL_ENGINE_GROUP_H
#define DCMSEAL_ENGINE_GROUP_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "dcmseal/error.h"

/* One file waiting for its group, on the stack of the thread finishing it.
 * Each has a condition of its own, so that a commit wakes the threads it
 * finished and one to commit next, not every thread that waits. */
typedef struct commit_member {
    void *item;           /* the commit function's */
    int fd;               /* the file to flush (commit_flush) */
    uint64_t dev;         /* and its file system */
    struct timespec at;   /* when it joined */
    uint64_t bytes;       /* what it weighs against the byte budget */
    dcmseal_error *err;
    dcmseal_status st;    /* the commit sets it for each member */
    int done;
    pthread_cond_t wake;
    struct commit_member *next;
} commit_member;

/* Commits |list| (linked by |next|, oldest first): sets each member's |st|. */
typedef void (*commit_fn)(commit_member *list);

typedef struct commit_group {
    pthread_mutex_t lock;
    commit_member *joined; /* for the next commit, newest first */
    unsigned joined_files;
    uint64_t joined_bytes;
    int committing, gathering;
    pthread_cond_t full; /* signalled to the gathering committer */
    unsigned max_files;   /* per commit (0 given: no limit) */
    uint64_t max_bytes;   /* per commit (0 given: no limit); one alone may exceed it */
    long max_wait_ns;     /* how long a group may gather; 0: no wait */
    commit_fn commit;
    uint64_t commits, members; /* counted, for the tests' and bench's eyes */
} commit_group;

void commit_group_init(commit_group *g, commit_fn commit, unsigned max_files,
                       uint64_t max_bytes, long max_wait_ns);
void commit_group_destroy(commit_group *g);
/* Adds |m| (item, bytes, err and st set; st not DCMSEAL_OK: it is passed
 * through the commit untouched) and returns once its group is committed,
 * with m->st. */
dcmseal_status commit_group_join(commit_group *g, commit_member *m);

/* Makes the data of each member of |list| that has not failed durable (its
 * |fd|): fsync (fdatasync with |data_only|) when there is one, else one
 * syncfs per file system (|dev|), then each file's own write-back errors
 * since it was opened, which sync_file_range reports (and, with nothing
 * left to write, waits for nothing) and syncfs does not. A failure fails
 * the members it concerns. */
void commit_flush(commit_member *list, int data_only);

#endif
