/* libFuzzer target: the DICOM probe over DCMTK, on the same bytes as a whole
 * object in memory (dcmseal_dicom_probe), and as the prefix of a longer one
 * through a source that has only its first bytes in memory and reads the
 * rest through its callback (dcmseal_dicom_probe_source).
 *
 * Checked: the probe always fills |info| and returns DCMSEAL_OK (the engine
 * turns anything else into a failed encryption); the class is a known one;
 * the reason is empty exactly for a DICOM object, and a notice comes only
 * with one; every string is terminated; a DICOM object has a SOP Instance
 * UID; UIDs hold only the characters the probe lets through (no control
 * bytes, spaces or backslashes), since they are bound into the encrypted
 * header; an identity read from a prefix, wherever its bytes came from, is
 * the whole object's (so that sealing from a pipe and verifying the file
 * agree); memory use is bounded by the input, not by the lengths it
 * declares. Two probes per input, not more: a megabyte of short elements
 * (which a small deflated input can inflate to) takes DCMTK seconds under
 * the sanitizers, and the fuzzer's timeout is 10 s. */
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

static void check_info(const dcmseal_dicom_info *info)
{
    FUZZ_CHECK(info->klass >= DCMSEAL_DICOM_OK && info->klass <= DCMSEAL_DICOM_INCOMPLETE);
    FUZZ_CHECK(memchr(info->reason, 0, sizeof info->reason) != NULL);
    FUZZ_CHECK(memchr(info->notice, 0, sizeof info->notice) != NULL);
    FUZZ_CHECK((info->klass == DCMSEAL_DICOM_OK) == (info->reason[0] == '\0'));
    FUZZ_CHECK(info->klass == DCMSEAL_DICOM_OK || info->notice[0] == '\0');
    check_uid(info->transfer_syntax);
    check_uid(info->sop_class_uid);
    check_uid(info->sop_instance_uid);
    check_uid(info->study_instance_uid);
    if (info->klass == DCMSEAL_DICOM_OK)
        FUZZ_CHECK(info->sop_instance_uid[0] != '\0');
    FUZZ_CHECK(strcmp(dcmseal_dicom_class_name(info->klass), "unknown") != 0);
    /* Memory is bounded by the input, whatever lengths it declares: the
     * probe never runs short (under libFuzzer's malloc limit, or the
     * driver's address-space limit). */
    FUZZ_CHECK(strstr(info->reason, "memory") == NULL);
}

static void probe(dcmseal_dicom_info *info, const uint8_t *buf, size_t len, int complete)
{
    dcmseal_error err;
    memset(info, 0xA5, sizeof *info); /* the probe must fill every field */
    FUZZ_CHECK(dcmseal_dicom_probe(info, buf, len, complete, &err) == DCMSEAL_OK);
    check_info(info);
}

typedef struct {
    const uint8_t *buf;
    size_t len;
} fuzz_src;

static dcmseal_status src_read(void *self, uint8_t *out, size_t len, uint64_t offset,
                               dcmseal_error *err)
{
    const fuzz_src *s = self;
    (void)err;
    FUZZ_CHECK(offset <= s->len && len <= s->len - offset);
    memcpy(out, s->buf + offset, len);
    return DCMSEAL_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly the input's size: the pointer libFuzzer passes for
     * an empty input may not be dereferenced, and reads past the end show. */
    uint8_t *buf = calloc(1, size > 0 ? size : 1);
    FUZZ_CHECK(buf != NULL);
    if (size > 0)
        memcpy(buf, data, size);
    dcmseal_dicom_info whole, prefix;
    probe(&whole, buf, size, 1);

    /* As a prefix: the first bytes in memory (as many as the first byte
     * says), the rest through the callback. */
    fuzz_src s = {buf, size};
    const size_t head = size > 0 ? buf[0] % (size + 1) : 0;
    const dcmseal_dicom_source src = {buf, head, size, 1, src_read, &s};
    dcmseal_error err;
    memset(&prefix, 0xA5, sizeof prefix);
    FUZZ_CHECK(dcmseal_dicom_probe_source(&prefix, &src, &err) == DCMSEAL_OK);
    check_info(&prefix);
    if (prefix.klass == DCMSEAL_DICOM_OK)
        FUZZ_CHECK(memcmp(&prefix, &whole, sizeof whole) == 0);
    free(buf);
    return 0;
}
