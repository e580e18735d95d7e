/* dcmseal as Orthanc's storage area: every attachment Orthanc stores (DICOM
 * files, JSON summaries, attachments of users) becomes a dcmseal object in
 * Orthanc's own StorageDirectory layout; reads decrypt only the segments
 * they need. docs/ORTHANC.md is the user's guide.
 *
 * This file is the Orthanc glue: entry points, the four storage callbacks,
 * a status route, and the mapping of dcmseal errors to Orthanc's. The
 * format is libdcmseal's alone. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <orthanc/OrthancCPlugin.h>

#include "plugin.h"

#define PLUGIN_NAME "dcmseal"
#define PLUGIN_VERSION "0.1.0"

/* The secure heap holds the cache's DEKs and whatever else OpenSSL keeps
 * there in this process (Orthanc's own TLS keys, when it has any): never
 * less than this. */
#define SECURE_HEAP_MIN (1u << 20)

static OrthancPluginContext *ctx;

static struct {
    plugin_config cfg;
    pool *pool;
    dcmseal_dek_cache_t *cache;
    dcmseal_cached_ring_t *cached;
    const dcmseal_keyring *ring; /* what every object goes through */
    store *store;
    pthread_t sweeper;
    int sweeping;
    pthread_mutex_t stop_lock;
    pthread_cond_t stop;
    int stopping;
} g = {.stop_lock = PTHREAD_MUTEX_INITIALIZER, .stop = PTHREAD_COND_INITIALIZER};

static struct {
    atomic_ullong stored, read_whole, read_range, removed, plain_read, plain_refused, failed;
} count;

void plugin_log(log_level level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (ctx == NULL)
        return;
    if (level == PLUGIN_ERROR)
        OrthancPluginLogError(ctx, line);
    else if (level == PLUGIN_WARNING)
        OrthancPluginLogWarning(ctx, line);
    else
        OrthancPluginLogInfo(ctx, line);
}

/* A token outage is the pool's to log, once; everything else belongs to one
 * attachment and is logged with it. Every failure is a 500 to REST clients
 * and a failure status to DICOM peers; what differs is what the log says. */
static OrthancPluginErrorCode fail(const char *what, const char *uuid, dcmseal_status st,
                                   const dcmseal_error *err)
{
    atomic_fetch_add(&count.failed, 1);
    if (st != DCMSEAL_E_TOKEN)
        plugin_log(PLUGIN_ERROR, "dcmseal: cannot %s attachment %s: %s", what, uuid,
                   err->message);
    switch (st) {
    case DCMSEAL_E_AUTH:
    case DCMSEAL_E_FORMAT:
        return OrthancPluginErrorCode_CorruptedFile;
    case DCMSEAL_E_INTERNAL:
        return OrthancPluginErrorCode_NotEnoughMemory;
    case DCMSEAL_E_IO:
        return strcmp(what, "store") == 0 ? OrthancPluginErrorCode_FileStorageCannotWrite
                                           : OrthancPluginErrorCode_StorageAreaPlugin;
    default: /* the token or the key */
        return OrthancPluginErrorCode_StorageAreaPlugin;
    }
}

/* ---- the storage area ----------------------------------------------------- */

/* Durable before Orthanc hears of it: an unnamed temporary file in the
 * attachment's folder, flushed, then linked under its name (engine.h,
 * dcmseal_outfile_openat); a failure or a kill leaves nothing. */
static OrthancPluginErrorCode storage_create(const char *uuid, const void *content,
                                             int64_t size, OrthancPluginContentType type)
{
    dcmseal_error err;
    dcmseal_status st;
    dcmseal_outfile_t *f = NULL;
    dcmseal_object_report rep;
    int dir = -1, absent = 0;
    (void)type; /* every type is sealed; DICOM ones get their identity bound */
    dcmseal_error_clear(&err);
    if (!store_uuid_ok(uuid) || size < 0)
        return OrthancPluginErrorCode_ParameterOutOfRange;
    st = store_dir(g.store, &dir, &absent, uuid, 1, &err);
    if (st == DCMSEAL_OK)
        st = dcmseal_outfile_openat(&f, dir, uuid, 0600, 0, &err);
    if (dir >= 0)
        close(dir);
    if (st == DCMSEAL_OK) {
        const dcmseal_seal_opts opts = {.keyring = g.ring};
        st = dcmseal_seal_mem(&rep, dcmseal_outfile_fd(f), content, (size_t)size, &opts, &err);
        if (st == DCMSEAL_OK) {
            st = dcmseal_outfile_commit(f, &err);
            f = NULL;
        }
    }
    dcmseal_outfile_abort(f);
    if (st != DCMSEAL_OK)
        return fail("store", uuid, st, &err);
    atomic_fetch_add(&count.stored, 1);
    return OrthancPluginErrorCode_Success;
}

