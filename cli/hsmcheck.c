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

/* The ids of the checks that failed, required or optional, ", "-separated. */
static void failed_ids(char *buf, size_t cap, const dcmseal_check_t *c, int required)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < dcmseal_check_count(c) && len < cap; i++) {
        const dcmseal_check_result *r = dcmseal_check_get0_result(c, i);
        if (r->verdict == DCMSEAL_CHECK_FAIL && r->required == required)
            len += (size_t)snprintf(buf + len, cap - len, "%s%s", len ? ", " : "", r->id);
    }
}

/* One head line per check (verdict, id, whether dcmseal needs it, the
 * PKCS#11 code) and its detail below, so that every line fits a terminal. */
static void print_text(const dcmseal_check_t *c, const char *label)
{
    char required[512], optional[512], line[1100];
    printf("dcmseal hsm-check: token '%s'\n", label);
    for (size_t i = 0; i < dcmseal_check_count(c); i++) {
        const dcmseal_check_result *r = dcmseal_check_get0_result(c, i);
        printf("%-4s  %-26s %-9s %s\n      ", verdict_name(r->verdict), r->id,
               r->verdict == DCMSEAL_CHECK_INFO ? "-" : r->required ? "required" : "optional",
               r->ckr);
        cli_wrap(stdout, r->detail, 6, 6, 79);
        fputc('\n', stdout);
    }
    failed_ids(required, sizeof required, c, 1);
    failed_ids(optional, sizeof optional, c, 0);
    if (dcmseal_check_usable(c))
        snprintf(line, sizeof line,
                 "usable: yes -- every required check passed: dcmseal can create, use, "
                 "disable and rewrap keys on this token%s%s%s",
                 optional[0] ? ". Optional checks that failed (dcmseal does without them, as "
                               "their lines say): " : "",
                 optional, optional[0] ? "" : "; every optional check passed too");
    else
        snprintf(line, sizeof line, "usable: NO -- required checks failed: %s%s%s", required,
                 optional[0] ? "; optional ones too: " : "", optional);
    cli_wrap(stdout, line, 0, 8, 79);
    fputc('\n', stdout);
}

int cli_cmd_hsm_check(const cli_opts *o)
{
    cli_token t;
    dcmseal_error err;
    dcmseal_check_t *c = NULL;
    char label[33];
    int rc;
    if (o->nargs != 0)
        return cli_usage_error("hsm-check takes no arguments");
    if ((rc = cli_token_open(&t, o->token, "token")) != EX_OK)
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
        if (o->json)
            print_json(c, label);
        else
            print_text(c, label);
        rc = dcmseal_check_usable(c) ? EX_OK : EX_UNAVAILABLE;
    }
    dcmseal_check_free(c);
    cli_interrupt_disarm();
    return rc;
}
