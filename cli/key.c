/* key create|rotate|list|disable|enable|destroy|policy|min-version, and health. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "cli.h"

/* The protections a version lacks (dcmseal_kek_info.weak), as `key list`
 * names them. */
static const struct {
    unsigned bit;
    const char *name;
} weak_names[] = {
    {DCMSEAL_KEK_WEAK_SHARED_ID, "shared-id"},
    {DCMSEAL_KEK_WEAK_MECHANISMS, "any-mechanism"},
    {DCMSEAL_KEK_WEAK_SIGN, "may-sign"},
    {DCMSEAL_KEK_WEAK_PUBLIC, "public-half-open"},
    {DCMSEAL_KEK_NO_PUBLIC, "no-public-half"},
    {DCMSEAL_KEK_WEAK_ORIGIN, "origin-any-mechanism"},
};

/* "a,b" (text) or "\"a\",\"b\"" (json) of |weak|. */
static void print_weak(FILE *f, unsigned weak, int json)
{
    const char *sep = "";
    for (size_t i = 0; i < sizeof weak_names / sizeof weak_names[0]; i++) {
        if (!(weak & weak_names[i].bit))
            continue;
        fprintf(f, json ? "%s\"%s\"" : "%s%s", sep, weak_names[i].name);
        sep = ",";
    }
}

static void print_created(const cli_token *t, const dcmseal_kek_info *k)
{
    printf("key '%s' v%u, RSA-%u, sha256:", k->name, k->version, k->bits);
    cli_hex(stdout, k->fingerprint, sizeof k->fingerprint);
    printf(", is now primary on token '%s'\n", dcmseal_token_get0_label(t->token));
    if (k->weak) {
        fprintf(stderr, "dcmseal: %s: note: token '%s' refused part of dcmseal's key template; "
                        "this version lacks: ", k->name, dcmseal_token_get0_label(t->token));
        print_weak(stderr, k->weak, 0);
        fputs(" (`dcmseal hsm-check` shows what the token enforces)\n", stderr);
    }
}

/* key create NAME / key rotate NAME */
static int key_make(const cli_opts *o, int rotate)
{
    cli_token t;
    dcmseal_error err;
    dcmseal_kek_info info;
    int rc;
    if (o->nargs != 1)
        return cli_usage_error("key %s takes one NAME", rotate ? "rotate" : "create");
    if ((rc = cli_token_open(&t, o->token, o->args[0])) != EX_OK)
        return rc;
    dcmseal_status st =
        rotate ? dcmseal_kek_rotate(t.session, &info, o->args[0], o->bits, &err)
               : dcmseal_kek_create(t.session, &info, o->args[0], o->bits ? o->bits : 3072, &err);
    if (st == DCMSEAL_OK)
        print_created(&t, &info);
    else
        rc = cli_report(o->args[0], &err);
    cli_token_close(&t);
    return rc;
}

int cli_cmd_key_create(const cli_opts *o)
{
    return key_make(o, 0);
}

int cli_cmd_key_rotate(const cli_opts *o)
{
    return key_make(o, 1);
}

/* All versions (of |name|, or of every key), allocated; NULL on failure. */
static dcmseal_kek_info *list_keys(const cli_token *t, const char *name, size_t *n,
                                   dcmseal_error *err)
{
    dcmseal_kek_info *keys = NULL;
    if (dcmseal_kek_list(t->session, NULL, 0, n, name, err) != DCMSEAL_OK)
        return NULL;
    if ((keys = calloc(*n + 1, sizeof *keys)) == NULL) {
        dcmseal_fail(err, DCMSEAL_E_INTERNAL, "out of memory");
        return NULL;
    }
    if (*n > 0 && dcmseal_kek_list(t->session, keys, *n, n, name, err) != DCMSEAL_OK) {
        free(keys);
        return NULL;
    }
    return keys;
}

/* Wraps and unwraps a random key under |k|, and makes and checks an origin
 * proof with its origin key: the token really serves it. Returns the OAEP
 * variant that worked through |oaep|. */
