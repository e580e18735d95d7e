/* The Orthanc plugin's code driven without Orthanc: the test plays Orthanc's
 * side of the plugin SDK (the few services the plugin calls) and calls the
 * storage callbacks the plugin registers, against a SoftHSM token made in a
 * temporary directory. The orthanc.* suites run the plugin in a real
 * Orthanc; this one reaches what they cannot: AddressSanitizer (Orthanc
 * cannot run with the ASan runtime preloaded), every range at segment
 * boundaries, hostile uuids, and many threads at once.
 *   test_orthanc_plugin CORPUS_DIR */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <orthanc/OrthancCPlugin.h>

#include <dcmseal/engine.h>

#include "../support/check.h"

/* The plugin's entry points, which Orthanc finds with dlsym. */
int32_t OrthancPluginInitialize(OrthancPluginContext *context);
void OrthancPluginFinalize(void);

/* ---- Orthanc's side ------------------------------------------------------- */

static char config_json[8192];
static char log_text[1 << 16];
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static OrthancPluginStorageCreate s_create;
static OrthancPluginStorageReadWhole s_read;
static OrthancPluginStorageReadRange s_range;
static OrthancPluginStorageRemove s_remove;
static OrthancPluginRestCallback s_status;
static char answer[8192];
static int not_allowed;

static void fake_free(void *p) { free(p); }

static OrthancPluginErrorCode invoke(OrthancPluginContext *ctx, _OrthancPluginService service,
                                     const void *params)
{
    (void)ctx;
    switch (service) {
    case _OrthancPluginService_LogInfo:
    case _OrthancPluginService_LogWarning:
    case _OrthancPluginService_LogError:
        pthread_mutex_lock(&log_lock);
        if (strlen(log_text) + strlen(params) + 2 < sizeof log_text) {
            strcat(log_text, params);
            strcat(log_text, "\n");
        }
        pthread_mutex_unlock(&log_lock);
        return OrthancPluginErrorCode_Success;
    case _OrthancPluginService_GetConfiguration: {
        const _OrthancPluginRetrieveDynamicString *p = params;
        *p->result = strdup(config_json);
        return OrthancPluginErrorCode_Success;
    }
    case _OrthancPluginService_GetConfigurationPath: {
        const _OrthancPluginRetrieveDynamicString *p = params;
        *p->result = strdup("/nonexistent/orthanc.json");
        return OrthancPluginErrorCode_Success;
    }
    case _OrthancPluginService_SetPluginProperty:
        return OrthancPluginErrorCode_Success;
    case _OrthancPluginService_CreateMemoryBuffer64: {
        const _OrthancPluginCreateMemoryBuffer64 *p = params;
        p->target->data = malloc(p->size ? p->size : 1);
        p->target->size = p->size;
        return p->target->data ? OrthancPluginErrorCode_Success
                               : OrthancPluginErrorCode_NotEnoughMemory;
    }
    case _OrthancPluginService_RegisterStorageArea2: {
        const _OrthancPluginRegisterStorageArea2 *p = params;
        s_create = p->create;
        s_read = p->readWhole;
        s_range = p->readRange;
        s_remove = p->remove;
        return OrthancPluginErrorCode_Success;
    }
    case _OrthancPluginService_RegisterRestCallbackNoLock: {
        const _OrthancPluginRestCallback *p = params;
        s_status = p->callback;
        return OrthancPluginErrorCode_Success;
    }
    case _OrthancPluginService_AnswerBuffer: {
        const _OrthancPluginAnswerBuffer *p = params;
        size_t n = p->answerSize < sizeof answer - 1 ? p->answerSize : sizeof answer - 1;
        memcpy(answer, p->answer, n);
        answer[n] = '\0';
        return OrthancPluginErrorCode_Success;
    }
    case _OrthancPluginService_SendMethodNotAllowed:
        not_allowed = 1;
        return OrthancPluginErrorCode_Success;
    default:
        return OrthancPluginErrorCode_UnknownPluginService;
    }
}

static OrthancPluginContext ctx = {NULL, "1.10.1", fake_free, invoke};

/* ---- helpers ---------------------------------------------------------------- */

static char dir[64], storage[128], uri[512];

