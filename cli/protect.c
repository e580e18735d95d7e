/* What the dcmseal process does before anything else so that its secrets
 * (data keys, the keys derived from them, the token PIN) stay in it:
 * docs/SECURITY.md, "A process that keeps its secrets". */
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <openssl/crypto.h>

#include "cli.h"

/* Data keys and the keys derived from them live in OpenSSL's secure heap
 * only while an object is in hand: at most about 1 KiB at a time per
 * worker (the buffer a token unwraps into is the largest), CLI_JOBS_MAX
 * workers and the finishers' objects. 256 KiB leaves room to spare and is
 * far below the RLIMIT_MEMLOCK of Debian 12 (8 MiB); where the limit is
 * lower the heap is still used, unlocked. The smallest block is 32 bytes,
 * a DEK. */
#define SECURE_HEAP_SIZE (256 * 1024)
#define SECURE_HEAP_MIN 32

int cli_protect_process(void)
{
    const struct rlimit none = {0, 0};
    /* No core file, whatever the shell's ulimit or a core pattern pipe
     * says; and no PR_SET_DUMPABLE: processes of the same user can no
     * longer ptrace this one or read its memory through /proc. */
    if (setrlimit(RLIMIT_CORE, &none) != 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        perror("dcmseal: cannot keep this process out of core dumps");
        return -1;
    }
    /* The heap is locked in RAM and left out of core dumps (mlock,
     * MADV_DONTDUMP). 2 means it works but could not be locked (a
     * RLIMIT_MEMLOCK below its size): then the keys are still kept out of
     * dumps and wiped, but could reach swap. */
    switch (CRYPTO_secure_malloc_init(SECURE_HEAP_SIZE, SECURE_HEAP_MIN)) {
    case 1: return 0;
    case 2: return 1;
    default:
        fputs("dcmseal: cannot set up OpenSSL's secure heap for key material\n", stderr);
        return -1;
    }
}
