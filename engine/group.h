/* Group commit: many files made durable together, with one flush of each
 * file system instead of one per file, as databases commit transactions.
 * The caller gathers the files (the CLI's committer takes what its workers
 * finished); outfile.c and rewrap.c each run their own steps around
 * commit_flush. */
#ifndef DCMSEAL_ENGINE_GROUP_H
#define DCMSEAL_ENGINE_GROUP_H

#include <stdint.h>

#include "dcmseal/error.h"

/* One file of a group: its steps go on only while |st| is DCMSEAL_OK, and
 * a failure is told in |err|. */
typedef struct commit_member {
    void *item; /* the outfile, the rewrap report */
    int fd;     /* the file to flush */
    uint64_t dev; /* its file system (commit_flush's) */
    dcmseal_error *err;
    dcmseal_status st;
    struct commit_member *next;
} commit_member;

/* Makes the data of each member of |list| that has not failed durable (its
 * |fd|): fsync (fdatasync with |data_only|) when there is one, else one
 * syncfs per file system, then each file's own write-back errors since it
 * was opened, which sync_file_range reports (and, with nothing left to
 * write, waits for nothing) and syncfs does not. A failure fails the
 * members it concerns. */
void commit_flush(commit_member *list, int data_only);

#endif
