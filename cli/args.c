/* The command line: every option, wherever it stands. */
#define _GNU_SOURCE /* getopt_long's "-" mode */
#include <ctype.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cli.h"

const cli_option cli_options[] = {
    {OPT_TOKEN, "token", 0, "URI",
     "PKCS#11 URI of the token (default: $DCMSEAL_TOKEN); the PIN comes from its "
     "pin-source (file:PATH or env:VAR) or $DCMSEAL_PIN, never from the command line"},
    {OPT_KEY, "key", 0, "NAME",
     "KEK that wraps new objects, at its primary version (default: $DCMSEAL_KEY, "
     "else the URI's object=)"},
    {OPT_OUT, "output", 'o', "OUT", "where the output goes; - is stdout"},
    {OPT_RECURSIVE, "recursive", 'r', NULL,
     "walk directories: every regular file below them is handled"},
    {OPT_IN_PLACE, "in-place", 0, NULL,
     "replace each file by its result, atomically (no -o)"},
    {OPT_FORCE, "force", 0, NULL, "replace an existing output that an earlier run did not make"},
    {OPT_VERIFY_EXISTING, "verify-existing", 0, NULL,
     "skip an existing output only once its content is checked with the token (a file "
     "planted with the right size and time passes the cheap test); in place, "
     "authenticate each encrypted object before skipping it"},
    {OPT_CONCEAL, "conceal-names", 0, NULL,
     "store each file under a name made from a keyed hash of its path (ab/cd/<32 hex "
     "digits>); the path, mode and time go encrypted into the object, and decrypt -r "
     "puts the tree back"},
    {OPT_DURABILITY, "durability", 0, "group|file",
     "group (default): the outputs that finish together share one flush of their data, "
     "then get their names, then one flush per directory; file: a flush per output. "
     "Either way a file is reported done only once it and its name are on disk"},
    {OPT_STRICT, "strict", 0, NULL,
     "refuse input that is not DICOM instead of encrypting it as an opaque object"},
    {OPT_SEGMENT, "segment-size", 0, "SIZE",
     "plain-text bytes per segment, 4K..16M, with an optional K or M suffix "
     "(default: 256K)"},
    {OPT_OAEP, "oaep", 0, "auto|sha1|sha256",
     "RSA-OAEP hash for wrapping: auto (default) tries SHA-256, then SHA-1"},
    {OPT_TO_VERSION, "to-version", 0, "N",
     "move objects to version N instead of the primary (also back)"},
    {OPT_BITS, "bits", 0, "2048|3072", "RSA modulus size of the new version"},
    {OPT_UPGRADE, "upgrade", 0, NULL,
     "give format v1 objects an origin proof, after authenticating every segment and "
     "the DICOM identity"},
    {OPT_ARCHIVE, "archive", 0, "DIR",
     "refuse when any object below DIR still names the version; may be repeated"},
    {OPT_NO_ARCHIVE_CHECK, "no-archive-check", 0, NULL,
     "destroy without counting the objects that still need the version"},
    {OPT_RETENTION, "retention", 0, "DAYS",
     "key destroy waits until a version has been disabled this many days (0: no wait)"},
    {OPT_PURGE_PROTECTION, "purge-protection", 0, NULL,
     "from now on the retention can only grow; this cannot be undone"},
    {OPT_REQUIRE_ORIGIN, "require-origin", 0, NULL,
     "refuse objects without an origin proof (format v1) under this KEK"},
    {OPT_NO_REQUIRE_ORIGIN, "no-require-origin", 0, NULL,
     "open objects without an origin proof, with a notice"},
    {OPT_JOBS, "jobs", 0, "N", "worker threads, one token session each (default: the cores)"},
    {OPT_REPORT, "report", 0, "FILE", "one JSON object per file, then a summary line"},
    {OPT_SHARD, "shard", 0, "K/N",
     "only the K-th of N disjoint parts of the tree, chosen by a hash of each "
     "file's path below the given directory"},
    {OPT_FOLLOW, "follow-symlinks", 0, NULL,
     "follow symbolic links (default: report and skip them); not with work in place"},
    {OPT_OBJECTS, "objects", 0, "N", "wrapped keys per measurement (default: 200)"},
    {OPT_SESSIONS, "sessions", 0, "LIST",
     "session counts to measure, e.g. 1,2,4 (default: 1 and the cores)"},
    {OPT_KEEP, "keep", 0, NULL, "keep the scratch KEK instead of destroying it"},
    {OPT_JSON, "json", 0, NULL, "machine-readable output (JSON)"},
    {OPT_QUIET, "quiet", 'q', NULL,
     "no progress line, notices or OK lines; errors and the summary remain"},
    {OPT_VERBOSE, "verbose", 'v', NULL,
     "say which mechanism wrapped each key, and similar detail, on stderr"},
    {OPT_HELP, "help", 'h', NULL, "this help"},
    {OPT_VERSION, "version", 0, NULL, "the version"},
};
const size_t cli_noptions = sizeof cli_options / sizeof cli_options[0];

int cli_verbose;

