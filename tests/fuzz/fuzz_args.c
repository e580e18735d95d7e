/* libFuzzer target: the command-line parser (cli_parse in cli/args.c).
 *
 * Input: the arguments, separated by NUL bytes (the first is the command
 * name, as the commands pass it). Each input is parsed once for every option
 * set a command allows, plus none and all, with getopt fully reset first as
 * main() does before a command.
 *
 * Checked: the result is EX_OK or EX_USAGE; an accepted command line sets
 * only options its command allows, with values in range, and its positional
 * arguments are argument strings of the input. */
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
    OPT_TOKEN | OPT_ARCHIVE,                                              /* key destroy */
    OPT_TOKEN | OPT_KEY | OPT_RECURSIVE | OPT_TO_VERSION | OPT_JOBS,      /* rewrap */
    (OPT_JOBS << 1) - 1,                                                  /* all */
};

static int is_arg(char *const *argv, int argc, const char *p)
{
    for (int i = 0; i < argc; i++)
        if (argv[i] == p)
            return 1;
    return 0;
}

static void check(const cli_opts *o, unsigned allowed, char *const *argv, int argc)
{
    FUZZ_CHECK(o->token == NULL || (allowed & OPT_TOKEN));
    FUZZ_CHECK(o->key == NULL || (allowed & OPT_KEY));
    FUZZ_CHECK(o->out == NULL || (allowed & OPT_OUT));
    FUZZ_CHECK(o->archive == NULL || (allowed & OPT_ARCHIVE));
    FUZZ_CHECK(!o->force || (allowed & OPT_FORCE));
    FUZZ_CHECK(!o->strict || (allowed & OPT_STRICT));
    FUZZ_CHECK(!o->json || (allowed & OPT_JSON));
    FUZZ_CHECK(!o->recursive || (allowed & OPT_RECURSIVE));
    FUZZ_CHECK(o->to_version == 0 || (allowed & OPT_TO_VERSION));
    FUZZ_CHECK(o->jobs == 0 || ((allowed & OPT_JOBS) && o->jobs >= 1 && o->jobs <= CLI_JOBS_MAX));
    FUZZ_CHECK(o->bits == 0 || ((allowed & OPT_BITS) && (o->bits == 2048 || o->bits == 3072)));
    FUZZ_CHECK(o->segment_size == 0 ||
               ((allowed & OPT_SEGMENT) && o->segment_size >= DCMSEAL_SEGMENT_MIN &&
                o->segment_size <= DCMSEAL_SEGMENT_MAX));
    FUZZ_CHECK(o->oaep == DCMSEAL_OAEP_AUTO || (allowed & OPT_OAEP));
    FUZZ_CHECK(o->nargs >= 0 && o->nargs < argc);
    for (int i = 0; i < o->nargs; i++)
        FUZZ_CHECK(is_arg(argv, argc, o->args[i]));
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

    for (size_t m = 0; m < sizeof masks / sizeof masks[0]; m++) {
        /* getopt_long permutes argv: each parse gets a fresh copy. */
        char *argv[MAX_ARGS + 1];
        memcpy(argv, words, sizeof words[0] * (size_t)nwords);
        argv[nwords] = NULL;
        cli_opts o;
        optind = 0; /* a full reset, as main() does before a command */
        const int rc = cli_parse(&o, nwords, argv, masks[m]);
        FUZZ_CHECK(rc == EX_OK || rc == EX_USAGE);
        if (rc == EX_OK)
            check(&o, masks[m], argv, nwords);
    }
    free(strings);
    return 0;
}
