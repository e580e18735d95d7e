/* libFuzzer target: the command-line parser (cli_parse and
 * cli_check_options in cli/args.c).
 *
 * Input: the arguments, separated by NUL bytes (the first is the program
 * name, as main() passes it). Each input is parsed once, then checked
 * against every command's option set, plus none and all.
 *
 * Checked: the result is EX_OK or EX_USAGE, with a problem stated exactly
 * when it is EX_USAGE; an option set accepts a command line only when it
 * sets no option outside the set; values are in range; and the other
 * arguments are argument strings of the input, in their order. */
#include <getopt.h>
#include <string.h>
#include <sysexits.h>

#include "../../cli/cli.h"
#include "fuzz.h"

#define MAX_ARGS 64

static const unsigned masks[] = {
    0,
    OPT_TOKEN | OPT_KEY | OPT_OUT | OPT_FORCE | OPT_STRICT | OPT_SEGMENT | OPT_OAEP, /* encrypt */
    OPT_TOKEN | OPT_OUT | OPT_FORCE,                                      /* decrypt */
    OPT_TOKEN,                                                            /* verify */
    OPT_JSON,                                                             /* inspect */
    OPT_TOKEN | OPT_BITS,                                                 /* key create */
    OPT_TOKEN | OPT_JSON,                                                 /* key list */
    OPT_TOKEN | OPT_ARCHIVE | OPT_NO_ARCHIVE_CHECK,                       /* key destroy */
    OPT_TOKEN | OPT_RETENTION | OPT_PURGE_PROTECTION,                     /* key policy */
    OPT_TOKEN | OPT_KEY | OPT_RECURSIVE | OPT_TO_VERSION | OPT_JOBS,      /* rewrap */
    OPT_TOKEN | OPT_OBJECTS | OPT_SESSIONS | OPT_KEEP,                    /* bench */
    ~0u,                                                                  /* all */
};

/* What a parse that |allowed| accepts may have set. */
static void check(const cli_opts *o, unsigned allowed)
{
    allowed |= OPT_ALWAYS;
    FUZZ_CHECK((o->given & ~allowed) == 0);
    FUZZ_CHECK(o->token == NULL || (allowed & OPT_TOKEN));
    FUZZ_CHECK(o->key == NULL || (allowed & OPT_KEY));
    FUZZ_CHECK(o->out == NULL || (allowed & OPT_OUT));
    FUZZ_CHECK(o->narchives == 0 || (allowed & OPT_ARCHIVE));
    FUZZ_CHECK(o->narchives >= 0 && o->narchives <= CLI_ARCHIVES_MAX);
    FUZZ_CHECK(!o->force || (allowed & OPT_FORCE));
    FUZZ_CHECK(!o->strict || (allowed & OPT_STRICT));
    FUZZ_CHECK(!o->json || (allowed & OPT_JSON));
    FUZZ_CHECK(!o->recursive || (allowed & OPT_RECURSIVE));
    FUZZ_CHECK(!o->purge_protection || (allowed & OPT_PURGE_PROTECTION));
    FUZZ_CHECK(o->retention_days <= 36500);
    FUZZ_CHECK(o->to_version == 0 || (allowed & OPT_TO_VERSION));
    FUZZ_CHECK(o->jobs == 0 || ((allowed & OPT_JOBS) && o->jobs >= 1 && o->jobs <= CLI_JOBS_MAX));
    FUZZ_CHECK(o->bits == 0 || ((allowed & OPT_BITS) && (o->bits == 2048 || o->bits == 3072)));
    FUZZ_CHECK(o->segment_size == 0 ||
               ((allowed & OPT_SEGMENT) && o->segment_size >= DCMSEAL_SEGMENT_MIN &&
                o->segment_size <= DCMSEAL_SEGMENT_MAX));
    FUZZ_CHECK(o->oaep == DCMSEAL_OAEP_AUTO || (allowed & OPT_OAEP));
    FUZZ_CHECK(o->nsessions <= CLI_SESSIONS_MAX && (o->nsessions == 0 || (allowed & OPT_SESSIONS)));
    for (size_t i = 0; i < o->nsessions; i++)
        FUZZ_CHECK(o->sessions[i] >= 1 && o->sessions[i] <= CLI_JOBS_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The strings, each NUL-terminated, in one block of exactly their size. */
    char *strings = malloc(size + 1);
    char *words[MAX_ARGS];
    int nwords = 0;
    FUZZ_CHECK(strings != NULL);
    if (size > 0)
        memcpy(strings, data, size);
    strings[size] = '\0';
    for (size_t i = 0; i <= size && nwords < MAX_ARGS; i += strlen(strings + i) + 1)
        words[nwords++] = strings + i;

    /* getopt_long permutes argv: the parse gets a copy. */
    char *argv[MAX_ARGS + 1];
    memcpy(argv, words, sizeof words[0] * (size_t)nwords);
    argv[nwords] = NULL;
    cli_opts o;
    const int rc = cli_parse(&o, nwords, argv);
    FUZZ_CHECK(rc == EX_OK || rc == EX_USAGE);
    FUZZ_CHECK((rc == EX_USAGE) == (o.problem[0] != '\0'));
    FUZZ_CHECK(o.nargs >= 0 && o.nargs < nwords);
    /* The other arguments keep their order: each comes later in the input. */
    for (int i = 0, from = 1; i < o.nargs; i++) {
        while (from < nwords && words[from] != o.args[i])
            from++;
        FUZZ_CHECK(from < nwords);
        from++;
    }
    if (rc == EX_OK) {
        for (size_t m = 0; m < sizeof masks / sizeof masks[0]; m++) {
            cli_opts copy = o;
            if (cli_check_options(&copy, masks[m]) == EX_OK)
                check(&copy, masks[m]);
            else
                FUZZ_CHECK(copy.problem[0] != '\0');
        }
    }
    cli_opts_free(&o);
    free(strings);
    return 0;
}