/* Keeps the first problem only: the one the user should fix first. */
static __attribute__((format(printf, 2, 3))) void problem(cli_opts *o, const char *fmt, ...)
{
    va_list ap;
    if (o->problem[0] != '\0')
        return;
    va_start(ap, fmt);
    vsnprintf(o->problem, sizeof o->problem, fmt, ap);
    va_end(ap);
}

uint32_t cli_version(const char *s)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    return s[0] >= '1' && s[0] <= '9' && *end == '\0' && v <= UINT32_MAX ? (uint32_t)v : 0;
}

/* "64K", "1M", "1MiB", "65536" -> bytes; 0 when malformed or too large. */
static unsigned long parse_size(const char *s)
{
    char *end;
    if (!isdigit((unsigned char)s[0]))
        return 0;
    unsigned long v = strtoul(s, &end, 10), unit = 1;
    if (*end == 'K' || *end == 'k')
        unit = 1024;
    else if (*end == 'M' || *end == 'm')
        unit = 1024 * 1024;
    if (unit != 1 && (strcmp(end + 1, "") == 0 || strcmp(end + 1, "iB") == 0))
        end = "";
    if (*end != '\0' || v > ULONG_MAX / unit)
        return 0;
    return v * unit;
}

static void parse_sessions(cli_opts *o, const char *list)
{
    const char *p = list;
    o->nsessions = 0;
    while (*p != '\0') {
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        if (!isdigit((unsigned char)*p) || v < 1 || v > CLI_JOBS_MAX ||
            (*end != ',' && *end != '\0') || o->nsessions == CLI_SESSIONS_MAX) {
            problem(o, "--sessions %s: a list of at most %d counts of 1..%d, e.g. 1,2,4", list,
                    CLI_SESSIONS_MAX, CLI_JOBS_MAX);
            return;
        }
        o->sessions[o->nsessions++] = (int)v;
        p = *end == ',' ? end + 1 : end;
    }
    if (o->nsessions == 0)
        problem(o, "--sessions: give at least one count");
}

/* An option with its value, checked. */
static void take(cli_opts *o, cli_optset flag, const char *v)
{
    char *end;
    unsigned long n;
    o->given |= flag;
    switch (flag) {
    case OPT_TOKEN: o->token = v; break;
    case OPT_KEY: o->key = v; break;
    case OPT_OUT: o->out = v; break;
    case OPT_REPORT: o->report = v; break;
    case OPT_FORCE: o->force = 1; break;
    case OPT_STRICT: o->strict = 1; break;
    case OPT_JSON: o->json = 1; break;
    case OPT_RECURSIVE: o->recursive = 1; break;
    case OPT_IN_PLACE: o->in_place = 1; break;
    case OPT_QUIET: o->quiet = 1; break;
    case OPT_FOLLOW: o->follow = 1; break;
    case OPT_VERIFY_EXISTING: o->verify_existing = 1; break;
    case OPT_CONCEAL: o->conceal = 1; break;
    case OPT_UPGRADE: o->upgrade = 1; break;
    case OPT_REQUIRE_ORIGIN:
    case OPT_NO_REQUIRE_ORIGIN: break; /* |given| says which */
    case OPT_DURABILITY:
        if (strcmp(v, "group") != 0 && strcmp(v, "file") != 0)
            problem(o, "--durability %s: use group or file", v);
        o->durability_file = strcmp(v, "file") == 0;
        break;
    case OPT_NO_ARCHIVE_CHECK: o->no_archive_check = 1; break;
    case OPT_PURGE_PROTECTION: o->purge_protection = 1; break;
    case OPT_KEEP: o->keep = 1; break;
    case OPT_VERBOSE: cli_verbose = 1; break;
    case OPT_HELP:
    case OPT_VERSION: break;
    case OPT_ARCHIVE:
        if (o->narchives == CLI_ARCHIVES_MAX)
            problem(o, "--archive: at most %d directories", CLI_ARCHIVES_MAX);
        else
            o->archives[o->narchives++] = v;
        break;
    case OPT_SHARD: {
        const char *slash = strchr(v, '/');
        char k[16];
        if (slash == NULL || (size_t)(slash - v) >= sizeof k) {
            problem(o, "--shard %s: use K/N, e.g. 2/8", v);
            break;
        }
        memcpy(k, v, (size_t)(slash - v));
        k[slash - v] = '\0';
        o->shard_k = cli_version(k);
        o->shard_n = cli_version(slash + 1);
        if (o->shard_k == 0 || o->shard_n == 0 || o->shard_k > o->shard_n)
            problem(o, "--shard %s: use K/N with 1 <= K <= N", v);
        break;
    }
    case OPT_JOBS:
        o->jobs = (int)cli_version(v);
        if (o->jobs < 1 || o->jobs > CLI_JOBS_MAX)
            problem(o, "--jobs %s: must be 1..%d", v, CLI_JOBS_MAX);
        break;
    case OPT_TO_VERSION:
        if ((o->to_version = cli_version(v)) == 0)
            problem(o, "--to-version %s: not a version number", v);
        break;
    case OPT_RETENTION:
        n = strtoul(v, &end, 10);
        if (!isdigit((unsigned char)v[0]) || *end != '\0' || n > 36500)
            problem(o, "--retention %s: a number of days, 0..36500", v);
        o->retention_days = (uint32_t)n;
        break;
    case OPT_OBJECTS:
        o->objects = cli_version(v);
        if (o->objects == 0 || o->objects > 1000000)
            problem(o, "--objects %s: must be 1..1000000", v);
        break;
    case OPT_SESSIONS: parse_sessions(o, v); break;
    case OPT_BITS:
        n = strtoul(v, &end, 10);
        if (*end != '\0' || (n != 2048 && n != 3072))
            problem(o, "--bits %s: KEKs are RSA 2048 or 3072", v);
        o->bits = (unsigned)n;
        break;
    case OPT_SEGMENT:
        n = parse_size(v);
        if (n < DCMSEAL_SEGMENT_MIN || n > DCMSEAL_SEGMENT_MAX)
            problem(o, "--segment-size %s: must be 4K..16M (%u..%u bytes)", v,
                    DCMSEAL_SEGMENT_MIN, DCMSEAL_SEGMENT_MAX);
        o->segment_size = (uint32_t)n;
        break;
    case OPT_OAEP:
        if (strcmp(v, "auto") == 0)
            o->oaep = DCMSEAL_OAEP_AUTO;
        else if (strcmp(v, "sha1") == 0)
            o->oaep = DCMSEAL_OAEP_SHA1;
        else if (strcmp(v, "sha256") == 0)
            o->oaep = DCMSEAL_OAEP_SHA256;
        else
            problem(o, "--oaep %s: use auto, sha1 or sha256", v);
        break;
    }
}

