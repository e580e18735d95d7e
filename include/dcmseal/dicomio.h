/*
 * dcmseal/dicomio.h: the DICOM identity of an object, read without its pixels.
 *
 * The probe reads an object as DCMTK's dcmdata reads a file (a Part 10 file,
 * or a data set without preamble and meta header) and finds the UIDs that
 * docs/FORMAT.md section "Identity context" binds, by the rules stated there;
 * this module is the only implementation of those rules, for the encryptor
 * and for verify alike.
 *
 * It reads through a source: the object's first bytes in memory, and the
 * rest at random offsets through a callback, so that long values (a large
 * private element, the pixel data) are skipped without being read, and
 * memory stays bounded whatever the object's size.
 *
 * Implemented in C++ over DCMTK's dcmdata; this C API is the only way in.
 */
#ifndef DCMSEAL_DICOMIO_H
#define DCMSEAL_DICOMIO_H

#include <stddef.h>
#include <stdint.h>

#include <dcmseal/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest UID allowed by PS3.5 section 9.1, plus NUL. */
#define DCMSEAL_UID_MAX 65

/* The most bytes the probe parses (FORMAT.md "Identity context"): element
 * headers and the values it reads. Values longer than 4096 bytes are skipped,
 * not read, and do not count. DCMTK keeps what it parses in memory, so this
 * bounds the probe's memory; an identity that needs more is not bound. */
#define DCMSEAL_DICOM_PROBE_MAX (1024u * 1024u)

typedef enum {
    DCMSEAL_DICOM_OK = 0,         /* the identity was read: bind it */
    DCMSEAL_DICOM_NOT_DICOM,      /* neither a Part 10 file nor a readable data set */
    DCMSEAL_DICOM_TRUNCATED,      /* ends inside the meta header or before the identity */
    DCMSEAL_DICOM_DEFLATED,       /* deflated transfer syntax that did not inflate */
    DCMSEAL_DICOM_NO_IDENTITY,    /* parsed, but without a SOP Instance UID */
    DCMSEAL_DICOM_UNREADABLE,     /* DCMTK refused it, or a UID is not valid */
    DCMSEAL_DICOM_INCOMPLETE,     /* the identity lies beyond what the probe may read:
                                     past DCMSEAL_DICOM_PROBE_MAX parsed bytes, or past
                                     the end of a source marked |prefix| */
} dcmseal_dicom_class;

typedef struct dcmseal_dicom_info {
    dcmseal_dicom_class klass;
    /* One line for the user when klass != OK, e.g. "truncated inside the meta
     * header"; empty otherwise. Never contains element values. */
    char reason[160];
    /* One line for the user about an object that is bound (klass == OK) but
     * should be looked at, e.g. its meta header names another SOP Instance
     * UID than its data set; empty otherwise. Never contains element values. */
    char notice[160];
    /* The meta header's (0002,0010), or without one the transfer syntax DCMTK
     * detected and read the data set with. */
    char transfer_syntax[DCMSEAL_UID_MAX];
    char sop_class_uid[DCMSEAL_UID_MAX];
    char sop_instance_uid[DCMSEAL_UID_MAX];
    char study_instance_uid[DCMSEAL_UID_MAX];
} dcmseal_dicom_info;

/* Where the probe reads an object from: bytes [0, head_len) at |head|, and
 * bytes [head_len, size) through |read|. */
typedef struct dcmseal_dicom_source {
    const uint8_t *head; /* may be NULL when head_len is 0 */
    size_t head_len;     /* <= size */
    /* How many bytes can be read: the object's length, or with |prefix| the
     * length of the part that is available. */
    uint64_t size;
    /* Non-zero when the object goes on after |size| bytes that cannot be
     * read (a window of a non-seekable input): running out of bytes is then
     * DCMSEAL_DICOM_INCOMPLETE instead of truncation. */
    int prefix;
    /* Fills |out| with the |len| bytes at |offset|, where head_len <= offset
     * and offset + len <= size; anything but DCMSEAL_OK (with |err| filled)
     * ends the probe with that status. May be NULL when head_len == size.
     * Called from the probing thread only. */
    dcmseal_status (*read)(void *self, uint8_t *out, size_t len, uint64_t offset,
                           dcmseal_error *err);
    void *self;
} dcmseal_dicom_source;

/* Probes the object |src| describes and fills |info| (UIDs that are absent
 * are left empty). Reads only what the identity rules need: for most
 * objects the first few kilobytes, never a long value. |src| is borrowed for
 * the call; bytes read through |src->read| are wiped before return.
 *
 * Returns DCMSEAL_OK whenever |info| was filled, whatever its class; the
 * status of |src->read| when it failed; DCMSEAL_E_USAGE for NULL arguments or
 * an inconsistent source; DCMSEAL_E_INTERNAL on allocation failure.
 * Thread-safe. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_dicom_probe_source(dcmseal_dicom_info *info, const dcmseal_dicom_source *src,
                           dcmseal_error *err);

/* dcmseal_dicom_probe_source over the |len| bytes at |buf|: the whole object
 * when |complete| is non-zero, otherwise a prefix of a longer one (|prefix|
 * above). Errors as dcmseal_dicom_probe_source. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_dicom_probe(dcmseal_dicom_info *info, const uint8_t *buf, size_t len,
                    int complete, dcmseal_error *err);

/* Human-readable name of a class, e.g. "truncated". */
DCMSEAL_API const char *dcmseal_dicom_class_name(dcmseal_dicom_class klass);

#ifdef __cplusplus
}
#endif
#endif
