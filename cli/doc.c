/* dcmseal-doc: writes the manual page dcmseal(1) and the bash completion
 * from the command table (commands.c), the same table that --help prints
 * and the parser obeys, so that none of the three can drift from the
 * others. Run at build time; not installed.
 *
 *   dcmseal-doc man FILE
 *   dcmseal-doc bash-completion FILE */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "cli.h"

/* ---- roff ------------------------------------------------------------------ */

/* Text for roff: backslashes escaped, every '-' a minus (so that options
 * copied from the page work), and a line that would start with a control
 * character ('.' or '\'') protected. |f| gets it as it is; newlines stay. */
static void roff(FILE *f, const char *s)
{
    int bol = 1;
    for (; *s != '\0'; s++) {
        if (bol && (*s == '.' || *s == '\''))
            fputs("\\&", f);
        bol = *s == '\n';
        if (*s == '\\')
            fputs("\\e", f);
        else if (*s == '-')
            fputs("\\-", f);
        else
            fputc(*s, f);
    }
}

/* Paragraphs ("\n\n"-separated); lines that start with spaces are kept as
 * they are (a URI laid out by hand). */
static void paragraphs(FILE *f, const char *text)
{
    const char *p = text;
    fputs(".PP\n", f);
    while (*p != '\0') {
        size_t n = strcspn(p, "\n");
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)n, p);
        if (n == 0) {
            fputs(".PP\n", f);
        } else if (line[0] == ' ') {
            fputs(".br\n\\ \\ ", f);
            roff(f, line + strspn(line, " "));
            fputs("\n.br\n", f);
        } else {
            roff(f, line);
            fputc('\n', f);
        }
        p += n + (p[n] == '\n');
    }
}

static void option_item(FILE *f, const cli_command *c, const cli_option *o)
{
    fputs(".TP\n", f);
    if (o->letter)
        fprintf(f, "\\fB\\-%c\\fR, ", o->letter);
    fputs("\\fB\\-\\-", f);
    roff(f, o->name);
    fputs("\\fR", f);
    if (o->arg) {
        fputs(" \\fI", f);
        roff(f, o->arg);
        fputs("\\fR", f);
    }
    fputc('\n', f);
    roff(f, cli_option_help(c, o));
    fputc('\n', f);
}

/* "NAME\ttext" lines as a tagged list. */
static void tagged(FILE *f, const char *lines, int bold)
{
    for (const char *p = lines; *p != '\0';) {
        const char *tab = strchr(p, '\t'), *nl = strchr(p, '\n');
        if (tab == NULL || nl == NULL)
            return;
        char tag[64], text[320];
        snprintf(tag, sizeof tag, "%.*s", (int)(tab - p), p);
        snprintf(text, sizeof text, "%.*s", (int)(nl - tab - 1), tab + 1);
        fputs(bold ? ".TP\n.B " : ".TP\n", f);
        roff(f, tag);
        fputc('\n', f);
        roff(f, text);
        fputc('\n', f);
        p = nl + 1;
    }
}

static void lines_of(FILE *f, const char *prefix, const char *lines, int bold_prefix)
{
    for (const char *p = lines; *p != '\0';) {
        size_t n = strcspn(p, "\n");
        char line[256];
        snprintf(line, sizeof line, "%.*s", (int)n, p);
        fputs(bold_prefix ? "\\fB" : "", f);
        roff(f, prefix);
        fputs(bold_prefix ? "\\fR " : "", f);
        roff(f, line);
        fputc('\n', f);
        p += n + (p[n] == '\n');
    }
}

