"""Checks, from an strace of `dcmseal rewrap`, the order that makes it
crash-safe: for every object,
  1. its new key slot is written (pwrite64 of a slot starting "SLOT"),
  2. a flush that covers it (syncfs of its file system, or fdatasync of the
     file) starts after that write returned,
  3. only after that flush returned is its old slot overwritten with zeros,
  4. another flush starts after the wipe returned,
  5. and only after that one returned is the object reported.

  rewrap_order.py TRACE REPORT NFILES
TRACE from strace -f -y -ttt -T -s 300 -e trace=pwrite64,fdatasync,syncfs,write;
REPORT the --report file (its lines are the `write` calls reporting).
All files are on one file system, so a syncfs covers every one of them.
"""
import re
import sys
from collections import defaultdict

import strace_calls

trace, report, nfiles = sys.argv[1], sys.argv[2], int(sys.argv[3])
CALL = re.compile(r'(\d+)<([^>]*)>(?:, "((?:[^"\\]|\\.)*)")?')

calls = []  # (entry, exit, name, path, data as strace printed it)
for entry, exit_, name, args, _ in strace_calls.calls(trace):
    c = CALL.match(args)
    if c:
        calls.append((entry, exit_, name, c.group(2), c.group(3) or ""))

flushes = [(e, x, n, p) for e, x, n, p, _ in calls if n in ("syncfs", "fdatasync")]


def flushed(path, after, before):
    """A flush covering |path| started after |after| and returned before |before|."""
    return any(e >= after and x <= before and (n == "syncfs" or p == path)
               for e, x, n, p in flushes)


ev = defaultdict(dict)
for e, x, n, p, data in calls:
    if n == "pwrite64" and data.startswith("SLOT"):
        ev[p]["new"] = x
    elif n == "pwrite64" and data.startswith(r"\0\0\0\0"):
        ev[p]["wipe"] = (e, x)
    elif n == "write" and p == report:
        m = re.match(r'\{\\"path\\":\\"([^\\]*)\\"', data)
        if m:
            ev[m.group(1)]["report"] = e

bad = []
for path, v in ev.items():
    if "new" not in v:
        continue
    if "wipe" not in v or "report" not in v:
        bad.append((path, "no wipe or no report line", v))
    elif not flushed(path, v["new"], v["wipe"][0]):
        bad.append((path, "old slot wiped before the new one was flushed", v))
    elif not flushed(path, v["wipe"][1], v["report"]):
        bad.append((path, "reported before the wipe was flushed", v))
moved = sum(1 for v in ev.values() if "new" in v)
for b in bad[:5]:
    print("ORDER:", *b)
if moved != nfiles:
    print(f"ORDER: {moved} new slots written in the trace, {nfiles} objects")
sys.exit(0 if moved == nfiles and not bad else 1)
