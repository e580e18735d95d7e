/* Module loading, token selection, PIN, login and self-healing sessions. */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/pin.h>
#include <p11-kit/uri.h>

#include "internal.h"

dcmseal_status p11_fail(dcmseal_error *err, dcmseal_status st, const dcmseal_token_t *tok,
                        CK_RV rv, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    /* The one login failure an operator can prevent: say how. */
    const char *hint = rv == CKR_USER_NOT_LOGGED_IN && tok->pin_from_env
                           ? " (the token wanted a new login; the PIN came from the "
                             "environment, which dcmseal clears once read: pin-source=file: "
                             "lets it log in again)"
                           : "";
    return dcmseal_fail(err, st, "%s on token '%s' failed: %s%s", what, tok->label,
                        ckr_name(rv), hint);
}

const char *dcmseal_oaep_name(dcmseal_oaep oaep)
{
    switch (oaep) {
    case DCMSEAL_OAEP_SHA1: return "sha1";
    case DCMSEAL_OAEP_SHA256: return "sha256";
    case DCMSEAL_OAEP_AUTO: return "auto";
    }
    return "auto";
}

/* ---- PIN ---------------------------------------------------------------- */

/* Why the last pin-source of this thread could not be read, for the error
 * message: p11-kit's callbacks can only say NULL. */
static __thread char pin_why[200];

/* Removes |name| from the environment and overwrites its "NAME=value"
 * string where it lies: unsetenv alone would leave the value in memory and
 * in /proc/PID/environ, which shows the block the process started with. */
static void env_scrub(const char *name)
{
    extern char **environ;
    char *hit[8];
    size_t n = strlen(name), nhit = 0;
    for (char **e = environ; e != NULL && *e != NULL && nhit < 8; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            hit[nhit++] = *e;
    unsetenv(name);
    for (size_t i = 0; i < nhit; i++)
        OPENSSL_cleanse(hit[i], strlen(hit[i]));
}

/* A pin-source file, as ssh treats private keys: it must belong to the user
 * that runs dcmseal and be closed to everyone else, or another account could
 * read the PIN or put another one there. Checked on the open file, so that
 * the file read is the file checked. */
static P11KitPin *pin_from_file(const char *path)
{
    unsigned char buf[DCMSEAL_PIN_MAX + 2];
    size_t len = 0;
    ssize_t n = 1;
    struct stat sb;
    P11KitPin *pin = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(pin_why, sizeof pin_why, ": %s", strerror(errno));
        return NULL;
    }
    if (fstat(fd, &sb) != 0) {
        snprintf(pin_why, sizeof pin_why, ": %s", strerror(errno));
    } else if (sb.st_uid != geteuid()) {
        snprintf(pin_why, sizeof pin_why,
                 ": it is owned by uid %u, not by uid %u that runs dcmseal; chown it",
                 (unsigned)sb.st_uid, (unsigned)geteuid());
    } else if (sb.st_mode & (S_IRWXG | S_IRWXO)) {
        snprintf(pin_why, sizeof pin_why,
                 ": it is accessible to group or others (mode %04o); chmod 600 it",
                 (unsigned)(sb.st_mode & 07777));
    } else {
        while (len < sizeof buf && (n = read(fd, buf + len, sizeof buf - len)) != 0) {
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                break;
            len += (size_t)n;
        }
        if (n < 0)
            snprintf(pin_why, sizeof pin_why, ": %s", strerror(errno));
        else
            pin = p11_kit_pin_new(buf, len);
    }
    OPENSSL_cleanse(buf, sizeof buf);
    close(fd);
    return pin;
}

/* p11-kit 0.24's file callback open()s the pin-source verbatim, so an RFC 7512
 * "file:" URI would name a relative file called "file:...". */
static P11KitPin *pin_callback(const char *source, P11KitUri *uri, const char *desc,
                               P11KitPinFlags flags, void *data)
{
    (void)uri, (void)desc, (void)flags, (void)data;
    pin_why[0] = '\0';
    if (strncmp(source, "env:", 4) == 0) {
        const char *v = getenv(source + 4);
        P11KitPin *pin = v != NULL ? p11_kit_pin_new_for_string(v) : NULL;
        if (v == NULL)
            snprintf(pin_why, sizeof pin_why, ": %s is not set", source + 4);
        env_scrub(source + 4);
        return pin;
    }
    if (strncmp(source, "file://", 7) == 0 && source[7] == '/')
        source += 7;
    else if (strncmp(source, "file:", 5) == 0)
        source += 5;
    return pin_from_file(source);
}

