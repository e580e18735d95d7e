/* dcmseal: the command-line front end. Argument parsing and output only;
 * every byte of crypto happens in libdcmseal. main() sets the process up,
 * then dispatches through the command table (commands.c). */
#define _GNU_SOURCE
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include <dcmseal/engine.h>

#include "cli.h"

/* Everything the process needs before any command runs: the one place. */
static void process_setup(void)
{
    /* A file-size limit (ulimit -f) should fail a write with EFBIG, which
     * is reported and cleaned up, not kill the process mid-file. */
    signal(SIGXFSZ, SIG_IGN);
    /* Each object's buffers (a few MiB, wiped and freed when it is done)
     * would otherwise go back to the kernel and be faulted in again for the
     * next one: in tree runs of small objects those page faults cost a
     * third of decrypt -r's time (bench/RESULTS.md). Keeping freed memory
     * in the process bounds it by the largest object in hand per thread,
     * which is bounded already. */
    mallopt(M_MMAP_THRESHOLD, 2 * DCMSEAL_SEGMENT_MAX);
    mallopt(M_TRIM_THRESHOLD, 4 * DCMSEAL_SEGMENT_MAX);
}

/* help [COMMAND], COMMAND --help: on stdout, exit 0. */
static int help(char *const *words, int nwords)
{
    int used;
    const cli_command *c = cli_command_find(words, nwords, &used);
    if (c != NULL)
        cli_help_command(stdout, c);
    else if (nwords > 0 && cli_is_group(words[0]))
        cli_help_group(stdout, words[0]);
    else if (nwords == 0)
        cli_help_overview(stdout);
    else
        return cli_usage_error("help: no command '%s'", words[0]);
    return EX_OK;
}

/* "key needs a subcommand: create, rotate, ..." */
static int group_error(const char *group, const char *sub)
{
    char list[256] = "";
    size_t n = strlen(group), len = 0;
    for (size_t i = 0; i < cli_ncommands && len < sizeof list; i++)
        if (strncmp(cli_commands[i].name, group, n) == 0 && cli_commands[i].name[n] == ' ')
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "",
                                    cli_commands[i].name + n + 1);
    fprintf(stderr, "dcmseal: %s%s%s: use one of %s (see dcmseal %s --help)\n", group,
            sub ? ": no subcommand " : " needs a subcommand", sub ? sub : "", list, group);
    return EX_USAGE;
}

static int dispatch(cli_opts *o)
{
    int used = 0;
    const cli_command *c = cli_command_find(o->args, o->nargs, &used);
    if (o->nargs > 0 && strcmp(o->args[0], "help") == 0)
        return help(o->args + 1, o->nargs - 1);
    if (o->given & OPT_HELP)
        return help(o->args, o->nargs);
    if (o->given & OPT_VERSION) {
        puts("dcmseal " DCMSEAL_VERSION_STRING);
        return EX_OK;
    }
    cli_current = c;
    if (o->problem[0] != '\0' || (c != NULL && cli_check_options(o, c->options) != EX_OK))
        return cli_usage_error("%s%s%s", c ? c->name : "", c ? ": " : "", o->problem);
    if (o->nargs == 0)
        return cli_usage_error("no command");
    if (c == NULL && cli_is_group(o->args[0]))
        return group_error(o->args[0], o->nargs > 1 ? o->args[1] : NULL);
    if (c == NULL)
        return cli_usage_error("unknown command '%s'", o->args[0]);
    /* The command sees only what follows its words. */
    o->nargs -= used;
    memmove(o->args, o->args + used, (size_t)o->nargs * sizeof *o->args);
    return c->run(o);
}

int main(int argc, char **argv)
{
    cli_opts o;
    /* First, before any key or PIN is in memory. */
    const int protect = cli_protect_process();
    if (protect < 0)
        return EX_OSERR;
    process_setup();
    int rc = cli_parse(&o, argc, argv);
    if (protect == 1 && cli_verbose)
        fputs("dcmseal: note: the secure heap for keys could not be locked in memory "
              "(RLIMIT_MEMLOCK); keys are kept out of core dumps but could reach swap\n",
              stderr);
    if (rc != EX_OSERR)
        rc = dispatch(&o);
    cli_opts_free(&o);
    return rc;
}