/* An opened attachment: a dcmseal reader, or a plain file that migration
 * has not reached yet. */
typedef struct attachment {
    int fd;
    dcmseal_reader_t *reader; /* NULL: plain */
    uint64_t size;
} attachment;

static void attachment_close(attachment *a)
{
    dcmseal_reader_free(a->reader);
    if (a->fd >= 0)
        close(a->fd);
}

static OrthancPluginErrorCode attachment_open(attachment *a, const char *uuid)
{
    dcmseal_error err;
    dcmseal_status st;
    uint8_t magic[16];
    struct stat sb;
    int absent = 0;
    ssize_t n;
    memset(a, 0, sizeof *a);
    a->fd = -1;
    dcmseal_error_clear(&err);
    if (!store_uuid_ok(uuid))
        return OrthancPluginErrorCode_ParameterOutOfRange;
    if ((st = store_open_file(g.store, &a->fd, &absent, uuid, &err)) != DCMSEAL_OK)
        return fail("read", uuid, st, &err);
    if (absent) {
        plugin_log(PLUGIN_ERROR, "dcmseal: attachment %s is not in the storage directory", uuid);
        atomic_fetch_add(&count.failed, 1);
        return OrthancPluginErrorCode_InexistentFile;
    }
    do
        n = pread(a->fd, magic, sizeof magic, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0 || fstat(a->fd, &sb) != 0) {
        st = dcmseal_fail(&err, DCMSEAL_E_IO, "read failed: %s", strerror(errno));
    } else if (dcmseal_is_sealed(magic, (size_t)n)) {
        if ((st = dcmseal_reader_open(&a->reader, a->fd, g.ring, &err)) == DCMSEAL_OK)
            a->size = dcmseal_reader_size(a->reader);
    } else if (g.cfg.serve_plain) {
        atomic_fetch_add(&count.plain_read, 1);
        a->size = (uint64_t)sb.st_size;
    } else {
        /* Someone who can write to the storage directory must not be able
         * to plant what Orthanc then serves as genuine. */
        atomic_fetch_add(&count.plain_refused, 1);
        st = dcmseal_fail(&err, DCMSEAL_E_AUTH,
                          "not a dcmseal object: refused (to serve plain files while "
                          "migrating, set Dcmseal.ServePlainFiles; docs/ORTHANC.md)");
    }
    if (st != DCMSEAL_OK) {
        attachment_close(a);
        return fail("read", uuid, st, &err);
    }
    return OrthancPluginErrorCode_Success;
}