static pthread_once_t pin_once = PTHREAD_ONCE_INIT;

static void pin_register(void)
{
    p11_kit_pin_register_callback(P11_KIT_PIN_FALLBACK, pin_callback, NULL, NULL);
}

/* Reads the PIN from |tok->pin_source|, or from DCMSEAL_PIN when there is
 * none, into a secure-heap buffer (*pin, free with pin_free). */
static dcmseal_status pin_read(dcmseal_token_t *tok, unsigned char **pin, size_t *pin_len,
                               dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    P11KitPin *p = NULL;
    const unsigned char *v;
    size_t len = 0, n;
    *pin = NULL;
    if (tok->pin_source != NULL) {
        pthread_once(&pin_once, pin_register);
        p = p11_kit_pin_request(tok->pin_source, NULL, tok->label, P11_KIT_PIN_FLAGS_USER_LOGIN);
        DCMSEAL_ENSURE(p != NULL, err, DCMSEAL_E_TOKEN,
                       "cannot read the PIN for token '%s' from pin-source '%s'%s", tok->label,
                       tok->pin_source, pin_why);
        v = p11_kit_pin_get_value(p, &len);
    } else {
        v = (const unsigned char *)getenv("DCMSEAL_PIN");
        DCMSEAL_ENSURE(v != NULL, err, DCMSEAL_E_TOKEN,
                       "no PIN: set pin-source in the URI or DCMSEAL_PIN");
        len = strlen((const char *)v);
    }
    n = len;
    if (n > 0 && v[n - 1] == '\n')
        n -= 1 + (n > 1 && v[n - 2] == '\r');
    DCMSEAL_ENSURE(n < DCMSEAL_PIN_MAX, err, DCMSEAL_E_TOKEN, "PIN for token '%s' is too long",
                   tok->label);
    *pin = OPENSSL_secure_malloc(n + 1);
    DCMSEAL_ENSURE(*pin != NULL, err, DCMSEAL_E_INTERNAL, "out of secure memory");
    memcpy(*pin, v, n);
    *pin_len = n;
out:
    if (p != NULL) {
        /* p11-kit frees its copies without wiping them. */
        OPENSSL_cleanse((void *)v, len);
        p11_kit_pin_unref(p);
    } else if (tok->pin_source == NULL) {
        env_scrub("DCMSEAL_PIN");
    }
    return st;
}

static void pin_free(unsigned char *pin, size_t len)
{
    OPENSSL_secure_clear_free(pin, len + 1);
}

/* ---- login and sessions ------------------------------------------------- */

/* Logs the user in unless the token already is (login is per application:
 * every session after the first finds it done). The PIN is the one
 * dcmseal_token_open holds while it runs; later, the pin-source file is
 * read again for the new login and the PIN wiped right after it. Without
 * a PIN the token is never asked: a failed C_Login counts against the
 * token's PIN retry counter. */
static CK_RV token_login(dcmseal_token_t *tok, CK_SESSION_HANDLE h)
{
    CK_SESSION_INFO si;
    unsigned char *pin = NULL;
    size_t len = 0;
    CK_RV rv;
    pthread_mutex_lock(&tok->lock);
    rv = tok->mod->C_GetSessionInfo(h, &si);
    if (rv == CKR_OK && si.state != CKS_RO_USER_FUNCTIONS && si.state != CKS_RW_USER_FUNCTIONS) {
        if (tok->pin != NULL)
            rv = tok->mod->C_Login(h, CKU_USER, tok->pin, tok->pin_len);
        else if (tok->pin_from_env || pin_read(tok, &pin, &len, NULL) != DCMSEAL_OK)
            rv = CKR_USER_NOT_LOGGED_IN;
        else
            rv = tok->mod->C_Login(h, CKU_USER, pin, len);
    }
    pin_free(pin, len);
    pthread_mutex_unlock(&tok->lock);
    return rv == CKR_USER_ALREADY_LOGGED_IN ? CKR_OK : rv;
}

