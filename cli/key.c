/* key create|rotate|list|enable|disable|destroy|min-version, and health. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
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
static int key_make(int argc, char **argv, int rotate)
{
    cli_opts o;
    cli_token t;
    dcmseal_error err;
    dcmseal_kek_info info;
    int rc = cli_parse(&o, argc, argv, OPT_TOKEN | OPT_BITS);
    if (rc != EX_OK)
        return rc;
    if (o.nargs != 1)
        return cli_usage_error("key %s takes one NAME", argv[0]);
    if ((rc = cli_token_open(&t, o.token, o.args[0])) != EX_OK)
        return rc;
    dcmseal_status st =
        rotate ? dcmseal_kek_rotate(t.session, &info, o.args[0], o.bits, &err)
               : dcmseal_kek_create(t.session, &info, o.args[0], o.bits ? o.bits : 3072, &err);
    if (st == DCMSEAL_OK)
        print_created(&t, &info);
    else
        rc = cli_report(o.args[0], &err);
    cli_token_close(&t);
    return rc;
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

/* Wraps and unwraps a random key under |k|: the token really serves it.
 * Returns the OAEP variant that worked through |oaep|. */
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
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(back, sizeof back);
    return st;
}

static void print_key(const dcmseal_kek_info *k, const char *oaep, int json, int first)
{
    if (json) {
        fputs(first ? "{\"name\":" : ",{\"name\":", stdout);
        cli_json_string(stdout, k->name);
        printf(",\"version\":%u,\"bits\":%u,\"state\":\"%s\",\"primary\":%s,\"oaep\":\"%s\","
               "\"fingerprint\":\"", k->version, k->bits, k->enabled ? "enabled" : "disabled",
               k->primary ? "true" : "false", oaep);
        cli_hex(stdout, k->fingerprint, sizeof k->fingerprint);
        printf("\",\"min_decryption_version\":%u,\"weak\":[", k->min_version);
        print_weak(stdout, k->weak, 1);
        fputs("]}", stdout);
    } else {
        printf("%-20s v%-3u RSA-%u  %-8s %-7s oaep:%-6s sha256:", k->name, k->version, k->bits,
               k->enabled ? "enabled" : "disabled", k->primary ? "primary" : "", oaep);
        cli_hex(stdout, k->fingerprint, sizeof k->fingerprint);
        printf(" min:%u", k->min_version);
        /* Versions made before this dcmseal, or on a token that refused
         * part of the template: they work, with less protection. */
        if (k->weak) {
            fputs(" weak:", stdout);
            print_weak(stdout, k->weak, 0);
        }
        putchar('\n');
    }
}

/* key list [NAME] and health share the walk over versions; health also
 * probes each enabled version and fails unless every primary works. */
