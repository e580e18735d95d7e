#!/usr/bin/env python3
"""The Orthanc suites' HTTP client (standard library only).

  upload URL OUT.json FILE...     POST each file to /instances; OUT.json maps
                                  each instance ID to the file it holds
  compare A B UPLOADS.json [any]  every instance of UPLOADS through A and B:
                                  /file (also against the original bytes,
                                  unless "any": after a C-STORE they are
                                  what the network carried), /tags, a
                                  rendered frame, DICOMweb WADO-RS; the same
                                  status and the same bytes
  files URL UPLOADS.json          /instances/ID/file of each equals its file
  load URL UPLOADS.json SECONDS THREADS [FRESH_DIR OUT.json]
                                  reads of every instance, byte-compared,
                                  and uploads, until SECONDS pass: of the
                                  files of FRESH_DIR (new instances, each
                                  once, recorded in OUT.json) or else of
                                  UPLOADS' files again (which overwrites:
                                  OverwriteInstances); prints the counts,
                                  exits 1 on any failed request
  index URL                       every instance the index lists reads back
  expect URL METHOD PATH CODE [FILE]
                                  one request must answer CODE

Exit status 0 when everything matched; the mismatches are printed.
"""

import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request


def request(url, method="GET", body=None, headers=None, timeout=60):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e).encode(), {}


def upload(base, out, files):
    """Several corpus files may be one instance (the same object in other
    transfer syntaxes): with OverwriteInstances, the last one stays, and
    OUT.json maps each instance to it."""
    accepted = {}
    refused = 0
    for f in files:
        with open(f, "rb") as fh:
            data = fh.read()
        code, body, _ = request(base + "/instances", "POST", data)
        if code == 200:
            accepted[json.loads(body)["ID"]] = f
        else:
            refused += 1
    with open(out, "w") as fh:
        json.dump(dict(sorted(accepted.items())), fh, indent=1)
    print(f"upload: {len(accepted)} instances accepted, {refused} files refused")
    return 0 if accepted else 1


def parts(body, headers):
    """The bodies of a multipart/related answer, in order."""
    ctype = headers.get("Content-Type", "")
    boundary = None
    for p in ctype.split(";"):
        p = p.strip()
        if p.startswith("boundary="):
            boundary = p.split("=", 1)[1].strip('"')
    if boundary is None:
        return [body]
    out = []
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, rest = chunk.partition(b"\r\n\r\n")
        out.append(rest[:-2] if rest.endswith(b"\r\n") else rest)
    return out


def views(base, iid):
    """(name, status, comparable bytes) for every way of reading |iid|."""
    out = []
    code, body, _ = request(f"{base}/instances/{iid}/file")
    out.append(("file", code, body))
    code, body, _ = request(f"{base}/instances/{iid}/tags")
    out.append(("tags", code, body))
    code, body, _ = request(f"{base}/instances/{iid}/frames/0/rendered",
                            headers={"Accept": "image/png"})
    out.append(("rendered", code, body))
    code, meta, _ = request(f"{base}/instances/{iid}")
    if code == 200:
        m = json.loads(meta)
        code, series, _ = request(f"{base}/series/{m['ParentSeries']}")
        s = json.loads(series)
        code, study, _ = request(f"{base}/studies/{s['ParentStudy']}")
        st = json.loads(study)
        uids = (st["MainDicomTags"]["StudyInstanceUID"], s["MainDicomTags"]["SeriesInstanceUID"],
                m["MainDicomTags"]["SOPInstanceUID"])
        code, body, h = request(
            f"{base}/dicom-web/studies/{uids[0]}/series/{uids[1]}/instances/{uids[2]}",
            headers={"Accept": 'multipart/related; type="application/dicom"; '
                               "transfer-syntax=*"})
        out.append(("wado-rs", code, b"\0".join(parts(body, h)) if code == 200 else b""))
        code, body, _ = request(f"{base}/dicom-web/studies/{uids[0]}/series/{uids[1]}/"
                                f"instances/{uids[2]}/metadata")
        # Bulk data URIs name the server's port.
        port = base.rsplit(":", 1)[1].encode()
        out.append(("wado-rs-metadata", code, body.replace(b":" + port + b"/", b":PORT/")))
    else:
        out.append(("instance", code, meta))
    return out


