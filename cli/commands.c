/* The commands: what runs each one, which options it takes, and everything
 * its help says. `dcmseal COMMAND --help`, the overview, dcmseal(1) and the
 * bash completion are all made from this table (help.c, doc.c), so they
 * cannot disagree with what the parser accepts. Text is wrapped at 76
 * columns; the manual refills it. */
#include <string.h>

#include "cli.h"

const char cli_doc_description[] =
    "Encrypts DICOM files at rest with AES-256-GCM data keys, one per object,\n"
    "wrapped by RSA key-encryption keys (KEKs) that never leave a PKCS#11 token.\n"
    "Each object's DICOM identity (SOP Instance, SOP Class and Study Instance\n"
    "UIDs) is bound into its header as a keyed digest; no UID and no patient\n"
    "data is written in plain text.";

const char cli_doc_notes[] =
    "A token is named by a PKCS#11 URI (RFC 7512), for example\n"
    "  pkcs11:token=archive?module-path=/usr/lib/softhsm/libsofthsm2.so\n"
    "    &pin-source=file:/etc/dcmseal/pin\n"
    "(one word, without the line break). The PIN comes from the URI's\n"
    "pin-source (file:PATH or env:VAR) or from $DCMSEAL_PIN, never from the\n"
    "command line. `dcmseal token list` shows the tokens a module offers.\n"
    "\n"
    "Outputs appear only when complete and authenticated (a temporary file,\n"
    "flushed, then renamed); an existing output is kept unless --force. Inputs\n"
    "are never changed except with --in-place, and then replaced atomically.\n"
    "A file that is not DICOM is encrypted as an opaque object, with a notice\n"
    "on stderr; --strict refuses it instead. So is DICOM whose identity cannot\n"
    "be read completely: of a pipe, only the first MiB is read for it. Every\n"
    "error is one line on stderr that names the file and the cause.";

const char cli_doc_environment[] =
    "DCMSEAL_TOKEN\tthe token URI when --token is not given\n"
    "DCMSEAL_PIN\tthe user PIN, when the URI has no pin-source\n"
    "DCMSEAL_KEY\tthe KEK for new objects when --key is not given\n"
    "DCMSEAL_RETRY_MAX\thow often a transient token failure is retried "
    "(0..20, default 5)\n";

const char cli_doc_exit_status[] =
    "0\tsuccess\n"
    "64\tusage: a bad command line, or an output in the way\n"
    "65\tbad data: not an encrypted object, damaged, or failed authentication\n"
    "69\tkey or token unavailable: missing, disabled, wrong PIN, no token\n"
    "74\tinput or output error\n"
    "130, 143\tstopped by SIGINT or SIGTERM; run the same command again to finish\n";

#define TREE_TEXT                                                                        \
    "With -r, SRC is mirrored into DST: the same relative paths, names and\n"              \
    "times, and permission bits less the umask (0600 while written); DST and\n"            \
    "its parents are created as needed. Directories are opened without\n"                  \
    "following symbolic links, and outputs are never written through one.\n"              \
    "With --in-place, each file is replaced atomically by its result.\n"                   \
    "--jobs workers run at once, each with its own token session. On a\n"                 \
    "terminal a progress line shows files and bytes done, rate and time left;\n"           \
    "a summary follows. SIGINT or SIGTERM stops before the next file (exit\n"              \
    "130, 143) and a lost token stops the run (exit 69): either way, run the\n"            \
    "same command again to finish.\n"                                                     \
    "\n"                                                                                   \
    "Outputs that finish together are committed as a group: one flush of\n"              \
    "their data, then their names, then one flush of each directory\n"                   \
    "(--durability file: a flush per output). A file is reported done only\n"           \
    "once it and its name are on disk; a kill leaves each output whole or\n"             \
    "absent.\n"                                                                           \
    "\n"                                                                                   \
    "A re-run skips what is done. An output counts as done when it is what\n"             \
    "this run would make of its input: for encrypt, an encrypted object with\n"           \
    "the input's plain-text size and modification time; for decrypt, a file\n"           \
    "with the object's plain-text size and modification time. An object that\n"          \
    "rewrap moved to another KEK version (which changes its time) is\n"                  \
    "decrypted and compared with the input instead, so a run after a key\n"              \
    "rotation still skips it. A file planted with the right size and time\n"             \
    "would pass: --verify-existing compares the content of every output it\n"            \
    "skips. Anything else in the way is someone's data: it is kept, with an\n"           \
    "error (exit 64), unless --force. Use --force only after checking what is\n"         \
    "there."

