/*
 * probe.cc: the identity rules of docs/FORMAT.md ("Identity context") over
 * DCMTK's dcmdata.
 *
 * DCMTK reads the object through ProbeStream, which takes its bytes from the
 * caller's dcmseal_dicom_source: a long value is skipped by moving an offset,
 * never read, and what DCMTK parses is capped at DCMSEAL_DICOM_PROBE_MAX
 * bytes, so that time and memory follow the header, not the image.
 *
 * The rules say the identity is the first occurrence of each of three
 * top-level elements, read up to the point where all three are known, or to
 * the end of the data set. A first pass stops at the first top-level element
 * at or after (0020,000E), which settles it for every data set in tag order;
 * only when that pass stopped there without all three does a second one read
 * the whole data set. Everything here is per call except the one-time silencing
 * of DCMTK's logger.
 */
#include <dcmseal/dicomio.h>

#include <string.h> /* explicit_bzero */

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <new>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcistrma.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/oflog/oflog.h>

namespace {

const size_t kPreambleLen = 128;
const size_t kMagicEnd = kPreambleLen + 4;
const char kDeflatedTs[] = "1.2.840.10008.1.2.1.99";
/* Bytes past the source's head are fetched in blocks: one read callback then
 * serves many of DCMTK's reads of a few bytes. */
const size_t kBlock = 16384;
/* The tag after Study Instance UID (0020,000D): in a data set in tag order,
 * the three identity UIDs all come before it. */
const DcmTagKey kAfterStudy(0x0020, 0x000E);

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

/* A data set without preamble starts with group 0002 or 0008 in practice;
 * checking that first keeps arbitrary files away from the parser. */
bool starts_like_dataset(const uint8_t *p, size_t len)
{
    if (len < 8)
        return false;
    const unsigned le = unsigned(p[1]) << 8 | p[0], be = unsigned(p[0]) << 8 | p[1];
    return le == 0x0002 || le == 0x0008 || be == 0x0008;
}

/* The producer at the start of DCMTK's filter chain, over the source. Reads
 * are copied from the head or from one block fetched through the callback;
 * skips only move the offset, so a skipped value is never fetched. */
class SourceProducer : public DcmProducer
{
public:
    explicit SourceProducer(const dcmseal_dicom_source &src) : src_(src)
    {
        err_.status = DCMSEAL_OK;
        err_.message[0] = '\0';
    }
    ~SourceProducer() override { explicit_bzero(block_, block_used_); }
    SourceProducer(const SourceProducer &) = delete;
    SourceProducer &operator=(const SourceProducer &) = delete;

    OFBool good() const override { return status_.good(); }
    OFCondition status() const override { return status_; }
    /* A prefix never ends: running out of it is an I/O suspension to DCMTK. */
    OFBool eos() override { return !good() || (!src_.prefix && pos_ >= src_.size); }
    offile_off_t avail() override { return good() ? remaining() : 0; }

    offile_off_t read(void *buf, offile_off_t len) override
    {
        if (!good() || len <= 0)
            return 0;
        uint8_t *out = static_cast<uint8_t *>(buf);
        const uint64_t want = std::min<uint64_t>(uint64_t(len), src_.size - pos_);
        uint64_t done = 0;
        while (done < want) {
            const uint8_t *from;
            uint64_t n;
            if (pos_ < src_.head_len) {
                from = src_.head + pos_;
                n = src_.head_len - pos_;
            } else {
                if ((pos_ < block_at_ || pos_ - block_at_ >= block_len_) && !fill())
                    break;
                from = block_ + (pos_ - block_at_);
                n = block_len_ - (pos_ - block_at_);
            }
            n = std::min(n, want - done);
            std::memcpy(out + done, from, size_t(n));
            pos_ += n;
            done += n;
        }
        return offile_off_t(done);
    }

    offile_off_t skip(offile_off_t len) override
    {
        if (!good() || len <= 0)
            return 0;
        const offile_off_t n = std::min(len, remaining());
        pos_ += uint64_t(n);
        return n;
    }

    void putback(offile_off_t num) override
    {
        if (num < 0 || uint64_t(num) > pos_)
            status_ = EC_PutbackFailed;
        else if (good())
            pos_ -= uint64_t(num);
    }

    /* The read callback's failure, if it failed: the probe fails with it. */
    dcmseal_status failure() const { return err_.status; }
    const dcmseal_error &failure_error() const { return err_; }

private:
    offile_off_t remaining() const
    {
        return offile_off_t(std::min<uint64_t>(src_.size - pos_, INT64_MAX));
    }

