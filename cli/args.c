/* Option parsing and output helpers shared by the commands. */
#include <ctype.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cli.h"

/* The option getopt refused, for the message: the argument of a long
 * option, or the letter of a short one (which may sit in a cluster). */
static const char *refused_option(char *buf, size_t cap, int argc, char **argv)
{
    if (optind >= 1 && optind - 1 < argc && strncmp(argv[optind - 1], "--", 2) == 0)
        return argv[optind - 1];
    snprintf(buf, cap, "-%c", isgraph(optopt) ? optopt : '?');
    return buf;
}

int cli_parse(cli_opts *o, int argc, char **argv, unsigned allowed)
{
    static const struct {
        struct option opt;
        unsigned flag;
    } table[] = {
        {{"token", required_argument, NULL, 't'}, OPT_TOKEN},
        {{"key", required_argument, NULL, 'k'}, OPT_KEY},
        {{"output", required_argument, NULL, 'o'}, OPT_OUT},
        {{"force", no_argument, NULL, 'f'}, OPT_FORCE},
        {{"strict", no_argument, NULL, 's'}, OPT_STRICT},
        {{"json", no_argument, NULL, 'j'}, OPT_JSON},
        {{"bits", required_argument, NULL, 'b'}, OPT_BITS},
        {{"segment-size", required_argument, NULL, 'S'}, OPT_SEGMENT},
        {{"oaep", required_argument, NULL, 'O'}, OPT_OAEP},
        {{"recursive", no_argument, NULL, 'r'}, OPT_RECURSIVE},
        {{"to-version", required_argument, NULL, 'V'}, OPT_TO_VERSION},
        {{"archive", required_argument, NULL, 'A'}, OPT_ARCHIVE},
        {{"jobs", required_argument, NULL, 'J'}, OPT_JOBS},
        {{"in-place", no_argument, NULL, 'I'}, OPT_IN_PLACE},
        {{"report", required_argument, NULL, 'R'}, OPT_REPORT},
        {{"quiet", no_argument, NULL, 'q'}, OPT_QUIET},
        {{"shard", required_argument, NULL, 'H'}, OPT_SHARD},
        {{"follow-symlinks", no_argument, NULL, 'L'}, OPT_FOLLOW},
        {{"verify-existing", no_argument, NULL, 'E'}, OPT_VERIFY_EXISTING},
        {{"durability", required_argument, NULL, 'D'}, OPT_DURABILITY},
    };
    struct option longopts[sizeof table / sizeof table[0] + 1];
    size_t n = 0;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (allowed & table[i].flag)
            longopts[n++] = table[i].opt;
    memset(&longopts[n], 0, sizeof longopts[n]);

    memset(o, 0, sizeof *o);
    int c;
    char *end, opt[4];
    /* A leading ":" and opterr = 0: the one line about a bad option is
     * ours, not getopt's and then ours. */
    char shorts[8] = ":", *sp = shorts + 1;
    if (allowed & OPT_OUT)
        sp = stpcpy(sp, "o:");
    if (allowed & OPT_RECURSIVE)
        sp = stpcpy(sp, "r");
    if (allowed & OPT_QUIET)
        stpcpy(sp, "q");
    opterr = 0;
    while ((c = getopt_long(argc, argv, shorts, longopts, NULL)) != -1) {
        switch (c) {
        case 't': o->token = optarg; break;
        case 'k': o->key = optarg; break;
        case 'o': o->out = optarg; break;
        case 'f': o->force = 1; break;
        case 's': o->strict = 1; break;
        case 'j': o->json = 1; break;
        case 'r': o->recursive = 1; break;
        case 'A': o->archive = optarg; break;
        case 'I': o->in_place = 1; break;
        case 'R': o->report = optarg; break;
        case 'q': o->quiet = 1; break;
        case 'L': o->follow = 1; break;
        case 'E': o->verify_existing = 1; break;
        case 'D':
            if (strcmp(optarg, "file") != 0 && strcmp(optarg, "group") != 0)
                return cli_usage_error("--durability %s: use group or file", optarg);
            o->durability_set = 1;
            o->durability_file = strcmp(optarg, "file") == 0;
            break;
        case 'H': {
            const char *slash = strchr(optarg, '/');
            char k[16];
            if (slash == NULL || (size_t)(slash - optarg) >= sizeof k)
                return cli_usage_error("--shard %s: use K/N, e.g. 2/8", optarg);
            memcpy(k, optarg, (size_t)(slash - optarg));
            k[slash - optarg] = '\0';
            o->shard_k = cli_version(k);
            o->shard_n = cli_version(slash + 1);
            if (o->shard_k == 0 || o->shard_n == 0 || o->shard_k > o->shard_n)
                return cli_usage_error("--shard %s: use K/N with 1 <= K <= N", optarg);
            break;
        }
        case 'J':
            o->jobs = (int)cli_version(optarg);
            if (o->jobs < 1 || o->jobs > CLI_JOBS_MAX)
                return cli_usage_error("--jobs %s: must be 1..%d", optarg, CLI_JOBS_MAX);
            break;
        case 'V':
            if ((o->to_version = cli_version(optarg)) == 0)
                return cli_usage_error("--to-version %s: not a version number", optarg);
            break;
        case 'b':
            o->bits = (unsigned)strtoul(optarg, &end, 10);
            if (*end != '\0' || (o->bits != 2048 && o->bits != 3072))
                return cli_usage_error("--bits %s: KEKs are RSA 2048 or 3072", optarg);
            break;
        case 'S': {
            unsigned long v = strtoul(optarg, &end, 10);
            if (*end != '\0' || v < DCMSEAL_SEGMENT_MIN || v > DCMSEAL_SEGMENT_MAX)
                return cli_usage_error("--segment-size %s: must be %u..%u bytes", optarg,
                                       DCMSEAL_SEGMENT_MIN, DCMSEAL_SEGMENT_MAX);
            o->segment_size = (uint32_t)v;
            break;
        }
        case 'O':
            if (strcmp(optarg, "auto") == 0)
                o->oaep = DCMSEAL_OAEP_AUTO;
            else if (strcmp(optarg, "sha1") == 0)
                o->oaep = DCMSEAL_OAEP_SHA1;
            else if (strcmp(optarg, "sha256") == 0)
                o->oaep = DCMSEAL_OAEP_SHA256;
            else
                return cli_usage_error("--oaep %s: use auto, sha1 or sha256", optarg);
            break;
        case ':':
            return cli_usage_error("%s: %s needs a value", argv[0],
                                   refused_option(opt, sizeof opt, argc, argv));
        default:
            return cli_usage_error("%s: bad option %s", argv[0],
                                   refused_option(opt, sizeof opt, argc, argv));
        }
    }
    o->args = argv + optind;
    o->nargs = argc - optind;
    return EX_OK;
}

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("dcmseal: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (see dcmseal --help)\n", stderr);
    va_end(ap);
    return EX_USAGE;
}

uint32_t cli_version(const char *s)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    return s[0] >= '1' && s[0] <= '9' && *end == '\0' && v <= UINT32_MAX ? (uint32_t)v : 0;
}

void cli_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

void cli_hex(FILE *f, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%02x", p[i]);
}
