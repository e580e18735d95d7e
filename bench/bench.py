#!/usr/bin/env python3
"""dcmseal's benchmark: every figure against the physical limit and against
peers, measured in one run on one machine. bench/run.sh builds and calls this.

Rows (each figure the median of --runs runs; each ratio the median of the
ratios measured within each run, so that a noisy machine moves a figure and
its reference together):

  1  crypto path, in memory: bench_stream (raw EVP AES-256-GCM loops, one a
     direction, vs dcmseal's streaming encrypt/decrypt), 1 thread and all cores
  2  one large DICOM object: cp (+ fsync) vs dcmseal encrypt/decrypt; peers
     openssl cms (RSA-OAEP recipient, AES-256-GCM, -stream) and age (X25519)
  3  an archive of many DICOM files: cp -r (+ syncfs) vs encrypt/decrypt/
     verify/rewrap -r; peer openssl cms per file, xargs -P <cores>
  4  token-bound: the loops of `dcmseal bench` (same token, same key, same
     number of sessions) vs objects/s of decrypt -r (against the raw
     C_Decrypt loop, with the proof check of format v2) and rewrap -r
     (against the in-token rewrap loop, C_UnwrapKey + C_WrapKey, with the
     proof check and the new proof: what rewrap asks of the token), for RSA-2048
     and RSA-3072 KEKs; rewrap -r also by CPU time per object, which a
     shared machine disturbs less
  5  peak resident memory (ru_maxrss, through GNU time) of the dcmseal runs
  6  Orthanc with the dcmseal storage plugin against plain Orthanc on the
     same files: REST ingest, whole-file reads with a warm DEK cache, reads
     of small files with the cache off (against the C_Decrypt loop on as
     many sessions) and on, and the peak RSS that the plugin adds for a
     small and a large instance (orthanc.py drives the servers)

Durability is made equal: after every command that writes, the harness
fsyncs what it wrote (a file and its directory) or syncfs()es the file
system of an output tree, inside the timing, for dcmseal (which has already
fsynced each output and its directory) and for cp and the peers alike.
Before every timed command the harness calls sync() (untimed) so that no
command pays for an earlier one's write-back, and every run reads its
inputs once first so that they come from the page cache.

Inputs are made under the work directory and kept for the next invocation
(they are never committed); the SoftHSM token is made anew each time.
Exit status: 0 when every row was measured (missed targets included), 1
when a command failed or a row is missing, 2 for bad usage.
"""

import argparse
import ctypes
import datetime
import json
import os
import re
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1 << 20
MEMORY_BUDGET = 32 * MIB
# Row 4's small files: objects whose RSA unwrap outweighs their bytes.
SMALL_MAX = 64 << 10

# (large object MiB, archive files, small-file archive files, bench_stream
#  MiB per thread, runs, bench_stream runs (each phase is short, so more of
#  them), objects for the raw unwrap loop, row 6: files of each archive sent
#  to Orthanc and the size of its large instance)
MODES = {
    "full": dict(large_mib=1024, files=10000, small_files=5000, stream_mib=512, runs=3,
                 stream_runs=9, objects=1000, orthanc_files=2000, orthanc_mib=256),
    "quick": dict(large_mib=8, files=40, small_files=20, stream_mib=8, runs=1, stream_runs=1,
                  objects=20, orthanc_files=20, orthanc_mib=8),
}


class Failure(Exception):
    pass


