/* Shared by the dcmseal command implementations. */
#ifndef DCMSEAL_CLI_H
#define DCMSEAL_CLI_H

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include <dcmseal/engine.h>
#include <dcmseal/pkcs11.h>
#include <private/guard.h>

extern int cli_verbose;

typedef struct cli_token {
    dcmseal_token_t *token;
    dcmseal_session_t *session;
} cli_token;

/* ---- Options (args.c) -------------------------------------------------------
 *
 * Every option dcmseal knows is parsed wherever it stands, before or after
 * the command words; each command says which ones it accepts (the command
 * table, commands.c), and the others are refused with a line naming them. */
/* A set of OPT_* bits: more than 32 options. */
typedef uint64_t cli_optset;

enum {
    OPT_TOKEN = 1u << 0,
    OPT_KEY = 1u << 1,
    OPT_OUT = 1u << 2,
    OPT_FORCE = 1u << 3,
    OPT_STRICT = 1u << 4,
    OPT_JSON = 1u << 5,
    OPT_BITS = 1u << 6,
    OPT_SEGMENT = 1u << 7,
    OPT_OAEP = 1u << 8,
    OPT_RECURSIVE = 1u << 9,
    OPT_TO_VERSION = 1u << 10,
    OPT_ARCHIVE = 1u << 11,
    OPT_JOBS = 1u << 12,
    OPT_IN_PLACE = 1u << 13,
    OPT_REPORT = 1u << 14,
    OPT_QUIET = 1u << 15,
    OPT_SHARD = 1u << 16,
    OPT_FOLLOW = 1u << 17,
    OPT_NO_ARCHIVE_CHECK = 1u << 18,
    OPT_RETENTION = 1u << 19,
    OPT_PURGE_PROTECTION = 1u << 20,
    OPT_OBJECTS = 1u << 21,
    OPT_SESSIONS = 1u << 22,
    OPT_KEEP = 1u << 23,
    OPT_VERBOSE = 1u << 24,
    OPT_HELP = 1u << 25,
    OPT_VERSION = 1u << 26,
    OPT_VERIFY_EXISTING = 1u << 27,
    OPT_DURABILITY = 1u << 28,
    /* Past 32 bits: cli_optset is 64 bits wide. */
    OPT_CONCEAL = 1ull << 32,           /* encrypt --conceal-names */
    OPT_UPGRADE = 1ull << 33,           /* rewrap --upgrade */
    OPT_REQUIRE_ORIGIN = 1ull << 34,    /* key policy --require-origin */
    OPT_NO_REQUIRE_ORIGIN = 1ull << 35, /* key policy --no-require-origin */
    /* What every command accepts. */
    OPT_ALWAYS = OPT_VERBOSE | OPT_HELP | OPT_VERSION,
    /* What every command over many files takes. */
    OPT_BATCH = OPT_TOKEN | OPT_RECURSIVE | OPT_JOBS | OPT_REPORT | OPT_QUIET | OPT_SHARD,
};

#define CLI_ARCHIVES_MAX 16
#define CLI_SESSIONS_MAX 16

typedef struct cli_opts {
    cli_optset given; /* the OPT_* that appeared */
    const char *token, *key, *out, *report;
    const char *archives[CLI_ARCHIVES_MAX]; /* --archive, in order */
    int narchives;
    int force, strict, json, recursive, in_place, quiet, follow, conceal, upgrade;
    int verify_existing; /* skip an existing output only once its content is checked */
    int durability_file; /* --durability file: each output flushed on its own */
    int no_archive_check, purge_protection, keep;
    uint32_t shard_k, shard_n; /* --shard K/N; shard_n 0: not given */
    uint32_t to_version;
    uint32_t retention_days;   /* with OPT_RETENTION in |given| */
    uint32_t objects;          /* bench --objects; 0: not given */
    int sessions[CLI_SESSIONS_MAX]; /* bench --sessions */
    size_t nsessions;
    int jobs; /* 0: not given */
    unsigned bits;
    uint32_t segment_size;
    dcmseal_oaep oaep;
    char **args; /* the other arguments, in order; after dispatch, those
                    that follow the command words */
    int nargs;
    char problem[256]; /* the first thing wrong with the command line */
} cli_opts;

