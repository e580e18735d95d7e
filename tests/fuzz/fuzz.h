/* Shared by the fuzz targets: an invariant check that stops the run where
 * libFuzzer (or the plain driver) sees it, and a tiny PRNG that turns one
 * input byte into a sequence of chunk sizes and offsets. */
#ifndef DCMSEAL_FUZZ_H
#define DCMSEAL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A broken invariant is a finding like a crash: abort, so that libFuzzer
 * saves the input and the driver fails its test. */
#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__,         \
                    __LINE__, #cond);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* xorshift32: deterministic for a given input, never stuck at 0. */
static inline uint32_t fuzz_rand(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

static inline int fuzz_all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

/* Every fuzz target defines this; libFuzzer or driver.c calls it. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
