/* Shared by the dcmseal command implementations. */
#ifndef DCMSEAL_CLI_H
#define DCMSEAL_CLI_H

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include <dcmseal/engine.h>
#include <dcmseal/pkcs11.h>
#include <private/guard.h>

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
    OPT_IN_PLACE = 1 << 13,
    OPT_REPORT = 1 << 14,
    OPT_QUIET = 1 << 15,
    OPT_SHARD = 1 << 16,
    OPT_FOLLOW = 1 << 17,
    OPT_VERIFY_EXISTING = 1 << 18,
    OPT_DURABILITY = 1 << 19,
    /* What every command over many files takes. */
    OPT_BATCH = OPT_TOKEN | OPT_RECURSIVE | OPT_JOBS | OPT_REPORT | OPT_QUIET | OPT_SHARD,
};

typedef struct cli_opts {
    const char *token, *key, *out, *archive, *report;
    int force, strict, json, recursive, in_place, quiet, follow;
    int verify_existing; /* skip an existing output only once its content is checked */
    int durability_set, durability_file; /* --durability given; "file": each
                                          * output flushed on its own */
    uint32_t shard_k, shard_n; /* --shard K/N; shard_n 0: not given */
    uint32_t to_version;
    int jobs; /* 0: not given */
    unsigned bits;
    uint32_t segment_size;
    dcmseal_oaep oaep;
    char **args; /* positional arguments */
    int nargs;
} cli_opts;

/* Keeps the process's secrets in it (cli/protect.c): no core dumps, not
 * dumpable, OpenSSL's secure heap for key material. Call first in main.
 * Returns 0, 1 when the secure heap could not be locked in memory, or -1
 * (reported) when the process cannot be protected. */
int cli_protect_process(void);

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

/* ---- Walking (walk.c) ----------------------------------------------------- */

/* A directory held open by descriptor, shared by reference count between
 * the walk, the queue, the workers and the finishers: every file in a tree
 * is opened, created, linked, renamed and removed relative to the descriptor
 * of its directory, never by path, so a directory on the way that is renamed
 * or replaced by a symbolic link meanwhile changes nothing. Each holder keeps
 * a reference while it may use |fd|; the descriptor closes with the last. */
typedef struct cli_dir cli_dir;

/* The descriptor, valid while a reference is held. */
int cli_dir_fd(const cli_dir *d);
/* -o: the matching directory below DST (borrowed), which the walk's
 * callback sets for a directory's own entry, before anything in it is
 * delivered; NULL when it could not be made. */
cli_dir *cli_dir_get0_out(const cli_dir *d);
/* Sets it, taking over the reference |out|. */
void cli_dir_set_out(cli_dir *d, cli_dir *out);
/* Another reference to |d| (which may be NULL); returns |d|. */
cli_dir *cli_dir_ref(cli_dir *d);
/* Drops a reference; the last one closes the directory. Accepts NULL. A
 * directory made by cli_dir_make is first made durable in its parent, if
 * nothing has done so yet. */
void cli_dir_unref(cli_dir *d);
/* Makes (unless it exists) and opens the directory |name| in |at| with mode
 * bits |mode| (less the umask), never following a symbolic link. With |at|
 * NULL, |name| is a path as the user gave it (the output root), resolved
 * once. Returns 0 or an errno value (ENOTDIR: something else is there, a
 * symbolic link too). */
int cli_dir_make(cli_dir **out, cli_dir *at, const char *name, mode_t mode);
/* Flushes the parents of every directory on the way to |d| that this run
 * made, so that their names survive a crash: what is below a directory
 * counts as done only after that. Returns 0 or an errno value. */
int cli_dir_durable(cli_dir *d);

typedef enum {
    CLI_ENTRY_FILE,    /* a regular file */
    CLI_ENTRY_DIR,     /* a directory, seen before anything it holds */
    CLI_ENTRY_IGNORED, /* not followed or not ours to touch: see |why| */
    CLI_ENTRY_ERROR,   /* cannot be read: see |why| and |rc| */
} cli_entry_kind;

typedef struct cli_entry {
    const char *path;  /* as found: ROOT/REL, for messages */
    const char *rel;   /* below the command-line path it was found under ("" for
                          that path itself); a named file's rel is its path */
    cli_dir *dir;      /* the open directory that holds it (borrowed); NULL
                          for a directory named on the command line */
    const char *name;  /* its name in |dir|: the last part of |path| */
    cli_dir *self;     /* DIR: the directory itself, open (borrowed) */
    cli_entry_kind kind;
    const char *why;   /* IGNORED, ERROR */
    int rc;            /* ERROR: its exit code */
    int stale;         /* IGNORED: a dead dcmseal's temporary file */
    const struct stat *sb; /* FILE, DIR: as the walk saw it */
} cli_entry;

