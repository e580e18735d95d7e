/* A heap buffer and its length, for the unit tests that build objects in
 * memory. */
#ifndef DCMSEAL_TESTS_BUF_H
#define DCMSEAL_TESTS_BUF_H

#include <stdint.h>
#include <stdlib.h>

typedef struct buf {
    uint8_t *p;
    size_t n;
} buf;

static inline void buf_free(buf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = 0;
}

#endif
