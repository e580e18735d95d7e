/* Whole objects: dcmseal_seal_mem against dcmseal_seal_fd (engine/object.c)
 * on corpus files. (Outputs made through a directory descriptor:
 * test_outfile.c.)
 *   test_object CORPUS_DIR */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../support/check.h"
#include "../support/soft_ring.h"

static soft_ring ring;

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long len;
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0 || (buf = malloc((size_t)len + 1)) == NULL ||
        fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    if (f != NULL)
        fclose(f);
    *n = buf != NULL ? (size_t)len : 0;
    return buf;
}

/* Opens the object in |fd| (from offset 0) with identity check, and
 * compares its plain text with |want|. */
static int opens_to(int fd, const uint8_t *want, size_t n, int *is_dicom)
{
    FILE *out = tmpfile();
    dcmseal_object_report rep;
    size_t got_n = 0;
    int ok = out != NULL && lseek(fd, 0, SEEK_SET) == 0 &&
             dcmseal_open_fd(&rep, fileno(out), fd, &ring.ring, 1, NULL) == DCMSEAL_OK;
    uint8_t *got = NULL;
    if (ok) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fileno(out));
        got = slurp(path, &got_n);
        ok = got != NULL && got_n == n && (n == 0 || memcmp(got, want, n) == 0);
        *is_dicom = rep.is_dicom;
    }
    free(got);
    if (out != NULL)
        fclose(out);
    return ok;
}

/* seal_mem and seal_fd make the same kind of object from the same bytes:
 * both open to them, with the same DICOM identity bound. */
static void test_seal_mem(const char *corpus)
{
    static const char *const names[] = {"dwv/bbmri-53323851.dcm", "dwv/DICOMDIR",
                                        "dicomparser/deflate/image_dfl", "README.md"};
    int dicom_seen = 0, opaque_seen = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[4096];
        size_t n;
        snprintf(path, sizeof path, "%s/%s", corpus, names[i]);
        uint8_t *in = slurp(path, &n);
        if (in == NULL) {
            printf("note: %s missing\n", path);
            continue;
        }
        FILE *a = tmpfile(), *b = tmpfile();
        int in_fd = open(path, O_RDONLY);
        dcmseal_object_report ra, rb;
        const dcmseal_seal_opts opts = {.keyring = &ring.ring};
        CHECK(a != NULL && b != NULL && in_fd >= 0, "files");
        CHECK(dcmseal_seal_mem(&ra, fileno(a), in, n, &opts, NULL) == DCMSEAL_OK, "%s: seal_mem",
              names[i]);
        CHECK(dcmseal_seal_fd(&rb, fileno(b), in_fd, &opts, NULL) == DCMSEAL_OK, "%s: seal_fd",
              names[i]);
        CHECK(ra.is_dicom == rb.is_dicom && ra.plain_bytes == n && rb.plain_bytes == n &&
                  ra.sealed_bytes == rb.sealed_bytes &&
                  strcmp(ra.not_dicom_reason, rb.not_dicom_reason) == 0,
              "%s: the same report", names[i]);
        int da = -1, db = -1;
        CHECK(opens_to(fileno(a), in, n, &da) && opens_to(fileno(b), in, n, &db) && da == db &&
                  da == ra.is_dicom,
              "%s: both open to the input, identity checked", names[i]);
        dicom_seen += ra.is_dicom;
        opaque_seen += !ra.is_dicom;
        /* --strict refuses what is not DICOM, from memory as from a file. */
        const dcmseal_seal_opts strict = {.keyring = &ring.ring, .strict = 1};
        dcmseal_status st = dcmseal_seal_mem(&ra, fileno(a), in, n, &strict, NULL);
        CHECK(ra.is_dicom ? st == DCMSEAL_OK : st == DCMSEAL_E_NOT_DICOM, "%s: strict",
              names[i]);
        close(in_fd);
        fclose(a);
        fclose(b);
        free(in);
    }
    CHECK(dicom_seen > 0 && opaque_seen > 0, "both kinds covered (%d, %d)", dicom_seen,
          opaque_seen);

    /* Empty input: an empty opaque object. */
    FILE *e = tmpfile();
    dcmseal_object_report rep;
    const dcmseal_seal_opts opts = {.keyring = &ring.ring};
    int is_dicom = -1;
    CHECK(e != NULL && dcmseal_seal_mem(&rep, fileno(e), NULL, 0, &opts, NULL) == DCMSEAL_OK &&
              rep.plain_bytes == 0 && opens_to(fileno(e), NULL, 0, &is_dicom) && !is_dicom,
          "empty");
    CHECK(dcmseal_seal_mem(&rep, fileno(e), NULL, 1, &opts, NULL) == DCMSEAL_E_USAGE,
          "NULL input with a length refused");
    if (e != NULL)
        fclose(e);
}

int main(int argc, char **argv)
{
    if (argc != 2 || soft_ring_init(&ring, NULL, "object", 1, DCMSEAL_OAEP_SHA256) != 0)
        return 1;
    test_seal_mem(argv[1]);
    soft_ring_free(&ring);
    return check_done("test_object");
}
