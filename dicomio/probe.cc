/*
 * probe.cc: dcmseal_dicom_probe over DCMTK's dcmdata.
 *
 * DCMTK parses the meta header and the data set from the caller's buffer and
 * stops at Pixel Data, so the cost is bounded by the header, not the image.
 * Everything here is per call except the one-time silencing of DCMTK's logger.
 */
#include <dcmseal/dicomio.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <new>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/oflog/oflog.h>

namespace {

const size_t kPreambleLen = 128;
const size_t kMagicEnd = kPreambleLen + 4;
const char kDeflatedTs[] = "1.2.840.10008.1.2.1.99";

/* DCMTK logs parse problems to stderr by default; a probe must stay silent,
 * and the messages could quote element values. */
void silence_dcmtk()
{
    static std::once_flag once;
    std::call_once(once, [] {
        OFLog::getLogger("dcmtk").setLogLevel(OFLogger::OFF_LOG_LEVEL);
    });
}

void set_class(dcmseal_dicom_info *info, dcmseal_dicom_class klass, const char *reason)
{
    info->klass = klass;
    snprintf(info->reason, sizeof info->reason, "%s", reason);
}

uint16_t get16(const uint8_t *p, bool big)
{
    return big ? uint16_t(p[0] << 8 | p[1]) : uint16_t(p[1] << 8 | p[0]);
}

uint32_t get32(const uint8_t *p, bool big)
{
    return big ? uint32_t(get16(p, true)) << 16 | get16(p + 2, true)
               : uint32_t(get16(p + 2, false)) << 16 | get16(p, false);
}

/* A data set without preamble starts with the meta group or group 0008 in
 * practice; checking this first keeps arbitrary bytes away from the parser,
 * which would otherwise allocate whatever length a random header claims. */
bool starts_like_dataset(const uint8_t *buf, size_t len)
{
    if (len < 8)
        return false;
    uint16_t le = get16(buf, false), be = get16(buf, true);
    return le == 0x0002 || le == 0x0008 || be == 0x0008;
}

/* DCMTK allocates an element's value by its length field before reading it,
 * so a corrupt length would reserve up to 4 GiB per probe. Reading a file,
 * DCMTK skips a value longer than the maxReadLength it is given and loads it
 * on demand through a factory; a plain buffer stream has no factory, so every
 * value is loaded. This stream gives DCMTK a factory, so that long values are
 * skipped here too, and the factory's streams are empty: the probe needs only
 * UIDs, which are short, and loads nothing long. Memory then stays bounded
 * by the buffer, also when a deflated data set inflates to much more. */
class EmptyStreamFactory : public DcmInputStreamFactory
{
public:
    DcmInputStream *create() const override
    {
        DcmInputBufferStream *empty = new DcmInputBufferStream();
        empty->setEos();
        return empty;
    }
    DcmInputStreamFactory *clone() const override { return new EmptyStreamFactory(); }
    /* DCMTK has no type for this; nothing in it asks. */
    DcmInputStreamFactoryType ident() const override { return DFT_DcmInputFileStreamFactory; }
};

class ProbeStream : public DcmInputBufferStream
{
public:
    DcmInputStreamFactory *newFactory() const override { return new EmptyStreamFactory(); }
};

/* Whether a UID can be handed on: UIDs are digits and dots by PS3.5 9.1, but
 * sloppy writers are common, so only what could mislead a reader of the field
 * (control bytes, spaces, non-ASCII, a value separator) is refused. */
bool plausible_uid(const OFString &value)
{
    for (size_t i = 0; i < value.length(); i++) {
        unsigned char c = static_cast<unsigned char>(value[i]);
        if (c <= ' ' || c > '~' || c == '\\')
            return false;
    }
    return true;
}

/* Copies a UID element, if present and completely read, into |dst|. Returns
 * false, with the class set, only if the value cannot be used. */
bool copy_uid(dcmseal_dicom_info *info, char (&dst)[DCMSEAL_UID_MAX], DcmItem *item,
              const DcmTagKey &key, const char *what)
{
    DcmElement *elem = NULL;
    OFString value;
    if (item == NULL || item->findAndGetElement(key, elem).bad() || elem == NULL ||
        elem->transferState() != ERW_ready)
        return true;
    /* A value longer than DCM_MaxReadLength was skipped, not read (ProbeStream). */
    const bool skipped = elem->getLengthField() > DCM_MaxReadLength;
    if (!skipped && elem->getOFStringArray(value).bad())
        return true;
    const char *bad = skipped || value.length() >= sizeof dst ? "is longer than 64 characters"
                      : !plausible_uid(value)       ? "is not a valid UID"
                                                    : NULL;
    if (bad != NULL) {
        char reason[sizeof info->reason];
        snprintf(reason, sizeof reason, "%s %s", what, bad);
        set_class(info, DCMSEAL_DICOM_UNREADABLE, reason);
        return false;
    }
    std::memcpy(dst, value.c_str(), value.length() + 1);
    return true;
}

/* Whether parsing got past |key|, so that its absence is a fact. */
bool parsed_past(DcmItem *ds, const DcmTagKey &key)
{
    unsigned long n = ds->card();
    return n > 0 && ds->getElement(n - 1)->getTag() > key;
}

/* Fills the UIDs from |ds| and |meta| (either may be NULL). The meta header
 * stands in for the data set only where the data set is known to lack the
 * element: a partly read data set may still hold it further on, and the two
 * can differ. |whole| says the data set was read to its end or Pixel Data. */
bool fill_uids(dcmseal_dicom_info *info, DcmItem *meta, DcmDataset *ds, bool whole)
{
    if (!copy_uid(info, info->transfer_syntax, meta, DCM_TransferSyntaxUID,
                  "the Transfer Syntax UID") ||
        !copy_uid(info, info->sop_class_uid, ds, DCM_SOPClassUID, "the SOP Class UID") ||
        !copy_uid(info, info->sop_instance_uid, ds, DCM_SOPInstanceUID,
                  "the SOP Instance UID") ||
        !copy_uid(info, info->study_instance_uid, ds, DCM_StudyInstanceUID,
                  "the Study Instance UID"))
        return false;
    if (ds == NULL)
        return true;
    if (info->sop_class_uid[0] == '\0' && (whole || parsed_past(ds, DCM_SOPClassUID)) &&
        !copy_uid(info, info->sop_class_uid, meta, DCM_MediaStorageSOPClassUID,
                  "the Media Storage SOP Class UID"))
        return false;
    if (info->sop_instance_uid[0] == '\0' && (whole || parsed_past(ds, DCM_SOPInstanceUID)) &&
        !copy_uid(info, info->sop_instance_uid, meta, DCM_MediaStorageSOPInstanceUID,
                  "the Media Storage SOP Instance UID"))
        return false;
    if (info->transfer_syntax[0] == '\0') {
        /* No (0002,0010): report what DCMTK detected and parsed with. */
        DcmXfer xfer(ds->getOriginalXfer());
        if (xfer.getXfer() != EXS_Unknown)
            snprintf(info->transfer_syntax, sizeof info->transfer_syntax, "%s",
                     xfer.getXferID());
    }
    return true;
}

/* Whether an object that DCMTK read up to the header of Pixel Data, ending at
 * |pos|, runs to its end: the pixel value is skipped by its length or, when
 * encapsulated, fragment by fragment, without being read; whatever follows it
 * (usually trailing padding) is small and left to DCMTK. */
bool rest_is_complete(const uint8_t *buf, size_t len, size_t pos, E_TransferSyntax ts)
{
    const DcmXfer xfer(ts);
    const bool big = xfer.isBigEndian();
    const size_t head = xfer.isExplicitVR() ? 12 : 8;
    if (pos < head || pos > len)
        return true;
    const uint8_t *h = buf + pos - head;
    if (get16(h, big) != DCM_PixelData.getGroup() ||
        get16(h + 2, big) != DCM_PixelData.getElement())
        return true; /* stopped at a later tag: beyond what we vouch for */
    const uint32_t vlen = get32(buf + pos - 4, big);
    size_t end = pos;
    if (vlen != 0xFFFFFFFFu) {
        if (len - end < vlen)
            return false;
        end += vlen;
    } else {
        for (;;) {
            if (len - end < 8)
                return false;
            const uint16_t group = get16(buf + end, big), elem = get16(buf + end + 2, big);
            const uint32_t ilen = get32(buf + end + 4, big);
            end += 8;
            if (group != 0xFFFE || elem != 0xE000)
                break; /* the sequence delimiter, or malformed: not truncation */
            if (len - end < ilen)
                return false;
            end += ilen;
        }
    }
    if (end == len)
        return true;
    ProbeStream in;
    in.setBuffer(buf + end, offile_off_t(len - end));
    in.setEos();
    DcmDataset tail;
    tail.transferInit();
    const OFCondition cond = tail.read(in, ts);
    return cond != EC_StreamNotifyClient && cond != EC_InvalidStream &&
           cond != EC_MemoryExhausted;
}

/* Reads |ff| from |buf| up to, not including, Pixel Data. Without
 * |complete|, running out of bytes ends the read (EC_StreamNotifyClient)
 * rather than failing it. */
OFCondition read_until_pixels(DcmFileFormat &ff, ProbeStream &in, const uint8_t *buf,
                              size_t len, bool complete)
{
    in.setBuffer(buf, offile_off_t(len));
    if (complete)
        in.setEos();
    ff.transferInit();
    return ff.readUntilTag(in, EXS_Unknown, EGL_noChange, DCM_MaxReadLength, DCM_PixelData);
}

/* The data set at |buf| had no preamble: tell a raw data set from anything
 * else. UIDs are filled when found, as a courtesy to the caller. */
void probe_raw(dcmseal_dicom_info *info, const uint8_t *buf, size_t len, bool complete)
{
    if (!starts_like_dataset(buf, len)) {
        set_class(info, DCMSEAL_DICOM_NOT_DICOM, "no DICM magic at offset 128");
        return;
    }
    /* DcmFileFormat rather than DcmDataset: it also takes a meta header
     * without preamble, whose transfer syntax may differ from the data set's. */
    DcmFileFormat ff;
    ProbeStream in;
    const OFCondition cond = read_until_pixels(ff, in, buf, len, complete);
    DcmDataset *ds = ff.getDataset();
    if (ds == NULL || (cond.bad() && !(cond == EC_StreamNotifyClient && !complete))) {
        set_class(info, DCMSEAL_DICOM_NOT_DICOM,
                  "no DICM magic at offset 128, and not a readable data set");
        return;
    }
    if (fill_uids(info, ff.getMetaInfo(), ds, cond.good()))
        set_class(info, DCMSEAL_DICOM_NO_PREAMBLE,
                  "data set without the 128-byte preamble and DICM magic");
}

void probe_part10(dcmseal_dicom_info *info, const uint8_t *buf, size_t len, bool complete)
{
    DcmFileFormat ff;
    ProbeStream in;
    const OFCondition cond = read_until_pixels(ff, in, buf, len, complete);
    DcmMetaInfo *meta = ff.getMetaInfo();
    DcmDataset *ds = ff.getDataset();
    const bool in_meta = meta == NULL || meta->transferState() != ERW_ready || ds == NULL;
    /* Both the end of the buffer and a short inflated stream look like this. */
    const bool out_of_data = cond == EC_StreamNotifyClient || cond == EC_InvalidStream;

    if (!fill_uids(info, meta, in_meta ? NULL : ds, cond.good()))
        return;
    if (cond == EC_MemoryExhausted) {
        /* Not a corrupt length: ProbeStream never allocates by one. */
        set_class(info, DCMSEAL_DICOM_UNREADABLE, "out of memory while parsing");
        return;
    }
    if (in_meta) {
        set_class(info, out_of_data ? DCMSEAL_DICOM_TRUNCATED : DCMSEAL_DICOM_UNREADABLE,
                  out_of_data ? "truncated inside the meta header" : "unreadable meta header");
        return;
    }
    const bool deflated = std::strcmp(info->transfer_syntax, kDeflatedTs) == 0;
    const bool have_id = info->sop_instance_uid[0] != '\0';
    char reason[sizeof info->reason];
    if (cond.good()) {
        /* What follows Pixel Data in a deflated object is compressed: it
         * cannot be checked without inflating the pixels. */
        if (complete && !deflated && !rest_is_complete(buf, len, size_t(in.tell()),
                                                      ds->getOriginalXfer()))
            set_class(info, DCMSEAL_DICOM_TRUNCATED, "truncated inside the pixel data");
        else if (!have_id)
            set_class(info, DCMSEAL_DICOM_NO_IDENTITY,
                      "no SOP Instance UID in the data set or the meta header");
    } else if (out_of_data && !complete) {
        /* The end of a prefix is fine once the identity is known. */
        if (!have_id || (info->study_instance_uid[0] == '\0' &&
                         !parsed_past(ds, DCM_StudyInstanceUID)))
            set_class(info, DCMSEAL_DICOM_TRUNCATED,
                      "the prefix ends before the identifying UIDs");
    } else if (out_of_data) {
        set_class(info, DCMSEAL_DICOM_TRUNCATED, "truncated inside the data set");
    } else if (deflated) {
        snprintf(reason, sizeof reason, "the deflated data set does not inflate: %s",
                 cond.text());
        set_class(info, DCMSEAL_DICOM_DEFLATED, reason);
    } else {
        snprintf(reason, sizeof reason, "DCMTK cannot parse the data set: %s", cond.text());
        set_class(info, DCMSEAL_DICOM_UNREADABLE, reason);
    }
}

} // namespace

