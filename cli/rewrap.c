/* rewrap: rotation of objects to another KEK version, in place, on worker
 * threads with one PKCS#11 session each. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli.h"

/* What all workers share. */
typedef struct rewrap_run {
    const cli_opts *o;
    pthread_mutex_t lock; /* guards the counters */
    unsigned long moved, unchanged, failed, host_path, skipped;
    int token_lost;
} rewrap_run;

/* One per worker thread. */
typedef struct rewrap_worker {
    rewrap_run *run;
    dcmseal_session_t *session;
    dcmseal_token_ring_t *ring;
    char current[DCMSEAL_KEK_NAME_MAX + 1]; /* key name the ring targets */
} rewrap_worker;

static void count(rewrap_run *run, unsigned long *counter, int token_lost)
{
    pthread_mutex_lock(&run->lock);
    (*counter)++;
    run->token_lost |= token_lost;
    pthread_mutex_unlock(&run->lock);
}

static int rewrap_one(const char *path, void *ctx)
{
    rewrap_worker *w = ctx;
    rewrap_run *run = w->run;
    dcmseal_error err;
    dcmseal_rewrap_report rep;
    dcmseal_header_info info;
    uint8_t pre[DCMSEAL_PREAMBLE_LEN];
    int rc = EX_OK;
    dcmseal_error_clear(&err);
    /* Once the token is gone (after the retries), starting more objects
     * would only fail them one by one: stop, and say what was not done.
     * Objects already in flight on other workers finish. */
    pthread_mutex_lock(&run->lock);
    int lost = run->token_lost;
    pthread_mutex_unlock(&run->lock);
    if (lost) {
        count(run, &run->skipped, 0);
        return EX_UNAVAILABLE;
    }
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        fprintf(stderr, "dcmseal: %s: cannot open: %s\n", path, strerror(errno));
        count(run, &run->failed, 0);
        return EX_IOERR;
    }
    /* Without --key, each object moves to the primary (or --to-version) of
     * the key that wraps it now. The target is looked up once per key name:
     * the primary found at the first object stays the target for the run. */
    const char *name = run->o->key;
    if (name == NULL) {
        ssize_t n = pread(fd, pre, sizeof pre, 0);
        if (dcmseal_header_inspect(&info, pre, n < 0 ? 0 : (size_t)n, &err) == DCMSEAL_OK)
            name = info.wrap.kek_name;
    }
    if (name == NULL ||
        (strcmp(name, w->current) != 0 &&
         dcmseal_token_ring_set_current(w->ring, name, run->o->to_version, &err) !=
             DCMSEAL_OK)) {
        w->current[0] = '\0';
        rc = cli_report(path, &err);
    } else {
        snprintf(w->current, sizeof w->current, "%s", name);
        if (dcmseal_rewrap_fd(&rep, fd, dcmseal_token_ring_get0_keyring(w->ring), &err) !=
            DCMSEAL_OK) {
            rc = cli_report(path, &err);
        } else if (rep.changed) {
            count(run, &run->moved, 0);
            if (!rep.in_token)
                count(run, &run->host_path, 0);
            if (cli_verbose)
                fprintf(stderr, "dcmseal: %s: '%s' v%u -> v%u, RSA-OAEP %s, %s\n", path,
                        rep.from.kek_name, rep.from.kek_version, rep.to.kek_version,
                        dcmseal_oaep_name(rep.to.oaep),
                        rep.in_token ? "in the token (C_UnwrapKey + C_WrapKey)"
                                     : "through host memory (the token refused in-token rewrap)");
        } else {
            count(run, &run->unchanged, 0);
        }
    }
    if (rc != EX_OK)
        count(run, &run->failed, err.status == DCMSEAL_E_TOKEN);
    close(fd);
    return rc;
}

int cli_cmd_rewrap(int argc, char **argv)
{
    cli_opts o;
    cli_token t;
    dcmseal_error err;
    rewrap_run run = {.o = &o};
    rewrap_worker workers[CLI_JOBS_MAX];
    void *ctxs[CLI_JOBS_MAX];
    int jobs = 0;
    int rc = cli_parse(&o, argc, argv,
                       OPT_TOKEN | OPT_KEY | OPT_RECURSIVE | OPT_TO_VERSION | OPT_JOBS);
    if (rc != EX_OK)
        return rc;
    if (o.nargs < 1)
        return cli_usage_error("rewrap takes one or more paths");
    if ((rc = cli_token_open(&t, o.token, o.nargs == 1 ? o.args[0] : "token")) != EX_OK)
        return rc;
    const int want = o.jobs ? o.jobs : cli_default_jobs();
    for (; jobs < want; jobs++) {
        rewrap_worker *w = &workers[jobs];
        *w = (rewrap_worker){.run = &run};
        ctxs[jobs] = w;
        /* The first worker reuses the session cli_token_open made. */
        if (jobs == 0)
            w->session = t.session;
        else if (dcmseal_session_open(&w->session, t.token, &err) != DCMSEAL_OK)
            break;
        if (dcmseal_token_ring_new(&w->ring, w->session, NULL, DCMSEAL_OAEP_AUTO, &err) !=
            DCMSEAL_OK) {
            if (jobs > 0)
                dcmseal_session_free(w->session);
            break;
        }
    }
    if (jobs == 0) {
        rc = cli_report("token", &err);
    } else {
        pthread_mutex_init(&run.lock, NULL);
        rc = cli_pool_walk((const char *const *)o.args, o.nargs, o.recursive, jobs,
                           rewrap_one, ctxs);
        pthread_mutex_destroy(&run.lock);
        fprintf(stderr, "dcmseal: rewrap: %lu moved, %lu already there, %lu failed%s\n",
                run.moved, run.unchanged, run.failed,
                run.host_path ? " (some DEKs passed through host memory)" : "");
        if (run.token_lost)
            fprintf(stderr, "dcmseal: rewrap: stopped when the token became unavailable; "
                            "%lu objects not started (re-run the same command)\n",
                    run.skipped);
    }
    for (int i = 0; i < jobs; i++) {
        dcmseal_token_ring_free(workers[i].ring);
        if (i > 0)
            dcmseal_session_free(workers[i].session);
    }
    cli_token_close(&t);
    return rc;
}
