/* engine/outfile.c: outputs that appear whole, in the directory that was
 * opened, with mode 0600 until commit. Run twice by ctest: as is (O_TMPFILE)
 * and with "named" under the preload library that takes O_TMPFILE away, as
 * NFS does (tests/support/pause_preload.c). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dcmseal/engine.h>

#include "../support/check.h"

static char root[64];
static int named; /* the temporary file has a name from the start */

static void path_of(char *buf, size_t cap, const char *rel)
{
    snprintf(buf, cap, "%s/%s", root, rel);
}

static int exists(const char *rel)
{
    char p[256];
    struct stat sb;
    path_of(p, sizeof p, rel);
    return lstat(p, &sb) == 0;
}

static unsigned mode_of(const char *rel)
{
    char p[256];
    struct stat sb;
    path_of(p, sizeof p, rel);
    return lstat(p, &sb) == 0 ? (unsigned)(sb.st_mode & 07777) : 0u;
}

static int write_file(const char *rel, const char *text)
{
    char p[256];
    path_of(p, sizeof p, rel);
    FILE *f = fopen(p, "w");
    int ok = f != NULL && fputs(text, f) >= 0;
    return f != NULL && fclose(f) == 0 && ok;
}

static int has_text(const char *rel, const char *text)
{
    char p[256], buf[256] = "";
    path_of(p, sizeof p, rel);
    FILE *f = fopen(p, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f != NULL)
        fclose(f);
    buf[n] = '\0';
    return strcmp(buf, text) == 0;
}

/* Temporary names in directory |rel|, and the mode of the last one seen. */
static int temps_in(const char *rel, unsigned *mode)
{
    char p[256];
    int n = 0;
    path_of(p, sizeof p, rel);
    DIR *d = opendir(p);
    for (struct dirent *de; d != NULL && (de = readdir(d)) != NULL;) {
        if (strstr(de->d_name, ".dcmseal-") == NULL)
            continue;
        n++;
        struct stat sb;
        if (mode != NULL && fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0)
            *mode = (unsigned)(sb.st_mode & 07777);
    }
    if (d != NULL)
        closedir(d);
    return n;
}

