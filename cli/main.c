/* dcmseal: the command-line front end. Argument parsing and output only;
 * every byte of crypto happens in libdcmseal. */
#define _GNU_SOURCE
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <dcmseal/engine.h>
#include <dcmseal/pkcs11.h>

#include "cli.h"

static const char USAGE[] =
    "usage: dcmseal [--verbose] COMMAND [OPTIONS] ...\n"
    "\n"
    "Encrypts DICOM files at rest with AES-256-GCM data keys wrapped by RSA\n"
    "key-encryption keys that never leave a PKCS#11 token.\n"
    "\n"
    "commands:\n"
    "  encrypt [--key NAME] [--strict] [--force] [--segment-size BYTES]\n"
    "          [--oaep auto|sha1|sha256] IN -o OUT\n"
    "                     encrypt IN (a file or - for stdin) to OUT (- for stdout)\n"
    "  encrypt -r SRC -o DST, encrypt --in-place [-r] PATH...   (and TREE OPTIONS)\n"
    "                     a whole tree: mirrored into DST with the same relative\n"
    "                     paths, names and times, permission bits less the umask,\n"
    "                     or each file replaced atomically by its encrypted form\n"
    "  decrypt [--force] IN -o OUT\n"
    "                     decrypt and authenticate IN; OUT appears only when whole\n"
    "  decrypt -r SRC -o DST, decrypt --in-place [-r] PATH...   (and TREE OPTIONS)\n"
    "  verify [-r] PATH...\n"
    "                     authenticate every segment and the DICOM identity\n"
    "  inspect [--json] FILE\n"
    "                     show the header (format, key, mechanism, sizes); no token\n"
    "  key create NAME [--bits 2048|3072]\n"
    "                     generate KEK NAME, version 1, inside the token\n"
    "  key rotate NAME [--bits 2048|3072]\n"
    "                     generate the next version; it becomes primary\n"
    "  key list [NAME] [--json]\n"
    "                     versions, size, state, primary, OAEP mechanism, fingerprint,\n"
    "                     and what older versions lack (weak:)\n"
    "  key disable NAME VERSION / key enable NAME VERSION\n"
    "                     objects under a disabled version fail with exit 69\n"
    "  key destroy NAME VERSION [--archive DIR]\n"
    "                     only a disabled, non-primary version that no object\n"
    "                     under DIR still names, in either key slot\n"
    "  key min-version NAME VERSION\n"
    "                     refuse versions below VERSION without destroying them\n"
    "                     (0 clears)\n"
    "  rewrap [-r] [--key NAME] [--to-version N] PATH...   (and TREE OPTIONS)\n"
    "                     move objects to the primary (or given) version by\n"
    "                     rewriting one key slot in place and zeroing the old one;\n"
    "                     the payload is untouched\n"
    "  health [--json]    token reachable, login, live wrap/unwrap of every enabled\n"
    "                     version; exit 0 only when every primary works\n"
    "  hsm-check [--json] what the token can do for dcmseal: key generation, RSA-OAEP\n"
    "                     SHA-1/SHA-256, in-token rewrap, disabled keys refused,\n"
    "                     private key not extractable, sessions; one line per check\n"
    "                     with the PKCS#11 return code; scratch keys are destroyed;\n"
    "                     exit 0 when dcmseal can use the token, 69 when not\n"
    "  bench [--key NAME] [--objects N] [--sessions 1,2,...] [--bits 2048|3072]\n"
    "        [--keep] [--json]\n"
    "                     objects/s and p50/p99 latency of unwrap (C_Decrypt),\n"
    "                     rewrap (in token and via host) and wrap, per session count;\n"
    "                     uses a scratch KEK (v1 -> v2) destroyed after unless --keep\n"
    "\n"
    "TREE OPTIONS (encrypt, decrypt, verify, rewrap over many files):\n"
    "  -r, --recursive    walk directories; every regular file is handled\n"
    "  --jobs N           worker threads, one token session each (default: cores)\n"
    "  --report FILE      one JSON object per file, then a summary line\n"
    "  --shard K/N        only the K-th of N disjoint parts of the tree, chosen by\n"
    "                     a hash of each file's path below the given directory\n"
    "  --follow-symlinks  follow symbolic links (default: report and skip them);\n"
    "                     not with --in-place or rewrap\n"
    "  --force            replace existing outputs that an earlier run did not make\n"
    "  --verify-existing  (encrypt, decrypt) skip an existing output only once its\n"
    "                     content is checked with the token; with --in-place,\n"
    "                     authenticate each encrypted object before skipping it\n"
    "  --durability group|file\n"
    "                     (encrypt, decrypt) group (default): the outputs that finish\n"
    "                     together share one flush of their data, then get their\n"
    "                     names, then one flush per directory; file: each output\n"
    "                     flushed on its own. Either way a file is reported done\n"
    "                     only once it and its name are on disk\n"
    "  -q, --quiet        no progress line, notices or OK lines; errors and the\n"
    "                     summary remain\n"
    "  Re-running a command skips what is done: an output is done when its\n"
    "  plain-text size and modification time match its input's (a file planted\n"
    "  with both would pass: --verify-existing checks content). On a terminal a\n"
    "  progress line shows files and bytes done, rate and time left. SIGINT or\n"
    "  SIGTERM stops before the next file (exit 130, 143); a lost token stops the\n"
    "  run (exit 69). Either way, run the same command again to finish.\n"
    "\n"
    "common options:\n"
    "  --token URI        PKCS#11 URI of the token (default: $DCMSEAL_TOKEN), e.g.\n"
    "                     pkcs11:token=dcmseal?module-path=/usr/lib/softhsm/libsofthsm2.so\n"
    "                     &pin-source=file:/path/to/pin\n"
    "                     The PIN comes from pin-source (file:PATH or env:VAR) or\n"
    "                     $DCMSEAL_PIN, never from the command line. A pin-source\n"
    "                     file must be yours and closed to others (chmod 600).\n"
    "  --key NAME         KEK for encrypt (default: the URI's object=, $DCMSEAL_KEY)\n"
    "  -v, --verbose      say which mechanism wrapped each key, and similar detail\n"
    "  -h, --help         this text\n"
    "  --version          the version\n"
    "\n"
    "A file that is not DICOM is encrypted as an opaque object, with a notice on\n"
    "stderr; --strict refuses it instead. So is DICOM whose identity cannot be read\n"
    "completely: of a pipe, only the first MiB is read for it. Existing outputs are\n"
    "kept unless --force.\n"
    "Outputs appear only when complete and authenticated; inputs are never changed\n"
    "except with --in-place, and then replaced atomically.\n"
    "\n"
    "exit status: 0 ok, 64 usage, 65 bad data or failed authentication,\n"
    "             69 key or token unavailable, 74 I/O error\n";