static dcmseal_status attachment_pread(attachment *a, uint8_t *out, size_t len, uint64_t off,
                                       dcmseal_error *err)
{
    size_t done = 0;
    if (off > a->size || len > a->size - off)
        return dcmseal_fail(err, DCMSEAL_E_USAGE,
                            "range of %zu bytes at %llu is beyond its %llu bytes", len,
                            (unsigned long long)off, (unsigned long long)a->size);
    if (a->reader != NULL) {
        dcmseal_status st = dcmseal_reader_pread(a->reader, out, len, off, &done, err);
        if (st == DCMSEAL_OK && done != len)
            st = dcmseal_fail(err, DCMSEAL_E_FORMAT, "shorter than its header says");
        return st;
    }
    while (done < len) {
        ssize_t r = pread(a->fd, out + done, len - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return dcmseal_fail(err, DCMSEAL_E_IO, "read failed: %s",
                                r < 0 ? strerror(errno) : "file shrank");
        done += (size_t)r;
    }
    return DCMSEAL_OK;
}

/* Reads the attachment |uuid| into |target|: all of it (|whole|: the buffer
 * is made here, Orthanc frees it) or, as Orthanc asks for the start of a
 * DICOM file to parse its tags, the target->size bytes at |start|, of which
 * only the segments under the range are decrypted. */
static OrthancPluginErrorCode read_into(OrthancPluginMemoryBuffer64 *target, const char *uuid,
                                        int whole, uint64_t start)
{
    attachment a;
    dcmseal_error err;
    dcmseal_status st = DCMSEAL_OK;
    OrthancPluginErrorCode rc = attachment_open(&a, uuid);
    if (rc != OrthancPluginErrorCode_Success)
        return rc;
    dcmseal_error_clear(&err);
    if (whole && OrthancPluginCreateMemoryBuffer64(ctx, target, a.size) !=
                     OrthancPluginErrorCode_Success) {
        attachment_close(&a);
        st = dcmseal_fail(&err, DCMSEAL_E_INTERNAL, "no memory for %llu bytes",
                          (unsigned long long)a.size);
        return fail("read", uuid, st, &err);
    }
    st = attachment_pread(&a, target->data, (size_t)target->size, start, &err);
    attachment_close(&a);
    if (st == DCMSEAL_E_USAGE) {
        atomic_fetch_add(&count.failed, 1);
        plugin_log(PLUGIN_ERROR, "dcmseal: cannot read attachment %s: %s", uuid, err.message);
        return OrthancPluginErrorCode_BadRange;
    }
    if (st != DCMSEAL_OK) {
        /* Nothing unauthenticated stays in Orthanc's buffer. */
        OPENSSL_cleanse(target->data, (size_t)target->size);
        return fail("read", uuid, st, &err);
    }
    atomic_fetch_add(whole ? &count.read_whole : &count.read_range, 1);
    return OrthancPluginErrorCode_Success;
}

static OrthancPluginErrorCode storage_read_whole(OrthancPluginMemoryBuffer64 *target,
                                                 const char *uuid, OrthancPluginContentType type)
{
    (void)type;
    return read_into(target, uuid, 1, 0);
}

static OrthancPluginErrorCode storage_read_range(OrthancPluginMemoryBuffer64 *target,
                                                 const char *uuid, OrthancPluginContentType type,
                                                 uint64_t start)
{
    (void)type;
    return read_into(target, uuid, 0, start);
}

static OrthancPluginErrorCode storage_remove(const char *uuid, OrthancPluginContentType type)
{
    dcmseal_error err;
    dcmseal_status st;
    (void)type;
    dcmseal_error_clear(&err);
    if (!store_uuid_ok(uuid))
        return OrthancPluginErrorCode_ParameterOutOfRange;
    if ((st = store_remove(g.store, uuid, &err)) != DCMSEAL_OK)
        return fail("remove", uuid, st, &err);
    atomic_fetch_add(&count.removed, 1);
    return OrthancPluginErrorCode_Success;
}

/* ---- GET /dcmseal/status -------------------------------------------------- */

/* What an operator (and the tests) can see: counters, the key version in
 * use, the cache and whether the token answers. No secrets, no PHI. */
static OrthancPluginErrorCode status_route(OrthancPluginRestOutput *output, const char *url,
                                           const OrthancPluginHttpRequest *req)
{
    pool_stats ps;
    dcmseal_dek_cache_stats cs;
    (void)url;
    if (req->method != OrthancPluginHttpMethod_Get) {
        OrthancPluginSendMethodNotAllowed(ctx, output, "GET");
        return OrthancPluginErrorCode_Success;
    }
    pool_get_stats(g.pool, &ps);
    dcmseal_dek_cache_get_stats(g.cache, &cs);
    json_t *j = json_pack(
        "{s:s, s:s, s:I, s:{s:I, s:I, s:I, s:I}, s:{s:b, s:f, s:I},"
        " s:{s:I, s:I, s:I, s:I, s:b},"
        " s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:b, s:s}",
        "token", ps.token, "key", ps.key, "primary_version", (json_int_t)ps.primary,
        "sessions", "open", (json_int_t)ps.sessions_open, "max", (json_int_t)ps.sessions_max,
        "token_calls", (json_int_t)ps.token_calls, "waits", (json_int_t)ps.waits,
        "outage", "active", ps.outage, "seconds", ps.outage_seconds,
        "count", (json_int_t)ps.outages,
        "dek_cache", "hits", (json_int_t)cs.hits, "misses", (json_int_t)cs.misses,
        "evicted", (json_int_t)cs.evicted, "entries", (json_int_t)cs.entries,
        "secure_heap", cs.secure,
        "attachments", "stored", (json_int_t)atomic_load(&count.stored),
        "read_whole", (json_int_t)atomic_load(&count.read_whole),
        "read_range", (json_int_t)atomic_load(&count.read_range),
        "removed", (json_int_t)atomic_load(&count.removed),
        "plain_read", (json_int_t)atomic_load(&count.plain_read),
        "plain_refused", (json_int_t)atomic_load(&count.plain_refused),
        "failed", (json_int_t)atomic_load(&count.failed),
        "serve_plain_files", g.cfg.serve_plain, "storage_directory", g.cfg.storage_dir);
    char *body = j != NULL ? json_dumps(j, JSON_INDENT(2)) : NULL;
    json_decref(j);
    if (body == NULL)
        return OrthancPluginErrorCode_NotEnoughMemory;
    OrthancPluginAnswerBuffer(ctx, output, body, (uint32_t)strlen(body), "application/json");
    free(body);
    return OrthancPluginErrorCode_Success;
}

/* ---- life ----------------------------------------------------------------- */

/* Expired DEKs are wiped within a second even when nothing reads. */
static void *sweep(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g.stop_lock);
    while (!g.stopping) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_sec += 1;
        pthread_cond_timedwait(&g.stop, &g.stop_lock, &t);
        pthread_mutex_unlock(&g.stop_lock);
        dcmseal_dek_cache_expire(g.cache);
        pthread_mutex_lock(&g.stop_lock);
    }
    pthread_mutex_unlock(&g.stop_lock);
    return NULL;
}

