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

typedef struct committer {
    dcmseal_commit_group_t *g;
    dcmseal_outfile_t *f;
    dcmseal_status st;
    dcmseal_error err;
} committer;

static void *commit_main(void *arg)
{
    committer *c = arg;
    c->st = dcmseal_outfile_commit_group(c->g, c->f, &c->err);
    return NULL;
}

/* |n| outfiles in the new directory |rel|, committed from a thread each
 * through one group; the last one's name is taken before it commits. The
 * number of commits the group ran goes to |*commits|. */
static void group_run(const char *rel, unsigned n, unsigned max_files, uint64_t max_bytes,
                      unsigned wait_ms, uint64_t *commits)
{
    enum { N = 12 };
    committer c[N];
    pthread_t tid[N];
    dcmseal_commit_group_t *g = NULL;
    dcmseal_error err;
    char p[256], name[300], text[32];
    uint64_t files = 0;
    *commits = 0;
    path_of(p, sizeof p, rel);
    CHECK(n <= N && mkdir(p, 0700) == 0, "%s: mkdir", rel);
    int d = open_dir(rel);
    CHECK(dcmseal_commit_group_new(&g, max_files, max_bytes, wait_ms, &err) == DCMSEAL_OK,
          "group: %s", err.message);
    if (g == NULL || d < 0)
        return;
    for (unsigned i = 0; i < n; i++) {
        snprintf(name, sizeof name, "f%u", i);
        snprintf(text, sizeof text, "data %u", i);
        c[i] = (committer){.g = g};
        CHECK(dcmseal_outfile_openat(&c[i].f, d, name, 0640, 0, &err) == DCMSEAL_OK &&
                  put(c[i].f, text), "%s/%s: open", rel, name);
    }
    snprintf(name, sizeof name, "%s/f%u", rel, n - 1);
    CHECK(write_file(name, "someone's"), "plant %s", name);
    for (unsigned i = 0; i < n; i++)
        CHECK(pthread_create(&tid[i], NULL, commit_main, &c[i]) == 0, "thread");
    for (unsigned i = 0; i < n; i++)
        pthread_join(tid[i], NULL);
    for (unsigned i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s/f%u", rel, i);
        snprintf(text, sizeof text, "data %u", i);
        if (i + 1 < n)
            CHECK(c[i].st == DCMSEAL_OK && has_text(name, text) && mode_of(name) == 0640,
                  "%s: committed with the group (%s)", name, c[i].err.message);
        else
            CHECK(c[i].st == DCMSEAL_E_USAGE && has_text(name, "someone's"),
                  "%s: a name taken meanwhile fails only its own outfile, and is kept", name);
    }
    unsigned mode;
    CHECK(temps_in(rel, &mode) == 0, "%s: no temporary file left", rel);
    dcmseal_commit_group_stats(g, commits, &files);
    CHECK(files == n, "%s: %llu outfiles counted, %u committed", rel, (unsigned long long)files,
          n);
    dcmseal_commit_group_free(g);
    close(d);
}

static void test_group(void)
{
    uint64_t commits;
    dcmseal_commit_group_t *g = NULL;
    dcmseal_error err;
    /* Threads that finish within the gathering time share commits. */
    group_run("g-all", 8, 0, 0, 300, &commits);
    CHECK(commits >= 1 && commits < 8, "8 outfiles in %llu commits: shared",
          (unsigned long long)commits);
    /* At most 3 a commit. */
    group_run("g-count", 9, 3, 0, 300, &commits);
    CHECK(commits >= 3 && commits < 9, "9 outfiles, 3 a commit at most: %llu commits",
          (unsigned long long)commits);
    /* A byte budget smaller than any file: one each (none is refused). */
    group_run("g-bytes", 5, 0, 1, 300, &commits);
    CHECK(commits == 5, "byte budget 1: %llu commits for 5 outfiles",
          (unsigned long long)commits);
    /* Alone, with no gathering time: committed at once. */
    group_run("g-one", 1, 0, 0, 0, &commits);
    CHECK(commits == 1, "one outfile, one commit");
    CHECK(dcmseal_commit_group_new(NULL, 1, 1, 1, &err) == DCMSEAL_E_USAGE, "no out");
    CHECK(dcmseal_commit_group_new(&g, 1, 0, 0, &err) == DCMSEAL_OK &&
              dcmseal_outfile_commit_group(g, NULL, &err) == DCMSEAL_E_USAGE,
          "no outfile");
    dcmseal_commit_group_free(g);
    dcmseal_commit_group_free(NULL);
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