    bool fill()
    {
        const size_t n = size_t(std::min<uint64_t>(kBlock, src_.size - pos_));
        block_len_ = 0;
        block_used_ = std::max(block_used_, n);
        const dcmseal_status st = src_.read(src_.self, block_, n, pos_, &err_);
        if (st != DCMSEAL_OK) {
            if (err_.status == DCMSEAL_OK)
                dcmseal_fail(&err_, st, "dicom probe: the input could not be read");
            err_.status = st;
            status_ = EC_InvalidStream;
            return false;
        }
        block_at_ = pos_;
        block_len_ = n;
        return true;
    }

    const dcmseal_dicom_source &src_;
    uint64_t pos_ = 0;
    OFCondition status_ = EC_Normal;
    uint8_t block_[kBlock];
    uint64_t block_at_ = 0;
    size_t block_len_ = 0;
    size_t block_used_ = 0; /* the most |block_| ever held: what is wiped */
    dcmseal_error err_;
};

/* DCMTK allocates an element's value by its length field before reading it,
 * so a corrupt length would reserve up to 4 GiB per probe. Reading a file,
 * DCMTK skips a value longer than the maxReadLength it is given and loads it
 * on demand through a factory. ProbeStream always offers a factory (also
 * under a deflate filter, where DCMTK's own streams offer none), so long
 * values are always skipped, and the factory's streams are empty: the probe
 * needs only UIDs, which are short, and loads nothing long. */
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

/* The stream DCMTK reads: the source, and the budget of DCMSEAL_DICOM_PROBE_MAX
 * parsed bytes. The budget counts what DCMTK reads after any deflate filter,
 * since that is what it keeps in memory. A skipped value does not count, as
 * skipping costs nothing, except in a deflated data set, where it means
 * inflating the value: there it counts, so that time stays bounded too. Once
 * the budget is spent, the stream looks like a suspended network stream to
 * DCMTK. */
class ProbeStream : public DcmInputStream
{
public:
    explicit ProbeStream(const dcmseal_dicom_source &src)
        : DcmInputStream(&producer_), producer_(src)
    {
    }
    DcmInputStreamFactory *newFactory() const override { return new EmptyStreamFactory(); }
    offile_off_t avail() override { return std::min(DcmInputStream::avail(), budget_left()); }
    offile_off_t read(void *buf, offile_off_t len) override
    {
        const offile_off_t n = DcmInputStream::read(buf, std::min(len, budget_left()));
        parsed_ += n;
        return n;
    }
    offile_off_t skip(offile_off_t len) override
    {
        if (currentProducer() == &producer_)
            return DcmInputStream::skip(len);
        const offile_off_t n = DcmInputStream::skip(std::min(len, budget_left()));
        parsed_ += n;
        return n;
    }
    bool over_budget() const { return budget_left() == 0; }
    const SourceProducer &producer() const { return producer_; }

private:
    offile_off_t budget_left() const { return offile_off_t(DCMSEAL_DICOM_PROBE_MAX) - parsed_; }