/* Keeps the process's secrets in it (cli/protect.c): no core dumps, not
 * dumpable, OpenSSL's secure heap for key material. Call first in main.
 * Returns 0, 1 when the secure heap could not be locked in memory, or -1
 * (reported) when the process cannot be protected. */
int cli_protect_process(void);

/* What the option table says about one option (for help and the manual). */
typedef struct cli_option {
    cli_optset flag;
    const char *name; /* long name, without "--" */
    char letter;      /* short name, or 0 */
    const char *arg;  /* metavariable of its value, or NULL */
    const char *help; /* what it does, for any command that takes it */
} cli_option;

/* The options, in the order help lists them. */
extern const cli_option cli_options[];
extern const size_t cli_noptions;

/* Parses all of argv[1..]: options wherever they stand (up to "--") and
 * the other arguments, in order, into o->args (free with cli_opts_free).
 * Never prints: the first problem (an unknown option, a missing or bad
 * value) is kept in o->problem and parsing goes on, so that --help and the
 * command can still be found. Returns EX_OK, EX_USAGE (o->problem says why)
 * or EX_OSERR. */
int cli_parse(cli_opts *o, int argc, char **argv);
/* EX_OK when every option given is in |allowed|, else EX_USAGE with
 * o->problem naming the first that is not. */
int cli_check_options(cli_opts *o, cli_optset allowed);
void cli_opts_free(cli_opts *o);

/* "2" -> 2; 0 when |s| is not a version number. */
uint32_t cli_version(const char *s);

/* ---- Commands (commands.c) and their help (help.c) ------------------------- */

/* A command's own wording of an option it takes. */
typedef struct cli_option_note {
    cli_optset flag;
    const char *help;
} cli_option_note;

typedef struct cli_command {
    const char *name;     /* "encrypt", "key create" */
    const char *group;    /* what the overview lists it under */
    int (*run)(const cli_opts *o);
    cli_optset options;   /* the OPT_* it accepts besides OPT_ALWAYS */
    const char *synopsis; /* lines of what follows "dcmseal NAME" */
    const char *summary;  /* one line for the overview */
    const char *text;     /* paragraphs, wrapped at 76 columns */
    const cli_option_note *notes; /* ended by {0} */
    const char *examples; /* lines; "# " starts a comment line */
} cli_command;

/* The commands, in the order help lists them. */
extern const cli_command cli_commands[];
extern const size_t cli_ncommands;

/* The command that |words| start with, and how many words name it; NULL
 * when none does. */
const cli_command *cli_command_find(char *const *words, int nwords, int *used);
/* Whether |word| is a command group ("key", "token"). */
int cli_is_group(const char *word);

/* The command being run, for error lines (NULL before dispatch). */
extern const cli_command *cli_current;

/* Parses, then runs the command or prints help: main() after set-up. */
int cli_dispatch(int argc, char **argv);

/* The help of everything, of a group ("key") or of one command. */
void cli_help_overview(FILE *f);
void cli_help_group(FILE *f, const char *group);
void cli_help_command(FILE *f, const cli_command *c);
/* The wording of option |opt| for |c| (its note, else the table's). */
const char *cli_option_help(const cli_command *c, const cli_option *opt);

/* What both help and the manual say besides the commands. */
extern const char cli_doc_description[]; /* what dcmseal does */
extern const char cli_doc_environment[];  /* "NAME\tparagraph" lines */
extern const char cli_doc_exit_status[];
extern const char cli_doc_notes[];        /* outputs, inputs, opaque objects */

/* ---- What the user sees (report.c) --------------------------------------- */

/* Maps a status to its sysexits code: the only place that does. */
int cli_exit_code(dcmseal_status st);
/* Prints "dcmseal: WHAT: message" and returns the exit code. */
int cli_report(const char *what, const dcmseal_error *err);
/* Prints "dcmseal: MESSAGE (see dcmseal COMMAND --help)"; returns EX_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "file" or "files" for |n| */
const char *cli_plural(unsigned long n, const char *one, const char *many);
/* Writes |text| to |f| from column |col|, breaking lines at spaces before
 * |width| columns and starting each further line at column |indent|.
 * Newlines in |text| are kept. */