static int open_dir(const char *rel)
{
    char p[256];
    path_of(p, sizeof p, rel);
    return open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static int put(dcmseal_outfile_t *f, const char *text)
{
    return write(dcmseal_outfile_fd(f), text, strlen(text)) == (ssize_t)strlen(text);
}

static void test_names(void)
{
    dcmseal_outfile_t *f = NULL;
    dcmseal_error err;
    int d = open_dir(".");
    static const char *const bad[] = {"a/b", "..", ".", "", "/etc/passwd"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(dcmseal_outfile_openat(&f, d, bad[i], 0644, 1, &err) == DCMSEAL_E_USAGE,
              "'%s' is not one name in the directory", bad[i]);
    CHECK(dcmseal_outfile_open(&f, "/tmp/", 0644, 1, &err) == DCMSEAL_E_USAGE,
          "a path ending in a slash names no file");
    CHECK(temps_in(".", NULL) == 0, "nothing made for a refused name");
    close(d);
}

static void test_mode_until_commit(void)
{
    dcmseal_outfile_t *f = NULL;
    dcmseal_error err;
    struct stat sb;
    unsigned tmode = 0;
    int d = open_dir(".");
    /* Given as is at commit: the umask is the caller's (as cp applies it). */
    mode_t old = umask(027);
    CHECK(dcmseal_outfile_openat(&f, d, "plain", 0644, 0, &err) == DCMSEAL_OK, "open: %s",
          err.message);
    CHECK(f != NULL && put(f, "secret"), "write");
    CHECK(f != NULL && fstat(dcmseal_outfile_fd(f), &sb) == 0 && (sb.st_mode & 07777) == 0600,
          "0600 while being written, not 0%o", (unsigned)(sb.st_mode & 07777));
    CHECK(temps_in(".", &tmode) == named, "a temporary name only without O_TMPFILE");
    CHECK(!named || tmode == 0600, "the named temporary file is 0600, not 0%o", tmode);
    CHECK(!exists("plain"), "no output before commit");
    CHECK(f != NULL && dcmseal_outfile_commit(f, &err) == DCMSEAL_OK, "commit: %s", err.message);
    CHECK(mode_of("plain") == 0644, "the mode given, at commit: 0%o", mode_of("plain"));
    CHECK(has_text("plain", "secret"), "content");
    CHECK(temps_in(".", NULL) == 0, "no temporary name left");
    umask(old);

    /* Abort leaves nothing behind. */
    CHECK(dcmseal_outfile_openat(&f, d, "aborted", 0600, 0, &err) == DCMSEAL_OK, "open");
    CHECK(f != NULL && put(f, "x"), "write");
    dcmseal_outfile_abort(f);
    CHECK(!exists("aborted") && temps_in(".", NULL) == 0, "abort leaves nothing");
    close(d);
}

static void test_existing(void)
{
    dcmseal_outfile_t *f = NULL;
    dcmseal_error err;
    char p[256];
    int d = open_dir(".");
    CHECK(write_file("kept", "someone's"), "setup");
    CHECK(dcmseal_outfile_openat(&f, d, "kept", 0644, 0, &err) == DCMSEAL_E_USAGE,
          "an existing name is refused without replace");
    path_of(p, sizeof p, "nowhere");
    CHECK(symlink("/nonexistent/dcmseal-target", p) == 0, "setup");
    CHECK(dcmseal_outfile_openat(&f, d, "nowhere", 0644, 0, &err) == DCMSEAL_E_USAGE,
          "so is a symbolic link to nothing");
    /* One that appears meanwhile is refused at commit and kept. */
    CHECK(dcmseal_outfile_openat(&f, d, "late", 0644, 0, &err) == DCMSEAL_OK, "open");
    CHECK(f != NULL && put(f, "ours"), "write");
    CHECK(write_file("late", "theirs"), "setup");
    CHECK(f != NULL && dcmseal_outfile_commit(f, &err) == DCMSEAL_E_USAGE,
          "a name that appeared meanwhile is refused");
    CHECK(has_text("late", "theirs") && temps_in(".", NULL) == 0, "and kept, nothing left");
    /* With replace, a symbolic link is replaced, never written through. */
    CHECK(dcmseal_outfile_openat(&f, d, "nowhere", 0644, 1, &err) == DCMSEAL_OK, "open");
    CHECK(f != NULL && put(f, "new") && dcmseal_outfile_commit(f, &err) == DCMSEAL_OK,
          "commit over a link");
    CHECK(has_text("nowhere", "new") && mode_of("nowhere") == 0644, "the link was replaced");
    close(d);
}

/* The attack of issue 11: a directory on the output's path is swapped for
 * a link to another one while the output is being written. */
static void test_directory_swapped(void)
{
    dcmseal_outfile_t *f = NULL;
    dcmseal_error err;
    char sub[256], moved[256], elsewhere[256];
    path_of(sub, sizeof sub, "sub");
    path_of(moved, sizeof moved, "moved");
    path_of(elsewhere, sizeof elsewhere, "elsewhere");
    CHECK(mkdir(sub, 0700) == 0 && mkdir(elsewhere, 0700) == 0, "setup");
    int d = open(sub, O_RDONLY | O_DIRECTORY);
    CHECK(dcmseal_outfile_openat(&f, d, "out", 0600, 0, &err) == DCMSEAL_OK, "open");
    CHECK(f != NULL && put(f, "whole"), "write");
    CHECK(rename(sub, moved) == 0 && symlink(elsewhere, sub) == 0, "swap");
    CHECK(f != NULL && dcmseal_outfile_commit(f, &err) == DCMSEAL_OK, "commit: %s", err.message);
    CHECK(has_text("moved/out", "whole"), "the output is in the directory opened");
    CHECK(!exists("elsewhere/out") && temps_in("elsewhere", NULL) == 0,
          "nothing where the path now leads");
    close(d);
}

/* Work in place: the name is replaced only while it is the file read. */
static void test_target(void)
{
    dcmseal_outfile_t *f = NULL;
    dcmseal_error err;
    char p[256], q[256];
    struct stat sb;
    int d = open_dir(".");
    path_of(p, sizeof p, "input");
    CHECK(write_file("input", "plain") && stat(p, &sb) == 0, "setup");
    CHECK(dcmseal_outfile_openat(&f, d, "input", 0640, 1, &err) == DCMSEAL_OK, "open");
    dcmseal_outfile_set_target(f, (uint64_t)sb.st_dev, (uint64_t)sb.st_ino);
    CHECK(put(f, "sealed") && dcmseal_outfile_commit(f, &err) == DCMSEAL_OK,
          "the file read is replaced: %s", err.message);
    CHECK(has_text("input", "sealed"), "content");

    CHECK(stat(p, &sb) == 0, "setup");
    CHECK(dcmseal_outfile_openat(&f, d, "input", 0640, 1, &err) == DCMSEAL_OK, "open");
    dcmseal_outfile_set_target(f, (uint64_t)sb.st_dev, (uint64_t)sb.st_ino);
    path_of(q, sizeof q, "newcomer");
    CHECK(write_file("newcomer", "theirs") && rename(q, p) == 0, "swap the file");
    CHECK(put(f, "ours") && dcmseal_outfile_commit(f, &err) == DCMSEAL_E_IO,
          "a file swapped in meanwhile is not replaced");
    CHECK(strstr(err.message, "replaced or removed while being worked on") != NULL, "%s",
          err.message);
    CHECK(has_text("input", "theirs") && temps_in(".", NULL) == 0, "kept, nothing left");

    CHECK(dcmseal_outfile_openat(&f, d, "gone", 0640, 1, &err) == DCMSEAL_OK, "open");
    dcmseal_outfile_set_target(f, (uint64_t)sb.st_dev, (uint64_t)sb.st_ino);
    CHECK(put(f, "x") && dcmseal_outfile_commit(f, &err) == DCMSEAL_E_IO,
          "nor a name that is gone");
    CHECK(!exists("gone") && temps_in(".", NULL) == 0, "nothing left");
    close(d);
}

static void test_path_variant(void)
{
    dcmseal_outfile_t *f = NULL;
    dcmseal_error err;
    char p[256];
    path_of(p, sizeof p, "moved/by-path");
    CHECK(dcmseal_outfile_open(&f, p, 0604, 0, &err) == DCMSEAL_OK, "open: %s", err.message);
    CHECK(f != NULL && put(f, "path") && dcmseal_outfile_commit(f, &err) == DCMSEAL_OK,
          "commit");
    CHECK(has_text("moved/by-path", "path") && mode_of("moved/by-path") == 0604, "by path");
    path_of(p, sizeof p, "no-such-dir/x");
    CHECK(dcmseal_outfile_open(&f, p, 0600, 0, &err) == DCMSEAL_E_IO,
          "a missing directory is an I/O error");
}

/* ---- group commit ---------------------------------------------------------- */

/* Outfiles in two new directories committed together: each lands with its
 * data and mode; a name taken meanwhile fails only its own outfile, and a
 * missing one only its own place; nothing temporary is left. */
static void test_group(void)
{
    enum { N = 9 };
    dcmseal_outfile_t *f[N + 1];
    dcmseal_error err[N + 1], *errs[N + 1];
    char p[256], name[300], text[32];
    int d[2];
    for (int k = 0; k < 2; k++) {
        path_of(p, sizeof p, k ? "g-b" : "g-a");
        CHECK(mkdir(p, 0700) == 0, "%s: mkdir", p);
        d[k] = open_dir(k ? "g-b" : "g-a");
    }
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "f%d", i);
        snprintf(text, sizeof text, "data %d", i);
        errs[i] = &err[i];
        CHECK(dcmseal_outfile_openat(&f[i], d[i % 2], name, 0640, 0, &err[i]) == DCMSEAL_OK &&
                  put(f[i], text), "%s: open", name);
    }
    f[N] = NULL;
    errs[N] = &err[N];
    snprintf(name, sizeof name, "g-%c/f%d", (N - 1) % 2 ? 'b' : 'a', N - 1);
    CHECK(write_file(name, "someone's"), "plant %s", name);
    CHECK(dcmseal_outfile_commit_all(f, N + 1, errs) == N - 1, "%d of %d committed", N - 1,
          N + 1);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "g-%c/f%d", i % 2 ? 'b' : 'a', i);
        snprintf(text, sizeof text, "data %d", i);
        if (i + 1 < N)
            CHECK(err[i].status == DCMSEAL_OK && has_text(name, text) && mode_of(name) == 0640,
                  "%s: committed with the group (%s)", name, err[i].message);
        else
            CHECK(err[i].status == DCMSEAL_E_USAGE && has_text(name, "someone's"),
                  "%s: a name taken meanwhile fails only its own outfile, and is kept", name);
    }
    CHECK(err[N].status == DCMSEAL_E_USAGE, "a missing outfile fails its own place");
    unsigned mode;
    CHECK(temps_in("g-a", &mode) == 0 && temps_in("g-b", &mode) == 0,
          "no temporary file left");
    /* One alone goes the same way (its data flushed by fsync). */
    CHECK(dcmseal_outfile_openat(&f[0], d[0], "alone", 0600, 0, &err[0]) == DCMSEAL_OK &&
              put(f[0], "alone") && dcmseal_outfile_commit_all(f, 1, errs) == 1 &&
              has_text("g-a/alone", "alone"),
          "a group of one: %s", err[0].message);
    close(d[0]);
    close(d[1]);
}

int main(int argc, char **argv)
{
    named = argc > 1 && strcmp(argv[1], "named") == 0;
    strcpy(root, "/tmp/dcmseal-outfile-XXXXXX");
    if (mkdtemp(root) == NULL)
        return 1;
    test_names();
    test_mode_until_commit();
    test_existing();
    test_directory_swapped();
    test_target();
    test_path_variant();
    test_group();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        printf("could not remove %s\n", root);
    return check_done(named ? "unit.outfile.named" : "unit.outfile");
}
