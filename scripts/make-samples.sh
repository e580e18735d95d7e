#!/usr/bin/env bash
# Writes a few small DICOM files (and one that is not DICOM) to DIR, with
# DCMTK's dump2dcm: the fallback sample data when ../shared/corpus is absent.
# Patient names are synthetic.
set -euo pipefail
dir=${1:?usage: make-samples.sh DIR}
mkdir -p "$dir"
for i in 1 2 3; do
    cat > "$dir/sample$i.dump" <<DUMP
(0002,0001) OB 00\\01
(0002,0002) UI =SecondaryCaptureImageStorage
(0002,0003) UI [2.25.$((1000 + i))]
(0002,0010) UI =LittleEndianExplicit
(0008,0016) UI =SecondaryCaptureImageStorage
(0008,0018) UI [2.25.$((1000 + i))]
(0010,0010) PN [Sample^Patient$i]
(0020,000d) UI [2.25.777]
(0028,0002) US 1
(0028,0010) US 2
(0028,0011) US 2
(0028,0100) US 16
(7fe0,0010) OW 0001\\0002\\0003\\000$i
DUMP
    dump2dcm +te "$dir/sample$i.dump" "$dir/IM0000$i"
    rm "$dir/sample$i.dump"
done
printf 'not a DICOM file: a sample opaque object\n' > "$dir/notes.txt"
