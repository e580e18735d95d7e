/* rewrap: rotation of objects to another KEK version, in place. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli.h"

typedef struct rewrap_run {
    const cli_opts *o;
    dcmseal_token_ring_t *ring;
    char current[DCMSEAL_KEK_NAME_MAX + 1]; /* key name the ring targets */
    unsigned long moved, unchanged, failed, host_path, skipped;
    int token_lost;
} rewrap_run;

static int rewrap_one(const char *path, void *ctx)
{
    rewrap_run *run = ctx;
    dcmseal_error err;
    dcmseal_error_clear(&err);
    dcmseal_rewrap_report rep;
    dcmseal_header_info info;
    uint8_t pre[DCMSEAL_PREAMBLE_LEN];
    int rc = EX_OK;
    /* Once the token is gone (after the retries), starting more objects
     * would only fail them one by one: stop, and say what was not done. */
    if (run->token_lost) {
        run->skipped++;
        return EX_UNAVAILABLE;
    }
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        fprintf(stderr, "dcmseal: %s: cannot open: %s\n", path, strerror(errno));
        run->failed++;
        return EX_IOERR;
    }
    /* Without --key, each object moves to the primary (or --to-version) of
     * the key that wraps it now. The target is looked up once per key name:
     * the primary found at the first object stays the target for the run. */
    const char *name = run->o->key;
    ssize_t n = pread(fd, pre, sizeof pre, 0);
    if (name == NULL &&
        dcmseal_header_inspect(&info, pre, n < 0 ? 0 : (size_t)n, &err) == DCMSEAL_OK)
        name = info.wrap.kek_name;
    if (name == NULL ||
        (strcmp(name, run->current) != 0 &&
         dcmseal_token_ring_set_current(run->ring, name, run->o->to_version, &err) !=
             DCMSEAL_OK)) {
        run->current[0] = '\0';
        rc = cli_report(path, &err);
    } else {
        snprintf(run->current, sizeof run->current, "%s", name);
        if (dcmseal_rewrap_fd(&rep, fd, dcmseal_token_ring_get0_keyring(run->ring), &err) !=
            DCMSEAL_OK) {
            rc = cli_report(path, &err);
        } else if (rep.changed) {
            run->moved++;
            run->host_path += !rep.in_token;
            if (cli_verbose)
                fprintf(stderr, "dcmseal: %s: '%s' v%u -> v%u, RSA-OAEP %s, %s\n", path,
                        rep.from.kek_name, rep.from.kek_version, rep.to.kek_version,
                        dcmseal_oaep_name(rep.to.oaep),
                        rep.in_token ? "in the token (C_UnwrapKey + C_WrapKey)"
                                     : "through host memory (the token refused in-token rewrap)");
        } else {
            run->unchanged++;
        }
    }
    if (rc != EX_OK)
        run->failed++;
    if (rc != EX_OK && err.status == DCMSEAL_E_TOKEN)
        run->token_lost = 1;
    close(fd);
    return rc;
}

int cli_cmd_rewrap(int argc, char **argv)
{
    cli_opts o;
    cli_token t;
    dcmseal_error err;
    rewrap_run run = {.o = &o};
    int rc = cli_parse(&o, argc, argv, OPT_TOKEN | OPT_KEY | OPT_RECURSIVE | OPT_TO_VERSION);
    if (rc != EX_OK)
        return rc;
    if (o.nargs < 1)
        return cli_usage_error("rewrap takes one or more paths");
    if ((rc = cli_token_open(&t, o.token, o.nargs == 1 ? o.args[0] : "token")) != EX_OK)
        return rc;
    if (dcmseal_token_ring_new(&run.ring, t.session, NULL, DCMSEAL_OAEP_AUTO, &err) !=
        DCMSEAL_OK) {
        cli_token_close(&t);
        return cli_report("token", &err);
    }
    rc = cli_walk((const char *const *)o.args, o.nargs, o.recursive, rewrap_one, &run);
    fprintf(stderr, "dcmseal: rewrap: %lu moved, %lu already there, %lu failed%s\n", run.moved,
            run.unchanged, run.failed,
            run.host_path ? " (some DEKs passed through host memory)" : "");
    if (run.token_lost)
        fprintf(stderr, "dcmseal: rewrap: stopped when the token became unavailable; "
                        "%lu objects not started (re-run the same command)\n", run.skipped);
    dcmseal_token_ring_free(run.ring);
    cli_token_close(&t);
    return rc;
}
