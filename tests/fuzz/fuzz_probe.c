/* libFuzzer target: the DICOM probe (dcmseal_dicom_probe) over DCMTK, on the
 * same bytes as a whole object and as the prefix of a longer one.
 *
 * Checked: the probe always fills |info| and returns DCMSEAL_OK (the engine
 * turns anything else into a failed encryption); the class is a known one;
 * the reason is empty exactly for a DICOM object; every string is
 * terminated; a DICOM object has a SOP Instance UID; UIDs hold only the
 * characters the probe lets through (no control bytes, spaces or
 * backslashes), since they are bound into the encrypted header; memory use
 * is bounded by the input, not by the lengths it declares. */
#include <string.h>

#include <dcmseal/dicomio.h>

#include "fuzz.h"

static void check_uid(const char *uid)
{
    const char *end = memchr(uid, 0, DCMSEAL_UID_MAX);
    FUZZ_CHECK(end != NULL);
    for (const char *p = uid; p < end; p++)
        FUZZ_CHECK(*p > ' ' && *p <= '~' && *p != '\\');
}

static void probe(const uint8_t *buf, size_t len, int complete)
{
    dcmseal_dicom_info info;
    dcmseal_error err;
    memset(&info, 0xA5, sizeof info); /* the probe must fill every field */
    FUZZ_CHECK(dcmseal_dicom_probe(&info, buf, len, complete, &err) == DCMSEAL_OK);
    FUZZ_CHECK(info.klass >= DCMSEAL_DICOM_OK && info.klass <= DCMSEAL_DICOM_UNREADABLE);
    FUZZ_CHECK(memchr(info.reason, 0, sizeof info.reason) != NULL);
    FUZZ_CHECK((info.klass == DCMSEAL_DICOM_OK) == (info.reason[0] == '\0'));
    check_uid(info.transfer_syntax);
    check_uid(info.sop_class_uid);
    check_uid(info.sop_instance_uid);
    check_uid(info.study_instance_uid);
    if (info.klass == DCMSEAL_DICOM_OK)
        FUZZ_CHECK(info.sop_instance_uid[0] != '\0');
    FUZZ_CHECK(strcmp(dcmseal_dicom_class_name(info.klass), "unknown") != 0);
    /* Memory is bounded by the input, whatever lengths it declares: the
     * probe never runs short (under libFuzzer's malloc limit, or the
     * driver's address-space limit). */
    FUZZ_CHECK(strstr(info.reason, "memory") == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly the input's size: the pointer libFuzzer passes for
     * an empty input may not be dereferenced, and reads past the end show. */
    uint8_t *buf = malloc(size > 0 ? size : 1);
    FUZZ_CHECK(buf != NULL);
    if (size > 0)
        memcpy(buf, data, size);
    probe(buf, size, 1);
    probe(buf, size, 0);
    free(buf);
    return 0;
}