static void sh(const char *fmt, ...) DCMSEAL_PRINTF(1, 2);
static void sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    CHECK(system(cmd) == 0, "%s", cmd);
}

/* Orthanc's configuration: |tmpl| with @S (the storage directory), @D (the
 * test's directory) and @U (the token URI) put in. */
static void set_config(const char *tmpl)
{
    size_t n = 0;
    for (const char *p = tmpl; *p && n + 600 < sizeof config_json; p++) {
        const char *v = NULL;
        if (p[0] == '@' && p[1] == 'S')
            v = storage;
        else if (p[0] == '@' && p[1] == 'D')
            v = dir;
        else if (p[0] == '@' && p[1] == 'U')
            v = uri;
        if (v != NULL) {
            n += (size_t)snprintf(config_json + n, sizeof config_json - n, "%s", v);
            p++;
        } else {
            config_json[n++] = *p;
        }
    }
    config_json[n] = '\0';
}

#define PATHS "\"StorageDirectory\": \"@S\", \"IndexDirectory\": \"@D/index\""

static uint8_t *pattern(size_t n, unsigned seed)
{
    uint8_t *b = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)((i * 2654435761u + seed) >> 7);
    return b;
}

static void uuid_of(char out[37], unsigned k)
{
    snprintf(out, 37, "%08x-%04x-4%03x-8%03x-%012x", k * 2654435761u, k & 0xffff, k & 0xfff,
             (k >> 3) & 0xfff, k);
}

static int path_of(char *out, size_t cap, const char *uuid)
{
    return snprintf(out, cap, "%s/%.2s/%.2s/%s", storage, uuid, uuid + 2, uuid) > 0;
}

/* Reads all of |uuid| and compares with |want|. */
static int reads_back(const char *uuid, const uint8_t *want, size_t n)
{
    OrthancPluginMemoryBuffer64 b = {NULL, 0};
    int ok = s_read(&b, uuid, OrthancPluginContentType_Dicom) == OrthancPluginErrorCode_Success &&
             b.size == n && memcmp(b.data, want, n) == 0;
    free(b.data);
    return ok;
}

/* Reads [off, off + len) of |uuid| as Orthanc does: into its own buffer. */
static OrthancPluginErrorCode range(const char *uuid, uint64_t off, size_t len,
                                    const uint8_t *want)
{
    OrthancPluginMemoryBuffer64 b = {malloc(len ? len : 1), len};
    OrthancPluginErrorCode rc = s_range(&b, uuid, OrthancPluginContentType_Dicom, off);
    if (rc == OrthancPluginErrorCode_Success && want != NULL && memcmp(b.data, want + off, len))
        rc = OrthancPluginErrorCode_CorruptedFile;
    free(b.data);
    return rc;
}

static int logged(const char *what)
{
    pthread_mutex_lock(&log_lock);
    int found = strstr(log_text, what) != NULL;
    pthread_mutex_unlock(&log_lock);
    return found;
}

/* ---- the tests ---------------------------------------------------------------- */

