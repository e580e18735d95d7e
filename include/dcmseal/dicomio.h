/*
 * dcmseal/dicomio.h: probing a DICOM Part 10 object without reading its pixels.
 *
 * The probe parses the File Meta Information and the data set up to, but not
 * including, Pixel Data (7FE0,0010), from an in-memory prefix of the object.
 * It works on a prefix so that the same code serves files and pipes in
 * constant memory; the caller says whether the prefix is the whole object.
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

/* How many bytes of an object the probe is given at most: enough for every
 * header we have met, small enough to keep memory bounded. */
#define DCMSEAL_DICOM_PROBE_MAX (1024u * 1024u)

typedef enum {
    DCMSEAL_DICOM_OK = 0,         /* a Part 10 object whose UIDs were read */
    DCMSEAL_DICOM_NOT_DICOM,      /* no "DICM" magic and nothing DICOM-like */
    DCMSEAL_DICOM_NO_PREAMBLE,    /* data set without 128-byte preamble + DICM */
    DCMSEAL_DICOM_TRUNCATED,      /* ends inside the meta header or an element */
    DCMSEAL_DICOM_DEFLATED,       /* deflated transfer syntax that did not inflate */
    DCMSEAL_DICOM_NO_IDENTITY,    /* parsed, but without a SOP Instance UID */
    DCMSEAL_DICOM_UNREADABLE,     /* DCMTK refused it for another reason */
} dcmseal_dicom_class;

typedef struct dcmseal_dicom_info {
    dcmseal_dicom_class klass;
    /* One line for the user when klass != OK, e.g. "truncated inside the meta
     * header"; empty otherwise. Never contains element values. */
    char reason[160];
    char transfer_syntax[DCMSEAL_UID_MAX];
    char sop_class_uid[DCMSEAL_UID_MAX];
    char sop_instance_uid[DCMSEAL_UID_MAX];
    char study_instance_uid[DCMSEAL_UID_MAX];
} dcmseal_dicom_info;

/* Probes |len| bytes at |buf|. |complete| is non-zero when |buf| holds the
 * whole object (so running out of bytes means truncation) and zero when it is
 * a prefix of a longer object. Fills |info| in every case; UIDs that are
 * absent are left empty. SOP Class/Instance fall back to the meta header's
 * Media Storage SOP Class/Instance UIDs (0002,0002)/(0002,0003).
 *
 * Returns DCMSEAL_OK whenever |info| was filled, whatever its class;
 * DCMSEAL_E_USAGE for NULL arguments, DCMSEAL_E_INTERNAL on allocation
 * failure. Thread-safe. */
DCMSEAL_API DCMSEAL_MUST_CHECK dcmseal_status
dcmseal_dicom_probe(dcmseal_dicom_info *info, const uint8_t *buf, size_t len,
                    int complete, dcmseal_error *err);

/* Human-readable name of a class, e.g. "truncated". */
DCMSEAL_API const char *dcmseal_dicom_class_name(dcmseal_dicom_class klass);

#ifdef __cplusplus
}
#endif
#endif