    SourceProducer producer_;
    offile_off_t parsed_ = 0;
};

/* One read of the object by DCMTK. */
struct Pass {
    explicit Pass(const dcmseal_dicom_source &src) : in(src) {}
    ProbeStream in;
    DcmFileFormat ff;
    OFCondition cond = EC_Normal;
    bool threw = false; /* DCMTK threw on a malformed value */
};

/* Reads the object, up to the first top-level element at or after |stop|
 * (DCM_UndefinedTagKey: to the end). */
void run_pass(Pass &p, const DcmTagKey &stop)
{
    try {
        p.ff.transferInit();
        p.cond = p.ff.readUntilTag(p.in, EXS_Unknown, EGL_noChange, DCM_MaxReadLength, stop);
    } catch (const std::bad_alloc &) {
        throw;
    } catch (const std::exception &) {
        /* DCMTK throws on some malformed values (std::logic_error from
         * DcmByteString::verify in a directory record, found by fuzz_probe).
         * That is an error at this point of the data set like any other:
         * the elements read before it stay in the data set. */
        p.cond = EC_CorruptedData;
        p.threw = true;
    }
}

enum class Uid { absent, ok, too_long, invalid };

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

/* The value of |key| in |item| (top level only), if its element was read
 * completely. */
Uid read_uid(DcmItem *item, const DcmTagKey &key, OFString &value)
{
    DcmElement *elem = NULL;
    value.clear();
    if (item == NULL || item->findAndGetElement(key, elem).bad() || elem == NULL ||
        elem->transferState() != ERW_ready)
        return Uid::absent;
    /* A value longer than DCM_MaxReadLength was skipped, not read (ProbeStream). */
    if (elem->getLengthField() > DCM_MaxReadLength)
        return Uid::too_long;
    if (elem->getVR() == EVR_UN) {
        /* Explicit VR UN, as GDCM and other toolkits write known tags they
         * copied without a dictionary: the value is the UID's bytes. DCMTK
         * would show them as hex. */
        Uint8 *bytes = NULL;
        const Uint32 n = elem->getLengthField();
        if (n > 0 && (elem->getUint8Array(bytes).bad() || bytes == NULL))
            return Uid::invalid;
        if (n > 0)
            value.assign(reinterpret_cast<const char *>(bytes), n);
        size_t end = value.length();
        while (end > 0 && (value[end - 1] == '\0' || value[end - 1] == ' '))
            end--;
        value.erase(end);
    } else if (elem->getOFStringArray(value).bad()) {
        return Uid::invalid;
    }
    if (value.length() >= DCMSEAL_UID_MAX)
        return Uid::too_long;
    return plausible_uid(value) ? Uid::ok : Uid::invalid;
}

/* Refuses a UID that was read but cannot be bound; false with the class set. */
bool usable(dcmseal_dicom_info *info, Uid u, const char *what)
{
    if (u != Uid::too_long && u != Uid::invalid)
        return true;
    char reason[sizeof info->reason];
    snprintf(reason, sizeof reason, "%s %s", what,
             u == Uid::too_long ? "is longer than 64 characters" : "is not a valid UID");
    set_class(info, DCMSEAL_DICOM_UNREADABLE, reason);
    return false;
}

void copy(char (&dst)[DCMSEAL_UID_MAX], const OFString &value)
{
    std::memcpy(dst, value.c_str(), value.length() + 1);
}

/* The data set's SOP Class or Instance UID, or the meta header's when the
 * data set has none, with a notice when both are there and differ. */
bool settle_sop(dcmseal_dicom_info *info, char (&dst)[DCMSEAL_UID_MAX], const OFString &ds_value,
                DcmItem *meta, const DcmTagKey &meta_key, const char *what,
                const char *meta_what)
{
    OFString meta_value;
    const Uid m = read_uid(meta, meta_key, meta_value);
    if (!ds_value.empty()) {
        copy(dst, ds_value);
        const bool differs = m == Uid::ok ? !meta_value.empty() && meta_value != ds_value
                                          : m != Uid::absent;
        if (differs && info->notice[0] == '\0')
            snprintf(info->notice, sizeof info->notice,
                     "the meta header's %s differs from the data set's %s; the data set's "
                     "is bound", meta_what, what);
        return true;
    }
    if (!usable(info, m, meta_what))
        return false;
    copy(dst, meta_value);
    return true;
}

/* Whether pass |p| settled the identity, and if so |info|. It did when it
 * read all three elements, or the whole data set, or failed before either
 * (|info| then says why); not when it stopped at its stop tag, which only a
 * pass that is not |final| has. */
bool judge(dcmseal_dicom_info *info, Pass &p, const dcmseal_dicom_source &src, bool part10,
           bool final)
{
    DcmMetaInfo *meta = p.ff.getMetaInfo();
    DcmDataset *ds = p.ff.getDataset();
    const bool in_meta = meta == NULL || meta->transferState() != ERW_ready || ds == NULL;
    OFString cls, inst, study;
    const Uid uc = in_meta ? Uid::absent : read_uid(ds, DCM_SOPClassUID, cls);
    const Uid ui = in_meta ? Uid::absent : read_uid(ds, DCM_SOPInstanceUID, inst);
    const Uid us = in_meta ? Uid::absent : read_uid(ds, DCM_StudyInstanceUID, study);
    /* The first occurrence of each is final (DCMTK ignores repeats), so a bad
     * one settles the matter whatever follows. */
    if (!usable(info, uc, "the SOP Class UID") || !usable(info, ui, "the SOP Instance UID") ||
        !usable(info, us, "the Study Instance UID"))
        return true;
    const bool all = uc != Uid::absent && ui != Uid::absent && us != Uid::absent;
    const bool read_well = !p.threw && p.cond.good() && p.in.good();
    if (!all && read_well && !p.in.eos() && !final)
        return false; /* stopped at the stop tag: the rest may hold them */
    if (!all && !(read_well && p.in.eos())) {
        /* An I/O suspension: DCMTK needs bytes the stream does not offer, at
         * the end of the object or of a prefix, or past the budget. */
        const bool suspended = p.cond == EC_StreamNotifyClient;
        const bool out_of_data =
            suspended || p.cond == EC_InvalidStream || p.cond == EC_EndOfStream;
        char reason[sizeof info->reason];
        if (suspended && p.in.over_budget()) {
            snprintf(reason, sizeof reason,
                     "the identity is not within the first %u bytes of elements (the "
                     "probe's limit)", DCMSEAL_DICOM_PROBE_MAX);
            set_class(info, DCMSEAL_DICOM_INCOMPLETE, reason);
        } else if (suspended && src.prefix) {
            snprintf(reason, sizeof reason,
                     "the identity is not within the first %llu bytes, and the input "
                     "cannot be read further", static_cast<unsigned long long>(src.size));
            set_class(info, DCMSEAL_DICOM_INCOMPLETE, reason);
        } else if (!part10) {
            set_class(info, DCMSEAL_DICOM_NOT_DICOM,
                      "no DICM magic at offset 128, and not a readable data set");
        } else if (p.cond == EC_MemoryExhausted) {
            /* Not a corrupt length: ProbeStream never allocates by one. */
            set_class(info, DCMSEAL_DICOM_UNREADABLE, "out of memory while parsing");
        } else if (in_meta) {
            set_class(info, out_of_data ? DCMSEAL_DICOM_TRUNCATED : DCMSEAL_DICOM_UNREADABLE,
                      out_of_data ? "truncated inside the meta header" : "unreadable meta header");
        } else if (out_of_data) {
            set_class(info, DCMSEAL_DICOM_TRUNCATED,
                      "truncated inside the data set, before the identity");
        } else if (p.threw) {
            set_class(info, DCMSEAL_DICOM_UNREADABLE,
                      "DCMTK cannot parse the data set: it failed on a malformed value");
        } else if (p.cond.good()) {
            set_class(info, DCMSEAL_DICOM_UNREADABLE,
                      "DCMTK stopped before the end of the data set");
        } else {
            OFString ts;
            const bool deflated = read_uid(meta, DCM_TransferSyntaxUID, ts) == Uid::ok &&
                                  ts == kDeflatedTs;
            snprintf(reason, sizeof reason, "%s: %s",
                     deflated ? "the deflated data set does not inflate"
                              : "DCMTK cannot parse the data set",
                     p.cond.text());
            set_class(info, deflated ? DCMSEAL_DICOM_DEFLATED : DCMSEAL_DICOM_UNREADABLE,
                      reason);
        }
        return true;
    }

    /* Settled: all three were read, or the whole data set was. */
    if (!settle_sop(info, info->sop_class_uid, cls, meta, DCM_MediaStorageSOPClassUID,
                    "SOP Class UID", "(0002,0002)") ||
        !settle_sop(info, info->sop_instance_uid, inst, meta, DCM_MediaStorageSOPInstanceUID,
                    "SOP Instance UID", "(0002,0003)"))
        return true;
    copy(info->study_instance_uid, study);
    OFString ts;
    if (read_uid(meta, DCM_TransferSyntaxUID, ts) == Uid::ok && !ts.empty()) {
        copy(info->transfer_syntax, ts);
    } else {
        /* No usable (0002,0010): what DCMTK detected and read with. */
        DcmXfer xfer(ds->getOriginalXfer());
        if (xfer.getXfer() != EXS_Unknown)
            snprintf(info->transfer_syntax, sizeof info->transfer_syntax, "%s",
                     xfer.getXferID());
    }
    if (info->sop_instance_uid[0] == '\0')
        set_class(info, DCMSEAL_DICOM_NO_IDENTITY,
                  "no SOP Instance UID in the data set or the meta header");
    return true;
}

/* The first |n| bytes of the object into |out|; the number read. */
dcmseal_status peek(const dcmseal_dicom_source &src, uint8_t *out, size_t n, size_t *got,
                    dcmseal_error *err)
{
    *got = size_t(std::min<uint64_t>(n, src.size));
    const size_t from_head = std::min(*got, src.head_len);
    if (from_head > 0)
        std::memcpy(out, src.head, from_head);
    if (*got > from_head)
        return src.read(src.self, out + from_head, *got - from_head, from_head, err);
    return DCMSEAL_OK;
}

/* The probe proper; DCMSEAL_OK unless the source failed. */
dcmseal_status probe(dcmseal_dicom_info *info, const dcmseal_dicom_source &src,
                     dcmseal_error *err)
{
    uint8_t start[kMagicEnd];
    size_t have = 0;
    const dcmseal_status st = peek(src, start, sizeof start, &have, err);
    const bool part10 = st == DCMSEAL_OK && have == kMagicEnd &&
                        std::memcmp(start + kPreambleLen, "DICM", 4) == 0;
    const bool dataset_like = st == DCMSEAL_OK && starts_like_dataset(start, have);
    explicit_bzero(start, sizeof start); /* a bare data set's first elements */
    if (st != DCMSEAL_OK) {
        set_class(info, DCMSEAL_DICOM_UNREADABLE, "the input could not be read");
        return st;
    }
    if (src.size == 0) {
        set_class(info, DCMSEAL_DICOM_NOT_DICOM, "empty input");
        return DCMSEAL_OK;
    }
    if (!part10 && !dataset_like) {
        set_class(info, DCMSEAL_DICOM_NOT_DICOM, "no DICM magic at offset 128");
        return DCMSEAL_OK;
    }
    for (int final = 0; final < 2; final++) {
        /* DcmFileFormat rather than DcmDataset also for a data set without
         * preamble: it may still start with a meta header, whose transfer
         * syntax may differ from the data set's. */
        Pass p(src);
        run_pass(p, final ? DCM_UndefinedTagKey : kAfterStudy);
        if (p.in.producer().failure() != DCMSEAL_OK) {
            if (err != NULL)
                *err = p.in.producer().failure_error();
            set_class(info, DCMSEAL_DICOM_UNREADABLE, "the input could not be read");
            return p.in.producer().failure();
        }
        if (judge(info, p, src, part10, final != 0))
            break;
    }
    if (info->klass != DCMSEAL_DICOM_OK)
        info->notice[0] = '\0'; /* a notice is about what is bound */
    return DCMSEAL_OK;
}

void clear(dcmseal_dicom_info *info)
{
    std::memset(info, 0, sizeof *info);
    info->klass = DCMSEAL_DICOM_OK;
}

} // namespace