static void test_bad_configurations(void)
{
    static const struct {
        const char *config, *log;
    } cases[] = {
        {"{" PATHS "}", "no token"},
        {"{" PATHS ", \"Dcmseal\": {\"Token\": \"@U\", \"Key\": \"kek\", \"DekCacheSise\": 5}}",
         "unknown option Dcmseal.DekCacheSise"},
        {"{" PATHS ", \"Dcmseal\": {\"Token\": \"@U\", \"Key\": \"kek\", \"Sessions\": 0}}",
         "Dcmseal.Sessions must be a whole number from 1 to 64"},
        {"{" PATHS ", \"Dcmseal\": {\"Token\": \"@U\", \"Key\": \"kek\", "
         "\"ServePlainFiles\": \"yes\"}}",
         "Dcmseal.ServePlainFiles must be true or false"},
        {"{" PATHS ", \"Dcmseal\": {\"Token\": \"@U\", \"Key\": \"nosuch\"}}", "nosuch"},
        {"{" PATHS ", \"Dcmseal\": {\"Token\": \"@U\"}}", "no key"},
        {"{\"StorageDirectory\": \"@S\", \"Dcmseal\": {\"Token\": \"@U\", \"Key\": \"kek\"}}",
         "is inside StorageDirectory"},
        {"{\"StorageDirectory\": \"@S\", \"IndexDirectory\": \"@S/../storage/db\", "
         "\"Dcmseal\": {\"Token\": \"@U\", \"Key\": \"kek\"}}",
         "is inside StorageDirectory"},
        {"not json", "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        set_config(cases[i].config);
        log_text[0] = '\0';
        CHECK(OrthancPluginInitialize(&ctx) != 0, "bad configuration %zu refused", i);
        CHECK(logged(cases[i].log), "bad configuration %zu: the log says '%s': %s", i,
              cases[i].log, log_text);
        CHECK(s_create == NULL, "bad configuration %zu: no storage registered", i);
    }
}

static void test_round_trips(const char *corpus)
{
    /* Sizes around the 256 KiB segment and the 1 MiB read chunk. */
    static const size_t sizes[] = {0, 1, 4095, 262144, 262145, 1048576 + 3, 3 * 262144 - 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char uuid[37], path[256];
        size_t n = sizes[i];
        uint8_t *data = pattern(n, (unsigned)i);
        uuid_of(uuid, 100 + (unsigned)i);
        CHECK(s_create(uuid, data, (int64_t)n, OrthancPluginContentType_Unknown) ==
                  OrthancPluginErrorCode_Success, "create %zu bytes", n);
        CHECK(reads_back(uuid, data, n), "%zu bytes read back", n);
        /* Ranges: the start (Orthanc's tag reads), across a segment
         * boundary, the very end, and one byte past it. */
        if (n > 0) {
            size_t head = n < 1000 ? n : 1000;
            CHECK(range(uuid, 0, head, data) == OrthancPluginErrorCode_Success, "head of %zu", n);
            CHECK(range(uuid, n - 1, 1, data) == OrthancPluginErrorCode_Success, "last byte");
        }
        if (n > 262144 + 10)
            CHECK(range(uuid, 262144 - 10, 20, data) == OrthancPluginErrorCode_Success,
                  "a range across segments");
        CHECK(range(uuid, n, 1, NULL) == OrthancPluginErrorCode_BadRange,
              "a range past the end of %zu bytes", n);
        CHECK(range(uuid, n, 0, NULL) == OrthancPluginErrorCode_Success, "an empty range at the end");
        /* On disk: a dcmseal object with 0600, nothing else beside it. */
        struct stat sb;
        CHECK(path_of(path, sizeof path, uuid) && stat(path, &sb) == 0 &&
                  (sb.st_mode & 0777) == 0600, "stored as %s, mode 0600", path);
        FILE *f = fopen(path, "rb");
        uint8_t head[8] = {0};
        CHECK(f != NULL && fread(head, 1, 8, f) == 8 && dcmseal_is_sealed(head, 8), "sealed");
        if (f != NULL)
            fclose(f);
        free(data);
    }

    /* A DICOM file: sealed with its identity, its tags readable by range. */
    char path[4096], uuid[37];
    snprintf(path, sizeof path, "%s/dwv/bbmri-53323851.dcm", corpus);
    FILE *f = fopen(path, "rb");
    static uint8_t dcm[1 << 20];
    size_t n = f != NULL ? fread(dcm, 1, sizeof dcm, f) : 0;
    if (f != NULL)
        fclose(f);
    CHECK(n > 0, "read %s", path);
    uuid_of(uuid, 200);
    CHECK(s_create(uuid, dcm, (int64_t)n, OrthancPluginContentType_Dicom) ==
              OrthancPluginErrorCode_Success && reads_back(uuid, dcm, n), "DICOM round trip");
    char stored[256];
    path_of(stored, sizeof stored, uuid);
    int fd = open(stored, O_RDONLY);
    dcmseal_header_info info;
    CHECK(fd >= 0 && dcmseal_inspect_fd(&info, NULL, fd, NULL) == DCMSEAL_OK && info.is_dicom &&
              strcmp(info.wrap.kek_name, "kek") == 0, "a DICOM object under 'kek'");
    if (fd >= 0)
        close(fd);
    /* No UID in clear: every DICOM file holds the UID root 1.2.840.10008. */
    FILE *sf = fopen(stored, "rb");
    static uint8_t sealed[2 << 20];
    size_t sn = sf != NULL ? fread(sealed, 1, sizeof sealed, sf) : 0;
    if (sf != NULL)
        fclose(sf);
    CHECK(memmem(dcm, n, "1.2.840.10008", 13) != NULL && sn > n &&
              memmem(sealed, sn, "1.2.840.10008", 13) == NULL, "no UID in clear in the object");

    /* Remove, and remove again. */
    CHECK(s_remove(uuid, OrthancPluginContentType_Dicom) == OrthancPluginErrorCode_Success &&
              access(stored, F_OK) != 0, "removed");
    CHECK(s_remove(uuid, OrthancPluginContentType_Dicom) == OrthancPluginErrorCode_Success,
          "removing what is gone is no error");
    OrthancPluginMemoryBuffer64 b = {NULL, 0};
    CHECK(s_read(&b, uuid, OrthancPluginContentType_Dicom) ==
              OrthancPluginErrorCode_InexistentFile, "a removed file is inexistent");
    free(b.data);
}

static void test_hostile(void)
{
    static const char *const bad[] = {"", "../../../../etc/passwd", "0123", "AAAAAAAA-0000-4000-8000-000000000000",
                                      "00000000-0000-4000-8000-00000000000/", "00000000/0000-4000-8000-000000000000"};
    uint8_t x = 7;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        OrthancPluginMemoryBuffer64 b = {NULL, 0};
        CHECK(s_create(bad[i], &x, 1, OrthancPluginContentType_Dicom) ==
                  OrthancPluginErrorCode_ParameterOutOfRange, "create '%s' refused", bad[i]);
        CHECK(s_read(&b, bad[i], OrthancPluginContentType_Dicom) ==
                  OrthancPluginErrorCode_ParameterOutOfRange, "read '%s' refused", bad[i]);
        CHECK(s_remove(bad[i], OrthancPluginContentType_Dicom) ==
                  OrthancPluginErrorCode_ParameterOutOfRange, "remove '%s' refused", bad[i]);
        free(b.data);
    }
    /* A folder of the layout replaced by a link is not followed. */
    char uuid[37], link[256], target[256];
    uuid_of(uuid, 300);
    snprintf(target, sizeof target, "%s/elsewhere", dir);
    snprintf(link, sizeof link, "%s/%.2s", storage, uuid);
    sh("mkdir -p %s && rm -rf %s && ln -s %s %s", target, link, target, link);
    CHECK(s_create(uuid, &x, 1, OrthancPluginContentType_Dicom) != OrthancPluginErrorCode_Success,
          "a link in the layout is not followed");
    sh("test -z \"$(ls -A %s)\" && rm %s", target, link);

    /* A plain file where an object should be: refused, logged. */
    char path[256];
    uuid_of(uuid, 301);
    CHECK(s_create(uuid, &x, 1, OrthancPluginContentType_Dicom) == OrthancPluginErrorCode_Success,
          "create");
    path_of(path, sizeof path, uuid);
    sh("printf 'DICM plain' > %s", path);
    OrthancPluginMemoryBuffer64 b = {NULL, 0};
    CHECK(s_read(&b, uuid, OrthancPluginContentType_Dicom) != OrthancPluginErrorCode_Success,
          "a planted plain file is refused");
    free(b.data);
    CHECK(logged("not a dcmseal object: refused"), "and logged");
}

