/* key create, key list. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cli.h"

static int key_create(int argc, char **argv)
{
    cli_opts o;
    cli_token t;
    dcmseal_error err;
    dcmseal_kek_info info;
    int rc = cli_parse(&o, argc, argv, OPT_TOKEN | OPT_BITS);
    if (rc != EX_OK)
        return rc;
    if (o.nargs != 1)
        return cli_usage_error("key create takes one NAME");
    if ((rc = cli_token_open(&t, o.token, o.args[0])) != EX_OK)
        return rc;
    if (dcmseal_kek_create(t.session, &info, o.args[0], o.bits ? o.bits : 3072, &err) ==
        DCMSEAL_OK) {
        printf("created key '%s' v%u, RSA-%u, sha256:", info.name, info.version, info.bits);
        cli_hex(stdout, info.fingerprint, sizeof info.fingerprint);
        printf(", on token '%s'\n", dcmseal_token_get0_label(t.token));
    } else {
        rc = cli_report(o.args[0], &err);
    }
    cli_token_close(&t);
    return rc;
}

static int key_list(int argc, char **argv)
{
    cli_opts o;
    cli_token t;
    dcmseal_error err;
    dcmseal_kek_info *keys = NULL;
    size_t n = 0;
    int rc = cli_parse(&o, argc, argv, OPT_TOKEN | OPT_JSON);
    if (rc != EX_OK)
        return rc;
    if (o.nargs != 0)
        return cli_usage_error("key list takes no arguments");
    if ((rc = cli_token_open(&t, o.token, "token")) != EX_OK)
        return rc;
    /* Ask for the count, then for the keys. */
    if (dcmseal_kek_list(t.session, NULL, 0, &n, &err) != DCMSEAL_OK ||
        (n > 0 && (keys = calloc(n, sizeof *keys)) == NULL) ||
        (n > 0 && dcmseal_kek_list(t.session, keys, n, &n, &err) != DCMSEAL_OK)) {
        rc = keys == NULL && n > 0 ? EX_OSERR : cli_report("key list", &err);
        goto out;
    }
    if (o.json)
        fputc('[', stdout);
    for (size_t i = 0; i < n; i++) {
        if (o.json) {
            fputs(i ? ",{\"name\":" : "{\"name\":", stdout);
            cli_json_string(stdout, keys[i].name);
            printf(",\"version\":%u,\"bits\":%u,\"fingerprint\":\"", keys[i].version,
                   keys[i].bits);
            cli_hex(stdout, keys[i].fingerprint, sizeof keys[i].fingerprint);
            fputs("\"}", stdout);
        } else {
            printf("%-24s v%-3u RSA-%u  sha256:", keys[i].name, keys[i].version, keys[i].bits);
            cli_hex(stdout, keys[i].fingerprint, sizeof keys[i].fingerprint);
            fputc('\n', stdout);
        }
    }
    if (o.json)
        fputs("]\n", stdout);
out:
    free(keys);
    cli_token_close(&t);
    return rc;
}

int cli_cmd_key(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("key needs a subcommand: create or list");
    if (strcmp(argv[1], "create") == 0)
        return key_create(argc - 1, argv + 1);
    if (strcmp(argv[1], "list") == 0)
        return key_list(argc - 1, argv + 1);
    return cli_usage_error("unknown key subcommand '%s'", argv[1]);
}