void cli_wrap(FILE *f, const char *text, int col, int indent, int width);

void cli_json_string(FILE *f, const char *s);
void cli_hex(FILE *f, const uint8_t *p, size_t n);

/* ---- The token (token.c) ---------------------------------------------------- */

/* The token URI: --token, else $DCMSEAL_TOKEN; NULL when neither. */
const char *cli_token_uri(const cli_opts *o);
/* Opens --token (or $DCMSEAL_TOKEN) and one session; reports failures as
 * "dcmseal: WHAT: ...", WHAT naming the file the command is for. */
int cli_token_open(cli_token *t, const char *uri, const char *what);
void cli_token_close(cli_token *t);

/* "none", "present", "verified": the words of reports and --json. */
const char *cli_origin_name(dcmseal_origin o);

/* A token with a key ring over it: what opens objects, and with |for_wrap|
 * also wraps new ones (cli_wrap_key). Reports failures as "dcmseal: WHAT:
 * ..."; returns EX_OK or the exit code. */
typedef struct cli_ring {
    cli_token tok;
    dcmseal_token_ring_t *ring;
} cli_ring;
int cli_ring_open(cli_ring *r, const cli_opts *o, int for_wrap, const char *what);
void cli_ring_close(cli_ring *r);

/* The key new objects are wrapped under: --key, $DCMSEAL_KEY or the token
 * URI's object= attribute; NULL when none is given. */
const char *cli_wrap_key(const cli_opts *o, const dcmseal_token_t *token);

/* ---- Command implementations ------------------------------------------------ */

int cli_cmd_encrypt(const cli_opts *o);
int cli_cmd_decrypt(const cli_opts *o);
int cli_cmd_verify(const cli_opts *o);
int cli_cmd_inspect(const cli_opts *o);
int cli_cmd_rewrap(const cli_opts *o);
int cli_cmd_key_create(const cli_opts *o);
int cli_cmd_key_rotate(const cli_opts *o);
int cli_cmd_key_list(const cli_opts *o);
int cli_cmd_key_policy(const cli_opts *o);
int cli_cmd_key_enable(const cli_opts *o);
int cli_cmd_key_disable(const cli_opts *o);
int cli_cmd_key_destroy(const cli_opts *o);
int cli_cmd_key_min_version(const cli_opts *o);
int cli_cmd_key_upgrade(const cli_opts *o);
int cli_cmd_token_list(const cli_opts *o);
int cli_cmd_health(const cli_opts *o);
int cli_cmd_hsm_check(const cli_opts *o);
int cli_cmd_bench(const cli_opts *o);

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
    unsigned long seq; /* its place in the walk (cli_pool_walk numbers them) */
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
    pthread_cond_t gathered; /* |want| items are queued (cli_queue_pop_many) */
    void **items;
    struct timespec *at; /* when each item was pushed */
    size_t cap, head, count;
    size_t want;
    int closed;
    int gathering;
    int pushers; /* waiting for room */
} cli_queue;

/* An empty open queue for at most |cap| items; EX_OK or EX_OSERR. */
int cli_queue_init(cli_queue *q, size_t cap);
/* Appends |item|, waiting while the queue is full. */
void cli_queue_push(cli_queue *q, void *item);
/* The oldest item, waiting while the queue is empty and open; NULL once it
 * is closed and empty. */
void *cli_queue_pop(cli_queue *q);
/* Up to |max| of the oldest items into |items|, waiting while the queue is
 * empty and open; then, with |wait_ns|, while fewer than |max| are queued,
 * until the oldest has waited |wait_ns| (woken once, not per item pushed).
 * Of several takers one gathers at a time. Returns how many; 0 once the
 * queue is closed and empty. */