/* Orthanc's threads, all at once: create, read whole and in ranges,
 * remove, each on its own uuids, through a pool smaller than the threads. */
typedef struct worker {
    unsigned id;
    int ok;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    w->ok = 1;
    for (unsigned k = 0; k < 30 && w->ok; k++) {
        char uuid[37];
        size_t n = (size_t)((w->id * 7919u + k * 104729u) % 700000u);
        uint8_t *data = pattern(n, w->id * 100 + k);
        uuid_of(uuid, 1000 + w->id * 100 + k);
        w->ok = s_create(uuid, data, (int64_t)n, OrthancPluginContentType_Dicom) ==
                    OrthancPluginErrorCode_Success &&
                reads_back(uuid, data, n) &&
                (n < 10 || range(uuid, n / 2, n / 4, data) == OrthancPluginErrorCode_Success) &&
                (k % 3 != 0 ||
                 s_remove(uuid, OrthancPluginContentType_Dicom) == OrthancPluginErrorCode_Success);
        free(data);
    }
    return NULL;
}

static void test_threads(void)
{
    worker w[8];
    pthread_t t[8];
    for (unsigned i = 0; i < 8; i++) {
        w[i].id = i;
        CHECK(pthread_create(&t[i], NULL, work, &w[i]) == 0, "thread");
    }
    for (unsigned i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        CHECK(w[i].ok, "thread %u: every create, read and remove succeeded", i);
    }
}