def say(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


_libc = ctypes.CDLL(None, use_errno=True)


def syncfs(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.syncfs(fd) != 0:
            raise OSError(ctypes.get_errno(), "syncfs failed", path)
    finally:
        os.close(fd)


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rm(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def warm(*paths):
    """Reads every file below |paths| once: the inputs come from the cache."""
    for p in paths:
        files = [p] if os.path.isfile(p) else (
            os.path.join(d, f) for d, _, fs in os.walk(p) for f in fs)
        for f in files:
            with open(f, "rb", buffering=0) as fh:
                while fh.read(4 * MIB):
                    pass


def tail(path, n=800):
    try:
        with open(path, "rb") as f:
            return f.read()[-n:].decode(errors="replace").strip()
    except OSError:
        return ""


class Bench:
    def __init__(self, a):
        self.a = a
        self.cores = os.cpu_count() or 1
        self.work = os.path.abspath(a.work)
        self.inputs = os.path.join(self.work, "inputs")
        self.out = os.path.join(self.work, "out")
        self.logs = os.path.join(self.work, "logs")
        self.trash = os.path.join(self.work, "trash")  # see discard
        self.discarded = 0
        self.env = dict(os.environ)
        self.samples = {}   # key -> [per-run value]
        self.maxrss = {}    # key -> [per-run bytes]
        self.info = {}
        self.made_templates = None

    # ---- running things ---------------------------------------------------

    def log_path(self, name):
        return os.path.join(self.logs, name + ".log")

    def run(self, cmd, name, stdout=subprocess.DEVNULL, cwd=None):
        """An untimed command; its stderr goes to logs/NAME.log."""
        with open(self.log_path(name), "ab") as err:
            p = subprocess.run(cmd, stdout=stdout, stderr=err, env=self.env, cwd=cwd)
        if p.returncode != 0:
            raise Failure(f"{name}: {' '.join(cmd)}: exit {p.returncode}: "
                          f"{tail(self.log_path(name))}")
        return p

    def timed(self, key, cmd, out=None, tree=None, cwd=None):
        """Runs |cmd| and records its wall time under |key|: from start to
        exit plus the harness's fsync of |out| (a file and its directory) or
        syncfs of |tree|'s file system. Also records the child's peak RSS."""
        os.sync()
        # GNU time forks the command from a small process: a child forked
        # from Python would inherit its resident set in ru_maxrss (the high-
        # water mark survives execve).
        rss = os.path.join(self.logs, key + ".rss")
        with open(self.log_path(key), "ab") as err:
            t0 = time.perf_counter()
            # A session of its own, so that an interrupted benchmark takes
            # the whole command (xargs and its children too) down with it.
            p = subprocess.Popen(["/usr/bin/time", "-f", "%M %U %S", "-o", rss, *cmd],
                                 stdout=subprocess.DEVNULL, stderr=err, env=self.env, cwd=cwd,
                                 start_new_session=True)
            try:
                p.wait()
            except BaseException:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                raise
            if p.returncode == 0 and out is not None:
                fsync_path(out)
                fsync_path(os.path.dirname(out))
            if p.returncode == 0 and tree is not None:
                syncfs(tree)
            seconds = time.perf_counter() - t0
        if p.returncode != 0:
            raise Failure(f"{key}: {' '.join(cmd)}: exit {p.returncode}: "
                          f"{tail(self.log_path(key))}")
        self.samples.setdefault(key, []).append(seconds)
        with open(rss) as f:
            kib, user, system = f.read().split()[-3:]
        self.maxrss.setdefault(key, []).append(int(kib) * 1024)
        self.samples.setdefault(key + ".cpu", []).append(float(user) + float(system))
        return seconds

    def record(self, key, value):
        self.samples.setdefault(key, []).append(value)

    def dcmseal(self, *args):
        return [self.a.dcmseal, *args]

    # ---- machine ------------------------------------------------------------

    def machine(self):
        def first(cmd, default="?"):
            try:
                out = subprocess.run(cmd, capture_output=True, text=True, env=self.env)
                text = (out.stdout or out.stderr).strip().splitlines()
                return text[0].strip() if text else default
            except OSError:
                return default

        model = "?"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem_kib = int(f.readline().split()[1])
        fs = first(["findmnt", "-n", "-o", "FSTYPE,SOURCE", "--target", self.work])
        dcmtk = first(["dcmdump", "--version"]).replace("$", "").strip()
        self.info = {
            "cpu": f"{model}, {self.cores} cores, {mem_kib / (1 << 20):.1f} GiB RAM",
            "kernel": f"Linux {platform.release()} {platform.machine()}",
            "openssl": first(["openssl", "version"]),
            "softhsm": ("openCryptoki " + first(["dpkg-query", "-W", "-f", "${Version}",
                                                  "opencryptoki"])
                        if os.environ.get("DCMSEAL_TEST_TOKEN") == "opencryptoki"
                        else "SoftHSM " + first(["softhsm2-util", "--version"])),
            "dcmtk": dcmtk,
            "age": "age " + first(["age", "--version"]),
            "cp": first(["cp", "--version"]),
            "orthanc": first(["Orthanc", "--version"]),
            "python": "Python " + platform.python_version(),
            "storage": f"{fs} (work directory {os.path.relpath(self.work, ROOT)})",
        }

    def load(self):
        """The load average and what else was busy: a shared machine."""
        avg = os.getloadavg()[0]
        ps = subprocess.run(["ps", "-eo", "pcpu,ni,comm", "--sort=-pcpu", "--no-headers"],
                            capture_output=True, text=True).stdout.splitlines()
        busy = []
        for line in ps[:8]:
            parts = line.split(None, 2)
            if len(parts) == 3 and float(parts[0]) >= 20 and parts[2] not in ("ps", "python3"):
                busy.append(f"{parts[2]} ({parts[0]}% CPU, nice {parts[1]})")
        return f"{avg:.2f}" + (f"; busy: {', '.join(busy)}" if busy else "")

    # ---- token and keys -----------------------------------------------------

    def token(self):
        # The implementation DCMSEAL_TEST_TOKEN names (tests/integration/token.sh);
        # for openCryptoki, bench/run.sh has put this process in its namespaces.
        hsm = os.path.join(self.work, "hsm")
        rm(hsm)
        script = (f'. "{ROOT}/tests/integration/token.sh" && test_token "$1" bench && '
                  'printf "%s\\n%s\\n%s\\n" "$DCMSEAL_TOKEN" "$TOKEN_MODULE" '
                  '"${SOFTHSM2_CONF:-}"')
        p = subprocess.run(["bash", "-c", script, "bash", hsm], capture_output=True,
                           text=True, check=True)
        uri, module, conf = (p.stdout.splitlines() + ["", ""])[:3]
        if conf:
            self.env["SOFTHSM2_CONF"] = conf
        self.env["DCMSEAL_TOKEN"] = uri
        self.env.pop("DCMSEAL_KEY", None)
        for bits in (2048, 3072):
            name = f"kek{bits}"
            self.run(self.dcmseal("key", "create", name, "--bits", str(bits)), "setup")
            self.run(self.dcmseal("key", "rotate", name, "--bits", str(bits)), "setup")
        # Row 4's "before": a key as an earlier dcmseal made it, a key pair
        # and nothing else (no origin key), whose objects are format v1.
        self.run(self.dcmseal("key", "create", "kek2048v1", "--bits", "2048"), "setup")
        with open(os.path.join(hsm, "pin")) as f:
            pin = f.read().strip()
        for typ, extra in (("secrkey", ["--id", b"dcmseal-origin:kek2048v1:v1".hex()]),
                           ("secrkey", ["--id", b"dcmseal-names:kek2048v1".hex()]),
                           ("data", ["--application-label", "dcmseal-origin-policy"])):
            self.run(["pkcs11-tool", "--module", module, "--token-label", "bench", "--login",
                      "--pin", pin, "--delete-object", "--type", typ, "--label", "kek2048v1"]
                     + extra, "setup")

    # ---- inputs -------------------------------------------------------------

    def stamp_ok(self, path, want):
        try:
            with open(path) as f:
                return json.load(f) == want
        except (OSError, ValueError):
            return False

    def write_stamp(self, path, value):
        with open(path, "w") as f:
            json.dump(value, f)

    def large_object(self):
        return self.multiframe("large", self.a.large_mib)

    def multiframe(self, name, mib):
        """A multi-frame 16-bit image of |mib| MiB (512x512 frames of noise)
        in inputs/NAME.dcm, written by dump2dcm from a dump whose pixel data
        is a file. Returns its path."""
        path = os.path.join(self.inputs, name + ".dcm")
        stamp = os.path.join(self.inputs, name + ".json")
        want = {"mib": mib, "format": 1}
        if os.path.exists(path) and self.stamp_ok(stamp, want):
            return path
        say(f"making a {mib} MiB multi-frame DICOM object with dump2dcm")
        frames = mib * 2  # 512 x 512 x 2 bytes = 512 KiB a frame
        raw = os.path.join(self.inputs, "pixels.raw")
        with open(raw, "wb") as f:
            for _ in range(frames):
                f.write(os.urandom(512 * 512 * 2))
        uid = lambda: f"2.25.{uuid.uuid4().int}"
        sop = uid()
        dump = os.path.join(self.inputs, name + ".dump")
        with open(dump, "w") as f:
            f.write(f"""(0002,0001) OB 00\\01
(0002,0002) UI =MultiframeGrayscaleWordSecondaryCaptureImageStorage
(0002,0003) UI [{sop}]
(0002,0010) UI =LittleEndianExplicit
(0008,0016) UI =MultiframeGrayscaleWordSecondaryCaptureImageStorage
(0008,0018) UI [{sop}]
(0008,0060) CS [OT]
(0010,0010) PN [Bench^Large]
(0010,0020) LO [BENCH0001]
(0020,000d) UI [{uid()}]
(0020,000e) UI [{uid()}]
(0020,0013) IS [1]
(0028,0002) US 1
(0028,0004) CS [MONOCHROME2]
(0028,0008) IS [{frames}]
(0028,0010) US 512
(0028,0011) US 512
(0028,0100) US 16
(0028,0101) US 16
(0028,0102) US 15
(0028,0103) US 0
(7fe0,0010) OW ={raw}
""")
        self.run(["dump2dcm", "+te", dump, path], "inputs")
        os.unlink(raw)
        os.unlink(dump)
        self.write_stamp(stamp, want)
        return path

    def templates(self):
        """The corpus files DCMTK can give a new SOP Instance UID and that
        dcmseal's probe takes for DICOM; DICOMDIRs and texts are left out.
        Made once per invocation, for both archives."""
        if self.made_templates is not None:
            return self.made_templates
        corpus = os.path.abspath(self.a.corpus)
        tdir = os.path.join(self.inputs, "templates")
        rm(tdir)
        os.makedirs(tdir)
        names = []
        for d, _, fs in sorted(os.walk(corpus)):
            for f in sorted(fs):
                if f.upper() == "DICOMDIR" or f.lower().endswith((".md", ".txt")) or \
                        f.upper().startswith(("LICENSE", "README")):
                    continue
                rel = os.path.relpath(os.path.join(d, f), corpus)
                name = rel.replace("/", "_")
                dst = os.path.join(tdir, name)
                shutil.copyfile(os.path.join(d, f), dst)
                os.chmod(dst, 0o644)
                p = subprocess.run(["dcmodify", "-q", "-gin", "-nb", dst],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                if p.returncode == 0:
                    names.append(name)
                else:
                    os.unlink(dst)
        # What dcmseal's probe says, from the report of a tree run.
        report = os.path.join(self.work, "templates.jsonl")
        enc = os.path.join(self.out, "templates.enc")
        rm(enc)
        self.run(self.dcmseal("encrypt", "-r", "-q", "--key", "kek2048", tdir, "-o", enc,
                              "--report", report), "setup")
        dicom = set()
        with open(report) as f:
            for line in f:
                r = json.loads(line)
                if r.get("kind") == "dicom":
                    dicom.add(os.path.basename(r["path"]))
        rm(enc)
        kept = [n for n in names if n in dicom]
        if not kept:
            raise Failure(f"no usable DICOM file in {corpus}")
        self.made_templates = tdir, kept
        return self.made_templates

    def archive(self, name, n, max_bytes=None):
        """|n| DICOM files in PATIENT/STUDY/SERIES folders under inputs/NAME,
        a third of them without an extension, each a corpus file (of at most
        |max_bytes|) with a new SOP Instance UID (dcmodify -gin, also in the
        meta header). Returns its path."""
        arch = os.path.join(self.inputs, name)
        stamp = arch + ".json"
        corpus_names = sorted(os.path.relpath(os.path.join(d, f), self.a.corpus)
                              for d, _, fs in os.walk(self.a.corpus) for f in fs)
        want = {"files": n, "corpus": corpus_names, "format": 1}
        if max_bytes is not None:
            want["max_bytes"] = max_bytes
        if os.path.isdir(arch) and self.stamp_ok(stamp, want):
            return arch
        say(f"making {name}: {n} DICOM files from {self.a.corpus}")
        rm(arch)
        rm(stamp)
        tdir, kept = self.templates()
        if max_bytes is not None:
            kept = [k for k in kept if os.path.getsize(os.path.join(tdir, k)) <= max_bytes]
            if not kept:
                raise Failure(f"no corpus DICOM file of at most {max_bytes} bytes")
        for i in range(n):
            d = os.path.join(arch, f"PATIENT{i // 100:04d}", f"STUDY{i % 100 // 20}",
                             f"SERIES{i % 20 // 5}")
            os.makedirs(d, exist_ok=True)
            name = f"IM{i:05d}" + ("" if i % 3 == 0 else ".dcm")
            shutil.copyfile(os.path.join(tdir, kept[i % len(kept)]), os.path.join(d, name))
        find = subprocess.Popen(["find", arch, "-type", "f", "-print0"],
                                stdout=subprocess.PIPE)
        xargs = subprocess.run(["xargs", "-0", "-P", str(self.cores), "-n", "250",
                                "dcmodify", "-q", "-gin", "-nb"], stdin=find.stdout,
                               stderr=subprocess.PIPE)
        find.wait()
        if xargs.returncode != 0 or find.returncode != 0:
            raise Failure(f"dcmodify failed: {xargs.stderr.decode(errors='replace')[-500:]}")
        # Every object has its own SOP Instance UID.
        find = subprocess.Popen(["find", arch, "-type", "f", "-print0"],
                                stdout=subprocess.PIPE)
        dump = subprocess.run(["xargs", "-0", "-n", "500", "dcmdump", "-q", "-s",
                               "+P", "0008,0018"], stdin=find.stdout, capture_output=True,
                              text=True)
        find.wait()
        uids = [l.split("[", 1)[1].split("]", 1)[0] for l in dump.stdout.splitlines()
                if l.startswith("(0008,0018)")]
        if len(uids) != n or len(set(uids)) != n:
            raise Failure(f"{name}: {len(set(uids))} distinct SOP Instance UIDs "
                          f"in {n} files")
        self.write_stamp(stamp, want)
        return arch

    def inputs_describe(self):
        total = sum(os.path.getsize(os.path.join(d, f))
                    for d, _, fs in os.walk(self.arch) for f in fs)
        self.arch_bytes = total
        small_bytes = sum(os.path.getsize(os.path.join(d, f))
                          for d, _, fs in os.walk(self.smalls) for f in fs)
        large = ""
        if self.large is not None:
            self.large_bytes = os.path.getsize(self.large)
            large = (f"one multi-frame DICOM object of {self.large_bytes / MIB:.0f} MiB "
                     f"({self.a.large_mib * 2} frames of 512x512x16 bit, dump2dcm); ")
        return (large + f"an archive of {self.a.files} DICOM files, {total / MIB:.0f} MiB "
                f"(PATIENT/STUDY/SERIES folders, a third without extension), copies of "
                f"corpus files with new SOP Instance UIDs (dcmodify -gin); for row 4, "
                f"{self.a.small_files} small files made the same way from the corpus files "
                f"of at most {SMALL_MAX >> 10} KiB, {small_bytes / MIB:.1f} MiB" +
                (f"; for row 6, the first {self.a.orthanc_files} files of each archive and a "
                 f"{self.a.orthanc_mib} MiB multi-frame object" if 6 in self.a.rows else ""))

    def peers_setup(self):
        """Keys for the peers, and the inputs of their decrypt runs."""
        self.cms_key = os.path.join(self.work, "cms.key")
        self.cms_crt = os.path.join(self.work, "cms.crt")
        self.run(["openssl", "req", "-x509", "-newkey", "rsa:3072", "-nodes", "-keyout",
                  self.cms_key, "-out", self.cms_crt, "-subj", "/CN=dcmseal-bench",
                  "-days", "2"], "setup")
        self.age_key = os.path.join(self.work, "age.key")
        rm(self.age_key)
        self.run(["age-keygen", "-o", self.age_key], "setup")
        self.age_pub = subprocess.run(["age-keygen", "-y", self.age_key], capture_output=True,
                                      text=True, check=True).stdout.strip()

    def cms_encrypt(self, src, dst):
        return ["openssl", "cms", "-encrypt", "-binary", "-stream", "-aes-256-gcm",
                "-recip", self.cms_crt, "-keyopt", "rsa_padding_mode:oaep",
                "-outform", "DER", "-in", src, "-out", dst]

    def cms_decrypt(self, src, dst):
        return ["openssl", "cms", "-decrypt", "-binary", "-inform", "DER", "-in", src,
                "-recip", self.cms_crt, "-inkey", self.cms_key, "-out", dst]

    def prepare(self):
        """Untimed: encrypted inputs for the decrypt runs, each checked once."""
        L = self.large
        self.large_enc = os.path.join(self.inputs, "large.dcms")
        self.large_cms = os.path.join(self.inputs, "large.cms")
        self.large_age = os.path.join(self.inputs, "large.age")
        for p in (self.large_enc, self.large_cms, self.large_age):
            rm(p)
        self.run(self.dcmseal("encrypt", "--key", "kek3072", L, "-o", self.large_enc), "setup")
        info = subprocess.run(self.dcmseal("inspect", "--json", self.large_enc),
                              capture_output=True, text=True, env=self.env, check=True)
        if json.loads(info.stdout)["kind"] != "dicom":
            raise Failure(f"{L}: dcmseal's probe does not take it for DICOM")
        self.run(self.cms_encrypt(L, self.large_cms), "setup")
        self.run(["age", "-r", self.age_pub, "-o", self.large_age, L], "setup")
        # The RSA-2048 archive for row 4; RSA-3072 is row 3's own encrypt -r.
        self.enc2048 = os.path.join(self.inputs, "archive.enc2048")
        rm(self.enc2048)
        self.run(self.dcmseal("encrypt", "-r", "-q", "--key", "kek2048", "--jobs",
                              str(self.cores), self.arch, "-o", self.enc2048), "setup")
        # Row 4's small files, under each KEK, and as format v1 (no origin
        # proof) under a key made before origin keys.
        self.small_enc = {}
        for bits in (2048, 3072):
            enc = self.small_enc[bits] = os.path.join(self.inputs, f"small.enc{bits}")
            rm(enc)
            self.run(self.dcmseal("encrypt", "-r", "-q", "--key", f"kek{bits}", "--jobs",
                                  str(self.cores), self.smalls, "-o", enc), "setup")
        self.small_v1 = os.path.join(self.inputs, "small.enc2048v1")
        rm(self.small_v1)
        self.run(self.dcmseal("encrypt", "-r", "-q", "--key", "kek2048v1", "--jobs",
                              str(self.cores), self.smalls, "-o", self.small_v1), "setup")
        # Memory whatever the size: the same commands on one small object.
        small = next(os.path.join(d, f) for d, _, fs in sorted(os.walk(self.arch))
                     for f in sorted(fs))
        self.one_small_enc = os.path.join(self.out, "small.dcms")
        self.one_small = small

    # ---- the rows -----------------------------------------------------------

    def row_stream(self):
        say("row 1: bench_stream")
        p = subprocess.run([self.a.bench_stream, "--mib", str(self.a.stream_mib), "--runs",
                            str(self.a.stream_runs), "--threads", str(self.cores), "--json"],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise Failure(f"bench_stream: exit {p.returncode}: {p.stderr.strip()[-500:]}")
        res = json.loads(p.stdout)
        for run in res["runs"]:
            for t, label in (("1", "1"), (str(self.cores), "all")):
                for ph in ("raw", "raw_decrypt", "encrypt", "decrypt"):
                    self.record(f"stream.{ph}.{label}", run[t][ph])

    def row_large(self, first):
        L, O = self.large, self.out
        warm(L, self.large_enc, self.large_cms, self.large_age)
        outs = {k: os.path.join(O, "large." + k) for k in
                ("cp", "enc", "dec", "cms", "cmsdec", "age", "agedec")}
        for p in outs.values():
            rm(p)
        cmds = [
            ("large.cp", ["cp", L, outs["cp"]], outs["cp"]),
            ("large.encrypt", self.dcmseal("encrypt", "--key", "kek3072", L, "-o", outs["enc"]),
             outs["enc"]),
            ("large.decrypt", self.dcmseal("decrypt", self.large_enc, "-o", outs["dec"]),
             outs["dec"]),
            ("large.cms.encrypt", self.cms_encrypt(L, outs["cms"]), outs["cms"]),
            ("large.cms.decrypt", self.cms_decrypt(self.large_cms, outs["cmsdec"]),
             outs["cmsdec"]),
            ("large.age.encrypt", ["age", "-r", self.age_pub, "-o", outs["age"], L],
             outs["age"]),
            ("large.age.decrypt", ["age", "-d", "-i", self.age_key, "-o", outs["agedec"],
                                   self.large_age], outs["agedec"]),
        ]
        for key, cmd, out in cmds:
            if self.a.no_peers and key.count(".") == 2:
                continue
            self.timed(key, cmd, out=out)
            if first and key.endswith("decrypt"):
                self.run(["cmp", L, out], "check")
            rm(out)

    # This VM's ext4 has no journal, and ext4 without one does not reuse an
    # inode freed less than about 30 s before: creating files right after
    # deleting thousands scans past them, which made every tree run that
    # followed a deletion slower (cp -r too) by as much as a fifth of its
    # CPU. So outputs are set aside between the timed commands of a run and
    # deleted before the next run, which then waits that long first.
    def discard(self, path):
        if os.path.lexists(path):
            os.makedirs(self.trash, exist_ok=True)
            self.discarded += 1
            os.rename(path, os.path.join(self.trash, str(self.discarded)))

    def empty_trash(self, wait):
        """Deletes what was set aside; with |wait| (full mode: each run,
        the first one after prepare() replaced the inputs), waits 31 s."""
        rm(self.trash)
        if wait and not self.a.quick:
            say("waiting 31 s after deleting files (see discard)")
            time.sleep(31)

    def row_archive(self, run):
        A, O, N = self.arch, self.out, str(self.cores)
        enc = os.path.join(O, "enc3072")
        for d in ("cp", "enc3072", "dec3072", "cms", "dec2048"):
            self.discard(os.path.join(O, d))
        warm(A, self.enc2048)
        self.timed("archive.cp", ["cp", "-r", A, os.path.join(O, "cp")], tree=O)
        self.discard(os.path.join(O, "cp"))
        self.timed("archive.encrypt", self.dcmseal("encrypt", "-r", "-q", "--key", "kek3072",
                                                   "--jobs", N, A, "-o", enc), tree=O)
        self.timed("archive.decrypt", self.dcmseal("decrypt", "-r", "-q", "--jobs", N, enc,
                                                   "-o", os.path.join(O, "dec3072")), tree=O)
        if run == 0:
            self.run(["diff", "-r", "-q", A, os.path.join(O, "dec3072")], "check")
        self.discard(os.path.join(O, "dec3072"))
        self.timed("archive.verify", self.dcmseal("verify", "-r", "-q", "--jobs", N, enc),
                   tree=O)
        # encrypt -r wraps under the primary, v2: rewrap moves every object to
        # v1, the same RSA work as v1 -> v2.
        self.timed("archive.rewrap", self.dcmseal("rewrap", "-r", "-q", "--jobs", N,
                                                  "--to-version", "1", enc), tree=O)
        self.unwrap_loop("kek3072")
        # The peer: one openssl process per file, <cores> at a time. Its
        # output folders are made beforehand, untimed.
        cms = os.path.join(O, "cms")
        for d, _, _ in () if self.a.no_peers else os.walk(A):
            os.makedirs(os.path.join(cms, os.path.relpath(d, A)), exist_ok=True)
        script = ('cd "$1" && find . -type f -print0 | xargs -0 -P "$2" -I{} '
                  + " ".join(self.cms_encrypt("{}", '"$3"/{}')))
        if not self.a.no_peers:
            self.timed("archive.cms.encrypt", ["sh", "-c", script, "sh", A, N, cms], tree=O)
        self.discard(cms)
        # RSA-2048: decrypt -r and rewrap -r of the archive encrypted in
        # prepare(), which goes back and forth between v2 and v1.
        self.timed("archive2048.decrypt", self.dcmseal(
            "decrypt", "-r", "-q", "--jobs", N, self.enc2048, "-o",
            os.path.join(O, "dec2048")), tree=O)
        self.discard(os.path.join(O, "dec2048"))
        self.timed("archive2048.rewrap", self.dcmseal(
            "rewrap", "-r", "-q", "--jobs", N, "--to-version", "1" if run % 2 == 0 else "2",
            self.enc2048), tree=O)
        self.unwrap_loop("kek2048")
        # Small files, where the token bounds decrypt -r and verify -r: the
        # data is read and written, but is too little to count. Next to
        # them, the unwrap loop they are measured against; decrypt -r with
        # each durability (group commit, the default, and a flush per
        # file); with --baseline, another build's decrypt -r and verify -r
        # (the order alternates between runs, so drift favours none).
        for bits, enc_small in self.small_enc.items():
            out = os.path.join(O, f"small{bits}")
            warm(enc_small)
            self.unwrap_loop(f"kek{bits}", prefix="smallloop")
            todo = [("decrypt", self.a.dcmseal, ["decrypt", "--durability", "group"]),
                    ("decrypt-file", self.a.dcmseal, ["decrypt", "--durability", "file"]),
                    ("verify", self.a.dcmseal, ["verify"])]
            if self.a.baseline:
                todo += [("baseline-decrypt", self.a.baseline, ["decrypt"]),
                         ("baseline-verify", self.a.baseline, ["verify"])]
            for name, binary, args in todo if run % 2 == 0 else reversed(todo):
                self.discard(out)
                cmd = [binary, args[0], "-r", "-q", "--jobs", N, *args[1:], enc_small]
                self.timed(f"small{bits}.{name}",
                           cmd + (["-o", out] if args[0] == "decrypt" else []), tree=O)
                self.discard(out)
        # What origin proofs cost a tree run of small files, in the same run:
        # decrypt of format v1 objects (no proof) beside v2 above, and
        # encrypt with and without concealed names.
        out = os.path.join(O, "small-v1")
        self.discard(out)
        warm(self.small_v1)
        self.timed("small2048v1.decrypt", self.dcmseal(
            "decrypt", "-r", "-q", "--jobs", N, self.small_v1, "-o", out), tree=O)
        self.discard(out)
        self.unwrap_loop("kek2048v1")
        for key, extra in (("small2048.encrypt", []),
                           ("small2048conceal.encrypt", ["--conceal-names"])):
            out = os.path.join(O, "small-enc")
            self.discard(out)
            warm(self.smalls)
            self.timed(key, self.dcmseal("encrypt", "-r", "-q", "--key", "kek2048", "--jobs", N,
                                         self.smalls, "-o", out, *extra), tree=O)
            self.discard(out)
        if run == 0:
            for key in ("archive.encrypt", "archive.decrypt", "archive.verify",
                        "archive.rewrap", "archive2048.decrypt", "archive2048.rewrap"):
                self.check_summary(key, self.a.files)
            for key in list(self.samples):
                if re.fullmatch(r"small\d+\.[a-z-]+", key):
                    self.check_summary(key, self.a.small_files)
            for key in ("small2048v1.decrypt", "small2048conceal.encrypt"):
                self.check_summary(key, self.a.small_files)
        self.discard(enc)

    def check_summary(self, key, n):
        """Each tree run did every one of its |n| files, and none failed."""
        text = tail(self.log_path(key), 4000)
        verb = {"encrypt": "encrypted", "decrypt": "decrypted", "verify": "verified",
                "rewrap": "rewrapped"}[key.rsplit(".", 1)[1].removeprefix("baseline-")
                                       .split("-")[0]]
        if f": {n} files: {n} {verb}, 0 failed" not in text:
            raise Failure(f"{key}: not every file was {verb}: {text[-400:]}")

    def unwrap_loop(self, kek, prefix="loop"):
        """The token's limit: `dcmseal bench` on the same key and token, as
        many sessions as the tree runs have workers."""
        p = subprocess.run(self.dcmseal("bench", "--key", kek, "--json", "--sessions",
                                        str(self.cores), "--objects", str(self.a.objects)),
                           capture_output=True, text=True, env=self.env)
        if p.returncode != 0:
            raise Failure(f"dcmseal bench --key {kek}: exit {p.returncode}: {p.stderr[-400:]}")
        res = json.loads(p.stdout)
        for r in res["results"]:
            if r["sessions"] == self.cores and r["objects_per_s"] is not None:
                self.record(f"{prefix}.{kek}.{r['operation']}", r["objects_per_s"])
                self.record(f"{prefix}.{kek}.{r['operation']}.cpu", r["cpu_ms_per_object"] / 1e3)

    def row_orthanc(self, run):
        """Row 6. The same files through a plain Orthanc and one with the
        plugin, each new and empty, both with Orthanc's own storage cache
        off so that every read reaches the storage area; the plugin reaches
        SoftHSM directly, as the C_Decrypt loop does. Ingest times end with
        a syncfs of the storage, as every row's writes do (the plugin has
        already flushed each file before Orthanc acknowledged it)."""
        import orthanc as O  # bench/orthanc.py

        N, threads = self.cores, 2 * self.cores
        work = os.path.join(self.out, "orthanc")
        os.makedirs(work, exist_ok=True)
        plugin = os.path.abspath(self.a.plugin)
        key = "kek2048"

        def section(**kw):
            return dict({"Token": self.env["DCMSEAL_TOKEN"], "Key": key, "Sessions": N,
                         "DekCacheMaxAge": 3600}, **kw)

        servers = []

        def server(name, sec):
            srv = O.Orthanc(work, name, plugin, sec, self.env)
            servers.append(srv)
            srv.reset()
            return srv.start()

        def ingest(srv, files):
            os.sync()
            t0 = time.perf_counter()
            _, ids = O.upload(srv, files, threads)
            syncfs(srv.dir)
            return len(files) / (time.perf_counter() - t0), ids

        files, smalls = self.orthanc_files, self.orthanc_smalls
        self.orthanc_refused = None
        try:
            # Ingest, then whole-file reads: a first pass warms the page
            # cache (and the plugin's DEK cache), the second is timed.
            for name, sec in (("plain", None),
                              ("sealed", section(DekCacheSize=max(len(files), 1024)))):
                srv = server(name, sec)
                rate, ids = ingest(srv, files)
                self.record(f"orthanc.{name}.ingest", rate)
                # Some corpus templates lack a study or series UID: both
                # servers refuse the same files, and read the others.
                refused = [f for f, i in zip(files, ids) if i is None]
                if self.orthanc_refused is not None and refused != self.orthanc_refused:
                    raise Failure(f"row 6: the servers refused different files "
                                  f"({len(refused)} vs {len(self.orthanc_refused)})")
                self.orthanc_refused = refused
                kept = [(f, i) for f, i in zip(files, ids) if i is not None]
                ids = [i for _, i in kept]
                O.read(srv, ids, threads)
                self.record(f"orthanc.{name}.read", len(ids) / O.read(srv, ids, threads))
                if run == 0 and sec is not None:
                    want = {}
                    for f, i in kept:
                        with open(f, "rb") as fh:
                            want[i] = fh.read()
                    O.read(srv, ids, threads, expect=want)
                srv.kill()  # thrown away: a clean shutdown would only cost time
            # Small files: with the DEK cache, then without (the same
            # storage), where each read costs an unwrap in the token.
            srv = server("small", section(DekCacheSize=max(len(smalls), 1024)))
            _, ids_all = O.upload(srv, smalls, threads)
            ids = [i for i in ids_all if i is not None]
            O.read(srv, ids, threads)
            self.record("orthanc.small.cached", len(ids) / O.read(srv, ids, threads))
            small_one = next(f for f, i in zip(smalls, ids_all) if i is not None)
            srv.stop()
            srv.section = section(DekCacheSize=0)
            srv.start()
            O.read(srv, ids[: max(1, len(ids) // 10)], threads)  # sessions opened
            self.record("orthanc.small.uncached", len(ids) / O.read(srv, ids, threads))
            srv.kill()
            self.unwrap_loop(key, prefix="orthanc.loop")
            # Memory: Orthanc's peak RSS after storing and reading one
            # instance, small or large, with and without the plugin.
            for size, path in (("small", small_one), ("large", self.orthanc_large)):
                for name, sec in (("plain", None), ("sealed", section())):
                    srv = server(f"mem-{name}", sec)
                    _, ids = O.upload(srv, [path], 1)
                    if ids[0] is None:
                        raise Failure(f"row 6: Orthanc refused {path}")
                    O.read(srv, ids, 1)
                    O.read(srv, ids, 1)
                    self.maxrss.setdefault(f"orthanc.{name}.{size}", []).append(srv.peak_rss())
                    srv.kill()
        except RuntimeError as e:
            raise Failure(f"row 6: {e}")
        finally:
            for srv in servers:  # whatever failed, no server outlives the run
                srv.kill()

    def row_memory_small(self):
        rm(self.one_small_enc)
        self.timed("onesmall.encrypt", self.dcmseal("encrypt", "--key", "kek3072",
                                                    self.one_small, "-o", self.one_small_enc),
                   out=self.one_small_enc)
        dec = self.one_small_enc + ".dec"
        rm(dec)
        self.timed("onesmall.decrypt", self.dcmseal("decrypt", self.one_small_enc, "-o", dec),
                   out=dec)
        rm(dec)
        rm(self.one_small_enc)

    # ---- the table ----------------------------------------------------------

    def med(self, key):
        v = self.samples.get(key)
        if not v:
            raise Failure(f"no measurement for {key}")
        return statistics.median(v)

    def ratio(self, key, ref, invert=False, f=None):
        """The median over runs of key/ref (ref/key with |invert|)."""
        a, b = self.samples.get(key), self.samples.get(ref)
        if not a or not b or len(a) != len(b):
            raise Failure(f"no paired measurements for {key} and {ref}")
        return statistics.median((y / x if invert else x / y) for x, y in zip(a, b))

    def table(self):
        rows = []

        def row(sec, what, value, unit, ref="", ratio=None, target="", ok=None):
            rows.append((sec, what, value, unit, ref, ratio, target, ok))

        want = self.a.rows
        size = f"{self.large_bytes / MIB:.0f} MiB" if self.large is not None else ""
        files = f"{self.a.files} files"
        if 1 in want:
            self.rows_stream(row)
        if 2 in want:
            self.rows_large(row, size)
        if 3 in want:
            self.rows_archive(row, files)
        if 4 in want:
            self.rows_token(row)
            self.rows_origin(row)
        if 5 in want:
            self.rows_memory(row, size, files)
        if 6 in want:
            self.rows_orthanc(row)
        return rows

    def rows_stream(self, row):
        N = self.cores
        for ph, raw in (("encrypt", "raw"), ("decrypt", "raw_decrypt")):
            lim, k = f"stream.{raw}.1", f"stream.{ph}.1"
            row("1", f"raw EVP AES-256-GCM {ph}, 1 thread", self.med(lim), "MiB/s", "", None,
                "(limit)")
            r = self.ratio(k, lim)
            row("1", f"dcmseal {ph}, 1 thread", self.med(k), "MiB/s", f"raw {ph}, 1 thread", r,
                ">= 0.90", r >= 0.90)
        for ph, raw in (("encrypt", "raw"), ("decrypt", "raw_decrypt")):
            lim = f"stream.{raw}.all"
            row("1", f"raw EVP AES-256-GCM {ph}, {N} threads", self.med(lim), "MiB/s",
                f"raw {ph}, 1 thread", self.ratio(lim, f"stream.{raw}.1"),
                "(limit of the speed-up)")
        for ph in ("encrypt", "decrypt"):
            k = f"stream.{ph}.all"
            r = self.ratio(k, f"stream.{ph}.1")
            row("1", f"dcmseal {ph}, {N} threads", self.med(k), "MiB/s",
                f"dcmseal {ph}, 1 thread", r, ">= 1.70", r >= 1.70)

    def rows_large(self, row, size):
        row("2", f"cp + fsync, {size}", self.med("large.cp"), "s", "", None, "(limit)")
        for verb in ("encrypt", "decrypt"):
            k = f"large.{verb}"
            r = self.ratio(k, "large.cp")
            row("2", f"dcmseal {verb}", self.med(k), "s", "cp", r, "<= 1.15 x", r <= 1.15)
        for peer, title in () if self.a.no_peers else (
                ("cms", "openssl cms -stream, RSA-OAEP"), ("age", "age, X25519")):
            for verb in ("encrypt", "decrypt"):
                k = f"large.{peer}.{verb}"
                r = self.ratio(k, f"large.{verb}")
                row("2", f"peer: {title} {verb}", self.med(k), "s", f"dcmseal {verb}", r,
                    "> 1.00 x", r > 1.0)

    def rows_archive(self, row, files):
        N = self.cores
        row("3", f"cp -r + syncfs, {files}", self.med("archive.cp"), "s", "", None, "(limit)")
        for verb in ("encrypt", "decrypt", "verify", "rewrap"):
            k = f"archive.{verb}"
            r = self.ratio(k, "archive.cp")
            if verb == "encrypt":
                row("3", f"dcmseal {verb} -r", self.med(k), "s", "cp -r", r, "<= 1.20 x",
                    r <= 1.20)
            else:
                row("3", f"dcmseal {verb} -r", self.med(k), "s", "cp -r", r)
        if self.a.no_peers:
            return
        r = self.ratio("archive.cms.encrypt", "archive.encrypt")
        row("3", f"peer: openssl cms per file, xargs -P {N}", self.med("archive.cms.encrypt"),
            "s", "dcmseal encrypt -r", r, ">= 10 x", r >= 10)

    def rows_token(self, row):
        N, n = self.cores, self.a.files
        for bits, pre in ((2048, "archive2048"), (3072, "archive")):
            loop = f"loop.kek{bits}.unwrap"
            row("4", f"RSA-{bits}: C_Decrypt loop, {N} sessions", self.med(loop), "obj/s", "",
                None, "(limit)")
            # What rewrap asks of the token: in-token rewrap, the limit of
            # rewrap -r (SoftHSM runs it on the same cores).
            # A token that refuses it (openCryptoki 3.8.1): rewrap -r goes
            # through host memory, whose loop is then its limit.
            intoken, limit = f"loop.kek{bits}.rewrap-in-token", "in-token rewrap loop"
            if not self.samples.get(intoken):
                intoken, limit = f"loop.kek{bits}.rewrap-host", "host rewrap loop"
            # Format v2: rewrap also checks the old slot's origin proof and
            # proves the new slot, in the token: with them, the limit.
            proofs = f"loop.kek{bits}.rewrap+proofs"
            row("4", f"RSA-{bits}: {limit}", self.med(intoken), "obj/s",
                "C_Decrypt loop", self.ratio(intoken, loop),
                "" if proofs in self.samples else "(limit of rewrap)")
            if proofs in self.samples:
                row("4", f"RSA-{bits}: the same + proof check and proof", self.med(proofs),
                    "obj/s", "C_Decrypt loop", self.ratio(proofs, loop), "(limit of rewrap)")
                intoken, limit = proofs, "rewrap+proofs loop"
            # Format v2: a reader also checks each object's origin proof in
            # the token, so decrypt's limit is unwrap + check on the same
            # sessions (docs/HSM.md).
            check = f"loop.kek{bits}.unwrap+check"
            dec_ref, dec_name = loop, "C_Decrypt loop"
            if check in self.samples:
                row("4", f"RSA-{bits}: unwrap + proof check loop", self.med(check), "obj/s",
                    "C_Decrypt loop", self.ratio(check, loop), "(limit of decrypt)")
                dec_ref, dec_name = check, "unwrap+check loop"
            # The archive's decrypt -r has no target: its bytes (about
            # a few hundred KiB an object) cost more than its unwraps (RESULTS.md).
            for key, what, ref, refname, target in (
                    (f"{pre}.rewrap", f"rewrap -r, {N} jobs", intoken, limit, 0.90),
                    (f"{pre}.decrypt", f"decrypt -r, {N} jobs", loop, "C_Decrypt loop", None)):
                rate = f"{key}.rate"
                self.samples[rate] = [n / t for t in self.samples[key]]
                r = self.ratio(rate, ref)
                row("4", f"RSA-{bits}: {what}", self.med(rate), "obj/s", refname, r,
                    "" if target is None else f">= {target:.2f}",
                    None if target is None else r >= target)
            # The same by CPU time per object (the whole process, SoftHSM's
            # RSA included): the loop's over rewrap -r's.
            cpu = f"{pre}.rewrap.cpu.per"
            self.samples[cpu] = [c / n for c in self.samples[f"{pre}.rewrap.cpu"]]
            row("4", f"RSA-{bits}: rewrap -r, CPU ms per object", self.med(cpu) * 1e3, "ms",
                limit, self.ratio(cpu, f"{intoken}.cpu", invert=True),
                "(same, by CPU)")
            # Small files, against the loop run next to them: by wall time
            # (the goals), then by CPU time per object (user + system of the
            # whole process, SoftHSM's RSA included), on this shared VM the
            # steadier figure, and the one that says what each object costs
            # beyond its unwrap.
            loop, loop_name = f"smallloop.kek{bits}.unwrap", "C_Decrypt loop"
            sm = self.a.small_files
            row("4", f"RSA-{bits}: C_Decrypt loop beside the small files", self.med(loop),
                "obj/s", "", None, "(limit)")
            # Format v2: each object's origin proof is checked in the token
            # too, so decrypt's and verify's limit is unwrap + check.
            if self.samples.get(f"smallloop.kek{bits}.unwrap+check"):
                loop, loop_name = f"smallloop.kek{bits}.unwrap+check", "unwrap+check loop"
                row("4", f"RSA-{bits}: unwrap + proof check loop beside them", self.med(loop),
                    "obj/s", "", None, "(limit of decrypt)")
            small = [("decrypt", f"decrypt -r, {N} jobs, small files", 0.85),
                     ("decrypt-file", "same, --durability file", None),
                     ("verify", f"verify -r, {N} jobs, small files", 0.90)]
            if self.a.baseline:
                small += [("baseline-decrypt", "decrypt -r, small files, baseline", None),
                          ("baseline-verify", "verify -r, small files, baseline", None)]
            for name, what, target in small:
                key = f"small{bits}.{name}"
                rate = f"{key}.rate"
                self.samples[rate] = [sm / t for t in self.samples[key]]
                r = self.ratio(rate, loop)
                row("4", f"RSA-{bits}: {what}", self.med(rate), "obj/s", loop_name, r,
                    "" if target is None else f">= {target:.2f}",
                    None if target is None else r >= target)
            row("4", f"RSA-{bits}: C_Decrypt loop, CPU ms per object",
                self.med(f"{loop}.cpu") * 1e3, "ms", "", None, "")
            for name, what, _ in small:
                key = f"small{bits}.{name}"
                per = f"{key}.cpu.per"
                self.samples[per] = [c / sm for c in self.samples[f"{key}.cpu"]]
                row("4", f"RSA-{bits}: {what}, CPU ms per object", self.med(per) * 1e3, "ms",
                    "C_Decrypt loop", self.ratio(per, f"{loop}.cpu", invert=True),
                    "(same, by CPU)")

    def rows_origin(self, row):
        """Row 4, continued: format v2's origin proof against format v1, and
        concealed names, on the small files, all in the same run."""
        N = self.cores
        for key in ("small2048v1.decrypt", "small2048.encrypt", "small2048conceal.encrypt"):
            self.samples[f"{key}.rate"] = [self.a.small_files / t for t in self.samples[key]]
        loop = "loop.kek2048v1.unwrap"
        row("4", f"RSA-2048: C_Decrypt loop, key without origin", self.med(loop), "obj/s", "",
            None, "(limit of v1)")
        r = self.ratio("small2048v1.decrypt.rate", loop)
        row("4", f"RSA-2048: decrypt -r, {N} jobs, small files, v1", self.med(
            "small2048v1.decrypt.rate"), "obj/s", "C_Decrypt loop", r, "(before)")
        r = self.ratio("small2048.decrypt.rate", "small2048v1.decrypt.rate")
        row("4", f"RSA-2048: decrypt -r, small files, v2 (proof)", self.med(
            "small2048.decrypt.rate"), "obj/s", "the same, v1", r, "(after/before)")
        r = self.ratio("small2048conceal.encrypt.rate", "small2048.encrypt.rate")
        row("4", f"RSA-2048: encrypt -r --conceal-names, small", self.med(
            "small2048conceal.encrypt.rate"), "obj/s", "encrypt -r, small files", r,
            "(names cost)")

    def rows_memory(self, row, size, files):
        """The largest of all runs."""
        def rss(key):
            v = self.maxrss.get(key)
            if not v:
                raise Failure(f"no memory measurement for {key}")
            return max(v)
        for key, what, ref in (
                ("onesmall.encrypt", "encrypt, one small object", None),
                ("onesmall.decrypt", "decrypt, one small object", None),
                ("large.encrypt", f"encrypt, {size}", "onesmall.encrypt"),
                ("large.decrypt", f"decrypt, {size}", "onesmall.decrypt"),
                ("archive.encrypt", f"encrypt -r, {files}", "onesmall.encrypt"),
                ("archive.decrypt", f"decrypt -r, {files}", "onesmall.decrypt"),
                ("archive.verify", f"verify -r, {files}", "onesmall.decrypt"),
                ("archive.rewrap", f"rewrap -r, {files}", "onesmall.decrypt")):
            v = rss(key)
            row("5", f"peak RSS, {what}", v / MIB, "MiB",
                "" if ref is None else "same, one small object",
                None if ref is None else v / rss(ref), "<= 32 MiB", v <= MEMORY_BUDGET)

    def rows_orthanc(self, row):
        N, n, k = self.cores, len(self.orthanc_files), len(self.orthanc_smalls)
        row("6", f"plain Orthanc: REST ingest, {n} files ({len(self.orthanc_refused)} refused "
                 f"by both), {2 * N} clients",
            self.med("orthanc.plain.ingest"), "obj/s", "", None, "(limit)")
        r = self.ratio("orthanc.sealed.ingest", "orthanc.plain.ingest")
        row("6", "with the dcmseal plugin: REST ingest", self.med("orthanc.sealed.ingest"),
            "obj/s", "plain Orthanc", r, ">= 0.80", r >= 0.80)
        row("6", "plain Orthanc: whole-file reads", self.med("orthanc.plain.read"), "obj/s", "",
            None, "(limit)")
        r = self.ratio("orthanc.sealed.read", "orthanc.plain.read")
        row("6", "with the plugin: whole-file reads, warm DEK cache",
            self.med("orthanc.sealed.read"), "obj/s", "plain Orthanc", r, ">= 0.80", r >= 0.80)
        loop = "orthanc.loop.kek2048.unwrap"
        row("6", f"RSA-2048: C_Decrypt loop, {N} sessions", self.med(loop), "obj/s", "", None,
            "(limit)")
        row("6", f"with the plugin: reads of {k} small files, DEK cache off, {N} sessions",
            self.med("orthanc.small.uncached"), "obj/s", "C_Decrypt loop",
            self.ratio("orthanc.small.uncached", loop), "(token-bound)")
        row("6", "with the plugin: the same reads, DEK cache on", self.med("orthanc.small.cached"),
            "obj/s", "DEK cache off", self.ratio("orthanc.small.cached", "orthanc.small.uncached"),
            "(the cache's effect)")

        def rss(key):
            v = self.maxrss.get(key)
            if not v:
                raise Failure(f"no memory measurement for {key}")
            return max(v)
        mib = self.a.orthanc_mib
        extra = {}
        for size, what in (("small", "one small instance"), ("large", f"one {mib} MiB instance")):
            plain, sealed = rss(f"orthanc.plain.{size}"), rss(f"orthanc.sealed.{size}")
            extra[size] = sealed - plain
            row("6", f"peak RSS of Orthanc, {what}, plain", plain / MIB, "MiB", "", None, "")
            row("6", f"peak RSS of Orthanc, {what}, with the plugin", sealed / MIB, "MiB",
                "plain", sealed / plain, "")
        grow = (extra["large"] - extra["small"]) / MIB
        row("6", f"what the plugin adds grows by, {mib} MiB vs small", grow, "MiB", "", None,
            "<= 8 MiB", grow <= 8)

    def render(self, rows, head):
        lines = list(head)
        hdr = ("#", "measurement", "median", "unit", "reference (same run)", "ratio",
               "target", "result")
        body = []
        for sec, what, value, unit, ref, ratio, target, ok in rows:
            fmt = "{:.0f}" if value >= 100 else "{:.2f}" if value < 10 else "{:.1f}"
            body.append((sec, what, fmt.format(value), unit, ref,
                         "" if ratio is None else f"{ratio:.2f}", target,
                         "" if ok is None else "pass" if ok else "MISS"))
        w = [max(len(r[i]) for r in body + [hdr]) for i in range(len(hdr))]
        right = {2, 5}
        def line(r):
            return "  ".join(c.rjust(w[i]) if i in right else c.ljust(w[i])
                             for i, c in enumerate(r)).rstrip()
        lines.append(line(hdr))
        lines.append(line(tuple("-" * x for x in w)))
        lines += [line(r) for r in body]
        return "\n".join(lines)

    # ---- all ----------------------------------------------------------------

    def main(self):
        a = self.a
        for d in (self.inputs, self.out, self.logs):
            os.makedirs(d, exist_ok=True)
        for f in os.listdir(self.logs):
            os.unlink(os.path.join(self.logs, f))
        started = datetime.datetime.now(datetime.timezone.utc)
        self.machine()
        load_start = self.load()
        say(f"work directory {self.work}; {a.runs} run(s)")
        self.token()
        # What only some rows use is made only for them.
        self.large = self.large_object() if a.rows & {2, 3, 4, 5} else None
        self.arch = self.archive("archive", a.files)
        self.smalls = self.archive("small", a.small_files, SMALL_MAX)
        if 6 in a.rows:
            def first(tree, n):
                fs = sorted(os.path.join(d, f) for d, _, names in os.walk(tree) for f in names)
                return fs[:n]
            self.orthanc_files = first(self.arch, a.orthanc_files)
            self.orthanc_smalls = first(self.smalls, a.orthanc_files)
            self.orthanc_large = self.multiframe("orthanc-large", a.orthanc_mib)
        described = self.inputs_describe()
        if a.rows & {2, 3, 4, 5}:
            self.peers_setup()
            say("preparing encrypted inputs")
            self.prepare()
        if 1 in a.rows:
            self.row_stream()
        for run in range(a.runs):
            if a.rows & {2, 5}:
                say(f"run {run + 1}/{a.runs}: one large object")
                self.row_large(run == 0)
            if a.rows & {3, 4, 5}:
                self.empty_trash(wait=True)
                say(f"run {run + 1}/{a.runs}: archive")
                self.row_archive(run)
            if 5 in a.rows:
                self.row_memory_small()
            if 6 in a.rows:
                say(f"run {run + 1}/{a.runs}: Orthanc")
                self.row_orthanc(run)
        self.empty_trash(wait=False)
        rows = self.table()
        commit = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                                capture_output=True, text=True).stdout.strip() or "?"
        i = self.info
        head = [
            f"dcmseal benchmark, {started:%Y-%m-%d %H:%M} UTC, commit {commit}, "
            f"{'quick mode' if a.quick else 'full'}",
            f"command:  {a.command}",
            f"machine:  {i['cpu']}; {i['kernel']}",
            f"software: {i['openssl']}; {i['softhsm']}; {i['dcmtk']}; {i['age']}; {i['cp']}; "
            f"{i['orthanc']}",
            f"storage:  {i['storage']}",
            f"load:     1-min load average {load_start} at the start, {self.load()} at the end",
            f"inputs:   {described}",
            f"method:   median of {a.runs} run(s); ratio = median of the ratios within each "
            f"run; times include fsync (files) or syncfs (trees) of the outputs for every "
            f"command; peak RSS is the largest of all runs; rows 3 and 4 delete no output "
            f"between timed commands (bench.py, discard)",
            "",
        ]
        table = self.render(rows, head)
        print(table, flush=True)
        with open(os.path.join(self.work, "results.json"), "w") as f:
            json.dump({"head": head, "samples": self.samples, "maxrss": self.maxrss}, f,
                      indent=1)
        with open(os.path.join(self.work, "table.txt"), "w") as f:
            f.write(table + "\n")
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny inputs, one run (CI)")
    ap.add_argument("--runs", type=int, help="runs per figure (full: 3, quick: 1)")
    ap.add_argument("--dcmseal", default=os.path.join(ROOT, "build", "dcmseal"))
    ap.add_argument("--bench-stream", default=os.path.join(ROOT, "build", "bench",
                                                           "bench_stream"))
    ap.add_argument("--corpus", default=os.path.join(ROOT, "..", "shared", "corpus"),
                    help="DICOM files to copy into the archive (read only)")
    ap.add_argument("--work", help="inputs, token and outputs (default build/bench/MODE)")
    ap.add_argument("--plugin", default=os.path.join(ROOT, "build", "orthanc",
                                                     "libOrthancDcmseal.so"),
                    help="the Orthanc plugin (row 6)")
    ap.add_argument("--rows", default="1,2,3,4,5,6",
                    help="which rows to run, e.g. 3,4 (default: all)")
    ap.add_argument("--no-peers", action="store_true",
                    help="leave out openssl cms and age (to compare builds of dcmseal)")
    ap.add_argument("--files", type=int, help="files in the archive (full: 10000)")
    ap.add_argument("--small-files", type=int, help="files of row 4's small-file tree "
                    "(full: 5000)")
    ap.add_argument("--baseline", help="another build's dcmseal: row 4 also times its "
                    "decrypt -r and verify -r of the small files (before and after)")
    ap.add_argument("--command", default="bench/bench.py", help=argparse.SUPPRESS)
    a = ap.parse_args()
    mode = MODES["quick" if a.quick else "full"]
    for k, v in mode.items():
        if getattr(a, k, None) is None:
            setattr(a, k, v)
    a.work = a.work or os.path.join(ROOT, "build", "bench", "quick" if a.quick else "full")
    if a.runs < 1:
        ap.error("--runs must be at least 1")
    try:
        a.rows = {int(r) for r in a.rows.split(",")}
    except ValueError:
        a.rows = set()
    if not a.rows or not a.rows <= {1, 2, 3, 4, 5, 6}:
        ap.error("--rows takes numbers from 1 to 6, e.g. 3,4")
    if not os.path.isdir(a.corpus):
        # As the integration tests do: a few small files made with DCMTK.
        a.corpus = os.path.join(a.work, "samples")
        os.makedirs(a.corpus, exist_ok=True)
        say(f"no corpus; using samples from scripts/make-samples.sh in {a.corpus}")
        subprocess.run([os.path.join(ROOT, "scripts", "make-samples.sh"), a.corpus],
                       stdout=subprocess.DEVNULL, check=True)
    # SIGTERM as Ctrl-C: the running command goes too (see Bench.timed).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return Bench(a).main()
    except (Failure, OSError, subprocess.CalledProcessError, ValueError, KeyError) as e:
        print(f"bench: FAILED: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