/* Opens the file |e| relative to its directory for reading (|flags| 0) or
 * also writing (O_RDWR), without following a symbolic link unless |follow|,
 * and without waiting on a FIFO put in its place. Returns the descriptor,
 * with |*sb| its fstat; -1 with errno set when it cannot be opened; -2 when
 * it is no longer a regular file. */
int cli_entry_open(const cli_entry *e, int flags, int follow, struct stat *sb);

typedef struct cli_walk_opts {
    int recursive;
    int follow;        /* follow symbolic links (the default is not to) */
    uint32_t shard_k;  /* with shard_n > 0: only files whose path hash is */
    uint32_t shard_n;  /* shard_k - 1 modulo shard_n; directories always */
    int max_depth;     /* levels held open at most (the named directory is
                          one); deeper directories are an ERROR; 0: only the
                          walk's own bound, 1024 levels */
} cli_walk_opts;

/* What a walk callback returns to end the walk early. */
#define CLI_WALK_STOP (-1)
/* What a pool's visit returns for a file it does not want queued. */
#define CLI_POOL_SKIP (-2)

/* Calls |fn| for every path in |paths| and, with |recursive|, everything
 * below the directories among them, in directory order, each directory
 * before what it holds. A directory named on the command line is opened by
 * its path once; everything below it through directory descriptors opened
 * without following links. Symbolic links are IGNORED unless |follow|,
 * named ones too; so are special files and dcmseal's temporary files (see
 * dcmseal_temp_state). A directory without |recursive| is an ERROR
 * (EX_USAGE). The walk holds two descriptors per level of the directory it
 * is in (the directory and its reader); |e->dir| and |e->self| live only
 * during the call unless |fn| takes a reference. Returns CLI_WALK_STOP when |fn| ended the walk, else the last
 * non-zero code |fn| returned, or EX_OK. Thread-safe: each thread may run
 * its own walk. */
int cli_walk(const char *const *paths, int npaths, const cli_walk_opts *wo,
             int (*fn)(const cli_entry *e, void *ctx), void *ctx);

#define CLI_JOBS_MAX 64
/* Files the walk may queue ahead of the workers (pool.c). */
#define CLI_QUEUE_LEN 256

/* A bounded first-in first-out queue of pointers between threads (pool.c):
 * what feeds the pool's workers and the batch's finishers. */
typedef struct cli_queue {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    void **items;
    size_t cap, head, count;
    int closed;
    int pushers; /* waiting for room */
} cli_queue;

/* An empty open queue for at most |cap| items; EX_OK or EX_OSERR. */
int cli_queue_init(cli_queue *q, size_t cap);
/* Appends |item|, waiting while the queue is full. */
void cli_queue_push(cli_queue *q, void *item);
/* The oldest item, waiting while the queue is empty and open; NULL once it
 * is closed and empty. */
void *cli_queue_pop(cli_queue *q);
/* No more pushes: cli_queue_pop returns what is left, then NULL. */
void cli_queue_close(cli_queue *q);
/* Frees an empty queue. */
void cli_queue_destroy(cli_queue *q);

/* The number of online cores, at least 1, at most CLI_JOBS_MAX. */
int cli_default_jobs(void);

typedef struct cli_pool_ops {
    /* On the walking thread, for every entry in walk order. For a FILE,
     * EX_OK queues it for a worker, CLI_POOL_SKIP does not, and
     * CLI_WALK_STOP ends the walk. */
    int (*visit)(const cli_entry *e, void *ctx);
    /* On a worker thread, with that worker's own context: one queued FILE
     * (|e->sb| is NULL: the file may have changed since the walk; |e->dir|
     * is held until this returns). */
    int (*file)(const cli_entry *e, void *worker);
    void *ctx;
} cli_pool_ops;

/* cli_walk, with queued files handled on |jobs| (1..CLI_JOBS_MAX) threads,
 * worker i getting |workers[i]|. The queue is bounded, so memory is too,
 * however large the tree. Returns as cli_walk. */
int cli_pool_walk(const char *const *paths, int npaths, const cli_walk_opts *wo, int jobs,
                  const cli_pool_ops *ops, void **workers);

/* ---- Batches: one command over many files (batch.c) ------------------------- */