static dcmseal_status probe(const cli_token *t, const dcmseal_kek_info *k, dcmseal_oaep *oaep,
                            dcmseal_error *err)
{
    uint8_t key[32], wrapped[DCMSEAL_WRAPPED_MAX], back[64];
    size_t wlen = 0, blen = 0;
    dcmseal_status st = RAND_bytes(key, sizeof key) == 1 ? DCMSEAL_OK : DCMSEAL_E_INTERNAL;
    if (st == DCMSEAL_OK)
        st = dcmseal_kek_wrap(t->session, wrapped, sizeof wrapped, &wlen, oaep, k,
                              DCMSEAL_OAEP_AUTO, key, sizeof key, err);
    if (st == DCMSEAL_OK)
        st = dcmseal_kek_unwrap(t->session, back, sizeof back, &blen, k, *oaep, wrapped, wlen, err);
    if (st == DCMSEAL_OK && (blen != sizeof key || memcmp(back, key, sizeof key) != 0))
        st = dcmseal_fail(err, DCMSEAL_E_KEY, "key '%s' v%u: unwrap returned another key",
                          k->name, k->version);
    /* Its origin key too: without it, none of the version's objects opens. */
    uint8_t proof[DCMSEAL_HMAC_LEN];
    if (st == DCMSEAL_OK && k->has_origin &&
        (st = dcmseal_origin_sign(t->session, proof, k->name, k->version, key, sizeof key,
                                  err)) == DCMSEAL_OK)
        st = dcmseal_origin_verify(t->session, k->name, k->version, key, sizeof key, proof, err);
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(back, sizeof back);
    return st;
}

/* The text columns of key list and health: 80 wide. */
#define KEY_COLUMNS "%-16s %-4s %-8s %-8s %-6s %-16s %s"