static void man(FILE *f)
{
    fprintf(f, ".\\\" dcmseal(1), made by dcmseal-doc from cli/commands.c: edit that.\n"
               ".TH DCMSEAL 1 \"\" \"dcmseal %s\" \"User Commands\"\n"
               ".nh\n.ad l\n"
               ".SH NAME\n"
               "dcmseal \\- HSM\\-backed envelope encryption of DICOM files\n"
               ".SH SYNOPSIS\n.nf\n",
            DCMSEAL_VERSION_STRING);
    for (size_t i = 0; i < cli_ncommands; i++) {
        char name[64];
        snprintf(name, sizeof name, "dcmseal %s", cli_commands[i].name);
        lines_of(f, name, cli_commands[i].synopsis, 1);
    }
    fputs("\\fBdcmseal help\\fR [\\fICOMMAND\\fR]\n.fi\n.SH DESCRIPTION\n", f);
    paragraphs(f, cli_doc_description);
    paragraphs(f, "Every command has its own help: dcmseal COMMAND --help, or dcmseal help "
                  "COMMAND, prints the section of this page about it.");
    fputs(".SH COMMANDS\n", f);
    for (size_t i = 0; i < cli_ncommands; i++) {
        const cli_command *c = &cli_commands[i];
        char name[64];
        snprintf(name, sizeof name, "dcmseal %s", c->name);
        fputs(".SS ", f);
        roff(f, name);
        fputs("\n.nf\n", f);
        lines_of(f, name, c->synopsis, 1);
        fputs(".fi\n", f);
        paragraphs(f, c->text);
        for (size_t j = 0; j < cli_noptions; j++)
            if (cli_options[j].flag & c->options)
                option_item(f, c, &cli_options[j]);
        fputs(".PP\nExample:\n.PP\n.RS\n.nf\n", f);
        lines_of(f, "", c->examples, 0);
        fputs(".fi\n.RE\n", f);
    }
    fputs(".SH OPTIONS\nThese stand before or after the command words, as may every option; "
          "\\fB\\-\\-token\\fR, \\fB\\-\\-json\\fR and \\fB\\-q\\fR where the command takes "
          "them.\n",
          f);
    for (size_t j = 0; j < cli_noptions; j++)
        if (cli_options[j].flag & (OPT_ALWAYS | OPT_TOKEN | OPT_JSON | OPT_QUIET))
            option_item(f, NULL, &cli_options[j]);
    fputs(".SH NOTES\n", f);
    paragraphs(f, cli_doc_notes);
    fputs(".SH ENVIRONMENT\n", f);
    tagged(f, cli_doc_environment, 1);
    fputs(".SH EXIT STATUS\n", f);
    tagged(f, cli_doc_exit_status, 0);
    fputs(".SH SEE ALSO\n"
          "\\fBsofthsm2\\-util\\fR(1), \\fBpkcs11\\-tool\\fR(1), \\fBp11\\-kit\\fR(8)\n"
          ".PP\n"
          "docs/ARCHIVES.md, docs/KEYS.md, docs/HSM.md, docs/FORMAT.md and docs/API.md in "
          "the dcmseal sources.\n",
          f);
}

/* ---- bash completion --------------------------------------------------------- */

/* The long options of |mask|, "--a --b", and those that take a value. */
static void options_of(FILE *f, cli_optset mask, int with_value)
{
    const char *sep = "";
    for (size_t j = 0; j < cli_noptions; j++) {
        const cli_option *o = &cli_options[j];
        if (!(o->flag & mask) || (with_value && o->arg == NULL))
            continue;
        fprintf(f, "%s--%s", sep, o->name);
        sep = " ";
        if (o->letter)
            fprintf(f, " -%c", o->letter);
    }
}