extern "C" dcmseal_status dcmseal_dicom_probe_source(dcmseal_dicom_info *info,
                                                     const dcmseal_dicom_source *src,
                                                     dcmseal_error *err)
{
    if (info == NULL || src == NULL)
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "dicom probe: NULL argument");
    clear(info);
    if ((src->head == NULL && src->head_len > 0) || src->head_len > src->size ||
        (src->read == NULL && src->head_len < src->size)) {
        set_class(info, DCMSEAL_DICOM_UNREADABLE, "internal error");
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "dicom probe: inconsistent source");
    }
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
        return probe(info, *src, err);
    } catch (const std::bad_alloc &) {
        clear(info);
        set_class(info, DCMSEAL_DICOM_UNREADABLE, "out of memory");
        return dcmseal_fail(err, DCMSEAL_E_INTERNAL, "dicom probe: out of memory");
    } catch (...) {
        clear(info);
        set_class(info, DCMSEAL_DICOM_UNREADABLE, "internal error");
        return dcmseal_fail(err, DCMSEAL_E_INTERNAL, "dicom probe: unexpected exception");
    }
}

extern "C" dcmseal_status dcmseal_dicom_probe(dcmseal_dicom_info *info, const uint8_t *buf,
                                              size_t len, int complete, dcmseal_error *err)
{
    if (info == NULL || buf == NULL)
        return dcmseal_fail(err, DCMSEAL_E_USAGE, "dicom probe: NULL argument");
    const dcmseal_dicom_source src = {buf, len, len, complete == 0, NULL, NULL};
    return dcmseal_dicom_probe_source(info, &src, err);
}

extern "C" const char *dcmseal_dicom_class_name(dcmseal_dicom_class klass)
{
    switch (klass) {
    case DCMSEAL_DICOM_OK: return "DICOM";
    case DCMSEAL_DICOM_NOT_DICOM: return "not DICOM";
    case DCMSEAL_DICOM_TRUNCATED: return "truncated";
    case DCMSEAL_DICOM_DEFLATED: return "deflated";
    case DCMSEAL_DICOM_NO_IDENTITY: return "no identity";
    case DCMSEAL_DICOM_UNREADABLE: return "unreadable";
    case DCMSEAL_DICOM_INCOMPLETE: return "incomplete identity";
    }
    return "unknown";
}
