/* --help: the overview, a group's commands, one command's page. All of it
 * comes from the command table (commands.c). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define WIDTH 79
#define HELP_COL 24 /* where an option's text starts */

const char *cli_option_help(const cli_command *c, const cli_option *opt)
{
    for (const cli_option_note *n = c ? c->notes : NULL; n != NULL && n->flag != 0; n++)
        if (n->flag == opt->flag)
            return n->help;
    return opt->help;
}

/* "  -o, --output OUT      where the output goes" */
static void option_line(FILE *f, const cli_command *c, const cli_option *opt)
{
    int col;
    if (opt->letter)
        col = fprintf(f, "  -%c, --%s", opt->letter, opt->name);
    else
        col = fprintf(f, "      --%s", opt->name);
    if (opt->arg)
        col += fprintf(f, " %s", opt->arg);
    if (col >= HELP_COL - 1) {
        fputc('\n', f);
        col = 0;
    }
    col += fprintf(f, "%*s", HELP_COL - col, "");
    cli_wrap(f, cli_option_help(c, opt), col, HELP_COL, WIDTH);
    fputc('\n', f);
}

/* "NAME\ttext" lines as a two-column list. */
static void table(FILE *f, const char *lines, int col2)
{
    for (const char *p = lines; *p != '\0';) {
        const char *tab = strchr(p, '\t'), *nl = strchr(p, '\n');
        if (tab == NULL || nl == NULL)
            return;
        char text[320];
        snprintf(text, sizeof text, "%.*s", (int)(nl - tab - 1), tab + 1);
        int col = fprintf(f, "  %.*s", (int)(tab - p), p);
        if (col >= col2 - 1) {
            fputc('\n', f);
            col = 0;
        }
        col += fprintf(f, "%*s", col2 - col, "");
        cli_wrap(f, text, col, col2, WIDTH);
        fputc('\n', f);
        p = nl + 1;
    }
}

static void command_list(FILE *f, const char *group, const char *only)
{
    for (size_t i = 0; i < cli_ncommands; i++) {
        const cli_command *c = &cli_commands[i];
        if (strcmp(c->group, group) != 0 ||
            (only && (strncmp(c->name, only, strlen(only)) != 0 || c->name[strlen(only)] != ' ')))
            continue;
        cli_wrap(f, c->summary, fprintf(f, "  %-17s ", c->name), 20, WIDTH);
        fputc('\n', f);
    }
}

void cli_help_overview(FILE *f)
{
    fputs("usage: dcmseal COMMAND [ARGUMENTS] [OPTIONS]\n"
          "       dcmseal help COMMAND    (or dcmseal COMMAND --help): one command\n\n",
          f);
    fprintf(f, "%s\n", cli_doc_description);
    static const char *const groups[][2] = {
        {"files", "files"}, {"keys", "keys (KEKs in the token)"}, {"tokens", "tokens"}};
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        fprintf(f, "\n%s:\n", groups[g][1]);
        command_list(f, groups[g][0], NULL);
    }
    fputs("\noptions that stand before or after the command:\n", f);
    for (size_t i = 0; i < cli_noptions; i++)
        if (cli_options[i].flag & (OPT_ALWAYS | OPT_TOKEN | OPT_JSON | OPT_QUIET))
            option_line(f, NULL, &cli_options[i]);
    fputs("  (--token, --json and --quiet where the command takes them)\n", f);
    fprintf(f, "\n%s\n\nenvironment:\n", cli_doc_notes);
    table(f, cli_doc_environment, 20);
    fputs("\nexit status:\n", f);
    table(f, cli_doc_exit_status, 12);
    fputs("\nThe manual, dcmseal(1), has all of this and every command's page.\n", f);
}

void cli_help_group(FILE *f, const char *group)
{
    fprintf(f, "usage: dcmseal %s SUBCOMMAND [ARGUMENTS] [OPTIONS]\n\n", group);
    for (size_t i = 0; i < cli_ncommands; i++)
        if (strncmp(cli_commands[i].name, group, strlen(group)) == 0 &&
            cli_commands[i].name[strlen(group)] == ' ') {
            command_list(f, cli_commands[i].group, group);
            break;
        }
    fprintf(f, "\nEach has its own help: dcmseal %s SUBCOMMAND --help\n", group);
}

void cli_help_command(FILE *f, const cli_command *c)
{
    const char *p = c->synopsis;
    int first = 1;
    while (*p != '\0') {
        size_t n = strcspn(p, "\n");
        fprintf(f, "%s dcmseal %s %.*s\n", first ? "usage:" : "      ", c->name, (int)n, p);
        first = 0;
        p += n + (p[n] == '\n');
    }
    fprintf(f, "\n%s\n\noptions:\n", c->text);
    for (size_t i = 0; i < cli_noptions; i++)
        if (cli_options[i].flag & ((c->options | OPT_ALWAYS) & ~OPT_VERSION))
            option_line(f, c, &cli_options[i]);
    fprintf(f, "\nexample%s:\n", strchr(c->examples, '\n') ? "s" : "");
    for (p = c->examples; *p != '\0';) {
        size_t n = strcspn(p, "\n");
        fprintf(f, "  %.*s\n", (int)n, p);
        p += n + (p[n] == '\n');
    }
}
