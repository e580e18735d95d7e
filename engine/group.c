/* Group commit (group.h): the shared flush. */
#define _GNU_SOURCE /* syncfs, sync_file_range */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "group.h"

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
        struct stat sb;
        if (m->st != DCMSEAL_OK)
            continue;
        if (fstat(m->fd, &sb) == 0)
            m->dev = (uint64_t)sb.st_dev;
        else
            m->st = dcmseal_fail(m->err, DCMSEAL_E_IO, "stat failed: %s", strerror(errno));
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