static const cli_option_note encrypt_notes[] = {
    {OPT_OUT, "where the encrypted object goes; - is stdout; with -r, a directory"},
    {0, NULL},
};

static const cli_option_note decrypt_notes[] = {
    {OPT_OUT, "where the plain text goes; - is stdout; with -r, a directory"},
    {OPT_IN_PLACE, "replace each encrypted file by its plain text, atomically; "
                   "files that are not encrypted are skipped"},
    {0, NULL},
};

static const cli_option_note rewrap_notes[] = {
    {OPT_KEY, "KEK to move every object to (default: the KEK that wraps each)"},
    {0, NULL},
};

static const cli_option_note inspect_notes[] = {
    {OPT_JSON, "one JSON object per file, one per line"},
    {0, NULL},
};

static const cli_option_note create_notes[] = {
    {OPT_BITS, "RSA modulus size (default: 3072)"},
    {0, NULL},
};

static const cli_option_note rotate_notes[] = {
    {OPT_BITS, "RSA modulus size (default: that of the highest version)"},
    {0, NULL},
};

static const cli_option_note token_list_notes[] = {
    {OPT_TOKEN, "list the tokens of this URI's module (default: $DCMSEAL_TOKEN's)"},
    {0, NULL},
};

static const cli_option_note bench_notes[] = {
    {OPT_KEY, "measure an existing KEK (its two highest versions, read-only) instead "
              "of a scratch one"},
    {OPT_BITS, "RSA modulus size of the scratch KEK (default: 3072)"},
    {0, NULL},
};

