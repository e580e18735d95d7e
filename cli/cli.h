/* Shared by the dcmseal command implementations. */
#ifndef DCMSEAL_CLI_H
#define DCMSEAL_CLI_H

#include <stdio.h>

#include <dcmseal/engine.h>
#include <dcmseal/pkcs11.h>

extern int cli_verbose;

typedef struct cli_token {
    dcmseal_token_t *token;
    dcmseal_session_t *session;
} cli_token;

/* Options every command may take; each command says which it accepts. */
enum {
    OPT_TOKEN = 1 << 0,
    OPT_KEY = 1 << 1,
    OPT_OUT = 1 << 2,
    OPT_FORCE = 1 << 3,
    OPT_STRICT = 1 << 4,
    OPT_JSON = 1 << 5,
    OPT_BITS = 1 << 6,
    OPT_SEGMENT = 1 << 7,
    OPT_OAEP = 1 << 8,
    OPT_RECURSIVE = 1 << 9,
    OPT_TO_VERSION = 1 << 10,
    OPT_ARCHIVE = 1 << 11,
    OPT_JOBS = 1 << 12,
};

typedef struct cli_opts {
    const char *token, *key, *out, *archive;
    int force, strict, json, recursive;
    uint32_t to_version;
    int jobs; /* 0: not given */
    unsigned bits;
    uint32_t segment_size;
    dcmseal_oaep oaep;
    char **args; /* positional arguments */
    int nargs;
} cli_opts;

/* Parses argv[1..] of a command; returns EX_OK or EX_USAGE (reported). */
int cli_parse(cli_opts *o, int argc, char **argv, unsigned allowed);

/* Maps a status to its sysexits code: the only place that does. */
int cli_exit_code(dcmseal_status st);
/* Prints "dcmseal: WHAT: message" and returns the exit code. */
int cli_report(const char *what, const dcmseal_error *err);
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Opens --token (or $DCMSEAL_TOKEN) and one session; reports failures as
 * "dcmseal: WHAT: ...", WHAT naming the file the command is for. */
int cli_token_open(cli_token *t, const char *uri, const char *what);
void cli_token_close(cli_token *t);

void cli_json_string(FILE *f, const char *s);
void cli_hex(FILE *f, const uint8_t *p, size_t n);

int cli_cmd_encrypt(int argc, char **argv);
int cli_cmd_decrypt(int argc, char **argv);
int cli_cmd_verify(int argc, char **argv);
int cli_cmd_inspect(int argc, char **argv);
int cli_cmd_key(int argc, char **argv);
int cli_cmd_rewrap(int argc, char **argv);
int cli_cmd_health(int argc, char **argv);

/* Calls |fn| for every regular file named in |paths| or, with |recursive|,
 * found below the directories among them (symbolic links are not followed).
 * A directory without |recursive|, or a path that cannot be read, is
 * reported and makes the result non-zero; the walk goes on. Returns EX_OK or
 * the last non-zero code (its own or |fn|'s). */
int cli_walk(const char *const *paths, int npaths, int recursive,
             int (*fn)(const char *path, void *ctx), void *ctx);

#define CLI_JOBS_MAX 64

/* The number of online cores, at least 1, at most CLI_JOBS_MAX. */
int cli_default_jobs(void);

/* cli_walk, with |fn| run on |jobs| (1..CLI_JOBS_MAX) threads; the worker
 * running a call gets its own |workers[i]|. Returns as cli_walk. */
int cli_pool_walk(const char *const *paths, int npaths, int recursive, int jobs,
                  int (*fn)(const char *path, void *worker), void **workers);

/* "2" -> 2; 0 when |s| is not a version number. */
uint32_t cli_version(const char *s);

/* hsm-check and bench (cli/hsmcheck.c, cli/bench.c). */
int cli_cmd_hsm_check(int argc, char **argv);
int cli_cmd_bench(int argc, char **argv);

/* For commands that make scratch keys in the token (cli/interrupt.c): after
 * cli_interrupt_arm, the first SIGINT, SIGTERM or SIGHUP only sets the flag
 * that cli_interrupted returns (the signal number); a second one ends the
 * process at once. cli_interrupt_disarm restores the previous handlers and
 * then delivers a signal that was held. */
void cli_interrupt_arm(void);
int cli_interrupted(void);
void cli_interrupt_disarm(void);

#endif
