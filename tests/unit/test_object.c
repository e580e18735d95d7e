/* Whole objects: dcmseal_seal_mem against dcmseal_seal_fd (engine/object.c)
 * on corpus files, and outputs made through a directory descriptor
 * (engine/outfile.c, dcmseal_outfile_openat).
 *   test_object CORPUS_DIR */
#define _GNU_SOURCE
#include <dirent.h>
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

static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.' || (e->d_name[1] != '\0' && strcmp(e->d_name, "..") != 0);
    if (d != NULL)
        closedir(d);
    return n;
}

/* An output named relative to a directory descriptor lands in that
 * directory even when its path now leads elsewhere. */
static void test_outfile_openat(void)
{
    char root[] = "/tmp/test_object.XXXXXX", a[4200], moved[4200], cmd[4300];
    dcmseal_outfile_t *f = NULL;
    struct stat sb;
    CHECK(mkdtemp(root) != NULL, "temp dir");
    snprintf(a, sizeof a, "%s/a", root);
    snprintf(moved, sizeof moved, "%s/moved", root);
    CHECK(mkdir(a, 0700) == 0, "mkdir");
    int dir = open(a, O_RDONLY | O_DIRECTORY);
    CHECK(dir >= 0, "open dir");

    static const char *const bad[] = {"", ".", "..", "x/y", "/abs"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(dcmseal_outfile_openat(&f, dir, bad[i], 0600, 0, NULL) == DCMSEAL_E_USAGE,
              "name '%s' refused", bad[i]);

    CHECK(dcmseal_outfile_openat(&f, dir, "obj", 0640, 0, NULL) == DCMSEAL_OK, "open");
    CHECK(write(dcmseal_outfile_fd(f), "hello", 5) == 5, "write");
    CHECK(entries(a) == 0, "nothing visible before commit");
    /* The path is taken away and a link put in its place. */
    CHECK(rename(a, moved) == 0 && symlink("/nonexistent", a) == 0, "swap the directory");
    CHECK(dcmseal_outfile_commit(f, NULL) == DCMSEAL_OK, "commit");
    CHECK(entries(moved) == 1 && fstatat(dir, "obj", &sb, 0) == 0 && sb.st_size == 5 &&
              (sb.st_mode & 07777) == 0640,
          "the file is in the directory the descriptor names, mode 0640");

    /* Without replace an existing name is refused; with it, replaced. */
    CHECK(dcmseal_outfile_openat(&f, dir, "obj", 0600, 0, NULL) == DCMSEAL_E_USAGE,
          "existing name refused");
    CHECK(dcmseal_outfile_openat(&f, dir, "obj", 0600, 1, NULL) == DCMSEAL_OK &&
              write(dcmseal_outfile_fd(f), "hi", 2) == 2 &&
              dcmseal_outfile_commit(f, NULL) == DCMSEAL_OK &&
              fstatat(dir, "obj", &sb, 0) == 0 && sb.st_size == 2,
          "replace");
    /* Abort leaves nothing. */
    CHECK(dcmseal_outfile_openat(&f, dir, "gone", 0600, 0, NULL) == DCMSEAL_OK &&
              write(dcmseal_outfile_fd(f), "x", 1) == 1, "open another");
    dcmseal_outfile_abort(f);
    CHECK(entries(moved) == 1, "abort leaves nothing behind");
    /* The descriptor was duplicated: the caller's stays its own. */
    CHECK(close(dir) == 0, "the caller's descriptor is still open");
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0)
        printf("note: %s not removed\n", root);
}

int main(int argc, char **argv)
{
    if (argc != 2 || soft_ring_init(&ring, NULL, "object", 1, DCMSEAL_OAEP_SHA256) != 0)
        return 1;
    test_seal_mem(argv[1]);
    test_outfile_openat();
    soft_ring_free(&ring);
    return check_done("test_object");
}