extern "C" dcmseal_status dcmseal_dicom_probe(dcmseal_dicom_info *info, const uint8_t *buf,
                                              size_t len, int complete, dcmseal_error *err)
{
    if (info == NULL || buf == NULL)
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "dicom probe: NULL argument");
    std::memset(info, 0, sizeof *info);
    info->klass = DCMSEAL_DICOM_OK;
    try {
        silence_dcmtk();
        /* Without the dictionary, implicit VR UIDs would read as unknown
         * bytes and every such file would look anonymous. */
        if (!dcmDataDict.isDictionaryLoaded()) {
            set_class(info, DCMSEAL_DICOM_UNREADABLE, "DCMTK data dictionary not loaded");
            return dcmseal_fail(err, DCMSEAL_E_INTERNAL,
                                "dicom probe: DCMTK data dictionary not loaded "
                                "(is DCMDICTPATH right?)");
        }
        if (len > DCMSEAL_DICOM_PROBE_MAX) {
            len = DCMSEAL_DICOM_PROBE_MAX;
            complete = 0;
        }
        if (len == 0)
            set_class(info, DCMSEAL_DICOM_NOT_DICOM, "empty input");
        else if (len >= kMagicEnd && std::memcmp(buf + kPreambleLen, "DICM", 4) == 0)
            probe_part10(info, buf, len, complete != 0);
        else
            probe_raw(info, buf, len, complete != 0);
        return DCMSEAL_OK;
    } catch (const std::bad_alloc &) {
        set_class(info, DCMSEAL_DICOM_UNREADABLE, "out of memory");
        return dcmseal_fail(err, DCMSEAL_E_INTERNAL, "dicom probe: out of memory");
    } catch (const std::exception &) {
        /* DCMTK throws on some malformed values (std::logic_error from
         * DcmByteString::verify in a directory record, found by
         * fuzz_probe): that is the input refused, not a failure of ours,
         * and the object is sealed as opaque like any unreadable one. */
        set_class(info, DCMSEAL_DICOM_UNREADABLE, "DCMTK cannot parse the data set: "
                                                  "it failed on a malformed value");
        return DCMSEAL_OK;
    } catch (...) {
        set_class(info, DCMSEAL_DICOM_UNREADABLE, "internal error");
        return dcmseal_fail(err, DCMSEAL_E_INTERNAL, "dicom probe: unexpected exception");
    }
}

extern "C" const char *dcmseal_dicom_class_name(dcmseal_dicom_class klass)
{
    switch (klass) {
    case DCMSEAL_DICOM_OK: return "DICOM";
    case DCMSEAL_DICOM_NOT_DICOM: return "not DICOM";
    case DCMSEAL_DICOM_NO_PREAMBLE: return "no preamble";
    case DCMSEAL_DICOM_TRUNCATED: return "truncated";
    case DCMSEAL_DICOM_DEFLATED: return "deflated";
    case DCMSEAL_DICOM_NO_IDENTITY: return "no identity";
    case DCMSEAL_DICOM_UNREADABLE: return "unreadable";
    }
    return "unknown";
}