static void test_status(void)
{
    OrthancPluginHttpRequest req;
    memset(&req, 0, sizeof req);
    req.method = OrthancPluginHttpMethod_Get;
    answer[0] = '\0';
    CHECK(s_status != NULL && s_status(NULL, "/dcmseal/status", &req) ==
                                  OrthancPluginErrorCode_Success, "status");
    json_t *j = json_loads(answer, 0, NULL);
    json_t *att = json_object_get(j, "attachments"), *cache = json_object_get(j, "dek_cache");
    CHECK(j != NULL && strcmp(json_string_value(json_object_get(j, "key")), "kek") == 0 &&
              json_integer_value(json_object_get(j, "primary_version")) == 1 &&
              json_integer_value(json_object_get(att, "stored")) > 200 &&
              json_integer_value(json_object_get(att, "read_range")) > 0 &&
              json_integer_value(json_object_get(att, "plain_refused")) == 1 &&
              json_integer_value(json_object_get(cache, "hits")) > 0,
          "status: %s", answer);
    json_decref(j);
    req.method = OrthancPluginHttpMethod_Post;
    CHECK(s_status(NULL, "/dcmseal/status", &req) == OrthancPluginErrorCode_Success && not_allowed,
          "status only answers GET");
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    strcpy(dir, "/tmp/test_orthanc_plugin.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(storage, sizeof storage, "%s/storage", dir);
    /* A token and a key of our own. */
    sh("mkdir -p %s/tokens && printf 'directories.tokendir = %s/tokens\\nobjectstore.backend = "
       "file\\nlog.level = ERROR\\n' > %s/softhsm2.conf && (umask 077; echo 4242 > %s/pin) && "
       "SOFTHSM2_CONF=%s/softhsm2.conf softhsm2-util --init-token --free --label plugin "
       "--so-pin 1234 --pin 4242 >/dev/null",
       dir, dir, dir, dir, dir);
    char conf[128];
    snprintf(conf, sizeof conf, "%s/softhsm2.conf", dir);
    setenv("SOFTHSM2_CONF", conf, 1);
    setenv("DCMSEAL_RETRY_MAX", "0", 1);
    unsetenv("DCMSEAL_TOKEN");
    unsetenv("DCMSEAL_KEY");
    snprintf(uri, sizeof uri,
             "pkcs11:token=plugin?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:%s/pin",
             dir);
    dcmseal_token_t *tok = NULL;
    dcmseal_session_t *s = NULL;
    dcmseal_kek_info info;
    CHECK(dcmseal_token_open(&tok, uri, NULL) == DCMSEAL_OK &&
              dcmseal_session_open(&s, tok, NULL) == DCMSEAL_OK &&
              dcmseal_kek_create(s, &info, "kek", 2048, NULL) == DCMSEAL_OK, "a key");
    dcmseal_session_free(s);
    dcmseal_token_free(tok);

    test_bad_configurations();
    set_config("{" PATHS ", \"Dcmseal\": {\"Token\": \"@U\", \"Key\": \"kek\", \"Sessions\": 3, "
               "\"AllowCoreDumps\": true}}");
    log_text[0] = '\0';
    CHECK(OrthancPluginInitialize(&ctx) == 0, "initialize: %s", log_text);
    CHECK(s_create != NULL && s_read != NULL && s_range != NULL && s_remove != NULL,
          "the storage area is registered, with range reads");
    CHECK(logged("sealed with key 'kek' v1 on token 'plugin'"), "the start is logged");
    if (s_create != NULL) {
        test_round_trips(argv[1]);
        test_hostile();
        test_threads();
        test_status();
    }
    OrthancPluginFinalize();
    sh("rm -rf %s", dir);
    return check_done("test_orthanc_plugin");
}
