/* Walking the paths a command is given. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>

#include "cli.h"

/* nftw has no context argument, hence one walk per thread. */
typedef struct walk_state {
    const cli_walk_opts *wo;
    int (*fn)(const cli_entry *e, void *ctx);
    void *ctx;
    size_t root_len;
    int rc;
} walk_state;

static _Thread_local walk_state *cur;

/* FNV-1a: fixed for all time, so every machine of a job array splits a tree
 * the same way. */
static uint64_t path_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3u;
    return h;
}

/* Hands |e| to the callback unless the shard leaves it out. */
static int deliver(walk_state *w, cli_entry *e)
{
    if (e->kind != CLI_ENTRY_DIR && w->wo->shard_n > 0 &&
        path_hash(e->rel) % w->wo->shard_n != w->wo->shard_k - 1)
        return EX_OK;
    int rc = w->fn(e, w->ctx);
    if (rc != EX_OK && rc != CLI_WALK_STOP)
        w->rc = rc;
    return rc;
}

/* Sorts what the walk found into the four kinds, with a reason. */
static void classify(cli_entry *e, int type, char *why, size_t cap)
{
    switch (type) {
    case FTW_D:
        e->kind = CLI_ENTRY_DIR;
        return;
    case FTW_F: {
        int temp = S_ISREG(e->sb->st_mode) ? dcmseal_temp_state(e->path) : DCMSEAL_TEMP_NONE;
        e->stale = temp == DCMSEAL_TEMP_STALE;
        if (!S_ISREG(e->sb->st_mode))
            e->why = "not a regular file";
        else if (e->stale)
            e->why = "temporary file left by an interrupted dcmseal run";
        else if (temp == DCMSEAL_TEMP_LIVE)
            e->why = "temporary file of a dcmseal run in progress";
        else
            e->kind = CLI_ENTRY_FILE;
        return;
    }
    case FTW_SL:
        e->why = "symbolic link, not followed (see --follow-symlinks)";
        return;
    case FTW_SLN:
        e->why = "symbolic link to nothing";
        return;
    default: { /* FTW_DNR, FTW_NS */
        DIR *d = opendir(e->path);
        int err = d ? EACCES : errno;
        if (d)
            closedir(d);
        snprintf(why, cap, "cannot read: %s", strerror(err));
        e->kind = CLI_ENTRY_ERROR;
        e->why = why;
        e->rc = EX_IOERR;
    }
    }
}

static int visit(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    char why[160];
    cli_entry e = {.path = path, .kind = CLI_ENTRY_IGNORED, .sb = sb};
    e.rel = ftw->level == 0 ? "" : path + cur->root_len;
    while (*e.rel == '/')
        e.rel++;
    classify(&e, type, why, sizeof why);
    /* The walk goes on after an error; only the callback stops it. */
    return deliver(cur, &e) == CLI_WALK_STOP;
}

/* One path from the command line. */
static int walk_one(walk_state *w, const char *path)
{
    struct stat sb;
    char why[160];
    cli_entry e = {.path = path, .rel = path, .kind = CLI_ENTRY_IGNORED, .sb = &sb};
    if ((w->wo->follow ? stat(path, &sb) : lstat(path, &sb)) != 0) {
        snprintf(why, sizeof why, "%s", strerror(errno));
        e.kind = CLI_ENTRY_ERROR, e.why = why, e.rc = EX_IOERR;
    } else if (S_ISDIR(sb.st_mode) && !w->wo->recursive) {
        e.kind = CLI_ENTRY_ERROR, e.why = "is a directory (use -r)", e.rc = EX_USAGE;
    } else if (S_ISDIR(sb.st_mode)) {
        /* Without trailing slashes, so that rel never starts with one. */
        char *root = strdup(path);
        if (root == NULL)
            return EX_OSERR;
        for (size_t n = strlen(root); n > 1 && root[n - 1] == '/'; n--)
            root[n - 1] = '\0';
        w->root_len = strlen(root);
        walk_state *saved = cur;
        cur = w;
        int rc = nftw(root, visit, 32, w->wo->follow ? 0 : FTW_PHYS);
        cur = saved;
        int e2 = errno;
        free(root);
        if (rc > 0)
            return CLI_WALK_STOP;
        if (rc == 0)
            return EX_OK;
        snprintf(why, sizeof why, "walk failed: %s", strerror(e2));
        e.kind = CLI_ENTRY_ERROR, e.why = why, e.rc = EX_IOERR, e.sb = NULL;
    } else {
        classify(&e, S_ISLNK(sb.st_mode) ? FTW_SL : FTW_F, why, sizeof why);
    }
    return deliver(w, &e);
}

int cli_walk(const char *const *paths, int npaths, const cli_walk_opts *wo,
             int (*fn)(const cli_entry *e, void *ctx), void *ctx)
{
    walk_state w = {.wo = wo, .fn = fn, .ctx = ctx, .rc = EX_OK};
    for (int i = 0; i < npaths; i++)
        if (walk_one(&w, paths[i]) == CLI_WALK_STOP)
            return CLI_WALK_STOP;
    return w.rc;
}
