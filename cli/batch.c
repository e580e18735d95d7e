/* One command over many files: worker threads with a token session each,
 * the reasons to stop early, and what the operator sees while it runs (a
 * progress line on a terminal), afterwards (the summary) and for the record
 * (--report, one JSON object per line). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* Finishers: threads that run the blocking end of each file's work (the
 * flushes of an output and its directory, the flushes around a rewritten
 * key slot) while the workers, whose token sessions bound a run, go on to
 * the next file. Several, because the file system commits concurrent
 * fsyncs together: on ext4 16 threads flushed 1,000 files of 256 KiB in
 * 0.7 ms a file, one thread in 5 ms. With group commit
 * (cli_batch_cmd.group) each takes every finished file at once, so that no
 * file costs a thread's wake-up and sleep, and a few suffice: while one
 * commits its group, the next gathers (concealed names put each file in a
 * folder of its own, whose flushes would otherwise queue up behind one
 * thread). The queue bounds how many files (each an open input and output)
 * wait at once. */
#define FINISHERS 16
#define GROUP_FINISHERS 4
#define FINISHERS_MAX 128

/* A file on its way through a worker and perhaps a finisher. */
typedef struct job {
    cli_entry e; /* path and rel point into |path| */
    cli_result r;
    char path[];
} job;

typedef struct batch {
    const cli_batch_cmd *cmd;
    const cli_opts *o;
    cli_walk_opts wo;
    FILE *report;
    int progress; /* a live line on stderr */
    struct timespec start;

    pthread_mutex_t lock; /* guards what follows, and stderr */
    pthread_cond_t finished_cond;
    int finished;
    int token_lost;
    int rc; /* the highest exit code of a failed file */
    unsigned long done, opaque, skipped, ignored, failed, host_path, not_started;
    unsigned long unproven, upgraded; /* done without an origin proof; given one */
    unsigned long dirs_failed; /* output directories that could not be made */
    unsigned long groups, grouped; /* group commits, and the files they finished */
    uint64_t bytes, skipped_bytes;
    /* From the counting walk, for the progress line. */
    unsigned long total_files;
    uint64_t total_bytes;
    int total_known;

    cli_queue finishing; /* files waiting for a finisher */
    size_t group_max;    /* files a finisher takes at once */

    /* -o: DST's own directory, and the folders below it that outputs made
     * for themselves (concealed names, restored original paths), shared so
     * that each is made once and made durable by whoever commits into it
     * first (cli_dir_durable). */
    cli_dir *out_root;
    pthread_mutex_t dirs_lock;
    struct made_dir *dirs[1024];
    size_t ndirs; /* in |dirs|, each holding a descriptor: at most DIRS_HELD */
    /* The lines on stdout (verify's OK lines) come in walk order, whatever
     * order the workers finish in: each entry's line (or NULL) waits in
     * |told| at its seq until every earlier one is out. The walk waits
     * while it is TOLD_WINDOW entries ahead of the oldest untold one, so
     * memory stays bounded. */
    pthread_cond_t told_cond;
    char **told;
    unsigned char *told_set;
    unsigned long told_next;
} batch;

typedef struct made_dir {
    struct made_dir *next;
    cli_dir *dir;
    char path[];
} made_dir;

#define TOLD_WINDOW 4096
/* Folders cli_batch_out_dir keeps open between files. A concealed tree has
 * up to 65,792 fan-out folders and a restored one as many as its source:
 * the table is emptied when full rather than letting descriptors run out.
 * Files in flight hold their own references. */
#define DIRS_HELD 128

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Whether to start a file: no after a signal or once the token is lost;
 * those not started are counted. */
static int may_start(batch *b)
{
    pthread_mutex_lock(&b->lock);
    int stop = b->token_lost || cli_interrupted();
    b->not_started += (unsigned long)stop;
    pthread_mutex_unlock(&b->lock);
    return !stop;
}

/* "1.2 GiB" */
static void human_bytes(char *buf, size_t cap, double v)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    for (; v >= 1024 && u < 4; u++)
        v /= 1024;
    snprintf(buf, cap, u == 0 ? "%.0f %s" : "%.1f %s", v, unit[u]);
}

