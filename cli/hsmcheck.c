/* hsm-check: what the token can and cannot do for dcmseal, one line per
 * check. The probing is dcmseal_check_run's; this prints it. */
#include <stdio.h>
#include <sysexits.h>

#include "cli.h"

static const char *verdict_name(dcmseal_check_verdict v)
{
    switch (v) {
    case DCMSEAL_CHECK_PASS: return "pass";
    case DCMSEAL_CHECK_FAIL: return "fail";
    case DCMSEAL_CHECK_INFO: return "info";
    }
    return "fail";
}

static void print_json(const dcmseal_check_t *c, const char *label)
{
    fputs("{\"token\":", stdout);
    cli_json_string(stdout, label);
    printf(",\"usable\":%s,\"checks\":[", dcmseal_check_usable(c) ? "true" : "false");
    for (size_t i = 0; i < dcmseal_check_count(c); i++) {
        const dcmseal_check_result *r = dcmseal_check_get0_result(c, i);
        printf("%s{\"id\":\"%s\",\"verdict\":\"%s\",\"required\":%s,\"ckr\":\"%s\",", i ? "," : "",
               r->id, verdict_name(r->verdict), r->required ? "true" : "false", r->ckr);
        if (r->count >= 0)
            printf("\"count\":%ld,", r->count);
        else
            fputs("\"count\":null,", stdout);
        fputs("\"detail\":", stdout);
        cli_json_string(stdout, r->detail);
        fputc('}', stdout);
    }
    fputs("]}\n", stdout);
}

static void print_text(const dcmseal_check_t *c, const char *label)
{
    const char *sep = "";
    printf("dcmseal hsm-check: token '%s'\n", label);
    for (size_t i = 0; i < dcmseal_check_count(c); i++) {
        const dcmseal_check_result *r = dcmseal_check_get0_result(c, i);
        printf("%-4s  %-26s %-30s %s\n", verdict_name(r->verdict), r->id, r->ckr, r->detail);
    }
    if (dcmseal_check_usable(c)) {
        printf("usable: yes -- dcmseal can create, use, disable and rewrap keys on this "
               "token\n");
        return;
    }
    fputs("usable: NO -- required checks failed:", stdout);
    for (size_t i = 0; i < dcmseal_check_count(c); i++) {
        const dcmseal_check_result *r = dcmseal_check_get0_result(c, i);
        if (r->required && r->verdict != DCMSEAL_CHECK_PASS) {
            printf("%s %s", sep, r->id);
            sep = ",";
        }
    }
    fputc('\n', stdout);
}

int cli_cmd_hsm_check(int argc, char **argv)
{
    cli_opts o;
    cli_token t;
    dcmseal_error err;
    dcmseal_check_t *c = NULL;
    char label[33];
    int rc = cli_parse(&o, argc, argv, OPT_TOKEN | OPT_JSON);
    if (rc != EX_OK)
        return rc;
    if (o.nargs != 0)
        return cli_usage_error("hsm-check takes no arguments");
    if ((rc = cli_token_open(&t, o.token, "token")) != EX_OK)
        return rc;
    snprintf(label, sizeof label, "%s", dcmseal_token_get0_label(t.token));
    /* The check makes a scratch key in the token: Ctrl-C waits for it to
     * be destroyed. As many sessions as rewrap --jobs may ever ask for. */
    cli_interrupt_arm("removing scratch keys");
    dcmseal_status st = dcmseal_check_run(&c, t.session, CLI_JOBS_MAX, &err);
    cli_token_close(&t);
    if (st != DCMSEAL_OK) {
        rc = cli_report("token", &err);
    } else {
        if (o.json)
            print_json(c, label);
        else
            print_text(c, label);
        rc = dcmseal_check_usable(c) ? EX_OK : EX_UNAVAILABLE;
    }
    dcmseal_check_free(c);
    cli_interrupt_disarm();
    return rc;
}