typedef enum { CLI_DONE, CLI_SKIPPED, CLI_IGNORED, CLI_FAILED } cli_outcome;

/* Where a result's line goes, if it has one. */
typedef enum { CLI_SAY_NONE, CLI_SAY_STDOUT, CLI_SAY_NOTICE, CLI_SAY_VERBOSE } cli_say;

/* What happened to one file. */
typedef struct cli_result {
    cli_outcome outcome;
    const char *reason;        /* SKIPPED, IGNORED */
    int kind;                  /* 1 DICOM, 0 opaque, -1 unknown */
    uint64_t bytes;            /* plain-text bytes handled */
    dcmseal_wrap_meta wrap;    /* the key, when kek_name[0] */
    int host_path;             /* rewrap: the DEK passed through host memory */
    char output[PATH_MAX];     /* the file written, if not the input ("") */
    dcmseal_error err;         /* FAILED */
    const char *culprit;       /* FAILED: the file |err| is about (NULL: path) */
    cli_say say;
    char line[320];
    /* Set by a command's |one| that leaves the blocking end of its work (a
     * flush, a link into place, an unlock) to the batch's finisher threads,
     * so that its worker's token session goes on to the next file instead
     * of waiting for the disk: its |finish| then completes this result,
     * which is recorded only after that, so that a file counts as done only
     * once it is durable. */
    int pending;
    dcmseal_outfile_t *out_file; /* encrypt, decrypt: the output to commit */
    int fd;                      /* the file worked on, kept open for |finish| */
    struct stat sb;              /* what it was when read */
    dcmseal_rewrap_report rewrap;
} cli_result;

typedef struct cli_worker cli_worker;

typedef struct cli_batch_cmd {
    const char *name;      /* "encrypt" */
    const char *done;      /* what CLI_DONE is called: "encrypted" */
    const char *skipped;   /* what CLI_SKIPPED usually means: "already done" */
    int wrap;              /* workers wrap new objects: needs a key name */
    int counts_bytes;      /* progress in bytes as well as files */
    int in_place;          /* always works in place, as rewrap does */
    void (*one)(cli_worker *w, const cli_entry *e, cli_result *res);
    /* For a result |one| left pending: completes it, on a finisher thread,
     * and closes |res->fd|. NULL when |one| never leaves one. */
    void (*finish)(const cli_opts *o, const cli_entry *e, cli_result *res);
    /* Finisher threads (0: 16, at most 128); as many results may wait in
     * |finish| at once, and twice as many in the queue before them. */
    int finishers;
} cli_batch_cmd;

/* One worker thread's own token session and key ring. */
struct cli_worker {
    const cli_opts *o;
    void *batch; /* the run it belongs to (batch.c's) */
    dcmseal_session_t *session;
    dcmseal_token_ring_t *ring;
    char current[DCMSEAL_KEK_NAME_MAX + 1]; /* rewrap: the name |ring| targets */
};

/* Opens a walked file (cli_entry_open) for a command's |one|: -1 with |res|
 * failed when it cannot be opened, or ignored when it is no longer a regular
 * file. */
int cli_open_input(const cli_worker *w, const cli_entry *e, int flags, struct stat *sb,
                   cli_result *res);

/* Runs |cmd| over o->args (with -o: one source directory mirrored into
 * o->out) on o->jobs workers: progress line, --report, summary, stop on
 * SIGINT/SIGTERM or a lost token. Returns the exit status of the run. */
int cli_batch_run(const cli_batch_cmd *cmd, const cli_opts *o);

/* The key new objects are wrapped under: --key, $DCMSEAL_KEY or the token
 * URI's object= attribute; NULL when none is given. */
const char *cli_wrap_key(const cli_opts *o, const dcmseal_token_t *token);

/* "2" -> 2; 0 when |s| is not a version number. */
uint32_t cli_version(const char *s);

/* hsm-check and bench (cli/hsmcheck.c, cli/bench.c). */
int cli_cmd_hsm_check(int argc, char **argv);
int cli_cmd_bench(int argc, char **argv);

/* For commands that must finish what they hold before they stop
 * (cli/interrupt.c): after cli_interrupt_arm, the first SIGINT, SIGTERM or
 * SIGHUP only sets the flag that cli_interrupted returns (the signal number)
 * and says on stderr that the command is |doing| something first; a second
 * one ends the process at once. cli_interrupt_disarm restores the previous
 * handlers and then delivers a signal that was held. */
void cli_interrupt_arm(const char *doing);
int cli_interrupted(void);
void cli_interrupt_disarm(void);

#endif
