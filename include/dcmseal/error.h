/*
 * dcmseal/error.h: status values and the error object shared by every module.
 *
 * Every fallible dcmseal function returns a dcmseal_status and, when it fails,
 * fills a caller-owned dcmseal_error with one line that names the object (file,
 * key, token) and the cause. Messages never contain key material, PINs or
 * patient data. The CLI maps each status to an exit code in one place.
 *
 * This header is self-contained (static inline only) so that the leaf modules
 * (pkcs11, dicomio) can report errors without depending on the engine.
 */
#ifndef DCMSEAL_ERROR_H
#define DCMSEAL_ERROR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* GCC and clang; other compilers build and use dcmseal without the checks
 * (and, for the library, without symbol visibility). */
#if defined(__GNUC__)
#define DCMSEAL_MUST_CHECK __attribute__((warn_unused_result))
#define DCMSEAL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define DCMSEAL_API __attribute__((visibility("default")))
#else
#define DCMSEAL_MUST_CHECK
#define DCMSEAL_PRINTF(f, a)
#define DCMSEAL_API
#endif

typedef enum {
    DCMSEAL_OK = 0,
    DCMSEAL_E_USAGE,      /* caller error: bad argument, bad option, bad URI */
    DCMSEAL_E_FORMAT,     /* not a dcmseal object, unsupported version, bad length */
    DCMSEAL_E_AUTH,       /* authentication failed: tag, commitment, header, slot */
    DCMSEAL_E_NOT_DICOM,  /* input refused because it is not DICOM (strict mode) */
    DCMSEAL_E_KEY,        /* key missing, disabled, wrong, or refused by policy */
    DCMSEAL_E_TOKEN,      /* module, token, login or session unavailable */
    DCMSEAL_E_IO,         /* read, write, rename, fsync failed */
    DCMSEAL_E_INTERNAL,   /* allocation or library failure that is our fault */
} dcmseal_status;

typedef struct dcmseal_error {
    dcmseal_status status;
    char message[512];
} dcmseal_error;

/* Short stable name of a status, e.g. "auth"; never NULL. */
static inline const char *dcmseal_status_name(dcmseal_status s)
{
    switch (s) {
    case DCMSEAL_OK: return "ok";
    case DCMSEAL_E_USAGE: return "usage";
    case DCMSEAL_E_FORMAT: return "format";
    case DCMSEAL_E_AUTH: return "auth";
    case DCMSEAL_E_NOT_DICOM: return "not-dicom";
    case DCMSEAL_E_KEY: return "key";
    case DCMSEAL_E_TOKEN: return "token";
    case DCMSEAL_E_IO: return "io";
    case DCMSEAL_E_INTERNAL: return "internal";
    }
    return "internal";
}

/* Records |s| and a printf-style message in |err| (which may be NULL) and
 * returns |s|, so that callers can write `return dcmseal_fail(err, ...)`. */
static inline DCMSEAL_PRINTF(3, 4) dcmseal_status
dcmseal_fail(dcmseal_error *err, dcmseal_status s, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        err->status = s;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return s;
}

static inline void dcmseal_error_clear(dcmseal_error *err)
{
    if (err != NULL) {
        err->status = DCMSEAL_OK;
        err->message[0] = '\0';
    }
}

#ifdef __cplusplus
}
#endif
#endif