static unsigned long next_pow2(unsigned long n)
{
    unsigned long p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

/* The process-wide settings the plugin needs; each is logged. */
static void harden(void)
{
    struct sigaction sa;
    /* A network HSM's client library writes to a socket; once the HSM is
     * gone, SIGPIPE would kill Orthanc instead of failing one call. */
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        signal(SIGPIPE, SIG_IGN);
        plugin_log(PLUGIN_INFO, "dcmseal: SIGPIPE is now ignored");
    }
    if (!g.cfg.allow_core_dumps) {
        /* A core dump of Orthanc holds patients' images in clear. */
        struct rlimit none = {0, 0};
        if (setrlimit(RLIMIT_CORE, &none) != 0)
            plugin_log(PLUGIN_WARNING, "dcmseal: cannot disable core dumps: %s",
                       strerror(errno));
    }
    if (!CRYPTO_secure_malloc_initialized()) {
        unsigned long want = next_pow2(g.cfg.cache_entries * 64u * 4u);
        int rc = CRYPTO_secure_malloc_init(want > SECURE_HEAP_MIN ? want : SECURE_HEAP_MIN, 32);
        if (rc == 0)
            plugin_log(PLUGIN_WARNING, "dcmseal: no secure heap: cached DEKs are kept in "
                                       "ordinary memory");
        else if (rc == 2)
            plugin_log(PLUGIN_WARNING, "dcmseal: the secure heap could not be locked in memory "
                                       "(RLIMIT_MEMLOCK?)");
    }
}

static void teardown(void)
{
    if (g.sweeping) {
        pthread_mutex_lock(&g.stop_lock);
        g.stopping = 1;
        pthread_cond_signal(&g.stop);
        pthread_mutex_unlock(&g.stop_lock);
        pthread_join(g.sweeper, NULL);
        g.sweeping = 0;
    }
    dcmseal_cached_ring_free(g.cached);
    dcmseal_dek_cache_free(g.cache);
    pool_free(g.pool);
    store_free(g.store);
    config_free(&g.cfg);
    g.cached = NULL;
    g.cache = NULL;
    g.pool = NULL;
    g.store = NULL;
}