static void human_time(char *buf, size_t cap, double s)
{
    if (s < 60)
        snprintf(buf, cap, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, cap, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(buf, cap, "%dh%02dm", (int)s / 3600, (int)s / 60 % 60);
}

/* Called with the lock held. */
static void clear_progress(batch *b)
{
    if (b->progress)
        fputs("\r\033[K", stderr);
}

static void draw_progress(batch *b)
{
    char done_b[32], total_b[32], rate_b[32], left[32] = "";
    double t = seconds_since(&b->start);
    unsigned long files = b->done + b->skipped + b->failed;
    uint64_t bytes = b->bytes + b->skipped_bytes;
    double byte_rate = t > 0 ? (double)b->bytes / t : 0;
    double file_rate = t > 0 ? (double)(b->done + b->failed) / t : 0;
    if (b->total_known && file_rate > 0) {
        /* Token-bound runs go by files, I/O-bound ones by bytes. */
        double eta = (double)(b->total_files > files ? b->total_files - files : 0) / file_rate;
        if (b->cmd->counts_bytes && byte_rate > 0 && b->total_bytes > bytes) {
            double by_bytes = (double)(b->total_bytes - bytes) / byte_rate;
            eta = by_bytes > eta ? by_bytes : eta;
        }
        human_time(left, sizeof left, eta);
    }
    clear_progress(b);
    fprintf(stderr, "%s: %lu/%lu%s files", b->cmd->name, files, b->total_files,
            b->total_known ? "" : "+");
    if (b->cmd->counts_bytes) {
        human_bytes(done_b, sizeof done_b, (double)bytes);
        human_bytes(total_b, sizeof total_b, (double)b->total_bytes);
        human_bytes(rate_b, sizeof rate_b, byte_rate);
        fprintf(stderr, ", %s/%s, %s/s", done_b, total_b, rate_b);
    }
    fprintf(stderr, ", %.0f files/s%s%s", file_rate, left[0] ? ", " : "", left);
    if (left[0])
        fputs(" left", stderr);
    if (b->failed)
        fprintf(stderr, ", %lu failed", b->failed);
    if (b->not_started)
        fprintf(stderr, ", %lu not started", b->not_started);
    fflush(stderr);
}

static void *progress_main(void *arg)
{
    batch *b = arg;
    pthread_mutex_lock(&b->lock);
    while (!b->finished) {
        draw_progress(b);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 250 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&b->finished_cond, &b->lock, &until);
    }
    clear_progress(b);
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

/* The counting walk: the same paths, options and shard as the real one, so
 * the progress line can say "of how many". */
static int count_entry(const cli_entry *e, void *ctx)
{
    batch *b = ctx;
    pthread_mutex_lock(&b->lock);
    int finished = b->finished;
    if (e->kind == CLI_ENTRY_FILE) {
        b->total_files++;
        b->total_bytes += (uint64_t)e->sb->st_size;
    }
    pthread_mutex_unlock(&b->lock);
    return finished ? CLI_WALK_STOP : EX_OK;
}

static void *count_main(void *arg)
{
    batch *b = arg;
    int rc = cli_walk((const char *const *)b->o->args, b->o->nargs, &b->wo, count_entry, b);
    pthread_mutex_lock(&b->lock);
    b->total_known = rc != CLI_WALK_STOP;
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

static const char *outcome_name(const batch *b, cli_outcome o)
{
    switch (o) {
    case CLI_DONE: return b->cmd->done;
    case CLI_SKIPPED: return "skipped";
    case CLI_IGNORED: return "ignored";
    case CLI_FAILED: return "failed";
    }
    return "?";
}

/* Called with the lock held. */
static void report_line(batch *b, const cli_entry *e, const cli_result *r)
{
    FILE *f = b->report;
    fputs("{\"path\":", f);
    cli_json_string(f, e->path);
    if (r->output[0] != '\0') {
        fputs(",\"output\":", f);
        cli_json_string(f, r->output);
    }
    if (r->original[0] != '\0') {
        fputs(",\"original\":", f);
        cli_json_string(f, r->original);
    }
    fprintf(f, ",\"outcome\":\"%s\"", outcome_name(b, r->outcome));
    if (r->reason != NULL) {
        fputs(",\"reason\":", f);
        cli_json_string(f, r->reason);
    }
    if (r->directory)
        fputs(",\"kind\":\"directory\"", f);
    else if (r->kind >= 0)
        fprintf(f, ",\"kind\":\"%s\"", r->kind ? "dicom" : "opaque");
    if (r->outcome == CLI_DONE || r->outcome == CLI_SKIPPED)
        fprintf(f, ",\"bytes\":%llu", (unsigned long long)r->bytes);
    if (r->wrap.kek_name[0] != '\0') {
        fputs(",\"key\":", f);
        cli_json_string(f, r->wrap.kek_name);
        fprintf(f, ",\"version\":%u", r->wrap.kek_version);
    }
    if (r->format_version != 0)
        fprintf(f, ",\"format_version\":%d,\"origin\":\"%s\"%s", r->format_version,
                cli_origin_name(r->origin), r->upgraded ? ",\"upgraded\":true" : "");
    if (r->outcome == CLI_FAILED) {
        fputs(",\"error\":", f);
        cli_json_string(f, r->err.message);
        fprintf(f, ",\"exit\":%d", cli_exit_code(r->err.status));
    }
    fputs("}\n", f);
    /* Line by line, so that a run that is killed leaves a usable report. */
    fflush(f);
}

/* Called with the lock held: |line| (NULL: nothing) is entry |seq|'s; out
 * goes every line whose turn it is. */
static void tell(batch *b, unsigned long seq, char *line)
{
    b->told[seq % TOLD_WINDOW] = line;
    b->told_set[seq % TOLD_WINDOW] = 1;
    while (b->told_set[b->told_next % TOLD_WINDOW]) {
        size_t i = b->told_next++ % TOLD_WINDOW;
        if (b->told[i] != NULL)
            fputs(b->told[i], stdout);
        free(b->told[i]);
        b->told[i] = NULL;
        b->told_set[i] = 0;
    }
    pthread_cond_broadcast(&b->told_cond);
}

/* The lines of entries that were never told (a run cut short), in order. */
static void tell_rest(batch *b)
{
    for (unsigned long n = 0; n < TOLD_WINDOW; n++, b->told_next++) {
        size_t i = b->told_next % TOLD_WINDOW;
        if (b->told[i] != NULL)
            fputs(b->told[i], stdout);
        free(b->told[i]);
        b->told[i] = NULL;
        b->told_set[i] = 0;
    }
}

/* An entry that will have nothing to tell (not started). */
static void tell_nothing(batch *b, unsigned long seq)
{
    pthread_mutex_lock(&b->lock);
    tell(b, seq, NULL);
    pthread_mutex_unlock(&b->lock);
}

static void record(batch *b, const cli_entry *e, cli_result *r)
{
    const int quiet = b->o->quiet;
    char *line = NULL;
    if (r->say == CLI_SAY_STDOUT && !quiet && asprintf(&line, "%s: %s\n", e->path, r->line) < 0)
        line = NULL;
    pthread_mutex_lock(&b->lock);
    switch (r->outcome) {
    case CLI_DONE:
        b->done++;
        b->opaque += r->kind == 0;
        b->unproven += r->format_version != 0 && r->origin == DCMSEAL_ORIGIN_NONE;
        b->upgraded += (unsigned long)r->upgraded;
        b->bytes += r->bytes;
        b->host_path += (unsigned long)r->host_path;
        break;
    case CLI_SKIPPED:
        b->skipped++;
        b->skipped_bytes += r->bytes;
        break;
    case CLI_IGNORED:
        b->ignored++;
        if (!quiet) {
            clear_progress(b);
            fprintf(stderr, "dcmseal: %s: %s\n", e->path, r->reason);
        }
        break;
    case CLI_FAILED: {
        int rc = cli_exit_code(r->err.status);
        /* A directory is not a file: the summary counts it apart. */
        if (r->directory)
            b->dirs_failed++;
        else
            b->failed++;
        b->rc = rc > b->rc ? rc : b->rc;
        /* Past the session's retries the token is gone: starting more
         * files would only fail them one by one. */
        b->token_lost |= r->err.status == DCMSEAL_E_TOKEN;
        clear_progress(b);
        fprintf(stderr, "dcmseal: %s: %s\n", r->culprit ? r->culprit : e->path,
                r->err.message);
        break;
    }
    }
    tell(b, e->seq, line);
    if ((r->say == CLI_SAY_NOTICE && !quiet) || (r->say == CLI_SAY_VERBOSE && cli_verbose)) {
        clear_progress(b);
        fprintf(stderr, "dcmseal: %s: %s\n", e->path, r->line);
    }
    if (b->report != NULL)
        report_line(b, e, r);
    pthread_mutex_unlock(&b->lock);
}

/* Everything that is not a file to work on is dealt with here, on the
 * walking thread, in order: so an output directory exists before any file
 * below it is queued. */
static int visit(const cli_entry *e, void *ctx)
{
    batch *b = ctx;
    cli_result r = {.outcome = CLI_IGNORED, .kind = -1, .reason = e->why};
    pthread_mutex_lock(&b->lock);
    while (e->seq - b->told_next >= TOLD_WINDOW)
        pthread_cond_wait(&b->told_cond, &b->lock);
    pthread_mutex_unlock(&b->lock);
    /* After a signal the operator wants the prompt back; after a lost token
     * the rest of the walk only counts what was not started. */
    if (e->kind == CLI_ENTRY_FILE) {
        if (cli_interrupted())
            return CLI_WALK_STOP;
        if (may_start(b))
            return EX_OK;
        tell_nothing(b, e->seq);
        return CLI_POOL_SKIP;
    }
    if (e->kind == CLI_ENTRY_DIR) {
        if (b->o->out == NULL || b->o->in_place) {
            tell_nothing(b, e->seq);
            return EX_OK;
        }
        /* A concealed tree mirrors no folder: their names are what it
         * hides. Restoring one makes no fan-out folder: an output whose
         * input's folder was not mirrored makes the folders it goes into
         * (cli_batch_out_dir). */
        if (e->rel[0] != '\0' &&
            (b->o->conceal || (!b->cmd->wrap && cli_fanout_dir(e->rel, cli_dir_fd(e->self))))) {
            tell_nothing(b, e->seq);
            return EX_OK;
        }
        /* The copy below DST, made and opened relative to its parent's copy
         * (DST itself by the path given): a symbolic link planted in DST is
         * never followed. The files below are then created relative to it. */
        cli_dir *at = e->dir ? cli_dir_get0_out(e->dir) : NULL, *out;
        if (e->dir != NULL && at == NULL) {
            tell_nothing(b, e->seq); /* its parent's copy failed, and said so */
            return EX_OK;
        }
        /* Writable by us while we fill it, whatever the source says. */
        int err = cli_dir_make(&out, at, at ? e->name : b->o->out,
                               (e->sb->st_mode & 0777) | 0700);
        if (err == 0) {
            /* Where outputs that mirror no input folder go. Several
             * directories named with one -o share DST: the first one's. */
            pthread_mutex_lock(&b->dirs_lock);
            if (at == NULL && b->out_root == NULL)
                b->out_root = cli_dir_ref(out);
            pthread_mutex_unlock(&b->dirs_lock);
            cli_dir_set_out(e->self, out);
            tell_nothing(b, e->seq);
            return EX_OK;
        }
        r.outcome = CLI_FAILED;
        r.directory = 1;
        snprintf(r.output, sizeof r.output, "%s%s%s", b->o->out, e->rel[0] ? "/" : "", e->rel);
        r.culprit = r.output;
        if (err == ENOTDIR)
            dcmseal_fail(&r.err, DCMSEAL_E_IO, "exists and is not a directory (a symbolic "
                                               "link is not followed)");
        else
            dcmseal_fail(&r.err, DCMSEAL_E_IO, "cannot create directory: %s", strerror(err));
    } else if (e->stale && (b->o->in_place || b->cmd->in_place)) {
        /* Work in place is what leaves these (see engine/outfile.c): the
         * target was never replaced, so the file is surplus. Removed from
         * the directory it was found in, whatever its path leads to now. */
        r.reason = unlinkat(cli_dir_fd(e->dir), e->name, 0) == 0
                       ? "removed: temporary file left by an interrupted dcmseal run"
                       : e->why;
    } else if (e->kind == CLI_ENTRY_ERROR) {
        r.outcome = CLI_FAILED;
        r.reason = NULL;
        dcmseal_fail(&r.err, e->rc == EX_USAGE ? DCMSEAL_E_USAGE : DCMSEAL_E_IO, "%s", e->why);
    }
    record(b, e, &r);
    return EX_OK;
}

/* Finishes the files of |jobs| (|n|) as the command says, then records
 * each: a file counts as done only once finished. */
static void finish_jobs(batch *b, job *const *jobs, size_t n)
{
    cli_entry *e[FINISHERS_MAX];
    cli_result *r[FINISHERS_MAX];
    for (size_t i = 0; i < n; i++) {
        e[i] = &jobs[i]->e;
        r[i] = &jobs[i]->r;
    }
    b->cmd->finish(b->o, e, r, n);
    if (b->cmd->group > 1) {
        pthread_mutex_lock(&b->lock);
        b->groups++;
        b->grouped += n;
        pthread_mutex_unlock(&b->lock);
    }
    for (size_t i = 0; i < n; i++) {
        record(b, e[i], r[i]);
        cli_dir_unref(e[i]->dir);
        free(jobs[i]);
    }
}

static void *finisher_main(void *arg)
{
    batch *b = arg;
    const cli_batch_cmd *c = b->cmd;
    void *items[FINISHERS_MAX];
    job *group[FINISHERS_MAX];
    size_t n;
    while ((n = cli_queue_pop_many(&b->finishing, items, b->group_max,
                                   (long)c->group_wait_ms * 1000000L)) > 0) {
        /* Cut by the byte budget: each part is committed, and told, before
         * the next is started. */
        for (size_t i = 0, k; i < n; i = k) {
            uint64_t bytes = 0;
            for (k = i; k < n; k++) {
                job *j = items[k];
                if (k > i && c->group_bytes && bytes + j->r.bytes > c->group_bytes)
                    break;
                bytes += j->r.bytes;
                group[k - i] = j;
            }
            finish_jobs(b, group, k - i);
        }
    }
    return NULL;
}

static int work(const cli_entry *e, void *worker)
{
    cli_worker *w = worker;
    batch *b = w->batch;
    /* On the heap, with its own copy of the path and its own reference to
     * the directory: a finisher may outlive the walk's entry, and the
     * result points into itself (culprit). */
    size_t len = strlen(e->path);
    if (!may_start(b)) {
        tell_nothing(b, e->seq);
        return EX_OK;
    }
    job *j = malloc(sizeof *j + len + 1);
    if (j == NULL) {
        tell_nothing(b, e->seq);
        return EX_OSERR;
    }
    memcpy(j->path, e->path, len + 1);
    j->e = (cli_entry){.path = j->path, .rel = j->path + (e->rel - e->path),
                       .dir = cli_dir_ref(e->dir), .name = j->path + (e->name - e->path),
                       .kind = CLI_ENTRY_FILE, .seq = e->seq};
    j->r = (cli_result){.outcome = CLI_FAILED, .kind = -1, .fd = -1};
    dcmseal_error_clear(&j->r.err);
    b->cmd->one(w, &j->e, &j->r);
    if (j->r.pending) {
        cli_queue_push(&b->finishing, j); /* waits while the queue is full */
        return EX_OK;
    }
    record(b, &j->e, &j->r);
    cli_dir_unref(j->r.out_dir); /* the folder of an output not written */
    cli_dir_unref(j->e.dir);
    free(j);
    return EX_OK;
}

/* How many directory levels a walk may hold open, and how many files the
 * finishers may hold (|in_hand|: finishers, or a group's files) that the
 * open-files limit leaves room for. Each level holds descriptors: the
 * directory, the walk's reader of it, with -o its copy below DST, and the
 * same again for the counting walk. Files in flight hold more: each queued
 * file its directory (and with -o the copy), each file in hand also its
 * input and output; the finishers' files and the twice as many queued for
 * them are in hand. Fewer are in the finishers' hands where the limit is
 * small (a group commit then gathers fewer files), so that 16 levels fit
 * whatever the tree; deeper directories are reported, not walked, instead
 * of failing files with EMFILE. The soft limit is raised to the hard one
 * first, as it is there to be raised. */
static int depth_limit(const cli_opts *o, int jobs, int *in_hand)
{
    enum { MIN_DEPTH = 16 };
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t cur = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = cur;
    }
    const long dirs = o->out && !o->in_place ? 2 : 1;
    const long reserve = 64; /* the token, the report, stdio, libraries */
    const long per_level = (dirs + 1) + 2;
    const long limit = rl.rlim_cur > (rlim_t)(1L << 30) ? 1L << 30 : (long)rl.rlim_cur;
    long depth;
    for (;;) {
        const long held = jobs + 3L * *in_hand; /* the queue holds twice as many */
        const long in_flight = dirs * (CLI_QUEUE_LEN + held) + 2 * held;
        depth = (limit - in_flight - reserve) / per_level;
        if (depth >= MIN_DEPTH || *in_hand <= 1)
            break;
        --*in_hand;
    }
    /* A tiny limit with many workers could leave almost no depth; real
     * trees are a few levels deep, and a descriptor that runs out fails a
     * file with a reported error, never unsafely. */
    return depth < MIN_DEPTH ? MIN_DEPTH : depth > 1L << 20 ? 1 << 20 : (int)depth;
}

static size_t path_slot(const char *path)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *path; path++)
        h = (h ^ (uint8_t)*path) * 16777619u;
    return h % 1024;
}