static void bash(FILE *f)
{
    fputs("# bash completion for dcmseal, made by dcmseal-doc from cli/commands.c: edit that.\n"
          "# It needs nothing but bash itself.\n"
          "_dcmseal() {\n"
          "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
          "    local valued='",
          f);
    options_of(f, ~0u, 1);
    fputs("'\n"
          "    # The command words: the arguments before the cursor that are not\n"
          "    # options or option values.\n"
          "    local words=() i w skip=0\n"
          "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
          "        w=${COMP_WORDS[i]}\n"
          "        if ((skip)); then skip=0; continue; fi\n"
          "        case \" $valued \" in *\" $w \"*) skip=1; continue ;; esac\n"
          "        [[ $w == -* ]] || words+=(\"$w\")\n"
          "    done\n"
          "    local cmd=\"${words[*]:0:2}\" opts='' group=''\n"
          "    case \"${words[0]}\" in\n",
          f);
    /* Groups: key, token. */
    for (size_t i = 0; i < cli_ncommands; i++) {
        const char *space = strchr(cli_commands[i].name, ' ');
        if (space == NULL)
            continue;
        size_t n = (size_t)(space - cli_commands[i].name);
        if (i > 0 && strncmp(cli_commands[i - 1].name, cli_commands[i].name, n + 1) == 0)
            continue;
        fprintf(f, "    %.*s) group='", (int)n, cli_commands[i].name);
        const char *sep = "";
        for (size_t j = i; j < cli_ncommands; j++)
            if (strncmp(cli_commands[j].name, cli_commands[i].name, n + 1) == 0) {
                fprintf(f, "%s%s", sep, cli_commands[j].name + n + 1);
                sep = " ";
            }
        fputs("' ;;\n", f);
    }
    fputs("    *) cmd=${words[0]} ;;\n"
          "    esac\n"
          "    case $cmd in\n",
          f);
    for (size_t i = 0; i < cli_ncommands; i++) {
        fprintf(f, "    \"%s\") opts='", cli_commands[i].name);
        options_of(f, (cli_commands[i].options | OPT_ALWAYS) & ~OPT_VERSION, 0);
        fputs("' ;;\n", f);
    }
    fputs("    *) opts='", f);
    options_of(f, OPT_ALWAYS | OPT_TOKEN | OPT_JSON | OPT_QUIET, 0);
    fputs("' ;;\n"
          "    esac\n"
          "    case $prev in\n",
          f);
    /* An option's value: its choices ("auto|sha1|sha256"), a path, or
     * nothing to offer. */
    for (size_t j = 0; j < cli_noptions; j++) {
        const cli_option *o = &cli_options[j];
        if (o->arg == NULL)
            continue;
        fprintf(f, "    --%s", o->name);
        if (o->letter)
            fprintf(f, "|-%c", o->letter);
        if (strchr(o->arg, '|') != NULL) {
            fputs(") COMPREPLY=($(compgen -W '", f);
            for (const char *c = o->arg; *c; c++)
                fputc(*c == '|' ? ' ' : *c, f);
            fputs("' -- \"$cur\")); return ;;\n", f);
        } else if (strcmp(o->arg, "OUT") == 0 || strcmp(o->arg, "FILE") == 0 ||
                   strcmp(o->arg, "DIR") == 0) {
            fputs(") COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n", f);
        } else {
            fputs(") COMPREPLY=(); return ;;\n", f);
        }
    }
    fputs("    esac\n"
          "    if [[ $cur == -* ]]; then\n"
          "        COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
          "    elif ((${#words[@]} == 0)); then\n"
          "        COMPREPLY=($(compgen -W '",
          f);
    for (size_t i = 0; i < cli_ncommands; i++) {
        size_t n = strcspn(cli_commands[i].name, " ");
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strncmp(cli_commands[j].name, cli_commands[i].name, n) == 0 &&
                   strcspn(cli_commands[j].name, " ") == n;
        if (!seen)
            fprintf(f, "%.*s ", (int)n, cli_commands[i].name);
    }
    fputs("help' -- \"$cur\"))\n"
          "    elif [[ -n $group && ${#words[@]} == 1 ]]; then\n"
          "        COMPREPLY=($(compgen -W \"$group\" -- \"$cur\"))\n"
          "    else\n"
          "        COMPREPLY=($(compgen -f -- \"$cur\"))\n"
          "    fi\n"
          "}\n"
          "complete -o filenames -F _dcmseal dcmseal\n",
          f);
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "man") != 0 && strcmp(argv[1], "bash-completion") != 0)) {
        fputs("usage: dcmseal-doc man|bash-completion FILE\n", stderr);
        return EX_USAGE;
    }
    FILE *f = fopen(argv[2], "w");
    if (f == NULL) {
        perror(argv[2]);
        return EX_CANTCREAT;
    }
    if (strcmp(argv[1], "man") == 0)
        man(f);
    else
        bash(f);
    if (fclose(f) != 0) {
        perror(argv[2]);
        return EX_IOERR;
    }
    return EX_OK;
}