static int key_report(int argc, char **argv, int health)
{
    cli_opts o;
    cli_token t;
    dcmseal_error err;
    size_t n = 0;
    int rc = cli_parse(&o, argc, argv, OPT_TOKEN | OPT_JSON);
    if (rc != EX_OK)
        return rc;
    if (o.nargs > (health ? 0 : 1))
        return cli_usage_error("%s: too many arguments", argv[0]);
    if ((rc = cli_token_open(&t, o.token, "token")) != EX_OK) {
        if (health)
            printf(o.json ? "{\"token\":\"unreachable\",\"healthy\":false}\n"
                          : "token: unreachable or login failed\n");
        return rc;
    }
    dcmseal_kek_info *keys = list_keys(&t, o.nargs ? o.args[0] : NULL, &n, &err);
    if (keys == NULL) {
        rc = cli_report("token", &err);
        goto out;
    }
    if (health && !o.json)
        printf("token '%s': reachable, login ok\n", dcmseal_token_get0_label(t.token));
    int primaries = 0, primaries_ok = 0;
    if (o.json)
        fputs(health ? "{\"token\":\"ok\",\"keys\":[" : "[", stdout);
    for (size_t i = 0; i < n; i++) {
        dcmseal_oaep oaep = DCMSEAL_OAEP_AUTO;
        const char *mech = "-";
        if (keys[i].enabled) {
            dcmseal_status st = probe(&t, &keys[i], &oaep, &err);
            mech = st == DCMSEAL_OK ? dcmseal_oaep_name(oaep) : "FAIL";
            if (st != DCMSEAL_OK && !o.json)
                fprintf(stderr, "dcmseal: %s\n", err.message);
            primaries_ok += keys[i].primary && st == DCMSEAL_OK;
        }
        primaries += keys[i].primary;
        print_key(&keys[i], mech, o.json, i == 0);
    }
    /* Every name with an enabled version has one primary. */
    int healthy = n > 0 && primaries > 0 && primaries_ok == primaries;
    if (o.json)
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

/* key enable|disable|destroy NAME VERSION */
static int key_state(int argc, char **argv, const char *verb)
{
    cli_opts o;
    cli_token t;
    dcmseal_error err;
    const int destroy = strcmp(verb, "destroy") == 0;
    int rc = cli_parse(&o, argc, argv, OPT_TOKEN | (destroy ? OPT_ARCHIVE : 0));
    if (rc != EX_OK)
        return rc;
    uint32_t version = o.nargs == 2 ? cli_version(o.args[1]) : 0;
    if (version == 0)
        return cli_usage_error("key %s takes NAME VERSION", verb);
    const char *name = o.args[0];
    if ((rc = cli_token_open(&t, o.token, name)) != EX_OK)
        return rc;
    dcmseal_status st = DCMSEAL_OK;
    if (destroy) {
        /* Soft delete first, purge second: refuse to strand data. */
        size_t n = 0;
        dcmseal_kek_info *keys = list_keys(&t, name, &n, &err);
        const dcmseal_kek_info *k = NULL;
        for (size_t i = 0; keys != NULL && i < n; i++)
            if (keys[i].version == version)
                k = &keys[i];
        depends d = {name, version, 0, 0};
        if (keys == NULL)
            st = err.status;
        else if (k == NULL)
            st = dcmseal_fail(&err, DCMSEAL_E_KEY, "key '%s' v%u not found on token '%s'", name,
                              version, dcmseal_token_get0_label(t.token));
        else if (k->primary || k->enabled)
            st = dcmseal_fail(&err, DCMSEAL_E_USAGE,
                              "key '%s' v%u is %s; rotate, rewrap, then 'key disable %s %u' "
                              "before destroying it", name, version,
                              k->primary ? "the primary version" : "enabled", name, version);
        else if (o.archive != NULL &&
                 (rc = cli_walk(&o.archive, 1, &(cli_walk_opts){.recursive = 1},
                                count_dependent, &d)) == EX_OK &&
                 d.count + d.other > 0)
            st = dcmseal_fail(&err, DCMSEAL_E_USAGE,
                              "key '%s' v%u: %lu objects under %s still depend on it, and %lu "
                              "more hold a key wrapped under it in their other slot; rewrap "
                              "them first", name, version, d.count, o.archive, d.other);
        else if (rc == EX_OK)
            st = dcmseal_kek_destroy(t.session, name, version, &err);
        free(keys);
    } else {
        st = dcmseal_kek_set_enabled(t.session, name, version, strcmp(verb, "enable") == 0,
                                     &err);
    }
    if (st != DCMSEAL_OK)
        rc = cli_report(name, &err);
    else if (rc == EX_OK)
        printf("key '%s' v%u %s on token '%s'\n", name, version,
               destroy ? "destroyed" : strcmp(verb, "enable") == 0 ? "enabled" : "disabled",
               dcmseal_token_get0_label(t.token));
    cli_token_close(&t);
    return rc;
}

/* key min-version NAME VERSION (0 clears) */
static int key_min_version(int argc, char **argv)
{
    cli_opts o;
    cli_token t;
    dcmseal_error err;
    int rc = cli_parse(&o, argc, argv, OPT_TOKEN);
    if (rc != EX_OK)
        return rc;
    uint32_t version = o.nargs == 2 ? cli_version(o.args[1]) : 0;
    if (version == 0 && (o.nargs != 2 || strcmp(o.args[1], "0") != 0))
        return cli_usage_error("key min-version takes NAME VERSION (0 clears)");
    const char *name = o.args[0];
    if ((rc = cli_token_open(&t, o.token, name)) != EX_OK)
        return rc;
    if (dcmseal_kek_set_min_version(t.session, name, version, &err) != DCMSEAL_OK)
        rc = cli_report(name, &err);
    else
        printf("key '%s': minimum decryption version %u%s on token '%s'\n", name, version,
               version == 0 ? " (none)" : "", dcmseal_token_get0_label(t.token));
    cli_token_close(&t);
    return rc;
}

int cli_cmd_key(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("key needs a subcommand: create, rotate, list, enable, "
                               "disable, destroy or min-version");
    const char *sub = argv[1];
    if (strcmp(sub, "create") == 0 || strcmp(sub, "rotate") == 0)
        return key_make(argc - 1, argv + 1, sub[0] == 'r');
    if (strcmp(sub, "list") == 0)
        return key_report(argc - 1, argv + 1, 0);
    if (strcmp(sub, "enable") == 0 || strcmp(sub, "disable") == 0 || strcmp(sub, "destroy") == 0)
        return key_state(argc - 1, argv + 1, sub);
    if (strcmp(sub, "min-version") == 0)
        return key_min_version(argc - 1, argv + 1);
    return cli_usage_error("unknown key subcommand '%s'", sub);
}

int cli_cmd_health(int argc, char **argv)
{
    return key_report(argc, argv, 1);
}