/* Drops the folders held (not DST's own): a later file that needs one opens
 * it again, without following links. */
static void out_dirs_drop(batch *b)
{
    for (size_t i = 0; i < sizeof b->dirs / sizeof b->dirs[0]; i++) {
        for (made_dir *d = b->dirs[i], *next; d != NULL; d = next) {
            next = d->next;
            cli_dir_unref(d->dir);
            free(d);
        }
        b->dirs[i] = NULL;
    }
    b->ndirs = 0;
}

static void out_dirs_free(batch *b)
{
    out_dirs_drop(b);
    cli_dir_unref(b->out_root);
    b->out_root = NULL;
}

int cli_batch_out_dir(cli_dir **out, const cli_worker *w, const char *dirs)
{
    batch *b = w->batch;
    char prefix[PATH_MAX];
    size_t len = strlen(dirs);
    int err = 0;
    *out = NULL;
    if (len >= sizeof prefix)
        return ENAMETOOLONG;
    pthread_mutex_lock(&b->dirs_lock);
    cli_dir *at = cli_dir_ref(b->out_root);
    if (at == NULL)
        err = ENOENT; /* DST could not be made: said when it was tried */
    /* Level by level: each prefix of |dirs| is found in the table or made
     * below the one before, relative to its descriptor. */
    for (size_t i = 0; err == 0 && i < len;) {
        size_t n = strcspn(dirs + i, "/");
        memcpy(prefix, dirs, i + n);
        prefix[i + n] = '\0';
        made_dir **slot = &b->dirs[path_slot(prefix)], *d = *slot;
        while (d != NULL && strcmp(d->path, prefix) != 0)
            d = d->next;
        if (d == NULL) {
            if (b->ndirs >= DIRS_HELD)
                out_dirs_drop(b); /* |at| is our own reference; *slot is now NULL */
            if ((d = malloc(sizeof *d + i + n + 1)) == NULL) {
                err = ENOMEM;
                break;
            }
            if ((err = cli_dir_make(&d->dir, at, prefix + i, 0777)) != 0) {
                free(d);
                break;
            }
            memcpy(d->path, prefix, i + n + 1);
            d->next = *slot;
            *slot = d;
            b->ndirs++;
        }
        cli_dir_unref(at);
        at = cli_dir_ref(d->dir);
        i += n + (dirs[i + n] == '/');
    }
    pthread_mutex_unlock(&b->dirs_lock);
    if (err != 0) {
        cli_dir_unref(at);
        return err;
    }
    *out = at;
    return 0;
}


