/* The token a command works with: which one, and opening it. */
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cli.h"

const char *cli_token_uri(const cli_opts *o)
{
    const char *uri = o->token ? o->token : getenv("DCMSEAL_TOKEN");
    return uri != NULL && uri[0] != '\0' ? uri : NULL;
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
