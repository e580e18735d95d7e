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

static void print_created(const cli_token *t, const dcmseal_kek_info *k)
{
    printf("key '%s' v%u, RSA-%u, sha256:", k->name, k->version, k->bits);
    cli_hex(stdout, k->fingerprint, sizeof k->fingerprint);
    printf(", is now primary on token '%s'\n", dcmseal_token_get0_label(t->token));
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

/* The text columns of key list and health. */
#define KEY_COLUMNS "%-20s %-4s %-8s %-8s %-7s %-6s %-8s %s\n"

static void print_key(const dcmseal_kek_info *k, const char *oaep, int json, int first)
{
    if (json) {
        fputs(first ? "{\"name\":" : ",{\"name\":", stdout);
        cli_json_string(stdout, k->name);
        printf(",\"version\":%u,\"bits\":%u,\"state\":\"%s\",\"primary\":%s,\"oaep\":\"%s\","
               "\"fingerprint\":\"", k->version, k->bits, k->enabled ? "enabled" : "disabled",
               k->primary ? "true" : "false", oaep);
        cli_hex(stdout, k->fingerprint, sizeof k->fingerprint);
        printf("\",\"min_decryption_version\":%u}", k->min_version);
        return;
    }
    char version[16], bits[16], min[16], fp[2 * DCMSEAL_KEK_FINGERPRINT_LEN + 8] = "sha256:";
    snprintf(version, sizeof version, "v%u", k->version);
    snprintf(bits, sizeof bits, "RSA-%u", k->bits);
    snprintf(min, sizeof min, "%u", k->min_version);
    for (size_t i = 0; i < 8; i++) /* enough to tell keys apart; --json has it all */
        snprintf(fp + 7 + 2 * i, 3, "%02x", k->fingerprint[i]);
    printf(KEY_COLUMNS, k->name, version, bits, k->enabled ? "enabled" : "disabled",
           k->primary ? "primary" : "-", oaep, min, fp);
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
        printf(KEY_COLUMNS, "NAME", "VER", "SIZE", "STATE", "PRIMARY", "OAEP", "MIN-VER",
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
    unsigned long count;
} depends;

/* Counts the objects whose active slot names the key version. A file that
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
    if (dcmseal_inspect_fd(&info, NULL, fd, NULL) == DCMSEAL_OK &&
        info.wrap.kek_version == d->version && strcmp(info.wrap.kek_name, d->name) == 0)
        d->count++;
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

/* key destroy NAME VERSION: soft delete first, purge second; refuse to
 * strand data. */
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
    if ((rc = cli_token_open(&t, o->token, name)) != EX_OK)
        return rc;
    dcmseal_status st = DCMSEAL_OK;
    dcmseal_kek_info *keys = list_keys(&t, name, &n, &err);
    const dcmseal_kek_info *k = NULL;
    for (size_t i = 0; keys != NULL && i < n; i++)
        if (keys[i].version == version)
            k = &keys[i];
    depends d = {name, version, 0};
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
    for (int i = 0; st == DCMSEAL_OK && i < o->narchives && rc == EX_OK; i++)
        rc = cli_walk(&o->archives[i], 1, &(cli_walk_opts){.recursive = 1}, count_dependent, &d);
    if (st != DCMSEAL_OK)
        ;
    else if (rc == EX_OK && d.count > 0)
        st = dcmseal_fail(&err, DCMSEAL_E_USAGE,
                          "key '%s' v%u: %lu %s under %s still %s on it; rewrap them first",
                          name, version, d.count, cli_plural(d.count, "object", "objects"),
                          o->narchives == 1 ? o->archives[0] : "the archives",
                          cli_plural(d.count, "depends", "depend"));
    else if (rc == EX_OK)
        st = dcmseal_kek_destroy(t.session, name, version, &err);
    free(keys);
    if (st != DCMSEAL_OK)
        rc = cli_report(name, &err);
    else if (rc == EX_OK)
        printf("key '%s' v%u destroyed on token '%s'\n", name, version,
               dcmseal_token_get0_label(t.token));
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
