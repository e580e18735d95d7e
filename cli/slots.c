/* token list: the slots and tokens that modules offer, to find the URI of
 * a token (as `pkcs11-tool -L` lists them). */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "cli.h"

static void print_json(const dcmseal_slot_info *s, int first)
{
    fputs(first ? "{\"module\":" : ",{\"module\":", stdout);
    cli_json_string(stdout, s->module);
    fputs(",\"library\":", stdout);
    cli_json_string(stdout, s->library);
    printf(",\"slot\":%lu,\"description\":", s->slot_id);
    cli_json_string(stdout, s->slot_description);
    printf(",\"token_present\":%s", s->token_present ? "true" : "false");
    if (s->token_present) {
        static const char *const names[] = {"label", "manufacturer", "model", "serial"};
        const char *values[] = {s->label, s->manufacturer, s->model, s->serial};
        for (size_t i = 0; i < 4; i++) {
            printf(",\"%s\":", names[i]);
            cli_json_string(stdout, values[i]);
        }
        printf(",\"flags\":%lu,\"initialized\":%s,\"user_pin_initialized\":%s,"
               "\"login_required\":%s,\"write_protected\":%s,\"uri\":",
               s->flags, s->initialized ? "true" : "false",
               s->user_pin_initialized ? "true" : "false", s->login_required ? "true" : "false",
               s->write_protected ? "true" : "false");
        if (s->uri[0])
            cli_json_string(stdout, s->uri);
        else
            fputs("null", stdout);
    }
    fputc('}', stdout);
}

static void print_text(const dcmseal_slot_info *s, const dcmseal_slot_info *prev)
{
    if (prev == NULL || strcmp(prev->module, s->module) != 0)
        printf("%smodule %s (%s)\n", prev ? "\n" : "", s->module[0] ? s->module : "?",
               s->library);
    printf("  slot %#lx: %s\n", s->slot_id, s->slot_description);
    if (!s->token_present) {
        puts("    no token");
        return;
    }
    if (!s->initialized) {
        printf("    token not initialized (%s %s%s%s)\n", s->manufacturer, s->model,
               s->serial[0] ? ", serial " : "", s->serial);
        return;
    }
    printf("    token '%s': %s %s, serial %s\n", s->label, s->manufacturer, s->model,
           s->serial);
    printf("    %s%s%s\n", s->user_pin_initialized ? "user PIN set" : "no user PIN yet",
           s->login_required ? ", login required" : "",
           s->write_protected ? ", write-protected: keys cannot be made" : "");
    if (s->uri[0])
        printf("    URI: %s\n", s->uri);
}

int cli_cmd_token_list(const cli_opts *o)
{
    dcmseal_slot_list_t *l = NULL;
    dcmseal_error err;
    if (o->nargs > 1)
        return cli_usage_error("token list takes at most one MODULE or URI");
    /* The module of the token in use, unless another is named. */
    const char *where = o->nargs ? o->args[0] : cli_token_uri(o);
    if (dcmseal_slot_list_new(&l, where, &err) != DCMSEAL_OK)
        return cli_report(where ? where : "registered modules", &err);
    size_t n = dcmseal_slot_list_count(l);
    if (o->json)
        fputc('[', stdout);
    else if (n == 0)
        printf("no slots in %s\n", where ? where : "the modules p11-kit registers");
    for (size_t i = 0; i < n; i++) {
        const dcmseal_slot_info *s = dcmseal_slot_list_get0(l, i);
        if (o->json)
            print_json(s, i == 0);
        else
            print_text(s, i ? dcmseal_slot_list_get0(l, i - 1) : NULL);
    }
    if (o->json)
        fputs("]\n", stdout);
    else if (n > 0)
        puts("\nAdd &pin-source=file:PATH (a file only you can read) to a URI to use it.");
    dcmseal_slot_list_free(l);
    return EX_OK;
}
