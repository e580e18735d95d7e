"""Orthanc for bench.py's row 6: a server of our own on free loopback ports,
with or without the dcmseal plugin, and a small HTTP load generator (one
keep-alive connection per thread, standard library only)."""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Orthanc:
    """One Orthanc in |work|/|name| (storage and index there; the index
    outside the storage, as the plugin requires). |section| is the plugin's
    "Dcmseal" configuration; None runs a plain Orthanc."""

    def __init__(self, work, name, plugin=None, section=None, env=None):
        self.dir = os.path.join(work, name)
        self.plugin = plugin
        self.section = section
        self.env = env
        self.proc = None
        self.http = self.dicom = None

    def reset(self):
        if os.path.isdir(self.dir):
            shutil.rmtree(self.dir)
        os.makedirs(self.dir)

    def start(self, timeout=60):
        self.http, self.dicom = free_port(), free_port()
        cfg = {
            "Name": "dcmseal-bench",
            "StorageDirectory": os.path.join(self.dir, "storage"),
            "IndexDirectory": os.path.join(self.dir, "index"),
            "HttpPort": self.http,
            "DicomPort": self.dicom,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            # Every read reaches the storage area: what is measured.
            "MaximumStorageCacheSize": 0,
            "StorageCompression": False,
            "Plugins": [self.plugin] if self.section is not None else [],
        }
        if self.section is not None:
            cfg["Dcmseal"] = self.section
        path = os.path.join(self.dir, "orthanc.json")
        with open(path, "w") as f:
            json.dump(cfg, f, indent=1)
        self.log = open(os.path.join(self.dir, "log"), "ab")
        self.proc = subprocess.Popen(["Orthanc", path], stdout=self.log, stderr=self.log,
                                     env=self.env, start_new_session=True)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited: see {self.dir}/log")
            try:
                if self.get("/system")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"Orthanc did not answer: see {self.dir}/log")

    def stop(self):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None
        self.log.close()

    def kill(self):
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None
            self.log.close()

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.http, timeout=60)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def peak_rss(self):
        """VmHWM of the Orthanc process, in bytes."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM")


def _run(port, jobs, threads, one):
    """Runs one(conn, job) for every job, from |threads| threads with a
    keep-alive connection each; returns (seconds, results in job order)."""
    results = [None] * len(jobs)
    nxt = [0]
    lock = threading.Lock()
    errors = []

    def work():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= len(jobs):
                break
            try:
                results[i] = one(conn, jobs[i])
            except (OSError, http.client.HTTPException, RuntimeError) as e:
                errors.append(f"{jobs[i]}: {e}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.close()

    ts = [threading.Thread(target=work) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    seconds = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, e.g. {errors[0]}")
    return seconds, results


def upload(server, files, threads):
    """POSTs every file (read beforehand) to /instances; returns (seconds,
    instance IDs, None for a file Orthanc refused as bad input)."""
    bodies = []
    for f in files:
        with open(f, "rb") as fh:
            bodies.append(fh.read())

    def one(conn, i):
        conn.request("POST", "/instances", body=bodies[i])
        r = conn.getresponse()
        body = r.read()
        if r.status == 400:
            return None
        if r.status != 200:
            raise RuntimeError(f"POST {files[i]}: {r.status}")
        return json.loads(body)["ID"]

    return _run(server.http, list(range(len(files))), threads, one)


def read(server, ids, threads, expect=None):
    """GETs /instances/ID/file for every ID; with |expect| (ID -> bytes),
    checks what came back. Returns seconds."""

    def one(conn, iid):
        conn.request("GET", f"/instances/{iid}/file")
        r = conn.getresponse()
        body = r.read()
        if r.status != 200 or (expect is not None and body != expect[iid]):
            raise RuntimeError(f"GET {iid}: {r.status}, {len(body)} bytes")
        return len(body)

    return _run(server.http, ids, threads, one)[0]
