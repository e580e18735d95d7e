/* The "Dcmseal" section of Orthanc's configuration (docs/ORTHANC.md lists
 * every option). Parsed with jansson: Orthanc hands plugins its whole
 * configuration as one JSON document. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "plugin.h"

#define SECTION "Dcmseal"

typedef struct int_option {
    const char *name;
    long long min, max, dflt;
} int_option;

static const int_option SESSIONS = {"Sessions", 1, 64, 4};
static const int_option CACHE_SIZE = {"DekCacheSize", 0, DCMSEAL_DEK_CACHE_MAX, 1024};
static const int_option CACHE_AGE = {"DekCacheMaxAge", 0, 86400, 60};
static const int_option KEY_REFRESH = {"KeyRefresh", 1, 3600, 10};

static const char *const KNOWN[] = {
    "Token", "Key", "Sessions", "DekCacheSize", "DekCacheMaxAge", "KeyRefresh",
    "ServePlainFiles", "AllowCoreDumps",
};

static dcmseal_status get_int(long long *out, const json_t *sec, const int_option *o,
                              dcmseal_error *err)
{
    const json_t *v = sec != NULL ? json_object_get(sec, o->name) : NULL;
    *out = o->dflt;
    if (v == NULL)
        return DCMSEAL_OK;
    if (!json_is_integer(v) || json_integer_value(v) < o->min || json_integer_value(v) > o->max)
        return dcmseal_fail(err, DCMSEAL_E_USAGE,
                            "configuration: " SECTION ".%s must be a whole number from %lld "
                            "to %lld",
                            o->name, o->min, o->max);
    *out = json_integer_value(v);
    return DCMSEAL_OK;
}

static dcmseal_status get_bool(int *out, const json_t *sec, const char *name,
                               dcmseal_error *err)
{
    const json_t *v = sec != NULL ? json_object_get(sec, name) : NULL;
    *out = 0;
    if (v == NULL)
        return DCMSEAL_OK;
    if (!json_is_boolean(v))
        return dcmseal_fail(err, DCMSEAL_E_USAGE,
                            "configuration: " SECTION ".%s must be true or false", name);
    *out = json_is_true(v);
    return DCMSEAL_OK;
}

/* The string |name| of |obj|, else the environment variable |env| (may be
 * NULL), else NULL; a copy in |*out|. */
static dcmseal_status get_string(char **out, const json_t *obj, const char *name,
                                 const char *env, const char *where, dcmseal_error *err)
{
    const json_t *v = obj != NULL ? json_object_get(obj, name) : NULL;
    const char *s = NULL;
    *out = NULL;
    if (v != NULL && (!json_is_string(v) || json_string_value(v)[0] == '\0'))
        return dcmseal_fail(err, DCMSEAL_E_USAGE,
                            "configuration: %s%s must be a non-empty string", where, name);
    s = v != NULL ? json_string_value(v) : env != NULL ? getenv(env) : NULL;
    if (s == NULL || s[0] == '\0')
        return DCMSEAL_OK;
    if ((*out = OPENSSL_strdup(s)) == NULL)
        return dcmseal_fail(err, DCMSEAL_E_INTERNAL, "out of memory");
    return DCMSEAL_OK;
}

/* |path| made absolute against |base|, with "." and ".." components and
 * repeated slashes folded away (lexically: the folders need not exist yet). */
static char *absolute(const char *path, const char *base)
{
    size_t cap = strlen(path) + strlen(base) + 3;
    char *joined = OPENSSL_zalloc(cap), *out = OPENSSL_zalloc(cap);
    char *save = NULL;
    size_t n = 0;
    if (joined == NULL || out == NULL) {
        OPENSSL_free(joined);
        OPENSSL_free(out);
        return NULL;
    }
    snprintf(joined, cap, "%s/%s", path[0] == '/' ? "" : base, path);
    for (char *part = strtok_r(joined, "/", &save); part != NULL;
         part = strtok_r(NULL, "/", &save)) {
        if (strcmp(part, ".") == 0)
            continue;
        if (strcmp(part, "..") == 0) {
            while (n > 0 && out[n - 1] != '/')
                n--;
            if (n > 0)
                n--;
            out[n] = '\0';
            continue;
        }
        n += (size_t)snprintf(out + n, cap - n, "/%s", part);
    }
    if (n == 0)
        strcpy(out, "/");
    OPENSSL_free(joined);
    return out;
}

/* Whether |inner| is |outer| or below it; symbolic links are resolved for
 * the folders that exist. */
