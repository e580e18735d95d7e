/* What the files of the Orthanc storage plugin share. Not installed.
 *
 *   config.c  the "Dcmseal" section of Orthanc's configuration
 *   pool.c    the token, a pool of sessions behind one thread-safe key ring,
 *             the primary KEK version, outages logged once
 *   store.c   Orthanc's xx/yy/uuid layout, through directory descriptors
 *   plugin.c  the Orthanc entry points, storage callbacks, status route */
#ifndef DCMSEAL_ORTHANC_PLUGIN_H
#define DCMSEAL_ORTHANC_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include <dcmseal/engine.h>
#include <private/guard.h>

/* ---- plugin.c: Orthanc's log ---------------------------------------------- */

typedef enum { PLUGIN_INFO, PLUGIN_WARNING, PLUGIN_ERROR } log_level;

void plugin_log(log_level level, const char *fmt, ...) DCMSEAL_PRINTF(2, 3);

/* ---- config.c ------------------------------------------------------------- */

typedef struct plugin_config {
    char *token;           /* PKCS#11 URI */
    char *key;             /* KEK name; NULL: the URI's object= */
    char *storage_dir;     /* absolute */
    char *index_dir;       /* absolute */
    unsigned sessions;
    size_t cache_entries;
    unsigned cache_max_age_s;
    unsigned key_refresh_s;
    int serve_plain;
    int allow_core_dumps;
} plugin_config;

/* Reads Orthanc's whole configuration |json| (as OrthancPluginGetConfiguration
 * gives it); relative paths are taken from |base_dir|, as Orthanc does
 * (the folder of its configuration file). The environment supplies
 * DCMSEAL_TOKEN and DCMSEAL_KEY when the section does not. Refuses unknown
 * options (a typo must not silently fall back to a default), values out of
 * range, and an index inside the storage directory. Errors:
 * DCMSEAL_E_USAGE with the reason, DCMSEAL_E_INTERNAL. */
dcmseal_status config_parse(plugin_config *c, const char *json, const char *base_dir,
                            dcmseal_error *err);
void config_free(plugin_config *c);

/* ---- pool.c --------------------------------------------------------------- */

typedef struct pool pool;

/* Opens the token, checks that the KEK exists, and makes the pool: at most
 * |cfg->sessions| sessions, opened as they are needed. Errors: those of
 * dcmseal_token_open and dcmseal_kek_find. */
dcmseal_status pool_new(pool **out, const plugin_config *cfg, dcmseal_error *err);
void pool_free(pool *p);

/* A key ring over the pool, safe to use from any number of threads at once:
 * each wrap or unwrap borrows a session for the token call alone. wrap uses
 * the primary version of the KEK, looked up again at most every
 * |key_refresh_s| seconds (and at once when the token refuses the one in
 * use). Borrowed from |p|. */
const dcmseal_keyring *pool_keyring(pool *p);

typedef struct pool_stats {
    char token[33];
    char key[DCMSEAL_KEK_NAME_MAX + 1];
    uint32_t primary;         /* KEK version new objects use; 0 before the first */
    unsigned sessions_open;
    unsigned sessions_max;
    uint64_t token_calls;     /* wraps and unwraps that reached the token */
    uint64_t waits;           /* callers that waited for a free session */
    int outage;               /* the token is not answering now */
    double outage_seconds;    /* how long, when it is not */
    uint64_t outages;         /* since start */
} pool_stats;

void pool_get_stats(pool *p, pool_stats *out);

/* ---- store.c -------------------------------------------------------------- */

typedef struct store store;

/* Orthanc's attachment identifiers: 36 characters, lowercase hex digits and
 * dashes in 8-4-4-4-12 groups. Anything else never becomes a path. */
int store_uuid_ok(const char *uuid);

/* Opens (creating it, mode 0700, when missing) the storage directory.
 * Errors: DCMSEAL_E_IO. */
dcmseal_status store_open(store **out, const char *root, dcmseal_error *err);
void store_free(store *s);

/* The directory of |uuid| (root/xx/yy), made when missing with |create|.
 * Each component is opened without following symbolic links. |*absent| is
 * set when it does not exist (and |create| is 0). Errors: DCMSEAL_E_IO. */
dcmseal_status store_dir(store *s, int *dirfd, int *absent, const char *uuid, int create,
                         dcmseal_error *err);

/* Opens the file of |uuid| for reading, without following links. |*absent|
 * is set when there is none. Errors: DCMSEAL_E_IO. */
dcmseal_status store_open_file(store *s, int *fd, int *absent, const char *uuid,
                               dcmseal_error *err);

/* Removes the file of |uuid|; its folders stay (see store.c).
 * A file already gone is no error. Errors: DCMSEAL_E_IO. */
dcmseal_status store_remove(store *s, const char *uuid, dcmseal_error *err);

#endif