static CK_RV session_start(dcmseal_token_t *tok, CK_SESSION_HANDLE *h)
{
    CK_RV rv = tok->mod->C_OpenSession(tok->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
                                       NULL, h);
    if (rv == CKR_OK && (rv = token_login(tok, *h)) != CKR_OK)
        tok->mod->C_CloseSession(*h);
    if (rv != CKR_OK)
        *h = CK_INVALID_HANDLE;
    return rv;
}

/* CKR_OPERATION_ACTIVE: a failure left an operation open on the session;
 * a fresh session is the one portable way to end it. */
static int session_lost(CK_RV rv)
{
    return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
           rv == CKR_USER_NOT_LOGGED_IN || rv == CKR_DEVICE_REMOVED ||
           rv == CKR_OPERATION_ACTIVE;
}

/* Failures that a token recovers from on its own: a busy or briefly absent
 * device, a dropped session or login (session_lost is a part of them). */
static int transient(CK_RV rv)
{
    return ckr_class(rv) == P11_TRANSIENT;
}

/* Transient failures are retried up to DCMSEAL_RETRY_MAX times (0 to 20,
 * default 5, read when the token is opened), sleeping 50 ms before the first
 * retry and doubling up to 800 ms: the default schedule waits about 1.5 s in
 * all, long enough for a USB token to be reseated or an HSM to fail over,
 * short enough that a batch reports a dead token promptly. */
#define RETRY_DEFAULT 5
#define RETRY_LIMIT 20

static unsigned retry_max_from_env(void)
{
    const char *v = getenv("DCMSEAL_RETRY_MAX");
    char *end;
    long n;
    if (v == NULL || *v == '\0')
        return RETRY_DEFAULT;
    n = strtol(v, &end, 10);
    return *end == '\0' && n >= 0 && n <= RETRY_LIMIT ? (unsigned)n : RETRY_DEFAULT;
}

