/* rewrap: rotation of objects to another KEK version, in place. Each worker
 * has its own session (see batch.c), so the token's RSA operations, which
 * bound this command, run in parallel. */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli.h"

/* The first object that went through host memory says so, and why, once
 * per run; --verbose says it for every object. |refusal| is the token's
 * reason, NULL when only single objects took that path. */
static _Atomic(const char *) refusal;
static atomic_flag host_path_told = ATOMIC_FLAG_INIT;
/* Objects finished at once share their flushes (engine/rewrap.c). A group
 * gathers as encrypt's and decrypt's outputs do (object.c), so that two
 * flushes serve many objects rather than the one or two that finish while
 * the last group commits. */

static void rewrap_one(cli_worker *w, const cli_entry *e, cli_result *res)
{
    const cli_opts *o = w->o;
    dcmseal_header_info info;
    struct stat sb;
    int fd = cli_open_input(w, e, O_RDWR, &sb, res);
    if (fd < 0)
        return;
    /* Without --key, each object moves to the primary (or --to-version) of
     * the key that wraps it now. The target is looked up once per key name:
     * the primary found at the first object stays the target for the run. */
    const char *name = o->key;
    if (name == NULL && dcmseal_inspect_fd(&info, NULL, fd, &res->err) == DCMSEAL_OK)
        name = info.wrap.kek_name;
    if (name == NULL ||
        (strcmp(name, w->current) != 0 &&
         dcmseal_token_ring_set_current(w->ring, name, o->to_version, &res->err) !=
             DCMSEAL_OK)) {
        w->current[0] = '\0';
    } else {
        snprintf(w->current, sizeof w->current, "%s", name);
        if (dcmseal_rewrap_fd_start(&res->rewrap, fd, dcmseal_token_ring_get0_keyring(w->ring),
                                    o->upgrade ? DCMSEAL_REWRAP_UPGRADE : 0,
                                    &res->err) == DCMSEAL_OK) {
            if (res->rewrap.pending) {
                /* Written (or moved before, with a key left in its other
                 * slot) and locked: rewrap_finish flushes, wipes the old
                 * slot and flushes, with the objects finishing alongside,
                 * while this worker's session unwraps the next one. */
                if (res->rewrap.changed && !res->rewrap.in_token && !res->rewrap.upgraded)
                    atomic_store(&refusal, dcmseal_session_get0_rewrap_refusal(w->session));
                res->pending = 1;
                res->fd = fd;
                return;
            }
            res->outcome = CLI_SKIPPED;
            res->reason = "already under the target version";
            res->wrap = res->rewrap.to;
            res->format_version = res->rewrap.format_version;
            res->origin = res->rewrap.origin;
        }
    }
    close(fd);
}

/* What one object's finish says, once the group it was in is committed. */
static void rewrap_told(cli_result *res)
{
    dcmseal_rewrap_report *rep = &res->rewrap;
    char how[240] = "in the token (C_UnwrapKey + C_WrapKey)";
    if (res->err.status == DCMSEAL_OK) {
        /* An upgrade authenticates the object, which unwraps on the host:
         * that is not the token refusing anything. */
        const int host = rep->changed && !rep->in_token && !rep->upgraded;
        const int first = host && !atomic_flag_test_and_set(&host_path_told);
        const char *why = atomic_load(&refusal);
        if (first)
            snprintf(how, sizeof how,
                     "through host memory (the token refused in-token rewrap%s%s); each data "
                     "key that goes this way is unwrapped into host memory, wrapped again and "
                     "wiped at once (said once per run; -v says it per object)",
                     why != NULL ? ": " : " of this object", why != NULL ? why : "");
        else if (rep->upgraded)
            snprintf(how, sizeof how, "authenticated whole; origin proof added");
        else if (host)
            snprintf(how, sizeof how, "through host memory (the token refused in-token rewrap)");
        res->outcome = CLI_DONE;
        res->wrap = rep->to;
        res->format_version = rep->format_version;
        res->origin = rep->origin;
        res->upgraded = rep->upgraded;
        res->host_path = host;
        res->say = first ? CLI_SAY_NOTICE : CLI_SAY_VERBOSE;
        /* The key actually used: with --key, another name than the one
         * the object had. A line for people: a cut reason would still say
         * the path. */
        const int other = strcmp(rep->from.kek_name, rep->to.kek_name) != 0;
        if (!rep->changed)
            snprintf(res->line, sizeof res->line,
                     "'%s' v%u already; the key left in its other slot wiped",
                     rep->to.kek_name, rep->to.kek_version);
        else if (snprintf(res->line, sizeof res->line,
                          "'%s' v%u -> %s%s%sv%u, RSA-OAEP %s, %s; old slot wiped",
                          rep->from.kek_name, rep->from.kek_version, other ? "'" : "",
                          other ? rep->to.kek_name : "", other ? "' " : "", rep->to.kek_version,
                          dcmseal_oaep_name(rep->to.oaep), how) < 0)
            res->line[0] = '\0';
    }
    close(res->fd);
    res->fd = -1;
}

static void rewrap_finish(const cli_opts *o, cli_entry *const *e, cli_result *const *res,
                          size_t n)
{
    dcmseal_rewrap_report *reps[CLI_GROUP_FILES] = {NULL};
    dcmseal_error *errs[CLI_GROUP_FILES] = {NULL};
    int fds[CLI_GROUP_FILES] = {0};
    (void)o, (void)e;
    for (size_t i = 0; i < n; i++) { /* n <= CLI_GROUP_FILES: cli_batch_cmd.group */
        reps[i] = &res[i]->rewrap;
        fds[i] = res[i]->fd;
        errs[i] = &res[i]->err;
    }
    (void)dcmseal_rewrap_finish_all(reps, fds, n, errs);
    for (size_t i = 0; i < n; i++)
        rewrap_told(res[i]);
}

int cli_cmd_rewrap(const cli_opts *o)
{
    static const cli_batch_cmd cmd = {.name = "rewrap",
                                      .done = "rewrapped",
                                      .skipped = "already under the target version",
                                      .in_place = 1,
                                      .one = rewrap_one,
                                      .finish = rewrap_finish,
                                      .group = CLI_GROUP_FILES,
                                      .group_wait_ms = CLI_GROUP_WAIT_MS};
    if (o->nargs < 1)
        return cli_usage_error("rewrap takes one or more paths");
    return cli_batch_run(&cmd, o);
}
