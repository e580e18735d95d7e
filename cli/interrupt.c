/* Ctrl-C for commands that must not stop just anywhere: hsm-check and bench
 * remove their scratch keys from the token first, tree runs finish the
 * files in hand. The first SIGINT, SIGTERM or SIGHUP is held until then,
 * and delivered; a second one ends the process at once. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const int held[] = {SIGINT, SIGTERM, SIGHUP};
static struct sigaction saved[sizeof held / sizeof held[0]];
static volatile sig_atomic_t caught;
static char message[160];
static size_t message_len;

static void on_signal(int sig)
{
    caught = sig;
    /* write(2) is async-signal-safe; nothing to do if it fails. */
    if (write(STDERR_FILENO, message, message_len) < 0)
        return;
}

void cli_interrupt_arm(const char *doing)
{
    int n = snprintf(message, sizeof message,
                     "\ndcmseal: interrupted: %s first (again to quit at once)\n", doing);
    message_len = n < 0 ? 0 : (size_t)n < sizeof message ? (size_t)n : sizeof message - 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* SA_RESETHAND: the second signal takes the default action. SA_RESTART:
     * a PKCS#11 module's own system calls should not see EINTR. */
    sa.sa_flags = SA_RESETHAND | SA_RESTART;
    caught = 0;
    for (size_t i = 0; i < sizeof held / sizeof held[0]; i++) {
        sigaction(held[i], &sa, &saved[i]);
        /* A signal the caller ignores (nohup) stays ignored. */
        if (saved[i].sa_handler == SIG_IGN)
            sigaction(held[i], &saved[i], NULL);
    }
}

int cli_interrupted(void)
{
    return caught;
}

void cli_interrupt_disarm(void)
{
    for (size_t i = 0; i < sizeof held / sizeof held[0]; i++)
        sigaction(held[i], &saved[i], NULL);
    if (caught) {
        /* The default action ends the process without flushing stdio. */
        fflush(stdout);
        raise(caught);
    }
}