const char *cli_wrap_key(const cli_opts *o, const dcmseal_token_t *token)
{
    const char *key = o->key ? o->key : getenv("DCMSEAL_KEY");
    return key ? key : dcmseal_token_get0_object(token);
}

/* |path| made absolute and free of links as far as it exists, the rest
 * (which mkdir -p would make) appended as it is; -1 when that rest holds
 * "." or "..", which would make the comparison below meaningless. */
static int resolve(const char *path, char out[PATH_MAX])
{
    char have[PATH_MAX], rest[PATH_MAX] = "";
    if ((size_t)snprintf(have, sizeof have, "%s", path) >= sizeof have)
        return -1;
    for (size_t n = strlen(have); n > 1 && have[n - 1] == '/'; n--)
        have[n - 1] = '\0';
    while (realpath(have[0] ? have : ".", out) == NULL) {
        char *slash = strrchr(have, '/'), tmp[PATH_MAX];
        const char *last = slash ? slash + 1 : have;
        /* ENOTDIR: a file in the way, which making the parents will say. */
        if ((errno != ENOENT && errno != ENOTDIR) || strcmp(last, ".") == 0 || strcmp(last, "..") == 0 ||
            (size_t)snprintf(tmp, sizeof tmp, "/%s%s", last, rest) >= sizeof tmp)
            return -1;
        memcpy(rest, tmp, sizeof rest);
        if (slash == NULL)
            have[0] = '\0';
        else
            slash[slash == have] = '\0'; /* "/x" leaves "/" */
    }
    if (strlen(out) + strlen(rest) >= PATH_MAX)
        return -1;
    strcat(out, strcmp(out, "/") == 0 && rest[0] ? rest + 1 : rest);
    return 0;
}

