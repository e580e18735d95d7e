/* What the user sees of a failure, and the small output helpers. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "cli.h"

int cli_exit_code(dcmseal_status st)
{
    /* The one place where statuses become sysexits codes. */
    switch (st) {
    case DCMSEAL_OK: return EX_OK;
    case DCMSEAL_E_USAGE: return EX_USAGE;
    case DCMSEAL_E_FORMAT:
    case DCMSEAL_E_AUTH:
    case DCMSEAL_E_NOT_DICOM: return EX_DATAERR;
    case DCMSEAL_E_KEY:
    case DCMSEAL_E_TOKEN: return EX_UNAVAILABLE;
    case DCMSEAL_E_IO: return EX_IOERR;
    case DCMSEAL_E_INTERNAL: return EX_SOFTWARE;
    }
    return EX_SOFTWARE;
}

int cli_report(const char *what, const dcmseal_error *err)
{
    fprintf(stderr, "dcmseal: %s: %s\n", what, err->message);
    return cli_exit_code(err->status);
}

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("dcmseal: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see dcmseal %s%s--help)\n", cli_current ? cli_current->name : "",
            cli_current ? " " : "");
    return EX_USAGE;
}

const char *cli_plural(unsigned long n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

void cli_wrap(FILE *f, const char *text, int col, int indent, int width)
{
    const char *p = text;
    while (*p != '\0') {
        if (*p == '\n') {
            fputc('\n', f);
            p++;
            if (*p != '\0' && *p != '\n')
                col = fprintf(f, "%*s", indent, "");
            else
                col = 0;
            continue;
        }
        size_t spaces = strspn(p, " ");
        size_t word = strcspn(p + spaces, " \n");
        if (col > indent && col + (int)(spaces + word) > width) {
            /* The word starts the next line; the spaces before it go. */
            col = fprintf(f, "\n%*s", indent, "") - 1;
            p += spaces;
            spaces = 0;
        }
        col += fprintf(f, "%.*s", (int)(spaces + word), p);
        p += spaces + word;
    }
}

void cli_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

void cli_hex(FILE *f, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%02x", p[i]);
}

const char *cli_origin_name(dcmseal_origin o)
{
    return o == DCMSEAL_ORIGIN_VERIFIED ? "verified"
           : o == DCMSEAL_ORIGIN_PRESENT ? "present"
                                         : "none";
}
