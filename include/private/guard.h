/*
 * private/guard.h: the control flow inside dcmseal's own sources. Not
 * installed: callers of the library have no use for it.
 *
 * Each function that uses these has a `dcmseal_status st` and one `out:`
 * label where everything it holds is released and every secret wiped.
 */
#ifndef DCMSEAL_PRIVATE_GUARD_H
#define DCMSEAL_PRIVATE_GUARD_H

#include <dcmseal/error.h>

#define DCMSEAL_GUARD(expr)                                                    \
    do {                                                                       \
        if ((st = (expr)) != DCMSEAL_OK)                                       \
            goto out;                                                          \
    } while (0)

#define DCMSEAL_ENSURE(cond, err, status, ...)                                 \
    do {                                                                       \
        if (!(cond)) {                                                         \
            st = dcmseal_fail((err), (status), __VA_ARGS__);                   \
            goto out;                                                          \
        }                                                                      \
    } while (0)

#endif