static void backoff(unsigned retry)
{
    unsigned ms = 50u << (retry < 4 ? retry : 4);
    struct timespec ts = {0, (long)ms * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

void cache_clear(dcmseal_session_t *s)
{
    for (size_t i = 0; i < KEK_CACHE_SIZE; i++)
        s->cache[i].valid = 0;
    for (size_t i = 0; i < HMAC_CACHE_SIZE; i++)
        s->hcache[i].valid = 0;
    s->len_probe = CK_INVALID_HANDLE;
}

static int token_alive(dcmseal_token_t *tok)
{
    CK_TOKEN_INFO ti;
    return tok->mod->C_GetTokenInfo(tok->slot, &ti) == CKR_OK;
}

/* A logout behind our back does not invalidate the session; it hides the
 * private objects, so an empty search may mean "log in again". SoftHSM
 * whose token directory went away answers searches with nothing at all
 * (and C_GetTokenInfo with CKR_GENERAL_ERROR). */
CK_RV session_check_login(dcmseal_session_t *s)
{
    CK_SESSION_INFO info;
    CK_RV rv = s->tok->mod->C_GetSessionInfo(s->h, &info);
    if (rv == CKR_OK && info.state != CKS_RO_USER_FUNCTIONS &&
        info.state != CKS_RW_USER_FUNCTIONS)
        rv = CKR_USER_NOT_LOGGED_IN;
    if (rv == CKR_OK && !token_alive(s->tok))
        rv = CKR_TOKEN_NOT_PRESENT;
    return rv;
}

void p11_copy_padded(char *dst, const unsigned char *src, size_t len)
{
    while (len > 0 && src[len - 1] == ' ')
        len--;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* The slot that now holds our token: slot IDs need not survive a restart. */
static int token_find_slot(dcmseal_token_t *tok)
{
    CK_SLOT_ID *slots = NULL;
    CK_ULONG n = 0;
    int found = 0;
    if (tok->mod->C_GetSlotList(CK_TRUE, NULL, &n) != CKR_OK || n == 0 ||
        (slots = calloc(n, sizeof *slots)) == NULL ||
        tok->mod->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
        n = 0;
    for (CK_ULONG i = 0; i < n && !found; i++) {
        CK_TOKEN_INFO ti;
        char label[33];
        if (tok->mod->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
            continue;
        p11_copy_padded(label, ti.label, sizeof ti.label);
        if (strcmp(label, tok->label) == 0 &&
            memcmp(ti.serialNumber, tok->serial, sizeof tok->serial) == 0) {
            tok->slot = slots[i];
            found = 1;
        }
    }
    free(slots);
    return found;
}

/* Finalizes and initializes the module again: SoftHSM, for one, reads its
 * token files only at C_Initialize. */
static CK_RV module_reload(dcmseal_token_t *tok)
{
    p11_kit_module_finalize(tok->mod);
    CK_RV rv = p11_kit_module_initialize(tok->mod);
    return rv == CKR_OK && !token_find_slot(tok) ? CKR_TOKEN_NOT_PRESENT : rv;
}

/* Called holding |gate| shared; returns holding it shared. Restarts the
 * module unless another thread did since |seen|. */
static CK_RV token_restart(dcmseal_token_t *tok, unsigned seen)
{
    CK_RV rv = CKR_OK;
    pthread_rwlock_unlock(&tok->gate);
    pthread_rwlock_wrlock(&tok->gate);
    if (tok->gen == seen && !token_alive(tok)) {
        tok->gen++;
        tok->login_session = CK_INVALID_HANDLE;
        rv = module_reload(tok);
        if (rv == CKR_OK)
            rv = session_start(tok, &tok->login_session);
    }
    pthread_rwlock_unlock(&tok->gate);
    pthread_rwlock_rdlock(&tok->gate);
    /* Whatever went wrong, the token is what is missing. */
    return rv == CKR_OK || transient(rv) ? rv : CKR_TOKEN_NOT_PRESENT;
}

/* A session's calls into the module: |gate| shared and, for a module that
 * needs it, |one_caller| too, which comes first, so that a thread waiting
 * for it holds nothing that a restart (token_restart) waits for. */
static void module_enter(dcmseal_token_t *tok)
{
    if (tok->serialized)
        pthread_mutex_lock(&tok->one_caller);
    pthread_rwlock_rdlock(&tok->gate);
}

static void module_leave(dcmseal_token_t *tok)
{
    pthread_rwlock_unlock(&tok->gate);
    if (tok->serialized)
        pthread_mutex_unlock(&tok->one_caller);
}

/* Stale handles first: a logout elsewhere shows up as an invalid key handle,
 * then as a search that needs the login back. A dropped session is reopened
 * at once even when retries are off (a token may close sessions at will);
 * every other retry waits first. */
CK_RV session_run(dcmseal_session_t *s, session_op op, void *arg)
{
    dcmseal_token_t *tok = s->tok;
    CK_RV rv;
    module_enter(tok);
    rv = s->gen == tok->gen ? op(s, arg) : CKR_SESSION_HANDLE_INVALID;
    if (rv == CKR_OBJECT_HANDLE_INVALID || rv == CKR_KEY_HANDLE_INVALID) {
        cache_clear(s);
        rv = op(s, arg);
    }
    for (unsigned i = 0; transient(rv) && (i < tok->retry_max || (i == 0 && session_lost(rv)));
         i++) {
        unsigned gen = tok->gen;
        if (i > 0 || !session_lost(rv))
            backoff(i);
        /* Handles may not survive a token that went away and came back. */
        cache_clear(s);
        if (s->h != CK_INVALID_HANDLE && s->gen == gen)
            tok->mod->C_CloseSession(s->h);
        s->h = CK_INVALID_HANDLE;
        if (!token_alive(tok) && (rv = token_restart(tok, gen)) != CKR_OK)
            continue;
        s->gen = tok->gen;
        if ((rv = session_start(tok, &s->h)) == CKR_OK)
            rv = op(s, arg);
    }
    module_leave(tok);
    return rv;
}

/* ---- token selection ---------------------------------------------------- */

/* Finds the first slot of |mod| whose module, slot and token match |uri|. */
static int module_find_slot(CK_FUNCTION_LIST *mod, P11KitUri *uri, CK_SLOT_ID *slot,
                            char label[33], unsigned char serial[16])
{
    const char *want_name = p11_kit_uri_get_module_name(uri);
    CK_SLOT_ID *slots = NULL;
    CK_ULONG n = 0;
    CK_INFO info;
    int found = 0;
    if (want_name != NULL) {
        char *name = p11_kit_module_get_name(mod);
        int same = name != NULL && strcmp(name, want_name) == 0;
        free(name);
        if (!same)
            goto out;
    }
    if (mod->C_GetInfo(&info) != CKR_OK || !p11_kit_uri_match_module_info(uri, &info) ||
        mod->C_GetSlotList(CK_TRUE, NULL, &n) != CKR_OK || n == 0 ||
        (slots = calloc(n, sizeof *slots)) == NULL ||
        mod->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
        goto out;
    for (CK_ULONG i = 0; i < n && !found; i++) {
        CK_SLOT_INFO si;
        CK_TOKEN_INFO ti;
        if (mod->C_GetSlotInfo(slots[i], &si) == CKR_OK &&
            p11_kit_uri_match_slot_info(uri, &si) &&
            mod->C_GetTokenInfo(slots[i], &ti) == CKR_OK &&
            p11_kit_uri_match_token_info(uri, &ti)) {
            *slot = slots[i];
            p11_copy_padded(label, ti.label, sizeof ti.label);
            memcpy(serial, ti.serialNumber, sizeof ti.serialNumber);
            found = 1;
        }
    }
out:
    free(slots);
    return found;
}

static const char *or_unknown(const char *msg)
{
    return msg != NULL ? msg : "unknown error";
}

/* Whether |path| is p11-kit's proxy module, i.e. the p11-kit library this
 * process already runs (Debian installs p11-kit-proxy.so as a link to it).
 * p11-kit refuses to load its own proxy as a module ("refusing to load the
 * p11-kit-proxy.so module as a registered module"): inside a p11-kit
 * process the proxy's slots are those of the registered modules, so a URI
 * naming it is served from those, exactly as a URI without module-path. */
static int is_p11kit_proxy(const char *path)
{
    Dl_info self;
    struct stat a, b;
    return dladdr((void *)p11_kit_module_load, &self) != 0 && self.dli_fname != NULL &&
           stat(path, &a) == 0 && stat(self.dli_fname, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

/* openCryptoki before 3.14 ("Rework on btree and object locking") has no
 * locks on its objects. A private token object that another process has
 * changed (`key disable`, then `key enable`) is reloaded from disk at every
 * use from then on, which frees the attributes that another thread's
 * operation on the same key is reading: 3.8.1, Debian 12's, crashes inside
 * libpkcs11_sw.so a few times in a hundred two-worker runs. Such a module
 * is called by one thread at a time. */
static int module_serialized(CK_FUNCTION_LIST *mod)
{
    CK_INFO info;
    return mod->C_GetInfo(&info) == CKR_OK && memcmp(info.manufacturerID, "IBM ", 4) == 0 &&
           memcmp(info.libraryDescription, "Meta PKCS11 LIBRARY", 19) == 0 &&
           (info.libraryVersion.major < 3 ||
            (info.libraryVersion.major == 3 && info.libraryVersion.minor < 14));
}

dcmseal_status p11_modules_load(CK_FUNCTION_LIST ***out, const char *path, dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    CK_FUNCTION_LIST **mods = NULL;
    CK_RV rv;
    *out = NULL;
    if (path != NULL && !is_p11kit_proxy(path)) {
        mods = calloc(2, sizeof *mods);
        DCMSEAL_ENSURE(mods != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
        mods[0] = p11_kit_module_load(path, 0);
        DCMSEAL_ENSURE(mods[0] != NULL, err, DCMSEAL_E_TOKEN,
                       "cannot load PKCS#11 module '%s': %s", path,
                       or_unknown(p11_kit_message()));
        if ((rv = p11_kit_module_initialize(mods[0])) != CKR_OK) {
            p11_kit_module_release(mods[0]);
            mods[0] = NULL;
            st = dcmseal_fail(err, DCMSEAL_E_TOKEN, "cannot initialize PKCS#11 module '%s': %s",
                              path, ckr_name(rv));
            goto out;
        }
    } else {
        mods = p11_kit_modules_load_and_initialize(0);
        DCMSEAL_ENSURE(mods != NULL, err, DCMSEAL_E_TOKEN,
                       "cannot load the registered PKCS#11 modules: %s",
                       or_unknown(p11_kit_message()));
    }
    *out = mods;
    mods = NULL;
out:
    free(mods);
    return st;
}

void p11_modules_release(CK_FUNCTION_LIST **mods, const CK_FUNCTION_LIST *keep)
{
    for (size_t i = 0; mods != NULL && mods[i] != NULL; i++) {
        if (mods[i] != keep) {
            p11_kit_module_finalize(mods[i]);
            p11_kit_module_release(mods[i]);
        }
    }
    free(mods);
}

/* Loads the candidate modules, keeps the first with a matching token and
 * releases the others. |*absent|: the modules loaded, but no token matched;
 * the error then names the tokens they do have. */
static dcmseal_status token_select(dcmseal_token_t *tok, P11KitUri *uri, int *absent,
                                   dcmseal_error *err)
{
    const char *path = p11_kit_uri_get_module_path(uri);
    CK_FUNCTION_LIST **mods = NULL;
    char want[33], have[256] = "";
    size_t have_len = 0;
    p11_copy_padded(want, p11_kit_uri_get_token_info(uri)->label, 32);
    dcmseal_status st = p11_modules_load(&mods, path, err);
    if (st != DCMSEAL_OK)
        return st;
    for (size_t i = 0; mods[i] != NULL && tok->mod == NULL; i++)
        if (module_find_slot(mods[i], uri, &tok->slot, tok->label, tok->serial))
            tok->mod = mods[i];
    for (size_t i = 0; tok->mod == NULL && mods[i] != NULL; i++)
        p11_token_labels(mods[i], have, sizeof have, &have_len);
    p11_modules_release(mods, tok->mod);
    *absent = tok->mod == NULL;
    if (tok->mod == NULL)
        return dcmseal_fail(err, DCMSEAL_E_TOKEN, "no token labelled '%s' found %s%s; %s%s",
                            want[0] ? want : "(any)", path ? "in module " : "in the registered "
                            "modules", path ? path : "",
                            have_len ? "tokens there: " : "no initialized token there (see "
                            "dcmseal token list --help)", have);
    return DCMSEAL_OK;
}

/* ---- public API --------------------------------------------------------- */

dcmseal_status dcmseal_token_open(dcmseal_token_t **out, const char *uri,
                                  dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    dcmseal_token_t *tok = NULL;
    P11KitUri *u = NULL;
    CK_ATTRIBUTE *object;
    CK_RV rv;
    int r;
    DCMSEAL_ENSURE(out != NULL && uri != NULL, err, DCMSEAL_E_USAGE, "token: missing argument");
    *out = NULL;
    tok = OPENSSL_zalloc(sizeof *tok);
    DCMSEAL_ENSURE(tok != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    pthread_mutex_init(&tok->lock, NULL);
    pthread_mutex_init(&tok->one_caller, NULL);
    pthread_rwlock_init(&tok->gate, NULL);
    tok->login_session = CK_INVALID_HANDLE;
    tok->retry_max = retry_max_from_env();
    u = p11_kit_uri_new();
    DCMSEAL_ENSURE(u != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    r = p11_kit_uri_parse(uri, P11_KIT_URI_FOR_ANY, u);
    DCMSEAL_ENSURE(r == P11_KIT_URI_OK, err, DCMSEAL_E_USAGE, "bad token URI: %s",
                   p11_kit_uri_message(r));
    /* URIs end up in argv, shell history and process listings. */
    DCMSEAL_ENSURE(p11_kit_uri_get_pin_value(u) == NULL, err, DCMSEAL_E_USAGE,
                   "token URI carries pin-value: use pin-source=file:PATH or "
                   "pin-source=env:VAR in the URI, or set DCMSEAL_PIN");
    /* A token may be missing for a moment: an HSM failing over, a USB token
     * being reseated, or SoftHSM, which rewrites its token file at every
     * login, read by a second process mid-write. */
    for (unsigned i = 0;; i++) {
        int absent = 0;
        st = token_select(tok, u, &absent, err);
        if (st == DCMSEAL_OK || !absent || i >= tok->retry_max)
            break;
        backoff(i);
    }
    DCMSEAL_GUARD(st);
    tok->serialized = module_serialized(tok->mod);
    if ((object = p11_kit_uri_get_attribute(u, CKA_LABEL)) != NULL) {
        tok->object = OPENSSL_strndup(object->pValue, object->ulValueLen);
        DCMSEAL_ENSURE(tok->object != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    }
    if (p11_kit_uri_get_pin_source(u) != NULL) {
        tok->pin_source = OPENSSL_strdup(p11_kit_uri_get_pin_source(u));
        DCMSEAL_ENSURE(tok->pin_source != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
        tok->pin_from_env = strncmp(tok->pin_source, "env:", 4) == 0;
    } else {
        tok->pin_from_env = 1;
    }
    DCMSEAL_GUARD(pin_read(tok, &tok->pin, &tok->pin_len, err));
    /* Logging in here reports a wrong PIN at open rather than mid-batch.
     * SoftHSM 2.6.1 answers CKR_USER_PIN_NOT_INITIALIZED or
     * CKR_GENERAL_ERROR when it read its token file while another process
     * rewrote it (every login does): those are retried, after a reload, like
     * the transient failures. A wrong PIN never is, to spare the retry
     * counter of a real token. */
    for (unsigned i = 0;; i++) {
        rv = session_start(tok, &tok->login_session);
        if (rv == CKR_OK || i >= tok->retry_max ||
            !(transient(rv) || rv == CKR_USER_PIN_NOT_INITIALIZED || rv == CKR_GENERAL_ERROR))
            break;
        backoff(i);
        module_reload(tok);
    }
    if (rv != CKR_OK) {
        st = p11_fail(err, DCMSEAL_E_TOKEN, tok, rv, "login%s",
                      rv == CKR_PIN_INCORRECT ? " (wrong PIN)" : "");
        goto out;
    }
    *out = tok;
out:
    /* Logged in, or not: either way the PIN has served. */
    if (tok != NULL) {
        pin_free(tok->pin, tok->pin_len);
        tok->pin = NULL;
    }
    if (st != DCMSEAL_OK)
        dcmseal_token_free(tok);
    p11_kit_uri_free(u);
    return st;
}

void dcmseal_token_free(dcmseal_token_t *tok)
{
    if (tok == NULL)
        return;
    if (tok->login_session != CK_INVALID_HANDLE) {
        tok->mod->C_Logout(tok->login_session);
        tok->mod->C_CloseSession(tok->login_session);
    }
    if (tok->mod != NULL) {
        p11_kit_module_finalize(tok->mod);
        p11_kit_module_release(tok->mod);
    }
    pin_free(tok->pin, tok->pin_len);
    OPENSSL_free(tok->pin_source);
    OPENSSL_free(tok->object);
    pthread_mutex_destroy(&tok->lock);
    pthread_mutex_destroy(&tok->one_caller);
    pthread_rwlock_destroy(&tok->gate);
    OPENSSL_free(tok);
}

const char *dcmseal_token_get0_label(const dcmseal_token_t *tok)
{
    return tok->label;
}

const char *dcmseal_token_get0_object(const dcmseal_token_t *tok)
{
    return tok->object;
}

dcmseal_status dcmseal_session_open(dcmseal_session_t **out, dcmseal_token_t *tok,
                                    dcmseal_error *err)
{
    dcmseal_status st = DCMSEAL_OK;
    dcmseal_session_t *s = NULL;
    CK_RV rv;
    DCMSEAL_ENSURE(out != NULL && tok != NULL, err, DCMSEAL_E_USAGE,
                   "session: missing argument");
    s = OPENSSL_zalloc(sizeof *s);
    DCMSEAL_ENSURE(s != NULL, err, DCMSEAL_E_INTERNAL, "out of memory");
    s->tok = tok;
    s->len_probe = CK_INVALID_HANDLE;
    module_enter(tok);
    s->gen = tok->gen;
    rv = session_start(tok, &s->h);
    module_leave(tok);
    if (rv != CKR_OK) {
        st = p11_fail(err, DCMSEAL_E_TOKEN, tok, rv, "opening a session");
        goto out;
    }
    *out = s;
    s = NULL;
out:
    OPENSSL_free(s);
    return st;
}

const char *dcmseal_session_get0_token_label(const dcmseal_session_t *s)
{
    return s->tok->label;
}

void dcmseal_session_free(dcmseal_session_t *s)
{
    if (s == NULL)
        return;
    module_enter(s->tok);
    if (s->h != CK_INVALID_HANDLE && s->gen == s->tok->gen)
        s->tok->mod->C_CloseSession(s->h);
    module_leave(s->tok);
    OPENSSL_free(s);
}