int cli_verbose;

int cli_exit_code(dcmseal_status st)
{
    /* The one place where statuses become sysexits codes. */
    switch (st) {
    case DCMSEAL_OK: return EX_OK;
    case DCMSEAL_E_USAGE: return EX_USAGE;
    case DCMSEAL_E_FORMAT:
    case DCMSEAL_E_AUTH:
    case DCMSEAL_E_NOT_DICOM: return EX_DATAERR;
    case DCMSEAL_E_KEY:
    case DCMSEAL_E_TOKEN: return EX_UNAVAILABLE;
    case DCMSEAL_E_IO: return EX_IOERR;
    case DCMSEAL_E_INTERNAL: return EX_SOFTWARE;
    }
    return EX_SOFTWARE;
}

int cli_report(const char *what, const dcmseal_error *err)
{
    fprintf(stderr, "dcmseal: %s: %s\n", what, err->message);
    return cli_exit_code(err->status);
}

int cli_token_open(cli_token *t, const char *uri, const char *what)
{
    dcmseal_error err;
    memset(t, 0, sizeof *t);
    if (uri == NULL)
        uri = getenv("DCMSEAL_TOKEN");
    if (uri == NULL || uri[0] == '\0')
        return cli_usage_error("no token: give --token URI or set DCMSEAL_TOKEN");
    if (dcmseal_token_open(&t->token, uri, &err) != DCMSEAL_OK ||
        dcmseal_session_open(&t->session, t->token, &err) != DCMSEAL_OK) {
        cli_token_close(t);
        return cli_report(what, &err);
    }
    return EX_OK;
}

void cli_token_close(cli_token *t)
{
    dcmseal_session_free(t->session);
    dcmseal_token_free(t->token);
    memset(t, 0, sizeof *t);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0, 0, 0, 0},
    };
    int c;
    /* First, before any key or PIN is in memory. */
    const int protect = cli_protect_process();
    if (protect < 0)
        return EX_OSERR;
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
    /* "+": stop at the command word; each command parses its own options. */
    while ((c = getopt_long(argc, argv, "+vh", opts, NULL)) != -1) {
        switch (c) {
        case 'v': cli_verbose = 1; break;
        case 'h': fputs(USAGE, stdout); return EX_OK;
        case 'V': puts("dcmseal " DCMSEAL_VERSION_STRING); return EX_OK;
        default: return cli_usage_error("bad option");
        }
    }
    if (protect == 1 && cli_verbose)
        fputs("dcmseal: note: the secure heap for keys could not be locked in memory "
              "(RLIMIT_MEMLOCK); keys are kept out of core dumps but could reach swap\n",
              stderr);
    if (optind >= argc)
        return cli_usage_error("no command");
    const char *cmd = argv[optind];
    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    optind = 0; /* full reset, so getopt_long starts over for the command */
    if (strcmp(cmd, "encrypt") == 0)
        return cli_cmd_encrypt(sub_argc, sub_argv);
    if (strcmp(cmd, "decrypt") == 0)
        return cli_cmd_decrypt(sub_argc, sub_argv);
    if (strcmp(cmd, "verify") == 0)
        return cli_cmd_verify(sub_argc, sub_argv);
    if (strcmp(cmd, "inspect") == 0)
        return cli_cmd_inspect(sub_argc, sub_argv);
    if (strcmp(cmd, "key") == 0)
        return cli_cmd_key(sub_argc, sub_argv);
    if (strcmp(cmd, "rewrap") == 0)
        return cli_cmd_rewrap(sub_argc, sub_argv);
    if (strcmp(cmd, "health") == 0)
        return cli_cmd_health(sub_argc, sub_argv);
    if (strcmp(cmd, "hsm-check") == 0)
        return cli_cmd_hsm_check(sub_argc, sub_argv);
    if (strcmp(cmd, "bench") == 0)
        return cli_cmd_bench(sub_argc, sub_argv);
    if (strcmp(cmd, "help") == 0) {
        fputs(USAGE, stdout);
        return EX_OK;
    }
    return cli_usage_error("unknown command '%s'", cmd);
}