/* mkdir -p of the parents of |path|: the tree's root is made by the walk,
 * with the source's mode. EX_OK, or EX_IOERR (said). */
static int make_parents(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--)
        dir[n - 1] = '\0';
    for (char *p = strchr(dir + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
        struct stat sb;
        const char *why = NULL;
        *p = '\0';
        if (stat(dir, &sb) == 0) {
            if (!S_ISDIR(sb.st_mode))
                why = "not a directory";
        } else if (errno != ENOENT || mkdir(dir, 0777) != 0) {
            why = strerror(errno);
        } else {
            /* Made, and flushed in its parent: the outputs below count as
             * done only once durable, their names included. */
            char *slash = strrchr(dir, '/');
            *slash = '\0';
            int fd = open(slash == dir ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            *slash = '/';
            if (fd < 0 || fsync(fd) != 0)
                why = strerror(errno);
            if (fd >= 0)
                close(fd);
        }
        if (why != NULL) {
            fprintf(stderr, "dcmseal: %s: cannot create directory: %s\n", dir, why);
            return EX_IOERR;
        }
        *p = '/';
    }
    return EX_OK;
}

/* With -o, the output tree must not be inside the input tree, or the walk
 * would meet its own output. It need not exist yet, nor its parents: they
 * are made once that is checked. */
static int check_output_root(const cli_opts *o)
{
    char src[PATH_MAX], dst[PATH_MAX];
    struct stat sb;
    if (o->nargs != 1 || stat(o->args[0], &sb) != 0 || !S_ISDIR(sb.st_mode))
        return cli_usage_error("-r with -o takes one source directory");
    if (realpath(o->args[0], src) == NULL)
        return cli_usage_error("%s: %s", o->args[0], strerror(errno));
    if (resolve(o->out, dst) != 0)
        return cli_usage_error("%s: %s", o->out,
                               errno != ENOENT ? strerror(errno)
                                               : "name the output without . or .. where it "
                                                 "does not exist yet");
    size_t n = strlen(src);
    if (strncmp(src, dst, n) == 0 && (dst[n] == '\0' || dst[n] == '/' || n == 1))
        return cli_usage_error("%s: the output directory is inside the input", o->out);
    return make_parents(o->out);
}

/* On stderr when |shown|, and in the report. */
static void summary(batch *b, int rc, int stopped_by, int shown)
{
    char bytes[32];
    double t = seconds_since(&b->start);
    unsigned long files = b->done + b->skipped + b->ignored + b->failed + b->not_started;
    const unsigned long dirs = b->dirs_failed;
    human_bytes(bytes, sizeof bytes, (double)b->bytes);
    /* Once per run, even for one file: per file it would drown a legacy
     * archive's run in notices. */
    if (b->unproven && !b->o->quiet) {
        const char *s = b->unproven == 1 ? "" : "s";
        if (b->cmd->wrap)
            fprintf(stderr, "dcmseal: %s: notice: %lu object%s written in format v1, without "
                            "an origin proof: the key has no origin key (`dcmseal key upgrade "
                            "NAME`, docs/KEYS.md)\n",
                    b->cmd->name, b->unproven, s);
        else
            fprintf(stderr, "dcmseal: %s: notice: %lu object%s without an origin proof (format "
                            "v1): anyone with the KEK's public half could have made %s "
                            "(docs/KEYS.md)\n",
                    b->cmd->name, b->unproven, s, b->unproven == 1 ? "it" : "them");
    }
    if (!shown)
        goto report;
    fprintf(stderr, "dcmseal: %s: %lu %s: %lu %s", b->cmd->name, files,
            cli_plural(files, "file", "files"), b->done, b->cmd->done);
    if (b->opaque)
        fprintf(stderr, " (%lu opaque)", b->opaque);
    if (b->skipped)
        fprintf(stderr, ", %lu skipped (%s)", b->skipped, b->cmd->skipped);
    if (b->upgraded)
        fprintf(stderr, " (%lu given an origin proof)", b->upgraded);
    if (b->ignored)
        fprintf(stderr, ", %lu ignored", b->ignored);
    fprintf(stderr, ", %lu failed", b->failed);
    if (b->not_started)
        fprintf(stderr, ", %lu not started", b->not_started);
    if (dirs)
        fprintf(stderr, "; %lu %s not made", dirs, cli_plural(dirs, "directory", "directories"));
    if (b->cmd->counts_bytes)
        fprintf(stderr, "; %s in %.1f s", bytes, t);
    else
        fprintf(stderr, " in %.1f s", t);
    fputs(b->host_path ? " (some DEKs passed through host memory)\n" : "\n", stderr);
    if (stopped_by)
        fprintf(stderr, "dcmseal: %s: stopped early (%s); re-run the same command to "
                        "finish\n", b->cmd->name,
                stopped_by > 0 ? strsignal(stopped_by) : "the token became unavailable");
report:
    if (b->report != NULL) {
        fprintf(b->report, "{\"summary\":{\"command\":\"%s\",\"files\":%lu,\"%s\":%lu,"
                           "\"opaque\":%lu,\"skipped\":%lu,\"ignored\":%lu,\"failed\":%lu,"
                           "\"not_started\":%lu,\"directories_failed\":%lu,"
                           "\"no_origin_proof\":%lu,\"upgraded\":%lu,\"bytes\":%llu,"
                           "\"seconds\":%.3f,\"complete\":%s,\"exit\":%d}}\n",
                b->cmd->name, files, b->cmd->done, b->done, b->opaque, b->skipped, b->ignored,
                b->failed, b->not_started, dirs, b->unproven, b->upgraded,
                (unsigned long long)b->bytes, t,
                stopped_by ? "false" : "true", rc);
    }
}

int cli_batch_run(const cli_batch_cmd *cmd, const cli_opts *o)
{
    batch b = {.cmd = cmd, .o = o, .rc = EX_OK};
    cli_token t;
    dcmseal_error err;
    cli_worker workers[CLI_JOBS_MAX];
    void *ctxs[CLI_JOBS_MAX];
    pthread_t counter, drawer;
    int jobs = 0, rc, armed = 0;
    b.wo = (cli_walk_opts){o->recursive, o->follow, o->shard_k, o->shard_n, 0};

    if (o->out != NULL && o->in_place)
        return cli_usage_error("%s: -o and --in-place exclude each other", cmd->name);
    if (o->follow && (o->in_place || cmd->in_place))
        return cli_usage_error("%s: --follow-symlinks would write through links; "
                               "not with work in place", cmd->name);
    if (o->out != NULL && (rc = check_output_root(o)) != EX_OK)
        return rc;
    if ((rc = cli_token_open(&t, o->token, o->nargs == 1 ? o->args[0] : "token")) != EX_OK)
        return rc;
    const char *key = cmd->wrap ? cli_wrap_key(o, t.token) : NULL;
    if (cmd->wrap && key == NULL) {
        cli_token_close(&t);
        return cli_usage_error("no key: give --key NAME, DCMSEAL_KEY or object= in the "
                               "token URI");
    }
    /* Fail at once, not per file: concealed names need format v2. */
    if (o->conceal) {
        dcmseal_kek_info k;
        if (dcmseal_kek_find(t.session, &k, key, 0, &err) != DCMSEAL_OK) {
            rc = cli_report(key, &err);
            cli_token_close(&t);
            return rc;
        }
        if (!k.has_origin) {
            fprintf(stderr, "dcmseal: %s: key '%s' v%u has no origin key, and concealed names "
                            "need format v2: run `dcmseal key upgrade %s`\n",
                    o->args[0], key, k.version, key);
            cli_token_close(&t);
            return EX_UNAVAILABLE;
        }
    }
    const int want = o->jobs ? o->jobs : cli_default_jobs();
    for (; jobs < want; jobs++) {
        cli_worker *w = &workers[jobs];
        *w = (cli_worker){.o = o, .batch = &b, .wrap_key = key};
        ctxs[jobs] = w;
        /* The first worker reuses the session cli_token_open made. */
        if (jobs == 0)
            w->session = t.session;
        else if (dcmseal_session_open(&w->session, t.token, &err) != DCMSEAL_OK)
            break;
        if (dcmseal_token_ring_new(&w->ring, w->session, key, o->oaep, &err) != DCMSEAL_OK) {
            if (jobs > 0)
                dcmseal_session_free(w->session);
            break;
        }
    }
    if (jobs == 0) {
        rc = cli_report(o->nargs == 1 ? o->args[0] : "token", &err);
        goto out;
    }
    /* Files in the finishers' hands: a group on each, or one. */
    const int grouped = cmd->group > 1 && cmd->group <= FINISHERS_MAX;
    int nthreads = cmd->finishers > 0 && cmd->finishers <= FINISHERS_MAX ? cmd->finishers
                   : grouped ? GROUP_FINISHERS : FINISHERS;
    int in_hand = nthreads * (grouped ? (int)cmd->group : 1);
    b.wo.max_depth = depth_limit(o, jobs, &in_hand);
    const int want_finishers = in_hand < nthreads ? in_hand : nthreads;
    b.group_max = grouped ? (size_t)(in_hand / want_finishers) : 1;
    if (o->report != NULL && (b.report = fopen(o->report, "we")) == NULL) {
        fprintf(stderr, "dcmseal: %s: cannot write the report: %s\n", o->report,
                strerror(errno));
        rc = EX_IOERR;
        goto out;
    }
    pthread_mutex_init(&b.lock, NULL);
    pthread_mutex_init(&b.dirs_lock, NULL);
    pthread_cond_init(&b.finished_cond, NULL);
    pthread_cond_init(&b.told_cond, NULL);
    b.told = calloc(TOLD_WINDOW, sizeof *b.told);
    b.told_set = calloc(TOLD_WINDOW, 1);
    pthread_t finishers[FINISHERS_MAX];
    int nfinishers = 0;
    if (b.told == NULL || b.told_set == NULL ||
        cli_queue_init(&b.finishing, 2 * (size_t)in_hand) !=
            EX_OK) {
        rc = EX_OSERR;
        goto out_lock;
    }
    /* Without finishers a pending file would wait forever: one at least. */
    if (cmd->finish != NULL) {
        while (nfinishers < want_finishers &&
               pthread_create(&finishers[nfinishers], NULL, finisher_main, &b) == 0)
            nfinishers++;
        if (nfinishers == 0) {
            fprintf(stderr, "dcmseal: %s: cannot start a thread\n", cmd->name);
            rc = EX_OSERR;
            goto out_threads;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &b.start);
    int counting = 0;
    /* One file is not a batch: its error line alone says what happened. */
    const int many = o->recursive || o->nargs > 1;
    if (many && !o->quiet && isatty(STDERR_FILENO)) {
        counting = pthread_create(&counter, NULL, count_main, &b) == 0;
        b.progress = 1;
        b.progress = pthread_create(&drawer, NULL, progress_main, &b) == 0;
    }

    cli_interrupt_arm("finishing the files in hand");
    const cli_pool_ops ops = {.visit = visit, .file = work, .ctx = &b};
    int walk_rc = cli_pool_walk((const char *const *)o->args, o->nargs, &b.wo, jobs, &ops, ctxs);
    /* The workers are done; what they left pending is finished before the
     * summary, also after a signal: those are files in hand. */
    cli_queue_close(&b.finishing);
    for (int i = 0; i < nfinishers; i++)
        pthread_join(finishers[i], NULL);

    pthread_mutex_lock(&b.lock);
    b.finished = 1;
    pthread_cond_broadcast(&b.finished_cond);
    tell_rest(&b);
    pthread_mutex_unlock(&b.lock);
    if (b.progress)
        pthread_join(drawer, NULL);
    if (counting)
        pthread_join(counter, NULL);
    if (b.groups > 0 && cli_verbose)
        fprintf(stderr, "dcmseal: %s: %lu files finished in %lu group commits\n", cmd->name,
                b.grouped, b.groups);
    const int sig = cli_interrupted();
    int stopped_by = sig ? sig : b.token_lost ? -1 : 0;
    rc = sig ? 128 + sig : walk_rc == EX_OSERR ? EX_OSERR : b.rc;
    summary(&b, rc, stopped_by, many);
    if (b.report != NULL) {
        /* Closed whatever the flush says; the first error is the one told. */
        int bad = fflush(b.report) != 0 || fsync(fileno(b.report)) != 0;
        int why = errno;
        if (fclose(b.report) != 0 && !bad) {
            bad = 1;
            why = errno;
        }
        b.report = NULL;
        if (bad) {
            fprintf(stderr, "dcmseal: %s: writing the report failed: %s\n", o->report,
                    strerror(why));
            rc = rc == EX_OK ? EX_IOERR : rc;
        }
    }
    armed = 1;
out_threads:
    cli_queue_destroy(&b.finishing);
out_lock:
    if (b.report != NULL) /* a run that never started: nothing to flush */
        fclose(b.report);
    pthread_cond_destroy(&b.finished_cond);
    out_dirs_free(&b);
    pthread_mutex_destroy(&b.dirs_lock);
    pthread_cond_destroy(&b.told_cond);
    pthread_mutex_destroy(&b.lock);
    free(b.told);
    free(b.told_set);
out:
    for (int i = 0; i < jobs; i++) {
        dcmseal_token_ring_free(workers[i].ring);
        if (i > 0)
            dcmseal_session_free(workers[i].session);
    }
    cli_token_close(&t);
    /* Delivers a signal that stopped the run, now that all is closed. */
    if (armed)
        cli_interrupt_disarm();
    return rc;
}