size_t cli_queue_pop_many(cli_queue *q, void **items, size_t max, long wait_ns);
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
 * worker i getting |workers[i]|. Every entry gets its |seq| in walk order,
 * 0, 1, 2, ..., for whoever wants to tell of them in that order. The queue
 * is bounded, so memory is too, however large the tree. Returns as
 * cli_walk. */
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
    int format_version;        /* of the object, 0 when unknown */
    dcmseal_origin origin;     /* with format_version: its proof (docs/FORMAT.md) */
    int upgraded;              /* rewrap --upgrade gave it a proof */
    int host_path;             /* rewrap: the DEK passed through host memory */
    char output[PATH_MAX];     /* the file written, if not the input ("") */
    /* The original relative path a concealed object holds, when it was
     * opened (decrypt, verify): --report lists it beside both names. */
    char original[DCMSEAL_META_PATH_MAX + 1];
    /* An output that does not go to the copy of its input's folder (see
     * cli_batch_out_dir): that folder (a reference, which tree_finish drops,
     * or the batch when the file is not written) and the output's name in
     * it. */
    cli_dir *out_dir;
    char out_name[NAME_MAX + 1];
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
    int directory;               /* FAILED: a directory of the output tree */
    dcmseal_outfile_t *out_file; /* encrypt, decrypt: the output to commit */
    int fd;                      /* the file worked on, kept open for |finish| */
    struct stat sb;              /* what it was when read */
    dcmseal_rewrap_report rewrap;
} cli_result;

typedef struct cli_worker cli_worker;

/* A group commit's bounds (cli_batch_cmd.group, .group_wait_ms): files
 * finishing a little apart share a flush, while a kill loses little work
 * and the report stays live. */
#define CLI_GROUP_FILES 64
#define CLI_GROUP_WAIT_MS 20

typedef struct cli_batch_cmd {
    const char *name;      /* "encrypt" */
    const char *done;      /* what CLI_DONE is called: "encrypted" */
    const char *skipped;   /* what CLI_SKIPPED usually means: "already done" */
    int wrap;              /* workers wrap new objects: needs a key name */
    int counts_bytes;      /* progress in bytes as well as files */
    int in_place;          /* always works in place, as rewrap does */
    void (*one)(cli_worker *w, const cli_entry *e, cli_result *res);
    /* For the results |one| left pending: completes |n| of them (a group
     * commit, n <= |group|, when |group| > 1; else one), on a finisher
     * thread, and closes each res->fd. NULL when |one| never leaves one. */
    void (*finish)(const cli_opts *o, cli_entry *const *e, cli_result *const *res, size_t n);
    /* How results reach |finish|, on |finishers| threads (0: 16; with
     * |group|, 0: 4): with |group| > 1, up to |group| at once, up to
     * |group_bytes| of data (0: no limit; one alone may exceed it), which
     * one finisher at a time lets gather for up to |group_wait_ms| after
     * its first result was left; otherwise one at a time. Twice as many
     * results as can be in hand wait in the queue before them. */
    int finishers;
    unsigned group;
    uint64_t group_bytes;
    unsigned group_wait_ms;
} cli_batch_cmd;

/* One worker thread's own token session and key ring. */
struct cli_worker {
    const cli_opts *o;
    void *batch; /* the run it belongs to (batch.c's) */
    dcmseal_session_t *session;
    dcmseal_token_ring_t *ring;
    const char *wrap_key; /* encrypt: the KEK name (--conceal-names names by it) */
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

/* The folder |dirs| ("ab/cd": relative, '/'-separated, no empty, "." or
 * ".." part; "" for DST itself) below a run's -o DST, into |*out| (a
 * reference, cli_dir_unref it). Made where it is missing (mode 0777 less the
 * umask), relative to DST's descriptor, never through a symbolic link, once
 * per run whatever the number of workers asking. For outputs that have no
 * copy of their input's folder: concealed names, and the original paths
 * that concealed objects restore. Returns 0 or an errno value. */
int cli_batch_out_dir(cli_dir **out, const cli_worker *w, const char *dirs);

/* Whether the directory |dir_fd|, at |rel| below the walk's root, is a
 * fan-out folder of a concealed tree: named "ab" or "ab/cd" (lower-case
 * hex), not empty, and holding nothing but such a folder's entries (the
 * next level's folders, or concealed names that start with its path).
 * decrypt -r mirrors no such folder, so that restoring a concealed tree
 * makes none; any other folder, "d1" or an empty "ab", is mirrored. */
int cli_fanout_dir(const char *rel, int dir_fd);

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