static int inside(const char *inner, const char *outer)
{
    char a[PATH_MAX], b[PATH_MAX];
    const char *x = realpath(inner, a) != NULL ? a : inner;
    const char *y = realpath(outer, b) != NULL ? b : outer;
    size_t n = strlen(y);
    if (strcmp(y, "/") == 0)
        return 1;
    return strncmp(x, y, n) == 0 && (x[n] == '\0' || x[n] == '/');
}

dcmseal_status config_parse(plugin_config *c, const char *text, const char *base_dir,
                            dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    json_error_t jerr;
    json_t *root = NULL;
    const json_t *sec;
    char *storage = NULL, *index = NULL;
    long long v;
    memset(c, 0, sizeof *c);

    root = json_loads(text, 0, &jerr);
    DCMSEAL_ENSURE(json_is_object(root), err, DCMSEAL_E_USAGE,
                   "configuration: not a JSON object (%s)", jerr.text);
    sec = json_object_get(root, SECTION);
    DCMSEAL_ENSURE(sec == NULL || json_is_object(sec), err, DCMSEAL_E_USAGE,
                   "configuration: " SECTION " must be an object");
    if (sec != NULL) {
        const char *name;
        const json_t *value;
        json_object_foreach((json_t *)sec, name, value) {
            size_t i = 0;
            while (i < sizeof KNOWN / sizeof KNOWN[0] && strcmp(KNOWN[i], name) != 0)
                i++;
            DCMSEAL_ENSURE(i < sizeof KNOWN / sizeof KNOWN[0], err, DCMSEAL_E_USAGE,
                           "configuration: unknown option " SECTION ".%s", name);
        }
    }
    DCMSEAL_GUARD(get_string(&c->token, sec, "Token", "DCMSEAL_TOKEN", SECTION ".", err));
    DCMSEAL_ENSURE(c->token != NULL, err, DCMSEAL_E_USAGE,
                   "configuration: no token: set " SECTION ".Token to a PKCS#11 URI, or "
                   "DCMSEAL_TOKEN in Orthanc's environment");
    DCMSEAL_GUARD(get_string(&c->key, sec, "Key", "DCMSEAL_KEY", SECTION ".", err));
    DCMSEAL_GUARD(get_int(&v, sec, &SESSIONS, err));
    c->sessions = (unsigned)v;
    DCMSEAL_GUARD(get_int(&v, sec, &CACHE_SIZE, err));
    c->cache_entries = (size_t)v;
    DCMSEAL_GUARD(get_int(&v, sec, &CACHE_AGE, err));
    c->cache_max_age_s = (unsigned)v;
    DCMSEAL_GUARD(get_int(&v, sec, &KEY_REFRESH, err));
    c->key_refresh_s = (unsigned)v;
    DCMSEAL_GUARD(get_bool(&c->serve_plain, sec, "ServePlainFiles", err));
    DCMSEAL_GUARD(get_bool(&c->allow_core_dumps, sec, "AllowCoreDumps", err));

    /* Orthanc's own defaults: "OrthancStorage", and the index beside the
     * files. */
    DCMSEAL_GUARD(get_string(&storage, root, "StorageDirectory", NULL, "", err));
    DCMSEAL_GUARD(get_string(&index, root, "IndexDirectory", NULL, "", err));
    c->storage_dir = absolute(storage != NULL ? storage : "OrthancStorage", base_dir);
    c->index_dir = index != NULL ? absolute(index, base_dir)
                                 : c->storage_dir ? OPENSSL_strdup(c->storage_dir) : NULL;
    DCMSEAL_ENSURE(c->storage_dir != NULL && c->index_dir != NULL, err, DCMSEAL_E_INTERNAL,
                   "out of memory");
    /* Every file under the storage directory is an object, so that verify,
     * rewrap and decrypt -r work on it; "encrypt --in-place -r" of a folder
     * holding Orthanc's live SQLite index would destroy the index. */
    DCMSEAL_ENSURE(!inside(c->index_dir, c->storage_dir), err, DCMSEAL_E_USAGE,
                   "configuration: the index (IndexDirectory \"%s\") is inside "
                   "StorageDirectory \"%s\": set IndexDirectory to a folder outside it "
                   "(docs/ORTHANC.md, \"Storage and index\")",
                   c->index_dir, c->storage_dir);
out:
    OPENSSL_free(storage);
    OPENSSL_free(index);
    json_decref(root);
    if (st != DCMSEAL_OK)
        config_free(c);
    return st;
}

void config_free(plugin_config *c)
{
    OPENSSL_free(c->token);
    OPENSSL_free(c->key);
    OPENSSL_free(c->storage_dir);
    OPENSSL_free(c->index_dir);
    memset(c, 0, sizeof *c);
}