def compare(a, b, uploads, originals=True):
    with open(uploads) as fh:
        up = json.load(fh)
    bad = 0
    seen = {}
    for iid, f in sorted(up.items()):
        with open(f, "rb") as fh:
            original = fh.read()
        va, vb = views(a, iid), views(b, iid)
        for (name, ca, xa), (_, cb, xb) in zip(va, vb):
            seen.setdefault(name, {}).setdefault(ca, 0)
            seen[name][ca] += 1
            if ca != cb or xa != xb:
                bad += 1
                print(f"MISMATCH {f} {name}: {ca} vs {cb}, {len(xa)} vs {len(xb)} bytes")
            if name == "file" and (ca != 200 or (originals and xa != original)):
                bad += 1
                print(f"MISMATCH {f}: /file is not the original ({ca}, {len(xa)} bytes)")
            if name == "wado-rs" and ca == 200 and originals and xa != original:
                bad += 1
                print(f"MISMATCH {f}: WADO-RS is not the original")
    # Each way of reading must have worked for some instance, or the
    # comparison proves nothing.
    for name in ("file", "tags", "rendered", "wado-rs", "wado-rs-metadata"):
        if seen.get(name, {}).get(200, 0) == 0:
            bad += 1
            print(f"MISMATCH: no instance could be read as {name}")
    print(f"compare: {len(up)} instances, {bad} mismatches; answers {json.dumps(seen)}")
    return 0 if bad == 0 else 1


def files(base, uploads):
    with open(uploads) as fh:
        up = json.load(fh)
    bad = 0
    for iid, f in sorted(up.items()):
        with open(f, "rb") as fh:
            original = fh.read()
        code, body, _ = request(f"{base}/instances/{iid}/file")
        if code != 200 or body != original:
            bad += 1
            print(f"MISMATCH {f}: {code}, {len(body)} bytes")
    print(f"files: {len(up)} instances, {bad} mismatches")
    return 0 if bad == 0 else 1


def load(base, uploads, seconds, threads, fresh=None, out=None):
    """Reads of every instance of UPLOADS (byte-compared) and uploads, from
    |threads| threads until |seconds| pass: uploads of the files of |fresh|
    (new instances, each once; recorded in |out|), or else of UPLOADS' own
    files again (which overwrites them: OverwriteInstances)."""
    with open(uploads) as fh:
        known = [(i, f) for i, f in sorted(json.load(fh).items())]
    data = {}
    for _, f in known:
        with open(f, "rb") as fh:
            data[f] = fh.read()
    todo = sorted(os.path.join(fresh, f) for f in os.listdir(fresh)) if fresh else []
    made = {}
    counts = {"uploads": 0, "reads": 0, "failed": 0}
    errors = []
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def work(k):
        i = k
        while time.monotonic() < end:
            f = None
            with lock:
                if i % 3 == 0 and fresh is not None and todo:
                    f = todo.pop()
                elif i % 3 == 0 and fresh is None:
                    f = known[i % len(known)][1]
            if f is not None:
                if f not in data:
                    with open(f, "rb") as fh:
                        data[f] = fh.read()
                code, body, _ = request(base + "/instances", "POST", data[f])
                ok = code == 200
                what = "upload"
                if ok and fresh is not None:
                    with lock:
                        made[json.loads(body)["ID"]] = f
            else:
                iid, f = known[i % len(known)]
                code, body, _ = request(f"{base}/instances/{iid}/file")
                ok = code == 200 and body == data[f]
                what = "read"
            with lock:
                counts["uploads" if what == "upload" else "reads"] += 1
                if not ok:
                    counts["failed"] += 1
                    errors.append(f"{what} {f}: {code} {body[:200]!r}")
            i += threads

    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if out is not None:
        with open(out, "w") as fh:
            json.dump(made, fh, indent=1)
    for e in errors[:10]:
        print(e)
    print(f"load: {json.dumps(counts)}")
    return 0 if counts["failed"] == 0 and counts["uploads"] > 0 and counts["reads"] > 0 else 1


def index_reads(base):
    """Every instance the index lists reads back whole (200, and Orthanc
    parses it: its tags come back)."""
    code, body, _ = request(base + "/instances")
    if code != 200:
        print(f"index: {code}")
        return 1
    ids = json.loads(body)
    bad = 0
    for iid in ids:
        c1, _, _ = request(f"{base}/instances/{iid}/file")
        c2, _, _ = request(f"{base}/instances/{iid}/tags")
        if c1 != 200 or c2 != 200:
            bad += 1
            print(f"MISMATCH {iid}: file {c1}, tags {c2}")
    print(f"index: {len(ids)} instances, {bad} unreadable")
    return 0 if bad == 0 else 1


def expect(base, method, path, want, body_file=None):
    body = open(body_file, "rb").read() if body_file else None
    code, body, _ = request(base + path, method, body)
    if code != int(want):
        print(f"expect: {method} {path}: {code}, wanted {want}: {body[:300]!r}")
        return 1
    return 0


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "upload" and len(argv) >= 4:
        return upload(argv[2], argv[3], argv[4:])
    if cmd == "compare" and len(argv) in (5, 6):
        return compare(argv[2], argv[3], argv[4], len(argv) == 5)
    if cmd == "files" and len(argv) == 4:
        return files(argv[2], argv[3])
    if cmd == "load" and len(argv) in (6, 8):
        return load(argv[2], argv[3], float(argv[4]), int(argv[5]), *argv[6:])
    if cmd == "index" and len(argv) == 3:
        return index_reads(argv[2])
    if cmd == "expect" and len(argv) in (6, 7):
        return expect(*argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