const cli_command cli_commands[] = {
    {"encrypt", "files", cli_cmd_encrypt,
     OPT_BATCH | OPT_KEY | OPT_OUT | OPT_FORCE | OPT_STRICT | OPT_SEGMENT | OPT_OAEP |
         OPT_IN_PLACE | OPT_FOLLOW | OPT_VERIFY_EXISTING | OPT_DURABILITY | OPT_CONCEAL,
     "[OPTIONS] IN -o OUT\n"
     "-r [OPTIONS] SRC -o DST\n"
     "-r --conceal-names [OPTIONS] SRC -o DST\n"
     "--in-place [-r] [OPTIONS] PATH...",
     "encrypt a file, a stream or a whole tree",
     "Encrypts IN (a file, or - for stdin) to OUT (- for stdout) under the\n"
     "primary version of a KEK. The data key is wrapped with RSA-OAEP in the\n"
     "token; the payload is sealed in segments with AES-256-GCM, in constant\n"
     "memory whatever the size.\n"
     "\n" TREE_TEXT "\n"
     "\n"
     "--in-place skips files that are already encrypted.\n"
     "\n"
     "Each object carries an origin proof made in the token (format v2), which\n"
     "decrypt, verify and rewrap check; under a KEK made before dcmseal had\n"
     "origin keys, objects are format v1, without one, with a notice (key\n"
     "upgrade).\n"
     "\n"
     "With --conceal-names, each file goes to DST/ab/cd/<32 hex digits>, a\n"
     "keyed hash (in the token) of its path below SRC, so that no name or\n"
     "folder in DST carries a UID or patient data; its path, mode and time go\n"
     "encrypted into the object, and decrypt -r puts the tree back. The same\n"
     "path always gets the same name, so re-runs and --shard work as usual.",
     encrypt_notes,
     "dcmseal encrypt --key archive-kek IM000123 -o IM000123.dcms\n"
     "dcmseal encrypt -r /pacs/archive -o /pacs/archive.enc --report enc.jsonl\n"
     "dcmseal encrypt --in-place -r /pacs/archive\n"
     "dcmseal encrypt -r /pacs/archive -o /pacs/archive.enc --conceal-names\n"
     "# a stream, in constant memory\n"
     "dcmseal encrypt - -o - < IM000123 > IM000123.dcms"},

    {"decrypt", "files", cli_cmd_decrypt,
     OPT_BATCH | OPT_OUT | OPT_FORCE | OPT_IN_PLACE | OPT_FOLLOW | OPT_VERIFY_EXISTING |
         OPT_DURABILITY,
     "[OPTIONS] IN -o OUT\n"
     "-r [OPTIONS] SRC -o DST\n"
     "--in-place [-r] [OPTIONS] PATH...",
     "decrypt and authenticate a file, a stream or a tree",
     "Decrypts IN (a file, or - for stdin) to OUT (- for stdout). Every segment\n"
     "is authenticated, and OUT appears only when the whole object did: a\n"
     "damaged or altered object leaves nothing behind (exit 65). The KEK version\n"
     "named in the object's header must be in the token and enabled. An object\n"
     "whose origin proof does not verify in the token is refused as \"not made\n"
     "with this archive's keys\" (exit 65); one without a proof (format v1)\n"
     "opens with a notice unless the KEK's policy requires origin.\n"
     "With -r, objects of a tree encrypted with --conceal-names go back to the\n"
     "paths, modes and times they hold.\n"
     "\n" TREE_TEXT,
     decrypt_notes,
     "dcmseal decrypt IM000123.dcms -o IM000123\n"
     "dcmseal decrypt -r /pacs/archive.enc -o /restore"},

    {"verify", "files", cli_cmd_verify, OPT_BATCH | OPT_FOLLOW,
     "[-r] [OPTIONS] PATH...",
     "authenticate objects and check their DICOM identity",
     "Decrypts each object without writing anything: every segment must\n"
     "authenticate and, for a DICOM object, the UIDs in its plain text must be\n"
     "those bound into its header. One OK line per object goes to stdout, in\n"
     "the order the objects were given (below a directory, the walk's order),\n"
     "however many workers verify them.",
     NULL,
     "dcmseal verify IM000123.dcms\n"
     "dcmseal verify -r -q /pacs/archive.enc --report verify.jsonl"},

    {"inspect", "files", cli_cmd_inspect, OPT_JSON | OPT_TOKEN,
     "[--json] [--token URI] FILE...",
     "show the header of encrypted objects (no token needed)",
     "Reads only the header of each FILE (- for stdin): format version, whether\n"
     "it carries an origin proof, DICOM or opaque, the KEK name, version and\n"
     "fingerprint and the RSA-OAEP mechanism of the active key slot, the segment\n"
     "size, and the plain and encrypted sizes. Nothing is decrypted or\n"
     "authenticated: use verify for that. With --token, each object is opened\n"
     "(not its payload): its origin proof is checked in the token, and the\n"
     "original name of a concealed object is shown.",
     inspect_notes,
     "dcmseal inspect IM000123.dcms\n"
     "dcmseal inspect --json /pacs/archive.enc/*/*.dcm"},

    {"rewrap", "files", cli_cmd_rewrap, OPT_BATCH | OPT_KEY | OPT_TO_VERSION | OPT_UPGRADE,
     "[-r] [--key NAME] [--to-version N] [OPTIONS] PATH...\n"
     "--upgrade [-r] [OPTIONS] PATH...",
     "move objects to another KEK version, in place",
     "Moves each object to the primary version of its KEK (or to --to-version)\n"
     "by writing its inactive key slot and flushing it, then zeroing the old\n"
     "slot and flushing again, so that the old version no longer opens it; the\n"
     "header and the payload are never written. A crash at any point leaves an\n"
     "object that opens under the old or the new version, and objects already\n"
     "there are skipped (a slot left behind is zeroed), so a re-run finishes\n"
     "the job. Where the token allows it the\n"
     "data key never leaves it (C_UnwrapKey, then C_WrapKey); --verbose says\n"
     "which path ran.\n"
     "An object's origin proof is checked first and renewed under the target\n"
     "version, never dropped; an object without a valid one is refused (exit\n"
     "65). --upgrade gives format v1 objects a proof, but only after every\n"
     "segment and the DICOM identity authenticated.",
     rewrap_notes,
     "dcmseal key rotate archive-kek\n"
     "dcmseal -v rewrap -r /pacs/archive.enc"},

    {"key create", "keys", cli_cmd_key_create, OPT_TOKEN | OPT_BITS,
     "NAME [--bits 2048|3072]",
     "generate a new KEK, version 1, inside the token",
     "Generates an RSA key pair inside the token. The private half is sensitive\n"
     "and never extractable, may only decrypt and unwrap, never sign, and only\n"
     "with RSA-OAEP where the token takes CKA_ALLOWED_MECHANISMS; the public\n"
     "half may only encrypt and wrap, is private where the token allows and\n"
     "cannot be modified. NAME is 1 to 64 characters of A-Z a-z 0-9 . _ -.\n"
     "Version 1 becomes the primary: new objects are wrapped under it.\n"
     "With it come its origin key and the name's concealment key, HMAC-SHA256\n"
     "keys made in the token that never leave it, and the name's policy\n"
     "requires origin proofs (see key policy).",
     create_notes,
     "dcmseal key create archive-kek"},

    {"key rotate", "keys", cli_cmd_key_rotate, OPT_TOKEN | OPT_BITS,
     "NAME [--bits 2048|3072]",
     "generate the next version of a KEK; it becomes primary",
     "New objects are wrapped under the new version; existing ones still\n"
     "decrypt under theirs until rewrap moves them (docs/KEYS.md has the whole\n"
     "procedure).",
     rotate_notes,
     "dcmseal key rotate archive-kek\n"
     "dcmseal rewrap -r /pacs/archive.enc"},

    {"key list", "keys", cli_cmd_key_list, OPT_TOKEN | OPT_JSON,
     "[NAME] [--json]",
     "list KEK versions, their state and policy",
     "One line per version, under a header: name, version, RSA size, state\n"
     "(primary, enabled or disabled), the RSA-OAEP mechanism that a live wrap\n"
     "and unwrap just used, when it was disabled, and the start of the SHA-256\n"
     "fingerprint of its public key; \"weak:\" lists what a version made by an\n"
     "older dcmseal lacks. Below, each name's policy: minimum\n"
     "decryption version, retention, purge protection. --json has it all.",
     NULL,
     "dcmseal key list\n"
     "dcmseal key list archive-kek --json"},

    {"key disable", "keys", cli_cmd_key_disable, OPT_TOKEN,
     "NAME VERSION",
     "soft delete: the token refuses the version until enabled",
     "Sets CKA_DECRYPT and CKA_UNWRAP false on the private half, so that the\n"
     "token itself refuses to decrypt with the version, and dcmseal refuses to\n"
     "wrap under it (the public half of a version cannot be modified): objects\n"
     "under it fail with exit 69. key enable undoes it.\n"
     "The time is recorded in the token: the retention of key destroy counts\n"
     "from it (disabling again does not restart it).",
     NULL,
     "dcmseal key disable archive-kek 1"},

    {"key enable", "keys", cli_cmd_key_enable, OPT_TOKEN,
     "NAME VERSION",
     "undo key disable",
     "Allows the version to decrypt, unwrap, encrypt and wrap again.",
     NULL,
     "dcmseal key enable archive-kek 1"},

    {"key destroy", "keys", cli_cmd_key_destroy, OPT_TOKEN | OPT_ARCHIVE | OPT_NO_ARCHIVE_CHECK,
     "NAME VERSION --archive DIR [--archive DIR]...\n"
     "NAME VERSION --no-archive-check",
     "destroy a disabled version for good",
     "Destroys both halves of a version in the token: whatever it wraps can\n"
     "never be decrypted again. Refused for the primary or an enabled version;\n"
     "while the name's retention has not passed since the version was disabled\n"
     "(see key policy); and while any object below an --archive DIR still\n"
     "names the version, in either key slot (rewrap them first). Without\n"
     "--archive, only --no-archive-check says to go on without counting. On a\n"
     "terminal the key name must then be typed to confirm.",
     NULL,
     "dcmseal key disable archive-kek 1\n"
     "dcmseal key destroy archive-kek 1 --archive /pacs/archive.enc --archive /tape"},

    {"key policy", "keys", cli_cmd_key_policy,
     OPT_TOKEN | OPT_RETENTION | OPT_PURGE_PROTECTION | OPT_REQUIRE_ORIGIN |
         OPT_NO_REQUIRE_ORIGIN,
     "NAME [--retention DAYS] [--purge-protection]\n"
     "NAME [--require-origin | --no-require-origin]",
     "show or set the retention, purge protection and origin policy of a KEK",
     "Shows the policy of NAME: its minimum decryption version, its retention\n"
     "and whether it has purge protection. --retention sets how many days a\n"
     "version must have been disabled before key destroy may destroy it (key\n"
     "disable records when, in the token). --purge-protection makes that final:\n"
     "the retention can then only grow, and where the token knows\n"
     "CKA_DESTROYABLE, the token itself keeps it. --require-origin refuses\n"
     "objects without an origin proof (format v1) under NAME; key create sets\n"
     "it, --no-require-origin clears it. All live in the token.",
     NULL,
     "dcmseal key policy archive-kek --retention 90 --purge-protection\n"
     "dcmseal key policy archive-kek"},

    {"key min-version", "keys", cli_cmd_key_min_version, OPT_TOKEN,
     "NAME VERSION",
     "refuse versions below VERSION without destroying them",
     "Sets the minimum decryption version of NAME: versions below it are\n"
     "refused for every use (exit 69), but stay in the token. 0 clears it. It\n"
     "cannot exceed the primary version.",
     NULL,
     "dcmseal key min-version archive-kek 2"},

    {"key upgrade", "keys", cli_cmd_key_upgrade, OPT_TOKEN,
     "NAME",
     "give a KEK made before origin keys its origin keys",
     "Makes an origin key for every version of NAME that lacks one, and the\n"
     "name's concealment key, in the token. From then on new objects are\n"
     "format v2, with origin proofs. Then rewrap --upgrade gives the objects\n"
     "made before a proof, and key policy --require-origin refuses any\n"
     "without one (docs/KEYS.md). Running it again changes nothing.",
     NULL,
     "dcmseal key upgrade archive-kek\n"
     "dcmseal rewrap --upgrade -r /pacs/archive.enc\n"
     "dcmseal key policy archive-kek --require-origin"},

    {"token list", "tokens", cli_cmd_token_list, OPT_TOKEN | OPT_JSON,
     "[MODULE | URI] [--json]",
     "the slots and tokens that a PKCS#11 module offers",
     "Lists each slot of a module and the token in it: label, manufacturer,\n"
     "model, serial, whether it is initialized and has a user PIN, and a URI\n"
     "that names it for --token. The module is MODULE (a file) or that of URI;\n"
     "else that of --token or $DCMSEAL_TOKEN; else every module p11-kit\n"
     "registers. Needs no PIN and changes nothing.",
     token_list_notes,
     "dcmseal token list /usr/lib/softhsm/libsofthsm2.so\n"
     "dcmseal token list --json"},

    {"health", "tokens", cli_cmd_health, OPT_TOKEN | OPT_JSON,
     "[--json]",
     "live wrap and unwrap under every enabled version",
     "Opens the token, logs in, and wraps and unwraps a random key under every\n"
     "enabled version. Exit 0 only when every primary version works, else 69.",
     NULL,
     "dcmseal health"},

    {"hsm-check", "tokens", cli_cmd_hsm_check, OPT_TOKEN | OPT_JSON,
     "[--json]",
     "what the token can do for dcmseal, check by check",
     "Probes the token with a scratch KEK made as key create makes one: key\n"
     "generation, RSA-OAEP with SHA-1 and SHA-256, rewrap inside the token,\n"
     "disabled keys refused, the private half neither readable nor wrappable,\n"
     "how many sessions it serves. Each check says whether dcmseal requires it\n"
     "or can do without it, and the PKCS#11 return code that decided it. The\n"
     "scratch key is destroyed, also on Ctrl-C. Exit 0 when dcmseal can use the\n"
     "token, 69 when a required check failed.",
     NULL,
     "dcmseal hsm-check\n"
     "dcmseal hsm-check --json"},

    {"bench", "tokens", cli_cmd_bench,
     OPT_TOKEN | OPT_KEY | OPT_OBJECTS | OPT_SESSIONS | OPT_BITS | OPT_KEEP | OPT_JSON,
     "[--bits 2048|3072] [--keep] [OPTIONS]\n"
     "--key NAME [OPTIONS]",
     "token throughput: unwrap, rewrap and wrap per second",
     "Objects per second and p50/p99 latency of unwrap (C_Decrypt), rewrap in\n"
     "the token and through host memory, and wrap, for each session count, on\n"
     "wrapped keys held in memory (no files). Uses a scratch KEK (v1, v2) that\n"
     "is destroyed afterwards, also on Ctrl-C, unless --keep.",
     bench_notes,
     "dcmseal bench\n"
     "dcmseal bench --objects 1000 --sessions 1,2,4,8 --json"},
};
const size_t cli_ncommands = sizeof cli_commands / sizeof cli_commands[0];

const cli_command *cli_current;

/* Whether |name| ("key create") is |words| (["key", "create"]). */
static int names(const char *name, char *const *words, int nwords, int *used)
{
    const char *space = strchr(name, ' ');
    if (space == NULL) {
        *used = 1;
        return nwords >= 1 && strcmp(words[0], name) == 0;
    }
    *used = 2;
    return nwords >= 2 && strncmp(words[0], name, (size_t)(space - name)) == 0 &&
           words[0][space - name] == '\0' && strcmp(words[1], space + 1) == 0;
}

const cli_command *cli_command_find(char *const *words, int nwords, int *used)
{
    for (size_t i = 0; i < cli_ncommands; i++)
        if (names(cli_commands[i].name, words, nwords, used))
            return &cli_commands[i];
    *used = 0;
    return NULL;
}

int cli_is_group(const char *word)
{
    size_t n = strlen(word);
    for (size_t i = 0; i < cli_ncommands; i++)
        if (strncmp(cli_commands[i].name, word, n) == 0 && cli_commands[i].name[n] == ' ')
            return 1;
    return 0;
}