/* The option getopt refused, as it was written: a long one, or the letter
 * of a short one (which may sit in a cluster). */
static const char *refused(char *buf, size_t cap, int argc, char **argv)
{
    if (optind >= 1 && optind - 1 < argc && strncmp(argv[optind - 1], "--", 2) == 0) {
        /* "--bits=1" names --bits */
        snprintf(buf, cap, "%.*s", (int)strcspn(argv[optind - 1], "="), argv[optind - 1]);
        return buf;
    }
    snprintf(buf, cap, "-%c", isgraph(optopt) ? optopt : '?');
    return buf;
}

int cli_parse(cli_opts *o, int argc, char **argv)
{
    struct option longopts[sizeof cli_options / sizeof cli_options[0] + 1];
    /* "-": every other argument comes back in order, as value 1, so that
     * options may stand anywhere, whatever POSIXLY_CORRECT says. ":": the
     * one line about a bad option is ours, not getopt's and then ours. */
    char shorts[2 * sizeof cli_options / sizeof cli_options[0] + 3] = "-:";
    char *sp = shorts + 2, name[64];
    int c;

    memset(o, 0, sizeof *o);
    if ((o->args = calloc((size_t)argc + 1, sizeof *o->args)) == NULL)
        return EX_OSERR;
    for (size_t i = 0; i < cli_noptions; i++) {
        const cli_option *opt = &cli_options[i];
        longopts[i] = (struct option){opt->name, opt->arg ? required_argument : no_argument,
                                      NULL, 256 + (int)i};
        if (opt->letter) {
            *sp++ = opt->letter;
            if (opt->arg)
                *sp++ = ':';
        }
    }
    memset(&longopts[cli_noptions], 0, sizeof longopts[0]);
    *sp = '\0';

    opterr = 0;
    optind = 0; /* a full reset of getopt's state */
    while ((c = getopt_long(argc, argv, shorts, longopts, NULL)) != -1) {
        if (c == 1) {
            o->args[o->nargs++] = optarg;
        } else if (c == ':') {
            problem(o, "%s needs a value", refused(name, sizeof name, argc, argv));
        } else if (c >= 256 && c < 256 + (int)cli_noptions) {
            take(o, cli_options[c - 256].flag, optarg);
        } else {
            const cli_option *opt = NULL;
            for (size_t i = 0; i < cli_noptions && opt == NULL; i++)
                if (c != '?' && cli_options[i].letter == c)
                    opt = &cli_options[i];
            if (opt != NULL)
                take(o, opt->flag, optarg);
            else
                problem(o, "unknown option %s", refused(name, sizeof name, argc, argv));
        }
    }
    while (optind < argc) /* after "--" */
        o->args[o->nargs++] = argv[optind++];
    return o->problem[0] ? EX_USAGE : EX_OK;
}

int cli_check_options(cli_opts *o, cli_optset allowed)
{
    cli_optset extra = o->given & ~(allowed | OPT_ALWAYS);
    for (size_t i = 0; extra != 0 && i < cli_noptions; i++)
        if (extra & cli_options[i].flag) {
            problem(o, "--%s does not apply here", cli_options[i].name);
            return EX_USAGE;
        }
    return EX_OK;
}

void cli_opts_free(cli_opts *o)
{
    free(o->args);
    o->args = NULL;
}
