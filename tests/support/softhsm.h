/* A SoftHSM token of a unit test's own, in a new temporary directory, and
 * sessions on it straight through the module, behind dcmseal's back: the
 * same shared object that p11-kit loads, hence the same token state. */
#ifndef DCMSEAL_TEST_SOFTHSM_H
#define DCMSEAL_TEST_SOFTHSM_H

#include <p11-kit/pkcs11.h>

#define SOFTHSM_MODULE "/usr/lib/softhsm/libsofthsm2.so"

/* Makes the directory |dir| (a mkdtemp template, rewritten in place) with
 * an empty token store and a configuration, which SOFTHSM2_CONF then
 * names, and in it the token |label| with user PIN |pin|. 0, or -1 (said
 * on stderr). */
int softhsm_token_new(char *dir, const char *label, const char *pin);

/* Removes |dir| and everything below it. */
void softhsm_token_remove(const char *dir);

/* A logged-in read-write session on the token |label|, through the
 * module's own function list (|*fl|), and the token's slot. 0 or -1. */
int softhsm_raw_open(const char *label, const char *pin, CK_FUNCTION_LIST **fl,
                     CK_SLOT_ID *slot, CK_SESSION_HANDLE *h);

#endif