/* The folder relative paths in the configuration are taken from. */
static char *config_base(void)
{
    char *path = OrthancPluginGetConfigurationPath(ctx);
    char *base = NULL;
    struct stat sb;
    if (path != NULL && path[0] != '\0') {
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            base = OPENSSL_strdup(path);
        } else {
            const char *slash = strrchr(path, '/');
            base = slash == NULL ? OPENSSL_strdup(".")
                   : slash == path ? OPENSSL_strdup("/")
                                   : OPENSSL_strndup(path, (size_t)(slash - path));
        }
    }
    if (path != NULL)
        OrthancPluginFreeString(ctx, path);
    if (base != NULL && base[0] != '/') {
        char cwd[4096];
        char *abs = NULL;
        if (getcwd(cwd, sizeof cwd) != NULL && (abs = OPENSSL_zalloc(strlen(cwd) + strlen(base) + 2)) != NULL)
            sprintf(abs, "%s/%s", cwd, base);
        OPENSSL_free(base);
        base = abs;
    }
    return base;
}

ORTHANC_PLUGINS_API int32_t OrthancPluginInitialize(OrthancPluginContext *context)
{
    dcmseal_error err;
    dcmseal_status st;
    char *json = NULL, *base = NULL;
    ctx = context;
    dcmseal_error_clear(&err);
    /* Range reads and 64-bit buffers arrived in Orthanc 1.9.0. */
    if (!OrthancPluginCheckVersionAdvanced(ctx, 1, 9, 0)) {
        plugin_log(PLUGIN_ERROR, "dcmseal: Orthanc %s is too old: 1.9.0 or later is needed",
                   ctx->orthancVersion);
        return -1;
    }
    OrthancPluginSetDescription(ctx, "Encrypts Orthanc's storage with keys held in a "
                                     "PKCS#11 token (dcmseal).");
    json = OrthancPluginGetConfiguration(ctx);
    base = config_base();
    st = json != NULL && base != NULL ? config_parse(&g.cfg, json, base, &err)
                                      : dcmseal_fail(&err, DCMSEAL_E_INTERNAL,
                                                     "cannot read Orthanc's configuration");
    if (json != NULL)
        OrthancPluginFreeString(ctx, json);
    OPENSSL_free(base);
    if (st != DCMSEAL_OK)
        goto out;
    harden();
    if ((st = store_open(&g.store, g.cfg.storage_dir, &err)) != DCMSEAL_OK ||
        (st = dcmseal_dek_cache_new(&g.cache, g.cfg.cache_entries,
                                    g.cfg.cache_max_age_s * 1000u, &err)) != DCMSEAL_OK ||
        (st = pool_new(&g.pool, &g.cfg, &err)) != DCMSEAL_OK ||
        (st = dcmseal_cached_ring_new(&g.cached, g.cache, pool_keyring(g.pool), &err)) !=
            DCMSEAL_OK)
        goto out;
    g.ring = dcmseal_cached_ring_get0_keyring(g.cached);
    g.sweeping = pthread_create(&g.sweeper, NULL, sweep, NULL) == 0;
    OrthancPluginRegisterStorageArea2(ctx, storage_create, storage_read_whole,
                                      storage_read_range, storage_remove);
    OrthancPluginRegisterRestCallbackNoLock(ctx, "/dcmseal/status", status_route);
    pool_stats ps;
    pool_get_stats(g.pool, &ps);
    plugin_log(PLUGIN_WARNING,
               "dcmseal: storage %s sealed with key '%s' v%u on token '%s'; %u sessions; DEK "
               "cache %zu entries, %u s; plain files %s",
               g.cfg.storage_dir, ps.key, ps.primary, ps.token, g.cfg.sessions,
               g.cfg.cache_entries, g.cfg.cache_max_age_s,
               g.cfg.serve_plain ? "served (migration)" : "refused");
out:
    if (st != DCMSEAL_OK) {
        plugin_log(PLUGIN_ERROR, "dcmseal: %s", err.message);
        teardown();
        return -1;
    }
    return 0;
}

ORTHANC_PLUGINS_API void OrthancPluginFinalize(void)
{
    teardown();
}

ORTHANC_PLUGINS_API const char *OrthancPluginGetName(void)
{
    return PLUGIN_NAME;
}

ORTHANC_PLUGINS_API const char *OrthancPluginGetVersion(void)
{
    return PLUGIN_VERSION;
}