/* "2026-12-01 09:21" (|iso|: "2026-12-01T09:21:00Z"), or "-" for 0. */
static const char *when(char *buf, size_t cap, int64_t t, int iso)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (t == 0 || gmtime_r(&tt, &tm) == NULL ||
        strftime(buf, cap, iso ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%d %H:%M", &tm) == 0)
        snprintf(buf, cap, "-");
    return buf;
}

static void print_key(const dcmseal_kek_info *k, const char *oaep, int json, int first)
{
    char at[32];
    if (json) {
        fputs(first ? "{\"name\":" : ",{\"name\":", stdout);
        cli_json_string(stdout, k->name);
        printf(",\"version\":%u,\"bits\":%u,\"state\":\"%s\",\"primary\":%s,\"oaep\":\"%s\","
               "\"fingerprint\":\"", k->version, k->bits, k->enabled ? "enabled" : "disabled",
               k->primary ? "true" : "false", oaep);
        cli_hex(stdout, k->fingerprint, sizeof k->fingerprint);
        printf("\",\"min_decryption_version\":%u,\"origin_key\":%s,\"require_origin\":%s,"
               "\"weak\":[",
               k->min_version, k->has_origin ? "true" : "false",
               k->require_origin ? "true" : "false");
        print_weak(stdout, k->weak, 1);
        fputs("],\"disabled_at\":", stdout);
        if (k->disabled_at != 0)
            printf("\"%s\"", when(at, sizeof at, k->disabled_at, 1));
        else
            fputs("null", stdout);
        printf(",\"retention_days\":%u,\"purge_protection\":%s,\"purge_locked\":%s}",
               k->retention_days, k->purge_protection ? "true" : "false",
               k->purge_locked ? "true" : "false");
        return;
    }
    char version[16], bits[16], fp[2 * 8 + 1];
    snprintf(version, sizeof version, "v%u", k->version);
    snprintf(bits, sizeof bits, "RSA-%u", k->bits);
    for (size_t i = 0; i < 8; i++) /* enough to tell keys apart; --json has it all */
        snprintf(fp + 2 * i, 3, "%02x", k->fingerprint[i]);
    printf(KEY_COLUMNS, k->name, version, bits,
           k->primary ? "primary" : k->enabled ? "enabled" : "disabled", oaep,
           k->enabled ? "-" : k->disabled_at ? when(at, sizeof at, k->disabled_at, 0) : "?", fp);
    /* Versions made before this dcmseal, or on a token that refused part
     * of the template: they work, with less protection. At the row's end,
     * past the 80 columns, where only such versions reach. */
    if (k->weak || !k->has_origin) {
        fputs(" weak:", stdout);
        print_weak(stdout, k->weak, 0);
        /* Made before origin keys: `key upgrade` gives it one. */
        if (!k->has_origin)
            fputs(k->weak ? ",no-origin-key" : "no-origin-key", stdout);
    }
    putchar('\n');
}

/* "minimum decryption version 2; retention 30 days, purge protection" for
 * the name of |k|; "" when it has no policy. */
static void policy_text(char *buf, size_t cap, const dcmseal_kek_info *k)
{
    size_t len = 0;
    buf[0] = '\0';
    if (k->min_version)
        len += (size_t)snprintf(buf, cap, "minimum decryption version %u", k->min_version);
    if (k->retention_days && len < cap)
        len += (size_t)snprintf(buf + len, cap - len, "%sretention %u %s", len ? "; " : "",
                                k->retention_days, cli_plural(k->retention_days, "day", "days"));
    if (k->purge_protection && len < cap)
        snprintf(buf + len, cap - len, ", purge protection (%s)",
                 k->purge_locked ? "the token refuses to remove it"
                                 : "kept by dcmseal; the token does not know CKA_DESTROYABLE");
}

/* key list [NAME] and health share the walk over versions; health also
 * probes each enabled version and fails unless every primary works. */
static int key_report(const cli_opts *o, int health)
{
    cli_token t;
    dcmseal_error err;
    size_t n = 0;
    int rc;
    const char *name = o->nargs ? o->args[0] : NULL;
    if (o->nargs > (health ? 0 : 1))
        return cli_usage_error("%s: too many arguments", health ? "health" : "key list");
    if ((rc = cli_token_open(&t, o->token, "token")) != EX_OK) {
        if (health)
            printf(o->json ? "{\"token\":\"unreachable\",\"healthy\":false}\n"
                           : "token: unreachable or login failed\n");
        return rc;
    }
    const char *label = dcmseal_token_get0_label(t.token);
    dcmseal_kek_info *keys = list_keys(&t, name, &n, &err);
    if (keys == NULL) {
        rc = cli_report("token", &err);
        goto out;
    }
    if (!health && name != NULL && n == 0) {
        /* As for every other use of a name that is not there. */
        fprintf(stderr, "dcmseal: key '%s' not found on token '%s'\n", name, label);
        rc = EX_UNAVAILABLE;
        goto out;
    }
    if (health && !o->json)
        printf("token '%s': reachable, login ok\n", label);
    if (!o->json && n == 0)
        printf("no dcmseal keys on token '%s' (see dcmseal key create --help)\n", label);
    else if (!o->json)
        printf(KEY_COLUMNS "\n", "NAME", "VER", "SIZE", "STATE", "OAEP", "DISABLED (UTC)",
               "FINGERPRINT");
    int primaries = 0, primaries_ok = 0;
    if (o->json)
        fputs(health ? "{\"token\":\"ok\",\"keys\":[" : "[", stdout);
    for (size_t i = 0; i < n; i++) {
        dcmseal_oaep oaep = DCMSEAL_OAEP_AUTO;
        const char *mech = "-";
        if (keys[i].enabled) {
            dcmseal_status st = probe(&t, &keys[i], &oaep, &err);
            mech = st == DCMSEAL_OK ? dcmseal_oaep_name(oaep) : "FAIL";
            if (st != DCMSEAL_OK && !o->json)
                fprintf(stderr, "dcmseal: %s\n", err.message);
            primaries_ok += keys[i].primary && st == DCMSEAL_OK;
        }
        primaries += keys[i].primary;
        print_key(&keys[i], mech, o->json, i == 0);
    }
    /* The policy of each name, under the table. */
    for (size_t i = 0, blank = 0; !o->json && i < n; i++) {
        char policy[256];
        policy_text(policy, sizeof policy, &keys[i]);
        if (policy[0] && (i + 1 == n || strcmp(keys[i + 1].name, keys[i].name) != 0))
            printf("%s%s: %s\n", blank++ ? "" : "\n", keys[i].name, policy);
    }
    /* Every name with an enabled version has one primary. */
    int healthy = n > 0 && primaries > 0 && primaries_ok == primaries;
    if (o->json)
        printf(health ? "],\"healthy\":%s}\n" : "]\n", healthy ? "true" : "false");
    else if (health)
        printf("%s\n", healthy ? "healthy: every primary version wraps and unwraps"
                               : "UNHEALTHY: a primary version failed, or there is none");
    if (health && !healthy)
        rc = EX_UNAVAILABLE;
out:
    free(keys);
    cli_token_close(&t);
    return rc;
}

int cli_cmd_key_list(const cli_opts *o)
{
    return key_report(o, 0);
}

int cli_cmd_health(const cli_opts *o)
{
    return key_report(o, 1);
}

typedef struct depends {
    const char *name;
    uint32_t version;
    unsigned long count;  /* objects whose active slot names the version */
    unsigned long other;  /* and whose other slot does (a rewrap that did not
                             finish, or made by dcmseal before 0.2) */
} depends;

static int names(const dcmseal_wrap_meta *m, const depends *d)
{
    return m->kek_version == d->version && strcmp(m->kek_name, d->name) == 0;
}

/* Counts the objects with a slot that names the key version: the active one,
 * or the other one, which still holds the DEK wrapped under it. A file that
 * cannot be read might be one of them, so it fails the count. */
static int count_dependent(const cli_entry *e, void *ctx)
{
    depends *d = ctx;
    dcmseal_header_info info;
    int fd = -1;
    if (e->kind == CLI_ENTRY_ERROR) {
        fprintf(stderr, "dcmseal: %s: %s\n", e->path, e->why);
        return e->rc;
    }
    if (e->kind != CLI_ENTRY_FILE)
        return EX_OK;
    if ((fd = open(e->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
        fprintf(stderr, "dcmseal: %s: cannot open: %s\n", e->path, strerror(errno));
        return EX_IOERR;
    }
    if (dcmseal_inspect_fd(&info, NULL, fd, NULL) == DCMSEAL_OK) {
        if (names(&info.wrap, d))
            d->count++;
        else if (info.other_slot_state == 1 && names(&info.other_wrap, d))
            d->other++;
    }
    close(fd);
    return EX_OK;
}

/* NAME VERSION, checked; 0 (reported) when they are not. */
static uint32_t name_version(const cli_opts *o, const char *cmd)
{
    uint32_t version = o->nargs == 2 ? cli_version(o->args[1]) : 0;
    if (version == 0)
        cli_usage_error("key %s takes NAME VERSION", cmd);
    return version;
}

/* key enable|disable NAME VERSION */
static int key_enable(const cli_opts *o, int enable)
{
    cli_token t;
    dcmseal_error err;
    int rc;
    uint32_t version = name_version(o, enable ? "enable" : "disable");
    if (version == 0)
        return EX_USAGE;
    const char *name = o->args[0];
    if ((rc = cli_token_open(&t, o->token, name)) != EX_OK)
        return rc;
    if (dcmseal_kek_set_enabled(t.session, name, version, enable, &err) != DCMSEAL_OK)
        rc = cli_report(name, &err);
    else
        printf("key '%s' v%u %s on token '%s'\n", name, version, enable ? "enabled" : "disabled",
               dcmseal_token_get0_label(t.token));
    cli_token_close(&t);
    return rc;
}

int cli_cmd_key_enable(const cli_opts *o)
{
    return key_enable(o, 1);
}

int cli_cmd_key_disable(const cli_opts *o)
{
    return key_enable(o, 0);
}

/* On a terminal, the operator types the key's name to go on; elsewhere
 * (scripts) the options already said what to check. Returns EX_OK to go on. */
static int confirm_destroy(const char *name, uint32_t version, const char *label)
{
    char line[DCMSEAL_KEK_NAME_MAX + 8];
    if (!isatty(STDIN_FILENO))
        return EX_OK;
    fprintf(stderr,
            "dcmseal: key '%s' v%u on token '%s' will be destroyed for good: whatever it\n"
            "wraps can never be decrypted again. Type the key name to destroy it: ",
            name, version, label);
    fflush(stderr);
    if (fgets(line, sizeof line, stdin) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strcmp(line, name) == 0)
            return EX_OK;
    }
    fprintf(stderr, "dcmseal: %s: not destroyed: the name typed was not '%s'\n", name, name);
    return EX_USAGE;
}

/* key destroy NAME VERSION: soft delete first, then purge, and only when no
 * object that is known of still needs the version. */
int cli_cmd_key_destroy(const cli_opts *o)
{
    cli_token t;
    dcmseal_error err;
    size_t n = 0;
    int rc;
    uint32_t version = name_version(o, "destroy");
    if (version == 0)
        return EX_USAGE;
    const char *name = o->args[0];
    if (o->narchives == 0 && !o->no_archive_check)
        return cli_usage_error("key destroy: give --archive DIR for every place that may hold "
                               "objects under '%s' v%u, or --no-archive-check", name, version);
    if (o->narchives > 0 && o->no_archive_check)
        return cli_usage_error("key destroy: --archive and --no-archive-check exclude each "
                               "other");
    if ((rc = cli_token_open(&t, o->token, name)) != EX_OK)
        return rc;
    const char *label = dcmseal_token_get0_label(t.token);
    dcmseal_kek_info *keys = list_keys(&t, name, &n, &err);
    const dcmseal_kek_info *k = NULL;
    for (size_t i = 0; keys != NULL && i < n; i++)
        if (keys[i].version == version)
            k = &keys[i];
    depends d = {name, version, 0, 0};
    dcmseal_status st = keys == NULL ? err.status : DCMSEAL_OK;
    if (st == DCMSEAL_OK && k == NULL)
        st = dcmseal_fail(&err, DCMSEAL_E_KEY, "key '%s' v%u not found on token '%s'", name,
                          version, label);
    if (st == DCMSEAL_OK && (k->primary || k->enabled))
        st = dcmseal_fail(&err, DCMSEAL_E_USAGE,
                          "key '%s' v%u is %s; rotate, rewrap, then 'key disable %s %u' "
                          "before destroying it", name, version,
                          k->primary ? "the primary version" : "enabled", name, version);
    if (st == DCMSEAL_OK)
        st = dcmseal_kek_destroy_check(t.session, name, version, &err);
    for (int i = 0; st == DCMSEAL_OK && rc == EX_OK && i < o->narchives; i++)
        rc = cli_walk(&o->archives[i], 1, &(cli_walk_opts){.recursive = 1}, count_dependent, &d);
    if (st == DCMSEAL_OK && rc == EX_OK && d.count + d.other > 0) {
        char more[128] = "";
        if (d.other > 0)
            snprintf(more, sizeof more, ", and %lu more %s a key wrapped under it in %s other slot",
                     d.other, cli_plural(d.other, "holds", "hold"),
                     cli_plural(d.other, "its", "their"));
        st = dcmseal_fail(&err, DCMSEAL_E_USAGE,
                          "key '%s' v%u: %lu %s under %s still %s on it%s; rewrap them first",
                          name, version, d.count, cli_plural(d.count, "object", "objects"),
                          o->narchives == 1 ? o->archives[0] : "the --archive directories",
                          cli_plural(d.count, "depends", "depend"), more);
    }
    if (st == DCMSEAL_OK && rc == EX_OK && (rc = confirm_destroy(name, version, label)) == EX_OK)
        st = dcmseal_kek_destroy(t.session, name, version, &err);
    free(keys);
    if (st != DCMSEAL_OK)
        rc = cli_report(name, &err);
    else if (rc == EX_OK)
        printf("key '%s' v%u destroyed on token '%s'\n", name, version, label);
    cli_token_close(&t);
    return rc;
}

/* key policy NAME [--retention DAYS] [--purge-protection]: shows the
 * policy of NAME, after changing it when asked to. */
int cli_cmd_key_policy(const cli_opts *o)
{
    cli_token t;
    dcmseal_error err;
    size_t n = 0;
    int rc;
    char policy[256];
    if (o->nargs != 1)
        return cli_usage_error("key policy takes one NAME");
    const char *name = o->args[0];
    if ((rc = cli_token_open(&t, o->token, name)) != EX_OK)
        return rc;
    const char *label = dcmseal_token_get0_label(t.token);
    dcmseal_kek_info *keys = list_keys(&t, name, &n, &err);
    dcmseal_status st = keys == NULL ? err.status : DCMSEAL_OK;
    if (st == DCMSEAL_OK && n == 0)
        st = dcmseal_fail(&err, DCMSEAL_E_KEY, "key '%s' not found on token '%s'", name, label);
    const cli_optset origin = o->given & (OPT_REQUIRE_ORIGIN | OPT_NO_REQUIRE_ORIGIN);
    if (st == DCMSEAL_OK && origin == (OPT_REQUIRE_ORIGIN | OPT_NO_REQUIRE_ORIGIN))
        st = dcmseal_fail(&err, DCMSEAL_E_USAGE,
                          "--require-origin and --no-require-origin contradict each other");
    if (st == DCMSEAL_OK && origin != 0)
        st = dcmseal_kek_set_require_origin(t.session, name, origin == OPT_REQUIRE_ORIGIN, &err);
    if (st == DCMSEAL_OK && (o->given & (OPT_RETENTION | OPT_PURGE_PROTECTION))) {
        uint32_t days = o->given & OPT_RETENTION ? o->retention_days : keys[0].retention_days;
        st = dcmseal_kek_set_retention(t.session, name, days, o->purge_protection, &err);
    }
    /* What the token holds now, whatever was asked. */
    if (st == DCMSEAL_OK && (o->given & ~OPT_ALWAYS & ~OPT_TOKEN)) {
        free(keys);
        keys = list_keys(&t, name, &n, &err);
        st = keys == NULL ? err.status : DCMSEAL_OK;
    }
    if (st == DCMSEAL_OK) {
        policy_text(policy, sizeof policy, &keys[0]);
        printf("key '%s' on token '%s': %s\n", name, label,
               policy[0] ? policy : "no minimum decryption version, no retention");
        printf("key '%s' on token '%s': origin proofs %s\n", name, label,
               keys[0].require_origin
                   ? "required (objects without one are refused)"
                   : "not required (format v1 objects without one open, with a notice)");
    } else {
        rc = cli_report(name, &err);
    }
    free(keys);
    cli_token_close(&t);
    return rc;
}

/* key min-version NAME VERSION (0 clears) */
int cli_cmd_key_min_version(const cli_opts *o)
{
    cli_token t;
    dcmseal_error err;
    int rc;
    uint32_t version = o->nargs == 2 ? cli_version(o->args[1]) : 0;
    if (version == 0 && (o->nargs != 2 || strcmp(o->args[1], "0") != 0))
        return cli_usage_error("key min-version takes NAME VERSION (0 clears)");
    const char *name = o->args[0];
    if ((rc = cli_token_open(&t, o->token, name)) != EX_OK)
        return rc;
    if (dcmseal_kek_set_min_version(t.session, name, version, &err) != DCMSEAL_OK)
        rc = cli_report(name, &err);
    else
        printf("key '%s': minimum decryption version %u%s on token '%s'\n", name, version,
               version == 0 ? " (none)" : "", dcmseal_token_get0_label(t.token));
    cli_token_close(&t);
    return rc;
}

/* key upgrade NAME: origin keys for a name made before dcmseal had them */
int cli_cmd_key_upgrade(const cli_opts *o)
{
    cli_token t;
    dcmseal_error err;
    unsigned added = 0;
    int rc;
    if (o->nargs != 1)
        return cli_usage_error("key upgrade takes one NAME");
    const char *name = o->args[0];
    if ((rc = cli_token_open(&t, o->token, name)) != EX_OK)
        return rc;
    if (dcmseal_kek_upgrade(t.session, name, &added, &err) != DCMSEAL_OK) {
        rc = cli_report(name, &err);
    } else if (added == 0) {
        printf("key '%s' on token '%s': nothing to add, every version has its origin key\n",
               name, dcmseal_token_get0_label(t.token));
    } else {
        printf("key '%s' on token '%s': %u keys added; new objects are format v2, with "
               "origin proofs\n",
               name, dcmseal_token_get0_label(t.token), added);
        printf("next: `dcmseal rewrap --upgrade -r ARCHIVE` for the objects made before, then "
               "`dcmseal key policy %s --require-origin` (docs/KEYS.md)\n",
               name);
    }
    cli_token_close(&t);
    return rc;
}
