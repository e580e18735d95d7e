/* Walking the paths a command is given. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>

#include "cli.h"

/* nftw has no context argument: one walk at a time. */
static struct {
    int (*fn)(const char *path, void *ctx);
    void *ctx;
    int rc;
} walk;

static int visit(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)ftw;
    int rc = EX_OK;
    if (type == FTW_F)
        rc = walk.fn(path, walk.ctx);
    else if (type == FTW_SL)
        fprintf(stderr, "dcmseal: %s: symbolic link, not followed\n", path);
    else if (type == FTW_DNR || type == FTW_NS) {
        fprintf(stderr, "dcmseal: %s: cannot read\n", path);
        rc = EX_IOERR;
    }
    if (rc != EX_OK)
        walk.rc = rc;
    return 0;
}

int cli_walk(const char *const *paths, int npaths, int recursive,
             int (*fn)(const char *path, void *ctx), void *ctx)
{
    walk.fn = fn;
    walk.ctx = ctx;
    walk.rc = EX_OK;
    for (int i = 0; i < npaths; i++) {
        struct stat sb;
        if (lstat(paths[i], &sb) != 0) {
            fprintf(stderr, "dcmseal: %s: %s\n", paths[i], strerror(errno));
            walk.rc = EX_IOERR;
        } else if (S_ISDIR(sb.st_mode) && !recursive) {
            fprintf(stderr, "dcmseal: %s: is a directory (use -r)\n", paths[i]);
            walk.rc = EX_USAGE;
        } else if (S_ISDIR(sb.st_mode)) {
            if (nftw(paths[i], visit, 32, FTW_PHYS) != 0) {
                fprintf(stderr, "dcmseal: %s: %s\n", paths[i], strerror(errno));
                walk.rc = EX_IOERR;
            }
        } else {
            /* A path named on the command line is taken as given, link or not. */
            int rc = fn(paths[i], ctx);
            if (rc != EX_OK)
                walk.rc = rc;
        }
    }
    return walk.rc;
}
