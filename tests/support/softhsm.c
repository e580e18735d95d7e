/* A unit test's own SoftHSM token (softhsm.h). */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1 /* mkdtemp */
#endif
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "softhsm.h"

int softhsm_token_new(char *dir, const char *label, const char *pin)
{
    char path[512], cmd[1024];
    FILE *f;
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return -1;
    }
    snprintf(path, sizeof path, "%s/tokens", dir);
    if (mkdir(path, 0700) != 0) {
        perror(path);
        return -1;
    }
    snprintf(path, sizeof path, "%s/softhsm2.conf", dir);
    if ((f = fopen(path, "w")) == NULL) {
        perror(path);
        return -1;
    }
    fprintf(f, "directories.tokendir = %s/tokens\nobjectstore.backend = file\n", dir);
    if (fclose(f) != 0) {
        perror(path);
        return -1;
    }
    setenv("SOFTHSM2_CONF", path, 1);
    snprintf(cmd, sizeof cmd,
             "softhsm2-util --init-token --free --label '%s' --so-pin 1234 --pin '%s' "
             ">/dev/null", label, pin);
    if (system(cmd) != 0) {
        fprintf(stderr, "softhsm2-util --init-token failed\n");
        return -1;
    }
    return 0;
}

void softhsm_token_remove(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

int softhsm_raw_open(const char *label, const char *pin, CK_FUNCTION_LIST **fl,
                     CK_SLOT_ID *slot, CK_SESSION_HANDLE *h)
{
    CK_SLOT_ID slots[16];
    CK_ULONG n = 16;
    void *lib = dlopen(SOFTHSM_MODULE, RTLD_NOW);
    CK_C_GetFunctionList get = lib ? (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList")
                                   : NULL;
    if (get == NULL || get(fl) != CKR_OK ||
        (*fl)->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
        return -1;
    *slot = 0;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        if ((*fl)->C_GetTokenInfo(slots[i], &ti) == CKR_OK &&
            memcmp(ti.label, label, strlen(label)) == 0)
            *slot = slots[i];
    }
    if ((*fl)->C_OpenSession(*slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, h) !=
        CKR_OK)
        return -1;
    CK_RV rv = (*fl)->C_Login(*h, CKU_USER, (CK_UTF8CHAR *)pin, strlen(pin));
    return rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN ? 0 : -1;
}
