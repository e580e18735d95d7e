/* Runs a fuzz target's LLVMFuzzerTestOneInput over files, as libFuzzer runs
 * one input, for builds without libFuzzer (gcc): every input the fuzzers
 * found a bug with is kept under regressions/ and replayed by ctest.
 *
 *   run_TARGET PATH...   each PATH is a file, or a directory whose files
 *                        (not below) are run in name order
 *
 * An input that breaks the target aborts, and so fails the test; otherwise
 * the closing line counts the inputs run. No input at all is a failure too:
 * a test that runs nothing proves nothing. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* Defined by the targets that need set-up (weak: the others do not). */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));
/* Defined when AddressSanitizer is linked in. */
void __asan_init(void) __attribute__((weak));

/* The peak of the address space, in MiB; 0 when unknown. */
static long vm_peak_mb(void)
{
    char line[256];
    long kb = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmPeak: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb / 1024;
}

/* libFuzzer fails an input that makes the code allocate more than
 * -malloc_limit_mb at once (scripts/fuzz.sh: 2048), touched or not; here the
 * peak of the address space says the same. ASan reserves terabytes of
 * shadow memory up front, so under it this is left to libFuzzer. */
static void check_memory(const char *path, long baseline_mb)
{
    const long grown = vm_peak_mb() - baseline_mb;
    if (__asan_init == NULL && baseline_mb > 0 && grown > 2048) {
        fprintf(stderr, "%s: the address space grew by %ld MiB (limit 2048)\n", path, grown);
        abort();
    }
}

static long baseline_mb;

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    struct stat sb;
    if (f == NULL || fstat(fileno(f), &sb) != 0) {
        fprintf(stderr, "%s: cannot open\n", path);
        if (f != NULL)
            fclose(f);
        return -1;
    }
    const size_t size = (size_t)sb.st_size;
    /* Exactly the input's size, as libFuzzer gives it. */
    uint8_t *data = malloc(size > 0 ? size : 1);
    if (data == NULL || fread(data, 1, size, f) != size) {
        fprintf(stderr, "%s: cannot read\n", path);
        free(data);
        fclose(f);
        return -1;
    }
    fclose(f);
    fprintf(stderr, "running %s (%zu bytes)\n", path, size);
    LLVMFuzzerTestOneInput(data, size);
    free(data);
    check_memory(path, baseline_mb);
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs the regular files of |dir| in name order; -1 on error, else a count. */
static int run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int count = 0;
    if (d == NULL) {
        fprintf(stderr, "%s: cannot open\n", dir);
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **more = realloc(names, cap * sizeof *names);
            if (more == NULL)
                abort();
            names = more;
        }
        names[n] = malloc(strlen(dir) + strlen(e->d_name) + 2);
        if (names[n] == NULL)
            abort();
        sprintf(names[n], "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n > 0)
        qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        struct stat sb;
        if (stat(names[i], &sb) == 0 && S_ISREG(sb.st_mode)) {
            if (run_file(names[i]) != 0)
                count = -1;
            else if (count >= 0)
                count++;
        }
        free(names[i]);
    }
    free(names);
    return count;
}

int main(int argc, char **argv)
{
    struct stat sb;
    int total = 0, bad = 0;
    if (LLVMFuzzerInitialize != NULL)
        LLVMFuzzerInitialize(&argc, &argv);
    baseline_mb = vm_peak_mb();
    for (int i = 1; i < argc; i++) {
        int n = stat(argv[i], &sb) == 0 && S_ISDIR(sb.st_mode) ? run_dir(argv[i])
                : run_file(argv[i]) == 0                     ? 1
                                                             : -1;
        if (n < 0)
            bad++;
        else
            total += n;
    }
    const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    printf("%s: %d passed, %d failed\n", name, total, bad + (total == 0));
    return bad > 0 || total == 0;
}
